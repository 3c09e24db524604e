"""Delivery counters that an application can read at any time.

All counters count hits, except `batches_sent` and `http_requests`. The
sender updates them in the event loop. Reading them from another thread, such
as a metrics exporter, is safe because each counter is a plain int attribute.
The counters belong to this object, not to the sender, so they keep their
values after the middleware and its sender are garbage collected.

For every hit accepted into the queue, exactly one of these happens in the end:
it is delivered, reported invalid by Matomo, dropped as expired, rejected or
unconfirmed, or it is still pending. So at any time::

    queued == delivered + invalid + dropped_expired + dropped_rejected
              + dropped_unconfirmed + pending

Hits dropped because the queue was full (`dropped_queue_full`) never entered
the queue and are not part of `queued`.
"""

from __future__ import annotations

__all__ = ["DeliveryStats"]


class DeliveryStats:
    """Counters of the hits handed to the sender and of what became of them.

    Attributes (all int unless noted):

    - `queued`: hits accepted into the queue.
    - `delivered`: hits Matomo confirmed as tracked.
    - `invalid`: hits Matomo reported as invalid; they are never retried.
    - `retried`: hits sent again after a failed attempt (a batch of 100 hits
      retried twice adds 200).
    - `dropped_queue_full`: hits not queued because the queue was at its cap,
      or because one hit alone is larger than `queue_max_bytes`.
    - `dropped_expired`: hits older than Matomo accepts without a token
      (24 hours), dropped before sending.
    - `dropped_rejected`: hits Matomo rejected for good. These are the hits
      of a batch that got a 4xx response other than 408 and 429 or a redirect,
      a hit that made every batch containing it fail, and a hit that cannot be
      encoded as JSON. A hit whose sending raised an unexpected exception in
      the sender is counted here too.
    - `dropped_unconfirmed`: hits that Matomo left out of the counts of a
      partly successful response. They are not retried because the response
      does not tell which hits of the batch were stored.
    - `batches_sent`: bulk requests that Matomo confirmed with a success response.
    - `http_requests`: HTTP requests sent to Matomo, failed ones included.
    - `last_error`: text of the last delivery error, or None.
    - `last_error_time`: UNIX time (seconds) of `last_error`, or None.

    Derived values: `pending` (queued minus every outcome, so the invariant in
    the module docstring is true by construction) and `dropped` (the sum of the
    dropped counters). One `DeliveryStats` may serve several senders, and then every
    counter adds up over all of them.
    """

    __slots__ = (
        "__weakref__",
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
        "queued",
        "retried",
    )

    queued: int
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
        self.queued = 0
        self._zero_outcomes()

    def reset(self) -> None:
        """Set every counter to zero and forget the last error, keeping pending hits.

        Hits still pending stay counted in `queued` (and so in `pending`), so
        the invariant keeps holding while they are delivered or dropped later.
        """
        pending = self.pending
        self._zero_outcomes()
        self.queued = pending

    def _zero_outcomes(self) -> None:
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

    @property
    def pending(self) -> int:
        """Hits accepted and not yet delivered or given up (queued or in flight)."""
        # The outcomes are read before `queued`. Every counter only grows
        # between resets, so a reader in another thread never reads a negative
        # value even while the sender updates the counters.
        resolved = (
            self.delivered
            + self.invalid
            + self.dropped_expired
            + self.dropped_rejected
            + self.dropped_unconfirmed
        )
        return self.queued - resolved

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
        """Return every counter and derived value in a new dict, for export to metrics.

        Each counter is read once, and `pending` and `dropped` are computed
        from the values read. So the values of one snapshot satisfy the
        invariant in the module docstring, even when taken in another thread.
        """
        delivered = self.delivered
        invalid = self.invalid
        dropped_queue_full = self.dropped_queue_full
        dropped_expired = self.dropped_expired
        dropped_rejected = self.dropped_rejected
        dropped_unconfirmed = self.dropped_unconfirmed
        queued = self.queued
        given_up = dropped_expired + dropped_rejected + dropped_unconfirmed
        resolved = delivered + invalid + given_up
        return {
            "queued": queued,
            "delivered": delivered,
            "invalid": invalid,
            "pending": queued - resolved,
            "retried": self.retried,
            "dropped": dropped_queue_full + given_up,
            "dropped_queue_full": dropped_queue_full,
            "dropped_expired": dropped_expired,
            "dropped_rejected": dropped_rejected,
            "dropped_unconfirmed": dropped_unconfirmed,
            "batches_sent": self.batches_sent,
            "http_requests": self.http_requests,
            "last_error": self.last_error,
            "last_error_time": self.last_error_time,
        }

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.snapshot().items())
        return f"DeliveryStats({fields})"
