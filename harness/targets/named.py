"""Named targets: real FastCGI servers from Debian that the suite knows how to start.

`--target NAME` for each NAME in NAMED_TARGETS. Each one is started by the harness on a
free loopback port (or a unix socket in a temporary directory) with a temporary config,
in its own session, and serves the probe app written in its own language
(fixtures/targets/NAME/). Start-up waits until a probe request is answered, not just until
the port accepts; stop() sends SIGTERM to the whole process group, SIGKILLs what is left after
a grace period (harness/targets/process.py), and removes the temporary files and any socket
file left behind.

What a platform cannot do of the probe contract (README "The probe app") is listed in its
`limitations`, keyed by the names below, so that a case can report `unsupported` for it
instead of failing the server: `target.probe_limitations` on a started target, read by
CaseContext.require_probe_feature / probe_can / params_match. A limitation is what the
probe app cannot see or do on its platform; what the server does on the wire is never one
(a server that takes a role it cannot serve, or loses bytes, is judged, not excused).

Targets whose probe must be compiled (go-fcgi, libfcgi) are built by build_named_target(),
which does nothing when the binary is newer than its sources. node-fastcgi, which Debian does
not package, is installed from the npm registry into the work directory on first use
(install_npm_package); everything else comes from Debian: section NAME of scripts/debian-packages.txt, installed on
first use (harness/installation/packages.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from harness.wire.connection import ConnectionClosed, FcgiTimeout, request
from harness.wire.probe_app import ProbeError, parse_cgi, parse_probe_report, probe_params, probe_query
from harness.installation.packages import PackagesMissing, PackagesUnavailable, ensure_packages, section_packages
from harness.installation.paths import PROJECT_ROOT, work_dir
from harness.targets.base import SpawnedTarget, Target, TargetError, TargetUnreachable, TargetUnsupported, free_tcp_port
from harness.verdicts import Unsupported

NAMED_START_TIMEOUT = 15.0
ANSWER_TIMEOUT = 2.0
BUILD_TIMEOUT = 300.0
# The request start-up sends: a small POST with CONTENT_LENGTH (servers that read the body
# only up to CONTENT_LENGTH, php-fpm and uwsgi, still see it all).
STARTUP_STDIN = b"fcgispec"

# Keys of `limitations`: features of the probe contract a platform cannot offer.
LIMIT_PARAMS_ORDER = "params-order"  # params not reported in the order received
LIMIT_PARAMS_DUPLICATES = "params-duplicates"  # a repeated name is reported once
LIMIT_PARAMS_BYTES = "params-bytes"  # some bytes of names/values are not reported as sent (NUL, '=', mangling)
LIMIT_PARAMS_ALL = "params-all"  # some params are not visible to the app (consumed or hidden by the platform)
LIMIT_STDIN_CONTENT_LENGTH = "stdin-content-length"  # STDIN read only up to CONTENT_LENGTH (none without it)
LIMIT_SHORT_STDIN = "short-stdin"  # STDIN shorter than CONTENT_LENGTH is not answered with the probe's 400
LIMIT_STDERR = "err"  # err=TEXT does not arrive on FCGI_STDERR as TEXT
LIMIT_APP_STATUS = "app_status"  # END_REQUEST appStatus cannot be set
LIMIT_ECHO = "echo"  # STDIN is not echoed while it arrives
LIMIT_AUTHORIZER = "authorizer"  # the probe cannot play the Authorizer role as the reference does
LIMIT_FILTER = "filter"  # the probe cannot play the Filter role (FCGI_DATA echoed) as the reference does
PROBE_LIMITATION_KEYS = frozenset({
    LIMIT_PARAMS_ORDER, LIMIT_PARAMS_DUPLICATES, LIMIT_PARAMS_BYTES, LIMIT_PARAMS_ALL, LIMIT_STDIN_CONTENT_LENGTH,
    LIMIT_SHORT_STDIN, LIMIT_STDERR, LIMIT_APP_STATUS, LIMIT_ECHO, LIMIT_AUTHORIZER, LIMIT_FILTER,
})

NAMED_TARGETS_DIR = "named-targets"  # under the work directory (harness/installation/paths.py)
NPM_DIR = "npm"
NPM = "/usr/bin/npm"
NPM_TIMEOUT = 300.0


@dataclass(frozen=True)
class NamedTarget:
    """A real FastCGI server the suite can start: what it is, what it needs, what it cannot do."""

    name: str
    description: str
    # Probe-contract features it cannot offer: LIMIT_* key -> why.
    limitations: Mapping[str, str]
    # SCRIPT_FILENAME the harness must send for the probe app, relative to the project root
    # (None: any value will do, the suite's default /fcgispec/probe included). A started
    # target has the absolute path as target.script_filename.
    script_filename: str | None
    factory: Callable[..., "NamedSpawnedTarget"] = field(repr=False)
    needs_build: bool = False
    # With LIMIT_PARAMS_ALL: the param names the platform keeps from the app (never reported).
    unreported_params: Callable[[bytes], bool] | None = field(default=None, repr=False)

    def make(self, root: Path, **options: object) -> "NamedSpawnedTarget":
        """A new, not yet started, instance (options: unix=True for a unix socket, env=...)."""
        return self.factory(Path(root), **options)

    @property
    def packages(self) -> tuple[str, ...]:
        """Its Debian packages: section NAME of scripts/debian-packages.txt, installed on first use."""
        return section_packages(PROJECT_ROOT, self.name)

    def missing_executables(self) -> list[str]:
        return [path for path in self.factory.find_executables() if not os.access(path, os.X_OK)]  # type: ignore[attr-defined]

    def missing(self) -> list[str]:
        """What is not installed: executables, then Perl modules (empty when the target can start)."""
        missing = self.missing_executables()
        if not missing:
            modules = self.factory.perl_modules  # type: ignore[attr-defined]
            missing = [f"perl's {module}" for module in _missing_perl_modules(modules)]
        return missing


class NamedSpawnedTarget(SpawnedTarget):
    """A named real server: temporary config, free port (or unix socket), probe-answer start-up."""

    name = "named"
    has_probe_app = True
    probe_app_reason = "the named target's own probe app (fixtures/targets/)"
    executables: tuple[str, ...] = ()

    @classmethod
    def find_executables(cls) -> tuple[str, ...]:
        """The programs it runs, as found on this machine (a versioned name is looked up when asked)."""
        return cls.executables

    # Perl modules the probe app loads (perl -MMODULE), checked before start.
    perl_modules: tuple[str, ...] = ()
    # May be started with a listening socket on fd 0 instead of an address (spec §2.2).
    fd0_capable = False
    # Some servers need longer than SpawnedTarget's 3 s to bury their workers after SIGTERM,
    # and an orderly exit is worth the wait.
    stop_signal = signal.SIGTERM
    stop_grace = 5.0

    def __init__(
        self,
        root: Path,
        *,
        unix: bool = False,
        env: Mapping[str, str] | None = None,
        fd0: bool = False,
    ) -> None:
        if fd0 and not self.fd0_capable:
            raise Unsupported(f"{self.name} cannot be started with its listening socket on fd 0")
        if fd0 and unix:
            raise TargetError("fd0 and unix are exclusive")
        super().__init__(env=env, fd0=fd0)
        self.root = Path(root)
        self.unix = unix
        self.named = NAMED_TARGETS[self.name]
        # Target interface: what its probe app cannot do, and the SCRIPT_FILENAME it needs.
        self.probe_limitations: Mapping[str, str] = dict(self.named.limitations)
        self.script_filename: str | None = (
            str(self.root / self.named.script_filename) if self.named.script_filename else None
        )
        self.port: int | None = None
        self.socket_path: str | None = None
        self.workdir: str | None = None
        self._address: tuple[int, object] | None = None
        self.description = self._describe()

    def param_unreported(self, name: bytes) -> bool:
        """Whether the platform keeps this param from the probe app (LIMIT_PARAMS_ALL)."""
        hidden = self.named.unreported_params
        return bool(hidden and hidden(name))

    # --- what each server defines -------------------------------------------------------

    def command(self, listen: str) -> list[str]:
        """argv to start the server; listen is 127.0.0.1:PORT, a socket path, or '' for fd 0."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Before command(): build, check files (self.workdir exists)."""

    # --- Target ----------------------------------------------------------------------

    def _describe(self) -> str:
        how = "fd 0" if self.fd0 else "unix socket" if self.unix else "127.0.0.1"
        return f"{self.name} ({self.named.description}; {how})"

    def variant(
        self, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None, fd0: bool = False
    ) -> "NamedSpawnedTarget":
        if extra_args:
            raise Unsupported(f"command-line changes need the reference target ({self.name} takes env changes only)")
        return type(self)(self.root, unix=self.unix and not fd0, env={**self.env, **(env or {})}, fd0=fd0)

    def start(self) -> None:
        """Temporary workdir and config, a free port or socket, spawn, and wait until a probe request is answered."""
        if self.named.missing():
            # First use: the target's own packages (scripts/debian-packages.txt, section NAME).
            try:
                ensure_packages(self.root, self.name)
            except PackagesUnavailable as error:
                raise TargetUnsupported(f"{self.name} cannot be installed here: {error}") from None
            except PackagesMissing as error:
                raise TargetError(f"{self.name}: {error}") from None
        missing = self.named.missing()
        if missing:
            raise TargetError(f"{self.name}: {', '.join(missing)} not installed (apt-get install {' '.join(self.named.packages)})")
        self.workdir = tempfile.mkdtemp(prefix=f"fcgispec-{self.name}-")
        os.chmod(self.workdir, 0o755)  # workers that drop privileges read their config and socket here
        try:
            self.prepare()
            if self.fd0:
                listen = ""
            elif self.unix:
                self.socket_path = os.path.join(self.workdir, "app.sock")
                listen = self.socket_path
                self._address = (socket.AF_UNIX, self.socket_path)
            else:
                self.port = free_tcp_port()
                listen = f"127.0.0.1:{self.port}"
                self._address = (socket.AF_INET, ("127.0.0.1", self.port))
            self._spawn(self.command(listen), stdout=subprocess.DEVNULL if self.fd0 else None)
            if self.fd0:
                self._address = self._fd0_address
            self.description = self._describe() + f" at {self._where()}"
            self._wait_until_answered(NAMED_START_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def _where(self) -> str:
        if self._address is None:
            return "?"
        family, address = self._address
        return f"unix:{address}" if family == socket.AF_UNIX else "tcp:%s:%d" % address  # type: ignore[str-format]

    def address(self) -> tuple[int, object]:
        if self._address is None:
            raise TargetUnreachable(f"{self.name} not started")
        return self._address

    def startup_params(self) -> list[tuple[bytes | str, bytes | str]]:
        return probe_params(
            probe_query(status=200), "POST", content_length=len(STARTUP_STDIN), script_filename=self.script_filename
        )

    def _wait_until_answered(self, timeout: float) -> None:
        """Until a probe request gets a probe report (the server is up and the probe app works)."""
        end_time = time.monotonic() + timeout
        last = "no connection yet"
        while time.monotonic() < end_time:
            if self.exit_status() is not None:
                raise TargetError(f"{self.name} {self.exit_text()} before answering:\n{self.log_tail()}")
            try:
                conn = self.connect(timeout=1.0, label="startup")
            except TargetUnreachable as error:
                last = str(error)
                time.sleep(0.02)
                continue
            try:
                response = request(conn, 1, self.startup_params(), STARTUP_STDIN, keep_conn=False, timeout=ANSWER_TIMEOUT)
            except (FcgiTimeout, ConnectionClosed, OSError) as error:
                if "FCGI_WEB_SERVER_ADDRS" in self.env and isinstance(error, ConnectionClosed):
                    # Started to refuse this peer (spec §3.2): it is up, and doing just that.
                    return
                last = f"probe request: {error}"
                time.sleep(0.05)
                continue
            finally:
                conn.close()
            try:
                report = parse_probe_report(parse_cgi(response.stdout).body)
            except ProbeError as error:
                # It answers, but not with the probe app: a config problem, not a slow start.
                raise TargetError(
                    f"{self.name} answered, but not with a probe report ({error});\n"
                    f"STDOUT {response.stdout[:300]!r}\nSTDERR {response.stderr[:300]!r}\n{self.log_tail()}"
                ) from None
            if report.stdin_length != len(STARTUP_STDIN):
                raise TargetError(f"{self.name}'s probe saw {report.stdin_length} bytes of STDIN, not {len(STARTUP_STDIN)}")
            return
        raise TargetError(f"{self.name} did not answer a probe request within {timeout:g}s ({last}):\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the whole process group (SpawnedTarget.stop), then remove the temporary files."""
        super().stop()
        if self.socket_path and os.path.exists(self.socket_path):
            os.unlink(self.socket_path)  # go-fcgi leaves its socket file behind
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def _write(path: str, text: str) -> None:
    with open(path, "w") as out:
        out.write(text)


# --- php-fpm -----------------------------------------------------------------------------


class PhpFpmTarget(NamedSpawnedTarget):
    name = "php-fpm"

    @classmethod
    def find_executables(cls) -> tuple[str, ...]:
        # Debian names the binary after the PHP version of the release (php-fpm8.2): the newest here.
        return (_newest_versioned("/usr/sbin", "php-fpm"),)
    children = 8

    def command(self, listen: str) -> list[str]:
        """Writes a php-fpm.conf (one static pool of probe.php workers) and returns php-fpm's argv."""
        assert self.workdir is not None
        config = os.path.join(self.workdir, "php-fpm.conf")
        lines = [
            "[global]",
            "daemonize = no",
            "error_log = /proc/self/fd/2",
            f"pid = {self.workdir}/php-fpm.pid",
            "[probe]",
            f"listen = {listen}",
            "listen.mode = 0666",
            "pm = static",
            f"pm.max_children = {self.children}",
            "clear_env = yes",
            "catch_workers_output = yes",
        ]
        if os.geteuid() == 0:
            lines += ["user = nobody", "group = nogroup"]
        _write(config, "\n".join(lines) + "\n")
        # -F foreground, -O log to stderr, -y config; the system php.ini (Debian's defaults) applies.
        return [self.find_executables()[0], "-F", "-O", "-y", config]


# --- go-fcgi -------------------------------------------------------------------------------


class GoFcgiTarget(NamedSpawnedTarget):
    name = "go-fcgi"
    executables = ("/usr/bin/go",)
    fd0_capable = True

    def prepare(self) -> None:
        self.binary = build_named_target(self.name, self.root)

    def command(self, listen: str) -> list[str]:
        if listen.startswith("/"):
            listen = "unix:" + listen
        return [str(self.binary)] + ([listen] if listen else [])


# --- libfcgi -------------------------------------------------------------------------------


class LibfcgiTarget(NamedSpawnedTarget):
    name = "libfcgi"
    executables = ("/usr/bin/cmake",)
    fd0_capable = True
    threads = 8

    def prepare(self) -> None:
        self.binary = build_named_target(self.name, self.root)

    def command(self, listen: str) -> list[str]:
        return [str(self.binary), listen, str(self.threads)]


# --- fcgiwrap ------------------------------------------------------------------------------


class FcgiwrapTarget(NamedSpawnedTarget):
    name = "fcgiwrap"
    executables = ("/usr/bin/spawn-fcgi", "/usr/sbin/fcgiwrap")
    fd0_capable = True  # then fcgiwrap gets the harness's socket directly, without spawn-fcgi

    def prepare(self) -> None:
        assert self.script_filename is not None
        if not os.access(self.script_filename, os.X_OK):
            raise TargetError(f"{self.script_filename} must be executable (chmod +x): fcgiwrap runs it as a CGI")

    def command(self, listen: str) -> list[str]:
        # fcgiwrap passes its whole environment to the CGI: env -i keeps only PATH (which the
        # probe leaves out of its report) and a variant's own variables (FCGI_WEB_SERVER_ADDRS...).
        extra = [f"{key}={value}" for key, value in sorted(self.env.items())]
        wrapped = ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", *extra, "/usr/sbin/fcgiwrap", "-f"]
        if not listen:
            return wrapped
        if listen.startswith("/"):
            return ["/usr/bin/spawn-fcgi", "-n", "-s", listen, "-M", "0666", "--", *wrapped]
        host, _, port = listen.rpartition(":")
        return ["/usr/bin/spawn-fcgi", "-n", "-a", host, "-p", port, "--", *wrapped]


# --- perl-fcgi -----------------------------------------------------------------------------


class PerlFcgiTarget(NamedSpawnedTarget):
    name = "perl-fcgi"
    executables = ("/usr/bin/perl",)
    perl_modules = ("FCGI",)
    fd0_capable = True
    workers = 8

    def command(self, listen: str) -> list[str]:
        probe = self.root / "fixtures" / "targets" / "perl-fcgi" / "probe.pl"
        return ["/usr/bin/perl", str(probe), listen, str(self.workers)]


def _newest_versioned(directory: str, program: str) -> str:
    """DIRECTORY/PROGRAMX.Y with the highest version X.Y here (DIRECTORY/PROGRAM when there is none)."""
    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in path.name[len(program):].split(".") if part.isdigit())

    found = [path for path in Path(directory).glob(f"{program}[0-9]*") if version(path)]
    return str(max(found, key=version)) if found else os.path.join(directory, program)


def _missing_perl_modules(modules: Sequence[str]) -> list[str]:
    """The modules of the list that /usr/bin/perl cannot load."""
    return [
        module
        for module in modules
        if subprocess.run(["/usr/bin/perl", f"-M{module}", "-e", "1"], capture_output=True).returncode != 0
    ]


# --- uwsgi ---------------------------------------------------------------------------------


class UwsgiTarget(NamedSpawnedTarget):
    name = "uwsgi"
    executables = ("/usr/bin/uwsgi-core",)
    processes = 4
    # uwsgi buries its workers one mercy period (1 s) after SIGINT or SIGTERM, up to 3 s
    # right after start-up: past 1.5 s the process group is killed.
    stop_signal = signal.SIGINT
    stop_grace = 1.5

    def command(self, listen: str) -> list[str]:
        """Writes a uwsgi.ini (fastcgi-socket, the WSGI probe, a master and its processes) and returns the argv."""
        assert self.workdir is not None
        config = os.path.join(self.workdir, "uwsgi.ini")
        probe = self.root / "fixtures" / "targets" / "uwsgi" / "probe.py"
        _write(
            config,
            "\n".join(
                [
                    "[uwsgi]",
                    "plugins = python3",
                    f"fastcgi-socket = {listen}",
                    "chmod-socket = 666",
                    f"wsgi-file = {probe}",
                    "master = true",
                    f"processes = {self.processes}",
                    "die-on-term = true",
                    # Without it a SIGTERM right after start can hang for 60 s.
                    "worker-reload-mercy = 1",
                    "disable-logging = true",
                    # The default (4096) refuses a request whose params take more than 4 KB
                    # ("consider increasing buffer size"); 65535 is the most uwsgi takes.
                    "buffer-size = 65535",
                ]
            )
            + "\n",
        )
        return [self.executables[0], "--ini", config]

    def _spawn(self, argv, *, shell: bool = False, stdout: int | None = None):  # type: ignore[override]
        # uwsgi reads every UWSGI_* environment variable as an option: none may leak in.
        saved = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith("UWSGI_")}
        try:
            return super()._spawn(argv, shell=shell, stdout=stdout)
        finally:
            os.environ.update(saved)


# --- php-cgi -------------------------------------------------------------------------------

# php-cgi's own environment, which PHP puts first in $_SERVER: probe.php leaves these out.
PHP_CGI_ENVIRONMENT = (b"PHP_FCGI_CHILDREN", b"PHP_FCGI_MAX_REQUESTS", b"FCGI_WEB_SERVER_ADDRS")


class PhpCgiTarget(NamedSpawnedTarget):
    name = "php-cgi"
    executables = ("/usr/bin/php-cgi",)  # the alternatives link to the release's php-cgiX.Y
    fd0_capable = True  # without -b, php-cgi serves the listening socket on fd 0
    # PHP_FCGI_CHILDREN: the parent forks this many children, each serving one connection at
    # a time (without it, one process serves one connection at a time). As Debian's lighttpd
    # configuration for PHP does (15-fastcgi-php.conf: 4 children).
    children = 4
    # PHP_FCGI_MAX_REQUESTS: a child exits after this many requests (500 when unset), closing
    # the connection it serves, and the parent forks another. 0 is no limit: a verdict must not
    # depend on how many requests the cases before it sent (findings PHPCGI-3).
    max_requests = 0

    def command(self, listen: str) -> list[str]:
        # env -i: php-cgi copies its whole environment into $_SERVER ahead of the params; only its
        # own variables (PHP_CGI_ENVIRONMENT, which the probe leaves out) are passed.
        variables = {
            "PHP_FCGI_CHILDREN": str(self.children),
            "PHP_FCGI_MAX_REQUESTS": str(self.max_requests),
            **self.env,
        }
        assignments = [f"{key}={value}" for key, value in sorted(variables.items())]
        return ["/usr/bin/env", "-i", *assignments, self.executables[0], *(["-b", listen] if listen else [])]


# --- node-fastcgi --------------------------------------------------------------------------

NODE_FASTCGI_VERSION = "2.0.0"


class NodeFastcgiTarget(NamedSpawnedTarget):
    name = "node-fastcgi"
    executables = ("/usr/bin/node",)  # npm only for the first install (install_npm_package)
    fd0_capable = True

    def prepare(self) -> None:
        self.modules = install_npm_package(self.root, "node-fastcgi", NODE_FASTCGI_VERSION)

    def command(self, listen: str) -> list[str]:
        probe = self.root / "fixtures" / "targets" / "node-fastcgi" / "probe.js"
        return ["/usr/bin/env", f"NODE_PATH={self.modules}", "/usr/bin/node", str(probe), *([listen] if listen else [])]


def _npm_installed_version(modules: Path, package: str) -> str | None:
    try:
        return str(json.loads((modules / package / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def install_npm_package(root: Path, package: str, version: str) -> Path:
    """`npm install` PACKAGE@VERSION into the work directory once (a lock keeps parallel runs apart); the node_modules dir."""
    prefix = work_dir(root) / NPM_DIR
    modules = prefix / "node_modules"
    if _npm_installed_version(modules, package) == version:
        return modules
    if not os.access(NPM, os.X_OK):
        raise TargetError(f"cannot install {package}@{version}: {NPM} not found (apt-get install npm)")
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _npm_installed_version(modules, package) == version:
            return modules  # another run installed it while this one waited
        # The user's npm configuration (registry, proxy) applies, as to any npm install.
        argv = [NPM, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", f"{package}@{version}"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=NPM_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise TargetError(f"cannot install {package}@{version} from npm ({' '.join(argv)}): {error}") from None
        if done.returncode != 0 or _npm_installed_version(modules, package) != version:
            raise TargetError(
                f"cannot install {package}@{version} from npm ({' '.join(argv)} exited with {done.returncode}):\n"
                f"{done.stderr[-2000:]}"
            )
    return modules


# --- mojo-fastcgi --------------------------------------------------------------------------


class MojoFastcgiTarget(NamedSpawnedTarget):
    name = "mojo-fastcgi"
    executables = ("/usr/bin/perl",)
    perl_modules = ("Mojolicious::Lite", "Mojo::Server::FastCGI")
    fd0_capable = True  # Mojo::Server::FastCGI itself serves only fd 0; the probe puts an address's socket there
    workers = 4

    def command(self, listen: str) -> list[str]:
        probe = self.root / "fixtures" / "targets" / "mojo-fastcgi" / "probe.pl"
        return ["/usr/bin/perl", str(probe), listen, str(self.workers)]


# --- net-async-fastcgi ---------------------------------------------------------------------


class NetAsyncFastcgiTarget(NamedSpawnedTarget):
    name = "net-async-fastcgi"
    executables = ("/usr/bin/perl",)
    perl_modules = ("Net::Async::FastCGI", "IO::Async::Loop")
    fd0_capable = True

    def command(self, listen: str) -> list[str]:
        probe = self.root / "fixtures" / "targets" / "net-async-fastcgi" / "probe.pl"
        return ["/usr/bin/perl", str(probe), *([listen] if listen else [])]


# --- builds --------------------------------------------------------------------------------


def _newest_mtime(paths: Sequence[Path]) -> float:
    return max(path.stat().st_mtime for path in paths)


def _up_to_date(binary: Path, sources: Sequence[Path]) -> bool:
    return binary.exists() and binary.stat().st_mtime >= _newest_mtime(sources)


def _run_build(argv: Sequence[str], env: Mapping[str, str] | None, what: str, cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(
            list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TargetError(f"cannot build {what}: {error}") from None
    if done.returncode != 0:
        raise TargetError(f"building {what} failed ({' '.join(argv)}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}")


def _build_go(root: Path) -> Path:
    source = root / "fixtures" / "targets" / "go-fcgi" / "probe.go"
    out_dir = work_dir(root) / NAMED_TARGETS_DIR / "go-fcgi"
    binary = out_dir / "fcgispec-go-probe"
    if _up_to_date(binary, [source]):
        return binary
    if not os.access("/usr/bin/go", os.X_OK):
        raise TargetError("go-fcgi: /usr/bin/go not installed (apt-get install golang-go)")
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(out_dir / "home"),
        "GOCACHE": str(out_dir / "gocache"),
        "GOPATH": str(out_dir / "gopath"),
        "GO111MODULE": "off",  # offline: the standard library only
        "GOFLAGS": "",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }
    partial = out_dir / f".fcgispec-go-probe.{os.getpid()}"
    _run_build(["/usr/bin/go", "build", "-o", str(partial), str(source)], env, "the go-fcgi probe", cwd=source.parent)
    os.replace(partial, binary)  # atomic: parallel workers never run half a binary
    return binary


def _build_libfcgi(root: Path) -> Path:
    source_dir = root / "fixtures" / "targets" / "libfcgi"
    sources = [source_dir / "probe.c", source_dir / "CMakeLists.txt"]
    # Built by the project's CMake once fixtures/targets/libfcgi is one of its subdirectories.
    from_project = root / "build" / "fixtures" / "targets" / "libfcgi" / "fcgispec-libfcgi-probe"
    if _up_to_date(from_project, sources):
        return from_project
    build_dir = work_dir(root) / NAMED_TARGETS_DIR / "libfcgi"
    binary = build_dir / "fcgispec-libfcgi-probe"
    if _up_to_date(binary, sources):
        return binary
    if not Path("/usr/include/fcgiapp.h").exists():
        raise TargetError("libfcgi: fcgiapp.h not found (apt-get install libfcgi-dev)")
    if not (build_dir / "CMakeCache.txt").exists():
        _run_build(["cmake", "-S", str(source_dir), "-B", str(build_dir)], None, "the libfcgi probe (configure)")
    _run_build(["cmake", "--build", str(build_dir)], None, "the libfcgi probe")
    return binary


_BUILDERS: dict[str, Callable[[Path], Path]] = {"go-fcgi": _build_go, "libfcgi": _build_libfcgi}


def build_named_target(name: str, root: Path) -> Path | None:
    """Build the probe of a named target that needs compiling (quick when nothing changed).

    Returns the probe binary, or None for a target with nothing to build.
    """
    if name not in NAMED_TARGETS:
        raise TargetError(f"unknown named target {name!r}")
    builder = _BUILDERS.get(name)
    return builder(Path(root)) if builder else None


# --- the table -----------------------------------------------------------------------------

_LIBFCGI_BYTES = "params reach the app as C strings NAME=VALUE: a NUL byte cuts a name or value, a '=' in a name splits it"

NAMED_TARGETS: dict[str, NamedTarget] = {
    "php-fpm": NamedTarget(
        name="php-fpm",
        description="PHP 8.2 FastCGI Process Manager, pm=static, probe.php",
        limitations={
            LIMIT_PARAMS_DUPLICATES: "params are read through $_SERVER: a repeated name is reported once, the last value",
            LIMIT_PARAMS_BYTES: "PHP mangles variable names ('.', ' ', '[' become '_') and cuts names at a NUL byte",
            LIMIT_PARAMS_ALL: "params named USER or HOME are hidden by php-fpm's own environment entries",
            LIMIT_STDIN_CONTENT_LENGTH: "PHP reads STDIN only up to CONTENT_LENGTH (nothing without it) and runs the "
            "script before STDIN has ended",
            LIMIT_SHORT_STDIN: "php-fpm waits for the rest of a body shorter than CONTENT_LENGTH: no answer at all",
            LIMIT_ECHO: "PHP reads the whole body (CONTENT_LENGTH bytes) before the script runs: STDIN cannot be echoed "
            "as it arrives",
            LIMIT_STDERR: "err=TEXT goes through error_log(): FCGI_STDERR carries 'PHP message: TEXT'",
            LIMIT_APP_STATUS: "END_REQUEST appStatus is always 0",
        },
        script_filename="fixtures/targets/php-fpm/probe.php",
        factory=PhpFpmTarget,
        unreported_params=lambda name: name in (b"USER", b"HOME"),
    ),
    "go-fcgi": NamedTarget(
        name="go-fcgi",
        description="Go 1.19 net/http/fcgi, fcgi.Serve with a probe handler",
        limitations={
            LIMIT_PARAMS_ORDER: "net/http/fcgi keeps params in a map: the report lists them in an order of its own",
            LIMIT_PARAMS_DUPLICATES: "net/http/fcgi keeps params in a map: a repeated name is reported once, the last value",
            LIMIT_PARAMS_ALL: "params net/http consumes are rebuilt from the http.Request (REQUEST_URI, QUERY_STRING, "
            "HTTP_*, CONTENT_*, REMOTE_*); SCRIPT_NAME, PATH_INFO and REMOTE_HOST are not visible",
            LIMIT_STDERR: "a net/http handler cannot write FCGI_STDERR",
            LIMIT_APP_STATUS: "END_REQUEST appStatus is always 0",
        },
        script_filename=None,
        factory=GoFcgiTarget,
        needs_build=True,
        unreported_params=lambda name: name in (b"SCRIPT_NAME", b"PATH_INFO", b"REMOTE_HOST"),
    ),
    "libfcgi": NamedTarget(
        name="libfcgi",
        description="C probe on libfcgi 2.4 (FCGX_Accept_r, 8 threads)",
        limitations={
            LIMIT_PARAMS_BYTES: _LIBFCGI_BYTES,
        },
        script_filename=None,
        factory=LibfcgiTarget,
        needs_build=True,
    ),
    "fcgiwrap": NamedTarget(
        name="fcgiwrap",
        description="fcgiwrap under spawn-fcgi, running probe.cgi (Perl) per request",
        limitations={
            LIMIT_PARAMS_BYTES: _LIBFCGI_BYTES,
            LIMIT_PARAMS_ALL: "a PATH param equal to /usr/bin:/bin at the end is taken for fcgiwrap's own and left out",
            LIMIT_APP_STATUS: "the CGI's exit status does not reach END_REQUEST (appStatus 0)",
            LIMIT_STDERR: "fcgiwrap turns every LF of the CGI's stderr into CRLF on FCGI_STDERR",
        },
        script_filename="fixtures/targets/fcgiwrap/probe.cgi",
        factory=FcgiwrapTarget,
        unreported_params=lambda name: name == b"PATH",
    ),
    "perl-fcgi": NamedTarget(
        name="perl-fcgi",
        description="Perl FCGI 0.82 (libfcgi inside), 8 pre-forked FCGI::Request loops",
        limitations={
            LIMIT_PARAMS_ORDER: "FCGI.pm hands params over as a hash: the report lists them sorted by name",
            LIMIT_PARAMS_DUPLICATES: "FCGI.pm hands params over as a hash: a repeated name is reported once, the last value",
            LIMIT_PARAMS_BYTES: _LIBFCGI_BYTES,
            LIMIT_APP_STATUS: "FCGI.pm has no call to set END_REQUEST appStatus (always 0)",
        },
        script_filename=None,
        factory=PerlFcgiTarget,
    ),
    "uwsgi": NamedTarget(
        name="uwsgi",
        description="uWSGI 2.0 fastcgi-socket, python3 plugin, WSGI probe, 4 processes",
        limitations={
            LIMIT_PARAMS_DUPLICATES: "the WSGI environ is a dict: a repeated name is reported once, the last value",
            LIMIT_PARAMS_ALL: "names with a '.' are left out of the report (they are WSGI's and uwsgi's own keys)",
            LIMIT_STDIN_CONTENT_LENGTH: "uwsgi reads STDIN only up to CONTENT_LENGTH (nothing without it)",
            LIMIT_STDERR: "wsgi.errors goes to uwsgi's log, not FCGI_STDERR",
            LIMIT_APP_STATUS: "END_REQUEST appStatus is uwsgi's (0)",
        },
        script_filename=None,
        factory=UwsgiTarget,
        unreported_params=lambda name: b"." in name,
    ),
    "php-cgi": NamedTarget(
        name="php-cgi",
        description="PHP 8.2 CGI binary in FastCGI mode (php-cgi -b), 4 children (PHP_FCGI_CHILDREN), probe.php",
        limitations={
            LIMIT_PARAMS_DUPLICATES: "params are read through $_SERVER: a repeated name is reported once",
            LIMIT_PARAMS_BYTES: "PHP mangles variable names ('.', ' ', '[' become '_') and cuts names at a NUL byte",
            LIMIT_PARAMS_ALL: "params named like php-cgi's own environment variables (PHP_FCGI_CHILDREN, "
            "PHP_FCGI_MAX_REQUESTS, FCGI_WEB_SERVER_ADDRS) are hidden by them",
            LIMIT_STDIN_CONTENT_LENGTH: "PHP reads STDIN only up to CONTENT_LENGTH (nothing without it) and runs the "
            "script before STDIN has ended",
            LIMIT_SHORT_STDIN: "php-cgi waits for the rest of a body shorter than CONTENT_LENGTH: no answer at all",
            LIMIT_ECHO: "PHP reads the whole body (CONTENT_LENGTH bytes) before the script runs: STDIN cannot be echoed "
            "as it arrives",
            LIMIT_STDERR: "err=TEXT goes through error_log(): FCGI_STDERR carries 'PHP message: TEXT'",
            LIMIT_APP_STATUS: "END_REQUEST appStatus is always 0",
        },
        script_filename="fixtures/targets/php-fpm/probe.php",
        factory=PhpCgiTarget,
        unreported_params=lambda name: name in PHP_CGI_ENVIRONMENT,
    ),
    "node-fastcgi": NamedTarget(
        name="node-fastcgi",
        description=f"node-fastcgi {NODE_FASTCGI_VERSION} (npm) on Node.js, probe.js",
        limitations={
            LIMIT_PARAMS_ORDER: "params come as a JavaScript object: names that are array indices are listed first",
            LIMIT_PARAMS_DUPLICATES: "params come as a JavaScript object: a repeated name is reported once, the last value",
            LIMIT_PARAMS_BYTES: "names and values are decoded as UTF-8: bytes that are not UTF-8 become U+FFFD",
            LIMIT_APP_STATUS: "END_REQUEST appStatus is node-fastcgi's own (0, or 1 after an error)",
        },
        script_filename=None,
        factory=NodeFastcgiTarget,
    ),
    "mojo-fastcgi": NamedTarget(
        name="mojo-fastcgi",
        description="Mojo::Server::FastCGI 0.50 (Mojolicious 9), a Mojolicious::Lite probe, 4 pre-forked accept loops",
        limitations={
            LIMIT_PARAMS_ORDER: "the app sees params as a hash ($c->req->env): the report lists them sorted by name",
            LIMIT_PARAMS_DUPLICATES: "the app sees params as a hash: a repeated name is reported once, the last value",
            LIMIT_STDIN_CONTENT_LENGTH: "Mojolicious takes a request body only up to CONTENT_LENGTH (none without it)",
            LIMIT_ECHO: "the server reads the whole request before the app runs: STDIN cannot be echoed as it arrives",
            LIMIT_STDERR: "Mojo::Server::FastCGI has no FCGI_STDERR: the app's log goes to the process's stderr",
            LIMIT_APP_STATUS: "END_REQUEST appStatus is always 0",
        },
        script_filename=None,
        factory=MojoFastcgiTarget,
    ),
    "net-async-fastcgi": NamedTarget(
        name="net-async-fastcgi",
        description="Net::Async::FastCGI 0.25 on IO::Async, one event-loop process",
        limitations={
            LIMIT_PARAMS_ORDER: "the app sees params as a hash ($req->params): the report lists them sorted by name",
            LIMIT_PARAMS_DUPLICATES: "the app sees params as a hash: a repeated name is reported once, the last value",
            LIMIT_ECHO: "the request reaches the app only once STDIN has ended: STDIN cannot be echoed as it arrives",
        },
        script_filename=None,
        factory=NetAsyncFastcgiTarget,
    ),
}


def named_target(name: str, root: Path, **options: object) -> Target:
    """The Target for --target NAME (not started)."""
    try:
        return NAMED_TARGETS[name].make(root, **options)
    except KeyError:
        raise TargetError(f"unknown named target {name!r}: one of {', '.join(NAMED_TARGETS)}") from None
