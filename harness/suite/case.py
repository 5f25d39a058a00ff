"""Cases: what one conformance check is, the context it runs in, and how it runs.

run_case runs a case and the liveness probe after it and hands what happened to the judge
(harness/suite/judge.py), which alone decides the verdict.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from harness.wire.capabilities import DISCOVERY_TIMEOUT, Capabilities, discover
from harness.wire.codec import RecordType
from harness.wire.connection import ConnectionClosed, FcgiConnection, FcgiTimeout, Response, request
from harness.suite.judge import ExitDuringCase, Facts, Liveness, judge
from harness.targets.liveness import liveness_probe, measure_round_trip, settle_probe_app
from harness.wire.probe_app import PROBE_SCRIPT_FILENAME, params_match, probe_params, probe_reports_parsed
from harness.wire.codec import Role
from harness.suite import comparison
from harness.suite.case_requests import post_params
from harness.targets.base import Target, TargetUnreachable
from harness.suite.prerequisite_checks import CHECKS, check_prerequisites, confirmed
from harness.suite.observations import COMMON_PREREQUISITES, deviations_in_traces, kept_connection_closed, note, observing, own_deviation_in_traces, root_deviations
from harness.verdicts import Depth, Deviation, HarnessError, Level, Outcome, RecommendationMissed, Unsupported, Verdict, Violation

# Titles of the FastCGI 1.0 specification's sections, for report headings.
SECTION_TITLES = {
    "2": "Initial Process State",
    "2.2": "File Descriptors",
    "3.2": "Accepting Transport Connections",
    "3.3": "Records",
    "3.4": "Name-Value Pairs",
    "3.5": "Closing Transport Connections",
    "4.1": "FCGI_GET_VALUES, FCGI_GET_VALUES_RESULT",
    "4.2": "FCGI_UNKNOWN_TYPE",
    "5.1": "FCGI_BEGIN_REQUEST",
    "5.2": "Name-Value Pair Stream: FCGI_PARAMS",
    "5.3": "Byte Streams: FCGI_STDIN, FCGI_DATA, FCGI_STDOUT, FCGI_STDERR",
    "5.4": "FCGI_ABORT_REQUEST",
    "5.5": "FCGI_END_REQUEST",
    "6.1": "Role Protocols",
    "6.2": "Responder",
    "6.3": "Authorizer",
    "6.4": "Filter",
    "7": "Errors",
    "A": "Table of Properties",
    # Not spec sections: captured traffic replayed (cases/replay/), real bugs (cases/regressions/).
    "REPLAY": "Replay of captured web-server traffic",
    "REG": "Regressions: real-world bugs",
    "ROBUST": "Robustness: resource leaks",
}

_CASE_ID = re.compile(r"^FCGI-(?P<section>[0-9A-Z]+(?:\.[0-9]+)*)-(?P<number>[0-9]+)$")
# REPLAY-nginx-sequential-keepalive, REG-php-72185-empty-stdout: the prefix is the section, then a name.
_NAMED_ID = re.compile(r"^(?P<section>REPLAY|REG|ROBUST)-(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)$")
_NAMED_ORDER = {"REPLAY": 2, "REG": 3, "ROBUST": 4}  # after the spec sections
LIVENESS_TIMEOUT = 5.0
# How long a target that stopped answering gets to show its exit status.
EXIT_GRACE = 1.0
# The base wait every case timeout is written against (--fcgi-timeout's default).
BASE_WAIT = 5.0
# How long a target must stay silent before "nothing more comes" is concluded (unscaled).
QUIET_WAIT = 0.25
# How long a case glances at a connection for the target's close before its next request (unscaled).
CLOSE_GLANCE = 0.05
# Every wait is its base wait plus this many of the target's measured round trips: a target that takes
# 45 ms per request (Nagle against delayed ACK) gets 0.18 s more, a loopback reference well under 1 ms.
WAIT_ROUND_TRIPS = 4


def scale_for(base_wait: float) -> float:
    """The run_case scale for a base wait (e.g. 1.0 s for quick self-tests against fast targets)."""
    return base_wait / BASE_WAIT


@dataclass(frozen=True)
class Case:
    id: str
    section: str
    title: str
    requirement: str
    level: Level
    run: Callable[["CaseContext"], "str | None"]
    timeout: float = 10.0
    needs_probe_app: bool = False
    # Fault modes of the reference responder (each replays a known real bug, see
    # `fcgispec-responder --fault list`) that this case must catch: the project's
    # tests prove it, and a failure report names them as look-alike known bugs.
    catches: tuple[str, ...] = ()
    # Arguments the reference responder needs for this case to apply (e.g. --no-mpx
    # for CANT_MPX_CONN); the project's tests run the case against that reference.
    reference_args: tuple[str, ...] = ()
    # The case sends what the spec calls a protocol error. Spec §7: "Depending upon
    # the severity of the error, the application may either continue or exit with
    # nonzero status": a target that exits (nonzero) after it is warned, not failed;
    # one that crashes (a signal) or stops answering without exiting fails.
    protocol_error: bool = False
    # Requirements (ids of the cases that own them) this case relies on to exercise its own,
    # e.g. ("FCGI-3.5-2",): the connection stays open with KEEP_CONN. A deviation of one of them
    # makes the case BLOCKED (harness/suite/judge.py) where the case cannot work around it.
    prerequisites: tuple[str, ...] = ()
    # Requirements whose sentence this case's own requirement states too (seen from another
    # section): their deviation is this case's own, so they never block it, not even as common ones.
    same_requirement_as: tuple[str, ...] = ()

    @property
    def sort_key(self) -> tuple[tuple[tuple[int, int | str], ...], int]:
        return case_id_sort_key(self.id)


def case_id_sort_key(case_id: str) -> tuple[tuple[tuple[int, int | str], ...], int]:
    """Spec order: numbered sections numerically, lettered ones (Appendix A) after them."""
    match = _CASE_ID.match(case_id)
    if not match:
        named = _NAMED_ID.match(case_id)
        if named:
            return (((_NAMED_ORDER[named["section"]], named["name"]),), 0)
        return (((9, case_id),), 0)
    # (0, n) before (1, "A"): ints and strs never meet in a comparison.
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in match["section"].split("."))
    return (parts, int(match["number"]))


def case(
    id: str,
    *,
    title: str,
    requirement: str,
    level: Level,
    timeout: float = 10.0,
    needs_probe_app: bool = False,
    catches: Sequence[str] = (),
    reference_args: Sequence[str] = (),
    protocol_error: bool = False,
    prerequisites: Sequence[str] = (),
    same_requirement_as: Sequence[str] = (),
) -> Callable[[Callable[["CaseContext"], "str | None"]], Case]:
    """Decorator turning `def run(ctx) -> None | str` into a Case."""
    match = _CASE_ID.match(id) or _NAMED_ID.match(id)
    if not match:
        raise ValueError(f"case id {id!r} is not of the form FCGI-<section>-<n>, REPLAY-<name> or REG-<name>")

    def wrap(run: Callable[["CaseContext"], "str | None"]) -> Case:
        return Case(
            id=id,
            section=match["section"],
            title=title,
            requirement=requirement,
            level=level,
            run=run,
            timeout=timeout,
            needs_probe_app=needs_probe_app,
            catches=tuple(catches),
            reference_args=tuple(reference_args),
            protocol_error=protocol_error,
            prerequisites=tuple(prerequisites),
            same_requirement_as=tuple(same_requirement_as),
        )

    return wrap


class CaseContext:
    """What a running case sees: the target, traced connections, and its deadline."""

    def __init__(self, target: Target, case: Case, *, scale: float = 1.0) -> None:
        self.target = target
        self.case = case
        self.scale = scale
        self.started = time.monotonic()
        self.deadline = self.started + case.timeout * scale
        self.connections: list[FcgiConnection] = []
        # Targets started by spawn_variant, stopped when the case ends.
        self.variants: list[Target] = []
        # How deep the case looked: the probe-report and comparison helpers raise it themselves.
        self.depth = Depth.PROTOCOL
        # Told in the outcome's note whatever the case returns (e.g. a comparison fallback).
        self.notes: list[str] = []
        # Deviations of other requirements seen on the way (harness/suite/observations.py).
        self.also_seen: list[Deviation] = []
        self._targets: dict[int, Target | None] = {}  # id of a connection -> the variant it goes to (None: the target)

    def seconds(self, base: float) -> float:
        """A wait of `base` seconds, scaled by --fcgi-timeout, plus WAIT_ROUND_TRIPS of the target's round trip."""
        return base * self.scale + WAIT_ROUND_TRIPS * self.target.round_trip

    @property
    def answer_wait(self) -> float:
        """How long an answer may take: the base wait, scaled by --fcgi-timeout."""
        return self.seconds(BASE_WAIT)

    @property
    def quiet_wait(self) -> float:
        """How long the target must stay silent before a case concludes nothing more comes."""
        return self.seconds(QUIET_WAIT)

    def time_left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    def connect(self, label: str | None = None, *, target: Target | None = None) -> FcgiConnection:
        """A traced connection to the target (or to a variant from spawn_variant)."""
        name = label or f"connection {len(self.connections) + 1}"
        conn = (target or self.target).connect(
            timeout=min(self.answer_wait, max(self.time_left(), 0.1)),
            label=name,
            clock_origin=self.started,
            deadline=lambda: self.deadline,
        )
        self.connections.append(conn)
        self._targets[id(conn)] = target
        return conn

    def glance_for_close(self, conn: FcgiConnection) -> None:
        """Before the next request on a KEEP_CONN connection: a close the target made after the last one
        shows in the trace before that request (FCGI-3.5-2's deviation, not one the next request caused)."""
        conn.wait_closed(self.seconds(CLOSE_GLANCE))

    def connection_for_next_request(self, conn: FcgiConnection) -> FcgiConnection:
        """conn, or a new connection when the target closed conn after a completed request sent with
        FCGI_KEEP_CONN: for a case whose own requirement is not about the connection, the work-around
        of FCGI-3.5-2's deviation (recorded as also seen; that case fails for it)."""
        if conn.wait_closed(self.seconds(CLOSE_GLANCE)) == "open":
            return conn
        closed = kept_connection_closed(conn.label, conn.trace)
        if closed is None or self.case.id == closed.requirement:
            return conn  # closed for another reason: the case meets the close and judges it
        note(closed.requirement, closed.what, closed.evidence)
        conn.note("closed by the target after a KEEP_CONN request: the next request goes on a new connection")
        return self.connect(f"{conn.label}, again", target=self._targets.get(id(conn)))

    def request(
        self,
        conn: FcgiConnection,
        request_id: int,
        params: Iterable[tuple[bytes | str, bytes | str]],
        stdin: bytes = b"",
        *,
        role: int = 1,
        keep_conn: bool = True,
        timeout: float | None = None,
    ) -> Response:
        wait = self.answer_wait if timeout is None else timeout
        return request(conn, request_id, params, stdin, role=role, keep_conn=keep_conn, timeout=wait)

    @property
    def capabilities(self) -> Capabilities:
        """What GET_VALUES says about the target; asked once per target, then cached on it."""
        cached = self.target.discovered_capabilities
        if isinstance(cached, Capabilities):
            return cached
        found = discover(self.target, self.seconds(DISCOVERY_TIMEOUT))
        if found.answered or not self.target.spawned or self.target.exit_status() is None:
            # A dead spawned target's silence says nothing: ask again after its restart.
            self.target.discovered_capabilities = found
        return found

    def spawn_variant(
        self,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        fd0: bool = False,
    ) -> Target:
        """A new, started instance of the target under test with changes, stopped at case end.

        extra_args are appended to its command line (reference targets only), env is
        added to its environment, fd0 hands it a listening socket on fd 0 instead of
        an address. Raises Unsupported when the target cannot be varied (tcp:/unix:,
        or what a cmd: target cannot do). Connect with ctx.connect(target=variant).
        """
        variant = self.target.variant(extra_args, env, fd0)
        self.variants.append(variant)  # registered first: a half-started one is stopped too
        variant.start()
        if variant.has_probe_app is None:
            variant.has_probe_app = self.target.has_probe_app
            variant.probe_app_reason = self.target.probe_app_reason
        return variant

    @property
    def has_probe_app(self) -> bool:
        return bool(self.target.has_probe_app)

    def checked_by_probe(self) -> None:
        """The case judged content by the probe app's report (run_case also marks this by itself)."""
        self.depth = Depth.PROBE

    def checked_by_comparison(self) -> None:
        """The case judged content by comparing with the plain request's answer (a probe check stays deeper)."""
        if self.depth is not Depth.PROBE:
            self.depth = Depth.COMPARISON

    def note_once(self, text: str) -> None:
        """A note for the outcome, told once however often the case says it."""
        if text not in self.notes:
            self.notes.append(text)

    def expect_same_answer(
        self,
        response: Response,
        variation: str,
        params: Iterable[tuple[bytes | str, bytes | str]] | None = None,
        stdin: bytes = b"",
        *,
        role: int = Role.RESPONDER,
    ) -> bool:
        """Without a probe app: the answer to a request sent with a variation (padding, split records, ...)
        must be the answer to the same params and stdin sent plainly (harness/suite/comparison.py).

        params default to the canonical GET's (ctx.probe_params()). Raises Violation naming the
        variation on a difference. Returns whether content was compared: False with a probe app
        (its report is checked instead, and deeper) and for a target whose plain answers differ
        (then the case's note says it fell back to protocol checks).
        """
        if self.has_probe_app:
            return False
        sent = self.probe_params() if params is None else params
        return comparison.expect_same_answer(self, response, variation, sent, stdin, role=role)

    def prepare_same_answer(
        self,
        params: Iterable[tuple[bytes | str, bytes | str]] | None = None,
        stdin: bytes = b"",
        *,
        role: int = Role.RESPONDER,
    ) -> None:
        """Without a probe app: get the plain answer expect_same_answer will need now, before the case
        holds the target busy (connections at FCGI_MAX_CONNS, requests at FCGI_MAX_REQS)."""
        if not self.has_probe_app:
            comparison.prepare(self, self.probe_params() if params is None else params, stdin, role=role)

    @property
    def script_filename(self) -> str:
        """The SCRIPT_FILENAME the target's probe app needs (the default path when any will do)."""
        return self.target.script_filename or PROBE_SCRIPT_FILENAME

    def probe_params(
        self,
        query: str = "",
        method: str = "GET",
        extra: Iterable[tuple[bytes | str, bytes | str]] = (),
        *,
        content_length: int | None = None,
    ) -> list[tuple[bytes | str, bytes | str]]:
        """The CGI params of a request to the target's probe app (harness/wire/probe_app.py probe_params)."""
        return probe_params(query, method, extra, content_length=content_length, script_filename=self.script_filename)

    def post_params(
        self, content_length: int, extra: Iterable[tuple[bytes | str, bytes | str]] = ()
    ) -> list[tuple[bytes | str, bytes | str]]:
        """The probe params of a POST with a body of content_length bytes (harness/suite/case_requests.py)."""
        return post_params(content_length, extra, script_filename=self.script_filename)

    def require_probe_app(self) -> None:
        if self.target.has_probe_app is False:
            raise Unsupported("the target does not implement the probe app")

    def require_probe_feature(self, feature: str) -> None:
        """For a check that relies on a part of the probe contract its platform may not offer.

        A named target lists what its probe app cannot do in `probe_limitations` (keys in
        harness/targets/named.py: "app_status", "echo", "params-order", ...): the case is then
        unsupported with that reason instead of failing the server for its platform.
        """
        self.require_probe_app()
        reason = self.target.probe_limitations.get(feature)
        if reason:
            raise Unsupported(f"the probe app on this target cannot do {feature}: {reason}")

    def probe_can(self, feature: str) -> bool:
        """Whether the target's probe app offers this part of the probe contract (see require_probe_feature)."""
        return self.has_probe_app and feature not in self.target.probe_limitations

    def params_match(
        self, reported: Sequence[tuple[bytes, bytes]], sent: Sequence[tuple[bytes, bytes]]
    ) -> bool:
        """Whether the probe reported the params sent, as far as its platform can tell.

        Exact (names, values, order, duplicates) unless the target's probe_limitations say
        otherwise: "params-order" compares in any order, "params-duplicates" keeps a repeated
        name's last value, "params-all" leaves out the names the platform hides from the app
        (target.param_unreported(name)) and those it adds itself. Bytes are always compared
        exactly.
        """
        return params_match(reported, sent, self.target.probe_limitations, self.target.param_unreported)

    def close_all(self) -> None:
        for conn in self.connections:
            conn.close()
        for variant in self.variants:
            variant.stop()

    def variant_logs(self) -> str:
        return "\n".join(f"[{v.description}]\n{v.log_tail()}" for v in self.variants if v.log_tail())

    def traces(self, limit: int = 200) -> str:
        return "\n".join(conn.format_trace(limit) for conn in self.connections)


def run_case(
    case: Case,
    target: Target,
    *,
    scale: float = 1.0,
    check_liveness: bool = True,
    keep_trace: bool = False,
    notice: str = "",
    excluded: str | None = None,
) -> Outcome:
    """Run one case against a started target, probe the target's liveness after it, and have the
    judge (harness/suite/judge.py) give the verdict.

    notice is told in the outcome's note (e.g. the target was restarted before the case),
    excluded is the case's --exclude-file reason. The records exchanged are kept in the outcome
    for a verdict other than pass or unsupported, and for every verdict with keep_trace (the
    compatibility matrix's evidence).
    """
    # Found out once per target, as the pytest plugin does: cases branch on it.
    settle_probe_app(target, LIVENESS_TIMEOUT * scale)
    measure_round_trip(target, LIVENESS_TIMEOUT * scale)
    ctx = CaseContext(target, case, scale=scale)
    reports_before = probe_reports_parsed()
    returned: str | None = None
    raised: Exception | None = None
    try:
        if case.needs_probe_app:
            ctx.require_probe_app()
        with observing(ctx):
            returned = case.run(ctx)
    except Exception as error:  # whatever it is, the judge weighs it (a bug in the case too)
        raised = error
    finally:
        variant_logs = ctx.variant_logs()  # read before the variants are stopped and their logs go
        ctx.close_all()
    duration = time.monotonic() - ctx.started
    target.note_children()
    # A case that could not reach the target before it sent anything says nothing about the
    # target: it is not probed (the judge makes it an ERROR, the harness's problem).
    never_reached = isinstance(raised, TargetUnreachable) and not ctx.connections
    # The deviations of other requirements that the traces show, whatever the case checked itself.
    for seen in deviations_in_traces(ctx):
        if all(d.requirement != seen.requirement for d in ctx.also_seen):
            ctx.also_seen.append(seen)
    ctx.also_seen = root_deviations(ctx.also_seen)
    liveness = _liveness(target, scale, case.protocol_error) if check_liveness and not never_reached else None
    exit_during_case = _exit_during_case(ctx, liveness)
    if probe_reports_parsed() > reports_before:
        ctx.checked_by_probe()  # it read the probe app's report of what it received
    prerequisites = tuple(p for p in (*case.prerequisites, *COMMON_PREREQUISITES) if p not in case.same_requirement_as)
    own_deviation = own_deviation_in_traces(ctx)
    if _failed_on_target(raised) and own_deviation is None and liveness is not None and liveness.alive:
        # What the traces cannot show, or show without proof: the requirements it relies on, each
        # checked by a request of its own.
        ctx.deadline = time.monotonic() + ctx.answer_wait * (len(CHECKS) + 1)
        try:
            ctx.also_seen = confirmed(ctx, ctx.also_seen)
            if not any(d.requirement in prerequisites for d in ctx.also_seen):
                ctx.also_seen += check_prerequisites(ctx, prerequisites, raised)
        finally:
            ctx.close_all()
    outcome = judge(Facts(
        level=case.level, returned=returned, raised=raised, protocol_error=case.protocol_error,
        liveness=liveness, notice=notice, excluded=excluded, exit_during_case=exit_during_case,
        also_seen=tuple(ctx.also_seen), prerequisites=prerequisites, own_deviation=own_deviation,
    ))
    outcome.duration = duration
    outcome.depth = ctx.depth
    for text in ctx.notes if outcome.verdict is not Verdict.UNSUPPORTED else ():
        outcome.note = (outcome.note + "; " if outcome.note else "") + text
    if keep_trace or outcome.verdict not in (Verdict.PASS, Verdict.UNSUPPORTED) or outcome.also_seen:
        outcome.trace = ctx.traces()
        outcome.target_log = target.log_tail()
        if variant_logs:
            outcome.target_log += ("\n" if outcome.target_log else "") + variant_logs
    return outcome


def _failed_on_target(raised: Exception | None) -> bool:
    """The run failed on what the target did (not unsupported, blocked or the harness's error)."""
    return isinstance(raised, (Violation, FcgiTimeout, ConnectionClosed)) and not isinstance(raised, RecommendationMissed)


def _exit_during_case(ctx: CaseContext, liveness: Liveness | None) -> ExitDuringCase | None:
    """A spawned target that exited while the case ran (the liveness probe after it found it gone),
    with how many of the case's requests were answered."""
    target = ctx.target
    if not target.spawned or (liveness is not None and liveness.alive):
        return None
    status = target.exit_status()
    deadline = time.monotonic() + EXIT_GRACE
    while status is None and liveness is not None and time.monotonic() < deadline:
        time.sleep(0.02)  # what the probe found dead may still be exiting
        status = target.exit_status()
    if status is None:
        return None
    begun = answered = 0
    for conn in ctx.connections:
        begun += sum(1 for r in conn.trace_records(">") if r.type == RecordType.BEGIN_REQUEST)
        answered += sum(1 for r in conn.trace_records("<") if r.type == RecordType.END_REQUEST)
    return ExitDuringCase(status, target.exit_text(), begun, answered)


def _liveness(target: Target, scale: float, protocol_error: bool) -> Liveness:
    """The liveness probe's finding after a case, with how a dead target went away."""
    problem = liveness_probe(target, LIVENESS_TIMEOUT * scale)
    if problem is None:
        return Liveness()
    status = target.exit_status()
    if protocol_error and target.spawned:
        # Only then does the verdict depend on how the target went away (spec §7): the probe
        # may have caught the process while it was exiting, so it gets a moment.
        deadline = time.monotonic() + EXIT_GRACE
        while status is None and time.monotonic() < deadline:
            time.sleep(0.02)
            status = target.exit_status()
    return Liveness(problem, spawned=target.spawned, exit_status=status, through_shell=target.through_shell)


def load_cases(paths: Sequence[Path | str]) -> list[Case]:
    """Case objects defined in the given files (or directories of files), no registry."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(
                p for p in sorted(path.rglob("*.py")) if not p.name.startswith(("test_", "_")) and p.name != "conftest.py"
            )
        else:
            files.append(path)
    cases: list[Case] = []
    for file in files:
        cases.extend(cases_in_module(import_case_module(file)))
    return cases


def import_case_module(path: Path) -> object:
    """Import a case file under a stable, unique module name."""
    path = path.resolve()
    name = "fcgispec_cases." + "_".join(path.with_suffix("").parts[-3:])
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise HarnessError(f"cannot import case file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        # Not cached half-imported: the next import (collection) must meet the same error.
        del sys.modules[name]
        raise
    return module


def cases_in_module(module: object) -> list[Case]:
    return [value for value in vars(module).values() if isinstance(value, Case)]


def select_cases(cases: Iterable[Case], prefixes: Sequence[str]) -> list[Case]:
    """Cases whose id starts with one of the prefixes ('FCGI-3.3' selects the section).

    A prefix matches at a separator boundary, so FCGI-3.3-1 does not pick FCGI-3.3-12.
    """
    if not prefixes:
        return list(cases)
    return [c for c in cases if any(_id_matches(c.id, p) for p in prefixes)]


def _id_matches(case_id: str, prefix: str) -> bool:
    if not case_id.startswith(prefix):
        return False
    rest = case_id[len(prefix) :]
    return rest == "" or rest[0] in "-." or prefix.endswith(("-", "."))
