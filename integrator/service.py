"""The integrator's front door: what the CLI and the Discord bot call.

It owns no logic of its own beyond composing one store transaction per request from the concept
modules, so the CLI and the bot cannot disagree about what ``status`` or ``resume`` means.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from integrator import journal, notifications, outbox, queue, readiness, settings, shadow, views, withdraw
from integrator.blocked import records
from integrator.config import Config
from integrator.errors import GitError, InvalidInput, Refused, StaleState
from integrator.events import READINESS_TYPES, Event, check_slug, iso, utcnow
from integrator.journal import Appended
from integrator.models import (
    BlockedEntry,
    EmittedCandidate,
    JournalEntry,
    ModeRecord,
    ParityReport,
    PauseRecord,
    QueueEntry,
    Resumed,
    Stall,
    Status,
    Withdrawal,
)
from integrator.reasons import ReasonCode, ResumeWhen, resume_when
from integrator.store import Store


@dataclass
class EmitReport:
    appended: list[Appended]
    check_error: str | None = None
    candidates: list[EmittedCandidate] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return sum(1 for a in self.appended if a.outcome == "stored")

    @property
    def duplicates(self) -> int:
        return sum(1 for a in self.appended if a.outcome == "duplicate")


class Integrator:
    """Opened on one config; every method is one short read or one transaction."""

    def __init__(self, cfg: Config, store: Store, clock: Callable[[], datetime] = utcnow) -> None:
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self._verdicts = readiness.VerdictMemo()

    @classmethod
    async def open(cls, cfg: Config, clock: Callable[[], datetime] = utcnow) -> Integrator:
        return cls(cfg, await Store.open(cfg.db), clock)

    async def close(self) -> None:
        await self.store.close()

    async def __aenter__(self) -> Integrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _now(self) -> str:
        return iso(self.clock())

    # --- events -------------------------------------------------------------------------------------

    async def emit(self, events: Sequence[Event], *, wait: bool = False) -> EmitReport:
        """Store a batch atomically (all or nothing) and update the projection; no git runs here.

        The runner's next cycle (woken by the store's notification) gives the git verdict, so an emit
        costs the same whatever the number of waiting candidates. ``wait``: run one check cycle
        before returning, so the report already holds the verdict (scripts and tests that read
        ``status`` right after); it is safe beside a runner, each verdict is written in a
        transaction that re-reads the candidate.
        """
        for event in events:
            if event.type not in READINESS_TYPES:
                raise InvalidInput(
                    f"type: {event.type} is recorded by the integrator itself and cannot be emitted"
                )
        now = self._now()
        remote = self.cfg.remote
        slugs = {getattr(e.payload, "slug", None) for e in events} - {None}
        branches = {getattr(e.payload, "branch", None) for e in events} - {None}

        def report_of(conn: sqlite3.Connection) -> list[EmittedCandidate]:
            return views.candidates_for(conn, slugs, branches, since=now)

        def write(conn: sqlite3.Connection) -> tuple[list[Appended], list[EmittedCandidate]]:
            done = []
            for event in events:
                appended = journal.append(conn, event)
                if appended.outcome == "stored":
                    readiness.apply(conn, event, remote=remote, now=now)
                done.append(appended)
            # The report is read in the same transaction: one trip to the store's thread, not two.
            return done, report_of(conn)

        appended, candidates = await self.store.write(write, notify=True)
        report = EmitReport(appended, candidates=candidates)
        if wait and report.stored:
            try:
                await self.check()
            except GitError as err:
                report.check_error = str(err)
            report.candidates = await self.store.read(report_of)
        return report

    async def check(self, view: readiness.GitView | None = None) -> readiness.GitView | None:
        """One readiness check cycle (one fetch, unless the caller already fetched: ``view``).

        Verdicts are memoised on this instance, so a runner's idle cycles cost a constant number of
        git processes however many candidates wait on git.
        """
        cfg = self.cfg
        return await readiness.check_cycle(
            self.store,
            cfg.repo,
            remote=cfg.remote,
            main_branch=cfg.main_branch,
            policy=cfg.branch_policy,
            timeout=cfg.git_timeout_s,
            view=view,
            memo=self._verdicts,
            clock=self.clock,
        )

    async def events(self, limit: int = 50) -> list[JournalEntry]:
        return await self.store.read(lambda c: journal.recent(c, limit))

    async def history(self, limit: int = 20) -> list[JournalEntry]:
        types = ("integration_completed", "integration_blocked", "superseded")
        return await self.store.read(lambda c: journal.recent(c, limit, types))

    # --- views --------------------------------------------------------------------------------------

    async def queued(self) -> list[QueueEntry]:
        return await self.store.read(views.queue_view)

    async def status(self) -> Status:
        cfg = self.cfg
        now = self.clock()
        sandbox = await asyncio.to_thread(views.verify_sandbox, cfg)
        return await self.store.read(lambda c: views.status(c, cfg, now, sandbox))

    async def stall(self) -> Stall | None:
        """The queue's stall, if it has made no progress for the stall limit (what the watchdog alarms on)."""
        cfg = self.cfg
        now = self.clock()
        return await self.store.read(lambda c: views.stall(c, cfg, now))

    async def blocked(self) -> list[BlockedEntry]:
        return await self.store.read(views.blocked_view)

    async def full_evidence(
        self, slug: str, branch: str, sha: str, reason_code: str
    ) -> dict[str, Any] | None:
        """The untrimmed evidence of a block (for the attached evidence file), or None if it moved on."""
        return await self.store.read(lambda c: records.full_evidence(c, slug, branch, sha, reason_code))

    async def shadow_report(self) -> ParityReport:
        cfg = self.cfg
        now = self.clock()
        return ParityReport.model_validate(await self.store.read(lambda c: shadow.report(c, cfg, now=now)))

    async def slugs(self, prefix: str = "", limit: int = 25) -> list[str]:
        """Slugs of live candidates, for autocomplete."""
        return await self.store.read(lambda c: readiness.live_slugs(c, prefix, limit))

    # --- steering -----------------------------------------------------------------------------------

    async def pause(self, reason: str, by: str) -> PauseRecord:
        if not reason.strip():
            raise InvalidInput("reason: a pause needs a reason")
        now = self._now()
        record = PauseRecord(by=by, at=now, reason=reason.strip())

        def write(conn: sqlite3.Connection) -> None:
            settings.put(conn, "paused", record.model_dump())
            outbox.add(conn, notifications.Paused(**record.model_dump()), now=now)

        await self.store.write(write, notify=True)
        return record

    async def unpause(self, by: str) -> bool:
        now = self._now()

        def write(conn: sqlite3.Connection) -> bool:
            if settings.pause_state(conn) is None:
                return False
            settings.put(conn, "paused", None)
            outbox.add(conn, notifications.Unpaused(by=by, at=now, reason=None), now=now)
            return True

        return await self.store.write(write, notify=True)

    async def withdraw(self, slug: str, by: str, reason: str) -> Withdrawal:
        """Take the slug's candidate off the queue for good (:mod:`integrator.withdraw`)."""
        now = self._now()
        done = await self.store.write(
            lambda c: withdraw.request(c, slug, by=by, reason=reason, now=now), notify=True
        )
        return Withdrawal(**done)

    async def emitted_by(self, slug: str) -> str | None:
        """The worker that announced the slug's live candidate (it may withdraw its own work)."""

        def read(conn: sqlite3.Connection) -> str | None:
            cand = readiness.live_for_slug(conn, slug)
            return withdraw.emitted_by(conn, cand) if cand else None

        return await self.store.read(read)

    async def resume(self, slug: str, by: str) -> Resumed:
        """Re-queue a blocked candidate, but only if what blocked it changed (docs/blocked-flow.md).

        Conflicts and verify failures need main to have moved or the configuration to have changed;
        a moved branch needs its tip back at the pinned sha; an unreachable sha needs to be on the
        remote. Push rejections and git errors come from outside the candidate (the remote, the
        machine), so an operator's resume is taken as the news that they are fixed; the workflow
        re-checks everything anyway.
        """
        cfg = self.cfg
        try:
            check_slug(slug)
        except ValueError as err:
            raise InvalidInput(f"slug: {slug[:80]!r} {err}") from None
        item = await self.store.read(lambda c: _blocked_item(c, slug))
        if item is None:
            raise Refused(f"{slug} has no blocked candidate to resume")
        try:
            view = await readiness.observe(cfg.repo, cfg.remote, cfg.main_branch, timeout=cfg.git_timeout_s)
        except GitError as err:
            raise Refused(f"cannot check whether the blocking condition changed: {err}") from None
        changed = await self._changed_since_block(item, view)
        if not changed:
            raise Refused(_unchanged_message(item, view, cfg))
        now = self._now()
        why = "; ".join(changed)

        def write(conn: sqlite3.Connection) -> Resumed:
            queue.transition(
                conn, item.id, "blocked", "queued", reason=f"resumed by {by}: {why}", now=now, order_at=now
            )
            readiness.set_status(conn, item.candidate_id, "ready", readiness.Reason("resumed", why), now=now)
            position = queue.position(conn, item.id)
            assert position is not None  # queued just above, in this transaction
            ready = notifications.CandidateReady(
                slug=item.slug,
                branch=item.branch,
                sha=item.sha,
                ready_at=now,
                position=position,
                resumed_by=by,
            )
            outbox.add(conn, ready, now=now)
            return Resumed(slug=item.slug, sha=item.sha, position=position, why=why)

        try:
            return await self.store.write(write, notify=True)
        except StaleState:  # two admins pressed Resume together: the other press already moved it
            raise Refused(f"{slug} is no longer blocked: someone else resumed it a moment ago") from None

    async def _changed_since_block(self, item: queue.Item, view: readiness.GitView) -> list[str]:
        cfg = self.cfg
        reason = item.block_reason or ""
        when = resume_when(reason)
        if when is ResumeWhen.OPERATOR_SAYS_SO:
            return [f"{reason} comes from the remote or the machine; resumed on the operator's word"]
        if when is ResumeWhen.BRANCH_HOLDS_SHA:
            # Changed means readiness condition 4 holds again (branch policy included): the sha merely
            # being somewhere on the remote would only block it again at dequeue.
            cand = await self.store.read(lambda c: readiness.get(c, item.candidate_id))
            assert cand is not None
            still = await readiness.git_reasons(
                cfg.repo, view, cfg.remote, cand, policy=cfg.branch_policy, timeout=cfg.git_timeout_s
            )
            if still and still[0].code != "on_main":
                return []
            return [f"{cfg.remote}/{item.branch} holds {item.sha[:10]} again"]
        changed = []
        if item.block_config != cfg.fingerprint():
            changed.append("the verify command or merge configuration changed")
        if view.main_sha and item.block_main and view.main_sha != item.block_main:
            changed.append(f"{cfg.main_branch} moved from {item.block_main[:10]} to {view.main_sha[:10]}")
        return changed

    async def set_mode(self, mode: str, *, by: str, reason: str, automatic: bool = False) -> ModeRecord:
        """Switch shadow/cutover atomically with its audit record and notification."""
        if mode not in ("shadow", "cutover"):
            raise InvalidInput(f"mode: {mode!r} is not shadow or cutover")
        now = self._now()
        default = self.cfg.mode

        def write(conn: sqlite3.Connection) -> ModeRecord:
            previous = settings.mode(conn, default)["mode"]
            record = settings.set_mode(conn, mode, by=by, reason=reason, at=now, automatic=automatic)
            outbox.add(conn, notifications.ModeChanged(**record, previous=previous, at=now), now=now)
            return ModeRecord(**record)

        return await self.store.write(write, notify=True)


def _unchanged_message(item: queue.Item, view: readiness.GitView, cfg: Config) -> str:
    reason = item.block_reason or "blocked"
    if reason == ReasonCode.BRANCH_MOVED:
        return (
            f"{item.slug} stays blocked (branch_moved): {item.branch} is at {str(view.tips.get(item.branch))[:10]}, "
            f"not {item.sha[:10]}. Emit finalize_ready for the new tip instead."
        )
    if reason == ReasonCode.NOT_REACHABLE:
        return (
            f"{item.slug} stays blocked (not_reachable): {item.branch} on the remote does not hold {item.sha[:10]}. "
            f"Push it first: git push {cfg.remote} {item.sha}:refs/heads/{item.branch}"
        )
    return (
        f"{item.slug} stays blocked ({reason}): {cfg.main_branch} is still {str(item.block_main)[:10]} and the configuration "
        "is unchanged, so it would block again. Push a fix and emit finalize_ready instead."
    )


def _blocked_item(conn: sqlite3.Connection, slug: str) -> queue.Item | None:
    found = [i for i in queue.by_status(conn, "blocked") if i.slug == slug]
    return found[-1] if found else None
