"""scripts/install-packages: a feature's Debian packages installed on first use, and the machine
left as it was.

The script runs here on a list of made-up packages, with apt-get and apt-cache replaced on PATH
by stand-ins that record what they were asked and whether a policy-rc.d was in place then; the
policy-rc.d path is moved into the test's directory, so the real one is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent

PACKAGE_LIST = """\
# made-up packages
[present] a section whose package is installed
python3
[demo] a demo feature
fcgispec-test-one
fcgispec-test-two
[unknown] a package no source has
fcgispec-test-nowhere
[by-file] a package counted present by a file
fcgispec-test-three /bin/sh
"""

APT_GET = """#!/bin/sh
echo "apt-get $*" >> "$LOG"
if [ -e "$FCGISPEC_POLICY_RC_D" ]; then echo "policy present" >> "$LOG"; else echo "policy absent" >> "$LOG"; fi
exit "${APT_GET_STATUS:-0}"
"""

APT_CACHE = """#!/bin/sh
# apt-cache show --no-all-versions NAME: known unless it is the one no source has
case "$3" in fcgispec-test-nowhere) exit 100 ;; esac
exit 0
"""


@pytest.fixture
def installer() -> Iterator[tuple[Path, dict[str, str]]]:
    # Not under pytest's tmp_path: another user must be able to reach the script.
    tmp_path = Path(tempfile.mkdtemp(prefix="fcgispec-install-packages-"))
    tmp_path.chmod(0o755)
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(ROOT / "scripts" / "install-packages", scripts / "install-packages")
    (scripts / "debian-packages.txt").write_text(PACKAGE_LIST)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("apt-get", APT_GET), ("apt-cache", APT_CACHE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", LOG=str(tmp_path / "log"),
               FCGISPEC_POLICY_RC_D=str(tmp_path / "policy-rc.d"))
    yield scripts / "install-packages", env
    shutil.rmtree(tmp_path)


def _run(script: Path, env: dict[str, str], *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(script), *args]
    if user is not None:
        argv = ["setpriv", "--reuid", user, "--regid", "nogroup", "--clear-groups", *argv]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def _log(env: dict[str, str]) -> list[str]:
    path = Path(env["LOG"])
    return path.read_text().splitlines() if path.exists() else []


def test_nothing_is_done_when_the_packages_are_present(installer: tuple[Path, dict[str, str]]) -> None:
    script, env = installer
    assert _run(script, env, "present", "by-file").returncode == 0
    assert _log(env) == []


def test_missing_packages_are_installed_with_services_kept_from_starting_for_the_install_only(
    installer: tuple[Path, dict[str, str]],
) -> None:
    script, env = installer
    run = _run(script, env, "demo")
    assert run.returncode == 0, run.stderr
    assert "installing fcgispec-test-one fcgispec-test-two (for demo: a demo feature)" in run.stderr
    log = _log(env)
    install = [line for line in log if " install " in line]
    assert len(install) == 1 and install[0].endswith("fcgispec-test-one fcgispec-test-two")
    assert log[log.index(install[0]) + 1] == "policy present"
    assert not Path(env["FCGISPEC_POLICY_RC_D"]).exists(), "the policy-rc.d put in place was left behind"


def test_a_policy_rc_d_of_the_machine_is_left_as_it_was(installer: tuple[Path, dict[str, str]]) -> None:
    script, env = installer
    policy = Path(env["FCGISPEC_POLICY_RC_D"])
    policy.write_text("#!/bin/sh\n# the machine's own\nexit 0\n")
    assert _run(script, env, "demo").returncode == 0
    assert policy.read_text() == "#!/bin/sh\n# the machine's own\nexit 0\n"


def test_a_failed_install_still_removes_the_policy_and_says_so(installer: tuple[Path, dict[str, str]]) -> None:
    script, env = installer
    run = _run(script, {**env, "APT_GET_STATUS": "100"}, "demo")
    assert run.returncode == 1
    assert "apt-get install failed (100)" in run.stderr
    assert not Path(env["FCGISPEC_POLICY_RC_D"]).exists()


def test_a_package_without_candidate_is_unsupported_here(installer: tuple[Path, dict[str, str]]) -> None:
    script, env = installer
    run = _run(script, env, "unknown")
    assert run.returncode == 6
    assert "no installation candidate on this machine for: fcgispec-test-nowhere" in run.stderr
    assert not any(" install " in line for line in _log(env))


def test_a_user_other_than_root_gets_the_apt_get_line(installer: tuple[Path, dict[str, str]]) -> None:
    script, env = installer
    run = _run(script, env, "demo", user="nobody")
    assert run.returncode == 4
    assert "as root, run: apt-get install --no-install-recommends fcgispec-test-one fcgispec-test-two" in run.stderr
    assert _log(env) == []


def test_check_only_installs_nothing(installer: tuple[Path, dict[str, str]]) -> None:
    script, env = installer
    run = _run(script, env, "--check", "demo")
    assert run.returncode == 4 and "missing Debian packages: fcgispec-test-one fcgispec-test-two" in run.stderr
    assert _log(env) == []


@pytest.mark.parametrize("args", [[], ["no-such-section"]])
def test_a_wrong_section_is_a_usage_error(installer: tuple[Path, dict[str, str]], args: list[str]) -> None:
    script, env = installer
    run = _run(script, env, *args)
    assert run.returncode == 4 and run.stderr.startswith(("usage: install-packages", "fcgispec: no package section"))


def test_every_named_target_has_its_section() -> None:
    from harness.installation.packages import section_packages
    from harness.targets.named import NAMED_TARGETS

    for name in NAMED_TARGETS:
        assert section_packages(ROOT, name), f"no [{name}] section in scripts/debian-packages.txt"


def test_a_named_target_whose_packages_cannot_be_had_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.installation.packages import PackagesUnavailable
    from harness.targets import named
    from harness.targets.base import TargetUnsupported

    asked: list[str] = []

    def unavailable(root: Path, section: str) -> None:
        asked.append(section)
        raise PackagesUnavailable(f"no installation candidate on this machine for: {section}")

    monkeypatch.setattr(named.PerlFcgiTarget, "executables", ("/nonexistent/perl",))
    monkeypatch.setattr(named, "ensure_packages", unavailable)
    target = named.named_target("perl-fcgi", ROOT)
    with pytest.raises(TargetUnsupported, match="perl-fcgi cannot be installed here: no installation candidate"):
        target.start()
    assert asked == ["perl-fcgi"]


def test_a_named_target_installs_its_section_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.targets import named

    installed: list[str] = []
    monkeypatch.setattr(named.PerlFcgiTarget, "executables", ("/nonexistent/perl",))
    monkeypatch.setattr(named, "ensure_packages", lambda root, section: installed.append(section))
    target = named.named_target("perl-fcgi", ROOT)
    # The stand-in installs nothing, so the target still misses its program: said with the apt-get line.
    with pytest.raises(named.TargetError, match=r"/nonexistent/perl not installed \(apt-get install libfcgi-perl\)"):
        target.start()
    assert installed == ["perl-fcgi"]
