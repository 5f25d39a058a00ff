"""§3.4 Name-value pairs: 1-byte and 4-byte lengths, on names and on values."""

from __future__ import annotations

from harness.case import CaseContext, case
from harness.fcgi_codec import KEEP_CONN, RecordType, Role, begin_request_body, encode_params, encode_record, stream_records
from harness.probe_app import ProbeReport, probe_params, probe_query
from harness.verdicts import Level
from harness.verify import expect_param, expect_probe_report, read_response

# Both sides of the 127/128 boundary, a low byte of 0xFF, and lengths beyond 16 bits.
BOUNDARY_LENGTHS = (127, 128, 255, 256, 65535, 65536)
# Several PARAMS records: a long pair always straddles a record boundary somewhere.
PARAMS_RECORD_SIZE = 16384


def _filler(length: int, seed: int) -> bytes:
    """length bytes that differ per seed, so a value read from the wrong place shows."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return bytes(alphabet[(seed + i * 7) % len(alphabet)] for i in range(length))


def _send_probe_request(ctx: CaseContext, extra: list[tuple[bytes, bytes]]) -> ProbeReport:
    conn = ctx.connect()
    params = probe_params(probe_query(status=200), extra=extra)
    conn.send_records(
        [encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.RESPONDER, KEEP_CONN))]
        + stream_records(RecordType.PARAMS, 1, encode_params(params), chunk_sizes=PARAMS_RECORD_SIZE)
        + stream_records(RecordType.STDIN, 1, b"")
    )
    return expect_probe_report(read_response(conn, 1, ctx.seconds(10.0)))


@case(
    "FCGI-3.4-1",
    title="Values of 127, 128, 255, 256, 65535 and 65536 bytes (1- and 4-byte lengths) arrive intact",
    requirement="Lengths of 127 bytes and less can be encoded in one byte, while longer lengths are always "
    "encoded in four bytes.",
    level=Level.REQUIRED,
    catches=("nv-long-length-1byte",),
    needs_probe_app=True,
    timeout=20.0,
)
def value_lengths_at_boundaries(ctx: CaseContext) -> None:
    extra = [(f"FCGISPEC_VALUE_{n}".encode(), _filler(n, n)) for n in BOUNDARY_LENGTHS]
    report = _send_probe_request(ctx, extra)
    for name, value in extra:
        expect_param(report, name, value)


@case(
    "FCGI-3.4-3",
    title="Names of 128, 255, 256, 65535 and 65536 bytes (4-byte name lengths) arrive intact",
    requirement="The high-order bit of the first byte of a length indicates the length's encoding. "
    "A high-order zero implies a one-byte encoding, a one a four-byte encoding.",
    level=Level.REQUIRED,
    catches=("nv-long-length-1byte",),
    needs_probe_app=True,
    timeout=20.0,
)
def name_lengths_at_boundaries(ctx: CaseContext) -> None:
    extra = []
    for n in BOUNDARY_LENGTHS[1:]:
        prefix = f"FCGISPEC_NAME_{n}_".encode()
        extra.append((prefix + _filler(n - len(prefix), n), f"name-{n}".encode()))
    report = _send_probe_request(ctx, extra)
    for name, value in extra:
        expect_param(report, name, value)
