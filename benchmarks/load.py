"""Run one load test: the Matomo endpoint, the app under uvicorn, and wrk, all on 127.0.0.1.

Every process is started in its own session (process group) and is stopped by
the end of the run. uvicorn gets SIGINT, a graceful shutdown in which the
middleware can flush its queue. A process group that has not exited within the
shutdown limit gets SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from environment import BENCH_DIR, VENV_NEW, VENV_OLD, WORK_DIR, Venv

APP_PATH = "/items/42?page=1"
MATOMO_PATH = "/matomo.php"

# Seconds that each scenario's endpoint waits before it responds; None means no
# endpoint at all: the tracking URL points at a loopback port with nothing listening.
SCENARIOS: dict[str, float | None] = {"healthy": 0.0, "slow": 2.0, "down": None}
# The order in which every round runs them. "floor" wraps the app in a middleware
# that only times the request and reads the response status (see app.py).
VARIANTS = ("bare", "floor", "old", "new")
VARIANT_NAMES = {
    "bare": "bare app",
    "floor": "status-only middleware (tracks nothing)",
    "old": "asgi-matomo 0.8.0",
    "new": "asgi-matomo (this checkout)",
}
VARIANT_VENVS: dict[str, Venv] = {
    "bare": VENV_NEW,
    "floor": VENV_NEW,
    "old": VENV_OLD,
    "new": VENV_NEW,
}
# uvicorn's event loop and HTTP parser. `pip install uvicorn` gives asyncio and
# h11; `pip install uvicorn[standard]` adds uvloop and httptools, which uvicorn
# then picks by default.
STACKS: dict[str, tuple[str, str]] = {
    "uvloop-httptools": ("uvloop", "httptools"),
    "asyncio-h11": ("asyncio", "h11"),
}
STACK_NAMES = {"uvloop-httptools": "uvloop + httptools", "asyncio-h11": "asyncio + h11"}

STARTUP_TIMEOUT = 20.0  # seconds for a uvicorn process to respond to its first request
STARTUP_ATTEMPTS = 3
POLL_INTERVAL = 0.05  # seconds between reads of /proc while waiting for an exit


@dataclass(frozen=True)
class LoadSettings:
    duration: float = 10.0  # seconds of measured load per run
    warmup: float = 1.0  # seconds of unmeasured load before it
    connections: int = 64
    wrk_threads: int = 1
    loop: str = "uvloop"
    http: str = "httptools"
    pin_cpus: bool = True  # the app on CPU 0; wrk and the endpoint on CPU 1
    shutdown_limit: float = 60.0  # seconds to wait for the app to exit after SIGINT
    # JSON object of extra MatomoMiddleware arguments for the "new" variant.
    middleware_options: str = ""


@dataclass
class ProcessUsage:
    """Resource figures read from /proc/<pid> until the process exited."""

    peak_rss_kib: int = 0
    cpu_seconds: float = 0.0
    exit_code: int | None = None
    shutdown_seconds: float = 0.0
    killed: bool = False


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def affinity_prefix(settings: LoadSettings, role: str) -> list[str]:
    """Return a taskset prefix: the app gets CPU 0, the load side gets the other CPUs."""
    if not settings.pin_cpus or cpu_count() < 2:
        return []
    cpus = sorted(os.sched_getaffinity(0))
    chosen = cpus[:1] if role == "app" else cpus[1:]
    return ["taskset", "-c", ",".join(str(cpu) for cpu in chosen)]


def free_port() -> int:
    """Return a 127.0.0.1 TCP port that was free a moment ago.

    uvicorn's --fd option would avoid the race, but uvicorn wraps that descriptor
    as a Unix socket and so never sets TCP_NODELAY. Nagle's algorithm then meets
    the 40 ms delayed ACK on every response. start_uvicorn retries on a clash instead.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """Yield a 127.0.0.1 port that is bound but not listening, so connections are refused.

    Keeping the socket bound for the whole run stops any other process from
    taking the port, unlike a port that was merely free a moment ago.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _uvicorn_command(
    venv: Venv, target: str, port: int, settings: LoadSettings, role: str
) -> list[str]:
    return [
        *affinity_prefix(settings, role),
        str(venv.python),
        "-m",
        "uvicorn",
        target,
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        settings.loop,
        "--http",
        settings.http,
        "--no-access-log",
    ]


def start_uvicorn(
    venv: Venv,
    target: str,
    settings: LoadSettings,
    role: str,
    env: dict[str, str],
    stderr_path: Path,
    ready_path: str,
    extra_arguments: tuple[str, ...] = (),
) -> tuple[subprocess.Popen[bytes], int]:
    """Start uvicorn serving target on a free port in a new session; return it once it responds.

    ready_path is requested until it responds. A port taken by another process
    between free_port() and uvicorn's bind makes uvicorn exit, so a few ports are tried.
    """
    for _attempt in range(STARTUP_ATTEMPTS):
        port = free_port()
        command = [*_uvicorn_command(venv, target, port, settings, role), *extra_arguments]
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                start_new_session=True,
            )
        try:
            wait_until_serving(process, f"http://127.0.0.1:{port}{ready_path}", stderr_path)
        except PortInUseError:
            continue
        except BaseException:
            kill_group(process)
            raise
        return process, port
    raise RuntimeError(f"uvicorn found no free port in {STARTUP_ATTEMPTS} attempts")


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback URL)
        body: bytes = response.read()
        return body


class PortInUseError(RuntimeError):
    """uvicorn exited because another process took its port first."""


def wait_until_serving(process: subprocess.Popen[bytes], url: str, stderr_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = stderr_path.read_text(errors="replace")[-2000:]
            if "address already in use" in output.lower():
                raise PortInUseError(output)
            raise RuntimeError(f"uvicorn exited with code {process.returncode}:\n{output}")
        try:
            http_get(url, timeout=1.0)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"uvicorn did not respond to {url} within {STARTUP_TIMEOUT} s")


def _read_proc(pid: int, usage: ProcessUsage) -> None:
    """Update usage from /proc/<pid>; a zombie or vanished process changes nothing."""
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                usage.peak_rss_kib = int(line.split()[1])
    with contextlib.suppress(OSError, IndexError, ValueError):
        # Fields after the parenthesised command name: utime and stime are the
        # 12th and 13th of them, in clock ticks.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        if ticks:
            usage.cpu_seconds = ticks / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU time that process pid has used so far."""
    usage = ProcessUsage()
    _read_proc(pid, usage)
    return usage.cpu_seconds


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def stop_gracefully(process: subprocess.Popen[bytes], limit: float) -> ProcessUsage:
    """Send SIGINT, follow /proc until the process exits, SIGKILL its group past the limit."""
    usage = ProcessUsage()
    _read_proc(process.pid, usage)
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    while process.poll() is None:
        if time.monotonic() - started > limit:
            usage.killed = True
            kill_group(process)
            break
        _read_proc(process.pid, usage)
        time.sleep(POLL_INTERVAL)
    usage.shutdown_seconds = time.monotonic() - started
    usage.exit_code = process.returncode
    # A process that exited may have left children in its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return usage


def run_wrk(url: str, seconds: float, settings: LoadSettings, output_path: Path) -> dict[str, Any]:
    command = [
        *affinity_prefix(settings, "load"),
        "wrk",
        f"-t{settings.wrk_threads}",
        f"-c{settings.connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(BENCH_DIR / "report.lua"),
        url,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + 60
    )
    output_path.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed with exit code {result.returncode}: {result.stderr}")
    for line in result.stdout.splitlines():
        if line.startswith("WRK_RESULT "):
            report: dict[str, Any] = json.loads(line.removeprefix("WRK_RESULT "))
            report["requests_per_second"] = report["requests"] / (report["duration_us"] / 1e6)
            return report
    raise RuntimeError(f"wrk printed no WRK_RESULT line; see {output_path}")


def _count_lines(path: Path) -> int:
    with path.open("rb") as file:
        return sum(1 for _ in file)


@contextlib.contextmanager
def matomo_endpoint(
    delay: float | None, settings: LoadSettings, run_dir: Path
) -> Iterator[tuple[str, str | None]]:
    """Yield the tracking URL and the stats URL of the scenario's endpoint (None when down)."""
    if delay is None:
        with closed_port() as port:
            yield f"http://127.0.0.1:{port}{MATOMO_PATH}", None
        return

    stderr_path = run_dir / "endpoint.stderr"
    process, port = start_uvicorn(
        VENV_NEW,
        "endpoint:app",
        settings,
        "load",
        {"BENCH_ENDPOINT_DELAY": str(delay)},
        stderr_path,
        "/stats",
        ("--log-level", "warning"),
    )
    try:
        stats_url = f"http://127.0.0.1:{port}/stats"
        yield f"http://127.0.0.1:{port}{MATOMO_PATH}", stats_url
    finally:
        stop_gracefully(process, limit=10.0)


def app_environment(variant: str, matomo_url: str, settings: LoadSettings) -> dict[str, str]:
    """Return the environment variables that select the app's variant (see app.py)."""
    env = {"BENCH_VARIANT": variant, "BENCH_MATOMO_URL": matomo_url}
    if variant == "new" and settings.middleware_options:
        env["BENCH_MIDDLEWARE_OPTIONS"] = settings.middleware_options
    return env


def run_once(scenario: str, variant: str, settings: LoadSettings, run_dir: Path) -> dict[str, Any]:
    """Serve the app in one variant under one scenario, load it with wrk, shut it down."""
    run_dir.mkdir(parents=True, exist_ok=True)
    counts_path = run_dir / "app-counts.json"
    counts_path.unlink(missing_ok=True)
    stderr_path = run_dir / "app.stderr"
    result: dict[str, Any] = {"scenario": scenario, "variant": variant}

    with matomo_endpoint(SCENARIOS[scenario], settings, run_dir) as (matomo_url, stats_url):
        env = app_environment(variant, matomo_url, settings)
        env["BENCH_COUNTS_FILE"] = str(counts_path)
        app, port = start_uvicorn(
            VARIANT_VENVS[variant], "app:app", settings, "app", env, stderr_path, APP_PATH
        )
        app_url = f"http://127.0.0.1:{port}{APP_PATH}"
        try:
            if settings.warmup > 0:
                run_wrk(app_url, settings.warmup, settings, run_dir / "wrk-warmup.txt")
            # CPU time of the measured load only: start-up (imports) and the
            # final flush would add a per-process constant to every request.
            cpu_before = cpu_seconds(app.pid)
            result["wrk"] = run_wrk(app_url, settings.duration, settings, run_dir / "wrk.txt")
            result["load_cpu_seconds"] = cpu_seconds(app.pid) - cpu_before
            usage = stop_gracefully(app, settings.shutdown_limit)
        finally:
            if app.poll() is None:
                kill_group(app)

        result["usage"] = usage.__dict__
        result["log_lines"] = _count_lines(stderr_path)
        if counts_path.exists():
            result["app_counts"] = json.loads(counts_path.read_text())
        if stats_url is not None:
            result["endpoint_counts"] = json.loads(http_get(stats_url))
    return result


def run_dir_for(round_number: int, scenario: str, variant: str, stack: str) -> Path:
    return WORK_DIR / "runs" / f"round{round_number}-{stack}-{scenario}-{variant}"
