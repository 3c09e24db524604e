"""Measure what delivering a hit costs the app process, per hit, for several batch sizes.

Three parts, all in one process whose CPU time is read with time.process_time
(the endpoint runs in its own process, so its work is not counted):

1. ``encoding``: one hit as a URL query string (what a single GET or form POST
   carries) and as JSON (what a bulk request carries), with ``json.dumps`` and,
   when orjson (asgi-matomo's ``speedups`` extra) is installed, ``orjson.dumps``.
2. ``clients``: ``json.dumps`` of a bulk body plus one POST of it to the loopback
   endpoint, through ``httpx.AsyncClient`` and through a bare HTTP/1.1
   client on asyncio streams (a lower bound for any client).
3. ``sender``: asgi-matomo's own sender from this checkout, fed hits with
   ``submit`` and drained with ``flush``; skipped when it cannot be imported.

Prints one JSON line prefixed with ``RESULT`` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

BATCH_SIZES = (1, 10, 50, 100, 200, 500, 1000)
# A hit of the size asgi-matomo builds for a browser request with a referrer.
# cdt is the time of the request: Matomo rejects a cdt 24 hours old or older
# without a token, and the sender drops such hits before sending them.
SAMPLE_HIT: dict[str, str | int] = {
    "idsite": 1,
    "rec": 1,
    "apiv": 1,
    "send_image": 0,
    "rand": 1234567890,
    "cdt": int(time.time()),
    "url": "https://shop.example.org/items/42?page=1&sort=name",
    "action_name": "/items/42?page=1&sort=name",
    "pf_srv": 3,
    "ua": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "lang": "en-US,en;q=0.9,de;q=0.8",
    "urlref": "https://shop.example.org/items?page=1",
    "cvar": '{"1": ["http_status_code", "200"], "2": ["http_method", "GET"]}',
}


def _per_call_ns(function: Callable[[], object], calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        function()
    return (time.perf_counter_ns() - started) / calls


def measure_encoding(repeats: int) -> dict[str, float | None]:
    """Return the median µs per call of each encoding of SAMPLE_HIT.

    ``orjson_dumps_us`` is None when orjson cannot be imported.
    """
    orjson_dumps: Callable[[Any], bytes] | None
    try:
        from orjson import dumps as orjson_dumps
    except ImportError:
        orjson_dumps = None

    calls = 20_000
    urlencoded: list[float] = []
    as_json: list[float] = []
    as_orjson: list[float] = []
    for _ in range(repeats):
        urlencoded.append(_per_call_ns(lambda: urllib.parse.urlencode(SAMPLE_HIT), calls))
        as_json.append(_per_call_ns(lambda: json.dumps(SAMPLE_HIT), calls))
        if orjson_dumps is not None:
            as_orjson.append(_per_call_ns(lambda: orjson_dumps(SAMPLE_HIT), calls))
    return {
        "urlencode_us": statistics.median(urlencoded) / 1000,
        "json_dumps_us": statistics.median(as_json) / 1000,
        "orjson_dumps_us": statistics.median(as_orjson) / 1000 if as_orjson else None,
        "hit_json_bytes": len(json.dumps(SAMPLE_HIT)),
    }


class StreamClient:
    """HTTP/1.1 keep-alive POSTs over one asyncio stream, with no features at all."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.path = parsed.path or "/"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode("ascii")
        self.writer.write(head + body)
        await self.writer.drain()
        header_block = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header_block.split(b" ", 2)[1])
        length = 0
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


def _posts_for(batch_size: int) -> int:
    """Return how many POSTs to time: about 20,000 hits, between 20 and 2,000 requests."""
    return max(20, min(2000, 20_000 // batch_size))


async def _cpu_per_hit_us(post: Callable[[bytes], Awaitable[int]], batch_size: int) -> float:
    batch = [SAMPLE_HIT] * batch_size
    posts = _posts_for(batch_size)
    started = time.process_time_ns()
    for _ in range(posts):
        body = json.dumps({"requests": batch}).encode()
        status = await post(body)
        if status != 200:
            raise RuntimeError(f"endpoint responded with status {status} to a bulk POST")
    return (time.process_time_ns() - started) / (posts * batch_size) / 1000


async def measure_clients(matomo_url: str, repeats: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {"httpx": {}, "asyncio_streams": {}}
    async with httpx.AsyncClient() as client:
        stream_client = StreamClient(matomo_url)

        async def post_httpx(body: bytes) -> int:
            response = await client.post(
                matomo_url, content=body, headers={"content-type": "application/json"}
            )
            return response.status_code

        try:
            # Warm up connections and code paths.
            await _cpu_per_hit_us(post_httpx, 10)
            await _cpu_per_hit_us(stream_client.post, 10)
            for size in BATCH_SIZES:
                httpx_runs = []
                stream_runs = []
                for _ in range(repeats):
                    httpx_runs.append(await _cpu_per_hit_us(post_httpx, size))
                    stream_runs.append(await _cpu_per_hit_us(stream_client.post, size))
                results["httpx"][str(size)] = statistics.median(httpx_runs)
                results["asyncio_streams"][str(size)] = statistics.median(stream_runs)
        finally:
            await stream_client.aclose()
    return results


async def measure_sender(matomo_url: str, repeats: int) -> dict[str, Any]:
    """Return the package sender's CPU per hit (submit + batch + POST) by batch_max_hits."""
    try:
        from asgi_matomo import MatomoMiddleware
    except ImportError as exc:
        return {"skipped": f"asgi_matomo could not be imported: {exc!r}"}

    async def inner_app(scope: Any, receive: Any, send: Any) -> None:
        return None

    results: dict[str, Any] = {"cpu_per_hit_us": {}, "hits_per_request": {}}
    for size in BATCH_SIZES:
        hits = max(2000, 20 * size)
        middleware = MatomoMiddleware(
            inner_app,
            matomo_url=matomo_url,
            idsite=1,
            batch_max_hits=size,
            queue_max_hits=hits,
            queue_max_bytes=hits * 2000,
        )
        sender = middleware.sender
        await sender.start()
        try:
            runs = []
            for _ in range(repeats):
                started = time.process_time_ns()
                for _ in range(hits):
                    sender.submit(dict(SAMPLE_HIT))
                report = await sender.flush(60.0)
                runs.append((time.process_time_ns() - started) / hits / 1000)
                if report.delivered != hits:
                    raise RuntimeError(
                        f"the sender delivered {report.delivered} of {hits} hits: "
                        f"{middleware.stats.snapshot()}"
                    )
        finally:
            await sender.aclose()
        snapshot = middleware.stats.snapshot()
        results["cpu_per_hit_us"][str(size)] = statistics.median(runs)
        batches = snapshot.get("batches_sent") or 0
        delivered = snapshot.get("delivered") or 0
        results["hits_per_request"][str(size)] = delivered / batches if batches else None
        results.setdefault("last_stats", {})[str(size)] = snapshot
    return results


async def measure(matomo_url: str, repeats: int, parts: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {"batch_sizes": list(BATCH_SIZES), "repeats": repeats}
    if "encoding" in parts:
        result["encoding"] = measure_encoding(repeats)
    if "clients" in parts:
        result["clients_cpu_per_hit_us"] = await measure_clients(matomo_url, repeats)
    if "sender" in parts:
        result["sender"] = await measure_sender(matomo_url, repeats)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--matomo-url", required=True, help="tracking URL of the endpoint on 127.0.0.1"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--parts",
        default="encoding,clients,sender",
        help="comma-separated parts to run: encoding, clients, sender",
    )
    arguments = parser.parse_args()
    import uvloop

    result = uvloop.run(
        measure(arguments.matomo_url, arguments.repeats, arguments.parts.split(","))
    )
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
