"""Tests for IP anonymisation, privacy signals and URL redaction."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_matomo.privacy import (
    DEFAULT_REDACTED_QUERY_PARAMS,
    IDENTIFYING_PARAMETERS,
    REDACTED,
    QueryRedactor,
    anonymize_ip,
    has_privacy_signal,
    parse_anonymize_ip,
    parse_privacy_signals,
    parse_redact_query_params,
    strip_identifying_parameters,
)

# --- IP anonymisation -----------------------------------------------------------

# Expected values for levels 0, 1, 2 and 3. The IPv6 rows are the test vectors
# of Matomo's matomo/network component (tests/IPv6Test.php): 64, 80 and 104
# bits masked.
ANONYMIZE_CASES = [
    ("192.0.2.77", ["192.0.2.77", "192.0.2.0", "192.0.0.0", "192.0.0.0"]),
    ("255.255.255.255", ["255.255.255.255", "255.255.255.0", "255.255.0.0", "255.0.0.0"]),
    ("0.1.1.1", ["0.1.1.1", "0.1.1.0", "0.1.0.0", "0.0.0.0"]),
    (
        "2001:db8:0:8d3:0:8a2e:70:7344",
        ["2001:db8:0:8d3:0:8a2e:70:7344", "2001:db8:0:8d3::", "2001:db8::", "2001:d00::"],
    ),
    (
        "2001:6f8:900:724::2",
        ["2001:6f8:900:724::2", "2001:6f8:900:724::", "2001:6f8:900::", "2001:600::"],
    ),
    # IPv4-mapped IPv6 is normalized to IPv4 and masked like IPv4.
    ("::ffff:192.168.1.2", ["192.168.1.2", "192.168.1.0", "192.168.0.0", "192.0.0.0"]),
    # IPv4-compatible IPv6 (deprecated): Matomo masks its last bytes like IPv4.
    ("::c0a8:102", ["::c0a8:102", "::c0a8:100", "::c0a8:0", "::c000:0"]),
    # Input forms that the proxy parser also accepts.
    ("[2001:DB8::1]:443", ["2001:db8::1", "2001:db8::", "2001:db8::", "2001:d00::"]),
    ("fe80::1234%eth0", ["fe80::1234", "fe80::", "fe80::", "fe80::"]),
]


@pytest.mark.parametrize(("address", "expected"), ANONYMIZE_CASES)
@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_anonymize_ip_levels(address: str, expected: list[str], level: int) -> None:
    assert anonymize_ip(address, level) == expected[level]


@pytest.mark.parametrize("address", ["", "unknown", "1.2.3", "2001:db8::g", "1.2.3.4%eth0"])
def test_anonymize_ip_invalid_address(address: str) -> None:
    assert anonymize_ip(address, 2) is None


def test_anonymize_ip_non_str() -> None:
    assert anonymize_ip(None, 1) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("level", [-1, 4, 24])
def test_anonymize_ip_invalid_level(level: int) -> None:
    expected = f"anonymize_ip level must be 0, 1, 2 or 3, got {level!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        anonymize_ip("192.0.2.1", level)


ANONYMIZE_HELP = "0 sends the full address and 1, 2 or 3 mask that many bytes of IPv4"


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (1, 1), (2, 2), (3, 3), (" 2 ", 2)])
def test_parse_anonymize_ip_valid(value: object, expected: int) -> None:
    assert parse_anonymize_ip(value) == expected


@pytest.mark.parametrize("value", [4, -1, "4", "two", "", "²"])
def test_parse_anonymize_ip_invalid_value(value: object) -> None:
    expected = f"anonymize_ip must be 0, 1, 2 or 3, got {value!r}; {ANONYMIZE_HELP}"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        parse_anonymize_ip(value)


@pytest.mark.parametrize("value", [True, False, None, 1.0, [1]])
def test_parse_anonymize_ip_invalid_type(value: object) -> None:
    expected = f"anonymize_ip must be an int from 0 to 3, got {value!r}; {ANONYMIZE_HELP}"
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        parse_anonymize_ip(value)


@settings(max_examples=300)
@given(
    address=st.ip_addresses().map(str),
    level=st.sampled_from([1, 2, 3]),
)
def test_anonymize_ip_masks_never_grow(address: str, level: int) -> None:
    masked = anonymize_ip(address, level)
    assert masked is not None
    parsed = ipaddress.ip_address(masked)
    original = ipaddress.ip_address(address)
    if isinstance(original, ipaddress.IPv6Address) and original.ipv4_mapped is not None:
        original = original.ipv4_mapped
    assert parsed.version == original.version
    # Masking only clears bits.
    assert int(parsed) & ~int(original) == 0
    assert anonymize_ip(masked, level) == masked


# --- Privacy signals --------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"dnt", b"1")], True),
        ([(b"sec-gpc", b"1")], True),
        ([(b"dnt", b" 1\t")], True),
        ([(b"dnt", b"0"), (b"sec-gpc", b"1")], True),
        ([(b"dnt", b"0")], False),
        ([(b"sec-gpc", b"0")], False),
        ([(b"dnt", b"yes")], False),
        ([(b"dnt", b"")], False),
        ([(b"dnt", b"11")], False),
        ([(b"x-dnt", b"1")], False),
        ([(b"user-agent", b"1")], False),
        ([], False),
    ],
)
def test_has_privacy_signal(headers: list[tuple[bytes, bytes]], expected: bool) -> None:
    assert has_privacy_signal(headers) is expected


@given(st.lists(st.tuples(st.sampled_from([b"dnt", b"sec-gpc", b"host"]), st.binary())))
def test_has_privacy_signal_random_bytes(headers: list[tuple[bytes, bytes]]) -> None:
    expected = any(
        name in (b"dnt", b"sec-gpc") and value.strip(b" \t") == b"1" for name, value in headers
    )
    assert has_privacy_signal(headers) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("ignore", "ignore"), ("skip", "skip"), ("strip", "strip"), (" SKIP ", "skip")],
)
def test_parse_privacy_signals_valid(value: str, expected: str) -> None:
    assert parse_privacy_signals(value) == expected


@pytest.mark.parametrize("value", ["drop", "", None, True, 1])
def test_parse_privacy_signals_invalid(value: object) -> None:
    expected = (
        f"privacy_signals must be 'ignore', 'skip' or 'strip', got {value!r}; "
        "'skip' sends no hit for requests with DNT: 1 or Sec-GPC: 1, "
        "'strip' sends them without visitor ids, user id and IP"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        parse_privacy_signals(value)


def test_strip_identifying_parameters() -> None:
    hit: dict[str, str | int] = {
        "idsite": 1,
        "rec": 1,
        "url": "https://shop.example/",
        "ua": "Mozilla/5.0",
        "cip": "192.0.2.1",
        "_id": "0123456789abcdef",
        "cid": "0123456789abcdef",
        "uid": "alice",
        "_idts": 1700000000,
        "_cvar": "{}",
        "city": "Berlin",
        "cvar": '{"1": ["http_status_code", "200"]}',
    }
    strip_identifying_parameters(hit)
    assert hit == {
        "idsite": 1,
        "rec": 1,
        "url": "https://shop.example/",
        "ua": "Mozilla/5.0",
        "cvar": '{"1": ["http_status_code", "200"]}',
    }


def test_identifying_parameters_cover_ids() -> None:
    for name in ("cip", "_id", "cid", "uid"):
        assert name in IDENTIFYING_PARAMETERS


# --- Redaction ----------------------------------------------------------------------

DEFAULT = parse_redact_query_params(None)

REDACTION_CASES = [
    # url values as the middleware builds them.
    (
        "https://shop.example/cb?code=abc123&state=xyz",
        f"https://shop.example/cb?code={REDACTED}&state=xyz",
    ),
    (
        "https://shop.example/a?x=1&access_token=t0k&q=shoes",
        f"https://shop.example/a?x=1&access_token={REDACTED}&q=shoes",
    ),
    (
        "https://api.example/v1?API_KEY=k&apiKey=k2&api-key=k3",
        f"https://api.example/v1?API_KEY={REDACTED}&apiKey={REDACTED}&api-key={REDACTED}",
    ),
    (
        "https://matomo.example/index.php?module=API&token_auth=abcdef",
        f"https://matomo.example/index.php?module=API&token_auth={REDACTED}",
    ),
    # Percent-encoded and '+' encoded names are decoded before matching.
    ("/p?access%5Ftoken=1&pass%77ord=2", f"/p?access%5Ftoken={REDACTED}&pass%77ord={REDACTED}"),
    ("/p?access+token=1", f"/p?access+token={REDACTED}"),
    # Suffix patterns: every name ending in "token", nested names too.
    (
        "/p?reset_token=r&nextPageToken=n&user[password]=p&user.api_key=k",
        f"/p?reset_token={REDACTED}&nextPageToken={REDACTED}"
        f"&user[password]={REDACTED}&user.api_key={REDACTED}",
    ),
    # ';' separates pairs too.
    ("/p?a=1;password=hunter2;b=2", f"/p?a=1;password={REDACTED};b=2"),
    # Path parameters and a query-like fragment.
    ("/app;jsessionid=AB12/page?x=1", f"/app;jsessionid={REDACTED}/page?x=1"),
    ("/cb#access_token=t&token_type=bearer", f"/cb#access_token={REDACTED}&token_type=bearer"),
    # Signed URLs.
    (
        "https://bucket.example/o?X-Amz-Credential=c&X-Amz-Signature=s&X-Amz-Expires=60",
        f"https://bucket.example/o?X-Amz-Credential={REDACTED}"
        f"&X-Amz-Signature={REDACTED}&X-Amz-Expires=60",
    ),
    # urlref values: the Referer header of another site.
    (
        "https://idp.example/reset?email=a%40b.example&reset_token=zz",
        f"https://idp.example/reset?email=a%40b.example&reset_token={REDACTED}",
    ),
    (
        "https://idp.example/login?password=p&user=alice",
        f"https://idp.example/login?password={REDACTED}&user=alice",
    ),
    # The password of user:password@ is always redacted.
    ("https://alice:s3cret@host.example/x", f"https://alice:{REDACTED}@host.example/x"),
    ("ftp://anon@host.example/x", "ftp://anon@host.example/x"),
    ("https://a:@host.example/", "https://a:@host.example/"),
    ("/path/with@sign?x=1", "/path/with@sign?x=1"),
    # Values are redacted only where there is one.
    ("/p?token=&token&x=1", "/p?token=&token&x=1"),
    ("/p?token==x", f"/p?token={REDACTED}"),
    # Everything else stays byte for byte.
    ("https://shop.example/", "https://shop.example/"),
    ("/p?q=a%20b&x=%ZZ&&=v&y", "/p?q=a%20b&x=%ZZ&&=v&y"),
    ("/p?tokens=1&tokenx=3&keys=4&codes=5", "/p?tokens=1&tokenx=3&keys=4&codes=5"),
    ("/search?q=password", "/search?q=password"),
    # Long names take the uncached path and match the same way.
    ("/p?" + "x" * 70 + "_token=t", "/p?" + "x" * 70 + f"_token={REDACTED}"),
    ("", ""),
]


@pytest.mark.parametrize(("url", "expected"), REDACTION_CASES)
def test_redact_url_default_names(url: str, expected: str) -> None:
    assert DEFAULT.redact_url(url) == expected


PATH_REDACTION_CASES = [
    ("/x;jsessionid=abc", f"/x;jsessionid={REDACTED}"),
    ("/app;JSESSIONID=AB12/page", f"/app;JSESSIONID={REDACTED}/page"),
    # Several parameters in one segment, and parameters in several segments.
    ("/a;v=2;sid=s1/b;token=t", f"/a;v=2;sid={REDACTED}/b;token={REDACTED}"),
    # A decoded path may contain '?' and '#' (from %3F and %23); they belong to the value.
    ("/a;sid=s1?x#y/b", f"/a;sid={REDACTED}/b"),
    # Percent-encoded names are decoded before matching.
    ("/a;j%73essionid=s", f"/a;j%73essionid={REDACTED}"),
    # Names that are not secret, empty values and ';' without '=' stay.
    ("/a;v=2/b;page=3", "/a;v=2/b;page=3"),
    ("/a;sid=/b;sid", "/a;sid=/b;sid"),
    ("/a;b", "/a;b"),
    ("/plain", "/plain"),
    ("", ""),
]


@pytest.mark.parametrize(("path", "expected"), PATH_REDACTION_CASES)
def test_redact_path_default_names(path: str, expected: str) -> None:
    assert DEFAULT.redact_path(path) == expected


def test_redact_path_disabled() -> None:
    redactor = parse_redact_query_params([])
    assert redactor.redact_path("/x;jsessionid=abc") == "/x;jsessionid=abc"


def test_redact_query_without_question_mark() -> None:
    assert DEFAULT.redact_query("a=1&secret=s") == f"a=1&secret={REDACTED}"
    assert DEFAULT.redact_query("a=1;token=t&b=2") == f"a=1;token={REDACTED}&b=2"
    assert DEFAULT.redact_query("a=1#token=t") == f"a=1#token={REDACTED}"
    assert DEFAULT.redact_query("plain") == "plain"
    assert DEFAULT.redact_query("a=1&b=2") == "a=1&b=2"


def test_redact_custom_names() -> None:
    redactor = parse_redact_query_params(["email", " Order-Id ", "*_hash"])
    assert redactor.params == ("email", "Order-Id", "*_hash")
    assert redactor.redact_url("/p?email=a%40b&order_id=7&token=t&pw_hash=h") == (
        f"/p?email={REDACTED}&order_id={REDACTED}&token=t&pw_hash={REDACTED}"
    )
    assert redactor.is_redacted("EMAIL")
    assert redactor.is_redacted("hash")
    assert not redactor.is_redacted("token")
    assert redactor.enabled


def test_redact_extended_default() -> None:
    redactor = parse_redact_query_params([*DEFAULT_REDACTED_QUERY_PARAMS, "email"])
    assert redactor.redact_url("/p?email=e&token=t") == f"/p?email={REDACTED}&token={REDACTED}"


def test_redact_disabled_keeps_passwords_out() -> None:
    redactor = parse_redact_query_params([])
    assert not redactor.enabled
    assert redactor.redact_url("/p?token=t") == "/p?token=t"
    assert redactor.redact_query("token=t") == "token=t"
    assert redactor.redact_url("https://a:b@h.example/?token=t") == (
        f"https://a:{REDACTED}@h.example/?token=t"
    )


def test_redactor_repr_and_equality() -> None:
    redactor = parse_redact_query_params(["token", "secret"])
    assert repr(redactor) == "QueryRedactor(['token', 'secret'])"
    assert redactor == QueryRedactor(["Secret", "TOKEN"])
    assert hash(redactor) == hash(QueryRedactor(["Secret", "TOKEN"]))
    assert redactor != parse_redact_query_params(["token"])
    assert redactor != parse_redact_query_params(["*token", "secret"])
    assert redactor != ["token", "secret"]


@pytest.mark.parametrize("value", ["token", b"token", 5])
def test_parse_redact_query_params_invalid_type(value: object) -> None:
    expected = (
        "redact_query_params must be an iterable of str such as ['token', 'password'], "
        f"got {value!r}"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        parse_redact_query_params(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "item"),
    [
        (["token", ""], ""),
        (["a", 3], 3),
        ([" "], " "),
        (["*"], "*"),
        (["-_"], "-_"),
        (["to*ken"], "to*ken"),
        (["**token"], "**token"),
    ],
)
def test_parse_redact_query_params_invalid_item(value: list[object], item: object) -> None:
    expected = (
        "redact_query_params must contain query parameter names such as 'token', "
        f"or '*token' for every name ending in 'token', got {item!r} in {value!r}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        parse_redact_query_params(value)  # type: ignore[arg-type]


# Names and values that contain no separator, so a query built from them splits
# back into the same pairs.
query_names = st.sampled_from(["token", "Access-Token", "q", "page", "api_key", "x", "SID", ""])
query_values = st.text(alphabet=st.characters(blacklist_characters="&;=#"), max_size=8)


@settings(max_examples=300)
@given(st.lists(st.tuples(query_names, query_values), max_size=6))
def test_redact_query_pairs_property(pairs: list[tuple[str, str]]) -> None:
    query = "&".join(f"{name}={value}" for name, value in pairs)
    redacted = DEFAULT.redact_query(query)
    output_pairs = [part.split("=", 1) for part in redacted.split("&")] if pairs else []
    assert len(output_pairs) == len(pairs)
    for (name, value), (output_name, output_value) in zip(pairs, output_pairs, strict=True):
        assert output_name == name
        if value and DEFAULT.is_redacted(name):
            assert output_value == REDACTED
        else:
            assert output_value == value


@settings(max_examples=300)
@given(st.text(max_size=60))
def test_redact_url_random_text(url: str) -> None:
    redacted = DEFAULT.redact_url(url)
    assert DEFAULT.redact_url(redacted) == redacted
    if "=" not in url and "@" not in url:
        assert redacted == url


# --- The cache of verdicts per parameter name ------------------------------------------

NAME_SEPARATORS = str.maketrans("", "", "-_. []")


def reference_is_redacted(redactor_params: tuple[str, ...], name: str) -> bool:
    """is_redacted() computed from the rules in DEFAULT_REDACTED_QUERY_PARAMS' comment."""
    from urllib.parse import unquote_plus

    def normalize(text: str) -> str:
        return unquote_plus(text, errors="replace").lower().translate(NAME_SEPARATORS)

    normalized = normalize(name)
    for param in redactor_params:
        if param.startswith("*"):
            if normalized.endswith(normalize(param[1:])):
                return True
        elif normalized == normalize(param):
            return True
    return False


name_text = st.lists(
    st.sampled_from([*"tokenSIDaK-_. []%+2Fe\u212a\u0130", "%6B", "%20"]), max_size=12
).map("".join)


@settings(max_examples=300)
@given(st.lists(name_text, max_size=8))
def test_is_redacted_cached_equals_reference(names: list[str]) -> None:
    redactor = parse_redact_query_params(None)
    for name in names + names:
        assert redactor.is_redacted(name) == reference_is_redacted(
            DEFAULT_REDACTED_QUERY_PARAMS, name
        )


def test_is_redacted_cache_is_bounded() -> None:
    redactor = parse_redact_query_params(None)
    for number in range(5000):
        assert not redactor.is_redacted(f"name{number}")
    assert 0 < len(redactor._verdicts) <= 1024
    long_name = "x" * 100 + "token"
    assert redactor.is_redacted(long_name)
    assert long_name not in redactor._verdicts
    assert redactor.is_redacted("Access-Token")
    assert redactor.is_redacted("Access-Token")
    assert not redactor.is_redacted("page")


query_prefixes = st.sampled_from(
    ["", "/p", "https://h.example/p", "https://h.example:8443/a/b", "p?x", "/a;b"]
)


@settings(max_examples=300)
@given(query_prefixes, st.lists(st.tuples(query_names, query_values), max_size=5))
def test_redact_url_query_only_matches_general_path(
    prefix: str, pairs: list[tuple[str, str]]
) -> None:
    url = prefix + "?" + "&".join(f"{name}={value}" for name, value in pairs)
    # An empty fragment sends the URL through the general path of redact_url.
    assert DEFAULT.redact_url(url + "#") == DEFAULT.redact_url(url) + "#"
