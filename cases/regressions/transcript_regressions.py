"""The regressions that are transcripts: one case per cases/regressions/transcripts/NAME.transcript,
REG-NAME, made from the file (a new transcript is a new case, no code).

The transcript's header holds the case's fields (id, title, level, requirement, catches) and where the
bug comes from; its run replays the web server's side against the target and judges the answers by
meaning (harness/replay/regressions.py, which also says which regressions stay code and why; the
format: docs/transcript-format.md).
"""

from __future__ import annotations

from pathlib import Path

from harness.replay.regressions import case_globals

TRANSCRIPTS = Path(__file__).resolve().parent / "transcripts"

# Module-level names, so that the suite's collector (cases_in_module) finds each Case.
globals().update(case_globals(TRANSCRIPTS))
