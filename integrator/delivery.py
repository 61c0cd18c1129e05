"""Delivering the outbox to one consumer (console, discord): in order, retried with backoff, acked once sent."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from integrator import outbox
from integrator.events import utcnow
from integrator.store import Store

log = logging.getLogger(__name__)

Send = Callable[[outbox.Notification], Awaitable[None]]
RECHECK_S = 1.0  # picks up notifications written by other processes


async def register(store: Store, consumer: str, *, from_start: bool = False) -> None:
    """Give ``consumer`` its cursor now, so nothing written from here on can be skipped by it."""
    await store.write(lambda c: outbox.register(c, consumer, from_start=from_start))


async def retry_now(store: Store, consumer: str) -> None:
    """The consumer's channel is back: try its head at once instead of waiting out the backoff."""
    await store.write(lambda c: outbox.retry_now(c, consumer))
    store.notify()


async def deliver_pending(
    store: Store, consumer: str, send: Send, *, clock: Callable[[], datetime] = utcnow
) -> int:
    """Send what is pending, in order; stop at the first failure (it is retried later). Returns sent count."""
    sent = 0
    while True:
        batch = await store.write(lambda c: outbox.pending(c, consumer, now=clock().timestamp()))
        if not batch:
            return sent
        for note in batch:
            try:
                await send(note)
            except Exception as err:  # any delivery failure: back off, never lose or skip the notification
                error = f"{type(err).__name__}: {err}"
                await store.write(
                    functools.partial(outbox.fail, consumer=consumer, error=error, now=clock().timestamp())
                )
                log.warning("event=delivery_failed consumer=%s id=%d error=%s", consumer, note.id, error)
                return sent
            await store.write(functools.partial(outbox.ack, consumer=consumer, notification_id=note.id))
            sent += 1


async def deliver_forever(
    store: Store, consumer: str, send: Send, stop: asyncio.Event, *, clock: Callable[[], datetime] = utcnow
) -> None:
    """Deliver until ``stop``; woken by in-process writes, and re-checks once a second for the rest."""
    await register(store, consumer)
    while not stop.is_set():
        store.changed.clear()
        await deliver_pending(store, consumer, send, clock=clock)
        waiter = asyncio.create_task(store.changed.wait())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, timeout=RECHECK_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, stopper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    await deliver_pending(store, consumer, send, clock=clock)
