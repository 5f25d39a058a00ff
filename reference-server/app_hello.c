/* The hello app (Responder role, --app hello): an ordinary application's page,
 * without the probe report. It shows what a typical page shows of its request
 * (method, URI, how many params, what was posted) and what varies from one
 * answer to the next the way real pages vary (a Date header, a session cookie,
 * a visit counter and the time served), so that the suite's comparison oracle
 * can be shown to judge content with no probe app to ask. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_util.h"
#include "fcgi_request.h"

#define HELLO_SHOWN_MAX 256 /* bytes of the URI and of the posted body shown on the page */

struct hello {
    struct stream_digest stdin_digest;
    char body_start[HELLO_SHOWN_MAX + 1];
    size_t body_start_len;
};

/* Visits of this process: a per-answer number like a real page's counter. */
static unsigned long hello_visits;

static void hello_destroy(struct fcgi_request *req)
{
    struct hello *h = req->app_state;
    if (!h)
        return;
    stream_digest_free(&h->stdin_digest);
    free(h);
    req->app_state = NULL;
}

static void hello_start(struct fcgi_request *req)
{
    struct hello *h = calloc(1, sizeof(*h));
    if (!h || !stream_digest_init(&h->stdin_digest)) {
        free(h);
        fcgi_request_finish(req, 1);
        return;
    }
    req->app_state = h;
}

/* FNV-1a over every name and value, in order: a page that depends on all params. */
static uint32_t params_checksum(const struct fcgi_request *req)
{
    uint32_t sum = 2166136261u;
    for (size_t i = 0; i < req->params_count; i++) {
        const struct fcgi_nv *nv = &req->params[i];
        for (size_t k = 0; k < nv->name_len; k++)
            sum = (sum ^ nv->name[k]) * 16777619u;
        sum = (sum ^ '=') * 16777619u;
        for (size_t k = 0; k < nv->value_len; k++)
            sum = (sum ^ nv->value[k]) * 16777619u;
        sum = (sum ^ '\n') * 16777619u;
    }
    return sum;
}

/* Printable ASCII as is, anything else as '.', at most HELLO_SHOWN_MAX bytes. */
static void shown(char *out, const uint8_t *data, size_t len)
{
    size_t n = len < HELLO_SHOWN_MAX ? len : HELLO_SHOWN_MAX;
    for (size_t i = 0; i < n; i++)
        out[i] = data[i] >= 0x20 && data[i] < 0x7f && data[i] != '<' && data[i] != '&' ? (char)data[i] : '.';
    out[n] = '\0';
}

/* Writes the page once STDIN has ended: headers, then what the request carried and what varies. */
static void respond(struct fcgi_request *req)
{
    struct hello *h = req->app_state;
    char digest_hex[65], method[HELLO_SHOWN_MAX + 1], uri[HELLO_SHOWN_MAX + 1], date[64];
    stream_digest_final_hex(&h->stdin_digest, digest_hex);
    size_t len;
    const uint8_t *value = fcgi_request_param(req, "REQUEST_METHOD", &len);
    shown(method, value ? value : (const uint8_t *)"", value ? len : 0);
    value = fcgi_request_param(req, "REQUEST_URI", &len);
    shown(uri, value ? value : (const uint8_t *)"", value ? len : 0);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r(&now.tv_sec, &utc);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &utc);
    unsigned long visit = ++hello_visits;
    unsigned long long served_ms = (unsigned long long)now.tv_sec * 1000u + (unsigned long long)now.tv_nsec / 1000000u;
    struct byte_queue page;
    byte_queue_init(&page, fcgi_request_stdout_room(req));
    bool ok = queue_printf(&page,
                           "Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nDate: %s\r\n"
                           "Set-Cookie: hello_session=%08lx%04llx; Path=/; HttpOnly\r\n\r\n",
                           date, visit, served_ms & 0xffffu);
    /* Piece by piece: queue_printf takes at most 511 bytes at a time. */
    ok = ok && queue_printf(&page, "<!doctype html>\n<html><head><title>Hello</title></head><body>\n"
                                   "<h1>Hello from fcgispec</h1>\n<p>");
    ok = ok && byte_queue_append(&page, method, strlen(method)) && byte_queue_append(&page, " ", 1) &&
         byte_queue_append(&page, uri, strlen(uri));
    ok = ok && queue_printf(&page, "</p>\n<p>%zu params (checksum %08x)</p>\n<p>%llu bytes posted (sha256 %s), starting: ",
                            req->params_count, (unsigned)params_checksum(req),
                            (unsigned long long)h->stdin_digest.length, digest_hex);
    ok = ok && byte_queue_append(&page, h->body_start, strlen(h->body_start));
    ok = ok && queue_printf(&page, "</p>\n<p>Visit %lu, served at %llu ms</p>\n</body></html>\n", visit, served_ms);
    ok = ok && fcgi_request_write(req, FCGI_STDOUT, byte_queue_peek(&page), byte_queue_len(&page));
    byte_queue_free(&page);
    if (!ok) {
        const char *why = "hello: page larger than the output spool\n";
        fcgi_request_write(req, FCGI_STDERR, why, strlen(why));
    }
    fcgi_request_finish(req, ok ? 0 : 1);
}

static void hello_input(struct fcgi_request *req, uint8_t type, const uint8_t *data, size_t len)
{
    struct hello *h = req->app_state;
    if (type != FCGI_STDIN)
        return;
    if (!len) {
        respond(req);
        return;
    }
    stream_digest_update(&h->stdin_digest, data, len);
    if (h->body_start_len < HELLO_SHOWN_MAX) {
        size_t take = HELLO_SHOWN_MAX - h->body_start_len < len ? HELLO_SHOWN_MAX - h->body_start_len : len;
        shown(h->body_start + h->body_start_len, data, take);
        h->body_start_len += take;
    }
}

static void hello_nothing(struct fcgi_request *req) { (void)req; }

const struct fcgi_app app_hello = {
    .name = "hello",
    .start = hello_start,
    .input = hello_input,
    .writable = hello_nothing,
    .timer = hello_nothing,
    .destroy = hello_destroy,
};
