"""§3.4 Name-value pairs: 1-byte and 4-byte lengths on names and values, short lengths in the
4-byte form, lengths that point past the stream, large PARAMS streams, and any byte in a value.

Every case works against any responder: it must answer the request (and keep the connection
framed for the next one); the probe app, when the target has it, adds the check that every pair
arrived intact. Without it, a target that decodes a length wrongly but still answers (or cuts
values at a NUL byte) is not seen: the CGI response of a plain responder does not depend on
the params.
"""

from __future__ import annotations

import struct

from harness.suite.case import CaseContext, case
from harness.suite.case_requests import begin_record, plain_request
from harness.wire.connection import FcgiConnection, Response
from harness.wire.codec import Record, RecordType, decode_params, encode_params, encode_record, stream_records
from harness.wire.mutations import long_form_params
from harness.wire.probe_app import ProbeReport, probe_query
from harness.targets.base import TargetUnreachable
from harness.verdicts import Level, RecommendationMissed, Violation
from harness.suite.checks import (
    TIMEOUT,
    describe_event,
    expect_end_request,
    expect_param,
    expect_probe_report,
    next_event,
    read_response,
)

# Both sides of the 127/128 boundary, a low byte of 0xFF, and lengths beyond 16 bits.
BOUNDARY_LENGTHS = (127, 128, 255, 256, 65535, 65536)
# Several PARAMS records: a long pair always straddles a record boundary somewhere.
PARAMS_RECORD_SIZE = 16384


def _filler(length: int, seed: int) -> bytes:
    """length bytes that differ per seed, so a value read from the wrong place shows."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return bytes(alphabet[(seed + i * 7) % len(alphabet)] for i in range(length))


def _send_params(conn: FcgiConnection, request_id: int, encoded: bytes, record_size: int = PARAMS_RECORD_SIZE) -> None:
    """One request whose PARAMS stream is exactly `encoded`, with an empty STDIN."""
    conn.send_records(
        [begin_record(request_id)]
        + stream_records(RecordType.PARAMS, request_id, encoded, chunk_sizes=record_size)
        + stream_records(RecordType.STDIN, request_id, b"")
    )


def _answered(ctx: CaseContext, conn: FcgiConnection, request_id: int, encoded: bytes, what: str) -> Response:
    """Send the request; it must end with END_REQUEST REQUEST_COMPLETE, and the connection must still
    carry a plain request afterwards (the pairs did not desynchronise the target)."""
    _send_params(conn, request_id, encoded)
    response = read_response(conn, request_id, ctx.seconds(10.0), expected=f"END_REQUEST id={request_id} for {what}")
    expect_end_request(response)
    _follow_up(ctx, conn, request_id + 1, what)
    return response


def _follow_up(ctx: CaseContext, conn: FcgiConnection, request_id: int, what: str) -> None:
    """A plain request after the one with `what` is answered: the pairs did not desynchronise the target."""
    wanted = f"END_REQUEST id={request_id} for a plain request on the same connection after {what}"
    plain_request(ctx, conn, request_id, wanted)


def _probe_report(ctx: CaseContext, extra: list[tuple[bytes, bytes]], what: str, *, long_form: bool = False) -> ProbeReport | None:
    """A request to the probe app with these extra pairs; its report, or None without the probe app."""
    params = ctx.probe_params(probe_query(status=200), extra=extra)
    if long_form:
        encoded = long_form_params((_bytes(n), _bytes(v)) for n, v in params)
    else:
        encoded = encode_params(params)
    response = _answered(ctx, ctx.connect(), 1, encoded, what)
    if long_form:
        # Both forms can encode these lengths: without a probe app, the answer must be the one to
        # the same params in the usual (shortest) form.
        ctx.expect_same_answer(response, "every name and value length in the 4-byte form", params)
    return expect_probe_report(response) if ctx.has_probe_app else None


def _bytes(text: bytes | str) -> bytes:
    return text if isinstance(text, bytes) else text.encode("latin-1")


@case(
    "FCGI-3.4-1",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2", "FCGI-3.3-10", "FCGI-3.4-5"),
    title="Values of 127, 128, 255, 256, 65535 and 65536 bytes (1- and 4-byte lengths) arrive intact",
    requirement="Lengths of 127 bytes and less can be encoded in one byte, while longer lengths are always "
    "encoded in four bytes.",
    level=Level.REQUIRED,
    catches=("nv-long-length-1byte",),
    timeout=20.0,
)
def value_lengths_at_boundaries(ctx: CaseContext) -> None:
    extra = [(f"FCGISPEC_VALUE_{n}".encode(), _filler(n, n)) for n in BOUNDARY_LENGTHS]
    report = _probe_report(ctx, extra, "values of 127..65536 bytes")
    if report is not None:
        for name, value in extra:
            expect_param(report, name, value)


@case(
    "FCGI-3.4-2",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2", "FCGI-3.4-1"),
    title="Every length in the 4-byte form, also those below 128 (80 00 00 05 for 5, 80 00 00 00 for 0), is accepted",
    requirement="Lengths of 127 bytes and less can be encoded in one byte, while longer lengths are always "
    "encoded in four bytes.",
    level=Level.RECOMMENDED,
    catches=("nv-long-form-short-rejected",),
)
def short_lengths_in_long_form(ctx: CaseContext) -> None:
    extra = [(b"FCGISPEC_SHORT", b"short"), (b"FCGISPEC_EMPTY", b""), (b"FCGISPEC_127", _filler(127, 3))]
    report = _probe_report(ctx, extra, "every length in the 4-byte form", long_form=True)
    if report is not None:
        for name, value in extra:
            expect_param(report, name, value)


@case(
    "FCGI-3.4-3",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2", "FCGI-3.3-10", "FCGI-3.4-5"),
    title="Names of 128, 255, 256, 65535 and 65536 bytes (4-byte name lengths) arrive intact",
    requirement="The high-order bit of the first byte of a length indicates the length's encoding. "
    "A high-order zero implies a one-byte encoding, a one a four-byte encoding.",
    level=Level.REQUIRED,
    catches=("nv-long-length-1byte",),
    timeout=20.0,
)
def name_lengths_at_boundaries(ctx: CaseContext) -> None:
    extra = []
    for n in BOUNDARY_LENGTHS[1:]:
        prefix = f"FCGISPEC_NAME_{n}_".encode()
        extra.append((prefix + _filler(n - len(prefix), n), f"name-{n}".encode()))
    report = _probe_report(ctx, extra, "names of 128..65536 bytes")
    if report is not None:
        for name, value in extra:
            expect_param(report, name, value)


def _lengths(name_length: int, value_length: int) -> bytes:
    """A name length and a value length, each in the 4-byte form when above 127."""
    return b"".join(
        bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000) for n in (name_length, value_length)
    )


# (what, the bad bytes at the end of an otherwise good PARAMS stream)
MALFORMED_PARAMS = (
    ("a name length of 0x7FFFFFFF with 10 bytes left", _lengths(0x7FFFFFFF, 1) + b"N" * 10),
    ("a 50-byte name and a 50-byte value in a 10-byte record, then the stream's end", bytes([50, 50]) + b"x" * 8),
    ("name and value lengths of 0x7FFFFFFF each (their sum overflows 32 bits)", _lengths(0x7FFFFFFF, 0x7FFFFFFF) + b"x" * 8),
    ("lengths 0x7FFFFFF8 + 16 (their sum overflows a signed int)", _lengths(0x7FFFFFF8, 16) + b"x" * 8),
    ("a 4-byte length cut short by the stream's end", b"\x05\x80\x00"),
)


def _malformed_reaction(ctx: CaseContext, conn: FcgiConnection, what: str) -> str:
    """Close, or END_REQUEST (whatever its status): the target rejected (or served) the request."""
    while True:
        event = next_event(conn, ctx.seconds(2.0))
        if event == TIMEOUT:
            raise Violation(
                [
                    f"after PARAMS with {what}: the connection closed",
                    "or END_REQUEST id=1 (the request rejected, or served without the bad pair)",
                ],
                TIMEOUT + " (neither came within 2 s; the PARAMS stream had ended)",
            )
        if not isinstance(event, Record):
            return describe_event(event)
        if event.request_id == 1 and event.type == RecordType.END_REQUEST:
            return event.describe()


@case(
    "FCGI-3.4-4",
    title="Name-value lengths past the end of PARAMS (0x7FFFFFFF, 50+50 in 10 bytes, 32-bit overflows, a cut length) "
    "are rejected: close or END_REQUEST, and the target still serves new connections",
    requirement="FastCGI transmits a name-value pair as the length of the name, followed by the length of the "
    "value, followed by the name, followed by the value.",
    level=Level.REQUIRED,
    catches=("exit-on-malformed", "abort-on-malformed"),
    protocol_error=True,
    timeout=20.0,
)
def lengths_past_the_stream(ctx: CaseContext) -> str:
    """PARAMS with lengths past the stream's end are rejected, each on its own connection; the target still serves."""
    good = encode_params(ctx.probe_params())
    notes = []
    for what, bad in MALFORMED_PARAMS:
        try:
            conn = ctx.connect(what)
        except TargetUnreachable as error:
            raise Violation(
                "the target accepts a new connection after rejecting malformed PARAMS on another", str(error)
            ) from None
        conn.note(f"PARAMS ends with {what}")
        conn.send_records(
            [begin_record(1)]
            + [encode_record(RecordType.PARAMS, 1, good), encode_record(RecordType.PARAMS, 1, bad)]
            + [encode_record(RecordType.PARAMS, 1, b""), encode_record(RecordType.STDIN, 1, b"")]
        )
        notes.append(f"{what}: {_malformed_reaction(ctx, conn, what)}")
        conn.close()
    # One more connection, as the next web-server request would open: the target must still serve it.
    try:
        conn = ctx.connect("after the malformed PARAMS")
    except TargetUnreachable as error:
        raise Violation("the target accepts a new connection after the malformed PARAMS", str(error)) from None
    plain_request(ctx, conn, 1, "END_REQUEST id=1 on a new connection afterwards")
    return "; ".join(notes)


@case(
    "FCGI-3.4-5",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2", "FCGI-3.3-10", "FCGI-3.4-1"),
    title="PARAMS of 9 KiB (a 9000-byte value across 1000-byte records) and 72 KiB (600 pairs in 4 KiB records) "
    "arrive whole",
    requirement="In many of their roles, FastCGI applications need to read and write varying numbers of "
    "variable-length values. So it is useful to adopt a standard format for encoding a name-value pair.",
    level=Level.REQUIRED,
    catches=("params-8k-buffer",),
    timeout=20.0,
)
def large_params_streams(ctx: CaseContext) -> None:
    conn = ctx.connect()
    requests = (
        (1, [(b"FCGISPEC_BIG", _filler(9000, 1))], 1000, "9 KiB of PARAMS in 1000-byte records"),
        (3, [(f"FCGISPEC_VAR_{i:03d}".encode(), _filler(100, i)) for i in range(600)], 4096, "72 KiB of PARAMS (600 pairs)"),
    )
    for request_id, extra, record_size, what in requests:
        encoded = encode_params(ctx.probe_params(probe_query(status=200), extra=extra))
        conn.note(f"{what}: {len(encoded)} bytes")
        _send_params(conn, request_id, encoded, record_size)
        response = read_response(conn, request_id, ctx.seconds(10.0), expected=f"END_REQUEST id={request_id} for {what}")
        expect_end_request(response)
        if ctx.has_probe_app:
            report = expect_probe_report(response)
            sent = decode_params(encoded)
            if not ctx.params_match(report.params, sent):
                raise Violation(f"all {len(sent)} params of {what}, as sent", f"{len(report.params)} params, or values differ")
        _follow_up(ctx, conn, request_id + 1, what)


# Every byte but NUL: required. NUL: a C-string environment (CGI's, libfcgi's) cannot
# carry it, so losing it is a missed recommendation rather than a broken requirement.
BINARY_WITHOUT_NUL = bytes(range(1, 256))
REQUIRED_PAIRS = [
    (b"FCGISPEC_EMPTY_VALUE", b""),
    (b"", b"value of the empty name"),
    (b"FCGISPEC_BINARY", BINARY_WITHOUT_NUL),
]
NUL_PAIRS = [
    (b"FCGISPEC_NUL_VALUE", bytes(range(256))),
    (b"FCGISPEC_NUL_\x00_NAME\xff", b"\x00value starting with NUL\x00"),
]
ODD_PAIRS = REQUIRED_PAIRS + NUL_PAIRS + [(b"FCGISPEC_DUPLICATE", b"first"), (b"FCGISPEC_DUPLICATE", b"second")]


@case(
    "FCGI-3.4-6",
    # More than one request on a KEEP_CONN connection.
    prerequisites=("FCGI-3.5-2", "FCGI-3.4-1"),
    title="An empty value, an empty name and values with any byte 0x01..0xFF arrive intact (NUL bytes too: "
    "recommended); duplicate names: what the application sees",
    requirement="This name-value pair format allows the sender to transmit binary values without additional encoding.",
    level=Level.REQUIRED,
    catches=("params-cut-at-nul",),
)
def empty_and_binary_pairs(ctx: CaseContext) -> str:
    report = _probe_report(ctx, ODD_PAIRS, "empty, binary and duplicate pairs")
    if report is None:
        return "answered; without the probe app the values it received are not known"
    for name, value in REQUIRED_PAIRS:
        expect_param(report, name, value)
    for name, value in NUL_PAIRS:
        try:
            expect_param(report, name, value)
        except Violation as lost:
            raise RecommendationMissed(lost.expected, lost.actual + " (NUL bytes lost)") from None
    duplicates = [v.decode("latin-1") for n, v in report.params if n == b"FCGISPEC_DUPLICATE"]
    return f"duplicate name FCGISPEC_DUPLICATE (sent 'first', then 'second'): the application saw {duplicates}"
