"""Notifications: from an outcome committed to the outbox to the message Discord receives.

Everything is the shipped code except Discord itself: a real SQLite store (WAL, synchronous=FULL),
the bot's client (``bot.app.IntegratorBot``) logged in on the offline harness of
``tests/discord`` (only HTTP replaced by a recorder that answers like Discord), its ``setup_hook``
delivery task (``deliver_forever`` → ``DiscordSink`` → ``DiscordAdapter.send`` → discord.py's
``Messageable.send``), one ack transaction per message.

- burst: ``--messages`` rows of a realistic mix (ready, integrated, superseded, blocked with an
  embed and a Resume button, shadow predictions), committed one per transaction as fast as
  possible; ``messages_per_s`` is rows / (last send − first commit);
- latency: ``--latency`` rows committed one at a time, each after the previous one was sent;
  ``p50_ms`` / ``p95_ms`` from the row's ``created_at`` (the outcome's commit) to the send;
- floor: the same mix as prebuilt ``channel.send`` arguments sent straight through discord.py to
  the same recorder (no store, no render, no ack): ``floor_messages_per_s`` and ``ratio`` =
  floor / pipeline, i.e. what the outbox's durability and rendering cost on top of discord.py;
- ``launcher_1_us`` / ``launcher_25_us``: one ``_build_session_launcher_view`` for 1 and 25 agents.

    .venv/bin/python bench/notify.py [--messages 1000] [--latency 200]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import _common

sys.path.insert(0, str(_common.ROOT / "tests" / "discord"))

import discord
import samples
from botkit import POST, OfflineBot, use_recorder
from harness import CHANNEL_ID, Call, Recorder, RecordingHTTP, add_guild, text_channel

from integrator import notifications, outbox
from integrator.config import AgentConfig, build_config
from integrator.events import iso, utcnow
from integrator.service import Integrator
from teleclaude.adapters.discord_adapter import DiscordAdapter
from teleclaude.adapters.discord_render import render

MIX: list[Callable[[], dict[str, Any]]] = [
    samples.ready,
    samples.completed,
    samples.ready,
    samples.completed,
    samples.superseded,
    samples.blocked,
    samples.shadow,
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Clock:
    """When each outbox row reached the recorder (wall clock, comparable with ``created_at``)."""

    def __init__(self, recorder: Recorder) -> None:
        self.sent: dict[int, float] = {}
        self.sent_perf: dict[int, float] = {}
        self.arrived = asyncio.Event()
        echo = recorder.responses[POST]

        def respond(call: Call) -> Any:
            nid = int(call.json["nonce"].removeprefix("tc-ob-"))
            self.sent[nid] = time.time()
            self.sent_perf[nid] = time.perf_counter()
            self.arrived.set()
            return echo(call)

        recorder.on(POST, respond)

    async def until(self, nid: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while nid not in self.sent:
            self.arrived.clear()
            if nid in self.sent:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"notification {nid} was not sent within {timeout}s")
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                continue


def _payload(note: dict[str, Any]) -> notifications.Payload:
    payload = notifications.parse(note["kind"], note["payload"])
    assert payload is not None, note["kind"]
    return payload


async def commit(integ: Integrator, note: dict[str, Any]) -> tuple[int, str]:
    now = iso(utcnow())
    nid = await integ.store.write(lambda c: outbox.add(c, _payload(note), now=now), notify=True)
    return nid, now


async def pipeline(root: Path, messages: int, latency_n: int) -> dict[str, Any]:
    cfg = build_config(
        {"repo": str(root / "repo"), "db": str(root / "bench.db"), "discord": {"channel_id": CHANNEL_ID}},
        None,
    )
    recorder = Recorder()
    clock = Clock(recorder)
    async with await Integrator.open(cfg) as integ:
        client = use_recorder(OfflineBot(integ, sync_commands=False), recorder)
        await client.login("fake-token")
        try:
            notes = [MIX[i % len(MIX)]() for i in range(messages)]
            start = time.perf_counter()
            last = 0
            for note in notes:
                last, _ = await commit(integ, note)
            await clock.until(last)
            burst_s = clock.sent_perf[last] - start

            latencies = []
            for i in range(latency_n):
                nid, created = await commit(integ, MIX[i % len(MIX)]())
                await clock.until(nid)
                latencies.append((clock.sent[nid] - datetime.fromisoformat(created).timestamp()) * 1000)
        finally:
            await client.close()
    return {
        "messages": messages,
        "messages_per_s": round(messages / burst_s, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "latency_samples": latency_n,
    }


async def floor(messages: int) -> dict[str, Any]:
    """discord.py alone: prebuilt send arguments, the same recorder, no store."""
    recorder = Recorder()
    client = discord.Client(intents=discord.Intents.default())
    client.http = client._connection.http = RecordingHTTP(recorder, asyncio.get_running_loop())
    await client.login("fake-token")
    add_guild(client)
    channel = text_channel(client)
    adapter = DiscordAdapter()
    prebuilt = [adapter.message_kwargs(render(samples.note(make()))) for make in MIX]
    try:
        start = time.perf_counter()
        for i in range(messages):
            await channel.send(nonce=f"tc-ob-{i}", **prebuilt[i % len(prebuilt)])
        elapsed = time.perf_counter() - start
    finally:
        await client.close()
    return {"floor_messages_per_s": round(messages / elapsed, 1)}


async def launcher_cost() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for agents, rounds in ((1, 3000), (25, 300)):
        adapter = DiscordAdapter(
            agents=[AgentConfig(name=f"agent-{i}", command=["true"]) for i in range(agents)]
        )
        adapter._build_session_launcher_view()  # warm: first call builds class caches
        start = time.perf_counter()
        for _ in range(rounds):
            adapter._build_session_launcher_view()
        out[f"launcher_{agents}_us"] = round((time.perf_counter() - start) / rounds * 1e6, 1)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with _common.temp_root("notify", args.keep) as tmp:
        result = await pipeline(tmp, args.messages, args.latency)
    result.update(await floor(args.messages))
    result["ratio"] = round(result["floor_messages_per_s"] / result["messages_per_s"], 2)
    result.update(await launcher_cost())
    return result


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--latency", type=int, default=200)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(
        f"pipeline {result['messages_per_s']} msg/s (p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms); "
        f"discord.py alone {result['floor_messages_per_s']} msg/s (ratio {result['ratio']}); "
        f"launcher view {result['launcher_1_us']} µs (1 agent), {result['launcher_25_us']} µs (25 agents)",
        file=sys.stderr,
    )
    _common.emit(result)


if __name__ == "__main__":
    main()
