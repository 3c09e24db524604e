"""The demo's traffic: a seeded plan of varied HTTP requests and a concurrent client to send it."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from asgi_matomo.demo.app import EXCLUDED_PATHS, EXCLUDED_PATTERNS, IGNORED_METHODS

# Every request carries its number in the User-Agent, so each hit Matomo receives can be matched
# to the request that caused it without changing the tracked URL.
USER_AGENT_FORMAT = "asgi-matomo-demo/1 (request {number})"
_REQUEST_NUMBER = re.compile(r"\(request (\d+)\)")

# Percent-encoded path segments, as a browser sends them: non-ASCII text, a space, a literal
# percent sign and an encoded slash (which routes differently from a real one).
_ITEM_IDS = (
    "42",
    "7",
    "caf%C3%A9",
    "%E6%97%A5%E6%9C%AC",
    "a%20b",
    "100%25",
    "a%2Fb",
)
_SEARCH_TERMS = ("shoes", "caf%C3%A9", "red+shoes", "%E2%9C%93", "fish%26chips")
_LANGUAGES = ("en-US,en;q=0.9", "de-DE,de;q=0.8,en;q=0.5", "ja", "fr-CH, fr;q=0.9")
_REFERRERS = ("https://www.example.org/", "https://search.example.com/?q=asgi+matomo")


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One request of the plan. `target` is the raw, ASCII request target (path and query)."""

    number: int
    kind: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def tracked(self) -> bool:
        """True when the demo app's middleware configuration tracks this request."""
        if self.method in IGNORED_METHODS or self.path in EXCLUDED_PATHS:
            return False
        return not any(re.search(pattern, self.path) for pattern in EXCLUDED_PATTERNS)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of one request as the client saw it: the status code, or the error that ended it."""

    request: PlannedRequest
    status: int | None
    error: str | None


# A request shape: (method, target, body) drawn with the plan's random generator.
_Shape = tuple[str, str, bytes | None]


def _home(rng: random.Random) -> _Shape:
    return "GET", "/", None


def _head(rng: random.Random) -> _Shape:
    return "HEAD", "/", None


def _item(rng: random.Random) -> _Shape:
    return "GET", f"/items/{rng.choice(_ITEM_IDS)}", None


def _item_write(rng: random.Random) -> _Shape:
    method = rng.choice(("PUT", "PATCH", "DELETE"))
    body = None if method == "DELETE" else b'{"name": "renamed"}'
    return method, f"/items/{rng.randint(1, 99)}", body


def _search(rng: random.Random) -> _Shape:
    return "GET", f"/search?q={rng.choice(_SEARCH_TERMS)}&page={rng.randint(1, 5)}", None


def _downloads(rng: random.Random) -> _Shape:
    return "GET", "/downloads", None


def _checkout(rng: random.Random) -> _Shape:
    plan = rng.choice(("free", "pro", "team"))
    body = f'{{"plan": "{plan}", "items": {rng.randint(1, 9)}}}'.encode()
    return "POST", "/checkout", body


def _download(rng: random.Random) -> _Shape:
    return "GET", f"/downloads/{rng.choice(('guide', 'price-list', 'r%C3%A9sum%C3%A9'))}.pdf", None


def _report(rng: random.Random) -> _Shape:
    return "GET", f"/report?ms={rng.randint(5, 40)}", None


def _stream(rng: random.Random) -> _Shape:
    return "GET", "/stream", None


def _reset(rng: random.Random) -> _Shape:
    return "GET", f"/account/reset?token={rng.getrandbits(64):016x}&step=2", None


def _boom(rng: random.Random) -> _Shape:
    return "GET", "/boom", None


def _missing(rng: random.Random) -> _Shape:
    return "GET", f"/missing/{rng.randint(1, 999)}?from=nav", None


def _health(rng: random.Random) -> _Shape:
    return "GET", "/health", None


def _static(rng: random.Random) -> _Shape:
    return "GET", f"/static/{rng.choice(('app.css', 'img/logo.svg'))}", None


def _options(rng: random.Random) -> _Shape:
    return "OPTIONS", "/items/1", None


# Request kinds with their relative weights in the plan.
_KINDS: dict[str, tuple[Callable[[random.Random], _Shape], int]] = {
    "home": (_home, 10),
    "head": (_head, 3),
    "item": (_item, 15),
    "item-write": (_item_write, 8),
    "search": (_search, 10),
    "route-details": (_downloads, 8),
    "checkout": (_checkout, 8),
    "download": (_download, 5),
    "perf-tracker": (_report, 6),
    "stream": (_stream, 4),
    "redacted-query": (_reset, 3),
    "error": (_boom, 4),
    "not-found": (_missing, 4),
    "excluded-path": (_health, 6),
    "excluded-pattern": (_static, 5),
    "ignored-method": (_options, 4),
}

KIND_NAMES = tuple(_KINDS)


def plan_requests(count: int, seed: int) -> list[PlannedRequest]:
    """Plan `count` requests: every kind once (while `count` allows), then weighted draws."""
    rng = random.Random(seed)
    kinds = list(_KINDS)
    rng.shuffle(kinds)
    names = list(_KINDS)
    weights = [weight for _, weight in _KINDS.values()]
    kinds = kinds[:count] + rng.choices(names, weights=weights, k=max(0, count - len(kinds)))
    rng.shuffle(kinds)

    plan = []
    for number, kind in enumerate(kinds, start=1):
        method, target, body = _KINDS[kind][0](rng)
        headers = [("User-Agent", USER_AGENT_FORMAT.format(number=number))]
        headers.append(("Accept-Language", rng.choice(_LANGUAGES)))
        if rng.random() < 0.4:
            headers.append(("Referer", rng.choice(_REFERRERS)))
        if body is not None:
            headers.append(("Content-Type", "application/json"))
        if kind == "error":
            # uvicorn closes the connection when the app raises after its response started
            # (Starlette sends the 500 first). A pooled connection reused at that moment would
            # be reset, so this request sends "Connection: close" and gets a connection of its own.
            headers.append(("Connection", "close"))
        plan.append(PlannedRequest(number, kind, method, target, tuple(headers), body))
    return plan


def request_number(user_agent: object) -> int | None:
    """Return the request number carried in a hit's `ua`, or None when it has none."""
    if not isinstance(user_agent, str):
        return None
    match = _REQUEST_NUMBER.search(user_agent)
    return int(match.group(1)) if match else None


async def send_requests(
    base_url: str, plan: Sequence[PlannedRequest], concurrency: int
) -> list[Outcome]:
    """Send every planned request to `base_url`, at most `concurrency` at a time."""
    limit = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(limits=limits, timeout=30.0, trust_env=False) as client:

        async def send(request: PlannedRequest) -> Outcome:
            # The raw target keeps percent escapes exactly as planned; httpx would re-encode a
            # decoded path.
            url = httpx.URL(base_url).copy_with(raw_path=request.target.encode("ascii"))
            async with limit:
                try:
                    response = await client.request(
                        request.method, url, headers=list(request.headers), content=request.body
                    )
                except httpx.HTTPError as exc:
                    return Outcome(request, None, f"{type(exc).__name__}: {exc}")
            return Outcome(request, response.status_code, None)

        return list(await asyncio.gather(*(send(request) for request in plan)))
