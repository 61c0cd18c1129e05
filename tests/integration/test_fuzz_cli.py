"""Issue #16 "Keep the fuzzing": generated input through the real ``integrator`` entry point. Whatever
comes in, the answer is exit 0 or one line with exit 2, never a traceback, and a rejected input stores
no row. A few hundred examples here; ``bench/fuzz.py`` runs many thousands."""

from __future__ import annotations

import random

from conftest import ok
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import fuzzcases

from integrator.config import Config


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_generated_input_never_tracebacks_and_a_rejection_stores_nothing(config: Config, seed: int) -> None:
    if not config.db.exists():
        ok(config, "status")  # once: hypothesis runs every example in the same test directory
    case = fuzzcases.random_case(random.Random(seed))
    assert config.config_path is not None
    before = fuzzcases.event_rows(config.db)
    outcome = fuzzcases.run(config.config_path, case)
    assert outcome.traceback is None, (case, outcome.traceback)
    assert outcome.status in (0, 1, 2), (case, outcome)
    if outcome.status != 0:
        assert fuzzcases.event_rows(config.db) == before, case
        assert outcome.stderr.count("\n") == 1 and outcome.stderr.startswith("error: "), (
            case,
            outcome.stderr,
        )
