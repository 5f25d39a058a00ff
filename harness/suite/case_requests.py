"""The requests the cases send again and again, built in one place so that a case shows only
what it varies.

The standard request is what a web server sends for one Responder request with FCGI_KEEP_CONN
set: BEGIN_REQUEST, the PARAMS stream and the STDIN stream, each stream ended by its empty
record, encoded to go out in one write (request_records). A request in flight is one whose STDIN
has not ended (start_open_stdin). A plain request afterwards shows that a connection (or the
target) still serves after what a case did to it (plain_request).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

from harness.wire.connection import FcgiConnection, Response
from harness.wire.codec import KEEP_CONN, RecordType, Role, begin_request_body, encode_params, encode_record, stream_records
from harness.wire.probe_app import probe_params, probe_query
from harness.suite.checks import complete_request
from harness.suite.observations import kept_connection_closed, note
from harness.verdicts import Blocked

if TYPE_CHECKING:
    from harness.suite.case import CaseContext

Params = Iterable[tuple[bytes | str, bytes | str]]


def begin_record(request_id: int, role: int = Role.RESPONDER, keep_conn: bool = True) -> bytes:
    """An encoded BEGIN_REQUEST, with FCGI_KEEP_CONN set unless keep_conn is false."""
    return encode_record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(role, KEEP_CONN if keep_conn else 0))


def begin_and_params(
    request_id: int, params: Params, *, role: int = Role.RESPONDER, keep_conn: bool = True
) -> list[bytes]:
    """BEGIN_REQUEST and the whole PARAMS stream, encoded: a request that waits for its STDIN."""
    params_records = stream_records(RecordType.PARAMS, request_id, encode_params(params))
    return [begin_record(request_id, role, keep_conn)] + params_records


def request_records(
    request_id: int,
    params: Params,
    stdin: bytes = b"",
    *,
    role: int = Role.RESPONDER,
    keep_conn: bool = True,
    terminate_stdin: bool = True,
    stdin_chunk_sizes: int | Sequence[int] | None = None,
) -> list[bytes]:
    """The standard request, encoded: BEGIN_REQUEST, PARAMS, and STDIN (ended unless terminate_stdin is false)."""
    return begin_and_params(request_id, params, role=role, keep_conn=keep_conn) + stream_records(
        RecordType.STDIN, request_id, stdin, chunk_sizes=stdin_chunk_sizes, terminate=terminate_stdin
    )


def post_params(
    content_length: int, extra: Params = (), *, script_filename: str | None = None
) -> list[tuple[bytes | str, bytes | str]]:
    """The probe params of a POST with a body of content_length bytes (status=200: a plain answer).

    A case calls ctx.post_params, which passes the target's SCRIPT_FILENAME on.
    """
    return probe_params(probe_query(status=200), "POST", extra, content_length=content_length,
                        script_filename=script_filename)


def start_open_stdin(
    conn: FcgiConnection, request_id: int, params: Params, partial: bytes, *, keep_conn: bool = True
) -> None:
    """BEGIN_REQUEST, PARAMS and the first part of STDIN, in one write: the request is in flight
    until its STDIN ends (params should announce a longer CONTENT_LENGTH)."""
    conn.send_records(request_records(request_id, params, partial, keep_conn=keep_conn, terminate_stdin=False))


def send_request(
    conn: FcgiConnection,
    request_id: int,
    params: Params,
    stdin: bytes = b"",
    *,
    role: int = Role.RESPONDER,
    stdin_chunk_sizes: int | Sequence[int] | None = None,
) -> None:
    """The standard request, BEGIN_REQUEST, PARAMS and STDIN each in a write of its own."""
    conn.begin(request_id, role=role, keep_conn=True)
    conn.params(request_id, params)
    conn.stdin(request_id, stdin, chunk_sizes=stdin_chunk_sizes)


def plain_request(
    ctx: CaseContext,
    conn: FcgiConnection,
    request_id: int,
    expected: str | None = None,
    *,
    keep_conn: bool = True,
    wait: float | None = None,
) -> Response:
    """A plain probe request on conn that must end with END_REQUEST{REQUEST_COMPLETE} within wait
    (scaled) seconds, ctx.answer_wait by default; expected says what that shows (e.g. the
    connection is still in step)."""
    timeout = ctx.answer_wait if wait is None else ctx.seconds(wait)
    return complete_request(
        conn, request_id, ctx.probe_params(), keep_conn=keep_conn, timeout=timeout, expected=expected
    )


# The id of the plain request that shows a connection is kept: no case's own ids meet it, and its
# high byte is zero, so that a target that mishandles ids above 255 (FCGI-3.3-9) still keeps it.
KEEP_CONN_PROBE_ID = 250


def kept_connection(ctx: CaseContext, label: str | None = None) -> FcgiConnection:
    """A new connection on which a plain KEEP_CONN request was served and that the target kept open.

    For a case that sends, after a request, what may itself make a target close (late records, an
    ABORT, odd flags): a target that closes after every KEEP_CONN request shows that first, as
    FCGI-3.5-2's deviation, and blocks the case instead of failing it for a close it did not cause.
    """
    conn = ctx.connect(label)
    plain_request(ctx, conn, KEEP_CONN_PROBE_ID, f"END_REQUEST id={KEEP_CONN_PROBE_ID} for a plain request first")
    ctx.glance_for_close(conn)
    closed = kept_connection_closed(conn.label, conn.trace) if conn.closed_how is not None else None
    if closed is not None and closed.requirement != ctx.case.id:
        note(closed.requirement, closed.what, closed.evidence)
        raise Blocked(closed.requirement, f"{closed.what}, so the case's own requests could not follow on it")
    return conn
