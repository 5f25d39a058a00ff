/* The filter app (Filter role): once STDIN has ended it sends headers with the
 * STDIN length and digest, then the FCGI_DATA bytes unchanged as the body. DATA
 * that arrives before STDIN ends is held back (spec §6.4 order). A DATA length
 * other than FCGI_DATA_LENGTH is reported on STDERR with appStatus 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_util.h"
#include "fcgi_request.h"

struct filter {
    struct stream_digest stdin_digest;
    struct byte_queue early_data;
    uint64_t data_length;
    bool stdin_done;
    bool data_done;
};

static void filter_destroy(struct fcgi_request *req)
{
    struct filter *f = req->app_state;
    if (!f)
        return;
    stream_digest_free(&f->stdin_digest);
    byte_queue_free(&f->early_data);
    free(f);
    req->app_state = NULL;
}

static void filter_start(struct fcgi_request *req)
{
    struct filter *f = calloc(1, sizeof(*f));
    if (!f || !stream_digest_init(&f->stdin_digest)) {
        free(f);
        fcgi_request_finish(req, 1);
        return;
    }
    byte_queue_init(&f->early_data, fcgi_request_stdout_room(req));
    req->app_state = f;
}

static void finish_if_done(struct fcgi_request *req)
{
    struct filter *f = req->app_state;
    if (f->stdin_done && fault_on(req->faults, FAULT_FILTER_DATA_IGNORED)) {
        fcgi_request_finish(req, 0);
        return;
    }
    if (!f->stdin_done || !f->data_done)
        return;
    size_t len;
    const uint8_t *declared = fcgi_request_param(req, "FCGI_DATA_LENGTH", &len);
    char expected[24] = "";
    if (declared && len < sizeof(expected))
        memcpy(expected, declared, len), expected[len] = '\0';
    char actual[24];
    snprintf(actual, sizeof(actual), "%llu", (unsigned long long)f->data_length);
    if (declared && strcmp(expected, actual) != 0) {
        char note[96];
        snprintf(note, sizeof(note), "filter: FCGI_DATA_LENGTH is %s but %s bytes arrived\n", expected, actual);
        fcgi_request_write(req, FCGI_STDERR, note, strlen(note));
        fcgi_request_finish(req, 1);
        return;
    }
    fcgi_request_finish(req, 0);
}

static void filter_input(struct fcgi_request *req, uint8_t type, const uint8_t *data, size_t len)
{
    struct filter *f = req->app_state;
    if (type == FCGI_DATA) {
        f->data_length += len;
        f->data_done = len == 0;
        bool ok = f->stdin_done ? fcgi_request_write(req, FCGI_STDOUT, data, len)
                                : byte_queue_append(&f->early_data, data, len);
        if (!ok) {
            fcgi_request_write(req, FCGI_STDERR, "filter: data spool full\n", 24);
            fcgi_request_finish(req, 1);
            return;
        }
        finish_if_done(req);
        return;
    }
    stream_digest_update(&f->stdin_digest, data, len);
    if (len)
        return;
    f->stdin_done = true;
    char hex[65], head[256];
    stream_digest_final_hex(&f->stdin_digest, hex);
    int n = snprintf(head, sizeof(head),
                     "Status: 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     "X-Filter-Stdin-Length: %llu\r\nX-Filter-Stdin-Sha256: %s\r\n\r\n",
                     (unsigned long long)f->stdin_digest.length, hex);
    fcgi_request_write(req, FCGI_STDOUT, head, (size_t)n);
    if (!fault_on(req->faults, FAULT_FILTER_DATA_IGNORED))
        fcgi_request_write(req, FCGI_STDOUT, byte_queue_peek(&f->early_data), byte_queue_len(&f->early_data));
    byte_queue_free(&f->early_data);
    finish_if_done(req);
}

static void filter_nothing(struct fcgi_request *req) { (void)req; }

const struct fcgi_app app_filter = {
    .name = "filter",
    .start = filter_start,
    .input = filter_input,
    .writable = filter_nothing,
    .timer = filter_nothing,
    .destroy = filter_destroy,
};
