"""The `asgi-matomo demo` command: an example app, a recording Matomo endpoint and real traffic.

Everything here needs the `demo` extra (uvicorn and starlette), which the library itself does
not depend on. Import the submodules only after checking that those packages are installed.
"""
