"""The HTTP client side of a gateway case, on raw sockets: exact bytes out, and exactly how the answer ended.

A gateway case must tell a complete response from one that only looks complete, so an answer
records its framing (Content-Length, chunked, until the close, none) and how it ended:
`complete`, or one of the truncations an HTTP client must notice (RFC 9112 §8: a body cut short
by the close, a chunked body without its last chunk, a reset, a timeout). The reference HTTP
client (harness/clients/adapters.py) is used where a case needs a real client's reuse of
connections; this module where it needs the bytes.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Sequence

RECV_SIZE = 65536
COMPLETE = "complete"


class HttpSideError(Exception):
    """The HTTP exchange could not even be started (the gateway refused the connection)."""


@dataclass
class HttpAnswer:
    """What the HTTP client got back for one request."""

    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    framing: str = "none"  # "content-length N", "chunked", "until close", "none"
    ended: str = "no response"  # COMPLETE, or how it fell short
    head: bytes = b""
    version: str = ""

    @property
    def complete(self) -> bool:
        return self.ended == COMPLETE

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        values = [v for n, v in self.headers if n.lower() == wanted]
        return ", ".join(values) if values else None

    def header_names(self) -> list[str]:
        return [n.lower() for n, _ in self.headers]

    def describe(self) -> str:
        if self.status is None:
            return self.ended
        text = f"{self.status} {self.reason}".rstrip() + f", {len(self.body)} body bytes ({self.framing})"
        return text + ("" if self.complete else f", {self.ended}")


class HttpConnection:
    """One HTTP/1.1 connection to the gateway: requests written as given, responses read exactly."""

    def __init__(self, port: int, host: str = "127.0.0.1", *, timeout: float = 10.0, rcvbuf: int | None = None) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.rcvbuf = rcvbuf
        self.sent_requests = 0
        # New connections opened because the gateway had closed this one (it need not keep HTTP connections).
        self.reconnects = 0
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf is not None:
            # Set before connect, so the window the gateway sees is small from the start (a slow reader).
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(self.timeout)
        try:
            self.sock.connect((self.host, self.port))
        except OSError as error:
            self.sock.close()
            raise HttpSideError(f"cannot connect to the gateway at {self.host}:{self.port}: "
                                f"{error.strerror or error}") from None
        self._buffer = b""
        self.closed_by_gateway = False

    def ensure_open(self) -> bool:
        """Before the next request: a new connection if the gateway closed this one (HTTP/1.1 lets a server
        close after any response); whether it had to."""
        if not self.peer_closed():
            return False
        self.close()
        self._connect()
        self.reconnects += 1
        return True

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed_by_gateway = True
            raise

    def send_request(self, method: str, target: str, *, headers: Sequence[str] = (), body: bytes = b"",
                     chunks: Sequence[bytes] | None = None, send_body: bool = True) -> None:
        """Writes a request: Content-Length for `body`, chunked encoding for `chunks`."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}", *headers]
        names = {h.split(":", 1)[0].strip().lower() for h in headers}
        if chunks is not None:
            lines.append("Transfer-Encoding: chunked")
            payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"
        else:
            if body or method in ("POST", "PUT", "PATCH"):
                if "content-length" not in names:
                    lines.append(f"Content-Length: {len(body)}")
            payload = body
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sent_requests += 1
        self.send_raw(data + (payload if send_body else b""))

    def _fill(self, deadline: float) -> str | None:
        """Reads more into the buffer; None, or how the reading ended ("closed", "reset", "timeout")."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout"
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(RECV_SIZE)
        except socket.timeout:
            return "timeout"
        except ConnectionResetError:
            self.closed_by_gateway = True
            return "reset"
        except OSError:
            self.closed_by_gateway = True
            return "closed"
        if not data:
            self.closed_by_gateway = True
            return "closed"
        self._buffer += data
        return None

    def read_response(self, method: str = "GET", *, timeout: float | None = None, pace: float = 0.0,
                      limit: int | None = None) -> HttpAnswer:
        """Reads one response (after 1xx ones). pace: seconds to sleep between reads (a slow reader);
        limit: stop after this many body bytes (the rest stays unread)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        answer = HttpAnswer()
        while True:
            while b"\r\n\r\n" not in self._buffer:
                how = self._fill(deadline)
                if how is not None:
                    answer.ended = {"closed": "closed before a response", "reset": "reset before a response",
                                    "timeout": "no response (timeout)"}[how]
                    if self._buffer:
                        answer.ended += f" ({len(self._buffer)} bytes of an unfinished head: {self._buffer[:60]!r})"
                    return answer
            head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
            if not self._parse_head(head, answer):
                return answer
            if answer.status is not None and 100 <= answer.status < 200 and answer.status != 101:
                continue
            break
        self._read_body(answer, method, deadline, pace, limit)
        connection = (answer.header("connection") or "").lower()
        if "close" in connection or (answer.version == "HTTP/1.0" and "keep-alive" not in connection):
            # The gateway said it closes: the next request goes on a new connection (ensure_open).
            self.closed_by_gateway = True
        return answer

    def _parse_head(self, head: bytes, answer: HttpAnswer) -> bool:
        answer.head = head
        lines = head.split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            answer.ended = f"not an HTTP response: {lines[0][:80]!r}"
            return False
        answer.version, answer.status = parts[0], int(parts[1])
        answer.reason = parts[2] if len(parts) > 2 else ""
        answer.headers = []
        for line in lines[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            answer.headers.append((name.strip(), value.strip()))
        return True

    def _read_body(self, answer: HttpAnswer, method: str, deadline: float, pace: float, limit: int | None) -> None:
        status = answer.status or 0
        if method == "HEAD" or status in (204, 304):
            answer.framing, answer.ended = "none", COMPLETE
            return
        encoding = (answer.header("transfer-encoding") or "").lower()
        length = answer.header("content-length")
        if "chunked" in encoding:
            answer.framing = "chunked"
            self._read_chunked(answer, deadline, pace, limit)
        elif length is not None and length.strip().isdigit():
            total = int(length)
            answer.framing = f"content-length {total}"
            while len(self._buffer) < total and (limit is None or len(self._buffer) < limit):
                if pace:
                    time.sleep(pace)
                how = self._fill(deadline)
                if how is not None:
                    answer.body, self._buffer = self._buffer, b""
                    answer.ended = f"{how} after {len(answer.body)} of the {total} body bytes"
                    return
            answer.body, self._buffer = self._buffer[:total], self._buffer[total:]
            answer.ended = COMPLETE if len(answer.body) == total else f"stopped reading after {len(answer.body)} bytes"
        else:
            answer.framing = "until close"
            while True:
                if pace:
                    time.sleep(pace)
                how = self._fill(deadline)
                if how is not None:
                    answer.body, self._buffer = self._buffer, b""
                    answer.ended = COMPLETE if how == "closed" else f"{how} after {len(answer.body)} body bytes"
                    return

    def _read_chunked(self, answer: HttpAnswer, deadline: float, pace: float, limit: int | None) -> None:
        body = bytearray()
        while True:
            while b"\r\n" not in self._buffer:
                how = self._fill(deadline)
                if how is not None:
                    answer.body = bytes(body)
                    answer.ended = f"{how} inside the chunked body, without its last chunk"
                    return
            size_line, rest = self._buffer.split(b"\r\n", 1)
            try:
                size = int(size_line.split(b";")[0].strip() or b"x", 16)
            except ValueError:
                answer.body = bytes(body)
                answer.ended = f"a malformed chunk size line {size_line[:40]!r}"
                return
            if size == 0:
                # The last chunk, then trailers up to an empty line.
                self._buffer = rest
                while not (self._buffer.startswith(b"\r\n") or b"\r\n\r\n" in self._buffer):
                    how = self._fill(deadline)
                    if how is not None:
                        answer.body = bytes(body)
                        answer.ended = f"{how} in the trailer section after the last chunk"
                        return
                self._buffer = self._buffer[2:] if self._buffer.startswith(b"\r\n") else \
                    self._buffer.split(b"\r\n\r\n", 1)[1]
                answer.body, answer.ended = bytes(body), COMPLETE
                return
            while len(rest) < size + 2:
                if pace:
                    time.sleep(pace)
                how = self._fill(deadline)
                if how is not None:
                    body += rest[:size]
                    answer.body = bytes(body)
                    answer.ended = f"{how} inside the chunked body, without its last chunk"
                    return
                rest = self._buffer[len(size_line) + 2:]
            body += rest[:size]
            self._buffer = rest[size + 2:]
            if limit is not None and len(body) >= limit:
                answer.body, answer.ended = bytes(body), f"stopped reading after {len(body)} bytes"
                return

    def request(self, method: str, target: str, **options: object) -> HttpAnswer:
        timeout = options.pop("timeout", None)
        self.send_request(method, target, **options)  # type: ignore[arg-type]
        return self.read_response(method, timeout=timeout)  # type: ignore[arg-type]

    def peer_closed(self, wait: float = 0.0) -> bool:
        """Whether the gateway has closed this connection (peeks; data waiting counts as open)."""
        if self.closed_by_gateway:
            return True
        self.sock.settimeout(max(wait, 0.001))
        try:
            data = self.sock.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            return False
        except OSError:
            return True
        return not data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self) -> None:
        """Goes away with RST (SO_LINGER 0), as a client killed mid-request does."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def __enter__(self) -> "HttpConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
