"""``psctl stats`` (and ``--watch``), ``metrics`` (stdout, ``--textfile``,
``--serve``), ``item`` and ``lift`` (SPEC §8, issue 15)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from psctl.cli.status import ExitStatus
from testservers import free_port

from .helpers import DEAD, PSCTL, Cli


@pytest.fixture
def cli(redis_url: str, r: Any) -> Cli:
    return Cli(redis_url)


def env_for(url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_"))}
    return clean | {"REDIS_URL": url}


def two_streams(r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 5), ("b", "2", 3), ("c", "3", 1)])
    r.pspull("jobs", gate=True)  # a
    r.pslease("jobs")  # b
    r.psadd("mail", "m", "v", 2)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a metrics text, by name and labels (parsed by prometheus_client)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


# -- stats ------------------------------------------------------------------------------


def test_stats_of_every_stream_and_of_some(cli: Cli, r: Any) -> None:
    two_streams(r)
    found = cli.ok("stats")
    assert [s["name"] for s in found] == ["jobs", "mail"]
    jobs = found[0]
    assert set(jobs) == {"name", "waiting", "delayed", "next_delayed_due", "held", "overdue", "overdue_capped",
                         "gated", "cooling", "next_cool_down_end", "dead", "top_score", "bottom_score", "counters",
                         "server_time", "paused", "rate", "per", "burst", "max_held", "aging", "tokens"}  # fmt: skip
    assert (jobs["waiting"], jobs["held"], jobs["gated"], jobs["cooling"], jobs["top_score"]) == (1, 1, 1, 1, 1.0)
    assert jobs["counters"]["added"] == 3 and jobs["counters"]["leased"] == 1
    assert jobs["next_cool_down_end"].endswith("Z") and jobs["server_time"].endswith("Z")
    assert [s["name"] for s in cli.ok("stats", "mail", "nope")] == ["mail", "nope"]
    table = cli("stats", "--table")
    assert table.exit_code == 0 and "jobs" in table.stdout and "waiting" in table.stdout


def test_stats_without_streams(cli: Cli) -> None:
    assert cli.ok("stats") == []
    assert "no streams" in cli("stats", "--table").stdout


def test_stats_shows_the_readable_streams_then_names_a_broken_one(cli: Cli, r: Any) -> None:
    two_streams(r)
    r.delete("mail:exp")
    r.set("mail:exp", "not a zset")
    done = cli("stats")
    assert done.exit_code == ExitStatus.SERVER
    assert [s["name"] for s in json.loads(done.stdout)] == ["jobs"]
    assert "stream 'mail'" in done.stderr and "Traceback" not in done.stderr


def test_stats_watch_writes_json_lines_with_rates_until_stopped(redis_url: str, r: Any) -> None:
    two_streams(r)
    watcher = subprocess.Popen([str(PSCTL), "stats", "jobs", "--watch", "0.5s"], env=env_for(redis_url),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert watcher.stdout is not None
        first = json.loads(watcher.stdout.readline())
        r.psaddmany("jobs", [(f"new{i}", "v", 1) for i in range(10)])
        samples = [first]
        while samples[-1]["waiting"] < 11:  # (the next sample, or a later one on a loaded machine)
            assert len(samples) < 40, samples[-1]
            samples.append(json.loads(watcher.stdout.readline()))
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=10)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    assert first["name"] == "jobs" and first["rates"] is None  # nothing to compare with yet
    before, second = samples[-2:]
    seconds = (datetime.fromisoformat(second["server_time"]) - datetime.fromisoformat(before["server_time"])).total_seconds()
    assert 0.4 <= seconds <= 5 and second["waiting"] == 11  # (every 0.5 s, on a loaded machine)
    assert second["rates"]["added"] == pytest.approx(10 / seconds)  # the adds, over the time between the samples
    assert second["rates"]["pulled"] == 0


def test_stats_watch_keeps_a_live_table_on_a_terminal(redis_url: str, r: Any) -> None:
    two_streams(r)
    main, terminal = os.openpty()
    try:
        watcher = subprocess.Popen([str(PSCTL), "stats", "--watch", "0.3s"],
                                   env=env_for(redis_url) | {"COLUMNS": "160", "TERM": "xterm"},
                                   stdout=terminal, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)  # fmt: skip
        os.close(terminal)
        shown, deadline = b"", time.monotonic() + 20
        while shown.count(b"added/s") < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1)
            if ready:
                shown += os.read(main, 65536)
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(10) == 0
    finally:
        os.close(main)
    text = shown.decode("utf-8", "replace")
    assert text.count("added/s") >= 2 and "jobs" in text and "mail" in text and "Ctrl-C to stop" in text


# -- item and lift --------------------------------------------------------------------------


def test_item_says_where_an_item_stands(cli: Cli, r: Any) -> None:
    two_streams(r)
    assert cli.ok("item", "jobs", "c") == {"key": "c", "state": "waiting", "score": 1.0, "deliveries": 0}
    held = cli.ok("item", "jobs", "b")
    assert held["state"] == "held" and held["until"].endswith("Z") and held["deliveries"] == 1
    assert cli.ok("item", "jobs", "a")["state"] == "cooling"
    message = cli.fails(ExitStatus.NOT_FOUND, "item", "jobs", "nope")
    assert "no item 'nope' in stream 'jobs'" in message


def test_lift_ends_gates_and_cool_downs(cli: Cli, r: Any) -> None:
    two_streams(r)
    assert cli.ok("lift", "jobs", "a", "c") == {"lifted": 1}
    assert cli.ok("add", "jobs", "a", "again")["added"] is True


# -- metrics ---------------------------------------------------------------------------


def test_metrics_print_the_prometheus_text_format(cli: Cli, r: Any) -> None:
    two_streams(r)
    done = cli("metrics")
    assert done.exit_code == 0, done.stderr
    found = samples(done.stdout)
    assert found[("psctl_up", ())] == 1
    assert found[("psctl_stream_items", (("state", "waiting"), ("stream", "jobs")))] == 1
    assert found[("psctl_stream_items", (("state", "held"), ("stream", "jobs")))] == 1
    assert found[("psctl_stream_items", (("state", "gated"), ("stream", "jobs")))] == 1
    assert found[("psctl_items_total", (("event", "added"), ("stream", "jobs")))] == 3
    assert found[("psctl_items_total", (("event", "added"), ("stream", "mail")))] == 1
    assert found[("psctl_top_score", (("stream", "mail"),))] == 2
    assert found[("psctl_next_cool_down_end_timestamp_seconds", (("stream", "jobs"),))] > time.time()
    only = samples(cli("metrics", "mail").stdout)
    assert {labels for name, labels in only if name == "psctl_top_score"} == {(("stream", "mail"),)}


def test_metrics_when_the_server_cannot_be_reached(tmp_path: Path) -> None:
    done = Cli(DEAD)("metrics")
    assert done.exit_code == ExitStatus.SERVER
    assert samples(done.stdout) == {("psctl_up", ()): 0}
    assert len(done.stderr.splitlines()) == 1 and "cannot reach the server" in done.stderr
    path = tmp_path / "psctl.prom"
    assert Cli(DEAD)("metrics", "--textfile", str(path)).exit_code == ExitStatus.SERVER
    assert samples(path.read_text()) == {("psctl_up", ()): 0}  # node_exporter sees that it is down


@pytest.mark.slow
def test_textfile_is_written_atomically(redis_url: str, r: Any, tmp_path: Path) -> None:
    """A reader polling the file while psctl rewrites it over and over only ever
    sees a whole file, and no temporary file is left behind."""
    two_streams(r)
    folder = tmp_path / "textfiles"
    folder.mkdir()
    path = folder / "psctl.prom"
    subprocess.run([str(PSCTL), "metrics", "--textfile", str(path)], env=env_for(redis_url), check=True)
    stop, reads, problems = threading.Event(), [0], []

    def reader() -> None:
        while not stop.is_set():
            text = path.read_text()
            reads[0] += 1
            try:
                if samples(text)[("psctl_up", ())] != 1 or not text.endswith("\n"):
                    problems.append(text)
            except Exception as exc:  # noqa: BLE001 - a half-written file
                problems.append(f"{exc}: {text!r}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(12):
            r.psadd("jobs", f"more{i}", "v")
            subprocess.run([str(PSCTL), "metrics", "--textfile", str(path)], env=env_for(redis_url), check=True)
    finally:
        stop.set()
        thread.join()
    assert problems == [] and reads[0] > 12
    assert sorted(p.name for p in folder.iterdir()) == ["psctl.prom"]
    assert samples(path.read_text())[("psctl_stream_items", (("state", "waiting"), ("stream", "jobs")))] == 13


def test_a_textfile_that_cannot_be_written_is_exit_1_and_leaves_nothing(cli: Cli, r: Any, tmp_path: Path) -> None:
    two_streams(r)
    (tmp_path / "psctl.prom").mkdir()  # a folder where the file should go
    message = cli.fails(ExitStatus.SERVER, "metrics", "--textfile", str(tmp_path / "psctl.prom"))
    assert "cannot write" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["psctl.prom"]


def test_metrics_served_over_http_read_the_streams_at_each_scrape(redis_url: str, r: Any) -> None:
    two_streams(r)
    port = free_port()
    server = subprocess.Popen([str(PSCTL), "metrics", "--serve", f"127.0.0.1:{port}"], env=env_for(redis_url),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 20
        while True:
            try:
                first = urllib.request.urlopen(url, timeout=30).read().decode()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.communicate()
                time.sleep(0.1)
        r.psadd("mail", "n", "v")
        second = urllib.request.urlopen(url, timeout=30).read().decode()
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=10)
    finally:
        server.kill()
    assert server.returncode == 0, err
    assert f"serving metrics on http://127.0.0.1:{port}/metrics" in err
    key = ("psctl_stream_items", (("state", "waiting"), ("stream", "mail")))
    assert (samples(first)[key], samples(second)[key]) == (1, 2)


@pytest.mark.parametrize(("options", "said"), [
    (["--serve", "nope"], "give [HOST:]PORT"),
    (["--serve", "1", "--textfile", "x.prom"], "cannot be used together"),
])  # fmt: skip
def test_bad_metrics_options_exit_2(cli: Cli, options: list[str], said: str) -> None:
    assert said in cli.fails(ExitStatus.USAGE, "metrics", *options)
