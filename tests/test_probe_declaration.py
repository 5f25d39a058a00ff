"""Any target's probe app: found with a body PHP reads (CONTENT_LENGTH), declared with --script-filename,
--probe-limitations and --probe-app (harness/targets/selection.py declare_probe_app)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.targets.base import CommandTarget, TargetError, TcpTarget
from harness.targets.liveness import detect_probe_app
from harness.targets.selection import declare_probe_app, parse_probe_limitations

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
PHP_PROBE = ROOT / "fixtures" / "targets" / "php-fpm" / "probe.php"
PHP_CGI = shutil.which("php-cgi")
needs_php_cgi = pytest.mark.skipif(PHP_CGI is None, reason="php-cgi is not installed (Debian php-cgi)")


@needs_php_cgi
def test_a_php_probe_app_under_php_cgi_is_detected() -> None:
    # PHP reads no request body without CONTENT_LENGTH: the detection request must send one.
    target = CommandTarget(f"{PHP_CGI} -b 127.0.0.1:{{port}}")
    declare_probe_app(target, script_filename=str(PHP_PROBE))
    target.start()
    try:
        assert target.script_filename == str(PHP_PROBE)
        assert detect_probe_app(target).found is True
    finally:
        target.stop()


def test_declared_attributes_of_a_running_server() -> None:
    target = TcpTarget("127.0.0.1:9000")
    assert target.has_probe_app is False  # a running server: no probe app unless told
    declare_probe_app(target, script_filename="/srv/probe.php",
                      limitations="app_status=END_REQUEST appStatus is always 0, stdin-content-length")
    assert target.script_filename == "/srv/probe.php"
    assert target.has_probe_app is None  # a SCRIPT_FILENAME says there is one to find
    assert dict(target.probe_limitations) == {"app_status": "END_REQUEST appStatus is always 0",
                                              "stdin-content-length": "declared with --probe-limitations"}
    for said, declared in (("yes", True), ("no", False), ("auto", None)):
        declare_probe_app(target, probe_app=said)
        assert target.has_probe_app is declared
    with pytest.raises(TargetError, match="unknown key 'app-status'"):
        parse_probe_limitations("app-status=x")
    with pytest.raises(TargetError, match="--probe-app"):
        declare_probe_app(target, probe_app="maybe")


def _suite(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "pytest", "cases/server", "-p", "no:xdist", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@needs_php_cgi
def test_options_declare_the_probe_app_of_a_cmd_target() -> None:
    result = _suite("--target", f"cmd:{PHP_CGI} -b 127.0.0.1:{{port}}", "--script-filename", str(PHP_PROBE),
                    "--probe-limitations", "app_status=PHP cannot set appStatus", "--case", "FCGI-6.2-2")
    assert ("FCGI-6.2-2 appStatus is the CGI exit status: probe app_status=938 (App. B.3) and 0 (unsupported: the "
            "probe app on this target cannot do app_status: PHP cannot set appStatus)") in result.stdout, result.stdout


def test_an_unknown_limitation_is_a_usage_error() -> None:
    result = _suite("--probe-limitations", "nonsense=x", "--case", "FCGI-4.2-1")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "unknown key 'nonsense'" in result.stderr and "Traceback" not in result.stderr, result.stderr
