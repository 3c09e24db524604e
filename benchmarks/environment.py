"""Set up the benchmark's virtual environments and wrk, and describe the machine.

Everything is created under ``benchmarks/.work/`` (git-ignored):

- ``venv-new``: asgi-matomo installed from this checkout with its ``speedups``
  extra (orjson), uvicorn with uvloop and httptools, starlette, httpx, and the
  profilers py-spy and pyinstrument.
- ``venv-old``: asgi-matomo 0.8.0 from PyPI with the same uvicorn, uvloop,
  httptools and starlette versions as ``venv-new``, so that only the middleware
  differs between the two.

The project's own ``.venv`` is never touched.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
SETUP_LOG = WORK_DIR / "setup.log"

OLD_RELEASE = "asgi-matomo==0.8.0"
# Installed in venv-new first. Their resolved versions are then pinned in venv-old.
SHARED_PACKAGES = ("uvicorn", "uvloop", "httptools", "starlette")
NEW_REQUIREMENTS = ("uvicorn[standard]", "starlette", "httpx", "py-spy", "pyinstrument")
# Distributions whose versions the report lists for each environment.
REPORTED_PACKAGES = (
    "asgi-matomo",
    "uvicorn",
    "uvloop",
    "httptools",
    "h11",
    "starlette",
    "httpx",
    "httpcore",
    "orjson",
    "httpx2",
    "httpcore2",
    "matomo-core",
)


@dataclass(frozen=True)
class Venv:
    name: str
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def bin_dir(self) -> Path:
        return self.path / "bin"


VENV_NEW = Venv("new", WORK_DIR / "venv-new")
VENV_OLD = Venv("old", WORK_DIR / "venv-old")


def _log_run(command: list[str]) -> None:
    """Run a setup command, appending its output to the setup log; raise on failure."""
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    with SETUP_LOG.open("a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"setup command failed with exit code {result.returncode}: {' '.join(command)}; "
            f"see {SETUP_LOG}"
        )


def _create_venv(venv: Venv, rebuild: bool) -> bool:
    """Create the virtual environment; return True if it was created now."""
    if rebuild and venv.path.exists():
        shutil.rmtree(venv.path)
    if venv.python.exists():
        return False
    print(f"creating {venv.path}", flush=True)
    _log_run([sys.executable, "-m", "venv", str(venv.path)])
    return True


def _pip_install(venv: Venv, *arguments: str) -> None:
    _log_run([str(venv.python), "-m", "pip", "install", "--quiet", *arguments])


def installed_versions(venv: Venv) -> dict[str, str]:
    """Return the Python version and the versions of REPORTED_PACKAGES installed in venv."""
    script = (
        "import importlib.metadata as m, json, platform, sys\n"
        "names = json.loads(sys.argv[1])\n"
        "found = {'python': platform.python_version()}\n"
        "for name in names:\n"
        "    try:\n"
        "        found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(found))\n"
    )
    output = subprocess.run(
        [str(venv.python), "-c", script, json.dumps(REPORTED_PACKAGES)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    versions: dict[str, str] = json.loads(output)
    return versions


def _setup_new(rebuild: bool, install_checkout: bool) -> None:
    if _create_venv(VENV_NEW, rebuild):
        _pip_install(VENV_NEW, *NEW_REQUIREMENTS)
    if not install_checkout:
        return
    # Reinstall the checkout on every run so the benchmark measures the current
    # source tree, then let pip add any dependency that the checkout gained,
    # orjson of the speedups extra included.
    print("installing asgi-matomo[speedups] from the checkout into venv-new", flush=True)
    _pip_install(VENV_NEW, "--force-reinstall", "--no-deps", str(REPO_DIR))
    _pip_install(VENV_NEW, str(REPO_DIR) + "[speedups]")


def _setup_old(rebuild: bool) -> None:
    new_versions = installed_versions(VENV_NEW)
    pins = [f"{name}=={new_versions[name]}" for name in SHARED_PACKAGES]
    requirements = [OLD_RELEASE, *pins]
    marker = VENV_OLD.path / "bench-requirements.json"
    created = _create_venv(VENV_OLD, rebuild)
    if not created and marker.exists() and json.loads(marker.read_text()) == requirements:
        return
    print(f"installing {' '.join(requirements)} into venv-old", flush=True)
    _pip_install(VENV_OLD, *requirements)
    marker.write_text(json.dumps(requirements))


def ensure_wrk() -> str:
    """Return the path of wrk, installing Debian's package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError("wrk not found: install it (Debian: apt-get install wrk) and rerun")
    print("installing wrk with apt-get", flush=True)
    _log_run(["apt-get", "update", "-q"])
    _log_run(["apt-get", "install", "-y", "-q", "wrk"])
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk not found after apt-get install wrk")
    return found


def set_up(rebuild: bool = False, install_checkout: bool = True) -> None:
    """Create or update both virtual environments and make sure wrk is installed.

    With install_checkout False, venv-new gets only the server packages, for runs
    that compare the bare app with asgi-matomo 0.8.0 alone.
    """
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    ensure_wrk()
    _setup_new(rebuild, install_checkout)
    _setup_old(rebuild)


def _read_first(path: str, key: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            for line in file:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        return None
    return None


def _os_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as file:
            for line in file:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _git_commit() -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    commit = result.stdout.strip() or "no commit"
    dirty = subprocess.run(
        ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{commit} (src/ has uncommitted changes)" if dirty else commit


def describe_machine() -> dict[str, str]:
    """Return the CPU model, core count, memory, kernel and OS of this machine."""
    memory_kib = _read_first("/proc/meminfo", "MemTotal")
    memory = "unknown"
    if memory_kib:
        memory = f"{int(memory_kib.split()[0]) / 1024 / 1024:.1f} GiB"
    wrk_version = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return {
        "cpu": _read_first("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": str(os.cpu_count()),
        "memory": memory,
        "kernel": platform.release(),
        "os": _os_name(),
        "wrk": wrk_version[0].split(" [")[0] if wrk_version else "unknown",
        "checkout": _git_commit(),
    }
