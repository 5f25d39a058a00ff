/* The harness of the connection state machine tests: see conn_harness.h. */
#include "conn_harness.h"

#include <stdlib.h>
#include <string.h>

void run_test(struct test_counts *tc, const char *name, test_fn fn)
{
    unsigned long failed = tc->failed;
    fn(tc);
    if (tc->failed != failed)
        printf("  in %s\n", name);
}

/* ---- growable byte buffers ------------------------------------------------------ */

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return q;
}

void buf_put(struct buf *b, const void *data, size_t len)
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

void buf_puts(struct buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_fill(struct buf *b, uint8_t byte, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf_put(b, &byte, 1);
}

void buf_free(struct buf *b)
{
    free(b->data);
    *b = (struct buf){0};
}

long find_bytes(const uint8_t *hay, size_t hay_len, const void *needle, size_t needle_len)
{
    if (needle_len == 0)
        return 0;
    for (size_t i = 0; i + needle_len <= hay_len; i++)
        if (hay[i] == *(const uint8_t *)needle && memcmp(hay + i, needle, needle_len) == 0)
            return (long)i;
    return -1;
}

bool buf_has(const struct buf *b, const char *text) { return find_bytes(b->data, b->len, text, strlen(text)) >= 0; }

bool buf_eq(const struct buf *b, const void *data, size_t len)
{
    return b->len == len && (len == 0 || memcmp(b->data, data, len) == 0);
}

/* ---- inbound records ------------------------------------------------------------ */

void wire_init(struct wire *w) { *w = (struct wire){.pad_len = -1}; }

void wire_reset(struct wire *w)
{
    buf_free(&w->b);
    wire_init(w);
}

void put_record_v(struct wire *w, uint8_t version, uint8_t type, uint16_t id, const void *content, size_t len)
{
    if (type == FCGI_PARAMS)
        w->params_bytes += len;
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

void put_record(struct wire *w, uint8_t type, uint16_t id, const void *content, size_t len)
{
    put_record_v(w, FCGI_VERSION_1, type, id, content, len);
}

void put_stream_pieces(struct wire *w, uint8_t type, uint16_t id, const void *data, size_t len, size_t piece)
{
    const uint8_t *p = data;
    for (size_t pos = 0; pos < len; pos += piece)
        put_record(w, type, id, p + pos, len - pos < piece ? len - pos : piece);
}

void put_stream(struct wire *w, uint8_t type, uint16_t id, const void *data, size_t len)
{
    put_stream_pieces(w, type, id, data, len, FCGI_MAX_CONTENT);
}

void put_end(struct wire *w, uint8_t type, uint16_t id) { put_record(w, type, id, NULL, 0); }

void put_begin(struct wire *w, uint16_t id, uint16_t role, uint8_t flags)
{
    struct fcgi_begin_request begin = {role, flags};
    uint8_t body[8];
    fcgi_begin_request_encode(&begin, body);
    put_record(w, FCGI_BEGIN_REQUEST, id, body, sizeof(body));
}

void nv_put(struct buf *b, const void *name, size_t name_len, const void *value, size_t value_len)
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

void nv_put_text(struct buf *b, const char *name, const char *value)
{
    nv_put(b, name, strlen(name), value, strlen(value));
}

void put_request(struct wire *w, uint16_t id, uint16_t role, uint8_t flags, const char *query, const char *stdin_text)
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

void put_request_with(struct wire *w, uint16_t id, uint16_t role, uint8_t flags, const struct buf *params,
                      const void *stdin_data, size_t stdin_len)
{
    put_begin(w, id, role, flags);
    put_stream(w, FCGI_PARAMS, id, params->data, params->len);
    put_end(w, FCGI_PARAMS, id);
    put_stream(w, FCGI_STDIN, id, stdin_data, stdin_len);
    put_end(w, FCGI_STDIN, id);
}

void put_get_values(struct wire *w, const char *const *names, size_t count)
{
    struct buf q = {0};
    for (size_t i = 0; i < count; i++)
        nv_put(&q, names[i], strlen(names[i]), "", 0);
    put_record(w, FCGI_GET_VALUES, 0, q.data, q.len);
    buf_free(&q);
}

void put_conversation(struct wire *w)
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

/* ---- outbound records ----------------------------------------------------------- */

struct recs parse_records(const struct buf *b)
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

void recs_free(struct recs *r)
{
    free(r->v);
    *r = (struct recs){0};
}

size_t count_records(const struct recs *r, uint8_t type, int id)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].type == type && (id < 0 || r->v[i].id == id))
            n++;
    return n;
}

size_t count_id(const struct recs *r, uint16_t id)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += r->v[i].id == id;
    return n;
}

size_t count_end_requests(const struct buf *b)
{
    struct recs r = parse_records(b);
    size_t n = count_records(&r, FCGI_END_REQUEST, -1);
    recs_free(&r);
    return n;
}

void stream_of(const struct recs *r, uint8_t type, uint16_t id, struct buf *out)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].type == type && r->v[i].id == id)
            buf_put(out, r->v[i].content, r->v[i].len);
}

bool end_of(const struct recs *r, uint16_t id, struct fcgi_end_request *out)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].type == FCGI_END_REQUEST && r->v[i].id == id)
            return fcgi_end_request_decode(r->v[i].content, r->v[i].len, out) == FCGI_DECODE_OK;
    return false;
}

size_t first_of(const struct recs *r, uint8_t type, uint16_t id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].type == type && r->v[i].id == id)
            return i;
    return r->n;
}

size_t first_type(const struct recs *r, uint8_t type)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].type == type)
            return i;
    return r->n;
}

bool rec_same(const struct rec *a, const struct rec *b)
{
    return a->type == b->type && a->id == b->id && a->len == b->len &&
           (a->len == 0 || memcmp(a->content, b->content, a->len) == 0);
}

void body_of(const struct buf *cgi, struct buf *body)
{
    long at = find_bytes(cgi->data, cgi->len, "\r\n\r\n", 4);
    if (at >= 0)
        buf_put(body, cgi->data + at + 4, cgi->len - (size_t)at - 4);
}

bool report_has_pair(const struct buf *out, const uint8_t *name, size_t name_len, const uint8_t *value,
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

void check_framing(struct test_counts *tc, const struct recs *r)
{
    CHECK_EQ_U(r->trailing, 0);
    for (size_t i = 0; i < r->n; i++) {
        CHECK_EQ_U(r->v[i].version, FCGI_VERSION_1);
        CHECK_EQ_U(r->v[i].padding, fcgi_padding_for(r->v[i].len));
    }
}

void check_answer(struct test_counts *tc, const struct recs *r, uint16_t id, uint32_t app_status,
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

/* Calls fn(name, name_len, value, value_len, arg) for each "NAME=VALUE" line of
 * pairs (len bytes; a line without '=' is a name with an empty value). */
static void each_pair(const char *pairs, size_t len,
                      void (*fn)(const char *name, size_t name_len, const char *value, size_t value_len, void *arg),
                      void *arg)
{
    size_t pos = 0;
    while (pos < len) {
        const char *line = pairs + pos;
        size_t line_len = 0;
        while (pos + line_len < len && line[line_len] != '\n')
            line_len++;
        size_t name_len = 0;
        while (name_len < line_len && line[name_len] != '=')
            name_len++;
        size_t value_at = name_len < line_len ? name_len + 1 : line_len;
        fn(line, name_len, line + value_at, line_len - value_at, arg);
        pos += line_len + 1;
    }
}

struct pair_match {
    const struct fcgi_nv *nv;
    bool found;
    size_t count;
};

static void match_pair(const char *name, size_t name_len, const char *value, size_t value_len, void *arg)
{
    struct pair_match *m = arg;
    m->count++;
    if (m->nv && m->nv->name_len == name_len && memcmp(m->nv->name, name, name_len) == 0 &&
        m->nv->value_len == value_len && memcmp(m->nv->value, value, value_len) == 0)
        m->found = true;
}

void check_values(struct test_counts *tc, const struct rec *rec, const char *pairs)
{
    CHECK_EQ_U(rec->type, FCGI_GET_VALUES_RESULT);
    CHECK_EQ_U(rec->id, 0);
    size_t pos = 0, seen = 0;
    while (pos < rec->len) {
        struct fcgi_nv nv;
        size_t used;
        if (!CHECK(fcgi_nv_decode(rec->content + pos, rec->len - pos, &nv, &used) == FCGI_DECODE_OK))
            return;
        struct pair_match m = {&nv, false, 0};
        each_pair(pairs, strlen(pairs), match_pair, &m);
        CHECK(m.found);
        seen++;
        pos += used;
    }
    struct pair_match all = {NULL, false, 0};
    each_pair(pairs, strlen(pairs), match_pair, &all);
    CHECK_EQ_U(seen, all.count);
}

/* ---- a connection under test ---------------------------------------------------- */

void fx_init(struct fx *f)
{
    *f = (struct fx){0};
    f->limits = fcgi_limits_default();
    f->now = T0;
}

void fx_open(struct fx *f) { f->c = fcgi_conn_new(&f->limits, &f->load, 1, false, f->now); }

void fx_open_faults(struct fx *f, fault_set faults)
{
    fx_init(f);
    f->limits.faults = faults;
    fx_open(f);
}

void fx_drain(struct fx *f)
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

size_t fx_send_bytes(struct fx *f, const uint8_t *data, size_t len)
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

size_t fx_send(struct fx *f, const struct wire *w) { return fx_send_bytes(f, w->b.data, w->b.len); }

bool fx_closing(const struct fx *f) { return fcgi_conn_state(f->c) == FCGI_CONN_CLOSING; }

void fx_close(struct test_counts *tc, struct fx *f)
{
    fcgi_conn_free(f->c);
    f->c = NULL;
    CHECK_EQ_U(f->load.active_requests, 0);
    buf_free(&f->out);
}

void fx_event_loop(struct fx *f, const struct wire *w, size_t write_size)
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

void run_limits(struct test_counts *tc, const struct fcgi_limits *limits, bool overloaded, const struct wire *w,
                struct run *result)
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

void run_wire(struct test_counts *tc, fault_set faults, const struct wire *w, struct run *result)
{
    struct fcgi_limits limits = fcgi_limits_default();
    limits.faults = faults;
    run_limits(tc, &limits, false, w, result);
}

void runs_free(struct run *a, struct run *b)
{
    buf_free(&a->out);
    buf_free(&b->out);
}

/* ---- table rows: the input -------------------------------------------------------- */

static void put_pair(const char *name, size_t name_len, const char *value, size_t value_len, void *arg)
{
    nv_put(arg, name, name_len, value, value_len);
}

/* The content of a PARAMS, STDIN, DATA... op: its text, or n bytes of fill. */
static void op_content(const struct op *op, struct buf *out)
{
    if (op->kind == OP_PARAMS) {
        each_pair(op->a, op->a_len, put_pair, out);
    } else if (op->kind == OP_FILLED_PAIR || !op->a) {
        uint8_t *fill = xrealloc(NULL, op->n);
        memset(fill, op->fill, op->n);
        if (op->kind == OP_FILLED_PAIR)
            nv_put(out, op->a, op->a_len, fill, op->n);
        else
            buf_put(out, fill, op->n);
        free(fill);
    } else {
        buf_put(out, op->a, op->a_len);
    }
}

void put_ops(struct wire *w, const struct op *ops)
{
    for (const struct op *op = ops; op->kind != OP_END; op++) {
        struct buf content = {0};
        switch (op->kind) {
        case OP_REQUEST:
            put_request(w, op->id, op->role, op->flags, op->a, op->b);
            break;
        case OP_REQUEST_WITH:
            each_pair(op->a, op->a_len, put_pair, &content);
            put_request_with(w, op->id, op->role, op->flags, &content, op->b, op->b_len);
            break;
        case OP_BEGIN:
            put_begin(w, op->id, op->role, op->flags);
            break;
        case OP_RECORD:
            put_record_v(w, op->version, op->type, op->id, op->a, op->a_len);
            break;
        case OP_STREAM:
        case OP_PARAMS:
        case OP_FILLED_PAIR: {
            uint8_t type = op->kind == OP_STREAM ? op->type : FCGI_PARAMS;
            op_content(op, &content);
            if (op->cut) {
                put_record(w, type, op->id, content.data, op->cut);
                put_record(w, type, op->id, content.data + op->cut, content.len - op->cut);
            } else {
                put_stream_pieces(w, type, op->id, content.data, content.len, op->piece ? op->piece : FCGI_MAX_CONTENT);
            }
            break;
        }
        case OP_GET_VALUES: {
            /* The names as pairs with empty values, which is what put_get_values writes. */
            each_pair(op->a, strlen(op->a), put_pair, &content);
            put_record(w, FCGI_GET_VALUES, 0, content.data, content.len);
            break;
        }
        case OP_PADDING:
            w->pad_len = (int)op->n;
            w->pad_byte = op->fill;
            break;
        case OP_BUILD:
            op->build(w);
            break;
        }
        buf_free(&content);
    }
}

/* ---- table rows: what the run must show -------------------------------------------- */

/* The STDOUT of id, or the whole output for WHOLE_OUTPUT. */
static void text_of(const struct side *s, int id, struct buf *out)
{
    if (id == WHOLE_OUTPUT)
        buf_put(out, s->out.data, s->out.len);
    else
        stream_of(&s->r, FCGI_STDOUT, (uint16_t)id, out);
}

static bool stderr_is_repeated(const struct recs *r, uint16_t id, const char *text, size_t len, size_t times)
{
    struct buf err = {0};
    stream_of(r, FCGI_STDERR, id, &err);
    bool ok = err.len == len * times;
    for (size_t i = 0; ok && i < times; i++)
        ok = memcmp(err.data + i * len, text, len) == 0;
    buf_free(&err);
    return ok;
}

static void check_unknown_type(struct test_counts *tc, const struct recs *r, uint8_t type)
{
    CHECK_EQ_U(r->n, 1);
    if (r->n != 1)
        return;
    const uint8_t expected[8] = {type, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ_U(r->v[0].type, FCGI_UNKNOWN_TYPE);
    CHECK_EQ_U(r->v[0].id, 0);
    CHECK_EQ_U(r->v[0].len, 8);
    if (r->v[0].len == 8)
        CHECK_MEM(r->v[0].content, expected, 8);
}

/* The expectations on the connection itself. */
static void check_connection(struct test_counts *tc, const struct expect *e, const struct side *s)
{
    switch (e->kind) {
    case E_TAKEN_ALL:
        CHECK_EQ_U(s->taken, s->input->b.len);
        break;
    case E_STATE:
        CHECK_EQ_U(s->state, e->n);
        break;
    case E_WANTS_INPUT:
        CHECK_EQ_U(s->wants_input, e->n);
        break;
    case E_REASON:
        if (!CHECK(strstr(s->reason, e->text) != NULL))
            printf("    reason \"%s\" lacks \"%s\"\n", s->reason, e->text);
        break;
    case E_NO_REASON:
        CHECK_EQ_U(strlen(s->reason), 0);
        break;
    case E_SOME_REASON:
        CHECK(s->reason[0] != '\0');
        break;
    case E_FATAL:
        CHECK_EQ_U(s->fatal, e->n);
        break;
    case E_ACTIVE:
        CHECK_EQ_U(s->active, e->n);
        break;
    case E_WAKEUP:
        CHECK_EQ_U(fcgi_conn_next_wakeup(s->f->c), e->n);
        break;
    case E_TAKES_NO_MORE: {
        const uint8_t more[8] = {1, FCGI_GET_VALUES, 0, 0, 0, 0, 0, 0};
        CHECK_EQ_U(fcgi_conn_feed(s->f->c, more, sizeof(more), s->f->now), 0);
        break;
    }
    case E_LEN:
        CHECK_EQ_U(s->out.len, e->n);
        break;
    case E_LEN_OVER:
        CHECK(s->out.len > e->n);
        break;
    case E_PARAMS_SENT:
        CHECK_EQ_U(s->input->params_bytes, e->n);
        break;
    }
}

/* The expectations on the records the connection sent. */
static void check_records(struct test_counts *tc, const struct expect *e, const struct recs *r)
{
    size_t n = 0;
    switch (e->kind) {
    case E_FRAMING:
        check_framing(tc, r);
        break;
    case E_RECORDS:
        CHECK_EQ_U(r->n, e->n);
        break;
    case E_RECORDS_MIN:
        CHECK(r->n >= e->n);
        break;
    case E_ANSWER:
        check_answer(tc, r, (uint16_t)e->id, (uint32_t)e->n, e->protocol_status);
        break;
    case E_COUNT:
        CHECK_EQ_U(count_records(r, e->type, e->id), e->n);
        break;
    case E_COUNT_MIN:
        CHECK(count_records(r, e->type, e->id) >= e->n);
        break;
    case E_IDS:
        CHECK_EQ_U(count_id(r, (uint16_t)e->id), e->n);
        break;
    case E_ONLY_ID:
        CHECK_EQ_U(count_id(r, (uint16_t)e->id), r->n);
        break;
    case E_ONLY_IDS:
        CHECK_EQ_U(count_id(r, (uint16_t)e->id) + count_id(r, (uint16_t)e->n), r->n);
        break;
    case E_FIRST_TYPE:
        CHECK(r->n > 0 && r->v[0].type == e->type);
        break;
    case E_EMPTY_STDOUTS:
        for (size_t i = 0; i < r->n; i++)
            n += r->v[i].type == FCGI_STDOUT && r->v[i].len == 0;
        CHECK_EQ_U(n, e->n);
        break;
    case E_VALUES:
        CHECK_EQ_U(r->n, 1);
        if (r->n == 1)
            check_values(tc, &r->v[0], e->text);
        break;
    case E_UNKNOWN_TYPE:
        check_unknown_type(tc, r, e->type);
        break;
    }
}

/* The expectations on the text of the STDOUT and STDERR streams. */
static void check_text(struct test_counts *tc, const struct expect *e, const struct side *s)
{
    struct buf text = {0}, part = {0};
    if (e->kind == E_STDERR_IS || e->kind == E_STDERR_HAS)
        stream_of(&s->r, FCGI_STDERR, (uint16_t)e->id, &text);
    else if (e->kind != E_STDERR_REPEATED)
        text_of(s, e->id, &text);
    switch (e->kind) {
    case E_HAS:
    case E_LACKS:
        CHECK((find_bytes(text.data, text.len, e->text, e->text_len) >= 0) == (e->kind == E_HAS));
        break;
    case E_STARTS:
        CHECK(text.len > e->text_len && memcmp(text.data, e->text, e->text_len) == 0);
        break;
    case E_STDOUT_IS:
    case E_STDERR_IS:
        CHECK(buf_eq(&text, e->text, e->text_len));
        break;
    case E_BODY_IS:
        body_of(&text, &part);
        CHECK(buf_eq(&part, e->text, e->text_len));
        break;
    case E_STDERR_HAS:
        CHECK(find_bytes(text.data, text.len, e->text, e->text_len) >= 0);
        break;
    case E_STDERR_REPEATED:
        CHECK(stderr_is_repeated(&s->r, (uint16_t)e->id, e->text, e->text_len, e->n));
        break;
    case E_PAIR:
    case E_FILLED_PAIR:
    case E_NO_FILLED_PAIR:
        if (e->kind == E_PAIR)
            buf_put(&part, e->text, e->text_len);
        for (size_t i = 0; e->kind != E_PAIR && i < e->n; i++)
            buf_put(&part, &e->fill, 1);
        CHECK(report_has_pair(&text, (const uint8_t *)e->name, e->name_len, part.data, part.len) ==
              (e->kind != E_NO_FILLED_PAIR));
        break;
    }
    buf_free(&text);
    buf_free(&part);
}

/* One expectation; `good` is the reference run (NULL for the reference run itself). */
static void check_expect(struct test_counts *tc, const struct expect *e, const struct side *s,
                         const struct side *good)
{
    if (e->kind < E_FRAMING)
        check_connection(tc, e, s);
    else if (e->kind < E_HAS)
        check_records(tc, e, &s->r);
    else if (e->kind < E_SAME_OUTPUT)
        check_text(tc, e, s);
    else if (e->kind == E_SAME_OUTPUT)
        CHECK(buf_eq(&s->out, good->out.data, good->out.len));
    else if (e->kind == E_SAME_STATE)
        CHECK_EQ_U(s->state, good->state);
    else
        e->check(tc, s, good);
}

/* Whether a list compares with the reference run. */
static bool compares(const struct expect *list)
{
    for (const struct expect *e = list; e && e->kind != E_END; e++)
        if (e->kind == E_SAME_OUTPUT || e->kind == E_SAME_STATE || e->kind == E_COMPARE)
            return true;
    return false;
}

/* Runs the row's input on a fresh connection with `faults` and checks `list`
 * (against the reference run `good`, if any). *keep, if given, keeps the run. */
static void run_side(struct test_counts *tc, const struct conn_case *c, const struct wire *w, fault_set faults,
                     const struct expect *list, const struct side *good, struct side *keep)
{
    struct fx f;
    fx_init(&f);
    const struct conn_config *cfg = &c->config;
    if (cfg->max_reqs)
        f.limits.max_reqs = cfg->max_reqs;
    if (cfg->max_conns)
        f.limits.max_conns = cfg->max_conns;
    if (cfg->roles)
        f.limits.roles = cfg->roles;
    if (cfg->max_params_bytes)
        f.limits.max_params_bytes = cfg->max_params_bytes;
    if (cfg->no_mpx)
        f.limits.mpx = false;
    f.limits.faults = faults;
    f.c = fcgi_conn_new(&f.limits, &f.load, 1, cfg->overloaded, f.now);
    struct side s = {.input = w, .f = &f};
    s.taken = fx_send(&f, w);
    s.state = fcgi_conn_state(f.c);
    snprintf(s.reason, sizeof(s.reason), "%s", fcgi_conn_close_reason(f.c));
    s.fatal = fcgi_conn_fatal(f.c);
    s.wants_input = fcgi_conn_wants_input(f.c);
    s.active = f.load.active_requests;
    s.r = parse_records(&f.out);
    s.out = f.out;
    for (size_t i = 0; list && list[i].kind != E_END; i++) {
        unsigned long failed = tc->failed;
        check_expect(tc, &list[i], &s, good);
        if (tc->failed != failed)
            printf("    %s: expectation %zu of the run %s\n", c->name, i + 1,
                   faults ? "with the fault" : "without faults");
    }
    f.out = (struct buf){0};
    fx_close(tc, &f);
    s.f = NULL;
    if (keep) {
        *keep = s;
    } else {
        recs_free(&s.r);
        buf_free(&s.out);
    }
}

void run_case(struct test_counts *tc, const char *label, const struct conn_case *c)
{
    unsigned long failed = tc->failed;
    struct wire w;
    wire_init(&w);
    put_ops(&w, c->input);
    struct side good = {0};
    bool reference = !c->faults || c->want || compares(c->faulty);
    if (reference)
        run_side(tc, c, &w, 0, c->want, NULL, &good);
    if (c->faults)
        run_side(tc, c, &w, c->faults, c->faulty, reference ? &good : NULL, NULL);
    recs_free(&good.r);
    buf_free(&good.out);
    buf_free(&w.b);
    if (tc->failed != failed)
        printf("  in %s%s\n", label, c->name);
}
