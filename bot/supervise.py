"""Keep a long-running task alive: restart it with backoff until told to stop.

The bot runs the integrator, the notification delivery and the Discord connection side by side;
none of them may take the others down, and none may stay dead after a transient failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from integrator.backoff import Backoff
from integrator.wake import sleep_or_stop

log = logging.getLogger(__name__)


# A run that lasted this long counts as healthy: the next failure starts from the first delay again.
HEALTHY_AFTER_S = 60.0
DEFAULT_BACKOFF = Backoff(first_s=1.0, max_s=300.0)


async def supervise(
    name: str, run: Callable[[], Awaitable[None]], stop: asyncio.Event, backoff: Backoff = DEFAULT_BACKOFF
) -> None:
    """Run ``run()`` again whenever it ends or fails before ``stop`` is set."""
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            await run()
        except Exception as err:
            log.exception("event=task_failed task=%s error=%s", name, type(err).__name__)
        else:
            if stop.is_set():
                return
            log.warning("event=task_ended task=%s restarting=yes", name)
        if time.monotonic() - started >= HEALTHY_AFTER_S:
            failures = 0
        if await sleep_or_stop(stop, backoff.delay(failures)):
            return
        failures += 1
