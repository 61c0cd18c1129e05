"""Several real processes on one SQLite file: concurrent emits and a contended lease."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from conftest import wait_for

from integrator.config import Config

PYTHON = sys.executable

# Each worker process waits at a barrier (the go file) so that both really run at the same time.
_PRELUDE = """
import asyncio, json, sys, time
from pathlib import Path
from integrator.config import load_config
from integrator.service import Integrator
from integrator.store import Store
from integrator import lease

args = json.loads(sys.argv[1])

def barrier():
    Path(args["ready"]).touch()
    while not Path(args["go"]).exists():
        time.sleep(0.001)
"""

EMITTER = _PRELUDE + textwrap.dedent(
    """
    from datetime import datetime, timedelta, timezone
    from integrator.events import make_event

    T0 = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)

    def event(n):
        # A deterministic event per number: both processes build the same facts for shared numbers.
        slug, sha, at = f"s{n // 3}", f"{n // 3:040x}", T0 + timedelta(microseconds=n)
        kind = n % 3
        if kind == 0:
            return make_event("review_approved", {"slug": slug, "sha": sha, "reviewer": "r", "review_round": 1,
                                                  "approved_at": at})
        if kind == 1:
            return make_event("branch_pushed", {"branch": f"b/{slug}", "sha": sha, "remote": "origin",
                                                "pushed_at": at})
        return make_event("finalize_ready", {"slug": slug, "branch": f"b/{slug}", "sha": sha, "worker": "w",
                                             "ready_at": at})

    async def main():
        events = [event(n) for n in range(args["start"], args["start"] + args["count"])]
        integ = await Integrator.open(load_config(args["config"]))
        outcomes = {"stored": 0, "duplicate": 0}
        try:
            barrier()
            for e in events:  # one event per call: one transaction each, contending for the write lock
                report = await integ.emit([e])
                outcomes[report.appended[0].outcome] += 1
        finally:
            await integ.close()
        print(json.dumps(outcomes))

    asyncio.run(main())
    """
)


def start(script: str, args: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-c", script, json.dumps(args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_together(script: str, tmp_path: Path, per_process: list[dict[str, Any]]) -> list[str]:
    """Start one process per args, release them at once, return their stdout."""
    go = tmp_path / "go"
    procs = []
    for n, args in enumerate(per_process):
        procs.append(start(script, {**args, "ready": str(tmp_path / f"ready{n}"), "go": str(go)}))
    try:
        wait_for(lambda: all((tmp_path / f"ready{n}").exists() for n in range(len(procs))), timeout=30)
        go.touch()
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            outputs.append(out)
        return outputs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_two_processes_emitting_500_events_each_store_every_event_exactly_once(
    config: Config, tmp_path: Path
) -> None:
    # 250 of each process's 500 events are the same facts as the other's: 750 distinct events in all.
    outputs = run_together(
        EMITTER,
        tmp_path,
        [
            {"config": str(config.config_path), "start": 0, "count": 500},
            {"config": str(config.config_path), "start": 250, "count": 500},
        ],
    )
    reports = [json.loads(out) for out in outputs]
    assert sum(r["stored"] for r in reports) == 750
    assert sum(r["duplicate"] for r in reports) == 250
    conn = sqlite3.connect(config.db)
    try:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT idempotency_key) FROM events").fetchone() == (
            750,
            750,
        )
        # The projection saw each finalize_ready once: one candidate per slug, none lost to a race.
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT slug) FROM candidates").fetchone() == (250, 250)
        reasons = {r[0] for r in conn.execute("SELECT reasons FROM candidates")}
        assert reasons == {
            json.dumps([{"code": "git_pending", "message": "waiting for the git check (fetch of origin)"}])
        }
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


LEASER = _PRELUDE + textwrap.dedent(
    """
    import random

    TTL = 0.15

    async def main():
        rng = random.Random(args["seed"])
        store = await Store.open(Path(args["db"]))
        held = []  # (fencing, believed_from, believed_until, how_it_ended)
        try:
            barrier()
            deadline = time.time() + args["seconds"]
            while time.time() < deadline:
                got = await store.write(
                    lambda c: lease.acquire(c, lease.MAIN_LEASE, args["name"], now=time.time(), ttl=TTL)
                )
                if got is None:
                    await asyncio.sleep(0.002)
                    continue
                since = time.time()  # we believe we hold it only once the acquisition has committed
                ending = "released"
                for _ in range(rng.randint(1, 4)):
                    if rng.random() < 0.1:
                        await asyncio.sleep(TTL * 1.5)  # a stall: the lease expires under us
                    else:
                        await asyncio.sleep(rng.uniform(0, TTL / 3))
                    if time.time() >= got.expires_at:
                        ending = "expired"
                        break
                    renewed = await store.write(lambda c: lease.renew(c, got, now=time.time(), ttl=TTL))
                    if renewed is None:
                        ending = "lost"
                        break
                    got = renewed
                if ending == "released":
                    until = min(time.time(), got.expires_at)
                    await store.write(lambda c: lease.release(c, got))
                    await asyncio.sleep(rng.uniform(0, 0.01))  # give the other contender a chance
                else:
                    until = got.expires_at  # a correct holder stops believing at the expiry it knew
                held.append((got.fencing, since, until, ending))
        finally:
            await store.close()
        print(json.dumps(held))

    asyncio.run(main())
    """
)


def test_two_processes_contending_for_the_lease_never_hold_it_at_once(config: Config, tmp_path: Path) -> None:
    # Create the database first so both contenders start on a migrated schema.
    assert subprocess.run(
        [PYTHON, "-c", f"import asyncio; from integrator.store import Store; asyncio.run(Store.open(__import__('pathlib').Path({str(config.db)!r})))"],
        check=False,
    ).returncode == 0  # fmt: skip
    outputs = run_together(
        LEASER,
        tmp_path,
        [
            {"db": str(config.db), "name": name, "seed": seed, "seconds": 3.0}
            for name, seed in (("alpha", 1), ("beta", 2))
        ],
    )
    every = [
        (since, until, fencing, name, ending)
        for name, out in zip(("alpha", "beta"), outputs, strict=True)
        for fencing, since, until, ending in json.loads(out)
    ]
    # Each acquisition got its own fencing number, none skipped, none shared.
    assert sorted(i[2] for i in every) == list(range(1, len(every) + 1))
    # A process descheduled past its TTL right after acquiring never had a valid moment: an empty
    # interval, not an overlap.
    intervals = sorted(i for i in every if i[1] > i[0])
    holders = {i[3] for i in intervals}
    assert holders == {"alpha", "beta"}, (
        "both processes must have held the lease for the test to mean anything"
    )
    assert any(i[4] != "released" for i in intervals), "no expiry happened: the takeover path went untested"
    for earlier, later in itertools.pairwise(intervals):
        assert earlier[1] <= later[0], f"two holders at once: {earlier} overlaps {later}"
        assert later[2] > earlier[2], f"fencing did not increase: {earlier} then {later}"
    conn = sqlite3.connect(config.db)
    try:
        assert conn.execute("SELECT fencing FROM leases").fetchone()[0] == len(every)
    finally:
        conn.close()
