"""Targets: the FastCGI applications under test, and how to reach (or spawn) them.

Target declares the interface every target offers (see its docstring); the concrete ones here
are TcpTarget (tcp:HOST:PORT), UnixTarget (unix:PATH), ReferenceTarget (the built reference
responder) and CommandTarget (cmd:COMMAND, a shell command with {port} or {socket} substituted,
spawned in its own session for the run; a command with neither gets a listening socket on fd 0
instead, as spawn-fcgi starts FastCGI applications, spec §2.2). The named real servers are in
harness/targets/named.py; harness/targets/selection.py turns a --target spec into a Target.
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
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

from harness.targets.process import STOP_GRACE, GroupProcess, ProcessStats, describe_exit, group_members
from harness.wire.connection import FcgiConnection
from harness.verdicts import Unsupported

RESPONDER_ENV = "FCGISPEC_RESPONDER"
START_TIMEOUT = 10.0
# How long a shell started for an fd 0 command (no start-up to wait for) gets to exec the program.
SHELL_EXEC_WAIT = 0.2
LOG_TAIL_BYTES = 4000
NO_LIMITATIONS: Mapping[str, str] = MappingProxyType({})

# Old name, still imported by cases and tests: harness.targets.process.group_members.
_process_group_members = group_members


# How many of the last plain requests the round trip is the median of.
ROUND_TRIP_SAMPLES = 5


class TargetError(Exception):
    """The target could not be started or reached."""


class TargetUnsupported(TargetError):
    """The target cannot run on this machine at all (its packages cannot be had here)."""


class TargetUsageError(TargetError):
    """The target rejected how it was asked to start (the reference responder's options): a user's mistake."""


class TargetUnreachable(TargetError):
    """A connection to the target could not be opened."""


class Target:
    """Something that accepts FastCGI connections: what every target declares and offers.

    One line per member, the base class's default in brackets; a concrete target overrides what
    applies to it, and callers read the members directly (no isinstance, no getattr):
      description                 str: how reports name the target, e.g. "tcp:127.0.0.1:9000" ["target"]
      spawned                     bool: a process the suite started and watches (exit status, stats, log) [False]
      is_reference                bool: the built reference responder, whose --fault modes and options apply [False]
      through_shell               bool: /bin/sh stayed between the harness and the program (it did not exec
                                  it), so an exit status 128+N means killed by signal N [False]
      has_probe_app               bool | None: implements the probe app; None: not known, the suite asks once [False]
      probe_app_reason            str: why has_probe_app is what it is, for the report ["tcp: and unix: ..."]
      probe_limitations           Mapping[str, str]: probe-contract part (LIMIT_* of named.py) -> why it cannot [{}]
      script_filename             str | None: the SCRIPT_FILENAME its probe app needs; None: the default path [None]
      discovered_capabilities     Capabilities from GET_VALUES, kept once per target, restarts included [None]
      comparison_oracle           its plain answers (harness/suite/comparison.py), kept once asked [None]
      prerequisite_findings       what the prerequisite checks found (harness/suite/prerequisite_checks.py) [None]
      round_trip                  the median time of its last plain requests (liveness probes) [0.0]
      note_round_trip(seconds)    add one plain request's time to those
      process                     GroupProcess | None: the leader of a spawned target's process group [None]
      param_unreported(name)      -> bool: with "params-all", the platform keeps this param from the probe app [False]
      start(), stop(), restart()  make it ready to accept connections, release it, both [no-ops]
      address()                   -> (family, socket address) to connect to [NotImplementedError]
      connect(timeout, ...)       -> FcgiConnection, or TargetUnreachable
      variant(extra_args, env, fd0)  -> a new, not started instance with changes [raises Unsupported]
      exit_status()               -> int | None: status once a spawned target exited, negative: signal [None]
      exit_text()                 -> str: "killed by SIGSEGV", "exited with status 1", "still running"
      log_tail(limit)             -> str: the end of a spawned target's stderr ['']
      process_stats()             -> ProcessStats | None: fds, RSS, threads of its process group [None]
      note_children()             remember processes that left a spawned target's group, for stop() [no-op]
    """

    description = "target"
    spawned = False
    is_reference = False
    through_shell = False
    has_probe_app: bool | None = False
    probe_app_reason = "not looked for: tcp: and unix: targets are taken to have none"
    probe_limitations: Mapping[str, str] = NO_LIMITATIONS
    script_filename: str | None = None
    discovered_capabilities: object | None = None
    comparison_oracle: object | None = None
    prerequisite_findings: object | None = None
    # The durations of the last liveness probes (a new connection and a plain request, answered).
    round_trip_samples: tuple[float, ...] = ()
    process: GroupProcess | None = None

    @property
    def round_trip(self) -> float:
        """The median of the last plain requests' durations, in seconds (0.0 before any)."""
        samples = sorted(self.round_trip_samples)
        return samples[len(samples) // 2] if samples else 0.0

    def note_round_trip(self, seconds: float) -> None:
        self.round_trip_samples = (*self.round_trip_samples, seconds)[-ROUND_TRIP_SAMPLES:]

    def param_unreported(self, name: bytes) -> bool:
        """Whether the platform keeps this param from the probe app (only asked with "params-all")."""
        return False

    def process_stats(self) -> ProcessStats | None:
        """fd count, RSS and threads of the target's processes; None when the harness has no PID."""
        return None

    def note_children(self) -> None:
        """Remember the processes that left a spawned target's process group (no-op if external)."""

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
        """stop(), then start()."""
        self.stop()
        self.start()

    def exit_status(self) -> int | None:
        """The exit status of a spawned target that has exited, else None."""
        return None

    def exit_text(self) -> str:
        """How a spawned target ended ('still running' while it runs)."""
        if not self.spawned:
            return "not started by the harness: exit status unknown"
        return describe_exit(self.exit_status())

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
        """A new FastCGI connection to the target; TargetUnreachable when it cannot be opened."""
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
    """An application already listening on TCP (tcp:HOST:PORT): not spawned, no probe-app detection."""

    def __init__(self, host_port: str) -> None:
        host, _, port = host_port.rpartition(":")
        if not host.strip("[]") or not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
            raise TargetError(f"tcp:{host_port}: expected tcp:HOST:PORT with a port from 1 to 65535")
        self.host = host.strip("[]")
        self.port = int(port)
        self.description = f"tcp:{host_port}"

    def address(self) -> tuple[int, object]:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        return family, (self.host, self.port)


class UnixTarget(Target):
    """An application already listening on a unix socket (unix:PATH): not spawned, no probe-app detection."""

    def __init__(self, path: str) -> None:
        if not path:
            raise TargetError("unix: expected unix:PATH, the path of a listening unix socket")
        self.path = path
        self.description = f"unix:{path}"

    def address(self) -> tuple[int, object]:
        return socket.AF_UNIX, self.path


class SpawnedTarget(Target):
    """A target process this run starts and stops, in a process group of its own; its stderr goes to a log file.

    stop() sends stop_signal to the group, gives the leader stop_grace seconds to exit, then
    SIGKILLs whatever is left (harness/targets/process.py).
    """

    spawned = True
    stop_signal: int = signal.SIGTERM
    stop_grace: float = STOP_GRACE

    def __init__(self, env: Mapping[str, str] | None = None, fd0: bool = False) -> None:
        self.process: GroupProcess | None = None
        self._log_file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self.restarts = 0
        # Extra environment variables on top of the harness's own.
        self.env = dict(env or {})
        # fd0: the harness binds 127.0.0.1:0 and hands the listening socket over as
        # the child's stdin (spawn-fcgi style, spec §2.2) instead of telling it where to listen.
        self.fd0 = fd0
        self._fd0_address: tuple[int, object] | None = None

    def _spawn(self, argv: Sequence[str] | str, *, shell: bool = False, stdout: int | None = None) -> GroupProcess:
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
            self.process = GroupProcess(
                argv,
                shell=shell,
                stdin=stdin,
                stdout=stdout if stdout is not None else self._log_file,
                stderr=self._log_file,
                env={**os.environ, **self.env} if self.env else None,
            )
        except OSError as error:
            program = argv if isinstance(argv, str) else argv[0]
            raise TargetError(f"cannot start {program}: {error.strerror or error}") from None
        finally:
            # The child holds its own copy; ours would keep accepting into the backlog
            # after the child died, hiding a dead target behind hanging connections.
            if listener is not None:
                listener.close()
        return self.process

    def process_stats(self) -> ProcessStats | None:
        # Its process group is the target, shell wrappers and their children included.
        return None if self.process is None else self.process.stats()

    def exit_status(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def note_children(self) -> None:
        # Children that left the group (setsid: php-cgi's workers may) are found through their parent
        # links; noted while those still lead to them, stop() ends them even after their parent died.
        if self.process is not None and self.process.poll() is None:
            self.process.strays()

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
        process.stop(self.stop_grace, self.stop_signal)
        if process.stdout is not None:
            process.stdout.close()

    def discard_log(self) -> None:
        """Removes the log file of a target that will be neither started nor read again (stop() keeps it:
        a restarted target appends to it, and a failed case reads its tail)."""
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()


# The reference responder's exit status for options it does not take.
USAGE_STATUS = 2


def reference_binary(root: Path, build_dir: str = "build") -> Path:
    override = os.environ.get(RESPONDER_ENV)
    if override:
        return Path(override)
    return root / build_dir / "reference-server" / "fcgispec-responder"


def _option_value(args: Sequence[str], option: str) -> str | None:
    """The value of the last `--option VALUE` or `--option=VALUE` in args, or None."""
    value = None
    for index, arg in enumerate(args):
        if arg == option and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(option + "="):
            value = arg[len(option) + 1 :]
    return value


class ReferenceTarget(SpawnedTarget):
    """The reference responder, spawned on a free loopback port (with --app hello, without its probe app)."""

    is_reference = True
    has_probe_app = True
    probe_app_reason = "the reference responder's own probe app"

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
        if _option_value(self.extra_args, "--app") not in (None, "probe"):
            # Another application answers the Responder role: found out by asking, as for cmd: targets.
            self.has_probe_app = None
            self.probe_app_reason = ""
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
            if self.exit_status() == USAGE_STATUS:
                said = next((text for text in self.log_tail().splitlines() if text.strip()), "no message")
                raise TargetUsageError(f"the reference responder rejected its options: {said}")
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


# What makes a command line more than a program and its arguments (quotes alone do not).
_SHELL_SYNTAX = set("|&;<>()$`\\*?[]#~{}!\n")
_SHELL_WORDS = {"if", "for", "while", "until", "case", "exec", "cd", "export", "set", "ulimit", "umask", ".",
                "source", "eval", "trap", "{", "!", "time"}


def command_argv(command: str) -> list[str] | None:
    """The argv of a command line that is one program and its arguments (no shell needed), else None."""
    if any(char in _SHELL_SYNTAX for char in command):
        return None
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if not argv or "=" in argv[0] or argv[0] in _SHELL_WORDS:
        return None
    return argv


# Shells that report a child killed by signal N as their own exit status 128+N.
_SHELLS = {"sh", "dash", "bash", "ash", "ksh", "ksh93", "mksh", "zsh", "busybox"}


def _runs_a_shell(pid: int) -> bool:
    """Whether the process runs a shell (False once it has exec'd the program, or is gone)."""
    try:
        program = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return False
    return program in _SHELLS or program == os.path.basename(os.path.realpath("/bin/sh"))


class CommandTarget(SpawnedTarget):
    """A command spawned for the run: {port} or {socket} is where it must listen.

    A command with neither is fd0-capable: it gets a listening TCP socket as its
    stdin (how spawn-fcgi and web servers start FastCGI applications, spec §2.2).
    A command that is one program and its arguments is started without a shell, so its
    exit status is the program's own; one with shell syntax runs through /bin/sh. A shell
    (that one, or a wrapper script's) reports a child killed by signal N as 128+N, but only
    when it stayed instead of exec'ing the program: through_shell, found out once the
    command is up.
    """

    def __init__(self, command: str, *, env: Mapping[str, str] | None = None) -> None:
        if not command.strip():
            raise TargetError("cmd: expected cmd:COMMAND, a command line that starts the target")
        placeholder = "{port}" in command or "{socket}" in command
        super().__init__(env=env, fd0=not placeholder)
        self.command = command
        self.description = f"cmd:{command}"
        # Until it is up: a shell stays between when the command needs one (start() finds out).
        self.through_shell = command_argv(command.replace("{port}", "0").replace("{socket}", "x")) is None
        self._address: tuple[int, object] | None = None
        self._socket_dir: tempfile.TemporaryDirectory[str] | None = None
        self.has_probe_app = None  # found out by asking once it is up
        self.probe_app_reason = ""

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
        variant.probe_app_reason = self.probe_app_reason
        return variant

    def start(self) -> None:
        command = self.command
        if self.fd0:
            self._spawn_command(command)
            self._address = self._fd0_address
            self._find_out_shell(SHELL_EXEC_WAIT)
            self.note_children()
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
        self._spawn_command(command)
        self._wait_until_accepting(START_TIMEOUT)
        self._find_out_shell(0.0)
        self.note_children()

    def _spawn_command(self, command: str) -> None:
        argv = command_argv(command)
        self.through_shell = argv is None
        self._spawn(command if argv is None else argv, shell=argv is None)

    def _find_out_shell(self, wait: float) -> None:
        """through_shell: the process the harness started still runs a shell (/bin/sh for shell syntax,
        or the interpreter of a wrapper script). A shell that exec'd the program (`exec`, or its own
        exec of a last simple command) is gone: then the status is the program's own. wait: how long
        /bin/sh may take to exec."""
        if self.process is None:
            return
        end_time = time.monotonic() + (wait if self.through_shell else 0.0)
        while _runs_a_shell(self.process.pid) and time.monotonic() < end_time:
            time.sleep(0.01)
        self.through_shell = _runs_a_shell(self.process.pid)

    def _wait_until_accepting(self, timeout: float) -> None:
        end_time = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < end_time:
            if self.exit_status() is not None:
                raise TargetError(f"target command {self.exit_text()} before accepting{self._said()}")
            try:
                conn = self.connect(timeout=1.0, label="startup")
            except TargetUnreachable as error:
                last_error = str(error)
                time.sleep(0.02)
                continue
            conn.close()
            return
        self.stop()
        raise TargetError(f"target did not accept connections within {timeout:g}s ({last_error}){self._said()}")

    def _said(self) -> str:
        """The end of its output after a colon, for a start-up error; '' when it wrote nothing."""
        tail = self.log_tail().strip()
        return f":\n{tail}" if tail else ""

    def address(self) -> tuple[int, object]:
        if self._address is None:
            raise TargetUnreachable("command target not started")
        return self._address

    def stop(self) -> None:
        super().stop()
        if self._socket_dir is not None:  # made again by the next start()
            self._socket_dir.cleanup()
            self._socket_dir = None

