"""Command-line entry points for captures: record, replay, import-pcap, export, capture.

    record --listen PORT --app HOST:PORT -o FILE [--meta KEY=VALUE]...
        a recording proxy on 127.0.0.1:PORT in front of the app, until Ctrl-C/SIGTERM
    replay FILE --target SPEC [--content] [--timing] [--writes] [--concurrent] [--timeout S]
        exit 0 when the target answers as captured, 1 on a divergence, 2 when it cannot run;
        --concurrent opens every connection at once (with --timing: at its captured offset)
    import-pcap FILE.pcap --port N -o FILE      (pcap or pcapng; N is the application's port)
    export FILE [-o OUT] [--no-timing]          a bug-report-ready text: a summary, then the transcript
    capture --server NAME[,NAME] --scenario NAME[,NAME]|all -o DIR [--target SPEC]
        run real web servers in front of the target through the proxy (golden captures)
    new-regression FILE --name NAME --description TEXT [--port N] [--answers reference|capture] [--force]
        a regression case from a transcript or pcap: cases/regressions/transcripts/NAME.transcript, with the
        case's fields in its header (harness/replay/regression_skeleton.py, docs/bug-to-regression.md)

Each prints what it did on stderr and returns an exit status (main(argv) -> int).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
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
    write_transcript,
)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _meta(pairs: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals:
            raise SystemExit(f"--meta needs KEY=VALUE, got {pair!r}")
        out.append((key, value))
    return out


def cmd_record(args: argparse.Namespace) -> int:
    """record: a recording proxy in front of the application until Ctrl-C/SIGTERM, then the transcript."""
    from harness.capture.recording_proxy import RecordingProxy

    proxy = RecordingProxy(args.app, listen_port=args.listen).start()
    print(f"recording 127.0.0.1:{proxy.port} -> {args.app[0]}:{args.app[1]}; Ctrl-C to stop", file=sys.stderr)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    proxy.wait_idle(1.0)
    proxy.stop()
    meta = [("source", args.source), *_meta(args.meta)]
    transcript = proxy.transcript(meta)
    write_transcript(transcript, args.output)
    print(f"{len(transcript.connections)} connection(s) written to {args.output}", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """replay: a transcript against a started target, its report on stdout (exit 0 as captured, 1, 2)."""
    from harness.replay.runner import replay
    from harness.targets.base import TargetError
    from harness.targets.selection import parse_target

    try:
        transcript = read_transcript(args.file)
    except (OSError, TranscriptError) as error:
        print(f"{args.file}: {error}", file=sys.stderr)
        return 2
    try:
        target = parse_target(args.target, ROOT)
        target.start()
    except TargetError as error:
        print(f"cannot start the target: {error}", file=sys.stderr)
        return 2
    try:
        result = replay(transcript, target, content=args.content, timing=args.timing, writes=args.writes,
                        timeout=args.timeout, source=args.file, concurrent=args.concurrent)
    finally:
        target.stop()
    print(result.report())
    return 0 if result.ok else 1


def cmd_import_pcap(args: argparse.Namespace) -> int:
    from harness.capture.pcap_import import PcapError, import_pcap

    try:
        transcript = import_pcap(args.file, args.port)
    except (OSError, PcapError) as error:
        print(f"{args.file}: {error}", file=sys.stderr)
        return 2
    write_transcript(transcript, args.output)
    print(f"{len(transcript.connections)} connection(s) on port {args.port} written to {args.output}", file=sys.stderr)
    return 0 if transcript.connections else 1


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
    try:
        transcript = read_transcript(args.file)
    except (OSError, TranscriptError) as error:
        print(f"{args.file}: {error}", file=sys.stderr)
        return 2
    # The summary goes first as comments, so the export still parses as a transcript.
    body = format_transcript(transcript, timing=not args.no_timing)
    first, _, rest = body.partition("\n")
    text = first + "\n" + "".join(f"# {line}\n" for line in ["fcgispec capture export", *summary(transcript)]) + rest
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    """capture: real web servers in front of the target through the proxy, one transcript per scenario."""
    from harness.targets.selection import parse_target
    from harness.capture.webservers import SCENARIOS, WEB_SERVERS, capture

    names = list(WEB_SERVERS) if args.server == "all" else args.server.split(",")
    scenarios = list(SCENARIOS) if args.scenario == "all" else args.scenario.split(",")
    target = parse_target(args.target, ROOT)
    target.start()
    failures = 0
    try:
        for name in names:
            server = WEB_SERVERS[name]
            if not server.available():
                print(f"{name}: not installed (apt-get install {server.package}); skipped", file=sys.stderr)
                failures += 1
                continue
            for scenario in scenarios:
                out = Path(args.output) / name / f"{scenario}.transcript"
                out.parent.mkdir(parents=True, exist_ok=True)
                try:
                    transcript = capture(server, scenario, target)
                except Exception as error:  # one server failing must not lose the others' captures
                    print(f"{name} {scenario}: {error}", file=sys.stderr)
                    failures += 1
                    continue
                write_transcript(transcript, out)
                print(f"{out}: {len(transcript.connections)} connection(s)", file=sys.stderr)
    finally:
        target.stop()
    return 1 if failures else 0


def cmd_new_regression(args: argparse.Namespace) -> int:
    from harness.replay.regression_skeleton import SkeletonError, new_regression

    try:
        path = new_regression(args.file, name=args.name, description=args.description, port=args.port,
                              force=args.force, answers=args.answers)
    except SkeletonError as error:
        print(f"new-regression: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", file=sys.stderr)
    print(f"next: in its header fill in requirement:, bug-report: and catches: (the TODO lines), trim the "
          f"transcript, then\n"
          f"  ./fcgispec --case REG-{args.name} --target reference          (must pass)\n"
          f"  ./fcgispec --case REG-{args.name} --target 'reference --fault NAME'   (must fail)", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per entry point (see the module's text)."""
    parser = argparse.ArgumentParser(prog="fcgispec", description="capture, replay and import FastCGI traffic")
    sub = parser.add_subparsers(dest="command", required=True)

    record = sub.add_parser("record", help="run a recording proxy in front of a FastCGI app")
    record.add_argument("--listen", type=int, required=True, metavar="PORT", help="loopback port (0: any free)")
    record.add_argument("--app", type=_host_port, required=True, metavar="HOST:PORT")
    record.add_argument("-o", "--output", required=True, metavar="FILE")
    record.add_argument("--source", default="unknown web server", help="what is in front (metadata)")
    record.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="more metadata (repeatable)")
    record.set_defaults(run=cmd_record)

    play = sub.add_parser("replay", help="replay a transcript against a target and judge the answers")
    play.add_argument("file")
    play.add_argument("--target", default="reference", metavar="SPEC")
    play.add_argument("--content", action="store_true", help="also compare stdout, stderr and appStatus")
    play.add_argument("--timing", action="store_true", help="keep the captured pauses (implies --writes)")
    play.add_argument("--writes", action="store_true", help="send in the captured write pieces")
    play.add_argument("--concurrent", action="store_true",
                      help="replay all connections at the same time, one thread each (with --timing: each opens at "
                           "its captured offset from the first); results still in connection order")
    play.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")
    play.set_defaults(run=cmd_replay)

    pcap = sub.add_parser("import-pcap", help="turn a pcap/pcapng capture into a transcript")
    pcap.add_argument("file")
    pcap.add_argument("--port", type=int, required=True, help="the FastCGI application's TCP port")
    pcap.add_argument("-o", "--output", required=True, metavar="FILE")
    pcap.set_defaults(run=cmd_import_pcap)

    export = sub.add_parser("export", help="a bug-report-ready text of a transcript")
    export.add_argument("file")
    export.add_argument("-o", "--output", metavar="FILE")
    export.add_argument("--no-timing", action="store_true", help="leave the times out")
    export.set_defaults(run=cmd_export)

    cap = sub.add_parser("capture", help="capture real web servers in front of a target")
    cap.add_argument("--server", default="all", help="nginx, apache2, lighttpd, h2o (comma-separated) or all")
    cap.add_argument("--scenario", default="all", help="scenario names (comma-separated) or all")
    cap.add_argument("--target", default="reference", metavar="SPEC")
    cap.add_argument("-o", "--output", default=str(ROOT / "fixtures" / "captures"), metavar="DIR")
    cap.set_defaults(run=cmd_capture)

    regression = sub.add_parser("new-regression", help="a regression case (a transcript with the case's fields) "
                                "from a transcript or pcap")
    regression.add_argument("file", help="a transcript, or a pcap/pcapng (then --port)")
    regression.add_argument("--name", required=True,
                            help="php-12345-short-name (lowercase letters, digits, '-' and '.'): the case is "
                                 "REG-NAME, its file cases/regressions/transcripts/NAME.transcript")
    regression.add_argument("--description", required=True, help="one line: what the bug is")
    regression.add_argument("--port", type=int, help="the FastCGI application's TCP port (pcap input)")
    regression.add_argument("--force", action="store_true", help="replace an existing case of that name")
    regression.add_argument("--answers", choices=("reference", "capture"), default="reference",
                            help="the application side: the reference responder's answers (default; a capture of "
                                 "the buggy server holds wrong ones) or the captured ones")
    regression.set_defaults(run=cmd_new_regression)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C (the run guard turns SIGTERM into it): what was started is stopped by the guard
        print(f"{sys.argv[1] if len(sys.argv) > 1 else 'command'} interrupted", file=sys.stderr)
        sys.exit(2)
