"""The compatibility matrix (harness/reports/compat_matrix.py) and the expected results of each target.

For every installed named target (and the reference), the whole server suite runs and each
verdict is compared with fixtures/expected/NAME.json: a case whose verdict changed fails the
test with both verdicts, what the case saw and the recorded explanation, so that a change in
a server's behaviour (a new Debian version) or in the suite's judgement is noticed. The
pages (Markdown, evidence, HTML) are checked on a small synthetic run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.reports import compat_matrix as compat_matrix
from harness.reports.compat_matrix import (
    ALL_TARGETS,
    CaseRun,
    TargetRun,
    accepted_verdicts,
    compare_with_expected,
    expected_path,
    format_evidence_markdown,
    format_html,
    format_markdown,
    load_expected,
    run_target,
)
from harness.targets.named import NAMED_TARGETS
from harness.verdicts import Verdict

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = {verdict.value for verdict in Verdict}


def _skip_unless_installed(name: str) -> None:
    if name == "reference":
        return
    missing = NAMED_TARGETS[name].missing()
    if missing:
        pytest.skip(f"{', '.join(missing)} missing (apt-get install {' '.join(NAMED_TARGETS[name].packages)})")


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_expected_file_is_well_formed(name: str) -> None:
    path = expected_path(name, ROOT)
    assert path.is_file(), f"{path} missing: python3 -m harness.reports.compat_matrix --targets {name} --update-expected"
    document = json.loads(path.read_text())
    assert document["target"] == name
    for case_id, entry in document["cases"].items():
        assert re.match(r"^FCGI-[0-9A-Z.]+-[0-9]+$", case_id), case_id
        verdicts = accepted_verdicts(entry)
        assert verdicts and set(verdicts) <= VERDICTS, f"{case_id}: {entry}"
        if verdicts != ["pass"]:
            why = entry.get("why", "")
            assert why and not why.startswith("TODO") and "\n" not in why, f"{case_id}: needs a one-line 'why'"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ALL_TARGETS)
def test_target_matches_expected_results(name: str) -> None:
    _skip_unless_installed(name)
    run = run_target(name, ROOT)
    assert not run.start_error, run.start_error
    problems = compare_with_expected(run, load_expected(name, ROOT))
    assert not problems, (
        f"{name}: {len(problems)} verdicts differ from {expected_path(name, Path('.'))} "
        "(a changed server, or a changed judgement: fix it, or update the file with "
        "`python3 -m harness.reports.compat_matrix --targets NAME --update-expected` and explain):\n  " + "\n  ".join(problems)
    )


def _synthetic() -> list[TargetRun]:
    def case(case_id: str, verdict: str, **extra: object) -> CaseRun:
        return CaseRun(id=case_id, section=case_id.split("-")[1], title=f"title of {case_id}", level="required",
                       requirement="The spec | says so.", verdict=verdict, **extra)  # type: ignore[arg-type]

    trace = "  [connection 1]\n" + "\n".join(f"      {i}.0ms > STDIN id=1 len=1 \"x\"" for i in range(300))
    return [
        TargetRun(target="reference", cases=[case("FCGI-3.3-2", "pass"), case("FCGI-3.3-10", "pass")], wall_time=1.0),
        TargetRun(
            target="php-fpm",
            versions={"php8.2-fpm": "8.2.1"},
            cases=[
                case("FCGI-3.3-2", "fail", expected=["an empty STDOUT record"], actual="END_REQUEST <alone>",
                     trace=trace, target_log="worker said <x>"),
                case("FCGI-3.3-10", "unsupported", note="the probe app on this target cannot do err"),
            ],
            wall_time=2.0,
        ),
    ]


def test_compare_reports_changed_new_and_vanished_cases() -> None:
    run = _synthetic()[1]
    expected = {
        "FCGI-3.3-2": {"verdict": "pass"},
        "FCGI-3.3-10": {"verdict": ["unsupported", "info"], "why": "no err on this platform"},
        "FCGI-9-1": {"verdict": "pass"},
    }
    problems = compare_with_expected(run, expected)
    assert len(problems) == 2
    assert problems[0].startswith("FCGI-3.3-2: expected pass, now fail (END_REQUEST <alone>)")
    assert problems[1].startswith("FCGI-9-1: expected pass but the case did not run")
    run.cases.append(CaseRun(id="FCGI-9-2", section="9", title="t", level="required", requirement="r", verdict="warn",
                             actual="late"))
    assert any(p.startswith("FCGI-9-2: warn (not in the expected results") for p in compare_with_expected(run, expected))
    expected["FCGI-3.3-2"] = {"verdict": "fail", "why": "no empty STDOUT"}
    expected["FCGI-3.3-10"] = {"verdict": "pass"}
    assert compare_with_expected(run, expected)[0] == (
        "FCGI-3.3-10: expected pass, now unsupported (the probe app on this target cannot do err)"
    )


def test_pages_link_every_non_pass_cell_to_its_evidence() -> None:
    runs = _synthetic()
    expected = {"php-fpm": {"FCGI-3.3-2": {"verdict": "fail", "why": "php-fpm sends no empty STDOUT"}}}
    markdown = format_markdown(runs, expected=expected)
    assert "| FCGI-3.3-2 title of FCGI-3.3-2 | required | ✔ | [× fail](compat/php-fpm.md#fcgi-3-3-2) |" in markdown
    assert "[- unsupported](compat/php-fpm.md#fcgi-3-3-10)" in markdown
    assert "| php-fpm |" in markdown and "php8.2-fpm 8.2.1" in markdown
    evidence = format_evidence_markdown(runs[1], expected["php-fpm"])
    assert '<a id="fcgi-3-3-2"></a>' in evidence and '<a id="fcgi-3-3-10"></a>' in evidence
    assert "Why: php-fpm sends no empty STDOUT" in evidence and "Spec (required): The spec | says so." in evidence
    assert "lines omitted" in evidence  # a long exchange keeps its head and tail
    page = format_html(runs, expected=expected)
    assert "<script src" not in page and "<link" not in page  # self-contained
    assert "class='fail'" in page and "<details>" in page and "END_REQUEST &lt;alone&gt;" in page
    assert "worker said &lt;x&gt;" in page and "php-fpm sends no empty STDOUT" in page
    assert page.count("<pre>") >= 1 and "sortable" in page


def test_command_line_rebuilds_pages_from_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = _synthetic()
    (tmp_path / "runs").mkdir()
    for run in runs:
        (tmp_path / "runs" / f"{run.target}.json").write_text(json.dumps(run.to_dict()))
    docs = tmp_path / "docs" / "compatibility.md"
    status = compat_matrix.main(
        ["--targets", "reference,php-fpm", "--out", str(tmp_path), "--from-runs", "--docs", str(docs)]
    )
    assert status == 0  # without --check, differences are printed, not fatal
    assert (tmp_path / "index.html").read_text().startswith("<!DOCTYPE html>")
    assert "compat/php-fpm.md#fcgi-3-3-2" in docs.read_text()
    assert (tmp_path / "docs" / "compat" / "php-fpm.md").is_file()
    assert compat_matrix.main(
        ["--targets", "reference,php-fpm", "--out", str(tmp_path), "--from-runs", "--check"]
    ) == 1  # php-fpm's synthetic verdicts are not the expected ones
