"""Live evidence for ``integrator rollout status``: named probes, each one fact from the running system.

A roadmap entry lists the probes that show it (``probes: [mode, parity]``); :data:`PROBES` maps each
name to a synchronous ``Config -> str | None``. The store probes read the database through
:func:`integrator.readonly.read_store` (read-only, one snapshot, never creating or migrating it); a
database that is absent or unusable is said, not raised.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from integrator.authority.record import read_record, record_path
from integrator.authority.remote import read_remote_mode
from integrator.errors import IntegratorError
from integrator.readonly import StoreUnavailable, read_store

if TYPE_CHECKING:
    from integrator.config import Config

Probe = Callable[["Config"], "str | None"]
"""Reads one fact from the running system; ``None`` means nothing to show."""

CANDIDATE_STATUSES: Final = ("waiting", "ready", "blocked", "integrated", "superseded")
_REASON_CHARS: Final = 80


def _when(value: object) -> str:
    """A stored timestamp to the second, in UTC: the microseconds the store keeps only clutter a status."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        return str(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clip(text: object, limit: int = _REASON_CHARS) -> str:
    value = " ".join(str(text).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _counts(pairs: list[tuple[str, int]], order: tuple[str, ...]) -> str:
    found = dict(pairs)
    known = [f"{found.pop(s)} {s}" for s in order if s in found]
    return ", ".join(known + [f"{n} {s}" for s, n in sorted(found.items())])


# --------------------------------------------------------------------------------------------------
# The repository: safety


def safety_evidence(cfg: Config) -> str | None:
    """The gate run on the configured repository, as the runtime runs it after every fetch."""
    from integrator.safety import check_preconditions

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        # asyncio.run cannot nest; inside the bot the runtime's own gate results are the evidence.
        return None
    found = asyncio.run(
        check_preconditions(
            cfg.repo, remote=cfg.remote, main_branch=cfg.main_branch, timeout=min(cfg.git_timeout_s, 10.0)
        )
    )
    if not found:
        return f"gate on {cfg.repo}: clean (as of the last fetch)"
    return f"gate on {cfg.repo}: " + ", ".join(dict.fromkeys(v.code for v in found))


# --------------------------------------------------------------------------------------------------
# The store: events


def events_evidence(cfg: Config) -> str | None:
    """How many events the store holds, the newest, and the candidates they project to, by status."""

    from integrator import journal, readiness

    def read(conn: sqlite3.Connection) -> tuple[int, str | None, list[tuple[str, int]]]:
        return (*journal.totals(conn), readiness.count_by_status(conn))

    try:
        total, newest, by_status = read_store(cfg.db, read)
    except StoreUnavailable as err:
        return err.message
    events = f"{total} event(s)" + (f", newest received {_when(newest)}" if newest else "")
    candidates = _counts(by_status, CANDIDATE_STATUSES) or "none"
    return f"store {cfg.db}: {events}; candidates: {candidates}"


# --------------------------------------------------------------------------------------------------
# The mode, parity and the remote's authority: mode, parity, hooks, verify


def _mode_text(record: dict[str, Any]) -> str:
    if record.get("since") is None:
        return f"mode: {record['mode']} (from the configuration, never switched)"
    how = "automatically" if record.get("automatic") else f"by {record.get('by')}"
    reason = f": {_clip(record['reason'])}" if record.get("reason") else ""
    return f"mode: {record['mode']} since {_when(record['since'])} ({how}{reason})"


def _stored_mode(cfg: Config) -> tuple[str, str]:
    """``(mode, sentence)``: the live mode from the store's settings, else the configured one."""
    from integrator import settings

    try:
        record = read_store(cfg.db, lambda conn: settings.mode(conn, cfg.mode))
    except StoreUnavailable as err:
        if err.absent:
            return cfg.mode, f"mode: {cfg.mode} (configured; no database yet)"
        return cfg.mode, f"mode: unknown ({err.message})"
    return str(record["mode"]), _mode_text(record)


def mode_evidence(cfg: Config) -> str | None:
    """The current mode and since when, by whom and why (docs/cutover.md)."""
    return _stored_mode(cfg)[1]


def parity_evidence(cfg: Config) -> str | None:
    """The shadow predictions decided so far, their agreement, and the cutover gate's verdict."""
    from integrator import shadow
    from integrator.events import utcnow

    try:
        report = read_store(cfg.db, lambda conn: shadow.report(conn, cfg, now=utcnow()))
    except StoreUnavailable as err:
        return None if err.absent else err.message
    gate = report["gate"]
    verdict = "pass" if gate["verdict"] == "pass" else "fail (" + "; ".join(gate["reasons"]) + ")"
    if not report["predicted"]:
        return f"predictions: none yet; cutover gate: {verdict}"
    disagreements = len(report["disagreements"])
    return (
        f"predictions: {report['predicted']}, decided {report['decided']}, "
        f"agreement {report['agreement_rate']:.1%} ({disagreements} disagreement(s)); cutover gate: {verdict}"
    )


def _verify_text(record: dict[str, Any]) -> str:
    result, at = record.get("verify_result"), record.get("verified_at")
    if not result or not at:
        return "authority verify: never run on these hooks"
    if str(at) < str(record.get("installed_at", "")):
        return "authority verify: not run since the hooks were installed"
    where = "boundary (server transport)" if record.get("boundary") else "guard only (local transport)"
    text = (
        f"authority verify: {result} at {_when(at)} in {record.get('verified_mode')} mode "
        f"over {record.get('transport')} {record.get('verified_remote')}: {where}"
    )
    failures = record.get("verify_failures") or []
    if failures:
        text += f"; failed: {', '.join(str(f) for f in failures)}"
    return text


def _authority_record(cfg: Config) -> dict[str, Any] | str:
    """``authority.json`` as a dict, or why it cannot be used (never installed, unreadable)."""
    try:
        record = read_record(cfg)
    except IntegratorError as err:
        return err.message
    if not record.get("installed_at") or not record.get("bare"):
        return f"hooks not installed (no install recorded in {record_path(cfg)})"
    return record


def hooks_evidence(cfg: Config) -> str | None:
    """Where ``authority.json`` says the hooks are installed, and what the remote's mode file enforces."""
    record = _authority_record(cfg)
    if isinstance(record, str):
        return record
    bare = Path(str(record["bare"]))
    text = f"hooks installed on {bare} at {_when(record['installed_at'])}"
    if not (bare / "HEAD").is_file():
        return text + "; that bare repository is gone"
    enforced = read_remote_mode(bare)
    if enforced is None:
        return text + "; its mode file is missing or unreadable (the hook fails closed: cutover)"
    text += f"; the remote enforces {enforced}"
    mode, _ = _stored_mode(cfg)
    # The store and the remote disagreeing is what a half-finished cutover or rollback leaves behind.
    return text if enforced == mode else text + f" while the store says {mode}: MISMATCH"


def verify_evidence(cfg: Config) -> str | None:
    """The last ``integrator authority verify`` recorded, and whether its remote is a boundary or a guard."""
    record = _authority_record(cfg)
    return None if isinstance(record, str) else _verify_text(record)


# --------------------------------------------------------------------------------------------------
# Blocked candidates: followup-folders, blocked


def followup_folders_evidence(cfg: Config) -> str | None:
    """The ``*-integration-blocked`` follow-up todo folders in the configured todos directory."""
    from integrator.followup import TODO_SUFFIX

    if not cfg.todos_dir.is_dir():
        return None
    followups = sorted(p.name for p in cfg.todos_dir.glob(f"*{TODO_SUFFIX}") if p.is_dir())
    if not followups:
        return "no follow-up todos"
    return f"{len(followups)} follow-up todo(s): {', '.join(followups)}"


def blocked_evidence(cfg: Config) -> str | None:
    """Follow-ups open and resolved (the ``followups`` table) and what is blocked now, with its reason."""
    from integrator import followup, queue

    def read(conn: sqlite3.Connection) -> tuple[list[tuple[str, str]], list[tuple[str, str | None]]]:
        return followup.records(conn), queue.blocked_reasons(conn)

    try:
        followups, blocked = read_store(cfg.db, read)
    except StoreUnavailable as err:
        return None if err.absent else err.message
    open_ = [slug for slug, status in followups if status == "open"]
    resolved = len(followups) - len(open_)
    text = f"follow-ups in the store: {len(open_)} open" + (f" ({', '.join(open_)})" if open_ else "")
    text += f", {resolved} resolved"
    if blocked:
        shown = ", ".join(f"{slug}: {reason or 'unknown'}" for slug, reason in blocked)
        text += f"; blocked now: {len(blocked)} ({shown})"
    else:
        text += "; blocked now: none"
    return text


# name -> probe; a roadmap entry names the ones that show it. More plug in by adding to this table.
# Probes are synchronous because `rollout status` is.
PROBES: Final[dict[str, Probe]] = {
    "safety": safety_evidence,
    "events": events_evidence,
    "mode": mode_evidence,
    "parity": parity_evidence,
    "hooks": hooks_evidence,
    "verify": verify_evidence,
    "followup-folders": followup_folders_evidence,
    "blocked": blocked_evidence,
}
