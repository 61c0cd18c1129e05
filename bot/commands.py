"""``/integrate``: each subcommand is one call to the core and one reply renderer.

The core decides (``integrator.service.Integrator``, ``integrator.cutover``); the adapter's
``discord_replies`` shapes the answer; this module only connects the two. Refusals and errors are
not handled here: they propagate to the tree's one error handler (``bot.app.IntegratorTree``).
Admin subcommands carry ``extras={"admin": True}`` and are checked in :meth:`interaction_check`.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from integrator import cutover
from integrator.service import Integrator
from teleclaude.adapters import discord_replies as replies
from teleclaude.adapters.discord_adapter import DiscordAdapter, MessageSpec, actor, has_role

log = logging.getLogger(__name__)

ADMIN: dict[Any, Any] = {"admin": True}
AUTOCOMPLETE_MAX = 25  # Discord shows at most 25 choices


class NotAdmin(app_commands.CheckFailure):
    """The member lacks the configured admin role for an admin subcommand."""

    def __init__(self, role: str, command: str) -> None:
        super().__init__(f"{command} needs the {role} role")
        self.role = role
        self.command = command


class IntegrateGroup(app_commands.Group):
    """The /integrate tree: read-only views for everyone, steering for the admin role."""

    def __init__(self, integ: Integrator, adapter: DiscordAdapter) -> None:
        super().__init__(
            name="integrate",
            description="Steer and watch the integrator (the only writer of main)",
            # Roles exist only in a guild; a DM could never pass the admin check anyway.
            guild_only=True,
            allowed_contexts=app_commands.AppCommandContext(
                guild=True, dm_channel=False, private_channel=False
            ),
        )
        self.integ = integ
        self.adapter = adapter
        self.admin_role = integ.cfg.discord.admin_role

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        command = interaction.command
        if command is None or not command.extras.get("admin"):
            return True
        if not has_role(interaction.user, self.admin_role):
            raise NotAdmin(self.admin_role, command.name)
        return True

    async def _reply(self, interaction: discord.Interaction[Any], spec: MessageSpec) -> None:
        await self.adapter.respond(interaction, spec)

    # ------------------------------------------------------------------------------------- read only
    @app_commands.command(name="status", description="Mode, lease, queue, blocked and recent outcomes")
    async def status(self, interaction: discord.Interaction[Any]) -> None:
        await self._reply(interaction, replies.status(await self.integ.status(), await self.integ.stall()))

    @app_commands.command(name="queue", description="The queue in integration order")
    async def queue(self, interaction: discord.Interaction[Any]) -> None:
        await self._reply(interaction, replies.queue(await self.integ.queued()))

    @app_commands.command(name="history", description="Recent outcomes: integrated, blocked, superseded")
    @app_commands.describe(limit="How many outcomes (1-25, default 10)")
    async def history(
        self, interaction: discord.Interaction[Any], limit: app_commands.Range[int, 1, 25] = 10
    ) -> None:
        await self._reply(interaction, replies.history(await self.integ.history(limit)))

    @app_commands.command(name="shadow-report", description="Shadow parity and the cutover gate's verdict")
    async def shadow_report(self, interaction: discord.Interaction[Any]) -> None:
        await self._reply(interaction, replies.shadow_report(await self.integ.shadow_report()))

    # ------------------------------------------------------------------------------------------ admin
    @app_commands.command(
        name="resume", description="Re-queue a blocked candidate if what blocked it changed", extras=ADMIN
    )
    @app_commands.describe(slug="The blocked candidate's slug")
    async def resume(self, interaction: discord.Interaction[Any], slug: str) -> None:
        # Resume fetches to see whether main moved: past Discord's 3-second window on a slow remote.
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.integ.resume(slug, by=actor(interaction.user))
        await self._reply(interaction, replies.resumed(result))

    @resume.autocomplete("slug")
    async def resume_slugs(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        found = await self.integ.slugs(current.strip().lower(), limit=AUTOCOMPLETE_MAX)
        return [app_commands.Choice(name=slug, value=slug) for slug in found]

    @app_commands.command(
        name="withdraw", description="Take a candidate off the queue for good (admins, or its own worker)"
    )
    @app_commands.describe(slug="The candidate's slug", reason="Why (recorded and shown to everyone)")
    async def withdraw(
        self, interaction: discord.Interaction[Any], slug: str, reason: app_commands.Range[str, 1, 500]
    ) -> None:
        who = actor(interaction.user)
        # The worker that emitted the candidate may withdraw it when the bot knows them: its
        # finalize_ready names the same Discord identity the bot records for this member.
        if not has_role(interaction.user, self.admin_role) and await self.integ.emitted_by(slug) != who:
            raise NotAdmin(self.admin_role, "withdraw")
        result = await self.integ.withdraw(slug, who, reason)
        await self._reply(interaction, replies.withdrawn(result))

    @withdraw.autocomplete("slug")
    async def withdraw_slugs(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        found = await self.integ.slugs(current.strip().lower(), limit=AUTOCOMPLETE_MAX)
        return [app_commands.Choice(name=slug, value=slug) for slug in found]

    @app_commands.command(
        name="pause", description="Finish the candidate in flight, then hold the queue", extras=ADMIN
    )
    @app_commands.describe(reason="Why (shown to everyone in the notification)")
    async def pause(
        self, interaction: discord.Interaction[Any], reason: app_commands.Range[str, 1, 500]
    ) -> None:
        record = await self.integ.pause(reason, by=actor(interaction.user))
        await self._reply(interaction, replies.paused(record))

    @app_commands.command(
        name="unpause", description="Let the integrator take candidates again", extras=ADMIN
    )
    async def unpause(self, interaction: discord.Interaction[Any]) -> None:
        changed = await self.integ.unpause(by=actor(interaction.user))
        await self._reply(interaction, replies.unpaused(changed))

    @app_commands.command(
        name="cutover",
        description="Make the integrator the only writer of main (gated by parity)",
        extras=ADMIN,
    )
    @app_commands.describe(reason="Why now (recorded; default: parity gate passed)")
    async def cutover_cmd(
        self,
        interaction: discord.Interaction[Any],
        reason: app_commands.Range[str, 1, 500] = "parity gate passed",
    ) -> None:
        # The gate reads the whole parity report and writes the remote's mode file.
        await interaction.response.defer(ephemeral=True, thinking=True)
        record = await cutover.cutover(self.integ, by=actor(interaction.user), reason=reason)
        await self._reply(interaction, replies.mode_set(record))

    @app_commands.command(
        name="rollback", description="Back to shadow: people may push main again", extras=ADMIN
    )
    @app_commands.describe(reason="Why (recorded and shown to everyone)")
    async def rollback(
        self, interaction: discord.Interaction[Any], reason: app_commands.Range[str, 1, 500]
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        record = await cutover.rollback(self.integ, by=actor(interaction.user), reason=reason)
        await self._reply(interaction, replies.mode_set(record))

    @app_commands.command(
        name="launcher", description="Post a fresh session launcher in this channel", extras=ADMIN
    )
    async def launcher(self, interaction: discord.Interaction[Any]) -> None:
        channel = interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            await self._reply(interaction, replies.refused("launcher", "run it in a text channel"))
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        sent = await self.adapter.post_launcher(channel)
        await self._reply(interaction, replies.launcher_posted(len(sent)))
