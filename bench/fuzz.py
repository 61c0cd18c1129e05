"""Fuzzing the command line: many thousands of generated inputs through the real ``integrator`` entry
point (in this process, on a real sandbox repository and a real database).

Each input is an argv and stdin bytes (tests/support/fuzzcases.py: nasty values in flags, NDJSON
batches with bad fields, deep nesting, huge numbers, bad UTF-8, other commands with bad arguments).
It counts the answers: ``accepted`` (exit 0), ``refused`` (exit 1), ``rejected`` (exit 2, one line),
``tracebacks`` (any exception or traceback text: must be 0), ``multi_line`` (an exit-2 message on more
than one line: must be 0) and ``rows_stored_for_rejected`` (event rows added by an input that did not
exit 0: must be 0).

    .venv/bin/python bench/fuzz.py [--inputs 10000] [--seed 1]

The last line printed is one JSON object.
"""

from __future__ import annotations

import random
import sys
import time

import _common
from support import fuzzcases

from integrator.sandbox import Sandbox


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    counts = {"accepted": 0, "refused": 0, "rejected": 0, "tracebacks": 0, "multi_line": 0}
    rows_for_rejected = 0
    first_traceback: str | None = None
    with _common.temp_root("fuzz", args.keep) as root:
        sandbox = Sandbox.create(root / "sb")
        path = _common.bench_config(root, sandbox.integrator_repo, mode="shadow").config_path
        assert path is not None
        started = time.monotonic()
        for _ in range(args.inputs):
            case = fuzzcases.random_case(rng)
            before = fuzzcases.event_rows(root / "integrator.db")
            outcome = fuzzcases.run(path, case)
            if outcome.traceback is not None:
                counts["tracebacks"] += 1
                first_traceback = first_traceback or f"{case!r}\n{outcome.traceback}"
                continue
            if outcome.status == 0:
                counts["accepted"] += 1
                continue
            counts["refused" if outcome.status == 1 else "rejected"] += 1
            if outcome.status == 2 and outcome.stderr.count("\n") != 1:
                counts["multi_line"] += 1
            rows_for_rejected += fuzzcases.event_rows(root / "integrator.db") - before
        took = time.monotonic() - started
    if first_traceback:
        print(first_traceback, file=sys.stderr)
    _common.emit(
        {
            "bench": "fuzz",
            "inputs": args.inputs,
            "seed": args.seed,
            **counts,
            "rows_stored_for_rejected": rows_for_rejected,
            "inputs_per_s": round(args.inputs / took, 1),
        },
        sort_keys=True,
    )


if __name__ == "__main__":
    main()
