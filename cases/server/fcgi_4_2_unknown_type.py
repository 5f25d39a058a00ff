"""§4.2 FCGI_UNKNOWN_TYPE."""

from __future__ import annotations

from harness.case import CaseContext, case
from harness.fcgi_codec import MANAGEMENT_REQUEST_ID, RecordType
from harness.probe_app import probe_params
from harness.verdicts import Level, Violation
from harness.verify import complete_request, expect_record

# 12 is the first type after the defined ones, 200 and 255 are far beyond them.
UNKNOWN_MANAGEMENT_TYPES = (12, 200, 255)


@case(
    "FCGI-4.2-1",
    title="Unknown management types 12, 200, 255 get UNKNOWN_TYPE {T}; the connection stays usable",
    requirement="When an application receives a management record whose type T it does not understand, "
    "the application responds with {FCGI_UNKNOWN_TYPE, 0, {T}}.",
    level=Level.REQUIRED,
    catches=("unknown-type-ignored",),
)
def unknown_management_type(ctx: CaseContext) -> None:
    conn = ctx.connect()
    for unknown_type in UNKNOWN_MANAGEMENT_TYPES:
        conn.send_record(unknown_type, MANAGEMENT_REQUEST_ID, b"fcgispec")
        wanted = f"UNKNOWN_TYPE id=0 unknownType={unknown_type} (8-byte body)"
        record = expect_record(conn, RecordType.UNKNOWN_TYPE, MANAGEMENT_REQUEST_ID, ctx.seconds(3.0), expected=wanted)
        if len(record.content) != 8 or record.content[0] != unknown_type:
            raise Violation(wanted, record.describe())
    complete_request(
        conn, 1, probe_params(), timeout=ctx.seconds(5.0), expected="END_REQUEST id=1 on the same connection afterwards"
    )
