"""The worker engine: items of a stream run on leases by an executor.

- ``options``: what a worker is told (``WorkOptions``), the ``Item`` an executor gets, the ``Tally``;
- ``states``: the worker's states and every transition, as one table;
- ``engine``: the ``Engine`` (supervisor and runners), with ``board`` (what the threads share),
  ``feeder`` (leasing), ``acknowledger`` (reporting), ``leasekeeper`` (extending, giving back)
  and ``patience`` (a server that stopped answering);
- ``executor``: the seam; ``commands`` (with ``commandlane``, ``commandjob``, ``sessions``,
  ``spawning``, ``stderr_tail`` and ``lifeline``) runs a command per item, ``inprocess`` a Python callable;
- ``clock``: the injected clock.
"""

from psctl.work.clock import Clock, ManualClock
from psctl.work.commands import CommandRunner
from psctl.work.engine import Engine
from psctl.work.inprocess import InProcess
from psctl.work.options import Item, Tally, WorkOptions
from psctl.work.states import Event, IllegalTransition, State, WorkState

__all__ = [
    "Clock", "CommandRunner", "Engine", "Event", "IllegalTransition", "InProcess", "Item", "ManualClock", "State",
    "Tally", "WorkOptions", "WorkState",
]  # fmt: skip
