"""Shadow mode and the parity report (docs/cutover.md).

In shadow the integrator decides but never pushes: each queued candidate gets a prediction from
``git merge-tree --write-tree`` against the current main, stored apart from live outcomes. When the
legacy path lands the candidate (its sha, or its change by squash, rebase or cherry-pick), the
projection records it as integrated and the prediction gets its *actual* (:mod:`integrator.landed`).
Undecided predictions are redone when main moves; a candidate whose branch was deleted without
landing is withdrawn.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from integrator import git, landed, notifications, outbox, queue, readiness, settings, withdraw
from integrator.config import Config
from integrator.errors import GitError
from integrator.events import iso
from integrator.lease import Lease, fenced
from integrator.store import Store, rows

# landed_with_changes (a merge edited by hand) agrees with no prediction: the tree the integrator
# would have pushed is not the one people landed.
AGREEMENT = {
    ("would_integrate", "clean"),
    ("would_block", "resolved_conflict"),
    ("would_integrate", "landed_elsewhere"),
}


@dataclass(frozen=True)
class Prediction:
    slug: str
    sha: str
    prediction: str
    tree: str | None
    conflicted_paths: tuple[str, ...]
    main_sha: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "sha": self.sha,
            "prediction": self.prediction,
            "tree": self.tree,
            "conflicted_paths": list(self.conflicted_paths),
            "main_sha": self.main_sha,
        }


def _prediction(item: queue.Item, main_sha: str, merge: git.MergeResult) -> Prediction:
    if merge.clean:
        return Prediction(item.slug, item.sha, "would_integrate", merge.tree, (), main_sha)
    return Prediction(item.slug, item.sha, "would_block", None, merge.conflicted_paths, main_sha)


@dataclass
class _Cycle:
    """What one shadow cycle found; written in one transaction."""

    predicted: list[tuple[queue.Item, Prediction]] = field(default_factory=list)
    repredicted: list[tuple[queue.Item, Prediction]] = field(default_factory=list)
    landed: list[tuple[queue.Item, landed.Landing]] = field(default_factory=list)
    deleted: list[queue.Item] = field(default_factory=list)

    def changes(self) -> int:
        return len(self.predicted) + len(self.repredicted) + len(self.landed) + len(self.deleted)


class ShadowDrain:
    """One shadow cycle: predict new queued candidates, settle the ones the legacy path landed."""

    def __init__(self, cfg: Config, store: Store, clock: Callable[[], datetime]) -> None:
        self.cfg = cfg
        self.store = store
        self.clock = clock
        # Shas known not to be on main as of ``_main``: what a commit reaches never changes, so until
        # main moves a cycle only needs to look at candidates it has not seen yet.
        self._main: str | None = None
        self._off_main: set[str] = set()
        # Candidates whose prediction and "landed elsewhere" check are current for ``_main``.
        self._current: set[int] = set()

    async def _on_main(self, items: list[queue.Item], main: str) -> set[str]:
        """The shas among ``items`` that ``main`` reaches: one git walk per cycle, none if nothing is new."""
        if main != self._main:
            self._main, self._off_main, self._current = main, set(), set()
        todo = [item.sha for item in items if item.sha not in self._off_main]
        if not todo:
            return set()
        repo, t = self.cfg.repo, self.cfg.git_timeout_s
        try:
            off = await git.unreachable_from(repo, todo, main, timeout=t)
        except GitError:
            # A sha whose object was never fetched fails the batch; one by one, it counts as not on main.
            off = {sha for sha in todo if not await readiness.reachable(repo, sha, main, timeout=t)}
        self._off_main |= off
        return set(todo) - off

    async def _judge(
        self, item: queue.Item, main: str, view: readiness.GitView, known: dict[int, str], found: _Cycle
    ) -> None:
        """Predict (again, if main moved), or find the change landed by squash/rebase, or its branch gone."""
        repo, t = self.cfg.repo, self.cfg.git_timeout_s
        gone = item.branch not in view.tips
        try:
            merge = await git.merge_tree(repo, main, item.sha, timeout=t)
            where = None
            if merge.clean and merge.tree == await git.tree_of(repo, main, timeout=t):
                # Landed elsewhere only if it was not already on main when predicted: a backport is
                # merged for its ancestry (cutover makes that merge too), so it waits for the merge.
                since = known.get(item.candidate_id)
                if (
                    since is not None
                    and since != main
                    and not await landed.no_op(repo, since, item.sha, timeout=t)
                ):
                    where = landed.Landing("landed_elsewhere", None, how="no-op merge")
            elif gone or not merge.clean:
                # A squash or rebase landing usually deletes the branch, or conflicts with what landed.
                where = await landed.by_patch_id(repo, item.sha, main, timeout=t)
        except GitError:
            if not gone:
                raise
            merge, where = None, None  # the objects went with the branch: nothing to judge
        if where is not None:
            found.landed.append((item, where))
        elif gone:
            found.deleted.append(item)
        elif merge is not None and item.candidate_id not in known:
            found.predicted.append((item, _prediction(item, main, merge)))
        elif merge is not None and known[item.candidate_id] != main:
            found.repredicted.append((item, _prediction(item, main, merge)))
        self._current.add(item.candidate_id)

    async def cycle(self, view: readiness.GitView, lease: Lease) -> int:
        """Returns how many candidates changed state (predicted, re-predicted, settled or withdrawn)."""
        fencing = lease.fencing
        cfg, t = self.cfg, self.cfg.git_timeout_s
        main = view.main_sha
        if main is None:
            return 0
        items = await self.store.read(lambda c: queue.by_status(c, "queued"))
        known = await self.store.read(_undecided_mains)
        on_main = await self._on_main(items, main)
        found = _Cycle()
        for item in items:
            if item.sha in on_main:
                found.landed.append((item, await landed.by_merge(cfg.repo, item.sha, main, timeout=t)))
            elif item.candidate_id not in self._current or item.candidate_id not in known:
                await self._judge(item, main, view, known, found)
        if not found.changes():
            return 0
        now = iso(self.clock())
        names = (cfg.remote, cfg.main_branch)
        await self.store.write(fenced(lease, lambda c: _record(c, found, names, now, fencing)), notify=True)
        return found.changes()


def _record(conn: sqlite3.Connection, found: _Cycle, names: tuple[str, str], now: str, fencing: int) -> None:
    remote, main_branch = names
    for item, p in found.predicted:
        conn.execute(
            "INSERT OR IGNORE INTO predictions (candidate_id, prediction, tree, conflicted_paths, main_sha,"
            " predicted_at) VALUES (?, ?, ?, ?, ?, ?)",
            (item.candidate_id, p.prediction, p.tree, json.dumps(list(p.conflicted_paths)), p.main_sha, now),
        )
    # Main moved: the prediction is redone on the new main, so a landing is judged against the main
    # it happened on (predicted_at keeps the first prediction's time, for the stall limit).
    for item, p in found.repredicted:
        conn.execute(
            "UPDATE predictions SET prediction = ?, tree = ?, conflicted_paths = ?, main_sha = ?"
            " WHERE candidate_id = ? AND actual IS NULL",
            (p.prediction, p.tree, json.dumps(list(p.conflicted_paths)), p.main_sha, item.candidate_id),
        )
    if found.predicted:
        items = [notifications.ShadowItem(**p.as_dict()) for _, p in found.predicted]
        outbox.add(conn, notifications.ShadowPredictions(items=items), now=now)
    for item, landing in found.landed:
        _settle(conn, item, landing, main_branch, now, fencing)
    for item in found.deleted:
        cand = readiness.get(conn, item.candidate_id)
        current = queue.get(conn, item.id)
        assert cand is not None and current is not None
        reason = f"branch {item.branch} was deleted on {remote} without landing on {main_branch}"
        withdraw.finish(
            conn, cand, current, by="integrator (shadow)", reason=reason, now=now, fencing=fencing
        )


def _settle(
    conn: sqlite3.Connection,
    item: queue.Item,
    landing: landed.Landing,
    main_branch: str,
    now: str,
    fencing: int,
) -> None:
    commit = landing.commit or ""
    how = f" by {landing.how}" if landing.how else ""
    said = f"landed on {main_branch} by the legacy path{how}" + (f" ({commit[:10]})" if commit else "")
    queue.transition(
        conn,
        item.id,
        "queued",
        "in_progress",
        reason=f"shadow: observed on {main_branch}",
        now=now,
        fencing=fencing,
    )
    queue.transition(conn, item.id, "in_progress", "integrated", reason=said, now=now, fencing=fencing)
    readiness.set_status(conn, item.candidate_id, "integrated", readiness.Reason("on_main", said), now=now)
    detail = commit or landing.how
    conn.execute(
        "UPDATE predictions SET actual = ?, actual_detail = ?, actual_paths = ?, decided_at = ?"
        " WHERE candidate_id = ?",
        (landing.actual, detail, json.dumps(list(landing.paths)), now, item.candidate_id),
    )


def _undecided_mains(conn: sqlite3.Connection) -> dict[int, str]:
    """Candidate id → the main its (undecided) prediction was made on."""
    return {
        int(r["candidate_id"]): str(r["main_sha"])
        for r in rows(conn, "SELECT candidate_id, main_sha FROM predictions WHERE actual IS NULL")
    }


def report(conn: sqlite3.Connection, cfg: Config, *, now: datetime) -> dict[str, Any]:
    """The parity report and the cutover gate's verdict (thresholds from ``cfg.gate``)."""
    found = rows(
        conn,
        "SELECT p.*, c.slug, c.sha, c.status AS cand_status FROM predictions p"
        " JOIN candidates c ON c.id = p.candidate_id ORDER BY p.predicted_at",
    )
    decided = [r for r in found if r["actual"] is not None]
    agreements = [r for r in decided if (r["prediction"], r["actual"]) in AGREEMENT]
    disagreements = [_disagreement(r) for r in decided if (r["prediction"], r["actual"]) not in AGREEMENT]
    stall_cutoff = iso(now - timedelta(seconds=cfg.stall_limit_s))
    stuck = [
        {"slug": r["slug"], "sha": r["sha"], "predicted_at": r["predicted_at"], "prediction": r["prediction"]}
        for r in found
        if r["actual"] is None
        and r["cand_status"] in ("ready", "waiting")
        and r["predicted_at"] < stall_cutoff
    ]
    # Errors count over the gate's error window, ending now: they say whether the integrator is
    # healthy. Counted from the first prediction on, the faults a rollback was about (or one network
    # blip months ago) held every later gate forever, with nothing an operator could do about it.
    error_cutoff = iso(now - timedelta(seconds=cfg.gate.error_window_s))
    window_start = max(found[0]["predicted_at"], error_cutoff) if found else None
    errors = settings.faults_since(conn, window_start) if window_start else []
    agreement = len(agreements) / len(decided) if decided else 0.0
    gate = cfg.gate
    reasons = _gate_reasons(cfg, len(decided), agreement, len(stuck), len(errors))
    return {
        "predicted": len(found),
        "decided": len(decided),
        "agreements": len(agreements),
        "agreement_rate": round(agreement, 4),
        "disagreements": disagreements,
        "by_actual": dict(Counter(str(r["actual"]) for r in decided)),
        "undecided": len(found) - len(decided),
        "stuck": stuck,
        "errors": errors,
        "errors_since": window_start,
        "gate": {
            "verdict": "pass" if not reasons else "fail",
            "reasons": reasons,
            "thresholds": {
                "min_decided": gate.min_decided,
                "min_agreement": gate.min_agreement,
                "stall_limit_s": cfg.stall_limit_s,
            },
        },
    }


def _disagreement(r: sqlite3.Row) -> dict[str, Any]:
    return {
        "slug": r["slug"],
        "sha": r["sha"],
        "prediction": r["prediction"],
        "actual": r["actual"],
        "conflicted_paths": json.loads(r["conflicted_paths"]),
        "changed_paths": json.loads(r["actual_paths"]),
        "landed_by": r["actual_detail"],
    }


def _gate_reasons(cfg: Config, decided: int, agreement: float, stuck: int, errors: int) -> list[str]:
    """Why the cutover gate fails; empty means it passes."""
    gate = cfg.gate
    reasons = []
    if decided < gate.min_decided:
        reasons.append(f"only {decided} decided candidates; the gate needs at least {gate.min_decided}")
    if decided and agreement < gate.min_agreement:
        reasons.append(f"agreement {agreement:.1%} is below {gate.min_agreement:.0%}")
    if stuck:
        reasons.append(f"{stuck} candidate(s) stuck longer than the stall limit ({cfg.stall_limit_s:.0f}s)")
    if errors:
        reasons.append(f"{errors} integrator error(s) in the window")
    return reasons
