"""The documentation's pages as the tests read them: a page, a section under
a heading, the fenced code blocks of a section, and runners for its examples.

A test that runs an example names where it is, in strings:
``blocks("docs/howto/leases.md", "Leases by hand", "sh")``. ``test_docs.py``
reads those calls out of the tests and fails for any block of README.md and
docs/ that no such call takes in: an example nobody runs fails the suite."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^( *)```(\S*)")
HEADING = re.compile(r"^(#+) (.+)$")


@dataclass(frozen=True)
class Block:
    page: str
    lang: str
    line: int  # of its opening fence, from 1
    text: str
    headings: tuple[str, ...]  # the headings it is under, outermost first


# generated from the code, or tested by their own tests (the settings' pages)
OWN_TESTS = {"docs/reference/cli.md", "docs/reference/api.md", "docs/howto/profiles.md", "docs/reference/settings.md"}


def page(path: str) -> str:
    return (ROOT / path).read_text()


def pages() -> list[str]:
    """README.md and the pages of docs/ whose examples these tests run."""
    found = ["README.md", *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs").rglob("*.md"))]
    return [path for path in found if path not in OWN_TESTS]


def all_blocks(path: str) -> list[Block]:
    """Every fenced block of a page (indented ones in lists too), in order."""
    found: list[Block] = []
    headings: list[tuple[int, str]] = []
    opened: tuple[int, str, int] | None = None  # (indent, lang, line)
    body: list[str] = []
    for number, line in enumerate(page(path).splitlines(), 1):
        fence = FENCE.match(line)
        if opened is None and fence:
            opened, body = (len(fence[1]), fence[2], number), []
        elif opened is not None and fence and line.strip() == "```":
            found.append(Block(path, opened[1], opened[2], "".join(body), tuple(h for _, h in headings)))
            opened = None
        elif opened is not None:
            body.append(line[opened[0]:] + "\n")
        elif heading := HEADING.match(line):
            level = len(heading[1])
            headings = [(n, h) for n, h in headings if n < level] + [(level, heading[2])]
    assert opened is None, f"{path}: a block opened on line {opened[2]} is never closed"
    return found


def section(path: str, heading: str) -> str:
    """The text under ``heading`` (its subsections included), up to the next
    heading of its level or above."""
    lines = page(path).splitlines(keepends=True)
    fenced = False
    start = level = None
    for number, line in enumerate(lines):
        if FENCE.match(line):
            fenced = not fenced
        found = None if fenced else HEADING.match(line)
        if found and start is None and found[2] == heading:
            start, level = number + 1, len(found[1])
        elif found and start is not None and len(found[1]) <= level:
            return "".join(lines[start:number])
    assert start is not None, f"{path} has no heading {heading!r}"
    return "".join(lines[start:])


def blocks(path: str, heading: str, lang: str) -> list[str]:
    """The ``lang`` blocks under ``heading`` (subsections included), in order.
    Call it with strings (or names given one string in the file): that is how
    test_docs.py sees them run."""
    return [block.text for block in all_blocks(path) if block.lang == lang and heading in block.headings]


def claims(tests: Path | None = None) -> set[tuple[str, str, str]]:
    """Every ``blocks(page, heading, lang)`` call in the tests whose arguments
    are strings written there, or names a string is given to once in the file."""
    found = set()
    for source in (tests or ROOT / "tests").glob("*.py"):
        tree = ast.parse(source.read_text())
        given: dict[str, set[str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                        given.setdefault(target.id, set()).add(node.value.value)
        constants = {name: values.pop() for name, values in given.items() if len(values) == 1}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or len(node.args) != 3:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            values = [arg.value if isinstance(arg, ast.Constant) else constants.get(getattr(arg, "id", ""))
                      for arg in node.args]  # fmt: skip
            if name == "blocks" and all(isinstance(value, str) for value in values):
                found.add((values[0], values[1], values[2]))
    return found


# -- running the examples --------------------------------------------------------------

def shell_env(redis_url: str | None = None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for the examples' shell lines: ``environ`` (the tests'
    own by default) with no server setting but ``redis_url``, and the
    installed psctl first on PATH."""
    from .helpers import PSCTL

    base = dict(os.environ if environ is None else environ)
    env = {k: v for k, v in base.items() if not k.startswith(("REDIS_", "PSCTL_", "_PSCTL"))}
    return env | {"PATH": f"{PSCTL.parent}:{base['PATH']}"} | ({"REDIS_URL": redis_url} if redis_url else {})


CRONTAB = re.compile(r"^(?:[\d*/,-]+\s+){5}")
COMMENT = re.compile(r"\s{2,}# ?")


def command_of(line: str, url: str | None = None) -> str:
    """A crontab line as the command it runs here: its time fields, its ``cd``
    and its full path of psctl off, its REDIS_URL the test server's."""
    line = CRONTAB.sub("", line)
    line = re.sub(r"^cd \S+ && ", "", line)
    line = re.sub(r"\S*/bin/psctl\b", "psctl", line)
    return re.sub(r"REDIS_URL=\S+ ", f"REDIS_URL={url} " if url else "", line)


@dataclass
class Ran:
    line: str  # as the page writes it
    status: int
    stdout: str
    comment: str


def run_lines(block: str, env: dict[str, str], cwd: Path, url: str | None = None) -> list[Ran]:
    """Each line of a shell block, in order, in one bash (so that a variable
    set by one line reaches the next); a line's stdout and exit status are
    kept apart. A line is one command: loops are run by tests of their own."""
    lines = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    script = []
    for number, line in enumerate(lines):
        command = COMMENT.split(line, maxsplit=1)[0]
        script.append(f"{{ {command_of(command, url)}\n}} > .out.{number}\necho $? > .status.{number}\n")
    subprocess.run(["bash", "-c", "".join(script)], cwd=cwd, env=env, timeout=300, check=False)
    ran = []
    for number, line in enumerate(lines):
        parts = COMMENT.split(line, maxsplit=1)
        status = (cwd / f".status.{number}").read_text()
        ran.append(Ran(line, int(status), (cwd / f".out.{number}").read_text(), parts[1] if len(parts) > 1 else ""))
    return ran


def matches(found: Any, shown: Any) -> bool:
    """``found`` is what ``shown`` says, where a shown ``"…"`` stands for any value."""
    if shown == "…":
        return True
    if isinstance(shown, dict):
        same_keys = isinstance(found, dict) and found.keys() == shown.keys()
        return same_keys and all(matches(found[key], shown[key]) for key in shown)
    if isinstance(shown, list):
        return isinstance(found, list) and len(found) == len(shown) and all(map(matches, found, shown))
    return found == shown and type(found) is type(shown)


def check_comments(ran: list[Ran], statuses: dict[str, int] | None = None) -> int:
    """Each line exited 0 (or as ``statuses`` says, by a piece of the line),
    and printed the JSON its comment starts with, if it does; how many were
    compared."""
    compared = 0
    for done in ran:
        expected = next((status for piece, status in (statuses or {}).items() if piece in done.line), 0)
        assert done.status == expected, (done.line, done.status)
        if done.comment.startswith(("{", "[")):
            shown, _ = json.JSONDecoder().raw_decode(done.comment)  # (words may follow it)
            assert matches(json.loads(done.stdout), shown), (done.line, done.stdout)
            compared += 1
    return compared


def run_python(code: str, namespace: dict[str, Any], filename: str) -> int:
    """Runs a Python example statement by statement; an expression statement
    whose line ends with ``# -> VALUE`` must give that value. How many did."""
    import io
    import tokenize

    comments = {
        token.start[0]: token.string
        for token in tokenize.generate_tokens(io.StringIO(code).readline)
        if token.type == tokenize.COMMENT
    }
    checked = 0
    for node in ast.parse(code).body:
        compiled = compile(ast.Module([node], []), filename, "exec")
        expected = re.match(r"#\s*-> (.+?)(?:\s+\(.*\))?$", comments.get(node.end_lineno or 0, ""))
        if isinstance(node, ast.Expr) and expected:
            result = eval(compile(ast.Expression(node.value), filename, "eval"), namespace)
            assert result == ast.literal_eval(expected[1]), (ast.unparse(node), result)
            checked += 1
        else:
            exec(compiled, namespace)
    return checked
