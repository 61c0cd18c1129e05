"""The only module that runs git.

Every call goes through :func:`run` (async subprocess, off the event loop, with a timeout) or
:func:`run_sync` (for code already running in a worker thread). User data (shas, branch names,
paths) is always placed after ``--`` or validated before it reaches a command line.
GitPython is used where a repository object is convenient (validating a path at ``init``).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from integrator.errors import GitError, InvalidInput

DEFAULT_TIMEOUT_S = 120.0
# Stderr fragments that mean "try again later", not "this candidate is bad".
_TRANSIENT = re.compile(
    r"could not read from remote|unable to access|connection refused|connection reset|timed out|"
    r"could not resolve|unable to lock|index\.lock|cannot lock ref|\.lock': file exists|"
    r"does not appear to be a git repository|early eof|the remote end hung up",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    # Never prompt: a credential prompt would hang an unattended integrator.
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "LC_ALL": "C"})
    if extra:
        env.update(extra)
    return env


def _raise(args: Sequence[str], rc: int, stderr: str) -> GitError:
    shown = " ".join(args[:3])
    last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {rc}"
    return GitError(
        f"git {shown} failed: {last}",
        command=["git", *args],
        stderr=stderr,
        transient=bool(_TRANSIENT.search(stderr)),
    )


async def run(
    args: Sequence[str],
    *,
    cwd: Path,
    timeout: float = DEFAULT_TIMEOUT_S,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> Result:
    """Run ``git <args>`` in ``cwd`` without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=str(cwd),
        stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(env),
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(input_text.encode() if input_text is not None else None), timeout
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise GitError(
            f"git {' '.join(args[:2])} timed out after {timeout:.0f}s",
            command=["git", *args],
            stderr="timeout",
            transient=True,
        ) from None
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    result = Result(tuple(args), proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))
    if check and not result.ok:
        raise _raise(args, result.returncode, result.stderr)
    return result


def run_sync(
    args: Sequence[str],
    *,
    cwd: Path,
    timeout: float = DEFAULT_TIMEOUT_S,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> Result:
    """The blocking twin of :func:`run`, for worker threads and hook-side helpers."""
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=str(cwd),
            input=input_text,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=_env(env),
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise GitError(
            f"git {' '.join(args[:2])} timed out after {timeout:.0f}s",
            command=["git", *args],
            stderr="timeout",
            transient=True,
        ) from None
    result = Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)
    if check and not result.ok:
        raise _raise(args, result.returncode, result.stderr)
    return result


def validate_repository(path: Path, remote: str) -> str:
    """Check ``path`` is a git repository with ``remote``; return the remote's URL."""
    import git as gitpython  # GitPython; imported here so status paths do not pay for it

    try:
        repo = gitpython.Repo(path)
    except (gitpython.exc.NoSuchPathError, gitpython.exc.InvalidGitRepositoryError):
        raise InvalidInput(f"repo: {path} is not a git repository") from None
    try:
        remote_obj = repo.remote(remote)
    except ValueError:
        names = ", ".join(r.name for r in repo.remotes) or "none"
        raise InvalidInput(f"remote: {path} has no remote named {remote!r} (remotes: {names})") from None
    urls = list(remote_obj.urls)
    if not urls:
        raise InvalidInput(f"remote: {remote!r} in {path} has no URL")
    return str(urls[0])
