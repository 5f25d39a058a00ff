"""The client connection-reuse suite end to end: it passes against the reference client (and its
ASan build), passes against a correct independent client, and catches each classic mistake.

tests/clients/buggy_client.py is that independent client: correct by default, and each --bug makes
one mistake that the case(s) named in CAUGHT_BY must report as fail or warn.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.clients.cases import MISTAKES, cases_in_client_module
from harness.suite.case import import_case_module
from harness.clients.adapters import REFERENCE_CLIENT

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
BUGGY = f"cmd:{PYTHON} {ROOT / 'tests' / 'clients' / 'buggy_client.py'}"
ASAN_CLIENT = ROOT / "build-asan" / "http-client" / "fcgispec-http-client"

# Each mistake and the case(s) that name it; each of them must fail or warn.
CAUGHT_BY = {
    "reuse-after-eof": ["CLI-REUSE-2", "CLI-REUSE-3"],
    "reuse-after-close-notify": ["CLI-REUSE-4", "CLI-REUSE-5"],
    "ignore-connection-close": ["CLI-REUSE-18", "CLI-REUSE-18b", "CLI-REUSE-18c", "CLI-REUSE-26"],
    "reuse-http10": ["CLI-REUSE-19"],
    "no-release-on-content-length-end": ["CLI-REUSE-1"],
    "leak-excess-idle": ["CLI-REUSE-24"],
    "retry-post": ["CLI-REUSE-8"],
    "no-retry": ["CLI-REUSE-7", "CLI-REUSE-7b", "CLI-REUSE-7c"],
    "reuse-after-truncated-body": ["CLI-REUSE-21"],
    "reuse-after-abandoned-body": ["CLI-REUSE-23"],
    "parse-body-on-head": ["CLI-REUSE-15", "CLI-REUSE-15b", "CLI-REUSE-15c"],
    "parse-body-on-204": ["CLI-REUSE-13", "CLI-REUSE-13b", "CLI-REUSE-16", "CLI-REUSE-16c"],
    "parse-body-on-304": ["CLI-REUSE-16b"],
    "deliver-unsolicited-408": ["CLI-REUSE-11"],
}


def run_suite(tmp_path: Path, client: str, *args: str, env: dict[str, str] | None = None,
              timeout: float = 180) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    report = tmp_path / "client-report.json"
    done = subprocess.run(
        [PYTHON, "-m", "pytest", "-p", "harness.reports.client_plugin", "cases/client", "-q", "-p", "no:xdist",
         "--client", client, "--report-json", str(report), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )
    verdicts = {c["id"]: c["verdict"] for c in json.loads(report.read_text())["cases"]} if report.exists() else {}
    return done, verdicts


def all_cases() -> list:
    return [c for f in sorted((ROOT / "cases" / "client").glob("*.py")) for c in cases_in_client_module(import_case_module(f))]


def bad(verdicts: dict[str, str]) -> dict[str, str]:
    return {i: v for i, v in verdicts.items() if v not in ("pass", "info")}


@pytest.fixture(scope="module", autouse=True)
def reference_built() -> None:
    if not (ROOT / REFERENCE_CLIENT).exists():
        pytest.fail(f"reference client not built: {ROOT / REFERENCE_CLIENT}")


def test_every_mistake_is_named_by_its_cases() -> None:
    assert set(CAUGHT_BY) == set(MISTAKES)
    named = {m: sorted(c.id for c in all_cases() if m in c.mistakes) for m in MISTAKES}
    for mistake, ids in CAUGHT_BY.items():
        assert named[mistake], f"no case names {mistake}"
        assert set(named[mistake]) <= set(ids), (mistake, named[mistake], ids)


def test_case_ids_are_unique_and_cover_the_seeds() -> None:
    ids = [c.id for c in all_cases()]
    assert len(ids) == len(set(ids))
    assert {"CLI-REUSE-1", "CLI-REUSE-1b", "CLI-REUSE-4", "CLI-REUSE-24"} <= set(ids)


def test_reference_client_passes(tmp_path: Path) -> None:
    done, verdicts = run_suite(tmp_path, "reference")
    assert done.returncode == 0 and verdicts and not bad(verdicts), done.stdout[-6000:] + done.stderr[-2000:]
    assert done.stdout.rstrip().splitlines()[-1].endswith(" 0 errors")
    assert "fcgispec client report" in done.stdout


def test_reference_client_asan_build_passes(tmp_path: Path) -> None:
    if not ASAN_CLIENT.exists():
        pytest.skip(f"ASan build not there: {ASAN_CLIENT} (./fcgispec setup --asan)")
    # A sanitizer report on the adapter's stderr turns its case into a failure (harness/clients/cases.py).
    done, verdicts = run_suite(tmp_path, "reference", env={"FCGISPEC_HTTP_CLIENT": str(ASAN_CLIENT)})
    assert done.returncode == 0 and verdicts and not bad(verdicts), done.stdout[-6000:] + done.stderr[-2000:]


def test_correct_independent_client_passes(tmp_path: Path) -> None:
    done, verdicts = run_suite(tmp_path, BUGGY)
    assert done.returncode == 0 and verdicts and not bad(verdicts), done.stdout[-6000:] + done.stderr[-2000:]


@pytest.mark.parametrize("mistake", sorted(CAUGHT_BY))
def test_each_mistake_is_caught(tmp_path: Path, mistake: str) -> None:
    ids = CAUGHT_BY[mistake]
    case_args = [arg for case_id in ids for arg in ("--case", case_id)]
    done, verdicts = run_suite(tmp_path, f"{BUGGY} --bug {mistake}", *case_args)
    missed = {i: verdicts.get(i, "not run") for i in ids if verdicts.get(i) not in ("fail", "warn")}
    assert not missed, f"{mistake} not caught: {missed}\n{done.stdout[-4000:]}"
    if any(verdicts[i] == "fail" for i in ids):
        assert done.returncode != 0


def test_unknown_client_is_one_usage_error_before_the_cases(tmp_path: Path) -> None:
    done, verdicts = run_suite(tmp_path, "no-such-client", "--case", "CLI-REUSE-1")
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert verdicts == {}, "no case ran"
    assert "--client: unknown client 'no-such-client'" in done.stderr


def test_an_adapter_that_exits_at_once_is_an_error(tmp_path: Path) -> None:
    done, verdicts = run_suite(tmp_path, "cmd:false", "--case", "CLI-REUSE-2")
    assert verdicts == {"CLI-REUSE-2": "error"}, done.stdout[-3000:]
    assert "unusable" in done.stdout


def test_a_hanging_client_is_a_failure_not_a_stuck_run(tmp_path: Path) -> None:
    done, verdicts = run_suite(tmp_path, "cmd:sh -c 'sleep 60' sh", "--case", "CLI-REUSE-2", "--client-timeout", "1",
                               timeout=60)
    assert verdicts == {"CLI-REUSE-2": "fail"}, done.stdout[-3000:]
    assert "the client hung" in done.stdout
