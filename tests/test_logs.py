"""ThrottledLog: one line per kind of failure per interval, with the count suppressed."""

from __future__ import annotations

import logging

import pytest

from asgi_matomo.logs import MIN_SECRET_LENGTH, REDACTED, ThrottledLog
from delivery_helpers import FakeClock

LOGGER = "asgi_matomo.tests.logs"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def throttled(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> ThrottledLog:
    caplog.set_level(logging.DEBUG, LOGGER)
    return ThrottledLog(logging.getLogger(LOGGER), 60.0, secrets=("tok-12345",), clock=clock)


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


def test_first_message_logged_at_once(
    throttled: ThrottledLog, caplog: pytest.LogCaptureFixture
) -> None:
    assert throttled.log(logging.WARNING, "retry", "failed %d times", 3) is True
    assert messages(caplog) == ["failed 3 times"]
    assert caplog.records[0].levelno == logging.WARNING


def test_repeat_within_interval_suppressed(
    throttled: ThrottledLog, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    throttled.log(logging.WARNING, "retry", "first")
    clock.now += 10
    assert throttled.log(logging.WARNING, "retry", "second") is False
    clock.now += 49.9
    assert throttled.log(logging.WARNING, "retry", "third") is False

    assert messages(caplog) == ["first"]
    assert throttled.suppressed("retry") == 2


def test_throttled_counts_like_a_suppressed_line(
    throttled: ThrottledLog, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    assert throttled.throttled("queue_full") is False  # nothing logged yet
    assert throttled.suppressed("queue_full") == 0
    throttled.log(logging.WARNING, "queue_full", "first")
    clock.now += 10
    assert throttled.throttled("queue_full") is True
    assert throttled.throttled("retry") is False  # another kind
    clock.now += 51
    assert throttled.throttled("queue_full") is False
    throttled.log(logging.WARNING, "queue_full", "second")

    assert messages(caplog) == [
        "first",
        "second (1 similar message suppressed in the last 61 s)",
    ]


def test_line_after_interval_carries_count(
    throttled: ThrottledLog, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    throttled.log(logging.WARNING, "retry", "first")
    clock.now += 1
    throttled.log(logging.WARNING, "retry", "second")
    clock.now += 1
    throttled.log(logging.WARNING, "retry", "third")
    clock.now += 60
    assert throttled.log(logging.WARNING, "retry", "fourth") is True

    assert messages(caplog) == [
        "first",
        "fourth (2 similar messages suppressed in the last 62 s)",
    ]
    assert throttled.suppressed("retry") == 0


def test_single_suppressed_message_is_singular(
    throttled: ThrottledLog, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    throttled.log(logging.ERROR, "rejected", "a")
    throttled.log(logging.ERROR, "rejected", "b")
    clock.now += 61
    throttled.log(logging.ERROR, "rejected", "c")
    assert messages(caplog)[-1] == "c (1 similar message suppressed in the last 61 s)"


def test_kinds_are_throttled_separately(
    throttled: ThrottledLog, caplog: pytest.LogCaptureFixture
) -> None:
    throttled.log(logging.WARNING, "retry", "retrying")
    throttled.log(logging.WARNING, "queue_full", "queue full")
    throttled.log(logging.WARNING, "retry", "retrying again")
    assert messages(caplog) == ["retrying", "queue full"]


def test_zero_interval_logs_everything(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    throttled = ThrottledLog(logging.getLogger(LOGGER), 0.0, clock=clock)
    for number in range(3):
        assert throttled.log(logging.INFO, "retry", "line %d", number) is True
    assert messages(caplog) == ["line 0", "line 1", "line 2"]


def test_secret_redacted_from_message_and_arguments(
    throttled: ThrottledLog, caplog: pytest.LogCaptureFixture
) -> None:
    throttled.log(logging.ERROR, "a", "token tok-12345 in the message")
    throttled.log(logging.ERROR, "b", "token in %s", "an argument tok-12345!")
    assert messages(caplog) == [
        f"token {REDACTED} in the message",
        f"token in an argument {REDACTED}!",
    ]
    assert "tok-12345" not in caplog.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET /matomo.php?idsite=1&token_auth=abc&rec=1",
            f"GET /matomo.php?idsite=1&token_auth={REDACTED}&rec=1",
        ),
        (
            '{"requests": [], "token_auth": "a\\"b"}',
            f'{{"requests": [], "token_auth": "{REDACTED}"}}',
        ),
        ("{'token_auth': 'abc', 'x': 1}", f"{{'token_auth': '{REDACTED}', 'x': 1}}"),
        ("TOKEN_AUTH=abc", f"TOKEN_AUTH={REDACTED}"),
    ],
)
def test_token_auth_value_redacted(text: str, expected: str) -> None:
    throttled = ThrottledLog(logging.getLogger(LOGGER), 1.0)
    assert throttled.redact(text) == expected


def test_short_secret_keeps_words_intact() -> None:
    throttled = ThrottledLog(logging.getLogger(LOGGER), 1.0, secrets=("e",))
    text = "TypeError('scope[\"state\"] must be a dict')"
    assert throttled.redact(text) == text
    assert throttled.redact("token_auth=e&idsite=1") == f"token_auth={REDACTED}&idsite=1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abcdefgh", REDACTED),
        ("key=abcdefgh&x", f"key={REDACTED}&x"),
        ("'abcdefgh'.", f"'{REDACTED}'."),
        ("_abcdefgh_", f"_{REDACTED}_"),
        ("xabcdefgh", "xabcdefgh"),
        ("abcdefgh1", "abcdefgh1"),
        ("abcdefgh abcdefghij", f"{REDACTED} {REDACTED}"),
    ],
)
def test_secret_redacted_as_whole_value(text: str, expected: str) -> None:
    secrets = ("abcdefgh", "abcdefghij")
    assert len(secrets[0]) == MIN_SECRET_LENGTH
    throttled = ThrottledLog(logging.getLogger(LOGGER), 1.0, secrets=secrets)
    assert throttled.redact(text) == expected


def test_empty_and_missing_secrets_ignored(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    throttled = ThrottledLog(logging.getLogger(LOGGER), 1.0, secrets=(None, ""))
    throttled.log(logging.INFO, "a", "nothing to hide")
    assert messages(caplog) == ["nothing to hide"]
    assert throttled.redact("abc") == "abc"


def test_disabled_level_still_throttles(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    throttled = ThrottledLog(logging.getLogger(LOGGER), 60.0, clock=clock)
    assert throttled.log(logging.DEBUG, "retry", "hidden") is True
    assert throttled.log(logging.WARNING, "retry", "suppressed") is False
    assert messages(caplog) == []


def test_exception_traceback_attached(
    throttled: ThrottledLog, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        throttled.log(logging.ERROR, "internal", "failed", exc_info=exc)
    [record] = caplog.records
    assert record.exc_info is not None
    assert record.exc_info[1] is not None
    assert str(record.exc_info[1]) == "boom"


def test_reset_forgets_kinds(
    throttled: ThrottledLog, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    throttled.log(logging.WARNING, "retry", "first")
    throttled.log(logging.WARNING, "retry", "second")
    throttled.reset()
    assert throttled.suppressed("retry") == 0
    assert throttled.log(logging.WARNING, "retry", "third") is True
    assert messages(caplog) == ["first", "third"]


def test_negative_interval_rejected() -> None:
    with pytest.raises(ValueError, match=r"^interval must be >= 0 seconds, got -1\.0$"):
        ThrottledLog(logging.getLogger(LOGGER), -1.0)
