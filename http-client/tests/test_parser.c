/* Unit tests for the response parser: valid responses parse, every malformed
 * case gives its error, and any split of the input (one byte at a time, small
 * reads) gives the same result as the whole. */
#include <stdio.h>
#include <string.h>

#include "http_response_parser.h"
#include "parse_run.h"
#include "test_main.h"

/* Parses whole, byte by byte, and in odd splits; checks they agree; returns the whole-input result. */
static void parse_all_ways(struct test_counts *tc, const char *in, size_t len, int is_head, int eof,
                           struct parse_result *out, int line)
{
    static struct parse_result other;
    static const size_t steps[][2] = {{1, 0}, {1, 1}, {7, 3}, {2, 5}, {0, 1}};
    parse_run((const unsigned char *)in, len, is_head, 0, 0, eof, out);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        parse_run((const unsigned char *)in, len, is_head, steps[i][0], steps[i][1], eof, &other);
        if (!CHECK(parse_result_equal(out, &other)))
            printf("    (line %d: split step=%zu max_data=%zu differs)\n", line, steps[i][0], steps[i][1]);
    }
}

#define PARSE(s, head, eof, res) parse_all_ways(tc, (s), strlen(s), (head), (eof), (res), __LINE__)

static struct parse_result r;

static void expect_error(struct test_counts *tc, const char *in, int is_head, int eof, httpc_error e, int line)
{
    parse_all_ways(tc, in, strlen(in), is_head, eof, &r, line);
    if (!test_record(tc, r.err == e && !r.done, __FILE__, line, "expected error"))
        printf("    got error %d (%s), done %d; wanted %d (%s)\n", r.err, httpc_strerror(r.err), r.done, e,
               httpc_strerror(e));
}

#define EXPECT_ERROR(s, e) expect_error(tc, (s), 0, 1, (e), __LINE__)
#define EXPECT_ERROR_HEAD(s, e) expect_error(tc, (s), 1, 1, (e), __LINE__)

static void expect_body(struct test_counts *tc, const char *in, int is_head, int eof, int status, const char *body,
                        int keep_alive, size_t leftover, int line)
{
    parse_all_ways(tc, in, strlen(in), is_head, eof, &r, line);
    int ok = r.err == HTTPC_OK && r.done && r.status == status && r.body_len == strlen(body) &&
             memcmp(r.body, body, r.body_len) == 0 && r.keep_alive == keep_alive && r.leftover == leftover;
    if (!test_record(tc, ok, __FILE__, line, "expected a complete response"))
        printf("    err %d (%s) done %d status %d body '%.*s' keep_alive %d leftover %zu\n", r.err,
               httpc_strerror(r.err), r.done, r.status, (int)r.body_len, r.body, r.keep_alive, r.leftover);
}

#define EXPECT_BODY(s, status, body, ka, left) expect_body(tc, (s), 0, 0, (status), (body), (ka), (left), __LINE__)
#define EXPECT_BODY_EOF(s, status, body, ka) expect_body(tc, (s), 0, 1, (status), (body), (ka), 0, __LINE__)
#define EXPECT_HEAD(s, status, ka, left) expect_body(tc, (s), 1, 0, (status), "", (ka), (left), __LINE__)

static void test_valid(struct test_counts *tc)
{
    /* CLI-REUSE-1 and 1b */
    EXPECT_BODY("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nfoo", 200, "foo", 1, 0);
    CHECK_EQ_U(r.kind, HRP_BODY_LENGTH);
    CHECK_EQ_U(r.nfields, 1);
    EXPECT_BODY("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n0\r\n\r\n", 200, "foo", 1, 0);
    CHECK_EQ_U(r.kind, HRP_BODY_CHUNKED);
    EXPECT_BODY("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
                "5;ext=1\r\nhello\r\n6 ; a=\"b c\"\r\n world\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n",
                200, "hello world0123456789", 1, 0);
    EXPECT_BODY("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "", 1, 0);
    EXPECT_BODY("HTTP/1.1 200 OK\r\nFoo: Bar\r\nContent-Length: 0\r\n\r\n", 200, "", 1, 0);
    /* CLI-REUSE-12: excess after Content-Length is left unconsumed */
    EXPECT_BODY("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nfooBAR", 200, "foo", 1, 3);
    /* CLI-REUSE-13/16: 204 has no body, whatever it says */
    EXPECT_BODY("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", 204, "", 1, 5);
    EXPECT_BODY("HTTP/1.1 204 No Content\r\n\r\nBody should not be read!\n", 204, "", 1, 25);
    EXPECT_BODY("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", 204, "", 1, 0);
    /* CLI-REUSE-14: 304 with a chunked terminator: the terminator is excess */
    EXPECT_BODY("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 304, "", 1, 5);
    /* CLI-REUSE-15: HEAD */
    EXPECT_HEAD("HTTP/1.1 200 OK\r\nContent-Length: 123\r\n\r\n", 200, 1, 0);
    EXPECT_HEAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200, 1, 0);
    EXPECT_HEAD("HTTP/1.1 200 OK\r\n\r\n", 200, 1, 0);
    /* CLI-REUSE-17: interim responses skipped; 101 final */
    EXPECT_BODY("HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 123 OneTwoThree\r\n\r\n"
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nfoo",
                200, "foo", 1, 0);
    CHECK_EQ_U(r.headers, 1);
    EXPECT_BODY("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 101, "", 0,
                27);
    EXPECT_BODY("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
                204, "", 1, 0);
    /* CLI-REUSE-18: Connection tokens */
    EXPECT_BODY("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nfoo", 200, "foo", 0, 0);
    EXPECT_BODY("HTTP/1.1 200 OK\r\nConnection: cloSE\r\nContent-Length: 3\r\n\r\nfoo", 200, "foo", 0, 0);
    EXPECT_BODY("HTTP/1.1 200 OK\r\nConnection: close-not\r\nContent-Length: 3\r\n\r\nfoo", 200, "foo", 1, 0);
    EXPECT_BODY("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 3\r\n\r\nfoo", 200, "foo", 0,
                0);
    EXPECT_BODY("HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nconnection:  ,CLOSE , \r\nContent-Length: 3\r\n\r\nfoo",
                200, "foo", 0, 0);
    /* CLI-REUSE-19: HTTP/1.0 */
    EXPECT_BODY("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nfoo", 200, "foo", 0, 0);
    EXPECT_BODY("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nfoo", 200, "foo", 1, 0);
    CHECK_EQ_U(r.minor, 0);
    EXPECT_BODY("HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 3\r\n\r\nfoo", 200, "foo", 0, 0);
    /* CLI-REUSE-20: close-delimited */
    EXPECT_BODY_EOF("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello", 200, "hello", 0);
    CHECK_EQ_U(r.kind, HRP_BODY_CLOSE);
    PARSE("HTTP/1.1 200 OK\r\n\r\nhello", 0, 0, &r);
    CHECK(!r.done && r.err == HTTPC_OK && r.body_len == 5);
    /* Content-Length lists and repeats that agree */
    EXPECT_BODY("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nfoo", 200, "foo", 1, 0);
    /* lone LF line ends, missing reason phrase, empty reason, odd statuses */
    EXPECT_BODY("HTTP/1.1 200 OK\nContent-Length: 3\n\nfoo", 200, "foo", 1, 0);
    EXPECT_BODY("HTTP/1.1 200\r\nContent-Length: 3\r\n\r\nfoo", 200, "foo", 1, 0);
    EXPECT_BODY("HTTP/1.1 404 \r\nContent-Length: 3\r\n\r\nfoo", 404, "foo", 1, 0);
    EXPECT_BODY("HTTP/1.1 599 Whatever it is\r\nContent-Length: 3\r\n\r\nfoo", 599, "foo", 1, 0);
    EXPECT_BODY("HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Spaces: \t a b \t\r\nContent-Length: 1\r\n\r\nz", 200, "z", 1, 0);
    /* chunk sizes with leading zeros and uppercase hex; trailing whitespace before CRLF */
    EXPECT_BODY("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n000A  \r\n0123456789\r\n0\r\n\r\n", 200,
                "0123456789", 1, 0);
    /* header lookup */
    {
        struct hrp p;
        hrp_init(&p, NULL, 0);
        const char *in = "HTTP/1.1 200 OK\r\nX-A:  one \r\nKeep-Alive: timeout=5, max=100\r\nX-B:two\r\n\r\n";
        size_t used, dl;
        const uint8_t *d;
        CHECK_EQ_U(hrp_execute(&p, (const uint8_t *)in, strlen(in), 100, &used, &d, &dl), HRP_HEADERS);
        const char *v = hrp_field_value(&p, "x-a");
        CHECK(v && strcmp(v, "one") == 0);
        v = hrp_field_value(&p, "X-B");
        CHECK(v && strcmp(v, "two") == 0);
        CHECK(hrp_field_value(&p, "X-C") == NULL);
        CHECK_EQ_U(hrp_keep_alive_timeout(&p), 5);
        /* close-delimited: no data yet, max_data 0 pauses only once data is there */
        CHECK_EQ_U(hrp_execute(&p, (const uint8_t *)"ab", 2, 0, &used, &d, &dl), HRP_PAUSE);
        CHECK_EQ_U(used, 0);
        CHECK_EQ_U(hrp_execute(&p, (const uint8_t *)"ab", 2, 1, &used, &d, &dl), HRP_DATA);
        CHECK_EQ_U(dl, 1);
        hrp_free(&p);
    }
    /* A Content-Length body completes without another byte of input. */
    {
        struct hrp p;
        hrp_init(&p, NULL, 0);
        const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab";
        size_t used, dl;
        const uint8_t *d;
        CHECK_EQ_U(hrp_execute(&p, (const uint8_t *)in, strlen(in), 100, &used, &d, &dl), HRP_HEADERS);
        CHECK_EQ_U(hrp_execute(&p, (const uint8_t *)in + used, 2, 100, &used, &d, &dl), HRP_DATA);
        CHECK(hrp_done(&p));
        CHECK_EQ_U(hrp_execute(&p, NULL, 0, 100, &used, &d, &dl), HRP_DONE);
        CHECK_EQ_U(hrp_keep_alive_timeout(&p), (unsigned long long)-1);
        hrp_free(&p);
    }
}

static void test_malformed(struct test_counts *tc)
{
    /* status line */
    EXPECT_ERROR("HTTP/1.1 2OO OK\r\n\r\n", HTTPC_E_BAD_STATUS_LINE);
    EXPECT_ERROR("HTTP/1.1 20 OK\r\n\r\n", HTTPC_E_BAD_STATUS_LINE);
    EXPECT_ERROR("HTTP/1.1 099 Low\r\n\r\n", HTTPC_E_BAD_STATUS_LINE);
    EXPECT_ERROR("HTTP/1.1 2000 OK\r\n\r\n", HTTPC_E_BAD_STATUS_LINE);
    EXPECT_ERROR("HTTP/1.1  200 OK\r\n\r\n", HTTPC_E_BAD_STATUS_LINE);
    EXPECT_ERROR("HTTP/1.1 200\tOK\r\n\r\n", HTTPC_E_BAD_STATUS_LINE);
    EXPECT_ERROR("HTTP/1.1 200 O\x01K\r\n\r\n", HTTPC_E_BAD_STATUS_LINE);
    EXPECT_ERROR("http/1.1 200 OK\r\n\r\n", HTTPC_E_BAD_STATUS_LINE);
    EXPECT_ERROR("HTTP/1 200 OK\r\n\r\n", HTTPC_E_BAD_STATUS_LINE);
    EXPECT_ERROR("ICY 200 OK\r\n\r\n", HTTPC_E_BAD_STATUS_LINE);
    EXPECT_ERROR("\r\nHTTP/1.1 200 OK\r\n\r\n", HTTPC_E_BAD_STATUS_LINE);
    EXPECT_ERROR("BARHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nfoo", HTTPC_E_BAD_STATUS_LINE);
    EXPECT_ERROR("HTTP/1.1 200 OK\rContent-Length: 3\r\n\r\nfoo", HTTPC_E_BAD_STATUS_LINE);
    EXPECT_ERROR("HTTP/2.0 200 OK\r\n\r\n", HTTPC_E_BAD_VERSION);
    EXPECT_ERROR("HTTP/0.9 200 OK\r\n\r\n", HTTPC_E_BAD_VERSION);
    /* header fields */
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\nfoo", HTTPC_E_BAD_HEADER);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", HTTPC_E_BAD_HEADER);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", HTTPC_E_BAD_HEADER);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nBad(Name): v\r\n\r\n", HTTPC_E_BAD_HEADER);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nX: a\x01z\r\n\r\n", HTTPC_E_BAD_HEADER);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nX: a\x7fz\r\n\r\n", HTTPC_E_BAD_HEADER);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nX: a\rz\r\n\r\n", HTTPC_E_BAD_HEADER);
    {
        static const char nul[] = "HTTP/1.1 200 OK\r\nX: a\0z\r\n\r\n";
        parse_all_ways(tc, nul, sizeof(nul) - 1, 0, 1, &r, __LINE__);
        CHECK_EQ_U(r.err, HTTPC_E_BAD_HEADER);
    }
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", HTTPC_E_OBS_FOLD);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\n\tX: a\r\n\r\n", HTTPC_E_OBS_FOLD);
    /* oversized head, endless headers */
    {
        static char big[48 * 1024];
        strcpy(big, "HTTP/1.1 200 OK\r\nX-Big: ");
        size_t n = strlen(big);
        memset(big + n, 'a', 40 * 1024);
        strcpy(big + n + 40 * 1024, "\r\n\r\n");
        EXPECT_ERROR(big, HTTPC_E_HEAD_TOO_LARGE);
        strcpy(big, "HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < 101; i++)
            sprintf(big + strlen(big), "X-%d: v\r\n", i);
        strcat(big, "\r\n");
        EXPECT_ERROR(big, HTTPC_E_TOO_MANY_HEADERS);
        /* endless: never ends, still stopped by the head size limit */
        strcpy(big, "HTTP/1.1 200 OK\r\n");
        while (strlen(big) < sizeof(big) - 16)
            strcat(big, "a:b\r\n");
        EXPECT_ERROR(big, HTTPC_E_TOO_MANY_HEADERS);
    }
    /* Content-Length */
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", HTTPC_E_BAD_CONTENT_LENGTH);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nfoo", HTTPC_E_BAD_CONTENT_LENGTH);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 3a\r\n\r\nfoo", HTTPC_E_BAD_CONTENT_LENGTH);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 0x3\r\n\r\nfoo", HTTPC_E_BAD_CONTENT_LENGTH);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nfoo", HTTPC_E_BAD_CONTENT_LENGTH);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 3 4\r\n\r\nfoo", HTTPC_E_BAD_CONTENT_LENGTH);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", HTTPC_E_BAD_CONTENT_LENGTH);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n", HTTPC_E_BAD_CONTENT_LENGTH);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 9007199254740993\r\n\r\n", HTTPC_E_BAD_CONTENT_LENGTH);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nfoo",
                 HTTPC_E_CONFLICTING_CONTENT_LENGTH);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nfoo", HTTPC_E_CONFLICTING_CONTENT_LENGTH);
    /* Transfer-Encoding */
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n0\r\n\r\n",
                 HTTPC_E_CL_AND_TE);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nfoo", HTTPC_E_CL_AND_TE);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nfoo", HTTPC_E_UNSUPPORTED_TE);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", HTTPC_E_UNSUPPORTED_TE);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", HTTPC_E_UNSUPPORTED_TE);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
                 HTTPC_E_UNSUPPORTED_TE);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n", HTTPC_E_UNSUPPORTED_TE);
    EXPECT_ERROR("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", HTTPC_E_TE_IN_HTTP10);
    /* chunked framing */
#define CH "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    EXPECT_ERROR(CH "zz\r\nfoo\r\n0\r\n\r\n", HTTPC_E_BAD_CHUNK_SIZE);
    EXPECT_ERROR(CH "\r\nfoo\r\n0\r\n\r\n", HTTPC_E_BAD_CHUNK_SIZE);
    EXPECT_ERROR(CH "-1\r\nfoo\r\n0\r\n\r\n", HTTPC_E_BAD_CHUNK_SIZE);
    EXPECT_ERROR(CH "0x3\r\nfoo\r\n0\r\n\r\n", HTTPC_E_BAD_CHUNK_SIZE);
    EXPECT_ERROR(CH " 3\r\nfoo\r\n0\r\n\r\n", HTTPC_E_BAD_CHUNK_SIZE);
    EXPECT_ERROR(CH "3 4\r\nfoo\r\n0\r\n\r\n", HTTPC_E_BAD_CHUNK_SIZE);
    EXPECT_ERROR(CH ";ext\r\nfoo\r\n0\r\n\r\n", HTTPC_E_BAD_CHUNK_SIZE);
    EXPECT_ERROR(CH "3;e\x01\r\nfoo\r\n0\r\n\r\n", HTTPC_E_BAD_CHUNK_SIZE);
    EXPECT_ERROR(CH "3\rfoo\r\n0\r\n\r\n", HTTPC_E_BAD_CHUNK_SIZE);
    EXPECT_ERROR(CH "FFFFFFFFFFFFFFFFFF\r\n", HTTPC_E_CHUNK_TOO_LARGE);
    EXPECT_ERROR(CH "10000000001\r\n", HTTPC_E_CHUNK_TOO_LARGE);
    EXPECT_ERROR(CH "3\r\nfooX\r\n0\r\n\r\n", HTTPC_E_BAD_CHUNK);
    EXPECT_ERROR(CH "3\r\nfoo\r0\r\n\r\n", HTTPC_E_BAD_CHUNK);
    EXPECT_ERROR(CH "3\r\nfoo\r\n0\r\n folded: x\r\n\r\n", HTTPC_E_BAD_TRAILER);
    EXPECT_ERROR(CH "3\r\nfoo\r\n0\r\nX: \x01\r\n\r\n", HTTPC_E_BAD_TRAILER);
    {
        static char big[24 * 1024];
        strcpy(big, CH "0\r\n");
        while (strlen(big) < sizeof(big) - 16)
            strcat(big, "T: v\r\n");
        EXPECT_ERROR(big, HTTPC_E_BAD_TRAILER);
        /* an over-long chunk extension */
        strcpy(big, CH "3;");
        while (strlen(big) < 8192)
            strcat(big, "a=b;");
        EXPECT_ERROR(big, HTTPC_E_BAD_CHUNK_SIZE);
    }
    /* interim responses: at most 5 */
    EXPECT_ERROR("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
                 "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
                 "HTTP/1.1 204 No Content\r\n\r\n",
                 HTTPC_E_TOO_MANY_INTERIM);
    /* truncation at EOF (CLI-REUSE-9, 17b, 21) */
    EXPECT_ERROR("", HTTPC_E_EMPTY_REPLY);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Le", HTTPC_E_TRUNCATED_HEAD);
    EXPECT_ERROR("HTTP/1.1 100 Continue\r\n\r\n", HTTPC_E_TRUNCATED_HEAD);
    EXPECT_ERROR("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfoo", HTTPC_E_TRUNCATED_BODY);
    CHECK_EQ_U(r.body_len, 3);
    EXPECT_ERROR(CH "3\r\nfoo\r\n", HTTPC_E_TRUNCATED_BODY);
    EXPECT_ERROR(CH "3\r\nfoo\r\n0\r\n", HTTPC_E_TRUNCATED_BODY);
    EXPECT_ERROR(CH "3\r\nfo", HTTPC_E_TRUNCATED_BODY);
    /* CL+TE is an error even where there is no body */
    EXPECT_ERROR_HEAD("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", HTTPC_E_CL_AND_TE);
#undef CH
}

static void test_sticky_error(struct test_counts *tc)
{
    struct hrp p;
    hrp_init(&p, NULL, 0);
    size_t used, dl;
    const uint8_t *d;
    CHECK_EQ_U(hrp_execute(&p, (const uint8_t *)"XTTP", 4, 10, &used, &d, &dl), HRP_NEED_MORE);
    CHECK_EQ_U(hrp_execute(&p, (const uint8_t *)"/1.1 200 OK\r\n", 13, 10, &used, &d, &dl), HRP_ERROR);
    CHECK_EQ_U(hrp_execute(&p, (const uint8_t *)"\r\n", 2, 10, &used, &d, &dl), HRP_ERROR);
    CHECK_EQ_U(used, 0);
    CHECK_EQ_U(hrp_finish(&p), HRP_ERROR);
    CHECK_EQ_U(hrp_error(&p), HTTPC_E_BAD_STATUS_LINE);
    hrp_free(&p);
    /* errors all have text */
    for (int e = 0; e < HTTPC_E__COUNT; e++)
        CHECK(strcmp(httpc_strerror((httpc_error)e), "unknown error") != 0);
    CHECK(strcmp(httpc_strerror(HTTPC_E__COUNT), "unknown error") == 0);
}

int main(void)
{
    struct test_counts counts = {0, 0};
    struct test_counts *tc = &counts;
    test_valid(tc);
    test_malformed(tc);
    test_sticky_error(tc);
    return test_finish(tc);
}
