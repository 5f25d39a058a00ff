"""Every case passes against the clean reference responder; the catalogue's fault table is sound.

That each case fails against the faults it lists (catches=) is proven by
tests/test_catch_matrix.py, which runs the whole suite against every fault mode:
this file only does the per-case run against the clean reference (each case with its
reference_args), at the normal timeouts. With
FCGISPEC_RESPONDER=build-asan/reference-server/fcgispec-responder the same runs
exercise the sanitizer build, and any sanitizer report fails the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from harness.suite.case import load_cases
from harness.suite.catch_matrix import ReferencePool, explain, fault_list_names
from harness.targets.base import reference_binary
from harness.verdicts import Verdict

ROOT = Path(__file__).resolve().parent.parent
SERVER_CASES = ROOT / "cases" / "server"
CASES = {c.id: c for c in load_cases([SERVER_CASES])}
# What a correct server may get: UNSPECIFIED cases record INFO, optional features UNSUPPORTED.
CLEAN_VERDICTS = (Verdict.PASS, Verdict.INFO, Verdict.UNSUPPORTED)


@pytest.fixture(scope="module")
def references() -> Iterator[ReferencePool]:
    if not reference_binary(ROOT).exists():
        pytest.fail(f"reference responder not built: {reference_binary(ROOT)}")
    pool = ReferencePool(ROOT)
    yield pool
    pool.stop_all()


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_case_passes_against_reference(references: ReferencePool, case_id: str) -> None:
    outcome = references.run(CASES[case_id])
    assert outcome.verdict in CLEAN_VERDICTS, explain(outcome)


def test_every_case_has_a_fault() -> None:
    assert not [c.id for c in CASES.values() if not c.catches], "cases that no fault mode is shown to break"


def test_catches_name_real_faults() -> None:
    used = {fault for c in CASES.values() for fault in c.catches}
    unknown = used - set(fault_list_names(str(reference_binary(ROOT))))
    assert not unknown, f"catches= names faults the responder does not have: {sorted(unknown)}"


def test_every_case_section_has_a_title() -> None:
    from harness.suite.case import SECTION_TITLES

    untitled = sorted({c.section for c in CASES.values()} - set(SECTION_TITLES))
    assert not untitled, f"sections without a report heading in harness/suite/case.py: {untitled}"
