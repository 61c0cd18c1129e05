"""The integrator's files inside the bare remote, and the remote's mode file the pre-receive hook reads.

Shared by every part of :mod:`integrator.authority`; see docs/authority.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from integrator import git
from integrator.atomicfile import write_atomic
from integrator.errors import InvalidInput

MODES = ("shadow", "cutover")
ZERO_SHA = "0" * 40
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class RemotePaths:
    """The integrator's files inside one bare repository."""

    bare: Path

    @property
    def hooks(self) -> Path:
        return self.bare / "hooks"

    @property
    def state(self) -> Path:
        return self.bare / "integrator"

    @property
    def credential(self) -> Path:
        return self.state / "credential"

    @property
    def mode(self) -> Path:
        return self.state / "mode"

    @property
    def spool(self) -> Path:
        return self.state / "spool"

    @property
    def ingest_log(self) -> Path:
        return self.state / "ingest.log"

    @property
    def spool_lock(self) -> Path:
        return self.spool / ".lock"

    @property
    def spool_wanted(self) -> Path:
        return self.spool / ".wanted"


def check_bare(path: Path | str) -> Path:
    """Resolve ``path`` and require it to be the top of a bare repository; InvalidInput otherwise."""
    text = str(path)
    if not text or CONTROL.search(text):
        raise InvalidInput(f"remote: {text!r} contains control characters; refusing it")
    resolved = Path(text).expanduser().resolve()
    if not resolved.is_dir():
        raise InvalidInput(f"remote: {resolved} is not a directory (expected a bare git repository)")
    result = git.run_sync(
        ["rev-parse", "--is-bare-repository", "--absolute-git-dir"], cwd=resolved, check=False, timeout=30
    )
    lines = result.stdout.splitlines()
    if not result.ok or len(lines) != 2:
        why = stderr_reason(result.stderr)
        raise InvalidInput(
            f"remote: {resolved} is not a git repository (expected a bare repository)"
            + (f": {why}" if why else "")
        )
    if lines[0] != "true":
        raise InvalidInput(
            f"remote: {resolved} is not a bare repository; install the hooks into the bare remote that "
            "workers push to (git clone --bare makes one)"
        )
    if Path(lines[1]).resolve() != resolved:
        raise InvalidInput(f"remote: {resolved} is inside the bare repository {lines[1]}, not its top")
    return resolved


def write_remote_mode(bare: Path, mode: str) -> None:
    """Atomically set what the pre-receive hook enforces (``shadow`` or ``cutover``)."""
    if mode not in MODES:
        raise InvalidInput(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    target = RemotePaths(Path(bare)).mode
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, mode + "\n", mode=0o644)  # the hook runs as whoever pushes: world-readable


def read_remote_mode(bare: Path) -> str | None:
    """The mode file's value, or None when it is missing or unreadable (the hook then enforces cutover)."""
    try:
        text = RemotePaths(Path(bare)).mode.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if text in MODES else None


def stderr_reason(stderr: str) -> str:
    """The line of git's stderr that says why, rather than the closing boilerplate."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for prefix in ("fatal:", "error:", "!"):
        for line in lines:
            if line.startswith(prefix):
                return line
    return lines[-1] if lines else ""
