"""Running cases in-process against the reference responder and its fault modes,
and the catch matrix (fault -> the cases that caught it) that proves the suite can fail.

Used by the project's own tests (tests/test_catch_matrix.py, tests/test_cases_can_fail.py):
no nested pytest, one reference process per configuration, reused across cases.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from harness.suite.case import Case, case_id_sort_key, run_case, scale_for
from harness.targets.faults import known_faults
from harness.targets.base import ReferenceTarget
from harness.verdicts import Outcome, Verdict

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: ThreadSanitizer")
# The matrix runs every case against every fault: a 1 s base wait (instead of 5 s) keeps a
# fault that makes cases time out from costing minutes; loopback answers take milliseconds.
MATRIX_BASE_WAIT = 1.0
CAUGHT = (Verdict.FAIL, Verdict.WARN)
# Where each per-fault result goes (relative to the repository root), and the matrix text.
MATRIX_DIR = Path("build") / "catch-matrix"
MATRIX_FILE = Path("build") / "catch-matrix.txt"


class SanitizerReport(AssertionError):
    """The reference responder (an ASan/UBSan build) reported memory or UB errors."""


class ReferencePool:
    """One reference process per configuration (fault modes and arguments), started on
    first use, reused by all cases, restarted when a case left it dead."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.targets: dict[tuple[str, ...], ReferenceTarget] = {}

    def get(self, faults: Sequence[str] = (), args: Sequence[str] = ()) -> ReferenceTarget:
        key = (*args, *(part for fault in faults for part in ("--fault", fault)))
        target = self.targets.get(key)
        if target is None:
            target = ReferenceTarget(self.root, list(key))
            target.start()
            self.targets[key] = target
        return target

    def run(self, case: Case, faults: Sequence[str] = (), *, scale: float = 1.0) -> Outcome:
        """Run one case against the reference (with the case's reference_args and the faults)."""
        target = self.get(faults, case.reference_args)
        log_before = len(target.log_tail(1 << 20))
        outcome = run_case(case, target, scale=scale)
        log = target.log_tail(1 << 20)[log_before:]
        for mark in SANITIZER_MARKS:
            if mark in log:
                raise SanitizerReport(f"sanitizer report while running {case.id} (faults {list(faults)}):\n{log[-3000:]}")
        if not outcome.target_alive or target.exit_status() is not None:
            target.restart()  # the next case gets a fresh process
        return outcome

    def stop_all(self) -> None:
        for target in self.targets.values():
            target.stop()
        self.targets.clear()


def explain(outcome: Outcome) -> str:
    return (
        f"{outcome.verdict.value}: expected {outcome.expected} actual {outcome.actual!r} note {outcome.note!r}\n"
        f"{outcome.trace}\n{outcome.target_log}"
    )


@dataclass
class FaultRun:
    """What the whole suite did against one fault mode."""

    fault: str
    intended: list[str] = field(default_factory=list)  # cases whose catches= name the fault
    caught: dict[str, str] = field(default_factory=dict)  # case id -> verdict (fail/warn)
    blocked: dict[str, str] = field(default_factory=dict)  # case id -> the requirement that blocked it
    seen: dict[str, list[str]] = field(default_factory=dict)  # case id -> requirements it saw deviate (also seen)
    errors: dict[str, str] = field(default_factory=dict)  # case id -> harness error text
    missed: dict[str, str] = field(default_factory=dict)  # intended case id -> what it said instead
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FaultRun":
        return cls(**json.loads(text))

    @property
    def several_owners(self) -> bool:
        """More than one case fails and each lists the fault: it breaks several requirements."""
        return len(self.caught) > 1 and all(case_id in self.intended for case_id in self.caught)


def run_fault(pool: ReferencePool, fault: str, cases: Iterable[Case], *, base_wait: float = MATRIX_BASE_WAIT) -> FaultRun:
    """Every case against `reference --fault FAULT` (each with its reference_args)."""
    started = time.monotonic()
    run = FaultRun(fault)
    scale = scale_for(base_wait)
    for case in sorted(cases, key=lambda c: c.sort_key):
        outcome = pool.run(case, [fault], scale=scale)
        intended = fault in case.catches
        if intended:
            run.intended.append(case.id)
        if outcome.also_seen:
            run.seen[case.id] = [d.requirement for d in outcome.also_seen]
        if outcome.verdict in CAUGHT:
            run.caught[case.id] = outcome.verdict.value
        elif outcome.verdict is Verdict.BLOCKED:
            run.blocked[case.id] = outcome.blocked_by or ""
        elif outcome.verdict is Verdict.ERROR:
            run.errors[case.id] = outcome.actual[:2000]
        # Caught means FAIL or WARN: a REQUIRED case may also warn (RecommendationMissed,
        # e.g. an RST where a FIN is recommended), which is how that fault shows.
        if intended and outcome.verdict not in CAUGHT:
            run.missed[case.id] = explain(outcome)[:4000]
    run.seconds = round(time.monotonic() - started, 2)
    return run


def fault_list_names(binary: str | None = None) -> list[str]:
    return list(known_faults(binary))


def format_matrix(runs: Sequence[FaultRun]) -> str:
    """One line per fault: the cases that caught it, '*' marking those meant to (catches=)."""
    lines = [
        "Catch matrix: fault -> [failing cases] cases that caught it (* = listed in the case's catches=; "
        "! = meant to, but did not); blocked: cases it kept from their own requirement"
    ]
    width = max((len(run.fault) for run in runs), default=10)
    for run in sorted(runs, key=lambda r: r.fault):
        shown = [f"{case_id}{'*' if case_id in run.intended else ''}" for case_id in sorted(run.caught, key=case_id_sort_key)]
        shown += [f"!{case_id}" for case_id in sorted(run.missed, key=case_id_sort_key)]
        if not run.intended:
            shown.append("(no case lists this fault)")
        if run.several_owners:
            shown.append("(breaks several requirements)")
        if run.blocked:
            shown.append(f"; blocked: {' '.join(sorted(run.blocked, key=case_id_sort_key))}")
        lines.append(f"  {run.fault:<{width}} [{len(run.caught):2}] {' '.join(shown) or '(caught by none)'}")
    total = sum(run.seconds for run in runs)
    lines.append(f"{len(runs)} faults; {sum(not r.missed and bool(r.intended) for r in runs)} caught by their intended "
                 f"cases; {total:.1f} s of case time")
    lines.append(format_specificity(runs))
    return "\n".join(lines)


def format_specificity(runs: Sequence[FaultRun]) -> str:
    """How many cases each fault fails: one bug should fail the case(s) of the requirement it breaks."""
    counts = sorted(len(run.caught) for run in runs)
    if not counts:
        return "Specificity: no faults run"
    middle = len(counts) // 2
    median = counts[middle] if len(counts) % 2 else (counts[middle - 1] + counts[middle]) / 2
    worst = max(runs, key=lambda r: len(r.caught))
    blocked = sum(len(run.blocked) for run in runs)
    return (f"Specificity: failing cases per fault: mean {sum(counts) / len(counts):.1f}, median {median:g}, "
            f"worst {len(worst.caught)} ({worst.fault}); {blocked} blocked verdicts in all")




def write_run(directory: Path, run: FaultRun) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run.fault}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(run.to_json())
    temporary.replace(path)  # atomic: a reader never sees half a file


def read_runs(directory: Path, since: float = 0.0) -> list[FaultRun]:
    """The fault runs written (by any xdist worker) at or after `since` (a time.time())."""
    if not directory.is_dir():
        return []
    return [FaultRun.from_json(p.read_text()) for p in sorted(directory.glob("*.json")) if p.stat().st_mtime >= since]
