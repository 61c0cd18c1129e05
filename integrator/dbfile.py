"""The database file is the integrator's, or it is refused without a byte changed.

The integrator marks its databases with SQLite's ``application_id`` header field. Before a read-write
connection (which would switch the file to WAL and migrate it) is ever opened, the file is read
read-only and classified: ours, empty (ours to create), a database from before the mark (our tables,
a schema version we know; it is marked on open), or anything else, which is refused.

A ``-journal`` beside a file in rollback mode after a crash is a *hot* journal: SQLite rolls it back
on the first read-write access, and that is the recovery SQLite means. It is left to do so for our
file only; a foreign file keeps its journal for its own program.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from integrator import readonly
from integrator.errors import StoreError

# "TCLI" in ASCII: teleclaude-integrator.
APPLICATION_ID = 0x54434C49
# Tables every schema version of ours has had: a database from before the mark is recognised by them.
CORE_TABLES = frozenset({"events", "candidates", "queue", "leases", "settings", "outbox"})
# sqlite3's default: the pre-check may wait out another process rolling a hot journal back.
_CHECK_TIMEOUT_S = 5.0


def check(path: Path, schema_version: int) -> bool:
    """Classify ``path`` read-only; raise StoreError (nothing written) unless it is ours or empty.

    Returns whether a hot journal waits to be rolled back by the read-write open.
    """
    if path.is_dir():
        raise StoreError(f"database {path} is a directory, not a file")
    if not path.exists() or path.stat().st_size == 0:
        return False
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK):
        raise StoreError(
            f"database {path} is read-only for this user (it and its directory must be writable); left untouched"
        )
    hot_journal = Path(f"{path}-journal").exists() and not Path(f"{path}-wal").exists()
    try:
        app_id, version, tables, verdict = _look(path, hot_journal)
    except UnicodeDecodeError:
        raise StoreError(f"database {path} is corrupt (damaged text in its schema); left untouched") from None
    except sqlite3.DatabaseError as err:
        if err.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
            raise StoreError(
                f"database {path} is not an SQLite database (bad header); left untouched"
            ) from None
        raise StoreError(f"database {path} is corrupt ({_clean(str(err))}); left untouched") from None
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables and not tables >= CORE_TABLES):
        raise StoreError(
            f"database {path} belongs to another program (application_id {app_id}, tables "
            f"{', '.join(sorted(tables)[:5]) or 'none'}); left untouched: point `db` at the integrator's file"
        )
    if app_id == 0 and (version == 0) == bool(tables):  # tables without a version, or the reverse
        raise StoreError(
            f"database {path} belongs to another program (user_version {version}, tables "
            f"{', '.join(sorted(tables)[:5]) or 'none'}); left untouched: point `db` at the integrator's file"
        )
    if verdict != "ok":
        raise StoreError(f"database {path} is corrupt ({_clean(verdict)}); left untouched")
    if version > schema_version:
        raise StoreError(
            f"database {path} has schema version {version}, newer than this integrator's {schema_version}; "
            "upgrade the integrator (left untouched)"
        )
    return hot_journal


def _look(path: Path, hot_journal: bool) -> tuple[int, int, frozenset[str], str]:
    # The header is read through SQLite, never with open(): closing any descriptor of the file drops
    # every POSIX lock this process holds on it, those of a connection already open here included.
    # Even a read-only open creates -wal/-shm beside a WAL database. With no -wal file there is no
    # open connection (WAL mode keeps one while any is open), so the file alone is the whole truth and
    # can be read as immutable, creating nothing beside it. With a -wal, read it normally (read-only).
    # With a hot journal the file alone is mid-transaction: it is classified as it stands (immutable),
    # and its integrity is judged after SQLite has rolled the journal back on the read-write open.
    wal = Path(f"{path}-wal").exists()
    ro = readonly.connect(path, immutable=not wal, timeout=_CHECK_TIMEOUT_S)
    # Damaged pages can put bytes that are not UTF-8 into names and messages.
    ro.text_factory = lambda raw: raw.decode("utf-8", "replace")
    try:
        app_id = int(ro.execute("PRAGMA application_id").fetchone()[0])
        version = int(ro.execute("PRAGMA user_version").fetchone()[0])
        tables = frozenset(
            str(r[0]) for r in ro.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        )
        # quick_check reports damage as a row, not an exception.
        verdict = "ok" if hot_journal else str(ro.execute("PRAGMA quick_check(1)").fetchone()[0])
    finally:
        ro.close()
    return app_id, version, tables, verdict


def _clean(text: str) -> str:
    """One line of printable text from SQLite's words about a damaged file."""
    return " ".join("".join(ch if ch.isprintable() else "?" for ch in text).split())[:200]


def integrity_after_recovery(conn: sqlite3.Connection, path: Path) -> None:
    """After a hot journal was rolled back, the file must be whole before anything is written."""
    verdict = str(conn.execute("PRAGMA quick_check(1)").fetchone()[0])
    if verdict != "ok":
        raise StoreError(f"database {path} is corrupt after recovering its journal ({_clean(verdict)})")
