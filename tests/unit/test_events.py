"""Event models: strict validation, the idempotency key, and the supersession order.

Validation is checked against real inputs and, for branch names, against git itself
(``git check-ref-format --branch``). The supersession order is checked through the real projection
on a real SQLite file, since that is where the order is decided.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrator import journal, readiness
from integrator.errors import DuplicateConflict, InvalidInput
from integrator.events import (
    IDENTITY_FIELDS,
    PAYLOADS,
    Event,
    check_branch_name,
    idempotency_key,
    iso,
    make_event,
    parse_ndjson,
    parse_wire,
)
from integrator.store import Store

SHA = "a" * 40
SHA2 = "b" * 40
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def approved(**over: Any) -> dict[str, Any]:
    return {"slug": "feat-a", "sha": SHA, "reviewer": "rev", "review_round": 1, "approved_at": T0, **over}


def finalize(**over: Any) -> dict[str, Any]:
    return {"slug": "feat-a", "branch": "feature/a", "sha": SHA, "worker": "w1", "ready_at": T0, **over}


def pushed(**over: Any) -> dict[str, Any]:
    return {"branch": "feature/a", "sha": SHA, "remote": "origin", "pushed_at": T0, **over}


def invalid(event_type: str, payload: Any) -> str:
    with pytest.raises(InvalidInput) as info:
        make_event(event_type, payload)
    return info.value.message


# --- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sha",
    ["a" * 39, "a" * 41, "A" * 40, "g" * 40, " " + "a" * 39, "a" * 40 + "\n", "", "HEAD", "main"],
)
def test_sha_must_be_40_lowercase_hex(sha: str) -> None:
    assert "payload.sha: must be 40 lowercase hex characters" in invalid("review_approved", approved(sha=sha))


@pytest.mark.parametrize(
    ("branch", "why"),
    [
        ("-x", "must not start with '-'"),
        ("--upload-pack=x", "must not start with '-'"),
        ("--exec=touch /tmp/pwned", "must not start with '-'"),
        ("a..b", "must not contain '..'"),
        ("feature/../main", "must not contain '..'"),
        ("a b", "spaces"),
        ("a~1", "spaces"),
        ("a^", "spaces"),
        ("a:b", "spaces"),
        ("a?", "spaces"),
        ("a*", "spaces"),
        ("a[", "spaces"),
        ("a\\b", "spaces"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("a@{1}", "'@{'"),
        ("@", "'@{'"),
        ("/a", "'/'"),
        ("a/", "'/'"),
        ("a//b", "'//'"),
        ("a.", "must not end with '.'"),
        (".hidden", "start with '.'"),
        ("x/.hidden", "start with '.'"),
        ("a.lock", ".lock"),
        ("x/a.lock/y", ".lock"),
        ("HEAD", "plain branch name"),
        ("refs/heads/main", "plain branch name"),
        ("", "must not be empty"),
    ],
)
def test_hostile_or_malformed_branch_names_are_refused(branch: str, why: str) -> None:
    message = invalid("finalize_ready", finalize(branch=branch))
    assert message.startswith("payload.branch: ")
    assert why in message


@pytest.mark.parametrize("branch", ["main", "feature/a", "fix-1.2", "user/ünïcode", "a-", "a@b", "x.y/z"])
def test_ordinary_branch_names_pass(branch: str) -> None:
    event = make_event("finalize_ready", finalize(branch=branch))
    assert event.payload.branch == branch  # type: ignore[attr-defined]


def test_review_round_must_be_an_int_of_at_least_one_and_never_a_bool() -> None:
    for bad in (True, False, 0, -1, 1.0, "1", None):
        message = invalid("review_approved", approved(review_round=bad))
        assert message.startswith("payload.review_round: "), (bad, message)
    assert make_event("review_approved", approved(review_round=3)).payload.review_round == 3  # type: ignore[attr-defined]


def test_naive_timestamps_are_refused_in_every_type() -> None:
    naive = datetime(2026, 1, 1, 12, 0, 0)
    assert (
        "payload.approved_at: '2026-01-01T12:00:00' is not an ISO-8601 timestamp with a timezone"
        in invalid("review_approved", approved(approved_at=naive))
    )
    assert "payload.ready_at:" in invalid("finalize_ready", finalize(ready_at="2026-01-01T12:00:00"))
    assert "payload.pushed_at:" in invalid("branch_pushed", pushed(pushed_at="2026-01-01T12:00:00.5"))


def test_timestamps_keep_microseconds_and_any_offset() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = make_event("finalize_ready", finalize(ready_at="2026-03-01T14:00:00.000001+02:00"))
    ready_at = event.payload.ready_at  # type: ignore[attr-defined]
    assert ready_at == datetime(2026, 3, 1, 14, 0, 0, 1, tzinfo=plus_two)
    # The stored, sortable form is UTC with microseconds always written out.
    assert iso(ready_at) == "2026-03-01T12:00:00.000001+00:00"
    assert iso(datetime(2026, 3, 1, 12, tzinfo=UTC)) == "2026-03-01T12:00:00.000000+00:00"


def test_unknown_and_missing_fields_are_all_named_in_one_message() -> None:
    payload = {"slug": "Bad Slug", "sha": "xyz", "review_round": True, "extra": 1, "approved_at": "noon"}
    message = invalid("review_approved", payload)
    for field in ("slug", "sha", "reviewer", "review_round", "approved_at", "extra"):
        assert f"payload.{field}:" in message, (field, message)
    assert "payload.reviewer: Field required" in message
    assert "payload.extra: Extra inputs are not permitted" in message


def test_unknown_type_is_refused_with_the_known_ones_listed() -> None:
    message = invalid("merged", {})
    assert message.startswith("type: unknown event type 'merged'")
    assert "review_approved" in message


@pytest.mark.parametrize("slug", ["", "A", "-a", "a_b", "a b", "a" * 65, "é"])
def test_slug_rules(slug: str) -> None:
    assert "payload.slug:" in invalid("finalize_ready", finalize(slug=slug))


def test_remote_follows_the_same_rules_as_a_branch_name() -> None:
    # The remote name of a branch_pushed event is compared with the configured remote, which must
    # pass check_branch_name; an option-looking remote can never match and is refused up front.
    assert "payload.remote: must not start with '-'" in invalid(
        "branch_pushed", pushed(remote="--upload-pack=x")
    )
    assert make_event("branch_pushed", pushed(remote="upstream")).payload.remote == "upstream"  # type: ignore[attr-defined]


def test_values_that_are_not_json_are_invalid_input_not_a_crash() -> None:
    for bad in (b"bytes", {1, 2}, object(), math.nan, math.inf):
        message = invalid("finalize_ready", finalize(worker=bad))
        assert message.startswith("payload"), (bad, message)
    message = invalid("finalize_ready", "not a mapping")
    assert message.startswith("payload")
    # An optional field is not silently dropped, and the other bad fields are still named.
    message = invalid("branch_pushed", pushed(pusher=b"bob", sha="nope"))
    assert "payload.pusher: not representable as JSON" in message
    assert "payload.sha: must be 40 lowercase hex characters" in message


# --- the wire format --------------------------------------------------------------------------------


def wire(event_type: str, payload: dict[str, Any]) -> str:
    return json.dumps({"type": event_type, "payload": payload}, default=str, ensure_ascii=False)


def test_ndjson_batch_names_every_bad_line_and_accepts_nothing() -> None:
    lines = [
        wire("review_approved", approved(approved_at=T0.isoformat())),
        "{not json",
        wire("review_approved", approved(review_round=True, approved_at=T0.isoformat())),
        "",
        json.dumps({"type": "finalize_ready", "payload": {}, "extra": 1}),
        wire("integration_completed", {}),
        json.dumps([1, 2]),
    ]
    with pytest.raises(InvalidInput) as info:
        parse_ndjson("\n".join(lines))
    message = info.value.message
    assert message.startswith("batch rejected, nothing stored:")
    assert "\n" not in message
    assert re.findall(r"line \d+(?=: )", message) == ["line 2", "line 3", "line 5", "line 6", "line 7"]
    assert "line 3: payload.review_round:" in message
    assert "line 5: extra: Extra inputs are not permitted" in message
    assert "line 6: type: integration_completed is recorded by the integrator itself" in message


def test_ndjson_lines_are_split_on_newlines_only() -> None:
    # JSON strings may hold U+2028 and friends unescaped; str.splitlines() would cut the line there.
    reviewer = "ann\u2028bob\x1c\x85"
    text = wire("review_approved", approved(reviewer=reviewer, approved_at=T0.isoformat())) + "\r\n"
    [event] = parse_ndjson(text)
    assert event.payload.reviewer == reviewer  # type: ignore[attr-defined]


def test_wire_timestamps_from_json_and_python_agree() -> None:
    from_python = make_event("review_approved", approved())
    from_json = parse_wire(json.loads(wire("review_approved", approved(approved_at=T0.isoformat()))))
    assert from_json.payload == from_python.payload
    assert from_json.idempotency_key == from_python.idempotency_key


# --- idempotency ------------------------------------------------------------------------------------


def test_idempotency_key_ignores_timestamps_and_envelope() -> None:
    a = make_event("finalize_ready", finalize(), received_at=T0)
    b = make_event(
        "finalize_ready", finalize(ready_at=T0 + timedelta(seconds=30)), received_at=T0 + timedelta(1)
    )
    assert a.event_id != b.event_id
    assert a.idempotency_key == b.idempotency_key


@pytest.mark.parametrize(
    ("event_type", "base", "field", "other"),
    [
        ("review_approved", approved, "slug", "feat-b"),
        ("review_approved", approved, "sha", SHA2),
        ("review_approved", approved, "reviewer", "someone-else"),
        ("review_approved", approved, "review_round", 2),
        ("finalize_ready", finalize, "slug", "feat-b"),
        ("finalize_ready", finalize, "branch", "feature/b"),
        ("finalize_ready", finalize, "sha", SHA2),
        ("branch_pushed", pushed, "branch", "feature/b"),
        ("branch_pushed", pushed, "sha", SHA2),
        ("branch_pushed", pushed, "remote", "upstream"),
    ],
)
def test_idempotency_key_changes_with_each_identity_field(
    event_type: str, base: Any, field: str, other: Any
) -> None:
    assert field in IDENTITY_FIELDS[event_type]
    one = make_event(event_type, base())
    two = make_event(event_type, base(**{field: other}))
    assert one.idempotency_key != two.idempotency_key


def test_same_identity_in_another_type_is_another_key() -> None:
    a = make_event("finalize_ready", finalize())
    payload = a.payload
    assert idempotency_key("finalize_ready", payload) == a.idempotency_key
    assert idempotency_key("superseded", payload) != a.idempotency_key


async def test_journal_stores_once_and_refuses_same_key_other_content(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "events.db")
    try:
        first = make_event("finalize_ready", finalize(worker="w1"))
        retry = make_event("finalize_ready", finalize(worker="w1", ready_at=T0 + timedelta(seconds=9)))
        other = make_event("finalize_ready", finalize(worker="w2"))
        assert (await store.write(lambda c: journal.append(c, first))).outcome == "stored"
        again = await store.write(lambda c: journal.append(c, retry))
        assert again.outcome == "duplicate"
        with pytest.raises(DuplicateConflict, match="same identity but different content"):
            await store.write(lambda c: journal.append(c, other))
        stored = await store.read(lambda c: journal.recent(c, 10))
        assert [e.event_id for e in stored] == [first.event_id]
        assert stored[0].payload["ready_at"].startswith("2026-03-01T12:00:00.123456")
    finally:
        await store.close()


# --- supersession order -----------------------------------------------------------------------------


async def _newest_after(tmp_path: Path, events: list[Event]) -> str:
    """Apply finalize events through the real projection; return the sha of the one left live."""
    store = await Store.open(tmp_path / "order.db")
    try:
        for event in events:

            def step(conn: Any, event: Event = event) -> None:
                if journal.append(conn, event).outcome == "stored":
                    readiness.apply(conn, event, remote="origin", now=iso(T0))

            await store.write(step)
        live = await store.read(lambda c: [x for x in readiness.listing(c) if x.status != "superseded"])
        superseded = await store.read(lambda c: [x for x in readiness.listing(c) if x.status == "superseded"])
        assert len(live) == 1, live
        assert all(x.superseded_by == live[0].sha for x in superseded)
        return live[0].sha
    finally:
        await store.close()


def _finalize(sha: str, ready_at: datetime, received_at: datetime, event_id: str) -> Event:
    return make_event(
        "finalize_ready",
        finalize(sha=sha, ready_at=ready_at),
        received_at=received_at,
        event_id=event_id,
    )


@pytest.mark.parametrize("reverse", [False, True])
async def test_newest_ready_at_wins_whatever_the_arrival_order(tmp_path: Path, reverse: bool) -> None:
    older = _finalize(SHA, T0, T0 + timedelta(seconds=5), "ffff")
    newer = _finalize(SHA2, T0 + timedelta(microseconds=1), T0, "0000")
    events = [newer, older] if reverse else [older, newer]
    assert await _newest_after(tmp_path, events) == SHA2


async def test_ready_at_compares_as_time_not_as_text_across_offsets(tmp_path: Path) -> None:
    # 13:00+02:00 is 11:00 UTC: earlier than 12:00 UTC although its text sorts later.
    east = timezone(timedelta(hours=2))
    shifted = _finalize(SHA, datetime(2026, 3, 1, 13, 0, tzinfo=east), T0, "ffff")
    utc = _finalize(SHA2, datetime(2026, 3, 1, 12, 0, tzinfo=UTC), T0, "0000")
    assert await _newest_after(tmp_path, [utc, shifted]) == SHA2


@pytest.mark.parametrize("reverse", [False, True])
async def test_same_ready_at_later_received_wins(tmp_path: Path, reverse: bool) -> None:
    first = _finalize(SHA, T0, T0 + timedelta(microseconds=1), "ffff")
    second = _finalize(SHA2, T0, T0 + timedelta(microseconds=2), "0000")
    events = [second, first] if reverse else [first, second]
    assert await _newest_after(tmp_path, events) == SHA2


@pytest.mark.parametrize("reverse", [False, True])
async def test_same_ready_at_and_received_at_greater_event_id_wins(tmp_path: Path, reverse: bool) -> None:
    low = _finalize(SHA, T0, T0, "00000000-0000-4000-8000-000000000001")
    high = _finalize(SHA2, T0, T0, "00000000-0000-4000-8000-000000000002")
    events = [high, low] if reverse else [low, high]
    assert await _newest_after(tmp_path, events) == SHA2


# --- fuzz: anything at all is either an event or InvalidInput ---------------------------------------

_FIELDS = sorted({f for model in PAYLOADS.values() for f in model.model_fields} | {"extra", ""})
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.sampled_from([SHA, "A" * 40, "feature/x", "-x", "--upload-pack=x", "a..b", "feat-a", "origin"]),
    st.sampled_from(["2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z", "now"]),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.binary(max_size=8),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _payloads() -> st.SearchStrategy[Any]:
    valid_ish = st.fixed_dictionaries(
        {},
        optional={name: _values for name in _FIELDS},
    )
    return st.one_of(valid_ish, _values)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_type=st.sampled_from([*PAYLOADS, "bogus", ""]), payload=_payloads())
def test_fuzz_make_event_raises_only_invalid_input(event_type: str, payload: Any) -> None:
    try:
        event = make_event(event_type, payload)
    except InvalidInput as err:
        assert err.message  # one message, never empty
        return
    # Whatever passed is well formed: a sha, a clean branch, an aware time, a stable key.
    data = event.payload.model_dump(mode="json")
    for key in ("sha", "merge_sha", "main_before", "main_after", "superseded_by"):
        if key in data:
            assert len(data[key]) == 40 and set(data[key]) <= set("0123456789abcdef")
    if "branch" in data:
        check_branch_name(data["branch"])
    assert event.idempotency_key == make_event(event_type, data).idempotency_key


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.text(max_size=80), _values.map(lambda v: json.dumps(v, default=str))), max_size=5)
)
def test_fuzz_ndjson_raises_only_invalid_input(lines: list[str]) -> None:
    try:
        parse_ndjson("\n".join(lines))
    except InvalidInput as err:
        assert err.message.startswith("batch rejected")


_ref_chars = st.sampled_from([*"ab-_./@{}~^:?*[\\ \t\x7fé0", "lock", "..", "HEAD", "refs/"])


@settings(max_examples=150, deadline=None)
@given(st.lists(_ref_chars, min_size=1, max_size=8).map("".join))
def test_fuzz_branch_names_we_accept_git_accepts(name: str) -> None:
    try:
        check_branch_name(name)
    except ValueError:
        return
    res = subprocess.run(
        ["git", "check-ref-format", "--branch", name], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, (name, res.stderr)
    assert res.stdout.strip() == name
