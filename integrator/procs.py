"""Who a process is: its pid plus when it started, so a pid the kernel handed out again is not mistaken
for the process that had it before (a crashed holder's, a killed runner's verify command).

The start stamp is ``<boot id>:<start time in clock ticks>`` from ``/proc`` (Linux). Where ``/proc``
is missing, it is None and the checks fall back to "is some process with this pid alive".
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


def _boot_id() -> str:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return "?"


def kill_group(pgid: int) -> bool:
    """SIGKILL the process group ``pgid``; False if it is already gone (or not ours to signal)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def start_stamp(pid: int) -> str | None:
    """``<boot id>:<start ticks>`` of ``pid``, or None if it does not exist (or there is no /proc)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return f"{_boot_id()}:{fields[19]}"


def has_proc() -> bool:
    return (_PROC / "self/stat").exists()


def alive(pid: int, stamp: str | None) -> bool:
    """True while the process that had ``stamp`` when recorded still runs (a zombie counts as gone)."""
    if pid <= 0:
        return False
    if stamp is None or not has_proc():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if start_stamp(pid) != stamp:
        return False
    with contextlib.suppress(OSError):
        state = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
        if state[state.rfind(")") + 2 :].startswith("Z"):
            return False
    return True


def own_stamp() -> str | None:
    return start_stamp(os.getpid())


@dataclass(frozen=True)
class Holder:
    """Who holds the lease or runs a verify: host, pid and the pid's start stamp, made in one place.

    The lease row keeps :attr:`name` and the stamp (a successor on this host sees the holder die),
    a verify record the pid and the stamp (a successor kills what it left), and each commit on main
    names :attr:`trailer` as ``Integrated-By``.
    """

    host: str
    pid: int
    stamp: str | None

    @classmethod
    def me(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), own_stamp())

    @classmethod
    def from_name(cls, name: str, stamp: str | None = None) -> Holder | None:
        """The holder a lease row names as ``<host>:<pid>`` (the default); None for a chosen name."""
        host, sep, pid = name.rpartition(":")
        if not sep or not host or not pid.isdigit():
            return None
        return cls(host, int(pid), stamp)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.pid}"

    @property
    def trailer(self) -> str:
        return f"teleclaude-integrator@{self.host}"

    @property
    def local(self) -> bool:
        """On this host, where its process can be seen to run or not."""
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """True while the process still runs (meaningful for a :attr:`local` holder only)."""
        return alive(self.pid, self.stamp)


def working_in(paths: Sequence[Path]) -> list[int]:
    """Pids of other live processes whose working directory is inside one of ``paths`` (a git command
    runs in its repository, a verify command in its tree): empty without /proc."""
    roots = [str(p.resolve()) for p in paths]
    found = []
    me = os.getpid()
    for entry in _PROC.iterdir() if has_proc() else []:
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if any(cwd == r or cwd.startswith(r + os.sep) for r in roots):
            found.append(int(entry.name))
    return found
