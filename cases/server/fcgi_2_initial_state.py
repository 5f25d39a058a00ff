"""§2 Initial Process State.

Not testable from outside, so not cases:
- §2.1 (argument list) and §2.4 (other state) are the web server's choices, with no application behaviour to check.
- §2.2 "getpeername(FCGI_LISTENSOCK_FILENO) ... returns -1 with errno set to ENOTCONN": how an application tells
  FastCGI from CGI happens inside it; what shows outside is that it serves the socket on fd 0 (FCGI-2.2-1).
- §2.2 "STDOUT_FILENO and STDERR_FILENO are closed when the application begins execution": the harness keeps
  the target's stderr as its log, and what the application does with closed descriptors is not observable on
  the wire.
- §2.3 FCGI_WEB_SERVER_ADDRS is judged where the spec says what it does, in §3.2 (FCGI-3.2-1).
"""

from __future__ import annotations

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import plain_request
from harness.targets.base import TargetUnreachable
from harness.verdicts import Level, Violation


@case(
    "FCGI-2.2-1",
    title="Started with a listening socket on fd 0 (and no address to listen on), it accepts there and serves",
    requirement="The Web server leaves a single file descriptor, FCGI_LISTENSOCK_FILENO, open when the application "
    "begins execution. This descriptor refers to a listening socket created by the Web server. "
    "FCGI_LISTENSOCK_FILENO equals STDIN_FILENO.",
    level=Level.REQUIRED,
    catches=("fd0-ignored",),
)
def serves_listening_socket_on_fd0(ctx: CaseContext) -> None:
    variant = ctx.spawn_variant(fd0=True)
    wanted = "a request on a connection to the fd-0 listening socket answered with END_REQUEST"
    try:
        conn = ctx.connect("to the socket on fd 0", target=variant)
    except TargetUnreachable as error:
        raise Violation(wanted, f"{error} (the process {variant.exit_text()})") from None
    try:
        plain_request(ctx, conn, 1, wanted, keep_conn=False, wait=3.0)
    except Violation as violation:
        if variant.exit_status() is not None:
            raise Violation(wanted, f"{violation.actual}; the process {variant.exit_text()}") from None
        raise
