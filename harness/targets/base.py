"""Targets: the FastCGI applications under test, and how to reach (or spawn) them.

Spec strings (--target): 'reference' (the built reference responder), a named real
server (php-fpm, go-fcgi, libfcgi, fcgiwrap, perl-fcgi, uwsgi: harness/targets/named.py),
'tcp:HOST:PORT', 'unix:PATH', 'cmd:COMMAND' (a shell command with {port} or
{socket} substituted, spawned in its own session for the run; a command with
neither gets a listening socket on fd 0 instead, as spawn-fcgi starts
FastCGI applications, spec §2.2).
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
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from harness.wire.connection import FcgiConnection
from harness.verdicts import Unsupported

RESPONDER_ENV = "FCGISPEC_RESPONDER"
START_TIMEOUT = 10.0
STOP_GRACE = 3.0
LOG_TAIL_BYTES = 4000


class TargetError(Exception):
    """The target could not be started or reached."""


class TargetUnreachable(TargetError):
    """A connection to the target could not be opened."""


@dataclass(frozen=True)
class ProcessStats:
    """Resource use of a spawned target's process group (summed over its members)."""

    fds: int
    rss_kib: int
    threads: int
    pids: tuple[int, ...]


class Target:
    """Something that accepts FastCGI connections."""

    description = "target"
    # True: implements the probe app; False: does not; None: not known yet.
    has_probe_app: bool | None = False
    spawned = False
    # harness.wire.capabilities.Capabilities once discovered (CaseContext.capabilities):
    # kept on the target so that the suite asks once per target, restarts included.
    discovered_capabilities: object | None = None

    def process_stats(self) -> ProcessStats | None:
        """fd count, RSS and threads of the target's processes; None when the harness has no PID."""
        return None

    def variant(
        self, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None, fd0: bool = False
    ) -> "Target":
        """A new, not yet started, instance of this target with changes (see CaseContext.spawn_variant)."""
        raise Unsupported("needs a target the harness spawns (reference or cmd:), not an already running one")

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

    def __init__(self, env: Mapping[str, str] | None = None, fd0: bool = False) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self.restarts = 0
        # Extra environment variables on top of the harness's own.
        self.env = dict(env or {})
        # fd0: the harness binds 127.0.0.1:0 and hands the listening socket over as
        # the child's stdin (spawn-fcgi style, spec §2.2) instead of telling it where to listen.
        self.fd0 = fd0
        self._fd0_address: tuple[int, object] | None = None

    def _spawn(self, argv: Sequence[str] | str, *, shell: bool = False, stdout: int | None = None) -> subprocess.Popen[bytes]:
        if self._log_file is None:
            self._log_file = tempfile.NamedTemporaryFile(prefix="fcgispec-target-", suffix=".log")
        listener: socket.socket | None = None
        stdin: int = subprocess.DEVNULL
        if self.fd0:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            self._fd0_address = (socket.AF_INET, listener.getsockname())
            stdin = listener.fileno()
        try:
            self.process = subprocess.Popen(
                argv,
                shell=shell,
                stdin=stdin,
                stdout=stdout if stdout is not None else self._log_file,
                stderr=self._log_file,
                env={**os.environ, **self.env} if self.env else None,
                start_new_session=True,  # its own process group: stop() can kill all of it
            )
        except OSError as error:
            raise TargetError(f"cannot start {argv!r}: {error}") from None
        finally:
            # The child holds its own copy; ours would keep accepting into the backlog
            # after the child died, hiding a dead target behind hanging connections.
            if listener is not None:
                listener.close()
        return self.process

    def process_stats(self) -> ProcessStats | None:
        process = self.process
        if process is None or process.poll() is not None:
            return None
        # start_new_session made the child a group leader: its group is the target,
        # shell wrappers and their children included.
        pids = _process_group_members(process.pid) or [process.pid]
        fds = rss = threads = 0
        for pid in pids:
            fds += _count_fds(pid)
            member_rss, member_threads = _status_numbers(pid)
            rss += member_rss
            threads += member_threads
        return ProcessStats(fds=fds, rss_kib=rss, threads=threads, pids=tuple(pids))

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


def _process_group_members(pgid: int) -> list[int]:
    members: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                text = stat.read().decode("latin-1")
        except OSError:
            continue
        # Fields after the parenthesised command name: state ppid pgrp ...
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(entry))
    return sorted(members)


def _count_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _status_numbers(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, Threads) of a process, zeros when it is gone."""
    rss = threads = 0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return rss, threads


def reference_binary(root: Path, build_dir: str = "build") -> Path:
    override = os.environ.get(RESPONDER_ENV)
    if override:
        return Path(override)
    return root / build_dir / "reference-server" / "fcgispec-responder"


class ReferenceTarget(SpawnedTarget):
    """The reference responder, spawned on a free loopback port."""

    has_probe_app = True

    def __init__(
        self,
        root: Path,
        extra_args: Sequence[str] = (),
        build_dir: str = "build",
        *,
        env: Mapping[str, str] | None = None,
        fd0: bool = False,
    ) -> None:
        super().__init__(env=env, fd0=fd0)
        self.root = Path(root)
        self.build_dir = build_dir
        self.binary = reference_binary(self.root, build_dir)
        self.extra_args = list(extra_args)
        self.port: int | None = None
        suffix = f" {' '.join(self.extra_args)}" if self.extra_args else ""
        suffix += " (listening socket on fd 0)" if fd0 else ""
        self.description = f"reference ({self.binary}{suffix})"

    def variant(
        self, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None, fd0: bool = False
    ) -> "ReferenceTarget":
        return ReferenceTarget(
            self.root, [*self.extra_args, *extra_args], self.build_dir, env={**self.env, **(env or {})}, fd0=fd0
        )

    def start(self) -> None:
        if not self.binary.exists():
            raise TargetError(f"reference responder not built: {self.binary} (cmake --build build)")
        if self.fd0:
            # No --listen: the responder serves the socket it inherits on fd 0 and announces nothing.
            self._spawn([str(self.binary), *self.extra_args], stdout=subprocess.DEVNULL)
            return
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
        if self.fd0 and self._fd0_address is not None:
            return self._fd0_address
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
    """A shell command spawned for the run: {port} or {socket} is where it must listen.

    A command with neither is fd0-capable: it gets a listening TCP socket as its
    stdin (how spawn-fcgi and web servers start FastCGI applications, spec §2.2).
    """

    # Run by /bin/sh, which may report a child killed by signal N as exit status 128+N.
    through_shell = True

    def __init__(self, command: str, *, env: Mapping[str, str] | None = None) -> None:
        placeholder = "{port}" in command or "{socket}" in command
        super().__init__(env=env, fd0=not placeholder)
        self.command = command
        self.description = f"cmd:{command}"
        self._address: tuple[int, object] | None = None
        self._socket_dir: tempfile.TemporaryDirectory[str] | None = None
        self.has_probe_app = None  # found out by asking once it is up

    def variant(
        self, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None, fd0: bool = False
    ) -> "CommandTarget":
        # The harness cannot know where in an arbitrary command line arguments would go,
        # nor how to make a {port} command listen on fd 0 instead.
        if extra_args:
            raise Unsupported("command-line changes need the reference target (a cmd: target only takes env changes)")
        if fd0 and not self.fd0:
            raise Unsupported("fd 0 start-up needs a cmd: target without {port}/{socket} (then it gets its socket on fd 0)")
        variant = CommandTarget(self.command, env={**self.env, **(env or {})})
        variant.has_probe_app = self.has_probe_app
        return variant

    def start(self) -> None:
        command = self.command
        if self.fd0:
            self._spawn(command, shell=True)
            self._address = self._fd0_address
            return
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
    """A Target from its --target spec (a name from harness/targets/named.py starts that real server)."""
    from harness.targets.named import NAMED_TARGETS, named_target  # it imports this module

    if spec in NAMED_TARGETS:
        return named_target(spec, root)
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
    raise TargetError(
        f"unknown target {spec!r}: expected reference, {', '.join(NAMED_TARGETS)}, tcp:HOST:PORT, unix:PATH or cmd:COMMAND"
    )
