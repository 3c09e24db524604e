"""DeliveryStats: counters, derived values and snapshots."""

from __future__ import annotations

import asyncio
import gc
import weakref

import httpx

from asgi_matomo import MatomoMiddleware
from asgi_matomo.options import Options, parse_options
from asgi_matomo.sender import Sender
from asgi_matomo.stats import DeliveryStats
from asgi_matomo.testing import RecordingMatomo
from asgi_matomo.types import Receive, Scope, Send

COUNTERS = (
    "queued",
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


def test_pending_is_queued_minus_outcomes() -> None:
    stats = DeliveryStats()
    stats.queued = 100
    stats.delivered = 50
    stats.invalid = 4
    stats.dropped_expired = 3
    stats.dropped_rejected = 2
    stats.dropped_unconfirmed = 1
    stats.dropped_queue_full = 70  # never queued, so not part of queued
    stats.retried = 30  # attempts, not outcomes

    assert stats.pending == 40
    assert stats.snapshot()["pending"] == 40


def test_reset_zeroes_counters() -> None:
    stats = DeliveryStats()
    for name in COUNTERS:
        setattr(stats, name, 9)
    stats.queued = 5 * 9  # five outcome counters of 9 hits each: no hit pending
    stats.last_error = "Matomo responded 503 Service Unavailable"
    stats.last_error_time = 1234.5

    stats.reset()

    for name in COUNTERS:
        assert getattr(stats, name) == 0, name
    assert stats.pending == 0
    assert stats.last_error is None
    assert stats.last_error_time is None


def test_reset_keeps_pending_hits() -> None:
    stats = DeliveryStats()
    stats.queued = 10
    stats.delivered = 6
    stats.dropped_rejected = 1

    stats.reset()

    assert stats.queued == 3
    assert stats.pending == 3
    assert stats.delivered == 0
    assert stats.dropped_rejected == 0

    stats.delivered += 3  # the pending hits arrive after the reset
    assert stats.pending == 0


def test_counters_of_sender_never_started() -> None:
    stats = DeliveryStats()
    sender = Sender(make_options(stats))
    for number in range(3):
        sender.submit({"idsite": 1, "rec": 1, "url": f"https://app.example/{number}"})
    collected = weakref.ref(sender)
    del sender
    gc.collect()

    assert collected() is None
    assert stats.queued == 3
    assert stats.pending == 3


def test_counters_outlive_collected_middleware() -> None:
    stats = DeliveryStats()
    recorder = RecordingMatomo()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def scenario() -> weakref.ref[MatomoMiddleware]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=recorder)) as matomo:
            middleware = MatomoMiddleware(
                app,
                matomo_url="http://matomo.test/matomo.php",
                idsite=1,
                client=matomo,
                stats=stats,
                # Hits wait for a flush, so the last two stay pending.
                batch_max_age=60,
            )
            transport = httpx.ASGITransport(app=middleware)
            base_url = "http://testserver"
            async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
                for number in range(3):
                    await client.get(f"/items/{number}")
                report = await middleware.sender.flush(5)
                assert report.delivered == 3
                for number in range(3, 5):
                    await client.get(f"/items/{number}")
        return weakref.ref(middleware)

    collected = asyncio.run(scenario())
    gc.collect()

    assert collected() is None
    assert len(recorder.hits()) == 3
    assert stats.queued == 5
    assert stats.delivered == 3
    assert stats.pending == 2
    snapshot = stats.snapshot()
    assert snapshot["queued"] == 5
    assert snapshot["delivered"] == 3
    assert snapshot["pending"] == 2


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


def make_options(stats: DeliveryStats) -> Options:
    return parse_options(matomo_url="http://matomo.test/matomo.php", idsite=1, stats=stats)
