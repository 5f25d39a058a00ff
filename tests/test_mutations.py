"""The mutation toolkit: each mutation changes exactly what it says, on the wire."""

from __future__ import annotations

import pytest

from harness.wire import mutations as m
from harness.wire.codec import (
    MAX_CONTENT_LENGTH,
    CodecError,
    RecordReader,
    RecordType,
    Role,
    decode_params,
    encode_params,
    encode_record,
    stream_records,
)

REQUEST = b"".join(
    [
        m.begin_record(1),
        *stream_records(RecordType.PARAMS, 1, encode_params([(b"A", b"1")])),
        *stream_records(RecordType.STDIN, 1, b"body"),
    ]
)


def decode(data: bytes):
    reader = RecordReader()
    records = reader.feed(data)
    assert not reader.pending
    return records


@pytest.mark.parametrize("length", m.ALL_PADDING_LENGTHS)
def test_padding_any_length_keeps_content(length: int) -> None:
    padded = m.with_padding(REQUEST, length, 0x5A)
    before, after = decode(REQUEST), decode(padded)
    assert [(r.type, r.request_id, r.content) for r in after] == [(r.type, r.request_id, r.content) for r in before]
    assert all(r.padding == b"\x5a" * length for r in after)
    assert len(padded) == len(REQUEST) + length * len(before)


def test_padding_out_of_range() -> None:
    with pytest.raises(CodecError):
        m.with_padding(REQUEST, 256)


def test_pad_each_and_default_byte_is_non_zero() -> None:
    pieces = m.pad_each(stream_records(RecordType.STDIN, 3, b"xy"), 7)
    assert [decode(p)[0].padding for p in pieces] == [bytes([m.DEFAULT_PADDING_BYTE]) * 7] * 2
    assert m.DEFAULT_PADDING_BYTE != 0


def test_records_of_rejects_partial_input() -> None:
    with pytest.raises(CodecError):
        m.records_of(REQUEST[:-1])


@pytest.mark.parametrize("version", m.BAD_VERSIONS)
def test_version(version: int) -> None:
    assert {r.version for r in decode(m.with_version(REQUEST, version))} == {version}
    assert [r.content for r in decode(m.with_version(REQUEST, version))] == [r.content for r in decode(REQUEST)]


def test_with_request_id() -> None:
    assert {r.request_id for r in decode(m.with_request_id(REQUEST, 65535))} == {65535}


def test_declared_length_past_the_data() -> None:
    record = encode_record(RecordType.STDIN, 1, b"abc")
    lying = m.overstate_length(record, 10)
    assert lying[4:6] == (13).to_bytes(2, "big")
    assert lying[8:] == b"abc"  # the real bytes are unchanged; only the header lies
    assert RecordReader().feed(lying) == []  # a reader waits for bytes that never come
    assert m.declare_length(record, 1)[4:6] == b"\x00\x01"
    with pytest.raises(CodecError):
        m.declare_length(REQUEST, 1)


def test_overstate_is_capped() -> None:
    record = m.max_size_record(RecordType.STDIN, 1, padding_length=0)
    assert m.overstate_length(record)[4:6] == b"\xff\xff"


def test_split_at() -> None:
    assert m.split_at(b"abcdef", [4, 2, 2, 0, 99]) == [b"ab", b"cd", b"ef"]
    assert b"".join(m.split_at(REQUEST, range(0, len(REQUEST), 3))) == REQUEST


def test_split_every_offset() -> None:
    splits = list(m.split_every_offset(b"abcd"))
    assert splits == [(1, [b"a", b"bcd"]), (2, [b"ab", b"cd"]), (3, [b"abc", b"d"])]


def test_one_byte_writes() -> None:
    pieces = m.one_byte_writes(REQUEST)
    assert len(pieces) == len(REQUEST) and all(len(p) == 1 for p in pieces) and b"".join(pieces) == REQUEST


def test_header_split_offsets() -> None:
    two = encode_record(RecordType.STDIN, 1, b"xyz") + encode_record(RecordType.STDIN, 1, b"")
    assert m.header_split_offsets(two) == [1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17, 18]


def test_interesting_ids() -> None:
    ids = m.interesting_ids(seed=7)
    assert ids[:3] == (1, 256, 65535)
    assert 2 <= ids[3] <= 65534 and ids[3] != 256
    assert m.interesting_ids(seed=7) == ids  # reproducible
    assert 0 in m.interesting_ids(include_zero=True)


def test_long_form_pairs_decode_to_the_same_pairs() -> None:
    pairs = [(b"SHORT", b"v"), (b"", b"")]
    body = m.long_form_params(pairs)
    assert body[:4] == b"\x80\x00\x00\x05" and body[4:8] == b"\x80\x00\x00\x01"
    assert decode_params(body) == pairs
    assert m.long_form_pair(b"N", b"V", name_long=False)[:5] == b"\x01\x80\x00\x00\x01"
    assert decode_params(m.long_form_params(pairs, values=False)) == pairs


def test_nv_length_bytes() -> None:
    assert m.nv_length_bytes(5, 4) == b"\x80\x00\x00\x05"
    assert m.nv_length_bytes(200, 1) == bytes([200 & 0x7F])


def test_max_size_record() -> None:
    record = m.max_size_record(RecordType.STDIN, 9)
    decoded = decode(record)[0]
    assert len(decoded.content) == MAX_CONTENT_LENGTH and len(decoded.padding) == 255
    assert set(decoded.padding) == {m.DEFAULT_PADDING_BYTE}


def test_duplicate_begin() -> None:
    first, second = m.duplicate_begin(5, Role.RESPONDER, 1)
    assert first == second and decode(first)[0].type == RecordType.BEGIN_REQUEST


def test_late_and_foreign_records() -> None:
    late = decode(b"".join(m.late_records(4)))
    assert {r.request_id for r in late} == {4}
    assert [r.type for r in late][-1] == RecordType.ABORT_REQUEST
    assert decode_params(late[0].content) == [(b"LATE", b"late")]
    foreign = decode(b"".join(m.foreign_id_records(9, b"X")))
    assert [(r.type, r.content) for r in foreign] == [
        (RecordType.STDIN, b"X"), (RecordType.STDIN, b""), (RecordType.ABORT_REQUEST, b"")
    ]


def test_unknown_management_types() -> None:
    records = decode(b"".join(m.unknown_management_records()))
    assert all(r.request_id == 0 for r in records)
    known = {int(t) for t in RecordType}
    assert not known & {r.type for r in records}
    assert decode(m.unknown_management_record(200, b"xy"))[0].content == b"xy"
