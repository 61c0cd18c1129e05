"""Why a candidate was blocked: the one :class:`ReasonCode` type and what each code means.

Every other place that names a reason code (the ``integration_blocked`` event model, the remedy
table in :mod:`integrator.blocked.remedy`, the resume rules of :mod:`integrator.service`, the renderers'
labels) is keyed by this type, and a test checks each of those tables covers exactly these values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from integrator.errors import InvalidInput


class ReasonCode(enum.StrEnum):
    """Why the integrator blocked a candidate; the value is what the store, events and todos carry."""

    MERGE_CONFLICT = "merge_conflict"
    VERIFY_FAILED = "verify_failed"
    PUSH_REJECTED = "push_rejected"
    BRANCH_MOVED = "branch_moved"
    NOT_REACHABLE = "not_reachable"
    GIT_ERROR = "git_error"


class ResumeWhen(enum.Enum):
    """What must have changed before ``resume`` re-queues a candidate blocked for a reason."""

    # The merge itself failed: only a new main or a new merge/verify configuration can change that.
    MAIN_OR_CONFIG_CHANGED = "main_or_config_changed"
    # The branch no longer holds the pinned sha: readiness condition 4 must hold again.
    BRANCH_HOLDS_SHA = "branch_holds_sha"
    # The cause is the remote or the machine, which the integrator cannot observe being repaired.
    OPERATOR_SAYS_SO = "operator_says_so"


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    # Half a sentence for headings and summaries ("blocked: <summary>"); {main} is the main branch.
    summary: str
    resume_when: ResumeWhen


REASONS: dict[ReasonCode, Reason] = {
    r.code: r
    for r in (
        Reason(
            ReasonCode.MERGE_CONFLICT,
            "merging it onto {main} produced conflicts",
            ResumeWhen.MAIN_OR_CONFIG_CHANGED,
        ),
        Reason(
            ReasonCode.VERIFY_FAILED,
            "the verify command failed on the merged tree",
            ResumeWhen.MAIN_OR_CONFIG_CHANGED,
        ),
        Reason(
            ReasonCode.PUSH_REJECTED,
            "every push of {main} was rejected because {main} kept moving",
            ResumeWhen.OPERATOR_SAYS_SO,
        ),
        Reason(ReasonCode.BRANCH_MOVED, "the branch moved after finalize_ready", ResumeWhen.BRANCH_HOLDS_SHA),
        Reason(
            ReasonCode.NOT_REACHABLE, "the candidate sha is not on the remote", ResumeWhen.BRANCH_HOLDS_SHA
        ),
        Reason(ReasonCode.GIT_ERROR, "a git command failed", ResumeWhen.OPERATOR_SAYS_SO),
    )
}

REASON_CODES: tuple[ReasonCode, ...] = tuple(ReasonCode)


def check_reason_code(reason_code: str) -> ReasonCode:
    """The :class:`ReasonCode` named ``reason_code``; :class:`InvalidInput` for any other text."""
    try:
        return ReasonCode(reason_code)
    except ValueError:
        expected = ", ".join(REASON_CODES)
        raise InvalidInput(f"reason_code: unknown {reason_code!r} (expected one of {expected})") from None


def summary(reason_code: ReasonCode, *, main_branch: str) -> str:
    return REASONS[reason_code].summary.format(main=main_branch)


def resume_when(reason_code: str) -> ResumeWhen:
    """The resume rule of a stored block reason; a code this version does not know needs main to move."""
    try:
        return REASONS[ReasonCode(reason_code)].resume_when
    except ValueError:
        return ResumeWhen.MAIN_OR_CONFIG_CHANGED


def listed(*, last: str = "or") -> str:
    """All codes as prose ("a, b or c"), for help texts that must not fall behind the type."""
    return ", ".join(REASON_CODES[:-1]) + f" {last} {REASON_CODES[-1]}"
