"""The gateway compatibility matrix (`./fcgispec matrix --gateways`, harness/reports/gateway_matrix.py).

The command line's usage errors, the pages written from a canned pair of gateway-suite reports
(no web server runs), and one short live run against nginx restricted to two cases.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.reports import compat_matrix
from harness.reports.compat_matrix import (
    TargetRun, compare_with_expected, format_evidence_markdown, format_html, format_markdown, format_summary,
    write_expected,
)
from harness.reports.gateway_matrix import GATEWAYS, case_run_from_report, gateway_catalogue

ROOT = Path(__file__).resolve().parent.parent
FCGISPEC = str(ROOT / "fcgispec")


def _report_case(case_id: str, verdict: str, **fields: Any) -> dict[str, Any]:
    """One case as the gateway plugin's --report-json writes it."""
    entry: dict[str, Any] = {"id": case_id, "section": "Connections (spec §5.1)", "title": f"title of {case_id}",
                             "requirement": "Spec §5.1: the text | quoted.", "level": "required",
                             "verdict": verdict, "depth": "protocol", "duration": 0.25}
    if verdict != "pass":
        entry.update(expected=["GET 1: 200, complete"], actual=fields.pop("actual", ""), note=fields.pop("note", ""),
                     trace=fields.pop("trace", ""), target_log=fields.pop("target_log", ""))
    entry.update(fields)
    return entry


TRACE = "\n".join([
    "gateway: nginx: fastcgi_pass HOST:PORT",
    "HTTP:",
    "    4.030s GET /sequence/0 -> 200 OK, 0 body bytes (chunked), closed inside the chunked body",
    "application connection 1 (opened at +0.027s)",
    "  +  0.027s <- BEGIN_REQUEST id=1 role=RESPONDER flags=0",
    *[f"  +  0.028s <- PARAMS id=1 len=8 <pair {n}>" for n in range(200)],
    "  +  0.029s -> END_REQUEST id=1 appStatus=0 protocolStatus=REQUEST_COMPLETE",
])


def _canned_runs() -> list[TargetRun]:
    """nginx with a failure and a warning, haproxy with an error: as the matrix reads them from the plugin's JSON."""
    reports = {
        "nginx": [
            _report_case("GW-FCGI-3.3-1", "pass"),
            _report_case("GW-FCGI-5.1-1", "fail", actual="GET 1: closed inside the chunked body", trace=TRACE,
                         target_log="[error] upstream timed out <while reading>"),
            _report_case("GW-FCGI-5.1-2", "warn", actual="KEEP_CONN set, connection closed"),
        ],
        "haproxy": [
            _report_case("GW-FCGI-3.3-1", "pass"),
            _report_case("GW-FCGI-5.1-1", "error", actual="the case broke: KeyError 'x'", trace="gateway: haproxy"),
            _report_case("GW-FCGI-5.1-2", "unsupported", note="keeps its connections"),
            _report_case("GW-RFC9110-9.2.2-3", "pass"),
        ],
    }
    runs = []
    for name, cases in reports.items():
        runs.append(TargetRun(target=name, description=f"{name}/1.0", versions={name: "1.0-1"},
                              capabilities=GATEWAYS.describe(name), started="2026-01-02T03:04:05+00:00",
                              wall_time=12.5, cases=[case_run_from_report(case) for case in cases]))
    return runs


@pytest.mark.parametrize("argv,message", [
    (["--gateways", "nope"], "fcgispec matrix: --gateways: unknown 'nope'; one or more of nginx,"),
    (["--gateways", "nginx,nope"], "fcgispec matrix: --gateways: unknown 'nope'"),
    (["--gateways", "nginx", "--case", "GW-NOPE"], "fcgispec matrix: --case 'GW-NOPE': no gateway case"),
    (["--gateways", "nginx", "--update-docs"], "fcgispec matrix: --update-docs rewrites docs/gateway-compatibility.md"),
    (["--gateways", "--targets", "reference"], "fcgispec matrix: argument --targets: not allowed with argument"),
])
def test_usage_errors_are_one_line_and_status_4(tmp_path: Path, argv: list[str], message: str) -> None:
    run = subprocess.run([FCGISPEC, "matrix", *argv, "--out", str(tmp_path / "out")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    output = (run.stdout + run.stderr).strip()
    assert run.returncode == 4, output
    assert output.startswith(message) and "\n" not in output, output
    assert not (tmp_path / "out").exists()


def test_the_plugin_report_becomes_matrix_cells() -> None:
    nginx, haproxy = _canned_runs()
    failing = nginx.cases[1]
    assert (failing.verdict, failing.summary(), failing.level) == ("fail", "GET 1: closed inside the chunked body",
                                                                    "required")
    assert failing.trace == TRACE and failing.target_log.startswith("[error]")
    assert nginx.counts()["warn"] == 1 and haproxy.counts()["error"] == 1
    seen = case_run_from_report(_report_case("GW-FCGI-3.3-2", "fail", also_seen=[
        {"requirement": "GW-FCGI-5.1-1", "what": "a further request", "evidence": "connection 1"}]))
    assert seen.also_seen == ["GW-FCGI-5.1-1 a further request"]


def test_markdown_and_html_from_canned_runs() -> None:
    runs = _canned_runs()
    expected = {"nginx": {"GW-FCGI-5.1-1": {"verdict": "fail", "why": "nginx reuses nothing but waits for the close"}}}
    markdown = format_markdown(runs, expected=expected, kind=GATEWAYS)
    assert markdown.startswith("# Gateway compatibility matrix\n")
    assert "| gateway | web server | configuration | Debian packages | pass |" in markdown
    assert "| nginx | nginx/1.0 | fastcgi_pass HOST:PORT (no upstream keepalive)" in markdown
    assert ("| GW-FCGI-5.1-1 title of GW-FCGI-5.1-1 | required | [× fail](gateway-compat/nginx.md#gw-fcgi-5-1-1) | "
            "[E error](gateway-compat/haproxy.md#gw-fcgi-5-1-1) |") in markdown
    # A case only one gateway ran is still a row: the catalogue is the runs', never a fixed list.
    assert "| GW-RFC9110-9.2.2-3 title of GW-RFC9110-9.2.2-3 | required | ? | ✔ |" in markdown
    evidence = format_evidence_markdown(runs[0], expected["nginx"], GATEWAYS, matrix_name="gateway-compatibility.md")
    assert '<a id="gw-fcgi-5-1-1"></a>' in evidence and "Why: nginx reuses nothing" in evidence
    assert "Web server: nginx/1.0; configuration: fastcgi_pass" in evidence
    assert "Web server log (tail):" in evidence and "[matrix](../gateway-compatibility.md)" in evidence
    assert "lines omitted" in evidence and "application connection 1" in evidence  # head and tail per connection
    page = format_html(runs, expected=expected, kind=GATEWAYS)
    assert "<title>fcgispec gateway compatibility matrix</title>" in page and "<script src" not in page
    assert "<th>configuration</th>" in page and "class='fail'" in page and "class='error'" in page
    assert "&lt;pair 199&gt;" in page  # the whole trace of every non-pass, unabridged
    assert "upstream timed out &lt;while reading&gt;" in page
    summary = format_summary(runs, GATEWAYS)
    assert "  nginx    1 pass, 1 fail, 1 warn, 0 info, 0 unsupported, 0 error, 0 blocked  (12 s)" in summary
    assert "    fail  GW-FCGI-5.1-1: GET 1: closed inside the chunked body" in summary
    assert "    warn  GW-FCGI-5.1-2: KEEP_CONN set, connection closed" in summary
    assert "    error GW-FCGI-5.1-1: the case broke: KeyError 'x'" in summary


def test_expected_verdicts_and_pages_from_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = _canned_runs()
    path = write_expected(runs[0], tmp_path, GATEWAYS)
    assert path == tmp_path / "fixtures" / "expected" / "gateways" / "nginx.json"
    document = json.loads(path.read_text())
    assert document["gateway"] == "nginx" and document["cases"]["GW-FCGI-3.3-1"] == {"verdict": "pass"}
    assert document["cases"]["GW-FCGI-5.1-2"]["verdict"] == "warn"
    changed = {**document["cases"], "GW-FCGI-5.1-2": {"verdict": "pass"}}
    assert compare_with_expected(runs[0], changed, GATEWAYS) == [
        "GW-FCGI-5.1-2: expected pass, now warn (KEEP_CONN set, connection closed)"]

    out = tmp_path / "out"
    (out / "gateway-runs").mkdir(parents=True)
    for run in runs:
        (out / "gateway-runs" / f"{run.target}.json").write_text(json.dumps(run.to_dict()))
    monkeypatch.setattr(compat_matrix, "ROOT", tmp_path)  # the expected verdicts read are the ones above
    status = compat_matrix.main(["--gateways", "nginx,haproxy", "--out", str(out), "--from-runs", "--check"])
    assert status == 0  # nginx matches its expected verdicts; haproxy has none
    assert (out / "gateways.html").read_text().startswith("<!DOCTYPE html>")
    assert "gateway-compat/nginx.md#gw-fcgi-5-1-1" in (out / "gateways.md").read_text()
    assert (out / "gateway-compat" / "haproxy.md").is_file()
    assert not (out / "index.html").exists() and not (out / "compatibility.md").exists()


def test_a_gateway_that_cannot_be_tested_is_an_error_in_every_case(tmp_path: Path) -> None:
    log = tmp_path / "nginx.log"
    log.write_text("!!!! _pytest.outcomes.Exit: fcgispec: the gateway cannot be tested: no port !!!!\n")
    run = GATEWAYS.read_child("nginx", tmp_path / "missing.json", log, 3, 2.0, ["GW-FCGI-3.3"])
    assert run.start_error == "the gateway suite exited with status 3: fcgispec: the gateway cannot be tested: no port"
    ids = [case.id for case in gateway_catalogue() if case.id.startswith("GW-FCGI-3.3-")]
    assert [case.id for case in run.cases] == ids and {case.verdict for case in run.cases} == {"error"}


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="nginx missing")
def test_live_matrix_of_nginx_on_two_cases(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = subprocess.run([FCGISPEC, "matrix", "--gateways", "nginx", "--out", str(out),
                          "--case", "GW-FCGI-3.3-1", "--case", "GW-FCGI-3.4-1"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stdout + run.stderr
    assert run.stdout.startswith("Gateway compatibility matrix (") and "  nginx  " in run.stdout
    saved = json.loads((out / "gateway-runs" / "nginx.json").read_text())
    assert [case["id"] for case in saved["cases"]] == ["GW-FCGI-3.3-1", "GW-FCGI-3.4-1"]
    assert saved["description"].startswith("nginx/") and saved["wall_time"] > 0
    assert (out / "gateways.html").is_file() and (out / "gateways.md").is_file()
    assert (out / "gateway-compat" / "nginx.md").is_file()
