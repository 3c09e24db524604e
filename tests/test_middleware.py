"""In-process tests of MatomoMiddleware with a fake sender that records hits."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_matomo import DeliveryStats, MatomoMiddleware, middleware
from asgi_matomo.options import Options
from asgi_matomo.testing import serve_app
from asgi_matomo.trackers import PerfMsTracker
from asgi_matomo.types import Hit, Message, Receive, Scope, Send

MATOMO_URL = "https://matomo.example/matomo.php"


class FakeSender:
    """Stand-in for the delivery engine: records hits and lifecycle calls."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.stats = options.stats
        self.hits: list[Hit] = []
        self.events: list[str] = []
        self.fail_start = False
        self.fail_submit = False

    def submit(self, hit: Hit) -> None:
        if self.fail_submit:
            raise RuntimeError("queue broken")
        self.hits.append(hit)

    def ensure_started(self) -> None:
        self.events.append("ensure_started")

    async def start(self) -> None:
        self.events.append("sender.start")
        if self.fail_start:
            raise OSError("no event loop resources")

    async def aclose(self, timeout: float | None = None) -> None:
        # A real sender awaits delivery here; yielding once lets a test see
        # that the server's message is not sent in between.
        await asyncio.sleep(0)
        self.events.append("sender.aclose")


@pytest.fixture(autouse=True)
def fake_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(middleware, "Sender", FakeSender)


def sender_of(app: MatomoMiddleware) -> FakeSender:
    sender = app.sender
    assert isinstance(sender, FakeSender)
    return sender


def wrap(app: Any, **arguments: Any) -> MatomoMiddleware:
    arguments.setdefault("matomo_url", MATOMO_URL)
    arguments.setdefault("idsite", 12345)
    return MatomoMiddleware(app, **arguments)


def request(
    app: Any,
    method: str = "GET",
    url: str = "/",
    *,
    raise_app_exceptions: bool = True,
    **kwargs: Any,
) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(send())


def cvar_of(hit: Hit) -> Any:
    return json.loads(str(hit["cvar"]))


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


def starlette_app(**arguments: Any) -> tuple[Starlette, list[MatomoMiddleware]]:
    """Return a Starlette app behind the middleware and a list that gets the middleware."""
    built: list[MatomoMiddleware] = []

    class Capturing(MatomoMiddleware):
        def __init__(self, app: Any, **kwargs: Any) -> None:
            super().__init__(app, **kwargs)
            built.append(self)

    arguments.setdefault("matomo_url", MATOMO_URL)
    arguments.setdefault("idsite", 12345)
    routes = arguments.pop("routes", [Route("/", hello, methods=["GET", "POST", "HEAD"])])
    app = Starlette(routes=routes, middleware=[Middleware(Capturing, **arguments)])
    return app, built


# --- construction -------------------------------------------------------------------


def test_direct_wrapping() -> None:
    app = wrap(hello_asgi)

    assert app.app is hello_asgi
    assert app.options.idsite == 12345
    assert isinstance(app.sender, FakeSender)


def test_invalid_argument_fails_at_construction() -> None:
    with pytest.raises(ValueError, match=r"^matomo_url must be an http or https URL"):
        MatomoMiddleware(hello_asgi, matomo_url="", idsite=1)


def test_stats_created_when_not_given() -> None:
    app = wrap(hello_asgi)

    assert isinstance(app.stats, DeliveryStats)
    assert app.stats is app.sender.stats


def test_stats_given_is_exposed() -> None:
    stats = DeliveryStats()

    assert wrap(hello_asgi, stats=stats).stats is stats


def test_starlette_middleware_list() -> None:
    app, built = starlette_app()
    response = request(app)

    assert response.text == "hello"
    assert len(built) == 1
    assert len(sender_of(built[0]).hits) == 1


def test_fastapi_add_middleware() -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    app.add_middleware(MatomoMiddleware, matomo_url=MATOMO_URL, idsite=3)
    response = request(app, url="/items/5")

    assert response.json() == {"item_id": 5}
    stack = app.middleware_stack
    while not isinstance(stack, MatomoMiddleware):
        stack = stack.app  # type: ignore[union-attr]
    hits = sender_of(stack).hits
    assert [hit["url"] for hit in hits] == ["https://testserver/items/5"]
    assert hits[0]["idsite"] == 3


# --- tracked requests -----------------------------------------------------------------


async def hello_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def test_hit_of_request() -> None:
    app = wrap(hello_asgi)
    response = request(
        app,
        url="/caf%C3%A9?q=%C3%A9",
        headers={"User-Agent": "test-agent", "Referer": "https://ref.example/"},
    )

    assert response.status_code == 200
    [hit] = sender_of(app).hits
    assert hit["url"] == "https://testserver/caf%C3%A9?q=%C3%A9"
    assert hit["action_name"] == "/café"
    assert hit["ua"] == "test-agent"
    assert hit["urlref"] == "https://ref.example/"
    assert hit["rec"] == 1
    assert isinstance(hit["pf_srv"], int)
    assert cvar_of(hit) == {"1": ["http_status_code", "200"], "2": ["http_method", "GET"]}
    assert "cip" not in hit


def test_sender_started_on_request_without_lifespan() -> None:
    app = wrap(hello_asgi)
    request(app)

    assert sender_of(app).events == ["ensure_started"]


def test_status_of_response() -> None:
    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = wrap(not_found)
    response = request(app, "DELETE")

    assert response.status_code == 404
    [hit] = sender_of(app).hits
    assert cvar_of(hit) == {"1": ["http_status_code", "404"], "2": ["http_method", "DELETE"]}


@pytest.mark.parametrize(
    ("arguments", "method", "path", "tracked"),
    [
        ({"exclude_paths": ["/health"]}, "GET", "/health", False),
        ({"exclude_paths": ["/health"]}, "GET", "/healthy", True),
        ({"exclude_patterns": [r"^/static/"]}, "GET", "/static/app.css", False),
        ({"allowed_methods": ["POST"]}, "GET", "/", False),
        ({"allowed_methods": ["post"]}, "POST", "/", True),
        ({"ignored_methods": ["HEAD"]}, "HEAD", "/", False),
        ({"ignored_methods": ["HEAD"]}, "GET", "/", True),
    ],
)
def test_exclusions(arguments: dict[str, Any], method: str, path: str, tracked: bool) -> None:
    app = wrap(hello_asgi, **arguments)
    response = request(app, method, path)

    assert response.status_code == 200
    assert len(sender_of(app).hits) == (1 if tracked else 0)


def test_exclusion_uses_path_below_root_path() -> None:
    app = wrap(hello_asgi, exclude_paths=["/health"])

    async def call() -> None:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/api/health",
            "root_path": "/api",
            "query_string": b"",
            "headers": [],
        }
        await app(scope, empty_receive, discard_send)

    asyncio.run(call())

    assert sender_of(app).hits == []


def mounted_app(**arguments: Any) -> tuple[Starlette, list[MatomoMiddleware]]:
    """Return a Starlette app that serves /api/items and /api/other through Mount("/api")."""
    return starlette_app(
        routes=[Mount("/api", routes=[Route("/items", hello), Route("/other", hello)])],
        **arguments,
    )


def test_mount_route_details_use_outer_path() -> None:
    app, built = mounted_app(
        route_details={
            "/api/items": {"action_name": "Items (full path)"},
            "/items": {"action_name": "Items (path inside the mount)"},
        }
    )
    response = request(app, url="/api/items")

    assert response.text == "hello"
    [hit] = sender_of(built[0]).hits
    assert hit["action_name"] == "Items (full path)"
    assert hit["url"] == "https://testserver/api/items"


def test_mount_exclusion_and_route_details_agree() -> None:
    app, built = mounted_app(
        exclude_paths=["/api/items"],
        route_details={"/api/other": {"e_c": "Other"}, "/other": {"e_c": "Inner"}},
    )
    request(app, url="/api/items")
    request(app, url="/api/other")

    [hit] = sender_of(built[0]).hits
    assert hit["url"] == "https://testserver/api/other"
    assert hit["e_c"] == "Other"


def test_mount_below_root_path_keeps_url() -> None:
    # A server that leaves root_path out of raw_path. Mount sets root_path to
    # "/prefix/api" while the application runs.
    app, built = mounted_app(route_details={"/api/items": {"e_c": "Items"}})

    async def call() -> None:
        scope = {
            **http_scope("/prefix/api/items"),
            "raw_path": b"/api/items",
            "root_path": "/prefix",
        }
        await app(scope, empty_receive, discard_send)

    asyncio.run(call())

    [hit] = sender_of(built[0]).hits
    assert hit["url"] == "https://example.com/prefix/api/items"
    assert hit["action_name"] == "/prefix/api/items"
    assert hit["e_c"] == "Items"


def send_raw_request(base_url: str, request_head: bytes) -> bytes:
    """Send one raw HTTP/1.1 request to a server on loopback and return its status line."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request_head)
        return connection.recv(1024).partition(b"\r\n")[0]


@pytest.mark.server
def test_odd_request_targets_through_uvicorn() -> None:
    app = wrap(hello_asgi, allowed_methods=["GET", "OPTIONS"])
    requests = [
        b"GET http://abs.example:8080/x?y=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: h.example\r\n\r\n",
        b"GET /p HTTP/1.1\r\nHost: evil.example/phish?x=\r\n\r\n",
        b"GET /q HTTP/1.0\r\n\r\n",
    ]
    with serve_app(app, http="h11") as base_url:
        statuses = [send_raw_request(base_url, head) for head in requests]
        server_port = base_url.rsplit(":", 1)[1]

    assert statuses == [b"HTTP/1.1 200 OK"] * 4
    absolute, asterisk, bad_host, no_host = sender_of(app).hits
    assert absolute["url"] == "https://other.example/x?y=1"
    assert absolute["action_name"] == "/x"
    assert asterisk["url"] == "https://h.example/"
    assert asterisk["action_name"] == "/"
    assert bad_host["url"] == f"https://127.0.0.1:{server_port}/p"
    assert no_host["url"] == f"https://127.0.0.1:{server_port}/q"


async def empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def discard_send(message: Message) -> None:
    return None


# --- failures ------------------------------------------------------------------------


class AppError(Exception):
    pass


def test_app_exception_reraised_and_tracked_as_500() -> None:
    error = AppError("boom")

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise error

    app = wrap(failing)
    with pytest.raises(AppError) as caught:
        request(app, url="/fail")

    assert caught.value is error
    [hit] = sender_of(app).hits
    assert hit["url"] == "https://testserver/fail"
    assert cvar_of(hit)["1"] == ["http_status_code", "500"]


def test_exception_after_response_start_keeps_status() -> None:
    async def failing_late(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise AppError("late")

    app = wrap(failing_late)
    with pytest.raises(AppError):
        request(app)

    [hit] = sender_of(app).hits
    assert cvar_of(hit)["1"] == ["http_status_code", "200"]


def test_starlette_error_tracked_as_500() -> None:
    async def broken(request: Request) -> Response:
        raise AppError("broken")

    app, built = starlette_app(routes=[Route("/", broken)])
    response = request(app, raise_app_exceptions=False)

    assert response.status_code == 500
    [hit] = sender_of(built[0]).hits
    assert cvar_of(hit)["1"] == ["http_status_code", "500"]


def test_app_without_response_tracked_as_500() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    app = wrap(silent)
    asyncio.run(app(http_scope(), empty_receive, discard_send))

    [hit] = sender_of(app).hits
    assert cvar_of(hit)["1"] == ["http_status_code", "500"]


def test_cancelled_request_without_response_not_tracked() -> None:
    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(3600)

    app = wrap(slow)

    async def call() -> None:
        task = asyncio.create_task(app(http_scope(), empty_receive, discard_send))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(call())

    assert sender_of(app).hits == []


def http_scope(path: str = "/") -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"example.com")],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
    }


def test_build_failure_logged_at_bounded_rate(caplog: pytest.LogCaptureFixture) -> None:
    async def break_headers(scope: Scope, receive: Receive, send: Send) -> None:
        # Not possible with a server that follows the ASGI spec.
        await hello_asgi(scope, receive, send)
        scope["headers"] = None

    app = wrap(break_headers)
    with caplog.at_level(logging.ERROR, logger="asgi_matomo"):
        statuses = [request(app, url="/x?secret=1").status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert sender_of(app).hits == []
    assert [record.getMessage() for record in caplog.records] == [
        "Could not track GET /x: TypeError(\"'NoneType' object is not iterable\")"
    ]
    assert caplog.records[0].name == "asgi_matomo.middleware"


def test_bad_overrides_keep_the_hit(caplog: pytest.LogCaptureFixture) -> None:
    async def bad_state(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"] = {"asgi_matomo": "not a dict"}
        await hello_asgi(scope, receive, send)

    app = wrap(bad_state)
    with caplog.at_level(logging.WARNING, logger="asgi_matomo"):
        response = request(app, url="/x")

    assert response.status_code == 200
    [hit] = sender_of(app).hits
    assert hit["url"] == "https://testserver/x"
    assert [record.getMessage() for record in caplog.records] == [
        'Ignored tracking parameters of scope["state"]["asgi_matomo"], the rest of the hit is '
        'sent: scope["state"]["asgi_matomo"] is not a dict but a str'
    ]


def test_submit_failure_does_not_reach_app(caplog: pytest.LogCaptureFixture) -> None:
    app = wrap(hello_asgi)
    sender_of(app).fail_submit = True
    with caplog.at_level(logging.ERROR, logger="asgi_matomo"):
        response = request(app)

    assert response.text == "hello"
    assert [record.getMessage() for record in caplog.records] == [
        "Could not track GET /: RuntimeError('queue broken')"
    ]
    assert caplog.records[0].name == "asgi_matomo.middleware"


# --- per-request overrides --------------------------------------------------------------


def test_route_details() -> None:
    async def foo(request: Request) -> Response:
        return JSONResponse({"name": "foo"})

    app, built = starlette_app(
        routes=[Route("/foo", foo), Route("/bar", foo)],
        route_details={"/foo": {"action_name": "Foo/foo", "e_c": "Foo", "e_a": "Playing"}},
    )
    request(app, url="/foo")
    request(app, url="/bar")

    foo_hit, bar_hit = sender_of(built[0]).hits
    assert foo_hit["action_name"] == "Foo/foo"
    assert foo_hit["e_c"] == "Foo"
    assert foo_hit["e_a"] == "Playing"
    assert bar_hit["action_name"] == "/bar"
    assert "e_c" not in bar_hit


def test_override_replacing_dict_new_state() -> None:
    async def foo(request: Request) -> Response:
        if "state" not in request.scope:
            request.scope["state"] = {}
        request.scope["state"]["asgi_matomo"] = {
            "action_name": "Foo/foo",
            "e_c": "Foo",
            "e_a": "Playing",
            "cvar": {"anything": "goes"},
        }
        return JSONResponse({"name": "foo"})

    async def call() -> None:
        scope = http_scope("/foo")
        assert "state" not in scope
        await app(scope, empty_receive, discard_send)

    app = wrap(Starlette(routes=[Route("/foo", foo)]))
    asyncio.run(call())

    [hit] = sender_of(app).hits
    assert hit["action_name"] == "Foo/foo"
    assert hit["e_c"] == "Foo"
    assert hit["e_a"] == "Playing"
    assert cvar_of(hit) == {
        "1": ["anything", "goes"],
        "2": ["http_status_code", "200"],
        "3": ["http_method", "GET"],
    }


def test_override_by_updating_keys() -> None:
    async def foo(request: Request) -> Response:
        overrides = request.scope.setdefault("state", {}).setdefault("asgi_matomo", {})
        overrides["action_name"] = "first"
        overrides["action_name"] = "second"
        overrides["ua"] = None
        return PlainTextResponse("ok")

    app, built = starlette_app(routes=[Route("/", foo)])
    request(app, headers={"User-Agent": "agent"})

    [hit] = sender_of(built[0]).hits
    assert hit["action_name"] == "second"
    assert "ua" not in hit


def test_override_through_request_state() -> None:
    async def foo(request: Request) -> Response:
        request.state.asgi_matomo = {"e_c": "Foo", "e_a": "Playing"}
        return PlainTextResponse("ok")

    app, built = starlette_app(routes=[Route("/", foo)])
    request(app)

    [hit] = sender_of(built[0]).hits
    assert hit["e_c"] == "Foo"
    assert hit["e_a"] == "Playing"


def test_perf_ms_tracker_sets_pf_srv() -> None:
    async def homepage(request: Request) -> Response:
        with PerfMsTracker(scope=request.scope, key="pf_srv"):
            await asyncio.sleep(0.03)
        return JSONResponse({"data": 4000})

    app, built = starlette_app(routes=[Route("/", homepage)])
    response = request(app)

    assert response.json() == {"data": 4000}
    [hit] = sender_of(built[0]).hits
    pf_srv = hit["pf_srv"]
    assert isinstance(pf_srv, int)
    assert pf_srv >= 29


def test_perf_ms_tracker_value_wins_over_measured_time() -> None:
    async def homepage(request: Request) -> Response:
        async with PerfMsTracker(scope=request.scope, key="pf_srv") as tracker:
            pass
        await asyncio.sleep(0.03)
        assert request.scope["state"]["asgi_matomo"]["pf_srv"] == tracker.elapsed_ms
        return PlainTextResponse("ok")

    app, built = starlette_app(routes=[Route("/", homepage)])
    request(app)

    [hit] = sender_of(built[0]).hits
    # The request took at least 30 ms, the tracked block far less.
    assert isinstance(hit["pf_srv"], int)
    assert hit["pf_srv"] < 30


# --- streaming, websocket -------------------------------------------------------------


def test_streaming_response() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(5):
            await asyncio.sleep(0.01)
            yield f"chunk{index};".encode()

    async def stream(request: Request) -> Response:
        return StreamingResponse(chunks(), media_type="text/plain")

    app, built = starlette_app(routes=[Route("/stream", stream)])
    response = request(app, url="/stream")

    assert response.text == "chunk0;chunk1;chunk2;chunk3;chunk4;"
    [hit] = sender_of(built[0]).hits
    assert cvar_of(hit)["1"] == ["http_status_code", "200"]
    # The duration covers the whole body, which took at least 5 * 10 ms.
    assert isinstance(hit["pf_srv"], int)
    assert hit["pf_srv"] >= 49


def test_streamed_messages_forwarded_unchanged() -> None:
    messages: list[Message] = [
        {"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]},
        {"type": "http.response.body", "body": b"a", "more_body": True},
        {"type": "http.response.body", "body": b"b", "more_body": False},
    ]

    async def app_sending(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)

    received: list[Message] = []

    async def server_send(message: Message) -> None:
        received.append(message)

    app = wrap(app_sending)
    asyncio.run(app(http_scope(), empty_receive, server_send))

    assert len(received) == 3
    assert all(got is sent for got, sent in zip(received, messages, strict=True))


def test_websocket_passes_through_untouched() -> None:
    seen: list[tuple[Scope, Receive, Send]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))

    app = wrap(inner)
    scope: Scope = {"type": "websocket", "path": "/ws", "headers": []}
    asyncio.run(app(scope, empty_receive, discard_send))

    assert seen == [(scope, empty_receive, discard_send)]
    assert scope == {"type": "websocket", "path": "/ws", "headers": []}
    assert sender_of(app).hits == []
    assert sender_of(app).events == []


def test_starlette_websocket_works_behind_middleware() -> None:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(text.upper())
        await websocket.close()

    app, built = starlette_app(routes=[WebSocketRoute("/ws", echo)])
    sent: list[Message] = []
    inbox: asyncio.Queue[Message] = asyncio.Queue()

    async def server_send(message: Message) -> None:
        sent.append(message)

    async def call() -> None:
        for message in (
            {"type": "websocket.connect"},
            {"type": "websocket.receive", "text": "hi"},
        ):
            inbox.put_nowait(message)
        scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
        await app(scope, inbox.get, server_send)

    asyncio.run(call())

    assert [message["type"] for message in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]
    assert sent[1]["text"] == "HI"
    assert sender_of(built[0]).hits == []


# --- lifespan ---------------------------------------------------------------------------


class FakeServer:
    """Drive the ASGI lifespan protocol the way a server does and log what happens."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return await self.inbox.get()

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        self.events.append(f"server got {message['type']}")

    async def run(self, app: MatomoMiddleware) -> BaseException | None:
        """Run startup and shutdown and return what the application raised."""
        task = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, self.receive, self.send)
        )
        self.inbox.put_nowait({"type": "lifespan.startup"})
        if not await self._wait_for_answer(task, "lifespan.startup"):
            return await self._outcome(task)
        self.inbox.put_nowait({"type": "lifespan.shutdown"})
        await self._wait_for_answer(task, "lifespan.shutdown")
        return await self._outcome(task)

    async def _wait_for_answer(self, task: asyncio.Task[None], prefix: str) -> bool:
        """Wait until the app replies to ``prefix`` or ends, and tell whether it completed."""
        while not task.done():
            answers = [m["type"] for m in self.sent if m["type"].startswith(prefix)]
            if answers:
                return answers[-1].endswith(".complete")
            await asyncio.sleep(0.001)
        return any(m["type"] == f"{prefix}.complete" for m in self.sent)

    @staticmethod
    async def _outcome(task: asyncio.Task[None]) -> BaseException | None:
        try:
            await asyncio.wait_for(task, timeout=5)
        except Exception as exc:
            return exc
        return None


def run_lifespan(
    app_factory: Callable[[list[str]], Any], **arguments: Any
) -> tuple[list[str], list[Message], BaseException | None]:
    events: list[str] = []
    app = wrap(app_factory(events), **arguments)
    sender_of(app).events = events
    server = FakeServer(events)
    error = asyncio.run(server.run(app))
    return events, server.sent, error


def starlette_with_lifespan(
    events: list[str],
    *,
    fail_startup: bool = False,
    fail_shutdown: bool = False,
) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("app startup")
        if fail_startup:
            raise AppError("database unreachable")
        yield
        events.append("app shutdown")
        if fail_shutdown:
            raise AppError("flush failed")

    return Starlette(routes=[Route("/", hello)], lifespan=lifespan)


def test_lifespan_of_app_kept() -> None:
    events, _sent, error = run_lifespan(starlette_with_lifespan)

    assert error is None
    assert events == [
        "sender.start",
        "app startup",
        "server got lifespan.startup.complete",
        "app shutdown",
        "sender.aclose",
        "server got lifespan.shutdown.complete",
    ]


def test_lifespan_startup_failure_reaches_server() -> None:
    events, sent, error = run_lifespan(
        lambda events: starlette_with_lifespan(events, fail_startup=True)
    )

    assert isinstance(error, AppError)
    assert str(error) == "database unreachable"
    assert [message["type"] for message in sent] == ["lifespan.startup.failed"]
    assert "database unreachable" in sent[0]["message"]
    assert events == [
        "sender.start",
        "app startup",
        "sender.aclose",
        "server got lifespan.startup.failed",
    ]


def test_lifespan_shutdown_failure_reaches_server() -> None:
    events, sent, error = run_lifespan(
        lambda events: starlette_with_lifespan(events, fail_shutdown=True)
    )

    assert isinstance(error, AppError)
    assert [message["type"] for message in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.failed",
    ]
    assert events[-2:] == ["sender.aclose", "server got lifespan.shutdown.failed"]


def test_lifespan_for_app_that_raises_on_lifespan() -> None:
    def factory(events: list[str]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def http_only(scope: Scope, receive: Receive, send: Send) -> None:
            assert scope["type"] == "http"
            await hello_asgi(scope, receive, send)

        return http_only

    events, _sent, error = run_lifespan(factory)

    assert error is None
    assert events == [
        "sender.start",
        "server got lifespan.startup.complete",
        "sender.aclose",
        "server got lifespan.shutdown.complete",
    ]


def test_lifespan_for_app_that_returns_on_lifespan() -> None:
    def factory(events: list[str]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def ignoring(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            await hello_asgi(scope, receive, send)

        return ignoring

    events, sent, error = run_lifespan(factory)

    assert error is None
    assert [message["type"] for message in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert events.index("sender.aclose") < events.index("server got lifespan.shutdown.complete")


def test_lifespan_with_raw_app() -> None:
    def factory(events: list[str]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def raw(scope: Scope, receive: Receive, send: Send) -> None:
            while True:
                message = await receive()
                events.append(f"app got {message['type']}")
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return

        return raw

    events, _sent, error = run_lifespan(factory)

    assert error is None
    assert events == [
        "sender.start",
        "app got lifespan.startup",
        "server got lifespan.startup.complete",
        "app got lifespan.shutdown",
        "sender.aclose",
        "server got lifespan.shutdown.complete",
    ]


def test_sender_start_failure_does_not_stop_app(caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []
    app = wrap(starlette_with_lifespan(events))
    sender = sender_of(app)
    sender.events = events
    sender.fail_start = True
    server = FakeServer(events)
    with caplog.at_level(logging.ERROR, logger="asgi_matomo"):
        error = asyncio.run(server.run(app))

    assert error is None
    assert [message["type"] for message in server.sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert [record.getMessage() for record in caplog.records] == [
        "Could not start the Matomo sender at lifespan startup"
    ]


def test_invalid_scope_passes_to_app(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    app = wrap(inner)
    scope: Scope = {"type": "http", "path": "/", "headers": []}
    with caplog.at_level(logging.ERROR, logger="asgi_matomo"):
        asyncio.run(app(scope, empty_receive, discard_send))

    assert seen == [scope]
    assert sender_of(app).hits == []
    assert [record.getMessage() for record in caplog.records] == [
        "Could not track a request with an invalid scope: KeyError('method')"
    ]
    assert caplog.records[0].name == "asgi_matomo.middleware"
