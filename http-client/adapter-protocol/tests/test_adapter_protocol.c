/* Unit tests for the client adapter line protocol module. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_protocol.h"
#include "test_main.h"

/* Parses a copy of `s` into *j; the caller frees j->req.line. */
static void parse(struct adapter_job *j, const char *s)
{
    char *line = strdup(s);
    if (!line) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    adapter_job_parse(j, line);
}

static int is(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static void bad(struct test_counts *tc, const char *s, const char *error)
{
    struct adapter_job j;
    parse(&j, s);
    if (!CHECK(is(j.req.parse_error, error)))
        printf("    line '%s': got '%s' wanted '%s'\n", s, j.req.parse_error ? j.req.parse_error : "(none)", error);
    free(j.req.line);
}

static void test_parse(struct test_counts *tc)
{
    struct adapter_job j;
    parse(&j, "GET http://a/b");
    CHECK(j.req.parse_error == NULL);
    CHECK(is(j.req.method, "GET"));
    CHECK(is(j.req.url, "http://a/b"));
    CHECK_EQ_U(j.req.body_len, 0);
    CHECK(j.req.abandon_after == -1);
    CHECK_EQ_U(j.req.nheaders, 0);
    CHECK(j.res.status == -1 && j.res.reused == -1 && j.res.error[0] == '\0' && j.res.sha256[0] == '\0');
    free(j.req.line);

    parse(&j, "POST http://a/ 10 X-A:1 X-Empty: X-Colons:a:b");
    CHECK(j.req.parse_error == NULL);
    CHECK(is(j.req.method, "POST"));
    CHECK_EQ_U(j.req.body_len, 10);
    CHECK_EQ_U(j.req.nheaders, 3);
    CHECK(is(j.req.headers[0].name, "X-A") && is(j.req.headers[0].value, "1"));
    CHECK(is(j.req.headers[1].name, "X-Empty") && is(j.req.headers[1].value, ""));
    CHECK(is(j.req.headers[2].name, "X-Colons") && is(j.req.headers[2].value, "a:b"));
    free(j.req.line);

    parse(&j, "PATCH  http://a/   H:v"); /* runs of spaces are one separator; a header where BODYLEN may stand */
    CHECK(j.req.parse_error == NULL);
    CHECK(is(j.req.url, "http://a/"));
    CHECK_EQ_U(j.req.body_len, 0);
    CHECK_EQ_U(j.req.nheaders, 1);
    free(j.req.line);

    parse(&j, "GET http://a/ 10"); /* BODYLEN only for POST, PUT, PATCH */
    CHECK(is(j.req.parse_error, "adapter: header token must be Name:Value"));
    free(j.req.line);

    parse(&j, "ABANDON http://a/ 5");
    CHECK(j.req.parse_error == NULL);
    CHECK(is(j.req.method, "GET"));
    CHECK(j.req.abandon_after == 5);
    free(j.req.line);

    bad(tc, "", "adapter: malformed request line");
    bad(tc, "GET", "adapter: malformed request line");
    bad(tc, "FETCH http://a/", "adapter: unknown command");
    bad(tc, "get http://a/", "adapter: unknown command");
    bad(tc, "ABANDON http://a/", "adapter: ABANDON URL N");
    bad(tc, "ABANDON http://a/ x", "adapter: ABANDON URL N");
    bad(tc, "ABANDON http://a/ 5 H:v", "adapter: ABANDON URL N");
    bad(tc, "PUT http://a/ 12x", "adapter: bad BODYLEN");
    bad(tc, "POST http://a/ 4294967297", "adapter: bad BODYLEN");
    bad(tc, "GET http://a/ :v", "adapter: header token must be Name:Value");
    bad(tc, "GET http://a/ H:v novalue", "adapter: header token must be Name:Value");

    /* GET URL and ADAPTER_MAX_HEADERS headers fill every token; one more is too many. */
    char line[ADAPTER_MAX_TOKENS * 8 + 32] = "GET http://a/";
    for (int i = 0; i < ADAPTER_MAX_HEADERS; i++)
        snprintf(line + strlen(line), sizeof(line) - strlen(line), " H%d:%d", i, i);
    parse(&j, line);
    CHECK(j.req.parse_error == NULL);
    CHECK_EQ_U(j.req.nheaders, ADAPTER_MAX_HEADERS);
    CHECK(is(j.req.headers[ADAPTER_MAX_HEADERS - 1].name, "H32"));
    free(j.req.line);
    snprintf(line + strlen(line), sizeof(line) - strlen(line), " X:y");
    bad(tc, line, "adapter: too many tokens");
}

static void test_numbers(struct test_counts *tc)
{
    unsigned long v = 99;
    CHECK(adapter_parse_uint("0", 10, &v) == 0 && v == 0);
    CHECK(adapter_parse_uint("10", 10, &v) == 0 && v == 10);
    CHECK(adapter_parse_uint("11", 10, &v) == -1);
    CHECK(adapter_parse_uint("", 10, &v) == -1);
    CHECK(adapter_parse_uint(NULL, 10, &v) == -1);
    CHECK(adapter_parse_uint("-1", 10, &v) == -1);
    CHECK(adapter_parse_uint("+1", 10, &v) == -1);
    CHECK(adapter_parse_uint(" 1", 10, &v) == -1);
    CHECK(adapter_parse_uint("1 ", 10, &v) == -1);
    CHECK(adapter_parse_uint("99999999999999999999999", ~0ul, &v) == -1);
    CHECK(v == 10);

    CHECK(adapter_parse_seconds("1.5", &v) == 0 && v == 1500);
    CHECK(adapter_parse_seconds("86400", &v) == 0 && v == 86400000);
    CHECK(adapter_parse_seconds("0.001", &v) == 0 && v == 1);
    CHECK(adapter_parse_seconds("0", &v) == -1);
    CHECK(adapter_parse_seconds("-1", &v) == -1);
    CHECK(adapter_parse_seconds("86400.5", &v) == -1);
    CHECK(adapter_parse_seconds("nan", &v) == -1);
    CHECK(adapter_parse_seconds("1s", &v) == -1);
    CHECK(adapter_parse_seconds("", &v) == -1);
}

static void test_body(struct test_counts *tc)
{
    struct adapter_job j;
    parse(&j, "ABANDON http://a/ 5");
    CHECK_EQ_U(adapter_body_want(&j, 16384), 5);
    j.res.body_length = 3;
    CHECK_EQ_U(adapter_body_want(&j, 16384), 2);
    CHECK_EQ_U(adapter_body_want(&j, 1), 1);
    j.res.body_length = 5;
    CHECK_EQ_U(adapter_body_want(&j, 16384), 0);
    free(j.req.line);
    parse(&j, "GET http://a/");
    j.res.body_length = 1u << 30;
    CHECK_EQ_U(adapter_body_want(&j, 16384), 16384);
    free(j.req.line);

    unsigned char d[40];
    for (size_t i = 0; i < sizeof(d); i++)
        d[i] = (unsigned char)(i * 17);
    adapter_result_sha256(&j.res, d, 2);
    CHECK(is(j.res.sha256, "0011"));
    adapter_result_sha256(&j.res, d, sizeof(d)); /* only 32 bytes fit */
    CHECK_EQ_U(strlen(j.res.sha256), 64);
    CHECK(strncmp(j.res.sha256, "00112233445566778899aabbccddeeff", 32) == 0);
}

/* What adapter_result_print writes for `res`, in buf. */
static void printed(const struct adapter_result *res, char *buf, size_t size)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        exit(1);
    adapter_result_print(f, res);
    fclose(f);
    snprintf(buf, size, "%s", text);
    free(text);
}

static void test_print(struct test_counts *tc)
{
    struct adapter_job j;
    char buf[1024];
    parse(&j, "GET http://a/");
    free(j.req.line);
    printed(&j.res, buf, sizeof(buf));
    CHECK(is(buf, "{\"status\": null, \"body_length\": 0, \"body_sha256\": null, \"error\": null, \"connects\": 0}\n"));

    j.res.status = 200;
    j.res.body_length = 3;
    snprintf(j.res.sha256, sizeof(j.res.sha256), "%s", "abcd");
    j.res.reused = 1;
    j.res.connects = 7;
    printed(&j.res, buf, sizeof(buf));
    CHECK(is(buf, "{\"status\": 200, \"body_length\": 3, \"body_sha256\": \"abcd\", \"error\": null, \"reused\": true, "
                  "\"connects\": 7}\n"));

    j.res.status = -1;
    j.res.sha256[0] = '\0';
    j.res.reused = 0;
    adapter_result_error(&j.res, "a \"b\" \\ %d\n\x01", 5);
    printed(&j.res, buf, sizeof(buf));
    if (!CHECK(is(buf, "{\"status\": null, \"body_length\": 3, \"body_sha256\": null, "
                       "\"error\": \"a \\\"b\\\" \\\\ 5\\u000a\\u0001\", \"reused\": false, \"connects\": 7}\n")))
        printf("    got %s", buf);

    char long_text[2 * ADAPTER_ERROR_MAX];
    memset(long_text, 'e', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    adapter_result_error(&j.res, "%s", long_text);
    CHECK_EQ_U(strlen(j.res.error), ADAPTER_ERROR_MAX - 1);
}

static FILE *input(const char *text, size_t len)
{
    FILE *f = fmemopen((void *)text, len, "r");
    if (!f)
        exit(1);
    return f;
}

static void test_read_line(struct test_counts *tc)
{
    static const char text[] = "GET a\r\n\nSLEEP 1\r\r\nlast";
    FILE *f = input(text, sizeof(text) - 1);
    int too_long = -1;
    char *l;
    l = adapter_read_line(f, &too_long);
    CHECK(is(l, "GET a") && too_long == 0);
    free(l);
    l = adapter_read_line(f, &too_long);
    CHECK(is(l, ""));
    free(l);
    l = adapter_read_line(f, &too_long);
    CHECK(is(l, "SLEEP 1"));
    free(l);
    l = adapter_read_line(f, &too_long);
    CHECK(is(l, "last"));
    free(l);
    CHECK(adapter_read_line(f, &too_long) == NULL);
    fclose(f);

    size_t n = ADAPTER_MAX_LINE + 10;
    char *big = malloc(n + 8);
    if (!big)
        exit(1);
    memset(big, 'a', n);
    memcpy(big + n, "\nnext\n", 6);
    f = input(big, n + 6);
    l = adapter_read_line(f, &too_long);
    CHECK(l != NULL && too_long == 1);
    CHECK_EQ_U(l ? strlen(l) : 0, ADAPTER_MAX_LINE);
    free(l);
    l = adapter_read_line(f, &too_long);
    CHECK(is(l, "next") && too_long == 0);
    free(l);
    CHECK(adapter_read_line(f, &too_long) == NULL);
    fclose(f);

    /* exactly ADAPTER_MAX_LINE bytes is not too long */
    memset(big, 'b', ADAPTER_MAX_LINE);
    big[ADAPTER_MAX_LINE] = '\n';
    f = input(big, ADAPTER_MAX_LINE + 1);
    l = adapter_read_line(f, &too_long);
    CHECK(l != NULL && too_long == 0);
    CHECK_EQ_U(l ? strlen(l) : 0, ADAPTER_MAX_LINE);
    free(l);
    fclose(f);
    free(big);
}

/* A fake client for adapter_serve: status 200 and the batch size as body_length, connects counts run calls. */
struct fake {
    unsigned long runs, close_idles;
    size_t batch[8];
};

static void fake_run(void *ctx, struct adapter_job *jobs, size_t n)
{
    struct fake *fk = ctx;
    if (fk->runs < 8)
        fk->batch[fk->runs] = n;
    fk->runs++;
    for (size_t i = 0; i < n; i++) {
        struct adapter_result *res = &jobs[i].res;
        if (jobs[i].req.parse_error) {
            adapter_result_error(res, "%s", jobs[i].req.parse_error);
        } else {
            res->status = 200;
            res->body_length = n;
            res->reused = (int)(i & 1);
        }
        res->connects = fk->runs;
    }
}

static void fake_close_idle(void *ctx)
{
    struct fake *fk = ctx;
    fk->close_idles++;
}

static void test_serve(struct test_counts *tc)
{
    static const char text[] = "GET http://a/\n"
                               "\n"
                               "SLEEP 1\n"
                               "CLOSE_IDLE\n"
                               "CONCURRENT 3\n"
                               "GET http://a/1\n"
                               "CLOSE_IDLE\n"
                               "\n"
                               "BOGUS http://a/2\n"
                               "POST http://a/3 2\n"
                               "CONCURRENT 0\n"
                               "SLEEP x\n"
                               "CONCURRENT 2\n"
                               "HEAD http://a/4\n";
    FILE *in = input(text, sizeof(text) - 1);
    char *text_out = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text_out, &len);
    if (!out)
        exit(1);
    struct fake fk;
    memset(&fk, 0, sizeof(fk));
    static const struct adapter_ops ops = {"test", fake_run, fake_close_idle};
    CHECK(adapter_serve(in, out, &ops, &fk) == 0);
    fclose(in);
    fclose(out);
    static const char want[] =
        "{\"status\": 200, \"body_length\": 1, \"body_sha256\": null, \"error\": null, \"reused\": false, "
        "\"connects\": 1}\n"
        "{\"status\": 200, \"body_length\": 3, \"body_sha256\": null, \"error\": null, \"reused\": false, "
        "\"connects\": 2}\n"
        "{\"status\": null, \"body_length\": 0, \"body_sha256\": null, \"error\": \"adapter: unknown command\", "
        "\"connects\": 2}\n"
        "{\"status\": 200, \"body_length\": 3, \"body_sha256\": null, \"error\": null, \"reused\": false, "
        "\"connects\": 2}\n"
        "{\"status\": null, \"body_length\": 0, \"body_sha256\": null, \"error\": \"adapter: unknown command\", "
        "\"connects\": 3}\n"
        "{\"status\": null, \"body_length\": 0, \"body_sha256\": null, \"error\": \"adapter: unknown command\", "
        "\"connects\": 4}\n"
        "{\"status\": 200, \"body_length\": 1, \"body_sha256\": null, \"error\": null, \"reused\": false, "
        "\"connects\": 5}\n";
    if (!CHECK(is(text_out, want)))
        printf("    got:\n%s", text_out ? text_out : "(null)");
    free(text_out);
    CHECK_EQ_U(fk.runs, 5);
    CHECK_EQ_U(fk.close_idles, 2);
    CHECK_EQ_U(fk.batch[0], 1);
    CHECK_EQ_U(fk.batch[1], 3);
    CHECK_EQ_U(fk.batch[2], 1); /* CONCURRENT 0 */
    CHECK_EQ_U(fk.batch[3], 1); /* SLEEP x */
    CHECK_EQ_U(fk.batch[4], 1); /* CONCURRENT 2 cut short by EOF */
}

int main(void)
{
    struct test_counts counts = {0, 0};
    struct test_counts *tc = &counts;
    test_parse(tc);
    test_numbers(tc);
    test_body(tc);
    test_print(tc);
    test_read_line(tc);
    test_serve(tc);
    return test_finish(tc);
}
