"""The client adapters (harness/clients/registry.py, client-adapters/) speak the adapter protocol, and a
change in a real client's recorded results (fixtures/client-expected/) is noticed.

Protocol tests: every adapter (and the C reference client's, as a check of these tests) against a tiny local
HTTP/1.1 server with a per-connection ledger, over HTTP and over HTTPS with a CA made at run time. A client whose
package or toolchain is missing is skipped with the reason (what to apt-get install).

Recorded results: the client suite (cases/client) is run against each installed real client and compared with its
expected file; a difference fails with the case ids, the recorded verdict and the new one. The suite takes about
half a minute per client; FCGISPEC_SKIP_CLIENT_RESULTS=1 skips these (saying so) for a quick run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from harness.clients import registry as ca

ROOT = Path(__file__).resolve().parent.parent
SHA_FOO = hashlib.sha256(b"foo").hexdigest()
SHA_EMPTY = hashlib.sha256(b"").hexdigest()
BIG = bytes(range(256)) * 4096  # 1 MiB


class Conn:
    def __init__(self, port: int):
        self.port = port
        self.requests: list[str] = []
        self.closed_by_client = threading.Event()


class TinyServer:
    """HTTP/1.1 keep-alive server. Paths: /foo (body foo), /big (1 MiB), /id?v=X (body X), /hold?n=K&v=X (waits
    until K such requests are in, up to 5 s, then 200 with X, or 504), /slow?ms=M, POST/PUT echo the body length,
    HEAD gets Content-Length 3 and no body. Ledger: one Conn per accepted connection."""

    def __init__(self, tls_ctx: ssl.SSLContext | None = None):
        self.tls_ctx = tls_ctx
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[Conn] = []
        self.lock = threading.Lock()
        self.hold = threading.Condition()
        self.held = 0
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base(self) -> str:
        return f"{'https' if self.tls_ctx else 'http'}://{'localhost' if self.tls_ctx else '127.0.0.1'}:{self.port}"

    def _accept(self):
        while not self.stop:
            try:
                s, addr = self.sock.accept()
            except OSError:
                return
            c = Conn(addr[1])
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(s, c), daemon=True).start()

    def _serve(self, s: socket.socket, c: Conn):
        try:
            if self.tls_ctx:
                s = self.tls_ctx.wrap_socket(s, server_side=True)
            f = s.makefile("rb")
            while True:
                line = f.readline()
                if not line:
                    break
                method, target, _ = line.decode().split(" ", 2)
                headers = {}
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0"))
                if headers.get("expect", "").lower() == "100-continue":
                    s.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                got = f.read(n) if n else b""
                c.requests.append(f"{method} {target}")
                status, body = self._answer(method, target, got)
                head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body) if method != 'HEAD' else 3}\r\n\r\n"
                s.sendall(head.encode() + (b"" if method == "HEAD" else body))
        except (OSError, ValueError, ssl.SSLError):
            pass
        finally:
            c.closed_by_client.set()
            try:
                s.close()
            except OSError:
                pass

    def _answer(self, method: str, target: str, got: bytes) -> tuple[int, bytes]:
        u = urlsplit(target)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if method in ("POST", "PUT", "PATCH"):
            return 200, str(len(got)).encode()
        if u.path == "/big":
            return 200, BIG
        if u.path == "/id":
            return 200, q.get("v", "").encode()
        if u.path == "/slow":
            time.sleep(int(q.get("ms", "1000")) / 1000)
            return 200, b"foo"
        if u.path == "/hold":
            with self.hold:
                self.held += 1
                self.hold.notify_all()
                ok = self.hold.wait_for(lambda: self.held >= int(q.get("n", "1")), timeout=5)
            return (200, q.get("v", "").encode()) if ok else (504, b"not concurrent")
        return 200, b"foo"

    def close(self):
        self.stop = True
        self.sock.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl command not found (apt-get install openssl)")
    d = tmp_path_factory.mktemp("tls")
    run = lambda *a: subprocess.run(a, cwd=d, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=fcgispec test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                               "extendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    return d


CLIENTS = ["reference"] + list(ca.NAMED_CLIENTS)


def adapter_argv(name: str) -> list[str]:
    try:
        if name == "reference":
            return ca.reference_adapter(ROOT)
        return ca.NAMED_CLIENTS[name](ROOT)
    except ca.ClientUnavailable as exc:
        pytest.skip(f"{name}: {exc}")


def run_adapter(name: str, lines: list[str], *opts: str, timeout: float = 60) -> tuple[list[dict], float]:
    argv = adapter_argv(name) + list(opts)
    t0 = time.monotonic()
    r = subprocess.run(argv, input="".join(line + "\n" for line in lines), capture_output=True, text=True,
                       timeout=timeout)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, f"{argv} exited {r.returncode}: {r.stderr[-2000:]}"
    out = []
    for raw in r.stdout.splitlines():
        d = json.loads(raw)
        assert list(d)[:4] == ["status", "body_length", "body_sha256", "error"], raw
        assert set(d) <= {"status", "body_length", "body_sha256", "error", "reused", "connects"}, raw
        out.append(d)
    return out, elapsed


def ok(d: dict, sha: str, length: int, status: int = 200):
    assert d["error"] is None, d
    assert (d["status"], d["body_length"], d["body_sha256"]) == (status, length, sha), d


@pytest.fixture
def server():
    s = TinyServer()
    yield s
    s.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_requests_and_reuse(client, server):
    b = server.base
    res, _ = run_adapter(client, [f"GET {b}/foo", f"GET {b}/id?v=hello X-Test:1", f"POST {b}/p 5000",
                                  f"HEAD {b}/h", f"PUT {b}/p 7", f"DELETE {b}/d", f"OPTIONS {b}/o",
                                  f"PATCH {b}/p 3", f"POST {b}/p"])
    assert len(res) == 9
    ok(res[0], SHA_FOO, 3)
    ok(res[1], hashlib.sha256(b"hello").hexdigest(), 5)
    ok(res[2], hashlib.sha256(b"5000").hexdigest(), 4)
    ok(res[3], SHA_EMPTY, 0)
    ok(res[4], hashlib.sha256(b"7").hexdigest(), 1)
    ok(res[5], SHA_FOO, 3)
    ok(res[6], SHA_FOO, 3)
    ok(res[7], hashlib.sha256(b"3").hexdigest(), 1)
    ok(res[8], hashlib.sha256(b"0").hexdigest(), 1)
    # One long-lived client: every request on the one keep-alive connection.
    assert [c.requests for c in server.conns] == [["GET /foo", "GET /id?v=hello", "POST /p", "HEAD /h", "PUT /p",
                                                   "DELETE /d", "OPTIONS /o", "PATCH /p", "POST /p"]]
    if "reused" in res[1]:
        assert res[0]["reused"] is False and all(r["reused"] for r in res[1:]), res
    if "connects" in res[-1]:
        assert res[-1]["connects"] == 1


@pytest.mark.parametrize("client", CLIENTS)
def test_abandon(client, server):
    b = server.base
    res, _ = run_adapter(client, [f"ABANDON {b}/big 10", f"ABANDON {b}/big 0", f"GET {b}/foo"])
    ok(res[0], hashlib.sha256(BIG[:10]).hexdigest(), 10)
    ok(res[1], SHA_EMPTY, 0)
    ok(res[2], SHA_FOO, 3)


@pytest.mark.parametrize("client", CLIENTS)
def test_concurrent_in_input_order(client, server):
    b = server.base
    res, _ = run_adapter(client, ["CONCURRENT 3", f"GET {b}/hold?n=3&v=a", f"GET {b}/hold?n=3&v=bb",
                                  f"GET {b}/hold?n=3&v=ccc", f"GET {b}/foo"])
    assert len(res) == 4
    for d, v in zip(res, [b"a", b"bb", b"ccc"]):
        ok(d, hashlib.sha256(v).hexdigest(), len(v))  # 504 here: the three were not in flight at once
    ok(res[3], SHA_FOO, 3)
    assert len(server.conns) == 3


@pytest.mark.parametrize("client", CLIENTS)
def test_sleep_and_close_idle(client, server):
    b = server.base
    res, elapsed = run_adapter(client, [f"GET {b}/foo", "SLEEP 400", "CLOSE_IDLE", "SLEEP 200", f"GET {b}/foo"])
    assert len(res) == 2, "SLEEP and CLOSE_IDLE write no line"
    ok(res[0], SHA_FOO, 3)
    ok(res[1], SHA_FOO, 3)
    assert elapsed >= 0.6
    assert len(server.conns) == 2, "CLOSE_IDLE closed the idle connection: the next request opens a new one"
    assert server.conns[0].closed_by_client.wait(2), "the server saw EOF on the connection CLOSE_IDLE closed"
    assert server.conns[0].requests == ["GET /foo"]
    if "reused" in res[1]:
        assert res[1]["reused"] is False


@pytest.mark.parametrize("client", CLIENTS)
def test_errors_are_lines(client, server):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()  # nothing listens there now
    res, _ = run_adapter(client, [f"GET http://127.0.0.1:{dead}/x", f"GET {server.base}/foo"])
    assert res[0]["status"] is None and res[0]["body_sha256"] is None and res[0]["body_length"] == 0
    assert isinstance(res[0]["error"], str) and res[0]["error"]
    ok(res[1], SHA_FOO, 3)


@pytest.mark.parametrize("client", CLIENTS)
def test_timeout_and_max_idle_option(client, server):
    b = server.base
    res, elapsed = run_adapter(client, [f"GET {b}/slow?ms=8000", f"GET {b}/foo"], "--timeout", "1",
                               "--max-idle-per-host", "1")
    assert res[0]["status"] is None and res[0]["error"], res[0]
    ok(res[1], SHA_FOO, 3)
    # Per attempt: urllib3 spends its default Retry(3) on read timeouts of a GET (4 attempts of 1 s).
    assert elapsed < 7.5, "--timeout 1 bounds each attempt"


@pytest.mark.parametrize("client", CLIENTS)
def test_https_cacert(client, tls_files):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls_files / "srv.pem", tls_files / "srv.key")
    server = TinyServer(ctx)
    try:
        b = server.base
        res, _ = run_adapter(client, [f"GET {b}/foo", f"ABANDON {b}/big 5", f"GET {b}/id?v=tls"],
                             "--cacert", str(tls_files / "ca.pem"))
        ok(res[0], SHA_FOO, 3)
        ok(res[1], hashlib.sha256(BIG[:5]).hexdigest(), 5)
        ok(res[2], hashlib.sha256(b"tls").hexdigest(), 3)
        assert server.conns[0].requests[0] == "GET /foo"
        # Without --cacert the suite's CA is not trusted: verification is on.
        res, _ = run_adapter(client, [f"GET {b}/foo"])
        assert res[0]["status"] is None and res[0]["error"], res[0]
    finally:
        server.close()


# -- recorded results of the real clients --

RESULTS_OFF = os.environ.get("FCGISPEC_SKIP_CLIENT_RESULTS") == "1"


@pytest.mark.parametrize("client", sorted(ca.NAMED_CLIENTS))
def test_recorded_results_unchanged(client):
    path = ca.expected_path(client, ROOT)
    if not path.exists():
        pytest.skip(f"no recorded results for {client}: {path} (write it with "
                    f"`/usr/bin/python3 -m harness.clients.registry record {client}`)")
    why = ca.unavailable_reason(client, ROOT)
    if why:
        pytest.skip(f"{client} not installed here: {why}")
    if not (ROOT / "cases" / "client").is_dir():
        pytest.skip("cases/client (the client suite) is not there")
    if RESULTS_OFF:
        pytest.skip("FCGISPEC_SKIP_CLIENT_RESULTS=1: the client suite is not run against the real clients")
    expected = ca.load_expected(client, ROOT)
    diffs = ca.compare(expected, ca.run_suite(client, ROOT))
    assert not diffs, (f"{client}'s results differ from {path.relative_to(ROOT)} (recorded with "
                       f"{expected.get('version')}, now {ca.client_version(client, ROOT)}):\n" + "\n".join(diffs))


def test_expected_files_are_well_formed():
    files = sorted((ROOT / ca.EXPECTED_DIR).glob("*.json"))
    if not files:
        pytest.skip(f"no expected-results files in {ca.EXPECTED_DIR} yet")
    for f in files:
        data = json.loads(f.read_text())
        assert data["client"] in ca.NAMED_CLIENTS, f
        assert f.stem == data["client"]
        for cid, entry in data["cases"].items():
            verdicts = entry["verdict"] if isinstance(entry["verdict"], list) else [entry["verdict"]]
            assert verdicts and all(isinstance(v, str) for v in verdicts), (f, cid)
            if verdicts != ["pass"]:
                assert entry.get("evidence", "").strip(), f"{f.name} {cid}: a non-pass needs its evidence"
                assert not entry["evidence"].startswith("TODO"), f"{f.name} {cid}: evidence still to be written"


def test_compare_notices_a_change():
    expected = {"cases": {"CLI-REUSE-1": {"verdict": "pass"},
                          "CLI-REUSE-7": {"verdict": "fail", "evidence": "no retry"},
                          "CLI-REUSE-25": {"verdict": ["pass", "fail"], "evidence": "timing"}}}
    same = {"CLI-REUSE-1": {"verdict": "pass", "message": ""}, "CLI-REUSE-7": {"verdict": "fail", "message": "x"},
            "CLI-REUSE-25": {"verdict": "fail", "message": ""}}
    assert ca.compare(expected, same) == []
    changed = dict(same, **{"CLI-REUSE-7": {"verdict": "pass", "message": ""}})
    assert ca.compare(expected, changed) == ["CLI-REUSE-7: recorded fail, now pass: "]
    missing = {k: v for k, v in same.items() if k != "CLI-REUSE-1"}
    assert any("did not run" in d for d in ca.compare(expected, missing))
    new = dict(same, **{"CLI-REUSE-99": {"verdict": "pass", "message": ""}})
    assert any("new case" in d for d in ca.compare(expected, new))
