"""The store's one thread hop per step against aiosqlite's public API (one hop per statement).

``Store.write(fn)`` runs a synchronous ``fn(conn)`` inside ``BEGIN IMMEDIATE … COMMIT`` on
aiosqlite's connection thread in one hop (``store._on_connection_thread``, the one place that uses
aiosqlite's private ``_execute``). aiosqlite's public API has no call that runs a function on its
thread: each ``await conn.execute(...)`` is one hop, so the same step costs one hop per statement.

In one run, on one database file (WAL, ``synchronous=FULL`` as the store sets it):

- ``statements_per_emit``: how many statements one real ``Integrator.emit`` of a ``finalize_ready``
  step runs (counted with SQLite's trace callback);
- ``store_steps_per_s``: steps of that many statements (one insert, the rest indexed reads and
  updates) through ``Store.write``;
- ``public_steps_per_s``: the same steps through the public API, one ``await`` per statement, with
  ``BEGIN IMMEDIATE`` and ``COMMIT`` as statements too. The two take turns 100 steps at a time.
- ``ratio`` = public / store (< 1: the public API is slower by that factor);
- the same again with ``synchronous = OFF`` (``*_nosync``): without the fsync of each commit, which
  dominates on a slow disk, what is left is the SQL and the thread hops.

    .venv/bin/python bench/store_api.py [--steps 2000]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from integrator.config import build_config
from integrator.events import make_event
from integrator.service import Integrator
from integrator.store import Store

TABLE = "CREATE TABLE IF NOT EXISTS bench_rows (id INTEGER PRIMARY KEY, k TEXT UNIQUE, n INTEGER)"
ROUND = 100


async def statements_per_emit(root: Path) -> int:
    cfg = build_config({"repo": str(root), "db": str(root / "count.db")}, None)
    counted: list[str] = []
    async with await Integrator.open(cfg) as integ:
        at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
        payload = {"slug": "s", "branch": "feat/s", "sha": "a" * 40, "worker": "w", "ready_at": at}
        first = [
            make_event("branch_pushed", {"branch": "feat/s", "sha": "a" * 40, "pushed_at": at}),
            make_event(
                "review_approved",
                {"slug": "s", "sha": "a" * 40, "reviewer": "r", "review_round": 1, "approved_at": at},
            ),
        ]
        await integ.emit(first)

        def trace(conn: sqlite3.Connection) -> None:
            conn.set_trace_callback(counted.append)

        await integ.store.read(trace)  # the store's one connection: the emit below runs on it
        await integ.emit([make_event("finalize_ready", payload)])
        await integ.store.read(lambda c: c.set_trace_callback(None))
    return sum(1 for s in counted if s not in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT"))


def step_statements(n: int, key: str) -> list[tuple[str, tuple[Any, ...]]]:
    out: list[tuple[str, tuple[Any, ...]]] = [("INSERT INTO bench_rows (k, n) VALUES (?, 0)", (key,))]
    for i in range(n - 1):
        if i % 2:
            out.append(("UPDATE bench_rows SET n = n + 1 WHERE k = ?", (key,)))
        else:
            out.append(("SELECT id, n FROM bench_rows WHERE k = ?", (key,)))
    return out


async def race(store: Store, per_emit: int, steps: int, tag: str) -> tuple[float, float]:
    """Seconds for ``steps`` steps through Store.write and through the public API, taking turns."""
    conn = store._conn  # the same aiosqlite connection, driven through its public API
    store_s = public_s = 0.0
    done = 0
    while done < steps:
        batch = min(ROUND, steps - done)
        started = time.perf_counter()
        for i in range(batch):
            statements = step_statements(per_emit, f"{tag}-store-{done + i}")

            def step(
                c: sqlite3.Connection, statements: list[tuple[str, tuple[Any, ...]]] = statements
            ) -> None:
                for sql, params in statements:
                    c.execute(sql, params).fetchall()

            await store.write(step)
        store_s += time.perf_counter() - started
        started = time.perf_counter()
        for i in range(batch):
            await conn.execute("BEGIN IMMEDIATE")
            for sql, params in step_statements(per_emit, f"{tag}-public-{done + i}"):
                cursor = await conn.execute(sql, params)
                await cursor.fetchall()
            await conn.execute("COMMIT")
        public_s += time.perf_counter() - started
        done += batch
    return store_s, public_s


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-api-") as tmp:
        root = Path(tmp)
        per_emit = await statements_per_emit(root)
        store = await Store.open(root / "bench.db")
        await store.write(lambda c: c.execute(TABLE))
        durable = await race(store, per_emit, args.steps, "full")
        # Without the fsync of each commit, what is left is the thread hops and the SQL itself.
        await store._conn.execute("PRAGMA synchronous = OFF")
        hops = await race(store, per_emit, args.steps, "off")
        await store.close()
    rate = {
        name: args.steps / s
        for name, s in zip(
            ("store", "public", "store_nosync", "public_nosync"), (*durable, *hops), strict=True
        )
    }
    print(
        json.dumps(
            {
                "steps": args.steps,
                "statements_per_emit": per_emit,
                "store_steps_per_s": round(rate["store"], 1),
                "public_steps_per_s": round(rate["public"], 1),
                "ratio": round(rate["public"] / rate["store"], 3),
                "store_nosync_steps_per_s": round(rate["store_nosync"], 1),
                "public_nosync_steps_per_s": round(rate["public_nosync"], 1),
                "ratio_nosync": round(rate["public_nosync"] / rate["store_nosync"], 3),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
