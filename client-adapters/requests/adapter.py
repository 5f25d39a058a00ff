#!/usr/bin/python3
"""Client adapter on requests (Debian's python3-requests): ONE Session for the adapter's life.

requests.Session() as an application uses it: verify=--cacert, timeout=(T, T), stream=True so that a body error
part-way reports the bytes read so far; the body is read with iter_content(65536) and the response closed with
r.close() (after a complete read that only releases the connection to the pool; after ABANDON's partial r.raw.read
it closes the connection first, which is requests' own Response.close()). --max-idle-per-host mounts
HTTPAdapter(pool_maxsize=N) for http:// and https:// (requests' default adapter: pool_maxsize=10, and max_retries=0,
i.e. urllib3 Retry(0, read=False): requests never retries a request on its own, not even an idempotent one, but
urllib3's liveness check before reuse still applies).

Redirects are not followed (allow_redirects=False): one request line, one response, as with the other adapters.
"reused"/"connects" come from urllib3_instrument (observation only).
"""

from __future__ import annotations

import sys

import adapter_protocol as ap
import requests
import urllib3_instrument as inst
from requests.adapters import HTTPAdapter


class Client:
    def __init__(self, args):
        self.session = requests.Session()
        if args.max_idle_per_host is not None:
            n = max(1, args.max_idle_per_host)
            self.session.mount("http://", HTTPAdapter(pool_maxsize=n))
            self.session.mount("https://", HTTPAdapter(pool_maxsize=n))
        self.verify = args.cacert if args.cacert else True
        self.timeout = (args.timeout, args.timeout)
        self.counter = inst.Counter()
        for adapter in self.session.adapters.values():
            inst.instrument(adapter.poolmanager, self.counter)

    @property
    def connects(self):
        return self.counter.connects

    def close_idle(self):
        # HTTPAdapter.close() clears its PoolManager: every pool closes its idle connections.
        for adapter in self.session.adapters.values():
            adapter.poolmanager.clear()

    def perform(self, job: ap.Job) -> dict:
        sink = ap.BodySink(job)
        self.counter.local.reused = None
        try:
            r = self.session.request(job.method, job.url, data=job.body, headers=dict(job.headers),
                                     timeout=self.timeout, verify=self.verify, stream=True,
                                     allow_redirects=False)
        except Exception as exc:
            return sink.fail(ap.error_text(exc), inst.last_reused(self.counter), self.connects)
        reused = inst.last_reused(self.counter)
        try:
            if job.abandon_after is None:
                for data in r.iter_content(65536):
                    sink.feed(data)
            else:
                while sink.want():
                    data = r.raw.read(sink.want(), decode_content=True)
                    if not data:
                        break
                    sink.feed(data)
        except Exception as exc:
            r.close()
            return sink.fail(ap.error_text(exc), reused, self.connects)
        finally:
            r.close()
        return sink.ok(r.status_code, reused, self.connects)


if __name__ == "__main__":
    sys.exit(ap.main(Client))
