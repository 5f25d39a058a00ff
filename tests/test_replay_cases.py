"""cases/replay/: one case per golden capture, picked up by the suite's collector, passing against the
reference, failing against the faults its capture can show (go-id-reuse naming the reused id), and
judged at the protocol level against a target that runs another application."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from harness.suite.case import load_cases, run_case, scale_for
from harness.suite.catch_matrix import ReferencePool, explain
from harness.replay.cases import CONTENT_ENV, content_wanted
from harness.replay.runner import replay
from harness.suite.observations import COMMON_PREREQUISITES
from harness.targets.base import CommandTarget, ReferenceTarget, TcpTarget, reference_binary
from harness.capture.transcript import read_transcript
from harness.verdicts import Verdict

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
CAPTURES = sorted((ROOT / "fixtures" / "captures").glob("*/*.transcript"))
CASES = {c.id: c for c in load_cases([ROOT / "cases" / "replay"])}
INDEPENDENT = ROOT / "tests" / "servers" / "independent_responder.py"
# Buggy runs wait 1 s instead of 5 for what never comes.
FAULT_SCALE = scale_for(1.0)

pytestmark = pytest.mark.skipif(not reference_binary(ROOT).exists(), reason="reference responder not built")


@pytest.fixture(scope="module")
def pool() -> Iterator[ReferencePool]:
    references = ReferencePool(ROOT)
    yield references
    references.stop_all()


def test_one_case_per_capture_with_its_id() -> None:
    assert sorted(CASES) == sorted(f"REPLAY-{p.parent.name}-{p.stem}" for p in CAPTURES)
    assert {"REPLAY-nginx-sequential-keepalive", "REPLAY-apache2-sequential-keepalive", "REPLAY-h2o-head",
            "REPLAY-lighttpd-large-post"} <= set(CASES)
    assert all(c.section == "REPLAY" and c.level.value == "required" for c in CASES.values())


def test_a_new_capture_is_a_new_case(tmp_path: Path) -> None:
    # The module makes its cases from the files: copy it next to a capture directory of its own.
    cases_dir = tmp_path / "cases" / "replay"
    cases_dir.mkdir(parents=True)
    (tmp_path / "fixtures" / "captures" / "caddy").mkdir(parents=True)
    (tmp_path / "fixtures" / "captures" / "caddy" / "odd-one.transcript").write_text(
        (ROOT / "fixtures" / "captures" / "nginx" / "head.transcript").read_text())
    source = (ROOT / "cases" / "replay" / "golden_captures.py").read_text()
    (cases_dir / "golden_captures_elsewhere.py").write_text(source)  # its own module name
    found = load_cases([cases_dir])
    assert [c.id for c in found] == ["REPLAY-caddy-odd-one"]


def test_the_collector_selects_them_by_prefix(tmp_path: Path) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "pytest", "cases", "--collect-only", "-q", "--case", "REPLAY-nginx", "-p", "no:xdist"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    ids = sorted(line.rsplit("::", 1)[1] for line in done.stdout.splitlines() if "::REPLAY-" in line)
    assert ids == sorted(c for c in CASES if c.startswith("REPLAY-nginx-")), done.stdout[-3000:] + done.stderr[-2000:]


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_passes_against_the_reference(pool: ReferencePool, case_id: str) -> None:
    outcome = pool.run(CASES[case_id])
    assert outcome.verdict is Verdict.PASS, explain(outcome)
    assert "(protocol and content)" in outcome.note  # the reference runs the capture's application


def test_the_reused_id_captures_are_nginx_apache_and_h2o() -> None:
    reusing = {c.id.split("-")[1] for c in CASES.values() if "go-id-reuse" in c.catches}
    assert reusing == {"nginx", "apache2", "h2o"}
    assert "go-id-reuse" in CASES["REPLAY-nginx-sequential-keepalive"].catches
    assert "keep-conn-never-close" in CASES["REPLAY-lighttpd-sequential-keepalive"].catches


@pytest.mark.parametrize("case_id, fault", [(c.id, f) for c in sorted(CASES.values(), key=lambda c: c.id)
                                            for f in c.catches])
def test_fails_against_the_faults_it_catches(pool: ReferencePool, case_id: str, fault: str) -> None:
    outcome = pool.run(CASES[case_id], [fault], scale=FAULT_SCALE)
    if outcome.verdict is Verdict.BLOCKED:
        # The fault breaks a requirement every exchange relies on: its own case fails, and the
        # replay says that requirement is why it could not be judged.
        assert outcome.blocked_by in COMMON_PREREQUISITES and outcome.also_seen, explain(outcome)
        return
    assert outcome.verdict is Verdict.FAIL, explain(outcome)


def test_a_replay_names_the_reused_id_where_the_target_dropped_the_connection(pool: ReferencePool) -> None:
    # The case is blocked by FCGI-3.3-6 (above); the replay's own report still says where it diverged.
    transcript = read_transcript(ROOT / "fixtures" / "captures" / "nginx" / "sequential-keepalive.transcript")
    result = replay(transcript, pool.get(["go-id-reuse"]), timeout=5.0, first_only=True)
    report = result.report()
    assert not result.ok and "reused id 1 (request 1 on this connection had it and was complete)" in report, report
    assert "> BEGIN_REQUEST id=1" in report and "=> " in report  # the records around it


@pytest.fixture(scope="module")
def independent() -> Iterator[CommandTarget]:
    target = CommandTarget(f"{PYTHON} {INDEPENDENT} --port {{port}}")
    target.start()
    yield target
    target.stop()


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_protocol_level_against_another_application(independent: CommandTarget, case_id: str) -> None:
    outcome = run_case(CASES[case_id], independent)
    assert outcome.verdict is Verdict.PASS, explain(outcome)
    assert "(protocol level)" in outcome.note


def test_go_id_reuse_bug_of_the_independent_responder_is_caught() -> None:
    target = CommandTarget(f"{PYTHON} {INDEPENDENT} --port {{port}} --bug go-id-reuse")
    target.start()
    try:
        outcome = run_case(CASES["REPLAY-apache2-sequential-keepalive"], target, scale=FAULT_SCALE)
    finally:
        target.stop()
    # Request id reuse is FCGI-3.3-6's requirement: its check, on the same target, blocks the replay.
    assert outcome.verdict is Verdict.BLOCKED and outcome.blocked_by == "FCGI-3.3-6", explain(outcome)


def test_content_is_compared_for_the_reference_or_when_asked() -> None:
    nginx = read_transcript(ROOT / "fixtures" / "captures" / "nginx" / "head.transcript")
    assert content_wanted(nginx, ReferenceTarget(ROOT, ["--fault", "go-id-reuse"]), {})
    assert not content_wanted(nginx, TcpTarget("127.0.0.1:9000"), {})
    assert content_wanted(nginx, TcpTarget("127.0.0.1:9000"), {CONTENT_ENV: "1"})
    assert not content_wanted(nginx, ReferenceTarget(ROOT), {CONTENT_ENV: "0"})
    without_probe_app = ReferenceTarget(ROOT, ["--app", "hello"])
    assert without_probe_app.has_probe_app is None  # found out by asking, as for cmd: targets
    without_probe_app.has_probe_app = False
    assert not content_wanted(nginx, without_probe_app, {})
