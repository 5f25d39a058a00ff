"""The gateway under test: a named web server from harness/gateways/named.py, or any program (`cmd:`).

`--gateway` takes a name (NAMED_GATEWAYS) or `cmd:COMMAND`. A command is split as a shell would,
and `{http_port}`, `{app_host}`, `{app_port}` and `{read_timeout}` in it are replaced by the
loopback port it must listen on for HTTP, where the application listens, and the seconds it
should wait for the application's output; the same values are in its environment as
FCGISPEC_HTTP_PORT, FCGISPEC_APP_HOST, FCGISPEC_APP_PORT and FCGISPEC_READ_TIMEOUT. Every case
starts the gateway afresh in front of its own application and stops it (its whole process group)
when the case ends, so no case inherits another's connections.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

from harness.targets.base import free_tcp_port
from harness.targets.process import GroupProcess
from harness.verdicts import HarnessError

START_TIMEOUT = 10.0
STOP_GRACE = 3.0
# Seconds a gateway is configured to wait for the application's output (cases on a silent application wait longer).
READ_TIMEOUT = 4
COMMAND_ENVIRONMENT = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}


class GatewayUsageError(HarnessError):
    """--gateway names no gateway there is: the user's mistake."""


class GatewayStartError(HarnessError):
    """The gateway could not be started (or did not listen in time)."""


class Gateway:
    """One gateway instance in front of one application."""

    name = ""
    description = ""
    # Whether the configuration reuses FastCGI connections (None: not known, as for cmd:).
    keeps_backend_connections: bool | None = None
    read_timeout = READ_TIMEOUT

    @property
    def http_port(self) -> int:
        raise NotImplementedError

    def start(self, app_host: str, app_port: int) -> None:
        raise NotImplementedError

    def exit_status(self) -> int | None:
        """None while it runs; its exit status once it exited by itself (negative: a signal)."""
        raise NotImplementedError

    def log_tail(self, limit: int = 4000) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def version(self) -> str:
        return "unknown"


class NamedGateway(Gateway):
    """A web server from Debian with one of the temporary configurations of harness/gateways/named.py."""

    def __init__(self, server_class: type) -> None:
        self.server_class = server_class
        self.name = server_class.name
        self.description = f"{server_class.name}: {server_class.config_summary}"
        self.keeps_backend_connections = bool(server_class.keeps_backend_connections)
        self.read_timeout = int(getattr(server_class, "read_timeout", READ_TIMEOUT))
        self.server: object | None = None

    @property
    def http_port(self) -> int:
        assert self.server is not None
        return int(self.server.http_port)  # type: ignore[attr-defined]

    def start(self, app_host: str, app_port: int) -> None:
        from harness.capture.webservers import WebServerUnavailable

        server = self.server_class(app_host, app_port)
        self.server = server
        try:
            server.start()
        except WebServerUnavailable as error:
            raise GatewayStartError(str(error)) from None
        except RuntimeError as error:  # did not listen, or exited: its log tail is in the message
            raise GatewayStartError(f"{self.name} did not start: {error}") from None

    def exit_status(self) -> int | None:
        process = getattr(self.server, "process", None)
        return None if process is None else process.poll()

    def log_tail(self, limit: int = 4000) -> str:
        return "" if self.server is None else str(self.server.log_tail(limit))  # type: ignore[attr-defined]

    def config_text(self) -> str:
        return "" if self.server is None else str(getattr(self.server, "config_text", ""))

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()  # type: ignore[attr-defined]

    def version(self) -> str:
        try:
            return str(self.server_class.version())
        except Exception:  # a version string is provenance; its absence is no reason to stop
            return "unknown"


class CommandGateway(Gateway):
    """Any program that listens for HTTP on the port it is given and speaks FastCGI to the application."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.name = f"cmd:{command}"
        self.description = f"cmd: {command}"
        self.process: GroupProcess | None = None
        self._port = 0
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def http_port(self) -> int:
        return self._port

    def argv(self, app_host: str, app_port: int) -> list[str]:
        values = {"http_port": str(self._port), "app_host": app_host, "app_port": str(app_port),
                  "read_timeout": str(self.read_timeout)}
        words = shlex.split(self.command)
        for name, value in values.items():
            words = [w.replace("{" + name + "}", value) for w in words]
        return words

    def start(self, app_host: str, app_port: int) -> None:
        self._port = free_tcp_port()
        env = dict(COMMAND_ENVIRONMENT, FCGISPEC_HTTP_PORT=str(self._port), FCGISPEC_APP_HOST=app_host,
                   FCGISPEC_APP_PORT=str(app_port), FCGISPEC_READ_TIMEOUT=str(self.read_timeout))
        self._log = tempfile.NamedTemporaryFile(prefix="fcgispec-gateway-", suffix=".log")
        try:
            self.process = GroupProcess(self.argv(app_host, app_port), stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=self._log, env=env)
        except OSError as error:
            self.stop()
            raise GatewayStartError(f"cannot run {self.command!r}: {error.strerror or error}") from None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                status = self.process.returncode
                tail = self.log_tail(600).strip()
                self.stop()
                raise GatewayStartError(f"{self.command!r} exited with status {status} before it listened"
                                        + (f": {tail}" if tail else ""))
            try:
                with socket.create_connection(("127.0.0.1", self._port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise GatewayStartError(f"{self.command!r} did not listen on 127.0.0.1:{{http_port}} "
                                f"within {START_TIMEOUT:g} s (is {{http_port}} or $FCGISPEC_HTTP_PORT used?)")

    def exit_status(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, limit: int = 4000) -> str:
        from harness.capture.webservers import log_file_tail

        return log_file_tail(self._log, limit)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=STOP_GRACE)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass(frozen=True)
class GatewaySpec:
    """What --gateway named: how to make a fresh instance, and what to call it."""

    name: str
    make: Callable[[], Gateway]
    package_section: str = ""


def named_gateways() -> dict[str, type]:
    from harness.gateways.named import NAMED_GATEWAYS

    return dict(NAMED_GATEWAYS)


def parse_gateway(spec: str) -> GatewaySpec:
    """A name of harness/gateways/named.py, or cmd:COMMAND."""
    if spec.startswith("cmd:"):
        command = spec[4:].strip()
        try:
            words = shlex.split(command)
        except ValueError as error:
            raise GatewayUsageError(f"{spec!r}: the command cannot be split ({error})") from None
        if not words:
            raise GatewayUsageError("cmd: needs a command")
        return GatewaySpec(spec, lambda: CommandGateway(command))
    named = named_gateways()
    if spec not in named:
        raise GatewayUsageError(f"unknown gateway {spec!r}: use cmd:COMMAND or one of {', '.join(named)}")
    server_class = named[spec]
    return GatewaySpec(spec, lambda: NamedGateway(server_class), getattr(server_class, "package_section", ""))
