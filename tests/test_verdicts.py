"""How run_case turns what a case raises into a verdict, by level; selection; reports."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

from harness.case import Case, CaseContext, case, load_cases, run_case, select_cases
from harness.fcgi_client import ReadTimeout
from harness.report import CaseResult, format_report, format_summary, json_report
from harness.targets import TcpTarget, Target, TargetUnreachable
from harness.verdicts import (
    Level,
    Observed,
    RecommendationMissed,
    Unsupported,
    Verdict,
    Violation,
    verdict_fails_run,
)


class UnreachableTarget(Target):
    description = "nowhere"

    def address(self):  # type: ignore[override]
        raise TargetUnreachable("nothing listens there")


def make_case(level: Level, run: Callable[[CaseContext], str | None], case_id: str = "FCGI-9.9-1") -> Case:
    return case(case_id, title="t", requirement="r", level=level, timeout=2.0)(run)


def violate(ctx: CaseContext) -> None:
    raise Violation(["a", "b"], "c")


def time_out(ctx: CaseContext) -> None:
    raise ReadTimeout("END_REQUEST id=1")


def recommend(ctx: CaseContext) -> None:
    raise RecommendationMissed("FIN", "RST")


def crash(ctx: CaseContext) -> None:
    raise KeyError("bug in a case")


def connect_nowhere(ctx: CaseContext) -> None:
    ctx.connect()


@pytest.mark.parametrize(
    ("level", "run", "verdict"),
    [
        (Level.REQUIRED, violate, Verdict.FAIL),
        (Level.RECOMMENDED, violate, Verdict.WARN),
        (Level.UNSPECIFIED, violate, Verdict.INFO),
        (Level.REQUIRED, time_out, Verdict.FAIL),
        (Level.RECOMMENDED, time_out, Verdict.WARN),
        (Level.REQUIRED, recommend, Verdict.WARN),
        (Level.UNSPECIFIED, recommend, Verdict.INFO),
        (Level.REQUIRED, lambda ctx: None, Verdict.PASS),
        (Level.UNSPECIFIED, lambda ctx: "duplicate BEGIN ignored", Verdict.INFO),
        (Level.REQUIRED, crash, Verdict.ERROR),
        (Level.REQUIRED, connect_nowhere, Verdict.ERROR),
    ],
)
def test_verdict_by_level(level: Level, run, verdict: Verdict) -> None:
    outcome = run_case(make_case(level, run), UnreachableTarget(), check_liveness=False)
    assert outcome.verdict is verdict


def test_violation_text_and_timeout_text() -> None:
    outcome = run_case(make_case(Level.REQUIRED, violate), UnreachableTarget(), check_liveness=False)
    assert (outcome.expected, outcome.actual) == (["a", "b"], "c")
    outcome = run_case(make_case(Level.REQUIRED, time_out), UnreachableTarget(), check_liveness=False)
    assert (outcome.expected, outcome.actual) == (["END_REQUEST id=1"], "Timeout")


def test_unsupported_and_observed() -> None:
    def unsupported(ctx: CaseContext) -> None:
        raise Unsupported("no filter role")

    def observed(ctx: CaseContext) -> None:
        raise Observed("closed the connection")

    outcome = run_case(make_case(Level.REQUIRED, unsupported), UnreachableTarget(), check_liveness=False)
    assert (outcome.verdict, outcome.note) == (Verdict.UNSUPPORTED, "no filter role")
    outcome = run_case(make_case(Level.UNSPECIFIED, observed), UnreachableTarget(), check_liveness=False)
    assert (outcome.verdict, outcome.note) == (Verdict.INFO, "closed the connection")


def test_probe_app_required() -> None:
    target = UnreachableTarget()
    target.has_probe_app = False
    needy = case("FCGI-9.9-2", title="t", requirement="r", level=Level.REQUIRED, needs_probe_app=True)(lambda ctx: None)
    assert run_case(needy, target, check_liveness=False).verdict is Verdict.UNSUPPORTED


def test_unreachable_target_is_error_even_with_liveness() -> None:
    outcome = run_case(make_case(Level.REQUIRED, connect_nowhere), UnreachableTarget())
    assert outcome.verdict is Verdict.ERROR


@pytest.fixture
def dead_app() -> Iterator[TcpTarget]:
    """A listener that accepts and closes at once: reachable, but no FastCGI app behind it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield TcpTarget("127.0.0.1:%d" % listener.getsockname()[1])
    stop.set()
    thread.join()
    listener.close()


def test_liveness_probe_turns_pass_into_fail(dead_app: TcpTarget) -> None:
    outcome = run_case(make_case(Level.REQUIRED, lambda ctx: None), dead_app)
    assert outcome.verdict is Verdict.FAIL
    assert outcome.actual.startswith("target did not answer after the case")
    assert not outcome.target_alive


def test_verdicts_that_fail_the_run() -> None:
    assert verdict_fails_run(Verdict.FAIL, strict=False)
    assert verdict_fails_run(Verdict.ERROR, strict=False)
    assert not verdict_fails_run(Verdict.WARN, strict=False)
    assert verdict_fails_run(Verdict.WARN, strict=True)
    assert not any(verdict_fails_run(v, strict=True) for v in (Verdict.PASS, Verdict.INFO, Verdict.UNSUPPORTED))


def test_case_ids_must_be_well_formed() -> None:
    with pytest.raises(ValueError):
        case("3.3-6", title="t", requirement="r", level=Level.REQUIRED)


def test_select_by_prefix() -> None:
    cases = [make_case(Level.REQUIRED, violate, case_id) for case_id in ("FCGI-3.3-1", "FCGI-3.3-12", "FCGI-3.4-1")]
    assert [c.id for c in select_cases(cases, ["FCGI-3.3"])] == ["FCGI-3.3-1", "FCGI-3.3-12"]
    assert [c.id for c in select_cases(cases, ["FCGI-3.3-1"])] == ["FCGI-3.3-1"]
    assert [c.id for c in select_cases(cases, ["FCGI-3"])] == ["FCGI-3.3-1", "FCGI-3.3-12", "FCGI-3.4-1"]
    assert len(select_cases(cases, [])) == 3


def test_load_cases_finds_case_objects(tmp_path: Path) -> None:
    (tmp_path / "fcgi_9_9_sample.py").write_text(
        "from harness.case import case\nfrom harness.verdicts import Level\n"
        "@case('FCGI-9.9-7', title='t', requirement='r', level=Level.REQUIRED)\ndef run(ctx):\n    pass\n"
        "NOT_A_CASE = 1\n"
    )
    (tmp_path / "test_ignored.py").write_text("raise RuntimeError('must not be imported')\n")
    assert [c.id for c in load_cases([tmp_path])] == ["FCGI-9.9-7"]


def test_report_and_json() -> None:
    results = [
        CaseResult(make_case(Level.REQUIRED, violate, "FCGI-3.3-2"),
                   run_case(make_case(Level.REQUIRED, violate, "FCGI-3.3-2"), UnreachableTarget(), check_liveness=False)),
        CaseResult(make_case(Level.REQUIRED, lambda ctx: None, "FCGI-3.3-1"),
                   run_case(make_case(Level.REQUIRED, lambda ctx: None), UnreachableTarget(), check_liveness=False)),
    ]
    text = format_report(results)
    lines = text.splitlines()
    assert lines[0] == "3.3. Records"
    assert lines[1] == "  ✔ FCGI-3.3-1 t"
    assert lines[2] == "  × FCGI-3.3-2 t"
    assert "       Expected: a" in text and "                 b" in text and "         Actual: c" in text
    assert format_summary(results) == "2 cases: 1 passed, 1 failed, 0 warnings, 0 info, 0 unsupported, 0 errors"
    document = json.loads(json.dumps(json_report(results, target="x")))
    assert document["summary"]["fail"] == 1
    failing = [c for c in document["cases"] if c["verdict"] == "fail"][0]
    assert failing["expected"] == ["a", "b"] and failing["actual"] == "c" and "trace" in failing
