"""From a capture of a bug to a regression case for cases/regressions/, and scripted captures.

    new_regression(FILE, name="php-12345-short-name", description="...")   (CLI: fcgispec new-regression)

reads FILE (a transcript, or a pcap/pcapng with port=N), sends its web-server side to the reference
responder for the right answers (answers="capture" keeps the captured ones), and writes
cases/regressions/transcripts/<name>.transcript: the case REG-<name>, whose run replays the
transcript (harness/replay/regressions.py loads it). Its header holds the case's fields: the
description as its title, placeholders for the bug report link and the spec sentence, and an empty
catches: to fill with the reference fault mode that reproduces the bug (docs/bug-to-regression.md),
and an empty same-requirement-as: for the spec case (FCGI-x.y-z) whose requirement the bug breaks,
without which a deviation of that requirement would block the regression instead of failing it.

record_script(target, connections, meta) makes a transcript from a scripted web-server side: each
connection is a list of steps (bytes to send, a pause in seconds, "FIN" or "RST"), sent through the
recording proxy to a target (the reference responder), waiting after each send until the target
is quiet. The transcripts of cases/regressions/transcripts/ that no web server wrote were made so.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from pathlib import Path
from typing import Sequence, Union

from harness.suite.case import QUIET_WAIT
from harness.capture.transcript import Transcript, TranscriptError, read_transcript, write_transcript
from harness.verdicts import Level
from harness.replay.plan import plan_connection
from harness.replay.regressions import SUFFIX, regression_id, regression_meta, with_header

ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS = Path("cases") / "regressions"
# A regression's name: its file is transcripts/NAME.transcript, its case REG-NAME (every such file is loaded).
NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
NAME_RULE = ("two or more lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, "
             "e.g. php-12345-short-name")
SEEN_SECONDS = 0.03

Step = Union[bytes, float, str]


class SkeletonError(ValueError):
    """The regression cannot be made (bad name, unreadable capture, file already there)."""


class ReferenceUnavailable(SkeletonError):
    """The reference responder, whose answers the regression needs, did not start."""


def load_capture(path: str | Path, port: int | None = None) -> Transcript:
    """A transcript from a transcript file, or from a pcap/pcapng (port: the application's TCP port)."""
    from harness.capture.pcap_import import PcapError, import_pcap

    path = Path(path)
    try:
        head = path.read_bytes()[:4]
    except OSError as error:
        raise SkeletonError(f"{path}: {error}") from None
    if head.startswith(b"fcgi"):
        if port is not None:
            raise SkeletonError(f"{path} is a transcript: --port is for a pcap/pcapng only")
        try:
            return read_transcript(path)
        except TranscriptError as error:
            raise SkeletonError(f"{path}: {error}") from None
    if port is None:
        raise SkeletonError(f"{path} is not a transcript; for a pcap/pcapng give the application's --port")
    try:
        return import_pcap(path, port)
    except OSError as error:
        raise SkeletonError(f"{path}: {error.strerror or error}") from None
    except PcapError as error:
        raise SkeletonError(f"{path}: {error}") from None


# What new-regression writes in the header for the fields only a person can fill in.
TODO_REQUIREMENT = 'TODO: the spec sentence the bug breaks (e.g. Spec §3.3: "...")'
TODO_REPORT = "TODO: the link to the bug report (issue, pull request or commit)"
TODO_ROW = "TODO: its row in the table of real-world bugs (docs/bug-to-regression.md), if any"
TODO_REPRODUCED = ("TODO: name in catches: the fault mode that reproduces the bug "
                   "(build/reference-server/fcgispec-responder --fault list)")


def code_case_file(name: str, root: Path = ROOT) -> Path | None:
    """The case file of cases/regressions/ that already defines REG-<name> as code, if one does."""
    wanted = f'"{regression_id(name)}"'
    for path in sorted((Path(root) / REGRESSIONS).glob("*.py")):
        if wanted in path.read_text(encoding="utf-8"):
            return path
    return None


def new_regression(
    source: str | Path,
    *,
    name: str,
    description: str,
    port: int | None = None,
    root: Path = ROOT,
    force: bool = False,
    answers: str = "reference",
) -> Path:
    """Write the regression: its transcript, with the case's fields in the header; returns the file.

    answers="reference" (the default) sends the capture's web-server side to the reference responder
    and keeps its answers: a capture of the buggy server holds the bug's answers, which a replay would
    take for the right ones. answers="capture" keeps the captured application side (a capture of a
    correct server).
    """
    if not NAME.match(name):
        raise SkeletonError(f"name {name!r}: a name is {NAME_RULE}")
    description = " ".join(description.split()).rstrip(".")
    if not description:
        raise SkeletonError("a one-line --description is needed")
    transcript_file = Path(root) / REGRESSIONS / "transcripts" / f"{name}{SUFFIX}"
    taken = code_case_file(name, root)
    if taken is not None:
        raise SkeletonError(f"{regression_id(name)} is already a regression written as code ({taken}): "
                            "choose another name")
    if transcript_file.exists() and not force:
        raise SkeletonError(f"{transcript_file} exists (--force replaces it)")
    if answers not in ("reference", "capture"):
        raise SkeletonError(f"answers={answers!r}: 'reference' or 'capture'")
    transcript = load_capture(source, port)
    if answers == "reference":
        transcript = answers_from_reference(transcript)
    origin = Path(source).name + (f" (pcap, port {port})" if port is not None else "")
    header = regression_meta([
        ("id", regression_id(name)),
        ("title", description),
        ("level", Level.REQUIRED.value),
        ("requirement", TODO_REQUIREMENT),
        ("catches", ""),
        ("same-requirement-as", ""),
        ("bug-report", [TODO_REPORT]),
        ("bug-table-row", TODO_ROW),
        ("symptom", description + "."),
        ("wire-pattern", f"From {origin}: TODO: trim it to the records that show the bug."),
        ("reproduced-by", TODO_REPRODUCED),
    ])
    transcript = with_header(transcript, header)
    transcript.meta = [(key, value) for key, value in transcript.meta if key != "bug"]
    transcript_file.parent.mkdir(parents=True, exist_ok=True)
    write_transcript(transcript, transcript_file)
    return transcript_file


def answers_from_reference(transcript: Transcript) -> Transcript:
    """The capture's web-server side, sent again to the reference responder, with its answers."""
    from harness.targets.base import ReferenceTarget, TargetError

    scripts: list[list[Step]] = []
    for connection in transcript.connections:
        steps: list[Step] = []
        for step in plan_connection(connection).steps:
            steps.append(step.data if step.kind == "send" else step.kind)
        if steps:
            scripts.append(steps)
    target = ReferenceTarget(ROOT, ["--quiet"])
    try:
        target.start()
    except TargetError as error:
        raise ReferenceUnavailable(f"the reference responder is needed for its answers: {error}") from None
    try:
        assert target.port is not None
        meta = [*transcript.meta, ("answers", "the reference responder's (fcgispec new-regression)"),
                ("app", f"reference ({target.binary.name})")]
        return record_script(("127.0.0.1", target.port), scripts, [(k, v) for k, v in meta if k != "tool"])
    finally:
        target.stop()


# -- scripted captures --------------------------------------------------------------------------


def record_script(target_address: tuple[str, int], connections: Sequence[Sequence[Step]],
                  meta: Sequence[tuple[str, str]] = (), *, quiet: float = QUIET_WAIT) -> Transcript:
    """Send each connection's steps through the recording proxy to the application, in turn.

    A bytes step is sent, then the proxy waits until the application has been quiet for `quiet`
    seconds; a float pauses; "FIN" half-closes and waits for the application's close (or quiet);
    "RST" resets. A connection whose steps end without a close is closed with a FIN.
    """
    from harness.capture.recording_proxy import RecordingProxy

    proxy = RecordingProxy(target_address).start()
    try:
        for steps in connections:
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5.0)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            closed = False
            for step in steps:
                if isinstance(step, (bytes, bytearray)):
                    sock.sendall(step)
                    time.sleep(SEEN_SECONDS)  # the proxy has read it: a quiet wait now counts from it
                    proxy.wait_quiet(quiet)
                elif isinstance(step, (int, float)):
                    time.sleep(step)
                elif step == "FIN":
                    sock.shutdown(socket.SHUT_WR)
                    closed = True
                elif step == "RST":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                    closed = True
                    break
                else:
                    raise ValueError(f"unknown step {step!r}")
            if not closed:
                sock.shutdown(socket.SHUT_WR)
            _drain(sock)
            sock.close()
            proxy.wait_idle(2.0)
        proxy.wait_quiet(quiet)
    finally:
        proxy.stop()
    return proxy.transcript(list(meta))


def _drain(sock: socket.socket) -> None:
    """Read what the application still sends until it closes (the proxy records it)."""
    if sock.fileno() < 0:
        return
    sock.settimeout(2.0)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


# -- HTTP client regressions ----------------------------------------------------------------------

CLIENT_FAMILY = "Regressions: real-world HTTP client bugs"


def client_regression(scenario_id: str, regression_id: str, *, title: str, requirement: str) -> object:
    """A regression of the HTTP client suite: the client suite's scenario scenario_id (cases/client/,
    e.g. CLI-REUSE-4) that replays the bug, under the bug's own id, title and requirement.

    It runs the scenario's own code, so that the regression and the scenario cannot drift apart;
    its mistakes= (tests/clients/buggy_client.py --bug) are the scenario's.
    """
    import dataclasses

    from harness.suite.case import import_case_module
    from harness.clients.cases import ClientCase

    for path in sorted((ROOT / "cases" / "client").glob("*.py")):
        for value in vars(import_case_module(path)).values():
            if isinstance(value, ClientCase) and value.id == scenario_id:
                return dataclasses.replace(value, id=regression_id, title=title, requirement=requirement,
                                           section=CLIENT_FAMILY, family_order=100)
    raise SkeletonError(f"no client scenario {scenario_id} in cases/client/")
