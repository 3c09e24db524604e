"""The FIFO queue of hits waiting for delivery, bounded by hits and by estimated bytes."""

from __future__ import annotations

from collections import deque

from .types import Hit

__all__ = ["INITIAL_HIT_BYTES", "HitQueue"]

# Estimated JSON size of one hit, in bytes, until the sender has encoded a
# batch. The hit of a typical API request (URL, user agent, language, custom
# variables) encodes to roughly 400-600 bytes, so this errs on the large side.
INITIAL_HIT_BYTES = 1024

# Weight of the newest batch in the running estimate of bytes per hit.
_ESTIMATE_WEIGHT = 0.25


class HitQueue(deque[Hit]):
    """FIFO of hits whose total is capped by a number of hits and an estimate of bytes.

    Measuring each hit on the request path would cost more than appending it,
    so the byte cap uses an estimate: the number of hits times the average JSON
    size per hit of the batches encoded so far (`record_encoded`). `limit` is
    the number of hits the queue may hold now, kept up to date whenever the
    estimate or the number of hits in flight (`reserved`) changes, so the
    request path only compares `len(queue) < queue.limit` before appending.
    Hits in flight count against the cap, so queued plus in-flight hits never
    exceed `max_hits`.
    """

    __slots__ = ("hit_bytes", "limit", "max_bytes", "max_hits", "reserved")

    hit_bytes: float

    def __init__(
        self, max_hits: int, max_bytes: int, *, hit_bytes: int = INITIAL_HIT_BYTES
    ) -> None:
        super().__init__()
        if max_hits < 1:
            raise ValueError(f"max_hits must be >= 1, got {max_hits!r}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes!r}")
        self.max_hits = max_hits
        self.max_bytes = max_bytes
        self.hit_bytes = float(max(1, hit_bytes))
        self.reserved = 0
        self.limit = 0
        self._update_limit()

    def offer(self, hit: Hit) -> bool:
        """Append `hit` and return True, or return False when the queue is at its cap."""
        if len(self) < self.limit:
            self.append(hit)
            return True
        return False

    def take(self, count: int) -> list[Hit]:
        """Remove up to `count` hits from the head, reserve them as in flight, return them."""
        count = min(count, len(self))
        popleft = self.popleft
        hits = [popleft() for _ in range(count)]
        self.reserved += count
        self._update_limit()
        return hits

    def release(self, count: int) -> None:
        """Mark `count` in-flight hits as done (delivered or given up)."""
        self.reserved = max(0, self.reserved - count)
        self._update_limit()

    def put_back(self, hits: list[Hit]) -> None:
        """Return in-flight `hits` to the head of the queue, in their order."""
        self.extendleft(reversed(hits))
        self.release(len(hits))

    def record_encoded(self, hit_count: int, encoded_bytes: int) -> None:
        """Update the bytes-per-hit estimate with a batch of `hit_count` hits and its JSON size."""
        if hit_count <= 0:
            return
        measured = encoded_bytes / hit_count
        estimate = (1 - _ESTIMATE_WEIGHT) * self.hit_bytes + _ESTIMATE_WEIGHT * measured
        self.hit_bytes = max(1.0, estimate)
        self._update_limit()

    def hits_for_bytes(self, max_bytes: int) -> int:
        """Return how many hits of the estimated size fit in `max_bytes` (at least 1)."""
        return max(1, int(max_bytes // self.hit_bytes))

    @property
    def estimated_bytes(self) -> int:
        """Estimated JSON size of the queued and in-flight hits, in bytes."""
        return round((len(self) + self.reserved) * self.hit_bytes)

    @property
    def capacity(self) -> int:
        """Number of hits allowed queued and in flight together, under both caps."""
        return min(self.max_hits, int(self.max_bytes // self.hit_bytes))

    def reset(self) -> None:
        """Remove all hits and forget the hits in flight."""
        self.clear()
        self.reserved = 0
        self._update_limit()

    def _update_limit(self) -> None:
        self.limit = max(0, self.capacity - self.reserved)
