"""A read-only snapshot of the store for processes that must not write: ``rollout status``, the hook install.

:func:`read_store` opens the SQLite file with plain ``sqlite3`` and a ``mode=ro`` URI: it never
creates the database, never migrates it, never takes a write lock and never waits for a writer (a
WAL reader reads the last committed snapshot). A database that is absent or unusable raises
:class:`StoreUnavailable`, which callers turn into a sentence.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Final, TypeVar
from urllib.parse import quote

T = TypeVar("T")

_READ_TIMEOUT_S: Final = 2.0


class StoreUnavailable(Exception):
    """The database cannot be read: ``absent`` when there is no file, ``uninitialised`` when it is empty."""

    def __init__(self, message: str, *, absent: bool = False, uninitialised: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.absent = absent
        self.uninitialised = uninitialised


def connect(db: Path, *, immutable: bool, timeout: float = _READ_TIMEOUT_S) -> sqlite3.Connection:
    """The one read-only opener (this module's snapshots, the store's pre-check in ``dbfile``): a
    ``mode=ro`` URI never creates the file; ``immutable`` also creates no -wal/-shm beside it, for a
    file no connection has open (no -wal)."""
    flags = "&immutable=1" if immutable else ""
    conn = sqlite3.connect(f"file:{quote(str(db))}?mode=ro{flags}", uri=True, timeout=timeout)
    conn.row_factory = sqlite3.Row
    return conn


def _check_schema(conn: sqlite3.Connection, db: Path) -> None:
    from integrator.store import SCHEMA_VERSION

    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == 0:
        raise StoreUnavailable(f"database {db}: not initialised (run `integrator init`)", uninitialised=True)
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"database {db}: schema version {version} is newer than this integrator's {SCHEMA_VERSION}"
        )


def read_store(db: Path, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(conn)`` on a read-only connection to ``db``, inside one read transaction (one snapshot).

    Raises :class:`StoreUnavailable` for a missing, non-SQLite, damaged or newer database.
    """
    db = Path(db)
    if not db.is_file():
        if db.exists():
            raise StoreUnavailable(f"database {db}: not a file")
        raise StoreUnavailable(f"database {db}: absent (nothing emitted yet)", absent=True)
    # As in Store's own pre-check: without a -wal (no connection open anywhere) or -journal the file is
    # the whole truth, and reading it as immutable creates no -wal/-shm beside it. A writer opening the
    # file in between can make that read fail; the plain read-only retry then reads its snapshot.
    sidecars = (Path(f"{db}-wal"), Path(f"{db}-journal"))
    attempts = (False,) if any(p.exists() for p in sidecars) else (True, False)
    last: sqlite3.Error | None = None
    for immutable in attempts:
        try:
            with closing(connect(db, immutable=immutable)) as conn:
                conn.execute("BEGIN")
                try:
                    _check_schema(conn, db)
                    return fn(conn)
                finally:
                    conn.rollback()
        except sqlite3.Error as err:
            last = err
            if immutable and not Path(f"{db}-wal").exists():
                # No writer appeared: the file itself is unreadable (damaged, foreign). A plain open
                # would create -wal/-shm beside a file that must keep every byte; the store says why.
                break
    if isinstance(last, sqlite3.DatabaseError) and last.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
        raise StoreUnavailable(f"database {db}: not an SQLite database")
    raise StoreUnavailable(f"database {db}: unreadable ({last})")
