"""Replay a real repository's merges through the integrator, in shadow and in cutover.

Takes the last ``--merges`` (300) first-parent two-parent merges of ``--repo`` (any local git
repository or git directory), oldest first. For merge ``M = (P1, P2)`` the candidate is ``P2``:

- **ground truth**: ``git merge-tree --write-tree P1 P2`` against ``M``'s tree: ``clean`` (same tree),
  ``landed_with_changes`` (git merges cleanly, the real merge's tree differs: edited by hand) or
  ``resolved_conflict``;
- **shadow**: the remote's main is set to ``P1``, ``P2`` is pushed as a branch and declared ready, one
  shadow cycle predicts it; then the legacy path lands ``M`` (main set to ``M``) and the next cycle
  settles it. ``shadow_parity`` counts candidates whose recorded *actual* equals the ground truth,
  ``shadow_agreement`` is the parity report's own agreement (prediction vs actual);
- **cutover**: main starts at the first merge's ``P1``; each ``P2`` is pushed, declared ready and
  integrated by one ``integrator run --once`` drain (in process). The same ``P2``s go through a plain
  ``git merge --no-ff`` loop in a clone (a conflict is aborted and counted as blocked): outcomes
  compared one by one, and the final trees compared;
- **time**: ``per_candidate_ms`` is the cutover loop's wall time (push, emit, check cycle, merge,
  push, records) per candidate; ``floor_ms`` a raw plumbing loop over the same candidates in the same
  run (``merge-tree --write-tree`` + ``commit-tree`` + ``push``).

    .venv/bin/python bench/replay.py --repo /path/to/repo [--merges 300] [--budget-s 900]

``--budget-s`` stops each phase early if the machine is slow (``merges`` says how many ran). The last
line printed is one JSON object.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _common

from integrator.config import Config
from integrator.events import Event, utcnow
from integrator.runner import Runner
from integrator.service import Integrator

MAIN = "replay-main"  # a name of our own, so the repository's branches never collide with it
IDENTITY = _common.IDENTITY


def git(cwd: Path, *args: str, check: bool = True) -> str:
    res = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **IDENTITY}
    )
    if check and res.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout.strip()


def merges(repo: Path, n: int) -> list[tuple[str, str, str]]:
    out = git(repo, "rev-list", "--first-parent", "--merges", "--parents", "HEAD")
    found = [line.split() for line in out.splitlines()]
    two = [(m[0], m[1], m[2]) for m in found if len(m) == 3][:n]
    return list(reversed(two))


def ground_truth(repo: Path, m: str, p1: str, p2: str) -> str:
    res = subprocess.run(
        ["git", "merge-tree", "--write-tree", "--name-only", p1, p2], cwd=repo, capture_output=True, text=True
    )
    if res.returncode != 0:
        return "resolved_conflict"
    tree = res.stdout.split("\n", 1)[0].strip()
    return "clean" if tree == git(repo, "rev-parse", f"{m}^{{tree}}") else "landed_with_changes"


def events(slug: str, branch: str, sha: str) -> list[Event]:
    return _common.ready_events(slug, branch, sha, utcnow())


def setup(root: Path, source: Path, mode: str) -> Config:
    remote = root / "remote.git"
    git(root, "clone", "--quiet", "--bare", str(source), str(remote))
    repo = root / "integrator"
    git(root, "clone", "--quiet", str(remote), str(repo))  # a clean checkout: the safety gates want one
    return _common.bench_config(
        root, repo, main_branch=MAIN, mode=mode, git_timeout_s=120.0, gate={"min_decided": 1}
    )


async def drain(cfg: Config, integ: Integrator, *, shadow: bool) -> None:
    await Runner(cfg, integ.store, force_shadow=shadow).run(asyncio.Event(), once=True)


async def shadow_replay(
    root: Path, source: Path, todo: list[tuple[str, str, str]], deadline: float
) -> dict[str, Any]:
    cfg = setup(root, source, "shadow")
    remote = root / "remote.git"
    done = 0
    async with await Integrator.open(cfg) as integ:
        for i, (m, p1, p2) in enumerate(todo):
            if time.monotonic() > deadline:
                break
            git(remote, "update-ref", f"refs/heads/{MAIN}", p1)
            git(remote, "update-ref", f"refs/heads/replay/{i}", p2)
            await integ.emit(events(f"r{i}", f"replay/{i}", p2))
            await drain(cfg, integ, shadow=True)  # predict
            git(remote, "update-ref", f"refs/heads/{MAIN}", m)  # the legacy path lands the real merge
            await drain(cfg, integ, shadow=True)  # settle
            done += 1
        report = await integ.shadow_report()
        actual = {
            r["slug"]: r["actual"]
            for r in await integ.store.read(
                lambda c: [
                    dict(x)
                    for x in c.execute(
                        "SELECT c.slug, p.actual FROM predictions p JOIN candidates c ON c.id = p.candidate_id"
                    )
                ]
            )
        }
    return {"done": done, "actual": actual, "report": report}


async def cutover_replay(
    root: Path, source: Path, todo: list[tuple[str, str, str]], deadline: float
) -> dict[str, Any]:
    cfg = setup(root, source, "cutover")
    remote = root / "remote.git"
    git(remote, "update-ref", f"refs/heads/{MAIN}", todo[0][1])
    outcomes: list[str] = []
    started = time.perf_counter()
    async with await Integrator.open(cfg) as integ:
        for i, (_m, _p1, p2) in enumerate(todo):
            if time.monotonic() > deadline:
                break
            git(remote, "update-ref", f"refs/heads/replay/{i}", p2)
            await integ.emit(events(f"r{i}", f"replay/{i}", p2), wait=True)  # queued before the drain
            await drain(cfg, integ, shadow=False)
            found = await integ.store.read(
                lambda c, slug=f"r{i}": c.execute(  # type: ignore[misc]
                    "SELECT q.status FROM queue q JOIN candidates c ON c.id = q.candidate_id WHERE c.slug = ?",
                    (slug,),
                ).fetchone()
            )
            outcomes.append(found[0] if found else "not_queued")
    elapsed = time.perf_counter() - started
    return {
        "outcomes": outcomes,
        "per_candidate_ms": elapsed * 1000 / max(1, len(outcomes)),
        "tree": git(remote, "rev-parse", f"{MAIN}^{{tree}}"),
    }


def plain_loop(root: Path, source: Path, todo: list[tuple[str, str, str]]) -> dict[str, Any]:
    clone = root / "plain"
    git(root, "clone", "--quiet", "--no-checkout", str(source), str(clone))
    git(clone, "checkout", "--quiet", "-B", "plain", todo[0][1])
    outcomes = []
    for _m, _p1, p2 in todo:
        res = subprocess.run(
            ["git", "merge", "--no-ff", "--no-edit", "--quiet", p2],
            cwd=clone, capture_output=True, text=True, env={**os.environ, **IDENTITY},
        )  # fmt: skip
        if res.returncode == 0:
            outcomes.append("integrated")
        else:
            git(clone, "merge", "--abort", check=False)
            outcomes.append("blocked")
    return {"outcomes": outcomes, "tree": git(clone, "rev-parse", "HEAD^{tree}")}


def floor(root: Path, source: Path, todo: list[tuple[str, str, str]]) -> float:
    """Raw plumbing per candidate: merge-tree + commit-tree + push, nothing else."""
    remote = root / "floor.git"
    git(root, "clone", "--quiet", "--bare", str(source), str(remote))
    repo = root / "floor"
    git(root, "clone", "--quiet", "--no-checkout", str(remote), str(repo))
    main = todo[0][1]
    started = time.perf_counter()
    for _m, _p1, p2 in todo:
        res = subprocess.run(
            ["git", "merge-tree", "--write-tree", main, p2], cwd=repo, capture_output=True, text=True
        )
        if res.returncode != 0:
            continue
        tree = res.stdout.split("\n", 1)[0]
        main = git(repo, "commit-tree", tree, "-p", main, "-p", p2, "-m", "floor")
        git(repo, "push", "--quiet", "origin", f"{main}:refs/heads/{MAIN}", "--force")
    return (time.perf_counter() - started) * 1000 / len(todo)


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--repo", required=True, type=Path)
    parser.add_argument("--merges", type=int, default=300)
    parser.add_argument("--budget-s", type=float, default=900.0, help="per phase (shadow, cutover)")
    args = parser.parse_args()
    source = args.repo.resolve()
    if not (source / ".git").exists() and not (source / "HEAD").is_file():
        print(f"--repo: {source} is not a git repository", file=sys.stderr)
        raise SystemExit(2)
    todo = merges(source, args.merges)
    if not todo:
        print(f"--repo: {source} has no first-parent two-parent merges", file=sys.stderr)
        raise SystemExit(2)
    truth = {f"r{i}": ground_truth(source, m, p1, p2) for i, (m, p1, p2) in enumerate(todo)}
    with _common.temp_root("replay", args.keep) as root:
        (root / "shadow").mkdir()
        (root / "cutover").mkdir()
        shadow = asyncio.run(shadow_replay(root / "shadow", source, todo, time.monotonic() + args.budget_s))
        cut = asyncio.run(cutover_replay(root / "cutover", source, todo, time.monotonic() + args.budget_s))
        ran = todo[: len(cut["outcomes"])]
        plain = plain_loop(root, source, ran)
        floor_ms = floor(root, source, ran)
    decided = {s: a for s, a in shadow["actual"].items() if a is not None}
    report = shadow["report"]
    same = sum(1 for a, b in zip(cut["outcomes"], plain["outcomes"], strict=True) if a == b)
    result = {
        "repo": str(source),
        "merges": len(todo),
        "shadow_replayed": shadow["done"],
        "ground_truth": dict(Counter(truth[s] for s in list(truth)[: shadow["done"]])),
        "shadow_actuals": dict(Counter(decided.values())),
        "shadow_parity": sum(1 for s, a in decided.items() if truth.get(s) == a),
        "shadow_undecided": shadow["done"] - len(decided),
        "shadow_agreement": report.agreement_rate,
        "shadow_stuck": len(report.stuck),
        "cutover_replayed": len(cut["outcomes"]),
        "cutover_outcomes": dict(Counter(cut["outcomes"])),
        "plain_outcomes": dict(Counter(plain["outcomes"])),
        "outcomes_equal_plain": same,
        "final_tree_equals_plain": cut["tree"] == plain["tree"],
        "per_candidate_ms": round(cut["per_candidate_ms"], 1),
        "floor_ms": round(floor_ms, 1),
        "ratio": round(cut["per_candidate_ms"] / floor_ms, 2) if floor_ms else None,
    }
    _common.emit(result, sort_keys=True)


if __name__ == "__main__":
    main()
