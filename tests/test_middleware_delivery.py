"""In-process tests of the middleware with the real sender and a recording Matomo.

The sender talks to `RecordingMatomo` through `httpx.ASGITransport`, so no
socket is opened. The application's lifespan runs as a server would run it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asgi_matomo import MatomoMiddleware
from asgi_matomo.testing import RecordingMatomo
from asgi_matomo.trackers import PerfMsTracker
from asgi_matomo.types import ASGIApp, Message

MATOMO_URL = "http://matomo.test/matomo.php"
TOKEN = "0123456789abcdef0123456789abcdef"


@asynccontextmanager
async def lifespan_running(
    app: ASGIApp, hits_at_shutdown: list[int], recorder: RecordingMatomo
) -> AsyncIterator[None]:
    """Run the lifespan of ``app`` around the block, the way an ASGI server does.

    When the application reports ``lifespan.shutdown.complete``, the number of
    hits the recorder has stored is appended to ``hits_at_shutdown``.
    """
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    replies: asyncio.Queue[Message] = asyncio.Queue()

    async def send(message: Message) -> None:
        if message["type"] == "lifespan.shutdown.complete":
            hits_at_shutdown.append(len(recorder.hits()))
        await replies.put(message)

    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send)
    )
    await inbox.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(replies.get(), 5))["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        reply = await asyncio.wait_for(replies.get(), 10)
        assert reply["type"] == "lifespan.shutdown.complete"
        await asyncio.wait_for(task, 5)


def matomo_client(recorder: RecordingMatomo) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=recorder))


async def get(app: ASGIApp, url: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(url, **kwargs)


async def foo_route(request: Request) -> Response:
    return JSONResponse({"name": "foo"})


async def foo_with_state(request: Request) -> Response:
    if "state" not in request.scope:
        request.scope["state"] = {}
    request.scope["state"]["asgi_matomo"] = {
        "action_name": "Foo/foo",
        "e_c": "Foo",
        "e_a": "Playing",
        "cvar": {"anything": "goes"},
    }
    return JSONResponse({"name": "foo"})


async def timed_homepage(request: Request) -> Response:
    with PerfMsTracker(scope=request.scope, key="pf_srv"):
        await asyncio.sleep(0.05)
    return JSONResponse({"data": 4000})


def test_doc_examples_delivered_before_shutdown() -> None:
    recorder = RecordingMatomo()
    hits_at_shutdown: list[int] = []

    async def scenario() -> None:
        async with matomo_client(recorder) as client:
            app = Starlette(
                routes=[
                    Route("/foo", foo_route),
                    Route("/request", foo_with_state),
                    Route("/", timed_homepage),
                ],
                middleware=[
                    Middleware(
                        MatomoMiddleware,
                        matomo_url=MATOMO_URL,
                        idsite=12345,
                        client=client,
                        route_details={
                            "/foo": {"action_name": "Foo/foo", "e_c": "Foo", "e_a": "Playing"}
                        },
                    )
                ],
            )
            async with lifespan_running(app, hits_at_shutdown, recorder):
                for url in ("/foo", "/request", "/"):
                    response = await get(app, url)
                    assert response.status_code == 200

    asyncio.run(scenario())

    assert hits_at_shutdown == [3]
    route, request, timed = recorder.hits()
    assert route["action_name"] == "Foo/foo"
    assert route["e_c"] == "Foo"
    assert route["e_a"] == "Playing"
    assert route["idsite"] == "12345"
    assert route["url"] == "https://testserver/foo"
    assert request["action_name"] == "Foo/foo"
    assert json.loads(request["cvar"]) == {
        "1": ["anything", "goes"],
        "2": ["http_status_code", "200"],
        "3": ["http_method", "GET"],
    }
    assert int(timed["pf_srv"]) >= 49
    assert timed["pf_srv"].isdigit()


def test_token_only_in_bulk_body() -> None:
    recorder = RecordingMatomo(token_auth=TOKEN)
    hits_at_shutdown: list[int] = []

    async def hello(request: Request) -> Response:
        return JSONResponse({})

    async def scenario() -> None:
        async with matomo_client(recorder) as client:
            app = MatomoMiddleware(
                Starlette(routes=[Route("/", hello)]),
                matomo_url=MATOMO_URL,
                idsite=1,
                access_token=TOKEN,
                client=client,
            )
            async with lifespan_running(app, hits_at_shutdown, recorder):
                await get(app, "/?page=2")

    asyncio.run(scenario())

    [hit] = recorder.hits()
    assert hit["cip"] == "127.0.0.1"
    [posted] = recorder.requests()
    assert posted.method == "POST"
    assert TOKEN not in posted.path
    assert TOKEN not in posted.query_string
    body = json.loads(posted.body)
    assert body["token_auth"] == TOKEN
    assert all(TOKEN not in json.dumps(entry) for entry in body["requests"])


def test_first_request_starts_sender() -> None:
    recorder = RecordingMatomo()

    async def scenario() -> MatomoMiddleware:
        async with matomo_client(recorder) as client:
            app = MatomoMiddleware(
                Starlette(routes=[Route("/foo", foo_route)]),
                matomo_url=MATOMO_URL,
                idsite=3,
                client=client,
            )
            await get(app, "/foo")
            report = await app.sender.aclose()
            assert report.delivered == 1
            return app

    app = asyncio.run(scenario())

    assert [hit["url"] for hit in recorder.hits()] == ["https://testserver/foo"]
    assert app.stats.delivered == 1
