"""Every default that psctl's library, command line and worker share, once.

The command line's help texts, the client methods' signatures and the
worker's options all read these names, so that a default is changed in one
place.
"""

from __future__ import annotations

from datetime import timedelta

COOL_DOWN = timedelta(days=1)  # what a pulled or acknowledged key is kept from coming back for
LEASE = timedelta(minutes=5)  # how long a leased item is held before it is handed out again
MAX_DELIVERIES = 5  # deliveries before an item that keeps failing is dead
RETRY_DELAY = timedelta(seconds=10)  # a failed item's first back-off (psctl work), doubled per delivery
MAX_RETRY_DELAY = timedelta(hours=1)  # the longest back-off
GRACE = timedelta(seconds=30)  # after a stop is asked for, before running commands are stopped
PATIENCE = timedelta(seconds=60)  # how long a server that stopped answering is tried again
