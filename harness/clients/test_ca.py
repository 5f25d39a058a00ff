"""A throw-away CA and server certificate for the TLS scenario servers.

Made at run time with the openssl command line into a temporary directory (never committed),
once per process, and removed at exit. The server certificate is valid for 127.0.0.1 and
localhost; clients trust it through `--cacert` (TestPki.ca_cert).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.verdicts import HarnessError

SERVER_NAMES = ("127.0.0.1", "localhost")
__test__ = False  # the file name looks like a test module to pytest; it is not one


@dataclass(frozen=True)
class TestPki:
    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    try:
        done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        raise HarnessError(f"openssl {args[0]}: {error}") from None
    if done.returncode != 0:
        raise HarnessError(f"openssl {' '.join(args)} failed: {done.stderr.strip()}")


def make_test_pki(directory: Path) -> TestPki:
    """A CA (ca.pem) and a server certificate it signed (server.pem, server.key) in directory."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=fcgispec test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=directory)
    san = ",".join(f"IP:{n}" if n[0].isdigit() else f"DNS:{n}" for n in SERVER_NAMES)
    (directory / "server.ext").write_text(
        f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-extfile", "server.ext", cwd=directory)
    return TestPki(directory, directory / "ca.pem", directory / "server.pem", directory / "server.key")


@functools.lru_cache(maxsize=1)
def test_pki() -> TestPki:
    """The process's test PKI, made on first use and removed at exit."""
    directory = Path(tempfile.mkdtemp(prefix="fcgispec-pki-"))
    atexit.register(shutil.rmtree, directory, True)
    return make_test_pki(directory)
