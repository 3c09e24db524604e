"""Translation of the HTTP client's errors into the delivery error hierarchy."""

from __future__ import annotations

import httpx
import pytest

from asgi_matomo.errors import (
    ClientError,
    DeliveryTimeout,
    TransportError,
    translate_httpx_errors,
)

URL = "http://127.0.0.1:8080/matomo.php"
REQUEST = httpx.Request("POST", URL)


@pytest.mark.parametrize(
    ("raised", "expected_type", "expected_message"),
    [
        (
            httpx.ReadTimeout("timed out", request=REQUEST),
            DeliveryTimeout,
            f"request to {URL} timed out (ReadTimeout)",
        ),
        (
            httpx.ConnectError("[Errno 111] Connection refused", request=REQUEST),
            TransportError,
            f"request to {URL} failed (ConnectError: [Errno 111] Connection refused)",
        ),
        (
            httpx.RemoteProtocolError("", request=REQUEST),
            TransportError,
            f"request to {URL} failed (RemoteProtocolError: no detail)",
        ),
        (
            OverflowError("getsockaddrarg: port must be 0-65535."),
            ClientError,
            f"the HTTP client cannot send to {URL} "
            "(OverflowError: getsockaddrarg: port must be 0-65535.)",
        ),
        (
            RuntimeError("Cannot send a request, as the client has been closed."),
            ClientError,
            f"the HTTP client cannot send to {URL} "
            "(RuntimeError: Cannot send a request, as the client has been closed.)",
        ),
    ],
)
def test_errors_translated_with_url(
    raised: Exception, expected_type: type[Exception], expected_message: str
) -> None:
    with pytest.raises(expected_type) as caught, translate_httpx_errors(URL):
        raise raised
    assert type(caught.value) is expected_type
    assert str(caught.value) == expected_message
    assert caught.value.__cause__ is raised


def test_client_error_is_a_transport_error() -> None:
    assert issubclass(ClientError, TransportError)


def test_cancellation_passes_through() -> None:
    import asyncio

    with pytest.raises(asyncio.CancelledError), translate_httpx_errors(URL):
        raise asyncio.CancelledError
