"""The pytest plugin end to end: pytest runs as a subprocess, as a user or CI would run it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.targets import reference_binary

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
SUMMARY = re.compile(r"^\d+ cases: \d+ passed, \d+ failed, \d+ warnings, \d+ info, \d+ unsupported, \d+ errors$")


def run_suite(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "pytest", "cases", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fault_target(fault: str) -> str:
    return f"cmd:{reference_binary(ROOT)} --listen tcp:127.0.0.1:{{port}} --fault {fault}"


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.rstrip("\n").splitlines()[-1]


@pytest.fixture(autouse=True, scope="module")
def responder_built() -> None:
    if not reference_binary(ROOT).exists():
        pytest.fail(f"reference responder not built: {reference_binary(ROOT)}")


def test_section_passes_against_reference(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = run_suite("--case", "FCGI-4.1", "--report-json", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    assert SUMMARY.match(last_line(result)), last_line(result)
    assert last_line(result).startswith("5 cases: 5 passed")
    assert "✔ FCGI-4.1-1 " in result.stdout
    document = json.loads(report.read_text())
    assert {c["id"] for c in document["cases"]} == {f"FCGI-4.1-{n}" for n in range(1, 6)}
    assert document["summary"]["pass"] == 5


def test_fault_target_fails_with_junit_failure(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    result = run_suite("--case", "FCGI-4.1", "--target", fault_target("get-values-ignored"), "--junitxml", str(junit))
    assert result.returncode == 1, result.stdout + result.stderr
    xml = junit.read_text()
    assert "<failure" in xml and "<error" not in xml
    assert "Actual: Timeout" in result.stdout
    assert SUMMARY.match(last_line(result)), last_line(result)
    assert " 0 passed" in last_line(result)


def test_warn_fails_only_with_strict() -> None:
    target = fault_target("get-values-stream")
    relaxed = run_suite("--case", "FCGI-4.1-3", "--target", target)
    assert relaxed.returncode == 0, relaxed.stdout
    assert "! FCGI-4.1-3 " in relaxed.stdout
    assert last_line(relaxed).startswith("1 cases: 0 passed, 0 failed, 1 warnings")
    strict = run_suite("--case", "FCGI-4.1-3", "--target", target, "--fcgi-strict")
    assert strict.returncode == 1, strict.stdout
    strict_alias = run_suite("--case", "FCGI-4.1-3", "--target", target, "--strict")
    assert strict_alias.returncode == 1, strict_alias.stdout


def test_unreachable_target_is_junit_error(tmp_path: Path) -> None:
    # A port nothing listens on: the harness cannot run the cases, which is an error, not a failure.
    junit = tmp_path / "junit.xml"
    result = run_suite("--case", "FCGI-4.2", "--target", "tcp:127.0.0.1:1", "--junitxml", str(junit))
    assert result.returncode == 1, result.stdout
    xml = junit.read_text()
    assert "<error" in xml and "<failure" not in xml
    assert last_line(result).endswith("1 errors")


def test_k_selects_by_case_id() -> None:
    result = run_suite("--collect-only", "-q", "-k", "FCGI-3.5")
    assert result.returncode == 0, result.stdout
    assert "fcgi_3_5_closing.py::FCGI-3.5-1" in result.stdout
    assert "FCGI-4.1" not in result.stdout


def test_parallel_run_reports_on_controller() -> None:
    result = run_suite("-n", "2", "--case", "FCGI-3.5", "--case", "FCGI-4.2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert last_line(result).startswith("3 cases: 3 passed")
    assert "✔ FCGI-4.2-1 " in result.stdout
