"""The bot process: the integrator, the notifications and the Discord connection, side by side.

* The integrator (``integrator.runner.Runner``) runs as a task from the start. It takes the lease
  ``integration/main`` like ``integrator run`` does, so a second bot, or an ``integrator run``
  elsewhere, stands by until the lease is free.
* With ``DISCORD_TOKEN`` the client connects; when Discord cannot be reached (login or connect
  fails) that is logged and retried with backoff, and the integrator is not disturbed.
  Notifications wait in the outbox (consumer ``discord``) and go out in order once connected.
* Without a token, or without a channel to post in, notifications print to the console.

Stopping: the integrator finishes its step and releases the lease; then the notifications it
produced are flushed; then Discord is closed.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from bot.notify import CONSOLE_CONSUMER, DISCORD_CONSUMER, ConsoleSink
from bot.supervise import HEALTHY_AFTER_S, supervise
from integrator import delivery
from integrator.backoff import Backoff
from integrator.config import Config
from integrator.runner import Runner
from integrator.service import Integrator
from integrator.wake import sleep_or_stop

if TYPE_CHECKING:
    from bot.app import IntegratorBot

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 15.0
CONNECT_BACKOFF = Backoff(first_s=2.0, max_s=300.0)
RUNNER_BACKOFF = Backoff(first_s=1.0, max_s=60.0)

ClientFactory = Callable[[Integrator], "IntegratorBot"]


class BotRuntime:
    """Runs until ``stop`` is set. ``client_factory`` lets tests put a recorder where HTTP would be."""

    def __init__(
        self,
        cfg: Config,
        *,
        token: str | None,
        holder: str | None = None,
        sync_commands: bool = True,
        console: TextIO | None = None,
        client_factory: ClientFactory | None = None,
        connect_backoff: Backoff = CONNECT_BACKOFF,
        runner_backoff: Backoff = RUNNER_BACKOFF,
    ) -> None:
        self.cfg = cfg
        self.token = token or None
        self.holder = holder
        self.sync_commands = sync_commands
        self.console = console if console is not None else sys.stdout
        self.client_factory = client_factory or self._default_client
        self.connect_backoff = connect_backoff
        self.runner_backoff = runner_backoff
        self.integ: Integrator | None = None
        self.runner: Runner | None = None
        self.client: IntegratorBot | None = None
        self.connect_attempts = 0
        self.started = asyncio.Event()

    @property
    def posts_to_discord(self) -> bool:
        return self.token is not None and self.cfg.discord.channel_id is not None

    def _default_client(self, integ: Integrator) -> IntegratorBot:
        from bot.app import IntegratorBot  # headless runs never import discord

        return IntegratorBot(integ, sync_commands=self.sync_commands)

    async def run(self, stop: asyncio.Event) -> None:
        async with await Integrator.open(self.cfg) as integ:
            self.integ = integ
            if self.posts_to_discord:
                # Before the first connection attempt: what happens while Discord is unreachable at
                # start-up must wait for it, not be skipped by a cursor created later.
                await delivery.register(integ.store, DISCORD_CONSUMER)
            after = asyncio.Event()  # set once the integrator has stopped: the rest flushes after it
            tasks = [asyncio.create_task(self._integrate(integ, stop), name="integrator")]
            if not self.posts_to_discord:
                sink = ConsoleSink(self.console)
                tasks.append(
                    asyncio.create_task(
                        supervise(
                            "console-delivery",
                            lambda: delivery.deliver_forever(
                                integ.store, CONSOLE_CONSUMER, sink, after, clock=integ.clock
                            ),
                            after,
                        ),
                        name="console-delivery",
                    )
                )
            if self.token is not None:
                tasks.append(
                    asyncio.create_task(
                        supervise(
                            "discord", lambda: self._discord(integ, after), after, self.connect_backoff
                        ),
                        name="discord",
                    )
                )
            log.info(
                "event=bot_started discord=%s channel=%s holder=%s",
                "yes" if self.token else "no (headless)",
                self.cfg.discord.channel_id,
                self.holder or "default",
            )
            self.started.set()
            try:
                await stop.wait()
                await tasks[0]
                after.set()
                if tasks[1:]:
                    await asyncio.wait(tasks[1:], timeout=FLUSH_TIMEOUT_S)
            finally:
                # Whatever has not flushed by now stays in the outbox for the next start.
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        log.info("event=bot_stopped")

    async def _integrate(self, integ: Integrator, stop: asyncio.Event) -> None:
        async def once() -> None:
            # A fresh Runner each time: one that lost its lease stays stopped by design.
            self.runner = Runner(self.cfg, integ.store, holder=self.holder, clock=integ.clock)
            await self.runner.run(stop)

        await supervise("integrator", once, stop, self.runner_backoff)

    async def _discord(self, integ: Integrator, stop: asyncio.Event) -> None:
        """Connect, and whenever the connection attempt fails or ends, try again with backoff."""
        assert self.token is not None
        failures = 0
        while not stop.is_set():
            client = self.client_factory(integ)
            self.client = client
            self.connect_attempts += 1
            started = time.monotonic()
            session = asyncio.create_task(client.start(self.token), name="discord-session")
            stopper = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
                await client.close()
                error = await _outcome(session)
            if stop.is_set():
                return
            if client.logged_in and time.monotonic() - started >= HEALTHY_AFTER_S:
                failures = 0
            delay = self.connect_backoff.delay(failures)
            # Never the token: discord.py's exceptions do not carry it, and we add nothing else.
            log.warning(
                "event=discord_unavailable attempt=%d error=%s retry_in_s=%.1f "
                "detail=the integrator keeps running; notifications wait in the outbox",
                self.connect_attempts,
                error,
                delay,
            )
            if await sleep_or_stop(stop, delay):
                return
            failures += 1


async def _outcome(task: asyncio.Task[None]) -> str:
    """Wait for a closed client's session task and describe how it ended."""
    done, _ = await asyncio.wait({task}, timeout=FLUSH_TIMEOUT_S)
    if not done:
        task.cancel()
        return "the session did not end after close"
    if task.cancelled():
        return "cancelled"
    err = task.exception()
    if err is None:
        return "connection closed"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
