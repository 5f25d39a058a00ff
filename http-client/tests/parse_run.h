/* Drives the response parser over a whole input with a given split, for the
 * unit tests and the fuzzer: the same input must give the same result for
 * every split. */
#ifndef FCGISPEC_HTTPC_PARSE_RUN_H
#define FCGISPEC_HTTPC_PARSE_RUN_H

#include <stdlib.h>
#include <string.h>

#include "http_response_parser.h"

#define PARSE_RUN_BODY_MAX 65536

struct parse_result {
    int headers;       /* HRP_HEADERS seen */
    int done;          /* HRP_DONE reached */
    httpc_error err;   /* HRP_ERROR: why */
    int status, minor, keep_alive;
    enum hrp_body_kind kind;
    size_t nfields;
    unsigned char body[PARSE_RUN_BODY_MAX];
    size_t body_len;
    size_t leftover;   /* input bytes never consumed (excess after DONE) */
    int bad_pointer;   /* a data pointer outside the input */
};

/* step 0: feed everything at once; max_data 0: unlimited. eof: call hrp_finish at the end. */
static inline void parse_run(const unsigned char *in, size_t len, int is_head, size_t step, size_t max_data,
                             int eof, struct parse_result *res)
{
    memset(res, 0, sizeof(*res));
    struct hrp p;
    if (hrp_init(&p, NULL, is_head) != 0)
        abort();
    size_t pos = 0;
    size_t limit = max_data ? max_data : (size_t)-1;
    for (;;) {
        size_t n = len - pos;
        if (step && n > step)
            n = step;
        size_t used;
        const uint8_t *d;
        size_t dl;
        enum hrp_event ev = hrp_execute(&p, in + pos, n, limit, &used, &d, &dl);
        if (used > n)
            res->bad_pointer = 1;
        if (ev == HRP_DATA) {
            if (d < in + pos || d + dl > in + pos + used || dl == 0 || dl > limit)
                res->bad_pointer = 1;
            else if (res->body_len + dl <= PARSE_RUN_BODY_MAX) {
                memcpy(res->body + res->body_len, d, dl);
                res->body_len += dl;
            }
        }
        pos += used;
        if (ev == HRP_HEADERS) {
            res->headers++;
            res->status = hrp_status(&p);
            res->minor = hrp_version_minor(&p);
            res->keep_alive = hrp_keep_alive(&p);
            res->kind = hrp_body_kind(&p);
            res->nfields = hrp_field_count(&p);
            continue;
        }
        if (ev == HRP_DONE) {
            res->done = 1;
            break;
        }
        if (ev == HRP_ERROR) {
            res->err = hrp_error(&p);
            break;
        }
        if (ev == HRP_PAUSE) {
            res->bad_pointer = 1; /* max_data is never 0 here */
            break;
        }
        if (ev == HRP_NEED_MORE && pos == len) {
            if (eof) {
                ev = hrp_finish(&p);
                if (ev == HRP_DONE)
                    res->done = 1;
                else
                    res->err = hrp_error(&p);
            }
            break;
        }
    }
    res->leftover = len - pos;
    hrp_free(&p);
}

static inline int parse_result_equal(const struct parse_result *a, const struct parse_result *b)
{
    return a->headers == b->headers && a->done == b->done && a->err == b->err && a->status == b->status &&
           a->minor == b->minor && a->keep_alive == b->keep_alive && a->kind == b->kind &&
           a->nfields == b->nfields && a->body_len == b->body_len && memcmp(a->body, b->body, a->body_len) == 0 &&
           a->leftover == b->leftover && !a->bad_pointer && !b->bad_pointer;
}

#endif
