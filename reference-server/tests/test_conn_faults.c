/* Unit tests of the fault modes of the connection state machine (faults.h): each
 * row runs the same input without faults and with one fault, and says what each
 * run must show, so that every fault is seen to change what the reference sends
 * (and, where a row says so, to change nothing else). The functions after the
 * table are the fault tests of other shapes. Every fault of a connection has a
 * test here; the faults of the process are listed with where they are tested. */
#include "conn_harness.h"

#include <stdlib.h>
#include <string.h>

#define R FCGI_RESPONDER
#define KEEP FCGI_KEEP_CONN
#define F(fault) ((fault_set)1 << FAULT_##fault)
#define UNKNOWN_ROLE 7

/* ---- checks of one kind of output ------------------------------------------------------ */

/* GET_VALUES_RESULT with every value, then an empty one. */
static void all_values_then_empty(struct test_counts *tc, const struct side *s, const struct side *good)
{
    (void)good;
    CHECK_EQ_U(s->r.n, 2);
    if (s->r.n == 2) {
        check_values(tc, &s->r.v[0], "FCGI_MAX_CONNS=1024\nFCGI_MAX_REQS=4096\nFCGI_MPXS_CONNS=1");
        CHECK_EQ_U(s->r.v[1].type, FCGI_GET_VALUES_RESULT);
        CHECK_EQ_U(s->r.v[1].len, 0);
    }
}

/* An empty STDOUT record comes before data. */
static void stdout_data_after_empty(struct test_counts *tc, const struct side *s, const struct side *good)
{
    (void)good;
    bool data_after_empty = false, seen_empty = false;
    for (size_t i = 0; i < s->r.n; i++) {
        if (s->r.v[i].type != FCGI_STDOUT)
            continue;
        if (s->r.v[i].len == 0)
            seen_empty = true;
        else if (seen_empty)
            data_after_empty = true;
    }
    CHECK(data_after_empty);
}

/* Splits output into records the way misframe-on-reuse frames it: after a STDOUT
 * record of request `id`, a 0 byte (no header starts with version 0) is a stray
 * byte and is skipped; strays[0] counts those after empty records, strays[1]
 * those after records with data. False if the rest does not split into records. */
static bool parse_misframed(const struct buf *b, uint16_t id, struct buf *clean, size_t strays[2])
{
    size_t pos = 0;
    strays[0] = strays[1] = 0;
    while (pos < b->len) {
        struct fcgi_header h;
        if (fcgi_header_decode(b->data + pos, b->len - pos, &h) != FCGI_DECODE_OK ||
            fcgi_record_size(&h) > b->len - pos)
            return false;
        buf_put(clean, b->data + pos, fcgi_record_size(&h));
        pos += fcgi_record_size(&h);
        if (h.type == FCGI_STDOUT && h.request_id == id && pos < b->len && b->data[pos] == 0)
            pos++, strays[h.content_length > 0]++;
    }
    return true;
}

/* A web server reading records sees request 1 whole, then a header of version 0.
 * Apart from one 0 byte after every STDOUT record of the second request, the
 * records are well framed and say what they say without the fault (record
 * boundaries may move, as the stray bytes take room in the output queue). */
static void misframed_from_request_2(struct test_counts *tc, const struct side *s, const struct side *good)
{
    CHECK(s->r.trailing > 0);
    CHECK_EQ_U(count_records(&s->r, FCGI_END_REQUEST, 1), 1);
    CHECK_EQ_U(count_records(&s->r, FCGI_END_REQUEST, 2), 0);
    struct buf clean = {0};
    size_t strays[2];
    CHECK(parse_misframed(&s->out, 2, &clean, strays));
    struct recs rc = parse_records(&clean);
    check_answer(tc, &rc, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rc, 2, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(strays[1], count_records(&rc, FCGI_STDOUT, 2) - 1);
    CHECK(strays[1] >= 2);
    if (!CHECK(strays[0] == 1))
        printf("    misframe-on-reuse: no stray byte after the empty STDOUT record that ends the stream\n");
    CHECK_EQ_U(s->out.len, clean.len + strays[0] + strays[1]);
    const uint8_t types[] = {FCGI_STDOUT, FCGI_STDERR};
    for (uint16_t id = 1; id <= 2; id++)
        for (int t = 0; t < 2; t++) {
            struct buf sg = {0}, sc = {0};
            stream_of(&good->r, types[t], id, &sg);
            stream_of(&rc, types[t], id, &sc);
            CHECK(sg.len > 0 && buf_eq(&sc, sg.data, sg.len));
            buf_free(&sg), buf_free(&sc);
        }
    recs_free(&rc), buf_free(&clean);
}

/* The same records as without the fault, none of them padded. */
static void same_records_unpadded(struct test_counts *tc, const struct side *s, const struct side *good)
{
    const struct recs *rg = &good->r, *rb = &s->r;
    CHECK_EQ_U(rb->trailing, 0);
    CHECK_EQ_U(rb->n, rg->n);
    size_t padded = 0, unpadded_size = 0;
    for (size_t i = 0; i < rg->n; i++) {
        padded += rg->v[i].padding > 0;
        unpadded_size += FCGI_HEADER_LEN + rg->v[i].len;
        if (i < rb->n) {
            CHECK(rec_same(&rb->v[i], &rg->v[i]));
            CHECK_EQ_U(rb->v[i].padding, 0);
        }
    }
    CHECK(padded >= 3); /* STDOUT data, STDERR data, GET_VALUES_RESULT */
    CHECK_EQ_U(s->out.len, unpadded_size);
}

/* Request id 256 read as 0, the management id: each record is an unknown management type. */
static void unknown_types_for_id_256(struct test_counts *tc, const struct side *s, const struct side *good)
{
    (void)good;
    const uint8_t types[] = {FCGI_BEGIN_REQUEST, FCGI_PARAMS, FCGI_PARAMS, FCGI_STDIN};
    CHECK_EQ_U(s->r.n, sizeof(types));
    for (size_t i = 0; i < s->r.n && i < sizeof(types); i++) {
        CHECK_EQ_U(s->r.v[i].type, FCGI_UNKNOWN_TYPE);
        CHECK_EQ_U(s->r.v[i].id, 0);
        CHECK(s->r.v[i].len == 8 && s->r.v[i].content[0] == types[i]);
    }
}

/* The one GET_VALUES_RESULT, on request id 1 and otherwise as without the fault. */
static void values_on_id_1(struct test_counts *tc, const struct side *s, const struct side *good)
{
    const struct recs *rg = &good->r, *rb = &s->r;
    CHECK_EQ_U(rb->n, 1);
    if (rg->n == 1 && rb->n == 1) {
        CHECK_EQ_U(rg->v[0].id, 0);
        CHECK_EQ_U(rb->v[0].id, 1);
        CHECK_EQ_U(rb->v[0].type, FCGI_GET_VALUES_RESULT);
        CHECK(rb->v[0].len == rg->v[0].len && memcmp(rb->v[0].content, rg->v[0].content, rg->v[0].len) == 0);
    }
}

/* GET_VALUES_RESULT first without the fault, last (after both END_REQUESTs) with it. */
static void values_after_both_requests(struct test_counts *tc, const struct side *s, const struct side *good)
{
    size_t at_good = first_type(&good->r, FCGI_GET_VALUES_RESULT), at_bad = first_type(&s->r, FCGI_GET_VALUES_RESULT);
    CHECK_EQ_U(at_good, 0);
    CHECK(s->r.n > 0 && at_bad == s->r.n - 1);
    if (at_good < good->r.n && at_bad < s->r.n)
        CHECK(rec_same(&good->r.v[at_good], &s->r.v[at_bad]));
}

/* Both GET_VALUES held during request 1 are answered after it. */
static void both_values_after_request(struct test_counts *tc, const struct side *s, const struct side *good)
{
    (void)good;
    if (!CHECK(count_records(&s->r, FCGI_GET_VALUES_RESULT, 0) == 2))
        printf("    get-values-after-requests answers only the last of %d GET_VALUES held during a request\n", 2);
    for (size_t i = 0; i < s->r.n; i++)
        if (s->r.v[i].type == FCGI_GET_VALUES_RESULT)
            CHECK(i > first_of(&s->r, FCGI_END_REQUEST, 1));
}

/* The same records as without the fault, the END_REQUEST moved from last to first. */
static void end_request_first(struct test_counts *tc, const struct side *s, const struct side *good)
{
    const struct recs *rg = &good->r, *rb = &s->r;
    CHECK_EQ_U(rb->n, rg->n);
    if (rb->n == rg->n && rg->n > 1) {
        CHECK(rec_same(&rb->v[0], &rg->v[rg->n - 1]));
        for (size_t i = 1; i < rb->n; i++)
            CHECK(rec_same(&rb->v[i], &rg->v[i - 1]));
    }
}

/* A long response: END_REQUEST still comes before the STDOUT terminator. */
static void end_request_before_terminator(struct test_counts *tc, const struct side *s, const struct side *good)
{
    (void)good;
    size_t end_at = first_type(&s->r, FCGI_END_REQUEST);
    CHECK(end_at < s->r.n && s->r.v[s->r.n - 1].type == FCGI_STDOUT && s->r.v[s->r.n - 1].len == 0);
}

/* STDERR of each of requests 1-3 cut at 4096 bytes, everything else as without the fault. */
static void stderr_cut_at_4k(struct test_counts *tc, const struct side *s, const struct side *good)
{
    for (uint16_t id = 1; id <= 3; id++) {
        struct buf eg = {0}, eb = {0}, og = {0}, ob = {0};
        stream_of(&good->r, FCGI_STDERR, id, &eg);
        stream_of(&s->r, FCGI_STDERR, id, &eb);
        stream_of(&good->r, FCGI_STDOUT, id, &og);
        stream_of(&s->r, FCGI_STDOUT, id, &ob);
        CHECK_EQ_U(eb.len, id == 3 ? 3000 : 4096);
        CHECK(eb.len <= eg.len && memcmp(eb.data, eg.data, eb.len) == 0);
        CHECK(buf_eq(&ob, og.data, og.len));
        buf_free(&eg), buf_free(&eb), buf_free(&og), buf_free(&ob);
    }
}

/* Only END_REQUEST is missing: the aborted request's STDOUT stream is still ended. */
static void stdout_still_ended(struct test_counts *tc, const struct side *s, const struct side *good)
{
    if (!CHECK(count_records(&s->r, FCGI_STDOUT, 1) == count_records(&good->r, FCGI_STDOUT, 1)))
        printf("    no-end-after-abort also drops the aborted request's empty STDOUT record\n");
}

/* Without KEEP_CONN the aborted request's end still closes the connection. */
static void closed_after_abort(struct test_counts *tc, const struct side *s, const struct side *good)
{
    (void)good;
    if (!CHECK(s->state == FCGI_CONN_CLOSING && count_id(&s->r, 2) == 0))
        printf("    no-end-after-abort keeps open a connection whose request had FCGI_KEEP_CONN clear, "
               "and serves request 2 on it\n");
}

/* The aborted request 1 is answered as without the fault. */
static void request_1_as_without(struct test_counts *tc, const struct side *s, const struct side *good)
{
    CHECK_EQ_U(count_id(&s->r, 1), count_id(&good->r, 1));
}

/* END_REQUEST bodies of 5 bytes (padded to 8), the rest as without the fault. */
static void short_end_requests(struct test_counts *tc, const struct side *s, const struct side *good)
{
    const struct recs *rg = &good->r, *rb = &s->r;
    CHECK_EQ_U(rb->trailing, 0);
    CHECK_EQ_U(rb->n, rg->n);
    for (size_t i = 0; i < rg->n && i < rb->n; i++) {
        if (rg->v[i].type != FCGI_END_REQUEST) {
            CHECK(rec_same(&rb->v[i], &rg->v[i]));
            continue;
        }
        CHECK_EQ_U(rb->v[i].type, FCGI_END_REQUEST);
        CHECK_EQ_U(rb->v[i].len, 5);
        CHECK_EQ_U(rb->v[i].padding, 3);
        CHECK(rb->v[i].len == 5 && memcmp(rb->v[i].content, rg->v[i].content, 5) == 0);
    }
}

/* Every record but END_REQUEST as without the fault. */
static void same_but_end_request(struct test_counts *tc, const struct side *s, const struct side *good)
{
    CHECK_EQ_U(s->r.n, good->r.n);
    for (size_t i = 0; i < good->r.n && i < s->r.n; i++)
        if (good->r.v[i].type != FCGI_END_REQUEST)
            CHECK(rec_same(&s->r.v[i], &good->r.v[i]));
}

/* The same records, with FCGI_DATA wherever FCGI_STDOUT was. */
static void stdout_records_as_data(struct test_counts *tc, const struct side *s, const struct side *good)
{
    CHECK_EQ_U(s->r.n, good->r.n);
    for (size_t i = 0; i < good->r.n && i < s->r.n; i++) {
        struct rec expected = good->r.v[i];
        if (expected.type == FCGI_STDOUT)
            expected.type = FCGI_DATA;
        if (!CHECK(rec_same(&s->r.v[i], &expected)))
            printf("    record %zu: type %u, length %zu; expected type %u\n", i, s->r.v[i].type, s->r.v[i].len,
                   expected.type);
    }
}

/* ---- inputs ------------------------------------------------------------------------------ */

/* A request whose STDIN is cut short by ABORT_REQUEST, then request 2. */
#define ABORTED_THEN_REQUEST_2(flags)                                                                       \
    OPS(BEGIN(1, R, flags), EMPTY(FCGI_PARAMS, 1), STREAM(FCGI_STDIN, 1, "abc"), EMPTY(FCGI_ABORT_REQUEST, 1), \
        REQ(2, R, KEEP, "", ""))
/* A probe request with CONTENT_LENGTH and the given STDIN. */
#define CONTENT_LENGTH_REQUEST(length, stdin_)                                                              \
    OPS(REQ_WITH(1, R, KEEP, "QUERY_STRING=\nREQUEST_METHOD=POST\nCONTENT_LENGTH=" length, stdin_))
#define AUTHORIZER_REQUEST(token)                                                                           \
    OPS(REQ_WITH(1, FCGI_AUTHORIZER, KEEP, "REQUEST_METHOD=GET\nHTTP_AUTHORIZATION=" token, ""))
/* A Filter request: STDIN "stdin", and DATA "file to filter\r\n" after STDIN ended
 * or (DATA_FIRST) before, as the Filter rows of test_conn_protocol.c. */
#define FILTER_PARAMS PARAMS(1, "FCGI_DATA_LENGTH=16\nFCGI_DATA_LAST_MOD=0")
#define FILTER_DATA_AFTER                                                                                   \
    OPS(BEGIN(1, FCGI_FILTER, KEEP), FILTER_PARAMS, EMPTY(FCGI_PARAMS, 1), STREAM(FCGI_STDIN, 1, "stdin"),   \
        EMPTY(FCGI_STDIN, 1), PIECES(FCGI_DATA, 1, "file to filter\r\n", 5), EMPTY(FCGI_DATA, 1))
#define FILTER_DATA_FIRST                                                                                   \
    OPS(BEGIN(1, FCGI_FILTER, KEEP), FILTER_PARAMS, EMPTY(FCGI_PARAMS, 1),                                   \
        PIECES(FCGI_DATA, 1, "file to filter\r\n", 3), STREAM(FCGI_STDIN, 1, "stdin"), EMPTY(FCGI_STDIN, 1),  \
        EMPTY(FCGI_DATA, 1))
/* A 65535-byte STDIN record (plus `pad` bytes of padding: 8 passes 65535 in all). */
#define MAX_STDIN(pad, len)                                                                                 \
    OPS(PADDING(pad, 0), BEGIN(1, R, KEEP), PARAMS(1, "QUERY_STRING="), EMPTY(FCGI_PARAMS, 1),               \
        FILLED(FCGI_STDIN, 1, 's', len, 0), EMPTY(FCGI_STDIN, 1))
/* A STDIN of `len` bytes in 8000-byte records, then GET_VALUES. */
#define STDIN_THEN_VALUES(len)                                                                              \
    OPS(BEGIN(1, R, KEEP), PARAMS(1, "QUERY_STRING="), EMPTY(FCGI_PARAMS, 1), FILLED(FCGI_STDIN, 1, 'i', len, 8000), \
        EMPTY(FCGI_STDIN, 1), GET_VALUES("FCGI_MAX_REQS"))
/* A PARAMS stream of exactly `len` bytes: one pair, name 1 byte, lengths 1 + 4 bytes. */
#define PARAMS_OF(len)                                                                                      \
    OPS(BEGIN(1, R, KEEP), FILLED_PAIR(1, "P", 'p', (len) - 6, 1000), EMPTY(FCGI_PARAMS, 1), EMPTY(FCGI_STDIN, 1))
#define TWO_REQUESTS OPS(REQ(1, R, KEEP, "", ""), REQ(2, R, KEEP, "", ""))

/* exit-on-malformed: without the fault the input is never fatal, and the connection
 * closes (CLOSES) or the request is answered (ANSWERED); with it the connection
 * closes, fatal, without answering the request. */
#define FATAL_WITH_FAULT EXPECT(FATAL(true), IS_CLOSING, ENDS(0), SOME_REASON)
#define MALFORMED_CLOSES(what, ops) \
    {what, F(EXIT_ON_MALFORMED), .input = ops, .want = EXPECT(FATAL(false), IS_CLOSING), .faulty = FATAL_WITH_FAULT}
#define MALFORMED_ANSWERED(what, ops)                                                                       \
    {what, F(EXIT_ON_MALFORMED), .input = ops, .want = EXPECT(FATAL(false), IS_OPEN, ENDS(1)),               \
     .faulty = FATAL_WITH_FAULT}
/* Record types only applications send, with the null id and for an active request. */
#define TO_WEB_SERVER(type, name)                                                                           \
    MALFORMED_ANSWERED(name " record with request id 0", OPS(REC(type, 0, "12345678"), REQ(1, R, KEEP, "", ""))), \
    MALFORMED_ANSWERED(name " record for an active request",                                                 \
                       OPS(BEGIN(4, R, KEEP), EMPTY(FCGI_PARAMS, 4), REC(type, 4, "12345678"), EMPTY(FCGI_STDIN, 4)))

static const struct conn_case fault_cases[] = {
    {"a reused id", F(GO_ID_REUSE), .input = OPS(REQ(1, R, KEEP, "", ""), REQ(1, R, KEEP, "", "")),
     .want = EXPECT(COUNT(FCGI_END_REQUEST, 1, 2), IS_OPEN),
     .faulty = EXPECT(COUNT(FCGI_END_REQUEST, 1, 1), IS_CLOSING, REASON("already in-flight"))},

    {"two kept requests", F(KEEP_CONN_CLOSE), .input = TWO_REQUESTS, .want = EXPECT(IS_OPEN, ENDS(2)),
     .faulty = EXPECT(IS_CLOSING, ENDS(1))},

    {"KEEP_CONN clear", F(KEEP_CONN_NEVER_CLOSE), .input = OPS(REQ(1, R, 0, "", "")), .want = EXPECT(IS_CLOSING),
     .faulty = EXPECT(IS_OPEN, SAME_OUTPUT)},

    {"GET_VALUES for one", F(GET_VALUES_STREAM), .input = OPS(GET_VALUES("FCGI_MPXS_CONNS")),
     .want = EXPECT(VALUES("FCGI_MPXS_CONNS=1")), .faulty = EXPECT(CHECKED_BY(all_values_then_empty))},

    {"GET_VALUES", F(GET_VALUES_IGNORED), .input = OPS(GET_VALUES("FCGI_MAX_REQS")), .want = EXPECT(OUT_LEN_OVER(0)),
     .faulty = EXPECT(OUT_LEN(0), IS_OPEN)},

    {"GET_VALUES with an unknown name", F(GET_VALUES_UNKNOWN_NAME_HANG), .input = OPS(GET_VALUES("FCGI_FOO\nFCGI_MAX_REQS")),
     .want = EXPECT(VALUES("FCGI_MAX_REQS=4096")), .faulty = EXPECT(OUT_LEN(0), IS_OPEN)},

    {"GET_VALUES of known names", F(GET_VALUES_UNKNOWN_NAME_HANG), .input = OPS(GET_VALUES("FCGI_MPXS_CONNS")),
     .want = EXPECT(VALUES("FCGI_MPXS_CONNS=1")), .faulty = EXPECT(SAME_OUTPUT)},

    {"type 200", F(UNKNOWN_TYPE_IGNORED), .input = OPS(EMPTY(200, 0)), .want = EXPECT(OUT_LEN(16)),
     .faulty = EXPECT(OUT_LEN(0))},

    {"role 7", F(UNKNOWN_ROLE_CLOSE), .input = OPS(REQ(1, UNKNOWN_ROLE, KEEP, "", "")),
     .want = EXPECT(ANSWER(1, 0, FCGI_UNKNOWN_ROLE), IS_OPEN),
     .faulty = EXPECT(OUT_LEN(0), IS_CLOSING, REASON("unknown role 7"))},

    {"8 bytes of zero padding", F(PADDING_NOT_SKIPPED), .input = OPS(PADDING(8, 0), REQ(1, R, KEEP, "", "")),
     .want = EXPECT(COMPLETE(1)), .faulty = EXPECT(ENDS(0), IS_CLOSING, REASON("version 0"))},

    /* 300 = 0x12C: read as 0x2C. */
    {"a value of 300 bytes", F(NV_LONG_LENGTH_1BYTE),
     .input = OPS(BEGIN(1, R, KEEP), FILLED_PAIR(1, "BIG", 'z', 300, 0), EMPTY(FCGI_PARAMS, 1), EMPTY(FCGI_STDIN, 1)),
     .want = EXPECT(FILLED_PAIR_IN(1, "BIG", 'z', 300)), .faulty = EXPECT(NO_FILLED_PAIR_IN(1, "BIG", 'z', 300))},

    /* The cut is inside "QUERY_STRING". */
    {"a pair across two records", F(PARAMS_SPLIT_PAIR_LOST),
     .input = OPS(BEGIN(1, R, KEEP), PARAMS_CUT(1, "A=1\nQUERY_STRING=status=201\nB=2", 9), EMPTY(FCGI_PARAMS, 1),
                  EMPTY(FCGI_STDIN, 1)),
     .want = EXPECT(OUT_HAS("Status: 201 ")), .faulty = EXPECT(OUT_LACKS("Status: 201 "))},

    {"STDIN in two records", F(STDIN_FIRST_RECORD_ONLY),
     .input = OPS(BEGIN(1, R, KEEP), EMPTY(FCGI_PARAMS, 1), PIECES(FCGI_STDIN, 1, "abcdef", 3), EMPTY(FCGI_STDIN, 1)),
     .want = EXPECT(OUT_HAS("\"stdin_length\":6")), .faulty = EXPECT(OUT_HAS("\"stdin_length\":3"))},

    {"padded STDIN", F(PADDED_STDIN_LOST),
     .input = OPS(PADDING(8, 0x5a), BEGIN(1, R, KEEP), EMPTY(FCGI_PARAMS, 1), STREAM(FCGI_STDIN, 1, "abcdef"),
                  EMPTY(FCGI_STDIN, 1)),
     .want = EXPECT(OUT_HAS("\"stdin_length\":6"), COMPLETE(1)),
     .faulty = EXPECT(OUT_HAS("\"stdin_length\":0"), COMPLETE(1))},

    /* With the fault it still waits for the rest of STDIN. */
    {"an abort mid-STDIN", F(ABORT_IGNORED),
     .input = OPS(BEGIN(1, R, KEEP), EMPTY(FCGI_PARAMS, 1), STREAM(FCGI_STDIN, 1, "abc"), EMPTY(FCGI_ABORT_REQUEST, 1)),
     .want = EXPECT(COMPLETE(1)), .faulty = EXPECT(OUT_LEN(0))},

    {"a request", F(END_REQUEST_TWICE), .input = OPS(REQ(1, R, KEEP, "", "")),
     .want = EXPECT(COUNT(FCGI_END_REQUEST, 1, 1)), .faulty = EXPECT(COUNT(FCGI_END_REQUEST, 1, 2))},

    {"a request", F(NO_EMPTY_STDOUT), .input = OPS(REQ(1, R, KEEP, "", "")), .want = EXPECT(EMPTY_STDOUTS(1)),
     .faulty = EXPECT(EMPTY_STDOUTS(0), COUNT(FCGI_END_REQUEST, 1, 1))},

    {"100000 bytes of STDOUT", F(STDOUT_AFTER_EMPTY), .input = OPS(REQ(1, R, KEEP, "out=100000", "")),
     .want = EXPECT(COMPLETE(1)), .faulty = EXPECT(EMPTY_STDOUTS(2), CHECKED_BY(stdout_data_after_empty))},

    /* The second GET_VALUES, between requests, is fine even with the fault. */
    {"GET_VALUES mid-request", F(MGMT_MID_REQUEST_CLOSE),
     .input = OPS(BEGIN(1, R, KEEP), EMPTY(FCGI_PARAMS, 1), GET_VALUES(""), EMPTY(FCGI_STDIN, 1), GET_VALUES("")),
     .want = EXPECT(COMPLETE(1), COUNT(FCGI_GET_VALUES_RESULT, 0, 2), IS_OPEN),
     .faulty = EXPECT(OUT_LEN(0), IS_CLOSING)},

    {"a request", F(REPLY_ID_ZERO), .input = OPS(REQ(1, R, KEEP, "", "")), .want = EXPECT(ONLY_ID(1)),
     .faulty = EXPECT(RECORDS_MIN(1), ONLY_ID(0), COUNT(FCGI_END_REQUEST, 0, 1))},

    {"two requests", F(MISFRAME_ON_REUSE),
     .input = OPS(REQ(1, R, KEEP, "err=e", ""), REQ(2, R, KEEP, "out=70000&err=e", "")),
     .want = EXPECT(COMPLETE(1), COMPLETE(2)), .faulty = EXPECT(COMPARED_BY(misframed_from_request_2))},
    {"the first request of a connection is framed correctly", F(MISFRAME_ON_REUSE),
     .input = OPS(REQ(1, R, KEEP, "out=70000", "")), .want = EXPECT(OUT_LEN_OVER(70000)),
     .faulty = EXPECT(SAME_OUTPUT)},

    {"65535 bytes of content, 8 of padding", F(REJECT_MAX_CONTENT_PADDING), .input = MAX_STDIN(8, FCGI_MAX_CONTENT),
     .want = EXPECT(COMPLETE(1), OUT_HAS("\"stdin_length\":65535"), IS_OPEN),
     .faulty = EXPECT(ENDS(0), IS_CLOSING, REASON("65535"), FATAL(false))},
    {"content plus padding of exactly 65535", F(REJECT_MAX_CONTENT_PADDING),
     .input = MAX_STDIN(7, FCGI_MAX_CONTENT - 7),
     .want = EXPECT(OUT_HAS("\"stdin_length\":65528")), .faulty = EXPECT(SAME_OUTPUT, IS_OPEN)},

    {"STDOUT, STDERR, GET_VALUES_RESULT, UNKNOWN_TYPE", F(UNALIGNED_OUTPUT),
     .input = OPS(REQ(1, R, KEEP, "err=abc", ""), GET_VALUES("FCGI_MPXS_CONNS"), EMPTY(200, 0)),
     .want = EXPECT(COMPLETE(1)), .faulty = EXPECT(COMPARED_BY(same_records_unpadded))},

    /* Id 7 is not active. */
    {"STDIN for id 7 mid-request", F(FOREIGN_ID_STDIN_ACCEPTED),
     .input = OPS(BEGIN(1, R, KEEP), EMPTY(FCGI_PARAMS, 1), STREAM(FCGI_STDIN, 7, "xyz"), STREAM(FCGI_STDIN, 1, "ab"),
                  EMPTY(FCGI_STDIN, 1)),
     .want = EXPECT(COMPLETE(1), OUT_HAS("\"stdin_length\":2")),
     .faulty = EXPECT(COMPLETE(1), OUT_HAS("\"stdin_length\":5"), IDS(7, 0))},

    /* A second empty STDIN: id 1 is inactive then. */
    {"a late empty STDIN", F(LATE_RECORD_CLOSE),
     .input = OPS(REQ(1, R, KEEP, "", ""), EMPTY(FCGI_STDIN, 1), REQ(2, R, KEEP, "", "")),
     .want = EXPECT(COMPLETE(1), COMPLETE(2), IS_OPEN),
     .faulty = EXPECT(COMPLETE(1), IDS(2, 0), IS_CLOSING, REASON("inactive id 1"))},
    {"records for active ids", F(LATE_RECORD_CLOSE), .input = TWO_REQUESTS, .faulty = EXPECT(SAME_OUTPUT, IS_OPEN)},

    {"id 65535 becomes 255", F(ID_HIGH_BYTE_DROPPED), .input = OPS(REQ(65535, R, KEEP, "", "")),
     .want = EXPECT(COMPLETE(65535), ONLY_ID(65535)), .faulty = EXPECT(COMPLETE(255), ONLY_ID(255))},
    {"id 256 becomes 0", F(ID_HIGH_BYTE_DROPPED), .input = OPS(REQ(256, R, KEEP, "", "")),
     .want = EXPECT(COMPLETE(256)), .faulty = EXPECT(CHECKED_BY(unknown_types_for_id_256), IS_OPEN)},

    /* Without the fault BEGIN, PARAMS, end of PARAMS and end of STDIN are unknown
     * management types; with it the request is served, and answered on id 0. */
    {"a request with id 0", F(BEGIN_ID_ZERO_SERVED),
     .input = OPS(GET_VALUES("FCGI_MPXS_CONNS"), REQ(0, R, KEEP, "status=201", "")),
     .want = EXPECT(COUNT(FCGI_UNKNOWN_TYPE, 0, 4), ENDS(0), COUNT(FCGI_GET_VALUES_RESULT, 0, 1)),
     .faulty = EXPECT(COMPLETE(0), COUNT(FCGI_UNKNOWN_TYPE, ANY_ID, 0), COUNT(FCGI_GET_VALUES_RESULT, 0, 1),
                      HAS(0, "Status: 201 "), IS_OPEN)},

    MALFORMED_CLOSES("version 2, first record", OPS(REC_VERSION(2, FCGI_GET_VALUES, 0))),
    MALFORMED_CLOSES("version 2, mid-request", OPS(BEGIN(1, R, KEEP), PARAMS(1, "QUERY_STRING="),
                                                   REC_VERSION(2, FCGI_PARAMS, 1), EMPTY(FCGI_STDIN, 1))),
    MALFORMED_CLOSES("7-byte BEGIN_REQUEST body", OPS(REC_N(FCGI_BEGIN_REQUEST, 1, "\x00\x01\x01\x00\x00\x00\x00", 7))),
    MALFORMED_CLOSES("PARAMS name-value lengths past the end",
                     OPS(BEGIN(1, R, KEEP), REC(FCGI_PARAMS, 1, "\x05\x01" "a"), EMPTY(FCGI_PARAMS, 1),
                         EMPTY(FCGI_STDIN, 1))),
    MALFORMED_CLOSES("PARAMS 4-byte length cut short", OPS(BEGIN(1, R, KEEP), REC(FCGI_PARAMS, 1, "\x01\x80\x00"),
                                                           EMPTY(FCGI_PARAMS, 1), EMPTY(FCGI_STDIN, 1))),
    MALFORMED_CLOSES("GET_VALUES name-value lengths past the end", OPS(REC(FCGI_GET_VALUES, 0, "\x05\x00" "ab"))),
    MALFORMED_ANSWERED("duplicate BEGIN_REQUEST",
                       OPS(BEGIN(5, R, KEEP), PARAMS(5, "QUERY_STRING="), BEGIN(5, R, KEEP), EMPTY(FCGI_PARAMS, 5),
                           EMPTY(FCGI_STDIN, 5))),
    TO_WEB_SERVER(FCGI_END_REQUEST, "END_REQUEST"),
    TO_WEB_SERVER(FCGI_STDOUT, "STDOUT"),
    TO_WEB_SERVER(FCGI_STDERR, "STDERR"),
    TO_WEB_SERVER(FCGI_GET_VALUES_RESULT, "GET_VALUES_RESULT"),
    TO_WEB_SERVER(FCGI_UNKNOWN_TYPE, "UNKNOWN_TYPE"),
    /* Odd but well-formed input is not fatal, and is answered as without the fault;
     * the conversation's last request closes the connection. */
    {"odd but well-formed input", F(EXIT_ON_MALFORMED),
     .input = OPS(REC(FCGI_BEGIN_REQUEST, 9, "\x00\x01\xFF\x01\x02\x03\x04\x05"), EMPTY(FCGI_PARAMS, 9),
                  STREAM(FCGI_DATA, 9, "not for a responder"), REC(99, 9, "?"), EMPTY(FCGI_STDIN, 9),
                  EMPTY(FCGI_PARAMS, 9), REC(FCGI_END_REQUEST, 12, "12345678"), BUILD(put_conversation)),
     .want = EXPECT(FATAL(false), ENDS(5)), .faulty = EXPECT(FATAL(false), SAME_OUTPUT, SAME_STATE)},

    /* abort-on-malformed shares exit-on-malformed's fatal flag; the server aborts
     * instead of exiting (tested at the process level). */
    {"version 2", F(ABORT_ON_MALFORMED), .input = OPS(REC_VERSION(2, FCGI_GET_VALUES, 0)), .want = EXPECT(FATAL(false)),
     .faulty = EXPECT(FATAL(true), IS_CLOSING)},

    /* SHORT=yes with the name length 5 written in the 4-byte form; then the same with
     * the value length in that form. Both are legal (spec §3.4). */
    {"a name length of 5 in 4 bytes", F(NV_LONG_FORM_SHORT_REJECTED),
     .input = OPS(BEGIN(1, R, KEEP), REC(FCGI_PARAMS, 1, "\x80\x00\x00\x05\x03" "SHORTyes"), EMPTY(FCGI_PARAMS, 1),
                  EMPTY(FCGI_STDIN, 1)),
     .want = EXPECT(COMPLETE(1), PAIR(WHOLE_OUTPUT, "SHORT", "yes")),
     .faulty = EXPECT(ENDS(0), IS_CLOSING, REASON("malformed PARAMS"))},
    {"a value length of 3 in 4 bytes", F(NV_LONG_FORM_SHORT_REJECTED),
     .input = OPS(BEGIN(1, R, KEEP), REC(FCGI_PARAMS, 1, "\x05\x80\x00\x00\x03" "SHORTyes"), EMPTY(FCGI_PARAMS, 1),
                  EMPTY(FCGI_STDIN, 1)),
     .want = EXPECT(COMPLETE(1), PAIR(WHOLE_OUTPUT, "SHORT", "yes")),
     .faulty = EXPECT(ENDS(0), IS_CLOSING, REASON("malformed PARAMS"))},
    {"a length of 128 in 4 bytes", F(NV_LONG_FORM_SHORT_REJECTED),
     .input = OPS(BEGIN(1, R, KEEP), FILLED_PAIR(1, "LONG", 'v', 128, 0), EMPTY(FCGI_PARAMS, 1), EMPTY(FCGI_STDIN, 1)),
     .want = EXPECT(FILLED_PAIR_IN(WHOLE_OUTPUT, "LONG", 'v', 128)), .faulty = EXPECT(SAME_OUTPUT, IS_OPEN)},

    /* In 1000-byte records. */
    {"PARAMS of 8192 bytes", F(PARAMS_8K_BUFFER), .input = PARAMS_OF(8192),
     .want = EXPECT(PARAMS_SENT(8192), COMPLETE(1), FILLED_PAIR_IN(WHOLE_OUTPUT, "P", 'p', 8186)),
     .faulty = EXPECT(SAME_OUTPUT, IS_OPEN)},
    {"PARAMS of 8193 bytes", F(PARAMS_8K_BUFFER), .input = PARAMS_OF(8193),
     .want = EXPECT(PARAMS_SENT(8193), COMPLETE(1), FILLED_PAIR_IN(WHOLE_OUTPUT, "P", 'p', 8187)),
     .faulty = EXPECT(ENDS(0), IS_CLOSING, REASON("8 KiB"))},

    /* The report writes a NUL byte as \u0000. */
    {"NUL bytes in names and values", F(PARAMS_CUT_AT_NUL), .input = OPS(REQ_WITH(1, R, KEEP, "A\0B=x\0y\nC=\0z", "")),
     .want = EXPECT(COMPLETE(1), OUT_HAS("[\"A\\u0000B\",\"x\\u0000y\"]"), OUT_HAS("[\"C\",\"\\u0000z\"]")),
     .faulty = EXPECT(COMPLETE(1), OUT_HAS("[\"A\",\"x\"]"), OUT_HAS("[\"C\",\"\"]"), OUT_LACKS("\\u0000"))},

    {"GET_VALUES", F(GET_VALUES_CLOSE), .input = OPS(GET_VALUES("FCGI_MAX_REQS")),
     .want = EXPECT(COUNT(FCGI_GET_VALUES_RESULT, ANY_ID, 1), IS_OPEN), .faulty = EXPECT(SAME_OUTPUT, IS_CLOSING)},
    /* Answered at once, and the connection closes once the request has ended, KEEP_CONN notwithstanding. */
    {"GET_VALUES mid-request", F(GET_VALUES_CLOSE),
     .input = OPS(BEGIN(1, R, KEEP), EMPTY(FCGI_PARAMS, 1), GET_VALUES("FCGI_MAX_REQS"), EMPTY(FCGI_STDIN, 1),
                  REQ(2, R, KEEP, "", "")),
     .want = EXPECT(COMPLETE(1), COMPLETE(2), IS_OPEN),
     .faulty = EXPECT(COMPLETE(1), COUNT(FCGI_GET_VALUES_RESULT, 0, 1), IDS(2, 0), IS_CLOSING)},

    {"GET_VALUES", F(GET_VALUES_ID_1), .input = OPS(GET_VALUES("FCGI_MPXS_CONNS")), .want = EXPECT(RECORDS(1)),
     .faulty = EXPECT(COMPARED_BY(values_on_id_1))},

    {"past --max-reqs", F(OVERLOADED_SILENT_CLOSE), .config = {.max_reqs = 1},
     .input = OPS(BEGIN(1, R, KEEP), BEGIN(2, R, KEEP)), .want = EXPECT(ANSWER(2, 0, FCGI_OVERLOADED), IS_OPEN),
     .faulty = EXPECT(OUT_LEN(0), IS_CLOSING, REASON("over the limits"))},
    {"under the limit", F(OVERLOADED_SILENT_CLOSE), .config = {.max_reqs = 1}, .input = TWO_REQUESTS,
     .want = EXPECT(ENDS(2)), .faulty = EXPECT(SAME_OUTPUT)},
    {"past --max-conns", F(OVERLOADED_SILENT_CLOSE), .config = {.overloaded = true},
     .input = OPS(REQ(1, R, KEEP, "", "")), .want = EXPECT(ANSWER(1, 0, FCGI_OVERLOADED)),
     .faulty = EXPECT(OUT_LEN(0), IS_CLOSING, REASON("over the limits"))},

    {"GET_VALUES during two requests", F(GET_VALUES_AFTER_REQUESTS),
     .input = OPS(BEGIN(1, R, KEEP), BEGIN(2, R, KEEP), EMPTY(FCGI_PARAMS, 1), EMPTY(FCGI_PARAMS, 2),
                  GET_VALUES("FCGI_MAX_REQS"), EMPTY(FCGI_STDIN, 1), EMPTY(FCGI_STDIN, 2)),
     .want = EXPECT(COMPLETE(1), COMPLETE(2), COUNT(FCGI_GET_VALUES_RESULT, 0, 1)),
     .faulty = EXPECT(COMPLETE(1), COMPLETE(2), COUNT(FCGI_GET_VALUES_RESULT, 0, 1),
                      COMPARED_BY(values_after_both_requests))},
    {"two GET_VALUES during a request", F(GET_VALUES_AFTER_REQUESTS),
     .input = OPS(BEGIN(1, R, KEEP), EMPTY(FCGI_PARAMS, 1), GET_VALUES("FCGI_MAX_REQS"), GET_VALUES("FCGI_MPXS_CONNS"),
                  EMPTY(FCGI_STDIN, 1)),
     .want = EXPECT(COUNT(FCGI_GET_VALUES_RESULT, 0, 2)),
     .faulty = EXPECT(COMPLETE(1), CHECKED_BY(both_values_after_request))},
    {"GET_VALUES with no request active", F(GET_VALUES_AFTER_REQUESTS),
     .input = OPS(GET_VALUES("FCGI_MAX_REQS"), BEGIN(1, R, KEEP)),
     .want = EXPECT(COUNT(FCGI_GET_VALUES_RESULT, ANY_ID, 1)), .faulty = EXPECT(SAME_OUTPUT)},

    {"type 200", F(UNKNOWN_TYPE_CLOSE), .input = OPS(EMPTY(200, 0), REQ(1, R, KEEP, "", "")),
     .want = EXPECT(COUNT(FCGI_UNKNOWN_TYPE, 0, 1), COMPLETE(1), IS_OPEN),
     .faulty = EXPECT(OUT_LEN(0), IS_CLOSING, REASON("unknown management record type 200"))},

    {"role 7", F(UNKNOWN_ROLE_SERVED), .input = OPS(REQ(1, UNKNOWN_ROLE, KEEP, "status=201", "")),
     .want = EXPECT(ANSWER(1, 0, FCGI_UNKNOWN_ROLE)),
     .faulty = EXPECT(COMPLETE(1), HAS(1, "Status: 201 "), HAS(1, "\"role\":\"responder\""))},
    /* A role the server was told not to serve is unknown too. */
    {"a Filter with --roles responder", F(UNKNOWN_ROLE_SERVED), .config = {.roles = ROLE_MASK_RESPONDER},
     .input = OPS(REQ(1, FCGI_FILTER, KEEP, "status=201", "")), .want = EXPECT(ANSWER(1, 0, FCGI_UNKNOWN_ROLE)),
     .faulty = EXPECT(COMPLETE(1), HAS(1, "\"role\":\"responder\""))},

    {"STDOUT, STDERR and app status", F(END_BEFORE_STDOUT), .input = OPS(REQ(1, R, KEEP, "err=e&app_status=3", "")),
     .want = EXPECT(ANSWER(1, 3, FCGI_REQUEST_COMPLETE)),
     .faulty = EXPECT(COMPARED_BY(end_request_first), COUNT(FCGI_END_REQUEST, 1, 1), IS_OPEN)},
    {"100000 bytes of STDOUT", F(END_BEFORE_STDOUT), .input = OPS(REQ(1, R, KEEP, "out=100000", "")),
     .faulty = EXPECT(COUNT(FCGI_END_REQUEST, 1, 1), CHECKED_BY(end_request_before_terminator))},

    {"KEEP_CONN with another flag bit set", F(FLAGS_EXACT_MATCH),
     .input = OPS(REQ(1, R, KEEP | 0x02, "", ""), REQ(2, R, KEEP | 0x02, "", "")), .want = EXPECT(ENDS(2), IS_OPEN),
     .faulty = EXPECT(COMPLETE(1), IDS(2, 0), IS_CLOSING)},
    {"the flags byte exactly 1", F(FLAGS_EXACT_MATCH), .input = TWO_REQUESTS, .want = EXPECT(ENDS(2)),
     .faulty = EXPECT(SAME_OUTPUT, IS_OPEN)},

    {"empty PARAMS", F(EMPTY_PARAMS_CLOSE),
     .input = OPS(BEGIN(1, R, KEEP), EMPTY(FCGI_PARAMS, 1), EMPTY(FCGI_STDIN, 1)),
     .want = EXPECT(COMPLETE(1), IS_OPEN), .faulty = EXPECT(OUT_LEN(0), IS_CLOSING, REASON("empty PARAMS"))},
    {"PARAMS with a pair", F(EMPTY_PARAMS_CLOSE), .input = OPS(REQ(1, R, KEEP, "", "")), .want = EXPECT(ENDS(1)),
     .faulty = EXPECT(SAME_OUTPUT, IS_OPEN)},

    {"STDIN shorter than CONTENT_LENGTH", F(CONTENT_LENGTH_UNCHECKED), .input = CONTENT_LENGTH_REQUEST("10", "abc"),
     .want = EXPECT(OUT_HAS("Status: 400 "), OUT_HAS("X-Probe-Error: stdin shorter than CONTENT_LENGTH\r\n")),
     .faulty = EXPECT(COMPLETE(1), OUT_HAS("Status: 200 OK\r\n"), OUT_LACKS("X-Probe-Error"),
                      OUT_HAS("\"stdin_length\":3"))},
    {"a complete body", F(CONTENT_LENGTH_UNCHECKED), .input = CONTENT_LENGTH_REQUEST("3", "abc"),
     .want = EXPECT(OUT_HAS("Status: 200 OK\r\n")), .faulty = EXPECT(SAME_OUTPUT)},

    /* 5000 bytes of STDERR in each of two requests; then 3000 bytes. */
    {"STDERR of 5000, 5000 and 3000 bytes", F(STDERR_TRUNCATED),
     .input = OPS(REQ(1, R, KEEP, "err=0123456789&err_repeat=500", ""),
                  REQ(2, R, KEEP, "err=0123456789&err_repeat=500", ""),
                  REQ(3, R, KEEP, "err=0123456789&err_repeat=300", "")),
     .want = EXPECT(COMPLETE(1), COMPLETE(2), COMPLETE(3), STDERR_REPEATED(1, "0123456789", 500),
                    STDERR_REPEATED(2, "0123456789", 500), STDERR_REPEATED(3, "0123456789", 300)),
     .faulty = EXPECT(COMPLETE(1), COMPLETE(2), COMPLETE(3), COMPARED_BY(stderr_cut_at_4k))},

    {"STDIN of 40000 bytes", F(STDIN_STALL_40K), .input = STDIN_THEN_VALUES(40000),
     .want = EXPECT(COMPLETE(1), COUNT(FCGI_GET_VALUES_RESULT, 0, 1), OUT_HAS("\"stdin_length\":40000")),
     .faulty = EXPECT(SAME_OUTPUT, WANTS_INPUT(true))},
    /* Stalled: nothing more is read, neither the rest of STDIN nor GET_VALUES. */
    {"STDIN of 50000 bytes", F(STDIN_STALL_40K), .input = STDIN_THEN_VALUES(50000),
     .want = EXPECT(COMPLETE(1), COUNT(FCGI_GET_VALUES_RESULT, 0, 1), OUT_HAS("\"stdin_length\":50000")),
     .faulty = EXPECT(OUT_LEN(0), WANTS_INPUT(false), IS_OPEN, ACTIVE(1))},

    /* The request has ended, the connection goes on. */
    {"an aborted request with KEEP_CONN", F(NO_END_AFTER_ABORT), .input = ABORTED_THEN_REQUEST_2(KEEP),
     .want = EXPECT(COMPLETE(1), COMPLETE(2)),
     .faulty = EXPECT(COUNT(FCGI_END_REQUEST, 1, 0), COMPARED_BY(stdout_still_ended), COMPLETE(2), IS_OPEN, ACTIVE(0))},
    {"an aborted request without KEEP_CONN", F(NO_END_AFTER_ABORT), .input = ABORTED_THEN_REQUEST_2(0),
     .want = EXPECT(COMPLETE(1), IDS(2, 0), IS_CLOSING),
     .faulty = EXPECT(COUNT(FCGI_END_REQUEST, 1, 0), CHECKED_BY(closed_after_abort))},

    {"an aborted request with KEEP_CONN", F(ABORT_CLOSES_CONNECTION), .input = ABORTED_THEN_REQUEST_2(KEEP),
     .want = EXPECT(COMPLETE(1), COMPLETE(2), IS_OPEN),
     .faulty = EXPECT(COMPLETE(1), COMPARED_BY(request_1_as_without), IDS(2, 0), IS_CLOSING)},

    /* Request 2 is refused: UNKNOWN_ROLE. */
    {"a request and a refused one", F(END_REQUEST_SHORT_BODY),
     .input = OPS(REQ(1, R, KEEP, "app_status=258", ""), REQ(2, UNKNOWN_ROLE, KEEP, "", "")),
     .want = EXPECT(ANSWER(1, 258, FCGI_REQUEST_COMPLETE), ANSWER(2, 0, FCGI_UNKNOWN_ROLE)),
     .faulty = EXPECT(COMPARED_BY(short_end_requests), ENDS(2))},

    {"a second request with --no-mpx", F(CANT_MPX_CLOSE), .config = {.no_mpx = true},
     .input = OPS(BEGIN(1, R, KEEP), BEGIN(2, R, KEEP)), .want = EXPECT(ANSWER(2, 0, FCGI_CANT_MPX_CONN), IS_OPEN),
     .faulty = EXPECT(OUT_LEN(0), IS_CLOSING, REASON("second concurrent request"))},
    /* Without --no-mpx the fault changes nothing: both are served. */
    {"a second request with multiplexing", F(CANT_MPX_CLOSE),
     .input = OPS(BEGIN(1, R, KEEP), REQ(2, R, KEEP, "", ""), EMPTY(FCGI_PARAMS, 1), EMPTY(FCGI_STDIN, 1)),
     .want = EXPECT(ENDS(2)), .faulty = EXPECT(SAME_OUTPUT)},

    {"still advertises multiplexing", F(MPX_SERIALIZED), .input = OPS(GET_VALUES("FCGI_MPXS_CONNS")),
     .faulty = EXPECT(VALUES("FCGI_MPXS_CONNS=1"), SAME_OUTPUT)},

    {"app status 7", F(APP_STATUS_ZERO), .input = OPS(REQ(1, R, KEEP, "app_status=7", "")),
     .want = EXPECT(ANSWER(1, 7, FCGI_REQUEST_COMPLETE)),
     .faulty = EXPECT(COMPLETE(1), COMPARED_BY(same_but_end_request))},

    {"allowed", F(AUTHORIZER_VARIABLES_DROPPED), .input = AUTHORIZER_REQUEST("Bearer fcgispec"),
     .want = EXPECT(OUT_HAS("Variable-FCGISPEC_USER: probe\r\n")),
     .faulty = EXPECT(COMPLETE(1), STDOUT_IS(1, "Status: 200 OK\r\n\r\n"))},
    /* A denial is the same either way. */
    {"denied", F(AUTHORIZER_VARIABLES_DROPPED), .input = AUTHORIZER_REQUEST("Bearer wrong"),
     .want = EXPECT(OUT_HAS("Status: 403 ")), .faulty = EXPECT(SAME_OUTPUT)},

    {"DATA sent after STDIN ended", F(FILTER_DATA_IGNORED), .input = FILTER_DATA_AFTER,
     .want = EXPECT(COMPLETE(1), BODY_IS(1, "file to filter\r\n")),
     .faulty = EXPECT(COMPLETE(1), HAS(1, "X-Filter-Stdin-Length: 5\r\n"), BODY_IS(1, ""))},
    {"DATA sent before STDIN ended", F(FILTER_DATA_IGNORED), .input = FILTER_DATA_FIRST,
     .want = EXPECT(COMPLETE(1), BODY_IS(1, "file to filter\r\n")),
     .faulty = EXPECT(COMPLETE(1), HAS(1, "X-Filter-Stdin-Length: 5\r\n"), BODY_IS(1, ""))},
    /* Answered as soon as STDIN ends, with no DATA sent at all. */
    {"no DATA sent", F(FILTER_DATA_IGNORED),
     .input = OPS(REQ_WITH(1, FCGI_FILTER, KEEP, "FCGI_DATA_LENGTH=16", "stdin")),
     .want = EXPECT(ENDS(0), ACTIVE(1)), .faulty = EXPECT(ENDS(1), ACTIVE(0))},

    {"STDOUT and STDERR", F(STDOUT_AS_DATA), .input = OPS(REQ(1, R, KEEP, "err=e", "")), .want = EXPECT(COMPLETE(1)),
     .faulty = EXPECT(COMPARED_BY(stdout_records_as_data), COUNT_MIN(FCGI_DATA, 1, 1), COUNT(FCGI_STDOUT, ANY_ID, 0))},

    {"STDERR used", F(NO_EMPTY_STDERR), .input = OPS(REQ(1, R, KEEP, "err=e", "")),
     .want = EXPECT(COMPLETE(1), COUNT(FCGI_STDERR, 1, 2)), .faulty = EXPECT(ENDS(1), COUNT(FCGI_STDERR, 1, 1))},
    {"STDERR unused", F(NO_EMPTY_STDERR), .input = OPS(REQ(1, R, KEEP, "", "")),
     .want = EXPECT(COUNT(FCGI_STDERR, 1, 0)), .faulty = EXPECT(SAME_OUTPUT)},
    {"a probe response", F(NPH_STATUS_LINE), .input = OPS(REQ(1, R, KEEP, "", "")),
     .want = EXPECT(COMPLETE(1), OUT_HAS("Status: 200 OK\r\n"), OUT_LACKS("HTTP/1.1")),
     .faulty = EXPECT(COMPLETE(1), OUT_HAS("HTTP/1.1 200 OK\r\n"), OUT_LACKS("Status: "))},

    {"GET_VALUES with --max-conns 7", F(MAX_CONNS_OVERSTATED), .config = {.max_conns = 7},
     .input = OPS(GET_VALUES("FCGI_MAX_CONNS\nFCGI_MAX_REQS\nFCGI_MPXS_CONNS")),
     .want = EXPECT(VALUES("FCGI_MAX_CONNS=7\nFCGI_MAX_REQS=4096\nFCGI_MPXS_CONNS=1")),
     .faulty = EXPECT(VALUES("FCGI_MAX_CONNS=70\nFCGI_MAX_REQS=4096\nFCGI_MPXS_CONNS=1"))},
};

/* ---- fault tests of other shapes ------------------------------------------------------- */

static void fault_split_header_lost(struct test_counts *tc)
{
    struct wire w, more;
    wire_init(&w);
    wire_init(&more);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    put_end(&more, FCGI_STDIN, 1);
    /* The last record is the empty STDIN (a header alone): 3 of its bytes in one
     * read, 5 in the next; then a whole copy of it. */
    size_t first = w.b.len - 5;
    for (int faulty = 0; faulty < 2; faulty++) {
        struct fx f;
        fx_open_faults(&f, faulty ? with(FAULT_SPLIT_HEADER_LOST) : 0);
        CHECK_EQ_U(fx_send_bytes(&f, w.b.data, first), first);
        CHECK_EQ_U(fx_send_bytes(&f, w.b.data + first, 5), 5);
        CHECK_EQ_U(count_end_requests(&f.out), faulty ? 0 : 1);
        CHECK_EQ_U(f.load.active_requests, faulty ? 1 : 0);
        CHECK(!fx_closing(&f));
        CHECK(fcgi_conn_wants_input(f.c));
        fx_send(&f, &more); /* late for the good run; the lost record again for the faulty one */
        struct recs r = parse_records(&f.out);
        check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
        CHECK_EQ_U(f.load.active_requests, 0);
        recs_free(&r);
        fx_close(tc, &f);
    }
    /* Whole headers, and a split inside a record's content, are unaffected. */
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_SPLIT_HEADER_LOST), &w, &bad);
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    struct fx f;
    fx_open_faults(&f, with(FAULT_SPLIT_HEADER_LOST));
    size_t cut = FCGI_HEADER_LEN + 8 + FCGI_HEADER_LEN + 3; /* BEGIN, then inside PARAMS content */
    fx_send_bytes(&f, w.b.data, cut);
    fx_send_bytes(&f, w.b.data + cut, w.b.len - cut);
    CHECK(buf_eq(&f.out, good.out.data, good.out.len));
    fx_close(tc, &f);
    runs_free(&good, &bad), buf_free(&w.b), buf_free(&more.b);
}

static void fault_output_before_params_end(struct test_counts *tc)
{
    struct wire head, rest;
    wire_init(&head);
    wire_init(&rest);
    struct buf p1 = {0}, p2 = {0};
    nv_put_text(&p1, "QUERY_STRING", "status=201");
    nv_put_text(&p2, "LATE", "yes");
    put_begin(&head, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_stream(&head, FCGI_PARAMS, 1, p1.data, p1.len);
    put_stream(&rest, FCGI_PARAMS, 1, p2.data, p2.len);
    put_end(&rest, FCGI_PARAMS, 1);
    put_stream(&rest, FCGI_STDIN, 1, "abc", 3);
    put_end(&rest, FCGI_STDIN, 1);
    for (int faulty = 0; faulty < 2; faulty++) {
        struct fx f;
        fx_open_faults(&f, faulty ? with(FAULT_OUTPUT_BEFORE_PARAMS_END) : 0);
        fx_send(&f, &head);
        struct recs r = parse_records(&f.out);
        if (!faulty) {
            CHECK_EQ_U(f.out.len, 0);
            CHECK_EQ_U(f.load.active_requests, 1);
        } else {
            /* Answered from the first PARAMS record, as a request without STDIN. */
            check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
            CHECK(buf_has(&f.out, "Status: 201 "));
            CHECK(buf_has(&f.out, "\"stdin_length\":0"));
            CHECK(!buf_has(&f.out, "LATE"));
            CHECK_EQ_U(f.load.active_requests, 0);
        }
        recs_free(&r);
        size_t before = f.out.len;
        CHECK_EQ_U(fx_send(&f, &rest), rest.b.len);
        r = parse_records(&f.out);
        check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
        if (!faulty) {
            CHECK(buf_has(&f.out, "Status: 201 "));
            CHECK(report_has_pair(&f.out, (const uint8_t *)"LATE", 4, (const uint8_t *)"yes", 3));
            CHECK(buf_has(&f.out, "\"stdin_length\":3"));
        } else {
            CHECK_EQ_U(f.out.len, before); /* the rest is for an inactive id */
        }
        CHECK(!fx_closing(&f));
        recs_free(&r);
        fx_close(tc, &f);
    }
    buf_free(&p1), buf_free(&p2), buf_free(&head.b), buf_free(&rest.b);
}

/* Request 1 waits 50 ms; request 2 comes whole after it. Without the fault
 * request 2 is answered at once; with it, only once request 1 has ended. */
static void fault_mpx_serialized(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "delay=50", "");
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    for (int faulty = 0; faulty < 2; faulty++) {
        struct fx f;
        fx_open_faults(&f, faulty ? with(FAULT_MPX_SERIALIZED) : 0);
        fx_send(&f, &w);
        struct recs r = parse_records(&f.out);
        CHECK_EQ_U(count_records(&r, FCGI_END_REQUEST, 1), 0);
        CHECK_EQ_U(count_records(&r, FCGI_END_REQUEST, 2), faulty ? 0 : 1);
        CHECK_EQ_U(f.load.active_requests, 1);
        recs_free(&r);
        f.now = T0 + 50;
        fcgi_conn_tick(f.c, f.now);
        fx_drain(&f);
        r = parse_records(&f.out);
        check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
        check_answer(tc, &r, 2, 0, FCGI_REQUEST_COMPLETE);
        bool one_first = first_of(&r, FCGI_END_REQUEST, 1) < first_of(&r, FCGI_END_REQUEST, 2);
        CHECK(faulty ? one_first : !one_first);
        CHECK(!fx_closing(&f));
        recs_free(&r);
        fx_close(tc, &f);
    }
    buf_free(&w.b);
}

/* Indexed by enum fault: the fault tests that are not rows of fault_cases. */
static const test_fn fault_functions[FAULT_COUNT] = {
    [FAULT_SPLIT_HEADER_LOST] = fault_split_header_lost,
    [FAULT_OUTPUT_BEFORE_PARAMS_END] = fault_output_before_params_end,
    [FAULT_MPX_SERIALIZED] = fault_mpx_serialized,
};

/* Faults of the process rather than of a connection (sockets, signals, exit):
 * the state machine cannot show them, so they have no test here. Each is named
 * with where it is tested; every other fault must have a test above. */
#define TESTED_BY_PROCESS "tested at the process level (tests/test_catch_matrix.py)"
static const char *const fault_tested_elsewhere[FAULT_COUNT] = {
    [FAULT_FD_LEAK_ON_EOF] = TESTED_BY_PROCESS,
    [FAULT_EXIT_ON_WRITE_ERROR] = TESTED_BY_PROCESS,
    [FAULT_SIGTERM_IGNORED] = TESTED_BY_PROCESS,
    [FAULT_FD0_IGNORED] = TESTED_BY_PROCESS,
    [FAULT_WEB_SERVER_ADDRS_IGNORED] = TESTED_BY_PROCESS,
    [FAULT_CLOSE_WITH_RST] = TESTED_BY_PROCESS,
};

/* The command-line name of fault f, from fault_print_list (faults.h has no other
 * way to get it); "?" if it cannot be read. */
static void fault_name(int f, char name[64])
{
    snprintf(name, 64, "?");
    FILE *list = tmpfile();
    if (!list)
        return;
    fault_print_list(list);
    rewind(list);
    char line[512];
    for (int i = 0; i <= f && fgets(line, sizeof(line), list); i++)
        if (i == f)
            sscanf(line, "%63s", name);
    fclose(list);
}

#define CASES (sizeof(fault_cases) / sizeof(fault_cases[0]))

int main(void)
{
    struct test_counts counts = {0, 0};
    struct test_counts *tc = &counts;
    for (int f = 0; f < FAULT_COUNT; f++) {
        char fault[64], label[96];
        fault_name(f, fault);
        size_t rows = 0;
        for (size_t i = 0; i < CASES; i++)
            rows += fault_cases[i].faults == with((enum fault)f);
        bool tested = rows > 0 || fault_functions[f] != NULL;
        /* Exactly one of: a test here, or a note saying where it is tested. */
        if (fault_tested_elsewhere[f]) {
            if (!CHECK(!tested))
                printf("    fault %d (%s) has a test here but is listed as %s\n", f, fault, fault_tested_elsewhere[f]);
            continue;
        }
        if (!CHECK(tested)) {
            printf("    fault %d (%s) has no test\n", f, fault);
            continue;
        }
        snprintf(label, sizeof(label), "fault %s: ", fault);
        for (size_t i = 0; i < CASES; i++)
            if (fault_cases[i].faults == with((enum fault)f))
                run_case(tc, label, &fault_cases[i]);
        if (fault_functions[f]) {
            snprintf(label, sizeof(label), "fault %s", fault);
            run_test(tc, label, fault_functions[f]);
        }
    }
    /* Every row is for one fault. */
    for (size_t i = 0; i < CASES; i++) {
        fault_set set = fault_cases[i].faults;
        if (!CHECK(set != 0 && (set & (set - 1)) == 0))
            printf("    row \"%s\" is not for exactly one fault\n", fault_cases[i].name);
    }
    return test_finish(tc);
}
