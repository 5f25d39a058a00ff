#!/usr/bin/python3
"""Client adapter on urllib3 (Debian's python3-urllib3): ONE PoolManager for the adapter's life.

The PoolManager is built as an application builds it: PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=--cacert,
maxsize=--max-idle-per-host, timeout=Timeout(connect=T, read=T)), with urllib3's default Retry (3 attempts,
which urllib3 spends on connection errors of any method and on read errors of idempotent methods) and its default
liveness check before reusing a pooled connection (is_connection_dropped: a zero-timeout poll for readability).
Without --max-idle-per-host the pool keeps urllib3's default maxsize (1 per host; with block=False an extra
connection is made and discarded with "Connection pool is full" when it comes back).

Each request is made with preload_content=False and the body read with resp.stream(); then resp.release_conn()
(urllib3's documented way to hand the connection back). ABANDON reads N bytes with resp.read(), then resp.close()
(closes the connection) and resp.release_conn() (returns the closed slot to the pool), as requests'
Response.close() does. Content decoding is urllib3's default (decode_content=True). Redirects are not followed
(redirect=False), so that one request line gives the one response the server sent, as with the other adapters.

"reused"/"connects" come from urllib3_instrument (observation only).
"""

from __future__ import annotations

import sys

import adapter_protocol as ap
import urllib3
import urllib3_instrument as inst


class Client:
    def __init__(self, args):
        kw = {"cert_reqs": "CERT_REQUIRED", "timeout": urllib3.Timeout(connect=args.timeout, read=args.timeout)}
        if args.cacert:
            kw["ca_certs"] = args.cacert
        if args.max_idle_per_host is not None:
            kw["maxsize"] = max(1, args.max_idle_per_host)
        self.pm = urllib3.PoolManager(**kw)
        self.counter = inst.Counter()
        inst.instrument(self.pm, self.counter)

    @property
    def connects(self):
        return self.counter.connects

    def close_idle(self):
        # PoolManager.clear() closes every pool and, in each, every idle connection (HTTPConnectionPool.close()).
        self.pm.clear()

    def perform(self, job: ap.Job) -> dict:
        sink = ap.BodySink(job)
        self.counter.local.reused = None
        try:
            resp = self.pm.request(job.method, job.url, body=job.body, headers=dict(job.headers),
                                   preload_content=False, redirect=False)
        except Exception as exc:
            return sink.fail(ap.error_text(exc), inst.last_reused(self.counter), self.connects)
        reused = inst.last_reused(self.counter)
        try:
            if job.abandon_after is None:
                for data in resp.stream(65536):
                    sink.feed(data)
                resp.release_conn()
            else:
                while sink.want():
                    data = resp.read(sink.want())
                    if not data:
                        break
                    sink.feed(data)
                resp.close()
                resp.release_conn()
        except Exception as exc:
            try:
                resp.release_conn()
            except Exception:
                pass
            return sink.fail(ap.error_text(exc), reused, self.connects)
        return sink.ok(resp.status, reused, self.connects)


if __name__ == "__main__":
    sys.exit(ap.main(Client))
