"""fuzz_http_response seeds: the committed responses in seeds/, and what the client suite's
misbehaving servers send.

fuzz_http_response reads 3 bytes before the response (fuzz_http_response.c): flags (bit 0: the
request was HEAD, bit 1: EOF after the input), a split step, a max_data. The files in seeds/ are
plain responses, readable as they are; the prefix is added here.

The scenario responses are not retyped: every client case of cases/client/ runs, as the client
suite runs it, against the reference client, and the bytes each scenario server hands to
ServerConn.send (the application bytes, before any TLS) are recorded per connection, with
whether the request answered was HEAD and whether the server closed. Each send is a seed, and so
is a connection's whole stream (a response followed by junk, a 1xx then the final response...).
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[3]

from harness.suite.case import import_case_module
from harness.clients.cases import ClientCase, ClientContext, cases_in_client_module
from harness.clients.adapters import ClientSpec, parse_client
from harness.clients.scenario_server import Handler, ScenarioServer, ServerConn, Step
from harness.clients.test_ca import test_pki

COMMITTED = Path(__file__).resolve().parent / "seeds"
PARALLEL_CASES = 4  # the cases mostly wait (gaps, idle timeouts): run a few at once
# How the server closing shows in the ledger when the scenario closed (not the harness at its end).
_SCENARIO_CLOSES = ("fin", "rst", "close_notify", "close_notify+fin", "close_notify (TCP open)")


def http_input(response: bytes, *, head: bool, eof: bool, limit: int) -> bytes:
    """A fuzz_http_response input: the prefix, then the response cut to limit bytes in all.

    The split step and max_data come from the response's hash, so a seed is the same from run to
    run but seeds differ in how the parser is fed (step 0 would compare a run with itself).
    """
    digest = hashlib.sha1(response).digest()
    flags = (1 if head else 0) | (2 if eof else 0)
    prefix = bytes([flags, 1 + digest[0] % 16, 1 + digest[1] % 8])
    return prefix + response[: limit - len(prefix)]


def committed_inputs(limit: int, directory: Path = COMMITTED) -> list[bytes]:
    """The committed responses, as inputs (EOF set: a close-delimited one needs it to end)."""
    files = sorted(p for p in directory.iterdir() if p.is_file())
    if not files:
        raise FileNotFoundError(f"{directory}: no committed HTTP seeds")
    return [http_input(p.read_bytes(), head=False, eof=True, limit=limit) for p in files]


@dataclass
class _Sent:
    data: bytes
    head: bool  # the last request read before it was a HEAD


@dataclass
class _ConnRecording:
    conn: ServerConn
    sent: list[_Sent] = field(default_factory=list)

    def add(self, data: bytes) -> None:
        if data:
            requests = self.conn.ledger.requests
            self.sent.append(_Sent(bytes(data), bool(requests) and requests[-1].method == "HEAD"))

    def inputs(self, limit: int) -> list[bytes]:
        if not self.sent:
            return []
        eof = self.conn.ledger.server_close in _SCENARIO_CLOSES
        last = len(self.sent) - 1
        # A send on its own is a seed when it is a response; junk and body pieces count in the stream.
        found = [http_input(s.data, head=s.head, eof=eof and i == last, limit=limit)
                 for i, s in enumerate(self.sent) if s.data.startswith(b"HTTP/")]
        if len(self.sent) > 1:
            whole = b"".join(s.data for s in self.sent)
            found.append(http_input(whole, head=self.sent[0].head, eof=eof, limit=limit))
        return found


class _RecordingContext(ClientContext):
    """A client case's context whose servers record what they send, connection by connection."""

    def __init__(self, case: ClientCase, spec: ClientSpec) -> None:
        super().__init__(case, spec)
        self.recordings: list[_ConnRecording] = []
        self._lock = threading.Lock()

    def server(self, script: Handler | Mapping[int | str, Sequence[Step]], **kwargs: Any) -> ScenarioServer:
        server = super().server(script, **kwargs)
        handler = server.handler

        def recording_handler(conn: ServerConn) -> None:
            recording = _ConnRecording(conn)
            with self._lock:
                self.recordings.append(recording)
            send, stream = conn.send, conn.stream_until_closed

            def recorded_send(data: bytes, **options: Any) -> None:
                recording.add(data)
                send(data, **options)

            def recorded_stream(chunk: bytes, seconds: float) -> bool:
                recording.add(chunk)  # once: the body repeats it until the client gives up
                return stream(chunk, seconds)

            conn.send = recorded_send  # type: ignore[method-assign]
            conn.stream_until_closed = recorded_stream  # type: ignore[method-assign]
            handler(conn)

        # No client has connected yet: every connection goes through the recording handler.
        server.handler = recording_handler
        return server


def client_cases(root: Path = ROOT) -> list[ClientCase]:
    cases: list[ClientCase] = []
    for path in sorted((root / "cases" / "client").glob("*.py")):
        cases += cases_in_client_module(import_case_module(path))
    return cases


def _run_recorded(case: ClientCase, spec: ClientSpec, limit: int) -> list[bytes]:
    ctx = _RecordingContext(case, spec)
    try:
        case.run(ctx)
    except Exception:  # a verdict or a harness hiccup: what was sent until then is still traffic
        pass
    finally:
        ctx.close_all()
    return [data for recording in ctx.recordings for data in recording.inputs(limit)]


def scenario_inputs(limit: int, root: Path = ROOT, client: str = "reference") -> dict[str, list[bytes]]:
    """{case id: inputs} from running every client case against the client (reference: the C one)."""
    spec = parse_client(client, root)
    cases = client_cases(root)
    test_pki()  # made once, before the cases race to make it
    with ThreadPoolExecutor(PARALLEL_CASES) as pool:
        results = pool.map(lambda case: _run_recorded(case, spec, limit), cases)
        return {case.id: found for case, found in zip(cases, results)}
