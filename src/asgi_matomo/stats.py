"""Delivery counters that an application can read at any time.

All counters count hits, except `batches_sent` and `http_requests`. The
sender updates them in the event loop. Reading them from another thread, such
as a metrics exporter, is safe because each counter is a plain int attribute.

For every hit accepted into the queue, exactly one of these happens in the end:
it is delivered, reported invalid by Matomo, dropped as expired, rejected or
unconfirmed, or it is still pending. So at any time::

    queued == delivered + invalid + dropped_expired + dropped_rejected
              + dropped_unconfirmed + pending

Hits dropped because the queue was full (`dropped_queue_full`) never entered
the queue and are not part of `queued`.
"""

from __future__ import annotations

import weakref
from typing import Protocol

__all__ = ["DeliveryStats", "StatsSource"]


class StatsSource(Protocol):
    """An object that owns queued hits (a sender) and reports their numbers."""

    def queued_count(self) -> int:
        """Return the number of hits accepted into the queue since the counters started."""
        ...

    def pending_count(self) -> int:
        """Return the number of accepted hits that are neither delivered nor given up."""
        ...


class DeliveryStats:
    """Counters of the hits handed to the sender and of what became of them.

    Attributes (all int unless noted):

    - `delivered`: hits Matomo confirmed as tracked.
    - `invalid`: hits Matomo reported as invalid; they are never retried.
    - `retried`: hits sent again after a failed attempt (a batch of 100 hits
      retried twice adds 200).
    - `dropped_queue_full`: hits not queued because the queue was at its cap.
    - `dropped_expired`: hits older than Matomo accepts without a token
      (24 hours), dropped before sending.
    - `dropped_rejected`: hits Matomo rejected for good. These are the hits
      of a batch that got a 4xx response other than 408 and 429 or a redirect,
      a hit that made every batch containing it fail, and a hit that cannot be
      encoded as JSON.
    - `dropped_unconfirmed`: hits that Matomo left out of the counts of a
      partly successful response. They are not retried because the response
      does not tell which hits of the batch were stored.
    - `batches_sent`: bulk requests that Matomo confirmed with a success response.
    - `http_requests`: HTTP requests sent to Matomo, failed ones included.
    - `last_error`: text of the last delivery error, or None.
    - `last_error_time`: UNIX time (seconds) of `last_error`, or None.

    Derived values: `queued`, `pending` and `dropped` (the sum of the dropped
    counters). One `DeliveryStats` may serve several senders; `queued` and
    `pending` then add up over all of them.
    """

    __slots__ = (
        "__weakref__",
        "_sources",
        "batches_sent",
        "delivered",
        "dropped_expired",
        "dropped_queue_full",
        "dropped_rejected",
        "dropped_unconfirmed",
        "http_requests",
        "invalid",
        "last_error",
        "last_error_time",
        "retried",
    )

    delivered: int
    invalid: int
    retried: int
    dropped_queue_full: int
    dropped_expired: int
    dropped_rejected: int
    dropped_unconfirmed: int
    batches_sent: int
    http_requests: int
    last_error: str | None
    last_error_time: float | None

    def __init__(self) -> None:
        self._sources: list[weakref.ref[StatsSource]] = []
        self.reset()

    def reset(self) -> None:
        """Set every counter to zero and forget the last error.

        `queued` and `pending` are computed from the senders, so they are not
        reset here. A sender resets its own numbers when it starts fresh after a
        fork.
        """
        self.delivered = 0
        self.invalid = 0
        self.retried = 0
        self.dropped_queue_full = 0
        self.dropped_expired = 0
        self.dropped_rejected = 0
        self.dropped_unconfirmed = 0
        self.batches_sent = 0
        self.http_requests = 0
        self.last_error = None
        self.last_error_time = None

    def attach(self, source: StatsSource) -> None:
        """Add `source` to the senders whose hits `queued` and `pending` count."""
        self._sources = [ref for ref in self._sources if ref() is not None]
        if all(ref() is not source for ref in self._sources):
            self._sources.append(weakref.ref(source))

    def detach(self, source: StatsSource) -> None:
        """Stop counting the hits of `source`."""
        self._sources = [ref for ref in self._sources if ref() not in (None, source)]

    @property
    def queued(self) -> int:
        """Hits accepted into the queue."""
        return sum(source.queued_count() for source in self._live_sources())

    @property
    def pending(self) -> int:
        """Hits accepted and not yet delivered or given up (queued or in flight)."""
        return sum(source.pending_count() for source in self._live_sources())

    @property
    def dropped(self) -> int:
        """Hits dropped for any reason: queue full, expired, rejected or unconfirmed."""
        return (
            self.dropped_queue_full
            + self.dropped_expired
            + self.dropped_rejected
            + self.dropped_unconfirmed
        )

    def snapshot(self) -> dict[str, int | float | str | None]:
        """Return every counter and derived value in a new dict, for export to metrics."""
        return {
            "queued": self.queued,
            "delivered": self.delivered,
            "invalid": self.invalid,
            "pending": self.pending,
            "retried": self.retried,
            "dropped": self.dropped,
            "dropped_queue_full": self.dropped_queue_full,
            "dropped_expired": self.dropped_expired,
            "dropped_rejected": self.dropped_rejected,
            "dropped_unconfirmed": self.dropped_unconfirmed,
            "batches_sent": self.batches_sent,
            "http_requests": self.http_requests,
            "last_error": self.last_error,
            "last_error_time": self.last_error_time,
        }

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.snapshot().items())
        return f"DeliveryStats({fields})"

    def _live_sources(self) -> list[StatsSource]:
        return [source for ref in self._sources if (source := ref()) is not None]
