"""Replies to ``/integrate`` commands, rendered from the models the core returns (integrator/models.py).

Plain data in, :class:`~teleclaude.adapters.discord_render.MessageSpec` out, no ``discord`` import:
the bot calls the core, hands the result to one of these, and the adapter sends it. Every reply is
written for a phone: what matters in the first line, one fact per short line, lists clipped with a
count of what was left out, times as Discord timestamps so each reader sees their own time zone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from integrator.models import (
    BlockedEntry,
    JournalEntry,
    ModeRecord,
    ParityReport,
    PauseRecord,
    PipelineView,
    QueueEntry,
    Resumed,
    SandboxView,
    Stall,
    Status,
    Withdrawal,
)
from teleclaude.adapters.discord_format import (
    CONTENT_MAX,
    clip,
    code,
    discord_time,
    escape,
    human_duration,
    plural,
    short,
)
from teleclaude.adapters.discord_render import MessageSpec, reason_label

COMMAND = "/integrate"
# Lists stop here even when more would fit: a phone screen, not a log.
LIST_MAX = 10

_CODE_SPAN_RE = re.compile(r"(`[^`\n]+`)")


def core_text(text: object, limit: int = 1500) -> str:
    """A message from the core: markdown escaped, except its `code spans` (they name commands to run)."""
    parts = _CODE_SPAN_RE.split(str(text))
    # split() with one group puts the spans at the odd indexes.
    return clip("".join(p if i % 2 else escape(p) for i, p in enumerate(parts)), limit)


def _bounded(head: str, lines: Sequence[str], *, total: int | None = None, limit: int = CONTENT_MAX) -> str:
    """``head`` and as many ``lines`` as fit (at most LIST_MAX), then how many were left out."""
    total = len(lines) if total is None else total
    shown = [head]
    for n, line in enumerate(lines[:LIST_MAX]):
        rest = total - n - 1
        tail = [f"…and {rest} more"] if rest else []
        if len("\n".join([*shown, line, *tail])) > limit:
            shown.append(f"…and {total - n} more")
            return "\n".join(shown)
        shown.append(line)
    if total > len(shown) - 1:
        shown.append(f"…and {total - (len(shown) - 1)} more")
    return "\n".join(shown)


def _reason(code_: object) -> str:
    return reason_label(str(code_ or "blocked"))


# ------------------------------------------------------------------------------------------- status
def _main(name: object) -> str:
    """The configured main branch as the status or payload names it (older payloads name none)."""
    return escape(str(name)) if name else "the main branch"


def _mode_line(s: Status) -> str:
    if s.mode == "cutover":
        return f"🟢 **cutover**: the integrator merges to {_main(s.main_branch)}"
    return f"🔮 **shadow**: predicting only; people still push {_main(s.main_branch)}"


def _lease_line(s: Status) -> str:
    lease = s.lease
    if not lease:
        return "⚠️ No integrator holds the lease: nothing is being integrated"
    return (
        f"Integrator: {code(clip(lease.holder, 60))}, lease renews before {discord_time(lease.expires, 'T')}"
    )


def _blocked_line(b: BlockedEntry) -> str:
    paths = b.conflicted_paths
    detail = f" ({plural(len(paths), 'file')})" if paths else ""
    return f"⛔ **{b.slug}** {code(short(b.sha))}: {_reason(b.reason_code)}{detail}"


def _outcome_line(o: Mapping[str, Any], at: object = None) -> str:
    kind = o.get("type")
    slug, sha = o.get("slug", "?"), code(short(o.get("sha", "")))
    if kind == "integration_completed":
        when = at or o.get("completed_at")
        if o.get("already_on_main"):
            text = f"☑️ **{slug}** {sha} was already on {_main(o.get('main_branch'))}"
        else:
            took = human_duration(float(o.get("duration_ms") or 0) / 1000)
            text = f"🎉 **{slug}** {sha} integrated in {took}"
    elif kind == "integration_blocked":
        when = at or o.get("blocked_at")
        text = f"⛔ **{slug}** {sha} blocked: {_reason(o.get('reason_code'))}"
    else:
        when = at or o.get("superseded_at")
        text = f"↪️ **{slug}** {sha} superseded by {code(short(o.get('superseded_by', '')))}"
    return text + (f" · {discord_time(when)}" if when else "")


def _sandbox_line(v: SandboxView) -> str:
    if v.kind != "none":
        return f"🧱 Verify sandbox: {v.kind} ({clip(escape(v.detail), 120)})"
    verdict = "risk accepted, runs unisolated" if v.verify_allowed else "**verify refused**"
    return f"⚠️ Verify sandbox: none ({clip(escape(v.detail), 120)}); {verdict}"


_STATE_ICON = {"verifying": "🔬", "passed": "✅", "failed": "❌", "conflict": "💥", "building": "🧱"}


def _pipeline_lines(p: PipelineView | None) -> list[str]:
    """The speculative verifies: who, in which state, on which predicted base, for how long."""
    if not p or not p.runs:
        return []
    lines = [f"**Verifying** (pipeline depth {p.depth}):"]
    for run in p.runs[:6]:
        base = " + ".join(["main", *(f"**{a}**" for a in run.ahead)])
        age = f" for {human_duration(run.seconds)}" if run.seconds is not None else ""
        icon = _STATE_ICON.get(run.state, "•")
        lines.append(f"{icon} **{run.slug}** {code(short(run.sha))} {run.state}{age} on {base}")
    return lines


def status(s: Status, stall: Stall | None = None) -> MessageSpec:
    """``Integrator.status()``, and ``Integrator.stall()`` when the queue is stalled."""
    lines = [_mode_line(s)]
    pause = s.pause
    if s.paused and pause:
        lines.append(f"⏸️ **Paused** by {clip(escape(pause.by), 80)}: {clip(escape(pause.reason), 200)}")
    lines.append(_lease_line(s))
    sandbox = s.verify_sandbox
    if sandbox and sandbox.verify_command:
        lines.append(_sandbox_line(sandbox))
    flight = s.in_flight
    if flight:
        since = f" since {discord_time(flight.since)}" if flight.since else ""
        lines.append(f"▶️ Now: **{flight.slug}** {code(short(flight.sha))}, {flight.phase}{since}")
    lines += _pipeline_lines(s.pipeline)
    queued = [q for q in s.queue if q.status == "queued"]
    if queued:
        names = ", ".join(f"**{q.slug}**" for q in queued[:5])
        more = f" +{len(queued) - 5}" if len(queued) > 5 else ""
        lines.append(f"📋 Queue: {len(queued)}, next {names}{more}")
    else:
        lines.append("📋 Queue: empty")
    if stall:
        lines.append(
            f"⏰ **Stalled** for {human_duration(float(stall.stalled_for_s))} "
            f"with {plural(stall.queue_length, 'candidate')} waiting"
        )
    fault = s.fault
    if fault:
        lines.append(f"⚠️ Last fault ({fault.streak} in a row): {clip(escape(fault.message), 200)}")
    for box in s.outbox:
        if box.waiting:
            error = f": {clip(escape(box.last_error), 150)}" if box.last_error else ""
            lines.append(f"📮 {plural(box.waiting, 'notification')} waiting for {box.consumer}{error}")
    blocked = s.blocked
    if blocked:
        lines.append(f"**Blocked ({len(blocked)})**, `{COMMAND} resume` when fixed:")
        lines += [_blocked_line(b) for b in blocked[:5]]
        if len(blocked) > 5:
            lines.append(f"…and {len(blocked) - 5} more")
    waiting = [c for c in s.candidates if c.status == "waiting"]
    if waiting:
        lines.append(f"**Waiting ({len(waiting)})**:")
        for c in waiting[:5]:
            why = (c.reasons or ["not ready"])[0]
            lines.append(f"⏳ **{c.slug}** {code(short(c.sha))}: {clip(escape(why), 120)}")
        if len(waiting) > 5:
            lines.append(f"…and {len(waiting) - 5} more")
    head = "\n".join(lines)
    outcomes = s.recent_outcomes
    if not outcomes:
        return MessageSpec(clip(head, CONTENT_MAX))
    return MessageSpec(_bounded(head + "\n**Recent**:", [_outcome_line(o) for o in outcomes[:5]]))


def queue(items: Sequence[QueueEntry]) -> MessageSpec:
    """``Integrator.queued()``: the candidate in flight first, then the queue in order."""
    if not items:
        return MessageSpec("📋 The queue is empty.")
    lines = []
    for item in items:
        ident = f"**{item.slug}** {code(short(item.sha))}"
        if item.status == "in_progress":
            lines.append(f"▶️ {ident}: integrating now")
        else:
            tries = f", attempt {item.attempts + 1}" if item.attempts else ""
            lines.append(f"{item.position}. {ident}, ready {discord_time(item.ready_at)}{tries}")
    queued = sum(1 for i in items if i.status == "queued")
    return MessageSpec(_bounded(f"📋 **Queue**: {plural(queued, 'candidate')} waiting", lines))


def history(events: Sequence[JournalEntry]) -> MessageSpec:
    """``Integrator.history(limit)``: newest first."""
    if not events:
        return MessageSpec("📜 No outcomes yet.")
    lines = [_outcome_line(e.flat(), e.received_at) for e in events]
    return MessageSpec(_bounded(f"📜 **Last {plural(len(events), 'outcome')}**", lines))


# -------------------------------------------------------------------------------------- steering
def resumed(result: Resumed) -> MessageSpec:
    """``Integrator.resume``: re-queued, where, and why the block no longer holds."""
    where = "next in queue" if result.position == 1 else f"#{result.position} in queue"
    return MessageSpec(
        f"▶️ **{result.slug}** {code(short(result.sha))} re-queued, {where}\nWhy: {core_text(result.why, 500)}"
    )


def resume_refused(slug: str, message: object) -> MessageSpec:
    """The core said no (nothing changed since the block, or nothing to resume): show its reason."""
    return MessageSpec(clip(f"Could not resume **{escape(slug)}**: {core_text(message)}", CONTENT_MAX))


def paused(record: PauseRecord) -> MessageSpec:
    return MessageSpec(
        f"⏸️ **Paused.** The candidate in flight finishes; the queue then waits.\n"
        f"Reason: {clip(escape(record.reason), 500)}\nUndo with `{COMMAND} unpause`."
    )


def unpaused(changed: bool) -> MessageSpec:
    if not changed:
        return MessageSpec("▶️ Integration was not paused; nothing changed.")
    return MessageSpec("▶️ **Unpaused.** The integrator takes candidates again.")


def shadow_report(r: ParityReport) -> MessageSpec:
    """``Integrator.shadow_report()``: agreement, the gate's verdict and why, then the details."""
    lines = [f"🔮 **Shadow parity**: {r.agreements} of {r.decided} decided agree ({r.agreement_rate:.1%})"]
    if r.gate.verdict == "pass":
        lines.append(f"✅ Cutover gate **passed**: `{COMMAND} cutover` is allowed")
    else:
        lines.append("❌ Cutover gate **not passed**:")
        lines += [f"• {core_text(reason, 300)}" for reason in r.gate.reasons]
    lines.append(
        f"Predicted {r.predicted} · undecided {r.undecided} · stuck {len(r.stuck)} · errors {len(r.errors)}"
    )
    if not r.disagreements:
        return MessageSpec(clip("\n".join(lines), CONTENT_MAX))
    rows = [
        f"• **{d.slug}** {code(short(d.sha))}: predicted {escape(d.prediction)}, actually {escape(d.actual)}"
        + (
            f" (differs in {', '.join(code(clip(p, 100)) for p in d.changed_paths[:5])})"
            if d.changed_paths
            else ""
        )
        for d in r.disagreements
    ]
    return MessageSpec(_bounded("\n".join([*lines, f"**Disagreements ({len(rows)})**:"]), rows))


def mode_set(record: ModeRecord) -> MessageSpec:
    """``cutover.cutover`` or ``cutover.rollback``: the new mode, by whom, why."""
    why = f"\nReason: {clip(escape(record.reason), 500)}" if record.reason else ""
    parity = record.parity
    main = _main(record.main_branch)
    if record.mode == "cutover":
        extra = ""
        if parity:
            extra = f"\nParity {parity.agreement_rate:.1%} over {plural(parity.decided, 'candidate')}"
        return MessageSpec(f"🟢 Mode is now **cutover**: only the integrator pushes {main}.{why}{extra}")
    return MessageSpec(f"🔮 Mode is now **shadow**: people may push {main} again.{why}")


def withdrawn(result: Withdrawal) -> MessageSpec:
    """``Integrator.withdraw``: withdrawn now, or stopping before the push of the one in flight."""
    slug, sha = result.slug, code(short(result.sha))
    if result.state == "stopping":
        return MessageSpec(f"🚫 **{slug}** {sha} is in flight: it stops before its push and is withdrawn")
    return MessageSpec(
        f"🚫 **{slug}** {sha} withdrawn (was {escape(result.was)})\nReason: {core_text(result.reason or '', 500)}"
    )


def refused(command: str, message: object) -> MessageSpec:
    """A refusal or bad input from the core, named after the command that asked."""
    return MessageSpec(clip(f"🚫 `{COMMAND} {command}`: {core_text(message)}", CONTENT_MAX))


def only_role(role: str, action: str, then: str = "") -> str:
    """The one wording of a refusal for a missing role: slash commands, the Resume button, the launcher."""
    return f"Sorry, only members with the **{escape(role)}** role can {action}." + (
        f" {then}" if then else ""
    )


def not_admin(role: str, command: str) -> MessageSpec:
    return MessageSpec(
        only_role(
            role,
            f"use `{COMMAND} {command}`",
            "Ask one of them, or use the read-only commands (status, queue, history, shadow-report).",
        )
    )


def internal_error(command: str) -> MessageSpec:
    return MessageSpec(
        f"Something went wrong running `{COMMAND} {command}`; it was logged. "
        "Try again in a moment, or run `integrator status` on the host."
    )


def launcher_posted(count: int) -> MessageSpec:
    return MessageSpec(
        f"🚀 Posted the session launcher ({plural(count, 'message')}). Older launchers keep working."
    )
