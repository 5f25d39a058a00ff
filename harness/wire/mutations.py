"""The mutation toolkit: pure functions that turn well-formed FastCGI input into the
odd-but-legal and the malformed input real web servers (and attackers) send.

Everything works on encoded bytes (what FcgiConnection.send_raw/send_records take)
or lists of them, and returns new bytes: no sockets here, so each mutation is
unit-tested on its own (tests/test_mutations.py) and cases combine them freely.
"""

from __future__ import annotations

import random
import struct
from typing import Iterable, Iterator, Sequence

from harness.wire.codec import (
    HEADER_LENGTH,
    MANAGEMENT_REQUEST_ID,
    MAX_CONTENT_LENGTH,
    MAX_PADDING_LENGTH,
    CodecError,
    Record,
    RecordReader,
    RecordType,
    Role,
    begin_request_body,
    encode_nv_length,
    encode_record,
    stream_records,
)

# A padding byte that is not zero: a server that parses padding as data (or as the
# next header) shows it, while zero padding can pass unnoticed.
DEFAULT_PADDING_BYTE = 0xA5
# Padding lengths worth trying when all of 1..255 would be too slow.
SAMPLE_PADDING_LENGTHS = (1, 7, 8, 9, 127, 128, 255)
ALL_PADDING_LENGTHS = tuple(range(1, MAX_PADDING_LENGTH + 1))
# Ids at the edges of the 16-bit field: 0 is the management id, 256 is the first id
# whose high byte matters, 65535 the largest.
EDGE_REQUEST_IDS = (0, 1, 256, 65535)
# Versions other than FCGI_VERSION_1 on either side of it.
BAD_VERSIONS = (0, 2)
# Record types no FastCGI 1.0 application knows: 0, the first after the defined
# ones, and values with the high bit set (signedness bugs).
UNKNOWN_TYPES = (0, 12, 127, 128, 200, 255)


def records_of(data: bytes) -> list[Record]:
    """The whole records in data; CodecError when bytes are left over (a mutation of
    something that is not a record sequence is a bug in the case)."""
    reader = RecordReader()
    records = reader.feed(data)
    if reader.pending:
        raise CodecError(f"{len(reader.pending)} bytes after the last whole record")
    return records


def reencode(
    record: Record,
    *,
    request_id: int | None = None,
    version: int | None = None,
    padding_length: int | None = None,
    padding_byte: int = DEFAULT_PADDING_BYTE,
    content_length: int | None = None,
) -> bytes:
    """One record encoded again with some header fields changed."""
    padding = record.padding if padding_length is None else bytes([padding_byte]) * padding_length
    return encode_record(
        record.type,
        record.request_id if request_id is None else request_id,
        record.content,
        padding=padding,
        version=record.version if version is None else version,
        content_length=content_length,
    )


def _map_records(data: bytes, **changes: int | None) -> bytes:
    return b"".join(reencode(record, **changes) for record in records_of(data))  # type: ignore[arg-type]


def with_padding(data: bytes, length: int, byte: int = DEFAULT_PADDING_BYTE) -> bytes:
    """Every record in data re-encoded with `length` (1..255) padding bytes of value `byte`.

    The spec (§3.3) lets a sender pad any record by 0..255 bytes that the receiver must skip.
    """
    if not 0 <= length <= MAX_PADDING_LENGTH:
        raise CodecError(f"padding length must be 0..255: {length}")
    return _map_records(data, padding_length=length, padding_byte=byte)


def pad_each(encoded: Iterable[bytes], length: int, byte: int = DEFAULT_PADDING_BYTE) -> list[bytes]:
    """with_padding over a list of encoded records (as stream_records returns)."""
    return [with_padding(piece, length, byte) for piece in encoded]


def with_version(data: bytes, version: int) -> bytes:
    """Every record in data with its version byte set (0 and 2 are the interesting ones)."""
    return _map_records(data, version=version)


def with_request_id(data: bytes, request_id: int) -> bytes:
    """Every record in data moved to another request id."""
    return _map_records(data, request_id=request_id)


def declare_length(data: bytes, declared: int) -> bytes:
    """One record whose header declares `declared` content bytes, followed by its real bytes.

    With declared > the real content the record claims bytes that are not there (the
    receiver waits for them, or eats the next record); below, the rest becomes garbage.
    """
    records = records_of(data)
    if len(records) != 1:
        raise CodecError(f"declare_length takes exactly one record, got {len(records)}")
    return reencode(records[0], content_length=declared)


def overstate_length(data: bytes, extra: int = 1) -> bytes:
    """One record declaring `extra` more content bytes than it carries (capped at 65535)."""
    record = records_of(data)[0]
    return declare_length(data, min(len(record.content) + extra, MAX_CONTENT_LENGTH))


# -- splitting byte streams -----------------------------------------------------------


def split_at(data: bytes, offsets: Iterable[int]) -> list[bytes]:
    """data cut at the given offsets (out-of-range and repeated offsets are ignored)."""
    cuts = sorted({offset for offset in offsets if 0 < offset < len(data)})
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in zip(bounds, bounds[1:])]


def split_every_offset(data: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """(offset, [data[:offset], data[offset:]]) for every offset 1..len-1."""
    for offset in range(1, len(data)):
        yield offset, [data[:offset], data[offset:]]


def one_byte_writes(data: bytes) -> list[bytes]:
    """data as 1-byte pieces (or send_raw(data, write_size=1) for the same effect)."""
    return [data[i : i + 1] for i in range(len(data))]


def header_split_offsets(data: bytes) -> list[int]:
    """Offsets that cut a record header in two: 1..7 into every record's header."""
    offsets: list[int] = []
    start = 0
    for record in records_of(data):
        offsets.extend(start + cut for cut in range(1, HEADER_LENGTH))
        start += HEADER_LENGTH + len(record.content) + len(record.padding)
    return offsets


# -- request ids ----------------------------------------------------------------------


def random_request_id(seed: int | str = 3) -> int:
    """A reproducible 'random' id in 2..65534 that is none of the edge ids."""
    rng = random.Random(seed)
    while True:
        candidate = rng.randint(2, 65534)
        if candidate not in EDGE_REQUEST_IDS:
            return candidate


def interesting_ids(seed: int | str = 3, *, include_zero: bool = False) -> tuple[int, ...]:
    """Application request ids worth trying: 1, 256, 65535 and a seeded random one
    (0 too when include_zero: it is the management id, not a valid application id)."""
    ids = tuple(i for i in EDGE_REQUEST_IDS if include_zero or i != MANAGEMENT_REQUEST_ID)
    return ids + (random_request_id(seed),)


# -- name-value pairs -------------------------------------------------------------------


def long_form_pair(name: bytes, value: bytes, *, name_long: bool = True, value_long: bool = True) -> bytes:
    """A pair whose short (<128) lengths use the 4-byte form anyway (legal: §3.4 only says
    lengths of 128 or more need it)."""
    return (
        encode_nv_length(len(name), name_long)
        + encode_nv_length(len(value), value_long)
        + name
        + value
    )


def long_form_params(pairs: Iterable[tuple[bytes, bytes]], *, names: bool = True, values: bool = True) -> bytes:
    """A PARAMS body with every length in the 4-byte form (or only names' / values')."""
    return b"".join(long_form_pair(n, v, name_long=names, value_long=values) for n, v in pairs)


def nv_length_bytes(length: int, form: int) -> bytes:
    """A length in the 1-byte (form=1) or 4-byte (form=4) encoding, whatever its size
    (form=1 above 127 produces the wrong, truncated encoding on purpose)."""
    if form == 4:
        return struct.pack(">I", (length & 0x7FFFFFFF) | 0x80000000)
    return bytes([length & 0x7F])


# -- whole-record mutations ---------------------------------------------------------------


def max_size_record(
    record_type: int,
    request_id: int,
    *,
    padding_length: int = MAX_PADDING_LENGTH,
    padding_byte: int = DEFAULT_PADDING_BYTE,
    fill: bytes = b"x",
) -> bytes:
    """A record with 65535 content bytes and (by default) 255 padding bytes: the largest there is."""
    content = (fill * (MAX_CONTENT_LENGTH // max(len(fill), 1) + 1))[:MAX_CONTENT_LENGTH]
    return encode_record(record_type, request_id, content, padding_length=padding_length, padding_byte=padding_byte)


def begin_record(request_id: int, role: int = Role.RESPONDER, flags: int = 1) -> bytes:
    return encode_record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(role, flags))


def duplicate_begin(request_id: int, role: int = Role.RESPONDER, flags: int = 1) -> list[bytes]:
    """Two BEGIN_REQUEST records for the same id, the second while the first request is active."""
    return [begin_record(request_id, role, flags), begin_record(request_id, role, flags)]


def late_records(request_id: int, data: bytes = b"late") -> list[bytes]:
    """Records for an id whose request has ended (§3.3: to be ignored): PARAMS, STDIN, DATA and ABORT."""
    return [
        *stream_records(RecordType.PARAMS, request_id, b"\x04\x04LATElate"),
        *stream_records(RecordType.STDIN, request_id, data),
        *stream_records(RecordType.DATA, request_id, data),
        encode_record(RecordType.ABORT_REQUEST, request_id),
    ]


def foreign_id_records(request_id: int, data: bytes = b"FOREIGN") -> list[bytes]:
    """Input for an id that was never begun: STDIN with data, its terminator, and an ABORT.

    A server that reads them as its active request's body (php-fpm fcgi_read) shows it in what
    it echoes; one that closes the connection over them breaks the other requests.
    """
    return [*stream_records(RecordType.STDIN, request_id, data), encode_record(RecordType.ABORT_REQUEST, request_id)]


def unknown_management_record(record_type: int, content: bytes = b"") -> bytes:
    """A management record (id 0) of an unknown type, answered with FCGI_UNKNOWN_TYPE (§4.2)."""
    return encode_record(record_type, MANAGEMENT_REQUEST_ID, content)


def unknown_management_records(types: Sequence[int] = UNKNOWN_TYPES, content: bytes = b"") -> list[bytes]:
    return [unknown_management_record(t, content) for t in types]
