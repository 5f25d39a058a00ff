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
    char *stderr_text; /* err=TEXT, NULL when not asked for */
};

static void probe_destroy(struct fcgi_request *req)
{
    struct probe *p = req->app_state;
    if (!p)
        return;
    stream_digest_free(&p->stdin_digest);
    free(p->stderr_text);
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

/* A bounded text builder for the header block: no printf, which was a sixth of
 * a small request's instructions. `len` passes `cap` when the text did not fit. */
struct text {
    char *buf;
    size_t cap;
    size_t len;
};

static void text_add(struct text *t, const char *s)
{
    size_t n = strlen(s);
    if (t->len + n <= t->cap)
        memcpy(t->buf + t->len, s, n);
    t->len += n;
}

static void text_add_u64(struct text *t, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof(digits) - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (t->len + n <= t->cap)
        memcpy(t->buf + t->len, digits + sizeof(digits) - n, n);
    t->len += n;
}

static void write_headers(struct fcgi_request *req, const char *content_type, const char *digest_hex,
                          bool digest_known)
{
    struct probe *p = req->app_state;
    bool short_stdin = digest_known && stdin_cut_short(req, p);
    unsigned status = short_stdin ? 400 : p->status;
    char head[512]; /* every part is bounded: status <= 999, a fixed type, 64 hex digits */
    struct text t = {head, sizeof(head), 0};
    /* Fault nph-status-line: "HTTP/1.1 200 OK", as a non-parsed-header CGI script writes it. */
    text_add(&t, fault_on(req->faults, FAULT_NPH_STATUS_LINE) ? "HTTP/1.1 " : "Status: ");
    text_add_u64(&t, status);
    text_add(&t, status == 200 ? " OK\r\nContent-Type: " : " Probe\r\nContent-Type: ");
    text_add(&t, content_type);
    text_add(&t, "\r\n");
    if (short_stdin)
        text_add(&t, "X-Probe-Error: stdin shorter than CONTENT_LENGTH\r\n");
    if (digest_known) {
        text_add(&t, "X-Probe-Stdin-Length: ");
        text_add_u64(&t, p->stdin_digest.length);
        text_add(&t, "\r\nX-Probe-Stdin-Sha256: ");
        text_add(&t, digest_hex);
        text_add(&t, "\r\n");
    }
    text_add(&t, "\r\n");
    if (t.len <= t.cap)
        fcgi_request_write(req, FCGI_STDOUT, head, t.len);
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
    size_t text_len = p->stderr_text ? strlen(p->stderr_text) : 0;
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

/* The QUERY_STRING options (README "The probe app"), read in one pass; the first
 * pair of each key counts. */
static void read_query(struct fcgi_request *req, struct probe *p)
{
    size_t qlen;
    const uint8_t *query = fcgi_request_param(req, "QUERY_STRING", &qlen);
    p->status = 200;
    p->stderr_repeat = 1;
    enum { STATUS, ECHO, OUT, DELAY, APP_STATUS, ERR, ERR_REPEAT, KEYS };
    static const char *const keys[KEYS] = {"status", "echo", "out", "delay", "app_status", "err", "err_repeat"};
    bool seen[KEYS] = {false};
    struct query_pair pair;
    for (size_t pos = 0; query && query_next(query, qlen, &pos, &pair);) {
        unsigned k = 0;
        while (k < KEYS && !query_key_is(&pair, keys[k]))
            k++;
        if (k == KEYS || seen[k])
            continue;
        seen[k] = true;
        switch (k) {
        case STATUS:
            p->status = (unsigned)query_decode_u64(&pair, 200);
            break;
        case ECHO:
            p->echo = query_decode_u64(&pair, 0) != 0;
            break;
        case OUT:
            p->generate_output = true;
            p->output_left = query_decode_u64(&pair, 0);
            break;
        case DELAY:
            p->delay_ms = query_decode_u64(&pair, 0);
            break;
        case APP_STATUS:
            p->app_status = (uint32_t)query_decode_u64(&pair, 0);
            break;
        case ERR: {
            char text[PROBE_TEXT_MAX];
            query_decode(&pair, text, sizeof(text));
            if (text[0])
                p->stderr_text = strdup(text); /* NULL (no stderr) if memory runs out */
            break;
        }
        case ERR_REPEAT:
            p->stderr_repeat = query_decode_u64(&pair, 1);
            break;
        }
    }
    if (p->status < 100 || p->status > 999)
        p->status = 200;
    if (p->delay_ms > PROBE_MAX_DELAY_MS)
        p->delay_ms = PROBE_MAX_DELAY_MS;
    size_t text_len = p->stderr_text ? strlen(p->stderr_text) : 0;
    if (text_len && p->stderr_repeat > PROBE_MAX_STDERR / text_len)
        p->stderr_repeat = PROBE_MAX_STDERR / text_len;
}

static void probe_start(struct fcgi_request *req)
{
    struct probe *p = calloc(1, sizeof(*p));
    if (!p || !stream_digest_init(&p->stdin_digest)) {
        free(p);
        fcgi_request_finish(req, 1);
        return;
    }
    req->app_state = p;
    read_query(req, p);
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
