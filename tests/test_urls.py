"""URL pieces of the tracked URL: authority from Host or server, default ports, length limit."""

from __future__ import annotations

import re

import pytest

from asgi_matomo import urls


@pytest.mark.parametrize(
    ("host_header", "scheme", "seen_scheme", "expected"),
    [
        ("Shop.Example.org", "https", "http", "shop.example.org"),
        ("shop.example.org:443", "https", "https", "shop.example.org"),
        # assume_https tracks an http request on port 80 as https without the port.
        ("shop.example.org:80", "https", "http", "shop.example.org"),
        ("shop.example.org:8080", "https", "http", "shop.example.org:8080"),
        ("127.0.0.1:8000", "https", "http", "127.0.0.1:8000"),
        ("[::1]:443", "https", "https", "[::1]"),
        ("[::1]:8443", "https", "https", "[::1]:8443"),
        ("shop.example.org/evil", "https", "http", None),
        ("user@shop.example.org", "https", "http", None),
        ("shop.example.org:0", "https", "http", None),
        ("shop.example.org:65536", "https", "http", None),
        ("", "https", "http", None),
    ],
)
def test_host_authority_table(
    host_header: str, scheme: str, seen_scheme: str, expected: str | None
) -> None:
    assert urls.host_authority(host_header, scheme, seen_scheme) == expected


def test_host_authority_cache_is_bounded() -> None:
    for number in range(1000):
        urls.host_authority(f"host{number}.example", "https", "http")

    info = urls._cached_host_authority.cache_info()
    assert info.currsize <= 256


def test_long_host_header_not_cached() -> None:
    urls._cached_host_authority.cache_clear()

    assert urls.host_authority("a" * 100_000, "https", "http") is None
    assert urls._cached_host_authority.cache_info().currsize == 0


def test_longest_valid_host_is_cached() -> None:
    urls._cached_host_authority.cache_clear()
    host = "a" * 253 + ".:65535"

    assert urls.host_authority(host, "https", "http") == host
    assert urls._cached_host_authority.cache_info().currsize == 1


@pytest.mark.parametrize(
    ("server", "scheme", "seen_scheme", "expected"),
    [
        (("10.0.0.5", 8000), "https", "http", "10.0.0.5:8000"),
        (("10.0.0.5", 443), "https", "https", "10.0.0.5"),
        (("::1", 8000), "http", "http", "[::1]:8000"),
        (("/run/app.sock", None), "https", "http", "localhost"),
        (None, "https", "http", "localhost"),
    ],
)
def test_server_authority_table(
    server: object, scheme: str, seen_scheme: str, expected: str
) -> None:
    assert urls.server_authority(server, scheme, seen_scheme) == expected


def test_build_url_cuts_to_limit_without_half_escape() -> None:
    path = "/" + "%C3%A9" * 400

    url = urls.build_url("https", "shop.example.org", path, "")

    assert len(url) <= urls.MAX_URL_LENGTH
    assert re.search(r"%[0-9A-F]?$", url) is None
    assert url.startswith("https://shop.example.org/%C3%A9")
