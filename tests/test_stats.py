"""DeliveryStats: counters, derived values and snapshots."""

from __future__ import annotations

import gc

from asgi_matomo.stats import DeliveryStats

COUNTERS = (
    "delivered",
    "invalid",
    "retried",
    "dropped_queue_full",
    "dropped_expired",
    "dropped_rejected",
    "dropped_unconfirmed",
    "batches_sent",
    "http_requests",
)


class FakeSource:
    def __init__(self, queued: int, pending: int) -> None:
        self.queued = queued
        self.pending = pending

    def queued_count(self) -> int:
        return self.queued

    def pending_count(self) -> int:
        return self.pending


def test_new_stats_are_zero() -> None:
    stats = DeliveryStats()
    assert stats.snapshot() == {
        "queued": 0,
        "delivered": 0,
        "invalid": 0,
        "pending": 0,
        "retried": 0,
        "dropped": 0,
        "dropped_queue_full": 0,
        "dropped_expired": 0,
        "dropped_rejected": 0,
        "dropped_unconfirmed": 0,
        "batches_sent": 0,
        "http_requests": 0,
        "last_error": None,
        "last_error_time": None,
    }


def test_dropped_sums_every_reason() -> None:
    stats = DeliveryStats()
    stats.dropped_queue_full = 1
    stats.dropped_expired = 20
    stats.dropped_rejected = 300
    stats.dropped_unconfirmed = 4000
    assert stats.dropped == 4321
    assert stats.snapshot()["dropped"] == 4321


def test_queued_and_pending_come_from_sources() -> None:
    stats = DeliveryStats()
    first = FakeSource(queued=10, pending=3)
    second = FakeSource(queued=5, pending=1)
    stats.attach(first)
    stats.attach(second)
    stats.attach(first)  # attaching twice counts once

    assert stats.queued == 15
    assert stats.pending == 4

    stats.detach(first)
    assert stats.queued == 5
    assert stats.pending == 1


def test_collected_source_no_longer_counted() -> None:
    stats = DeliveryStats()
    source = FakeSource(queued=7, pending=7)
    stats.attach(source)
    assert stats.queued == 7
    del source
    gc.collect()
    assert stats.queued == 0
    assert stats.pending == 0


def test_reset_zeroes_counters_and_keeps_sources() -> None:
    stats = DeliveryStats()
    stats.attach(source := FakeSource(queued=2, pending=2))
    for name in COUNTERS:
        setattr(stats, name, 9)
    stats.last_error = "Matomo responded 503 Service Unavailable"
    stats.last_error_time = 1234.5

    stats.reset()

    for name in COUNTERS:
        assert getattr(stats, name) == 0, name
    assert stats.last_error is None
    assert stats.last_error_time is None
    assert stats.queued == 2
    assert source.queued == 2


def test_snapshot_is_a_copy() -> None:
    stats = DeliveryStats()
    snapshot = stats.snapshot()
    stats.delivered = 3
    assert snapshot["delivered"] == 0
    assert stats.snapshot()["delivered"] == 3


def test_repr_lists_counters() -> None:
    stats = DeliveryStats()
    stats.delivered = 12
    stats.last_error = "timed out"
    text = repr(stats)
    assert text.startswith("DeliveryStats(")
    assert "delivered=12" in text
    assert "last_error='timed out'" in text
