"""Privacy: IP anonymisation, Do Not Track / Global Privacy Control, URL redaction.

Everything here is pure and runs on the request path. The option parsers run
once, when the middleware is constructed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, MutableMapping
from typing import Literal, TypeAlias
from urllib.parse import unquote_plus

from .proxies import parse_address

__all__ = [
    "ANONYMIZE_IP_LEVELS",
    "DEFAULT_REDACTED_QUERY_PARAMS",
    "IDENTIFYING_PARAMETERS",
    "PRIVACY_SIGNAL_MODES",
    "REDACTED",
    "PrivacySignalMode",
    "QueryRedactor",
    "anonymize_ip",
    "has_privacy_signal",
    "parse_anonymize_ip",
    "parse_privacy_signals",
    "parse_redact_query_params",
    "strip_identifying_parameters",
]

# --- IP anonymisation -------------------------------------------------------

# Masks of Matomo's own IP anonymisation, from IPv4::anonymize() and
# IPv6::anonymize() of its matomo/network component, version 2.0.1 as locked
# in Matomo 4's composer.lock. Level n zeroes the last n bytes of an IPv4
# address. For IPv6 the levels keep the first 64, 48 and 24 bits. An IPv6
# address whose first 12 bytes are ::ffff: (IPv4-mapped) or zero
# (IPv4-compatible) has its last n bytes zeroed, like IPv4.
_IPV4_MASKS = (0xFFFFFFFF, 0xFFFFFF00, 0xFFFF0000, 0xFF000000)
_IPV6_MASKS = tuple(((1 << bits) - 1) << (128 - bits) for bits in (128, 64, 48, 24))
_IPV6_PREFIX_MASK = ((1 << 96) - 1) << 32
ANONYMIZE_IP_LEVELS = (0, 1, 2, 3)


def anonymize_ip(address: str, level: int) -> str | None:
    """Mask ``address`` the way Matomo anonymises IPs at ``level`` (0 to 3).

    ``anonymize_ip("192.0.2.77", 2)`` gives ``"192.0.0.0"`` and
    ``anonymize_ip("2001:db8:1:2::7", 1)`` gives ``"2001:db8:1:2::"``. The
    address is normalized first, as :func:`~asgi_matomo.proxies.normalize_ip_address`
    does, so an IPv4-mapped IPv6 address comes back as IPv4. Level 0 only
    normalizes. Returns None when ``address`` is not a valid IP address and
    raises ValueError for another level.
    """
    if level not in ANONYMIZE_IP_LEVELS:
        raise ValueError(f"anonymize_ip level must be 0, 1, 2 or 3, got {level!r}")
    parsed = parse_address(address) if isinstance(address, str) else None
    if parsed is None:
        return None
    if level == 0:
        return parsed.text

    if parsed.version == 4:
        return str(ipaddress.IPv4Address(parsed.value & _IPV4_MASKS[level]))
    prefix = parsed.value & _IPV6_PREFIX_MASK
    if prefix == 0:
        # IPv4-compatible (::a.b.c.d): Matomo masks its last bytes like IPv4.
        masked = parsed.value & _IPV4_MASKS[level]
    else:
        masked = parsed.value & _IPV6_MASKS[level]
    return str(ipaddress.IPv6Address(masked))


def parse_anonymize_ip(value: object) -> int:
    """Parse the ``anonymize_ip`` option: bytes of IPv4 to mask, 0 to 3.

    An int or a str of one digit. IPv6 addresses get Matomo's matching masks:
    level 1 keeps the first 64 bits, level 2 the first 48 and level 3 the
    first 24.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(
            f"anonymize_ip must be an int from 0 to 3, got {value!r}; "
            "0 sends the full address and 1, 2 or 3 mask that many bytes of IPv4"
        )
    level: int | None = None
    if isinstance(value, int):
        level = value
    elif value.strip().isdigit() and value.strip().isascii():
        level = int(value.strip())
    if level not in ANONYMIZE_IP_LEVELS:
        raise ValueError(
            f"anonymize_ip must be 0, 1, 2 or 3, got {value!r}; "
            "0 sends the full address and 1, 2 or 3 mask that many bytes of IPv4"
        )
    return level


# --- Do Not Track and Global Privacy Control --------------------------------

PrivacySignalMode: TypeAlias = Literal["ignore", "skip", "strip"]
PRIVACY_SIGNAL_MODES: tuple[PrivacySignalMode, ...] = ("ignore", "skip", "strip")

# Request headers that carry a privacy signal when their value is "1":
# DNT (W3C Tracking Preference Expression) and Sec-GPC (Global Privacy
# Control). Browsers send neither header when the user made no choice, and
# "DNT: 0" means the user allows tracking.
_SIGNAL_HEADERS = frozenset((b"dnt", b"sec-gpc"))

# Parameters that identify a visitor or their location. "strip" removes them
# from a hit, so Matomo still counts the page view but cannot tie it to a
# person or a device:
# - cip is the client IP, _id and cid the visitor id, uid the user id.
# - _idts, _idvc, _viewts and _ects are a visitor's first visit time, visit
#   count, previous visit time and last order time. Together they make a
#   returning visitor recognisable.
# - _cvar contains visit-scope custom variables, which may include account data.
# - country, region, city, lat and long override the visitor's location.
IDENTIFYING_PARAMETERS: frozenset[str] = frozenset(
    (
        "cip",
        "_id",
        "cid",
        "uid",
        "_idts",
        "_idvc",
        "_viewts",
        "_ects",
        "_cvar",
        "country",
        "region",
        "city",
        "lat",
        "long",
    )
)


def has_privacy_signal(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Return True when the request carries ``DNT: 1`` or ``Sec-GPC: 1``."""
    return any(name in _SIGNAL_HEADERS and value.strip(b" \t") == b"1" for name, value in headers)


def parse_privacy_signals(value: object) -> PrivacySignalMode:
    """Parse the ``privacy_signals`` option, case-insensitively.

    ``"ignore"`` tracks as usual, ``"skip"`` sends no hit for a request with
    ``DNT: 1`` or ``Sec-GPC: 1``, and ``"strip"`` sends the hit without the
    :data:`IDENTIFYING_PARAMETERS`.
    """
    if isinstance(value, str):
        mode = value.strip().lower()
        if mode in PRIVACY_SIGNAL_MODES:
            return mode
    raise ValueError(
        f"privacy_signals must be 'ignore', 'skip' or 'strip', got {value!r}; "
        "'skip' sends no hit for requests with DNT: 1 or Sec-GPC: 1, "
        "'strip' sends them without visitor ids, user id and IP"
    )


def strip_identifying_parameters(hit: MutableMapping[str, str | int]) -> None:
    """Remove the :data:`IDENTIFYING_PARAMETERS` from ``hit`` in place."""
    for name in IDENTIFYING_PARAMETERS.intersection(hit):
        del hit[name]


# --- Redaction of secrets in URLs -------------------------------------------

# Query parameter names that commonly carry secrets. Names are compared after
# percent-decoding, in lower case and without '-', '_', '.', ' ', '[' and ']',
# so "access_token", "Access-Token", "accessToken" and "user[access_token]"
# all end in "accesstoken". An entry starting with '*' matches every name that
# ends with the rest: "*token" covers access, refresh, id, CSRF, reset and
# invitation tokens and AWS's X-Amz-Security-Token.
# The list covers OAuth 2 and OpenID Connect (tokens, the authorization code,
# client credentials), OAuth 1, API keys, passwords and sessions. It also
# covers signed URLs (AWS S3, Google Cloud Storage, Azure SAS "sig"), single
# sign-on (SAML responses, CAS tickets, one-time passwords) and Matomo's own
# token_auth.
DEFAULT_REDACTED_QUERY_PARAMS: tuple[str, ...] = (
    "*token",
    "*secret",
    "*password",
    "*passwd",
    "*apikey",
    "*signature",
    "*sessionid",
    "*credential",
    "*credentials",
    "token_auth",
    "auth",
    "authorization",
    "jwt",
    "code",
    "client_assertion",
    "oauth_verifier",
    "key",
    "access_key",
    "secret_key",
    "private_key",
    "awsaccesskeyid",
    "pwd",
    "passphrase",
    "session",
    "sid",
    "phpsessid",
    "sig",
    "samlresponse",
    "ticket",
    "otp",
)

# The value that replaces a redacted parameter value or URL password. Only
# letters, so it needs no percent-encoding anywhere in a URL.
REDACTED = "REDACTED"

# Both '&' and ';' separate the pairs of a query string, because some servers
# split query strings on ';' too.
_QUERY_SEPARATORS = re.compile(r"([&;])")
# One parameter of a path segment, such as ";jsessionid=...". It is applied to
# a path alone, so a '?' or '#' in it is part of the path (a decoded "%3F").
_PATH_PARAMETER = re.compile(r";(?P<name>[^;/=]*)=(?P<value>[^;/]*)")
_NAME_SEPARATORS = str.maketrans("", "", "-_. []")
_SUFFIX_MARK = "*"


# Each redactor remembers whether a parameter name is redacted, because the
# same few names repeat on most requests. Names longer than this are rare and
# are not remembered. When the cache reaches its maximum size it is emptied,
# so names sent once (even many of them) cannot keep the common ones out.
_CACHED_NAME_LENGTH = 64
_MAX_CACHED_NAMES = 1024


def _normalize_name(name: str) -> str:
    if "%" in name or "+" in name:
        name = unquote_plus(name, errors="replace")
    return name.lower().translate(_NAME_SEPARATORS)


class QueryRedactor:
    """Replace the values of secret query parameters in URLs with ``REDACTED``.

    Built once by :func:`parse_redact_query_params`. See
    :data:`DEFAULT_REDACTED_QUERY_PARAMS` for how names are compared.
    Everything except the redacted values is kept byte for byte.
    """

    __slots__ = ("_names", "_params", "_suffixes", "_verdicts")

    def __init__(self, params: Iterable[str]) -> None:
        self._params: tuple[str, ...] = tuple(params)
        names: set[str] = set()
        suffixes: set[str] = set()
        for param in self._params:
            if param.startswith(_SUFFIX_MARK):
                suffixes.add(_normalize_name(param[len(_SUFFIX_MARK) :]))
            else:
                names.add(_normalize_name(param))
        self._names = frozenset(names)
        # A tuple, because str.endswith() takes one.
        self._suffixes = tuple(sorted(suffixes))
        # is_redacted() of raw parameter names seen so far.
        self._verdicts: dict[str, bool] = {}

    @property
    def params(self) -> tuple[str, ...]:
        """The parameter names and '*' suffix patterns as given."""
        return self._params

    @property
    def enabled(self) -> bool:
        """False when no query parameter is redacted."""
        return bool(self._names or self._suffixes)

    def __repr__(self) -> str:
        return f"QueryRedactor({list(self._params)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QueryRedactor):
            return NotImplemented
        return self._names == other._names and self._suffixes == other._suffixes

    def __hash__(self) -> int:
        return hash((self._names, self._suffixes))

    def is_redacted(self, name: str) -> bool:
        """Return True when the values of query parameter ``name`` are redacted."""
        verdict = self._verdicts.get(name)
        if verdict is not None:
            return verdict
        normalized = _normalize_name(name)
        verdict = normalized in self._names or normalized.endswith(self._suffixes)
        if len(name) <= _CACHED_NAME_LENGTH:
            if len(self._verdicts) >= _MAX_CACHED_NAMES:
                self._verdicts.clear()
            self._verdicts[name] = verdict
        return verdict

    def _replace_path_parameter(self, match: re.Match[str]) -> str:
        if not match["value"] or not self.is_redacted(match["name"]):
            return match[0]
        return f";{match['name']}={REDACTED}"

    def redact_query(self, query: str) -> str:
        """Redact a query string given without its leading '?'."""
        if "=" not in query or not self.enabled:
            return query
        if "#" in query:
            before, _, after = query.partition("#")
            return f"{self.redact_query(before)}#{self.redact_query(after)}"

        parts = _QUERY_SEPARATORS.split(query) if ";" in query else query.split("&")
        changed = False
        known = self._verdicts.get
        for index, part in enumerate(parts):
            name, _, value = part.partition("=")
            if not value:
                continue
            # The cache lookup is inlined because this loop runs for every
            # parameter of every tracked URL and referrer.
            verdict = known(name)
            if verdict is None:
                verdict = self.is_redacted(name)
            if verdict:
                parts[index] = f"{name}={REDACTED}"
                changed = True
        if not changed:
            return query
        # Separators kept by the ';' split contain no '=', so they are unchanged.
        return "".join(parts) if ";" in query else "&".join(parts)

    def redact_path(self, path: str) -> str:
        """Redact path parameters (``/a;jsessionid=...``) in a path without query string.

        ``path`` may be percent-encoded or decoded. Parameter names are
        compared as in a query string.
        """
        if ";" not in path or not self.enabled:
            return path
        return _PATH_PARAMETER.sub(self._replace_path_parameter, path)

    def redact_url(self, url: str) -> str:
        """Redact an absolute or relative URL, such as the ``url`` and ``urlref`` values.

        Covers the query string, path parameters (``/a;jsessionid=...``), a
        fragment written as a query (``#access_token=...``) and the password of
        ``user:password@`` in the authority. The password is redacted even when
        no query parameter is.
        """
        if "@" not in url:
            if "=" not in url or not self.enabled:
                return url
            if "#" not in url and ";" not in url:
                # The common case, such as most referrers: only the query can
                # contain a secret.
                before_query, question_mark, query = url.partition("?")
                redacted_query = self.redact_query(query)
                if redacted_query is query:
                    return url
                return f"{before_query}{question_mark}{redacted_query}"

        before_fragment, hash_mark, fragment = url.partition("#")
        before_query, question_mark, query = before_fragment.partition("?")
        redacted_before = _redact_password(before_query)
        redacted_query = query
        redacted_fragment = fragment
        if self.enabled:
            redacted_before = self.redact_path(redacted_before)
            redacted_query = self.redact_query(query)
            redacted_fragment = self.redact_query(fragment)
        if (
            redacted_before is before_query
            and redacted_query is query
            and redacted_fragment is fragment
        ):
            # Every step returns its argument itself when it changes nothing.
            return url
        return f"{redacted_before}{question_mark}{redacted_query}{hash_mark}{redacted_fragment}"


def _redact_password(url_before_query: str) -> str:
    """Replace the password in ``scheme://user:password@host``."""
    if "@" not in url_before_query:
        return url_before_query
    scheme_end = url_before_query.find("//")
    if scheme_end < 0:
        return url_before_query
    authority_start = scheme_end + 2
    authority_end = url_before_query.find("/", authority_start)
    if authority_end < 0:
        authority_end = len(url_before_query)
    authority = url_before_query[authority_start:authority_end]
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return url_before_query
    user, colon, password = userinfo.partition(":")
    if not colon or not password:
        return url_before_query
    return (
        f"{url_before_query[:authority_start]}{user}:{REDACTED}@{host}"
        f"{url_before_query[authority_end:]}"
    )


def parse_redact_query_params(value: Iterable[str] | None) -> QueryRedactor:
    """Parse the ``redact_query_params`` option.

    An iterable of query parameter names, where ``"*suffix"`` matches every
    name ending in ``suffix``. None means :data:`DEFAULT_REDACTED_QUERY_PARAMS`.
    An empty iterable turns query redaction off, though URL passwords are still
    redacted. To add names to the default, pass
    ``[*DEFAULT_REDACTED_QUERY_PARAMS, "my_param"]``.
    """
    if value is None:
        return QueryRedactor(DEFAULT_REDACTED_QUERY_PARAMS)
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Iterable):
        raise TypeError(
            f"redact_query_params must be an iterable of str such as "
            f"['token', 'password'], got {value!r}"
        )
    params: list[str] = []
    for item in value:
        name = item.strip() if isinstance(item, str) else ""
        if not _normalize_name(name.removeprefix(_SUFFIX_MARK)) or _SUFFIX_MARK in name[1:]:
            raise ValueError(
                f"redact_query_params must contain query parameter names such as "
                f"'token', or '*token' for every name ending in 'token', "
                f"got {item!r} in {value!r}"
            )
        params.append(name)
    return QueryRedactor(params)
