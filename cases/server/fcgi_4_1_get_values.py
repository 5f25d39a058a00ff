"""§4.1 FCGI_GET_VALUES, FCGI_GET_VALUES_RESULT."""

from __future__ import annotations

from harness.case import CaseContext, case
from harness.fcgi_client import FcgiConnection
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
    stream_records,
)
from harness.probe_app import probe_params
from harness.verdicts import Level, Violation
from harness.verify import (
    complete_request,
    describe_event,
    expect_end_request,
    expect_no_record,
    expect_record,
    next_event,
    read_response,
)

STANDARD_NAMES = (b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS")
RESPONDS = (
    "The application responds by sending a record {FCGI_GET_VALUES_RESULT, 0, ...} with the values supplied."
)


def _ask(ctx: CaseContext, conn: FcgiConnection, names: tuple[bytes, ...]) -> list[tuple[bytes, bytes]]:
    """Send GET_VALUES, read the one GET_VALUES_RESULT, return its decoded pairs."""
    conn.get_values(names)
    record = expect_record(
        conn, RecordType.GET_VALUES_RESULT, MANAGEMENT_REQUEST_ID, ctx.seconds(3.0), expected="GET_VALUES_RESULT id=0"
    )
    try:
        return decode_params(record.content)
    except CodecError as error:
        raise Violation("GET_VALUES_RESULT holding name-value pairs", f"{record.describe()}: {error}") from None


@case(
    "FCGI-4.1-1",
    title="GET_VALUES for the three standard names: one GET_VALUES_RESULT, id 0, decimal values",
    requirement=RESPONDS,
    level=Level.REQUIRED,
    catches=("get-values-stream", "get-values-ignored"),
)
def get_values_standard_names(ctx: CaseContext) -> None:
    conn = ctx.connect()
    pairs = _ask(ctx, conn, STANDARD_NAMES)
    for name, value in pairs:
        if not value.isdigit():
            raise Violation(f"{name.decode('latin-1')} as a decimal string", repr(value.decode("latin-1")))
        if name == b"FCGI_MPXS_CONNS" and value not in (b"0", b"1"):
            raise Violation('FCGI_MPXS_CONNS "0" or "1"', repr(value.decode("latin-1")))
    # GET_VALUES_RESULT is a discrete record: nothing (an empty "terminator") follows it.
    expect_no_record(conn, ctx.seconds(0.3) * 1000, expected="no record after the one GET_VALUES_RESULT")


@case(
    "FCGI-4.1-2",
    title="Unknown names (FCGI_FOO, MAX_CONNS) are omitted from GET_VALUES_RESULT",
    requirement="If the application doesn't understand a variable name that was included in the query, "
    "it omits that name from the response.",
    level=Level.REQUIRED,
    catches=("get-values-ignored",),
)
def get_values_unknown_names_omitted(ctx: CaseContext) -> None:
    conn = ctx.connect()
    # MAX_CONNS without the FCGI_ prefix is what php's own test client asks for.
    pairs = _ask(ctx, conn, (b"FCGI_FOO", b"MAX_CONNS", b"FCGI_MPXS_CONNS"))
    unknown = [name for name, _ in pairs if name in (b"FCGI_FOO", b"MAX_CONNS")]
    if unknown:
        raise Violation("FCGI_FOO and MAX_CONNS omitted", f"{unknown[0].decode('latin-1')} in the result")


@case(
    "FCGI-4.1-3",
    title="GET_VALUES_RESULT holds only the names asked for",
    requirement=RESPONDS,
    level=Level.RECOMMENDED,
    catches=("get-values-stream",),
)
def get_values_only_asked_names(ctx: CaseContext) -> None:
    conn = ctx.connect()
    pairs = _ask(ctx, conn, (b"FCGI_MPXS_CONNS",))
    extra = [name.decode("latin-1") for name, _ in pairs if name != b"FCGI_MPXS_CONNS"]
    if extra:
        raise Violation("only FCGI_MPXS_CONNS (the one name asked for)", f"also {', '.join(extra)}")


@case(
    "FCGI-4.1-4",
    title="An empty GET_VALUES gets an empty GET_VALUES_RESULT",
    requirement=RESPONDS,
    level=Level.REQUIRED,
    catches=("get-values-ignored", "get-values-stream"),
)
def get_values_empty_query(ctx: CaseContext) -> None:
    conn = ctx.connect()
    pairs = _ask(ctx, conn, ())
    if pairs:
        raise Violation("GET_VALUES_RESULT with no pairs", f"{len(pairs)} pairs ({pairs[0][0].decode('latin-1')}, …)")


@case(
    "FCGI-4.1-5",
    title="GET_VALUES at any time: before a request, between PARAMS and STDIN, between requests",
    requirement="An application may receive a FCGI_GET_VALUES record at any time.",
    level=Level.REQUIRED,
    catches=("mgmt-mid-request-close",),
)
def get_values_any_time(ctx: CaseContext) -> None:
    conn = ctx.connect()
    _ask(ctx, conn, (b"FCGI_MPXS_CONNS",))
    conn.send_records(
        [encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.RESPONDER, KEEP_CONN))]
        + stream_records(RecordType.PARAMS, 1, encode_params(probe_params()))
    )
    conn.note("request 1 is active: PARAMS ended, STDIN not yet sent")
    conn.get_values([b"FCGI_MPXS_CONNS"])
    # The app may legitimately write STDOUT for request 1 already; skip those while
    # looking for the answer, but remember whether request 1 has ended.
    request_ended = False
    while True:
        event = next_event(conn, ctx.seconds(3.0))
        if isinstance(event, str):
            raise Violation("GET_VALUES_RESULT id=0 while request 1 is active", describe_event(event))
        if event.type == RecordType.GET_VALUES_RESULT and event.request_id == MANAGEMENT_REQUEST_ID:
            break
        request_ended = request_ended or (event.type == RecordType.END_REQUEST and event.request_id == 1)
    conn.send_records(stream_records(RecordType.STDIN, 1, b""))
    if not request_ended:
        response = read_response(conn, 1, ctx.seconds(5.0), expected="END_REQUEST id=1 after the mid-request GET_VALUES")
        expect_end_request(response)
    _ask(ctx, conn, (b"FCGI_MPXS_CONNS",))
    complete_request(conn, 2, probe_params(), timeout=ctx.seconds(5.0), expected="END_REQUEST id=2 on the same connection")
