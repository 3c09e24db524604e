"""The ASGI middleware: measure each HTTP request and hand its hit to the sender."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Iterable, Mapping

import httpx

from . import options as defaults
from .hits import build_hit
from .options import parse_options
from .proxies import DEFAULT_TRUSTED_PROXIES
from .sender import Sender
from .stats import DeliveryStats
from .types import ASGIApp, Message, Receive, Scope, Send
from .visitor import IdCallable

logger = logging.getLogger(__name__)

# Messages that end the application's lifespan. The sender delivers what it can
# before the server reads any of them.
_LIFESPAN_ENDINGS = frozenset(
    ("lifespan.startup.failed", "lifespan.shutdown.complete", "lifespan.shutdown.failed")
)


class MatomoMiddleware:
    """Track every HTTP request of an ASGI application in Matomo.

    Each tracked request becomes one hit that a background sender delivers with
    Matomo's bulk tracking API, so the request itself never waits for Matomo.
    The sender starts with the ASGI lifespan, or with the first request when
    the server runs no lifespan, and at lifespan shutdown it delivers the
    queued hits before the server is told that shutdown is complete.

    Every argument is checked here. An invalid one raises ValueError or
    TypeError naming it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        matomo_url: str,
        idsite: int | str,
        access_token: str | None = None,
        assume_https: bool = True,
        client: httpx.AsyncClient | None = None,
        http_timeout: float | None = defaults.DEFAULT_HTTP_TIMEOUT,
        exclude_paths: Iterable[str] | None = None,
        exclude_patterns: Iterable[str | re.Pattern[str]] | None = None,
        route_details: Mapping[str, Mapping[str, object]] | None = None,
        allowed_methods: Iterable[str] | str = defaults.ALL_METHODS,
        ignored_methods: Iterable[str] | None = None,
        cvar_slots: int = defaults.DEFAULT_CVAR_SLOTS,
        connect_timeout: float = defaults.DEFAULT_CONNECT_TIMEOUT,
        queue_max_hits: int = defaults.DEFAULT_QUEUE_MAX_HITS,
        queue_max_bytes: int = defaults.DEFAULT_QUEUE_MAX_BYTES,
        batch_max_hits: int = defaults.DEFAULT_BATCH_MAX_HITS,
        batch_max_bytes: int = defaults.DEFAULT_BATCH_MAX_BYTES,
        batch_max_age: float = defaults.DEFAULT_BATCH_MAX_AGE,
        retry_initial_delay: float = defaults.DEFAULT_RETRY_INITIAL_DELAY,
        retry_max_delay: float = defaults.DEFAULT_RETRY_MAX_DELAY,
        retry_after_max: float = defaults.DEFAULT_RETRY_AFTER_MAX,
        breaker_failures: int = defaults.DEFAULT_BREAKER_FAILURES,
        breaker_cooldown: float = defaults.DEFAULT_BREAKER_COOLDOWN,
        shutdown_timeout: float = defaults.DEFAULT_SHUTDOWN_TIMEOUT,
        log_interval: float = defaults.DEFAULT_LOG_INTERVAL,
        stats: DeliveryStats | None = None,
        trusted_proxies: str | Iterable[str] = DEFAULT_TRUSTED_PROXIES,
        anonymize_ip: int = 0,
        visitor_id: IdCallable | None = None,
        user_id: IdCallable | None = None,
        use_tracker_cookie: bool = True,
        privacy_signals: str = "ignore",
        redact_query_params: Iterable[str] | None = None,
    ) -> None:
        self.app = app
        self.options = parse_options(
            matomo_url=matomo_url,
            idsite=idsite,
            access_token=access_token,
            assume_https=assume_https,
            client=client,
            http_timeout=http_timeout,
            exclude_paths=exclude_paths,
            exclude_patterns=exclude_patterns,
            route_details=route_details,
            allowed_methods=allowed_methods,
            ignored_methods=ignored_methods,
            cvar_slots=cvar_slots,
            connect_timeout=connect_timeout,
            queue_max_hits=queue_max_hits,
            queue_max_bytes=queue_max_bytes,
            batch_max_hits=batch_max_hits,
            batch_max_bytes=batch_max_bytes,
            batch_max_age=batch_max_age,
            retry_initial_delay=retry_initial_delay,
            retry_max_delay=retry_max_delay,
            retry_after_max=retry_after_max,
            breaker_failures=breaker_failures,
            breaker_cooldown=breaker_cooldown,
            shutdown_timeout=shutdown_timeout,
            log_interval=log_interval,
            stats=stats,
            trusted_proxies=trusted_proxies,
            anonymize_ip=anonymize_ip,
            visitor_id=visitor_id,
            user_id=user_id,
            use_tracker_cookie=use_tracker_cookie,
            privacy_signals=privacy_signals,
            redact_query_params=redact_query_params,
        )
        self.sender = Sender(self.options)

    @property
    def stats(self) -> DeliveryStats:
        """The delivery counters of this middleware's sender."""
        return self.options.stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The HTTP path is inline rather than in a method of its own, because
        # each awaited coroutine costs every request a frame.
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._handle_lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return

        try:
            route = self.options.tracked_route(scope)
        except Exception as exc:
            # A scope without the keys the ASGI spec requires is the server's
            # problem, and the application decides how to respond to it.
            self.options.failure_log.log(
                logging.ERROR, "scope", "Could not track a request with an invalid scope: %r", exc
            )
            route = None
        if route is None:
            await self.app(scope, receive, send)
            return
        # Routers change the scope while the application runs (Starlette's
        # Mount extends root_path), so the hit is built from these values.
        path = scope.get("path")
        root_path = scope.get("root_path", "")

        started_at = time.time()
        start = time.perf_counter()
        status: int | None = None

        # A plain function that returns the server's awaitable, because an
        # async wrapper would cost every message a coroutine of its own.
        def send_with_status(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message.get("status", 500)
            return send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception:
            # Servers respond with 500 when the application raised before
            # starting the response.
            status = 500 if status is None else status
            self._track(scope, status, start, started_at, route, path, root_path)
            raise
        except BaseException:
            # Cancelled, usually because the client went away or the server is
            # stopping. Only a response that was started is worth a hit.
            if status is not None:
                self._track(scope, status, start, started_at, route, path, root_path)
            raise
        # An application that returns without starting a response gets a 500
        # from the server.
        status = 500 if status is None else status
        self._track(scope, status, start, started_at, route, path, root_path)

    def _track(
        self,
        scope: Scope,
        status: int,
        start: float,
        started_at: float,
        route: str,
        path: str | None,
        root_path: str,
    ) -> None:
        """Build the request's hit and queue it. Never raises.

        ``route``, ``path`` and ``root_path`` are as they were before the
        application ran.
        """
        duration_ms = (time.perf_counter() - start) * 1000.0
        try:
            hit = build_hit(
                scope,
                self.options,
                status=status,
                duration_ms=duration_ms,
                started_at=started_at,
                route=route or None,
                path=path,
                root_path=root_path,
            )
            if hit is not None:
                sender = self.sender
                sender.ensure_started()
                sender.submit(hit)
        except Exception as exc:
            # The query string is left out of the message because it may
            # contain secrets.
            self.options.failure_log.log(
                logging.ERROR,
                "build-hit",
                "Could not track %s %s: %r",
                scope.get("method"),
                path,
                exc,
            )

    async def _handle_lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the application's lifespan and start and stop the sender with it.

        The sender starts when the server sends ``lifespan.startup``, before the
        application's own startup code runs. It is stopped, after delivering
        what is queued, before the application's ``lifespan.shutdown.complete``
        (or a failure message) reaches the server. An application that does not
        support the lifespan protocol raises or returns before receiving any
        message. This middleware then replies to the server's lifespan messages
        itself.
        """
        app_received = False
        sender_running = False

        async def start_sender() -> None:
            nonlocal sender_running
            try:
                await self.sender.start()
            except Exception:
                logger.exception("Could not start the Matomo sender at lifespan startup")
                return
            sender_running = True

        async def stop_sender() -> None:
            nonlocal sender_running
            if not sender_running:
                return
            sender_running = False
            try:
                await self.sender.aclose()
            except Exception:
                logger.exception("Could not stop the Matomo sender at lifespan shutdown")

        async def receive_lifespan() -> Message:
            nonlocal app_received
            message = await receive()
            app_received = True
            if message["type"] == "lifespan.startup":
                await start_sender()
            return message

        async def send_lifespan(message: Message) -> None:
            if message["type"] in _LIFESPAN_ENDINGS:
                await stop_sender()
            await send(message)

        try:
            await self.app(scope, receive_lifespan, send_lifespan)
        except Exception:
            if app_received:
                await stop_sender()
                raise
            # The ASGI spec lets an application raise on a lifespan scope to
            # say it does not support lifespan.
            logger.debug("The application does not support the ASGI lifespan", exc_info=True)
        else:
            if app_received:
                await stop_sender()
                return

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await start_sender()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await stop_sender()
                await send({"type": "lifespan.shutdown.complete"})
                return
