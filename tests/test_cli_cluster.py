"""Every CLI command with ``--cluster`` on the real 3-master cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from psctl.cli.errors import ExitStatus
from psctl.layout import stream_keys

from .helpers import Cli, counts

PSCTL = str(Path(sys.executable).with_name("psctl"))


class ClusterCli(Cli):
    def __call__(self, *args: str, **kwargs: Any) -> Any:
        return super().__call__("--cluster", *args, **kwargs)


@pytest.fixture
def cli(cluster, rc) -> ClusterCli:
    return ClusterCli(cluster.url)


def test_every_command_on_the_cluster(cli, rc, tmp_path):
    names = [f"jobs-{i}" for i in range(9)]
    for name in names:
        assert cli.ok("add", name, "a", "va", "--score", "5") == {"key": "a", "added": True, "score": 5.0}
    assert len({rc.get_node_from_key(stream_keys(n, cluster=True).values).name for n in names}) == 3
    rows = tmp_path / "rows.ndjson"
    rows.write_text("".join(json.dumps({"key": f"k{i}", "value": str(i), "score": i}) + "\n" for i in range(20)))
    assert cli.ok("add-many", "jobs-0", str(rows)) == counts(20)
    assert cli.ok("len", "jobs-0") == {"name": "jobs-0", "length": 21}
    assert cli.ok("keys", "jobs-0", "--limit", "2") == [{"key": "k19", "score": 19.0}, {"key": "k18", "score": 18.0}]
    assert cli.ok("values", "jobs-0", "--limit", "1") == [{"key": "k19", "value": "19"}]
    assert cli.ok("get", "jobs-0", "a") == {"key": "a", "value": "va"}
    assert cli.ok("incr", "jobs-0", "a", "100") == {"key": "a", "score": 105.0}
    assert cli.ok("pull", "jobs-0", "--count", "2", "--expire-in", "1h") == [
        {"key": "a", "value": "va"},
        {"key": "k19", "value": "19"},
    ]
    assert cli.ok("prune", "jobs-0", "--below", "3") == {"removed": ["k0", "k1", "k2"]}
    assert cli.ok("decr-all", "jobs-0", "1") == {"updated": 16}
    assert cli.ok("remove", "jobs-0", "k3", "k4", "--gate") == {"removed": 2}
    assert cli.ok("names") == sorted(names)
    assert cli.ok("delete", "jobs-1", "--yes") == {"deleted": True}
    assert rc.exists(*stream_keys("jobs-1", cluster=True).all) == 0
    for name in names[2:]:
        rc.pspull(name, expire_at=timedelta(seconds=-1))  # due now
    assert cli.ok("expire") == {"expired": dict.fromkeys(names[2:], 1), "total": 7}
    assert cli.ok("expire") == {"expired": {}, "total": 0}
    assert cli.fails(ExitStatus.NOT_FOUND, "get", "jobs-0", "nope")


def test_flow_control_on_the_cluster(cli, rc):
    """pause, resume, limit and stats on streams that live on different masters,
    each stream's limits in its own hash slot."""
    names = [f"flow-{i}" for i in range(6)]
    for name in names:
        cli.ok("add-many", name, "-", "--format", "ndjson",
               input="".join(json.dumps({"key": f"k{i}", "value": "v", "score": i}) + "\n" for i in range(5)))
    keys = [stream_keys(name, cluster=True) for name in names]
    assert len({rc.get_node_from_key(k.limits).name for k in keys}) == 3
    assert all(rc.keyslot(k.limits) == rc.keyslot(k.values) for k in keys)
    assert cli.ok("pause", "flow-0") == {"name": "flow-0", "paused": True, "changed": True}
    assert cli.ok("pull", "flow-0") == []
    assert cli.ok("limit", "flow-1", "--rate", "2/1m", "--max-held", "3") == {
        "name": "flow-1", "paused": False, "rate": 2.0, "per": 60.0, "burst": 2, "max_held": 3, "aging": None,
    }  # fmt: skip
    assert len(cli.ok("pull", "flow-1", "--count", "5")) == 2  # the burst, then a token every 30 s
    assert 0 <= cli.ok("limit", "flow-1")["tokens"] < 0.1
    found = {s["name"]: s for s in cli.ok("stats", *names)}
    assert found["flow-0"]["paused"] is True and found["flow-2"]["paused"] is False
    assert (found["flow-1"]["rate"], found["flow-1"]["max_held"]) == (2.0, 3) and found["flow-2"]["rate"] is None
    assert cli.ok("resume", "flow-0")["changed"] is True
    assert cli.ok("pull", "flow-0") == [{"key": "k4", "value": "v"}]
    assert cli.ok("limit", "flow-1", "--clear")["rate"] is None
    assert rc.exists(*(k.limits for k in keys)) == 0


def test_server_commands_are_refused_in_cluster_mode(cli):
    message = cli.fails(ExitStatus.USAGE, "server", "status")
    assert "cluster" in message


def test_installed_psctl_with_redis_cluster_env(cluster, rc):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env |= {"REDIS_URL": cluster.url, "REDIS_CLUSTER": "1"}
    done = subprocess.run([PSCTL, "add", "{tag}q", "a", "v"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"key": "a", "added": True, "score": 1.0}
    assert rc.hget("{tag}{tag}q:t", "a") == b"v"  # a name with braces: prefixed with its tag
    assert not rc.exists("{tag}q:t")
