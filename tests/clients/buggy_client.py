#!/usr/bin/env python3
"""A deliberately simple HTTP/1.1 client adapter with a connection pool, correct by default, and
`--bug NAME` switches that each make one classic connection-reuse mistake.

It proves that the client suite (cases/client/) can fail: the project's tests run it with each bug
and expect the case that names that mistake to fail or warn. It is independent of the suite on
purpose: standard library sockets and ssl only (no harness/, no http.client, no urllib3).

Adapter protocol: request lines on stdin (METHOD URL [BODYLEN] [Name:Value]..., ABANDON URL N,
CONCURRENT K, SLEEP MS, CLOSE_IDLE), one JSON line per request on stdout.
Options: --cacert PATH, --max-idle-per-host N, --timeout SECONDS, --bug NAME (repeatable).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import select
import socket
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit

BUGS = {
    "reuse-after-eof": "the idle check ignores EOF (plain TCP and TLS)",
    "reuse-after-close-notify": "the idle check is skipped for TLS connections (close_notify unnoticed)",
    "ignore-connection-close": "a Connection: close response leaves the connection pooled",
    "reuse-http10": "an HTTP/1.0 response without keep-alive leaves the connection pooled",
    "no-release-on-content-length-end": "a finished Content-Length body does not release its connection",
    "leak-excess-idle": "connections beyond max-idle-per-host are dropped without being closed",
    "retry-post": "any request, POST included, is retried after a reused connection died",
    "no-retry": "no request is ever retried",
    "reuse-after-truncated-body": "a body cut short by EOF is delivered as complete, the connection pooled",
    "reuse-after-abandoned-body": "an abandoned body's connection goes back to the pool",
    "parse-body-on-head": "a HEAD response's framing headers are obeyed",
    "parse-body-on-204": "a 204 response's framing headers are obeyed",
    "parse-body-on-304": "a 304 response's framing headers are obeyed",
    "deliver-unsolicited-408": "bytes waiting on an idle connection do not make it unusable",
}
IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"}
MAX_INTERIM = 10
MAX_HEAD = 65536


class HttpError(Exception):
    def __init__(self, text: str, *, got_bytes: bool = False) -> None:
        super().__init__(text)
        self.got_bytes = got_bytes


class Conn:
    def __init__(self, sock: socket.socket, origin: tuple[str, str, int], tls: bool) -> None:
        self.sock = sock
        self.origin = origin
        self.tls = tls
        self.buf = b""

    def more(self) -> bytes:
        try:
            data = self.sock.recv(65536)
        except ssl.SSLZeroReturnError:
            data = b""
        except (ConnectionResetError, ssl.SSLEOFError):
            raise HttpError("connection reset") from None
        except socket.timeout:
            raise HttpError("timeout") from None
        self.buf += data
        return data

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise HttpError("line too long")
            if not self.more():
                raise HttpError("connection closed")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def take(self, count: int) -> bytes:
        """Up to count bytes (fewer only at EOF)."""
        while len(self.buf) < count:
            if not self.more():
                break
        data, self.buf = self.buf[:count], self.buf[count:]
        return data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.bugs: set[str] = set(args.bug)
        self.timeout: float = args.timeout
        self.max_idle: int = args.max_idle_per_host
        self.lock = threading.Lock()
        self.idle: dict[tuple[str, str, int], list[Conn]] = {}
        self.leaked: list[Conn] = []  # kept referenced, so the garbage collector does not close them
        self.connects = 0
        self.context = ssl.create_default_context(cafile=args.cacert) if args.cacert else ssl.create_default_context()

    # ---- the pool ----------------------------------------------------------------------------
    def alive(self, conn: Conn) -> bool:
        if conn.buf:
            return "deliver-unsolicited-408" in self.bugs
        if conn.tls and "reuse-after-close-notify" in self.bugs:
            return True
        sock = conn.sock
        pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        if not pending and not select.select([sock], [], [], 0)[0]:
            return True
        if not conn.tls:
            try:
                data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return "reuse-after-eof" in self.bugs
            return "deliver-unsolicited-408" in self.bugs
        sock.setblocking(False)
        try:
            data = sock.recv(4096)
        except ssl.SSLWantReadError:
            return True  # a post-handshake message (a session ticket): still alive
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            data = b""
        except OSError:
            return False
        finally:
            sock.settimeout(self.timeout)
        if not data:
            return "reuse-after-eof" in self.bugs
        conn.buf += data
        return "deliver-unsolicited-408" in self.bugs

    def acquire(self, origin: tuple[str, str, int]) -> tuple[Conn, bool]:
        while True:
            with self.lock:
                pool = self.idle.get(origin, [])
                conn = pool.pop() if pool else None
            if conn is None:
                return self.dial(origin), False
            if self.alive(conn):
                return conn, True
            conn.close()

    def dial(self, origin: tuple[str, str, int]) -> Conn:
        scheme, host, port = origin
        try:
            sock = socket.create_connection((host, port), timeout=self.timeout)
            if scheme == "https":
                sock = self.context.wrap_socket(sock, server_hostname=host)
        except (OSError, ssl.SSLError) as error:
            raise HttpError(f"connect: {error}") from None
        sock.settimeout(self.timeout)
        with self.lock:
            self.connects += 1
        return Conn(sock, origin, scheme == "https")

    def release(self, conn: Conn) -> None:
        with self.lock:
            pool = self.idle.setdefault(conn.origin, [])
            if len(pool) < self.max_idle:
                pool.append(conn)
                return
            if "leak-excess-idle" in self.bugs:
                self.leaked.append(conn)
                return
        conn.close()

    def close_idle(self) -> None:
        with self.lock:
            conns = [c for pool in self.idle.values() for c in pool]
            self.idle.clear()
        for conn in conns:
            conn.close()

    # ---- one exchange ------------------------------------------------------------------------
    def request(self, method: str, url: str, body_len: int, headers: list[str], abandon: int | None) -> dict:
        parts = urlsplit(url)
        scheme = parts.scheme
        origin = (scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "User-Agent: buggy-client"]
        head += [h.replace(":", ": ", 1) for h in headers]
        if body_len or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {body_len}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + b"x" * body_len
        retried = False
        while True:
            try:
                # A retry goes on a fresh connection: another pooled one may be just as dead.
                conn, reused = (self.dial(origin), False) if retried else self.acquire(origin)
            except HttpError as error:
                return result(None, b"", str(error))
            try:
                return self.exchange(conn, reused, method, data, abandon)
            except HttpError as error:
                conn.close()
                may_retry = method in IDEMPOTENT or "retry-post" in self.bugs
                if reused and not error.got_bytes and may_retry and not retried and "no-retry" not in self.bugs:
                    retried = True
                    continue
                return result(None, b"", str(error))

    def exchange(self, conn: Conn, reused: bool, method: str, data: bytes, abandon: int | None) -> dict:
        try:
            conn.sock.sendall(data)
        except (OSError, ssl.SSLError) as error:
            raise HttpError(f"send: {error}") from None
        interim = 0
        while True:
            try:
                status_line = conn.line()
            except HttpError as error:
                raise HttpError(f"no response: {error}", got_bytes=bool(interim)) from None
            version, _, rest = status_line.decode("latin-1").partition(" ")
            try:
                status = int(rest[:3])
            except ValueError:
                raise HttpError(f"bad status line {status_line[:40]!r}", got_bytes=True) from None
            fields: dict[str, str] = {}
            while True:
                line = conn.line().decode("latin-1")
                if not line:
                    break
                name, _, value = line.partition(":")
                key = name.strip().lower()
                fields[key] = (fields[key] + ", " if key in fields else "") + value.strip()
            if 100 <= status < 200 and status != 101:
                interim += 1
                if interim > MAX_INTERIM:
                    raise HttpError("too many 1xx responses", got_bytes=True)
                continue
            break
        tokens = {t.strip().lower() for t in fields.get("connection", "").split(",")}
        if version == "HTTP/1.1":
            keep = "close" not in tokens or "ignore-connection-close" in self.bugs
        else:
            keep = "keep-alive" in tokens or "reuse-http10" in self.bugs
        bodiless = (method == "HEAD" and "parse-body-on-head" not in self.bugs) \
            or (status == 204 and "parse-body-on-204" not in self.bugs) \
            or (status == 304 and "parse-body-on-304" not in self.bugs) \
            or status < 200
        body, complete = b"", True
        limit = abandon if abandon is not None else None
        if bodiless:
            pass
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            body, complete = self.read_chunked(conn, limit)
        elif "content-length" in fields:
            length = int(fields["content-length"].split(",")[0])
            want = length if limit is None else min(limit, length)
            body = conn.take(want)
            if len(body) < want:
                if "reuse-after-truncated-body" in self.bugs:
                    self.release(conn)
                    return result(status, body, None)
                raise HttpError(f"truncated body: {len(body)} of {length} bytes", got_bytes=True)
            complete = want == length
            if complete and "no-release-on-content-length-end" in self.bugs:
                self.leaked.append(conn)
                return result(status, body, None)
        else:
            keep = False
            while limit is None or len(conn.buf) < limit:
                if not conn.more():
                    break
            body = conn.buf if limit is None else conn.buf[:limit]
            conn.buf = b""
        if not complete:  # abandoned by the caller
            if "reuse-after-abandoned-body" in self.bugs:
                self.release(conn)
            else:
                conn.close()
            return result(status, body, None)
        if keep and (not conn.buf or "deliver-unsolicited-408" in self.bugs):
            self.release(conn)
        else:
            conn.close()
        return result(status, body, None)

    def read_chunked(self, conn: Conn, limit: int | None) -> tuple[bytes, bool]:
        body = b""
        while True:
            if limit is not None and len(body) >= limit:
                return body[:limit], False
            try:
                size = int(conn.line().split(b";")[0].strip() or b"x", 16)
            except ValueError:
                raise HttpError("bad chunk size", got_bytes=True) from None
            if size == 0:
                while conn.line():
                    pass
                return body, True
            chunk = conn.take(size)
            if len(chunk) < size:
                raise HttpError("truncated chunk", got_bytes=True)
            body += chunk
            if conn.line() != b"":
                raise HttpError("bad chunk end", got_bytes=True)


def result(status: int | None, body: bytes, error: str | None) -> dict:
    return {
        "status": status if error is None else None,
        "body_length": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest() if error is None else None,
        "error": error,
    }


def run_line(client: Client, line: str) -> dict:
    tokens = line.split(" ")
    try:
        if tokens[0] == "ABANDON":
            out = client.request("GET", tokens[1], 0, [], int(tokens[2]))
        else:
            method, url, rest = tokens[0], tokens[1], tokens[2:]
            body_len = 0
            if method in ("POST", "PUT", "PATCH") and rest and ":" not in rest[0]:
                body_len = int(rest.pop(0))
            out = client.request(method, url, body_len, rest, None)
    except Exception as error:  # a malformed line or an unexpected failure: an error line, never a crash
        out = result(None, b"", f"client: {error!r}")
    out["connects"] = client.connects
    return out


def emit(out: dict) -> None:
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cacert")
    parser.add_argument("--max-idle-per-host", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--bug", action="append", default=[], choices=sorted(BUGS))
    args = parser.parse_args()
    client = Client(args)
    lines = iter(sys.stdin.readline, "")
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line.startswith("SLEEP "):
            time.sleep(int(line.split()[1]) / 1000)
        elif line == "CLOSE_IDLE":
            client.close_idle()
        elif line.startswith("CONCURRENT "):
            batch = [next(lines, "").strip() for _ in range(int(line.split()[1]))]
            outs: list[dict] = [{} for _ in batch]

            def work(index: int, text: str) -> None:
                outs[index] = run_line(client, text)

            threads = [threading.Thread(target=work, args=(i, t)) for i, t in enumerate(batch)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for out in outs:
                emit(out)
        else:
            emit(run_line(client, line))
    client.close_idle()
    return 0


if __name__ == "__main__":
    sys.exit(main())
