"""§5.1 FCGI_BEGIN_REQUEST: roles (the rejection itself is §5.5's FCGI_UNKNOWN_ROLE)."""

from __future__ import annotations

from harness.case import CaseContext, case
from harness.fcgi_codec import ProtocolStatus
from harness.probe_app import probe_params
from harness.verdicts import Level
from harness.verify import complete_request, expect_end_request, read_response

# 0 is below the defined roles, 4 just above them, 0xFFFF uses both role bytes.
UNKNOWN_ROLES = (0, 4, 0xFFFF)


@case(
    "FCGI-5.1-2",
    title="Unknown roles 0, 4, 0xFFFF get END_REQUEST UNKNOWN_ROLE; the connection stays usable",
    requirement="FCGI_UNKNOWN_ROLE: rejecting a new request. This happens when the Web server has specified "
    "a role that is unknown to the application.",
    level=Level.REQUIRED,
    catches=("unknown-role-close",),
)
def unknown_role_rejected(ctx: CaseContext) -> None:
    conn = ctx.connect()
    for request_id, role in enumerate(UNKNOWN_ROLES, start=1):
        conn.note(f"request {request_id} asks for role {role}")
        # Sent whole, as a web server would: PARAMS and STDIN follow BEGIN at once.
        conn.begin(request_id, role=role, keep_conn=True)
        conn.params(request_id, probe_params())
        conn.stdin(request_id, b"")
        response = read_response(
            conn, request_id, ctx.seconds(5.0), expected=f"END_REQUEST id={request_id} protocolStatus=UNKNOWN_ROLE"
        )
        expect_end_request(response, ProtocolStatus.UNKNOWN_ROLE)
    complete_request(
        conn,
        len(UNKNOWN_ROLES) + 1,
        probe_params(),
        timeout=ctx.seconds(5.0),
        expected="a RESPONDER request answered on the same connection afterwards",
    )
