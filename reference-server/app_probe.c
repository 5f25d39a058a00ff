/* The probe app (Responder role): reports what it received and produces the
 * output a case asks for through QUERY_STRING (see README "The probe app"). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "app_util.h"
#include "fcgi_request.h"

#define PROBE_TEXT_MAX 4096
#define PROBE_OUTPUT_CHUNK 65536u
#define PROBE_MAX_STDERR (4u << 20) /* err_repeat stops here: the spool's limit is 8 MiB */
#define PROBE_MAX_DELAY_MS (3600u * 1000u) /* keeps now + delay far from overflow */

struct probe {
    struct stream_digest stdin_digest;
    unsigned status;
    bool echo;
    bool generate_output; /* out=N given */
    uint64_t output_left;
    uint64_t output_sent;
    uint64_t delay_ms;
    uint32_t app_status;
    uint64_t stderr_repeat;
    uint64_t content_length; /* CONTENT_LENGTH, when given */
    bool content_length_given;
    char stderr_text[PROBE_TEXT_MAX]; /* last: probe_start clears only the fields before it */
};

static void probe_destroy(struct fcgi_request *req)
{
    struct probe *p = req->app_state;
    if (!p)
        return;
    stream_digest_free(&p->stdin_digest);
    free(p);
    req->app_state = NULL;
}

static void write_text(struct fcgi_request *req, uint8_t stream, const char *text)
{
    fcgi_request_write(req, stream, text, strlen(text));
}

static void fail_request(struct fcgi_request *req, const char *why)
{
    write_text(req, FCGI_STDERR, why);
    fcgi_request_finish(req, 1);
}

/* A Responder doing an update must refuse a body shorter than CONTENT_LENGTH
 * (spec §6.2: a client that crashed mid-upload); the probe answers 400. */
static bool stdin_cut_short(const struct fcgi_request *req, const struct probe *p)
{
    return p->content_length_given && p->stdin_digest.length < p->content_length &&
           !fault_on(req->faults, FAULT_CONTENT_LENGTH_UNCHECKED);
}

static void write_headers(struct fcgi_request *req, const char *content_type, const char *digest_hex,
                          bool digest_known)
{
    struct probe *p = req->app_state;
    struct byte_queue head;
    byte_queue_init(&head, 1024);
    bool short_stdin = digest_known && stdin_cut_short(req, p);
    unsigned status = short_stdin ? 400 : p->status;
    bool ok = queue_printf(&head, "Status: %u %s\r\nContent-Type: %s\r\n", status, status == 200 ? "OK" : "Probe",
                           content_type);
    if (short_stdin)
        ok = ok && queue_printf(&head, "X-Probe-Error: stdin shorter than CONTENT_LENGTH\r\n");
    if (digest_known)
        ok = ok && queue_printf(&head, "X-Probe-Stdin-Length: %llu\r\nX-Probe-Stdin-Sha256: %s\r\n",
                                (unsigned long long)p->stdin_digest.length, digest_hex);
    ok = ok && byte_queue_append(&head, "\r\n", 2);
    if (ok)
        fcgi_request_write(req, FCGI_STDOUT, byte_queue_peek(&head), byte_queue_len(&head));
    byte_queue_free(&head);
}

/* The JSON report: role, params in the order received, stdin length and digest. */
static bool write_report(struct fcgi_request *req, const char *digest_hex)
{
    struct probe *p = req->app_state;
    struct byte_queue body;
    byte_queue_init(&body, fcgi_request_stdout_room(req));
    bool ok = queue_printf(&body, "{\"role\":\"responder\",\"params\":[");
    for (size_t i = 0; ok && i < req->params_count; i++) {
        const struct fcgi_nv *nv = &req->params[i];
        ok = byte_queue_append(&body, i ? ",[\"" : "[\"", i ? 3 : 2) && json_append_bytes(&body, nv->name, nv->name_len) &&
             byte_queue_append(&body, "\",\"", 3) && json_append_bytes(&body, nv->value, nv->value_len) &&
             byte_queue_append(&body, "\"]", 2);
    }
    ok = ok && queue_printf(&body, "],\"stdin_length\":%llu,\"stdin_sha256\":\"%s\"}\n",
                            (unsigned long long)p->stdin_digest.length, digest_hex);
    ok = ok && fcgi_request_write(req, FCGI_STDOUT, byte_queue_peek(&body), byte_queue_len(&body));
    byte_queue_free(&body);
    return ok;
}

/* Writes the next piece of the out=N pattern: byte i is 'a' + i % 26. */
/* The out=N pattern, 64 alphabets long: the output is copied from it in slices,
 * not computed byte by byte (that was most of a small request's cost). */
#define ALPHABET "abcdefghijklmnopqrstuvwxyz"
#define ALPHABET_X4 ALPHABET ALPHABET ALPHABET ALPHABET
#define ALPHABET_X16 ALPHABET_X4 ALPHABET_X4 ALPHABET_X4 ALPHABET_X4
static const char pattern_run[] = ALPHABET_X16 ALPHABET_X16 ALPHABET_X16 ALPHABET_X16;
#define PATTERN_RUN_LEN (sizeof(pattern_run) - 1)

static void write_pattern(struct fcgi_request *req)
{
    struct probe *p = req->app_state;
    size_t n = p->output_left < PROBE_OUTPUT_CHUNK ? (size_t)p->output_left : PROBE_OUTPUT_CHUNK;
    for (size_t written = 0; written < n;) {
        size_t offset = (size_t)((p->output_sent + written) % 26);
        size_t take = PATTERN_RUN_LEN - offset < n - written ? PATTERN_RUN_LEN - offset : n - written;
        if (!fcgi_request_write(req, FCGI_STDOUT, pattern_run + offset, take)) {
            fail_request(req, "probe: output spool full\n");
            return;
        }
        written += take;
    }
    p->output_left -= n;
    p->output_sent += n;
    if (p->output_left)
        fcgi_request_want_writable(req);
    else
        fcgi_request_finish(req, p->app_status);
}

static void respond(struct fcgi_request *req)
{
    struct probe *p = req->app_state;
    char digest_hex[65];
    stream_digest_final_hex(&p->stdin_digest, digest_hex);
    size_t text_len = strlen(p->stderr_text);
    for (uint64_t i = 0; text_len && i < p->stderr_repeat; i++)
        write_text(req, FCGI_STDERR, p->stderr_text);
    if (p->generate_output) {
        write_headers(req, "application/octet-stream", digest_hex, true);
        if (p->output_left)
            write_pattern(req);
        else
            fcgi_request_finish(req, p->app_status);
        return;
    }
    write_headers(req, "application/json", digest_hex, true);
    if (!write_report(req, digest_hex)) {
        fail_request(req, "probe: report larger than the output spool\n");
        return;
    }
    fcgi_request_finish(req, p->app_status);
}

static void probe_start(struct fcgi_request *req)
{
    /* Cleared up to the 4 KiB text buffer only: query_get() writes that itself. */
    struct probe *p = malloc(sizeof(*p));
    if (p) {
        memset(p, 0, offsetof(struct probe, stderr_text));
        p->stderr_text[0] = '\0';
    }
    if (!p || !stream_digest_init(&p->stdin_digest)) {
        free(p);
        fcgi_request_finish(req, 1);
        return;
    }
    req->app_state = p;
    size_t qlen;
    const uint8_t *query = fcgi_request_param(req, "QUERY_STRING", &qlen);
    p->status = (unsigned)query_get_u64(query, qlen, "status", 200);
    if (p->status < 100 || p->status > 999)
        p->status = 200;
    p->echo = query_get_u64(query, qlen, "echo", 0) != 0;
    char scratch[24];
    p->generate_output = query_get(query, qlen, "out", scratch, sizeof(scratch));
    p->output_left = query_get_u64(query, qlen, "out", 0);
    p->delay_ms = query_get_u64(query, qlen, "delay", 0);
    if (p->delay_ms > PROBE_MAX_DELAY_MS)
        p->delay_ms = PROBE_MAX_DELAY_MS;
    p->app_status = (uint32_t)query_get_u64(query, qlen, "app_status", 0);
    if (!query_get(query, qlen, "err", p->stderr_text, sizeof(p->stderr_text)))
        p->stderr_text[0] = '\0';
    p->stderr_repeat = query_get_u64(query, qlen, "err_repeat", 1);
    size_t text_len = strlen(p->stderr_text);
    if (text_len && p->stderr_repeat > PROBE_MAX_STDERR / text_len)
        p->stderr_repeat = PROBE_MAX_STDERR / text_len;
    size_t clen;
    const uint8_t *content_length = fcgi_request_param(req, "CONTENT_LENGTH", &clen);
    if (content_length && clen > 0 && clen < 20) {
        char text[20];
        memcpy(text, content_length, clen);
        text[clen] = '\0';
        char *end;
        unsigned long long v = strtoull(text, &end, 10);
        p->content_length_given = *end == '\0';
        p->content_length = v;
    }
    if (p->echo) /* headers now, so that output flows before STDIN ends */
        write_headers(req, "application/octet-stream", "", false);
}

static void probe_input(struct fcgi_request *req, uint8_t type, const uint8_t *data, size_t len)
{
    struct probe *p = req->app_state;
    if (type != FCGI_STDIN)
        return;
    stream_digest_update(&p->stdin_digest, data, len);
    if (p->echo) {
        if (len && !fcgi_request_write(req, FCGI_STDOUT, data, len))
            fail_request(req, "probe: echo spool full\n");
        else if (!len)
            fcgi_request_finish(req, p->app_status);
        return;
    }
    if (len)
        return;
    if (p->delay_ms)
        fcgi_request_wake_at(req, fcgi_request_now(req) + p->delay_ms);
    else
        respond(req);
}

static void probe_timer(struct fcgi_request *req) { respond(req); }

const struct fcgi_app app_probe = {
    .name = "probe",
    .start = probe_start,
    .input = probe_input,
    .writable = write_pattern,
    .timer = probe_timer,
    .destroy = probe_destroy,
};
