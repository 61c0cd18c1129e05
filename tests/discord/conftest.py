"""Fixtures for the offline Discord tests: real clients, recorded HTTP, a cached guild."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import discord
import pytest_asyncio
from harness import Harness, add_guild, make_harness

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
