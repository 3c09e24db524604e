"""Run the demo: serve the example app and a recording Matomo endpoint, send traffic, report."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from asgi_matomo import DeliveryStats
from asgi_matomo.demo.app import DemoError, create_app
from asgi_matomo.demo.report import custom_variables, format_figures, format_table, hit_row
from asgi_matomo.demo.traffic import (
    Outcome,
    PlannedRequest,
    plan_requests,
    request_number,
    send_requests,
)
from asgi_matomo.testing import RecordingMatomo, serve_app

MATOMO_PATH = "/matomo.php"

# Maximum number of request numbers or messages printed per kind of problem.
MAX_LISTED = 20


class _HideDemoErrors(logging.Filter):
    """Drop uvicorn's traceback for the exception that /boom raises on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DemoError))


@dataclass(frozen=True)
class _Run:
    """Results of serving the demo app and sending the planned traffic to it."""

    outcomes: list[Outcome]
    hits: list[dict[str, str]]
    bulk_requests: int
    sending_seconds: float
    shutdown_seconds: float
    # Counters of the middleware, read while it is still alive: DeliveryStats computes
    # `queued` and `pending` from the senders it is attached to.
    hits_made: int
    pending: int


def run_demo(
    *,
    requests: int,
    seed: int,
    concurrency: int,
    rows: int,
    verbose: bool = False,
    out: TextIO | None = None,
) -> int:
    """Run the demo and print its report to `out` (default: stdout).

    Return 0 when every tracked request reached the recording endpoint once, with the status
    the client saw, no excluded request did, and the middleware dropped nothing. Otherwise
    return 1.
    """
    out = out or sys.stdout
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    package_logger = logging.getLogger("asgi_matomo")
    package_logger.addHandler(handler)
    previous_level = package_logger.level
    package_logger.setLevel(logging.INFO if verbose else logging.WARNING)
    hide_errors = _HideDemoErrors()
    logging.getLogger("uvicorn.error").addFilter(hide_errors)
    try:
        plan = plan_requests(requests, seed)
        stats = DeliveryStats()
        run = _serve_and_send(plan, stats, seed, concurrency, verbose, out)
        return _report(plan, stats, run, rows, out)
    finally:
        logging.getLogger("uvicorn.error").removeFilter(hide_errors)
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)


def _serve_and_send(
    plan: Sequence[PlannedRequest],
    stats: DeliveryStats,
    seed: int,
    concurrency: int,
    verbose: bool,
    out: TextIO,
) -> _Run:
    recorder = RecordingMatomo()
    log_level = "info" if verbose else "warning"
    with serve_app(recorder, log_level=log_level) as matomo_base_url:
        matomo_url = matomo_base_url + MATOMO_PATH
        app = create_app(matomo_url, stats)
        with serve_app(app, log_level=log_level) as app_base_url:
            print(f"Example app:      {app_base_url}", file=out)
            print(f"Matomo endpoint:  {matomo_url} (records what it receives)", file=out)
            print(f"Sending {len(plan)} requests (seed {seed}) ...", file=out, flush=True)
            started = time.perf_counter()
            outcomes = asyncio.run(send_requests(app_base_url, plan, concurrency))
            sending_seconds = time.perf_counter() - started
            stopping = time.perf_counter()
        # Leaving serve_app() stopped uvicorn gracefully: its lifespan shutdown made the
        # middleware deliver what was still queued before the server thread ended.
        shutdown_seconds = time.perf_counter() - stopping
        return _Run(
            outcomes=outcomes,
            hits=recorder.hits(),
            bulk_requests=recorder.bulk_request_count(),
            sending_seconds=sending_seconds,
            shutdown_seconds=shutdown_seconds,
            hits_made=stats.queued + stats.dropped_queue_full,
            pending=stats.pending,
        )


def _report(
    plan: Sequence[PlannedRequest], stats: DeliveryStats, run: _Run, rows: int, out: TextIO
) -> int:
    tracked = {request.number for request in plan if request.tracked}
    hits_by_number: dict[int, Mapping[str, str]] = {}
    arrivals: Counter[int] = Counter()
    for hit in run.hits:
        number = request_number(hit.get("ua"))
        if number is not None:
            arrivals[number] += 1
            hits_by_number.setdefault(number, hit)

    print(
        f"Sent {len(plan)} requests in {run.sending_seconds:.2f} s; the app server shut down "
        f"in {run.shutdown_seconds:.2f} s.",
        file=out,
    )
    print(file=out)
    sample = _sample_rows(hits_by_number, plan, rows)
    if sample:
        print(f"Hits Matomo received ({len(sample)} of {len(run.hits)} shown):", file=out)
        print(format_table(sample), file=out)
        print(file=out)

    delivered = len(run.hits)
    per_request = delivered / run.bulk_requests if run.bulk_requests else 0.0
    figures: list[tuple[str, object]] = [
        ("requests sent", len(plan)),
        ("excluded by path or method", len(plan) - len(tracked)),
        ("hits made (one per tracked request)", run.hits_made),
        ("hits delivered (stored by Matomo)", delivered),
        ("HTTP requests to Matomo", run.bulk_requests),
        ("hits per HTTP request", per_request),
        ("hits dropped", stats.dropped),
        ("hits retried", stats.retried),
        ("hits still pending", run.pending),
    ]
    print("Delivery:", file=out)
    print(format_figures(figures), file=out)
    print(file=out)

    problems = _problems(run, tracked, hits_by_number, arrivals, stats)
    if problems:
        print("FAILED:", file=out)
        for problem in problems:
            print(f"  {problem}", file=out)
        return 1
    noun = "request" if run.bulk_requests == 1 else "requests"
    print(
        f"OK: all {len(tracked)} tracked requests were delivered, "
        f"in {run.bulk_requests} HTTP {noun}.",
        file=out,
    )
    return 0


def _sample_rows(
    hits_by_number: Mapping[int, Mapping[str, str]],
    plan: Sequence[PlannedRequest],
    count: int,
) -> list[dict[str, str]]:
    """Pick `count` delivered hits, taking kinds of request in turn so that every kind shows."""
    by_kind: dict[str, list[PlannedRequest]] = {}
    for request in plan:
        if request.number in hits_by_number:
            by_kind.setdefault(request.kind, []).append(request)

    chosen: list[PlannedRequest] = []
    round_number = 0
    while len(chosen) < count and any(len(group) > round_number for group in by_kind.values()):
        for group in by_kind.values():
            if round_number < len(group) and len(chosen) < count:
                chosen.append(group[round_number])
        round_number += 1

    rows = []
    for request in sorted(chosen, key=lambda request: request.number):
        row = {"#": str(request.number), "request": request.kind}
        row.update(hit_row(hits_by_number[request.number]))
        rows.append(row)
    return rows


def _problems(
    run: _Run,
    tracked: set[int],
    hits_by_number: Mapping[int, Mapping[str, str]],
    arrivals: Counter[int],
    stats: DeliveryStats,
) -> list[str]:
    """Describe everything that keeps the run from being a complete, exact delivery."""
    outcomes = run.outcomes
    problems = [
        f"request {outcome.request.number} {outcome.request.method} {outcome.request.target} "
        f"failed: {outcome.error}"
        for outcome in outcomes
        if outcome.error is not None
    ][:MAX_LISTED]

    missing = sorted(tracked - hits_by_number.keys())
    if missing:
        problems.append(
            f"tracked requests that never reached Matomo ({len(missing)}): {missing[:MAX_LISTED]}"
        )
    unexpected = sorted(hits_by_number.keys() - tracked)
    if unexpected:
        problems.append(
            f"excluded requests that were tracked ({len(unexpected)}): {unexpected[:MAX_LISTED]}"
        )
    duplicates = sorted(number for number, count in arrivals.items() if count > 1)
    if duplicates:
        problems.append(
            f"{len(duplicates)} requests reached Matomo more than once: {duplicates[:MAX_LISTED]}"
        )

    for outcome in outcomes:
        hit = hits_by_number.get(outcome.request.number)
        if hit is None or outcome.status is None or len(problems) >= 3 * MAX_LISTED:
            continue
        recorded = custom_variables(hit).get("http_status_code")
        if recorded != str(outcome.status):
            problems.append(
                f"request {outcome.request.number} {outcome.request.method} "
                f"{outcome.request.target}: the client got {outcome.status}, the hit has "
                f"http_status_code {recorded!r}"
            )

    if run.hits_made != len(tracked):
        problems.append(f"the middleware made {run.hits_made} hits for {len(tracked)} requests")
    if stats.dropped:
        problems.append(f"the middleware dropped {stats.dropped} hits ({stats!r})")
    return problems
