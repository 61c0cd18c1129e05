"""Cutover and rollback (docs/cutover.md): the gated switch to integrator-only pushes, and the way back.

The mode lives in two places that must agree: the store (what the integrator does) and the bare
remote's ``integrator/mode`` file (what the pre-receive hook enforces). The store is switched first,
in one transaction with its audit record and notification; the remote file follows, and a failure
there reverts the store so the two never disagree for longer than one request.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

from integrator import notifications, outbox, settings
from integrator.authority.record import read_record
from integrator.authority.remote import write_remote_mode
from integrator.config import Config
from integrator.errors import Refused
from integrator.events import iso
from integrator.models import ModeRecord, Parity, Stall
from integrator.service import Integrator
from integrator.verify import refusal as verify_refusal
from integrator.views import stall

log = logging.getLogger(__name__)

AUTOMATIC_BY = "integrator (automatic rollback)"


def hooks_problems(cfg: Config) -> list[str]:
    """Why the remote is not ready to enforce cutover (empty when installed and verified)."""
    record = read_record(cfg)
    if not record.get("installed_at") or not record.get("bare"):
        return ["the hooks are not installed: run `integrator hooks install --remote <bare repository>`"]
    problems = []
    if record.get("verify_result") != "pass" or str(record.get("verified_at", "")) < str(
        record["installed_at"]
    ):
        problems.append(
            "the hooks are not verified since they were installed: run `integrator authority verify --remote <url>`"
        )
    if not Path(record["bare"]).is_dir():
        problems.append(f"the recorded bare repository {record['bare']} does not exist")
    return problems


async def _sync_remote(cfg: Config, mode: str) -> None:
    bare = read_record(cfg).get("bare")
    if not bare:
        return
    if not (Path(bare) / "HEAD").is_file():
        # Never write a mode file into a directory that is no longer the remote: the switch would
        # look done while the real remote kept enforcing the old mode.
        raise Refused(
            f"the recorded bare repository {bare} is gone; reinstall the hooks where the remote lives"
        )
    await asyncio.to_thread(write_remote_mode, Path(bare), mode)


async def cutover(integ: Integrator, *, by: str, reason: str) -> ModeRecord:
    """Switch to cutover, or refuse with every reason the gate and the hooks give."""
    cfg = integ.cfg
    current = await integ.store.read(lambda c: settings.mode(c, cfg.mode))
    if current["mode"] == "cutover":
        raise Refused(f"already in cutover (since {current.get('since')}, by {current.get('by')})")
    report = await integ.shadow_report()
    problems = [f"parity gate: {r}" for r in report.gate.reasons] + hooks_problems(cfg)
    refused = await verify_refusal(cfg)
    if refused is not None:
        problems.append(refused)
    if problems:
        raise Refused("cutover refused:\n- " + "\n- ".join(problems))
    record = await integ.set_mode("cutover", by=by, reason=reason)
    try:
        await _sync_remote(cfg, "cutover")
    except Exception:
        await integ.set_mode(
            "shadow", by=by, reason="cutover reverted: the remote's mode file could not be written"
        )
        raise
    parity = Parity(decided=report.decided, agreement_rate=report.agreement_rate)
    return record.model_copy(update={"parity": parity, "main_branch": cfg.main_branch})


async def rollback(integ: Integrator, *, by: str, reason: str, automatic: bool = False) -> ModeRecord:
    """Back to shadow: legacy pushes to main are allowed again; audited and notified."""
    if not reason.strip():
        raise Refused("a rollback needs a reason")
    cfg = integ.cfg
    current = await integ.store.read(lambda c: settings.mode(c, cfg.mode))
    if current["mode"] == "shadow":
        raise Refused(f"already in shadow (since {current.get('since')})")
    # Open the remote first: a rollback exists to unblock people, so it must not wait on the store.
    await _sync_remote(cfg, "shadow")
    record = await integ.set_mode("shadow", by=by, reason=reason.strip(), automatic=automatic)
    return record.model_copy(update={"main_branch": cfg.main_branch})


async def watchdog(integ: Integrator) -> str | None:
    """Raise the stall alarm once per episode and roll back automatically when a trigger fires.

    Triggers (``[rollback]`` in the config, docs/cutover.md): no progress for the stall limit while the
    queue has items, or ``infra_failure_limit`` infrastructure failures in a row. Returns the reason
    when it rolled back.
    """
    cfg = integ.cfg
    now = integ.clock()
    nowiso = iso(now)

    def check(conn: sqlite3.Connection) -> tuple[str, Stall | None, int, bool]:
        mode = settings.mode(conn, cfg.mode)["mode"]
        # In shadow the queue drains only when the legacy path lands candidates: not a stall of ours
        # (the parity report lists those as stuck instead).
        found = stall(conn, cfg, now) if mode == "cutover" else None
        alarmed = settings.get(conn, "stall_alarm_since")
        raised = False
        if found is None:
            if alarmed:
                settings.put(conn, "stall_alarm_since", None)
        elif alarmed != found.since:
            settings.put(conn, "stall_alarm_since", found.since)
            outbox.add(conn, notifications.StallAlarm(slug=None, **found.model_dump()), now=nowiso)
            raised = True
        return mode, found, int(settings.get(conn, "fault_streak", 0)), raised

    # Notify only for a new alarm: the runner calls this every cycle, and a wake on every call
    # would wake the runner itself and keep it from ever going idle.
    mode, found, streak, raised = await integ.store.write(check)
    if raised:
        integ.store.notify()
    policy = cfg.rollback
    if mode != "cutover" or not policy.enabled:
        return None
    reason = None
    if policy.on_stall and found is not None:
        reason = f"queue of {found.queue_length} made no progress for {found.stalled_for_s}s"
    elif streak >= policy.infra_failure_limit:
        reason = f"{streak} integrator infrastructure failures in a row"
    if reason is None:
        return None
    try:
        await rollback(integ, by=AUTOMATIC_BY, reason=reason, automatic=True)
    except Exception as err:  # the watchdog must never take the integrator down with it
        log.error("event=automatic_rollback_failed reason=%r error=%s", reason, err)
        return None
    return reason
