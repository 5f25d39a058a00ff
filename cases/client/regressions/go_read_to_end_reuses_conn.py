"""Go TestTransportReadToEndReusesConn: a connection whose Content-Length body was read to its end is reused.

Source: https://github.com/golang/go/blob/master/src/net/http/transport_test.go (TestTransportReadToEndReusesConn)
Scenario: the client suite's CLI-REUSE-1 (cases/client/).
Symptom: the Transport returned a connection to its pool only on the read that hit EOF, not on the read that
  ended the Content-Length body: a caller that read exactly the body's length made the client open a new
  connection for every request (each one a new TLS handshake, and a TIME_WAIT socket).
Wire pattern: the client suite's scenario CLI-REUSE-1: three sequential Content-Length responses; all three
  requests on one connection, which the client never closes.
Reproduced by: tests/clients/buggy_client.py --bug no-release-on-content-length-end.

An HTTP client case (harness/clients/cases.py), run by the client suite's plugin against --client.
"""

from __future__ import annotations

from harness.replay.regression_skeleton import client_regression

SOURCE = "https://github.com/golang/go/blob/master/src/net/http/transport_test.go"

go_read_to_end_reuses_conn = client_regression(
    "CLI-REUSE-1",
    "REG-go-read-to-end-reuses-conn",
    title="Go TestTransportReadToEndReusesConn: three Content-Length responses read to their end share one "
    "connection",
    requirement=(
        'RFC 9112 §9.3: "HTTP/1.1 defaults to the use of "persistent connections", allowing multiple requests '
        'and responses to be carried over a single connection." The connection is free again on the read that '
        "ends the body."
    ),
)
