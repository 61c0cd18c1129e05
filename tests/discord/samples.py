"""Outbox notifications as the core writes them, one factory per kind."""

from __future__ import annotations

from typing import Any

from integrator.outbox import Notification

SHA = "0123456789abcdef0123456789abcdef01234567"
SHA2 = "fedcba9876543210fedcba9876543210fedcba98"
MAIN = "1111111111aaaaaaaaaa2222222222bbbbbbbbbb"
BASE = "3333333333cccccccccc4444444444dddddddddd"
AT = "2024-05-01T12:00:00.123456+00:00"
AT_UNIX = 1714564800


def notification(kind: str, payload: dict[str, Any], nid: int = 42) -> dict[str, Any]:
    return {"id": nid, "kind": kind, "payload": payload, "created_at": AT}


def ready(position: int = 2, nid: int = 42) -> dict[str, Any]:
    return notification(
        "candidate_ready",
        {"slug": "feat-a", "branch": "feat/a", "sha": SHA, "position": position, "ready_at": AT},
        nid,
    )


def superseded(nid: int = 42) -> dict[str, Any]:
    return notification(
        "candidate_superseded", {"slug": "feat-a", "branch": "feat/a", "sha": SHA, "superseded_by": SHA2}, nid
    )


def completed(already_on_main: bool = False, nid: int = 42) -> dict[str, Any]:
    payload = {
        "slug": "feat-a",
        "branch": "feat/a",
        "sha": SHA,
        "merge_sha": SHA2,
        "main_before": MAIN,
        "main_after": SHA2,
        "duration_ms": 12_345,
        "already_on_main": already_on_main,
        "attempt": 1,
        "main_branch": "main",
    }
    return notification("integration_completed", payload, nid)


HUNK_A = "<<<<<<< main\nvalue = 1\n=======\nvalue = 2\n>>>>>>> feat-a\n"


def blocked(
    reason_code: str = "merge_conflict",
    evidence: dict[str, Any] | None = None,
    *,
    slug: str = "feat-a",
    nid: int = 42,
) -> dict[str, Any]:
    if evidence is None:
        evidence = {
            "conflicted_paths": ["src/app.py", "README.md"],
            "hunks": {"src/app.py": HUNK_A},
            "kinds": {"src/app.py": "content", "README.md": "add/add"},
            "base": BASE,
            "main": MAIN,
            "candidate": SHA,
        }
    payload = {
        "slug": slug,
        "branch": f"feat/{slug}",
        "sha": SHA,
        "reason_code": reason_code,
        "evidence": evidence,
        "next_action": "Merge main into feat/feat-a, resolve src/app.py, push a new sha.",
        "follow_up_slug": f"{slug}-integration-blocked",
        "follow_up_path": f"todos/{slug}-integration-blocked",
        "blocked_at": AT,
        "main_branch": "main",
    }
    return notification("integration_blocked", payload, nid)


def shadow(items: list[dict[str, Any]] | None = None, nid: int = 42) -> dict[str, Any]:
    if items is None:
        items = [
            {
                "slug": "ok-one",
                "sha": SHA,
                "prediction": "would_integrate",
                "tree": SHA2,
                "conflicted_paths": [],
            },
            {
                "slug": "bad-one",
                "sha": SHA2,
                "prediction": "would_block",
                "tree": None,
                "conflicted_paths": ["a.py"],
            },
        ]
    return notification("shadow_predictions", {"items": items}, nid)


def mode_changed(automatic: bool = False, nid: int = 42) -> dict[str, Any]:
    payload = {
        "mode": "shadow" if automatic else "cutover",
        "previous": "cutover" if automatic else "shadow",
        "by": "integrator" if automatic else "alice",
        "reason": "no progress for 1 h" if automatic else "parity 98%",
        "at": AT,
        "automatic": automatic,
    }
    return notification("mode_changed", payload, nid)


def stall(slug: str | None = "feat-a", nid: int = 42) -> dict[str, Any]:
    payload = {"slug": slug, "since": AT, "stalled_for_s": 3_725.5, "queue_length": 3}
    return notification("stall_alarm", payload, nid)


def paused(reason: str | None = "release freeze", nid: int = 42) -> dict[str, Any]:
    return notification("paused", {"by": "alice", "reason": reason, "at": AT}, nid)


def unpaused(nid: int = 42) -> dict[str, Any]:
    return notification("unpaused", {"by": "bob", "reason": None, "at": AT}, nid)


def verify_started(nid: int = 42) -> dict[str, Any]:
    payload = {
        "slug": "feat-a",
        "sha": SHA,
        "base": BASE,
        "ahead": ["feat-b"],
        "merge_sha": SHA2,
        "fencing": 3,
    }
    return notification("verify_started", payload, nid)


def withdrawn(nid: int = 42) -> dict[str, Any]:
    payload = {
        "slug": "feat-a",
        "branch": "feat/a",
        "sha": SHA,
        "by": "alice",
        "reason": "superseded by another approach",
        "was": "queued",
        "at": AT,
    }
    return notification("candidate_withdrawn", payload, nid)


def every_kind() -> list[dict[str, Any]]:
    """One notification of every kind the adapter renders (and both variants where a flag changes it)."""
    return [
        ready(),
        superseded(),
        completed(),
        completed(already_on_main=True),
        blocked(),
        shadow(),
        mode_changed(),
        mode_changed(automatic=True),
        stall(),
        paused(),
        unpaused(),
        verify_started(),
        withdrawn(),
    ]


def note(n: dict[str, Any]) -> Notification:
    """A sample as the outbox reads it back: its kind's model, parsed from the stored JSON object."""
    return Notification.read(n["id"], n["kind"], n["payload"], n["created_at"])
