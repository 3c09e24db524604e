"""Convert custom variables to the indexed JSON form that Matomo stores.

Matomo accepts ``cvar`` only as ``{"1": ["name", "value"], "2": [...]}`` with
ids from 1 to its number of custom variable slots (5 unless the Matomo admin
changed it). It drops any other shape, such as ``{"name": "value"}``, without
an error, and it cuts names and values to 200 characters.

Every form the application may give is brought into that shape here, so that
what is sent respects ``cvar_slots`` and the 200-character limit:

* ``{name: value}``: the variables take slots 1, 2, ... in their order;
* a dict whose keys are all slot ids (``1`` or ``"1"``), with ``[name,
  value]`` pairs: each pair keeps its slot;
* a JSON string of either dict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import NamedTuple

from .params import MAX_CVAR_LENGTH, to_text

__all__ = [
    "MAX_CVAR_LENGTH",
    "METHOD_VARIABLE",
    "STATUS_VARIABLE",
    "CustomVariables",
    "default_cvar",
    "encode",
]

# Names of the variables every tracked request gets after the application's own.
STATUS_VARIABLE = "http_status_code"
METHOD_VARIABLE = "http_method"

_SHAPE = "a dict of custom variables, {name: value} or {slot: [name, value]}, or its JSON"


class CustomVariables(NamedTuple):
    """Custom variables in Matomo's indexed form, and what was left out of them."""

    # The indexed form as compact JSON, or None when no variable remains.
    encoded: str | None
    # Names of the variables whose slot is above cvar_slots.
    dropped: tuple[str, ...]
    # Descriptions of the entries that are not valid, without their values.
    invalid: tuple[str, ...]


def encode(
    variables: object,
    slots: int,
    *,
    status: int | None = None,
    method: str | None = None,
) -> CustomVariables:
    """Convert custom variables in any accepted form to Matomo's indexed form.

    Named variables take the first slots, in their order, and the request's
    ``status`` and ``method`` (when given) follow in the slots left, unless
    the application set variables of the same names. A named variable whose
    value is None is left out. Names and values become text as
    :func:`asgi_matomo.params.to_text` returns it, cut to
    ``MAX_CVAR_LENGTH`` characters.

    In the indexed form every entry keeps its slot, and no status or method is
    added. Slot ids below 1, entries that are not ``[name, value]`` pairs and
    values of an unsupported type are invalid and left out.

    Raises TypeError when ``variables`` has none of the accepted shapes and
    ValueError when it is a string that is not JSON.
    """
    if isinstance(variables, str):
        try:
            variables = json.loads(variables)
        except ValueError:
            raise ValueError(f"a string must be the JSON of {_SHAPE}") from None
    if not isinstance(variables, Mapping):
        raise TypeError(f"expected {_SHAPE}, got a value of type {type(variables).__name__}")
    if variables and all(_slot_id(key) is not None for key in variables):
        return _encode_indexed(variables, slots)
    return _encode_named(variables, slots, status=status, method=method)


@lru_cache(maxsize=4096)
def default_cvar(status: int, method: str, slots: int) -> str:
    """Return the ``cvar`` of a request that set no variables of its own.

    The result depends only on the arguments, so it is cached. Methods come
    from the client, so the cache is bounded.
    """
    encoded = encode({}, slots, status=status, method=method).encoded
    assert encoded is not None  # At least the status fits into one slot.
    return encoded


def _encode_named(
    variables: Mapping[object, object],
    slots: int,
    *,
    status: int | None,
    method: str | None,
) -> CustomVariables:
    pairs: list[tuple[str, str]] = []
    invalid: list[str] = []
    for name, value in variables.items():
        if value is None:
            continue
        try:
            pairs.append((_clip(to_text(name)), _clip(to_text(value))))
        except (TypeError, ValueError) as exc:
            invalid.append(f"{_describe_key(name)} ({exc})")
    names = {name for name, _ in pairs}
    if status is not None and STATUS_VARIABLE not in names:
        # str(int()) because Python 3.10 formats an http.HTTPStatus member,
        # which Starlette passes on unchanged, as "HTTPStatus.NOT_FOUND".
        pairs.append((STATUS_VARIABLE, str(int(status))))
    if method is not None and METHOD_VARIABLE not in names:
        pairs.append((METHOD_VARIABLE, _clip(method)))

    dropped = tuple(name for name, _ in pairs[slots:])
    indexed = {str(slot): [name, value] for slot, (name, value) in enumerate(pairs[:slots], 1)}
    return CustomVariables(_dumps(indexed) if indexed else None, dropped, tuple(invalid))


def _encode_indexed(variables: Mapping[object, object], slots: int) -> CustomVariables:
    entries: dict[int, list[str]] = {}
    dropped: list[str] = []
    invalid: list[str] = []
    for key, pair in variables.items():
        slot = _slot_id(key)
        assert slot is not None  # encode() checked every key.
        if slot < 1:
            invalid.append(f"slot {key!r} (slot ids start at 1)")
            continue
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            invalid.append(f"slot {key!r} (expected a [name, value] pair)")
            continue
        name, value = pair
        if name is None or value is None:
            invalid.append(f"slot {key!r} (the name and the value must not be None)")
            continue
        try:
            name_text, value_text = _clip(to_text(name)), _clip(to_text(value))
        except (TypeError, ValueError) as exc:
            invalid.append(f"slot {key!r} ({exc})")
            continue
        if slot > slots:
            dropped.append(name_text)
            continue
        entries[slot] = [name_text, value_text]

    indexed = {str(slot): entries[slot] for slot in sorted(entries)}
    return CustomVariables(_dumps(indexed) if indexed else None, tuple(dropped), tuple(invalid))


def _slot_id(key: object) -> int | None:
    """Return ``key`` as a slot id, or None when it is not an int or a string of digits."""
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 18:
        return int(key)
    return None


def _describe_key(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _clip(text: str) -> str:
    return text[:MAX_CVAR_LENGTH]


def _dumps(value: object) -> str:
    # Compact separators keep the hit small. Every name and value is a str.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
