"""The SQLite store on real files: settings, migrations, atomic steps, unusable files."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import make_config, ok, readiness_events

from integrator import journal
from integrator import store as store_mod
from integrator.config import Config
from integrator.errors import DuplicateConflict, StoreError
from integrator.events import make_event, utcnow
from integrator.sandbox import Sandbox
from integrator.service import Integrator
from integrator.store import SCHEMA_VERSION, Store

SHA = "c" * 40


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of ``directory`` with its bytes and mtime: 'untouched' means this is unchanged."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir()) if p.is_file()
    }


async def filled_database(path: Path, events: int = 300) -> None:
    """A real database with some history in it, closed cleanly (no WAL left behind)."""
    store = await Store.open(path)
    try:
        batch = [
            make_event(
                "branch_pushed", {"branch": f"b{n}", "sha": SHA, "remote": "origin", "pushed_at": utcnow()}
            )
            for n in range(events)
        ]

        def write(conn: sqlite3.Connection) -> None:
            for event in batch:
                journal.append(conn, event)

        await store.write(write)
    finally:
        await store.close()
    assert not Path(f"{path}-wal").exists()


async def test_connection_settings_and_schema_version(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db")
    try:
        got = await store.read(
            lambda c: {
                name: c.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous", "user_version")
            }
        )
    finally:
        await store.close()
    assert got == {
        "journal_mode": "wal",
        "busy_timeout": store_mod.BUSY_TIMEOUT_MS,
        "foreign_keys": 1,
        "synchronous": 2,  # FULL
        "user_version": SCHEMA_VERSION,
    }


async def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await store.write(
                lambda c: c.execute(
                    "INSERT INTO queue (candidate_id, status, order_at, enqueued_at, updated_at)"
                    " VALUES (42, 'queued', 'x', 'x', 'x')"
                )
            )
    finally:
        await store.close()


async def test_forward_migration_keeps_data_and_a_failed_one_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.db"
    await filled_database(path, events=3)
    # A later release adds a migration: opening the old file applies it once, data intact.
    monkeypatch.setattr(store_mod, "MIGRATIONS", (*store_mod.MIGRATIONS, "CREATE TABLE extra (x INTEGER)"))
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    for _ in range(2):  # the second open finds nothing to do
        store = await Store.open(path)
        try:
            version, tables, count = await store.read(
                lambda c: (
                    c.execute("PRAGMA user_version").fetchone()[0],
                    [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE name = 'extra'")],
                    c.execute("SELECT COUNT(*) FROM events").fetchone()[0],
                )
            )
        finally:
            await store.close()
        assert (version, tables, count) == (SCHEMA_VERSION + 1, ["extra"], 3)
    # A migration that fails half way leaves the file at its old version with no half-made table.
    broken = "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1)"
    monkeypatch.setattr(store_mod, "MIGRATIONS", (*store_mod.MIGRATIONS, broken))
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 2)
    with pytest.raises(StoreError, match="no_such_table"):
        await Store.open(path)
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert check.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'").fetchone()[0] == 0
    finally:
        check.close()


async def test_a_step_commits_whole_or_not_at_all(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    try:
        event = make_event(
            "branch_pushed", {"branch": "b", "sha": SHA, "remote": "origin", "pushed_at": utcnow()}
        )

        def half(conn: sqlite3.Connection) -> None:
            journal.append(conn, event)
            raise RuntimeError("crash after the first insert")

        with pytest.raises(RuntimeError):
            await store.write(half)
        assert await store.read(lambda c: journal.recent(c, 10)) == []
        # The connection is usable after a rollback.
        await store.write(lambda c: journal.append(c, event))
        assert len(await store.read(lambda c: journal.recent(c, 10))) == 1
    finally:
        await store.close()


async def test_an_emitted_batch_with_a_conflict_stores_nothing(integ: Integrator, config: Config) -> None:
    first = readiness_events("feat-a", "feature/a", SHA)
    await integ.emit(first[2:])  # finalize_ready by worker "w"
    before = await integ.store.read(_counts)
    batch = readiness_events("feat-b", "feature/b", SHA) + readiness_events(
        "feat-a", "feature/a", SHA, worker="other"
    )
    with pytest.raises(DuplicateConflict):
        await integ.emit(batch)
    assert await integ.store.read(_counts) == before


def _counts(conn: sqlite3.Connection) -> dict[str, Any]:
    return {
        table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in ("events", "candidates", "queue", "transitions", "outbox")
    }


async def test_two_connections_see_the_same_truth(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    one, two = await Store.open(path), await Store.open(path)
    try:
        event = make_event(
            "branch_pushed", {"branch": "b", "sha": SHA, "remote": "origin", "pushed_at": utcnow()}
        )
        await one.write(lambda c: journal.append(c, event))
        seen = await two.read(lambda c: journal.recent(c, 5))
        assert [e.event_id for e in seen] == [event.event_id]
        assert (await two.write(lambda c: journal.append(c, event))).outcome == "duplicate"
    finally:
        await one.close()
        await two.close()


# --- files the store must refuse, leaving them exactly as they were --------------------------------


def _newer_schema(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


def _damage_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) > 6 * page
    data[2 * page : 5 * page] = b"\xab" * (3 * page)  # leave page 1 (the header) intact
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _not_sqlite(path: Path) -> None:
    path.write_text("these are my holiday notes, not a database\n" * 100)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (_not_sqlite, "is not an SQLite database (bad header); left untouched"),
        (
            _newer_schema,
            f"has schema version {SCHEMA_VERSION + 1}, newer than this integrator's {SCHEMA_VERSION}",
        ),
        (_damage_pages, "is corrupt"),
        (_truncate, "is corrupt"),
    ],
)
async def test_unusable_database_is_refused_and_left_untouched(
    tmp_path: Path, spoil: Any, message: str
) -> None:
    directory = tmp_path / "db"
    directory.mkdir()
    path = directory / "integrator.db"
    await filled_database(path)
    spoil(path)
    before = snapshot(directory)
    with pytest.raises(StoreError) as info:
        await Store.open(path)
    assert str(path) in info.value.message and message in info.value.message
    assert info.value.exit_status == 2
    assert snapshot(directory) == before  # same bytes, same mtime, no -wal/-shm left beside it


async def test_a_directory_or_a_missing_parent_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        await Store.open(tmp_path / "absent" / "i.db")
    (tmp_path / "adir").mkdir()
    with pytest.raises(StoreError, match="adir"):
        await Store.open(tmp_path / "adir")


async def test_an_empty_file_becomes_a_fresh_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    store = await Store.open(path)
    await store.close()
    assert os.path.getsize(path) > 0
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        check.close()


async def test_paths_with_uri_characters_work(tmp_path: Path) -> None:
    # The read-only pre-check opens the file by URI: '#', '?' and '%' must not cut or change the path.
    directory = tmp_path / "a#b?c%20d"
    directory.mkdir()
    await filled_database(directory / "i.db", events=2)
    _newer_schema(directory / "i.db")
    with pytest.raises(StoreError, match="newer than this integrator"):
        await Store.open(directory / "i.db")


async def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    old = sqlite3.connect(path)
    old.executescript(store_mod.MIGRATIONS[0])
    old.execute(
        "INSERT INTO candidates (slug, branch, sha, finalize_event_id, ready_at, received_at, status, updated_at)"
        " VALUES ('s', 'b', ?, 'e', 't', 't', 'waiting', 't')",
        (SHA,),
    )
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    store = await Store.open(path)
    try:
        version, indexes, kept = await store.read(
            lambda c: (
                c.execute("PRAGMA user_version").fetchone()[0],
                {
                    name: [r[2] for r in c.execute(f"PRAGMA index_info({name})")]
                    for name in ("candidates_by_slug", "candidates_by_branch")
                },
                c.execute("SELECT slug, sha FROM candidates").fetchall(),
            )
        )
    finally:
        await store.close()
    assert version == SCHEMA_VERSION >= 2
    assert indexes == {"candidates_by_slug": ["slug", "status"], "candidates_by_branch": ["branch", "status"]}
    assert [tuple(r) for r in kept] == [("s", SHA)]


async def test_opening_and_reading_never_wait_for_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    await filled_database(path, events=3)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write transaction
    writer.execute("INSERT INTO settings (key, value) VALUES ('k', 'v')")
    try:
        # WAL lets readers run beside a writer: opening an up-to-date database must not take the
        # write lock (it would wait out the busy timeout, 10 s, and fail).
        store = await asyncio.wait_for(Store.open(path), timeout=5)
        try:
            seen = await asyncio.wait_for(store.read(lambda c: journal.recent(c, 10)), timeout=5)
        finally:
            await store.close()
        assert len(seen) == 3
    finally:
        writer.execute("ROLLBACK")
        writer.close()


async def test_the_database_credential_and_state_are_owner_only(tmp_path: Path) -> None:
    """Created 0600 (files) and 0700 (directories) from the start, though the umask would allow more."""
    sandbox = Sandbox.create(tmp_path / "sb")
    cfg = make_config(tmp_path, sandbox, state_dir=str(tmp_path / "private" / "state"))
    old = os.umask(0o022)
    try:
        ok(cfg, "hooks", "install", "--remote", str(sandbox.remote))
        async with await Integrator.open(cfg) as integ:
            await integ.status()  # a live connection: the -wal and -shm files exist now
            files = [cfg.db, Path(f"{cfg.db}-wal"), Path(f"{cfg.db}-shm"), cfg.credential_file]
            files.append(cfg.state_dir / "authority.json")
            modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in files}
    finally:
        os.umask(old)
    assert modes == {path.name: 0o600 for path in files}
    assert stat.S_IMODE(cfg.state_dir.stat().st_mode) == 0o700
