"""Integration throughput: what ``integrator run --once`` costs per candidate over plain git.

A repository of ``--files`` files (2,000) on a local bare remote and ``--candidates`` (50) feature
branches, each changing its own file, all made by one ``git fast-import``. Every candidate is
declared ready (three events each) and queued before the clock starts. Then, in the same run:

- ``per_candidate_ms``: the wall time of one ``integrator run --once`` process (start, lease, fetch per
  candidate, readiness re-check, safety gates, merge, compare-and-swap push, checkpoints, outcome
  transactions, exit) divided by the number of candidates;
- ``floor_ms``: a plain loop over the same candidates on an identical copy of the remote and a
  clone of it: ``git fetch`` + ``git merge --no-ff <sha>`` + ``git push`` per candidate, nothing else;
- ``scale_ratio``: ``per_candidate_ms`` with ``--scale`` (500) queued candidates over the same at 50,
  ``scale_floor_ratio`` the floor's own growth from 50 to 500 branches (push and fetch advertise
  every branch, history grows), and ``scale_ratio_vs_floor`` the integrator's growth with git's
  factored out;
- ``shadow_ms`` / ``shadow_floor_ms``: ``integrator run --once --shadow`` over the same queue
  (predictions, no push), run before the live drain, against one raw ``git merge-tree --write-tree``
  per candidate; ``scale_shadow_*`` the same at 500.

The small case runs ``--repeat`` (3) times on fresh repositories and reports medians; the large
case runs once. Wall times move with the machine's load (``load_avg_1m`` in the result).

    .venv/bin/python bench/integrate.py [--candidates 50] [--scale 500] [--files 2000] [--repeat 3]

The last line printed is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common

from integrator import git
from integrator.config import Config
from integrator.events import Event
from integrator.service import Integrator

INTEGRATOR, IDENTITY = _common.INTEGRATOR, _common.IDENTITY
AIM_RATIO = 2.0
AIM_SCALE_RATIO = 1.25


def g(cwd: Path, *args: str, input_text: str | None = None) -> str:
    return git.run_sync(args, cwd=cwd, timeout=600, env=IDENTITY, input_text=input_text).stdout.strip()


@dataclass(frozen=True)
class Setup:
    root: Path
    remote: Path
    repo: Path
    candidates: list[tuple[str, str, str]]  # slug, branch, sha
    cfg: Config


def _path(i: int) -> str:
    return f"src/d{i % 40:02d}/f{i:04d}.txt"


def build(root: Path, *, files: int, candidates: int) -> Setup:
    """The remote (main + one branch per candidate) by one fast-import, the integrator's clone, and
    a database where every candidate is queued."""
    if candidates > files:
        raise SystemExit("each candidate needs a file of its own: --files must be >= --candidates")
    root.mkdir(parents=True)
    remote = root / "remote.git"
    g(root, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    stream = ["commit refs/heads/main", "mark :1", "committer Bench <bench@example.invalid> 1772000000 +0000"]
    stream += ["data 8", "initial"]
    for i in range(files):
        text = f"file {i}\n" + "line\n" * 20
        stream += [f"M 100644 inline {_path(i)}", f"data {len(text)}", text]
    for k in range(candidates):
        message = f"candidate {k}\n"
        text = f"file {k} changed by candidate {k}\n" + "line\n" * 20
        stream += [
            f"commit refs/heads/feature/c{k:04d}",
            f"mark :{k + 2}",
            f"committer Bench <bench@example.invalid> {1772000001 + k} +0000",
            f"data {len(message)}",
            message,
            "from :1",
            f"M 100644 inline {_path(k)}",
            f"data {len(text)}",
            text,
        ]
    marks = root / "marks"
    g(remote, "fast-import", "--quiet", f"--export-marks={marks}", input_text="\n".join(stream) + "\n")
    by_mark = dict(line.split() for line in marks.read_text().splitlines())
    picked = [(f"c{k:04d}", f"feature/c{k:04d}", by_mark[f":{k + 2}"]) for k in range(candidates)]

    repo = root / "integrator"
    g(root, "clone", "--quiet", str(remote), str(repo))
    # A clone made seconds ago leaves "racily clean" index entries that git re-hashes on every status;
    # a long-lived integrator clone has none. Age the files and refresh once, as time would.
    aged = time.time() - 60
    for path in repo.rglob("*.txt"):
        os.utime(path, (aged, aged))
    g(repo, "update-index", "-q", "--refresh")
    # Nothing in a benchmark run should stall or roll back.
    cfg = _common.bench_config(root, repo, rollback={"enabled": False})
    asyncio.run(_enqueue(cfg, picked))
    return Setup(root, remote, repo, picked, cfg)


async def _enqueue(cfg: Config, picked: list[tuple[str, str, str]]) -> None:
    events: list[Event] = []
    for k, (slug, branch, sha) in enumerate(picked):
        events += _common.ready_events(slug, branch, sha, _common.at(k))
    async with await Integrator.open(cfg) as integ:
        report = await integ.emit(events, wait=True)
        queued = await integ.queued()
    if report.check_error or len(queued) != len(picked):
        raise SystemExit(f"setup failed: {len(queued)} of {len(picked)} queued ({report.check_error})")


def run_integrator(setup: Setup, *extra: str) -> float:
    started = time.perf_counter()
    res = subprocess.run(
        [INTEGRATOR, "--config", str(setup.cfg.config_path), "run", "--once", *extra],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    elapsed = time.perf_counter() - started
    if res.returncode != 0:
        raise SystemExit(f"integrator run failed ({res.returncode}): {res.stderr[-2000:]}")
    return elapsed


def check_integrated(setup: Setup) -> None:
    """Every candidate landed exactly once, in order, as a merge of its pinned sha."""
    history = g(setup.remote, "log", "--first-parent", "--reverse", "--format=%H %P", "main").splitlines()
    landed = [line.split()[2] for line in history[1:] if len(line.split()) == 3]
    if landed != [sha for _, _, sha in setup.candidates]:
        raise SystemExit(f"main does not hold exactly the {len(setup.candidates)} candidates in order")


def floor(setup: Setup) -> float:
    """fetch + merge --no-ff + push per candidate, on a copy of the remote as it was before the run."""
    remote = setup.root / "floor-remote.git"
    work = setup.root / "floor"
    g(setup.root, "clone", "--quiet", str(remote), str(work))
    for key, value in IDENTITY.items():
        g(work, "config", f"user.{'name' if key.endswith('NAME') else 'email'}", value)
    started = time.perf_counter()
    for slug, _branch, sha in setup.candidates:
        g(work, "fetch", "--quiet", "origin")
        g(work, "merge", "--quiet", "--no-ff", "-m", f"Merge {slug}", sha)
        g(work, "push", "--quiet", "origin", "HEAD:refs/heads/main")
    return time.perf_counter() - started


def shadow_floor(setup: Setup) -> float:
    main = g(setup.repo, "rev-parse", "refs/remotes/origin/main")
    started = time.perf_counter()
    for _slug, _branch, sha in setup.candidates:
        g(setup.repo, "merge-tree", "--write-tree", main, sha)
    return time.perf_counter() - started


def predictions(setup: Setup) -> int:
    import sqlite3

    conn = sqlite3.connect(setup.cfg.db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])
    finally:
        conn.close()


def measure(root: Path, *, files: int, candidates: int, shadow: bool) -> dict[str, float]:
    setup = build(root, files=files, candidates=candidates)
    shutil.copytree(setup.remote, setup.root / "floor-remote.git")
    out: dict[str, float] = {}
    n = len(setup.candidates)
    if shadow:
        out["shadow_ms"] = run_integrator(setup, "--shadow") * 1000 / n
        if predictions(setup) != n:
            raise SystemExit("the shadow run did not predict every candidate")
        out["shadow_floor_ms"] = shadow_floor(setup) * 1000 / n
    out["per_candidate_ms"] = run_integrator(setup) * 1000 / n
    check_integrated(setup)
    out["floor_ms"] = floor(setup) * 1000 / n
    return out


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--scale", type=int, default=500)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the small case (median)")
    args = parser.parse_args()
    with _common.temp_root("integrate", args.keep) as tmp:
        runs = []
        for r in range(args.repeat):
            runs.append(
                measure(tmp / f"small-{r}", files=args.files, candidates=args.candidates, shadow=True)
            )
            print(f"{args.candidates} candidates, run {r + 1}: {_rounded(runs[-1])}", flush=True)
        base = median_of(runs)
        big = measure(tmp / "large", files=args.files, candidates=args.scale, shadow=True)
        print(f"{args.scale} candidates: {_rounded(big)}", flush=True)
    result: dict[str, Any] = {
        "load_avg_1m": _common.load_avg(),  # a busy machine inflates every wall time here
        "files": args.files,
        "candidates": args.candidates,
        "scale_candidates": args.scale,
        "per_candidate_ms": round(base["per_candidate_ms"], 2),
        "floor_ms": round(base["floor_ms"], 2),
        "ratio": round(statistics.median(r["per_candidate_ms"] / r["floor_ms"] for r in runs), 3),
        "scale_per_candidate_ms": round(big["per_candidate_ms"], 2),
        "scale_ratio": round(big["per_candidate_ms"] / base["per_candidate_ms"], 3),
        "scale_floor_ms": round(big["floor_ms"], 2),
        "scale_floor_ratio": round(big["floor_ms"] / base["floor_ms"], 3),
        # The integrator's growth with git's own growth (more refs to advertise, longer history)
        # factored out: how much worse its ratio to the floor gets from 50 to 500.
        "scale_ratio_vs_floor": round(
            (big["per_candidate_ms"] / big["floor_ms"]) / (base["per_candidate_ms"] / base["floor_ms"]), 3
        ),
        "shadow_ms": round(base["shadow_ms"], 2),
        "shadow_floor_ms": round(base["shadow_floor_ms"], 2),
        "shadow_ratio": round(statistics.median(r["shadow_ms"] / r["shadow_floor_ms"] for r in runs), 3),
        "scale_shadow_ms": round(big["shadow_ms"], 2),
        "scale_shadow_ratio": round(big["shadow_ms"] / big["shadow_floor_ms"], 3),
    }
    result["aims_met"] = result["ratio"] <= AIM_RATIO and result["scale_ratio"] <= AIM_SCALE_RATIO
    _common.emit(result)


def _rounded(data: dict[str, float]) -> str:
    return json.dumps({k: round(v, 2) for k, v in data.items()})


if __name__ == "__main__":
    main()
