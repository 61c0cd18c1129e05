"""Event models: strict validation, the content idempotency key, and the supersession order."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)

from integrator import limits, timestamps
from integrator.errors import InvalidInput
from integrator.reasons import ReasonCode

_SHA_RE = re.compile(r"[0-9a-f]{40}")
_SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
# Characters git forbids anywhere in a ref name (git-check-ref-format(1)), plus ASCII control chars.
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def check_sha(value: str) -> str:
    if not _SHA_RE.fullmatch(value):
        raise ValueError("must be 40 lowercase hex characters")
    return value


def check_slug(value: str) -> str:
    if not _SLUG_RE.fullmatch(value):
        raise ValueError("must match [a-z0-9][a-z0-9-]{0,63}")
    return value


def check_branch_name(value: str) -> str:
    """The rules of ``git check-ref-format --branch``, and never a leading ``-`` (it would read as an option)."""
    problems = []
    if not value:
        problems.append("must not be empty")
    if value.startswith("-"):
        problems.append("must not start with '-'")
    if ".." in value:
        problems.append("must not contain '..'")
    if "@{" in value or value == "@":
        problems.append("must not contain '@{' or be '@'")
    if _REF_FORBIDDEN.search(value):
        problems.append("must not contain spaces, control characters or any of ~^:?*[\\")
    if value.startswith("/") or value.endswith("/") or "//" in value:
        problems.append("must not start or end with '/' or contain '//'")
    if value.endswith("."):
        problems.append("must not end with '.'")
    for part in value.split("/"):
        if part.startswith("."):
            problems.append("no path component may start with '.'")
            break
        if part.endswith(".lock"):
            problems.append("no path component may end with '.lock'")
            break
    if value in {"HEAD"} or value.startswith("refs/"):
        problems.append("must be a plain branch name (not HEAD, not refs/...)")
    if problems:
        raise ValueError("; ".join(problems))
    return value


def _check_positive_ms(value: int) -> int:
    if value < 0:
        raise ValueError("must be >= 0")
    return value


Sha = Annotated[StrictStr, AfterValidator(check_sha)]
Slug = Annotated[StrictStr, AfterValidator(check_slug)]
Branch = Annotated[StrictStr, AfterValidator(check_branch_name)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]
# A remote name is compared with the configured remote, which follows the branch-name rules.
RemoteName = Annotated[StrictStr, AfterValidator(check_branch_name)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(timestamps.check_text)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ReviewApproved(_Payload):
    slug: Slug
    sha: Sha
    reviewer: Name
    review_round: Annotated[StrictInt, Field(ge=1, le=limits.MAX_REVIEW_ROUND)]
    approved_at: Timestamp


class FinalizeReady(_Payload):
    slug: Slug
    branch: Branch
    sha: Sha
    worker: Name
    ready_at: Timestamp


class BranchPushed(_Payload):
    branch: Branch
    sha: Sha
    remote: RemoteName = "origin"
    pushed_at: Timestamp
    pusher: Name | None = None


class IntegrationCompleted(_Payload):
    slug: Slug
    branch: Branch
    sha: Sha
    merge_sha: Sha
    main_before: Sha
    main_after: Sha
    duration_ms: Annotated[StrictInt, AfterValidator(_check_positive_ms)]
    completed_at: Timestamp
    already_on_main: bool = False
    attempt: Annotated[StrictInt, Field(ge=0)] = 0


class IntegrationBlocked(_Payload):
    slug: Slug
    branch: Branch
    sha: Sha
    # Not strict: the runtime hands over the code's text as often as the enum member.
    reason_code: Annotated[ReasonCode, Field(strict=False)]
    evidence: dict[str, Any]
    next_action: StrictStr
    follow_up_slug: StrictStr | None = None
    blocked_at: Timestamp
    attempt: Annotated[StrictInt, Field(ge=0)] = 0


class Superseded(_Payload):
    slug: Slug
    branch: Branch
    sha: Sha
    superseded_by: Sha
    superseded_at: Timestamp


class Withdrawn(_Payload):
    slug: Slug
    branch: Branch
    sha: Sha
    by: Name
    reason: Annotated[StrictStr, Field(min_length=1, max_length=500)]
    was: Literal["waiting", "ready", "queued", "blocked", "in_progress"]
    withdrawn_at: Timestamp


READINESS_TYPES = ("review_approved", "finalize_ready", "branch_pushed")
# Recorded by the integrator itself; never accepted from `emit`.
OUTCOME_TYPES = ("integration_completed", "integration_blocked", "superseded", "candidate_withdrawn")

PAYLOADS: dict[str, type[_Payload]] = {
    "review_approved": ReviewApproved,
    "finalize_ready": FinalizeReady,
    "branch_pushed": BranchPushed,
    "integration_completed": IntegrationCompleted,
    "integration_blocked": IntegrationBlocked,
    "superseded": Superseded,
    "candidate_withdrawn": Withdrawn,
}

# The fields that say *which* fact an event states; timestamps are deliberately absent so a
# retried emit (same fact, later clock) maps to the same key.
IDENTITY_FIELDS: dict[str, tuple[str, ...]] = {
    "review_approved": ("slug", "sha", "reviewer", "review_round"),
    "finalize_ready": ("slug", "branch", "sha"),
    "branch_pushed": ("branch", "sha", "remote"),
    "integration_completed": ("slug", "branch", "sha", "attempt"),
    "integration_blocked": ("slug", "branch", "sha", "attempt"),
    "superseded": ("slug", "branch", "sha"),
    "candidate_withdrawn": ("slug", "branch", "sha"),
}
TIME_FIELDS = frozenset(
    {"approved_at", "ready_at", "pushed_at", "completed_at", "blocked_at", "superseded_at", "withdrawn_at"}
)
# Outcome events carry measurements that legitimately differ on a re-record; only readiness events
# are compared field by field for an idempotency conflict.
CONTENT_CHECKED = frozenset(READINESS_TYPES)

EventType = Literal[
    "review_approved",
    "finalize_ready",
    "branch_pushed",
    "integration_completed",
    "integration_blocked",
    "superseded",
    "candidate_withdrawn",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """UTC ISO-8601 with microseconds always present, so text order equals time order."""
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Event:
    """A validated event ready to store."""

    event_id: str
    type: str
    payload: _Payload
    received_at: datetime
    idempotency_key: str

    def payload_json(self) -> str:
        return canonical_json(self.payload.model_dump(mode="json"))

    def content(self) -> dict[str, Any]:
        return content_of(self.payload.model_dump(mode="json"))


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


# Who pushed is incidental: the hook and a worker may both report the same push with different names.
INCIDENTAL_FIELDS = TIME_FIELDS | {"pusher"}


def content_of(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in INCIDENTAL_FIELDS}


def idempotency_key(event_type: str, payload: _Payload) -> str:
    data = payload.model_dump(mode="json")
    identity = [event_type] + [data.get(f) for f in IDENTITY_FIELDS[event_type]]
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()


def _format(err: ValidationError, prefix: str) -> list[str]:
    out = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        where = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "(event)"
        msg = e["msg"].removeprefix("Value error, ")
        out.append(f"{where}: {msg}")
    return out


class EventEnvelopeIn(BaseModel):
    """The wire shape of one event: ``{"type": ..., "payload": {...}}``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    type: EventType
    payload: dict[str, Any]


def make_event(
    event_type: str,
    payload: dict[str, Any] | _Payload,
    *,
    received_at: datetime | None = None,
    event_id: str | None = None,
) -> Event:
    """Validate and wrap one event; raises InvalidInput naming every bad field."""
    model = PAYLOADS.get(event_type)
    if model is None:
        raise InvalidInput(f"type: unknown event type {event_type!r} (expected one of {', '.join(PAYLOADS)})")
    parsed = payload if isinstance(payload, _Payload) else _validate(model, payload)
    return Event(
        event_id=event_id or str(uuid.uuid4()),
        type=event_type,
        payload=parsed,
        received_at=received_at or utcnow(),
        idempotency_key=idempotency_key(event_type, parsed),
    )


def parse_wire(obj: Any, *, received_at: datetime | None = None) -> Event:
    """Validate one ``{"type", "payload"}`` object from JSON."""
    try:
        env = EventEnvelopeIn.model_validate(obj)
    except ValidationError as err:
        raise InvalidInput("; ".join(_format(err, ""))) from None
    return make_event(env.type, env.payload, received_at=received_at)


def _validate(model: type[_Payload], payload: Any) -> _Payload:
    """Validate in JSON mode: strict about types (no bool for int), yet timestamps arrive as ISO
    strings from JSON and as datetimes from Python; both become the same text first.

    A value JSON cannot carry (bytes, a set, NaN) is a bad field like any other, named together with
    every other problem of the payload.
    """
    unrepresentable: dict[str, str] = {}
    if isinstance(payload, dict):
        clean = {}
        for key, value in payload.items():
            try:
                json.dumps(value, default=_json_default, allow_nan=False)
                if isinstance(value, str):
                    limits.check_utf8(value, "text")
            except (TypeError, ValueError) as err:
                unrepresentable[str(key)] = str(err)
            except InvalidInput:
                unrepresentable[str(key)] = "bytes that are not valid UTF-8"
            else:
                clean[key] = value
        payload = clean
    try:
        text = json.dumps(payload, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"payload: not representable as JSON ({err})") from None
    problems = [f"payload.{key}: not representable as JSON ({why})" for key, why in unrepresentable.items()]
    try:
        parsed = model.model_validate_json(text)
    except ValidationError as err:
        dropped = {f"payload.{key}: Field required" for key in unrepresentable}
        problems += [p for p in _format(err, "payload.") if p not in dropped]
    if problems:
        raise InvalidInput("; ".join(problems))
    return parsed


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def parse_ndjson(text: str, *, received_at: datetime | None = None) -> list[Event]:
    """Parse a whole NDJSON batch; any bad line rejects the batch with every bad line named (one line)."""
    events: list[Event] = []
    problems: list[str] = []
    # NDJSON separates records by "\n" only: str.splitlines() would also cut at U+2028, \x1c and other
    # characters that JSON strings may carry unescaped.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if len(events) + len(problems) >= limits.MAX_BATCH_EVENTS:
            problems.append(f"more than {limits.MAX_BATCH_EVENTS} events in one batch; split it")
            break
        try:
            obj = limits.loads(line)
        except ValueError as err:
            problems.append(f"line {number}: {err}")
            continue
        if isinstance(obj, dict) and obj.get("type") in OUTCOME_TYPES:
            problems.append(
                f"line {number}: type: {obj['type']} is recorded by the integrator itself and cannot be emitted"
            )
            continue
        try:
            events.append(parse_wire(obj, received_at=received_at))
        except InvalidInput as err:
            problems.append(f"line {number}: {err.message}")
    if problems:
        raise InvalidInput(limits.one_line("batch rejected, nothing stored", problems))
    return events
