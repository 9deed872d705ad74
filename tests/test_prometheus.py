"""The real thing, end to end (issue 15): a real Prometheus server scrapes
``psctl metrics --serve``, and a real node_exporter reads what
``psctl metrics --textfile`` wrote, which Prometheus scrapes too; the values
are read back through Prometheus's HTTP API. Needs Debian's ``prometheus`` and
``prometheus-node-exporter`` (``.ci/run`` installs them); leave these tests
out with ``-m 'not prometheus'``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from testservers import free_port

from .docs import blocks, command_of
from .helpers import PSCTL

PAGE = "docs/howto/prometheus.md"

pytestmark = pytest.mark.prometheus


def binary(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is not installed: apt-get install prometheus prometheus-node-exporter (or -m 'not prometheus')"
    return found


def started(argv: list[str], log: Path, **options: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, **options)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def stack(redis_url: str, r: Any, tmp_path: Path) -> Iterator[Any]:
    """psctl metrics --serve, node_exporter on a textfile folder, and
    Prometheus scraping both every second."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "PSCTL_"))} | {"REDIS_URL": redis_url}
    psctl_port, node_port, prometheus_port = free_port(), free_port(), free_port()
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    config = tmp_path / "prometheus.yml"
    [scrape] = blocks(PAGE, "Prometheus and node_exporter", "yaml")  # the page's, scraping every second here
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        + scrape.replace("127.0.0.1:9808", f"127.0.0.1:{psctl_port}").replace("interval: 15s", "interval: 1s")
        + f"  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n"
    )
    [crontab] = blocks(PAGE, "Prometheus and node_exporter", "text")  # the textfile written as cron would
    textfile_command = command_of(crontab.strip()).replace("/var/lib/prometheus/node-exporter", str(textfiles))
    processes = [
        started([str(PSCTL), "metrics", "--serve", f"127.0.0.1:{psctl_port}"], tmp_path / "psctl.log", env=env),
        started([binary("prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{node_port}",
                 "--collector.disable-defaults", "--collector.textfile",
                 f"--collector.textfile.directory={textfiles}"], tmp_path / "node.log"),  # fmt: skip
        started([binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                 f"--web.listen-address=127.0.0.1:{prometheus_port}"], tmp_path / "prometheus.log"),  # fmt: skip
    ]

    class Stack:
        def write_textfile(self) -> None:
            path = f"{PSCTL.parent}:{os.environ['PATH']}"
            subprocess.run(["bash", "-c", textfile_command], env=env | {"PATH": path}, check=True)

        def query(self, promql: str) -> list[dict[str, Any]]:
            url = f"http://127.0.0.1:{prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
            reply = json.loads(urllib.request.urlopen(url, timeout=5).read())
            assert reply["status"] == "success", reply
            return reply["data"]["result"]  # type: ignore[no-any-return]

        def value(self, promql: str, timeout: float = 60) -> float:
            """The query's one value, once Prometheus has it (it scrapes every second)."""
            deadline = time.monotonic() + timeout
            while True:
                for process in processes:
                    assert process.poll() is None, f"{process.args[0]} exited: see {tmp_path}/*.log"
                try:
                    found = self.query(promql)
                except OSError:  # Prometheus is not up yet
                    found = []
                if found:
                    return float(found[0]["value"][1])
                assert time.monotonic() < deadline, f"Prometheus never had {promql}: see {tmp_path}/*.log"
                time.sleep(0.5)

    try:
        yield Stack()
    finally:
        for process in processes:
            stop(process)


@pytest.mark.slow
def test_prometheus_scrapes_psctl_and_node_exporter_reads_its_textfile(stack: Any, r: Any) -> None:
    r.psaddmany("jobs", [("a", "1", 5), ("b", "2", 3), ("c", "3", 1)])
    r.pspull("jobs")
    r.pslease("jobs")
    r.pslimit("jobs", rate=30, per=timedelta(minutes=1), max_held=4)
    r.pspause("jobs")
    stack.write_textfile()
    served = 'psctl_stream_items{job="psctl", stream="jobs", state="%s"}'
    assert stack.value(served % "waiting") == 1
    assert stack.value(served % "held") == 1
    assert stack.value('psctl_items_total{job="psctl", stream="jobs", event="added"}') == 3
    assert stack.value('psctl_up{job="psctl"}') == 1
    from_textfile = 'psctl_stream_items{job="node", stream="jobs", state="cooling"}'
    assert stack.value(from_textfile) == 1
    assert stack.value('psctl_items_total{job="node", stream="jobs", event="pulled"}') == 1
    # the flow control (SPEC §12), served and from the textfile
    assert stack.value('psctl_paused{job="psctl", stream="jobs"}') == 1
    assert stack.value('psctl_rate_limit_per_second{job="psctl", stream="jobs"}') == 0.5
    assert stack.value('psctl_max_held{job="psctl", stream="jobs"}') == 4
    assert stack.value('psctl_rate_limit_burst{job="node", stream="jobs"}') == 30
    assert stack.value('psctl_rate_limit_tokens{job="node", stream="jobs"}') == 30
    # a change shows up at the next scrape of psctl, and in the textfile once it is written again
    r.psaddmany("jobs", [("d", "4", 1), ("e", "5", 1)])
    deadline = time.monotonic() + 60
    while stack.value(served % "waiting") != 3:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    stack.write_textfile()
    while stack.value('psctl_stream_items{job="node", stream="jobs", state="waiting"}') != 3:
        assert time.monotonic() < deadline
        time.sleep(0.5)
