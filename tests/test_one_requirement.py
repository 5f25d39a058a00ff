"""One bug, one failing requirement: the whole server suite against the reference with exactly
one fault fails only the case(s) of the requirement that fault breaks; the other cases that meet
it pass with it told as also seen, or are BLOCKED by it.

The catch matrix (tests/test_catch_matrix.py) runs every fault; this file pins the specificity
for the faults that used to fail dozens of cases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from harness.suite.case import load_cases
from harness.suite.catch_matrix import MATRIX_BASE_WAIT, ReferencePool, run_fault
from harness.targets.base import reference_binary

ROOT = Path(__file__).resolve().parent.parent
CASES = load_cases([ROOT / "cases" / "server"])

# fault -> the cases it may fail (the requirement it breaks), and a case that meets it on the way.
ONE_BUG = {
    "keep-conn-close": ({"FCGI-3.5-2"}, "FCGI-3.3-2"),
    "no-empty-stdout": ({"FCGI-5.3-6"}, "FCGI-5.1-1"),
    "end-request-short-body": ({"FCGI-5.5-1"}, "FCGI-3.3-1"),
}


@pytest.fixture(scope="module")
def pool() -> Iterator[ReferencePool]:
    if not reference_binary(ROOT).exists():
        pytest.fail(f"reference responder not built: {reference_binary(ROOT)}")
    references = ReferencePool(ROOT)
    yield references
    references.stop_all()


@pytest.mark.parametrize("fault", sorted(ONE_BUG))
def test_one_bug_fails_only_its_requirement(pool: ReferencePool, fault: str) -> None:
    owners, bystander = ONE_BUG[fault]
    run = run_fault(pool, fault, CASES, base_wait=MATRIX_BASE_WAIT)
    pool.stop_all()
    assert set(run.caught) == owners, f"{fault} failed {sorted(run.caught)}; blocked {sorted(run.blocked)}"
    assert not run.errors, run.errors
    # It met the deviation, told it as also seen, and still judged its own requirement.
    assert bystander not in run.blocked and set(run.seen.get(bystander, ())) & owners, run.seen
