"""Serve one bare repository over ``git daemon`` on loopback, so pushes cross a server transport.

Over a path or ``file://`` remote the pusher runs receive-pack itself and can switch the hooks off;
behind ``git daemon`` the pusher has no shell on the server side, so the hooks become a boundary
(docs/authority.md). ``git.py`` only runs commands to completion, so the long-running daemon is started
here, with the same environment rules as every other git call.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from integrator.backoff import Backoff
from integrator.errors import IntegratorError, InvalidInput

LOOPBACK = "127.0.0.1"
# git:// URLs carry the directory name unescaped; keep it to characters no client misreads.
_SERVABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# git daemon binds its port within milliseconds; a loaded machine may take a second or two.
_START_WAITS = Backoff(first_s=0.01, max_s=0.2)


@dataclass
class ServedRemote:
    """A running ``git daemon`` exporting exactly one bare repository."""

    bare: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"git://{LOOPBACK}:{self.port}/{self.bare.name}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    """A port that was free a moment ago; :func:`start` retries if someone takes it first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def check_servable(bare: Path) -> None:
    if not _SERVABLE_NAME.fullmatch(bare.name):
        raise InvalidInput(
            f"remote: cannot serve {bare.name!r} over git://: the directory name must match "
            "[A-Za-z0-9][A-Za-z0-9._-]* (rename the bare repository or serve a symlink to it)"
        )


def _daemon_args(bare: Path, port: int) -> list[str]:
    # The bare repository is the only whitelisted directory and --strict-paths forbids guessing,
    # so siblings under the same base path are never exported.
    return [
        "git",
        "daemon",
        "--reuseaddr",
        "--strict-paths",
        "--export-all",
        "--enable=receive-pack",
        f"--listen={LOOPBACK}",
        f"--port={port}",
        f"--base-path={bare.parent}",
        "--",
        str(bare),
    ]


def _accepting(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def _wait_until_accepting(served: ServedRemote, timeout: float) -> bool:
    for pause in _START_WAITS.pauses(timeout):
        if not served.alive():
            return False
        if _accepting(served.port):
            return True
        time.sleep(pause)
    return False


def start(
    bare: Path,
    *,
    port: int | None = None,
    timeout: float = 10.0,
    log: IO[bytes] | int | None = subprocess.DEVNULL,
) -> ServedRemote:
    """Start the daemon and return once it accepts connections; a picked port is retried if taken."""
    check_servable(bare)
    attempts = 1 if port is not None else 5
    for _ in range(attempts):
        chosen = port if port is not None else free_port()
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
        proc = subprocess.Popen(
            _daemon_args(bare, chosen), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env
        )
        served = ServedRemote(bare=bare, port=chosen, process=proc)
        if _wait_until_accepting(served, timeout):
            return served
        served.stop()
    where = f"port {port}" if port is not None else "a free port"
    raise IntegratorError(f"git daemon did not start on {LOOPBACK} ({where}); is the port in use?")
