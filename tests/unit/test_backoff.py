"""The one retry policy: capped exponential delays, jitter below the delay, a deadline that ends the pauses."""

from __future__ import annotations

import pytest

from integrator.backoff import Backoff


def test_delays_double_up_to_the_cap_without_jitter() -> None:
    policy = Backoff(first_s=1.0, max_s=60.0, jitter=0)
    assert [policy.delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.delay(10_000) == 60  # no overflow after a long outage


def test_jitter_only_shortens_a_delay() -> None:
    policy = Backoff(first_s=2.0, max_s=300.0, jitter=0.5)
    drawn = [policy.delay(3) for _ in range(200)]
    assert all(8.0 <= d <= 16.0 for d in drawn)
    assert len(set(drawn)) > 1  # processes that failed together do not retry in lockstep


def test_pauses_are_cut_to_the_deadline_and_then_end() -> None:
    now = [0.0]
    policy = Backoff(first_s=1.0, max_s=4.0, jitter=0)
    pauses = policy.pauses(6.0, clock=lambda: now[0])
    seen = []
    for pause in pauses:
        seen.append(pause)
        now[0] += pause
    assert seen == [1.0, 2.0, 3.0]  # the third is cut from 4 s to the 3 s left
    assert now[0] == 6.0


def test_pauses_without_a_deadline_never_end() -> None:
    pauses = Backoff(first_s=0.5, max_s=5.0, jitter=0).pauses()
    assert [next(pauses) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first_s": 0.0, "max_s": 1.0},
        {"first_s": 2.0, "max_s": 1.0},
        {"first_s": 1.0, "max_s": 2.0, "factor": 0.5},
        {"first_s": 1.0, "max_s": 2.0, "jitter": 1.0},
    ],
)
def test_a_policy_that_would_not_back_off_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="not a backoff policy"):
        Backoff(**kwargs)
