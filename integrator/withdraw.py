"""Withdrawing a candidate: off the queue on a person's word, audited and notified; it never lands.

A candidate that is waiting, ready, queued or blocked is withdrawn in one transaction. One in flight
belongs to the lease holder: the request is stored, and the workflow honours it in the fenced
checkpoint write before each side effect, the last one being the write before the push
(``tested``). Once that checkpoint exists the push is under way, so a request then is refused: the
candidate finishes, and nothing is ever half-pushed.

The queue keeps its statuses (``superseded`` is the terminal "never lands" one); the transition's
reason, the candidate's reason code ``withdrawn`` and the ``candidate_withdrawn`` event say why.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from integrator import checkpoint, journal, notifications, outbox, queue, readiness, settings
from integrator.errors import InvalidInput, Refused
from integrator.events import check_slug, make_event
from integrator.journal import append

REASON_MAX = 500
# From this checkpoint on, the push may already be on the wire.
PUSHING = frozenset({"tested", "pushed", "recorded"})
_LIVE = ("waiting", "ready", "blocked")


def _key(queue_id: int) -> str:
    return f"withdraw_request:{queue_id}"


def check_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not text:
        raise InvalidInput("reason: a withdrawal needs a reason")
    if len(text) > REASON_MAX:
        raise InvalidInput(f"reason: at most {REASON_MAX} characters")
    return text


def emitted_by(conn: sqlite3.Connection, cand: readiness.Candidate) -> str | None:
    """The ``worker`` of the candidate's finalize_ready (who may withdraw their own work)."""
    return journal.payload_field(conn, cand.finalize_event_id, "worker")


def request(conn: sqlite3.Connection, slug: str, *, by: str, reason: str, now: str) -> dict[str, Any]:
    """Withdraw the slug's live candidate now, or ask the lease holder to stop it before its push."""
    try:
        check_slug(slug)
    except ValueError as err:
        raise InvalidInput(f"slug: {err}") from None
    why = check_reason(reason)
    cand = readiness.live_for_slug(conn, slug)
    if cand is None:
        raise Refused(f"{slug} has no candidate that could still land (nothing to withdraw)")
    item = queue.get_by_candidate(conn, cand.id)
    if item is None or item.status != "in_progress":
        return finish(conn, cand, item, by=by, reason=why, now=now)
    cp = checkpoint.load(conn, item.id)
    if cp is not None and cp.phase in PUSHING:
        raise Refused(
            f"{slug} is being pushed now (phase {cp.phase}): too late to withdraw; it lands or blocks"
        )
    settings.put(conn, _key(item.id), {"by": by, "reason": why, "at": now})
    return {"slug": slug, "sha": cand.sha, "branch": cand.branch, "was": "in_progress", "state": "stopping"}


def pending(conn: sqlite3.Connection, queue_id: int) -> dict[str, Any] | None:
    found = settings.get(conn, _key(queue_id))
    return found if isinstance(found, dict) else None


def finish(
    conn: sqlite3.Connection,
    cand: readiness.Candidate,
    item: queue.Item | None,
    *,
    by: str,
    reason: str,
    now: str,
    fencing: int | None = None,
) -> dict[str, Any]:
    """Record the withdrawal: queue transition, candidate status, event and notification (one transaction)."""
    was = item.status if item is not None else cand.status
    if item is not None:
        queue.transition(
            conn,
            item.id,
            item.status,
            "superseded",
            reason=f"withdrawn by {by}: {reason}",
            now=now,
            fencing=fencing,
        )
        checkpoint.delete(conn, item.id)
        settings.delete(conn, _key(item.id))
    readiness.set_status(
        conn, cand.id, "superseded", readiness.Reason("withdrawn", f"withdrawn by {by}: {reason}"), now=now
    )
    payload = {
        "slug": cand.slug,
        "branch": cand.branch,
        "sha": cand.sha,
        "by": by,
        "reason": reason,
        "was": was,
    }
    append(conn, make_event("candidate_withdrawn", {**payload, "withdrawn_at": now}))
    outbox.add(conn, notifications.CandidateWithdrawn(**payload, at=now), now=now)
    return {**payload, "state": "withdrawn"}


def honour(conn: sqlite3.Connection, item: queue.Item, *, now: str, fencing: int) -> dict[str, Any] | None:
    """In the lease holder's fenced write: finish a pending withdrawal of the in-flight ``item``."""
    asked = pending(conn, item.id)
    if asked is None:
        return None
    cand = readiness.get(conn, item.candidate_id)
    current = queue.get(conn, item.id)
    assert cand is not None and current is not None
    return finish(
        conn, cand, current, by=str(asked["by"]), reason=str(asked["reason"]), now=now, fencing=fencing
    )
