"""Shadow mode and the parity report (DESIGN §10).

In shadow the integrator decides but never pushes: each queued candidate gets a prediction from
``git merge-tree --write-tree`` against the current main, stored apart from live outcomes. When the
legacy path lands the candidate's sha on main, the projection records it as integrated and the
prediction gets its *actual*: ``clean`` (landed without a conflict resolution) or
``resolved_conflict`` (the merge that brought it in needed a manual resolution).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from integrator import git, outbox, queue, readiness, settings
from integrator.config import Config
from integrator.errors import GitError
from integrator.events import iso
from integrator.store import Store, rows

AGREEMENT = {("would_integrate", "clean"), ("would_block", "resolved_conflict")}


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


async def predict(repo: Path, item: queue.Item, main_sha: str, *, timeout: float) -> Prediction:
    merge = await git.merge_tree(repo, main_sha, item.sha, timeout=timeout)
    if merge.clean:
        return Prediction(item.slug, item.sha, "would_integrate", merge.tree, (), main_sha)
    return Prediction(item.slug, item.sha, "would_block", None, merge.conflicted_paths, main_sha)


async def landed_actual(repo: Path, sha: str, main_sha: str, *, timeout: float) -> tuple[str, str]:
    """How ``sha`` reached main: (``clean`` | ``resolved_conflict``, the commit that brought it in)."""
    path = await git.first_parent_path(repo, sha, main_sha, timeout=timeout)
    if not path:
        return "clean", sha  # sha is main itself
    first = path[0]
    parents = await git.parents(repo, first, timeout=timeout)
    if (parents and parents[0] == sha) or len(parents) < 2:
        return "clean", first  # fast-forward or a plain commit on top
    merge = await git.merge_tree(repo, parents[0], parents[1], timeout=timeout)
    return ("clean" if merge.clean else "resolved_conflict"), first


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

    async def _on_main(self, items: list[queue.Item], main: str) -> set[str]:
        """The shas among ``items`` that ``main`` reaches: one git walk per cycle, none if nothing is new."""
        if main != self._main:
            self._main, self._off_main = main, set()
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

    async def cycle(self, view: readiness.GitView, fencing: int) -> int:
        """Returns how many candidates changed state (predicted or settled)."""
        cfg, t = self.cfg, self.cfg.git_timeout_s
        main = view.main_sha
        if main is None:
            return 0
        items = await self.store.read(lambda c: queue.by_status(c, "queued"))
        known = await self.store.read(_predicted_ids)
        on_main = await self._on_main(items, main)
        new: list[tuple[queue.Item, Prediction]] = []
        landed: list[tuple[queue.Item, str, str]] = []
        for item in items:
            if item.sha in on_main:
                actual, commit = await landed_actual(cfg.repo, item.sha, main, timeout=t)
                landed.append((item, actual, commit))
            elif item.candidate_id not in known:
                new.append((item, await predict(cfg.repo, item, main, timeout=t)))
        if not new and not landed:
            return 0
        now = iso(self.clock())

        def write(conn: sqlite3.Connection) -> None:
            for item, p in new:
                conn.execute(
                    "INSERT OR IGNORE INTO predictions (candidate_id, prediction, tree, conflicted_paths, main_sha,"
                    " predicted_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        item.candidate_id,
                        p.prediction,
                        p.tree,
                        json.dumps(list(p.conflicted_paths)),
                        p.main_sha,
                        now,
                    ),
                )
            if new:
                outbox.add(conn, "shadow_predictions", {"items": [p.as_dict() for _, p in new]}, now=now)
            for item, actual, commit in landed:
                queue.transition(
                    conn,
                    item.id,
                    "queued",
                    "in_progress",
                    reason="shadow: observed on main",
                    now=now,
                    fencing=fencing,
                )
                queue.transition(
                    conn,
                    item.id,
                    "in_progress",
                    "integrated",
                    reason=f"landed on main by the legacy path ({commit[:10]})",
                    now=now,
                    fencing=fencing,
                )
                readiness.set_status(
                    conn,
                    item.candidate_id,
                    "integrated",
                    readiness.Reason("on_main", f"landed on main by the legacy path ({commit[:10]})"),
                    now=now,
                )
                conn.execute(
                    "UPDATE predictions SET actual = ?, actual_detail = ?, decided_at = ? WHERE candidate_id = ?",
                    (actual, commit, now, item.candidate_id),
                )

        await self.store.write(write, notify=bool(new))
        return len(new) + len(landed)


def _predicted_ids(conn: sqlite3.Connection) -> set[int]:
    return {int(r["candidate_id"]) for r in rows(conn, "SELECT candidate_id FROM predictions")}


def report(conn: sqlite3.Connection, cfg: Config, *, now: datetime) -> dict[str, Any]:
    """The parity report and the cutover gate's verdict (thresholds from ``cfg.gate``)."""
    found = rows(
        conn,
        "SELECT p.*, c.slug, c.sha, c.status AS cand_status FROM predictions p"
        " JOIN candidates c ON c.id = p.candidate_id ORDER BY p.predicted_at",
    )
    decided = [r for r in found if r["actual"] is not None]
    agreements = [r for r in decided if (r["prediction"], r["actual"]) in AGREEMENT]
    disagreements = [
        {
            "slug": r["slug"],
            "sha": r["sha"],
            "prediction": r["prediction"],
            "actual": r["actual"],
            "conflicted_paths": json.loads(r["conflicted_paths"]),
            "landed_by": r["actual_detail"],
        }
        for r in decided
        if (r["prediction"], r["actual"]) not in AGREEMENT
    ]
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
    reasons = []
    if len(decided) < gate.min_decided:
        reasons.append(f"only {len(decided)} decided candidates; the gate needs at least {gate.min_decided}")
    if decided and agreement < gate.min_agreement:
        reasons.append(f"agreement {agreement:.1%} is below {gate.min_agreement:.0%}")
    if stuck:
        reasons.append(
            f"{len(stuck)} candidate(s) stuck longer than the stall limit ({cfg.stall_limit_s:.0f}s)"
        )
    if errors:
        reasons.append(f"{len(errors)} integrator error(s) in the window")
    return {
        "predicted": len(found),
        "decided": len(decided),
        "agreements": len(agreements),
        "agreement_rate": round(agreement, 4),
        "disagreements": disagreements,
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
