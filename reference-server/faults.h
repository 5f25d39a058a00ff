/* Fault modes: deliberate reproductions of real FastCGI bugs, so that every
 * conformance case can be shown to fail. A set of faults is a bit mask. */
#ifndef FAULTS_H
#define FAULTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum fault {
    FAULT_GO_ID_REUSE,
    FAULT_KEEP_CONN_CLOSE,
    FAULT_KEEP_CONN_NEVER_CLOSE,
    FAULT_GET_VALUES_STREAM,
    FAULT_GET_VALUES_IGNORED,
    FAULT_UNKNOWN_TYPE_IGNORED,
    FAULT_UNKNOWN_ROLE_CLOSE,
    FAULT_PADDING_NOT_SKIPPED,
    FAULT_NV_LONG_LENGTH_1BYTE,
    FAULT_PARAMS_SPLIT_PAIR_LOST,
    FAULT_STDIN_FIRST_RECORD_ONLY,
    FAULT_ABORT_IGNORED,
    FAULT_END_REQUEST_TWICE,
    FAULT_NO_EMPTY_STDOUT,
    FAULT_STDOUT_AFTER_EMPTY,
    FAULT_MGMT_MID_REQUEST_CLOSE,
    FAULT_REPLY_ID_ZERO,
    FAULT_COUNT
};

typedef uint64_t fault_set;

static inline bool fault_on(fault_set set, enum fault f) { return (set >> f) & 1u; }

/* Looks a fault up by its command-line name; false if there is none. */
bool fault_parse(const char *name, enum fault *out);

/* Prints "NAME  description" lines, one per fault. */
void fault_print_list(FILE *out);

#endif
