"""§3.3 Records: request ids, streams split into records, output stream shape (padding: fcgi_3_3_padding.py)."""

from __future__ import annotations

from harness.case import CaseContext, case
from harness.fcgi_codec import (
    KEEP_CONN,
    RecordType,
    Role,
    begin_request_body,
    decode_params,
    encode_nv_length,
    encode_params,
    encode_record,
    stream_records,
)
from harness.probe_app import probe_params, probe_query
from harness.verdicts import Level, Violation
from harness.verify import (
    expect_stdin_received,
    describe_event,
    expect_end_request,
    expect_probe_report,
    expect_single_end_request,
    expect_stream_terminated,
    next_event,
    read_response,
)


@case(
    "FCGI-3.3-2",
    title="Every application record carries the request's own id (1, 256, 65535)",
    requirement="Application records have a nonzero requestId.",
    level=Level.REQUIRED,
    catches=("reply-id-zero",),
)
def replies_carry_request_id(ctx: CaseContext) -> None:
    conn = ctx.connect()
    # 256 has a zero low byte and 65535 fills both bytes: the ids byte-order bugs show on.
    for request_id in (1, 256, 65535):
        conn.send_records(
            [encode_record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(Role.RESPONDER, KEEP_CONN))]
            + stream_records(RecordType.PARAMS, request_id, encode_params(probe_params()))
            + stream_records(RecordType.STDIN, request_id, b"")
        )
        while True:
            event = next_event(conn, ctx.seconds(5.0))
            wanted = f"STDOUT, STDERR or END_REQUEST records with id={request_id}"
            if isinstance(event, str):
                raise Violation(wanted, describe_event(event))
            if event.request_id != request_id:
                raise Violation(wanted, event.describe())
            if event.type == RecordType.END_REQUEST:
                break


REUSE_COUNT = 1000


@case(
    "FCGI-3.3-6",
    title=f"Request id 1 reused at once after END_REQUEST, {REUSE_COUNT} times on one connection (as nginx does)",
    requirement="A request ID R becomes active when the application receives a record {FCGI_BEGIN_REQUEST, R, ...} "
    "and becomes inactive when the application sends a record {FCGI_END_REQUEST, R, ...} to the Web server.",
    level=Level.REQUIRED,
    catches=("go-id-reuse",),
    timeout=60.0,
)
def request_id_reused_at_once(ctx: CaseContext) -> None:
    conn = ctx.connect()
    request_bytes = b"".join(
        [encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.RESPONDER, KEEP_CONN))]
        + stream_records(RecordType.PARAMS, 1, encode_params(probe_params()))
        + stream_records(RecordType.STDIN, 1, b"")
    )
    for number in range(1, REUSE_COUNT + 1):
        # The next BEGIN leaves the moment END_REQUEST is read, like nginx's upstream keepalive.
        conn.send_records([request_bytes])
        response = read_response(
            conn, 1, ctx.seconds(5.0), expected=f"END_REQUEST id=1 for request {number} of {REUSE_COUNT} (id 1 reused)"
        )
        try:
            expect_end_request(response)
        except Violation as violation:
            raise Violation([f"request {number} of {REUSE_COUNT}: " + e for e in violation.expected], violation.actual)


@case(
    "FCGI-3.3-10",
    title="A stream's value does not depend on its records: PARAMS cut inside a length and a name, STDIN in 1-byte records",
    requirement="Therefore the value of a stream is independent of how many records it contains or how its bytes "
    "are divided among the non-empty records.",
    level=Level.REQUIRED,
    catches=("params-split-pair-lost", "stdin-first-record-only"),
    needs_probe_app=True,
    timeout=15.0,
)
def stream_split_anywhere(ctx: CaseContext) -> None:
    body = bytes(range(256))
    long_name = b"FCGISPEC_LONG_NAME_" + b"N" * 181  # 200 bytes: a 4-byte name length
    split_name = b"FCGISPEC_SPLIT_NAME"
    params = probe_params(
        probe_query(status=200),
        "POST",
        [(long_name, b"long-name-value"), (split_name, b"split-value"), ("FCGISPEC_AFTER", "after")],
        content_length=len(body),
    )
    encoded = encode_params(params)
    long_offset = encoded.index(encode_nv_length(len(long_name)) + bytes([len(b"long-name-value")]) + long_name)
    name_offset = encoded.index(split_name)
    cuts = [0, long_offset + 2, name_offset + len(split_name) // 2, len(encoded)]
    params_records = [
        encode_record(RecordType.PARAMS, 1, encoded[start:end]) for start, end in zip(cuts, cuts[1:]) if end > start
    ]
    conn = ctx.connect()
    conn.note("PARAMS cut inside the 4-byte name length of FCGISPEC_LONG_NAME_… and inside FCGISPEC_SPLIT_NAME")
    conn.send_records(
        [encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.RESPONDER, KEEP_CONN))]
        + params_records
        + [encode_record(RecordType.PARAMS, 1, b"")]
        + stream_records(RecordType.STDIN, 1, body, chunk_sizes=1)
    )
    report = expect_probe_report(read_response(conn, 1, ctx.seconds(5.0)))
    sent = decode_params(encoded)
    if report.params != sent:
        missing = [n.decode("latin-1")[:32] for n, _ in sent if report.param(n) is None]
        raise Violation(
            f"all {len(sent)} params as sent, in order",
            f"{len(report.params)} params" + (f"; missing {', '.join(missing)}" if missing else "; values differ"),
        )
    expect_stdin_received(report, body, f"from {len(body)} 1-byte records")


@case(
    "FCGI-3.3-12",
    title="STDOUT is non-empty records, then exactly one empty record, and nothing after it",
    requirement="A stream record is part of a stream, i.e. a series of zero or more non-empty records "
    "(length != 0) of the stream type, followed by an empty record (length == 0) of the stream type.",
    level=Level.REQUIRED,
    catches=("no-empty-stdout", "stdout-after-empty", "end-request-twice"),
    needs_probe_app=True,
)
def stdout_stream_shape(ctx: CaseContext) -> None:
    conn = ctx.connect()
    # 200000 bytes cannot fit one record, so the stream has several non-empty records.
    for request_id, size in ((1, 200000), (2, 10)):
        conn.send_records(
            [encode_record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(Role.RESPONDER, KEEP_CONN))]
            + stream_records(RecordType.PARAMS, request_id, encode_params(probe_params(probe_query(out=size))))
            + stream_records(RecordType.STDIN, request_id, b"")
        )
        response = read_response(conn, request_id, ctx.seconds(5.0))
        expect_stream_terminated(response.records, RecordType.STDOUT)
        expect_end_request(response)
        expect_single_end_request(conn, request_id, ctx.seconds(0.3))
