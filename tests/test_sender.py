"""The sender against a recording Matomo served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import logging
import os
import random
import time
import weakref
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from asgi_matomo import encoding
from asgi_matomo import sender as sender_module
from asgi_matomo.sender import EXPIRY_AGE, FlushReport, Sender
from asgi_matomo.testing import Fault, RecordingMatomo, serve_app
from asgi_matomo.types import Hit
from delivery_helpers import (
    HtmlErrorOnMarker,
    Matomo,
    assert_counters_add_up,
    assert_in_request_order,
    free_port,
    hit_number,
    make_hit,
    make_options,
)

pytestmark = pytest.mark.server


SENDER_LOGGER = "asgi_matomo.sender"


def sender_records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """Return the sender's log records whose message contains `text`."""
    return [
        record
        for record in caplog.records
        if record.name == SENDER_LOGGER and text in record.getMessage()
    ]


def bulk_bodies(recorder: RecordingMatomo) -> list[dict[str, object]]:
    return [json.loads(request.body) for request in recorder.requests()]


# -- Batching and the bulk request ------------------------------------------------------


def test_hits_arrive_in_order_with_their_time(matomo: Matomo) -> None:
    recorder, url = matomo
    an_hour_ago = int(time.time()) - 3600
    hits = [make_hit(number, cdt=an_hour_ago + number) for number in range(25)]

    async def scenario() -> FlushReport:
        async with Sender(make_options(url, batch_max_hits=10)) as sender:
            for hit in hits:
                sender.submit(hit)
            report = await sender.flush(10)
            assert_counters_add_up(sender)
            assert sender.stats.batches_sent == 3
            assert sender.stats.http_requests == 3
        return report

    report = asyncio.run(scenario())

    stored = recorder.hits()
    assert [hit_number(hit) for hit in stored] == list(range(25))
    assert_in_request_order(stored, hits)
    assert recorder.bulk_request_count() == 3
    assert report == FlushReport(delivered=25, pending=0, dropped=0, invalid=0)


def test_batch_closes_on_age(matomo: Matomo) -> None:
    recorder, url = matomo

    async def scenario() -> None:
        async with Sender(make_options(url, batch_max_age=0.05)) as sender:
            for number in range(3):
                sender.submit(make_hit(number))
            stored = await asyncio.to_thread(recorder.wait_for_hits, 3, 10)
            assert len(stored) == 3

    asyncio.run(scenario())
    assert recorder.bulk_request_count() == 1


def test_full_batch_wakes_sender_before_its_age(matomo: Matomo) -> None:
    recorder, url = matomo

    async def scenario() -> None:
        options = make_options(url, batch_max_age=60.0, batch_max_hits=5)
        async with Sender(options) as sender:
            await asyncio.sleep(0.05)  # the sender now waits up to 60 s for hits
            for number in range(5):
                sender.submit(make_hit(number))
            stored = await asyncio.to_thread(recorder.wait_for_hits, 5, 10)
            assert len(stored) == 5

    asyncio.run(scenario())


def test_batch_closes_on_bytes(matomo: Matomo) -> None:
    recorder, url = matomo
    padding = "x" * 400
    hits = [make_hit(number, ua=padding) for number in range(40)]

    async def scenario() -> None:
        async with Sender(make_options(url, batch_max_bytes=3000)) as sender:
            for hit in hits:
                sender.submit(hit)
            await sender.flush(10)
            assert sender.stats.delivered == 40

    asyncio.run(scenario())

    requests = recorder.requests()
    assert len(requests) > 1
    for request in requests:
        assert len(request.body) <= 3000 or len(json.loads(request.body)["requests"]) == 1
    assert_in_request_order(recorder.hits(), hits)


def test_bulk_body_holds_hit_objects(matomo: Matomo) -> None:
    recorder, url = matomo

    async def scenario() -> None:
        async with Sender(make_options(url)) as sender:
            sender.submit(make_hit(1, cvar='{"1":["a","b"]}'))
            await sender.flush(10)

    asyncio.run(scenario())

    [request] = recorder.requests()
    assert request.method == "POST"
    assert request.path == "/matomo.php"
    assert request.query_string == ""
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("asgi-matomo")
    body = json.loads(request.body)
    assert list(body) == ["requests"]
    assert body["requests"] == [
        make_hit(1, cvar='{"1":["a","b"]}', cdt=body["requests"][0]["cdt"])
    ]


def test_token_travels_only_in_body(matomo: Matomo) -> None:
    recorder, url = matomo
    recorder.tokens = frozenset({"write-token-123"})

    async def scenario() -> None:
        async with Sender(make_options(url, access_token="write-token-123")) as sender:
            sender.submit(make_hit(1, cip="203.0.113.9"))
            await sender.flush(10)
            assert sender.stats.delivered == 1

    asyncio.run(scenario())

    [request] = recorder.requests()
    assert json.loads(request.body)["token_auth"] == "write-token-123"
    assert "write-token-123" not in request.query_string
    assert "write-token-123" not in request.path
    assert all("write-token-123" not in value for value in request.headers.values())
    assert recorder.hits()[0]["cip"] == "203.0.113.9"


@pytest.mark.parametrize("count", [1, 3, 250])
@pytest.mark.parametrize("token", [None, 'tok"en\\é-123'])
def test_body_is_encoded_hits_joined(matomo: Matomo, count: int, token: str | None) -> None:
    recorder, url = matomo
    if token is not None:
        recorder.tokens = frozenset({token})
    hits = [
        make_hit(number, action_name=f'café "{number}"\\\n', cvar='{"1":["a","b"]}')
        for number in range(count)
    ]

    async def scenario() -> None:
        options = make_options(url, access_token=token, batch_max_hits=count)
        async with Sender(options) as sender:
            for hit in hits:
                sender.submit(hit)
            await sender.flush(10)
            assert sender.stats.delivered == count

    asyncio.run(scenario())

    expected: dict[str, object] = {"requests": hits}
    if token is not None:
        expected["token_auth"] = token
    [request] = recorder.requests()
    # Compact JSON with characters outside ASCII written as UTF-8.
    assert request.body == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()


def test_retry_resends_encoded_bytes(matomo: Matomo) -> None:
    recorder, url = matomo
    recorder.fail_next(Fault(status=503))
    hits = [make_hit(number) for number in range(5)]

    def no_encoding(hit: object) -> bytes:
        raise AssertionError("the sender encoded a hit again")

    async def scenario() -> None:
        async with Sender(make_options(url)) as sender:
            for hit in hits:
                sender.submit(hit)
            sender._encode_hit = no_encoding
            await sender.flush(10)
            assert sender.stats.delivered == 5
            assert sender.stats.retried == 5

    asyncio.run(scenario())
    first, second = recorder.requests()
    assert first.body == second.body


# -- Dropped hits ---------------------------------------------------------------------


def test_full_queue_drops_and_warns_once(matomo: Matomo, caplog: pytest.LogCaptureFixture) -> None:
    recorder, url = matomo
    caplog.set_level(logging.WARNING, SENDER_LOGGER)

    async def scenario() -> None:
        sender = Sender(make_options(url, queue_max_hits=5))
        for number in range(8):
            sender.submit(make_hit(number))
        assert sender.stats.dropped_queue_full == 3
        assert sender.stats.queued == 5
        assert sender.pending_count() == 5
        report = await sender.aclose()
        assert report.delivered == 5
        assert_counters_add_up(sender)

    asyncio.run(scenario())

    assert [hit_number(hit) for hit in recorder.hits()] == [0, 1, 2, 3, 4]
    assert len(sender_records(caplog, "queue is full")) == 1


def test_full_queue_drops_without_encoding() -> None:
    url = f"http://127.0.0.1:{free_port()}/matomo.php"
    sender = Sender(make_options(url, queue_max_hits=2))
    sender.submit(make_hit(0))
    sender.submit(make_hit(1))
    encoded: list[Hit] = []
    encode = sender._encode_hit

    def counting_encode(hit: Hit) -> bytes:
        encoded.append(hit)
        return encode(hit)

    sender._encode_hit = counting_encode
    for number in range(2, 5):
        sender.submit(make_hit(number))

    assert encoded == []
    assert sender.stats.dropped_queue_full == 3
    assert sender.stats.queued == 2
    assert sender.pending_count() == 2


def test_full_queue_counts_unencodable_hit_as_full() -> None:
    url = f"http://127.0.0.1:{free_port()}/matomo.php"
    sender = Sender(make_options(url, queue_max_hits=1))
    sender.submit(make_hit(0))
    sender.submit({**make_hit(1), "e_v": b"bytes are not JSON"})  # type: ignore[dict-item]

    assert sender.stats.dropped_queue_full == 1
    assert sender.stats.dropped_rejected == 0
    assert sender.stats.queued == 1


def encoded_size(hit: Hit) -> int:
    """Return the size of `hit` in a bulk request body, in bytes."""
    return len(json.dumps(hit, separators=(",", ":"), ensure_ascii=False).encode())


def test_byte_cap_counts_exact_json_size(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/matomo.php"
    cap = 300_000
    # Latin-1 header bytes decode to characters outside ASCII: 2 bytes each in UTF-8.
    hits = [make_hit(number, ua="\u00e9" * (3000 * (number % 7 + 1))) for number in range(100)]
    sender = Sender(make_options(url, queue_max_bytes=cap))

    for hit in hits:
        sender.submit(hit)

    accepted = hits[: sender.stats.queued]
    assert sender._queue.total_bytes == sum(map(encoded_size, accepted))
    assert sender._queue.total_bytes <= cap
    assert sender._queue.total_bytes + encoded_size(hits[len(accepted)]) > cap
    assert sender.stats.dropped_queue_full == len(hits) - len(accepted)
    assert len(sender_records(caplog, "queue_max_bytes=300000")) == 1


def test_hit_larger_than_queue_dropped(matomo: Matomo, caplog: pytest.LogCaptureFixture) -> None:
    recorder, url = matomo
    cap = 300_000
    huge = make_hit(1, e_n="n" * cap)

    async def scenario() -> None:
        async with Sender(make_options(url, queue_max_bytes=cap)) as sender:
            for hit in (make_hit(0), huge, make_hit(2)):
                sender.submit(hit)
            await sender.flush(10)
            assert sender.stats.dropped_queue_full == 1
            assert sender.stats.delivered == 2
            assert_counters_add_up(sender)

    asyncio.run(scenario())

    assert [hit_number(hit) for hit in recorder.hits()] == [0, 2]
    [record] = sender_records(caplog, "more than queue_max_bytes (300000 bytes)")
    assert record.levelno == logging.WARNING
    assert f"Dropped a hit of {encoded_size(huge)} bytes of JSON" in record.getMessage()


def test_expired_hits_dropped_without_token(
    matomo: Matomo, caplog: pytest.LogCaptureFixture
) -> None:
    recorder, url = matomo
    too_old = int(time.time()) - EXPIRY_AGE - 10
    hits = [make_hit(0, cdt=too_old), make_hit(1, cdt=too_old), make_hit(2)]

    async def scenario() -> None:
        async with Sender(make_options(url)) as sender:
            for hit in hits:
                sender.submit(hit)
            await sender.flush(10)
            assert sender.stats.dropped_expired == 2
            assert sender.stats.delivered == 1
            assert_counters_add_up(sender)

    asyncio.run(scenario())

    assert [hit_number(hit) for hit in recorder.hits()] == [2]
    assert len(sender_records(caplog, "older than 24 hours")) == 1


def test_old_hits_kept_with_token(matomo: Matomo) -> None:
    recorder, url = matomo
    recorder.tokens = frozenset({"write-token"})
    two_days_ago = int(time.time()) - 2 * 86_400

    async def scenario() -> None:
        async with Sender(make_options(url, access_token="write-token")) as sender:
            sender.submit(make_hit(0, cdt=two_days_ago))
            await sender.flush(10)
            assert sender.stats.dropped_expired == 0
            assert sender.stats.delivered == 1

    asyncio.run(scenario())
    assert recorder.hits()[0]["cdt"] == str(two_days_ago)


def test_unencodable_hit_is_rejected(matomo: Matomo, caplog: pytest.LogCaptureFixture) -> None:
    recorder, url = matomo
    broken = make_hit(1)
    broken["dimension1"] = b"bytes are not JSON"  # type: ignore[assignment]

    async def scenario() -> None:
        async with Sender(make_options(url)) as sender:
            for hit in (make_hit(0), broken, make_hit(2)):
                sender.submit(hit)
            await sender.flush(10)
            assert sender.stats.dropped_rejected == 1
            assert sender.stats.delivered == 2
            assert_counters_add_up(sender)

    asyncio.run(scenario())

    assert [hit_number(hit) for hit in recorder.hits()] == [0, 2]
    [record] = sender_records(caplog, "cannot be encoded as JSON")
    assert record.levelno == logging.ERROR
    assert "dimension1" in record.getMessage()


# -- Responses that are not retried -------------------------------------------------------


def test_redirect_is_not_followed(matomo: Matomo, caplog: pytest.LogCaptureFixture) -> None:
    recorder, url = matomo
    target = url.replace("/matomo.php", "/moved/matomo.php")
    recorder.fail_next(Fault(status=301, headers={"location": target}))

    async def scenario() -> None:
        async with Sender(make_options(url)) as sender:
            for number in range(4):
                sender.submit(make_hit(number))
            await sender.flush(10)
            assert sender.stats.dropped_rejected == 4
            assert sender.stats.http_requests == 1
            assert_counters_add_up(sender)

    asyncio.run(scenario())

    assert [request.path for request in recorder.requests()] == ["/matomo.php"]
    [record] = sender_records(caplog, "redirected")
    assert record.levelno == logging.ERROR
    assert target in record.getMessage()
    assert "Set matomo_url" in record.getMessage()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_error_is_not_retried(matomo: Matomo, status: int) -> None:
    recorder, url = matomo
    recorder.fail_next(Fault(status=status))

    async def scenario() -> None:
        async with Sender(make_options(url)) as sender:
            sender.submit(make_hit(0))
            await sender.flush(10)
            sender.submit(make_hit(1))
            await sender.flush(10)
            assert sender.stats.dropped_rejected == 1
            assert sender.stats.delivered == 1
            assert sender.stats.retried == 0

    asyncio.run(scenario())
    assert [hit_number(hit) for hit in recorder.hits()] == [1]
    assert recorder.http_request_count() == 2


def test_payload_too_large_splits_batch(matomo: Matomo) -> None:
    recorder, url = matomo
    recorder.fail_next(Fault(status=413))
    hits = [make_hit(number) for number in range(10)]

    async def scenario() -> None:
        async with Sender(make_options(url)) as sender:
            for hit in hits:
                sender.submit(hit)
            await sender.flush(10)
            assert sender.stats.delivered == 10
            assert sender.stats.http_requests == 3

    asyncio.run(scenario())
    assert [len(body["requests"]) for body in bulk_bodies(recorder)] == [10, 5, 5]  # type: ignore[arg-type]
    assert_in_request_order(recorder.hits(), hits)


def test_invalid_hits_counted_not_retried(
    matomo: Matomo, caplog: pytest.LogCaptureFixture
) -> None:
    recorder, url = matomo
    recorder.superuser_tokens = frozenset({"super"})
    recorder.tokens = frozenset({"super"})
    recorder.idsites = frozenset({1})
    hits = [make_hit(number, idsite=2 if number in (3, 5) else 1) for number in range(8)]

    async def scenario() -> None:
        async with Sender(make_options(url, access_token="super")) as sender:
            for hit in hits:
                sender.submit(hit)
            await sender.flush(10)
            assert sender.stats.invalid == 2
            assert sender.stats.delivered == 6
            assert sender.stats.retried == 0
            assert sender.stats.http_requests == 1
            assert_counters_add_up(sender)

    asyncio.run(scenario())

    assert [hit_number(hit) for hit in recorder.hits()] == [0, 1, 2, 4, 6, 7]
    assert len(sender_records(caplog, "rejected 2 of 8 hits as invalid")) == 1


def test_partial_confirmation_is_not_retried(
    matomo: Matomo, caplog: pytest.LogCaptureFixture
) -> None:
    recorder, url = matomo
    partial = b'{"status": "success", "tracked": 3, "invalid": 0}'
    recorder.fail_next(Fault(status=200, body=partial, store=True))

    async def scenario() -> None:
        async with Sender(make_options(url)) as sender:
            for number in range(5):
                sender.submit(make_hit(number))
            await sender.flush(10)
            assert sender.stats.delivered == 3
            assert sender.stats.dropped_unconfirmed == 2
            assert sender.stats.http_requests == 1
            assert_counters_add_up(sender)

    asyncio.run(scenario())
    assert len(recorder.hits()) == 5  # stored once each, never sent again
    [record] = sender_records(caplog, "confirmed only 3 tracked")
    assert record.levelno == logging.ERROR


# -- Responses that are retried -----------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=200, body=b'{"status": "error", "tracked": 0}'),
        Fault(status=200, body=b'{"status": "success", "tracked": 0, "invalid": 0}'),
        Fault(status=200, body=b"<html>Matomo</html>"),
        Fault(status=200, body=b'["not", "an", "object"]'),
        Fault(status=500, body=b'{"status": "error", "tracked": 0, "invalid": 0}'),
        Fault(status=502),
        Fault(status=503),
        Fault(status=504),
        Fault(status=408),
        Fault(status=429),
    ],
    ids=[
        "status-error",
        "nothing-tracked",
        "html",
        "json-array",
        "500-json",
        "502",
        "503",
        "504",
        "408",
        "429",
    ],
)
def test_failed_batch_is_retried(matomo: Matomo, fault: Fault) -> None:
    recorder, url = matomo
    recorder.fail_next(fault)
    hits = [make_hit(number) for number in range(3)]

    async def scenario() -> None:
        async with Sender(make_options(url)) as sender:
            for hit in hits:
                sender.submit(hit)
            await sender.flush(10)
            assert sender.stats.delivered == 3
            assert sender.stats.retried >= 1
            assert sender.stats.last_error is not None
            assert_counters_add_up(sender)

    asyncio.run(scenario())
    assert_in_request_order(recorder.hits(), hits)
    assert len(recorder.hits()) == 3


def test_retry_after_delays_next_attempt(matomo: Matomo) -> None:
    recorder, url = matomo
    recorder.fail_next(Fault(status=503, headers={"retry-after": "1"}))

    async def scenario() -> None:
        async with Sender(make_options(url, retry_max_delay=0.05)) as sender:
            sender.submit(make_hit(0))
            await sender.flush(10)
            assert sender.stats.delivered == 1

    asyncio.run(scenario())
    first, second = recorder.requests()
    assert second.received_at - first.received_at >= 0.9


def test_retry_after_capped(matomo: Matomo) -> None:
    recorder, url = matomo
    recorder.fail_next(Fault(status=429, headers={"retry-after": "3600"}))

    async def scenario() -> None:
        options = make_options(url, retry_max_delay=0.05, retry_after_max=0.3)
        async with Sender(options) as sender:
            sender.submit(make_hit(0))
            await sender.flush(10)
            assert sender.stats.delivered == 1

    asyncio.run(scenario())
    first, second = recorder.requests()
    assert second.received_at - first.received_at >= 0.25


# -- Poison hits --------------------------------------------------------------------------


@pytest.mark.parametrize("poison_number", [0, 7, 19])
def test_poison_hit_is_isolated(
    matomo: Matomo, caplog: pytest.LogCaptureFixture, poison_number: int
) -> None:
    recorder, url = matomo
    recorder.poison = lambda hit: hit["url"].endswith(f"/{poison_number}")
    hits = [make_hit(number) for number in range(20)]
    later = [make_hit(number) for number in range(20, 30)]

    async def scenario() -> None:
        async with Sender(make_options(url, batch_max_hits=20)) as sender:
            for hit in hits:
                sender.submit(hit)
            await asyncio.sleep(0.01)
            for hit in later:
                sender.submit(hit)
            await sender.flush(20)
            assert sender.stats.dropped_rejected == 1
            assert sender.stats.delivered == 29
            assert_counters_add_up(sender)

    asyncio.run(scenario())

    expected = [number for number in range(30) if number != poison_number]
    assert [hit_number(hit) for hit in recorder.hits()] == expected
    [record] = sender_records(caplog, "Dropped a hit that made Matomo fail")
    assert record.levelno == logging.ERROR


def test_poison_hit_without_counts_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    recorder = RecordingMatomo()
    app = HtmlErrorOnMarker(recorder, marker=b"/items/13")
    hits = [make_hit(number) for number in range(16)]

    async def scenario() -> None:
        with serve_app(app) as base_url:
            options = make_options(f"{base_url}/matomo.php", batch_max_hits=16)
            async with Sender(options) as sender:
                for hit in hits:
                    sender.submit(hit)
                await sender.flush(30)
                assert sender.stats.dropped_rejected == 1
                assert sender.stats.delivered == 15
                assert_counters_add_up(sender)

    asyncio.run(scenario())
    assert [hit_number(hit) for hit in recorder.hits()] == [n for n in range(16) if n != 13]


def test_transient_500_keeps_isolated_hit(matomo: Matomo) -> None:
    recorder, url = matomo
    failures_left = 3

    def fails_three_times(hit: Mapping[str, str]) -> bool:
        # Hit 3 fails two bulk requests, which splits it out, and then once on its
        # own, like a hit that meets a deadlock three times.
        nonlocal failures_left
        if hit_number(hit) == 3 and failures_left:
            failures_left -= 1
            return True
        return False

    recorder.poison = fails_three_times
    hits = [make_hit(number) for number in range(10)]

    async def scenario() -> None:
        async with Sender(make_options(url, batch_max_hits=10)) as sender:
            for hit in hits:
                sender.submit(hit)
            await sender.flush(10)
            assert sender.stats.dropped == 0
            assert sender.stats.delivered == 10
            assert_counters_add_up(sender)

    asyncio.run(scenario())
    assert_in_request_order(recorder.hits(), hits)


class RandomServerErrors:
    """ASGI app that responds 500 to a random share of requests and passes the rest to `app`.

    Half of the 500 responses carry Matomo's counts, which blame a random hit.
    """

    def __init__(self, app: RecordingMatomo, share: float, seed: int) -> None:
        self.app = app
        self.share = share
        self.rng = random.Random(seed)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.rng.random() < self.share:
            while (await receive()).get("more_body", False):
                pass
            body = b""
            if self.rng.random() < 0.5:
                counts = {"status": "error", "tracked": self.rng.randrange(4), "invalid": 0}
                body = json.dumps(counts).encode()
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_500s_drop_no_hit(seed: int) -> None:
    recorder = RecordingMatomo()
    hits = [make_hit(number) for number in range(300)]

    async def scenario() -> None:
        with serve_app(RandomServerErrors(recorder, 0.5, seed)) as base_url:
            options = make_options(
                f"{base_url}/matomo.php",
                batch_max_hits=20,
                retry_initial_delay=0.001,
                retry_max_delay=0.005,
                breaker_failures=1000,
            )
            async with Sender(options) as sender:
                for hit in hits:
                    sender.submit(hit)
                await sender.flush(60)
                assert sender.stats.dropped == 0
                assert sender.stats.delivered == 300
                assert_counters_add_up(sender)

    asyncio.run(scenario())
    assert_in_request_order(recorder.hits(), hits)
    assert len(recorder.hits()) == 300


def test_poison_hit_with_int_key_dropped_once(matomo: Matomo) -> None:
    recorder, url = matomo
    recorder.poison = lambda hit: hit.get("e_c") == "bad"
    bad = make_hit(2, e_c="bad", e_a="x")
    bad[5] = "x"  # type: ignore[index]
    hits = [make_hit(0), make_hit(1), bad, *(make_hit(number) for number in range(3, 20))]

    async def scenario() -> None:
        async with Sender(make_options(url, batch_max_hits=5)) as sender:
            for hit in hits:
                sender.submit(hit)
            await sender.flush(20)
            assert sender.stats.dropped_rejected == 1
            assert sender.stats.delivered == 19
            assert_counters_add_up(sender)

    asyncio.run(scenario())
    assert [hit_number(hit) for hit in recorder.hits()] == [n for n in range(20) if n != 2]


def test_internal_error_drops_only_its_hit(
    matomo: Matomo, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder, url = matomo
    real_bulk_body = encoding.bulk_body

    def failing_bulk_body(entries: list[bytes], start: bytes, end: bytes) -> bytes:
        if any(b'/items/7"' in entry for entry in entries):
            raise KeyError("a bug set off by hit 7")
        return real_bulk_body(entries, start, end)

    monkeypatch.setattr(sender_module, "bulk_body", failing_bulk_body)
    hits = [make_hit(number) for number in range(16)]

    async def scenario() -> None:
        async with Sender(make_options(url, batch_max_hits=16)) as sender:
            for hit in hits:
                sender.submit(hit)
            await sender.flush(10)
            assert sender.stats.dropped_rejected == 1
            assert sender.stats.delivered == 15
            assert_counters_add_up(sender)
            assert sender.stats.last_error is not None
            assert "KeyError" in sender.stats.last_error

    asyncio.run(scenario())

    assert [hit_number(hit) for hit in recorder.hits()] == [n for n in range(16) if n != 7]
    records = sender_records(caplog, "failed with an unexpected KeyError")
    assert records
    assert all(record.levelno == logging.ERROR for record in records)
    assert all(record.exc_info is None for record in records)
    assert url in records[0].getMessage()


def test_closed_client_logged_once_and_hits_kept(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/matomo.php"

    async def scenario() -> None:
        client = httpx.AsyncClient()
        await client.aclose()
        options = make_options(url, client=client, log_interval=60.0, breaker_failures=1000)
        sender = Sender(options)
        await sender.start()
        for number in range(3):
            sender.submit(make_hit(number))
        await asyncio.sleep(0.5)
        assert sender.stats.http_requests >= 3
        assert sender.stats.dropped == 0
        assert sender.pending_count() == 3
        assert sender.stats.last_error is not None
        assert url in sender.stats.last_error
        await sender.aclose(timeout=0.1)

    asyncio.run(scenario())

    [record] = sender_records(caplog, "Cannot send hits to Matomo")
    assert record.levelno == logging.ERROR
    assert record.exc_info is None
    assert "\n" not in record.getMessage()
    assert f"the HTTP client cannot send to {url} (RuntimeError:" in record.getMessage()


def test_outage_answering_500_drops_nothing(matomo: Matomo) -> None:
    recorder, url = matomo
    error = b'{"status": "error", "tracked": 0, "invalid": 0}'
    recorder.fail_for(0.8, Fault(status=500, body=error))
    hits = [make_hit(number) for number in range(12)]

    async def scenario() -> None:
        async with Sender(make_options(url)) as sender:
            for hit in hits:
                sender.submit(hit)
            await asyncio.sleep(1.0)
            await sender.flush(10)
            assert sender.stats.dropped == 0
            assert sender.stats.delivered == 12
            assert_counters_add_up(sender)

    asyncio.run(scenario())
    assert [hit_number(hit) for hit in recorder.hits()] == list(range(12))


# -- Breaker, flush and shutdown ---------------------------------------------------------


def test_breaker_pauses_after_failures(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/matomo.php"

    async def scenario() -> None:
        options = make_options(url, breaker_failures=2, breaker_cooldown=30.0)
        sender = Sender(options)
        await sender.start()
        sender.submit(make_hit(0))
        await asyncio.sleep(0.8)
        # Two failures opened the breaker; the cooldown stops further attempts.
        assert sender.stats.http_requests == 2
        sender.submit(make_hit(1))
        assert sender.pending_count() == 2
        report = await sender.aclose(timeout=0.3)
        assert report.pending == 2

    asyncio.run(scenario())
    [record] = sender_records(caplog, "pausing delivery")
    assert record.levelno == logging.WARNING


def test_flush_without_hits_returns_at_once(matomo: Matomo) -> None:
    _, url = matomo

    async def scenario() -> FlushReport:
        async with Sender(make_options(url)) as sender:
            return await sender.flush(10)

    assert asyncio.run(scenario()) == FlushReport(delivered=0, pending=0, dropped=0, invalid=0)


def test_aclose_logs_one_summary_line(matomo: Matomo, caplog: pytest.LogCaptureFixture) -> None:
    recorder, url = matomo
    caplog.set_level(logging.INFO, SENDER_LOGGER)

    async def scenario() -> FlushReport:
        sender = Sender(make_options(url))
        await sender.start()
        for number in range(7):
            sender.submit(make_hit(number))
        return await sender.aclose()

    report = asyncio.run(scenario())

    assert report.delivered == 7
    assert report.pending == 0
    [record] = sender_records(caplog, "sender stopped")
    assert record.levelno == logging.INFO
    assert "7 hits delivered, 0 pending and lost, 0 dropped" in record.getMessage()
    assert len(recorder.hits()) == 7


def test_aclose_reports_lost_hits(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/matomo.php"

    async def scenario() -> tuple[FlushReport, float]:
        sender = Sender(make_options(url))
        await sender.start()
        for number in range(4):
            sender.submit(make_hit(number))
        started = time.monotonic()
        report = await sender.aclose(timeout=0.3)
        return report, time.monotonic() - started

    report, elapsed = asyncio.run(scenario())

    assert report.pending == 4
    assert report.delivered == 0
    assert elapsed < 5.0  # generous: proves the deadline ended the flush
    [record] = sender_records(caplog, "sender stopped")
    assert record.levelno == logging.ERROR
    assert "4 pending and lost" in record.getMessage()


def test_sender_restarts_after_aclose(matomo: Matomo) -> None:
    recorder, url = matomo
    sender = Sender(make_options(url))

    async def first_life() -> None:
        await sender.start()
        sender.submit(make_hit(0))
        await sender.aclose()

    async def second_life() -> None:
        await sender.start()
        sender.submit(make_hit(1))
        await sender.aclose()

    asyncio.run(first_life())
    asyncio.run(second_life())

    assert [hit_number(hit) for hit in recorder.hits()] == [0, 1]
    assert sender.stats.delivered == 2


def test_hits_queued_before_start_are_sent(matomo: Matomo) -> None:
    recorder, url = matomo
    sender = Sender(make_options(url))
    sender.submit(make_hit(0))

    async def scenario() -> None:
        await sender.aclose()

    asyncio.run(scenario())
    assert [hit_number(hit) for hit in recorder.hits()] == [0]


def test_ensure_started_needs_running_loop(matomo: Matomo) -> None:
    _, url = matomo
    sender = Sender(make_options(url))
    sender.ensure_started()
    assert sender._task is None

    async def scenario() -> None:
        sender.ensure_started()
        task = sender._task
        assert task is not None
        sender.ensure_started()
        assert sender._task is task
        await sender.aclose()

    asyncio.run(scenario())


def test_failure_lines_name_url_without_password(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    url = f"http://user:s3cret-pass@127.0.0.1:{port}/matomo.php"
    shown = f"http://127.0.0.1:{port}/matomo.php"

    async def scenario() -> None:
        sender = Sender(make_options(url, breaker_failures=2))
        await sender.start()
        sender.submit(make_hit(0))
        await asyncio.sleep(0.3)
        assert sender.stats.last_error is not None
        assert shown in sender.stats.last_error
        await sender.aclose(timeout=0.1)

    asyncio.run(scenario())

    [retry, *_] = sender_records(caplog, "Sending 1 hit to Matomo failed")
    assert f"request to {shown} failed (ConnectError" in retry.getMessage()
    [breaker] = sender_records(caplog, "pausing delivery")
    assert f"Delivery to Matomo at {shown} failed 2 times in a row" in breaker.getMessage()
    assert "s3cret-pass" not in caplog.text
    assert "user:" not in caplog.text


def test_shutdown_promises_no_later_retry(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/matomo.php"

    async def scenario() -> None:
        options = make_options(
            url, retry_initial_delay=20.0, retry_max_delay=60.0, breaker_failures=1
        )
        sender = Sender(options)
        await sender.start()
        sender.submit(make_hit(0))
        await sender.aclose(timeout=1.0)

    asyncio.run(scenario())

    [retry] = sender_records(caplog, "Sending 1 hit to Matomo failed")
    assert "Retrying in" not in retry.getMessage()
    assert "Shutdown deadline in 1.0 s; 1 hit pending" in retry.getMessage()
    assert sender_records(caplog, "pausing delivery") == []


def test_summary_repeats_last_error(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()

    async def scenario() -> None:
        sender = Sender(make_options(f"http://127.0.0.1:{port}/matomo.php"))
        await sender.start()
        sender.submit(make_hit(0))
        await sender.aclose(timeout=0.2)

    asyncio.run(scenario())

    [record] = sender_records(caplog, "sender stopped")
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert message.startswith("Matomo sender stopped: 0 hits delivered, 1 pending and lost")
    assert f". Last error: request to http://127.0.0.1:{port}/matomo.php failed" in message


def test_summary_counts_one_hit_singular(matomo: Matomo, caplog: pytest.LogCaptureFixture) -> None:
    _, url = matomo
    caplog.set_level(logging.INFO, SENDER_LOGGER)

    async def scenario() -> None:
        sender = Sender(make_options(url))
        await sender.start()
        sender.submit(make_hit(0))
        await sender.aclose()

    asyncio.run(scenario())

    [record] = sender_records(caplog, "sender stopped")
    assert record.getMessage().startswith("Matomo sender stopped: 1 hit delivered, 0 pending")
    assert "Last error" not in record.getMessage()


# -- Without a lifespan -------------------------------------------------------------------


def test_start_without_lifespan_warns_once(
    matomo: Matomo, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = matomo
    registered: list[tuple[object, ...]] = []
    monkeypatch.setattr(atexit, "register", lambda *args: registered.append(args))

    async def scenario() -> None:
        sender = Sender(make_options(url))
        sender.ensure_started()
        sender.ensure_started()
        await sender.aclose()
        sender.ensure_started()
        await sender.aclose()

    asyncio.run(scenario())

    [record] = sender_records(caplog, "runs no ASGI lifespan")
    assert record.levelno == logging.WARNING
    assert "hits still queued when the process exits are lost" in record.getMessage()
    assert "uvicorn --lifespan on" in record.getMessage()
    assert len(registered) == 1


def test_start_with_lifespan_does_not_warn(
    matomo: Matomo, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = matomo
    registered: list[tuple[object, ...]] = []
    monkeypatch.setattr(atexit, "register", lambda *args: registered.append(args))

    async def scenario() -> None:
        sender = Sender(make_options(url))
        await sender.start()
        sender.ensure_started()
        await sender.aclose()

    asyncio.run(scenario())

    assert sender_records(caplog, "lifespan") == []
    assert registered == []


def test_hits_lost_at_exit_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    sender = Sender(make_options(f"http://127.0.0.1:{free_port()}/matomo.php"))
    sender.submit(make_hit(0))
    sender.submit(make_hit(1))

    sender_module._log_hits_lost_at_exit(weakref.ref(sender))

    [record] = sender_records(caplog, "at exit")
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("2 hits still queued for Matomo at exit are lost")


def test_exit_hook_quiet_without_pending_hits(caplog: pytest.LogCaptureFixture) -> None:
    sender = Sender(make_options(f"http://127.0.0.1:{free_port()}/matomo.php"))
    sender_module._log_hits_lost_at_exit(weakref.ref(sender))
    reference = weakref.ref(Sender(make_options("http://127.0.0.1:9/matomo.php")))
    gc.collect()
    sender_module._log_hits_lost_at_exit(reference)
    assert sender_records(caplog, "at exit") == []


# -- HTTP client ----------------------------------------------------------------------------


def test_own_client_settings(matomo: Matomo) -> None:
    _, url = matomo

    async def scenario() -> None:
        sender = Sender(make_options(url, connect_timeout=0.5, http_timeout=1.5))
        client = sender._get_client()
        assert client.follow_redirects is False
        assert client.timeout.connect == 0.5
        assert client.timeout.read == 1.5
        assert client.timeout.write == 1.5
        await sender.aclose()
        assert client.is_closed

    asyncio.run(scenario())


def test_user_client_is_used_and_left_open(matomo: Matomo) -> None:
    recorder, url = matomo

    async def scenario() -> None:
        async with httpx.AsyncClient(headers={"X-Deployment": "blue"}) as client:
            sender = Sender(make_options(url, client=client))
            await sender.start()
            sender.submit(make_hit(0))
            await sender.aclose()
            assert not client.is_closed

    asyncio.run(scenario())
    [request] = recorder.requests()
    assert request.headers["x-deployment"] == "blue"
    assert request.headers["content-type"] == "application/json"


def test_token_never_logged(matomo: Matomo, caplog: pytest.LogCaptureFixture) -> None:
    recorder, url = matomo
    token = "SECRET-TOKEN-0123456789"
    recorder.tokens = frozenset({token})
    echo = f"<html>token_auth {token} is invalid</html>".encode()
    recorder.fail_next(Fault(status=200, body=echo), count=2)
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with Sender(make_options(url, access_token=token)) as sender:
            sender.submit(make_hit(0))
            await sender.flush(10)
            assert sender.stats.delivered == 1
            assert sender.stats.last_error is not None
            assert token not in sender.stats.last_error
            assert "[redacted]" in sender.stats.last_error

    asyncio.run(scenario())
    assert token not in caplog.text


# -- Processes and event loops ----------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_starts_fresh(matomo: Matomo) -> None:
    _, url = matomo
    sender = Sender(make_options(url))
    for number in range(3):
        sender.submit(make_hit(number))
    assert sender.pending_count() == 3

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child process
        state = {
            "pending": sender.pending_count(),
            "queued": sender.stats.queued,
            "task": sender._task is None,
        }
        sender.submit(make_hit(9))
        state["pending_after_submit"] = sender.pending_count()
        os.write(write_end, json.dumps(state).encode())
        os._exit(0)

    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_state = json.loads(pipe.read())
    os.waitpid(pid, 0)

    assert child_state == {"pending": 0, "queued": 0, "task": True, "pending_after_submit": 1}
    assert sender.pending_count() == 3
    asyncio.run(sender.aclose())


def test_changed_process_id_resets_state(matomo: Matomo) -> None:
    _, url = matomo
    sender = Sender(make_options(url))
    sender.submit(make_hit(0))
    sender.stats.delivered = 5
    sender._pid = -1  # as if this object came from another process

    async def scenario() -> None:
        await sender.start()
        assert sender.pending_count() == 0
        assert sender.stats.delivered == 0
        await sender.aclose()

    asyncio.run(scenario())
