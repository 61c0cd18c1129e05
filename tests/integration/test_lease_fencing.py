"""The lease's fencing reaches the database write itself, and a crashed same-host holder is replaced at once
(issue 13 items 2 and 7). Real SQLite files and real processes; nothing mocked."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import db_rows, emit_ready, make_config, push_feature

from integrator import lease, procs
from integrator.errors import LeaseLost
from integrator.events import utcnow
from integrator.runner import Runner
from integrator.sandbox import Sandbox
from integrator.store import Store

HOLD = textwrap.dedent(
    """
    import os, socket, sqlite3, sys, time
    from integrator import lease, procs
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.row_factory = sqlite3.Row
    holder = f"{socket.gethostname()}:{os.getpid()}"  # the default holder name
    got = lease.acquire(conn, lease.MAIN_LEASE, holder, now=time.time(), ttl=120, started=procs.own_stamp())
    print(got.fencing, flush=True)
    time.sleep(600)
    """
)


def hold_lease(db: Path) -> tuple[subprocess.Popen[str], int]:
    """A real process that takes the lease (TTL 120 s) as ``<host>:<its pid>`` and sleeps."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    fencing = int(proc.stdout.readline())
    return proc, fencing


async def test_a_holder_paused_past_a_takeover_writes_nothing(tmp_path: Path, sandbox: Sandbox) -> None:
    cfg = make_config(tmp_path, sandbox)
    feature = push_feature(sandbox, "paused", {"p.txt": "p\n"})
    await emit_ready(cfg, feature)
    store = await Store.open(cfg.db)
    try:
        now = time.time()
        old = await store.write(lambda c: lease.acquire(c, lease.MAIN_LEASE, "old", now=now, ttl=1))
        assert old is not None
        runner = Runner(cfg, store, holder="old")
        runner.lease = old
        item = await runner.workflow.take()
        assert item is not None
        # The old holder checked its lease, then stalled past its TTL; another process took over.
        new = await store.write(lambda c: lease.acquire(c, lease.MAIN_LEASE, "new", now=now + 5, ttl=60))
        assert new is not None and new.fencing == old.fencing + 1

        async def stale_guard() -> lease.Lease:
            return old  # what the old holder's check said before it stalled

        runner.workflow.guard = stale_guard
        before = db_rows(cfg, "SELECT COUNT(*) AS n FROM events")[0]["n"]
        with pytest.raises(LeaseLost, match="no longer ours"):
            await runner.workflow.complete(item, feature.sha, feature.sha, feature.sha, time.monotonic())
        with pytest.raises(LeaseLost):
            await runner.workflow.requeue_for_fault(item, RuntimeError("x"), stage="fetch")
        assert db_rows(cfg, "SELECT COUNT(*) AS n FROM events")[0]["n"] == before
        assert [r["status"] for r in db_rows(cfg, "SELECT status FROM queue")] == ["in_progress"]
        assert [r["phase"] for r in db_rows(cfg, "SELECT phase FROM checkpoints")] == ["dequeued"]
        assert db_rows(cfg, "SELECT holder, fencing FROM leases")[0][:] == ("new", new.fencing)
    finally:
        await store.close()


async def _acquire_once(cfg_db: Path, holder: str, ttl: float = 120.0) -> lease.Lease | None:
    store = await Store.open(cfg_db)
    try:
        return await store.write(
            lambda c: lease.acquire(
                c, lease.MAIN_LEASE, holder, now=utcnow().timestamp(), ttl=ttl, started=procs.own_stamp()
            )
        )
    finally:
        await store.close()


async def test_a_same_host_holder_whose_process_died_is_taken_over_at_once(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    cfg = make_config(tmp_path, sandbox)
    await _acquire_once(cfg.db, "bootstrap", ttl=0)  # creates the database and the lease row
    holder_proc, fencing = hold_lease(cfg.db)
    try:
        me = f"{socket.gethostname()}:99999999"
        assert await _acquire_once(cfg.db, me) is None  # alive: its 120 s TTL is honoured
    finally:
        holder_proc.send_signal(signal.SIGKILL)
        holder_proc.wait()
    took = await _acquire_once(cfg.db, me)
    assert took is not None and took.fencing == fencing + 1


async def test_a_reused_pid_does_not_keep_a_dead_holders_lease(tmp_path: Path, sandbox: Sandbox) -> None:
    cfg = make_config(tmp_path, sandbox)
    await _acquire_once(cfg.db, "bootstrap", ttl=0)
    # A live process has the pid the dead holder had, but it started at another time.
    live = subprocess.Popen(["sleep", "600"])
    try:
        holder = f"{socket.gethostname()}:{live.pid}"
        store = await Store.open(cfg.db)
        try:
            taken = await store.write(
                lambda c: lease.acquire(c, lease.MAIN_LEASE, holder, now=time.time(), ttl=120, started="0:1")
            )
            assert taken is not None
        finally:
            await store.close()
        assert procs.alive(live.pid, procs.start_stamp(live.pid))
        took = await _acquire_once(cfg.db, "successor")
        assert took is not None and took.fencing == taken.fencing + 1
        # The same pid with its true start stamp is a live holder: not taken.
        store = await Store.open(cfg.db)
        try:
            stamp = procs.start_stamp(live.pid)
            await store.write(
                lambda c: c.execute(
                    "UPDATE leases SET holder = ?, holder_started = ?, expires_at = ?",
                    (holder, stamp, time.time() + 120),
                )
            )
        finally:
            await store.close()
        assert await _acquire_once(cfg.db, "successor-2") is None
    finally:
        live.kill()
        live.wait()
