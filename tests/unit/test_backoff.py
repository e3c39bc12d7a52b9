"""The restart/reconnect delay schedule: doubling from `initial`, capped, jitter only downwards."""

from __future__ import annotations

import random

import pytest

from gozon.runtime.backoff import RECONNECT, Backoff


def test_delays_double_from_initial_and_stop_at_cap() -> None:
    backoff = Backoff(initial=0.1, factor=2.0, cap=1.0, jitter=0.0)

    assert [backoff.delay(n) for n in range(7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_factor_sets_the_growth() -> None:
    backoff = Backoff(initial=1.0, factor=3.0, cap=100.0, jitter=0.0)

    assert [backoff.delay(n) for n in range(5)] == pytest.approx([1.0, 3.0, 9.0, 27.0, 81.0])


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 2.0), (0.5, 1.75), (1.0, 1.5)])
def test_jitter_lowers_a_delay_by_at_most_its_fraction(
    monkeypatch: pytest.MonkeyPatch, draw: float, expected: float
) -> None:
    monkeypatch.setattr(random, "random", lambda: draw)
    backoff = Backoff(initial=1.0, factor=2.0, cap=10.0, jitter=0.25)

    assert backoff.delay(1) == pytest.approx(expected)


def test_jittered_delays_stay_between_the_lowered_and_the_plain_delay() -> None:
    backoff = Backoff(initial=0.5, factor=2.0, cap=4.0, jitter=0.2)

    for attempt in range(8):
        plain = min(4.0, 0.5 * 2.0**attempt)
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(plain * 0.8 <= d <= plain for d in delays), (attempt, min(delays), max(delays))
        assert min(delays) < max(delays)  # jitter does spread the delays


@pytest.mark.parametrize("attempt", [64, 65, 1_000, 10**9, 2**200])
def test_huge_attempt_numbers_do_not_overflow(attempt: int) -> None:
    assert Backoff(initial=0.1, factor=2.0, cap=30.0).delay(attempt) == 30.0
    assert 0.8 * 3.0 <= RECONNECT.delay(attempt) <= 3.0
