"""Shared verifiers (like h2spec's spec.Verify*): each checks one observable behaviour of one
requirement and raises Violation with Expected/Actual text when it is not met.

A check whose requirement is not the running case's own (the ids in harness/suite/observations.py)
records the deviation on the case as also seen and goes on where it can: it fails the case that
owns the requirement, not every case that met it on the way."""

from __future__ import annotations

from typing import Iterable, Sequence

from harness.wire.connection import ConnectionClosed, FcgiConnection, ReadTimeout, Response, request
from harness.wire.codec import (
    EndRequest,
    ProtocolStatus,
    Record,
    RecordType,
    Role,
    type_name,
)
from harness.wire.probe_app import CgiResponse, ProbeError, ProbeReport, parse_cgi, parse_probe_report, sha256_hex
from harness.verdicts import Violation
from harness.suite.observations import (
    CGI_HEADERS,
    END_REQUEST_BODY,
    NOTHING_AFTER_EMPTY_STDOUT,
    STDERR_TERMINATED,
    STDOUT_TERMINATED,
    deviation,
)

TIMEOUT = "Timeout"


def next_event(conn: FcgiConnection, timeout: float) -> Record | str:
    """The next thing the target does: a Record, or 'Timeout', 'EOF', 'RST'."""
    try:
        return conn.read_record(timeout)
    except ReadTimeout:
        return TIMEOUT
    except ConnectionClosed as closed:
        return "EOF" if closed.how == "eof" else "RST"


def describe_event(event: Record | str) -> str:
    if isinstance(event, Record):
        return event.describe()
    if event == "EOF":
        return "connection closed (EOF)"
    if event == "RST":
        return "connection reset (RST)"
    return event


def read_response(conn: FcgiConnection, request_id: int, timeout: float, *, expected: str | None = None) -> Response:
    """conn.read_response, with a timeout or close turned into a Violation."""
    wanted = expected or f"END_REQUEST id={request_id}"
    try:
        return conn.read_response(request_id, timeout)
    except ReadTimeout:
        raise Violation(wanted, TIMEOUT) from None
    except ConnectionClosed as closed:
        raise Violation(wanted, describe_event("EOF" if closed.how == "eof" else "RST")) from None


def complete_request(
    conn: FcgiConnection,
    request_id: int,
    params: Iterable[tuple[bytes | str, bytes | str]],
    stdin: bytes = b"",
    *,
    role: int = Role.RESPONDER,
    keep_conn: bool = True,
    timeout: float = 5.0,
    expected: str | None = None,
) -> Response:
    """A whole request that must end with END_REQUEST{REQUEST_COMPLETE}; closes and timeouts are Violations."""
    wanted = expected or f"END_REQUEST id={request_id} protocolStatus=REQUEST_COMPLETE"
    try:
        response = request(conn, request_id, params, stdin, role=role, keep_conn=keep_conn, timeout=timeout)
    except ReadTimeout:
        raise Violation(wanted, TIMEOUT) from None
    except ConnectionClosed as closed:
        raise Violation(wanted, describe_event("EOF" if closed.how == "eof" else "RST")) from None
    expect_end_request(response)
    return response


def expect_record(
    conn: FcgiConnection, record_type: int, request_id: int | None, timeout: float, *, expected: str | None = None
) -> Record:
    """The next record must be of this type (and id, unless None)."""
    wanted = expected or f"{type_name(record_type)}" + ("" if request_id is None else f" id={request_id}")
    event = next_event(conn, timeout)
    if isinstance(event, Record) and event.type == record_type and (request_id is None or event.request_id == request_id):
        return event
    raise Violation(wanted, describe_event(event))


def expect_end_request(
    response: Response,
    protocol_status: int = ProtocolStatus.REQUEST_COMPLETE,
    *,
    app_status: int | None = None,
) -> EndRequest:
    """The response ended with a well-formed END_REQUEST carrying this protocolStatus."""
    status_name = ProtocolStatus(protocol_status).name
    wanted = f"END_REQUEST id={response.request_id} protocolStatus={status_name}" + (
        "" if app_status is None else f" appStatus={app_status}"
    )
    last = response.records[-1] if response.records else None
    if last is None or last.type != RecordType.END_REQUEST:
        raise Violation(wanted, "no END_REQUEST")
    if len(last.content) != 8 or response.end is None:
        # The body's requirement is FCGI-5.5-1's; its first five bytes still say the statuses.
        deviation(END_REQUEST_BODY, [wanted, "an 8-byte END_REQUEST body"], last.describe(),
                  what=f"END_REQUEST bodies of {len(last.content)} bytes, not 8", evidence=last.describe())
        if len(last.content) < 5:
            raise Violation([wanted, "an 8-byte END_REQUEST body"], last.describe())
        response.end = EndRequest(int.from_bytes(last.content[:4], "big"), last.content[4])
    if response.end.protocol_status != protocol_status or (
        app_status is not None and response.end.app_status != app_status
    ):
        raise Violation(wanted, last.describe())
    return response.end


def expect_stream_terminated(records: Sequence[Record], record_type: int) -> None:
    """The stream is zero or more non-empty records, then exactly one empty one, nothing after.

    records: everything received for one request, in order (END_REQUEST included).
    """
    name = type_name(record_type)
    # STDOUT: the empty record is FCGI-5.3-6's requirement, nothing after it FCGI-3.3-12's; STDERR: FCGI-5.3-4's.
    terminated, nothing_after = (
        (STDOUT_TERMINATED, NOTHING_AFTER_EMPTY_STDOUT) if record_type == RecordType.STDOUT
        else (STDERR_TERMINATED, STDERR_TERMINATED)
    )
    expected = [
        f"zero or more non-empty {name} records, then one empty {name} record before END_REQUEST",
    ]
    ended_at: int | None = None
    for index, record in enumerate(records):
        if record.type == RecordType.END_REQUEST:
            if ended_at is None:
                deviation(terminated, expected, f"END_REQUEST without an empty {name} record before it",
                          evidence=f"id={record.request_id}")
            return
        if record.type != record_type:
            continue
        if ended_at is not None:
            deviation(
                nothing_after,
                expected + [f"no {name} after the empty {name} record"],
                f"{record.describe()} after the empty {name} record (record #{index + 1})",
            )
            continue
        if not record.content:
            ended_at = index
    if ended_at is None:
        deviation(terminated, expected, f"no empty {name} record")


def expect_single_end_request(conn: FcgiConnection, request_id: int, quiet_seconds: float) -> None:
    """Nothing more arrives for request_id after its END_REQUEST (other ids are ignored)."""
    for record in conn.drain(quiet_seconds):
        if record.request_id == request_id:
            raise Violation(
                [f"nothing for id={request_id} after its END_REQUEST"],
                f"{record.describe()} after END_REQUEST",
            )


def expect_closed(
    conn: FcgiConnection,
    timeout: float,
    *,
    how: Sequence[str] = ("eof",),
    allow_records: bool = False,
    expected: str | None = None,
) -> str:
    """The target closes the connection in time, the way(s) allowed, and sends nothing first."""
    wanted = expected or ("connection closed (" + " or ".join("EOF" if h == "eof" else "RST" for h in how) + ")")
    result = conn.wait_closed(timeout)
    if not allow_records:
        stray = conn.unread_records()
        if stray:
            raise Violation([wanted, "no further records"], f"{stray[0].describe()} before the close")
    if result == "open":
        raise Violation(wanted, f"connection still open after {timeout:g}s")
    if result not in how:
        raise Violation(wanted, describe_event("EOF" if result == "eof" else "RST"))
    return result


def expect_open(conn: FcgiConnection, for_seconds: float, *, expected: str = "connection stays open") -> None:
    """The target does not close the connection within for_seconds."""
    result = conn.wait_closed(for_seconds)
    if result != "open":
        raise Violation(expected, describe_event("EOF" if result == "eof" else "RST"))


def expect_no_record(conn: FcgiConnection, for_ms: float, *, expected: str = "no record") -> None:
    """Nothing arrives for for_ms milliseconds (a close counts as something)."""
    event = next_event(conn, for_ms / 1000.0)
    if event != TIMEOUT:
        raise Violation(expected, describe_event(event))


def expect_cgi_response(response: Response, status: int = 200) -> CgiResponse:
    """A complete request whose STDOUT is a CGI response with this status."""
    expect_end_request(response)
    expect_stream_terminated(response.records, RecordType.STDOUT)
    try:
        cgi = parse_cgi(response.stdout)
    except ProbeError as error:
        raise Violation(f"a CGI response with Status {status}", str(error)) from None
    if cgi.nph_status_line is not None:
        deviation(CGI_HEADERS, f"a CGI response with Status {status} (no non-parsed-header status line)",
                  repr(cgi.nph_status_line), what=f"an HTTP status line {cgi.nph_status_line!r} instead of CGI headers")
    if cgi.status != status:
        raise Violation(f"a CGI response with Status {status}", f"Status {cgi.status}")
    return cgi


def expect_probe_report(response: Response) -> ProbeReport:
    """A complete probe-app answer; its report of what the app received."""
    cgi = expect_cgi_response(response)
    try:
        return parse_probe_report(cgi.body)
    except ProbeError as error:
        raise Violation("a probe-app JSON report", str(error)) from None


def expect_param(report: ProbeReport, name: bytes, value: bytes) -> None:
    """The app received the param name with exactly this value."""
    shown_name = _short(name)
    got = report.param(name)
    if got is None:
        raise Violation(
            f"param {shown_name} ({len(name)}-byte name) with a {len(value)}-byte value",
            f"no param with that name; received names of lengths {[len(n) for n, _ in report.params]}",
        )
    if got != value:
        raise Violation(
            f"param {shown_name} with a {len(value)}-byte value",
            f"a {len(got)}-byte value {_short(got)}",
        )


def expect_stdin_received(report: ProbeReport, body: bytes, how: str = "") -> None:
    """The app received exactly body on FCGI_STDIN (length and sha256); how says how it was sent."""
    if (report.stdin_length, report.stdin_sha256) != (len(body), sha256_hex(body)):
        raise Violation(
            f"stdin of {len(body)} bytes (sha256 {sha256_hex(body)[:16]}…)" + (f" {how}" if how else ""),
            f"stdin of {report.stdin_length} bytes (sha256 {report.stdin_sha256[:16]}…)",
        )


def _short(data: bytes, limit: int = 24) -> str:
    text = data[:limit].decode("latin-1")
    return repr(text + ("…" if len(data) > limit else ""))
