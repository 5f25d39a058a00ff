"""The Python FastCGI 1.0 codec: records, name-value pairs, management bodies.

Pure functions and data; no sockets. The encoder deliberately lets a caller
produce malformed input (wrong lengths, odd versions, junk padding) because a
conformance tester must be able to lie on the wire; the decoder is tolerant of
anything framed, because a tester reports what it sees instead of refusing it.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Iterable, Sequence

HEADER_LENGTH = 8
MAX_CONTENT_LENGTH = 0xFFFF
MAX_PADDING_LENGTH = 0xFF
FCGI_VERSION_1 = 1
KEEP_CONN = 1
MANAGEMENT_REQUEST_ID = 0

_HEADER = struct.Struct(">BBHHBB")


class CodecError(ValueError):
    """Bytes that cannot be decoded as what the caller asked for."""


class RecordType(enum.IntEnum):
    BEGIN_REQUEST = 1
    ABORT_REQUEST = 2
    END_REQUEST = 3
    PARAMS = 4
    STDIN = 5
    STDOUT = 6
    STDERR = 7
    DATA = 8
    GET_VALUES = 9
    GET_VALUES_RESULT = 10
    UNKNOWN_TYPE = 11


class Role(enum.IntEnum):
    RESPONDER = 1
    AUTHORIZER = 2
    FILTER = 3


class ProtocolStatus(enum.IntEnum):
    REQUEST_COMPLETE = 0
    CANT_MPX_CONN = 1
    OVERLOADED = 2
    UNKNOWN_ROLE = 3


# Stream types end with an empty record; the others are discrete (spec App. A).
STREAM_TYPES = frozenset(
    {RecordType.PARAMS, RecordType.STDIN, RecordType.STDOUT, RecordType.STDERR, RecordType.DATA}
)


def type_name(record_type: int) -> str:
    """'STDOUT' for known types, 'type=200' for the rest."""
    try:
        return RecordType(record_type).name
    except ValueError:
        return f"type={record_type}"


def _enum_name(enum_class: type[enum.IntEnum], value: int) -> str:
    try:
        return enum_class(value).name
    except ValueError:
        return str(value)


def preview_bytes(data: bytes, limit: int = 24) -> str:
    """A short, printable, quoted rendering of some bytes for traces."""
    shown = data[:limit]
    text = "".join(
        chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02x}" for b in shown
    )
    if len(data) > limit:
        text += "…"
    return f'"{text}"'


@dataclass(frozen=True)
class Record:
    """One FastCGI record as it travelled (or will travel) on the wire."""

    type: int
    request_id: int
    content: bytes
    padding: bytes = b""
    version: int = FCGI_VERSION_1

    def encode(self) -> bytes:
        return encode_record(
            self.type,
            self.request_id,
            self.content,
            padding_length=len(self.padding),
            padding=self.padding,
            version=self.version,
        )

    def describe(self) -> str:
        """One readable line, e.g. 'STDOUT id=1 len=5 pad=3 "Statu…"'."""
        parts = [type_name(self.type), f"id={self.request_id}"]
        if self.version != FCGI_VERSION_1:
            parts.append(f"version={self.version}")
        detail = _describe_content(self)
        if detail is None:
            parts.append(f"len={len(self.content)}")
            if self.padding:
                parts.append(f"pad={len(self.padding)}")
            if self.content:
                parts.append(preview_bytes(self.content))
        else:
            if self.padding:
                parts.append(f"pad={len(self.padding)}")
            parts.append(detail)
        return " ".join(parts)


def _describe_content(record: Record) -> str | None:
    """Decoded detail for fixed-layout bodies; None means 'show length and bytes'."""
    content = record.content
    if record.type == RecordType.BEGIN_REQUEST and len(content) == 8:
        role, flags = struct.unpack(">HB", content[:3])
        flag_text = "KEEP_CONN" if flags == KEEP_CONN else ("0" if flags == 0 else f"0x{flags:02x}")
        text = f"role={_enum_name(Role, role)} flags={flag_text}"
        if content[3:] != b"\0" * 5:
            text += f" reserved={content[3:].hex()}"
        return text
    if record.type == RecordType.END_REQUEST and len(content) == 8:
        end = decode_end_request(content)
        return f"appStatus={end.app_status} protocolStatus={_enum_name(ProtocolStatus, end.protocol_status)}"
    if record.type == RecordType.UNKNOWN_TYPE and len(content) == 8:
        return f"unknownType={content[0]}"
    if record.type in (RecordType.GET_VALUES, RecordType.GET_VALUES_RESULT):
        try:
            pairs = decode_params(content)
        except CodecError:
            return None
        shown = ", ".join(
            f"{n.decode('latin-1')}={v.decode('latin-1')!r}" if v else n.decode("latin-1") for n, v in pairs
        )
        return f"len={len(content)} {{{shown}}}"
    return None


def encode_record(
    type: int,
    request_id: int,
    content: bytes = b"",
    *,
    padding_length: int = 0,
    padding_byte: int = 0,
    padding: bytes | None = None,
    version: int = FCGI_VERSION_1,
    content_length: int | None = None,
) -> bytes:
    """Encode one record.

    content_length overrides the header field so that a case can lie about
    the length; padding (explicit bytes) wins over padding_byte.
    """
    if padding is None:
        padding = bytes([padding_byte]) * padding_length
    declared = len(content) if content_length is None else content_length
    header = _HEADER.pack(version & 0xFF, type & 0xFF, request_id & 0xFFFF, declared & 0xFFFF, len(padding) & 0xFF, 0)
    return header + content + padding


def encode_nv_length(n: int, long_form: bool = False) -> bytes:
    """A name or value length: 1 byte below 128, else 4 bytes with the top bit set."""
    if n < 0 or n > 0x7FFFFFFF:
        raise CodecError(f"name-value length out of range: {n}")
    if n <= 127 and not long_form:
        return bytes([n])
    return struct.pack(">I", n | 0x80000000)


def encode_pair(name: bytes | str, value: bytes | str, long_form: bool = False) -> bytes:
    name_bytes = _to_bytes(name)
    value_bytes = _to_bytes(value)
    return (
        encode_nv_length(len(name_bytes), long_form)
        + encode_nv_length(len(value_bytes), long_form)
        + name_bytes
        + value_bytes
    )


def encode_params(pairs: Iterable[tuple[bytes | str, bytes | str]], long_form: bool = False) -> bytes:
    return b"".join(encode_pair(name, value, long_form) for name, value in pairs)


def _to_bytes(text: bytes | str) -> bytes:
    # latin-1 maps U+0000..U+00FF one-to-one onto bytes, so a str can carry any byte.
    return text if isinstance(text, bytes) else text.encode("latin-1")


def _decode_nv_length(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise CodecError(f"truncated length at offset {offset}")
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    if offset + 4 > len(data):
        raise CodecError(f"truncated 4-byte length at offset {offset}")
    return struct.unpack_from(">I", data, offset)[0] & 0x7FFFFFFF, offset + 4


def decode_params(data: bytes) -> list[tuple[bytes, bytes]]:
    """Decode a complete name-value stream; raises CodecError on truncation or overrun."""
    pairs: list[tuple[bytes, bytes]] = []
    offset = 0
    while offset < len(data):
        name_length, offset = _decode_nv_length(data, offset)
        value_length, offset = _decode_nv_length(data, offset)
        end = offset + name_length + value_length
        if end > len(data):
            raise CodecError(
                f"pair at offset {offset} declares {name_length}+{value_length} bytes, {len(data) - offset} remain"
            )
        pairs.append((data[offset : offset + name_length], data[offset + name_length : end]))
        offset = end
    return pairs


def begin_request_body(role: int, flags: int, reserved: bytes = b"\0" * 5) -> bytes:
    return struct.pack(">HB", role & 0xFFFF, flags & 0xFF) + reserved


@dataclass(frozen=True)
class EndRequest:
    app_status: int
    protocol_status: int

    def describe(self) -> str:
        return f"appStatus={self.app_status} protocolStatus={_enum_name(ProtocolStatus, self.protocol_status)}"


def decode_end_request(content: bytes) -> EndRequest:
    if len(content) != 8:
        raise CodecError(f"END_REQUEST body is {len(content)} bytes, not 8")
    app_status, protocol_status = struct.unpack_from(">IB", content)
    return EndRequest(app_status, protocol_status)


def end_request_body(app_status: int, protocol_status: int) -> bytes:
    return struct.pack(">IB", app_status, protocol_status) + b"\0\0\0"


def unknown_type_body(record_type: int) -> bytes:
    return bytes([record_type & 0xFF]) + b"\0" * 7


class RecordReader:
    """Incremental record parser: feed bytes as they arrive, get whole records.

    Any version value is accepted (the tester reports what it sees); bytes that
    do not yet form a whole record stay in .pending.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> bytes:
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[Record]:
        self._buffer += data
        records: list[Record] = []
        while len(self._buffer) >= HEADER_LENGTH:
            version, record_type, request_id, content_length, padding_length, _ = _HEADER.unpack_from(self._buffer)
            total = HEADER_LENGTH + content_length + padding_length
            if len(self._buffer) < total:
                break
            content = bytes(self._buffer[HEADER_LENGTH : HEADER_LENGTH + content_length])
            padding = bytes(self._buffer[HEADER_LENGTH + content_length : total])
            del self._buffer[:total]
            records.append(Record(record_type, request_id, content, padding, version))
        return records


def split_sizes(length: int, chunk_sizes: int | Sequence[int] | None) -> list[int]:
    """Sizes of consecutive pieces of `length` bytes.

    None -> as few records as possible (65535 each); an int -> pieces of that
    size; a list -> those sizes in turn, the last one repeated for the rest.
    Zero-size pieces in a list are ignored: an empty record would end a stream.
    """
    if isinstance(chunk_sizes, int):
        pattern = [chunk_sizes]
    elif chunk_sizes is None:
        pattern = [MAX_CONTENT_LENGTH]
    else:
        pattern = [size for size in chunk_sizes if size > 0] or [MAX_CONTENT_LENGTH]
    if any(size <= 0 or size > MAX_CONTENT_LENGTH for size in pattern):
        raise CodecError(f"record sizes must be 1..65535: {pattern}")
    sizes: list[int] = []
    remaining = length
    index = 0
    while remaining > 0:
        size = min(pattern[min(index, len(pattern) - 1)], remaining)
        sizes.append(size)
        remaining -= size
        index += 1
    return sizes


def stream_records(
    type: int,
    request_id: int,
    data: bytes,
    *,
    chunk_sizes: int | Sequence[int] | None = None,
    terminate: bool = True,
) -> list[bytes]:
    """Cut a stream into encoded records, plus the empty terminator when terminate."""
    records: list[bytes] = []
    offset = 0
    for size in split_sizes(len(data), chunk_sizes):
        records.append(encode_record(type, request_id, data[offset : offset + size]))
        offset += size
    if terminate:
        records.append(encode_record(type, request_id, b""))
    return records
