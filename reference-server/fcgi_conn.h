/* The FastCGI connection state machine: bytes in, records out, no I/O.
 * The server feeds it what it reads and writes what it queues; unit tests and
 * fuzzers drive it the same way. */
#ifndef FCGI_CONN_H
#define FCGI_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "faults.h"

enum fcgi_role_mask {
    ROLE_MASK_RESPONDER = 1u << 1,
    ROLE_MASK_AUTHORIZER = 1u << 2,
    ROLE_MASK_FILTER = 1u << 3,
    ROLE_MASK_ALL = ROLE_MASK_RESPONDER | ROLE_MASK_AUTHORIZER | ROLE_MASK_FILTER,
};

struct fcgi_app;

/* Settings shared by every connection of a server; read-only for connections. */
struct fcgi_limits {
    unsigned max_conns;       /* advertised as FCGI_MAX_CONNS */
    unsigned max_reqs;        /* concurrent requests, all connections; FCGI_MAX_REQS */
    bool mpx;                 /* FCGI_MPXS_CONNS */
    unsigned roles;           /* enum fcgi_role_mask */
    size_t max_params_bytes;  /* one request's PARAMS stream */
    size_t max_spool_bytes;   /* one request's queued output */
    size_t out_high_water;    /* stop reading input while this much output waits */
    fault_set faults;
    /* The Responder role's application; NULL: the probe app (--app). */
    const struct fcgi_app *responder_app;
    /* Where the connection reports protocol errors and odd input; NULL: silent. */
    void (*log)(unsigned long conn_id, const char *message);
};

/* The defaults of the command line (main.c), also used by tests and fuzzers. */
struct fcgi_limits fcgi_limits_default(void);

/* Counters of every connection of a server, against max_reqs and max_conns. With
 * --workers N they live in memory the workers share (workers.c maps it), so that
 * the limits hold for the server as a whole: hence atomic. */
struct fcgi_load {
    atomic_uint active_requests;
    atomic_uint connections; /* counted by the event loop (server.c) */
};
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "counters shared between processes must be lock-free");

enum fcgi_conn_state {
    FCGI_CONN_OPEN,      /* reading and answering */
    FCGI_CONN_CLOSING,   /* send what is queued, then close gracefully */
};

struct fcgi_conn;

/* `overloaded`: the server is past max_conns; every request gets FCGI_OVERLOADED. */
struct fcgi_conn *fcgi_conn_new(const struct fcgi_limits *limits, struct fcgi_load *load,
                                unsigned long conn_id, bool overloaded, uint64_t now_ms);
void fcgi_conn_free(struct fcgi_conn *c);

/* Input: space to read into (NULL when the connection takes no input now), then
 * commit what was read. Committing processes every complete record. */
uint8_t *fcgi_conn_input_space(struct fcgi_conn *c, size_t *len);
void fcgi_conn_input_commit(struct fcgi_conn *c, size_t n, uint64_t now_ms);
/* Convenience for tests and fuzzers: feeds as much of data as the connection
 * takes now; returns the count taken. */
size_t fcgi_conn_feed(struct fcgi_conn *c, const uint8_t *data, size_t len, uint64_t now_ms);
/* The peer will send no more (EOF). */
void fcgi_conn_input_eof(struct fcgi_conn *c, uint64_t now_ms);

/* Output: queued bytes, then how many were written. */
const uint8_t *fcgi_conn_output(const struct fcgi_conn *c, size_t *len);
void fcgi_conn_output_done(struct fcgi_conn *c, size_t n, uint64_t now_ms);

/* Timers: the earliest wake-up wanted (0: none), and the call that serves it. */
uint64_t fcgi_conn_next_wakeup(const struct fcgi_conn *c);
void fcgi_conn_tick(struct fcgi_conn *c, uint64_t now_ms);

enum fcgi_conn_state fcgi_conn_state(const struct fcgi_conn *c);
/* Why the connection is closing, for the log ("" when it closes normally). */
const char *fcgi_conn_close_reason(const struct fcgi_conn *c);
/* Faults exit-on-malformed, abort-on-malformed: the input was malformed and the
 * process must exit (or abort). */
bool fcgi_conn_fatal(const struct fcgi_conn *c);
/* No request is active. */
bool fcgi_conn_idle(const struct fcgi_conn *c);
/* True when the connection wants to read (not closing, output below high water). */
bool fcgi_conn_wants_input(const struct fcgi_conn *c);

#endif
