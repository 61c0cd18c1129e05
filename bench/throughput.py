"""Throughput: the speculative verify pipeline, readiness at scale and the CLI's start-up, in one run.

- **Drain**: a sandbox with 24 candidates (one new file each) and a verify command that sleeps 1 s
  and fails when the candidate's tree holds a ``FAIL`` file (a deterministic subset: none, or 10 %
  of them). ``integrator run --once`` drains the queue at ``pipeline_depth`` K = 1, 2, 4 for both
  failure rates, each on a fresh sandbox with the same candidates. ``speedup_k4_p0`` /
  ``speedup_k4_p10`` are K = 1's wall time over K = 4's; ``ideal_speedup_k4`` what a pipeline with
  no overhead would reach (K, with one verify per candidate); ``best_k`` the fastest K measured.
  The landed order is checked equal to K = 1's (``same_order``).
- ``pushed_trees_verified``: every verify logs a digest of the tree it ran on (path + git blob id of
  each file) and its verdict; every commit the drains pushed to ``main`` must have a tree whose
  digest a passing verify logged.
- ``emit_p95_ms_1000``: p95 of ``Integrator.emit`` (one readiness event per call) while 1,000
  candidates wait on git; ``check_cycle_idle_s_1000``: one check cycle with nothing changed then.
- ``cli_status_ratio``: ``integrator status --json`` wall time over ``python -c pass`` (medians of 7).

    .venv/bin/python bench/throughput.py [--candidates 24] [--verify-s 1.0]

The last line printed is one JSON object.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import _common

from integrator import git, readiness
from integrator.config import Config
from integrator.events import Event
from integrator.sandbox import Sandbox
from integrator.service import Integrator

INTEGRATOR = _common.INTEGRATOR
DEPTHS = (1, 2, 4)
AIMS = {
    "speedup_k4_p0": 3.2,
    "speedup_k4_p10": 2.2,
    "emit_p95_ms_1000": 50.0,
    "check_cycle_idle_s_1000": 0.2,
    "cli_status_ratio": 5.0,
}

# The verify: sleep, log the digest of the tree it runs on with its verdict, fail on a FAIL file.
VERIFY = r"""
import hashlib, os, sys, time
time.sleep(float(sys.argv[2]))
lines = []
for top, dirs, files in os.walk("."):
    for name in files:
        path = os.path.join(top, name)[2:]
        data = open(path, "rb").read()
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        lines.append(f"{path} {blob}")
digest = hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
verdict = "fail" if os.path.exists("FAIL") else "pass"
with open(sys.argv[1], "a") as log:
    log.write(f"{digest} {verdict}\n")
sys.exit(1 if verdict == "fail" else 0)
"""


def tree_digest(repo: Path, commit: str) -> str:
    out = git.run_sync(["ls-tree", "-r", "--format=%(path) %(objectname)", commit], cwd=repo).stdout
    return hashlib.sha256("\n".join(sorted(out.splitlines())).encode()).hexdigest()


def failing(n: int, rate: float) -> set[int]:
    """A deterministic, spread-out subset: every (1/rate)-th candidate, starting in the middle."""
    count = round(n * rate)
    return {int((k + 0.5) * n / count) for k in range(count)} if count else set()


def build(
    root: Path, n: int, fails: set[int], depth: int, verify_s: float, log: Path
) -> tuple[Sandbox, Config]:
    sandbox = Sandbox.create(root / "sb")
    worker = sandbox.worker("w")
    for k in range(n):
        worker.start(f"feature/c{k:02d}")
        files = {f"c{k:02d}.txt": f"candidate {k}\n"}
        if k in fails:
            files["FAIL"] = "this candidate's tests fail\n"
        worker.commit(files, f"c{k:02d}")
        worker.push(f"feature/c{k:02d}")
    script = root / "verify.py"
    script.write_text(VERIFY)
    (root / "state").mkdir()
    cfg = _common.bench_config(
        root,
        sandbox.integrator_repo,
        db=str(root / "state" / "integrator.db"),
        todos_dir=str(root / "state" / "todos"),
        state_dir=str(root / "state" / "dir"),
        credential_file=str(root / "state" / "integrator.credential"),
        verify_command=[sys.executable, str(script), str(log), str(verify_s)],
        pipeline_depth=depth,
        idle_check_s=1.0,
    )
    return sandbox, cfg


def ready_events(n: int, shas: dict[int, str]) -> list[Event]:
    events = []
    for k in range(n):
        events += _common.ready_events(f"c{k:02d}", f"feature/c{k:02d}", shas[k], _common.at(k))
    return events


async def enqueue(cfg: Config, sandbox: Sandbox, n: int) -> None:
    tips = {
        int(line.split()[1].rsplit("/c", 1)[1]): line.split()[0]
        for line in git.run_sync(
            ["for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/feature/"], cwd=sandbox.remote
        ).stdout.splitlines()
    }
    async with await Integrator.open(cfg) as integ:
        await integ.emit(ready_events(n, tips), wait=True)
        queued = await integ.queued()
    if len(queued) != n:
        raise SystemExit(f"setup failed: {len(queued)} of {n} queued")


def drain(root: Path, n: int, rate: float, depth: int, verify_s: float, log: Path) -> dict[str, Any]:
    sandbox, cfg = build(root, n, failing(n, rate), depth, verify_s, log)
    asyncio.run(enqueue(cfg, sandbox, n))
    start = time.perf_counter()
    res = subprocess.run(
        [INTEGRATOR, "--config", str(cfg.config_path), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"run --once failed (K={depth}): {res.stderr[-2000:]}")
    landed = [
        line.split(" ", 1)
        for line in git.run_sync(
            [
                "log",
                "--first-parent",
                "--reverse",
                "--format=%H %(trailers:key=Candidate-Slug,valueonly)",
                "main",
            ],
            cwd=sandbox.remote,
        ).stdout.splitlines()
        if line.strip().count(" ") and line.split(" ", 1)[1].strip()
    ]
    return {
        "wall_s": wall,
        "order": [slug.strip() for _, slug in landed],
        "digests": [tree_digest(sandbox.remote, sha) for sha, _ in landed],
    }


async def readiness_at_scale(root: Path, waiting: int, samples: int) -> tuple[float, float]:
    """(p95 of one emit in ms, one idle check cycle in s) with ``waiting`` candidates waiting on git."""
    sandbox = Sandbox.create(root / "sb")
    cfg = _common.bench_config(root, sandbox.integrator_repo, "scale")
    unpushed = [hashlib.sha1(f"waiting {k}".encode()).hexdigest() for k in range(waiting + samples)]
    async with await Integrator.open(cfg) as integ:
        batch = []
        for k, sha in enumerate(unpushed[:waiting]):
            batch += ready_events_for(f"w{k:04d}", sha, k)
        await integ.emit(batch)
        await integ.check()  # the first verdicts: every candidate waits on git (not_reachable)
        count = len(await integ.store.read(readiness.waiting_on_git))
        if count != waiting:
            raise SystemExit(f"setup failed: {count} of {waiting} candidates wait on git")
        times = []
        for k, sha in enumerate(unpushed[waiting:]):
            event = ready_events_for(f"e{k:04d}", sha, waiting + k)[2]
            start = time.perf_counter()
            await integ.emit([event])
            times.append((time.perf_counter() - start) * 1000)
        await integ.check()  # the sampled emits' candidates get their verdicts too
        start = time.perf_counter()
        await integ.check()
        idle = time.perf_counter() - start
    return statistics.quantiles(times, n=20)[-1], idle


def ready_events_for(slug: str, sha: str, k: int) -> list[Event]:
    return _common.ready_events(slug, f"feature/{slug}", sha, _common.at(k, timedelta(milliseconds=1)))


def median_wall(argv: list[str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        times.append(time.perf_counter() - start)
        if res.returncode != 0:
            raise SystemExit(f"{argv[0]} failed: {res.stderr}")
    return statistics.median(times)


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--candidates", type=int, default=24)
    parser.add_argument("--verify-s", type=float, default=1.0)
    parser.add_argument("--waiting", type=int, default=1000)
    args = parser.parse_args()
    with _common.temp_root("throughput", args.keep) as root:
        n, log = args.candidates, root / "verify.log"
        runs: dict[tuple[int, float], dict[str, Any]] = {}
        for rate in (0.0, 0.1):
            for depth in DEPTHS:
                runs[(depth, rate)] = drain(
                    root / f"k{depth}-p{int(rate * 100)}", n, rate, depth, args.verify_s, log
                )
                print(
                    f"K={depth} failures={rate:.0%}: {runs[(depth, rate)]['wall_s']:.2f} s", file=sys.stderr
                )
        passed = {line.split()[0] for line in log.read_text().splitlines() if line.endswith(" pass")}
        pushed = [d for r in runs.values() for d in r["digests"]]
        emit_p95_ms, check_idle_s = asyncio.run(readiness_at_scale(root / "scale", args.waiting, 200))
        (root / "scale" / "sb").exists() and shutil.rmtree(root / "scale" / "sb")
        cfg_path = root / "k1-p0" / "integrator.toml"
        status_s = median_wall([INTEGRATOR, "--config", str(cfg_path), "status", "--json"])
        python_s = median_wall([sys.executable, "-c", "pass"])

        def wall(depth: int, rate: float) -> float:
            return round(runs[(depth, rate)]["wall_s"], 2)

        result: dict[str, Any] = {
            "candidates": n,
            "verify_s": args.verify_s,
            "failing_p10": len(failing(n, 0.1)),
            **{f"drain_s_k{d}_p{int(r * 100)}": wall(d, r) for r in (0.0, 0.1) for d in DEPTHS},
            "speedup_k2_p0": round(wall(1, 0.0) / wall(2, 0.0), 2),
            "speedup_k4_p0": round(wall(1, 0.0) / wall(4, 0.0), 2),
            "speedup_k2_p10": round(wall(1, 0.1) / wall(2, 0.1), 2),
            "speedup_k4_p10": round(wall(1, 0.1) / wall(4, 0.1), 2),
            "ideal_speedup_k4": 4.0,
            "best_k_p0": min(DEPTHS, key=lambda d: wall(d, 0.0)),
            "best_k_p10": min(DEPTHS, key=lambda d: wall(d, 0.1)),
            "same_order": all(
                runs[(d, r)]["order"] == runs[(1, r)]["order"] for d in DEPTHS for r in (0.0, 0.1)
            ),
            "landed_p10": len(runs[(1, 0.1)]["order"]),
            "pushed_commits": len(pushed),
            "pushed_trees_verified": bool(pushed) and all(d in passed for d in pushed),
            "emit_p95_ms_1000": round(emit_p95_ms, 2),
            "check_cycle_idle_s_1000": round(check_idle_s, 3),
            "status_s": round(status_s, 3),
            "python_pass_s": round(python_s, 3),
            "cli_status_ratio": round(status_s / python_s, 2),
            "load_avg_1m": _common.load_avg(),
            "aim": AIMS,
        }
        result["meets_aim"] = (
            result["pushed_trees_verified"]
            and result["same_order"]
            and result["speedup_k4_p0"] >= AIMS["speedup_k4_p0"]
            and result["speedup_k4_p10"] >= AIMS["speedup_k4_p10"]
            and result["emit_p95_ms_1000"] <= AIMS["emit_p95_ms_1000"]
            and result["check_cycle_idle_s_1000"] <= AIMS["check_cycle_idle_s_1000"]
            and result["cli_status_ratio"] <= AIMS["cli_status_ratio"]
        )
        _common.emit(result)


if __name__ == "__main__":
    main()
