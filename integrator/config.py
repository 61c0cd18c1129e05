"""Configuration: one TOML file (``integrator.toml``) plus ``INTEGRATOR_*`` environment overrides.

One source order, in :func:`build_config`: the file's values, then the environment's on top. The
Discord token is never read from or written to the file: it comes from ``DISCORD_TOKEN`` only, read
by :func:`discord_token`. Why this is not pydantic-settings: docs/architecture.md, *Configuration*.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from integrator.atomicfile import KEEP, write_atomic
from integrator.errors import ConfigError

CONFIG_ENV = "INTEGRATOR_CONFIG"
DEFAULT_CONFIG_NAME = "integrator.toml"

Mode = Literal["shadow", "cutover"]

# Upper bounds on durations and counts: a typo (a missing decimal point, 1e400, 2**63-1) is refused at
# load instead of becoming a lease that never expires or a retry loop that never ends.
DAY_S = 86400.0
MAX_RETRIES = 100


class GateConfig(BaseModel):
    """The parity gate that must pass before cutover (docs/cutover.md)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    min_decided: int = Field(default=20, ge=0, le=1_000_000)
    min_agreement: float = Field(default=0.95, ge=0.0, le=1.0)
    # "No integrator errors in the window": the window is this long, ending now (and never starts
    # before the first prediction). A day of clean running before cutover, and again after a rollback.
    error_window_s: float = Field(default=86400.0, gt=0, le=365 * DAY_S)


class RollbackConfig(BaseModel):
    """Automatic rollback triggers (docs/cutover.md)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    on_stall: bool = True
    infra_failure_limit: int = Field(default=3, ge=1, le=10_000)


class AgentConfig(BaseModel):
    """One agent the Discord session launcher can start."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    command: list[str] = Field(min_length=1)
    enabled: bool = True


class DiscordConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Discord snowflakes are unsigned 64-bit integers.
    guild_id: int | None = Field(default=None, ge=1, lt=2**64)
    channel_id: int | None = Field(default=None, ge=1, lt=2**64)
    admin_role: str = "integrator-admin"
    agents: list[AgentConfig] = Field(default_factory=list)


class Config(BaseModel):
    """Everything the integrator and the bot need to know; paths are absolute after loading.

    ``INTEGRATOR_<FIELD>`` (``__`` between nested keys) overrides the file: see :func:`env_overrides`.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    repo: Path
    remote: str = "origin"
    main_branch: str = "main"
    db: Path = Path("integrator.db")
    todos_dir: Path = Path("todos")
    state_dir: Path = Path(".integrator")
    mode: Mode = "shadow"
    merge_strategy: Literal["merge", "squash"] = "merge"
    branch_policy: Literal["tip", "ancestor"] = "tip"
    verify_command: list[str] | None = None
    verify_timeout_s: float = Field(default=1800.0, gt=0, le=7 * DAY_S)
    # The verify sandbox (integrator/isolation.py, docs/authority.md "Threat model").
    verify_isolation: Literal["auto", "namespaces", "none"] = "auto"
    verify_accept_unisolated: bool = False
    verify_network: bool = True
    verify_env: dict[str, str] = Field(default_factory=dict)
    # How many queued candidates verify at once, each on main + the merges ahead of it
    # (integrator/pipeline.py); 1 = one candidate at a time.
    pipeline_depth: int = Field(default=4, ge=1, le=32)
    git_timeout_s: float = Field(default=120.0, gt=0, le=DAY_S)
    lease_ttl_s: float = Field(default=120.0, gt=0, le=DAY_S)
    lease_renew_s: float = Field(default=30.0, gt=0, le=DAY_S)
    stall_limit_s: float = Field(default=3600.0, gt=0, le=30 * DAY_S)
    push_retries: int = Field(default=3, ge=0, le=MAX_RETRIES)
    idle_check_s: float = Field(default=30.0, gt=0, le=DAY_S)
    credential_file: Path = Path("integrator.credential")
    gate: GateConfig = Field(default_factory=GateConfig)
    rollback: RollbackConfig = Field(default_factory=RollbackConfig)
    discord: DiscordConfig = Field(default_factory=DiscordConfig)
    # Set from the environment only (discord_token()); excluded from the file and from every dump.
    discord_token: SecretStr | None = Field(default=None, exclude=True)
    config_path: Path | None = Field(default=None, exclude=True)

    @field_validator("verify_command", mode="before")
    @classmethod
    def _split_verify(cls, value: Any) -> Any:
        if isinstance(value, str):
            return shlex.split(value) or None
        return value

    @field_validator("remote", "main_branch")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        from integrator.events import check_branch_name

        return check_branch_name(value)

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> Config:
        # A holder that renews after its lease expired loses it between renewals, every time.
        if self.lease_renew_s >= self.lease_ttl_s:
            raise ValueError(
                f"lease_renew_s ({self.lease_renew_s:g}) must be shorter than lease_ttl_s ({self.lease_ttl_s:g})"
            )
        return self

    def fingerprint(self) -> str:
        """What a verify/merge verdict depends on besides main: a change lets a blocked candidate resume."""
        data = {"verify": self.verify_command, "strategy": self.merge_strategy, "policy": self.branch_policy}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def file_dict(self) -> dict[str, Any]:
        """What ``init`` writes: paths relative to the config file where possible, no secrets."""
        data = self.model_dump(mode="json", exclude_none=True)
        base = self.config_path.parent if self.config_path else None
        for key in ("repo", "db", "todos_dir", "state_dir", "credential_file"):
            path = Path(data[key])
            if base is not None and path.is_absolute():
                try:
                    data[key] = str(path.relative_to(base))
                except ValueError:
                    data[key] = str(path)
        return data


def find_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """``--config PATH``, then ``$INTEGRATOR_CONFIG``, then ``./integrator.toml``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return Path.cwd() / DEFAULT_CONFIG_NAME


ENV_PREFIX = "INTEGRATOR_"
TOKEN_ENV = "DISCORD_TOKEN"


def discord_token(environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """The bot's Discord token: ``$DISCORD_TOKEN``, the one place it is read (None when unset or empty)."""
    env = os.environ if environ is None else environ
    if env.get(f"{ENV_PREFIX}{TOKEN_ENV}"):
        # It looks like every other setting, so it was once taken; silently ignoring it would run
        # the bot headless with no hint why.
        raise ConfigError(f"{ENV_PREFIX}{TOKEN_ENV} is not read: set the token in {TOKEN_ENV}")
    token = env.get(TOKEN_ENV)
    return SecretStr(token) if token else None


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The configuration set in the environment: ``INTEGRATOR_LEASE_TTL_S=7.5``,
    ``INTEGRATOR_GATE__MIN_DECIDED=5``; a value starting with ``[`` or ``{`` is JSON.

    Hand-written rather than pydantic-settings: that library costs every CLI call (``status``,
    ``emit``) more import time than the rest of the command. Variables that name no field
    (``INTEGRATOR_CONFIG``, the test wiring's) are not configuration and are skipped.
    """
    found: dict[str, Any] = {}
    for name, raw in (os.environ if environ is None else environ).items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if path[0] not in Config.model_fields or path[0] in ("discord_token", "config_path"):
            continue
        value: Any = raw
        if raw.lstrip().startswith(("[", "{")):
            try:
                value = json.loads(raw)
            except ValueError:
                raise ConfigError(f"{name}: not valid JSON") from None
        target = found
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return found


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _format_errors(err: ValidationError, where: str) -> str:
    parts = []
    for e in err.errors():
        msg = e["msg"]
        if not e["loc"]:  # a rule about several keys names them itself
            parts.append(msg.removeprefix("Value error, "))
            continue
        key = ".".join(str(p) for p in e["loc"])
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" (got {_clip(repr(value))})"
        parts.append(f"{key}: {msg}{shown}")
    return f"{where}: " + "; ".join(parts)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_config(data: dict[str, Any], config_path: Path | None) -> Config:
    """The one source order: ``data`` (the file's contents), then ``INTEGRATOR_*`` over it, then the
    token from :func:`discord_token`; validated, with relative paths resolved against the file."""
    if "discord_token" in data:
        raise ConfigError(f"{config_path}: discord_token must not be in the file; set {TOKEN_ENV} instead")
    token = discord_token()
    try:
        cfg = Config(**_merged(data, env_overrides()))
    except ValidationError as err:
        raise ConfigError(_format_errors(err, str(config_path or "config"))) from None
    base = config_path.parent.resolve() if config_path else Path.cwd()
    updates: dict[str, Any] = {"config_path": config_path.resolve() if config_path else None}
    for key in ("repo", "db", "todos_dir", "state_dir", "credential_file"):
        path = Path(os.path.expanduser(getattr(cfg, key)))
        updates[key] = path if path.is_absolute() else (base / path)
    if token is not None:
        updates["discord_token"] = token
    return cfg.model_copy(update=updates)


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    path = find_config_path(explicit)
    if not path.is_file():
        raise ConfigError(
            f"no configuration at {path}: run `integrator init --repo PATH` or pass --config / set {CONFIG_ENV}"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return build_config(data, path)


def write_config(cfg: Config, path: Path) -> None:
    """Atomically write ``cfg`` to ``path`` (it holds no secret: its mode is the user's to choose)."""
    cfg = cfg.model_copy(update={"config_path": path.resolve()})
    write_atomic(path, tomli_w.dumps(cfg.file_dict()), mode=KEEP)
