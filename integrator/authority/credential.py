"""The integrator's credential: created once, read, copied into the remote, and sent as a push option.

It never leaves its two files (the integrator's 0600 file and the remote's copy) and the environment
of the integrator's own pushes: not argv, not output, not the record.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from integrator.atomicfile import write_atomic
from integrator.authority.remote import RemotePaths
from integrator.config import Config
from integrator.errors import InvalidInput

TOKEN_OPTION = "integrator-token"

_CREDENTIAL_RE = re.compile(r"[0-9a-f]{64}")


def write_private(path: Path, text: str) -> None:
    """Atomically write ``text`` owner-only (0600 from creation), in a directory only the owner enters."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, text)


def read_credential_file(path: Path) -> str | None:
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
    value = read_credential_file(cfg.credential_file)
    if value is None:
        raise InvalidInput(
            f"credential: {cfg.credential_file} does not exist; "
            "run `integrator hooks install --remote PATH` first"
        )
    return value


def ensure_credential(cfg: Config) -> tuple[str, bool]:
    """Return the credential, generating it once; the flag says whether anything was written."""
    path = cfg.credential_file
    value = read_credential_file(path)
    if value is not None:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
            return value, True
        return value, False
    value = secrets.token_hex(32)
    write_private(path, value + "\n")
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


def sync_remote_credential(paths: RemotePaths, credential: str) -> bool:
    """Put the credential into the remote (0600) unless the same is there; True if it wrote."""
    target = paths.credential
    try:
        same = target.read_text(encoding="utf-8").strip() == credential and not (
            target.stat().st_mode & 0o077
        )
    except (OSError, UnicodeDecodeError):
        same = False
    if not same:
        write_private(target, credential + "\n")
    return not same
