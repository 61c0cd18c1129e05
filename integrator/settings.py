"""Durable switches and audit (the ``settings`` table): mode, pause, faults."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from integrator.store import one, rows


def get(conn: sqlite3.Connection, key: str, default: Any = None) -> Any:
    row = one(conn, "SELECT value FROM settings WHERE key = ?", (key,))
    return json.loads(row["value"]) if row else default


def put(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value, sort_keys=True)),
    )


def delete(conn: sqlite3.Connection, key: str) -> None:
    conn.execute("DELETE FROM settings WHERE key = ?", (key,))


def mode(conn: sqlite3.Connection, default: str) -> dict[str, Any]:
    """``{mode, since, by, reason, automatic}``; the configured mode until someone changes it."""
    value = get(conn, "mode")
    if value is None:
        return {
            "mode": default,
            "since": None,
            "by": "config",
            "reason": "initial mode from integrator.toml",
            "automatic": False,
        }
    return dict(value)


def set_mode(
    conn: sqlite3.Connection, new_mode: str, *, by: str, reason: str, at: str, automatic: bool = False
) -> dict[str, Any]:
    record = {"mode": new_mode, "since": at, "by": by, "reason": reason, "automatic": automatic}
    put(conn, "mode", record)
    history = get(conn, "mode_history", [])
    history.append(record)
    put(conn, "mode_history", history[-100:])
    return record


def pause_state(conn: sqlite3.Connection) -> dict[str, Any] | None:
    value = get(conn, "paused")
    return dict(value) if value else None


def record_fault(conn: sqlite3.Connection, kind: str, message: str, *, at: str) -> int:
    """Remember an infrastructure fault; returns how many happened in a row."""
    conn.execute("INSERT INTO faults (at, kind, message) VALUES (?, ?, ?)", (at, kind, message[:2000]))
    streak = int(get(conn, "fault_streak", 0)) + 1
    put(conn, "fault_streak", streak)
    put(conn, "last_fault", {"at": at, "kind": kind, "message": message[:500], "streak": streak})
    return streak


def clear_fault_streak(conn: sqlite3.Connection) -> None:
    if get(conn, "fault_streak", 0):
        put(conn, "fault_streak", 0)
        put(conn, "last_fault", None)


def faults_since(conn: sqlite3.Connection, since: str | None) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in rows(conn, "SELECT at, kind, message FROM faults WHERE at >= ? ORDER BY id", (since or "",))
    ]
