"""Crash safety of the verify pipeline: SIGKILL ``integrator run --once`` at K = 4 at every phase the
head candidate meets (at ``verify`` and after it, the candidates behind it are verifying too), then
restart: nothing lost, nothing pushed twice, nothing pushed that a verify did not pass, and no verify
of the dead runner left running.
"""

from __future__ import annotations

import hashlib
import signal
import sys
from pathlib import Path

import pytest
from conftest import cli, emit_ready, make_config, push_feature, wait_for
from support.killpoints import KILL_AT
from test_crash_matrix import LEASE, assert_consistent

from integrator import git
from integrator.phases import PROBE_POINTS
from integrator.recovery import RECORDS
from integrator.sandbox import Sandbox

# Logs "<digest of the tree it runs on> start", sleeps as long as the delay file says, logs "... pass".
VERIFY = r"""
import hashlib, os, sys, time
lines = []
for top, dirs, files in os.walk("."):
    for name in files:
        path = os.path.join(top, name)[2:]
        data = open(path, "rb").read()
        lines.append(path + " " + hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())
digest = hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
delay = float(open(sys.argv[2]).read())
with open(sys.argv[1], "a") as log:
    log.write(f"{digest} start\n")
time.sleep(delay)
with open(sys.argv[1], "a") as log:
    log.write(f"{digest} pass\n")
"""


def tree_digest(sandbox: Sandbox, commit: str) -> str:
    out = git.run_sync(["ls-tree", "-r", "--format=%(path) %(objectname)", commit], cwd=sandbox.remote).stdout
    return hashlib.sha256("\n".join(sorted(out.splitlines())).encode()).hexdigest()


def running(token: str) -> list[int]:
    """Pids of live processes whose command line mentions ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if token.encode() in cmdline:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("phase", PROBE_POINTS)
async def test_sigkill_at_each_phase_with_k4_then_restart(
    tmp_path: Path, sandbox: Sandbox, phase: str
) -> None:
    script, log, delay = tmp_path / "verify-digest.py", tmp_path / "verified.log", tmp_path / "delay"
    script.write_text(VERIFY)
    delay.write_text("30")  # the dead runner's verifies would outlive it by far
    cfg = make_config(
        tmp_path,
        sandbox,
        **LEASE,
        pipeline_depth=4,
        verify_command=[sys.executable, str(script), str(log), str(delay)],
    )
    found = [push_feature(sandbox, f"k{n}", {f"k{n}.txt": f"{n}\n"}) for n in range(4)]
    await emit_ready(cfg, *found)
    if phase in ("tested", "before_push", "pushed", "recorded"):
        delay.write_text("0.2")  # let the head's verify pass; the others are still running at the kill

    killed = cli(cfg, "run", "--once", probe={KILL_AT: phase})
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    if phase == "verify":
        # Several verifies were running when the runner died.
        wait_for(
            lambda: log.exists() and log.read_text().count(" start") >= 2, what="the dead runner's verifies"
        )
        assert len(running(str(script))) >= 2  # processes of the dead runner, still verifying

    delay.write_text("0.2")
    restarted = cli(cfg, "run", "--once")
    assert restarted.returncode == 0, restarted.stderr
    assert_consistent(sandbox, cfg, found)
    # The restart reaped what the dead runner left: its verifies, their records and their trees.
    wait_for(lambda: not running(str(script)), what="the dead runner's verifies to be gone")
    records = cfg.state_dir / RECORDS
    assert not records.exists() or not any(records.iterdir()), sorted(records.iterdir())
    passed = {line.split()[0] for line in log.read_text().splitlines() if line.endswith(" pass")}
    merges = git.run_sync(
        ["rev-list", "--first-parent", "main", "--not", found[0].sha + "~1"], cwd=sandbox.remote
    )
    for commit in merges.stdout.split():
        assert tree_digest(sandbox, commit) in passed, (
            f"{commit} was pushed without a passing verify of its tree"
        )
