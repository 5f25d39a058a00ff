"""How run_case turns what a case raises into a verdict, by level; selection; reports."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

from harness.suite.case import Case, CaseContext, case, load_cases, run_case, select_cases
from harness.wire.codec import Record, RecordType, Role, begin_request_body, end_request_body
from harness.wire.connection import ConnectionClosed, ReadTimeout, TraceEntry
from harness.suite.checks import expect_stream_terminated
from harness.suite.judge import Facts, judge
from harness.suite.observations import STDOUT_TERMINATED, trace_deviations, kept_connection_closed, root_deviations
from harness.reports.results import CaseResult, format_report, format_summary, json_report
from harness.targets.base import TcpTarget, Target, TargetUnreachable
from harness.reports.pytest_items import fails_run
from harness.verdicts import (
    Blocked,
    Deviation,
    Level,
    Observed,
    Outcome,
    RecommendationMissed,
    Unsupported,
    Verdict,
    Violation,
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
    assert fails_run(Outcome(Verdict.FAIL), strict=False)
    assert fails_run(Outcome(Verdict.ERROR), strict=False)
    assert not fails_run(Outcome(Verdict.WARN), strict=False)
    assert fails_run(Outcome(Verdict.WARN), strict=True)
    assert not any(fails_run(Outcome(v), strict=True) for v in (Verdict.PASS, Verdict.INFO, Verdict.UNSUPPORTED))


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
        "from harness.suite.case import case\nfrom harness.verdicts import Level\n"
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
    # The root causes lead: the requirements that failed in their own case.
    assert lines[:3] == ["1 deviation (as failing cases: FCGI-3.3-2)", "  × FCGI-3.3-2 t", ""]
    assert lines[3] == "3.3. Records"
    assert lines[4] == "  ✔ FCGI-3.3-1 t [protocol only]"
    assert lines[5] == "  × FCGI-3.3-2 t [protocol only]"
    assert "       Expected: a" in text and "                 b" in text and "         Actual: c" in text
    assert format_summary(results) == "2 cases: 1 passed, 1 failed, 0 warnings, 0 info, 0 unsupported, 0 errors"
    document = json.loads(json.dumps(json_report(results, target="x")))
    assert document["summary"]["fail"] == 1
    failing = [c for c in document["cases"] if c["verdict"] == "fail"][0]
    assert failing["expected"] == ["a", "b"] and failing["actual"] == "c" and "trace" in failing


# -- capability discovery, variants, process stats, the exclude list --------------------------

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def reference() -> Iterator[Target]:
    from harness.targets.base import ReferenceTarget, reference_binary

    if not reference_binary(ROOT).exists():
        pytest.fail(f"reference responder not built: {reference_binary(ROOT)}")
    target = ReferenceTarget(ROOT, ["--no-mpx"])
    target.start()
    yield target
    target.stop()


def test_capabilities_discovered_once_per_target(reference: Target) -> None:
    seen: list[object] = []

    def look(ctx: CaseContext) -> None:
        seen.append(ctx.capabilities)
        seen.append(ctx.capabilities)

    run_case(make_case(Level.REQUIRED, look), reference, check_liveness=False)
    first, second = seen
    assert first is second and first is reference.discovered_capabilities
    assert first.answered and first.mpxs_conns == 0 and first.max_conns == 1024 and first.multiplexes is False


def test_capabilities_of_a_silent_target(dead_app: TcpTarget) -> None:
    from harness.wire.capabilities import discover

    found = discover(dead_app, 0.5)
    assert not found.answered and found.max_conns is None and found.problem
    assert not discover(UnreachableTarget(), 0.5).answered  # never raises


def test_parse_capabilities() -> None:
    from harness.wire.capabilities import parse_capabilities
    from harness.wire.codec import encode_params

    found = parse_capabilities(encode_params([("FCGI_MPXS_CONNS", "1"), ("FCGI_MAX_REQS", "x")]))
    assert found.mpxs_conns == 1 and found.max_reqs is None and found.answered
    assert parse_capabilities(b"\x7f").problem


def test_spawn_variant_of_reference(reference: Target) -> None:
    def spawn(ctx: CaseContext) -> str:
        variant = ctx.spawn_variant(["--max-conns", "7"], env={"FCGISPEC_X": "1"}, fd0=True)
        conn = ctx.connect(target=variant)
        conn.get_values(["FCGI_MAX_CONNS", "FCGI_MPXS_CONNS"])
        record = conn.read_record(ctx.seconds(2))
        stats = variant.process_stats()
        assert stats is not None and stats.fds >= 3 and stats.rss_kib > 0 and stats.threads >= 1
        spawned.append(variant)
        return record.describe()

    spawned: list[Target] = []
    outcome = run_case(make_case(Level.UNSPECIFIED, spawn), reference, check_liveness=False)
    assert outcome.verdict is Verdict.INFO, outcome
    assert "FCGI_MAX_CONNS='7'" in outcome.note and "FCGI_MPXS_CONNS='0'" in outcome.note  # --no-mpx kept
    assert spawned[0].exit_status() is not None  # stopped when the case ended


def test_spawn_variant_unsupported_for_running_targets() -> None:
    outcome = run_case(make_case(Level.REQUIRED, lambda ctx: ctx.spawn_variant()), UnreachableTarget(), check_liveness=False)
    assert outcome.verdict is Verdict.UNSUPPORTED and "spawns" in outcome.note


def test_cmd_variants_take_env_and_fd0_only_without_port() -> None:
    from harness.targets.base import CommandTarget

    with_port = CommandTarget("app --port {port}")
    assert not with_port.fd0
    with pytest.raises(Unsupported):
        with_port.variant(fd0=True)
    with pytest.raises(Unsupported):
        with_port.variant(["--x"])
    assert with_port.variant(env={"A": "1"}).env == {"A": "1"}
    assert CommandTarget("app").fd0 and CommandTarget("app").variant(fd0=True).fd0


def test_process_stats(reference: Target) -> None:
    stats = reference.process_stats()
    assert stats is not None and stats.pids and stats.fds >= 3
    assert TcpTarget("127.0.0.1:1").process_stats() is None


def test_exclusions() -> None:
    from harness.suite.exclusions import ExclusionError, exclusion_for, parse_exclusions

    table = parse_exclusions("# known\nFCGI-3.3-7  ignores nothing  # why\n\nFCGI-6.3\tno authorizer\n")
    assert table == {"FCGI-3.3-7": "ignores nothing", "FCGI-6.3": "no authorizer"}
    assert exclusion_for("FCGI-3.3-7", table) == "ignores nothing"
    assert exclusion_for("FCGI-3.3-71", table) is None
    assert exclusion_for("FCGI-6.3-2", table) == "no authorizer"
    with pytest.raises(ExclusionError):
        parse_exclusions("3.3-7 typo\n")


def test_excluded_outcomes_in_reports() -> None:
    failing = run_case(make_case(Level.REQUIRED, violate, "FCGI-3.3-2"), UnreachableTarget(), check_liveness=False,
                       excluded="known")
    passing = run_case(make_case(Level.REQUIRED, lambda ctx: None), UnreachableTarget(), check_liveness=False,
                       excluded="fixed since")

    assert failing.excused and not fails_run(failing, strict=True)
    assert passing.excluded_but_passed
    results = [CaseResult(make_case(Level.REQUIRED, violate, "FCGI-3.3-2"), failing),
               CaseResult(make_case(Level.REQUIRED, violate, "FCGI-3.3-1"), passing)]
    text = format_report(results)
    assert "~ FCGI-3.3-2 t (excluded, fail: known)" in text
    assert "excluded but passed: fixed since" in text
    assert format_summary(results).endswith("0 failed, 0 warnings, 0 info, 0 unsupported, 0 errors, 1 excluded (1 excluded but passed)")
    document = json_report(results, meta={"capabilities": None, "wall_time": 1.0})
    assert document["summary"]["excluded"] == 1 and document["wall_time"] == 1.0
    assert {c["id"]: c["excluded"] for c in document["cases"]} == {"FCGI-3.3-1": "fixed since", "FCGI-3.3-2": "known"}


def test_case_ids_sort_in_spec_order() -> None:
    from harness.suite.case import case_id_sort_key

    ids = ["FCGI-A-1", "FCGI-7-1", "FCGI-3.3-12", "FCGI-2.2-1", "FCGI-3.3-2"]
    assert sorted(ids, key=case_id_sort_key) == ["FCGI-2.2-1", "FCGI-3.3-2", "FCGI-3.3-12", "FCGI-7-1", "FCGI-A-1"]


def test_looks_like_names_the_known_bugs() -> None:
    from harness.reports.results import format_details

    failing_case = case("FCGI-3.3-6", title="t", requirement="r", level=Level.REQUIRED, catches=("go-id-reuse",))(violate)
    lines = format_details(CaseResult(failing_case, run_case(failing_case, UnreachableTarget(), check_liveness=False)))
    assert any(line.startswith("     Looks like: go-id-reuse") for line in lines)


# -- the judge: liveness, spec §7's exit allowance, the client suite's processes, notices ---------


def test_judge_weighs_the_liveness_probe() -> None:
    from harness.suite.judge import Facts, Liveness, judge

    dead = Liveness("connection closed (eof) before END_REQUEST", spawned=True, exit_status=3)
    outcome = judge(Facts(Level.REQUIRED, protocol_error=True, liveness=dead))
    assert (outcome.verdict, outcome.actual, outcome.target_alive) == (
        Verdict.WARN, "the application exited with status 3", False)
    # A shell's 128+N is signal N: a crash, not the exit spec §7 allows.
    crashed = Liveness("x", spawned=True, exit_status=139, through_shell=True)
    outcome = judge(Facts(Level.REQUIRED, protocol_error=True, liveness=crashed))
    assert (outcome.verdict, outcome.actual) == (Verdict.FAIL, "target did not answer after the case: x")
    # Not spawned: a target that stops accepting connections may have exited.
    gone = Liveness("cannot connect to tcp:x: refused")
    outcome = judge(Facts(Level.REQUIRED, raised=Violation("a", "EOF"), protocol_error=True, liveness=gone))
    assert outcome.verdict is Verdict.WARN and outcome.note == "the case saw: EOF"
    assert outcome.actual == "the target stopped accepting connections (exit status unknown): cannot connect to tcp:x: refused"
    # Without a protocol error a dead target fails; a failure keeps its texts and notes the death.
    outcome = judge(Facts(Level.REQUIRED, raised=Violation("a", "b"), liveness=dead))
    assert (outcome.verdict, outcome.actual) == (Verdict.FAIL, "b")
    assert outcome.note == "target did not answer after the case: connection closed (eof) before END_REQUEST"


def test_judge_a_refused_connection_is_the_targets_doing_when_it_answers_again() -> None:
    from harness.suite.judge import Facts, Liveness, judge

    refused = TargetUnreachable("cannot connect to tcp:x: refused")
    assert judge(Facts(Level.REQUIRED, raised=refused)).verdict is Verdict.ERROR
    assert judge(Facts(Level.REQUIRED, raised=refused, liveness=Liveness())).verdict is Verdict.FAIL


def test_judge_notice_exclusion_and_not_run() -> None:
    from harness.suite.judge import Facts, judge

    outcome = judge(Facts(Level.UNSPECIFIED, returned="seen", notice="restarted", excluded="known"))
    assert (outcome.verdict, outcome.note, outcome.excluded) == (Verdict.INFO, "seen; restarted", "known")
    outcome = judge(Facts(Level.REQUIRED, not_run="target could not be started: no"))
    assert (outcome.verdict, outcome.actual) == (Verdict.ERROR, "target could not be started: no")


def test_judge_client_processes() -> None:
    from harness.verdicts import AdapterDied, AdapterTimeout
    from harness.suite.judge import AdapterEnd, Adapters, Facts, judge

    never = Adapters(answered=False, exit_statuses=(2,), log_tail="usage: adapter")
    outcome = judge(Facts(Level.REQUIRED, raised=AdapterDied("exited"), adapters=never))
    assert (outcome.verdict, outcome.actual) == (Verdict.ERROR, "the client adapter is unusable: exited usage: adapter")
    worked = Adapters(answered=True, exit_statuses=(None,), log_tail="")
    assert judge(Facts(Level.RECOMMENDED, raised=AdapterDied("exited"), adapters=worked)).verdict is Verdict.FAIL
    assert judge(Facts(Level.UNSPECIFIED, raised=AdapterTimeout("3 s"))).verdict is Verdict.FAIL
    crash = AdapterEnd(-11, "killed by SIGSEGV", sanitizer_report=False)
    outcome = judge(Facts(Level.UNSPECIFIED, returned="fine", adapter_ends=(crash,)))
    assert (outcome.verdict, outcome.actual) == (Verdict.FAIL, "client killed by SIGSEGV")
    killed = AdapterEnd(-9, "killed by SIGKILL", sanitizer_report=False)
    assert judge(Facts(Level.REQUIRED, adapter_ends=(killed,))).verdict is Verdict.PASS
    outcome = judge(Facts(Level.REQUIRED, scenario_errors=("step 2 failed",)))
    assert (outcome.verdict, outcome.actual) == (Verdict.ERROR, "scenario server error: step 2 failed")


# -- one requirement per verdict: also seen, blocked, prerequisites --------------------------


def _stdout_without_terminator() -> list[Record]:
    return [Record(RecordType.STDOUT, 1, b"Status: 200 OK\r\n\r\n"), Record(RecordType.END_REQUEST, 1, bytes(8))]


def _checks_stdout(ctx: CaseContext) -> None:
    expect_stream_terminated(_stdout_without_terminator(), RecordType.STDOUT)


def test_a_shared_check_fails_only_the_case_that_owns_its_requirement() -> None:
    owner = run_case(make_case(Level.REQUIRED, _checks_stdout, STDOUT_TERMINATED), UnreachableTarget(),
                     check_liveness=False)
    assert owner.verdict is Verdict.FAIL and owner.actual == "END_REQUEST without an empty STDOUT record before it"
    other = run_case(make_case(Level.REQUIRED, _checks_stdout), UnreachableTarget(), check_liveness=False)
    assert other.verdict is Verdict.PASS
    assert [(d.requirement, d.what) for d in other.also_seen] == [
        (STDOUT_TERMINATED, "END_REQUEST without an empty STDOUT record before it")]
    with pytest.raises(Violation):  # outside a running case every check is its own
        _checks_stdout(None)  # type: ignore[arg-type]


def test_blocked_is_its_own_verdict_and_does_not_fail_the_run() -> None:
    def blocked(ctx: CaseContext) -> None:
        raise Blocked("FCGI-3.5-2", "the connection was closed after a KEEP_CONN request")

    outcome = run_case(make_case(Level.REQUIRED, blocked), UnreachableTarget(), check_liveness=False)
    assert (outcome.verdict, outcome.blocked_by) == (Verdict.BLOCKED, "FCGI-3.5-2")
    assert outcome.note == "blocked by FCGI-3.5-2: the connection was closed after a KEEP_CONN request"
    assert not fails_run(outcome, strict=True)


@pytest.mark.parametrize("raised", [Violation("END_REQUEST id=2", "connection closed (EOF)"),
                                    ReadTimeout("END_REQUEST id=2"), ConnectionClosed("eof")])
def test_a_failure_after_a_prerequisite_deviated_is_blocked(raised: Exception) -> None:
    closed = Deviation("FCGI-3.5-2", "the connection was closed after a request sent with FCGI_KEEP_CONN")
    facts = dict(level=Level.REQUIRED, raised=raised, also_seen=(closed,))
    blocked = judge(Facts(**facts, prerequisites=("FCGI-3.5-2",)))
    assert (blocked.verdict, blocked.blocked_by) == (Verdict.BLOCKED, "FCGI-3.5-2")
    assert blocked.note.startswith("blocked by FCGI-3.5-2: the connection was closed after a request sent with")
    assert blocked.also_seen == [closed]
    # Not a prerequisite: the case fails, the deviation is told beside its verdict.
    failed = judge(Facts(**facts, prerequisites=("FCGI-4.2-1",)))
    assert failed.verdict is Verdict.FAIL and failed.also_seen == [closed]
    # Also seen never changes a pass.
    assert judge(Facts(Level.REQUIRED, also_seen=(closed,), prerequisites=("FCGI-3.5-2",))).verdict is Verdict.PASS


def _entry(direction: str, item: object) -> TraceEntry:
    return TraceEntry(0.0, direction, item)  # type: ignore[arg-type]


def _kept_request_then(*after: TraceEntry, flags: int = 1) -> list[TraceEntry]:
    begin = Record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.RESPONDER, flags))
    end = Record(RecordType.END_REQUEST, 1, end_request_body(0, 0))
    return [_entry(">", begin), _entry("<", Record(RecordType.STDOUT, 1, b"")), _entry("<", end), *after]


def test_the_traces_show_a_keep_conn_connection_closed_after_a_request() -> None:
    second = Record(RecordType.BEGIN_REQUEST, 2, begin_request_body(Role.RESPONDER, 1))
    params = Record(RecordType.PARAMS, 2, b"\x01\x01ab")
    closed = kept_connection_closed("c", _kept_request_then(_entry(">", second), _entry(">", params), _entry("<", "EOF")))
    assert closed is not None and closed.requirement == "FCGI-3.5-2"
    # The next request reuses the id just ended, or has an empty PARAMS stream: a close may be for that.
    reused = Record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.RESPONDER, 1))
    assert kept_connection_closed("c", _kept_request_then(_entry(">", reused), _entry("<", "EOF"))) is None
    assert kept_connection_closed("c", _kept_request_then(_entry(">", second), _entry("<", "EOF"))) is None
    # Not the target's deviation: KEEP_CONN was not (exactly) set, the harness had it killed, the
    # request was aborted, or the close followed a late record the target may close on.
    assert kept_connection_closed("c", _kept_request_then(_entry("<", "EOF"), flags=0xFF)) is None
    assert kept_connection_closed("c", _kept_request_then(_entry("!", "SIGTERM to the group"), _entry("<", "EOF"))) is None
    aborted = _kept_request_then(_entry("<", "EOF"))
    aborted.insert(1, _entry(">", Record(RecordType.ABORT_REQUEST, 1, b"")))
    assert kept_connection_closed("c", aborted) is None
    late = Record(RecordType.STDIN, 1, b"late")
    assert kept_connection_closed("c", _kept_request_then(_entry(">", late), _entry("<", "EOF"))) is None


def test_report_leads_with_the_deviations() -> None:
    closed = Deviation("FCGI-3.5-2", "the connection was closed after a request sent with FCGI_KEEP_CONN")
    owner = make_case(Level.REQUIRED, violate, "FCGI-3.5-2")
    seer, blocked = make_case(Level.REQUIRED, violate, "FCGI-3.3-2"), make_case(Level.REQUIRED, violate, "FCGI-3.4-1")
    results = [
        CaseResult(owner, Outcome(Verdict.FAIL, expected=["open"], actual="EOF")),
        CaseResult(seer, Outcome(Verdict.PASS, also_seen=[closed])),
        CaseResult(blocked, Outcome(Verdict.BLOCKED, note="blocked by FCGI-3.5-2: closed", blocked_by="FCGI-3.5-2",
                                    also_seen=[closed])),
    ]
    lines = format_report(results).splitlines()
    assert lines[:4] == ["1 deviation (as failing cases: FCGI-3.5-2)", "  × FCGI-3.5-2 t",
                         "      also seen by: FCGI-3.3-2", "      blocked: FCGI-3.4-1"]
    assert "  ⊘ FCGI-3.4-1 t (blocked by FCGI-3.5-2: closed)" in lines
    assert "      Also seen: FCGI-3.5-2 the connection was closed after a request sent with FCGI_KEEP_CONN" in lines
    assert format_summary(results).endswith(", 1 blocked")
    document = json.loads(json.dumps(json_report(results)))
    assert document["deviations"][0] == {"requirement": "FCGI-3.5-2", "verdict": "fail", "seen_by": ["FCGI-3.3-2"],
                                         "blocked": ["FCGI-3.4-1"]}


def test_a_close_after_an_early_end_or_a_late_record_is_the_inactive_ids_requirement() -> None:
    rejected = Record(RecordType.END_REQUEST, 1, end_request_body(0, 3))  # UNKNOWN_ROLE
    begin = Record(RecordType.BEGIN_REQUEST, 1, begin_request_body(0xFFFF, 1))
    early = kept_connection_closed("c", [_entry(">", begin), _entry("<", rejected), _entry("<", "EOF")])
    assert early is not None and early.requirement == "FCGI-3.3-8"
    late = _kept_request_then(_entry(">", Record(RecordType.STDIN, 1, b"late")), _entry("<", "EOF"))
    seen = [d.requirement for d in trace_deviations("c", late)]
    assert seen == ["FCGI-3.3-8"]
    # Where the target closes after complete KEEP_CONN requests too, those closes are that deviation.
    keep_conn = Deviation("FCGI-3.5-2", "the connection was closed after a request sent with FCGI_KEEP_CONN")
    assert root_deviations([keep_conn, Deviation("FCGI-3.3-8", "the connection was closed after STDIN")]) == [keep_conn]


def test_catch_matrix_prints_failing_cases_per_fault() -> None:
    from harness.suite.catch_matrix import FaultRun, format_matrix

    runs = [
        FaultRun("keep-conn-close", intended=["FCGI-3.5-2"], caught={"FCGI-3.5-2": "fail"},
                 blocked={"FCGI-3.4-1": "FCGI-3.5-2"}),
        FaultRun("get-values-ignored", intended=["FCGI-4.1-1", "FCGI-4.1-2"],
                 caught={"FCGI-4.1-1": "fail", "FCGI-4.1-2": "fail"}),
        FaultRun("reply-id-zero", intended=["FCGI-3.3-2"], caught={"FCGI-3.3-2": "fail", "FCGI-3.4-1": "fail",
                                                                   "FCGI-3.4-3": "fail", "FCGI-3.4-5": "fail"}),
    ]
    text = format_matrix(runs)
    assert "  keep-conn-close    [ 1] FCGI-3.5-2* ; blocked: FCGI-3.4-1" in text
    assert "FCGI-4.1-1* FCGI-4.1-2* (breaks several requirements)" in text
    assert text.splitlines()[-1] == ("Specificity: failing cases per fault: mean 2.3, median 2, worst 4 (reply-id-zero); "
                                     "1 blocked verdicts in all")
