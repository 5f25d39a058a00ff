"""Whether a response lets the connection persist: Connection: close, HTTP/1.0, the origin
(CLI-REUSE-18, 19, 30).

The connection the response closes is left open by the server, and any later request on it gets
`WRONG!`: a client must go by the header, not by the socket. Not here: 30's client-certificate and
credential variants (curl 3303, 3224): the adapter protocol has no client certificates, and
credentials are just a header to it.
"""

from __future__ import annotations

from harness.clients.cases import client_case, connection_ids, expect_response, settle
from harness.clients.scenario_server import ANY, Step, response
from harness.verdicts import Level, Observed, RecommendationMissed, Violation

FAMILY = "Persistence: Connection: close, HTTP/1.0, origins"
FAMILY_ORDER = 5

CLOSE_OPTION = (
    'RFC 9112 §9.6: "A client that receives a "close" connection option MUST cease sending requests on that '
    'connection and close the connection after reading the response message containing the "close" connection '
    'option"'
)
PERSISTENCE = (
    'RFC 9112 §9.3: "If the received protocol is HTTP/1.0, the "keep-alive" connection option is present, [...] '
    'the connection will persist after the current response; otherwise, the connection will close after the '
    'current response."'
)
WRONG = response(b"WRONG!")


def _closing_response(ctx, reply: bytes) -> None:
    server = ctx.server({0: [Step(reply), Step(WRONG)], ANY: [Step(response())]})
    expect_response(ctx.get(server, "/1"), "request 1")
    result = ctx.get(server, "/2")
    settle()
    first = server.snapshot()[0]
    if first.paths != ["/1"]:
        raise Violation("no request on the connection after its closing response",
                        f"c0 carried {first.paths}; request 2: {result}")
    expect_response(result, "request 2 (on a new connection)")
    if first.client_close is None:
        raise Violation("the client closes the connection after reading the response", "it is still open")


@client_case(
    "CLI-REUSE-18",
    title="Connection: close with the socket left open: the client never sends on it again and closes it",
    requirement=CLOSE_OPTION + " (Go TestTransportConnectionCloseOnResponse, urllib3 test_keepalive_close)",
    level=Level.REQUIRED,
    mistakes=("ignore-connection-close",),
)
def connection_close(ctx) -> None:
    _closing_response(ctx, response(headers=["Connection: close"]))


@client_case(
    "CLI-REUSE-18b",
    title="Connection: cloSE (any case) closes",
    requirement=CLOSE_OPTION + ' RFC 9110 §7.6.1: "Connection options are case-insensitive." (CPython test_reuse_reconnect)',
    level=Level.REQUIRED,
    mistakes=("ignore-connection-close",),
)
def connection_close_case(ctx) -> None:
    _closing_response(ctx, response(headers=["Connection: cloSE"]))


@client_case(
    "CLI-REUSE-18c",
    title="Connection: keep-alive, close (close anywhere in the list) closes",
    requirement=CLOSE_OPTION + ' RFC 9110 §7.6.1: Connection = #connection-option',
    level=Level.REQUIRED,
    mistakes=("ignore-connection-close",),
)
def connection_close_in_list(ctx) -> None:
    _closing_response(ctx, response(headers=["Connection: keep-alive, close"]))


@client_case(
    "CLI-REUSE-18d",
    title="Connection: close-not is not close: the connection is reused",
    requirement="RFC 9110 §7.6.1: connection options are tokens; only the token \"close\" closes (curl test 1542).",
    level=Level.RECOMMENDED,
)
def connection_close_not(ctx) -> None:
    server = ctx.server({ANY: [Step(response(headers=["Connection: close-not"]))]})
    expect_response(ctx.get(server, "/1"), "request 1")
    expect_response(ctx.get(server, "/2"), "request 2")
    first, second = connection_ids(server, "/1", "/2")
    if first != second:
        raise RecommendationMissed("request 2 on the connection of request 1", "a new connection")


@client_case(
    "CLI-REUSE-19",
    title="HTTP/1.0 without keep-alive, socket left open: the connection is not reused",
    requirement=PERSISTENCE,
    level=Level.REQUIRED,
    mistakes=("reuse-http10",),
)
def http10(ctx) -> None:
    _closing_response(ctx, response(version="HTTP/1.0"))


@client_case(
    "CLI-REUSE-19b",
    title="HTTP/1.0 with Connection: keep-alive: the client may reuse (what it does)",
    requirement=PERSISTENCE + " (CPython test_reuse_reconnect)",
    level=Level.UNSPECIFIED,
)
def http10_keep_alive(ctx) -> None:
    server = ctx.server({ANY: [Step(response(version="HTTP/1.0", headers=["Connection: keep-alive"]))]})
    expect_response(ctx.get(server, "/1"), "request 1")
    expect_response(ctx.get(server, "/2"), "request 2")
    first, second = connection_ids(server, "/1", "/2")
    raise Observed("reused the connection" if first == second else "opened a new connection")


def _two_names(ctx, tls: bool) -> None:
    server = ctx.server({ANY: [Step(response())]}, tls=tls)
    expect_response(ctx.get(server, "/1", host="127.0.0.1"), "request 1 (127.0.0.1)")
    expect_response(ctx.get(server, "/2", host="localhost"), "request 2 (localhost)")
    first, second = connection_ids(server, "/1", "/2")
    raise Observed("one connection for both names" if first == second else "a connection per host name")


ORIGINS = ("Connection reuse for another origin served at the same IP and port is the client's choice "
           "(RFC 9110 §4.3.3; for https the certificate must also be valid for it, as the test certificate is); "
           "curl keeps a pool per host name (tests 3225, test_12_05).")


@client_case(
    "CLI-REUSE-30",
    title="two host names (127.0.0.1, localhost) for one IP:port: separate connections or not",
    requirement=ORIGINS,
    level=Level.UNSPECIFIED,
)
def two_host_names(ctx) -> None:
    _two_names(ctx, tls=False)


@client_case(
    "CLI-REUSE-30b",
    title="TLS: two host names for one IP:port, one certificate for both: separate connections or not",
    requirement=ORIGINS,
    level=Level.UNSPECIFIED,
)
def two_host_names_tls(ctx) -> None:
    _two_names(ctx, tls=True)
