"""Go issue 3514: an HTTP client does not reuse a TLS connection the server has closed.

Source: https://github.com/golang/go/issues/3514 (fixed by CL 76400046)
Scenario: the client suite's CLI-REUSE-4 (cases/client/).
Symptom: Go's Transport put a TLS connection back in its pool although the server's close_notify (and FIN) had
  already arrived; the next request went out on the dead connection and failed.
Wire pattern: the client suite's scenario CLI-REUSE-4: close_notify in the same TCP segment as the last
  response record, FIN 200 ms later, 20 trials; every request must go out on a new connection and succeed.
Reproduced by: tests/clients/buggy_client.py --bug reuse-after-close-notify.

An HTTP client case (harness/clients/cases.py), run by the client suite's plugin against --client.
"""

from __future__ import annotations

from harness.replay.regression_skeleton import client_regression

SOURCE = "https://github.com/golang/go/issues/3514"

go_3514_tls_dead_conn_reuse = client_regression(
    "CLI-REUSE-4",
    "REG-go-3514-tls-dead-conn-reuse",
    title="Go issue 3514: a TLS connection closed by the server (close_notify, then FIN) is not reused",
    requirement=(
        "RFC 8446 §6.1: \"Each party MUST send a \"close_notify\" alert before closing its write side of the "
        "connection\"; a client that has received it must not send another request on that connection "
        "(RFC 9112 §9.6: a client MUST NOT send more requests on a connection it knows to be closed)."
    ),
)
