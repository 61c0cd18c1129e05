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

import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import _common
from support.freezing import FREEZE_POINTS, TTL, RoundResult, freeze_round


def main() -> None:
    parser = _common.parser(__doc__, keep=False)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    picked = [rng.choice(FREEZE_POINTS) for _ in range(args.rounds)]

    def one(n: int, phase: str, root: Path) -> RoundResult:
        return freeze_round(root, phase)

    started = time.monotonic()
    done, failures = _common.rounds(args.rounds, "freeze", picked.__getitem__, one)
    for failure in failures:
        print(failure, file=sys.stderr)
    results = [r for _, _, r in done]
    takeovers = [r.takeover_s for r in results if not r.frozen_in_write]
    _common.emit(
        {
            "bench": "freeze",
            "seed": seed,
            "rounds": args.rounds,
            "failures": len(failures),
            "phases": dict(sorted(Counter(picked).items())),
            "fence_refused_resumed_pushes": sum(r.refused_by_fence for r in results),
            "frozen_inside_a_write": sum(r.frozen_in_write for r in results),
            "lease_ttl_s": TTL,
            "takeover_s_median": round(statistics.median(takeovers), 3) if takeovers else None,
            "takeover_s_max": round(max(takeovers), 3) if takeovers else None,
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
