"""PARAMS: name-value pairs with 1- and 4-byte lengths, their end, and the CGI/1.1 variables in them
(spec §3.4, §5.2; RFC 3875 §4.1)."""

from __future__ import annotations

from harness.gateways.cases import gateway_case
from harness.gateways.checks import expect_answer, only_request
from harness.gateways.observations import PARAMS_DECODE, PARAMS_TERMINATED
from harness.verdicts import Level, Unsupported, Violation

FAMILY = "PARAMS: name-value pairs and CGI/1.1 variables (spec §3.4, §5.2; RFC 3875 §4.1)"
FAMILY_ORDER = 2

# Header values at the length boundaries of the 1- and 4-byte forms (the HTTP_ variable's value).
VALUE_LENGTHS = (127, 128, 255, 256, 4000)
# A header name that makes a 128-byte variable name (HTTP_ + 123 + 0): the 4-byte name length.
LONG_NAME = "X-" + "N" * 121
LARGE_VALUE = 70000


def _value(length: int) -> str:
    return "".join("abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(length))


@gateway_case(
    PARAMS_DECODE,
    title="name and value lengths of 127, 128, 255, 256 and more bytes in the right 1- or 4-byte form",
    requirement='Spec §3.4: "FastCGI transmits a name-value pair as the length of the name, followed by the length '
    'of the value, followed by the name, followed by the value. Lengths of 127 bytes and less can be encoded in one '
    'byte, while longer lengths are always encoded in four bytes" and "The high-order bit of the first byte of a '
    'length indicates the length\'s encoding."',
    level=Level.REQUIRED,
    bugs=("wrong-4-byte-length",),
    allowed=("each value arrives whole under its name, whatever form each length took",),
)
def length_forms(ctx) -> str:
    app = ctx.start()
    headers = [f"X-Len-{n}: {_value(n)}" for n in VALUE_LENGTHS] + [f"{LONG_NAME}: long-name"]
    expect_answer(ctx.request("GET", "/lengths", headers=headers), "GET with long headers", body=b"hello")
    request = only_request(app, "the GET")
    params = request.params()
    wrong = []
    for n in VALUE_LENGTHS:
        got = params.get(f"HTTP_X_LEN_{n}")
        if got != _value(n):
            wrong.append(f"HTTP_X_LEN_{n}: {'missing' if got is None else f'{len(got)} bytes, not the {n} sent'}")
    name = "HTTP_" + LONG_NAME.upper().replace("-", "_")
    if params.get(name) != "long-name":
        wrong.append(f"the {len(name)}-byte name {name[:12]}...: {'missing' if name not in params else 'wrong value'}")
    if wrong:
        raise Violation("every header under its CGI name, its value whole", "; ".join(wrong))
    return f"{len(params)} pairs in {len(request.params_bytes)} bytes"


@gateway_case(
    "GW-FCGI-3.4-2",
    title="PARAMS above 64 KiB: a 70000-byte value spread over several PARAMS records",
    requirement='Spec §3.4: "Lengths of 127 bytes and less can be encoded in one byte, while longer lengths are '
    'always encoded in four bytes" (up to 2^31-1), and §3.3: "contentData: Between 0 and 65535 bytes of data": a '
    'pair longer than a record spans records of the PARAMS stream, whose value "is independent of how many records '
    'it contains".',
    level=Level.REQUIRED,
    bugs=("params-truncated",),
    allowed=("the 70000-byte value arrives whole",
             "the gateway refuses the HTTP request itself (4xx: its own limit on header size); not exercised"),
)
def params_over_64k(ctx) -> str:
    app = ctx.start()
    answer = ctx.request("GET", "/large-params", headers=[f"X-Large: {_value(LARGE_VALUE)}"])
    if answer.status is not None and 400 <= answer.status < 500 and not app.requests():
        raise Unsupported(f"the gateway refuses a {LARGE_VALUE}-byte header ({answer.status}, its own limit on "
                          "header size): PARAMS above 64 KiB cannot be made through it")
    expect_answer(answer, "GET with a 70000-byte header", body=b"hello")
    request = only_request(app, "the GET")
    got = request.params().get("HTTP_X_LARGE")
    if got != _value(LARGE_VALUE):
        raise Violation(f"HTTP_X_LARGE with the {LARGE_VALUE}-byte value",
                        "missing" if got is None else f"{len(got)} bytes")
    records = len([r for r in request.params_records if r.content])
    return f"{len(request.params_bytes)} bytes of PARAMS in {records} records"


@gateway_case(
    PARAMS_TERMINATED,
    title="PARAMS end with an empty PARAMS record",
    requirement='Spec §5.2: "FCGI_PARAMS is a stream record type used in sending name-value pairs from the Web server '
    'to the application." and §3.3: a stream is "a series of zero or more non-empty records (length != 0) of the '
    'stream type, followed by an empty record (length == 0) of the stream type."',
    level=Level.REQUIRED,
    bugs=("no-params-terminator",),
    allowed=("an empty PARAMS record after the last pair, before STDIN",),
)
def params_terminated(ctx) -> str:
    app = ctx.start()
    expect_answer(ctx.request("GET", "/params-end"), "GET", body=b"hello")
    expect_answer(ctx.request("POST", "/params-end", body=b"p" * 100), "POST", body=b"hello")
    ctx.settle()
    return f"{len(app.requests())} requests, each with its empty PARAMS record"


def _variable_case(case_id: str, name: str, quote: str, check, *, level=Level.REQUIRED, method: str = "GET",
                   target: str = "/cgi/path?a=1&b=2", body: bytes = b"", headers: tuple[str, ...] = (),
                   also_bugs: tuple[str, ...] = ()):
    """A case on one variable; the buggy gateway's omit-var:NAME leaves it out (no-cgi-vars leaves out three)."""
    @gateway_case(
        case_id,
        title=f"{name} is set as CGI/1.1 says",
        requirement=quote,
        level=level,
        bugs=(f"omit-var:{name}", *also_bugs),
        allowed=(f"{name} set as the RFC describes",),
    )
    def run(ctx) -> str:
        app = ctx.start()
        expect_answer(ctx.request(method, target, body=body, headers=headers), f"{method} {target}", body=b"hello")
        request = only_request(app, f"the {method}")
        params = request.params()
        problem = check(params.get(name))
        if problem:
            raise Violation(f"{name} as RFC 3875 §4.1 describes", problem)
        return f"{name}={params.get(name)!r}"

    return run


gateway_interface = _variable_case(
    "GW-RFC3875-4.1.4-1", "GATEWAY_INTERFACE",
    'RFC 3875 §4.1.4: "The GATEWAY_INTERFACE variable MUST be set to the dialect of CGI being used by the server to '
    'communicate with the script." (CGI/1.1 for this version)',
    lambda value: None if value and value.startswith("CGI/1.") else f"GATEWAY_INTERFACE={value!r}",
    also_bugs=("no-cgi-vars",))

request_method = _variable_case(
    "GW-RFC3875-4.1.12-1", "REQUEST_METHOD",
    'RFC 3875 §4.1.12: "The REQUEST_METHOD meta-variable MUST be set to the method which should be used by the '
    'script to process the request"',
    lambda value: None if value == "POST" else f"REQUEST_METHOD={value!r} for a POST",
    method="POST", body=b"m" * 10, also_bugs=("no-cgi-vars",))

server_protocol = _variable_case(
    "GW-RFC3875-4.1.16-1", "SERVER_PROTOCOL",
    'RFC 3875 §4.1.16: "The SERVER_PROTOCOL meta-variable MUST be set to the name and version of the application '
    'protocol used for this CGI request."',
    lambda value: None if value == "HTTP/1.1" else f"SERVER_PROTOCOL={value!r} for an HTTP/1.1 request",
    also_bugs=("no-cgi-vars",))

query_string = _variable_case(
    "GW-RFC3875-4.1.7-1", "QUERY_STRING",
    'RFC 3875 §4.1.7: "The server MUST set this variable; if the Script-URI does not include a query component, the '
    'QUERY_STRING MUST be defined as an empty string ("")." The query is passed as it came, not decoded.',
    lambda value: None if value == "a=1&b=2" else f"QUERY_STRING={value!r} for ?a=1&b=2")

content_length = _variable_case(
    "GW-RFC3875-4.1.2-1", "CONTENT_LENGTH",
    'RFC 3875 §4.1.2: "The server MUST set this meta-variable if and only if the request is accompanied by a '
    'message-body entity. The CONTENT_LENGTH value must reflect the length of the message-body after the server '
    'has removed any transfer-codings or content-codings."',
    lambda value: None if value == "1234" else f"CONTENT_LENGTH={value!r} for a 1234-byte body",
    method="POST", body=b"c" * 1234)

http_headers = _variable_case(
    "GW-RFC3875-4.1.18-1", "HTTP_X_FCGISPEC",
    'RFC 3875 §4.1.18: "Meta-variables with names beginning with "HTTP_" contain values read from the client '
    'request header fields, if the protocol used is HTTP. The HTTP header field name is converted to upper case, '
    'has all occurrences of "-" replaced with "_" and has "HTTP_" prepended to give the meta-variable name."',
    lambda value: None if value == "header value" else f"HTTP_X_FCGISPEC={value!r} for X-Fcgispec: header value",
    headers=("X-Fcgispec: header value",))
