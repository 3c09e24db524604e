"""Convert values set by the application into hit values (str or int)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from . import urls

# Matomo keeps at most 1,024 characters of an action name and of a URL.
MAX_ACTION_NAME_LENGTH = 1024
# An estimate: common browser User-Agent strings are 100 to 200 characters, so
# they stay whole, while a hostile header cannot bloat every queued hit.
MAX_USER_AGENT_LENGTH = 500
# Accept-Language is only used to guess a country, and real values are short.
MAX_LANGUAGE_LENGTH = 200

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


def to_parameter(name: str, value: object) -> str | int:
    """Convert a value the application set to a hit value (str or int).

    Booleans become 0 or 1, dicts, lists and tuples become JSON, and other
    values become their text. Known text parameters are cut to the length
    Matomo keeps.
    """
    if isinstance(value, str):
        limit = _LENGTH_LIMITS.get(name)
        if limit is not None and len(value) > limit:
            return urls.truncate_encoded(value, limit)
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return to_parameter(name, str(value))
