"""The pytest plugin end to end: pytest runs as a subprocess, as a user or CI would run it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.targets.base import reference_binary

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
SUMMARY = re.compile(r"^\d+ cases?: \d+ passed, \d+ failed, \d+ warnings?, \d+ info, \d+ unsupported, \d+ errors?(, \d+ blocked)?$")


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
    assert " 0 failed," in last_line(result) and last_line(result).endswith(" 0 errors")
    assert "✔ FCGI-4.1-1 " in result.stdout
    document = json.loads(report.read_text())
    ids = {c["id"] for c in document["cases"]}
    assert {f"FCGI-4.1-{n}" for n in range(1, 6)} <= ids and all(i.startswith("FCGI-4.1-") for i in ids)
    assert document["summary"]["pass"] >= 5


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
    assert last_line(relaxed).startswith("1 case: 0 passed, 0 failed, 1 warning,")
    strict = run_suite("--case", "FCGI-4.1-3", "--target", target, "--fcgi-strict")
    assert strict.returncode == 1, strict.stdout
    strict_alias = run_suite("--case", "FCGI-4.1-3", "--target", target, "--strict")
    assert strict_alias.returncode == 1, strict_alias.stdout


def test_unreachable_target_stops_the_run_before_the_cases(tmp_path: Path) -> None:
    # A port nothing listens on: the harness cannot run the cases (status 3), which is no broken
    # requirement; it is said once, before any case runs.
    junit = tmp_path / "junit.xml"
    result = run_suite("--case", "FCGI-4.2-1", "--target", "tcp:127.0.0.1:1", "--junitxml", str(junit))
    assert result.returncode == 3, result.stdout
    xml = junit.read_text()
    assert "<failure" not in xml and 'tests="0"' in xml
    assert last_line(result) == "fcgispec: target tcp:127.0.0.1:1: connection refused (nothing listens there)"


def test_k_selects_by_case_id() -> None:
    result = run_suite("--collect-only", "-q", "-k", "FCGI-3.5")
    assert result.returncode == 0, result.stdout
    assert "fcgi_3_5_closing.py::FCGI-3.5-1" in result.stdout
    assert "FCGI-4.1" not in result.stdout


def test_parallel_run_reports_on_controller() -> None:
    result = run_suite("-n", "2", "--case", "FCGI-3.5-1", "--case", "FCGI-3.5-2", "--case", "FCGI-4.2-1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert last_line(result).startswith("3 cases: 3 passed")
    assert "✔ FCGI-4.2-1 " in result.stdout


def test_exclude_file_keeps_the_run_green(tmp_path: Path) -> None:
    exclusions = tmp_path / "known.txt"
    exclusions.write_text("# known deviations of this server\nFCGI-4.1-1  never answers GET_VALUES\nFCGI-4.1-4 ditto\n"
                          "FCGI-4.1-2  ditto\nFCGI-4.1-5  ditto\nFCGI-4.2-1  was broken once\n")
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    result = run_suite("--case", "FCGI-4.1-1", "--case", "FCGI-4.1-2", "--case", "FCGI-4.1-4", "--case", "FCGI-4.2",
                       "--target", fault_target("get-values-ignored"), "--exclude-file", str(exclusions),
                       "--junitxml", str(junit), "--report-json", str(report), "--fcgi-timeout", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "~ FCGI-4.1-1 " in result.stdout and "(excluded, fail: never answers GET_VALUES)" in result.stdout
    assert "excluded but passed: was broken once" in result.stdout
    # FCGI-4.1-2 and 4.1-4 are blocked by FCGI-4.1-1's deviation, not failed: nothing of theirs to excuse.
    assert last_line(result).endswith("2 blocked, 1 excluded (1 excluded but passed)"), last_line(result)
    xml = junit.read_text()
    assert "<failure" not in xml and 'message="excluded (fail): never answers GET_VALUES"' in xml
    document = json.loads(report.read_text())
    assert document["summary"]["excluded"] == 1 and document["summary"]["fail"] == 0


def test_malformed_exclude_file_is_a_usage_error(tmp_path: Path) -> None:
    exclusions = tmp_path / "bad.txt"
    exclusions.write_text("4.1-1 no prefix\n")
    result = run_suite("--case", "FCGI-4.1-1", "--exclude-file", str(exclusions))
    assert result.returncode == 4, result.stdout + result.stderr
    assert "is not a case id" in result.stderr


def test_failure_report_shows_requirement_records_and_known_bugs(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = run_suite("--case", "FCGI-4.2-1", "--target", fault_target("unknown-type-ignored"),
                       "--report-json", str(report), "--fcgi-timeout", "1")
    assert result.returncode == 1
    section = result.stdout[result.stdout.index("fcgispec report"):]
    assert "× FCGI-4.2-1 " in section and "-> " in section and "Expected: " in section and "Actual: " in section
    assert "Looks like: unknown-type-ignored: " in section  # the fault's description, from --fault list
    assert "> type=12 id=0" in section  # the records exchanged
    assert "FAILURES" not in result.stdout  # told once, in the fcgispec report
    document = json.loads(report.read_text())
    assert document["capabilities"]["FCGI_MPXS_CONNS"] == 1 and document["started"] and document["wall_time"] > 0
    failing = document["cases"][0]
    assert failing["verdict"] == "fail" and failing["trace"] and "unknown-type-ignored" in failing["looks_like"]
    assert {"id", "title", "section", "level", "duration", "expected", "actual", "note"} <= set(failing)


def test_capabilities_in_terminal_header() -> None:
    result = run_suite("--case", "FCGI-4.2-1", "--target", "reference --no-mpx")
    assert "Capabilities: FCGI_MAX_CONNS=1024, FCGI_MAX_REQS=4096, FCGI_MPXS_CONNS=0" in result.stdout


def test_parallel_selection_by_k_and_prefix() -> None:
    result = run_suite("-n", "2", "-k", "FCGI-4.1-1 or FCGI-4.2-1", "--case", "FCGI-4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert last_line(result).startswith("2 cases: 2 passed"), last_line(result)
    assert "Capabilities: FCGI_MAX_CONNS=1024" in result.stdout  # carried from the workers


def test_server_run_has_no_client_cases(tmp_path: Path) -> None:
    # The HTTP-client regressions run with `./fcgispec client`: a server run holds server cases only,
    # with one report, and keeps its failures in that report.
    junit = tmp_path / "junit.xml"
    result = subprocess.run([str(ROOT / "fcgispec"), "-n", "0", "--case", "REG-go", "--junitxml", str(junit)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    names = re.findall(r'<testcase [^>]*name="([^"]+)"', junit.read_text())
    assert sorted(names) == ["REG-go-11824-malformed-params", "REG-go-a387f915-request-id-reuse",
                             "REG-go-getvalues-stream"], names
    assert result.stdout.count("fcgispec report") == 1 and "client report" not in result.stdout, result.stdout
    assert last_line(result).startswith("3 cases: 3 passed"), last_line(result)
    client = subprocess.run([PYTHON, "-m", "pytest", "cases/client", "--collect-only", "-q", "--case", "REG-go"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert {"REG-go-3514-tls-dead-conn-reuse", "REG-go-persist-conn-leak",
            "REG-go-read-to-end-reuses-conn"} <= set(re.findall(r"::(REG-[\w.-]+)", client.stdout)), client.stdout


def test_one_bug_fails_its_case_blocks_and_is_seen_by_others(tmp_path: Path) -> None:
    # keep-conn-close breaks FCGI-3.5-2 only: FCGI-3.3-2 (ids) goes on on a new connection and
    # passes, FCGI-3.4-1 needs its follow-up request on the same connection and is blocked.
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    result = run_suite("--case", "FCGI-3.5-2", "--case", "FCGI-3.3-2", "--case", "FCGI-3.4-1",
                       "--target", fault_target("keep-conn-close"), "--junitxml", str(junit),
                       "--report-json", str(report), "--fcgi-timeout", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    section = result.stdout[result.stdout.index("fcgispec report"):]
    lead = section[section.index("1 deviation (as failing cases: FCGI-3.5-2)"):section.index("3.3. Records")]
    assert "also seen by: FCGI-3.3-2" in lead and "blocked: FCGI-3.4-1" in lead, lead
    assert "✔ FCGI-3.3-2 " in section and "Also seen: FCGI-3.5-2 the connection was closed" in section
    assert "⊘ FCGI-3.4-1 " in section and "(blocked by FCGI-3.5-2: " in section
    assert last_line(result).startswith("3 cases: 1 passed, 1 failed,") and last_line(result).endswith(", 1 blocked")
    xml = junit.read_text()
    assert xml.count("<failure") == 1 and '<skipped type="pytest.skip" message="blocked by FCGI-3.5-2: ' in xml
    document = json.loads(report.read_text())
    cases = {c["id"]: c for c in document["cases"]}
    assert cases["FCGI-3.4-1"]["verdict"] == "blocked" and cases["FCGI-3.4-1"]["blocked_by"] == "FCGI-3.5-2"
    assert cases["FCGI-3.3-2"]["verdict"] == "pass"
    assert [seen["requirement"] for seen in cases["FCGI-3.3-2"]["also_seen"]] == ["FCGI-3.5-2"]
    assert document["deviations"] == [{"requirement": "FCGI-3.5-2", "verdict": "fail", "seen_by": ["FCGI-3.3-2"],
                                       "blocked": ["FCGI-3.4-1"]}]
    assert document["summary"]["blocked"] == 1
