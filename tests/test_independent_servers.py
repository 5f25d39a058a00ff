"""The suite against a FastCGI server written outside fcgispec's code (tests/servers/).

independent_responder.py is a small, spec-correct Responder in plain Python that shares
no code with the harness: the whole suite must give it no FAIL and no ERROR (as it must
any correct server, which is how fcgispec will be judged). Each of its --bug options
injects one real-world bug; the suite must catch each with a case for the right spec
item (BUG_ITEMS). Cases run in-process against `cmd:` targets, as a user would run them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import pytest

from harness.suite.case import load_cases, run_case, scale_for
from harness.suite.catch_matrix import explain
from harness.targets.base import CommandTarget
from harness.verdicts import Outcome, Verdict

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "tests" / "servers" / "independent_responder.py"
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
CASES = sorted(load_cases([ROOT / "cases" / "server"]), key=lambda c: c.sort_key)
CORRECT = (Verdict.PASS, Verdict.INFO, Verdict.UNSUPPORTED)

# Each bug and the case-id prefixes of the spec items that describe it (catalogue section 1):
# at least one case of these must FAIL (or WARN, for a recommendation).
BUG_ITEMS: dict[str, tuple[str, ...]] = {
    "go-id-reuse": ("FCGI-3.3-6",),
    "keep-conn-ignored": ("FCGI-3.5-2", "FCGI-5.4-4"),
    "get-values-close": ("FCGI-3.5-5", "FCGI-4.1-5"),
    "get-values-id-1": ("FCGI-4.1-1",),
    "unknown-type-ignored": ("FCGI-4.2-1",),
    "unknown-role-close": ("FCGI-5.1-2",),
    "unknown-role-served": ("FCGI-5.1-2",),
    "reply-id-zero": ("FCGI-3.3-2",),
    "no-empty-stdout": ("FCGI-3.3-12", "FCGI-5.3-6"),
    "end-request-twice": ("FCGI-5.4-3", "FCGI-5.5-4"),
    "end-before-stdout": ("FCGI-5.5-4", "FCGI-5.1-1"),
    "abort-ignored": ("FCGI-5.4-1",),
    "padding-not-skipped": ("FCGI-3.3-3",),
    "late-record-close": ("FCGI-3.3-7", "FCGI-3.3-8"),
    "cant-mpx-close": ("FCGI-5.5-2",),
}
# One bug fails the cases of its requirement and few others (a case that meets it elsewhere tells it
# as also seen, or is BLOCKED by it): at most this many cases fail or warn.
MOST_FAILING = 4
# A 1 s base wait for the buggy runs (a bug often makes cases wait for what never comes);
# the correct server runs at the normal 5 s, as a user would run it.
BUG_BASE_WAIT = 1.0


def command(*args: str) -> str:
    if "--fd0" in args:
        # No address: the harness hands it a listening socket on fd 0 (spawn-fcgi style).
        return f"{PYTHON} {SERVER} {' '.join(a for a in args if a != '--fd0')}".rstrip()
    return f"{PYTHON} {SERVER} --port {{port}} {' '.join(args)}".rstrip()


def run_suite(args: Sequence[str], scale: float = 1.0) -> dict[str, Outcome]:
    target = CommandTarget(command(*args))
    target.start()
    outcomes: dict[str, Outcome] = {}
    try:
        for case in CASES:
            outcomes[case.id] = run_case(case, target, scale=scale)
            if not outcomes[case.id].target_alive or target.exit_status() is not None:
                target.restart()
    finally:
        target.stop()
    return outcomes


def report(outcomes: dict[str, Outcome], ids: Sequence[str]) -> str:
    return "\n".join(f"--- {case_id}\n{explain(outcomes[case_id])}" for case_id in ids)


@pytest.mark.parametrize(
    "args", [(), ("--mpx",), ("--fd0",)], ids=["one-request-per-connection", "multiplexing", "listening-socket-on-fd0"]
)
def test_correct_server_passes(args: tuple[str, ...]) -> None:
    outcomes = run_suite(args)
    wrong = [case_id for case_id, outcome in outcomes.items() if outcome.verdict not in CORRECT]
    assert not wrong, f"cases misjudge a correct server ({' '.join(args) or 'default'}):\n" + report(outcomes, wrong)


@pytest.mark.parametrize("bug", sorted(BUG_ITEMS))
def test_bug_is_caught_by_its_spec_item(bug: str) -> None:
    outcomes = run_suite(("--bug", bug), scale=scale_for(BUG_BASE_WAIT))
    caught = sorted(case_id for case_id, outcome in outcomes.items() if outcome.verdict in (Verdict.FAIL, Verdict.WARN))
    right = [case_id for case_id in caught if case_id.startswith(BUG_ITEMS[bug])]
    assert right, (
        f"--bug {bug} was not caught by a case for {', '.join(BUG_ITEMS[bug])} (caught by: {caught or 'none'})\n"
        + report(outcomes, [c.id for c in CASES if c.id.startswith(BUG_ITEMS[bug])])
    )
    errors = [case_id for case_id, outcome in outcomes.items() if outcome.verdict is Verdict.ERROR]
    assert not errors, report(outcomes, errors)
    assert len(caught) <= MOST_FAILING, f"--bug {bug} failed {len(caught)} cases:\n" + report(outcomes, caught)


def test_bug_list_is_the_table() -> None:
    import subprocess

    listing = subprocess.run([PYTHON, str(SERVER), "--bug", "list"], capture_output=True, text=True, check=True)
    assert {line.split()[0] for line in listing.stdout.splitlines()} == set(BUG_ITEMS)


def test_server_is_independent_of_the_harness() -> None:
    source = SERVER.read_text()
    assert "import harness" not in source and "from harness" not in source, "must not use the harness"

