"""The retry rule, the backoff and Retry-After parsing."""

from __future__ import annotations

import email.utils
import random

import pytest

from asgi_matomo.errors import (
    DeliveryError,
    DeliveryTimeout,
    HTTPStatusError,
    InvalidResponseError,
    RedirectError,
    TransportError,
)
from asgi_matomo.retry import backoff_delay, is_retryable, parse_retry_after, retry_delay


def status(code: int) -> HTTPStatusError:
    return HTTPStatusError(f"Matomo responded {code}", status_code=code)


RETRY_CASES: list[tuple[str, DeliveryError, bool]] = [
    ("connection refused", TransportError("ConnectError"), True),
    ("connection reset", TransportError("ReadError"), True),
    ("timeout", DeliveryTimeout("ReadTimeout"), True),
    ("500", status(500), True),
    ("502", status(502), True),
    ("503", status(503), True),
    ("504", status(504), True),
    ("599", status(599), True),
    ("408", status(408), True),
    ("429", status(429), True),
    ("400", status(400), False),
    ("401", status(401), False),
    ("403", status(403), False),
    ("404", status(404), False),
    ("405", status(405), False),
    ("413", status(413), False),
    ("422", status(422), False),
    ("301", RedirectError("moved", status_code=301, location="https://x/"), False),
    ("302", RedirectError("found", status_code=302, location=None), False),
    ("307", RedirectError("moved", status_code=307, location="https://x/"), False),
    ("308", RedirectError("moved", status_code=308, location="https://x/"), False),
    ("not json", InvalidResponseError("not JSON", retryable=True), True),
    ("partly confirmed", InvalidResponseError("partial", retryable=False), False),
    ("other delivery error", DeliveryError("unknown"), False),
]


@pytest.mark.parametrize(
    ("error", "expected"),
    [(error, expected) for _, error, expected in RETRY_CASES],
    ids=[name for name, _, _ in RETRY_CASES],
)
def test_is_retryable(error: DeliveryError, expected: bool) -> None:
    assert is_retryable(error) is expected


def test_first_backoff_between_initial_and_triple() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(None, initial=0.5, maximum=30.0, rng=rng) for _ in range(200)]
    assert min(delays) >= 0.5
    assert max(delays) <= 1.5
    assert len(set(delays)) > 100  # jittered


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(2)
    previous = 0.5
    delays = []
    for _ in range(30):
        delay = backoff_delay(previous, initial=0.5, maximum=30.0, rng=rng)
        assert 0.5 <= delay <= min(30.0, 3 * previous)
        delays.append(delay)
        previous = delay
    assert max(delays) == 30.0


def test_backoff_never_below_initial_after_small_delay() -> None:
    rng = random.Random(3)
    for _ in range(100):
        assert backoff_delay(0.01, initial=0.5, maximum=30.0, rng=rng) >= 0.5


def test_backoff_same_seed_same_delays() -> None:
    first = [backoff_delay(2.0, initial=0.5, maximum=30.0, rng=random.Random(7)) for _ in range(3)]
    second = [
        backoff_delay(2.0, initial=0.5, maximum=30.0, rng=random.Random(7)) for _ in range(3)
    ]
    assert first == second


NOW = 1_800_000_000.0


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (http_date(NOW + 30), 30.0),
        (http_date(NOW - 30), 0.0),
        (None, None),
        ("", None),
        ("   ", None),
        ("-1", None),
        ("soon", None),
        ("1e3", None),
        ("١٢", None),  # Arabic-Indic digits are not HTTP delay-seconds
        ("Wed, 21 Oct 2015 07:28:00", None),  # an HTTP date always names GMT
        ("Wed, 99 Foo 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_after_raises_backoff_to_floor() -> None:
    delay = retry_delay(
        None, 10.0, initial=0.5, maximum=30.0, retry_after_max=120.0, rng=random.Random(4)
    )
    assert delay == 10.0


def test_retry_after_floor_is_capped() -> None:
    delay = retry_delay(
        None, 3600.0, initial=0.5, maximum=30.0, retry_after_max=120.0, rng=random.Random(4)
    )
    assert delay == 120.0


def test_retry_after_below_backoff_changes_nothing() -> None:
    with_header = retry_delay(
        20.0, 0.0, initial=0.5, maximum=30.0, retry_after_max=120.0, rng=random.Random(5)
    )
    without = retry_delay(
        20.0, None, initial=0.5, maximum=30.0, retry_after_max=120.0, rng=random.Random(5)
    )
    assert with_header == without
    assert with_header >= 0.5
