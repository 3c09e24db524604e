"""Trusted reverse proxies: the client address, scheme and host of a forwarded request.

A reverse proxy or load balancer connects to the application itself, so the ASGI
peer (``scope["client"]``) is the proxy. The proxy reports the original client
in forwarding headers, but any client can send those headers too. They are read
only when the direct peer is in ``trusted_proxies``.

Rules:

* Untrusted peer: the client is the peer. Forwarding headers are ignored, so a
  client that is not behind a trusted proxy cannot choose its address, scheme or
  host.
* Trusted peer: each proxy appends the address it received the request from,
  so the list is read from the right. Trusted hops are skipped and the first
  untrusted address is the client. When every hop is trusted, the leftmost hop
  is the client. With ``"*"`` every peer and every hop is trusted.
* Unix domain sockets: uvicorn reports no address for such a peer
  (``scope["client"]`` is None). The entry ``"unix"`` trusts a peer without an
  IP address, for a proxy that connects through a socket file.
* A hop that is not a valid IP address (``unknown``, an RFC 7239 obfuscated
  identifier such as ``_hidden``, garbage) ends the walk with no client
  address. The trusted proxy to its right did not know the client, and every
  hop further left was written by that unknown node.
* Header families: when the request carries any of X-Forwarded-For,
  X-Forwarded-Proto or X-Forwarded-Host, only those are read and RFC 7239
  ``Forwarded`` is ignored. ``Forwarded`` is read only when none of them is
  present. nginx and HAProxy, as usually configured, set the X-Forwarded
  headers and pass a client's ``Forwarded`` header through unchanged. Mixing
  both families would let such a client choose the fields its proxy did not
  set.
* The scheme and host come from the hop where the walk stopped. In
  ``Forwarded`` that is the same element. X-Forwarded-Proto and
  X-Forwarded-Host lists are aligned with X-Forwarded-For from the right,
  which matches proxies that append to all three. A proxy that overwrites them
  leaves one value, which is then used. A scheme other than http or https, or a host that
  is not a valid ``host[:port]``, is ignored.

Returned addresses are normalized: IPv4-mapped IPv6 addresses become IPv4, zone
ids (``%eth0``) are dropped and IPv6 is written in its compressed form.

Header names are expected in lower case, as the ASGI servers and Starlette
produce them.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = [
    "DEFAULT_TRUSTED_PROXIES",
    "FORWARDING_HEADERS",
    "ParsedAddress",
    "ResolvedClient",
    "TrustedProxies",
    "normalize_ip_address",
    "parse_address",
    "parse_trusted_proxies",
    "peer_ip",
]

# Loopback only, like uvicorn's --forwarded-allow-ips default: a proxy on the
# same machine (nginx in front of the app server) works without configuration.
DEFAULT_TRUSTED_PROXIES: tuple[str, ...] = ("127.0.0.1", "::1")

_ACCEPTED = (
    "expected an IP address such as '10.0.0.7' or '2001:db8::7', "
    "a CIDR network such as '10.0.0.0/8' or '2001:db8::/32', "
    "'unix' to trust a peer without an IP address (a Unix domain socket), "
    "or '*' to trust every peer"
)
_TRUST_ALL = "*"
_TRUST_UNIX = "unix"

_X_FORWARDED_FOR = b"x-forwarded-for"
_X_FORWARDED_PROTO = b"x-forwarded-proto"
_X_FORWARDED_HOST = b"x-forwarded-host"
_FORWARDED = b"forwarded"
# The header names (lower case) that resolve() reads. A request without any
# of them is resolved by peer_ip() alone.
FORWARDING_HEADERS: frozenset[bytes] = frozenset(
    (_X_FORWARDED_FOR, _X_FORWARDED_PROTO, _X_FORWARDED_HOST, _FORWARDED)
)

_SCHEMES = frozenset(("http", "https"))

# A Host header value: a DNS name or IPv4 literal, or a bracketed IPv6
# literal, with an optional port. Nothing that could change the structure of
# the tracked URL (/ ? # @ \ whitespace) can pass.
_HOST = re.compile(
    r"(?P<name>[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?\.?|\[(?P<ipv6>[0-9a-f:.]{2,45})\])"
    r"(?::(?P<port>[0-9]{1,5}))?",
    re.ASCII,
)

# One RFC 7239 forwarded-pair: token "=" (token / quoted-string). An unquoted
# value may also contain characters outside the token grammar, such as the ':'
# of "for=192.0.2.1:8080", because several proxies send such values unquoted.
# The value itself is validated afterwards.
_FORWARDED_PAIR = re.compile(
    r"(?P<name>[!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*=[ \t]*"
    r'(?P<value>"(?:[^"\\]|\\.)*"|[^;,"\s]*)',
    re.DOTALL,
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_SPACE = " \t"


class ResolvedClient(NamedTuple):
    """The client of one request as reported by the trusted proxies.

    ``ip`` is None when the address is unknown or invalid. ``scheme`` and
    ``host`` are None when no trusted proxy reported a valid value, so the
    request's own scheme and Host header apply.
    """

    ip: str | None
    scheme: str | None
    host: str | None


class ParsedAddress(NamedTuple):
    """An IP address as parsed by :func:`parse_address`."""

    version: int
    value: int
    text: str


# Longer than any address form accepted below: "[" + 45 characters of IPv6
# with an embedded IPv4 + "%" + a zone id (at most 15 characters on Linux) +
# "]:65535".
_MAX_ADDRESS_LENGTH = 100


def parse_address(text: str) -> ParsedAddress | None:
    """Parse one address as found in a header or in ``scope["client"]``.

    Accepts ``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``, ``[2001:db8::1]``,
    ``[2001:db8::1]:443`` and IPv6 zone ids. Returns the IP version, the
    address as an int and its normalized text, or None for anything else.
    """
    if len(text) > _MAX_ADDRESS_LENGTH:
        # Rejected before the cache, so long header values never fill it.
        return None
    return _parse_address(text)


@functools.lru_cache(maxsize=2048)
def _parse_address(text: str) -> ParsedAddress | None:
    # Cached because the same proxy and client addresses repeat on every
    # request. The cache is bounded, so headers made of random addresses cost
    # only the parse they would cost without it.
    text = text.strip(_SPACE)
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        rest = text[end + 1 :]
        if rest and not (rest[0] == ":" and rest[1:].isdigit() and rest[1:].isascii()):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        # IPv4 with a port. A bare IPv6 address has at least two colons.
        text, _, port = text.partition(":")
        if not (port.isdigit() and port.isascii()):
            return None

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        if ":" in text:
            # The zone id names a network interface of the proxy's host. It means
            # nothing to Matomo, which does not accept it in `cip`.
            address = ipaddress.IPv6Address(text.partition("%")[0])
            mapped = address.ipv4_mapped
            if mapped is not None:
                address = mapped
        else:
            address = ipaddress.IPv4Address(text)
    except ValueError:
        return None
    return ParsedAddress(address.version, int(address), str(address))


def normalize_ip_address(text: str) -> str | None:
    """Return ``text`` as a normalized IP address, or None when it is not one.

    Brackets, a port and an IPv6 zone id are removed, and an IPv4-mapped IPv6
    address becomes IPv4: ``"[::ffff:192.0.2.1]:80"`` gives ``"192.0.2.1"``.
    """
    if not isinstance(text, str):
        return None
    address = parse_address(text)
    return None if address is None else address.text


def _network_from_entry(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    network = ipaddress.ip_network(entry, strict=True)
    # Peer addresses are compared after IPv4-mapped addresses become IPv4, so
    # a network written in the mapped form must become IPv4 too.
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((int(mapped), network.prefixlen - 96))
    return network


class TrustedProxies:
    """The parsed ``trusted_proxies`` option.

    Build it with :func:`parse_trusted_proxies`. :meth:`resolve` runs on every
    request and reads the forwarding headers only for a trusted peer.
    """

    __slots__ = ("_entries", "_networks", "_trust_all", "_trust_unix")

    def __init__(self, entries: Iterable[str]) -> None:
        self._entries: tuple[str, ...] = tuple(entries)
        self._trust_all = _TRUST_ALL in self._entries
        self._trust_unix = self._trust_all or _TRUST_UNIX in self._entries
        networks: list[tuple[int, int, int]] = []
        for entry in self._entries:
            if entry in (_TRUST_ALL, _TRUST_UNIX):
                continue
            network = _network_from_entry(entry)
            networks.append((network.version, int(network.network_address), int(network.netmask)))
        # (version, network address, netmask) as integers: a membership test is
        # one AND and one comparison per network.
        self._networks: tuple[tuple[int, int, int], ...] = tuple(networks)

    @property
    def entries(self) -> tuple[str, ...]:
        """The entries as given, after stripping whitespace."""
        return self._entries

    @property
    def trust_all(self) -> bool:
        """True when ``"*"`` was given: every peer and every hop is trusted."""
        return self._trust_all

    def __repr__(self) -> str:
        return f"TrustedProxies({list(self._entries)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrustedProxies):
            return NotImplemented
        return self._entries == other._entries

    def __hash__(self) -> int:
        return hash(self._entries)

    def is_trusted(self, address: str) -> bool:
        """Return True when ``address`` is a valid IP address of a trusted proxy.

        Any valid address is trusted when ``"*"`` was given. Invalid addresses
        are never trusted.
        """
        parsed = parse_address(address) if isinstance(address, str) else None
        return parsed is not None and self._contains(parsed)

    def _contains(self, address: ParsedAddress) -> bool:
        if self._trust_all:
            return True
        for version, network, netmask in self._networks:
            if version == address.version and address.value & netmask == network:
                return True
        return False

    def resolve(self, client: object, headers: Iterable[tuple[bytes, bytes]]) -> ResolvedClient:
        """Resolve the client of a request.

        ``client`` is ``scope["client"]`` (a ``(host, port)`` pair or None) and
        ``headers`` is ``scope["headers"]``. Malformed addresses and header
        values give None fields instead of an error.
        """
        peer = _peer_address(client)
        if peer is None:
            if not self._trust_unix:
                return ResolvedClient(None, None, None)
        elif not self._contains(peer):
            return ResolvedClient(peer.text, None, None)

        # The peer is trusted. Collect the forwarding headers, joining repeated
        # lines with commas (RFC 9110 section 5.3).
        found: dict[bytes, str] = {}
        for name, value in headers:
            if name in FORWARDING_HEADERS:
                text = value.decode("latin-1")
                previous = found.get(name)
                found[name] = text if previous is None else f"{previous},{text}"

        peer_text = None if peer is None else peer.text
        if not found:
            return ResolvedClient(peer_text, None, None)
        if _FORWARDED in found and len(found) == 1:
            return self._resolve_forwarded(found[_FORWARDED], peer_text)
        return self._resolve_x_forwarded(found, peer_text)

    def _resolve_x_forwarded(self, found: dict[bytes, str], peer: str | None) -> ResolvedClient:
        hops = _split_list(found.get(_X_FORWARDED_FOR))
        ip, index = self._walk(hops, peer)
        protos = _split_list(found.get(_X_FORWARDED_PROTO))
        hosts = _split_list(found.get(_X_FORWARDED_HOST))
        scheme = _valid_scheme(_aligned(protos, len(hops), index))
        host = _valid_host(_aligned(hosts, len(hops), index))
        return ResolvedClient(ip, scheme, host)

    def _resolve_forwarded(self, header: str, peer: str | None) -> ResolvedClient:
        elements = _parse_forwarded(header)
        hops = [None if element is None else element.get("for") for element in elements]
        ip, index = self._walk(hops, peer)
        if index < 0:
            return ResolvedClient(ip, None, None)
        element = elements[index]
        if element is None:
            return ResolvedClient(ip, None, None)
        return ResolvedClient(
            ip, _valid_scheme(element.get("proto")), _valid_host(element.get("host"))
        )

    def _walk(self, hops: Sequence[str | None], peer: str | None) -> tuple[str | None, int]:
        """Find the client in ``hops`` (leftmost first), behind a trusted peer.

        Returns the client address and the index of the hop where the walk
        stopped, or ``(peer, -1)`` when there are no hops.
        """
        leftmost: ParsedAddress | None = None
        for index in range(len(hops) - 1, -1, -1):
            hop = hops[index]
            address = None if hop is None else parse_address(hop)
            if address is None:
                return None, index
            if not self._contains(address):
                return address.text, index
            leftmost = address
        if leftmost is None:
            return peer, -1
        return leftmost.text, 0


def peer_ip(client: object) -> str | None:
    """Return the normalized IP address of ``scope["client"]``, or None.

    For a request without forwarding headers this is the ``ip`` that
    :meth:`TrustedProxies.resolve` returns, whoever the peer is, and its
    ``scheme`` and ``host`` are None.
    """
    peer = _peer_address(client)
    return None if peer is None else peer.text


def _peer_address(client: object) -> ParsedAddress | None:
    if not isinstance(client, (tuple, list)) or not client:
        return None
    host = client[0]
    if not isinstance(host, str):
        return None
    return parse_address(host)


def _split_list(value: str | None) -> list[str]:
    """Split a comma-separated header value. A blank value has no items."""
    if value is None or not value.strip(_SPACE):
        return []
    return [item.strip(_SPACE) for item in value.split(",")]


def _aligned(values: list[str], hop_count: int, index: int) -> str | None:
    """Return the entry of ``values`` written together with hop ``index``.

    The lists are aligned from the right. When ``values`` is shorter than the
    distance to the hop, its leftmost entry is used: every entry in it was
    written by a trusted proxy.
    """
    if not values:
        return None
    if index < 0:
        return values[-1]
    position = len(values) - (hop_count - index)
    return values[max(position, 0)]


def _valid_scheme(value: str | None) -> str | None:
    if value is None:
        return None
    scheme = value.strip(_SPACE).lower()
    return scheme if scheme in _SCHEMES else None


def _valid_host(value: str | None) -> str | None:
    if value is None:
        return None
    host = value.strip(_SPACE).lower()
    match = _HOST.fullmatch(host)
    if match is None:
        return None
    if ".." in host:
        return None
    port = match["port"]
    if port is not None and not 0 < int(port) <= 65535:
        return None
    ipv6 = match["ipv6"]
    if ipv6 is not None:
        try:
            ipaddress.IPv6Address(ipv6)
        except ValueError:
            return None
    return host


def _parse_forwarded(text: str) -> list[dict[str, str] | None]:
    """Parse an RFC 7239 Forwarded header into its elements, leftmost first.

    Each element maps lower-case parameter names to unquoted values. A
    malformed element, or one that repeats a parameter (RFC 7239 section 4
    forbids that), is None. Empty elements and empty pairs are skipped, as
    RFC 9110 section 5.6.1.2 requires of list recipients.
    """
    elements: list[dict[str, str] | None] = []
    element: dict[str, str] | None = {}
    has_content = False
    position = 0
    length = len(text)
    while True:
        while position < length and text[position] in _SPACE:
            position += 1
        if position >= length:
            break
        char = text[position]
        if char == ",":
            if has_content:
                elements.append(element)
            element, has_content = {}, False
            position += 1
            continue
        if char == ";":
            position += 1
            continue

        has_content = True
        match = _FORWARDED_PAIR.match(text, position)
        if match is None:
            element = None
            position = _skip_element(text, position)
            continue
        if element is not None:
            name = match["name"].lower()
            value = match["value"]
            if value.startswith('"'):
                value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
            if name in element:
                element = None
            else:
                element[name] = value
        position = match.end()
        while position < length and text[position] in _SPACE:
            position += 1
        if position < length and text[position] not in ",;":
            element = None
            position = _skip_element(text, position)
    if has_content:
        elements.append(element)
    return elements


def _skip_element(text: str, position: int) -> int:
    """Return the position of the next comma outside a quoted string."""
    quoted = False
    length = len(text)
    while position < length:
        char = text[position]
        if quoted:
            if char == "\\":
                position += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == ",":
            return position
        position += 1
    return length


def parse_trusted_proxies(value: str | Iterable[str] | None) -> TrustedProxies:
    """Parse the ``trusted_proxies`` option.

    Accepts a comma-separated string (``"10.0.0.0/8, 192.0.2.7"``) or an
    iterable of strings. Each entry is an IPv4 or IPv6 address, a CIDR network,
    ``"unix"`` (a peer without an IP address) or ``"*"`` (every peer). None
    means the default, :data:`DEFAULT_TRUSTED_PROXIES`. An empty string or list
    trusts no peer, so forwarding headers are never read.

    Raises TypeError for a value of another type and ValueError for an invalid
    entry.
    """
    if value is None:
        return TrustedProxies(DEFAULT_TRUSTED_PROXIES)
    if isinstance(value, str):
        items: list[object] = list(value.split(","))
        if not value.strip():
            items = []
    elif isinstance(value, (bytes, bytearray)) or not isinstance(value, Iterable):
        raise TypeError(
            f"trusted_proxies must be a str or an iterable of str, got {value!r}; {_ACCEPTED}"
        )
    else:
        items = list(value)

    entries: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(
                f"trusted_proxies entries must be str, got {item!r} in {value!r}; {_ACCEPTED}"
            )
        entry = item.strip()
        if entry not in (_TRUST_ALL, _TRUST_UNIX):
            try:
                _network_from_entry(entry)
            except ValueError as exc:
                raise ValueError(
                    f"trusted_proxies contains an invalid entry {entry!r} ({exc}); {_ACCEPTED}"
                ) from None
        entries.append(entry)
    return TrustedProxies(entries)
