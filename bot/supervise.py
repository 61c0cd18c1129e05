"""Keep a long-running task alive: restart it with backoff until told to stop.

The bot runs the integrator, the notification delivery and the Discord connection side by side;
none of them may take the others down, and none may stay dead after a transient failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from integrator.wake import sleep_or_stop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 1.0
    max_s: float = 300.0
    # A run that lasted this long counts as healthy: the next failure starts from initial_s again.
    healthy_after_s: float = 60.0

    def next(self, delay: float) -> float:
        return min(self.max_s, max(self.initial_s, delay * 2))


async def supervise(
    name: str, run: Callable[[], Awaitable[None]], stop: asyncio.Event, backoff: Backoff = Backoff()
) -> None:
    """Run ``run()`` again whenever it ends or fails before ``stop`` is set."""
    delay = backoff.initial_s
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
        if time.monotonic() - started >= backoff.healthy_after_s:
            delay = backoff.initial_s
        if await sleep_or_stop(stop, delay):
            return
        delay = backoff.next(delay)
