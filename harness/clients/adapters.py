"""Client adapters: the HTTP clients under test, as processes that speak the adapter protocol.

An adapter reads request lines on stdin (`GET URL`, `POST URL BODYLEN`, `ABANDON URL N`,
`CONCURRENT K`, `SLEEP MS`, `CLOSE_IDLE`) and writes one JSON line per request, with one long-lived
client object, so connection reuse happens as it would in a real program (see the README).

Client specs (`--client`):
  reference      the C reference client, build/http-client/fcgispec-http-client adapter
                 ($FCGISPEC_HTTP_CLIENT names another binary, e.g. the ASan build)
  cmd:COMMAND    any adapter: COMMAND is split like a shell would and given the adapter options
  NAME           a client harness/clients/registry.py knows (NAMED_CLIENTS: name -> command builder);
                 its optional UNSUPPORTED_OPTIONS {name: {option: reason}} says which settings it lacks
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from harness.targets.process import GroupProcess, descendants
from harness.verdicts import AdapterDied, AdapterTimeout, HarnessError, Unsupported

REFERENCE_CLIENT = Path("build/http-client/fcgispec-http-client")
STDERR_LIMIT = 1 << 20
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")


@dataclass(frozen=True)
class ClientSpec:
    name: str
    command: tuple[str, ...]
    # Adapter options this client has no equivalent for (e.g. --max-idle-per-host) and why.
    unsupported: Mapping[str, str] = field(default_factory=dict)


class ClientUsageError(HarnessError):
    """--client names no client there is: the user's mistake, not the harness's."""


def parse_client(spec: str, root: Path) -> ClientSpec:
    """`reference`, `cmd:COMMAND` or a name from harness/clients/registry.py."""
    if spec == "reference":
        binary = Path(os.environ.get("FCGISPEC_HTTP_CLIENT") or root / REFERENCE_CLIENT)
        if not binary.exists():
            raise HarnessError(f"reference client not built: {binary} (run ./fcgispec setup)")
        return ClientSpec("reference", (str(binary), "adapter"))
    if spec.startswith("cmd:"):
        try:
            command = tuple(shlex.split(spec[4:]))
        except ValueError as error:
            raise ClientUsageError(f"{spec!r}: the command cannot be split ({error})") from None
        if not command:
            raise ClientUsageError("cmd: needs a command")
        return ClientSpec(spec, command)
    try:
        adapters = importlib.import_module("harness.clients.registry")
    except ModuleNotFoundError:
        adapters = None
    named = getattr(adapters, "NAMED_CLIENTS", {}) if adapters else {}
    if spec not in named:
        known = ", ".join(["reference", *sorted(named)])
        raise ClientUsageError(f"unknown client {spec!r}: use cmd:COMMAND or one of {known}")
    unsupported = getattr(adapters, "UNSUPPORTED_OPTIONS", {}).get(spec, {})
    return ClientSpec(spec, tuple(named[spec](root)), dict(unsupported))


@dataclass
class ClientResult:
    """One JSON line of the adapter."""

    line: str
    status: int | None
    body_length: int
    body_sha256: str | None
    error: str | None
    reused: bool | None = None
    connects: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None

    def __str__(self) -> str:
        if self.ok:
            text = f"{self.status}, {self.body_length} body bytes"
        else:
            text = f"error {self.error!r} after {self.body_length} body bytes"
        if self.reused is not None:
            text += ", reused" if self.reused else ", new connection"
        return text


def _result_from_json(line: str) -> ClientResult:
    try:
        data = json.loads(line)
        status = data.get("status")
        return ClientResult(
            line=line,
            status=int(status) if status is not None else None,
            body_length=int(data.get("body_length") or 0),
            body_sha256=data.get("body_sha256"),
            error=None if data.get("error") is None else str(data["error"]),
            reused=data.get("reused") if isinstance(data.get("reused"), bool) else None,
            connects=data.get("connects") if isinstance(data.get("connects"), int) else None,
        )
    except (ValueError, TypeError, AttributeError) as error:
        raise HarnessError(f"adapter wrote a line that is not a result: {line!r} ({error})") from None


class ClientProcess:
    """A running adapter: feed it lines, read its results with timeouts, count its descriptors."""

    def __init__(self, spec: ClientSpec, *, cacert: Path | None = None, timeout: float = 3.0,
                 max_idle_per_host: int | None = None, extra_args: Sequence[str] = ()) -> None:
        self.spec = spec
        self.timeout = timeout
        self.args = list(extra_args)
        if cacert is not None:
            self.args += ["--cacert", str(cacert)]
        if max_idle_per_host is not None:
            reason = spec.unsupported.get("--max-idle-per-host")
            if reason:
                raise Unsupported(f"{spec.name} has no max-idle-per-host setting: {reason}")
            self.args += ["--max-idle-per-host", str(max_idle_per_host)]
        self.args += ["--timeout", f"{timeout:g}"]
        self.transcript: list[str] = []
        self.results = 0  # result lines read so far
        self.started = time.monotonic()
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr = bytearray()
        self.proc: GroupProcess | None = None

    @property
    def command(self) -> list[str]:
        return [*self.spec.command, *self.args]

    def start(self) -> None:
        try:
            # In a session of its own: stop() ends a wrapper script and the client it started.
            self.proc = GroupProcess(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        except OSError as error:
            raise HarnessError(f"cannot start the client adapter {self.command}: {error}") from None
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while True:
            chunk = self.proc.stderr.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                return
            if len(self._stderr) < STDERR_LIMIT:
                self._stderr += chunk

    def _stamp(self) -> str:
        return f"{time.monotonic() - self.started:7.3f}s"

    def send(self, line: str) -> None:
        if self.proc is None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        self.transcript.append(f"{self._stamp()} >> {line}")
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise AdapterDied(f"the adapter exited before it read {line!r}: {self.exit_text()}") from None

    def result(self, timeout: float | None = None) -> ClientResult:
        wait = self.timeout + 3.0 if timeout is None else timeout
        try:
            line = self._lines.get(timeout=max(wait, 0.01))
        except queue.Empty:
            raise AdapterTimeout(f"no result line within {wait:.1f} s") from None
        if line is None:
            self._lines.put(None)
            if self.proc is not None:
                try:
                    self.proc.wait(1.0)
                except subprocess.TimeoutExpired:
                    pass
            raise AdapterDied(f"the adapter exited while a result was due: {self.exit_text()}")
        result = _result_from_json(line)
        self.results += 1
        self.transcript.append(f"{self._stamp()} << {line}")
        return result

    def request(self, line: str, timeout: float | None = None) -> ClientResult:
        self.send(line)
        return self.result(timeout)

    def concurrent(self, lines: Sequence[str], timeout: float | None = None) -> list[ClientResult]:
        """CONCURRENT K and the K lines; the K results in input order."""
        self.send(f"CONCURRENT {len(lines)}")
        for line in lines:
            self.send(line)
        deadline = time.monotonic() + (self.timeout + 3.0 if timeout is None else timeout)
        return [self.result(deadline - time.monotonic()) for _ in lines]

    def close_idle(self) -> None:
        self.send("CLOSE_IDLE")

    def pids(self) -> list[int]:
        """The adapter and its descendants (a wrapper script's child is the real client)."""
        if self.proc is None:
            return []
        return [self.proc.pid, *descendants(self.proc.pid)]

    def fd_count(self, *, sockets_only: bool = False) -> int:
        total = 0
        for pid in self.pids():
            try:
                names = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for name in names:
                if not sockets_only:
                    total += 1
                    continue
                try:
                    total += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
                except OSError:
                    pass
        return total

    def exit_status(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def exit_text(self) -> str:
        status = self.exit_status()
        if status is None:
            return "still running"
        if status < 0:
            return f"killed by signal {-status}"
        return f"exit status {status}"

    def stderr_text(self) -> str:
        return self._stderr.decode("utf-8", "replace")

    def sanitizer_report(self) -> str | None:
        text = self.stderr_text()
        return text if any(marker in text for marker in SANITIZER_MARKERS) else None

    def stop(self, timeout: float = 3.0) -> int | None:
        """EOF on stdin, a wait for a clean exit, then SIGKILL of whatever is left of its process group."""
        proc = self.proc
        if proc is None:
            return None
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        proc.stop(grace=timeout, first_signal=None, reap_timeout=2.0)
        time.sleep(0.02)  # let the stderr reader take the last lines
        return proc.returncode
