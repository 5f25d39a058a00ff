/* One FastCGI request as an application sees it, and the application interface.
 * Applications are event-driven: the connection calls them as the request's
 * streams arrive, and they answer through fcgi_request_write/finish. They never
 * block and never touch sockets, so the whole state machine stays pure. */
#ifndef FCGI_REQUEST_H
#define FCGI_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "byte_queue.h"
#include "faults.h"
#include "fcgi_codec.h"

struct fcgi_conn;
struct fcgi_request;

struct fcgi_app {
    const char *name;
    /* PARAMS has ended; the pairs are available. */
    void (*start)(struct fcgi_request *req);
    /* A piece of STDIN or DATA (type FCGI_STDIN / FCGI_DATA); len 0 marks its end. */
    void (*input)(struct fcgi_request *req, uint8_t type, const uint8_t *data, size_t len);
    /* The STDOUT spool ran empty while the request is unfinished and asked for more
     * (fcgi_request_want_writable); produce the next piece of output. */
    void (*writable)(struct fcgi_request *req);
    /* The wake-up time set with fcgi_request_wake_at has come. */
    void (*timer)(struct fcgi_request *req);
    /* Frees the application's state; called once, however the request ends. */
    void (*destroy)(struct fcgi_request *req);
};

enum fcgi_request_flags {
    REQ_PARAMS_DONE = 1u << 0,
    REQ_STDIN_DONE = 1u << 1,
    REQ_DATA_DONE = 1u << 2,
    REQ_FINISHED = 1u << 3,     /* the app has called fcgi_request_finish */
    REQ_WANTS_WRITABLE = 1u << 4,
    REQ_STDERR_USED = 1u << 5,
    REQ_STDOUT_SENT = 1u << 6,  /* a non-empty STDOUT record went out */
    REQ_STDIN_SEEN = 1u << 7,   /* a non-empty STDIN record arrived */
    REQ_END_SENT = 1u << 8,     /* END_REQUEST went out early (fault end-before-stdout) */
};

struct fcgi_request {
    const uint64_t *clock_ms; /* the connection's clock */
    uint16_t id;
    uint16_t role;
    bool keep_conn;
    unsigned flags;
    uint32_t app_status;
    fault_set faults;           /* the server's fault modes, for the apps' own faults */
    uint64_t stdin_bytes;
    size_t stderr_bytes;
    uint64_t wake_at_ms; /* 0: no timer */
    struct byte_queue params_stream; /* raw PARAMS bytes until the stream ends */
    struct fcgi_nv *params;
    size_t params_count;
    struct byte_queue stdout_spool;
    struct byte_queue stderr_spool;
    const struct fcgi_app *app;
    void *app_state;
};

/* Value of the first param called `name`, or NULL; *len receives its length. */
const uint8_t *fcgi_request_param(const struct fcgi_request *req, const char *name, size_t *len);

/* Queues output on FCGI_STDOUT or FCGI_STDERR. False if the request's spool limit
 * would be passed; the app should then produce less at a time. */
bool fcgi_request_write(struct fcgi_request *req, uint8_t stream, const void *data, size_t len);

/* Room left in the request's STDOUT spool. */
size_t fcgi_request_stdout_room(const struct fcgi_request *req);

/* Ask for a writable() call once the STDOUT spool has drained. */
void fcgi_request_want_writable(struct fcgi_request *req);

/* Ask for a timer() call at the connection's clock value `at_ms` (0 cancels). */
void fcgi_request_wake_at(struct fcgi_request *req, uint64_t at_ms);

/* The connection's current clock, in milliseconds. */
uint64_t fcgi_request_now(const struct fcgi_request *req);

/* The app is done: spooled output is sent, then the stream terminators, then
 * END_REQUEST with app_status. The request must not be touched afterwards except
 * by the connection. */
void fcgi_request_finish(struct fcgi_request *req, uint32_t app_status);

extern const struct fcgi_app app_probe;
extern const struct fcgi_app app_authorizer;
extern const struct fcgi_app app_filter;
extern const struct fcgi_app app_hello;

#endif
