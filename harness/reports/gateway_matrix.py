"""The gateway compatibility matrix: the gateway suite against every named gateway.

    ./fcgispec matrix --gateways [nginx,apache2,...] [--out DIR] [--jobs N] [--case PREFIX]
                      [--update-docs | --docs PATH | --no-docs] [--update-expected] [--check]

The matrix machinery is the server suite's (harness/reports/compat_matrix.py); this module says
what differs for gateways (GatewayMatrix). Each gateway runs in a child process of its own, one at
a time by default (the cases have timing: two web servers at once on a small machine would skew
them), as `./fcgispec gateway --gateway NAME` runs them (pytest and the gateway plugin, the report
in JSON). It writes:

- DIR/gateway-runs/NAME.json: per case the verdict, what was expected and seen, and the trace
  (the HTTP requests and answers, and the application's record ledger of every connection);
- DIR/gateways.html: the sortable page, every cell expandable to its trace;
- DIR/gateways.md and DIR/gateway-compat/NAME.md: the Markdown matrix and each gateway's evidence;
  --update-docs writes the committed docs/gateway-compatibility.md and docs/gateway-compat/ instead.

fixtures/expected/gateways/NAME.json holds each gateway's expected verdicts (--update-expected
writes them, --check compares a run with them). The case catalogue is read from cases/gateway/
on every run: a case added there is in the next matrix.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.gateways.cases import GatewayCase, cases_in_gateway_module, gateway_id_key
from harness.gateways.named import NAMED_GATEWAYS, WebServerGateway
from harness.reports.compat_matrix import (
    EXPECTED_DIR, ROOT, VERDICT_ORDER, CaseRun, MatrixKind, TargetRun, _md_escape, select_case_ids,
)
from harness.reports.pytest_items import is_case_file

GATEWAY_CASES = Path("cases") / "gateway"
GATEWAY_DOCS_FILE = Path("docs") / "gateway-compatibility.md"
# Kept in the run as the targets' runs keep theirs: the tail is what explains a failure.
LOG_TAIL = 2000


def gateway_catalogue(root: Path = ROOT) -> list[GatewayCase]:
    """The gateway cases as cases/gateway/ holds them now, in catalogue order."""
    from harness.suite.case import import_case_module

    directory = root / GATEWAY_CASES
    cases: list[GatewayCase] = []
    for path in sorted(directory.glob("*.py")):
        if is_case_file(path, (directory.resolve(),)):
            cases += cases_in_gateway_module(import_case_module(path))
    return sorted(cases, key=lambda case: case.sort_key)


def web_server_version(gateway: type[WebServerGateway]) -> str:
    """What the web server says its version is, or why it cannot say."""
    try:
        return gateway.version()
    except Exception as error:  # not installed, or an unexpected banner: the matrix still shows the rest
        return f"unknown ({error})"


def gateway_package_versions(gateway: type[WebServerGateway]) -> dict[str, str]:
    """The Debian package that owns the web server's program, with its version."""
    try:
        program = os.path.realpath(gateway.executable())
    except Exception:
        return {gateway.package or gateway.server: "not installed"}
    owner = subprocess.run(["dpkg-query", "-S", program], capture_output=True, text=True, check=False)
    packages = [owner.stdout.split(":", 1)[0].strip()] if owner.returncode == 0 else []
    packages = [p for p in dict.fromkeys([*packages, gateway.package]) if p]
    versions: dict[str, str] = {}
    for package in packages:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                              check=False)
        if done.returncode == 0 and done.stdout.strip():
            versions[package] = done.stdout.strip()
    return versions


def case_run_from_report(entry: Mapping[str, Any]) -> CaseRun:
    """One case of the gateway plugin's JSON report (harness/reports/results.py json_report) as a matrix cell."""
    return CaseRun(
        id=entry["id"],
        section=entry.get("section", ""),
        title=entry.get("title", ""),
        level=entry.get("level", ""),
        requirement=entry.get("requirement", ""),
        verdict=entry["verdict"],
        expected=list(entry.get("expected", [])),
        actual=entry.get("actual", ""),
        note=entry.get("note", ""),
        duration=round(float(entry.get("duration", 0.0)), 3),
        trace=entry.get("trace", ""),
        target_log=(entry.get("target_log") or "")[-LOG_TAIL:],
        also_seen=[f"{seen['requirement']} {seen['what']}" for seen in entry.get("also_seen", [])],
        blocked_by=entry.get("blocked_by") or "",
        depth=entry.get("depth", ""),
    )


def _why_it_did_not_run(log_path: Path | None, returncode: int | None) -> str:
    """The child's own one-line reason (the plugin's "fcgispec: ..." line), else its exit status."""
    lines: list[str] = []
    if log_path is not None and log_path.exists():
        lines = [line.strip(" !") for line in log_path.read_text(errors="replace").splitlines() if line.strip(" !")]
    said = [line for line in lines if "fcgispec:" in line]
    line = (said or lines or [""])[-1]
    line = re.sub(r"^.*?(fcgispec:)", r"\1", line)
    status = f"the gateway suite exited with status {returncode}"
    return f"{status}: {line}" if line else status


class GatewayMatrix(MatrixKind):
    """The gateway suite's matrix: what differs from the server suite's."""

    noun = "gateway"
    plural = "gateways"
    option = "--gateways"
    title = "Gateway compatibility matrix"
    docs_file = GATEWAY_DOCS_FILE
    evidence_dir_name = "gateway-compat"
    markdown_name = "gateways.md"
    html_name = "gateways.html"
    runs_dir_name = "gateway-runs"
    expected_dir = EXPECTED_DIR / "gateways"
    slow: Mapping[str, int] = {}
    lists_deviating_cases = True
    shows_pass_depths = False
    trace_block_start = re.compile(r"application connection ")
    trace_legend = ("the suite's HTTP requests and what came back, then per connection to the application "
                    "`<-` what the gateway sent, `->` what the application answered")
    setup_heading = "configuration"
    legend = ("Legend: ✔ pass, × fail (a required behaviour broken), ! warn (a recommendation missed), i info (the "
              "texts leave it open; what the gateway did is recorded), - unsupported (something this gateway, in this "
              "configuration, does not do, such as keeping its connections, so the case has nothing to check), "
              "E error (the harness could not run the case), ⊘ blocked (another requirement's deviation kept the case "
              "from its own).")
    log_label = "Web server log"
    every_one_hint = "run it with --gateways alone"
    expected_note = ("Expected verdicts of the gateway suite against this gateway (./fcgispec matrix --gateways "
                     "--check); 'why' explains every verdict that is not a pass.")
    child_log = True

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(NAMED_GATEWAYS)

    def default_jobs(self) -> int:
        return 1

    def case_sort_key(self, case_id: str) -> Any:
        return gateway_id_key(case_id)

    def case_ids(self, root: Path = ROOT) -> list[str]:
        return [case.id for case in gateway_catalogue(root)]

    def describe(self, name: str) -> str:
        return NAMED_GATEWAYS[name].config_summary if name in NAMED_GATEWAYS else name

    def setup_line(self, run: TargetRun) -> str:
        return f"Web server: {run.description or 'unknown'}; configuration: {self.describe(run.target)}"

    def markdown_intro(self) -> str:
        return ("The gateway suite (`cases/gateway/`) against every named gateway: a web server, in one configuration "
                "people deploy, in front of the suite's scripted FastCGI application. Generated by "
                "`./fcgispec matrix --gateways --update-docs` (`/usr/bin/python3 -m harness.reports.compat_matrix "
                "--gateways`). A cell that is not a pass links to its evidence: what the case expected, what it saw, "
                "the HTTP exchange and the records the application exchanged with the gateway. "
                "`fixtures/expected/gateways/NAME.json` holds each gateway's expected verdicts.")

    def markdown_subject_table(self, runs: Sequence[TargetRun]) -> list[str]:
        lines = [
            "| gateway | web server | configuration | Debian packages | " + " | ".join(VERDICT_ORDER) + " | run time |",
            "|---|---|---|---|" + "---|" * len(VERDICT_ORDER) + "---|",
        ]
        for run in runs:
            counts = run.counts()
            versions = ", ".join(f"{p} {v}" for p, v in run.versions.items())
            lines.append(
                f"| {run.target} | {_md_escape(run.description)} | {_md_escape(self.describe(run.target))} | "
                f"{_md_escape(versions)} | " + " | ".join(str(counts[v]) for v in VERDICT_ORDER)
                + f" | {run.wall_time:.0f} s |"
            )
        return lines

    def html_intro(self) -> str:
        return ("<p>The gateway suite against each named gateway (a web server in front of the suite's FastCGI "
                "application). Click a column heading to sort (by verdict in a gateway's column: failures first). "
                "Click a cell to see what was expected, what was seen, the HTTP exchange and the records the "
                "application exchanged with the gateway (<code>&lt;-</code> sent by the gateway, <code>-&gt;</code> "
                "by the application).</p>")

    def child(self, name: str, json_path: Path, *, base_wait: float, cases: Sequence[str],
              root: Path = ROOT) -> list[str]:
        return [sys.executable, "-m", "pytest", "-c", str(root / "pytest.ini"), "--rootdir", str(root),
                str(root / GATEWAY_CASES), "-q", "--gateway", name, "--report-json", str(json_path),
                "-p", "no:cacheprovider", *[word for case in cases for word in ("--case", case)]]

    def read_child(self, name: str, json_path: Path, log_path: Path | None, returncode: int | None,
                   wall_time: float, cases: Sequence[str] = ()) -> TargetRun:
        gateway = NAMED_GATEWAYS[name]
        began = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=wall_time)
        run = TargetRun(
            target=name,
            description=web_server_version(gateway),
            versions=gateway_package_versions(gateway),
            capabilities=gateway.config_summary,
            started=began.isoformat(timespec="seconds"),
            # The matrix's own clock: what the gateway cost it, pytest's start and the first contact included.
            wall_time=round(wall_time, 2),
        )
        report: dict[str, Any] | None = None
        try:
            report = json.loads(json_path.read_text())
        except (OSError, ValueError):
            report = None
        if report is not None and not report.get("interrupted"):
            run.cases = [case_run_from_report(entry) for entry in report.get("cases", [])]
            return run
        run.start_error = ("the gateway suite was interrupted" if report is not None
                           else _why_it_did_not_run(log_path, returncode))
        # Every case an error, as for a target that cannot start: the matrix shows where the run stopped.
        catalogue = gateway_catalogue()
        wanted = set(select_case_ids([case.id for case in catalogue], cases))
        run.cases = [CaseRun(id=case.id, section=case.section, title=case.title, level=case.level.value,
                             requirement=case.requirement, verdict="error",
                             actual=f"the gateway could not be tested: {run.start_error}")
                     for case in catalogue if case.id in wanted]
        return run


GATEWAYS = GatewayMatrix()
