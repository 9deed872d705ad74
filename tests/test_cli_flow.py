"""Flow control from the command line (SPEC §12, issue 24): ``pause``,
``resume``, ``limit`` (show, set, clear, and bad input refused with nothing
written), and the limits in ``stats``, its live table and ``metrics``."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from psctl.cli.status import ExitStatus

from .helpers import Cli
from .test_cli_observe import samples

NO_LIMITS = {"paused": False, "rate": None, "per": None, "burst": None, "max_held": None, "aging": None}


@pytest.fixture
def cli(redis_url: str, r: Any) -> Cli:
    return Cli(redis_url)


def jobs(r: Any, n: int = 10) -> None:
    r.psaddmany("jobs", [(f"job-{i}", f"v{i}", i) for i in range(n)])


# -- pause and resume ---------------------------------------------------------------


def test_pause_and_resume_say_whether_they_changed_anything(cli: Cli, r: Any) -> None:
    jobs(r)
    assert cli.ok("pause", "jobs") == {"name": "jobs", "paused": True, "changed": True}
    assert cli.ok("pause", "jobs") == {"name": "jobs", "paused": True, "changed": False}
    assert cli.ok("pull", "jobs") == []  # a paused stream hands nothing out
    assert cli.ok("lease", "jobs")["items"] == []
    assert cli.ok("add", "jobs", "new", "v")["added"] is True  # adds go on
    assert cli.ok("stats", "jobs")[0]["paused"] is True
    assert cli.ok("resume", "jobs") == {"name": "jobs", "paused": False, "changed": True}
    assert cli.ok("resume", "jobs") == {"name": "jobs", "paused": False, "changed": False}
    assert cli.ok("pull", "jobs") == [{"key": "job-9", "value": "v9"}]
    assert r.psstats("jobs")["paused"] is False


def test_pause_prints_true_or_false_raw_and_nothing_quiet(cli: Cli, r: Any) -> None:
    assert cli("pause", "jobs", "-o", "raw").stdout == "true\n"
    assert cli("pause", "jobs", "-o", "raw").stdout == "false\n"
    quiet = cli("resume", "jobs", "-q")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    assert r.psstats("jobs")["paused"] is False
    table = cli("pause", "jobs", "--table")
    assert table.exit_code == 0 and "paused" in table.stdout and "yes" in table.stdout


def test_pausing_a_mistyped_stream_says_which_was_meant(cli: Cli, r: Any) -> None:
    jobs(r)
    done = cli("pause", "jbos")
    assert done.exit_code == 0 and json.loads(done.stdout)["changed"] is True
    assert done.stderr == "psctl: no stream 'jbos'; did you mean 'jobs'?\n"


# -- limit: show, set, clear --------------------------------------------------------


def test_limit_alone_shows_the_limits_and_tokens_left(cli: Cli, r: Any) -> None:
    jobs(r)
    assert cli.ok("limit", "jobs") == {"name": "jobs", **NO_LIMITS, "tokens": None}
    r.pslimit("jobs", rate=10, per=timedelta(minutes=1), burst=5, max_held=3)
    r.pspause("jobs")
    assert cli.ok("limit", "jobs") == {
        "name": "jobs", "paused": True, "rate": 10, "per": 60.0, "burst": 5, "max_held": 3, "aging": None,
        "tokens": 5.0,
    }  # fmt: skip
    assert cli("limit", "jobs", "-o", "csv").stdout == (
        "name,paused,rate,per,burst,max_held,aging,tokens\njobs,true,10,60,5,3,,5\n"
    )
    table = cli("limit", "jobs", "--table").stdout
    for shown in ("paused", "yes", "rate", "10", "per", "60s", "burst", "max_held", "3", "tokens", "5"):
        assert shown in table, shown


def test_tokens_go_down_with_each_pull(cli: Cli, r: Any) -> None:
    jobs(r)
    assert cli.ok("limit", "jobs", "--rate", "10/1m", "--burst", "5")["burst"] == 5
    assert 5 <= cli.ok("limit", "jobs")["tokens"] <= 5
    assert len(cli.ok("pull", "jobs", "--count", "3")) == 3
    assert 2 <= cli.ok("limit", "jobs")["tokens"] < 2.1  # (10 a minute: a token every 6 s)
    assert len(cli.ok("pull", "jobs", "--count", "5")) == 2  # at most the tokens left
    assert 0 <= cli.ok("limit", "jobs")["tokens"] < 0.1
    assert cli.ok("pull", "jobs") == []
    assert "0 left" in cli("stats", "jobs", "--table").stdout


def test_limit_sets_exactly_the_limits_given_and_shows_them_all(cli: Cli, r: Any) -> None:
    jobs(r)
    r.pspause("jobs")
    assert cli.ok("limit", "jobs", "--rate", "50/s") == {
        "name": "jobs", "paused": True, "rate": 50, "per": 1.0, "burst": 50, "max_held": None, "aging": None,
    }  # fmt: skip
    # declarative: what is not given is no limit (and shown as null); the pause stays
    assert cli.ok("limit", "jobs", "--max-held", "4") == {"name": "jobs", **NO_LIMITS, "paused": True, "max_held": 4}
    assert r.psstats("jobs")["rate"] is None and r.psstats("jobs")["max_held"] == 4
    both = cli.ok("limit", "jobs", "--rate", "100/1m", "--burst", "10", "--max-held", "4")
    assert (both["rate"], both["per"], both["burst"], both["max_held"]) == (100, 60.0, 10, 4)
    table = cli("limit", "jobs", "--rate", "3/2h", "--table")
    assert table.exit_code == 0 and "a limit not given is none" in table.stdout and "2h" in table.stdout
    assert r.psstats("jobs")["max_held"] is None


@pytest.mark.parametrize(
    "rate, expected",
    [("50/s", (50, 1.0, 50)), ("100/1m", (100, 60.0, 100)), ("3/2h", (3, 7200.0, 3)), ("0.5/s", (0.5, 1.0, 1)),
     ("2.5/m", (2.5, 60.0, 3)), ("10/1h30m", (10, 5400.0, 10)), (" 7 / 90s ", (7, 90.0, 7)), ("1/500ms", None)],
    ids=str,
)  # fmt: skip
def test_rate_takes_n_per_duration(cli: Cli, r: Any, rate: str, expected: Any) -> None:
    if expected is None:  # (not a DURATION: no milliseconds)
        assert "'1/500ms'" in cli.fails(ExitStatus.USAGE, "limit", "jobs", "--rate", rate)
        return
    shown = cli.ok("limit", "jobs", "--rate", rate)
    assert (shown["rate"], shown["per"], shown["burst"]) == expected
    stored = r.psstats("jobs")
    assert (stored["rate"], stored["per"].total_seconds(), stored["burst"]) == expected


def test_aging_is_set_shown_and_cleared_with_the_others(cli: Cli, r: Any, k: Any) -> None:
    r.psadd("jobs", "old", "v", score=0)
    shown = cli.ok("limit", "jobs", "--aging", "1m", "--max-held", "3")
    assert (shown["aging"], shown["max_held"], shown["rate"]) == (60.0, 3, None)
    assert r.pslimit("jobs", aging=60, max_held=3)["aging"] == timedelta(minutes=1)  # the same, set again
    assert cli.ok("limit", "jobs")["aging"] == 60.0
    table = cli("stats", "jobs", "--table")
    assert table.exit_code == 0 and "aging +1 per 60s" in table.stdout
    assert cli.ok("limit", "jobs", "--clear")["aging"] is None
    assert r.psstats("jobs")["aging"] is None and 0 <= r.psscores("jobs", ["old"])[0] < 0.01


def test_clear_removes_the_limits_and_keeps_a_pause(cli: Cli, r: Any, k: Any) -> None:
    r.pslimit("jobs", rate=5, max_held=2)
    r.pspause("jobs")
    assert cli.ok("limit", "jobs", "--clear") == {"name": "jobs", **NO_LIMITS, "paused": True}
    assert r.hgetall(k("jobs").limits) == {b"paused": b"1"}
    cli.ok("resume", "jobs")
    assert cli.ok("limit", "jobs", "--clear") == {"name": "jobs", **NO_LIMITS}
    assert r.exists(k("jobs").limits) == 0


@pytest.mark.parametrize(
    "args, said",
    [
        (["--rate", "0/s"], "above 0"),
        (["--rate", "-5/s"], "not a rate"),
        (["--rate", "x/s"], "not a rate"),
        (["--rate", "5/"], "not a rate"),
        (["--rate", "5"], "not a rate"),
        (["--rate", "/s"], "not a rate"),
        (["--rate", "nan/s"], "not a rate"),
        (["--rate", "inf/s"], "not a rate"),
        (["--rate", "1e3/s"], "not a rate"),
        (["--rate", "5/0"], "at least 0.001s (1 ms)"),
        (["--rate", "5/xs"], "'xs' is not a duration"),
        (["--rate", "5/-1s"], "not a duration"),
        (["--rate", "2000000000/s"], "at most"),
        (["--rate", "1/0.0001s"], "at least 0.001s (1 ms)"),
        (["--rate", "0.00000000000000001/s"], "at least one item per 1,000,000,000 seconds"),
        (["--burst", "3"], "--burst applies to a rate limit"),
        (["--rate", "5/s", "--burst", "0"], "--burst"),
        (["--rate", "5/s", "--burst", "-1"], "--burst"),
        (["--rate", "5/s", "--burst", "2.5"], "--burst"),
        (["--max-held", "0"], "--max-held"),
        (["--max-held", "-2"], "--max-held"),
        (["--max-held", "x"], "--max-held"),
        (["--clear", "--rate", "5/s"], "--clear"),
        (["--clear", "--max-held", "1"], "--clear"),
        (["--clear", "--aging", "1m"], "--clear"),
        (["--aging", "x"], "--aging"),
        (["--aging", "0s"], "aging"),
        (["--rate", "5/s", "-o", "raw"], "raw"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(cli: Cli, r: Any, k: Any, args: list[str], said: str) -> None:
    r.pslimit("jobs", rate=3, max_held=2)
    before = r.hgetall(k("jobs").limits)
    line = cli.fails(ExitStatus.USAGE, "limit", "jobs", *args)
    assert said in line and line.startswith("psctl"), line
    assert r.hgetall(k("jobs").limits) == before


def test_limit_help_says_what_a_partial_set_does(cli: Cli) -> None:
    shown = cli("limit", "--help").stdout
    assert "N/DURATION" in shown and "--max-held" in shown and "--clear" in shown
    assert "an option left out" in " ".join(shown.split())


def test_the_least_aging_and_period_are_given_as_the_messages_say(cli: Cli, r: Any) -> None:
    # (DURATION has no ms: the help and the message once said "1ms", which is refused)
    assert "At least 0.001 (1 ms)" in " ".join(cli("limit", "--help").stdout.replace("│", " ").split())
    assert cli.ok("limit", "jobs", "--aging", "0.001")["aging"] == 0.001
    assert cli.ok("limit", "jobs", "--rate", "5/0.001s")["per"] == 0.001


# -- stats, the live table and metrics -----------------------------------------------


def test_stats_shows_the_limits_in_json_and_in_the_table(cli: Cli, r: Any) -> None:
    jobs(r)
    r.psadd("mail", "m", "v")
    r.pslimit("jobs", rate=50, max_held=4)
    r.pspause("jobs")
    found = {s["name"]: s for s in cli.ok("stats")}
    assert {field: found["jobs"][field] for field in (*NO_LIMITS, "tokens")} == {
        "paused": True, "rate": 50, "per": 1.0, "burst": 50, "max_held": 4, "aging": None, "tokens": 50.0,
    }  # fmt: skip
    assert {field: found["mail"][field] for field in (*NO_LIMITS, "tokens")} == {**NO_LIMITS, "tokens": None}
    table = cli("stats", "--table", env={"COLUMNS": "200"}).stdout
    assert "limits" in table and "paused · 50/s (50 left) · max 4 held" in table
    mail = next(line for line in table.splitlines() if line.startswith("mail"))
    assert "paused" not in mail


def test_the_live_table_marks_a_paused_stream(r: Any) -> None:
    from rich.console import Console

    from psctl.cli.observe import _live_table

    jobs(r)
    r.psadd("mail", "m", "v")
    r.pspause("jobs")
    r.pslimit("mail", rate=2, per=timedelta(seconds=1))
    console = Console(width=200, record=True, file=open("/dev/null", "w"))
    console.print(_live_table(r.psstatsmany(), {}, 2.0, 200))
    lines = console.export_text().splitlines()
    assert "limits" in lines[0]
    assert "paused" in next(line for line in lines if line.startswith("jobs"))
    assert "2/s (2 left)" in next(line for line in lines if line.startswith("mail"))


def test_metrics_export_the_limits(cli: Cli, r: Any) -> None:
    jobs(r)
    r.psadd("mail", "m", "v")
    r.pslimit("jobs", rate=30, per=timedelta(minutes=1), burst=6, max_held=4, aging=timedelta(minutes=5))
    r.pspause("jobs")
    found = samples(cli("metrics").stdout)
    jobs_label, mail_label = (("stream", "jobs"),), (("stream", "mail"),)
    assert found[("psctl_paused", jobs_label)] == 1 and found[("psctl_paused", mail_label)] == 0
    assert found[("psctl_rate_limit_per_second", jobs_label)] == 0.5
    assert found[("psctl_rate_limit_burst", jobs_label)] == 6
    assert found[("psctl_rate_limit_tokens", jobs_label)] == 6
    assert found[("psctl_max_held", jobs_label)] == 4
    assert found[("psctl_aging_seconds", jobs_label)] == 300
    # a stream with no limits has none of those gauges (absent, as a top score with nothing waiting)
    for gauge in ("psctl_rate_limit_per_second", "psctl_rate_limit_burst", "psctl_rate_limit_tokens",
                  "psctl_max_held", "psctl_aging_seconds"):  # fmt: skip
        assert (gauge, mail_label) not in found
    r.psresume("jobs")
    r.pspull("jobs", count=4)
    after = samples(cli("metrics", "jobs").stdout)
    assert after[("psctl_paused", jobs_label)] == 0
    assert 2 <= after[("psctl_rate_limit_tokens", jobs_label)] < 2.5
