"""Starlette JSON app that the load benchmark serves, bare or behind a Matomo middleware.

uvicorn imports this module inside one of the benchmark's virtual environments.
The environment selects the variant:

- ``BENCH_VARIANT``: ``bare`` (no middleware), ``floor`` (``StatusTimingMiddleware``,
  which tracks nothing), ``old`` (asgi-matomo 0.8.0 from PyPI) or ``new``
  (asgi-matomo installed from this checkout).
- ``BENCH_MATOMO_URL``: the tracking URL that the middleware sends hits to.
- ``BENCH_MIDDLEWARE_OPTIONS``: a JSON object of extra keyword arguments for
  the ``new`` middleware, for example ``{"batch_max_hits": 1000}`` (default none).
- ``BENCH_COUNTS_FILE``: a JSON file written at process exit with the number of
  requests the route served and, for ``new``, the middleware's delivery stats.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

served_requests = 0


async def show_item(request: Request) -> JSONResponse:
    global served_requests
    served_requests += 1
    item_id = int(request.path_params["item_id"])
    return JSONResponse({"id": item_id, "name": f"item {item_id}", "tags": ["a", "b"]})


inner_app = Starlette(routes=[Route("/items/{item_id:int}", show_item)])

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


class StatusTimingMiddleware:
    """Pure ASGI middleware that times each HTTP request and reads its response status.

    It tracks nothing and only keeps the status and duration of the last
    request. Every tracking middleware does at least this much per request, so
    the CPU time it adds is a lower bound for any design that tracks in the
    app's process.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        # (response status, seconds) of the last HTTP request. The status is 0
        # when the app sent no response start.
        self.last_request: tuple[int, float] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        status = 0

        # A plain function that returns send's awaitable saves the coroutine
        # frame that an async wrapper would add to every message.
        def send_reading_status(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        started = time.perf_counter()
        await self.app(scope, receive, send_reading_status)
        self.last_request = (status, time.perf_counter() - started)


VARIANT = os.environ.get("BENCH_VARIANT", "bare")
MATOMO_URL = os.environ.get("BENCH_MATOMO_URL", "")

app: Any
if VARIANT == "bare":
    app = inner_app
elif VARIANT == "floor":
    app = StatusTimingMiddleware(inner_app)
elif VARIANT == "old":
    from asgi_matomo import MatomoMiddleware

    app = MatomoMiddleware(inner_app, matomo_url=MATOMO_URL, idsite=1)
elif VARIANT == "new":
    from asgi_matomo import MatomoMiddleware

    extra_options = json.loads(os.environ.get("BENCH_MIDDLEWARE_OPTIONS") or "{}")
    app = MatomoMiddleware(inner_app, matomo_url=MATOMO_URL, idsite=1, **extra_options)
else:
    raise ValueError(
        f"invalid BENCH_VARIANT {VARIANT!r}: expected 'bare', 'floor', 'old' or 'new'"
    )


def _write_counts() -> None:
    path = os.environ.get("BENCH_COUNTS_FILE")
    if not path:
        return
    report: dict[str, Any] = {"served_requests": served_requests}
    stats = getattr(app, "stats", None)
    if stats is not None and hasattr(stats, "snapshot"):
        report["delivery_stats"] = stats.snapshot()
    with open(path, "w", encoding="utf-8") as file:
        json.dump(report, file)


# uvicorn returns from its main function after a graceful shutdown, so this runs
# after the middleware's lifespan shutdown has flushed what it could.
atexit.register(_write_counts)
