"""Settings shared by the whole test suite."""

from hypothesis import HealthCheck, settings

# Property tests check behaviour, not speed: a loaded CI machine must not turn
# a slow example into a failure.
settings.register_profile(
    "asgi-matomo", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("asgi-matomo")
