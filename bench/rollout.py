"""Wall time of ``integrator rollout validate`` and ``rollout status`` against a raw floor.

Same machine, same run: this project's ``todos/`` is validated, and its status taken with live
evidence from a real store that ``integrator demo`` builds in a temporary directory. The floor is a
plain ``python`` process that parses the same YAML files with ruamel and reads the same Markdown
files, the least any validator of this tree in Python must do. Our path and the floor take turns,
so a load change on the shared machine weighs on both alike; figures are medians.

    .venv/bin/python bench/rollout.py [--runs 9]

The last line printed is one JSON object.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import _common

PROJECT = _common.ROOT
TODOS = PROJECT / "todos"
INTEGRATOR = _common.INTEGRATOR

FLOOR = """
import sys
from pathlib import Path
from ruamel.yaml import YAML
todos = Path(sys.argv[1])
for path in sorted(todos.glob("*.yaml")) + sorted(todos.glob("*/state.yaml")):
    YAML(typ="rt").load(path.read_text(encoding="utf-8"))
for path in sorted(todos.glob("*/*.md")):
    path.read_text(encoding="utf-8")
"""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one process run to completion; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {result.returncode}: {result.stdout}{result.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEGRATOR_")}
    with _common.temp_root("rollout", args.keep) as tmp:
        sandbox = tmp / "demo"
        subprocess.run([INTEGRATOR, "demo", "--dir", str(sandbox)], capture_output=True, check=True, env=env)
        config = str(sandbox / "integrator.toml")
        commands = {
            "validate": [INTEGRATOR, "rollout", "validate", "--todos", str(TODOS)],
            "status": [INTEGRATOR, "--config", config, "rollout", "status", "--todos", str(TODOS)],
            "status_json": [
                INTEGRATOR,
                "--config",
                config,
                "rollout",
                "status",
                "--todos",
                str(TODOS),
                "--json",
            ],
            "floor": [sys.executable, "-c", FLOOR, str(TODOS)],
        }
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():  # warm the page cache and the bytecode
            timed(argv, env)
        for _ in range(args.runs):
            for name, argv in commands.items():
                wall, cpu = timed(argv, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
    median = {name: statistics.median(values) for name, values in walls.items()}
    figures: dict[str, Any] = {"runs": args.runs}
    for name in commands:
        figures[f"{name}_s"] = round(median[name], 4)
        figures[f"{name}_cpu_s"] = round(statistics.median(cpus[name]), 4)
    figures["validate_ratio"] = round(median["validate"] / median["floor"], 2)
    figures["status_ratio"] = round(median["status"] / median["floor"], 2)
    _common.emit(figures)


if __name__ == "__main__":
    main()
