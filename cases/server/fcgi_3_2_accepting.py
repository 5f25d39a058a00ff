"""§3.2 Accepting Transport Connections.

FCGI_WEB_SERVER_ADDRS needs an instance started with that variable (ctx.spawn_variant), so it is
unsupported for a target the harness does not start (tcp:, unix:). The harness always connects from
127.0.0.1 (or over AF_UNIX), so the list it sets holds only a TEST-NET-1 address (RFC 5737) to refuse
it, and 127.0.0.1 as well to be accepted.
"""

from __future__ import annotations

import socket
import time

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import plain_request, request_records
from harness.wire.connection import ConnectionClosed, FcgiConnection, Response
from harness.wire.codec import EndRequest, ProtocolStatus
from harness.targets.base import TargetUnreachable
from harness.verdicts import Level, Unsupported, Violation
from harness.suite.checks import TIMEOUT, describe_event, next_event, read_response

ADDRS_CHECK = (
    "If FCGI_WEB_SERVER_ADDRS was bound, the application checks the peer IP address of the new connection for "
    "membership in the list. If the check fails (including the possibility that the connection didn't use TCP/IP "
    "transport), the application responds by closing the connection."
)
NOT_US = "192.0.2.1"  # TEST-NET-1: never the harness's address


@case(
    "FCGI-3.2-1",
    title=f"FCGI_WEB_SERVER_ADDRS={NOT_US}: a connection from 127.0.0.1 is closed without a record; "
    f"with 127.0.0.1 listed too, it is served",
    requirement=ADDRS_CHECK,
    level=Level.REQUIRED,
    catches=("web-server-addrs-ignored",),
)
def web_server_addrs_enforced(ctx: CaseContext) -> str | None:
    """Our connection to a variant whose FCGI_WEB_SERVER_ADDRS lacks us is closed unserved; listed, it is served."""
    refused = ctx.spawn_variant(env={"FCGI_WEB_SERVER_ADDRS": NOT_US})
    wanted = f"connection closed (EOF or RST) with no record: 127.0.0.1 is not in FCGI_WEB_SERVER_ADDRS={NOT_US}"
    try:
        conn = ctx.connect(f"FCGI_WEB_SERVER_ADDRS={NOT_US}", target=refused)
    except TargetUnreachable:
        # A connect refused outright: as good as a close (nothing was served).
        conn = None
    if conn is not None:
        _send_request(ctx, conn)
        event = next_event(conn, ctx.seconds(3.0))
        if not isinstance(event, str) or event == TIMEOUT:
            raise Violation(wanted, describe_event(event))
    if refused.exit_status() is not None:
        raise Violation(f"{wanted}, the application running on", f"the process {refused.exit_text()}")
    family = refused.address()[0]
    if family != socket.AF_INET:
        return "allowed-peer check skipped: the target's socket is not TCP/IP (every peer fails the check)"
    allowed = ctx.spawn_variant(env={"FCGI_WEB_SERVER_ADDRS": f"{NOT_US},127.0.0.1"})
    conn = ctx.connect(f"FCGI_WEB_SERVER_ADDRS={NOT_US},127.0.0.1", target=allowed)
    plain_request(
        ctx, conn, 1, f"END_REQUEST id=1: 127.0.0.1 is in FCGI_WEB_SERVER_ADDRS={NOT_US},127.0.0.1",
        keep_conn=False, wait=3.0,
    )
    return None


def _send_request(ctx: CaseContext, conn: FcgiConnection) -> None:
    """A whole request with KEEP_CONN; the peer may already have closed (what FCGI-3.2-1 looks for)."""
    try:
        conn.send_records(request_records(1, ctx.probe_params()))
    except ConnectionClosed:
        pass


# At most this many connections are opened to check FCGI_MAX_CONNS (sockets and time are not free).
CONNECTIONS_CHECKED_MAX = 32


@case(
    "FCGI-3.2-2",
    title="As many concurrent connections as FCGI_MAX_CONNS advertises (up to 32) are all served",
    requirement="An application may accept several concurrent transport connections, but it need not do so. "
    "FCGI_MAX_CONNS: The maximum number of concurrent transport connections this application will accept.",
    level=Level.RECOMMENDED,
    catches=("max-conns-overstated",),
    reference_args=("--max-conns", "4"),
)
def advertised_connections_served(ctx: CaseContext) -> str:
    """Holds FCGI_MAX_CONNS connections (at most 32) open at once; a request on each must complete."""
    caps = ctx.capabilities
    if caps.max_conns is None:
        raise Unsupported(f"FCGI_MAX_CONNS not advertised ({caps.describe()})")
    if caps.max_conns < 1:
        raise Unsupported(f"FCGI_MAX_CONNS={caps.max_conns}: no concurrent connections to check")
    count = min(caps.max_conns, CONNECTIONS_CHECKED_MAX)
    ctx.prepare_same_answer()  # while the target is not yet held at its limit
    conns = [ctx.connect(f"connection {index + 1} of {count}") for index in range(count)]
    for conn in conns:
        _send_request(ctx, conn)
    # All stay open (KEEP_CONN): every one of them must be served while the others are held.
    for index, conn in enumerate(conns):
        wanted = (
            f"END_REQUEST id=1 REQUEST_COMPLETE on connection {index + 1} of {count} "
            f"held open at once (FCGI_MAX_CONNS={caps.max_conns})"
        )
        response, end = _response(ctx, conn, wanted)
        if end.protocol_status == ProtocolStatus.OVERLOADED:
            # Once more, in case the target had not yet seen the close of an earlier case's connection.
            conn.close()
            time.sleep(ctx.seconds(0.05))
            conn = ctx.connect(f"connection {index + 1} of {count}, second try")
            _send_request(ctx, conn)
            response, end = _response(ctx, conn, wanted)
        if end.protocol_status != ProtocolStatus.REQUEST_COMPLETE:
            raise Violation(wanted, f"END_REQUEST id=1 {_status_name(end.protocol_status)}" + (
                " (also on a second try)" if end.protocol_status == ProtocolStatus.OVERLOADED else ""))
        # Without a probe app: what a connection held among others gets is what a request alone gets.
        ctx.expect_same_answer(response, f"serving it on connection {index + 1} of {count} held open at once")
    shown = "" if count == caps.max_conns else f" (of the {caps.max_conns} advertised)"
    return f"{count} concurrent connection{'s' if count > 1 else ''} served{shown}"


def _response(ctx: CaseContext, conn: FcgiConnection, wanted: str) -> tuple[Response, EndRequest]:
    """Request 1's answer and its END_REQUEST body (a Violation when none comes)."""
    response = read_response(conn, 1, ctx.seconds(3.0), expected=wanted)
    if response.end is None:
        raise Violation([wanted, "an 8-byte END_REQUEST body"], response.records[-1].describe())
    return response, response.end


def _status_name(status: int) -> str:
    try:
        return ProtocolStatus(status).name
    except ValueError:
        return f"protocolStatus={status}"
