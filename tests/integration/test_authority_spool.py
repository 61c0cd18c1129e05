"""The spool's ingestion as the runner does it (on its own loop, through its own store) and its crash
safety: an ingestion killed before or after its transaction loses nothing and stores nothing twice.

The kills are real SIGKILLs of a real ingestion process; the only test wiring is where it dies: the
``emit`` handed to :func:`integrator.authority.spool.ingest_spool` kills its own process just before
or just after the real store's commit (before the spool files are deleted).
"""

from __future__ import annotations

import asyncio
import fcntl
import signal
import subprocess
import sys
from collections import Counter
from functools import partial
from pathlib import Path

import pytest
from authority_helpers import Setup, make_setup
from conftest import async_wait_for

from integrator.authority import spool
from integrator.runner import Runner
from integrator.service import Integrator

FILES = 30

_DIES_IN_EMIT = """
import asyncio, os, signal, sys
from integrator.authority import spool
from integrator.config import load_config
from integrator.service import Integrator

config, bare, when = sys.argv[1:]
cfg = load_config(config)

async def emit(events):
    if when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    async with await Integrator.open(cfg) as integrator:
        stored = await spool.emit_events(integrator, events)
    os.kill(os.getpid(), signal.SIGKILL)  # committed; the spool files are not deleted yet
    return stored

asyncio.run(spool.ingest_spool(cfg, bare, emit))
"""


def _spool_by_hand(s: Setup, count: int, prefix: str = "hand") -> set[str]:
    """Finished spool files as post-receive writes them, without starting an ingestion."""
    s.paths.spool.mkdir(parents=True, exist_ok=True)
    sha = s.commit(f"spooled {prefix}")
    for i in range(count):
        (s.paths.spool / f"7{i}.0.push").write_text(f"{sha} refs/heads/{prefix}-{i} tester\nend\n")
    return {f"{prefix}-{i}" for i in range(count)}


def _stored_once(s: Setup, branches: set[str]) -> bool:
    seen = Counter(str(e["branch"]) for e in s.branch_pushed())
    return {b: seen[b] for b in branches} == dict.fromkeys(branches, 1)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_killed_ingestion_loses_nothing_and_stores_nothing_twice(tmp_path: Path, when: str) -> None:
    s = make_setup(tmp_path, mode="cutover")
    branches = _spool_by_hand(s, FILES)

    killed = subprocess.run(
        [sys.executable, "-c", _DIES_IN_EMIT, str(s.config_path), str(s.bare), when],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(s.spool_files()) == FILES, "no spool file is deleted before its events are stored"
    assert len(s.branch_pushed()) == (FILES if when == "after" else 0)
    report = spool.ingest_detached(s.cfg, s.bare)
    assert (report.files, report.events) == (FILES, FILES)
    assert report.stored == (0 if when == "after" else FILES)  # the re-delivery is absorbed
    assert _stored_once(s, branches)
    assert s.spool_files() == []


async def test_the_runner_ingests_leftovers_on_its_own_loop_and_store(tmp_path: Path) -> None:
    s = make_setup(tmp_path, mode="cutover")
    branches = _spool_by_hand(s, 3)

    async with await Integrator.open(s.cfg) as integ:
        await Runner(s.cfg, integ.store, holder="spool-test").run(asyncio.Event(), once=True)

    assert _stored_once(s, branches)
    assert s.spool_files() == []


async def test_waiting_for_the_spool_lock_keeps_the_event_loop_running(tmp_path: Path) -> None:
    """Another ingestion holds the lock: the runner's ingestion waits without blocking its loop (the
    lease renewal and the wake listener run on it), then stores through the store it was given."""
    s = make_setup(tmp_path, mode="cutover")
    branches = _spool_by_hand(s, 2)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async with await Integrator.open(s.cfg) as integ:
        with open(s.paths.spool_lock, "a+b") as held:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)
            ticking = asyncio.create_task(ticker())
            ingesting = asyncio.create_task(
                spool.ingest_spool(s.cfg, s.bare, partial(spool.emit_events, integ))
            )
            await async_wait_for(lambda: ticks >= 20, timeout=30)
            assert not ingesting.done() and s.branch_pushed() == []
            fcntl.flock(held.fileno(), fcntl.LOCK_UN)
        report = await asyncio.wait_for(ingesting, timeout=60)
        ticking.cancel()

    assert (report.files, report.stored) == (2, 2)
    assert _stored_once(s, branches)
