"""Test-only harness: SIGKILL a real ``integrator run --once``'s whole process group while it is inside
a stage (fetch, merge, verify, push), then check that the next runs proceed and nothing is left.

The runner leads its own process group; its git commands and its verify command each lead their own
(so a timeout can kill them as a whole), which is why a kill of the runner's group alone leaves them
running: the case the next holder's recovery (``integrator.recovery``) exists for. With ``tree``,
every descendant's group is killed too, as a power cut would: then git's lock files stay behind.

The suite runs a few stages; ``bench/kill.py`` loops over random ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from integrator import git
from integrator.config import Config
from integrator.sandbox import Sandbox
from support import killpoints
from support.freezing import INTEGRATOR, _declare_ready, make_round_config, rows, wait

STAGES = ("fetch", "merge", "verify", "push")
# The git subcommands each stage runs (argv[1] of a git child of the runner).
_AFTER = {"fetch": "verified_ready", "merge": "merged", "verify": "tested", "push": "pushed"}
_GIT_STAGE = {"fetch": ("fetch",), "merge": ("merge-tree", "commit-tree"), "push": ("push",)}
# A verify command recognisable in /proc, and only this process's (a bench and the suite may run at
# once): the first run of each candidate sleeps (and is killed there), later runs pass at once.
VERIFY_MARK = f"47.{os.getpid()}"


def _children(pid: int) -> list[tuple[int, list[str]]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
            found.append((int(entry.name), [a.decode(errors="replace") for a in argv if a]))
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child, _ in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def verify_processes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", VERIFY_MARK.encode()]:
                found.append(int(entry.name))
    return found


def _stopped(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].startswith("T")


def _in_stage(runner: int, stage: str) -> bool:
    if stage == "verify":
        return bool(verify_processes())
    names = _GIT_STAGE[stage]
    return any(len(argv) > 1 and argv[0] == "git" and argv[1] in names for _, argv in _children(runner))


@dataclass
class KillResult:
    stage: str
    tree: bool
    hit: bool  # the kill landed while the stage was running (else at the first phase after it)
    leaked_verify: bool
    rounds_after: int


def kill_round(root: Path, stage: str, *, tree: bool = False, timeout: float = 60.0) -> KillResult:
    sandbox = Sandbox.create(root / "sb")
    flag = root / "verified-once"
    command = ["sh", "-c", f'[ -e "{flag}" ] && exit 0; : >"{flag}"; exec sleep {VERIFY_MARK}']
    cfg = make_round_config(root, sandbox, verify_command=command, verify_accept_unisolated=True)
    worker = sandbox.worker("w")
    worker.start("feature/killed")
    sha = worker.commit({"killed.txt": "k\n"}, "killed: change")
    worker.push("feature/killed")
    asyncio.run(_declare_ready(cfg, "killed", "feature/killed", sha))
    mode_before = _mode(cfg)

    # A stage can be over in a millisecond (merge-tree): the runner stops itself at the phase right
    # after it, so the kill lands there when the poll below misses the stage itself.
    with (root / "killed.log").open("w") as err:
        runner = subprocess.Popen(
            [*killpoints.command("integrator"), "--config", str(cfg.config_path), "run", "--once", "-v"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, killpoints.STOP_AT: _AFTER[stage]},
            start_new_session=True,
        )
    hit = False
    try:
        deadline = time.monotonic() + timeout
        while runner.poll() is None and time.monotonic() < deadline:
            if _in_stage(runner.pid, stage):
                hit = True
                break
            if _stopped(runner.pid):
                break
            time.sleep(0.001)
        assert runner.poll() is None, (
            f"the runner finished before {stage}: {(root / 'killed.log').read_text()[-2000:]}"
        )
        records = cfg.state_dir / "running-verifies"
        workdirs = (
            [Path(json.loads(p.read_text())["workdir"]) for p in records.glob("*.json")]
            if records.exists()
            else []
        )
        victims = descendants(runner.pid) if tree else []
        os.killpg(runner.pid, signal.SIGKILL)
        for pid in victims:
            with _quiet():
                os.killpg(pid, signal.SIGKILL)
        runner.wait(30)
    finally:
        if runner.poll() is None:
            runner.kill()
    leaked = bool(verify_processes()) if stage == "verify" and hit else False

    runs = 0
    while _status(cfg) != "integrated":
        runs += 1
        assert runs <= 3, f"not integrated after {runs - 1} more runs"
        res = subprocess.run(
            [INTEGRATOR, "--config", str(cfg.config_path), "run", "--once"],
            capture_output=True,
            text=True,
            timeout=timeout * 2,
        )
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert_nothing_left(cfg, sandbox)
    assert [d for d in workdirs if d.exists()] == [], "a verify checkout outlived its runner"
    assert _mode(cfg) == mode_before, f"mode changed: {mode_before} -> {_mode(cfg)}"
    trailers = [
        t
        for t in git.run_sync(
            ["log", "--format=%(trailers:key=Candidate-Sha,valueonly)", "refs/heads/main", "--"],
            cwd=sandbox.remote,
        ).stdout.split()
        if t
    ]
    assert trailers == [sha], trailers
    return KillResult(stage, tree, hit, leaked, runs)


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], ProcessLookupError)  # type: ignore[arg-type]


def assert_nothing_left(cfg: Config, sandbox: Sandbox) -> None:
    repo = sandbox.integrator_repo
    assert verify_processes() == [], "a verify process outlived its runner"
    worktrees = git.run_sync(["worktree", "list", "--porcelain"], cwd=repo).stdout
    assert worktrees.count("worktree ") == 1, worktrees
    locks = [str(p) for p in (repo / ".git").rglob("*.lock")]
    assert locks == [], locks
    records = (
        list((cfg.state_dir / "running-verifies").glob("*"))
        if (cfg.state_dir / "running-verifies").exists()
        else []
    )
    assert records == [], records


def _status(cfg: Config) -> str:
    found = rows(cfg, "SELECT status FROM queue")  # empty until a check cycle queued the candidate
    return str(found[0]["status"]) if found else "not queued"


def _mode(cfg: Config) -> str:
    found = rows(cfg, "SELECT value FROM settings WHERE key = 'mode'")
    return str(json.loads(found[0]["value"])["mode"]) if found else cfg.mode


__all__ = ["STAGES", "KillResult", "assert_nothing_left", "kill_round", "wait"]
