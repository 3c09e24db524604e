"""Validate the middleware's arguments once and precompute what every request needs.

``parse_options`` checks every argument at construction. Its ValueError or
TypeError names the argument, shows the value and lists what is accepted. The
request path then only looks things up in ``Options``.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

import httpx

from . import cvars
from .logs import ThrottledLog
from .params import (
    MAX_ADDED_CHARACTERS,
    PERFORMANCE_PARAMETERS,
    added_characters,
    max_hit_bytes,
    to_milliseconds,
    to_parameter,
)
from .privacy import (
    PrivacySignalMode,
    QueryRedactor,
    parse_anonymize_ip,
    parse_privacy_signals,
    parse_redact_query_params,
)
from .proxies import DEFAULT_TRUSTED_PROXIES as DEFAULT_TRUSTED_PROXIES
from .proxies import TrustedProxies, parse_trusted_proxies
from .proxies import _valid_host as valid_host
from .stats import DeliveryStats
from .types import Hit, Scope
from .urls import route_path
from .visitor import IdCallable, TrackerCookie, parse_id_callable

# The methods of RFC 9110 plus PATCH (RFC 5789).
KNOWN_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
ALL_METHODS = "all-methods"

# Timeout in seconds for reading, writing and waiting for a pooled connection
# of the client the middleware creates itself.
DEFAULT_HTTP_TIMEOUT = 5.0
# Matomo's number of custom variable slots unless its admin added more.
DEFAULT_CVAR_SLOTS = 5

# The largest value of an integer option. Larger ones would overflow the float
# arithmetic of the sender's queue and batch sizing.
MAX_INTEGER = 2**63 - 1

# Parameters that route_details and per-request overrides must not set:
# every hit belongs to the configured site and is recorded, and the token is
# sent only once per bulk request, from access_token.
PROTECTED_PARAMETERS = frozenset(("idsite", "rec", "token_auth"))

# Delivery defaults, in seconds, hits or bytes.
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_QUEUE_MAX_HITS = 10_000
DEFAULT_QUEUE_MAX_BYTES = 16_000_000
# 500 rather than 1,000 hits per batch. One httpx POST costs the app about
# 350 us of CPU (httpx 0.29, Python 3.11, 2-core AMD EPYC VM): 0.7 us per hit
# at 500 and 0.35 us at 1,000. Under wrk load, 1,000 saved only about 0.6 of
# 43 us per request. Matomo spends about 3 ms per hit of a bulk request in one
# transaction, so 1,000 hits would take about 3 s. That is near the 5 s
# http_timeout, after which a batch that Matomo stored is sent and stored
# again. Hits of about 460 bytes fill DEFAULT_BATCH_MAX_BYTES only at about
# 2,000 per batch.
DEFAULT_BATCH_MAX_HITS = 500
DEFAULT_BATCH_MAX_BYTES = 1_000_000
DEFAULT_BATCH_MAX_AGE = 1.0
DEFAULT_RETRY_INITIAL_DELAY = 0.5
DEFAULT_RETRY_MAX_DELAY = 30.0
DEFAULT_RETRY_AFTER_MAX = 120.0
DEFAULT_BREAKER_FAILURES = 5
DEFAULT_BREAKER_COOLDOWN = 30.0
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
DEFAULT_LOG_INTERVAL = 60.0

# The loggers of the request path: the middleware's failures and the
# warnings about what a hit could not carry.
middleware_logger = logging.getLogger("asgi_matomo.middleware")
hits_logger = logging.getLogger("asgi_matomo.hits")


@dataclass(frozen=True, slots=True)
class RouteDetails:
    """Parameters configured for one path: values to set and names to remove."""

    parameters: Hit
    removed: tuple[str, ...]
    # What is left of MAX_ADDED_CHARACTERS for the per-request overrides.
    budget_left: int = MAX_ADDED_CHARACTERS


@dataclass(frozen=True, slots=True, repr=False)
class Options:
    """The validated configuration of one middleware."""

    matomo_url: str
    idsite: int
    access_token: str | None
    assume_https: bool
    client: httpx.AsyncClient | None
    http_timeout: float
    exclude_paths: frozenset[str]
    exclude_patterns: tuple[re.Pattern[str], ...]
    route_details: Mapping[str, RouteDetails]
    # None tracks every method except the ignored ones.
    allowed_methods: frozenset[str] | None
    ignored_methods: frozenset[str]
    cvar_slots: int

    connect_timeout: float
    queue_max_hits: int
    queue_max_bytes: int
    batch_max_hits: int
    batch_max_bytes: int
    batch_max_age: float
    retry_initial_delay: float
    retry_max_delay: float
    retry_after_max: float
    breaker_failures: int
    breaker_cooldown: float
    shutdown_timeout: float
    log_interval: float

    stats: DeliveryStats

    trusted_proxies: TrustedProxies
    anonymize_ip: int
    visitor_id: IdCallable | None
    user_id: IdCallable | None
    # None when use_tracker_cookie is False.
    tracker_cookie: TrackerCookie | None
    privacy_signals: PrivacySignalMode
    redact_query_params: QueryRedactor

    # The parameters every hit starts with: idsite, rec, apiv and send_image.
    base_hit: Hit
    # Rate-limited logs with the token redacted: failures of the middleware
    # (a hit that could not be built or queued) and warnings about values left
    # out of a hit (an invalid visitor or user id).
    failure_log: ThrottledLog
    hit_log: ThrottledLog
    # Names of one-time log messages already written by this middleware.
    logged_notices: set[str] = field(default_factory=set, compare=False)
    # True when exclude_paths or exclude_patterns is set, so tracks() needs the path.
    filters_paths: bool = field(init=False, compare=False)
    # True when route_details is set too, so a tracked request needs its routing path.
    uses_route: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        filters_paths = bool(self.exclude_paths or self.exclude_patterns)
        object.__setattr__(self, "filters_paths", filters_paths)
        object.__setattr__(self, "uses_route", filters_paths or bool(self.route_details))

    def tracked_route(self, scope: Scope) -> str | None:
        """Return the routing path of a request that gets a hit, or None when it gets none.

        Call it before the application runs, because routers change the scope:
        Starlette's ``Mount`` extends ``root_path``. The path is computed only
        when exclude_paths, exclude_patterns or route_details is set, and is ""
        otherwise.

        Raises KeyError when the scope lacks ``method``, or lacks ``path``
        while one of those options is set.
        """
        method: str = scope["method"]
        # allowed_methods has the ignored methods removed already.
        allowed = self.allowed_methods
        if allowed is None:
            if method in self.ignored_methods:
                return None
        elif method not in allowed:
            return None
        if not self.uses_route:
            return ""

        path = route_path(scope["path"], scope.get("root_path", ""))
        if not self.filters_paths:
            return path
        if path in self.exclude_paths:
            return None
        # A loop instead of any() with a generator, which costs a frame per call.
        for pattern in self.exclude_patterns:
            if pattern.search(path) is not None:
                return None
        return path

    def tracks(self, scope: Scope) -> bool:
        """Tell whether the request of an HTTP scope gets a hit.

        Raises KeyError as :meth:`tracked_route` does.
        """
        return self.tracked_route(scope) is not None

    def __repr__(self) -> str:
        parts = []
        for option in fields(self):
            if option.name in (
                "base_hit",
                "failure_log",
                "hit_log",
                "logged_notices",
                "filters_paths",
                "uses_route",
            ):
                continue
            value = getattr(self, option.name)
            if option.name == "access_token" and value is not None:
                value = "***"
            parts.append(f"{option.name}={value!r}")
        return f"Options({', '.join(parts)})"


def parse_options(
    *,
    matomo_url: str,
    idsite: int | str,
    access_token: str | None = None,
    assume_https: bool = True,
    client: httpx.AsyncClient | None = None,
    http_timeout: float | None = DEFAULT_HTTP_TIMEOUT,
    exclude_paths: Iterable[str] | None = None,
    exclude_patterns: Iterable[str | re.Pattern[str]] | None = None,
    route_details: Mapping[str, Mapping[str, object]] | None = None,
    allowed_methods: Iterable[str] | str = ALL_METHODS,
    ignored_methods: Iterable[str] | None = None,
    cvar_slots: int = DEFAULT_CVAR_SLOTS,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    queue_max_hits: int = DEFAULT_QUEUE_MAX_HITS,
    queue_max_bytes: int = DEFAULT_QUEUE_MAX_BYTES,
    batch_max_hits: int = DEFAULT_BATCH_MAX_HITS,
    batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES,
    batch_max_age: float = DEFAULT_BATCH_MAX_AGE,
    retry_initial_delay: float = DEFAULT_RETRY_INITIAL_DELAY,
    retry_max_delay: float = DEFAULT_RETRY_MAX_DELAY,
    retry_after_max: float = DEFAULT_RETRY_AFTER_MAX,
    breaker_failures: int = DEFAULT_BREAKER_FAILURES,
    breaker_cooldown: float = DEFAULT_BREAKER_COOLDOWN,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    log_interval: float = DEFAULT_LOG_INTERVAL,
    stats: DeliveryStats | None = None,
    trusted_proxies: str | Iterable[str] = DEFAULT_TRUSTED_PROXIES,
    anonymize_ip: int = 0,
    visitor_id: IdCallable | None = None,
    user_id: IdCallable | None = None,
    use_tracker_cookie: bool = True,
    privacy_signals: str = "ignore",
    redact_query_params: Iterable[str] | None = None,
) -> Options:
    """Validate the middleware's keyword arguments and return its ``Options``.

    Raises ValueError or TypeError naming the first invalid argument.
    """
    url = _parse_matomo_url(matomo_url)
    site = _parse_idsite(idsite)
    token = _parse_access_token(access_token)
    https = _parse_bool("assume_https", assume_https)
    own_client = _parse_client(client)
    timeout = (
        DEFAULT_HTTP_TIMEOUT
        if http_timeout is None
        else _parse_seconds("http_timeout", http_timeout)
    )
    paths = _parse_exclude_paths(exclude_paths)
    patterns = _parse_exclude_patterns(exclude_patterns)
    slots = _parse_int("cvar_slots", cvar_slots, minimum=1)
    queue_bytes = _parse_queue_max_bytes(queue_max_bytes, slots)
    details = _parse_route_details(route_details, slots)
    allowed, ignored = _parse_methods(allowed_methods, ignored_methods)

    initial_delay = _parse_seconds("retry_initial_delay", retry_initial_delay)
    max_delay = _parse_seconds("retry_max_delay", retry_max_delay)
    if max_delay < initial_delay:
        raise ValueError(
            f"retry_max_delay must be at least retry_initial_delay ({initial_delay!r} s), "
            f"got {retry_max_delay!r}"
        )
    interval = _parse_seconds("log_interval", log_interval, allow_zero=True)

    cookie = _parse_bool("use_tracker_cookie", use_tracker_cookie)

    return Options(
        matomo_url=url,
        idsite=site,
        access_token=token,
        assume_https=https,
        client=own_client,
        http_timeout=timeout,
        exclude_paths=paths,
        exclude_patterns=patterns,
        route_details=details,
        allowed_methods=allowed,
        ignored_methods=ignored,
        cvar_slots=slots,
        connect_timeout=_parse_seconds("connect_timeout", connect_timeout),
        queue_max_hits=_parse_int("queue_max_hits", queue_max_hits, minimum=1),
        queue_max_bytes=queue_bytes,
        batch_max_hits=_parse_int("batch_max_hits", batch_max_hits, minimum=1),
        batch_max_bytes=_parse_int("batch_max_bytes", batch_max_bytes, minimum=1),
        batch_max_age=_parse_seconds("batch_max_age", batch_max_age),
        retry_initial_delay=initial_delay,
        retry_max_delay=max_delay,
        retry_after_max=_parse_seconds("retry_after_max", retry_after_max, allow_zero=True),
        breaker_failures=_parse_int("breaker_failures", breaker_failures, minimum=1),
        breaker_cooldown=_parse_seconds("breaker_cooldown", breaker_cooldown),
        shutdown_timeout=_parse_seconds("shutdown_timeout", shutdown_timeout, allow_zero=True),
        log_interval=interval,
        stats=_parse_stats(stats),
        trusted_proxies=parse_trusted_proxies(trusted_proxies),
        anonymize_ip=parse_anonymize_ip(anonymize_ip),
        visitor_id=_parse_id_function(visitor_id, "visitor_id"),
        user_id=_parse_id_function(user_id, "user_id"),
        tracker_cookie=TrackerCookie(site) if cookie else None,
        privacy_signals=parse_privacy_signals(privacy_signals),
        redact_query_params=parse_redact_query_params(redact_query_params),
        base_hit={"idsite": site, "rec": 1, "apiv": 1, "send_image": 0},
        failure_log=ThrottledLog(middleware_logger, interval, secrets=(token,)),
        hit_log=ThrottledLog(hits_logger, interval, secrets=(token,)),
    )


def _parse_matomo_url(value: object) -> str:
    example = "such as 'https://matomo.example/matomo.php'"
    if not isinstance(value, str):
        raise TypeError(
            f"matomo_url must be a string with an http or https URL {example}, got {value!r}"
        )
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(
            f"matomo_url must be an http or https URL with a host {example}, got {value!r} ({exc})"
        ) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"matomo_url must be an http or https URL with a host {example}, got {value!r}"
        )
    if url.port is not None and not 0 < url.port <= 65535:
        raise ValueError(
            f"matomo_url must have a port from 1 to 65535, got {url.port} in {value!r}"
        )
    # The same check as for a forwarded host: a DNS name, an IPv4 address or a
    # bracketed IPv6 address. httpx accepts a space in a host, for example.
    if valid_host(url.netloc.decode("ascii")) is None:
        raise ValueError(
            f"matomo_url must have a valid host name or IP address {example}, got {value!r}"
        )
    if "token_auth" in url.params:
        # The value is not shown because it contains the token.
        raise ValueError(
            "matomo_url must not contain token_auth: pass the token as access_token, "
            "which is sent only in the body of the POST request"
        )
    return value


def _parse_idsite(value: object) -> int:
    accepted = "a positive integer (an int or a string of digits)"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"idsite must be {accepted}, got {value!r}")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise ValueError(f"idsite must be {accepted}, got {value!r}")
        value = int(value)
    if value < 1:
        raise ValueError(f"idsite must be {accepted}, got {value!r}")
    return value


def _parse_access_token(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(
            f"access_token must be a string (Matomo's token_auth) or None, "
            f"got {type(value).__name__}"
        )
    if not value.strip():
        raise ValueError(
            f"access_token must be Matomo's token_auth or None to send no token, got {value!r}"
        )
    return value


def _parse_queue_max_bytes(value: object, slots: int) -> int:
    queue_bytes = _parse_int("queue_max_bytes", value, minimum=1)
    # With a smaller cap, the queue could not take one hit of the largest size.
    minimum = max_hit_bytes(slots)
    if queue_bytes < minimum:
        raise ValueError(
            f"queue_max_bytes must be at least {minimum:,} bytes, the largest JSON size of "
            f"one hit with cvar_slots={slots}, so that the queue can hold any hit; "
            f"got {value!r}"
        )
    return queue_bytes


def _parse_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _parse_client(value: object) -> httpx.AsyncClient | None:
    if value is not None and not isinstance(value, httpx.AsyncClient):
        raise TypeError(f"client must be an httpx.AsyncClient or None, got {value!r}")
    return value


def _parse_int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    if maximum is None:
        accepted = f"an integer of at least {minimum}"
    else:
        accepted = f"an integer from {minimum} to {maximum}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {accepted}, got {_show(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {accepted}, got {_show(value)}")
    if value > MAX_INTEGER:
        raise ValueError(f"{name} must be {accepted} and below 2**63, got {_show(value)}")
    return value


def _parse_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    accepted = "a number of seconds of at least 0" if allow_zero else "a number of seconds above 0"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be {accepted}, got {_show(value)}")
    try:
        seconds = float(value)
    except OverflowError:
        # An int too large for a float, such as 10**400.
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{name} must be {accepted}, got {_show(value)}")
    return seconds


def _show(value: object) -> str:
    """Return the repr of an argument for an error message, shortened for huge integers.

    The repr of an int above 4,300 digits raises ValueError in Python 3.11.
    """
    if isinstance(value, int) and value.bit_length() > 64:
        kind = "a negative integer" if value < 0 else "an integer"
        return f"{kind} of {value.bit_length()} bits"
    return repr(value)


def _strings(name: str, value: object, item_description: str) -> list[str]:
    """Return the items of an iterable argument, rejecting a lone string."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of {item_description}, got {value!r}")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must be a list of {item_description}, got the item {item!r}")
    return items


def _parse_exclude_paths(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    paths = _strings("exclude_paths", value, "paths such as '/health'")
    for path in paths:
        if not path.startswith("/"):
            raise ValueError(
                f"exclude_paths must contain paths starting with '/', such as '/health', "
                f"got {path!r}"
            )
    return frozenset(paths)


def _parse_exclude_patterns(value: object) -> tuple[re.Pattern[str], ...]:
    if value is None:
        return ()
    expected = "regular expressions (str or re.Pattern)"
    if isinstance(value, str | bytes | re.Pattern) or not isinstance(value, Iterable):
        raise TypeError(f"exclude_patterns must be a list of {expected}, got {value!r}")
    patterns = []
    for item in value:
        if isinstance(item, re.Pattern):
            if not isinstance(item.pattern, str):
                raise TypeError(
                    f"exclude_patterns must contain str patterns, got the bytes pattern {item!r}"
                )
            patterns.append(item)
        elif isinstance(item, str):
            try:
                patterns.append(re.compile(item))
            except re.error as exc:
                raise ValueError(
                    f"exclude_patterns contains an invalid regular expression {item!r} ({exc}); "
                    f"expected a pattern for re.search on the request path, such as '^/static/'"
                ) from None
        else:
            raise TypeError(
                f"exclude_patterns must be a list of {expected}, got the item {item!r}"
            )
    return tuple(patterns)


def _parse_methods(
    allowed: object, ignored: object
) -> tuple[frozenset[str] | None, frozenset[str]]:
    ignored_set = frozenset() if ignored is None else _method_set("ignored_methods", ignored)
    if isinstance(allowed, str):
        if allowed.lower() == ALL_METHODS:
            return None, ignored_set
        raise ValueError(
            f"allowed_methods must be {ALL_METHODS!r} or a list of HTTP methods such as "
            f"['GET', 'POST'] (accepted: {', '.join(KNOWN_METHODS)}), got {allowed!r}"
        )
    allowed_set = _method_set("allowed_methods", allowed)
    tracked = allowed_set - ignored_set
    if not allowed_set:
        raise ValueError(
            f"allowed_methods is empty, so no request would be tracked; to stop tracking "
            f"some methods, keep allowed_methods={ALL_METHODS!r} and list them in "
            f"ignored_methods"
        )
    if not tracked:
        raise ValueError(
            f"allowed_methods {sorted(allowed_set)!r} are all in ignored_methods, so no "
            f"request would be tracked; remove them from ignored_methods"
        )
    return tracked, ignored_set


def _method_set(name: str, value: object) -> frozenset[str]:
    accepted = ", ".join(KNOWN_METHODS)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(
            f"{name} must be a list of HTTP methods such as ['GET', 'POST'] "
            f"(accepted: {accepted}), got {value!r}"
        )
    methods = set()
    for item in value:
        if not isinstance(item, str) or item.upper() not in KNOWN_METHODS:
            raise ValueError(
                f"{name} contains an unknown HTTP method {item!r}; accepted: {accepted} "
                f"(in any case)"
            )
        methods.add(item.upper())
    return frozenset(methods)


_ROUTE_VALUE_TYPES = (str, int, float, list, tuple, Mapping)


def _parse_route_details(value: object, slots: int) -> Mapping[str, RouteDetails]:
    if value is None:
        return {}
    shape = "a dict of {path: {parameter: value}}"
    if not isinstance(value, Mapping):
        raise TypeError(f"route_details must be {shape}, got {value!r}")
    parsed = {}
    for path, parameters in value.items():
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(
                f"route_details keys must be paths starting with '/', such as '/foo', got {path!r}"
            )
        if not isinstance(parameters, Mapping):
            raise TypeError(
                f"route_details[{path!r}] must be a dict of Matomo parameters, got {parameters!r}"
            )
        parsed[path] = _parse_route_parameters(path, parameters, slots)
    return parsed


def _parse_route_parameters(
    path: str, parameters: Mapping[object, object], slots: int
) -> RouteDetails:
    values: Hit = {}
    removed = []
    for name, value in parameters.items():
        where = f"route_details[{path!r}]"
        if not isinstance(name, str) or not name:
            raise TypeError(f"{where} keys must be Matomo parameter names, got {name!r}")
        if name == "cvar":
            raise ValueError(
                f"{where} must not contain 'cvar': custom variables can only be set "
                f"during a request, in scope['state']['asgi_matomo']['cvar']"
            )
        if name in PROTECTED_PARAMETERS:
            raise ValueError(
                f"{where} must not contain {name!r}: idsite and rec are set from the "
                f"middleware's own arguments on every hit, and the token is passed "
                f"as access_token"
            )
        if value is None:
            removed.append(name)
        elif name in PERFORMANCE_PARAMETERS:
            milliseconds = to_milliseconds(value)
            if milliseconds is None:
                raise ValueError(
                    f"{where}[{name!r}] must be a number of milliseconds, got {value!r}"
                )
            values[name] = milliseconds
        elif not isinstance(value, _ROUTE_VALUE_TYPES):
            raise TypeError(
                f"{where}[{name!r}] must be a str, int, float, bool, dict, list or None, "
                f"got {value!r}"
            )
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}[{name!r}] must be a finite number, got {value!r}")
        elif name == "_cvar":
            encoded = _parse_route_cvar(f"{where}['_cvar']", value, slots)
            if encoded is not None:
                values[name] = encoded
        else:
            try:
                values[name] = to_parameter(name, value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}[{name!r}] is not usable: {exc}") from None

    # _cvar is bounded by cvar_slots instead.
    added = sum(added_characters(name, value) for name, value in values.items() if name != "_cvar")
    if added > MAX_ADDED_CHARACTERS:
        raise ValueError(
            f"{where} adds {added:,} characters of parameter names and values to a hit, "
            f"more than the {MAX_ADDED_CHARACTERS:,} that route_details and the per-request "
            f"parameters may add together; shorten its values"
        )
    return RouteDetails(
        parameters=values, removed=tuple(removed), budget_left=MAX_ADDED_CHARACTERS - added
    )


def _parse_route_cvar(where: str, value: object, slots: int) -> str | None:
    try:
        variables = cvars.encode(value, slots)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} is not usable: {exc}") from None
    if variables.invalid:
        raise ValueError(
            f"{where} contains invalid custom variables: {'; '.join(variables.invalid)}"
        )
    if variables.dropped:
        raise ValueError(
            f"{where} has custom variables {', '.join(variables.dropped)} beyond the "
            f"{slots} slots of cvar_slots; raise cvar_slots after adding slots in Matomo"
        )
    return variables.encoded


def _parse_id_function(value: object, argument: str) -> IdCallable | None:
    function = parse_id_callable(value, argument)
    if function is None:
        return None
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        # Some builtins and C extensions have no signature to check.
        return function
    try:
        signature.bind(None)
    except TypeError:
        raise TypeError(
            f"{argument} must be callable with one positional argument, the ASGI scope, "
            f"got {function!r} with the signature {signature}"
        ) from None
    return function


def _parse_stats(value: object) -> DeliveryStats:
    if value is None:
        return DeliveryStats()
    if not isinstance(value, DeliveryStats):
        raise TypeError(
            f"stats must be an asgi_matomo.DeliveryStats or None to create one, got {value!r}"
        )
    return value
