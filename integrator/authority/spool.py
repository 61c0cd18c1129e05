"""The post-receive spool: one file per push, turned into ``branch_pushed`` events by ``ingest_spool``.

The hook writes ``<pid>.<n>.push`` files closed by an ``end`` line and starts a detached
``integrator hooks ingest`` (:func:`ingest_detached`, its own process and store); the runner ingests
whatever is left on each cycle as a safety net, on its own event loop and through its own store.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import pwd
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from integrator.authority.remote import RemotePaths, check_bare
from integrator.backoff import Backoff
from integrator.config import Config
from integrator.errors import DuplicateConflict, IntegratorError, InvalidInput
from integrator.events import Event, make_event

if TYPE_CHECKING:
    from integrator.service import Integrator

log = logging.getLogger(__name__)

EmitEvents = Callable[[list[Event]], Awaitable[int]]

# A hook that died while writing leaves a spool file without its `end` line; after this long nobody
# is still writing it, so its complete lines are ingested rather than kept forever.
STALE_SPOOL_S = 600.0
LOCK_TIMEOUT_S = 60.0
INGEST_LOG_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class IngestReport:
    files: int = 0
    events: int = 0
    stored: int = 0
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "events": self.events, "stored": self.stored, "skipped": self.skipped}


# An ingestion holds the lock for one store transaction: short first pauses.
_LOCK_WAITS = Backoff(first_s=0.01, max_s=0.2)


@contextlib.asynccontextmanager
async def _exclusive(lock_path: Path, timeout: float) -> AsyncIterator[None]:
    """flock the spool; concurrent ingestions queue here so each spool file is consumed by one of them.

    Polled, so a runner waiting for the detached ingestion keeps its event loop (and its lease) alive.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        pauses = _LOCK_WAITS.pauses(timeout)
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pause = next(pauses, None)
                if pause is None:
                    raise IntegratorError(
                        f"spool {lock_path.parent} is locked by another ingestion"
                    ) from None
                await asyncio.sleep(pause)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _rotate(log_path: Path) -> None:
    # The hook appends every failed ingestion's stderr here; keep one previous generation only.
    with contextlib.suppress(FileNotFoundError):
        if log_path.stat().st_size > INGEST_LOG_MAX_BYTES:
            os.replace(log_path, log_path.with_name(log_path.name + ".1"))


def _spool_files(spool: Path) -> list[Path]:
    found = []
    for path in spool.glob("*.push"):
        with contextlib.suppress(FileNotFoundError):
            found.append((path.stat().st_mtime_ns, path.name, path))
    return [path for _, _, path in sorted(found)]


def _owner(uid: int) -> str | None:
    # The hook wrote the file as the pushing user (local transports), so its owner is who pushed
    # when the environment named nobody.
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _parse_spool_file(cfg: Config, path: Path, now: float) -> tuple[list[Event], list[str], bool]:
    """Events of one spool file, the lines skipped (with why), and whether the file is finished."""
    stat = path.stat()
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    finished = "end" in lines
    if not finished and now - stat.st_mtime < STALE_SPOOL_S:
        return [], [], False
    pushed_at = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC)
    events: list[Event] = []
    skipped: list[str] = []
    for line in lines:
        if not line or line == "end":
            continue
        parts = line.split(" ", 2)
        if len(parts) < 2 or not parts[1].startswith("refs/heads/"):
            skipped.append(f"{path.name}: malformed line")
            continue
        payload: dict[str, Any] = {
            "branch": parts[1].removeprefix("refs/heads/"),
            "sha": parts[0],
            "remote": cfg.remote,
            "pushed_at": pushed_at,
            "pusher": (parts[2].strip() if len(parts) > 2 else "") or _owner(stat.st_uid),
        }
        try:
            events.append(make_event("branch_pushed", payload))
        except InvalidInput as err:
            skipped.append(f"{path.name}: {err.message}")
    return events, skipped, True


@dataclass(frozen=True)
class _Batch:
    """What one scan of the spool found: the events, the lines skipped, and the files they came from."""

    events: list[Event]
    skipped: list[str]
    done: list[Path]


def _scan(cfg: Config, paths: RemotePaths) -> _Batch:
    _rotate(paths.ingest_log)
    # Removed before the scan: a hook that still sees the marker knows this scan will find its file.
    with contextlib.suppress(FileNotFoundError):
        paths.spool_wanted.unlink()
    now = time.time()
    batch = _Batch([], [], [])
    for path in _spool_files(paths.spool):
        file_events, file_skipped, finished = _parse_spool_file(cfg, path, now)
        if finished:
            batch.events.extend(file_events)
            batch.skipped.extend(file_skipped)
            batch.done.append(path)
    return batch


def _consume(done: list[Path]) -> None:
    for path in done:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def ingest_spool(cfg: Config, bare: Path | str, emit: EmitEvents) -> IngestReport:
    """Move every finished spool file into the store as ``branch_pushed`` events, then delete it.

    ``emit`` stores the events and returns how many were new: the runner passes its own store's
    (:func:`emit_events`), ``integrator hooks ingest`` one it opens (:func:`ingest_detached`). Runs
    under an exclusive lock; a file is deleted only after its events are stored, so a crash in
    between re-delivers them and the store's idempotency keys make that harmless. The file work runs
    in a thread, so the caller's event loop never waits on the disk or on git.
    """
    paths = RemotePaths(await asyncio.to_thread(check_bare, bare))
    if not paths.spool.is_dir():
        return IngestReport()
    async with _exclusive(paths.spool_lock, LOCK_TIMEOUT_S):
        batch = await asyncio.to_thread(_scan, cfg, paths)
        stored = await emit(batch.events) if batch.events else 0
        await asyncio.to_thread(_consume, batch.done)
    return IngestReport(files=len(batch.done), events=len(batch.events), stored=stored, skipped=batch.skipped)


async def emit_events(integrator: Integrator, events: list[Event]) -> int:
    """Hand ``branch_pushed`` events to the core; returns how many were new.

    emit runs no git: the runner's next cycle fetches once for everything the hook spooled.
    """
    try:
        return (await integrator.emit(events)).stored
    except DuplicateConflict:
        pass
    # One conflicting event (same push recorded earlier with other content) must not hold the
    # rest of the spool hostage: store the others one by one.
    stored = 0
    for event in events:
        try:
            stored += (await integrator.emit([event])).stored
        except DuplicateConflict as err:
            log.warning("branch_pushed not stored: %s", err.message)
    return stored


def ingest_detached(cfg: Config, bare: Path | str) -> IngestReport:
    """``integrator hooks ingest``: :func:`ingest_spool` in a process of its own (started by post-receive,
    or by hand), opening the store only when there is something to store."""

    async def emit(events: list[Event]) -> int:
        # Imported here: the hooks CLI paths that never store (install, verify) skip the store's imports.
        from integrator.service import Integrator

        async with await Integrator.open(cfg) as integrator:
            return await emit_events(integrator, events)

    return asyncio.run(ingest_spool(cfg, bare, emit))
