"""Fixtures for the offline Discord tests: real clients, recorded HTTP, a cached guild."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import discord
import pytest_asyncio
from harness import Harness, add_guild, make_harness

MakeHarness = Callable[..., Awaitable[Harness]]


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
