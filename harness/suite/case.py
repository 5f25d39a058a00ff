"""Cases: what one conformance check is, the context it runs in, and how it is judged."""

from __future__ import annotations

import importlib.util
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from harness.wire.capabilities import DISCOVERY_TIMEOUT, Capabilities, discover
from harness.wire.connection import ConnectionClosed, FcgiConnection, FcgiTimeout, Response, request
from harness.suite.judge import VERDICT_EXCEPTIONS, harness_error, passed, raised_verdict
from harness.targets.liveness import detect_probe_app, liveness_probe
from harness.wire.probe_app import probing
from harness.targets.base import SpawnedTarget, Target, TargetError, TargetUnreachable
from harness.verdicts import HarnessError, Level, Outcome, Unsupported, Verdict, violation_verdict

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
SHELL_SIGNAL_BASE = 128
# How long a target that stopped answering gets to show its exit status.
EXIT_GRACE = 1.0
# The base wait every case timeout is written against (--fcgi-timeout's default).
BASE_WAIT = 5.0
# How long a target must stay silent before "nothing more comes" is concluded (unscaled).
QUIET_WAIT = 0.25


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

    def seconds(self, base: float) -> float:
        """A wait of `base` seconds, scaled by --fcgi-timeout."""
        return base * self.scale

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
        return conn

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
        if found.answered or not isinstance(self.target, SpawnedTarget) or self.target.exit_status() is None:
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
        return variant

    @property
    def has_probe_app(self) -> bool:
        return bool(self.target.has_probe_app)

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
        reason = (getattr(self.target, "probe_limitations", None) or {}).get(feature)
        if reason:
            raise Unsupported(f"the probe app on this target cannot do {feature}: {reason}")

    def probe_can(self, feature: str) -> bool:
        """Whether the target's probe app offers this part of the probe contract (see require_probe_feature)."""
        return self.has_probe_app and feature not in (getattr(self.target, "probe_limitations", None) or {})

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
        limits = getattr(self.target, "probe_limitations", None) or {}
        hidden = getattr(self.target, "param_unreported", None) if "params-all" in limits else None
        sent_names = {name for name, _ in sent}

        def view(params: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
            pairs = [(name, value) for name, value in params if not (hidden and hidden(name))]
            if "params-all" in limits:  # the platform may also add params of its own: those are not judged
                pairs = [(name, value) for name, value in pairs if name in sent_names]
            if "params-duplicates" in limits:
                pairs = list(dict(pairs).items())  # first position, last value
            return sorted(pairs) if "params-order" in limits else pairs

        return view(reported) == view(sent)

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
    case: Case, target: Target, *, scale: float = 1.0, check_liveness: bool = True, keep_trace: bool = False
) -> Outcome:
    """Run one case against a started target and judge it.

    The records exchanged are kept in the outcome for a verdict other than pass or
    unsupported, and for every verdict with keep_trace (the compatibility matrix's evidence).
    """
    with probing(target):  # probe_params sends the SCRIPT_FILENAME this target's probe app needs
        return _run_case(case, target, scale, check_liveness, keep_trace)


def _run_case(case: Case, target: Target, scale: float, check_liveness: bool, keep_trace: bool) -> Outcome:
    if target.has_probe_app is None:
        # Found out once per target, as the pytest plugin does: cases branch on it.
        target.has_probe_app = detect_probe_app(target, LIVENESS_TIMEOUT * scale)
    ctx = CaseContext(target, case, scale=scale)
    outcome = Outcome(Verdict.PASS)
    target_unreachable = False
    variant_logs = ""
    try:
        if case.needs_probe_app:
            ctx.require_probe_app()
        outcome = passed(case.level, case.run(ctx))
    except VERDICT_EXCEPTIONS as raised:
        outcome = raised_verdict(case.level, raised)
    except FcgiTimeout as timeout:
        awaited = getattr(timeout, "awaited", "") or str(timeout)
        outcome = Outcome(violation_verdict(case.level), expected=[awaited], actual="Timeout")
    except ConnectionClosed as closed:
        outcome = Outcome(
            violation_verdict(case.level),
            expected=["the exchange to complete on an open connection"],
            actual=f"connection closed by the target ({'EOF' if closed.how == 'eof' else 'RST'})",
        )
    except TargetUnreachable as error:
        # Reaching the target before anything was sent is the harness's problem;
        # failing to reconnect mid-case is judged by the liveness probe below.
        target_unreachable = not ctx.connections
        outcome = Outcome(Verdict.ERROR, actual=str(error))
    except (TargetError, HarnessError) as error:
        outcome = Outcome(Verdict.ERROR, actual=str(error))
    except Exception:  # a bug in the case or the harness: never the target's verdict
        outcome = harness_error()
    finally:
        variant_logs = ctx.variant_logs()  # read before the variants are stopped and their logs go
        ctx.close_all()
    outcome.duration = time.monotonic() - ctx.started
    if check_liveness and not target_unreachable:
        _apply_liveness(outcome, target, scale, case.protocol_error)
    if keep_trace or outcome.verdict not in (Verdict.PASS, Verdict.UNSUPPORTED):
        outcome.trace = ctx.traces()
        outcome.target_log = target.log_tail()
        if variant_logs:
            outcome.target_log += ("\n" if outcome.target_log else "") + variant_logs
    return outcome


def _apply_liveness(outcome: Outcome, target: Target, scale: float, protocol_error: bool = False) -> None:
    """A target that no longer answers after a case fails it, whatever the case said,
    except that after a protocol error an exit with nonzero status is only warned."""
    problem = liveness_probe(target, LIVENESS_TIMEOUT * scale)
    if problem is None:
        if outcome.verdict is Verdict.ERROR and "cannot connect" in outcome.actual:
            # The target answers again: the mid-case refusal was the target's doing.
            outcome.verdict = Verdict.FAIL
        return
    outcome.target_alive = False
    dead = f"target did not answer after the case: {problem}"
    if protocol_error and outcome.verdict is not Verdict.UNSUPPORTED:
        exited = _exited_after_protocol_error(target, problem)
        if exited:
            if outcome.verdict in (Verdict.FAIL, Verdict.ERROR):
                # What the case saw was most likely the exit itself (a closed connection).
                seen = f"the case saw: {outcome.actual}"
                outcome.note = (outcome.note + "; " if outcome.note else "") + seen
            outcome.verdict = Verdict.WARN
            outcome.expected = [
                "the application goes on serving after a protocol error (spec §7 also allows an exit with "
                "nonzero status; then one bad peer takes the service down for every client)"
            ]
            outcome.actual = exited
            return
    if outcome.verdict in (Verdict.FAIL, Verdict.ERROR):
        outcome.note = (outcome.note + "; " if outcome.note else "") + dead
        if outcome.verdict is Verdict.ERROR and "cannot connect" in outcome.actual:
            outcome.verdict = Verdict.FAIL
        return
    outcome.verdict = Verdict.FAIL
    outcome.expected = ["the target still answers a simple request after the case"]
    outcome.actual = dead
    outcome.note = ""


def _exited_after_protocol_error(target: Target, problem: str) -> str | None:
    """How the target went away, if that is the nonzero exit spec §7 allows; None
    for a crash (killed by a signal), an exit with status 0, or a target that still
    accepts connections but no longer answers."""
    status = None
    if isinstance(target, SpawnedTarget):
        # The probe may have caught the process while it was exiting: give it a moment.
        deadline = time.monotonic() + EXIT_GRACE
        while (status := target.exit_status()) is None and time.monotonic() < deadline:
            time.sleep(0.02)
    if status is not None and status > SHELL_SIGNAL_BASE and getattr(target, "through_shell", False):
        status = -(status - SHELL_SIGNAL_BASE)  # /bin/sh reports a child killed by signal N as 128+N
    if status is not None:
        return f"the application exited with status {status}" if status > 0 else None
    if isinstance(target, SpawnedTarget) or "cannot connect" not in problem:
        return None
    return f"the target stopped accepting connections (exit status unknown): {problem}"


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
    spec.loader.exec_module(module)
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
