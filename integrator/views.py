"""The read models behind ``status``, ``queue``, ``blocked`` and an emit's report: plain functions of a
connection, so the CLI can run them on a read-only ``sqlite3`` snapshot without the async store.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from integrator import checkpoint, followup, journal, outbox, queue, readiness, settings
from integrator import lease as leases
from integrator.blocked import records
from integrator.config import Config
from integrator.events import iso
from integrator.models import (
    BlockedEntry,
    CandidateView,
    EmittedCandidate,
    FaultRecord,
    InFlight,
    LeaseView,
    PauseRecord,
    PipelineView,
    QueueEntry,
    SandboxView,
    Stall,
    Status,
)


def queue_view(conn: sqlite3.Connection) -> list[QueueEntry]:
    items = queue.by_status(conn, "in_progress") + queue.by_status(conn, "queued")
    return [
        QueueEntry(**item.as_dict(), position=n + 1 if item.status == "queued" else 0)
        for n, item in enumerate(items)
    ]


def blocked_view(conn: sqlite3.Connection) -> list[BlockedEntry]:
    out = []
    for item in queue.by_status(conn, "blocked"):
        ev = records.get(conn, item.id)
        evidence = ev.evidence if ev else {}
        out.append(
            BlockedEntry(
                **item.as_dict(),
                reason_code=item.block_reason,
                blocked_on_main=item.block_main,
                conflicted_paths=evidence.get("conflicted_paths", []),
                # The summary the event carries; the untrimmed *_full texts stay in the store.
                evidence={k: v for k, v in evidence.items() if not k.endswith("_full")},
                hunks=evidence.get("hunks", {}),
                next_action=ev.next_action if ev else None,
                blocked_at=ev.updated_at if ev else None,
                follow_up=followup.record_of(conn, item.slug),
            )
        )
    return out


def candidates_for(
    conn: sqlite3.Connection, slugs: set[Any], branches: set[Any], *, since: str
) -> list[EmittedCandidate]:
    """What an emit touched (:func:`readiness.touched`), each with its queue position."""
    out = []
    for cand in readiness.touched(conn, slugs, branches, since=since):
        item = queue.get_by_candidate(conn, cand.id)
        position = queue.position(conn, item.id) if item else None
        out.append(EmittedCandidate(**cand.as_dict(), position=position))
    return out


# The setting the lease holder's verify pipeline (integrator/pipeline.py) writes on every change.
PIPELINE_SETTING = "pipeline"


def pipeline_view(conn: sqlite3.Connection, now: float) -> PipelineView | None:
    """The pipeline as the holder last wrote it, with each verify's age in seconds."""
    found = settings.get(conn, PIPELINE_SETTING)
    if not found or not found.get("runs"):
        return None
    for run in found["runs"]:
        since = run.get("since")
        run["seconds"] = round(now - datetime.fromisoformat(since).timestamp(), 1) if since else None
    return PipelineView.model_validate(found)


def verify_sandbox(cfg: Config) -> SandboxView:
    """How the verify command is isolated (what ``status`` shows beside the database's state)."""
    from integrator import isolation

    return SandboxView(**isolation.in_force(cfg).as_dict(), verify_command=cfg.verify_command)


def status(
    conn: sqlite3.Connection, cfg: Config, now: datetime, sandbox: SandboxView | None = None
) -> Status:
    mode = settings.mode(conn, cfg.mode)
    pause = settings.pause_state(conn)
    found = leases.info(conn, leases.MAIN_LEASE, now=now.timestamp())
    in_flight = None
    for item in queue.in_progress(conn):
        cp = checkpoint.load(conn, item.id)
        in_flight = InFlight(
            slug=item.slug,
            sha=item.sha,
            branch=item.branch,
            phase=cp.phase if cp else None,
            since=cp.updated_at if cp else None,
        )
    outcomes = journal.recent(conn, 10, ("integration_completed", "integration_blocked", "superseded"))
    fault = settings.get(conn, "last_fault")
    return Status(
        mode=mode["mode"],
        mode_since=mode.get("since"),
        mode_by=mode.get("by"),
        mode_reason=mode.get("reason"),
        paused=pause is not None,
        pause=PauseRecord(**pause) if pause else None,
        lease=None
        if found is None
        else LeaseView(
            holder=found.holder,
            fencing=found.fencing,
            expires=iso(datetime.fromtimestamp(found.expires_at, tz=now.tzinfo)),
        ),
        in_flight=in_flight,
        pipeline=pipeline_view(conn, now.timestamp()),
        queue=queue_view(conn),
        blocked=blocked_view(conn),
        candidates=[CandidateView(**c.as_dict()) for c in readiness.listing(conn)],
        recent_outcomes=[o.flat() for o in outcomes],
        fault=FaultRecord(**fault) if fault else None,
        outbox=outbox.backlog(conn),
        repo=str(cfg.repo),
        remote=cfg.remote,
        main_branch=cfg.main_branch,
        verify_sandbox=sandbox,
    )


def stall(conn: sqlite3.Connection, cfg: Config, now: datetime) -> Stall | None:
    """The queue has items but nothing reached an outcome for the stall limit (a pause is not a stall)."""
    if settings.pause_state(conn) is not None:
        return None
    length, oldest = queue.waiting(conn)
    if not length:
        return None
    since = max(str(oldest), queue.last_outcome_at(conn) or "")
    cutoff = iso(now - timedelta(seconds=cfg.stall_limit_s))
    if since >= cutoff:
        return None
    stalled_for = now - datetime.fromisoformat(since)
    return Stall(since=since, stalled_for_s=int(stalled_for.total_seconds()), queue_length=length)
