"""Test-only wiring: run a real entry point with a phase probe installed (``integrator.phases``).

The product reads no test switch. This wrapper is the only place one lives: it reads the variables
below, installs a probe that acts at the named phase, then calls the real console entry point::

    python tests/support/killpoints.py integrator --config X run --once
    python tests/support/killpoints.py teleclaude-bot --config X

``INTEGRATOR_TEST_KILL_AT=PHASE[@N]``
    SIGKILL this process the N-th time (default 1st) the workflow reaches PHASE.
``INTEGRATOR_TEST_STOP_AT=PHASE[@N]``
    SIGSTOP this process there instead (a frozen holder: the test SIGCONTs or kills it).
``INTEGRATOR_TEST_BEFORE_PUSH=COMMAND``
    run the shell COMMAND at ``before_push`` (move ``main``, break the remote, ...) and wait for it.
``INTEGRATOR_TEST_PROBE_LOG=PATH``
    append ``PHASE PID`` per phase reached (written and flushed before any kill or stop), so a test
    can wait for "phase X reached" instead of sleeping.

PHASE is any name of ``integrator.phases.PROBE_POINTS``: dequeued, verified_ready, merged, verify,
tested, before_push, pushed, recorded. In-process tests pass :func:`probe` (or a probe of their own)
to ``Runner(..., probe=...)`` directly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable, Mapping

from integrator.phases import PROBE_POINTS, PhaseProbe, install

KILL_AT = "INTEGRATOR_TEST_KILL_AT"
STOP_AT = "INTEGRATOR_TEST_STOP_AT"
BEFORE_PUSH = "INTEGRATOR_TEST_BEFORE_PUSH"
PROBE_LOG = "INTEGRATOR_TEST_PROBE_LOG"
WRAPPER = os.path.abspath(__file__)


def _point(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    phase, _, nth = spec.partition("@")
    if phase not in PROBE_POINTS:
        raise SystemExit(f"killpoints: unknown phase {phase!r}; one of {', '.join(PROBE_POINTS)}")
    return phase, int(nth or 1)


def probe(
    *,
    kill_at: str | None = None,
    stop_at: str | None = None,
    before_push: str | None = None,
    log: str | None = None,
) -> PhaseProbe:
    """A probe that kills / freezes at a phase, runs a shell command before each push, logs phases."""
    kill, stop = _point(kill_at), _point(stop_at)
    seen: Counter[str] = Counter()

    async def at(phase: str) -> None:
        seen[phase] += 1
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"{phase} {os.getpid()}\n")
        if phase == "before_push" and before_push:
            proc = await asyncio.create_subprocess_shell(before_push, stdin=asyncio.subprocess.DEVNULL)
            await proc.wait()
        if kill == (phase, seen[phase]):
            os.kill(os.getpid(), signal.SIGKILL)
        if stop == (phase, seen[phase]):
            os.kill(os.getpid(), signal.SIGSTOP)

    return at


def probe_from_env(env: Mapping[str, str]) -> PhaseProbe:
    return probe(
        kill_at=env.get(KILL_AT),
        stop_at=env.get(STOP_AT),
        before_push=env.get(BEFORE_PUSH),
        log=env.get(PROBE_LOG),
    )


def command(entry: str = "integrator") -> list[str]:
    """The argv prefix that runs ``entry`` through this wrapper (append the entry point's own args)."""
    return [sys.executable, WRAPPER, entry]


def _entry(name: str) -> Callable[[], object]:
    if name == "integrator":
        from integrator.cli import main

        return main
    if name == "teleclaude-bot":
        from bot.__main__ import main as bot_main

        return bot_main
    raise SystemExit(f"killpoints: unknown entry point {name!r}")


if __name__ == "__main__":
    entry = _entry(sys.argv[1])
    install(probe_from_env(os.environ))
    sys.argv = [sys.argv[1], *sys.argv[2:]]
    entry()
