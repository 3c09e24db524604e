"""When to retry a failed bulk request, and how long to wait before the next attempt."""

from __future__ import annotations

import email.utils
import math
import random
import time

from .errors import (
    DeliveryError,
    HTTPStatusError,
    InvalidResponseError,
    RedirectError,
    TransportError,
)

__all__ = [
    "RETRYABLE_STATUS_CODES",
    "backoff_delay",
    "is_retryable",
    "parse_retry_after",
    "retry_delay",
]

# 4xx statuses that mean "try again later": 408 Request Timeout, 429 Too Many Requests.
RETRYABLE_STATUS_CODES = frozenset({408, 429})

_default_random = random.Random()


def is_retryable(error: DeliveryError) -> bool:
    """Return True when sending the same batch again may succeed.

    Retried: transport errors and timeouts, HTTP 5xx, 408 and 429, and a 2xx
    response that confirms none of the batch (not JSON, ``"status": "error"``).
    Not retried: redirects, other 4xx statuses, and a 2xx response that
    confirms part of the batch, since a retry would store that part twice.
    """
    if isinstance(error, RedirectError):
        return False
    if isinstance(error, HTTPStatusError):
        return error.status_code >= 500 or error.status_code in RETRYABLE_STATUS_CODES
    if isinstance(error, InvalidResponseError):
        return error.retryable
    return isinstance(error, TransportError)


def backoff_delay(
    previous: float | None,
    *,
    initial: float,
    maximum: float,
    rng: random.Random | None = None,
) -> float:
    """Return the seconds to wait before the next attempt: exponential, capped, jittered.

    This is "decorrelated jitter": a random delay between `initial` and three
    times the `previous` delay (three times `initial` for the first retry),
    capped at `maximum`. The delay grows about threefold per failure, never
    drops below `initial`, and the randomness keeps many processes that failed
    together from retrying together.
    """
    generator = rng or _default_random
    upper = 3 * initial if previous is None else max(initial, 3 * previous)
    return min(maximum, generator.uniform(initial, upper))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Return the delay in seconds that a `Retry-After` header value requests.

    The value is either a number of seconds or an HTTP date (RFC 9110,
    section 10.2.3). A date in the past gives 0. Return None for a missing or
    invalid value. `now` is the current UNIX time (default: `time.time()`).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.replace(".", "", 1).isdigit():
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None  # An HTTP date is always in GMT; a date without a zone is invalid.
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def retry_delay(
    previous: float | None,
    retry_after: float | None,
    *,
    initial: float,
    maximum: float,
    retry_after_max: float,
    rng: random.Random | None = None,
) -> float:
    """Return the seconds to wait before retrying: the backoff, raised to `Retry-After`.

    `retry_after` (seconds requested by the server, or None) sets a floor on the
    delay. The floor itself is capped at `retry_after_max`, so a server cannot
    stop delivery for hours.
    """
    delay = backoff_delay(previous, initial=initial, maximum=maximum, rng=rng)
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_max))
    return delay
