"""fcgispec's pytest plugin for the HTTP client connection-reuse suite (cases/client/).

Collects the ClientCase objects of cases/client/*.py as items, runs each against a fresh process
of the client adapter chosen with --client (run_client_case, which has the judge give the verdict:
harness/suite/judge.py), and prints the client report (harness/reports/results.py) last. The item
and report machinery, and so how a verdict becomes a pytest outcome, is the server plugin's:
harness/reports/pytest_items.py.

Load it with `-p harness.reports.client_plugin` or `pytest_plugins` in conftest.py. It reads the
server plugin's --case, --strict/--fcgi-strict and --report-json when they exist.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from harness.clients.cases import CLIENT_TIMEOUT, ClientCase, cases_in_client_module, run_client_case
from harness.clients.adapters import ClientSpec, ClientUsageError, parse_client
from harness.reports.pytest_items import (
    EXIT_HARNESS, ResultsReport, VerdictItem, carry_result, is_case_file, is_strict, is_worker, option, runs_cases_in,
    runs_only_cases_in, unmatched_case_selections,
)
from harness.reports.results import CaseResult, format_by_family, write_json_report
from harness.verdicts import HarnessError

ROOT = Path(__file__).resolve().parents[2]
# Client cases live in cases/client/, regressions of real HTTP-client bugs in cases/client/regressions/:
# they run with the client suite (`./fcgispec client`), never in a server run.
CLIENT_CASE_DIRS = (ROOT / "cases" / "client",)
CLIENT_ID_PREFIXES = ("CLI", "REG")
REPORT_ATTRIBUTE = "fcgispec_client_result"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fcgispec-client", "HTTP client connection-reuse suite")
    group.addoption("--client", default="reference", metavar="SPEC",
                    help="the client adapter: reference (default), cmd:'COMMAND', or a named client")
    group.addoption("--client-timeout", type=float, default=CLIENT_TIMEOUT, metavar="SECONDS",
                    help=f"per-request --timeout given to the adapter (default {CLIENT_TIMEOUT:g})")


def _selected(case: ClientCase, prefixes: list[str]) -> bool:
    wanted = [p for p in prefixes if p.startswith(CLIENT_ID_PREFIXES)]
    if prefixes and not wanted:
        return False
    return not wanted or any(_matches(case.id, p) for p in wanted)


def _matches(case_id: str, prefix: str) -> bool:
    """CLI-REUSE-1 selects 1, 1b, 1c (not 10); CLI-REUSE selects all."""
    rest = case_id[len(prefix):] if case_id.startswith(prefix) else None
    return rest is not None and (rest == "" or rest.isalpha() or rest[0] == "-" or prefix.endswith("-"))


def client_case_ids() -> list[str]:
    from harness.suite.case import import_case_module

    ids: list[str] = []
    for directory in CLIENT_CASE_DIRS:
        for path in sorted(directory.rglob("*.py")):
            if is_case_file(path, CLIENT_CASE_DIRS):
                ids += [case.id for case in cases_in_client_module(import_case_module(path))]
    return ids


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


class ClientCaseFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from harness.suite.case import import_case_module

        module = import_case_module(Path(self.path))
        prefixes = list(option(self.config, "--case", []) or [])
        for case in sorted(cases_in_client_module(module), key=lambda c: c.sort_key):
            if _selected(case, prefixes):
                yield ClientCaseItem.from_parent(self, name=case.id, case=case)


class ClientCaseItem(VerdictItem):
    case_type = ClientCase
    case_fields = ("id", "section", "family_order", "title", "requirement", "level", "timeout", "mistakes")
    report_attribute = REPORT_ATTRIBUTE
    marker = "fcgispec_client"

    def setup(self) -> None:
        session: ClientSession = self.config.stash[_SESSION_KEY]
        try:
            spec = session.client_spec()
        except HarnessError as error:
            raise self.not_run(f"client adapter unusable: {error}") from None
        self.outcome = run_client_case(self.case, spec, client_timeout=self.config.getoption("--client-timeout"))
        self.judged()

    def runtest(self) -> None:
        self.tell_verdict()



_SESSION_KEY = pytest.StashKey[ClientSession]()


def format_client_report(results: list[CaseResult], *, colour: bool = False) -> str:
    """Cases grouped by scenario family, in catalogue order, details under non-passing ones."""
    return format_by_family(results, colour=colour)


class ClientResults(ResultsReport):
    item_type = ClientCaseItem
    heading = "fcgispec client report"
    case_directories = CLIENT_CASE_DIRS

    def header_lines(self) -> list[str]:
        return [f"Client: {self.config.getoption('--client')}"]

    def format_results(self, colour: bool) -> str:
        return format_client_report(self.results, colour=colour)

    def write_json(self, path: str) -> list[str]:
        client = self.config.getoption("--client")
        meta = {"client": client, "wall_time": round(time.monotonic() - self.started, 3), "interrupted": self.interrupted}
        write_json_report(path, self.results, target=f"client {client}", strict=is_strict(self.config),  # type: ignore[arg-type]
                          meta=meta)
        return []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fcgispec_client: an HTTP client connection-reuse case")
    session = config.stash[_SESSION_KEY] = ClientSession(config)
    if runs_cases_in(config, CLIENT_CASE_DIRS) and not is_worker(config):
        # Checked once, before the cases: a wrong --client is one line, not an error per case.
        try:
            session.client_spec()
        except ClientUsageError as error:
            raise pytest.UsageError(f"--client: {error}") from None
        except HarnessError as error:
            pytest.exit(f"fcgispec: the client cannot run: {error}", returncode=EXIT_HARNESS)
        unmatched = unmatched_case_selections(
            [p for p in option(config, "--case", []) or []], client_case_ids(), lambda case_id, p: _matches(case_id, p))
        if unmatched and runs_only_cases_in(config, CLIENT_CASE_DIRS):
            raise pytest.UsageError(f"--case {unmatched[0]!r}: no client case's id is or starts with it "
                                    "(client case ids look like CLI-REUSE-7, CLI-REUSE-7b, REG-...)")
    config.pluginmanager.register(ClientResults(config), "fcgispec-client-results")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not is_case_file(file_path, CLIENT_CASE_DIRS):
        return None
    return ClientCaseFile.from_parent(parent, path=file_path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    carry_result(outcome.get_result(), item, call, ClientCaseItem)
