"""The suite against hostile targets: programs that hang, accept and never answer, crash
mid-record, send garbage, announce huge lengths, trickle one byte a second, or reset
(tests/hostile/hostile.py). A target that answers no FastCGI record at all (to a plain request or a GET_VALUES)
is stopped before the cases with one verdict for the run (exit status 3); against the others every case must
end within its timeout with a verdict, the run must finish within a wall-time bound, and a misbehaving target
must never get a clean report. Also: the leak cases
(cases/robustness/leaks.py) pass against the reference and fail against leaking targets.

The whole catalogue runs against every hostile mode, as `./fcgispec --target 'cmd:...'` subprocesses,
all modes at once (they mostly wait on timeouts, so they barely compete for CPU) with
--fcgi-timeout 0.5 (every wait scaled by 0.1; FCGISPEC_HOSTILE_TIMEOUT changes it). Set
FCGISPEC_HOSTILE_MODES=silent,crash to run fewer. The command starts with `exec` so that /bin/sh (dash)
does not stay between the harness and the program: through a shell, a crash (SIGSEGV) shows as
"exited with status 139", which spec §7 cases grade as an allowed exit (warn), not as a crash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

from harness.suite.case import BASE_WAIT, load_cases, run_case
from harness.targets.base import CommandTarget, ReferenceTarget, TcpTarget, reference_binary
from harness.targets.process import GroupProcess
from harness.verdicts import Verdict

HOSTILE = ROOT / "tests" / "hostile" / "hostile.py"
MODES = ("no-accept", "silent", "hang", "crash", "garbage", "huge-length", "trickle", "reset")
# No FastCGI record header comes back to the check before the cases.
STOPPED_BEFORE_CASES = {"no-accept", "silent", "crash", "garbage", "reset"}
# The check takes about one base wait, twice for a spawned target that died (it is restarted once).
CHECK_BOUND = 30.0
FCGI_TIMEOUT = float(os.environ.get("FCGISPEC_HOSTILE_TIMEOUT", "0.5"))
SCALE = FCGI_TIMEOUT / BASE_WAIT
# A case may overrun its scaled timeout by the last wait's granularity and closing its connections.
CASE_GRACE = 1.5
# Per case beyond its own timeout: the liveness probe (5 s scaled), a restart of a crashed target
# (up to a few seconds for a Python start-up), pytest's bookkeeping.
PER_CASE_OVERHEAD = 1.0 * 1 + 3.0
CASE_DIRS = ("cases/server", "cases/robustness")
SERVER_CASES = load_cases([ROOT / d for d in CASE_DIRS])  # what the runs below collect


def wall_bound(cases: list) -> float:
    """The longest a run may take if every case uses its whole timeout (and start-up)."""
    return 30.0 + sum(c.timeout * SCALE + PER_CASE_OVERHEAD for c in cases)


def selected_modes() -> list[str]:
    chosen = os.environ.get("FCGISPEC_HOSTILE_MODES")
    return [m for m in chosen.split(",") if m] if chosen else list(MODES)


def command(mode: str) -> str:
    return f"cmd:exec {sys.executable} {HOSTILE} {mode}"


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Starts the suite against every mode at once; returns per mode the report and the wall time."""
    if not reference_binary(ROOT).exists():
        pytest.skip("reference responder not built")
    out = tmp_path_factory.mktemp("hostile")
    bound = wall_bound(SERVER_CASES)
    running = {}
    for mode in selected_modes():
        report = out / f"{mode}.json"
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *CASE_DIRS,
                "--target", command(mode), "--fcgi-timeout", str(FCGI_TIMEOUT), "--report-json", str(report)]
        log = open(out / f"{mode}.log", "w")
        running[mode] = (GroupProcess(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), time.monotonic(),
                         report, log)
    # Every run is watched at once, so that each one's wall time is its own (not the time until the
    # runs waited for before it ended).
    walls: dict[str, float] = {}
    deadline = min(started for _, started, _, _ in running.values()) + bound
    while len(walls) < len(running) and time.monotonic() < deadline:
        for mode, (process, started, _, _) in running.items():
            if mode not in walls and process.poll() is not None:
                walls[mode] = time.monotonic() - started
        time.sleep(0.05)
    results: dict[str, dict] = {}
    for mode, (process, started, report, log) in running.items():
        wall = walls.get(mode)
        if wall is None:
            # SIGKILL to the run, and to the targets it started in sessions of their own.
            process.stop(grace=0, first_signal=None)
        log.close()
        data = json.loads(report.read_text()) if report.exists() else None
        results[mode] = {"wall": wall, "report": data, "status": process.returncode, "bound": bound,
                         "log": (out / f"{mode}.log").read_text()[-3000:]}
    return results


@pytest.mark.timeout(wall_bound(SERVER_CASES) + 120)  # the fixture runs every mode inside the first test
@pytest.mark.parametrize("mode", selected_modes())
def test_suite_ends_with_verdicts(hostile_runs: dict[str, dict], mode: str) -> None:
    """Every case gets a verdict within its timeout, and the run against a hostile mode fails."""
    run = hostile_runs[mode]
    assert run["wall"] is not None, f"the run against {mode} did not finish within {run['bound']:.0f} s\n{run['log']}"
    report = run["report"]
    assert report is not None, f"no JSON report from the run against {mode}\n{run['log']}"
    if mode in STOPPED_BEFORE_CASES:
        # One verdict for the run, no case judged, the harness could not test (status 3).
        assert run["status"] == 3, run["log"]
        assert report["cases"] == [] and report["run_error"].startswith("target cmd:"), report["run_error"]
        assert "answered no FastCGI record" in report["run_error"], report["run_error"]
        assert run["wall"] < CHECK_BOUND, f"{run['wall']:.1f} s to stop the run against {mode}"
        return
    cases = report["cases"]
    ids = {c["id"] for c in cases}
    expected = {c.id for c in SERVER_CASES}
    assert expected <= ids, f"cases without a verdict against {mode}: {sorted(expected - ids)}"
    by_id = {c.id: c for c in SERVER_CASES}
    late = [
        f"{c['id']} {c['duration']:.1f}s > {by_id[c['id']].timeout * SCALE:.1f}s"
        for c in cases
        if c["id"] in by_id and c["duration"] > by_id[c["id"]].timeout * SCALE + CASE_GRACE
    ]
    assert not late, f"cases that overran their timeout against {mode}: {late}"
    verdicts = {c["verdict"] for c in cases}
    assert verdicts <= {"pass", "fail", "warn", "info", "unsupported", "error", "blocked"}
    # A target that answers nothing properly must not look conformant: the run fails.
    assert run["status"] != 0, f"the suite passed against the hostile target {mode}"
    assert any(c["verdict"] == "fail" for c in cases), f"no case failed against {mode}"
    if mode == "crash":
        # Killed by a signal: never the nonzero exit that spec §7 allows after a protocol error.
        assert not [c["id"] for c in cases if c["verdict"] == "warn"], "a crash was graded as an allowed exit"


# --- the leak cases -------------------------------------------------------------------------

LEAK_CASES = {c.id: c for c in load_cases([ROOT / "cases" / "robustness"])}


@pytest.fixture(scope="module")
def reference() -> ReferenceTarget:
    target = ReferenceTarget(ROOT)
    target.start()
    yield target
    target.stop()


@pytest.mark.parametrize("case_id", sorted(LEAK_CASES))
def test_leak_cases_pass_against_reference(reference: ReferenceTarget, case_id: str) -> None:
    outcome = run_case(LEAK_CASES[case_id], reference)
    assert outcome.verdict is Verdict.PASS, f"{outcome.actual}\n{outcome.note}"
    assert "fds" in outcome.note and "VmRSS" in outcome.note  # the measured curve is in the report


def test_leak_case_unsupported_for_tcp(reference: ReferenceTarget) -> None:
    family, (host, port) = reference.address()
    outcome = run_case(LEAK_CASES["ROBUST-1"], TcpTarget(f"{host}:{port}"))
    assert outcome.verdict is Verdict.UNSUPPORTED, outcome.actual


def test_idle_leak_case_fails_against_fd_leak_on_eof() -> None:
    target = ReferenceTarget(ROOT, ["--fault", "fd-leak-on-eof"])
    target.start()
    try:
        outcome = run_case(LEAK_CASES["ROBUST-2"], target)
    finally:
        target.stop()
    assert outcome.verdict is Verdict.FAIL, outcome.note
    assert "more file descriptors" in outcome.actual


@pytest.mark.parametrize("case_id", sorted(LEAK_CASES))
def test_leak_cases_fail_against_leaking_command(case_id: str) -> None:
    target = CommandTarget(f"{sys.executable} {HOSTILE} leak")
    target.start()
    try:
        outcome = run_case(LEAK_CASES[case_id], target)
    finally:
        target.stop()
    assert outcome.verdict is Verdict.FAIL, outcome.note
    assert "more file descriptors" in outcome.actual


def test_leak_cases_pass_against_correct_command() -> None:
    target = CommandTarget(f"{sys.executable} {HOSTILE} ok")
    target.start()
    try:
        outcomes = {cid: run_case(case, target) for cid, case in LEAK_CASES.items()}
    finally:
        target.stop()
    assert all(o.verdict is Verdict.PASS for o in outcomes.values()), {k: o.actual for k, o in outcomes.items()}
