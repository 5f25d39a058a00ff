"""One bug, one failing requirement: the whole server suite against the reference with exactly
one fault fails only the case(s) of the requirement that fault breaks; the other cases that meet
it pass with it told as also seen, or are BLOCKED by it (found in the traces, or by the
prerequisite checks of harness/suite/prerequisite_checks.py where the traces cannot show it).

The catch matrix (tests/test_catch_matrix.py) runs every fault; this file pins the specificity
for the faults that used to fail dozens of cases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from harness.suite.case import load_cases
from harness.suite.catch_matrix import MATRIX_BASE_WAIT, FaultRun, ReferencePool, run_fault
from harness.targets.base import reference_binary

ROOT = Path(__file__).resolve().parent.parent
CASES = load_cases([ROOT / "cases" / "server"])

# fault -> the cases it may fail (the requirement it breaks), and a case that meets it on the way.
ONE_BUG = {
    "keep-conn-close": ({"FCGI-3.5-2"}, "FCGI-3.3-2"),
    "no-empty-stdout": ({"FCGI-5.3-6"}, "FCGI-5.1-1"),
    "end-request-short-body": ({"FCGI-5.5-1"}, "FCGI-3.3-1"),
}


# fault -> the cases it may fail, and a case it keeps from its own requirement (BLOCKED by an owner):
# deviations only a prerequisite check finds, the case itself meeting no more than a wrong answer.
BLOCKS = {
    "output-before-params-end": ({"FCGI-5.1-1", "FCGI-5.2-1"}, "FCGI-3.4-5"),
    "stdin-first-record-only": ({"FCGI-3.3-10"}, "FCGI-5.3-2"),
    "nv-long-length-1byte": ({"FCGI-3.4-1", "FCGI-3.4-3"}, "FCGI-3.4-5"),
    "params-8k-buffer": ({"FCGI-3.4-5"}, "FCGI-3.4-1"),
    "params-split-pair-lost": ({"FCGI-3.3-10"}, "FCGI-3.4-3"),
    "late-record-close": ({"FCGI-3.3-7", "FCGI-3.3-8", "FCGI-5.4-2"}, "FCGI-A-1"),
    "id-high-byte-dropped": ({"FCGI-3.3-2", "FCGI-3.3-9"}, None),
    "get-values-id-1": ({"FCGI-4.1-1"}, "FCGI-4.1-5"),
}


@pytest.fixture(scope="module")
def pool() -> Iterator[ReferencePool]:
    if not reference_binary(ROOT).exists():
        pytest.fail(f"reference responder not built: {reference_binary(ROOT)}")
    references = ReferencePool(ROOT)
    yield references
    references.stop_all()


def _fails_only(pool: ReferencePool, fault: str, owners: set[str]) -> FaultRun:
    """The whole server suite against the fault: it fails exactly the owners' cases, with no harness error."""
    run = run_fault(pool, fault, CASES, base_wait=MATRIX_BASE_WAIT)
    pool.stop_all()
    assert set(run.caught) == owners, f"{fault} failed {sorted(run.caught)}; blocked {sorted(run.blocked)}"
    assert not run.errors, run.errors
    return run


@pytest.mark.parametrize("fault", sorted(ONE_BUG))
def test_one_bug_fails_only_its_requirement(pool: ReferencePool, fault: str) -> None:
    owners, bystander = ONE_BUG[fault]
    run = _fails_only(pool, fault, owners)
    # It met the deviation, told it as also seen, and still judged its own requirement.
    assert bystander not in run.blocked and set(run.seen.get(bystander, ())) & owners, run.seen


@pytest.mark.parametrize("fault", sorted(BLOCKS))
def test_one_bug_blocks_what_relies_on_it(pool: ReferencePool, fault: str) -> None:
    owners, blocked = BLOCKS[fault]
    run = _fails_only(pool, fault, owners)
    if blocked is not None:
        assert run.blocked.get(blocked) in owners, run.blocked
