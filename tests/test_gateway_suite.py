"""The gateway suite proves it can fail: tests/gateways/buggy_gateway.py, an HTTP-to-FastCGI gateway
written without the harness, passes every required case in its correct mode, and each --bug is caught
(FAIL or WARN) by every case that names it in `bugs=`. Also: every case names a bug (or is
UNSPECIFIED), every bug a case names exists in the gateway, and the command line's mistakes are one
line with the right exit status.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from harness.gateways.cases import BUGS, GatewayCase, cases_in_gateway_module, run_gateway_case
from harness.gateways.gateway import parse_gateway
from harness.suite.case import import_case_module
from harness.verdicts import Level, Verdict

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
BUGGY = ROOT / "tests" / "gateways" / "buggy_gateway.py"
CAUGHT = (Verdict.FAIL, Verdict.WARN)


def buggy(*bugs: str) -> str:
    flags = " ".join(f"--bug {b}" for b in bugs)
    return f"cmd:{PYTHON} {BUGGY} --listen {{http_port}} --app {{app_host}}:{{app_port}} --read-timeout " \
           f"{{read_timeout}} {flags}".rstrip()


@lru_cache(maxsize=None)
def all_cases() -> tuple[GatewayCase, ...]:
    found: list[GatewayCase] = []
    for path in sorted((ROOT / "cases" / "gateway").glob("*.py")):
        if not path.name.startswith("_"):
            found += cases_in_gateway_module(import_case_module(path))
    return tuple(sorted(found, key=lambda c: c.sort_key))


@lru_cache(maxsize=None)
def buggy_modes() -> frozenset[str]:
    """The --bug modes the gateway lists (--list-modes: MODE, bug or allowed, what it does)."""
    text = subprocess.run([PYTHON, str(BUGGY), "--list-modes"], capture_output=True, text=True, timeout=30).stdout
    return frozenset(line.split("\t")[0] for line in text.splitlines() if line.strip())


def named_bugs() -> list[str]:
    return sorted({b for case in all_cases() for b in case.bugs})


def run(case: GatewayCase, spec: str) -> tuple[Verdict, str]:
    outcome = run_gateway_case(case, parse_gateway(spec).make)
    return outcome.verdict, f"{case.id}: {outcome.verdict.value} {outcome.actual or outcome.note}"


def test_every_case_names_a_bug_it_catches() -> None:
    missing = [c.id for c in all_cases() if not c.bugs and c.level is not Level.UNSPECIFIED]
    assert not missing, f"cases no --bug of the buggy gateway makes fail: {missing}"


def test_every_named_bug_is_a_mode_of_the_buggy_gateway() -> None:
    modes = buggy_modes()
    unknown = [b for b in named_bugs() if b not in modes and f"{b.split(':')[0]}:NAME" not in modes]
    assert not unknown, f"bugs named by cases that tests/gateways/buggy_gateway.py does not have: {unknown}"
    assert set(BUGS) <= {m.split(":")[0] for m in modes}, "BUGS lists modes the gateway lacks"


@pytest.mark.parametrize("case", all_cases(), ids=lambda c: c.id)
def test_correct_gateway_passes(case: GatewayCase) -> None:
    verdict, text = run(case, buggy())
    assert verdict in (Verdict.PASS, Verdict.INFO), text


@pytest.mark.parametrize("bug", named_bugs())
def test_each_bug_is_caught_by_its_cases(bug: str) -> None:
    cases = [c for c in all_cases() if bug in c.bugs]
    results = [run(case, buggy(bug)) for case in cases]
    missed = [text for verdict, text in results if verdict not in CAUGHT]
    assert not missed, f"--bug {bug} not caught: {missed}"


def launcher(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "fcgispec"), "gateway", *args], capture_output=True, text=True, timeout=timeout)


def test_unknown_gateway_is_a_usage_error() -> None:
    done = launcher("--gateway", "no-such-server")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "unknown gateway 'no-such-server'" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_missing_gateway_option_is_a_usage_error() -> None:
    done = launcher()
    assert done.returncode == 4, done.stdout + done.stderr
    assert "needs --gateway" in done.stderr


def test_a_case_selection_that_matches_nothing_is_a_usage_error() -> None:
    done = launcher("--gateway", "nginx", "--case", "GW-NOPE")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "--case 'GW-NOPE': no gateway case's id is or starts with it" in done.stderr
    client = subprocess.run([str(ROOT / "fcgispec"), "client", "--case", "CLI-NOPE"], capture_output=True, text=True,
                            timeout=120)
    assert client.returncode == 4 and "no client case's id" in client.stderr, client.stdout + client.stderr


def test_a_gateway_that_never_listens_ends_the_run_once() -> None:
    done = launcher("--gateway", "cmd:sleep 60", timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "did not listen on 127.0.0.1:{http_port} within 10 s" in done.stdout + done.stderr


def test_a_gateway_that_cannot_start_ends_the_run_once(tmp_path: Path) -> None:
    done = launcher("--gateway", "cmd:/bin/false")
    assert done.returncode == 3, done.stdout + done.stderr
    text = done.stdout + done.stderr
    assert "the gateway cannot be tested" in text and "exited with status 1" in text
    assert "GW-FCGI" not in text  # no case ran


def test_report_json_of_a_buggy_run(tmp_path: Path) -> None:
    report = tmp_path / "gw.json"
    done = launcher("--gateway", buggy("stderr-as-error"), "--case", "GW-FCGI-5.3-5", "--case", "GW-FCGI-5.3-1",
                    "--report-json", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(report.read_text())
    verdicts = {c["id"]: c["verdict"] for c in data["cases"]}
    assert verdicts == {"GW-FCGI-5.3-5": "fail", "GW-FCGI-5.3-1": "pass"}, verdicts
    assert "stderr-as-error" in done.stdout  # offered as the look-alike


def test_exclusion_excuses_a_gateway_deviation(tmp_path: Path) -> None:
    excludes = tmp_path / "known.txt"
    excludes.write_text("GW-FCGI-5.3-5 STDERR is turned into a 502: known\n")
    done = launcher("--gateway", buggy("stderr-as-error"), "--case", "GW-FCGI-5.3-5", "--exclude-file", str(excludes))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "excluded" in done.stdout
