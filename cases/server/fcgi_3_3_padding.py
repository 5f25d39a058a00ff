"""§3.3 Records, "Padding": receivers skip paddingData, whatever its length and bytes.

Each scenario runs unpadded first, then with every record padded; the case
compares what the target did. So a target that mishandles, say, ABORT_REQUEST
fails that in §5.4, not here: only a difference caused by padding counts.
"""

from __future__ import annotations

from typing import Callable

from harness.case import CaseContext, case
from harness.fcgi_client import ConnectionClosed, FcgiConnection, ReadTimeout
from harness.fcgi_codec import (
    KEEP_CONN,
    MANAGEMENT_REQUEST_ID,
    CodecError,
    RecordType,
    Role,
    begin_request_body,
    decode_params,
    encode_params,
    encode_record,
)
from harness.probe_app import ProbeError, parse_cgi, parse_probe_report, probe_params, probe_query
from harness.verdicts import Level, Violation

PADDING_LENGTHS = (1, 7, 255)
# Non-zero padding: a receiver that parses it as a header or as content shows it.
PADDING_BYTE = 0xA5
BODY = b"padded request body " * 20
STRAY_REQUEST_ID = 999  # never begun, so records for it must be ignored


def _record(record_type: int, request_id: int, content: bytes, padding_length: int) -> bytes:
    return encode_record(record_type, request_id, content, padding_length=padding_length, padding_byte=PADDING_BYTE)


def _stream(record_type: int, request_id: int, data: bytes, padding_length: int) -> list[bytes]:
    """Records of at most 100 bytes, then the (also padded) empty terminator."""
    pieces = [_record(record_type, request_id, data[i : i + 100], padding_length) for i in range(0, len(data), 100)]
    return pieces + [_record(record_type, request_id, b"", padding_length)]


def _request_records(request_id: int, padding_length: int, *, with_stdin: bool = True) -> list[bytes]:
    params = probe_params(probe_query(status=200), "POST", content_length=len(BODY))
    records = [_record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(Role.RESPONDER, KEEP_CONN), padding_length)]
    records += _stream(RecordType.PARAMS, request_id, encode_params(params), padding_length)
    if with_stdin:
        records += _stream(RecordType.STDIN, request_id, BODY, padding_length)
    return records


def _answer(ctx: CaseContext, conn: FcgiConnection, request_id: int) -> str:
    """What the target answered to one request, in words comparable across runs."""
    try:
        response = conn.read_response(request_id, ctx.seconds(3.0))
    except ReadTimeout:
        return f"no END_REQUEST id={request_id} (Timeout)"
    except ConnectionClosed as closed:
        return f"connection closed ({closed.how}) before END_REQUEST id={request_id}"
    if response.end is None:
        return "a malformed END_REQUEST"
    words = f"END_REQUEST protocolStatus={response.end.protocol_status}"
    try:
        cgi = parse_cgi(response.stdout)
    except ProbeError:
        return words + f", {len(response.stdout)} bytes of non-CGI STDOUT"
    words += f", Status {cgi.status}"
    if ctx.has_probe_app:
        try:
            report = parse_probe_report(cgi.body)
            words += f", {len(report.params)} params, stdin {report.stdin_length} bytes {report.stdin_sha256[:12]}"
        except ProbeError:
            words += ", no probe report"
    return words


def request_scenario(ctx: CaseContext, conn: FcgiConnection, padding_length: int) -> str:
    conn.send_records(_request_records(1, padding_length))
    return "request: " + _answer(ctx, conn, 1)


def get_values_scenario(ctx: CaseContext, conn: FcgiConnection, padding_length: int) -> str:
    conn.send_records([_record(RecordType.GET_VALUES, MANAGEMENT_REQUEST_ID, encode_params([("FCGI_MPXS_CONNS", "")]), padding_length)])
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
    conn.send_records(_request_records(2, 0))
    return f"GET_VALUES: {result}; next request: {_answer(ctx, conn, 2)}"


def stray_records_scenario(ctx: CaseContext, conn: FcgiConnection, padding_length: int) -> str:
    conn.send_records(
        [
            _record(RecordType.ABORT_REQUEST, STRAY_REQUEST_ID, b"", padding_length),
            _record(RecordType.DATA, STRAY_REQUEST_ID, b"", padding_length),
            _record(RecordType.STDIN, STRAY_REQUEST_ID, b"", padding_length),
        ]
        + _request_records(3, 0)
    )
    return f"ABORT, DATA, STDIN for inactive id {STRAY_REQUEST_ID}, then a request: {_answer(ctx, conn, 3)}"


def abort_scenario(ctx: CaseContext, conn: FcgiConnection, padding_length: int) -> str:
    conn.send_records(_request_records(4, 0, with_stdin=False) + [_record(RecordType.ABORT_REQUEST, 4, b"", padding_length)])
    aborted = _answer(ctx, conn, 4)
    if "closed" in aborted:
        return f"ABORT_REQUEST: {aborted}"
    conn.send_records(_request_records(5, 0))
    return f"ABORT_REQUEST: {aborted}; next request: {_answer(ctx, conn, 5)}"


SCENARIOS: tuple[tuple[str, Callable[[CaseContext, FcgiConnection, int], str]], ...] = (
    ("BEGIN_REQUEST, PARAMS and STDIN (empty terminators included)", request_scenario),
    ("GET_VALUES", get_values_scenario),
    ("ABORT_REQUEST, DATA and STDIN for an inactive id", stray_records_scenario),
    ("ABORT_REQUEST of an active request", abort_scenario),
)


@case(
    "FCGI-3.3-3",
    title="Padding (1, 7, 255 non-zero bytes) on every inbound record type changes nothing",
    requirement="The protocol allows senders to pad the records they send, and requires receivers to interpret "
    "the paddingLength and skip the paddingData.",
    level=Level.REQUIRED,
    catches=("padding-not-skipped",),
    timeout=60.0,
)
def padding_is_skipped(ctx: CaseContext) -> None:
    for what, scenario in SCENARIOS:
        unpadded_conn = ctx.connect(f"{what}, unpadded")
        unpadded = scenario(ctx, unpadded_conn, 0)
        unpadded_conn.close()
        for padding_length in PADDING_LENGTHS:
            conn = ctx.connect(f"{what}, padding {padding_length}")
            conn.note(f"records marked pad={padding_length} carry {padding_length} bytes of 0x{PADDING_BYTE:02x}")
            padded = scenario(ctx, conn, padding_length)
            conn.close()
            if padded != unpadded:
                raise Violation(
                    [f"{what} padded with {padding_length} bytes: the same as unpadded", f"  {unpadded}"],
                    padded,
                )
