"""Measure a Matomo middleware's own cost per request, in process and without a server.

Each repeat calls a trivial ASGI app directly with a prebuilt HTTP scope many
times, then the same app wrapped in the middleware, and takes the difference of
the mean time per call. The figure is the median of the repeats' differences.

- ``--variant new`` (asgi-matomo from this checkout) measures building the hit
  and putting it in the sender's queue. Between repeats the sender delivers
  the queued hits to ``--matomo-url`` so that the queue never fills up. With
  ``--without-orjson`` the package cannot import orjson, as if its
  ``speedups`` extra were not installed, and encodes hits with the standard
  library's json.
- ``--variant old`` (asgi-matomo 0.8.0) sends each hit inside the request, so
  its client gets a mock transport that returns 204 without a network; the
  figure is then its hit building plus the HTTP client's own work.

Prints one JSON line prefixed with ``RESULT`` on stdout.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import statistics
import sys
import time
from typing import Any

SCOPE_TEMPLATE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/items/42",
    "raw_path": b"/items/42",
    "root_path": "",
    "query_string": b"page=1&sort=name",
    "headers": [
        (b"host", b"shop.example.org"),
        (
            b"user-agent",
            b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (b"accept", b"application/json"),
        (b"accept-language", b"en-US,en;q=0.9,de;q=0.8"),
        (b"referer", b"https://shop.example.org/items?page=1"),
        (b"cookie", b"session=abc123"),
    ],
    "client": ("127.0.0.1", 52000),
    "server": ("127.0.0.1", 8000),
}
RESPONSE_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
}
RESPONSE_BODY = {"type": "http.response.body", "body": b"{}"}
REQUEST_MESSAGE = {"type": "http.request", "body": b"", "more_body": False}


async def receive() -> dict[str, Any]:
    return REQUEST_MESSAGE


async def send(message: dict[str, Any]) -> None:
    return None


async def inner_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(RESPONSE_START)
    await send(RESPONSE_BODY)


def build_middleware(variant: str, matomo_url: str, iterations: int) -> Any:
    from asgi_matomo import MatomoMiddleware

    if variant == "old":
        import httpx2

        transport = httpx2.MockTransport(lambda request: httpx2.Response(204))
        client = httpx2.AsyncClient(transport=transport)
        return MatomoMiddleware(inner_app, matomo_url=matomo_url, idsite=1, client=client)
    # One repeat must fit in the queue, or the figure would include the drop path.
    return MatomoMiddleware(
        inner_app,
        matomo_url=matomo_url,
        idsite=1,
        queue_max_hits=max(10_000, 2 * iterations),
    )


async def mean_call_ns(app: Any, iterations: int) -> float:
    """Return the mean wall time in nanoseconds of one call of app."""
    scopes = []
    for _ in range(iterations):
        scope = dict(SCOPE_TEMPLATE)
        scope["state"] = {}
        scopes.append(scope)
    gc.collect()
    started = time.perf_counter_ns()
    for scope in scopes:
        await app(scope, receive, send)
    return (time.perf_counter_ns() - started) / iterations


async def drain(middleware: Any, variant: str) -> None:
    """Let the new sender deliver what the last repeat queued (0.8.0 has no queue)."""
    if variant == "new":
        await middleware.sender.flush(30.0)


async def measure(variant: str, matomo_url: str, iterations: int, repeats: int) -> dict[str, Any]:
    middleware = build_middleware(variant, matomo_url, iterations)
    if variant == "new":
        await middleware.sender.start()
    try:
        # Warm up both paths (imports, caches, the sender's first connection).
        await mean_call_ns(inner_app, iterations // 10)
        await mean_call_ns(middleware, iterations // 10)
        await drain(middleware, variant)

        bare_ns: list[float] = []
        wrapped_ns: list[float] = []
        for _ in range(repeats):
            bare_ns.append(await mean_call_ns(inner_app, iterations))
            wrapped_ns.append(await mean_call_ns(middleware, iterations))
            await drain(middleware, variant)
    finally:
        if variant == "new":
            await middleware.sender.aclose()

    overheads = [wrapped - bare for bare, wrapped in zip(bare_ns, wrapped_ns, strict=True)]
    result: dict[str, Any] = {
        "variant": variant,
        "iterations": iterations,
        "repeats": repeats,
        "bare_us": _summary(bare_ns),
        "wrapped_us": _summary(wrapped_ns),
        "overhead_us": _summary(overheads),
    }
    if variant == "new":
        result["delivery_stats"] = middleware.stats.snapshot()
    return result


def orjson_version() -> str | None:
    """Return orjson's version if this process can import orjson, else None."""
    try:
        import orjson  # noqa: F401 (only checks that the import works)
    except ImportError:
        return None
    return importlib.metadata.version("orjson")


def _summary(values_ns: list[float]) -> dict[str, float]:
    values_us = sorted(value / 1000 for value in values_ns)
    return {
        "median": statistics.median(values_us),
        "min": values_us[0],
        "max": values_us[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("old", "new"), required=True)
    parser.add_argument(
        "--matomo-url", required=True, help="tracking URL on 127.0.0.1 that the sender delivers to"
    )
    parser.add_argument("--iterations", type=int, default=5000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--without-orjson",
        action="store_true",
        help="hide orjson from asgi_matomo, which then encodes hits with the standard "
        "library's json (only for --variant new)",
    )
    arguments = parser.parse_args()
    if arguments.without_orjson:
        if arguments.variant != "new":
            parser.error("--without-orjson applies only to --variant new")
        # A None entry makes every later `import orjson` raise ImportError, so
        # the package falls back to json when it builds its hit encoder.
        sys.modules["orjson"] = None  # type: ignore[assignment]
    # uvicorn runs the load benchmark on uvloop, so the calls here run on it too.
    import uvloop

    result = uvloop.run(
        measure(arguments.variant, arguments.matomo_url, arguments.iterations, arguments.repeats)
    )
    if arguments.variant == "new":
        result["orjson_version"] = orjson_version()
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
