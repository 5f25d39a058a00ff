"""The client adapter protocol, shared by the Python adapters (the C adapters have it in http-client/adapter-protocol/).

An adapter is a long-lived process holding ONE client object / pool. It reads request lines on stdin, performs them
in order and writes one JSON line per request line (flushed), then exits 0 at EOF:

    METHOD URL [BODYLEN] [Name:Value]...   BODYLEN only for POST, PUT, PATCH (BODYLEN bytes of 'x')
    ABANDON URL N      a GET whose caller reads N body bytes, then drops the response
    CONCURRENT K       the next K request lines run at once (K threads); results in input order
    SLEEP MS           wait; no output
    CLOSE_IDLE         close every idle pooled connection; no output

Output: {"status": 200, "body_length": 3, "body_sha256": "hex", "error": null[, "reused": bool][, "connects": n]}
and on failure status and body_sha256 are null, body_length is what was read so far, error is the text.

Options: --cacert PATH, --max-idle-per-host N, --timeout SECONDS (per request; default 10).

A client module supplies a `Client` with `perform(job) -> Result` (thread-safe) and `close_idle()`; `main(Client)`
does the rest. The body helpers keep the count and hash of what the caller read, so that an error part-way through
a body still reports body_length.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from dataclasses import dataclass, field

METHODS = ("GET", "HEAD", "DELETE", "OPTIONS", "PUT", "POST", "PATCH", "TRACE")
BODY_METHODS = ("POST", "PUT", "PATCH")
IDEMPOTENT = ("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE")


@dataclass
class Job:
    method: str = "GET"
    url: str = ""
    body: bytes | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    abandon_after: int | None = None  # ABANDON: read this many body bytes, then drop the response
    parse_error: str | None = None


class BodySink:
    """Counts and hashes the body bytes the caller read."""

    def __init__(self, job: Job):
        self.job = job
        self.length = 0
        self._sha = hashlib.sha256()

    def want(self, chunk: int = 65536) -> int:
        """How many bytes to ask for next (0: the caller wants no more: ABANDON reached N)."""
        if self.job.abandon_after is None:
            return chunk
        return max(0, min(chunk, self.job.abandon_after - self.length))

    def feed(self, data: bytes) -> None:
        if self.job.abandon_after is not None:
            data = data[: max(0, self.job.abandon_after - self.length)]
        self._sha.update(data)
        self.length += len(data)

    def ok(self, status: int, reused: bool | None = None, connects: int | None = None) -> dict:
        return result(status, self.length, self._sha.hexdigest(), None, reused, connects)

    def fail(self, error: str, reused: bool | None = None, connects: int | None = None) -> dict:
        return result(None, self.length, None, error, reused, connects)


def result(status, body_length, sha, error, reused=None, connects=None) -> dict:
    out = {"status": status, "body_length": body_length, "body_sha256": sha, "error": error}
    if reused is not None:
        out["reused"] = bool(reused)
    if connects is not None:
        out["connects"] = connects
    return out


def error_text(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def parse_job(line: str) -> Job:
    tok = line.split(" ")
    job = Job()
    if len(tok) < 2:
        job.parse_error = "adapter: malformed request line"
        return job
    nxt = 2
    if tok[0] == "ABANDON":
        if len(tok) != 3 or not tok[2].isdigit():
            job.parse_error = "adapter: ABANDON URL N"
            return job
        job.abandon_after = int(tok[2])
        nxt = 3
    elif tok[0] in METHODS:
        job.method = tok[0]
        if tok[0] in BODY_METHODS:
            job.body = b""
            if len(tok) > 2 and ":" not in tok[2]:
                if not tok[2].isdigit():
                    job.parse_error = "adapter: bad BODYLEN"
                    return job
                job.body = b"x" * int(tok[2])
                nxt = 3
    else:
        job.parse_error = "adapter: unknown command"
        return job
    job.url = tok[1]
    for t in tok[nxt:]:
        name, sep, value = t.partition(":")
        if not sep or not name:
            job.parse_error = "adapter: header token must be Name:Value"
            return job
        job.headers.append((name, value))
    return job


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cacert", default=None, help="trust this CA (PEM) for https")
    ap.add_argument("--max-idle-per-host", type=int, default=None, help="the client's own idle-per-host limit")
    ap.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    return ap.parse_args(argv)


def _emit(res: dict) -> None:
    sys.stdout.write(json.dumps(res) + "\n")
    sys.stdout.flush()


def _run(client, job: Job) -> dict:
    if job.parse_error:
        return result(None, 0, None, job.parse_error, None, getattr(client, "connects", None))
    try:
        return client.perform(job)
    except Exception as exc:  # an adapter bug must still give its line
        return result(None, 0, None, "adapter: " + error_text(exc), None, getattr(client, "connects", None))


def _control(client, line: str) -> bool:
    if line.startswith("SLEEP ") and line[6:].isdigit():
        time.sleep(int(line[6:]) / 1000)
        return True
    if line == "CLOSE_IDLE":
        client.close_idle()
        return True
    return False


def main(make_client, argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    client = make_client(args)
    stdin = sys.stdin
    while True:
        line = stdin.readline()
        if not line:
            break
        line = line.rstrip("\r\n")
        if not line or _control(client, line):
            continue
        if line.startswith("CONCURRENT ") and line[11:].isdigit() and int(line[11:]) > 0:
            k = int(line[11:])
            jobs: list[Job] = []
            while len(jobs) < k:
                sub = stdin.readline()
                if not sub:
                    break
                sub = sub.rstrip("\r\n")
                if not sub or _control(client, sub):
                    continue
                jobs.append(parse_job(sub))
            results: list[dict | None] = [None] * len(jobs)

            def work(i: int) -> None:
                results[i] = _run(client, jobs[i])

            threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(jobs))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for r in results:
                _emit(r)
            continue
        _emit(_run(client, parse_job(line)))
    try:
        client.close_idle()
    except Exception:
        pass
    return 0
