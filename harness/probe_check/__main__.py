"""python3 -m harness.probe_check: see harness/probe_check/cli.py."""

import sys

from harness.probe_check.cli import main

sys.exit(main())
