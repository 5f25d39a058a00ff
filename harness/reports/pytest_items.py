"""What the two pytest plugins share: the server suite's (conftest.py) and the client suite's
(harness/reports/client_plugin.py).

Each collects its cases as items and runs a case in setup; the judge (harness/suite/judge.py)
has given its verdict by then. The result rides on the setup report (serialisable, so xdist
carries it) to where the report is printed, after pytest's own summary, with the one-line
summary last.

Verdict -> pytest, for both suites (the one place this is written down):

  verdict                   pytest outcome                          JUnit XML   the run (exit status)
  PASS, INFO                passed                                  -           passes (0)
  WARN                      passed                                  -           passes (0)
  WARN with --strict        failed (in the call)                    <failure>   fails (1)
  FAIL                      failed (in the call)                    <failure>   fails (1)
  UNSUPPORTED               skipped: "unsupported: WHY"             <skipped>   passes (0)
  BLOCKED                   skipped: "blocked by FCGI-x.y-z: WHY"   <skipped>   passes (0)
  ERROR                     error (in setup)                        <error>     fails (3, wins over 1)
  excused: a FAIL, WARN or  skipped (in setup):                     <skipped>   passes (0)
  ERROR in --exclude-file   "excluded (VERDICT): REASON"

fails_run() is the last column; VerdictItem.judged() and tell_verdict() do the rest; the exit status
is ResultsReport.exit_status(), from the pytest outcomes of the column before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pytest

from harness.reports.results import CaseResult, format_details, format_summary
from harness.suite.judge import Facts, judge
from harness.verdicts import Depth, Deviation, Level, Outcome, Verdict


def fails_run(outcome: Outcome, strict: bool) -> bool:
    """Whether this outcome makes the whole run exit non-zero (excluded deviations do not)."""
    if outcome.excused:
        return False
    return outcome.verdict in (Verdict.FAIL, Verdict.ERROR) or (strict and outcome.verdict is Verdict.WARN)


def option(config: pytest.Config, name: str, default: Any) -> Any:
    """An option's value, or default where the plugin that adds it is not loaded."""
    try:
        return config.getoption(name)
    except ValueError:
        return default


def is_strict(config: pytest.Config) -> bool:
    """--fcgi-strict or pytest's --strict: a missed recommendation (warn) fails the run."""
    return bool(option(config, "fcgi_strict", False) or option(config, "strict", False))


@dataclass
class RunState:
    """Whether the run was interrupted (Ctrl-C, SIGTERM: harness/reports/interruption.py keeps it), for the reports."""

    interrupted: bool = False
    # The node ids of the items collected (by a worker, under xdist); None before collection ended.
    collected: list[str] | None = None


RUN_STATE_KEY = pytest.StashKey[RunState]()


def interruption_state(config: pytest.Config) -> RunState:
    """The run's state (never interrupted where the interruption plugin is not loaded)."""
    return config.stash.get(RUN_STATE_KEY, RunState())


def is_worker(config: pytest.Config) -> bool:
    """An xdist worker: the controller prints the report."""
    return hasattr(config, "workerinput")


def runs_cases_in(config: pytest.Config, directories: Iterable[Path], excluded: Iterable[Path] = ()) -> bool:
    """Whether the run's paths hold case files of these directories (known before collection): a path
    inside one of them, or one that contains one, and not inside an excluded directory."""
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).absolute()
        if any(path == skipped or skipped in path.parents for skipped in excluded):
            continue
        if any(path == directory or directory in path.parents or path in directory.parents for directory in directories):
            return True
    return False


def runs_only_cases_in(config: pytest.Config, directories: Iterable[Path]) -> bool:
    """Whether every path of the run is inside one of these directories (a run of that suite alone, so a
    --case that selects none of its cases is a mistake)."""
    paths = [Path(arg.split("::", 1)[0]).absolute() for arg in config.args]
    return bool(paths) and all(any(p == d or d in p.parents for d in directories) for p in paths)


def is_case_file(file_path: Path, directories: Iterable[Path], excluded: Iterable[Path] = ()) -> bool:
    """A case file: a .py file below one of the directories (and none of excluded), not a test, helper or conftest."""
    if file_path.suffix != ".py" or file_path.name.startswith(("test_", "_")) or file_path.name == "conftest.py":
        return False
    resolved = file_path.resolve()
    if any(resolved.is_relative_to(directory) for directory in excluded):
        return False
    return any(resolved.is_relative_to(directory) for directory in directories)


def unmatched_case_selections(selections: Iterable[str], case_ids: Iterable[str],
                              matches: "Callable[[str, str], bool]") -> list[str]:
    """The --case values that select none of these cases (a usage error: a mistyped id selects nothing)."""
    ids = list(case_ids)
    return [selection for selection in selections if not any(matches(case_id, selection) for case_id in ids)]


class CaseFailed(Exception):
    """A case's verdict that pytest must show as a failure (or error, in setup)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class VerdictItem(pytest.Item):
    """One case as a pytest item: a suite's setup() runs it, sets self.outcome and calls judged();
    its runtest() calls tell_verdict(). Both hide their own frame, so that pytest's summary names the
    suite's plugin as where a case was skipped."""

    # What a suite's item class says about its cases:
    case_type: type = object  # the case class (a dataclass whose run function does the check)
    case_fields: tuple[str, ...] = ()  # the fields a report shows, carried with the result
    report_attribute = ""  # the setup report's attribute that carries the result
    marker = ""  # the pytest mark every item gets
    reports_depth = False  # its verdicts say how deep they looked (Outcome.depth): the server suite's do

    def __init__(self, *, case: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.outcome: Outcome | None = None
        self.add_marker(self.marker)

    def result_data(self) -> dict[str, Any]:
        """The case's fields and its outcome as plain data, for the setup report."""
        assert self.outcome is not None
        data = {name: _plain(getattr(self.case, name)) for name in self.case_fields}
        return {**data, **_outcome_to_dict(self.outcome)}

    @classmethod
    def result_from_data(cls, data: dict[str, Any]) -> CaseResult:
        """The result again, from result_data's data (a case that can no longer run)."""
        fields = {name: tuple(data[name]) if isinstance(data[name], list) else data[name] for name in cls.case_fields}
        fields["level"] = Level(fields["level"])
        return CaseResult(cls.case_type(run=_not_runnable, **fields), _outcome_from_dict(data))

    def not_run(self, why: str) -> CaseFailed:
        """The case could not run at all: the judge's outcome (ERROR), and the exception that says so."""
        self.outcome = judge(Facts(self.case.level, not_run=why))
        return CaseFailed(self._details())

    def judged(self) -> None:
        """The end of setup, once the case ran: record the verdict; an excused one skips, an ERROR
        is a setup error (the table above)."""
        __tracebackhide__ = True
        assert self.outcome is not None
        self.user_properties.append(("fcgispec_verdict", self.outcome.verdict.value))
        if self.reports_depth:
            self.user_properties.append(("fcgispec_depth", self.outcome.depth.value))
        if self.outcome.excused:
            # A known deviation: JUnit shows it as skipped with the reason, the run stays green.
            pytest.skip(f"excluded ({self.outcome.verdict.value}): {self.outcome.excluded}")
        if self.outcome.verdict is Verdict.ERROR:
            raise CaseFailed(self._details())

    def tell_verdict(self) -> None:
        """runtest: FAIL (and WARN with --strict) fails, UNSUPPORTED skips, the rest pass (the table above)."""
        __tracebackhide__ = True
        assert self.outcome is not None
        if fails_run(self.outcome, is_strict(self.config)):
            raise CaseFailed(self._details())
        if self.outcome.verdict is Verdict.UNSUPPORTED:
            pytest.skip(f"unsupported: {self.outcome.note}")
        if self.outcome.verdict is Verdict.BLOCKED:
            # Another requirement's deviation (its own case fails) kept this case from its own.
            pytest.skip(self.outcome.note)

    def _details(self) -> str:
        assert self.outcome is not None
        head = f"{self.outcome.verdict.value.upper()} {self.case.id} {self.case.title}"
        return "\n".join([head, *format_details(CaseResult(self.case, self.outcome))])

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CaseFailed):
            return excinfo.value.text
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return Path(self.path), None, f"{self.case.id} {self.case.title}"


def carry_result(
    report: pytest.TestReport, item: pytest.Item, call: pytest.CallInfo[None], item_type: type[VerdictItem]
) -> None:
    """In pytest_runtest_makereport: put the case's result on its setup report."""
    if call.when != "setup" or not isinstance(item, item_type):
        return
    if item.outcome is not None:
        setattr(report, item_type.report_attribute, item.result_data())
    # pytest shows setup errors as Python tracebacks; an ERROR verdict reads better as the case's report.
    if call.excinfo is not None and isinstance(call.excinfo.value, CaseFailed):
        report.longrepr = call.excinfo.value.text


def _plain(value: Any) -> Any:
    """A case field as data xdist carries: a Level as its value, a tuple as a list."""
    if isinstance(value, Level):
        return value.value
    return list(value) if isinstance(value, tuple) else value


def _outcome_to_dict(outcome: Outcome) -> dict[str, Any]:
    return {
        "verdict": outcome.verdict.value, "expected": list(outcome.expected), "actual": outcome.actual,
        "note": outcome.note, "duration": outcome.duration, "trace": outcome.trace,
        "target_log": outcome.target_log, "target_alive": outcome.target_alive, "excluded": outcome.excluded,
        "depth": outcome.depth.value,
        "exited_cleanly": outcome.exited_cleanly,
        "also_seen": [[d.requirement, d.what, d.evidence] for d in outcome.also_seen],
        "blocked_by": outcome.blocked_by,
    }


def _outcome_from_dict(data: dict[str, Any]) -> Outcome:
    return Outcome(
        Verdict(data["verdict"]), expected=list(data["expected"]), actual=data["actual"], note=data["note"],
        duration=data["duration"], trace=data["trace"], target_log=data["target_log"], target_alive=data["target_alive"],
        excluded=data["excluded"], depth=Depth(data.get("depth", Depth.PROTOCOL.value)),
        exited_cleanly=data.get("exited_cleanly", False),
        also_seen=[Deviation(*seen) for seen in data.get("also_seen", ())],
        blocked_by=data.get("blocked_by"),
    )


def _not_runnable(ctx: Any) -> None:
    """The run function of a case rebuilt from a report."""
    raise RuntimeError("a case rebuilt from a report cannot run")


# The exit statuses of every fcgispec command (README, "verdicts").
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 2
EXIT_HARNESS = 3
EXIT_USAGE = 4


class ResultsReport:
    """Gathers the results of a suite's cases from their setup reports (on the xdist controller
    too) and prints them last: the report after pytest's summary sections, then the JSON report
    (--report-json) and the one-line summary after pytest's stats line. A suite says what its
    report holds by overriding the methods below the hooks."""

    item_type: type[VerdictItem] = VerdictItem
    heading = ""
    # Where the suite's case files are, and are not (is_case_file): to count its cases among those collected.
    case_directories: tuple[Path, ...] = ()
    excluded_directories: tuple[Path, ...] = ()

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: list[CaseResult] = []
        self.started = time.monotonic()
        self.harness_errors = 0  # setup or teardown errors: a case the harness could not run
        self.failures = 0  # failed calls: a broken requirement (or a warn with --strict)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "setup":
            self.received(getattr(report, self.item_type.report_attribute, None))
        if report.failed:
            if report.when == "call":
                self.failures += 1
            else:
                self.harness_errors += 1

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> Iterator[None]:
        self.before_summary()
        yield
        if not self.results or is_worker(self.config):
            return
        terminalreporter.write_sep("=", self.heading)
        for line in self.header_lines():
            terminalreporter.write_line(line)
        terminalreporter.write_line("")
        colour = terminalreporter.isatty and getattr(terminalreporter._tw, "hasmarkup", False)
        terminalreporter.write_line(self.format_results(colour))

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Iterator[None]:
        yield
        # The outermost wrapper runs after pytest's own stats line: the summary is the last line.
        if is_worker(self.config):
            return
        # Interrupted before a case of this suite finished, it still says so.
        state = interruption_state(self.config)
        planned = self.planned(state)
        # Interrupted while the target was being checked, before collection: still said, without a count.
        told = bool(self.results or (state.interrupted and (planned or planned is None and self.is_run_of_this_suite())))
        lines: list[str] = []
        status = self.exit_status(int(session.exitstatus))
        path = option(self.config, "--report-json", None)
        if told or self.run_error() is not None:
            try:
                lines += self.write_json(path) if path else []
            except OSError as error:
                lines.append(f"fcgispec: cannot write the JSON report {path}: {error.strerror or error}")
                status = EXIT_USAGE if status in (None, EXIT_OK, EXIT_FAILED) else status
        if told:
            lines += self.summary_lines() if self.results else []
            lines.append(format_summary(self.results, duration=time.monotonic() - self.started,
                                        interrupted=state.interrupted, planned=planned))
        lines += self.closing_lines(int(session.exitstatus))
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            for line in lines:
                reporter.write_line(line)
        if status is not None:
            session.exitstatus = status

    def is_run_of_this_suite(self) -> bool:
        """Whether the run's paths hold this suite's cases (known before collection)."""
        return runs_cases_in(self.config, self.case_directories, self.excluded_directories)

    def planned(self, state: RunState) -> int | None:
        """How many of the collected items are this suite's cases (None before collection ended)."""
        if state.collected is None:
            return None
        root = self.config.rootpath
        return sum(is_case_file(root / nodeid.split("::", 1)[0], self.case_directories, self.excluded_directories)
                   for nodeid in state.collected)

    @property
    def interrupted(self) -> bool:
        """Whether the run was interrupted (Ctrl-C, SIGTERM): the report and the JSON say so."""
        return interruption_state(self.config).interrupted

    def exit_status(self, pytest_status: int) -> int | None:
        """The run's exit status (the README's table), or None to keep pytest's.

        0 everything held, 1 a broken requirement (a fail; a warn with --strict), 3 the harness could
        not run (the target before any case, or a case ERROR: 3 wins over 1, the run is incomplete).
        Interruptions (2), internal and usage errors (3, 4) stay as pytest set them.
        """
        if self.interrupted:
            return None
        if self.run_error() is not None:
            return EXIT_HARNESS
        if pytest_status not in (EXIT_OK, EXIT_FAILED) or not self.is_suite_run():
            return None
        if self.harness_errors:
            return EXIT_HARNESS
        return EXIT_FAILED if self.failures else EXIT_OK

    # ---- what a suite's report holds ---------------------------------------------------------
    def is_suite_run(self) -> bool:
        """Whether this run's items were this suite's cases (its exit statuses apply)."""
        return bool(self.results)

    def run_error(self) -> str | None:
        """Why the run tested nothing (a dead target), or None."""
        return None

    def closing_lines(self, pytest_status: int) -> list[str]:
        """The last lines of the run (after the summary)."""
        return []

    def received(self, data: dict[str, Any] | None) -> None:
        """A setup report's result data (None: the report carries none)."""
        if data is not None:
            self.results.append(self.item_type.result_from_data(data))

    def before_summary(self) -> None:
        """Before pytest's own summary sections are written."""

    def header_lines(self) -> list[str]:
        return []

    def summary_lines(self) -> list[str]:
        """Lines printed just before the one-line summary."""
        return []

    def format_results(self, colour: bool) -> str:
        raise NotImplementedError

    def write_json(self, path: str) -> list[str]:
        """Write the JSON report to path; the lines to print before the summary."""
        raise NotImplementedError
