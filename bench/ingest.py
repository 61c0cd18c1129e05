"""Event ingestion: what the integrator's store and projection cost over plain SQLite inserts.

Same machine, same run, three fresh databases with the same durability settings (WAL,
synchronous=FULL):

- API: ``Integrator.emit([event])``, one event per call, so one transaction per event
  holding the event row, the readiness projection, supersessions, queue transitions and outbox rows;
- CLI: one ``integrator emit --json -`` process fed all events as one NDJSON batch (one atomic
  transaction), including process start, parsing, validation and the one git check cycle it runs;
- floor: the same event rows inserted with plain ``sqlite3`` into the same ``events`` table
  (unique idempotency key, same indexes), one transaction per event;
- same-rows floor: every row the API writes for an event (the event, the candidate of a
  ``finalize_ready``, the older candidate it supersedes with its ``superseded`` event and outbox
  row) with plain ``sqlite3`` into the store's full schema, one transaction per event. Its row
  counts are checked against the API's database (``same_rows_match``). ``ratio_same_rows`` = API /
  this floor. API and floors take turns, 250 events at a time, so a disk whose fsync latency drifts
  during the run weighs on all alike.

The events are a realistic mix for a few hundred slugs on a real sandbox repository (bare remote,
one feature branch per slug, one commit per round): per round a ``branch_pushed``, a
``review_approved`` and a ``finalize_ready``, so each slug's older rounds are superseded. Events are
validated before the clock starts (reported apart as ``validate_events_per_s``).
``status_s`` is the wall time of ``integrator status --json`` on the API database (median of 5),
``status_queue_s`` the same on the CLI database, where the git check has queued every slug;
``status_cpu_s`` its CPU time (user + sys), which a busy machine inflates far less than wall time,
and ``load_avg_1m`` says how busy the machine was.

    .venv/bin/python bench/ingest.py [--events 10000] [--slugs 300]

The last line printed is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import _common

from integrator import git
from integrator.config import Config
from integrator.events import Event, iso, make_event
from integrator.sandbox import Sandbox
from integrator.service import Integrator
from integrator.store import MIGRATIONS

INTEGRATOR, T0 = _common.INTEGRATOR, _common.T0
AIM_RATIO = 0.3
AIM_RATIO_SAME_ROWS = 0.6
AIM_STATUS_S = 0.3
CHUNK = 250


def build_branches(sandbox: Sandbox, slugs: int, rounds: int) -> dict[str, list[str]]:
    """One branch per slug with ``rounds`` commits on it, made by one ``git fast-import`` and one push."""
    worker = sandbox.worker("bench")
    main = sandbox.main_sha()
    stream: list[str] = []
    mark = 0
    marks: dict[str, list[int]] = {}
    for s in range(slugs):
        slug = f"slug-{s:04d}"
        marks[slug] = []
        for r in range(rounds):
            mark += 1
            content = f"{slug} round {r}\n"
            message = f"{slug}: round {r}\n"
            stream += [
                f"commit refs/heads/feature/{slug}",
                f"mark :{mark}",
                f"committer Bench <bench@example.invalid> {1_772_000_000 + mark} +0000",
                f"data {len(message)}",
                message,
                f"from {main}" if r == 0 else f"from :{mark - 1}",
                f"M 100644 inline {slug}.txt",
                f"data {len(content)}",
                content,
            ]
            marks[slug].append(mark)
    marks_file = sandbox.root / "marks"
    git.run_sync(
        ["fast-import", "--quiet", f"--export-marks={marks_file}"],
        cwd=worker.path,
        input_text="\n".join(stream) + "\n",
        timeout=300,
    )
    by_mark = dict(line.split() for line in marks_file.read_text().splitlines())
    git.run_sync(
        ["push", "--quiet", "origin", "refs/heads/feature/*:refs/heads/feature/*"],
        cwd=worker.path,
        timeout=300,
    )
    return {slug: [by_mark[f":{m}"] for m in ms] for slug, ms in marks.items()}


def build_events(shas: dict[str, list[str]], count: int) -> list[Event]:
    """Round by round across all slugs: pushed, approved, finalize; stop at ``count`` events."""
    events: list[Event] = []
    rounds = max(len(v) for v in shas.values())
    tick = 0
    for r in range(rounds):
        for slug, chain in shas.items():
            sha, branch = chain[r], f"feature/{slug}"
            for kind in ("branch_pushed", "review_approved", "finalize_ready"):
                if len(events) == count:
                    return events
                tick += 1
                at = T0 + timedelta(milliseconds=tick)
                if kind == "branch_pushed":
                    payload: dict[str, Any] = {
                        "branch": branch,
                        "sha": sha,
                        "remote": "origin",
                        "pushed_at": at,
                    }
                    payload["pusher"] = f"worker-{slug[-1]}"
                elif kind == "review_approved":
                    payload = {
                        "slug": slug,
                        "sha": sha,
                        "reviewer": "rev",
                        "review_round": r + 1,
                        "approved_at": at,
                    }
                else:
                    payload = {"slug": slug, "branch": branch, "sha": sha, "worker": "w", "ready_at": at}
                events.append(make_event(kind, payload, received_at=at))
    return events


def config_for(root: Path, sandbox: Sandbox, name: str) -> Config:
    return _common.bench_config(root, sandbox.integrator_repo, name, mode="shadow")


async def ingest_api_and_floor(cfg: Config, floor: Path, same: Path, events: list[Event]) -> dict[str, Any]:
    """API and both floors take turns, CHUNK events at a time, so all see the same disk weather;
    then one git check cycle on the API database, timed apart."""
    rows = floor_rows(events)
    steps = same_rows(events)
    conn = floor_database(floor)
    same_conn = same_rows_database(same)
    api_s = floor_s = same_s = 0.0
    async with await Integrator.open(cfg) as integ:
        for first in range(0, len(events), CHUNK):
            start = time.perf_counter()
            for event in events[first : first + CHUNK]:
                await integ.emit([event])
            api_s += time.perf_counter() - start
            start = time.perf_counter()
            insert_floor(conn, rows[first : first + CHUNK])
            floor_s += time.perf_counter() - start
            start = time.perf_counter()
            write_same_rows(same_conn, steps[first : first + CHUNK])
            same_s += time.perf_counter() - start
        conn.close()
        counts = await integ.store.read(table_counts)
        match = table_counts(same_conn) == counts
        same_conn.close()
        waiting = await integ.store.read(
            lambda c: c.execute("SELECT COUNT(*) FROM candidates WHERE status = 'waiting'").fetchone()[0]
        )
        start = time.perf_counter()
        await integ.check()
        check_s = time.perf_counter() - start
    return {
        "api_s": api_s,
        "floor_s": floor_s,
        "same_s": same_s,
        "same_rows_match": match,
        "rows": counts,
        "check_s": check_s,
        "waiting": int(waiting),
    }


def table_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("events", "candidates", "outbox")
    }


def same_rows_database(path: Path) -> sqlite3.Connection:
    """Plain sqlite3 with the store's durability settings and its whole schema."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for migration in MIGRATIONS:
        conn.executescript(migration)
    return conn


Step = list[tuple[str, tuple[Any, ...]]]

_INSERT_EVENT = (
    "INSERT INTO events (event_id, type, payload, received_at, idempotency_key, slug, branch, sha)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def same_rows(events: list[Event]) -> list[Step]:
    """Per event, the statements that write the rows the API writes for it (precomputed: the floor
    does no reads, so it is the least any implementation writing those rows can cost)."""
    newest: dict[str, str] = {}  # slug -> sha of its live candidate
    steps = []
    waiting = json.dumps([{"code": "no_push", "message": "no branch_pushed yet"}])
    for e, row in zip(events, floor_rows(events), strict=True):
        step: Step = [(_INSERT_EVENT, row)]
        data = e.payload.model_dump(mode="json")
        if e.type == "finalize_ready":
            at = iso(e.received_at)
            step.append(
                (
                    "INSERT INTO candidates (slug, branch, sha, finalize_event_id, ready_at, received_at, status,"
                    " reasons, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'waiting', ?, ?)",
                    (
                        data["slug"],
                        data["branch"],
                        data["sha"],
                        e.event_id,
                        data["ready_at"],
                        at,
                        waiting,
                        at,
                    ),
                )
            )
            old = newest.get(data["slug"])
            if old is not None:
                gone = make_event(
                    "superseded",
                    {
                        "slug": data["slug"],
                        "branch": data["branch"],
                        "sha": old,
                        "superseded_by": data["sha"],
                        "superseded_at": e.received_at,
                    },
                    received_at=e.received_at,
                )
                step += [
                    (
                        "UPDATE candidates SET status = 'superseded', reasons = ?, updated_at = ?, superseded_by = ?"
                        " WHERE slug = ? AND sha = ?",
                        (waiting, at, data["sha"], data["slug"], old),
                    ),
                    (_INSERT_EVENT, floor_rows([gone])[0]),
                    (
                        "INSERT INTO outbox (kind, payload, created_at) VALUES ('candidate_superseded', ?, ?)",
                        (gone.payload_json(), at),
                    ),
                ]
            newest[data["slug"]] = data["sha"]
        steps.append(step)
    return steps


def write_same_rows(conn: sqlite3.Connection, steps: list[Step]) -> None:
    for step in steps:  # one transaction per event, as the API does
        conn.execute("BEGIN IMMEDIATE")
        for sql, params in step:
            conn.execute(sql, params)
        conn.execute("COMMIT")


def ingest_cli(cfg: Config, events: list[Event], root: Path) -> float:
    ndjson = root / "events.ndjson"
    ndjson.write_text(
        "".join(
            json.dumps({"type": e.type, "payload": e.payload.model_dump(mode="json")}) + "\n" for e in events
        )
    )
    with ndjson.open() as stdin:
        start = time.perf_counter()
        res = subprocess.run(
            [INTEGRATOR, "--config", str(cfg.config_path), "emit", "--wait", "--json", "-", "--json-output"],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=600,
        )
        elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"integrator emit failed: {res.stderr}")
    out = json.loads(res.stdout)
    if out["stored"] != len(events) or out["check_error"]:
        raise SystemExit(f"integrator emit stored {out['stored']} of {len(events)}: {out['check_error']}")
    return elapsed


def floor_database(path: Path) -> sqlite3.Connection:
    """Plain sqlite3 with the store's durability settings and its events table (same indexes)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for statement in MIGRATIONS[0].split(";"):
        if "events" in statement and statement.strip().startswith("CREATE"):
            conn.execute(statement)
    return conn


def floor_rows(events: list[Event]) -> list[tuple[Any, ...]]:
    rows = []
    for e in events:
        data = e.payload.model_dump(mode="json")
        rows.append(
            (
                e.event_id,
                e.type,
                e.payload_json(),
                iso(e.received_at),
                e.idempotency_key,
                data.get("slug"),
                data.get("branch"),
                data.get("sha"),
            )
        )
    return rows


def insert_floor(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    for row in rows:  # one transaction per event, as the API does
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO events (event_id, type, payload, received_at, idempotency_key, slug, branch, sha)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        conn.execute("COMMIT")


def time_status(cfg: Config, runs: int = 5) -> tuple[float, float, int]:
    """Median wall time and median CPU time (user + sys) of ``integrator status --json``."""
    times, cpus = [], []
    size = 0
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        res = subprocess.run(
            [INTEGRATOR, "--config", str(cfg.config_path), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if res.returncode != 0:
            raise SystemExit(f"integrator status failed: {res.stderr}")
        size = len(res.stdout)
    return statistics.median(times), statistics.median(cpus), size


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--slugs", type=int, default=300)
    args = parser.parse_args()
    with _common.temp_root("ingest", args.keep) as root:
        sandbox = Sandbox.create(root / "sandbox")
        rounds = -(-args.events // (3 * args.slugs))
        start = time.perf_counter()
        shas = build_branches(sandbox, args.slugs, rounds)
        setup_s = time.perf_counter() - start
        start = time.perf_counter()
        events = build_events(shas, args.events)
        validate_s = time.perf_counter() - start
        api_cfg, cli_cfg = config_for(root, sandbox, "api"), config_for(root, sandbox, "cli")
        run = asyncio.run(ingest_api_and_floor(api_cfg, root / "floor.db", root / "same.db", events))
        api_s, floor_s, same_s, check_s, waiting = (
            run["api_s"],
            run["floor_s"],
            run["same_s"],
            run["check_s"],
            run["waiting"],
        )
        cli_s = ingest_cli(cli_cfg, events, root)
        status_s, status_cpu_s, status_bytes = time_status(api_cfg)
        status_queue_s, _, _ = time_status(cli_cfg)
        n = len(events)
        result = {
            "events": n,
            "slugs": args.slugs,
            "rounds": rounds,
            "events_per_s": round(n / api_s, 1),
            "cli_events_per_s": round(n / cli_s, 1),
            "floor_events_per_s": round(n / floor_s, 1),
            "ratio": round(floor_s / api_s, 3),
            "same_rows_floor_events_per_s": round(n / same_s, 1),
            "ratio_same_rows": round(same_s / api_s, 3),
            "same_rows_match": run["same_rows_match"],
            "rows_written": run["rows"],
            "status_s": round(status_s, 3),
            "status_queue_s": round(status_queue_s, 3),
            "status_cpu_s": round(status_cpu_s, 3),
            "load_avg_1m": _common.load_avg(),
            "status_json_bytes": status_bytes,
            "validate_events_per_s": round(n / validate_s, 1),
            "check_cycle_s": round(check_s, 3),
            "check_cycle_candidates": waiting,
            "setup_s": round(setup_s, 2),
            "aim": {"ratio": AIM_RATIO, "ratio_same_rows": AIM_RATIO_SAME_ROWS, "status_s": AIM_STATUS_S},
            "meets_aim": floor_s / api_s >= AIM_RATIO
            and same_s / api_s >= AIM_RATIO_SAME_ROWS
            and max(status_s, status_queue_s) < AIM_STATUS_S,
        }
        print(
            f"API {result['events_per_s']}/s, CLI batch {result['cli_events_per_s']}/s, "
            f"plain sqlite3 {result['floor_events_per_s']}/s (ratio {result['ratio']}), same rows "
            f"{result['same_rows_floor_events_per_s']}/s (ratio {result['ratio_same_rows']}); "
            f"status {result['status_s']} s ({result['status_queue_s']} s with a queue of {args.slugs})",
            file=sys.stderr,
        )
        _common.emit(result)


if __name__ == "__main__":
    main()
