"""``python -m psctl.cli``: the same as ``psctl``."""

from psctl.cli import main

main()
