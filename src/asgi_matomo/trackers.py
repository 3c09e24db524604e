"""Measure parts of a request and store the result as a tracking parameter."""

from __future__ import annotations

from collections.abc import MutableMapping
from time import perf_counter
from types import TracebackType
from typing import Any

from .types import Scope

# Key of the per-request tracking parameters in scope["state"].
STATE_KEY = "asgi_matomo"


class PerfMsTracker:
    """Time a block of code and store the elapsed wall time in whole milliseconds.

    On exit, also when the block raised, the time is stored at
    ``scope["state"]["asgi_matomo"][key]``. ``state`` and ``asgi_matomo`` are
    created when missing, so the tracker works without the middleware too. With
    the default key ``pf_srv`` the value replaces the server time the middleware
    measures for the whole request. Use it with ``with`` or ``async with``::

        with PerfMsTracker(scope=request.scope, key="pf_srv"):
            data = await fetch_data()
    """

    __slots__ = ("_started", "elapsed_ms", "key", "scope")

    def __init__(self, scope: Scope, key: str = "pf_srv") -> None:
        self.scope = scope
        self.key = key
        # The last measured time, None until the first block has ended.
        self.elapsed_ms: int | None = None
        self._started = 0.0

    def __enter__(self) -> PerfMsTracker:
        self._started = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.elapsed_ms = round((perf_counter() - self._started) * 1000.0)
        state: MutableMapping[str, Any] | None = self.scope.get("state")
        if state is None:
            state = self.scope["state"] = {}
        parameters: MutableMapping[str, object] | None = state.get(STATE_KEY)
        if parameters is None:
            parameters = state[STATE_KEY] = {}
        parameters[self.key] = self.elapsed_ms

    async def __aenter__(self) -> PerfMsTracker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)
