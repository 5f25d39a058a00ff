"""Real web servers from Debian as FastCGI clients, to capture what they really send.

Each server runs in the foreground in its own session with a configuration made
from a template in fixtures/webservers/ (@@NAME@@ placeholders: PREFIX, HTTP_PORT,
APP_HOST, APP_PORT), in a fresh prefix directory. capture() puts the recording
proxy between the server and a FastCGI app, drives the HTTP side through a
pluggable driver (the SCENARIOS below), stops the server so that its upstream connections close,
and returns the transcript with its provenance in the metadata.

HTTP scenarios are data: lines of the C reference HTTP client's adapter protocol
(http-client/cli.c): `METHOD URL [BODYLEN] [Name:Value]...`, `ABANDON URL N`,
`CONCURRENT K`, `SLEEP MS`, plus two that only the Python driver speaks:
`CHUNKED URL BODYLEN CHUNKSIZE` (a chunked upload) and `GIVEUP URL MS` (send a GET,
close the connection MS ms later without reading). A driver runs them; the Python
driver (http.client) is the default, AdapterHttpDriver runs an adapter command.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from harness.capture.recording_proxy import RecordingProxy
from harness.targets.base import Target, free_tcp_port
from harness.targets.process import GroupProcess
from harness.capture.transcript import Transcript

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "fixtures" / "webservers"
START_TIMEOUT = 10.0
STOP_GRACE = 5.0


@dataclass(frozen=True)
class Scenario:
    description: str
    lines: tuple[str, ...]


def _long_header_lines() -> tuple[str, ...]:
    # 200 bytes: past 127, so the name-value pair needs a 4-byte value length; 6000: a longer one.
    return (f"GET /probe?n=1 X-Fcgispec-Long:{'h' * 200}", f"GET /probe?n=2 X-Fcgispec-Long:{'L' * 6000}")


SCENARIOS: dict[str, Scenario] = {
    "sequential-keepalive": Scenario(
        "five GETs one after another on one keep-alive HTTP connection",
        ("GET /probe?n=1", "GET /probe?n=2&out=100", "GET /probe?n=3&status=404", "GET /probe?n=4&err=warning",
         "GET /probe?n=5&out=70000")),
    "large-post": Scenario("a POST with a 200000-byte body (Content-Length)", ("POST /probe?n=1 200000",)),
    "chunked-upload": Scenario("a POST with a 100000-byte body sent chunked (7000-byte chunks)",
                               ("CHUNKED /probe?n=1 100000 7000",)),
    "long-header": Scenario("GETs with a 200-byte and a 6000-byte header (4-byte name-value lengths)",
                            _long_header_lines()),
    "head": Scenario("HEAD requests", ("HEAD /probe?n=1", "HEAD /probe?n=2&out=1000")),
    "concurrent": Scenario("four GETs at once on four HTTP connections, each answered after 200 ms",
                           ("CONCURRENT 4", "GET /probe?n=1&delay=200", "GET /probe?n=2&delay=200",
                            "GET /probe?n=3&delay=200", "GET /probe?n=4&delay=200")),
    "client-gives-up": Scenario(
        "a client that reads 1000 bytes of a 400 kB response and closes; one that closes before a delayed answer",
        ("ABANDON /probe?n=1&out=400000 1000", "GIVEUP /probe?n=2&delay=300&out=10 50", "SLEEP 400",
         "GET /probe?n=3")),
}


def log_file_tail(log: "tempfile._TemporaryFileWrapper[bytes] | None", limit: int = 4000) -> str:
    """The last `limit` bytes of a process's log file, as text ("" when there is none)."""
    if log is None:
        return ""
    try:
        return Path(log.name).read_bytes()[-limit:].decode("utf-8", "replace")
    except OSError:
        return ""


class HttpDriver:
    """Runs scenario lines against an HTTP server; returns one provenance line per request."""

    description = "driver"

    def run(self, lines: Sequence[str], host: str, port: int) -> list[str]:
        raise NotImplementedError


class PythonHttpDriver(HttpDriver):
    """Python's http.client: sequential requests share one keep-alive connection."""

    description = "python http.client"

    def run(self, lines: Sequence[str], host: str, port: int) -> list[str]:
        """Runs the scenario lines in order (CONCURRENT batches on threads); one provenance line per request."""
        self.host, self.port = host, port
        self.connects = 0
        self.main: http.client.HTTPConnection | None = None
        out: list[str] = []
        pending = list(lines)
        while pending:
            line = pending.pop(0)
            words = line.split(" ")
            if words[0] == "SLEEP":
                time.sleep(int(words[1]) / 1000)
            elif words[0] == "CONCURRENT":
                count = int(words[1])
                batch, pending = pending[:count], pending[count:]
                results: list[str] = [""] * count
                threads = [threading.Thread(target=self._one_off, args=(batch[i], results, i)) for i in range(count)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(30)
                out.extend(f"{r} (concurrent)" for r in results)
            elif words[0] in ("ABANDON", "GIVEUP"):
                out.append(self._give_up(words))
            else:
                out.append(self._request(line, self._main()))
        if self.main is not None:
            self.main.close()
        return out

    def _main(self) -> http.client.HTTPConnection:
        if self.main is None:
            self.main = http.client.HTTPConnection(self.host, self.port, timeout=30)
            self.connects += 1
        return self.main

    def _one_off(self, line: str, results: list[str], index: int) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            results[index] = self._request(line, conn, label="own connection")
        except Exception as error:  # recorded as provenance, the capture goes on
            results[index] = f"{line} -> error {error!r}"
        finally:
            conn.close()

    def _request(self, line: str, conn: http.client.HTTPConnection, label: str = "") -> str:
        words = line.split(" ")
        method, url = words[0], words[1]
        headers: dict[str, str] = {}
        body: object = None
        rest = words[2:]
        if method == "CHUNKED":
            length, chunk = int(rest[0]), int(rest[1])
            rest = rest[2:]
            method = "POST"
            body = (b"x" * min(chunk, length - i) for i in range(0, length, chunk))
            headers["Transfer-Encoding"] = "chunked"
            shown = f"POST {url} (chunked, {length} bytes in {chunk}-byte chunks)"
        elif rest and rest[0].isdigit():
            body = b"x" * int(rest[0])
            rest = rest[1:]
            shown = f"{method} {url} ({len(body)}-byte body)"
        else:
            shown = f"{method} {url}"
        for header in rest:
            name, _, value = header.partition(":")
            headers[name] = value
            shown += f" {name}: <{len(value)} bytes>"
        before = conn.sock
        conn.request(method, url, body=body, headers=headers, encode_chunked=method == "POST" and "Transfer-Encoding" in headers)
        if conn.sock is not before and before is not None:
            self.connects += 1
        response = conn.getresponse()
        data = response.read()
        where = label or f"client connection {self.connects}"
        return (f"{shown} HTTP/1.1 -> {response.status} {response.reason}, {len(data)} body bytes, "
                f"sha256 {hashlib.sha256(data).hexdigest()[:16]} ({where})")

    def _give_up(self, words: list[str]) -> str:
        url, amount = words[1], int(words[2])
        sock = socket.create_connection((self.host, self.port), timeout=30)
        try:
            sock.sendall(f"GET {url} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
            if words[0] == "GIVEUP":
                time.sleep(amount / 1000)
                return f"GET {url} HTTP/1.1 -> closed by the client after {amount} ms, nothing read"
            received = b""
            while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < amount:
                piece = sock.recv(65536)
                if not piece:
                    break
                received += piece
            status = received.split(b"\r\n", 1)[0].decode("latin-1")
            return f"GET {url} HTTP/1.1 -> {status!r}; closed by the client after {amount} body bytes"
        finally:
            sock.close()


class AdapterHttpDriver(HttpDriver):
    """An HTTP client adapter process (e.g. `fcgispec-http-client adapter`): one line in, one JSON line out."""

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)
        self.description = "adapter " + " ".join(self.command)

    def run(self, lines: Sequence[str], host: str, port: int) -> list[str]:
        if any(line.split(" ")[0] in ("CHUNKED", "GIVEUP") for line in lines):
            raise WebServerUnavailable(f"{self.description} cannot run CHUNKED or GIVEUP lines")
        base = f"http://{host}:{port}"
        script = []
        for line in lines:
            words = line.split(" ")
            if words[0] in ("SLEEP", "CONCURRENT", "CLOSE_IDLE"):
                script.append(line)
            else:
                script.append(" ".join([words[0], base + words[1], *words[2:]]))
        done = subprocess.run(self.command, input="\n".join(script) + "\n", capture_output=True, text=True,
                              timeout=120)
        answers = [json.loads(text) for text in done.stdout.splitlines() if text.strip()]
        requests = [line for line in lines if line.split(" ")[0] not in ("SLEEP", "CONCURRENT", "CLOSE_IDLE")]
        return [f"{line.split(' X-')[0]} -> {answer.get('status')}, {answer.get('body_length')} body bytes"
                + (f", error {answer['error']}" if answer.get("error") else "")
                for line, answer in zip(requests, answers)]


class WebServerUnavailable(Exception):
    """The server is not installed (the message says which package provides it)."""


class WebServer:
    """One web server instance, configured to pass every request to one FastCGI app."""

    name = ""
    package = ""
    binary = ""
    template = ""
    # Where the template is: the capture configurations here, the gateway suite's in fixtures/gateways/.
    template_dir: Path = TEMPLATES
    # A one-line description of what matters in the configuration (for the transcript's metadata).
    config_summary = ""
    # Directories the server writes to under its prefix.
    subdirs: Sequence[str] = ()

    def __init__(self, app_host: str, app_port: int) -> None:
        self.app_host = app_host
        self.app_port = app_port
        self.http_port = 0
        self.prefix: Path | None = None
        self.process: GroupProcess | None = None
        self.config_text = ""
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @classmethod
    def available(cls) -> bool:
        return shutil.which(cls.binary) is not None or Path(cls.binary).exists()

    @classmethod
    def executable(cls) -> str:
        found = shutil.which(cls.binary)
        if found is None:
            raise WebServerUnavailable(f"{cls.name} is not installed (apt-get install {cls.package})")
        return found

    @classmethod
    def version(cls) -> str:
        raise NotImplementedError

    def argv(self, config: Path) -> list[str]:
        raise NotImplementedError

    def placeholders(self) -> dict[str, str]:
        """The values of the template's @@NAME@@ placeholders."""
        assert self.prefix is not None
        return {"PREFIX": str(self.prefix), "HTTP_PORT": str(self.http_port), "APP_HOST": self.app_host,
                "APP_PORT": str(self.app_port)}

    def environment(self) -> dict[str, str]:
        """The server's whole environment."""
        return dict(SERVER_ENVIRONMENT)

    def render_config(self) -> str:
        text = (self.template_dir / self.template).read_text()
        values = self.placeholders()
        return re.sub(r"@@([A-Z_]+)@@", lambda m: values[m.group(1)], text)

    def start(self) -> None:
        """A fresh prefix and configuration, the server started in its own session, then wait until it listens."""
        executable = self.executable()
        self.prefix = Path(tempfile.mkdtemp(prefix=f"fcgispec-{self.name}-"))
        try:
            # Workers run as nobody when started as root: they must reach and write their temp dirs.
            os.chmod(self.prefix, 0o777)
            for sub in self.subdirs:
                (self.prefix / sub).mkdir(mode=0o777)
                os.chmod(self.prefix / sub, 0o777)
            self.http_port = free_tcp_port()
            self.config_text = self.render_config()
            config = self.prefix / self.template
            config.write_text(self.config_text)
            self._prepare()
            self._log = tempfile.NamedTemporaryFile(prefix=f"fcgispec-{self.name}-", suffix=".log")
            self.process = GroupProcess(  # in a session of its own: stop() ends the master and its workers
                [executable if arg == "{binary}" else arg for arg in self.argv(config)],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                # A clean environment: some servers pass theirs to the app (Apache passes PATH),
                # and a capture must not carry the machine it was made on.
                env=self.environment(),
            )
            self._wait_listening()
        except BaseException:  # a failed or interrupted start leaves no server and no files
            self.stop()
            raise

    def _prepare(self) -> None:
        """Server-specific set-up of the prefix before start."""

    def _wait_listening(self) -> None:
        # Accepting is enough: the app behind it is already answering, and a probe
        # request would put traffic into the capture.
        end_time = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end_time:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not listen on port {self.http_port}:\n{self.log_tail()}")

    def log_tail(self, limit: int = 4000) -> str:
        return log_file_tail(self._log, limit)

    def stop(self) -> None:
        """SIGTERM to its process group (the server closes its upstream connections), then SIGKILL whatever is left."""
        process = self.process
        if process is not None:
            process.stop(grace=STOP_GRACE, reap_timeout=STOP_GRACE)
            self.process = None
        if self.prefix is not None:
            shutil.rmtree(self.prefix, ignore_errors=True)
            self.prefix = None
        if self._log is not None:
            self._log.close()  # a NamedTemporaryFile: closing removes it
            self._log = None

    def __enter__(self) -> "WebServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _first_line(argv: Sequence[str], pattern: str) -> str:
    try:
        output = subprocess.run(list(argv), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    match = re.search(pattern, output.stdout + output.stderr)
    return match.group(0) if match else "unknown"


class Nginx(WebServer):
    name = "nginx"
    package = "nginx-light"
    binary = "nginx"
    template = "nginx.conf"
    config_summary = "upstream { keepalive 8; } fastcgi_keep_conn on; include fastcgi_params"
    subdirs = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

    @classmethod
    def version(cls) -> str:
        return _first_line([cls.executable(), "-v"], r"nginx/\S+")

    def argv(self, config: Path) -> list[str]:
        return ["{binary}", "-p", f"{self.prefix}/", "-c", str(config), "-e", "stderr"]


class Apache(WebServer):
    name = "apache2"
    package = "apache2"
    binary = "apache2"
    template = "apache2.conf"
    config_summary = "mpm_event; ProxyPass / fcgi://APP/ enablereuse=on; ProxyFCGISetEnvIf SCRIPT_FILENAME"

    @classmethod
    def executable(cls) -> str:
        for candidate in ("/usr/sbin/apache2", shutil.which("apache2") or ""):
            if candidate and Path(candidate).exists():
                return candidate
        raise WebServerUnavailable("apache2 is not installed (apt-get install apache2)")

    @classmethod
    def available(cls) -> bool:
        return Path("/usr/sbin/apache2").exists()

    @classmethod
    def version(cls) -> str:
        return _first_line([cls.executable(), "-v"], r"Apache/\S+")

    def argv(self, config: Path) -> list[str]:
        return ["{binary}", "-f", str(config), "-DFOREGROUND"]


class Lighttpd(WebServer):
    name = "lighttpd"
    package = "lighttpd"
    binary = "lighttpd"
    template = "lighttpd.conf"
    config_summary = 'mod_fastcgi; fastcgi.server = ( "/" => (( host, port, "check-local" => "disable" )) )'
    subdirs = ("uploads",)

    @classmethod
    def available(cls) -> bool:
        return shutil.which("lighttpd") is not None or Path("/usr/sbin/lighttpd").exists()

    @classmethod
    def executable(cls) -> str:
        return shutil.which("lighttpd") or "/usr/sbin/lighttpd"

    @classmethod
    def version(cls) -> str:
        return _first_line([cls.executable(), "-v"], r"lighttpd/\S+")

    def argv(self, config: Path) -> list[str]:
        return ["{binary}", "-D", "-f", str(config)]


class H2o(WebServer):
    name = "h2o"
    package = "h2o"
    binary = "h2o"
    template = "h2o.conf"
    config_summary = "fastcgi.connect: {host, port, type: tcp}; fastcgi.timeout.keepalive: 10000"

    @classmethod
    def version(cls) -> str:
        return "h2o/" + _first_line([cls.executable(), "-v"], r"(?<=h2o version )\S+")

    def _prepare(self) -> None:
        # h2o drops privileges (user: nobody) before it writes its pid file.
        assert self.prefix is not None
        if os.geteuid() == 0:
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.chown(self.prefix, nobody.pw_uid, nobody.pw_gid)

    def argv(self, config: Path) -> list[str]:
        return ["{binary}", "-c", str(config)]


SERVER_ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
REPO_ROOT = Path(__file__).resolve().parents[2]

WEB_SERVERS: dict[str, type[WebServer]] = {cls.name: cls for cls in (Nginx, Apache, Lighttpd, H2o)}


def capture(
    server_class: type[WebServer],
    scenario: str,
    app: Target,
    *,
    driver: HttpDriver | None = None,
    quiet_seconds: float = 0.3,
) -> Transcript:
    """Run one HTTP scenario through server_class in front of the (started) app, recorded."""
    driver = driver or PythonHttpDriver()
    family, address = app.address()
    if family != socket.AF_INET:
        raise ValueError("capture needs a TCP app")
    proxy = RecordingProxy((str(address[0]), int(address[1]))).start()  # type: ignore[index]
    server = server_class("127.0.0.1", proxy.port)
    http_lines: list[str] = []
    try:
        server.start()
        http_lines = driver.run(SCENARIOS[scenario].lines, "127.0.0.1", server.http_port)
        # Let what the server still does upstream (an abort, a late answer) finish before stopping it.
        proxy.wait_quiet(quiet_seconds, timeout=5.0)
        # The prefix is a fresh temporary directory each run: named, not shown, so captures diff cleanly.
        config_lines = server.config_text.replace(str(server.prefix), "PREFIX").splitlines()
    finally:
        server.stop()
        proxy.wait_idle(3.0)
        proxy.stop()
    meta = [
        ("source", server_class.name),
        ("version", server_class.version()),
        ("config", server_class.config_summary),
        ("scenario", f"{scenario}: {SCENARIOS[scenario].description}"),
        ("app", app.description.replace(f"{REPO_ROOT}/", "")),
        ("driver", driver.description),
        *[("http", line) for line in http_lines],
        *[("config-file", line) for line in config_lines if line.strip() and not line.lstrip().startswith("#")],
    ]
    return proxy.transcript(meta)
