"""A small Starlette app behind MatomoMiddleware that shows each way to shape a hit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from asgi_matomo import DeliveryStats, MatomoMiddleware
from asgi_matomo.trackers import PerfMsTracker

IDSITE = 1

# Paths and methods the middleware must leave out of Matomo; the traffic plan uses them to know
# which requests it expects to see as hits.
EXCLUDED_PATHS = ("/health",)
EXCLUDED_PATTERNS = (r"^/static/",)
IGNORED_METHODS = ("OPTIONS",)

ROUTE_DETAILS = {
    "/downloads": {"action_name": "Downloads/list", "e_c": "Downloads", "e_a": "List"},
}

# Upper bound for the simulated work of /report, so a typo in a query cannot stall the demo.
MAX_REPORT_DELAY_MS = 200


class DemoError(RuntimeError):
    """Raised on purpose by /boom to show that a failing request is still tracked (status 500)."""


async def home(request: Request) -> Response:
    return JSONResponse({"hello": "world"})


async def item(request: Request) -> Response:
    item_id = request.path_params["item_id"]
    if request.method in ("PUT", "PATCH"):
        body = await request.body()
        return JSONResponse({"item": item_id, "updated": len(body)})
    if request.method == "DELETE":
        return Response(status_code=204)
    return JSONResponse({"item": item_id})


async def search(request: Request) -> Response:
    return JSONResponse({"query": request.query_params.get("q", ""), "results": []})


async def downloads(request: Request) -> Response:
    # The middleware adds this route's `route_details` (action name and event) to the hit.
    return JSONResponse({"files": ["report.csv", "summary.pdf"]})


async def checkout(request: Request) -> Response:
    order = await request.json()
    # Update keys in the per-request dict, creating `state` and the dict when missing.
    state = request.scope.setdefault("state", {})
    overrides = state.setdefault("asgi_matomo", {})
    overrides["action_name"] = "Checkout/confirm"
    overrides["cvar"] = {"plan": order.get("plan", "free"), "items": order.get("items", 0)}
    return JSONResponse({"ordered": True}, status_code=201)


async def download(request: Request) -> Response:
    name = request.path_params["name"]
    # Replace the whole per-request dict: this hit becomes an event, and `urlref` set to None
    # removes the referrer the middleware took from the Referer header.
    request.scope.setdefault("state", {})["asgi_matomo"] = {
        "e_c": "Downloads",
        "e_a": "Fetch",
        "e_n": name,
        "urlref": None,
    }
    return PlainTextResponse(f"contents of {name}\n")


async def report(request: Request) -> Response:
    try:
        delay_ms = int(request.query_params.get("ms", "10"))
    except ValueError:
        return JSONResponse({"error": "ms must be an integer"}, status_code=400)
    delay_ms = max(0, min(delay_ms, MAX_REPORT_DELAY_MS))
    # The measured time replaces the whole-request time in `pf_srv`.
    async with PerfMsTracker(scope=request.scope, key="pf_srv"):
        await asyncio.sleep(delay_ms / 1000)
    return JSONResponse({"computed_in_ms": delay_ms})


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for number in range(5):
            await asyncio.sleep(0.002)
            yield f"chunk {number}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


async def reset_password(request: Request) -> Response:
    # The middleware replaces the value of `token` in the tracked URL with REDACTED, because
    # secrets in query strings would otherwise be stored in Matomo verbatim.
    return JSONResponse({"step": request.query_params.get("step", "1")})


async def boom(request: Request) -> Response:
    raise DemoError("the /boom endpoint fails on purpose")


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def static_file(request: Request) -> Response:
    return PlainTextResponse("/* static */", media_type="text/css")


def create_app(matomo_url: str, stats: DeliveryStats) -> Starlette:
    """Build the demo app, tracked into `matomo_url` with delivery counters kept in `stats`."""
    routes = [
        Route("/", home),
        Route("/items/{item_id}", item, methods=["GET", "PUT", "PATCH", "DELETE"]),
        Route("/search", search),
        Route("/downloads", downloads),
        Route("/checkout", checkout, methods=["POST"]),
        Route("/downloads/{name}", download),
        Route("/report", report),
        Route("/stream", stream),
        Route("/account/reset", reset_password),
        Route("/boom", boom),
        Route("/health", health),
        Route("/static/{name:path}", static_file),
    ]
    middleware = [
        Middleware(
            MatomoMiddleware,
            matomo_url=matomo_url,
            idsite=IDSITE,
            route_details=ROUTE_DETAILS,
            exclude_paths=EXCLUDED_PATHS,
            exclude_patterns=EXCLUDED_PATTERNS,
            ignored_methods=IGNORED_METHODS,
            stats=stats,
        )
    ]
    return Starlette(routes=routes, middleware=middleware)
