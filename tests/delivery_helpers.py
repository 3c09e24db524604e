"""Helpers for the delivery tests: fast options, numbered hits, a fault-injecting TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from asgi_matomo.options import Options, parse_options
from asgi_matomo.sender import Sender
from asgi_matomo.testing import RecordingMatomo, serve_app
from asgi_matomo.types import Hit

# Delivery options that keep the tests fast: short batch age, retry delays,
# cooldown and timeouts. Each test overrides what it checks.
FAST_OPTIONS: dict[str, Any] = {
    "batch_max_age": 0.05,
    "retry_initial_delay": 0.02,
    "retry_max_delay": 0.2,
    "retry_after_max": 2.0,
    "breaker_failures": 5,
    "breaker_cooldown": 0.3,
    "connect_timeout": 0.5,
    "http_timeout": 1.0,
    "shutdown_timeout": 5.0,
}

URL_PREFIX = "https://app.example/items/"


def make_options(matomo_url: str, **overrides: Any) -> Options:
    """Return validated options for `matomo_url` with `FAST_OPTIONS` and `overrides`."""
    arguments = {**FAST_OPTIONS, **overrides}
    return parse_options(matomo_url=matomo_url, idsite=1, **arguments)


def make_hit(number: int, *, cdt: int | None = None, **extra: str | int) -> Hit:
    """Return a hit whose `url` ends with `number`, timed `cdt` (default: now)."""
    hit: Hit = {
        "idsite": 1,
        "rec": 1,
        "apiv": 1,
        "send_image": 0,
        "url": f"{URL_PREFIX}{number}",
        "action_name": f"/items/{number}",
        "cdt": int(time.time()) if cdt is None else cdt,
    }
    hit.update(extra)
    return hit


def hit_number(hit: Mapping[str, Any]) -> int:
    """Return the number that `make_hit` put at the end of the hit's url."""
    return int(str(hit["url"]).removeprefix(URL_PREFIX))


def port_of(url: str) -> int:
    """Return the port of an http URL that names one."""
    port = httpx.URL(url).port
    assert port is not None
    return port


def free_port() -> int:
    """Return a port on 127.0.0.1 where nothing listens (so connecting is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def assert_counters_add_up(sender: Sender) -> None:
    """Check that every queued hit is delivered, invalid, dropped or pending, exactly once.

    `stats.pending` is derived from the other counters, so the check compares
    it with the hits in the sender's queue and in flight.
    """
    stats = sender.stats
    accounted = (
        stats.delivered
        + stats.invalid
        + stats.dropped_expired
        + stats.dropped_rejected
        + stats.dropped_unconfirmed
        + stats.pending
    )
    assert stats.queued == accounted, stats.snapshot()
    assert stats.queued == sender.queued_count(), stats.snapshot()
    assert stats.pending == sender.pending_count(), stats.snapshot()


def assert_in_request_order(stored: Sequence[Mapping[str, Any]], sent: Sequence[Hit]) -> None:
    """Check that stored hits are distinct, in the order sent, each with its original time."""
    numbers = [hit_number(hit) for hit in stored]
    assert len(numbers) == len(set(numbers)), "a hit was stored twice"
    assert numbers == sorted(numbers), "hits were stored out of request order"
    sent_by_number = {hit_number(hit): hit for hit in sent}
    for hit in stored:
        original = sent_by_number[hit_number(hit)]
        assert hit["cdt"] == str(original["cdt"]), "a hit lost its original time"


# A recording Matomo and its URL, as the fixtures in conftest.py yield them.
Matomo = tuple[RecordingMatomo, str]


class FakeClock:
    """Clock for code that takes a `clock` callable: returns `now`, which tests advance."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def serve_recorder() -> Iterator[tuple[RecordingMatomo, str]]:
    """Yield a recording Matomo served by uvicorn on loopback, with its base URL."""
    recorder = RecordingMatomo()
    with serve_app(recorder) as base_url:
        yield recorder, base_url


def emptied_recorder(
    served: tuple[RecordingMatomo, str],
) -> Iterator[tuple[RecordingMatomo, str]]:
    """Yield the served recorder, emptied and with default settings, and its tracking URL."""
    recorder, base_url = served
    recorder.reset()
    recorder.delay = 0.0
    recorder.poison = None
    recorder.tokens = frozenset()
    recorder.superuser_tokens = frozenset()
    recorder.idsites = None
    yield recorder, f"{base_url}/matomo.php"
    recorder.reset()


class LoopLagMonitor:
    """Measure how late the event loop wakes a task that sleeps in short steps.

    A sender that blocked the loop (a synchronous call, a long computation)
    shows up as a large `max_lag`.
    """

    def __init__(self, step: float = 0.005) -> None:
        self.step = step
        self.max_lag = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLagMonitor:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.step)
            self.max_lag = max(self.max_lag, time.monotonic() - started - self.step)


class FaultProxy:
    """TCP server on 127.0.0.1 that forwards to an upstream or injects a transport fault.

    Each new connection takes the next mode from `faults`, or `default_mode`
    when `faults` is empty:

    - "forward": relay bytes both ways to the upstream port.
    - "blackhole": accept, read, and never send anything.
    - "reset": read the request, send the start of a response, then reset the
      connection (TCP RST). The request never reaches the upstream.
    - "forward_then_reset": relay the request to the upstream, send the start of
      its response, then reset: the upstream stored the hits but the client
      never reads the result.

    Runs in the event loop of the test, like the sender.
    """

    def __init__(self, upstream_port: int, *, default_mode: str = "forward") -> None:
        self.upstream_port = upstream_port
        self.default_mode = default_mode
        self.faults: deque[str] = deque()
        self.connections: list[str] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/matomo.php"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        mode = self.faults.popleft() if self.faults else self.default_mode
        self.connections.append(mode)
        try:
            if mode == "forward":
                await self._forward(reader, writer)
            elif mode == "blackhole":
                while await reader.read(65536):
                    pass
                await asyncio.sleep(3600)
            elif mode == "reset":
                await _read_request(reader)
                writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n{"status":"succ')
                await writer.drain()
                _reset(writer)
            elif mode == "forward_then_reset":
                request = await _read_request(reader)
                response = await self._exchange(request)
                writer.write(response[: len(response) // 2])
                await writer.drain()
                _reset(writer)
            else:
                raise ValueError(f"unknown FaultProxy mode {mode!r}")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _exchange(self, request: bytes) -> bytes:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.upstream_port
        )
        upstream_writer.write(request)
        await upstream_writer.drain()
        response = await _read_response(upstream_reader)
        upstream_writer.close()
        return response

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.upstream_port
        )

        async def relay(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                target.write(data)
                await target.drain()
            target.close()

        try:
            await asyncio.gather(relay(reader, upstream_writer), relay(upstream_reader, writer))
        finally:
            upstream_writer.close()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """Read one HTTP/1.1 request with a Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = _content_length(head)
    return head + await reader.readexactly(length)


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = _content_length(head)
    return head + await reader.readexactly(length)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class HtmlErrorOnMarker:
    """ASGI app that responds 500 with an HTML page to a request whose body contains `marker`.

    This is how PHP reports a fatal error: no JSON, so no count shows which
    hit failed. Other requests go to `app`.
    """

    def __init__(self, app: Any, marker: bytes) -> None:
        self.app = app
        self.marker = marker

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if self.marker in body:
            page = b"<html><body>Fatal error: Allowed memory size exhausted</body></html>"
            headers = [(b"content-type", b"text/html"), (b"content-length", b"%d" % len(page))]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": page})
            return

        replay = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive_again() -> Any:
            return replay.pop() if replay else await receive()

        await self.app(scope, receive_again, send)
