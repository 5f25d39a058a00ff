"""Adapters that let the client connection-reuse suite drive real HTTP clients.

`NAMED_CLIENTS[name](root)` is the argv of the adapter process for that client, given the repository root; the
suite adds `--cacert PATH`, `--max-idle-per-host N` and `--timeout SECONDS` as it needs. Every adapter speaks the
adapter protocol (README "HTTP clients: connection reuse"; client-adapters/adapter_protocol.py has it in full) with
ONE long-lived client object or pool. Compiled adapters (libcurl, Go) are built on first use into build/ when they are
missing or older than their source; a client whose toolchain or package is missing raises ClientUnavailable with
the Debian packages to install.

`CLIENT_INFO[name]` says per client: what it is, how to print its version, the Debian packages it needs, which
client setting --max-idle-per-host maps to (or that the client has none), and what else the adapter does or does
not set, so that a recorded result can be read against the client's real defaults.

Command line (writes or checks the expected-results fixtures):
    /usr/bin/python3 -m harness.clients.registry list
    /usr/bin/python3 -m harness.clients.registry version NAME
    /usr/bin/python3 -m harness.clients.registry run NAME [--report-json PATH]   # the suite against NAME
    /usr/bin/python3 -m harness.clients.registry record NAME                     # rewrite its expected file
    /usr/bin/python3 -m harness.clients.registry compare NAME                    # run and compare with it
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.installation.paths import work_dir

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS_DIR = Path("client-adapters")
EXPECTED_DIR = Path("fixtures") / "client-expected"
PYTHON = "/usr/bin/python3"


class ClientUnavailable(RuntimeError):
    """The client (its package or toolchain) is not installed here; the message says what to install."""


@dataclass(frozen=True)
class ClientInfo:
    name: str
    title: str
    debian_packages: tuple[str, ...]
    version_cmd: tuple[str, ...]  # run from the repository root; prints the client's version
    max_idle_setting: str  # what --max-idle-per-host maps to, or why there is nothing
    settings: tuple[str, ...] = field(default_factory=tuple)  # what the adapter sets, and what the client lacks


CLIENT_INFO: dict[str, ClientInfo] = {
    "curl": ClientInfo(
        name="curl",
        title="libcurl (Debian's libcurl4-openssl-dev, OpenSSL backend), one CURLM multi handle",
        debian_packages=("libcurl4-openssl-dev", "libssl-dev"),
        version_cmd=("curl-config", "--version"),
        max_idle_setting="CURLMOPT_MAXCONNECTS (the multi-handle form of CURLOPT_MAXCONNECTS): a bound on the "
                         "whole connection cache, all hosts, in use and idle; libcurl has no per-host idle limit",
        settings=(
            "one multi handle for the adapter's life (its connection cache is the pool); one easy handle per "
            "request; a CURLSH share handle shares DNS and TLS sessions, as the curl tool does",
            "CURLOPT_HTTP_VERSION 1.1, CURLOPT_TIMEOUT_MS and CURLOPT_CONNECTTIMEOUT_MS = --timeout, "
            "CURLOPT_CAINFO = --cacert; POST/PUT/PATCH bodies by CURLOPT_POSTFIELDS (so libcurl's own "
            "Expect: 100-continue above 1 KiB and its form Content-Type apply)",
            "ABANDON: the write callback returns short after N bytes (CURLE_WRITE_ERROR, not reported as an "
            "error): libcurl's only way to drop a body, and it closes the connection",
            "no idle-connection close call: CLOSE_IDLE cleans up the (idle) multi handle and makes a new one",
            "no idle timeout setting below CURLOPT_MAXAGE_CONN (default 118 s); a pre-reuse liveness check "
            "(a zero-timeout poll/peek) is built in; libcurl retries a request on a reused connection that "
            "died before any response byte (Connection died, retrying a fresh connect), up to 5 times",
        ),
    ),
    "python-httpclient": ClientInfo(
        name="python-httpclient",
        title="CPython http.client, with the per-origin pool a careful program writes around it",
        debian_packages=("python3",),
        version_cmd=(PYTHON, "-c", "import sys; print('CPython', sys.version.split()[0], 'http.client')"),
        max_idle_setting="the adapter's own pool limit (idle connections per origin; default 10): http.client "
                         "itself has no pool and no such setting",
        settings=(
            "http.client has no pool, no liveness check, no retry and no idle timeout: the adapter's pool is "
            "LIFO per (scheme, host, port), returns a connection only after its body was read to the end "
            "without will_close, and retries once on a fresh connection an idempotent request whose reused "
            "connection failed before any response (RemoteDisconnected, ConnectionReset, BrokenPipe, "
            "ConnectionAborted), as xmlrpc.client.Transport does; it does not probe before reuse",
            "--timeout is the socket timeout (per operation); --cacert: ssl.create_default_context(cafile=)",
        ),
    ),
    "urllib3": ClientInfo(
        name="urllib3",
        title="urllib3 (Debian's python3-urllib3), one PoolManager",
        debian_packages=("python3-urllib3",),
        version_cmd=(PYTHON, "-c", "import urllib3; print('urllib3', urllib3.__version__)"),
        max_idle_setting="PoolManager(maxsize=N): connections kept per host pool (default 1; block=False makes "
                         "and then discards extra connections)",
        settings=(
            "urllib3's defaults otherwise: Retry(total=3) (connection errors of any method, read errors of "
            "idempotent methods), is_connection_dropped() before reuse, no idle timeout (none exists)",
            "preload_content=False + resp.stream() + release_conn(); ABANDON: resp.close() + release_conn(); "
            "redirect=False; decode_content default (True)",
        ),
    ),
    "requests": ClientInfo(
        name="requests",
        title="requests (Debian's python3-requests, on python3-urllib3), one Session",
        debian_packages=("python3-requests", "python3-urllib3"),
        version_cmd=(PYTHON, "-c", "import requests, urllib3; print('requests', requests.__version__, "
                                   "'urllib3', urllib3.__version__)"),
        max_idle_setting="HTTPAdapter(pool_maxsize=N) mounted for http:// and https:// (default 10)",
        settings=(
            "requests' defaults otherwise: HTTPAdapter max_retries=0 (Retry(0, read=False): requests never "
            "retries, not even idempotent requests on a dead pooled connection); urllib3's is_connection_dropped "
            "check before reuse still applies; no idle timeout (none exists)",
            "stream=True + iter_content + Response.close(); ABANDON: raw.read(N) + Response.close(); "
            "allow_redirects=False; verify=--cacert",
        ),
    ),
    "go": ClientInfo(
        name="go",
        title="Go net/http (Debian's golang-go), one Transport (a clone of http.DefaultTransport)",
        debian_packages=("golang-go",),
        version_cmd=("go", "version"),
        max_idle_setting="Transport.MaxIdleConnsPerHost (default 2; 0 given here means DisableKeepAlives, since Go "
                         "reads 0 as 'the default')",
        settings=(
            "DefaultTransport's settings otherwise: MaxIdleConns 100, IdleConnTimeout 90 s, "
            "ExpectContinueTimeout 1 s, ForceAttemptHTTP2 (no effect: the suite's TLS servers offer no h2); "
            "Proxy off; redirects not followed; --timeout is a context deadline for the whole exchange",
            "Go has a background reader per pooled connection (no probe needed) and retries replayable requests "
            "(GET/HEAD/OPTIONS/TRACE, or with Idempotency-Key) that failed on a reused connection before any "
            "response byte",
        ),
    ),
    "node": ClientInfo(
        name="node",
        title="Node.js http/https (Debian's nodejs), one keep-alive Agent per scheme",
        debian_packages=("nodejs",),
        version_cmd=("node", "--version"),
        max_idle_setting="Agent maxFreeSockets (default 256)",
        settings=(
            "Agent({keepAlive: true}) otherwise default: no retry (the adapter does not add the "
            "req.reusedSocket retry pattern Node's documentation suggests), no client idle timeout unless the "
            "server's Keep-Alive: timeout hint applies (Node >= 20 with the hint), sockets watched while idle "
            "(an idle socket's close or error removes it from the pool)",
            "ABANDON: res.destroy() after N bytes; --timeout is a whole-exchange deadline (req.destroy)",
        ),
    ),
}


# -- building and locating the adapters --


def _stale(out: Path, sources: list[Path]) -> bool:
    if not out.exists():
        return True
    t = out.stat().st_mtime
    return any(s.stat().st_mtime > t for s in sources)


def _locked_build(out: Path, sources: list[Path], build: Callable[[Path], None]) -> Path:
    """Builds `out` from `sources` (under a lock, into a temporary name then renamed) when missing or stale."""
    if not _stale(out, sources):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stale(out, sources):
            tmp = out.with_name(out.name + ".tmp")
            build(tmp)
            os.replace(tmp, out)
    return out


def curl_adapter(root: Path) -> list[str]:
    """The libcurl adapter's argv: CMake's build if current, else compiled here with cc into build/."""
    root = Path(root)
    src = root / ADAPTERS_DIR / "curl" / "curl_adapter.c"
    protocol = root / "http-client" / "adapter-protocol"  # the adapter line protocol, shared with the reference client
    sources = [src, protocol / "adapter_protocol.c", protocol / "adapter_protocol.h"]
    cmake_built = root / "build" / ADAPTERS_DIR / "curl" / "fcgispec-curl-adapter"
    if cmake_built.exists() and not _stale(cmake_built, sources):
        return [str(cmake_built)]
    if not Path("/usr/include/x86_64-linux-gnu/curl/curl.h").exists() and not Path("/usr/include/curl/curl.h").exists():
        raise ClientUnavailable("libcurl headers not found: apt-get install libcurl4-openssl-dev")
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise ClientUnavailable("no C compiler: apt-get install gcc")

    def build(tmp: Path) -> None:
        cmd = [cc, "-std=c11", "-O2", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-I", str(protocol),
               "-o", str(tmp), str(src), str(protocol / "adapter_protocol.c"), "-lcurl", "-lcrypto"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise ClientUnavailable(f"building the libcurl adapter failed: {' '.join(cmd)}\n{r.stderr}")

    out = work_dir(root) / "client-adapters" / "curl" / "fcgispec-curl-adapter"
    return [str(_locked_build(out, sources, build))]


def go_adapter(root: Path) -> list[str]:
    root = Path(root)
    src = root / ADAPTERS_DIR / "go" / "main.go"
    go = shutil.which("go")
    if not go:
        raise ClientUnavailable("Go not found: apt-get install golang-go")
    work = work_dir(root) / "client-adapters" / "go"

    def build(tmp: Path) -> None:
        env = dict(os.environ, GO111MODULE="off", GOFLAGS="", GOPROXY="off", CGO_ENABLED="0",
                   HOME=str(work / "home"), GOCACHE=str(work / "cache"), GOPATH=str(work / "gopath"))
        cmd = [go, "build", "-o", str(tmp), str(src)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(src.parent))
        if r.returncode != 0:
            raise ClientUnavailable(f"building the Go adapter failed: {' '.join(cmd)}\n{r.stderr}")

    return [str(_locked_build(work / "fcgispec-go-adapter", [src], build))]


def _python_adapter(directory: str, modules: tuple[str, ...], packages: str) -> Callable[[Path], list[str]]:
    def argv(root: Path) -> list[str]:
        if not Path(PYTHON).exists():
            raise ClientUnavailable(f"{PYTHON} not found: apt-get install python3")
        for m in modules:
            if not _python_has(m):
                raise ClientUnavailable(f"{PYTHON} cannot import {m}: apt-get install {packages}")
        # The adapters import their shared line protocol (client-adapters/adapter_protocol.py) from there.
        adapters = Path(root) / ADAPTERS_DIR
        return ["/usr/bin/env", f"PYTHONPATH={adapters}", PYTHON, str(adapters / directory / "adapter.py")]

    return argv


_PY_MODULES: dict[str, bool] = {}


def _python_has(module: str) -> bool:
    """Whether /usr/bin/python3 (not necessarily this interpreter) can import `module`."""
    if module not in _PY_MODULES:
        if os.path.realpath(sys.executable) == os.path.realpath(PYTHON):
            _PY_MODULES[module] = importlib.util.find_spec(module) is not None
        else:
            r = subprocess.run([PYTHON, "-c", f"import {module}"], capture_output=True)
            _PY_MODULES[module] = r.returncode == 0
    return _PY_MODULES[module]


def node_adapter(root: Path) -> list[str]:
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        raise ClientUnavailable("Node.js not found: apt-get install nodejs")
    return [node, str(Path(root) / ADAPTERS_DIR / "node" / "adapter.js")]


NAMED_CLIENTS: dict[str, Callable[[Path], list[str]]] = {
    "curl": curl_adapter,
    "python-httpclient": _python_adapter("python-httpclient", ("http.client",), "python3"),
    "urllib3": _python_adapter("urllib3", ("urllib3",), "python3-urllib3"),
    "requests": _python_adapter("requests", ("requests", "urllib3"), "python3-requests"),
    "go": go_adapter,
    "node": node_adapter,
}


# Adapter options a named client has no equivalent for, and why (read by harness/clients/adapters.py, which reports a case
# that needs one as UNSUPPORTED). Every client here has some setting for --max-idle-per-host (see CLIENT_INFO:
# libcurl's is a bound on the whole cache, not per host; http.client's is the adapter's own pool), so none.
UNSUPPORTED_OPTIONS: dict[str, dict[str, str]] = {}


def reference_adapter(root: Path) -> list[str]:
    """The C reference client's adapter (built by CMake into build/)."""
    exe = Path(os.environ.get("FCGISPEC_HTTP_CLIENT") or Path(root) / "build" / "http-client" / "fcgispec-http-client")
    if not exe.exists():
        raise ClientUnavailable(f"{exe} not built: cmake -S . -B build && cmake --build build")
    return [str(exe), "adapter"]


def unavailable_reason(name: str, root: Path = ROOT) -> str | None:
    """None when the client's adapter can run here, else why not (with what to install)."""
    try:
        NAMED_CLIENTS[name](root)
    except ClientUnavailable as exc:
        return str(exc)
    return None


def client_version(name: str, root: Path = ROOT) -> str:
    info = CLIENT_INFO[name]
    try:
        r = subprocess.run(list(info.version_cmd), capture_output=True, text=True, cwd=str(root), timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (r.stdout or r.stderr).strip().splitlines()
    return text[0] if text else "unknown"


# -- expected results (fixtures/client-expected/NAME.json) --


def expected_path(name: str, root: Path = ROOT) -> Path:
    return Path(root) / EXPECTED_DIR / f"{name}.json"


def load_expected(name: str, root: Path = ROOT) -> dict:
    return json.loads(expected_path(name, root).read_text())


def run_suite(name: str, root: Path = ROOT, report_json: Path | None = None, extra: list[str] | None = None,
              timeout: float = 3600) -> dict[str, dict]:
    """Runs cases/client against client `name`; returns {case id: {"verdict": ..., "message": ...}}."""
    root = Path(root)
    with tempfile.TemporaryDirectory(prefix="fcgispec-client-run-") as tmp:
        path = Path(report_json) if report_json else Path(tmp) / "report.json"
        cmd = [PYTHON, "-m", "pytest", "cases/client", "-p", "harness.reports.client_plugin", "--client", name,
               "--report-json", str(path), "-q", "-p", "no:cacheprovider"] + list(extra or [])
        r = subprocess.run(cmd, cwd=str(root), capture_output=True, text=True, timeout=timeout)
        if not path.exists():
            raise RuntimeError(f"{' '.join(cmd)} wrote no report (exit {r.returncode}):\n{r.stdout[-4000:]}\n"
                               f"{r.stderr[-4000:]}")
        return verdicts_from_report(json.loads(path.read_text()))


def verdicts_from_report(report: dict) -> dict[str, dict]:
    """{case id: {"verdict", "message"}} from the JSON report the client plugin writes with --report-json
    (harness/reports/results.py json_report: {"cases": [{"id", "verdict", "expected", "actual", "note"}, ...]})."""
    out: dict[str, dict] = {}
    for row in report["cases"]:
        parts = []
        if row.get("expected"):
            parts.append(f"expected {row['expected']}")
        if row.get("actual"):
            parts.append(f"got {row['actual']}")
        if row.get("note"):
            parts.append(str(row["note"]))
        out[str(row["id"])] = {"verdict": str(row["verdict"]).lower(), "message": "; ".join(parts)}
    return out


def compare(expected: dict, actual: dict[str, dict]) -> list[str]:
    """The differences between a recorded expected file and a run: [] when they agree.

    A case may record "verdict" as one verdict or a list of the verdicts seen across runs (a client whose result
    depends on timing: the evidence says why)."""
    diffs = []
    cases = expected["cases"]
    for cid in sorted(set(cases) | set(actual)):
        if cid not in actual:
            diffs.append(f"{cid}: recorded {cases[cid]['verdict']!r} but the case did not run")
            continue
        if cid not in cases:
            diffs.append(f"{cid}: new case, verdict {actual[cid]['verdict']!r} (not recorded)")
            continue
        allowed = cases[cid]["verdict"]
        allowed = [allowed] if isinstance(allowed, str) else list(allowed)
        if actual[cid]["verdict"] not in allowed:
            diffs.append(f"{cid}: recorded {' or '.join(allowed)}, now {actual[cid]['verdict']}: "
                         f"{actual[cid]['message'][:300]}")
    return diffs


def record(name: str, root: Path = ROOT) -> Path:
    """Runs the suite against `name` and rewrites its expected file, keeping the evidence written for a case whose
    verdict did not change (a new non-pass gets the case's own message as a placeholder to rewrite)."""
    actual = run_suite(name, root)
    path = expected_path(name, root)
    old = json.loads(path.read_text())["cases"] if path.exists() else {}
    cases = {}
    for cid in sorted(actual):
        verdict = actual[cid]["verdict"]
        entry: dict = {"verdict": verdict}
        prev = old.get(cid)
        if prev and (prev["verdict"] == verdict or (isinstance(prev["verdict"], list) and verdict in prev["verdict"])):
            entry = dict(prev)
        elif verdict != "pass":
            entry["evidence"] = "TODO (run's message): " + actual[cid]["message"][:400]
        cases[cid] = entry
    data = {
        "client": name,
        "title": CLIENT_INFO[name].title,
        "version": client_version(name, root),
        "debian_packages": list(CLIENT_INFO[name].debian_packages),
        "command": f"/usr/bin/python3 -m pytest cases/client -p harness.reports.client_plugin --client {name}",
        "cases": cases,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """The command line (list, version, argv, run, record, compare); the exit status."""
    ap = argparse.ArgumentParser(prog="python3 -m harness.clients.registry", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    for c in ("version", "argv", "record", "compare"):
        p = sub.add_parser(c)
        p.add_argument("name", choices=sorted(NAMED_CLIENTS))
    p = sub.add_parser("run")
    p.add_argument("name", choices=sorted(NAMED_CLIENTS))
    p.add_argument("--report-json", default=None)
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for name in NAMED_CLIENTS:
            why = unavailable_reason(name)
            print(f"{name:18} {'ok: ' + client_version(name) if why is None else 'unavailable: ' + why}")
        return 0
    if args.cmd == "version":
        print(client_version(args.name))
        return 0
    if args.cmd == "argv":
        print(" ".join(NAMED_CLIENTS[args.name](ROOT)))
        return 0
    if args.cmd == "run":
        for cid, v in sorted(run_suite(args.name, ROOT, args.report_json).items()):
            print(f"{cid:16} {v['verdict']:12} {v['message'][:200]}")
        return 0
    if args.cmd == "record":
        print(record(args.name))
        return 0
    diffs = compare(load_expected(args.name), run_suite(args.name))
    for d in diffs:
        print(d)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
