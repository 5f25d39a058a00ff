/* adapter_protocol: parsing and printing of the client adapter line protocol, and the loop that reads it. */
#include "adapter_protocol.h"
#include "hex.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int adapter_parse_uint(const char *s, unsigned long max, unsigned long *out)
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

int adapter_parse_seconds(const char *s, unsigned long *ms)
{
    char *end;
    double v = strtod(s, &end);
    if (*end || !(v > 0) || v > 86400)
        return -1;
    *ms = (unsigned long)(v * 1000);
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

int adapter_method_has_body(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

static void job_init(struct adapter_job *j, char *line)
{
    memset(j, 0, sizeof(*j));
    j->req.line = line;
    j->req.abandon_after = -1;
    j->res.status = -1;
    j->res.reused = -1;
}

/* The tokens are separated by spaces; a header token is Name:Value, cut at its first colon. */
static const char *parse_request(struct adapter_request *r, char *line)
{
    char *tok[ADAPTER_MAX_TOKENS];
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (n == ADAPTER_MAX_TOKENS)
            return "adapter: too many tokens";
        tok[n++] = t;
    }
    if (n < 2)
        return "adapter: malformed request line";
    size_t next = 2;
    unsigned long v;
    if (strcmp(tok[0], "ABANDON") == 0) {
        if (n != 3 || adapter_parse_uint(tok[2], 1ul << 40, &v) != 0)
            return "adapter: ABANDON URL N";
        r->method = "GET";
        r->abandon_after = (long long)v;
        next = 3;
    } else if (is_method(tok[0])) {
        r->method = tok[0];
        if (adapter_method_has_body(tok[0]) && n > 2 && strchr(tok[2], ':') == NULL) {
            if (adapter_parse_uint(tok[2], 1ul << 32, &v) != 0)
                return "adapter: bad BODYLEN";
            r->body_len = v;
            next = 3;
        }
    } else {
        return "adapter: unknown command";
    }
    r->url = tok[1];
    for (size_t i = next; i < n; i++) { /* at most ADAPTER_MAX_TOKENS - 2 = ADAPTER_MAX_HEADERS */
        char *colon = strchr(tok[i], ':');
        if (!colon || colon == tok[i])
            return "adapter: header token must be Name:Value";
        *colon = '\0';
        r->headers[r->nheaders].name = tok[i];
        r->headers[r->nheaders].value = colon + 1;
        r->nheaders++;
    }
    return NULL;
}

void adapter_job_parse(struct adapter_job *j, char *line)
{
    job_init(j, line);
    j->req.parse_error = parse_request(&j->req, line);
}

size_t adapter_body_want(const struct adapter_job *j, size_t n)
{
    if (j->req.abandon_after < 0)
        return n;
    unsigned long long left = (unsigned long long)j->req.abandon_after - j->res.body_length;
    return left < n ? (size_t)left : n;
}

void adapter_result_error(struct adapter_result *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof(res->error), fmt, ap);
    va_end(ap);
}

void adapter_result_sha256(struct adapter_result *res, const unsigned char *d, size_t n)
{
    if (n > (sizeof(res->sha256) - 1) / 2)
        n = (sizeof(res->sha256) - 1) / 2;
    hex_encode(d, n, res->sha256);
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

void adapter_result_print(FILE *out, const struct adapter_result *res)
{
    if (res->status >= 0)
        fprintf(out, "{\"status\": %ld, ", res->status);
    else
        fprintf(out, "{\"status\": null, ");
    fprintf(out, "\"body_length\": %llu, \"body_sha256\": ", res->body_length);
    if (res->sha256[0])
        fprintf(out, "\"%s\"", res->sha256);
    else
        fprintf(out, "null");
    fprintf(out, ", \"error\": ");
    if (res->error[0])
        json_string(out, res->error);
    else
        fprintf(out, "null");
    if (res->reused >= 0)
        fprintf(out, ", \"reused\": %s", res->reused ? "true" : "false");
    fprintf(out, ", \"connects\": %lu}\n", res->connects);
    fflush(out);
}

char *adapter_read_line(FILE *in, int *too_long)
{
    size_t cap = 256, n = 0;
    char *line = malloc(cap);
    if (!line)
        return NULL;
    *too_long = 0;
    int c;
    while ((c = getc(in)) != EOF && c != '\n') {
        if (n == ADAPTER_MAX_LINE) {
            *too_long = 1; /* the rest of the line is read and dropped */
            continue;
        }
        if (n + 1 == cap) { /* room for c and the NUL */
            size_t ncap = cap * 2 > ADAPTER_MAX_LINE + 1 ? ADAPTER_MAX_LINE + 1 : cap * 2;
            char *p = realloc(line, ncap);
            if (!p) {
                free(line);
                return NULL;
            }
            line = p;
            cap = ncap;
        }
        line[n++] = (char)c;
    }
    if (c == EOF && n == 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    return line;
}

static void sleep_ms(unsigned long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Empty lines, SLEEP and CLOSE_IDLE: done here (the line freed); returns 1 if the line was one of them. */
static int skip_line(char *line, const struct adapter_ops *ops, void *ctx)
{
    unsigned long v;
    if (line[0] == '\0')
        ; /* nothing to do */
    else if (strncmp(line, "SLEEP ", 6) == 0 && adapter_parse_uint(line + 6, 86400000ul, &v) == 0)
        sleep_ms(v);
    else if (strcmp(line, "CLOSE_IDLE") == 0)
        ops->close_idle(ctx);
    else
        return 0;
    free(line);
    return 1;
}

static void job_from_line(struct adapter_job *j, char *line, int too_long)
{
    if (too_long) {
        job_init(j, line);
        j->req.parse_error = "adapter: line too long";
    } else {
        adapter_job_parse(j, line);
    }
}

/* CONCURRENT K: the next K request lines (control lines between them are done as they come) run at once. */
static int serve_concurrent(FILE *in, FILE *out, const struct adapter_ops *ops, void *ctx, size_t k)
{
    struct adapter_job *jobs = calloc(k, sizeof(*jobs));
    if (!jobs) {
        fprintf(stderr, "%s: out of memory\n", ops->name);
        return 1;
    }
    size_t n = 0;
    char *line;
    int too_long;
    while (n < k && (line = adapter_read_line(in, &too_long)) != NULL) {
        if (!too_long && skip_line(line, ops, ctx))
            continue;
        job_from_line(&jobs[n++], line, too_long);
    }
    if (n)
        ops->run(ctx, jobs, n);
    for (size_t i = 0; i < n; i++) {
        adapter_result_print(out, &jobs[i].res);
        free(jobs[i].req.line);
    }
    free(jobs);
    return 0;
}

int adapter_serve(FILE *in, FILE *out, const struct adapter_ops *ops, void *ctx)
{
    char *line;
    int too_long;
    while ((line = adapter_read_line(in, &too_long)) != NULL) {
        unsigned long k;
        if (!too_long && skip_line(line, ops, ctx))
            continue;
        if (!too_long && strncmp(line, "CONCURRENT ", 11) == 0 &&
            adapter_parse_uint(line + 11, ADAPTER_MAX_CONCURRENT, &k) == 0 && k > 0) {
            free(line);
            if (serve_concurrent(in, out, ops, ctx, k) != 0)
                return 1;
            continue;
        }
        struct adapter_job job;
        job_from_line(&job, line, too_long);
        ops->run(ctx, &job, 1);
        adapter_result_print(out, &job.res);
        free(job.req.line);
    }
    return 0;
}
