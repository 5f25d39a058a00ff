/* fcgispec-curl-adapter: the client adapter protocol (DESIGN.md "Client adapters") on libcurl.
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
 *
 * --max-idle-per-host N sets CURLMOPT_MAXCONNECTS (the multi-handle form of CURLOPT_MAXCONNECTS, which has no
 * effect on easy handles driven by a multi handle). libcurl has no per-host idle limit: MAXCONNECTS bounds the whole
 * connection cache (all hosts, in use and idle); when a finished transfer leaves it over the bound, libcurl closes
 * the oldest idle connection. */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#define MAX_HEADERS 32
#define MAX_CONCURRENT 256

struct cfg {
    const char *cacert;
    long max_connects; /* 0: libcurl's default */
    long timeout_ms;
};

static struct cfg g_cfg = {NULL, 0, 10000};
static CURLM *g_multi;
static CURLSH *g_share;
static unsigned long g_connects;

struct xfer {
    char *line; /* owns the tokens */
    const char *method, *url;
    size_t body_len;
    long abandon_after; /* -1: whole body */
    struct curl_slist *headers;
    const char *parse_error;

    CURL *easy;
    char *body;
    EVP_MD_CTX *md;
    unsigned long long body_length;
    int abandoned; /* the write callback stopped the transfer on purpose */
    int done;

    long status; /* -1: null */
    char sha256[65];
    char error[CURL_ERROR_SIZE + 128];
    char errbuf[CURL_ERROR_SIZE];
    int reused; /* -1: unknown */
    unsigned long connects;
};

static void usage(void)
{
    fprintf(stderr, "usage: fcgispec-curl-adapter [--cacert PATH] [--max-idle-per-host N] [--timeout SECONDS]\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    if (!s || !*s || !isdigit((unsigned char)s[0]))
        return -1;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || errno || v > max)
        return -1;
    *out = v;
    return 0;
}

static int is_method(const char *m)
{
    static const char *const methods[] = {"GET", "HEAD", "DELETE", "OPTIONS", "PUT", "POST", "PATCH", "TRACE"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(m, methods[i]) == 0)
            return 1;
    return 0;
}

static int has_body_arg(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

static void xfer_parse(struct xfer *x, char *line)
{
    memset(x, 0, sizeof(*x));
    x->line = line;
    x->status = -1;
    x->reused = -1;
    x->abandon_after = -1;
    char *tok[3 + MAX_HEADERS];
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (n == sizeof(tok) / sizeof(tok[0])) {
            x->parse_error = "adapter: too many tokens";
            return;
        }
        tok[n++] = t;
    }
    if (n < 2) {
        x->parse_error = "adapter: malformed request line";
        return;
    }
    size_t next = 2;
    unsigned long v;
    if (strcmp(tok[0], "ABANDON") == 0) {
        if (n != 3 || parse_uint(tok[2], 1ul << 40, &v) != 0) {
            x->parse_error = "adapter: ABANDON URL N";
            return;
        }
        x->method = "GET";
        x->abandon_after = (long)v;
        next = 3;
    } else if (is_method(tok[0])) {
        x->method = tok[0];
        if (has_body_arg(tok[0]) && n > 2 && strchr(tok[2], ':') == NULL) {
            if (parse_uint(tok[2], 1ul << 32, &v) != 0) {
                x->parse_error = "adapter: bad BODYLEN";
                return;
            }
            x->body_len = v;
            next = 3;
        }
    } else {
        x->parse_error = "adapter: unknown command";
        return;
    }
    x->url = tok[1];
    for (size_t i = next; i < n; i++) {
        char *colon = strchr(tok[i], ':');
        if (!colon || colon == tok[i]) {
            x->parse_error = "adapter: header token must be Name:Value";
            return;
        }
        char hdr[1024];
        if (colon[1] == '\0') /* "Name;" is how libcurl sends a header with an empty value */
            snprintf(hdr, sizeof(hdr), "%.*s;", (int)(colon - tok[i]), tok[i]);
        else
            snprintf(hdr, sizeof(hdr), "%.*s: %s", (int)(colon - tok[i]), tok[i], colon + 1);
        struct curl_slist *l = curl_slist_append(x->headers, hdr);
        if (!l) {
            x->parse_error = "adapter: out of memory";
            return;
        }
        x->headers = l;
    }
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct xfer *x = userp;
    size_t n = size * nmemb;
    size_t take = n;
    if (x->abandon_after >= 0) {
        unsigned long long left = (unsigned long long)x->abandon_after - x->body_length;
        if (left < take)
            take = (size_t)left;
    }
    if (take) {
        EVP_DigestUpdate(x->md, data, take);
        x->body_length += take;
    }
    if (take < n) {
        x->abandoned = 1;
        return 0; /* CURLE_WRITE_ERROR: the caller drops the rest of the body */
    }
    return n;
}

static void hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Prepares the easy handle and adds it to the multi handle; on failure x->done is set with the error. */
static void xfer_start(struct xfer *x)
{
    if (x->parse_error) {
        snprintf(x->error, sizeof(x->error), "%s", x->parse_error);
        x->done = 1;
        x->connects = g_connects;
        return;
    }
    x->md = EVP_MD_CTX_new();
    x->easy = curl_easy_init();
    if (!x->md || !x->easy) {
        snprintf(x->error, sizeof(x->error), "adapter: out of memory");
        x->done = 1;
        x->connects = g_connects;
        return;
    }
    EVP_DigestInit_ex(x->md, EVP_sha256(), NULL);
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, x->url);
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
    if (strcmp(x->method, "GET") == 0) {
        /* the default */
    } else if (strcmp(x->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (has_body_arg(x->method)) {
        x->body = malloc(x->body_len ? x->body_len : 1);
        if (!x->body) {
            snprintf(x->error, sizeof(x->error), "adapter: out of memory");
            x->done = 1;
            x->connects = g_connects;
            return;
        }
        memset(x->body, 'x', x->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
        if (strcmp(x->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
    }
    CURLMcode mc = curl_multi_add_handle(g_multi, e);
    if (mc != CURLM_OK) {
        snprintf(x->error, sizeof(x->error), "adapter: curl_multi_add_handle: %s", curl_multi_strerror(mc));
        x->done = 1;
        x->connects = g_connects;
    }
}

static void xfer_finish(struct xfer *x, CURLcode rc)
{
    long nconn = 0;
    curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &nconn);
    g_connects += (unsigned long)nconn;
    x->connects = g_connects;
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    /* A transfer that never got a connection has no "reused" to tell. */
    if (nconn > 0 || code > 0)
        x->reused = nconn == 0;
    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && x->abandoned)) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int dl = 0;
        EVP_DigestFinal_ex(x->md, d, &dl);
        hex(d, dl, x->sha256);
        x->status = code;
    } else {
        if (x->errbuf[0])
            snprintf(x->error, sizeof(x->error), "curl error %d: %s: %s", (int)rc, curl_easy_strerror(rc),
                     x->errbuf);
        else
            snprintf(x->error, sizeof(x->error), "curl error %d: %s", (int)rc, curl_easy_strerror(rc));
    }
    curl_multi_remove_handle(g_multi, x->easy);
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    x->done = 1;
}

/* Runs the transfers of xs[0..n) at once on the multi handle until all are done. */
static void run_batch(struct xfer *xs, size_t n)
{
    size_t pending = 0;
    for (size_t i = 0; i < n; i++) {
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
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void xfer_print(const struct xfer *x)
{
    if (x->status >= 0)
        printf("{\"status\": %ld, ", x->status);
    else
        printf("{\"status\": null, ");
    printf("\"body_length\": %llu, \"body_sha256\": ", x->body_length);
    if (x->sha256[0])
        printf("\"%s\"", x->sha256);
    else
        printf("null");
    printf(", \"error\": ");
    if (x->error[0])
        json_string(x->error);
    else
        printf("null");
    if (x->reused >= 0)
        printf(", \"reused\": %s", x->reused ? "true" : "false");
    printf(", \"connects\": %lu}\n", x->connects);
    fflush(stdout);
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
    free(x->line);
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

static void sleep_ms(unsigned long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static char *read_line(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

static int control_line(const char *line)
{
    unsigned long v;
    if (strncmp(line, "SLEEP ", 6) == 0 && parse_uint(line + 6, 86400000ul, &v) == 0) {
        sleep_ms(v);
        return 1;
    }
    if (strcmp(line, "CLOSE_IDLE") == 0) {
        curl_multi_cleanup(g_multi); /* closes every cached connection */
        multi_new();
        return 1;
    }
    return 0;
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
        } else if (strcmp(opt, "--max-idle-per-host") == 0 && parse_uint(val, 100000, &v) == 0) {
            g_cfg.max_connects = v ? (long)v : 1; /* 0 would mean "libcurl's default" */
        } else if (strcmp(opt, "--timeout") == 0) {
            char *end;
            double s = strtod(val, &end);
            if (*end || !(s > 0) || s > 86400) {
                usage();
                return 2;
            }
            g_cfg.timeout_ms = (long)(s * 1000);
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

    char *line;
    while ((line = read_line()) != NULL) {
        unsigned long k;
        if (line[0] == '\0' || control_line(line)) {
            free(line);
            continue;
        }
        if (strncmp(line, "CONCURRENT ", 11) == 0 && parse_uint(line + 11, MAX_CONCURRENT, &k) == 0 && k > 0) {
            free(line);
            struct xfer *xs = calloc(k, sizeof(*xs));
            if (!xs) {
                fprintf(stderr, "fcgispec-curl-adapter: out of memory\n");
                return 1;
            }
            size_t n = 0;
            while (n < k && (line = read_line()) != NULL) {
                if (line[0] == '\0' || control_line(line)) {
                    free(line);
                    continue;
                }
                xfer_parse(&xs[n++], line);
            }
            run_batch(xs, n);
            for (size_t i = 0; i < n; i++) {
                xfer_print(&xs[i]);
                xfer_free(&xs[i]);
            }
            free(xs);
            continue;
        }
        struct xfer x;
        xfer_parse(&x, line);
        run_batch(&x, 1);
        xfer_print(&x);
        xfer_free(&x);
    }
    curl_multi_cleanup(g_multi);
    curl_share_cleanup(g_share);
    curl_global_cleanup();
    return 0;
}
