"""Targets: the FastCGI applications under test, and how to reach (or spawn) them.

Spec strings (--target): 'reference' (the built reference responder),
'tcp:HOST:PORT', 'unix:PATH', 'cmd:COMMAND' (a shell command with {port} or
{socket} substituted, spawned in its own session for the run).
"""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from harness.fcgi_client import FcgiConnection

RESPONDER_ENV = "FCGISPEC_RESPONDER"
START_TIMEOUT = 10.0
STOP_GRACE = 3.0
LOG_TAIL_BYTES = 4000


class TargetError(Exception):
    """The target could not be started or reached."""


class TargetUnreachable(TargetError):
    """A connection to the target could not be opened."""


class Target:
    """Something that accepts FastCGI connections."""

    description = "target"
    # True: implements the probe app; False: does not; None: not known yet.
    has_probe_app: bool | None = False
    spawned = False

    def start(self) -> None:
        """Make the target ready to accept connections (no-op if external)."""

    def stop(self) -> None:
        """Release the target (no-op if external)."""

    def restart(self) -> None:
        self.stop()
        self.start()

    def exit_status(self) -> int | None:
        """The exit status of a spawned target that has exited, else None."""
        return None

    def log_tail(self, limit: int = LOG_TAIL_BYTES) -> str:
        """The end of a spawned target's stderr ('' when not spawned)."""
        return ""

    def address(self) -> tuple[int, object]:
        """(address family, socket address) to connect to."""
        raise NotImplementedError

    def connect(
        self,
        timeout: float = 5.0,
        *,
        label: str = "conn",
        clock_origin: float | None = None,
        deadline: Callable[[], float | None] | None = None,
    ) -> FcgiConnection:
        family, address = self.address()
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError as error:
            sock.close()
            raise TargetUnreachable(f"cannot connect to {self.description}: {error}") from None
        return FcgiConnection(sock, label=label, clock_origin=clock_origin, deadline=deadline)


class TcpTarget(Target):
    def __init__(self, host_port: str) -> None:
        host, _, port = host_port.rpartition(":")
        if not host or not port.isdigit():
            raise TargetError(f"expected HOST:PORT, got {host_port!r}")
        self.host = host.strip("[]")
        self.port = int(port)
        self.description = f"tcp:{host_port}"

    def address(self) -> tuple[int, object]:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        return family, (self.host, self.port)


class UnixTarget(Target):
    def __init__(self, path: str) -> None:
        self.path = path
        self.description = f"unix:{path}"

    def address(self) -> tuple[int, object]:
        return socket.AF_UNIX, self.path


class SpawnedTarget(Target):
    """A target process this run starts and stops; its stderr goes to a log file."""

    spawned = True

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self.restarts = 0

    def _spawn(self, argv: Sequence[str] | str, *, shell: bool = False, stdout: int | None = None) -> subprocess.Popen[bytes]:
        if self._log_file is None:
            self._log_file = tempfile.NamedTemporaryFile(prefix="fcgispec-target-", suffix=".log")
        try:
            self.process = subprocess.Popen(
                argv,
                shell=shell,
                stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else self._log_file,
                stderr=self._log_file,
                start_new_session=True,  # its own process group: stop() can kill all of it
            )
        except OSError as error:
            raise TargetError(f"cannot start {argv!r}: {error}") from None
        return self.process

    def exit_status(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, limit: int = LOG_TAIL_BYTES) -> str:
        if self._log_file is None:
            return ""
        try:
            with open(self._log_file.name, "rb") as log:
                log.seek(0, os.SEEK_END)
                size = log.tell()
                log.seek(max(0, size - limit))
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            try:
                process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of its process group (shell children, workers) goes too.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass
        if process.stdout is not None:
            process.stdout.close()

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()

    def exit_text(self) -> str:
        status = self.exit_status()
        if status is None:
            return "still running"
        if status < 0:
            try:
                return f"killed by {signal.Signals(-status).name}"
            except ValueError:
                return f"killed by signal {-status}"
        return f"exited with status {status}"


def reference_binary(root: Path, build_dir: str = "build") -> Path:
    override = os.environ.get(RESPONDER_ENV)
    if override:
        return Path(override)
    return root / build_dir / "reference-server" / "fcgispec-responder"


class ReferenceTarget(SpawnedTarget):
    """The reference responder, spawned on a free loopback port."""

    has_probe_app = True

    def __init__(self, root: Path, extra_args: Sequence[str] = (), build_dir: str = "build") -> None:
        super().__init__()
        self.binary = reference_binary(Path(root), build_dir)
        self.extra_args = list(extra_args)
        self.port: int | None = None
        suffix = f" {' '.join(self.extra_args)}" if self.extra_args else ""
        self.description = f"reference ({self.binary}{suffix})"

    def start(self) -> None:
        if not self.binary.exists():
            raise TargetError(f"reference responder not built: {self.binary} (cmake --build build)")
        argv = [str(self.binary), "--listen", "tcp:127.0.0.1:0", *self.extra_args]
        process = self._spawn(argv, stdout=subprocess.PIPE)
        line = _read_line(process, START_TIMEOUT)
        prefix = "listening tcp:"
        if not line.startswith(prefix):
            self.stop()
            raise TargetError(
                f"reference responder did not announce its port (got {line!r}; {self.exit_text()}):\n{self.log_tail()}"
            )
        self.port = int(line[len(prefix) :].rpartition(":")[2])

    def address(self) -> tuple[int, object]:
        if self.port is None:
            raise TargetUnreachable("reference responder not started")
        return socket.AF_INET, ("127.0.0.1", self.port)


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first stdout line of a process, or '' if none comes in time."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    collected = b""
    end_time = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in collected:
            remaining = end_time - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            collected += chunk
    return collected.split(b"\n", 1)[0].decode("utf-8", "replace").strip()


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CommandTarget(SpawnedTarget):
    """A shell command spawned for the run: {port} or {socket} is where it must listen."""

    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command
        self.description = f"cmd:{command}"
        self._address: tuple[int, object] | None = None
        self._socket_dir: tempfile.TemporaryDirectory[str] | None = None
        self.has_probe_app = None  # found out by asking once it is up

    def start(self) -> None:
        command = self.command
        if "{socket}" in command:
            if self._socket_dir is None:
                self._socket_dir = tempfile.TemporaryDirectory(prefix="fcgispec-")
            path = os.path.join(self._socket_dir.name, "app.sock")
            if os.path.exists(path):
                os.unlink(path)  # some servers leave their socket file behind
            command = command.replace("{socket}", shlex.quote(path))
            self._address = (socket.AF_UNIX, path)
        elif "{port}" in command:
            port = free_tcp_port()
            command = command.replace("{port}", str(port))
            self._address = (socket.AF_INET, ("127.0.0.1", port))
        else:
            raise TargetError("a cmd: target needs {port} or {socket} in its command")
        self._spawn(command, shell=True)
        self._wait_until_accepting(START_TIMEOUT)

    def _wait_until_accepting(self, timeout: float) -> None:
        end_time = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < end_time:
            if self.exit_status() is not None:
                raise TargetError(f"target command {self.exit_text()} before accepting:\n{self.log_tail()}")
            try:
                conn = self.connect(timeout=1.0, label="startup")
            except TargetUnreachable as error:
                last_error = str(error)
                time.sleep(0.02)
                continue
            conn.close()
            return
        self.stop()
        raise TargetError(f"target did not accept connections within {timeout:g}s ({last_error}):\n{self.log_tail()}")

    def address(self) -> tuple[int, object]:
        if self._address is None:
            raise TargetUnreachable("command target not started")
        return self._address

    def stop(self) -> None:
        super().stop()


def parse_target(spec: str, root: Path) -> Target:
    """A Target from its --target spec."""
    if spec == "reference":
        return ReferenceTarget(root)
    if spec.startswith("reference "):
        return ReferenceTarget(root, shlex.split(spec[len("reference ") :]))
    kind, colon, rest = spec.partition(":")
    if colon and kind == "tcp":
        return TcpTarget(rest)
    if colon and kind == "unix":
        return UnixTarget(rest)
    if colon and kind == "cmd":
        return CommandTarget(rest)
    raise TargetError(f"unknown target {spec!r}: expected reference, tcp:HOST:PORT, unix:PATH or cmd:COMMAND")
