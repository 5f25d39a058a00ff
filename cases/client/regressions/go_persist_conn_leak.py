"""Go TestTransportPersistConnLeak: idle connections beyond the pool's limit are closed, not leaked.

Source: https://github.com/golang/go/blob/master/src/net/http/transport_test.go (TestTransportPersistConnLeak)
Scenario: the client suite's CLI-REUSE-24 (cases/client/). The client suite cites this Go test under
  CLI-REUSE-27, the leak soak (cases/client/cli_reuse_pool.py); that case is recommended-level and no
  buggy-client mistake reproduces it, so the regression runs CLI-REUSE-24, whose leak (a connection beyond the
  idle limit neither kept nor closed) --bug leak-excess-idle replays.
Symptom: connections that came back to a full idle pool were neither kept nor closed: their goroutines and
  descriptors leaked, one set per request burst.
Wire pattern: the client suite's scenario CLI-REUSE-24: three concurrent requests with --max-idle-per-host 2;
  two connections kept, the third closed, descriptors back to the baseline.
Reproduced by: tests/clients/buggy_client.py --bug leak-excess-idle.

An HTTP client case (harness/clients/cases.py), run by the client suite's plugin against --client.
"""

from __future__ import annotations

from harness.replay.regression_skeleton import client_regression

SOURCE = "https://github.com/golang/go/blob/master/src/net/http/transport_test.go"

go_persist_conn_leak = client_regression(
    "CLI-REUSE-24",
    "REG-go-persist-conn-leak",
    title="Go TestTransportPersistConnLeak: with 2 idle connections allowed, the third of a burst is closed, "
    "nothing leaks",
    requirement=(
        "A client pool that keeps at most N idle connections per host closes the others once their responses "
        "are read: a connection neither pooled nor closed is a leaked descriptor."
    ),
)
