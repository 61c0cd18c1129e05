"""Cross-process wake-ups: a writer pokes a Unix datagram socket the idle runner listens on.

The runner sleeps on this socket instead of polling the database; a lost datagram only delays
work until the runner's idle re-check, so delivery is best effort by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import socket
import tempfile
from pathlib import Path


@functools.lru_cache(maxsize=64)  # poked on every write: resolve() and hashing cost more than the send
def socket_path(db_path: Path) -> Path:
    # Unix socket paths are limited to ~108 bytes, so derive a short name from the database path.
    digest = hashlib.sha256(str(db_path.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"integrator-{digest}.wake"


def poke(db_path: Path) -> None:
    """Tell a waiting runner that new work may exist. Never raises."""
    path = socket_path(db_path)
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.sendto(b"w", str(path))


class WakeListener:
    """Bind the wake socket and turn datagrams into an asyncio.Event."""

    def __init__(self, db_path: Path) -> None:
        self._path = socket_path(db_path)
        self._sock: socket.socket | None = None
        self.event = asyncio.Event()

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self._path))
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(BlockingIOError, OSError):
            while True:
                self._sock.recv(64)
        self.event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a poke or ``timeout`` seconds; True if poked."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self.event.clear()
        return True

    def stop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop``; True when stopped."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
