#include "fcgi_request.h"

#include <string.h>

/* Where the stderr-truncated fault cuts a request's STDERR. */
#define STDERR_TRUNCATED_AT 4096u

const uint8_t *fcgi_request_param(const struct fcgi_request *req, const char *name, size_t *len)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < req->params_count; i++) {
        const struct fcgi_nv *p = &req->params[i];
        if (p->name_len == name_len && memcmp(p->name, name, name_len) == 0) {
            *len = p->value_len;
            return p->value;
        }
    }
    *len = 0;
    return NULL;
}

bool fcgi_request_write(struct fcgi_request *req, uint8_t stream, const void *data, size_t len)
{
    if (req->flags & REQ_FINISHED)
        return false;
    if (stream == FCGI_STDERR) {
        if (len)
            req->flags |= REQ_STDERR_USED;
        if (fault_on(req->faults, FAULT_STDERR_TRUNCATED)) {
            size_t room = req->stderr_bytes < STDERR_TRUNCATED_AT ? STDERR_TRUNCATED_AT - req->stderr_bytes : 0;
            len = len < room ? len : room;
        }
        req->stderr_bytes += len;
        return byte_queue_append(&req->stderr_spool, data, len);
    }
    return byte_queue_append(&req->stdout_spool, data, len);
}

size_t fcgi_request_stdout_room(const struct fcgi_request *req) { return byte_queue_room(&req->stdout_spool); }

void fcgi_request_want_writable(struct fcgi_request *req) { req->flags |= REQ_WANTS_WRITABLE; }

void fcgi_request_wake_at(struct fcgi_request *req, uint64_t at_ms) { req->wake_at_ms = at_ms; }

uint64_t fcgi_request_now(const struct fcgi_request *req) { return *req->clock_ms; }

void fcgi_request_finish(struct fcgi_request *req, uint32_t app_status)
{
    if (req->flags & REQ_FINISHED)
        return;
    req->flags |= REQ_FINISHED;
    req->flags &= ~(unsigned)REQ_WANTS_WRITABLE;
    req->wake_at_ms = 0;
    req->app_status = app_status;
}
