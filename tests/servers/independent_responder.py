#!/usr/bin/python3
"""A small, spec-correct FastCGI 1.0 Responder, written independently of fcgispec's harness.

It stands in for the servers fcgispec will be checked against: standard library only, and
it must not use fcgispec's own Python code (so that it shares no code, and no misreading,
with the tester).
Every Responder request is answered with a fixed CGI response once its STDIN has ended.

  independent_responder.py --port P          listen on 127.0.0.1:P
  independent_responder.py --listen ADDR     HOST:PORT or unix:PATH
  independent_responder.py                   serve the listening socket on fd 0 (spawn-fcgi)
  --mpx                  multiplex (FCGI_MPXS_CONNS=1); default one request per connection
  --max-conns N / --max-reqs N   advertised limits, enforced with FCGI_OVERLOADED
  --bug NAME             inject one real-world bug (repeatable); --bug list shows them
  --page fixed           the fixed CGI response (default)
  --page volatile-headers   the same body, with a Date, a Set-Cookie, an ETag and an X-Request-Id
                         header that change with every answer (as real applications' do)
  --page random          a body of random text, different every time, with nothing to mask

Choices where the spec leaves one: malformed input (bad version, a BEGIN body that is not
8 bytes, name-value lengths past the stream, web-server-bound record types for the active
request) closes that one connection; a BEGIN for id 0 and a duplicate BEGIN for the active
id are ignored; ABORT ends the request with an empty STDOUT and END_REQUEST; output
records are padded to a multiple of 8 bytes.
"""

from __future__ import annotations

import argparse
import base64
import email.utils
import os
import socket
import struct
import sys
import threading

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR, DATA = range(1, 9)
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
RESPONDER = 1
KEEP_CONN = 1
REQUEST_COMPLETE, CANT_MPX_CONN, OVERLOADED, UNKNOWN_ROLE = range(4)
HEADER = struct.Struct(">BBHHBB")
RESPONSE = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from the independent responder\n"

BUGS = {
    "go-id-reuse": "ids of finished requests stay in use: a BEGIN reusing one closes the connection (Go net/http/fcgi)",
    "keep-conn-ignored": "closes the connection after every request even with FCGI_KEEP_CONN",
    "get-values-close": "closes the connection after answering GET_VALUES (php-fpm bug #76922)",
    "get-values-id-1": "answers GET_VALUES with request id 1",
    "unknown-type-ignored": "sends no FCGI_UNKNOWN_TYPE for unknown management records",
    "unknown-role-close": "closes the connection on an unknown role instead of END_REQUEST{UNKNOWN_ROLE}",
    "unknown-role-served": "serves every role as a Responder",
    "reply-id-zero": "sends application records with request id 0 (urweb #57)",
    "no-empty-stdout": "never sends the empty STDOUT record that ends the stream",
    "end-request-twice": "sends END_REQUEST twice (php-fpm bug #67583)",
    "end-before-stdout": "sends END_REQUEST before the STDOUT records",
    "abort-ignored": "ignores FCGI_ABORT_REQUEST: the request waits for its STDIN to end",
    "padding-not-skipped": "does not skip the padding of inbound records (reads it as the next header)",
    "late-record-close": "closes the connection on a record for an inactive request id",
    "cant-mpx-close": "without --mpx, closes the connection on a second concurrent BEGIN_REQUEST",
}


class Malformed(Exception):
    """Input that cannot be a FastCGI stream: the connection is closed."""


def encode(record_type: int, request_id: int, content: bytes = b"") -> bytes:
    padding = -len(content) % 8  # recommended alignment (spec 3.3)
    return HEADER.pack(VERSION, record_type, request_id, len(content), padding, 0) + content + b"\0" * padding


def nv_length(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise Malformed("truncated name-value length")
    if data[offset] < 0x80:
        return data[offset], offset + 1
    if offset + 4 > len(data):
        raise Malformed("truncated 4-byte name-value length")
    return struct.unpack_from(">I", data, offset)[0] & 0x7FFFFFFF, offset + 4


def decode_pairs(data: bytes) -> list[tuple[bytes, bytes]]:
    pairs = []
    offset = 0
    while offset < len(data):
        name_length, offset = nv_length(data, offset)
        value_length, offset = nv_length(data, offset)
        if offset + name_length + value_length > len(data):
            raise Malformed("name-value pair longer than its stream")
        name = data[offset : offset + name_length]
        offset += name_length
        pairs.append((name, data[offset : offset + value_length]))
        offset += value_length
    return pairs


def encode_pairs(pairs: list[tuple[bytes, bytes]]) -> bytes:
    out = b""
    for name, value in pairs:
        for length in (len(name), len(value)):
            out += bytes([length]) if length < 128 else struct.pack(">I", length | 0x80000000)
        out += name + value
    return out


PAGES = ("fixed", "volatile-headers", "random")


def page(kind: str) -> bytes:
    """The CGI response to a request: fixed, or varying the way --page says."""
    if kind == "random":
        # Differs everywhere, every time, with no pattern a comparison could mask.
        return b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n" + base64.b64encode(os.urandom(48)) + b"\n"
    if kind == "volatile-headers":
        head, _, body = RESPONSE.partition(b"\r\n\r\n")
        volatile = (
            f"Date: {email.utils.formatdate(usegmt=True)}\r\nSet-Cookie: sid={os.urandom(8).hex()}; Path=/\r\n"
            f"ETag: \"{os.urandom(4).hex()}\"\r\nX-Request-Id: {os.urandom(16).hex()}\r\n"
        )
        return head + b"\r\n" + volatile.encode() + b"\r\n" + body
    return RESPONSE


class Server:
    def __init__(self, options: argparse.Namespace) -> None:
        self.page = options.page
        self.mpx = options.mpx
        self.max_conns = options.max_conns
        self.max_reqs = options.max_reqs
        self.bugs = set(options.bug)
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = 0
        allowed = os.environ.get("FCGI_WEB_SERVER_ADDRS", "").strip()
        self.allowed = {a.strip() for a in allowed.split(",") if a.strip()} if allowed else None

    def serve(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, peer = listener.accept()
            except InterruptedError:
                continue
            if self.allowed is not None and (not isinstance(peer, tuple) or peer[0] not in self.allowed):
                conn.close()  # spec 3.2: a peer not in FCGI_WEB_SERVER_ADDRS is closed on
                continue
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, sock: socket.socket) -> None:
        with self.lock:
            self.connections += 1
            overloaded = self.connections > self.max_conns
        try:
            Connection(self, sock, overloaded).run()
        except (OSError, Malformed):
            pass
        finally:
            with self.lock:
                self.connections -= 1
            try:
                sock.close()
            except OSError:
                pass

    def take_request_slot(self) -> bool:
        with self.lock:
            if self.requests >= self.max_reqs:
                return False
            self.requests += 1
            return True

    def release_request_slot(self) -> None:
        with self.lock:
            self.requests -= 1


class Request:
    def __init__(self, request_id: int, keep_conn: bool) -> None:
        self.id = request_id
        self.keep_conn = keep_conn
        self.params = b""
        self.params_done = False
        self.stdin_done = False


class Connection:
    def __init__(self, server: Server, sock: socket.socket, overloaded: bool) -> None:
        self.server = server
        self.sock = sock
        self.overloaded = overloaded
        self.bugs = server.bugs
        self.buffer = b""
        self.active: dict[int, Request] = {}
        self.finished: set[int] = set()  # only remembered for the go-id-reuse bug
        self.close_after = False

    def run(self) -> None:
        try:
            while not self.close_after:
                record = self.read_record()
                if record is None:
                    break
                self.dispatch(*record)
        finally:
            self.close()

    def read_record(self) -> tuple[int, int, int, bytes] | None:
        while True:
            if len(self.buffer) >= 8:
                version, record_type, request_id, length, padding, _ = HEADER.unpack_from(self.buffer)
                skip = 0 if "padding-not-skipped" in self.bugs else padding
                total = 8 + length + skip
                if len(self.buffer) >= total:
                    content = self.buffer[8 : 8 + length]
                    self.buffer = self.buffer[total:]
                    if version != VERSION:
                        raise Malformed(f"version {version}")
                    return record_type, request_id, length, content
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def app_id(self, request_id: int) -> int:
        return 0 if "reply-id-zero" in self.bugs else request_id

    def dispatch(self, record_type: int, request_id: int, length: int, content: bytes) -> None:
        if request_id == 0:
            self.management(record_type, content)
            return
        if record_type == BEGIN_REQUEST:
            self.begin(request_id, content)
            return
        request = self.active.get(request_id)
        if request is None:
            # spec 3.3: records for an inactive id are ignored.
            if "late-record-close" in self.bugs:
                self.close_after = True
            return
        if record_type == PARAMS:
            if request.params_done:
                return
            if content:
                request.params += content
                return
            decode_pairs(request.params)  # lengths past the stream are malformed input
            request.params_done = True
        elif record_type == STDIN:
            if request.stdin_done:
                return
            if not content:
                request.stdin_done = True
        elif record_type == ABORT_REQUEST:
            if "abort-ignored" not in self.bugs:
                self.finish(request, aborted=True)
            return
        elif record_type == DATA:
            return  # a Responder has no use for FCGI_DATA
        elif record_type in (END_REQUEST, STDOUT, STDERR, GET_VALUES_RESULT, UNKNOWN_TYPE):
            raise Malformed("a web-server-bound record type sent to the application")
        else:
            return  # unknown application record types: nothing defined, ignored
        if request.params_done and request.stdin_done:
            self.finish(request)

    def management(self, record_type: int, content: bytes) -> None:
        if record_type == GET_VALUES:
            values = {
                b"FCGI_MAX_CONNS": str(self.server.max_conns).encode(),
                b"FCGI_MAX_REQS": str(self.server.max_reqs).encode(),
                b"FCGI_MPXS_CONNS": b"1" if self.server.mpx else b"0",
            }
            asked = decode_pairs(content)
            answer = [(name, values[name]) for name, _ in asked if name in values]
            reply_id = 1 if "get-values-id-1" in self.bugs else 0
            self.send(encode(GET_VALUES_RESULT, reply_id, encode_pairs(answer)))
            if "get-values-close" in self.bugs:
                self.close_after = True
        elif record_type == BEGIN_REQUEST:
            return  # id 0 is not a request id; nothing sensible to answer
        elif "unknown-type-ignored" not in self.bugs:
            self.send(encode(UNKNOWN_TYPE, 0, bytes([record_type]) + b"\0" * 7))

    def begin(self, request_id: int, content: bytes) -> None:
        if len(content) != 8:
            raise Malformed("BEGIN_REQUEST body is not 8 bytes")
        role, flags = struct.unpack_from(">HB", content)
        keep_conn = bool(flags & KEEP_CONN)
        if request_id in self.active:
            return  # duplicate BEGIN for the active request: ignored
        if "go-id-reuse" in self.bugs and request_id in self.finished:
            raise Malformed("id already in flight")  # what Go said, and dropped the connection
        if self.active and not self.server.mpx:
            if "cant-mpx-close" in self.bugs:
                raise Malformed("second request")
            self.send(encode(END_REQUEST, self.app_id(request_id), struct.pack(">IB3x", 0, CANT_MPX_CONN)))
            return
        if role != RESPONDER and "unknown-role-served" not in self.bugs:
            if "unknown-role-close" in self.bugs:
                raise Malformed("unknown role")
            self.end(request_id, UNKNOWN_ROLE, keep_conn)
            return
        if self.overloaded or not self.server.take_request_slot():
            self.end(request_id, OVERLOADED, keep_conn)
            return
        self.active[request_id] = Request(request_id, keep_conn)

    def end(self, request_id: int, status: int, keep_conn: bool) -> None:
        self.send(encode(END_REQUEST, self.app_id(request_id), struct.pack(">IB3x", 0, status)))
        if not keep_conn:
            self.close_after = True

    def finish(self, request: Request, aborted: bool = False) -> None:
        del self.active[request.id]
        self.server.release_request_slot()
        if "go-id-reuse" in self.bugs:
            self.finished.add(request.id)
        rid = self.app_id(request.id)
        stdout = [] if aborted else [encode(STDOUT, rid, page(self.server.page))]
        if "no-empty-stdout" not in self.bugs:
            stdout.append(encode(STDOUT, rid, b""))
        end = encode(END_REQUEST, rid, struct.pack(">IB3x", 0, REQUEST_COMPLETE))
        if "end-before-stdout" in self.bugs:
            self.send(end + b"".join(stdout))
        else:
            self.send(b"".join(stdout) + end + (end if "end-request-twice" in self.bugs else b""))
        if not request.keep_conn or "keep-conn-ignored" in self.bugs:
            self.close_after = True

    def close(self) -> None:
        # A graceful close: FIN first, then read what the peer still sends, so the kernel
        # has no unread input that would turn the close into an RST (spec 3.5).
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(1.0)
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        for _ in self.active:
            self.server.release_request_slot()
        self.active.clear()


def listening_socket(options: argparse.Namespace) -> socket.socket:
    if options.port is not None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", options.port))
    elif options.listen is not None and options.listen.startswith("unix:"):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(options.listen[len("unix:") :])
    elif options.listen is not None:
        host, _, port = options.listen.rpartition(":")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host or "127.0.0.1", int(port)))
    else:
        # spec 2.2: a listening socket on FCGI_LISTENSOCK_FILENO (0).
        return socket.socket(fileno=0)
    listener.listen(128)
    return listener


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int)
    parser.add_argument("--listen")
    parser.add_argument("--mpx", action="store_true")
    parser.add_argument("--max-conns", type=int, default=100)
    parser.add_argument("--max-reqs", type=int, default=200)
    parser.add_argument("--bug", action="append", default=[])
    parser.add_argument("--page", choices=PAGES, default="fixed")
    options = parser.parse_args(argv)
    if "list" in options.bug:
        for name, text in BUGS.items():
            print(f"{name:22} {text}")
        return 0
    unknown = [b for b in options.bug if b not in BUGS]
    if unknown:
        parser.error(f"unknown --bug {unknown}; --bug list shows them")
    Server(options).serve(listening_socket(options))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
