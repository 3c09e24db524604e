"""Tests of PerfMsTracker, alone and behind the middleware."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_matomo import MatomoMiddleware, trackers
from asgi_matomo.testing import RecordingMatomo
from asgi_matomo.trackers import PerfMsTracker
from asgi_matomo.types import Scope


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Replace the tracker's clock by the readings in the returned list, in order."""
    readings: list[float] = []
    monkeypatch.setattr(trackers, "perf_counter", lambda: readings.pop(0))
    yield readings
    assert readings == [], "the tracker read the clock fewer times than expected"


def test_with_stores_milliseconds(clock: list[float]) -> None:
    clock.extend([10.0, 10.2504])
    scope: Scope = {"type": "http"}
    with PerfMsTracker(scope=scope, key="pf_srv"):
        pass

    assert scope["state"] == {"asgi_matomo": {"pf_srv": 250}}
    assert type(scope["state"]["asgi_matomo"]["pf_srv"]) is int


def test_async_with_stores_milliseconds(clock: list[float]) -> None:
    clock.extend([5.0, 5.0126])
    scope: Scope = {"type": "http"}

    async def measure() -> None:
        async with PerfMsTracker(scope=scope):
            await asyncio.sleep(0)

    asyncio.run(measure())

    assert scope["state"]["asgi_matomo"]["pf_srv"] == 13


def test_default_key_is_pf_srv(clock: list[float]) -> None:
    clock.extend([0.0, 0.001])
    scope: Scope = {}
    with PerfMsTracker(scope):
        pass

    assert scope["state"]["asgi_matomo"] == {"pf_srv": 1}


def test_custom_key(clock: list[float]) -> None:
    clock.extend([0.0, 0.042])
    scope: Scope = {}
    with PerfMsTracker(scope=scope, key="pf_net"):
        pass

    assert scope["state"]["asgi_matomo"] == {"pf_net": 42}


def test_existing_state_kept(clock: list[float]) -> None:
    clock.extend([0.0, 0.5])
    overrides: dict[str, Any] = {"action_name": "Foo/foo"}
    state: dict[str, Any] = {"user": "someone", "asgi_matomo": overrides}
    scope: Scope = {"state": state}
    with PerfMsTracker(scope=scope):
        pass

    assert scope["state"] is state
    assert state["user"] == "someone"
    assert state["asgi_matomo"] is overrides
    assert overrides == {"action_name": "Foo/foo", "pf_srv": 500}


def test_under_half_millisecond_is_zero(clock: list[float]) -> None:
    clock.extend([1.0, 1.0004])
    scope: Scope = {}
    with PerfMsTracker(scope=scope):
        pass

    assert scope["state"]["asgi_matomo"]["pf_srv"] == 0


def test_stored_when_block_raises(clock: list[float]) -> None:
    clock.extend([0.0, 0.25])
    scope: Scope = {}
    with pytest.raises(KeyError, match="missing"), PerfMsTracker(scope=scope):
        raise KeyError("missing")

    assert scope["state"]["asgi_matomo"]["pf_srv"] == 250


def test_elapsed_ms_attribute(clock: list[float]) -> None:
    clock.extend([0.0, 0.0075])
    tracker = PerfMsTracker(scope={})

    assert tracker.elapsed_ms is None
    with tracker as entered:
        assert entered is tracker

    assert tracker.elapsed_ms == 8


def test_reused_tracker_stores_last_block(clock: list[float]) -> None:
    clock.extend([0.0, 0.1, 1.0, 1.3])
    scope: Scope = {}
    tracker = PerfMsTracker(scope=scope)
    with tracker:
        pass
    with tracker:
        pass

    assert scope["state"]["asgi_matomo"]["pf_srv"] == 300


def test_real_clock_measures_sleep() -> None:
    scope: Scope = {}

    async def measure() -> None:
        async with PerfMsTracker(scope=scope):
            await asyncio.sleep(0.02)

    asyncio.run(measure())

    # Only a lower bound: a busy machine may take longer, never shorter.
    assert scope["state"]["asgi_matomo"]["pf_srv"] >= 19


def test_tracker_value_sent_by_middleware() -> None:
    recorder = RecordingMatomo()
    elapsed: list[int | None] = []

    async def homepage(request: Request) -> Response:
        async with PerfMsTracker(scope=request.scope, key="pf_srv") as tracker:
            await asyncio.sleep(0.01)
        elapsed.append(tracker.elapsed_ms)
        return PlainTextResponse("ok")

    async def scenario() -> None:
        matomo = httpx.AsyncClient(transport=httpx.ASGITransport(app=recorder))
        async with matomo:
            app = MatomoMiddleware(
                Starlette(routes=[Route("/", homepage)]),
                matomo_url="http://matomo.test/matomo.php",
                idsite=1,
                client=matomo,
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                response = await client.get("/")
            assert response.text == "ok"
            await app.sender.aclose()

    asyncio.run(scenario())

    [hit] = recorder.hits()
    assert elapsed[0] is not None
    assert hit["pf_srv"] == str(elapsed[0])
