"""Debian packages on demand: a feature (a named target, a web server, a client adapter) installs
its own packages when first used, through scripts/install-packages and the sections of
scripts/debian-packages.txt, so that the core suite needs none of them.

As root the missing packages are installed, and what and why is said on stderr; as another user
the error carries the exact apt-get line to run. A package the machine's sources do not have
makes the feature unsupported here, with the reason.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

INSTALL_TIMEOUT = 1800.0  # seconds: a first install downloads packages
_CHECK_TIMEOUT = 30.0
_MISSING_NOT_ROOT = 4
_NO_CANDIDATE = 6


class PackagesMissing(Exception):
    """The feature's packages are missing and could not be installed (the message says what to run)."""


class PackagesUnavailable(PackagesMissing):
    """A package the feature needs has no installation candidate on this machine: unsupported here."""


def _script(root: Path) -> Path:
    return Path(root) / "scripts" / "install-packages"


def section_packages(root: Path, section: str) -> tuple[str, ...]:
    """The package names listed under [SECTION] in scripts/debian-packages.txt."""
    packages: list[str] = []
    current = None
    for line in (Path(root) / "scripts" / "debian-packages.txt").read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0].startswith("["):
            current = words[0].strip("[]")
        elif current == section:
            packages.append(words[0])
    return tuple(packages)


def packages_present(root: Path, section: str) -> bool:
    """Whether every package of the section is installed (nothing is installed by asking)."""
    result = subprocess.run([str(_script(root)), "--check", section], capture_output=True, timeout=_CHECK_TIMEOUT)
    return result.returncode == 0


def ensure_packages(root: Path, section: str) -> None:
    """Installs the section's missing packages (as root), or raises PackagesMissing / PackagesUnavailable."""
    if packages_present(root, section):
        return
    try:
        result = subprocess.run(
            [str(_script(root)), section], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            timeout=INSTALL_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise PackagesMissing(f"installing the packages for {section} took over {INSTALL_TIMEOUT:g} s") from None
    sys.stderr.write(result.stderr)  # what was installed, and for what
    message = " ".join(line.removeprefix("fcgispec: ") for line in result.stderr.splitlines() if line.strip())
    if result.returncode == _NO_CANDIDATE:
        raise PackagesUnavailable(message)
    if result.returncode != 0:
        raise PackagesMissing(message or f"scripts/install-packages {section} failed ({result.returncode})")
