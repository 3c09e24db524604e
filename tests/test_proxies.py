"""Tests for trusted proxies: client address, scheme and host of forwarded requests."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_matomo.privacy import anonymize_ip
from asgi_matomo.proxies import (
    DEFAULT_TRUSTED_PROXIES,
    FORWARDING_HEADERS,
    ResolvedClient,
    TrustedProxies,
    normalize_ip_address,
    parse_trusted_proxies,
    peer_ip,
)

Headers = list[tuple[bytes, bytes]]

LOOPBACK = ("127.0.0.1", 51000)
INTERNAL = ["10.0.0.0/8", "127.0.0.1"]
CLIENT = "203.0.113.7"


def xff(value: str) -> tuple[bytes, bytes]:
    return (b"x-forwarded-for", value.encode("latin-1"))


def xfp(value: str) -> tuple[bytes, bytes]:
    return (b"x-forwarded-proto", value.encode("latin-1"))


def xfh(value: str) -> tuple[bytes, bytes]:
    return (b"x-forwarded-host", value.encode("latin-1"))


def fwd(value: str) -> tuple[bytes, bytes]:
    return (b"forwarded", value.encode("latin-1"))


# (case id, trusted_proxies, scope["client"], headers, expected ip, scheme, host)
# fmt: off
FORWARDING_CASES: list[
    tuple[str, object, object, Headers, str | None, str | None, str | None]
] = [
    # A peer that is not a trusted proxy cannot choose anything through headers.
    ("untrusted peer, spoofed XFF", None, ("198.51.100.9", 1), [xff("1.1.1.1")],
     "198.51.100.9", None, None),
    ("untrusted peer, spoofed Forwarded", None, ("198.51.100.9", 1),
     [fwd("for=1.1.1.1;proto=https;host=evil.example")], "198.51.100.9", None, None),
    ("untrusted peer, spoofed proto and host", None, ("198.51.100.9", 1),
     [xfp("https"), xfh("evil.example")], "198.51.100.9", None, None),
    ("untrusted IPv6 peer", None, ("2001:db8::9", 1), [xff("1.1.1.1")],
     "2001:db8::9", None, None),
    ("peer outside trusted network", INTERNAL, ("11.0.0.1", 1), [xff("1.1.1.1")],
     "11.0.0.1", None, None),
    ("no peer address, default trust", None, None, [xff("1.1.1.1")], None, None, None),
    ("non-IP peer, default trust", None, ("testclient", 50000), [xff("1.1.1.1")],
     None, None, None),
    # The default trusts loopback only.
    ("loopback peer, one hop", None, LOOPBACK, [xff(CLIENT)], CLIENT, None, None),
    ("IPv6 loopback peer", None, ("::1", 1), [xff(CLIENT)], CLIENT, None, None),
    ("IPv4-mapped loopback peer", None, ("::ffff:127.0.0.1", 1), [xff(CLIENT)],
     CLIENT, None, None),
    ("peer given as a list", None, ["127.0.0.1", 80], [xff(CLIENT)], CLIENT, None, None),
    ("trusted peer, no forwarding headers", None, LOOPBACK, [], "127.0.0.1", None, None),
    ("trusted peer, blank XFF", None, LOOPBACK, [xff("  ")], "127.0.0.1", None, None),
    ("client spoofs left of the real hop", None, LOOPBACK,
     [xff(f"1.1.1.1, 2.2.2.2, {CLIENT}")], CLIENT, None, None),
    # Chains of several trusted hops.
    ("two trusted hops skipped", INTERNAL, ("10.0.0.4", 1),
     [xff(f"{CLIENT}, 10.0.0.2, 10.0.0.3")], CLIENT, None, None),
    ("spoof behind two trusted hops", INTERNAL, ("10.0.0.4", 1),
     [xff(f"1.1.1.1, {CLIENT}, 10.0.0.2")], CLIENT, None, None),
    ("every hop trusted: leftmost", INTERNAL, ("10.0.0.4", 1),
     [xff("10.0.0.9, 10.0.0.2")], "10.0.0.9", None, None),
    ("XFF split over header lines", INTERNAL, ("10.0.0.4", 1),
     [xff("1.1.1.1"), xff(CLIENT), xff("10.0.0.2")], CLIENT, None, None),
    ("trusted single address", ["192.0.2.10"], ("192.0.2.10", 1), [xff(CLIENT)],
     CLIENT, None, None),
    ("IPv6 trusted network", ["2001:db8:a::/48"], ("2001:db8:a::5", 1),
     [xff(f"{CLIENT}, 2001:db8:a::4")], CLIENT, None, None),
    ("mapped-form trusted network", ["::ffff:10.0.0.0/104"], ("10.1.2.3", 1),
     [xff(CLIENT)], CLIENT, None, None),
    # "*" trusts every peer and every hop, so the leftmost hop is the client.
    ("star: any peer, leftmost hop", ["*"], ("198.51.100.20", 1),
     [xff(f"{CLIENT}, 198.51.100.1")], CLIENT, None, None),
    ("star: no peer address", "*", None, [xff(CLIENT)], CLIENT, None, None),
    ("star: no headers", "*", ("198.51.100.20", 1), [], "198.51.100.20", None, None),
    # "unix" trusts a peer without an IP address (a Unix domain socket).
    ("unix: socket peer", ["unix"], None, [xff(CLIENT)], CLIENT, None, None),
    ("unix: TCP peer not trusted", ["unix"], ("127.0.0.1", 1), [xff(CLIENT)],
     "127.0.0.1", None, None),
    # Address forms: ports, brackets, zone ids, mapped addresses.
    ("IPv4 with port", None, LOOPBACK, [xff(f"{CLIENT}:51234")], CLIENT, None, None),
    ("bare IPv6", None, LOOPBACK, [xff("2001:db8::7")], "2001:db8::7", None, None),
    ("bracketed IPv6", None, LOOPBACK, [xff("[2001:db8::7]")], "2001:db8::7", None, None),
    ("bracketed IPv6 with port", None, LOOPBACK, [xff("[2001:db8::7]:4711")],
     "2001:db8::7", None, None),
    ("IPv6 uncompressed", None, LOOPBACK, [xff("2001:0DB8:0000:0000:0000:0000:0000:0007")],
     "2001:db8::7", None, None),
    ("IPv6 zone id dropped", None, LOOPBACK, [xff("fe80::1%eth0")], "fe80::1", None, None),
    ("bracketed zone id with port", None, LOOPBACK, [xff("[fe80::1%25eth0]:80")],
     "fe80::1", None, None),
    ("IPv4-mapped becomes IPv4", None, LOOPBACK, [xff(f"::ffff:{CLIENT}")], CLIENT, None, None),
    ("IPv6 peer with zone id", ["fe80::/10"], ("fe80::2%eth0", 1), [xff(CLIENT)],
     CLIENT, None, None),
    # Malformed hops end the walk without an address.
    ("unknown hop", None, LOOPBACK, [xff("unknown")], None, None, None),
    ("garbage hop", None, LOOPBACK, [xff("not-an-ip")], None, None, None),
    ("invalid octet", None, LOOPBACK, [xff("999.1.1.1")], None, None, None),
    ("leading zeros", None, LOOPBACK, [xff("010.1.1.1")], None, None, None),
    ("port not a number", None, LOOPBACK, [xff(f"{CLIENT}:http")], None, None, None),
    ("empty port", None, LOOPBACK, [xff(f"{CLIENT}:")], None, None, None),
    ("unclosed bracket", None, LOOPBACK, [xff("[2001:db8::7")], None, None, None),
    ("text after bracket", None, LOOPBACK, [xff("[2001:db8::7]x")], None, None, None),
    ("IPv4 with zone id", None, LOOPBACK, [xff(f"{CLIENT}%eth0")], None, None, None),
    ("CIDR instead of address", None, LOOPBACK, [xff("203.0.113.0/24")], None, None, None),
    ("empty rightmost hop", None, LOOPBACK, [xff(f"{CLIENT}, ")], None, None, None),
    ("unknown behind trusted hop", INTERNAL, ("10.0.0.4", 1),
     [xff(f"{CLIENT}, unknown, 10.0.0.2")], None, None, None),
    ("garbage left of the client", None, LOOPBACK, [xff(f"garbage, {CLIENT}")],
     CLIENT, None, None),
    ("star: unknown hop", "*", LOOPBACK, [xff(f"unknown, {CLIENT}")], None, None, None),
    # RFC 7239 Forwarded.
    ("Forwarded for, proto, by", None, LOOPBACK,
     [fwd("for=192.0.2.60;proto=https;by=203.0.113.43")], "192.0.2.60", "https", None),
    ("Forwarded quoted IPv6 with port", None, LOOPBACK,
     [fwd('for="[2001:db8:cafe::17]:4711"')], "2001:db8:cafe::17", None, None),
    ("Forwarded quoted IPv4", None, LOOPBACK, [fwd('for="192.0.2.60"')],
     "192.0.2.60", None, None),
    ("Forwarded unquoted IPv4 with port", None, LOOPBACK, [fwd("for=192.0.2.60:8080")],
     "192.0.2.60", None, None),
    ("Forwarded names ignore case", None, LOOPBACK, [fwd("For=192.0.2.60;PROTO=HTTPS")],
     "192.0.2.60", "https", None),
    ("Forwarded spaces around pairs", None, LOOPBACK,
     [fwd(" for = 192.0.2.60 ; proto = https ")], "192.0.2.60", "https", None),
    ("Forwarded obfuscated identifier", None, LOOPBACK, [fwd("for=_hidden")],
     None, None, None),
    ("Forwarded quoted obfuscated", None, LOOPBACK, [fwd('for="_gazonk"')], None, None, None),
    ("Forwarded obfuscated with port", None, LOOPBACK, [fwd('for="192.0.2.60:_port"')],
     None, None, None),
    ("Forwarded unknown", None, LOOPBACK, [fwd("for=unknown;proto=https")],
     None, "https", None),
    ("Forwarded element without for", None, LOOPBACK, [fwd("proto=https;host=a.example")],
     None, "https", "a.example"),
    ("Forwarded obfuscated trusted hop", INTERNAL, ("10.0.0.4", 1),
     [fwd(f"for={CLIENT}, for=_proxy1")], None, None, None),
    ("Forwarded chain with trusted hop", INTERNAL, ("10.0.0.3", 1),
     [fwd(f"for={CLIENT};proto=https;host=shop.example, for=10.0.0.2;proto=http;host=int")],
     CLIENT, "https", "shop.example"),
    ("Forwarded spoof left of the client", INTERNAL, ("10.0.0.3", 1),
     [fwd(f"for=1.1.1.1;host=evil.example, for={CLIENT};proto=https;host=shop.example")],
     CLIENT, "https", "shop.example"),
    ("Forwarded over header lines", INTERNAL, ("10.0.0.3", 1),
     [fwd("for=1.1.1.1"), fwd(f"for={CLIENT};host=shop.example")],
     CLIENT, None, "shop.example"),
    ("Forwarded empty elements", None, LOOPBACK, [fwd(f",, for={CLIENT} ,;,")],
     CLIENT, None, None),
    ("Forwarded comma inside quotes", None, LOOPBACK,
     [fwd(f'for={CLIENT};host="a.example,b.example"')], CLIENT, None, None),
    ("Forwarded semicolon inside quotes", None, LOOPBACK,
     [fwd(f'host="a;b";for={CLIENT}')], CLIENT, None, None),
    ("Forwarded escaped quotes", None, LOOPBACK, [fwd(r'for="\"192.0.2.60\""')],
     None, None, None),
    ("Forwarded quoted-pair unescaped", None, LOOPBACK, [fwd(r'for="192.0.2.6\0"')],
     "192.0.2.60", None, None),
    ("Forwarded quoted host with port", None, LOOPBACK,
     [fwd(f'for={CLIENT};host="Shop.Example:8443"')], CLIENT, None, "shop.example:8443"),
    ("Forwarded text after value", None, LOOPBACK, [fwd(f"for={CLIENT} junk")],
     None, None, None),
    ("Forwarded pair without value", None, LOOPBACK, [fwd("for")], None, None, None),
    ("Forwarded empty value", None, LOOPBACK, [fwd("for=")], None, None, None),
    ("Forwarded repeated parameter", None, LOOPBACK,
     [fwd(f"for=1.1.1.1;for={CLIENT}")], None, None, None),
    ("Forwarded unclosed quote", None, LOOPBACK, [fwd('for="192.0.2.60')], None, None, None),
    ("Forwarded malformed, client intact", None, LOOPBACK,
     [fwd(f'for="oops, for={CLIENT}')], None, None, None),
    ("Forwarded malformed left element", None, LOOPBACK,
     [fwd(f"=== , for={CLIENT};proto=https")], CLIENT, "https", None),
    ("Forwarded invalid proto", None, LOOPBACK, [fwd(f"for={CLIENT};proto=gopher")],
     CLIENT, None, None),
    ("Forwarded blank", None, LOOPBACK, [fwd("  ")], "127.0.0.1", None, None),
    # X-Forwarded-For and Forwarded together: the X-Forwarded family wins.
    ("XFF wins over Forwarded", None, LOOPBACK,
     [fwd("for=1.1.1.1;proto=http;host=evil.example"), xff(CLIENT)], CLIENT, None, None),
    ("XFP alone shadows Forwarded", None, LOOPBACK,
     [fwd("for=1.1.1.1;host=evil.example"), xfp("https")], "127.0.0.1", "https", None),
    ("XFH alone shadows Forwarded", None, LOOPBACK,
     [fwd("for=1.1.1.1;proto=http"), xfh("shop.example")], "127.0.0.1", None, "shop.example"),
    # X-Forwarded-Proto and X-Forwarded-Host.
    ("XFP https", None, LOOPBACK, [xff(CLIENT), xfp("https")], CLIENT, "https", None),
    ("XFP upper case with spaces", None, LOOPBACK, [xfp(" HTTPS ")],
     "127.0.0.1", "https", None),
    ("XFP http", None, LOOPBACK, [xfp("http")], "127.0.0.1", "http", None),
    ("XFP unsupported scheme", None, LOOPBACK, [xfp("ftp")], "127.0.0.1", None, None),
    ("XFP websocket scheme", None, LOOPBACK, [xfp("wss")], "127.0.0.1", None, None),
    ("XFH name with port", None, LOOPBACK, [xfh("Shop.Example:8443")],
     "127.0.0.1", None, "shop.example:8443"),
    ("XFH IPv4 literal", None, LOOPBACK, [xfh("192.0.2.1")], "127.0.0.1", None, "192.0.2.1"),
    ("XFH IPv6 literal with port", None, LOOPBACK, [xfh("[2001:DB8::1]:8080")],
     "127.0.0.1", None, "[2001:db8::1]:8080"),
    ("XFH trailing dot", None, LOOPBACK, [xfh("shop.example.")],
     "127.0.0.1", None, "shop.example."),
    ("XFH with path", None, LOOPBACK, [xfh("evil.example/x")], "127.0.0.1", None, None),
    ("XFH with userinfo", None, LOOPBACK, [xfh("user@evil.example")], "127.0.0.1", None, None),
    ("XFH with query", None, LOOPBACK, [xfh("evil.example?x")], "127.0.0.1", None, None),
    ("XFH with space", None, LOOPBACK, [xfh("evil example")], "127.0.0.1", None, None),
    ("XFH empty label", None, LOOPBACK, [xfh("shop..example")], "127.0.0.1", None, None),
    ("XFH leading dot", None, LOOPBACK, [xfh(".example")], "127.0.0.1", None, None),
    ("XFH port zero", None, LOOPBACK, [xfh("shop.example:0")], "127.0.0.1", None, None),
    ("XFH port too large", None, LOOPBACK, [xfh("shop.example:65536")],
     "127.0.0.1", None, None),
    ("XFH invalid IPv6 literal", None, LOOPBACK, [xfh("[2001:db8::zz]")],
     "127.0.0.1", None, None),
    ("XFH non-ASCII", None, LOOPBACK, [xfh("bücher.example")], "127.0.0.1", None, None),
    # Lists aligned with X-Forwarded-For from the right.
    ("XFP aligned with client hop", INTERNAL, ("10.0.0.3", 1),
     [xff(f"{CLIENT}, 10.0.0.2"), xfp("https, http")], CLIENT, "https", None),
    ("XFP spoof left is skipped", INTERNAL, ("10.0.0.3", 1),
     [xff(f"1.1.1.1, {CLIENT}, 10.0.0.2"), xfp("http, https, http")], CLIENT, "https", None),
    ("XFP overwritten single value", INTERNAL, ("10.0.0.3", 1),
     [xff(f"{CLIENT}, 10.0.0.2"), xfp("https")], CLIENT, "https", None),
    ("XFH aligned with client hop", INTERNAL, ("10.0.0.3", 1),
     [xff(f"{CLIENT}, 10.0.0.2"), xfh("shop.example, internal.example")],
     CLIENT, None, "shop.example"),
    ("XFP aligned with unknown hop", INTERNAL, ("10.0.0.3", 1),
     [xff(f"{CLIENT}, unknown, 10.0.0.2"), xfp("http, https, http")], None, "https", None),
]
# fmt: on


@pytest.mark.parametrize(
    ("trusted", "client", "headers", "ip", "scheme", "host"),
    [case[1:] for case in FORWARDING_CASES],
    ids=[case[0] for case in FORWARDING_CASES],
)
def test_resolve_forwarding_case(
    trusted: object,
    client: object,
    headers: Headers,
    ip: str | None,
    scheme: str | None,
    host: str | None,
) -> None:
    proxies = parse_trusted_proxies(trusted)  # type: ignore[arg-type]
    resolved = proxies.resolve(client, headers)
    assert resolved.ip == ip
    assert resolved.scheme == scheme
    assert resolved.host == host


def test_resolve_ignores_unrelated_headers() -> None:
    proxies = parse_trusted_proxies(None)
    headers = [
        (b"host", b"app.example"),
        (b"x-real-ip", b"1.1.1.1"),
        (b"client-ip", b"1.1.1.1"),
        (b"x-forwarded-port", b"443"),
    ]
    assert proxies.resolve(LOOPBACK, headers) == ResolvedClient("127.0.0.1", None, None)


def test_resolve_accepts_header_lists() -> None:
    # ASGI allows any two-item iterables as header pairs.
    proxies = parse_trusted_proxies(None)
    headers = [[b"x-forwarded-for", CLIENT.encode()]]
    assert proxies.resolve(LOOPBACK, headers).ip == CLIENT  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "client",
    [(), (None, 1), (b"127.0.0.1", 1), (127, 1), "127.0.0.1", 12, {"host": "127.0.0.1"}],
)
def test_resolve_odd_client_values(client: object) -> None:
    proxies = parse_trusted_proxies(None)
    assert proxies.resolve(client, [xff(CLIENT)]) == ResolvedClient(None, None, None)


# --- parse_trusted_proxies ----------------------------------------------------

ACCEPTED = (
    "expected an IP address such as '10.0.0.7' or '2001:db8::7', "
    "a CIDR network such as '10.0.0.0/8' or '2001:db8::/32', "
    "'unix' to trust a peer without an IP address (a Unix domain socket), "
    "or '*' to trust every peer"
)


def test_parse_default_is_loopback() -> None:
    proxies = parse_trusted_proxies(None)
    assert proxies.entries == DEFAULT_TRUSTED_PROXIES
    assert proxies.is_trusted("127.0.0.1")
    assert proxies.is_trusted("::1")
    assert proxies.is_trusted("::ffff:127.0.0.1")
    assert not proxies.is_trusted("127.0.0.2")
    assert not proxies.is_trusted("10.0.0.1")
    assert not proxies.trust_all


def test_parse_comma_separated_string() -> None:
    proxies = parse_trusted_proxies(" 10.0.0.0/8 , 192.0.2.7,2001:db8::/32 ")
    assert proxies.entries == ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32")
    assert proxies.is_trusted("10.200.3.4")
    assert proxies.is_trusted("192.0.2.7")
    assert proxies.is_trusted("[2001:db8:ffff::1]:443")
    assert not proxies.is_trusted("192.0.2.8")
    assert not proxies.is_trusted("2001:db9::1")


def test_parse_iterable_of_entries() -> None:
    proxies = parse_trusted_proxies(entry for entry in ["172.16.0.0/12", "fd00::/8"])
    assert proxies.entries == ("172.16.0.0/12", "fd00::/8")
    assert proxies.is_trusted("172.31.255.255")
    assert not proxies.is_trusted("172.32.0.0")
    assert proxies.is_trusted("fdab::1")


def test_parse_star_trusts_everything() -> None:
    proxies = parse_trusted_proxies("*")
    assert proxies.trust_all
    assert proxies.is_trusted("198.51.100.1")
    assert proxies.is_trusted("2001:db8::1")
    assert not proxies.is_trusted("not-an-ip")


@pytest.mark.parametrize("value", ["", "  ", []])
def test_parse_empty_trusts_nothing(value: object) -> None:
    proxies = parse_trusted_proxies(value)  # type: ignore[arg-type]
    assert proxies.entries == ()
    assert not proxies.is_trusted("127.0.0.1")
    assert proxies.resolve(LOOPBACK, [xff(CLIENT)]) == ResolvedClient("127.0.0.1", None, None)


def test_parse_is_trusted_rejects_non_str() -> None:
    proxies = parse_trusted_proxies("*")
    assert not proxies.is_trusted(None)  # type: ignore[arg-type]


def test_trusted_proxies_repr_and_equality() -> None:
    proxies = parse_trusted_proxies("10.0.0.0/8, ::1")
    assert repr(proxies) == "TrustedProxies(['10.0.0.0/8', '::1'])"
    assert proxies == parse_trusted_proxies(["10.0.0.0/8", "::1"])
    assert proxies != parse_trusted_proxies(["10.0.0.0/8"])
    assert hash(proxies) == hash(parse_trusted_proxies(["10.0.0.0/8", "::1"]))
    assert proxies != "10.0.0.0/8, ::1"


@pytest.mark.parametrize(
    ("value", "entry", "reason"),
    [
        ("localhost", "localhost", "'localhost' does not appear to be an IPv4 or IPv6 network"),
        ("10.0.0.1/8", "10.0.0.1/8", "10.0.0.1/8 has host bits set"),
        (
            ["10.0.0.0/33"],
            "10.0.0.0/33",
            "'10.0.0.0/33' does not appear to be an IPv4 or IPv6 network",
        ),
        ("10.0.0.1,", "", "'' does not appear to be an IPv4 or IPv6 network"),
        (["256.0.0.1"], "256.0.0.1", "'256.0.0.1' does not appear to be an IPv4 or IPv6 network"),
        (
            ["10.0.0.1:80"],
            "10.0.0.1:80",
            "'10.0.0.1:80' does not appear to be an IPv4 or IPv6 network",
        ),
    ],
)
def test_parse_invalid_entry(value: object, entry: str, reason: str) -> None:
    expected = f"trusted_proxies contains an invalid entry {entry!r} ({reason}); {ACCEPTED}"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        parse_trusted_proxies(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [5, b"127.0.0.1", True, 1.5])
def test_parse_invalid_type(value: object) -> None:
    expected = f"trusted_proxies must be a str or an iterable of str, got {value!r}; {ACCEPTED}"
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        parse_trusted_proxies(value)  # type: ignore[arg-type]


def test_parse_invalid_entry_type() -> None:
    value = ["127.0.0.1", 10]
    expected = f"trusted_proxies entries must be str, got 10 in {value!r}; {ACCEPTED}"
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        parse_trusted_proxies(value)  # type: ignore[arg-type]


def test_trusted_proxies_constructor_validates() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        TrustedProxies(["nope"])


# --- normalize_ip_address -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        (" 192.0.2.1 ", "192.0.2.1"),
        ("192.0.2.1:8080", "192.0.2.1"),
        ("[::ffff:192.0.2.1]:80", "192.0.2.1"),
        ("2001:DB8:0::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("unknown", None),
        ("", None),
        ("[]", None),
        ("1.2.3", None),
        ("1.2.3.4.5", None),
        ("::g", None),
        ("1.2.3.4\n", None),
        ("fe80::1%" + "e" * 15, "fe80::1"),
        # Longer than any valid form: rejected before parsing.
        ("fe80::1%" + "e" * 100, None),
    ],
)
def test_normalize_ip_address(text: str, expected: str | None) -> None:
    assert normalize_ip_address(text) == expected


def test_normalize_ip_address_non_str() -> None:
    assert normalize_ip_address(None) is None  # type: ignore[arg-type]


# --- Property-based: random header bytes ----------------------------------------

HOST_SAFE = re.compile(r"[a-z0-9_.\-:\[\]]+")

FORWARDING_NAMES = [b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"]

# Bytes that matter to the parsers, mixed with arbitrary ones.
SYNTAX_PIECES = [
    b",", b";", b"=", b'"', b"\\", b"[", b"]", b":", b"%", b" ", b"\t", b"for", b"proto",
    b"host", b"unknown", b"_x", b"1", b"192.0.2.1", b"2001:db8::1", b"::ffff:", b"https",
    b"\xff", b"\x00",
]  # fmt: skip
syntax_bytes = st.lists(
    st.sampled_from(SYNTAX_PIECES) | st.binary(max_size=6),
    max_size=20,
).map(b"".join)
header_value = st.binary(max_size=80) | syntax_bytes
header = st.tuples(st.sampled_from([*FORWARDING_NAMES, b"host", b"cookie"]), header_value)
peer = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(["127.0.0.1", "::1", "10.0.0.1", "198.51.100.1", "fe80::1%lo", "x"]),
        st.integers(0, 65535),
    ),
    st.tuples(st.text(max_size=20), st.integers()),
)
trusted_values = st.sampled_from([None, "*", "unix", INTERNAL, "0.0.0.0/0, ::/0", ""])


def assert_valid_result(resolved: ResolvedClient) -> None:
    if resolved.ip is not None:
        assert "%" not in resolved.ip
        address = ipaddress.ip_address(resolved.ip)
        assert str(address) == resolved.ip
        assert not (isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped)
        # What is sent as `cip` after anonymisation is a valid address as well.
        for level in (1, 2, 3):
            masked = anonymize_ip(resolved.ip, level)
            assert masked is not None
            assert str(ipaddress.ip_address(masked)) == masked
    assert resolved.scheme in (None, "http", "https")
    if resolved.host is not None:
        assert HOST_SAFE.fullmatch(resolved.host)


@settings(max_examples=500)
@given(trusted=trusted_values, client=peer, headers=st.lists(header, max_size=6))
def test_resolve_random_headers_never_raise(
    trusted: object, client: object, headers: Headers
) -> None:
    resolved = parse_trusted_proxies(trusted).resolve(client, headers)  # type: ignore[arg-type]
    assert_valid_result(resolved)


@settings(max_examples=300)
@given(
    client_ip=st.sampled_from(["198.51.100.1", "2001:db8::5", "11.0.0.1"]),
    headers=st.lists(header, max_size=6),
)
def test_untrusted_peer_headers_have_no_effect(client_ip: str, headers: Headers) -> None:
    resolved = parse_trusted_proxies(INTERNAL).resolve((client_ip, 1), headers)
    assert resolved == ResolvedClient(client_ip, None, None)


@settings(max_examples=300)
@given(forwarded=syntax_bytes, extra=st.lists(syntax_bytes, max_size=3))
def test_forwarded_random_syntax_never_raises(forwarded: bytes, extra: list[bytes]) -> None:
    headers = [(b"forwarded", forwarded)] + [(b"forwarded", value) for value in extra]
    assert_valid_result(parse_trusted_proxies("*").resolve(LOOPBACK, headers))


# --- peer_ip: the result of resolve() for a request without forwarding headers -------


def test_forwarding_headers_are_the_ones_resolve_reads() -> None:
    assert set(FORWARDING_HEADERS) == set(FORWARDING_NAMES)


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        (("127.0.0.1", 51000), "127.0.0.1"),
        (("::ffff:192.0.2.1", 1), "192.0.2.1"),
        (("fe80::1%lo", 1), "fe80::1"),
        (None, None),
        (("not an address", 1), None),
        ((b"127.0.0.1", 1), None),
        ((), None),
    ],
)
def test_peer_ip(client: object, expected: str | None) -> None:
    assert peer_ip(client) == expected


@settings(max_examples=300)
@given(
    trusted=trusted_values,
    client=peer,
    headers=st.lists(
        st.tuples(st.sampled_from([b"host", b"cookie", b"user-agent"]), header_value),
        max_size=4,
    ),
)
def test_peer_ip_matches_resolve_without_forwarding_headers(
    trusted: object, client: object, headers: Headers
) -> None:
    resolved = parse_trusted_proxies(trusted).resolve(client, headers)  # type: ignore[arg-type]
    assert resolved == ResolvedClient(peer_ip(client), None, None)
