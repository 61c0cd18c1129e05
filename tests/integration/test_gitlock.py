"""Issue #16 "The bot": git in the integrator's clone is serialised across processes, so Resume clicks
while the runner drains never make a git lock conflict, and never a runner fault.

The suite clicks a few dozen times; ``bench/resume_clicks.py`` clicks 500 times.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from conftest import INTEGRATOR, db_rows, emit_ready, make_config, push_feature, run_once, wait_for

from integrator import gitlock
from integrator.errors import Refused
from integrator.sandbox import Sandbox
from integrator.service import Integrator

HOLDER = """
import sys, time
from pathlib import Path
from integrator import gitlock
with gitlock.held(Path(sys.argv[1]), timeout=10):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_killed_holder_never_leaves_the_lock_behind(sandbox: Sandbox) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(sandbox.integrator_repo)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    try:
        with gitlock.held(sandbox.integrator_repo, timeout=0.2):
            raise AssertionError("the lock was free while another process held it")
    except gitlock.LockTimeout:
        pass
    child.send_signal(signal.SIGKILL)
    child.wait()
    with gitlock.held(sandbox.integrator_repo, timeout=10):
        pass  # the kernel released it with the process


def test_resume_clicks_while_the_runner_drains_never_fault_it(tmp_path: Path) -> None:
    sandbox = Sandbox.create(tmp_path / "sb")
    cfg = make_config(tmp_path, sandbox, idle_check_s=0.2)
    beta = push_feature(sandbox, "beta", {"beta.txt": "beta\n"})
    asyncio.run(emit_ready(cfg, beta))
    # The branch moves on after it was declared ready: blocked, and it stays blocked, so every click
    # fetches and checks (the fetch that used to race the runner's), whatever main does meanwhile.
    beta.worker.commit({"beta.txt": "moved on\n"}, "beta: later")
    beta.worker.push(beta.branch)
    asyncio.run(run_once(cfg))
    assert db_rows(cfg, "SELECT block_reason FROM queue")[0]["block_reason"] == "branch_moved"
    drain = [push_feature(sandbox, f"drain-{n}", {f"d{n}.txt": f"{n}\n"}) for n in range(6)]
    asyncio.run(emit_ready(cfg, *drain))
    runner = subprocess.Popen(
        [INTEGRATOR, "--config", str(cfg.config_path), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    answers: list[str] = []

    async def clicker() -> None:
        async with await Integrator.open(cfg) as integ:
            for _ in range(20):
                try:
                    await integ.resume("beta", "admin")
                    answers.append("resumed")
                except Refused as err:
                    answers.append(str(err))

    async def two_admins() -> None:
        await asyncio.gather(clicker(), clicker())

    try:
        asyncio.run(two_admins())
        wait_for(
            lambda: len(db_rows(cfg, "SELECT 1 FROM queue WHERE status = 'integrated'")) == 6,
            timeout=120,
            what="the drain",
        )
    finally:
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=60) == 0, runner.stderr.read() if runner.stderr else ""
    assert db_rows(cfg, "SELECT * FROM faults") == []
    assert len(answers) == 40
    assert all("beta stays blocked (branch_moved)" in a for a in answers), answers


async def test_git_lock_files_are_kept_while_an_integrator_git_holds_the_clone(sandbox: Sandbox) -> None:
    """Recovery deletes a stale ``index.lock`` only under the clone's lock: while another integrator
    process holds it (a Resume click's fetch, say), its git may be writing, so the file stays."""
    lock = sandbox.integrator_repo / ".git" / "index.lock"
    lock.write_text("")
    # The holder works from "/", not in the clone: only the flock says it is alive.
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(sandbox.integrator_repo)],
        cwd="/",
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        assert await gitlock.clear_stale(sandbox.integrator_repo, timeout=0.3) == 0
        assert lock.exists()
    finally:
        child.kill()
        child.wait()
    assert await gitlock.clear_stale(sandbox.integrator_repo, timeout=10) == 1
    assert not lock.exists() and gitlock.git_lock_files(sandbox.integrator_repo) == []
