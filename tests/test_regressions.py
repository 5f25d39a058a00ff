"""cases/regressions/: each regression passes against the reference and FAILS against the fault mode(s)
that reproduce its bug (catches=), also where an independent responder has the same bug; the HTTP
client regressions against the buggy client; and `new-regression` writes a loadable, runnable case.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Iterator

import pytest

from harness.replay import cli as cli_capture
from harness.suite.case import Case, import_case_module, load_cases, run_case, scale_for
from harness.suite.catch_matrix import ReferencePool, explain, fault_list_names
from harness.capture.pcap_import import transcript_to_frames, write_pcap
from harness.replay.regression_skeleton import SkeletonError, module_name, new_regression
from harness.targets.base import CommandTarget, reference_binary
from harness.capture.transcript import read_transcript
from harness.verdicts import Verdict

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
REGRESSIONS = ROOT / "cases" / "regressions"
CASES = {c.id: c for c in load_cases([REGRESSIONS])}
INDEPENDENT = ROOT / "tests" / "servers" / "independent_responder.py"
FAULT_SCALE = scale_for(1.0)
CORRECT = (Verdict.PASS, Verdict.INFO, Verdict.UNSUPPORTED)
# Regressions whose bug tests/servers/independent_responder.py also has (--bug): caught there too.
INDEPENDENT_BUGS = {
    "REG-go-a387f915-request-id-reuse": "go-id-reuse",
    "REG-php-67583-two-end-requests": "end-request-twice",
    "REG-php-76922-close-after-get-values": "get-values-close",
    "REG-hhvm-2522-keep-conn-ignored": "keep-conn-ignored",
    "REG-yaws-283-second-empty-stdin": "late-record-close",
    "REG-urweb-57-response-id-zero": "reply-id-zero",
    "REG-protocol-fcgi-6-unterminated-stdout": "no-empty-stdout",
    "REG-php-fpm-unknown-management-type": "unknown-type-ignored",
    "REG-libfcgi-unknown-role": "unknown-role-close",
    "REG-hhvm-2240-abort-crash": "abort-ignored",
}
CATALOGUE_ROWS = re.compile(r"^Catalogue: .*section 6, rows? ([0-9a-z, ]+)\.", re.M)

pytestmark = pytest.mark.skipif(not reference_binary(ROOT).exists(), reason="reference responder not built")


@pytest.fixture(scope="module")
def pool() -> Iterator[ReferencePool]:
    references = ReferencePool(ROOT)
    yield references
    references.stop_all()


def test_each_regression_names_its_bug_source_and_fault() -> None:
    faults = set(fault_list_names(str(reference_binary(ROOT))))
    rows: set[str] = set()
    for case in CASES.values():
        assert case.id.startswith("REG-") and case.section == "REG"
        assert case.catches and set(case.catches) <= faults, (case.id, case.catches)
        module = import_case_module(_file_of(case))
        assert str(getattr(module, "SOURCE", "")).startswith("https://"), f"{case.id}: SOURCE is a link"
        found = CATALOGUE_ROWS.search(module.__doc__ or "")
        assert found, f"{case.id}: its docstring names its catalogue row"
        rows |= {row.strip() for row in found.group(1).split(",")}
    assert len(rows) >= 15, sorted(rows)


def test_seed_bugs_and_named_rows_are_there() -> None:
    assert {"REG-go-a387f915-request-id-reuse", "REG-php-72185-empty-stdout-midstream",
            "REG-php-67583-two-end-requests", "REG-php-66479-get-values-unknown-name",
            "REG-php-76922-close-after-get-values", "REG-php-68571-crash-on-peer-close", "REG-hhvm-2240-abort-crash",
            "REG-hhvm-4951-get-values-hang", "REG-hhvm-2933-truncated-post", "REG-hhvm-4077-abort-ignored",
            "REG-yaws-283-second-empty-stdin", "REG-urweb-57-response-id-zero",
            "REG-protocol-fcgi-6-unterminated-stdout", "REG-hyperfastcgi-55-misframed-on-reuse",
            "REG-libfcgi-cve-2025-23016-params-length-overflow", "REG-go-11824-malformed-params",
            "REG-nginx-1648-128-byte-param-name"} <= set(CASES)


def _file_of(case: Case) -> Path:
    for path in REGRESSIONS.glob("*.py"):
        if f'"{case.id}"' in path.read_text():
            return path
    raise AssertionError(f"no file defines {case.id}")


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_passes_against_the_reference(pool: ReferencePool, case_id: str) -> None:
    outcome = pool.run(CASES[case_id])
    assert outcome.verdict is Verdict.PASS, explain(outcome)


@pytest.mark.parametrize("case_id, fault", [(c.id, f) for c in sorted(CASES.values(), key=lambda c: c.id)
                                            for f in c.catches])
def test_fails_against_the_fault_that_reproduces_the_bug(pool: ReferencePool, case_id: str, fault: str) -> None:
    outcome = pool.run(CASES[case_id], [fault], scale=FAULT_SCALE)
    assert outcome.verdict is Verdict.FAIL, explain(outcome)


def _independent(*args: str) -> CommandTarget:
    target = CommandTarget(f"{PYTHON} {INDEPENDENT} --port {{port}} {' '.join(args)}".rstrip())
    target.start()
    return target


def test_a_correct_independent_responder_passes() -> None:
    target = _independent()
    try:
        outcomes = {case_id: run_case(case, target) for case_id, case in sorted(CASES.items())}
    finally:
        target.stop()
    wrong = {i: explain(o) for i, o in outcomes.items() if o.verdict not in CORRECT}
    assert not wrong, wrong


@pytest.mark.parametrize("case_id", sorted(INDEPENDENT_BUGS))
def test_the_independent_responder_with_the_bug_fails(case_id: str) -> None:
    target = _independent("--bug", INDEPENDENT_BUGS[case_id])
    try:
        outcome = run_case(CASES[case_id], target, scale=FAULT_SCALE)
    finally:
        target.stop()
    assert outcome.verdict is Verdict.FAIL, explain(outcome)


# -- the HTTP client regressions (the client suite's framework) ---------------------------------------

def _client_regressions() -> list:
    try:
        from harness.clients.cases import ClientCase
    except ImportError:
        return []
    return [value for path in sorted(REGRESSIONS.glob("*.py")) if not path.name.startswith("_")
            for value in vars(import_case_module(path)).values() if isinstance(value, ClientCase)]


CLIENT_CASES = {c.id: c for c in _client_regressions()}


def test_the_three_client_seed_bugs_are_client_cases() -> None:
    assert set(CLIENT_CASES) == {"REG-go-3514-tls-dead-conn-reuse", "REG-go-read-to-end-reuses-conn",
                                 "REG-go-persist-conn-leak"}
    assert {c.mistakes for c in CLIENT_CASES.values()} == {
        ("reuse-after-close-notify",), ("no-release-on-content-length-end",), ("leak-excess-idle",)}


@pytest.mark.parametrize("case_id", sorted(CLIENT_CASES))
def test_client_regression_passes_and_catches_its_mistake(case_id: str) -> None:
    from harness.clients.cases import run_client_case
    from harness.clients.adapters import parse_client

    case = CLIENT_CASES[case_id]
    buggy = f"cmd:{PYTHON} {ROOT / 'tests' / 'clients' / 'buggy_client.py'}"
    for spec in ("reference", buggy):
        outcome = run_client_case(case, parse_client(spec, ROOT))
        assert outcome.verdict is Verdict.PASS, f"{spec}: {explain(outcome)}"
    outcome = run_client_case(case, parse_client(f"{buggy} --bug {case.mistakes[0]}", ROOT))
    assert outcome.verdict is Verdict.FAIL, explain(outcome)


# -- new-regression -----------------------------------------------------------------------------------

NGINX_KEEPALIVE = ROOT / "fixtures" / "captures" / "nginx" / "sequential-keepalive.transcript"


def _load_skeleton(case_file: Path) -> Case:
    cases = load_cases([case_file])
    assert len(cases) == 1
    return cases[0]


def test_skeleton_from_a_transcript_is_a_runnable_case(tmp_path: Path, pool: ReferencePool) -> None:
    case_file, transcript_file = new_regression(
        NGINX_KEEPALIVE, name="php-12345-short-name", description="php-fpm drops kept connections", root=tmp_path)
    assert case_file == tmp_path / "cases" / "regressions" / "php_12345_short_name.py"
    assert transcript_file == tmp_path / "cases" / "regressions" / "transcripts" / "php-12345-short-name.transcript"
    text = case_file.read_text()
    assert "php-fpm drops kept connections." in text and "SOURCE = " in text and "catches=()" in text
    case = _load_skeleton(case_file)
    assert case.id == "REG-php-12345-short-name" and case.title == "php-fpm drops kept connections"
    assert read_transcript(transcript_file).meta_value("bug") == "php-fpm drops kept connections"
    assert pool.run(case).verdict is Verdict.PASS
    # Filled in with the fault that reproduces the bug, it fails against it.
    assert pool.run(case, ["go-id-reuse"], scale=FAULT_SCALE).verdict is Verdict.FAIL


def test_skeleton_from_a_pcap(tmp_path: Path, pool: ReferencePool) -> None:
    pcap = tmp_path / "bug.pcapng"
    write_pcap(pcap, transcript_to_frames(read_transcript(NGINX_KEEPALIVE)), pcapng=True)
    port = int(read_transcript(NGINX_KEEPALIVE).connections[0].app_address.rpartition(":")[2])
    case_file, _ = new_regression(pcap, name="nginx-9-from-pcap", description="from a pcap", port=port, root=tmp_path)
    assert "from bug.pcapng (pcap, port" in case_file.read_text()
    assert pool.run(_load_skeleton(case_file)).verdict is Verdict.PASS


def test_skeleton_refusals(tmp_path: Path) -> None:
    with pytest.raises(SkeletonError, match="lowercase"):
        new_regression(NGINX_KEEPALIVE, name="Bad Name", description="x", root=tmp_path)
    with pytest.raises(SkeletonError, match="--port"):
        pcap = tmp_path / "x.pcap"
        write_pcap(pcap, transcript_to_frames(read_transcript(NGINX_KEEPALIVE)))
        new_regression(pcap, name="a-1", description="x", root=tmp_path)
    new_regression(NGINX_KEEPALIVE, name="a-1", description="x", root=tmp_path)
    with pytest.raises(SkeletonError, match="exists"):
        new_regression(NGINX_KEEPALIVE, name="a-1", description="x", root=tmp_path)
    assert module_name("php-1.2-x") == "php_1_2_x" and module_name("1-x") == "reg_1_x"


def test_cli_new_regression(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    import harness.replay.regression_skeleton as skeleton

    args = ["new-regression", str(NGINX_KEEPALIVE), "--name", "go-1-cli", "--description", "made by the CLI"]
    real = skeleton.new_regression
    monkeypatch.setattr(skeleton, "new_regression", lambda *a, **k: real(*a, **{**k, "root": tmp_path}))
    assert cli_capture.main(args) == 0
    assert (tmp_path / "cases" / "regressions" / "go_1_cli.py").exists()
    assert "./fcgispec --case REG-go-1-cli" in capsys.readouterr().err
    assert cli_capture.main(args) == 2  # it exists now
