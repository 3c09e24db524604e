"""End to end over real HTTP: uvicorn serving apps behind the middleware, Matomo on loopback."""

from __future__ import annotations

import json
import signal
import socket
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asgi_matomo import MatomoMiddleware
from asgi_matomo.testing import RecordingMatomo, serve_app
from server_helpers import custom_variables, uvicorn_process

pytestmark = pytest.mark.server

# (method, raw request target, expected status), sent to the app of e2e_app.py.
E2E_REQUESTS = [
    ("GET", "/", 200),
    ("GET", "/?page=2&sort=name", 200),
    ("GET", "/items/caf%C3%A9?lang=fr", 200),
    ("POST", "/items/42", 200),
    ("GET", "/stream", 200),
    ("GET", "/boom", 500),
    ("GET", "/missing", 404),
]
ROUNDS = 8


@pytest.fixture
def matomo() -> Iterator[tuple[RecordingMatomo, str]]:
    """A recording Matomo endpoint served on loopback, with its tracking URL."""
    recorder = RecordingMatomo()
    with serve_app(recorder) as base_url:
        yield recorder, f"{base_url}/matomo.php"


def raw_url(base_url: str, target: str) -> httpx.URL:
    """Return `base_url` with the request target sent exactly as given, escapes included."""
    return httpx.URL(base_url).copy_with(raw_path=target.encode("ascii"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_signal_delivers_every_queued_hit(
    matomo: tuple[RecordingMatomo, str], signum: signal.Signals
) -> None:
    recorder, matomo_url = matomo
    sent = []

    with uvicorn_process("e2e_app:app", matomo_url) as server:
        with httpx.Client(trust_env=False, timeout=30.0) as client:
            for _ in range(ROUNDS):
                for method, target, status in E2E_REQUESTS:
                    # uvicorn closes the connection after an app exception; "close" keeps
                    # the client from reusing it meanwhile.
                    headers = {"Connection": "close"} if status == 500 else {}
                    url = raw_url(server.base_url, target)
                    response = client.request(method, url, headers=headers)
                    assert response.status_code == status, (method, target)
                    sent.append((method, target, status))
        # The app closes a batch only after 60 s, so nothing has been delivered yet.
        assert recorder.hits() == []

        server.stop(signum)

    hits = recorder.hits()
    assert len(hits) == len(sent), server.output
    assert recorder.bulk_request_count() < len(hits)
    authority = server.base_url.removeprefix("http://")
    expected = sorted(
        (method, f"https://{authority}{target}", status) for method, target, status in sent
    )
    received = sorted(
        (
            custom_variables(hit)["http_method"],
            hit["url"],
            int(custom_variables(hit)["http_status_code"]),
        )
        for hit in hits
    )
    assert received == expected
    for hit in hits:
        assert hit["idsite"] == "3"
        assert hit["rec"] == "1"
        assert hit["pf_srv"].isdigit()


@contextmanager
def unanswering_endpoint() -> Iterator[tuple[str, list[socket.socket]]]:
    """Listen on loopback and accept connections, but never read a request or send a response.

    Yields the tracking URL and the list of accepted connections.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    accepted: list[socket.socket] = []
    stopping = threading.Event()

    def accept_forever() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/matomo.php", accepted
    finally:
        stopping.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()


async def hello(request: StarletteRequest) -> Response:
    return JSONResponse({"hello": request.path_params.get("name", "world")})


def hello_app() -> Starlette:
    return Starlette(routes=[Route("/", hello), Route("/hello/{name}", hello)])


def response_times(base_url: str, count: int) -> list[float]:
    """Send `count` GET requests one after another and return each one's duration in seconds."""
    durations = []
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        for number in range(count):
            started = time.perf_counter()
            response = client.get(f"{base_url}/hello/{number}")
            durations.append(time.perf_counter() - started)
            assert response.status_code == 200
    return durations


# Read timeout of the middleware's client. A request that waited for Matomo would take this
# long; the assertions allow a quarter of it, which only a blocked request can exceed.
MATOMO_TIMEOUT = 10.0


def test_unanswering_matomo_does_not_delay_responses() -> None:
    bare = response_times_of(hello_app(), count=20)

    with unanswering_endpoint() as (matomo_url, accepted):
        tracked_app = MatomoMiddleware(
            hello_app(),
            matomo_url=matomo_url,
            idsite=1,
            http_timeout=MATOMO_TIMEOUT,
            batch_max_hits=1,
            batch_max_age=0.01,
            shutdown_timeout=0.5,
        )
        with serve_app(tracked_app) as base_url:
            tracked = response_times(base_url, count=20)
            # The sender is stuck in its first bulk request, waiting for a response.
            deadline = time.monotonic() + 5.0
            while not accepted and time.monotonic() < deadline:
                time.sleep(0.01)
            assert accepted, "the middleware never connected to the Matomo endpoint"

    assert max(tracked) < MATOMO_TIMEOUT / 4, (tracked, bare)
    assert statistics.median(tracked) < statistics.median(bare) + 0.25, (tracked, bare)
    assert tracked_app.stats.delivered == 0


def response_times_of(app: Starlette, count: int) -> list[float]:
    with serve_app(app) as base_url:
        return response_times(base_url, count)


def test_fastapi_add_middleware_tracks_requests(matomo: tuple[RecordingMatomo, str]) -> None:
    recorder, matomo_url = matomo
    lifespan_events = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lifespan_events.append("startup")
        yield
        lifespan_events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/items/{item_id}")
    async def read_item(item_id: str, q: str | None = None) -> dict[str, str | None]:
        return {"item_id": item_id, "q": q}

    @app.post("/orders", status_code=201)
    async def create_order(request: Request) -> dict[str, bool]:
        request.scope.setdefault("state", {})["asgi_matomo"] = {
            "action_name": "Orders/create",
            "cvar": {"plan": "pro"},
        }
        return {"created": True}

    app.add_middleware(
        MatomoMiddleware,
        matomo_url=matomo_url,
        idsite=7,
        route_details={"/items/special": {"e_c": "Items", "e_a": "Special"}},
        exclude_paths=["/docs", "/openapi.json"],
    )

    with serve_app(app) as base_url, httpx.Client(trust_env=False, timeout=30.0) as client:
        assert client.get(f"{base_url}/items/5?q=caf%C3%A9").json() == {
            "item_id": "5",
            "q": "café",
        }
        assert client.get(f"{base_url}/items/special").status_code == 200
        assert client.post(f"{base_url}/orders").status_code == 201
        assert client.get(f"{base_url}/openapi.json").status_code == 200
        authority = base_url.removeprefix("http://")

    assert lifespan_events == ["startup", "shutdown"]
    hits = sorted(recorder.hits(), key=lambda hit: hit["url"])
    assert [hit["url"] for hit in hits] == [
        f"https://{authority}/items/5?q=caf%C3%A9",
        f"https://{authority}/items/special",
        f"https://{authority}/orders",
    ]
    item, special, order = hits
    assert item["idsite"] == "7"
    assert item["action_name"] == "/items/5"
    assert (special["e_c"], special["e_a"]) == ("Items", "Special")
    assert order["action_name"] == "Orders/create"
    assert json.loads(order["cvar"]) == {
        "1": ["plan", "pro"],
        "2": ["http_status_code", "201"],
        "3": ["http_method", "POST"],
    }
