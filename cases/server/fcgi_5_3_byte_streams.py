"""§5.3 Byte streams: FCGI_STDIN, FCGI_DATA, FCGI_STDOUT, FCGI_STDERR."""

from __future__ import annotations

import os

from harness.case import CaseContext, case
from harness.fcgi_codec import KEEP_CONN, RecordType, Role, begin_request_body, encode_params, encode_record, stream_records
from harness.probe_app import probe_params, probe_query
from harness.verdicts import Level, Violation
from harness.verify import (
    expect_cgi_response,
    expect_probe_report,
    expect_stdin_received,
    expect_stream_terminated,
    read_response,
)

LARGE_STDIN = 1024 * 1024
# Just under 64 KiB and not a multiple of 8: records as a web server with a 64 KiB buffer cuts them.
STDIN_RECORD_SIZE = 65528 - 3


@case(
    "FCGI-5.3-2",
    title="1 MiB of STDIN in ~64 KiB records arrives intact (length and sha256)",
    requirement="FCGI_STDIN is a stream record type used in sending arbitrary data from the Web server "
    "to the application.",
    level=Level.REQUIRED,
    catches=("stdin-first-record-only",),
    needs_probe_app=True,
    timeout=20.0,
)
def large_stdin_intact(ctx: CaseContext) -> None:
    body = os.urandom(LARGE_STDIN)
    conn = ctx.connect()
    params = probe_params(probe_query(status=200), "POST", content_length=len(body))
    conn.send_records(
        [encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.RESPONDER, KEEP_CONN))]
        + stream_records(RecordType.PARAMS, 1, encode_params(params))
        + stream_records(RecordType.STDIN, 1, body, chunk_sizes=STDIN_RECORD_SIZE)
    )
    report = expect_probe_report(read_response(conn, 1, ctx.seconds(10.0)))
    expect_stdin_received(report, body)


@case(
    "FCGI-5.3-6",
    title="An empty response body still ends STDOUT with an empty record",
    requirement="When a role protocol calls for transmitting a stream other than FCGI_STDERR, at least one "
    "record of the stream type is always transmitted, even if the stream is empty.",
    level=Level.REQUIRED,
    catches=("no-empty-stdout",),
    needs_probe_app=True,
)
def empty_output_terminated(ctx: CaseContext) -> None:
    conn = ctx.connect()
    conn.send_records(
        [encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.RESPONDER, KEEP_CONN))]
        + stream_records(RecordType.PARAMS, 1, encode_params(probe_params(probe_query(out=0))))
        + stream_records(RecordType.STDIN, 1, b"")
    )
    response = read_response(conn, 1, ctx.seconds(5.0))
    expect_stream_terminated(response.records, RecordType.STDOUT)
    cgi = expect_cgi_response(response)
    if cgi.body:
        raise Violation("an empty body (out=0)", f"a {len(cgi.body)}-byte body")
