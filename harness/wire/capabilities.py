"""Capability discovery: what the target says about itself in FCGI_GET_VALUES_RESULT.

The suite asks once per target (spec §4.1: "FCGI_MAX_CONNS", "FCGI_MAX_REQS",
"FCGI_MPXS_CONNS"), then cases check that behaviour matches the advertised values
and report features the target does not offer as unsupported. Discovery never
judges: a target that does not answer, or answers garbage, just has no known
capabilities (the GET_VALUES cases judge that).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from harness.wire.connection import ConnectionClosed, FcgiTimeout
from harness.wire.codec import MANAGEMENT_REQUEST_ID, CodecError, RecordType, decode_params

CAPABILITY_NAMES = ("FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS")
DISCOVERY_TIMEOUT = 2.0


@dataclass(frozen=True)
class Capabilities:
    """The target's advertised values; None when not advertised (or not a decimal number)."""

    max_conns: int | None = None
    max_reqs: int | None = None
    mpxs_conns: int | None = None
    # True when a GET_VALUES_RESULT (id 0) came back within the timeout.
    answered: bool = False
    # Every pair of the answer as sent (names and values undecoded).
    pairs: tuple[tuple[bytes, bytes], ...] = ()
    # Why answered is False, or what was odd about the answer (for notes).
    problem: str = ""

    @property
    def multiplexes(self) -> bool | None:
        """True/False when FCGI_MPXS_CONNS was advertised, None when unknown."""
        return None if self.mpxs_conns is None else self.mpxs_conns != 0

    def describe(self) -> str:
        if not self.answered:
            return f"no GET_VALUES_RESULT ({self.problem or 'no answer'})"
        shown = ", ".join(f"{n.decode('latin-1')}={v.decode('latin-1')}" for n, v in self.pairs)
        return shown or "an empty GET_VALUES_RESULT"


def _number(pairs: dict[bytes, bytes], name: str) -> int | None:
    value = pairs.get(name.encode("ascii"))
    if value is None:
        return None
    text = value.decode("latin-1").strip()
    return int(text) if text.isdigit() else None


def parse_capabilities(content: bytes) -> Capabilities:
    """Capabilities from a GET_VALUES_RESULT body."""
    try:
        pairs = decode_params(content)
    except CodecError as error:
        return Capabilities(answered=True, problem=f"undecodable GET_VALUES_RESULT: {error}")
    table = dict(pairs)
    return Capabilities(
        max_conns=_number(table, "FCGI_MAX_CONNS"),
        max_reqs=_number(table, "FCGI_MAX_REQS"),
        mpxs_conns=_number(table, "FCGI_MPXS_CONNS"),
        answered=True,
        pairs=tuple(pairs),
    )


def discover(target: object, timeout: float = DISCOVERY_TIMEOUT) -> Capabilities:
    """One GET_VALUES for the three names on a fresh connection; never raises for a bad target.

    target is a harness.targets.base.Target (typed loosely to keep this module import-light).
    """
    try:
        conn = target.connect(timeout=timeout, label="capability discovery")  # type: ignore[attr-defined]
    except Exception as error:  # unreachable, refused, not started: nothing is known
        return Capabilities(problem=f"cannot connect: {error}")
    end_time = time.monotonic() + timeout
    try:
        conn.get_values(CAPABILITY_NAMES)
        while True:
            remaining = end_time - time.monotonic()
            if remaining <= 0:
                return Capabilities(problem=f"no answer within {timeout:g}s")
            record = conn.read_record(remaining)
            # Only a management-id result counts; anything else is a case's business.
            if record.type == RecordType.GET_VALUES_RESULT and record.request_id == MANAGEMENT_REQUEST_ID:
                return parse_capabilities(record.content)
    except FcgiTimeout:
        return Capabilities(problem=f"no answer within {timeout:g}s")
    except ConnectionClosed as closed:
        return Capabilities(problem=f"connection closed ({closed.how}) without an answer")
    except OSError as error:
        return Capabilities(problem=f"socket error: {error}")
    finally:
        conn.close()
