"""ASGI middleware that tracks HTTP requests in Matomo through bulk tracking.

Wrap any ASGI application::

    from asgi_matomo import MatomoMiddleware

    app = MatomoMiddleware(app, matomo_url="https://matomo.example/matomo.php", idsite=1)

Each tracked request becomes one Matomo hit. A background task delivers the
hits in bulk, so requests never wait for Matomo.
"""

from __future__ import annotations

from .middleware import MatomoMiddleware
from .sender import FlushReport
from .stats import DeliveryStats

__all__ = ["DeliveryStats", "FlushReport", "MatomoMiddleware", "__version__"]

__version__ = "1.0.0.dev0"
