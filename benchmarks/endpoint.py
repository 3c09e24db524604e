"""Matomo-compatible tracking endpoint that counts the hits it receives.

The load benchmark serves this ASGI app with uvicorn on 127.0.0.1 as the Matomo
that the tracked app reports to. It must count both forms that Matomo's tracker
accepts: bulk JSON (``{"requests": [...]}``) and single hits as a GET query
string or a POST form body, because asgi-matomo 0.8.0 sends one form POST per
request.

When asgi-matomo from this checkout is installed, the tracking requests go to
its ``asgi_matomo.testing.RecordingMatomo``, which applies Matomo's rules.
Otherwise (a run of the bare app against 0.8.0 only) a small counter in this
file takes its place.

The endpoint responds to tracking requests after ``BENCH_ENDPOINT_DELAY``
seconds (default 0). ``GET /stats`` returns the counts as JSON at once. A hit counts as received
once its whole request body has arrived, before the delay, because a real
Matomo stores the hit before it responds.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Message = dict[str, Any]

DELAY_SECONDS = float(os.environ.get("BENCH_ENDPOINT_DELAY", "0"))

# Counts of the fallback counter, used when RecordingMatomo cannot be imported.
counts: dict[str, int] = {
    "http_requests": 0,  # tracking requests received (bulk and single)
    "bulk_requests": 0,
    "single_requests": 0,
    "hits": 0,  # valid hits received, bulk entries and single hits together
    "invalid_hits": 0,  # entries or single requests without an idsite parameter
    "responded": 0,  # tracking requests responded to after the delay
}


async def _read_body(receive: Any) -> bytes:
    chunks = []
    more_body = True
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        more_body = message.get("more_body", False)
    return b"".join(chunks)


async def _respond(send: Any, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _count_bulk(payload: Any) -> tuple[int, int] | None:
    """Count valid and invalid entries of a bulk body, or return None if it is not one."""
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        return None
    valid = sum(1 for entry in payload["requests"] if _is_valid_entry(entry))
    return valid, len(payload["requests"]) - valid


def _is_valid_entry(entry: Any) -> bool:
    if isinstance(entry, dict):
        return "idsite" in entry
    return isinstance(entry, str) and entry.startswith("?") and "idsite=" in entry


async def count_hits(scope: Scope, receive: Any, send: Any) -> None:
    """Count a tracking request without applying Matomo's rules (the fallback)."""
    body = await _read_body(receive)
    counts["http_requests"] += 1

    bulk = None
    if scope["method"] == "POST" and body.startswith(b"{"):
        try:
            bulk = _count_bulk(json.loads(body))
        except ValueError:
            bulk = None

    if bulk is not None:
        valid, invalid = bulk
        counts["bulk_requests"] += 1
        counts["hits"] += valid
        counts["invalid_hits"] += invalid
    else:
        counts["single_requests"] += 1
        form = body.decode("latin-1") if scope["method"] == "POST" else ""
        query = scope["query_string"].decode("latin-1")
        params = parse_qs(query) | parse_qs(form)
        if "idsite" in params:
            counts["hits"] += 1
        else:
            counts["invalid_hits"] += 1

    if DELAY_SECONDS > 0:
        await asyncio.sleep(DELAY_SECONDS)
    counts["responded"] += 1

    if bulk is not None:
        response = {"status": "success", "tracked": bulk[0], "invalid": bulk[1]}
        await _respond(send, 200, json.dumps(response).encode(), b"application/json")
    else:
        # Matomo responds to a single hit with send_image=0 with 204 and no body.
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _fallback_counts() -> dict[str, Any]:
    return {"implementation": "benchmarks/endpoint.py", **counts}


try:
    from asgi_matomo.testing import RecordingMatomo
except ImportError:
    tracker: Any = count_hits
    read_counts = _fallback_counts
else:
    recorder = RecordingMatomo(delay=DELAY_SECONDS)
    tracker = recorder

    def read_counts() -> dict[str, Any]:
        requests = recorder.requests()
        bulk_requests = recorder.bulk_request_count()
        return {
            "implementation": "asgi_matomo.testing.RecordingMatomo",
            "http_requests": len(requests),
            "bulk_requests": bulk_requests,
            "single_requests": len(requests) - bulk_requests,
            "hits": len(recorder.hits()),
            "invalid_hits": recorder.invalid_count(),
            "responded": sum(1 for request in requests if request.status),
        }


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/stats" and scope["method"] == "GET":
        await _respond(send, 200, json.dumps(read_counts()).encode(), b"application/json")
        return
    await tracker(scope, receive, send)
