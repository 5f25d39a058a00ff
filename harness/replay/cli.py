"""Command-line entry points for captures: record, replay, import-pcap, export, capture, new-regression.

    record --listen PORT --app HOST:PORT -o FILE [--source TEXT] [--meta KEY=VALUE]...
        a recording proxy on 127.0.0.1:PORT in front of the app, until Ctrl-C/SIGTERM; the output is
        checked before the proxy starts, and a transcript that cannot be written there is kept in a
        temporary file (named on stderr)
    replay FILE --target SPEC [--content] [--timing] [--writes] [--concurrent] [--timeout S]
        --concurrent opens every connection at once (with --timing: at its captured offset)
    import-pcap FILE.pcap --port N -o FILE      (pcap or pcapng; N is the application's port; a file cut
                                                 short is imported up to its last whole packet, and said so)
    export FILE [-o OUT] [--no-timing]          a bug-report-ready text: a summary, then the transcript
    capture [--server NAME[,NAME]|all] [--scenario NAME[,NAME]|all] [-o DIR] [--target SPEC]
        run real web servers in front of the target through the proxy (golden captures)
    new-regression FILE --name NAME --description TEXT [--port N] [--answers reference|capture] [--force]
        a regression case from a transcript or pcap: cases/regressions/transcripts/NAME.transcript, with the
        case's fields in its header (harness/replay/regression_skeleton.py, docs/bug-to-regression.md)

Each prints what it did on stderr and returns an exit status (main(argv) -> int), the scheme of every
fcgispec command (harness/replay/command_line.py):
    0  done; for replay: the target answered as captured
    1  replay: the target diverged from the capture
    2  interrupted (SIGINT, SIGTERM)
    3  could not run: the target (or the reference, or a web server) did not start or accepted no
       connection, a capture failed, an internal error
    4  usage error: a bad option or value, an unknown name, a file that cannot be read or written,
       a transcript that does not parse, a capture with no traffic on the port
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[2]

from harness.capture.transcript import (
    APP_TO_WS,
    WS_TO_APP,
    CloseItem,
    RecordItem,
    Transcript,
    TranscriptError,
    format_transcript,
    read_transcript,
)
from harness.replay.command_line import (
    EXIT_BROKEN,
    EXIT_CANNOT_RUN,
    EXIT_OK,
    EXIT_STATUS_HELP,
    EXIT_USAGE,
    CannotRun,
    CommandParser,
    UsageError,
    check_readable_file,
    check_writable_directory,
    check_writable_file,
    host_port,
    listen_port,
    meta_pair,
    one_line,
    port_number,
    save_elsewhere,
    seconds,
    write_file,
)

# How long record waits for the application to accept a first connection (only to warn when it does not).
APP_CHECK_SECONDS = 1.0


def load_transcript(path: str) -> Transcript:
    """A transcript file, or UsageError saying why it cannot be one (unreadable, not a transcript)."""
    check_readable_file(path)
    try:
        return read_transcript(path)
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror or error}") from None
    except TranscriptError as error:
        raise UsageError(f"{path}: {error}") from None


def _start_target(spec: str):  # type: ignore[no-untyped-def]
    """The started target of a --target spec: an unknown spec is a usage error, one that does not start
    cannot run."""
    from harness.targets.base import TargetError, TargetUsageError
    from harness.targets.selection import parse_target

    if spec.startswith("tcp:"):
        try:
            host_port(spec[len("tcp:"):])
        except argparse.ArgumentTypeError as error:
            raise UsageError(f"--target {spec}: {error}") from None
    try:
        target = parse_target(spec, ROOT)
    except TargetError as error:
        raise UsageError(f"--target: {error}") from None
    try:
        target.start()
    except TargetUsageError as error:  # the reference responder refused the options it was given
        target.stop()
        raise UsageError(f"--target: {_one_line(str(error))}") from None
    except TargetError as error:
        target.stop()
        raise CannotRun(f"cannot start the target {spec!r}: {_one_line(str(error))}") from None
    return target


def _one_line(text: str) -> str:
    """A message with the start of a process's output after it, as one line: the first line of that
    output says why (an unknown option, a missing file); the rest, e.g. a usage text, is counted."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) <= 2:
        return " ".join(lines)
    return f"{lines[0]} {lines[1]} (and {len(lines) - 2} more line(s) of its output)"


def _app_answers(address: tuple[str, int]) -> str | None:
    """None when something accepts connections at the app's address, else why not."""
    try:
        socket.create_connection(address, timeout=APP_CHECK_SECONDS).close()
    except OSError as error:
        return error.strerror or str(error)
    return None


def cmd_record(args: argparse.Namespace) -> int:
    """record: a recording proxy in front of the application until Ctrl-C/SIGTERM, then the transcript."""
    from harness.capture.recording_proxy import RecordingProxy

    output = check_writable_file(args.output)
    try:
        proxy = RecordingProxy(args.app, listen_port=args.listen).start()
    except OSError as error:
        import errno

        why = "in use" if error.errno == errno.EADDRINUSE else f"not available ({error.strerror or error})"
        raise UsageError(f"--listen {args.listen}: port {args.listen} on 127.0.0.1 is {why}") from None
    # SIGTERM ends the recording as Ctrl-C does; it is caught before anything is said, so that a stop
    # sent as soon as the first line is read still writes the transcript.
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        app = f"{args.app[0]}:{args.app[1]}"
        print(f"recording 127.0.0.1:{proxy.port} -> {app}; Ctrl-C to stop", file=sys.stderr, flush=True)
        problem = _app_answers(args.app)
        if problem is not None:
            print(f"record: warning: nothing accepts connections at {app} yet ({problem}); the web server's "
                  "connections fail until the application listens there", file=sys.stderr, flush=True)
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        proxy.wait_idle(1.0)
        proxy.stop()
    transcript = proxy.transcript([("source", args.source), *args.meta])
    text = format_transcript(transcript)
    try:
        write_file(output, text)
    except OSError as error:
        why = f"cannot write {output} ({error.strerror or error}); the recording of {len(transcript.connections)} connection(s)"
        try:
            kept = save_elsewhere(text, "fcgispec-record-", ".transcript")
        except OSError:
            sys.stdout.write(text)  # no file can be written at all: the last place left
            raise UsageError(f"{why} is on stdout") from None
        raise UsageError(f"{why} is kept in {kept}") from None
    print(f"{len(transcript.connections)} connection(s) written to {output}", file=sys.stderr)
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """replay: a transcript against a started target, its report on stdout (exit 0 as captured, 1 diverged)."""
    from harness.replay.plan import plan_connection
    from harness.replay.runner import replay

    transcript = load_transcript(args.file)
    if not any(plan_connection(c).steps for c in transcript.connections):
        raise UsageError(f"{args.file}: nothing to replay (no connection with web-server traffic)")
    target = _start_target(args.target)
    try:
        result = replay(transcript, target, content=args.content, timing=args.timing, writes=args.writes,
                        timeout=args.timeout, source=args.file, concurrent=args.concurrent)
    finally:
        target.stop()
    if result.unreachable:
        first = result.connections[0].divergence
        raise CannotRun(f"the target {args.target!r} accepted no connection: {first.message if first else ''}")
    print(result.report())
    return EXIT_OK if result.ok else EXIT_BROKEN


def cmd_import_pcap(args: argparse.Namespace) -> int:
    """import-pcap: a pcap/pcapng file to a transcript (a file cut short is imported up to where it ends)."""
    from harness.capture.pcap_import import PcapError, import_pcap

    check_readable_file(args.file)
    output = check_writable_file(args.output)
    try:
        transcript = import_pcap(args.file, args.port)
    except OSError as error:
        raise UsageError(f"{args.file}: {error.strerror or error}") from None
    except PcapError as error:
        raise UsageError(f"{args.file}: {error}") from None
    truncated = transcript.meta_value("truncated")
    if truncated:
        print(f"import-pcap: warning: {args.file}: {truncated}", file=sys.stderr)
    if not any(r.version == 1 and 1 <= r.type <= 11 for c in transcript.connections for r in c.records(WS_TO_APP)):
        print(f"import-pcap: warning: the traffic on port {args.port} does not look like FastCGI (no version-1 "
              "record of a known type from the web server): is --port the application's port?", file=sys.stderr)
    try:
        write_file(output, format_transcript(transcript))
    except OSError as error:
        raise UsageError(f"cannot write {output}: {error.strerror or error}") from None
    print(f"{len(transcript.connections)} connection(s) on port {args.port} written to {output}", file=sys.stderr)
    return EXIT_OK


def summary(transcript: Transcript) -> list[str]:
    """One line per connection: requests (id, flags), answers, who closed first and how."""
    lines = [f"{key}: {value}" for key, value in transcript.meta if key != "config-file"]
    for connection in transcript.connections:
        begins = [i.record for i in connection.items if isinstance(i, RecordItem) and i.direction == WS_TO_APP
                  and i.record.type == 1]
        ends = [i.record for i in connection.items if isinstance(i, RecordItem) and i.direction == APP_TO_WS
                and i.record.type == 3]
        closes = [i for i in connection.items if isinstance(i, CloseItem)]
        ids = ",".join(str(r.request_id) for r in begins) or "-"
        keep = sorted({"KEEP_CONN" if len(r.content) > 2 and r.content[2] & 1 else "close" for r in begins})
        closed = (f"{'web server' if closes[0].direction == WS_TO_APP else 'app'} closed first ({closes[0].how})"
                  if closes else "never closed")
        lines.append(f"connection {connection.number}: {len(begins)} request(s), ids {ids}, {'/'.join(keep) or '-'}, "
                     f"{len(ends)} END_REQUEST, {closed}")
    return lines


def cmd_export(args: argparse.Namespace) -> int:
    """export: the transcript with a summary in front, on stdout or in -o FILE."""
    transcript = load_transcript(args.file)
    output = check_writable_file(args.output) if args.output else None
    # The summary goes first as comments, so the export still parses as a transcript.
    body = format_transcript(transcript, timing=not args.no_timing)
    first, _, rest = body.partition("\n")
    text = first + "\n" + "".join(f"# {line}\n" for line in ["fcgispec capture export", *summary(transcript)]) + rest
    if output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        write_file(output, text)
    except OSError as error:
        raise UsageError(f"cannot write {output}: {error.strerror or error}") from None
    return EXIT_OK


def _names(text: str, known: Sequence[str], option: str) -> list[str]:
    """A comma-separated list of names, or 'all'; UsageError for an unknown one, naming the known ones."""
    if text.strip() == "all":
        return list(known)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise UsageError(f"{option}: unknown {', '.join(map(repr, unknown)) or 'empty list'}; "
                         f"one or more of {', '.join(known)} (comma-separated), or all")
    return names


def cmd_capture(args: argparse.Namespace) -> int:
    """capture: real web servers in front of the target through the proxy, one transcript per scenario."""
    from harness.capture.webservers import SCENARIOS, WEB_SERVERS, capture

    names = _names(args.server, list(WEB_SERVERS), "--server")
    scenarios = _names(args.scenario, list(SCENARIOS), "--scenario")
    output = check_writable_directory(args.output)
    target = _start_target(args.target)
    failures = 0
    try:
        for name in names:
            server = WEB_SERVERS[name]
            if not server.available():
                print(f"{name}: not installed (apt-get install {server.package}); skipped", file=sys.stderr)
                failures += 1
                continue
            for scenario in scenarios:
                out = output / name / f"{scenario}.transcript"
                try:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    transcript = capture(server, scenario, target)
                    write_file(out, format_transcript(transcript))
                except Exception as error:  # one server failing must not lose the others' captures
                    print(f"{name} {scenario}: {error}", file=sys.stderr)
                    failures += 1
                    continue
                print(f"{out}: {len(transcript.connections)} connection(s)", file=sys.stderr)
    finally:
        target.stop()
    if failures:
        print(f"capture: {failures} capture(s) could not be made", file=sys.stderr)
        return EXIT_CANNOT_RUN
    return EXIT_OK


def regression_name(text: str) -> str:
    """--name: what new-regression writes and the regression loader turns into the case REG-NAME."""
    from harness.replay.regression_skeleton import NAME, NAME_RULE

    if not NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a regression name: a name is {NAME_RULE}")
    return text


def cmd_new_regression(args: argparse.Namespace) -> int:
    """new-regression: the regression transcript, then what to do next (the commands that run it)."""
    from harness.installation.paths import is_installed
    from harness.replay.regression_skeleton import ReferenceUnavailable, SkeletonError, new_regression

    if is_installed(ROOT):
        raise UsageError("a regression case is added to a checkout of fcgispec (cases/regressions/): this is the "
                         "installed package; run new-regression from a checkout")
    check_readable_file(args.file)
    try:
        path = new_regression(args.file, name=args.name, description=args.description, port=args.port,
                              force=args.force, answers=args.answers)
    except ReferenceUnavailable as error:
        raise CannotRun(str(error)) from None
    except SkeletonError as error:
        raise UsageError(str(error)) from None
    truncated = read_transcript(path).meta_value("truncated")
    if truncated:
        print(f"new-regression: warning: {args.file}: {truncated}", file=sys.stderr)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", file=sys.stderr)
    print(f"next: in its header fill in requirement:, bug-report: and catches: (the TODO lines), trim the "
          f"transcript, then\n"
          f"  ./fcgispec --case REG-{args.name} --target reference          (must pass)\n"
          f"  ./fcgispec --case REG-{args.name} --target 'reference --fault NAME'   (must fail)", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per entry point (see the module's text)."""
    parser = CommandParser(prog="fcgispec", description="capture, replay and import FastCGI traffic",
                           epilog=EXIT_STATUS_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands (each has --help)")

    record = sub.add_parser("record", help="run a recording proxy in front of a FastCGI app", epilog=EXIT_STATUS_HELP)
    record.add_argument("--listen", type=listen_port, required=True, metavar="PORT", help="loopback port (0: any free)")
    record.add_argument("--app", type=host_port, required=True, metavar="HOST:PORT")
    record.add_argument("-o", "--output", required=True, metavar="FILE")
    record.add_argument("--source", type=one_line, default="unknown web server", help="what is in front (metadata)")
    record.add_argument("--meta", type=meta_pair, action="append", default=[], metavar="KEY=VALUE",
                        help="more metadata (repeatable)")
    record.set_defaults(run=cmd_record)

    play = sub.add_parser("replay", help="replay a transcript against a target and judge the answers",
                          epilog="exit status: 0 answered as captured, 1 the target diverged, 2 interrupted, "
                                 "3 could not run (the target did not start or accepted no connection), "
                                 "4 usage error (bad option, unreadable or malformed transcript)")
    play.add_argument("file")
    play.add_argument("--target", default="reference", metavar="SPEC")
    play.add_argument("--content", action="store_true", help="also compare stdout, stderr and appStatus")
    play.add_argument("--timing", action="store_true", help="keep the captured pauses (implies --writes)")
    play.add_argument("--writes", action="store_true", help="send in the captured write pieces")
    play.add_argument("--concurrent", action="store_true",
                      help="replay all connections at the same time, one thread each (with --timing: each opens at "
                           "its captured offset from the first); results still in connection order")
    play.add_argument("--timeout", type=seconds, default=5.0, metavar="SECONDS",
                      help="every wait for the target (more than 0; default 5)")
    play.set_defaults(run=cmd_replay)

    pcap = sub.add_parser("import-pcap", help="turn a pcap/pcapng capture into a transcript", epilog=EXIT_STATUS_HELP)
    pcap.add_argument("file")
    pcap.add_argument("--port", type=port_number, required=True, help="the FastCGI application's TCP port")
    pcap.add_argument("-o", "--output", required=True, metavar="FILE")
    pcap.set_defaults(run=cmd_import_pcap)

    export = sub.add_parser("export", help="a bug-report-ready text of a transcript", epilog=EXIT_STATUS_HELP)
    export.add_argument("file")
    export.add_argument("-o", "--output", metavar="FILE")
    export.add_argument("--no-timing", action="store_true", help="leave the times out")
    export.set_defaults(run=cmd_export)

    cap = sub.add_parser("capture", help="capture real web servers in front of a target", epilog=EXIT_STATUS_HELP)
    cap.add_argument("--server", default="all", help="nginx, apache2, lighttpd, h2o (comma-separated) or all")
    cap.add_argument("--scenario", default="all", help="scenario names (comma-separated) or all")
    cap.add_argument("--target", default="reference", metavar="SPEC")
    cap.add_argument("-o", "--output", default=str(ROOT / "fixtures" / "captures"), metavar="DIR")
    cap.set_defaults(run=cmd_capture)

    regression = sub.add_parser("new-regression", help="a regression case (a transcript with the case's fields) "
                                "from a transcript or pcap", epilog=EXIT_STATUS_HELP)
    regression.add_argument("file", help="a transcript, or a pcap/pcapng (then --port)")
    regression.add_argument("--name", type=regression_name, required=True,
                            help="php-12345-short-name (lowercase letters, digits, '-' and '.'): the case is "
                                 "REG-NAME, its file cases/regressions/transcripts/NAME.transcript")
    regression.add_argument("--description", required=True, help="one line: what the bug is")
    regression.add_argument("--port", type=port_number, help="the FastCGI application's TCP port (pcap input)")
    regression.add_argument("--force", action="store_true", help="replace an existing case of that name")
    regression.add_argument("--answers", choices=("reference", "capture"), default="reference",
                            help="the application side: the reference responder's answers (default; a capture of "
                                 "the buggy server holds wrong ones) or the captured ones")
    regression.set_defaults(run=cmd_new_regression)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse argv and run its command: the exit status (usage errors 4, see the module's text)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (4), already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    prog = f"fcgispec {args.command}"
    try:
        return int(args.run(args))
    except UsageError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except CannotRun as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # a harness bug: said in one line first, then where it happened
        print(f"{prog}: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        traceback.print_exc()
        return EXIT_CANNOT_RUN


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C (the run guard turns SIGTERM into it): what was started is stopped by the guard
        print(f"{sys.argv[1] if len(sys.argv) > 1 else 'command'} interrupted", file=sys.stderr)
        sys.exit(2)
