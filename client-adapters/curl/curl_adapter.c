/* fcgispec-curl-adapter: the client adapter line protocol on libcurl.
 *
 * One CURLM multi handle is kept for the adapter's life: its connection cache is the pool, so connections are
 * reused between request lines exactly as in a program that drives libcurl's multi interface. Every request line
 * gets its own easy handle (the multi's cache is what is shared); a CURLSH share handle shares the DNS cache and
 * TLS sessions between them, as the curl tool does.
 *
 *   fcgispec-curl-adapter [--cacert PATH] [--max-idle-per-host N] [--timeout SECONDS]
 *
 * Input lines (one JSON line out per request line, flushed, in order):
 *   METHOD URL [BODYLEN] [Name:Value]...   BODYLEN only for POST, PUT, PATCH ('x' bytes)
 *   ABANDON URL N      GET; the write callback takes N body bytes, then aborts the transfer
 *   CONCURRENT K       the next K request lines run at once on the multi handle; results in input order
 *   SLEEP MS           no output
 *   CLOSE_IDLE         libcurl has no call that closes only the idle connections of a multi handle: the multi
 *                      handle (idle, since no transfer is running between lines) is cleaned up and a new one made,
 *                      which closes every cached connection; no output
 * Output: {"status": 200, "body_length": 3, "body_sha256": "...", "error": null, "reused": false, "connects": 1}
 *   reused: CURLINFO_NUM_CONNECTS == 0 for the transfer; connects: sum of CURLINFO_NUM_CONNECTS so far.
 * The lines are read, parsed and printed by http-client/adapter-protocol (shared with fcgispec-http-client adapter).
 *
 * --max-idle-per-host N sets CURLMOPT_MAXCONNECTS (the multi-handle form of CURLOPT_MAXCONNECTS, which has no
 * effect on easy handles driven by a multi handle). libcurl has no per-host idle limit: MAXCONNECTS bounds the whole
 * connection cache (all hosts, in use and idle); when a finished transfer leaves it over the bound, libcurl closes
 * the oldest idle connection. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "adapter_protocol.h"

struct cfg {
    const char *cacert;
    long max_connects; /* 0: libcurl's default */
    long timeout_ms;
};

static struct cfg g_cfg = {NULL, 0, 10000};
static CURLM *g_multi;
static CURLSH *g_share;
static unsigned long g_connects;

/* One request line's transfer: the libcurl side of an adapter_job. */
struct xfer {
    struct adapter_job *job;
    struct curl_slist *headers;
    CURL *easy;
    char *body;
    EVP_MD_CTX *md;
    int abandoned; /* the write callback stopped the transfer on purpose */
    int done;
    char errbuf[CURL_ERROR_SIZE];
};

static void usage(void)
{
    fprintf(stderr, "usage: fcgispec-curl-adapter [--cacert PATH] [--max-idle-per-host N] [--timeout SECONDS]\n");
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct xfer *x = userp;
    size_t n = size * nmemb;
    size_t take = adapter_body_want(x->job, n);
    if (take) {
        EVP_DigestUpdate(x->md, data, take);
        x->job->res.body_length += take;
    }
    if (take < n) {
        x->abandoned = 1;
        return 0; /* CURLE_WRITE_ERROR: the caller drops the rest of the body */
    }
    return n;
}

/* The request's headers as libcurl wants them; 0, or -1 when out of memory. */
static int xfer_headers(struct xfer *x)
{
    const struct adapter_request *r = &x->job->req;
    for (size_t i = 0; i < r->nheaders; i++) {
        char hdr[1024];
        if (r->headers[i].value[0] == '\0') /* "Name;" is how libcurl sends a header with an empty value */
            snprintf(hdr, sizeof(hdr), "%s;", r->headers[i].name);
        else
            snprintf(hdr, sizeof(hdr), "%s: %s", r->headers[i].name, r->headers[i].value);
        struct curl_slist *l = curl_slist_append(x->headers, hdr);
        if (!l)
            return -1;
        x->headers = l;
    }
    return 0;
}

/* Ends a transfer that never started, with its error. */
static void xfer_fail(struct xfer *x, const char *error)
{
    adapter_result_error(&x->job->res, "%s", error);
    x->done = 1;
    x->job->res.connects = g_connects;
}

/* Prepares the easy handle and adds it to the multi handle; on failure x->done is set with the error. */
static void xfer_start(struct xfer *x)
{
    const struct adapter_request *r = &x->job->req;
    if (r->parse_error) {
        xfer_fail(x, r->parse_error);
        return;
    }
    if (xfer_headers(x) != 0) {
        xfer_fail(x, "adapter: out of memory");
        return;
    }
    x->md = EVP_MD_CTX_new();
    x->easy = curl_easy_init();
    if (!x->md || !x->easy) {
        xfer_fail(x, "adapter: out of memory");
        return;
    }
    EVP_DigestInit_ex(x->md, EVP_sha256(), NULL);
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, g_share);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, g_cfg.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, g_cfg.timeout_ms);
    if (g_cfg.cacert)
        curl_easy_setopt(e, CURLOPT_CAINFO, g_cfg.cacert);
    if (x->headers)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    if (strcmp(r->method, "GET") == 0) {
        /* the default */
    } else if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (adapter_method_has_body(r->method)) {
        x->body = malloc(r->body_len ? r->body_len : 1);
        if (!x->body) {
            xfer_fail(x, "adapter: out of memory");
            return;
        }
        memset(x->body, 'x', r->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
        if (strcmp(r->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
    CURLMcode mc = curl_multi_add_handle(g_multi, e);
    if (mc != CURLM_OK) {
        adapter_result_error(&x->job->res, "adapter: curl_multi_add_handle: %s", curl_multi_strerror(mc));
        x->done = 1;
        x->job->res.connects = g_connects;
    }
}

static void xfer_finish(struct xfer *x, CURLcode rc)
{
    struct adapter_result *res = &x->job->res;
    long nconn = 0;
    curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &nconn);
    g_connects += (unsigned long)nconn;
    res->connects = g_connects;
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    /* A transfer that never got a connection has no "reused" to tell. */
    if (nconn > 0 || code > 0)
        res->reused = nconn == 0;
    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && x->abandoned)) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int dl = 0;
        EVP_DigestFinal_ex(x->md, d, &dl);
        adapter_result_sha256(res, d, dl);
        res->status = code;
    } else if (x->errbuf[0]) {
        adapter_result_error(res, "curl error %d: %s: %s", (int)rc, curl_easy_strerror(rc), x->errbuf);
    } else {
        adapter_result_error(res, "curl error %d: %s", (int)rc, curl_easy_strerror(rc));
    }
    curl_multi_remove_handle(g_multi, x->easy);
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    x->done = 1;
}

static void xfer_free(struct xfer *x)
{
    if (x->easy) {
        curl_multi_remove_handle(g_multi, x->easy);
        curl_easy_cleanup(x->easy);
    }
    EVP_MD_CTX_free(x->md);
    curl_slist_free_all(x->headers);
    free(x->body);
}

/* adapter_ops.run: the transfers of jobs[0..n) at once on the multi handle until all are done. */
static void run_batch(void *ctx, struct adapter_job *jobs, size_t n)
{
    (void)ctx;
    struct xfer *xs = calloc(n, sizeof(*xs));
    if (!xs) {
        for (size_t i = 0; i < n; i++) {
            adapter_result_error(&jobs[i].res, "adapter: out of memory");
            jobs[i].res.connects = g_connects;
        }
        return;
    }
    size_t pending = 0;
    for (size_t i = 0; i < n; i++) {
        xs[i].job = &jobs[i];
        xfer_start(&xs[i]);
        if (!xs[i].done)
            pending++;
    }
    while (pending) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(g_multi, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "fcgispec-curl-adapter: curl_multi_perform: %s\n", curl_multi_strerror(mc));
            exit(1);
        }
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(g_multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct xfer *x = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode rc = m->data.result;
            xfer_finish(x, rc);
            pending--;
        }
        if (pending)
            curl_multi_poll(g_multi, NULL, 0, 100, NULL);
    }
    for (size_t i = 0; i < n; i++)
        xfer_free(&xs[i]);
    free(xs);
}

static void multi_new(void)
{
    g_multi = curl_multi_init();
    if (!g_multi) {
        fprintf(stderr, "fcgispec-curl-adapter: curl_multi_init failed\n");
        exit(1);
    }
    if (g_cfg.max_connects > 0)
        curl_multi_setopt(g_multi, CURLMOPT_MAXCONNECTS, g_cfg.max_connects);
}

/* adapter_ops.close_idle: CLOSE_IDLE, as said at the top. */
static void close_idle(void *ctx)
{
    (void)ctx;
    curl_multi_cleanup(g_multi); /* closes every cached connection */
    multi_new();
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long v;
        if (!val) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(opt, "--cacert") == 0) {
            g_cfg.cacert = val;
        } else if (strcmp(opt, "--max-idle-per-host") == 0 && adapter_parse_uint(val, 100000, &v) == 0) {
            g_cfg.max_connects = v ? (long)v : 1; /* 0 would mean "libcurl's default" */
        } else if (strcmp(opt, "--timeout") == 0 && adapter_parse_seconds(val, &v) == 0) {
            g_cfg.timeout_ms = (long)v;
        } else {
            usage();
            return 2;
        }
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "fcgispec-curl-adapter: curl_global_init failed\n");
        return 1;
    }
    g_share = curl_share_init();
    curl_share_setopt(g_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(g_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    multi_new();

    static const struct adapter_ops ops = {"fcgispec-curl-adapter", run_batch, close_idle};
    int rc = adapter_serve(stdin, stdout, &ops, NULL);
    curl_multi_cleanup(g_multi);
    curl_share_cleanup(g_share);
    curl_global_cleanup();
    return rc;
}
