"""Rate-limited logging for failures that repeat, such as an unreachable Matomo.

An outage can fail thousands of requests a minute; logging each of them would
flood the application's log. `ThrottledLog` writes the first message of each kind
at once and then at most one line per kind per interval, carrying the number of
messages it suppressed since the previous line.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "ThrottledLog"]

# Text that replaces every secret (the Matomo token) in a logged line.
REDACTED = "[redacted]"

# Secrets shorter than this are redacted only where a token_auth parameter
# names them. Replacing every occurrence of a short string would also cut
# ordinary words apart ("e" in "TypeError"), and a Matomo token has 32 characters.
MIN_SECRET_LENGTH = 8

# The value of a token_auth parameter in a query string, in JSON or in a
# Python repr, whatever the value is. Groups 1 to 3 hold the name and the
# separator of each of these forms.
_TOKEN_PARAMETER = re.compile(
    r"""(token_auth=)[^&\s"']+"""
    r'|("token_auth"\s*:\s*)"(?:[^"\\]|\\.)*"'
    r"|('token_auth'\s*:\s*)'(?:[^'\\]|\\.)*'",
    re.IGNORECASE,
)


class ThrottledLog:
    """Log at most one line per kind of message per `interval` seconds.

    `kind` names a kind of failure ("queue_full", "retry", ...). A message
    whose kind was logged less than `interval` seconds ago is counted instead of
    logged, and the next line of that kind ends with the count. An `interval`
    of 0 logs every message. Every line passes through `redact`, so a token
    never reaches the log even when an error message from elsewhere repeats it.
    """

    __slots__ = ("_clock", "_interval", "_last_logged", "_logger", "_secret", "_suppressed")

    def __init__(
        self,
        logger: logging.Logger,
        interval: float,
        *,
        secrets: Iterable[str | None] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval < 0:
            raise ValueError(f"interval must be >= 0 seconds, got {interval!r}")
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._secret = _secret_pattern(secrets)
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    @property
    def logger(self) -> logging.Logger:
        """The logger that receives the lines."""
        return self._logger

    def throttled(self, kind: str) -> bool:
        """Return True, counting the message as suppressed, when it is too soon to log `kind`.

        Return False, counting nothing, when `log` would write the message.
        A caller whose message is costly to build calls this first and skips
        building it when it returns True.
        """
        last = self._last_logged.get(kind)
        if last is not None and self._clock() - last < self._interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return True
        return False

    def log(
        self,
        level: int,
        kind: str,
        msg: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> bool:
        """Log `msg % args` unless a line of `kind` was logged within the interval.

        `exc_info` adds that exception's traceback to the line. Return True when
        a line was written (or would have been, had `level` been enabled) and
        False when the message was suppressed and counted.
        """
        now = self._clock()
        last = self._last_logged.get(kind)
        if last is not None and now - last < self._interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False

        suppressed = self._suppressed.pop(kind, 0)
        self._last_logged[kind] = now
        if not self._logger.isEnabledFor(level):
            return True

        text = msg % args if args else msg
        if suppressed:
            elapsed = now - last if last is not None else 0.0
            noun = "message" if suppressed == 1 else "messages"
            text = f"{text} ({suppressed} similar {noun} suppressed in the last {elapsed:.0f} s)"
        self._logger.log(level, "%s", self.redact(text), exc_info=exc_info)
        return True

    def redact(self, text: str) -> str:
        """Return `text` with the secrets replaced by `REDACTED`.

        The value of every token_auth parameter is replaced, and so is each
        secret of at least `MIN_SECRET_LENGTH` characters where it appears
        as a whole value, that is, without a letter or digit right before or
        after it. A secret inside a longer word is left alone.
        """
        text = _TOKEN_PARAMETER.sub(_redact_parameter, text)
        if self._secret is not None:
            text = self._secret.sub(REDACTED, text)
        return text

    def suppressed(self, kind: str) -> int:
        """Return how many messages of `kind` were suppressed since its last line."""
        return self._suppressed.get(kind, 0)

    def reset(self) -> None:
        """Forget every kind, so that the next message of each kind is logged at once."""
        self._last_logged.clear()
        self._suppressed.clear()


def _secret_pattern(secrets: Iterable[str | None]) -> re.Pattern[str] | None:
    """Return a pattern of the secrets that are long enough to match whole values."""
    words = {secret for secret in secrets if secret and len(secret) >= MIN_SECRET_LENGTH}
    if not words:
        return None
    # Longest first, so that a secret that contains another one is replaced whole.
    alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    return re.compile(f"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])")


def _redact_parameter(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return match.group(1) + REDACTED
    if match.group(2) is not None:
        return f'{match.group(2)}"{REDACTED}"'
    return f"{match.group(3)}'{REDACTED}'"
