"""The readiness projection (README, *Readiness*): one row per candidate (slug, branch, sha) with its reasons.

Database conditions (newest finalize, approval at this sha, branch_pushed) are applied in the
transaction that stores the event. Git conditions (the branch tip, reachability, already on main)
are checked in a *cycle*: one fetch, then every candidate that waits only on git.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from integrator import git, journal, notifications, outbox, queue
from integrator.errors import GitError
from integrator.events import Event, FinalizeReady, iso, make_event, utcnow
from integrator.fetching import Unfetched, fetch_remote
from integrator.journal import append
from integrator.store import Store, one, rows

# Reasons that only a git check can clear.
GIT_CODES = frozenset({"git_pending", "branch_missing", "branch_moved", "not_reachable", "fetch_failed"})


@dataclass(frozen=True)
class Reason:
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Candidate:
    id: int
    slug: str
    branch: str
    sha: str
    status: str
    ready_at: str
    received_at: str
    finalize_event_id: str
    reasons: tuple[Reason, ...]
    superseded_by: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "branch": self.branch,
            "sha": self.sha,
            "status": self.status,
            "ready_at": self.ready_at,
            "reasons": [r.message for r in self.reasons],
            "reason_codes": [r.code for r in self.reasons],
            "superseded_by": self.superseded_by,
        }


def _candidate(row: sqlite3.Row) -> Candidate:
    reasons = tuple(Reason(r["code"], r["message"]) for r in json.loads(row["reasons"]))
    return Candidate(
        row["id"],
        row["slug"],
        row["branch"],
        row["sha"],
        row["status"],
        row["ready_at"],
        row["received_at"],
        row["finalize_event_id"],
        reasons,
        row["superseded_by"],
    )


def get(conn: sqlite3.Connection, candidate_id: int) -> Candidate | None:
    row = one(conn, "SELECT * FROM candidates WHERE id = ?", (candidate_id,))
    return _candidate(row) if row else None


def newest_for_slug(conn: sqlite3.Connection, slug: str) -> Candidate | None:
    row = one(
        conn,
        "SELECT * FROM candidates WHERE slug = ? ORDER BY ready_at DESC, received_at DESC, finalize_event_id DESC"
        " LIMIT 1",
        (slug,),
    )
    return _candidate(row) if row else None


def touched(conn: sqlite3.Connection, slugs: set[Any], branches: set[Any], *, since: str) -> list[Candidate]:
    """The live candidates of these slugs and branches (oldest ready first), then those finished since
    ``since`` (newest first): what an emit touched.

    Found through the slug and branch indexes, never by listing candidates: an emit's cost must not
    grow with the number of candidates in the database.
    """
    lookups = [
        (
            f"SELECT * FROM candidates WHERE {column} IN ({','.join('?' * len(values))})",
            values,
        )
        for column, values in (("slug", slugs), ("branch", branches))
        if values
    ]
    if not lookups:
        return []
    found = rows(
        conn, " UNION ".join(sql for sql, _ in lookups), tuple(v for _, values in lookups for v in values)
    )
    live = sorted(
        (r for r in found if r["status"] in ("waiting", "ready", "blocked")),
        key=lambda r: (r["ready_at"], r["id"]),
    )
    done = sorted(
        (r for r in found if r["status"] in ("integrated", "superseded") and r["updated_at"] >= since),
        key=lambda r: (r["updated_at"], -r["id"]),
        reverse=True,
    )
    return [_candidate(row) for row in [*live, *done]]


def live_for_slug(conn: sqlite3.Connection, slug: str) -> Candidate | None:
    """The slug's candidate that could still land (newest first), if any."""
    row = one(
        conn,
        "SELECT * FROM candidates WHERE slug = ? AND status IN ('waiting', 'ready', 'blocked')"
        " ORDER BY ready_at DESC, received_at DESC, finalize_event_id DESC LIMIT 1",
        (slug,),
    )
    return _candidate(row) if row else None


def live_slugs(conn: sqlite3.Connection, prefix: str, limit: int) -> list[str]:
    """Slugs of live candidates starting with ``prefix`` (taken literally), for autocomplete."""
    found = rows(
        conn,
        "SELECT DISTINCT slug FROM candidates WHERE slug LIKE ? ESCAPE '\\'"
        " AND status IN ('waiting', 'ready', 'blocked') ORDER BY slug LIMIT ?",
        (prefix.replace("%", "\\%").replace("_", "\\_") + "%", limit),
    )
    return [r["slug"] for r in found]


def count_by_status(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    return [
        (str(r[0]), int(r[1]))
        for r in conn.execute("SELECT status, count(*) FROM candidates GROUP BY status")
    ]


def listing(conn: sqlite3.Connection, *, limit: int = 200) -> list[Candidate]:
    """Live candidates first (waiting, ready, blocked), then the most recent finished ones."""
    live = rows(
        conn,
        "SELECT * FROM candidates WHERE status IN ('waiting', 'ready', 'blocked') ORDER BY ready_at, id LIMIT ?",
        (limit,),
    )
    done = rows(
        conn,
        "SELECT * FROM candidates WHERE status IN ('integrated', 'superseded') ORDER BY updated_at DESC LIMIT ?",
        (max(0, min(20, limit - len(live))),),
    )
    return [_candidate(r) for r in [*live, *done]]


def _set(
    conn: sqlite3.Connection,
    candidate_id: int,
    *,
    status: str,
    reasons: list[Reason],
    now: str,
    superseded_by: str | None = None,
) -> None:
    conn.execute(
        "UPDATE candidates SET status = ?, reasons = ?, updated_at = ?, superseded_by = COALESCE(?, superseded_by)"
        " WHERE id = ?",
        (status, json.dumps([r.as_dict() for r in reasons]), now, superseded_by, candidate_id),
    )


def set_status(conn: sqlite3.Connection, candidate_id: int, status: str, reason: Reason, *, now: str) -> None:
    _set(conn, candidate_id, status=status, reasons=[reason], now=now)


# --- applying readiness events --------------------------------------------------------------------


def apply(conn: sqlite3.Connection, event: Event, *, remote: str, now: str) -> None:
    """Update the projection for one newly stored readiness event (same transaction as the insert)."""
    data = event.payload.model_dump(mode="json")
    if isinstance(event.payload, FinalizeReady):
        conn.execute(
            "INSERT OR IGNORE INTO candidates (slug, branch, sha, finalize_event_id, ready_at, received_at, status,"
            " reasons, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'waiting', '[]', ?)",
            (
                data["slug"],
                data["branch"],
                data["sha"],
                event.event_id,
                iso(event.payload.ready_at),
                iso(event.received_at),
                now,
            ),
        )
        _resolve_slug(conn, data["slug"], now=now)
        affected = rows(
            conn, "SELECT * FROM candidates WHERE slug = ? AND status = 'waiting'", (data["slug"],)
        )
    elif event.type == "review_approved":
        affected = rows(
            conn, "SELECT * FROM candidates WHERE slug = ? AND status = 'waiting'", (data["slug"],)
        )
    elif event.type == "branch_pushed":
        affected = rows(
            conn, "SELECT * FROM candidates WHERE branch = ? AND status = 'waiting'", (data["branch"],)
        )
    else:
        return
    for row in affected:
        evaluate(conn, _candidate(row), remote=remote, now=now)


def _resolve_slug(conn: sqlite3.Connection, slug: str, *, now: str) -> None:
    """Supersede every live candidate of ``slug`` but the newest (total order: ready_at, received_at, id)."""
    newest = newest_for_slug(conn, slug)
    if newest is None:
        return
    for row in rows(
        conn,
        "SELECT * FROM candidates WHERE slug = ? AND id != ? AND status IN ('waiting', 'ready', 'blocked')",
        (slug, newest.id),
    ):
        supersede(conn, _candidate(row), newest.sha, now=now)


def supersede(conn: sqlite3.Connection, cand: Candidate, by_sha: str, *, now: str) -> bool:
    """Mark ``cand`` superseded, with its queue transition, event and notification; False if in flight."""
    item = queue.get_by_candidate(conn, cand.id)
    if item is not None and item.status == "in_progress":
        # The lease holder owns in-flight work: it re-checks readiness and records the supersession itself.
        return False
    if item is not None and item.status in ("queued", "blocked"):
        queue.transition(
            conn, item.id, item.status, "superseded", reason=f"superseded by {by_sha[:10]}", now=now
        )
    _set(
        conn,
        cand.id,
        status="superseded",
        reasons=[Reason("superseded", f"superseded by a newer finalize_ready ({by_sha[:10]})")],
        now=now,
        superseded_by=by_sha,
    )
    event = make_event(
        "superseded",
        {
            "slug": cand.slug,
            "branch": cand.branch,
            "sha": cand.sha,
            "superseded_by": by_sha,
            "superseded_at": now,
        },
    )
    append(conn, event)
    superseded = notifications.CandidateSuperseded(
        slug=cand.slug, branch=cand.branch, sha=cand.sha, superseded_by=by_sha
    )
    outbox.add(conn, superseded, now=now)
    return True


def db_reasons(conn: sqlite3.Connection, cand: Candidate, *, remote: str) -> list[Reason]:
    """The unmet database conditions: an approval at this sha, a branch_pushed of it (the newest finalize is kept by supersession)."""
    reasons = []
    if not journal.approved(conn, cand.slug, cand.sha):
        latest = journal.latest_approval(conn, cand.slug)
        if latest is None:
            reasons.append(Reason("no_approval", f"no review_approved for {cand.slug} yet"))
        else:
            sha, payload = latest
            reasons.append(
                Reason(
                    "approval_for_other_sha",
                    f"review_approved is for {sha[:10]} (round {payload.get('review_round')}), not for "
                    f"{cand.sha[:10]}: approval does not carry over to a new sha",
                )
            )
    if not journal.pushed(conn, cand.branch, cand.sha, remote):
        reasons.append(
            Reason("no_push", f"no branch_pushed for {cand.branch} at {cand.sha[:10]} on {remote}")
        )
    return reasons


def evaluate(conn: sqlite3.Connection, cand: Candidate, *, remote: str, now: str) -> list[Reason]:
    """Re-derive a waiting candidate's database reasons; when none remain it waits for the git check."""
    reasons = db_reasons(conn, cand, remote=remote)
    if not reasons:
        reasons = [Reason("git_pending", f"waiting for the git check (fetch of {remote})")]
    if cand.status == "waiting" and list(cand.reasons) == reasons:
        return reasons  # unchanged: rewriting the row would only add pages to this event's commit
    _set(conn, cand.id, status="waiting", reasons=reasons, now=now)
    return reasons


# --- the git check cycle ----------------------------------------------------------------------------


@dataclass
class GitView:
    """What one fetch tells: the main tip and every branch tip of the remote."""

    main_sha: str | None
    main_branch: str  # the configured name, for the sentences a user reads
    tips: dict[str, str] = field(default_factory=dict)
    # Tips of remote branches already on main, when a check cycle asked (one git call for all).
    merged: frozenset[str] | None = None
    # Branches whose tip could not be fetched (their tips above are what the remote lists).
    unfetched: dict[str, Unfetched] = field(default_factory=dict)


async def observe(
    repo: Path, remote: str, main_branch: str, *, timeout: float, fetch: bool = True
) -> GitView:
    """Fetch (unless told not to) and read the tips; a GitError means the remote failed for main."""
    unfetched = await fetch_remote(repo, remote, main_branch, timeout=timeout) if fetch else {}
    tips = await git.remote_tips(repo, remote, timeout=timeout)
    tips.update({branch: u.sha for branch, u in unfetched.items()})
    return GitView(tips.get(main_branch), main_branch, tips, unfetched=unfetched)


async def git_reasons(
    repo: Path, view: GitView, remote: str, cand: Candidate, *, policy: str, timeout: float
) -> list[Reason]:
    """The git conditions (the sha reachable on the remote, the branch tip at it, not yet on main) against ``view``; empty means ready."""
    tip = view.tips.get(cand.branch)
    if view.merged is not None and tip == cand.sha:
        on_main = cand.sha in view.merged  # answered by the cycle's one for-each-ref, no git call here
    else:
        on_main = bool(view.main_sha) and await reachable(
            repo, cand.sha, view.main_sha or "", timeout=timeout
        )
    if on_main:
        return [Reason("on_main", f"{cand.sha[:10]} is already on {remote}/{view.main_branch}")]
    if tip == cand.sha:
        return []
    containing = await git.refs_containing(repo, cand.sha, f"refs/remotes/{remote}/", timeout=timeout)
    # None: the object was never fetched, so it was never pushed. []: it was fetched once and no
    # branch holds it any more; with the branch still there, that is a rewrite (force-push) of the
    # branch, and the new tip is what the worker wants landed, not the old sha pushed back.
    rewritten = containing == [] and tip is not None
    if not containing and not rewritten:
        return [Reason("not_reachable", f"{cand.sha[:10]} is not reachable from any branch on {remote}")]
    if tip is None:
        return [Reason("branch_missing", f"branch {cand.branch} does not exist on {remote}")]
    if policy == "ancestor" and f"refs/remotes/{remote}/{cand.branch}" in (containing or []):
        return []
    how = f" (force-pushed: {cand.sha[:10]} is no longer on {remote})" if rewritten else ""
    return [
        Reason(
            "branch_moved",
            f"{remote}/{cand.branch} is at {tip[:10]}, not {cand.sha[:10]}: the branch moved{how}; "
            "waiting for a finalize_ready of the new tip",
        )
    ]


async def reachable(repo: Path, sha: str, tip: str, *, timeout: float) -> bool:
    try:
        return await git.is_ancestor(repo, sha, tip, timeout=timeout)
    except GitError:
        return False  # the object is unknown locally: certainly not on main


def waiting_on_git(conn: sqlite3.Connection) -> list[Candidate]:
    found = []
    for row in rows(conn, "SELECT * FROM candidates WHERE status = 'waiting' ORDER BY ready_at, id"):
        cand = _candidate(row)
        if cand.reasons and all(r.code in GIT_CODES for r in cand.reasons):
            found.append(cand)
    return found


def settle(
    conn: sqlite3.Connection, cand: Candidate, reasons: list[Reason], *, now: str
) -> queue.Item | None:
    """Write a git verdict for a candidate that is still waiting: enqueue it, mark it on main, or keep reasons."""
    current = get(conn, cand.id)
    if current is None or current.status != "waiting":
        return None  # something else moved it since we looked
    if any(r.code == "on_main" for r in reasons):
        _set(conn, cand.id, status="integrated", reasons=reasons, now=now)
        return None
    if reasons:
        _set(conn, cand.id, status="waiting", reasons=reasons, now=now)
        return None
    _set(conn, cand.id, status="ready", reasons=[], now=now)
    item = queue.enqueue(
        conn, cand.id, order_at=cand.ready_at, now=now, reason="ready: all readiness conditions hold"
    )
    position = queue.position(conn, item.id)
    assert position is not None  # enqueued just above, in this transaction
    ready = notifications.CandidateReady(
        slug=cand.slug, branch=cand.branch, sha=cand.sha, ready_at=cand.ready_at, position=position
    )
    outbox.add(conn, ready, now=now)
    return item


class VerdictMemo:
    """Git verdicts keyed by (main, branch tip, sha, policy): what decides whether a candidate is ready.

    With main and the branch where they were, the verdict cannot have changed, so an idle check
    cycle asks git nothing per candidate. Bounded: cleared when it grows past ``limit`` entries.
    """

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._found: dict[tuple[str | None, str | None, str, str], list[Reason]] = {}

    @staticmethod
    def key(view: GitView, cand: Candidate, policy: str) -> tuple[str | None, str | None, str, str]:
        return (view.main_sha, view.tips.get(cand.branch), cand.sha, policy)

    def get(self, view: GitView, cand: Candidate, policy: str) -> list[Reason] | None:
        return self._found.get(self.key(view, cand, policy))

    def put(self, view: GitView, cand: Candidate, policy: str, reasons: list[Reason]) -> None:
        if len(self._found) >= self.limit:
            self._found.clear()
        self._found[self.key(view, cand, policy)] = reasons


def _note_fetch_failed(
    conn: sqlite3.Connection, *, waiting: list[Candidate], reason: Reason, now: str
) -> None:
    """The failed fetch becomes the reason of every candidate still waiting (none is blocked for it)."""
    for cand in waiting:
        if (c := get(conn, cand.id)) is not None and c.status == "waiting":
            _set(conn, cand.id, status="waiting", reasons=[reason], now=now)


async def check_cycle(
    store: Store,
    repo: Path,
    *,
    remote: str,
    main_branch: str,
    policy: str,
    timeout: float,
    view: GitView | None = None,
    memo: VerdictMemo | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> GitView | None:
    """One fetch (unless ``view`` is given), then a git verdict for each candidate waiting on git.

    A fetch failure is recorded as the candidates' reason and re-raised for the caller's backoff;
    it never blocks a candidate.
    """
    waiting = await store.read(waiting_on_git)
    if not waiting:
        return view
    if view is None:
        try:
            view = await observe(repo, remote, main_branch, timeout=timeout)
        except GitError as err:
            reason = Reason("fetch_failed", f"fetch of {remote} failed ({err}); will retry")
            await store.write(
                functools.partial(_note_fetch_failed, waiting=waiting, reason=reason, now=iso(clock()))
            )
            raise
    if view.main_sha and view.merged is None:
        view = replace(view, merged=await git.merged_tips(repo, remote, view.main_sha, timeout=timeout))
    memo = memo if memo is not None else VerdictMemo()
    verdicts = []
    for cand in waiting:
        reasons = memo.get(view, cand, policy)
        if reasons is None:
            reasons = await git_reasons(repo, view, remote, cand, policy=policy, timeout=timeout)
            memo.put(view, cand, policy, reasons)
        if reasons != list(cand.reasons):
            verdicts.append(
                (cand, reasons)
            )  # unchanged verdicts are not rewritten (idle cycles write nothing)
    if not verdicts:
        return view
    now = iso(clock())

    def write(conn: sqlite3.Connection) -> bool:
        moved = False
        for cand, reasons in verdicts:
            before = get(conn, cand.id)
            settle(conn, cand, reasons, now=now)
            after = get(conn, cand.id)
            moved = moved or (before is not None and after is not None and before.status != after.status)
        return moved

    # Notify only when a candidate changed status: a candidate that keeps waiting on git would
    # otherwise wake the runner after each of its own cycles (a busy loop).
    if await store.write(write):
        store.notify()
    return view
