"""Is the target still alive, and does it implement the probe app?

The liveness probe runs after every case (spec §7 lets an application
"continue or exit" after bad input, so a crash is only seen this way).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from harness.wire.connection import ConnectionClosed, FcgiTimeout, request
from harness.wire.codec import (
    ProtocolStatus,
    RecordType,
    Role,
    begin_request_body,
    encode_params,
    encode_record,
    preview_bytes,
    stream_records,
)
from harness.wire.probe_app import ProbeError, parse_cgi, parse_probe_report, probe_params, probe_query
from harness.targets.base import Target, TargetUnreachable

LIVENESS_REQUEST_ID = 1
# The body of the detection request, sent with its CONTENT_LENGTH: PHP reads no body without one.
DETECTION_BODY = b"fcgispec"


# Plain requests timed before the first case; every later liveness probe is timed too.
ROUND_TRIP_MEASURES = 3


def liveness_probe(target: Target, timeout: float) -> str | None:
    """None if a new connection gets a simple request answered with END_REQUEST, else why not."""
    if target.exit_status() is not None:  # None for a target the harness did not spawn
        return target.exit_text()
    started = time.monotonic()
    try:
        conn = target.connect(timeout=timeout, label="liveness probe")
    except TargetUnreachable as error:
        return _with_exit(target, str(error))
    try:
        conn.send_records(
            [encode_record(RecordType.BEGIN_REQUEST, LIVENESS_REQUEST_ID, begin_request_body(Role.RESPONDER, 0))]
            + stream_records(RecordType.PARAMS, LIVENESS_REQUEST_ID, encode_params(probe_params(script_filename=target.script_filename)))
            + stream_records(RecordType.STDIN, LIVENESS_REQUEST_ID, b"")
        )
        # Any END_REQUEST shows the target is alive: judging its id or shape is the cases' job.
        conn.read_all_until(lambda record: record.type == RecordType.END_REQUEST, timeout)
    except FcgiTimeout:
        return _with_exit(target, f"no END_REQUEST within {timeout:g}s")
    except ConnectionClosed as closed:
        return _with_exit(target, f"connection closed ({closed.how}) before END_REQUEST")
    finally:
        conn.close()
    target.note_round_trip(time.monotonic() - started)
    return None


def measure_round_trip(target: Target, timeout: float) -> float:
    """The target's round trip (a new connection and a plain request), measured by liveness probes
    until there are ROUND_TRIP_MEASURES of them (or one fails)."""
    while len(target.round_trip_samples) < ROUND_TRIP_MEASURES:
        if liveness_probe(target, timeout) is not None:
            break
    return target.round_trip


def _with_exit(target: Target, problem: str) -> str:
    if target.exit_status() is not None:
        return f"{problem}; the process {target.exit_text()}"
    return problem


@dataclass(frozen=True)
class ProbeDetection:
    """Whether a target answered a probe question with a probe report, and why (for the report)."""

    found: bool
    reason: str


def detect_probe_app(target: Target, timeout: float = 5.0) -> ProbeDetection:
    """Ask the target a probe question; a well-formed probe report means it has the probe app.

    Only for targets that do not say (has_probe_app None: cmd: targets, and any target with
    --probe-app auto or --script-filename); named targets and the reference know they have it,
    tcp: and unix: targets are otherwise taken not to (has_probe_app False).
    """
    params = probe_params(
        probe_query(status=200), "POST", content_length=len(DETECTION_BODY), script_filename=target.script_filename
    )
    try:
        conn = target.connect(timeout=timeout, label="probe-app detection")
    except TargetUnreachable as error:
        return ProbeDetection(False, f"the probe question could not be asked: {error}")
    try:
        response = request(conn, LIVENESS_REQUEST_ID, params, DETECTION_BODY, keep_conn=False, timeout=timeout)
        if response.end is None or response.end.protocol_status != ProtocolStatus.REQUEST_COMPLETE:
            return ProbeDetection(False, "the probe question was not completed (END_REQUEST missing or not REQUEST_COMPLETE)")
        try:
            cgi = parse_cgi(response.stdout)
        except ProbeError as error:
            return ProbeDetection(False, f"the answer to a probe question is not a CGI response ({error})")
        try:
            report = parse_probe_report(cgi.body)
        except ProbeError:
            return ProbeDetection(
                False,
                f"the answer to a probe question is not a probe report (Status {cgi.status}, "
                f"{cgi.header('Content-Type') or 'no Content-Type'}, body {preview_bytes(cgi.body, 32)})",
            )
        if report.stdin_length != len(DETECTION_BODY):
            return ProbeDetection(False, f"a probe report, but of {report.stdin_length} stdin bytes instead of {len(DETECTION_BODY)}")
        return ProbeDetection(True, "the target answered a probe question with a probe report")
    except FcgiTimeout:
        return ProbeDetection(False, f"no answer to the probe question within {timeout:g}s")
    except ConnectionClosed as closed:
        return ProbeDetection(False, f"the connection was closed ({closed.how}) before the answer to the probe question")
    finally:
        conn.close()


def settle_probe_app(target: Target, timeout: float = 5.0) -> None:
    """Find out once whether a target that does not say has the probe app (has_probe_app None), and why."""
    if target.has_probe_app is None:
        detection = detect_probe_app(target, timeout)
        target.has_probe_app, target.probe_app_reason = detection.found, detection.reason
