"""A Starlette app behind MatomoMiddleware for the end-to-end tests, served in a subprocess.

Batches close only at 10,000 hits or after 60 s, so every hit of a short test is still queued
when the server receives its stop signal: only the flush at lifespan shutdown can deliver it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from asgi_matomo import MatomoMiddleware


async def home(request: Request) -> Response:
    return JSONResponse({"page": "home"})


async def item(request: Request) -> Response:
    return JSONResponse({"item": request.path_params["item_id"]})


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for number in range(3):
            await asyncio.sleep(0.001)
            yield f"chunk {number}\n".encode()

    return StreamingResponse(chunks())


async def boom(request: Request) -> Response:
    raise RuntimeError("the end-to-end app fails on purpose")


app = Starlette(
    routes=[
        Route("/", home),
        Route("/items/{item_id}", item, methods=["GET", "POST"]),
        Route("/stream", stream),
        Route("/boom", boom),
    ],
    middleware=[
        Middleware(
            MatomoMiddleware,
            matomo_url=os.environ["ASGI_MATOMO_TEST_URL"],
            idsite=3,
            batch_max_hits=10_000,
            batch_max_age=60.0,
            shutdown_timeout=10.0,
        )
    ],
)
