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
