"""The bot process: headless mode, clean shutdown, the lease shared with other bots, Discord outages.

The headless test runs the real ``teleclaude-bot`` console script; the others run ``BotRuntime``
in this process so that a recorder can stand in for Discord.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from botkit import POST, offline_factory, posts
from conftest import async_wait_for, make_config, push_feature, readiness_events
from harness import BOT_USER, CHANNEL_ID, Call, Recorder

from bot.runtime import BotRuntime
from integrator.backoff import Backoff
from integrator.config import Config
from integrator.sandbox import Sandbox
from integrator.service import Integrator
from integrator.store import rows

BOT = str(Path(sys.executable).with_name("teleclaude-bot"))
FAST = Backoff(first_s=0.05, max_s=0.2)


async def lease_holder(integ: Integrator) -> str | None:
    lease = (await integ.status()).lease
    return None if lease is None else lease.holder


async def make_ready(sandbox: Sandbox, integ: Integrator, slug: str) -> str:
    feature = push_feature(sandbox, slug, {f"{slug}.txt": f"{slug}\n"})
    # The bot's integrator does the git check; emitting only records and wakes it.
    await integ.emit(readiness_events(feature.slug, feature.branch, feature.sha))
    return feature.sha


def merges(sandbox: Sandbox) -> int:
    return sum(1 for line in sandbox.main_log("%B") if line.startswith("Integrated-By: "))


async def integrated_under(integ: Integrator) -> list[tuple[str, int]]:
    """(slug, fencing token of the lease it was integrated under), oldest first."""

    def query(conn: Any) -> list[tuple[str, int]]:
        found = rows(
            conn,
            "SELECT c.slug, t.fencing FROM transitions t JOIN queue q ON q.id = t.queue_id"
            " JOIN candidates c ON c.id = q.candidate_id WHERE t.to_status = 'integrated' ORDER BY t.id",
        )
        return [(r["slug"], r["fencing"]) for r in found]

    return await integ.store.read(query)


async def count_integrated(integ: Integrator, n: int) -> bool:
    return len(await integrated_under(integ)) >= n


async def fencing_of(integ: Integrator, holder: str) -> int | None:
    lease = (await integ.status()).lease
    return lease.fencing if lease and lease.holder == holder else None


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


async def test_headless_bot_drains_prints_and_exits_0_on_sigterm(
    tmp_path: Path, sandbox: Sandbox, config: Config, integ: Integrator
) -> None:
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "INTEGRATOR_CONFIG")}
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [BOT, "--config", str(config.config_path)], stdout=stdout, stderr=stderr, env=env
        )
    try:
        await async_wait_for(lambda: "event=lease_acquired" in read(err), timeout=20)
        assert "discord=no (headless)" in read(err)
        sha = await make_ready(sandbox, integ, "feat-a")
        await async_wait_for(lambda: "[integrated]" in read(out), timeout=20)
        lines = read(out).splitlines()
        assert lines[0] == f"[ready] feat-a {sha[:10]} on feature/feat-a queued at position 1"
        assert lines[1].startswith(f"[integrated] feat-a {sha[:10]} as ")
        assert sha in sandbox.main_log("%H %P")[0]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, read(err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert await lease_holder(integ) is None, "the lease was released on the way out"
    assert "event=bot_stopped" in read(err)
    assert "Traceback" not in read(err)


def test_a_config_or_database_error_is_one_line_and_exit_status_2(tmp_path: Path, sandbox: Sandbox) -> None:
    missing = tmp_path / "nope.toml"
    result = subprocess.run([BOT, "--config", str(missing)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: no configuration at {missing}")

    cfg = make_config(tmp_path, sandbox, db=str(tmp_path))  # a directory where the database should be
    result = subprocess.run(
        [BOT, "--config", str(cfg.config_path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: database {tmp_path} is a directory, not a file"
    assert "Traceback" not in result.stderr


async def test_a_second_bot_stands_by_until_the_first_releases_the_lease(
    sandbox: Sandbox, config: Config, integ: Integrator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="integrator.runner")
    first = BotRuntime(config, token=None, holder="bot-one", console=io.StringIO())
    second = BotRuntime(config, token=None, holder="bot-two", console=io.StringIO())
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    one = asyncio.create_task(first.run(stop_first))
    two: asyncio.Task[None] | None = None
    try:
        first_fence = await async_wait_for(lambda: fencing_of(integ, "bot-one"), timeout=20)
        two = asyncio.create_task(second.run(stop_second))
        await async_wait_for(lambda: "event=standby holder=bot-two" in caplog.text, timeout=20)

        await make_ready(sandbox, integ, "feat-a")
        # The store records the outcome after the push: wait on the record, not on main.
        await async_wait_for(lambda: count_integrated(integ, 1), timeout=20)
        assert await integrated_under(integ) == [("feat-a", first_fence)]
        assert merges(sandbox) == 1
        assert await lease_holder(integ) == "bot-one", "the second bot never took over meanwhile"

        stop_first.set()
        await asyncio.wait_for(one, 20)
        second_fence = await async_wait_for(lambda: fencing_of(integ, "bot-two"), timeout=20)
        assert second_fence > first_fence
        await make_ready(sandbox, integ, "feat-b")
        await async_wait_for(lambda: count_integrated(integ, 2), timeout=20)
        assert await integrated_under(integ) == [("feat-a", first_fence), ("feat-b", second_fence)]
        assert merges(sandbox) == 2
    finally:
        stop_first.set()
        stop_second.set()
        await asyncio.gather(one, *([two] if two else []))
    assert await lease_holder(integ) is None


async def test_unreachable_discord_does_not_stop_the_integrator_and_notifications_follow_in_order(
    tmp_path: Path, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_config(tmp_path, sandbox, discord={"channel_id": CHANNEL_ID})
    recorder = Recorder()
    network = {"up": False}

    def login(call: Call) -> Any:
        if not network["up"]:
            key = SimpleNamespace(host="discord.com", port=443, ssl=True)
            raise aiohttp.ClientConnectorError(key, OSError(111, "Connection refused"))  # type: ignore[arg-type]
        return dict(BOT_USER)

    recorder.on("GET /users/@me", login)
    runtime = BotRuntime(
        cfg, token="fake-token", holder="bot", client_factory=offline_factory(recorder), connect_backoff=FAST
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        async with await Integrator.open(cfg) as integ:
            sha = await make_ready(sandbox, integ, "feat-a")
            await async_wait_for(lambda: merges(sandbox) == 1, timeout=20)
            assert runtime.connect_attempts >= 2
            assert posts(recorder) == [], "nothing could be posted while Discord was down"
            assert "event=discord_unavailable" in caplog.text and "Connection refused" in caplog.text

            network["up"] = True
            await async_wait_for(lambda: len(posts(recorder)) >= 2, timeout=20)
            ready, done = posts(recorder)
            assert ready.json["content"].startswith(
                f"✅ **feat-a** ready — next in queue\n`feature/feat-a` @ `{sha[:10]}`"
            )
            assert done.json["content"].startswith("🎉 **feat-a** integrated in ")
            assert int(ready.json["nonce"].removeprefix("tc-ob-")) < int(
                done.json["nonce"].removeprefix("tc-ob-")
            )
            assert runtime.client is not None and runtime.client.logged_in
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert len(recorder.requests(POST)) == 2, "each notification exactly once"
    assert "fake-token" not in caplog.text


async def test_a_bot_starting_while_another_process_creates_the_database_waits_for_it(config: Config) -> None:
    # Two bots started together race to create the fresh database; the loser met a write lock and
    # SQLite refused its switch to WAL at once ("database is locked") instead of waiting.
    other = sqlite3.connect(config.db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.3, other.rollback)
    runtime = BotRuntime(config, token=None, holder="late", console=io.StringIO())
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        await async_wait_for(lambda: runtime.started.is_set() or task.done(), timeout=20)
        assert not task.done(), task.exception()
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        other.close()
