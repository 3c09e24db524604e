"""Background delivery of hits to Matomo's bulk tracking endpoint.

The request path calls `Sender.submit`, which encodes the hit as JSON, appends
it to a bounded queue and returns: it never awaits and never raises. So the
queue caps the exact bytes it holds. One asyncio task in the same event loop
takes batches from the head of the queue and sends each as one bulk POST
``{"requests": [<hit>, ...], "token_auth": ...}``, with every hit a JSON
object of parameters that the task only joins into the body. A batch closes
when it reaches `batch_max_hits` hits or `batch_max_bytes` bytes of body, or
when its hits have waited `batch_max_age` seconds.

Delivery keeps the order of requests: the next batch leaves only when the
previous one is delivered or given up. A failed batch is retried with
backoff (see `retry`), a circuit breaker pauses delivery during outages
(see `breaker`), and a batch that keeps failing while Matomo accepts other
hits is split until the hit that makes it fail is found and dropped. An
unexpected exception while sending a batch is treated the same way, so one
bad hit can never stop delivery.

Duplicates: Matomo rolls back a bulk request that fails (its default
``bulk_requests_use_transaction = 1``), so retrying a failed batch stores no
hit twice. The exception is a batch that Matomo stored while its response was
lost: a connection reset or a timeout after Matomo committed, or a shutdown
that cancels the request at that moment. Such a batch is sent again and
its hits are stored twice.
"""

from __future__ import annotations

import asyncio
import atexit
import calendar
import contextlib
import json
import logging
import os
import random
import time
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import httpx

from .breaker import CircuitBreaker
from .encoding import bulk_body, decode_entry, make_hit_encoder
from .errors import (
    ClientError,
    DeliveryError,
    HTTPStatusError,
    InvalidResponseError,
    RedirectError,
    translate_httpx_errors,
)
from .hitqueue import HitQueue
from .logs import ThrottledLog
from .options import Options
from .retry import is_retryable, parse_retry_after, retry_delay
from .stats import DeliveryStats
from .types import Hit

__all__ = ["EXPIRY_AGE", "POISON_STRIKES", "STRIKE_FAILURES", "FlushReport", "Sender"]

logger = logging.getLogger(__name__)

# Matomo requires token_auth for a hit whose time (cdt) is 24 hours old or
# older (its setting tracking_requests_require_authentication_when_custom_
# timestamp_newer_than, 86400 seconds by default). Without an access_token,
# hits older than this are dropped before sending. The 60 seconds spare
# allow for the time a request takes and for clock skew with Matomo.
EXPIRY_AGE = 86_400 - 60

# Hits whose time is within this many seconds of EXPIRY_AGE make the sender
# check every hit of the batch instead of only the first (oldest) one. Hits are
# queued when their request ends, so the hit of a long request can sit behind
# younger hits. One hour covers every request shorter than that.
_EXPIRY_CHECK_WINDOW = 3600

# A batch that failed this many times in a row with a response from Matomo (a
# 500, or a 2xx that confirms nothing) is split in two to find the hit that
# makes it fail. One failure is enough once Matomo accepted other hits since.
SPLIT_AFTER_FAILURES = 2

# A hit sent on its own earns a strike when it fails STRIKE_FAILURES times in
# a row after Matomo accepted some other request, and it is dropped as poison
# at POISON_STRIKES strikes. A hit that always fails is dropped after 9
# failures on its own and 2 probes. A valid hit that ended up alone needs the
# same 9 failures, a chance of at most 0.3 ** 9 (2e-5) when Matomo fails 30 %
# of requests at random.
STRIKE_FAILURES = 3
POISON_STRIKES = 3

# After a probe failed (so Matomo was failing for every hit), the next probe
# waits until the front hit has failed this many times.
_PROBE_AGAIN_AFTER_FAILURES = 16

# Seconds a connection of our own client stays open while idle. This is below
# the 5 seconds of Apache's default KeepAliveTimeout, so the client closes an
# idle connection before the server does and rarely sends on a closing one.
_KEEPALIVE_EXPIRY = 4.0


def _user_agent() -> str:
    try:
        return f"asgi-matomo/{metadata.version('asgi-matomo')}"
    except metadata.PackageNotFoundError:
        return "asgi-matomo"


# Sent with every bulk request. The client the sender creates has it among
# its default headers; a client passed in the options gets it on each call.
_REQUEST_HEADERS = {"Content-Type": "application/json"}


def _hits(count: int) -> str:
    """Return "1 hit" or "<count> hits", for log lines."""
    return "1 hit" if count == 1 else f"{count} hits"


@dataclass(frozen=True)
class FlushReport:
    """Result of a flush: hits delivered and given up during it, and hits still pending.

    `dropped` counts the hits dropped for any reason while the flush ran,
    `invalid` the hits Matomo rejected as invalid meanwhile, and `pending` the
    hits neither delivered nor given up when the flush returned.
    """

    delivered: int
    pending: int
    dropped: int
    invalid: int = 0


class _Segment:
    """Hits sent together in one bulk request: a batch, or a part of a split batch.

    `hits` are the encoded hits (see `encoding`). The marks are values of
    `Sender._attempt_count`, compared with `Sender._last_success` to tell
    whether Matomo accepted a request since.
    """

    __slots__ = (
        "attempts",
        "blamed",
        "failures",
        "first_failure",
        "hits",
        "last_failure",
        "probed_at",
        "strike_mark",
        "strikes",
    )

    def __init__(
        self,
        hits: list[bytes],
        *,
        attempts: int = 0,
        first_failure: int = -1,
        last_failure: int = -1,
    ) -> None:
        self.hits = hits
        # Bulk requests that carried these hits so far.
        self.attempts = attempts
        # Failures with a response from Matomo since the segment was made, with
        # no successful request in between.
        self.failures = 0
        # Attempt of the first failure of these hits, or -1.
        self.first_failure = first_failure
        # Attempt of the latest failure of these hits, or -1.
        self.last_failure = last_failure
        # Value of `failures` when the hit after this segment was last sent as a probe.
        self.probed_at = 0
        # The hit that the counts of Matomo's latest error response blamed, if any.
        self.blamed: bytes | None = None
        # For a single hit: strikes so far (see STRIKE_FAILURES), and the attempt
        # after which Matomo must accept a request for the next strike to count.
        self.strikes = 0
        self.strike_mark = first_failure

    def part(self, start: int, stop: int | None = None) -> _Segment:
        """Return a new segment of some of these hits, which keeps their failure history."""
        return _Segment(
            self.hits[start:stop],
            attempts=self.attempts,
            first_failure=self.first_failure,
            last_failure=self.last_failure,
        )


_live_senders: weakref.WeakSet[Sender] = weakref.WeakSet()


def _reset_senders_after_fork() -> None:
    for sender in list(_live_senders):
        sender._reset_after_fork()


if hasattr(os, "register_at_fork"):  # pragma: no branch - absent on Windows only
    os.register_at_fork(after_in_child=_reset_senders_after_fork)


def _log_hits_lost_at_exit(sender_ref: weakref.ref[Sender]) -> None:
    """Log the hits that a sender without a lifespan still holds when the process exits."""
    sender = sender_ref()
    if sender is None:
        return
    try:
        pending = sender.pending_count()
        if pending:
            logger.warning(
                "%s still queued for Matomo at exit %s lost, because the server ran "
                "no ASGI lifespan to deliver them at shutdown",
                _hits(pending),
                "is" if pending == 1 else "are",
            )
    except Exception:  # noqa: S110 - nothing may delay or break the exit of the process
        pass


class Sender:
    """Deliver hits to Matomo in bulk from a background task of the running event loop.

    Lifecycle: `start()` starts the task in the running loop at lifespan
    startup, or `ensure_started()` does so at the first request when the server
    runs no lifespan. `aclose()` delivers what is queued within a deadline and
    stops the task. `async with Sender(options)` does both. After `aclose()`
    the sender may be started again, and hits still pending stay queued.

    After a fork (gunicorn workers, multiprocessing), the child never uses the
    sender state it inherited: the queue, the task, the connection pool and the
    counters start empty in the child. Hits queued before the fork belong to
    the parent. A `client` passed in the options is the exception: the
    child uses it as it is, so create it after the fork.
    """

    def __init__(self, options: Options) -> None:
        self._options = options
        self.stats: DeliveryStats = options.stats
        self._url = options.matomo_url
        # Parsed once rather than on every POST.
        self._request_url = httpx.URL(options.matomo_url)
        self._log = ThrottledLog(logger, options.log_interval, secrets=(options.access_token,))
        # matomo_url as it may appear in logs and errors.
        self._display_url = self._log.redact(_display_url(options.matomo_url))
        self._expire_old_hits = options.access_token is None
        self._encode_hit = make_hit_encoder()
        self._body_start = b'{"requests":['
        if options.access_token is None:
            self._body_end = b"]}"
        else:
            token = json.dumps(options.access_token, ensure_ascii=False)
            self._body_end = f'],"token_auth":{token}}}'.encode()
        # Bytes of encoded hits, one comma each included, that fit in a body
        # of batch_max_bytes (see HitQueue.take).
        self._batch_budget = (
            options.batch_max_bytes - len(self._body_start) - len(self._body_end) + 1
        )
        # A batch is full at this many hits or at this many queued bytes. When
        # the queue cannot hold a full batch, half of it wakes the sender, so
        # that it empties the queue before new hits find it full.
        self._wake_hits = min(options.batch_max_hits, max(1, options.queue_max_hits // 2))
        self._wake_bytes = min(self._batch_budget, max(1, options.queue_max_bytes // 2))
        self._started_by_lifespan = False
        self._exit_hook_registered = False
        self._rng = random.Random()
        self._init_state()
        _live_senders.add(self)

    def _init_state(self) -> None:
        options = self._options
        self._pid = os.getpid()
        self._queue = HitQueue(options.queue_max_hits, options.queue_max_bytes)
        self._segments: deque[_Segment] = deque()
        self._resolved = 0  # hits taken from the queue and then delivered or given up
        self._breaker = CircuitBreaker(options.breaker_failures, options.breaker_cooldown)
        self._previous_delay: float | None = None
        self._retry_at = 0.0
        self._attempt_count = 0
        self._last_success = -1  # _attempt_count of the last successful request
        self._probe: _Segment | None = None  # the segment sent as a probe, while in flight
        self._probe_failed = False  # a probe failed since the last successful request
        self._probe_next = False  # the next attempt is a probe, sent without waiting
        self._failing_since: float | None = None
        self._flush_requests = 0
        self._closing = False
        self._shutdown_deadline: float | None = None  # time.monotonic() when aclose() gives up
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()
        self._interrupt = asyncio.Event()
        self._progress = asyncio.Event()

    # -- Request path ------------------------------------------------------------

    def submit(self, hit: Hit) -> None:
        """Encode `hit` and queue it for delivery, or drop and count it when it does not fit.

        Never awaits and never raises. The work is encoding the hit as JSON
        (about 0.3 us for a typical hit with orjson, 1.7 us without), a deque
        append and a few counters. A
        queue that is full for a hit of any size drops it without encoding it,
        so a hit that could not be encoded counts as dropped_queue_full then.
        """
        # HitQueue.offer, inlined because this runs for every request.
        queue = self._queue
        if (
            len(queue) + queue.reserved >= queue.max_hits
            or queue.queued_bytes + queue.reserved_bytes >= queue.max_bytes
        ):
            # While Matomo is down the queue stays full and every request
            # ends here, so the encoding it would waste is skipped.
            self._drop_queue_full(0)
            return
        try:
            entry = self._encode_hit(hit)
        except Exception as exc:
            self._drop_unencodable(hit, exc)
            return
        size = len(entry)
        queued_bytes = queue.queued_bytes + size
        # The number of hits was checked above, and encoding changed nothing.
        if queued_bytes + queue.reserved_bytes <= queue.max_bytes:
            queue.append(entry)
            queue.queued_bytes = queued_bytes
            self.stats.queued += 1
            # Wake the sender when this hit completes a batch; a queue that was
            # already past the threshold has woken it before.
            wake_bytes = self._wake_bytes
            if len(queue) == self._wake_hits or queued_bytes - size < wake_bytes <= queued_bytes:
                self._wake_sender()
        else:
            self._drop_queue_full(size)

    def _wake_sender(self) -> None:
        # RuntimeError: the event belongs to a loop that is closed.
        with contextlib.suppress(RuntimeError):
            self._wake.set()

    def _drop_queue_full(self, size: int) -> None:
        try:
            self.stats.dropped_queue_full += 1
            queue = self._queue
            if size > queue.max_bytes:
                self._log.log(
                    logging.WARNING,
                    "hit_too_large",
                    "Dropped a hit of %d bytes of JSON, which is more than queue_max_bytes "
                    "(%d bytes) allows for all queued hits together. Raise queue_max_bytes, "
                    "or keep large values out of the hit.",
                    size,
                    queue.max_bytes,
                )
                return
            # A sender that waits for more hits sends what is queued now. The
            # check keeps a full queue from paying for the wake on every request.
            if not self._wake.is_set():
                self._wake_sender()
            # While Matomo is down every request ends here: the line's values
            # are computed only when it is written.
            if self._log.throttled("queue_full"):
                return
            self._log.log(
                logging.WARNING,
                "queue_full",
                "Dropped a hit because the Matomo queue is full (%s, %d bytes queued or in "
                "flight; queue_max_hits=%d, queue_max_bytes=%d). Delivery is failing or "
                "slower than traffic: %s",
                _hits(len(queue) + queue.reserved),
                queue.total_bytes,
                queue.max_hits,
                queue.max_bytes,
                self.stats.last_error or "no delivery error so far",
            )
        except Exception:  # noqa: S110 - the request path must never fail because of a log
            pass

    def _drop_unencodable(self, hit: Hit, error: Exception) -> None:
        """Count a hit that JSON cannot encode as queued and rejected, and log its parameters."""
        try:
            # Counted as queued too, so that queued still adds up to the outcomes.
            self._resolved += 1
            self.stats.queued += 1
            self.stats.dropped_rejected += 1
            names = sorted(
                str(name)
                for name, value in hit.items()
                if not isinstance(name, str) or not isinstance(value, (str, int))
            )
            self._log.log(
                logging.ERROR,
                "unencodable",
                "Dropped a hit that cannot be encoded as JSON (%s: %s). Parameter names must "
                "be str and values str or int; check the parameters %s",
                type(error).__name__,
                error,
                ", ".join(names) or "(none found)",
            )
        except Exception:  # noqa: S110 - the request path must never fail because of a log
            pass

    def ensure_started(self) -> None:
        """Start the background task in the running event loop unless it runs already.

        Cheap when the task runs: one attribute lookup and one method call,
        because the request path calls this for every request. A fork resets
        the sender through `os.register_at_fork`, so a child finds no task here
        and starts its own. Does nothing outside a running event loop.
        """
        task = self._task
        if task is not None and not task.done():
            # NOTE: a task of a loop closed without cancelling its tasks looks alive
            # here (asyncio.run() does cancel them). start() and flush() detect the
            # changed loop instead.
            return
        self._start_task()
        if self._task is not None and not self._started_by_lifespan:
            self._warn_no_lifespan()

    def _warn_no_lifespan(self) -> None:
        """Warn once that nothing delivers the queued hits at exit, and count them at exit."""
        if self._exit_hook_registered:
            return
        self._exit_hook_registered = True
        logger.warning(
            "The Matomo sender started with the first request because the server runs no "
            "ASGI lifespan, so hits still queued when the process exits are lost. Enable "
            "the lifespan (uvicorn --lifespan on) to deliver them at shutdown."
        )
        atexit.register(_log_hits_lost_at_exit, weakref.ref(self))

    async def start(self) -> None:
        """Start the background task in the running event loop (lifespan startup)."""
        self._started_by_lifespan = True
        self._restart_if_moved()

    def _restart_if_moved(self) -> None:
        """Start fresh after a fork, and start the task in the running loop if needed."""
        if self._pid != os.getpid():
            self._reset_after_fork()
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._start_task()

    async def __aenter__(self) -> Sender:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- Counts of this sender's hits ---------------------------------------------------

    def queued_count(self) -> int:
        """Return the number of hits accepted into the queue since the sender started.

        Unlike `stats.queued`, this counts the hits of this sender only.
        """
        return self._resolved + self._queue.reserved + len(self._queue)

    def pending_count(self) -> int:
        """Return the number of hits queued or in flight."""
        return len(self._queue) + self._queue.reserved

    # -- Flush and shutdown ------------------------------------------------------------

    async def flush(self, timeout: float) -> FlushReport:
        """Deliver the hits queued now, waiting at most `timeout` seconds.

        The sender sends partial batches at once and does not wait for the
        circuit breaker's cooldown. A wait for a retry (or for `Retry-After`)
        that is running when the flush starts is cut short once; later retries
        wait as usual. Return how many hits were delivered and given up during
        the flush, and how many are still pending when it returns.
        """
        if self._pid != os.getpid():
            self._reset_after_fork()
        stats = self.stats
        delivered, dropped, invalid = stats.delivered, stats.dropped, stats.invalid
        target = self.queued_count()
        if self._resolved < target:
            self._restart_if_moved()
            self._flush_requests += 1
            self._wake_sender()
            self._interrupt.set()
            try:
                await self._wait_until_resolved(target, timeout)
            finally:
                self._flush_requests -= 1
        return FlushReport(
            delivered=stats.delivered - delivered,
            pending=self.pending_count(),
            dropped=stats.dropped - dropped,
            invalid=stats.invalid - invalid,
        )

    async def aclose(self, timeout: float | None = None) -> FlushReport:
        """Deliver what is queued within `timeout` seconds, stop the task and close the client.

        `timeout` defaults to the `shutdown_timeout` option. Hits still pending
        at the deadline stay in the queue and are lost when the process exits.
        Logs one line with the hits delivered, pending (lost) and dropped.
        The client passed in the options is not closed.
        """
        if timeout is None:
            timeout = self._options.shutdown_timeout
        if self._pid != os.getpid():
            self._reset_after_fork()
        self._closing = True
        self._shutdown_deadline = time.monotonic() + timeout
        report = FlushReport(delivered=0, pending=self.pending_count(), dropped=0)
        try:
            report = await self.flush(timeout)
        finally:
            await self._stop_task()
            await self._close_client()
            self._closing = False
            self._shutdown_deadline = None
            self._log_summary()
        return report

    async def _wait_until_resolved(self, target: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._resolved < target:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except asyncio.TimeoutError:
                return

    async def _stop_task(self) -> None:
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        if task.get_loop() is not asyncio.get_running_loop():
            return  # A task of another (closed) loop cannot be awaited here.
        # asyncio.wait() raises only if this coroutine itself is cancelled.
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "The Matomo sender task failed while it was stopped", exc_info=task.exception()
            )

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.aclose()
        except Exception:
            logger.debug("Closing the HTTP client of the Matomo sender failed", exc_info=True)

    def _log_summary(self) -> None:
        stats = self.stats
        pending = self.pending_count()
        if pending:
            level = logging.ERROR
        elif stats.dropped or stats.invalid:
            level = logging.WARNING
        else:
            level = logging.INFO
        text = (
            f"Matomo sender stopped: {_hits(stats.delivered)} delivered, {pending} pending "
            f"and lost, {stats.dropped} dropped ({stats.dropped_queue_full} queue full, "
            f"{stats.dropped_expired} expired, {stats.dropped_rejected} rejected, "
            f"{stats.dropped_unconfirmed} unconfirmed), {stats.invalid} invalid"
        )
        if (pending or stats.dropped) and stats.last_error:
            text += f". Last error: {stats.last_error}"
        logger.log(level, "%s", self._log.redact(text))

    # -- Task and process lifecycle ------------------------------------------------------

    def _start_task(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._loop is not loop:
            # Events and connections belong to the loop they were made in. A
            # task left from another loop is dead, so its hits return to the queue.
            self._requeue_segments()
            self._wake = asyncio.Event()
            self._interrupt = asyncio.Event()
            self._progress = asyncio.Event()
            self._client = None
            self._loop = loop
        task = loop.create_task(self._run(), name="asgi-matomo-sender")
        task.add_done_callback(self._on_task_done)
        self._task = task

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error(
                "The Matomo sender task stopped unexpectedly; it restarts with the next request",
                exc_info=error,
            )

    def _reset_after_fork(self) -> None:
        """Start with empty state in a forked child, without touching the parent's."""
        # The inherited client shares its sockets with the parent: drop it unclosed.
        self._init_state()
        self._log.reset()
        self.stats.reset()
        # The hits pending in the parent never reach the child's queue.
        self.stats.queued = 0

    def _requeue_segments(self) -> None:
        segments = self._segments
        while segments:
            self._queue.put_back(segments.pop().hits)

    # -- The delivery loop ------------------------------------------------------------

    def _urgent(self) -> bool:
        return self._flush_requests > 0 or self._closing

    async def _run(self) -> None:
        due = 0  # queued hits to send now, even if they do not fill a batch
        queue = self._queue
        try:
            while True:
                if not self._segments:
                    queued = len(queue)
                    full = queued >= self._wake_hits or queue.queued_bytes >= self._wake_bytes
                    if not full and not (queued and (due > 0 or self._urgent())):
                        due = await self._wait_for_batch()
                        continue
                    hits = queue.take(self._options.batch_max_hits, self._batch_budget)
                    due -= len(hits)
                    self._segments.append(_Segment(hits))
                await self._deliver_next()
        finally:
            self._requeue_segments()

    async def _wait_for_batch(self) -> int:
        """Wait for a full batch, a flush or `batch_max_age`; return the hits due by age."""
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), self._options.batch_max_age)
        except asyncio.TimeoutError:
            return len(self._queue)
        return 0

    async def _sleep(self, seconds: float) -> bool:
        """Sleep `seconds`; return True early when a flush interrupts the sleep."""
        interrupt = self._interrupt
        if not interrupt.is_set():
            try:
                await asyncio.wait_for(interrupt.wait(), seconds)
            except asyncio.TimeoutError:
                return False
        interrupt.clear()
        return True

    async def _deliver_next(self) -> None:
        """Wait for the retry delay and the breaker, then send one segment.

        A probe goes without waiting, even while the breaker is open: it is
        one hit, sent right after a response from Matomo.
        """
        while not self._probe_next:
            wait = self._retry_at - time.monotonic()
            if not self._urgent():
                wait = max(wait, self._breaker.time_until_probe())
            if wait <= 0 or await self._sleep(wait):
                break
        # A flush that started before this attempt is served by it; only a
        # flush that starts during a later wait cuts that wait short.
        self._interrupt.clear()

        segment = self._segments[0]
        try:
            segment = self._choose_segment()
            await self._attempt(segment)
        except Exception as exc:
            # A bug, possibly set off by one odd hit, must not stop delivery.
            self._on_internal_error(segment, exc)
            # Yield, so that a bug that repeats for every batch cannot hold the event loop.
            await asyncio.sleep(0)

    def _choose_segment(self) -> _Segment:
        """Return the front segment, or a one-hit probe when the front may be a poison hit.

        A single hit that failed STRIKE_FAILURES times in a row is either
        poison or hit by a failing Matomo. Sending the next hit separates the
        two cases: if that one is accepted, Matomo works and the front hit is
        tried again, and its next run of failures is a strike. During an outage
        the probe fails too. Probes then wait for the front hit's 16th, 32nd, ...
        failure. A probe goes right after the front hit's failure and only
        then, so that after an outage the front hit is almost always the first
        one sent again.
        """
        front = self._segments[0]
        failures = front.failures
        probe_next, self._probe_next = self._probe_next, False
        if (
            not probe_next
            or len(front.hits) > 1
            or front.probed_at == failures
            or self._last_success > front.last_failure
        ):
            return front

        # NOTE: when the probe succeeds and the front hit then succeeds too, the
        # probe's hit has arrived before the front hit, one hit out of order.
        if len(self._segments) > 1:
            following = self._segments[1]
            if len(following.hits) > 1:
                self._segments[1] = following.part(0, 1)
                self._segments.insert(2, following.part(1))
            probe = self._segments[1]
        else:
            hits = self._queue.take(1, self._batch_budget)
            if not hits:
                return front
            probe = _Segment(hits)
            self._segments.append(probe)
        front.probed_at = failures
        self._probe = probe
        return probe

    def _probe_due(self, failures: int) -> bool:
        """Return True when a single hit that failed `failures` times in a row needs a probe."""
        if failures < STRIKE_FAILURES:
            return False
        if self._probe_failed and failures < _PROBE_AGAIN_AFTER_FAILURES:
            return False
        # After the first probe, probe again only at the 4th, 8th, 16th, ... failure.
        return failures == STRIKE_FAILURES or not failures & (failures - 1)

    async def _attempt(self, segment: _Segment) -> None:
        if self._expire_old_hits:
            self._drop_expired(segment)
        if not segment.hits:
            self._resolve(segment)
            return

        body = bulk_body(segment.hits, self._body_start, self._body_end)
        stats = self.stats
        stats.http_requests += 1
        if segment.attempts:
            stats.retried += len(segment.hits)
        segment.attempts += 1
        self._attempt_count += 1
        started = time.monotonic()
        try:
            with translate_httpx_errors(self._display_url):
                client = self._get_client()
                headers = None if client is self._client else _REQUEST_HEADERS
                response = await client.post(self._request_url, content=body, headers=headers)
            tracked, invalid = _read_response(response, len(segment.hits), self._display_url)
        except DeliveryError as error:
            self._on_failure(segment, error)
            return
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "Sent %d hits to Matomo in %.1f ms",
                len(segment.hits),
                (time.monotonic() - started) * 1000,
            )
        self._on_success(segment, tracked, invalid)

    def _get_client(self) -> httpx.AsyncClient:
        if self._options.client is not None:
            return self._options.client
        if self._client is None:
            options = self._options
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(options.http_timeout, connect=options.connect_timeout),
                limits=httpx.Limits(
                    max_connections=2,
                    max_keepalive_connections=1,
                    keepalive_expiry=_KEEPALIVE_EXPIRY,
                ),
                follow_redirects=False,
                headers={"User-Agent": _user_agent(), **_REQUEST_HEADERS},
            )
        return self._client

    # -- Outcomes ---------------------------------------------------------------------

    def _resolve(self, segment: _Segment) -> None:
        """Remove a segment whose hits are all delivered or given up.

        Callers count the outcome of the hits after this returns, so that a
        failure here leaves the counters consistent with the segments.
        """
        self._segments.remove(segment)
        self._release(segment.hits)

    def _release(self, hits: list[bytes]) -> None:
        self._queue.release(hits)
        self._resolved += len(hits)
        # Wake every flush waiting for progress; later waiters use a new event.
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()

    def _on_success(self, segment: _Segment, tracked: int, invalid: int) -> None:
        self._resolve(segment)
        stats = self.stats
        sent = len(segment.hits)
        unconfirmed = max(0, sent - tracked - invalid)
        stats.delivered += sent - invalid - unconfirmed
        stats.invalid += invalid
        stats.dropped_unconfirmed += unconfirmed
        stats.batches_sent += 1

        self._last_success = self._attempt_count
        self._probe = None
        self._probe_failed = False
        self._previous_delay = None
        self._retry_at = 0.0
        self._breaker.record_success()
        failing_since, self._failing_since = self._failing_since, None

        if failing_since is not None:
            self._log.log(
                logging.INFO,
                "recovered",
                "Delivery to Matomo at %s works again after %.0f s of failures",
                self._display_url,
                time.monotonic() - failing_since,
            )
        if invalid:
            self._log.log(
                logging.WARNING,
                "invalid",
                "Matomo rejected %d of %s as invalid. Matomo rejects a hit with an "
                "unknown idsite, and a hit with cip or a cdt older than 24 hours unless "
                "access_token is a token with write access to the site.",
                invalid,
                _hits(sent),
            )
        if unconfirmed:
            self._log.log(
                logging.ERROR,
                "unconfirmed",
                "Matomo at %s confirmed only %d tracked and %d invalid of %s. The other %d "
                "are counted as lost and not sent again, since some of the batch is stored.",
                self._display_url,
                tracked,
                invalid,
                _hits(sent),
                unconfirmed,
            )

    def _on_failure(self, segment: _Segment, error: DeliveryError) -> None:
        self._note_error(str(error))
        was_probe = segment is self._probe
        if was_probe:
            self._probe = None
        sent = len(segment.hits)
        if isinstance(error, HTTPStatusError) and error.status_code == 413 and sent > 1:
            # Payload Too Large: the batch is too big for Matomo's server, not wrong.
            self._split(segment, sent // 2)
            return
        if not is_retryable(error):
            self._reject(segment, error)
            return
        if was_probe:
            self._probe_failed = True
        probe_now = False
        if _may_be_caused_by_hits(error):
            probe_now = self._count_failure(segment, error)
            if segment.strikes >= POISON_STRIKES:
                self._drop_poison(segment, error)
                return
        self._probe_next = probe_now
        self._schedule_retry(error, sent=sent, probe_now=probe_now)

    def _count_failure(self, segment: _Segment, error: DeliveryError) -> bool:
        """Record a failure that a hit of `segment` may cause, then split the segment.

        A single hit earns a strike when it failed STRIKE_FAILURES times in a
        row after Matomo accepted some other request. Return True when the
        next attempt is a probe (see `_choose_segment`). The probe goes at
        once, because an outage that ends between this failure and the probe
        lets the probe's hit arrive before the front hit.
        """
        attempt = self._attempt_count
        if self._last_success > segment.last_failure:
            # Matomo accepted a request since the previous failure of these hits.
            segment.failures = 0
            segment.probed_at = 0
            segment.blamed = None
        if segment.first_failure < 0:
            segment.first_failure = attempt
            segment.strike_mark = attempt
        segment.failures += 1
        segment.last_failure = attempt

        sent = len(segment.hits)
        if sent == 1:
            if segment.failures >= STRIKE_FAILURES and self._last_success > segment.strike_mark:
                segment.strikes += 1
                segment.strike_mark = attempt
            return segment is self._segments[0] and self._probe_due(segment.failures)

        failing_index = _failing_index(error, sent)
        if failing_index is not None:
            # A transient error, such as a deadlock, blames a hit at random. So a
            # hit is split out only when two failures in a row blame it.
            blamed = segment.hits[failing_index]
            if blamed is segment.blamed:
                self._isolate(segment, failing_index)
            else:
                segment.blamed = blamed
        elif (
            segment.failures >= SPLIT_AFTER_FAILURES or self._last_success > segment.first_failure
        ):
            self._split(segment, sent // 2)
        return False

    def _schedule_retry(self, error: DeliveryError, *, sent: int, probe_now: bool = False) -> None:
        """Set the time of the next attempt after `error`, count it for the breaker, and log it.

        `probe_now` sends the next attempt, a probe, without waiting.
        """
        options = self._options
        retry_after = error.retry_after if isinstance(error, HTTPStatusError) else None
        delay = retry_delay(
            self._previous_delay,
            retry_after,
            initial=options.retry_initial_delay,
            maximum=options.retry_max_delay,
            retry_after_max=options.retry_after_max,
            rng=self._rng,
        )
        now = time.monotonic()
        if probe_now:
            delay = 0.0
        else:
            self._previous_delay = min(delay, options.retry_max_delay)
        self._retry_at = now + delay
        if self._failing_since is None:
            self._failing_since = now
        opened = self._breaker.record_failure()

        deadline = self._shutdown_deadline if self._closing else None
        if deadline is not None and self._retry_at >= deadline:
            # No retry happens before aclose() gives up, so promise none.
            next_step = f"Shutdown deadline in {max(0.0, deadline - now):.1f} s"
        elif probe_now:
            next_step = "Sending the next hit at once to check that Matomo accepts others"
        else:
            next_step = f"Retrying in {delay:.1f} s"
        pending = _hits(self.pending_count())
        if isinstance(error, ClientError):
            self._log.log(
                logging.ERROR,
                "client",
                "Cannot send hits to Matomo: %s. Check matomo_url and the client option. "
                "%s; %s pending, kept in the queue until the queue is full.",
                error,
                next_step,
                pending,
            )
        else:
            self._log.log(
                logging.WARNING,
                "retry",
                "Sending %s to Matomo failed: %s. %s; %s pending",
                _hits(sent),
                error,
                next_step,
                pending,
            )
        if opened and deadline is None:
            self._log.log(
                logging.WARNING,
                "breaker",
                "Delivery to Matomo at %s failed %d times in a row; pausing delivery for "
                "%.0f s while hits keep queueing (up to %s)",
                self._display_url,
                self._breaker.consecutive_failures,
                max(delay, self._breaker.cooldown),
                _hits(options.queue_max_hits),
            )

    def _reject(self, segment: _Segment, error: DeliveryError) -> None:
        self._resolve(segment)
        sent = len(segment.hits)
        self.stats.dropped_rejected += sent
        # The server responded, so the breaker counts no failure.
        self._previous_delay = None
        self._retry_at = 0.0

        if isinstance(error, RedirectError):
            self._log.log(
                logging.ERROR,
                "redirect",
                "Dropped %s: Matomo at %s redirected the bulk request (%d) to %s. "
                "Set matomo_url to the URL of the redirect target; redirects are not "
                "followed, since a redirected POST may lose its body or carry the token "
                "to another server.",
                _hits(sent),
                self._display_url,
                error.status_code,
                error.location or "no Location header",
            )
        else:
            self._log.log(
                logging.ERROR,
                "rejected",
                "Dropped %s: %s. Requests with this status are not retried; check "
                "matomo_url and access_token.",
                _hits(sent),
                error,
            )

    def _drop_poison(self, segment: _Segment, error: DeliveryError) -> None:
        self._resolve(segment)
        self.stats.dropped_rejected += 1
        self._retry_at = 0.0

        names = ", ".join(sorted(decode_entry(segment.hits[0])))
        self._log.log(
            logging.ERROR,
            "poison",
            "Dropped a hit that made Matomo fail (%s) at least %d times on its own, while "
            "Matomo accepted other hits in between. Its parameters: %s",
            error,
            STRIKE_FAILURES * POISON_STRIKES,
            names or "(none)",
        )

    def _drop_expired(self, segment: _Segment) -> None:
        hits = segment.hits
        cutoff = time.time() - EXPIRY_AGE
        oldest = _hit_time(decode_entry(hits[0]))
        if oldest is not None and oldest >= cutoff + _EXPIRY_CHECK_WINDOW:
            return
        kept: list[bytes] = []
        expired: list[bytes] = []
        for hit in hits:
            (expired if _is_older(hit, cutoff) else kept).append(hit)
        if not expired:
            return
        segment.hits = kept
        self._release(expired)
        self.stats.dropped_expired += len(expired)

        self._log.log(
            logging.WARNING,
            "expired",
            "Dropped %s older than 24 hours: Matomo accepts a hit time (cdt) that "
            "old only with a token. Set access_token to keep such hits.",
            _hits(len(expired)),
        )

    def _on_internal_error(self, segment: _Segment, exc: Exception) -> None:
        """Split or drop a segment whose sending raised an exception that is not a delivery error.

        Such an exception is a bug, possibly set off by one odd hit. So the
        segment is split in halves until the hit that raises is alone, and that
        hit is dropped. Every other hit is sent on.
        """
        self._note_error(f"internal error while sending to {self._display_url}: {exc!r}")
        if segment is self._probe:
            self._probe = None
        if not any(part is segment for part in self._segments):
            # The hits were delivered or given up before the exception, and counted.
            self._log_internal_error(exc, "after the hits were handled")
            return
        sent = len(segment.hits)
        if sent > 1:
            self._split(segment, sent // 2)
            self._log_internal_error(exc, f"splitting a batch of {_hits(sent)} to find its cause")
            return
        self._resolve(segment)
        self.stats.dropped_rejected += 1
        names = ", ".join(sorted(decode_entry(segment.hits[0])))
        self._log_internal_error(exc, f"dropped the hit with parameters {names or '(none)'}")

    def _log_internal_error(self, exc: Exception, action: str) -> None:
        self._log.log(
            logging.ERROR,
            "internal",
            "Sending hits to Matomo at %s failed with an unexpected %s: %s; %s",
            self._display_url,
            type(exc).__name__,
            exc,
            action,
        )
        logger.debug("Traceback of the unexpected error in the Matomo sender", exc_info=exc)

    # -- Splitting ------------------------------------------------------------------

    def _split(self, segment: _Segment, at: int) -> None:
        """Replace `segment` by its hits before `at` and from `at` on, in place."""
        position = self._segments.index(segment)
        self._segments[position] = segment.part(0, at)
        self._segments.insert(position + 1, segment.part(at))

    def _isolate(self, segment: _Segment, index: int) -> None:
        """Split out the hit at `index`, which Matomo reported as the one that failed."""
        position = self._segments.index(segment)
        parts = []
        if index > 0:
            parts.append(segment.part(0, index))
        parts.append(segment.part(index, index + 1))
        if index + 1 < len(segment.hits):
            parts.append(segment.part(index + 1))
        del self._segments[position]
        for offset, part in enumerate(parts):
            self._segments.insert(position + offset, part)

    def _note_error(self, text: str) -> None:
        self.stats.last_error = self._log.redact(text)
        self.stats.last_error_time = time.time()


# -- Helpers without state ---------------------------------------------------------


def _read_response(response: httpx.Response, sent: int, url: str) -> tuple[int, int]:
    """Return (tracked, invalid) from a bulk response, or raise a `DeliveryError`.

    `url` names Matomo in the error messages.
    """
    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("location")
        raise RedirectError(
            f"Matomo at {url} responded {status} {response.reason_phrase} "
            f"with Location {location!r}",
            status_code=status,
            location=location,
        )
    if status == 204:
        return sent, 0  # No content: Matomo tracked the batch without sending counts.
    if not 200 <= status < 300:
        data = _json_object(response.content)
        raise HTTPStatusError(
            f"Matomo at {url} responded {status} {response.reason_phrase}",
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            tracked=_count(data.get("tracked")) if data.get("status") == "error" else None,
            invalid=_count(data.get("invalid", 0)) if data.get("status") == "error" else None,
        )

    data = _json_object(response.content)
    if not data:
        start = response.content[:60].decode("utf-8", "replace")
        raise InvalidResponseError(
            f"Matomo at {url} responded {status} with a body that is not a bulk tracking "
            f"result: {start!r}",
            retryable=True,
        )
    if data.get("status") != "success":
        raise InvalidResponseError(
            f"Matomo at {url} responded {status} with status {data.get('status')!r}",
            retryable=True,
        )
    tracked = _count(data.get("tracked"))
    invalid = _count(data.get("invalid", 0))
    if tracked is None or invalid is None:
        raise InvalidResponseError(
            f"Matomo at {url} responded {status} without valid tracked and invalid counts",
            retryable=True,
        )
    if tracked == 0 and invalid == 0 and sent > 0:
        raise InvalidResponseError(
            f"Matomo at {url} responded {status} but counted none of the {_hits(sent)} as "
            "tracked or invalid, so it did not read the bulk request",
            retryable=True,
        )
    return min(tracked, sent), min(invalid, sent - min(tracked, sent))


def _json_object(content: bytes) -> dict[str, Any]:
    try:
        data = json.loads(content)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _may_be_caused_by_hits(error: DeliveryError) -> bool:
    """Return True for failures that a bad hit can cause: a 500 or a 2xx that confirms nothing.

    Timeouts, refused connections, 502, 503, 504, 408 and 429 mean Matomo is
    unreachable or overloaded, whatever the batch contains.
    """
    if isinstance(error, HTTPStatusError):
        return error.status_code == 500
    return isinstance(error, InvalidResponseError)


def _failing_index(error: DeliveryError, sent: int) -> int | None:
    """Return the position of the hit that made Matomo fail, when its response shows it.

    Matomo's bulk handler processes hits in order and, on an exception, responds
    500 with the numbers tracked and invalid so far: the hit after those failed.
    """
    if not isinstance(error, HTTPStatusError) or error.tracked is None:
        return None
    index = error.tracked + (error.invalid or 0)
    if sent > 1 and 0 <= index < sent:
        return index
    return None


def _hit_time(hit: Mapping[str, Any]) -> float | None:
    """Return the UNIX time of a hit's `cdt`, or None when it has none that parses."""
    value = hit.get("cdt")
    if isinstance(value, int):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            try:
                return float(calendar.timegm(time.strptime(value.strip(), "%Y-%m-%d %H:%M:%S")))
            except ValueError:
                return None
    return None


def _is_older(entry: bytes, cutoff: float) -> bool:
    """Return True when the encoded hit has a time (cdt) before `cutoff`."""
    if b'"cdt":' not in entry:
        return False  # Without cdt, Matomo uses the time it receives the hit.
    moment = _hit_time(decode_entry(entry))
    return moment is not None and moment < cutoff


def _display_url(url: str) -> str:
    """Return `url` without user name and password, for logs."""
    try:
        return str(httpx.URL(url).copy_with(username=None, password=None))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "(the configured matomo_url)"
