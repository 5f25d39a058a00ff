"""The one judge: everything that happened in a case, to its verdict (an Outcome).

Both suites run a case, collect what happened as Facts and call judge(); nothing else decides
or rewrites a verdict. The server suite's run_case (harness/suite/case.py) reports what the
case's run function did, what the liveness probe found afterwards, the restart notice and the
--exclude-file entry; the client suite's run_client_case (harness/clients/cases.py) what its
run did and how its adapter processes and scenario servers ended; the pytest plugins a case
that could not run at all. How the verdict shows in pytest and in the report is written down
in harness/reports/pytest_items.py.

The rules, in the order judge() applies them:

1. What the case's run function did, weighed by the case's level:
     returned a note or None       PASS (INFO for an UNSPECIFIED case), note kept
     raised Observed(note)         the same as returning the note
     raised Violation              FAIL for REQUIRED, WARN for RECOMMENDED, INFO for UNSPECIFIED,
                                   with its expected and actual
     raised RecommendationMissed   WARN whatever the level (INFO for UNSPECIFIED)
     raised Unsupported(reason)    UNSUPPORTED, note = reason
     raised Blocked(by, reason)    BLOCKED by that requirement: another requirement's deviation kept
                                   the case from exercising its own (that requirement's case fails)
     raised a Violation, FcgiTimeout or ConnectionClosed after a deviation of one of the case's
     prerequisites (Facts.also_seen, Facts.prerequisites), unless the traces show the case's own
     requirement broken too (Facts.own_deviation)
                                   BLOCKED by that prerequisite: what the case met was its effect
     raised FcgiTimeout            as a Violation: expected = what was awaited, actual "Timeout"
     raised ConnectionClosed       as a Violation: the exchange should have completed
     raised AdapterTimeout         FAIL whatever the level: the client hung (client suite)
     raised AdapterDied            FAIL; ERROR when no adapter process ever answered and each
                                   exited with an error status: unusable, not judged (client suite)
     raised TargetError (also TargetUnreachable) or HarnessError
                                   ERROR, actual = its message
     raised anything else          ERROR "harness error:" and the traceback: a bug in the case or
                                   the harness, never the target's verdict
     could not run at all          ERROR, actual = why (the target could not be started, ...)
2. The liveness probe after a server case (not run when the case never reached the target):
     alive                         an ERROR for a connection refused mid-case becomes FAIL: the
                                   target refused it, and answers again
     dead, after a protocol_error case that was not UNSUPPORTED, and the target exited with a
     nonzero status (or, not spawned by the harness, stopped accepting connections)
                                   WARN: spec §7 lets an application "exit with nonzero status"
                                   after a protocol error; what a FAIL or ERROR saw goes to the note
     dead otherwise                FAIL "the target still answers a simple request after the
                                   case"; a FAIL or ERROR keeps its texts and gets the death noted
                                   (a refused connection's ERROR becomes FAIL)
   A spawned target that exited while the case ran (other than the exit spec §7 allows, above):
   a FAIL, WARN or ERROR says so first, with how many of the case's requests were answered; after
   an exit with status 0 no known bug is offered as a look-alike (Outcome.exited_cleanly).
3. The client suite's processes: a scenario server's script error makes a PASS, INFO or WARN an
   ERROR (the harness's problem); a client adapter that crashed (a signal other than SIGKILL) or
   printed a sanitizer report FAILs. The gateway suite's: an application script's error is the
   harness's as well; a gateway that exited by itself while the case ran FAILs.
4. A notice (the target was restarted before the case) is added to the note, and the
   --exclude-file reason is attached (Outcome.excused: an excluded FAIL, WARN or ERROR).
5. Deviations of other requirements the case saw (also_seen) are carried on the Outcome; they
   never change its verdict (each fails the case that owns the requirement). A BLOCKED case
   carries only the deviation that blocked it: the rest of what its derailed exchange showed is
   that deviation's effect.
"""

from __future__ import annotations

import signal
import traceback
from dataclasses import dataclass

from harness.targets.base import TargetError
from harness.verdicts import (
    AdapterDied,
    AdapterTimeout,
    Blocked,
    Deviation,
    HarnessError,
    Level,
    Observed,
    Outcome,
    RecommendationMissed,
    Unsupported,
    Verdict,
    Violation,
)
from harness.wire.connection import ConnectionClosed, FcgiTimeout

# /bin/sh reports a child killed by signal N as exit status 128+N (only when it stayed between:
# Liveness.through_shell); above 128 + the highest signal number a status is an exit status.
SHELL_SIGNAL_BASE = 128
SIGNAL_MAX = int(signal.SIGRTMAX)
# What a connection refused by the target says (TargetUnreachable's message, also where another
# error passes that message on).
REFUSED = "cannot connect"
TRACEBACK_FRAMES = 8


@dataclass(frozen=True)
class Liveness:
    """What the liveness probe after a server case found (harness/targets/liveness.py)."""

    problem: str | None = None  # None: the target answered a plain request; else why not
    spawned: bool = False  # the harness started the target, so it can know its exit status
    exit_status: int | None = None  # once a spawned target exited: its status (negative: signal)
    through_shell: bool = False  # exit_status is that of a /bin/sh that stayed between: 128+N for a child killed by signal N

    @property
    def alive(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class Adapters:
    """The client adapter processes when the case raised, before they were stopped."""

    answered: bool  # some process answered a request line
    exit_statuses: tuple[int | None, ...]  # None: still running
    log_tail: str  # the last line of their stderr


@dataclass(frozen=True)
class AdapterEnd:
    """How one client adapter process ended, once the case stopped it."""

    exit_status: int | None  # negative: killed by that signal
    exit_text: str  # "exited with status 1", "killed by SIGSEGV", ...
    sanitizer_report: bool  # its stderr holds a sanitizer report


@dataclass(frozen=True)
class Facts:
    """Everything that happened in one case that its verdict depends on."""

    level: Level
    # What the run function did: returned (a note or None), or raised.
    returned: str | None = None
    raised: BaseException | None = None
    # The case could not run at all (the target could not be started, ...): why.
    not_run: str | None = None
    # Server suite: the case sends a protocol error (Case.protocol_error), the liveness probe
    # after it (None: not probed).
    protocol_error: bool = False
    liveness: Liveness | None = None
    # Client suite: the adapters when the run raised, how each ended, the scenario servers' errors.
    adapters: Adapters | None = None
    adapter_ends: tuple[AdapterEnd, ...] = ()
    scenario_errors: tuple[str, ...] = ()
    # Told before the case ran (e.g. the target was restarted), and the --exclude-file reason.
    notice: str = ""
    excluded: str | None = None
    # Server suite: deviations of other requirements the case saw, and the requirements the case
    # relies on (its own prerequisites and those every response relies on).
    also_seen: tuple[Deviation, ...] = ()
    prerequisites: tuple[str, ...] = ()
    # The traces show the case's own requirement broken too: then it fails, whatever else deviated.
    own_deviation: Deviation | None = None
    # Server suite: a spawned target that exited while the case ran.
    exit_during_case: "ExitDuringCase | None" = None
    # Gateway suite: the gateway's exit status when it exited by itself during the case (negative: a signal).
    gateway_exit: int | None = None


@dataclass(frozen=True)
class ExitDuringCase:
    """A spawned target that exited while the case ran, and how far the case's requests had got."""

    exit_status: int  # negative: killed by that signal
    exit_text: str  # "exited with status 0", "killed by SIGSEGV", ...
    begun: int  # BEGIN_REQUESTs the case sent
    answered: int  # END_REQUESTs it received

    def describe(self) -> str:
        text = (f"the process {self.exit_text} during the case: {self.answered} of the {self.begun} requests the case "
                f"sent answered")
        if self.begun > self.answered:
            text += f", request {self.answered + 1} not"
        if self.exit_status == 0:
            text += " (a limit on requests, such as php-cgi's PHP_FCGI_MAX_REQUESTS?)"
        return text


def judge(facts: Facts) -> Outcome:
    """The verdict of one case, from everything that happened in it (the rules above)."""
    if facts.not_run is not None:
        return Outcome(Verdict.ERROR, actual=facts.not_run)
    outcome = _what_the_run_showed(facts)
    exit_allowed = facts.liveness is not None and _weigh_liveness(outcome, facts.liveness, facts.protocol_error)
    if facts.exit_during_case is not None and not exit_allowed:
        _weigh_exit_during_case(outcome, facts.exit_during_case)
    _weigh_client_processes(outcome, facts)
    _weigh_gateway_exit(outcome, facts.gateway_exit)
    if facts.notice:
        _add_note(outcome, facts.notice)
    outcome.excluded = facts.excluded
    outcome.also_seen = list(facts.also_seen)
    if outcome.verdict is Verdict.BLOCKED and any(d.requirement == outcome.blocked_by for d in facts.also_seen):
        # What else a derailed exchange seemed to show is that deviation's effect, not evidence.
        outcome.also_seen = [d for d in facts.also_seen if d.requirement == outcome.blocked_by]
    return outcome


def violation_verdict(level: Level) -> Verdict:
    """What a Violation of a requirement at this level is worth."""
    if level is Level.REQUIRED:
        return Verdict.FAIL
    if level is Level.RECOMMENDED:
        return Verdict.WARN
    return Verdict.INFO


def _passed(level: Level, note: str | None) -> Outcome:
    return Outcome(Verdict.INFO if level is Level.UNSPECIFIED else Verdict.PASS, note=note or "")


def _met(raised: BaseException) -> str:
    """What a blocked case ran into, in a few words."""
    if isinstance(raised, FcgiTimeout):
        return f"no answer came ({getattr(raised, 'awaited', '') or raised})"
    if isinstance(raised, ConnectionClosed):
        return "the connection was closed"
    assert isinstance(raised, Violation)
    return f"{raised.actual.splitlines()[0] if raised.actual else 'nothing'} where {raised.expected[0]} was awaited"


def _blocked(by: str, reason: str) -> Outcome:
    return Outcome(Verdict.BLOCKED, actual=reason, note=f"blocked by {by}: {reason}", blocked_by=by)


def _what_the_run_showed(facts: Facts) -> Outcome:
    """Rule 1: the run's own result."""
    level, raised = facts.level, facts.raised
    if raised is None:
        return _passed(level, facts.returned)
    # Before the run's own result: what it met was the effect of a prerequisite's deviation.
    if isinstance(raised, (Violation, FcgiTimeout, ConnectionClosed)) and facts.own_deviation is None:
        prerequisite = next((d for d in facts.also_seen if d.requirement in facts.prerequisites), None)
        if prerequisite is not None:
            return _blocked(prerequisite.requirement, f"{prerequisite.what}; then {_met(raised)}")
    if isinstance(raised, RecommendationMissed):
        verdict = Verdict.INFO if level is Level.UNSPECIFIED else Verdict.WARN
        return Outcome(verdict, expected=raised.expected, actual=raised.actual)
    if isinstance(raised, Violation):
        return Outcome(violation_verdict(level), expected=raised.expected, actual=raised.actual)
    if isinstance(raised, Unsupported):
        return Outcome(Verdict.UNSUPPORTED, note=raised.reason)
    if isinstance(raised, Blocked):
        return _blocked(raised.by, raised.reason)
    if isinstance(raised, Observed):
        return _passed(level, raised.note)
    if isinstance(raised, FcgiTimeout):
        awaited = getattr(raised, "awaited", "") or str(raised)
        return Outcome(violation_verdict(level), expected=[awaited], actual="Timeout")
    if isinstance(raised, ConnectionClosed):
        return Outcome(
            violation_verdict(level),
            expected=["the exchange to complete on an open connection"],
            actual=f"connection closed by the target ({'EOF' if raised.how == 'eof' else 'RST'})",
        )
    if isinstance(raised, AdapterTimeout):
        return Outcome(Verdict.FAIL, expected=["a result line within the client's own --timeout"],
                       actual=f"the client hung: {raised}")
    if isinstance(raised, AdapterDied):
        adapters = facts.adapters
        if adapters is not None and not adapters.answered and all((s or 0) > 0 for s in adapters.exit_statuses):
            # It never answered and exited with an error: a usage problem, not a verdict.
            return Outcome(Verdict.ERROR, actual=f"the client adapter is unusable: {raised} {adapters.log_tail}".rstrip())
        return Outcome(Verdict.FAIL, expected=["the client answers every request line"], actual=str(raised))
    if isinstance(raised, (TargetError, HarnessError)):
        return Outcome(Verdict.ERROR, actual=str(raised))
    frames = traceback.format_exception(type(raised), raised, raised.__traceback__, limit=TRACEBACK_FRAMES)
    return Outcome(Verdict.ERROR, actual="harness error:\n" + "".join(frames))


def _weigh_liveness(outcome: Outcome, liveness: Liveness, protocol_error: bool) -> bool:
    """Rule 2: a target that no longer answers after a case fails it, whatever the case said,
    except that after a protocol error an exit with nonzero status is only warned (then True)."""
    refused = outcome.verdict is Verdict.ERROR and REFUSED in outcome.actual
    if liveness.alive:
        if refused:
            outcome.verdict = Verdict.FAIL  # the target answers again: the mid-case refusal was its doing
        return False
    outcome.target_alive = False
    dead = f"target did not answer after the case: {liveness.problem}"
    if protocol_error and outcome.verdict is not Verdict.UNSUPPORTED:
        exited = _allowed_exit(liveness)
        if exited:
            if outcome.verdict in (Verdict.FAIL, Verdict.ERROR):
                # What the case saw was most likely the exit itself (a closed connection).
                _add_note(outcome, f"the case saw: {outcome.actual}")
            outcome.verdict = Verdict.WARN
            outcome.expected = [
                "the application goes on serving after a protocol error (spec §7 also allows an exit with "
                "nonzero status; then one bad peer takes the service down for every client)"
            ]
            outcome.actual = exited
            return True
    if outcome.verdict in (Verdict.FAIL, Verdict.ERROR):
        _add_note(outcome, dead)
        if refused:
            outcome.verdict = Verdict.FAIL
        return False
    outcome.verdict = Verdict.FAIL
    outcome.expected = ["the target still answers a simple request after the case"]
    outcome.actual = dead
    return False
    outcome.note = ""


def _weigh_exit_during_case(outcome: Outcome, exit: ExitDuringCase) -> None:
    """Rule 2b: what a case saw of a target that exited while it ran is told as that exit, at its request."""
    if outcome.verdict not in (Verdict.FAIL, Verdict.WARN, Verdict.ERROR):
        return
    outcome.actual = exit.describe() + (f"; the case saw: {outcome.actual}" if outcome.actual else "")
    # A clean exit is the process's own decision, not one of the bugs the case's fault modes replay.
    outcome.exited_cleanly = exit.exit_status == 0


def _allowed_exit(liveness: Liveness) -> str | None:
    """How the target went away, if that is the nonzero exit spec §7 allows; None for a crash
    (killed by a signal), an exit with status 0, or a target that still accepts connections but
    no longer answers."""
    status = liveness.exit_status
    if status is not None and liveness.through_shell and SHELL_SIGNAL_BASE < status <= SHELL_SIGNAL_BASE + SIGNAL_MAX:
        status = -(status - SHELL_SIGNAL_BASE)
    if status is not None:
        return f"the application exited with status {status}" if status > 0 else None
    if liveness.spawned or REFUSED not in (liveness.problem or ""):
        return None
    return f"the target stopped accepting connections (exit status unknown): {liveness.problem}"


def _weigh_gateway_exit(outcome: Outcome, status: int | None) -> None:
    """Rule 3b: a gateway that exited by itself while the case ran FAILs (a web server stays up)."""
    if status is None:
        return
    how = f"was killed by {signal.Signals(-status).name}" if status < 0 and -status in signal.valid_signals() \
        else f"exited with status {status}"
    saw = f"; the case saw: {outcome.actual}" if outcome.verdict in (Verdict.FAIL, Verdict.WARN) and outcome.actual else ""
    outcome.verdict = Verdict.FAIL
    outcome.expected = ["the gateway keeps running through the case"]
    outcome.actual = f"the gateway {how} during the case{saw}"


def _weigh_client_processes(outcome: Outcome, facts: Facts) -> None:
    """Rule 3: script errors are the harness's; crashes and sanitizer reports are the client's."""
    if facts.scenario_errors and outcome.verdict in (Verdict.PASS, Verdict.INFO, Verdict.WARN):
        outcome.verdict = Verdict.ERROR
        outcome.actual = "scenario server error: " + facts.scenario_errors[0]
    for end in facts.adapter_ends:
        crashed = end.exit_status is not None and end.exit_status < 0 and end.exit_status != -9
        if (end.sanitizer_report or crashed) and outcome.verdict is not Verdict.FAIL:
            outcome.verdict = Verdict.FAIL
            outcome.expected = ["the client exits cleanly, with no sanitizer report"]
            outcome.actual = f"client {end.exit_text}" + (": sanitizer report on stderr" if end.sanitizer_report else "")


def _add_note(outcome: Outcome, text: str) -> None:
    outcome.note = (outcome.note + "; " if outcome.note else "") + text
