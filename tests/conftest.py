"""Settings and fixtures shared by the whole test suite."""

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from delivery_helpers import Matomo, emptied_recorder, serve_recorder

# Property tests check behaviour, not speed: a loaded CI machine must not turn
# a slow example into a failure.
settings.register_profile(
    "asgi-matomo", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("asgi-matomo")


@pytest.fixture(scope="module")
def served_recorder() -> Iterator[Matomo]:
    """A recording Matomo served on loopback for the tests of one module."""
    yield from serve_recorder()


@pytest.fixture
def matomo(served_recorder: Matomo) -> Iterator[Matomo]:
    """The module's recording Matomo, emptied and reset, with its tracking URL."""
    yield from emptied_recorder(served_recorder)
