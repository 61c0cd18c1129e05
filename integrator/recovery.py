"""What a crashed holder leaves in the integrator's clone, cleared by the next holder before its first step.

A holder killed hard (SIGKILL, power loss) can leave:

- its verify command still running: the verify runs in its own process group, so nothing kills it
  with the runner. :class:`VerifyRecord` writes ``<state_dir>/running-verifies/<name>.json`` (the work
  directory, the runner's and the command's pid and start stamp) before anything is started, and
  :func:`reap_verifies` kills every recorded process group whose process still runs (or, for a
  runner killed before it noted the command's pid, every group working in the recorded tree), then
  removes its directory and the record;
- verify work directories (a checkout of the merged tree, a registered worktree): removed, and
  ``git worktree prune`` forgets worktrees whose directory is gone;
- git's lock files, which fail every later git command that needs them: removed by
  :func:`integrator.gitlock.clear_stale` (which owns what git leaves and when a lock is live).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from integrator import git, gitlock, procs
from integrator.atomicfile import write_atomic

log = logging.getLogger(__name__)

RECORDS = "running-verifies"


def _records_dir(state_dir: Path) -> Path:
    return state_dir / RECORDS


@dataclass
class VerifyRecord:
    """The on-disk note of one verify run, so a successor can kill its processes and remove its files."""

    state_dir: Path
    workdir: Path
    path: Path = field(init=False)
    data: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        records = _records_dir(self.state_dir)
        records.mkdir(parents=True, exist_ok=True)
        self.path = records / f"{self.workdir.name}.json"
        me = procs.Holder.me()
        self.data = {"workdir": str(self.workdir), "runner": me.pid, "runner_stamp": me.stamp}
        self._write()

    def started(self, pid: int) -> None:
        """Record the verify command's process (the leader of its own process group)."""
        self.data.update(pid=pid, stamp=procs.start_stamp(pid))
        self._write()

    def done(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _write(self) -> None:
        write_atomic(self.path, json.dumps(self.data))


def _kill_group(pid: int, stamp: str | None) -> bool:
    return procs.alive(pid, stamp) and procs.kill_group(pid)


def _kill_groups_in(workdir: Path) -> int:
    """Kill the process group of every process working inside ``workdir`` (never our own group)."""
    groups = set()
    for pid in procs.working_in([workdir]):
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    groups.discard(os.getpgrp())
    for group in groups:
        procs.kill_group(group)
    return len(groups)


def reap_verifies(state_dir: Path) -> dict[str, int]:
    """Kill leftover verify process groups of runners that are gone; remove their work directories."""
    killed = removed = 0
    records = _records_dir(state_dir)
    for path in sorted(records.glob("*.json")) if records.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        runner, runner_stamp = int(data.get("runner", 0)), data.get("runner_stamp")
        if runner != os.getpid() and procs.alive(runner, runner_stamp):
            continue  # its runner still lives (a holder that lost its lease cleans up after itself)
        workdir = Path(data.get("workdir", ""))
        if data.get("pid"):
            killed += _kill_group(int(data["pid"]), data.get("stamp"))
        elif workdir.name:
            # Killed between starting the command and noting its pid: the command works in its tree.
            killed += _kill_groups_in(workdir)
        if workdir.name and workdir.exists():
            shutil.rmtree(workdir, ignore_errors=True)
            removed += 1
        path.unlink(missing_ok=True)
    return {"verify_killed": killed, "verify_dirs_removed": removed}


async def recover_clone(repo: Path, state_dir: Path, *, timeout: float) -> dict[str, int]:
    """Clear what a crashed holder left; the caller holds the lease (nobody else integrates now)."""
    report = reap_verifies(state_dir)
    # Verify directories no record names: a holder killed between creating one and recording it.
    recorded = {
        Path(json.loads(p.read_text()).get("workdir", "")) for p in _records_dir(state_dir).glob("*.json")
    }
    for leftover in state_dir.glob("verify-*") if state_dir.is_dir() else []:
        if leftover.is_dir() and leftover not in recorded:
            shutil.rmtree(leftover, ignore_errors=True)
            report["verify_dirs_removed"] += 1
    worktrees = await _remove_worktrees(repo, state_dir, timeout=timeout)
    report["worktrees_removed"] = worktrees
    await git.run(["worktree", "prune"], cwd=repo, timeout=timeout, check=False)
    report["locks_removed"] = await gitlock.clear_stale(repo, timeout=timeout)
    if any(report.values()):
        log.warning("event=clone_recovered %s", " ".join(f"{k}={v}" for k, v in sorted(report.items())))
    return report


async def _remove_worktrees(repo: Path, state_dir: Path, *, timeout: float) -> int:
    """Remove worktrees registered under the state directory (verify checkouts of older versions)."""
    res = await git.run(["worktree", "list", "--porcelain"], cwd=repo, timeout=timeout, check=False)
    state = str(state_dir.resolve())
    removed = 0
    for line in res.stdout.splitlines():
        if not line.startswith("worktree "):
            continue
        path = line[len("worktree ") :]
        if path.startswith(state + os.sep):
            await git.run(
                ["worktree", "remove", "--force", "--", path], cwd=repo, timeout=timeout, check=False
            )
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed
