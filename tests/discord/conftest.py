"""Fixtures for the offline Discord tests: real clients, recorded HTTP, a cached guild."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import discord
import pytest
import pytest_asyncio
from botkit import OfflineBot
from harness import CHANNEL_ID, Harness, Recorder, add_guild, make_harness

from integrator.config import Config
from integrator.sandbox import Sandbox
from integrator.service import Integrator

MakeHarness = Callable[..., Awaitable[Harness]]

_SHARED_NAME = "tests_shared_conftest"


def _shared() -> ModuleType:
    """tests/conftest.py, loaded under a name of its own."""
    found = sys.modules.get(_SHARED_NAME)
    if found is None:
        spec = importlib.util.spec_from_file_location(_SHARED_NAME, Path(__file__).parents[1] / "conftest.py")
        assert spec is not None and spec.loader is not None
        found = importlib.util.module_from_spec(spec)
        sys.modules[_SHARED_NAME] = found
        spec.loader.exec_module(found)
    return found


def __getattr__(name: str) -> Any:
    # pytest imports every conftest.py outside a package as the module "conftest", and the last one
    # loaded wins: after this directory is collected, `from conftest import cli, push_feature` in
    # tests/integration (and here) lands in this module. Hand those names to tests/conftest.py.
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_shared(), name)


@pytest_asyncio.fixture
async def make() -> AsyncIterator[MakeHarness]:
    """``await make(cls=..., **client_kwargs)``: a logged-in client with a cached guild and channel.

    Every harness is closed afterwards, and a request with no canned response fails the test here
    even if discord.py swallowed the exception inside a view or command task.
    """
    made: list[Harness] = []

    async def factory(cls: type[discord.Client] = discord.Client, /, **kwargs: Any) -> Harness:
        h = await make_harness(cls, **kwargs)
        add_guild(h.client)
        made.append(h)
        return h

    yield factory
    for h in reversed(made):
        await h.close()
    errors = [e for h in made for e in h.recorder.errors]
    assert not errors, f"unexpected Discord requests: {errors}"


@pytest_asyncio.fixture
async def harness(make: MakeHarness) -> Harness:
    return await make()


# -- the bot on a real sandbox ---------------------------------------------------------------------
@dataclass
class BotEnv:
    """The shipped bot, logged in offline, over a real sandbox repository and SQLite store."""

    harness: Harness
    integ: Integrator
    cfg: Config
    sandbox: Sandbox

    @property
    def client(self) -> OfflineBot:
        assert isinstance(self.harness.client, OfflineBot)
        return self.harness.client

    @property
    def recorder(self) -> Recorder:
        return self.harness.recorder


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    """Config keys a test module wants changed (override this fixture in the module)."""
    return {}


@pytest_asyncio.fixture
async def bot_env(
    tmp_path: Path, sandbox: Sandbox, make: MakeHarness, bot_overrides: dict[str, Any]
) -> AsyncIterator[BotEnv]:
    discord_cfg = {"channel_id": CHANNEL_ID, "agents": [{"name": "claude", "command": ["true"]}]}
    overrides = dict(bot_overrides)
    discord_cfg.update(overrides.pop("discord", {}))
    cfg = _shared().make_config(tmp_path, sandbox, discord=discord_cfg, **overrides)
    integ = await Integrator.open(cfg)
    try:
        h = await make(OfflineBot, integ=integ, sync_commands=False)
        yield BotEnv(h, integ, cfg, sandbox)
        await h.close()  # before the store closes: the delivery task uses it
    finally:
        await integ.close()
