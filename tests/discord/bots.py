"""A minimal client wired the way the phase-2 bot will wire the adapter."""

from __future__ import annotations

from typing import Any

import discord

from teleclaude.adapters.discord_adapter import DiscordAdapter


class AdapterClient(discord.Client):
    """Registers in ``setup_hook`` and, carelessly, again in ``on_ready`` (which runs on every reconnect)."""

    def __init__(self, adapter: DiscordAdapter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.adapter = adapter
        self.dynamic_registrations = 0
        self.ready_calls = 0

    def add_dynamic_items(self, *items: Any) -> None:
        self.dynamic_registrations += 1
        super().add_dynamic_items(*items)

    async def setup_hook(self) -> None:
        self.adapter.register_persistent(self)

    async def on_ready(self) -> None:
        self.ready_calls += 1
        self.adapter.register_persistent(self)
