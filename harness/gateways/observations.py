"""Deviations any gateway case may meet, read from the application's ledgers after the case.

Each is a requirement owned by one case (its id below): met there, it is that case's verdict;
met in any other case, it is recorded as "also seen" and, when that case failed, makes it
BLOCKED by the owner (harness/suite/judge.py): one gateway bug fails one case, not every case
whose exchange it derailed.
"""

from __future__ import annotations

import time
from typing import Iterable

from harness.gateways.application import AppConnLedger, AppRequest
from harness.verdicts import Deviation
from harness.wire.codec import FCGI_VERSION_1, CodecError, RecordType

RECORDS_WELL_FRAMED = "GW-FCGI-3.3-1"
NONZERO_REQUEST_IDS = "GW-FCGI-3.3-2"
NO_ACTIVE_ID_REUSED = "GW-FCGI-3.3-3"
PARAMS_DECODE = "GW-FCGI-3.4-1"
PARAMS_TERMINATED = "GW-FCGI-5.2-1"
STDIN_TERMINATED = "GW-FCGI-5.3-1"
NO_REUSE_WITHOUT_KEEP_CONN = "GW-FCGI-5.1-1"

# What every exchange through a gateway relies on: a case is blocked by these, not failed.
COMMON_PREREQUISITES = (RECORDS_WELL_FRAMED, NONZERO_REQUEST_IDS, NO_ACTIVE_ID_REUSED, PARAMS_DECODE,
                        PARAMS_TERMINATED, STDIN_TERMINATED, NO_REUSE_WITHOUT_KEEP_CONN)
# How long after its last STDIN record a request's missing terminator counts as missing (not still on its way).
TERMINATOR_GRACE = 0.5
APPLICATION_TYPES = (RecordType.BEGIN_REQUEST, RecordType.ABORT_REQUEST, RecordType.PARAMS, RecordType.STDIN,
                     RecordType.DATA)


def _where(request: AppRequest) -> str:
    return f"connection {request.conn_id}, request {request.ordinal} (id {request.request_id})"


def ledger_deviations(ledgers: Iterable[AppConnLedger], now: float | None = None) -> list[Deviation]:
    """Every deviation of the requirements above in these ledgers, the first of each requirement."""
    now = time.monotonic() if now is None else now
    found: dict[str, Deviation] = {}

    def add(requirement: str, what: str, evidence: str) -> None:
        found.setdefault(requirement, Deviation(requirement, what, evidence))

    for ledger in ledgers:
        for _, record in ledger.received:
            if record.version != FCGI_VERSION_1:
                add(RECORDS_WELL_FRAMED, f"a record of version {record.version}",
                    f"connection {ledger.id}: {record.describe()}")
            elif record.type in APPLICATION_TYPES and record.request_id == 0:
                add(NONZERO_REQUEST_IDS, "an application record with request id 0",
                    f"connection {ledger.id}: {record.describe()}")
        if ledger.trailing:
            add(RECORDS_WELL_FRAMED, "bytes that make no whole record before the connection closed",
                f"connection {ledger.id}: {len(ledger.trailing)} bytes {ledger.trailing[:16]!r}")
        previous: AppRequest | None = None
        for request in ledger.requests:
            if request.id_reused_while_active:
                add(NO_ACTIVE_ID_REUSED, "a BEGIN_REQUEST for an id still active on the connection", _where(request))
            if previous is not None and not previous.keep_conn:
                add(NO_REUSE_WITHOUT_KEEP_CONN, "a further request on a connection whose request had no KEEP_CONN",
                    _where(request))
            previous = request
            try:
                request.pairs()
            except CodecError as error:
                add(PARAMS_DECODE, "PARAMS that do not decode as name-value pairs", f"{_where(request)}: {error}")
            if request.aborted_at is not None:
                continue
            last_input = max([r_time for r_time, r in ledger.received if r.request_id == request.request_id] or [now])
            settled = ledger.closed_at is not None or now - last_input >= TERMINATOR_GRACE or request is not ledger.requests[-1]
            if not settled:
                continue
            if request.stdin_records and not request.params_ended:
                add(PARAMS_TERMINATED, "STDIN began without the empty PARAMS record that ends PARAMS", _where(request))
            elif not request.params_ended and request.params_records and request.ended_at is not None:
                add(PARAMS_TERMINATED, "no empty PARAMS record ended PARAMS", _where(request))
            if request.params_ended and request.ended_at is not None and not request.stdin_ended:
                body = len(request.stdin)
                add(STDIN_TERMINATED, f"no empty STDIN record after {'the ' + str(body) + '-byte body' if body else 'an empty body'}",
                    _where(request))
    return list(found.values())
