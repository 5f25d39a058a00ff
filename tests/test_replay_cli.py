"""The capture and replay command line (harness/replay/cli.py) and `fcgispec matrix`'s arguments survive bad
input: one clear line, the exit status of the scheme (harness/replay/command_line.py), nothing written, nothing
left running; and what a run records is never lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness.capture.pcap_import import transcript_to_frames, write_pcap
from harness.capture.transcript import TranscriptError, parse_transcript, read_transcript
from harness.replay import cli
from harness.replay import regression_skeleton
from harness.replay.command_line import EXIT_CANNOT_RUN, EXIT_OK, EXIT_USAGE
from harness.reports import compat_matrix
from harness.suite.case import load_cases, select_cases

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
NGINX_KEEPALIVE = ROOT / "fixtures" / "captures" / "nginx" / "sequential-keepalive.transcript"
APP_PORT = int(read_transcript(NGINX_KEEPALIVE).connections[0].app_address.rpartition(":")[2])
REGRESSION_DIR = ROOT / "cases" / "regressions" / "transcripts"
# The name the bad new-regression rows ask for: a file of that name would be one they wrongly wrote.
PROBE_NAME = "ok-1"
SUBPROCESS_TIMEOUT = 30


def _udp_frame() -> bytes:
    """An Ethernet frame holding a UDP datagram (a capture of another protocol)."""
    udp = struct.pack(">HHHH", 5353, 53, 12, 0) + b"dnsq"
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes([127, 0, 0, 1]),
                     bytes([127, 0, 0, 1]))
    return b"\0" * 12 + b"\x08\x00" + ip + udp


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory of good and bad inputs, the current directory of the test."""
    shutil.copy(NGINX_KEEPALIVE, tmp_path / "good.transcript")
    frames = transcript_to_frames(read_transcript(NGINX_KEEPALIVE), app_port=APP_PORT)
    write_pcap(tmp_path / "capture.pcap", frames)
    (tmp_path / "short.pcap").write_bytes((tmp_path / "capture.pcap").read_bytes()[:10])
    write_pcap(tmp_path / "udp.pcap", [(0, _udp_frame())])
    (tmp_path / "garbage.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("a file, not a directory\n")
    (tmp_path / "big-id.transcript").write_text(
        "fcgispec-transcript 1\n\nconnection 1\nws->app BEGIN_REQUEST id=99999999 role=RESPONDER flags=KEEP_CONN\n")
    (tmp_path / "app-only.transcript").write_text(
        "fcgispec-transcript 1\n\nconnection 1\napp->ws STDOUT id=1 len=2\n    \"hi\"\n")
    (tmp_path / "crlf.transcript").write_bytes(NGINX_KEEPALIVE.read_bytes().replace(b"\n", b"\r\n"))
    # A pcapng whose second block claims a length no block can have (damaged, not cut short).
    write_pcap(tmp_path / "damaged.pcapng", frames, pcapng=True)
    damaged = bytearray((tmp_path / "damaged.pcapng").read_bytes())
    second = struct.unpack("<I", damaged[4:8])[0]
    damaged[second + 4 : second + 8] = struct.pack("<I", 7)
    (tmp_path / "damaged.pcapng").write_bytes(bytes(damaged))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    stray = REGRESSION_DIR / f"{PROBE_NAME}.transcript"
    if stray.exists():
        stray.unlink()
        pytest.fail(f"a bad new-regression wrote {stray}")


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


T = "good.transcript"
# (argv, a fragment of the one line printed, exit status). {port}: the capture's application port,
# {busy}: a port in use. Every row must print exactly one line and write nothing.
BAD_INPUTS: list[tuple[list[str], str, int]] = [
    # replay
    (["replay", T, "--timeout", "-1"], "argument --timeout: '-1' is not a number of seconds", 4),
    (["replay", T, "--timeout", "0"], "argument --timeout: '0' is not a number of seconds", 4),
    (["replay", T, "--timeout", "nan"], "argument --timeout: 'nan' is not a number of seconds", 4),
    (["replay", T, "--timeout", "inf"], "argument --timeout: 'inf' is not a number of seconds", 4),
    (["replay", T, "--timeout", "abc"], "argument --timeout: 'abc' is not a number of seconds", 4),
    (["replay", "garbage.bin"], "garbage.bin: line 2: not UTF-8 text (byte offset 128)", 4),
    (["replay", "empty.txt"], "empty.txt: line 1: expected 'fcgispec-transcript 1' as the first line", 4),
    (["replay", "adir"], "adir is a directory, not a file", 4),
    (["replay", "missing.transcript"], "missing.transcript: no such file", 4),
    (["replay", T, "--target", "nosuch"], "--target: unknown target 'nosuch'", 4),
    (["replay", "big-id.transcript"], "big-id.transcript: line 4: id=99999999 is out of range (0 to 65535)", 4),
    (["replay", "app-only.transcript"], "nothing to replay", 4),
    (["replay", T, "--target", "tcp:127.0.0.1:1"], "the target 'tcp:127.0.0.1:1' accepted no connection", 3),
    (["replay", "crlf.transcript"], "crlf.transcript: line 1: the lines end with CR LF", 4),
    (["replay", T, "--target", "tcp:127.0.0.1:99999"], "--target tcp:127.0.0.1:99999: '99999' is not a TCP port", 4),
    (["replay", T, "--target", "tcp:nohost"], "expected HOST:PORT, got 'nohost'", 4),
    (["replay", T, "--target", "reference --bogus"], "the reference responder rejected its options", 4),
    (["replay", T, "--target", "reference --fault nosuch"], "unknown fault 'nosuch'", 4),
    (["replay", T, "--target", "cmd:/nonexistent/fcgi-app"], "cannot start the target 'cmd:/nonexistent/fcgi-app'", 3),
    (["replay"], "the following arguments are required: file", 4),
    (["replay", T, "--bogus"], "unrecognized arguments: --bogus", 4),
    ([], "the following arguments are required: COMMAND", 4),
    (["bogus"], "argument COMMAND: invalid choice: 'bogus'", 4),
    # record (its rows run as a process: a record that starts waits for Ctrl-C)
    (["record", "--listen", "70000", "--app", "127.0.0.1:9", "-o", "out.t"], "argument --listen: '70000'", 4),
    (["record", "--listen", "-1", "--app", "127.0.0.1:9", "-o", "out.t"], "argument --listen: '-1'", 4),
    (["record", "--listen", "abc", "--app", "127.0.0.1:9", "-o", "out.t"], "argument --listen: 'abc'", 4),
    (["record", "--listen", "{busy}", "--app", "127.0.0.1:9", "-o", "out.t"], "port {busy} on 127.0.0.1 is in use", 4),
    (["record", "--listen", "0", "--app", "127.0.0.1:70000", "-o", "out.t"], "argument --app: '70000' is not a TCP port",
     4),
    (["record", "--listen", "0", "--app", "127.0.0.1:-1", "-o", "out.t"], "argument --app: '-1' is not a TCP port", 4),
    (["record", "--listen", "0", "--app", "nohost", "-o", "out.t"], "expected HOST:PORT, got 'nohost'", 4),
    (["record", "--listen", "0", "--app", "127.0.0.1:9", "-o", "missing/out.t"], "cannot write missing/out.t: the directory missing does not exist",
     4),
    (["record", "--listen", "0", "--app", "127.0.0.1:9", "-o", "afile/out.t"], "afile is not a directory", 4),
    (["record", "--listen", "0", "--app", "127.0.0.1:9", "-o", "adir"], "adir is a directory, not a file", 4),
    (["record", "--listen", "0", "--app", "127.0.0.1:9", "-o", "out.t", "--meta", "novalue"],
     "argument --meta: expected KEY=VALUE, got 'novalue'", 4),
    (["record", "--listen", "0", "--app", "127.0.0.1:9", "-o", "out.t", "--meta", "a b=c"], "must be a word", 4),
    (["record", "--listen", "0", "-o", "out.t"], "the following arguments are required: --app", 4),
    (["record", "--listen", "0", "--app", "127.0.0.1:9", "-o", "out.t", "--source", "two\nlines"], "must be one line", 4),
    # import-pcap
    (["import-pcap", "capture.pcap", "--port", "70000", "-o", "out.t"], "argument --port: '70000' is not a TCP port", 4),
    (["import-pcap", "capture.pcap", "--port", "-1", "-o", "out.t"], "argument --port: '-1' is not a TCP port", 4),
    (["import-pcap", "capture.pcap", "--port", "abc", "-o", "out.t"], "argument --port: 'abc' is not a TCP port", 4),
    (["import-pcap", "capture.pcap", "--port", "{port}", "-o", "adir"], "adir is a directory, not a file", 4),
    (["import-pcap", "capture.pcap", "--port", "{port}", "-o", "missing/out.t"], "the directory missing does not exist", 4),
    (["import-pcap", "garbage.bin", "--port", "{port}", "-o", "out.t"], "garbage.bin: not a pcap or pcapng file", 4),
    (["import-pcap", "empty.txt", "--port", "{port}", "-o", "out.t"], "not a pcap or pcapng file (it starts with nothing)",
     4),
    (["import-pcap", T, "--port", "{port}", "-o", "out.t"], "not a pcap or pcapng file", 4),
    (["import-pcap", "missing.pcap", "--port", "{port}", "-o", "out.t"], "missing.pcap: no such file", 4),
    (["import-pcap", "adir", "--port", "{port}", "-o", "out.t"], "adir is a directory, not a file", 4),
    (["import-pcap", "capture.pcap", "--port", "1", "-o", "out.t"],
     "no TCP connection to or from port 1 in 15 packet(s) (TCP ports in it: {port}, ", 4),
    (["import-pcap", "udp.pcap", "--port", "53", "-o", "out.t"], "in 1 packet(s) (no TCP traffic in it)", 4),
    (["import-pcap", "short.pcap", "--port", "{port}", "-o", "out.t"],
     "truncated pcap file header at byte offset 0: 10 of its 24 bytes", 4),
    (["import-pcap", "capture.pcap", "-o", "out.t"], "the following arguments are required: --port", 4),
    (["import-pcap", "damaged.pcapng", "--port", "{port}", "-o", "out.t"], "pcapng block at byte offset 28 has length 7",
     4),
    # export
    (["export", "garbage.bin"], "garbage.bin: line 2: not UTF-8 text", 4),
    (["export", "missing.transcript"], "missing.transcript: no such file", 4),
    (["export", T, "-o", "adir"], "adir is a directory, not a file", 4),
    (["export", T, "-o", "afile/x"], "afile is not a directory", 4),
    (["export", T, "-o", "/proc/fcgispec-nowhere/x"], "cannot write /proc/fcgispec-nowhere/x: the directory /proc/fcgispec-nowhere does not exist", 4),
    # capture
    (["capture", "--server", "nosuch"], "--server: unknown 'nosuch'; one or more of nginx, apache2, lighttpd, h2o", 4),
    (["capture", "--server", "nginx", "--scenario", "nosuch"], "--scenario: unknown 'nosuch'", 4),
    (["capture", "--server", ","], "--server: unknown empty list", 4),
    (["capture", "--server", "nginx", "-o", "afile/x"], "cannot write under afile/x: afile is not a directory", 4),
    (["capture", "--server", "nginx", "--target", "nosuch"], "--target: unknown target 'nosuch'", 4),
    # new-regression
    (["new-regression", T, "--name", "Bad", "--description", "x"], "'Bad' is not a regression name: a name is two or more",
     4),
    (["new-regression", T, "--name", "x", "--description", "x"], "'x' is not a regression name", 4),
    (["new-regression", T, "--name", PROBE_NAME, "--description", "x", "--port", "70000"], "argument --port: '70000'", 4),
    (["new-regression", T, "--name", PROBE_NAME, "--description", "x", "--port", "9000"],
     "is a transcript: --port is for a pcap/pcapng only", 4),
    (["new-regression", "capture.pcap", "--name", PROBE_NAME, "--description", "x"],
     "capture.pcap is not a transcript; for a pcap/pcapng give the application's --port", 4),
    (["new-regression", "capture.pcap", "--name", PROBE_NAME, "--description", "x", "--port", "1"],
     "no TCP connection to or from port 1", 4),
    (["new-regression", "garbage.bin", "--name", PROBE_NAME, "--description", "x", "--port", "9"],
     "not a pcap or pcapng file", 4),
    (["new-regression", "missing.transcript", "--name", PROBE_NAME, "--description", "x"],
     "missing.transcript: no such file", 4),
    (["new-regression", "adir", "--name", PROBE_NAME, "--description", "x"], "adir is a directory, not a file", 4),
    (["new-regression", T, "--name", "php-72185-empty-stdout-midstream", "--description", "x"],
     "exists (--force replaces it)", 4),
    (["new-regression", T, "--name", "hhvm-1690-connection-leak", "--description", "x", "--force"],
     "REG-hhvm-1690-connection-leak is already a regression written as code", 4),
    (["new-regression", T, "--name", PROBE_NAME, "--description", "  "], "a one-line --description is needed", 4),
    (["new-regression", T, "--name", PROBE_NAME], "the following arguments are required: --description", 4),
    (["new-regression", T, "--name", PROBE_NAME, "--description", "x", "--answers", "bogus"],
     "argument --answers: invalid choice: 'bogus'", 4),
]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit status, stderr): record runs as a process (once started it waits for a signal), the others in-process."""
    if argv and argv[0] == "record":
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([PYTHON, "-m", "harness.replay.cli", *argv], capture_output=True, text=True,
                              timeout=SUBPROCESS_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
        return done.returncode, done.stderr
    status = cli.main(argv)
    return status, capsys.readouterr().err


@pytest.mark.parametrize("argv, fragment, status", BAD_INPUTS, ids=[" ".join(row[0]) or "(nothing)" for row in BAD_INPUTS])
def test_bad_input_is_one_line_and_its_exit_status(argv: list[str], fragment: str, status: int, inputs: Path,
                                                    busy_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    values = {"port": str(APP_PORT), "busy": str(busy_port)}
    argv = [word.format(**values) for word in argv]
    before = sorted(p.relative_to(inputs) for p in inputs.rglob("*"))
    got, err = _run(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == status, err
    assert len(lines) == 1 and fragment.format(**values) in lines[0], err
    assert "Traceback" not in err
    assert sorted(p.relative_to(inputs) for p in inputs.rglob("*")) == before, "a refused command wrote a file"


# -- 2. record: the output is checked first, and a recording is never lost ---------------------------------


def test_record_that_cannot_write_at_the_end_keeps_the_recording(inputs: Path) -> None:
    (inputs / "gone").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([PYTHON, "-m", "harness.replay.cli", "record", "--listen", "0", "--app", "127.0.0.1:9",
                                "-o", "gone/out.transcript", "--meta", "bug=lost recording"],
                               stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)
    try:
        assert process.stderr is not None
        assert process.stderr.readline().startswith("recording 127.0.0.1:")
        (inputs / "gone").rmdir()  # the directory goes away while the proxy runs
        process.send_signal(signal.SIGTERM)
        # Not communicate(): with a timeout it reads the pipe itself and misses what readline() buffered.
        process.wait(timeout=SUBPROCESS_TIMEOUT)
        err = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == EXIT_USAGE, err
    assert "warning: nothing accepts connections at 127.0.0.1:9 yet" in err  # said at the start, not found at the end
    line = [line for line in err.splitlines() if "cannot write" in line][0]
    assert "cannot write gone/out.transcript" in line and "is kept in " in line
    kept = Path(line.rpartition("is kept in ")[2].strip())
    try:
        assert kept.is_file() and read_transcript(kept).meta_value("bug") == "lost recording"
    finally:
        kept.unlink(missing_ok=True)


# -- 4. import-pcap: a file cut short is handled the same way in pcap and pcapng ------------------------------


@pytest.mark.parametrize("pcapng", [False, True], ids=["pcap", "pcapng"])
def test_truncated_capture_is_imported_up_to_the_cut_and_said(inputs: Path, pcapng: bool,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    whole = inputs / ("whole.pcapng" if pcapng else "whole.pcap")
    write_pcap(whole, transcript_to_frames(read_transcript(NGINX_KEEPALIVE), app_port=APP_PORT), pcapng=pcapng)
    data = whole.read_bytes()
    cut = inputs / ("cut" + whole.suffix)
    cut.write_bytes(data[:-10])  # inside the last packet
    assert cli.main(["import-pcap", str(cut), "--port", str(APP_PORT), "-o", "cut.transcript"]) == EXIT_OK
    err = capsys.readouterr().err
    assert "warning: " in err and "ends inside a packet at byte offset" in err, err
    header = read_transcript(inputs / "cut.transcript").meta_value("truncated")
    assert "byte offset" in header and f"{len(transcript_to_frames(read_transcript(NGINX_KEEPALIVE))) - 1} whole" in header
    assert cli.main(["import-pcap", str(whole), "--port", str(APP_PORT), "-o", "whole.transcript"]) == EXIT_OK
    assert "warning" not in capsys.readouterr().err
    assert not read_transcript(inputs / "whole.transcript").meta_value("truncated")


def test_truncated_pcap_and_pcapng_say_the_same(inputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = transcript_to_frames(read_transcript(NGINX_KEEPALIVE), app_port=APP_PORT)
    results = []
    for pcapng in (False, True):
        path = inputs / f"cut-{pcapng}.cap"
        write_pcap(path, frames, pcapng=pcapng)
        path.write_bytes(path.read_bytes()[:-10])
        status = cli.main(["import-pcap", str(path), "--port", str(APP_PORT), "-o", f"out-{pcapng}.t"])
        transcript = read_transcript(inputs / f"out-{pcapng}.t")
        results.append((status, len(transcript.connections), "ends inside a packet" in capsys.readouterr().err))
    assert results[0] == results[1] == (EXIT_OK, 1, True)


def test_import_of_traffic_that_is_not_fastcgi_warns(inputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.capture.pcap_import import _frame

    http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    ws, app = (bytes([127, 0, 0, 1]), 40000), (bytes([127, 0, 0, 1]), 80)
    write_pcap(inputs / "http.pcap", [(0, _frame(ws, app, 1, 0, 0x02, b"")), (1, _frame(ws, app, 2, 0, 0x18, http))])
    assert cli.main(["import-pcap", "http.pcap", "--port", "80", "-o", "http.t"]) == EXIT_OK
    assert "does not look like FastCGI" in capsys.readouterr().err


# -- 5. transcript values that do not fit their wire field ------------------------------------------------


@pytest.mark.parametrize("item, message", [
    ("ws->app BEGIN_REQUEST id=99999999 role=RESPONDER flags=0", "id=99999999 is out of range (0 to 65535)"),
    ("ws->app BEGIN_REQUEST id=65536 role=RESPONDER flags=0", "id=65536 is out of range"),
    ("ws->app BEGIN_REQUEST id=1 role=70000 flags=0", "role=70000 is out of range (0 to 65535)"),
    ("ws->app BEGIN_REQUEST id=1 role=RESPONDER flags=256", "flags=256 is out of range (0 to 255)"),
    ("ws->app BEGIN_REQUEST id=1 role=RESPONDER flags=-1", "flags=-1 is out of range"),
    ("ws->app BEGIN_REQUEST id=1 role=RESPONDER flags=0 reserved=00", "reserved= holds 1 bytes where this record has 5"),
    ("ws->app type=256 id=1 len=0", "type=256 is out of range (0 to 255)"),
    ("ws->app STDIN id=1 len=0 version=256", "version=256 is out of range (0 to 255)"),
    ("ws->app STDIN id=1 len=0 pad=256", "pad=256 is out of range (0 to 255)"),
    ("ws->app STDIN id=1 len=0 pad=300 padding=" + "00" * 300, "pad=300 is out of range"),
    ("app->ws END_REQUEST id=1 appStatus=4294967296 protocolStatus=0", "appStatus=4294967296 is out of range"),
    ("app->ws END_REQUEST id=1 appStatus=0 protocolStatus=256", "protocolStatus=256 is out of range (0 to 255)"),
    ("app->ws UNKNOWN_TYPE id=0 unknownType=256", "unknownType=256 is out of range (0 to 255)"),
    ("ws->app STDIN id=\u00b2 len=0", "id= needs a number"),
    ("ws->app write \u00b2", "expected 'DIR write SIZE'"),
])
def test_transcript_value_out_of_range_is_an_error_naming_its_line(item: str, message: str) -> None:
    with pytest.raises(TranscriptError, match="^line 4: " + message.replace("(", r"\(").replace(")", r"\)")):
        parse_transcript(f"fcgispec-transcript 1\n\nconnection 1\n{item}\n")


def test_transcript_values_at_their_limits_still_parse() -> None:
    transcript = parse_transcript("fcgispec-transcript 1\n\nconnection 1\n"
                                  "ws->app BEGIN_REQUEST id=65535 role=65535 flags=255\n"
                                  "ws->app type=255 id=0 len=0 version=255 pad=255\n"
                                  "app->ws END_REQUEST id=65535 appStatus=4294967295 protocolStatus=255\n")
    records = [item.record for item in transcript.connections[0].items]
    assert records[0].request_id == 65535 and records[0].content[:3] == b"\xff\xff\xff"
    assert records[1].type == 255 and len(records[1].padding) == 255
    assert records[2].content[:5] == b"\xff\xff\xff\xff\xff"


# -- 6. new-regression: the name is one the loader takes, and the "next:" command runs the case ------------


def test_new_regression_next_command_runs_the_new_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    real = regression_skeleton.new_regression
    monkeypatch.setattr(regression_skeleton, "new_regression", lambda *a, **k: real(*a, **{**k, "root": tmp_path}))
    loader = ROOT / "cases" / "regressions" / "transcript_regressions.py"
    directory = tmp_path / "cases" / "regressions"
    directory.mkdir(parents=True)
    (directory / loader.name).write_text(loader.read_text())
    names = ["test-7-starts-like-a-test", "a.b-1", "0x"]
    for name in names:
        assert cli.main(["new-regression", str(NGINX_KEEPALIVE), "--name", name, "--description", f"case {name}",
                         "--answers", "capture"]) == EXIT_OK
    err = capsys.readouterr().err
    module = "fcgispec_cases.cases_regressions_transcript_regressions"
    saved = sys.modules.pop(module, None)
    try:
        collected = load_cases([directory])
    finally:
        sys.modules.pop(module, None)
        if saved is not None:
            sys.modules[module] = saved
    for name in names:
        selection = [line.split("--case ", 1)[1].split()[0] for line in err.splitlines()
                     if f"--case REG-{name} " in line]
        assert selection, err
        assert [case.id for case in select_cases(collected, selection[:1])] == [f"REG-{name}"]


# -- 7. the exit statuses: code, help and module text say the same ----------------------------------------


def test_help_and_docstring_state_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    doc = cli.__doc__ or ""
    for line in ("0  done", "1  replay: the target diverged", "2  interrupted", "3  could not run", "4  usage error"):
        assert line in doc
    assert "2 when it cannot run" not in doc
    for command in ("record", "replay", "import-pcap", "export", "capture", "new-regression"):
        assert cli.main([command, "--help"]) == EXIT_OK
        text = " ".join(capsys.readouterr().out.split())
        assert "2 interrupted" in text and "4 usage error" in text, command
    assert cli.main(["replay", str(NGINX_KEEPALIVE), "--target", "tcp:127.0.0.1:1"]) == EXIT_CANNOT_RUN


# -- 8. fcgispec matrix: arguments, and docs/compatibility.md only when asked ---------------------------------


def _runs(directory: Path) -> None:
    """A run file per target in directory/runs (the synthetic runs of tests/test_compat_matrix.py)."""
    from harness.reports.compat_matrix import CaseRun, TargetRun

    (directory / "runs").mkdir(parents=True)
    for name in compat_matrix.ALL_TARGETS:
        run = TargetRun(target=name, cases=[CaseRun(id="FCGI-3.3-2", section="3.3", title="t", level="required",
                                                    requirement="r", verdict="pass")], wall_time=1.0)
        (directory / "runs" / f"{name}.json").write_text(json.dumps(run.to_dict()))


def test_matrix_without_arguments_writes_only_under_its_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "docs").mkdir(parents=True)
    out = checkout / "build" / "compat"
    _runs(out)
    monkeypatch.setattr(compat_matrix, "ROOT", checkout)
    monkeypatch.setattr(compat_matrix, "DEFAULT_OUT", out)
    assert compat_matrix.main(["--from-runs"]) == 0
    assert not (checkout / "docs" / "compatibility.md").exists() and not (checkout / "docs" / "compat").exists()
    assert (out / "compatibility.md").is_file() and (out / "compat" / "reference.md").is_file()
    assert str(out / "compatibility.md") in capsys.readouterr().err
    # The committed page is rewritten only when asked to, and says how it was made.
    assert compat_matrix.main(["--from-runs", "--update-docs"]) == 0
    assert "`./fcgispec matrix --update-docs`" in (checkout / "docs" / "compatibility.md").read_text()
    assert (checkout / "docs" / "compat" / "php-fpm.md").is_file()


@pytest.mark.parametrize("argv, fragment", [
    (["--targets", "nosuch"], "--targets: unknown 'nosuch'"),
    (["--targets", ","], "--targets: unknown empty list"),
    (["--jobs", "0"], "argument --jobs: '0' is not a whole number of 1 or more"),
    (["--jobs", "x"], "argument --jobs: 'x'"),
    (["--fcgi-timeout", "-3"], "argument --fcgi-timeout: '-3' is not a number of seconds"),
    (["--fcgi-timeout", "nan"], "argument --fcgi-timeout: 'nan'"),
    (["--update-docs", "--targets", "reference"], "--update-docs rewrites docs/compatibility.md"),
    (["--docs", "x.md", "--no-docs"], "argument --no-docs: not allowed with argument --docs"),
    (["--docs", "x.md", "--update-docs"], "not allowed with argument --docs"),
    (["--docs", "adir", "--targets", "reference"], "--docs adir is a directory"),
    (["--from-runs", "--out", "adir"], "--from-runs: cannot read"),
    (["--from-runs", "--out", "afile/x"], "afile is not a directory"),
    (["--from-runs", "--out", "badruns", "--targets", "reference"], "is not a run of the matrix"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--run-one", "nosuch", "--json", "x.json"], "--run-one NAME needs a known target"),
])
def test_matrix_bad_arguments(argv: list[str], fragment: str, inputs: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    (inputs / "badruns" / "runs").mkdir(parents=True)
    (inputs / "badruns" / "runs" / "reference.json").write_text("{not json")
    docs = ROOT / "docs" / "compatibility.md"
    unchanged = docs.stat().st_mtime_ns
    before = sorted(p.relative_to(inputs) for p in inputs.rglob("*"))
    assert compat_matrix.main(argv) == EXIT_USAGE
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], lines
    assert sorted(p.relative_to(inputs) for p in inputs.rglob("*")) == before
    assert docs.stat().st_mtime_ns == unchanged


def test_the_launcher_style_run_exits_4_on_a_bad_option() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    for module, argv in (("harness.replay.cli", ["replay", "--timeout", "-1", str(NGINX_KEEPALIVE)]),
                         ("harness.reports.compat_matrix", ["--jobs", "0"])):
        done = subprocess.run([PYTHON, "-m", module, *argv], capture_output=True, text=True, env=env,
                              timeout=SUBPROCESS_TIMEOUT)
        assert done.returncode == EXIT_USAGE and len(done.stderr.splitlines()) == 1, done.stderr
    assert time.monotonic() - started < SUBPROCESS_TIMEOUT
