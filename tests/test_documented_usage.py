"""The documented ways of shaping hits, end to end through uvicorn and a recording Matomo.

The catalogue app of ``documented_usage_app.py`` runs in a uvicorn subprocess that stops on
SIGINT, so its hits reach the recording endpoint only through the flush at lifespan shutdown.
A second run serves the app with uvicorn in a thread of the test process, behind a wrapper
that removes ``scope["state"]``. A server without lifespan state sends no ``state``, and the
app then creates it itself.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from asgi_matomo.testing import RecordingMatomo, serve_app
from asgi_matomo.types import ASGIApp, Receive, Scope, Send
from documented_usage_app import (
    IDSITE,
    REPORT_QUERY_SECONDS,
    create_app,
)
from server_helpers import uvicorn_process

pytestmark = pytest.mark.server

PATHS = ("/catalogue", "/loans", "/members/renewal", "/reports/daily", "/reports/weekly")

# The fixtures that serve the app, for parametrized tests.
SERVERS = ["served_by_uvicorn", "served_without_state"]

# What the middleware adds after the application's own custom variables.
STATUS_VARIABLE = ["http_status_code", "200"]
METHOD_VARIABLE = ["http_method", "GET"]

Served = dict[str, tuple[Any, dict[str, str]]]


def get_every_path(base_url: str) -> dict[str, Any]:
    """GET each of `PATHS` from the app at `base_url` and return the JSON bodies by path."""
    with httpx.Client(base_url=base_url, trust_env=False, timeout=30.0) as client:
        return {path: client.get(path).json() for path in PATHS}


def pair_with_hits(bodies: Mapping[str, Any], recorder: RecordingMatomo) -> Served:
    """Return each path's response body with its hit, checking there is exactly one hit each."""
    hits: dict[str, dict[str, str]] = {}
    for hit in recorder.hits():
        path = httpx.URL(hit["url"]).path
        assert path not in hits, f"two hits for {path}"
        hits[path] = hit
    assert sorted(hits) == sorted(PATHS)
    return {path: (bodies[path], hits[path]) for path in PATHS}


@pytest.fixture(scope="module")
def served_by_uvicorn() -> Served:
    """Request every path of the app under uvicorn, stop it, and return responses and hits."""
    recorder = RecordingMatomo()
    with serve_app(recorder) as matomo_base_url:
        with uvicorn_process(
            "documented_usage_app:app", f"{matomo_base_url}/matomo.php"
        ) as server:
            bodies = get_every_path(server.base_url)
            status = server.stop(signal.SIGINT)
        assert status == 0, server.output
    return pair_with_hits(bodies, recorder)


def without_state(app: ASGIApp) -> ASGIApp:
    """Wrap `app` so that HTTP scopes lack ``state``, which the ASGI spec makes optional."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {key: value for key, value in scope.items() if key != "state"}
        await app(scope, receive, send)

    return wrapped


@pytest.fixture(scope="module")
def served_without_state() -> Served:
    """Request every path of the app behind `without_state`, and return responses and hits."""
    recorder = RecordingMatomo()
    with serve_app(recorder) as matomo_base_url:
        app = without_state(create_app(f"{matomo_base_url}/matomo.php"))
        # Leaving serve_app runs the lifespan shutdown, which delivers the hits.
        with serve_app(app) as base_url:
            bodies = get_every_path(base_url)
    return pair_with_hits(bodies, recorder)


def custom_variables(hit: Mapping[str, str]) -> Any:
    return json.loads(hit["cvar"])


# -- route_details --------------------------------------------------------------------------


@pytest.mark.parametrize("served", SERVERS)
def test_route_details_set_event(served: str, request: pytest.FixtureRequest) -> None:
    body, hit = request.getfixturevalue(served)["/catalogue"]

    assert body == {"books": ["Dune", "Solaris"]}
    assert hit["idsite"] == str(IDSITE)
    assert hit["action_name"] == "Catalogue/browse"
    assert hit["e_c"] == "Catalogue"
    assert hit["e_a"] == "Browse"
    assert hit["url"].endswith("/catalogue")
    assert custom_variables(hit) == {"1": STATUS_VARIABLE, "2": METHOD_VARIABLE}


# -- scope["state"]["asgi_matomo"] ----------------------------------------------------------


@pytest.mark.parametrize("served", SERVERS)
def test_state_dict_assigned(served: str, request: pytest.FixtureRequest) -> None:
    body, hit = request.getfixturevalue(served)["/loans"]

    # uvicorn sends scope["state"], so only the run without it makes the app create it.
    assert body == {"loan": "created", "state_created": served == "served_without_state"}
    assert hit["idsite"] == str(IDSITE)
    assert hit["action_name"] == "Loans/borrow"
    assert hit["e_c"] == "Loans"
    assert hit["e_a"] == "Borrow"
    # Matomo reads custom variables only in the indexed form. The app's own come first.
    assert custom_variables(hit) == {
        "1": ["branch", "riverside"],
        "2": STATUS_VARIABLE,
        "3": METHOD_VARIABLE,
    }


@pytest.mark.parametrize("served", SERVERS)
def test_state_dict_updated(served: str, request: pytest.FixtureRequest) -> None:
    body, hit = request.getfixturevalue(served)["/members/renewal"]

    assert body == {"membership": "renewed"}
    assert hit["action_name"] == "Members/renew"
    # The category comes from the dict that the app's middleware stored first.
    assert hit["e_c"] == "Members"
    assert hit["e_a"] == "Renew"
    assert custom_variables(hit) == {
        "1": ["renewals", "2"],
        "2": STATUS_VARIABLE,
        "3": METHOD_VARIABLE,
    }


# -- PerfMsTracker ------------------------------------------------------------------------


@pytest.mark.parametrize("served", SERVERS)
@pytest.mark.parametrize(
    ("path", "report"), [("/reports/daily", "daily"), ("/reports/weekly", "weekly")]
)
def test_perf_tracker_sets_pf_srv(
    served: str, path: str, report: str, request: pytest.FixtureRequest
) -> None:
    body, hit = request.getfixturevalue(served)[path]

    assert body["report"] == report
    # Matomo stores pf_srv only as an integer number of milliseconds.
    assert hit["pf_srv"].isdigit()
    assert int(hit["pf_srv"]) >= REPORT_QUERY_SECONDS * 1000
    # The handler sleeps again after the timed block, so the middleware's own
    # measurement of the whole request is larger, and equality shows that the
    # tracked time replaced it.
    assert int(hit["pf_srv"]) == body["tracked_ms"]
    assert hit["action_name"] == path
    assert custom_variables(hit) == {"1": STATUS_VARIABLE, "2": METHOD_VARIABLE}
