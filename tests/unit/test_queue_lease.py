"""The queue's transition DAG and the singleton lease, on a real SQLite file.

Time for the lease is injected (``now`` arguments), so expiry is tested without waiting.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from integrator import lease, queue
from integrator.errors import IllegalTransition, StaleState
from integrator.store import Store


def transitions_of(conn: sqlite3.Connection, queue_id: int) -> list[dict[str, Any]]:
    """The audit trail of one queue item (the product writes it; only tests read it back)."""
    sql = "SELECT from_status, to_status, reason, at, fencing FROM transitions WHERE queue_id = ? ORDER BY id"
    return [dict(r) for r in conn.execute(sql, (queue_id,))]


NOW = "2026-03-01T12:00:00.000000+00:00"


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "q.db")
    try:
        yield opened
    finally:
        await opened.close()


def add_candidate(conn: sqlite3.Connection, n: int, ready_at: str) -> int:
    cur = conn.execute(
        "INSERT INTO candidates (slug, branch, sha, finalize_event_id, ready_at, received_at, status, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 'ready', ?)",
        (f"s{n}", f"b{n}", f"{n:040x}", f"e{n}", ready_at, NOW, NOW),
    )
    return int(cur.lastrowid or 0)


def queued_item(conn: sqlite3.Connection, n: int = 1, ready_at: str = NOW) -> queue.Item:
    return queue.enqueue(conn, add_candidate(conn, n, ready_at), order_at=ready_at, now=NOW, reason="ready")


def drive_to(conn: sqlite3.Connection, item: queue.Item, status: str) -> None:
    """Bring a queued item to ``status`` along allowed edges."""
    path = {
        "queued": [],
        "in_progress": ["in_progress"],
        "integrated": ["in_progress", "integrated"],
        "blocked": ["in_progress", "blocked"],
        "superseded": ["superseded"],
    }[status]
    src = "queued"
    for dst in path:
        queue.transition(conn, item.id, src, dst, reason="setup", now=NOW)
        src = dst


# --- the DAG ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), sorted(queue.ALLOWED))
async def test_every_allowed_transition_moves_and_is_recorded(store: Store, src: str, dst: str) -> None:
    def step(conn: sqlite3.Connection) -> tuple[queue.Item | None, list[dict[str, object]]]:
        item = queued_item(conn)
        drive_to(conn, item, src)
        queue.transition(conn, item.id, src, dst, reason=f"test {src}->{dst}", now=NOW, fencing=7)
        return queue.get(conn, item.id), transitions_of(conn, item.id)

    moved, trail = await store.write(step)
    assert moved is not None and moved.status == dst
    assert trail[0]["from_status"] is None and trail[0]["to_status"] == "queued"
    assert trail[-1] == {
        "from_status": src,
        "to_status": dst,
        "reason": f"test {src}->{dst}",
        "at": NOW,
        "fencing": 7,
    }


DISALLOWED = sorted(set(itertools.product(queue.STATUSES, repeat=2)) - queue.ALLOWED)


@pytest.mark.parametrize(("src", "dst"), DISALLOWED)
async def test_every_other_transition_raises_and_changes_nothing(store: Store, src: str, dst: str) -> None:
    def setup(conn: sqlite3.Connection) -> queue.Item:
        item = queued_item(conn)
        drive_to(conn, item, src)
        return item

    item = await store.write(setup)
    before = await store.read(lambda c: transitions_of(c, item.id))
    with pytest.raises(IllegalTransition, match=f"{src} -> {dst} is not allowed"):
        await store.write(lambda c: queue.transition(c, item.id, src, dst, reason="x", now=NOW))
    after = await store.read(lambda c: (queue.get(c, item.id), transitions_of(c, item.id)))
    assert after[0] is not None and after[0].status == src
    assert after[1] == before


def test_terminal_states_have_no_way_out() -> None:
    for status in queue.TERMINAL:
        assert not [pair for pair in queue.ALLOWED if pair[0] == status]


async def test_stale_compare_and_set_raises_and_rolls_back(store: Store) -> None:
    item = await store.write(queued_item)
    await store.write(lambda c: queue.transition(c, item.id, "queued", "in_progress", reason="a", now=NOW))
    # A second worker that read "queued" earlier tries the same move: the CAS finds in_progress.
    with pytest.raises(StaleState, match=f"queue item {item.id} is in_progress, expected queued"):
        await store.write(lambda c: queue.transition(c, item.id, "queued", "superseded", reason="b", now=NOW))
    got = await store.read(lambda c: (queue.get(c, item.id), transitions_of(c, item.id)))
    assert got[0] is not None and got[0].status == "in_progress" and got[0].attempts == 1
    assert [t["to_status"] for t in got[1]] == ["queued", "in_progress"]
    with pytest.raises(StaleState, match="is missing"):
        await store.write(lambda c: queue.transition(c, 999, "queued", "in_progress", reason="c", now=NOW))


async def test_attempts_count_each_start(store: Store) -> None:
    def step(conn: sqlite3.Connection) -> queue.Item | None:
        item = queued_item(conn)
        for _ in range(3):
            queue.transition(conn, item.id, "queued", "in_progress", reason="start", now=NOW)
            queue.transition(conn, item.id, "in_progress", "queued", reason="recovery", now=NOW)
        return queue.get(conn, item.id)

    item = await store.write(step)
    assert item is not None and item.attempts == 3 and item.status == "queued"


# --- FIFO -------------------------------------------------------------------------------------------


async def test_fifo_by_ready_at_then_enqueue_order(store: Store) -> None:
    stamps = ["2026-03-01T12:00:00.000003+00:00", "2026-03-01T12:00:00.000001+00:00", NOW, NOW]

    def step(conn: sqlite3.Connection) -> list[str]:
        for n, ready_at in enumerate(stamps):
            queued_item(conn, n, ready_at)
        order = []
        while (head := queue.head(conn)) is not None:
            order.append(head.slug)
            queue.transition(conn, head.id, "queued", "in_progress", reason="take", now=NOW)
        return order

    assert await store.write(step) == ["s2", "s3", "s1", "s0"]


async def test_enqueue_is_idempotent_per_candidate_and_positions_follow_order(store: Store) -> None:
    def step(conn: sqlite3.Connection) -> tuple[int, int, list[int | None]]:
        first = queued_item(conn, 1, "2026-03-01T12:00:00.000002+00:00")
        second = queued_item(conn, 2, NOW)
        again = queue.enqueue(conn, first.candidate_id, order_at=NOW, now=NOW, reason="again")
        count = conn.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
        trail = len(transitions_of(conn, first.id))
        assert again.id == first.id and again.order_at == first.order_at
        queue.transition(conn, second.id, "queued", "in_progress", reason="take", now=NOW)
        return count, trail, [queue.position(conn, first.id), queue.position(conn, second.id)]

    count, trail, positions = await store.write(step)
    assert count == 2 and trail == 1
    assert positions == [1, None]


# --- the lease --------------------------------------------------------------------------------------

KEY = lease.MAIN_LEASE
T = 1_000_000.0


async def test_acquire_is_exclusive_until_expiry_and_fencing_increases(store: Store) -> None:
    a = await store.write(lambda c: lease.acquire(c, KEY, "a", now=T, ttl=10))
    assert a is not None and a.fencing == 1 and a.expires_at == T + 10
    assert await store.write(lambda c: lease.acquire(c, KEY, "b", now=T + 9.999, ttl=10)) is None
    assert (
        await store.write(lambda c: lease.acquire(c, KEY, "a", now=T + 1, ttl=10)) is None
    )  # not re-entrant
    b = await store.write(lambda c: lease.acquire(c, KEY, "b", now=T + 10, ttl=10))
    assert b is not None and b.fencing == 2 and b.token != a.token
    info = await store.read(lambda c: lease.info(c, KEY, now=T + 11))
    assert info is not None and info.holder == "b" and info.fencing == 2


async def test_renew_extends_only_a_live_lease_of_ours(store: Store) -> None:
    a = await store.write(lambda c: lease.acquire(c, KEY, "a", now=T, ttl=10))
    assert a is not None
    renewed = await store.write(lambda c: lease.renew(c, a, now=T + 8, ttl=10))
    assert renewed is not None and renewed.expires_at == T + 18 and renewed.fencing == a.fencing
    # Renewal moved the expiry: "b" cannot take it at the original expiry.
    assert await store.write(lambda c: lease.acquire(c, KEY, "b", now=T + 10, ttl=10)) is None
    # Too late: an expired lease is never renewed, even by its holder and even if nobody took it.
    assert await store.write(lambda c: lease.renew(c, renewed, now=T + 18, ttl=10)) is None
    assert not await store.read(lambda c: lease.is_held(c, renewed, now=T + 18))


async def test_old_holder_finds_its_token_gone_after_takeover(store: Store) -> None:
    a = await store.write(lambda c: lease.acquire(c, KEY, "a", now=T, ttl=5))
    assert a is not None
    b = await store.write(lambda c: lease.acquire(c, KEY, "b", now=T + 6, ttl=5))
    assert b is not None and b.fencing == a.fencing + 1
    # Even with a clock that says the old lease is still valid, the token no longer matches.
    assert not await store.read(lambda c: lease.is_held(c, a, now=T + 1))
    assert await store.write(lambda c: lease.renew(c, a, now=T + 1, ttl=5)) is None
    assert not await store.write(lambda c: lease.release(c, a))
    assert await store.read(lambda c: lease.is_held(c, b, now=T + 7))


async def test_release_frees_the_lease_and_keeps_the_fencing_counter(store: Store) -> None:
    a = await store.write(lambda c: lease.acquire(c, KEY, "a", now=T, ttl=100))
    assert a is not None
    assert await store.write(lambda c: lease.release(c, a))
    assert await store.read(lambda c: lease.info(c, KEY, now=T)) is None
    b = await store.write(lambda c: lease.acquire(c, KEY, "b", now=T + 1, ttl=100))
    assert b is not None and b.fencing == a.fencing + 1
    assert not await store.read(lambda c: lease.is_held(c, a, now=T + 1))


async def test_info_hides_an_expired_holder(store: Store) -> None:
    a = await store.write(lambda c: lease.acquire(c, KEY, "a", now=T, ttl=5))
    assert a is not None
    assert await store.read(lambda c: lease.info(c, KEY, now=T + 4.9)) is not None
    assert await store.read(lambda c: lease.info(c, KEY, now=T + 5)) is None


async def test_leases_are_per_key(store: Store) -> None:
    a = await store.write(lambda c: lease.acquire(c, "integration/main", "a", now=T, ttl=5))
    b = await store.write(lambda c: lease.acquire(c, "integration/other", "b", now=T, ttl=5))
    assert a is not None and b is not None and a.fencing == b.fencing == 1
