"""The suite's command line against a user's mistakes: every bad option value, wrong or dead target
and odd selection ends in one clear line and the exit status of the scheme (README, verdicts):
0 held, 1 a broken requirement, 3 the harness could not run, 4 usage error. The suite runs as a
subprocess, as a user runs it, each run with a timeout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness.targets.base import reference_binary

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
HOSTILE = ROOT / "tests" / "hostile" / "hostile.py"
SUITE_PATHS = ("cases/server", "cases/replay", "cases/regressions")
RUN_TIMEOUT = 120
# A target check that finds nothing answering takes about one base wait; the run around it a few seconds.
CHECK_BASE_WAIT = 1.0
# (A {port} command gets START_TIMEOUT, 10 s, to start listening.)
CHECK_BOUND = 3 * CHECK_BASE_WAIT + 15.0


def run_suite(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([PYTHON, "-m", "pytest", *SUITE_PATHS, "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def hostile(mode: str) -> str:
    return f"cmd:exec {PYTHON} {HOSTILE} {mode}"


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.rstrip("\n").splitlines()[-1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True, scope="module")
def responder_built() -> None:
    if not reference_binary(ROOT).exists():
        pytest.fail(f"reference responder not built: {reference_binary(ROOT)}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Misbehaving servers on TCP ports (an HTTP server, one that never accepts, one that never
    answers), a port nothing listens on, and odd files for --exclude-file and --target unix:."""
    files = tmp_path_factory.mktemp("files")
    (files / "latin1.txt").write_bytes(b"# known deviations\nFCGI-4.1-1  caf\xe9 au lait\n")
    (files / "bad-id.txt").write_text("FCGI-4.1-1  fine\n4.1-1 no prefix\n")
    (files / "replay-reg.txt").write_text("REPLAY  captures are not ours\nREG-php  php bugs\nFCGI-99  gone\n"
                                          "FCGI-4.1-1\n")
    (files / "unread-dir").mkdir()
    processes = {}
    values = {"files": str(files), "dead_port": str(free_port())}
    for mode in ("http", "no-accept", "silent"):
        port = free_port()
        processes[mode] = subprocess.Popen([PYTHON, str(HOSTILE), mode, "--port", str(port)])
        values[mode] = str(port)
    for mode in ("http", "no-accept", "silent"):
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", int(values[mode])), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
    yield values
    for process in processes.values():
        process.kill()
        process.wait()


def expand(argv: tuple[str, ...], values: dict[str, str]) -> list[str]:
    return [arg.format(**values) for arg in argv]


# argv, a fragment of the one line that must say what is wrong, the exit status.
BAD_INPUTS = [
    # --target specs that cannot be a target: usage errors before collection
    (("--target", "garbage"), "--target: unknown target 'garbage': expected reference, php-fpm,", 4),
    (("--target", ""), "--target: unknown target ''", 4),
    (("--target", "tcp:127.0.0.1:99999"), "tcp:127.0.0.1:99999: expected tcp:HOST:PORT with a port from 1 to 65535", 4),
    (("--target", "tcp:127.0.0.1:0"), "with a port from 1 to 65535", 4),
    (("--target", "tcp:"), "--target: tcp:: expected tcp:HOST:PORT", 4),
    (("--target", "tcp:localhost"), "tcp:localhost: expected tcp:HOST:PORT", 4),
    (("--target", "tcp:localhost:abc"), "tcp:localhost:abc: expected tcp:HOST:PORT", 4),
    (("--target", "tcp::9000"), "tcp::9000: expected tcp:HOST:PORT", 4),
    (("--target", "unix:"), "--target: unix: expected unix:PATH", 4),
    (("--target", "cmd:"), "--target: cmd: expected cmd:COMMAND", 4),
    (("--target", "cmd:   "), "--target: cmd: expected cmd:COMMAND", 4),
    (("--target", "reference --fault 'x"), "the reference responder's options cannot be split (No closing quotation)", 4),
    (("--target", "reference --fault no-such-fault"), "rejected its options: fcgispec-responder: unknown fault 'no-such-fault'", 4),
    (("--target", "reference --no-such-option"), "the reference responder rejected its options", 4),
    (("--target", "reference --app nosuch"), "rejected its options: fcgispec-responder: --app is probe or hello", 4),
    (("--target", "TCP:127.0.0.1:9000"), "unknown target 'TCP:127.0.0.1:9000'", 4),
    (("--target",), "argument --target: expected one argument", 4),
    (("--target", "reference --fault list"), "--fault list only lists the fault modes", 4),
    # --fcgi-timeout
    *[(("--fcgi-timeout", value), f"--fcgi-timeout: the value must be a positive number of seconds, got '{value}'", 4)
      for value in ("-1", "nan", "inf", "0", "abc", "", "1e400", "-0")],
    (("--fcgi-timeout", "1e300"), "--fcgi-timeout: at most 3600 seconds, got '1e300'", 4),
    (("--fcgi-timeout",), "argument --fcgi-timeout: expected one argument", 4),
    # --case and other selections that match nothing
    (("--case", "FCGI-99"), "no case matches --case FCGI-99; case ids look like FCGI-3.3-6, REPLAY-", 4),
    (("--case", "CLI-REUSE-7"), "no case matches --case CLI-REUSE-7", 4),
    (("--case", "FCGI-4.1", "--case", "fcgi-4.1"), "no case matches --case fcgi-4.1", 4),
    (("--case", "FCGI-3.3-1x"), "no case matches --case FCGI-3.3-1x", 4),
    (("--case", ""), "--case: an empty case id", 4),
    (("--case",), "argument --case: expected one argument", 4),
    (("--case", "FCGI-4.1", "-k", "FCGI-3.3"), "no case selected (-k or -m matched none)", 4),
    (("--case", "FCGI-99", "--collect-only"), "no case matches --case FCGI-99", 4),
    (("--case", "FCGI-99", "-n", "2"), "no case matches --case FCGI-99", 4),
    (("-k", "no_case_has_this_name"), "no case selected (-k or -m matched none)", 4),
    # report files that cannot be written: said before the run, not after it
    (("--report-json", "{files}/no-such-dir/report.json"), "--report-json: cannot write {files}/no-such-dir/report.json: the directory", 4),
    (("--report-json", "{files}"), "--report-json: {files} is a directory, not a file", 4),
    (("--report-json", "/etc/passwd/report.json"), "--report-json: cannot write /etc/passwd/report.json: /etc/passwd is not a directory", 4),
    (("--report-json", "/proc/version"), "--report-json: cannot write /proc/version:", 4),
    (("--report-json", ""), "--report-json: the path is empty", 4),
    (("--junitxml", "{files}/no-such-dir/junit.xml"), "--junitxml: cannot write {files}/no-such-dir/junit.xml: the directory", 4),
    (("--junitxml", "/proc/version"), "--junitxml: cannot write /proc/version:", 4),
    # exclude files
    (("--exclude-file", "{files}/missing.txt"), "cannot read exclude file {files}/missing.txt: No such file or directory", 4),
    (("--exclude-file", "{files}/unread-dir"), "cannot read exclude file {files}/unread-dir: Is a directory", 4),
    (("--exclude-file", "{files}/latin1.txt"), "{files}/latin1.txt:2: not UTF-8 text (byte 0xe9 at column 16)", 4),
    (("--exclude-file", "{files}/bad-id.txt"), "{files}/bad-id.txt:2: '4.1-1' is not a case id like FCGI-3.3-7", 4),
    (("--exclude-file", ""), "--exclude-file: the path is empty", 4),
    (("--exclude-file",), "argument --exclude-file: expected one argument", 4),
    (("--report-json",), "argument --report-json: expected one argument", 4),
    # other options
    (("--probe-app", "maybe"), "argument --probe-app: invalid choice: 'maybe'", 4),
    (("--probe-limitations", "nonsense=1"), "--probe-limitations: unknown key 'nonsense'", 4),
    (("-n", "abc"), "argument -n/--numprocesses: invalid parse_numprocesses value: 'abc'", 4),
    (("--no-such-option",), "unrecognized arguments: --no-such-option", 4),
    (("-p", "no:xdist", "-n", "2"), "unrecognized arguments: -n", 4),
    # targets that are not there or do not speak FastCGI: one verdict for the run, status 3
    (("--target", "tcp:127.0.0.1:{dead_port}"), "target tcp:127.0.0.1:{dead_port}: connection refused (nothing listens there)", 3),
    (("--target", "tcp:127.0.0.1:{dead_port}", "-n", "2"), "target tcp:127.0.0.1:{dead_port}: connection refused", 3),
    (("--target", "tcp:[::1]:{dead_port}"), "target tcp:[::1]:{dead_port}: connection refused", 3),
    (("--target", "unix:relative.sock"), "target unix:relative.sock: no such socket: relative.sock does not exist", 3),
    (("--target", "cmd:echo hello; exit 3"), "(the process: exited with status 3, twice in a row); its output ends:", 3),
    (("--target", "tcp:no-such-host.invalid:9000"), "target tcp:no-such-host.invalid:9000: cannot resolve the host name", 3),
    (("--target", "unix:{files}/no.sock"), "target unix:{files}/no.sock: no such socket: {files}/no.sock does not exist", 3),
    (("--target", "unix:/etc/passwd"), "target unix:/etc/passwd: not a socket: /etc/passwd is a regular file", 3),
    (("--target", "unix:{files}"), "not a socket: {files} is a directory", 3),
    (("--target", "tcp:127.0.0.1:{http}"),
     "target tcp:127.0.0.1:{http}: answered no FastCGI record to a plain request nor to GET_VALUES: it sent: \"HTTP/1.1 400 Bad Request", 3),
    (("--target", "tcp:127.0.0.1:{silent}"), "target tcp:127.0.0.1:{silent}: accepted the connection but answered no FastCGI record within 1 s (it sent nothing)", 3),
    (("--target", "tcp:127.0.0.1:{no-accept}", "-n", "2"), "accepted the connection but answered no FastCGI record within 1 s", 3),
    (("--target", "cmd:/bin/false"), "target cmd:/bin/false: ", 3),
    (("--target", "cmd:/bin/false", "-n", "2"), "(the process: exited with status 1, twice in a row)", 3),
    (("--target", "cmd:/no/such/program --port {{port}}"),
     "target cmd:/no/such/program --port {{port}} could not be started: cannot start /no/such/program: No such file", 3),
    (("--target", "cmd:sleep 60 # {{port}}"), "could not be started: target did not accept connections within 10s", 3),
    (("--target", "cmd:/bin/true {{port}}"), "could not be started: target command exited with status 0 before accepting", 3),
    (("--target", hostile("crash")), "it sent: \"\\x01\\x06\\x00\\x01\" and closed the connection (the process: killed by SIGSEGV, twice in a row)", 3),
    (("--target", hostile("crash"), "-n", "2"), "killed by SIGSEGV, twice in a row", 3),
    # closed before or after our request arrived: a FIN or an RST
    (("--target", hostile("close")), "answered no FastCGI record to a plain request nor to GET_VALUES: it ", 3),
    (("--target", hostile("reset")), "it reset the connection", 3),
    (("--target", hostile("garbage")), "answered no FastCGI record", 3),
    (("--target", hostile("half-header")), "within 1 s (it sent: \"\\x01\\x06\\x00\\x01\")", 3),
    (("--target", hostile("silent")), "accepted the connection but answered no FastCGI record within 1 s (it sent nothing)", 3),
    (("--target", hostile("no-accept")), "accepted the connection but answered no FastCGI record within 1 s", 3),
]


@pytest.mark.parametrize("argv, message, status", BAD_INPUTS, ids=[" ".join(row[0]) or "(empty)" for row in BAD_INPUTS])
def test_bad_input(servers: dict[str, str], argv: tuple[str, ...], message: str, status: int) -> None:
    args = expand(argv, servers)
    if status == 3:
        args += ["--fcgi-timeout", str(CHECK_BASE_WAIT)]
    started = time.monotonic()
    result = run_suite(*args)
    took = time.monotonic() - started
    text = output(result)
    assert result.returncode == status, text
    expected = message.format(**servers)
    assert text.count(expected) == 1, f"{expected!r} not said once in:\n{text}"
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    # Nothing was tested: no case reported, no "Looks like" hints.
    assert "Looks like" not in text and " cases:" not in text and "1 case:" not in text, text
    if status == 3:
        assert took < CHECK_BOUND, f"{took:.1f} s: {text}"
        # The verdict comes last, only the end of a spawned target's output (indented) after it.
        lines = result.stdout.rstrip("\n").splitlines()
        at = next(i for i, line in enumerate(lines) if expected in line)
        assert lines[at].startswith("fcgispec: target ") and all(line.startswith("  ") for line in lines[at + 1:]), text


def test_garbage_target_is_one_short_message() -> None:
    result = run_suite("--target", "garbage")
    assert result.returncode == 4
    assert result.stdout.strip() == "" and len(result.stderr.strip().splitlines()) == 1, output(result)
    assert "tcp:HOST:PORT, unix:PATH or cmd:COMMAND" in result.stderr


def test_dead_target_reports_no_broken_requirement(tmp_path: Path, servers: dict[str, str]) -> None:
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    result = run_suite("--target", f"tcp:127.0.0.1:{servers['dead_port']}", "-n", "2",
                       "--junitxml", str(junit), "--report-json", str(report))
    assert result.returncode == 3, output(result)
    xml = junit.read_text()
    assert "<failure" not in xml and 'tests="0"' in xml, xml
    document = json.loads(report.read_text())
    assert document["cases"] == [] and "connection refused" in document["run_error"]


def test_a_target_that_cannot_be_restarted_stops_the_run(tmp_path: Path) -> None:
    # It serves for two seconds, then exits; started again, it exits at once.
    marker = tmp_path / "started"
    script = tmp_path / "once.sh"
    script.write_text(f"#!/bin/sh\ntest -e {marker} && {{ echo 'already ran once' >&2; exit 7; }}\n"
                      f"touch {marker}\ntimeout 2 {PYTHON} {HOSTILE} ok --port \"$1\"\nexit 1\n")
    script.chmod(0o755)
    started = time.monotonic()
    result = run_suite("-n", "0", "--target", f"cmd:{script} {{port}}", "--case", "FCGI-3", "--fcgi-timeout", "1")
    assert result.returncode == 3, output(result)
    assert time.monotonic() - started < 30
    assert "and could not be restarted: target command exited with status 7 before accepting" in last_line(result) \
        or "already ran once" in last_line(result), output(result)
    assert result.stdout.count("could not be restarted") == 2, result.stdout  # when it happened, and last


def test_report_paths_checked_before_the_run_leave_nothing(tmp_path: Path) -> None:
    # A good path is checked by creating it; the check leaves nothing behind when the run stops.
    report = tmp_path / "report.json"
    result = run_suite("--report-json", str(report), "--case", "FCGI-99")
    assert result.returncode == 4
    assert list(tmp_path.iterdir()) == []


# --- exit statuses ----------------------------------------------------------------------------

def test_a_case_file_that_cannot_be_imported_is_status_3() -> None:
    # A directory of cases of its own, removed after the run (only this checkout sees it).
    directory = ROOT / "cases" / f"broken_{os.getpid()}"
    directory.mkdir()
    try:
        (directory / "fcgi_broken.py").write_text("def oops(:\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        result = subprocess.run([PYTHON, "-m", "pytest", str(directory), "-q", "-p", "no:cacheprovider"],
                                cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env)
    finally:
        for path in directory.iterdir():
            path.unlink()
        directory.rmdir()
    assert result.returncode == 3, output(result)
    assert "SyntaxError" in result.stdout and "1 error" in result.stdout, output(result)


def test_status_0_when_everything_held() -> None:
    result = run_suite("--case", "FCGI-4.1", "-n", "0")
    assert result.returncode == 0, output(result)


def test_status_1_for_a_broken_requirement() -> None:
    result = run_suite("--case", "FCGI-4.2-1", "--target", "reference --fault unknown-type-ignored",
                       "--fcgi-timeout", "1")
    assert result.returncode == 1, output(result)
    assert last_line(result).startswith("1 case: 0 passed, 1 failed, 0 warnings,"), last_line(result)


def test_warn_is_status_0_and_1_only_with_strict() -> None:
    args = ("--case", "FCGI-4.1-3", "--target", "reference --fault get-values-stream")
    relaxed = run_suite(*args)
    assert relaxed.returncode == 0, output(relaxed)
    assert last_line(relaxed).startswith("1 case: 0 passed, 0 failed, 1 warning, "), last_line(relaxed)
    assert run_suite(*args, "--strict").returncode == 1
    assert run_suite(*args, "--fcgi-strict").returncode == 1


def test_status_3_for_a_case_error_wins_over_a_failure() -> None:
    # A responder that cannot start with FCGI_WEB_SERVER_ADDRS set: the case that needs that
    # variant cannot run (ERROR); FCGI-4.2-1 fails (it ignores unknown types).
    command = (f"cmd:test -n \"$FCGI_WEB_SERVER_ADDRS\" && exit 1; "
               f"exec {PYTHON} {HOSTILE} ok --port {{port}}")
    result = run_suite("--case", "FCGI-3.2-1", "--case", "FCGI-4.2-1", "--target", command, "--fcgi-timeout", "1")
    assert result.returncode == 3, output(result)
    assert " 1 failed," in last_line(result) and last_line(result).endswith(" 1 error"), last_line(result)


def test_excluded_failure_is_status_0(tmp_path: Path) -> None:
    exclusions = tmp_path / "known.txt"
    exclusions.write_text("FCGI-4.2-1  ignores unknown types\n")
    result = run_suite("--case", "FCGI-4.2-1", "--target", "reference --fault unknown-type-ignored",
                       "--exclude-file", str(exclusions), "--fcgi-timeout", "1")
    assert result.returncode == 0, output(result)


# --- exclude files: every form --case takes, and entries that match nothing -------------------

def test_exclude_file_takes_replay_and_reg_entries_and_warns_of_unmatched(servers: dict[str, str]) -> None:
    path = f"{servers['files']}/replay-reg.txt"
    result = run_suite("--case", "FCGI-4.1-1", "--exclude-file", path)
    assert result.returncode == 0, output(result)
    assert result.stdout.count(f"Warning: {path}:3: 'FCGI-99' matches no case") == 1, result.stdout
    assert "matches no case" not in result.stdout.replace(f"{path}:3: 'FCGI-99' matches no case", ""), result.stdout
    assert "excluded but passed: no reason given" in result.stdout


# --- smaller things ---------------------------------------------------------------------------

def test_failing_replay_and_regression_cases_carry_their_trace(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = run_suite("--case", "REPLAY-nginx-sequential-keepalive", "--case", "REG-hhvm-4077-abort-ignored",
                       "--target", "reference --fault abort-ignored --fault keep-conn-close",
                       "--report-json", str(report), "--fcgi-timeout", "1")
    assert result.returncode == 1, output(result)
    cases = {c["id"]: c for c in json.loads(report.read_text())["cases"]}
    for case_id in ("REPLAY-nginx-sequential-keepalive", "REG-hhvm-4077-abort-ignored"):
        assert cases[case_id]["verdict"] == "fail", cases[case_id]
        assert "BEGIN_REQUEST" in cases[case_id]["trace"], cases[case_id]


class _OptionNames:
    """Stands in for a pytest option group: records the names add_suite_options gives."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def addoption(self, *names: str, **attrs: object) -> None:
        self.names += names


def test_usage_lists_every_suite_option() -> None:
    from harness.suite.run_options import add_suite_options

    result = subprocess.run([PYTHON, "-m", "harness.suite.usage"], cwd=ROOT, capture_output=True, text=True,
                            timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    group = _OptionNames()
    add_suite_options(group)
    assert len(group.names) >= 9
    for name in group.names:
        assert f"  {name} " in result.stdout or f"  {name}\n" in result.stdout, name
    assert "Exit status: 0" in result.stdout
