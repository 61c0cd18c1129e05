"""Rollout governance driven by ``todos/``: the roadmap declares each rollout (its parent, its slices in
build order, the artifacts each needs, the probes that show it live), and the rules check the plan.

:func:`load_rollout` reads ``todos/`` into plain data (every file problem becomes a :class:`Problem`,
never an exception); :func:`validate` applies the rules to that data without touching the disk;
:func:`live_facts` gathers what the running system shows about each entry. Printing is the CLI's
(``integrator/cli/rollout.py``). See docs/rollout.md.
"""

from __future__ import annotations

from integrator.rollout.load import load_rollout
from integrator.rollout.models import Rollout
from integrator.rollout.order import find_cycles
from integrator.rollout.probes import PROBES
from integrator.rollout.problems import Problem, errors
from integrator.rollout.status import SliceStatus, join_facts, live_facts, slice_statuses
from integrator.rollout.traces import parse_traces
from integrator.rollout.validate import validate

__all__ = [
    "PROBES",
    "Problem",
    "Rollout",
    "SliceStatus",
    "errors",
    "find_cycles",
    "join_facts",
    "live_facts",
    "load_rollout",
    "parse_traces",
    "slice_statuses",
    "validate",
]
