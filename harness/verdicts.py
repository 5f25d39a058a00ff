"""Verdicts, requirement levels, the exceptions a case raises to report one, and the Outcome.

After Autobahn|Testsuite: a broken REQUIRED behaviour fails, a missed
RECOMMENDED one warns, an UNSPECIFIED one is recorded as info. Which verdict a case gets
is decided in one place, harness/suite/judge.py; how it shows in pytest and the report,
in harness/reports/pytest_items.py.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    INFO = "info"
    UNSUPPORTED = "unsupported"
    ERROR = "error"
    # Neither pass nor fail: a deviation of another requirement kept the case from exercising its own.
    BLOCKED = "blocked"


class Depth(str, enum.Enum):
    """How deep a case looked: what its verdict rests on."""

    PROBE = "probe"  # content checked by the probe app's report of what it received
    COMPARISON = "comparison"  # content compared with the answer to the same request sent plainly
    PROTOCOL = "protocol"  # framing and protocol only: the content was not looked at


class Level(str, enum.Enum):
    REQUIRED = "required"
    RECOMMENDED = "recommended"
    UNSPECIFIED = "unspecified"


class Violation(Exception):
    """The target did not do what the requirement says.

    expected: the acceptable observations, one per line of the report;
    actual: what was observed instead (or 'Timeout').
    """

    def __init__(self, expected: list[str] | str, actual: str) -> None:
        self.expected = [expected] if isinstance(expected, str) else list(expected)
        self.actual = actual
        super().__init__(f"expected {' | '.join(self.expected)}; actual {actual}")


class RecommendationMissed(Violation):
    """A required behaviour was met, but not the way the spec recommends (e.g. RST instead of FIN).

    Becomes WARN whatever the case's level (INFO for UNSPECIFIED cases).
    """


class Unsupported(Exception):
    """The target does not offer what the case needs (e.g. no probe app)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Observed(Exception):
    """For UNSPECIFIED cases: a note of what the target did (becomes INFO)."""

    def __init__(self, note: str) -> None:
        self.note = note
        super().__init__(note)


class Blocked(Exception):
    """A deviation of another requirement (the case that owns it: `by`) kept the case from
    exercising its own; the owning case fails, this one is BLOCKED."""

    def __init__(self, by: str, reason: str) -> None:
        self.by = by
        self.reason = reason
        super().__init__(f"blocked by {by}: {reason}")


@dataclass(frozen=True)
class Deviation:
    """A deviation a case saw of a requirement other than its own: `requirement` is the id of the
    case that owns it (and fails for it); recorded under the case as "also seen", not its verdict."""

    requirement: str
    what: str
    evidence: str = ""

    def describe(self) -> str:
        return f"{self.requirement} {self.what}" + (f" ({self.evidence})" if self.evidence else "")


class HarnessError(Exception):
    """The harness could not run the case (not the target's fault)."""


@dataclass
class Outcome:
    """A case's verdict and its evidence (made by harness/suite/judge.py)."""

    verdict: Verdict
    expected: list[str] = field(default_factory=list)
    actual: str = ""
    note: str = ""
    duration: float = 0.0
    trace: str = ""
    target_log: str = ""
    # False when the liveness probe after the case found the target dead or hung.
    target_alive: bool = True
    # The reason from --exclude-file when the case is a known deviation of this target.
    excluded: str | None = None
    # How deep the case looked (set by run_case from the case's context).
    depth: Depth = Depth.PROTOCOL
    # The spawned target exited with status 0 while the case ran (a request limit, an idle exit): what
    # the case saw is that exit, not one of the known bugs its fault modes replay.
    exited_cleanly: bool = False
    # Deviations of other requirements seen on the way; they do not change this verdict.
    also_seen: list[Deviation] = field(default_factory=list)
    # BLOCKED: the id of the requirement whose deviation kept the case from its own.
    blocked_by: str | None = None

    @property
    def excused(self) -> bool:
        """Excluded and not passing: shown with its reason, it does not fail the run."""
        return self.excluded is not None and self.verdict in (Verdict.FAIL, Verdict.WARN, Verdict.ERROR)

    @property
    def excluded_but_passed(self) -> bool:
        """Excluded, yet it no longer deviates: the exclude list can lose this line (not when it was
        blocked: its own requirement was not exercised)."""
        return self.excluded is not None and not self.excused and self.verdict is not Verdict.BLOCKED


class AdapterTimeout(Exception):
    """Client suite: the adapter wrote no result line in time: the client hung."""


class AdapterDied(Exception):
    """Client suite: the adapter process exited while results were still due."""
