"""Records the gateway sends: framing, request ids (spec §3.3, "Records" and "Managing Request IDs").

The framing and id cases read every record the gateway sent in the case; the same reading runs
after every other gateway case too (harness/gateways/observations.py), where a deviation is
"also seen" and not that case's verdict.
"""

from __future__ import annotations

from harness.gateways.application import answer_each, respond_with, serve
from harness.gateways.cases import gateway_case
from harness.gateways.checks import expect_answer
from harness.gateways.observations import NO_ACTIVE_ID_REUSED, NONZERO_REQUEST_IDS, RECORDS_WELL_FRAMED
from harness.verdicts import Level, Observed, Violation

FAMILY = "Records the gateway sends (spec §3.3)"
FAMILY_ORDER = 1


@gateway_case(
    RECORDS_WELL_FRAMED,
    title="every record the gateway sends is a version-1 record whose lengths frame the bytes that follow",
    requirement='Spec §3.3: "version: Identifies the FastCGI protocol version. This specification documents '
    'FCGI_VERSION_1." and "contentLength: The number of bytes in the contentData component of the record. '
    'paddingLength: The number of bytes in the paddingData component of the record."',
    level=Level.REQUIRED,
    bugs=("version-0",),
    allowed=("every record version 1, no stray bytes between or after records",),
)
def records_well_framed(ctx) -> str:
    app = ctx.start()
    expect_answer(ctx.request("GET", "/framing?x=1"), "GET", body=b"hello")
    expect_answer(ctx.request("POST", "/framing", body=b"b" * 3000), "POST", body=b"hello")
    ctx.settle()
    count = sum(len(c.received) for c in app.connections())
    return f"{count} records on {len(app.connections())} connections, all version 1 and whole"


@gateway_case(
    NONZERO_REQUEST_IDS,
    title="application records carry a non-zero request id",
    requirement='Spec §3.3: "Management records have a requestId value of zero, also called the null request ID. '
    'Application records have a nonzero requestId."',
    level=Level.REQUIRED,
    bugs=("zero-request-id",),
    allowed=("BEGIN_REQUEST, PARAMS, STDIN, DATA and ABORT_REQUEST with an id from 1 to 65535",),
)
def nonzero_request_ids(ctx) -> str:
    app = ctx.start()
    expect_answer(ctx.request("GET", "/ids"), "GET", body=b"hello")
    ctx.settle()
    ids = sorted({r.request_id for r in app.requests()})
    return f"request ids used: {ids}"


# Each request answered after 1 s, so that concurrent HTTP requests overlap at the application.
_slow = answer_each(respond_with(b"slow", delay=1.0))


@gateway_case(
    NO_ACTIVE_ID_REUSED,
    title="a request id is begun again only after the application's END_REQUEST for it",
    requirement='Spec §3.3: "The Web server re-uses FastCGI request IDs; the application keeps track of the current '
    'state of each request ID on a given transport connection. A request ID R becomes active when the application '
    'receives a record {FCGI_BEGIN_REQUEST, R, ...} and becomes inactive when the application sends a record '
    '{FCGI_END_REQUEST, R, ...} to the Web server."',
    level=Level.REQUIRED,
    bugs=("reuse-active-id",),
    allowed=("each concurrent request on its own connection", "one connection, a different id for each active request"),
)
def no_active_id_reused(ctx) -> str:
    app = ctx.start(_slow)
    answers = ctx.concurrent_gets([f"/concurrent/{index}" for index in range(3)])
    for index, answer in enumerate(answers):
        if answer is None:
            raise Violation("three concurrent GETs answered", f"GET {index + 1}: no answer in time")
        expect_answer(answer, f"concurrent GET {index + 1}", body=b"slow")
    ctx.settle()
    return f"{len(app.requests())} requests on {len(app.connections())} connections"


@gateway_case(
    "GW-FCGI-3.3-4",
    title="request ids on a kept connection: which ones the gateway uses (reused after END_REQUEST, or increasing)",
    requirement='Spec §3.3: "The Web server attempts to keep FastCGI request IDs small. That way the application can '
    'keep track of request ID states using a short array rather than a long array or a hash table." Applications '
    'that size such an array break on ids that only grow (HAProxy #3358).',
    level=Level.RECOMMENDED,
    bugs=("ids-increasing",),
    allowed=("the same small id for each request on a connection",
             "ids that grow on a connection (a warning: applications that bound them break)"),
)
def small_request_ids(ctx) -> str:
    app = ctx.start(serve)
    conn = ctx.http()
    for index in range(20):
        expect_answer(ctx.request("GET", f"/ids/{index}", conn=conn), f"GET {index + 1}", body=b"hello")
    ctx.settle()
    kept = [c for c in app.connections() if len(c.requests) > 1]
    highest = max((r.request_id for r in app.requests()), default=0)
    if not kept:
        raise Observed(f"20 requests on {len(app.connections())} connections, one each; highest id {highest}")
    worst = max(kept, key=lambda c: max(r.request_id for r in c.requests))
    ids = [r.request_id for r in worst.requests]
    if max(ids) > len(ids) // 2 + 1 and max(ids) >= 8:
        raise Violation("a small id reused once its request ended",
                        f"ids {ids[:10]}{'...' if len(ids) > 10 else ''} on connection {worst.id}")
    return f"ids on kept connections: {sorted({r.request_id for r in app.requests()})}"
