"""The Python codec: name-value lengths at their boundaries, records, the incremental reader."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.wire.codec import (
    CodecError,
    EndRequest,
    Record,
    RecordReader,
    RecordType,
    Role,
    begin_request_body,
    decode_end_request,
    decode_params,
    encode_nv_length,
    encode_pair,
    encode_params,
    encode_record,
    end_request_body,
    split_sizes,
    stream_records,
)


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x00\x00\x80"),
        (255, b"\x80\x00\x00\xff"),
        (1000, b"\x80\x00\x03\xe8"),  # Go's TestSize vector
        (65535, b"\x80\x00\xff\xff"),
        (65536, b"\x80\x01\x00\x00"),
        (0x7FFFFFFF, b"\xff\xff\xff\xff"),
    ],
)
def test_nv_length_boundaries(length: int, encoded: bytes) -> None:
    assert encode_nv_length(length) == encoded


def test_short_length_in_long_form() -> None:
    assert encode_nv_length(5, long_form=True) == b"\x80\x00\x00\x05"
    assert encode_nv_length(0, long_form=True) == b"\x80\x00\x00\x00"
    # A 4-byte form of a short length decodes like the 1-byte form.
    assert decode_params(encode_pair(b"NAME", b"value", long_form=True)) == [(b"NAME", b"value")]


@pytest.mark.parametrize("bad", [-1, 0x80000000])
def test_nv_length_out_of_range(bad: int) -> None:
    with pytest.raises(CodecError):
        encode_nv_length(bad)


@pytest.mark.parametrize("length", [0, 1, 127, 128, 255, 256, 65535, 65536])
def test_pair_roundtrip_at_boundaries(length: int) -> None:
    name = b"N" * length
    value = bytes(i % 256 for i in range(length))
    assert decode_params(encode_pair(name, value)) == [(name, value)]


def test_params_keep_order_and_duplicates() -> None:
    pairs = [(b"A", b"1"), (b"B", b""), (b"A", b"2"), (b"", b"empty name")]
    assert decode_params(encode_params(pairs)) == pairs


def test_str_pairs_are_latin1() -> None:
    assert encode_pair("\xff", "\x00") == b"\x01\x01\xff\x00"


@pytest.mark.parametrize(
    "data",
    [
        b"\x05",  # value length missing
        b"\x80\x00",  # truncated 4-byte length
        b"\x05\x05abc",  # name and value overrun the data
        b"\x01\x80\x00\x00\x10ab",  # 4-byte value length overruns
        b"\xff\xff\xff\xff\x00",  # 0x7FFFFFFF name length, nothing behind it
    ],
)
def test_decode_params_errors(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode_params(data)


@settings(database=None)  # no .hypothesis/ directory in the repo
@given(st.lists(st.tuples(st.binary(max_size=300), st.binary(max_size=300)), max_size=8), st.booleans())
def test_params_roundtrip_property(pairs: list[tuple[bytes, bytes]], long_form: bool) -> None:
    assert decode_params(encode_params(pairs, long_form)) == pairs


def test_encode_record_header() -> None:
    data = encode_record(RecordType.STDIN, 0x0102, b"abc", padding_length=5, padding_byte=0xA5)
    assert data == b"\x01\x05\x01\x02\x00\x03\x05\x00abc" + b"\xa5" * 5


def test_encode_record_lies_about_length() -> None:
    data = encode_record(RecordType.PARAMS, 1, b"abc", content_length=100, version=2)
    assert data[:8] == b"\x02\x04\x00\x01\x00\x64\x00\x00"
    assert data[8:] == b"abc"


def test_record_encode_matches_encode_record() -> None:
    record = Record(RecordType.STDOUT, 7, b"hello", b"\x00\x00\x00")
    assert record.encode() == encode_record(RecordType.STDOUT, 7, b"hello", padding_length=3)


def test_begin_and_end_request_bodies() -> None:
    assert begin_request_body(Role.RESPONDER, 1) == b"\x00\x01\x01\x00\x00\x00\x00\x00"
    assert begin_request_body(0xFFFF, 0) == b"\xff\xff\x00\x00\x00\x00\x00\x00"
    assert decode_end_request(end_request_body(938, 3)) == EndRequest(938, 3)
    with pytest.raises(CodecError):
        decode_end_request(b"\x00" * 7)


def test_describe() -> None:
    assert Record(RecordType.STDOUT, 1, b"Status: 200", b"\0" * 5).describe() == 'STDOUT id=1 len=11 pad=5 "Status: 200"'
    assert Record(200, 0, b"").describe() == "type=200 id=0 len=0"
    begin = Record(RecordType.BEGIN_REQUEST, 1, begin_request_body(Role.RESPONDER, 1))
    assert begin.describe() == "BEGIN_REQUEST id=1 role=RESPONDER flags=KEEP_CONN"
    end = Record(RecordType.END_REQUEST, 3, end_request_body(0, 3))
    assert end.describe() == "END_REQUEST id=3 appStatus=0 protocolStatus=UNKNOWN_ROLE"
    assert Record(RecordType.STDOUT, 1, b"x" * 40).describe().endswith('…"')
    assert "version=2" in Record(RecordType.STDOUT, 1, b"", version=2).describe()


def _sample_stream() -> tuple[bytes, list[Record]]:
    records = [
        Record(RecordType.STDOUT, 1, b"Status: 200 OK\r\n\r\nbody", b"\0" * 2),
        Record(RecordType.STDERR, 1, b"", b""),
        Record(RecordType.STDOUT, 1, b"", b"\0" * 7),
        Record(RecordType.END_REQUEST, 1, end_request_body(0, 0)),
        Record(11, 0, b"\x0c" + b"\0" * 7, version=0),  # odd version: reported, not refused
    ]
    return b"".join(r.encode() for r in records), records


def test_reader_whole_stream() -> None:
    data, records = _sample_stream()
    reader = RecordReader()
    assert reader.feed(data) == records
    assert reader.pending == b""


def test_reader_split_at_every_offset() -> None:
    data, records = _sample_stream()
    for cut in range(len(data) + 1):
        reader = RecordReader()
        got = reader.feed(data[:cut]) + reader.feed(data[cut:])
        assert got == records, f"cut at {cut}"


def test_reader_one_byte_at_a_time_and_pending() -> None:
    data, records = _sample_stream()
    reader = RecordReader()
    got: list[Record] = []
    for index in range(len(data)):
        got += reader.feed(data[index : index + 1])
    assert got == records
    assert reader.feed(data[:5]) == []
    assert reader.pending == data[:5]


def test_split_sizes() -> None:
    assert split_sizes(0, None) == []
    assert split_sizes(70000, None) == [65535, 4465]
    assert split_sizes(5, 2) == [2, 2, 1]
    assert split_sizes(10, [1, 3]) == [1, 3, 3, 3]
    with pytest.raises(CodecError):
        split_sizes(10, 70000)


def test_stream_records() -> None:
    pieces = stream_records(RecordType.STDIN, 1, b"abcde", chunk_sizes=2)
    reader = RecordReader()
    records = reader.feed(b"".join(pieces))
    assert [r.content for r in records] == [b"ab", b"cd", b"e", b""]
    assert stream_records(RecordType.STDIN, 1, b"", terminate=True) == [encode_record(RecordType.STDIN, 1)]
    assert stream_records(RecordType.STDIN, 1, b"ab", terminate=False) == [encode_record(RecordType.STDIN, 1, b"ab")]
