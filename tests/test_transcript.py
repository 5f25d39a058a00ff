"""Transcripts (format, round trip, errors), the recording proxy, pcap import, and the capture CLI."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from harness.replay import cli as cli_capture
from harness.wire.connection import request
from harness.wire.codec import (
    Record,
    RecordType,
    begin_request_body,
    encode_params,
    encode_record,
    end_request_body,
    stream_records,
)
from harness.capture.pcap_import import (
    MAX_SEGMENT,
    NoTrafficError,
    PcapError,
    import_pcap,
    transcript_to_frames,
    write_pcap,
)
from harness.wire.probe_app import probe_params
from harness.capture.recording_proxy import RecordingProxy
from harness.targets.base import ReferenceTarget, TcpTarget, reference_binary
from harness.capture.transcript import (
    APP_TO_WS,
    DIRECTIONS,
    WS_TO_APP,
    CloseItem,
    ConnectionBuilder,
    EventItem,
    RawItem,
    RecordItem,
    Transcript,
    TranscriptError,
    WriteItem,
    check_writes,
    format_transcript,
    parse_transcript,
    read_transcript,
)

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = sorted((ROOT / "fixtures" / "captures").glob("*/*.transcript"))
needs_reference = pytest.mark.skipif(not reference_binary(ROOT).exists(), reason="reference responder not built")


def sample_transcript() -> Transcript:
    """Every kind of item and content the format has."""
    builder = ConnectionBuilder(1, "127.0.0.1:40000", "127.0.0.1:9000")
    builder.opened(0)
    ws = (encode_record(RecordType.BEGIN_REQUEST, 1, begin_request_body(1, 1))
          + b"".join(stream_records(RecordType.PARAMS, 1, encode_params([("A", "b" * 200), ("Q", "x\n\"\\")])))
          + encode_record(RecordType.STDIN, 1, bytes(range(256)), padding=b"\x01\x02")
          + encode_record(RecordType.STDIN, 1, b"")
          + encode_record(RecordType.BEGIN_REQUEST, 2, begin_request_body(7, 0x82, b"\1\2\3\4\5"))
          + encode_record(RecordType.GET_VALUES, 0, encode_params([("FCGI_MAX_CONNS", "")]))
          + encode_record(200, 0, b"odd", version=2)
          + encode_record(RecordType.ABORT_REQUEST, 2))
    builder.data(WS_TO_APP, ws[:30], 1000)
    builder.data(WS_TO_APP, ws[30:], 2500)
    app = (encode_record(RecordType.STDOUT, 1, b"Status: 200\r\n\r\nhello\n", padding_length=3)
           + encode_record(RecordType.STDOUT, 1, b"")
           + encode_record(RecordType.END_REQUEST, 1, end_request_body(7, 0))
           + encode_record(RecordType.END_REQUEST, 2, end_request_body(0, 3)[:5] + b"zzz")
           + encode_record(RecordType.UNKNOWN_TYPE, 0, bytes([200]) + b"\0" * 7)
           + encode_record(RecordType.GET_VALUES_RESULT, 0, encode_params([("FCGI_MAX_CONNS", "10")]))
           + b"\x01\x06")
    builder.data(APP_TO_WS, app, 3000)
    builder.note("something worth saying", 3500)
    builder.end(WS_TO_APP, "FIN", 4000)
    builder.end(APP_TO_WS, "RST", 4001)
    connection = builder.finish(4002)
    second = ConnectionBuilder(2)
    second.data(WS_TO_APP, b"GET / HTTP/1.0\r\n\r\n", None)
    return Transcript([("source", "unit test"), ("http", "GET /"), ("empty", "")],
                      [connection, second.finish(None)])


def test_round_trip_is_exact() -> None:
    transcript = sample_transcript()
    text = format_transcript(transcript)
    parsed = parse_transcript(text)
    assert parsed == transcript
    assert format_transcript(parsed) == text
    # Without times the streams are the same, only the times are gone.
    untimed = parse_transcript(format_transcript(transcript, timing=False))
    for a, b in zip(transcript.connections, untimed.connections):
        for direction in DIRECTIONS:
            assert a.stream(direction) == b.stream(direction)
        assert all(item.time_us is None for item in b.items)


def test_text_shows_meaning() -> None:
    text = format_transcript(sample_transcript())
    assert "0.000 opened" in text
    assert "1.000 ws->app write 30" in text
    assert "ws->app BEGIN_REQUEST id=1 role=RESPONDER flags=KEEP_CONN" in text
    assert "BEGIN_REQUEST id=2 role=7 flags=0x82 reserved=0102030405" in text
    assert '    = "A" "bbbb' in text and '    + "bbbb' in text
    assert '    = "Q" "x\\n\\"\\\\"' in text
    assert "STDIN id=1 len=256 pad=2 padding=0102" in text and "    hex 000102" in text
    assert "app->ws END_REQUEST id=1 appStatus=7 protocolStatus=REQUEST_COMPLETE" in text
    assert "protocolStatus=UNKNOWN_ROLE reserved=7a7a7a" in text
    assert "ws->app type=200 id=0 version=2 len=3" in text
    assert "app->ws UNKNOWN_TYPE id=0 unknownType=200" in text
    assert "app->ws raw len=2" in text
    assert "4.000 ws->app FIN" in text and "4.001 app->ws RST" in text
    assert "3.500 note something worth saying" in text


def test_a_record_split_across_writes_follows_the_write_that_completed_it() -> None:
    connection = sample_transcript().connections[0]
    kinds = [type(item).__name__ for item in connection.items[:4]]
    assert kinds == ["EventItem", "WriteItem", "RecordItem", "WriteItem"]  # BEGIN (16 bytes) fit in the first 30
    assert check_writes(connection) == []
    assert isinstance(connection.items[-1], EventItem) and connection.items[-1].kind == "closed"
    assert any(isinstance(item, RawItem) and item.data == b"\x01\x06" for item in connection.items)


@pytest.mark.parametrize("text, line, message", [
    ("nonsense\n", 1, "fcgispec-transcript 1"),
    ("fcgispec-transcript 1\nno colon here\n", 2, "key: value"),
    ("fcgispec-transcript 1\n\n0.000 opened\n", 3, "before the first 'connection'"),
    ("fcgispec-transcript 1\n\nconnection x\n", 3, "connection N"),
    ("fcgispec-transcript 1\n\nconnection 1\nws->app STDOUT len=1\n", 4, "missing id="),
    ("fcgispec-transcript 1\n\nconnection 1\nws->app STDOUT id=1 len=2\n    \"a\"\n", 4, "len=2 but"),
    ("fcgispec-transcript 1\n\nconnection 1\nws->app STDOUT id=1 len=1\n    \"\\q\"\n", 5, "bad escape"),
    ("fcgispec-transcript 1\n\nconnection 1\nws->app STDOUT id=1 len=1\n    \"a\n", 5, "unterminated"),
    ("fcgispec-transcript 1\n\nconnection 1\nws->app STDOUT id=1 len=1\n    hex zz\n", 5, "bad hex"),
    ("fcgispec-transcript 1\n\nconnection 1\nws->app BOGUS id=1\n", 4, "unknown record type"),
    ("fcgispec-transcript 1\n\nconnection 1\nws->app type=6 id=1 len=0\n", 4, "written by name"),
    ("fcgispec-transcript 1\n\nconnection 1\nws->app BEGIN_REQUEST id=1 role=CHEF flags=0\n", 4, "unknown role"),
    ("fcgispec-transcript 1\n\nconnection 1\nsideways FIN\n", 4, "expected a time"),
    ("fcgispec-transcript 1\n\nconnection 1\nws->app write many\n", 4, "DIR write SIZE"),
    ("fcgispec-transcript 1\n\nconnection 1\n    \"a\"\n", 4, "content line without a record"),
    ("fcgispec-transcript 1\n\nconnection 1\nws->app PARAMS id=1 len=2\n    = \"a\"\n", 5, "quoted string"),
    ("fcgispec-transcript 1\n\nconnection 1\nws->app STDOUT id=1 len=0 pad=2 padding=00\n", 4, "pad=2"),
])
def test_malformed_input_names_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(TranscriptError) as raised:
        parse_transcript(text)
    assert raised.value.line_number == line
    assert str(raised.value).startswith(f"line {line}:")
    assert message in str(raised.value)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_captures_round_trip_and_carry_provenance(path: Path) -> None:
    text = path.read_text()
    transcript = parse_transcript(text)
    assert format_transcript(transcript) == text
    for key in ("source", "version", "config", "scenario", "http", "date", "tool", "config-file"):
        assert transcript.meta_values(key), f"{path}: no {key}: in the metadata"
    for connection in transcript.connections:
        assert check_writes(connection) == []


# -- the recording proxy -----------------------------------------------------------------------


@pytest.fixture
def reference() -> ReferenceTarget:
    if not reference_binary(ROOT).exists():
        pytest.skip("reference responder not built")
    target = ReferenceTarget(ROOT)
    target.start()
    yield target
    target.stop()


def test_proxy_records_both_directions_and_who_closed(reference: ReferenceTarget) -> None:
    proxy = RecordingProxy(("127.0.0.1", reference.port)).start()
    try:
        conn = TcpTarget(f"127.0.0.1:{proxy.port}").connect()
        for _ in range(2):
            response = request(conn, 1, probe_params(query="out=10"), b"hello")
            assert response.end is not None
        response = request(conn, 1, probe_params(query="out=5"), b"", keep_conn=False)
        assert conn.wait_closed(3) == "eof"
        conn.close()
        second = TcpTarget(f"127.0.0.1:{proxy.port}").connect()
        request(second, 1, probe_params(), b"")
        second.reset()
        assert proxy.wait_idle(3)
    finally:
        proxy.stop()
    transcript = proxy.transcript([("source", "test")])
    first, other = transcript.connections
    begins = [r for r in first.records(WS_TO_APP) if r.type == RecordType.BEGIN_REQUEST]
    ends = [r for r in first.records(APP_TO_WS) if r.type == RecordType.END_REQUEST]
    assert len(begins) == len(ends) == 3
    closes = first.close_items()
    assert (closes[0].direction, closes[0].how) == (APP_TO_WS, "FIN")  # the app closed first: KEEP_CONN clear
    assert (other.close_items()[0].direction, other.close_items()[0].how) == (WS_TO_APP, "RST")
    assert all(isinstance(i, WriteItem) for i in first.items if not isinstance(i, (RecordItem, CloseItem, EventItem)))
    assert check_writes(first) == []
    assert parse_transcript(format_transcript(transcript)) == transcript


def test_proxy_keeps_bytes_that_are_not_records(reference: ReferenceTarget) -> None:
    proxy = RecordingProxy(("127.0.0.1", reference.port)).start()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")  # HTTP to a FastCGI port: the app closes
            sock.settimeout(5)
            while sock.recv(4096):
                pass
        assert proxy.wait_idle(3)
    finally:
        proxy.stop()
    connection = proxy.transcript().connections[0]
    assert connection.stream(WS_TO_APP) == b"GET / HTTP/1.0\r\n\r\n"
    assert connection.close_items()[0].direction == APP_TO_WS


def test_proxy_notes_an_app_that_cannot_be_reached() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    proxy = RecordingProxy(("127.0.0.1", dead_port)).start()
    try:
        # The proxy drops the client once the app refuses; the reset may even reach
        # connect() itself on a loaded machine.
        try:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
                sock.settimeout(5)
                assert sock.recv(10) == b""
        except ConnectionResetError:
            pass
        time.sleep(0.1)
    finally:
        proxy.stop()
    items = proxy.transcript().connections[0].items
    assert any(isinstance(i, EventItem) and i.kind == "note" and "connect to the app failed" in i.text for i in items)


# -- pcap import -----------------------------------------------------------------------------------


def _shape(connection, origin: int) -> list[tuple]:
    return [(type(i).__name__, getattr(i, "direction", None), getattr(i, "how", None), getattr(i, "size", None),
             (i.time_us or 0) - origin) for i in connection.items if not isinstance(i, EventItem)]


@pytest.mark.parametrize("pcapng", [False, True], ids=["pcap", "pcapng"])
@pytest.mark.parametrize("damage", ["clean", "reordered", "retransmitted", "both"])
def test_synthetic_capture_imports_to_the_same_transcript(tmp_path: Path, pcapng: bool, damage: str) -> None:
    reorder = damage in ("reordered", "both")
    retransmit = damage in ("retransmitted", "both")
    for path in CAPTURES:
        original = read_transcript(path)
        port = int(original.connections[0].app_address.rpartition(":")[2])
        pcap = tmp_path / "capture.pcap"
        write_pcap(pcap, transcript_to_frames(original, reorder=reorder, retransmit=retransmit), pcapng=pcapng)
        imported = import_pcap(pcap, port)
        assert len(imported.connections) == len(original.connections), path
        origin = original.connections[0].items[0].time_us or 0
        for a, b in zip(original.connections, imported.connections):
            for direction in DIRECTIONS:
                assert a.stream(direction) == b.stream(direction), (path, direction)
            shape_a, shape_b = _shape(a, origin), _shape(b, 0)
            if reorder or any(isinstance(i, WriteItem) and i.size > MAX_SEGMENT for i in a.items):
                # Segment boundaries move; the closes, in order, may not.
                assert [s for s in shape_a if s[0] == "CloseItem"] == [s for s in shape_b if s[0] == "CloseItem"]
            else:
                assert shape_a == shape_b, path


def test_pcap_import_ignores_other_ports_and_rejects_other_files(tmp_path: Path) -> None:
    original = read_transcript(CAPTURES[0])
    pcap = tmp_path / "capture.pcap"
    write_pcap(pcap, transcript_to_frames(original))
    with pytest.raises(NoTrafficError, match="no TCP connection to or from port 1 "):
        import_pcap(pcap, 1)
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    with pytest.raises(PcapError):
        import_pcap(junk, 9000)


def test_pcap_gap_is_noted_and_bytes_after_it_kept(tmp_path: Path) -> None:
    builder = ConnectionBuilder(1, "127.0.0.1:40000", "127.0.0.1:9000")
    builder.opened(0)
    for index in range(3):
        builder.data(WS_TO_APP, encode_record(RecordType.STDIN, 1, bytes([65 + index]) * 10), 10 + index)
    builder.end(WS_TO_APP, "FIN", 20)
    builder.end(APP_TO_WS, "FIN", 21)
    frames = transcript_to_frames(Transcript([], [builder.finish(22)]))
    del frames[3]  # SYN, SYN-ACK, first segment, *second segment*, ...
    pcap = tmp_path / "gap.pcap"
    write_pcap(pcap, frames)
    connection = import_pcap(pcap, 9000).connections[0]
    notes = [i.text for i in connection.items if isinstance(i, EventItem) and i.kind == "note"]
    assert notes and "18 bytes missing" in notes[0]
    assert connection.stream(WS_TO_APP).endswith(b"C" * 10)


# -- the command line -----------------------------------------------------------------------------


def test_cli_import_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = read_transcript(CAPTURES[0])
    port = int(original.connections[0].app_address.rpartition(":")[2])
    pcap = tmp_path / "capture.pcapng"
    write_pcap(pcap, transcript_to_frames(original), pcapng=True)
    out = tmp_path / "imported.transcript"
    assert cli_capture.main(["import-pcap", str(pcap), "--port", str(port), "-o", str(out)]) == 0
    assert read_transcript(out).connections[0].stream(WS_TO_APP) == original.connections[0].stream(WS_TO_APP)
    exported = tmp_path / "report.txt"
    assert cli_capture.main(["export", str(out), "-o", str(exported), "--no-timing"]) == 0
    text = exported.read_text()
    assert "# connection 1:" in text and "closed first" in text
    assert parse_transcript(text).connections[0].stream(WS_TO_APP) == original.connections[0].stream(WS_TO_APP)
    bad = tmp_path / "bad.transcript"
    bad.write_text("fcgispec-transcript 1\n\nconnection 1\nws->app BOGUS id=1\n")
    assert cli_capture.main(["export", str(bad)]) == 4  # a usage error: the file is not a transcript
    assert "line 4:" in capsys.readouterr().err


def test_record_covers_records_too() -> None:
    # A Record built by hand and one parsed back are equal (frozen dataclasses compare by value).
    record = Record(RecordType.STDOUT, 1, b"x", b"\0" * 7)
    text = format_transcript(Transcript([], [_one_record_connection(record)]))
    assert parse_transcript(text).connections[0].records(APP_TO_WS) == [record]


def _one_record_connection(record: Record):
    builder = ConnectionBuilder(1)
    builder.data(APP_TO_WS, record.encode(), 5)
    return builder.finish(6)
