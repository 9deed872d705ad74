"""``python -m benchmarks``: psctl against plain redis-py, side by side (issue 5).

Starts its own server with psctl's launcher (a unix socket in a temporary
folder), unless ``--url`` names one, whose database is FLUSHED, and a
3-master Redis Cluster on loopback for the cluster cases (``--no-cluster``
skips them). Runs every case's baseline and psctl sides interleaved for
several rounds, then the longest single calls (SLOWLOG), and prints one
table: figures as min–median–max, the ratio of the medians, the target of
issue 5 and a verdict.

Exit status: 0 when every case ran (whatever the verdicts: no timing is
asserted), 1 when a case failed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from benchmarks import report
from benchmarks.bench import FULL, QUICK, Bench
from benchmarks.cases import GROUPS
from benchmarks.harness import Row, run_case
from benchmarks.longest import longest_calls
from benchmarks.node import BullMQ
from psctl.launcher import find_binary, server_version
from testservers import ServerProcess, start_server


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast run (proves the harness works; figures are noisy)")
    parser.add_argument("--url", help="use this server instead of starting one (its database is FLUSHED)")
    parser.add_argument("--server", help="binary for the server started: valkey, redis or a path (default: the launcher's choice)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per case")
    parser.add_argument("--items", type=int, help="items per add / pull / expire run")
    parser.add_argument("--only", help="comma-separated case names to run (e.g. add,pull)")
    parser.add_argument("--no-longest", action="store_true", help="skip the longest-call (SLOWLOG) measurements")
    parser.add_argument("--no-cluster", action="store_true", help="skip the cases that start a 3-master Redis Cluster")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1 or args.items is not None and args.items < 10:
        parser.error("--rounds must be >= 1 and --items >= 10")
    return args


def machine(b: Bench, server: ServerProcess | None) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if server is not None:
        where = f"{server.binary.name} {server_version(server.binary)} (started here, unix socket)"
    else:
        info = b.plain.info("server")
        version = info.get("valkey_version") or info.get("redis_version")
        where = f"{info.get('server_name', 'redis')} {version} at --url"
    try:
        import hiredis

        parser = f"hiredis {hiredis.__version__}"
    except ImportError:
        parser = "pure-Python parser"
    if isinstance(b.__dict__.get("bullmq"), BullMQ):  # installed for the bullmq cases
        node = subprocess.run([b.bullmq.node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
        where += f"; BullMQ {b.bullmq.version} on Node {node} (ioredis, same server)"
    if "cluster" in b.__dict__:  # started by a cluster case
        binary = b.binary.name if b.binary else "the launcher's server"
        where += f"; cluster: {len(b.cluster.nodes)} masters of {binary} (loopback TCP, started here)"
    s = b.sizes
    return "\n".join(
        [
            f"Machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
            f"Python {platform.python_version()}, redis-py {redis.__version__} ({parser}); server: {where}",
            f"Sizes: {s.items:,} items of {s.value_size} bytes, {s.chunk} per call, {s.streams} streams for expire, "
            f"{s.calls:,} single calls per round (runs of {min(s.run_calls, s.calls)}), {s.cli_rows:,} CLI rows, "
            f"{s.wake_items} delayed items to wake for, {s.peer_items:,} jobs per BullMQ run; {s.rounds} interleaved rounds"
            + (f", {s.cold_runs} cold starts per round" if s.cold_runs > 1 else ""),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = dataclasses.replace(sizes, rounds=args.rounds)
    if args.items:
        sizes = dataclasses.replace(sizes, items=args.items)
    only = set(args.only.split(",")) if args.only else None

    def progress(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="psbench-") as tmp:
        server = None
        if args.url is None:
            folder = Path(tmp) / "server"
            server = start_server(folder, binary=find_binary(args.server), unixsocket=folder / "redis.sock")
        binary = find_binary(args.server) if args.server or server is None else server.binary
        bench = Bench(args.url or server.url, sizes, Path(tmp), binary=binary)  # type: ignore[union-attr]
        try:
            groups = [group for name, group in GROUPS.items() if not (args.no_cluster and name == "cluster")]
            cases = [case for group in groups for case in group(bench)]
            if only is not None:
                unknown = only - {case.name for case in cases}
                if unknown:
                    print(f"unknown case(s): {', '.join(sorted(unknown))}", file=sys.stderr)
                    return 2
                cases = [case for case in cases if case.name in only]
            started = time.perf_counter()
            rows: list[Row] = []
            for case in cases:
                progress(f"{case.name} ...")
                rows += run_case(case, sizes.rounds, progress)
            rows = report.fold_skipped(rows)
            bench.stop_cluster()  # the cluster cases are done
            if not args.no_longest:
                progress("longest calls ...")
                rows += longest_calls(bench, cases, runs=1 if args.quick else 3)
            elapsed = time.perf_counter() - started
            print(machine(bench, server))
            print()
            print(report.table(rows))
            print()
            print(report.legend(rows))
            print()
            print(f"{report.summary(rows)} ({elapsed:.0f} s)")
            if args.json:
                args.json.write_text(json.dumps([dataclasses.asdict(row) | {"unit": row.unit.value, "target": str(row.target)} for row in rows], indent=2))
            return 1 if any(row.failed for row in rows) else 0
        finally:
            if server is None:
                bench.flush()  # leave nothing of ours behind
            bench.close()
            if server is not None:
                server.stop()
