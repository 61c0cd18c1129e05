"""The SQLite store (docs/architecture.md, *Transactions*): schema, migrations, and one transaction per step.

Every state change is a plain function ``fn(conn) -> T`` that the store runs inside one
``BEGIN IMMEDIATE … COMMIT`` on aiosqlite's connection thread, so a step (event row + projection +
queue + transitions + outbox) commits or vanishes as a whole, and costs one thread hop instead of
one per statement. The SQL of each concept lives in the module named for it (queue, lease, …).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from integrator import dbfile
from integrator.backoff import Backoff
from integrator.errors import IntegratorError, StoreBusy, StoreError

if TYPE_CHECKING:
    import aiosqlite

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
# The other connection's write (creating the schema) takes milliseconds.
_WAL_SWITCH_WAITS = Backoff(first_s=0.005, max_s=0.1)

# Forward-only migrations; index + 1 is the schema version they produce.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        payload TEXT NOT NULL,
        received_at TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        slug TEXT,
        branch TEXT,
        sha TEXT
    );
    CREATE INDEX events_by_slug ON events(type, slug);
    CREATE INDEX events_by_branch ON events(type, branch, sha);

    CREATE TABLE candidates (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL,
        branch TEXT NOT NULL,
        sha TEXT NOT NULL,
        finalize_event_id TEXT NOT NULL,
        ready_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('waiting', 'ready', 'superseded', 'integrated', 'blocked')),
        reasons TEXT NOT NULL DEFAULT '[]',
        superseded_by TEXT,
        checked_at TEXT,
        updated_at TEXT NOT NULL,
        UNIQUE (slug, branch, sha)
    );
    CREATE INDEX candidates_by_slug ON candidates(slug);
    CREATE INDEX candidates_by_status ON candidates(status);

    CREATE TABLE queue (
        id INTEGER PRIMARY KEY,
        candidate_id INTEGER NOT NULL UNIQUE REFERENCES candidates(id),
        status TEXT NOT NULL
            CHECK (status IN ('queued', 'in_progress', 'integrated', 'blocked', 'superseded')),
        order_at TEXT NOT NULL,
        enqueued_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL,
        block_reason TEXT,
        block_main TEXT,
        block_config TEXT
    );
    CREATE INDEX queue_by_order ON queue(status, order_at, id);

    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY,
        queue_id INTEGER NOT NULL REFERENCES queue(id),
        from_status TEXT,
        to_status TEXT NOT NULL,
        reason TEXT NOT NULL,
        at TEXT NOT NULL,
        fencing INTEGER
    );
    CREATE INDEX transitions_by_queue ON transitions(queue_id);

    CREATE TABLE leases (
        key TEXT PRIMARY KEY,
        holder TEXT,
        token TEXT,
        fencing INTEGER NOT NULL DEFAULT 0,
        acquired_at REAL,
        renewed_at REAL,
        expires_at REAL NOT NULL DEFAULT 0
    );

    CREATE TABLE checkpoints (
        queue_id INTEGER PRIMARY KEY REFERENCES queue(id),
        phase TEXT NOT NULL,
        fencing INTEGER NOT NULL,
        data TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE outbox_cursors (
        consumer TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error TEXT
    );

    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE followups (
        slug TEXT PRIMARY KEY,
        todo_slug TEXT NOT NULL,
        path TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
        sha TEXT NOT NULL,
        blocked_count INTEGER NOT NULL DEFAULT 1,
        updated_at TEXT NOT NULL
    );

    CREATE TABLE predictions (
        candidate_id INTEGER PRIMARY KEY REFERENCES candidates(id),
        prediction TEXT NOT NULL CHECK (prediction IN ('would_integrate', 'would_block')),
        tree TEXT,
        conflicted_paths TEXT NOT NULL DEFAULT '[]',
        main_sha TEXT NOT NULL,
        predicted_at TEXT NOT NULL,
        actual TEXT,
        actual_detail TEXT,
        decided_at TEXT
    );

    CREATE TABLE faults (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL
    );

    CREATE TABLE blocked_evidence (
        queue_id INTEGER PRIMARY KEY REFERENCES queue(id),
        reason_code TEXT NOT NULL,
        evidence TEXT NOT NULL,
        next_action TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 2: candidates are looked up by slug or branch *and* status. With only a status index to pair
    # with, SQLite chose it and walked every waiting candidate on each event.
    """
    DROP INDEX candidates_by_slug;
    CREATE INDEX candidates_by_slug ON candidates(slug, status);
    CREATE INDEX candidates_by_branch ON candidates(branch, status);
    """,
    # 3: shadow parity compares trees: where a landed merge's tree differs from git's merge of its
    # parents (``landed_with_changes``), as a JSON list of paths.
    """
    ALTER TABLE predictions ADD COLUMN actual_paths TEXT NOT NULL DEFAULT '[]';
    """,
    # 4: the holder's process start stamp, so a same-host holder whose process is gone is taken over
    # at once instead of after its TTL (``integrator.procs``).
    """
    ALTER TABLE leases ADD COLUMN holder_started TEXT;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch a connection to WAL, waiting out another connection that holds a write lock.

    SQLite answers the switch with SQLITE_BUSY at once, without calling the busy handler, so two
    processes creating the same fresh database (two bots starting together) failed one in ~25 runs.
    Runs on aiosqlite's thread, so sleeping here does not block the event loop.
    """
    pauses = _WAL_SWITCH_WAITS.pauses(BUSY_TIMEOUT_MS / 1000)
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            pause = next(pauses, None)
            if "locked" not in str(err) or pause is None:
                raise
            time.sleep(pause)


def _migrate(conn: sqlite3.Connection) -> None:
    # Up to date and marked (every open but the first): take no write lock, so a reader such as
    # `status` never waits behind another process's write transaction.
    if (
        conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        and conn.execute("PRAGMA application_id").fetchone()[0] == dbfile.APPLICATION_ID
    ):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:  # upgraded by a newer integrator since dbfile.check looked
            raise StoreError(
                f"database has schema version {version}, newer than this integrator's {SCHEMA_VERSION}"
            )
        for index in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[index].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {index + 1}")
        conn.execute(f"PRAGMA application_id = {dbfile.APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _setup(conn: sqlite3.Connection, path: Path, recover: bool) -> None:
    # A plain function, not a method: aiosqlite's thread keeps its last job alive, and a job holding the
    # Store would keep the connection, and with it the thread, alive after the caller dropped both.
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if recover:  # the first read of a read-write connection rolls a hot journal back
        dbfile.integrity_after_recovery(conn, path)
    _enable_wal(conn)
    # FULL: an accepted event or a recorded outcome survives power loss, not only a process kill.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    _migrate(conn)


class Store:
    """One SQLite file; ``write`` runs a step in one transaction, ``read`` in a consistent snapshot."""

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        import asyncio

        self.path = path
        self._conn = conn
        # Set after every notifying write, for in-process listeners (the outbox delivery loop).
        self.changed = asyncio.Event()

    @classmethod
    async def open(cls, path: Path) -> Store:
        # Imported here, not at the top: the module's SQL helpers serve the CLI's synchronous
        # read-only paths (status, queue), which must not pay for the async driver.
        import aiosqlite

        path = Path(path)
        recover = dbfile.check(path, SCHEMA_VERSION)
        if not path.parent.is_dir():
            raise StoreError(f"database directory {path.parent} does not exist")
        # Owner-only from the first byte; SQLite gives its -wal and -shm files the same mode.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            conn = await aiosqlite.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as err:
            raise StoreError(f"cannot open database {path}: {err}") from None
        store = cls(path, conn)
        try:
            await _on_connection_thread(conn, _setup, path, recover)
        except sqlite3.OperationalError as err:
            await conn.close()
            raise operational_error(path, err) from None
        except sqlite3.DatabaseError as err:
            await conn.close()
            raise StoreError(f"database {path} is unusable: {err}") from None
        except BaseException:
            await conn.close()  # else aiosqlite's thread keeps the process alive at exit
            raise
        return store

    async def close(self) -> None:
        await self._conn.close()

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, notify: bool = False) -> T:
        """Run ``fn`` in one IMMEDIATE transaction; commit on return, roll back on any exception.

        SQLite's operational errors leave as :class:`StoreBusy` (the write lock stayed taken for the
        whole busy timeout: nothing changed, retry later) or :class:`StoreError` (read-only, disk
        full, I/O error: a state a person must fix), each with one line naming the database.
        """
        try:
            result: T = await _on_connection_thread(self._conn, _in_transaction, fn)
        except sqlite3.OperationalError as err:
            raise operational_error(self.path, err) from None
        if notify:
            self.notify()
        return result

    def notify(self) -> None:
        """Wake in-process listeners and an idle runner in another process: state they wait on changed.

        Only for real changes: the runner's own writes land on its own wake socket too, so a write
        that notifies on every cycle would turn the idle runner into a busy loop.
        """
        from integrator import wake

        self.changed.set()
        wake.poke(self.path)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside a read transaction (one consistent snapshot)."""
        try:
            result: T = await _on_connection_thread(self._conn, _in_read, fn)
        except sqlite3.OperationalError as err:
            raise operational_error(self.path, err) from None
        return result


async def _on_connection_thread(conn: aiosqlite.Connection, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(<the sqlite3 connection>, *args)`` in one hop to aiosqlite's connection thread.

    The one use of aiosqlite's private API (``_execute``, ``_conn``), on purpose: its public API has
    no call that runs a function on its thread, only one ``await`` per statement. A step as one
    synchronous function keeps its ``BEGIN IMMEDIATE … COMMIT`` whole: no other coroutine sharing the
    connection can slip a statement into the open transaction between two awaits, and a 12-statement
    emit costs one hop, not 14 (bench/store_api.py: the public API runs such steps at 0.08-0.1× the rate
    once the fsync is taken out). Checked against aiosqlite 0.22.1 (pinned); docs/architecture.md.
    """
    return await conn._execute(fn, conn._conn, *args)  # type: ignore[no-untyped-call]


def operational_error(path: Path, err: sqlite3.OperationalError) -> IntegratorError:
    """One line for an operational error: busy (transient) or a state of the file a person must fix."""
    primary = (getattr(err, "sqlite_errorcode", 0) or 0) & 0xFF
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(err):
        return StoreBusy(
            f"database {path} is locked by another process (waited {BUSY_TIMEOUT_MS // 1000}s); "
            "nothing was changed, try again"
        )
    if primary == sqlite3.SQLITE_READONLY:
        why = "is read-only (check the file's and its directory's permissions)"
    elif primary == sqlite3.SQLITE_FULL:
        why = "cannot grow: the disk is full"
    elif primary == sqlite3.SQLITE_CANTOPEN:
        why = "cannot be opened (its directory or -wal/-shm files are not accessible)"
    else:
        why = f"failed: {err}"
    return StoreError(f"database {path} {why}; nothing was changed")


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")  # inside: a failed COMMIT (disk full) must not leave the transaction open
    except BaseException:
        _rollback(conn)
        raise
    return result


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may already have rolled back by itself (disk full, I/O error): nothing left to undo.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _in_read(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN")
    try:
        return fn(conn)
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


def rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    return list(conn.execute(sql, params).fetchall())


def one(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(sql, params).fetchone()
    return row
