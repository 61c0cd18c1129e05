"""What the integrator's hooks add to a worker's feature-branch push.

Same machine, same run: a bare remote without hooks and one with `integrator hooks install`, the
same chain of commits pushed one by one to a feature branch of each (every push is a real
fast-forward, so the hooks run every time). The push is timed until `git push` exits; the
detached ingestion the post-receive hook starts keeps running in the background, competing for the
CPU with the next pushes exactly as it would for a worker, and is not waited on. Its drain time is
reported separately.

    .venv/bin/python bench/hooks.py [--pushes 25]

The last line printed is one JSON object.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from pathlib import Path

import _common

from integrator import git
from integrator.authority.hooks import install_hooks
from integrator.authority.remote import RemotePaths

ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    **_common.IDENTITY,
}
WARMUP = 3


def g(cwd: Path, *args: str) -> str:
    return git.run_sync(args, cwd=cwd, env=ENV, timeout=60).stdout.strip()


def make_remote(root: Path, name: str, seed: Path) -> Path:
    bare = root / name
    g(root, "init", "-q", "--bare", "-b", "main", str(bare))
    g(seed, "push", "-q", str(bare), "main")
    return bare


def commit_chain(work: Path, count: int) -> list[str]:
    """``count`` commits, each with a small new file, built without touching the worktree."""
    parent = g(work, "rev-parse", "HEAD")
    shas = []
    for i in range(count):
        blob = git.run_sync(
            ["hash-object", "-w", "--stdin"], cwd=work, env=ENV, input_text=f"change {i}\n"
        ).stdout.strip()
        tree = git.run_sync(["mktree"], cwd=work, env=ENV, input_text=f"100644 blob {blob}\tfile-{i}.txt\n")
        parent = g(work, "commit-tree", "-p", parent, "-m", f"bench {i}", tree.stdout.strip())
        shas.append(parent)
    return shas


def timed_pushes(work: Path, bare: Path, shas: list[str], branch: str) -> list[float]:
    times = []
    for sha in shas:
        start = time.perf_counter()
        git.run_sync(["push", "-q", str(bare), f"{sha}:refs/heads/{branch}"], cwd=work, env=ENV, timeout=60)
        times.append((time.perf_counter() - start) * 1000)
    return times


def stored_events(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events WHERE type = 'branch_pushed'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def wait_drained(bare: Path, db: Path, expected: int, timeout: float = 60.0) -> float | None:
    """Milliseconds until every push is in the database (None if it never got there)."""
    spool = RemotePaths(bare).spool
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if not any(spool.glob("*.push")) and stored_events(db) >= expected:
            return (time.perf_counter() - start) * 1000
        time.sleep(0.01)
    return None


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--pushes", type=int, default=30, help="timed pushes per remote (>= 20)")
    args = parser.parse_args()
    pushes = max(args.pushes, 20)

    with _common.temp_root("hooks", args.keep) as root:
        work = root / "work"
        g(root, "init", "-q", "-b", "main", str(work))
        g(work, "commit", "-q", "--allow-empty", "-m", "initial")
        plain = make_remote(root, "plain.git", work)
        hooked = make_remote(root, "hooked.git", work)
        cfg = _common.bench_config(root, work)
        install_hooks(cfg, hooked)

        half = (pushes + 1) // 2
        shas = commit_chain(work, WARMUP + 2 * half)
        timed_pushes(work, plain, shas[:WARMUP], "warmup")
        timed_pushes(work, hooked, shas[:WARMUP], "warmup")
        wait_drained(hooked, cfg.db, 1)
        first, second = shas[WARMUP : WARMUP + half], shas[WARMUP + half :]
        # A-B-B-A so drift in the machine's load cancels out; before each no-hooks block the
        # background ingestion has finished, so its CPU is charged to the hooked pushes only.
        no_hooks = timed_pushes(work, plain, first, "feature")
        with_hooks = timed_pushes(work, hooked, first, "feature")
        with_hooks += timed_pushes(work, hooked, second, "feature")
        drain_ms = wait_drained(hooked, cfg.db, 1 + 2 * half)
        no_hooks += timed_pushes(work, plain, second, "feature")

        median_plain = statistics.median(no_hooks)
        median_hooks = statistics.median(with_hooks)
        result = {
            "bench": "hooks",
            "git": g(root, "version").removeprefix("git version "),
            "pushes": len(with_hooks),
            "median_ms_no_hooks": round(median_plain, 2),
            "median_ms_hooks": round(median_hooks, 2),
            "ratio": round(median_hooks / median_plain, 3),
            "p90_ms_hooks": round(statistics.quantiles(with_hooks, n=10)[-1], 2),
            "ingest_drain_ms_after_last_push": None if drain_ms is None else round(drain_ms, 1),
            "events_stored": stored_events(cfg.db),
        }
        print(
            f"feature-branch push, median of {len(with_hooks)}: {median_plain:.1f} ms without hooks, "
            f"{median_hooks:.1f} ms with the integrator's hooks"
        )
        _common.emit(result)


if __name__ == "__main__":
    main()
