"""What a replay sends, from a transcript: the web server's steps on each connection and the answers
the capture holds.

plan_connection cuts a connection's web-server side into steps: flights (the bytes the web server
sent between two things the application sent), or (writes=True) the captured write pieces, and its
closes (FIN/RST). Each step notes how far the captured application had got before it (output started
/ END_REQUEST sent, per request; management answers), so that a replay can wait for the target to get
as far before sending it. The requests of the connection (in BEGIN_REQUEST order) keep what the
capture answered them: stdout, stderr and END_REQUEST.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.wire.codec import (
    KEEP_CONN,
    MANAGEMENT_REQUEST_ID,
    CodecError,
    EndRequest,
    Record,
    RecordType,
    decode_end_request,
    type_name,
)
from harness.capture.transcript import WS_TO_APP, CloseItem, Connection, RecordItem, WriteItem

# How far a request has got: nothing yet, output (STDOUT/STDERR) started, END_REQUEST sent.
NO_OUTPUT, OUTPUT, ENDED = 0, 1, 2


@dataclass
class CapturedRequest:
    number: int  # 1-based, per connection, in BEGIN_REQUEST order
    request_id: int
    keep_conn: bool
    begin_position: int
    begin_end_offset: int  # where the BEGIN_REQUEST ends in the web server's stream
    reused_from: int | None = None  # number of an earlier, finished request with the same id
    number_with_id: int = 1  # this is the n-th request with its id on the connection
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    end: EndRequest | None = None
    aborted: bool = False
    ws_records: list[tuple[int, str]] = field(default_factory=list)  # (end offset, type name)


@dataclass
class Step:
    """One thing the web server did: send bytes, or close (FIN/RST)."""

    position: int  # index of its first item in connection.items
    kind: str  # 'send', 'FIN', 'RST'
    data: bytes = b""
    time_us: int | None = None
    stages: dict[int, int] = field(default_factory=dict)  # request number -> stage reached in the capture
    management: dict[int, int] = field(default_factory=dict)  # record type -> count, id 0 answers


@dataclass
class Plan:
    connection: Connection
    requests: list[CapturedRequest]
    steps: list[Step]
    app_close_positions: list[int]


def plan_connection(connection: Connection, *, writes: bool = False) -> Plan:
    """The web server's steps and the captured answers of one connection."""
    ws_stream = connection.stream(WS_TO_APP)
    use_writes = writes and any(isinstance(i, WriteItem) and i.direction == WS_TO_APP for i in connection.items)
    requests: list[CapturedRequest] = []
    by_id: dict[int, CapturedRequest] = {}
    steps: list[Step] = []
    stages: dict[int, int] = {}
    management: dict[int, int] = {}
    app_closes: list[int] = []
    flight: Step | None = None
    offset = 0  # bytes of the web server's stream seen so far (records and raw)
    write_offset = 0

    def new_step(position: int, kind: str, time_us: int | None) -> Step:
        step = Step(position, kind, time_us=time_us, stages=dict(stages), management=dict(management))
        steps.append(step)
        return step

    for position, item in enumerate(connection.items):
        if getattr(item, "direction", None) == WS_TO_APP:
            if isinstance(item, WriteItem):
                if use_writes:
                    step = new_step(position, "send", item.time_us)
                    step.data = ws_stream[write_offset : write_offset + item.size]
                    write_offset += item.size
                continue
            if isinstance(item, CloseItem):
                flight = None
                new_step(position, item.how, item.time_us)
                continue
            data = item.record.encode() if isinstance(item, RecordItem) else item.data  # a RawItem
            if not use_writes:
                if flight is None:
                    flight = new_step(position, "send", item.time_us)
                flight.data += data
            offset += len(data)
            if isinstance(item, RecordItem):
                _note_ws_record(item.record, position, offset, requests, by_id)
            continue
        flight = None
        if isinstance(item, CloseItem):
            app_closes.append(position)
        elif isinstance(item, RecordItem):
            record = item.record
            if record.request_id == MANAGEMENT_REQUEST_ID:
                management[record.type] = management.get(record.type, 0) + 1
                continue
            request = by_id.get(record.request_id)
            if request is None:
                continue
            if record.type in (RecordType.STDOUT, RecordType.STDERR):
                stages[request.number] = max(stages.get(request.number, NO_OUTPUT), OUTPUT)
                (request.stdout if record.type == RecordType.STDOUT else request.stderr).extend(record.content)
            elif record.type == RecordType.END_REQUEST:
                stages[request.number] = ENDED
                try:
                    request.end = decode_end_request(record.content)
                except CodecError:
                    request.end = EndRequest(0, -1)
    return Plan(connection, requests, steps, app_closes)


def _note_ws_record(record: Record, position: int, end_offset: int, requests: list[CapturedRequest],
                    by_id: dict[int, CapturedRequest]) -> None:
    if record.type == RecordType.BEGIN_REQUEST and record.request_id != MANAGEMENT_REQUEST_ID:
        flags = record.content[2] if len(record.content) > 2 else 0
        earlier = by_id.get(record.request_id)
        request = CapturedRequest(len(requests) + 1, record.request_id, bool(flags & KEEP_CONN), position, end_offset,
                                  reused_from=earlier.number if earlier is not None and earlier.end is not None else None,
                                  number_with_id=1 + sum(1 for r in requests if r.request_id == record.request_id))
        requests.append(request)
        by_id[record.request_id] = request
    request = by_id.get(record.request_id)
    if request is None or record.request_id == MANAGEMENT_REQUEST_ID:
        return
    request.ws_records.append((end_offset, type_name(record.type)))
    if record.type == RecordType.ABORT_REQUEST:
        request.aborted = True

