"""The benchmark's cases, in groups.

Each group is a function ``cases(bench) -> list[Case]``; ``run.py`` runs the
groups in this order (``--only`` picks cases by name). A group that needs
another kind of server adds its own module here with its own entry, and the
options it needs in ``run.py`` (the cluster group: ``--no-cluster``); one that
needs a tool that may be missing skips its cases with the reason
(``Case.unavailable``: the bullmq group without node and npm).
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.bench import Bench
from benchmarks.cases import (
    bullmq,
    cli,
    cluster,
    delays,
    flow,
    leases,
    library,
    observe,
    replicas,
    work,
)
from benchmarks.harness import Case

GROUPS: dict[str, Callable[[Bench], list[Case]]] = {
    "library": library.cases,
    "leases": leases.cases,
    "delays": delays.cases,
    "flow": flow.cases,
    "observe": observe.cases,
    "cli": cli.cases,
    "work": work.cases,
    "bullmq": bullmq.cases,  # BullMQ for Node, installed into a cache (skipped without node and npm)
    "replicas": replicas.cases,  # a master and its replica, started here
    "cluster": cluster.cases,  # last: its three servers run until its cases are done
}
