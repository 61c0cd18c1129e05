"""Issue #16 "Events": one timestamp grammar for flags and JSON, explicit depth/size/number limits, and
every rejected batch named on one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from integrator import limits, timestamps
from integrator.errors import InvalidInput
from integrator.events import make_event, parse_ndjson

SHA = "a" * 40


def finalize(ready_at: object) -> str:
    return json.dumps(
        {
            "type": "finalize_ready",
            "payload": {"slug": "s", "branch": "b", "sha": SHA, "worker": "w", "ready_at": ready_at},
        }
    )


def pushed(pushed_at: object) -> str:
    return json.dumps(
        {"type": "branch_pushed", "payload": {"branch": "b", "sha": SHA, "pushed_at": pushed_at}}
    )


def approved(approved_at: object) -> str:
    payload = {"slug": "s", "sha": SHA, "reviewer": "r", "review_round": 1, "approved_at": approved_at}
    return json.dumps({"type": "review_approved", "payload": payload})


def rejected(text: str) -> str:
    with pytest.raises(InvalidInput) as info:
        parse_ndjson(text)
    message = info.value.message
    assert message.startswith("batch rejected, nothing stored: ") and "\n" not in message
    return message


@pytest.mark.parametrize(
    "stamp",
    [
        "1",
        "1767268800",
        "2026-01-01T00:00:00z",
        "2026-01-01t00:00:00Z",
        "2026-01-01T00:00:00",
        "2026-01-01 00:00:00Z",
        "٢٠٢٦-01-01T00:00:00Z",
        "2026-01-01T00:00:00.1234567Z",
        "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:30:00-01:00",
        "2026-02-30T00:00:00Z",
    ],
)
def test_every_event_type_refuses_the_same_bad_timestamps(stamp: str) -> None:
    for make, field in ((finalize, "ready_at"), (pushed, "pushed_at"), (approved, "approved_at")):
        assert f"line 1: payload.{field}: " in rejected(make(stamp))
    with pytest.raises(ValueError):
        timestamps.parse(stamp)


def test_numbers_are_not_timestamps_in_json() -> None:
    assert "payload.ready_at: must be an ISO-8601 string" in rejected(finalize(1767268800))


@pytest.mark.parametrize(
    ("stamp", "utc"),
    [
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T01:00:00.5+01:00", datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        ("0001-01-01T01:30:00+01:00", datetime(1, 1, 1, 0, 30, tzinfo=UTC)),
        ("9999-12-31T22:30:00-01:00", datetime(9999, 12, 31, 23, 30, tzinfo=UTC)),
    ],
)
def test_good_timestamps_are_read_the_same_by_flags_and_json(stamp: str, utc: datetime) -> None:
    assert timestamps.parse(stamp) == utc
    [event] = parse_ndjson(finalize(stamp))
    assert event.payload.ready_at == utc  # type: ignore[attr-defined]


def test_a_python_datetime_that_overflows_utc_is_refused_not_a_traceback() -> None:
    early = datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(InvalidInput, match=r"payload\.ready_at: .*outside the years 1-9999"):
        make_event(
            "finalize_ready", {"slug": "s", "branch": "b", "sha": SHA, "worker": "w", "ready_at": early}
        )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[" * 1000 + "]" * 1000, f"nested deeper than {limits.MAX_JSON_DEPTH} levels"),
        ("[" * 100_000, f"longer than {limits.MAX_LINE_BYTES} bytes"),
        ('{"type": "branch_pushed", "payload": {"x": ' + "7" * 5000 + "}}", "an integer of 5000 digits"),
        (approved("2026-01-01T00:00:00Z").replace('"review_round": 1', '"review_round": 10000000'),
         "payload.review_round: Input should be less than or equal to 1000000"),
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": -Infinity}', "-Infinity is not a JSON number"),
    ],
)  # fmt: skip
def test_json_limits_are_explicit_and_one_line(line: str, expected: str) -> None:
    assert expected in rejected(line)


def test_a_string_with_bytes_that_are_not_utf8_names_its_field() -> None:
    line = pushed("2026-01-01T00:00:00Z").replace('"branch": "b"', '"branch": "b\\udc80"')
    assert "line 1: payload.branch: " in rejected(line)
    assert "not valid UTF-8" in rejected(line)


def test_a_batch_with_many_bad_lines_says_how_many_more_on_the_same_line() -> None:
    message = rejected("\n".join(["{"] * 30))
    assert message.count("not JSON") == limits.MAX_PROBLEMS_SHOWN
    assert message.endswith(f"(and {30 - limits.MAX_PROBLEMS_SHOWN} more)")


def test_a_batch_has_an_event_count_limit() -> None:
    lines = [
        pushed("2026-01-01T00:00:00Z").replace('"sha": "' + SHA, '"sha": "' + f"{i:040x}")
        for i in range(limits.MAX_BATCH_EVENTS + 1)
    ]
    assert f"more than {limits.MAX_BATCH_EVENTS} events in one batch" in rejected("\n".join(lines))
