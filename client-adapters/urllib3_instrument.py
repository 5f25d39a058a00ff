"""Observation-only instrumentation of urllib3's pools, shared by the urllib3 and requests adapters.

It changes nothing in how urllib3 behaves: the connection classes are urllib3's own, subclassed only to count
connect() calls (connects) and to note whether the request a connection object sends is its first since it last
connected (reused). urllib3 reconnects a dropped pooled connection object in place, so "reused" is tracked per
connect, not per object.
"""

from __future__ import annotations

import threading

import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.connects = 0
        self.local = threading.local()  # per thread: whether its last request went on a reused connection


def instrument(pm: urllib3.PoolManager, counter: Counter) -> None:
    def mixin(base):
        class Conn(base):
            _fcgispec_fresh = False

            def connect(self):
                self._fcgispec_fresh = True
                super().connect()
                with counter.lock:
                    counter.connects += 1

            def _fcgispec_note(self):
                # A connection object not yet connected connects inside request(): that is not a reuse.
                counter.local.reused = self.sock is not None and not self._fcgispec_fresh

            def request(self, *a, **kw):
                self._fcgispec_note()
                try:
                    return super().request(*a, **kw)
                finally:
                    self._fcgispec_fresh = False

            def request_chunked(self, *a, **kw):
                self._fcgispec_note()
                try:
                    return super().request_chunked(*a, **kw)
                finally:
                    self._fcgispec_fresh = False

        return Conn

    class Pool(HTTPConnectionPool):
        ConnectionCls = mixin(HTTPConnectionPool.ConnectionCls)

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = mixin(HTTPSConnectionPool.ConnectionCls)

    pm.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}


def last_reused(counter: Counter):
    return getattr(counter.local, "reused", None)
