"""BullMQ for Node, the peer of the bullmq cases: installed once into a cache
folder, then run by ``benchmarks/bullmq/bench.mjs``.

``benchmarks/bullmq/package.json`` pins BullMQ (and ioredis, its Redis
client) to exact versions and ``package-lock.json`` every package below them;
``npm ci`` installs exactly those into ``~/.cache/psctl/benchmarks/node/<lock
hash>/`` (``$XDG_CACHE_HOME`` is honoured), into a fresh folder renamed into
place once complete, so that a broken install is never taken for a finished
one and a changed lock installs anew. Nothing is written into the checkout.
Without ``node`` and ``npm``, or when the install fails (no registry), the
cases are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "bullmq"
SCRIPT = HERE / "bench.mjs"
INSTALL_TIMEOUT = 100  # seconds for npm ci (a few seconds with a registry that answers)
RUN_TIMEOUT = 600  # seconds for one run of bench.mjs


def pinned_version() -> str:
    return json.loads((HERE / "package.json").read_text())["dependencies"]["bullmq"]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "psctl" / "benchmarks" / "node"


@dataclass(frozen=True)
class BullMQ:
    """An installed BullMQ: ``modules`` holds its ``node_modules``."""

    node: str
    modules: Path
    version: str

    def run(self, connection: dict[str, Any], count: int, concurrency: int) -> dict[str, Any]:
        """One run of bench.mjs: fills the queue with ``count`` jobs, then works
        them at ``concurrency`` (0: only fills). Its JSON line."""
        argv = [self.node, str(SCRIPT), str(self.modules), json.dumps(connection), str(count), str(concurrency)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"bench.mjs exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def install() -> BullMQ | str:
    """BullMQ, installed if it is not yet; or why it cannot be."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return f"no {'node' if node is None else 'npm'} on PATH"
    lock = (HERE / "package-lock.json").read_bytes()
    folder = cache_root() / hashlib.sha256(lock + (HERE / "package.json").read_bytes()).hexdigest()[:16]
    version = pinned_version()
    if not (folder / "node_modules" / "bullmq" / "package.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(prefix=".install-", dir=folder.parent))
        try:
            shutil.copy(HERE / "package.json", fresh)
            shutil.copy(HERE / "package-lock.json", fresh)
            # (--ignore-scripts: msgpackr's optional native part comes prebuilt, nothing is compiled)
            argv = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error", "--fetch-retries=1"]
            try:
                done = subprocess.run(argv, cwd=fresh, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"npm ci of bullmq {version} failed: {exc}"
            if done.returncode != 0:
                last = (done.stderr or done.stdout).strip().splitlines()
                return f"npm ci of bullmq {version} failed (exit {done.returncode}: {last[-1] if last else ''})"
            try:
                fresh.rename(folder)
            except OSError:  # another run installed it meanwhile
                if not folder.is_dir():
                    raise
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
    return BullMQ(node, folder, version)
