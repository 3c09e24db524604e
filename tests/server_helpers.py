"""Helpers for the end-to-end tests: uvicorn in a subprocess and decoding of recorded hits."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).parent

# Environment variable through which the app modules of tests/ learn the recording endpoint.
MATOMO_URL_VARIABLE = "ASGI_MATOMO_TEST_URL"

# Seconds a subprocess may take to start serving or to exit; generous for a loaded CI machine.
STARTUP_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class UvicornProcess:
    """`python -m uvicorn <app>` serving a module of tests/ on 127.0.0.1."""

    def __init__(self, app: str, *, env: Mapping[str, str]) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.output = ""
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--app-dir",
            str(TESTS_DIR),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--lifespan",
            "on",
            "--no-access-log",
        ]
        self.process = subprocess.Popen(  # noqa: S603 - fixed command line of this interpreter
            command,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_until_serving(self) -> None:
        """Wait until the server accepts connections; uvicorn binds only after lifespan startup."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _accepts_connections(self.port):
            if self.process.poll() is not None:
                output = self.process.communicate()[0]
                raise RuntimeError(f"uvicorn exited with {self.process.returncode}:\n{output}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn did not serve {self.base_url} in {STARTUP_TIMEOUT} s")
            time.sleep(0.05)

    def stop(self, signum: int = signal.SIGINT) -> int:
        """Send `signum`, wait for the process to exit and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        self.output = self.process.communicate(timeout=EXIT_TIMEOUT)[0]
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


@contextmanager
def uvicorn_process(app: str, matomo_url: str) -> Iterator[UvicornProcess]:
    """Serve `app` ("module:attribute" in tests/) with uvicorn, tracking into `matomo_url`."""
    server = UvicornProcess(app, env={MATOMO_URL_VARIABLE: matomo_url})
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.kill()


def custom_variables(hit: Mapping[str, Any]) -> dict[str, str]:
    """Decode a hit's `cvar` JSON string (Matomo's indexed form) into {name: value}."""
    indexed = json.loads(hit["cvar"])
    return {str(name): str(value) for name, value in indexed.values()}
