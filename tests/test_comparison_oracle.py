"""Comparison as an oracle (harness/suite/comparison.py): content judged without a probe app.

Against the reference with its probe app switched off (--app hello: an ordinary page with a Date
header, a cookie, a visit counter and the time served), the faults that corrupt content while the
protocol stays intact must be caught by the comparing case of their requirement, and the correct
reference must pass with depth "comparison". A target whose answers differ beyond what is masked
(tests/servers/independent_responder.py --page random) gets no comparison, and says so; one whose
volatile headers change with every answer (--page volatile-headers) is still compared.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from harness.reports.results import CaseResult, format_case_line, format_depth_summary, json_report
from harness.suite.case import Case, load_cases, run_case, scale_for, select_cases
from harness.suite.catch_matrix import explain
from harness.suite.comparison import Answer, ComparisonOracle, Mask, difference, learn
from harness.targets.base import CommandTarget, ReferenceTarget, Target
from harness.targets.liveness import detect_probe_app
from harness.verdicts import Depth, Level, Outcome, Verdict

ROOT = Path(__file__).resolve().parent.parent
CASES = {c.id: c for c in load_cases([ROOT / "cases" / "server"])}
SERVER = ROOT / "tests" / "servers" / "independent_responder.py"
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
# The cases that compare the answer to a varied request with the plain request's.
COMPARING = (
    "FCGI-3.2-2", "FCGI-3.3-2", "FCGI-3.3-3", "FCGI-3.3-4", "FCGI-3.3-7", "FCGI-3.3-8", "FCGI-3.3-9", "FCGI-3.3-10",
    "FCGI-3.3-11", "FCGI-3.4-2", "FCGI-5.1-1", "FCGI-5.3-2", "FCGI-5.5-5",
)
# Faults that corrupt content only, the protocol intact, and the comparing case that must catch each.
CONTENT_FAULTS = {
    "padded-stdin-lost": "FCGI-3.3-3",
    "params-split-pair-lost": "FCGI-3.3-10",
    "stdin-first-record-only": "FCGI-3.3-10",
    "foreign-id-stdin-accepted": "FCGI-3.3-7",
}
SCALE = scale_for(2.0)


def run(target: Target, case_ids: tuple[str, ...]) -> dict[str, Outcome]:
    return {case_id: run_case(CASES[case_id], target, scale=SCALE) for case_id in case_ids}


@pytest.fixture
def started() -> Iterator[list[Target]]:
    targets: list[Target] = []
    yield targets
    for target in targets:
        target.stop()


def hello(started: list[Target], *args: str) -> ReferenceTarget:
    target = ReferenceTarget(ROOT, ["--app", "hello", *args])
    target.start()
    started.append(target)
    return target


def independent(started: list[Target], page: str) -> CommandTarget:
    target = CommandTarget(f"{PYTHON} {SERVER} --port {{port}} --mpx --page {page}")
    target.start()
    started.append(target)
    return target


def oracle(target: Target) -> ComparisonOracle:
    assert isinstance(target.comparison_oracle, ComparisonOracle)
    return target.comparison_oracle


def test_correct_reference_without_probe_app_passes_by_comparison(started: list[Target]) -> None:
    target = hello(started)
    outcomes = run(target, COMPARING)
    wrong = {i: o for i, o in outcomes.items() if o.verdict is not Verdict.PASS or o.depth is not Depth.COMPARISON}
    assert not wrong, "\n".join(f"--- {i} ({o.depth.value})\n{explain(o)}" for i, o in wrong.items())
    assert target.has_probe_app is False and "not a probe report" in target.probe_app_reason
    determinism = oracle(target).determinism
    assert determinism is not None and determinism.deterministic
    masked = " ".join(determinism.masked)
    # The hello page's Date and cookie differ in every answer, and so do its counter and time.
    assert "CGI header Date" in masked and "CGI header Set-Cookie" in masked and "Visit" in masked, masked


@pytest.mark.parametrize("fault", sorted(CONTENT_FAULTS))
def test_content_fault_is_caught_by_comparison(started: list[Target], fault: str) -> None:
    case_id = CONTENT_FAULTS[fault]
    outcome = run(hello(started, "--fault", fault), (case_id,))[case_id]
    assert outcome.verdict is Verdict.FAIL, explain(outcome)
    assert outcome.depth is Depth.COMPARISON
    # The comparison caught it, naming the variation, not a protocol check.
    assert " changed STDOUT" in outcome.actual, outcome.actual


def test_nondeterministic_target_falls_back_to_protocol_checks(started: list[Target]) -> None:
    target = independent(started, "random")
    outcomes = run(target, ("FCGI-3.3-3", "FCGI-3.3-10"))
    for case_id, outcome in outcomes.items():
        assert outcome.verdict is Verdict.PASS, explain(outcome)
        assert outcome.depth is Depth.PROTOCOL, case_id
        assert "content not compared" in outcome.note and "protocol checks only" in outcome.note, outcome.note
    determinism = oracle(target).determinism
    assert determinism is not None and not determinism.deterministic
    assert "differ" in determinism.problem


def test_volatile_headers_are_masked(started: list[Target]) -> None:
    target = independent(started, "volatile-headers")
    outcomes = run(target, ("FCGI-3.3-3", "FCGI-3.3-9"))
    for outcome in outcomes.values():
        assert outcome.verdict is Verdict.PASS and outcome.depth is Depth.COMPARISON, explain(outcome)
    determinism = oracle(target).determinism
    assert determinism is not None and determinism.deterministic
    for header in ("Date", "Set-Cookie", "ETag", "X-Request-Id"):
        assert f"CGI header {header}" in " ".join(determinism.masked), determinism.masked


def test_probe_app_keeps_its_checks(started: list[Target]) -> None:
    target = ReferenceTarget(ROOT)
    target.start()
    started.append(target)
    outcome = run(target, ("FCGI-3.3-3",))["FCGI-3.3-3"]
    assert outcome.verdict is Verdict.PASS and outcome.depth is Depth.PROBE, explain(outcome)
    assert target.comparison_oracle is None  # the probe report is checked instead


def test_detection_says_why_there_is_no_probe_app(started: list[Target]) -> None:
    detection = detect_probe_app(hello(started), timeout=2.0)
    assert not detection.found
    assert "not a probe report" in detection.reason and "doctype html" in detection.reason


def _answer(body: bytes, head: bytes = b"Status: 200 OK\r\n") -> Answer:
    return Answer(head + b"\r\n" + body, b"", "appStatus=0 protocolStatus=0")


def test_runs_that_vary_are_masked_and_the_rest_is_compared() -> None:
    mask = Mask()
    first = _answer(b"visit 17 of 3 items, nonce 9f86d081884c", b"Date: Mon\r\n")
    second = _answer(b"visit 18 of 3 items, nonce 0a1b2c3d4e5f", b"Date: Tue\r\n")
    assert learn(first, second, mask) is None
    assert difference(first, _answer(b"visit 99 of 3 items, nonce 123456abcdef", b"Date: Wed\r\n"), mask) is None
    changed = difference(first, _answer(b"visit 19 of 4 items, nonce 9f86d081884c", b"Date: Mon\r\n"), mask)
    assert changed is not None and "STDOUT" in changed


def test_text_that_varies_is_not_deterministic() -> None:
    assert learn(_answer(b"token aZqk"), _answer(b"token Qxbe"), Mask()) is not None
    assert learn(_answer(b"same"), Answer(b"Status: 200 OK\r\n\r\nsame", b"", "appStatus=1 protocolStatus=0"), Mask())


def test_report_shows_depth() -> None:
    case = Case("FCGI-3.3-3", "3.3", "t", "r", Level.REQUIRED, run=lambda ctx: None)
    results = [
        CaseResult(case, Outcome(Verdict.PASS, depth=Depth.COMPARISON)),
        CaseResult(case, Outcome(Verdict.PASS, depth=Depth.PROBE)),
        CaseResult(case, Outcome(Verdict.PASS)),
        CaseResult(case, Outcome(Verdict.FAIL, depth=Depth.COMPARISON)),
    ]
    assert format_case_line(results[0]) == "  ✔ FCGI-3.3-3 t [compared]"
    assert format_case_line(results[2]) == "  ✔ FCGI-3.3-3 t [protocol only]"
    assert format_depth_summary(results) == "3 passed: 1 probe, 1 comparison, 1 protocol only"
    document = json_report(results)
    assert document["summary"]["depth"] == {"probe": 1, "comparison": 1, "protocol": 1}  # type: ignore[index]
    assert [entry["depth"] for entry in document["cases"]] == ["comparison", "probe", "protocol", "comparison"]  # type: ignore[index]


def test_comparing_cases_exist() -> None:
    assert set(COMPARING) <= set(CASES)
    assert select_cases(CASES.values(), list(CONTENT_FAULTS.values()))


def test_report_of_a_run_without_probe_app(tmp_path: Path) -> None:
    """End to end, as a user runs it: header, depth tags, depth counts, JSON and JUnit."""
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    result = subprocess.run(
        [PYTHON, "-m", "pytest", "cases", "-p", "no:cacheprovider", "--target", "reference --app hello",
         "--case", "FCGI-3.3-1", "--case", "FCGI-3.3-3", "--report-json", str(report), "--junitxml", str(junit)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Probe app: none (the answer to a probe question is not a probe report" in out, out
    assert "Deterministic answers: yes; masked: the value of CGI header Date" in out, out
    assert "FCGI-3.3-3 " in out and "changes nothing [compared]" in out, out
    assert "[protocol only]" in out.split("FCGI-3.3-1 ")[1].splitlines()[0]
    assert "2 passed: 0 probe, 1 comparison, 1 protocol only" in out, out
    document = json.loads(report.read_text())
    assert document["probe_app"]["found"] is False and document["determinism"]["deterministic"] is True
    assert {c["id"]: c["depth"] for c in document["cases"]} == {"FCGI-3.3-1": "protocol", "FCGI-3.3-3": "comparison"}
    assert 'name="fcgispec_depth" value="comparison"' in junit.read_text()
