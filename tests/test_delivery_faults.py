"""Delivery while Matomo fails in each way a real server can, then recovers.

Each scenario submits hits steadily while the fault lasts. Then it checks
that the event loop was never blocked and the queue stayed within its cap.
It also checks that the counters add up, that no hit was stored twice, and
that every hit that was not dropped arrived in request order with its
original time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from contextlib import AbstractContextManager

import pytest

from asgi_matomo.options import Options
from asgi_matomo.sender import Sender
from asgi_matomo.testing import Fault, RecordingMatomo, serve_app
from asgi_matomo.types import Hit
from delivery_helpers import (
    FaultProxy,
    LoopLagMonitor,
    Matomo,
    assert_counters_add_up,
    assert_in_request_order,
    free_port,
    hit_number,
    make_hit,
    make_options,
    port_of,
)

pytestmark = pytest.mark.server

# Generous bound on how late the event loop may wake a sleeping task while the
# sender copes with a fault. A blocked loop (a synchronous call) would exceed it.
MAX_LOOP_LAG = 0.5


class Traffic:
    """Submit numbered hits at a steady rate and record the largest pending count."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.sent: list[Hit] = []
        self.max_pending = 0

    async def run(self, count: int, seconds: float) -> None:
        interval = seconds / count
        for _ in range(count):
            hit = make_hit(len(self.sent))
            self.sent.append(hit)
            self.sender.submit(hit)
            self.max_pending = max(self.max_pending, self.sender.pending_count())
            await asyncio.sleep(interval)


def check_recovery(recorder: RecordingMatomo, sender: Sender, traffic: Traffic) -> None:
    """Check the outcome after a fault ended and the sender flushed."""
    stored = recorder.hits()
    assert_in_request_order(stored, traffic.sent)
    assert_counters_add_up(sender)
    assert sender.stats.pending == 0
    assert sender.stats.delivered == len(stored)
    assert traffic.max_pending <= sender._options.queue_max_hits


async def run_through_fault(
    options: Options, *, hits: int, seconds: float, settle: float = 0.0
) -> tuple[Sender, Traffic, float]:
    """Start a sender, submit `hits` over `seconds`, wait `settle` seconds, return the state.

    The caller ends the fault and then flushes. The float returned is the
    largest event loop lag seen.
    """
    sender = Sender(options)
    await sender.start()
    traffic = Traffic(sender)
    async with LoopLagMonitor() as monitor:
        await traffic.run(hits, seconds)
        await asyncio.sleep(settle)
    return sender, traffic, monitor.max_lag


def test_connection_refused_until_server_starts(caplog: pytest.LogCaptureFixture) -> None:
    recorder = RecordingMatomo()
    port = free_port()
    options = make_options(f"http://127.0.0.1:{port}/matomo.php", queue_max_hits=150)
    server: AbstractContextManager[str] = serve_app(recorder, port=port)

    async def scenario() -> None:
        sender, traffic, max_lag = await run_through_fault(options, hits=200, seconds=0.8)
        assert sender.stats.delivered == 0
        assert sender.stats.dropped_queue_full == 50
        assert "ConnectError" in (sender.stats.last_error or "")

        await asyncio.to_thread(server.__enter__)
        try:
            report = await sender.aclose(timeout=10)
        finally:
            await asyncio.to_thread(server.__exit__, None, None, None)

        assert report.pending == 0
        assert max_lag < MAX_LOOP_LAG
        check_recovery(recorder, sender, traffic)
        # The queue kept the oldest hits and dropped the newest ones.
        assert [hit_number(hit) for hit in recorder.hits()] == list(range(150))

    asyncio.run(scenario())
    assert any("pausing delivery" in record.getMessage() for record in caplog.records)


def test_server_accepts_and_never_responds(matomo: Matomo) -> None:
    recorder, url = matomo
    upstream_port = port_of(url)

    async def scenario() -> None:
        async with FaultProxy(upstream_port, default_mode="blackhole") as proxy:
            options = make_options(proxy.url, http_timeout=0.3)
            sender, traffic, max_lag = await run_through_fault(
                options, hits=100, seconds=0.5, settle=0.5
            )
            assert sender.stats.delivered == 0
            assert "timed out" in (sender.stats.last_error or "")

            proxy.default_mode = "forward"
            await sender.aclose(timeout=10)

            assert max_lag < MAX_LOOP_LAG
            assert len(recorder.hits()) == 100
            check_recovery(recorder, sender, traffic)

    asyncio.run(scenario())


def test_two_second_responses(matomo: Matomo) -> None:
    recorder, url = matomo
    recorder.delay = 2.0

    async def scenario() -> None:
        options = make_options(url, http_timeout=5.0)
        sender, traffic, max_lag = await run_through_fault(options, hits=100, seconds=0.5)
        await sender.aclose(timeout=15)

        assert max_lag < MAX_LOOP_LAG
        assert sender.stats.retried == 0
        # Hits gathered into few requests while each response took 2 seconds.
        assert sender.stats.http_requests <= 4
        assert len(recorder.hits()) == 100
        check_recovery(recorder, sender, traffic)

    asyncio.run(scenario())


def test_server_error_500(matomo: Matomo) -> None:
    recorder, url = matomo
    recorder.fail_next(Fault(status=500, body=b"<html>Internal Server Error</html>"), count=3)

    async def scenario() -> None:
        sender, traffic, max_lag = await run_through_fault(make_options(url), hits=50, seconds=0.2)
        await sender.aclose(timeout=10)

        assert max_lag < MAX_LOOP_LAG
        assert sender.stats.retried > 0
        assert sender.stats.dropped == 0
        assert len(recorder.hits()) == 50
        check_recovery(recorder, sender, traffic)

    asyncio.run(scenario())


def test_service_unavailable_with_retry_after(matomo: Matomo) -> None:
    recorder, url = matomo
    recorder.fail_next(Fault(status=503, headers={"retry-after": "1"}))

    async def scenario() -> None:
        options = make_options(url, retry_max_delay=0.05)
        # Settle past the Retry-After delay: a flush would cut the wait short.
        sender, traffic, max_lag = await run_through_fault(
            options, hits=40, seconds=0.2, settle=1.2
        )
        await sender.aclose(timeout=10)

        assert max_lag < MAX_LOOP_LAG
        assert len(recorder.hits()) == 40
        check_recovery(recorder, sender, traffic)

    asyncio.run(scenario())
    requests = recorder.requests()
    assert requests[0].status == 503
    assert requests[1].received_at - requests[0].received_at >= 0.9


def test_too_many_requests(matomo: Matomo) -> None:
    recorder, url = matomo
    recorder.fail_next(Fault(status=429, headers={"retry-after": "0"}), count=2)

    async def scenario() -> None:
        sender, traffic, max_lag = await run_through_fault(make_options(url), hits=30, seconds=0.1)
        await sender.aclose(timeout=10)

        assert max_lag < MAX_LOOP_LAG
        assert sender.stats.retried > 0
        assert len(recorder.hits()) == 30
        check_recovery(recorder, sender, traffic)

    asyncio.run(scenario())
    assert [request.status for request in recorder.requests()][:2] == [429, 429]


def test_invalid_indices_in_bulk_response(matomo: Matomo) -> None:
    recorder, url = matomo
    recorder.superuser_tokens = frozenset({"super"})
    recorder.tokens = frozenset({"super"})
    recorder.idsites = frozenset({1})
    hits = [make_hit(number, idsite=2 if number % 10 == 3 else 1) for number in range(50)]

    async def scenario() -> None:
        async with Sender(make_options(url, access_token="super")) as sender:
            for hit in hits:
                sender.submit(hit)
            await sender.flush(10)
            assert sender.stats.invalid == 5
            assert sender.stats.delivered == 45
            assert sender.stats.retried == 0
            assert_counters_add_up(sender)

    asyncio.run(scenario())

    assert_in_request_order(recorder.hits(), hits)
    assert [hit_number(hit) for hit in recorder.hits()] == [
        number for number in range(50) if number % 10 != 3
    ]
    [request] = recorder.requests()
    assert json.loads(request.response_body)["invalid_indices"] == [3, 13, 23, 33, 43]


def test_body_that_is_not_json(matomo: Matomo) -> None:
    recorder, url = matomo
    recorder.fail_next(Fault(status=200, body=b"<html>Welcome to Matomo</html>"), count=2)

    async def scenario() -> None:
        sender, traffic, max_lag = await run_through_fault(make_options(url), hits=30, seconds=0.1)
        await sender.aclose(timeout=10)

        assert max_lag < MAX_LOOP_LAG
        assert sender.stats.retried > 0
        assert "not a bulk tracking result" in (sender.stats.last_error or "")
        assert len(recorder.hits()) == 30
        check_recovery(recorder, sender, traffic)

    asyncio.run(scenario())


def test_connection_reset_mid_response(matomo: Matomo) -> None:
    recorder, url = matomo
    upstream_port = port_of(url)

    async def scenario() -> None:
        async with FaultProxy(upstream_port) as proxy:
            proxy.faults = deque(["reset", "reset"])
            sender, traffic, max_lag = await run_through_fault(
                make_options(proxy.url), hits=30, seconds=0.1
            )
            await sender.aclose(timeout=10)

            assert proxy.connections[:2] == ["reset", "reset"]
            assert max_lag < MAX_LOOP_LAG
            assert sender.stats.retried > 0
            assert len(recorder.hits()) == 30
            check_recovery(recorder, sender, traffic)

    asyncio.run(scenario())


def test_outage_that_ends(matomo: Matomo, caplog: pytest.LogCaptureFixture) -> None:
    recorder, url = matomo
    caplog.set_level(logging.INFO, "asgi_matomo.sender")
    recorder.fail_for(1.2, Fault(status=503))

    async def scenario() -> None:
        options = make_options(url, queue_max_hits=1000)
        sender, traffic, max_lag = await run_through_fault(options, hits=300, seconds=1.5)
        await sender.aclose(timeout=10)

        assert max_lag < MAX_LOOP_LAG
        assert sender.stats.dropped == 0
        assert len(recorder.hits()) == 300
        check_recovery(recorder, sender, traffic)

    asyncio.run(scenario())
    messages = [record.getMessage() for record in caplog.records]
    assert any("pausing delivery" in message for message in messages)
    assert any("works again" in message for message in messages)


def test_lost_response_stores_batch_twice(matomo: Matomo) -> None:
    """The one case of duplicates: Matomo stored a batch, then its response was lost."""
    recorder, url = matomo
    upstream_port = port_of(url)
    hits = [make_hit(number) for number in range(5)]

    async def scenario() -> None:
        async with FaultProxy(upstream_port) as proxy:
            proxy.faults = deque(["forward_then_reset"])
            async with Sender(make_options(proxy.url)) as sender:
                for hit in hits:
                    sender.submit(hit)
                await sender.flush(10)
                assert sender.stats.delivered == 5
                assert sender.stats.retried == 5
                assert_counters_add_up(sender)

    asyncio.run(scenario())
    assert [hit_number(hit) for hit in recorder.hits()] == [0, 1, 2, 3, 4] * 2


def test_shutdown_deadline_when_matomo_never_responds(matomo: Matomo) -> None:
    _, url = matomo
    upstream_port = port_of(url)

    async def scenario() -> tuple[int, float]:
        async with FaultProxy(upstream_port, default_mode="blackhole") as proxy:
            sender = Sender(make_options(proxy.url, http_timeout=30.0))
            await sender.start()
            for number in range(10):
                sender.submit(make_hit(number))
            started = time.monotonic()
            report = await sender.aclose(timeout=0.5)
            elapsed = time.monotonic() - started
            assert_counters_add_up(sender)
            return report.pending, elapsed

    pending, elapsed = asyncio.run(scenario())
    assert pending == 10
    assert elapsed < 5.0  # generous: the 0.5 s deadline cut the 30 s read timeout short
