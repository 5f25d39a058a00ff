"""Shared verifiers of gateway cases: each raises a Violation of the case's own requirement, or Blocked
when what it needs never happened for a reason another case owns."""

from __future__ import annotations

import hashlib

from harness.clients.adapters import ClientResult
from harness.gateways.application import AppRequest, ScriptedApp
from harness.gateways.http_side import HttpAnswer
from harness.verdicts import Violation


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def expect_answer(answer: HttpAnswer, what: str, *, status: int = 200, body: bytes | None = None) -> None:
    """The HTTP client got this status, complete (and this body, unless None)."""
    want = f"{what}: {status}, complete" + ("" if body is None else f", the {len(body)}-byte body intact")
    if answer.status != status or not answer.complete:
        raise Violation(want, f"{what}: {answer.describe()}")
    if body is not None and answer.body != body:
        raise Violation(want, f"{what}: {len(answer.body)} body bytes (sha256 {sha(answer.body)}, expected "
                              f"{sha(body)}): {first_difference(answer.body, body)}")


def expect_fetched(result: "ClientResult", what: str, *, status: int = 200, body: bytes) -> None:
    """The reference HTTP client got this status and this body (by length and sha256)."""
    want = f"{what}: {status} with the {len(body)}-byte body"
    if not result.ok or result.status != status or result.body_length != len(body) \
            or result.body_sha256 != hashlib.sha256(body).hexdigest():
        raise Violation(want, f"{what}: {result}" + ("" if not result.ok else f", sha256 {(result.body_sha256 or '')[:16]}"))


def first_difference(got: bytes, want: bytes) -> str:
    for index, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return f"first difference at byte {index}: {got[index:index + 16]!r} instead of {want[index:index + 16]!r}"
    if len(got) != len(want):
        return f"identical for {min(len(got), len(want))} bytes, then {'more' if len(got) > len(want) else 'fewer'}"
    return "identical"


def expect_not_success(answer: HttpAnswer, what: str, why: str) -> None:
    """The HTTP client was not told the request succeeded (a 5xx, or no complete response)."""
    if answer.complete and answer.status is not None and answer.status < 400:
        raise Violation(f"{what}: an error status (5xx) or an incomplete response ({why})",
                        f"{what}: {answer.describe()}")


def only_request(app: ScriptedApp, what: str) -> AppRequest:
    """The one request the application received (the gateway sent it once)."""
    requests = app.requests()
    if not requests:
        raise Violation(f"{what} reaches the application", "the application received no request")
    return requests[0]


def request_with(app: ScriptedApp, path_prefix: str) -> list[AppRequest]:
    """The requests the application received for this path (REQUEST_URI, else SCRIPT_NAME + PATH_INFO)."""
    found = []
    for request in app.requests():
        params = request.params()
        uri = params.get("REQUEST_URI") or params.get("SCRIPT_NAME", "") + params.get("PATH_INFO", "")
        if uri.startswith(path_prefix):
            found.append(request)
    return found
