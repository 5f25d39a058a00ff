"""How a case's run becomes an Outcome, for the server cases (harness/suite/case.py) and the client
cases (harness/clients/cases.py) alike: what the run returned or raised, weighed by the case's
level. What only one suite can raise (timeouts and closes of a FastCGI connection, a client
adapter that hung or died) each judges on its own.
"""

from __future__ import annotations

import traceback

from harness.verdicts import Level, Observed, Outcome, RecommendationMissed, Unsupported, Verdict, Violation, violation_verdict

# What a case raises to report its verdict (RecommendationMissed is a Violation).
VERDICT_EXCEPTIONS = (Violation, Unsupported, Observed)


def passed(level: Level, note: str | None) -> Outcome:
    """A run that raised nothing (or Observed): PASS, INFO for an unspecified behaviour."""
    return Outcome(Verdict.INFO if level is Level.UNSPECIFIED else Verdict.PASS, note=note or "")


def raised_verdict(level: Level, raised: Violation | Unsupported | Observed) -> Outcome:
    """The outcome of a run that raised one of VERDICT_EXCEPTIONS."""
    if isinstance(raised, RecommendationMissed):
        verdict = Verdict.INFO if level is Level.UNSPECIFIED else Verdict.WARN
        return Outcome(verdict, expected=raised.expected, actual=raised.actual)
    if isinstance(raised, Violation):
        return Outcome(violation_verdict(level), expected=raised.expected, actual=raised.actual)
    if isinstance(raised, Unsupported):
        return Outcome(Verdict.UNSUPPORTED, note=raised.reason)
    return passed(level, raised.note)


def harness_error() -> Outcome:
    """In an except block: a bug in the case or the harness, never the verdict of what is tested."""
    return Outcome(Verdict.ERROR, actual="harness error:\n" + traceback.format_exc(limit=8))
