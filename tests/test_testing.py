"""RecordingMatomo follows Matomo's tracker rules; serve_app serves apps on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from asgi_matomo.testing import TRANSPARENT_GIF, Fault, RecordingMatomo, serve_app
from asgi_matomo.types import ASGIApp, Receive, Scope, Send

ENDPOINT = "http://matomo.test/matomo.php"


def post_bulk(recorder: RecordingMatomo, payload: object) -> httpx.Response:
    """Send one bulk request to `recorder` in process and return the response."""
    return asyncio.run(_request(recorder, "POST", ENDPOINT, content=json.dumps(payload)))


def get(recorder: RecordingMatomo, url: str) -> httpx.Response:
    return asyncio.run(_request(recorder, "GET", url))


async def _request(
    recorder: RecordingMatomo, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    transport = httpx.ASGITransport(app=recorder)
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.request(method, url, **kwargs)


def recent() -> int:
    return int(time.time()) - 60


# -- Bulk requests ------------------------------------------------------------------------


def test_query_strings_and_objects_stored_alike() -> None:
    recorder = RecordingMatomo()
    response = post_bulk(
        recorder,
        {
            "requests": [
                "?idsite=1&rec=1&url=https%3A%2F%2Fa.example%2F&pf_srv=12",
                {"idsite": 1, "rec": 1, "url": "https://a.example/", "pf_srv": 12},
            ]
        },
    )
    assert response.status_code == 200
    assert response.json() == {"status": "success", "tracked": 2, "invalid": 0}
    expected = {"idsite": "1", "rec": "1", "url": "https://a.example/", "pf_srv": "12"}
    assert recorder.hits() == [expected, expected]


def test_string_without_question_mark_dropped_silently() -> None:
    recorder = RecordingMatomo()
    response = post_bulk(recorder, {"requests": ["idsite=1&rec=1", "?idsite=1&rec=1&url=b"]})
    assert response.json() == {"status": "success", "tracked": 1, "invalid": 0}
    assert recorder.hits() == [{"idsite": "1", "rec": "1", "url": "b"}]


def test_full_url_entry_uses_its_query() -> None:
    recorder = RecordingMatomo()
    post_bulk(recorder, {"requests": ["https://m.example/matomo.php?idsite=1&rec=1#frag"]})
    assert recorder.hits() == [{"idsite": "1", "rec": "1"}]


def test_hit_without_rec_tracked_not_stored() -> None:
    recorder = RecordingMatomo()
    response = post_bulk(recorder, {"requests": [{"idsite": 1, "url": "https://a.example/"}]})
    assert response.json() == {"status": "success", "tracked": 1, "invalid": 0}
    assert recorder.hits() == []
    assert recorder.tracked_count() == 1


def test_cip_without_token_invalid() -> None:
    recorder = RecordingMatomo(token_auth="write-token")
    response = post_bulk(
        recorder,
        {"requests": [{"idsite": 1, "rec": 1, "cip": "203.0.113.5"}, {"idsite": 1, "rec": 1}]},
    )
    assert response.json() == {"status": "success", "tracked": 1, "invalid": 1}
    assert recorder.hits() == [{"idsite": "1", "rec": "1"}]
    assert recorder.invalid_count() == 1


def test_cip_with_wrong_token_invalid() -> None:
    recorder = RecordingMatomo(token_auth="write-token")
    response = post_bulk(
        recorder,
        {"requests": [{"idsite": 1, "rec": 1, "cip": "203.0.113.5"}], "token_auth": "guess"},
    )
    assert response.json()["invalid"] == 1


def test_cip_with_write_token_stored() -> None:
    recorder = RecordingMatomo(token_auth="write-token")
    response = post_bulk(
        recorder,
        {"requests": [{"idsite": 1, "rec": 1, "cip": "2001:db8::1"}], "token_auth": "write-token"},
    )
    assert response.json() == {"status": "success", "tracked": 1, "invalid": 0}
    assert recorder.hits()[0]["cip"] == "2001:db8::1"


def test_invalid_indices_only_for_superuser_token() -> None:
    payload = {
        "requests": [
            "no-query-so-skipped",
            {"idsite": 1, "rec": 1},
            {"idsite": 1, "rec": 1, "cip": "203.0.113.5"},
            {"idsite": 7, "rec": 1},
        ],
    }
    write = RecordingMatomo(token_auth="write-token", idsites=[1])
    response = post_bulk(write, {**payload, "token_auth": "write-token"})
    assert response.json() == {"status": "success", "tracked": 2, "invalid": 1}

    superuser = RecordingMatomo(superuser_token_auth="super-token", idsites=[1])
    response = post_bulk(superuser, {**payload, "token_auth": "super-token"})
    # Positions count the entries that remain after skipped strings.
    assert response.json() == {
        "status": "success",
        "tracked": 2,
        "invalid": 1,
        "invalid_indices": [2],
    }


def test_unknown_site_invalid() -> None:
    recorder = RecordingMatomo(idsites=[1, 2])
    response = post_bulk(
        recorder,
        {"requests": [{"idsite": 3, "rec": 1}, {"idsite": "abc", "rec": 1}, {"rec": 1}]},
    )
    assert response.json() == {"status": "success", "tracked": 0, "invalid": 3}


@pytest.mark.parametrize(
    ("age", "token", "stored"),
    [
        (60, None, True),
        (86_399, None, True),
        (86_400 + 60, None, False),
        (86_400 + 60, "write-token", True),
        (-3600, None, True),  # a time in the future is ignored, not rejected
    ],
)
def test_custom_time_needs_token_after_a_day(age: int, token: str | None, stored: bool) -> None:
    recorder = RecordingMatomo(token_auth="write-token")
    payload: dict[str, object] = {
        "requests": [{"idsite": 1, "rec": 1, "cdt": int(time.time()) - age}]
    }
    if token is not None:
        payload["token_auth"] = token
    response = post_bulk(recorder, payload)
    assert (len(recorder.hits()) == 1) is stored
    assert response.json()["invalid"] == (0 if stored else 1)


def test_custom_time_as_utc_datetime() -> None:
    recorder = RecordingMatomo()
    two_days_ago = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 2 * 86_400))
    response = post_bulk(recorder, {"requests": [{"idsite": 1, "rec": 1, "cdt": two_days_ago}]})
    assert response.json()["invalid"] == 1


def test_body_that_is_not_json_tracks_nothing() -> None:
    recorder = RecordingMatomo()
    response = asyncio.run(_request(recorder, "POST", ENDPOINT, content=b'{"requests": [broken'))
    assert response.status_code == 200
    assert response.json() == {"status": "success", "tracked": 0, "invalid": 0}
    assert recorder.bulk_request_count() == 1


def test_scalar_entries_are_empty_requests() -> None:
    recorder = RecordingMatomo()
    response = post_bulk(recorder, {"requests": [None, 5, ["idsite", "rec"]]})
    # null and numbers are empty requests (tracked); a list lacks idsite (invalid).
    assert response.json() == {"status": "success", "tracked": 2, "invalid": 1}
    assert recorder.hits() == []


def test_send_image_zero_in_bulk_gives_204() -> None:
    recorder = RecordingMatomo()
    response = post_bulk(recorder, {"requests": [{"idsite": 1, "rec": 1}], "send_image": "0"})
    assert response.status_code == 204
    assert len(recorder.hits()) == 1


def test_poison_rolls_back_bulk_request() -> None:
    recorder = RecordingMatomo()
    recorder.poison = lambda hit: hit.get("url") == "bad"
    response = post_bulk(
        recorder,
        {
            "requests": [
                {"idsite": 1, "rec": 1, "url": "ok-1"},
                {"idsite": 1, "rec": 1, "url": "bad"},
                {"idsite": 1, "rec": 1, "url": "ok-2"},
            ]
        },
    )
    assert response.status_code == 500
    assert response.json() == {"status": "error", "tracked": 1, "invalid": 0}
    assert recorder.hits() == []
    assert recorder.tracked_count() == 0


def test_object_values_read_as_php_strings() -> None:
    recorder = RecordingMatomo()
    post_bulk(
        recorder,
        {"requests": [{"idsite": 1, "rec": True, "pf_srv": 250.5, "new_visit": False, "a": None}]},
    )
    assert recorder.hits() == [
        {"idsite": "1", "rec": "1", "pf_srv": "250.5", "new_visit": "", "a": ""}
    ]


# -- Single hits ------------------------------------------------------------------------


def test_single_get_with_send_image_zero() -> None:
    recorder = RecordingMatomo()
    response = get(recorder, f"{ENDPOINT}?idsite=1&rec=1&url=https%3A%2F%2Fa%2F&send_image=0")
    assert response.status_code == 204
    assert recorder.hits() == [{"idsite": "1", "rec": "1", "url": "https://a/", "send_image": "0"}]
    assert recorder.bulk_request_count() == 0


def test_single_get_returns_gif() -> None:
    recorder = RecordingMatomo()
    response = get(recorder, f"{ENDPOINT}?idsite=1&rec=1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content == TRANSPARENT_GIF
    assert len(response.content) == 43


def test_single_form_post() -> None:
    recorder = RecordingMatomo()
    response = asyncio.run(
        _request(
            recorder,
            "POST",
            ENDPOINT,
            data={"idsite": "1", "rec": "1", "action_name": "Café"},
        )
    )
    assert response.status_code == 200
    assert recorder.hits() == [{"idsite": "1", "rec": "1", "action_name": "Café"}]


def test_invalid_single_hit_gets_400() -> None:
    recorder = RecordingMatomo()
    response = get(recorder, f"{ENDPOINT}?idsite=1&rec=1&cip=203.0.113.5")
    assert response.status_code == 400
    assert recorder.hits() == []
    assert recorder.invalid_count() == 1


def test_single_hit_token_in_query_authenticates() -> None:
    recorder = RecordingMatomo(token_auth="write-token")
    get(recorder, f"{ENDPOINT}?idsite=1&rec=1&cip=203.0.113.5&token_auth=write-token")
    assert recorder.hits() == [{"idsite": "1", "rec": "1", "cip": "203.0.113.5"}]


def test_request_without_parameters() -> None:
    recorder = RecordingMatomo()
    response = get(recorder, ENDPOINT)
    assert response.status_code == 200
    assert recorder.hits() == []
    assert recorder.tracked_count() == 0


# -- Faults, counters and records --------------------------------------------------------


def test_fail_next_consumed_in_order() -> None:
    recorder = RecordingMatomo()
    recorder.fail_next(Fault(status=503, headers={"retry-after": "7"}), count=2)
    payload = {"requests": [{"idsite": 1, "rec": 1}]}

    first = post_bulk(recorder, payload)
    second = post_bulk(recorder, payload)
    third = post_bulk(recorder, payload)

    assert first.status_code == 503
    assert first.headers["retry-after"] == "7"
    assert second.status_code == 503
    assert third.status_code == 200
    assert len(recorder.hits()) == 1
    assert [request.status for request in recorder.requests()] == [503, 503, 200]


def test_fail_for_ends_after_window() -> None:
    recorder = RecordingMatomo()
    recorder.fail_for(0.2, Fault(status=502))
    payload = {"requests": [{"idsite": 1, "rec": 1}]}
    assert post_bulk(recorder, payload).status_code == 502
    time.sleep(0.25)
    assert post_bulk(recorder, payload).status_code == 200


def test_fault_with_store_keeps_hits() -> None:
    recorder = RecordingMatomo()
    recorder.fail_next(Fault(status=504, body=b"gateway timeout", store=True))
    response = post_bulk(recorder, {"requests": [{"idsite": 1, "rec": 1}]})
    assert response.status_code == 504
    assert response.content == b"gateway timeout"
    assert len(recorder.hits()) == 1


def test_fault_delay_applies() -> None:
    recorder = RecordingMatomo()
    recorder.fail_next(Fault(status=200, body=b"{}", delay=0.2))
    started = time.monotonic()
    post_bulk(recorder, {"requests": []})
    assert time.monotonic() - started >= 0.2


def test_requests_record_what_arrived() -> None:
    recorder = RecordingMatomo()
    asyncio.run(
        _request(
            recorder,
            "POST",
            f"{ENDPOINT}?debug=1",
            content=b'{"requests": []}',
            headers={"content-type": "application/json"},
        )
    )
    [request] = recorder.requests()
    assert request.method == "POST"
    assert request.path == "/matomo.php"
    assert request.query_string == "debug=1"
    assert request.headers["content-type"] == "application/json"
    assert request.body == b'{"requests": []}'
    assert request.status == 200
    assert json.loads(request.response_body)["status"] == "success"
    assert recorder.http_request_count() == 1


def test_reset_forgets_everything() -> None:
    recorder = RecordingMatomo()
    post_bulk(recorder, {"requests": [{"idsite": 1, "rec": 1}]})
    recorder.fail_next(Fault())
    recorder.reset()
    assert recorder.hits() == []
    assert recorder.http_request_count() == 0
    assert recorder.bulk_request_count() == 0
    assert post_bulk(recorder, {"requests": []}).status_code == 200


def test_wait_for_hits_returns_early_or_on_timeout() -> None:
    recorder = RecordingMatomo()

    def store_later() -> None:
        time.sleep(0.1)
        post_bulk(recorder, {"requests": [{"idsite": 1, "rec": 1}]})

    thread = threading.Thread(target=store_later)
    thread.start()
    assert len(recorder.wait_for_hits(1, timeout=10)) == 1
    thread.join()

    started = time.monotonic()
    assert len(recorder.wait_for_hits(2, timeout=0.1)) == 1
    assert time.monotonic() - started >= 0.1


def test_websocket_scope_rejected() -> None:
    recorder = RecordingMatomo()

    async def call() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        async def send(message: object) -> None:
            pass

        await recorder({"type": "websocket"}, receive, send)

    with pytest.raises(RuntimeError, match="handles only HTTP requests, got 'websocket'"):
        asyncio.run(call())


# -- serve_app ---------------------------------------------------------------------------


@pytest.mark.server
def test_serve_app_over_real_http() -> None:
    recorder = RecordingMatomo()
    with serve_app(recorder) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        response = httpx.post(
            f"{base_url}/matomo.php", content=json.dumps({"requests": ["?idsite=1&rec=1"]})
        )
        assert response.json() == {"status": "success", "tracked": 1, "invalid": 0}
    assert recorder.hits() == [{"idsite": "1", "rec": "1"}]
    port = int(base_url.rsplit(":", 1)[1])
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/")


@pytest.mark.server
def test_serve_app_runs_lifespan() -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    with serve_app(app):
        assert events == ["lifespan.startup"]
    assert events == ["lifespan.startup", "lifespan.shutdown"]


@pytest.mark.server
def test_serve_app_reports_failed_startup() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(RuntimeError, match="uvicorn did not start"), serve_app(app, lifespan="on"):
        pass


@pytest.mark.server
def test_serve_app_on_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    recorder = RecordingMatomo()
    with serve_app(recorder, host="::1") as base_url:
        assert base_url.startswith("http://[::1]:")
        assert httpx.get(f"{base_url}/matomo.php?idsite=1&rec=1").status_code == 200
    assert len(recorder.hits()) == 1


def _record_server_nodelay(flags: list[int]) -> ASGIApp:
    """Build an app that stores TCP_NODELAY of the server's socket for each request."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        # uvicorn passes the bound `send` method of its request cycle, whose
        # `transport` attribute is the connection. The test fails here if uvicorn
        # changes that.
        transport = send.__self__.transport  # type: ignore[attr-defined]
        connection = transport.get_extra_info("socket")
        flags.append(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


@pytest.mark.server
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_serve_app_sets_tcp_nodelay(host: str) -> None:
    if host == "::1":
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
                probe.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback on this machine")
    flags: list[int] = []
    with serve_app(_record_server_nodelay(flags), host=host) as base_url, httpx.Client() as client:
        for _ in range(3):
            assert client.get(base_url).status_code == 204
    assert flags == [1, 1, 1]
