/* The harness of the connection state machine tests (fcgi_conn.h):
 * test_conn_protocol.c (no fault) and test_conn_faults.c (the fault modes).
 *
 * A test builds the inbound bytes with the codec's encoders, feeds them to a fresh
 * connection the way the server's event loop would, and decodes every record it
 * queues. The connection is pure, so no sockets and no real clock: time is a number
 * the test advances. Every connection ends with fx_close, which checks the shared
 * request counter is back to zero, so a leaked request shows up here as well as in
 * ASan.
 *
 * Most tests are rows of a table (struct conn_case): the input as a list of record
 * operations (struct op), and what the output and the connection's state must show
 * (struct expect), run by run_case. Tests of another shape (several steps on one
 * connection, timers, generated inputs) are functions using the same helpers. */
#ifndef CONN_HARNESS_H
#define CONN_HARNESS_H

#include "fcgi_codec.h"
#include "fcgi_conn.h"
#include "faults.h"
#include "test_main.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The clock at connection start; not 0, because 0 means "no timer" in the API. */
#define T0 1000u
/* The largest amount the output may pass out_high_water by: one pump step can
 * add one full record plus the small records that end a request. */
#define OUT_SLACK (FCGI_MAX_RECORD + 64u)

typedef void (*test_fn)(struct test_counts *tc);

/* Runs one test and names it if it added failures, since CHECK lines point into helpers. */
void run_test(struct test_counts *tc, const char *name, test_fn fn);
#define RUN(fn) run_test(tc, #fn, fn)

/* ---- growable byte buffers ------------------------------------------------------ */

struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

void *xrealloc(void *p, size_t n);
void buf_put(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_free(struct buf *b);
/* Position of needle in hay, or -1; written out because memmem is not C11. */
long find_bytes(const uint8_t *hay, size_t hay_len, const void *needle, size_t needle_len);
bool buf_has(const struct buf *b, const char *text);
bool buf_eq(const struct buf *b, const void *data, size_t len);

/* ---- inbound records ------------------------------------------------------------ */

/* The bytes a web server would send. pad_len < 0 pads the usual way (to a
 * multiple of 8, zero bytes); otherwise every record gets pad_len bytes of pad_byte. */
struct wire {
    struct buf b;
    int pad_len;
    uint8_t pad_byte;
    size_t params_bytes; /* content of every PARAMS record so far */
};

void wire_init(struct wire *w);
/* Frees what an initialised wire holds and starts it again. */
void wire_reset(struct wire *w);
void put_record_v(struct wire *w, uint8_t version, uint8_t type, uint16_t id, const void *content, size_t len);
void put_record(struct wire *w, uint8_t type, uint16_t id, const void *content, size_t len);
/* A stream's data cut into records of at most `piece` bytes (no terminator). */
void put_stream_pieces(struct wire *w, uint8_t type, uint16_t id, const void *data, size_t len, size_t piece);
void put_stream(struct wire *w, uint8_t type, uint16_t id, const void *data, size_t len);
void put_end(struct wire *w, uint8_t type, uint16_t id);
void put_begin(struct wire *w, uint16_t id, uint16_t role, uint8_t flags);
void nv_put(struct buf *b, const void *name, size_t name_len, const void *value, size_t value_len);
void nv_put_text(struct buf *b, const char *name, const char *value);
/* BEGIN, PARAMS {QUERY_STRING, REQUEST_METHOD}, end of PARAMS, STDIN, end of STDIN. */
void put_request(struct wire *w, uint16_t id, uint16_t role, uint8_t flags, const char *query, const char *stdin_text);
/* BEGIN, the given (encoded) PARAMS, end of PARAMS, STDIN, end of STDIN. */
void put_request_with(struct wire *w, uint16_t id, uint16_t role, uint8_t flags, const struct buf *params,
                      const void *stdin_data, size_t stdin_len);
void put_get_values(struct wire *w, const char *const *names, size_t count);
/* A mixed conversation, used where the way bytes arrive must not matter: GET_VALUES,
 * a Responder and a Filter multiplexed, an unknown type, an Authorizer, and a last
 * Responder request with FCGI_KEEP_CONN clear. */
void put_conversation(struct wire *w);

/* ---- outbound records ----------------------------------------------------------- */

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
struct recs parse_records(const struct buf *b);
void recs_free(struct recs *r);
/* Records of `type` for `id` (id < 0: any id). */
size_t count_records(const struct recs *r, uint8_t type, int id);
size_t count_id(const struct recs *r, uint16_t id);
size_t count_end_requests(const struct buf *b);
/* Concatenation of one stream's contents for one request. */
void stream_of(const struct recs *r, uint8_t type, uint16_t id, struct buf *out);
/* The first END_REQUEST of `id`; false if there is none or it is malformed. */
bool end_of(const struct recs *r, uint16_t id, struct fcgi_end_request *out);
/* Position of the first record of `type` for `id`, or r->n. */
size_t first_of(const struct recs *r, uint8_t type, uint16_t id);
/* Position of the first record of `type` (any id), or r->n. */
size_t first_type(const struct recs *r, uint8_t type);
bool rec_same(const struct rec *a, const struct rec *b);
/* The HTTP body of a CGI response: what follows the blank line. */
void body_of(const struct buf *cgi, struct buf *body);
/* The probe's report has the pair as ["NAME","VALUE"] (ASCII here, so verbatim). */
bool report_has_pair(const struct buf *out, const uint8_t *name, size_t name_len, const uint8_t *value,
                     size_t value_len);

/* What every record the reference writes must look like. */
void check_framing(struct test_counts *tc, const struct recs *r);
/* One request's answer: its streams each end with exactly one empty record after
 * all their data, and exactly one END_REQUEST comes last with the given statuses.
 * A refused request (protocol status other than REQUEST_COMPLETE) gets END_REQUEST alone. */
void check_answer(struct test_counts *tc, const struct recs *r, uint16_t id, uint32_t app_status,
                  uint8_t protocol_status);

/* ---- a connection under test ---------------------------------------------------- */

struct fx {
    struct fcgi_limits limits; /* the connection keeps a pointer: fx must not move */
    struct fcgi_load load;
    struct fcgi_conn *c;
    uint64_t now;
    struct buf out; /* everything the connection has queued so far */
};

/* The command line's default limits. */
void fx_init(struct fx *f);
void fx_open(struct fx *f);
/* A fresh connection with the default limits and the given faults. */
void fx_open_faults(struct fx *f, fault_set faults);
/* Takes everything queued, as a socket that accepts all writes would. */
void fx_drain(struct fx *f);
/* Feeds all of the bytes (draining when the connection stops taking input, as the
 * event loop would), then drains. Returns the bytes taken: fewer once it is closing. */
size_t fx_send_bytes(struct fx *f, const uint8_t *data, size_t len);
size_t fx_send(struct fx *f, const struct wire *w);
bool fx_closing(const struct fx *f);
void fx_close(struct test_counts *tc, struct fx *f);
/* An event loop's view of a connection whose peer reads and writes promptly:
 * each turn reads what the connection wants of `w` (all of it that is left, as
 * if it were waiting in the socket), then writes at most `write_size` bytes. */
void fx_event_loop(struct fx *f, const struct wire *w, size_t write_size);

/* The whole run of one connection over some input, for tests that compare runs. */
struct run {
    struct buf out;
    enum fcgi_conn_state state;
    char reason[160];
    size_t taken;
    bool fatal;      /* fcgi_conn_fatal: exit-on-malformed wants the process gone */
    bool wants_input;
    unsigned active; /* requests still active when the input ran out */
};

/* run_wire with limits of the test's choosing, on a connection that may start
 * past max_conns. */
void run_limits(struct test_counts *tc, const struct fcgi_limits *limits, bool overloaded, const struct wire *w,
                struct run *result);
void run_wire(struct test_counts *tc, fault_set faults, const struct wire *w, struct run *result);
void runs_free(struct run *a, struct run *b);

static inline fault_set with(enum fault f) { return (fault_set)1 << f; }

/* ---- table rows: the input -------------------------------------------------------- */

enum op_kind {
    OP_END,          /* ends the list */
    OP_REQUEST,      /* put_request(id, role, flags, query a, stdin b) */
    OP_REQUEST_WITH, /* put_request_with(id, role, flags, the pairs in a, stdin b) */
    OP_BEGIN,        /* BEGIN_REQUEST(id, role, flags) */
    OP_RECORD,       /* one record: version, type, id, content a */
    OP_STREAM,       /* a (or n bytes of fill) as records of `type`, `piece` bytes at most */
    OP_PARAMS,       /* the pairs in a as PARAMS records, `piece` bytes at most, or two cut at `cut` */
    OP_FILLED_PAIR,  /* one pair as PARAMS records: name a, value n bytes of fill */
    OP_GET_VALUES,   /* GET_VALUES for the names in a, one per line */
    OP_PADDING,      /* every record from here on gets n bytes of padding, all `fill` */
    OP_BUILD,        /* build(w), for input a list cannot say */
};

/* Pairs are written "NAME=VALUE\nNAME=VALUE": a name ends at its first '=', and
 * sizeof gives the length, so names and values may hold NUL bytes. */
struct op {
    uint8_t kind, version, type, flags, fill;
    uint16_t id, role;
    const char *a, *b;
    size_t a_len, b_len;
    size_t n, piece, cut;
    void (*build)(struct wire *w);
};

#define OPS(...) ((const struct op[]){__VA_ARGS__, {.kind = OP_END}})
#define REQ(id_, role_, flags_, query, stdin_)                                                          \
    {.kind = OP_REQUEST, .id = (id_), .role = (role_), .flags = (flags_), .a = (query), .b = (stdin_)}
#define REQ_WITH(id_, role_, flags_, pairs, stdin_)                                                     \
    {.kind = OP_REQUEST_WITH, .id = (id_), .role = (role_), .flags = (flags_), .a = (pairs),            \
     .a_len = sizeof(pairs) - 1, .b = (stdin_), .b_len = sizeof(stdin_) - 1}
#define BEGIN(id_, role_, flags_) {.kind = OP_BEGIN, .id = (id_), .role = (role_), .flags = (flags_)}
#define REC_N(type_, id_, content, len)                                                                 \
    {.kind = OP_RECORD, .version = FCGI_VERSION_1, .type = (type_), .id = (id_), .a = (content), .a_len = (len)}
#define REC(type_, id_, content) REC_N(type_, id_, content, sizeof(content) - 1)
#define EMPTY(type_, id_) {.kind = OP_RECORD, .version = FCGI_VERSION_1, .type = (type_), .id = (id_)}
#define REC_VERSION(version_, type_, id_) {.kind = OP_RECORD, .version = (version_), .type = (type_), .id = (id_)}
#define PIECES(type_, id_, text, piece_)                                                                \
    {.kind = OP_STREAM, .type = (type_), .id = (id_), .a = (text), .a_len = sizeof(text) - 1, .piece = (piece_)}
#define STREAM(type_, id_, text) PIECES(type_, id_, text, 0)
#define FILLED(type_, id_, byte, len, piece_)                                                           \
    {.kind = OP_STREAM, .type = (type_), .id = (id_), .fill = (byte), .n = (len), .piece = (piece_)}
#define PARAMS_CUT(id_, pairs, at)                                                                      \
    {.kind = OP_PARAMS, .id = (id_), .a = (pairs), .a_len = sizeof(pairs) - 1, .cut = (at)}
#define PARAMS(id_, pairs) PARAMS_CUT(id_, pairs, 0)
#define FILLED_PAIR(id_, name, byte, len, piece_)                                                       \
    {.kind = OP_FILLED_PAIR, .id = (id_), .a = (name), .a_len = sizeof(name) - 1, .fill = (byte), .n = (len), \
     .piece = (piece_)}
#define GET_VALUES(names) {.kind = OP_GET_VALUES, .a = (names)}
#define PADDING(len, byte) {.kind = OP_PADDING, .n = (len), .fill = (byte)}
#define BUILD(fn) {.kind = OP_BUILD, .build = (fn)}

/* Appends what the list says to w. */
void put_ops(struct wire *w, const struct op *ops);

/* ---- table rows: what the run must show -------------------------------------------- */

/* One run of a row, as its checks see it. */
struct side {
    const struct wire *input;
    struct fx *f; /* the connection while the run's own checks run; NULL for the reference run */
    struct buf out;
    struct recs r; /* out, split into records */
    size_t taken;
    enum fcgi_conn_state state;
    char reason[160];
    bool fatal, wants_input;
    unsigned active;
};

/* `good` is the run without the fault: NULL when checking that run itself, or
 * when a row has no such run (see struct conn_case). */
typedef void (*side_check)(struct test_counts *tc, const struct side *s, const struct side *good);

/* In four groups, in this order: the connection, its records, the text of its
 * streams, and comparisons with the reference run (check_expect relies on it). */
enum expect_kind {
    E_END,             /* ends the list */
    E_TAKEN_ALL,       /* the connection took all of the input */
    E_STATE,           /* the connection's state is n */
    E_WANTS_INPUT,     /* fcgi_conn_wants_input is n */
    E_REASON,          /* the close reason contains text */
    E_NO_REASON,       /* the close reason is empty */
    E_SOME_REASON,     /* the close reason is not empty */
    E_FATAL,           /* fcgi_conn_fatal is n */
    E_ACTIVE,          /* n requests still active */
    E_WAKEUP,          /* fcgi_conn_next_wakeup is n */
    E_TAKES_NO_MORE,   /* a record more is not taken */
    E_LEN,             /* the output is n bytes */
    E_LEN_OVER,        /* the output is more than n bytes */
    E_PARAMS_SENT,     /* the input's PARAMS records carry n bytes of content */

    E_FRAMING,         /* check_framing */
    E_RECORDS,         /* n records */
    E_RECORDS_MIN,     /* n records or more */
    E_ANSWER,          /* check_answer(id, app status n, protocol_status) */
    E_COUNT,           /* n records of `type` for id (ANY_ID: any) */
    E_COUNT_MIN,       /* n or more of them */
    E_IDS,             /* n records for id */
    E_ONLY_ID,         /* every record is for id */
    E_ONLY_IDS,        /* every record is for id or for n */
    E_FIRST_TYPE,      /* the first record is of `type` */
    E_EMPTY_STDOUTS,   /* n empty STDOUT records, any id */
    E_VALUES,          /* one GET_VALUES_RESULT with exactly the pairs in text */
    E_UNKNOWN_TYPE,    /* one UNKNOWN_TYPE record, for `type` */

    E_HAS,             /* text is in the STDOUT of id (WHOLE_OUTPUT: anywhere in the output) */
    E_LACKS,           /* it is not */
    E_STARTS,          /* the STDOUT of id starts with text */
    E_STDOUT_IS,       /* the STDOUT of id is text */
    E_BODY_IS,         /* the HTTP body in the STDOUT of id is text */
    E_STDERR_IS,       /* the STDERR of id is text */
    E_STDERR_HAS,      /* the STDERR of id contains text */
    E_STDERR_REPEATED, /* the STDERR of id is text n times */
    E_PAIR,            /* the probe's report (as E_HAS finds text) has the pair name, text */
    E_FILLED_PAIR,     /* ... the pair name, n bytes of fill */
    E_NO_FILLED_PAIR,  /* ... does not have it */

    E_SAME_OUTPUT,     /* the output is the reference run's */
    E_SAME_STATE,      /* the state is the reference run's */
    E_CHECK,           /* check(tc, side, good) */
    E_COMPARE,         /* check(tc, side, good), which needs the reference run */
};

#define ANY_ID (-1)
#define WHOLE_OUTPUT (-1)

struct expect {
    uint8_t kind, type, protocol_status, fill;
    int id;
    unsigned long n;
    const char *text, *name;
    size_t text_len, name_len;
    side_check check;
};

#define EXPECT(...) ((const struct expect[]){__VA_ARGS__, {.kind = E_END}})
#define TAKEN_ALL {.kind = E_TAKEN_ALL}
#define IS_OPEN {.kind = E_STATE, .n = FCGI_CONN_OPEN}
#define IS_CLOSING {.kind = E_STATE, .n = FCGI_CONN_CLOSING}
#define WANTS_INPUT(yes) {.kind = E_WANTS_INPUT, .n = (yes)}
#define REASON(part) {.kind = E_REASON, .text = (part)}
#define NO_REASON {.kind = E_NO_REASON}
#define SOME_REASON {.kind = E_SOME_REASON}
#define FATAL(yes) {.kind = E_FATAL, .n = (yes)}
#define ACTIVE(count) {.kind = E_ACTIVE, .n = (count)}
#define WAKEUP(at) {.kind = E_WAKEUP, .n = (at)}
#define TAKES_NO_MORE {.kind = E_TAKES_NO_MORE}
#define OUT_LEN(len) {.kind = E_LEN, .n = (len)}
#define OUT_LEN_OVER(len) {.kind = E_LEN_OVER, .n = (len)}
#define FRAMING {.kind = E_FRAMING}
#define RECORDS(count) {.kind = E_RECORDS, .n = (count)}
#define RECORDS_MIN(count) {.kind = E_RECORDS_MIN, .n = (count)}
#define ANSWER(id_, app_status, status) {.kind = E_ANSWER, .id = (id_), .n = (app_status), .protocol_status = (status)}
#define COMPLETE(id_) ANSWER(id_, 0, FCGI_REQUEST_COMPLETE)
#define COUNT(type_, id_, count) {.kind = E_COUNT, .type = (type_), .id = (id_), .n = (count)}
#define COUNT_MIN(type_, id_, count) {.kind = E_COUNT_MIN, .type = (type_), .id = (id_), .n = (count)}
#define ENDS(count) COUNT(FCGI_END_REQUEST, ANY_ID, count)
#define IDS(id_, count) {.kind = E_IDS, .id = (id_), .n = (count)}
#define ONLY_ID(id_) {.kind = E_ONLY_ID, .id = (id_)}
#define ONLY_IDS(id_, other) {.kind = E_ONLY_IDS, .id = (id_), .n = (other)}
#define FIRST_TYPE(type_) {.kind = E_FIRST_TYPE, .type = (type_)}
#define EMPTY_STDOUTS(count) {.kind = E_EMPTY_STDOUTS, .n = (count)}
#define TEXT(kind_, id_, text_) {.kind = (kind_), .id = (id_), .text = (text_), .text_len = sizeof(text_) - 1}
#define HAS(id_, text) TEXT(E_HAS, id_, text)
#define LACKS(id_, text) TEXT(E_LACKS, id_, text)
#define OUT_HAS(text) HAS(WHOLE_OUTPUT, text)
#define OUT_LACKS(text) LACKS(WHOLE_OUTPUT, text)
#define STARTS(id_, text) TEXT(E_STARTS, id_, text)
#define STDOUT_IS(id_, text) TEXT(E_STDOUT_IS, id_, text)
#define BODY_IS(id_, text) TEXT(E_BODY_IS, id_, text)
#define STDERR_IS(id_, text) TEXT(E_STDERR_IS, id_, text)
#define STDERR_HAS(id_, text) TEXT(E_STDERR_HAS, id_, text)
#define STDERR_REPEATED(id_, text_, times)                                                              \
    {.kind = E_STDERR_REPEATED, .id = (id_), .text = (text_), .text_len = sizeof(text_) - 1, .n = (times)}
#define PAIR(id_, name_, value)                                                                         \
    {.kind = E_PAIR, .id = (id_), .name = (name_), .name_len = sizeof(name_) - 1, .text = (value),      \
     .text_len = sizeof(value) - 1}
#define FILLED_PAIR_IN(id_, name_, byte, len)                                                           \
    {.kind = E_FILLED_PAIR, .id = (id_), .name = (name_), .name_len = sizeof(name_) - 1, .fill = (byte), .n = (len)}
#define NO_FILLED_PAIR_IN(id_, name_, byte, len)                                                        \
    {.kind = E_NO_FILLED_PAIR, .id = (id_), .name = (name_), .name_len = sizeof(name_) - 1, .fill = (byte), \
     .n = (len)}
#define VALUES(pairs) {.kind = E_VALUES, .text = (pairs)}
#define UNKNOWN_TYPE_FOR(type_) {.kind = E_UNKNOWN_TYPE, .type = (type_)}
#define PARAMS_SENT(len) {.kind = E_PARAMS_SENT, .n = (len)}
#define SAME_OUTPUT {.kind = E_SAME_OUTPUT}
#define SAME_STATE {.kind = E_SAME_STATE}
#define CHECKED_BY(fn) {.kind = E_CHECK, .check = (fn)}
#define COMPARED_BY(fn) {.kind = E_COMPARE, .check = (fn)}

/* Settings of a row's connection; zero keeps the command line's default. */
struct conn_config {
    unsigned max_reqs, max_conns, roles;
    size_t max_params_bytes;
    bool no_mpx;
    bool overloaded; /* the connection starts past max_conns */
};

/* One row: the input, run without faults (checked against `want`) and, for a
 * fault row, again with `faults` (checked against `faulty`, which may compare
 * with the first run). A fault row whose `want` is NULL and whose `faulty`
 * does not compare runs only with the fault. */
struct conn_case {
    const char *name;
    fault_set faults;
    struct conn_config config;
    const struct op *input;
    const struct expect *want;
    const struct expect *faulty;
};

/* Runs one row; `label` prefixes its name when a check fails. */
void run_case(struct test_counts *tc, const char *label, const struct conn_case *c);

/* A GET_VALUES_RESULT with exactly the pairs expected ("NAME=VALUE" lines). */
void check_values(struct test_counts *tc, const struct rec *rec, const char *pairs);

#endif
