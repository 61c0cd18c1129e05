"""SIGKILL the runner's whole process group during fetch, merge, verify or push: ``--rounds`` (50) times.

Each round (``tests/support/killing.py``) is a fresh sandbox with one candidate and a verify command,
a real ``integrator run --once`` killed while the chosen stage runs (its git command or verify
command seen in /proc), then plain ``integrator run --once`` until the candidate is integrated. Half
the rounds (``--tree-every``) also kill every descendant's group, as a power cut would, which leaves
git's lock files behind. A round fails if a later run needs a manual step (exits non-zero, or the
candidate is not integrated within 3 runs), or if a worktree, checkout, git lock file, verify
record or verify process is left, or if the mode changed, or the candidate landed twice.

    .venv/bin/python bench/kill.py [--rounds 50] [--seed N]

The last line printed is one JSON object: rounds, failures, kills per stage, how many landed inside
the stage (``hits``; the rest hit just after it), verify processes that outlived the runner (and
were then killed by the next start), and the runs needed after each kill.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.killing import STAGES, kill_round


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--tree-every", type=int, default=2, help="kill the whole tree every N-th round")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    stages: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    runs_after: Counter[int] = Counter()
    failures: list[str] = []
    leaked = trees = 0
    started = time.monotonic()
    for n in range(args.rounds):
        stage = rng.choice(STAGES)
        tree = args.tree_every > 0 and n % args.tree_every == 0
        stages[stage] += 1
        trees += tree
        with tempfile.TemporaryDirectory(prefix="kill-") as tmp:
            try:
                result = kill_round(Path(tmp), stage, tree=tree)
            except AssertionError as err:
                failures.append(f"round {n} ({stage}, tree={tree}): {str(err)[:300]}")
                print(failures[-1], file=sys.stderr)
                continue
        hits[stage] += result.hit
        leaked += result.leaked_verify
        runs_after[result.rounds_after] += 1
    print(
        json.dumps(
            {
                "bench": "kill",
                "seed": seed,
                "rounds": args.rounds,
                "failures": len(failures),
                "stages": dict(sorted(stages.items())),
                "hits": dict(sorted(hits.items())),
                "tree_kills": trees,
                "leaked_verify_reaped": leaked,
                "runs_after_kill": {str(k): v for k, v in sorted(runs_after.items())},
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
