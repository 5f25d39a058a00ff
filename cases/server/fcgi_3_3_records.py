"""§3.3 Records: the framing of what the application sends, streams split into records and TCP
segments, the output stream shape, and unknown versions (padding: fcgi_3_3_padding.py; request
ids: fcgi_3_3_request_ids.py).

Every case works against any responder: the probe app, when the target has it, only adds checks
of the content the application received. Without it, a target that loses part of a stream
split across records (HHVM kept only the first STDIN record) still answers: FCGI-3.3-10 and
FCGI-3.3-11 then compare each answer with the answer to the same request sent plainly
(harness/suite/comparison.py), and only for a target whose plain answers differ from one time to
the next can they show no more than a target that stalls, closes or misparses the records.
"""

from __future__ import annotations

import time

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import begin_record, request_records
from harness.wire.connection import FcgiConnection, ReadTimeout, Response
from harness.wire.codec import (
    FCGI_VERSION_1,
    Record,
    RecordType,
    decode_params,
    encode_nv_length,
    encode_params,
    encode_record,
    preview_bytes,
    stream_records,
)
from harness.wire.mutations import split_at, split_every_offset, with_version
from harness.wire.probe_app import probe_query
from harness.verdicts import Level, Violation
from harness.suite.checks import (
    TIMEOUT,
    describe_event,
    expect_end_request,
    expect_probe_report,
    expect_single_end_request,
    expect_stdin_received,
    expect_stream_terminated,
    next_event,
    read_response,
)

# What an application may send (spec Appendix A: every type not marked WS->App).
APPLICATION_SENT_TYPES = frozenset(
    {RecordType.STDOUT, RecordType.STDERR, RecordType.END_REQUEST, RecordType.GET_VALUES_RESULT, RecordType.UNKNOWN_TYPE}
)


def _pending_bytes(conn: FcgiConnection) -> bytes:
    """Bytes received that do not (yet) form a whole record."""
    return conn.pending_bytes


def _expect_received(
    ctx: CaseContext,
    response: Response,
    params: list[tuple[bytes | str, bytes | str]] | bytes,
    stdin: bytes,
    how: str,
) -> None:
    """The request was answered; with the probe app, it received exactly these params and stdin; without
    it, the answer is the one to the same params and stdin sent plainly (when the target's answers
    can be compared)."""
    expect_end_request(response)
    if not ctx.has_probe_app:
        sent = decode_params(params) if isinstance(params, bytes) else params
        ctx.expect_same_answer(response, how, sent, stdin)
        return
    report = expect_probe_report(response)
    sent = decode_params(params if isinstance(params, bytes) else encode_params(params))
    if not ctx.params_match(report.params, sent):
        missing = [n.decode("latin-1")[:32] for n, _ in sent if report.param(n) is None]
        raise Violation(
            f"all {len(sent)} params as sent, in order ({how})",
            f"{len(report.params)} params" + (f"; missing {', '.join(missing)}" if missing else "; values differ"),
        )
    expect_stdin_received(report, stdin, how)


# -- FCGI-3.3-1 ----------------------------------------------------------------------------

# (request id, probe query): a default answer, 1 byte, several full records, 7 bytes.
FRAMING_REQUESTS = ((1, ""), (2, probe_query(out=1)), (3, probe_query(out=150000)), (4, probe_query(out=7)))


def _read_framed(conn: FcgiConnection, request_id: int, timeout: float, where: str) -> None:
    """Read records up to END_REQUEST{request_id}; each must be a well-framed application record."""
    expected = [
        "records of version 1 whose contentLength and paddingLength match the bytes that follow",
        "only STDOUT, STDERR, END_REQUEST, GET_VALUES_RESULT and UNKNOWN_TYPE records (Appendix A)",
    ]
    end_time = time.monotonic() + timeout
    while True:
        try:
            # Short slices: a header of another version waiting for its "content" shows at once.
            record = conn.read_record(min(0.1, max(end_time - time.monotonic(), 0.0)))
        except ReadTimeout:
            pending = _pending_bytes(conn)
            misframed = bool(pending) and pending[0] != FCGI_VERSION_1
            if not misframed and time.monotonic() < end_time:
                continue
            actual = (
                f"a header of version {pending[0]} ({where})" if misframed
                else TIMEOUT + f" waiting for END_REQUEST id={request_id} ({where})"
            )
            if pending:
                actual += f"; {len(pending)} bytes received that are not a whole record: {preview_bytes(pending, 32)}"
            raise Violation(expected, actual) from None
        if record.version != FCGI_VERSION_1 or record.type not in APPLICATION_SENT_TYPES:
            raise Violation(expected, f"{record.describe()} ({where})")
        if record.type == RecordType.END_REQUEST and record.request_id == request_id:
            return


@case(
    "FCGI-3.3-1",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="Every record the application sends is well framed: version 1, lengths that match, no stray bytes "
    "(4 requests, then GET_VALUES, on one connection)",
    requirement="A FastCGI record consists of a fixed-length prefix followed by a variable number of content and "
    "padding bytes. [...] version: Identifies the FastCGI protocol version. This specification documents FCGI_VERSION_1.",
    level=Level.REQUIRED,
    catches=("misframe-on-reuse",),
)
def output_is_framed(ctx: CaseContext) -> None:
    conn = ctx.connect()
    for number, (request_id, query) in enumerate(FRAMING_REQUESTS, start=1):
        conn.send_records(request_records(request_id, ctx.probe_params(query)))
        _read_framed(conn, request_id, ctx.answer_wait, f"request {number} of {len(FRAMING_REQUESTS)} on one connection")
    # A management record last: its answer (if any; §4.1 judges that) must be framed as well,
    # and nothing may follow but whole, well-framed records.
    conn.get_values(["FCGI_MPXS_CONNS"])
    for record in conn.drain(ctx.quiet_wait):
        if record.version != FCGI_VERSION_1 or record.type not in APPLICATION_SENT_TYPES:
            raise Violation("no stray bytes after the last END_REQUEST", record.describe())
    pending = _pending_bytes(conn)
    if pending:
        raise Violation(
            "no stray bytes after the last END_REQUEST",
            f"{len(pending)} bytes that are not a whole record: {preview_bytes(pending, 32)}",
        )


# -- FCGI-3.3-10 ---------------------------------------------------------------------------

STREAM_REQUIREMENT = (
    "Therefore the value of a stream is independent of how many records it contains or how its bytes "
    "are divided among the non-empty records."
)
# A small PARAMS stream with a 4-byte name length and a 4-byte value length: split in two
# records at every one of its offsets, one request per offset.
SMALL_PARAMS = [
    ("QUERY_STRING", ""),
    (b"FCGISPEC_LONG_NAME_" + b"N" * 109, b"v"),  # 128-byte name
    ("FCGISPEC_LONG_VALUE", b"V" * 130),
]


@case(
    "FCGI-3.3-10",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2", "FCGI-3.4-1", "FCGI-3.3-6"),
    title="A stream's value does not depend on its records: PARAMS cut inside lengths and names, PARAMS and STDIN "
    "in 1-byte records, PARAMS split in two at every offset",
    requirement=STREAM_REQUIREMENT,
    level=Level.REQUIRED,
    catches=("params-split-pair-lost", "stdin-first-record-only"),
    timeout=20.0,
)
def stream_split_anywhere(ctx: CaseContext) -> None:
    """PARAMS and STDIN cut mid-length and mid-name, in 1-byte records, split at every offset: received unchanged."""
    body = bytes(range(256))
    long_name = b"FCGISPEC_LONG_NAME_" + b"N" * 181  # 200 bytes: a 4-byte name length
    split_name = b"FCGISPEC_SPLIT_NAME"
    params = ctx.post_params(
        len(body), [(long_name, b"long-name-value"), (split_name, b"split-value"), ("FCGISPEC_AFTER", "after")]
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
        [begin_record(1)]
        + params_records
        + [encode_record(RecordType.PARAMS, 1, b"")]
        + stream_records(RecordType.STDIN, 1, body, chunk_sizes=1)
    )
    _expect_received(ctx, read_response(conn, 1, ctx.answer_wait), encoded, body, f"from {len(body)} 1-byte STDIN records")

    conn.note("PARAMS and STDIN as 1-byte records")
    conn.send_records(
        [begin_record(2)]
        + stream_records(RecordType.PARAMS, 2, encoded, chunk_sizes=1)
        + stream_records(RecordType.STDIN, 2, body, chunk_sizes=1)
    )
    response = read_response(conn, 2, ctx.answer_wait)
    _expect_received(ctx, response, encoded, body, f"from {len(encoded)} 1-byte PARAMS records")

    # The least a CGI request needs on every platform (net/http wants the method and protocol,
    # php-fpm and fcgiwrap the script), then the pairs that get cut.
    minimal = [("REQUEST_METHOD", "GET"), ("SERVER_PROTOCOL", "HTTP/1.1"), ("SCRIPT_FILENAME", ctx.script_filename)]
    small = encode_params(minimal + SMALL_PARAMS)
    conn.note(f"{len(small) - 1} requests, each with its {len(small)}-byte PARAMS split in two records at offset 1, 2, …")
    for offset, pieces in split_every_offset(small):
        conn.send_records(
            [begin_record(3)]
            + [encode_record(RecordType.PARAMS, 3, piece) for piece in pieces]
            + [encode_record(RecordType.PARAMS, 3, b""), encode_record(RecordType.STDIN, 3, b"")]
        )
        response = read_response(
            conn, 3, ctx.answer_wait, expected=f"END_REQUEST id=3 for PARAMS split at byte {offset} of {len(small)}"
        )
        _expect_received(ctx, response, small, b"", f"PARAMS split at byte {offset} of {len(small)}")


# -- FCGI-3.3-11 ---------------------------------------------------------------------------

HEADER_PAUSE_SECONDS = 0.01


@case(
    "FCGI-3.3-11",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2", "FCGI-3.3-10"),
    title="TCP segmentation changes nothing: headers cut at offsets 1..7 across writes, a request written one "
    "byte at a time, 300 records in one write",
    requirement="All data that flows over the transport connection is carried in FastCGI records.",
    level=Level.REQUIRED,
    catches=("split-header-lost",),
    timeout=20.0,
)
def segmentation_independent(ctx: CaseContext) -> None:
    """Requests with headers cut across writes, 1 byte per write, 300 records per write: served unchanged."""
    conn = ctx.connect()
    body = b"segmented body " * 20
    params = ctx.post_params(len(body))
    encoded = encode_params(params)
    half_params, half_body = len(encoded) // 2, len(body) // 2

    # Seven records, the header of the k-th cut after its k-th byte, with a pause between the pieces
    # so that the target reads a partial header.
    records = (
        [begin_record(1)]
        + stream_records(RecordType.PARAMS, 1, encoded, chunk_sizes=[half_params, len(encoded)])
        + stream_records(RecordType.STDIN, 1, body, chunk_sizes=[half_body, len(body)])
    )
    offsets, start = [], 0
    for cut, record in enumerate(records, start=1):
        offsets.append(start + cut)
        start += len(record)
    conn.note(f"record k's header cut after its byte k (k = 1..{len(records)}), pieces {HEADER_PAUSE_SECONDS * 1000:g} ms apart")
    conn.send_chunks(split_at(b"".join(records), offsets), pause=HEADER_PAUSE_SECONDS)
    response = read_response(conn, 1, ctx.answer_wait, expected="END_REQUEST id=1 for the request with cut headers")
    _expect_received(ctx, response, encoded, body, "with every record header cut across two writes")

    conn.send_raw(b"".join(request_records(2, params, body)), write_size=1)
    response = read_response(conn, 2, ctx.answer_wait, expected="END_REQUEST id=2 for the request written 1 byte per send()")
    _expect_received(ctx, response, encoded, body, "written 1 byte per send()")

    conn.note("one write: PARAMS in 100 records and STDIN in 200 records")
    long_body = body * 2
    long_params = ctx.post_params(len(long_body))
    long_encoded = encode_params(long_params)
    conn.send_records(
        [begin_record(3)]
        + stream_records(RecordType.PARAMS, 3, long_encoded, chunk_sizes=-(-len(long_encoded) // 100))
        + stream_records(RecordType.STDIN, 3, long_body, chunk_sizes=-(-len(long_body) // 200))
    )
    response = read_response(conn, 3, ctx.answer_wait, expected="END_REQUEST id=3 for 300 records sent in one write")
    _expect_received(ctx, response, long_encoded, long_body, "300 records in one write")


# -- FCGI-3.3-12 ---------------------------------------------------------------------------


@case(
    "FCGI-3.3-12",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="STDOUT is non-empty records, then exactly one empty record, and nothing after it",
    requirement="A stream record is part of a stream, i.e. a series of zero or more non-empty records "
    "(length != 0) of the stream type, followed by an empty record (length == 0) of the stream type.",
    level=Level.REQUIRED,
    catches=("stdout-after-empty",),
)
def stdout_stream_shape(ctx: CaseContext) -> None:
    conn = ctx.connect()
    # 200000 bytes cannot fit one record, so the probe app's stream has several non-empty records.
    for request_id, size in ((1, 200000), (2, 10)):
        conn.send_records(request_records(request_id, ctx.probe_params(probe_query(out=size))))
        response = read_response(conn, request_id, ctx.answer_wait)
        expect_stream_terminated(response.records, RecordType.STDOUT)
        expect_end_request(response)
        expect_single_end_request(conn, request_id, ctx.seconds(0.3))


# -- FCGI-3.3-14 ---------------------------------------------------------------------------

ODD_VERSIONS = (0, 2)


def _reaction(conn: FcgiConnection, request_id: int, seconds: float) -> str:
    """What the target does within `seconds` of a request: words for the note."""
    seen: list[str] = []
    while True:
        event = next_event(conn, seconds)
        if event == TIMEOUT:
            return "no answer" + (f" ({', '.join(seen)})" if seen else "")
        if not isinstance(event, Record):
            return (", ".join(seen) + ", then " if seen else "") + describe_event(event)
        if event.request_id == request_id and event.type == RecordType.END_REQUEST:
            seen.append(f"served it ({event.describe()}" + (f", version {event.version})" if event.version != 1 else ")"))
            return ", ".join(seen)
        if event.type not in (RecordType.STDOUT, RecordType.STDERR):
            seen.append(event.describe())


@case(
    "FCGI-3.3-14",
    title="A request in version 0 or 2 records: what the target does (ignore, close or serve)",
    requirement="version: Identifies the FastCGI protocol version. This specification documents FCGI_VERSION_1.",
    level=Level.UNSPECIFIED,
    catches=("exit-on-malformed", "abort-on-malformed"),
    protocol_error=True,
)
def unknown_version(ctx: CaseContext) -> str:
    notes: list[str] = []
    for version in ODD_VERSIONS:
        conn = ctx.connect(f"version {version}")
        conn.send_raw(with_version(b"".join(request_records(1, ctx.probe_params())), version))
        reaction = _reaction(conn, 1, ctx.seconds(0.5))
        words = f"version {version}: {reaction}"
        if conn.closed_how is None:
            conn.send_records(request_records(2, ctx.probe_params()))
            after = _reaction(conn, 2, ctx.seconds(2.0))
            words += f"; a version 1 request afterwards on the same connection: {after}"
        notes.append(words)
        conn.close()
    return "; ".join(notes)
