"""FastCGI seeds from the regression cases written as code (cases/regressions/*.py other than
transcript_regressions.py, which loads the regressions that are transcripts: those give their seeds
from the transcripts themselves, seeds_from_transcripts.py). A regression is code when its wire
pattern needs timing or a live answer, so no transcript holds it.

Each such case runs, as the suite runs it, against the reference responder; the traces of the
connections it opened (harness/wire/connection.py keeps every record sent and received) become
transcript connections, and harness-side bytes become seeds as a capture's do
(seeds_from_transcripts.py). The verdict does not matter here, only what went over the wire.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

from harness.suite.case import Case, cases_in_module, import_case_module, run_case
from harness.wire.connection import FcgiConnection
from harness.wire.codec import Record
from harness.targets.base import ReferenceTarget
from harness.capture.transcript import APP_TO_WS, WS_TO_APP, Connection, RawItem, RecordItem
from seed_layout import Seed, SeedSourceError
from seeds_from_transcripts import connection_seeds

_DIRECTIONS = {">": WS_TO_APP, "<": APP_TO_WS}


class _RecordingTarget(ReferenceTarget):
    """The reference responder, keeping every connection a case opens (the trace lives on it)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, ["--quiet"])
        self.opened: list[FcgiConnection] = []

    def connect(self, *args: Any, **kwargs: Any) -> FcgiConnection:
        conn = super().connect(*args, **kwargs)
        self.opened.append(conn)
        return conn


def code_cases(regressions_dir: Path) -> list[Case]:
    """The FastCGI regression cases that are code, not a transcript replay."""
    found: list[Case] = []
    for path in sorted(regressions_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = import_case_module(path)
        # TRANSCRIPTS: the loader of the transcript regressions (their seeds come from the files).
        if not hasattr(module, "TRANSCRIPTS") and not hasattr(module, "TRANSCRIPT"):
            found += cases_in_module(module)  # client regressions hold a ClientCase: not a Case, left out
    return found


def trace_connection(conn: FcgiConnection, number: int) -> Connection:
    """A traced connection as a transcript connection (the harness side is the web server)."""
    connection = Connection(number)
    for entry in conn.trace:
        direction = _DIRECTIONS.get(entry.direction)
        if direction is None:  # '!': a harness note
            continue
        if isinstance(entry.item, Record):
            connection.items.append(RecordItem(direction, entry.item))
        elif isinstance(entry.item, bytes):
            connection.items.append(RawItem(direction, entry.item))
    return connection


def regression_case_seeds(root: Path = ROOT, source: str = "regression cases") -> list[Seed]:
    cases = code_cases(root / "cases" / "regressions")
    if not cases:
        raise SeedSourceError(f"{root / 'cases' / 'regressions'}: no regression case written as code")
    target = _RecordingTarget(root)
    target.start()
    seeds: list[Seed] = []
    try:
        for case in cases:
            target.opened.clear()
            run_case(case, target, check_liveness=False)
            found = [seed for number, conn in enumerate(target.opened, 1)
                     for seed in connection_seeds(trace_connection(conn, number), source)]
            if not any(seed.target == "conn" for seed in found):
                raise SeedSourceError(f"{case.id}: sent nothing to the reference responder ({target.log_tail()})")
            seeds += found
    finally:
        target.stop()
    return seeds
