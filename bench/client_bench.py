#!/usr/bin/python3
"""Benchmark: N sequential keep-alive GETs to one local server, over HTTP and over HTTPS, the reference C
client against libcurl in one run. Prints requests per second, their ratio, and connections opened (the goal: one
connection; the reference at least as fast as libcurl). A script that prints numbers, not a test.

Both clients are driven the same way, through their adapters (client-adapters/adapter_protocol.py): N `GET URL` lines on
stdin, one JSON line (status, body length, SHA-256) per response on stdout, so both pay the same per-request
protocol cost. The clock runs from the first line written to the last result read, after one warm-up request that
opened the connection (and did the TLS handshake). The server is nginx (`return 200 "foo"`, keepalive_requests
high enough that it never closes the connection itself, TLS 1.3 with a certificate made at run time for
`localhost`); connections opened are counted on the server (distinct $connection in its access log) and reported
by the adapters ("connects"). Each (client, scheme) pair runs --rounds times, interleaved; the best round counts
(the median is printed too).

    PYTHONPATH=. /usr/bin/python3 bench/client_bench.py [-n 20000] [--rounds 3] [--reference PATH] [--curl-adapter PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from harness.clients import registry as client_adapters

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    log_format conn '$connection $connection_requests $remote_port';
    access_log {dir}/access.log conn;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {dir}/srv.pem;
        ssl_certificate_key {dir}/srv.key;
        ssl_protocols TLSv1.3;
        default_type text/plain;
        location / {{ return 200 "foo"; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(d: Path) -> None:
    def run(*a: str) -> None:
        subprocess.run(a, cwd=d, check=True, capture_output=True)

    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=fcgispec bench CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "srv.key",
        "-out", "srv.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")


def wait_port(port: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nginx did not listen on {port}")


def server_connections(log: Path, offset: int) -> int:
    """Distinct connections in the access log past `offset` (the warm-up one included)."""
    with open(log, "rb") as f:
        f.seek(offset)
        lines = f.read().decode().splitlines()
    return len({ln.split()[0] for ln in lines if ln.strip()})


def log_size(log: Path) -> int:
    for _ in range(50):
        if log.exists():
            return log.stat().st_size
        time.sleep(0.01)
    return 0


def run_once(argv: list[str], url: str, n: int, log: Path) -> dict:
    offset = log_size(log)
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin and proc.stdout
    proc.stdin.write(f"GET {url}\n".encode())
    proc.stdin.flush()
    first = json.loads(proc.stdout.readline())
    if first.get("status") != 200:
        proc.kill()
        raise RuntimeError(f"{argv[0]}: warm-up request failed: {first} {proc.stderr.read().decode()[-500:]}")
    payload = f"GET {url}\n".encode() * n

    def feed() -> None:
        proc.stdin.write(payload)
        proc.stdin.close()

    t0 = time.perf_counter()
    writer = threading.Thread(target=feed)
    writer.start()
    last = None
    bad = 0
    for _ in range(n):
        line = proc.stdout.readline()
        if not line:
            break
        last = line
        if b'"status": 200' not in line:
            bad += 1
    elapsed = time.perf_counter() - t0
    writer.join()
    proc.wait(30)
    res = json.loads(last) if last else {}
    time.sleep(0.05)  # nginx writes its log line after the response
    return {"elapsed": elapsed, "rps": n / elapsed, "errors": bad, "client_connects": res.get("connects"),
            "server_connections": server_connections(log, offset)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20000, help="requests per run (after one warm-up request)")
    ap.add_argument("--rounds", type=int, default=3, help="runs per (client, scheme), interleaved; best counts")
    ap.add_argument("--reference", default=str(ROOT / "build/http-client/fcgispec-http-client"))
    ap.add_argument("--curl-adapter", default=None, help="default: harness.clients.registry' libcurl adapter")
    args = ap.parse_args()

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        print("nginx not found (apt-get install nginx-light): the benchmark needs it as the server", file=sys.stderr)
        return 2
    if not Path(args.reference).exists():
        print(f"{args.reference} not built (cmake --build build)", file=sys.stderr)
        return 2
    curl_argv = [args.curl_adapter] if args.curl_adapter else client_adapters.NAMED_CLIENTS["curl"](ROOT)

    with tempfile.TemporaryDirectory(prefix="fcgispec-client-bench-") as tmp:
        d = Path(tmp)
        make_certs(d)
        http_port, https_port = free_port(), free_port()
        (d / "nginx.conf").write_text(NGINX_CONF.format(dir=d, http_port=http_port, https_port=https_port))
        srv = subprocess.Popen([nginx, "-c", str(d / "nginx.conf"), "-p", str(d)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
        try:
            try:
                wait_port(http_port)
                wait_port(https_port)
            except RuntimeError:
                err = (d / "error.log").read_text() if (d / "error.log").exists() else ""
                raise RuntimeError(f"nginx did not start: {err[-2000:]}") from None
            cacert = str(d / "ca.pem")
            clients = {
                "reference": [args.reference, "adapter", "--cacert", cacert],
                "libcurl": curl_argv + ["--cacert", cacert],
            }
            urls = {"http": f"http://127.0.0.1:{http_port}/", "https": f"https://localhost:{https_port}/"}
            runs: dict[tuple[str, str], list[dict]] = {}
            for _ in range(args.rounds):
                for scheme, url in urls.items():
                    for name, argv in clients.items():
                        runs.setdefault((name, scheme), []).append(run_once(argv, url, args.n, d / "access.log"))
        finally:
            os.killpg(srv.pid, signal.SIGTERM)
            srv.wait(5)

    nginx_version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
    print(f"client benchmark: {args.n} sequential keep-alive GETs (+1 warm-up) per run, best of {args.rounds}; "
          f"server {nginx_version}, body 'foo'")
    print(f"reference: {args.reference}")
    print(f"libcurl:   {' '.join(curl_argv)} ({client_adapters.client_version('curl', ROOT)})")
    print()
    print(f"{'scheme':6} {'client':10} {'req/s best':>11} {'req/s median':>13} {'errors':>7} "
          f"{'conns (server)':>15} {'conns (client)':>15}")
    best = {}
    for (name, scheme), rs in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0] != "reference")):
        b = max(rs, key=lambda r: r["rps"])
        best[(name, scheme)] = b["rps"]
        conns_server = ",".join(str(r["server_connections"]) for r in rs)
        conns_client = ",".join(str(r["client_connects"]) for r in rs)
        print(f"{scheme:6} {name:10} {b['rps']:11.0f} {statistics.median(r['rps'] for r in rs):13.0f} "
              f"{sum(r['errors'] for r in rs):7d} {conns_server:>15} {conns_client:>15}")
    print()
    for scheme in ("http", "https"):
        ratio = best[("reference", scheme)] / best[("libcurl", scheme)]
        print(f"{scheme}: reference / libcurl = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
