"""Build the tracked URL and the routing path of an ASGI HTTP request."""

from __future__ import annotations

import functools
import re
from urllib.parse import quote, quote_from_bytes

from .privacy import REDACTED, QueryRedactor
from .proxies import _valid_host as valid_host

# Matomo keeps at most 1,024 characters of a URL (scheme included) and of an
# action name, and cuts the rest without an error (Matomo 4.12 and 5).
MAX_URL_LENGTH = 1024

# Characters kept as they are when a decoded path is percent-encoded again:
# the RFC 3986 sub-delimiters plus ":" and "@", which may appear in a path
# segment, and "/" between segments. "%" is not among them, so a literal "%"
# in a decoded path becomes "%25".
_PATH_SAFE = "/!$&'()*+,;=:@~"

# Characters kept when raw bytes from the request line are escaped. "%" stays
# so that the client's own escapes survive, and "?" stays because it is
# allowed inside a query.
_RAW_PATH_SAFE = "/!$&'()*+,;=:@~%"
_RAW_QUERY_SAFE = "/!$&'()*+,;=:@~%?"

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HASH = ord("#")

# A path parameter behind an escaped ";", such as "%3Bjsessionid%3DABC". The
# name runs to the first "=" or "%3D", and the value to the next "/", ";" or
# "%3B".
_ENCODED_PATH_PARAMETER = re.compile(
    r"(?P<start>%3[Bb])(?P<name>(?:[^/;=%]|%(?!3[BbDd]))*)(?P<equals>=|%3[Dd])"
    r"(?P<value>(?:[^/;%]|%(?!3[Bb]))*)"
)


def origin_path(target: str) -> str:
    """Return the path of a request target that does not start with "/".

    With h11, uvicorn (checked with 0.55) puts the target of ``GET
    http://host:8080/x HTTP/1.1`` (absolute form) into ``path`` and
    ``raw_path`` as it is, and ``OPTIONS * HTTP/1.1`` as ``"*"``. The path of
    an absolute URL is kept, and any other target becomes ``"/"``.
    """
    scheme_end = target.find("://")
    if scheme_end > 0:
        path_start = target.find("/", scheme_end + 3)
        if path_start > 0:
            return target[path_start:]
    return "/"


def route_path(path: str, root_path: str) -> str:
    """Return the path the application routes on: ``path`` below ``root_path``.

    Current uvicorn (checked with 0.55) and Starlette's ``Mount`` put
    ``root_path`` at the start of ``scope["path"]``, while older servers leave
    it out. Both forms give the same result.
    """
    if path[:1] != "/":
        path = origin_path(path)
    if not root_path or not path.startswith(root_path):
        return path
    if len(path) == len(root_path):
        return "/"
    if path[len(root_path)] == "/":
        return path[len(root_path) :]
    # "/apiary" below the root path "/api" is not inside it.
    return path


def full_path(path: str, root_path: str) -> str:
    """Return the decoded path as the client sees it, with ``root_path`` in front."""
    if path[:1] != "/":
        path = origin_path(path)
    if not root_path or path.startswith(root_path):
        return path
    return root_path + path


def encoded_path(raw_path: object, path: str, root_path: str) -> str:
    """Return the percent-encoded path of the request, ``root_path`` included.

    ``raw_path`` contains the bytes the client sent, so its escapes are kept as
    they were. Bytes outside ASCII, and a "#" that h11 lets through, are
    escaped. Without ``raw_path`` the decoded ``path`` is encoded again.
    """
    if isinstance(raw_path, bytes) and raw_path:
        # The ASGI spec leaves the query out of raw_path. Cutting at "?" keeps a
        # server that includes it anyway from doubling the query in the URL.
        raw_path = raw_path.partition(b"?")[0]
        # Slicing and int membership instead of startswith() and b"#" in,
        # which cost two to ten times as much on short bytes.
        if raw_path[:1] != b"/":
            raw_path = origin_path(raw_path.decode("latin-1")).encode("latin-1")
        if root_path:
            root_bytes = quote(root_path, safe=_PATH_SAFE).encode("ascii")
            if not (raw_path == root_bytes or raw_path.startswith(root_bytes + b"/")):
                raw_path = root_bytes + raw_path
        if raw_path.isascii():
            if _HASH in raw_path:
                raw_path = raw_path.replace(b"#", b"%23")
            return raw_path.decode("ascii")
        return quote_from_bytes(raw_path, safe=_RAW_PATH_SAFE)
    return quote(full_path(path, root_path), safe=_PATH_SAFE)


def redact_encoded_path_parameters(path: str, redactor: QueryRedactor) -> str:
    """Redact path parameters behind an escaped ";" (``/a%3Bjsessionid%3DABC``).

    The decoded ``action_name`` shows such a parameter as ``;jsessionid=ABC``,
    where :meth:`QueryRedactor.redact_path` redacts it, so the url gets the
    same treatment. Names are compared after percent-decoding.
    """

    def replace(match: re.Match[str]) -> str:
        if not match["value"] or not redactor.is_redacted(match["name"]):
            return match[0]
        return f"{match['start']}{match['name']}{match['equals']}{REDACTED}"

    return _ENCODED_PATH_PARAMETER.sub(replace, path)


def decode_query(query_string: bytes) -> str:
    """Return the query string as text, escaping any bytes outside ASCII.

    The bytes are the ones the client sent, so their percent-escapes are kept.
    Decoding them to ``str`` here is what keeps a bytes repr such as
    ``b'a=1'`` out of the tracked URL.
    """
    if query_string.isascii():
        return query_string.decode("ascii")
    return quote_from_bytes(query_string, safe=_RAW_QUERY_SAFE)


# Maximum length of a valid host: a 253-character name, a trailing "." and ":65535".
_MAX_CACHED_HOST_LENGTH = 260


def host_authority(host_header: str, scheme: str, seen_scheme: str) -> str | None:
    """Return the authority of the tracked URL from a Host header, or None for an invalid host.

    The host is in lower case, and a port that is the default one of
    ``scheme`` or ``seen_scheme`` is removed (see :func:`strip_default_port`).
    A valid host is a DNS name, an IPv4 address or a bracketed IPv6 address,
    with an optional port from 1 to 65535, as for forwarded hosts. Anything
    that could change the structure of the tracked URL, such as "/", "?",
    "#", "@" or a space, is rejected.

    The Host header repeats on every request, so the result is cached. The
    cache stores at most 256 headers of at most 260 characters each, so a client
    that sends random or huge hosts costs only the check.
    """
    if len(host_header) > _MAX_CACHED_HOST_LENGTH:
        return _host_authority(host_header, scheme, seen_scheme)
    return _cached_host_authority(host_header, scheme, seen_scheme)


def _host_authority(host_header: str, scheme: str, seen_scheme: str) -> str | None:
    host = valid_host(host_header)
    if host is None:
        return None
    return strip_default_port(host, scheme, seen_scheme)


_cached_host_authority = functools.lru_cache(maxsize=256)(_host_authority)


def server_authority(server: object, scheme: str, seen_scheme: str) -> str:
    """Return ``host[:port]`` from ``scope["server"]``, or "localhost" when it is missing.

    The port is left out when it is the default one of ``scheme`` or of
    ``seen_scheme``, as :func:`strip_default_port` does for a Host header. A
    server listening on a Unix socket reports ``(path, None)``, which carries
    no host.
    """
    if not isinstance(server, tuple | list) or len(server) != 2 or server[1] is None:
        return "localhost"
    host, port = server
    if ":" in host:
        host = f"[{host}]"
    if port == _DEFAULT_PORTS.get(scheme) or port == _DEFAULT_PORTS.get(seen_scheme):
        return str(host)
    return f"{host}:{port}"


def strip_default_port(authority: str, scheme: str, seen_scheme: str) -> str:
    """Remove a port from ``authority`` when it is the default one of the URL.

    ``scheme`` is the scheme of the tracked URL and ``seen_scheme`` the one the
    application saw. With ``assume_https`` a request that reached the app over
    http on port 80 is tracked as https, so port 80 goes as well.
    """
    host, colon, port = authority.rpartition(":")
    if not colon or "]" in port or not port.isdigit():
        # No port, or the last ":" belongs to an IPv6 address without brackets.
        return authority
    number = int(port)
    if number == _DEFAULT_PORTS.get(scheme) or number == _DEFAULT_PORTS.get(seen_scheme):
        return host
    return authority


def build_url(scheme: str, authority: str, path: str, query: str) -> str:
    """Join the parts of the tracked URL and cut it to Matomo's length limit."""
    url = f"{scheme}://{authority}{path}?{query}" if query else f"{scheme}://{authority}{path}"
    return truncate_encoded(url, MAX_URL_LENGTH)


def truncate_encoded(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters without leaving half of a ``%XX`` escape."""
    if len(text) <= limit:
        return text
    text = text[:limit]
    percent = text.rfind("%", limit - 2)
    if percent != -1:
        text = text[:percent]
    return text
