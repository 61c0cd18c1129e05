"""A database whose write lock another process holds (a holder frozen mid-transaction) is waited out:
standbys and the bot keep running and take over afterwards, ``emit`` gives up within its bound with
one line, and SQLite's other operational errors are one line too (issue 13 items 3 and 6)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import INTEGRATOR, cli, db_rows, emit_ready, make_config, push_feature, wait_for

from integrator.config import Config
from integrator.errors import StoreBusy, StoreError
from integrator.sandbox import Sandbox
from integrator.store import BUSY_TIMEOUT_MS, Store

BOT = str(Path(sys.executable).with_name("teleclaude-bot"))

# Takes the lease as a live same-host holder with a 1 s TTL, then sits on the write lock.
LOCKER = textwrap.dedent(
    """
    import os, socket, sqlite3, sys, time
    from integrator import lease, procs
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.row_factory = sqlite3.Row
    holder = f"{socket.gethostname()}:{os.getpid()}"
    lease.acquire(conn, lease.MAIN_LEASE, holder, now=time.time(), ttl=1, started=procs.own_stamp())
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE settings SET value = value")
    open(sys.argv[2], "w").close()
    time.sleep(float(sys.argv[3]))
    conn.execute("COMMIT")
    open(sys.argv[2] + ".released", "w").close()
    time.sleep(600)  # alive: the lease is taken because it expired, not because its holder died
    """
)


class Locker:
    def __init__(self, db: Path, tmp: Path, seconds: float) -> None:
        self.flag = tmp / "locked"
        self.popen = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), str(self.flag), str(seconds)])
        wait_for(self.flag.exists, what="the locker holds the write lock")
        self.locked_at = time.monotonic()

    def released(self) -> bool:
        return Path(f"{self.flag}.released").exists()


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    found: list[subprocess.Popen[bytes]] = []
    yield found
    for p in found:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def test_emit_gives_up_within_its_bound_with_one_line(
    tmp_path: Path, sandbox: Sandbox, started: list[subprocess.Popen[bytes]]
) -> None:
    cfg = make_config(tmp_path, sandbox)
    feature = push_feature(sandbox, "late", {"l.txt": "l\n"})
    asyncio.run(emit_ready(cfg, feature))  # creates the database
    locker = Locker(cfg.db, tmp_path, 30)
    started.append(locker.popen)  # type: ignore[arg-type]
    t0 = time.monotonic()
    res = cli(cfg, "emit", "branch_pushed", "--branch", "other", "--sha", "b" * 40, "--remote", "origin")
    took = time.monotonic() - t0
    assert res.returncode == 75, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    assert "is locked by another process" in res.stderr and str(cfg.db) in res.stderr
    bound = BUSY_TIMEOUT_MS / 1000
    assert bound <= took < bound + 10, took
    locker.popen.kill()
    assert db_rows(cfg, "SELECT * FROM events WHERE branch = 'other'") == []


def test_run_and_bot_survive_a_15s_write_lock_then_take_over(
    tmp_path: Path, sandbox: Sandbox, started: list[subprocess.Popen[bytes]]
) -> None:
    cfg = make_config(tmp_path, sandbox, lease_ttl_s=2.0, lease_renew_s=0.5)
    feature = push_feature(sandbox, "after-lock", {"a.txt": "a\n"})
    asyncio.run(emit_ready(cfg, feature))
    locker = Locker(cfg.db, tmp_path, 15)
    started.append(locker.popen)  # type: ignore[arg-type]
    logs = {name: tmp_path / f"{name}.err" for name in ("run", "bot")}
    argv = {
        "run": [INTEGRATOR, "--config", str(cfg.config_path), "run", "-v"],
        "bot": [BOT, "--config", str(cfg.config_path), "-v"],
    }
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    procs = {}
    for name in ("run", "bot"):
        with logs[name].open("w") as err:
            procs[name] = subprocess.Popen(argv[name], stdout=subprocess.DEVNULL, stderr=err, env=env)
        started.append(procs[name])
    wait_for(
        lambda: all("event=store_busy" in p.read_text() for p in logs.values()),
        timeout=40,
        what="both wait out the lock",
    )
    wait_for(locker.released, timeout=30, what="the locker lets go")
    assert all(p.poll() is None for p in procs.values()), {n: logs[n].read_text()[-2000:] for n in logs}
    wait_for(
        lambda: db_rows(cfg, "SELECT q.status FROM queue q")[0]["status"] == "integrated",
        timeout=30,
        what="the candidate integrated after the lock",
    )
    holder = db_rows(cfg, "SELECT holder FROM leases")[0]["holder"]
    assert holder in {f"{os.uname().nodename}:{p.pid}" for p in procs.values()}
    for name, p in procs.items():
        assert p.poll() is None, logs[name].read_text()[-2000:]
        p.send_signal(signal.SIGTERM)
    for name, p in procs.items():
        assert p.wait(30) == 0, logs[name].read_text()[-2000:]
        assert "Traceback" not in logs[name].read_text()


@pytest.mark.parametrize(
    ("pragma", "says"),
    [("PRAGMA query_only = 1", "is read-only"), ("PRAGMA max_page_count = 1", "the disk is full")],
)
async def test_read_only_and_full_databases_are_one_line_store_errors(
    config: Config, pragma: str, says: str
) -> None:
    """SQLite's own switches put the real file in the state (root ignores file modes, so no chmod)."""
    store = await Store.open(config.db)
    try:
        before = await store.read(lambda c: c.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        await store._conn.execute(pragma)
        with pytest.raises(StoreError) as caught:
            await store.write(
                lambda c: c.execute(
                    "INSERT INTO faults (at, kind, message) VALUES ('t', 'k', ?)", ("x" * 9000,)
                )
            )
        assert says in str(caught.value) and "\n" not in str(caught.value)
        assert not isinstance(caught.value, StoreBusy)
        # The connection is still usable and nothing was written.
        assert await store.read(lambda c: c.execute("SELECT COUNT(*) FROM faults").fetchone()[0]) == 0
        assert await store.read(lambda c: c.execute("SELECT COUNT(*) FROM events").fetchone()[0]) == before
    finally:
        await store.close()
