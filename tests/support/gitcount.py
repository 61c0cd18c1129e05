"""Test-only: a ``git`` first on PATH that logs each invocation, then runs the real git.

Counting the processes a command starts is how the tests check "emit runs no git" and "an idle
check cycle costs the same with 10 or 200 candidates" without timing anything.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path


def install(directory: Path) -> tuple[str, Path]:
    """Write the shim into ``directory``; returns (the PATH to use, the log it appends to)."""
    real = shutil.which("git")
    assert real is not None, "git is not on PATH"
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "git-calls.log"
    log.touch()
    shim = directory / "git"
    shim.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{real}" "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return f"{directory}{os.pathsep}{os.environ.get('PATH', '')}", log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines()
