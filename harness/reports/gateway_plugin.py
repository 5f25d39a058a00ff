"""fcgispec's pytest plugin for the gateway suite (cases/gateway/): web servers judged as FastCGI clients.

Collects the GatewayCase objects of cases/gateway/*.py as items, runs each against a fresh
instance of the gateway chosen with --gateway in front of a fresh scripted application
(run_gateway_case, which has the judge give the verdict: harness/suite/judge.py), and prints the
gateway report (harness/reports/results.py) last. The item and report machinery, and so how a
verdict becomes a pytest outcome, is the server plugin's: harness/reports/pytest_items.py. It
reads the server plugin's --case, --exclude-file, --strict/--fcgi-strict and --report-json.

Before the first case the gateway is started once in front of the plain application and sent one
GET: a gateway that cannot start, or passes nothing to the application, ends the run with one line
and status 3 instead of an error per case.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from harness.gateways.cases import GatewayCase, cases_in_gateway_module, run_gateway_case
from harness.gateways.gateway import GatewaySpec, GatewayUsageError, parse_gateway
from harness.reports.pytest_items import (
    EXIT_HARNESS, ResultsReport, VerdictItem, carry_result, is_case_file, is_strict, is_worker, option, runs_cases_in,
    runs_only_cases_in, unmatched_case_selections,
)
from harness.reports.results import CaseResult, format_by_family, write_json_report
from harness.suite.exclusions import ExclusionError, exclusion_for, load_exclusions
from harness.verdicts import HarnessError

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_CASE_DIRS = (ROOT / "cases" / "gateway",)
GATEWAY_ID_PREFIX = "GW"
REPORT_ATTRIBUTE = "fcgispec_gateway_result"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fcgispec-gateway", "gateway suite: web servers as FastCGI clients")
    group.addoption("--gateway", default=None, metavar="SPEC",
                    help="the gateway: a named one (nginx, nginx-keepconn, apache2, apache2-reuse, lighttpd, h2o, "
                         "h2o-keepalive, haproxy, haproxy-no-keepconn, haproxy-mpxs, caddy) or cmd:'COMMAND' with {http_port}, "
                         "{app_host}, {app_port}")


def _matches(case_id: str, selection: str) -> bool:
    """GW-FCGI-3.3 selects every GW-FCGI-3.3-n, GW-RFC3875-4.1 every GW-RFC3875-4.1.x-n, GW-FCGI-3.3-1 only itself."""
    return case_id == selection or case_id.startswith(selection.rstrip("-") + "-") or case_id.startswith(selection + ".")


def _selected(case: GatewayCase, prefixes: list[str]) -> bool:
    return not prefixes or any(_matches(case.id, p) for p in prefixes)


def gateway_case_ids() -> list[str]:
    from harness.suite.case import import_case_module

    ids: list[str] = []
    for directory in GATEWAY_CASE_DIRS:
        for path in sorted(directory.glob("*.py")):
            if is_case_file(path, GATEWAY_CASE_DIRS):
                ids += [case.id for case in cases_in_gateway_module(import_case_module(path))]
    return ids


class GatewaySession:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.spec: GatewaySpec | None = None
        self.exclusions: dict[str, str] = {}
        self.active = False  # the run takes the gateway cases

    def gateway_spec(self) -> GatewaySpec:
        if self.spec is None:
            given = self.config.getoption("--gateway")
            if not given:
                raise GatewayUsageError("the gateway suite needs --gateway NAME or --gateway cmd:COMMAND")
            self.spec = parse_gateway(given)
        return self.spec


class GatewayCaseFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from harness.suite.case import import_case_module

        module = import_case_module(Path(self.path))
        prefixes = list(option(self.config, "--case", []) or [])
        for case in sorted(cases_in_gateway_module(module), key=lambda c: c.sort_key):
            if _selected(case, prefixes):
                yield GatewayCaseItem.from_parent(self, name=case.id, case=case)


class GatewayCaseItem(VerdictItem):
    case_type = GatewayCase
    case_fields = ("id", "section", "family_order", "title", "requirement", "level", "timeout", "bugs", "relies_on",
                   "allowed", "same_requirement_as")
    report_attribute = REPORT_ATTRIBUTE
    marker = "fcgispec_gateway"

    def setup(self) -> None:
        session: GatewaySession = self.config.stash[_SESSION_KEY]
        try:
            spec = session.gateway_spec()
        except HarnessError as error:
            raise self.not_run(f"gateway unusable: {error}") from None
        self.outcome = run_gateway_case(self.case, spec.make, excluded=exclusion_for(self.case.id, session.exclusions))
        self.judged()

    def runtest(self) -> None:
        self.tell_verdict()


_SESSION_KEY = pytest.StashKey[GatewaySession]()


def format_gateway_report(results: list[CaseResult], *, colour: bool = False) -> str:
    """Cases grouped by family, in catalogue order, details under non-passing ones."""
    return format_by_family(results, colour=colour)


class GatewayResults(ResultsReport):
    item_type = GatewayCaseItem
    heading = "fcgispec gateway report"
    case_directories = GATEWAY_CASE_DIRS

    def header_lines(self) -> list[str]:
        session: GatewaySession = self.config.stash[_SESSION_KEY]
        lines = [f"Gateway: {self.config.getoption('--gateway')}"]
        if session.spec is not None:
            gateway = session.spec.make()
            lines.append(f"  {gateway.description} ({gateway.version()})")
        return lines

    def format_results(self, colour: bool) -> str:
        return format_gateway_report(self.results, colour=colour)

    def write_json(self, path: str) -> list[str]:
        gateway = self.config.getoption("--gateway")
        meta = {"gateway": gateway, "wall_time": round(time.monotonic() - self.started, 3),
                "interrupted": self.interrupted}
        write_json_report(path, self.results, target=f"gateway {gateway}", strict=is_strict(self.config),
                          meta=meta)
        return []


def check_gateway_before_the_cases(spec: GatewaySpec) -> str | None:
    """Starts the gateway once in front of the plain application and sends one GET; why it is unusable, or None."""
    from harness.gateways.application import ScriptedApp
    from harness.gateways.gateway import GatewayStartError
    from harness.gateways.http_side import HttpConnection, HttpSideError

    app = ScriptedApp()
    gateway = spec.make()
    try:
        gateway.start(app.host, app.port)
        with HttpConnection(gateway.http_port, timeout=gateway.read_timeout * 2 + 4) as conn:
            answer = conn.request("GET", "/fcgispec-first-contact")
        if not app.requests():
            return (f"the gateway passed no request to the application at {app.host}:{app.port} "
                    f"(its HTTP answer: {answer.describe()})")
        return None
    except GatewayStartError as error:
        return str(error)
    except HttpSideError as error:
        return str(error)
    finally:
        gateway.stop()
        app.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fcgispec_gateway: a gateway (web server as FastCGI client) case")
    session = config.stash[_SESSION_KEY] = GatewaySession(config)
    # A run of cases/ as a whole takes the gateway cases only when --gateway says which gateway.
    session.active = runs_only_cases_in(config, GATEWAY_CASE_DIRS) or (
        runs_cases_in(config, GATEWAY_CASE_DIRS) and bool(config.getoption("--gateway")))
    if session.active:
        exclude_file = option(config, "--exclude-file", None)
        try:
            session.exclusions = dict(load_exclusions(exclude_file)) if exclude_file else {}
        except (ExclusionError, OSError) as error:
            raise pytest.UsageError(f"--exclude-file: {error}") from None
        try:
            spec = session.gateway_spec()
        except GatewayUsageError as error:
            raise pytest.UsageError(f"--gateway: {error}") from None
        unmatched = unmatched_case_selections(option(config, "--case", []) or [], gateway_case_ids(), _matches)
        if unmatched and runs_only_cases_in(config, GATEWAY_CASE_DIRS):
            raise pytest.UsageError(f"--case {unmatched[0]!r}: no gateway case's id is or starts with it "
                                    "(gateway case ids look like GW-FCGI-3.3-1, GW-RFC3875-6.2.3-1, GW-REG-haproxy-743)")
        if not is_worker(config) and not option(config, "collectonly", False):
            problem = check_gateway_before_the_cases(spec)
            if problem is not None:
                pytest.exit(f"fcgispec: the gateway cannot be tested: {problem}", returncode=EXIT_HARNESS)
    config.pluginmanager.register(GatewayResults(config), "fcgispec-gateway-results")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not is_case_file(file_path, GATEWAY_CASE_DIRS) or not parent.config.stash[_SESSION_KEY].active:
        return None
    return GatewayCaseFile.from_parent(parent, path=file_path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    carry_result(outcome.get_result(), item, call, GatewayCaseItem)
