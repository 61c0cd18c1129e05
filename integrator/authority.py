"""Push authority (DESIGN §9): only the integrator writes main, and the remote enforces it.

``install_hooks`` puts two POSIX sh hooks into the bare remote and pins ``core.hooksPath`` there;
``pre-receive`` guards main with the integrator's credential (a push option), ``post-receive``
spools every pushed branch, and ``ingest_spool`` turns the spool into ``branch_pushed`` events.
``verify`` tries every known way around the guard from a scratch clone, reports what the remote
really did, and puts main back. The credential never leaves its two files and the environment of
the integrator's own pushes: not argv, not output, not the record.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pwd
import re
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from integrator import git
from integrator.config import Config
from integrator.errors import DuplicateConflict, IntegratorError, InvalidInput, Refused
from integrator.events import Event, iso, make_event, utcnow

log = logging.getLogger(__name__)

HOOK_NAMES = ("pre-receive", "post-receive")
TEMPLATES = Path(__file__).with_name("hooks")
HOOK_MARKER = "# integrator-managed-hook"
MODES = ("shadow", "cutover")
TOKEN_OPTION = "integrator-token"
PROBE_OPTION = "integrator-probe"
RECORD_NAME = "authority.json"
ZERO_SHA = "0" * 40
# A hook that died while writing leaves a spool file without its `end` line; after this long nobody
# is still writing it, so its complete lines are ingested rather than kept forever.
STALE_SPOOL_S = 600.0
LOCK_TIMEOUT_S = 60.0
INGEST_LOG_MAX_BYTES = 1 << 20

_CREDENTIAL_RE = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLACEHOLDER = re.compile(r"@[A-Z_]+@")

Clock = Callable[[], datetime]


# --- where things live in the bare repository ------------------------------------------------------


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
    def legacy_log(self) -> Path:
        return self.state / "legacy-main.log"

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
    if not text or _CONTROL.search(text):
        raise InvalidInput(f"remote: {text!r} contains control characters; refusing it")
    resolved = Path(text).expanduser().resolve()
    if not resolved.is_dir():
        raise InvalidInput(f"remote: {resolved} is not a directory (expected a bare git repository)")
    result = git.run_sync(
        ["rev-parse", "--is-bare-repository", "--absolute-git-dir"], cwd=resolved, check=False, timeout=30
    )
    lines = result.stdout.splitlines()
    if not result.ok or len(lines) != 2:
        why = _reason(result.stderr)
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


# --- the credential ----------------------------------------------------------------------------------


def _write_private(path: Path, text: str) -> None:
    """Atomically write ``text`` readable by the owner only (0600 from creation, not chmod after)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_credential_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput(f"credential: cannot read {path}: {type(err).__name__}") from None
    if not _CREDENTIAL_RE.fullmatch(text):
        # Never echo the content: it may be a real secret in the wrong format.
        raise InvalidInput(
            f"credential: {path} does not hold a valid credential; remove it to generate a new one"
        )
    return text


def read_credential(cfg: Config) -> str:
    """The integrator's credential; InvalidInput if ``hooks install`` has not created it yet."""
    value = _read_credential_file(cfg.credential_file)
    if value is None:
        raise InvalidInput(
            f"credential: {cfg.credential_file} does not exist; "
            "run `integrator hooks install --remote PATH` first"
        )
    return value


def ensure_credential(cfg: Config) -> tuple[str, bool]:
    """Return the credential, generating it once; the flag says whether anything was written."""
    path = cfg.credential_file
    value = _read_credential_file(path)
    if value is not None:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
            return value, True
        return value, False
    value = secrets.token_hex(32)
    _write_private(path, value + "\n")
    return value, True


def push_options_env(options: list[str]) -> dict[str, str]:
    """Environment that makes ``git push`` send ``options`` without putting them on the command line.

    Argv is world-readable in ``/proc``; the environment is not, so the integrator's credentialed
    pushes pass the token this way (``push.pushOption`` via ``GIT_CONFIG_COUNT``).
    """
    env = {"GIT_CONFIG_COUNT": str(len(options))}
    for index, option in enumerate(options):
        env[f"GIT_CONFIG_KEY_{index}"] = "push.pushOption"
        env[f"GIT_CONFIG_VALUE_{index}"] = option
    return env


def credential_push_env(cfg: Config) -> dict[str, str]:
    """What the integrator's own push of main needs in its environment (see :func:`push_options_env`)."""
    return push_options_env([f"{TOKEN_OPTION}={read_credential(cfg)}"])


# --- the remote's mode --------------------------------------------------------------------------------


def write_remote_mode(bare: Path, mode: str) -> None:
    """Atomically set what the pre-receive hook enforces (``shadow`` or ``cutover``)."""
    if mode not in MODES:
        raise InvalidInput(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    _write_atomic(RemotePaths(Path(bare)).mode, mode + "\n")


def read_remote_mode(bare: Path) -> str | None:
    """The mode file's value, or None when it is missing or unreadable (the hook then enforces cutover)."""
    try:
        text = RemotePaths(Path(bare)).mode.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if text in MODES else None


# --- rendering and installing the hooks -----------------------------------------------------------------


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
        "DATE": _tool("date"),
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


def probe_marker(credential: str, nonce: str) -> str:
    """``integrator-probe=NONCE.MAC``: the hook honours it only if MAC proves the credential."""
    data = f"{credential}:{nonce}".encode()
    mac = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git hash-object, in the hook
    return f"{PROBE_OPTION}={nonce}.{mac}"


def render_hook(name: str, context: dict[str, str]) -> str:
    # Beside this module (package data), not via importlib.resources: the editable install's
    # namespace path trips MultiplexedPath.
    template = (TEMPLATES / name).read_text(encoding="utf-8")
    for key, value in context.items():
        if _CONTROL.search(value):
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
        _write_atomic(hook, text, 0o755)
        changes.append(f"wrote hook {name}")
    return changes, backups


def _same_text(path: Path, text: str) -> bool:
    return path.read_text(encoding="utf-8", errors="replace") == text


def _set_git_config(bare: Path, key: str, value: str) -> bool:
    if _git_config(bare, key) == value:
        return False
    git.run_sync(["config", "--local", key, value], cwd=bare, timeout=30)
    return True


def _sync_remote_credential(paths: RemotePaths, credential: str) -> bool:
    target = paths.credential
    try:
        same = target.read_text(encoding="utf-8").strip() == credential and not (
            target.stat().st_mode & 0o077
        )
    except (OSError, UnicodeDecodeError):
        same = False
    if not same:
        _write_private(target, credential + "\n")
    return not same


def install_hooks(
    cfg: Config, bare: Path | str, *, force: bool = False, clock: Clock = utcnow
) -> InstallReport:
    """Install (or confirm) the hooks, pinned config, credential and mode in ``bare``; idempotent.

    Everything that could refuse is checked before anything is written, so a refusal changes nothing.
    """
    paths = RemotePaths(check_bare(bare))
    rendered = {name: render_hook(name, hook_context(cfg, paths.bare)) for name in HOOK_NAMES}
    _read_credential_file(cfg.credential_file)  # a malformed one is bad input: refuse before writing
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
    if _record_install(cfg, paths.bare, checksums, clock):
        changes.append(f"recorded the install in {cfg.state_dir / RECORD_NAME}")
    mode = read_remote_mode(paths.bare) or "cutover (mode file unreadable)"
    return InstallReport(paths.bare, mode, tuple(changes), tuple(backups), checksums)


def live_mode(cfg: Config) -> str:
    """The mode the integrator runs in now: the store's once a cutover or rollback set it, else the config's.

    Read through a read-only connection, so a remote installed before ``init`` creates no database.
    """
    from integrator import settings
    from integrator.readonly import StoreUnavailable, read_store

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
    if _sync_remote_credential(paths, credential):
        changes.append("copied the credential into the remote (mode 0600)")
    if not paths.mode.exists():
        # The live mode, not the configured one: that is only the initial mode, and a remote that moved
        # after a cutover (or a rollback) must enforce what the integrator runs in now.
        write_remote_mode(paths.bare, mode)
        changes.append(f"set the remote's mode to {mode}")
    return changes


# --- authority.json: what was installed and what verify found ------------------------------------------


def record_path(cfg: Config) -> Path:
    return cfg.state_dir / RECORD_NAME


def read_record(cfg: Config) -> dict[str, Any]:
    """The authority record (empty if none); keys other areas add (cutover audit) are preserved."""
    path = record_path(cfg)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise InvalidInput(f"{path}: not readable JSON ({type(err).__name__}); fix or remove it") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a JSON object")
    return data


def update_record(cfg: Config, changes: dict[str, Any]) -> None:
    data = read_record(cfg)
    data.update(changes)
    cfg.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_atomic(record_path(cfg), json.dumps(data, indent=2, sort_keys=True) + "\n", 0o600)


_VERIFY_KEYS = (
    "verified_at",
    "verified_mode",
    "verified_remote",
    "transport",
    "transport_kind",
    "boundary",
    "verify_result",
    "verify_failures",
)


def _record_install(cfg: Config, bare: Path, checksums: dict[str, str], clock: Clock) -> bool:
    current = read_record(cfg)
    if current.get("bare") == str(bare) and current.get("hooks") == checksums and current.get("installed_at"):
        return False
    changes: dict[str, Any] = {
        "bare": str(bare),
        "main_branch": cfg.main_branch,
        "installed_at": iso(clock()),
        "hooks": checksums,
    }
    # New hooks (or another remote) have not been verified yet: an old pass must not vouch for them.
    changes.update({key: None for key in _VERIFY_KEYS if key in current})
    update_record(cfg, changes)
    return True


# --- legacy pushes of main seen in shadow mode -----------------------------------------------------------


@dataclass(frozen=True)
class LegacyPush:
    """One push of main that the hook let through without the integrator's credential."""

    old: str
    new: str
    ref: str
    pushed_at: datetime
    probe: bool = False

    @property
    def created(self) -> bool:
        return self.old == ZERO_SHA

    @property
    def deleted(self) -> bool:
        return self.new == ZERO_SHA


_LEGACY_LINE = re.compile(r"([0-9a-f]{40}) ([0-9a-f]{40}) (refs/\S+) (\d+)( probe)?")


def read_legacy_pushes(bare: Path, *, include_probes: bool = False) -> list[LegacyPush]:
    """The shadow-mode log of legacy pushes to main, oldest first; `authority verify` probes are left out.

    A line means the hook accepted the push; receive-pack can still refuse it afterwards (a
    non-fast-forward under ``receive.denyNonFastForwards``), so confirm ``new`` is on main before
    counting it as landed.
    """
    try:
        text = RemotePaths(Path(bare)).legacy_log.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    pushes = []
    for line in text.splitlines():
        match = _LEGACY_LINE.fullmatch(line.strip())
        if match is None:
            continue
        push = LegacyPush(
            old=match.group(1),
            new=match.group(2),
            ref=match.group(3),
            pushed_at=datetime.fromtimestamp(int(match.group(4)), UTC),
            probe=match.group(5) is not None,
        )
        if include_probes or not push.probe:
            pushes.append(push)
    return pushes


# --- ingesting the post-receive spool -----------------------------------------------------------------


@dataclass(frozen=True)
class IngestReport:
    files: int = 0
    events: int = 0
    stored: int = 0
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "events": self.events, "stored": self.stored, "skipped": self.skipped}


@contextlib.contextmanager
def _exclusive(lock_path: Path, timeout: float) -> Iterator[None]:
    """flock the spool; concurrent ingestions queue here so each spool file is consumed by one of them."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IntegratorError(
                        f"spool {lock_path.parent} is locked by another ingestion"
                    ) from None
                time.sleep(0.05)
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


def ingest_spool(cfg: Config, bare: Path | str) -> IngestReport:
    """Move every finished spool file into the store as ``branch_pushed`` events, then delete it.

    Runs under an exclusive lock; a file is deleted only after its events are stored, so a crash in
    between re-delivers them and the store's idempotency keys make that harmless.
    """
    paths = RemotePaths(check_bare(bare))
    if not paths.spool.is_dir():
        return IngestReport()
    with _exclusive(paths.spool_lock, LOCK_TIMEOUT_S):
        _rotate(paths.ingest_log)
        # Removed before the scan: a hook that still sees the marker knows this scan will find its file.
        with contextlib.suppress(FileNotFoundError):
            paths.spool_wanted.unlink()
        now = time.time()
        events: list[Event] = []
        skipped: list[str] = []
        done: list[Path] = []
        for path in _spool_files(paths.spool):
            file_events, file_skipped, finished = _parse_spool_file(cfg, path, now)
            if finished:
                events.extend(file_events)
                skipped.extend(file_skipped)
                done.append(path)
        stored = ingest(cfg, events) if events else 0
        for path in done:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return IngestReport(files=len(done), events=len(events), stored=stored, skipped=skipped)


def ingest(cfg: Config, events: list[Event]) -> int:
    """Hand ``branch_pushed`` events to the core; returns how many were new."""
    return _store_events(cfg, events)


def _store_events(cfg: Config, events: list[Event]) -> int:
    import asyncio

    return asyncio.run(_emit(cfg, events))


async def _emit(cfg: Config, events: list[Event]) -> int:
    # Imported here: the hooks CLI paths that never store (install, verify) skip the store's imports.
    from integrator.service import Integrator

    async with await Integrator.open(cfg) as integrator:
        # emit runs no git: the runner's next cycle fetches once for everything the hook spooled.
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


# --- verify: try every known way around the guard ---------------------------------------------------------

Expect = Literal["rejected", "allowed", "local-only bypass", "skipped"]
_SERVER_SCHEMES = ("git", "ssh", "git+ssh", "ssh+git", "http", "https")
_SCP_LIKE = re.compile(r"(?:[^@/:]+@)?[^/:]+:(?!//).*")
_PROBE_IDENTITY = {
    "GIT_AUTHOR_NAME": "integrator verify",
    "GIT_AUTHOR_EMAIL": "integrator-verify@localhost",
    "GIT_COMMITTER_NAME": "integrator verify",
    "GIT_COMMITTER_EMAIL": "integrator-verify@localhost",
}


@dataclass(frozen=True)
class Transport:
    """How ``verify`` reaches the remote, and whether the hooks there are a boundary or only a guard."""

    url: str
    shown: str
    scheme: str
    bare: Path | None
    bare_note: str = ""

    @property
    def server(self) -> bool:
        return self.scheme in _SERVER_SCHEMES

    @property
    def kind(self) -> str:
        return "server" if self.server else "local"

    def describe(self) -> str:
        if self.server:
            return (
                f"boundary: {self.scheme} is a server transport; pushers cannot choose how receive-pack runs "
                "(it holds as long as they cannot write the bare repository as its owner)"
            )
        return (
            f"guard only: a {self.scheme} remote runs receive-pack as the pusher, who can switch the "
            "hooks off or edit the repository; serve it with `integrator remote serve` to make it a boundary"
        )


def _shown_url(spec: str) -> str:
    parts = urlsplit(spec)
    if parts.password is None:
        return spec
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=user + host).geturl()


def _bare_from_record(cfg: Config, url_path: str) -> tuple[Path | None, str]:
    name = url_path.rstrip("/").rsplit("/", 1)[-1]
    recorded = read_record(cfg).get("bare")
    if not isinstance(recorded, str):
        return None, f"{record_path(cfg)} records no bare repository"
    candidates = {name, f"{name}.git", name.removesuffix(".git")}
    if Path(recorded).name not in candidates:
        return None, f"the recorded bare repository {recorded} is not the one this URL names ({name})"
    try:
        return check_bare(recorded), ""
    except InvalidInput as err:
        return None, err.message


def classify_remote(spec: str, cfg: Config) -> Transport:
    """Parse ``--remote`` (a path or URL); InvalidInput for anything git could misread."""
    if not spec or _CONTROL.search(spec) or spec.startswith("-"):
        raise InvalidInput(
            f"remote: {spec!r} is not a usable remote (empty, control characters or leading '-')"
        )
    scheme = urlsplit(spec).scheme.lower() if "://" in spec else ""
    if scheme == "file":
        return Transport(url=spec, shown=spec, scheme="file", bare=check_bare(unquote(urlsplit(spec).path)))
    if scheme in _SERVER_SCHEMES:
        found, note = _bare_from_record(cfg, urlsplit(spec).path)
        return Transport(url=spec, shown=_shown_url(spec), scheme=scheme, bare=found, bare_note=note)
    if scheme:
        raise InvalidInput(
            f"remote: unsupported transport {scheme}:// (use a path, file://, git://, ssh:// or http(s)://)"
        )
    if "::" in spec:
        raise InvalidInput(f"remote: {spec!r} names a remote helper; verify only speaks git's own transports")
    if _SCP_LIKE.fullmatch(spec) and not Path(spec).exists():
        found, note = _bare_from_record(cfg, spec.split(":", 1)[1])
        return Transport(url=spec, shown=spec, scheme="ssh", bare=found, bare_note=note)
    bare = check_bare(spec)
    return Transport(url=str(bare), shown=str(bare), scheme="path", bare=bare)


@dataclass(frozen=True)
class VerifyRow:
    variant: str
    expected: str
    actual: str
    ok: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "expected": self.expected,
            "actual": self.actual,
            "ok": self.ok,
            "note": self.note,
        }


@dataclass(frozen=True)
class VerifyReport:
    transport: Transport
    mode: str
    mode_source: str
    main: str
    rows: tuple[VerifyRow, ...]
    verified_at: datetime

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def failures(self) -> list[str]:
        return [row.variant for row in self.rows if not row.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "remote": self.transport.shown,
            "transport": self.transport.scheme,
            "transport_kind": self.transport.kind,
            "boundary": self.transport.server,
            "assessment": self.transport.describe(),
            "mode": self.mode,
            "mode_source": self.mode_source,
            "main": self.main,
            "main_restored": True,
            "ok": self.ok,
            "failures": self.failures,
            "verified_at": iso(self.verified_at),
            "variants": [row.as_dict() for row in self.rows],
        }


Effect = Literal["main", "main-deleted", "feature", "atomic", "head", "ref"]


@dataclass(frozen=True)
class _Probe:
    name: str
    args: tuple[str, ...]
    expect: Expect
    effect: Effect = "main"
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[], None] | None = None
    # Some server transports refuse the command outright (git-shell and a custom --receive-pack);
    # for those probes any refusal that left main alone counts as holding.
    any_refusal_holds: bool = False
    # A refusal by receive-pack itself (not the hook) that is still the expected behaviour:
    # (text in git's message, what to say about it).
    git_refusal: tuple[str, str] | None = None
    note: str = ""
    ref: str = ""  # effect "ref": this ref now exists (it did not before)


@dataclass
class _Verify:
    """State of one verify run: the scratch clones, the shas it pushes, and what must be undone."""

    cfg: Config
    transport: Transport
    mode: str
    credential: str
    tmp: Path
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    main_before: str = ""
    probe_sha: str = ""
    orphan_sha: str = ""
    alias: str | None = None
    head_existed: bool = False
    refs_before: frozenset[str] = frozenset()

    @property
    def main_ref(self) -> str:
        return f"refs/heads/{self.cfg.main_branch}"

    @property
    def prefix(self) -> str:
        return f"refs/heads/integrator-verify/{self.run_id}/"

    @property
    def scratch(self) -> Path:
        return self.tmp / "scratch"

    @property
    def marker(self) -> str:
        return probe_marker(self.credential, self.run_id)

    def run(
        self,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        check: bool = True,
        cwd: Path | None = None,
    ) -> git.Result:
        merged = dict(_PROBE_IDENTITY)
        merged.update(env or {})
        return git.run_sync(
            args, cwd=cwd or self.scratch, env=merged, check=check, timeout=self.cfg.git_timeout_s
        )

    def point_main(self, sha: str) -> None:
        """Set the scratch clone's own main, which the probes that push `main` by name send."""
        self.run(["update-ref", self.main_ref, sha])

    def remote_heads(self) -> dict[str, str]:
        # Every ref, not only branches: a tag or replace ref named like main is a probe's effect too.
        out = self.run(["ls-remote", "--", self.transport.url], cwd=self.tmp).stdout
        heads = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            heads[ref] = sha
        return heads

    def integrator_push(self, refspec: str, lease: str) -> git.Result:
        env = push_options_env([f"{TOKEN_OPTION}={self.credential}", self.marker])
        return self.run(
            ["push", f"--force-with-lease={lease}", self.transport.url, refspec],
            env=env,
            check=False,
        )


_DELETE_CURRENT = (
    "deletion of the current branch prohibited",
    "the hook let it through; receive-pack itself refuses to delete the remote's HEAD branch "
    "(receive.denyDeleteCurrent)",
)


def _guarded(v: _Verify) -> Expect:
    return "rejected" if v.mode == "cutover" else "allowed"


def _probe_list(v: _Verify) -> list[_Probe]:
    url, main, p = v.transport.url, v.cfg.main_branch, v.probe_sha
    mark = ("-o", v.marker)
    guarded = _guarded(v)
    no_hooks_config = v.tmp / "hooks-off.gitconfig"
    no_hooks_config.write_text("[core]\n\thooksPath = /dev/null\n", encoding="utf-8")
    # In cutover a forged GIT_PUSH_OPTION_* must arrive with no real push option at all, or
    # receive-pack would overwrite it; in shadow the push is let through anyway and marked as a probe.
    forged_mark = () if v.mode == "cutover" else mark
    rp_expect: Expect = guarded if (v.transport.server or v.mode == "shadow") else "local-only bypass"
    probes = [
        _Probe("plain push of main", ("push", *mark, url, main), guarded),
        _Probe("HEAD:main", ("push", *mark, url, f"HEAD:{main}"), guarded),
        _Probe("refs/heads/main", ("push", *mark, url, f"HEAD:{v.main_ref}"), guarded),
        _Probe(
            "+main (force)",
            ("push", *mark, url, f"+{main}"),
            guarded,
            prepare=lambda: v.point_main(v.orphan_sha),
            note="a non-fast-forward rewrite of main",
        ),
        _Probe(
            "--no-verify", ("push", "--no-verify", *mark, url, main), guarded, prepare=lambda: v.point_main(p)
        ),
        _Probe(
            "delete main (--delete)",
            ("push", *mark, url, "--delete", main),
            guarded,
            effect="main-deleted",
            git_refusal=_DELETE_CURRENT,
        ),
        _Probe(
            "delete main (:main)",
            ("push", *mark, url, f":{v.main_ref}"),
            guarded,
            effect="main-deleted",
            git_refusal=_DELETE_CURRENT,
        ),
        _mirror_probe(v, mark),
        _Probe("--all", ("push", "--all", *mark, url), guarded),
        _Probe(
            "--atomic with a feature branch",
            ("push", "--atomic", *mark, url, f"{p}:{v.main_ref}", f"{p}:{v.prefix}atomic"),
            guarded,
            effect="atomic",
            note="main and a feature branch in one all-or-nothing push",
        ),
        _Probe(
            "wrong credential",
            ("push", "-o", f"{TOKEN_OPTION}={secrets.token_hex(32)}", *mark, url, main),
            guarded,
        ),
        _Probe(
            "credential only in an environment variable",
            ("push", *mark, url, main),
            guarded,
            env={"INTEGRATOR_TOKEN": v.credential, "INTEGRATOR_CREDENTIAL": v.credential},
        ),
        _Probe(
            "forged GIT_PUSH_OPTION_* environment",
            ("push", *forged_mark, url, main),
            guarded,
            env={"GIT_PUSH_OPTION_COUNT": "1", "GIT_PUSH_OPTION_0": f"{TOKEN_OPTION}={v.credential}"},
        ),
        _symref_probe(v, mark),
        _Probe(
            "--receive-pack with hooks off",
            ("push", "--receive-pack=git -c core.hooksPath=/dev/null receive-pack", *mark, url, main),
            rp_expect,
            any_refusal_holds=True,
            note=_receive_pack_note(v, rp_expect),
        ),
        _Probe(
            "GIT_CONFIG_GLOBAL turning hooks off",
            ("push", *mark, url, main),
            guarded,
            env={"GIT_CONFIG_GLOBAL": str(no_hooks_config)},
            note="closed by core.hooksPath pinned in the bare repository's config",
        ),
        _Probe(
            "git -c core.hooksPath=/dev/null push",
            ("-c", "core.hooksPath=/dev/null", "push", *mark, url, main),
            guarded,
        ),
        _Probe(
            "push to refs/heads/HEAD",
            ("push", *mark, url, f"{p}:refs/heads/HEAD"),
            "rejected",
            effect="head",
            note="a branch named HEAD confuses every clone; refused in both modes",
        ),
        *_lookalike_probes(v, mark),
        _Probe("feature branch", ("push", *mark, url, f"{p}:{v.prefix}feature"), "allowed", effect="feature"),
    ]
    return probes


def _lookalike_refs(v: _Verify) -> list[str]:
    """Refs that could stand in for main: a replacement of its commit, and its name elsewhere or cased."""
    main = v.cfg.main_branch
    found = [f"refs/replace/{v.main_before}", f"refs/tags/{main}", f"refs/remotes/origin/{main}"]
    if main.swapcase() != main:
        found.append(f"refs/heads/{main.swapcase()}")
    return found


def _lookalike_probes(v: _Verify, mark: tuple[str, ...]) -> list[_Probe]:
    return [
        _Probe(
            f"create {ref.replace(v.main_before, '<main>')}",
            ("push", *mark, v.transport.url, f"{v.probe_sha}:{ref}"),
            _guarded(v),
            effect="ref",
            ref=ref,
            note="named like main or replacing its commit: it could stand in for main",
        )
        for ref in _lookalike_refs(v)
        if ref not in v.refs_before
    ]


def _receive_pack_note(v: _Verify, expect: Expect) -> str:
    if expect == "local-only bypass":
        return "the pusher runs receive-pack on a local transport; nothing in the repository can stop it"
    if v.transport.server:
        return (
            "a server transport runs its own receive-pack; the client cannot choose one (the server "
            "refuses the request, or runs its own with the hooks)"
        )
    return ""


def _mirror_probe(v: _Verify, mark: tuple[str, ...]) -> _Probe:
    if v.mode == "shadow":
        return _Probe(
            "--mirror",
            (),
            "skipped",
            note="not run in shadow: main is open, and --mirror would really prune branches "
            "pushed while verify runs",
        )
    mirror = v.tmp / "mirror.git"

    def prepare() -> None:
        # A mirror of the remote itself, so a --mirror that got through would change nothing but main;
        # --force-with-lease keeps it from rewinding a branch someone pushed meanwhile.
        if not mirror.exists():
            # --reference: the probe commit exists only in the scratch clone.
            clone = [
                "clone",
                "--quiet",
                "--mirror",
                "--reference",
                str(v.scratch),
                v.transport.url,
                str(mirror),
            ]
            v.run(clone, cwd=v.tmp)
        v.run(["update-ref", v.main_ref, v.probe_sha], cwd=mirror)

    return _Probe(
        "--mirror",
        ("-C", str(mirror), "push", "--mirror", "--force-with-lease", *mark, v.transport.url),
        "rejected",
        prepare=prepare,
    )


def _symref_probe(v: _Verify, mark: tuple[str, ...]) -> _Probe:
    name = "server-side symbolic ref to main"
    bare = v.transport.bare
    if bare is None:
        return _Probe(
            name, (), "skipped", note=f"cannot create a symbolic ref on the server: {v.transport.bare_note}"
        )
    alias = f"{v.prefix}alias"

    def prepare() -> None:
        v.run(["symbolic-ref", alias, v.main_ref], cwd=bare)
        v.alias = alias

    return _Probe(
        name,
        ("push", *mark, v.transport.url, f"{v.probe_sha}:{alias}"),
        _guarded(v),
        prepare=prepare,
        note=f"{alias.removeprefix('refs/heads/')} -> {v.cfg.main_branch}, made in the bare repository",
    )


def _reason(stderr: str) -> str:
    """The line of git's stderr that says why, rather than the closing boilerplate."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for prefix in ("fatal:", "error:", "!"):
        for line in lines:
            if line.startswith(prefix):
                return line
    return lines[-1] if lines else ""


def _observe(v: _Verify, probe: _Probe, result: git.Result, heads: dict[str, str]) -> tuple[str, str]:
    """What the probe did to the remote: allowed, rejected (by the hook), or refused (otherwise)."""
    main_now = heads.get(v.main_ref)
    moved = {
        "main": main_now not in (None, v.main_before),
        "main-deleted": main_now is None,
        "feature": heads.get(f"{v.prefix}feature") == v.probe_sha,
        "head": "refs/heads/HEAD" in heads and not v.head_existed,
        "ref": probe.ref in heads and probe.ref not in v.refs_before,
    }
    if probe.effect == "atomic":
        side = heads.get(f"{v.prefix}atomic") == v.probe_sha
        main_moved = main_now != v.main_before
        if side != main_moved:
            return "partial", "one ref moved without the other"
        effect = side
    else:
        effect = moved[probe.effect]
    stderr_tail = _reason(result.stderr)
    if effect:
        return "allowed", "" if result.ok else f"push reported: {stderr_tail}"
    if "pre-receive hook declined" in result.stderr:
        return "rejected", ""
    if result.ok:
        return "no effect", "push succeeded but nothing moved"
    return "refused", stderr_tail


def _judge(probe: _Probe, actual: str) -> bool:
    if probe.expect == "local-only bypass":
        return actual in ("allowed (hooks bypassed)", "rejected", "refused")
    if actual == "refused by git":
        # Nothing moved and the hook was not what stopped it: fine wherever the hook would allow it.
        return probe.expect == "allowed"
    if probe.any_refusal_holds and actual == "refused":
        # Nothing moved and the server refused the request itself (a server transport refuses a
        # client-chosen receive-pack): that holds in either mode.
        return True
    return actual == probe.expect


def _run_probe(v: _Verify, probe: _Probe) -> VerifyRow:
    if probe.expect == "skipped":
        return VerifyRow(probe.name, "skipped", "skipped", True, probe.note)
    if probe.prepare is not None:
        probe.prepare()
    result = v.run(list(probe.args), env=probe.env, check=False)
    heads = v.remote_heads()
    actual, detail = _observe(v, probe, result, heads)
    if probe.expect == "local-only bypass" and actual == "allowed":
        actual = "allowed (hooks bypassed)"
    if actual == "refused" and probe.git_refusal and probe.git_refusal[0] in result.stderr:
        actual, detail = "refused by git", probe.git_refusal[1]
    ok = _judge(probe, actual)
    _restore_main(v, heads)
    note = "; ".join(part for part in (probe.note, detail) if part)
    return VerifyRow(probe.name, probe.expect, actual, ok, note)


def _restore_main(v: _Verify, heads: dict[str, str]) -> None:
    current = heads.get(v.main_ref)
    if current == v.main_before:
        return
    result = v.integrator_push(f"{v.main_before}:{v.main_ref}", f"{v.main_ref}:{current or ''}")
    after = v.remote_heads().get(v.main_ref)
    if after != v.main_before and v.transport.bare is not None:
        # The credentialed push was refused (hooks missing, receive.denyNonFastForwards, ...); the
        # bare repository is at hand, so put main back directly, still compare-and-swap.
        v.run(
            [
                "update-ref",
                "-m",
                "integrator verify: restore main",
                v.main_ref,
                v.main_before,
                after or ZERO_SHA,
            ],
            cwd=v.transport.bare,
            check=False,
        )
        after = v.remote_heads().get(v.main_ref)
    if after != v.main_before:
        last = _reason(result.stderr) or "no message"
        raise IntegratorError(
            f"verify could not put {v.main_ref} back to {v.main_before} "
            f"(it is at {after or 'nothing'}): {last}. Restore it with the integrator's credential"
        )


def _integrator_row(v: _Verify) -> VerifyRow:
    """The integrator's own credentialed push of main must pass in every mode."""
    result = v.integrator_push(f"{v.probe_sha}:{v.main_ref}", f"{v.main_ref}:{v.main_before}")
    heads = v.remote_heads()
    actual, detail = _observe(v, _Probe("integrator", (), "allowed"), result, heads)
    _restore_main(v, heads)
    return VerifyRow(
        "integrator's push (credential as push option)",
        "allowed",
        actual,
        actual == "allowed",
        detail or "force-with-lease, credential passed through the environment, never argv",
    )


def _run_probes(v: _Verify, *, can_restore: bool) -> list[VerifyRow]:
    probes = _probe_list(v)
    if can_restore:
        return [_run_probe(v, probe) for probe in probes]
    # Without a working credentialed push (and no bare repository at hand) a probe that got through
    # could not be undone: report instead of risking main.
    why = "not run: the integrator's own push failed, so main could not be put back after a probe"
    return [VerifyRow(probe.name, probe.expect, "not run", False, why) for probe in probes]


def _prepare_scratch(v: _Verify) -> None:
    v.run(["clone", "--quiet", "--no-checkout", v.transport.url, str(v.scratch)], cwd=v.tmp)
    found = v.run(
        ["rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{v.cfg.main_branch}^{{commit}}"],
        check=False,
    )
    if not found.ok:
        raise InvalidInput(f"remote: {v.transport.shown} has no {v.main_ref}; verify needs one to probe")
    v.main_before = found.stdout.strip()
    tree = f"{v.main_before}^{{tree}}"
    message = f"integrator authority verify probe {v.run_id} (never kept)"
    v.probe_sha = v.run(["commit-tree", "-p", v.main_before, "-m", message, tree]).stdout.strip()
    v.orphan_sha = v.run(["commit-tree", "-m", message + ", unrelated history", tree]).stdout.strip()
    v.run(["update-ref", f"refs/heads/{v.cfg.main_branch}", v.probe_sha])
    v.run(["symbolic-ref", "HEAD", f"refs/heads/{v.cfg.main_branch}"])
    v.refs_before = frozenset(v.remote_heads())
    v.head_existed = "refs/heads/HEAD" in v.refs_before


def _cleanup(v: _Verify) -> None:
    """Leave the remote as verify found it: alias gone, main back, probe branches deleted."""
    if v.alias is not None and v.transport.bare is not None:
        v.run(["symbolic-ref", "--delete", v.alias], cwd=v.transport.bare, check=False)
    heads = v.remote_heads()
    _restore_main(v, heads)
    leftovers = [ref for ref in heads if ref.startswith(v.prefix)]
    if "refs/heads/HEAD" in heads and not v.head_existed:
        leftovers.append("refs/heads/HEAD")
    # Deleting a ref named like main is allowed without the credential (it is the clean-up).
    leftovers += [r for r in heads if r in _lookalike_refs(v) and r not in v.refs_before]
    if leftovers:
        v.run(
            ["push", "--quiet", "-o", v.marker, v.transport.url, *(f":{ref}" for ref in leftovers)],
            check=False,
        )
    remaining = [ref for ref in v.remote_heads() if ref in leftovers]
    if remaining:
        log.warning("verify left probe refs behind: %s", " ".join(remaining))


def _verify_mode(transport: Transport, cfg: Config, requested: str | None) -> tuple[str, str]:
    if transport.bare is None:
        return (
            requested or cfg.mode,
            "--mode" if requested else "config (the remote's mode file is not reachable)",
        )
    found = read_remote_mode(transport.bare)
    actual = found or "cutover"
    if requested is not None and requested != actual:
        raise InvalidInput(
            f"--mode: the remote enforces {actual}, not {requested}; change it with cutover/rollback"
        )
    return (
        actual,
        "remote mode file" if found else "remote mode file missing or unreadable: the hook fails closed",
    )


def verify(cfg: Config, remote: str, *, mode: str | None = None, clock: Clock = utcnow) -> VerifyReport:
    """Probe ``remote`` with every known bypass and leave main exactly as it was."""
    if mode is not None and mode not in MODES:
        raise InvalidInput(f"--mode: {mode!r} is not one of {', '.join(MODES)}")
    transport = classify_remote(remote, cfg)
    credential = read_credential(cfg)
    chosen, source = _verify_mode(transport, cfg, mode)
    with tempfile.TemporaryDirectory(prefix="integrator-verify-") as tmp:
        v = _Verify(cfg=cfg, transport=transport, mode=chosen, credential=credential, tmp=Path(tmp))
        _prepare_scratch(v)
        rows: list[VerifyRow] = []
        try:
            rows.append(_integrator_row(v))
            rows.extend(_run_probes(v, can_restore=rows[0].ok or transport.bare is not None))
        finally:
            _cleanup(v)
    report = VerifyReport(transport, chosen, source, v.main_before, tuple(rows), clock())
    update_record(
        cfg,
        {
            "verified_at": iso(report.verified_at),
            "verified_mode": chosen,
            "verified_remote": transport.shown,
            "transport": transport.scheme,
            "transport_kind": transport.kind,
            "boundary": transport.server,
            "verify_result": "pass" if report.ok else "fail",
            "verify_failures": report.failures,
        },
    )
    return report
