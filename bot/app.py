"""The Discord client: the /integrate tree, the persistent buttons, and the channel's notifications.

``setup_hook`` runs once per client, after login and before the gateway connects: it registers
the commands and the DynamicItem buttons and starts delivering the outbox to the channel. ``close``
stops the delivery (after a last flush) and the launcher's watchers before closing the connection.
The integrator itself is not in here: it runs whether or not Discord is reachable (``bot.runtime``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import discord
from discord import app_commands

from bot import permissions
from bot.commands import IntegrateGroup, NotAdmin
from bot.launcher import SubprocessLauncher
from bot.notify import DISCORD_CONSUMER, DiscordSink
from bot.supervise import supervise
from integrator import delivery
from integrator.backoff import Backoff
from integrator.errors import IntegratorError
from integrator.notifications import IntegrationBlocked
from integrator.service import Integrator
from teleclaude.adapters import discord_replies as replies
from teleclaude.adapters.discord_adapter import DiscordAdapter, DiscordUser, actor, log_expired

log = logging.getLogger(__name__)


class IntegratorTree(app_commands.CommandTree["IntegratorBot"]):
    """The one place where a command's failure becomes a reply."""

    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError, /
    ) -> None:
        command = interaction.command.name if interaction.command is not None else "?"
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, NotAdmin):
            log.info("event=command_refused command=%s user=%s why=not_admin", command, interaction.user.id)
            spec = replies.not_admin(cause.role, cause.command)
        elif isinstance(cause, IntegratorError):
            log.info(
                "event=command_refused command=%s user=%s code=%s", command, interaction.user.id, cause.code
            )
            if command == "resume":
                spec = replies.resume_refused(str(getattr(interaction.namespace, "slug", "?")), cause)
            else:
                spec = replies.refused(command, cause)
        elif self.client.adapter.is_expired(cause):
            log_expired(interaction)  # the click came too late to answer: nothing failed on our side
            return
        else:
            log.error("event=command_failed command=%s", command, exc_info=cause)
            spec = replies.internal_error(command)
        try:
            await self.client.adapter.respond(interaction, spec)
        except discord.HTTPException as err:
            if self.client.adapter.is_expired(err):
                log_expired(interaction)
                return
            log.warning("event=reply_failed command=%s error=%s", command, err)


class IntegratorBot(discord.Client):
    # How long close() lets the last notifications go out before giving up on them (they stay queued).
    flush_timeout_s = 10.0

    def __init__(
        self, integ: Integrator, *, sync_commands: bool = True, intents: discord.Intents | None = None
    ) -> None:
        super().__init__(intents=intents or discord.Intents.default())
        self.integ = integ
        self.cfg = integ.cfg
        self.sync_commands = sync_commands
        self.tree = IntegratorTree(self)
        self.launcher = SubprocessLauncher(self.cfg.repo, log_dir=self.cfg.state_dir / "agents")
        self.adapter = DiscordAdapter.from_config(
            self.cfg.discord, resume_handler=self.resume, launcher=self.launcher
        )
        self.logged_in = False
        self._channel_checked = False
        self._delivery: asyncio.Task[None] | None = None
        self._delivery_stop = asyncio.Event()

    async def setup_hook(self) -> None:
        self.tree.add_command(IntegrateGroup(self.integ, self.adapter))
        self.adapter.register_persistent(self)
        if self.sync_commands:
            await self._sync_commands()
        channel_id = self.cfg.discord.channel_id
        if channel_id is None:
            log.warning(
                "event=no_channel detail=discord.channel_id is not set; notifications go to the console"
            )
        else:
            # The cursor exists before this returns, so nothing written from now on can be skipped.
            await delivery.register(self.integ.store, DISCORD_CONSUMER)
            sink = DiscordSink(self, self.adapter, channel_id, evidence=self.full_evidence)
            self._delivery = asyncio.create_task(
                supervise(
                    "discord-delivery",
                    lambda: delivery.deliver_forever(
                        self.integ.store, DISCORD_CONSUMER, sink, self._delivery_stop, clock=self.integ.clock
                    ),
                    self._delivery_stop,
                    Backoff(first_s=1.0, max_s=60.0),
                ),
                name="discord-delivery",
            )
        self.logged_in = True
        log.info("event=discord_logged_in user=%s channel=%s", self.user, channel_id)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """Every button gets an answer: one whose id no DynamicItem matches would otherwise get none."""
        if interaction.type is not discord.InteractionType.component:
            return
        data: Mapping[str, Any] = interaction.data or {}
        custom_id = str(data.get("custom_id", ""))
        if not self.adapter.knows_component(custom_id):
            log.info("event=unknown_component custom_id=%r user=%s", custom_id[:100], interaction.user.id)
            await self.adapter.on_unknown_component(interaction, custom_id)

    async def on_ready(self) -> None:
        if not self._channel_checked:  # on_ready runs again on every reconnect; the check is once
            self._channel_checked = True
            await self.check_channel()
        await self._connection_back()

    async def check_channel(self) -> str | None:
        """Say in one line at start what the notification channel lacks (else a 403 says it later)."""
        channel_id = self.cfg.discord.channel_id
        if channel_id is None:
            return None
        try:
            problem = await permissions.check_channel(self, channel_id)
        except discord.HTTPException as err:
            problem = f"could not check channel {channel_id}: {err}"
        if problem:
            log.warning(
                "event=channel_check_failed detail=%s; notifications wait in the outbox until it is fixed",
                problem,
            )
        else:
            log.info("event=channel_ok channel=%s", channel_id)
        return problem

    async def on_resumed(self) -> None:
        await self._connection_back()

    async def _connection_back(self) -> None:
        """After an outage the head notification may sit in a long backoff: try it now instead."""
        await delivery.retry_now(self.integ.store, DISCORD_CONSUMER)

    async def _sync_commands(self) -> None:
        guild_id = self.cfg.discord.guild_id
        if guild_id is None:
            synced = await self.tree.sync()  # global: may take Discord a while to show
        else:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)  # guild commands show up at once
            synced = await self.tree.sync(guild=guild)
        log.info("event=commands_synced guild=%s commands=%s", guild_id, [c.name for c in synced])

    async def full_evidence(self, payload: IntegrationBlocked) -> dict[str, Any] | None:
        return await self.integ.full_evidence(payload.slug, payload.branch, payload.sha, payload.reason_code)

    async def resume(self, slug: str, user: DiscordUser, roles: Sequence[str]) -> str:
        """The Resume button: the same rules as ``integrator resume`` (the adapter checked the role)."""
        result = await self.integ.resume(slug, by=actor(user))
        return replies.resumed(result).content

    async def close(self) -> None:
        await self._stop_delivery()
        await self.launcher.aclose()
        await super().close()

    async def _stop_delivery(self) -> None:
        task, self._delivery = self._delivery, None
        if task is None:
            return
        self._delivery_stop.set()
        done, _ = await asyncio.wait({task}, timeout=self.flush_timeout_s)
        if not done:
            # Still trying to reach Discord: what was not acked stays in the outbox for next time.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
