"""The one-line text of each outbox notification and outcome: what the console shows.

Shared by the ``integrator`` CLI (``run``, ``demo``, ``history``) and the bot's console sink, so the
bot never imports the CLI and both print the same lines.
"""

from __future__ import annotations

from typing import Any


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


def base_text(run: dict[str, Any]) -> str:
    """The predicted base a verify runs on: main and the candidates merged ahead of it."""
    return "main" + "".join(f" + {slug}" for slug in run.get("ahead", []))


def notification_line(n: dict[str, Any]) -> str:
    """One console line per outbox notification (the headless twin of the Discord messages)."""
    kind, p = n["kind"], n["payload"]
    if kind == "candidate_ready":
        return f"[ready] {p['slug']} {short(p['sha'])} on {p['branch']} queued at position {p['position']}"
    if kind == "candidate_withdrawn":
        return f"[withdrawn] {p['slug']} {short(p['sha'])} by {p['by']}: {p['reason']}"
    if kind == "candidate_superseded":
        return f"[superseded] {p['slug']} {short(p['sha'])} by {short(p['superseded_by'])}"
    if kind == "integration_completed":
        return "[integrated] " + outcome_line({"type": "integration_completed", **p}).removeprefix(
            "completed "
        )
    if kind == "integration_blocked":
        lines = [f"[blocked] {p['slug']} {short(p['sha'])}: {p['reason_code']}"]
        ev = p.get("evidence", {})
        for path in ev.get("conflicted_paths", [])[:10]:
            lines.append(f"    conflict: {path}")
        lines.append(f"    next: {p['next_action']}")
        if p.get("follow_up_path"):
            lines.append(f"    follow-up: {p['follow_up_path']}")
        return "\n".join(lines)
    if kind == "shadow_predictions":
        items = p["items"]
        parts = [f"{i['slug']}={i['prediction']}" for i in items[:10]]
        return f"[shadow] {len(items)} prediction(s): " + ", ".join(parts)
    if kind == "mode_changed":
        auto = " (automatic)" if p.get("automatic") else ""
        return f"[mode] {p['previous']} -> {p['mode']}{auto} by {p['by']}: {p['reason']}"
    if kind == "paused":
        return f"[paused] by {p['by']}: {p['reason']}"
    if kind == "unpaused":
        return f"[unpaused] by {p['by']}"
    if kind == "verify_started":
        return f"[verifying] {p['slug']} {short(p['sha'])} on {base_text(p)} ({short(p['merge_sha'])})"
    if kind == "stall_alarm":
        return f"[stall] queue of {p.get('queue_length')} has made no progress for {p.get('stalled_for_s')}s"
    return f"[{kind}] {p}"
