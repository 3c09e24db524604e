"""The route_details example of the user documentation, unchanged except for matomo_url.

Served by uvicorn in a subprocess; ASGI_MATOMO_TEST_URL is the loopback recording endpoint.
"""

# The imports keep the order of the documentation page.
# ruff: noqa: I001

import os

from asgi_matomo import MatomoMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route


async def foo(request):
    return JSONResponse({"name": "foo"})


app = Starlette(
    routes=[Route("/foo", foo)],
    middleware=[
        Middleware(
            MatomoMiddleware,
            matomo_url=os.environ["ASGI_MATOMO_TEST_URL"],
            idsite=12345,  # your service tracking id
            route_details={"/foo": {"action_name": "Foo/foo", "e_c": "Foo", "e_a": "Playing"}},
        )
    ],
)
