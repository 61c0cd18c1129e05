"""The append-only event log: store an event once, by its idempotency key."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from integrator.errors import DuplicateConflict
from integrator.events import CONTENT_CHECKED, Event, content_of, iso
from integrator.models import JournalEntry
from integrator.store import one, rows


@dataclass(frozen=True)
class Appended:
    event: Event
    outcome: Literal["stored", "duplicate"]
    seq: int


def append(conn: sqlite3.Connection, event: Event) -> Appended:
    """Insert ``event`` unless its key is known; a known key with other content is a conflict."""
    existing = one(
        conn, "SELECT seq, type, payload FROM events WHERE idempotency_key = ?", (event.idempotency_key,)
    )
    if existing is not None:
        if event.type in CONTENT_CHECKED and content_of(json.loads(existing["payload"])) != event.content():
            raise DuplicateConflict(
                f"{event.type}: an event with the same identity but different content is already stored "
                f"(key {event.idempotency_key[:12]}); refusing it"
            )
        return Appended(event, "duplicate", existing["seq"])
    data = event.payload.model_dump(mode="json")
    cur = conn.execute(
        "INSERT INTO events (event_id, type, payload, received_at, idempotency_key, slug, branch, sha)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.event_id,
            event.type,
            event.payload_json(),
            iso(event.received_at),
            event.idempotency_key,
            data.get("slug"),
            data.get("branch"),
            data.get("sha"),
        ),
    )
    return Appended(event, "stored", int(cur.lastrowid or 0))


def recent(conn: sqlite3.Connection, limit: int, types: tuple[str, ...] = ()) -> list[JournalEntry]:
    where = f"WHERE type IN ({','.join('?' * len(types))})" if types else ""
    found = rows(
        conn,
        f"SELECT seq, event_id, type, payload, received_at FROM events {where} ORDER BY seq DESC LIMIT ?",
        (*types, limit),
    )
    return [
        JournalEntry(
            seq=r["seq"],
            event_id=r["event_id"],
            type=r["type"],
            received_at=r["received_at"],
            payload=json.loads(r["payload"]),
        )
        for r in found
    ]


def payload_field(conn: sqlite3.Connection, event_id: str, field: str) -> str | None:
    """One field of an event's payload (None if the event or the field is absent, or empty)."""
    row = one(
        conn, "SELECT json_extract(payload, '$.' || ?) AS v FROM events WHERE event_id = ?", (field, event_id)
    )
    return str(row["v"]) if row and row["v"] else None


def approved(conn: sqlite3.Connection, slug: str, sha: str) -> bool:
    """A review_approved of the slug at this sha was received."""
    found = one(
        conn,
        "SELECT 1 FROM events WHERE type = 'review_approved' AND slug = ? AND sha = ? LIMIT 1",
        (slug, sha),
    )
    return found is not None


def latest_approval(conn: sqlite3.Connection, slug: str) -> tuple[str, dict[str, Any]] | None:
    """(sha, payload) of the slug's newest review_approved, if any."""
    row = one(
        conn,
        "SELECT sha, payload FROM events WHERE type = 'review_approved' AND slug = ? ORDER BY seq DESC LIMIT 1",
        (slug,),
    )
    return (str(row["sha"]), json.loads(row["payload"])) if row else None


def pushed(conn: sqlite3.Connection, branch: str, sha: str, remote: str) -> bool:
    """A branch_pushed of ``branch`` at ``sha`` to ``remote`` was received."""
    found = one(
        conn,
        "SELECT 1 FROM events WHERE type = 'branch_pushed' AND branch = ? AND sha = ?"
        " AND json_extract(payload, '$.remote') = ? LIMIT 1",
        (branch, sha, remote),
    )
    return found is not None


def totals(conn: sqlite3.Connection) -> tuple[int, str | None]:
    """How many events the journal holds and when the newest was received."""
    total, newest = conn.execute("SELECT count(*), max(received_at) FROM events").fetchone()
    return int(total), newest
