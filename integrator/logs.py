"""The one logging setup of the long-running processes (``integrator run``, ``teleclaude-bot``).

Lines go to stderr as ``<time> <LEVEL> <logger> event=… key=value``, so a supervisor's journal and a
person reading a terminal see the same thing from either process.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(level: int) -> None:
    """Send every logger's records at ``level`` and above to stderr (once per process)."""
    logging.basicConfig(level=level, stream=sys.stderr, format=FORMAT)
