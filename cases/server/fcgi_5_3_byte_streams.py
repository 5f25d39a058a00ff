"""§5.3 Byte streams: FCGI_STDIN, FCGI_DATA, FCGI_STDOUT, FCGI_STDERR.

FCGI_DATA is only read by a Filter: see FCGI-6.4-1 in fcgi_6_roles.py. The first half of
FCGI-5.3-1 ("the STDIN terminator is always sent") is a duty of the web server, which a
server-side suite cannot observe; the case checks the application's half.
"""

from __future__ import annotations

import time

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import request_records
from harness.wire.connection import FcgiConnection, Response, WriteTimeout
from harness.wire.codec import Record, RecordReader, RecordType, decode_end_request
from harness.wire.probe_app import ProbeError, parse_cgi, pattern_bytes, probe_query
from harness.verdicts import Level, Unsupported, Violation
from harness.suite.checks import (
    expect_cgi_response,
    expect_end_request,
    expect_probe_report,
    expect_stdin_received,
    describe_event,
    expect_stream_terminated,
    next_event,
    read_response,
)

# Just under 64 KiB and not a multiple of 8: records as a web server with a 64 KiB buffer cuts them.
STDIN_RECORD_SIZE = 65528 - 3
# One byte past a 64 KiB buffer, then a body that no buffer of a naive server holds.
LARGE_STDIN_SIZES = (64 * 1024 + 1, 4 * 1024 * 1024)


def _send_body(conn: FcgiConnection, records: list[bytes], timeout: float, what: str) -> None:
    """Send a large request; a target that stops reading STDIN is a violation, not a harness error."""
    try:
        conn.send_raw(b"".join(records), timeout=timeout, trace_items=[r for piece in records for r in _as_records(piece)])
    except WriteTimeout:
        raise Violation(f"the target to read all of {what}", f"it stopped reading ({conn.bytes_sent} bytes taken)") from None


def _as_records(piece: bytes) -> list[Record]:
    return RecordReader().feed(piece)


ABANDONED = 3


@case(
    "FCGI-5.3-1",
    title="Requests whose STDIN never ends, abandoned by the web server (RST): what the app does; it must survive",
    requirement="When a role protocol calls for transmitting a stream other than FCGI_STDERR, at least one "
    "record of the stream type is always transmitted, even if the stream is empty.",
    level=Level.UNSPECIFIED,
    catches=("exit-on-write-error",),
)
def stdin_never_terminated(ctx: CaseContext) -> str:
    """Abandons (RST) requests whose STDIN never ends; notes what the app did, which must survive and free resources."""
    before = ctx.target.process_stats()
    part = pattern_bytes(1024 * 1024)
    # echo=1: a probe app writes while STDIN flows, so output is pending when the web server gives up.
    params = ctx.probe_params(probe_query(echo=1), "POST", content_length=2 * len(part))
    answered = 0
    # One after the other: a target may serve one connection at a time.
    for number in range(1, ABANDONED + 1):
        conn = ctx.connect(f"abandoned request {number}")
        _send_body(conn, request_records(1, params, part, terminate_stdin=False), ctx.seconds(3.0), "1 MiB of STDIN")
        answered += any(r.type == RecordType.END_REQUEST for r in conn.drain(ctx.seconds(0.05)))
        conn.reset()
    notes = [f"{answered} of {ABANDONED} requests ended before their STDIN did"]
    if before is not None:
        after = before
        until = time.monotonic() + ctx.seconds(1.0)
        while time.monotonic() < until:
            after = ctx.target.process_stats() or after
            if after.fds <= before.fds:
                break
            time.sleep(0.02)
        notes.append(f"open fds {before.fds} before, {after.fds} after the resets")
    return "; ".join(notes)


@case(
    "FCGI-5.3-2",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2", "FCGI-3.3-10"),
    title="64 KiB+1 and 4 MiB of STDIN in ~64 KiB records are read to the end and answered (probe: intact)",
    requirement="FCGI_STDIN is a stream record type used in sending arbitrary data from the Web server "
    "to the application.",
    level=Level.REQUIRED,
    catches=("stdin-stall-40k",),
    timeout=20.0,
)
def large_stdin_intact(ctx: CaseContext) -> None:
    conn = ctx.connect()
    for request_id, size in enumerate(LARGE_STDIN_SIZES, start=1):
        body = pattern_bytes(size)[::-1]  # not a multiple of 26 backwards: offsets matter
        params = ctx.post_params(len(body))
        records = request_records(request_id, params, body, stdin_chunk_sizes=STDIN_RECORD_SIZE)
        _send_body(conn, records, ctx.answer_wait, f"{size} bytes of STDIN")
        response = read_response(
            conn, request_id, ctx.answer_wait, expected=f"END_REQUEST id={request_id} after {size} bytes of STDIN"
        )
        expect_end_request(response)
        if ctx.has_probe_app:
            expect_stdin_received(expect_probe_report(response), body, f"in {STDIN_RECORD_SIZE}-byte records")
        else:
            ctx.expect_same_answer(response, f"{size} bytes of STDIN in {STDIN_RECORD_SIZE}-byte records", params, body)


@case(
    "FCGI-5.3-3",
    title="STDIN ends 90 bytes short of CONTENT_LENGTH: answered, not awaited (probe: refused with status 400)",
    requirement="A Responder performing an update, e.g. implementing a POST method, should compare the number of "
    "bytes received on FCGI_STDIN with CONTENT_LENGTH and abort the update if the two numbers are not equal.",
    level=Level.RECOMMENDED,
    catches=("content-length-unchecked",),
)
def stdin_shorter_than_content_length(ctx: CaseContext) -> str | None:
    body = b"x" * 10
    conn = ctx.connect()
    conn.send_records(request_records(1, ctx.post_params(100), body))
    response = read_response(
        conn, 1, ctx.answer_wait, expected="END_REQUEST id=1 once STDIN ended (10 of CONTENT_LENGTH 100 bytes)"
    )
    end = expect_end_request(response)
    if not ctx.has_probe_app:
        return f"answered (appStatus={end.app_status}); whether the update was aborted needs the probe app"
    # The probe contract: such a body is refused with Status 400 and X-Probe-Error.
    cgi = expect_cgi_response(response, status=400)
    if cgi.header("X-Probe-Error") is None:
        raise Violation("the probe's X-Probe-Error header with its 400", f"headers {[n for n, _ in cgi.headers]}")
    return None


@case(
    "FCGI-5.3-4",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="STDERR is absent or terminated: no errors -> nothing or one empty record; probe err= -> text, then empty",
    requirement="If an application has no errors to report, it sends either no FCGI_STDERR records or one "
    "zero-length FCGI_STDERR record.",
    level=Level.RECOMMENDED,
    # end-before-stdout (output after END_REQUEST) is FCGI-5.5-4's: it blocks this case.
    catches=("no-empty-stderr",),
)
def stderr_terminated(ctx: CaseContext) -> None:
    conn = ctx.connect()
    conn.send_records(request_records(1, ctx.probe_params()))
    response = read_response(conn, 1, ctx.answer_wait)
    expect_end_request(response)
    if response.stderr_records:
        expect_stream_terminated(response.records, RecordType.STDERR)
    if not ctx.has_probe_app:
        return
    ctx.require_probe_feature("err")
    text = "fcgispec stderr line\n"
    conn.send_records(request_records(2, ctx.probe_params(probe_query(err=text))))
    response = read_response(conn, 2, ctx.answer_wait)
    expect_end_request(response)
    if response.stderr != text.encode():
        raise Violation(f"STDERR {text!r} (err= asked for it)", f"STDERR {response.stderr[:60]!r}")
    expect_stream_terminated(response.records, RecordType.STDERR)


SLOW_READ_PAUSES = 2
SLOW_READ_EVERY = 4 * 1024 * 1024


def _read_slowly(ctx: CaseContext, conn: FcgiConnection, request_id: int) -> Response:
    """Read a response like a slow web server: a pause before every few MiB, so the target meets a full socket."""
    response = Response(request_id)
    received = pauses = 0
    until = time.monotonic() + ctx.seconds(10.0)
    while True:
        if pauses < SLOW_READ_PAUSES and received >= pauses * SLOW_READ_EVERY:
            time.sleep(ctx.seconds(0.15))
            pauses += 1
        event = next_event(conn, max(until - time.monotonic(), 0.0))
        if not isinstance(event, Record):
            raise Violation(
                f"END_REQUEST id={request_id} (read slowly)", f"{describe_event(event)} after {received} bytes of output"
            )
        if event.request_id != request_id:
            response.other_records.append(event)
            continue
        response.records.append(event)
        received += len(event.content)
        if event.type == RecordType.END_REQUEST:
            try:
                response.end = decode_end_request(event.content)
            except ValueError:
                pass
            return response


STDERR_LINE = "fcgispec sample stderr text, line after line\n"
STDERR_REPEAT = 4096  # 184 KiB
LARGE_OUTPUT = 8 * 1024 * 1024


@case(
    "FCGI-5.3-5",
    title="8 MiB of STDOUT and 184 KiB of STDERR, read slowly, arrive intact (any interleaving)",
    requirement="So role protocols that use both FCGI_STDOUT and FCGI_STDERR allow these two streams to be "
    "interleaved.",
    level=Level.REQUIRED,
    catches=("stderr-truncated",),
    needs_probe_app=True,
    timeout=20.0,
)
def large_interleaved_output(ctx: CaseContext) -> None:
    """8 MiB of STDOUT and 184 KiB of STDERR, read slowly, arrive whole and terminated."""
    if not ctx.has_probe_app:  # also when the harness has not found out (has_probe_app None)
        raise Unsupported("the target does not implement the probe app")
    conn = ctx.connect()
    conn.send_records(
        request_records(1, ctx.probe_params(probe_query(out=LARGE_OUTPUT, err=STDERR_LINE, err_repeat=STDERR_REPEAT)))
    )
    response = _read_slowly(ctx, conn, 1)
    expect_end_request(response)
    expect_stream_terminated(response.records, RecordType.STDOUT)
    try:
        body = parse_cgi(response.stdout).body
    except ProbeError as error:
        raise Violation(f"a CGI response with a {LARGE_OUTPUT}-byte body", str(error)) from None
    if len(body) != LARGE_OUTPUT or body != pattern_bytes(LARGE_OUTPUT):
        raise Violation(f"a {LARGE_OUTPUT}-byte out= pattern body", f"a {len(body)}-byte body" + (
            "" if len(body) != LARGE_OUTPUT else " with other bytes"))
    if response.stderr_records:
        expect_stream_terminated(response.records, RecordType.STDERR)
    ctx.require_probe_feature("err")
    expect_stream_terminated(response.records, RecordType.STDERR)
    expected_err = STDERR_LINE.encode() * STDERR_REPEAT
    if response.stderr != expected_err:
        raise Violation(f"{len(expected_err)} bytes of STDERR ({STDERR_REPEAT} lines)", f"{len(response.stderr)} bytes")


@case(
    "FCGI-5.3-6",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="STDOUT always ends with an empty record (probe: also when the body is empty)",
    requirement="When a role protocol calls for transmitting a stream other than FCGI_STDERR, at least one "
    "record of the stream type is always transmitted, even if the stream is empty.",
    level=Level.REQUIRED,
    catches=("no-empty-stdout",),
)
def empty_output_terminated(ctx: CaseContext) -> None:
    conn = ctx.connect()
    conn.send_records(request_records(1, ctx.probe_params()))
    response = read_response(conn, 1, ctx.answer_wait)
    expect_end_request(response)
    expect_stream_terminated(response.records, RecordType.STDOUT)
    if not ctx.has_probe_app:
        return
    conn = ctx.connection_for_next_request(conn)  # the stream is judged, not the connection
    conn.send_records(request_records(2, ctx.probe_params(probe_query(out=0))))
    response = read_response(conn, 2, ctx.answer_wait)
    expect_stream_terminated(response.records, RecordType.STDOUT)
    cgi = expect_cgi_response(response)
    if cgi.body:
        raise Violation("an empty body (out=0)", f"a {len(cgi.body)}-byte body")
