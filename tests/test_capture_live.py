"""Live captures: real web servers in front of the reference responder, through the recording
proxy; the live transcript must say what the golden one says. tshark captures of the same
traffic must import to the same byte streams."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness.capture.pcap_import import import_pcap
from harness.capture.recording_proxy import RecordingProxy
from harness.replay.comparison import compare_meaning
from harness.targets.base import ReferenceTarget, Target, reference_binary
from harness.capture.transcript import DIRECTIONS, CloseItem, read_transcript
from harness.capture.webservers import SCENARIOS, WEB_SERVERS, Nginx, PythonHttpDriver, capture

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "fixtures" / "captures"
# Scenarios whose upstream traffic does not depend on timing (client-gives-up races the server).
STEADY = ["sequential-keepalive", "large-post", "chunked-upload", "long-header", "head", "concurrent"]

pytestmark = pytest.mark.skipif(not reference_binary(ROOT).exists(), reason="reference responder not built")


@pytest.fixture(scope="module")
def reference() -> Iterator[Target]:
    target = ReferenceTarget(ROOT)
    target.start()
    yield target
    target.stop()


def require(server: str) -> None:
    cls = WEB_SERVERS[server]
    if not cls.available():
        pytest.skip(f"{server} is not installed (apt-get install {cls.package})")


@pytest.mark.parametrize("scenario", STEADY)
def test_live_nginx_capture_means_what_the_golden_one_says(reference: Target, scenario: str) -> None:
    require("nginx")
    live = capture(Nginx, scenario, reference)
    assert live.meta_value("version") == Nginx.version()
    differences = compare_meaning(read_transcript(GOLDEN / "nginx" / f"{scenario}.transcript"), live)
    assert differences == [], "\n".join(differences)


def test_live_nginx_reuses_id_1_on_a_kept_connection(reference: Target) -> None:
    require("nginx")
    live = capture(Nginx, "sequential-keepalive", reference)
    (connection,) = live.connections
    begins = [r for r in connection.records("ws->app") if r.type == 1]
    assert [r.request_id for r in begins] == [1] * len(SCENARIOS["sequential-keepalive"].lines)
    assert all(r.content[2] == 1 for r in begins)  # FCGI_KEEP_CONN on every one
    first_close = connection.closed_first()
    assert first_close is not None and first_close.direction == "ws->app"  # nginx closes when it stops


@pytest.mark.parametrize("server", ["apache2", "lighttpd", "h2o"])
def test_live_capture_of_other_servers_means_what_the_golden_one_says(reference: Target, server: str) -> None:
    require(server)
    live = capture(WEB_SERVERS[server], "sequential-keepalive", reference)
    differences = compare_meaning(read_transcript(GOLDEN / server / "sequential-keepalive.transcript"), live)
    assert differences == [], "\n".join(differences)


def test_tshark_capture_imports_to_the_proxys_byte_streams(reference: Target, tmp_path: Path) -> None:
    require("nginx")
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (apt-get install tshark)")
    family, (host, app_port) = reference.address()
    proxy = RecordingProxy((host, app_port)).start()
    pcap = tmp_path / "nginx.pcapng"
    tshark = subprocess.Popen(["tshark", "-i", "lo", "-f", f"tcp port {proxy.port}", "-w", str(pcap), "-q"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        # tshark says "Capturing on 'Loopback: lo'" once the capture runs.
        deadline = time.monotonic() + 20
        seen = b""
        while b"Capturing on" not in seen and time.monotonic() < deadline and tshark.poll() is None:
            seen += tshark.stderr.read1(4096)  # type: ignore[union-attr]
        if b"Capturing on" not in seen:
            pytest.skip(f"tshark could not capture on lo: {seen.decode(errors='replace')[-300:]}")
        time.sleep(1.0)  # the message comes a little before packets are really captured
        server = Nginx("127.0.0.1", proxy.port)
        server.start()
        try:
            PythonHttpDriver().run(SCENARIOS["sequential-keepalive"].lines + SCENARIOS["large-post"].lines,
                                   "127.0.0.1", server.http_port)
        finally:
            server.stop()
        proxy.wait_idle(3)
        time.sleep(0.5)  # let tshark write the last packets
    finally:
        tshark.send_signal(signal.SIGINT)
        try:
            tshark.wait(10)
        except subprocess.TimeoutExpired:
            tshark.kill()
        proxy.stop()
    recorded = proxy.transcript()
    imported = import_pcap(pcap, proxy.port)
    assert len(imported.connections) == len(recorded.connections) >= 1
    # Matched by the web server's address (its port is different for every connection).
    by_ws = {c.ws_address: c for c in imported.connections}
    for a in recorded.connections:
        b = by_ws[a.ws_address]
        for direction in DIRECTIONS:
            assert a.stream(direction) == b.stream(direction), direction
        assert [(c.direction, c.how) for c in a.items if isinstance(c, CloseItem)] == \
            [(c.direction, c.how) for c in b.items if isinstance(c, CloseItem)]
    assert compare_meaning(recorded, imported) == []
