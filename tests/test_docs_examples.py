"""The three examples of the user documentation, served by uvicorn exactly as users run them.

Each example lives unchanged in a module of tests/ (docs_example_*.py) apart from `matomo_url`,
which points at a recording Matomo endpoint on loopback. The server stops on SIGINT, and the
hits must have reached the endpoint by the time the process has exited.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import httpx
import pytest

from asgi_matomo.testing import RecordingMatomo, serve_app
from server_helpers import uvicorn_process

pytestmark = pytest.mark.server

STATUS_AND_METHOD = [["http_status_code", "200"], ["http_method", "GET"]]


@pytest.fixture
def matomo() -> Iterator[tuple[RecordingMatomo, str]]:
    """A recording Matomo endpoint served on loopback, with its tracking URL."""
    recorder = RecordingMatomo()
    with serve_app(recorder) as base_url:
        yield recorder, f"{base_url}/matomo.php"


def serve_and_get(module: str, matomo_url: str, path: str) -> httpx.Response:
    """Serve `module`:app with uvicorn, GET `path`, then stop the server with SIGINT."""
    with uvicorn_process(f"{module}:app", matomo_url) as server:
        response = httpx.get(server.base_url + path, trust_env=False, timeout=30.0)
        status = server.stop(signal.SIGINT)
    assert status is not None, server.output
    return response


def test_route_details_example(matomo: tuple[RecordingMatomo, str]) -> None:
    recorder, matomo_url = matomo

    response = serve_and_get("docs_example_route", matomo_url, "/foo")

    assert response.json() == {"name": "foo"}
    [hit] = recorder.hits()
    assert hit["idsite"] == "12345"
    assert hit["action_name"] == "Foo/foo"
    assert hit["e_c"] == "Foo"
    assert hit["e_a"] == "Playing"
    assert hit["url"].endswith("/foo")
    assert json.loads(hit["cvar"]) == {"1": STATUS_AND_METHOD[0], "2": STATUS_AND_METHOD[1]}


def test_request_state_example(matomo: tuple[RecordingMatomo, str]) -> None:
    recorder, matomo_url = matomo

    response = serve_and_get("docs_example_request", matomo_url, "/foo")

    assert response.json() == {"name": "foo"}
    [hit] = recorder.hits()
    assert hit["action_name"] == "Foo/foo"
    assert hit["e_c"] == "Foo"
    assert hit["e_a"] == "Playing"
    # Matomo stores custom variables only in this indexed form; the app's own come first.
    assert json.loads(hit["cvar"]) == {
        "1": ["anything", "goes"],
        "2": STATUS_AND_METHOD[0],
        "3": STATUS_AND_METHOD[1],
    }


def test_perf_ms_tracker_example(matomo: tuple[RecordingMatomo, str]) -> None:
    recorder, matomo_url = matomo

    response = serve_and_get("docs_example_perf", matomo_url, "/")

    assert response.json() == {"data": 4000}
    [hit] = recorder.hits()
    # Matomo stores pf_srv only as an integer number of milliseconds.
    assert hit["pf_srv"].isdigit()
    assert int(hit["pf_srv"]) >= 200
    assert hit["action_name"] == "/"
    assert json.loads(hit["cvar"]) == {"1": STATUS_AND_METHOD[0], "2": STATUS_AND_METHOD[1]}
