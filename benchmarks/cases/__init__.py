"""The benchmark's cases, in groups.

Each group is a function ``cases(bench) -> list[Case]``; ``run.py`` runs the
groups in this order (``--only`` picks cases by name). A group that needs
another kind of server adds its own module here with its own entry, and the
options it needs in ``run.py`` (the cluster group: ``--no-cluster``).
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.bench import Bench
from benchmarks.cases import cli, cluster, delays, leases, library, observe, work
from benchmarks.harness import Case

GROUPS: dict[str, Callable[[Bench], list[Case]]] = {
    "library": library.cases,
    "leases": leases.cases,
    "delays": delays.cases,
    "observe": observe.cases,
    "cli": cli.cases,
    "work": work.cases,
    "cluster": cluster.cases,  # last: its three servers run until its cases are done
}
