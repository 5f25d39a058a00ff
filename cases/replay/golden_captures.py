"""Replay of captured web-server traffic: does the target handle what nginx, Apache, lighttpd and
h2o really send?

One case per golden capture in fixtures/captures/<server>/<scenario>.transcript, made from the
files (a new capture is a new case, no code): REPLAY-<server>-<scenario>. The web server's side is
sent again (harness/replay/runner.py) and the target's answers are judged at the protocol level against
any target: every request the capture saw answered gets exactly one END_REQUEST with the captured
protocolStatus, the streams are well formed and ended, every record carries the right id, and
the connection stays open while FCGI_KEEP_CONN is set (and is closed when it is clear). Content
(stdout, stderr, appStatus) is compared too when the target runs the capture's application (the
reference responder's probe app), or when FCGISPEC_REPLAY_CONTENT=1 asks for it (0: never).

catches= is worked out from what each capture holds: every capture catches the stream and
END_REQUEST bugs; one where a web server reuses a request id on a kept connection (nginx, Apache
and h2o do) catches Go's request-id reuse bug; one with FCGI_KEEP_CONN clear (lighttpd) catches
an application that never closes, or closes with an RST; padded records (nginx), name-value lengths past 255 bytes (long
headers) and large bodies catch the bugs that need them. tests/test_replay_cases.py proves each.
"""

from __future__ import annotations

from pathlib import Path

from harness.suite.case import Case, case
from harness.wire.codec import CodecError, RecordType, decode_params
from harness.replay.cases import check_replay
from harness.replay.plan import plan_connection
from harness.capture.transcript import WS_TO_APP, Transcript, read_transcript
from harness.verdicts import Level

ROOT = Path(__file__).resolve().parent.parent.parent
CAPTURES = ROOT / "fixtures" / "captures"
REQUIREMENT = (
    "A FastCGI application answers what a real web server sends as the capture's application did, judged by "
    "meaning: spec §3.3 (request ids, streams ended by an empty record), §5.5 (one FCGI_END_REQUEST per request) "
    "and §5.1 (\"If the bit is zero, the application closes the connection after responding to this request. "
    "If the bit is not zero, the application does not close the connection after responding to this request\")."
)
# Bugs every capture with an answered request shows: output and END_REQUEST framing.
ALWAYS = ("no-empty-stdout", "end-request-twice", "stdout-after-empty", "reply-id-zero")
STDIN_STALL = 40 * 1024


def capture_catches(transcript: Transcript) -> tuple[str, ...]:
    """The fault modes a replay of this capture must catch, from what the capture holds."""
    plans = [plan_connection(connection) for connection in transcript.connections]
    requests = [r for plan in plans for r in plan.requests]
    if not any(r.end is not None for r in requests):
        return ()
    found = list(ALWAYS)
    if any(r.reused_from is not None for r in requests):
        found += ["go-id-reuse", "misframe-on-reuse", "keep-conn-close"]
    if any(not r.keep_conn and r.end is not None for r in requests):
        found += ["keep-conn-never-close", "close-with-rst"]
    ws_records = [record for connection in transcript.connections for record in connection.records(WS_TO_APP)]
    if any(record.padding for record in ws_records):
        found.append("padding-not-skipped")
    if _long_pair(ws_records):
        found.append("nv-long-length-1byte")
    stdin = {}
    for record in ws_records:
        if record.type == RecordType.STDIN:
            stdin[record.request_id] = stdin.get(record.request_id, 0) + len(record.content)
    if any(size > STDIN_STALL for size in stdin.values()):
        found.append("stdin-stall-40k")
    return tuple(found)


def _long_pair(records: list) -> bool:
    """Does a PARAMS stream hold a name or value past 255 bytes (a 4-byte length whose last byte alone is wrong)?"""
    streams: dict[int, bytearray] = {}
    for record in records:
        if record.type == RecordType.PARAMS:
            streams.setdefault(record.request_id, bytearray()).extend(record.content)
    for data in streams.values():
        try:
            pairs = decode_params(bytes(data))
        except CodecError:
            continue
        if any(len(name) > 255 or len(value) > 255 for name, value in pairs):
            return True
    return False


def capture_case(path: Path) -> Case:
    """The case replaying one capture file."""
    transcript = read_transcript(path)
    server, scenario = path.parent.name, path.stem
    version = transcript.meta_value("version", server)
    what = transcript.meta_value("scenario", scenario).partition(": ")[2] or scenario
    source = str(path.relative_to(ROOT))

    @case(
        f"REPLAY-{server}-{scenario}",
        title=f"{version}: {what}",
        requirement=REQUIREMENT,
        level=Level.REQUIRED,
        timeout=30.0,
        catches=capture_catches(transcript),
    )
    def run(ctx) -> str:
        # Read again at run time: a capture edited since collection is replayed as it is now.
        return check_replay(ctx, read_transcript(path), source=source)

    return run


def _all_captures() -> dict[str, Case]:
    found = {}
    for path in sorted(CAPTURES.glob("*/*.transcript")):
        made = capture_case(path)
        found[f"case_{made.id.replace('-', '_')}"] = made
    return found


# Module-level names, so that the suite's collector (cases_in_module) finds each Case.
globals().update(_all_captures())
