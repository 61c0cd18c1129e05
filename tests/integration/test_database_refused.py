"""Issue #16 "Databases": the database is the integrator's or it is refused by every command with one
line and exit 2, its bytes unchanged and nothing created beside it; a hot journal of ours is recovered."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import INTEGRATOR, cli, make_config, ok

from integrator.config import Config
from integrator.dbfile import APPLICATION_ID
from integrator.sandbox import Sandbox

SHA = "b" * 40
COMMANDS: list[list[str]] = [
    ["status"],
    ["queue"],
    ["events"],
    ["history"],
    ["blocked"],
    ["emit", "branch_pushed", "--branch", "feature/x", "--sha", SHA],
    ["run", "--once"],
    ["pause", "--reason", "x"],
    ["unpause"],
    ["resume", "one"],
    ["shadow-report"],
    ["cutover"],
    ["rollback", "--reason", "x"],
]


def files(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name.startswith("integrator.db")
    }


def foreign(tables: str, *, user_version: int = 0, application_id: int = 0) -> Callable[[Path], None]:
    def make(db: Path) -> None:
        conn = sqlite3.connect(db)
        conn.executescript(tables)
        conn.execute(f"PRAGMA user_version = {user_version}")
        conn.execute(f"PRAGMA application_id = {application_id}")
        conn.commit()
        conn.close()

    return make


def ours_then(damage: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(db: Path) -> None:
        damage(db)

    make.needs_ours = True  # type: ignore[attr-defined]
    return make


def damaged_schema(db: Path) -> None:
    data = bytearray(db.read_bytes())
    at = data.find(b"CREATE TABLE events")
    data[at + 13 : at + 19] = b"\xff\xfe\xfd\xfc\xfb\xfa"
    db.write_bytes(bytes(data))


def newer_schema(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()


def truncated(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2 + 100])


STATES: dict[str, tuple[Callable[[Path], None], str]] = {
    "foreign_v0": (foreign("CREATE TABLE notes (id INTEGER, body TEXT); INSERT INTO notes VALUES (1, 'x');"),
                   "belongs to another program"),
    "foreign_with_events_table": (foreign("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT);"),
                                  "belongs to another program"),
    "foreign_user_version_2": (foreign("CREATE TABLE things (id INTEGER);", user_version=2),
                               "belongs to another program"),
    "foreign_application_id": (foreign("CREATE TABLE t (x);", application_id=0x1234), "application_id 4660"),
    "not_sqlite": (lambda db: db.write_bytes(b"hello, this is a text file\n" * 100), "not an SQLite database"),
    "damaged_schema_not_utf8": (ours_then(damaged_schema), "corrupt"),
    "newer_schema": (ours_then(newer_schema), "schema version 99, newer"),
    "truncated": (ours_then(truncated), "corrupt"),
}  # fmt: skip


@pytest.mark.parametrize("state", list(STATES))
def test_every_command_refuses_a_database_that_is_not_ours_and_changes_no_byte(
    config: Config, state: str
) -> None:
    make, needle = STATES[state]
    if getattr(make, "needs_ours", False):
        ok(config, "status")  # our database, closed (checkpointed) by the exiting process
    make(config.db)
    before = files(config.db.parent)
    for args in COMMANDS:
        res = cli(config, *args)
        assert res.returncode == 2, (args, res.returncode, res.stderr)
        assert "Traceback" not in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1 and needle in res.stderr, (args, res.stderr)
        assert files(config.db.parent) == before, args


def test_a_new_database_is_marked_as_the_integrators_and_an_unmarked_one_of_ours_is_adopted(
    config: Config,
) -> None:
    ok(config, "status")
    conn = sqlite3.connect(config.db)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    # A database from before the mark: our tables and schema version, application_id 0.
    conn.execute("PRAGMA application_id = 0")
    conn.commit()
    conn.close()
    ok(config, "status")
    conn = sqlite3.connect(config.db)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()


HOT_WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size = 1")  # spill to the file mid-transaction: the journal becomes hot
conn.execute("BEGIN IMMEDIATE")
for i in range(3000):
    conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (f"crash-{i}", "x" * 400))
print("written", flush=True)
time.sleep(120)
"""


def test_a_hot_journal_of_ours_is_rolled_back_the_way_sqlite_means(config: Config) -> None:
    ok(config, "pause", "--reason", "before the crash")
    conn = sqlite3.connect(config.db)
    assert conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
    conn.close()
    writer = subprocess.Popen(
        [sys.executable, "-c", HOT_WRITER, str(config.db)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "written"
    writer.kill()
    writer.wait()
    journal = Path(f"{config.db}-journal")
    assert journal.exists() and journal.stat().st_size > 0
    status = ok(config, "status")
    assert "paused" in status and "before the crash" in status
    conn = sqlite3.connect(config.db)
    try:
        assert conn.execute("SELECT count(*) FROM settings WHERE key LIKE 'crash-%'").fetchone()[0] == 0
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert not journal.exists()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to drop to nobody"
)
def test_a_read_only_database_is_one_line_for_every_writing_command(tmp_path: Path) -> None:
    # As root every file is writable, so the commands run as nobody on root's 0644 database.
    shared = Path(tempfile.mkdtemp(prefix="ro-db-"))
    try:
        shared.chmod(0o755)
        sandbox = Sandbox.create(shared / "sb")
        cfg = make_config(shared, sandbox)
        ok(cfg, "status")
        for path in shared.rglob("*"):
            path.chmod(path.stat().st_mode | 0o005 if path.is_dir() else path.stat().st_mode | 0o004)
        before = files(cfg.db.parent)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", INTEGRATOR]
        for args in (["pause", "--reason", "x"], ["emit", "branch_pushed", "--branch", "b", "--sha", SHA],
                     ["rollback", "--reason", "x"]):  # fmt: skip
            res = subprocess.run(
                [*nobody, "--config", str(cfg.config_path), *args], capture_output=True, text=True, timeout=60
            )
            assert res.returncode == 2, (args, res.stderr)
            assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
            assert "is read-only for this user" in res.stderr, res.stderr
        assert files(cfg.db.parent) == before
    finally:
        shutil.rmtree(shared, ignore_errors=True)
