"""The client connection against in-process peers: timeouts, EOF/RST, full duplex, the trace."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Callable, Iterator

import pytest

from harness.wire.connection import ConnectionClosed, FcgiConnection, ReadTimeout, TraceEntry, format_trace
from harness.wire.codec import Record, RecordType, end_request_body, encode_record


@pytest.fixture
def tcp_pair() -> Iterator[tuple[FcgiConnection, socket.socket]]:
    """A traced client connection and the raw peer socket at the other end."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        peer, _ = listener.accept()
    conn = FcgiConnection(client, label="test")
    yield conn, peer
    conn.close()
    peer.close()


def run_peer(action: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def test_read_timeout_is_prompt(tcp_pair) -> None:
    conn, _ = tcp_pair
    started = time.monotonic()
    with pytest.raises(ReadTimeout):
        conn.read_record(0.2)
    assert 0.15 < time.monotonic() - started < 1.0
    assert "timeout" in conn.trace[-1].describe()


def test_deadline_caps_every_wait() -> None:
    left, right = socket.socketpair()
    conn = FcgiConnection(left, deadline=lambda: time.monotonic() - 1)
    started = time.monotonic()
    with pytest.raises(ReadTimeout):
        conn.read_record(30)
    assert time.monotonic() - started < 0.5
    conn.close()
    right.close()


def test_records_then_eof(tcp_pair) -> None:
    conn, peer = tcp_pair
    peer.sendall(encode_record(RecordType.STDOUT, 1, b"hi") + encode_record(RecordType.END_REQUEST, 1, end_request_body(0, 0)) + b"\x01\x06")
    peer.shutdown(socket.SHUT_WR)
    response = conn.read_response(1, 2.0)
    assert response.stdout == b"hi" and response.end is not None
    with pytest.raises(ConnectionClosed) as closed:
        conn.read_record(2.0)
    assert closed.value.how == "eof"
    assert conn.wait_closed(0.1) == "eof"
    text = conn.format_trace()
    assert 'raw 2 bytes "\\x01\\x06"' in text and "< EOF" in text


def test_reset_is_told_apart(tcp_pair) -> None:
    conn, peer = tcp_pair
    # Linger 0 makes close() send RST instead of FIN.
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    assert conn.wait_closed(2.0) == "reset"
    assert "< RST" in conn.format_trace()


def test_wait_closed_open(tcp_pair) -> None:
    conn, peer = tcp_pair
    peer.sendall(encode_record(RecordType.STDOUT, 1, b"x"))
    assert conn.wait_closed(0.2) == "open"
    # Records that arrived while waiting are kept for the next read.
    assert conn.read_record(0.1) == Record(RecordType.STDOUT, 1, b"x")


def test_other_ids_kept_aside(tcp_pair) -> None:
    conn, peer = tcp_pair
    peer.sendall(
        encode_record(RecordType.STDOUT, 2, b"other")
        + encode_record(RecordType.STDOUT, 1, b"mine")
        + encode_record(RecordType.END_REQUEST, 1, end_request_body(7, 0))
    )
    response = conn.read_response(1, 2.0)
    assert response.stdout == b"mine"
    assert response.end is not None and response.end.app_status == 7
    assert [r.request_id for r in response.other_records] == [2]
    # ...and a later read of request 2 gets what arrived for it meanwhile.
    peer.sendall(encode_record(RecordType.END_REQUEST, 2, end_request_body(0, 0)))
    second = conn.read_response(2, 2.0)
    assert second.stdout == b"other" and second.end is not None


def test_interleaved_responses_read_in_any_order(tcp_pair) -> None:
    conn, peer = tcp_pair
    stream = b""
    for request_id in (1, 2, 3):
        stream += encode_record(RecordType.STDOUT, request_id, b"part1-%d" % request_id)
    for request_id in (3, 2, 1):
        stream += encode_record(RecordType.STDOUT, request_id, b"part2-%d" % request_id)
        stream += encode_record(RecordType.END_REQUEST, request_id, end_request_body(request_id, 0))
    peer.sendall(stream)
    for request_id in (2, 1, 3):
        response = conn.read_response(request_id, 2.0)
        assert response.stdout == b"part1-%d" % request_id + b"part2-%d" % request_id
        assert response.end is not None and response.end.app_status == request_id


def test_dribble_one_byte_per_send(tcp_pair) -> None:
    conn, peer = tcp_pair
    data = encode_record(RecordType.STDIN, 1, b"dribbled")
    conn.send_raw(data, write_size=1)
    peer.settimeout(2.0)
    received = b""
    while len(received) < len(data):
        received += peer.recv(100)
    assert received == data
    assert conn.trace[0].describe().endswith('STDIN id=1 len=8 "dribbled"')


def test_full_duplex_large_stdin_to_echoing_peer(tcp_pair) -> None:
    """20 MB to a peer that echoes everything: only works if the client reads while it sends."""
    conn, peer = tcp_pair
    size = 20 * 1024 * 1024

    def echo() -> None:
        peer.settimeout(20)
        try:
            while True:
                chunk = peer.recv(1 << 16)
                if not chunk:
                    break
                peer.sendall(chunk)
        except OSError:
            pass

    run_peer(echo)
    body = bytes(range(256)) * (size // 256)
    conn.stdin(1, body)
    received = 0
    while True:
        record = conn.read_record(10.0)
        received += len(record.content)
        if not record.content:
            break
    assert received == size


def test_send_to_closed_peer_raises_connection_closed(tcp_pair) -> None:
    conn, peer = tcp_pair
    peer.close()
    assert conn.wait_closed(2.0) == "eof"
    with pytest.raises(ConnectionClosed):
        for _ in range(100):
            conn.stdin(1, b"x" * 65535, terminate=False)


def test_format_trace_keeps_head_and_tail() -> None:
    entries = [TraceEntry(float(i), ">", Record(RecordType.STDIN, 1, b"")) for i in range(500)]
    text = format_trace(entries, limit=10, label="c")
    lines = text.splitlines()
    assert lines[0] == "  [c]"
    assert "490 entries omitted" in text
    assert len(lines) == 1 + 10 + 1
    assert lines[1] == "       0.0ms > STDIN id=1 len=0"


def test_trace_shows_sent_and_received_records(tcp_pair) -> None:
    conn, peer = tcp_pair
    conn.begin(1)
    peer.sendall(encode_record(RecordType.END_REQUEST, 1, end_request_body(0, 0)))
    conn.read_record(2.0)
    conn.note("a remark")
    lines = conn.format_trace().splitlines()
    assert lines[1].endswith("> BEGIN_REQUEST id=1 role=RESPONDER flags=KEEP_CONN")
    assert lines[2].endswith("< END_REQUEST id=1 appStatus=0 protocolStatus=REQUEST_COMPLETE")
    assert lines[3].endswith("! a remark")


def test_send_chunks_writes_pieces_and_traces_records(tcp_pair) -> None:
    conn, peer = tcp_pair
    data = encode_record(RecordType.STDIN, 1, b"abc") + encode_record(RecordType.STDIN, 1, b"")
    conn.send_chunks([data[:3], data[3:9], data[9:]], pause=0.01)
    received = b""
    peer.settimeout(2)
    while len(received) < len(data):
        received += peer.recv(100)
    assert received == data
    assert [r.content for r in conn.trace_records(">")] == [b"abc", b""]
    assert any("3 pieces of 3, 6, " in entry.describe() for entry in conn.trace)


def test_trace_records_lists_received_records_even_when_consumed(tcp_pair) -> None:
    conn, peer = tcp_pair
    peer.sendall(encode_record(RecordType.STDOUT, 1, b"x") + encode_record(RecordType.END_REQUEST, 1, end_request_body(0, 0)))
    conn.read_response(1, timeout=2)
    assert [r.type for r in conn.trace_records()] == [RecordType.STDOUT, RecordType.END_REQUEST]
