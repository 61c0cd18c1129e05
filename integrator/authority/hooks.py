"""The remote's two hooks: rendered from the templates in ``integrator/hooks/`` and installed.

``install_hooks`` puts two POSIX sh hooks into the bare remote and pins ``core.hooksPath`` there;
``pre-receive`` guards main with the integrator's credential (a push option), ``post-receive``
spools every pushed branch for :mod:`integrator.authority.spool`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from integrator import git, settings
from integrator.atomicfile import write_atomic
from integrator.authority.credential import ensure_credential, read_credential_file, sync_remote_credential
from integrator.authority.record import record_install, record_path
from integrator.authority.remote import (
    CONTROL,
    RemotePaths,
    check_bare,
    read_remote_mode,
    write_remote_mode,
)
from integrator.config import Config
from integrator.errors import IntegratorError, InvalidInput, Refused
from integrator.events import utcnow
from integrator.readonly import StoreUnavailable, read_store

HOOK_NAMES = ("pre-receive", "post-receive")
# Beside the package (package data), not via importlib.resources: the editable install's namespace
# path trips MultiplexedPath.
TEMPLATES = Path(__file__).resolve().parent.parent / "hooks"
HOOK_MARKER = "# integrator-managed-hook"

_PLACEHOLDER = re.compile(r"@[A-Z_]+@")

Clock = Callable[[], datetime]


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise IntegratorError(f"hooks install: `{name}` is not on PATH; the hooks need its absolute path")
    return str(Path(found).resolve())


def _ref_format(bare: Path) -> str:
    # `--show-ref-format` arrived with reftable (git 2.45); older git echoes the unknown option
    # back, and only ever had the files backend. Anything unexpected is treated as not-files, which
    # only costs the hook a git call per ref.
    result = git.run_sync(["rev-parse", "--show-ref-format"], cwd=bare, check=False, timeout=30)
    value = result.stdout.strip()
    if not result.ok:
        return "unknown"
    return "files" if value in ("files", "--show-ref-format") else value or "unknown"


def hook_context(cfg: Config, bare: Path) -> dict[str, str]:
    """The absolute paths baked into the hooks, so they depend on nothing in the pusher's environment."""
    if cfg.config_path is None:
        raise InvalidInput("config: hooks install needs the integrator's config file path (pass --config)")
    git_path = _tool("git")
    paths = RemotePaths(bare)
    return {
        "GIT": git_path,
        "ENV": _tool("env"),
        "NICE": _tool("nice"),
        "FIND": _tool("find"),
        "RM": _tool("rm"),
        "MV": _tool("mv"),
        "SLEEP": _tool("sleep"),
        "STATE": str(paths.state),
        "BARE": str(bare),
        "MAIN_REF": f"refs/heads/{cfg.main_branch}",
        "MAIN_GLOB": main_glob(cfg.main_branch),
        "REFS_IN_FILES": "yes" if _ref_format(bare) == "files" else "no",
        # sys.executable, not its resolved target: a virtualenv is recognised by the path it is run as.
        "PYTHON": sys.executable,
        "CONFIG": str(cfg.config_path),
        "INGEST_PATH": f"{Path(git_path).parent}:/usr/bin:/bin",
    }


def main_glob(main_branch: str) -> str:
    """An sh ``case`` pattern matching the main branch's name in any case (every other byte quoted)."""
    return "".join(
        f"[{c.lower()}{c.upper()}]" if c.isascii() and c.isalpha() else c if c.isdigit() else f"\\{c}"
        for c in main_branch
    )


def render_hook(name: str, context: dict[str, str]) -> str:
    template = (TEMPLATES / name).read_text(encoding="utf-8")
    for key, value in context.items():
        if CONTROL.search(value):
            raise InvalidInput(f"hooks: {key} path {value!r} contains control characters")

    def substitute(match: re.Match[str]) -> str:
        key = match.group(0).strip("@")
        if key not in context:
            raise IntegratorError(f"hooks: template {name} has an unknown placeholder {match.group(0)}")
        return shlex.quote(context[key])

    # One pass, so a path that happens to contain "@NAME@" is never substituted again.
    return _PLACEHOLDER.sub(substitute, template)


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class InstallReport:
    bare: Path
    mode: str
    changes: tuple[str, ...]
    backups: tuple[Path, ...]
    checksums: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "bare": str(self.bare),
            "mode": self.mode,
            "changed": bool(self.changes),
            "changes": list(self.changes),
            "backups": [str(p) for p in self.backups],
            "hooks": self.checksums,
        }


def _git_config(bare: Path, key: str) -> str | None:
    result = git.run_sync(["config", "--local", "--get", key], cwd=bare, check=False, timeout=30)
    return result.stdout.strip() if result.ok else None


def _foreign_hooks(paths: RemotePaths) -> list[Path]:
    foreign = []
    for name in HOOK_NAMES:
        hook = paths.hooks / name
        if hook.is_symlink() or hook.exists():
            try:
                ours = HOOK_MARKER.encode() in hook.read_bytes()
            except OSError:
                ours = False
            if not ours:
                foreign.append(hook)
    return foreign


def _plan_refusals(paths: RemotePaths, force: bool) -> list[str]:
    if force:
        return []
    problems = [f"{hook} is not an integrator hook" for hook in _foreign_hooks(paths)]
    current = _git_config(paths.bare, "core.hooksPath")
    if current is not None and Path(current) != paths.hooks:
        problems.append(f"core.hooksPath is already set to {current}")
    return problems


def _backup(hook: Path, clock: Clock) -> Path:
    stamp = clock().astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    backup = hook.with_name(f"{hook.name}.pre-integrator.{stamp}")
    os.replace(hook, backup)
    return backup


def _install_hook_files(
    paths: RemotePaths, rendered: dict[str, str], clock: Clock
) -> tuple[list[str], list[Path]]:
    changes: list[str] = []
    backups: list[Path] = []
    foreign = set(_foreign_hooks(paths))
    for name, text in rendered.items():
        hook = paths.hooks / name
        if hook in foreign:
            backups.append(_backup(hook, clock))
        elif hook.is_file() and _same_text(hook, text) and os.access(hook, os.X_OK):
            continue
        hook.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(hook, text, mode=0o755)
        changes.append(f"wrote hook {name}")
    return changes, backups


def _same_text(path: Path, text: str) -> bool:
    return path.read_text(encoding="utf-8", errors="replace") == text


def _set_git_config(bare: Path, key: str, value: str) -> bool:
    if _git_config(bare, key) == value:
        return False
    git.run_sync(["config", "--local", key, value], cwd=bare, timeout=30)
    return True


def install_hooks(
    cfg: Config, bare: Path | str, *, force: bool = False, clock: Clock = utcnow
) -> InstallReport:
    """Install (or confirm) the hooks, pinned config, credential and mode in ``bare``; idempotent.

    Everything that could refuse is checked before anything is written, so a refusal changes nothing.
    """
    paths = RemotePaths(check_bare(bare))
    rendered = {name: render_hook(name, hook_context(cfg, paths.bare)) for name in HOOK_NAMES}
    read_credential_file(cfg.credential_file)  # a malformed one is bad input: refuse before writing
    mode = live_mode(cfg)  # an unreadable store is bad input too: refuse before writing
    problems = _plan_refusals(paths, force)
    if problems:
        raise Refused(
            f"hooks install: {'; '.join(problems)}. Nothing was changed; re-run with --force to replace "
            "them (existing hooks are kept as *.pre-integrator.<time> backups)"
        )
    changes, backups = _install_hook_files(paths, rendered, clock)
    # Pinned in the repository's own config: a pusher's GIT_CONFIG_GLOBAL cannot turn the hooks off.
    if _set_git_config(paths.bare, "core.hooksPath", str(paths.hooks)):
        changes.append("pinned core.hooksPath")
    if _set_git_config(paths.bare, "receive.advertisePushOptions", "true"):
        changes.append("set receive.advertisePushOptions")
    changes.extend(_install_state(cfg, paths, mode))
    checksums = {name: _checksum(text) for name, text in rendered.items()}
    if record_install(cfg, paths.bare, checksums, clock):
        changes.append(f"recorded the install in {record_path(cfg)}")
    mode = read_remote_mode(paths.bare) or "cutover (mode file unreadable)"
    return InstallReport(paths.bare, mode, tuple(changes), tuple(backups), checksums)


def live_mode(cfg: Config) -> str:
    """The mode the integrator runs in now: the store's once a cutover or rollback set it, else the config's.

    Read through the one read-only opener (:mod:`integrator.readonly`), so a remote installed before
    ``init`` creates no database, and through :mod:`integrator.settings`, which owns the mode's row.
    """
    try:
        return str(read_store(cfg.db, lambda conn: settings.mode(conn, cfg.mode))["mode"])
    except StoreUnavailable as err:
        if err.absent or err.uninitialised:
            return cfg.mode
        raise InvalidInput(f"{err.message}: cannot tell which mode the remote must enforce") from None


def _install_state(cfg: Config, paths: RemotePaths, mode: str) -> list[str]:
    changes: list[str] = []
    if not paths.spool.is_dir():
        paths.spool.mkdir(parents=True)
        changes.append("created the spool directory")
    credential, wrote = ensure_credential(cfg)
    if wrote:
        changes.append(f"wrote the credential file {cfg.credential_file} (mode 0600)")
    if sync_remote_credential(paths, credential):
        changes.append("copied the credential into the remote (mode 0600)")
    if not paths.mode.exists():
        # The live mode, not the configured one: that is only the initial mode, and a remote that moved
        # after a cutover (or a rollback) must enforce what the integrator runs in now.
        write_remote_mode(paths.bare, mode)
        changes.append(f"set the remote's mode to {mode}")
    return changes
