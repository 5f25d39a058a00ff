/* Unit tests of the connection state machine (fcgi_conn.h). Each test builds the
 * inbound bytes with the codec's encoders, feeds them to a fresh connection the
 * way the server's event loop would, and decodes every record it queues. The
 * connection is pure, so no sockets and no real clock: time is a number the test
 * advances. Every test ends with fcgi_conn_free and checks the shared request
 * counter is back to zero, so a leaked request shows up here as well as in ASan. */
#include "fcgi_codec.h"
#include "fcgi_conn.h"
#include "faults.h"
#include "test_main.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The clock at connection start; not 0, because 0 means "no timer" in the API. */
#define T0 1000u
/* The largest amount the output may pass out_high_water by: one pump step can
 * add one full record plus the small records that end a request. */
#define OUT_SLACK (FCGI_MAX_RECORD + 64u)

/* ---- growable byte buffers ------------------------------------------------- */

struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return q;
}

static void buf_put(struct buf *b, const void *data, size_t len)
{
    if (len == 0)
        return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void buf_puts(struct buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_fill(struct buf *b, uint8_t byte, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf_put(b, &byte, 1);
}

static void buf_free(struct buf *b)
{
    free(b->data);
    *b = (struct buf){0};
}

/* Position of needle in hay, or -1; written out because memmem is not C11. */
static long find_bytes(const uint8_t *hay, size_t hay_len, const void *needle, size_t needle_len)
{
    if (needle_len == 0)
        return 0;
    for (size_t i = 0; i + needle_len <= hay_len; i++)
        if (hay[i] == *(const uint8_t *)needle && memcmp(hay + i, needle, needle_len) == 0)
            return (long)i;
    return -1;
}

static bool buf_has(const struct buf *b, const char *text)
{
    return find_bytes(b->data, b->len, text, strlen(text)) >= 0;
}

static bool buf_eq(const struct buf *b, const void *data, size_t len)
{
    return b->len == len && (len == 0 || memcmp(b->data, data, len) == 0);
}

/* ---- inbound records ----------------------------------------------------------- */

/* The bytes a web server would send. pad_len < 0 pads the usual way (to a
 * multiple of 8, zero bytes); otherwise every record gets pad_len bytes of pad_byte. */
struct wire {
    struct buf b;
    int pad_len;
    uint8_t pad_byte;
};

static void wire_init(struct wire *w) { *w = (struct wire){.pad_len = -1}; }

/* Frees what an initialised wire holds and starts it again. */
static void wire_reset(struct wire *w)
{
    buf_free(&w->b);
    wire_init(w);
}

static void put_record_v(struct wire *w, uint8_t version, uint8_t type, uint16_t id, const void *content,
                         size_t len)
{
    if (w->pad_len < 0 && version == FCGI_VERSION_1) {
        /* The codec's own encoder, so the normal path is exactly what it writes. */
        size_t cap = FCGI_HEADER_LEN + len + 8;
        uint8_t *rec = xrealloc(NULL, cap);
        size_t n = fcgi_record_encode(type, id, content, len, rec, cap);
        if (n == 0) {
            fprintf(stderr, "test bug: record of %zu bytes does not encode\n", len);
            exit(2);
        }
        buf_put(&w->b, rec, n);
        free(rec);
        return;
    }
    uint8_t pad_len = w->pad_len < 0 ? fcgi_padding_for(len) : (uint8_t)w->pad_len;
    struct fcgi_header h = {version, type, id, (uint16_t)len, pad_len};
    uint8_t header[FCGI_HEADER_LEN];
    fcgi_header_encode(&h, header);
    buf_put(&w->b, header, sizeof(header));
    buf_put(&w->b, content, len);
    buf_fill(&w->b, w->pad_len < 0 ? 0 : w->pad_byte, pad_len);
}

static void put_record(struct wire *w, uint8_t type, uint16_t id, const void *content, size_t len)
{
    put_record_v(w, FCGI_VERSION_1, type, id, content, len);
}

/* A stream's data cut into records of at most `piece` bytes (no terminator). */
static void put_stream_pieces(struct wire *w, uint8_t type, uint16_t id, const void *data, size_t len, size_t piece)
{
    const uint8_t *p = data;
    for (size_t pos = 0; pos < len; pos += piece)
        put_record(w, type, id, p + pos, len - pos < piece ? len - pos : piece);
}

static void put_stream(struct wire *w, uint8_t type, uint16_t id, const void *data, size_t len)
{
    put_stream_pieces(w, type, id, data, len, FCGI_MAX_CONTENT);
}

static void put_end(struct wire *w, uint8_t type, uint16_t id) { put_record(w, type, id, NULL, 0); }

static void put_begin(struct wire *w, uint16_t id, uint16_t role, uint8_t flags)
{
    struct fcgi_begin_request begin = {role, flags};
    uint8_t body[8];
    fcgi_begin_request_encode(&begin, body);
    put_record(w, FCGI_BEGIN_REQUEST, id, body, sizeof(body));
}

static void nv_put(struct buf *b, const void *name, size_t name_len, const void *value, size_t value_len)
{
    size_t size = fcgi_nv_encoded_size(name_len, value_len);
    uint8_t *pair = xrealloc(NULL, size);
    size_t n = fcgi_nv_encode(name, name_len, value, value_len, pair, size);
    if (n != size) {
        fprintf(stderr, "test bug: pair does not encode\n");
        exit(2);
    }
    buf_put(b, pair, n);
    free(pair);
}

static void nv_put_text(struct buf *b, const char *name, const char *value)
{
    nv_put(b, name, strlen(name), value, strlen(value));
}

/* BEGIN, PARAMS {QUERY_STRING, REQUEST_METHOD}, end of PARAMS, STDIN, end of STDIN. */
static void put_request(struct wire *w, uint16_t id, uint16_t role, uint8_t flags, const char *query,
                        const char *stdin_text)
{
    put_begin(w, id, role, flags);
    struct buf params = {0};
    nv_put_text(&params, "QUERY_STRING", query);
    nv_put_text(&params, "REQUEST_METHOD", stdin_text[0] ? "POST" : "GET");
    put_stream(w, FCGI_PARAMS, id, params.data, params.len);
    put_end(w, FCGI_PARAMS, id);
    put_stream(w, FCGI_STDIN, id, stdin_text, strlen(stdin_text));
    put_end(w, FCGI_STDIN, id);
    buf_free(&params);
}

static void put_get_values(struct wire *w, const char *const *names, size_t count)
{
    struct buf q = {0};
    for (size_t i = 0; i < count; i++)
        nv_put(&q, names[i], strlen(names[i]), "", 0);
    put_record(w, FCGI_GET_VALUES, 0, q.data, q.len);
    buf_free(&q);
}

/* ---- outbound records ---------------------------------------------------------- */

struct rec {
    uint8_t version;
    uint8_t type;
    uint16_t id;
    const uint8_t *content; /* points into the buffer that was parsed */
    size_t len;
    uint8_t padding;
};

struct recs {
    struct rec *v;
    size_t n;
    size_t trailing; /* bytes after the last whole record */
};

/* Splits output bytes into records. The result points into b: parse again after
 * b changes. */
static struct recs parse_records(const struct buf *b)
{
    struct recs r = {0};
    size_t pos = 0;
    while (pos < b->len) {
        struct fcgi_header h;
        if (fcgi_header_decode(b->data + pos, b->len - pos, &h) != FCGI_DECODE_OK ||
            fcgi_record_size(&h) > b->len - pos)
            break;
        r.v = xrealloc(r.v, (r.n + 1) * sizeof(*r.v));
        r.v[r.n++] = (struct rec){h.version, h.type, h.request_id, b->data + pos + FCGI_HEADER_LEN,
                                  h.content_length, h.padding_length};
        pos += fcgi_record_size(&h);
    }
    r.trailing = b->len - pos;
    return r;
}

static void recs_free(struct recs *r)
{
    free(r->v);
    *r = (struct recs){0};
}

static size_t count_records(const struct recs *r, uint8_t type, int id)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].type == type && (id < 0 || r->v[i].id == id))
            n++;
    return n;
}

static size_t count_id(const struct recs *r, uint16_t id)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += r->v[i].id == id;
    return n;
}

/* Concatenation of one stream's contents for one request. */
static void stream_of(const struct recs *r, uint8_t type, uint16_t id, struct buf *out)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].type == type && r->v[i].id == id)
            buf_put(out, r->v[i].content, r->v[i].len);
}

/* The first END_REQUEST of `id`; false if there is none or it is malformed. */
static bool end_of(const struct recs *r, uint16_t id, struct fcgi_end_request *out)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].type == FCGI_END_REQUEST && r->v[i].id == id)
            return fcgi_end_request_decode(r->v[i].content, r->v[i].len, out) == FCGI_DECODE_OK;
    return false;
}

static size_t count_end_requests(const struct buf *b)
{
    struct recs r = parse_records(b);
    size_t n = count_records(&r, FCGI_END_REQUEST, -1);
    recs_free(&r);
    return n;
}

/* What every record the reference writes must look like. */
static void check_framing(struct test_counts *tc, const struct recs *r)
{
    CHECK_EQ_U(r->trailing, 0);
    for (size_t i = 0; i < r->n; i++) {
        CHECK_EQ_U(r->v[i].version, FCGI_VERSION_1);
        CHECK_EQ_U(r->v[i].padding, fcgi_padding_for(r->v[i].len));
    }
}

/* One request's answer: its streams each end with exactly one empty record after
 * all their data, and exactly one END_REQUEST comes last with the given statuses.
 * A refused request (protocol status other than REQUEST_COMPLETE) gets END_REQUEST alone. */
static void check_answer(struct test_counts *tc, const struct recs *r, uint16_t id, uint32_t app_status,
                         uint8_t protocol_status)
{
    check_framing(tc, r);
    CHECK_EQ_U(count_records(r, FCGI_END_REQUEST, id), 1);
    struct fcgi_end_request end = {0xdeadbeef, 0xff};
    CHECK(end_of(r, id, &end));
    CHECK_EQ_U(end.app_status, app_status);
    CHECK_EQ_U(end.protocol_status, protocol_status);
    size_t last = r->n;
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].id == id)
            last = i;
    CHECK(last < r->n && r->v[last].type == FCGI_END_REQUEST);
    if (protocol_status != FCGI_REQUEST_COMPLETE) {
        CHECK_EQ_U(count_id(r, id), 1);
        return;
    }
    const uint8_t streams[2] = {FCGI_STDOUT, FCGI_STDERR};
    for (int s = 0; s < 2; s++) {
        size_t records = 0, empties = 0, empty_at = 0;
        bool data_after_empty = false;
        for (size_t i = 0; i < r->n; i++) {
            if (r->v[i].id != id || r->v[i].type != streams[s])
                continue;
            records++;
            if (r->v[i].len == 0)
                empties++, empty_at = i;
            else if (empties)
                data_after_empty = true;
        }
        if (streams[s] == FCGI_STDOUT || records > 0) {
            CHECK_EQ_U(empties, 1);
            CHECK(!data_after_empty);
            CHECK(empty_at < last);
        }
    }
}

/* The HTTP body of a CGI response: what follows the blank line. */
static void body_of(const struct buf *cgi, struct buf *body)
{
    long at = find_bytes(cgi->data, cgi->len, "\r\n\r\n", 4);
    if (at >= 0)
        buf_put(body, cgi->data + at + 4, cgi->len - (size_t)at - 4);
}

/* ---- a connection under test ------------------------------------------------------ */

struct fx {
    struct fcgi_limits limits; /* the connection keeps a pointer: fx must not move */
    struct fcgi_load load;
    struct fcgi_conn *c;
    uint64_t now;
    struct buf out; /* everything the connection has queued so far */
};

/* The command line's default limits. */
static void fx_init(struct fx *f)
{
    *f = (struct fx){0};
    f->limits = fcgi_limits_default();
    f->now = T0;
}

static void fx_open(struct fx *f) { f->c = fcgi_conn_new(&f->limits, &f->load, 1, false, f->now); }

/* Takes everything queued, as a socket that accepts all writes would. */
static void fx_drain(struct fx *f)
{
    for (int rounds = 0; rounds < 1000000; rounds++) {
        size_t len;
        const uint8_t *p = fcgi_conn_output(f->c, &len);
        if (len == 0)
            return;
        buf_put(&f->out, p, len);
        fcgi_conn_output_done(f->c, len, f->now);
    }
}

/* Feeds all of w (draining when the connection stops taking input, as the event
 * loop would), then drains. Returns the bytes taken: fewer once it is closing. */
static size_t fx_send_bytes(struct fx *f, const uint8_t *data, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        size_t n = fcgi_conn_feed(f->c, data + pos, len - pos, f->now);
        pos += n;
        if (n == 0) {
            size_t before = f->out.len;
            fx_drain(f);
            if (f->out.len == before && !fcgi_conn_wants_input(f->c))
                break;
        }
    }
    fx_drain(f);
    return pos;
}

static size_t fx_send(struct fx *f, const struct wire *w) { return fx_send_bytes(f, w->b.data, w->b.len); }

static bool fx_closing(const struct fx *f) { return fcgi_conn_state(f->c) == FCGI_CONN_CLOSING; }

static void fx_close(struct test_counts *tc, struct fx *f)
{
    fcgi_conn_free(f->c);
    f->c = NULL;
    CHECK_EQ_U(f->load.active_requests, 0);
    buf_free(&f->out);
}

/* The whole run of one connection over some input, for tests that compare runs. */
struct run {
    struct buf out;
    enum fcgi_conn_state state;
    char reason[160];
    size_t taken;
    bool fatal;          /* fcgi_conn_fatal: exit-on-malformed wants the process gone */
    bool wants_input;
    unsigned active;     /* requests still active when the input ran out */
};

/* run_wire with limits of the test's choosing, on a connection that may start
 * past max_conns. */
static void run_limits(struct test_counts *tc, const struct fcgi_limits *limits, bool overloaded,
                       const struct wire *w, struct run *result)
{
    struct fx f;
    fx_init(&f);
    f.limits = *limits;
    f.c = fcgi_conn_new(&f.limits, &f.load, 1, overloaded, f.now);
    result->taken = fx_send(&f, w);
    result->state = fcgi_conn_state(f.c);
    snprintf(result->reason, sizeof(result->reason), "%s", fcgi_conn_close_reason(f.c));
    result->fatal = fcgi_conn_fatal(f.c);
    result->wants_input = fcgi_conn_wants_input(f.c);
    result->active = f.load.active_requests;
    result->out = f.out;
    f.out = (struct buf){0};
    fx_close(tc, &f);
}

static void run_wire(struct test_counts *tc, fault_set faults, const struct wire *w, struct run *result)
{
    struct fcgi_limits limits = fcgi_limits_default();
    limits.faults = faults;
    run_limits(tc, &limits, false, w, result);
}

static fault_set with(enum fault f) { return (fault_set)1 << f; }

/* ---- the tests ---------------------------------------------------------------------- */

static void test_responder_request(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    CHECK_EQ_U(fx_send(&f, &w), w.b.len);
    struct recs r = parse_records(&f.out);
    check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_id(&r, 1), r.n);
    CHECK(count_records(&r, FCGI_STDOUT, 1) >= 2);
    CHECK_EQ_U(r.v[0].type, FCGI_STDOUT);
    struct buf out = {0};
    stream_of(&r, FCGI_STDOUT, 1, &out);
    CHECK(out.len > 16 && memcmp(out.data, "Status: 200 OK\r\n", 16) == 0);
    CHECK(buf_has(&out, "\"role\":\"responder\""));
    CHECK(buf_has(&out, "[\"REQUEST_METHOD\",\"GET\"]"));
    CHECK(buf_has(&out, "\"stdin_length\":0"));
    CHECK_EQ_U(count_records(&r, FCGI_STDERR, -1), 0);
    CHECK_EQ_U(f.load.active_requests, 0);
    CHECK(!fx_closing(&f));
    CHECK(fcgi_conn_wants_input(f.c));
    CHECK_EQ_U(fcgi_conn_next_wakeup(f.c), 0);
    buf_free(&out);
    recs_free(&r);
    buf_free(&w.b);
    fx_close(tc, &f);
}

static void test_status_stderr_app_status(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    put_request(&w, 9, FCGI_RESPONDER, FCGI_KEEP_CONN, "status=404&err=oops%21&app_status=7", "body");
    fx_send(&f, &w);
    struct recs r = parse_records(&f.out);
    check_answer(tc, &r, 9, 7, FCGI_REQUEST_COMPLETE);
    struct buf out = {0}, err = {0};
    stream_of(&r, FCGI_STDOUT, 9, &out);
    stream_of(&r, FCGI_STDERR, 9, &err);
    CHECK(buf_has(&out, "Status: 404 "));
    CHECK(buf_has(&out, "\"stdin_length\":4"));
    CHECK(buf_eq(&err, "oops!", 5));
    CHECK_EQ_U(count_records(&r, FCGI_STDERR, 9), 2);
    buf_free(&out);
    buf_free(&err);
    recs_free(&r);
    buf_free(&w.b);
    fx_close(tc, &f);
}

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

static void test_keep_conn(struct test_counts *tc)
{
    for (int keep = 0; keep < 2; keep++) {
        struct fx f;
        fx_init(&f);
        fx_open(&f);
        struct wire w;
        wire_init(&w);
        put_request(&w, 1, FCGI_RESPONDER, keep ? FCGI_KEEP_CONN : 0, "", "");
        CHECK_EQ_U(fx_send(&f, &w), w.b.len);
        struct recs r = parse_records(&f.out);
        check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
        CHECK_EQ_U(fcgi_conn_state(f.c), keep ? FCGI_CONN_OPEN : FCGI_CONN_CLOSING);
        CHECK_EQ_U(fcgi_conn_wants_input(f.c), keep);
        /* A normal close has no reason. */
        CHECK_EQ_U(strlen(fcgi_conn_close_reason(f.c)), 0);
        recs_free(&r);
        buf_free(&w.b);
        fx_close(tc, &f);
    }
}

/* A GET_VALUES_RESULT with exactly the pairs expected (in the order given). */
static void check_values(struct test_counts *tc, const struct rec *rec, const char *const *pairs, size_t count)
{
    CHECK_EQ_U(rec->type, FCGI_GET_VALUES_RESULT);
    CHECK_EQ_U(rec->id, 0);
    size_t pos = 0, seen = 0;
    while (pos < rec->len) {
        struct fcgi_nv nv;
        size_t used;
        if (!CHECK(fcgi_nv_decode(rec->content + pos, rec->len - pos, &nv, &used) == FCGI_DECODE_OK))
            return;
        bool expected = false;
        for (size_t i = 0; i < count; i++)
            if (nv.name_len == strlen(pairs[2 * i]) && memcmp(nv.name, pairs[2 * i], nv.name_len) == 0 &&
                nv.value_len == strlen(pairs[2 * i + 1]) && memcmp(nv.value, pairs[2 * i + 1], nv.value_len) == 0)
                expected = true;
        CHECK(expected);
        seen++;
        pos += used;
    }
    CHECK_EQ_U(seen, count);
}

static void test_get_values(struct test_counts *tc)
{
    const char *const all[] = {"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"};
    const char *const all_values[] = {"FCGI_MAX_CONNS", "1024", "FCGI_MAX_REQS", "4096", "FCGI_MPXS_CONNS", "1"};
    const char *const some[] = {"FCGI_MAX_REQS", "FCGI_NO_SUCH_VALUE", "fcgi_max_conns", "X"};
    const char *const some_values[] = {"FCGI_MAX_REQS", "4096"};
    struct {
        const char *const *names;
        size_t count;
        const char *const *expected;
        size_t expected_count;
    } cases[] = {
        {all, 3, all_values, 3},
        {some, 4, some_values, 1},
        {NULL, 0, NULL, 0},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct fx f;
        fx_init(&f);
        fx_open(&f);
        struct wire w;
        wire_init(&w);
        put_get_values(&w, cases[k].names, cases[k].count);
        fx_send(&f, &w);
        struct recs r = parse_records(&f.out);
        check_framing(tc, &r);
        CHECK_EQ_U(r.n, 1);
        if (r.n == 1)
            check_values(tc, &r.v[0], cases[k].expected, cases[k].expected_count);
        CHECK(!fx_closing(&f));
        recs_free(&r);
        buf_free(&w.b);
        fx_close(tc, &f);
    }
    /* --no-mpx is what FCGI_MPXS_CONNS reports. */
    struct fx f;
    fx_init(&f);
    f.limits.mpx = false;
    f.limits.max_conns = 7;
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    put_get_values(&w, all, 3);
    fx_send(&f, &w);
    struct recs r = parse_records(&f.out);
    const char *const no_mpx[] = {"FCGI_MAX_CONNS", "7", "FCGI_MAX_REQS", "4096", "FCGI_MPXS_CONNS", "0"};
    CHECK_EQ_U(r.n, 1);
    if (r.n == 1)
        check_values(tc, &r.v[0], no_mpx, 3);
    recs_free(&r);
    buf_free(&w.b);
    fx_close(tc, &f);
}

/* Unknown management types, and application types sent with the null id (§4.2). */
static void test_unknown_type(struct test_counts *tc)
{
    const uint8_t types[] = {200, 0, 12, 255, FCGI_BEGIN_REQUEST, FCGI_STDIN, FCGI_GET_VALUES_RESULT};
    for (size_t k = 0; k < sizeof(types); k++) {
        struct fx f;
        fx_init(&f);
        fx_open(&f);
        struct wire w;
        wire_init(&w);
        put_record(&w, types[k], 0, "abcdefgh", 8);
        fx_send(&f, &w);
        struct recs r = parse_records(&f.out);
        check_framing(tc, &r);
        CHECK_EQ_U(r.n, 1);
        if (r.n == 1) {
            const uint8_t expected[8] = {types[k], 0, 0, 0, 0, 0, 0, 0};
            CHECK_EQ_U(r.v[0].type, FCGI_UNKNOWN_TYPE);
            CHECK_EQ_U(r.v[0].id, 0);
            CHECK_EQ_U(r.v[0].len, 8);
            if (r.v[0].len == 8)
                CHECK_MEM(r.v[0].content, expected, 8);
        }
        CHECK(!fx_closing(&f));
        recs_free(&r);
        buf_free(&w.b);
        fx_close(tc, &f);
    }
}

static void test_unknown_role(struct test_counts *tc)
{
    const uint16_t roles[] = {0, 4, 0xFFFF};
    for (size_t k = 0; k < 3; k++) {
        struct fx f;
        fx_init(&f);
        fx_open(&f);
        struct wire w;
        wire_init(&w);
        put_request(&w, 3, roles[k], FCGI_KEEP_CONN, "", "ignored");
        CHECK_EQ_U(fx_send(&f, &w), w.b.len);
        struct recs r = parse_records(&f.out);
        check_answer(tc, &r, 3, 0, FCGI_UNKNOWN_ROLE);
        CHECK_EQ_U(r.n, 1);
        CHECK(!fx_closing(&f));
        CHECK_EQ_U(f.load.active_requests, 0);
        recs_free(&r);
        buf_free(&w.b);
        fx_close(tc, &f);
    }
    /* A role the server was told not to serve is unknown too. */
    struct fx f;
    fx_init(&f);
    f.limits.roles = ROLE_MASK_RESPONDER;
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    put_request(&w, 3, FCGI_FILTER, 0, "", "");
    fx_send(&f, &w);
    struct recs r = parse_records(&f.out);
    check_answer(tc, &r, 3, 0, FCGI_UNKNOWN_ROLE);
    CHECK_EQ_U(r.n, 1);
    CHECK(fx_closing(&f)); /* KEEP_CONN was clear */
    recs_free(&r);
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

static void test_inactive_ids_ignored(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    const uint8_t types[] = {FCGI_PARAMS, FCGI_STDIN, FCGI_DATA, FCGI_ABORT_REQUEST, FCGI_END_REQUEST,
                             FCGI_STDOUT, FCGI_GET_VALUES, 200};
    for (size_t k = 0; k < sizeof(types); k++) {
        put_record(&w, types[k], 7, "abc", 3);
        put_end(&w, types[k], 7);
    }
    CHECK_EQ_U(fx_send(&f, &w), w.b.len);
    CHECK_EQ_U(f.out.len, 0);
    CHECK(!fx_closing(&f));
    CHECK_EQ_U(f.load.active_requests, 0);
    buf_free(&w.b);
    fx_close(tc, &f);
}

static void test_second_begin_ignored(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    put_begin(&w, 5, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct buf params = {0};
    nv_put_text(&params, "QUERY_STRING", "status=202");
    put_stream(&w, FCGI_PARAMS, 5, params.data, params.len);
    put_begin(&w, 5, FCGI_FILTER, 0); /* the web server's bug; the first request keeps the id */
    put_end(&w, FCGI_PARAMS, 5);
    put_begin(&w, 5, FCGI_AUTHORIZER, 0);
    put_end(&w, FCGI_STDIN, 5);
    fx_send(&f, &w);
    struct recs r = parse_records(&f.out);
    check_answer(tc, &r, 5, 0, FCGI_REQUEST_COMPLETE);
    struct buf out = {0};
    stream_of(&r, FCGI_STDOUT, 5, &out);
    CHECK(buf_has(&out, "Status: 202 "));
    CHECK(buf_has(&out, "\"role\":\"responder\""));
    CHECK(!fx_closing(&f)); /* the first BEGIN's KEEP_CONN holds */
    buf_free(&out);
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

static void test_overloaded_conn(struct test_counts *tc)
{
    for (int keep = 0; keep < 2; keep++) {
        struct fx f;
        fx_init(&f);
        f.c = fcgi_conn_new(&f.limits, &f.load, 1, true, f.now);
        struct wire w;
        wire_init(&w);
        put_request(&w, 1, FCGI_RESPONDER, keep ? FCGI_KEEP_CONN : 0, "", "");
        fx_send(&f, &w);
        struct recs r = parse_records(&f.out);
        check_answer(tc, &r, 1, 0, FCGI_OVERLOADED);
        CHECK_EQ_U(r.n, 1);
        /* A connection past max_conns frees its slot whatever KEEP_CONN says. */
        CHECK(fx_closing(&f));
        CHECK_EQ_U(f.load.active_requests, 0);
        recs_free(&r);
        buf_free(&w.b);
        fx_close(tc, &f);
    }
}

static void test_multiplexing(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    struct buf p1 = {0}, p2 = {0};
    nv_put_text(&p1, "QUERY_STRING", "status=201");
    nv_put_text(&p2, "QUERY_STRING", "status=404&app_status=2");
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_begin(&w, 300, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_stream(&w, FCGI_PARAMS, 300, p2.data, p2.len);
    put_stream(&w, FCGI_PARAMS, 1, p1.data, p1.len);
    put_end(&w, FCGI_PARAMS, 1);
    put_end(&w, FCGI_PARAMS, 300);
    put_stream(&w, FCGI_STDIN, 1, "one", 3);
    put_stream(&w, FCGI_STDIN, 300, "three hundred", 13);
    put_end(&w, FCGI_STDIN, 300);
    put_end(&w, FCGI_STDIN, 1);
    fx_send(&f, &w);
    struct recs r = parse_records(&f.out);
    check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &r, 300, 2, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_id(&r, 1) + count_id(&r, 300), r.n);
    struct buf o1 = {0}, o2 = {0};
    stream_of(&r, FCGI_STDOUT, 1, &o1);
    stream_of(&r, FCGI_STDOUT, 300, &o2);
    CHECK(buf_has(&o1, "Status: 201 ") && buf_has(&o1, "\"stdin_length\":3"));
    CHECK(buf_has(&o2, "Status: 404 ") && buf_has(&o2, "\"stdin_length\":13"));
    /* Request 300 finished first, so it was answered first. */
    struct fcgi_end_request end;
    CHECK(end_of(&r, 300, &end) && r.v[r.n - 1].id == 1);
    CHECK(!fx_closing(&f));
    buf_free(&o1);
    buf_free(&o2);
    buf_free(&p1);
    buf_free(&p2);
    recs_free(&r);
    buf_free(&w.b);
    fx_close(tc, &f);
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

/* A mixed conversation, used where the way bytes arrive must not matter. */
static void put_conversation(struct wire *w)
{
    const char *const names[] = {"FCGI_MPXS_CONNS", "FCGI_MAX_REQS"};
    put_get_values(w, names, 2);
    put_begin(w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_begin(w, 2, FCGI_FILTER, FCGI_KEEP_CONN);
    struct buf p = {0};
    nv_put_text(&p, "QUERY_STRING", "status=299&err=e");
    nv_put(&p, "LONG", 4, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                           "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 128);
    put_stream_pieces(w, FCGI_PARAMS, 1, p.data, p.len, 5);
    put_end(w, FCGI_PARAMS, 1);
    put_end(w, FCGI_PARAMS, 2);
    put_record(w, 200, 0, NULL, 0);
    put_stream(w, FCGI_STDIN, 1, "some input", 10);
    put_stream(w, FCGI_DATA, 2, "filter data", 11);
    put_end(w, FCGI_STDIN, 2);
    put_end(w, FCGI_DATA, 2);
    put_end(w, FCGI_STDIN, 1);
    put_request(w, 3, FCGI_AUTHORIZER, FCGI_KEEP_CONN, "", "");
    put_request(w, 4, FCGI_RESPONDER, 0, "", "");
    buf_free(&p);
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

/* The probe's report has the pair as ["NAME","VALUE"] (ASCII here, so verbatim). */
static bool report_has_pair(const struct buf *out, const uint8_t *name, size_t name_len, const uint8_t *value,
                            size_t value_len)
{
    struct buf want = {0};
    buf_puts(&want, "[\"");
    buf_put(&want, name, name_len);
    buf_puts(&want, "\",\"");
    buf_put(&want, value, value_len);
    buf_puts(&want, "\"]");
    bool found = find_bytes(out->data, out->len, want.data, want.len) >= 0;
    buf_free(&want);
    return found;
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

/* Input that must close the connection: a reason is given, nothing crashes, and
 * the request in flight gets no END_REQUEST (the connection is failing). */
static void check_fails(struct test_counts *tc, const struct wire *w, const char *reason_part)
{
    struct fx f;
    fx_init(&f);
    f.limits.max_params_bytes = 4096;
    fx_open(&f);
    fx_send(&f, w);
    CHECK(fx_closing(&f));
    CHECK(!fcgi_conn_wants_input(f.c));
    const char *reason = fcgi_conn_close_reason(f.c);
    if (!CHECK(strstr(reason, reason_part) != NULL))
        printf("    reason \"%s\" lacks \"%s\"\n", reason, reason_part);
    struct recs r = parse_records(&f.out);
    check_framing(tc, &r);
    CHECK_EQ_U(count_records(&r, FCGI_END_REQUEST, -1), 0);
    recs_free(&r);
    /* Once closing, it takes nothing more. */
    uint8_t more[8] = {1, FCGI_GET_VALUES, 0, 0, 0, 0, 0, 0};
    CHECK_EQ_U(fcgi_conn_feed(f.c, more, sizeof(more), f.now), 0);
    fx_close(tc, &f);
}

static void test_protocol_errors(struct test_counts *tc)
{
    struct wire w;
    struct buf p = {0};
    nv_put_text(&p, "QUERY_STRING", "");

    /* PARAMS over max_params_bytes (4096 here). */
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    uint8_t big[3000];
    memset(big, 'p', sizeof(big));
    struct buf huge = {0};
    nv_put(&huge, "H", 1, big, sizeof(big));
    nv_put(&huge, "I", 1, big, sizeof(big));
    put_stream(&w, FCGI_PARAMS, 1, huge.data, huge.len);
    check_fails(tc, &w, "PARAMS over the limit");
    buf_free(&huge);

    /* Versions other than 1, first record and mid-request. */
    const uint8_t versions[] = {0, 2, 255};
    for (size_t k = 0; k < sizeof(versions); k++) {
        wire_reset(&w);
        put_record_v(&w, versions[k], FCGI_GET_VALUES, 0, NULL, 0);
        check_fails(tc, &w, "version");
        wire_reset(&w);
        put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
        put_stream(&w, FCGI_PARAMS, 1, p.data, p.len);
        put_record_v(&w, versions[k], FCGI_PARAMS, 1, NULL, 0);
        put_end(&w, FCGI_STDIN, 1);
        check_fails(tc, &w, "version");
    }

    /* BEGIN_REQUEST bodies of the wrong size. */
    const size_t sizes[] = {0, 7, 9, 16};
    const uint8_t body[16] = {0, 1, 1};
    for (size_t k = 0; k < 4; k++) {
        wire_reset(&w);
        put_record(&w, FCGI_BEGIN_REQUEST, 1, body, sizes[k]);
        check_fails(tc, &w, "BEGIN_REQUEST");
    }

    /* STDIN (or DATA to a Filter) before PARAMS ended. */
    wire_reset(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_stream(&w, FCGI_PARAMS, 1, p.data, p.len);
    put_stream(&w, FCGI_STDIN, 1, "early", 5);
    check_fails(tc, &w, "STDIN before PARAMS");
    wire_reset(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_end(&w, FCGI_STDIN, 1);
    check_fails(tc, &w, "STDIN before PARAMS");
    wire_reset(&w);
    put_begin(&w, 1, FCGI_FILTER, FCGI_KEEP_CONN);
    put_stream(&w, FCGI_DATA, 1, "early", 5);
    check_fails(tc, &w, "DATA before PARAMS");

    /* Malformed PARAMS: lengths past the end, cut-short 4-byte lengths, 31-bit lengths. */
    const struct {
        uint8_t bytes[12];
        size_t len;
    } bad[] = {
        {{5, 1, 'a'}, 3},
        {{1, 0}, 2},
        {{0x80, 0, 0}, 3},
        {{1, 0x80, 0}, 3},
        {{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 'x'}, 9},
        {{1, 0xFF, 0xFF, 0xFF, 0xFF, 'x', 'y'}, 7},
        {{0x80, 0, 0, 1, 0x80, 0, 0, 1, 'n'}, 9},
        {{1, 1, 'n', 'v', 3}, 5},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        wire_reset(&w);
        put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
        put_record(&w, FCGI_PARAMS, 1, bad[k].bytes, bad[k].len);
        put_end(&w, FCGI_PARAMS, 1);
        put_end(&w, FCGI_STDIN, 1);
        check_fails(tc, &w, "malformed PARAMS");
    }
    buf_free(&p);
    buf_free(&w.b);
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

/* An event loop's view of a connection whose peer reads and writes promptly:
 * each turn reads what the connection wants of `w` (all of it that is left, as
 * if it were waiting in the socket), then writes at most `write_size` bytes. */
static void fx_event_loop(struct fx *f, const struct wire *w, size_t write_size)
{
    size_t fed = 0;
    for (int turn = 0; turn < 10000000; turn++) {
        if (fed < w->b.len && fcgi_conn_wants_input(f->c))
            fed += fcgi_conn_feed(f->c, w->b.data + fed, w->b.len - fed, f->now);
        size_t len;
        const uint8_t *p = fcgi_conn_output(f->c, &len);
        if (len == 0)
            return;
        size_t n = len < write_size ? len : write_size;
        buf_put(&f->out, p, n);
        fcgi_conn_output_done(f->c, n, f->now);
    }
}

/* Position of the first record of `type` for `id`, or r->n. */
static size_t first_of(const struct recs *r, uint8_t type, uint16_t id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].type == type && r->v[i].id == id)
            return i;
    return r->n;
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

/* Requests still in flight when the connection is freed give their count back. */
static void test_free_with_requests(struct test_counts *tc)
{
    struct fx f;
    fx_init(&f);
    fx_open(&f);
    struct wire w;
    wire_init(&w);
    for (uint16_t id = 1; id <= 40; id++) {
        put_begin(&w, id, (uint16_t)(1 + id % 3), FCGI_KEEP_CONN);
        if (id % 2)
            put_end(&w, FCGI_PARAMS, id);
        if (id % 4 == 1)
            put_stream(&w, FCGI_DATA, id, "d", 1);
    }
    fx_send(&f, &w);
    /* All but the 7 Authorizers (id % 6 == 1) whose PARAMS ended: those have answered. */
    CHECK_EQ_U(f.load.active_requests, 33);
    buf_free(&w.b);
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

static void test_authorizer(struct test_counts *tc)
{
    const char *tokens[] = {"Bearer fcgispec", "Bearer wrong", NULL};
    for (int k = 0; k < 3; k++) {
        struct fx f;
        fx_init(&f);
        fx_open(&f);
        struct wire w;
        wire_init(&w);
        put_begin(&w, 1, FCGI_AUTHORIZER, FCGI_KEEP_CONN);
        struct buf p = {0};
        nv_put_text(&p, "REQUEST_METHOD", "GET");
        if (tokens[k])
            nv_put_text(&p, "HTTP_AUTHORIZATION", tokens[k]);
        put_stream(&w, FCGI_PARAMS, 1, p.data, p.len);
        put_end(&w, FCGI_PARAMS, 1);
        put_end(&w, FCGI_STDIN, 1);
        CHECK_EQ_U(fx_send(&f, &w), w.b.len);
        struct recs r = parse_records(&f.out);
        check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
        struct buf out = {0};
        stream_of(&r, FCGI_STDOUT, 1, &out);
        if (k == 0) {
            CHECK(buf_has(&out, "Status: 200 OK\r\n"));
            CHECK(buf_has(&out, "Variable-FCGISPEC_USER: probe\r\n"));
        } else {
            CHECK(buf_has(&out, "Status: 403 "));
            CHECK(!buf_has(&out, "Variable-"));
        }
        CHECK(!fx_closing(&f));
        buf_free(&out);
        recs_free(&r);
        buf_free(&p);
        buf_free(&w.b);
        fx_close(tc, &f);
    }
}

static void test_filter(struct test_counts *tc)
{
    /* DATA after STDIN, DATA before STDIN ended (held back), and a wrong FCGI_DATA_LENGTH. */
    for (int k = 0; k < 3; k++) {
        struct fx f;
        fx_init(&f);
        fx_open(&f);
        struct wire w;
        wire_init(&w);
        put_begin(&w, 1, FCGI_FILTER, FCGI_KEEP_CONN);
        struct buf p = {0};
        nv_put_text(&p, "FCGI_DATA_LENGTH", k == 2 ? "99" : "16");
        nv_put_text(&p, "FCGI_DATA_LAST_MOD", "0");
        put_stream(&w, FCGI_PARAMS, 1, p.data, p.len);
        put_end(&w, FCGI_PARAMS, 1);
        if (k == 1)
            put_stream_pieces(&w, FCGI_DATA, 1, "file to filter\r\n", 16, 3);
        put_stream(&w, FCGI_STDIN, 1, "stdin", 5);
        put_end(&w, FCGI_STDIN, 1);
        if (k != 1)
            put_stream_pieces(&w, FCGI_DATA, 1, "file to filter\r\n", 16, 5);
        put_end(&w, FCGI_DATA, 1);
        fx_send(&f, &w);
        struct recs r = parse_records(&f.out);
        check_answer(tc, &r, 1, k == 2 ? 1 : 0, FCGI_REQUEST_COMPLETE);
        struct buf out = {0}, body = {0}, err = {0};
        stream_of(&r, FCGI_STDOUT, 1, &out);
        stream_of(&r, FCGI_STDERR, 1, &err);
        body_of(&out, &body);
        CHECK(buf_has(&out, "X-Filter-Stdin-Length: 5\r\n"));
        if (k == 2) {
            CHECK(buf_has(&err, "FCGI_DATA_LENGTH is 99 but 16"));
        } else {
            CHECK(buf_eq(&body, "file to filter\r\n", 16));
            CHECK_EQ_U(err.len, 0);
        }
        buf_free(&out);
        buf_free(&body);
        buf_free(&err);
        recs_free(&r);
        buf_free(&p);
        buf_free(&w.b);
        fx_close(tc, &f);
    }
}

/* ---- fault modes: each one changes what the same input produces ------------------ */

static void fault_go_id_reuse(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_GO_ID_REUSE), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    CHECK_EQ_U(count_records(&rg, FCGI_END_REQUEST, 1), 2);
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    CHECK_EQ_U(count_records(&rb, FCGI_END_REQUEST, 1), 1);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    CHECK(strstr(bad.reason, "already in-flight") != NULL);
    recs_free(&rg), recs_free(&rb), buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_keep_conn_close(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_KEEP_CONN_CLOSE), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    CHECK_EQ_U(count_records(&rg, FCGI_END_REQUEST, -1), 2);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    CHECK_EQ_U(count_records(&rb, FCGI_END_REQUEST, -1), 1);
    recs_free(&rg), recs_free(&rb), buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_keep_conn_never_close(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, 0, "", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_KEEP_CONN_NEVER_CLOSE), &w, &bad);
    CHECK_EQ_U(good.state, FCGI_CONN_CLOSING);
    CHECK_EQ_U(bad.state, FCGI_CONN_OPEN);
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_get_values_stream(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    const char *const names[] = {"FCGI_MPXS_CONNS"};
    put_get_values(&w, names, 1);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_GET_VALUES_STREAM), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    const char *const one[] = {"FCGI_MPXS_CONNS", "1"};
    const char *const all[] = {"FCGI_MAX_CONNS", "1024", "FCGI_MAX_REQS", "4096", "FCGI_MPXS_CONNS", "1"};
    CHECK_EQ_U(rg.n, 1);
    if (rg.n == 1)
        check_values(tc, &rg.v[0], one, 1);
    CHECK_EQ_U(rb.n, 2);
    if (rb.n == 2) {
        check_values(tc, &rb.v[0], all, 3);
        CHECK_EQ_U(rb.v[1].type, FCGI_GET_VALUES_RESULT);
        CHECK_EQ_U(rb.v[1].len, 0);
    }
    recs_free(&rg), recs_free(&rb), buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_get_values_ignored(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    const char *const names[] = {"FCGI_MAX_REQS"};
    put_get_values(&w, names, 1);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_GET_VALUES_IGNORED), &w, &bad);
    CHECK(good.out.len > 0);
    CHECK_EQ_U(bad.out.len, 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_OPEN);
    buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_unknown_type_ignored(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_record(&w, 200, 0, NULL, 0);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_UNKNOWN_TYPE_IGNORED), &w, &bad);
    CHECK_EQ_U(good.out.len, 16);
    CHECK_EQ_U(bad.out.len, 0);
    buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_unknown_role_close(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, 7, FCGI_KEEP_CONN, "", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_UNKNOWN_ROLE_CLOSE), &w, &bad);
    struct recs rg = parse_records(&good.out);
    check_answer(tc, &rg, 1, 0, FCGI_UNKNOWN_ROLE);
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    CHECK_EQ_U(bad.out.len, 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    CHECK(strstr(bad.reason, "unknown role 7") != NULL);
    recs_free(&rg), buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_padding_not_skipped(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    w.pad_len = 8;
    w.pad_byte = 0;
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_PADDING_NOT_SKIPPED), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_records(&rb, FCGI_END_REQUEST, -1), 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    CHECK(strstr(bad.reason, "version 0") != NULL);
    recs_free(&rg), recs_free(&rb), buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_nv_long_length_1byte(struct test_counts *tc)
{
    uint8_t value[300];
    memset(value, 'z', sizeof(value));
    struct buf p = {0};
    nv_put(&p, "BIG", 3, value, sizeof(value)); /* 300 = 0x12C: read as 0x2C */
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_stream(&w, FCGI_PARAMS, 1, p.data, p.len);
    put_end(&w, FCGI_PARAMS, 1);
    put_end(&w, FCGI_STDIN, 1);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_NV_LONG_LENGTH_1BYTE), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    struct buf og = {0}, ob = {0};
    stream_of(&rg, FCGI_STDOUT, 1, &og);
    stream_of(&rb, FCGI_STDOUT, 1, &ob);
    CHECK(report_has_pair(&og, (const uint8_t *)"BIG", 3, value, sizeof(value)));
    CHECK(!report_has_pair(&ob, (const uint8_t *)"BIG", 3, value, sizeof(value)));
    buf_free(&og), buf_free(&ob), buf_free(&p);
    recs_free(&rg), recs_free(&rb), buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_params_split_pair_lost(struct test_counts *tc)
{
    struct buf p = {0};
    nv_put_text(&p, "A", "1");
    nv_put_text(&p, "QUERY_STRING", "status=201");
    nv_put_text(&p, "B", "2");
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_record(&w, FCGI_PARAMS, 1, p.data, 9); /* cuts inside "QUERY_STRING" */
    put_record(&w, FCGI_PARAMS, 1, p.data + 9, p.len - 9);
    put_end(&w, FCGI_PARAMS, 1);
    put_end(&w, FCGI_STDIN, 1);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_PARAMS_SPLIT_PAIR_LOST), &w, &bad);
    CHECK(buf_has(&good.out, "Status: 201 "));
    CHECK(!buf_has(&bad.out, "Status: 201 "));
    buf_free(&p), buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_stdin_first_record_only(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_end(&w, FCGI_PARAMS, 1);
    put_stream_pieces(&w, FCGI_STDIN, 1, "abcdef", 6, 3);
    put_end(&w, FCGI_STDIN, 1);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_STDIN_FIRST_RECORD_ONLY), &w, &bad);
    CHECK(buf_has(&good.out, "\"stdin_length\":6"));
    CHECK(buf_has(&bad.out, "\"stdin_length\":3"));
    buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_abort_ignored(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_end(&w, FCGI_PARAMS, 1);
    put_stream(&w, FCGI_STDIN, 1, "abc", 3);
    put_record(&w, FCGI_ABORT_REQUEST, 1, NULL, 0);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_ABORT_IGNORED), &w, &bad);
    struct recs rg = parse_records(&good.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(bad.out.len, 0); /* still waiting for the rest of STDIN */
    recs_free(&rg), buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_end_request_twice(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_END_REQUEST_TWICE), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    CHECK_EQ_U(count_records(&rg, FCGI_END_REQUEST, 1), 1);
    CHECK_EQ_U(count_records(&rb, FCGI_END_REQUEST, 1), 2);
    recs_free(&rg), recs_free(&rb), buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

/* Empty STDOUT records of request 1 (the stream terminator and any stray ones). */
static size_t empty_stdouts(const struct recs *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += r->v[i].type == FCGI_STDOUT && r->v[i].len == 0;
    return n;
}

static void fault_no_empty_stdout(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_NO_EMPTY_STDOUT), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    CHECK_EQ_U(empty_stdouts(&rg), 1);
    CHECK_EQ_U(empty_stdouts(&rb), 0);
    CHECK_EQ_U(count_records(&rb, FCGI_END_REQUEST, 1), 1);
    recs_free(&rg), recs_free(&rb), buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_stdout_after_empty(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "out=100000", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_STDOUT_AFTER_EMPTY), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(empty_stdouts(&rb), 2);
    /* The stray empty record comes before data. */
    bool data_after_empty = false, seen_empty = false;
    for (size_t i = 0; i < rb.n; i++) {
        if (rb.v[i].type != FCGI_STDOUT)
            continue;
        if (rb.v[i].len == 0)
            seen_empty = true;
        else if (seen_empty)
            data_after_empty = true;
    }
    CHECK(data_after_empty);
    recs_free(&rg), recs_free(&rb), buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_mgmt_mid_request_close(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_end(&w, FCGI_PARAMS, 1);
    put_get_values(&w, NULL, 0);
    put_end(&w, FCGI_STDIN, 1);
    put_get_values(&w, NULL, 0); /* between requests: fine even with the fault */
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_MGMT_MID_REQUEST_CLOSE), &w, &bad);
    struct recs rg = parse_records(&good.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_records(&rg, FCGI_GET_VALUES_RESULT, 0), 2);
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    CHECK_EQ_U(bad.out.len, 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    recs_free(&rg), buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_reply_id_zero(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_REPLY_ID_ZERO), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    CHECK_EQ_U(count_id(&rg, 1), rg.n);
    CHECK(rb.n > 0);
    CHECK_EQ_U(count_id(&rb, 0), rb.n);
    CHECK_EQ_U(count_records(&rb, FCGI_END_REQUEST, 0), 1);
    recs_free(&rg), recs_free(&rb), buf_free(&good.out), buf_free(&bad.out), buf_free(&w.b);
}

/* ---- helpers for the fault tests below -------------------------------------------- */

/* BEGIN, the given (encoded) PARAMS, end of PARAMS, STDIN, end of STDIN. */
static void put_request_with(struct wire *w, uint16_t id, uint16_t role, uint8_t flags, const struct buf *params,
                             const void *stdin_data, size_t stdin_len)
{
    put_begin(w, id, role, flags);
    put_stream(w, FCGI_PARAMS, id, params->data, params->len);
    put_end(w, FCGI_PARAMS, id);
    put_stream(w, FCGI_STDIN, id, stdin_data, stdin_len);
    put_end(w, FCGI_STDIN, id);
}

/* A fresh connection with the default limits and the given faults. */
static void fx_open_faults(struct fx *f, fault_set faults)
{
    fx_init(f);
    f->limits.faults = faults;
    fx_open(f);
}

static bool rec_same(const struct rec *a, const struct rec *b)
{
    return a->type == b->type && a->id == b->id && a->len == b->len &&
           (a->len == 0 || memcmp(a->content, b->content, a->len) == 0);
}

/* Index of the first record of `type` (any id), or r->n. */
static size_t first_type(const struct recs *r, uint8_t type)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].type == type)
            return i;
    return r->n;
}

/* The CGI output of request `id` on STDOUT, and its body. */
static void stdout_and_body(const struct recs *r, uint16_t id, struct buf *out, struct buf *body)
{
    stream_of(r, FCGI_STDOUT, id, out);
    if (body)
        body_of(out, body);
}

/* Records of `type` (any id) in the output. */
static size_t count_records_of(const struct buf *b, uint8_t type)
{
    struct recs r = parse_records(b);
    size_t n = count_records(&r, type, -1);
    recs_free(&r);
    return n;
}

static void runs_free(struct run *a, struct run *b)
{
    buf_free(&a->out);
    buf_free(&b->out);
}

/* ---- the forty newer fault modes ---------------------------------------------------- */

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

static void fault_misframe_on_reuse(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "err=e", "");
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "out=70000&err=e", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_MISFRAME_ON_REUSE), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rg, 2, 0, FCGI_REQUEST_COMPLETE);
    /* A web server reading records sees request 1 whole, then a header of version 0. */
    CHECK(rb.trailing > 0);
    CHECK_EQ_U(count_records(&rb, FCGI_END_REQUEST, 1), 1);
    CHECK_EQ_U(count_records(&rb, FCGI_END_REQUEST, 2), 0);
    /* Apart from one 0 byte after every STDOUT record of the second request, the
     * records are well framed and say what they say without the fault (record
     * boundaries may move, as the stray bytes take room in the output queue). */
    struct buf clean = {0};
    size_t strays[2];
    CHECK(parse_misframed(&bad.out, 2, &clean, strays));
    struct recs rc = parse_records(&clean);
    check_answer(tc, &rc, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rc, 2, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(strays[1], count_records(&rc, FCGI_STDOUT, 2) - 1);
    CHECK(strays[1] >= 2);
    if (!CHECK(strays[0] == 1))
        printf("    misframe-on-reuse: no stray byte after the empty STDOUT record that ends the stream\n");
    CHECK_EQ_U(bad.out.len, clean.len + strays[0] + strays[1]);
    const uint8_t types[] = {FCGI_STDOUT, FCGI_STDERR};
    for (uint16_t id = 1; id <= 2; id++)
        for (int s = 0; s < 2; s++) {
            struct buf sg = {0}, sc = {0};
            stream_of(&rg, types[s], id, &sg);
            stream_of(&rc, types[s], id, &sc);
            CHECK(sg.len > 0 && buf_eq(&sc, sg.data, sg.len));
            buf_free(&sg), buf_free(&sc);
        }
    recs_free(&rc), buf_free(&clean);
    /* The first request of a connection is framed correctly. */
    wire_reset(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "out=70000", "");
    runs_free(&good, &bad);
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_MISFRAME_ON_REUSE), &w, &bad);
    CHECK(good.out.len > 70000);
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_reject_max_content_padding(struct test_counts *tc)
{
    uint8_t *body = xrealloc(NULL, FCGI_MAX_CONTENT);
    memset(body, 's', FCGI_MAX_CONTENT);
    struct buf p = {0};
    nv_put_text(&p, "QUERY_STRING", "");
    /* 65535 bytes of STDIN with 8 bytes of padding: legal, 65543 in all. */
    struct wire w;
    wire_init(&w);
    w.pad_len = 8;
    put_request_with(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, &p, body, FCGI_MAX_CONTENT);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_REJECT_MAX_CONTENT_PADDING), &w, &bad);
    struct recs rg = parse_records(&good.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK(buf_has(&good.out, "\"stdin_length\":65535"));
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    CHECK_EQ_U(count_end_requests(&bad.out), 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    CHECK(strstr(bad.reason, "65535") != NULL);
    CHECK(!bad.fatal);
    /* Content plus padding of exactly 65535 is fine even with the fault. */
    wire_reset(&w);
    w.pad_len = 7;
    put_request_with(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, &p, body, FCGI_MAX_CONTENT - 7);
    runs_free(&good, &bad);
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_REJECT_MAX_CONTENT_PADDING), &w, &bad);
    CHECK(buf_has(&good.out, "\"stdin_length\":65528"));
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    CHECK_EQ_U(bad.state, FCGI_CONN_OPEN);
    free(body);
    buf_free(&p);
    recs_free(&rg), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_unaligned_output(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "err=abc", "");
    const char *const names[] = {"FCGI_MPXS_CONNS"};
    put_get_values(&w, names, 1);
    put_record(&w, 200, 0, NULL, 0);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_UNALIGNED_OUTPUT), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(rb.trailing, 0);
    CHECK_EQ_U(rb.n, rg.n);
    size_t padded = 0, unpadded_size = 0;
    for (size_t i = 0; i < rg.n; i++) {
        padded += rg.v[i].padding > 0;
        unpadded_size += FCGI_HEADER_LEN + rg.v[i].len;
        if (i < rb.n) {
            CHECK(rec_same(&rb.v[i], &rg.v[i]));
            CHECK_EQ_U(rb.v[i].padding, 0);
        }
    }
    CHECK(padded >= 3); /* STDOUT data, STDERR data, GET_VALUES_RESULT */
    CHECK_EQ_U(bad.out.len, unpadded_size);
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_foreign_id_stdin_accepted(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_end(&w, FCGI_PARAMS, 1);
    put_stream(&w, FCGI_STDIN, 7, "xyz", 3); /* id 7 is not active */
    put_stream(&w, FCGI_STDIN, 1, "ab", 2);
    put_end(&w, FCGI_STDIN, 1);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_FOREIGN_ID_STDIN_ACCEPTED), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK(buf_has(&good.out, "\"stdin_length\":2"));
    CHECK(buf_has(&bad.out, "\"stdin_length\":5"));
    CHECK_EQ_U(count_id(&rb, 7), 0);
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_late_record_close(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    put_end(&w, FCGI_STDIN, 1); /* a second empty STDIN: id 1 is inactive now */
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_LATE_RECORD_CLOSE), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rg, 2, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_id(&rb, 2), 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    CHECK(strstr(bad.reason, "inactive id 1") != NULL);
    /* Records for active ids are fine with the fault. */
    wire_reset(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    struct run good2, bad2;
    run_wire(tc, 0, &w, &good2);
    run_wire(tc, with(FAULT_LATE_RECORD_CLOSE), &w, &bad2);
    CHECK(buf_eq(&bad2.out, good2.out.data, good2.out.len));
    CHECK_EQ_U(bad2.state, FCGI_CONN_OPEN);
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), runs_free(&good2, &bad2), buf_free(&w.b);
}

static void fault_id_high_byte_dropped(struct test_counts *tc)
{
    /* 65535 becomes 255. */
    struct wire w;
    wire_init(&w);
    put_request(&w, 65535, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_ID_HIGH_BYTE_DROPPED), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 65535, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_id(&rg, 65535), rg.n);
    check_answer(tc, &rb, 255, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_id(&rb, 255), rb.n);
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad);
    /* 256 becomes 0, the management id: each record is an unknown management type. */
    wire_reset(&w);
    put_request(&w, 256, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_ID_HIGH_BYTE_DROPPED), &w, &bad);
    rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 256, 0, FCGI_REQUEST_COMPLETE);
    const uint8_t types[] = {FCGI_BEGIN_REQUEST, FCGI_PARAMS, FCGI_PARAMS, FCGI_STDIN};
    CHECK_EQ_U(rb.n, sizeof(types));
    for (size_t i = 0; i < rb.n && i < sizeof(types); i++) {
        CHECK_EQ_U(rb.v[i].type, FCGI_UNKNOWN_TYPE);
        CHECK_EQ_U(rb.v[i].id, 0);
        CHECK(rb.v[i].len == 8 && rb.v[i].content[0] == types[i]);
    }
    CHECK_EQ_U(bad.state, FCGI_CONN_OPEN);
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

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

static void fault_begin_id_zero_served(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    const char *const names[] = {"FCGI_MPXS_CONNS"};
    put_get_values(&w, names, 1);
    put_request(&w, 0, FCGI_RESPONDER, FCGI_KEEP_CONN, "status=201", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_BEGIN_ID_ZERO_SERVED), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    /* Without the fault: BEGIN, PARAMS, end of PARAMS and end of STDIN are unknown
     * management types. */
    CHECK_EQ_U(count_records(&rg, FCGI_UNKNOWN_TYPE, 0), 4);
    CHECK_EQ_U(count_records(&rg, FCGI_END_REQUEST, -1), 0);
    CHECK_EQ_U(count_records(&rg, FCGI_GET_VALUES_RESULT, 0), 1);
    /* With it: served, and answered on id 0. */
    check_answer(tc, &rb, 0, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_records(&rb, FCGI_UNKNOWN_TYPE, -1), 0);
    CHECK_EQ_U(count_records(&rb, FCGI_GET_VALUES_RESULT, 0), 1);
    struct buf out = {0};
    stream_of(&rb, FCGI_STDOUT, 0, &out);
    CHECK(buf_has(&out, "Status: 201 "));
    CHECK_EQ_U(bad.state, FCGI_CONN_OPEN);
    buf_free(&out);
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

/* One input for exit-on-malformed: without the fault it is never fatal (and the
 * connection closes only if `closes` says so); with it the connection closes,
 * fatal, without answering the request. */
static void check_exit_on_malformed(struct test_counts *tc, const struct wire *w, bool closes, const char *what)
{
    unsigned long failed = tc->failed;
    struct run good, bad;
    run_wire(tc, 0, w, &good);
    run_wire(tc, with(FAULT_EXIT_ON_MALFORMED), w, &bad);
    CHECK(!good.fatal);
    CHECK_EQ_U(good.state, closes ? FCGI_CONN_CLOSING : FCGI_CONN_OPEN);
    if (!closes)
        CHECK_EQ_U(count_end_requests(&good.out), 1);
    CHECK(bad.fatal);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    CHECK_EQ_U(count_end_requests(&bad.out), 0);
    CHECK(bad.reason[0] != '\0');
    if (tc->failed != failed)
        printf("    exit-on-malformed: %s\n", what);
    runs_free(&good, &bad);
}

/* abort-on-malformed shares exit-on-malformed's fatal flag; the server aborts
 * instead of exiting (tested at the process level). */
static void fault_abort_on_malformed(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_record_v(&w, 2, FCGI_GET_VALUES, 0, NULL, 0);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_ABORT_ON_MALFORMED), &w, &bad);
    CHECK(!good.fatal);
    CHECK(bad.fatal);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    runs_free(&good, &bad);
    buf_free(&w.b);
}

static void fault_exit_on_malformed(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    struct buf p = {0};
    nv_put_text(&p, "QUERY_STRING", "");

    put_record_v(&w, 2, FCGI_GET_VALUES, 0, NULL, 0);
    check_exit_on_malformed(tc, &w, true, "version 2, first record");
    wire_reset(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_stream(&w, FCGI_PARAMS, 1, p.data, p.len);
    put_record_v(&w, 2, FCGI_PARAMS, 1, NULL, 0);
    put_end(&w, FCGI_STDIN, 1);
    check_exit_on_malformed(tc, &w, true, "version 2, mid-request");

    wire_reset(&w);
    const uint8_t body[8] = {0, FCGI_RESPONDER, FCGI_KEEP_CONN};
    put_record(&w, FCGI_BEGIN_REQUEST, 1, body, 7);
    check_exit_on_malformed(tc, &w, true, "7-byte BEGIN_REQUEST body");

    wire_reset(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_record(&w, FCGI_PARAMS, 1, "\x05\x01" "a", 3);
    put_end(&w, FCGI_PARAMS, 1);
    put_end(&w, FCGI_STDIN, 1);
    check_exit_on_malformed(tc, &w, true, "PARAMS name-value lengths past the end");
    wire_reset(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_record(&w, FCGI_PARAMS, 1, "\x01\x80\x00", 3);
    put_end(&w, FCGI_PARAMS, 1);
    put_end(&w, FCGI_STDIN, 1);
    check_exit_on_malformed(tc, &w, true, "PARAMS 4-byte length cut short");
    wire_reset(&w);
    put_record(&w, FCGI_GET_VALUES, 0, "\x05\x00" "ab", 4);
    check_exit_on_malformed(tc, &w, true, "GET_VALUES name-value lengths past the end");

    wire_reset(&w);
    put_begin(&w, 5, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_stream(&w, FCGI_PARAMS, 5, p.data, p.len);
    put_begin(&w, 5, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_end(&w, FCGI_PARAMS, 5);
    put_end(&w, FCGI_STDIN, 5);
    check_exit_on_malformed(tc, &w, false, "duplicate BEGIN_REQUEST");

    /* Record types only applications send, with the null id and for an active request. */
    const uint8_t to_web_server[] = {FCGI_END_REQUEST, FCGI_STDOUT, FCGI_STDERR, FCGI_GET_VALUES_RESULT,
                                     FCGI_UNKNOWN_TYPE};
    for (size_t k = 0; k < sizeof(to_web_server); k++) {
        char what[80];
        wire_reset(&w);
        put_record(&w, to_web_server[k], 0, "12345678", 8);
        put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
        snprintf(what, sizeof(what), "type %u record with request id 0", to_web_server[k]);
        check_exit_on_malformed(tc, &w, false, what);
        wire_reset(&w);
        put_begin(&w, 4, FCGI_RESPONDER, FCGI_KEEP_CONN);
        put_end(&w, FCGI_PARAMS, 4);
        put_record(&w, to_web_server[k], 4, "12345678", 8);
        put_end(&w, FCGI_STDIN, 4);
        snprintf(what, sizeof(what), "type %u record for an active request", to_web_server[k]);
        check_exit_on_malformed(tc, &w, false, what);
    }

    /* Odd but well-formed input is not fatal, and is answered as without the fault. */
    wire_reset(&w);
    uint8_t begin[8] = {0, FCGI_RESPONDER, FCGI_KEEP_CONN | 0xFE, 1, 2, 3, 4, 5};
    put_record(&w, FCGI_BEGIN_REQUEST, 9, begin, 8);
    put_end(&w, FCGI_PARAMS, 9);
    put_stream(&w, FCGI_DATA, 9, "not for a responder", 19);
    put_record(&w, 99, 9, "?", 1);
    put_end(&w, FCGI_STDIN, 9);
    put_end(&w, FCGI_PARAMS, 9);
    put_record(&w, FCGI_END_REQUEST, 12, "12345678", 8); /* inactive id: ignored */
    put_conversation(&w); /* its last request closes the connection */
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_EXIT_ON_MALFORMED), &w, &bad);
    CHECK(!good.fatal && !bad.fatal);
    CHECK_EQ_U(count_end_requests(&good.out), 5);
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    CHECK_EQ_U(bad.state, good.state);
    runs_free(&good, &bad);
    buf_free(&p);
    buf_free(&w.b);
}

static void fault_nv_long_form_short_rejected(struct test_counts *tc)
{
    /* SHORT=yes with the name length 5 written in the 4-byte form; then the same
     * with the value length in that form. Both are legal (spec §3.4). */
    static const uint8_t long_name[] = {0x80, 0, 0, 5, 3, 'S', 'H', 'O', 'R', 'T', 'y', 'e', 's'};
    static const uint8_t long_value[] = {5, 0x80, 0, 0, 3, 'S', 'H', 'O', 'R', 'T', 'y', 'e', 's'};
    const struct {
        const uint8_t *bytes;
        size_t len;
    } pairs[] = {{long_name, sizeof(long_name)}, {long_value, sizeof(long_value)}};
    for (size_t k = 0; k < 2; k++) {
        struct wire w;
        wire_init(&w);
        put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
        put_record(&w, FCGI_PARAMS, 1, pairs[k].bytes, pairs[k].len);
        put_end(&w, FCGI_PARAMS, 1);
        put_end(&w, FCGI_STDIN, 1);
        struct run good, bad;
        run_wire(tc, 0, &w, &good);
        run_wire(tc, with(FAULT_NV_LONG_FORM_SHORT_REJECTED), &w, &bad);
        struct recs rg = parse_records(&good.out);
        check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
        CHECK(report_has_pair(&good.out, (const uint8_t *)"SHORT", 5, (const uint8_t *)"yes", 3));
        CHECK_EQ_U(count_end_requests(&bad.out), 0);
        CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
        CHECK(strstr(bad.reason, "malformed PARAMS") != NULL);
        recs_free(&rg), runs_free(&good, &bad), buf_free(&w.b);
    }
    /* A length of 128 in the 4-byte form is fine with the fault. */
    uint8_t value[128];
    memset(value, 'v', sizeof(value));
    struct buf p = {0};
    nv_put(&p, "LONG", 4, value, sizeof(value));
    struct wire w;
    wire_init(&w);
    put_request_with(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, &p, "", 0);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_NV_LONG_FORM_SHORT_REJECTED), &w, &bad);
    CHECK(report_has_pair(&good.out, (const uint8_t *)"LONG", 4, value, sizeof(value)));
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    CHECK_EQ_U(bad.state, FCGI_CONN_OPEN);
    buf_free(&p), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_params_8k_buffer(struct test_counts *tc)
{
    /* A PARAMS stream of exactly 8192 bytes, then of 8193, in 1000-byte records. */
    for (size_t extra = 0; extra < 2; extra++) {
        size_t value_len = 8192 - 1 - 1 - 4 + extra;
        uint8_t *value = xrealloc(NULL, value_len);
        memset(value, 'p', value_len);
        struct buf p = {0};
        nv_put(&p, "P", 1, value, value_len);
        CHECK_EQ_U(p.len, 8192 + extra);
        struct wire w;
        wire_init(&w);
        put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
        put_stream_pieces(&w, FCGI_PARAMS, 1, p.data, p.len, 1000);
        put_end(&w, FCGI_PARAMS, 1);
        put_end(&w, FCGI_STDIN, 1);
        struct run good, bad;
        run_wire(tc, 0, &w, &good);
        run_wire(tc, with(FAULT_PARAMS_8K_BUFFER), &w, &bad);
        struct recs rg = parse_records(&good.out);
        check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
        CHECK(report_has_pair(&good.out, (const uint8_t *)"P", 1, value, value_len));
        if (extra == 0) {
            CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
            CHECK_EQ_U(bad.state, FCGI_CONN_OPEN);
        } else {
            CHECK_EQ_U(count_end_requests(&bad.out), 0);
            CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
            CHECK(strstr(bad.reason, "8 KiB") != NULL);
        }
        free(value);
        recs_free(&rg), runs_free(&good, &bad), buf_free(&p), buf_free(&w.b);
    }
}

static void fault_params_cut_at_nul(struct test_counts *tc)
{
    struct buf p = {0};
    nv_put(&p, "A\0B", 3, "x\0y", 3);
    nv_put(&p, "C", 1, "\0z", 2);
    struct wire w;
    wire_init(&w);
    put_request_with(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, &p, "", 0);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_PARAMS_CUT_AT_NUL), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
    /* The report writes a NUL byte as \u0000. */
    CHECK(buf_has(&good.out, "[\"A\\u0000B\",\"x\\u0000y\"]"));
    CHECK(buf_has(&good.out, "[\"C\",\"\\u0000z\"]"));
    CHECK(buf_has(&bad.out, "[\"A\",\"x\"]"));
    CHECK(buf_has(&bad.out, "[\"C\",\"\"]"));
    CHECK(!buf_has(&bad.out, "\\u0000"));
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&p), buf_free(&w.b);
}

static void fault_get_values_close(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    const char *const names[] = {"FCGI_MAX_REQS"};
    put_get_values(&w, names, 1);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_GET_VALUES_CLOSE), &w, &bad);
    CHECK_EQ_U(count_records_of(&good.out, FCGI_GET_VALUES_RESULT), 1);
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    runs_free(&good, &bad);
    /* Mid-request: answered at once, and the connection closes once the request
     * has ended, KEEP_CONN notwithstanding. */
    wire_reset(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_end(&w, FCGI_PARAMS, 1);
    put_get_values(&w, names, 1);
    put_end(&w, FCGI_STDIN, 1);
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_GET_VALUES_CLOSE), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rg, 2, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_records(&rb, FCGI_GET_VALUES_RESULT, 0), 1);
    CHECK_EQ_U(count_id(&rb, 2), 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_get_values_id_1(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    const char *const names[] = {"FCGI_MPXS_CONNS"};
    put_get_values(&w, names, 1);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_GET_VALUES_ID_1), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    CHECK_EQ_U(rg.n, 1);
    CHECK_EQ_U(rb.n, 1);
    if (rg.n == 1 && rb.n == 1) {
        CHECK_EQ_U(rg.v[0].id, 0);
        CHECK_EQ_U(rb.v[0].id, 1);
        CHECK_EQ_U(rb.v[0].type, FCGI_GET_VALUES_RESULT);
        CHECK(rb.v[0].len == rg.v[0].len && memcmp(rb.v[0].content, rg.v[0].content, rg.v[0].len) == 0);
    }
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_overloaded_silent_close(struct test_counts *tc)
{
    struct fcgi_limits limits = fcgi_limits_default();
    /* Past --max-reqs. */
    limits.max_reqs = 1;
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_begin(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct run good, bad;
    run_limits(tc, &limits, false, &w, &good);
    limits.faults = with(FAULT_OVERLOADED_SILENT_CLOSE);
    run_limits(tc, &limits, false, &w, &bad);
    struct recs rg = parse_records(&good.out);
    check_answer(tc, &rg, 2, 0, FCGI_OVERLOADED);
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    CHECK_EQ_U(bad.out.len, 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    CHECK(strstr(bad.reason, "over the limits") != NULL);
    recs_free(&rg), runs_free(&good, &bad);
    /* Under the limit, the fault changes nothing. */
    wire_reset(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    limits.faults = 0;
    run_limits(tc, &limits, false, &w, &good);
    limits.faults = with(FAULT_OVERLOADED_SILENT_CLOSE);
    run_limits(tc, &limits, false, &w, &bad);
    CHECK_EQ_U(count_end_requests(&good.out), 2);
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    runs_free(&good, &bad);
    /* Past --max-conns. */
    limits = fcgi_limits_default();
    wire_reset(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    run_limits(tc, &limits, true, &w, &good);
    limits.faults = with(FAULT_OVERLOADED_SILENT_CLOSE);
    run_limits(tc, &limits, true, &w, &bad);
    rg = parse_records(&good.out);
    check_answer(tc, &rg, 1, 0, FCGI_OVERLOADED);
    CHECK_EQ_U(bad.out.len, 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    CHECK(strstr(bad.reason, "over the limits") != NULL);
    recs_free(&rg), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_get_values_after_requests(struct test_counts *tc)
{
    const char *const names[] = {"FCGI_MAX_REQS"};
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_begin(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_end(&w, FCGI_PARAMS, 1);
    put_end(&w, FCGI_PARAMS, 2);
    put_get_values(&w, names, 1);
    put_end(&w, FCGI_STDIN, 1);
    put_end(&w, FCGI_STDIN, 2);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_GET_VALUES_AFTER_REQUESTS), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rg, 2, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rb, 2, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_records(&rg, FCGI_GET_VALUES_RESULT, 0), 1);
    CHECK_EQ_U(count_records(&rb, FCGI_GET_VALUES_RESULT, 0), 1);
    size_t at_good = first_type(&rg, FCGI_GET_VALUES_RESULT), at_bad = first_type(&rb, FCGI_GET_VALUES_RESULT);
    CHECK_EQ_U(at_good, 0);
    CHECK(rb.n > 0 && at_bad == rb.n - 1); /* after both END_REQUESTs */
    if (at_good < rg.n && at_bad < rb.n)
        CHECK(rec_same(&rg.v[at_good], &rb.v[at_bad]));
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad);
    /* Two GET_VALUES during a request: both are answered once it has ended. */
    const char *const other[] = {"FCGI_MPXS_CONNS"};
    wire_reset(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_end(&w, FCGI_PARAMS, 1);
    put_get_values(&w, names, 1);
    put_get_values(&w, other, 1);
    put_end(&w, FCGI_STDIN, 1);
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_GET_VALUES_AFTER_REQUESTS), &w, &bad);
    rg = parse_records(&good.out), rb = parse_records(&bad.out);
    CHECK_EQ_U(count_records(&rg, FCGI_GET_VALUES_RESULT, 0), 2);
    check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
    if (!CHECK(count_records(&rb, FCGI_GET_VALUES_RESULT, 0) == 2))
        printf("    get-values-after-requests answers only the last of %d GET_VALUES held during a request\n", 2);
    for (size_t i = 0; i < rb.n; i++)
        if (rb.v[i].type == FCGI_GET_VALUES_RESULT)
            CHECK(i > first_of(&rb, FCGI_END_REQUEST, 1));
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad);
    /* With no request active it is answered at once. */
    wire_reset(&w);
    put_get_values(&w, names, 1);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_GET_VALUES_AFTER_REQUESTS), &w, &bad);
    CHECK_EQ_U(count_records_of(&good.out, FCGI_GET_VALUES_RESULT), 1);
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_unknown_type_close(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_record(&w, 200, 0, NULL, 0);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_UNKNOWN_TYPE_CLOSE), &w, &bad);
    struct recs rg = parse_records(&good.out);
    CHECK_EQ_U(count_records(&rg, FCGI_UNKNOWN_TYPE, 0), 1);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    CHECK_EQ_U(bad.out.len, 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    CHECK(strstr(bad.reason, "unknown management record type 200") != NULL);
    recs_free(&rg), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_unknown_role_served(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, 7, FCGI_KEEP_CONN, "status=201", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_UNKNOWN_ROLE_SERVED), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_UNKNOWN_ROLE);
    check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
    struct buf out = {0};
    stream_of(&rb, FCGI_STDOUT, 1, &out);
    CHECK(buf_has(&out, "Status: 201 "));
    CHECK(buf_has(&out, "\"role\":\"responder\""));
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad);
    /* A role the server was told not to serve is unknown too. */
    struct fcgi_limits limits = fcgi_limits_default();
    limits.roles = ROLE_MASK_RESPONDER;
    wire_reset(&w);
    put_request(&w, 1, FCGI_FILTER, FCGI_KEEP_CONN, "status=201", "");
    run_limits(tc, &limits, false, &w, &good);
    limits.faults = with(FAULT_UNKNOWN_ROLE_SERVED);
    run_limits(tc, &limits, false, &w, &bad);
    rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_UNKNOWN_ROLE);
    check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
    out.len = 0;
    stream_of(&rb, FCGI_STDOUT, 1, &out);
    CHECK(buf_has(&out, "\"role\":\"responder\""));
    buf_free(&out);
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_end_before_stdout(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "err=e&app_status=3", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_END_BEFORE_STDOUT), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 3, FCGI_REQUEST_COMPLETE);
    /* The same records, the END_REQUEST moved from last to first. */
    CHECK_EQ_U(rb.n, rg.n);
    if (rb.n == rg.n && rg.n > 1) {
        CHECK(rec_same(&rb.v[0], &rg.v[rg.n - 1]));
        for (size_t i = 1; i < rb.n; i++)
            CHECK(rec_same(&rb.v[i], &rg.v[i - 1]));
    }
    CHECK_EQ_U(count_records(&rb, FCGI_END_REQUEST, 1), 1);
    CHECK_EQ_U(bad.state, FCGI_CONN_OPEN);
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad);
    /* A long response: END_REQUEST still comes before the STDOUT terminator. */
    wire_reset(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "out=100000", "");
    run_wire(tc, with(FAULT_END_BEFORE_STDOUT), &w, &bad);
    rb = parse_records(&bad.out);
    CHECK_EQ_U(count_records(&rb, FCGI_END_REQUEST, 1), 1);
    size_t end_at = first_type(&rb, FCGI_END_REQUEST);
    CHECK(end_at < rb.n && rb.v[rb.n - 1].type == FCGI_STDOUT && rb.v[rb.n - 1].len == 0);
    recs_free(&rb), buf_free(&bad.out), buf_free(&w.b);
}

static void fault_flags_exact_match(struct test_counts *tc)
{
    /* KEEP_CONN with another flag bit set: kept without the fault, closed with it. */
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN | 0x02, "", "");
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN | 0x02, "", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_FLAGS_EXACT_MATCH), &w, &bad);
    CHECK_EQ_U(count_end_requests(&good.out), 2);
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    struct recs rb = parse_records(&bad.out);
    check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_id(&rb, 2), 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    recs_free(&rb), runs_free(&good, &bad);
    /* The flags byte exactly 1: kept either way. */
    wire_reset(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_FLAGS_EXACT_MATCH), &w, &bad);
    CHECK_EQ_U(count_end_requests(&good.out), 2);
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    CHECK_EQ_U(bad.state, FCGI_CONN_OPEN);
    runs_free(&good, &bad), buf_free(&w.b);
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

static void fault_empty_params_close(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_end(&w, FCGI_PARAMS, 1);
    put_end(&w, FCGI_STDIN, 1);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_EMPTY_PARAMS_CLOSE), &w, &bad);
    struct recs rg = parse_records(&good.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    CHECK_EQ_U(bad.out.len, 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    CHECK(strstr(bad.reason, "empty PARAMS") != NULL);
    recs_free(&rg), runs_free(&good, &bad);
    /* PARAMS with a pair: no change. */
    wire_reset(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_EMPTY_PARAMS_CLOSE), &w, &bad);
    CHECK_EQ_U(count_end_requests(&good.out), 1);
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    CHECK_EQ_U(bad.state, FCGI_CONN_OPEN);
    runs_free(&good, &bad), buf_free(&w.b);
}

/* A probe request with CONTENT_LENGTH and the given STDIN. */
static void put_content_length_request(struct wire *w, uint16_t id, const char *query, const char *content_length,
                                       const char *stdin_text)
{
    struct buf p = {0};
    nv_put_text(&p, "QUERY_STRING", query);
    nv_put_text(&p, "REQUEST_METHOD", "POST");
    nv_put_text(&p, "CONTENT_LENGTH", content_length);
    put_request_with(w, id, FCGI_RESPONDER, FCGI_KEEP_CONN, &p, stdin_text, strlen(stdin_text));
    buf_free(&p);
}

static void fault_content_length_unchecked(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_content_length_request(&w, 1, "", "10", "abc");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_CONTENT_LENGTH_UNCHECKED), &w, &bad);
    struct recs rb = parse_records(&bad.out);
    check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK(buf_has(&good.out, "Status: 400 "));
    CHECK(buf_has(&good.out, "X-Probe-Error: stdin shorter than CONTENT_LENGTH\r\n"));
    CHECK(buf_has(&bad.out, "Status: 200 OK\r\n"));
    CHECK(!buf_has(&bad.out, "X-Probe-Error"));
    CHECK(buf_has(&bad.out, "\"stdin_length\":3"));
    recs_free(&rb), runs_free(&good, &bad);
    /* A complete body: no change. */
    wire_reset(&w);
    put_content_length_request(&w, 1, "", "3", "abc");
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_CONTENT_LENGTH_UNCHECKED), &w, &bad);
    CHECK(buf_has(&good.out, "Status: 200 OK\r\n"));
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    runs_free(&good, &bad), buf_free(&w.b);
}

/* The STDERR stream of request `id`, checked to be err_text repeated `times` times. */
static bool stderr_is_repeated(const struct recs *r, uint16_t id, const char *text, size_t times)
{
    struct buf err = {0};
    stream_of(r, FCGI_STDERR, id, &err);
    size_t n = strlen(text);
    bool ok = err.len == n * times;
    for (size_t i = 0; ok && i < times; i++)
        ok = memcmp(err.data + i * n, text, n) == 0;
    buf_free(&err);
    return ok;
}

static void fault_stderr_truncated(struct test_counts *tc)
{
    /* 5000 bytes of STDERR in each of two requests; then 3000 bytes. */
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "err=0123456789&err_repeat=500", "");
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "err=0123456789&err_repeat=500", "");
    put_request(&w, 3, FCGI_RESPONDER, FCGI_KEEP_CONN, "err=0123456789&err_repeat=300", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_STDERR_TRUNCATED), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    for (uint16_t id = 1; id <= 3; id++) {
        check_answer(tc, &rg, id, 0, FCGI_REQUEST_COMPLETE);
        check_answer(tc, &rb, id, 0, FCGI_REQUEST_COMPLETE);
        struct buf eg = {0}, eb = {0}, og = {0}, ob = {0};
        stream_of(&rg, FCGI_STDERR, id, &eg);
        stream_of(&rb, FCGI_STDERR, id, &eb);
        stream_of(&rg, FCGI_STDOUT, id, &og);
        stream_of(&rb, FCGI_STDOUT, id, &ob);
        size_t full = id == 3 ? 3000 : 5000;
        CHECK(stderr_is_repeated(&rg, id, "0123456789", full / 10));
        CHECK_EQ_U(eb.len, id == 3 ? 3000 : 4096);
        CHECK(eb.len <= eg.len && memcmp(eb.data, eg.data, eb.len) == 0);
        CHECK(buf_eq(&ob, og.data, og.len));
        buf_free(&eg), buf_free(&eb), buf_free(&og), buf_free(&ob);
    }
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_stdin_stall_40k(struct test_counts *tc)
{
    const size_t sizes[] = {40000, 50000};
    uint8_t *body = xrealloc(NULL, 50000);
    memset(body, 'i', 50000);
    const char *const names[] = {"FCGI_MAX_REQS"};
    for (size_t k = 0; k < 2; k++) {
        struct buf p = {0};
        nv_put_text(&p, "QUERY_STRING", "");
        struct wire w;
        wire_init(&w);
        put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
        put_stream(&w, FCGI_PARAMS, 1, p.data, p.len);
        put_end(&w, FCGI_PARAMS, 1);
        put_stream_pieces(&w, FCGI_STDIN, 1, body, sizes[k], 8000);
        put_end(&w, FCGI_STDIN, 1);
        put_get_values(&w, names, 1);
        struct run good, bad;
        run_wire(tc, 0, &w, &good);
        run_wire(tc, with(FAULT_STDIN_STALL_40K), &w, &bad);
        struct recs rg = parse_records(&good.out);
        check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
        CHECK_EQ_U(count_records(&rg, FCGI_GET_VALUES_RESULT, 0), 1);
        char length[40];
        snprintf(length, sizeof(length), "\"stdin_length\":%zu", sizes[k]);
        CHECK(buf_has(&good.out, length));
        if (k == 0) {
            CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
            CHECK(bad.wants_input);
        } else {
            /* Stalled: nothing more is read, neither the rest of STDIN nor GET_VALUES. */
            CHECK_EQ_U(bad.out.len, 0);
            CHECK(!bad.wants_input);
            CHECK_EQ_U(bad.state, FCGI_CONN_OPEN);
            CHECK_EQ_U(bad.active, 1);
        }
        recs_free(&rg), runs_free(&good, &bad), buf_free(&p), buf_free(&w.b);
    }
    free(body);
}

/* A request whose STDIN is cut short by ABORT_REQUEST, then request 2. */
static void put_aborted_request(struct wire *w, uint8_t flags)
{
    put_begin(w, 1, FCGI_RESPONDER, flags);
    put_end(w, FCGI_PARAMS, 1);
    put_stream(w, FCGI_STDIN, 1, "abc", 3);
    put_record(w, FCGI_ABORT_REQUEST, 1, NULL, 0);
    put_request(w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
}

static void fault_no_end_after_abort(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_aborted_request(&w, FCGI_KEEP_CONN);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_NO_END_AFTER_ABORT), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rg, 2, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_records(&rb, FCGI_END_REQUEST, 1), 0);
    /* Only END_REQUEST is missing: the STDOUT stream is still ended. */
    if (!CHECK(count_records(&rb, FCGI_STDOUT, 1) == count_records(&rg, FCGI_STDOUT, 1)))
        printf("    no-end-after-abort also drops the aborted request's empty STDOUT record\n");
    check_answer(tc, &rb, 2, 0, FCGI_REQUEST_COMPLETE); /* the request has ended, the connection goes on */
    CHECK_EQ_U(bad.state, FCGI_CONN_OPEN);
    CHECK_EQ_U(bad.active, 0);
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad);
    /* Without KEEP_CONN the request's end still closes the connection. */
    wire_reset(&w);
    put_aborted_request(&w, 0);
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_NO_END_AFTER_ABORT), &w, &bad);
    rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_id(&rg, 2), 0);
    CHECK_EQ_U(good.state, FCGI_CONN_CLOSING);
    CHECK_EQ_U(count_records(&rb, FCGI_END_REQUEST, 1), 0);
    if (!CHECK(bad.state == FCGI_CONN_CLOSING && count_id(&rb, 2) == 0))
        printf("    no-end-after-abort keeps open a connection whose request had FCGI_KEEP_CONN clear, "
               "and serves request 2 on it\n");
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_abort_closes_connection(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_aborted_request(&w, FCGI_KEEP_CONN);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_ABORT_CLOSES_CONNECTION), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rg, 2, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(count_id(&rb, 1), count_id(&rg, 1));
    CHECK_EQ_U(count_id(&rb, 2), 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_end_request_short_body(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "app_status=258", "");
    put_request(&w, 2, 7, FCGI_KEEP_CONN, "", ""); /* refused: UNKNOWN_ROLE */
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_END_REQUEST_SHORT_BODY), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 258, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rg, 2, 0, FCGI_UNKNOWN_ROLE);
    CHECK_EQ_U(rb.trailing, 0);
    CHECK_EQ_U(rb.n, rg.n);
    for (size_t i = 0; i < rg.n && i < rb.n; i++) {
        if (rg.v[i].type != FCGI_END_REQUEST) {
            CHECK(rec_same(&rb.v[i], &rg.v[i]));
            continue;
        }
        CHECK_EQ_U(rb.v[i].type, FCGI_END_REQUEST);
        CHECK_EQ_U(rb.v[i].len, 5);
        CHECK_EQ_U(rb.v[i].padding, 3);
        CHECK(rb.v[i].len == 5 && memcmp(rb.v[i].content, rg.v[i].content, 5) == 0);
    }
    CHECK_EQ_U(count_records(&rb, FCGI_END_REQUEST, -1), 2);
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_cant_mpx_close(struct test_counts *tc)
{
    struct fcgi_limits limits = fcgi_limits_default();
    limits.mpx = false;
    struct wire w;
    wire_init(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_begin(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct run good, bad;
    run_limits(tc, &limits, false, &w, &good);
    limits.faults = with(FAULT_CANT_MPX_CLOSE);
    run_limits(tc, &limits, false, &w, &bad);
    struct recs rg = parse_records(&good.out);
    check_answer(tc, &rg, 2, 0, FCGI_CANT_MPX_CONN);
    CHECK_EQ_U(good.state, FCGI_CONN_OPEN);
    CHECK_EQ_U(bad.out.len, 0);
    CHECK_EQ_U(bad.state, FCGI_CONN_CLOSING);
    CHECK(strstr(bad.reason, "second concurrent request") != NULL);
    recs_free(&rg), runs_free(&good, &bad);
    /* Without --no-mpx the fault changes nothing: both are served. */
    wire_reset(&w);
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_request(&w, 2, FCGI_RESPONDER, FCGI_KEEP_CONN, "", "");
    put_end(&w, FCGI_PARAMS, 1);
    put_end(&w, FCGI_STDIN, 1);
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_CANT_MPX_CLOSE), &w, &bad);
    CHECK_EQ_U(count_end_requests(&good.out), 2);
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_mpx_serialized(struct test_counts *tc)
{
    /* Still advertises multiplexing. */
    struct wire w;
    wire_init(&w);
    const char *const names[] = {"FCGI_MPXS_CONNS"};
    put_get_values(&w, names, 1);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_MPX_SERIALIZED), &w, &bad);
    struct recs rb = parse_records(&bad.out);
    const char *const one[] = {"FCGI_MPXS_CONNS", "1"};
    CHECK_EQ_U(rb.n, 1);
    if (rb.n == 1)
        check_values(tc, &rb.v[0], one, 1);
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    recs_free(&rb), runs_free(&good, &bad);
    /* Request 1 waits 50 ms; request 2 comes whole after it. Without the fault
     * request 2 is answered at once; with it, only once request 1 has ended. */
    wire_reset(&w);
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

static void fault_app_status_zero(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "app_status=7", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_APP_STATUS_ZERO), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 7, FCGI_REQUEST_COMPLETE);
    check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
    CHECK_EQ_U(rb.n, rg.n);
    for (size_t i = 0; i < rg.n && i < rb.n; i++)
        if (rg.v[i].type != FCGI_END_REQUEST)
            CHECK(rec_same(&rb.v[i], &rg.v[i]));
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

/* An Authorizer request with the given Authorization header (NULL: none). */
static void put_authorizer_request(struct wire *w, const char *authorization)
{
    struct buf p = {0};
    nv_put_text(&p, "REQUEST_METHOD", "GET");
    if (authorization)
        nv_put_text(&p, "HTTP_AUTHORIZATION", authorization);
    put_request_with(w, 1, FCGI_AUTHORIZER, FCGI_KEEP_CONN, &p, "", 0);
    buf_free(&p);
}

static void fault_authorizer_variables_dropped(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_authorizer_request(&w, "Bearer fcgispec");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_AUTHORIZER_VARIABLES_DROPPED), &w, &bad);
    struct recs rb = parse_records(&bad.out);
    check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
    struct buf out = {0};
    stream_of(&rb, FCGI_STDOUT, 1, &out);
    CHECK(buf_has(&good.out, "Variable-FCGISPEC_USER: probe\r\n"));
    CHECK(buf_eq(&out, "Status: 200 OK\r\n\r\n", 18));
    buf_free(&out), recs_free(&rb), runs_free(&good, &bad);
    /* A denial is the same either way. */
    wire_reset(&w);
    put_authorizer_request(&w, "Bearer wrong");
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_AUTHORIZER_VARIABLES_DROPPED), &w, &bad);
    CHECK(buf_has(&good.out, "Status: 403 "));
    CHECK(buf_eq(&bad.out, good.out.data, good.out.len));
    runs_free(&good, &bad), buf_free(&w.b);
}

/* A Filter request: STDIN "stdin", DATA "file to filter\r\n" after STDIN ended,
 * or (data_first) DATA before STDIN ended, as test_filter does. */
static void put_filter_request(struct wire *w, bool data_first)
{
    struct buf p = {0};
    nv_put_text(&p, "FCGI_DATA_LENGTH", "16");
    nv_put_text(&p, "FCGI_DATA_LAST_MOD", "0");
    put_begin(w, 1, FCGI_FILTER, FCGI_KEEP_CONN);
    put_stream(w, FCGI_PARAMS, 1, p.data, p.len);
    put_end(w, FCGI_PARAMS, 1);
    if (data_first)
        put_stream_pieces(w, FCGI_DATA, 1, "file to filter\r\n", 16, 3);
    put_stream(w, FCGI_STDIN, 1, "stdin", 5);
    put_end(w, FCGI_STDIN, 1);
    if (!data_first)
        put_stream_pieces(w, FCGI_DATA, 1, "file to filter\r\n", 16, 5);
    put_end(w, FCGI_DATA, 1);
    buf_free(&p);
}

static void fault_filter_data_ignored(struct test_counts *tc)
{
    for (int data_first = 0; data_first < 2; data_first++) {
        struct wire w;
        wire_init(&w);
        put_filter_request(&w, data_first);
        struct run good, bad;
        run_wire(tc, 0, &w, &good);
        run_wire(tc, with(FAULT_FILTER_DATA_IGNORED), &w, &bad);
        struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
        check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
        check_answer(tc, &rb, 1, 0, FCGI_REQUEST_COMPLETE);
        struct buf og = {0}, bg = {0}, ob = {0}, bb = {0};
        stdout_and_body(&rg, 1, &og, &bg);
        stdout_and_body(&rb, 1, &ob, &bb);
        CHECK(buf_eq(&bg, "file to filter\r\n", 16));
        CHECK(buf_has(&ob, "X-Filter-Stdin-Length: 5\r\n"));
        if (!CHECK(bb.len == 0))
            printf("    filter-data-ignored: DATA sent %s STDIN ended is in the body\n", data_first ? "before" : "after");
        buf_free(&og), buf_free(&bg), buf_free(&ob), buf_free(&bb);
        recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
    }
    /* Answered as soon as STDIN ends, with no DATA sent at all. */
    struct wire w;
    wire_init(&w);
    struct buf p = {0};
    nv_put_text(&p, "FCGI_DATA_LENGTH", "16");
    put_request_with(&w, 1, FCGI_FILTER, FCGI_KEEP_CONN, &p, "stdin", 5);
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_FILTER_DATA_IGNORED), &w, &bad);
    CHECK_EQ_U(count_end_requests(&good.out), 0);
    CHECK_EQ_U(good.active, 1);
    CHECK_EQ_U(count_end_requests(&bad.out), 1);
    CHECK_EQ_U(bad.active, 0);
    buf_free(&p), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_stdout_as_data(struct test_counts *tc)
{
    struct wire w;
    wire_init(&w);
    put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, "err=e", "");
    struct run good, bad;
    run_wire(tc, 0, &w, &good);
    run_wire(tc, with(FAULT_STDOUT_AS_DATA), &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    check_answer(tc, &rg, 1, 0, FCGI_REQUEST_COMPLETE);
    /* The same records, with FCGI_DATA wherever FCGI_STDOUT was. */
    CHECK_EQ_U(rb.n, rg.n);
    for (size_t i = 0; i < rg.n && i < rb.n; i++) {
        struct rec expected = rg.v[i];
        if (expected.type == FCGI_STDOUT)
            expected.type = FCGI_DATA;
        if (!CHECK(rec_same(&rb.v[i], &expected)))
            printf("    record %zu: type %u, length %zu; expected type %u\n", i, rb.v[i].type, rb.v[i].len,
                   expected.type);
    }
    CHECK(count_records(&rb, FCGI_DATA, 1) >= 1);
    if (!CHECK(count_records(&rb, FCGI_STDOUT, -1) == 0))
        printf("    stdout-as-data still ends the output with an empty FCGI_STDOUT record\n");
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

static void fault_max_conns_overstated(struct test_counts *tc)
{
    struct fcgi_limits limits = fcgi_limits_default();
    limits.max_conns = 7;
    struct wire w;
    wire_init(&w);
    const char *const names[] = {"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"};
    put_get_values(&w, names, 3);
    struct run good, bad;
    run_limits(tc, &limits, false, &w, &good);
    limits.faults = with(FAULT_MAX_CONNS_OVERSTATED);
    run_limits(tc, &limits, false, &w, &bad);
    struct recs rg = parse_records(&good.out), rb = parse_records(&bad.out);
    const char *const honest[] = {"FCGI_MAX_CONNS", "7", "FCGI_MAX_REQS", "4096", "FCGI_MPXS_CONNS", "1"};
    const char *const tenfold[] = {"FCGI_MAX_CONNS", "70", "FCGI_MAX_REQS", "4096", "FCGI_MPXS_CONNS", "1"};
    CHECK_EQ_U(rg.n, 1);
    CHECK_EQ_U(rb.n, 1);
    if (rg.n == 1)
        check_values(tc, &rg.v[0], honest, 3);
    if (rb.n == 1)
        check_values(tc, &rb.v[0], tenfold, 3);
    recs_free(&rg), recs_free(&rb), runs_free(&good, &bad), buf_free(&w.b);
}

/* ---- the probe app's err_repeat and CONTENT_LENGTH check (no faults) ---------------- */

static void test_probe_err_repeat(struct test_counts *tc)
{
    const struct {
        const char *query;
        const char *text;
        size_t times;
    } cases[] = {
        {"err=ab%21&err_repeat=3", "ab!", 3},
        {"err=ab&err_repeat=1", "ab", 1},
        {"err=ab", "ab", 1},
        {"err=ab&err_repeat=0", "ab", 0},
        {"err=x&err_repeat=100000", "x", 100000},
        {"err=0123456789&err_repeat=20000&out=10", "0123456789", 20000},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct wire w;
        wire_init(&w);
        put_request(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN, cases[k].query, "");
        struct run run;
        run_wire(tc, 0, &w, &run);
        struct recs r = parse_records(&run.out);
        check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
        if (!CHECK(stderr_is_repeated(&r, 1, cases[k].text, cases[k].times)))
            printf("    query %s\n", cases[k].query);
        if (cases[k].times == 0)
            CHECK_EQ_U(count_records(&r, FCGI_STDERR, -1), 0);
        CHECK(buf_has(&run.out, "Status: 200 OK\r\n"));
        recs_free(&r), buf_free(&run.out), buf_free(&w.b);
    }
}

static void test_probe_content_length(struct test_counts *tc)
{
    const struct {
        const char *query;
        const char *content_length;
        const char *stdin_text;
        bool short_stdin;
    } cases[] = {
        {"", "10", "abc", true},
        {"", "4", "abc", true},
        {"", "1", "", true},
        {"", "3", "abc", false},
        {"", "2", "abc", false},
        {"", "0", "", false},
        {"out=5", "10", "abc", true},
        {"out=5", "3", "abc", false},
        {"status=201", "10", "abc", true},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct wire w;
        wire_init(&w);
        put_content_length_request(&w, 1, cases[k].query, cases[k].content_length, cases[k].stdin_text);
        struct run run;
        run_wire(tc, 0, &w, &run);
        struct recs r = parse_records(&run.out);
        check_answer(tc, &r, 1, 0, FCGI_REQUEST_COMPLETE);
        struct buf out = {0};
        stream_of(&r, FCGI_STDOUT, 1, &out);
        unsigned long failed = tc->failed;
        if (cases[k].short_stdin) {
            CHECK(out.len > 13 && memcmp(out.data, "Status: 400 ", 12) == 0);
            CHECK(buf_has(&out, "\r\nX-Probe-Error: stdin shorter than CONTENT_LENGTH\r\n"));
        } else {
            const char *status = strstr(cases[k].query, "status=201") ? "Status: 201 " : "Status: 200 OK\r\n";
            CHECK(out.len > strlen(status) && memcmp(out.data, status, strlen(status)) == 0);
            CHECK(!buf_has(&out, "X-Probe-Error"));
        }
        char length[64];
        snprintf(length, sizeof(length), "X-Probe-Stdin-Length: %zu\r\n", strlen(cases[k].stdin_text));
        CHECK(buf_has(&out, length));
        if (tc->failed != failed)
            printf("    CONTENT_LENGTH %s, STDIN \"%s\", query \"%s\"\n", cases[k].content_length,
                   cases[k].stdin_text, cases[k].query);
        buf_free(&out), recs_free(&r), buf_free(&run.out), buf_free(&w.b);
    }
    /* STDIN in several records counts whole. */
    struct wire w;
    wire_init(&w);
    struct buf p = {0};
    nv_put_text(&p, "QUERY_STRING", "");
    nv_put_text(&p, "CONTENT_LENGTH", "6");
    put_begin(&w, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_stream(&w, FCGI_PARAMS, 1, p.data, p.len);
    put_end(&w, FCGI_PARAMS, 1);
    put_stream_pieces(&w, FCGI_STDIN, 1, "abcdef", 6, 2);
    put_end(&w, FCGI_STDIN, 1);
    struct run run;
    run_wire(tc, 0, &w, &run);
    CHECK(buf_has(&run.out, "Status: 200 OK\r\n"));
    CHECK(!buf_has(&run.out, "X-Probe-Error"));
    buf_free(&p), buf_free(&run.out), buf_free(&w.b);
}

typedef void (*test_fn)(struct test_counts *tc);

/* Indexed by enum fault, so a new fault without a test shows up as a failure. */
static const test_fn fault_tests[FAULT_COUNT] = {
    [FAULT_GO_ID_REUSE] = fault_go_id_reuse,
    [FAULT_KEEP_CONN_CLOSE] = fault_keep_conn_close,
    [FAULT_KEEP_CONN_NEVER_CLOSE] = fault_keep_conn_never_close,
    [FAULT_GET_VALUES_STREAM] = fault_get_values_stream,
    [FAULT_GET_VALUES_IGNORED] = fault_get_values_ignored,
    [FAULT_UNKNOWN_TYPE_IGNORED] = fault_unknown_type_ignored,
    [FAULT_UNKNOWN_ROLE_CLOSE] = fault_unknown_role_close,
    [FAULT_PADDING_NOT_SKIPPED] = fault_padding_not_skipped,
    [FAULT_NV_LONG_LENGTH_1BYTE] = fault_nv_long_length_1byte,
    [FAULT_PARAMS_SPLIT_PAIR_LOST] = fault_params_split_pair_lost,
    [FAULT_STDIN_FIRST_RECORD_ONLY] = fault_stdin_first_record_only,
    [FAULT_ABORT_IGNORED] = fault_abort_ignored,
    [FAULT_END_REQUEST_TWICE] = fault_end_request_twice,
    [FAULT_NO_EMPTY_STDOUT] = fault_no_empty_stdout,
    [FAULT_STDOUT_AFTER_EMPTY] = fault_stdout_after_empty,
    [FAULT_MGMT_MID_REQUEST_CLOSE] = fault_mgmt_mid_request_close,
    [FAULT_REPLY_ID_ZERO] = fault_reply_id_zero,
    [FAULT_MISFRAME_ON_REUSE] = fault_misframe_on_reuse,
    [FAULT_REJECT_MAX_CONTENT_PADDING] = fault_reject_max_content_padding,
    [FAULT_UNALIGNED_OUTPUT] = fault_unaligned_output,
    [FAULT_FOREIGN_ID_STDIN_ACCEPTED] = fault_foreign_id_stdin_accepted,
    [FAULT_LATE_RECORD_CLOSE] = fault_late_record_close,
    [FAULT_ID_HIGH_BYTE_DROPPED] = fault_id_high_byte_dropped,
    [FAULT_SPLIT_HEADER_LOST] = fault_split_header_lost,
    [FAULT_BEGIN_ID_ZERO_SERVED] = fault_begin_id_zero_served,
    [FAULT_EXIT_ON_MALFORMED] = fault_exit_on_malformed,
    [FAULT_ABORT_ON_MALFORMED] = fault_abort_on_malformed,
    [FAULT_NV_LONG_FORM_SHORT_REJECTED] = fault_nv_long_form_short_rejected,
    [FAULT_PARAMS_8K_BUFFER] = fault_params_8k_buffer,
    [FAULT_PARAMS_CUT_AT_NUL] = fault_params_cut_at_nul,
    [FAULT_GET_VALUES_CLOSE] = fault_get_values_close,
    [FAULT_GET_VALUES_ID_1] = fault_get_values_id_1,
    [FAULT_OVERLOADED_SILENT_CLOSE] = fault_overloaded_silent_close,
    [FAULT_GET_VALUES_AFTER_REQUESTS] = fault_get_values_after_requests,
    [FAULT_UNKNOWN_TYPE_CLOSE] = fault_unknown_type_close,
    [FAULT_UNKNOWN_ROLE_SERVED] = fault_unknown_role_served,
    [FAULT_END_BEFORE_STDOUT] = fault_end_before_stdout,
    [FAULT_FLAGS_EXACT_MATCH] = fault_flags_exact_match,
    [FAULT_OUTPUT_BEFORE_PARAMS_END] = fault_output_before_params_end,
    [FAULT_EMPTY_PARAMS_CLOSE] = fault_empty_params_close,
    [FAULT_CONTENT_LENGTH_UNCHECKED] = fault_content_length_unchecked,
    [FAULT_STDERR_TRUNCATED] = fault_stderr_truncated,
    [FAULT_STDIN_STALL_40K] = fault_stdin_stall_40k,
    [FAULT_NO_END_AFTER_ABORT] = fault_no_end_after_abort,
    [FAULT_ABORT_CLOSES_CONNECTION] = fault_abort_closes_connection,
    [FAULT_END_REQUEST_SHORT_BODY] = fault_end_request_short_body,
    [FAULT_CANT_MPX_CLOSE] = fault_cant_mpx_close,
    [FAULT_MPX_SERIALIZED] = fault_mpx_serialized,
    [FAULT_APP_STATUS_ZERO] = fault_app_status_zero,
    [FAULT_AUTHORIZER_VARIABLES_DROPPED] = fault_authorizer_variables_dropped,
    [FAULT_FILTER_DATA_IGNORED] = fault_filter_data_ignored,
    [FAULT_STDOUT_AS_DATA] = fault_stdout_as_data,
    [FAULT_MAX_CONNS_OVERSTATED] = fault_max_conns_overstated,
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

/* Runs one test and names it if it added failures, since CHECK lines point into helpers. */
static void run(struct test_counts *tc, const char *name, test_fn fn)
{
    unsigned long failed = tc->failed;
    fn(tc);
    if (tc->failed != failed)
        printf("  in %s\n", name);
}

#define RUN(fn) run(tc, #fn, fn)

int main(void)
{
    struct test_counts counts = {0, 0};
    struct test_counts *tc = &counts;
    RUN(test_responder_request);
    RUN(test_status_stderr_app_status);
    RUN(test_id_reuse);
    RUN(test_keep_conn);
    RUN(test_get_values);
    RUN(test_unknown_type);
    RUN(test_unknown_role);
    RUN(test_abort);
    RUN(test_inactive_ids_ignored);
    RUN(test_second_begin_ignored);
    RUN(test_no_mpx);
    RUN(test_max_reqs);
    RUN(test_overloaded_conn);
    RUN(test_multiplexing);
    RUN(test_padding);
    RUN(test_byte_at_a_time);
    RUN(test_params_split_pair);
    RUN(test_long_lengths);
    RUN(test_protocol_errors);
    RUN(test_odd_but_legal);
    RUN(test_delay);
    RUN(test_backpressure);
    RUN(test_big_response_beside_small);
    RUN(test_abort_during_big_response);
    RUN(test_input_eof);
    RUN(test_free_with_requests);
    RUN(test_echo);
    RUN(test_authorizer);
    RUN(test_filter);
    RUN(test_probe_err_repeat);
    RUN(test_probe_content_length);
    for (int f = 0; f < FAULT_COUNT; f++) {
        /* Exactly one of: a test here, or a note saying where it is tested. */
        if (fault_tested_elsewhere[f]) {
            if (!CHECK(fault_tests[f] == NULL))
                printf("    fault %d has a test here but is listed as %s\n", f, fault_tested_elsewhere[f]);
            continue;
        }
        if (!CHECK(fault_tests[f] != NULL)) {
            char fault[64];
            fault_name(f, fault);
            printf("    fault %d (%s) has no test\n", f, fault);
            continue;
        }
        char fault[64], name[96];
        fault_name(f, fault);
        snprintf(name, sizeof(name), "fault test %d (%s)", f, fault);
        run(tc, name, fault_tests[f]);
    }
    return test_finish(tc);
}
