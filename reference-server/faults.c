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
                                    "reads 4-byte name-value lengths from their last byte only (the 127/128 "
                                    "boundary bugs: nginx PR #1648, h2o #3204, Monkey PR #278)"},
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
