"""Every case passes against the reference responder and fails against a known bug.

Each fault mode of the reference responder (`--fault NAME`) replays a real
FastCGI bug; a case that no fault can make fail proves nothing. With
FCGISPEC_RESPONDER=build-asan/reference-server/fcgispec-responder the same
runs exercise the sanitizer build, and any sanitizer report fails the test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from harness.case import Case, load_cases, run_case
from harness.targets import ReferenceTarget, reference_binary
from harness.verdicts import Level, Verdict

ROOT = Path(__file__).resolve().parent.parent
SERVER_CASES = ROOT / "cases" / "server"


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: ThreadSanitizer")

CASES = {c.id: c for c in load_cases([SERVER_CASES])}


def listed_faults() -> list[str]:
    """The fault names `fcgispec-responder --fault list` prints, one 'NAME  description' a line."""
    binary = reference_binary(ROOT)
    if not binary.exists():
        pytest.fail(f"reference responder not built: {binary}")
    listing = subprocess.run([str(binary), "--fault", "list"], capture_output=True, text=True, timeout=10, check=True)
    return [line.split()[0] for line in listing.stdout.splitlines() if line.strip()]


class ReferencePool:
    """One reference process per configuration (fault mode and arguments), started on
    first use, reused by all cases."""

    def __init__(self) -> None:
        self.targets: dict[tuple[str, ...], ReferenceTarget] = {}

    def get(self, fault: str | None, args: tuple[str, ...] = ()) -> ReferenceTarget:
        key = (*args, *(("--fault", fault) if fault else ()))
        target = self.targets.get(key)
        if target is None:
            target = ReferenceTarget(ROOT, list(key))
            target.start()
            self.targets[key] = target
        return target

    def stop_all(self) -> None:
        for target in self.targets.values():
            target.stop()


@pytest.fixture(scope="module")
def references() -> Iterator[ReferencePool]:
    pool = ReferencePool()
    yield pool
    pool.stop_all()


def run_against(references: ReferencePool, case: Case, fault: str | None):
    target = references.get(fault, case.reference_args)
    log_before = len(target.log_tail(1 << 20))
    outcome = run_case(case, target)
    log = target.log_tail(1 << 20)[log_before:]
    for mark in SANITIZER_MARKS:
        assert mark not in log, f"sanitizer report while running {case.id} (fault {fault}):\n{log[-3000:]}"
    if not outcome.target_alive or target.exit_status() is not None:
        target.restart()  # the next case gets a fresh process
    return outcome


def _explain(outcome) -> str:
    return f"{outcome.verdict.value}: expected {outcome.expected} actual {outcome.actual!r} note {outcome.note!r}\n{outcome.trace}\n{outcome.target_log}"


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_case_passes_against_reference(references: ReferencePool, case_id: str) -> None:
    outcome = run_against(references, CASES[case_id], None)
    assert outcome.verdict is Verdict.PASS, _explain(outcome)


@pytest.mark.parametrize(("case_id", "fault"), [(c.id, fault) for c in CASES.values() for fault in c.catches])
def test_case_fails_against_fault(references: ReferencePool, case_id: str, fault: str) -> None:
    case = CASES[case_id]
    expected = Verdict.WARN if case.level is Level.RECOMMENDED else Verdict.FAIL
    outcome = run_against(references, case, fault)
    assert outcome.verdict is expected, _explain(outcome)
    # A failure must say what was wrong, not just that something was.
    assert outcome.expected and outcome.actual


def test_every_case_has_a_fault() -> None:
    assert not [c.id for c in CASES.values() if not c.catches], "cases that no fault mode is shown to break"


def test_every_fault_is_used() -> None:
    used = {fault for c in CASES.values() for fault in c.catches}
    unused = [fault for fault in listed_faults() if fault not in used]
    assert not unused, f"faults no case is shown to catch: {unused}"
    unknown = used - set(listed_faults())
    assert not unknown, f"table names faults the responder does not have: {sorted(unknown)}"
