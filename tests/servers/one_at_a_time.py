#!/usr/bin/python3
"""A FastCGI Responder that serves one connection at a time, written without fcgispec's harness.

It behaves as php-cgi -b does (FCGI_MAX_CONNS=1, FCGI_MAX_REQS=1, FCGI_MPXS_CONNS=0): accept(),
serve that connection until it ends, then accept() the next. A connection ends when the web
server closes it, or after a request without FCGI_KEEP_CONN: then the server shuts its side
down and reads until the web server closes too (php's fcgi_close), however long that takes,
so a web server that keeps its side open holds up every later connection.

  one_at_a_time.py --port P | --listen unix:PATH | (nothing: the listening socket on fd 0)
  --max-requests N      exit with status 0 after N requests (PHP_FCGI_MAX_REQUESTS)
  --no-stdin-wait       answer once PARAMS end, without reading STDIN (PHP without CONTENT_LENGTH)
  --no-padding          never pad a record; the response is then a multiple of 8 bytes long and
                        GET_VALUES is not answered (each of its answers would be unaligned)
  --on-malformed HOW    a record whose version is not 1: close (the connection, default),
                        exit:N (exit with status N) or abort (SIGABRT)
  --children N          fork N children that call setsid() and serve the listening socket,
                        as php-cgi does with PHP_FCGI_CHILDREN; the parent only waits
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import struct
import sys

BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN = 1, 2, 3, 4, 5
STDOUT, GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 6, 9, 10, 11
KEEP_CONN = 1
REQUEST_COMPLETE, CANT_MPX_CONN = 0, 1
HEADER = struct.Struct(">BBHHBB")
# 48 bytes: a multiple of 8, so that unpadded records happen to be aligned.
RESPONSE = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\none\n"


class Server:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.served = 0

    def record(self, record_type: int, request_id: int, content: bytes = b"") -> bytes:
        padding = 0 if self.options.no_padding else -len(content) % 8
        return HEADER.pack(1, record_type, request_id, len(content), padding, 0) + content + b"\0" * padding

    def serve(self, listener: socket.socket) -> None:
        while True:
            conn, _ = listener.accept()
            with conn:
                try:
                    self.serve_connection(conn)
                except OSError:
                    pass  # the web server reset the connection: on to the next one

    def serve_connection(self, conn: socket.socket) -> None:
        buffer = b""
        active: int | None = None
        keep_conn = True
        answered = False
        while True:
            while len(buffer) < 8 or len(buffer) < 8 + HEADER.unpack_from(buffer)[3] + HEADER.unpack_from(buffer)[4]:
                data = conn.recv(65536)
                if not data:
                    return  # the web server closed: accept the next connection
                buffer += data
            version, record_type, request_id, length, padding, _ = HEADER.unpack_from(buffer)
            content = buffer[8 : 8 + length]
            buffer = buffer[8 + length + padding :]
            if version != 1:
                self.malformed(conn)
                return
            if request_id == 0:
                self.management(conn, record_type, content)
                continue
            if record_type == BEGIN_REQUEST:
                if active is not None:
                    conn.sendall(self.record(END_REQUEST, request_id, struct.pack(">IB3x", 0, CANT_MPX_CONN)))
                    continue
                active, keep_conn, answered = request_id, bool(content[2] & KEEP_CONN), False
                continue
            if request_id != active:
                continue  # an inactive id: ignored
            ready = (record_type == PARAMS and not content and self.options.no_stdin_wait) or (
                record_type == STDIN and not content
            ) or record_type == ABORT_REQUEST
            if not ready or answered:
                continue
            answered = True
            body = b"" if record_type == ABORT_REQUEST else RESPONSE
            conn.sendall(
                (self.record(STDOUT, request_id, body) if body else b"")
                + self.record(STDOUT, request_id)
                + self.record(END_REQUEST, request_id, struct.pack(">IB3x", 0, REQUEST_COMPLETE))
            )
            active = None
            self.served += 1
            if self.options.max_requests and self.served >= self.options.max_requests:
                conn.close()
                os._exit(0)
            if not keep_conn:
                # php's fcgi_close: FIN, then read until the web server closes too.
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass
                return

    def management(self, conn: socket.socket, record_type: int, content: bytes) -> None:
        if record_type == GET_VALUES:
            if not self.options.no_padding:
                pairs = b"".join(bytes([len(n), 1]) + n + b"1" for n in (b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS"))
                pairs += bytes([15, 1]) + b"FCGI_MPXS_CONNS0"
                conn.sendall(self.record(GET_VALUES_RESULT, 0, pairs))
        else:
            conn.sendall(self.record(UNKNOWN_TYPE, 0, bytes([record_type]) + b"\0" * 7))

    def malformed(self, conn: socket.socket) -> None:
        how = self.options.on_malformed
        if how.startswith("exit:"):
            os._exit(int(how[len("exit:") :]))
        if how == "abort":
            os.abort()


def listening_socket(options: argparse.Namespace) -> socket.socket:
    if options.port is not None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", options.port))
    elif options.listen is not None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(options.listen[len("unix:") :])
    else:
        return socket.socket(fileno=0)
    listener.listen(16)
    return listener


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int)
    parser.add_argument("--listen")
    parser.add_argument("--max-requests", type=int, default=0)
    parser.add_argument("--no-stdin-wait", action="store_true")
    parser.add_argument("--no-padding", action="store_true")
    parser.add_argument("--on-malformed", default="close")
    parser.add_argument("--children", type=int, default=0)
    options = parser.parse_args(argv)
    listener = listening_socket(options)
    if options.children:
        for _ in range(options.children):
            if os.fork() == 0:
                os.setsid()  # out of the parent's process group and session, as php-cgi's children may be
                Server(options).serve(listener)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # the children are left to themselves
        while True:
            signal.pause()
    Server(options).serve(listener)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
