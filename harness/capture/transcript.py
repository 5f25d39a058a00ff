"""Transcripts: FastCGI traffic between a web server and an application, as exact, diffable text.

The format (version 1), its header keys and the regression fields: docs/transcript-format.md.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, Union

from harness.wire.codec import (
    FCGI_VERSION_1,
    CodecError,
    ProtocolStatus,
    Record,
    RecordReader,
    RecordType,
    Role,
    begin_request_body,
    decode_params,
    encode_params,
    end_request_body,
)

MAGIC = "fcgispec-transcript 1"
WS_TO_APP = "ws->app"
APP_TO_WS = "app->ws"
DIRECTIONS = (WS_TO_APP, APP_TO_WS)
INDENT = "    "
TEXT_PIECE = 64  # content bytes per text line at most
HEX_PIECE = 32
_NV_TYPES = (RecordType.PARAMS, RecordType.GET_VALUES, RecordType.GET_VALUES_RESULT)


class TranscriptError(ValueError):
    """Malformed transcript text; the message starts with 'line N:'."""

    def __init__(self, line_number: int, message: str) -> None:
        super().__init__(f"line {line_number}: {message}")
        self.line_number = line_number


# -- the model -------------------------------------------------------------------


@dataclass
class RecordItem:
    direction: str
    record: Record
    time_us: int | None = None


@dataclass
class RawItem:
    """Bytes of a stream that did not form a whole record."""

    direction: str
    data: bytes
    time_us: int | None = None


@dataclass
class WriteItem:
    """One piece of a stream as it arrived (its bytes are in the records after it)."""

    direction: str
    size: int
    time_us: int | None = None


@dataclass
class CloseItem:
    """A side ended its stream: how is 'FIN' or 'RST'; direction names the side that did it."""

    direction: str
    how: str
    time_us: int | None = None


@dataclass
class EventItem:
    """'opened', 'closed' or 'note' (with text)."""

    kind: str
    text: str = ""
    time_us: int | None = None


Item = Union[RecordItem, RawItem, WriteItem, CloseItem, EventItem]


@dataclass
class Connection:
    number: int
    ws_address: str | None = None
    app_address: str | None = None
    items: list[Item] = field(default_factory=list)

    def stream(self, direction: str) -> bytes:
        """The bytes that went this way, rebuilt from records and raw items."""
        parts: list[bytes] = []
        for item in self.items:
            if isinstance(item, RecordItem) and item.direction == direction:
                parts.append(item.record.encode())
            elif isinstance(item, RawItem) and item.direction == direction:
                parts.append(item.data)
        return b"".join(parts)

    def records(self, direction: str) -> list[Record]:
        return [i.record for i in self.items if isinstance(i, RecordItem) and i.direction == direction]

    def close_items(self) -> list[CloseItem]:
        return [i for i in self.items if isinstance(i, CloseItem)]

    def closed_first(self) -> CloseItem | None:
        """Who closed first and how (None when neither side closed in the capture)."""
        closes = self.close_items()
        return closes[0] if closes else None


@dataclass
class Transcript:
    meta: list[tuple[str, str]] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)

    def meta_values(self, key: str) -> list[str]:
        return [value for name, value in self.meta if name == key]

    def meta_value(self, key: str, default: str = "") -> str:
        values = self.meta_values(key)
        return values[0] if values else default


# -- building from byte streams (proxy, pcap) ----------------------------------------


class ConnectionBuilder:
    """Turns the pieces of both byte streams, fed in the order they happened, into items.

    Each direction has its own RecordReader, so a record split across pieces is
    listed once, after the piece that completed it; what is left when a side
    closes becomes a RawItem, so no byte is ever lost.
    """

    def __init__(self, number: int, ws_address: str | None = None, app_address: str | None = None) -> None:
        self.connection = Connection(number, ws_address, app_address)
        self._readers = {direction: RecordReader() for direction in DIRECTIONS}
        self._ended: set[tuple[str, str]] = set()

    def opened(self, time_us: int | None) -> None:
        self.connection.items.append(EventItem("opened", "", time_us))

    def note(self, text: str, time_us: int | None) -> None:
        self.connection.items.append(EventItem("note", text, time_us))

    def data(self, direction: str, data: bytes, time_us: int | None) -> None:
        if not data:
            return
        self.connection.items.append(WriteItem(direction, len(data), time_us))
        for record in self._readers[direction].feed(data):
            self.connection.items.append(RecordItem(direction, record, time_us))

    def end(self, direction: str, how: str, time_us: int | None) -> None:
        """The side sending this way closed (FIN) or reset (RST) its stream."""
        # A FIN may be followed by an RST (a side that closed fully resets when data still arrives).
        if (direction, how) in self._ended or (direction, "RST") in self._ended:
            return
        self._flush(direction, time_us)
        self._ended.add((direction, how))
        self.connection.items.append(CloseItem(direction, how, time_us))

    def finish(self, time_us: int | None) -> Connection:
        """Flush leftovers and mark the connection closed."""
        for direction in DIRECTIONS:
            self._flush(direction, time_us)
        self.connection.items.append(EventItem("closed", "", time_us))
        return self.connection

    def _flush(self, direction: str, time_us: int | None) -> None:
        reader = self._readers[direction]
        leftover = reader.pending
        if leftover:
            self.connection.items.append(RawItem(direction, leftover, time_us))
            self._readers[direction] = RecordReader()


# -- writing ---------------------------------------------------------------------------


def _escape(data: bytes) -> str:
    out = []
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x22:
            out.append('\\"')
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x09:
            out.append("\\t")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return '"' + "".join(out) + '"'


def _mostly_printable(data: bytes) -> bool:
    printable = sum(1 for b in data if 0x20 <= b < 0x7F or b in (9, 10, 13))
    return printable * 4 >= len(data) * 3


def _text_pieces(data: bytes) -> list[bytes]:
    """Cut after each newline and every TEXT_PIECE bytes, so that lines stay short and diffs local."""
    pieces: list[bytes] = []
    start = 0
    for index, b in enumerate(data):
        if b == 0x0A or index + 1 - start >= TEXT_PIECE:
            pieces.append(data[start : index + 1])
            start = index + 1
    if start < len(data):
        pieces.append(data[start:])
    return pieces


def _content_lines(data: bytes) -> list[str]:
    if not data:
        return []
    if _mostly_printable(data):
        return [INDENT + _escape(piece) for piece in _text_pieces(data)]
    return [INDENT + "hex " + data[i : i + HEX_PIECE].hex() for i in range(0, len(data), HEX_PIECE)]


def _pair_lines(content: bytes) -> list[str] | None:
    """One line per pair when content is exactly canonical pairs, else None (shown as bytes)."""
    try:
        pairs = decode_params(content)
    except CodecError:
        return None
    if not pairs or encode_params(pairs) != content:
        return None
    lines = []
    for name, value in pairs:
        pieces = [value[i : i + TEXT_PIECE] for i in range(0, len(value), TEXT_PIECE)] or [b""]
        lines.append(f"{INDENT}= {_escape(name)} {_escape(pieces[0])}")
        lines.extend(f"{INDENT}+ {_escape(piece)}" for piece in pieces[1:])
    return lines


def _enum_text(enum_class: type, value: int) -> str:
    try:
        return enum_class(value).name
    except ValueError:
        return str(value)


def _flags_text(flags: int) -> str:
    return "KEEP_CONN" if flags == 1 else ("0" if flags == 0 else f"0x{flags:02x}")


def _record_lines(record: Record) -> tuple[list[str], list[str]]:
    """(fields after 'TYPE id=N', content lines) for one record."""
    fields: list[str] = []
    if record.version != FCGI_VERSION_1:
        fields.append(f"version={record.version}")
    content = record.content
    lines: list[str] = []
    reserved: bytes | None = None
    if record.type == RecordType.BEGIN_REQUEST and len(content) == 8:
        role, flags = struct.unpack(">HB", content[:3])
        fields += [f"role={_enum_text(Role, role)}", f"flags={_flags_text(flags)}"]
        reserved = content[3:]
    elif record.type == RecordType.END_REQUEST and len(content) == 8:
        app_status, protocol_status = struct.unpack(">IB", content[:5])
        fields += [f"appStatus={app_status}", f"protocolStatus={_enum_text(ProtocolStatus, protocol_status)}"]
        reserved = content[5:]
    elif record.type == RecordType.UNKNOWN_TYPE and len(content) == 8:
        fields.append(f"unknownType={content[0]}")
        reserved = content[1:]
    else:
        fields.append(f"len={len(content)}")
        pair_lines = _pair_lines(content) if record.type in _NV_TYPES else None
        lines = pair_lines if pair_lines is not None else _content_lines(content)
    if reserved is not None and any(reserved):
        fields.append(f"reserved={reserved.hex()}")
    if record.padding:
        fields.append(f"pad={len(record.padding)}")
        if any(record.padding):
            fields.append(f"padding={record.padding.hex()}")
    return fields, lines


def _type_text(record_type: int) -> str:
    try:
        return RecordType(record_type).name
    except ValueError:
        return f"type={record_type}"


def _time_text(time_us: int | None) -> str:
    if time_us is None:
        return ""
    return f"{time_us // 1000}.{time_us % 1000:03d} "


def format_item(item: Item) -> list[str]:
    """The lines of one item."""
    prefix = _time_text(item.time_us)
    if isinstance(item, RecordItem):
        fields, lines = _record_lines(item.record)
        head = " ".join([item.direction, _type_text(item.record.type), f"id={item.record.request_id}", *fields])
        return [prefix + head, *lines]
    if isinstance(item, RawItem):
        return [f"{prefix}{item.direction} raw len={len(item.data)}", *_content_lines(item.data)]
    if isinstance(item, WriteItem):
        return [f"{prefix}{item.direction} write {item.size}"]
    if isinstance(item, CloseItem):
        return [f"{prefix}{item.direction} {item.how}"]
    if item.kind == "note":
        return [f"{prefix}note {item.text}".rstrip()]
    return [prefix + item.kind]


def format_transcript(transcript: Transcript, *, timing: bool = True) -> str:
    """The text of a transcript; timing=False leaves the times out (a steadier diff)."""
    lines = [MAGIC]
    for key, value in transcript.meta:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise ValueError(f"metadata key {key!r} must be a word")
        if "\n" in value or "\r" in value:
            raise ValueError(f"metadata value for {key!r} must be one line (repeat the key for more lines)")
        lines.append(f"{key}: {value}".rstrip())
    for connection in transcript.connections:
        lines.append("")
        head = f"connection {connection.number}"
        if connection.ws_address:
            head += f" ws={connection.ws_address}"
        if connection.app_address:
            head += f" app={connection.app_address}"
        lines.append(head)
        for item in connection.items:
            if not timing:
                item = _without_time(item)
            lines.extend(format_item(item))
    return "\n".join(lines) + "\n"


def _without_time(item: Item) -> Item:
    copy = type(item)(**{**item.__dict__})
    copy.time_us = None
    return copy


def write_transcript(transcript: Transcript, path: str | Path, *, timing: bool = True) -> None:
    Path(path).write_text(format_transcript(transcript, timing=timing), encoding="utf-8")


# -- parsing ---------------------------------------------------------------------------

_ESCAPES = {"\\": 0x5C, '"': 0x22, "n": 0x0A, "r": 0x0D, "t": 0x09}
_TIME = re.compile(r"(\d+)\.(\d{3})$")
_FIELD = re.compile(r"([A-Za-z]+)=(\S*)$")


def _unescape(text: str, line_number: int) -> tuple[bytes, str]:
    """Decode one quoted string at the start of text; returns (bytes, rest of text)."""
    if not text.startswith('"'):
        raise TranscriptError(line_number, f"expected a quoted string, got {text[:20]!r}")
    out = bytearray()
    i = 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return bytes(out), text[i + 1 :].lstrip(" ")
        if c == "\\":
            if i + 1 >= len(text):
                break
            e = text[i + 1]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i += 2
                continue
            if e == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2 : i + 4]):
                out.append(int(text[i + 2 : i + 4], 16))
                i += 4
                continue
            raise TranscriptError(line_number, f"bad escape \\{e} in string")
        code = ord(c)
        if code < 0x20 or code >= 0x7F:
            raise TranscriptError(line_number, f"character {c!r} must be escaped in a string")
        out.append(code)
        i += 1
    raise TranscriptError(line_number, "unterminated string")


def _is_number(text: str) -> bool:
    """Decimal digits only (str.isdigit() also takes '²', which int() refuses)."""
    return re.fullmatch(r"[0-9]+", text) is not None


def _in_range(value: int, largest: int, line_number: int, what: str) -> int:
    """The value when the wire field it goes into holds it; a value the field would wrap is an error."""
    if not 0 <= value <= largest:
        raise TranscriptError(line_number, f"{what}={value} is out of range (0 to {largest})")
    return value


def _enum_value(enum_class: type, text: str, line_number: int, what: str, largest: int) -> int:
    if _is_number(text):
        return _in_range(int(text), largest, line_number, what)
    try:
        return int(enum_class[text])
    except KeyError:
        raise TranscriptError(line_number, f"unknown {what} {text!r}") from None


def _flags_value(text: str, line_number: int) -> int:
    if text == "KEEP_CONN":
        return 1
    try:
        value = int(text, 0)
    except ValueError:
        raise TranscriptError(line_number, f"bad flags {text!r}") from None
    return _in_range(value, 0xFF, line_number, "flags")


def _hex_value(text: str, line_number: int, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise TranscriptError(line_number, f"bad hex in {what}") from None


def _int_value(fields: dict[str, str], key: str, line_number: int, default: int | None = None,
               largest: int | None = None) -> int:
    """The number of a key=N field; largest: what its wire field holds (more is an error, never wrapped)."""
    if key not in fields:
        if default is None:
            raise TranscriptError(line_number, f"missing {key}=")
        return default
    text = fields[key]
    if not _is_number(text):
        raise TranscriptError(line_number, f"{key}= needs a number, got {text!r}")
    return int(text) if largest is None else _in_range(int(text), largest, line_number, key)


def _reserved_value(fields: dict[str, str], size: int, line_number: int) -> bytes | None:
    """The reserved= bytes of a record whose body is described by fields: exactly `size` of them."""
    if "reserved" not in fields:
        return None
    reserved = _hex_value(fields["reserved"], line_number, "reserved=")
    if len(reserved) != size:
        raise TranscriptError(line_number, f"reserved= holds {len(reserved)} bytes where this record has {size}")
    return reserved


class _Parser:
    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.index = 0

    def parse(self) -> Transcript:
        """The whole transcript: header, then connections and their records (TranscriptError with a line number)."""
        transcript = Transcript()
        if self.lines and self.lines[0] == MAGIC + "\r":
            raise TranscriptError(1, "the lines end with CR LF (a Windows editor?); a transcript's lines end with LF alone")
        if not self.lines or self.lines[0] != MAGIC:
            raise TranscriptError(1, f"expected {MAGIC!r} as the first line")
        self.index = 1
        while self.index < len(self.lines) and self.lines[self.index] != "":
            line = self.lines[self.index]
            if not line.startswith("#"):
                key, colon, value = line.partition(":")
                if not colon or not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
                    raise TranscriptError(self.index + 1, f"expected 'key: value' in the header, got {line!r}")
                transcript.meta.append((key, value[1:] if value.startswith(" ") else value))
            self.index += 1
        connection: Connection | None = None
        while self.index < len(self.lines):
            line_number = self.index + 1
            line = self.lines[self.index]
            self.index += 1
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith(" "):
                raise TranscriptError(line_number, "content line without a record before it")
            words = line.split(" ")
            if words[0] == "connection":
                connection = self._connection_head(words, line_number)
                transcript.connections.append(connection)
                continue
            if connection is None:
                raise TranscriptError(line_number, "an item before the first 'connection' line")
            connection.items.append(self._item(words, line, line_number))
        return transcript

    def _connection_head(self, words: list[str], line_number: int) -> Connection:
        if len(words) < 2 or not _is_number(words[1]):
            raise TranscriptError(line_number, "expected 'connection N [ws=ADDRESS] [app=ADDRESS]'")
        connection = Connection(int(words[1]))
        for word in words[2:]:
            key, _, value = word.partition("=")
            if key == "ws":
                connection.ws_address = value
            elif key == "app":
                connection.app_address = value
            else:
                raise TranscriptError(line_number, f"unknown connection field {word!r}")
        return connection

    def _content(self) -> list[str]:
        """The indented lines that follow an item, as (line number, text) consumed."""
        lines = []
        while self.index < len(self.lines) and self.lines[self.index].startswith(INDENT):
            lines.append(self.lines[self.index][len(INDENT) :])
            self.index += 1
        return lines

    def _bytes_content(self, first_line: int) -> bytes:
        out = bytearray()
        for offset, text in enumerate(self._content()):
            line_number = first_line + 1 + offset
            if text.startswith("hex "):
                out += _hex_value(text[4:], line_number, "content")
            else:
                piece, rest = _unescape(text, line_number)
                if rest:
                    raise TranscriptError(line_number, f"unexpected text after the string: {rest!r}")
                out += piece
        return bytes(out)

    def _pairs_or_bytes(self, first_line: int) -> bytes:
        start = self.index
        if start < len(self.lines) and self.lines[start].startswith(INDENT + "= "):
            pairs: list[tuple[bytes, bytearray]] = []
            for offset, text in enumerate(self._content()):
                line_number = first_line + 1 + offset
                if text.startswith("= "):
                    name, rest = _unescape(text[2:], line_number)
                    value, rest = _unescape(rest, line_number)
                    if rest:
                        raise TranscriptError(line_number, f"unexpected text after the pair: {rest!r}")
                    pairs.append((name, bytearray(value)))
                elif text.startswith("+ ") and pairs:
                    value, rest = _unescape(text[2:], line_number)
                    if rest:
                        raise TranscriptError(line_number, f"unexpected text after the string: {rest!r}")
                    pairs[-1][1].extend(value)
                else:
                    raise TranscriptError(line_number, "expected '= \"NAME\" \"VALUE\"' or '+ \"...\"'")
            return encode_params((name, bytes(value)) for name, value in pairs)
        return self._bytes_content(first_line)

    def _item(self, words: list[str], line: str, line_number: int) -> Item:
        time_us = None
        match = _TIME.match(words[0])
        if match:
            time_us = int(match.group(1)) * 1000 + int(match.group(2))
            words = words[1:]
        if not words or not words[0]:
            raise TranscriptError(line_number, f"empty item: {line!r}")
        head = words[0]
        if head in ("opened", "closed"):
            if len(words) > 1:
                raise TranscriptError(line_number, f"unexpected text after {head!r}")
            return EventItem(head, "", time_us)
        if head == "note":
            return EventItem("note", " ".join(words[1:]), time_us)
        if head not in DIRECTIONS:
            raise TranscriptError(line_number, f"expected a time, 'ws->app', 'app->ws', 'opened', 'closed' or 'note', got {head!r}")
        if len(words) < 2:
            raise TranscriptError(line_number, "a direction with nothing after it")
        what = words[1]
        if what in ("FIN", "RST"):
            return CloseItem(head, what, time_us)
        if what == "write":
            if len(words) != 3 or not _is_number(words[2]):
                raise TranscriptError(line_number, "expected 'DIR write SIZE'")
            return WriteItem(head, int(words[2]), time_us)
        fields = self._fields(words[2:], line_number)
        if what == "raw":
            data = self._bytes_content(line_number)
            self._check_length(fields, data, line_number)
            return RawItem(head, data, time_us)
        return RecordItem(head, self._record(what, fields, line_number), time_us)

    def _fields(self, words: list[str], line_number: int) -> dict[str, str]:
        fields: dict[str, str] = {}
        for word in words:
            match = _FIELD.match(word)
            if not match:
                raise TranscriptError(line_number, f"expected key=value, got {word!r}")
            fields[match.group(1)] = match.group(2)
        return fields

    @staticmethod
    def _check_length(fields: dict[str, str], data: bytes, line_number: int) -> None:
        declared = _int_value(fields, "len", line_number)
        if declared != len(data):
            raise TranscriptError(line_number, f"len={declared} but the content lines hold {len(data)} bytes")

    def _record(self, what: str, fields: dict[str, str], line_number: int) -> Record:
        if what.startswith("type="):
            if not _is_number(what[5:]):
                raise TranscriptError(line_number, f"bad record type {what!r}")
            record_type = _in_range(int(what[5:]), 0xFF, line_number, "type")
            if 0 < record_type <= int(RecordType.UNKNOWN_TYPE):
                raise TranscriptError(line_number, f"type {record_type} must be written by name ({RecordType(record_type).name})")
        else:
            try:
                record_type = int(RecordType[what])
            except KeyError:
                raise TranscriptError(line_number, f"unknown record type {what!r}") from None
        request_id = _int_value(fields, "id", line_number, largest=0xFFFF)
        version = _int_value(fields, "version", line_number, FCGI_VERSION_1, largest=0xFF)
        if "role" in fields and record_type == RecordType.BEGIN_REQUEST:
            role = _enum_value(Role, fields["role"], line_number, "role", 0xFFFF)
            flags = _flags_value(fields.get("flags", "0"), line_number)
            reserved = _reserved_value(fields, 5, line_number)
            content = begin_request_body(role, flags, reserved if reserved is not None else b"\0" * 5)
        elif "appStatus" in fields and record_type == RecordType.END_REQUEST:
            app_status = _int_value(fields, "appStatus", line_number, largest=0xFFFFFFFF)
            status = _enum_value(ProtocolStatus, fields.get("protocolStatus", "0"), line_number, "protocolStatus",
                                 0xFF)
            content = end_request_body(app_status, status)
            reserved = _reserved_value(fields, 3, line_number)
            if reserved is not None:
                content = content[:5] + reserved
        elif "unknownType" in fields and record_type == RecordType.UNKNOWN_TYPE:
            unknown_type = _int_value(fields, "unknownType", line_number, largest=0xFF)
            reserved = _reserved_value(fields, 7, line_number)
            content = bytes([unknown_type]) + (reserved if reserved is not None else b"\0" * 7)
        else:
            content = self._pairs_or_bytes(line_number) if record_type in _NV_TYPES else self._bytes_content(line_number)
            self._check_length(fields, content, line_number)
        if len(content) > 0xFFFF:
            raise TranscriptError(line_number, f"content of {len(content)} bytes does not fit a record")
        pad = _int_value(fields, "pad", line_number, 0, largest=0xFF)
        padding = _hex_value(fields["padding"], line_number, "padding=") if "padding" in fields else b"\0" * pad
        if len(padding) != pad:
            raise TranscriptError(line_number, f"pad={pad} but padding= holds {len(padding)} bytes")
        return Record(record_type, request_id, content, padding, version)


def parse_transcript(text: str) -> Transcript:
    """Parse transcript text; TranscriptError (with the line number) when malformed."""
    return _Parser(text).parse()


def read_transcript(path: str | Path) -> Transcript:
    """The transcript in a file: OSError when it cannot be read, TranscriptError when it is not one."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_number = data.count(b"\n", 0, error.start) + 1
        raise TranscriptError(line_number, f"not UTF-8 text (byte offset {error.start}): not a transcript") from None
    return parse_transcript(text)


def check_writes(connection: Connection) -> list[str]:
    """Problems with the write items (their sizes must add up to each stream); [] when consistent."""
    problems = []
    for direction in DIRECTIONS:
        sizes = [i.size for i in connection.items if isinstance(i, WriteItem) and i.direction == direction]
        total = len(connection.stream(direction))
        if sizes and sum(sizes) != total:
            problems.append(f"connection {connection.number}: {direction} writes add up to {sum(sizes)}, stream is {total}")
    return problems


def merge_meta(base: Sequence[tuple[str, str]], extra: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Metadata lines in order, multi-line values split onto repeated keys."""
    merged: list[tuple[str, str]] = []
    for key, value in [*base, *extra]:
        for line in str(value).splitlines() or [""]:
            merged.append((key, line))
    return merged
