"""`python -m harness.suite.usage`: the suite's own options, for `./fcgispec --help`.

pytest's --help lists them among a hundred of its own; this prints only the suite's group, made
from the definitions the plugin adds (harness/suite/run_options.py add_suite_options), so the two
cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from harness.suite.run_options import OPTION_GROUP_DESCRIPTION, add_suite_options

USAGE = "./fcgispec [options] [pytest options]"
EPILOG = (
    "pytest's options work too: -n N (parallel workers), -k EXPR, --strict (same as --fcgi-strict), "
    "--junitxml PATH, --collect-only. Exit status: 0 everything held, 1 a required behaviour is broken, "
    "2 interrupted, 3 the harness could not run (target unreachable, a case error), 4 usage error."
)


class _Group:
    """Takes the plugin's addoption calls and adds them to an argparse group instead."""

    def __init__(self, group: Any) -> None:
        self.group = group

    def addoption(self, *names: str, **attrs: Any) -> None:
        self.group.add_argument(*names, **attrs)


def usage_text() -> str:
    """The help text of the suite's options."""
    parser = argparse.ArgumentParser(prog="fcgispec", usage=USAGE, add_help=False, epilog=EPILOG)
    add_suite_options(_Group(parser.add_argument_group(OPTION_GROUP_DESCRIPTION)))
    return parser.format_help()


def main() -> int:
    sys.stdout.write(usage_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
