"""CircuitBreaker: closed, open for a cooldown, half-open for one probe."""

from __future__ import annotations

import pytest

from asgi_matomo.breaker import CircuitBreaker
from delivery_helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(3, 30.0, clock=clock)


def test_starts_closed(breaker: CircuitBreaker) -> None:
    assert breaker.state == "closed"
    assert breaker.allow()
    assert breaker.time_until_probe() == 0.0


def test_opens_after_threshold(breaker: CircuitBreaker) -> None:
    assert breaker.record_failure() is False
    assert breaker.record_failure() is False
    assert breaker.state == "closed"
    assert breaker.record_failure() is True
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.consecutive_failures == 3


def test_failures_while_open_do_not_reopen(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.record_failure() is False
    assert breaker.time_until_probe() == pytest.approx(20.0)


def test_half_open_after_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.now += 29.9
    assert breaker.state == "open"
    assert breaker.time_until_probe() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state == "half-open"
    assert breaker.allow()
    assert breaker.time_until_probe() == 0.0


def test_failed_probe_restarts_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.now += 31
    assert breaker.record_failure() is True
    assert breaker.state == "open"
    assert breaker.time_until_probe() == pytest.approx(30.0)


def test_success_closes(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.now += 31
    assert breaker.record_success() is True
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0
    assert breaker.record_success() is False


def test_success_resets_the_count(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_reset_closes(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        breaker.record_failure()
    breaker.reset()
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0


@pytest.mark.parametrize(
    ("threshold", "cooldown", "message"),
    [
        (0, 1.0, "failure_threshold must be >= 1, got 0"),
        (1, -0.5, r"cooldown must be >= 0 seconds, got -0\.5"),
    ],
)
def test_invalid_settings_rejected(threshold: int, cooldown: float, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        CircuitBreaker(threshold, cooldown)
