"""probe-check: does a target's probe app keep the probe contract (docs/probe-app.md)?

`python3 -m harness.probe_check --target SPEC` starts or attaches the target as the suite does,
sends requests with known inputs that exercise each part of the contract, and prints one line
per part: ok, WRONG (what was expected, what the app reported) or missing (a declared
limitation, or a role the target does not play). `exchange.py` sends one request and reads its
answer, `parts.py` holds the parts and their checks, `cli.py` the command line.
"""
