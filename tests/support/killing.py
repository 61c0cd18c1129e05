"""Test-only harness: SIGKILL a real ``integrator run --once``'s whole process group while it is inside
a stage (fetch, merge, verify, push), then check that the next runs proceed and nothing is left.

The runner leads its own process group; its git commands and its verify command each lead their own
(so a timeout can kill them as a whole), which is why a kill of the runner's group alone leaves them
running: the case the next holder's recovery (``integrator.recovery``) exists for. With ``tree``,
every descendant's group is killed too, as a power cut would: then git's lock files stay behind.
A power cut on the integrator's host does not reach the remote's server, so the remote's own
processes (``git-receive-pack`` and its hooks, working in the bare remote: children of ``git push``
here only because the sandbox's remote is a local path) are spared and left to end on their own.
Killing them too left ``refs/heads/main.lock`` in the *remote* (1 push round in 60), which no
integrator may delete: the next runs faulted on it until the runner gave up or rolled back.

The suite runs a few stages; ``bench/kill.py`` loops over random ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
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
# once). In a verify round the first run sleeps (and is killed there) and later runs pass at once; in
# the other rounds every run passes at once: a sleeping verify would make the killed runner (push) or
# the run after the kill (fetch, merge) wait the whole sleep, 47 s a round.
VERIFY_MARK = f"47.{os.getpid()}"
# Generous on a loaded machine; a wait that runs out says which round step stalled.
STEP_TIMEOUT_S = 60.0


class Stalled(AssertionError):
    """A step of a round did not finish within its timeout (the round fails instead of hanging)."""


class NeedsManualStep(AssertionError):
    """A run after the kill failed, or the candidate was not integrated within 3 runs."""


class Leftover(AssertionError):
    """A worktree, verify checkout or record, git lock file or verify process outlived the kill."""


class ModeChanged(AssertionError):
    """The kill changed the mode (a rollback to shadow)."""


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


def _state(pid: int) -> str:
    """The process's state letter (R, S, T, Z, ...), "" once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rfind(")") + 2 :][:1]


def _stopped(pid: int) -> bool:
    return _state(pid) == "T"


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


def _verify_command(root: Path, stage: str) -> list[str]:
    if stage != "verify":
        return ["sh", "-c", "exit 0"]
    flag = root / "verified-once"
    return ["sh", "-c", f'[ -e "{flag}" ] && exit 0; : >"{flag}"; exec sleep {VERIFY_MARK}']


def _gone(pids: list[int]) -> bool:
    return all(_state(p) in ("", "Z") for p in pids)


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def _kill(runner: subprocess.Popen[bytes], *, tree: bool, timeout: float, remote: Path) -> None:
    """SIGKILL the runner's group (with ``tree``, every descendant's group too, but for the remote's
    processes) and wait until what was killed died and the spared remote processes ended."""
    victims = descendants(runner.pid) if tree else []
    inside = str(remote.resolve())
    spared = [p for p in victims if _cwd(p) == inside or _cwd(p).startswith(inside + os.sep)]
    spared += [d for p in spared for d in descendants(p)]
    killed = [p for p in victims if p not in spared]
    spared_groups = {_pgid(p) for p in spared}
    os.killpg(runner.pid, signal.SIGKILL)
    for pid in killed:
        with _quiet():
            if _pgid(pid) in spared_groups:  # git push's group holds receive-pack: kill it alone
                os.kill(pid, signal.SIGKILL)
            else:
                os.killpg(pid, signal.SIGKILL)
    try:
        runner.wait(timeout)
    except subprocess.TimeoutExpired:
        raise Stalled(f"the SIGKILLed runner {runner.pid} did not exit within {timeout:g}s") from None
    # A SIGKILL is delivered asynchronously: wait until the tree's processes are gone, so the leak
    # measured below is what really outlived the kill.
    if not _wait_for(lambda: _gone(killed), timeout):
        raise Stalled(f"processes of the killed tree still run after {timeout:g}s: {killed}")
    if not _wait_for(lambda: _gone(spared), timeout):
        raise Stalled(f"the remote's processes did not end within {timeout:g}s after the kill: {spared}")


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1


def _wait_for(predicate: Callable[[], bool], timeout: float, pause: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
    return True


def _start_and_stop_in(
    cfg: Config, root: Path, stage: str, timeout: float, remote: Path
) -> tuple[subprocess.Popen[bytes], bool]:
    """Start ``run --once``; return it once it is inside ``stage`` (True) or stopped just after it."""
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
    deadline = time.monotonic() + timeout
    while runner.poll() is None:
        if _in_stage(runner.pid, stage):
            return runner, True
        if _stopped(runner.pid):
            return runner, False
        if time.monotonic() >= deadline:
            _kill(runner, tree=True, timeout=timeout, remote=remote)
            raise Stalled(
                f"the runner reached neither {stage} nor {_AFTER[stage]} within {timeout:g}s: "
                + (root / "killed.log").read_text()[-2000:]
            )
        time.sleep(0.001)
    raise AssertionError(f"the runner finished before {stage}: {(root / 'killed.log').read_text()[-2000:]}")


def _run_until_integrated(cfg: Config, timeout: float) -> int:
    """Plain ``run --once`` until the candidate is integrated; how many runs that took (at most 3)."""
    runs = 0
    while _status(cfg) != "integrated":
        runs += 1
        if runs > 3:
            raise NeedsManualStep(f"not integrated after {runs - 1} more runs")
        try:
            res = subprocess.run(
                [INTEGRATOR, "--config", str(cfg.config_path), "run", "--once", "-v"],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as err:
            said = err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else err.stderr or ""
            raise Stalled(
                f"run {runs} after the kill did not finish within {timeout:g}s: {said[-2000:]}"
            ) from None
        if res.returncode != 0 or "Traceback" in res.stderr:
            raise NeedsManualStep(f"run {runs} after the kill exited {res.returncode}: {res.stderr[-3000:]}")
    return runs


def kill_round(
    root: Path,
    stage: str,
    *,
    tree: bool = False,
    timeout: float = STEP_TIMEOUT_S,
    after_kill: Callable[[Config], None] | None = None,
) -> KillResult:
    """One round; raises AssertionError naming the broken invariant (:class:`Stalled` for a step that
    did not finish within ``timeout``). ``after_kill`` sees the state the kill left before the next run."""
    sandbox = Sandbox.create(root / "sb")
    command = _verify_command(root, stage)
    cfg = make_round_config(root, sandbox, verify_command=command, verify_accept_unisolated=True)
    worker = sandbox.worker("w")
    worker.start("feature/killed")
    sha = worker.commit({"killed.txt": "k\n"}, "killed: change")
    worker.push("feature/killed")
    asyncio.run(_declare_ready(cfg, "killed", "feature/killed", sha))
    mode_before = _mode(cfg)

    runner, hit = _start_and_stop_in(cfg, root, stage, timeout, sandbox.remote)
    try:
        records = cfg.state_dir / "running-verifies"
        workdirs = (
            [Path(json.loads(p.read_text())["workdir"]) for p in records.glob("*.json")]
            if records.exists()
            else []
        )
        _kill(runner, tree=tree, timeout=timeout, remote=sandbox.remote)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout)
    leaked = bool(verify_processes()) if stage == "verify" and hit else False
    if after_kill is not None:
        after_kill(cfg)

    runs = _run_until_integrated(cfg, timeout)
    assert_nothing_left(cfg, sandbox)
    if [d for d in workdirs if d.exists()]:
        raise Leftover("a verify checkout outlived its runner")
    if _mode(cfg) != mode_before:
        raise ModeChanged(f"mode changed: {mode_before} -> {_mode(cfg)}")
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


def leftovers(cfg: Config, sandbox: Sandbox) -> list[str]:
    """What a kill left that the runs after it did not clear: empty when nothing."""
    repo = sandbox.integrator_repo
    found = []
    if verify_processes():
        found.append(f"verify processes outlived their runner: {verify_processes()}")
    worktrees = git.run_sync(["worktree", "list", "--porcelain"], cwd=repo).stdout
    if worktrees.count("worktree ") != 1:
        found.append(f"worktrees left: {worktrees}")
    locks = [str(p) for p in [*(repo / ".git").rglob("*.lock"), *sandbox.remote.rglob("*.lock")]]
    if locks:
        found.append(f"git lock files left: {locks}")
    records = cfg.state_dir / "running-verifies"
    if records.exists() and list(records.glob("*")):
        found.append(f"verify records left: {list(records.glob('*'))}")
    return found


def assert_nothing_left(cfg: Config, sandbox: Sandbox) -> None:
    found = leftovers(cfg, sandbox)
    if found:
        raise Leftover("; ".join(found))


def _status(cfg: Config) -> str:
    found = rows(cfg, "SELECT status FROM queue")  # empty until a check cycle queued the candidate
    return str(found[0]["status"]) if found else "not queued"


def _mode(cfg: Config) -> str:
    found = rows(cfg, "SELECT value FROM settings WHERE key = 'mode'")
    return str(json.loads(found[0]["value"])["mode"]) if found else cfg.mode


__all__ = [
    "STAGES",
    "KillResult",
    "Leftover",
    "ModeChanged",
    "NeedsManualStep",
    "Stalled",
    "assert_nothing_left",
    "kill_round",
    "leftovers",
    "wait",
]
