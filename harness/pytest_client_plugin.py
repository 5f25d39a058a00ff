"""fcgispec's pytest plugin for the HTTP client connection-reuse suite (cases/client/).

Collects the ClientCase objects of cases/client/*.py as items, runs each against a fresh process
of the client adapter chosen with --client, maps verdicts onto pytest outcomes the way the server
plugin does (PASS/INFO pass, FAIL fails, WARN passes unless --strict, UNSUPPORTED skips, ERROR is
a setup error), and prints the client report (harness/report.py) last.

Load it with `-p harness.pytest_client_plugin` or `pytest_plugins` in conftest.py. It reads the
server plugin's --case, --strict/--fcgi-strict and --report-json when they exist.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.client_cases import CLIENT_TIMEOUT, ClientCase, cases_in_client_module, run_client_case
from harness.clients import ClientSpec, parse_client
from harness.report import CaseResult, format_case_line, format_details, format_summary, write_json_report
from harness.verdicts import HarnessError, Level, Outcome, Verdict

ROOT = Path(__file__).resolve().parent.parent
# Client cases live in cases/client/; regressions of real HTTP-client bugs sit with the
# other regressions in cases/regressions/ (the server plugin skips their ClientCase objects).
CLIENT_CASE_DIRS = (ROOT / "cases" / "client", ROOT / "cases" / "regressions")
CLIENT_ID_PREFIXES = ("CLI", "REG")
REPORT_ATTRIBUTE = "fcgispec_client_result"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fcgispec-client", "HTTP client connection-reuse suite")
    group.addoption("--client", default="reference", metavar="SPEC",
                    help="the client adapter: reference (default), cmd:'COMMAND', or a named client")
    group.addoption("--client-timeout", type=float, default=CLIENT_TIMEOUT, metavar="SECONDS",
                    help=f"per-request --timeout given to the adapter (default {CLIENT_TIMEOUT:g})")


def _option(config: pytest.Config, name: str, default: Any) -> Any:
    try:
        return config.getoption(name)
    except ValueError:
        return default


def _strict(config: pytest.Config) -> bool:
    return bool(_option(config, "fcgi_strict", False) or _option(config, "strict", False))


def _selected(case: ClientCase, prefixes: list[str]) -> bool:
    wanted = [p for p in prefixes if p.startswith(CLIENT_ID_PREFIXES)]
    if prefixes and not wanted:
        return False
    return not wanted or any(_matches(case.id, p) for p in wanted)


def _matches(case_id: str, prefix: str) -> bool:
    """CLI-REUSE-1 selects 1, 1b, 1c (not 10); CLI-REUSE selects all."""
    rest = case_id[len(prefix):] if case_id.startswith(prefix) else None
    return rest is not None and (rest == "" or rest.isalpha() or rest[0] == "-" or prefix.endswith("-"))


class ClientSession:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.spec: ClientSpec | None = None
        self.error: str | None = None

    def client_spec(self) -> ClientSpec:
        if self.error is not None:
            raise HarnessError(self.error)
        if self.spec is None:
            try:
                self.spec = parse_client(self.config.getoption("--client"), ROOT)
            except HarnessError as error:
                self.error = str(error)
                raise
        return self.spec


class CaseFailed(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class ClientCaseFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from harness.case import import_case_module

        module = import_case_module(Path(self.path))
        prefixes = list(_option(self.config, "--case", []) or [])
        for case in sorted(cases_in_client_module(module), key=lambda c: c.sort_key):
            if _selected(case, prefixes):
                yield ClientCaseItem.from_parent(self, name=case.id, case=case)


class ClientCaseItem(pytest.Item):
    def __init__(self, *, case: ClientCase, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.outcome: Outcome | None = None
        self.add_marker(pytest.mark.fcgispec_client)

    def setup(self) -> None:
        session: ClientSession = self.config.stash[_SESSION_KEY]
        try:
            spec = session.client_spec()
        except HarnessError as error:
            self.outcome = Outcome(Verdict.ERROR, actual=f"client adapter unusable: {error}")
            raise CaseFailed(self._details()) from None
        self.outcome = run_client_case(self.case, spec, client_timeout=self.config.getoption("--client-timeout"))
        self.user_properties.append(("fcgispec_verdict", self.outcome.verdict.value))
        if self.outcome.verdict is Verdict.ERROR:
            raise CaseFailed(self._details())

    def runtest(self) -> None:
        assert self.outcome is not None
        verdict = self.outcome.verdict
        if verdict is Verdict.FAIL or (verdict is Verdict.WARN and _strict(self.config)):
            raise CaseFailed(self._details())
        if verdict is Verdict.UNSUPPORTED:
            pytest.skip(f"unsupported: {self.outcome.note}")

    def _details(self) -> str:
        assert self.outcome is not None
        head = f"{self.outcome.verdict.value.upper()} {self.case.id} {self.case.title}"
        return "\n".join([head, *format_details(CaseResult(self.case, self.outcome))])  # type: ignore[arg-type]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CaseFailed):
            return excinfo.value.text
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return Path(self.path), None, f"{self.case.id} {self.case.title}"


_SESSION_KEY = pytest.StashKey[ClientSession]()


def format_client_report(results: list[CaseResult], *, colour: bool = False) -> str:
    """Cases grouped by scenario family, in catalogue order, details under non-passing ones."""
    lines: list[str] = []
    family: str | None = None
    for result in sorted(results, key=lambda r: r.case.sort_key):
        if result.case.section != family:
            family = result.case.section
            if lines:
                lines.append("")
            lines.append(family or "Other")
        lines.append(format_case_line(result, colour))
        if result.outcome.verdict is not Verdict.UNSUPPORTED:
            lines.extend(format_details(result))
    return "\n".join(lines)


class ClientResults:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: list[CaseResult] = []
        self.started = time.monotonic()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTRIBUTE, None)
        if data is not None and report.when == "setup":
            self.results.append(_result_from_dict(data))

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> Iterator[None]:
        yield
        if not self.results or hasattr(self.config, "workerinput"):
            return
        terminalreporter.write_sep("=", "fcgispec client report")
        terminalreporter.write_line(f"Client: {self.config.getoption('--client')}")
        terminalreporter.write_line("")
        colour = terminalreporter.isatty and getattr(terminalreporter._tw, "hasmarkup", False)
        terminalreporter.write_line(format_client_report(self.results, colour=colour))

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Iterator[None]:
        yield
        if not self.results or hasattr(self.config, "workerinput"):
            return
        path = _option(self.config, "--report-json", None)
        client = self.config.getoption("--client")
        if path:
            write_json_report(path, self.results, target=f"client {client}", strict=_strict(self.config),  # type: ignore[arg-type]
                              meta={"client": client, "wall_time": round(time.monotonic() - self.started, 3)})
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(format_summary(self.results, duration=time.monotonic() - self.started))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fcgispec_client: an HTTP client connection-reuse case")
    config.stash[_SESSION_KEY] = ClientSession(config)
    config.pluginmanager.register(ClientResults(config), "fcgispec-client-results")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".py" or file_path.name.startswith(("test_", "_")):
        return None
    resolved = file_path.resolve()
    if not any(resolved.is_relative_to(directory) for directory in CLIENT_CASE_DIRS):
        return None
    return ClientCaseFile.from_parent(parent, path=file_path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if call.when == "setup" and isinstance(item, ClientCaseItem) and item.outcome is not None:
        setattr(report, REPORT_ATTRIBUTE, _result_to_dict(item.case, item.outcome))
    if call.when == "setup" and call.excinfo is not None and isinstance(call.excinfo.value, CaseFailed):
        report.longrepr = call.excinfo.value.text


def _result_to_dict(case: ClientCase, outcome: Outcome) -> dict[str, Any]:
    return {
        "id": case.id, "section": case.section, "family_order": case.family_order, "title": case.title,
        "requirement": case.requirement, "level": case.level.value, "timeout": case.timeout,
        "mistakes": list(case.mistakes), "verdict": outcome.verdict.value, "expected": list(outcome.expected),
        "actual": outcome.actual, "note": outcome.note, "duration": outcome.duration, "trace": outcome.trace,
        "target_log": outcome.target_log,
    }


def _not_runnable(ctx: Any) -> None:
    raise RuntimeError("a case rebuilt from a report cannot run")


def _result_from_dict(data: dict[str, Any]) -> CaseResult:
    case = ClientCase(
        id=data["id"], title=data["title"], requirement=data["requirement"], level=Level(data["level"]),
        run=_not_runnable, timeout=data["timeout"], mistakes=tuple(data["mistakes"]), section=data["section"],
        family_order=data["family_order"],
    )
    outcome = Outcome(
        Verdict(data["verdict"]), expected=list(data["expected"]), actual=data["actual"], note=data["note"],
        duration=data["duration"], trace=data["trace"], target_log=data["target_log"],
    )
    return CaseResult(case, outcome)  # type: ignore[arg-type]
