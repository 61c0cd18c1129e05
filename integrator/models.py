"""What :class:`integrator.service.Integrator` returns: the typed models the CLI and the bot render.

Each renderer (``integrator/cli/render.py``, ``teleclaude/adapters/discord_replies.py``) reads these
fields, so a renamed or missing field is a type error in every renderer at once instead of a
``KeyError`` in one of them. ``--json`` prints :meth:`pydantic.BaseModel.model_dump` of the same model:
field names are the JSON keys scripts and tests rely on, so they must not be renamed.

Pydantic rather than frozen dataclasses because these are the CLI's JSON (``model_dump``), the edge
STYLE.md gives to pydantic; they are frozen like the dataclasses inside the core.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from integrator.reasons import ReasonCode


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ----------------------------------------------------------------------------------- candidates
class CandidateView(Model):
    """A candidate with its unmet readiness conditions (``reasons``: messages, ``reason_codes``: codes)."""

    slug: str
    branch: str
    sha: str
    status: str
    ready_at: str
    reasons: list[str]
    reason_codes: list[str]
    superseded_by: str | None


class EmittedCandidate(CandidateView):
    """A candidate an emit touched, with its queue position (None when it is not queued)."""

    position: int | None


class QueueEntry(Model):
    """One queue item: ``position`` is 1-based among the queued, 0 for the one in flight."""

    id: int
    slug: str
    branch: str
    sha: str
    status: str
    ready_at: str
    attempts: int
    position: int


class FollowUp(Model):
    todo_slug: str
    path: str
    status: str
    blocked_count: int


class BlockedEntry(Model):
    """A blocked candidate: why, the evidence summary, what to do next, its follow-up todo."""

    id: int
    slug: str
    branch: str
    sha: str
    status: str
    ready_at: str
    attempts: int
    reason_code: ReasonCode | None
    blocked_on_main: str | None
    conflicted_paths: list[str]
    # The trimmed evidence; its keys depend on the reason code (integrator.blocked).
    evidence: dict[str, Any]
    hunks: dict[str, str]
    next_action: str | None
    blocked_at: str | None
    follow_up: FollowUp | None


# --------------------------------------------------------------------------------------- status
class PauseRecord(Model):
    by: str
    at: str
    reason: str


class LeaseView(Model):
    holder: str
    fencing: int
    expires: str


class InFlight(Model):
    slug: str
    sha: str
    branch: str
    phase: str | None
    since: str | None


class PipelineRun(Model):
    slug: str
    sha: str
    position: int
    state: str
    base: str
    on_main: bool
    ahead: list[str]
    since: str | None
    seconds: float | None


class PipelineView(Model):
    """The speculative verifies as the lease holder last wrote them (integrator/pipeline.py)."""

    depth: int
    main: str
    runs: list[PipelineRun]


class FaultRecord(Model):
    at: str
    kind: str
    message: str
    streak: int


class Backlog(Model):
    """One outbox consumer: how many notifications wait for it and why the head last failed."""

    consumer: str
    waiting: int
    attempts: int
    last_error: str | None


class SandboxView(Model):
    """How the verify command is isolated on this machine under this config."""

    kind: str
    network: bool
    detail: str
    risk_accepted: bool
    verify_allowed: bool
    verify_command: list[str] | None


class Stall(Model):
    """The queue has items and nothing reached an outcome for the stall limit."""

    since: str
    stalled_for_s: int
    queue_length: int


class JournalEntry(Model):
    """One event of the journal as stored; ``payload`` is the event's model (``events.py``) as JSON."""

    seq: int
    event_id: str
    type: str
    received_at: str
    payload: dict[str, Any]

    def flat(self) -> dict[str, Any]:
        """``type`` beside the payload's fields: the one mapping the outcome lines read."""
        return {"type": self.type, **self.payload}


class Status(Model):
    mode: str
    mode_since: str | None
    mode_by: str | None
    mode_reason: str | None
    paused: bool
    pause: PauseRecord | None
    lease: LeaseView | None
    in_flight: InFlight | None
    pipeline: PipelineView | None
    queue: list[QueueEntry]
    blocked: list[BlockedEntry]
    candidates: list[CandidateView]
    # The journal's outcome events (``type`` + payload); their fields are events.py's models.
    recent_outcomes: list[dict[str, Any]]
    fault: FaultRecord | None
    outbox: list[Backlog]
    repo: str
    remote: str
    main_branch: str
    verify_sandbox: SandboxView | None = None


# -------------------------------------------------------------------------------------- steering
class Resumed(Model):
    """A blocked candidate re-queued: where, and why the block no longer holds."""

    slug: str
    sha: str
    position: int
    why: str


class Withdrawal(Model):
    """``state``: ``withdrawn`` now, or ``stopping`` before the push of the candidate in flight."""

    slug: str
    branch: str
    sha: str
    was: str
    state: str
    by: str | None = None
    reason: str | None = None


class Parity(Model):
    decided: int
    agreement_rate: float


class ModeRecord(Model):
    """The mode as set (cutover/rollback add the main branch and, for a cutover, the parity)."""

    mode: str
    since: str
    by: str
    reason: str
    automatic: bool
    main_branch: str | None = None
    parity: Parity | None = None


# --------------------------------------------------------------------------------------- parity
class Disagreement(Model):
    slug: str
    sha: str
    prediction: str
    actual: str
    conflicted_paths: list[str]
    changed_paths: list[str]
    landed_by: str | None


class Stuck(Model):
    slug: str
    sha: str
    predicted_at: str
    prediction: str


class GateThresholds(Model):
    # int | float: a threshold configured as 1 stays 1 in the JSON, not 1.0.
    min_decided: int
    min_agreement: int | float
    stall_limit_s: int | float


class Gate(Model):
    verdict: str
    reasons: list[str]
    thresholds: GateThresholds


class ParityReport(Model):
    """Shadow predictions against what really landed, and the cutover gate's verdict."""

    predicted: int
    decided: int
    agreements: int
    agreement_rate: float
    disagreements: list[Disagreement]
    by_actual: dict[str, int]
    undecided: int
    stuck: list[Stuck]
    errors: list[dict[str, Any]]
    errors_since: str | None
    gate: Gate
