"""The server suite's option values, checked before anything runs.

A mistake in an option must cost the user one line, not a traceback after the run (a report that
cannot be written) nor a run that tests nothing (a --case that matches no case). Each function
raises OptionError with the line to print; the pytest plugin (conftest.py) makes it a usage error.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Sequence

from harness.suite.case import _id_matches


class OptionError(ValueError):
    """An option value the suite cannot run with; str() is the one line to print."""


# What --case ids look like, for the message when one matches nothing.
CASE_ID_FORMS = "case ids look like FCGI-3.3-6, REPLAY-nginx-head, REG-php-72185-empty-stdout-midstream"


def parse_fcgi_timeout(text: str) -> float:
    """--fcgi-timeout SECONDS: a positive, finite number."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise OptionError(f"--fcgi-timeout: the value must be a positive number of seconds, got {text!r}")
    return seconds


def check_output_path(option: str, path: str) -> None:
    """A report file the run will write at its end: it must be writable now, or the run's results
    would be lost. Creates nothing that stays: a file made for the check is removed."""
    if not path:
        raise OptionError(f"{option}: the path is empty")
    target = Path(path)
    if target.is_dir():
        raise OptionError(f"{option}: {path} is a directory, not a file")
    parent = target.parent
    if not parent.exists():
        raise OptionError(f"{option}: cannot write {path}: the directory {parent} does not exist")
    if not parent.is_dir():
        raise OptionError(f"{option}: cannot write {path}: {parent} is not a directory")
    existed = target.exists()
    try:
        with open(target, "ab"):
            pass
    except OSError as error:
        raise OptionError(f"{option}: cannot write {path}: {error.strerror or error}") from None
    if not existed:
        try:
            os.unlink(target)
        except OSError:
            pass


def check_case_prefixes(prefixes: Sequence[str], case_ids: Iterable[str]) -> None:
    """Every --case value selects at least one case of the catalogue the run collects."""
    ids = list(case_ids)
    for prefix in prefixes:
        if not prefix.strip():
            raise OptionError(f"--case: an empty case id; {CASE_ID_FORMS}; see --collect-only")
        if not any(_id_matches(case_id, prefix) for case_id in ids):
            raise OptionError(f"no case matches --case {prefix}; {CASE_ID_FORMS}; see --collect-only")
