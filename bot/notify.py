"""Where outbox notifications go: the Discord channel, or the console when running headless.

Both are ``send`` callables for :func:`integrator.delivery.deliver_forever`, which acks a
notification only after ``send`` returns and retries the head with backoff when it raises. So a
``send`` raises for anything that may pass later (Discord down, rate limits, missing permissions an
admin can grant) and returns for what never will, after making the failure visible.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TextIO

from integrator.notices import notification_line
from integrator.notifications import IntegrationBlocked
from integrator.outbox import Notification
from teleclaude.adapters.discord_render import NotificationError

if TYPE_CHECKING:
    import discord

    from teleclaude.adapters.discord_adapter import (
        DiscordAdapter,  # it imports discord: headless runs never load it
    )

log = logging.getLogger(__name__)

# (blocked payload) -> the store's untrimmed evidence for it, or None.
EvidenceLookup = Callable[[IntegrationBlocked], Awaitable[dict[str, Any] | None]]

# Outbox consumers: each keeps its own cursor, so the console and Discord never share progress.
CONSOLE_CONSUMER = "console"
DISCORD_CONSUMER = "discord"
# Discord's "bad request": the body itself is what it refuses, so sending it again cannot help.
PERMANENT_HTTP_STATUS = 400


class ConsoleSink:
    """One line per notification (the same lines ``integrator run`` prints)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    async def __call__(self, note: Notification) -> None:
        print(notification_line(note), file=self.out, flush=True)


class DiscordSink:
    """Posts each notification to the configured channel through the adapter."""

    def __init__(
        self,
        client: discord.Client,
        adapter: DiscordAdapter,
        channel_id: int,
        evidence: EvidenceLookup | None = None,
    ) -> None:
        self.client = client
        self.adapter = adapter
        self.channel_id = channel_id
        self.evidence = evidence

    def channel(self) -> discord.abc.Messageable:
        import discord

        found = self.client.get_channel(self.channel_id)
        if isinstance(found, discord.abc.Messageable):
            return found
        # Not cached yet (no gateway READY): REST needs only the id.
        return self.client.get_partial_messageable(self.channel_id)

    async def __call__(self, note: Notification) -> None:
        import discord

        channel = self.channel()
        full = None
        if isinstance(note.payload, IntegrationBlocked) and self.evidence is not None:
            # The notification carries the trimmed evidence; the attached file gets the store's full text.
            full = await self.evidence(note.payload)
        try:
            await self.adapter.send(channel, note, full or None)
            return
        except NotificationError as err:
            problem = f"{err}"
        except discord.HTTPException as err:
            if err.status != PERMANENT_HTTP_STATUS:
                raise
            problem = f"Discord refused it ({err.status} {err.code}: {err.text})"
        # Permanent: retrying would wedge every later notification behind this one. Say so in the
        # channel (same nonce, still one message per row), log it, and let the cursor move on.
        log.error(
            "event=notification_undeliverable consumer=discord id=%d kind=%s error=%s",
            note.id,
            note.kind,
            problem,
        )
        await self.adapter.send_undeliverable(channel, note, problem)
