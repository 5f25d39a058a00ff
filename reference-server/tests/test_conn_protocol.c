/* Unit tests of the connection state machine (fcgi_conn.h) without faults: what
 * the reference answers to well-formed, odd and malformed input. The table runs
 * each row's input on a fresh connection; the functions below it are the tests
 * of other shapes (several steps on one connection, timers, generated input). */
#include "conn_harness.h"

#include <stdlib.h>
#include <string.h>

#define R FCGI_RESPONDER
#define KEEP FCGI_KEEP_CONN

/* PARAMS over max_params_bytes (4096 in the ERRORS rows). */
static void put_params_over_limit(struct wire *w)
{
    put_begin(w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    uint8_t big[3000];
    memset(big, 'p', sizeof(big));
    struct buf huge = {0};
    nv_put(&huge, "H", 1, big, sizeof(big));
    nv_put(&huge, "I", 1, big, sizeof(big));
    put_stream(w, FCGI_PARAMS, 1, huge.data, huge.len);
    buf_free(&huge);
}

/* Forty requests of every role at every stage, none of them complete. */
static void put_forty_unfinished(struct wire *w)
{
    for (uint16_t id = 1; id <= 40; id++) {
        put_begin(w, id, (uint16_t)(1 + id % 3), FCGI_KEEP_CONN);
        if (id % 2)
            put_end(w, FCGI_PARAMS, id);
        if (id % 4 == 1)
            put_stream(w, FCGI_DATA, id, "d", 1);
    }
}

/* Request 300 finished first, so it was answered first: request 1's END_REQUEST is last. */
static void request_1_answered_last(struct test_counts *tc, const struct side *s, const struct side *good)
{
    (void)good;
    struct fcgi_end_request end;
    CHECK(end_of(&s->r, 300, &end) && s->r.v[s->r.n - 1].id == 1);
}

/* Input that must close the connection: a reason is given, the request in flight
 * gets no END_REQUEST (the connection is failing), and nothing more is taken. */
#define FAILS(why) \
    EXPECT(IS_CLOSING, WANTS_INPUT(false), REASON(why), FRAMING, ENDS(0), TAKES_NO_MORE)
#define ERRORS .config = {.max_params_bytes = 4096}

/* A request whose only PARAMS record is `bytes`. */
#define BAD_PARAMS(bytes)                                                                                   \
    OPS(BEGIN(1, R, KEEP), REC(FCGI_PARAMS, 1, bytes), EMPTY(FCGI_PARAMS, 1), EMPTY(FCGI_STDIN, 1))
#define BAD_VERSION_FIRST(v) OPS(REC_VERSION(v, FCGI_GET_VALUES, 0))
#define BAD_VERSION_MID(v)                                                                                  \
    OPS(BEGIN(1, R, KEEP), PARAMS(1, "QUERY_STRING="), REC_VERSION(v, FCGI_PARAMS, 1), EMPTY(FCGI_STDIN, 1))

/* A Filter request: STDIN "stdin", and DATA "file to filter\r\n" after STDIN ended
 * or (DATA_FIRST) before. */
#define FILTER_PARAMS(length) PARAMS(1, "FCGI_DATA_LENGTH=" length "\nFCGI_DATA_LAST_MOD=0")
#define FILTER_DATA_AFTER(length)                                                                           \
    OPS(BEGIN(1, FCGI_FILTER, KEEP), FILTER_PARAMS(length), EMPTY(FCGI_PARAMS, 1), STREAM(FCGI_STDIN, 1, "stdin"), \
        EMPTY(FCGI_STDIN, 1), PIECES(FCGI_DATA, 1, "file to filter\r\n", 5), EMPTY(FCGI_DATA, 1))
#define FILTER_DATA_FIRST(length)                                                                           \
    OPS(BEGIN(1, FCGI_FILTER, KEEP), FILTER_PARAMS(length), EMPTY(FCGI_PARAMS, 1),                           \
        PIECES(FCGI_DATA, 1, "file to filter\r\n", 3), STREAM(FCGI_STDIN, 1, "stdin"), EMPTY(FCGI_STDIN, 1),  \
        EMPTY(FCGI_DATA, 1))
#define FILTERED                                                                                            \
    EXPECT(COMPLETE(1), HAS(1, "X-Filter-Stdin-Length: 5\r\n"), BODY_IS(1, "file to filter\r\n"), STDERR_IS(1, ""))

#define AUTHORIZER(pairs) OPS(REQ_WITH(1, FCGI_AUTHORIZER, KEEP, "REQUEST_METHOD=GET" pairs, ""))

#define ERR_REPEAT(query, text, times)                                                                      \
    {query, .input = OPS(REQ(1, R, KEEP, query, "")),                                                       \
     .want = EXPECT(COMPLETE(1), STDERR_REPEATED(1, text, times), OUT_HAS("Status: 200 OK\r\n"))}

/* The probe's CONTENT_LENGTH check: STDIN shorter than CONTENT_LENGTH is refused. */
#define CL_INPUT(query, length, stdin_)                                                                     \
    OPS(REQ_WITH(1, R, KEEP, "QUERY_STRING=" query "\nREQUEST_METHOD=POST\nCONTENT_LENGTH=" length, stdin_))
#define CL_SHORT(query, length, stdin_, got)                                                                \
    {"CONTENT_LENGTH " length ", STDIN \"" stdin_ "\", query \"" query "\"", .input = CL_INPUT(query, length, stdin_), \
     .want = EXPECT(COMPLETE(1), STARTS(1, "Status: 400 "),                                                 \
                    HAS(1, "\r\nX-Probe-Error: stdin shorter than CONTENT_LENGTH\r\n"),                     \
                    HAS(1, "X-Probe-Stdin-Length: " got "\r\n"))}
#define CL_FULL(query, length, stdin_, got, status)                                                         \
    {"CONTENT_LENGTH " length ", STDIN \"" stdin_ "\", query \"" query "\"", .input = CL_INPUT(query, length, stdin_), \
     .want = EXPECT(COMPLETE(1), STARTS(1, status), LACKS(1, "X-Probe-Error"),                             \
                    HAS(1, "X-Probe-Stdin-Length: " got "\r\n"))}

static const struct conn_case protocol_cases[] = {
    {"a Responder request", .input = OPS(REQ(1, R, KEEP, "", "")),
     .want = EXPECT(TAKEN_ALL, COMPLETE(1), ONLY_ID(1), COUNT_MIN(FCGI_STDOUT, 1, 2), FIRST_TYPE(FCGI_STDOUT),
                    STARTS(1, "Status: 200 OK\r\n"), HAS(1, "\"role\":\"responder\""),
                    HAS(1, "[\"REQUEST_METHOD\",\"GET\"]"), HAS(1, "\"stdin_length\":0"),
                    COUNT(FCGI_STDERR, ANY_ID, 0), ACTIVE(0), IS_OPEN, WANTS_INPUT(true), WAKEUP(0))},
    {"status, STDERR and app status", .input = OPS(REQ(9, R, KEEP, "status=404&err=oops%21&app_status=7", "body")),
     .want = EXPECT(ANSWER(9, 7, FCGI_REQUEST_COMPLETE), HAS(9, "Status: 404 "), HAS(9, "\"stdin_length\":4"),
                    STDERR_IS(9, "oops!"), COUNT(FCGI_STDERR, 9, 2))},

    /* FCGI_KEEP_CONN; a normal close has no reason. */
    {"KEEP_CONN clear", .input = OPS(REQ(1, R, 0, "", "")),
     .want = EXPECT(TAKEN_ALL, COMPLETE(1), IS_CLOSING, WANTS_INPUT(false), NO_REASON)},
    {"KEEP_CONN set", .input = OPS(REQ(1, R, KEEP, "", "")),
     .want = EXPECT(TAKEN_ALL, COMPLETE(1), IS_OPEN, WANTS_INPUT(true), NO_REASON)},

    /* GET_VALUES: the three values the spec names, and nothing else; --no-mpx and
     * --max-conns are what FCGI_MPXS_CONNS and FCGI_MAX_CONNS report. */
    {"GET_VALUES for all three", .input = OPS(GET_VALUES("FCGI_MAX_CONNS\nFCGI_MAX_REQS\nFCGI_MPXS_CONNS")),
     .want = EXPECT(FRAMING, VALUES("FCGI_MAX_CONNS=1024\nFCGI_MAX_REQS=4096\nFCGI_MPXS_CONNS=1"), IS_OPEN)},
    {"GET_VALUES for unknown names", .input = OPS(GET_VALUES("FCGI_MAX_REQS\nFCGI_NO_SUCH_VALUE\nfcgi_max_conns\nX")),
     .want = EXPECT(FRAMING, VALUES("FCGI_MAX_REQS=4096"), IS_OPEN)},
    {"GET_VALUES for nothing", .input = OPS(GET_VALUES("")), .want = EXPECT(FRAMING, VALUES(""), IS_OPEN)},
    {"GET_VALUES with --no-mpx --max-conns 7", .config = {.no_mpx = true, .max_conns = 7},
     .input = OPS(GET_VALUES("FCGI_MAX_CONNS\nFCGI_MAX_REQS\nFCGI_MPXS_CONNS")),
     .want = EXPECT(VALUES("FCGI_MAX_CONNS=7\nFCGI_MAX_REQS=4096\nFCGI_MPXS_CONNS=0"))},

    /* Unknown management types, and application types sent with the null id (§4.2). */
#define UNKNOWN(type, name)                                                                                 \
    {"record type " name " with id 0", .input = OPS(REC(type, 0, "abcdefgh")),                              \
     .want = EXPECT(FRAMING, UNKNOWN_TYPE_FOR(type), IS_OPEN)}
    UNKNOWN(200, "200"),
    UNKNOWN(0, "0"),
    UNKNOWN(12, "12"),
    UNKNOWN(255, "255"),
    UNKNOWN(FCGI_BEGIN_REQUEST, "BEGIN_REQUEST"),
    UNKNOWN(FCGI_STDIN, "STDIN"),
    UNKNOWN(FCGI_GET_VALUES_RESULT, "GET_VALUES_RESULT"),
#undef UNKNOWN

#define UNKNOWN_ROLE(role, name)                                                                            \
    {"role " name, .input = OPS(REQ(3, role, KEEP, "", "ignored")),                                         \
     .want = EXPECT(TAKEN_ALL, ANSWER(3, 0, FCGI_UNKNOWN_ROLE), RECORDS(1), IS_OPEN, ACTIVE(0))}
    UNKNOWN_ROLE(0, "0"),
    UNKNOWN_ROLE(4, "4"),
    UNKNOWN_ROLE(0xFFFF, "65535"),
#undef UNKNOWN_ROLE
    /* A role the server was told not to serve is unknown too; KEEP_CONN was clear. */
    {"a Filter with --roles responder", .config = {.roles = ROLE_MASK_RESPONDER},
     .input = OPS(REQ(3, FCGI_FILTER, 0, "", "")),
     .want = EXPECT(ANSWER(3, 0, FCGI_UNKNOWN_ROLE), RECORDS(1), IS_CLOSING)},

    {"records for inactive ids are ignored",
     .input = OPS(REC(FCGI_PARAMS, 7, "abc"), EMPTY(FCGI_PARAMS, 7), REC(FCGI_STDIN, 7, "abc"), EMPTY(FCGI_STDIN, 7),
                  REC(FCGI_DATA, 7, "abc"), EMPTY(FCGI_DATA, 7), REC(FCGI_ABORT_REQUEST, 7, "abc"),
                  EMPTY(FCGI_ABORT_REQUEST, 7), REC(FCGI_END_REQUEST, 7, "abc"), EMPTY(FCGI_END_REQUEST, 7),
                  REC(FCGI_STDOUT, 7, "abc"), EMPTY(FCGI_STDOUT, 7), REC(FCGI_GET_VALUES, 7, "abc"),
                  EMPTY(FCGI_GET_VALUES, 7), REC(200, 7, "abc"), EMPTY(200, 7)),
     .want = EXPECT(TAKEN_ALL, OUT_LEN(0), IS_OPEN, ACTIVE(0))},
    /* The web server's bug; the first request keeps the id, and its KEEP_CONN holds. */
    {"a second BEGIN_REQUEST for an active id is ignored",
     .input = OPS(BEGIN(5, R, KEEP), PARAMS(5, "QUERY_STRING=status=202"), BEGIN(5, FCGI_FILTER, 0),
                  EMPTY(FCGI_PARAMS, 5), BEGIN(5, FCGI_AUTHORIZER, 0), EMPTY(FCGI_STDIN, 5)),
     .want = EXPECT(COMPLETE(5), HAS(5, "Status: 202 "), HAS(5, "\"role\":\"responder\""), IS_OPEN)},

    /* A connection past max_conns frees its slot whatever KEEP_CONN says. */
    {"past max_conns, KEEP_CONN clear", .config = {.overloaded = true}, .input = OPS(REQ(1, R, 0, "", "")),
     .want = EXPECT(ANSWER(1, 0, FCGI_OVERLOADED), RECORDS(1), IS_CLOSING, ACTIVE(0))},
    {"past max_conns, KEEP_CONN set", .config = {.overloaded = true}, .input = OPS(REQ(1, R, KEEP, "", "")),
     .want = EXPECT(ANSWER(1, 0, FCGI_OVERLOADED), RECORDS(1), IS_CLOSING, ACTIVE(0))},

    /* Request 300 finishes first, so it is answered first. */
    {"two requests multiplexed",
     .input = OPS(BEGIN(1, R, KEEP), BEGIN(300, R, KEEP), PARAMS(300, "QUERY_STRING=status=404&app_status=2"),
                  PARAMS(1, "QUERY_STRING=status=201"), EMPTY(FCGI_PARAMS, 1), EMPTY(FCGI_PARAMS, 300),
                  STREAM(FCGI_STDIN, 1, "one"), STREAM(FCGI_STDIN, 300, "three hundred"), EMPTY(FCGI_STDIN, 300),
                  EMPTY(FCGI_STDIN, 1)),
     .want = EXPECT(COMPLETE(1), ANSWER(300, 2, FCGI_REQUEST_COMPLETE), ONLY_IDS(1, 300), HAS(1, "Status: 201 "),
                    HAS(1, "\"stdin_length\":3"), HAS(300, "Status: 404 "), HAS(300, "\"stdin_length\":13"),
                    CHECKED_BY(request_1_answered_last), IS_OPEN)},

    /* Malformed input closes the connection. */
    {"PARAMS over the limit", ERRORS, .input = OPS(BUILD(put_params_over_limit)),
     .want = FAILS("PARAMS over the limit")},
    {"version 0, first record", ERRORS, .input = BAD_VERSION_FIRST(0), .want = FAILS("version")},
    {"version 0, mid-request", ERRORS, .input = BAD_VERSION_MID(0), .want = FAILS("version")},
    {"version 2, first record", ERRORS, .input = BAD_VERSION_FIRST(2), .want = FAILS("version")},
    {"version 2, mid-request", ERRORS, .input = BAD_VERSION_MID(2), .want = FAILS("version")},
    {"version 255, first record", ERRORS, .input = BAD_VERSION_FIRST(255), .want = FAILS("version")},
    {"version 255, mid-request", ERRORS, .input = BAD_VERSION_MID(255), .want = FAILS("version")},
#define BEGIN_BODY "\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    {"BEGIN_REQUEST body of 0 bytes", ERRORS, .input = OPS(REC_N(FCGI_BEGIN_REQUEST, 1, BEGIN_BODY, 0)),
     .want = FAILS("BEGIN_REQUEST")},
    {"BEGIN_REQUEST body of 7 bytes", ERRORS, .input = OPS(REC_N(FCGI_BEGIN_REQUEST, 1, BEGIN_BODY, 7)),
     .want = FAILS("BEGIN_REQUEST")},
    {"BEGIN_REQUEST body of 9 bytes", ERRORS, .input = OPS(REC_N(FCGI_BEGIN_REQUEST, 1, BEGIN_BODY, 9)),
     .want = FAILS("BEGIN_REQUEST")},
    {"BEGIN_REQUEST body of 16 bytes", ERRORS, .input = OPS(REC_N(FCGI_BEGIN_REQUEST, 1, BEGIN_BODY, 16)),
     .want = FAILS("BEGIN_REQUEST")},
#undef BEGIN_BODY
    {"STDIN before PARAMS ended", ERRORS,
     .input = OPS(BEGIN(1, R, KEEP), PARAMS(1, "QUERY_STRING="), STREAM(FCGI_STDIN, 1, "early")),
     .want = FAILS("STDIN before PARAMS")},
    {"end of STDIN before PARAMS", ERRORS, .input = OPS(BEGIN(1, R, KEEP), EMPTY(FCGI_STDIN, 1)),
     .want = FAILS("STDIN before PARAMS")},
    {"DATA to a Filter before PARAMS ended", ERRORS,
     .input = OPS(BEGIN(1, FCGI_FILTER, KEEP), STREAM(FCGI_DATA, 1, "early")), .want = FAILS("DATA before PARAMS")},
    /* Malformed PARAMS: lengths past the end, cut-short 4-byte lengths, 31-bit lengths. */
    {"PARAMS value length past the end", ERRORS, .input = BAD_PARAMS("\x05\x01" "a"),
     .want = FAILS("malformed PARAMS")},
    {"PARAMS without the value", ERRORS, .input = BAD_PARAMS("\x01\x00"), .want = FAILS("malformed PARAMS")},
    {"PARAMS 4-byte name length cut short", ERRORS, .input = BAD_PARAMS("\x80\x00\x00"),
     .want = FAILS("malformed PARAMS")},
    {"PARAMS 4-byte value length cut short", ERRORS, .input = BAD_PARAMS("\x01\x80\x00"),
     .want = FAILS("malformed PARAMS")},
    {"PARAMS 31-bit lengths", ERRORS, .input = BAD_PARAMS("\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF" "x"),
     .want = FAILS("malformed PARAMS")},
    {"PARAMS 31-bit value length", ERRORS, .input = BAD_PARAMS("\x01\xFF\xFF\xFF\xFF" "xy"),
     .want = FAILS("malformed PARAMS")},
    {"PARAMS 4-byte lengths past the end", ERRORS, .input = BAD_PARAMS("\x80\x00\x00\x01\x80\x00\x00\x01" "n"),
     .want = FAILS("malformed PARAMS")},
    {"PARAMS with a cut-short second pair", ERRORS, .input = BAD_PARAMS("\x01\x01" "nv" "\x03"),
     .want = FAILS("malformed PARAMS")},

    /* Requests still in flight when the connection is freed give their count back:
     * all but the 7 Authorizers (id % 6 == 1) whose PARAMS ended, which have answered. */
    {"freed with requests in flight", .input = OPS(BUILD(put_forty_unfinished)), .want = EXPECT(ACTIVE(33))},

    {"Authorizer, allowed", .input = AUTHORIZER("\nHTTP_AUTHORIZATION=Bearer fcgispec"),
     .want = EXPECT(TAKEN_ALL, COMPLETE(1), HAS(1, "Status: 200 OK\r\n"), HAS(1, "Variable-FCGISPEC_USER: probe\r\n"),
                    IS_OPEN)},
    {"Authorizer, wrong token", .input = AUTHORIZER("\nHTTP_AUTHORIZATION=Bearer wrong"),
     .want = EXPECT(TAKEN_ALL, COMPLETE(1), HAS(1, "Status: 403 "), LACKS(1, "Variable-"), IS_OPEN)},
    {"Authorizer, no token", .input = AUTHORIZER(""),
     .want = EXPECT(TAKEN_ALL, COMPLETE(1), HAS(1, "Status: 403 "), LACKS(1, "Variable-"), IS_OPEN)},

    {"Filter, DATA after STDIN", .input = FILTER_DATA_AFTER("16"), .want = FILTERED},
    {"Filter, DATA before STDIN ended (held back)", .input = FILTER_DATA_FIRST("16"), .want = FILTERED},
    {"Filter, wrong FCGI_DATA_LENGTH", .input = FILTER_DATA_AFTER("99"),
     .want = EXPECT(ANSWER(1, 1, FCGI_REQUEST_COMPLETE), HAS(1, "X-Filter-Stdin-Length: 5\r\n"),
                    STDERR_HAS(1, "FCGI_DATA_LENGTH is 99 but 16"))},

    /* The probe app's err_repeat. */
    ERR_REPEAT("err=ab%21&err_repeat=3", "ab!", 3),
    ERR_REPEAT("err=ab&err_repeat=1", "ab", 1),
    ERR_REPEAT("err=ab", "ab", 1),
    {"err=ab&err_repeat=0", .input = OPS(REQ(1, R, KEEP, "err=ab&err_repeat=0", "")),
     .want = EXPECT(COMPLETE(1), STDERR_REPEATED(1, "ab", 0), COUNT(FCGI_STDERR, ANY_ID, 0),
                    OUT_HAS("Status: 200 OK\r\n"))},
    ERR_REPEAT("err=x&err_repeat=100000", "x", 100000),
    ERR_REPEAT("err=0123456789&err_repeat=20000&out=10", "0123456789", 20000),

    /* The probe app's CONTENT_LENGTH check. */
    CL_SHORT("", "10", "abc", "3"),
    CL_SHORT("", "4", "abc", "3"),
    CL_SHORT("", "1", "", "0"),
    CL_FULL("", "3", "abc", "3", "Status: 200 OK\r\n"),
    CL_FULL("", "2", "abc", "3", "Status: 200 OK\r\n"),
    CL_FULL("", "0", "", "0", "Status: 200 OK\r\n"),
    CL_SHORT("out=5", "10", "abc", "3"),
    CL_FULL("out=5", "3", "abc", "3", "Status: 200 OK\r\n"),
    CL_SHORT("status=201", "10", "abc", "3"),
    {"CONTENT_LENGTH with STDIN in several records",
     .input = OPS(BEGIN(1, R, KEEP), PARAMS(1, "QUERY_STRING=\nCONTENT_LENGTH=6"), EMPTY(FCGI_PARAMS, 1),
                  PIECES(FCGI_STDIN, 1, "abcdef", 2), EMPTY(FCGI_STDIN, 1)),
     .want = EXPECT(OUT_HAS("Status: 200 OK\r\n"), OUT_LACKS("X-Probe-Error"))},
};

/* ---- tests of other shapes ------------------------------------------------------------ */

/* The id is free as soon as END_REQUEST is queued (spec §3.3). */
static void test_id_reuse(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "x");
    size_t answered = 0;
    for (int i = 0; i < 1000; i++) {
        f.out.len = 0;
        if (fx_send(&f, &w) != w.b.len)
            break;
        struct recs r = parse_records(&f.out);
        struct fcgi_end_request end;
        if (count_records(&r, FCGI_END_REQUEST, 1) == 1 && end_of(&r, 1, &end) && end.protocol_status == 0)
            answered++;
        recs_free(&r);
        if (f.load.active_requests != 0 || fx_closing(&f))
            break;
    }
    CHECK_EQ_U(answered, 1000);
    CHECK_EQ_U(f.load.active_requests, 0);
    CHECK(!fx_closing(&f));
    buf_free(&w.b);
    fx_close(tc, &f);
}

static void test_abort(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct buf params = {0};
    nv_put_text(&params, "QUERY_STRING", "");
    put_stream(&w, FCGI_PARAMS, 1, params.data, params.len);
    put_end(&w, FCGI_PARAMS, 1);
    put_stream(&w, FCGI_STDIN, 1, "half of it", 10);
    put_record(&w, FCGI_ABORT_REQUEST, 1, NULL, 0);
    fx_send(&f, &w);
    struct recs r = parse_records(&f.out);
    check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(r.n, 2); /* empty STDOUT, END_REQUEST */
    CHECK_EQ_U(f.load.active_requests, 0);
    recs_free(&r);
    /* The rest of the aborted request's records are for an inactive id now. */
    size_t before = f.out.len;
    wire_reset(&w);
    put_stream(&w, FCGI_STDIN, 1, "the rest", 8);
    put_end(&w, FCGI_STDIN, 1);
    put_record(&w, FCGI_ABORT_REQUEST, 1, NULL, 0);
    CHECK_EQ_U(fx_send(&f, &w), w.b.len);
    CHECK_EQ_U(f.out.len, before);
    /* And the connection still serves. */
    wire_reset(&w);
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    fx_send(&f, &w);
    r = parse_records(&f.out);
    check_answer(tc, &r, 2, 0, FCGI_REQUEST_COMPLETE);
    recs_free(&r);
    /* An abort before PARAMS ended, with the app not started yet. */
    wire_reset(&w);
    put_begin(&w, 3, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_stream(&w, FCGI_PARAMS, 3, params.data, params.len);
    put_record(&w, FCGI_ABORT_REQUEST, 3, NULL, 0);
    fx_send(&f, &w);
    r = parse_records(&f.out);
    check_answer(tc, &r, 3, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(f.load.active_requests, 0);
    CHECK(!fx_closing(&f));
    recs_free(&r);
    buf_free(&params);
    buf_free(&w.b);
    fx_close(tc, &f);
}

static void test_no_mpx(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    f.limits.mpx = false;
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_begin(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN);
    fx_send(&f, &w);
    struct recs r = parse_records(&f.out);
    check_answer(tc, &r, 2, 0, FCGI_CANT_MPX_CONN);
    CHECK_EQ_U(r.n, 1);
    CHECK_EQ_U(f.load.active_requests, 1);
    recs_free(&r);
    wire_reset(&w);
    put_end(&w, FCGI_PARAMS, 1);
    put_end(&w, FCGI_STDIN, 1);
    fx_send(&f, &w);
    r = parse_records(&f.out);
    check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK(!fx_closing(&f));
    recs_free(&r);
    /* One at a time still works: the next request after the first ended. */
    wire_reset(&w);
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    fx_send(&f, &w);
    r = parse_records(&f.out);
    CHECK_EQ_U(count_records(&r, FCGI_END_REQUEST, 2), 2);
    recs_free(&r);
    buf_free(&w.b);
    fx_close(tc, &f);
}

static void test_max_reqs(struct test_counts *tc)
{
    struct fx a, b;
    fx_init(&a);
    a.limits.max_reqs = 1;
    fx_open(&a);
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_begin(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN);
    fx_send(&a, &w);
    struct recs r = parse_records(&a.out);
    check_answer(tc, &r, 2, 0, FCGI_OVERLOADED);
    CHECK_EQ_U(r.n, 1);
    recs_free(&r);
    /* The limit is across connections: a second connection sharing the load. */
    fx_init(&b);
    b.c = fcgi_conn_new(&a.limits, &a.load, 2, false, a.now);
    wire_reset(&w);
    put_request(&w, 1, FCGI_RESPONDER, 0, "", "");
    fx_send(&b, &w);
    r = parse_records(&b.out);
    check_answer(tc, &r, 1, 0, FCGI_OVERLOADED);
    CHECK_EQ_U(r.n, 1);
    CHECK(fx_closing(&b));
    recs_free(&r);
    fcgi_conn_free(b.c);
    buf_free(&b.out);
    CHECK_EQ_U(a.load.active_requests, 1);
    fx_close(tc, &a);
    buf_free(&w.b);
}

/* Every inbound record carries 1..255 bytes of non-zero padding, which must be
 * skipped whatever it looks like (here: bytes that would read as a header). */
static void test_padding(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    fx_open(&f);
    size_t answered = 0;
    for (int pad = 1; pad <= 255; pad++) {
        struct wire w;
        wire_init(&w);
        w.pad_len = pad;
        w.pad_byte = (uint8_t)(pad % 2 ? 0x01 : 0xA5);
        put_request(&w, (uint16_t)pad, FCGI_RESPONDER, FCGI_KEEP_CONN, "status=203", "padded");
        put_get_values(&w, NULL, 0);
        f.out.len = 0;
        fx_send(&f, &w);
        struct recs r = parse_records(&f.out);
        struct buf out = {0};
        stream_of(&r, FCGI_STDOUT, (uint16_t)pad, &out);
        struct fcgi_end_request end;
        if (end_of(&r, (uint16_t)pad, &end) && buf_has(&out, "Status: 203 ") && buf_has(&out, "\"stdin_length\":6") &&
            count_records(&r, FCGI_GET_VALUES_RESULT, 0) == 1)
            answered++;
        else
            printf("    padding %d: not answered as expected\n", pad);
        buf_free(&out);
        recs_free(&r);
        buf_free(&w.b);
    }
    CHECK_EQ_U(answered, 255);
    CHECK(!fx_closing(&f));
    fx_close(tc, &f);
}

static void test_byte_at_a_time(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_conversation(&w);
    struct fx whole, bytes;
    fx_init(&whole);
    fx_open(&whole);
    CHECK_EQ_U(fx_send(&whole, &w), w.b.len);
    fx_init(&bytes);
    fx_open(&bytes);
    size_t taken = 0;
    for (size_t i = 0; i < w.b.len; i++) {
        taken += fx_send_bytes(&bytes, w.b.data + i, 1);
        fx_drain(&bytes);
    }
    CHECK_EQ_U(taken, w.b.len);
    CHECK(whole.out.len > 0);
    CHECK(buf_eq(&bytes.out, whole.out.data, whole.out.len));
    struct recs r = parse_records(&whole.out);
    check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &r, 2, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &r, 3, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &r, 4, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_records(&r, FCGI_GET_VALUES_RESULT, 0), 1);
    CHECK_EQ_U(count_records(&r, FCGI_UNKNOWN_TYPE, 0), 1);
    CHECK(fx_closing(&whole) && fx_closing(&bytes)); /* request 4 had KEEP_CONN clear */
    recs_free(&r);
    buf_free(&w.b);
    fx_close(tc, &whole);
    fx_close(tc, &bytes);
}

/* A pair cut at every possible point between two PARAMS records. */
static void test_params_split_pair(struct test_counts *tc)
{
    struct buf p = {0};
    nv_put_text(&p, "QUERY_STRING", "status=201");
    uint8_t long_value[200];
    memset(long_value, 'v', sizeof(long_value));
    nv_put(&p, "LONG_VALUE", 10, long_value, sizeof(long_value)); /* 4-byte length to cut too */
    size_t good = 0;
    for (size_t cut = 1; cut < p.len; cut++) {
        struct wire w;
        wire_init(&w);
        put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
        put_record(&w, FCGI_PARAMS, 1, p.data, cut);
        put_record(&w, FCGI_PARAMS, 1, p.data + cut, p.len - cut);
        put_end(&w, FCGI_PARAMS, 1);
        put_end(&w, FCGI_STDIN, 1);
        struct run run;
        run_wire(tc, 0, &w, &run);
        struct recs r = parse_records(&run.out);
        struct buf out = {0};
        stream_of(&r, FCGI_STDOUT, 1, &out);
        if (buf_has(&out, "Status: 201 ") && report_has_pair(&out, (const uint8_t *)"LONG_VALUE", 10, long_value, 200))
            good++;
        else
            printf("    split at %zu: pair lost\n", cut);
        buf_free(&out);
        recs_free(&r);
        buf_free(&run.out);
        buf_free(&w.b);
    }
    CHECK_EQ_U(good, p.len - 1);
    buf_free(&p);
}

/* 4-byte name and value lengths, including values longer than one record. */
static void test_long_lengths(struct test_counts *tc)
{
    const size_t lengths[] = {127, 128, 255, 256, 65535, 65536, 200000};
    for (size_t k = 0; k < sizeof(lengths) / sizeof(lengths[0]); k++) {
        size_t n = lengths[k];
        uint8_t *name = xrealloc(NULL, 128), *value = xrealloc(NULL, n);
        memset(name, 'N', 128);
        for (size_t i = 0; i < n; i++)
            value[i] = (uint8_t)('A' + i % 26);
        struct buf p = {0};
        nv_put(&p, name, 128, value, n);
        nv_put(&p, "AFTER", 5, "yes", 3); /* a misread length would swallow this */
        struct wire w;
        wire_init(&w);
        put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
        put_stream(&w, FCGI_PARAMS, 1, p.data, p.len);
        put_end(&w, FCGI_PARAMS, 1);
        put_end(&w, FCGI_STDIN, 1);
        struct run run;
        run_wire(tc, 0, &w, &run);
        struct recs r = parse_records(&run.out);
        check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
        struct buf out = {0};
        stream_of(&r, FCGI_STDOUT, 1, &out);
        CHECK(report_has_pair(&out, name, 128, value, n));
        CHECK(report_has_pair(&out, (const uint8_t *)"AFTER", 5, (const uint8_t *)"yes", 3));
        buf_free(&out);
        recs_free(&r);
        buf_free(&run.out);
        buf_free(&w.b);
        buf_free(&p);
        free(name);
        free(value);
    }
}

/* Management and application records of odd shapes are not protocol errors. */
static void test_odd_but_legal(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    /* Content on ABORT and on records for the wrong role, reserved bytes set in BEGIN,
     * a GET_VALUES mid-request, END_REQUEST from the web server for an active id. */
    uint8_t begin[8] = {0, FCGI_RESPONDER, FCGI_KEEP_CONN | 0xFE, 1, 2, 3, 4, 5};
    put_record(&w, FCGI_BEGIN_REQUEST, 4, begin, 8);
    put_end(&w, FCGI_PARAMS, 4);
    put_stream(&w, FCGI_DATA, 4, "not for a responder", 19);
    put_record(&w, FCGI_END_REQUEST, 4, "12345678", 8);
    put_record(&w, FCGI_STDOUT, 4, "who", 3);
    put_record(&w, 99, 4, "?", 1);
    const char *const names[] = {"FCGI_MAX_CONNS"};
    put_get_values(&w, names, 1);
    put_end(&w, FCGI_STDIN, 4);
    put_end(&w, FCGI_PARAMS, 4); /* late: the stream ended already */
    CHECK_EQ_U(fx_send(&f, &w), w.b.len);
    struct recs r = parse_records(&f.out);
    check_answer(tc, &r, 4, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_records(&r, FCGI_GET_VALUES_RESULT, 0), 1);
    struct buf out = {0};
    stream_of(&r, FCGI_STDOUT, 4, &out);
    CHECK(buf_has(&out, "\"stdin_length\":0"));
    CHECK(!fx_closing(&f)); /* KEEP_CONN bit set among the other flag bits */
    /* A malformed GET_VALUES query is an error, though. */
    wire_reset(&w);
    put_record(&w, FCGI_GET_VALUES, 0, "\x05" "\x00" "ab", 4);
    fx_send(&f, &w);
    CHECK(fx_closing(&f));
    CHECK(strstr(fcgi_conn_close_reason(f.c), "GET_VALUES") != NULL);
    buf_free(&out);
    recs_free(&r);
    buf_free(&w.b);
    fx_close(tc, &f);
}

static void test_delay(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "delay=50", "");
    fx_send(&f, &w);
    CHECK_EQ_U(f.out.len, 0);
    CHECK_EQ_U(fcgi_conn_next_wakeup(f.c), T0 + 50);
    CHECK_EQ_U(f.load.active_requests, 1);
    fcgi_conn_tick(f.c, T0 + 49);
    fx_drain(&f);
    CHECK_EQ_U(f.out.len, 0);
    CHECK_EQ_U(fcgi_conn_next_wakeup(f.c), T0 + 50);
    f.now = T0 + 50;
    fcgi_conn_tick(f.c, f.now);
    fx_drain(&f);
    struct recs r = parse_records(&f.out);
    check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(fcgi_conn_next_wakeup(f.c), 0);
    CHECK_EQ_U(f.load.active_requests, 0);
    recs_free(&r);

    /* Two delayed requests: the earliest wake-up is reported; EOF does not cut
     * short a request that has all its input. */
    wire_reset(&w);
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "delay=30", "");
    put_request(&w, 3, FCGI_RESPONDER, FCGI_KEEP_CONN, "delay=10", "");
    fx_send(&f, &w);
    CHECK_EQ_U(fcgi_conn_next_wakeup(f.c), f.now + 10);
    fcgi_conn_input_eof(f.c, f.now);
    CHECK(!fx_closing(&f));
    f.now += 10;
    fcgi_conn_tick(f.c, f.now);
    CHECK_EQ_U(fcgi_conn_next_wakeup(f.c), f.now + 20);
    f.now += 20;
    fcgi_conn_tick(f.c, f.now);
    fx_drain(&f);
    r = parse_records(&f.out);
    check_answer(tc, &r, 2, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &r, 3, 0, FCGI_REQUEST_COMPLETE);
    CHECK(fx_closing(&f));
    recs_free(&r);

    /* A pending timer when the connection is freed: no leak, counter back to 0. */
    struct fx g;
    fx_init(&g);
    fx_open(&g);
    wire_reset(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "delay=100000", "");
    fx_send(&g, &w);
    CHECK_EQ_U(g.load.active_requests, 1);
    fx_close(tc, &g);
    buf_free(&w.b);
    fx_close(tc, &f);
}

static void test_backpressure(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    f.limits.out_high_water = 16384;
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "out=1000000", "");
    CHECK_EQ_U(fcgi_conn_feed(f.c, w.b.data, w.b.len, f.now), w.b.len);
    size_t queued;
    fcgi_conn_output(f.c, &queued);
    /* Application output fills the queue only to half the high-water mark, so
     * that input (an ABORT_REQUEST, another request) is still read meanwhile. */
    CHECK(queued >= f.limits.out_high_water / 2);
    CHECK(queued < f.limits.out_high_water);
    CHECK(fcgi_conn_wants_input(f.c));
    /* Nothing but output_done makes the response grow: not time, not input. */
    fcgi_conn_tick(f.c, f.now + 1000);
    size_t again;
    fcgi_conn_output(f.c, &again);
    CHECK_EQ_U(again, queued);
    /* Answers to input fill the queue up to the high-water mark; past it, input
     * is refused until the peer reads: a peer that floods GET_VALUES without
     * reading cannot make the queue grow without bound. */
    struct wire flood;
    wire_init(&flood);
    for (int i = 0; i < 20000; i++) /* 160 KB: more than the input buffer holds */
        put_get_values(&flood, NULL, 0);
    size_t taken = fcgi_conn_feed(f.c, flood.b.data, flood.b.len, f.now);
    CHECK(taken < flood.b.len);
    fcgi_conn_output(f.c, &again);
    CHECK(again >= f.limits.out_high_water);
    CHECK(again <= f.limits.out_high_water + OUT_SLACK);
    CHECK(!fcgi_conn_wants_input(f.c));
    size_t space_len = 1;
    CHECK(fcgi_conn_input_space(f.c, &space_len) == NULL && space_len == 0);
    struct wire more;
    wire_init(&more);
    put_get_values(&more, NULL, 0);
    CHECK_EQ_U(fcgi_conn_feed(f.c, more.b.data, more.b.len, f.now), 0);
    buf_free(&flood.b);
    /* Take it in odd-sized pieces, as short writes would. */
    size_t max_seen = 0;
    for (int rounds = 0; rounds < 100000; rounds++) {
        size_t len;
        const uint8_t *p = fcgi_conn_output(f.c, &len);
        if (len == 0)
            break;
        if (len > max_seen)
            max_seen = len;
        size_t n = len < 7001 ? len : 7001;
        buf_put(&f.out, p, n);
        fcgi_conn_output_done(f.c, n, f.now);
    }
    CHECK(max_seen <= f.limits.out_high_water + OUT_SLACK);
    struct recs r = parse_records(&f.out);
    check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
    struct buf out = {0}, body = {0};
    stream_of(&r, FCGI_STDOUT, 1, &out);
    body_of(&out, &body);
    CHECK_EQ_U(body.len, 1000000);
    size_t wrong = 0;
    for (size_t i = 0; i < body.len; i++)
        wrong += body.data[i] != (uint8_t)('a' + i % 26);
    CHECK_EQ_U(wrong, 0);
    for (size_t i = 0; i < r.n; i++)
        CHECK(r.v[i].len <= FCGI_MAX_CONTENT);
    /* Input flows again once the output has drained. */
    CHECK(fcgi_conn_wants_input(f.c));
    f.out.len = 0;
    fx_send(&f, &more);
    recs_free(&r);
    r = parse_records(&f.out);
    CHECK_EQ_U(count_records(&r, FCGI_GET_VALUES_RESULT, 0), 1);
    recs_free(&r);
    buf_free(&out);
    buf_free(&body);
    buf_free(&more.b);
    buf_free(&w.b);
    fx_close(tc, &f);
}

/* A big response must not hold up the rest of the connection until it is all
 * sent: a small request multiplexed beside it finishes first. */
static void test_big_response_beside_small(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    f.limits.out_high_water = 16384;
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "out=2000000", "");
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    fx_event_loop(&f, &w, 16384);
    struct recs r = parse_records(&f.out);
    check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &r, 2, 0, FCGI_REQUEST_COMPLETE);
    if (!CHECK(first_of(&r, FCGI_END_REQUEST, 2) < first_of(&r, FCGI_END_REQUEST, 1)))
        printf("    request 2 (tiny) was read and answered only after all 2000000 bytes of request 1\n");
    recs_free(&r);
    buf_free(&w.b);
    fx_close(tc, &f);
}

/* FCGI_ABORT_REQUEST is how a web server stops a response nobody will read
 * (spec §5.4); it must be read while that response is streaming. */
static void test_abort_during_big_response(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    f.limits.out_high_water = 16384;
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "out=10000000", "");
    put_record(&w, FCGI_ABORT_REQUEST, 1, NULL, 0);
    fx_event_loop(&f, &w, 16384);
    struct recs r = parse_records(&f.out);
    check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
    struct buf out = {0};
    stream_of(&r, FCGI_STDOUT, 1, &out);
    if (!CHECK(out.len < 10000000))
        printf("    the ABORT_REQUEST was read only after all %zu bytes of STDOUT were sent\n", out.len);
    buf_free(&out);
    recs_free(&r);
    buf_free(&w.b);
    fx_close(tc, &f);
}

static void test_input_eof(struct test_counts *tc)
{
    /* Mid-STDIN, mid-PARAMS, and a Filter waiting for DATA. */
    for (int where = 0; where < 3; where++) {
        struct fx f;
        fx_init(&f);
        fx_open(&f);
        struct wire w;
        wire_init(&w);
        put_begin(&w, 1, where == 2 ? FCGI_FILTER : FCGI_RESPONDER, FCGI_KEEP_CONN);
        struct buf p = {0};
        nv_put_text(&p, "QUERY_STRING", "");
        put_stream(&w, FCGI_PARAMS, 1, p.data, p.len);
        if (where != 1) {
            put_end(&w, FCGI_PARAMS, 1);
            put_stream(&w, FCGI_STDIN, 1, "partial", 7);
        }
        if (where == 2)
            put_end(&w, FCGI_STDIN, 1);
        fx_send(&f, &w);
        CHECK_EQ_U(count_end_requests(&f.out), 0);
        CHECK_EQ_U(f.load.active_requests, 1);
        fcgi_conn_input_eof(f.c, f.now);
        fx_drain(&f);
        struct recs r = parse_records(&f.out);
        check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
        CHECK(fx_closing(&f));
        CHECK_EQ_U(f.load.active_requests, 0);
        CHECK(!fcgi_conn_wants_input(f.c));
        recs_free(&r);
        buf_free(&p);
        buf_free(&w.b);
        fx_close(tc, &f);
    }
    /* Idle connection: nothing to say, closes. */
    struct fx f;
    fx_init(&f);
    fx_open(&f);
    fcgi_conn_input_eof(f.c, f.now);
    fx_drain(&f);
    CHECK_EQ_U(f.out.len, 0);
    CHECK(fx_closing(&f));
    /* A truncated record at EOF is dropped. */
    fx_close(tc, &f);
    fx_init(&f);
    fx_open(&f);
    const uint8_t half[5] = {1, FCGI_BEGIN_REQUEST, 0, 1, 0};
    CHECK_EQ_U(fcgi_conn_feed(f.c, half, sizeof(half), f.now), 5);
    fcgi_conn_input_eof(f.c, f.now);
    fx_drain(&f);
    CHECK_EQ_U(f.out.len, 0);
    CHECK(fx_closing(&f));
    fx_close(tc, &f);
}

static void test_echo(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct buf p = {0};
    nv_put_text(&p, "QUERY_STRING", "echo=1");
    put_stream(&w, FCGI_PARAMS, 1, p.data, p.len);
    put_end(&w, FCGI_PARAMS, 1);
    put_stream(&w, FCGI_STDIN, 1, "hello ", 6);
    fx_send(&f, &w);
    struct recs r = parse_records(&f.out);
    struct buf out = {0};
    stream_of(&r, FCGI_STDOUT, 1, &out);
    CHECK(buf_has(&out, "\r\n\r\nhello "));
    CHECK_EQ_U(count_records(&r, FCGI_END_REQUEST, -1), 0);
    recs_free(&r);
    wire_reset(&w);
    put_stream(&w, FCGI_STDIN, 1, "world", 5);
    put_end(&w, FCGI_STDIN, 1);
    fx_send(&f, &w);
    r = parse_records(&f.out);
    check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
    struct buf body = {0};
    out.len = 0;
    stream_of(&r, FCGI_STDOUT, 1, &out);
    body_of(&out, &body);
    CHECK(buf_eq(&body, "hello world", 11));
    buf_free(&body);
    buf_free(&out);
    recs_free(&r);
    buf_free(&p);
    buf_free(&w.b);
    fx_close(tc, &f);
}

int main(void)
{
    struct test_counts counts = {0, 0};
    struct test_counts *tc = &counts;
    for (size_t i = 0; i < sizeof(protocol_cases) / sizeof(protocol_cases[0]); i++)
        run_case(tc, "", &protocol_cases[i]);
    RUN(test_id_reuse);
    RUN(test_abort);
    RUN(test_no_mpx);
    RUN(test_max_reqs);
    RUN(test_padding);
    RUN(test_byte_at_a_time);
    RUN(test_params_split_pair);
    RUN(test_long_lengths);
    RUN(test_odd_but_legal);
    RUN(test_delay);
    RUN(test_backpressure);
    RUN(test_big_response_beside_small);
    RUN(test_abort_during_big_response);
    RUN(test_input_eof);
    RUN(test_echo);
    return test_finish(tc);
}
