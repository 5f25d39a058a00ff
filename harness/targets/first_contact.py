"""The check before the first case: does the target speak FastCGI at all?

A wrong or dead target would otherwise fail every case, each after its own timeout, with hints
about real bugs that were never tested. So the run asks twice, at once and each on a new
connection: a plain request (what the liveness probe sends) and a GET_VALUES (what capability
discovery sends). A target that answers either with a FastCGI record header is tested normally
(the cases judge what is wrong with it); one that answers neither ends the run with one verdict
that says what it did instead (refused, no such socket, sent HTTP, said nothing, died).

A spawned target that died is started again once: one that dies twice in a row cannot be tested.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import stat
import time
from dataclasses import dataclass, field

from harness.targets.base import Target, TargetError, UnixTarget
from harness.wire.capabilities import CAPABILITY_NAMES
from harness.wire.codec import (
    MANAGEMENT_REQUEST_ID,
    RecordType,
    Role,
    begin_request_body,
    encode_params,
    encode_record,
    preview_bytes,
    stream_records,
)
from harness.wire.probe_app import probe_params

REQUEST_ID = 1
HEADER_LENGTH = 8
FCGI_VERSION = 1
# The record types a FastCGI peer can send (1..11); anything else is not taken for a header.
KNOWN_TYPES = range(RecordType.BEGIN_REQUEST, RecordType.UNKNOWN_TYPE + 1)
# How long a spawned target that closed our connections gets to be seen exiting.
EXIT_GRACE = 0.5
# The bytes of what a target sent instead, shown in the verdict.
SHOWN_BYTES = 40
LOG_TAIL_LINES = 5


@dataclass
class _Exchange:
    """One of the two questions on its own connection, and what came back."""

    label: str
    sock: socket.socket
    received: bytes = b""
    closed: str = ""  # "" while open; else how the target closed it
    done: bool = field(default=False)

    def answered_fastcgi(self) -> bool:
        """A FastCGI record header came back: version 1 and a record type a peer can send."""
        head = self.received[:HEADER_LENGTH]
        return len(head) == HEADER_LENGTH and head[0] == FCGI_VERSION and head[1] in KNOWN_TYPES


def check_target_answers(target: Target, name: str, wait: float) -> str | None:
    """None when the target answered a plain request or a GET_VALUES with FastCGI within `wait`
    seconds; else one line (a log tail may follow on further lines) saying why nothing can be
    tested. `name` is how the user named the target (--target)."""
    problem = _ask(target, wait)
    if problem is None:
        return None
    if not target.spawned or not _exited(target):
        return f"target {name}: {problem}"
    first = target.exit_text()
    try:
        target.restart()
    except TargetError as error:
        return f"target {name}: {first}, and could not be started again: {error}"
    problem = _ask(target, wait)
    if problem is None:
        return None
    if not _exited(target):
        return f"target {name}: {problem}"
    tail = [line for line in target.log_tail().splitlines() if line.strip()][-LOG_TAIL_LINES:]
    said = "; its output ends:\n" + "\n".join(f"  {line}" for line in tail) if tail else "; it wrote nothing"
    return f"target {name}: {problem} (the process: {target.exit_text()}, twice in a row){said}"


def _exited(target: Target) -> bool:
    """Whether a spawned target has exited (given a moment: it may be closing our connections as it dies)."""
    end_time = time.monotonic() + EXIT_GRACE
    while target.exit_status() is None and time.monotonic() < end_time:
        time.sleep(0.02)
    return target.exit_status() is not None


def _ask(target: Target, wait: float) -> str | None:
    """None when FastCGI came back, else what happened instead."""
    try:
        family, address = target.address()
    except TargetError as error:
        return str(error)
    if isinstance(target, UnixTarget):
        problem = _socket_file_problem(target.path)
        if problem:
            return problem
    exchanges: list[_Exchange] = []
    try:
        for label, data in (("a plain request", _plain_request(target)), ("GET_VALUES", _get_values())):
            sock = socket.socket(family, socket.SOCK_STREAM)
            exchanges.append(_Exchange(label, sock))
            sock.settimeout(wait)
            try:
                sock.connect(address)
            except OSError as error:
                return _connect_problem(error, wait)
            try:
                sock.sendall(data)
            except OSError as error:
                exchanges[-1].closed = _describe_os_error(error)
                exchanges[-1].done = True
        if _wait_for_answers(exchanges, wait):
            return None
    finally:
        for exchange in exchanges:
            exchange.sock.close()
    return _describe_silence(exchanges, wait)


def _wait_for_answers(exchanges: list[_Exchange], wait: float) -> bool:
    """Read both connections until one shows a FastCGI record header (True), or both ended or the wait is over."""
    end_time = time.monotonic() + wait
    with selectors.DefaultSelector() as selector:
        for exchange in exchanges:
            if not exchange.done:
                exchange.sock.setblocking(False)
                selector.register(exchange.sock, selectors.EVENT_READ, exchange)
        while selector.get_map():
            remaining = end_time - time.monotonic()
            if remaining <= 0:
                return False
            for key, _ in selector.select(remaining):
                exchange = key.data
                try:
                    chunk = exchange.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as error:
                    chunk, exchange.closed = b"", _describe_os_error(error)
                if chunk:
                    exchange.received += chunk
                    if exchange.answered_fastcgi():
                        return True
                    continue
                exchange.closed = exchange.closed or "closed the connection"
                exchange.done = True
                selector.unregister(exchange.sock)
    return False


def _describe_silence(exchanges: list[_Exchange], wait: float) -> str:
    """What the target did instead of answering FastCGI, e.g. "accepted the connection but answered no
    FastCGI record within 5 s (it sent: "HTTP/1.1 400 Bad Request...")"."""
    sent = next((e.received for e in exchanges if e.received), b"")
    shown = f"it sent: {preview_bytes(sent, SHOWN_BYTES)}" if sent else "it sent nothing"
    if all(e.closed for e in exchanges):
        how = exchanges[0].closed
        return (f"answered no FastCGI record to a plain request nor to GET_VALUES: "
                f"{shown + ' and ' if sent else 'it '}{how}")
    return f"accepted the connection but answered no FastCGI record within {wait:g} s ({shown})"


def _plain_request(target: Target) -> bytes:
    params = encode_params(probe_params(script_filename=target.script_filename))
    return b"".join(
        [encode_record(RecordType.BEGIN_REQUEST, REQUEST_ID, begin_request_body(Role.RESPONDER, 0))]
        + stream_records(RecordType.PARAMS, REQUEST_ID, params)
        + stream_records(RecordType.STDIN, REQUEST_ID, b"")
    )


def _get_values() -> bytes:
    return encode_record(RecordType.GET_VALUES, MANAGEMENT_REQUEST_ID, encode_params((n, b"") for n in CAPABILITY_NAMES))


def _socket_file_problem(path: str) -> str:
    """'' when path is a socket file; else what it is instead."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"no such socket: {path} does not exist"
    except OSError as error:
        return f"cannot look at {path}: {error.strerror}"
    if not stat.S_ISSOCK(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a regular file" if stat.S_ISREG(mode) else "not a socket file"
        return f"not a socket: {path} is {kind}"
    return ""


def _connect_problem(error: OSError, wait: float) -> str:
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name ({error.strerror})"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return f"connection timed out after {wait:g} s"
    if error.errno == errno.ECONNREFUSED:
        return "connection refused (nothing listens there)"
    return f"cannot connect: {error.strerror or error}"


def _describe_os_error(error: OSError) -> str:
    """How the target ended a connection we used, as in "it reset the connection"."""
    if error.errno in (errno.ECONNRESET, errno.EPIPE):
        return "reset the connection"
    return f"broke the connection ({error.strerror or error})"
