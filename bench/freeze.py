"""Freeze a lease holder at random points, let another take over, resume it: ``--rounds`` (50) times.

Each round (``tests/support/freezing.py``) is real processes on a fresh sandbox with the hooks
installed: the old holder is stopped (SIGSTOP of its process group) at a random phase, or inside
the remote during its push of main; a new ``integrator run`` takes over when the 1 s lease expires
and integrates the candidate; the old one resumes. A round fails if anything the old holder pushed
landed, if it wrote anything after the takeover, if the candidate was not integrated once and
credited to the new holder, or if either runner exited or logged a traceback.

    .venv/bin/python bench/freeze.py [--rounds 50] [--seed N]

The last line printed is one JSON object: rounds, failures, rounds per phase, how many resumed
pushes the remote's fence refused, how many freezes caught the holder inside a write transaction
(its SQLite write lock held by a stopped process: the standby waits it out alive, logging
``event=store_busy``, and takes over once the old holder resumes and finds its lease expired), and
the other rounds' takeover times (freeze to new lease) in seconds.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.freezing import FREEZE_POINTS, TTL, freeze_round


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    phases: Counter[str] = Counter()
    failures: list[str] = []
    takeovers: list[float] = []
    fence_refusals = in_write = 0
    started = time.monotonic()
    for n in range(args.rounds):
        phase = rng.choice(FREEZE_POINTS)
        phases[phase] += 1
        with tempfile.TemporaryDirectory(prefix="freeze-") as tmp:
            try:
                result = freeze_round(Path(tmp), phase)
            except AssertionError as err:
                failures.append(f"round {n} ({phase}): {str(err)[:300]}")
                print(failures[-1], file=sys.stderr)
                continue
        fence_refusals += result.refused_by_fence
        in_write += result.frozen_in_write
        if not result.frozen_in_write:
            takeovers.append(result.takeover_s)
    print(
        json.dumps(
            {
                "bench": "freeze",
                "seed": seed,
                "rounds": args.rounds,
                "failures": len(failures),
                "phases": dict(sorted(phases.items())),
                "fence_refused_resumed_pushes": fence_refusals,
                "frozen_inside_a_write": in_write,
                "lease_ttl_s": TTL,
                "takeover_s_median": round(statistics.median(takeovers), 3) if takeovers else None,
                "takeover_s_max": round(max(takeovers), 3) if takeovers else None,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
