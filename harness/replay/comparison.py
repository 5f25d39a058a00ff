"""Comparing two captures by meaning: what each request asked (role, flags, params, body) and how it
was answered (status line, protocolStatus), and who closed first; not the bytes that may differ
between equivalent runs (record splitting, padding, times, write pieces, ports).

compare_meaning(expected, actual) checks a new capture of a scenario (harness/capture/webservers.py)
against the golden one, or a pcap import against the proxy's recording of the same traffic.
"""

from __future__ import annotations

import difflib
import hashlib

from harness.wire.codec import CodecError, RecordType, decode_params
from harness.capture.transcript import WS_TO_APP, Connection, RecordItem, Transcript
from harness.replay.plan import CapturedRequest, plan_connection

# Params that differ between two runs of the same scenario (ports are picked at run time).
VOLATILE_PARAMS = frozenset({b"REMOTE_PORT", b"SERVER_PORT", b"HTTP_HOST", b"SERVER_ADDR", b"REMOTE_ADDR"})


def meaning(transcript: Transcript, volatile: frozenset[bytes] = VOLATILE_PARAMS) -> list[tuple[str, ...]]:
    """What a capture says, without bytes that may differ between equivalent runs.

    One tuple per connection, sorted (concurrent connections open in any order): per
    request its role, flags, params (volatile values masked), stdin length and digest,
    whether it was aborted; the answer's status line and protocolStatus; who closed first
    (unless both sides were meant to close).
    Record splitting, padding, times and write pieces are left out.
    """
    summaries = []
    for connection in transcript.connections:
        plan = plan_connection(connection)
        lines: list[str] = []
        ws_records = connection.records(WS_TO_APP)
        for captured in plan.requests:
            params = b"".join(r.content for r in ws_records if r.type == RecordType.PARAMS
                              and r.request_id == captured.request_id)
            stdin = b"".join(r.content for r in ws_records if r.type == RecordType.STDIN
                             and r.request_id == captured.request_id)
            if sum(1 for r in plan.requests if r.request_id == captured.request_id) > 1:
                # Several requests shared the id on this connection: split the streams by request.
                params, stdin = _streams_of(connection, captured)
            try:
                pairs = [f"{n.decode('latin-1')}={'*' if n in volatile else v.decode('latin-1')}"
                         for n, v in decode_params(params)]
            except CodecError:
                pairs = [f"undecodable params {len(params)} bytes"]
            status = bytes(captured.stdout).split(b"\r\n", 1)[0].decode("latin-1") if captured.stdout else "-"
            end = captured.end.describe() if captured.end else "no END_REQUEST"
            lines.append(f"request id={captured.request_id} keep_conn={captured.keep_conn} aborted={captured.aborted} "
                         f"params=[{', '.join(pairs)}] stdin={len(stdin)}:{hashlib.sha256(stdin).hexdigest()[:16]} "
                         f"answer=[{status}] stderr={len(captured.stderr)} {end}")
        lines.append(_closing(connection, plan.requests))
        summaries.append(tuple(lines))
    return sorted(summaries)


def _closing(connection: Connection, requests: list[CapturedRequest]) -> str:
    """Who closed first and how, where that is decided by the protocol and not by timing.

    After an END_REQUEST for a request without KEEP_CONN both sides are meant to close (the
    application must, and the web server has no further use for the connection), so which FIN
    is seen first is a race: only how the connection was closed is kept.
    """
    first = connection.closed_first()
    if first is None:
        return "never closed"
    last = requests[-1] if requests else None
    if last is not None and not last.keep_conn and last.end is not None:
        return f"closed after END_REQUEST without KEEP_CONN: {first.how}"
    return f"closed first: {first.direction.split('->')[0]} {first.how}"


def _streams_of(connection: Connection, captured: CapturedRequest) -> tuple[bytes, bytes]:
    """PARAMS and STDIN of one request, where its id is shared with other requests on the connection."""
    params, stdin = bytearray(), bytearray()
    current = 0
    for item in connection.items:
        if not isinstance(item, RecordItem) or item.direction != WS_TO_APP:
            continue
        record = item.record
        if record.type == RecordType.BEGIN_REQUEST and record.request_id == captured.request_id:
            current += 1
        if current != captured.number_with_id or record.request_id != captured.request_id:
            continue
        if record.type == RecordType.PARAMS:
            params += record.content
        elif record.type == RecordType.STDIN:
            stdin += record.content
    return bytes(params), bytes(stdin)


def compare_meaning(expected: Transcript, actual: Transcript) -> list[str]:
    """Differences in meaning between two captures ([] when they say the same)."""
    want = ["\n".join(c) for c in meaning(expected)]
    got = ["\n".join(c) for c in meaning(actual)]
    if want == got:
        return []
    return list(difflib.unified_diff("\n\n".join(want).splitlines(), "\n\n".join(got).splitlines(),
                                     "expected", "actual", lineterm="", n=1))
