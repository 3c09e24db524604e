"""Profile the app process under wrk load with py-spy and summarise where its time goes.

Usage: python3 benchmarks/profile_load.py [--variant new] [--scenario healthy] [--duration 15]

Run benchmarks/run.py once first, because it creates the virtual environments.
The app, the Matomo endpoint and wrk are started as in the load benchmark, with
the same uvicorn settings and CPU placement. py-spy samples the app process
while wrk loads it.
Writes to benchmarks/.work/profiles/:

- ``<variant>-<scenario>.txt``: py-spy's raw collapsed stacks, one line per
  distinct stack with its sample count (input for flamegraph tools);
- ``<variant>-<scenario>.md``: the summary printed on stdout.

The summary attributes each sample to the innermost frame that is not in the
standard library, so that time in ``json`` or ``urllib`` counts for the code that
called it, then lists the share of samples by package and the functions of
asgi-matomo, the HTTP client and the event loop with their inclusive and own
shares. py-spy pauses the process for each sample, so the load figures of a
profiled run are lower than those of benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import environment
import load

PROFILE_DIR = environment.WORK_DIR / "profiles"
# "Class.function (package/module.py:123)" as py-spy writes a frame.
FRAME_PATTERN = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# Top-level names of files that py-spy shows without a site-packages prefix but
# that belong to the standard library.
STDLIB_MODULES = frozenset(sys.stdlib_module_names) | {"<frozen runpy>"}


def _frame_parts(frame: str) -> tuple[str, str]:
    """Return (file, function) of a py-spy frame, without the line number."""
    match = FRAME_PATTERN.match(frame)
    if match is None:
        return "?", frame
    return match["file"], match["function"]


def _package(file: str) -> str:
    top = file.split("/", 1)[0]
    return top.removesuffix(".py")


def _is_stdlib(file: str) -> bool:
    return _package(file) in STDLIB_MODULES or file.startswith("<")


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def summarise(stacks: Counter[tuple[str, ...]], title: str, top: int = 25) -> str:
    total = sum(stacks.values())
    by_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = [_frame_parts(frame) for frame in stack]
        owner = next(
            ((file, function) for file, function in reversed(frames) if not _is_stdlib(file)),
            frames[-1],
        )
        by_package[_package(owner[0])] += count
        own[f"{owner[0]}:{owner[1]}"] += count
        for name in {f"{file}:{function}" for file, function in frames}:
            inclusive[name] += count

    def share(samples: int) -> str:
        return f"{100 * samples / total:5.1f} %"

    lines = [f"# {title}", "", f"{total} samples.", "", "## Own time by package", ""]
    lines += ["| package | share |", "| --- | --- |"]
    lines += [f"| {package} | {share(n)} |" for package, n in by_package.most_common(top)]

    focus = ("asgi_matomo/", "httpx", "httpcore", "h11/", "anyio/", "uvloop/", "starlette/")
    lines += ["", "## Functions of asgi-matomo, the HTTP stack and the app", ""]
    lines += ["| function | inclusive | own |", "| --- | --- | --- |"]
    for name, n in inclusive.most_common():
        if name.startswith(focus) and n * 200 >= total:  # at least 0.5 %
            lines.append(f"| {name} | {share(n)} | {share(own[name])} |")

    lines += ["", "## Most own time, any function", ""]
    lines += ["| function | own |", "| --- | --- |"]
    lines += [f"| {name} | {share(n)} |" for name, n in own.most_common(top)]
    return "\n".join(lines) + "\n"


def profile(
    variant: str, scenario: str, duration: float, rate: int, middleware_options: str
) -> str:
    settings = load.LoadSettings(duration=duration, middleware_options=middleware_options)
    run_dir = PROFILE_DIR / f"{variant}-{scenario}"
    run_dir.mkdir(parents=True, exist_ok=True)
    raw_path = PROFILE_DIR / f"{variant}-{scenario}.txt"
    py_spy = environment.VENV_NEW.bin_dir / "py-spy"

    with load.matomo_endpoint(load.SCENARIOS[scenario], settings, run_dir) as (matomo_url, _):
        env = load.app_environment(variant, matomo_url, settings)
        app, port = load.start_uvicorn(
            load.VARIANT_VENVS[variant], "app:app", settings, "app", env,
            run_dir / "app.stderr", load.APP_PATH,
        )  # fmt: skip
        spy = None
        try:
            app_url = f"http://127.0.0.1:{port}{load.APP_PATH}"
            load.run_wrk(app_url, settings.warmup, settings, run_dir / "wrk-warmup.txt")
            spy = subprocess.Popen(
                [
                    *load.affinity_prefix(settings, "load"),
                    str(py_spy), "record", "--pid", str(app.pid),
                    "--duration", str(round(duration)), "--rate", str(rate),
                    "--format", "raw", "--output", str(raw_path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=(run_dir / "py-spy.log").open("wb"),
                start_new_session=True,
            )  # fmt: skip
            time.sleep(0.5)  # let py-spy attach before the load starts
            wrk = load.run_wrk(app_url, duration, settings, run_dir / "wrk.txt")
            spy.wait(timeout=duration + 60)
            load.stop_gracefully(app, settings.shutdown_limit)
        finally:
            if spy is not None and spy.poll() is None:
                load.kill_group(spy)
            if app.poll() is None:
                load.kill_group(app)

    title = (
        f"py-spy profile: {load.VARIANT_NAMES[variant]}, scenario {scenario}, "
        f"{wrk['requests_per_second']:.0f} requests/s while sampled at {rate} Hz"
    )
    summary = summarise(read_stacks(raw_path), title)
    (PROFILE_DIR / f"{variant}-{scenario}.md").write_text(summary)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=load.VARIANTS, default="new")
    parser.add_argument("--scenario", choices=tuple(load.SCENARIOS), default="healthy")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of sampled load")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--middleware-options",
        default="",
        metavar="JSON",
        help="JSON object of extra MatomoMiddleware arguments for the new variant",
    )
    arguments = parser.parse_args()
    if not environment.VENV_NEW.python.exists():
        parser.error("benchmarks/.work/venv-new is missing: run python3 benchmarks/run.py first")
    summary = profile(
        arguments.variant,
        arguments.scenario,
        arguments.duration,
        arguments.rate,
        arguments.middleware_options,
    )
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
