"""A Matomo-compatible tracking endpoint that records hits, for testing an integration.

`RecordingMatomo` is a plain ASGI app that accepts what Matomo's tracker
(`matomo.php`) accepts and applies the rules that decide what Matomo stores:

- Bulk requests: a POST whose body is JSON ``{"requests": [...], "token_auth": ...}``.
  Each entry is a query string starting with ``?`` or a JSON object of
  parameters. A string entry without a query (no ``?``) is dropped silently,
  as Matomo drops it. The response is ``{"status": "success", "tracked": N,
  "invalid": M}``, plus ``invalid_indices`` when the token is a super user's.
- Single hits: a GET query string or a POST form body. The response is 204
  with ``send_image=0`` and a 43-byte GIF otherwise, or 400 for an invalid hit.
- A hit without ``rec=1`` is counted as tracked but not stored. A hit is
  invalid when its ``idsite`` is not a known site, when it has ``cip`` without
  a token that has write access, or when its ``cdt`` is 24 hours old or older
  without such a token.

The recorder can also inject failures (`Fault`, `fail_next`, `fail_for`,
`poison`) to test how a client copes with an unavailable Matomo.

`serve_app` runs any ASGI app with uvicorn on 127.0.0.1 in a background thread::

    recorder = RecordingMatomo()
    with serve_app(recorder) as base_url:
        app = MatomoMiddleware(my_app, matomo_url=f"{base_url}/matomo.php", idsite=1)
        ...  # send requests to app, then run its lifespan shutdown
    hits = recorder.hits()  # one dict of parameters per stored hit

`serve_app` needs uvicorn (install ``asgi-matomo[test]`` or ``asgi-matomo[demo]``).
"""

from __future__ import annotations

import asyncio
import calendar
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from .types import ASGIApp, Receive, Scope, Send

__all__ = ["Fault", "RecordedRequest", "RecordingMatomo", "serve_app"]

# Matomo's 1x1 transparent GIF (43 bytes), sent for single hits without send_image=0.
TRANSPARENT_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)

# Seconds after which a `cdt` needs a token: Matomo's default for its setting
# tracking_requests_require_authentication_when_custom_timestamp_newer_than.
CUSTOM_TIMESTAMP_LIMIT = 86_400

# Matomo ignores a `cdt` older than 20 years and uses the time of arrival instead.
_CUSTOM_TIMESTAMP_MAX_AGE = 20 * 365 * 86_400

# Body of the response to a request without parameters. Matomo sends a short
# HTML page about itself with status 200; only the status matters to clients.
_EMPTY_REQUEST_TEXT = b"Matomo tracking endpoint: the request has no tracking parameters."


@dataclass(frozen=True)
class Fault:
    """A response that the recorder sends in place of its normal one.

    `delay` is in seconds and applies before the response is sent. With
    `store=True` the hits of the request are stored first, which reproduces a
    Matomo that stored a batch but whose response got lost.
    """

    status: int = 503
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    store: bool = False


@dataclass
class RecordedRequest:
    """One HTTP request that reached the recorder, with the response it got.

    `received_at` is the `time.monotonic()` value when its body had arrived.
    `status` and `response_body` stay 0 and empty until the response is sent.
    """

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response_body: bytes = b""
    received_at: float = field(default_factory=time.monotonic)


class _TrackerException(Exception):
    """A failure inside the tracker, which makes Matomo roll back a whole bulk request."""


class _InvalidHit(Exception):
    """A hit that Matomo rejects: counted as invalid in a bulk request, 400 for a single hit."""


class RecordingMatomo:
    """ASGI app that behaves like Matomo's tracking endpoint and records what it stores.

    `token_auth` lists tokens with write access to every site; `superuser_token_auth`
    lists super user tokens, which also add ``invalid_indices`` to bulk responses.
    `idsites` lists the known site ids (None accepts any id >= 1). `delay` is the
    number of seconds to wait before each response.

    Stored hits are dicts of strings, as Matomo reads parameters, in arrival
    order. All counters and lists are safe to read from another thread.
    """

    def __init__(
        self,
        *,
        token_auth: str | Iterable[str] = (),
        superuser_token_auth: str | Iterable[str] = (),
        idsites: Iterable[int] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.superuser_tokens = _string_set(superuser_token_auth)
        self.tokens = _string_set(token_auth) | self.superuser_tokens
        self.idsites = None if idsites is None else frozenset(idsites)
        self.delay = delay
        # Returns True for a hit that makes the tracker fail: the bulk request gets
        # a 500 error response and nothing of it is stored (Matomo's transaction).
        self.poison: Callable[[Mapping[str, str]], bool] | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._faults: deque[Fault] = deque()
        self._fault_window: tuple[float, Fault] | None = None
        self.reset()

    def reset(self) -> None:
        """Forget stored hits, recorded requests, counters and pending faults."""
        with self._lock:
            self._hits: list[dict[str, str]] = []
            self._requests: list[RecordedRequest] = []
            self._tracked = 0
            self._invalid = 0
            self._bulk_requests = 0
            self._faults.clear()
            self._fault_window = None

    # -- Results ---------------------------------------------------------------

    def hits(self) -> list[dict[str, str]]:
        """Return a copy of the stored hits, in the order they were stored."""
        with self._lock:
            return list(self._hits)

    def requests(self) -> list[RecordedRequest]:
        """Return a copy of the HTTP requests received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def http_request_count(self) -> int:
        """Return the number of HTTP requests received."""
        with self._lock:
            return len(self._requests)

    def bulk_request_count(self) -> int:
        """Return the number of bulk tracking requests received."""
        with self._lock:
            return self._bulk_requests

    def tracked_count(self) -> int:
        """Return the number of hits counted as tracked, stored or not (a hit without rec=1)."""
        with self._lock:
            return self._tracked

    def invalid_count(self) -> int:
        """Return the number of hits rejected as invalid."""
        with self._lock:
            return self._invalid

    def wait_for_hits(self, count: int, timeout: float) -> list[dict[str, str]]:
        """Wait until at least `count` hits are stored, or `timeout` seconds have passed.

        Return a copy of the stored hits either way, so the caller asserts on them.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._hits) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return list(self._hits)

    # -- Fault injection -------------------------------------------------------

    def fail_next(self, fault: Fault, count: int = 1) -> None:
        """Send `fault` as the response to each of the next `count` HTTP requests."""
        with self._lock:
            self._faults.extend([fault] * count)

    def fail_for(self, seconds: float, fault: Fault) -> None:
        """Send `fault` as the response to every HTTP request for the next `seconds`."""
        with self._lock:
            self._fault_window = (time.monotonic() + seconds, fault)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            if self._fault_window is not None:
                until, fault = self._fault_window
                if time.monotonic() < until:
                    return fault
                self._fault_window = None
            return None

    # -- ASGI ------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _run_empty_lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(
                f"RecordingMatomo handles only HTTP requests, got {scope['type']!r}"
            )

        body = await _read_body(receive)
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query_string=scope["query_string"].decode("latin-1"),
            headers={
                name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
            },
            body=body,
        )
        with self._lock:
            self._requests.append(request)

        fault = self._next_fault()
        if fault is not None and not fault.store:
            status, headers, content = fault.status, dict(fault.headers), fault.body
        else:
            status, headers, content = self._track(request)
            if fault is not None:
                status, headers, content = fault.status, dict(fault.headers), fault.body

        delay = self.delay + (fault.delay if fault is not None else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        request.status = status
        request.response_body = content
        await _respond(send, status, headers, content)

    # -- Matomo's rules --------------------------------------------------------

    def _track(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        """Process one request as Matomo's tracker does; return status, headers and body."""
        query = dict(parse_qsl(request.query_string, keep_blank_values=True))
        if _is_bulk_request(request.body):
            return self._track_bulk(request.body, url_token=query.get("token_auth"))

        params: dict[str, str] = {}
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and content_type.startswith(
            "application/x-www-form-urlencoded"
        ):
            params.update(
                parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
            )
        # PHP's $_GET + $_POST: a query string parameter wins over a form field.
        params.update(query)
        return self._track_single(params)

    def _track_single(self, params: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if not params:
            return 200, {"content-type": "text/plain; charset=utf-8"}, _EMPTY_REQUEST_TEXT
        token = params.pop("token_auth", None)
        try:
            stored = self._check_hit(params, token)
        except _InvalidHit as exc:
            with self._lock:
                self._invalid += 1
            return 400, {"content-type": "text/plain; charset=utf-8"}, str(exc).encode()
        except _TrackerException as exc:
            return 500, {"content-type": "text/plain; charset=utf-8"}, str(exc).encode()
        with self._changed:
            self._tracked += 1
            if stored:
                self._hits.append(params)
                self._changed.notify_all()
        if params.get("send_image") == "0":
            return 204, {}, b""
        return 200, {"content-type": "image/gif"}, TRANSPARENT_GIF

    def _track_bulk(
        self, body: bytes, *, url_token: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self._bulk_requests += 1
        try:
            data = json.loads(body.strip())
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {}
        body_token = data.get("token_auth")
        token = url_token or (body_token if isinstance(body_token, str) else None)
        entries = data.get("requests")
        if not isinstance(entries, list):
            entries = []

        # Matomo skips string entries without a query, so positions in
        # invalid_indices count only the entries that remain.
        requests = [params for params in map(_entry_params, entries) if params is not None]
        tracked = 0
        invalid_indices: list[int] = []
        stored: list[dict[str, str]] = []
        status = "success"
        for index, params in enumerate(requests):
            try:
                if self._check_hit(params, token):
                    stored.append(params)
            except _InvalidHit:
                invalid_indices.append(index)
                continue
            except _TrackerException:
                # Matomo rolls back the transaction of the whole bulk request.
                status = "error"
                stored = []
                break
            tracked += 1

        result: dict[str, Any] = {
            "status": status,
            "tracked": tracked,
            "invalid": len(invalid_indices),
        }
        if token is not None and token in self.superuser_tokens:
            result["invalid_indices"] = invalid_indices
        with self._changed:
            if status == "success":
                self._invalid += len(invalid_indices)
                self._tracked += tracked
                self._hits.extend(stored)
                self._changed.notify_all()

        headers = {"content-type": "application/json"}
        if status == "error":
            return 500, headers, json.dumps(result).encode()
        if data.get("send_image") in ("0", 0, False):
            return 204, {}, b""
        return 200, headers, json.dumps(result).encode()

    def _check_hit(self, params: Mapping[str, str], token: str | None) -> bool:
        """Return True when Matomo stores the hit; raise `_InvalidHit` when it rejects it."""
        if not params:
            return False  # An empty request is counted as tracked and stores nothing.
        idsite = _php_int(params.get("idsite"))
        if (
            idsite is None
            or idsite < 1
            or (self.idsites is not None and idsite not in self.idsites)
        ):
            raise _InvalidHit(f"Invalid idSite: {params.get('idsite')!r}")
        if not _php_int(params.get("rec")):
            return False
        if self.poison is not None and self.poison(params):
            raise _TrackerException("the tracker failed on this hit")

        authenticated = token is not None and token in self.tokens
        if params.get("cip") and not authenticated:
            raise _InvalidHit("Tracker API 'cip' was used, requires valid token_auth")
        timestamp = _custom_timestamp(params.get("cdt"))
        if timestamp is not None and not authenticated:
            age = time.time() - timestamp
            if age >= CUSTOM_TIMESTAMP_LIMIT:
                raise _InvalidHit(
                    f"Custom timestamp is {age:.0f} seconds old, requires token_auth"
                )
        return True


def _string_set(values: str | Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):
        return frozenset((values,))
    return frozenset(values)


def _is_bulk_request(body: bytes) -> bool:
    # Matomo's test: the raw body contains '"requests"' or "'requests'" at a
    # position other than 0 (PHP's strpos returns 0, a false value, for position 0).
    return body.find(b'"requests"') > 0 or body.find(b"'requests'") > 0


def _entry_params(entry: object) -> dict[str, str] | None:
    """Return the parameters of one bulk entry, or None for an entry Matomo skips."""
    if isinstance(entry, str):
        # Like PHP's parse_url(): the query is what follows the first "?", up to "#".
        _, question_mark, rest = entry.partition("?")
        query = rest.split("#", 1)[0]
        if not question_mark or not query:
            return None
        return dict(parse_qsl(query, keep_blank_values=True))
    if isinstance(entry, dict):
        return {str(name): _php_string(value) for name, value in entry.items()}
    if isinstance(entry, list):
        return {str(index): _php_string(value) for index, value in enumerate(entry)}
    return {}  # A scalar or null becomes an empty request.


def _php_string(value: object) -> str:
    """Convert a decoded JSON value to the string PHP would read from it."""
    if isinstance(value, str):
        return value
    if value is True:
        return "1"
    if value is False or value is None:
        return ""
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)


def _php_int(value: str | None) -> int | None:
    """Read an integer parameter the way Matomo does, or return None when it is not one."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        try:
            return int(float(value))
        except (ValueError, OverflowError):
            return None


def _custom_timestamp(value: str | None) -> float | None:
    """Return the UNIX time of a `cdt` value, or None when Matomo would ignore it."""
    if not value:
        return None
    timestamp: float | None
    try:
        timestamp = float(value)
    except ValueError:
        timestamp = _parse_utc_datetime(value)
    if timestamp is None:
        return None
    # Matomo ignores a time in the future or older than 20 years.
    age = time.time() - timestamp
    if age < 0 or age >= _CUSTOM_TIMESTAMP_MAX_AGE:
        return None
    return timestamp


def _parse_utc_datetime(value: str) -> float | None:
    for layout in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            parsed = time.strptime(value.strip().removesuffix("Z"), layout)
        except ValueError:
            continue
        return float(calendar.timegm(parsed))
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(send: Send, status: int, headers: Mapping[str, str], body: bytes) -> None:
    raw_headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]
    if status != 204 and not any(name.lower() == "content-length" for name in headers):
        raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body if status != 204 else b""})


async def _run_empty_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# Seconds that `serve_app` waits for uvicorn to start or to stop.
SERVE_STARTUP_TIMEOUT = 10.0
SERVE_SHUTDOWN_TIMEOUT = 10.0


@contextmanager
def serve_app(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **uvicorn_options: Any,
) -> Iterator[str]:
    """Serve `app` with uvicorn in a background thread; yield its base URL.

    `port` 0 picks a free port. The base URL has no trailing slash, for
    example ``http://127.0.0.1:54321``. Extra keyword arguments go to
    `uvicorn.Config` (the defaults here log only warnings, write no access log,
    and give open connections 1 second at shutdown). On leaving the block the
    server shuts down as on SIGTERM, running the app's lifespan shutdown, and
    the thread is joined. Raise RuntimeError when uvicorn does not start within
    `SERVE_STARTUP_TIMEOUT` seconds.
    """
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "asgi_matomo.testing.serve_app needs uvicorn: pip install 'asgi-matomo[test]'"
        ) from exc

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket's proto is IPPROTO_TCP. With proto 0, Nagle's algorithm and the
    # client's delayed ACK delay each keep-alive response until the ACK timer
    # fires (about 40 ms on Linux).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound_port: int = sock.getsockname()[1]

    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "ws": "none",
        "lifespan": "auto",
        "timeout_graceful_shutdown": 1,
    }
    options.update(uvicorn_options)
    server = uvicorn.Server(uvicorn.Config(app, **options))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"asgi-matomo-serve-{bound_port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + SERVE_STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(SERVE_SHUTDOWN_TIMEOUT)
                detail = f": {failure[0]!r}" if failure else ""
                raise RuntimeError(f"uvicorn did not start on {host}:{bound_port}{detail}")
            time.sleep(0.01)

        url_host = f"[{host}]" if family == socket.AF_INET6 else host
        yield f"http://{url_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(SERVE_SHUTDOWN_TIMEOUT)
        sock.close()
