"""Run the verify command on one merged commit, in the sandbox (:mod:`integrator.isolation`).

The commit is exported into a plain directory (no ``.git``, nothing of the integrator's clone), the
command runs there with an allowlisted environment and a scratch ``HOME``, and the whole process
tree is killed on timeout or cancellation. :func:`run` returns why the candidate must be blocked,
or None when the command passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from integrator import git, isolation, procs
from integrator.authority.record import read_record
from integrator.blocked.evidence import git_failure_evidence, verify_evidence
from integrator.config import Config
from integrator.errors import GitError, IntegratorError
from integrator.reasons import ReasonCode
from integrator.recovery import VerifyRecord

# The log kept from a verify that prints without end; evidence shows a tail of it anyway.
LOG_KEEP_BYTES = 1 << 20


class Unisolated(IntegratorError):
    """Verify would run without a sandbox and the config does not accept that risk."""

    code = "verify_unisolated"


@dataclass(frozen=True)
class Failure:
    """Why the candidate is blocked: ``verify_failed`` or ``git_error`` (its tree cannot be checked out)."""

    reason_code: ReasonCode
    evidence: dict[str, Any]


async def refusal(cfg: Config) -> str | None:
    """Why verify must not run here (no sandbox and the risk not accepted), or None."""
    if not cfg.verify_command:
        return None
    sandbox = await asyncio.to_thread(isolation.in_force, cfg)
    if sandbox.allowed:
        return None
    return (
        f"verify refused: no sandbox ({sandbox.detail}); the candidate's code would run with the "
        "integrator's files and credential. Fix the sandbox, or set verify_accept_unisolated = true"
    )


def work_root() -> Path:
    """Where verify trees live (one directory per run, removed after it); hidden from every verify."""
    root = Path(tempfile.gettempdir()) / f"integrator-verify-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    return root


async def remote_dirs(cfg: Config) -> list[Path]:
    """The remote's bare repository when it is reachable as a local path (a path remote, or served)."""
    found = []
    url = await git.run(["config", "--get", f"remote.{cfg.remote}.url"], cwd=cfg.repo, check=False)
    spec = url.stdout.strip()
    if spec.startswith("file://"):
        spec = unquote(urlsplit(spec).path)
    if spec and "://" not in spec and not spec.startswith("-"):
        path = Path(spec) if Path(spec).is_absolute() else cfg.repo / spec
        found.append(path)
    with contextlib.suppress(IntegratorError):
        bare = read_record(cfg).get("bare")
        if bare:
            found.append(Path(bare))
    return [p for p in found if p.exists()]


async def run(cfg: Config, commit: str, *, secrets: Sequence[str] = ()) -> Failure | None:
    """Export ``commit`` and run ``cfg.verify_command`` on it; a Failure blocks the candidate."""
    command = cfg.verify_command
    if not command:
        return None
    refused = await refusal(cfg)
    if refused is not None:
        raise Unisolated(refused)
    sandbox = await asyncio.to_thread(isolation.in_force, cfg)
    workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="verify-", dir=work_root()))
    # Noted before anything runs: if this runner is killed, the next holder kills what it started
    # and removes the directory (integrator.recovery).
    record = VerifyRecord(cfg.state_dir, workdir)
    tree, home = workdir / "tree", workdir / "home"
    tree.mkdir()
    home.mkdir()
    try:
        try:
            await git.export_tree(cfg.repo, commit, tree, index=workdir / "index", timeout=cfg.git_timeout_s)
        except GitError as err:
            # The candidate's own tree cannot be written out (a name too long, too big to finish in time).
            evidence = git_failure_evidence(err.command, err.stderr, secrets=secrets)
            return Failure(ReasonCode.GIT_ERROR, {**evidence, "stage": "checkout"})
        argv = list(command)
        if sandbox.kind == "namespaces":
            hidden = isolation.hidden_paths(cfg, [work_root(), *await remote_dirs(cfg)])
            argv = isolation.wrap(argv, hidden=hidden, tree=tree, home=home, network=sandbox.network)
        status, log, timed_out = await _execute(
            argv, tree, isolation.environment(cfg, home), cfg.verify_timeout_s, on_start=record.started
        )
        if status == 0:
            return None
        evidence = verify_evidence(list(command), status, log, timed_out=timed_out, secrets=secrets)
        return Failure(ReasonCode.VERIFY_FAILED, {**evidence, "isolation": sandbox.kind})
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)
        record.done()


async def _execute(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: float, *, on_start: Callable[[int], None]
) -> tuple[int, str, bool]:
    """(exit status, the output's last ``LOG_KEEP_BYTES``, timed out); the process group dies with us
    (on a timeout or cancellation here; after a SIGKILL of the runner, at the next holder's start)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=str(cwd),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # one process group, killed as a whole
        )
    except OSError as err:
        return 127, f"cannot run verify command: {err}", False
    on_start(proc.pid)
    kept = bytearray()

    async def drain() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            kept.extend(chunk)
            del kept[:-LOG_KEEP_BYTES]
        await proc.wait()

    timed_out = False
    try:
        await asyncio.wait_for(drain(), timeout)
    except TimeoutError:
        timed_out = True
    finally:
        if proc.returncode is None:
            procs.kill_group(proc.pid)
            await proc.wait()
    status = -int(signal.SIGKILL) if timed_out else (proc.returncode or 0)
    return status, kept.decode(errors="replace"), timed_out
