"""Build the Matomo tracking hit of one HTTP request.

Everything here is pure: no I/O and no awaiting, so a hit costs a few
microseconds on the request path. Every value of a hit is a str or an int.

The parameters come in three layers, each overriding the one before:

1. the defaults measured from the request (``url``, ``action_name``, ``ua``,
   ``lang``, ``urlref``, ``pf_srv``, ``cdt``, ``cvar``, ``cip``, ...);
2. the ``route_details`` configured for the request's path;
3. the per-request overrides the application stores in
   ``scope["state"]["asgi_matomo"]``, read after the application returned.

A value of None in layer 2 or 3 removes that parameter from the hit. A value
in layer 3 that cannot be used is logged and left out, and the rest of the
hit is sent.

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
from .options import PROTECTED_PARAMETERS, Options
from .params import (
    MAX_ACTION_NAME_LENGTH,
    MAX_ADDED_CHARACTERS,
    MAX_LANGUAGE_LENGTH,
    MAX_USER_AGENT_LENGTH,
    PERFORMANCE_PARAMETERS,
    added_characters,
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

    Per-request overrides that cannot be used are logged and left out, so
    they never cost the hit. Raises KeyError or TypeError only for a scope
    that lacks the keys or types the ASGI spec requires.
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

    # One pass over the headers finds the values and notes which features
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

    details = None
    if options.route_details:
        if route is None:
            route = urls.route_path(path, root_path)
        details = options.route_details.get(route)
        if details is not None:
            hit.update(details.parameters)
            for name in details.removed:
                hit.pop(name, None)

    method: str = scope["method"]
    # Set before the overrides, which may replace or remove it.
    hit["cvar"] = cvars.default_cvar(status, method, options.cvar_slots)
    state = scope.get("state")
    if state:
        overrides = _read_overrides(state, options)
        if overrides:
            budget = MAX_ADDED_CHARACTERS if details is None else details.budget_left
            apply_overrides(hit, overrides, options, status=status, method=method, budget=budget)
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
    if options.assume_https:
        scheme = "https"
    elif seen_scheme == "http" or seen_scheme == "https":
        scheme = seen_scheme
    else:
        # A server that reports another scheme for an HTTP request. Another
        # seen_scheme has no default port, so it strips none.
        scheme = "http"
    host = forwarded.host
    authority: str | None
    if host is not None:
        authority = urls.strip_default_port(host, scheme, seen_scheme)
    elif host_header is not None:
        authority = urls.host_authority(host_header, scheme, seen_scheme)
    else:
        authority = None
    if not authority:
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


def _read_overrides(state: object, options: Options) -> Mapping[object, object] | None:
    """Return the application's per-request parameters, or None when there are none.

    A state or a parameter dict of the wrong type is logged and ignored.
    """
    if type(state) is not dict and not isinstance(state, Mapping):
        _log_ignored(options, "state", 'scope["state"] is not a dict but a %s', type(state))
        return None
    overrides = state.get(STATE_KEY)
    if overrides is None or type(overrides) is dict:
        return overrides
    if not isinstance(overrides, Mapping):
        _log_ignored(options, "overrides", f"{_OVERRIDES} is not a dict but a %s", type(overrides))
        return None
    return overrides


def apply_overrides(
    hit: Hit,
    overrides: Mapping[object, object],
    options: Options,
    *,
    status: int,
    method: str,
    budget: int = MAX_ADDED_CHARACTERS,
) -> None:
    """Write the application's per-request parameters into ``hit``.

    None removes a parameter. ``cvar`` and ``_cvar`` become Matomo's indexed
    form, and ``cvar`` given as ``{name: value}`` gets the request's status
    and method in the slots left. Performance timings become integer
    milliseconds. Other values become str or int as
    :func:`asgi_matomo.params.to_parameter` converts them, so dicts and lists
    are sent as JSON strings (``ec_items``, ``uadata``).

    A parameter that cannot be used is left out and logged, and the rest of
    the hit is kept. That is a name that is not a str, ``idsite``, ``rec`` or
    ``token_auth``, a value of an unsupported type or an invalid timing. It is
    also a parameter that would take the characters added to the hit beyond
    ``budget`` (see ``MAX_ADDED_CHARACTERS``).
    """
    for name, value in overrides.items():
        if type(name) is not str:
            _log_ignored(options, "name", "the parameter name %s is not a str", _shorten(name))
            continue
        if name in PROTECTED_PARAMETERS:
            _log_ignored(
                options,
                "protected",
                "%r cannot be set per request, because idsite and rec come from the "
                "middleware's arguments and the token from access_token",
                name,
            )
            continue
        if value is None:
            hit.pop(name, None)
        elif name == "cvar" or name == "_cvar":
            encoded = _encode_cvar(name, value, options, status=status, method=method)
            if encoded is not None:
                hit[name] = encoded
        elif name in PERFORMANCE_PARAMETERS:
            milliseconds = to_milliseconds(value)
            if milliseconds is None:
                _log_ignored(
                    options,
                    "value",
                    "%r must be a number of milliseconds, got a value of type %s",
                    name,
                    type(value).__name__,
                )
            else:
                hit[name] = milliseconds
        else:
            try:
                converted = to_parameter(name, value)
            except (TypeError, ValueError) as exc:
                _log_ignored(options, "value", "the value of %r is not usable: %s", name, exc)
                continue
            cost = added_characters(name, converted)
            if cost > budget:
                _log_ignored(
                    options,
                    "size",
                    f"%s would make the parameters added to the hit longer than "
                    f"{MAX_ADDED_CHARACTERS:,} characters",
                    _shorten(name),
                )
                continue
            budget -= cost
            hit[name] = converted


def _encode_cvar(
    name: str,
    value: object,
    options: Options,
    *,
    status: int,
    method: str,
) -> str | None:
    """Return ``cvar`` or ``_cvar`` in Matomo's indexed form, or None to keep the hit's value.

    Only page-scope ``cvar`` gets the request's status and method.
    """
    page_scope = name == "cvar"
    try:
        variables = cvars.encode(
            value,
            options.cvar_slots,
            status=status if page_scope else None,
            method=method if page_scope else None,
        )
    except (TypeError, ValueError) as exc:
        _log_ignored(options, "cvar", "%s is not usable: %s", name, exc)
        return None
    if variables.invalid:
        _log_ignored(
            options,
            "cvar-entry",
            "invalid custom variables in %s: %s",
            name,
            "; ".join(variables.invalid),
        )
    if variables.dropped and "cvar_slots" not in options.logged_notices:
        options.logged_notices.add("cvar_slots")
        logger.warning(
            "Custom variables %s did not fit into the %d slots of cvar_slots and were not "
            "sent. The application's own variables take the first slots. Raise cvar_slots "
            "after adding slots in Matomo. This message is logged once.",
            ", ".join(variables.dropped),
            options.cvar_slots,
        )
    return variables.encoded


_OVERRIDES = f'scope["state"]["{STATE_KEY}"]'


def _log_ignored(options: Options, kind: str, reason: str, *args: object) -> None:
    """Log, at a limited rate, that some of the per-request parameters were ignored."""
    args = tuple(arg.__name__ if isinstance(arg, type) else arg for arg in args)
    options.hit_log.log(
        logging.WARNING,
        f"override-{kind}",
        f"Ignored tracking parameters of {_OVERRIDES}, the rest of the hit is sent: {reason}",
        *args,
    )


def _shorten(value: object) -> str:
    """Return the repr of a parameter name for a log line, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
