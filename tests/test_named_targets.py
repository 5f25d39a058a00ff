"""The named targets (harness/targets/named.py): each real server starts, serves its probe app, stops clean.

For each of php-fpm, go-fcgi, libfcgi, fcgiwrap, perl-fcgi, uwsgi, php-cgi, node-fastcgi,
mojo-fastcgi and net-async-fastcgi: it starts on a free loopback port, answers a GET with a query (params reported), a POST of 100 KB of STDIN
(checked by SHA-256), out=100000 (the pattern) and err= (on FCGI_STDERR where the platform
can), and stop() leaves no process, temporary directory or socket file behind. A target
whose Debian packages (or Perl modules) are missing is skipped, naming them.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import pytest

from harness.targets import named as named_targets
from harness.wire.connection import request
from harness.targets.named import NAMED_TARGETS, NamedSpawnedTarget, build_named_target
from harness.wire.probe_app import (
    CgiResponse,
    ProbeReport,
    parse_cgi,
    parse_probe_report,
    pattern_bytes,
    probe_params,
    probe_query,
)
from harness.targets.base import Target
from harness.targets.process import group_members

ROOT = Path(__file__).resolve().parent.parent
NAMES = sorted(NAMED_TARGETS)
LIMIT_KEYS = {value for key, value in vars(named_targets).items() if key.startswith("LIMIT_")}
TIMEOUT = 10.0


def _skip_unless_installed(name: str) -> None:
    missing = NAMED_TARGETS[name].missing()
    if missing:
        pytest.skip(f"{', '.join(missing)} missing (apt-get install {' '.join(NAMED_TARGETS[name].packages)})")


def _ask(
    target: NamedSpawnedTarget, query: str, stdin: bytes = b"", method: str = "GET", extra=()
) -> tuple[CgiResponse, bytes, object]:
    params = probe_params(query, method, extra, content_length=len(stdin) if stdin else None)
    if target.script_filename is not None:
        params = [(n, target.script_filename) if n == "SCRIPT_FILENAME" else (n, v) for n, v in params]
    conn = target.connect(timeout=TIMEOUT)
    try:
        response = request(conn, 1, params, stdin, keep_conn=False, timeout=TIMEOUT)
    finally:
        conn.close()
    assert response.end is not None and response.end.protocol_status == 0, conn.format_trace()
    return parse_cgi(response.stdout), response.stderr, response.end


def _report(cgi: CgiResponse) -> ProbeReport:
    assert cgi.status == 200, cgi
    return parse_probe_report(cgi.body)


def _stop_and_check_gone(target: NamedSpawnedTarget) -> None:
    assert target.process is not None
    pid = target.process.pid
    workdir = target.workdir
    socket_path = target.socket_path
    target.stop()
    assert target.process.poll() is not None
    assert group_members(pid) == [], f"{target.name} left processes behind"
    assert workdir is None or not os.path.exists(workdir), f"{target.name} left {workdir} behind"
    assert socket_path is None or not os.path.exists(socket_path)


@pytest.fixture(params=NAMES)
def started(request: pytest.FixtureRequest):
    name = request.param
    _skip_unless_installed(name)
    target = NAMED_TARGETS[name].make(ROOT)
    target.start()
    try:
        yield target
    finally:
        target.stop()


def test_table_is_complete() -> None:
    assert NAMES == sorted(["php-fpm", "go-fcgi", "libfcgi", "fcgiwrap", "perl-fcgi", "uwsgi", "php-cgi",
                            "node-fastcgi", "mojo-fastcgi", "net-async-fastcgi"])
    for name, named in NAMED_TARGETS.items():
        assert named.name == name and named.description and named.packages
        assert set(named.limitations) <= LIMIT_KEYS, f"{name}: unknown limitation keys"
        assert all(named.limitations.values())
        if named.script_filename is not None:
            assert (ROOT / named.script_filename).is_file()
        assert named.needs_build == (name in ("go-fcgi", "libfcgi"))


def test_answers_the_probe(started: NamedSpawnedTarget) -> None:
    """GET with a query, POST of 100 KB, out=, err= and status= each get the probe's answer."""
    target = started
    assert target.has_probe_app and target.probe_limitations == NAMED_TARGETS[target.name].limitations
    # GET with a query: the report carries the params (a custom one too).
    query = probe_query(status=200, tag="named target")
    report = _report(_ask(target, query, extra=[("X_FCGISPEC_TAG", "probe-42")])[0])
    assert report.role == "responder"
    assert report.param("QUERY_STRING") == query.encode()
    assert report.param("REQUEST_METHOD") == b"GET"
    assert report.param("X_FCGISPEC_TAG") == b"probe-42"
    assert report.stdin_length == 0
    # POST with 100 KB of STDIN: length and digest in the headers and the report.
    body = os.urandom(100 * 1024)
    cgi, _, _ = _ask(target, "", body, "POST")
    report = _report(cgi)
    digest = hashlib.sha256(body).hexdigest()
    assert (report.stdin_length, report.stdin_sha256) == (len(body), digest)
    assert cgi.header("X-Probe-Stdin-Length") == str(len(body)) and cgi.header("X-Probe-Stdin-Sha256") == digest
    # out=100000, err=TEXT, status=NNN.
    cgi, stderr, _ = _ask(target, probe_query(out=100000, err="fcgispec-err", status=404))
    assert cgi.status == 404
    assert cgi.body == pattern_bytes(100000)
    if named_targets.LIMIT_STDERR not in target.probe_limitations:
        assert stderr == b"fcgispec-err"
    elif target.name in ("php-fpm", "php-cgi"):
        assert b"fcgispec-err" in stderr


def test_app_status_where_supported(started: NamedSpawnedTarget) -> None:
    if named_targets.LIMIT_APP_STATUS in started.probe_limitations:
        pytest.skip(started.probe_limitations[named_targets.LIMIT_APP_STATUS])
    _, _, end = _ask(started, probe_query(app_status=7))
    assert end.app_status == 7  # type: ignore[attr-defined]


def test_delay(started: NamedSpawnedTarget) -> None:
    begun = time.monotonic()
    _report(_ask(started, probe_query(delay=300))[0])
    assert time.monotonic() - begun >= 0.29


def test_short_stdin_is_refused(started: NamedSpawnedTarget) -> None:
    if named_targets.LIMIT_SHORT_STDIN in started.probe_limitations:
        pytest.skip(started.probe_limitations[named_targets.LIMIT_SHORT_STDIN])
    params = probe_params("", "POST", content_length=10)
    if started.script_filename is not None:
        params = [(n, started.script_filename) if n == "SCRIPT_FILENAME" else (n, v) for n, v in params]
    conn = started.connect(timeout=TIMEOUT)
    try:
        response = request(conn, 1, params, b"hello", keep_conn=False, timeout=TIMEOUT)
    finally:
        conn.close()
    cgi = parse_cgi(response.stdout)
    assert cgi.status == 400 and cgi.header("X-Probe-Error") == "stdin shorter than CONTENT_LENGTH"


@pytest.mark.parametrize("name", NAMES)
def test_stops_leaving_nothing_behind(name: str) -> None:
    _skip_unless_installed(name)
    target = NAMED_TARGETS[name].make(ROOT)
    target.start()
    _report(_ask(target, probe_query(status=200))[0])
    _stop_and_check_gone(target)
    with pytest.raises(OSError):
        family, address = target.address()
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.connect(address)


@pytest.mark.parametrize("name", NAMES)
def test_unix_socket(name: str) -> None:
    _skip_unless_installed(name)
    target = NAMED_TARGETS[name].make(ROOT, unix=True)
    target.start()
    try:
        assert target.address()[0] == socket.AF_UNIX
        _report(_ask(target, probe_query(status=200))[0])
    finally:
        _stop_and_check_gone(target)


@pytest.mark.parametrize("name", [name for name in NAMES if NAMED_TARGETS[name].factory.fd0_capable])
def test_listening_socket_on_fd0(name: str) -> None:
    _skip_unless_installed(name)
    target = NAMED_TARGETS[name].make(ROOT).variant(fd0=True)
    target.start()
    try:
        _report(_ask(target, probe_query(status=200))[0])
    finally:
        _stop_and_check_gone(target)


@pytest.mark.parametrize("name", ["go-fcgi", "libfcgi"])
def test_build_is_quick_when_nothing_changed(name: str) -> None:
    _skip_unless_installed(name)
    binary = build_named_target(name, ROOT)
    assert binary is not None and binary.exists()
    begun = time.monotonic()
    assert build_named_target(name, ROOT) == binary
    assert time.monotonic() - begun < 0.5
    assert build_named_target("php-fpm", ROOT) is None


# --- wiring: --target NAME, SCRIPT_FILENAME, probe limitations ------------------------------------


def test_parse_target_knows_every_name() -> None:
    from harness.targets.base import TargetError
    from harness.targets.selection import parse_target

    for name in NAMES:
        target = parse_target(name, ROOT)
        assert isinstance(target, NamedSpawnedTarget) and target.name == name
        assert target.has_probe_app is True  # never sent through detect_probe_app
        assert target.process is None  # not started by parsing
    with pytest.raises(TargetError, match="php-fpm, go-fcgi"):
        parse_target("nginx", ROOT)


def test_every_target_declares_the_interface() -> None:
    """Each kind of target says what it is through Target's attributes, without isinstance checks."""
    from harness.targets.selection import parse_target

    def declared(spec: str) -> tuple:
        target = parse_target(spec, ROOT)
        return (target.spawned, target.is_reference, target.through_shell, target.has_probe_app,
                dict(target.probe_limitations), target.script_filename, target.exit_status(),
                target.param_unreported(b"PATH"))

    assert declared("tcp:127.0.0.1:9000") == (False, False, False, False, {}, None, None, False)
    assert declared("unix:/tmp/app.sock") == (False, False, False, False, {}, None, None, False)
    assert declared("reference") == (True, True, False, True, {}, None, None, False)
    assert declared("reference --workers 2") == (True, True, False, True, {}, None, None, False)
    assert declared("cmd:app --port {port}") == (True, False, False, None, {}, None, None, False)
    assert declared("cmd:cd /srv && app --port {port}")[2] is True
    assert parse_target("tcp:127.0.0.1:9000", ROOT).process_stats() is None
    assert parse_target("tcp:127.0.0.1:9000", ROOT).log_tail() == ""
    for name, named in NAMED_TARGETS.items():
        spawned, reference, shell, probe, limitations, script, status, path_hidden = declared(name)
        assert (spawned, reference, shell, probe, status) == (True, False, False, True, None), name
        assert limitations == named.limitations, name
        assert script == (str(ROOT / named.script_filename) if named.script_filename else None), name
        assert path_hidden == (name == "fcgiwrap"), name  # fcgiwrap keeps its own PATH from the probe
    assert "not started by the harness" in parse_target("tcp:127.0.0.1:9000", ROOT).exit_text()


def test_probe_params_send_the_target_script_filename() -> None:
    from harness.suite.case import CaseContext, case
    from harness.verdicts import Level
    from harness.wire.probe_app import PROBE_SCRIPT_FILENAME

    def script(params) -> str:
        return dict(params)["SCRIPT_FILENAME"]

    @case("FCGI-9-1", title="t", requirement="r", level=Level.REQUIRED)
    def dummy(ctx):  # pragma: no cover - never run
        return None

    php = NAMED_TARGETS["php-fpm"].make(ROOT)
    go = NAMED_TARGETS["go-fcgi"].make(ROOT)
    assert php.script_filename == str(ROOT / "fixtures" / "targets" / "php-fpm" / "probe.php")
    assert script(probe_params()) == PROBE_SCRIPT_FILENAME
    php_case = CaseContext(php, dummy)
    assert script(php_case.probe_params(probe_query(out=1), "POST", content_length=3)) == php.script_filename
    assert script(php_case.post_params(3)) == php.script_filename
    assert script(CaseContext(go, dummy).probe_params()) == PROBE_SCRIPT_FILENAME  # any value will do for Go
    assert script(probe_params(script_filename="/x")) == "/x"


class _FakeTarget(Target):
    has_probe_app = True
    probe_limitations = {
        named_targets.LIMIT_APP_STATUS: "appStatus is always 0",
        named_targets.LIMIT_PARAMS_ORDER: "a hash",
        named_targets.LIMIT_PARAMS_DUPLICATES: "a hash",
        named_targets.LIMIT_PARAMS_ALL: "the platform keeps HIDDEN",
    }

    def param_unreported(self, name: bytes) -> bool:
        return name == b"HIDDEN"


def test_probe_limitations_make_checks_unsupported_not_failed() -> None:
    from harness.suite.case import CaseContext, case
    from harness.verdicts import Level, Unsupported

    @case("FCGI-9-1", title="t", requirement="r", level=Level.REQUIRED)
    def dummy(ctx):  # pragma: no cover - never run
        return None

    ctx = CaseContext(_FakeTarget(), dummy)  # type: ignore[arg-type]
    with pytest.raises(Unsupported, match="cannot do app_status: appStatus is always 0"):
        ctx.require_probe_feature("app_status")
    ctx.require_probe_feature("echo")  # not a limitation of this target
    assert ctx.probe_can("echo") and not ctx.probe_can("app_status")
    sent = [(b"A", b"1"), (b"HIDDEN", b"x"), (b"B", b"2"), (b"B", b"3")]
    assert ctx.params_match([(b"B", b"3"), (b"A", b"1"), (b"ADDED", b"by the platform")], sent)
    assert not ctx.params_match([(b"B", b"3"), (b"A", b"other")], sent)  # bytes still count
    assert not ctx.params_match([(b"A", b"1")], sent)  # a param lost is still lost
    exact = CaseContext(NAMED_TARGETS["libfcgi"].make(ROOT), dummy)
    assert exact.params_match(sent, sent) and not exact.params_match(list(reversed(sent)), sent)


@pytest.mark.parametrize("name", [name for name in NAMES if name not in ("go-fcgi", "uwsgi", "net-async-fastcgi")])
def test_authorizer_role_where_the_platform_passes_it(name: str) -> None:
    """Probes that see FCGI_ROLE play the Authorizer as the reference responder does."""
    _skip_unless_installed(name)
    target = NAMED_TARGETS[name].make(ROOT)
    target.start()
    try:
        for token, status in (("Bearer fcgispec", 200), ("Bearer other", 403)):
            params = [(n, v) for n, v in probe_params(script_filename=target.script_filename)
                      if n not in ("SCRIPT_NAME",)] + [("HTTP_AUTHORIZATION", token)]
            conn = target.connect(timeout=TIMEOUT)
            try:
                response = request(conn, 1, params, b"", role=2, keep_conn=False, timeout=TIMEOUT)
            finally:
                conn.close()
            cgi = parse_cgi(response.stdout)
            assert cgi.status == status, response.stdout[:200]
            assert (cgi.header("Variable-FCGISPEC_USER") == "probe") == (status == 200)
    finally:
        target.stop()


def test_libfcgi_filter_echoes_data() -> None:
    """The libfcgi probe in the Filter role answers with the FCGI_DATA it was sent."""
    _skip_unless_installed("libfcgi")
    from harness.wire.codec import RecordType, Role, begin_request_body, encode_params, encode_record, stream_records

    target = NAMED_TARGETS["libfcgi"].make(ROOT)
    target.start()
    try:
        data = pattern_bytes(70000)
        params = probe_params("", "POST", [("FCGI_DATA_LENGTH", str(len(data)))], content_length=4)
        conn = target.connect(timeout=TIMEOUT)
        conn.send_records(
            [encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.FILTER, 0))]
            + stream_records(RecordType.PARAMS, 1, encode_params(params))
            + stream_records(RecordType.STDIN, 1, b"form")
            + stream_records(RecordType.DATA, 1, data)
        )
        records = conn.read_all_until(lambda record: record.type == RecordType.END_REQUEST, TIMEOUT)
        conn.close()
        stdout = b"".join(r.content for r in records if r.type == RecordType.STDOUT)
        cgi = parse_cgi(stdout)
        assert cgi.body == data and cgi.header("X-Filter-Stdin-Length") == "4"
    finally:
        target.stop()


def test_pytest_target_option_runs_a_named_target() -> None:
    import subprocess

    _skip_unless_installed("go-fcgi")
    done = subprocess.run(
        ["/usr/bin/python3", "-m", "pytest", "cases/server", "-q", "-p", "no:cacheprovider", "--target", "go-fcgi",
         "--case", "FCGI-5.1-1", "--case", "FCGI-6.2-2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    lines = done.stdout.rstrip().splitlines()
    assert lines[-1] == "2 cases: 1 passed, 0 failed, 0 warnings, 0 info, 1 unsupported, 0 errors", done.stdout[-2000:]
    assert "cannot do app_status" in done.stdout


# --- node-fastcgi comes from npm --------------------------------------------------------------------


def _fake_npm(tmp_path: Path, script: str) -> str:
    npm = tmp_path / "npm"
    npm.write_text("#!/bin/sh\n" + script + "\n")
    npm.chmod(0o755)
    return str(npm)


def test_npm_install_failure_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry that cannot be reached (npm exits 1) is a TargetError naming the package and npm's message."""
    from harness.targets.base import TargetError

    monkeypatch.setattr(named_targets, "NPM", _fake_npm(tmp_path, "echo 'npm ERR! code ENOTFOUND registry' >&2; exit 1"))
    with pytest.raises(TargetError, match=r"cannot install node-fastcgi@2\.0\.0 from npm(.|\n)*ENOTFOUND"):
        named_targets.install_npm_package(tmp_path, "node-fastcgi", "2.0.0")
    # npm that exits 0 without installing the version asked for is no better.
    monkeypatch.setattr(named_targets, "NPM", _fake_npm(tmp_path, "exit 0"))
    with pytest.raises(TargetError, match="cannot install node-fastcgi@2.0.0"):
        named_targets.install_npm_package(tmp_path, "node-fastcgi", "2.0.0")
    monkeypatch.setattr(named_targets, "NPM", str(tmp_path / "no-npm"))
    with pytest.raises(TargetError, match="no-npm not found"):
        named_targets.install_npm_package(tmp_path, "node-fastcgi", "2.0.0")
    # The target reports it at start, leaving nothing behind.
    target = NAMED_TARGETS["node-fastcgi"].make(tmp_path)
    with pytest.raises(TargetError, match="cannot install node-fastcgi"):
        target.start()
    assert target.process is None and target.workdir is None


def test_npm_is_not_asked_again_once_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(named_targets, "NPM", _fake_npm(tmp_path, "exit 1"))
    package = tmp_path / "build" / "npm" / "node_modules" / "node-fastcgi"
    package.mkdir(parents=True)
    (package / "package.json").write_text('{"name": "node-fastcgi", "version": "2.0.0"}')
    assert named_targets.install_npm_package(tmp_path, "node-fastcgi", "2.0.0") == package.parent
    (package / "package.json").write_text('{"name": "node-fastcgi", "version": "1.3.3"}')  # another version: npm runs
    with pytest.raises(Exception, match="cannot install"):
        named_targets.install_npm_package(tmp_path, "node-fastcgi", "2.0.0")
