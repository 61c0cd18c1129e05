"""Plain-text rendering for the terminal: status, queue, events, notifications."""

from __future__ import annotations

from collections.abc import Sequence

from integrator.models import (
    BlockedEntry,
    CandidateView,
    EmittedCandidate,
    PipelineView,
    QueueEntry,
    SandboxView,
    Status,
)
from integrator.notices import base_text, notification_line, outcome_line, short

__all__ = ["notification_line", "outcome_line", "short"]


def candidate_line(c: CandidateView) -> str:
    position = c.position if isinstance(c, EmittedCandidate) else None
    where = f" position {position}" if position else ""
    head = f"{c.slug:<24} {c.branch:<28} {short(c.sha)}  {c.status}{where}"
    if c.status in ("waiting", "blocked", "superseded") and c.reasons:
        return head + "".join(f"\n    - {r}" for r in c.reasons)
    return head


def queue_lines(items: Sequence[QueueEntry]) -> list[str]:
    if not items:
        return ["queue: empty"]
    lines = ["queue:"]
    for item in items:
        pos = "now" if item.status == "in_progress" else f"#{item.position}"
        lines.append(
            f"  {pos:>4}  {item.slug:<24} {item.branch:<28} {short(item.sha)}  "
            f"ready {item.ready_at}  attempts {item.attempts}"
        )
    return lines


def status_text(s: Status) -> str:
    lines = [
        f"mode: {s.mode}"
        + (f" since {s.mode_since} by {s.mode_by} ({s.mode_reason})" if s.mode_since else "")
    ]
    if s.paused and s.pause:
        lines.append(f"paused: yes, by {s.pause.by} at {s.pause.at}: {s.pause.reason}")
    else:
        lines.append("paused: no")
    lease = s.lease
    lines.append(
        f"lease: {lease.holder} (fencing {lease.fencing}, expires {lease.expires})"
        if lease
        else "lease: free"
    )
    if s.verify_sandbox:
        lines.append(f"verify sandbox: {sandbox_text(s.verify_sandbox)}")
    if s.in_flight:
        f = s.in_flight
        lines.append(f"in flight: {f.slug} {short(f.sha)} phase {f.phase} since {f.since}")
    lines += pipeline_lines(s.pipeline)
    if s.fault:
        fault = s.fault
        lines.append(f"last fault: {fault.at} {fault.kind}: {fault.message} ({fault.streak} in a row)")
    lines += queue_lines(s.queue)
    if s.blocked:
        lines.append("blocked:")
        lines += [line for b in s.blocked for line in _blocked_lines(b)]
    lines.append("candidates:" if s.candidates else "candidates: none")
    lines += ["  " + candidate_line(c).replace("\n", "\n  ") for c in s.candidates]
    if s.recent_outcomes:
        lines.append("recent outcomes:")
        lines += ["  " + outcome_line(o, s.main_branch) for o in s.recent_outcomes]
    return "\n".join(lines)


def _blocked_lines(b: BlockedEntry) -> list[str]:
    paths = ", ".join(b.conflicted_paths[:5])
    lines = [f"  {b.slug:<24} {short(b.sha)}  {b.reason_code}" + (f"  [{paths}]" if paths else "")]
    if b.next_action:
        lines.append(f"    next: {b.next_action}")
    return lines


def sandbox_text(v: SandboxView) -> str:
    """The isolation verify runs under (``Integrator.status().verify_sandbox``)."""
    if not v.verify_command:
        return f"{v.kind} (no verify command configured)"
    if v.kind != "none":
        return f"{v.kind} ({v.detail})"
    verdict = "risk accepted, verify runs unisolated" if v.verify_allowed else "verify refused"
    return f"none ({v.detail}); {verdict}"


def pipeline_lines(p: PipelineView | None) -> list[str]:
    """Each candidate of the verify pipeline: its state, the predicted base it is merged onto, its age."""
    if not p:
        return []
    lines = [f"pipeline (depth {p.depth}):"]
    for run in p.runs:
        age = f" for {run.seconds:.0f}s" if run.seconds is not None else ""
        lines.append(f"  {run.slug} {short(run.sha)} {run.state}{age} on {base_text(run.ahead)}")
    return lines
