"""The probe-check command line.

    fcgispec probe-check --target SPEC [--script-filename PATH] [--probe-limitations KEY=WHY,...]
                         [--fcgi-timeout S] [--part NAME]...

One line per part of the probe contract on stdout (ok / WRONG / missing), then a summary. Exit
status: 0 every part ok or missing, 1 a part WRONG, 2 interrupted, 3 the target could not be
started, reached or did not answer FastCGI (also when it stops answering midway: the check is
incomplete), 4 a usage error.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn, Sequence

from harness.probe_check.exchange import Missing, Prober, Wrong
from harness.probe_check.parts import PARTS, Part
from harness.targets.base import Target, TargetError, TargetUnreachable
from harness.targets.liveness import liveness_probe
from harness.targets.selection import declare_probe_app, parse_target
from harness.wire.connection import ConnectionClosed, FcgiTimeout
from harness.wire.probe_app import PROBE_SCRIPT_FILENAME

ROOT = Path(__file__).resolve().parents[2]
PROG = "fcgispec probe-check"
DEFAULT_TIMEOUT = 5.0
EXIT_OK, EXIT_WRONG, EXIT_INTERRUPTED, EXIT_CANNOT_RUN, EXIT_USAGE = 0, 1, 2, 3, 4
OK, WRONG, MISSING, NOT_CHECKED = "ok", "WRONG", "missing", "not checked"


class UsageError(Exception):
    """A bad option or value: one line, exit 4."""


class Interrupted(Exception):
    """SIGINT or SIGTERM: the target is stopped, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 4 (its own exit status is 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


@dataclass(frozen=True)
class PartResult:
    part: Part
    state: str
    detail: str


def _timeout(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(seconds) or seconds <= 0 or seconds > 3600:
        raise argparse.ArgumentTypeError(f"expected seconds above 0 and at most 3600, got {text!r}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Check that a target's probe app keeps the probe contract (docs/probe-app.md): one line per "
        "part, ok / WRONG / missing.",
        epilog="exit status: 0 all parts ok or missing (declared), 1 a part WRONG, 2 interrupted, "
        "3 the target could not be started or reached or did not answer FastCGI, 4 usage error",
    )
    parser.add_argument("--target", required=True, metavar="SPEC",
                        help="reference, a named server, tcp:HOST:PORT, unix:PATH or cmd:'COMMAND {port}' (as for the suite)")
    parser.add_argument("--script-filename", metavar="PATH",
                        help=f"the SCRIPT_FILENAME its probe app needs (default: the target's own, else {PROBE_SCRIPT_FILENAME})")
    parser.add_argument("--probe-limitations", metavar="KEY=WHY,...",
                        help="parts its platform cannot do, as for the suite: they are reported missing, not checked")
    parser.add_argument("--fcgi-timeout", type=_timeout, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"how long to wait for each answer (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--part", action="append", default=[], metavar="NAME", choices=[part.name for part in PARTS],
                        help="check only this part (repeatable): " + ", ".join(part.name for part in PARTS))
    return parser


def _declared_target(args: argparse.Namespace) -> Target:
    """The target the options describe, not started; UsageError for an unknown spec or limitation key."""
    try:
        target = parse_target(args.target, ROOT)
        declare_probe_app(target, script_filename=args.script_filename, limitations=args.probe_limitations)
    except TargetError as error:
        raise UsageError(str(error)) from None
    return target


def _restart_if_exited(target: Target) -> str:
    """A spawned target that exited is started again, as the suite does between cases; what happened."""
    if not target.spawned or target.exit_status() is None:
        return ""
    why = target.exit_text()
    target.restart()
    return f"; the target {why} (restarted)"


def check_part(prober: Prober, part: Part) -> PartResult:
    """One part: its check's conclusion, a declared limitation, or the way its request went wrong."""
    why = part.limitation and prober.limitation(part.limitation)
    if why:
        return PartResult(part, MISSING, f"declared: {why}")
    try:
        state, detail = OK, part.check(prober)
    except Missing as missing:
        state, detail = MISSING, str(missing)
    except Wrong as wrong:
        state, detail = WRONG, f"expected {wrong.expected}; got {wrong.reported}"
    except FcgiTimeout as timeout:
        state, detail = WRONG, f"no answer: {timeout}"
    except ConnectionClosed as closed:
        state, detail = WRONG, f"the connection was closed ({'EOF' if closed.how == 'eof' else 'RST'}) before the answer"
    return PartResult(part, state, detail + _restart_if_exited(prober.target))


def _line(result: PartResult) -> str:
    return f"{result.state:<8} {result.part.name:<21} {result.detail}"


def _summary(results: list[PartResult]) -> list[str]:
    counts = {state: sum(r.state == state for r in results) for state in (OK, WRONG, MISSING, NOT_CHECKED)}
    lines = ["", ", ".join(f"{n} {state}" for state, n in counts.items() if n or state != NOT_CHECKED)]
    wrong = [r for r in results if r.state == WRONG]
    if wrong:
        lines.append("The WRONG parts, and the suite's cases whose verdicts rely on them:")
        for result in wrong:
            part = result.part
            fix = (f"fix the probe app, or if its platform cannot do this: --probe-limitations '{part.limitation}=WHY'"
                   if part.limitation else "fix the probe app (every probe app must do this)")
            lines.append(f"  {part.name}, {part.what} ({', '.join(part.cases) or 'no case'}): {fix}")
        lines.append("A server that loses or mangles what was sent shows here too: that is a deviation for the suite "
                     "to report, not a limitation (docs/probe-app.md).")
    return lines


def run(args: argparse.Namespace) -> int:
    target = _declared_target(args)
    parts = [part for part in PARTS if not args.part or part.name in args.part]
    try:  # stopped whatever happens, also when interrupted while it starts
        try:
            target.start()
        except TargetError as error:
            first, *rest = str(error).splitlines() or [""]
            print(f"{PROG}: the target could not be started: {first}", file=sys.stderr)
            for line in rest:
                print(f"  {line}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        try:
            target.connect(timeout=args.fcgi_timeout, label="probe-check reachability").close()
        except TargetUnreachable as error:
            print(f"{PROG}: {error}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        problem = liveness_probe(target, args.fcgi_timeout)
        if problem is not None:
            print(f"{PROG}: {target.description} did not answer a FastCGI request: {problem}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        print(f"probe-check of {target.description}, SCRIPT_FILENAME {target.script_filename or PROBE_SCRIPT_FILENAME}")
        prober = Prober(target, args.fcgi_timeout)
        results: list[PartResult] = []
        stopped: str | None = None
        for part in parts:
            if stopped is None:
                try:
                    results.append(check_part(prober, part))
                except (TargetUnreachable, TargetError) as error:
                    stopped = str(error).splitlines()[0]
                    results.append(PartResult(part, NOT_CHECKED, f"the target could not be reached: {stopped}"))
            else:
                results.append(PartResult(part, NOT_CHECKED, "the run stopped at an earlier part"))
            print(_line(results[-1]), flush=True)
        print("\n".join(_summary(results)))
        if stopped is not None:
            print(f"{PROG}: incomplete: the target stopped answering ({stopped})", file=sys.stderr)
            return EXIT_CANNOT_RUN
        return EXIT_WRONG if any(r.state == WRONG for r in results) else EXIT_OK
    finally:
        target.stop()


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise Interrupted(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    # Both, explicitly: a shell without job control starts background commands with SIGINT ignored.
    previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        args = build_parser().parse_args(argv)
        return run(args)
    except UsageError as error:
        print(f"{PROG}: error: {error} (--help for usage)", file=sys.stderr)
        return EXIT_USAGE
    except (Interrupted, KeyboardInterrupt) as interrupted:
        print(f"{PROG}: interrupted ({interrupted or 'SIGINT'}); the target was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # a bug of probe-check's own: shown whole, and the check did not run to the end
        traceback.print_exc()
        print(f"{PROG}: internal error (above); the check is incomplete", file=sys.stderr)
        return EXIT_CANNOT_RUN
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
