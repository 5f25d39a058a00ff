#!/usr/bin/python3
"""Hostile FastCGI "applications": each misbehaves in one way, so that the harness can be shown to end
every case with a verdict, within its timeout, whatever the target does. Written without the harness.

    hostile.py MODE [--port PORT]

Without --port it serves the listening socket inherited on fd 0 (spawn-fcgi style: what a
`--target 'cmd:/usr/bin/python3 tests/hostile/hostile.py MODE'` gets). Modes:

  no-accept     listens but never calls accept(): connections pile up in the backlog
  silent        accepts and reads everything, never writes a byte, never closes
  hang          answers the first request on each connection properly, then reads and never answers again
  crash         on the first request, writes half of a STDOUT record header and dies of SIGSEGV
  garbage       answers every read with random bytes (not FastCGI records)
  huge-length   answers with a STDOUT header announcing 65535 bytes, sends 10 of them, then nothing
  trickle       a correct answer, written one byte per second
  reset         closes every connection with an RST (SO_LINGER 0) as soon as something arrives
  leak          a correct responder that never closes connections the peer closed (one fd per
                connection) and keeps 64 KiB per request (an RSS leak)
  ok            a correct, minimal responder (the control): every request gets a 200 and END_REQUEST
  http          an HTTP server: answers whatever arrives with "HTTP/1.1 400 Bad Request" and closes
  close         closes every connection as soon as it is accepted, without reading
  half-header   answers a request with the first 4 bytes of a STDOUT record header, then nothing

A correct answer is `Status: 200 OK` with a short body, STDOUT, empty STDOUT, END_REQUEST; management
records (GET_VALUES) are answered by the modes that answer anything. Threads, one per connection.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import sys
import threading
import time

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR, DATA, GET_VALUES, GET_VALUES_RESULT, UNKNOWN = range(1, 12)
LEAKED: list[object] = []


def header(kind: int, request_id: int, length: int, padding: int = 0) -> bytes:
    return struct.pack(">BBHHBx", 1, kind, request_id, length, padding)


def record(kind: int, request_id: int, content: bytes = b"") -> bytes:
    return header(kind, request_id, len(content)) + content


def answer(request_id: int) -> bytes:
    body = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhostile target says ok\n"
    return (record(STDOUT, request_id, body) + record(STDOUT, request_id)
            + record(END, request_id, struct.pack(">IB3x", 0, 0)))


def nv(name: bytes, value: bytes) -> bytes:
    def length(n: int) -> bytes:
        return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
    return length(len(name)) + length(len(value)) + name + value


def get_values_result() -> bytes:
    return record(GET_VALUES_RESULT, 0, nv(b"FCGI_MAX_CONNS", b"100") + nv(b"FCGI_MAX_REQS", b"100")
                  + nv(b"FCGI_MPXS_CONNS", b"0"))


class Records:
    """Splits a byte stream into (type, id, content) records."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        self.buffer += data
        out = []
        while len(self.buffer) >= 8:
            _, kind, request_id, length, padding = struct.unpack(">BBHHBx", self.buffer[:8])
            if len(self.buffer) < 8 + length + padding:
                break
            out.append((kind, request_id, self.buffer[8 : 8 + length]))
            self.buffer = self.buffer[8 + length + padding :]
        return out


def completed_requests(records: list[tuple[int, int, bytes]]) -> list[int]:
    """Ids whose STDIN ended (an empty STDIN record) in these records."""
    return [request_id for kind, request_id, content in records if kind == STDIN and not content]


def serve_correctly(conn: socket.socket, mode: str) -> None:
    """A minimal correct responder loop, with the hang / trickle / leak twists."""
    parser = Records()
    answered = 0
    keep: dict[int, bool] = {}
    while True:
        data = conn.recv(65536)
        if not data:
            if mode == "leak":
                LEAKED.append(conn)  # never closed: the fd leaks
                return
            conn.close()
            return
        for kind, request_id, content in parser.feed(data):
            if kind == GET_VALUES and request_id == 0 and mode != "hang":
                conn.sendall(get_values_result())
            elif kind == BEGIN and len(content) == 8:
                keep[request_id] = bool(content[2] & 1)
            elif kind == STDIN and not content:
                if mode == "hang" and answered >= 1:
                    continue
                answered += 1
                if mode == "leak":
                    LEAKED.append(bytearray(os.urandom(1)) * 65536)
                reply = answer(request_id)
                if mode == "trickle":
                    for i in range(len(reply)):
                        conn.sendall(reply[i : i + 1])
                        time.sleep(1.0)
                else:
                    conn.sendall(reply)
                if not keep.get(request_id, False):
                    if mode == "leak":
                        LEAKED.append(conn)
                        return
                    conn.close()
                    return


def handle(conn: socket.socket, mode: str) -> None:
    try:
        if mode == "silent":
            while conn.recv(65536):
                pass
            time.sleep(3600)  # the peer closed: keep our end open anyway
        elif mode in ("crash", "half-header"):
            # Half a record header in answer to a whole request; then crash dies, half-header stalls.
            parser = Records()
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                if completed_requests(parser.feed(data)):
                    conn.sendall(header(STDOUT, 1, 100)[:4])
                    if mode == "crash":
                        os.kill(os.getpid(), signal.SIGSEGV)
        elif mode == "garbage":
            while True:
                data = conn.recv(65536)
                if not data:
                    conn.close()
                    return
                conn.sendall(os.urandom(max(len(data), 64)))
        elif mode == "huge-length":
            parser = Records()
            while True:
                data = conn.recv(65536)
                if not data:
                    conn.close()
                    return
                for request_id in completed_requests(parser.feed(data)):
                    conn.sendall(header(STDOUT, request_id, 65535) + b"Status: 2")
        elif mode == "http":
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            conn.close()
        elif mode == "close":
            conn.close()
        elif mode == "reset":
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
        else:  # ok, hang, trickle, leak
            serve_correctly(conn, mode)
    except OSError:
        try:
            conn.close()
        except OSError:
            pass


def main() -> int:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    mode = args[0]
    if mode not in ("no-accept", "silent", "hang", "crash", "garbage", "huge-length", "trickle", "reset", "leak", "ok",
                    "http", "close", "half-header"):
        print(f"hostile.py: unknown mode {mode!r}", file=sys.stderr)
        return 2
    if "--port" in args:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", int(args[args.index("--port") + 1])))
        listener.listen(128)
    else:
        listener = socket.socket(fileno=0)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if mode == "no-accept":
        while True:
            time.sleep(3600)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn, mode), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
