"""Visitor and user ids: Matomo's tracker cookie and the app's own callables.

Matomo's JavaScript tracker (matomo.js, piwik.js) keeps the visitor id in a
first-party cookie named ``_pk_id.<idsite>.<domain hash>``. The domain hash is
the first 4 hex digits of a SHA-1 of the cookie domain and path. The value
starts with the 16-hex-digit visitor id followed by '.' and timestamps:
``<id>.<created>.`` since Matomo 4, and
``<id>.<created>.<visit count>.<now>.<last visit>.<last order>`` before.
Sending that id as ``_id`` lets Matomo join server-side hits to the browser's
visit. ``_id`` is only a hint: Matomo may still match visits by its own
heuristics (IP and user agent).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from typing import NamedTuple, TypeAlias, cast

from .types import Scope

__all__ = [
    "USER_ID_MAX_LENGTH",
    "VISITOR_ID_LENGTH",
    "IdCallable",
    "IdResult",
    "TrackerCookie",
    "call_user_id",
    "call_visitor_id",
    "parse_id_callable",
    "validate_user_id",
    "validate_visitor_id",
]

IdCallable: TypeAlias = Callable[[Scope], str | None]

# Matomo's visitor ids are 8 bytes written as 16 hex digits. The Tracking API
# requires that form for `_id` and `cid`, and Matomo rejects a hit whose `cid`
# has another form.
VISITOR_ID_LENGTH = 16

# Matomo stores `uid` in log_visit.user_id, a VARCHAR(200) column
# (plugins/CoreHome/Columns/UserId.php). A longer id would be cut or rejected
# by the database, so it is not sent. Cutting it could merge different users.
USER_ID_MAX_LENGTH = 200

_VISITOR_ID = re.compile(r"[0-9a-f]{16}", re.ASCII)
_HEX_BYTES = frozenset(b"0123456789abcdefABCDEF")

# The cookie name prefix matomo.js uses unless the site calls
# setCookieNamePrefix().
_COOKIE_NAME_PREFIX = "_pk_"


def validate_visitor_id(value: object) -> str | None:
    """Return ``value`` as a visitor id, or None when it is not one.

    A visitor id is a str of exactly 16 hexadecimal digits. Upper-case digits
    are accepted and returned in lower case, the form Matomo and its trackers
    write.
    """
    if not isinstance(value, str) or len(value) != VISITOR_ID_LENGTH:
        return None
    lowered = value.lower()
    return lowered if _VISITOR_ID.fullmatch(lowered) else None


def validate_user_id(value: object) -> str | None:
    """Return ``value`` as a user id, or None when it is not one.

    A user id is a str of 1 to :data:`USER_ID_MAX_LENGTH` printable
    characters that is not only whitespace. It is returned unchanged.
    """
    if not isinstance(value, str) or not 0 < len(value) <= USER_ID_MAX_LENGTH:
        return None
    if not value.isprintable() or value.isspace():
        return None
    return value


class TrackerCookie:
    """The reader of the visitor id in the ``_pk_id`` cookie of one Matomo site.

    Only cookies named ``_pk_id.<idsite>.<hash>`` for this ``idsite`` count,
    where ``<hash>`` is hex digits. When several match (the tracker ran with
    different cookie domains or paths), the first one with a valid id wins.
    RFC 6265 has browsers send cookies with longer paths first.
    """

    __slots__ = ("_idsite", "_prefix")

    def __init__(self, idsite: int, *, name_prefix: str = _COOKIE_NAME_PREFIX) -> None:
        self._idsite = idsite
        # The trailing '.' keeps site 1 from matching the cookie of site 12.
        self._prefix = f"{name_prefix}id.{idsite}.".encode("latin-1")

    def __repr__(self) -> str:
        return f"TrackerCookie(idsite={self._idsite!r})"

    def visitor_id(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """Return the visitor id from the request's Cookie headers, or None."""
        for name, value in headers:
            if name == b"cookie" and self._prefix in value:
                found = self._find(value)
                if found is not None:
                    return found
        return None

    def _find(self, header: bytes) -> str | None:
        prefix = self._prefix
        for pair in header.split(b";"):
            cookie_name, equals, cookie_value = pair.strip(b" \t").partition(b"=")
            if not equals or not cookie_name.startswith(prefix):
                continue
            domain_hash = cookie_name[len(prefix) :]
            if not domain_hash or not _HEX_BYTES.issuperset(domain_hash):
                continue
            cookie_value = cookie_value.strip(b" \t")
            # RFC 6265 allows a cookie value in double quotes.
            if len(cookie_value) >= 2 and cookie_value[:1] == cookie_value[-1:] == b'"':
                cookie_value = cookie_value[1:-1]
            visitor_id = cookie_value.partition(b".")[0]
            if len(visitor_id) == VISITOR_ID_LENGTH and _HEX_BYTES.issuperset(visitor_id):
                return visitor_id.decode("ascii").lower()
        return None


class IdResult(NamedTuple):
    """The outcome of calling a ``visitor_id`` or ``user_id`` callable.

    ``value`` is the valid id to send, or None. ``error`` describes why a value
    was not sent (the callable raised, or returned an invalid value) and is
    None when the callable returned a valid id or None. It never contains the
    returned value, which may be personal data. ``exception`` is what the
    callable raised, for logging with a traceback.
    """

    value: str | None
    error: str | None = None
    exception: Exception | None = None


_NOT_CALLED = IdResult(None)


def call_visitor_id(function: IdCallable | None, scope: Scope) -> IdResult:
    """Call the app's ``visitor_id`` callable and validate what it returns."""
    if function is None:
        return _NOT_CALLED
    return _call(
        function, scope, "visitor_id", validate_visitor_id, "a str of 16 hexadecimal digits"
    )


def call_user_id(function: IdCallable | None, scope: Scope) -> IdResult:
    """Call the app's ``user_id`` callable and validate what it returns."""
    if function is None:
        return _NOT_CALLED
    return _call(
        function,
        scope,
        "user_id",
        validate_user_id,
        f"a non-blank str of at most {USER_ID_MAX_LENGTH} printable characters",
    )


def _call(
    function: IdCallable,
    scope: Scope,
    argument: str,
    validate: Callable[[object], str | None],
    expected: str,
) -> IdResult:
    try:
        result: object = function(scope)
    except Exception as exc:
        return IdResult(None, f"the {argument} callable raised {type(exc).__name__}", exc)
    if result is None:
        return _NOT_CALLED
    value = validate(result)
    if value is not None:
        return IdResult(value)
    if inspect.iscoroutine(result):
        # Close it so Python does not warn that it was never awaited.
        result.close()
        return IdResult(
            None, f"the {argument} callable returned a coroutine, but it must be synchronous"
        )
    return IdResult(
        None,
        f"the {argument} callable returned an invalid value "
        f"({_describe(result)}); expected {expected} or None",
    )


def _describe(value: object) -> str:
    if isinstance(value, str):
        return f"a str of length {len(value)}"
    return f"a value of type {type(value).__name__}"


def parse_id_callable(value: object, argument: str) -> IdCallable | None:
    """Parse the ``visitor_id`` or ``user_id`` option (named by ``argument``).

    Accepts None or a synchronous callable taking the ASGI scope and returning
    a str or None. Raises TypeError for anything else, including async
    functions: they would return a coroutine that is never awaited.
    """
    if value is None:
        return None
    if not callable(value):
        raise TypeError(
            f"{argument} must be a callable taking the ASGI scope and returning "
            f"a str or None, got {value!r}"
        )
    # An instance whose __call__ is async is as unusable as an async function.
    if inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(type(value).__call__):
        raise TypeError(
            f"{argument} must be a synchronous callable, got the async function {value!r}; "
            "read what you need from the scope without awaiting"
        )
    return cast(IdCallable, value)
