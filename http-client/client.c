/* The client: requests, responses and the connection reuse rules.
 *
 * A connection goes back to the pool only when all of these hold at the exact
 * end of the response body:
 *   - the whole request was sent (no early response to an unfinished upload)
 *   - the response allows it: HTTP/1.1 without a "close" token, or HTTP/1.0
 *     with "keep-alive"; a framed body (Content-Length, chunked, or none)
 *   - nothing follows the body: no excess bytes in our buffer, none in OpenSSL's,
 *     none readable on the socket, no EOF, no close_notify (conn_idle_alive)
 * and it is checked again (conn_idle_alive) before it is reused. Anything else
 * closes it: an error, a truncated body, a body the caller abandons. */
#include "httpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "connection.h"
#include "http_response_parser.h"
#include "pool.h"
#include "url.h"

struct httpc_client {
    struct httpc_config cfg;
    SSL_CTX *ctx;
    struct pool pool;
    pthread_mutex_t stats_mu;
    unsigned long connects, reuses, retries;
};

struct httpc_response {
    httpc_client *cl;
    struct conn *conn; /* NULL once pooled or closed */
    char key[POOL_MAX_KEY];
    struct hrp p;
    uint64_t deadline;
    uint64_t resp_bytes; /* bytes of response received on this attempt */
    int reused;
    int no_reuse; /* the request was not sent whole, or asked for close */
    int body_done;
    int failed;
    httpc_error err;
};

static const char *const error_text[HTTPC_E__COUNT] = {
    [HTTPC_OK] = "no error",
    [HTTPC_E_NOMEM] = "out of memory",
    [HTTPC_E_INVALID] = "invalid argument",
    [HTTPC_E_URL] = "malformed URL",
    [HTTPC_E_SCHEME] = "unsupported URL scheme (http and https only)",
    [HTTPC_E_RESOLVE] = "could not resolve host",
    [HTTPC_E_CONNECT] = "could not connect",
    [HTTPC_E_TIMEOUT] = "timed out",
    [HTTPC_E_TLS_INIT] = "TLS setup failed",
    [HTTPC_E_TLS_HANDSHAKE] = "TLS handshake failed",
    [HTTPC_E_TLS_VERIFY] = "TLS certificate verification failed",
    [HTTPC_E_TLS] = "TLS error",
    [HTTPC_E_TLS_TRUNCATED] = "TLS connection closed without close_notify (body may be truncated)",
    [HTTPC_E_SEND] = "failed to send the request",
    [HTTPC_E_RECV] = "failed to receive the response (connection reset)",
    [HTTPC_E_EMPTY_REPLY] = "connection closed without a response (empty reply)",
    [HTTPC_E_TRUNCATED_HEAD] = "connection closed inside the response head",
    [HTTPC_E_TRUNCATED_BODY] = "connection closed before the end of the body (truncated)",
    [HTTPC_E_BAD_STATUS_LINE] = "malformed status line",
    [HTTPC_E_BAD_VERSION] = "unsupported HTTP version",
    [HTTPC_E_BAD_HEADER] = "malformed header field",
    [HTTPC_E_OBS_FOLD] = "obsolete header line folding",
    [HTTPC_E_HEAD_TOO_LARGE] = "response head too large",
    [HTTPC_E_TOO_MANY_HEADERS] = "too many header fields",
    [HTTPC_E_BAD_CONTENT_LENGTH] = "invalid Content-Length",
    [HTTPC_E_CONFLICTING_CONTENT_LENGTH] = "conflicting Content-Length values",
    [HTTPC_E_CL_AND_TE] = "both Content-Length and Transfer-Encoding",
    [HTTPC_E_UNSUPPORTED_TE] = "unsupported Transfer-Encoding",
    [HTTPC_E_TE_IN_HTTP10] = "Transfer-Encoding in an HTTP/1.0 response",
    [HTTPC_E_BAD_CHUNK_SIZE] = "malformed chunk size",
    [HTTPC_E_CHUNK_TOO_LARGE] = "chunk size too large",
    [HTTPC_E_BAD_CHUNK] = "chunk data not followed by CRLF",
    [HTTPC_E_BAD_TRAILER] = "malformed or oversized trailer section",
    [HTTPC_E_TOO_MANY_INTERIM] = "too many 1xx informational responses",
    [HTTPC_E_BAD_REQUEST] = "request header name or value not allowed",
};

const char *httpc_strerror(httpc_error e)
{
    if ((unsigned)e >= HTTPC_E__COUNT || !error_text[e])
        return "unknown error";
    return error_text[e];
}

void httpc_config_default(struct httpc_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_idle_per_host = 6;
    cfg->max_idle_total = 64;
    cfg->idle_timeout_ms = 90000;
    cfg->connect_timeout_ms = 10000;
    cfg->timeout_ms = 10000;
    cfg->max_retries = 1;
}

static void pool_close_conn(void *c)
{
    conn_close(c);
}

/* Makes a client: its TLS context (verification on) and its idle pool. */
httpc_client *httpc_client_new(const struct httpc_config *cfg, httpc_error *err)
{
    httpc_error e = HTTPC_E_NOMEM;
    httpc_client *cl = calloc(1, sizeof(*cl));
    if (!cl)
        goto fail;
    if (cfg)
        cl->cfg = *cfg;
    else
        httpc_config_default(&cl->cfg);
    if (cl->cfg.max_idle_total < cl->cfg.max_idle_per_host)
        cl->cfg.max_idle_total = cl->cfg.max_idle_per_host;
    cl->cfg.cacert = NULL; /* not kept: only used below */
    e = HTTPC_E_TLS_INIT;
    cl->ctx = SSL_CTX_new(TLS_client_method());
    if (!cl->ctx)
        goto fail_free;
    SSL_CTX_set_min_proto_version(cl->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(cl->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (cfg && cfg->cacert) {
        if (SSL_CTX_load_verify_locations(cl->ctx, cfg->cacert, NULL) != 1)
            goto fail_ctx;
    } else if (SSL_CTX_set_default_verify_paths(cl->ctx) != 1) {
        goto fail_ctx;
    }
    e = HTTPC_E_NOMEM;
    if (pthread_mutex_init(&cl->stats_mu, NULL) != 0)
        goto fail_ctx;
    if (pool_init(&cl->pool, cl->cfg.max_idle_per_host, cl->cfg.max_idle_total, cl->cfg.idle_timeout_ms,
                  pool_close_conn) != 0) {
        pthread_mutex_destroy(&cl->stats_mu);
        goto fail_ctx;
    }
    if (err)
        *err = HTTPC_OK;
    return cl;
fail_ctx:
    ERR_clear_error();
    SSL_CTX_free(cl->ctx);
fail_free:
    free(cl);
fail:
    if (err)
        *err = e;
    return NULL;
}

void httpc_client_free(httpc_client *cl)
{
    if (!cl)
        return;
    pool_destroy(&cl->pool);
    pthread_mutex_destroy(&cl->stats_mu);
    SSL_CTX_free(cl->ctx);
    free(cl);
}

void httpc_client_close_idle(httpc_client *cl)
{
    pool_close_all(&cl->pool);
}

void httpc_client_stats(httpc_client *cl, struct httpc_stats *out)
{
    pthread_mutex_lock(&cl->stats_mu);
    out->connects = cl->connects;
    out->reuses = cl->reuses;
    out->retries = cl->retries;
    pthread_mutex_unlock(&cl->stats_mu);
    out->idle = pool_idle(&cl->pool, NULL);
}

static void count(httpc_client *cl, unsigned long *counter)
{
    pthread_mutex_lock(&cl->stats_mu);
    (*counter)++;
    pthread_mutex_unlock(&cl->stats_mu);
}

/* ---- building the request ---- */

static int is_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c && strchr("!#$%&'*+-.^_`|~", c));
        if (!ok)
            return 0;
    }
    return 1;
}

static int is_value(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c != '\t' && (c < 0x20 || c == 0x7f))
            return 0;
    }
    return 1;
}

static int method_is(const char *m, const char *what)
{
    return strcmp(m, what) == 0;
}

static int is_idempotent(const struct httpc_request *req)
{
    static const char *const safe[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
        if (method_is(req->method, safe[i]))
            return 1;
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, "Idempotency-Key") == 0 ||
            strcasecmp(req->headers[i].name, "X-Idempotency-Key") == 0)
            return 1;
    return 0;
}

struct strbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sb_add(struct strbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 512);
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static httpc_error build_head(const struct httpc_request *req, const struct url *u, struct strbuf *b,
                              int *asks_close)
{
    int has_host = 0, has_ua = 0;
    *asks_close = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct httpc_header *h = &req->headers[i];
        if (!h->name || !h->value || !is_token(h->name) || !is_value(h->value))
            return HTTPC_E_BAD_REQUEST;
        if (strcasecmp(h->name, "Content-Length") == 0 || strcasecmp(h->name, "Transfer-Encoding") == 0)
            return HTTPC_E_BAD_REQUEST; /* the client frames the body itself */
        if (strcasecmp(h->name, "Host") == 0)
            has_host = 1;
        if (strcasecmp(h->name, "User-Agent") == 0)
            has_ua = 1;
        if (strcasecmp(h->name, "Connection") == 0 && strcasestr(h->value, "close"))
            *asks_close = 1;
    }
    char authority[URL_MAX_HOST + 16];
    url_authority(u, authority, sizeof(authority));
    sb_add(b, req->method);
    sb_add(b, " ");
    sb_add(b, u->target);
    sb_add(b, " HTTP/1.1\r\n");
    if (!has_host) {
        sb_add(b, "Host: ");
        sb_add(b, authority);
        sb_add(b, "\r\n");
    }
    if (!has_ua)
        sb_add(b, "User-Agent: fcgispec-http-client/1\r\n");
    for (size_t i = 0; i < req->nheaders; i++) {
        sb_add(b, req->headers[i].name);
        sb_add(b, ": ");
        sb_add(b, req->headers[i].value);
        sb_add(b, "\r\n");
    }
    if (req->body_len > 0 || method_is(req->method, "POST") || method_is(req->method, "PUT") ||
        method_is(req->method, "PATCH")) {
        char cl[48];
        snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", req->body_len);
        sb_add(b, cl);
    }
    sb_add(b, "\r\n");
    return b->oom ? HTTPC_E_NOMEM : HTTPC_OK;
}

/* ---- reading the response ---- */

static void release_or_close(struct httpc_response *r)
{
    struct conn *c = r->conn;
    r->conn = NULL;
    r->body_done = 1;
    if (!c)
        return;
    if (r->no_reuse || !hrp_keep_alive(&r->p) || !conn_idle_alive(c)) {
        conn_close(c);
        return;
    }
    uint64_t max_idle = 0;
    long ka = hrp_keep_alive_timeout(&r->p);
    if (ka == 0) {
        conn_close(c);
        return;
    }
    if (ka > 0) { /* expire before the server does: a margin of half, at most 1 s */
        uint64_t ms = (uint64_t)ka * 1000u;
        max_idle = ms - (ms / 2 < 1000 ? ms / 2 : 1000);
    }
    pool_put(&r->cl->pool, r->key, c, conn_now_ms(), max_idle);
}

static void fail_response(struct httpc_response *r, httpc_error e)
{
    r->failed = 1;
    r->err = e;
    conn_close(r->conn);
    r->conn = NULL;
}

/* Runs the parser over buffered bytes, reading more as needed. Returns the
 * first event other than HRP_NEED_MORE; with block == 0 it returns
 * HRP_NEED_MORE instead of waiting. On HRP_ERROR, r->err says why. */
static enum hrp_event drive(struct httpc_response *r, size_t max_data, const uint8_t **data, size_t *dlen,
                            int block)
{
    struct conn *c = r->conn;
    for (;;) {
        size_t used;
        enum hrp_event ev = hrp_execute(&r->p, c->rbuf + c->rpos, c->rend - c->rpos, max_data, &used, data, dlen);
        c->rpos += used;
        if (ev == HRP_ERROR) {
            r->err = hrp_error(&r->p);
            return ev;
        }
        if (ev != HRP_NEED_MORE)
            return ev;
        /* Everything buffered was consumed; *data (if any) is not pending. */
        c->rpos = c->rend = 0;
        size_t n;
        enum conn_io io = conn_read_some(c, c->rbuf, CONN_RBUF_SIZE, &n);
        switch (io) {
        case CONN_IO_OK:
            c->rend = n;
            r->resp_bytes += n;
            continue;
        case CONN_IO_WANT_READ:
        case CONN_IO_WANT_WRITE: {
            if (!block)
                return HRP_NEED_MORE;
            int rd, wr;
            int w = conn_wait(c, io == CONN_IO_WANT_READ, io == CONN_IO_WANT_WRITE, r->deadline, &rd, &wr);
            if (w <= 0) {
                r->err = w == 0 ? HTTPC_E_TIMEOUT : HTTPC_E_RECV;
                return HRP_ERROR;
            }
            continue;
        }
        case CONN_IO_EOF_UNCLEAN:
            if (hrp_head_complete(&r->p) && hrp_body_kind(&r->p) == HRP_BODY_CLOSE && !hrp_done(&r->p)) {
                r->err = HTTPC_E_TLS_TRUNCATED;
                return HRP_ERROR;
            }
            /* fall through */
        case CONN_IO_EOF:
            ev = hrp_finish(&r->p);
            if (ev == HRP_ERROR)
                r->err = hrp_error(&r->p);
            return ev;
        case CONN_IO_ERROR:
        default:
            r->err = c->ssl && r->resp_bytes > 0 ? HTTPC_E_TLS : HTTPC_E_RECV;
            return HRP_ERROR;
        }
    }
}

/* After the head or a piece of body: if the message can complete from bytes
 * already here (framing only, no body bytes), complete it and release. */
static void advance(struct httpc_response *r)
{
    const uint8_t *d;
    size_t dl;
    if (!r->conn || r->body_done || r->failed)
        return;
    enum hrp_event ev = drive(r, 0, &d, &dl, 0);
    if (ev == HRP_DONE)
        release_or_close(r);
    else if (ev == HRP_ERROR)
        fail_response(r, r->err);
}

/* Writes the request; watches for an early response meanwhile. Returns
 * HTTPC_OK when the request is out or an early final response has begun. */
static httpc_error send_request(struct httpc_response *r, const char *head, size_t hlen, const void *body,
                                size_t blen, size_t *written)
{
    struct conn *c = r->conn;
    size_t total = hlen + blen;
    *written = 0;
    while (*written < total) {
        const char *p;
        size_t n;
        if (*written < hlen) {
            p = head + *written;
            n = hlen - *written;
        } else {
            p = (const char *)body + (*written - hlen);
            n = total - *written;
        }
        size_t done;
        enum conn_io io = conn_write_some(c, p, n, &done);
        if (io == CONN_IO_OK) {
            *written += done;
            continue;
        }
        if (io == CONN_IO_ERROR || io == CONN_IO_EOF || io == CONN_IO_EOF_UNCLEAN) {
            /* The server may have answered and closed (an early response):
             * a response already here wins over the write error. */
            r->no_reuse = 1;
            const uint8_t *d;
            size_t dl;
            enum hrp_event ev = drive(r, 0, &d, &dl, 1);
            if (ev == HRP_HEADERS)
                return HTTPC_OK;
            return r->resp_bytes > 0 ? r->err : HTTPC_E_SEND;
        }
        int rd, wr;
        int w = conn_wait(c, 1, io == CONN_IO_WANT_WRITE, r->deadline, &rd, &wr);
        if (w == 0)
            return HTTPC_E_TIMEOUT;
        if (w < 0)
            return HTTPC_E_SEND;
        if (rd) {
            const uint8_t *d;
            size_t dl;
            enum hrp_event ev = drive(r, 0, &d, &dl, 0);
            if (ev == HRP_ERROR)
                return r->err;
            if (ev == HRP_HEADERS || hrp_final_started(&r->p)) {
                r->no_reuse = 1; /* early final response: stop sending, never reuse */
                return HTTPC_OK;
            }
        }
    }
    return HTTPC_OK;
}

static struct conn *take_live(httpc_client *cl, const char *key)
{
    for (;;) {
        struct conn *c = pool_take(&cl->pool, key, conn_now_ms());
        if (!c)
            return NULL;
        if (conn_idle_alive(c))
            return c;
        conn_close(c);
    }
}

static void response_free(struct httpc_response *r)
{
    conn_close(r->conn);
    hrp_free(&r->p);
    free(r);
}

/* A failure that a fresh connection may cure: the reused one died. */
static int is_dead_connection_error(httpc_error e)
{
    return e == HTTPC_E_EMPTY_REPLY || e == HTTPC_E_RECV || e == HTTPC_E_SEND || e == HTTPC_E_TLS ||
           e == HTTPC_E_TLS_TRUNCATED;
}

/* Sends a request and reads the response head; one failed on a dead pooled connection is retried on a new one. */
httpc_error httpc_request(httpc_client *cl, const struct httpc_request *req, httpc_response **out,
                          struct httpc_request_info *info)
{
    struct httpc_request_info scratch;
    if (!info)
        info = &scratch;
    memset(info, 0, sizeof(*info));
    *out = NULL;
    if (!cl || !req || !req->method || !req->url || !is_token(req->method) || (req->body_len && !req->body))
        return HTTPC_E_INVALID;
    struct url u;
    httpc_error e = url_parse(req->url, &u);
    if (e != HTTPC_OK)
        return e;
    struct strbuf head = {0};
    int asks_close;
    e = build_head(req, &u, &head, &asks_close);
    if (e != HTTPC_OK) {
        free(head.p);
        return e;
    }
    char key[POOL_MAX_KEY];
    url_origin(&u, key, sizeof(key));
    int idempotent = is_idempotent(req);
    int is_head = method_is(req->method, "HEAD");
    uint64_t deadline = conn_now_ms() + cl->cfg.timeout_ms;

    for (unsigned attempt = 0;; attempt++) {
        struct httpc_response *r = calloc(1, sizeof(*r));
        if (!r || hrp_init(&r->p, NULL, is_head) != 0) {
            free(r);
            e = HTTPC_E_NOMEM;
            break;
        }
        r->cl = cl;
        r->deadline = deadline;
        r->no_reuse = asks_close;
        snprintf(r->key, sizeof(r->key), "%s", key);
        /* A retry always goes on a fresh connection. */
        r->conn = attempt == 0 ? take_live(cl, key) : NULL;
        info->reused = r->conn != NULL;
        if (r->conn) {
            r->reused = 1;
            count(cl, &cl->reuses);
        } else {
            uint64_t cd = conn_now_ms() + cl->cfg.connect_timeout_ms;
            struct in_addr v4;
            int is_ip = u.host_is_ipv6 || inet_pton(AF_INET, u.host, &v4) == 1;
            e = conn_open(&r->conn, u.host, u.port, u.tls ? cl->ctx : NULL, is_ip, cd < deadline ? cd : deadline);
            if (e != HTTPC_OK) {
                response_free(r);
                break;
            }
            count(cl, &cl->connects);
        }
        r->conn->requests++;
        size_t written = 0;
        e = send_request(r, head.p, head.len, req->body, req->body_len, &written);
        if (e == HTTPC_OK && !hrp_head_complete(&r->p)) {
            const uint8_t *d;
            size_t dl;
            enum hrp_event ev = drive(r, 0, &d, &dl, 1);
            if (ev != HRP_HEADERS)
                e = r->err ? r->err : HTTPC_E_RECV;
        }
        if (e == HTTPC_OK) {
            if (written < head.len + req->body_len)
                r->no_reuse = 1;
            advance(r); /* a bodiless response releases the connection now */
            *out = r;
            break;
        }
        int retry = r->reused && r->resp_bytes == 0 && (idempotent || written == 0) &&
                    is_dead_connection_error(e) && attempt < cl->cfg.max_retries && conn_now_ms() < deadline;
        response_free(r);
        if (!retry)
            break;
        info->retries++;
        count(cl, &cl->retries);
    }
    free(head.p);
    return e;
}

int httpc_response_status(const httpc_response *r)
{
    return hrp_status(&r->p);
}

int httpc_response_version_minor(const httpc_response *r)
{
    return hrp_version_minor(&r->p);
}

const char *httpc_response_header(const httpc_response *r, const char *name)
{
    return hrp_field_value(&r->p, name);
}

int httpc_response_reused(const httpc_response *r)
{
    return r->reused;
}

/* Reads body bytes; the connection goes back to the pool once the body is complete. */
ssize_t httpc_response_read(httpc_response *r, void *buf, size_t len, httpc_error *err)
{
    if (r->failed) {
        if (err)
            *err = r->err;
        return -1;
    }
    if (r->body_done || !r->conn || len == 0)
        return 0;
    const uint8_t *d;
    size_t dl;
    enum hrp_event ev = drive(r, len, &d, &dl, 1);
    if (ev == HRP_DATA) {
        memcpy(buf, d, dl);
        advance(r); /* the read that completes the body releases the connection */
        return (ssize_t)dl;
    }
    if (ev == HRP_DONE) {
        release_or_close(r);
        return 0;
    }
    fail_response(r, ev == HRP_ERROR ? r->err : HTTPC_E_RECV);
    if (err)
        *err = r->err;
    return -1;
}

void httpc_response_free(httpc_response *r)
{
    if (!r)
        return;
    /* An unfinished body: finish it only if that needs no body byte and no
     * wait; otherwise the connection is closed, never pooled with unread data. */
    advance(r);
    response_free(r);
}
