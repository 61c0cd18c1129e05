"""The readiness projection against real git: a bare remote, worker clones, real fetches."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

from conftest import push_feature, readiness_events

from integrator import git
from integrator.config import Config
from integrator.events import Event, make_event, utcnow
from integrator.sandbox import Sandbox
from integrator.service import Integrator

ORDER = ("review_approved", "branch_pushed", "finalize_ready")


async def candidate(integ: Integrator, slug: str, sha: str | None = None) -> dict[str, Any]:
    listed = [c.model_dump() for c in (await integ.status()).candidates]
    found = [c for c in listed if c["slug"] == slug and sha in (None, c["sha"])]
    assert len(found) == 1, found
    return found[0]


async def queue_status(integ: Integrator, slug: str, sha: str) -> str | None:
    def read(conn: sqlite3.Connection) -> str | None:
        row = conn.execute(
            "SELECT q.status FROM queue q JOIN candidates c ON c.id = q.candidate_id WHERE c.slug = ? AND c.sha = ?",
            (slug, sha),
        ).fetchone()
        return None if row is None else str(row[0])

    return await integ.store.read(read)


def count_fetches(sandbox: Sandbox, log: Path) -> None:
    """Route the integrator clone's fetches through a logging upload-pack: real git, counted."""
    shim = log.with_suffix(".sh")
    shim.write_text(f'#!/bin/sh\necho fetch >> "{log}"\nexec git-upload-pack "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    git.run_sync(["config", "remote.origin.uploadpack", str(shim)], cwd=sandbox.integrator_repo)
    log.touch()


def fetches(log: Path) -> int:
    return len(log.read_text().splitlines())


async def test_every_order_of_the_three_events_gives_the_same_verdict(
    sandbox: Sandbox, integ: Integrator
) -> None:
    verdicts = set()
    for n, order in enumerate(itertools.permutations(range(3))):
        feature = push_feature(sandbox, f"perm-{n}", {f"perm{n}.txt": "x\n"}, worker="w")
        events = readiness_events(feature.slug, feature.branch, feature.sha)
        seen: set[str] = set()
        for index in order:
            event = events[index]
            report = await integ.emit([event], wait=True)
            assert report.stored == 1 and report.check_error is None
            seen.add(event.type)
            mine = [c.model_dump() for c in report.candidates if c.slug == feature.slug]
            if "finalize_ready" not in seen:
                assert mine == []  # no candidate before its finalize_ready
                continue
            [cand] = mine
            if seen != set(ORDER):
                missing = {"review_approved": "no_approval", "branch_pushed": "no_push"}
                assert cand["status"] == "waiting"
                assert set(cand["reason_codes"]) == {missing[t] for t in set(ORDER) - seen}
                assert all(cand["reasons"])  # each code comes with a human-readable reason
        cand = await candidate(integ, feature.slug)
        queued = await queue_status(integ, feature.slug, feature.sha)
        verdicts.add((cand["status"], tuple(cand["reasons"]), queued))
    assert verdicts == {("ready", (), "queued")}
    # Enqueued in readiness order, each exactly once.
    queue = [item.slug for item in (await integ.status()).queue]
    assert queue == [f"perm-{n}" for n in range(6)]


async def test_one_fetch_per_check_cycle_not_per_event(
    sandbox: Sandbox, integ: Integrator, tmp_path: Path
) -> None:
    log = tmp_path / "fetches.log"
    count_fetches(sandbox, log)
    features = [push_feature(sandbox, f"batch-{n}", {f"b{n}.txt": "x\n"}, worker="w") for n in range(3)]
    batch = [e for f in features for e in readiness_events(f.slug, f.branch, f.sha)]
    report = await integ.emit(batch, wait=True)
    assert report.stored == 9
    assert [c.status for c in report.candidates] == ["ready"] * 3
    assert fetches(log) == 1
    # Nothing waits on git: no fetch at all. A retried batch stores nothing: no fetch either.
    await integ.check()
    again = await integ.emit(batch, wait=True)
    assert again.stored == 0 and again.duplicates == 9
    assert fetches(log) == 1


async def test_moved_branch_waits_for_a_finalize_of_the_new_tip(
    sandbox: Sandbox, config: Config, integ: Integrator
) -> None:
    feature = push_feature(sandbox, "moved", {"m.txt": "1\n"})
    await integ.emit(readiness_events(feature.slug, feature.branch, feature.sha))
    newer = feature.worker.commit({"m.txt": "2\n"}, "moved: more")
    feature.worker.push(feature.branch)
    await integ.check()
    cand = await candidate(integ, "moved")
    assert cand["status"] == "waiting" and cand["reason_codes"] == ["branch_moved"]
    assert f"origin/{feature.branch} is at {newer[:10]}, not {feature.sha[:10]}" in cand["reasons"][0]
    assert await queue_status(integ, "moved", feature.sha) is None
    # Under the "ancestor" policy the same candidate is ready: its sha is still on the branch.
    lenient = Integrator(config.model_copy(update={"branch_policy": "ancestor"}), integ.store)
    await lenient.check()
    assert (await candidate(integ, "moved"))["status"] == "ready"
    assert await queue_status(integ, "moved", feature.sha) == "queued"


async def test_sha_that_is_on_no_remote_branch_is_not_reachable(sandbox: Sandbox, integ: Integrator) -> None:
    feature = push_feature(sandbox, "local", {"l.txt": "1\n"})
    unpushed = feature.worker.commit({"l.txt": "2\n"}, "never pushed")
    invented = "0123456789abcdef" * 2 + "01234567"
    for slug, sha in (("local", unpushed), ("invented", invented)):
        events = readiness_events(slug, feature.branch if slug == "local" else "feature/invented", sha)
        await integ.emit(events)
    await integ.check()
    for slug, sha in (("local", unpushed), ("invented", invented)):
        cand = await candidate(integ, slug)
        assert cand["status"] == "waiting" and cand["reason_codes"] == ["not_reachable"], cand
        assert f"{sha[:10]} is not reachable from any branch on origin" in cand["reasons"][0]


async def test_branch_deleted_but_sha_elsewhere_is_branch_missing(
    sandbox: Sandbox, integ: Integrator
) -> None:
    feature = push_feature(sandbox, "gone", {"g.txt": "1\n"})
    feature.worker.push("copy")  # the sha stays reachable from another branch
    git.run_sync(["push", "--quiet", "origin", "--delete", feature.branch], cwd=feature.worker.path)
    await integ.emit(readiness_events(feature.slug, feature.branch, feature.sha), wait=True)
    cand = await candidate(integ, "gone")
    assert cand["reason_codes"] == ["branch_missing"]
    assert f"branch {feature.branch} does not exist on origin" in cand["reasons"][0]


async def test_sha_already_on_main_is_integrated_not_queued(sandbox: Sandbox, integ: Integrator) -> None:
    main = sandbox.main_sha()
    worker = sandbox.worker("old")
    worker.start("feature/old")
    worker.push("feature/old")
    await integ.emit(readiness_events("old", "feature/old", main), wait=True)
    cand = await candidate(integ, "old")
    assert cand["status"] == "integrated"
    assert cand["reasons"] == [f"{main[:10]} is already on origin/main"]
    assert await queue_status(integ, "old", main) is None


async def test_approval_of_an_older_sha_does_not_carry_over(sandbox: Sandbox, integ: Integrator) -> None:
    feature = push_feature(sandbox, "reapprove", {"r.txt": "1\n"})
    old = feature.sha
    await integ.emit(readiness_events(feature.slug, feature.branch, old)[:1])  # approve old
    new = feature.worker.commit({"r.txt": "2\n"}, "after review")
    feature.worker.push(feature.branch)
    later = readiness_events(feature.slug, feature.branch, new)
    await integ.emit(later[1:], wait=True)  # pushed + finalize for the new sha, no approval of it
    cand = await candidate(integ, "reapprove")
    assert cand["status"] == "waiting" and cand["reason_codes"] == ["approval_for_other_sha"]
    assert f"review_approved is for {old[:10]} (round 1), not for {new[:10]}" in cand["reasons"][0]
    await integ.emit(readiness_events(feature.slug, feature.branch, new, round_=2)[:1], wait=True)
    cand = await candidate(integ, "reapprove")
    assert cand["status"] == "ready" and cand["sha"] == new


def _at(events: list[Event], delta: timedelta) -> list[Event]:
    """The same three events with every timestamp moved by ``delta``."""
    moved = []
    for event in events:
        data = event.payload.model_dump()
        for key in ("approved_at", "pushed_at", "ready_at"):
            if key in data:
                data[key] = data[key] + delta
        moved.append(make_event(event.type, data))
    return moved


async def test_newer_finalize_supersedes_the_queued_older_one(sandbox: Sandbox, integ: Integrator) -> None:
    feature = push_feature(sandbox, "super", {"s.txt": "1\n"})
    old = feature.sha
    await integ.emit(readiness_events(feature.slug, feature.branch, old), wait=True)
    assert await queue_status(integ, "super", old) == "queued"
    new = feature.worker.commit({"s.txt": "2\n"}, "second round")
    feature.worker.push(feature.branch)
    report = await integ.emit(
        _at(readiness_events(feature.slug, feature.branch, new), timedelta(seconds=1)), wait=True
    )
    assert {c.sha: c.status for c in report.candidates} == {old: "superseded", new: "ready"}
    older = await candidate(integ, "super", old)
    assert older["superseded_by"] == new
    assert await queue_status(integ, "super", old) == "superseded"
    assert await queue_status(integ, "super", new) == "queued"
    assert [item.sha for item in (await integ.status()).queue] == [new]

    def trail(conn: sqlite3.Connection) -> dict[str, Any]:
        return {
            "transitions": [
                tuple(r)
                for r in conn.execute(
                    "SELECT t.from_status, t.to_status, t.reason FROM transitions t JOIN queue q ON q.id = t.queue_id"
                    " JOIN candidates c ON c.id = q.candidate_id WHERE c.sha = ? ORDER BY t.id",
                    (old,),
                )
            ],
            "events": [
                json.loads(r[0]) for r in conn.execute("SELECT payload FROM events WHERE type = 'superseded'")
            ],
            "outbox": [
                json.loads(r[0])
                for r in conn.execute("SELECT payload FROM outbox WHERE kind = 'candidate_superseded'")
            ],
        }

    got = await integ.store.read(trail)
    assert got["transitions"] == [
        (None, "queued", "ready: all readiness conditions hold"),
        ("queued", "superseded", f"superseded by {new[:10]}"),
    ]
    [event] = got["events"]
    assert (event["slug"], event["branch"], event["sha"], event["superseded_by"]) == (
        "super",
        feature.branch,
        old,
        new,
    )
    assert got["outbox"] == [{"slug": "super", "branch": feature.branch, "sha": old, "superseded_by": new}]
    outcomes = (await integ.status()).recent_outcomes
    assert [(o["type"], o["sha"]) for o in outcomes] == [("superseded", old)]


async def test_a_late_finalize_of_an_older_ready_at_is_superseded_on_arrival(
    sandbox: Sandbox, integ: Integrator
) -> None:
    feature = push_feature(sandbox, "late", {"late.txt": "1\n"})
    first = feature.sha
    second = feature.worker.commit({"late.txt": "2\n"}, "second")
    feature.worker.push(feature.branch)
    await integ.emit(readiness_events(feature.slug, feature.branch, second), wait=True)
    # The finalize of the first sha was declared earlier but arrives now: it never displaces the newer.
    report = await integ.emit(
        _at(readiness_events(feature.slug, feature.branch, first), timedelta(seconds=-5)), wait=True
    )
    assert {c.sha: c.status for c in report.candidates} == {first: "superseded", second: "ready"}
    assert (await candidate(integ, "late", first))["superseded_by"] == second
    assert await queue_status(integ, "late", first) is None
    assert await queue_status(integ, "late", second) == "queued"


async def test_fetch_failure_is_a_reason_and_the_next_cycle_recovers(
    sandbox: Sandbox, integ: Integrator
) -> None:
    feature = push_feature(sandbox, "outage", {"o.txt": "1\n"})
    hidden = sandbox.remote.with_name("remote-away.git")
    os.rename(sandbox.remote, hidden)
    try:
        report = await integ.emit(readiness_events(feature.slug, feature.branch, feature.sha), wait=True)
        assert report.stored == 3 and report.check_error is not None
        cand = await candidate(integ, "outage")
        assert cand["status"] == "waiting" and cand["reason_codes"] == ["fetch_failed"]
        assert "will retry" in cand["reasons"][0]
    finally:
        os.rename(hidden, sandbox.remote)
    await integ.check()
    assert (await candidate(integ, "outage"))["status"] == "ready"


async def test_branch_pushed_on_another_remote_does_not_count(sandbox: Sandbox, integ: Integrator) -> None:
    feature = push_feature(sandbox, "elsewhere", {"e.txt": "1\n"})
    approve, _pushed, finalize = readiness_events(feature.slug, feature.branch, feature.sha)
    other = make_event(
        "branch_pushed",
        {"branch": feature.branch, "sha": feature.sha, "remote": "fork", "pushed_at": utcnow()},
    )
    await integ.emit([approve, other, finalize], wait=True)
    cand = await candidate(integ, "elsewhere")
    assert cand["reason_codes"] == ["no_push"]
    assert f"no branch_pushed for {feature.branch} at {feature.sha[:10]} on origin" in cand["reasons"][0]


async def _history(integ: Integrator, slugs: range, rounds: int) -> None:
    """Candidates for many slugs, each with superseded older rounds (no git needed: check=False)."""
    batch = []
    for r in range(rounds):
        for n in slugs:
            sha = f"{n:020x}{r:020x}"
            events = readiness_events(f"hist-{n}", f"feature/hist-{n}", sha, round_=r + 1)
            batch += _at(events, timedelta(seconds=r))
    await integ.emit(batch)


async def _vm_steps(integ: Integrator, events: list[Event]) -> int:
    """SQLite virtual-machine steps an emit costs: a deterministic measure of the work it does."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    await integ.store.read(lambda c: c.set_progress_handler(count, 10))
    try:
        await integ.emit(events)
    finally:
        await integ.store.read(lambda c: c.set_progress_handler(None, 10))
    return steps[0]


async def test_an_emit_costs_the_same_with_a_long_history(integ: Integrator) -> None:
    # Each event type for a new slug, measured on a small database and again after ten times the
    # candidates and rounds of superseded history: the cost must stay flat, not follow the history.
    def probe(tag: str) -> list[list[Event]]:
        sha = "e" * 40
        return [[e] for e in readiness_events(f"probe-{tag}", f"feature/probe-{tag}", sha)]

    await _history(integ, range(30), rounds=2)
    small = [await _vm_steps(integ, batch) for batch in probe("small")]
    await _history(integ, range(30, 330), rounds=4)
    large = [await _vm_steps(integ, batch) for batch in probe("large")]
    for before, after in zip(small, large, strict=True):
        assert after < before * 1.5 + 50, (small, large)


async def test_the_check_cycle_stamps_its_verdicts_with_the_injected_clock(
    sandbox: Sandbox, config: Config, integ: Integrator
) -> None:
    feature = push_feature(sandbox, "clocked", {"c.txt": "1\n"})
    later = utcnow() + timedelta(days=3)
    clocked = Integrator(config, integ.store, clock=lambda: later)
    await clocked.emit(readiness_events(feature.slug, feature.branch, feature.sha))
    await clocked.check()

    def stamps(conn: sqlite3.Connection) -> tuple[str, str]:
        row = conn.execute("SELECT status, updated_at FROM candidates WHERE slug = 'clocked'").fetchone()
        return str(row[0]), str(row[1])

    status, updated_at = await integ.store.read(stamps)
    assert status == "ready"
    assert updated_at.startswith(later.strftime("%Y-%m-%dT%H:%M"))  # not the wall clock, three days earlier
