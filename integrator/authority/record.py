"""``authority.json`` in the state directory: what was installed where, and what verify found.

Other areas add their own keys (the cutover audit); every write keeps them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from integrator.atomicfile import write_atomic
from integrator.config import Config
from integrator.errors import InvalidInput
from integrator.events import iso

RECORD_NAME = "authority.json"

Clock = Callable[[], datetime]


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
    write_atomic(record_path(cfg), json.dumps(data, indent=2, sort_keys=True) + "\n")


# What record_verify writes; record_install clears them.
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


def record_verify(
    cfg: Config,
    *,
    at: datetime,
    mode: str,
    remote: str,
    transport: str,
    transport_kind: str,
    boundary: bool,
    failures: list[str],
) -> None:
    """What the last ``authority verify`` found (the cutover gate and ``rollout status`` read it)."""
    values = (
        iso(at),
        mode,
        remote,
        transport,
        transport_kind,
        boundary,
        "fail" if failures else "pass",
        failures,
    )
    update_record(cfg, dict(zip(_VERIFY_KEYS, values, strict=True)))


def record_install(cfg: Config, bare: Path, checksums: dict[str, str], clock: Clock) -> bool:
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
