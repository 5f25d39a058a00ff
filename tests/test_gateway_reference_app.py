"""The reference responder as a gateway case's application (harness/gateways/reference_app.py): every
connection passed through byte for byte, both directions in the ledger, a misframed answer described
as such, and the responder stopped with the case."""

from __future__ import annotations

import socket
import time

import pytest

from harness.gateways.application import ScriptedApp
from harness.gateways.reference_app import ReferenceApplication
from harness.verdicts import HarnessError
from harness.wire.codec import KEEP_CONN, Record, RecordReader, RecordType, begin_request_body, encode_params


def _request(request_id: int, query: str) -> bytes:
    params = encode_params([("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/r"), ("REQUEST_URI", f"/r?{query}"),
                            ("QUERY_STRING", query), ("SERVER_PROTOCOL", "HTTP/1.1")])
    records = [Record(RecordType.BEGIN_REQUEST, request_id, begin_request_body(1, KEEP_CONN)),
               Record(RecordType.PARAMS, request_id, params), Record(RecordType.PARAMS, request_id, b""),
               Record(RecordType.STDIN, request_id, b"")]
    return b"".join(r.encode() for r in records)


def _read_until(sock: socket.socket, done, timeout: float = 5.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while time.monotonic() < deadline and not done(data):
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    return data


def _ends(count: int):
    return lambda data: sum(1 for r in RecordReader().feed(data) if r.type == RecordType.END_REQUEST) >= count


def test_relay_passes_the_responder_answer_through_and_records_both_directions() -> None:
    reference = ReferenceApplication([])
    app = ScriptedApp(reference.script())
    try:
        with socket.create_connection((app.host, app.port)) as sock:
            sock.sendall(_request(1, "out=26"))
            answer = _read_until(sock, _ends(1))
            assert b"abcdefghijklmnopqrstuvwxyz" in answer
            assert app.wait_for(lambda a: bool(a.requests()) and a.requests()[0].ended_at is not None, 2.0)
        ledger = app.connections()[0]
        assert any(r.type == RecordType.BEGIN_REQUEST for _, r in ledger.received)
        assert any("END_REQUEST" in what for _, what in ledger.sent)
    finally:
        app.stop()
        reference.stop()
    assert reference.target.exit_status() is not None, "the responder outlives its case"


def test_a_misframed_answer_is_described_where_the_records_stop_parsing() -> None:
    reference = ReferenceApplication(["misframe-on-reuse"])
    app = ScriptedApp(reference.script())
    try:
        with socket.create_connection((app.host, app.port)) as sock:
            sock.sendall(_request(1, "out=10"))
            _read_until(sock, _ends(1))
            sock.sendall(_request(1, "out=10"))
            time.sleep(0.5)
        assert app.wait_for(lambda a: any("stop parsing" in what for c in a.connections() for _, what in c.sent), 2.0), \
            app.describe()
    finally:
        app.stop()
        reference.stop()


def test_an_unknown_fault_mode_is_the_harness_error_it_is() -> None:
    with pytest.raises(HarnessError, match="no fault mode no-such-fault"):
        ReferenceApplication(["no-such-fault"])
