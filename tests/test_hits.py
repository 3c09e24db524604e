"""Tests of the hit built from an ASGI HTTP scope."""

from __future__ import annotations

import json
import logging
from enum import Enum
from http import HTTPStatus
from types import MappingProxyType
from typing import Any

import pytest

from asgi_matomo.hits import build_hit
from asgi_matomo.options import Options, parse_options
from asgi_matomo.params import max_hit_bytes
from asgi_matomo.types import Hit, Scope

MATOMO_URL = "https://matomo.example/matomo.php"
STARTED_AT = 1_700_000_000.75


def make_scope(**fields: Any) -> Scope:
    """Return the scope of ``GET /`` from 203.0.113.9 to example.com, with ``fields`` replaced."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"example.com")],
        "server": ("127.0.0.1", 8000),
        "client": ("203.0.113.9", 50000),
    }
    scope.update(fields)
    return scope


def make_options(**arguments: Any) -> Options:
    arguments.setdefault("matomo_url", MATOMO_URL)
    arguments.setdefault("idsite", 7)
    return parse_options(**arguments)


def hit_of(
    scope: Scope,
    options: Options | None = None,
    *,
    status: int = 200,
    duration_ms: float = 12.4,
) -> Hit:
    hit = build_hit(
        scope,
        options or make_options(),
        status=status,
        duration_ms=duration_ms,
        started_at=STARTED_AT,
    )
    assert hit is not None
    return hit


def cvar_of(hit: Hit) -> Any:
    encoded = hit["cvar"]
    assert isinstance(encoded, str)
    return json.loads(encoded)


# --- the constant part -------------------------------------------------------


def test_hit_has_required_parameters() -> None:
    hit = hit_of(make_scope())

    assert hit["idsite"] == 7
    assert hit["rec"] == 1
    assert hit["apiv"] == 1
    assert hit["send_image"] == 0
    assert hit["cdt"] == 1_700_000_000
    assert isinstance(hit["rand"], int)


def test_hit_values_are_str_or_int() -> None:
    scope = make_scope(
        headers=[(b"host", b"example.com"), (b"user-agent", b"ua"), (b"referer", b"https://r/")],
        state={"asgi_matomo": {"e_v": 1.5, "new_visit": True, "ec_items": [["sku", "name"]]}},
    )
    hit = hit_of(scope, make_options(access_token="secret"))

    for name, value in hit.items():
        assert type(value) in (str, int), name


def test_hits_do_not_share_state() -> None:
    options = make_options()
    first = hit_of(make_scope(state={"asgi_matomo": {"e_c": "Foo"}}), options)
    second = hit_of(make_scope(), options)

    assert first["e_c"] == "Foo"
    assert "e_c" not in second
    assert "e_c" not in options.base_hit


# --- url -----------------------------------------------------------------------

URL_CASES = [
    pytest.param({}, {}, "https://example.com/", id="assume-https"),
    pytest.param({}, {"assume_https": False}, "http://example.com/", id="scheme-as-seen"),
    pytest.param(
        {"headers": [(b"host", b"example.com:8080")]},
        {},
        "https://example.com:8080/",
        id="host-header-port-kept",
    ),
    pytest.param(
        {"headers": [(b"host", b"example.com:80")]},
        {},
        "https://example.com/",
        id="http-default-port-dropped-with-assume-https",
    ),
    pytest.param(
        {"headers": [(b"host", b"example.com:443")], "scheme": "https"},
        {"assume_https": False},
        "https://example.com/",
        id="https-default-port-dropped",
    ),
    pytest.param(
        {"headers": [(b"host", b"example.com:443")]},
        {"assume_https": False},
        "http://example.com:443/",
        id="port-443-kept-for-http",
    ),
    pytest.param(
        {"headers": [(b"host", b"[2001:db8::1]:8443")]},
        {},
        "https://[2001:db8::1]:8443/",
        id="ipv6-host-header",
    ),
    pytest.param(
        {"headers": [], "server": ("10.0.0.5", 8000)},
        {},
        "https://10.0.0.5:8000/",
        id="server-without-host-header",
    ),
    pytest.param(
        {"headers": [], "server": ("10.0.0.5", 80)},
        {"assume_https": False},
        "http://10.0.0.5/",
        id="server-default-port",
    ),
    pytest.param(
        {"headers": [], "server": ("2001:db8::5", 8000)},
        {},
        "https://[2001:db8::5]:8000/",
        id="ipv6-server",
    ),
    pytest.param(
        {"headers": [], "server": ("/run/app.sock", None)},
        {},
        "https://localhost/",
        id="unix-socket-server",
    ),
    pytest.param({"headers": [], "server": None}, {}, "https://localhost/", id="no-server"),
    pytest.param(
        {"path": "/api/items", "raw_path": b"/api/items", "root_path": "/api"},
        {},
        "https://example.com/api/items",
        id="root-path-inside-path",
    ),
    pytest.param(
        {"path": "/items", "raw_path": b"/items", "root_path": "/api"},
        {},
        "https://example.com/api/items",
        id="root-path-outside-path",
    ),
    pytest.param(
        {"path": "/api/items", "root_path": "/api", "raw_path": None},
        {},
        "https://example.com/api/items",
        id="root-path-without-raw-path",
    ),
    pytest.param(
        {"path": "/a b/c", "raw_path": b"/a%20b/c"},
        {},
        "https://example.com/a%20b/c",
        id="percent-encoded-path-kept",
    ),
    pytest.param(
        {"path": "/a/b", "raw_path": b"/a%2Fb"},
        {},
        "https://example.com/a%2Fb",
        id="encoded-slash-kept",
    ),
    pytest.param(
        {"path": "/café", "raw_path": b"/caf%C3%A9"},
        {},
        "https://example.com/caf%C3%A9",
        id="non-ascii-path-from-raw-path",
    ),
    pytest.param(
        {"path": "/café", "raw_path": "/café".encode()},
        {},
        "https://example.com/caf%C3%A9",
        id="raw-utf8-bytes-in-raw-path",
    ),
    pytest.param(
        {"path": "/café/100%", "raw_path": None},
        {},
        "https://example.com/caf%C3%A9/100%25",
        id="decoded-path-encoded-again",
    ),
    pytest.param(
        {"path": "/x", "raw_path": b"/x?a=1", "query_string": b"a=1"},
        {},
        "https://example.com/x?a=1",
        id="query-in-raw-path-not-repeated",
    ),
    pytest.param(
        {"query_string": b"q=caf%C3%A9&page=2"},
        {},
        "https://example.com/?q=caf%C3%A9&page=2",
        id="percent-encoded-query-kept",
    ),
    pytest.param(
        {"query_string": "q=café&x=ä".encode()},
        {},
        "https://example.com/?q=caf%C3%A9&x=%C3%A4",
        id="raw-utf8-query-escaped",
    ),
    pytest.param(
        {"query_string": b"next=/a?b"},
        {},
        "https://example.com/?next=/a?b",
        id="query-with-slash-and-question-mark",
    ),
    pytest.param({"query_string": b""}, {}, "https://example.com/", id="empty-query"),
    # The Host header gets the check of a forwarded host, else the server's address is used.
    *(
        pytest.param(
            {"headers": [(b"host", host)]}, {}, "https://127.0.0.1:8000/", id=f"bad-host-{name}"
        )
        for name, host in [
            ("path-and-query", b"evil.example/phish?x="),
            ("userinfo", b"user@evil.example"),
            ("space", b"a b"),
            ("fragment", b"good.example#frag"),
            ("latin-1", b"\xe9xample.com"),
            ("port-too-large", b"example.com:99999"),
            ("empty", b""),
        ]
    ),
    pytest.param(
        {"headers": [(b"host", b"Example.COM:8080")]},
        {},
        "https://example.com:8080/",
        id="host-lower-case",
    ),
    pytest.param(
        {"headers": [], "server": ("10.0.0.1", 80)},
        {},
        "https://10.0.0.1/",
        id="server-http-port-dropped-with-assume-https",
    ),
    pytest.param(
        {"headers": [], "server": ("10.0.0.1", 443), "scheme": "https"},
        {"assume_https": False},
        "https://10.0.0.1/",
        id="server-https-port-dropped",
    ),
    pytest.param(
        {"scheme": "ws"}, {"assume_https": False}, "http://example.com/", id="other-scheme-is-http"
    ),
    pytest.param({"scheme": "ftp"}, {}, "https://example.com/", id="other-scheme-assume-https"),
    # Request targets that h11 passes through uvicorn unchanged.
    pytest.param(
        {
            "path": "http://abs.example:8080/x",
            "raw_path": b"http://abs.example:8080/x",
            "query_string": b"y=1",
        },
        {},
        "https://example.com/x?y=1",
        id="absolute-form-target",
    ),
    pytest.param(
        {"path": "http://abs.example", "raw_path": b"http://abs.example"},
        {},
        "https://example.com/",
        id="absolute-form-without-path",
    ),
    pytest.param(
        {"method": "OPTIONS", "path": "*", "raw_path": b"*"},
        {},
        "https://example.com/",
        id="asterisk-form-target",
    ),
    pytest.param(
        {"path": "*", "raw_path": None}, {}, "https://example.com/", id="asterisk-without-raw-path"
    ),
    pytest.param(
        {"path": "/p#frag", "raw_path": b"/p#frag"},
        {},
        "https://example.com/p%23frag",
        id="hash-in-raw-path-escaped",
    ),
]


@pytest.mark.parametrize(("fields", "arguments", "expected"), URL_CASES)
def test_url(fields: dict[str, Any], arguments: dict[str, Any], expected: str) -> None:
    hit = hit_of(make_scope(**fields), make_options(**arguments))

    assert hit["url"] == expected


def test_url_never_contains_bytes_repr() -> None:
    scope = make_scope(query_string=b"a=1", raw_path=b"/p", path="/p")
    url = hit_of(scope)["url"]

    assert isinstance(url, str)
    assert "b'" not in url


def test_long_url_cut_before_partial_escape() -> None:
    # 1,024 characters would end inside "%C3".
    prefix = "https://example.com/"
    path = "/" + "a" * (1024 - len(prefix) - 1) + "%C3%A9"
    scope = make_scope(path="/" + "a" * 1000 + "é", raw_path=path.encode())
    url = hit_of(scope)["url"]

    assert isinstance(url, str)
    assert len(url) <= 1024
    assert url.endswith("a")


# --- action_name -----------------------------------------------------------------

ACTION_NAME_CASES = [
    pytest.param({"path": "/items"}, "/items", id="path"),
    pytest.param({"path": "/café", "raw_path": b"/caf%C3%A9"}, "/café", id="decoded"),
    pytest.param({"path": "/api/items", "root_path": "/api"}, "/api/items", id="root-path-inside"),
    pytest.param({"path": "/items", "root_path": "/api"}, "/api/items", id="root-path-outside"),
    pytest.param({"path": "/" + "x" * 2000, "raw_path": None}, "/" + "x" * 1023, id="cut"),
    pytest.param({"path": "http://abs.example:8080/x/y"}, "/x/y", id="absolute-form-target"),
    pytest.param({"path": "*"}, "/", id="asterisk-form-target"),
]


@pytest.mark.parametrize(("fields", "expected"), ACTION_NAME_CASES)
def test_action_name(fields: dict[str, Any], expected: str) -> None:
    assert hit_of(make_scope(**fields))["action_name"] == expected


# --- headers -------------------------------------------------------------------

HEADER_CASES = [
    pytest.param(b"user-agent", b"Mozilla/5.0 (X11)", "ua", "Mozilla/5.0 (X11)", id="ua"),
    pytest.param(b"user-agent", b"Agent \xe9", "ua", "Agent é", id="ua-latin-1"),
    pytest.param(b"user-agent", "Agent é ✓".encode(), "ua", "Agent é ✓", id="ua-utf-8"),
    pytest.param(b"accept-language", "fr-CH;é".encode(), "lang", "fr-CH;é", id="lang-utf-8"),
    pytest.param(
        b"referer",
        "https://r.example/café".encode(),
        "urlref",
        "https://r.example/café",
        id="urlref-utf-8",
    ),
    pytest.param(
        b"referer",
        b"https://r.example/caf\xe9",
        "urlref",
        "https://r.example/café",
        id="urlref-latin-1",
    ),
    pytest.param(b"user-agent", b"u" * 600, "ua", "u" * 500, id="ua-cut"),
    pytest.param(b"accept-language", b"fr-CH, fr;q=0.9", "lang", "fr-CH, fr;q=0.9", id="lang"),
    pytest.param(
        b"referer", b"https://search.example/?q=a", "urlref", "https://search.example/?q=a"
    ),
    pytest.param(b"referer", b"https://r.example/" + b"r" * 2000, "urlref", None, id="urlref-cut"),
]


@pytest.mark.parametrize(("header", "value", "parameter", "expected"), HEADER_CASES)
def test_header_parameter(
    header: bytes, value: bytes, parameter: str, expected: str | None
) -> None:
    hit = hit_of(make_scope(headers=[(b"host", b"example.com"), (header, value)]))

    if expected is None:
        assert len(str(hit[parameter])) == 1024
    else:
        assert hit[parameter] == expected


def test_missing_headers_leave_parameters_out() -> None:
    hit = hit_of(make_scope(headers=[]))

    assert "ua" not in hit
    assert "lang" not in hit
    assert "urlref" not in hit


# --- pf_srv ----------------------------------------------------------------------

PF_SRV_CASES = [
    pytest.param(12.4, None, 12, id="measured-rounded-down"),
    pytest.param(12.6, None, 13, id="measured-rounded-up"),
    pytest.param(0.2, None, 0, id="measured-under-a-millisecond"),
    pytest.param(99_999_999.0, None, 16_777_215, id="measured-clamped"),
    pytest.param(12.4, 250, 250, id="override-int-wins"),
    pytest.param(12.4, 250.7, 251, id="override-float-rounded"),
    pytest.param(12.4, "250", 250, id="override-numeric-string"),
    pytest.param(12.4, " 250.2 ", 250, id="override-string-with-spaces"),
    pytest.param(12.4, -5, 0, id="override-negative-clamped"),
    pytest.param(12.4, 20_000_000, 16_777_215, id="override-too-large-clamped"),
    pytest.param(12.4, "abc", 12, id="override-text-ignored"),
    pytest.param(12.4, True, 12, id="override-bool-ignored"),
    pytest.param(12.4, float("nan"), 12, id="override-nan-ignored"),
    pytest.param(12.4, float("inf"), 12, id="override-infinity-ignored"),
    pytest.param(12.4, [1], 12, id="override-list-ignored"),
]


@pytest.mark.parametrize(("measured", "override", "expected"), PF_SRV_CASES)
def test_pf_srv(measured: float, override: object, expected: int) -> None:
    state = {} if override is None else {"asgi_matomo": {"pf_srv": override}}
    hit = hit_of(make_scope(state=state), duration_ms=measured)

    assert hit["pf_srv"] == expected
    assert type(hit["pf_srv"]) is int


def test_pf_srv_removed_by_none() -> None:
    hit = hit_of(make_scope(state={"asgi_matomo": {"pf_srv": None}}))

    assert "pf_srv" not in hit


def test_other_performance_timings_become_milliseconds() -> None:
    state = {"asgi_matomo": {"pf_net": 3.6, "pf_tfr": "abc", "pf_onl": 7}}
    hit = hit_of(make_scope(state=state))

    assert hit["pf_net"] == 4
    assert "pf_tfr" not in hit
    assert hit["pf_onl"] == 7


# --- cvar ----------------------------------------------------------------------


def test_default_cvar_has_status_and_method() -> None:
    hit = hit_of(make_scope(method="POST"), status=201)

    assert cvar_of(hit) == {"1": ["http_status_code", "201"], "2": ["http_method", "POST"]}


CVAR_CASES = [
    pytest.param(
        {"anything": "goes"},
        5,
        {
            "1": ["anything", "goes"],
            "2": ["http_status_code", "200"],
            "3": ["http_method", "GET"],
        },
        id="named-then-defaults",
    ),
    pytest.param(
        {"count": 3, "ratio": 0.5},
        5,
        {
            "1": ["count", "3"],
            "2": ["ratio", "0.5"],
            "3": ["http_status_code", "200"],
            "4": ["http_method", "GET"],
        },
        id="numbers-become-strings",
    ),
    pytest.param(
        {"a": "1", "b": "2", "c": "3", "d": "4"},
        5,
        {
            "1": ["a", "1"],
            "2": ["b", "2"],
            "3": ["c", "3"],
            "4": ["d", "4"],
            "5": ["http_status_code", "200"],
        },
        id="method-dropped-first",
    ),
    pytest.param(
        {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6"},
        5,
        {"1": ["a", "1"], "2": ["b", "2"], "3": ["c", "3"], "4": ["d", "4"], "5": ["e", "5"]},
        id="own-variables-first",
    ),
    pytest.param(
        {"a": "1"},
        1,
        {"1": ["a", "1"]},
        id="one-slot",
    ),
    pytest.param(
        {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6"},
        8,
        {
            "1": ["a", "1"],
            "2": ["b", "2"],
            "3": ["c", "3"],
            "4": ["d", "4"],
            "5": ["e", "5"],
            "6": ["f", "6"],
            "7": ["http_status_code", "200"],
            "8": ["http_method", "GET"],
        },
        id="more-slots",
    ),
    pytest.param(
        {"http_method": "custom", "skip": None},
        5,
        {"1": ["http_method", "custom"], "2": ["http_status_code", "200"]},
        id="own-default-name-and-none-value",
    ),
    pytest.param(
        {"n" * 300: "v" * 300},
        5,
        {
            "1": ["n" * 200, "v" * 200],
            "2": ["http_status_code", "200"],
            "3": ["http_method", "GET"],
        },
        id="cut-to-200",
    ),
    pytest.param(
        {"1": ["a", "1"], "2": ["b", "2"]},
        5,
        {"1": ["a", "1"], "2": ["b", "2"]},
        id="indexed-passthrough",
    ),
    pytest.param(
        {1: ("a", "1"), 3: ["c", 3]},
        5,
        {"1": ["a", "1"], "3": ["c", "3"]},
        id="indexed-int-keys",
    ),
    pytest.param(
        {str(slot): [f"n{slot}", "v"] for slot in range(1, 10)},
        5,
        {str(slot): [f"n{slot}", "v"] for slot in range(1, 6)},
        id="indexed-beyond-slots",
    ),
    pytest.param(
        {"1": ["n" * 500, "v" * 500]},
        5,
        {"1": ["n" * 200, "v" * 200]},
        id="indexed-cut-to-200",
    ),
    pytest.param(
        {"3": ["c", "3"], "1": ["a", "1"]},
        5,
        {"1": ["a", "1"], "3": ["c", "3"]},
        id="indexed-sorted-by-slot",
    ),
    pytest.param(
        {"0": ["a", "b"], "1": None, "2": ["x"], "3": [None, "v"], "4": ["ok", "yes"]},
        5,
        {"4": ["ok", "yes"]},
        id="indexed-invalid-entries-left-out",
    ),
    pytest.param(
        {"1": ["a", {"x": [1, 2]}], "2": [7, True], "3": ["b", b"caf\xc3\xa9"]},
        5,
        {"1": ["a", '{"x":[1,2]}'], "2": ["7", "1"], "3": ["b", "café"]},
        id="indexed-values-become-text",
    ),
    pytest.param(
        '{"1":["a","b"],"7":["c","d"]}',
        5,
        {"1": ["a", "b"]},
        id="json-indexed",
    ),
    pytest.param(
        '{"plan":"pro"}',
        5,
        {"1": ["plan", "pro"], "2": ["http_status_code", "200"], "3": ["http_method", "GET"]},
        id="json-named",
    ),
    pytest.param(
        {"obj": {"x": 1}, "flag": True, "off": False, "raw": b"\xff", "big": 1.5e20},
        8,
        {
            "1": ["obj", '{"x":1}'],
            "2": ["flag", "1"],
            "3": ["off", "0"],
            "4": ["raw", "\xff"],
            "5": ["big", "1.5e+20"],
            "6": ["http_status_code", "200"],
            "7": ["http_method", "GET"],
        },
        id="named-values-become-text",
    ),
    pytest.param(
        {"a": object(), "b": float("nan"), "c": "kept"},
        5,
        {"1": ["c", "kept"], "2": ["http_status_code", "200"], "3": ["http_method", "GET"]},
        id="named-unsupported-values-left-out",
    ),
    pytest.param(
        {"ville": "Zürich"},
        5,
        {
            "1": ["ville", "Zürich"],
            "2": ["http_status_code", "200"],
            "3": ["http_method", "GET"],
        },
        id="non-ascii",
    ),
]


@pytest.mark.parametrize(("variables", "slots", "expected"), CVAR_CASES)
def test_cvar(variables: dict[object, object], slots: int, expected: dict[str, object]) -> None:
    scope = make_scope(state={"asgi_matomo": {"cvar": variables}})
    hit = hit_of(scope, make_options(cvar_slots=slots))

    assert cvar_of(hit) == expected


def test_cvar_with_one_slot_keeps_status() -> None:
    hit = hit_of(make_scope(), make_options(cvar_slots=1), status=404)

    assert cvar_of(hit) == {"1": ["http_status_code", "404"]}


def test_cvar_json_string_normalized() -> None:
    encoded = '{"1": ["kept", "as is"]}'
    hit = hit_of(make_scope(state={"asgi_matomo": {"cvar": encoded}}))

    assert hit["cvar"] == '{"1":["kept","as is"]}'


def test_cvar_http_status_enum_as_number() -> None:
    hit = hit_of(make_scope(), status=HTTPStatus.NOT_FOUND)
    named = hit_of(make_scope(state={"asgi_matomo": {"cvar": {"a": "b"}}}), status=HTTPStatus.OK)

    assert cvar_of(hit)["1"] == ["http_status_code", "404"]
    assert cvar_of(named)["2"] == ["http_status_code", "200"]


def test_cvar_invalid_entries_logged(caplog: pytest.LogCaptureFixture) -> None:
    variables = {"0": ["a", "b"], "2": "x", "3": ["c", object()]}
    with caplog.at_level(logging.WARNING, logger="asgi_matomo"):
        hit = hit_of(make_scope(state={"asgi_matomo": {"cvar": variables}}))

    assert cvar_of(hit) == {"1": ["http_status_code", "200"], "2": ["http_method", "GET"]}
    assert [record.getMessage() for record in caplog.records] == [
        'Ignored tracking parameters of scope["state"]["asgi_matomo"], the rest of the hit is '
        "sent: invalid custom variables in cvar: slot '0' (slot ids start at 1); slot '2' "
        "(expected a [name, value] pair); slot '3' (a value of type object is not "
        "supported; use str, int, float, bool, bytes, dict, list or None)"
    ]
    assert caplog.records[0].name == "asgi_matomo.hits"


def test_cvar_none_removes_all_variables() -> None:
    hit = hit_of(make_scope(state={"asgi_matomo": {"cvar": None}}))

    assert "cvar" not in hit


CVAR_SHAPE = "a dict of custom variables, {name: value} or {slot: [name, value]}, or its JSON"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param([["a", "b"]], f"expected {CVAR_SHAPE}, got a value of type list", id="list"),
        pytest.param(("a", "b"), f"expected {CVAR_SHAPE}, got a value of type tuple", id="tuple"),
        pytest.param(5, f"expected {CVAR_SHAPE}, got a value of type int", id="int"),
        pytest.param("hello", f"a string must be the JSON of {CVAR_SHAPE}", id="not-json"),
        pytest.param('["a"]', f"expected {CVAR_SHAPE}, got a value of type list", id="json-list"),
    ],
)
def test_cvar_of_wrong_shape_ignored(
    value: object, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    scope = make_scope(state={"asgi_matomo": {"cvar": value, "_cvar": value, "e_c": "Kept"}})
    with caplog.at_level(logging.WARNING, logger="asgi_matomo"):
        hit = hit_of(scope, make_options(log_interval=0))

    assert cvar_of(hit) == {"1": ["http_status_code", "200"], "2": ["http_method", "GET"]}
    assert "_cvar" not in hit
    assert hit["e_c"] == "Kept"
    prefix = 'Ignored tracking parameters of scope["state"]["asgi_matomo"], the rest of the hit '
    assert [record.getMessage() for record in caplog.records] == [
        f"{prefix}is sent: cvar is not usable: {reason}",
        f"{prefix}is sent: _cvar is not usable: {reason}",
    ]


def test_visit_cvar_converted_without_defaults() -> None:
    hit = hit_of(make_scope(state={"asgi_matomo": {"_cvar": {"plan": "pro"}}}))

    assert json.loads(str(hit["_cvar"])) == {"1": ["plan", "pro"]}
    assert cvar_of(hit) == {"1": ["http_status_code", "200"], "2": ["http_method", "GET"]}


def test_dropped_cvars_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    options = make_options(cvar_slots=2)
    variables = {"a": "1", "b": "2", "c": "3"}
    with caplog.at_level(logging.WARNING, logger="asgi_matomo"):
        for _ in range(3):
            hit_of(make_scope(state={"asgi_matomo": {"cvar": dict(variables)}}), options)

    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage() == (
        "Custom variables c, http_status_code, http_method did not fit into the 2 slots of "
        "cvar_slots and were not sent. The application's own variables take the first slots. "
        "Raise cvar_slots after adding slots in Matomo. This message is logged once."
    )


def test_default_cvar_cut_without_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asgi_matomo"):
        hit_of(make_scope(), make_options(cvar_slots=1))

    assert caplog.records == []


# --- cip -----------------------------------------------------------------------

CIP_CASES = [
    pytest.param({}, None, None, id="no-token"),
    pytest.param({"access_token": "t0ken"}, None, "203.0.113.9", id="token"),
    pytest.param(
        {"access_token": "t0ken"},
        {"client": ("2001:db8::9", 1)},
        "2001:db8::9",
        id="token-ipv6",
    ),
    pytest.param({"access_token": "t0ken"}, {"client": None}, None, id="token-no-client"),
    pytest.param(
        {"access_token": "t0ken"},
        {"client": ("::ffff:203.0.113.9", 1)},
        "203.0.113.9",
        id="token-ipv4-mapped",
    ),
    pytest.param(
        {"access_token": "t0ken"},
        {"client": ("127.0.0.1", 1)},
        "127.0.0.1",
        id="trusted-peer-without-forwarding-headers",
    ),
    pytest.param(
        {"access_token": "t0ken", "anonymize_ip": 2},
        {"client": ("127.0.0.1", 1)},
        "127.0.0.0",
        id="anonymized-peer-without-forwarding-headers",
    ),
    pytest.param(
        {"access_token": "t0ken"},
        {
            "client": ("127.0.0.1", 1),
            "headers": [(b"host", b"example.com"), (b"x-forwarded-for", b"198.51.100.4")],
        },
        "198.51.100.4",
        id="trusted-proxy",
    ),
    pytest.param(
        {"access_token": "t0ken"},
        {"headers": [(b"host", b"example.com"), (b"x-forwarded-for", b"198.51.100.4")]},
        "203.0.113.9",
        id="untrusted-peer-header-ignored",
    ),
    pytest.param(
        {},
        {
            "client": ("127.0.0.1", 1),
            "headers": [(b"host", b"example.com"), (b"x-forwarded-for", b"198.51.100.4")],
        },
        None,
        id="no-token-behind-proxy",
    ),
]


@pytest.mark.parametrize(("arguments", "fields", "expected"), CIP_CASES)
def test_cip(
    arguments: dict[str, Any], fields: dict[str, Any] | None, expected: str | None
) -> None:
    hit = hit_of(make_scope(**(fields or {})), make_options(**arguments))

    assert hit.get("cip") == expected


def test_forwarded_scheme_and_host_from_trusted_proxy() -> None:
    scope = make_scope(
        client=("127.0.0.1", 1),
        headers=[
            (b"host", b"internal:8000"),
            (b"x-forwarded-for", b"198.51.100.4"),
            (b"x-forwarded-proto", b"http"),
            (b"x-forwarded-host", b"www.example.org"),
        ],
    )
    hit = hit_of(scope, make_options(assume_https=False))

    assert hit["url"] == "http://www.example.org/"


def test_forwarded_host_from_untrusted_peer_ignored() -> None:
    scope = make_scope(
        headers=[(b"host", b"example.com"), (b"x-forwarded-host", b"evil.example")],
    )

    assert hit_of(scope)["url"] == "https://example.com/"


# --- route_details and per-request overrides --------------------------------------


def test_route_details_merged() -> None:
    options = make_options(
        route_details={"/foo": {"action_name": "Foo/foo", "e_c": "Foo", "e_a": "Playing"}}
    )
    hit = hit_of(make_scope(path="/foo", raw_path=b"/foo"), options)

    assert hit["action_name"] == "Foo/foo"
    assert hit["e_c"] == "Foo"
    assert hit["e_a"] == "Playing"


def test_route_details_match_path_below_root_path() -> None:
    options = make_options(route_details={"/foo": {"action_name": "Foo/foo"}})
    scope = make_scope(path="/api/foo", raw_path=b"/api/foo", root_path="/api")

    assert hit_of(scope, options)["action_name"] == "Foo/foo"


def test_route_details_only_for_their_path() -> None:
    options = make_options(route_details={"/foo": {"e_c": "Foo"}})

    assert "e_c" not in hit_of(make_scope(path="/bar", raw_path=b"/bar"), options)


def test_route_details_none_removes_parameter() -> None:
    options = make_options(route_details={"/": {"urlref": None, "pf_srv": None}})
    scope = make_scope(headers=[(b"host", b"example.com"), (b"referer", b"https://r/")])
    hit = hit_of(scope, options)

    assert "urlref" not in hit
    assert "pf_srv" not in hit


def test_overrides_win_over_route_details() -> None:
    options = make_options(route_details={"/": {"action_name": "Route", "e_c": "Route"}})
    hit = hit_of(make_scope(state={"asgi_matomo": {"action_name": "Request"}}), options)

    assert hit["action_name"] == "Request"
    assert hit["e_c"] == "Route"


def test_override_none_removes_parameter() -> None:
    scope = make_scope(
        headers=[(b"host", b"example.com"), (b"user-agent", b"ua")],
        state={"asgi_matomo": {"ua": None, "action_name": None, "missing": None}},
    )
    hit = hit_of(scope)

    assert "ua" not in hit
    assert "action_name" not in hit
    assert "missing" not in hit


class StrEnumLike(str, Enum):
    NAME = "name"


OVERRIDE_VALUE_CASES = [
    pytest.param("e_n", "Name", "Name", id="str"),
    pytest.param("e_v", 3, 3, id="int"),
    pytest.param("e_v", 1.5, "1.5", id="float"),
    pytest.param("new_visit", True, 1, id="bool"),
    pytest.param(
        "ec_items", [["sku", "name", "", 9.5, 1]], '[["sku","name","",9.5,1]]', id="list"
    ),
    pytest.param("uadata", {"platform": "Linux"}, '{"platform":"Linux"}', id="dict"),
    pytest.param("action_name", "a" * 1100, "a" * 1024, id="action-name-cut"),
    pytest.param("e_v", HTTPStatus.OK, 200, id="int-enum"),
    pytest.param("e_n", b"caf\xc3\xa9", "café", id="utf-8-bytes"),
    pytest.param("e_n", b"caf\xe9", "café", id="latin-1-bytes"),
    pytest.param("e_n", StrEnumLike.NAME, "name", id="str-enum"),
    pytest.param("e_v", 1e20, "1e+20", id="large-float"),
]


@pytest.mark.parametrize(("name", "value", "expected"), OVERRIDE_VALUE_CASES)
def test_override_value(name: str, value: object, expected: str | int) -> None:
    hit = hit_of(make_scope(state={"asgi_matomo": {name: value}}))

    assert hit[name] == expected


def test_state_without_overrides() -> None:
    hit = hit_of(make_scope(state={"user": "someone"}))

    assert hit["action_name"] == "/"


IGNORED = (
    'Ignored tracking parameters of scope["state"]["asgi_matomo"], the rest of the hit is sent'
)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        pytest.param(
            {"asgi_matomo": ["action_name", "x"]},
            'scope["state"]["asgi_matomo"] is not a dict but a list',
            id="overrides-list",
        ),
        pytest.param(
            {"asgi_matomo": "not a dict"},
            'scope["state"]["asgi_matomo"] is not a dict but a str',
            id="overrides-str",
        ),
        pytest.param(["asgi_matomo"], 'scope["state"] is not a dict but a list', id="state-list"),
        pytest.param("state", 'scope["state"] is not a dict but a str', id="state-str"),
    ],
)
def test_overrides_of_wrong_type_ignored(
    state: object, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="asgi_matomo"):
        hit = hit_of(make_scope(state=state))

    assert hit["action_name"] == "/"
    assert hit["idsite"] == 7
    assert [record.getMessage() for record in caplog.records] == [f"{IGNORED}: {reason}"]
    assert caplog.records[0].name == "asgi_matomo.hits"


def test_overrides_in_mapping_state() -> None:
    state = MappingProxyType({"asgi_matomo": MappingProxyType({"e_c": "Read-only"})})
    hit = hit_of(make_scope(state=state))

    assert hit["e_c"] == "Read-only"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({5: "x"}, "the parameter name 5 is not a str", id="int-name"),
        pytest.param(
            {("a", "b"): "x"}, "the parameter name ('a', 'b') is not a str", id="tuple-name"
        ),
        pytest.param(
            {"e_v": object()},
            "the value of 'e_v' is not usable: a value of type object is not supported; use "
            "str, int, float, bool, bytes, dict, list or None",
            id="object",
        ),
        pytest.param(
            {"e_v": {1, 2}},
            "the value of 'e_v' is not usable: a value of type set is not supported; use "
            "str, int, float, bool, bytes, dict, list or None",
            id="set",
        ),
        pytest.param(
            {"e_v": float("nan")},
            "the value of 'e_v' is not usable: NaN and infinities are not supported",
            id="nan",
        ),
        pytest.param(
            {"e_v": 10**5000},
            "the value of 'e_v' is not usable: integers beyond 64 bits are not supported",
            id="huge-int",
        ),
        pytest.param(
            {"dimension1": {"a": object()}},
            "the value of 'dimension1' is not usable: JSON cannot encode the value: Object of "
            "type object is not JSON serializable",
            id="json-unsupported-item",
        ),
        pytest.param(
            {"ec_items": [["sku", "x" * 5000]]},
            "the value of 'ec_items' is not usable: its JSON has 5,012 characters, more than "
            "the limit of 4,096",
            id="json-too-long",
        ),
        pytest.param(
            {"pf_srv": "fast"},
            "'pf_srv' must be a number of milliseconds, got a value of type str",
            id="timing",
        ),
        *(
            pytest.param(
                {name: value},
                f"{name!r} cannot be set per request, because idsite and rec come from the "
                "middleware's arguments and the token from access_token",
                id=f"protected-{name}-{value}",
            )
            for name, value in [
                ("idsite", 2),
                ("idsite", None),
                ("rec", None),
                ("token_auth", "t"),
            ]
        ),
    ],
)
def test_unusable_override_ignored(
    overrides: dict[object, object], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    scope = make_scope(state={"asgi_matomo": {"e_c": "Kept", **overrides, "e_a": "Also kept"}})
    with caplog.at_level(logging.WARNING, logger="asgi_matomo"):
        hit = hit_of(scope, make_options(access_token="t0ken"))

    assert hit["e_c"] == "Kept"
    assert hit["e_a"] == "Also kept"
    assert hit["idsite"] == 7
    assert hit["rec"] == 1
    assert "token_auth" not in hit
    assert hit["pf_srv"] == 12
    assert [record.getMessage() for record in caplog.records] == [f"{IGNORED}: {reason}"]


def test_ignored_overrides_logged_at_bounded_rate(caplog: pytest.LogCaptureFixture) -> None:
    options = make_options()
    with caplog.at_level(logging.WARNING, logger="asgi_matomo"):
        for _ in range(3):
            hit_of(make_scope(state={"asgi_matomo": {"e_v": object()}}), options)

    assert len(caplog.records) == 1


OVERRIDE_TEXT_CASES = [
    pytest.param("url", "https://x.example/" + "%C3%A9" * 400, 1023, id="url-cut-at-whole-escape"),
    pytest.param("url", "https://x.example/ab" + "%C3%A9" * 400, 1022, id="url-cut-before-escape"),
    pytest.param("urlref", "r" * 2000, 1024, id="urlref"),
    pytest.param("action_name", "a" * 2000, 1024, id="action_name"),
    pytest.param("ua", "u" * 2000, 500, id="ua"),
    pytest.param("lang", "l" * 2000, 200, id="lang"),
    pytest.param("e_n", "n" * 5000, 4096, id="other"),
    pytest.param("dimension1", b"d" * 5000, 4096, id="bytes"),
]


@pytest.mark.parametrize(("name", "value", "length"), OVERRIDE_TEXT_CASES)
def test_override_text_cut(name: str, value: object, length: int) -> None:
    hit = hit_of(make_scope(state={"asgi_matomo": {name: value}}))

    assert len(str(hit[name])) == length


def test_overrides_bounded_in_total(caplog: pytest.LogCaptureFixture) -> None:
    overrides = {f"dimension{number}": "x" * 4000 for number in range(1, 5)}
    with caplog.at_level(logging.WARNING, logger="asgi_matomo"):
        hit = hit_of(make_scope(state={"asgi_matomo": {**overrides, "e_c": "Small"}}))

    assert hit["dimension1"] == "x" * 4000
    assert hit["dimension2"] == "x" * 4000
    assert "dimension3" not in hit
    assert "dimension4" not in hit
    assert hit["e_c"] == "Small"
    assert [record.getMessage() for record in caplog.records] == [
        f"{IGNORED}: 'dimension3' would make the parameters added to the hit longer than "
        "8,192 characters"
    ]


def test_overrides_share_bound_with_route_details() -> None:
    options = make_options(route_details={"/": {"dimension1": "r" * 4000}})
    overrides = {"dimension2": "o" * 4000, "dimension3": "p" * 4000}
    hit = hit_of(make_scope(state={"asgi_matomo": overrides}), options)

    assert hit["dimension1"] == "r" * 4000
    assert hit["dimension2"] == "o" * 4000
    assert "dimension3" not in hit


def test_hit_never_exceeds_size_bound() -> None:
    slots = 5
    hostile = '\U0001f600\x01"' * 3000
    headers = [
        (b"host", b"example.com"),
        (b"user-agent", hostile.encode()),
        (b"accept-language", hostile.encode()),
        (b"referer", hostile.encode()),
    ]
    variables = {hostile[:199] + str(number): hostile for number in range(slots)}
    overrides: dict[str, object] = {"cvar": variables, "_cvar": variables, "uid": hostile}
    overrides.update({f"dimension{number}": hostile for number in range(100)})
    scope = make_scope(
        path="/" + hostile, raw_path=None, headers=headers, state={"asgi_matomo": overrides}
    )
    options = make_options(cvar_slots=slots, route_details={"/x": {"e_c": hostile}})
    hit = hit_of(scope, options)
    encoded = json.dumps(hit, separators=(",", ":"))

    assert len(encoded.encode()) <= max_hit_bytes(slots)


# --- visitor and user ids ----------------------------------------------------------

VISITOR_COOKIE = (b"cookie", b"theme=dark; _pk_id.7.1fff=0123456789abcdef.1700000000.")


def test_visitor_id_from_tracker_cookie() -> None:
    hit = hit_of(make_scope(headers=[(b"host", b"example.com"), VISITOR_COOKIE]))

    assert hit["_id"] == "0123456789abcdef"


def test_visitor_id_from_second_cookie_header() -> None:
    # HTTP/2 clients may send each cookie in a header line of its own.
    headers = [(b"host", b"example.com"), (b"cookie", b"theme=dark"), VISITOR_COOKIE]
    hit = hit_of(make_scope(headers=headers))

    assert hit["_id"] == "0123456789abcdef"


def test_visitor_id_callable_without_cookie() -> None:
    hit = hit_of(make_scope(), make_options(visitor_id=lambda scope: "FEDCBA9876543210"))

    assert hit["_id"] == "fedcba9876543210"


def test_tracker_cookie_of_other_site_ignored() -> None:
    cookie = (b"cookie", b"_pk_id.8.1fff=0123456789abcdef.1700000000.")
    hit = hit_of(make_scope(headers=[(b"host", b"example.com"), cookie]))

    assert "_id" not in hit


def test_tracker_cookie_disabled() -> None:
    scope = make_scope(headers=[(b"host", b"example.com"), VISITOR_COOKIE])
    hit = hit_of(scope, make_options(use_tracker_cookie=False))

    assert "_id" not in hit


def test_visitor_id_callable_wins_over_cookie() -> None:
    scope = make_scope(headers=[(b"host", b"example.com"), VISITOR_COOKIE])
    hit = hit_of(scope, make_options(visitor_id=lambda scope: "FEDCBA9876543210"))

    assert hit["_id"] == "fedcba9876543210"


def test_user_id_callable() -> None:
    options = make_options(user_id=lambda scope: scope["headers"][0][1].decode())

    assert hit_of(make_scope(), options)["uid"] == "example.com"


def test_failing_id_callable_logged_at_bounded_rate(caplog: pytest.LogCaptureFixture) -> None:
    def broken(scope: Scope) -> str:
        raise LookupError("no session")

    options = make_options(visitor_id=broken)
    scope = make_scope(headers=[(b"host", b"example.com"), VISITOR_COOKIE])
    with caplog.at_level(logging.WARNING, logger="asgi_matomo"):
        hits = [hit_of(scope, options) for _ in range(3)]

    assert [hit["_id"] for hit in hits] == ["0123456789abcdef"] * 3
    assert [record.getMessage() for record in caplog.records] == [
        "No visitor_id sent: the visitor_id callable raised LookupError: no session"
    ]
    assert caplog.records[0].name == "asgi_matomo.hits"


def test_invalid_user_id_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    options = make_options(user_id=lambda scope: "   ")
    with caplog.at_level(logging.WARNING, logger="asgi_matomo"):
        hit = hit_of(make_scope(), options)

    assert "uid" not in hit
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith("No user_id sent: the user_id callable")
    assert caplog.records[0].name == "asgi_matomo.hits"


# --- privacy ------------------------------------------------------------------------

DNT = (b"dnt", b"1")
GPC = (b"sec-gpc", b"1")


@pytest.mark.parametrize("signal", [DNT, GPC], ids=["dnt", "gpc"])
def test_privacy_signal_skip(signal: tuple[bytes, bytes]) -> None:
    scope = make_scope(headers=[(b"host", b"example.com"), signal])
    hit = build_hit(
        scope,
        make_options(privacy_signals="skip"),
        status=200,
        duration_ms=1.0,
        started_at=STARTED_AT,
    )

    assert hit is None


def test_privacy_signal_zero_tracked() -> None:
    scope = make_scope(headers=[(b"host", b"example.com"), (b"dnt", b"0")])

    assert hit_of(scope, make_options(privacy_signals="skip"))["url"] == "https://example.com/"


def test_privacy_signal_strip() -> None:
    scope = make_scope(headers=[(b"host", b"example.com"), VISITOR_COOKIE, DNT])
    options = make_options(
        privacy_signals="strip", access_token="t0ken", user_id=lambda scope: "someone"
    )
    hit = hit_of(scope, options)

    assert "cip" not in hit
    assert "_id" not in hit
    assert "uid" not in hit
    assert hit["url"] == "https://example.com/"


def test_privacy_signal_ignored_by_default() -> None:
    scope = make_scope(headers=[(b"host", b"example.com"), VISITOR_COOKIE, DNT])
    hit = hit_of(scope, make_options(access_token="t0ken"))

    assert hit["_id"] == "0123456789abcdef"
    assert hit["cip"] == "203.0.113.9"


def test_anonymized_cip() -> None:
    hit = hit_of(make_scope(), make_options(access_token="t0ken", anonymize_ip=2))

    assert hit["cip"] == "203.0.0.0"


# --- redaction ---------------------------------------------------------------------

REDACTION_CASES = [
    pytest.param(
        {},
        b"token=abc&page=2",
        "https://example.com/?token=REDACTED&page=2",
        id="default-list",
    ),
    pytest.param(
        {"redact_query_params": ["session_key"]},
        b"Session-Key=abc&token=x",
        "https://example.com/?Session-Key=REDACTED&token=x",
        id="own-list",
    ),
    pytest.param(
        {"redact_query_params": []},
        b"token=abc",
        "https://example.com/?token=abc",
        id="off",
    ),
]


@pytest.mark.parametrize(("arguments", "query", "expected"), REDACTION_CASES)
def test_query_redaction(arguments: dict[str, Any], query: bytes, expected: str) -> None:
    hit = hit_of(make_scope(query_string=query), make_options(**arguments))

    assert hit["url"] == expected


PATH_PARAMETER_CASES = [
    pytest.param(
        {},
        {"path": "/x;jsessionid=abc", "raw_path": b"/x;jsessionid=abc"},
        "https://example.com/x;jsessionid=REDACTED",
        "/x;jsessionid=REDACTED",
        id="session-id",
    ),
    pytest.param(
        {},
        {
            "path": "/app/a;v=2;sid=s1/b;token=t",
            "raw_path": b"/app/a;v=2;sid=s1/b;token=t",
            "root_path": "/app",
        },
        "https://example.com/app/a;v=2;sid=REDACTED/b;token=REDACTED",
        "/app/a;v=2;sid=REDACTED/b;token=REDACTED",
        id="root-path-and-segments",
    ),
    pytest.param(
        {},
        {"path": "/caf\u00e9;sid=a?b", "raw_path": b"/caf%C3%A9;sid=a%3Fb"},
        "https://example.com/caf%C3%A9;sid=REDACTED",
        "/caf\u00e9;sid=REDACTED",
        id="escaped-path",
    ),
    pytest.param(
        {},
        {"path": "/x;jsessionid=abc", "raw_path": None},
        "https://example.com/x;jsessionid=REDACTED",
        "/x;jsessionid=REDACTED",
        id="no-raw-path",
    ),
    pytest.param(
        {"redact_query_params": ["order"]},
        {"path": "/x;order=7;sid=s", "raw_path": b"/x;order=7;sid=s"},
        "https://example.com/x;order=REDACTED;sid=s",
        "/x;order=REDACTED;sid=s",
        id="own-list",
    ),
    pytest.param(
        {"redact_query_params": []},
        {"path": "/x;jsessionid=abc", "raw_path": b"/x;jsessionid=abc"},
        "https://example.com/x;jsessionid=abc",
        "/x;jsessionid=abc",
        id="off",
    ),
    pytest.param(
        {},
        {"path": "/x;v=2", "raw_path": b"/x;v=2"},
        "https://example.com/x;v=2",
        "/x;v=2",
        id="not-secret",
    ),
    pytest.param(
        {},
        {"path": "/a;jsessionid=XYZ/b", "raw_path": b"/a%3Bjsessionid%3DXYZ/b"},
        "https://example.com/a%3Bjsessionid%3DREDACTED/b",
        "/a;jsessionid=REDACTED/b",
        id="escaped-separator",
    ),
    pytest.param(
        {},
        {"path": "/a;sid=x:y/b;token=t", "raw_path": b"/a%3bsid=x%3Ay/b%3Btoken%3dt"},
        "https://example.com/a%3bsid=REDACTED/b%3Btoken%3dREDACTED",
        "/a;sid=REDACTED/b;token=REDACTED",
        id="escaped-separators-any-case",
    ),
    pytest.param(
        {},
        {"path": "/a;jsessionid=X", "raw_path": b"/a%3Bj%73essionid%3DX"},
        "https://example.com/a%3Bj%73essionid%3DREDACTED",
        "/a;jsessionid=REDACTED",
        id="escaped-name",
    ),
    pytest.param(
        {},
        {"path": "/a;v=2/b:c", "raw_path": b"/a%3Bv%3D2/b%3Ac"},
        "https://example.com/a%3Bv%3D2/b%3Ac",
        "/a;v=2/b:c",
        id="escaped-not-secret",
    ),
    pytest.param(
        {"redact_query_params": []},
        {"path": "/a;jsessionid=XYZ", "raw_path": b"/a%3Bjsessionid%3DXYZ"},
        "https://example.com/a%3Bjsessionid%3DXYZ",
        "/a;jsessionid=XYZ",
        id="escaped-off",
    ),
]


@pytest.mark.parametrize(
    ("arguments", "fields", "expected_url", "expected_action_name"), PATH_PARAMETER_CASES
)
def test_path_parameter_redaction(
    arguments: dict[str, Any],
    fields: dict[str, Any],
    expected_url: str,
    expected_action_name: str,
) -> None:
    hit = hit_of(make_scope(**fields), make_options(**arguments))

    assert hit["url"] == expected_url
    assert hit["action_name"] == expected_action_name


def test_path_parameter_redacted_before_cut() -> None:
    # The cut at 1,024 characters falls inside the secret value.
    path = "/" + "a" * 1015 + ";sid=" + "s" * 40
    hit = hit_of(make_scope(path=path, raw_path=path.encode()))

    url = hit["url"]
    action_name = hit["action_name"]
    assert isinstance(url, str)
    assert isinstance(action_name, str)
    assert "s" * 5 not in url
    assert "s" * 5 not in action_name
    assert action_name == "/" + "a" * 1015 + ";sid=RED"


def test_referer_redaction() -> None:
    referer = (b"referer", b"https://login.example/cb?code=xyz&state=1")
    hit = hit_of(make_scope(headers=[(b"host", b"example.com"), referer]))

    assert hit["urlref"] == "https://login.example/cb?code=REDACTED&state=1"
