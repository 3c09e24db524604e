"""Plain-text rendering of what the demo's Matomo endpoint received."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

# Widest cell of each text column; longer values end with an ellipsis.
_MAX_CELL = {"url": 64, "action_name": 28, "event": 22}


def display_width(text: str) -> int:
    """Return the number of terminal columns `text` takes (East Asian wide characters take 2)."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _fit(text: str, width: int) -> str:
    if display_width(text) <= width:
        return text
    cut = text
    while display_width(cut) > width - 1:
        cut = cut[:-1]
    return cut + "…"


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def custom_variables(hit: Mapping[str, Any]) -> dict[str, str]:
    """Return the hit's custom variables as {name: value}, read from Matomo's indexed form."""
    raw = hit.get("cvar")
    if not isinstance(raw, str):
        return {}
    try:
        indexed = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(indexed, dict):
        return {}
    variables = {}
    for pair in indexed.values():
        if isinstance(pair, list) and len(pair) == 2:
            variables[str(pair[0])] = str(pair[1])
    return variables


def hit_row(hit: Mapping[str, Any]) -> dict[str, str]:
    """Return the table cells of one hit: method, status, url, action_name, pf_srv, event."""
    variables = custom_variables(hit)
    event = ""
    if "e_c" in hit or "e_a" in hit:
        event = f"{hit.get('e_c', '')} / {hit.get('e_a', '')}"
    return {
        "method": variables.get("http_method", ""),
        "status": variables.get("http_status_code", ""),
        "url": str(hit.get("url", "")),
        "action_name": str(hit.get("action_name", "")),
        "pf_srv": str(hit.get("pf_srv", "")),
        "event": event,
        "other cvars": ", ".join(
            f"{name}={value}"
            for name, value in variables.items()
            if name not in ("http_method", "http_status_code")
        ),
    }


def format_table(rows: Sequence[Mapping[str, str]]) -> str:
    """Format rows of equal keys as an aligned text table with a header line."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    cells = [[_fit(row[column], _MAX_CELL.get(column, 40)) for column in columns] for row in rows]
    widths = [
        max(display_width(column), *(display_width(line[index]) for line in cells))
        for index, column in enumerate(columns)
    ]
    lines = ["  ".join(_pad(column, width) for column, width in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    for line in cells:
        lines.append(
            "  ".join(_pad(cell, width) for cell, width in zip(line, widths, strict=True))
        )
    return "\n".join(line.rstrip() for line in lines)


def format_figures(figures: Sequence[tuple[str, object]]) -> str:
    """Format (label, value) pairs as a two-column list with right-aligned values."""
    label_width = max(len(label) for label, _ in figures)
    values = [f"{value:.1f}" if isinstance(value, float) else str(value) for _, value in figures]
    value_width = max(len(value) for value in values)
    return "\n".join(
        f"  {label.ljust(label_width)}  {value.rjust(value_width)}"
        for (label, _), value in zip(figures, values, strict=True)
    )
