"""cases/regressions/: each regression passes against the reference and FAILS against the fault mode(s)
that reproduce its bug (catches=), also where an independent responder has the same bug; the HTTP
client regressions against the buggy client; the regressions that are transcripts carry their case in
the header; and `new-regression` writes a transcript that the suite collects and runs.
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
from harness.replay.regression_skeleton import SkeletonError, new_regression
from harness.replay.regressions import (
    Regression,
    load_regressions,
    read_regression,
    regression_meta,
    regression_header,
    text_field,
)
from harness.targets.base import CommandTarget, reference_binary
from harness.capture.transcript import read_transcript
from harness.verdicts import Verdict

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
REGRESSIONS = ROOT / "cases" / "regressions"
# Regressions of HTTP-client bugs run with the client suite, not in a server run.
CLIENT_REGRESSIONS = ROOT / "cases" / "client" / "regressions"
CASES = {c.id: c for c in load_cases([REGRESSIONS])}
TRANSCRIPT_REGRESSIONS: dict[str, Regression] = {r.case.id: r for r in load_regressions(REGRESSIONS / "transcripts")}
LOADER = REGRESSIONS / "transcript_regressions.py"
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
# A code regression's docstring names its rows of the real-world bug table (docs/bug-to-regression.md).
BUG_TABLE_ROWS = re.compile(r"^Bug table rows?: ([0-9a-z, ]+) \(docs/bug-to-regression\.md\)\.", re.M)

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
        regression = TRANSCRIPT_REGRESSIONS.get(case.id)
        if regression is not None:
            assert regression.source.startswith("https://"), f"{case.id}: its first bug-report: is a link"
            assert all(report.startswith("https://") for report in regression.bug_reports), case.id
            assert regression.bug_table_rows, f"{case.id}: its header names its bug-table-row:"
            assert regression.symptom and regression.wire_pattern and regression.reproduced_by, case.id
            header = regression_header(read_transcript(regression.path))
            assert not [line for line in header if "TODO" in line[1]], f"{case.id}: a TODO is left in its header"
            rows |= set(regression.bug_table_rows)
            continue
        module = import_case_module(_file_of(case))
        assert str(getattr(module, "SOURCE", "")).startswith("https://"), f"{case.id}: SOURCE is a link"
        found = BUG_TABLE_ROWS.search(module.__doc__ or "")
        assert found, f"{case.id}: its docstring names its bug table row"
        rows |= {row.strip() for row in found.group(1).split(",")}
    assert len(rows) >= 15, sorted(rows)
    documented = (ROOT / "docs" / "bug-to-regression.md").read_text()
    for case_id in CASES:
        assert f"| {case_id} |" in documented, f"{case_id} is not in docs/bug-to-regression.md"


def test_the_transcript_regressions_are_data() -> None:
    # Every transcript in cases/regressions/transcripts/ is a case, made by the one loader; no code shell is left.
    assert len(TRANSCRIPT_REGRESSIONS) >= 19 and set(TRANSCRIPT_REGRESSIONS) <= set(CASES)
    for path in REGRESSIONS.glob("*.py"):
        assert "check_replay_file" not in path.read_text(), f"{path.name}: a transcript regression belongs in the data"
    assert {c.id for c in load_cases([LOADER])} == set(TRANSCRIPT_REGRESSIONS)
    for case_id, regression in TRANSCRIPT_REGRESSIONS.items():
        assert regression.path.name == case_id[len("REG-"):] + ".transcript"
        assert regression.case.level.value == text_field(read_transcript(regression.path), "level")


def test_regression_header_lines_join_back_exactly() -> None:
    text = ('Spec §3.4: "The high-order bit of the first byte of a length indicates the length\'s encoding. A high-'
            'order zero implies a one-byte encoding, a one a four-byte encoding."')
    meta = regression_meta([("requirement", text), ("bug-report", ["https://a/1 (one)", "https://b/2"])])
    assert len(meta) > 3 and all(len(f"{k}: {v}") <= 110 for k, v in meta)
    assert " ".join(v for k, v in meta if k == "requirement") == text
    assert [v for k, v in meta if k == "bug-report"] == ["https://a/1 (one)", "https://b/2"]
    # A double space where a line would be cut stays: the value is then one long line.
    spaced = "word " * 30 + " two spaces"
    assert " ".join(v for _, v in regression_meta([("symptom", spaced)])) == spaced.strip()
    with pytest.raises(ValueError, match="not a regression field"):
        regression_meta([("source", "x")])


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
    """The case file of a regression written as code."""
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
    return [value for path in sorted(CLIENT_REGRESSIONS.glob("*.py")) if not path.name.startswith("_")
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


def _collected(root: Path) -> dict[str, Case]:
    """The cases the suite collects from root/cases/regressions/ (with the repository's own loader file)."""
    directory = root / "cases" / "regressions"
    (directory / LOADER.name).write_text(LOADER.read_text())
    # The copy imports under the loader's module name: the repository's module is put back afterwards.
    name = "fcgispec_cases.cases_regressions_transcript_regressions"
    saved = sys.modules.pop(name, None)
    try:
        return {c.id: c for c in load_cases([directory])}
    finally:
        sys.modules.pop(name, None)
        if saved is not None:
            sys.modules[name] = saved


def test_new_regression_is_collected_and_runs(tmp_path: Path, pool: ReferencePool) -> None:
    path = new_regression(NGINX_KEEPALIVE, name="php-12345-short-name", description="php-fpm drops kept connections",
                          root=tmp_path)
    assert path == tmp_path / "cases" / "regressions" / "transcripts" / "php-12345-short-name.transcript"
    assert not list((tmp_path / "cases" / "regressions").glob("*.py"))  # data only, no code
    text = path.read_text()
    assert "\nid: REG-php-12345-short-name\n" in text and "\ntitle: php-fpm drops kept connections\n" in text
    assert "\ncatches:\n" in text and "\nbug-report: TODO" in text and "\nsymptom: php-fpm drops kept connections.\n" in text
    transcript = read_transcript(path)
    header = regression_header(transcript)
    assert transcript.meta[:len(header)] == header, "the regression fields come first"
    assert transcript.connections and transcript.meta_value("app").startswith("reference")
    case = _collected(tmp_path)["REG-php-12345-short-name"]
    assert case.title == "php-fpm drops kept connections" and case.catches == ()
    assert pool.run(case).verdict is Verdict.PASS
    # Filled in with the fault that reproduces the bug, it fails against it.
    assert pool.run(case, ["keep-conn-close"], scale=FAULT_SCALE).verdict is Verdict.FAIL


def test_any_name_new_regression_accepts_is_collected(tmp_path: Path) -> None:
    names = ["test-7-starts-like-a-test", "a.b-1", "0x", "reg-with--dashes"]
    for name in names:
        new_regression(NGINX_KEEPALIVE, name=name, description=f"case {name}", root=tmp_path, answers="capture")
    collected = _collected(tmp_path)
    assert {f"REG-{name}" for name in names} == set(collected)
    assert collected["REG-a.b-1"].title == "case a.b-1"


def test_skeleton_from_a_pcap(tmp_path: Path, pool: ReferencePool) -> None:
    pcap = tmp_path / "bug.pcapng"
    write_pcap(pcap, transcript_to_frames(read_transcript(NGINX_KEEPALIVE)), pcapng=True)
    port = int(read_transcript(NGINX_KEEPALIVE).connections[0].app_address.rpartition(":")[2])
    path = new_regression(pcap, name="nginx-9-from-pcap", description="from a pcap", port=port, root=tmp_path)
    assert "wire-pattern: From bug.pcapng (pcap, port" in path.read_text()
    assert pool.run(read_regression(path).case).verdict is Verdict.PASS


def test_skeleton_refusals(tmp_path: Path) -> None:
    for bad in ("Bad Name", "x", "-a", "a_b", "a/b"):
        with pytest.raises(SkeletonError, match="lowercase"):
            new_regression(NGINX_KEEPALIVE, name=bad, description="x", root=tmp_path)
    with pytest.raises(SkeletonError, match="--port"):
        pcap = tmp_path / "x.pcap"
        write_pcap(pcap, transcript_to_frames(read_transcript(NGINX_KEEPALIVE)))
        new_regression(pcap, name="a-1", description="x", root=tmp_path)
    new_regression(NGINX_KEEPALIVE, name="a-1", description="x", root=tmp_path, answers="capture")
    with pytest.raises(SkeletonError, match="exists"):
        new_regression(NGINX_KEEPALIVE, name="a-1", description="x", root=tmp_path, answers="capture")
    new_regression(NGINX_KEEPALIVE, name="a-1", description="y", root=tmp_path, answers="capture", force=True)
    # A name whose case is already a regression written as code.
    (tmp_path / "cases" / "regressions" / "a_2.py").write_text('@case(\n    "REG-a-2",\n')
    with pytest.raises(SkeletonError, match="already a regression written as code"):
        new_regression(NGINX_KEEPALIVE, name="a-2", description="x", root=tmp_path, force=True)


def test_cli_new_regression(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    import harness.replay.regression_skeleton as skeleton

    args = ["new-regression", str(NGINX_KEEPALIVE), "--name", "go-1-cli", "--description", "made by the CLI"]
    real = skeleton.new_regression
    monkeypatch.setattr(skeleton, "new_regression", lambda *a, **k: real(*a, **{**k, "root": tmp_path}))
    assert cli_capture.main(args) == 0
    assert (tmp_path / "cases" / "regressions" / "transcripts" / "go-1-cli.transcript").exists()
    err = capsys.readouterr().err
    assert "./fcgispec --case REG-go-1-cli" in err and "go-1-cli.transcript" in err
    assert cli_capture.main(args) == 4  # it exists now: a usage error
