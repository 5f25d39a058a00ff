"""§6 Roles: role protocols (6.1), Responder (6.2), Authorizer (6.3), Filter (6.4).

Authorizer and Filter are optional: a target answering END_REQUEST{UNKNOWN_ROLE} for them
reports unsupported. Content checks use the probe contract (README "The probe app"): the
authorizer app allows "HTTP_AUTHORIZATION: Bearer fcgispec" with Variable-FCGISPEC_USER, the
filter app answers with its FCGI_DATA unchanged. What a web server does with an Authorizer's
Variable-* headers, and that a web server omits CONTENT_LENGTH etc. for an Authorizer, are the
web server's duties, not observable from the application side. A Filter "may consult
FCGI_DATA_LAST_MOD and respond from a cache without reading the file data", so that it reads
FCGI_DATA at all is only checked through the probe filter; the sequential-marshalling rules of
6.1 are checked where they are observable: no output before PARAMS ends (FCGI-5.2-1) and no
Filter output before STDIN ends (FCGI-6.4-1).
"""

from __future__ import annotations

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import request_records
from harness.wire.connection import FcgiConnection, Response, WriteTimeout
from harness.wire.codec import ProtocolStatus, Record, RecordReader, RecordType, Role, stream_records
from harness.wire.probe_app import ProbeError, parse_cgi, parse_probe_report, pattern_bytes, probe_query, sha256_hex
from harness.verdicts import Level, Unsupported, Violation
from harness.suite.checks import (
    TIMEOUT,
    describe_event,
    expect_cgi_response,
    expect_end_request,
    expect_stream_terminated,
    next_event,
    read_response,
)


def _cgi_headers_of(response: Response, what: str):
    """The response as CGI: headers then a blank line, no HTTP status line (no NPH)."""
    expect_end_request(response)
    expect_stream_terminated(response.records, RecordType.STDOUT)
    if response.stdout.startswith(b"HTTP/"):
        raise Violation(
            f"{what}: CGI headers (Status:, Location:), not a non-parsed-header status line",
            repr(response.stdout.split(b"\n", 1)[0][:60]),
        )
    try:
        cgi = parse_cgi(response.stdout)
    except ProbeError as error:
        raise Violation(f"{what}: a CGI response on STDOUT (header lines, a blank line, the body)", str(error)) from None
    status = cgi.header("Status")
    if status is not None and not (status[:3].isdigit() and len(status.split()[0]) == 3):
        raise Violation(f"{what}: a Status header with a 3-digit code", f"Status: {status}")
    return cgi


@case(
    "FCGI-6.1-1",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="The response is CGI (Status:/Location: headers, no NPH status line); probe: NUL-free values arrive as sent",
    requirement="Role protocols do not support the non-parsed header feature of CGI. FastCGI applications set "
    "response status using the Status and Location CGI headers.",
    level=Level.REQUIRED,
    # stdout-as-data (output not on STDOUT) is FCGI-A-1's: it blocks this case.
    catches=("nph-status-line",),
)
def cgi_response_format(ctx: CaseContext) -> None:
    """The answer is CGI with Status: headers; probe: a param value without a trailing NUL arrives as sent."""
    conn = ctx.connect()
    conn.send_records(request_records(1, ctx.probe_params()))
    _cgi_headers_of(read_response(conn, 1, ctx.answer_wait), "a plain request")
    if not ctx.has_probe_app:
        return
    # The value of a textual param has no trailing NUL: the app must take it as it is.
    query = probe_query(status=404)
    conn.send_records(request_records(2, ctx.probe_params(query, extra=[("FCGISPEC_TEXT", "no NUL")])))
    response = read_response(conn, 2, ctx.answer_wait)
    cgi = _cgi_headers_of(response, "probe status=404")
    if cgi.status != 404 or cgi.header("Status") is None:
        raise Violation("a Status: 404 header (status=404)", f"Status: {cgi.header('Status')}")
    try:
        report = parse_probe_report(cgi.body)
    except ProbeError as error:
        raise Violation("a probe-app JSON report (status=404 changes only the status)", str(error)) from None
    if report.param("FCGISPEC_TEXT") != b"no NUL" or report.param("QUERY_STRING") != query.encode():
        raise Violation(
            "FCGISPEC_TEXT='no NUL' and QUERY_STRING exactly as sent",
            f"FCGISPEC_TEXT={report.param('FCGISPEC_TEXT')!r} QUERY_STRING={report.param('QUERY_STRING')!r}",
        )


DUPLEX_STDIN = 8 * 1024 * 1024


@case(
    "FCGI-6.2-1",
    prerequisites=("FCGI-3.3-10",),
    title="8 MiB of STDIN while reading STDOUT at once (probe echo=1: echoed as it arrives, intact)",
    requirement="The application must wait to finish reading FCGI_PARAMS before it begins writing FCGI_STDOUT "
    "and FCGI_STDERR, but it needn't finish reading from FCGI_STDIN before it begins writing these two streams.",
    level=Level.REQUIRED,
    catches=("stdin-stall-40k",),
    timeout=20.0,
)
def full_duplex(ctx: CaseContext) -> str | None:
    """8 MiB of STDIN sent while STDOUT is read: the app must read and write at once; probe: the echo is intact."""
    body = pattern_bytes(DUPLEX_STDIN + 7)[7:]
    query = probe_query(echo=1) if ctx.has_probe_app else ""
    params = ctx.probe_params(query, "POST", content_length=len(body))
    records = request_records(1, params, body)
    conn = ctx.connect()
    try:
        # The client reads whatever arrives while it sends: a target echoing as it reads never blocks on us.
        conn.send_raw(
            b"".join(records), timeout=ctx.answer_wait, trace_items=[r for p in records for r in RecordReader().feed(p)]
        )
    except WriteTimeout:
        raise Violation(
            f"the target to read all {len(body)} bytes of STDIN", f"it stopped reading after {conn.bytes_sent} bytes"
        ) from None
    output_before_end = sum(len(r.content) for r in conn.unread_records() if r.type == RecordType.STDOUT)
    response = read_response(conn, 1, ctx.answer_wait)
    expect_end_request(response)
    expect_stream_terminated(response.records, RecordType.STDOUT)
    if not ctx.has_probe_app:
        return None
    cgi = expect_cgi_response(response)
    if cgi.body != body:
        raise Violation(
            f"the {len(body)} bytes of STDIN echoed (sha256 {sha256_hex(body)[:16]}…)",
            f"{len(cgi.body)} bytes (sha256 {sha256_hex(cgi.body)[:16]}…)",
        )
    return f"{output_before_end} bytes of STDOUT had arrived by the time all STDIN was sent"


@case(
    "FCGI-6.2-2",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2",),
    title="appStatus is the CGI exit status: probe app_status=938 (App. B.3) and 0",
    requirement="The application sets the protocolStatus component to FCGI_REQUEST_COMPLETE and the appStatus "
    "component to the status code that the CGI program would have returned via the exit system call.",
    level=Level.RECOMMENDED,
    catches=("app-status-zero",),
    needs_probe_app=True,
)
def app_status_passed(ctx: CaseContext) -> None:
    if not ctx.has_probe_app:  # also when the harness has not found out (has_probe_app None)
        raise Unsupported("the target does not implement the probe app")
    ctx.require_probe_feature("app_status")
    conn = ctx.connect()
    for request_id, status in ((1, 938), (2, 0)):
        conn.send_records(request_records(request_id, ctx.probe_params(probe_query(app_status=status))))
        expect_end_request(read_response(conn, request_id, ctx.answer_wait), app_status=status)


AUTHORIZER_OMITS = ("CONTENT_LENGTH", "PATH_INFO", "PATH_TRANSLATED", "SCRIPT_NAME")


def _role_request(ctx: CaseContext, conn: FcgiConnection, request_id: int, role: int, params: list) -> Response:
    conn.send_records(request_records(request_id, params, role=role))
    return read_response(conn, request_id, ctx.answer_wait)


def _unsupported_if_unknown_role(response: Response, role_name: str) -> None:
    if response.end is not None and response.end.protocol_status == ProtocolStatus.UNKNOWN_ROLE:
        raise Unsupported(f"the target does not play the {role_name} role (END_REQUEST UNKNOWN_ROLE)")


@case(
    "FCGI-6.3-1",
    # More than one request on a KEEP_CONN connection; a role not played is told by UNKNOWN_ROLE.
    prerequisites=("FCGI-3.5-2", "FCGI-5.1-2"),
    title="Authorizer: a CGI answer to PARAMS without CONTENT_LENGTH/SCRIPT_NAME; probe: 200 with Variable-* or a denial",
    requirement="An Authorizer application's 200 response may include headers whose names are prefixed with "
    "Variable-. These headers communicate name-value pairs from the application to the Web server.",
    level=Level.REQUIRED,
    catches=("authorizer-variables-dropped",),
)
def authorizer_role(ctx: CaseContext) -> str | None:
    base = [(n, v) for n, v in ctx.probe_params() if n not in AUTHORIZER_OMITS]
    conn = ctx.connect()
    response = _role_request(ctx, conn, 1, Role.AUTHORIZER, base + [("HTTP_AUTHORIZATION", "Bearer fcgispec")])
    _unsupported_if_unknown_role(response, "Authorizer")
    allowed = _cgi_headers_of(response, "an Authorizer answer")
    denied = _cgi_headers_of(_role_request(ctx, conn, 2, Role.AUTHORIZER, base), "an Authorizer answer")
    if not ctx.has_probe_app:
        return f"statuses {allowed.status} (with a token) and {denied.status} (without)"
    ctx.require_probe_feature("authorizer")
    variables = [(n, v) for n, v in allowed.headers if n.lower().startswith("variable-")]
    if allowed.status != 200 or ("Variable-FCGISPEC_USER", "probe") not in variables:
        raise Violation(
            "200 with Variable-FCGISPEC_USER: probe for 'Bearer fcgispec' (the probe authorizer)",
            f"{allowed.status} with {variables or 'no Variable- headers'}",
        )
    if denied.status == 200:
        raise Violation("a status other than 200 without the token (access denied)", "200")
    return None


@case(
    "FCGI-6.4-1",
    # A role not played is told by UNKNOWN_ROLE.
    prerequisites=("FCGI-3.3-10", "FCGI-5.1-2"),
    title="Filter: nothing before STDIN ends, then the FCGI_DATA stream is read and answered (probe: DATA echoed)",
    requirement="The application must wait to finish reading FCGI_STDIN before it begins writing FCGI_STDOUT and "
    "FCGI_STDERR, but it needn't finish reading from FCGI_DATA before it begins writing these two streams.",
    level=Level.REQUIRED,
    catches=("filter-data-ignored",),
)
def filter_role(ctx: CaseContext) -> None:
    """Filter: nothing before STDIN ends, then the FCGI_DATA stream is read and answered (probe: echoed)."""
    data = pattern_bytes(100003)
    form = b"form=fcgispec"
    params = ctx.probe_params(
        "",
        "POST",
        [("FCGI_DATA_LAST_MOD", "1700000000"), ("FCGI_DATA_LENGTH", str(len(data)))],
        content_length=len(form),
    )
    conn = ctx.connect()
    conn.send_records(request_records(1, params, form[:4], role=Role.FILTER, terminate_stdin=False))
    conn.note("STDIN not ended yet: a Filter may not write")
    event = next_event(conn, ctx.quiet_wait)
    if isinstance(event, Record) and event.type == RecordType.END_REQUEST and len(event.content) == 8:
        if event.content[4] == ProtocolStatus.UNKNOWN_ROLE:
            raise Unsupported("the target does not play the Filter role (END_REQUEST UNKNOWN_ROLE)")
    if event != TIMEOUT:
        raise Violation("nothing while the Filter's STDIN is still open", describe_event(event))
    conn.send_records(
        stream_records(RecordType.STDIN, 1, form[4:]) + stream_records(RecordType.DATA, 1, data, chunk_sizes=32768)
    )
    response = read_response(conn, 1, ctx.answer_wait)
    cgi = _cgi_headers_of(response, "a Filter answer")
    if not ctx.has_probe_app:
        return
    ctx.require_probe_feature("filter")
    if cgi.body != data:
        raise Violation(
            f"the {len(data)} bytes of FCGI_DATA as the body (the probe filter)",
            f"a {len(cgi.body)}-byte body" + (" with other bytes" if len(cgi.body) == len(data) else ""),
        )
    if cgi.header("X-Filter-Stdin-Length") != str(len(form)):
        raise Violation(f"X-Filter-Stdin-Length: {len(form)}", f"X-Filter-Stdin-Length: {cgi.header('X-Filter-Stdin-Length')}")
