"""Build the Matomo tracking hit of one HTTP request.

Everything here is pure: no I/O and no awaiting, so a hit costs a few
microseconds on the request path. Every value of a hit is a str or an int.

The parameters come in three layers, each overriding the one before:

1. the defaults measured from the request (``url``, ``action_name``, ``ua``,
   ``lang``, ``urlref``, ``pf_srv``, ``cdt``, ``cvar``, ``cip``, ...);
2. the ``route_details`` configured for the request's path;
3. the per-request overrides the application stores in
   ``scope["state"]["asgi_matomo"]``, read after the application returned.

A value of None in layer 2 or 3 removes that parameter from the hit.

``url`` keeps the percent-escapes the client sent (``/caf%C3%A9``), as a
browser's address bar would report it. ``action_name`` defaults to the decoded
path with ``root_path`` in front (``/café``), because Matomo shows it as a page
title. The values of secret path parameters (``;jsessionid=...``, also written
``%3Bjsessionid%3D...``) in both, and of secret query parameters in ``url``,
are replaced by ``REDACTED``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from random import getrandbits

from . import cvars, urls
from .options import Options
from .params import (
    MAX_ACTION_NAME_LENGTH,
    MAX_LANGUAGE_LENGTH,
    MAX_USER_AGENT_LENGTH,
    PERFORMANCE_PARAMETERS,
    measured_milliseconds,
    to_milliseconds,
    to_parameter,
)
from .privacy import anonymize_ip, has_privacy_signal, strip_identifying_parameters
from .proxies import FORWARDING_HEADERS, ResolvedClient, peer_ip
from .trackers import STATE_KEY
from .types import Hit, Scope
from .visitor import IdResult, call_user_id, call_visitor_id

logger = logging.getLogger("asgi_matomo.hits")

_HOST = b"host"
_USER_AGENT = b"user-agent"
_ACCEPT_LANGUAGE = b"accept-language"
_REFERER = b"referer"
_COOKIE = b"cookie"

# The resolution of a request without forwarding headers, apart from its IP
# address, which only cip needs (see proxies.peer_ip).
_NOT_FORWARDED = ResolvedClient(None, None, None)


def build_hit(
    scope: Scope,
    options: Options,
    *,
    status: int,
    duration_ms: float,
    started_at: float,
    route: str | None = None,
    path: str | None = None,
    root_path: str | None = None,
) -> Hit | None:
    """Return the hit of a finished HTTP request, or None when it must not be tracked.

    ``status`` is the response status (500 when the application failed before
    starting the response), ``duration_ms`` the time the application took in
    milliseconds, and ``started_at`` the UNIX time at which the request began.
    ``route`` (the routing path), ``path`` and ``root_path`` are the values
    from before the application ran, because routers change the scope. Each
    one that is None is computed from the scope.

    Raises TypeError when the per-request overrides are not a mapping.
    """
    if path is None:
        path = scope["path"]
    if root_path is None:
        root_path = scope.get("root_path", "")
    headers = scope["headers"]
    if options.privacy_signals != "ignore":
        signalled = has_privacy_signal(headers)
        if signalled and options.privacy_signals == "skip":
            return None
    else:
        signalled = False

    # One pass over the headers finds the values and tells which features
    # have work to do: most requests carry no forwarding header or cookie.
    # Browsers and HTTP clients send non-ASCII user agents and referrers as
    # UTF-8, so that is tried before latin-1, which ASGI servers assume and
    # which decodes any bytes. The Host header is checked to be ASCII later.
    host = user_agent = language = referer = None
    has_cookie = has_forwarding = False
    for name, value in headers:
        if name == _HOST:
            host = value.decode("latin-1")
        elif name == _USER_AGENT:
            try:
                user_agent = value.decode("utf-8")
            except UnicodeDecodeError:
                user_agent = value.decode("latin-1")
        elif name == _ACCEPT_LANGUAGE:
            try:
                language = value.decode("utf-8")
            except UnicodeDecodeError:
                language = value.decode("latin-1")
        elif name == _REFERER:
            try:
                referer = value.decode("utf-8")
            except UnicodeDecodeError:
                referer = value.decode("latin-1")
        elif name == _COOKIE:
            has_cookie = True
        elif name in FORWARDING_HEADERS:
            has_forwarding = True

    # Forwarding headers count only when the peer is a trusted proxy.
    if has_forwarding:
        forwarded = options.trusted_proxies.resolve(scope.get("client"), headers)
    else:
        forwarded = _NOT_FORWARDED
    redactor = options.redact_query_params

    hit = options.base_hit.copy()
    hit["rand"] = getrandbits(31)
    hit["cdt"] = int(started_at)
    hit["url"] = _request_url(scope, options, forwarded, host, path, root_path)
    action_name = urls.full_path(path, root_path)
    if ";" in action_name:
        action_name = redactor.redact_path(action_name)
    hit["action_name"] = action_name[:MAX_ACTION_NAME_LENGTH]
    hit["pf_srv"] = measured_milliseconds(duration_ms)
    if user_agent:
        hit["ua"] = user_agent[:MAX_USER_AGENT_LENGTH]
    if language:
        hit["lang"] = language[:MAX_LANGUAGE_LENGTH]
    if referer:
        hit["urlref"] = urls.truncate_encoded(redactor.redact_url(referer), urls.MAX_URL_LENGTH)
    if options.access_token is not None:
        # Matomo rejects cip without a valid token_auth.
        address = forwarded.ip if has_forwarding else peer_ip(scope.get("client"))
        if address is not None and options.anonymize_ip:
            address = anonymize_ip(address, options.anonymize_ip)
        if address is not None:
            hit["cip"] = address
    if has_cookie or options.visitor_id is not None or options.user_id is not None:
        _add_ids(hit, scope, headers, options, has_cookie=has_cookie)

    if options.route_details:
        if route is None:
            route = urls.route_path(path, root_path)
        details = options.route_details.get(route)
        if details is not None:
            hit.update(details.parameters)
            for name in details.removed:
                hit.pop(name, None)

    method: str = scope["method"]
    state = scope.get("state")
    overrides = _read_overrides(state) if state else None
    if overrides:
        apply_overrides(hit, overrides, options, status=status, method=method)
    if "cvar" not in hit and (overrides is None or "cvar" not in overrides):
        hit["cvar"] = cvars.default_cvar(status, method, options.cvar_slots)
    if signalled:
        # privacy_signals="strip": the visit is counted but not tied to a person.
        strip_identifying_parameters(hit)
    return hit


def _request_url(
    scope: Scope,
    options: Options,
    forwarded: ResolvedClient,
    host_header: str | None,
    path: str,
    root_path: str,
) -> str:
    """Return the URL the client requested, with secret query and path parameters redacted.

    The host is a trusted proxy's forwarded host, else a valid Host header,
    else the server's address.
    """
    seen_scheme: str = forwarded.scheme or scope.get("scheme", "http")
    if seen_scheme not in urls.SCHEMES:
        # A server that reports another scheme for an HTTP request.
        seen_scheme = "http"
    scheme = "https" if options.assume_https else seen_scheme
    host = forwarded.host
    if host is None and host_header is not None:
        host = urls.request_host(host_header)
    if host:
        authority = urls.strip_default_port(host, scheme, seen_scheme)
    else:
        authority = urls.server_authority(scope.get("server"), scheme, seen_scheme)
    path = urls.encoded_path(scope.get("raw_path"), path, root_path)
    redactor = options.redact_query_params
    if ";" in path:
        path = redactor.redact_path(path)
    if "%3" in path and redactor.enabled:
        # The decoded action_name shows an escaped ";" as a real one.
        path = urls.redact_encoded_path_parameters(path, redactor)
    query = urls.decode_query(scope.get("query_string", b""))
    return urls.build_url(scheme, authority, path, redactor.redact_query(query))


def _add_ids(
    hit: Hit,
    scope: Scope,
    headers: list[tuple[bytes, bytes]],
    options: Options,
    *,
    has_cookie: bool,
) -> None:
    """Set ``_id`` from the app's callable or Matomo's tracker cookie, and ``uid``."""
    visitor = call_visitor_id(options.visitor_id, scope)
    if visitor.error is not None:
        _log_id_error(options, "visitor_id", visitor)
    visitor_id = visitor.value
    if visitor_id is None and has_cookie and options.tracker_cookie is not None:
        visitor_id = options.tracker_cookie.visitor_id(headers)
    if visitor_id is not None:
        hit["_id"] = visitor_id

    user = call_user_id(options.user_id, scope)
    if user.error is not None:
        _log_id_error(options, "user_id", user)
    if user.value is not None:
        hit["uid"] = user.value


def _log_id_error(options: Options, kind: str, result: IdResult) -> None:
    # The error text never contains the returned value, which may be personal data.
    details = "" if result.exception is None else f": {result.exception}"
    options.hit_log.log(logging.WARNING, kind, "No %s sent: %s%s", kind, result.error, details)


def _read_overrides(state: Mapping[str, object]) -> Mapping[str, object] | None:
    overrides = state.get(STATE_KEY)
    if overrides is None:
        return None
    if not isinstance(overrides, Mapping):
        raise TypeError(
            f'scope["state"]["{STATE_KEY}"] must be a dict of tracking parameters, '
            f"got {type(overrides).__name__}"
        )
    return overrides


def apply_overrides(
    hit: Hit,
    overrides: Mapping[str, object],
    options: Options,
    *,
    status: int,
    method: str,
) -> None:
    """Write the application's per-request parameters into ``hit``.

    None removes a parameter. ``cvar`` and ``_cvar`` given as ``{name: value}``
    become Matomo's indexed form, and ``cvar`` gets the request's status and
    method in the slots left. Performance timings become integer milliseconds,
    and an invalid timing is ignored so that the measured ``pf_srv`` stays.
    Other dicts and lists are sent as JSON strings (``ec_items``, ``uadata``).
    """
    for name, value in overrides.items():
        if value is None:
            hit.pop(name, None)
        elif name == "cvar" or name == "_cvar":
            encoded = _encode_cvar(
                name, value, options, status=status if name == "cvar" else None, method=method
            )
            if encoded is not None:
                hit[name] = encoded
        elif name in PERFORMANCE_PARAMETERS:
            milliseconds = to_milliseconds(value)
            if milliseconds is not None:
                hit[name] = milliseconds
        else:
            hit[name] = to_parameter(name, value)


def _encode_cvar(
    name: str,
    value: object,
    options: Options,
    *,
    status: int | None,
    method: str,
) -> str | None:
    if isinstance(value, str):
        # Already JSON, written by the application itself.
        return value
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{name} must be a dict of custom variables or a JSON string, "
            f"got {type(value).__name__}"
        )
    if cvars.is_indexed(value):
        return cvars.encode_indexed(value)
    encoded, dropped = cvars.encode_named(
        value,
        options.cvar_slots,
        status=status,
        method=method if status is not None else None,
    )
    if dropped and "cvar_slots" not in options.logged_notices:
        options.logged_notices.add("cvar_slots")
        logger.warning(
            "Custom variables %s did not fit into the %d slots of cvar_slots and were not "
            "sent. The application's own variables take the first slots. Raise cvar_slots "
            "after adding slots in Matomo. This message is logged once.",
            ", ".join(dropped),
            options.cvar_slots,
        )
    return encoded
