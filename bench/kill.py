"""SIGKILL the runner's whole process group during fetch, merge, verify or push: ``--rounds`` (50) times.

Each round (``tests/support/killing.py``) is a fresh sandbox with one candidate and a verify command,
a real ``integrator run --once`` killed while the chosen stage runs (its git command or verify
command seen in /proc), then plain ``integrator run --once`` until the candidate is integrated. Half
the rounds (``--tree-every``) also kill every descendant's group, as a power cut would, which leaves
git's lock files behind. A round fails if a later run needs a manual step (exits non-zero, or the
candidate is not integrated within 3 runs), or if a worktree, checkout, git lock file, verify
record or verify process is left, or if the mode changed, or the candidate landed twice. Every wait
has a timeout (``--step-timeout``): a step that runs out fails its round, naming it, and the loop
goes on.

    .venv/bin/python bench/kill.py [--rounds 50] [--seed N] [--stages fetch,merge,verify,push]

One progress line per round goes to stderr. The last line printed is one JSON object: rounds,
failures, kills per stage, how many landed inside the stage (``hits``; the rest hit just after it),
verify processes that outlived the runner (and were then killed by the next start), leftovers found,
mode changes, runs that needed a manual step, and the runs needed after each kill.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from pathlib import Path

import _common
from support.killing import (
    STAGES,
    STEP_TIMEOUT_S,
    KillResult,
    Leftover,
    ModeChanged,
    NeedsManualStep,
    Stalled,
    kill_round,
)


def _count(failures: list[_common.Failure], kind: type[Exception]) -> int:
    return sum(isinstance(f.error, kind) for f in failures)


def main() -> None:
    parser = _common.parser(__doc__, keep=False)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--tree-every", type=int, default=2, help="kill the whole tree every N-th round")
    parser.add_argument("--stages", default=",".join(STAGES), help="the stages to pick from")
    parser.add_argument("--step-timeout", type=float, default=STEP_TIMEOUT_S, help="seconds per wait")
    args = parser.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown or not stages:
        parser.error(f"--stages: unknown {', '.join(unknown) or 'none given'}; one of {', '.join(STAGES)}")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    picked = [rng.choice(stages) for _ in range(args.rounds)]

    every: int = args.tree_every

    def tree(n: int) -> bool:
        return every > 0 and n % every == 0

    def one(n: int, stage: str, root: Path) -> KillResult:
        return kill_round(root, stage, tree=tree(n), timeout=args.step_timeout)

    started = time.monotonic()
    done, failures = _common.rounds(args.rounds, "kill", picked.__getitem__, one)
    for line in failures:
        print(line, file=sys.stderr)
    runs_after = Counter(r.rounds_after for _, _, r in done)
    _common.emit(
        {
            "bench": "kill",
            "seed": seed,
            "rounds": args.rounds,
            "failures": len(failures),
            "stages": dict(sorted(Counter(picked).items())),
            "hits": dict(sorted(Counter(stage for _, stage, r in done if r.hit).items())),
            "tree_kills": sum(tree(n) for n in range(args.rounds)),
            "leaked_verify_reaped": sum(r.leaked_verify for _, _, r in done),
            "leftovers_found": _count(failures, Leftover),
            "mode_changes": _count(failures, ModeChanged),
            "runs_needing_manual_steps": _count(failures, NeedsManualStep),
            "stalled_steps": _count(failures, Stalled),
            "failed_rounds": [f.round for f in failures],
            "runs_after_kill": {str(k): v for k, v in sorted(runs_after.items())},
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
