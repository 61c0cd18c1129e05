"""The one timestamp grammar for every input (flags, NDJSON, the hooks' spool).

``YYYY-MM-DDTHH:MM:SS[.ffffff]`` then ``Z`` or ``±HH:MM``: ISO-8601 with a timezone, in ASCII digits,
with an upper-case ``T`` and ``Z``, and a moment that exists in UTC (year 1 to 9999 after the offset is
applied), because every timestamp is stored as UTC text. Numbers ("1", epoch seconds), a missing
timezone, a lower-case ``z`` and local digits other than 0-9 are refused everywhere alike.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_GRAMMAR = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
EXAMPLE = "2026-01-01T12:00:00Z"


def parse(text: str) -> datetime:
    """The aware datetime ``text`` names; ValueError with a one-line reason otherwise."""
    if not _GRAMMAR.fullmatch(text):
        raise ValueError(
            f"{text[:40]!r} is not an ISO-8601 timestamp with a timezone (e.g. {EXAMPLE} or +01:00 offset)"
        )
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise ValueError(f"{text!r} is not a valid date or time ({err})") from None
    check_utc(moment)
    return moment


def check_utc(moment: datetime) -> datetime:
    """Refuse a datetime without a timezone, or one whose UTC equivalent falls outside years 1-9999."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("has no timezone")
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{moment.isoformat()} is outside the years 1-9999 once converted to UTC") from None
    return moment


def check_text(value: object) -> datetime:
    """Pydantic's before-validator: a string must follow the grammar; a datetime must convert to UTC."""
    if isinstance(value, str):
        return parse(value)
    if isinstance(value, datetime):
        return check_utc(value)
    raise ValueError(f"must be an ISO-8601 string with a timezone (e.g. {EXAMPLE})")
