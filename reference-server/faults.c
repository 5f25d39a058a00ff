#include "faults.h"

#include <string.h>

struct fault_info {
    const char *name;
    const char *description;
};

/* Indexed by enum fault; each names the real bug it replays. */
static const struct fault_info fault_table[FAULT_COUNT] = {
    [FAULT_GO_ID_REUSE] = {"go-id-reuse",
                           "finished ids stay in the request table; a BEGIN_REQUEST reusing one drops the "
                           "connection (Go net/http/fcgi before a387f915)"},
    [FAULT_KEEP_CONN_CLOSE] = {"keep-conn-close",
                               "closes after every END_REQUEST even with FCGI_KEEP_CONN set (HHVM #2522, Ceph RGW)"},
    [FAULT_KEEP_CONN_NEVER_CLOSE] = {"keep-conn-never-close",
                                     "keeps the connection open after END_REQUEST even with FCGI_KEEP_CONN clear"},
    [FAULT_GET_VALUES_STREAM] = {"get-values-stream",
                                 "answers GET_VALUES with every value whatever was asked, then an empty "
                                 "GET_VALUES_RESULT (Go net/http/fcgi child.go)"},
    [FAULT_GET_VALUES_IGNORED] = {"get-values-ignored", "never answers GET_VALUES (HHVM #4951)"},
    [FAULT_UNKNOWN_TYPE_IGNORED] = {"unknown-type-ignored",
                                    "ignores unknown management record types instead of answering UNKNOWN_TYPE "
                                    "(Go net/http/fcgi)"},
    [FAULT_UNKNOWN_ROLE_CLOSE] = {"unknown-role-close",
                                  "closes the connection on an unknown role instead of answering UNKNOWN_ROLE "
                                  "(libfcgi, php-fpm)"},
    [FAULT_PADDING_NOT_SKIPPED] = {"padding-not-skipped",
                                   "reads the padding of inbound records as the next record header"},
    [FAULT_NV_LONG_LENGTH_1BYTE] = {"nv-long-length-1byte",
                                    "reads every name-value length as one byte, so 128 and longer misframe the params "
                                    "(the 127/128 boundary bugs: nginx PR #1648, h2o #3204, Monkey PR #278)"},
    [FAULT_PARAMS_SPLIT_PAIR_LOST] = {"params-split-pair-lost",
                                      "decodes each PARAMS record alone, losing pairs that straddle records"},
    [FAULT_STDIN_FIRST_RECORD_ONLY] = {"stdin-first-record-only",
                                       "keeps only the first STDIN record of a request (HHVM PR #2933)"},
    [FAULT_ABORT_IGNORED] = {"abort-ignored", "ignores FCGI_ABORT_REQUEST; the request runs on (HHVM #4077)"},
    [FAULT_END_REQUEST_TWICE] = {"end-request-twice", "sends END_REQUEST twice (php-fpm bug #67583)"},
    [FAULT_NO_EMPTY_STDOUT] = {"no-empty-stdout", "ends STDOUT without the empty record (lisachenko/protocol-fcgi #6)"},
    [FAULT_STDOUT_AFTER_EMPTY] = {"stdout-after-empty",
                                  "writes an empty STDOUT record mid-stream, then more data (php-fpm bug #72185)"},
    [FAULT_MGMT_MID_REQUEST_CLOSE] = {"mgmt-mid-request-close",
                                      "closes the connection when a management record arrives during a request "
                                      "(php-fpm fcgi_read, bug #76922 family)"},
    [FAULT_REPLY_ID_ZERO] = {"reply-id-zero", "sends application records with request id 0 (urweb #57)"},
    [FAULT_MISFRAME_ON_REUSE] = {"misframe-on-reuse",
        "on a kept connection, from the second request on, STDOUT records carry a stray byte after their padding (HyperFastCgi #55: nginx \"upstream sent unsupported FastCGI protocol version: 0\")"},
    [FAULT_REJECT_MAX_CONTENT_PADDING] = {"reject-max-content-padding",
        "closes the connection on a record whose content plus padding pass 65535 bytes (php-fpm FCGI_MAX_LENGTH check)"},
    [FAULT_UNALIGNED_OUTPUT] = {"unaligned-output",
        "sends records without padding to a multiple of 8 bytes"},
    [FAULT_FOREIGN_ID_STDIN_ACCEPTED] = {"foreign-id-stdin-accepted",
        "takes STDIN records of an inactive id as the active request's body (php-fpm fcgi_read ignores the id)"},
    [FAULT_LATE_RECORD_CLOSE] = {"late-record-close",
        "closes the connection on a record for an inactive id, such as a second empty STDIN (HHVM behind Yaws, yaws #283)"},
    [FAULT_ID_HIGH_BYTE_DROPPED] = {"id-high-byte-dropped",
        "keeps request ids as their low byte: 256 becomes 0, 65535 becomes 255"},
    [FAULT_SPLIT_HEADER_LOST] = {"split-header-lost",
        "drops a record header that arrives split across two reads"},
    [FAULT_BEGIN_ID_ZERO_SERVED] = {"begin-id-zero-served",
        "serves a BEGIN_REQUEST with request id 0, answering END_REQUEST id 0 (gofast #65)"},
    [FAULT_EXIT_ON_MALFORMED] = {"exit-on-malformed",
        "the process exits on malformed input (bad version, BEGIN body not 8 bytes, bad name-value lengths, duplicate BEGIN, web-server-bound record types) instead of closing that connection (libfcgi CVE-2025-23016, Go #11824)"},
    [FAULT_NV_LONG_FORM_SHORT_REJECTED] = {"nv-long-form-short-rejected",
        "refuses a name-value length below 128 written in the 4-byte form, closing the connection"},
    [FAULT_PARAMS_8K_BUFFER] = {"params-8k-buffer",
        "closes the connection when PARAMS pass 8 KiB (a fixed 8 KiB buffer: fcgi2 #13, php-src #16042)"},
    [FAULT_PARAMS_CUT_AT_NUL] = {"params-cut-at-nul",
        "cuts param names and values at their first NUL byte (C-string handling)"},
    [FAULT_FD_LEAK_ON_EOF] = {"fd-leak-on-eof",
        "never closes a connection that the peer closed while idle; its file descriptor leaks (HHVM #1690)"},
    [FAULT_EXIT_ON_WRITE_ERROR] = {"exit-on-write-error",
        "the process exits when a write to a peer that went away fails (php-fpm bug #68571)"},
    [FAULT_GET_VALUES_CLOSE] = {"get-values-close",
        "closes the connection after answering GET_VALUES (php-fpm bug #76922)"},
    [FAULT_GET_VALUES_ID_1] = {"get-values-id-1",
        "sends GET_VALUES_RESULT with request id 1 instead of 0"},
    [FAULT_OVERLOADED_SILENT_CLOSE] = {"overloaded-silent-close",
        "past --max-reqs or --max-conns, closes the connection instead of answering OVERLOADED"},
    [FAULT_GET_VALUES_AFTER_REQUESTS] = {"get-values-after-requests",
        "answers GET_VALUES only once the connection's active requests have ended"},
    [FAULT_UNKNOWN_TYPE_CLOSE] = {"unknown-type-close",
        "closes the connection on an unknown management record type (php-fpm fcgi_read_request)"},
    [FAULT_UNKNOWN_ROLE_SERVED] = {"unknown-role-served",
        "serves unknown roles as Responder instead of answering UNKNOWN_ROLE"},
    [FAULT_END_BEFORE_STDOUT] = {"end-before-stdout",
        "sends END_REQUEST before the STDOUT records and their terminator"},
    [FAULT_FLAGS_EXACT_MATCH] = {"flags-exact-match",
        "sees FCGI_KEEP_CONN only when the flags byte is exactly 1; other bits set make it clear"},
    [FAULT_OUTPUT_BEFORE_PARAMS_END] = {"output-before-params-end",
        "starts the request at its first PARAMS record and answers before PARAMS has ended"},
    [FAULT_EMPTY_PARAMS_CLOSE] = {"empty-params-close",
        "closes the connection on a request whose PARAMS stream is empty"},
    [FAULT_CONTENT_LENGTH_UNCHECKED] = {"content-length-unchecked",
        "the probe app answers 200 when STDIN is shorter than CONTENT_LENGTH (it should refuse the update)"},
    [FAULT_STDERR_TRUNCATED] = {"stderr-truncated",
        "drops STDERR output past 4 KiB per request"},
    [FAULT_STDIN_STALL_40K] = {"stdin-stall-40k",
        "stops reading the connection once a request's STDIN passes 40 KiB (fastcgi.nim #1: POST over 40 KB freezes)"},
    [FAULT_NO_END_AFTER_ABORT] = {"no-end-after-abort",
        "ends an aborted request without sending END_REQUEST"},
    [FAULT_ABORT_CLOSES_CONNECTION] = {"abort-closes-connection",
        "closes the connection after an ABORT_REQUEST even with FCGI_KEEP_CONN"},
    [FAULT_END_REQUEST_SHORT_BODY] = {"end-request-short-body",
        "sends END_REQUEST bodies of 5 bytes, without the reserved bytes"},
    [FAULT_CANT_MPX_CLOSE] = {"cant-mpx-close",
        "with --no-mpx, closes the connection on a second concurrent BEGIN_REQUEST instead of CANT_MPX_CONN (php-fpm)"},
    [FAULT_MPX_SERIALIZED] = {"mpx-serialized",
        "advertises FCGI_MPXS_CONNS=1 but reads no further request until the current ones have ended"},
    [FAULT_APP_STATUS_ZERO] = {"app-status-zero",
        "sends appStatus 0 in every END_REQUEST, whatever the application's status"},
    [FAULT_AUTHORIZER_VARIABLES_DROPPED] = {"authorizer-variables-dropped",
        "the authorizer app drops its Variable-* headers"},
    [FAULT_FILTER_DATA_IGNORED] = {"filter-data-ignored",
        "the filter app answers once STDIN has ended, without reading FCGI_DATA"},
    [FAULT_SIGTERM_IGNORED] = {"sigterm-ignored",
        "does not exit on SIGTERM"},
    [FAULT_STDOUT_AS_DATA] = {"stdout-as-data",
        "sends its output as FCGI_DATA records instead of FCGI_STDOUT"},
    [FAULT_FD0_IGNORED] = {"fd0-ignored",
        "started without --listen, does not serve the listening socket inherited on fd 0"},
    [FAULT_WEB_SERVER_ADDRS_IGNORED] = {"web-server-addrs-ignored",
        "ignores FCGI_WEB_SERVER_ADDRS and serves any peer"},
    [FAULT_ABORT_ON_MALFORMED] = {"abort-on-malformed",
        "the process aborts (SIGABRT) on malformed input, as libfcgi's assertion in fcgiapp.c does on name-value lengths past the end of PARAMS (CVE-2025-23016 family)"},
    [FAULT_NPH_STATUS_LINE] = {"nph-status-line",
        "the probe app starts its response with an HTTP status line (a CGI non-parsed-header script) "
        "instead of the Status header"},
    [FAULT_NO_EMPTY_STDERR] = {"no-empty-stderr",
        "ends a STDERR stream it used without the empty record"},
    [FAULT_CLOSE_WITH_RST] = {"close-with-rst",
        "closes connections with an RST instead of a graceful FIN, which can destroy the last response in flight (php-fpm before PR #1333)"},
    [FAULT_MAX_CONNS_OVERSTATED] = {"max-conns-overstated",
        "advertises FCGI_MAX_CONNS ten times higher than the connections it serves"},
    [FAULT_GET_VALUES_UNKNOWN_NAME_HANG] = {"get-values-unknown-name-hang",
        "sends no GET_VALUES_RESULT when the query holds a name it does not know (php-fpm bug #66479: its loop over "
        "the names never ended)"},
    [FAULT_PADDED_STDIN_LOST] = {"padded-stdin-lost",
        "drops the content of STDIN records that carry padding, keeping the framing intact (php-fpm loses padded "
        "STDIN although php-cgi, on the same fastcgi.c, keeps it)"},
};

bool fault_parse(const char *name, enum fault *out)
{
    for (int f = 0; f < FAULT_COUNT; f++) {
        if (strcmp(fault_table[f].name, name) == 0) {
            *out = (enum fault)f;
            return true;
        }
    }
    return false;
}

void fault_print_list(FILE *out)
{
    for (int f = 0; f < FAULT_COUNT; f++)
        fprintf(out, "%-24s %s\n", fault_table[f].name, fault_table[f].description);
}
