#!/usr/bin/python3
"""Client adapter on CPython's http.client, with the per-origin pool a careful program writes around it.

http.client has no pool: HTTPConnection is one connection that reconnects by itself when its socket was closed
(after a response that said `Connection: close`, HTTP/1.0 without keep-alive, or a close-delimited body). The pool
here is what a careful program adds, and no more:

- one LIFO list of idle HTTPConnection/HTTPSConnection objects per (scheme, host, port), at most
  --max-idle-per-host of them (default 10); a connection coming back to a full list is closed;
- the body is read with one resp.read() (the usual idiom; IncompleteRead on a short body), ABANDON with read(N);
  a connection goes back to the pool only when its body was read whole and http.client did not mark the response
  `will_close`; an abandoned body, an error, or a will_close response closes it;
- a request on a *reused* connection that fails before any response byte (RemoteDisconnected, ConnectionResetError,
  BrokenPipeError, ConnectionAbortedError: the keep-alive race) is retried once on a fresh connection, only for
  idempotent methods. This is xmlrpc.client.Transport.request's retry in the standard library, restricted to
  idempotent methods as RFC 9112 section 9.3.1 asks;
- no liveness check before reuse: http.client has none, and a pool of http.client connections normally does not
  probe (urllib3 is the pool that does).

--cacert builds the ssl context with ssl.create_default_context(cafile=...). --timeout is the socket timeout
(per connect/read/write operation, as http.client applies it).
"""

from __future__ import annotations

import http.client
import ssl
import sys
import threading
from urllib.parse import urlsplit

import adapter_protocol as ap

RACE_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class Client:
    def __init__(self, args):
        self.timeout = args.timeout
        self.max_idle = args.max_idle_per_host if args.max_idle_per_host is not None else 10
        self.ctx = ssl.create_default_context(cafile=args.cacert) if args.cacert else ssl.create_default_context()
        self.lock = threading.Lock()
        self.idle: dict[tuple, list] = {}
        self.connects = 0
        client = self

        class Counting:
            def connect(self):
                super().connect()
                with client.lock:
                    client.connects += 1

        class Conn(Counting, http.client.HTTPConnection):
            pass

        class TLSConn(Counting, http.client.HTTPSConnection):
            pass

        self.Conn, self.TLSConn = Conn, TLSConn

    # -- pool --
    def _get(self, origin, fresh=False):
        with self.lock:
            idle = self.idle.get(origin)
            while idle and not fresh:
                conn = idle.pop()
                if conn.sock is not None:
                    return conn, True
                conn.close()
        scheme, host, port = origin
        if scheme == "https":
            return self.TLSConn(host, port, timeout=self.timeout, context=self.ctx), False
        return self.Conn(host, port, timeout=self.timeout), False

    def _put(self, origin, conn):
        with self.lock:
            idle = self.idle.setdefault(origin, [])
            if len(idle) < self.max_idle:
                idle.append(conn)
                return
        conn.close()

    def close_idle(self):
        with self.lock:
            conns = [c for lst in self.idle.values() for c in lst]
            self.idle.clear()
        for c in conns:
            c.close()

    # -- one request --
    def perform(self, job: ap.Job) -> dict:
        u = urlsplit(job.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            return ap.result(None, 0, None, "adapter: unsupported URL", None, self.connects)
        origin = (u.scheme, u.hostname, u.port or (443 if u.scheme == "https" else 80))
        target = (u.path or "/") + ("?" + u.query if u.query else "")
        headers = dict(job.headers)
        for attempt in (0, 1):
            conn, reused = self._get(origin, fresh=attempt > 0)
            sink = ap.BodySink(job)
            try:
                conn.request(job.method, target, body=job.body, headers=headers)
                resp = conn.getresponse()
            except RACE_ERRORS as exc:
                conn.close()
                if reused and attempt == 0 and job.method in ap.IDEMPOTENT:
                    continue
                return sink.fail(ap.error_text(exc), reused, self.connects)
            except Exception as exc:
                conn.close()
                return sink.fail(ap.error_text(exc), reused, self.connects)
            complete = False
            try:
                if job.abandon_after is None:
                    # The whole body in one read(), the usual http.client idiom: it raises IncompleteRead when a
                    # Content-Length or chunked body ends early (read(amt) in a loop would not: it returns b"").
                    sink.feed(resp.read())
                    complete = True
                else:
                    while sink.want():
                        data = resp.read(sink.want())
                        if not data:
                            complete = True
                            break
                        sink.feed(data)
            except http.client.IncompleteRead as exc:
                sink.feed(exc.partial)
                conn.close()
                return sink.fail(ap.error_text(exc), reused, self.connects)
            except Exception as exc:
                conn.close()
                return sink.fail(ap.error_text(exc), reused, self.connects)
            status = resp.status
            if complete and not resp.will_close:
                resp.close()
                self._put(origin, conn)
            else:
                resp.close()
                conn.close()
            return sink.ok(status, reused, self.connects)
        raise AssertionError("unreachable")


if __name__ == "__main__":
    sys.exit(ap.main(Client))
