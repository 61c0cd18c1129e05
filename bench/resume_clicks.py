"""Resume clicks while the runner drains: git in the integrator's clone is serialised across processes
(integrator/gitlock.py), so no click makes the runner fault and no click gets a git lock error.

A real sandbox: one candidate blocked because its branch moved on (every click on it fetches and checks
whether the block still holds, and it keeps holding), ``--features`` others queued, ``integrator run`` as its own process draining them,
and two admins clicking Resume through the service (what the Discord button calls) until ``--clicks``
clicks are done. Then the runner is stopped and the faults table read.

    .venv/bin/python bench/resume_clicks.py [--clicks 500] [--features 20]

The last line printed is one JSON object: ``runner_faults`` and ``click_git_errors`` must be 0.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import _common

from integrator.errors import Refused
from integrator.events import Event, utcnow
from integrator.runner import Runner
from integrator.sandbox import Sandbox
from integrator.service import Integrator

INTEGRATOR = _common.INTEGRATOR


def ready(slug: str, branch: str, sha: str) -> list[Event]:
    return _common.ready_events(slug, branch, sha, utcnow())


def push(sandbox: Sandbox, slug: str, files: dict[str, str]) -> tuple[str, str]:
    w = sandbox.worker(slug)
    branch = f"feature/{slug}"
    w.start(branch)
    sha = w.commit(files, slug)
    w.push(branch)
    return branch, sha


def count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


async def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--clicks", type=int, default=500)
    parser.add_argument("--features", type=int, default=20)
    args = parser.parse_args()
    with _common.temp_root("resume-clicks", args.keep) as root:
        sandbox = Sandbox.create(root / "sb", files={"README.md": "# sandbox\n", "shared.txt": "base\n"})
        cfg = _common.bench_config(root, sandbox.integrator_repo, idle_check_s=0.2)
        path = cfg.config_path
        assert path is not None
        beta = push(sandbox, "beta", {"beta.txt": "beta\n"})
        async with await Integrator.open(cfg) as integ:
            await integ.emit(ready("beta", *beta), wait=True)
            # The branch moves on after it was declared ready: blocked (branch_moved), and it stays
            # blocked, so every click fetches and checks, whatever main does meanwhile.
            mover = sandbox.worker("beta")
            mover.commit({"beta.txt": "beta moved on\n"}, "beta: later")
            mover.push(beta[0])
            await Runner(cfg, integ.store).run(asyncio.Event(), once=True)
            for n in range(args.features):
                await integ.emit(
                    ready(f"drain-{n}", *push(sandbox, f"drain-{n}", {f"d{n}.txt": f"{n}\n"})), wait=True
                )
        runner = subprocess.Popen([INTEGRATOR, "--config", str(path), "run"], stdout=subprocess.DEVNULL)
        answers: Counter[str] = Counter()
        git_errors = 0
        started = time.monotonic()

        async def admin(clicks: int) -> None:
            nonlocal git_errors
            async with await Integrator.open(cfg) as integ:
                for _ in range(clicks):
                    try:
                        await integ.resume("beta", "admin")
                        answers["resumed"] += 1
                    except Refused as err:
                        text = str(err)
                        if "cannot check" in text or "cannot lock" in text:
                            git_errors += 1
                        answers["refused: " + text.split(":")[0][:40]] += 1

        try:
            await asyncio.gather(admin(args.clicks // 2), admin(args.clicks - args.clicks // 2))
            took = time.monotonic() - started
            deadline = time.monotonic() + 300
            while (
                count(cfg.db, "SELECT count(*) FROM queue WHERE status = 'queued' OR status = 'in_progress'")
                > 0
            ):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
        finally:
            runner.send_signal(signal.SIGTERM)
            runner.wait(timeout=60)
        result = {
            "bench": "resume_clicks",
            "clicks": sum(answers.values()),
            "features_drained": count(cfg.db, "SELECT count(*) FROM queue WHERE status = 'integrated'"),
            "runner_faults": count(cfg.db, "SELECT count(*) FROM faults"),
            "click_git_errors": git_errors,
            "answers": dict(answers),
            "clicks_per_s": round(sum(answers.values()) / took, 1),
        }
    _common.emit(result, sort_keys=True)


if __name__ == "__main__":
    asyncio.run(main())
