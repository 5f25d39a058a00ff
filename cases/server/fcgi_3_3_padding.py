"""§3.3 Records, "Padding", and the largest record there is.

Receivers skip paddingData, whatever its length and bytes (FCGI-3.3-3): each scenario runs
unpadded first, then with every record padded; the case compares what the target did (without a
probe app, the full answers to the requests are also compared with the plain request's:
harness/suite/comparison.py). So a
target that mishandles, say, ABORT_REQUEST fails that in §5.4, not here: only a difference
caused by padding counts. A record may carry 65535 content bytes and 255 padding bytes at once
(FCGI-3.3-4). Senders are recommended to keep records 8-byte aligned (FCGI-3.3-5).
"""

from __future__ import annotations

from typing import Callable

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import begin_record, plain_request, request_records
from harness.wire.connection import ConnectionClosed, FcgiConnection, ReadTimeout
from harness.wire.codec import (
    HEADER_LENGTH,
    KEEP_CONN,
    MANAGEMENT_REQUEST_ID,
    MAX_CONTENT_LENGTH,
    CodecError,
    Record,
    RecordType,
    Role,
    begin_request_body,
    decode_params,
    encode_nv_length,
    encode_params,
    encode_record,
)
from harness.wire.mutations import ALL_PADDING_LENGTHS, DEFAULT_PADDING_BYTE
from harness.wire.probe_app import (
    ProbeError,
    parse_cgi,
    parse_probe_report,
    pattern_bytes,
    probe_query,
    sha256_hex,
)
from harness.verdicts import Level, RecommendationMissed, Violation
from harness.suite.checks import (
    expect_end_request,
    expect_param,
    expect_probe_report,
    expect_stdin_received,
    read_response,
)

BODY = b"padded request body " * 20
STRAY_REQUEST_ID = 999  # never begun, so records for it must be ignored
# In the every-length run, padding starts with a record header (an empty STDIN for id 1, the id
# of the two request scenarios): a receiver that reads padding as the next record ends the body early
# instead of failing loudly.
HEADER_LOOKALIKE = encode_record(RecordType.STDIN, 1, b"")


class Padding:
    """How to pad the records of one run: not at all, one fixed length, or 1..255 in turn."""

    def __init__(self, lengths: tuple[int, ...], label: str) -> None:
        self.lengths = lengths
        self.label = label
        self._index = 0

    def bytes_for_next(self) -> bytes:
        if not self.lengths:
            return b""
        length = self.lengths[self._index % len(self.lengths)]
        self._index += 1
        if len(self.lengths) == 1:
            return bytes([DEFAULT_PADDING_BYTE]) * length
        return (HEADER_LOOKALIKE + bytes([DEFAULT_PADDING_BYTE]) * length)[:length]


def _runs() -> list[Padding]:
    return [
        Padding((1,), "padding 1"),
        Padding((7,), "padding 7"),
        Padding((255,), "padding 255"),
        Padding(ALL_PADDING_LENGTHS, "padding 1, 2, … 255 in turn (starting with a header look-alike)"),
    ]


def _record(record_type: int, request_id: int, content: bytes, padding: Padding) -> bytes:
    return encode_record(record_type, request_id, content, padding=padding.bytes_for_next())


def _stream(record_type: int, request_id: int, data: bytes, padding: Padding, size: int = 100) -> list[bytes]:
    """Records of at most `size` bytes, then the (also padded) empty terminator."""
    pieces = [_record(record_type, request_id, data[i : i + size], padding) for i in range(0, len(data), size)]
    return pieces + [_record(record_type, request_id, b"", padding)]


def _params_stream(request_id: int, pairs: list[tuple[bytes | str, bytes | str]], padding: Padding) -> list[bytes]:
    """PARAMS cut only between pairs (records of about 100 bytes): padding is then the only
    thing that differs from a plain request, not pairs that straddle records (3.3-10)."""
    records, current = [], b""
    for name, value in pairs:
        pair = encode_params([(name, value)])
        if current and len(current) + len(pair) > 100:
            records.append(_record(RecordType.PARAMS, request_id, current, padding))
            current = b""
        current += pair
    if current:
        records.append(_record(RecordType.PARAMS, request_id, current, padding))
    return records + [_record(RecordType.PARAMS, request_id, b"", padding)]


def _request_records(
    ctx: CaseContext,
    request_id: int,
    padding: Padding,
    *,
    body: bytes = BODY,
    with_stdin: bool = True,
    stdin_record_size: int = 100,
) -> list[bytes]:
    params = ctx.post_params(len(body))
    records = [_record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(Role.RESPONDER, KEEP_CONN), padding)]
    records += _params_stream(request_id, params, padding)
    if with_stdin:
        records += _stream(RecordType.STDIN, request_id, body, padding, stdin_record_size)
    return records


def _answer(
    ctx: CaseContext,
    conn: FcgiConnection,
    request_id: int,
    *,
    whole_stdout: bool = False,
    same_as_plain: tuple[str, list[tuple[bytes | str, bytes | str]], bytes] | None = None,
) -> str:
    """What the target answered to one request, in words comparable across runs.

    same_as_plain (variation, params, stdin): without a probe app, the full answer must also be
    the one to the same request sent plainly (ctx.expect_same_answer), or the case fails.
    """
    try:
        response = conn.read_response(request_id, ctx.seconds(3.0))
    except ReadTimeout:
        return f"no END_REQUEST id={request_id} (Timeout)"
    except ConnectionClosed as closed:
        return f"connection closed ({closed.how}) before END_REQUEST id={request_id}"
    if response.end is None:
        return "a malformed END_REQUEST"
    if same_as_plain is not None:
        ctx.expect_same_answer(response, *same_as_plain)
    words = f"END_REQUEST protocolStatus={response.end.protocol_status}"
    try:
        cgi = parse_cgi(response.stdout)
    except ProbeError:
        return words + f", {len(response.stdout)} bytes of non-CGI STDOUT"
    words += f", Status {cgi.status}"
    if ctx.has_probe_app:
        if whole_stdout:
            return words + f", STDOUT {len(response.stdout)} bytes {sha256_hex(response.stdout)[:12]}"
        try:
            report = parse_probe_report(cgi.body)
            words += f", {len(report.params)} params, stdin {report.stdin_length} bytes {report.stdin_sha256[:12]}"
        except ProbeError:
            words += ", no probe report"
    return words


def _variation(padding: Padding, records: str) -> str:
    padded = "unpadded" if not padding.lengths else f"with {padding.label}"
    return f"sending the request as {records}, {padded},"


def request_scenario(ctx: CaseContext, conn: FcgiConnection, padding: Padding) -> str:
    conn.send_records(_request_records(ctx, 1, padding))
    plain = (_variation(padding, "records of about 100 bytes"), ctx.post_params(len(BODY)), BODY)
    return "request: " + _answer(ctx, conn, 1, same_as_plain=plain)


MANY_RECORDS_BODY = pattern_bytes(4 * len(ALL_PADDING_LENGTHS))


def many_records_scenario(ctx: CaseContext, conn: FcgiConnection, padding: Padding) -> str:
    """STDIN in 255 4-byte records: in the every-length run, each has its own padding length."""
    conn.send_records(_request_records(ctx, 1, padding, body=MANY_RECORDS_BODY, stdin_record_size=4))
    plain = (
        _variation(padding, "255 STDIN records of 4 bytes"), ctx.post_params(len(MANY_RECORDS_BODY)), MANY_RECORDS_BODY
    )
    return "request with 255 STDIN records: " + _answer(ctx, conn, 1, same_as_plain=plain)


def get_values_scenario(ctx: CaseContext, conn: FcgiConnection, padding: Padding) -> str:
    conn.send_records([_record(RecordType.GET_VALUES, MANAGEMENT_REQUEST_ID, encode_params([("FCGI_MPXS_CONNS", "")]), padding)])
    try:
        record = conn.read_record(ctx.seconds(2.0))
        try:
            result = f"{record.describe().split()[0]} {sorted(name for name, _ in decode_params(record.content))}"
        except CodecError:
            result = record.describe()
    except ReadTimeout:
        result = "no answer"
    except ConnectionClosed as closed:
        return f"GET_VALUES: connection closed ({closed.how})"
    conn.send_records(_request_records(ctx, 2, Padding((), "none")))
    return f"GET_VALUES: {result}; next request: {_answer(ctx, conn, 2)}"


def stray_records_scenario(ctx: CaseContext, conn: FcgiConnection, padding: Padding) -> str:
    conn.send_records(
        [
            _record(RecordType.ABORT_REQUEST, STRAY_REQUEST_ID, b"", padding),
            _record(RecordType.DATA, STRAY_REQUEST_ID, b"stray data", padding),
            _record(RecordType.DATA, STRAY_REQUEST_ID, b"", padding),
            _record(RecordType.STDIN, STRAY_REQUEST_ID, b"", padding),
        ]
        + _request_records(ctx, 3, Padding((), "none"))
    )
    return f"ABORT, DATA and STDIN for inactive id {STRAY_REQUEST_ID}, then a request: {_answer(ctx, conn, 3)}"


def abort_scenario(ctx: CaseContext, conn: FcgiConnection, padding: Padding) -> str:
    conn.send_records(
        _request_records(ctx, 4, Padding((), "none"), with_stdin=False) + [_record(RecordType.ABORT_REQUEST, 4, b"", padding)]
    )
    aborted = _answer(ctx, conn, 4)
    if "closed" in aborted:
        return f"ABORT_REQUEST: {aborted}"
    conn.send_records(_request_records(ctx, 5, Padding((), "none")))
    return f"ABORT_REQUEST: {aborted}; next request: {_answer(ctx, conn, 5)}"


FILTER_DATA = b"filter data, padded " * 15


def filter_data_scenario(ctx: CaseContext, conn: FcgiConnection, padding: Padding) -> str:
    """A Filter request, so that DATA records with content reach an active request (a target
    without the Filter role answers UNKNOWN_ROLE both times, which compares equal)."""
    params = ctx.probe_params(
        "",
        "GET",
        [("FCGI_DATA_LENGTH", str(len(FILTER_DATA))), ("FCGI_DATA_LAST_MOD", "0")],
    )
    conn.send_records(
        [_record(RecordType.BEGIN_REQUEST, 7, begin_request_body(Role.FILTER, KEEP_CONN), padding)]
        + _params_stream(7, params, padding)
        + _stream(RecordType.STDIN, 7, b"", padding)
        + _stream(RecordType.DATA, 7, FILTER_DATA, padding)
    )
    return "Filter request with DATA: " + _answer(ctx, conn, 7, whole_stdout=True)


SCENARIOS: tuple[tuple[str, Callable[[CaseContext, FcgiConnection, Padding], str]], ...] = (
    ("BEGIN_REQUEST, PARAMS and STDIN (empty terminators included)", request_scenario),
    ("STDIN in 255 records", many_records_scenario),
    ("GET_VALUES", get_values_scenario),
    ("ABORT_REQUEST, DATA and STDIN for an inactive id", stray_records_scenario),
    ("ABORT_REQUEST of an active request", abort_scenario),
    ("BEGIN_REQUEST (Filter), PARAMS, STDIN and DATA", filter_data_scenario),
)


@case(
    "FCGI-3.3-3",
    title="Padding (1, 7, 255 and every length 1..255; non-zero bytes) on every inbound record type, "
    "empty records included, changes nothing",
    requirement="The protocol allows senders to pad the records they send, and requires receivers to interpret "
    "the paddingLength and skip the paddingData.",
    level=Level.REQUIRED,
    catches=("padding-not-skipped", "padded-stdin-lost"),
    timeout=60.0,
)
def padding_is_skipped(ctx: CaseContext) -> None:
    for what, scenario in SCENARIOS:
        unpadded_conn = ctx.connect(f"{what}, unpadded")
        unpadded = scenario(ctx, unpadded_conn, Padding((), "none"))
        unpadded_conn.close()
        if scenario is request_scenario and "END_REQUEST protocolStatus" not in unpadded:
            # Without an answer to the plain request, equal answers would prove nothing.
            raise Violation(["the plain, unpadded request answered with END_REQUEST (the baseline)"], unpadded)
        for padding in _runs():
            conn = ctx.connect(f"{what}, {padding.label}")
            conn.note(f"records carry {padding.label}, bytes 0x{DEFAULT_PADDING_BYTE:02x}")
            padded = scenario(ctx, conn, padding)
            conn.close()
            if padded != unpadded:
                raise Violation([f"{what} with {padding.label}: the same as unpadded", f"  {unpadded}"], padded)


@case(
    "FCGI-3.3-4",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2", "FCGI-3.3-3", "FCGI-3.3-10", "FCGI-3.4-1", "FCGI-3.4-5"),
    title="Records of 65535 content bytes plus padding (PARAMS with 255, STDIN with 1, as Go writes them) are accepted",
    requirement="contentData: Between 0 and 65535 bytes of data, interpreted according to the record type. "
    "paddingData: Between 0 and 255 bytes of data, which are ignored.",
    level=Level.REQUIRED,
    catches=("reject-max-content-padding",),
    timeout=15.0,
)
def max_content_with_padding(ctx: CaseContext) -> None:
    """A request in 65535-byte PARAMS and STDIN records padded by 255 and 1 must be served intact."""
    body = pattern_bytes(MAX_CONTENT_LENGTH + 100)
    params = ctx.post_params(len(body))
    fill_name = b"FCGISPEC_FILL"
    # The filler pair has a 1-byte name length and a 4-byte value length.
    fill_length = MAX_CONTENT_LENGTH - len(encode_params(params)) - 1 - 4 - len(fill_name)
    fill_value = pattern_bytes(fill_length)
    params.append((fill_name, fill_value))
    encoded = encode_params(params)
    assert len(encoded) == MAX_CONTENT_LENGTH and len(encode_nv_length(fill_length)) == 4
    conn = ctx.connect()
    conn.note("PARAMS: one record of 65535 + 255 padding bytes; STDIN: 65535 + 1, then 100 + 7")
    conn.send_records(
        [
            begin_record(1),
            encode_record(RecordType.PARAMS, 1, encoded, padding_length=255, padding_byte=DEFAULT_PADDING_BYTE),
            encode_record(RecordType.PARAMS, 1, b""),
            encode_record(RecordType.STDIN, 1, body[:MAX_CONTENT_LENGTH], padding_length=1, padding_byte=DEFAULT_PADDING_BYTE),
            encode_record(RecordType.STDIN, 1, body[MAX_CONTENT_LENGTH:], padding_length=7, padding_byte=DEFAULT_PADDING_BYTE),
            encode_record(RecordType.STDIN, 1, b""),
        ]
    )
    response = read_response(conn, 1, ctx.answer_wait, expected="END_REQUEST id=1 for the request with 65535-byte records")
    expect_end_request(response)
    if ctx.has_probe_app:
        report = expect_probe_report(response)
        expect_param(report, fill_name, fill_value)
        expect_stdin_received(report, body, "from a 65535-byte record padded by 1 and a 100-byte one padded by 7")
    else:
        # The plain request cuts the same streams into the same records, without padding.
        ctx.expect_same_answer(response, "records of 65535 bytes padded by 255 (PARAMS) and 1 (STDIN)", params, body)
    plain_request(ctx, conn, 2, "END_REQUEST id=2 on the same connection afterwards")


ALIGNMENT = 8


@case(
    "FCGI-3.3-5",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="Records the application sends are padded to multiples of 8 bytes (STDOUT of 1, 13 and 70001 bytes, "
    "END_REQUEST, GET_VALUES_RESULT, UNKNOWN_TYPE)",
    requirement="We recommend that records be placed on boundaries that are multiples of eight bytes. "
    "The fixed-length portion of a FCGI_Record is eight bytes.",
    level=Level.RECOMMENDED,
    catches=("unaligned-output",),
)
def output_aligned(ctx: CaseContext) -> str:
    """Checks that every record the app sends (STDOUT of three sizes, management answers) is 8-byte aligned."""
    conn = ctx.connect()
    received: list[Record] = []
    for request_id, size in ((1, 1), (2, 13), (3, 70001)):
        conn.send_records(request_records(request_id, ctx.probe_params(probe_query(out=size))))
        received += conn.read_all_until(
            lambda r, rid=request_id: r.type == RecordType.END_REQUEST and r.request_id == rid, ctx.answer_wait
        )
    # Management answers last: whether (and how) they come is §4's business, their alignment this case's.
    conn.send_records(
        [
            encode_record(RecordType.GET_VALUES, MANAGEMENT_REQUEST_ID, encode_params([("FCGI_MPXS_CONNS", "")])),
            encode_record(200, MANAGEMENT_REQUEST_ID, b"fcgispec"),
        ]
    )
    received += conn.drain(ctx.seconds(0.2))
    unaligned = [r for r in received if (HEADER_LENGTH + len(r.content) + len(r.padding)) % ALIGNMENT]
    if unaligned:
        first = unaligned[0]
        raise RecommendationMissed(
            f"every record 8 + contentLength + paddingLength bytes long, a multiple of {ALIGNMENT}",
            f"{len(unaligned)} of {len(received)} records unaligned, e.g. {first.describe()}: "
            f"{HEADER_LENGTH + len(first.content) + len(first.padding)} bytes",
        )
    # A record whose content is already a multiple of 8 long is aligned without padding: only those
    # that needed padding show whether the target pads.
    needed = [r for r in received if len(r.content) % ALIGNMENT]
    padded = [r for r in received if r.padding]
    if not needed:
        return (f"alignment not shown: none of the {len(received)} records needed padding (every content length a "
                f"multiple of {ALIGNMENT}), {len(padded)} padded")
    return (f"all {len(received)} records aligned to {ALIGNMENT} bytes: {len(needed)} needed padding to align, "
            f"{len(padded)} padded")
