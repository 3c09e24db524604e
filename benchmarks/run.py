"""Benchmark the bare app, a status-only middleware, asgi-matomo 0.8.0 and this checkout.

Usage: python3 benchmarks/run.py [options]   (see --help and benchmarks/README.md)

Sets up benchmarks/.work/ (two virtual environments and wrk), runs the
micro-benchmarks, then the load runs in alternating order (for every round,
server stack and scenario: bare, floor, old, new), saves every raw figure to
benchmarks/.work/results.json and writes docs/benchmarks.md from it. All traffic
stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import environment
import load
import render

RESULTS_PATH = environment.WORK_DIR / "results.json"
DEFAULT_REPORT = environment.REPO_DIR / "docs" / "benchmarks.md"


def _csv(allowed: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        chosen = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in chosen if item not in allowed]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(
                f"invalid value {text!r}: expected a comma-separated list of {', '.join(allowed)}"
            )
        return chosen

    return parse


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 benchmarks/run.py",
        description="Benchmark the bare app, a status-only middleware, asgi-matomo 0.8.0 "
        "and this checkout on 127.0.0.1.",
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="load runs per stack, scenario and variant"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of measured load per run"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of unmeasured load before each run"
    )
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument(
        "--stacks",
        type=_csv(tuple(load.STACKS)),
        default=list(load.STACKS),
        help="comma-separated uvicorn stacks: uvloop-httptools (uvicorn[standard]), "
        "asyncio-h11 (plain uvicorn)",
    )

    parser.add_argument(
        "--scenarios",
        type=_csv(tuple(load.SCENARIOS)),
        default=list(load.SCENARIOS),
        help="comma-separated: healthy (responds at once), slow (responds after 2 s), down",
    )
    parser.add_argument(
        "--variants",
        type=_csv(load.VARIANTS),
        default=list(load.VARIANTS),
        help="comma-separated, run in the order given: bare, floor (a middleware that "
        "only reads the response status and the time), old (asgi-matomo 0.8.0), "
        "new (this checkout)",
    )

    parser.add_argument(
        "--middleware-options",
        default="",
        metavar="JSON",
        help="JSON object of extra MatomoMiddleware arguments for the new variant",
    )
    parser.add_argument(
        "--micro-repeats", type=int, default=15, help="repeats of the in-process benchmarks"
    )

    parser.add_argument("--skip-micro", action="store_true", help="run only the load benchmark")
    parser.add_argument("--skip-load", action="store_true", help="run only the micro-benchmarks")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the app to CPU 0 and wrk and the endpoint to the other CPUs",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="recreate both virtual environments first"
    )

    parser.add_argument(
        "--output", type=Path, default=DEFAULT_REPORT, help="report file (docs/benchmarks.md)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS_PATH,
        help="raw results file, saved after every run (benchmarks/.work/results.json)",
    )
    parser.add_argument(
        "--report-only",
        type=Path,
        metavar="RESULTS_JSON",
        help="write the report from a saved results file without running anything",
    )
    arguments = parser.parse_args(argv)
    if arguments.rounds < 1 or arguments.duration < 1 or arguments.connections < 1:
        parser.error("--rounds, --duration and --connections must be at least 1")
    if arguments.middleware_options:
        try:
            options = json.loads(arguments.middleware_options)
        except ValueError as exc:
            parser.error(f"invalid --middleware-options {arguments.middleware_options!r}: {exc}")
        if not isinstance(options, dict):
            parser.error(
                f"invalid --middleware-options {arguments.middleware_options!r}: "
                "expected a JSON object"
            )
    return arguments


@contextlib.contextmanager
def healthy_endpoint(settings: load.LoadSettings) -> Iterator[str]:
    """Yield the tracking URL of an endpoint that responds at once, for the micro-benchmarks."""
    run_dir = environment.WORK_DIR / "runs" / "micro"
    run_dir.mkdir(parents=True, exist_ok=True)
    with load.matomo_endpoint(0.0, settings, run_dir) as (matomo_url, _stats_url):
        yield matomo_url


def _run_result_script(command: list[str]) -> dict[str, Any]:
    """Run a micro-benchmark script and return the JSON of its RESULT line."""
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return result
    raise RuntimeError(
        f"{' '.join(command)} failed with exit code {completed.returncode}:\n"
        f"{completed.stderr[-3000:]}"
    )


# Runs of micro_middleware.py: the key in results["micro"]["middleware"], the
# load variant whose environment it runs in, and its extra arguments.
MICRO_MIDDLEWARE_RUNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("old", "old", ()),
    ("new", "new", ()),
    ("new_without_orjson", "new", ("--without-orjson",)),
)


def run_micro(settings: load.LoadSettings, variants: list[str], repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {"middleware": {}}
    pin = load.affinity_prefix(settings, "app")
    bench_dir = environment.BENCH_DIR
    with healthy_endpoint(settings) as matomo_url:
        for key, variant, extra_arguments in MICRO_MIDDLEWARE_RUNS:
            if variant not in variants:
                continue
            venv = load.VARIANT_VENVS[variant]
            print(f"micro-benchmark: middleware cost, {key}", flush=True)
            results["middleware"][key] = _run_result_script(
                [
                    *pin,
                    str(venv.python),
                    str(bench_dir / "micro_middleware.py"),
                    "--variant",
                    variant,
                    "--matomo-url",
                    matomo_url,
                    "--repeats",
                    str(repeats),
                    *extra_arguments,
                ]
            )
        print("micro-benchmark: delivery cost per hit", flush=True)
        parts = "encoding,clients,sender" if "new" in variants else "encoding,clients"
        results["sender"] = _run_result_script(
            [
                *pin,
                str(environment.VENV_NEW.python),
                str(bench_dir / "micro_sender.py"),
                "--matomo-url",
                matomo_url,
                "--parts",
                parts,
            ]
        )
    return results


def run_load(
    settings: load.LoadSettings,
    rounds: int,
    stacks: list[str],
    scenarios: list[str],
    variants: list[str],
    results: dict[str, Any],
    results_path: Path,
) -> None:
    """Run every round, stack, scenario and variant in alternating order, saving after each run."""
    runs: list[dict[str, Any]] = results.setdefault("load", [])
    total = rounds * len(stacks) * len(scenarios) * len(variants)
    for round_number in range(1, rounds + 1):
        for stack in stacks:
            loop, http = load.STACKS[stack]
            stack_settings = dataclasses.replace(settings, loop=loop, http=http)
            for scenario in scenarios:
                for variant in variants:
                    run_dir = load.run_dir_for(round_number, scenario, variant, stack)
                    run = load.run_once(scenario, variant, stack_settings, run_dir)
                    run["round"] = round_number
                    run["stack"] = stack
                    runs.append(run)
                    save_results(results, results_path)
                    wrk = run["wrk"]
                    print(
                        f"[{len(runs)}/{total}] round {round_number} {stack:16} {scenario:7} "
                        f"{variant:5} {wrk['requests_per_second']:9.0f} req/s  "
                        f"p50 {wrk['latency_p50_us'] / 1000:7.2f} ms  "
                        f"p99 {wrk['latency_p99_us'] / 1000:8.2f} ms  "
                        f"log lines {run['log_lines']}",
                        flush=True,
                    )


def save_results(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(results, indent=1))
    temporary.replace(path)


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    if arguments.report_only:
        results = json.loads(arguments.report_only.read_text())
        arguments.output.write_text(render.render(results))
        print(f"wrote {arguments.output}")
        return 0

    started = time.monotonic()
    environment.set_up(arguments.rebuild, install_checkout="new" in arguments.variants)
    settings = load.LoadSettings(
        duration=arguments.duration,
        warmup=arguments.warmup,
        connections=arguments.connections,
        pin_cpus=not arguments.no_pin,
        middleware_options=arguments.middleware_options,
    )
    results: dict[str, Any] = {
        "command": shlex.join(["python3", "benchmarks/run.py", *argv]),
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            **{
                key: value
                for key, value in settings.__dict__.items()
                if key not in ("loop", "http")
            },
            "stacks": arguments.stacks,
            "rounds": arguments.rounds,
            "scenarios": arguments.scenarios,
            "variants": arguments.variants,
            "endpoint_delays": {name: load.SCENARIOS[name] for name in arguments.scenarios},
            "cpus_available": load.cpu_count(),
        },
        "machine": environment.describe_machine(),
        "versions": {
            "new": environment.installed_versions(environment.VENV_NEW),
            "old": environment.installed_versions(environment.VENV_OLD),
        },
    }
    if not arguments.skip_micro:
        results["micro"] = run_micro(settings, arguments.variants, arguments.micro_repeats)
        save_results(results, arguments.results)
    if not arguments.skip_load:
        run_load(
            settings,
            arguments.rounds,
            arguments.stacks,
            arguments.scenarios,
            arguments.variants,
            results,
            arguments.results,
        )
    results["elapsed_seconds"] = round(time.monotonic() - started)
    save_results(results, arguments.results)
    arguments.output.write_text(render.render(results))
    print(f"wrote {arguments.output} and {arguments.results} in {results['elapsed_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
