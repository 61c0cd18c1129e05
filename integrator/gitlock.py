"""Git's locks in the integrator's clone: ours (one writer at a time, across processes) and git's own
``*.lock`` files (which a killed git leaves behind). The one place that knows both.

Git guards each ref and the index with a ``*.lock`` file and fails at once when it exists ("cannot
lock ref", "index.lock: File exists"): two fetches at the same moment, one from the runner and one
from a Resume click, make one of them fail, and a runner that fails its fetch records an
infrastructure fault. So every git command that writes refs or the index in a clone first takes an
exclusive ``flock`` on a file of our own in its git directory, and waits for it instead of failing.

``flock`` belongs to the open file description: the kernel releases it when the process dies,
however it dies, so a crashed holder never leaves our lock behind. Git's own lock files are another
matter: a git killed mid-write (SIGKILL of its group, power loss) leaves ``index.lock``,
``packed-refs.lock``, a ref's ``.lock`` or ``objects/info/commit-graphs/commit-graph-chain.lock``
(from ``fetch.writeCommitGraph``), and every later git command needing that lock fails until the
file is deleted. :func:`clear_stale` deletes them under our lock (so none of our own git commands
is mid-write) and only when no live process works in the repository (a person's or another tool's
git in progress is left alone).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

from integrator import procs
from integrator.backoff import Backoff

log = logging.getLogger(__name__)

LOCK_NAME = "teleclaude-integrator.flock"
# The git commands that write refs or the index; reads and object writes (atomic renames) run freely.
# Not push: its only local write is the remote-tracking ref after the remote accepted it (a failure
# there is a warning, not a failed push), and a holder frozen mid-push must not hold its successor's
# every fetch off until it resumes (the remote's fencing stops its push instead).
WRITERS = frozenset(
    {
        "fetch",
        "update-ref",
        "update-index",
        "read-tree",
        "worktree",
        "gc",
        "pack-refs",
        "checkout",
        "reset",
    }
)
# Short pauses: the holder is one git command, usually done in milliseconds.
_WAITS = Backoff(first_s=0.002, max_s=0.05)


class LockTimeout(Exception):
    """The lock was not free within the command's own timeout."""


def lock_path(cwd: Path) -> Path | None:
    """The lock file of the clone at ``cwd``; None where there is nothing to guard (a bare repository,
    a linked worktree, a directory that is not a clone's top)."""
    git_dir = Path(cwd) / ".git"
    return git_dir / LOCK_NAME if git_dir.is_dir() else None


def needs_lock(args: Sequence[str]) -> bool:
    return bool(args) and args[0] in WRITERS


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _waits(path: Path, timeout: float) -> Iterator[float]:
    """The pauses between tries; raises LockTimeout once ``timeout`` has passed."""
    yield from _WAITS.pauses(timeout)
    raise LockTimeout(f"another git command held {path} for more than {timeout:.0f}s")


@contextlib.contextmanager
def held(cwd: Path, *, timeout: float) -> Iterator[None]:
    """Blocking: hold the clone's lock (no-op where :func:`lock_path` is None)."""
    path = lock_path(cwd)
    if path is None:
        yield
        return
    fd = _open(path)
    try:
        waits = _waits(path, timeout)
        while not _try(fd):
            time.sleep(next(waits))
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.asynccontextmanager
async def held_async(cwd: Path, *, timeout: float) -> AsyncIterator[None]:
    """:func:`held` for the event loop: polls without blocking it, and can be cancelled while waiting."""
    import asyncio  # here: the CLI's read-only commands import git (and this module) but start no loop

    path = lock_path(cwd)
    if path is None:
        yield
        return
    fd = _open(path)
    try:
        waits = _waits(path, timeout)
        while not _try(fd):
            await asyncio.sleep(next(waits))
        yield
    finally:
        os.close(fd)


# --- git's own lock files ---------------------------------------------------------------------------


def git_dir(repo: Path) -> Path:
    """The git directory of the clone at ``repo`` (``.git``, or where a ``.git`` file points)."""
    dot = repo / ".git"
    if dot.is_file():  # a linked worktree or a separate git dir: "gitdir: <path>"
        text = dot.read_text(encoding="utf-8").strip()
        if text.startswith("gitdir:"):
            target = Path(text.split(":", 1)[1].strip())
            return target if target.is_absolute() else (repo / target).resolve()
    return dot if dot.is_dir() else repo


def git_lock_files(repo: Path) -> list[Path]:
    """Git's ``*.lock`` files in ``repo``'s git directory (ours, :data:`LOCK_NAME`, is not one)."""
    gitdir = git_dir(repo)
    found = []
    for root, dirs, files in os.walk(gitdir):
        # Loose objects are write-once files with no locks: skip their 256 fan-out directories.
        if Path(root) == gitdir / "objects":
            dirs[:] = [d for d in dirs if d in ("info", "pack")]
        found += [Path(root) / name for name in files if name.endswith(".lock")]
    return found


async def clear_stale(repo: Path, *, timeout: float) -> int:
    """Delete git's lock files that no live process is behind; how many were deleted.

    Under our lock, so none of the integrator's own git writers is mid-write (one that holds it past
    ``timeout`` is alive, so its locks are kept); all are kept while any other process works in the
    repository (its lock may be live)."""
    if not git_lock_files(repo):
        return 0
    removed = 0
    try:
        async with held_async(repo, timeout=timeout):
            locks = git_lock_files(repo)
            busy = procs.working_in([repo, git_dir(repo)]) if locks else []
            if busy:
                log.warning("event=locks_kept locks=%d busy_pids=%s", len(locks), busy[:5])
                return 0
            for lock in locks:
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                    removed += 1
    except LockTimeout as err:
        log.warning("event=locks_kept reason=%s", err)
    return removed
