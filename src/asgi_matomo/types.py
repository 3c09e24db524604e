"""Type aliases shared by the modules of this package."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

# One tracking request: Matomo parameter names mapped to values. Values are
# str or int; `cvar` is already a JSON string in Matomo's indexed form.
Hit: TypeAlias = dict[str, str | int]
