"""The `asgi-matomo` console script."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# The demo runs an app server and a Matomo-compatible endpoint, which need packages that the
# library does not depend on.
DEMO_PACKAGES = ("uvicorn", "starlette")
DEMO_INSTALL_HINT = "pip install 'asgi-matomo[demo]'"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the `asgi-matomo` command."""
    from asgi_matomo import __version__

    parser = argparse.ArgumentParser(
        prog="asgi-matomo",
        description="Tools for the asgi-matomo ASGI middleware.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="run an example app and a recording Matomo endpoint on loopback",
        description=(
            "Serve a small Starlette app behind MatomoMiddleware and a Matomo-compatible "
            "recording endpoint with uvicorn on 127.0.0.1, send real HTTP requests of varied "
            "shapes to the app, shut it down gracefully and print what Matomo received. "
            "Nothing leaves the loopback interface. Exits with status 0 only when every "
            "tracked request was delivered."
        ),
    )
    demo.add_argument(
        "--requests",
        type=_positive_int,
        default=300,
        metavar="N",
        help="number of HTTP requests to send to the app (default: %(default)s)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=1,
        metavar="N",
        help="seed of the random request plan; the same seed sends the same requests "
        "(default: %(default)s)",
    )
    demo.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="requests in flight at once (default: %(default)s)",
    )
    demo.add_argument(
        "--rows",
        type=_non_negative_int,
        default=20,
        metavar="N",
        help="hits to show in the table, each kind of request in turn (default: %(default)s)",
    )
    demo.add_argument(
        "--verbose",
        action="store_true",
        help="show the log lines of uvicorn and asgi_matomo at INFO level",
    )
    return parser


def missing_demo_packages() -> list[str]:
    """Return the packages of the `demo` extra that cannot be imported."""
    missing = []
    for name in DEMO_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def _run_demo(arguments: argparse.Namespace) -> int:
    missing = missing_demo_packages()
    if missing:
        print(
            f"asgi-matomo demo: missing package(s): {', '.join(missing)}. "
            f"Install them with: {DEMO_INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2

    from asgi_matomo.demo.runner import run_demo

    return run_demo(
        requests=arguments.requests,
        seed=arguments.seed,
        concurrency=arguments.concurrency,
        rows=arguments.rows,
        verbose=arguments.verbose,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `asgi-matomo` command with `argv` (default: sys.argv) and return its exit status."""
    arguments = build_parser().parse_args(argv)
    if arguments.command == "demo":
        return _run_demo(arguments)
    raise AssertionError(f"unhandled command {arguments.command!r}")  # argparse rejects others


if __name__ == "__main__":
    sys.exit(main())
