"""Responses the application cuts short: the HTTP client must see the truncation, never a response that
only looks complete (RFC 9112 §6.3, §7.1; RFC 9110 §15.6.3)."""

from __future__ import annotations

from harness.gateways.application import AppConn
from harness.gateways.cases import gateway_case
from harness.verdicts import Level, Violation

FAMILY = "Responses the application cuts short (RFC 9112 §6.3, §7.1)"
FAMILY_ORDER = 8

TRUNCATION_SENTENCE = ('RFC 9112 §8: "A message body that uses the chunked transfer coding is incomplete if the '
                       'zero-sized chunk that terminates the encoding has not been received. A message that uses a '
                       'valid Content-Length is incomplete if the size of the message body received (in octets) is '
                       'less than the value given by Content-Length." A gateway that lost the end of the '
                       'application\'s output (no END_REQUEST before the close) says so in the framing it sends (no '
                       'last chunk, a short Content-Length body, a reset) or answers 502: it never frames the message '
                       'as whole.')
PART = b"partial body " * 300


def _cut(how: str, *, declared: int | None = None, head_only: bool = False):
    def script(conn: AppConn) -> None:
        request = conn.next_request()
        if request is None:
            return
        head = b"Content-Type: text/plain\r\n"
        if declared is not None:
            head += b"Content-Length: %d\r\n" % declared
        conn.stdout(request, head + b"\r\n" + (b"" if head_only else PART))
        conn.sleep(0.2)
        conn.note("the application stops in the middle of STDOUT")
        conn.reset() if how == "RST" else conn.close()

    return script


def _judge(ctx, script, what: str) -> str:
    ctx.start(script)
    got = ctx.request("GET", "/cut")
    if got.complete and got.status is not None and got.status < 400:
        raise Violation(["an incomplete message (no last chunk, fewer bytes than Content-Length, a reset)",
                         "a 5xx status"], f"{got.describe()}: complete-looking, after {what}")
    return f"after {what}: {got.describe()}"


@gateway_case(
    "GW-RFC9112-7.1-1",
    title="the application closes in the middle of STDOUT (no Content-Length): the client sees the truncation",
    requirement=TRUNCATION_SENTENCE,
    level=Level.REQUIRED,
    bugs=("truncated-as-complete",),
    allowed=("a chunked body without its last chunk", "the connection closed or reset short", "502"),
)
def cut_without_length(ctx) -> str:
    return _judge(ctx, _cut("FIN"), f"{len(PART)} body bytes and a FIN")


@gateway_case(
    "GW-RFC9112-6.3-1",
    title="the application declares Content-Length 20000, sends fewer bytes and closes: the client sees the truncation",
    requirement=TRUNCATION_SENTENCE,
    level=Level.REQUIRED,
    bugs=("truncated-as-complete",),
    allowed=("fewer bytes than Content-Length, then the close", "a chunked body without its last chunk", "502"),
)
def cut_with_length(ctx) -> str:
    return _judge(ctx, _cut("FIN", declared=20000), f"{len(PART)} of 20000 declared bytes and a FIN")


@gateway_case(
    "GW-RFC9112-7.1-2",
    title="the application resets the connection in the middle of STDOUT: the client sees the truncation",
    requirement=TRUNCATION_SENTENCE,
    level=Level.REQUIRED,
    bugs=("truncated-as-complete",),
    allowed=("a chunked body without its last chunk", "the connection closed or reset short", "502"),
)
def cut_with_reset(ctx) -> str:
    return _judge(ctx, _cut("RST"), f"{len(PART)} body bytes and a reset")


@gateway_case(
    "GW-RFC9112-7.1-3",
    title="the application closes right after the header block: the client does not get an empty 200 as complete",
    requirement=TRUNCATION_SENTENCE,
    level=Level.REQUIRED,
    bugs=("truncated-as-complete",),
    allowed=("502", "a chunked body without its last chunk", "the connection closed short"),
)
def cut_after_head(ctx) -> str:
    return _judge(ctx, _cut("FIN", head_only=True), "the header block and a FIN")
