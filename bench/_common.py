"""What every bench script shares: the test harness on the import path, a temporary root (``--keep``
keeps it), the bench repository's git identity and config, the three events that make a candidate
ready, the round loop of the kill/freeze benches, and the final JSON line.

Bench scripts run as ``python bench/<name>.py``, so this module is importable as ``_common``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
# The test support package (sandboxes, kill and freeze harnesses) is shared with the suite.
sys.path.insert(0, str(ROOT / "tests"))

from integrator.config import Config, build_config, write_config  # noqa: E402
from integrator.events import Event, make_event  # noqa: E402

INTEGRATOR = str(Path(sys.executable).with_name("integrator"))
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
T = TypeVar("T")


def parser(doc: str | None, *, keep: bool = True) -> argparse.ArgumentParser:
    """An argument parser described by the script's docstring, with ``--keep`` when it has a root."""
    p = argparse.ArgumentParser(
        description=(doc or "").strip().splitlines()[0] if doc else None,
        epilog="\n".join((doc or "").strip().splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if keep:
        p.add_argument("--keep", action="store_true", help="keep the temporary directory and say where")
    return p


@contextlib.contextmanager
def temp_root(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A fresh temporary directory, removed afterwards unless ``keep`` (then its path goes to stderr)."""
    root = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    try:
        yield root
    finally:
        if keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def bench_config(root: Path, repo: Path, name: str = "integrator", **overrides: Any) -> Config:
    """A cutover config for ``repo`` with its database, state and credential under ``root``, written
    to ``root/<name>.toml``."""
    path = root / f"{name}.toml"
    data: dict[str, Any] = {
        "repo": str(repo),
        "db": str(root / f"{name}.db"),
        "todos_dir": str(root / "todos"),
        "state_dir": str(root / "state"),
        "credential_file": str(root / "integrator.credential"),
        "mode": "cutover",
        **overrides,
    }
    cfg = build_config(data, path)
    write_config(cfg, path)
    return cfg


def ready_events(slug: str, branch: str, sha: str, at: datetime) -> list[Event]:
    """The three events that make ``slug`` at ``sha`` ready to integrate."""
    return [
        make_event("branch_pushed", {"branch": branch, "sha": sha, "remote": "origin", "pushed_at": at}),
        make_event(
            "review_approved",
            {"slug": slug, "sha": sha, "reviewer": "rev", "review_round": 1, "approved_at": at},
        ),
        make_event(
            "finalize_ready", {"slug": slug, "branch": branch, "sha": sha, "worker": "w", "ready_at": at}
        ),
    ]


def at(k: int, step: timedelta = timedelta(seconds=1)) -> datetime:
    return T0 + k * step


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def emit(result: dict[str, Any], *, sort_keys: bool = False) -> None:
    """The final line: one JSON object with the figures (and the machine's load, if not given)."""
    result.setdefault("load_avg_1m", load_avg())
    print(json.dumps(result, sort_keys=sort_keys), flush=True)


@dataclass
class Failure:
    round: int
    kind: str
    error: Exception

    def __str__(self) -> str:
        text = str(self.error) if isinstance(self.error, AssertionError) else traceback_text(self.error)
        return f"round {self.round} ({self.kind}): {type(self.error).__name__}: {text[-600:]}"


def traceback_text(err: BaseException) -> str:
    return "".join(traceback.format_exception(err, limit=3))


def rounds(
    count: int, name: str, pick: Callable[[int], str], one: Callable[[int, str, Path], T]
) -> tuple[list[tuple[int, str, T]], list[Failure]]:
    """Run ``one(n, kind, root)`` ``count`` times, each in a fresh temporary root with ``kind =
    pick(n)``; a round that raises is a failure (kept with its round and kind), never the end, and
    its root is kept for a look (its path is in the progress line).

    One progress line per round goes to stderr, so a slow round shows which one it is."""
    done: list[tuple[int, str, T]] = []
    failures: list[Failure] = []
    for n in range(count):
        kind = pick(n)
        started = time.monotonic()
        root = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        try:
            done.append((n, kind, one(n, kind, root)))
            verdict = "ok"
            shutil.rmtree(root, ignore_errors=True)
        except Exception as err:  # a bench round must report, never end the loop
            failures.append(Failure(n, kind, err))
            verdict = f"{failures[-1]} (kept {root})"
        print(
            f"{name} {n + 1}/{count} {kind}: {verdict} ({time.monotonic() - started:.1f}s)", file=sys.stderr
        )
    return done, failures
