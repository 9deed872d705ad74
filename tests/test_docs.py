"""The README and the documentation site: every example is run by some test,
the README's front door (its two commands, its tour) and the tutorial work as
written, and nothing a user reads cites an issue, the spec or a test's name."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from . import docs
from .docs import OWN_TESTS, ROOT, all_blocks, blocks, check_comments, pages, run_lines, run_python, shell_env
from .helpers import Home

def test_every_example_is_run_by_a_test() -> None:
    """Each fenced block of README.md and docs/ is taken in by a test's
    ``blocks(page, heading, lang)`` call, and each such call finds blocks."""
    claimed = docs.claims()
    unrun = [
        f"{block.page}:{block.line} ({block.lang or 'no language'}, under {block.headings[-1]!r})"
        for path in pages()
        for block in all_blocks(path)
        if not any(page == path and lang == block.lang and heading in block.headings for page, heading, lang in claimed)
    ]
    assert not unrun, "examples no test runs: " + ", ".join(unrun)
    stale = [claim for claim in claimed if claim[0] not in OWN_TESTS and not blocks(*claim)]
    assert not stale, f"tests that look for examples that are not there: {stale}"


def test_a_block_nobody_runs_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above sees a new example under a new heading, and a call that takes it in."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "new.md").write_text("# New\n\n## Fresh\n\n```sh\npsctl len jobs\n```\n")
    (tmp_path / "tests").mkdir()
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    [block] = all_blocks("docs/new.md")
    assert (block.lang, block.headings, block.text) == ("sh", ("New", "Fresh"), "psctl len jobs\n")
    assert docs.claims(tmp_path / "tests") == set()
    (tmp_path / "tests" / "test_new.py").write_text('blocks("docs/new.md", "Fresh", "sh")\n')
    assert docs.claims(tmp_path / "tests") == {("docs/new.md", "Fresh", "sh")}


@pytest.mark.parametrize("path", pages())
def test_no_page_cites_an_issue_the_spec_or_a_test(path: str) -> None:
    text = docs.page(path)
    cited = re.findall(r"\bissues? \d+|\bSPEC\b|§ ?\d|test_\w+\.py::|\btest_\w+_\w+\b(?!\.py)", text)
    if path != "docs/contributing.md":  # (where the tests are is its subject)
        cited += re.findall(r"tests/test_\w+", text)
    # the examples' own tests
    allowed = {"test_next_job_takes_the_most_urgent", "test_with_the_fixture", "test_totals_are_summed"}
    assert not [c for c in cited if c not in allowed], cited


@pytest.mark.parametrize("path", [*pages(), *sorted(docs.OWN_TESTS)])
def test_crontab_lines_give_psctls_path_and_forbid_the_embedded_server(path: str) -> None:
    """Cron's PATH holds no venv; a line that names its server (REDIS_URL) sets
    PSCTL_NO_EMBEDDED=1 too, so that losing that setting fails the job."""
    for block in docs.all_blocks(path):
        for line in block.text.splitlines():
            if not docs.CRONTAB.match(line) or "psctl" not in line:
                continue
            assert re.search(r"(^|\s)/\S+/bin/psctl ", line), (path, line)
            assert "REDIS_URL=" not in line or "PSCTL_NO_EMBEDDED=1 " in line, (path, line)


def test_the_tutorial_runs_as_written(
    home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Its steps in order, on the embedded server of a home where the README's
    tour ran first (as a reader may have done): each command prints the JSON
    its comment shows. (Its installation is run by the test of the README's
    first command.)"""
    tutorial = "docs/tutorial.md"
    [toured, worked, _] = blocks("README.md", "A five-minute tour", "sh")
    [fresh, pulled] = blocks(tutorial, "2. Add and pull", "sh")
    [leases] = blocks(tutorial, "3. Leases: take an item, and give it back if you fail", "sh")
    [worker] = blocks(tutorial, "4. A worker", "sh")
    env, url = shell_env(environ=home.env), f"unix://{home.socket}"
    run_lines(toured + worked, env, tmp_path)
    assert check_comments(run_lines(fresh + pulled + leases, env, tmp_path)) == 14
    assert check_comments(run_lines(worker, env, tmp_path), statuses={"psctl work": 123}) == 4

    [cron] = blocks(tutorial, "5. From cron", "sh")
    (tmp_path / "process-one").write_text("#!/bin/sh\ncat >> done.txt\n")
    (tmp_path / "process-one").chmod(0o755)
    check_comments(run_lines(cron, env, tmp_path, url))
    assert (tmp_path / "done.txt").read_text() == "write report"  # what step 3 left in jobs

    [library] = blocks(tutorial, "6. The library", "python")
    assert run_python(library, {}, tutorial) == 3
    assert capsys.readouterr().out == "sending to alan@example.org\n1 1\n"
    failed, dead = [record for record in caplog.records if record.name == "psctl.worker"]  # as the page says
    assert failed.exc_info is not None and repr(failed.exc_info[1]) == "ValueError('no recipient')"
    assert dead.getMessage() == "mail: 'm-2' is dead after 1 delivery: ValueError: no recipient"
    assert f"`{dead.getMessage()}`" in " ".join(docs.section(tutorial, "6. The library").split())

    [stop] = blocks(tutorial, "7. Done for now", "sh")
    check_comments(run_lines(stop, env, tmp_path))
    assert home.servers() == []


# -- the README --------------------------------------------------------------------------

FRONT = "Install, and the first job"


def test_the_readme_test_command_is_what_ci_runs() -> None:
    """The README's second command (and the contributors' page) is what .ci/run
    runs, in a fresh venv: pip's editable install of the test extra, then pytest."""
    [commands] = blocks("README.md", FRONT, "sh")
    first, second = commands.splitlines()
    assert second == "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
    [contributing] = blocks("docs/contributing.md", "Running the tests", "sh")
    assert contributing.splitlines()[0] == second
    ci = (ROOT / ".ci" / "run").read_text()
    for step in ("\npython3 -m venv .venv\n. .venv/bin/activate\n", "\npython -m pip install -q -e '.[test]'\n",
                 "\nPSCTL_TEST_SERVER=redis python -m pytest -q -p no:cacheprovider"):  # fmt: skip
        assert step in ci, step


def test_the_readme_tour_runs_as_written(home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The five-minute tour, in order, on the embedded server of a fresh home."""
    tour = "A five-minute tour"
    adding, working, cron = blocks("README.md", tour, "sh")
    env, url = shell_env(environ=home.env), f"unix://{home.socket}"
    assert check_comments(run_lines(adding, env, tmp_path)) == 6
    ran = run_lines(working, env, tmp_path)
    assert check_comments(ran) == 2
    assert ran[1].stdout == "job-1: resize photo.jpg\njob-3: write report\n"  # as the text says
    assert check_comments(run_lines(cron, env, tmp_path, url)) == 1
    [library] = blocks("README.md", tour, "python")
    assert run_python(library, {}, "README.md") == 2
    assert capsys.readouterr().out == "sending mail-1 to: ada@example.org\nsending mail-2 to: alan@example.org\n2\n"


@pytest.mark.slow
def test_the_readme_first_command_works_in_a_fresh_venv_with_an_empty_home() -> None:
    """The README's first line as written, in a copy of the source tree, with
    HOME and the XDG folders empty and no server named: it installs psctl
    (pip may fetch from the package index) and prints the item it pulled, as
    the README shows. Then the tutorial's first step, on that venv."""
    [commands] = blocks("README.md", FRONT, "sh")
    [shown] = blocks("README.md", FRONT, "text")
    [install] = blocks("docs/tutorial.md", "1. Install", "sh")
    first = commands.splitlines()[0]
    assert first.startswith(install.splitlines()[0] + " && ")  # the tutorial installs as the README does
    root = Path(tempfile.mkdtemp(prefix="psctl-"))  # short: the socket's path must fit in 107 bytes
    try:
        shutil.copytree(ROOT, root / "src", ignore=shutil.ignore_patterns(
            ".git", ".venv*", "site", "__pycache__", ".pytest_cache", "*.egg-info", "build", "dist"))  # fmt: skip
        (root / "home").mkdir()
        env = {name: value for name, value in os.environ.items()
               if not name.startswith(("REDIS_", "PSCTL_", "_PSCTL", "XDG_", "PIP_", "VIRTUAL_ENV"))}  # fmt: skip
        env |= {"HOME": str(root / "home"), "PATH": "/usr/local/bin:/usr/bin:/bin"}
        python = Path(sys.executable).resolve()
        if not shutil.which("python3", path=env["PATH"]):  # (a python3 elsewhere: put it first)
            env["PATH"] = f"{python.parent}:{env['PATH']}"
        done = subprocess.run(["bash", "-c", first], cwd=root / "src", env=env, capture_output=True, text=True,
                              timeout=900, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.endswith("\n" + shown)  # (after pip's progress)
        assert "started the embedded server" in done.stderr
        then = subprocess.run(["bash", "-c", install.split("\n", 1)[1]], cwd=root / "src", env=env,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert then.returncode == 0 and re.fullmatch(r"psctl \S+\n", then.stdout), then.stderr
    finally:
        subprocess.run([str(root / "src" / ".venv" / "bin" / "psctl"), "server", "stop", "--force"],
                       env=env, capture_output=True, timeout=60, check=False)  # fmt: skip
        from .helpers import servers_in

        left = servers_in(root / "home" / ".local" / "state" / "psctl")
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"the embedded server was left running: {left}"


# -- the other pages' examples that no test of their subject runs ---------------------------


def test_the_embedded_servers_examples(home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From Python, then the shell: the server runs, stops, and its folder goes (here in HOME's default place)."""
    page = "docs/explanation/embedded-server.md"
    monkeypatch.delenv("XDG_STATE_HOME")
    [python] = blocks("docs/explanation/embedded-server.md", "The embedded server", "python")
    namespace: dict[str, Any] = {}
    exec(compile(python, page, "exec"), namespace)
    assert namespace["redis"].psget("demo", "job-1") == "hello"
    namespace["redis"].close()
    [shell] = blocks("docs/explanation/embedded-server.md", "The embedded server", "sh")
    status, stop, forget = run_lines(shell, shell_env(), tmp_path)  # (HOME's default state folder)

    assert status.status == 0 and json.loads(status.stdout)["running"] is True
    assert stop.status == 0 and json.loads(stop.stdout)["stopped"] is True
    assert forget.status == 0 and not (home.root / ".local" / "state" / "psctl").exists()


def test_the_benchmarks_commands_are_ones_they_take() -> None:
    import tomllib

    from benchmarks.run import parse

    [console] = blocks("docs/explanation/performance.md", "Performance", "console")
    install, *runs = [line.split("  #", 1)[0].strip().removeprefix("$ ") for line in console.splitlines()]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert install == "pip install -e '.[test,hiredis]'" and {"test", "hiredis"} <= extras.keys()
    for run in runs:
        words = run.split()
        assert words[:3] == ["python", "-m", "benchmarks"], run
        parse(words[3:])  # (an argument it does not take exits 2)


def test_the_cluster_example_runs_on_a_cluster(cluster_backend: Any, rc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    page = "docs/howto/cluster.md"
    [code] = blocks("docs/howto/cluster.md", "Redis Cluster", "python")
    monkeypatch.setenv("REDIS_URL", cluster_backend.url)
    namespace: dict[str, Any] = {}
    exec(compile(code.replace("redis://node-1:6379", cluster_backend.url), page, "exec"), namespace)
    assert rc.pskeys("jobs", withscores=True) == [("job-1", 5.0)]
    assert namespace["worker"]() == {"job-1": b"payload"}  # its client injected, a cluster's


def test_the_cron_pages_expire_lines(redis_url: str, r: Any, tmp_path: Path) -> None:
    """The crontab's two expire lines; the second logs what the page shows."""

    page = "docs/howto/cron.md"
    lines, _, _ = blocks("docs/howto/cron.md", "Feed and drain from cron", "sh")  # (its workers: test_examples.py)
    [shown] = blocks("docs/howto/cron.md", "Feed and drain from cron", "json")
    quiet, logged = [line for line in lines.splitlines() if " expire" in line]
    ran = run_lines(quiet.replace("/var/log/", f"{tmp_path}/"), shell_env(redis_url), tmp_path, redis_url)
    assert [(done.status, done.stdout) for done in ran] == [(0, "")]
    for name, count in json.loads(shown)["expired"].items():
        r.psaddmany(name, [(f"{name}-{n}", "v", 1) for n in range(count)])
        r.pspull(name, count=count, expire_at=timedelta(seconds=-1))  # cooling down, and due
    run_lines(logged.replace("/var/log/", f"{tmp_path}/"), shell_env(redis_url), tmp_path, redis_url)
    assert json.loads((tmp_path / "psctl-expire.log").read_text()) == json.loads(shown)


def test_the_loading_examples_load_what_they_say(redis_url: str, r: Any, tmp_path: Path) -> None:
    page = "docs/howto/dump-restore.md"
    [csv] = blocks("docs/howto/dump-restore.md", "Load, dump and restore", "csv")
    [array] = blocks("docs/howto/dump-restore.md", "Load, dump and restore", "json")
    shell, restore = blocks("docs/howto/dump-restore.md", "Load, dump and restore", "sh")
    (tmp_path / "jobs.csv").write_text(csv)
    (tmp_path / "jobs.json").write_text(array)
    ran = run_lines(shell, shell_env(redis_url), tmp_path)
    assert [done.status for done in ran] == [0] * len(ran), ran
    assert r.pskeys("jobs", withscores=True) == [
        ("job-4", 5.0), ("job-5", 5.0), ("job-6", 5.0), ("job-1", 5.0), ("job-3", 2.0), ("job-2", 1.0)
    ] or sorted(r.pskeys("jobs", withscores=True)) == [
        ("job-1", 5.0), ("job-2", 1.0), ("job-3", 2.0), ("job-4", 5.0), ("job-5", 5.0), ("job-6", 5.0)
    ]  # fmt: skip
    assert r.psget("jobs", "job-2") == b"send mail, then log"
    assert r.psitem("jobs", "report")["state"] == "delayed"

    assert check_comments(run_lines(restore, shell_env(redis_url), tmp_path)) == 2
    assert r.pskeys("jobs-restored", withscores=True) == r.pskeys("jobs", withscores=True)


def test_the_flow_control_crontab(redis_url: str, r: Any, tmp_path: Path) -> None:
    [crontab] = blocks("docs/howto/flow-control.md", "Flow control", "text")
    ran = run_lines(crontab, shell_env(redis_url), tmp_path, redis_url)
    assert [(done.status, done.stdout) for done in ran] == [(0, "")] * 3  # -q: nothing printed
    stats = r.psstats("reports") | {"rate": r.psstats("scraper")["rate"]}
    assert (stats["paused"], stats["rate"]) == (False, 50.0)


def test_the_observing_examples(redis_url: str, r: Any, tmp_path: Path) -> None:
    """Each line (but the two that run until stopped: the live table and the
    metrics server, run by their own tests) on a stream holding what they show."""
    page = "docs/howto/observe.md"
    [shell] = blocks("docs/howto/observe.md", "Observe streams", "sh")
    r.psadd("jobs", "job-7", "resize", 5)
    r.pslease("jobs")  # job-7: held
    r.psadd("jobs", "job-8", "x")
    r.pspull("jobs")  # cooling down
    r.psadd("jobs", "job-9", "x")
    r.pspull("jobs", gate=True, expire_at=None)  # gated
    r.psadd("jobs", "later", "x", delay=timedelta(hours=1))
    lines = "".join(line + "\n" for line in shell.splitlines() if not {"--watch", "--serve"} & set(line.split()))
    lines = lines.replace("/var/lib/prometheus/node-exporter/", f"{tmp_path}/")
    ran = run_lines(lines, shell_env(redis_url), tmp_path)
    assert check_comments(ran) == 2
    assert 'psctl_stream_items{state="delayed",stream="jobs"} 1.0' in ran[-2].stdout
    assert "psctl_up 1.0" in (tmp_path / "psctl.prom").read_text()

    [live] = blocks("docs/howto/observe.md", "Observe streams", "text")
    from psctl.cli.observe import LIVE_PRIORITY

    header = live.splitlines()[0].split()
    assert header[0] == "stream" and sorted(header[1:]) == sorted(LIVE_PRIORITY)  # the live table's columns


def test_the_testing_examples_pass(psctl_fake_redis: Any) -> None:
    page = "docs/howto/testing.md"
    [code] = blocks("docs/howto/testing.md", "Test your own code", "python")
    namespace: dict[str, Any] = {}
    exec(compile(code, page, "exec"), namespace)
    namespace["test_next_job_takes_the_most_urgent"]()
    namespace["test_with_the_fixture"](psctl_fake_redis)


def test_the_command_synopsis_and_the_completion_scripts(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from psctl.cli.app import app

    page = "docs/reference/commands.md"
    [synopsis] = blocks("docs/reference/commands.md", "Commands at a glance", "text")
    usage = " ".join(CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout.split())
    for option in re.findall(r"\[(-[-\w]+)", synopsis):
        assert option in usage, option
    version = CliRunner().invoke(app, synopsis.splitlines()[1].split()[1:])
    assert version.exit_code == 0 and version.stdout.startswith("psctl ")

    _, _, completion = blocks("docs/reference/commands.md", "Commands at a glance", "sh")  # (test_cli_docs.py: the others)
    bash, *copies = completion.splitlines()
    done = subprocess.run(["bash", "-c", bash.split("  #", 1)[0] + " && complete -p psctl"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0 and "psctl" in done.stdout, done.stderr
    for line in copies:  # (copied where zsh and fish look: their files are there)
        assert (ROOT / line.split()[1]).is_file(), line


def test_the_output_examples_print_what_they_say(redis_url: str, r: Any, tmp_path: Path) -> None:
    [shell] = blocks("docs/reference/output.md", "Output: a table for you, JSON for programs", "sh")
    r.psaddmany("jobs", [("job-1", "resize", 5), ("job-2", "mail", 8), ("job-3", "report", 1)])
    ran = run_lines(shell, shell_env(redis_url), tmp_path)
    assert [done.status for done in ran] == [0] * 6, ran
    values, count, first, ranked, _, digest = (done.stdout for done in ran)
    assert values == "mail\nresize\nreport\n" and count == "1\n"  # (scores above 5: job-2)
    assert first.count("\n") == 3 and ranked.splitlines()[0].split("\t")[0] == "job-3"
    assert (tmp_path / "stats.csv").read_text().startswith("name,")
    assert digest.split()[0] == __import__("hashlib").sha256(b"resize").hexdigest()
