"""The `asgi-matomo demo` command, run for real with a small request count."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from asgi_matomo import cli
from asgi_matomo.demo import runner
from asgi_matomo.demo.report import display_width, format_table
from asgi_matomo.demo.traffic import KIND_NAMES, plan_requests, request_number
from asgi_matomo.testing import RecordingMatomo

SCRIPT = Path(sys.executable).parent / "asgi-matomo"


def run_command(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed command line of this interpreter
        arguments, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.server
def test_console_script_demo_exits_zero() -> None:
    assert SCRIPT.exists(), f"{SCRIPT} is missing: install the project with pip install -e ."

    result = run_command(str(SCRIPT), "demo", "--requests", "40", "--seed", "3", "--rows", "5")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: all " in result.stdout
    assert "hits delivered (stored by Matomo)" in result.stdout
    assert "HTTP requests to Matomo" in result.stdout
    assert "pf_srv" in result.stdout
    # The exception of /boom is expected, so its traceback is not printed.
    assert "Traceback" not in result.stderr


@pytest.mark.server
def test_python_module_demo_exits_zero() -> None:
    result = run_command(sys.executable, "-m", "asgi_matomo", "demo", "--requests", "20")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: all " in result.stdout


class LosingMatomo(RecordingMatomo):
    """A recording endpoint that loses the first hit it stored."""

    def hits(self) -> list[dict[str, str]]:
        return super().hits()[1:]


@pytest.mark.server
def test_demo_fails_when_a_hit_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "RecordingMatomo", LosingMatomo)
    out = io.StringIO()

    status = runner.run_demo(requests=20, seed=5, concurrency=4, rows=0, out=out)

    assert status == 1
    report = out.getvalue()
    assert "FAILED:" in report
    assert "tracked requests that never reached Matomo (1): [" in report
    assert "OK: all" not in report


def test_demo_rejects_zero_requests(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--requests", "0"])

    assert exit_info.value.code == 2
    assert "argument --requests: must be 1 or more, got 0" in capsys.readouterr().err


def test_demo_rejects_non_integer_seed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--seed", "abc"])

    assert exit_info.value.code == 2
    assert "argument --seed: invalid int value: 'abc'" in capsys.readouterr().err


def test_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])

    assert exit_info.value.code == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["uvicorn", "starlette"])
def test_missing_demo_package_names_install_command(
    missing: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A None entry in sys.modules makes `import <name>` raise ImportError.
    monkeypatch.setitem(sys.modules, missing, None)

    status = cli.main(["demo", "--requests", "1"])

    assert status == 2
    error = capsys.readouterr().err
    assert f"missing package(s): {missing}." in error
    assert "pip install 'asgi-matomo[demo]'" in error


def test_plan_is_reproducible_and_covers_every_kind() -> None:
    first = plan_requests(100, seed=7)
    second = plan_requests(100, seed=7)

    assert first == second
    assert {request.kind for request in first} == set(KIND_NAMES)
    assert [request.number for request in first] == list(range(1, 101))


def test_plan_marks_excluded_requests_untracked() -> None:
    plan = plan_requests(200, seed=1)
    untracked_kinds = {request.kind for request in plan if not request.tracked}

    assert untracked_kinds == {"excluded-path", "excluded-pattern", "ignored-method"}


def test_plan_targets_are_ascii() -> None:
    for request in plan_requests(300, seed=2):
        assert request.target.isascii(), request


def test_request_number_from_user_agent() -> None:
    assert request_number("asgi-matomo-demo/1 (request 17)") == 17
    assert request_number("curl/8.0") is None
    assert request_number(None) is None


def test_table_aligns_wide_characters() -> None:
    table = format_table([{"path": "/日本"}, {"path": "/ab"}])
    lines = table.splitlines()

    assert display_width("/日本") == 5
    assert lines[0] == "path"
    assert lines[1] == "-----"
