"""The server suite's options: their definitions (add_suite_options), and their values checked
before anything runs.

A mistake in an option must cost the user one line, not a traceback after the run (a report that
cannot be written) nor a run that tests nothing (a --case that matches no case). Each function
raises OptionError with the line to print; the pytest plugin (conftest.py) makes it a usage error.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from harness.installation.paths import output_file_problem
from harness.suite.case import BASE_WAIT, _id_matches
from harness.targets.selection import PROBE_APP_CHOICES


OPTION_GROUP = "fcgispec"
OPTION_GROUP_DESCRIPTION = "FastCGI conformance suite"


def add_suite_options(group: Any) -> None:
    """The suite's options, added to a pytest option group (conftest.py's pytest_addoption; the
    help of `python -m harness.suite.usage` is made from the same calls)."""
    group.addoption("--target", default="reference", metavar="SPEC",
                    help="reference (default), a named server (php-fpm, go-fcgi, libfcgi, fcgiwrap, perl-fcgi, uwsgi, "
                         "php-cgi, node-fastcgi, mojo-fastcgi, net-async-fastcgi), "
                         "tcp:HOST:PORT, unix:PATH or cmd:'COMMAND {port}'")
    group.addoption("--case", action="append", default=[], metavar="PREFIX",
                    help="run only cases whose id starts with PREFIX (FCGI-3.3 = a section); repeatable")
    # pytest owns --strict (a deprecated alias of --strict-markers); fcgispec reads it too,
    # and --fcgi-strict says the same where a pytest without --strict runs the suite.
    group.addoption("--fcgi-strict", action="store_true", default=False,
                    help="a missed recommendation (warn) fails the run (same as --strict)")
    group.addoption("--report-json", default=None, metavar="PATH", help="write the per-case JSON report here")
    # Read as text and checked in pytest_configure: a bad value is then one line, not argparse's usage text.
    group.addoption("--fcgi-timeout", default=BASE_WAIT, metavar="SECONDS",
                    help=f"base wait for an answer, a positive number of seconds (default {BASE_WAIT:g}); "
                         "all case timeouts scale with it")
    group.addoption("--script-filename", default=None, metavar="PATH",
                    help="the SCRIPT_FILENAME of the target's probe app (any target; e.g. the probe.php php-cgi runs); "
                         "the target is then asked whether it runs the probe app")
    group.addoption("--probe-limitations", default=None, metavar="KEY=WHY,...",
                    help="parts of the probe contract the target's probe app cannot do, with why "
                         "(keys: params-order, params-duplicates, params-bytes, params-all, stdin-content-length, "
                         "short-stdin, err, app_status, echo, authorizer, filter)")
    group.addoption("--probe-app", default=None, choices=PROBE_APP_CHOICES,
                    help="whether the target runs the probe app: auto (ask it), yes, no "
                         "(default: the target's own say; tcp:/unix: no unless --script-filename is given)")
    group.addoption("--exclude-file", default=None, metavar="PATH",
                    help="known deviations, one 'CASE-ID  reason' a line: they still run, but a failure "
                         "is reported as excluded and does not fail the run")


class OptionError(ValueError):
    """An option value the suite cannot run with; str() is the one line to print."""


# What --case ids look like, for the message when one matches nothing.
CASE_ID_FORMS = "case ids look like FCGI-3.3-6, REPLAY-nginx-head, REG-php-72185-empty-stdout-midstream"


# The longest base wait taken: every socket wait must fit the C time types, and an hour per answer is
# already more than any target needs.
MAX_FCGI_TIMEOUT = 3600.0


def parse_fcgi_timeout(text: str) -> float:
    """--fcgi-timeout SECONDS: a positive number, at most MAX_FCGI_TIMEOUT."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise OptionError(f"--fcgi-timeout: the value must be a positive number of seconds, got {text!r}")
    if seconds > MAX_FCGI_TIMEOUT:
        raise OptionError(f"--fcgi-timeout: at most {MAX_FCGI_TIMEOUT:g} seconds, got {text!r}")
    return seconds


def check_output_path(option: str, path: str) -> None:
    """A report file the run will write at its end: it must be writable now, or the run's results
    would be lost."""
    problem = output_file_problem(path) if path else "the path is empty"
    if problem is not None:
        raise OptionError(f"{option}: {problem}")


def check_case_prefixes(prefixes: Sequence[str], case_ids: Iterable[str]) -> None:
    """Every --case value selects at least one case of the catalogue the run collects."""
    ids = list(case_ids)
    for prefix in prefixes:
        if not prefix.strip():
            raise OptionError(f"--case: an empty case id; {CASE_ID_FORMS}; see --collect-only")
        if not any(_id_matches(case_id, prefix) for case_id in ids):
            raise OptionError(f"no case matches --case {prefix}; {CASE_ID_FORMS}; see --collect-only")
