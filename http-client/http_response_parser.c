/* The incremental HTTP/1.x response parser (see http_response_parser.h).
 *
 * Rules, with their RFC 9112 sections:
 * - line ends are CRLF or a lone LF (§2.2); a CR not followed by LF is an error
 * - status-line = HTTP-version SP 3DIGIT SP [reason] (§4); a missing SP before an
 *   empty reason is tolerated; only major version 1
 * - field-line = token ":" OWS value OWS (§5); whitespace before the colon and
 *   obs-fold (§5.2) are errors; values may not hold CTLs other than HTAB
 * - 1xx other than 101 are interim: skipped, at most lim.max_interim of them
 * - no body for HEAD, 1xx, 204, 304 (§6.3 rule 1), whatever the framing headers say
 * - Transfer-Encoding with Content-Length is an error (§6.3 rule 3), as is
 *   Transfer-Encoding in HTTP/1.0 (§6.1); only "chunked" is supported
 * - Content-Length: digits only; a list or repeats must all be equal (§6.3 rule 5)
 * - otherwise the body runs to the close of the connection (§6.3 rule 8)
 * - chunked (§7.1): hex size, optional extensions, CRLF after data, trailers skipped */
#include "http_response_parser.h"
#include "hex.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    S_STATUS,        /* status line */
    S_FIELD,         /* header field lines */
    S_BODY_LENGTH,   /* Content-Length body */
    S_CHUNK_SIZE,    /* chunk-size [ext] line */
    S_CHUNK_DATA,    /* chunk data */
    S_CHUNK_DATA_END,/* CRLF after chunk data */
    S_TRAILER,       /* trailer section lines */
    S_BODY_CLOSE,    /* close-delimited body */
    S_DONE,
    S_ERROR
};

void hrp_limits_default(struct hrp_limits *lim)
{
    lim->max_head_bytes = 32 * 1024;
    lim->max_headers = 100;
    lim->max_interim = 5;
    lim->max_body_length = (uint64_t)1 << 53;
    lim->max_chunk_size = (uint64_t)1 << 40;
    lim->max_chunk_line = 4096;
    lim->max_trailer_bytes = 16 * 1024;
}

int hrp_init(struct hrp *p, const struct hrp_limits *lim, int is_head)
{
    memset(p, 0, sizeof(*p));
    if (lim)
        p->lim = *lim;
    else
        hrp_limits_default(&p->lim);
    if (p->lim.max_head_bytes < 16)
        p->lim.max_head_bytes = 16;
    p->is_head = is_head ? 1 : 0;
    p->state = S_STATUS;
    p->head = malloc(p->lim.max_head_bytes);
    p->fields = calloc(p->lim.max_headers ? p->lim.max_headers : 1, sizeof(*p->fields));
    if (!p->head || !p->fields) {
        hrp_free(p);
        return -1;
    }
    return 0;
}

void hrp_free(struct hrp *p)
{
    free(p->head);
    free(p->fields);
    p->head = NULL;
    p->fields = NULL;
}

static int fail(struct hrp *p, httpc_error e)
{
    p->state = S_ERROR;
    p->err = e;
    return HRP_ERROR;
}

static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* VCHAR, obs-text, SP, HTAB. */
static int is_field_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static int eq_nocase(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

/* Calls fn(token, len, arg) for each non-empty element of a comma list. */
static void each_list_element(const char *v, size_t n, void (*fn)(const char *, size_t, void *), void *arg)
{
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (start < end && is_ows((unsigned char)v[start]))
            start++;
        while (end > start && is_ows((unsigned char)v[end - 1]))
            end--;
        if (end > start)
            fn(v + start, end - start, arg);
        i++; /* past the comma */
    }
}

static int parse_status_line(struct hrp *p, const char *s, size_t n)
{
    /* HTTP/1.1 200 OK */
    if (n < 12 || memcmp(s, "HTTP/", 5) != 0)
        return HTTPC_E_BAD_STATUS_LINE;
    if (s[5] < '0' || s[5] > '9' || s[6] != '.' || s[7] < '0' || s[7] > '9')
        return HTTPC_E_BAD_STATUS_LINE;
    if (s[5] != '1')
        return HTTPC_E_BAD_VERSION;
    if (s[8] != ' ')
        return HTTPC_E_BAD_STATUS_LINE;
    for (int i = 9; i < 12; i++)
        if (s[i] < '0' || s[i] > '9')
            return HTTPC_E_BAD_STATUS_LINE;
    int status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (status < 100)
        return HTTPC_E_BAD_STATUS_LINE;
    if (n > 12) {
        if (s[12] != ' ')
            return HTTPC_E_BAD_STATUS_LINE;
        for (size_t i = 13; i < n; i++)
            if (!is_field_char((unsigned char)s[i]))
                return HTTPC_E_BAD_STATUS_LINE;
    }
    p->version_minor = s[7] - '0';
    p->status = status;
    p->reason_off = (uint32_t)(s - p->head) + (n > 12 ? 13 : 12);
    p->reason_len = n > 12 ? (uint32_t)(n - 13) : 0;
    return HTTPC_OK;
}

/* The line is head[off .. off+n), followed by a NUL. */
static int parse_field_line(struct hrp *p, size_t off, size_t n)
{
    char *s = p->head + off;
    if (is_ows((unsigned char)s[0]))
        return HTTPC_E_OBS_FOLD;
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i == n || s[i] != ':')
        return HTTPC_E_BAD_HEADER;
    size_t name_len = i;
    i++;
    while (i < n && is_ows((unsigned char)s[i]))
        i++;
    size_t vstart = i, vend = n;
    while (vend > vstart && is_ows((unsigned char)s[vend - 1]))
        vend--;
    for (size_t k = vstart; k < vend; k++)
        if (!is_field_char((unsigned char)s[k]))
            return HTTPC_E_BAD_HEADER;
    if (p->nfields >= p->lim.max_headers)
        return HTTPC_E_TOO_MANY_HEADERS;
    s[name_len] = '\0';
    s[vend] = '\0';
    struct hrp_field *f = &p->fields[p->nfields++];
    f->name_off = (uint32_t)off;
    f->name_len = (uint32_t)name_len;
    f->value_off = (uint32_t)(off + vstart);
    f->value_len = (uint32_t)(vend - vstart);
    return HTTPC_OK;
}

struct conn_tokens {
    int close, keep_alive;
};

static void conn_token(const char *t, size_t n, void *arg)
{
    struct conn_tokens *ct = arg;
    if (eq_nocase(t, n, "close"))
        ct->close = 1;
    else if (eq_nocase(t, n, "keep-alive"))
        ct->keep_alive = 1;
}

struct te_tokens {
    unsigned count;
    int chunked_last, other;
};

static void te_token(const char *t, size_t n, void *arg)
{
    struct te_tokens *te = arg;
    te->count++;
    if (eq_nocase(t, n, "chunked")) {
        te->chunked_last = 1;
    } else {
        te->chunked_last = 0;
        te->other = 1;
    }
}

struct cl_values {
    int seen, bad, conflict;
    uint64_t value, max;
};

static void cl_value(const char *t, size_t n, void *arg)
{
    struct cl_values *cl = arg;
    uint64_t v = 0;
    if (n > 19) {
        cl->bad = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (t[i] < '0' || t[i] > '9') {
            cl->bad = 1;
            return;
        }
        v = v * 10 + (uint64_t)(t[i] - '0');
    }
    if (v > cl->max) {
        cl->bad = 1;
        return;
    }
    if (cl->seen && v != cl->value)
        cl->conflict = 1;
    cl->seen = 1;
    cl->value = v;
}

/* The head of a final response is complete: decide the framing. */
static int decide_framing(struct hrp *p)
{
    struct conn_tokens ct = {0, 0};
    struct te_tokens te = {0, 0, 0};
    struct cl_values cl = {0, 0, 0, 0, p->lim.max_body_length};
    int te_present = 0, cl_present = 0;
    for (size_t i = 0; i < p->nfields; i++) {
        const struct hrp_field *f = &p->fields[i];
        const char *name = p->head + f->name_off;
        const char *value = p->head + f->value_off;
        if (eq_nocase(name, f->name_len, "connection")) {
            each_list_element(value, f->value_len, conn_token, &ct);
        } else if (eq_nocase(name, f->name_len, "transfer-encoding")) {
            te_present = 1;
            each_list_element(value, f->value_len, te_token, &te);
        } else if (eq_nocase(name, f->name_len, "content-length")) {
            cl_present = 1;
            int before = cl.seen;
            each_list_element(value, f->value_len, cl_value, &cl);
            if (!before && !cl.seen)
                cl.bad = 1; /* empty value */
            else if (before && f->value_len == 0)
                cl.bad = 1;
        }
    }
    if (p->version_minor >= 1)
        p->keep_alive = !ct.close;
    else
        p->keep_alive = ct.keep_alive && !ct.close;

    if (cl_present && (cl.bad))
        return HTTPC_E_BAD_CONTENT_LENGTH;
    if (cl_present && cl.conflict)
        return HTTPC_E_CONFLICTING_CONTENT_LENGTH;
    if (te_present && cl_present)
        return HTTPC_E_CL_AND_TE;
    if (te_present && p->version_minor == 0)
        return HTTPC_E_TE_IN_HTTP10;
    if (te_present && (te.other || te.count != 1 || !te.chunked_last))
        return HTTPC_E_UNSUPPORTED_TE;

    if (p->status == 101) {
        p->body = HRP_BODY_NONE;
        p->keep_alive = 0; /* the connection now speaks another protocol */
    } else if (p->is_head || p->status == 204 || p->status == 304) {
        p->body = HRP_BODY_NONE;
    } else if (te_present) {
        p->body = HRP_BODY_CHUNKED;
    } else if (cl_present) {
        p->body = cl.value ? HRP_BODY_LENGTH : HRP_BODY_NONE;
        p->content_length = cl.value;
        p->remaining = cl.value;
    } else {
        p->body = HRP_BODY_CLOSE;
        p->keep_alive = 0;
    }
    return HTTPC_OK;
}

static void start_head(struct hrp *p)
{
    p->head_len = 0;
    p->line_start = 0;
    p->nfields = 0;
    p->state = S_STATUS;
}

static void start_chunk_line(struct hrp *p)
{
    p->line_len = 0;
    p->chunk_digits = 0;
    p->chunk_after_digits = 0;
    p->remaining = 0;
    p->state = S_CHUNK_SIZE;
}

/* A complete head line is head[line_start .. head_len). Returns an event or -1 to go on. */
static int head_line_done(struct hrp *p)
{
    size_t off = p->line_start, n = p->head_len - p->line_start;
    if (p->head_len >= p->lim.max_head_bytes)
        return fail(p, HTTPC_E_HEAD_TOO_LARGE);
    p->head[p->head_len++] = '\0';
    p->line_start = p->head_len;
    int e;
    if (p->state == S_STATUS) {
        e = parse_status_line(p, p->head + off, n);
        if (e != HTTPC_OK)
            return fail(p, (httpc_error)e);
        p->state = S_FIELD;
        return -1;
    }
    if (n > 0) {
        e = parse_field_line(p, off, n);
        if (e != HTTPC_OK)
            return fail(p, (httpc_error)e);
        return -1;
    }
    /* Empty line: end of the head. */
    if (p->status < 200 && p->status != 101) {
        if (p->interim >= p->lim.max_interim)
            return fail(p, HTTPC_E_TOO_MANY_INTERIM);
        p->interim++;
        start_head(p);
        return -1;
    }
    e = decide_framing(p);
    if (e != HTTPC_OK)
        return fail(p, (httpc_error)e);
    switch (p->body) {
    case HRP_BODY_NONE: p->state = S_DONE; break;
    case HRP_BODY_LENGTH: p->state = S_BODY_LENGTH; break;
    case HRP_BODY_CHUNKED: start_chunk_line(p); break;
    case HRP_BODY_CLOSE: p->state = S_BODY_CLOSE; break;
    }
    return HRP_HEADERS;
}

/* One byte of a chunk-size line; returns an event or -1 to go on. */
static int chunk_size_byte(struct hrp *p, unsigned char c)
{
    if (++p->line_len > p->lim.max_chunk_line)
        return fail(p, HTTPC_E_BAD_CHUNK_SIZE);
    if (p->saw_cr && c != '\n')
        return fail(p, HTTPC_E_BAD_CHUNK_SIZE);
    if (c == '\r') {
        p->saw_cr = 1;
        return -1;
    }
    if (c == '\n') {
        p->saw_cr = 0;
        if (p->chunk_digits == 0)
            return fail(p, HTTPC_E_BAD_CHUNK_SIZE);
        if (p->remaining == 0) {
            p->trailer_bytes = 0;
            p->line_len = 0;
            p->state = S_TRAILER;
        } else {
            p->state = S_CHUNK_DATA;
        }
        return -1;
    }
    if (p->chunk_after_digits == 2) /* inside extensions: any field character */
        return is_field_char(c) ? -1 : fail(p, HTTPC_E_BAD_CHUNK_SIZE);
    int h = hex_value(c);
    if (h >= 0 && p->chunk_after_digits == 0) {
        if (p->chunk_digits >= 16)
            return fail(p, HTTPC_E_CHUNK_TOO_LARGE);
        p->chunk_digits++;
        p->remaining = p->remaining * 16 + (uint64_t)h;
        if (p->remaining > p->lim.max_chunk_size)
            return fail(p, HTTPC_E_CHUNK_TOO_LARGE);
        return -1;
    }
    if (p->chunk_digits == 0)
        return fail(p, HTTPC_E_BAD_CHUNK_SIZE);
    if (is_ows(c)) { /* BWS before ';' */
        p->chunk_after_digits = 1;
        return -1;
    }
    if (c == ';') {
        p->chunk_after_digits = 2;
        return -1;
    }
    return fail(p, HTTPC_E_BAD_CHUNK_SIZE);
}

/* One byte of the trailer section (skipped, only checked and bounded). */
static int trailer_byte(struct hrp *p, unsigned char c)
{
    if (++p->trailer_bytes > p->lim.max_trailer_bytes)
        return fail(p, HTTPC_E_BAD_TRAILER);
    if (p->saw_cr && c != '\n')
        return fail(p, HTTPC_E_BAD_TRAILER);
    if (c == '\r') {
        p->saw_cr = 1;
        return -1;
    }
    if (c == '\n') {
        p->saw_cr = 0;
        if (p->line_len == 0) {
            p->state = S_DONE;
            return HRP_DONE;
        }
        p->line_len = 0;
        return -1;
    }
    if (p->line_len == 0 && is_ows(c))
        return fail(p, HTTPC_E_BAD_TRAILER); /* obs-fold */
    if (!is_field_char(c))
        return fail(p, HTTPC_E_BAD_TRAILER);
    p->line_len++;
    return -1;
}

/* Parses input up to the next event: the head, a run of body data, or the end of the response. */
enum hrp_event hrp_execute(struct hrp *p, const uint8_t *in, size_t len, size_t max_data, size_t *consumed,
                           const uint8_t **data, size_t *data_len)
{
    size_t i = 0;
    int ev = -1;
    *data = NULL;
    *data_len = 0;
    while (ev < 0) {
        switch (p->state) {
        case S_ERROR:
            *consumed = i;
            return HRP_ERROR;
        case S_DONE:
            *consumed = i;
            return HRP_DONE;
        case S_BODY_LENGTH:
        case S_CHUNK_DATA:
        case S_BODY_CLOSE: {
            if (p->state == S_BODY_LENGTH && p->remaining == 0) {
                p->state = S_DONE;
                continue;
            }
            if (i == len) {
                ev = HRP_NEED_MORE;
                break;
            }
            if (max_data == 0) {
                ev = HRP_PAUSE;
                break;
            }
            size_t n = len - i;
            if (n > max_data)
                n = max_data;
            if (p->state != S_BODY_CLOSE && n > p->remaining)
                n = (size_t)p->remaining;
            *data = in + i;
            *data_len = n;
            i += n;
            p->body_bytes += n;
            if (p->state != S_BODY_CLOSE) {
                p->remaining -= n;
                if (p->remaining == 0 && p->state == S_BODY_LENGTH)
                    p->state = S_DONE;
                else if (p->remaining == 0)
                    p->state = S_CHUNK_DATA_END;
            }
            ev = HRP_DATA;
            break;
        }
        default:
            if (i == len) {
                ev = HRP_NEED_MORE;
                break;
            }
            {
                unsigned char c = in[i++];
                if (p->state == S_STATUS || p->state == S_FIELD) {
                    p->head_bytes_seen++;
                    if (p->saw_cr && c != '\n') {
                        ev = fail(p, p->state == S_STATUS ? HTTPC_E_BAD_STATUS_LINE : HTTPC_E_BAD_HEADER);
                    } else if (c == '\r') {
                        p->saw_cr = 1;
                    } else if (c == '\n') {
                        p->saw_cr = 0;
                        ev = head_line_done(p);
                    } else if (p->head_len + 1 >= p->lim.max_head_bytes) {
                        ev = fail(p, HTTPC_E_HEAD_TOO_LARGE);
                    } else if (c == '\0') {
                        ev = fail(p, p->state == S_STATUS ? HTTPC_E_BAD_STATUS_LINE : HTTPC_E_BAD_HEADER);
                    } else {
                        p->head[p->head_len++] = (char)c;
                    }
                } else if (p->state == S_CHUNK_SIZE) {
                    ev = chunk_size_byte(p, c);
                } else if (p->state == S_CHUNK_DATA_END) {
                    if (p->saw_cr && c != '\n') {
                        ev = fail(p, HTTPC_E_BAD_CHUNK);
                    } else if (c == '\r') {
                        p->saw_cr = 1;
                    } else if (c == '\n') {
                        p->saw_cr = 0;
                        start_chunk_line(p);
                    } else {
                        ev = fail(p, HTTPC_E_BAD_CHUNK);
                    }
                } else if (p->state == S_TRAILER) {
                    ev = trailer_byte(p, c);
                }
            }
            break;
        }
    }
    *consumed = i;
    return (enum hrp_event)ev;
}

enum hrp_event hrp_finish(struct hrp *p)
{
    switch (p->state) {
    case S_DONE:
        return HRP_DONE;
    case S_ERROR:
        return HRP_ERROR;
    case S_BODY_CLOSE:
        p->state = S_DONE;
        return HRP_DONE;
    case S_STATUS:
    case S_FIELD:
        fail(p, p->head_bytes_seen == 0 ? HTTPC_E_EMPTY_REPLY : HTTPC_E_TRUNCATED_HEAD);
        return HRP_ERROR;
    default:
        fail(p, HTTPC_E_TRUNCATED_BODY);
        return HRP_ERROR;
    }
}

httpc_error hrp_error(const struct hrp *p)
{
    return p->state == S_ERROR ? p->err : HTTPC_OK;
}

int hrp_done(const struct hrp *p)
{
    return p->state == S_DONE;
}

int hrp_head_complete(const struct hrp *p)
{
    return p->state >= S_BODY_LENGTH && p->state <= S_DONE;
}

int hrp_final_started(const struct hrp *p)
{
    if (p->state == S_FIELD)
        return p->status >= 200 || p->status == 101;
    return p->state >= S_BODY_LENGTH && p->state <= S_DONE;
}

int hrp_status(const struct hrp *p)
{
    return p->status;
}

int hrp_version_minor(const struct hrp *p)
{
    return p->version_minor;
}

enum hrp_body_kind hrp_body_kind(const struct hrp *p)
{
    return p->body;
}

uint64_t hrp_content_length(const struct hrp *p)
{
    return p->content_length;
}

int hrp_keep_alive(const struct hrp *p)
{
    return p->keep_alive && p->body != HRP_BODY_CLOSE;
}

size_t hrp_field_count(const struct hrp *p)
{
    return p->nfields;
}

void hrp_field(const struct hrp *p, size_t i, const char **name, size_t *name_len, const char **value,
               size_t *value_len)
{
    const struct hrp_field *f = &p->fields[i];
    *name = p->head + f->name_off;
    *name_len = f->name_len;
    *value = p->head + f->value_off;
    *value_len = f->value_len;
}

const char *hrp_field_value(const struct hrp *p, const char *name)
{
    for (size_t i = 0; i < p->nfields; i++) {
        const struct hrp_field *f = &p->fields[i];
        if (eq_nocase(p->head + f->name_off, f->name_len, name))
            return p->head + f->value_off;
    }
    return NULL;
}

struct ka_timeout {
    long seconds;
};

static void ka_param(const char *t, size_t n, void *arg)
{
    struct ka_timeout *ka = arg;
    if (n > 8 && strncasecmp(t, "timeout=", 8) == 0) {
        long v = 0;
        for (size_t i = 8; i < n; i++) {
            if (t[i] < '0' || t[i] > '9' || v > 1000000)
                return;
            v = v * 10 + (t[i] - '0');
        }
        ka->seconds = v;
    }
}

long hrp_keep_alive_timeout(const struct hrp *p)
{
    struct ka_timeout ka = {-1};
    for (size_t i = 0; i < p->nfields; i++) {
        const struct hrp_field *f = &p->fields[i];
        if (eq_nocase(p->head + f->name_off, f->name_len, "keep-alive"))
            each_list_element(p->head + f->value_off, f->value_len, ka_param, &ka);
    }
    return ka.seconds;
}
