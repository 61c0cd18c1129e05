"""What each outbox notification carries: one pydantic model per kind.

A producer builds the model (its fields are checked there, so a typo is a type error, not a row no
renderer can read), :func:`integrator.outbox.add` stores its JSON, and :func:`parse` turns a stored row
back into the model, so the console and Discord renderers read typed fields, never a dict.

Pydantic rather than dataclasses: the payloads cross a JSON boundary both ways, and a row written by
another version must be refused field by field (strict types: a flag is not a number) without a
hand-written validator.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from integrator.reasons import ReasonCode


class Payload(BaseModel):
    # Keys this version does not know are ignored on reading: a newer writer may add one.
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")
    kind: ClassVar[str]

    def stored(self) -> dict[str, Any]:
        """The JSON object kept in the outbox row: the fields the producer set, as it set them."""
        return self.model_dump(mode="json", exclude_unset=True)


class CandidateReady(Payload):
    kind: ClassVar[str] = "candidate_ready"
    slug: str
    branch: str
    sha: str
    ready_at: str | None = None
    position: int
    resumed_by: str | None = None


class CandidateSuperseded(Payload):
    kind: ClassVar[str] = "candidate_superseded"
    slug: str
    branch: str
    sha: str
    superseded_by: str


class CandidateWithdrawn(Payload):
    kind: ClassVar[str] = "candidate_withdrawn"
    slug: str
    branch: str
    sha: str
    by: str
    reason: str
    was: str
    at: str | None = None


class IntegrationCompleted(Payload):
    kind: ClassVar[str] = "integration_completed"
    slug: str
    branch: str
    sha: str
    merge_sha: str
    main_before: str
    main_after: str
    duration_ms: int
    already_on_main: bool = False
    attempt: int = 0
    # Older rows name no main branch; the renderers then say "the main branch".
    main_branch: str | None = None


class IntegrationBlocked(Payload):
    kind: ClassVar[str] = "integration_blocked"
    slug: str
    branch: str
    sha: str
    # Not strict: the stored JSON holds the code's value, the model the enum member.
    reason_code: Annotated[ReasonCode, Field(strict=False)]
    # The trimmed evidence; its keys depend on the reason code (integrator.blocked).
    evidence: dict[str, Any]
    next_action: str
    follow_up_slug: str | None = None
    follow_up_path: str | None = None
    blocked_at: str | None = None
    attempt: int = 0
    main_branch: str | None = None


class ShadowItem(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")
    slug: str
    sha: str
    prediction: str
    tree: str | None = None
    conflicted_paths: list[str] = []
    main_sha: str | None = None


class ShadowPredictions(Payload):
    kind: ClassVar[str] = "shadow_predictions"
    items: list[ShadowItem]


class ModeChanged(Payload):
    kind: ClassVar[str] = "mode_changed"
    mode: str
    previous: str | None = None
    since: str | None = None
    by: str | None = None
    reason: str | None = None
    automatic: bool | None = None
    at: str | None = None


class StallAlarm(Payload):
    kind: ClassVar[str] = "stall_alarm"
    slug: str | None = None
    since: str
    stalled_for_s: int | float
    queue_length: int


class Paused(Payload):
    kind: ClassVar[str] = "paused"
    by: str | None = None
    at: str | None = None
    reason: str | None = None


class Unpaused(Payload):
    kind: ClassVar[str] = "unpaused"
    by: str | None = None
    at: str | None = None
    reason: str | None = None


class VerifyStarted(Payload):
    kind: ClassVar[str] = "verify_started"
    slug: str
    sha: str
    base: str
    ahead: list[str]
    merge_sha: str
    fencing: int | None = None


MODELS: dict[str, type[Payload]] = {
    m.kind: m
    for m in (
        CandidateReady,
        CandidateSuperseded,
        CandidateWithdrawn,
        IntegrationCompleted,
        IntegrationBlocked,
        ShadowPredictions,
        ModeChanged,
        StallAlarm,
        Paused,
        Unpaused,
        VerifyStarted,
    )
}
KINDS = frozenset(MODELS)


class InvalidPayload(ValueError):
    """A stored payload that does not fit its kind's model; the message names the kind and field."""


def parse(kind: str, data: object) -> Payload | None:
    """The model of a stored payload; None for a kind this version does not know (still delivered)."""
    model = MODELS.get(kind)
    if model is None:
        return None
    if not isinstance(data, dict):
        raise InvalidPayload(f"{kind}: payload must be an object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InvalidPayload(f"{kind}: {_problem(err)}") from None


def _problem(err: ValidationError) -> str:
    first = err.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        return f"missing field {field!r}"
    got = type(first["input"]).__name__
    return f"field {field!r} has type {got}: {first['msg']}"
