"""The suite proves it can fail: every case against every fault mode of the reference.

Each fault mode (`fcgispec-responder --fault NAME`) replays a real FastCGI bug. For
each one, the whole suite runs in-process against `reference --fault NAME` (each case
with its own reference_args), with a 1 s base wait so that timeouts stay short. Every
case that lists the fault in catches= must FAIL (WARN for recommended cases); every
other case that happens to catch it is recorded too. The matrix (fault -> the cases
that caught it) is written to build/catch-matrix.txt and printed at the end of the run
(the root conftest assembles it from the per-fault results, on the xdist controller too).

Run it with `pytest tests/test_catch_matrix.py -n 2`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from harness.suite.case import load_cases
from harness.suite.catch_matrix import MATRIX_DIR, ReferencePool, fault_list_names, run_fault, write_run
from harness.targets.base import reference_binary

ROOT = Path(__file__).resolve().parent.parent
CASES = load_cases([ROOT / "cases" / "server"])
# Listed at collection so that xdist can spread one test per fault over its workers.
FAULTS = fault_list_names() if reference_binary(ROOT).exists() else []


@pytest.fixture(scope="module")
def pool() -> Iterator[ReferencePool]:
    references = ReferencePool(ROOT)
    yield references
    references.stop_all()


def test_reference_is_built() -> None:
    assert FAULTS, f"reference responder not built (or lists no faults): {reference_binary(ROOT)}"


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_is_caught_by_its_cases(pool: ReferencePool, fault: str) -> None:
    run = run_fault(pool, fault, CASES)
    write_run(ROOT / MATRIX_DIR, run)
    pool.stop_all()  # one fault's processes are not needed by the next
    assert run.intended, f"no case lists {fault} in catches= (caught by: {sorted(run.caught) or 'none'})"
    assert not run.missed, f"{fault} was not caught by its intended cases:\n" + "\n".join(
        f"--- {case_id}\n{text}" for case_id, text in run.missed.items()
    )
    assert not run.errors, f"harness errors against {fault}: {run.errors}"
