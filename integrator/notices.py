"""The one-line text of each outbox notification and outcome: what the console shows.

Shared by the ``integrator`` CLI (``run``, ``demo``, ``history``) and the bot's console sink, so the
bot never imports the CLI and both print the same lines.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from integrator import notifications as n
from integrator.outbox import Notification


def short(sha: str | None) -> str:
    return (sha or "-")[:10]


def outcome_line(o: dict[str, Any], main_branch: str | None = None) -> str:
    kind = o["type"]
    if kind == "integration_completed":
        main = main_branch or o.get("main_branch") or "the main branch"
        extra = f" (already on {main})" if o.get("already_on_main") else f" as {short(o['merge_sha'])}"
        return f"completed {o['slug']} {short(o['sha'])}{extra} in {o['duration_ms']} ms"
    if kind == "integration_blocked":
        paths = ", ".join(o.get("evidence", {}).get("conflicted_paths", [])[:5])
        return f"blocked   {o['slug']} {short(o['sha'])} {o['reason_code']}" + (
            f" [{paths}]" if paths else ""
        )
    return f"superseded {o['slug']} {short(o['sha'])} by {short(o.get('superseded_by'))}"


def base_text(ahead: Sequence[str]) -> str:
    """The predicted base a verify runs on: main and the candidates merged ahead of it."""
    return "main" + "".join(f" + {slug}" for slug in ahead)


def notification_line(note: Notification) -> str:
    """One console line per outbox notification (the headless twin of the Discord messages)."""
    p = note.payload
    match p:
        case n.CandidateReady():
            return f"[ready] {p.slug} {short(p.sha)} on {p.branch} queued at position {p.position}"
        case n.CandidateWithdrawn():
            return f"[withdrawn] {p.slug} {short(p.sha)} by {p.by}: {p.reason}"
        case n.CandidateSuperseded():
            return f"[superseded] {p.slug} {short(p.sha)} by {short(p.superseded_by)}"
        case n.IntegrationCompleted():
            return "[integrated] " + outcome_line({"type": note.kind, **p.stored()}).removeprefix(
                "completed "
            )
        case n.IntegrationBlocked():
            return _blocked_lines(p)
        case n.ShadowPredictions():
            parts = [f"{i.slug}={i.prediction}" for i in p.items[:10]]
            return f"[shadow] {len(p.items)} prediction(s): " + ", ".join(parts)
        case n.ModeChanged():
            auto = " (automatic)" if p.automatic else ""
            return f"[mode] {p.previous} -> {p.mode}{auto} by {p.by}: {p.reason}"
        case n.Paused():
            return f"[paused] by {p.by}: {p.reason}"
        case n.Unpaused():
            return f"[unpaused] by {p.by}"
        case n.VerifyStarted():
            return f"[verifying] {p.slug} {short(p.sha)} on {base_text(p.ahead)} ({short(p.merge_sha)})"
        case n.StallAlarm():
            return f"[stall] queue of {p.queue_length} has made no progress for {p.stalled_for_s}s"
    if note.problem:
        # A row that fits no model must not stall the console: show what is stored and why.
        return f"[{note.kind}] #{note.id} {json.dumps(note.data, sort_keys=True)} ({note.problem})"
    return f"[{note.kind}] {note.data}"


def _blocked_lines(p: n.IntegrationBlocked) -> str:
    lines = [f"[blocked] {p.slug} {short(p.sha)}: {p.reason_code}"]
    for path in p.evidence.get("conflicted_paths", [])[:10]:
        lines.append(f"    conflict: {path}")
    lines.append(f"    next: {p.next_action}")
    if p.follow_up_path:
        lines.append(f"    follow-up: {p.follow_up_path}")
    return "\n".join(lines)
