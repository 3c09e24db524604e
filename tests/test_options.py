"""Tests of argument validation and of the precomputed configuration."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from asgi_matomo.options import Options, parse_options
from asgi_matomo.params import max_hit_bytes
from asgi_matomo.stats import DeliveryStats

MATOMO_URL = "https://matomo.example/matomo.php"
METHODS = "GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH"
URL_EXPECTED = "such as 'https://matomo.example/matomo.php'"
IDSITE_EXPECTED = "idsite must be a positive integer (an int or a string of digits)"


def make_options(**arguments: Any) -> Options:
    arguments.setdefault("matomo_url", MATOMO_URL)
    arguments.setdefault("idsite", 7)
    return parse_options(**arguments)


# --- bad arguments ----------------------------------------------------------------

ERROR_CASES = [
    # matomo_url
    pytest.param(
        {"matomo_url": ""},
        ValueError,
        f"matomo_url must be an http or https URL with a host {URL_EXPECTED}, got ''",
        id="matomo_url-empty",
    ),
    pytest.param(
        {"matomo_url": "ftp://matomo.example/"},
        ValueError,
        f"matomo_url must be an http or https URL with a host {URL_EXPECTED}, "
        "got 'ftp://matomo.example/'",
        id="matomo_url-scheme",
    ),
    pytest.param(
        {"matomo_url": "matomo.example/matomo.php"},
        ValueError,
        f"matomo_url must be an http or https URL with a host {URL_EXPECTED}, "
        "got 'matomo.example/matomo.php'",
        id="matomo_url-no-scheme",
    ),
    pytest.param(
        {"matomo_url": "http://[::1"},
        ValueError,
        f"matomo_url must be an http or https URL with a host {URL_EXPECTED}, "
        "got 'http://[::1' (Invalid port: ':1')",
        id="matomo_url-unparsable",
    ),
    pytest.param(
        {"matomo_url": "https://matomo.example:99999/matomo.php"},
        ValueError,
        "matomo_url must have a port from 1 to 65535, "
        "got 99999 in 'https://matomo.example:99999/matomo.php'",
        id="matomo_url-port-too-large",
    ),
    pytest.param(
        {"matomo_url": "http://127.0.0.1:0/matomo.php"},
        ValueError,
        "matomo_url must have a port from 1 to 65535, got 0 in 'http://127.0.0.1:0/matomo.php'",
        id="matomo_url-port-zero",
    ),
    pytest.param(
        {"matomo_url": "https://matomo example/matomo.php"},
        ValueError,
        f"matomo_url must have a valid host name or IP address {URL_EXPECTED}, "
        "got 'https://matomo example/matomo.php'",
        id="matomo_url-space-in-host",
    ),
    pytest.param(
        {"matomo_url": None},
        TypeError,
        f"matomo_url must be a string with an http or https URL {URL_EXPECTED}, got None",
        id="matomo_url-none",
    ),
    pytest.param(
        {"matomo_url": "https://matomo.example/matomo.php?token_auth=s3cr3t"},
        ValueError,
        "matomo_url must not contain token_auth: pass the token as access_token, "
        "which is sent only in the body of the POST request",
        id="matomo_url-token",
    ),
    # idsite
    pytest.param({"idsite": "abc"}, ValueError, f"{IDSITE_EXPECTED}, got 'abc'", id="idsite-text"),
    pytest.param({"idsite": "-1"}, ValueError, f"{IDSITE_EXPECTED}, got '-1'", id="idsite-sign"),
    pytest.param(
        {"idsite": "\uff11"}, ValueError, f"{IDSITE_EXPECTED}, got '\uff11'", id="idsite-wide"
    ),
    pytest.param({"idsite": 0}, ValueError, f"{IDSITE_EXPECTED}, got 0", id="idsite-zero"),
    pytest.param({"idsite": True}, TypeError, f"{IDSITE_EXPECTED}, got True", id="idsite-bool"),
    pytest.param({"idsite": 1.0}, TypeError, f"{IDSITE_EXPECTED}, got 1.0", id="idsite-float"),
    pytest.param({"idsite": None}, TypeError, f"{IDSITE_EXPECTED}, got None", id="idsite-none"),
    # access_token
    pytest.param(
        {"access_token": ""},
        ValueError,
        "access_token must be Matomo's token_auth or None to send no token, got ''",
        id="access_token-empty",
    ),
    pytest.param(
        {"access_token": b"s3cr3t"},
        TypeError,
        "access_token must be a string (Matomo's token_auth) or None, got bytes",
        id="access_token-bytes-not-shown",
    ),
    # simple types
    pytest.param(
        {"assume_https": "yes"},
        TypeError,
        "assume_https must be True or False, got 'yes'",
        id="assume_https",
    ),
    pytest.param(
        {"client": "client"},
        TypeError,
        "client must be an httpx.AsyncClient or None, got 'client'",
        id="client",
    ),
    pytest.param(
        {"http_timeout": 0},
        ValueError,
        "http_timeout must be a number of seconds above 0, got 0",
        id="http_timeout-zero",
    ),
    pytest.param(
        {"http_timeout": "5"},
        TypeError,
        "http_timeout must be a number of seconds above 0, got '5'",
        id="http_timeout-text",
    ),
    pytest.param(
        {"http_timeout": float("inf")},
        ValueError,
        "http_timeout must be a number of seconds above 0, got inf",
        id="http_timeout-infinite",
    ),
    # exclusions
    pytest.param(
        {"exclude_paths": "/health"},
        TypeError,
        "exclude_paths must be a list of paths such as '/health', got '/health'",
        id="exclude_paths-string",
    ),
    pytest.param(
        {"exclude_paths": ["health"]},
        ValueError,
        "exclude_paths must contain paths starting with '/', such as '/health', got 'health'",
        id="exclude_paths-relative",
    ),
    pytest.param(
        {"exclude_paths": [b"/health"]},
        TypeError,
        "exclude_paths must be a list of paths such as '/health', got the item b'/health'",
        id="exclude_paths-bytes",
    ),
    pytest.param(
        {"exclude_patterns": ["^/ok", "(unclosed"]},
        ValueError,
        "exclude_patterns contains an invalid regular expression '(unclosed' "
        "(missing ), unterminated subpattern at position 0); "
        "expected a pattern for re.search on the request path, such as '^/static/'",
        id="exclude_patterns-invalid",
    ),
    pytest.param(
        {"exclude_patterns": "^/static/"},
        TypeError,
        "exclude_patterns must be a list of regular expressions (str or re.Pattern), "
        "got '^/static/'",
        id="exclude_patterns-string",
    ),
    pytest.param(
        {"exclude_patterns": [re.compile(b"^/x")]},
        TypeError,
        "exclude_patterns must contain str patterns, got the bytes pattern re.compile(b'^/x')",
        id="exclude_patterns-bytes",
    ),
    pytest.param(
        {"exclude_patterns": [42]},
        TypeError,
        "exclude_patterns must be a list of regular expressions (str or re.Pattern), "
        "got the item 42",
        id="exclude_patterns-int",
    ),
    # route_details
    pytest.param(
        {"route_details": {"/foo": {"cvar": {"a": "b"}}}},
        ValueError,
        "route_details['/foo'] must not contain 'cvar': custom variables can only be set "
        "during a request, in scope['state']['asgi_matomo']['cvar']",
        id="route_details-cvar",
    ),
    pytest.param(
        {"route_details": {"foo": {}}},
        ValueError,
        "route_details keys must be paths starting with '/', such as '/foo', got 'foo'",
        id="route_details-relative-path",
    ),
    pytest.param(
        {"route_details": [("/foo", {})]},
        TypeError,
        "route_details must be a dict of {path: {parameter: value}}, got [('/foo', {})]",
        id="route_details-list",
    ),
    pytest.param(
        {"route_details": {"/foo": "Foo/foo"}},
        TypeError,
        "route_details['/foo'] must be a dict of Matomo parameters, got 'Foo/foo'",
        id="route_details-not-dict",
    ),
    pytest.param(
        {"route_details": {"/foo": {1: "x"}}},
        TypeError,
        "route_details['/foo'] keys must be Matomo parameter names, got 1",
        id="route_details-parameter-name",
    ),
    pytest.param(
        {"route_details": {"/foo": {"pf_srv": "fast"}}},
        ValueError,
        "route_details['/foo']['pf_srv'] must be a number of milliseconds, got 'fast'",
        id="route_details-pf_srv",
    ),
    pytest.param(
        {"route_details": {"/foo": {"e_v": float("nan")}}},
        ValueError,
        "route_details['/foo']['e_v'] must be a finite number, got nan",
        id="route_details-nan",
    ),
    pytest.param(
        {"route_details": {"/foo": {"e_v": float("-inf")}}},
        ValueError,
        "route_details['/foo']['e_v'] must be a finite number, got -inf",
        id="route_details-infinity",
    ),
    *(
        pytest.param(
            {"route_details": {"/foo": {name: value}}},
            ValueError,
            f"route_details['/foo'] must not contain {name!r}: idsite and rec are set from "
            "the middleware's own arguments on every hit, and the token is passed as "
            "access_token",
            id=f"route_details-{name}-{value}",
        )
        for name, value in [("idsite", 2), ("idsite", None), ("rec", None), ("token_auth", "t")]
    ),
    pytest.param(
        {"route_details": {"/foo": {"e_c": {1, 2}}}},
        TypeError,
        "route_details['/foo']['e_c'] must be a str, int, float, bool, dict, list or None, "
        "got {1, 2}",
        id="route_details-value-type",
    ),
    pytest.param(
        {"route_details": {"/foo": {"_cvar": {str(slot): ["n", "v"] for slot in range(1, 7)}}}},
        ValueError,
        "route_details['/foo']['_cvar'] has custom variables n beyond the 5 slots of "
        "cvar_slots; raise cvar_slots after adding slots in Matomo",
        id="route_details-cvar-beyond-slots",
    ),
    pytest.param(
        {"route_details": {"/foo": {"_cvar": {"0": ["n", "v"]}}}},
        ValueError,
        "route_details['/foo']['_cvar'] contains invalid custom variables: slot '0' "
        "(slot ids start at 1)",
        id="route_details-cvar-slot-zero",
    ),
    pytest.param(
        {"route_details": {"/foo": {"_cvar": "plan=pro"}}},
        ValueError,
        "route_details['/foo']['_cvar'] is not usable: a string must be the JSON of a dict of "
        "custom variables, {name: value} or {slot: [name, value]}, or its JSON",
        id="route_details-cvar-not-json",
    ),
    pytest.param(
        {"route_details": {"/foo": {"ec_items": [["sku", {1, 2}]]}}},
        ValueError,
        "route_details['/foo']['ec_items'] is not usable: JSON cannot encode the value: "
        "Object of type set is not JSON serializable",
        id="route_details-json-unsupported-item",
    ),
    pytest.param(
        {"route_details": {"/foo": {"ec_items": ["x" * 5000]}}},
        ValueError,
        "route_details['/foo']['ec_items'] is not usable: its JSON has 5,004 characters, "
        "more than the limit of 4,096",
        id="route_details-json-too-long",
    ),
    pytest.param(
        {"route_details": {"/foo": {f"dimension{number}": "x" * 3000 for number in range(3)}}},
        ValueError,
        "route_details['/foo'] adds 9,030 characters of parameter names and values to a hit, "
        "more than the 8,192 that route_details and the per-request parameters may add "
        "together; shorten its values",
        id="route_details-too-large",
    ),
    # methods
    pytest.param(
        {"allowed_methods": ["GET", "GTE"]},
        ValueError,
        f"allowed_methods contains an unknown HTTP method 'GTE'; accepted: {METHODS} "
        "(in any case)",
        id="allowed_methods-unknown",
    ),
    pytest.param(
        {"allowed_methods": "GET"},
        ValueError,
        "allowed_methods must be 'all-methods' or a list of HTTP methods such as "
        f"['GET', 'POST'] (accepted: {METHODS}), got 'GET'",
        id="allowed_methods-string",
    ),
    pytest.param(
        {"allowed_methods": None},
        TypeError,
        f"allowed_methods must be a list of HTTP methods such as ['GET', 'POST'] "
        f"(accepted: {METHODS}), got None",
        id="allowed_methods-none",
    ),
    pytest.param(
        {"allowed_methods": []},
        ValueError,
        "allowed_methods is empty, so no request would be tracked; to stop tracking some "
        "methods, keep allowed_methods='all-methods' and list them in ignored_methods",
        id="allowed_methods-empty",
    ),
    pytest.param(
        {"allowed_methods": ["get", "HEAD"], "ignored_methods": ["GET", "head"]},
        ValueError,
        "allowed_methods ['GET', 'HEAD'] are all in ignored_methods, so no request would be "
        "tracked; remove them from ignored_methods",
        id="allowed_methods-all-ignored",
    ),
    pytest.param(
        {"ignored_methods": ["head", "FETCH"]},
        ValueError,
        f"ignored_methods contains an unknown HTTP method 'FETCH'; accepted: {METHODS} "
        "(in any case)",
        id="ignored_methods-unknown",
    ),
    pytest.param(
        {"ignored_methods": "HEAD"},
        TypeError,
        f"ignored_methods must be a list of HTTP methods such as ['GET', 'POST'] "
        f"(accepted: {METHODS}), got 'HEAD'",
        id="ignored_methods-string",
    ),
    # numbers
    pytest.param(
        {"cvar_slots": 0},
        ValueError,
        "cvar_slots must be an integer of at least 1, got 0",
        id="cvar_slots-zero",
    ),
    pytest.param(
        {"cvar_slots": "5"},
        TypeError,
        "cvar_slots must be an integer of at least 1, got '5'",
        id="cvar_slots-text",
    ),
    pytest.param(
        {"queue_max_hits": 0},
        ValueError,
        "queue_max_hits must be an integer of at least 1, got 0",
        id="queue_max_hits",
    ),
    pytest.param(
        {"batch_max_bytes": 1.5},
        TypeError,
        "batch_max_bytes must be an integer of at least 1, got 1.5",
        id="batch_max_bytes",
    ),
    pytest.param(
        {"batch_max_age": -1},
        ValueError,
        "batch_max_age must be a number of seconds above 0, got -1",
        id="batch_max_age",
    ),
    pytest.param(
        {"retry_max_delay": 0.1},
        ValueError,
        "retry_max_delay must be at least retry_initial_delay (0.5 s), got 0.1",
        id="retry_max_delay-below-initial",
    ),
    pytest.param(
        {"breaker_failures": False},
        TypeError,
        "breaker_failures must be an integer of at least 1, got False",
        id="breaker_failures-bool",
    ),
    pytest.param(
        {"shutdown_timeout": -0.5},
        ValueError,
        "shutdown_timeout must be a number of seconds of at least 0, got -0.5",
        id="shutdown_timeout",
    ),
    pytest.param(
        {"log_interval": float("nan")},
        ValueError,
        "log_interval must be a number of seconds of at least 0, got nan",
        id="log_interval",
    ),
    # queue size
    pytest.param(
        {"queue_max_bytes": 1000},
        ValueError,
        "queue_max_bytes must be at least 246,924 bytes, the largest JSON size of one hit "
        "with cvar_slots=5, so that the queue can hold any hit; got 1000",
        id="queue_max_bytes-below-one-hit",
    ),
    pytest.param(
        {"queue_max_bytes": 300_000, "cvar_slots": 20},
        ValueError,
        "queue_max_bytes must be at least 392,844 bytes, the largest JSON size of one hit "
        "with cvar_slots=20, so that the queue can hold any hit; got 300000",
        id="queue_max_bytes-below-one-hit-with-more-slots",
    ),
    # numbers too large for a float
    pytest.param(
        {"http_timeout": 10**400},
        ValueError,
        "http_timeout must be a number of seconds above 0, got an integer of 1329 bits",
        id="http_timeout-huge-int",
    ),
    pytest.param(
        {"shutdown_timeout": -(10**400)},
        ValueError,
        "shutdown_timeout must be a number of seconds of at least 0, "
        "got a negative integer of 1329 bits",
        id="shutdown_timeout-huge-negative-int",
    ),
    pytest.param(
        {"batch_max_bytes": 10**400},
        ValueError,
        "batch_max_bytes must be an integer of at least 1 and below 2**63, "
        "got an integer of 1329 bits",
        id="batch_max_bytes-huge",
    ),
    pytest.param(
        {"queue_max_hits": 2**63},
        ValueError,
        "queue_max_hits must be an integer of at least 1 and below 2**63, got 9223372036854775808",
        id="queue_max_hits-2-to-63",
    ),
    # delivery counters and identity
    pytest.param(
        {"stats": {}},
        TypeError,
        "stats must be an asgi_matomo.DeliveryStats or None to create one, got {}",
        id="stats",
    ),
    pytest.param(
        {"use_tracker_cookie": 1},
        TypeError,
        "use_tracker_cookie must be True or False, got 1",
        id="use_tracker_cookie",
    ),
]


@pytest.mark.parametrize(("arguments", "error", "message"), ERROR_CASES)
def test_invalid_argument(arguments: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        make_options(**arguments)

    assert str(caught.value) == message


def test_token_in_matomo_url_not_shown() -> None:
    with pytest.raises(ValueError, match="token_auth") as caught:
        make_options(matomo_url="https://matomo.example/matomo.php?token_auth=s3cr3t")

    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("argument", "value", "error"),
    [
        ("trusted_proxies", "10.0.0.300", ValueError),
        ("anonymize_ip", 4, ValueError),
        ("visitor_id", "abc", TypeError),
        ("user_id", 42, TypeError),
        ("privacy_signals", "drop", ValueError),
        ("redact_query_params", "token", TypeError),
    ],
)
def test_identity_argument_rejected(argument: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        make_options(**{argument: value})

    message = str(caught.value)
    assert message.startswith(argument)
    assert repr(value) in message


@pytest.mark.parametrize("argument", ["visitor_id", "user_id"])
@pytest.mark.parametrize(
    ("function", "signature"),
    [
        pytest.param(lambda: "x", "()", id="no-argument"),
        pytest.param(lambda scope, request: "x", "(scope, request)", id="two-arguments"),
        pytest.param(lambda *, scope: "x", "(*, scope)", id="keyword-only"),
    ],
)
def test_id_function_of_wrong_arity_rejected(
    argument: str, function: object, signature: str
) -> None:
    with pytest.raises(TypeError) as caught:
        make_options(**{argument: function})

    assert str(caught.value) == (
        f"{argument} must be callable with one positional argument, the ASGI scope, "
        f"got {function!r} with the signature {signature}"
    )


def one_argument_and_defaults(scope: object, extra: int = 1, *rest: object) -> str:
    return "x"


class IdFromScope:
    def __call__(self, scope: object) -> str:
        return "x"


@pytest.mark.parametrize(
    "function", [one_argument_and_defaults, IdFromScope(), str], ids=["defaults", "class", "str"]
)
def test_id_function_of_one_argument_accepted(function: Any) -> None:
    assert make_options(user_id=function).user_id is function


# --- accepted arguments -------------------------------------------------------------


def test_defaults() -> None:
    options = make_options()

    assert options.matomo_url == MATOMO_URL
    assert options.idsite == 7
    assert options.access_token is None
    assert options.assume_https is True
    assert options.client is None
    assert options.http_timeout == 5.0
    assert options.exclude_paths == frozenset()
    assert options.exclude_patterns == ()
    assert options.route_details == {}
    assert options.allowed_methods is None
    assert options.ignored_methods == frozenset()
    assert options.cvar_slots == 5
    assert options.privacy_signals == "ignore"
    assert options.tracker_cookie is not None
    assert isinstance(options.stats, DeliveryStats)


def test_base_hit() -> None:
    options = make_options(idsite="12")

    assert options.idsite == 12
    assert options.base_hit == {"idsite": 12, "rec": 1, "apiv": 1, "send_image": 0}


def test_http_timeout_none_means_default() -> None:
    assert make_options(http_timeout=None).http_timeout == 5.0


def test_client_kept() -> None:
    client = httpx.AsyncClient()
    try:
        assert make_options(client=client).client is client
    finally:
        asyncio.run(client.aclose())


def test_stats_object_kept() -> None:
    stats = DeliveryStats()

    assert make_options(stats=stats).stats is stats


def test_tracker_cookie_can_be_disabled() -> None:
    assert make_options(use_tracker_cookie=False).tracker_cookie is None


def test_repr_masks_access_token() -> None:
    text = repr(make_options(access_token="s3cr3t-token"))

    assert "s3cr3t-token" not in text
    assert "access_token='***'" in text
    assert "idsite=7" in text


def test_failure_log_redacts_token() -> None:
    options = make_options(access_token="s3cr3t-token")

    assert options.failure_log.redact("token s3cr3t-token") == "token [redacted]"


# --- tracks() ------------------------------------------------------------------------

TRACKS_CASES = [
    pytest.param({}, "GET", "/", True, id="default-get"),
    pytest.param({}, "PROPFIND", "/", True, id="default-unknown-method"),
    pytest.param({"allowed_methods": ["get", "Post"]}, "POST", "/", True, id="allowed"),
    pytest.param({"allowed_methods": ["GET"]}, "POST", "/", False, id="not-allowed"),
    pytest.param({"allowed_methods": "ALL-METHODS"}, "DELETE", "/", True, id="all-any-case"),
    pytest.param({"ignored_methods": ["head"]}, "HEAD", "/", False, id="ignored"),
    pytest.param(
        {"allowed_methods": ["GET", "HEAD"], "ignored_methods": ["HEAD"]},
        "HEAD",
        "/",
        False,
        id="ignored-wins",
    ),
    pytest.param({"exclude_paths": ["/health"]}, "GET", "/health", False, id="excluded"),
    pytest.param({"exclude_paths": ["/health"]}, "GET", "/health/x", True, id="exact-only"),
    pytest.param({"exclude_patterns": ["^/static/"]}, "GET", "/static/a.css", False, id="pattern"),
    pytest.param(
        {"exclude_patterns": [re.compile(r"\.PNG$", re.IGNORECASE)]},
        "GET",
        "/img/a.png",
        False,
        id="compiled-pattern",
    ),
    pytest.param({"exclude_patterns": ["static"]}, "GET", "/a/static", False, id="search"),
    pytest.param({"exclude_patterns": ["^/static/"]}, "GET", "/app", True, id="no-match"),
]


@pytest.mark.parametrize(("arguments", "method", "path", "expected"), TRACKS_CASES)
def test_tracks(arguments: dict[str, Any], method: str, path: str, expected: bool) -> None:
    assert make_options(**arguments).tracks({"method": method, "path": path}) is expected


def test_tracks_path_below_root_path() -> None:
    options = make_options(exclude_paths=["/health"], exclude_patterns=["^/static/"])

    assert options.tracks({"method": "GET", "path": "/api/health", "root_path": "/api"}) is False
    assert options.tracks({"method": "GET", "path": "/api/static/a", "root_path": "/api"}) is False
    assert options.tracks({"method": "GET", "path": "/api/items", "root_path": "/api"}) is True


def test_tracks_reads_path_only_with_filters() -> None:
    assert make_options().tracks({"method": "GET"}) is True
    with pytest.raises(KeyError, match="path"):
        make_options(exclude_paths=["/health"]).tracks({"method": "GET"})
    with pytest.raises(KeyError, match="method"):
        make_options().tracks({"path": "/"})


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param({}, "", id="no-option-needs-the-path"),
        pytest.param({"exclude_paths": ["/health"]}, "/items", id="exclude_paths"),
        pytest.param(
            {"route_details": {"/items": {"e_c": "Items"}}}, "/items", id="route_details"
        ),
        pytest.param({"exclude_paths": ["/items"]}, None, id="excluded"),
        pytest.param({"ignored_methods": ["GET"], "exclude_paths": ["/x"]}, None, id="method"),
    ],
)
def test_tracked_route(arguments: dict[str, Any], expected: str | None) -> None:
    scope = {"method": "GET", "path": "/api/items", "root_path": "/api"}

    assert make_options(**arguments).tracked_route(scope) == expected


def test_uses_route() -> None:
    assert make_options().uses_route is False
    assert make_options(exclude_patterns=["^/static/"]).uses_route is True
    assert make_options(route_details={"/items": {"e_c": "Items"}}).uses_route is True


def test_filters_paths() -> None:
    assert make_options().filters_paths is False
    assert make_options(exclude_paths=["/health"]).filters_paths is True
    assert make_options(exclude_patterns=["^/static/"]).filters_paths is True


# --- route_details -------------------------------------------------------------------


def test_route_details_converted_once() -> None:
    options = make_options(
        route_details={
            "/foo": {
                "action_name": "Foo/foo",
                "e_v": 2.5,
                "new_visit": True,
                "idgoal": 3,
                "pf_srv": 12.7,
                "ec_items": [["sku", "name"]],
                "_cvar": {"plan": "pro"},
                "urlref": None,
            }
        }
    )
    details = options.route_details["/foo"]

    assert details.parameters == {
        "action_name": "Foo/foo",
        "e_v": "2.5",
        "new_visit": 1,
        "idgoal": 3,
        "pf_srv": 13,
        "ec_items": '[["sku","name"]]',
        "_cvar": '{"1":["plan","pro"]}',
    }
    assert details.removed == ("urlref",)


def test_route_details_values_cut_and_counted() -> None:
    options = make_options(
        route_details={"/foo": {"action_name": "a" * 2000, "e_n": "n" * 5000, "e_v": 3}}
    )
    details = options.route_details["/foo"]

    assert details.parameters == {"action_name": "a" * 1024, "e_n": "n" * 4096, "e_v": 3}
    assert details.budget_left == 8192 - (11 + 1024) - (3 + 4096) - (3 + 20)


def test_queue_max_bytes_of_one_hit_accepted() -> None:
    minimum = max_hit_bytes(5)

    assert make_options(queue_max_bytes=minimum).queue_max_bytes == minimum


def test_route_details_copied_from_argument() -> None:
    routes = {"/foo": {"e_c": "Foo"}}
    options = make_options(route_details=routes)
    routes["/foo"]["e_c"] = "Changed"

    assert options.route_details["/foo"].parameters == {"e_c": "Foo"}
