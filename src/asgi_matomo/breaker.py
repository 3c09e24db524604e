"""A circuit breaker that pauses delivery while Matomo keeps failing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

__all__ = ["BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Stop sending after `failure_threshold` consecutive failures, for `cooldown` seconds.

    Closed: requests go out. After `failure_threshold` failures in a row the
    breaker opens, and `allow()` returns False until `cooldown` seconds have
    passed. Then it is half-open: `allow()` returns True for one probe. The
    probe's success closes the breaker; its failure opens it for another
    cooldown. Hits keep queueing meanwhile; the breaker only stops sending.
    """

    __slots__ = ("_clock", "_opened_at", "consecutive_failures", "cooldown", "failure_threshold")

    def __init__(
        self,
        failure_threshold: int,
        cooldown: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold!r}")
        if cooldown < 0:
            raise ValueError(f"cooldown must be >= 0 seconds, got {cooldown!r}")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.consecutive_failures = 0
        self._clock = clock
        self._opened_at: float | None = None

    @property
    def state(self) -> BreakerState:
        """Current state: "closed", "open" (cooling down) or "half-open" (probe allowed)."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.cooldown:
            return "open"
        return "half-open"

    def allow(self) -> bool:
        """Return True when a request may be sent now."""
        return self.state != "open"

    def time_until_probe(self) -> float:
        """Return the seconds until the next request may be sent (0 when allowed now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - self._clock())

    def record_success(self) -> bool:
        """Close the breaker after a successful request; return True if it was not closed."""
        was_open = self._opened_at is not None
        self.consecutive_failures = 0
        self._opened_at = None
        return was_open

    def record_failure(self) -> bool:
        """Count a failed request; return True when this failure opened the breaker.

        A failed probe in the half-open state opens the breaker again and also
        returns True.
        """
        self.consecutive_failures += 1
        if self._opened_at is not None:
            if self.state == "half-open":
                self._opened_at = self._clock()
                return True
            return False
        if self.consecutive_failures >= self.failure_threshold:
            self._opened_at = self._clock()
            return True
        return False

    def reset(self) -> None:
        """Return to the closed state with no failures counted."""
        self.consecutive_failures = 0
        self._opened_at = None
