"""Where fcgispec's own files are, and where a run writes its own.

fcgispec runs from a checkout (the files under PROJECT_ROOT, C parts built into build/) or from
its Debian package (the same files under /usr/share/fcgispec, marked by INSTALLED_MARKER; the
C programs under /usr/lib/fcgispec). An installed tree is never written to: what a run builds or
keeps (named-target probes, npm packages, client adapters, matrix runs) goes to the work
directory, $FCGISPEC_WORK_DIR when set, else a directory of the run that is removed with it.
Reports go where the user names them, relative to the directory the command was started from.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTALLED_MARKER = "installed-package"  # a file at the top of the installed tree
WORK_DIR_ENV = "FCGISPEC_WORK_DIR"
RUN_DIR_ENV = "FCGISPEC_RUN_DIR"  # set by the run guard (harness/run_guard.py)


def is_installed(root: Path = PROJECT_ROOT) -> bool:
    """Whether root is the installed package's tree (read-only), not a checkout."""
    return (Path(root) / INSTALLED_MARKER).exists()


def work_dir(root: Path = PROJECT_ROOT) -> Path:
    """Where a run builds and keeps what it makes: the checkout's build/, or outside an installed tree."""
    chosen = os.environ.get(WORK_DIR_ENV)
    if chosen:
        return Path(chosen).resolve()
    if not is_installed(root):
        return Path(root) / "build"
    run_dir = os.environ.get(RUN_DIR_ENV)
    base = Path(run_dir) if run_dir else Path(tempfile.gettempdir()) / f"fcgispec-work-{os.getuid()}"
    return base / "work"


def output_file_problem(path: str | Path) -> str | None:
    """Why an output file (a report, a transcript) could not be written at `path`, or None.

    Checked before the work that produces it, so that nothing is lost at the end. Creating a file
    is the only sure test (a read-only file system, /proc); the one made here is removed at once.
    """
    path = Path(path)
    if path.is_dir():
        return f"{path} is a directory, not a file"
    parent = path.parent
    if not parent.exists():
        return f"cannot write {path}: the directory {parent} does not exist"
    if not parent.is_dir():
        return f"cannot write {path}: {parent} is not a directory"
    if path.exists() and not os.access(path, os.W_OK):
        return f"cannot write {path}: permission denied"
    try:
        descriptor, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as error:
        return f"cannot write {path}: {error.strerror or error}"
    os.close(descriptor)
    os.unlink(probe)
    return None
