"""Convert custom variables to the indexed JSON form that Matomo stores.

Matomo accepts ``cvar`` only as ``{"1": ["name", "value"], "2": [...]}`` with
ids from 1 to its number of custom variable slots (5 unless the Matomo admin
changed it). It drops any other shape, such as ``{"name": "value"}``, without
an error, and it cuts names and values to 200 characters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache

# Matomo cuts custom variable names and values to this many characters.
MAX_CVAR_LENGTH = 200

# Names of the variables every tracked request gets after the application's own.
STATUS_VARIABLE = "http_status_code"
METHOD_VARIABLE = "http_method"


def is_indexed(variables: Mapping[object, object]) -> bool:
    """Tell whether ``variables`` already has Matomo's indexed form.

    Every key must be a positive slot id (an int or a string of digits) and
    every value a ``[name, value]`` pair.
    """
    if not variables:
        return False
    for key, pair in variables.items():
        if isinstance(key, bool):
            return False
        if isinstance(key, str):
            if not (key.isascii() and key.isdigit()):
                return False
        elif not isinstance(key, int):
            return False
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            return False
    return True


def encode_indexed(variables: Mapping[object, object]) -> str:
    """Encode variables that are already indexed, unchanged apart from string keys."""
    return _dumps({str(key): value for key, value in variables.items()})


def encode_named(
    variables: Mapping[object, object],
    slots: int,
    *,
    status: int | None = None,
    method: str | None = None,
) -> tuple[str, list[str]]:
    """Convert ``{name: value}`` to the indexed form and return it with the dropped names.

    The application's variables take the first slots, in their order, and the
    request's status and method (when given) follow in the slots left. A
    variable whose value is None is left out. Names and values become strings
    cut to ``MAX_CVAR_LENGTH`` characters. The returned list names the
    variables that did not fit into ``slots``.
    """
    pairs: list[tuple[str, str]] = []
    for name, value in variables.items():
        if value is None:
            continue
        pairs.append((_clip(name), _clip(value)))
    names = {name for name, _ in pairs}
    if status is not None and STATUS_VARIABLE not in names:
        pairs.append((STATUS_VARIABLE, str(status)))
    if method is not None and METHOD_VARIABLE not in names:
        pairs.append((METHOD_VARIABLE, _clip(method)))

    dropped = [name for name, _ in pairs[slots:]]
    indexed = {str(slot): [name, value] for slot, (name, value) in enumerate(pairs[:slots], 1)}
    return _dumps(indexed), dropped


@lru_cache(maxsize=4096)
def default_cvar(status: int, method: str, slots: int) -> str:
    """Return the ``cvar`` of a request that set no variables of its own.

    The result depends only on the arguments, so it is cached. Methods come
    from the client, so the cache is bounded.
    """
    encoded, _ = encode_named({}, slots, status=status, method=method)
    return encoded


def _clip(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return text[:MAX_CVAR_LENGTH]


def _dumps(value: object) -> str:
    # Compact separators keep the hit small. default=str turns values that JSON
    # cannot encode, such as Decimal, into their text.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
