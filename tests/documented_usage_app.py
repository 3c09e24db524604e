"""A library catalogue app that uses each way of shaping hits that the README documents.

- ``/catalogue`` gets its event parameters from ``route_details``.
- ``/loans`` stores a new dict of parameters in ``scope["state"]["asgi_matomo"]``, creating
  ``scope["state"]`` when the server sent none.
- ``/members/renewal`` updates keys of the dict that the app's own ``tag_members_area``
  middleware stored before it.
- ``/reports/daily`` and ``/reports/weekly`` time part of the request with ``PerfMsTracker``,
  with ``with`` and with ``async with``.

``test_documented_usage.py`` serves ``documented_usage_app:app`` with uvicorn in a subprocess,
whose environment names the recording endpoint, and ``create_app`` in process.
"""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asgi_matomo import MatomoMiddleware
from asgi_matomo.trackers import PerfMsTracker
from asgi_matomo.types import ASGIApp, Receive, Scope, Send

IDSITE = 41

CATALOGUE_DETAILS = {"action_name": "Catalogue/browse", "e_c": "Catalogue", "e_a": "Browse"}

# Seconds of the timed block of a report, and of the work after it that the
# block leaves out, so the tracked time differs from the whole request's.
REPORT_QUERY_SECONDS = 0.2
REPORT_RENDER_SECONDS = 0.05


async def browse_catalogue(request: Request) -> Response:
    return JSONResponse({"books": ["Dune", "Solaris"]})


async def borrow_book(request: Request) -> Response:
    state_created = "state" not in request.scope
    if state_created:
        request.scope["state"] = {}
    request.scope["state"]["asgi_matomo"] = {
        "action_name": "Loans/borrow",
        "e_c": "Loans",
        "e_a": "Borrow",
        "cvar": {"branch": "riverside"},
    }
    return JSONResponse({"loan": "created", "state_created": state_created})


async def renew_membership(request: Request) -> Response:
    tracking = request.scope["state"]["asgi_matomo"]
    tracking["action_name"] = "Members/renew"
    tracking["e_a"] = "Renew"
    tracking["cvar"] = {"renewals": 2}
    return JSONResponse({"membership": "renewed"})


async def daily_report(request: Request) -> Response:
    with PerfMsTracker(scope=request.scope, key="pf_srv") as tracker:
        await asyncio.sleep(REPORT_QUERY_SECONDS)
    await asyncio.sleep(REPORT_RENDER_SECONDS)
    return JSONResponse({"report": "daily", "tracked_ms": tracker.elapsed_ms})


async def weekly_report(request: Request) -> Response:
    async with PerfMsTracker(scope=request.scope, key="pf_srv") as tracker:
        await asyncio.sleep(REPORT_QUERY_SECONDS)
    await asyncio.sleep(REPORT_RENDER_SECONDS)
    return JSONResponse({"report": "weekly", "tracked_ms": tracker.elapsed_ms})


class TagMembersArea:
    """ASGI middleware that stores the event category of requests under ``/members/``.

    It runs before the route, so the route finds the dict and updates its keys.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/members/"):
            scope.setdefault("state", {})["asgi_matomo"] = {"e_c": "Members"}
        await self.app(scope, receive, send)


def create_app(matomo_url: str) -> Starlette:
    """Build the catalogue app, tracking into ``matomo_url``.

    Batches close only at 10,000 hits or after 60 s, so a short test's hits are
    still queued at shutdown and only the flush at lifespan shutdown delivers them.
    """
    return Starlette(
        routes=[
            Route("/catalogue", browse_catalogue),
            Route("/loans", borrow_book),
            Route("/members/renewal", renew_membership),
            Route("/reports/daily", daily_report),
            Route("/reports/weekly", weekly_report),
        ],
        middleware=[
            Middleware(
                MatomoMiddleware,
                matomo_url=matomo_url,
                idsite=IDSITE,
                route_details={"/catalogue": CATALOGUE_DETAILS},
                batch_max_hits=10_000,
                batch_max_age=60.0,
                shutdown_timeout=10.0,
            ),
            Middleware(TagMembersArea),
        ],
    )


def __getattr__(name: str) -> Starlette:
    # uvicorn imports `app` only in the subprocess, whose environment names the
    # recording endpoint. Building it on access keeps this module importable in
    # the test process, which calls `create_app` itself.
    if name == "app":
        return create_app(os.environ["ASGI_MATOMO_TEST_URL"])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
