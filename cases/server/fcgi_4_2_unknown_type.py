"""§4.2 FCGI_UNKNOWN_TYPE."""

from __future__ import annotations

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import begin_and_params, plain_request
from harness.wire.connection import ConnectionClosed, FcgiTimeout, request
from harness.wire.codec import (
    MANAGEMENT_REQUEST_ID,
    ProtocolStatus,
    Record,
    RecordType,
    encode_params,
    encode_record,
    end_request_body,
    stream_records,
    unknown_type_body,
)
from harness.verdicts import Level, Violation
from harness.suite.checks import expect_record

# 12 is the first type after the defined ones, 200 and 255 are far beyond them.
UNKNOWN_MANAGEMENT_TYPES = (12, 200, 255)


@case(
    "FCGI-4.2-1",
    title="Unknown management types 12, 200, 255 get UNKNOWN_TYPE {T}; the connection stays usable",
    requirement="When an application receives a management record whose type T it does not understand, "
    "the application responds with {FCGI_UNKNOWN_TYPE, 0, {T}}.",
    level=Level.REQUIRED,
    catches=("unknown-type-ignored", "unknown-type-close"),
)
def unknown_management_type(ctx: CaseContext) -> None:
    conn = ctx.connect()
    for unknown_type in UNKNOWN_MANAGEMENT_TYPES:
        conn.send_record(unknown_type, MANAGEMENT_REQUEST_ID, b"fcgispec")
        wanted = f"UNKNOWN_TYPE id=0 unknownType={unknown_type} (8-byte body)"
        record = expect_record(conn, RecordType.UNKNOWN_TYPE, MANAGEMENT_REQUEST_ID, ctx.seconds(3.0), expected=wanted)
        if len(record.content) != 8 or record.content[0] != unknown_type:
            raise Violation(wanted, record.describe())
    plain_request(ctx, conn, 1, "END_REQUEST id=1 on the same connection afterwards")


# Types the spec lets only the application send (App. A: not WS->App), as a web server might send them
# by mistake: Cherokee sent GET_VALUES_RESULT to an application (cherokee/webserver#1240), Go's own test
# fed END_REQUEST to the child (golang/go PR #42960).
def _web_server_bound_stimuli(ctx: CaseContext) -> list[tuple[str, list[bytes], bool]]:
    """(label, records to send, whether request 1 was begun first)."""
    # Without KEEP_CONN: an application serving one connection at a time moves on to the next.
    begun = begin_and_params(1, ctx.probe_params(), keep_conn=False)
    complete = end_request_body(0, ProtocolStatus.REQUEST_COMPLETE)
    return [
        ("GET_VALUES_RESULT id=0", [encode_record(RecordType.GET_VALUES_RESULT, 0, encode_params([("FCGI_MPXS_CONNS", "1")]))], False),
        ("UNKNOWN_TYPE id=0", [encode_record(RecordType.UNKNOWN_TYPE, 0, unknown_type_body(12))], False),
        ("END_REQUEST id=0", [encode_record(RecordType.END_REQUEST, 0, complete)], False),
        ("STDOUT id=1 during request 1", begun + [encode_record(RecordType.STDOUT, 1, b"Status: 200 OK\r\n\r\n")], True),
        ("STDERR id=1 during request 1", begun + [encode_record(RecordType.STDERR, 1, b"fcgispec")], True),
        ("END_REQUEST id=1 during request 1", begun + [encode_record(RecordType.END_REQUEST, 1, complete)], True),
    ]


def _describe_records(records: list[Record]) -> str:
    return ", ".join(r.describe() for r in records) if records else "nothing"


@case(
    "FCGI-4.2-2",
    title="Types only an application sends (GET_VALUES_RESULT, UNKNOWN_TYPE, END_REQUEST, STDOUT, STDERR) "
    "sent to it: what it does is recorded",
    requirement="WS->App: records of this type can only be sent by the Web server to the application. "
    "Records of other types can only be sent by the application to the Web server. (Appendix A; what an "
    "application does when it receives one is not specified.)",
    level=Level.UNSPECIFIED,
    catches=("exit-on-malformed", "abort-on-malformed"),
    protocol_error=True,
)
def web_server_bound_types(ctx: CaseContext) -> str:
    """Sends records only an application sends, one kind per connection; notes the reaction and whether it serves."""
    stimuli = _web_server_bound_stimuli(ctx)
    conns = []
    for label, records, _ in stimuli:
        conn = ctx.connect(label)
        conn.send_records(records)
        conns.append(conn)
    quiet = ctx.seconds(0.3)
    first_seen: list[list[Record]] = [conns[0].drain(quiet)] + [conn.drain(0.02) for conn in conns[1:]]
    notes = []
    for (label, _, begun), conn, seen in zip(stimuli, conns, first_seen):
        if conn.closed_how is not None:
            reaction = _describe_records(seen)
            notes.append(f"{label}: {reaction}, then connection {'closed' if conn.closed_how == 'eof' else 'reset'}")
            continue
        # Is the connection still usable? Finish request 1, or run one.
        try:
            if begun:
                conn.send_records(stream_records(RecordType.STDIN, 1, b""))
                response = conn.read_response(1, ctx.seconds(2.0))
            else:
                response = request(conn, 1, ctx.probe_params(), keep_conn=False, timeout=ctx.seconds(2.0))
        except FcgiTimeout:
            reaction = _describe_records(seen + conn.unread_records())
            notes.append(f"{label}: {reaction}; then request 1 got no answer (connection wedged)")
            continue
        except ConnectionClosed as closed:
            how = "closed" if closed.how == "eof" else "reset"
            reaction = _describe_records(seen + conn.unread_records())
            notes.append(f"{label}: {reaction}; then the connection was {how} before END_REQUEST id=1")
            continue
        # Records of id 0 that came while waiting for request 1 are the reaction too (a serial target answers late).
        reaction = _describe_records(seen + [r for r in response.other_records if r.request_id == MANAGEMENT_REQUEST_ID])
        status = "served" if response.end is None else _status_name(response.end.protocol_status)
        notes.append(f"{label}: {reaction}; request 1 then {'served' if status == 'REQUEST_COMPLETE' else status}")
        conn.close()
    return "; ".join(notes)


def _status_name(status: int) -> str:
    try:
        return ProtocolStatus(status).name
    except ValueError:
        return f"protocolStatus={status}"
