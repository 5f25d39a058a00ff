"""Appendix A: properties of the record types (who may send them, which use the null request id)."""

from __future__ import annotations

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import request_records
from harness.wire.codec import MANAGEMENT_REQUEST_ID, Record, RecordType, Role, encode_record, type_name
from harness.wire.probe_app import probe_query
from harness.verdicts import Level, Violation
from harness.suite.checks import describe_event, next_event

APPLICATION_SENDS = {RecordType.STDOUT, RecordType.STDERR, RecordType.END_REQUEST}
MANAGEMENT_SENDS = {RecordType.GET_VALUES_RESULT, RecordType.UNKNOWN_TYPE}
UNKNOWN_MANAGEMENT_TYPE = 200


def _check(record: Record) -> None:
    """An application-to-server type, with the null id exactly when it is a management type."""
    allowed = "only STDOUT, STDERR, END_REQUEST (request ids) and GET_VALUES_RESULT, UNKNOWN_TYPE (id 0)"
    if record.type in APPLICATION_SENDS:
        if record.request_id == MANAGEMENT_REQUEST_ID:
            raise Violation([allowed, f"{type_name(record.type)} with its request's id, never the null id"], record.describe())
    elif record.type in MANAGEMENT_SENDS:
        if record.request_id != MANAGEMENT_REQUEST_ID:
            raise Violation([allowed, f"{type_name(record.type)} with the null request id 0"], record.describe())
    else:
        raise Violation(allowed, record.describe())


@case(
    "FCGI-A-1",
    # Requests (one aborted, one of an unknown role), GET_VALUES and an unknown type on one KEEP_CONN
    # connection, which stays usable.
    prerequisites=("FCGI-3.5-2", "FCGI-3.5-5", "FCGI-4.1-1", "FCGI-4.2-1", "FCGI-5.1-2", "FCGI-5.4-1"),
    title="The app sends only STDOUT, STDERR, END_REQUEST, GET_VALUES_RESULT and UNKNOWN_TYPE, ids per their kind",
    requirement="WS->App: records of this type can only be sent by the Web server to the application. Records of "
    "other types can only be sent by the application to the Web server.",
    level=Level.REQUIRED,
    catches=("stdout-as-data",),
)
def only_application_types(ctx: CaseContext) -> None:
    """Everything the app sends back is an application record type, with ids per its kind."""
    conn = ctx.connect()
    query = probe_query(out=100000, err="fcgispec") if ctx.has_probe_app else ""
    # The unknown type first: a close after it and one after GET_VALUES_RESULT then tell apart.
    conn.send_record(UNKNOWN_MANAGEMENT_TYPE, MANAGEMENT_REQUEST_ID, b"")
    conn.get_values([b"FCGI_MPXS_CONNS"])
    # Whether they are answered is §4's business: here only what comes back is judged.
    awaited: set[tuple[str, int]] = set()
    # A completed request (probe: with STDOUT and STDERR), a rejected role, an aborted request.
    for request_id, role, abort in ((1, Role.RESPONDER, False), (2, 0xFFFF, False), (3, Role.RESPONDER, True)):
        params = ctx.probe_params(query if request_id == 1 else "")
        pieces = request_records(request_id, params, b"partial" if abort else b"", role=role, terminate_stdin=not abort)
        if abort:
            pieces.append(encode_record(RecordType.ABORT_REQUEST, request_id))
        conn.send_records(pieces)
        awaited.add(("END_REQUEST", request_id))
    pending = set(awaited)
    while pending:
        event = next_event(conn, ctx.answer_wait)
        if not isinstance(event, Record):
            waiting = ", ".join(f"{name} id={rid}" for name, rid in sorted(pending))
            raise Violation(f"{waiting} (every record of an allowed type)", describe_event(event))
        _check(event)
        pending.discard((type_name(event.type), event.request_id))
    for record in conn.drain(ctx.seconds(0.25)):
        _check(record)
