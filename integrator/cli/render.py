"""Plain-text rendering for the terminal: status, queue, events, notifications."""

from __future__ import annotations

from typing import Any

from integrator.notices import base_text, notification_line, outcome_line, short

__all__ = ["notification_line", "outcome_line", "short"]


def candidate_line(c: dict[str, Any]) -> str:
    where = f" position {c['position']}" if c.get("position") else ""
    head = f"{c['slug']:<24} {c['branch']:<28} {short(c['sha'])}  {c['status']}{where}"
    reasons = c.get("reasons") or []
    if c["status"] in ("waiting", "blocked", "superseded") and reasons:
        return head + "".join(f"\n    - {r}" for r in reasons)
    return head


def queue_lines(items: list[dict[str, Any]]) -> list[str]:
    if not items:
        return ["queue: empty"]
    lines = ["queue:"]
    for item in items:
        pos = "now" if item["status"] == "in_progress" else f"#{item['position']}"
        lines.append(
            f"  {pos:>4}  {item['slug']:<24} {item['branch']:<28} {short(item['sha'])}  "
            f"ready {item['ready_at']}  attempts {item['attempts']}"
        )
    return lines


def status_text(s: dict[str, Any]) -> str:
    lines = [
        f"mode: {s['mode']}"
        + (f" since {s['mode_since']} by {s['mode_by']} ({s['mode_reason']})" if s.get("mode_since") else "")
    ]
    if s["paused"]:
        p = s["pause"]
        lines.append(f"paused: yes, by {p['by']} at {p['at']}: {p['reason']}")
    else:
        lines.append("paused: no")
    lease = s["lease"]
    lines.append(
        f"lease: {lease['holder']} (fencing {lease['fencing']}, expires {lease['expires']})"
        if lease
        else "lease: free"
    )
    if s.get("verify_sandbox"):
        lines.append(f"verify sandbox: {sandbox_text(s['verify_sandbox'])}")
    if s.get("in_flight"):
        f = s["in_flight"]
        lines.append(f"in flight: {f['slug']} {short(f['sha'])} phase {f['phase']} since {f['since']}")
    lines += pipeline_lines(s.get("pipeline"))
    if s.get("fault"):
        f = s["fault"]
        lines.append(f"last fault: {f['at']} {f['kind']}: {f['message']} ({f['streak']} in a row)")
    lines += queue_lines(s["queue"])
    if s["blocked"]:
        lines.append("blocked:")
        for b in s["blocked"]:
            paths = ", ".join(b["conflicted_paths"][:5])
            lines.append(
                f"  {b['slug']:<24} {short(b['sha'])}  {b['reason_code']}" + (f"  [{paths}]" if paths else "")
            )
            if b.get("next_action"):
                lines.append(f"    next: {b['next_action']}")
    lines.append("candidates:" if s["candidates"] else "candidates: none")
    lines += ["  " + candidate_line(c).replace("\n", "\n  ") for c in s["candidates"]]
    if s["recent_outcomes"]:
        lines.append("recent outcomes:")
        lines += ["  " + outcome_line(o, s.get("main_branch")) for o in s["recent_outcomes"]]
    return "\n".join(lines)


def sandbox_text(v: dict[str, Any]) -> str:
    """The isolation verify runs under (``Integrator.status()['verify_sandbox']``)."""
    if not v.get("verify_command"):
        return f"{v['kind']} (no verify command configured)"
    if v["kind"] != "none":
        return f"{v['kind']} ({v['detail']})"
    verdict = "risk accepted, verify runs unisolated" if v["verify_allowed"] else "verify refused"
    return f"none ({v['detail']}); {verdict}"


def pipeline_lines(p: dict[str, Any] | None) -> list[str]:
    """Each candidate of the verify pipeline: its state, the predicted base it is merged onto, its age."""
    if not p:
        return []
    lines = [f"pipeline (depth {p['depth']}):"]
    for run in p["runs"]:
        age = f" for {run['seconds']:.0f}s" if run.get("seconds") is not None else ""
        lines.append(
            f"  {run['slug']} {short(run['sha'])} {run['state']}{age} on {base_text(run.get('ahead', []))}"
        )
    return lines
