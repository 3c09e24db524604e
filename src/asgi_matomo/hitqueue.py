"""The FIFO queue of encoded hits waiting for delivery, bounded by hits and by bytes.

Each entry is one hit already encoded as the UTF-8 text of a JSON object. So
the queue counts the exact size of every hit it holds, and the sender only
joins entries into a bulk request body.
"""

from __future__ import annotations

from collections import deque

__all__ = ["HitQueue"]


class HitQueue(deque[bytes]):
    """FIFO of encoded hits whose total is capped by a number of hits and by bytes.

    The caps cover the hits in the queue and the hits in flight together: hits
    that `take` handed to the sender stay counted in `reserved` and
    `reserved_bytes` until the sender calls `release` or `put_back`. So the
    memory that hits occupy stays bounded while Matomo is down or slow.
    `queued_bytes` is the size of the entries in the queue itself.
    """

    __slots__ = ("max_bytes", "max_hits", "queued_bytes", "reserved", "reserved_bytes")

    def __init__(self, max_hits: int, max_bytes: int) -> None:
        super().__init__()
        if max_hits < 1:
            raise ValueError(f"max_hits must be >= 1, got {max_hits!r}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes!r}")
        self.max_hits = max_hits
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self.reserved = 0
        self.reserved_bytes = 0

    def offer(self, entry: bytes) -> bool:
        """Append `entry` and return True, or return False when it does not fit under the caps."""
        size = len(entry)
        if (
            len(self) + self.reserved < self.max_hits
            and self.queued_bytes + self.reserved_bytes + size <= self.max_bytes
        ):
            self.append(entry)
            self.queued_bytes += size
            return True
        return False

    def take(self, max_hits: int, max_bytes: int) -> list[bytes]:
        """Remove entries from the head, reserve them as in flight and return them.

        Take at most `max_hits` entries whose sizes plus one byte each (the
        comma that separates them in a JSON array) add up to at most
        `max_bytes`. The first entry is taken even when it alone is larger,
        so that a large hit still leaves the queue in its turn.
        """
        count = min(max_hits, len(self))
        popleft = self.popleft
        if self.queued_bytes + count <= max_bytes:
            # Every entry in the queue fits, so any prefix of them does.
            entries = [popleft() for _ in range(count)]
            size = sum(map(len, entries))
        else:
            entries = []
            size = 0
            while len(entries) < count:
                next_size = len(self[0])
                if entries and size + next_size + len(entries) + 1 > max_bytes:
                    break
                entries.append(popleft())
                size += next_size
        self.queued_bytes -= size
        self.reserved += len(entries)
        self.reserved_bytes += size
        return entries

    def release(self, entries: list[bytes]) -> None:
        """Mark in-flight `entries` as done (delivered or given up)."""
        self.reserved -= len(entries)
        self.reserved_bytes -= sum(map(len, entries))

    def put_back(self, entries: list[bytes]) -> None:
        """Return in-flight `entries` to the head of the queue, in their order."""
        self.extendleft(reversed(entries))
        self.queued_bytes += sum(map(len, entries))
        self.release(entries)

    @property
    def total_bytes(self) -> int:
        """Size of the queued and in-flight entries, in bytes."""
        return self.queued_bytes + self.reserved_bytes

    def reset(self) -> None:
        """Remove all entries and forget the entries in flight."""
        self.clear()
        self.queued_bytes = 0
        self.reserved = 0
        self.reserved_bytes = 0
