"""Convert values set by the application into hit values (str or int).

Values come from ``route_details`` and from the per-request overrides in
``scope["state"]["asgi_matomo"]``. Each string value is cut to a length limit
and the values added to one hit have a total limit, so the JSON size of any
hit is bounded (:func:`max_hit_bytes`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from . import urls
from .visitor import USER_ID_MAX_LENGTH, VISITOR_ID_LENGTH

# Matomo keeps at most 1,024 characters of an action name and of a URL.
MAX_ACTION_NAME_LENGTH = 1024
# An estimate: common browser User-Agent strings are 100 to 200 characters, so
# they stay whole, while a hostile header cannot bloat every queued hit.
MAX_USER_AGENT_LENGTH = 500
# Accept-Language is only used to guess a country, and real values are short.
MAX_LANGUAGE_LENGTH = 200
# The limit of every other string parameter: the size of the column
# log_action.name, VARCHAR(4096) in Matomo 4 and 5, which stores event
# categories, actions and names, content names and the other action texts.
MAX_TEXT_LENGTH = 4096
# Matomo cuts custom variable names and values to this many characters.
MAX_CVAR_LENGTH = 200

# The characters that route_details and the per-request overrides together
# may add to one hit, counting parameter names and values (an int counts as
# 20). cvar and _cvar are bounded by cvar_slots instead. This is room for a
# dozen custom dimensions and event texts, while a hit stays far below the
# size of a bulk request.
MAX_ADDED_CHARACTERS = 8192
# Integers are sent as they are, so their size is bounded too: 64 bits, the
# size of MySQL's BIGINT, its largest integer column type.
MAX_INTEGER = 2**63 - 1
INTEGER_CHARACTERS = 20

# Matomo's page performance timings, all in milliseconds. It stores them as
# unsigned 24-bit integers and stores nothing for a value that is not an
# integer (250.7, "abc") or that exceeds the maximum.
PERFORMANCE_PARAMETERS = frozenset({"pf_net", "pf_srv", "pf_tfr", "pf_dm1", "pf_dm2", "pf_onl"})
MAX_PERFORMANCE_MS = 16_777_215

_LENGTH_LIMITS = {
    "url": urls.MAX_URL_LENGTH,
    "urlref": urls.MAX_URL_LENGTH,
    "action_name": MAX_ACTION_NAME_LENGTH,
    "ua": MAX_USER_AGENT_LENGTH,
    "lang": MAX_LANGUAGE_LENGTH,
}
_URL_PARAMETERS = frozenset(("url", "urlref"))


def measured_milliseconds(duration_ms: float) -> int:
    """Return a measured duration as whole milliseconds within Matomo's range."""
    # Comparisons instead of min() and max(): this runs for every request.
    milliseconds = round(duration_ms)
    if milliseconds < 0:
        return 0
    if milliseconds > MAX_PERFORMANCE_MS:
        return MAX_PERFORMANCE_MS
    return milliseconds


def to_milliseconds(value: object) -> int | None:
    """Return ``value`` as whole milliseconds within Matomo's range, or None when invalid.

    Floats and numeric strings are rounded. Values below zero become 0 and
    values above ``MAX_PERFORMANCE_MS`` become the maximum, because Matomo
    rejects negative timings and stores nothing for larger ones. Booleans,
    NaN, infinities and other types are invalid.
    """
    number: float
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return min(max(value, 0), MAX_PERFORMANCE_MS)
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number):
        return None
    return min(max(round(number), 0), MAX_PERFORMANCE_MS)


def to_text(value: object) -> str:
    """Return the text of a value the application set, as Matomo receives it.

    A str is kept, and so is the text of a str subclass such as a StrEnum
    member. True and False become "1" and "0", and ints and finite floats
    their decimal text. Bytes are decoded as UTF-8, or else as latin-1, and
    dicts, lists and tuples become compact JSON. The text is never a Python
    repr.

    Raises TypeError for another type and ValueError for NaN, an infinity, an
    int beyond 64 bits or a dict or list that JSON cannot encode. The messages
    never contain the value, which may be personal data.
    """
    if isinstance(value, str):
        return value if type(value) is str else str.__str__(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(_checked_int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and infinities are not supported")
        return float.__repr__(value)
    if isinstance(value, bytes | bytearray):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    if isinstance(value, Mapping | list | tuple):
        return to_json(value)
    raise TypeError(
        f"a value of type {type(value).__name__} is not supported; "
        f"use str, int, float, bool, bytes, dict, list or None"
    )


def to_json(value: object) -> str:
    """Return ``value`` as compact JSON, or raise ValueError when JSON cannot encode it."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        # json's messages name the type of an unsupported item, not its value.
        raise ValueError(f"JSON cannot encode the value: {exc}") from None


def to_parameter(name: str, value: object) -> str | int:
    """Convert a value the application set to a hit value (str or int).

    Booleans become 0 or 1 and ints stay ints. Other values become the text
    :func:`to_text` returns, cut to the length limit of the parameter:
    1,024 characters for ``url``, ``urlref`` and ``action_name``, 500 for
    ``ua``, 200 for ``lang`` and 4,096 (``MAX_TEXT_LENGTH``) for the others.
    Raises TypeError or ValueError as :func:`to_text` does, and ValueError for
    JSON longer than the limit, because cutting it would make it invalid.
    """
    if type(value) is str:
        text = value
    elif isinstance(value, bool):
        return int(value)
    elif isinstance(value, int):
        return _checked_int(value)
    else:
        text = to_text(value)
    limit = _LENGTH_LIMITS.get(name, MAX_TEXT_LENGTH)
    if len(text) <= limit:
        return text
    if isinstance(value, Mapping | list | tuple):
        raise ValueError(
            f"its JSON has {len(text):,} characters, more than the limit of {limit:,}"
        )
    if name in _URL_PARAMETERS:
        return urls.truncate_encoded(text, limit)
    return text[:limit]


def added_characters(name: str, value: str | int) -> int:
    """Return what a parameter counts against ``MAX_ADDED_CHARACTERS``."""
    size = len(value) if isinstance(value, str) else INTEGER_CHARACTERS
    return len(name) + size


def max_hit_bytes(cvar_slots: int) -> int:
    """Return an upper bound of the JSON size in bytes of one hit in a bulk request.

    The bound follows from the length limits: the parameters the middleware
    measures, ``cvar`` and ``_cvar`` with ``cvar_slots`` slots, and
    ``MAX_ADDED_CHARACTERS`` from route_details and overrides. JSON encodes a
    character in at most 12 bytes (an escaped pair of UTF-16 surrogates), and
    a parameter's quotes, colon and comma add at most 6 bytes for the at least
    one character that it counts.
    """
    measured_characters = (
        2 * urls.MAX_URL_LENGTH  # url, urlref
        + MAX_ACTION_NAME_LENGTH
        + MAX_USER_AGENT_LENGTH
        + MAX_LANGUAGE_LENGTH
        + USER_ID_MAX_LENGTH
        + VISITOR_ID_LENGTH
        + 45  # cip: the maximum length of an IPv6 address as text
        # idsite, rec, apiv, send_image, rand, cdt, pf_srv and one more.
        + 8 * INTEGER_CHARACTERS
    )
    # Parameter names, quotes and separators of the measured parameters.
    measured_structure = 512
    # Per slot: name and value, each character escaped twice in the worst case
    # (once in the cvar JSON, then in the bulk JSON), plus the slot id and the
    # brackets, quotes and commas around them.
    slot_bytes = 2 * 12 * MAX_CVAR_LENGTH + 64
    return (
        12 * measured_characters
        + measured_structure
        + 2 * cvar_slots * slot_bytes  # cvar and _cvar
        + 18 * MAX_ADDED_CHARACTERS
    )


def _checked_int(value: int) -> int:
    if not -MAX_INTEGER <= value <= MAX_INTEGER:
        raise ValueError("integers beyond 64 bits are not supported")
    # int() turns an IntEnum member, such as http.HTTPStatus.OK, into a plain int.
    return int(value)
