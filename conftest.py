"""fcgispec's pytest plugin: collects the cases under cases/, runs each against the
target (run_case, which has the judge give the verdict: harness/suite/judge.py), and
prints the fcgispec report last.

How a verdict becomes a pytest outcome is written down once, in harness/reports/pytest_items.py,
whose item and report machinery this plugin shares with the client suite's.
"""

from __future__ import annotations

import datetime
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent

from harness.wire.capabilities import DISCOVERY_TIMEOUT, Capabilities, discover
from harness.suite.comparison import ComparisonOracle
from harness.suite.case import (
    BASE_WAIT, WAIT_ROUND_TRIPS, Case, cases_in_module, import_case_module, load_cases, run_case, select_cases,
)
from harness.suite.exclusions import ExclusionError, exclusion_for, load_exclusions, unmatched_entries
from harness.suite.run_options import (
    CASE_ID_FORMS, OPTION_GROUP, OPTION_GROUP_DESCRIPTION, OptionError, add_suite_options, check_case_prefixes,
    check_output_path, parse_fcgi_timeout,
)
from harness.targets.first_contact import check_target_answers
from harness.targets.liveness import settle_probe_app
from harness.reports.pytest_items import (
    EXIT_HARNESS, EXIT_USAGE, ResultsReport, VerdictItem, carry_result, is_case_file, is_strict, is_worker, option,
)
from harness.reports.results import format_depth_summary, format_report, write_json_report
from harness.targets.base import ROUND_TRIP_SAMPLES, Target, TargetError, TargetUsageError
from harness.targets.selection import declare_probe_app, parse_probe_limitations, parse_target
from harness.verdicts import Outcome

# The HTTP client suite (cases/client/, --client) and the gateway suite (cases/gateway/, --gateway) are
# plugins of their own; so is what an interrupted run does.
pytest_plugins = ["harness.reports.interruption", "harness.reports.client_plugin", "harness.reports.gateway_plugin"]

CASES_DIR = ROOT / "cases"
# Collected by the client suite's and the gateway suite's plugins (harness/reports/client_plugin.py,
# harness/reports/gateway_plugin.py), not by this one.
OTHER_SUITES_CASES_DIRS = (CASES_DIR / "client", CASES_DIR / "gateway")
REPORT_ATTRIBUTE = "fcgispec_result"
# pytest's status when no test was collected: for the suite, a selection that matched nothing.
PYTEST_NO_TESTS = 5


def pytest_addoption(parser: pytest.Parser) -> None:
    add_suite_options(parser.getgroup(OPTION_GROUP, OPTION_GROUP_DESCRIPTION))


class TargetSession:
    """The one target of this pytest process (per xdist worker): started once (before the cases when
    no workers run, else at a worker's first case), checked to answer FastCGI, stopped at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.spec: str = config.getoption("--target")
        self.target: Target | None = None
        self.start_error: str | None = None
        self.pending_notice: str | None = None
        self.stopped_run = False  # the target could not be restarted: the run stops

    def ensure_started(self) -> Target:
        if self.start_error is not None:
            raise TargetError(self.start_error)
        if self.target is None:
            try:
                target = start_checked_target(self.config)
            except TargetError as error:
                self.start_error = str(error)
                raise
            try:
                # Capability discovery first: every case (and the report) sees the same answer.
                scale = self.config.getoption("--fcgi-timeout") / BASE_WAIT
                target.discovered_capabilities = discover(target, DISCOVERY_TIMEOUT * scale)
            except BaseException:  # interrupted: stop() at the end would not know of it
                target.stop()
                raise
            self.target = target
        return self.target

    def after_case(self, outcome: Outcome) -> None:
        """A spawned target that died or hung is restarted for the next case, and we say so; one that
        cannot be restarted stops the run."""
        target = self.target
        if target is None or not target.spawned:
            return
        if outcome.target_alive and target.exit_status() is None:
            return
        why = target.exit_text() if target.exit_status() is not None else "it stopped answering"
        try:
            target.restart()
            self.pending_notice = f"target restarted before this case: after the previous one {why}"
        except TargetError as error:
            self.start_error = f"target {self.spec}: after a case it {why}, and could not be restarted: {error}"
            self.stopped_run = True
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"fcgispec: {self.pending_notice or self.start_error}")

    def stop(self) -> None:
        if self.target is not None:
            self.target.stop()
            self.target = None


def start_checked_target(config: pytest.Config) -> Target:
    """The --target started, told what the user said about its probe app, and seen to answer FastCGI
    (harness/targets/first_contact.py); TargetError (one line) when it cannot be tested."""
    spec = config.getoption("--target")
    target = parse_target(spec, ROOT)
    declare_probe_app(
        target,
        script_filename=config.getoption("--script-filename"),
        limitations=config.getoption("--probe-limitations"),
        probe_app=config.getoption("--probe-app"),
    )
    try:
        target.start()
    except TargetUsageError:
        raise
    except TargetError as error:
        raise TargetError(f"target {spec} could not be started: {error}") from None
    except BaseException:  # interrupted while it starts: nothing is left running
        target.stop()
        raise
    try:
        problem = check_target_answers(target, spec, config.getoption("--fcgi-timeout"))
        if problem is None:
            settle_probe_app(target)
    except BaseException:
        target.stop()
        raise
    if problem is not None:
        target.stop()
        raise TargetError(problem)
    return target


class CaseFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        module = import_case_module(Path(self.path))
        prefixes = self.config.getoption("--case")
        for case in select_cases(cases_in_module(module), prefixes):
            yield CaseItem.from_parent(self, name=case.id, case=case)


class CaseItem(VerdictItem):
    case_type = Case
    case_fields = ("id", "section", "title", "requirement", "level", "timeout", "needs_probe_app", "catches",
                   "reference_args", "prerequisites")
    report_attribute = REPORT_ATTRIBUTE
    marker = "fcgispec"
    reports_depth = True
    capabilities: object | None = None  # what GET_VALUES said, once the case ran
    probe_app: dict[str, Any] | None = None  # whether the target has the probe app, and why
    determinism: dict[str, Any] | None = None  # whether its answers can be compared (once a case asked)
    round_trip_ms: float | None = None  # the target's measured round trip when the case ran

    def setup(self) -> None:
        # The case runs here so that a harness ERROR is a pytest setup error.
        session: TargetSession = self.config.stash[_SESSION_KEY]
        try:
            target = session.ensure_started()
        except TargetError as error:
            raise self.not_run(str(error)) from None
        notice, session.pending_notice = session.pending_notice, None
        scale = self.config.getoption("--fcgi-timeout") / BASE_WAIT
        excluded = exclusion_for(self.case.id, self.config.stash[_EXCLUSIONS_KEY])
        self.outcome = run_case(self.case, target, scale=scale, notice=notice or "", excluded=excluded)
        self.capabilities = target.discovered_capabilities
        self.probe_app = {"found": bool(target.has_probe_app), "reason": target.probe_app_reason}
        self.round_trip_ms = round(target.round_trip * 1000, 2)
        oracle = target.comparison_oracle
        if isinstance(oracle, ComparisonOracle) and oracle.determinism is not None:
            self.determinism = oracle.determinism.to_dict()
        session.after_case(self.outcome)
        if session.stopped_run:
            self.config.stash[_RUN_KEY].error = session.start_error
            self.session.shouldstop = session.start_error or True
        self.judged()

    def runtest(self) -> None:
        self.tell_verdict()

    def result_data(self) -> dict[str, Any]:
        return {
            **super().result_data(),
            "capabilities": _capabilities_to_dict(self.capabilities),
            "probe_app": self.probe_app,
            "determinism": self.determinism,
            "round_trip_ms": self.round_trip_ms,
        }


_SESSION_KEY = pytest.StashKey[TargetSession]()
_EXCLUSIONS_KEY = pytest.StashKey[dict[str, str]]()


class ResultCollector(ResultsReport):
    """Gathers case results from reports (on the xdist controller too) and prints them last."""

    item_type = CaseItem
    heading = "fcgispec report"
    case_directories = (CASES_DIR,)
    excluded_directories = OTHER_SUITES_CASES_DIRS

    def __init__(self, config: pytest.Config) -> None:
        super().__init__(config)
        self.started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.capabilities: dict[str, Any] | None = None
        self.probe_app: dict[str, Any] | None = None
        self.determinism: dict[str, Any] | None = None
        self.round_trip_ms: float | None = None  # the slowest worker's measure
        self.other_tests = False  # reports of items that are not cases (self-tests)
        self.collection_errors = 0  # case files that could not be collected

    def received(self, data: dict[str, Any] | None) -> None:
        if data is None:
            self.other_tests = True
            return
        super().received(data)
        if self.capabilities is None and data.get("capabilities") is not None:
            self.capabilities = data["capabilities"]
        if self.probe_app is None and data.get("probe_app") is not None:
            self.probe_app = data["probe_app"]
        if self.determinism is None and data.get("determinism") is not None:
            self.determinism = data["determinism"]
        if data.get("round_trip_ms") is not None:
            self.round_trip_ms = max(self.round_trip_ms or 0.0, data["round_trip_ms"])

    def before_summary(self) -> None:
        # A case run's failures are told once, in the fcgispec report with the records
        # exchanged, instead of again in pytest's failure sections (JUnit XML still gets
        # the full text). An explicit --tb wins; self-tests keep pytest's usual output.
        if self.results and not self.other_tests and self.config.option.tbstyle == "auto":
            self.config.option.tbstyle = "no"

    def is_suite_run(self) -> bool:
        return bool(self.results) and not self.other_tests

    def run_error(self) -> str | None:
        return self.config.stash[_RUN_KEY].error

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors += 1

    def exit_status(self, pytest_status: int) -> int | None:
        if self.config.stash[_RUN_KEY].server_run:
            if pytest_status == PYTEST_NO_TESTS:
                return EXIT_USAGE
            if self.collection_errors:
                # pytest stops ("interrupted") at a case file it cannot import: the harness is broken.
                return EXIT_HARNESS
        return super().exit_status(pytest_status)

    def closing_lines(self, pytest_status: int) -> list[str]:
        error = self.run_error()
        if error is not None:
            return [f"fcgispec: {error}"]
        if pytest_status == PYTEST_NO_TESTS and self.config.stash[_RUN_KEY].server_run:
            return [f"fcgispec: no case selected (-k or -m matched none); {CASE_ID_FORMS}; see --collect-only"]
        return []

    def header_lines(self) -> list[str]:
        return [
            *self.config.stash[_RUN_KEY].warnings,
            f"Target: {self.config.getoption('--target')}",
            f"Capabilities: {_describe_capabilities(self.capabilities)}",
            f"Probe app: {_describe_probe_app(self.probe_app)}",
            f"Deterministic answers: {_describe_determinism(self.determinism, self.probe_app)}",
            f"Round trip: {_describe_round_trip(self.round_trip_ms)}",
        ]

    def summary_lines(self) -> list[str]:
        return [format_depth_summary(self.results)]

    def format_results(self, colour: bool) -> str:
        # The records exchanged are shown here, under each failure.
        return format_report(self.results, colour=colour, with_trace=True)

    def write_json(self, path: str) -> list[str]:
        meta = {
            "capabilities": self.capabilities,
            "probe_app": self.probe_app,
            "determinism": self.determinism,
            "round_trip_ms": self.round_trip_ms,
            "started": self.started_at,
            "wall_time": round(time.monotonic() - self.started, 3),
            "exclude_file": self.config.getoption("--exclude-file"),
            "interrupted": self.interrupted,
            "run_error": self.run_error(),
        }
        write_json_report(
            path, self.results, target=self.config.getoption("--target"), strict=is_strict(self.config), meta=meta
        )
        return [f"JSON report written to {path}"]


@dataclass
class RunState:
    """What the main process (the xdist controller, or the only process) found before the cases."""

    error: str | None = None  # why nothing can be tested: the run ends with it, status 3
    warnings: list[str] = field(default_factory=list)  # for the report's header (exclude-file entries)
    server_run: bool = False  # the run's paths hold server cases: its checks and statuses apply


_RUN_KEY = pytest.StashKey[RunState]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fcgispec: a FastCGI conformance case")
    config.stash[_SESSION_KEY] = TargetSession(config)
    state = config.stash[_RUN_KEY] = RunState()
    catalogue_dirs = server_case_paths(config)
    state.server_run = bool(catalogue_dirs)
    try:
        check_options(config, state, catalogue_dirs)
    except (OptionError, ExclusionError, TargetError) as error:
        raise pytest.UsageError(str(error)) from None
    config.pluginmanager.register(ResultCollector(config), "fcgispec-results")
    if state.server_run and not is_worker(config) and not _only_informs(config):
        check_target_before_the_cases(config, state)


def check_options(config: pytest.Config, state: RunState, catalogue_dirs: list[Path]) -> None:
    """Every option value the suite reads, checked before anything starts (OptionError and the like:
    one line, a usage error)."""
    config.option.fcgi_timeout = parse_fcgi_timeout(str(config.getoption("--fcgi-timeout")))
    try:
        parse_target(config.getoption("--target"), ROOT)
    except TargetError as error:
        raise TargetError(f"--target: {error}") from None
    parse_probe_limitations(config.getoption("--probe-limitations", None) or "")
    exclude_file = config.getoption("--exclude-file", None)
    config.stash[_EXCLUSIONS_KEY] = load_exclusions(exclude_file) if exclude_file is not None else {}
    if is_worker(config) or option(config, "help", False) or option(config, "version", False):
        return
    try:
        case_ids = [case.id for case in load_cases(catalogue_dirs)] if catalogue_dirs else None
    except Exception:  # a broken case file: collection reports it, with its traceback, as the harness's error
        case_ids = None
    if case_ids is not None:
        check_case_prefixes(config.getoption("--case"), case_ids)
        state.warnings += [f"Warning: {line}" for line in unmatched_entries(config.stash[_EXCLUSIONS_KEY], case_ids)]
    if not _only_informs(config):
        for name, path in (("--report-json", config.getoption("--report-json")),
                           ("--junitxml", option(config, "xmlpath", None))):
            if path is not None:
                check_output_path(name, path)


def server_case_paths(config: pytest.Config) -> list[Path]:
    """The case files and directories of the server suite among the run's paths (cases/ stands for
    all but cases/client/ and cases/gateway/); [] when the run collects no server cases (self-tests, the
    client and gateway suites)."""
    found: list[Path] = []
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::", 1)[0]).resolve()
        if not path.exists():
            continue
        if path == CASES_DIR:
            found += [d for d in sorted(CASES_DIR.iterdir())
                      if d.is_dir() and d not in OTHER_SUITES_CASES_DIRS and not d.name.startswith(("_", "."))]
        elif path.is_relative_to(CASES_DIR) and not any(path.is_relative_to(d) for d in OTHER_SUITES_CASES_DIRS):
            found.append(path)
    return found


def _only_informs(config: pytest.Config) -> bool:
    """--help, --version, --collect-only, --fixtures, --markers...: nothing will run."""
    return any(option(config, name, False) for name in
               ("help", "version", "collectonly", "showfixtures", "show_fixtures_per_test", "markers"))


def check_target_before_the_cases(config: pytest.Config, state: RunState) -> None:
    """Once, before any case: is the target there and does it answer FastCGI? When not, the run ends
    with that one verdict and status 3, instead of every case failing after its own timeout.

    Without workers the target started here is the run's. With xdist workers (each spawns its own
    target at its first case), the check runs here, in the controller, before the workers start:
    on a target of its own if spawned, which is then stopped."""
    parallel = option(config, "dist", "no") != "no"
    try:
        if parallel:
            start_checked_target(config).stop()
        else:
            config.stash[_SESSION_KEY].ensure_started()
    except TargetUsageError as error:
        raise pytest.UsageError(f"--target: {error}") from None
    except KeyboardInterrupt:
        # Before the session starts pytest writes no report: the last line says what happened.
        sys.stderr.write("run interrupted before any case, while checking that the target answers FastCGI\n")
        raise
    except TargetError as error:
        state.error = str(error)
        # Nothing will run: no workers to start for it.
        config.option.dist = "no"
        config.option.numprocesses = 0


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """No case runs when the check before the cases found nothing to test."""
    state = session.config.stash.get(_RUN_KEY, None)
    return True if state is not None and state.error is not None else None


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION_KEY, None)
    if session is not None:
        session.stop()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not is_case_file(file_path, [CASES_DIR], OTHER_SUITES_CASES_DIRS):
        return None
    return CaseFile.from_parent(parent, path=file_path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    # The case ran in setup: its result rides on the setup report (serialisable, so xdist carries it).
    carry_result(outcome.get_result(), item, call, CaseItem)


def _capabilities_to_dict(capabilities: object | None) -> dict[str, Any] | None:
    if not isinstance(capabilities, Capabilities):
        return None
    return {
        "answered": capabilities.answered,
        "FCGI_MAX_CONNS": capabilities.max_conns,
        "FCGI_MAX_REQS": capabilities.max_reqs,
        "FCGI_MPXS_CONNS": capabilities.mpxs_conns,
        "pairs": {n.decode("latin-1"): v.decode("latin-1") for n, v in capabilities.pairs},
        "problem": capabilities.problem,
    }


def _describe_capabilities(data: dict[str, Any] | None) -> str:
    if data is None:
        return "not discovered"
    if not data["answered"]:
        return f"no GET_VALUES_RESULT ({data['problem']})"
    return ", ".join(f"{name}={value}" for name, value in data["pairs"].items()) or "an empty GET_VALUES_RESULT"


def _describe_probe_app(data: dict[str, Any] | None) -> str:
    if data is None:
        return "not known (no case ran)"
    if data["found"]:
        return f"found ({data['reason']}): content is checked by its reports"
    return f"none ({data['reason']}): content is checked only by comparison, where a case can"


def _describe_round_trip(milliseconds: float | None) -> str:
    if milliseconds is None:
        return "not measured (no case ran)"
    return (f"{milliseconds:.1f} ms (a new connection and a plain request, the median of the last {ROUND_TRIP_SAMPLES}); "
            f"every wait is {WAIT_ROUND_TRIPS} of them longer than its base")


def _describe_determinism(data: dict[str, Any] | None, probe_app: dict[str, Any] | None) -> str:
    if data is None:
        return "not checked" + (" (the probe app's reports are checked instead)" if probe_app and probe_app["found"] else "")
    if not data["deterministic"]:
        return f"no: {data['problem']}; the comparing cases fall back to protocol checks"
    return "yes; masked: " + ("; ".join(data["masked"]) or "nothing")


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_WALL_START_KEY] = time.time()


_WALL_START_KEY = pytest.StashKey[float]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """After tests/test_catch_matrix.py ran: assemble, write and print the catch matrix."""
    if is_worker(config):
        return
    ran = any(
        "test_catch_matrix.py::test_fault_is_caught" in getattr(report, "nodeid", "")
        for reports in terminalreporter.stats.values() for report in reports
    )
    if not ran:
        return
    from harness.suite.catch_matrix import MATRIX_DIR, MATRIX_FILE, format_matrix, read_runs

    runs = read_runs(ROOT / MATRIX_DIR, since=config.stash.get(_WALL_START_KEY, 0.0))
    if not runs:
        return
    text = format_matrix(runs)
    (ROOT / MATRIX_FILE).write_text(text + "\n")
    terminalreporter.write_sep("=", "fcgispec catch matrix")
    terminalreporter.write_line(text)
    terminalreporter.write_line(f"(written to {MATRIX_FILE})")
