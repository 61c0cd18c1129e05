"""One candidate through the phases (docs/architecture.md, *One candidate*, steps 3-6).

``dequeued → verified_ready → merged → tested → pushed → recorded``: a checkpoint carrying the
fencing token is written before each side effect, so a process killed anywhere is recovered by
the next lease holder (:func:`recover`) without losing the candidate or pushing it twice.

The merge is done with plumbing in the integrator's repository (``merge-tree --write-tree`` and
``commit-tree``): no work tree, no index, never a worker's checkout. Only the optional verify
command gets a copy of the merged tree, in the sandbox (:mod:`integrator.verify`).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from integrator import (
    checkpoint,
    fence,
    followup,
    git,
    notifications,
    outbox,
    phases,
    pipeline,
    procs,
    queue,
    readiness,
    safety,
    settings,
    withdraw,
)
from integrator.blocked import conflicts, records, remedy
from integrator.blocked.evidence import git_failure_evidence
from integrator.config import Config
from integrator.errors import GitError, IntegratorError, LeaseLost
from integrator.events import iso, make_event
from integrator.journal import append
from integrator.lease import Lease, fenced
from integrator.phases import PhaseProbe
from integrator.reasons import ReasonCode
from integrator.store import Store

Guard = Callable[[], Awaitable[Lease]]
# Takes of one candidate that may end in an infrastructure fault before it is blocked instead.
MAX_FAULTED_ATTEMPTS = 5
T = TypeVar("T")
OutcomeKind = Literal["integrated", "blocked", "superseded", "requeued", "withdrawn"]


class _Withdrawn(Exception):
    """The candidate in flight was withdrawn; raised out of the fenced write that honoured it."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__(record["slug"])
        self.record = record


class Fault(IntegratorError):
    """An infrastructure problem (remote down, repository locked): the candidate is not to blame."""

    code = "infrastructure_fault"


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    detail: dict[str, Any]


def commit_message(cfg: Config, item: queue.Item, holder: str) -> str:
    title = f"Integrate {item.slug} ({item.branch} @ {item.sha[:10]})"
    if cfg.merge_strategy == "merge":
        title = f"Merge {item.branch} for {item.slug}"
    return f"{title}\n\nIntegrated-By: {holder}\nCandidate-Slug: {item.slug}\nCandidate-Sha: {item.sha}\n"


@dataclass
class _Attempt:
    """One candidate's tries at landing, shared by the steps of a try.

    ``stage`` decides who a git failure is blamed on: the integrator's own side (fetching main, the
    safety gates, the push) is a fault that counts toward rollback; anything handling the
    candidate's content (``merge``) blocks the candidate. Decided by the step, never by what git printed.
    """

    view: readiness.GitView | None
    started: float
    secrets: list[str]
    push_env: dict[str, str] | None
    stage: str = "fetch"
    push_error: str = ""

    def main_sha(self) -> str | None:
        return self.view.main_sha if self.view else None


# Checkpoint writes that may still stop the candidate: ``tested`` is the last write before the push
# (once it exists, ``withdraw.request`` refuses instead).
_STOPPABLE = frozenset({"verified_ready", "merged", "tested"})


class Workflow:
    """Runs one queue item to exactly one outcome; the runner owns the lease and the loop."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        guard: Guard,
        clock: Callable[[], datetime],
        *,
        probe: PhaseProbe | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.guard = guard
        self.clock = clock
        self.probe = probe or phases.installed()
        # Builds the merge commit and runs its verify; the runner swaps in the speculative pipeline.
        self.verifier: pipeline.Direct = pipeline.Direct(cfg, self.message)

    def _now(self) -> str:
        return iso(self.clock())

    async def _write(self, lease: Lease, fn: Callable[[sqlite3.Connection], T], *, notify: bool = False) -> T:
        """Every write of the holder: commits only while the lease row still carries ``lease``."""
        return await self.store.write(fenced(lease, fn), notify=notify)

    async def _checkpoint(self, item: queue.Item, phase: str, data: dict[str, Any]) -> Lease:
        lease = await self.guard()
        now = self._now()

        def write(conn: sqlite3.Connection) -> dict[str, Any] | None:
            # Up to the write before the push, a withdrawal asked for meanwhile stops the candidate here.
            if phase in _STOPPABLE and (done := withdraw.honour(conn, item, now=now, fencing=lease.fencing)):
                return done
            checkpoint.save(conn, item.id, phase, fencing=lease.fencing, data=data, now=now)
            return None

        withdrawn = await self._write(lease, write, notify=True)
        if withdrawn is not None:
            raise _Withdrawn(withdrawn)
        await self.probe(phase)
        return lease

    # --- the phases -------------------------------------------------------------------------------

    async def take(self) -> queue.Item | None:
        """Dequeue the head into ``in_progress`` with its first checkpoint, in one transaction."""
        lease = await self.guard()
        now = self._now()

        def write(conn: sqlite3.Connection) -> queue.Item | None:
            item = queue.head(conn)
            if item is None:
                return None
            queue.transition(
                conn, item.id, "queued", "in_progress", reason="dequeued", now=now, fencing=lease.fencing
            )
            checkpoint.save(conn, item.id, "dequeued", fencing=lease.fencing, data={}, now=now)
            return queue.get(conn, item.id)

        item = await self._write(lease, write)
        if item is not None:
            await self.probe("dequeued")
        return item

    async def integrate(self, item: queue.Item, view: readiness.GitView | None = None) -> Outcome:
        """Fetch, re-check, merge the pinned sha, verify, push with compare-and-swap; retry if main moved."""
        cfg = self.cfg
        secrets = self._secrets()  # the credential: sent in the push's environment, redacted from evidence
        # With the credential goes the lease's fencing number: the remote refuses it once a newer
        # holder raised its number (integrator.fence), even if this holder was paused past its TTL.
        push_env = fence.main_push_env(cfg, (await self.guard()).fencing) if secrets else None
        run = _Attempt(view, time.monotonic(), secrets, push_env)
        for attempt in range(cfg.push_retries + 1):
            run.stage = "fetch"
            try:
                outcome = await self._attempt(item, run, fresh=attempt > 0)
            except _Withdrawn as stopped:
                return Outcome("withdrawn", stopped.record)
            except (Fault, safety.SafetyGateFailed) as err:
                return await self.requeue_for_fault(item, err, stage=run.stage)
            except GitError as err:
                if run.stage != "merge":
                    return await self.requeue_for_fault(item, err, stage=run.stage)
                evidence = git_failure_evidence(err.command, err.stderr, secrets=secrets)
                evidence.update(stage=run.stage, error=str(err))
                return await self.block(item, ReasonCode.GIT_ERROR, evidence, main_sha=run.main_sha())
            if outcome is not None:
                return outcome
        evidence = git_failure_evidence(
            ["git", "push", "--force-with-lease", cfg.remote], run.push_error, secrets=secrets
        )
        evidence["retries"] = cfg.push_retries
        return await self.block(item, ReasonCode.PUSH_REJECTED, evidence, main_sha=run.main_sha())

    async def _attempt(self, item: queue.Item, run: _Attempt, *, fresh: bool) -> Outcome | None:
        """One try, on fresh refs unless the caller's view is still current; None when main moved."""
        cfg = self.cfg
        repo, t = cfg.repo, cfg.git_timeout_s
        if run.view is None or fresh:
            run.view = await readiness.observe(repo, cfg.remote, cfg.main_branch, timeout=t)
        main_before = run.view.main_sha
        if main_before is None:
            raise Fault(f"{cfg.remote}/{cfg.main_branch} does not exist")
        unfetched = run.view.unfetched.get(item.branch)
        if unfetched is not None and unfetched.sha == item.sha:
            return await self.block(item, ReasonCode.GIT_ERROR, unfetched.evidence, main_sha=main_before)
        run.stage = "safety"
        safety.raise_if_unsafe(
            await safety.check_preconditions(repo, remote=cfg.remote, main_branch=cfg.main_branch, timeout=t)
        )
        run.stage = "merge"
        verdict = await self._recheck(item, run.view)
        if verdict is not None:
            return verdict
        await self._checkpoint(item, "verified_ready", {"main_before": main_before})
        tested = await self._merge_and_verify(item, main_before, run)
        if isinstance(tested, Outcome):
            return tested
        run.stage = "push"
        return await self._push(item, main_before, *tested, run)

    async def _merge_and_verify(
        self, item: queue.Item, main_before: str, run: _Attempt
    ) -> Outcome | tuple[str, Lease]:
        """The merge commit, verified and checkpointed ``tested``; or the outcome that ends the candidate."""
        cfg = self.cfg
        repo, t = cfg.repo, cfg.git_timeout_s
        merge = await git.merge_tree(repo, main_before, item.sha, timeout=t)
        if not merge.clean:
            evidence = await conflicts.conflict_evidence(
                repo, main_sha=main_before, candidate_sha=item.sha, main_branch=cfg.main_branch, timeout=t
            )
            return await self.block(item, ReasonCode.MERGE_CONFLICT, evidence, main_sha=main_before)
        if cfg.merge_strategy == "squash" and merge.tree == await git.tree_of(repo, main_before, timeout=t):
            # A squash cannot keep ancestry anyway, and an empty squash commit records nothing.
            # A merge commit is made even when the tree is unchanged (a backport already on
            # main): "already integrated" means the sha is an ancestor of main (_recheck).
            return await self.complete(
                item, main_before, main_before, main_before, run.started, already_on_main=True
            )
        merge_sha = await self.verifier.commit(main_before, item, merge.tree)
        await self._checkpoint(item, "merged", {"main_before": main_before, "merge_sha": merge_sha})
        await self.probe("verify")
        failure = await self.verifier.verify(main_before, item, merge_sha, run.secrets)
        if failure is not None:
            return await self.block(item, failure.reason_code, failure.evidence, main_sha=main_before)
        lease = await self._checkpoint(item, "tested", {"main_before": main_before, "merge_sha": merge_sha})
        await self.probe("before_push")
        return merge_sha, lease

    async def _push(
        self, item: queue.Item, main_before: str, merge_sha: str, lease: Lease, run: _Attempt
    ) -> Outcome | None:
        """Push with compare-and-swap on ``main_before``; None when main moved meanwhile (try again)."""
        cfg = self.cfg
        pushed = await git.push_main(
            cfg.repo,
            cfg.remote,
            cfg.main_branch,
            merge_sha,
            main_before,
            timeout=cfg.git_timeout_s,
            env=run.push_env,
        )
        if pushed.ok:
            await self._checkpoint(
                item, "pushed", {"main_before": main_before, "merge_sha": merge_sha, "fencing": lease.fencing}
            )
            return await self.complete(item, merge_sha, main_before, merge_sha, run.started)
        if fence.refused(pushed.stderr):
            raise LeaseLost(f"the remote refused fencing number {lease.fencing}: a newer holder exists")
        if not pushed.stale:
            evidence = git_failure_evidence(
                ["git", "push", cfg.remote, f"HEAD:{cfg.main_branch}"], pushed.stderr, secrets=run.secrets
            )
            return await self.block(item, ReasonCode.PUSH_REJECTED, evidence, main_sha=main_before)
        run.push_error = pushed.stderr
        return None

    async def _recheck(self, item: queue.Item, view: readiness.GitView) -> Outcome | None:
        """Readiness against fresh refs; an outcome when the candidate must not be merged now."""
        cfg = self.cfg
        newest = await self.store.read(lambda c: readiness.newest_for_slug(c, item.slug))
        if newest is not None and newest.id != item.candidate_id:
            return await self.supersede(item, newest.sha)
        cand = await self.store.read(lambda c: readiness.get(c, item.candidate_id))
        assert cand is not None
        reasons = await readiness.git_reasons(
            cfg.repo, view, cfg.remote, cand, policy=cfg.branch_policy, timeout=cfg.git_timeout_s
        )
        if not reasons:
            return None
        code = reasons[0].code
        if code == "on_main":
            assert view.main_sha is not None
            return await self.complete(
                item, view.main_sha, view.main_sha, view.main_sha, time.monotonic(), already_on_main=True
            )
        evidence = {"reason": reasons[0].message, "branch_tip": view.tips.get(item.branch), "sha": item.sha}
        reason_code = ReasonCode.BRANCH_MOVED if code == "branch_moved" else ReasonCode.NOT_REACHABLE
        return await self.block(item, reason_code, evidence, main_sha=view.main_sha)

    def _secrets(self) -> list[str]:
        path = self.cfg.credential_file
        secret = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
        return [secret] if secret else []

    def message(self, item: queue.Item) -> str:
        return commit_message(self.cfg, item, self._holder())

    def _holder(self) -> str:
        return procs.Holder.me().trailer

    # --- outcomes: each one transaction -------------------------------------------------------------

    async def complete(
        self,
        item: queue.Item,
        merge_sha: str,
        main_before: str,
        main_after: str,
        started: float,
        *,
        already_on_main: bool = False,
    ) -> Outcome:
        """Record the landing in one transaction (kept whole: every row it commits, in one place)."""
        lease = await self.guard()
        now = self._now()
        duration_ms = int((time.monotonic() - started) * 1000)
        payload: dict[str, Any] = {
            "slug": item.slug,
            "branch": item.branch,
            "sha": item.sha,
            "merge_sha": merge_sha,
            "main_before": main_before,
            "main_after": main_after,
            "duration_ms": max(0, duration_ms),
            "completed_at": now,
            "already_on_main": already_on_main,
            "attempt": item.attempts,
        }
        event = make_event("integration_completed", payload)

        def write(conn: sqlite3.Connection) -> None:
            append(conn, event)
            queue.transition(
                conn,
                item.id,
                "in_progress",
                "integrated",
                reason="already on main" if already_on_main else f"merged as {merge_sha[:10]}",
                now=now,
                fencing=lease.fencing,
            )
            readiness.set_status(
                conn,
                item.candidate_id,
                "integrated",
                readiness.Reason("integrated", f"integrated as {merge_sha[:10]}"),
                now=now,
            )
            checkpoint.delete(conn, item.id)
            followup.record_resolved(conn, item.slug, now=now)
            settings.clear_fault_streak(conn)
            done = {k: v for k, v in payload.items() if k != "completed_at"}
            outbox.add(
                conn, notifications.IntegrationCompleted(**done, main_branch=self.cfg.main_branch), now=now
            )

        await self._write(lease, write, notify=True)
        await self.probe("recorded")
        await asyncio.to_thread(
            followup.resolve_followup, self.cfg.todos_dir, item.slug, merge_sha=merge_sha, resolved_at=now
        )
        return Outcome("integrated", payload)

    async def block(
        self, item: queue.Item, reason_code: ReasonCode, evidence: dict[str, Any], *, main_sha: str | None
    ) -> Outcome:
        """Write the follow-up todo, then the block's one transaction (kept whole: every row in one place)."""
        lease = await self.guard()
        now = self._now()
        names = {"remote": self.cfg.remote, "main_branch": self.cfg.main_branch}
        next_action = remedy.next_action(
            reason_code, slug=item.slug, branch=item.branch, evidence=evidence, **names
        )
        note = await asyncio.to_thread(
            followup.write_followup,
            self.cfg.todos_dir,
            slug=item.slug,
            branch=item.branch,
            sha=item.sha,
            reason_code=reason_code,
            evidence=evidence,
            next_action=next_action,
            main_sha=main_sha or "",
            blocked_at=now,
            **names,
        )
        # The store keeps the full texts; notifications and the event carry the trimmed evidence.
        summary = {k: v for k, v in evidence.items() if not k.endswith("_full")}
        payload: dict[str, Any] = {
            "slug": item.slug,
            "branch": item.branch,
            "sha": item.sha,
            "reason_code": reason_code,
            "evidence": summary,
            "next_action": next_action,
            "follow_up_slug": note.slug,
            "blocked_at": now,
            "attempt": item.attempts,
        }
        event = make_event("integration_blocked", payload)
        fingerprint = self.cfg.fingerprint()

        def write(conn: sqlite3.Connection) -> None:
            append(conn, event)
            queue.transition(
                conn, item.id, "in_progress", "blocked", reason=reason_code, now=now, fencing=lease.fencing
            )
            queue.record_block(conn, item.id, reason=reason_code, main_sha=main_sha, config=fingerprint)
            records.save(conn, item.id, reason_code, evidence, next_action, now=now)
            followup.record_block(conn, note, slug=item.slug, sha=item.sha, now=now)
            readiness.set_status(
                conn,
                item.candidate_id,
                "blocked",
                readiness.Reason(reason_code, f"blocked: {reason_code}; {next_action}"),
                now=now,
            )
            checkpoint.delete(conn, item.id)
            settings.clear_fault_streak(conn)
            blocked = notifications.IntegrationBlocked(
                **payload, follow_up_path=str(note.path), main_branch=self.cfg.main_branch
            )
            outbox.add(conn, blocked, now=now)

        await self._write(lease, write, notify=True)
        await self.probe("recorded")
        return Outcome("blocked", payload)

    async def supersede(self, item: queue.Item, by_sha: str) -> Outcome:
        lease = await self.guard()
        now = self._now()

        def write(conn: sqlite3.Connection) -> None:
            queue.transition(
                conn,
                item.id,
                "in_progress",
                "superseded",
                reason=f"superseded by {by_sha[:10]}",
                now=now,
                fencing=lease.fencing,
            )
            cand = readiness.get(conn, item.candidate_id)
            assert cand is not None
            readiness.supersede(conn, cand, by_sha, now=now)
            checkpoint.delete(conn, item.id)

        await self._write(lease, write, notify=True)
        return Outcome("superseded", {"slug": item.slug, "sha": item.sha, "superseded_by": by_sha})

    async def requeue_for_fault(self, item: queue.Item, err: Exception, *, stage: str) -> Outcome:
        """Put the candidate back at its place in the queue; the runner backs off and reports the fault.

        A candidate that has faulted on every one of ``MAX_FAULTED_ATTEMPTS`` takes is blocked instead,
        so no single candidate can keep the integrator (and the rollback counter) spinning.
        """
        if item.attempts >= MAX_FAULTED_ATTEMPTS:
            evidence = {"stage": stage, "error": str(err), "attempts": item.attempts}
            if isinstance(err, GitError):
                evidence.update(git_failure_evidence(err.command, err.stderr, secrets=self._secrets()))
            return await self.block(item, ReasonCode.GIT_ERROR, evidence, main_sha=None)
        lease = await self.guard()
        now = self._now()

        def write(conn: sqlite3.Connection) -> int:
            queue.transition(
                conn,
                item.id,
                "in_progress",
                "queued",
                reason=f"infrastructure fault: {err}",
                now=now,
                fencing=lease.fencing,
            )
            checkpoint.delete(conn, item.id)
            kind = err.code if isinstance(err, IntegratorError) else "git"
            return settings.record_fault(conn, kind, str(err), at=now)

        streak = await self._write(lease, write)
        return Outcome("requeued", {"slug": item.slug, "error": str(err), "streak": streak})

    # --- crash recovery -----------------------------------------------------------------------------

    async def recover(self) -> list[Outcome]:
        """Settle every ``in_progress`` item left by a dead holder: completed if main has it, else requeued."""
        items = await self.store.read(queue.in_progress)
        if not items:
            return []
        cfg = self.cfg
        view = await readiness.observe(cfg.repo, cfg.remote, cfg.main_branch, timeout=cfg.git_timeout_s)
        outcomes = []
        for item in items:
            cp = await self.store.read(functools.partial(checkpoint.load, queue_id=item.id))
            landed = await self._landed(item, view, cp)
            if landed is not None:
                merge_sha, main_before = landed
                outcomes.append(
                    await self.complete(
                        item, merge_sha, main_before, view.main_sha or merge_sha, time.monotonic()
                    )
                )
                continue
            phase = cp.phase if cp else "unknown"
            withdrawn = await self._honour_withdrawal(item)
            if withdrawn is not None:
                outcomes.append(Outcome("withdrawn", withdrawn))
                continue
            await self._requeue(item, f"recovered after a crash in phase {phase}")
            outcomes.append(Outcome("requeued", {"slug": item.slug, "phase": phase}))
        return outcomes

    async def _honour_withdrawal(self, item: queue.Item) -> dict[str, Any] | None:
        lease = await self.guard()
        now = self._now()
        return await self.store.write(
            lambda c: withdraw.honour(c, item, now=now, fencing=lease.fencing), notify=True
        )

    async def _requeue(self, item: queue.Item, reason: str) -> None:
        lease = await self.guard()
        now = self._now()

        def write(conn: sqlite3.Connection) -> None:
            queue.transition(
                conn, item.id, "in_progress", "queued", reason=reason, now=now, fencing=lease.fencing
            )
            checkpoint.delete(conn, item.id)

        await self._write(lease, write, notify=True)

    async def _landed(
        self, item: queue.Item, view: readiness.GitView, cp: checkpoint.Checkpoint | None
    ) -> tuple[str, str] | None:
        """(merge_sha, main_before) if the remote's main already holds this candidate's integration."""
        cfg, t = self.cfg, self.cfg.git_timeout_s
        main = view.main_sha
        if main is None:
            return None
        data = cp.data if cp else {}
        merge_sha = data.get("merge_sha")
        if merge_sha and await readiness.reachable(cfg.repo, merge_sha, main, timeout=t):
            return merge_sha, str(data.get("main_before", merge_sha))
        found = await git.find_trailer_commit(
            cfg.repo, f"refs/remotes/{cfg.remote}/{cfg.main_branch}", "Candidate-Sha", item.sha, timeout=t
        )
        if found:
            first = (await git.parents(cfg.repo, found, timeout=t) or [found])[0]
            return found, first
        if await readiness.reachable(cfg.repo, item.sha, main, timeout=t):
            return main, main
        return None
