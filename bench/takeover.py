"""Takeover latency: how long after the lease holder stops working does a standby hold the lease?

Two real ``integrator run`` processes on one database (one sandbox, a fresh database per round): A
holds the lease, B stands by. Then, per round, either

- ``kill``: A is SIGKILLed. A holder on the same host whose process is gone (pid + start stamp) is
  taken over without waiting for its TTL; ``kill_s`` is the time from the kill to B's acquisition;
- ``freeze``: A is SIGSTOPped (alive, not renewing, as a hung or remote holder looks). B must wait
  for the lease to expire; ``freeze_s`` is the time from the freeze to B's acquisition, and
  ``past_expiry_s`` how long after the lease's expiry B took it (the bound beyond the TTL).

Times come from the lease row (``acquired_at``, ``expires_at``) and the wall clock at the signal,
so the polling of this script does not count.

    .venv/bin/python bench/takeover.py [--rounds 20] [--ttl 2.0]

The last line printed is one JSON object.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import _common

from integrator.sandbox import Sandbox

INTEGRATOR = _common.INTEGRATOR


def lease_row(db: Path) -> dict[str, Any] | None:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    except sqlite3.OperationalError:
        return None
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT holder, acquired_at, expires_at FROM leases").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return dict(row) if row else None


def wait(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.005)
    raise SystemExit("bench/takeover: timed out")


def one_round(root: Path, sandbox: Sandbox, ttl: float, how: str, n: int) -> dict[str, float]:
    cfg = _common.bench_config(
        root, sandbox.integrator_repo, f"r{n}", lease_ttl_s=ttl, lease_renew_s=ttl / 4, idle_check_s=30.0
    )
    cfg_path = root / f"r{n}.toml"
    procs = []
    logs = []
    try:
        for name in ("a", "b"):
            log = root / f"r{n}-{name}.log"
            with log.open("w") as err:
                procs.append(
                    subprocess.Popen(
                        [INTEGRATOR, "--config", str(cfg_path), "run", "-v"],
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                        start_new_session=True,
                    )
                )
            logs.append(log)
            if name == "a":
                me = f"{socket.gethostname()}:{procs[0].pid}"
                wait(lambda me=me: (lease_row(cfg.db) or {}).get("holder") == me)
        wait(lambda: "event=standby" in logs[1].read_text())
        a, b = procs
        b_name = f"{socket.gethostname()}:{b.pid}"
        stopped_at = time.time()
        os.kill(a.pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        expires = float(lease_row(cfg.db)["expires_at"]) if how == "freeze" else 0.0  # type: ignore[index]
        row = wait(lambda: (r := lease_row(cfg.db)) and r["holder"] == b_name and r)
        took = float(row["acquired_at"])
        out = {"latency_s": took - stopped_at}
        if how == "freeze":
            out["past_expiry_s"] = took - expires
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
            p.wait()


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--ttl", type=float, default=2.0)
    args = parser.parse_args()
    result: dict[str, Any] = {"bench": "takeover", "rounds": args.rounds, "ttl_s": args.ttl}
    with _common.temp_root("takeover", args.keep) as root:
        sandbox = Sandbox.create(root / "sb")
        for how in ("kill", "freeze"):
            found = [
                one_round(root, sandbox, args.ttl, how, n + (1000 if how == "freeze" else 0))
                for n in range(args.rounds)
            ]
            lat = [f["latency_s"] for f in found]
            result[f"{how}_s_median"] = round(statistics.median(lat), 3)
            result[f"{how}_s_max"] = round(max(lat), 3)
            if how == "freeze":
                past = [f["past_expiry_s"] for f in found]
                result["past_expiry_s_median"] = round(statistics.median(past), 3)
                result["past_expiry_s_max"] = round(max(past), 3)
                result["over_ttl_plus_0_25s"] = sum(1 for x in past if x > 0.25)
    _common.emit(result)


if __name__ == "__main__":
    main()
