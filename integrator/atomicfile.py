"""Replace a file as a whole: a reader (or a crash) sees the old content or the new, never a part.

The one way the product writes a file it may rewrite (the config, the credential, the hooks, the
follow-up todos, the verify records): a temporary file in the same directory (a rename across file
systems is not atomic), its mode set before a byte is written, the bytes fsynced, the rename, then
the directory fsynced so the rename itself survives a power loss.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE = 0o600
KEEP = None  # the mode of the file being replaced; for a new file 0666 minus the umask


def write_atomic(path: Path, data: str | bytes, *, mode: int | None = PRIVATE) -> None:
    """Replace ``path`` with ``data`` (text is UTF-8). ``mode``: owner-only by default; :data:`KEEP`
    for a file a person shares (a todo, the config), which keeps what they gave it."""
    path = Path(path)
    with_mode = mode if mode is not KEEP else _mode_of(path)
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    # Created owner-only (or 0666 minus the umask for KEEP) and changed with fchmod before writing:
    # a secret is never readable by others, not even for a moment.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 if mode is KEEP else 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            if with_mode is not None:
                os.fchmod(fh.fileno(), with_mode)
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _mode_of(path: Path) -> int | None:
    return stat.S_IMODE(path.stat().st_mode) if path.exists() else None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
