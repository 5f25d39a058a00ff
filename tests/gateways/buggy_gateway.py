#!/usr/bin/python3
"""A small HTTP/1.1-to-FastCGI gateway, strict about the spec by default, with `--bug MODE` switches
that each make one real gateway mistake.

It proves that the gateway suite can fail: the suite plays the FastCGI application, puts this
gateway in front of it and must condemn every bug mode while passing the correct gateway and the
allowed variations. It is independent of the suite on purpose: standard library only, its own
FastCGI encoding (nothing from harness/), because a gateway that shared the suite's codec would
share its bugs.

    buggy_gateway.py --listen PORT --app HOST:PORT [--bug MODE]... [--read-timeout SECONDS]

FCGISPEC_HTTP_PORT, FCGISPEC_APP_HOST and FCGISPEC_APP_PORT stand in for absent options. It listens
on 127.0.0.1 only and exits with status 0 on SIGTERM or SIGINT.

Mode                    Kind     What it does                                  Real-world counterpart
----------------------  -------  --------------------------------------------  -----------------------------------------
reuse-active-id         bug      concurrent requests share one connection and  spec 3.3: an id names one active request
                                 request id 1                                  on a connection; responses get mixed up
retry-post              bug      a request whose kept connection died is sent  RFC 9110 9.2.2; nginx 1.9.13 stopped passing
                                 again on a new one, POST included             non-idempotent requests to the next upstream
truncated-as-complete   bug      an application that closes mid-STDOUT yields  a cut-off page delivered (and cached) as if
                                 a normally ended HTTP response                whole
stderr-as-error         bug      any FCGI_STDERR data turns the response into  HAProxy #743
                                 a 502
no-empty-stdin          bug      a bodiless request gets no FCGI_STDIN record  HAProxy #2499; hiawatha PR #22
                                 at all
wrong-4-byte-length     bug      lengths above 127 are written as 4 bytes      spec 3.4; length-form slips like monkey
                                 without the high bit (the first byte, 0x00,   PR #278 (1-byte and 4-byte forms chosen
                                 reads as a 1-byte length of zero)             by different rules)
keepconn-but-close      bug      sets FCGI_KEEP_CONN but closes the connection spec 5.1: KEEP_CONN hands the connection to
                                 after every END_REQUEST                       the server, which then throws it away
no-keepconn-but-reuse   bug      clears FCGI_KEEP_CONN yet sends the next      spec 5.1: without KEEP_CONN the application
                                 request on the same connection (seen when the owns the close; the request may be lost
                                 application leaves it open)
no-params-terminator    bug      no empty PARAMS record: STDIN follows the     spec 3.3: a stream ends with an empty record
                                 last non-empty PARAMS
no-stdin-terminator     bug      the body is sent but never the empty STDIN    spec 3.3; the application waits for the end
                                 record that ends it                           of the body (compare HAProxy #2499)
zero-request-id         bug      application requests use request id 0         spec 3.3: id 0 is for management records
chunked-upload-cut      bug      a chunked upload reaches STDIN as its first   chunked decoders that stop after one chunk
                                 chunk only                                    (compare hhvm PR #2933, one STDIN record)
ignore-protocol-status  bug      END_REQUEST's OVERLOADED / CANT_MPX_CONN /    spec 5.5: the request was not processed
                                 UNKNOWN_ROLE answered as a 200
pass-status-header      bug      the CGI Status: line is forwarded as a header RFC 3875 6.3.3: Status is a CGI field, not
                                 and the answer is always 200                  an HTTP header
no-cgi-vars             bug      REQUEST_METHOD, SERVER_PROTOCOL and           RFC 3875 4.1: meta-variables a script needs
                                 GATEWAY_INTERFACE are left out of PARAMS
garbage-after-end       bug      output after END_REQUEST is kept and read as  response desynchronisation on a reused
                                 the start of the next response                connection
padding-misread         bug      the application's paddingLength is ignored:   spec 3.3; a reader out of step takes padding
                                 padding bytes are read as the next header     for a header (what nginx reports as "upstream
                                                                               sent unsupported FastCGI protocol version")
header-split-misread    bug      a CGI header block spanning two STDOUT        parsers that look at one record only
                                 records is a 502
version-0               bug      every record is written with version 0        spec 3.3: FCGI_VERSION_1 is the version;
                                                                               a strict application drops the connection
omit-var:NAME           bug      the CGI/1.1 variable NAME (QUERY_STRING,      RFC 3875 4.1: variables the server MUST set;
                                 CONTENT_LENGTH, HTTP_X_FOO...) is left out    configurations that forget one
                                 of PARAMS
multiplex               bug      concurrent requests share one connection with spec 4.1/5.5: FCGI_MPXS_CONNS 0 means one
                                 different ids (1, 2, 3 active at once),       request at a time per connection
                                 without asking FCGI_MPXS_CONNS
no-retry                bug      a kept connection the application closed      RFC 9110 9.2.2; the 502s of pooled upstream
                                 (EOF while idle, or on the first read or      connections closed by the other side
                                 write) gives a 502; a GET is not resent
short-body              bug      only the first 64 KiB of a Content-Length     bodies cut at a buffer size
                                 body reach STDIN (then the empty STDIN)
lenient-headers         bug      output with no CGI header block, or a header  RFC 3875 6.2/6.3: not a CGI response; the
                                 line without a colon, is passed on as a 200   gateway should answer 502
needs-stdout-terminator bug      an END_REQUEST not preceded by the empty      spec 5.5: END_REQUEST ends the request; the
                                 STDOUT record is ignored: the response waits  client waits for the read timeout
                                 for the read timeout
other-id-output         bug      STDOUT records of any request id on the       spec 3.3: a response is the STDOUT stream of
                                 connection are taken into the response        its own request id
drop-when-client-slow   bug      a client that does not keep up (a send would  proxies that drop what they cannot buffer
                                 block, or 1 MiB waits) gets the rest of the   and still end the response normally
                                 response dropped, ended with the last chunk
no-read-timeout         bug      a silent application is waited for for ever   RFC 9110 15.6.5: the client never gets its
                                 (no 504)                                      504
ids-increasing          allowed  request ids 1, 2, 3... on a kept connection   spec 3.3 lets the server pick any unused id
pool-while-active       bug      a client that goes away leaves its request    a later request's answer made of an earlier
                                 running, and the connection is pooled at     request's late output
                                 once; the next request's answer is read
                                 from whatever STDOUT comes
truncate-at-size        bug      a response body is cut at 65535 bytes and     responses truncated at certain sizes
                                 ended as complete                             (HAProxy #886)
crash-on-empty-body     bug      the gateway crashes on a request whose body   a NULL pointer for an empty body
                                 is empty (Content-Length: 0)                  (Apache mod_proxy_fcgi, bug 68278)
params-truncated        bug      a name-value pair too long for one PARAMS     values cut to fit one record
                                 record has its value cut to fit in one
misframed-as-complete   bug      a record that cannot be parsed (version 0)    what was read so far delivered as the whole
                                 ends the response as if it were whole         response (nginx's "unsupported FastCGI
                                                                               protocol version: 0" seen by others)
chunked-400             bug      a chunked upload larger than 8 KiB is         a valid upload called malformed (HAProxy
                                 answered 400 Bad Request                      2.6 with fcgi-app)
first-body-record-only  bug      the response body is the first STDOUT record  streams read one record at a time
                                 after the header block; later ones dropped    (HHVM PR #2933, the STDIN twin)
no-abort                allowed  a client that goes away is not reported: the  nginx fastcgi_ignore_client_abort on (the
                                 request runs to END_REQUEST, output dropped   spec does not require ABORT_REQUEST)

The correct gateway (no --bug): one FastCGI connection per active request, kept (FCGI_KEEP_CONN)
and pooled after its END_REQUEST, request id 1; PARAMS and STDIN each ended by an empty record;
records padded to a multiple of 8; the response streamed to the client with chunked transfer
coding, ended without the last chunk when the application's stream breaks; FCGI_ABORT_REQUEST when
the client goes away; 502 for a broken or rejected response, 503 for OVERLOADED, 504 for a silent
application (--read-timeout, default 4 s). A kept connection the application closed is noticed
before use (or on its first read or write) and a GET or HEAD is then sent on a new one. Request
header lines of up to 256 KiB are accepted.
"""

from __future__ import annotations

import argparse
import fcntl
import http
import os
import re
import select
import signal
import socket
import socketserver
import struct
import sys
import termios
import threading
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

BUGS = {
    "reuse-active-id": "concurrent requests share one FastCGI connection and request id 1",
    "retry-post": "a request whose reused connection died is resent on a new one, POST included",
    "truncated-as-complete": "an application closing mid-STDOUT gives a normally ended HTTP response",
    "stderr-as-error": "any FCGI_STDERR data turns the response into a 502",
    "no-empty-stdin": "a bodiless request gets no FCGI_STDIN record at all",
    "wrong-4-byte-length": "name-value lengths above 127 are 4 bytes without the high bit",
    "keepconn-but-close": "FCGI_KEEP_CONN is set, yet every connection is closed after END_REQUEST",
    "no-keepconn-but-reuse": "FCGI_KEEP_CONN is clear, yet the next request goes on the same connection",
    "no-params-terminator": "the empty PARAMS record is never sent",
    "no-stdin-terminator": "the empty STDIN record that ends the body is never sent",
    "zero-request-id": "application requests use request id 0 (the management id)",
    "chunked-upload-cut": "a chunked upload reaches STDIN as its first chunk only",
    "ignore-protocol-status": "END_REQUEST's protocolStatus is ignored: a rejected request is a 200",
    "pass-status-header": "the CGI Status: line is forwarded as a header and the answer is 200",
    "no-cgi-vars": "REQUEST_METHOD, SERVER_PROTOCOL and GATEWAY_INTERFACE are not sent",
    "garbage-after-end": "output after END_REQUEST is read as the start of the next response",
    "padding-misread": "the application's paddingLength is ignored when reading records",
    "header-split-misread": "a CGI header block spanning two STDOUT records is a 502",
    "version-0": "every record is written with version 0",
    "omit-var:NAME": "the CGI/1.1 variable NAME is left out of PARAMS (e.g. omit-var:QUERY_STRING)",
    "multiplex": "concurrent requests share one connection with different ids, whatever FCGI_MPXS_CONNS says",
    "no-retry": "a kept connection the application closed gives a 502; a GET is not resent on a new one",
    "short-body": "only the first 64 KiB of a Content-Length request body reach STDIN",
    "lenient-headers": "output without a CGI header block, or with a line without a colon, is passed on as a 200",
    "needs-stdout-terminator": "END_REQUEST without the empty STDOUT record before it is ignored (then 504)",
    "other-id-output": "STDOUT records of any request id on the connection are taken into the response",
    "drop-when-client-slow": "a client that does not keep up gets the rest of the response dropped, ended as complete",
    "no-read-timeout": "a silent application is waited for for ever (no 504)",
    "ids-increasing": "(allowed) request ids 1, 2, 3... on a kept connection",
    "pool-while-active": "a departed client's connection is pooled at once; the next answer is read from any STDOUT",
    "truncate-at-size": "a response body is cut at 65535 bytes and ended as complete",
    "crash-on-empty-body": "the gateway crashes on a request with an empty body",
    "params-truncated": "a name-value pair too long for one PARAMS record has its value cut to fit",
    "misframed-as-complete": "a record stream that stops parsing ends the response as if it were whole",
    "chunked-400": "a chunked upload larger than 8 KiB is answered 400 Bad Request",
    "first-body-record-only": "the response body is only the first STDOUT record after the header block",
    "no-abort": "(allowed) a departed client is not reported: the request runs to its END_REQUEST",
}
ALLOWED_VARIATIONS = frozenset({"ids-increasing", "no-abort"})
OMIT_VAR = "omit-var:"  # the parametrised mode: omit-var:NAME

# FastCGI 1.0 constants (spec section 8).
FCGI_VERSION_1 = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = range(1, 8)
RESPONDER = 1
KEEP_CONN = 1
REQUEST_COMPLETE, CANT_MPX_CONN, OVERLOADED, UNKNOWN_ROLE = range(4)
RECORD_HEADER = struct.Struct(">BBHHBx")
MAX_CONTENT = 0xFFFF

SERVER_SOFTWARE = "fcgispec-buggy-gateway/1"
SCRIPT_FILENAME = "/fcgispec/probe"
# Request lines and header lines up to this size (values of 128 KiB and more pass; nginx's
# large_client_header_buffers is 8 KiB by default, but the suite needs PARAMS above 64 KiB).
MAX_HTTP_LINE = 256 * 1024
MAX_HTTP_HEADERS = 200
MAX_BODY = 64 * 1024 * 1024
MAX_CGI_HEAD = 64 * 1024
CLIENT_IDLE_TIMEOUT = 60.0
MAX_IDLE_FCGI_CONNECTIONS = 16
SHORT_BODY = 64 * 1024  # what short-body passes on
SLOW_CLIENT_QUEUE = 1024 * 1024  # drop-when-client-slow: unsent bytes that count as not keeping up
IDEMPOTENT_RETRY_METHODS = frozenset({"GET", "HEAD"})
# Hop-by-hop or framing fields: the gateway frames the response to its client itself.
DROPPED_RESPONSE_FIELDS = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade", b"proxy-connection"}
)
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# Only letters, digits and '-' become HTTP_* variables: "X_Foo" and "X-Foo" would both be HTTP_X_FOO,
# so a client could forge a header another proxy set (the reason nginx drops underscored names).
CGI_SAFE_FIELD = re.compile(r"[A-Za-z0-9-]+\Z")
CGI_VAR_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")  # what omit-var:NAME takes
ABSOLUTE_URL = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*://")


def log(text: str) -> None:
    sys.stderr.write(f"buggy_gateway: {text}\n")
    sys.stderr.flush()


# ---- FastCGI encoding ---------------------------------------------------------------------------

def fcgi_record(record_type: int, request_id: int, content: bytes = b"", version: int = FCGI_VERSION_1) -> bytes:
    # Padding to a multiple of 8 is what the spec recommends (section 3.3); it also exercises the
    # application's skipping of paddingLength on every record.
    padding = -len(content) % 8
    return RECORD_HEADER.pack(version, record_type, request_id, len(content), padding) + content + bytes(padding)


def fcgi_stream(record_type: int, request_id: int, data: bytes, terminate: bool = True,
                version: int = FCGI_VERSION_1) -> list[bytes]:
    records = [fcgi_record(record_type, request_id, data[start:start + MAX_CONTENT], version)
               for start in range(0, len(data), MAX_CONTENT)]
    if terminate:
        records.append(fcgi_record(record_type, request_id, version=version))
    return records


def nv_length(length: int, bugs: frozenset[str]) -> bytes:
    if length <= 127:
        return bytes([length])
    if "wrong-4-byte-length" in bugs:
        # BUG wrong-4-byte-length: the 4-byte form without its high bit; a reader takes the first
        # byte (0x00) for a 1-byte length of zero and misreads the rest of the stream.
        return struct.pack(">I", length)
    return struct.pack(">I", length | 0x80000000)


def encode_params(pairs: list[tuple[str, bytes]], bugs: frozenset[str]) -> bytes:
    out = bytearray()
    for name, value in pairs:
        name_bytes = name.encode("latin-1")
        if "params-truncated" in bugs and len(name_bytes) + len(value) + 8 > 65535:
            value = value[:65535 - 8 - len(name_bytes) - 64]  # BUG params-truncated: the value cut to fit a record
        out += nv_length(len(name_bytes), bugs) + nv_length(len(value), bugs) + name_bytes + value
    return bytes(out)


# ---- what can go wrong ---------------------------------------------------------------------------

class ClientGone(Exception):
    """The HTTP client closed its connection (or it broke) while its request was in progress."""


class AppClosed(Exception):
    """The application's connection ended (EOF or an error) before END_REQUEST."""


class AppTimeout(Exception):
    """The application said nothing for --read-timeout seconds."""


class BrokenResponse(Exception):
    """The application's records or CGI header block cannot be taken for a response."""


class NothingReceived(Exception):
    """The connection failed before a single byte of the response: the request may be resent."""


class BadRequest(Exception):
    """An HTTP request this gateway refuses (answered with 400)."""


# ---- the FastCGI side ------------------------------------------------------------------------------

class ClientWatch:
    """The HTTP client's socket, watched for EOF while the gateway waits for the application."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.watching = True

    def check(self) -> None:
        try:
            data = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            raise ClientGone() from None
        if not data:
            raise ClientGone()
        # A pipelined request is waiting; it says nothing more about this one, so stop watching
        # (select would otherwise report the socket readable forever).
        self.watching = False


class FcgiConnection:
    def __init__(self, sock: socket.socket, bugs: frozenset[str], read_timeout: float) -> None:
        self.sock = sock
        self.bugs = bugs
        self.read_timeout = read_timeout
        self.buffer = bytearray()
        self.received = 0  # bytes received since the current request was sent
        self.requests = 0
        self.next_id = 1
        self.users = 0  # more than one only with reuse-active-id or multiplex
        self.closed = False
        self.send_lock = threading.Lock()
        self.read_lock = threading.Lock()
        # multiplex: the request ids active on the connection, the records read for each, and whether
        # one of the requests' threads is reading the socket for all of them.
        self.active: dict[int, deque[tuple[int, int, bytes]]] = {}
        self.demux = threading.Condition()
        self.reading = False

    def send(self, records: list[bytes]) -> None:
        with self.send_lock:
            self.received = 0
            self.sock.sendall(b"".join(records))

    def _fill(self, watch: ClientWatch | None) -> None:
        while True:
            watched = [self.sock]
            if watch is not None and watch.watching:
                watched.append(watch.sock)
            # BUG no-read-timeout: no limit on the wait for the application.
            timeout = None if "no-read-timeout" in self.bugs else self.read_timeout
            try:
                readable, _, _ = select.select(watched, [], [], timeout)
            except (OSError, ValueError):
                raise AppClosed("the connection was closed") from None  # by another request (multiplex)
            if not readable:
                raise AppTimeout()
            if watch is not None and watch.sock in readable:
                watch.check()
            if self.sock in readable:
                break
        try:
            data = self.sock.recv(65536)
        except OSError as error:
            raise AppClosed(str(error)) from None
        if not data:
            raise AppClosed("EOF")
        self.buffer += data
        self.received += len(data)

    def _take(self, count: int, watch: ClientWatch | None) -> bytes:
        while len(self.buffer) < count:
            self._fill(watch)
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def read_record(self, watch: ClientWatch | None = None, want: int | None = None) -> tuple[int, int, bytes]:
        """(type, requestId, content) of the next record; with multiplex, of the next record for `want`."""
        if want is None or "multiplex" not in self.bugs:
            return self._read_record(watch)
        # BUG multiplex (part of it): the requests sharing the connection take turns reading it and file
        # each record under its request id.
        while True:
            with self.demux:
                while True:
                    queue = self.active.get(want)
                    if queue:
                        return queue.popleft()
                    if not self.reading:
                        self.reading = True
                        break
                    self.demux.wait(0.1)
            try:
                record = self._read_record(watch)
            finally:
                with self.demux:
                    self.reading = False
                    self.demux.notify_all()
            if record[1] == want:
                return record
            with self.demux:
                if record[1] in self.active:
                    self.active[record[1]].append(record)
                    self.demux.notify_all()

    def begin(self, request_id: int) -> None:
        with self.demux:
            self.active[request_id] = deque()

    def done(self, request_id: int) -> None:
        with self.demux:
            self.active.pop(request_id, None)

    def _read_record(self, watch: ClientWatch | None) -> tuple[int, int, bytes]:
        with self.read_lock:
            version, record_type, request_id, length, padding = RECORD_HEADER.unpack(self._take(8, watch))
            if version != FCGI_VERSION_1:
                # Checked before the lengths are believed: a header that is not one would have the
                # gateway wait for content that never comes.
                raise BrokenResponse(f"unsupported FastCGI protocol version {version}")
            content = self._take(length, watch)
            if "padding-misread" in self.bugs:
                # BUG padding-misread: paddingLength is not skipped; the padding bytes are read as the
                # next record header.
                padding = 0
            self._take(padding, watch)
            return record_type, request_id, content

    def idle_state_ok(self) -> bool:
        """Whether a pooled connection may carry a new request: not closed by the application, and
        nothing sent by it since its last END_REQUEST."""
        if self.buffer and "garbage-after-end" not in self.bugs:
            return False
        # select first: the socket has a timeout, so a recv on it would wait for data instead of failing.
        if not select.select([self.sock], [], [], 0)[0]:
            return True
        try:
            data = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            # BUG no-retry: a connection the application reset is not noticed; the request sent there fails.
            return "no-retry" in self.bugs
        if not data:
            return "no-retry" in self.bugs  # BUG no-retry: nor one it closed
        # BUG garbage-after-end: bytes the application sent after END_REQUEST stay in the stream and
        # become the start of the next response.
        return "garbage-after-end" in self.bugs

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


class Pool:
    """Kept connections to the application; one active request per connection."""

    def __init__(self, address: tuple[str, int], bugs: frozenset[str], read_timeout: float) -> None:
        self.address = address
        self.bugs = bugs
        self.read_timeout = read_timeout
        self.lock = threading.Lock()
        self.idle: list[FcgiConnection] = []
        self.busy: list[FcgiConnection] = []

    def acquire(self) -> FcgiConnection:
        with self.lock:
            if "reuse-active-id" in self.bugs and self.busy:
                # BUG reuse-active-id: the connection of a request still in progress takes another
                # request, with the same request id.
                conn = self.busy[-1]
                conn.users += 1
                return conn
            shared = [c for c in self.busy if not c.closed]
            if "multiplex" in self.bugs and shared:
                # BUG multiplex: a connection with a request in progress takes the next one too (with an
                # id of its own), although the application was never asked for FCGI_MPXS_CONNS.
                conn = shared[0]
                conn.users += 1
                return conn
            conn = None
            while self.idle and conn is None:
                candidate = self.idle.pop()
                if candidate.idle_state_ok():
                    conn = candidate
                else:
                    candidate.close()
        if conn is None:
            conn = self.connect()
        with self.lock:
            conn.users += 1
            self.busy.append(conn)
        return conn

    def connect(self) -> FcgiConnection:
        sock = socket.create_connection(self.address, timeout=self.read_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return FcgiConnection(sock, self.bugs, self.read_timeout)

    def release(self, conn: FcgiConnection, reusable: bool) -> None:
        with self.lock:
            conn.users -= 1
            if conn.users > 0:
                return
            if conn in self.busy:
                self.busy.remove(conn)
            if reusable and len(self.idle) < MAX_IDLE_FCGI_CONNECTIONS:
                self.idle.append(conn)
                return
        conn.close()

    def discard(self, conn: FcgiConnection) -> None:
        conn.close()
        self.release(conn, reusable=False)


# ---- the HTTP side ---------------------------------------------------------------------------------

class ClientConnection:
    def __init__(self, sock: socket.socket, address: tuple[str, int], server_port: int) -> None:
        self.sock = sock
        self.address = address
        self.server_port = server_port
        self.buffer = bytearray()

    def _fill(self) -> None:
        try:
            data = self.sock.recv(65536)
        except OSError:
            raise ClientGone() from None
        if not data:
            raise ClientGone()
        self.buffer += data

    def read_line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buffer) > MAX_HTTP_LINE:
                raise BadRequest("line too long")
            self._fill()

    def read_exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._fill()
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            raise ClientGone() from None

    def falling_behind(self) -> bool:
        """Whether a send would block, or more than SLOW_CLIENT_QUEUE bytes wait in the socket."""
        try:
            if not select.select([], [self.sock], [], 0)[1]:
                return True
            queued = struct.unpack("i", fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
        except (OSError, ValueError):
            return False
        return queued > SLOW_CLIENT_QUEUE


@dataclass
class HttpRequest:
    method: str
    target: bytes
    version: str
    headers: list[tuple[str, bytes]]
    body: bytes = b""
    chunks: list[bytes] | None = None  # the chunks of a chunked upload, as they came
    has_body: bool = False
    keep_alive: bool = True

    def header(self, name: str) -> bytes | None:
        values = [value for field_name, value in self.headers if field_name.lower() == name]
        return b", ".join(values) if values else None


def read_request(client: ClientConnection) -> HttpRequest | None:
    """The next request, or None when the client closed between requests."""
    try:
        line = client.read_line()
        while line == b"":  # RFC 9112 2.2: tolerate empty lines before a request line
            line = client.read_line()
    except ClientGone:
        return None
    parts = line.split(b" ")
    if len(parts) != 3 or not TOKEN.match(parts[0]) or not re.fullmatch(rb"HTTP/1\.[01]", parts[2]):
        raise BadRequest("bad request line")
    target = parts[1]
    if not (target.startswith(b"/") or ABSOLUTE_URL.match(target) or target == b"*") \
            or re.search(rb"[\x00-\x20\x7f]", target):
        raise BadRequest("bad request target")
    request = HttpRequest(parts[0].decode("ascii"), parts[1], parts[2].decode("ascii"), [])
    while True:
        line = client.read_line()
        if line == b"":
            break
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.match(name) or line[:1] in (b" ", b"\t") or re.search(rb"[\x00\r]", value):
            raise BadRequest("bad header line")  # RFC 9110 5.5: no NUL or CR in a field value
        if len(request.headers) >= MAX_HTTP_HEADERS:
            raise BadRequest("too many header fields")
        request.headers.append((name.decode("ascii"), value.strip(b" \t")))
    if request.version == "HTTP/1.1" and request.header("host") is None:
        raise BadRequest("no Host")  # RFC 9112 3.2
    connection = (request.header("connection") or b"").lower()
    request.keep_alive = request.version == "HTTP/1.1" and b"close" not in connection
    transfer_encoding = request.header("transfer-encoding")
    content_length = request.header("content-length")
    if transfer_encoding is not None and content_length is not None:
        raise BadRequest("both Transfer-Encoding and Content-Length")  # RFC 9112 6.1: a smuggling vector
    if (request.header("expect") or b"").lower() == b"100-continue" and request.version == "HTTP/1.1" \
            and (transfer_encoding is not None or content_length not in (None, b"0")):
        client.send(b"HTTP/1.1 100 Continue\r\n\r\n")
    if transfer_encoding is not None:
        if transfer_encoding.lower() != b"chunked":
            raise BadRequest("unsupported transfer coding")
        request.chunks = read_chunks(client)
        request.body = b"".join(request.chunks)
        request.has_body = True
    elif content_length is not None:
        if not re.fullmatch(rb"[0-9]{1,12}", content_length):
            raise BadRequest("bad Content-Length")
        length = int(content_length)
        if length > MAX_BODY:
            raise BadRequest("body too large")
        request.body = client.read_exact(length)
        request.has_body = True
    return request


def read_chunks(client: ClientConnection) -> list[bytes]:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_text = client.read_line().split(b";", 1)[0].strip(b" \t")
        if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size_text):
            raise BadRequest("bad chunk size")
        size = int(size_text, 16)
        if size == 0:
            while client.read_line() != b"":  # trailer fields: not forwarded
                pass
            return chunks
        total += size
        if total > MAX_BODY:
            raise BadRequest("body too large")
        chunks.append(client.read_exact(size))
        if client.read_line() != b"":
            raise BadRequest("bad chunk end")


class HttpResponse:
    """The response to the HTTP client, streamed as the application's STDOUT arrives."""

    def __init__(self, client: ClientConnection, chunked: bool, bodyless: bool, drop_when_slow: bool = False) -> None:
        self.client = client
        self.chunked = chunked
        self.bodyless = bodyless
        self.drop_when_slow = drop_when_slow
        self.dropping = False
        self.truncate_at: int | None = None
        self.written = 0

    def write(self, data: bytes) -> None:
        if self.bodyless or not data or self.dropping:
            return
        if self.truncate_at is not None:
            # BUG truncate-at-size: what does not fit the first buffer is lost, and finish() ends the body.
            data = data[:max(self.truncate_at - self.written, 0)]
            self.written += len(data)
            if not data:
                return
        if self.drop_when_slow and self.client.falling_behind():
            # BUG drop-when-client-slow: the rest of the body is thrown away instead of waiting for the
            # client; finish() still sends the last chunk, so the client takes the body for whole.
            log("the client does not keep up: the rest of the response is dropped")
            self.dropping = True
            return
        if self.chunked:
            self.client.send(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.client.send(data)

    def finish(self) -> None:
        if self.chunked:
            self.client.send(b"0\r\n\r\n")


# ---- the CGI response ----------------------------------------------------------------------------

@dataclass
class CgiHead:
    status: int
    reason: bytes
    fields: list[tuple[bytes, bytes | None]] = field(default_factory=list)  # None: a raw line (lenient-headers)


def parse_cgi_head(data: bytes, bugs: frozenset[str]) -> tuple[CgiHead, bytes] | None:
    """The header block at the start of STDOUT and the body bytes after it; None while incomplete.
    Lines end with CRLF or LF (RFC 3875 6.2); the block ends with an empty line."""
    fields: list[tuple[bytes, bytes | None]] = []
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            if len(data) > MAX_CGI_HEAD:
                raise BrokenResponse("CGI header block too large")
            return None
        line = data[start:end]
        line = line[:-1] if line.endswith(b"\r") else line
        start = end + 1
        if line == b"":
            break
        name, colon, value = line.partition(b":")
        value = value.strip(b" \t")
        if not colon or not TOKEN.match(name) or re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", value):
            if "lenient-headers" in bugs and not re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", line):
                # BUG lenient-headers: a line that is no header field goes to the client as it is.
                fields.append((line, None))
                continue
            raise BrokenResponse(f"invalid CGI header line {line[:60]!r}")
        fields.append((name, value))
    head = CgiHead(200, b"OK")
    status_seen = False
    kept: list[tuple[bytes, bytes | None]] = []
    location = None
    for name, value in fields:
        if value is None:  # lenient-headers: a raw line
            kept.append((name, value))
            continue
        lower = name.lower()
        if lower == b"status" and "pass-status-header" not in bugs:
            match = re.fullmatch(rb"([2-5][0-9][0-9])(?:[ \t]+(.*))?", value)
            if match is None or status_seen:
                raise BrokenResponse(f"invalid Status {value[:60]!r}")
            status_seen = True
            head.status = int(match.group(1))
            head.reason = match.group(2) or b""
            continue
        # BUG pass-status-header: with that mode the Status line falls through to here and reaches
        # the client as an ordinary header field, and the status stays 200.
        if lower == b"location":
            location = value
        kept.append((name, value))
    if location is not None and not status_seen and "pass-status-header" not in bugs:
        # RFC 3875 6.2.3: a client redirect; a local one ("/path") is answered the same way, as nginx does.
        head.status, head.reason = 302, b"Found"
    if not head.reason:
        try:
            head.reason = http.HTTPStatus(head.status).phrase.encode("ascii")
        except ValueError:
            head.reason = b"Unknown"
    head.fields = kept
    return head, data[start:]


# ---- the gateway -----------------------------------------------------------------------------------

class Gateway:
    def __init__(self, app: tuple[str, int], bugs: frozenset[str], read_timeout: float, port: int) -> None:
        self.bugs = bugs
        self.port = port
        self.pool = Pool(app, bugs, read_timeout)
        self.version = 0 if "version-0" in bugs else FCGI_VERSION_1  # BUG version-0: not FCGI_VERSION_1
        self.omitted = {mode[len(OMIT_VAR):] for mode in bugs if mode.startswith(OMIT_VAR)}

    # -- building the request --
    def cgi_params(self, request: HttpRequest, client: ClientConnection) -> list[tuple[str, bytes]]:
        path, _, query = request.target.partition(b"?")
        if ABSOLUTE_URL.match(path):  # absolute-form target (RFC 9112 3.2.2): keep the path only
            path = b"/" + path.split(b"://", 1)[1].partition(b"/")[2]
        host = request.header("host") or b"127.0.0.1"
        server_name = host.rsplit(b":", 1)[0] if not host.endswith(b"]") else host
        params: list[tuple[str, bytes]] = [
            ("GATEWAY_INTERFACE", b"CGI/1.1"),
            ("SERVER_PROTOCOL", request.version.encode("ascii")),
            ("REQUEST_METHOD", request.method.encode("ascii")),
        ]
        if "no-cgi-vars" in self.bugs:
            # BUG no-cgi-vars: the three variables every CGI script relies on are left out.
            params = []
        params += [
            ("SCRIPT_NAME", b""),
            ("SCRIPT_FILENAME", SCRIPT_FILENAME.encode("ascii")),
            ("PATH_INFO", unquote_to_bytes(path)),
            ("QUERY_STRING", query),
            ("REQUEST_URI", request.target),
            ("REQUEST_SCHEME", b"http"),
            ("SERVER_NAME", server_name),
            ("SERVER_ADDR", b"127.0.0.1"),
            ("SERVER_PORT", str(self.port).encode("ascii")),
            ("SERVER_SOFTWARE", SERVER_SOFTWARE.encode("ascii")),
            ("REMOTE_ADDR", client.address[0].encode("ascii")),
            ("REMOTE_PORT", str(client.address[1]).encode("ascii")),
        ]
        if request.has_body:
            params.append(("CONTENT_LENGTH", str(len(request.body)).encode("ascii")))
            content_type = request.header("content-type")
            if content_type is not None:
                params.append(("CONTENT_TYPE", content_type))
        http_vars: dict[str, list[bytes]] = {}
        for name, value in request.headers:
            lower = name.lower()
            # Content-Length/-Type have their own variables; Transfer-Encoding no longer describes the
            # decoded body the application gets; Proxy would become HTTP_PROXY ("httpoxy").
            if lower in ("content-length", "content-type", "transfer-encoding", "proxy"):
                continue
            if not CGI_SAFE_FIELD.match(name):
                continue
            http_vars.setdefault("HTTP_" + name.upper().replace("-", "_"), []).append(value)
        params += [(name, b", ".join(values)) for name, values in http_vars.items()]
        if self.omitted:
            # BUG omit-var:NAME: that variable is left out of PARAMS.
            params = [(name, value) for name, value in params if name not in self.omitted]
        return params

    def request_id(self, conn: FcgiConnection) -> int:
        if "multiplex" in self.bugs:
            # BUG multiplex (part of it): the smallest id not active on the shared connection.
            with conn.demux:
                request_id = next(i for i in range(1, 0x10000) if i not in conn.active)
                conn.active[request_id] = deque()
            return request_id
        if "pool-while-active" in self.bugs:
            # Part of BUG pool-while-active: a new id each time, so the abandoned one is never begun again.
            request_id = conn.next_id
            conn.next_id = conn.next_id % 0xFFFF + 1
            return request_id
        if "zero-request-id" in self.bugs:
            return 0  # BUG zero-request-id: the management id used for an application request
        if "ids-increasing" in self.bugs:
            # Allowed: any id not active on the connection will do; this one counts up.
            request_id = conn.next_id
            conn.next_id = conn.next_id % 0xFFFF + 1
            return request_id
        return 1  # one active request per connection, so id 1 is never active twice

    def request_records(self, request_id: int, request: HttpRequest, params: list[tuple[str, bytes]]) -> list[bytes]:
        flags = KEEP_CONN
        if "no-keepconn-but-reuse" in self.bugs:
            flags = 0  # BUG no-keepconn-but-reuse: the application is told it may close (then reused anyway)
        version = self.version
        records = [fcgi_record(BEGIN_REQUEST, request_id, struct.pack(">HB5x", RESPONDER, flags), version)]
        # BUG no-params-terminator: the PARAMS stream is left without its empty record.
        records += fcgi_stream(PARAMS, request_id, encode_params(params, self.bugs),
                               terminate="no-params-terminator" not in self.bugs, version=version)
        body = request.body
        if "chunked-upload-cut" in self.bugs and request.chunks:
            body = request.chunks[0]  # BUG chunked-upload-cut: only the first chunk is forwarded
        if "short-body" in self.bugs and request.chunks is None:
            body = body[:SHORT_BODY]  # BUG short-body: the rest of a Content-Length body is not forwarded
        if not body and "no-empty-stdin" in self.bugs:
            return records  # BUG no-empty-stdin: no STDIN record at all for a bodiless request
        # BUG no-stdin-terminator: the STDIN stream is left without its empty record.
        records += fcgi_stream(STDIN, request_id, body, terminate="no-stdin-terminator" not in self.bugs,
                               version=version)
        return records

    # -- one request --
    def serve(self, request: HttpRequest, client: ClientConnection) -> bool:
        """Forwards one request and answers the client; whether the client connection stays open."""
        if "chunked-400" in self.bugs and request.chunks is not None and len(request.body) > 8192:
            # BUG chunked-400: a chunked upload larger than one buffer is refused as a bad request.
            return self.error(client, request, 400)
        params = self.cgi_params(request, client)
        if "crash-on-empty-body" in self.bugs and request.method in ("POST", "PUT") and not request.body:
            log("an empty body: crashing")  # BUG crash-on-empty-body
            os.kill(os.getpid(), signal.SIGSEGV)
        may_resend = request.method in IDEMPOTENT_RETRY_METHODS or "retry-post" in self.bugs
        for attempt in (1, 2):
            try:
                conn = self.pool.acquire()
            except OSError as error:
                log(f"cannot connect to the application: {error}")
                return self.error(client, request, 502)
            reused = conn.requests > 0 or conn.users > 1
            conn.requests += 1
            request_id = self.request_id(conn)
            try:
                conn.send(self.request_records(request_id, request, params))
            except OSError as error:
                log(f"sending the request failed: {error}")
                # The application may still have answered before it stopped reading; the relay finds out.
            try:
                return self.relay(conn, request_id, request, client)
            except NothingReceived:
                # The connection is already discarded. A kept connection the application closed: resending is safe only when repeating the
                # request cannot do harm, because the application may have processed it already.
                # BUG retry-post: may_resend is true for every method in that mode.
                # BUG no-retry: never resent, not even a GET.
                if reused and attempt == 1 and may_resend and "no-retry" not in self.bugs:
                    log("kept connection died before the response; resending the request on a new one")
                    continue
                return self.error(client, request, 502)
            finally:
                conn.done(request_id)
        return False  # not reached: the second attempt never continues

    def relay(self, conn: FcgiConnection, request_id: int, request: HttpRequest, client: ClientConnection) -> bool:
        watch = ClientWatch(client.sock)
        head = bytearray()
        response: HttpResponse | None = None
        close_client = not request.keep_alive
        stdout_ended = False
        body_records = 0
        try:
            while True:
                record_type, record_id, content = conn.read_record(watch, request_id)
                any_stdout = "other-id-output" in self.bugs or "pool-while-active" in self.bugs
                if record_id != request_id and not (any_stdout and record_type == STDOUT):
                    continue  # not this request's (a management record, or a stray id)
                # BUG other-id-output: another id's STDOUT records fall through to here as if they were ours.
                if record_type == STDOUT and content:
                    if response is not None:
                        if "first-body-record-only" in self.bugs and body_records > 0:
                            continue  # BUG first-body-record-only: later STDOUT records are dropped
                        body_records += 1
                        response.write(content)
                        continue
                    head += content
                    parsed = parse_cgi_head(bytes(head), self.bugs)
                    if parsed is None:
                        if "header-split-misread" in self.bugs:
                            # BUG header-split-misread: the header block is looked for in one record only.
                            raise BrokenResponse("no end of the CGI header block in the first STDOUT record")
                        continue
                    cgi_head, body = parsed
                    response, close_after = self.start_response(client, request, cgi_head)
                    close_client = close_client or close_after
                    response.write(body)
                elif record_type == STDERR and content:
                    # The application's log, not part of the response (spec 5.3).
                    log("application stderr: " + content.decode("latin-1").rstrip("\n"))
                    if "stderr-as-error" in self.bugs:
                        # BUG stderr-as-error: error output is taken for a failed request.
                        raise BrokenResponse("STDERR data")
                elif record_type == STDOUT:
                    stdout_ended = True
                elif record_type == END_REQUEST:
                    if "needs-stdout-terminator" in self.bugs and not stdout_ended:
                        # BUG needs-stdout-terminator: the request is taken to end with its STDOUT stream,
                        # so an END_REQUEST without the empty STDOUT before it is not noticed.
                        log("END_REQUEST before the end of STDOUT: ignored")
                        continue
                    if len(content) != 8:
                        raise BrokenResponse("END_REQUEST body is not 8 bytes")
                    protocol_status = content[4]
                    break
                # Empty STDOUT/STDERR end their streams; other types are not expected here: ignored.
        except ClientGone:
            self.abandon(conn, request_id)
            return False
        except AppTimeout:
            log("the application timed out")
            self.pool.discard(conn)
            if response is None:
                return self.error(client, request, 504)
            return False  # the response stays unfinished: the client sees it cut short
        except (AppClosed, BrokenResponse) as error:
            log(f"response from the application broken: {error}")
            received = conn.received
            self.pool.discard(conn)
            if isinstance(error, AppClosed) and received == 0 and response is None:
                raise NothingReceived() from None
            if response is None:
                return self.error(client, request, 502)
            if "truncated-as-complete" in self.bugs and isinstance(error, AppClosed):
                # BUG truncated-as-complete: the cut-off response is ended as if it were whole.
                return self.finish(response, client) and not close_client
            if "misframed-as-complete" in self.bugs and isinstance(error, BrokenResponse):
                # BUG misframed-as-complete: a record stream that no longer parses ends the response as if whole.
                return self.finish(response, client) and not close_client
            return False  # without the last chunk: the client sees the truncation
        # END_REQUEST received.
        reusable = not conn.buffer  # bytes after END_REQUEST: the stream can no longer be trusted
        if "garbage-after-end" in self.bugs:
            reusable = True
        if "keepconn-but-close" in self.bugs:
            reusable = False  # BUG keepconn-but-close: KEEP_CONN was asked for, the connection is dropped
        self.pool.release(conn, reusable)
        if protocol_status != REQUEST_COMPLETE and "ignore-protocol-status" not in self.bugs:
            # The application did not process the request (spec 5.5); its output is not an answer.
            log(f"the application rejected the request: protocolStatus {protocol_status}")
            if response is None:
                return self.error(client, request, 503 if protocol_status == OVERLOADED else 502)
            return False
        if response is None and head and "lenient-headers" in self.bugs:
            # BUG lenient-headers: output without a CGI header block is the body of a 200.
            response, close_after = self.start_response(client, request, CgiHead(200, b"OK"))
            close_client = close_client or close_after
            response.write(bytes(head))
        if response is None:
            if head or "ignore-protocol-status" not in self.bugs or protocol_status == REQUEST_COMPLETE:
                log("END_REQUEST before the end of the CGI header block")
                return self.error(client, request, 502)
            # BUG ignore-protocol-status: a rejected request without output becomes an empty 200.
            response, close_after = self.start_response(client, request, CgiHead(200, b"OK"))
            close_client = close_client or close_after
        return self.finish(response, client) and not close_client

    def start_response(self, client: ClientConnection, request: HttpRequest, head: CgiHead) -> tuple[HttpResponse, bool]:
        bodyless = request.method == "HEAD" or head.status in (204, 304)
        chunked = not bodyless and request.version == "HTTP/1.1"
        close_after = not request.keep_alive or (not bodyless and not chunked)
        lines = [b"HTTP/1.1 %d %s" % (head.status, head.reason)]
        for name, value in head.fields:
            if value is None:  # lenient-headers: a line that is no header field, as it came
                lines.append(name)
                continue
            lower = name.lower()
            if lower in DROPPED_RESPONSE_FIELDS:
                continue
            # The gateway frames the body itself; an application's Content-Length only stays for HEAD,
            # where it tells the size of the body a GET would have.
            if lower == b"content-length" and request.method != "HEAD":
                continue
            lines.append(name + b": " + value)
        if chunked:
            lines.append(b"Transfer-Encoding: chunked")
        if close_after:
            lines.append(b"Connection: close")
        client.send(b"\r\n".join(lines) + b"\r\n\r\n")
        response = HttpResponse(client, chunked, bodyless, "drop-when-client-slow" in self.bugs)
        if "truncate-at-size" in self.bugs:
            response.truncate_at = 65535
        return response, close_after

    def finish(self, response: HttpResponse, client: ClientConnection) -> bool:
        try:
            response.finish()
        except ClientGone:
            return False
        return True

    def abandon(self, conn: FcgiConnection, request_id: int) -> None:
        """The client went away: tell the application, wait for its END_REQUEST, pool the connection."""
        if "pool-while-active" in self.bugs:
            # BUG pool-while-active: the connection is pooled while the request still runs.
            self.pool.release(conn, reusable=True)
            return
        if "no-abort" not in self.bugs:
            try:
                conn.send([fcgi_record(ABORT_REQUEST, request_id, version=self.version)])
            except OSError:
                self.pool.discard(conn)
                return
        # Allowed variation no-abort: no ABORT_REQUEST; the request runs on and its output is dropped.
        try:
            while True:
                record_type, record_id, content = conn.read_record(want=request_id)
                if record_id == request_id and record_type == END_REQUEST:
                    break
        except (AppClosed, AppTimeout, BrokenResponse):
            self.pool.discard(conn)
            return
        self.pool.release(conn, reusable=not conn.buffer)

    def error(self, client: ClientConnection, request: HttpRequest, status: int) -> bool:
        return send_error(client, status, head_only=request.method == "HEAD", close=not request.keep_alive)


def send_error(client: ClientConnection, status: int, head_only: bool = False, close: bool = False) -> bool:
    """A short error page; whether the connection may stay open."""
    phrase = http.HTTPStatus(status).phrase
    body = f"{status} {phrase}\n".encode("ascii")
    head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n").encode("ascii")
    try:
        client.send(head if head_only else head + body)
    except ClientGone:
        return False
    return not close


class Handler(socketserver.BaseRequestHandler):
    server: "GatewayServer"

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(CLIENT_IDLE_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = ClientConnection(sock, self.client_address, self.server.gateway.port)
        try:
            while True:
                try:
                    request = read_request(client)
                except BadRequest as error:
                    log(f"bad request: {error}")
                    send_error(client, 400, close=True)
                    return
                if request is None or not self.server.gateway.serve(request, client):
                    return
        except (ClientGone, OSError):
            return


class GatewayServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, gateway: Gateway) -> None:
        self.gateway = gateway
        super().__init__(("127.0.0.1", port), Handler)


# ---- command line ----------------------------------------------------------------------------------

def port_number(text: str) -> int:
    # "127.0.0.1:8080" is taken for 8080: the listening address is always 127.0.0.1.
    value = int(text.rsplit(":", 1)[-1])
    if not 0 < value < 65536:
        raise ValueError(text)
    return value


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    modes = "\n".join(f"  {name:<24}{description}" for name, description in BUGS.items())
    parser = argparse.ArgumentParser(
        prog="buggy_gateway.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="modes (repeatable --bug; \"(allowed)\" marks legal variations):\n" + modes,
    )
    parser.add_argument("--listen", metavar="PORT", help="HTTP port on 127.0.0.1 (default: $FCGISPEC_HTTP_PORT)")
    parser.add_argument("--app", metavar="HOST:PORT",
                        help="the FastCGI application (default: $FCGISPEC_APP_HOST:$FCGISPEC_APP_PORT)")
    parser.add_argument("--bug", metavar="MODE", action="append", default=[], help="misbehave this way")
    parser.add_argument("--read-timeout", metavar="SECONDS", type=float, default=4.0,
                        help="silence from the application answered with 504 (default 4)")
    parser.add_argument("--list-modes", action="store_true",
                        help="print MODE<TAB>bug|allowed<TAB>description lines and exit")
    return parser.parse_args(argv)


def usage_error(text: str) -> int:
    sys.stderr.write(f"buggy_gateway.py: {text}\n")
    return 2


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    if args.list_modes:
        for name, description in BUGS.items():
            kind = "allowed" if name in ALLOWED_VARIATIONS else "bug"
            print(f"{name}\t{kind}\t{description.removeprefix('(allowed) ')}")
        return 0
    unknown = [mode for mode in args.bug
               if mode not in BUGS and not (mode.startswith(OMIT_VAR) and CGI_VAR_NAME.match(mode[len(OMIT_VAR):]))]
    if unknown:
        return usage_error(f"unknown bug mode {unknown[0]!r} (--help lists the modes)")
    listen = args.listen or os.environ.get("FCGISPEC_HTTP_PORT")
    app = args.app
    if app is None and os.environ.get("FCGISPEC_APP_PORT"):
        app = f"{os.environ.get('FCGISPEC_APP_HOST') or '127.0.0.1'}:{os.environ['FCGISPEC_APP_PORT']}"
    if not listen or not app:
        return usage_error("--listen PORT and --app HOST:PORT are needed (or FCGISPEC_HTTP_PORT, FCGISPEC_APP_PORT)")
    try:
        port = port_number(listen)
        app_host, _, app_port = app.rpartition(":")
        app_address = (app_host.strip("[]") or "127.0.0.1", port_number(app_port))
    except ValueError:
        return usage_error(f"bad port in --listen {listen!r} or --app {app!r}")
    if args.read_timeout <= 0:
        return usage_error("--read-timeout must be positive")

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = GatewayServer(port, Gateway(app_address, frozenset(args.bug), args.read_timeout, port))
    except OSError as error:
        return usage_error(f"cannot listen on 127.0.0.1:{port}: {error}")
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    serving.start()
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
