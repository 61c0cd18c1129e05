"""Malformed input for the real ``integrator`` command line, shared by the suite's hypothesis test
(tests/integration/test_fuzz_cli.py) and the long run (bench/fuzz.py).

A case is an argv and the bytes on stdin. :func:`run` calls the installed entry point
(``integrator.cli.main``) in this process, so thousands of cases fit in minutes; any exception other
than ``SystemExit`` is a traceback the user would have seen.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import sqlite3
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHA = "c" * 40
GOOD_TS = "2026-01-01T12:00:00Z"

# Values a careless or hostile caller may put anywhere.
NASTY: list[Any] = [
    "", " ", "-x", "--upload-pack=touch /tmp/x", "../../etc", "a" * 5000, "\x00", "\u202e", "٣", "³",
    "1", "1767268800", "2026-01-01T00:00:00z", "2026-01-01T00:00:00", "0001-01-01T00:30:00+01:00",
    "9999-12-31T23:30:00-01:00", "2026-13-01T00:00:00Z", "NaN", "Infinity", "null", "true", "0", "-1",
    "9" * 30, "Bad_Slug", "feature/ok", "refs/heads/main", "HEAD", "a..b", "a.lock", "@{u}", "x y",
    "\udcff", "é", "🙂", "\n", "\r\n", "line\nbreak", 0, -1, 1, 2**63, 10**30, 1.5, float("1e308"), True,
    None, [], {}, [[[]]], {"a": {"b": {}}},
]  # fmt: skip

FLAGS = {
    "review_approved": ["--slug", "--sha", "--reviewer", "--round", "--at"],
    "finalize_ready": ["--slug", "--branch", "--sha", "--worker", "--at"],
    "branch_pushed": ["--branch", "--sha", "--remote", "--pusher", "--at"],
}
GOOD_FLAG = {
    "--slug": "fuzz",
    "--sha": SHA,
    "--reviewer": "r",
    "--round": "1",
    "--at": GOOD_TS,
    "--branch": "feature/fuzz",
    "--worker": "w",
    "--remote": "origin",
    "--pusher": "p",
}
GOOD_PAYLOAD = {
    "review_approved": {
        "slug": "fuzz",
        "sha": SHA,
        "reviewer": "r",
        "review_round": 1,
        "approved_at": GOOD_TS,
    },
    "finalize_ready": {
        "slug": "fuzz",
        "branch": "feature/fuzz",
        "sha": SHA,
        "worker": "w",
        "ready_at": GOOD_TS,
    },
    "branch_pushed": {"branch": "feature/fuzz", "sha": SHA, "remote": "origin", "pushed_at": GOOD_TS},
}


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    stdin: bytes = b""


@dataclass(frozen=True)
class Outcome:
    status: int
    stderr: str
    traceback: str | None


def _as_arg(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def flag_case(rng: random.Random) -> Case:
    kind = rng.choice(list(FLAGS))
    args = [GOOD_FLAG[f] for f in FLAGS[kind]]
    flags = FLAGS[kind]
    for _ in range(rng.randint(1, 3)):
        args[rng.randrange(len(args))] = _as_arg(rng.choice(NASTY))
    argv = ["emit", kind]
    for flag, value in zip(flags, args, strict=True):
        if rng.random() < 0.05:
            continue  # a required flag left out
        argv += [flag, value] if rng.random() < 0.9 else [f"{flag}={value}"]
    return Case(tuple(argv))


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def json_case(rng: random.Random) -> Case:
    lines: list[bytes] = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice([*GOOD_PAYLOAD, "integration_completed", "nope"])
        payload: Any = dict(GOOD_PAYLOAD.get(kind, GOOD_PAYLOAD["branch_pushed"]))
        for _ in range(rng.randint(0, 3)):
            key = rng.choice([*payload, "extra"])
            payload[key] = rng.choice(NASTY)
        if rng.random() < 0.1:
            payload.pop(rng.choice(list(payload)), None)
        envelope: Any = {"type": kind, "payload": payload}
        if rng.random() < 0.05:
            envelope = rng.choice(NASTY)
        text = json.dumps(envelope, allow_nan=True, ensure_ascii=rng.random() < 0.5)
        shape = rng.random()
        if shape < 0.05:
            text = _deep(rng.choice([20, 1000, 5000]))
        elif shape < 0.08:
            text = text.replace('"', "", 1)  # not JSON
        elif shape < 0.11:
            text = text[: rng.randrange(1, max(2, len(text)))]
        raw = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.05:
            raw += rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80"])
        lines.append(raw)
    return Case(("emit", "--json", "-"), b"\n".join(lines) + b"\n")


def other_case(rng: random.Random) -> Case:
    value = _as_arg(rng.choice(NASTY))
    argv = rng.choice(
        [
            ["resume", value],
            ["pause", "--reason", value],
            ["events", "--limit", value],
            ["history", "--limit", value],
            ["rollback", "--reason", value],
            ["emit", "--json", value],
        ]
    )
    return Case(tuple(argv))


def random_case(rng: random.Random) -> Case:
    pick = rng.random()
    if pick < 0.45:
        return flag_case(rng)
    if pick < 0.9:
        return json_case(rng)
    return other_case(rng)


def run(config_path: Path, case: Case) -> Outcome:
    """``integrator --config PATH <argv>`` through its entry point, in this process."""
    from integrator.cli import main

    err = io.StringIO()
    stdin = io.TextIOWrapper(io.BytesIO(case.stdin), encoding="utf-8")
    saved = sys.argv, sys.stdin
    sys.argv = ["integrator", "--config", str(config_path), *case.argv]
    sys.stdin = stdin
    status = 0
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        return Outcome(-1, err.getvalue(), traceback.format_exc())
    finally:
        sys.argv, sys.stdin = saved
    text = err.getvalue()
    return Outcome(status, text, text if "Traceback" in text else None)


def event_rows(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()
