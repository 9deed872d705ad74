"""The README's library examples run as written (against the test server)."""

from __future__ import annotations

import ast
import asyncio
import io
import re
import tokenize
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def library_blocks() -> list[str]:
    text = README.read_text()
    section = text.split("## The library", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def run_block(code: str, redis_url: str, monkeypatch) -> dict:
    monkeypatch.setenv("REDIS_URL", redis_url)
    code = re.sub(r"redis://(localhost|queue-host):6379/0", redis_url, code)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_quick_example_returns_what_its_comments_say(redis_url, r, monkeypatch):
    """Each ``# -> value`` or ``# {...}`` comment is the statement's result."""
    code = re.sub(r"redis://localhost:6379/0", redis_url, library_blocks()[0])
    comments = {
        token.start[0]: token.string
        for token in tokenize.generate_tokens(io.StringIO(code).readline)
        if token.type == tokenize.COMMENT
    }
    namespace: dict = {}
    checked = 0
    for node in ast.parse(code).body:
        source = ast.get_source_segment(code, node)
        if not isinstance(node, ast.Expr):
            exec(source, namespace)
            continue
        result = eval(source, namespace)
        expected = re.match(r"#\s*(?:-> )?(\{.*?\}|\[.*?\]|[\d.]+|None)", comments.get(node.end_lineno, ""))
        if expected:
            assert result == ast.literal_eval(expected[1]), source
            checked += 1
    assert checked >= 5
    assert r.psnames() == ["task_queue"]


def test_async_and_injection_examples_run(redis_url, r, monkeypatch):
    blocks = library_blocks()
    asyncio_ns = run_block(next(b for b in blocks if "async def main" in b), redis_url, monkeypatch)
    asyncio.run(asyncio_ns["main"]())
    assert r.pslen("task_queue") == 0 and r.zscore("task_queue:exp", "task_1")
    r.flushdb()

    di = run_block(next(b for b in blocks if "@inject" in b), redis_url, monkeypatch)
    di["add_items_to_stream"]()
    assert r.pskeys("task_queue") == ["task_3", "task_1", "task_2"]
    di["process_items"]()
    assert r.pskeys("task_queue") == []
    r.psaddmany("task_queue", [("task_2", "x", 3), ("keep", "y", 20)], readd=True)
    asyncio.run(di["boost"]())
    assert r.pskeys("task_queue", withscores=True) == [("keep", 18.0)]


def test_the_leases_example_runs(redis_url, r, monkeypatch):
    """The Python block of the README's "Leases" section, with a handle() of
    the test's own: what it says happens, happens."""
    text = README.read_text()
    section = text.split("\n## Leases\n", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    code = re.sub(r"redis://localhost:6379/0", redis_url, code)
    handled = []
    namespace = {"handle": lambda key, value: handled.append((key, value))}
    exec(compile(code, str(README), "exec"), namespace)
    assert handled == [("job-2", b"send mail")]
    assert r.psadd("jobs", "job-2", "again") is None  # acknowledged: cooling down
    assert r.hget("jobs:held", "job-1") is None and r.psadd("jobs", "job-1", "x") is None  # acked with 2 h
    assert r.zscore("jobs:exp", "job-1") is not None
