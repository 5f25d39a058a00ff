"""The Debian package: built from the checkout, unpacked (as dpkg would lay it out, without
installing it), and run from another directory as a user without the checkout would.

It must depend only on what the server suite needs, hold the C programs ready built, and never
write into its installed tree: reports land where they are named, relative to the directory the
command was started from.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from harness.installation.packages import section_packages
from harness.targets.process import GroupProcess

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 300


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The package built by `fcgispec package`, unpacked into a directory (its /usr is DIR/usr)."""
    built = subprocess.run([str(ROOT / "fcgispec"), "package"], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert built.returncode == 0, built.stderr
    deb = Path(built.stdout.strip().splitlines()[-1])
    tree = tmp_path_factory.mktemp("unpacked")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    control = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends", "Suggests"], capture_output=True, text=True,
                             check=True).stdout
    (tree / "control").write_text(control)
    yield tree


def _listing(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*")}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment() -> dict[str, str]:
    # Nothing of the checkout may leak in: no PYTHONPATH, no build of the checkout's.
    return {key: value for key, value in os.environ.items()
            if not key.startswith("FCGISPEC_") and key not in ("PYTHONPATH",)}


def test_package_depends_on_the_core_only(unpacked: Path) -> None:
    depends_line, suggests_line = (unpacked / "control").read_text().splitlines()[:2]
    depends = {item.strip().split()[0] for item in depends_line.removeprefix("Depends:").split(",")}
    core = set(section_packages(ROOT, "core"))
    assert core <= depends, depends_line
    # The rest are the C programs' shared libraries, found by dpkg-shlibdeps.
    assert all(name in core or name.startswith("lib") for name in depends), depends_line
    for feature_package in ("nginx-light", "php-fpm", "golang-go", "uwsgi-core"):
        assert feature_package not in depends and feature_package in suggests_line


def test_package_holds_the_programs_and_the_suite(unpacked: Path) -> None:
    for path in ("usr/bin/fcgispec", "usr/lib/fcgispec/fcgispec-responder", "usr/lib/fcgispec/fcgispec-http-client",
                 "usr/share/fcgispec/installed-package", "usr/share/fcgispec/cases/server",
                 "usr/share/fcgispec/scripts/install-packages", "usr/share/doc/fcgispec/README.md"):
        assert (unpacked / path).exists(), path
    assert os.access(unpacked / "usr/bin/fcgispec", os.X_OK)
    assert not list((unpacked / "usr/share/fcgispec").rglob("__pycache__"))


def test_installed_command_runs_from_another_directory_against_a_server_started_by_hand(
    unpacked: Path, tmp_path: Path
) -> None:
    before = _listing(unpacked)
    port = _free_port()
    responder = GroupProcess([str(unpacked / "usr/lib/fcgispec/fcgispec-responder"), "--listen", f"tcp:127.0.0.1:{port}"],
                             stderr=subprocess.DEVNULL)
    try:
        run = subprocess.run(
            [str(unpacked / "usr/bin/fcgispec"), "--target", f"tcp:127.0.0.1:{port}", "--case", "FCGI-3.3",
             "--report-json", "report.json", "--junitxml", "junit.xml"],
            cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=_environment(),
        )
    finally:
        responder.stop()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "0 failed" in run.stdout
    assert sorted(_listing(tmp_path)) == ["junit.xml", "report.json"]
    assert _listing(unpacked) == before, "the run wrote into the installed tree"


def test_installed_command_runs_its_own_reference_responder(unpacked: Path, tmp_path: Path) -> None:
    before = _listing(unpacked)
    run = subprocess.run([str(unpacked / "usr/bin/fcgispec"), "--case", "FCGI-5.2"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=RUN_TIMEOUT, env=_environment())
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert _listing(tmp_path) == set()
    assert _listing(unpacked) == before, "the run wrote into the installed tree"


@pytest.mark.parametrize("command", ["selftest", "setup", "package"])
def test_checkout_commands_are_refused_by_the_installed_command(unpacked: Path, tmp_path: Path, command: str) -> None:
    run = subprocess.run([str(unpacked / "usr/bin/fcgispec"), command], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env=_environment())
    assert run.returncode == 4
    assert f"fcgispec {command}: only in a checkout" in run.stderr


def test_new_regression_is_refused_by_the_installed_command(unpacked: Path, tmp_path: Path) -> None:
    transcript = ROOT / "cases" / "regressions" / "transcripts"
    example = sorted(transcript.glob("*.transcript"))[0]
    run = subprocess.run([str(unpacked / "usr/bin/fcgispec"), "new-regression", str(example), "--name", "my-bug-1",
                          "--description", "a bug"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env=_environment())
    assert run.returncode == 4, run.stderr
    assert "this is the installed package; run new-regression from a checkout" in run.stderr
    assert not list(unpacked.rglob("my-bug-1*"))
