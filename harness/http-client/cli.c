/* fcgispec-http-client: the command line of the reference HTTP/1.1 client.
 *
 *   fcgispec-http-client adapter [OPTIONS]   the client adapter protocol (stdin/stdout)
 *   fcgispec-http-client fetch [OPTIONS] URL...  bodies to stdout, one client for all URLs
 *
 * Options: --cacert PATH, --max-idle-per-host N, --max-idle-total N,
 *          --idle-timeout MS, --timeout SECONDS, --max-retries N
 *
 * Adapter protocol: one request line in, one JSON line out (flushed), in order:
 *   METHOD URL [BODYLEN] [Name:Value]...   BODYLEN only for POST, PUT, PATCH ('x' bytes)
 *   ABANDON URL N      GET, read N body bytes, drop the response
 *   CONCURRENT K       the next K request lines run at once; results in input order
 *   SLEEP MS           no output
 *   CLOSE_IDLE         close idle pooled connections; no output
 * Output: {"status": 200, "body_length": 3, "body_sha256": "...", "error": null,
 *          "reused": false, "connects": 1} */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "httpc.h"

#define MAX_JOB_HEADERS 32
#define MAX_CONCURRENT 256

struct job {
    /* request */
    char *line; /* owns the tokens below */
    const char *method, *url;
    size_t body_len;
    long abandon_after; /* -1: read the whole body */
    struct httpc_header headers[MAX_JOB_HEADERS];
    size_t nheaders;
    const char *parse_error;
    /* result */
    int status; /* -1: null */
    unsigned long long body_length;
    char sha256[65];
    const char *error;
    int reused; /* -1: unknown */
    unsigned long connects;
    httpc_client *cl;
};

static void usage(void)
{
    fprintf(stderr,
            "usage: fcgispec-http-client adapter [OPTIONS]\n"
            "       fcgispec-http-client fetch [OPTIONS] URL...\n"
            "options: --cacert PATH  --max-idle-per-host N  --max-idle-total N\n"
            "         --idle-timeout MS  --timeout SECONDS  --max-retries N\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || errno || v > max || !isdigit((unsigned char)s[0]))
        return -1;
    *out = v;
    return 0;
}

static int is_request_method(const char *m)
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

/* Tokenises a request line into job (which takes ownership of line). */
static void job_parse(struct job *j, char *line)
{
    memset(j, 0, sizeof(*j));
    j->line = line;
    j->status = -1;
    j->reused = -1;
    j->abandon_after = -1;
    char *tok[3 + MAX_JOB_HEADERS];
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (n == sizeof(tok) / sizeof(tok[0])) {
            j->parse_error = "adapter: too many tokens";
            return;
        }
        tok[n++] = t;
    }
    if (n < 2) {
        j->parse_error = "adapter: malformed request line";
        return;
    }
    size_t next = 2;
    unsigned long v;
    if (strcmp(tok[0], "ABANDON") == 0) {
        if (n != 3 || parse_uint(tok[2], 1ul << 40, &v) != 0) {
            j->parse_error = "adapter: ABANDON URL N";
            return;
        }
        j->method = "GET";
        j->abandon_after = (long)v;
        next = 3;
    } else if (is_request_method(tok[0])) {
        j->method = tok[0];
        if (has_body_arg(tok[0]) && n > 2 && strchr(tok[2], ':') == NULL) {
            if (parse_uint(tok[2], 1ul << 32, &v) != 0) {
                j->parse_error = "adapter: bad BODYLEN";
                return;
            }
            j->body_len = v;
            next = 3;
        }
    } else {
        j->parse_error = "adapter: unknown command";
        return;
    }
    j->url = tok[1];
    for (size_t i = next; i < n; i++) {
        char *colon = strchr(tok[i], ':');
        if (!colon || colon == tok[i]) {
            j->parse_error = "adapter: header token must be Name:Value";
            return;
        }
        *colon = '\0';
        j->headers[j->nheaders].name = tok[i];
        j->headers[j->nheaders].value = colon + 1;
        j->nheaders++;
    }
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

static void job_run(struct job *j)
{
    struct httpc_stats st;
    if (j->parse_error) {
        j->error = j->parse_error;
        httpc_client_stats(j->cl, &st);
        j->connects = st.connects;
        return;
    }
    char *body = NULL;
    if (j->body_len) {
        body = malloc(j->body_len);
        if (!body) {
            j->error = httpc_strerror(HTTPC_E_NOMEM);
            return;
        }
        memset(body, 'x', j->body_len);
    }
    struct httpc_request req = {j->method, j->url, j->headers, j->nheaders, body, j->body_len};
    httpc_response *resp = NULL;
    struct httpc_request_info info;
    httpc_error e = httpc_request(j->cl, &req, &resp, &info);
    free(body);
    j->reused = info.reused;
    if (e != HTTPC_OK) {
        j->error = httpc_strerror(e);
    } else {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        unsigned char buf[16384];
        for (;;) {
            size_t want = sizeof(buf);
            if (j->abandon_after >= 0) {
                unsigned long long left = (unsigned long long)j->abandon_after - j->body_length;
                if (left == 0)
                    break;
                if (left < want)
                    want = (size_t)left;
            }
            ssize_t n = httpc_response_read(resp, buf, want, &e);
            if (n < 0) {
                j->error = httpc_strerror(e);
                break;
            }
            if (n == 0)
                break;
            EVP_DigestUpdate(md, buf, (size_t)n);
            j->body_length += (unsigned long long)n;
        }
        if (!j->error) {
            unsigned char d[32];
            unsigned int dl = 0;
            EVP_DigestFinal_ex(md, d, &dl);
            hex(d, dl, j->sha256);
            j->status = httpc_response_status(resp);
        }
        EVP_MD_CTX_free(md);
        httpc_response_free(resp);
    }
    httpc_client_stats(j->cl, &st);
    j->connects = st.connects;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void job_print(const struct job *j)
{
    if (j->status >= 0)
        printf("{\"status\": %d, ", j->status);
    else
        printf("{\"status\": null, ");
    printf("\"body_length\": %llu, \"body_sha256\": ", j->body_length);
    if (j->sha256[0])
        printf("\"%s\"", j->sha256);
    else
        printf("null");
    printf(", \"error\": ");
    if (j->error)
        json_string(stdout, j->error);
    else
        printf("null");
    if (j->reused >= 0)
        printf(", \"reused\": %s", j->reused ? "true" : "false");
    printf(", \"connects\": %lu}\n", j->connects);
    fflush(stdout);
}

static void *job_thread(void *arg)
{
    job_run(arg);
    return NULL;
}

static void sleep_ms(unsigned long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static char *read_line(FILE *in)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, in);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

/* SLEEP and CLOSE_IDLE: performed here; returns 1 if the line was one of them. */
static int control_line(httpc_client *cl, const char *line)
{
    unsigned long v;
    if (strncmp(line, "SLEEP ", 6) == 0 && parse_uint(line + 6, 86400000ul, &v) == 0) {
        sleep_ms(v);
        return 1;
    }
    if (strcmp(line, "CLOSE_IDLE") == 0) {
        httpc_client_close_idle(cl);
        return 1;
    }
    return 0;
}

static void run_concurrent(httpc_client *cl, unsigned long k)
{
    struct job *jobs = calloc(k, sizeof(*jobs));
    pthread_t *th = calloc(k, sizeof(*th));
    int *started = calloc(k, sizeof(*started));
    if (!jobs || !th || !started) {
        fprintf(stderr, "fcgispec-http-client: out of memory\n");
        exit(1);
    }
    unsigned long n = 0;
    while (n < k) {
        char *line = read_line(stdin);
        if (!line)
            break;
        if (line[0] == '\0' || control_line(cl, line)) {
            free(line);
            continue;
        }
        job_parse(&jobs[n], line);
        jobs[n].cl = cl;
        n++;
    }
    for (unsigned long i = 0; i < n; i++)
        started[i] = pthread_create(&th[i], NULL, job_thread, &jobs[i]) == 0;
    for (unsigned long i = 0; i < n; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else
            job_run(&jobs[i]);
    }
    for (unsigned long i = 0; i < n; i++) {
        job_print(&jobs[i]);
        free(jobs[i].line);
    }
    free(jobs);
    free(th);
    free(started);
}

static int run_adapter(httpc_client *cl)
{
    char *line;
    while ((line = read_line(stdin)) != NULL) {
        unsigned long k;
        if (line[0] == '\0' || control_line(cl, line)) {
            free(line);
            continue;
        }
        if (strncmp(line, "CONCURRENT ", 11) == 0) {
            if (parse_uint(line + 11, MAX_CONCURRENT, &k) == 0 && k > 0) {
                free(line);
                run_concurrent(cl, k);
                continue;
            }
        }
        struct job j;
        job_parse(&j, line);
        j.cl = cl;
        job_run(&j);
        job_print(&j);
        free(j.line);
    }
    return 0;
}

static int run_fetch(httpc_client *cl, int n, char **urls)
{
    int failures = 0;
    for (int i = 0; i < n; i++) {
        struct httpc_request req = {"GET", urls[i], NULL, 0, NULL, 0};
        httpc_response *resp;
        httpc_error e = httpc_request(cl, &req, &resp, NULL);
        if (e != HTTPC_OK) {
            fprintf(stderr, "fcgispec-http-client: %s: %s\n", urls[i], httpc_strerror(e));
            failures++;
            continue;
        }
        char buf[16384];
        ssize_t r;
        while ((r = httpc_response_read(resp, buf, sizeof(buf), &e)) > 0)
            fwrite(buf, 1, (size_t)r, stdout);
        if (r < 0) {
            fprintf(stderr, "fcgispec-http-client: %s: %s\n", urls[i], httpc_strerror(e));
            failures++;
        } else if (httpc_response_status(resp) >= 400) {
            failures++;
        }
        fprintf(stderr, "fcgispec-http-client: %s: status %d%s\n", urls[i], httpc_response_status(resp),
                httpc_response_reused(resp) ? " (reused connection)" : "");
        httpc_response_free(resp);
    }
    fflush(stdout);
    struct httpc_stats st;
    httpc_client_stats(cl, &st);
    fprintf(stderr, "fcgispec-http-client: %d requests, %lu connections opened, %lu reused, %lu retries\n", n,
            st.connects, st.reuses, st.retries);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* OpenSSL writes with write(2) */
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *mode = argv[1];
    if (strcmp(mode, "adapter") != 0 && strcmp(mode, "fetch") != 0) {
        usage();
        return 2;
    }
    struct httpc_config cfg;
    httpc_config_default(&cfg);
    int i = 2;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long v;
        if (strcmp(opt, "--") == 0) {
            i++;
            break;
        }
        if (!val) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(opt, "--cacert") == 0) {
            cfg.cacert = val;
        } else if (strcmp(opt, "--max-idle-per-host") == 0 && parse_uint(val, 100000, &v) == 0) {
            cfg.max_idle_per_host = (unsigned)v;
        } else if (strcmp(opt, "--max-idle-total") == 0 && parse_uint(val, 100000, &v) == 0) {
            cfg.max_idle_total = (unsigned)v;
        } else if (strcmp(opt, "--idle-timeout") == 0 && parse_uint(val, 86400000ul, &v) == 0) {
            cfg.idle_timeout_ms = (unsigned)v;
        } else if (strcmp(opt, "--max-retries") == 0 && parse_uint(val, 10, &v) == 0) {
            cfg.max_retries = (unsigned)v;
        } else if (strcmp(opt, "--timeout") == 0) {
            char *end;
            double s = strtod(val, &end);
            if (*end || !(s > 0) || s > 86400) {
                usage();
                return 2;
            }
            cfg.timeout_ms = (unsigned)(s * 1000);
            cfg.connect_timeout_ms = cfg.timeout_ms;
        } else {
            usage();
            return 2;
        }
    }
    httpc_error e;
    httpc_client *cl = httpc_client_new(&cfg, &e);
    if (!cl) {
        fprintf(stderr, "fcgispec-http-client: %s\n", httpc_strerror(e));
        return 1;
    }
    int rc;
    if (strcmp(mode, "adapter") == 0) {
        if (i != argc) {
            usage();
            httpc_client_free(cl);
            return 2;
        }
        rc = run_adapter(cl);
    } else {
        rc = run_fetch(cl, argc - i, argv + i);
    }
    httpc_client_free(cl);
    return rc;
}
