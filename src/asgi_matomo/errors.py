"""Exceptions raised while delivering hits to Matomo.

Every error that the delivery engine handles is a `DeliveryError`. Errors of the
HTTP client (httpx) are translated into this hierarchy in one place,
`translate_httpx_errors`, so the rest of the package never catches httpx types.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

__all__ = [
    "ClientError",
    "DeliveryError",
    "DeliveryTimeout",
    "HTTPStatusError",
    "InvalidResponseError",
    "MatomoError",
    "RedirectError",
    "TransportError",
    "translate_httpx_errors",
]


class MatomoError(Exception):
    """Base class of the exceptions defined by asgi_matomo."""


class DeliveryError(MatomoError):
    """A bulk tracking request to Matomo failed."""


class TransportError(DeliveryError):
    """No HTTP response arrived: connection refused or reset, DNS or TLS failure, bad protocol."""


class DeliveryTimeout(TransportError):
    """Connecting, sending the request or reading the response took longer than its timeout."""


class ClientError(TransportError):
    """The HTTP client raised an error that is not one of its request errors.

    Such an error comes from the configuration or the client, not from the
    network: a port outside 0-65535 in `matomo_url`, or a `client` that its
    owner has closed. It repeats on every attempt until that is fixed.
    """


class HTTPStatusError(DeliveryError):
    """Matomo responded with an HTTP status other than 2xx.

    `retry_after` is the delay in seconds that the `Retry-After` header
    requests, or None when the response has no valid `Retry-After`. `tracked`
    and `invalid` are the counts of a JSON error response (Matomo's bulk handler
    sends them with a 500), or None when the body has none.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        retry_after: float | None = None,
        tracked: int | None = None,
        invalid: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.tracked = tracked
        self.invalid = invalid


class RedirectError(HTTPStatusError):
    """Matomo responded with a 3xx redirect, which is a configuration error.

    Redirects are not followed: a redirected POST may be replayed as a GET
    without its body (301, 302, 303), or carry the token to another host.
    `location` is the URL the server redirected to, or None if it sent none.
    """

    def __init__(self, message: str, *, status_code: int, location: str | None) -> None:
        super().__init__(message, status_code=status_code)
        self.location = location


class InvalidResponseError(DeliveryError):
    """A 2xx response that does not confirm the hits of a bulk request.

    Examples: a body that is not JSON, `"status": "error"`, or no hit counted as
    tracked or invalid. `retryable` is True when sending the same batch again
    is safe, that is, when Matomo stored none of it.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@contextmanager
def translate_httpx_errors(url: str) -> Iterator[None]:
    """Raise the errors of an HTTP request made inside the block as `TransportError`.

    `url` names the request's target in the messages; pass it without
    credentials, because the messages end up in logs.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        raise DeliveryTimeout(f"request to {url} timed out ({type(exc).__name__})") from exc
    except httpx.RequestError as exc:
        # ConnectError, ReadError, RemoteProtocolError, ProxyError, DecodingError, ...
        raise TransportError(f"request to {url} failed ({_describe(exc)})") from exc
    except Exception as exc:
        # OverflowError for an invalid port, RuntimeError for a closed client, ...
        raise ClientError(f"the HTTP client cannot send to {url} ({_describe(exc)})") from exc


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc) or 'no detail'}"
