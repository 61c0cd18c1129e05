"""The workflow's phase probe: one seam an embedder can hook to observe or interrupt a candidate's flight.

The workflow awaits ``probe(phase)`` right after each checkpoint commits (the names in
``checkpoint.PHASES``; ``recorded`` after the outcome's transaction), just before the verify
command starts (``verify``) and just before each push (``before_push``). The product installs
nothing: the default is a no-op. Crash and race tests install a probe that kills, freezes or moves
``main`` at a named phase (``tests/support/killpoints.py``), so no test switch lives in the product.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from integrator.checkpoint import PHASES

PhaseProbe = Callable[[str], Awaitable[None]]

# Every name a probe can see, in the order one candidate meets them.
PROBE_POINTS = (*PHASES[:3], "verify", PHASES[3], "before_push", *PHASES[4:])


async def no_probe(phase: str) -> None:
    return None


_installed: PhaseProbe = no_probe


def install(probe: PhaseProbe) -> None:
    """Make ``probe`` the default of every Runner/Workflow built afterwards in this process."""
    global _installed
    _installed = probe


def installed() -> PhaseProbe:
    return _installed
