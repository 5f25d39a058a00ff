"""What every fcgispec command line shares: the exit statuses, a parser whose usage errors are one line
and exit 4, the checks of option values, and writing an output file without losing it.

Exit statuses (the same for every fcgispec command):
    0  everything checked held
    1  a required behaviour is broken (for replay: the target diverged from the capture)
    2  the run was interrupted (SIGINT, SIGTERM)
    3  the harness could not run: the target unreachable or not starting, an internal error
    4  usage error: a bad option or value, an unknown name, a file that cannot be read or written,
       a selection that matches nothing
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from harness.installation.paths import output_file_problem

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_INTERRUPTED = 2
EXIT_CANNOT_RUN = 3
EXIT_USAGE = 4

EXIT_STATUS_HELP = ("exit status: 0 as expected, 1 a divergence (a required behaviour broken), 2 interrupted, "
                    "3 could not run (target unreachable, internal error), 4 usage error")

# The longest wait any option may ask for: a day, so that a typo cannot make a run wait for ever.
MAX_SECONDS = 86400.0
META_KEY = re.compile(r"[A-Za-z0-9_.-]+")


class UsageError(Exception):
    """The user asked for something that cannot be done as asked (exit 4); the message is one line."""


class CannotRun(Exception):
    """The harness could not do its work (exit 3): a target that does not start or answer."""


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr and exit status 4 (argparse's is 2,
    which the scheme keeps for an interrupted run)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535."""
    if not re.fullmatch(r"[0-9]+", text.strip()) or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1 to 65535)")
    return int(text)


def listen_port(text: str) -> int:
    """A port to listen on, 1 to 65535, or 0 for any free one."""
    if text.strip() == "0":
        return 0
    try:
        return port_number(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1 to 65535, or 0 for any free one)") from None


def host_port(text: str) -> tuple[str, int]:
    """HOST:PORT ([IPv6]:PORT too), the port 1 to 65535."""
    host, colon, port = text.rpartition(":")
    host = host.strip("[]")
    if not colon or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, port_number(port)


def seconds(text: str) -> float:
    """A finite number of seconds, more than 0 and at most MAX_SECONDS."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (more than 0, at most {MAX_SECONDS:g})")
    return value


def positive_count(text: str) -> int:
    """A whole number, 1 or more."""
    if not re.fullmatch(r"[0-9]+", text.strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def meta_pair(text: str) -> tuple[str, str]:
    """KEY=VALUE for a transcript's header: KEY a word, VALUE one line."""
    key, equals, value = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if not META_KEY.fullmatch(key):
        raise argparse.ArgumentTypeError(f"the key of {text!r} must be a word (letters, digits, '_', '.', '-')")
    return key, one_line(value)


def one_line(text: str) -> str:
    """Header text: one line (a transcript's header holds no line break)."""
    if "\n" in text or "\r" in text:
        raise argparse.ArgumentTypeError(f"{text!r} must be one line")
    return text


def check_readable_file(path: str | Path) -> Path:
    """The path of an input file, or UsageError saying why it cannot be read."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a file")
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: not readable")
    return path


def check_writable_file(path: str | Path) -> Path:
    """The path of an output file, checked before any work (UsageError says why it cannot be written)."""
    problem = output_file_problem(path)
    if problem is not None:
        raise UsageError(problem)
    return Path(path)


def check_writable_directory(path: str | Path) -> Path:
    """An output directory: it is a directory, or can be made in its nearest existing parent."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot write under {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write under {path}: {existing} is not writable")
    return path


def write_file(path: str | Path, text: str) -> None:
    """Write text to path whole or not at all: a temporary file beside it, renamed over it (OSError)."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def save_elsewhere(text: str, prefix: str, suffix: str) -> Path:
    """Keep text that could not go where it was asked to: a new file in the temporary directory."""
    descriptor, name = tempfile.mkstemp(prefix=prefix, suffix=suffix)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    return Path(name)


def fail(prog: str, message: str, status: int) -> int:
    """Print one line for the user and return the exit status."""
    print(f"{prog}: {message}", file=sys.stderr)
    return status
