"""The three YAML schemas of ``todos/`` as pydantic models: a roadmap entry, a delivered entry, a gate.

Every value check raises a :class:`~pydantic_core.PydanticCustomError` whose text is the sentence the
validator prints, so :func:`check` can turn a :class:`~pydantic.ValidationError` into findings that
name the key (``dor.status``, ``artifacts.required[1]``) without translating pydantic's own wording.
Unknown keys are not errors (a newer file must not break an older validator): :func:`check` lists
them separately, and the loader reports them as warnings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, TypeVar, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

# Looser than an event slug: follow-up todos append "-integration-blocked" to a slug of up to 64.
SLUG_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
# An artifact is a file in the todo's own folder.
_FILE_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
DOR_SCORE_MAX: Final = 10
DOR_STATUSES: Final = ("pass", "fail")
BUILD_STATES: Final = ("pending", "in_progress", "done")
REVIEW_STATES: Final = ("pending", "approved", "changes_requested")

M = TypeVar("M", bound=BaseModel)


def _fail(message: str) -> PydanticCustomError:
    # The message goes in the context: a template would read "{status, score}" as placeholders.
    return PydanticCustomError("rollout", "{message}", {"message": message})


def _slug(value: object) -> str:
    if not isinstance(value, str):
        raise _fail(f"must be a string, got {value!r}")
    if not SLUG_RE.fullmatch(value):
        raise _fail(f"{value!r} must match [a-z0-9][a-z0-9-]* (at most 128 characters)")
    return value


def _optional_slug(value: object) -> str | None:
    return None if value is None else _slug(value)


def _text(value: object) -> object:
    if value is not None and not isinstance(value, str):
        raise _fail("must be text")
    return value


def _as_text(value: object) -> str | None:
    """Dates and numbers as YAML parsed them (``delivered_at: 2026-11-29``), kept as written."""
    return None if value is None else str(value)


def _slugs(value: object) -> tuple[str, ...]:
    """``after``: one slug or a list of them."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _fail(f"must be a slug or a list of slugs, got {value!r}")


def _slice_list(value: object) -> object:
    if not isinstance(value, list) or not value:
        raise _fail(f"must be a non-empty list of slugs in build order, got {value!r}")
    return value  # each item is checked as a Slug, so an error names its index


def _names(what: str, pattern: re.Pattern[str]) -> BeforeValidator:
    def check(value: object) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and pattern.fullmatch(v) for v in value):
            raise _fail(f"must be a list of {what}, got {value!r}")
        return tuple(value)

    return BeforeValidator(check)


def _one_of(allowed: tuple[str, ...]) -> BeforeValidator:
    def check(value: object) -> str:
        if value not in allowed:
            raise _fail(f"must be one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    return BeforeValidator(check)


def _mapping(shape: str) -> BeforeValidator:
    def check(value: object) -> object:
        if not isinstance(value, Mapping):
            raise _fail(f"must be a mapping {shape}")
        return value

    return BeforeValidator(check)


def _score(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= DOR_SCORE_MAX:
        raise _fail(f"must be a number from 0 to {DOR_SCORE_MAX}, got {value!r}")
    return float(value)


def _blockers(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(b, str) for b in value):
        raise _fail(f"must be a list of text, got {value!r}")
    return tuple(value)


Slug = Annotated[str, BeforeValidator(_slug)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Artifacts(_Model):
    """The files each todo of a rollout needs in its folder before it may be built (``state.yaml`` always)."""

    required: Annotated[tuple[str, ...], _names("file names", _FILE_RE)] = (
        "requirements.md",
        "implementation-plan.md",
    )
    recommended: Annotated[tuple[str, ...], _names("file names", _FILE_RE)] = ("demo.md",)


class EntrySpec(_Model):
    """One item of ``roadmap.yaml``. An entry with ``slices`` is the parent of a rollout."""

    slug: Slug
    group: Annotated[str | None, BeforeValidator(_optional_slug)] = None
    after: Annotated[tuple[str, ...], BeforeValidator(_slugs)] = ()
    description: Annotated[str | None, BeforeValidator(_text)] = None
    slices: Annotated[tuple[Slug, ...] | None, BeforeValidator(_slice_list)] = None
    artifacts: Annotated[Artifacts, _mapping("{required, recommended}")] = Artifacts()
    probes: Annotated[tuple[str, ...], _names("probe names", SLUG_RE)] = ()


class DeliveredSpec(_Model):
    """One item of ``delivered.yaml`` (a bare slug is read as ``{slug: ...}``)."""

    slug: Slug
    delivered_at: Annotated[str | None, BeforeValidator(_as_text)] = None
    evidence: Annotated[str | None, BeforeValidator(_as_text)] = None
    description: Annotated[str | None, BeforeValidator(_as_text)] = None


class GateSpec(_Model):
    """``state.yaml``'s ``dor`` block: the definition-of-ready gate."""

    status: Annotated[Literal["pass", "fail"], _one_of(DOR_STATUSES)]
    score: Annotated[float, BeforeValidator(_score)]
    blockers: Annotated[tuple[str, ...], BeforeValidator(_blockers)] = ()


class StateSpec(_Model):
    """A todo's ``state.yaml``: its gate, build and review."""

    dor: Annotated[GateSpec, _mapping("{status, score, blockers}")]
    build: Annotated[str, _one_of(BUILD_STATES)]
    review: Annotated[str, _one_of(REVIEW_STATES)]


@dataclass(frozen=True)
class Issue:
    """One value that does not fit: ``loc`` is its key path (``("dor", "status")``)."""

    loc: tuple[str | int, ...]
    message: str

    @property
    def key(self) -> str:
        return dotted(self.loc)


def dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def check(model: type[M], data: Mapping[str, Any]) -> tuple[M | None, list[Issue]]:
    """``data`` as ``model``, or None with every issue (in the order of the model's fields)."""
    try:
        return model.model_validate(dict(data)), []
    except ValidationError as err:
        issues = []
        for found in err.errors(include_url=False):
            loc = tuple(found["loc"])
            if found["type"] == "rollout":
                message = str(found["ctx"]["message"])
            elif found["type"] == "missing":
                message = "is required"
            else:  # pydantic's own wording, for a check written without a custom message
                message = f"{found['msg'][:1].lower()}{found['msg'][1:]}, got {found['input']!r}"
            issues.append(Issue(loc, message))
        return None, issues


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (pydantic strips ``Annotated``; ``X | None`` keeps its arguments)."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def known_keys(model: type[BaseModel]) -> list[str]:
    return sorted(model.model_fields)


def unknown_keys(model: type[BaseModel], data: Mapping[Any, Any]) -> list[tuple[tuple[str, ...], list[str]]]:
    """Each key ``model`` does not know, as its path and the keys that would have been known there."""
    found: list[tuple[tuple[str, ...], list[str]]] = []
    for key, value in data.items():
        field = model.model_fields.get(str(key))
        if field is None:
            found.append(((str(key),), known_keys(model)))
            continue
        nested = _model_of(field.annotation)
        if nested is not None and isinstance(value, Mapping):
            found += [((str(key), *path), known) for path, known in unknown_keys(nested, value)]
    return found
