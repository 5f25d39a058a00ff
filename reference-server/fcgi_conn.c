#include "fcgi_conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi_codec.h"
#include "fcgi_request.h"

/* Output is cut into records of at most this much content: a multiple of 8,
 * so that only a stream's last record needs padding. */
#define OUTPUT_RECORD_CONTENT 65528u
#define MIN_OUTPUT_RECORD_CONTENT 4096u
/* Finished ids remembered by the go-id-reuse fault (Go kept all of them). */
#define FINISHED_IDS_REMEMBERED 1024u
/* Fault params-8k-buffer and stdin-stall-40k: the sizes of the buggy buffers. */
#define PARAMS_8K_BUFFER 8192u
#define STDIN_STALL_AT 40960u

struct fcgi_conn {
    const struct fcgi_limits *limits;
    struct fcgi_load *load;
    unsigned long id;
    bool overloaded;
    uint64_t now_ms;
    enum fcgi_conn_state state;
    bool input_eof;
    bool close_when_idle; /* a request without FCGI_KEEP_CONN has ended */
    struct byte_queue in;
    struct byte_queue out;
    struct fcgi_request **reqs;
    size_t reqs_count;
    size_t reqs_alloc;
    /* The last ended request, its buffers kept: on a kept connection the next
     * request reuses them instead of three allocations that grow step by step. */
    struct fcgi_request *spare_request;
    uint16_t *finished_ids; /* go-id-reuse fault only; a ring */
    size_t finished_count;
    unsigned long requests_ended;
    bool fatal;         /* fault exit-on-malformed: the server must exit */
    bool input_stalled; /* fault stdin-stall-40k: reads nothing more, ever */
    /* fault get-values-after-requests: GET_VALUES contents held until no request is
     * active, each as a 2-byte length and the content */
    struct byte_queue held_get_values;
    char close_reason[160];
};

static bool fault(const struct fcgi_conn *c, enum fault f) { return fault_on(c->limits->faults, f); }

static void conn_log(const struct fcgi_conn *c, const char *fmt, ...)
{
    if (!c->limits->log)
        return;
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    c->limits->log(c->id, message);
}

/* A protocol error or a fault that drops the connection: stop reading, send what
 * is queued, close. Requests in flight are dropped without END_REQUEST. */
static void conn_fail(struct fcgi_conn *c, const char *fmt, ...)
{
    if (c->state == FCGI_CONN_CLOSING)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->close_reason, sizeof(c->close_reason), fmt, ap);
    va_end(ap);
    c->state = FCGI_CONN_CLOSING;
}

/* Malformed input: closes the connection, or with exit-on-malformed, the process. */
static void conn_malformed(struct fcgi_conn *c, const char *fmt, ...)
{
    if (c->state == FCGI_CONN_CLOSING)
        return;
    char reason[sizeof(c->close_reason)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    conn_fail(c, "%s", reason);
    if (fault(c, FAULT_EXIT_ON_MALFORMED) || fault(c, FAULT_ABORT_ON_MALFORMED))
        c->fatal = true;
}

/* ---- output ------------------------------------------------------------ */

static void emit_record(struct fcgi_conn *c, uint8_t type, uint16_t request_id, const uint8_t *content,
                        size_t len)
{
    uint8_t header[FCGI_HEADER_LEN];
    static const uint8_t zeros[8];
    uint8_t padding = fault(c, FAULT_UNALIGNED_OUTPUT) ? 0 : fcgi_padding_for(len);
    struct fcgi_header h = {FCGI_VERSION_1, type, request_id, (uint16_t)len, padding};
    fcgi_header_encode(&h, header);
    if (!byte_queue_append(&c->out, header, sizeof(header)) || !byte_queue_append(&c->out, content, len) ||
        !byte_queue_append(&c->out, zeros, padding))
        conn_fail(c, "output queue over its limit");
}

/* The id an application record goes out with: its own, unless a fault says 0. */
static uint16_t reply_id(const struct fcgi_conn *c, uint16_t id)
{
    return fault(c, FAULT_REPLY_ID_ZERO) ? 0 : id;
}

static void emit_stream_chunk(struct fcgi_conn *c, struct fcgi_request *req, uint8_t type,
                              const uint8_t *data, size_t len)
{
    uint8_t wire_type = type == FCGI_STDOUT && fault(c, FAULT_STDOUT_AS_DATA) ? FCGI_DATA : type;
    emit_record(c, wire_type, reply_id(c, req->id), data, len);
    if (type == FCGI_STDOUT && c->requests_ended > 0 && fault(c, FAULT_MISFRAME_ON_REUSE)) {
        static const uint8_t stray = 0;
        if (!byte_queue_append(&c->out, &stray, 1))
            conn_fail(c, "output queue over its limit");
    }
    if (type == FCGI_STDOUT && len > 0 && !(req->flags & REQ_STDOUT_SENT)) {
        req->flags |= REQ_STDOUT_SENT;
        if (fault(c, FAULT_STDOUT_AFTER_EMPTY))
            emit_record(c, FCGI_STDOUT, reply_id(c, req->id), NULL, 0);
    }
}

static void emit_end_request(struct fcgi_conn *c, uint16_t id, uint32_t app_status, uint8_t protocol_status)
{
    uint8_t body[8];
    struct fcgi_end_request end = {fault(c, FAULT_APP_STATUS_ZERO) ? 0 : app_status, protocol_status};
    fcgi_end_request_encode(&end, body);
    size_t body_len = fault(c, FAULT_END_REQUEST_SHORT_BODY) ? 5 : sizeof(body);
    emit_record(c, FCGI_END_REQUEST, reply_id(c, id), body, body_len);
    if (fault(c, FAULT_END_REQUEST_TWICE))
        emit_record(c, FCGI_END_REQUEST, reply_id(c, id), body, body_len);
}

/* Two marks on the output queue. Input is read while the queue is below the high
 * mark; application output only fills it to half of that. A long response thus
 * always leaves room to read ABORT_REQUEST, GET_VALUES or another request. */
static bool output_full(const struct fcgi_conn *c) { return byte_queue_len(&c->out) >= c->limits->out_high_water; }
static bool streams_full(const struct fcgi_conn *c)
{
    return byte_queue_len(&c->out) >= c->limits->out_high_water / 2;
}

/* Content for the next output record: up to the streaming mark, but never less
 * than a small record's worth, nor more than one record holds. */
static size_t stream_room(const struct fcgi_conn *c)
{
    size_t mark = c->limits->out_high_water / 2;
    size_t room = mark > byte_queue_len(&c->out) ? mark - byte_queue_len(&c->out) : 0;
    if (room < MIN_OUTPUT_RECORD_CONTENT)
        room = MIN_OUTPUT_RECORD_CONTENT;
    return room < OUTPUT_RECORD_CONTENT ? room : OUTPUT_RECORD_CONTENT;
}

/* ---- the request table --------------------------------------------------- */

static struct fcgi_request *find_request(const struct fcgi_conn *c, uint16_t id)
{
    for (size_t i = 0; i < c->reqs_count; i++)
        if (c->reqs[i]->id == id)
            return c->reqs[i];
    return NULL;
}

static bool id_finished_before(const struct fcgi_conn *c, uint16_t id)
{
    size_t n = c->finished_count < FINISHED_IDS_REMEMBERED ? c->finished_count : FINISHED_IDS_REMEMBERED;
    for (size_t i = 0; i < n; i++)
        if (c->finished_ids[i] == id)
            return true;
    return false;
}

static void remember_finished_id(struct fcgi_conn *c, uint16_t id)
{
    if (!c->finished_ids) {
        c->finished_ids = calloc(FINISHED_IDS_REMEMBERED, sizeof(*c->finished_ids));
        if (!c->finished_ids)
            return;
    }
    c->finished_ids[c->finished_count++ % FINISHED_IDS_REMEMBERED] = id;
}

static struct fcgi_request *add_request(struct fcgi_conn *c, uint16_t id, uint16_t role, bool keep_conn)
{
    if (c->reqs_count == c->reqs_alloc) {
        size_t alloc = c->reqs_alloc ? c->reqs_alloc * 2 : 4;
        struct fcgi_request **grown = realloc(c->reqs, alloc * sizeof(*grown));
        if (!grown)
            return NULL;
        c->reqs = grown;
        c->reqs_alloc = alloc;
    }
    struct fcgi_request *req = c->spare_request;
    if (req) {
        c->spare_request = NULL;
        struct byte_queue params_stream = req->params_stream, stdout_spool = req->stdout_spool,
                          stderr_spool = req->stderr_spool;
        memset(req, 0, sizeof(*req));
        req->params_stream = params_stream;
        req->stdout_spool = stdout_spool;
        req->stderr_spool = stderr_spool;
    } else {
        req = calloc(1, sizeof(*req));
        if (!req)
            return NULL;
        byte_queue_init(&req->params_stream, c->limits->max_params_bytes);
        byte_queue_init(&req->stdout_spool, c->limits->max_spool_bytes);
        byte_queue_init(&req->stderr_spool, c->limits->max_spool_bytes);
    }
    req->clock_ms = &c->now_ms;
    req->id = id;
    req->role = role;
    req->keep_conn = keep_conn;
    req->faults = c->limits->faults;
    req->app = role == FCGI_AUTHORIZER        ? &app_authorizer
               : role == FCGI_FILTER          ? &app_filter
               : c->limits->responder_app     ? c->limits->responder_app
                                              : &app_probe;
    c->reqs[c->reqs_count++] = req; /* its slot in load->active_requests was taken by the caller */
    return req;
}

static void free_request(struct fcgi_request *req)
{
    if (req->app && req->app->destroy)
        req->app->destroy(req);
    byte_queue_free(&req->params_stream);
    byte_queue_free(&req->stdout_spool);
    byte_queue_free(&req->stderr_spool);
    free(req->params);
    free(req);
}

/* A spare request keeps at most this much storage, so that an idle connection
 * does not hold on to what one large request needed. */
#define SPARE_REQUEST_MAX_BYTES (32u << 10)

/* Keeps the request's buffers (emptied) for the connection's next request, or frees it. */
static void retire_request(struct fcgi_conn *c, struct fcgi_request *req)
{
    size_t kept = req->params_stream.alloc + req->stdout_spool.alloc + req->stderr_spool.alloc;
    if (c->spare_request || kept > SPARE_REQUEST_MAX_BYTES) {
        free_request(req);
        return;
    }
    if (req->app && req->app->destroy)
        req->app->destroy(req);
    req->app = NULL;
    free(req->params);
    req->params = NULL;
    byte_queue_clear(&req->params_stream);
    byte_queue_clear(&req->stdout_spool);
    byte_queue_clear(&req->stderr_spool);
    c->spare_request = req;
}

static void remove_request(struct fcgi_conn *c, size_t index)
{
    struct fcgi_request *req = c->reqs[index];
    if (fault(c, FAULT_GO_ID_REUSE))
        remember_finished_id(c, req->id);
    c->reqs[index] = c->reqs[--c->reqs_count];
    atomic_fetch_sub(&c->load->active_requests, 1);
    retire_request(c, req);
}

static void answer_get_values(struct fcgi_conn *c, const uint8_t *content, size_t len);
static enum fcgi_decode_status decode_pair(const struct fcgi_conn *c, const uint8_t *buf, size_t len,
                                           struct fcgi_nv *out, size_t *consumed);

/* Types only applications send (spec Appendix A); receiving one is a web server bug. */
static bool sent_by_applications(uint8_t type)
{
    return type == FCGI_END_REQUEST || type == FCGI_STDOUT || type == FCGI_STDERR ||
           type == FCGI_GET_VALUES_RESULT || type == FCGI_UNKNOWN_TYPE;
}

/* Input that is odd but tolerated; only exit-on-malformed makes it fatal. */
static void conn_malformed_if_fault(struct fcgi_conn *c, const char *what, unsigned detail)
{
    if (!fault(c, FAULT_EXIT_ON_MALFORMED) && !fault(c, FAULT_ABORT_ON_MALFORMED))
        return;
    char reason[96];
    snprintf(reason, sizeof(reason), what, detail);
    conn_malformed(c, "%s (fault exit-on-malformed or abort-on-malformed)", reason);
}

/* After an END_REQUEST: close once idle unless FCGI_KEEP_CONN asked otherwise. */
static void after_end_request(struct fcgi_conn *c, bool keep_conn)
{
    bool close = !keep_conn;
    if (fault(c, FAULT_KEEP_CONN_CLOSE))
        close = true;
    if (fault(c, FAULT_KEEP_CONN_NEVER_CLOSE))
        close = false;
    if (close)
        c->close_when_idle = true;
    while (c->reqs_count == 0 && byte_queue_len(&c->held_get_values) >= 2) {
        const uint8_t *held = byte_queue_peek(&c->held_get_values);
        size_t len = (size_t)held[0] << 8 | held[1];
        answer_get_values(c, held + 2, len);
        byte_queue_consume(&c->held_get_values, 2 + len);
    }
    if (c->close_when_idle && c->reqs_count == 0 && c->state == FCGI_CONN_OPEN)
        c->state = FCGI_CONN_CLOSING;
}

/* The empty records that end the output streams (STDERR only if it was used). */
static void emit_terminators(struct fcgi_conn *c, struct fcgi_request *req)
{
    if (!fault(c, FAULT_NO_EMPTY_STDOUT))
        emit_stream_chunk(c, req, FCGI_STDOUT, NULL, 0);
    if ((req->flags & REQ_STDERR_USED) && !fault(c, FAULT_NO_EMPTY_STDERR))
        emit_stream_chunk(c, req, FCGI_STDERR, NULL, 0);
}

/* Ends request `index`: stream terminators, END_REQUEST, and its id is free. */
static void end_request(struct fcgi_conn *c, size_t index)
{
    struct fcgi_request *req = c->reqs[index];
    uint16_t id = req->id;
    bool keep_conn = req->keep_conn;
    emit_terminators(c, req);
    if (!(req->flags & REQ_END_SENT))
        emit_end_request(c, id, req->app_status, FCGI_REQUEST_COMPLETE);
    remove_request(c, index);
    c->requests_ended++;
    after_end_request(c, keep_conn);
}

/* A request refused at BEGIN_REQUEST: END_REQUEST alone, no streams. */
static void reject_request(struct fcgi_conn *c, uint16_t id, bool keep_conn, uint8_t protocol_status)
{
    emit_end_request(c, id, 0, protocol_status);
    after_end_request(c, keep_conn);
}

/* Emits one record of a spool's data, if there is any and room for it. */
static bool emit_from_spool(struct fcgi_conn *c, struct fcgi_request *req, struct byte_queue *spool, uint8_t type)
{
    if (byte_queue_len(spool) == 0 || streams_full(c))
        return false;
    size_t n = byte_queue_len(spool);
    size_t room = stream_room(c);
    if (n > room)
        n = room;
    emit_stream_chunk(c, req, type, byte_queue_peek(spool), n);
    byte_queue_consume(spool, n);
    return true;
}

/* Moves spooled output into records, asks apps for more, and ends finished
 * requests, while the output queue has room. Requests take turns, one record
 * each per round, so a long response does not hold back a short one. */
static void pump(struct fcgi_conn *c)
{
    bool progress = true;
    while (progress && c->state == FCGI_CONN_OPEN) {
        progress = false;
        size_t i = 0;
        while (i < c->reqs_count && c->state == FCGI_CONN_OPEN) {
            struct fcgi_request *req = c->reqs[i];
            if ((req->flags & REQ_FINISHED) && !(req->flags & REQ_END_SENT) && fault(c, FAULT_END_BEFORE_STDOUT)) {
                emit_end_request(c, req->id, req->app_status, FCGI_REQUEST_COMPLETE);
                req->flags |= REQ_END_SENT;
            }
            progress |= emit_from_spool(c, req, &req->stderr_spool, FCGI_STDERR);
            progress |= emit_from_spool(c, req, &req->stdout_spool, FCGI_STDOUT);
            bool drained = byte_queue_len(&req->stdout_spool) == 0 && byte_queue_len(&req->stderr_spool) == 0;
            if (drained && (req->flags & REQ_FINISHED) && !output_full(c)) {
                end_request(c, i);
                progress = true;
                continue; /* slot i now holds another request */
            }
            if (drained && (req->flags & REQ_WANTS_WRITABLE) && !streams_full(c)) {
                req->flags &= ~(unsigned)REQ_WANTS_WRITABLE;
                req->app->writable(req);
                progress = true;
            }
            i++;
        }
    }
}

/* ---- inbound records ------------------------------------------------------ */

static void answer_get_values(struct fcgi_conn *c, const uint8_t *content, size_t len)
{
    if (fault(c, FAULT_GET_VALUES_IGNORED))
        return;
    char max_conns[16], max_reqs[16];
    unsigned advertised_conns = c->limits->max_conns * (fault(c, FAULT_MAX_CONNS_OVERSTATED) ? 10u : 1u);
    snprintf(max_conns, sizeof(max_conns), "%u", advertised_conns);
    snprintf(max_reqs, sizeof(max_reqs), "%u", c->limits->max_reqs);
    const struct {
        const char *name;
        const char *value;
    } known[] = {
        {"FCGI_MAX_CONNS", max_conns},
        {"FCGI_MAX_REQS", max_reqs},
        {"FCGI_MPXS_CONNS", c->limits->mpx ? "1" : "0"},
    };
    enum { KNOWN = sizeof(known) / sizeof(known[0]) };
    bool asked[KNOWN] = {false};
    bool unknown_asked = false;
    size_t pos = 0;
    while (pos < len) {
        struct fcgi_nv nv;
        size_t used;
        if (decode_pair(c, content + pos, len - pos, &nv, &used) != FCGI_DECODE_OK) {
            conn_malformed(c, "malformed GET_VALUES content");
            return;
        }
        pos += used;
        bool recognised = false;
        for (int k = 0; k < KNOWN; k++)
            if (nv.name_len == strlen(known[k].name) && memcmp(nv.name, known[k].name, nv.name_len) == 0)
                asked[k] = recognised = true;
        unknown_asked = unknown_asked || !recognised;
    }
    if (unknown_asked && fault(c, FAULT_GET_VALUES_UNKNOWN_NAME_HANG))
        return;
    uint8_t result[128];
    size_t result_len = 0;
    for (int k = 0; k < KNOWN; k++) {
        if (!asked[k] && !fault(c, FAULT_GET_VALUES_STREAM))
            continue;
        result_len += fcgi_nv_encode((const uint8_t *)known[k].name, strlen(known[k].name),
                                     (const uint8_t *)known[k].value, strlen(known[k].value),
                                     result + result_len, sizeof(result) - result_len);
    }
    uint16_t reply_to = fault(c, FAULT_GET_VALUES_ID_1) ? 1 : FCGI_NULL_REQUEST_ID;
    emit_record(c, FCGI_GET_VALUES_RESULT, reply_to, result, result_len);
    if (fault(c, FAULT_GET_VALUES_STREAM))
        emit_record(c, FCGI_GET_VALUES_RESULT, reply_to, NULL, 0);
    if (fault(c, FAULT_GET_VALUES_CLOSE)) {
        c->close_when_idle = true;
        if (c->reqs_count == 0)
            c->state = FCGI_CONN_CLOSING;
    }
}

static void handle_management(struct fcgi_conn *c, uint8_t type, const uint8_t *content, size_t len)
{
    if (c->reqs_count > 0 && fault(c, FAULT_MGMT_MID_REQUEST_CLOSE)) {
        conn_fail(c, "management record during a request (fault mgmt-mid-request-close)");
        return;
    }
    if (type == FCGI_GET_VALUES) {
        if (c->reqs_count > 0 && fault(c, FAULT_GET_VALUES_AFTER_REQUESTS)) {
            uint8_t prefix[2] = {(uint8_t)(len >> 8), (uint8_t)len};
            if (!byte_queue_append(&c->held_get_values, prefix, 2) ||
                !byte_queue_append(&c->held_get_values, content, len))
                conn_fail(c, "too many GET_VALUES held (fault get-values-after-requests)");
            return;
        }
        answer_get_values(c, content, len);
        return;
    }
    if (sent_by_applications(type)) {
        conn_malformed_if_fault(c, "a %u record sent to the application", type);
        if (c->state != FCGI_CONN_OPEN)
            return;
    }
    /* Spec §4.2: any management type the application does not understand, which
     * includes application types sent with the null request id. */
    if (fault(c, FAULT_UNKNOWN_TYPE_IGNORED))
        return;
    if (fault(c, FAULT_UNKNOWN_TYPE_CLOSE)) {
        conn_fail(c, "unknown management record type %u (fault unknown-type-close)", type);
        return;
    }
    uint8_t body[8];
    fcgi_unknown_type_encode(type, body);
    emit_record(c, FCGI_UNKNOWN_TYPE, FCGI_NULL_REQUEST_ID, body, sizeof(body));
}

static bool role_enabled(const struct fcgi_conn *c, uint16_t role)
{
    return role >= FCGI_RESPONDER && role <= FCGI_FILTER && (c->limits->roles & (1u << role));
}

static void handle_begin(struct fcgi_conn *c, uint16_t id, const uint8_t *content, size_t len)
{
    struct fcgi_begin_request begin;
    if (fcgi_begin_request_decode(content, len, &begin) != FCGI_DECODE_OK) {
        conn_malformed(c, "BEGIN_REQUEST id %u has a %zu-byte body, not 8", id, len);
        return;
    }
    bool keep_conn = fault(c, FAULT_FLAGS_EXACT_MATCH) ? begin.flags == FCGI_KEEP_CONN : begin.flags & FCGI_KEEP_CONN;
    if (fault(c, FAULT_GO_ID_REUSE) && (find_request(c, id) || id_finished_before(c, id))) {
        conn_fail(c, "received ID that is already in-flight: %u (fault go-id-reuse)", id);
        return;
    }
    if (find_request(c, id)) {
        /* A web server bug; the request in flight keeps the id and is served. */
        conn_log(c, "ignoring BEGIN_REQUEST for id %u, which is already active", id);
        conn_malformed_if_fault(c, "a second BEGIN_REQUEST for active id %u", id);
        return;
    }
    if (!role_enabled(c, begin.role) && fault(c, FAULT_UNKNOWN_ROLE_SERVED))
        begin.role = FCGI_RESPONDER;
    if (!role_enabled(c, begin.role)) {
        if (fault(c, FAULT_UNKNOWN_ROLE_CLOSE)) {
            conn_fail(c, "unknown role %u (fault unknown-role-close)", begin.role);
            return;
        }
        reject_request(c, id, keep_conn, FCGI_UNKNOWN_ROLE);
        return;
    }
    if (!c->limits->mpx && c->reqs_count > 0) {
        if (fault(c, FAULT_CANT_MPX_CLOSE)) {
            conn_fail(c, "a second concurrent request (fault cant-mpx-close)");
            return;
        }
        reject_request(c, id, keep_conn, FCGI_CANT_MPX_CONN);
        return;
    }
    /* The slot is taken before the check, so that workers sharing the counter
     * (--workers) cannot both take the last one. */
    bool too_many_reqs = atomic_fetch_add(&c->load->active_requests, 1) >= c->limits->max_reqs;
    if (c->overloaded || too_many_reqs) {
        atomic_fetch_sub(&c->load->active_requests, 1);
        if (fault(c, FAULT_OVERLOADED_SILENT_CLOSE))
            conn_fail(c, "over the limits (fault overloaded-silent-close)");
        else if (c->overloaded)
            reject_request(c, id, false, FCGI_OVERLOADED); /* past max_conns: say so, then free the slot */
        else
            reject_request(c, id, keep_conn, FCGI_OVERLOADED);
        return;
    }
    if (!add_request(c, id, begin.role, keep_conn)) {
        atomic_fetch_sub(&c->load->active_requests, 1);
        reject_request(c, id, keep_conn, FCGI_OVERLOADED);
    }
}

/* Keeps only the pairs that are whole within one record's content: what a
 * server that decodes every PARAMS record alone ends up with. */
static bool append_whole_pairs(struct byte_queue *stream, const uint8_t *content, size_t len)
{
    size_t pos = 0;
    struct fcgi_nv nv;
    size_t used;
    while (pos < len && fcgi_nv_decode(content + pos, len - pos, &nv, &used) == FCGI_DECODE_OK)
        pos += used;
    return byte_queue_append(stream, content, pos);
}

/* One pair as a reader that knows only 1-byte lengths decodes it: a length byte
 * with the top bit set is taken alone, as its low 7 bits (fault nv-long-length-1byte:
 * the 127/128 boundary bugs, where 128 reads as 0 and the rest misframes). */
static enum fcgi_decode_status decode_pair_with_1byte_lengths(const uint8_t *buf, size_t len,
                                                                   struct fcgi_nv *out, size_t *consumed)
{
    size_t pos = 0;
    size_t lengths[2];
    for (int i = 0; i < 2; i++) {
        if (pos >= len)
            return FCGI_DECODE_NEED_MORE;
        lengths[i] = buf[pos++] & 0x7f;
    }
    if (lengths[0] > len - pos || lengths[1] > len - pos - lengths[0])
        return FCGI_DECODE_BAD_LENGTH;
    *out = (struct fcgi_nv){buf + pos, lengths[0], buf + pos + lengths[0], lengths[1]};
    *consumed = pos + lengths[0] + lengths[1];
    return FCGI_DECODE_OK;
}

/* A 4-byte length prefix holding a value a single byte could carry. */
static bool short_length_in_long_form(const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    for (int i = 0; i < 2 && pos < len; i++) {
        if (!(buf[pos] & 0x80)) {
            pos++;
            continue;
        }
        if (len - pos < 4)
            return false;
        if (buf[pos] == 0x80 && buf[pos + 1] == 0 && buf[pos + 2] == 0 && buf[pos + 3] < 0x80)
            return true;
        pos += 4;
    }
    return false;
}

/* One pair as this server reads it: the codec's decoder, unless a fault misreads. */
static enum fcgi_decode_status decode_pair(const struct fcgi_conn *c, const uint8_t *buf, size_t len,
                                           struct fcgi_nv *out, size_t *consumed)
{
    if (fault(c, FAULT_NV_LONG_LENGTH_1BYTE))
        return decode_pair_with_1byte_lengths(buf, len, out, consumed);
    if (fault(c, FAULT_NV_LONG_FORM_SHORT_REJECTED) && short_length_in_long_form(buf, len))
        return FCGI_DECODE_BAD_LENGTH;
    return fcgi_nv_decode(buf, len, out, consumed);
}

/* Fault params-cut-at-nul: what strlen() on names and values leaves. */
static void cut_at_nul(const uint8_t *data, size_t *len)
{
    const uint8_t *nul = memchr(data, 0, *len);
    if (nul)
        *len = (size_t)(nul - data);
}

static bool decode_params(struct fcgi_conn *c, struct fcgi_request *req)
{
    const uint8_t *stream = byte_queue_peek(&req->params_stream);
    size_t len = byte_queue_len(&req->params_stream);
    /* Two passes: count, then fill an array of exactly that size. */
    for (int pass = 0; pass < 2; pass++) {
        size_t pos = 0, count = 0;
        while (pos < len) {
            struct fcgi_nv nv;
            size_t used;
            enum fcgi_decode_status st = decode_pair(c, stream + pos, len - pos, &nv, &used);
            if (st != FCGI_DECODE_OK) {
                conn_malformed(c, "request %u: malformed PARAMS at byte %zu of %zu (%s)", req->id, pos, len,
                          st == FCGI_DECODE_NEED_MORE ? "length cut short" : "length past the end");
                return false;
            }
            if (pass == 1 && fault(c, FAULT_PARAMS_CUT_AT_NUL)) {
                cut_at_nul(nv.name, &nv.name_len);
                cut_at_nul(nv.value, &nv.value_len);
            }
            if (pass == 1)
                req->params[count] = nv;
            count++;
            pos += used;
        }
        if (pass == 0) {
            req->params_count = count;
            req->params = count ? calloc(count, sizeof(*req->params)) : NULL;
            if (count && !req->params) {
                conn_fail(c, "out of memory for %zu params", count);
                return false;
            }
        }
    }
    return true;
}

/* PARAMS has ended: the app starts. With output-before-params-end it starts at
 * the first PARAMS record and takes the request as having no STDIN. */
static void start_request(struct fcgi_conn *c, struct fcgi_request *req, bool early)
{
    if (!decode_params(c, req))
        return;
    req->flags |= REQ_PARAMS_DONE;
    req->app->start(req);
    if (early && !(req->flags & REQ_FINISHED)) {
        req->flags |= REQ_STDIN_DONE;
        req->app->input(req, FCGI_STDIN, NULL, 0);
    }
}

static void handle_params(struct fcgi_conn *c, struct fcgi_request *req, const uint8_t *content, size_t len)
{
    if (req->flags & REQ_PARAMS_DONE)
        return; /* a late record of a finished stream */
    if (len > 0) {
        bool ok = fault(c, FAULT_PARAMS_SPLIT_PAIR_LOST) ? append_whole_pairs(&req->params_stream, content, len)
                                                         : byte_queue_append(&req->params_stream, content, len);
        if (!ok)
            conn_fail(c, "request %u: PARAMS over the limit of %zu bytes", req->id, c->limits->max_params_bytes);
        else if (fault(c, FAULT_PARAMS_8K_BUFFER) && byte_queue_len(&req->params_stream) > PARAMS_8K_BUFFER)
            conn_fail(c, "request %u: PARAMS over 8 KiB (fault params-8k-buffer)", req->id);
        else if (fault(c, FAULT_OUTPUT_BEFORE_PARAMS_END))
            start_request(c, req, true);
        return;
    }
    if (byte_queue_len(&req->params_stream) == 0 && fault(c, FAULT_EMPTY_PARAMS_CLOSE)) {
        conn_fail(c, "request %u: empty PARAMS (fault empty-params-close)", req->id);
        return;
    }
    start_request(c, req, false);
}

static void handle_input_stream(struct fcgi_conn *c, struct fcgi_request *req, uint8_t type,
                                const uint8_t *content, size_t len, uint8_t padding_length)
{
    unsigned done_flag = type == FCGI_STDIN ? REQ_STDIN_DONE : REQ_DATA_DONE;
    if (req->flags & done_flag)
        return;
    if (type == FCGI_DATA && req->role != FCGI_FILTER)
        return; /* only a Filter reads FCGI_DATA */
    if (!(req->flags & REQ_PARAMS_DONE)) {
        conn_fail(c, "request %u: %s before PARAMS ended", req->id, type == FCGI_STDIN ? "STDIN" : "DATA");
        return;
    }
    if (len == 0)
        req->flags |= done_flag;
    if (type == FCGI_STDIN && len > 0) {
        req->stdin_bytes += len;
        if (fault(c, FAULT_STDIN_STALL_40K) && req->stdin_bytes > STDIN_STALL_AT)
            c->input_stalled = true;
        bool dropped = (fault(c, FAULT_STDIN_FIRST_RECORD_ONLY) && (req->flags & REQ_STDIN_SEEN)) ||
                       (fault(c, FAULT_PADDED_STDIN_LOST) && padding_length > 0);
        req->flags |= REQ_STDIN_SEEN;
        if (dropped)
            return;
    }
    if (!(req->flags & REQ_FINISHED))
        req->app->input(req, type, content, len);
}

static void abort_request(struct fcgi_conn *c, struct fcgi_request *req)
{
    if (fault(c, FAULT_ABORT_IGNORED))
        return;
    if (fault(c, FAULT_ABORT_CLOSES_CONNECTION))
        c->close_when_idle = true;
    if (fault(c, FAULT_NO_END_AFTER_ABORT)) {
        bool keep_conn = req->keep_conn;
        emit_terminators(c, req);
        for (size_t i = 0; i < c->reqs_count; i++)
            if (c->reqs[i] == req)
                remove_request(c, i);
        after_end_request(c, keep_conn);
        return;
    }
    byte_queue_clear(&req->stdout_spool);
    byte_queue_clear(&req->stderr_spool);
    fcgi_request_finish(req, 0);
}

/* Fault begin-id-zero-served: id 0 is taken as an application request id. */
static bool served_as_request_zero(const struct fcgi_conn *c, const struct fcgi_header *h)
{
    if (!fault(c, FAULT_BEGIN_ID_ZERO_SERVED))
        return false;
    if (h->type == FCGI_BEGIN_REQUEST)
        return true;
    return find_request(c, 0) && (h->type == FCGI_PARAMS || h->type == FCGI_STDIN || h->type == FCGI_DATA ||
                                  h->type == FCGI_ABORT_REQUEST);
}

static void handle_record(struct fcgi_conn *c, const struct fcgi_header *h, const uint8_t *content)
{
    if (h->request_id == FCGI_NULL_REQUEST_ID && !served_as_request_zero(c, h)) {
        handle_management(c, h->type, content, h->content_length);
        return;
    }
    if (h->type == FCGI_BEGIN_REQUEST) {
        handle_begin(c, h->request_id, content, h->content_length);
        return;
    }
    struct fcgi_request *req = find_request(c, h->request_id);
    if (!req && h->type == FCGI_STDIN && c->reqs_count > 0 && fault(c, FAULT_FOREIGN_ID_STDIN_ACCEPTED))
        req = c->reqs[0];
    if (!req && fault(c, FAULT_LATE_RECORD_CLOSE)) {
        conn_fail(c, "a record for inactive id %u (fault late-record-close)", h->request_id);
        return;
    }
    if (!req)
        return; /* spec §3.3: records for inactive ids are ignored */
    switch (h->type) {
    case FCGI_ABORT_REQUEST:
        abort_request(c, req);
        break;
    case FCGI_PARAMS:
        handle_params(c, req, content, h->content_length);
        break;
    case FCGI_STDIN:
    case FCGI_DATA:
        handle_input_stream(c, req, h->type, content, h->content_length, h->padding_length);
        break;
    default:
        conn_log(c, "ignoring a record of type %u for request %u", h->type, h->request_id);
        if (sent_by_applications(h->type))
            conn_malformed_if_fault(c, "a %u record sent to the application", h->type);
        break;
    }
}

static void process_input(struct fcgi_conn *c)
{
    while (c->state == FCGI_CONN_OPEN && !output_full(c)) {
        size_t len = byte_queue_len(&c->in);
        const uint8_t *buf = byte_queue_peek(&c->in);
        struct fcgi_header h;
        if (fcgi_header_decode(buf, len, &h) != FCGI_DECODE_OK)
            break;
        if (h.version != FCGI_VERSION_1) {
            conn_malformed(c, "record with unsupported version %u", h.version);
            break;
        }
        if (h.content_length + h.padding_length > FCGI_MAX_CONTENT && fault(c, FAULT_REJECT_MAX_CONTENT_PADDING)) {
            conn_fail(c, "content plus padding over 65535 bytes (fault reject-max-content-padding)");
            break;
        }
        if (c->input_stalled)
            break;
        if (h.type == FCGI_BEGIN_REQUEST && h.request_id != FCGI_NULL_REQUEST_ID && c->reqs_count > 0 &&
            fault(c, FAULT_MPX_SERIALIZED))
            break; /* the next request waits until the current ones have ended */
        if (fault(c, FAULT_ID_HIGH_BYTE_DROPPED))
            h.request_id &= 0xff;
        size_t padding = fault(c, FAULT_PADDING_NOT_SKIPPED) ? 0 : h.padding_length;
        size_t size = FCGI_HEADER_LEN + h.content_length + padding;
        if (len < size)
            break;
        handle_record(c, &h, buf + FCGI_HEADER_LEN);
        byte_queue_consume(&c->in, size);
        pump(c);
    }
}

/* ---- public interface ------------------------------------------------------- */

struct fcgi_limits fcgi_limits_default(void)
{
    return (struct fcgi_limits){
        .max_conns = 1024,
        .max_reqs = 4096,
        .mpx = true,
        .roles = ROLE_MASK_ALL,
        .max_params_bytes = 1u << 20,
        .max_spool_bytes = 8u << 20,
        .out_high_water = 256u << 10,
        .faults = 0,
        .log = NULL,
    };
}

struct fcgi_conn *fcgi_conn_new(const struct fcgi_limits *limits, struct fcgi_load *load, unsigned long conn_id,
                                bool overloaded, uint64_t now_ms)
{
    struct fcgi_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->limits = limits;
    c->load = load;
    c->id = conn_id;
    c->overloaded = overloaded;
    c->now_ms = now_ms;
    c->state = FCGI_CONN_OPEN;
    byte_queue_init(&c->in, FCGI_MAX_RECORD);
    byte_queue_init(&c->held_get_values, 4 * FCGI_MAX_RECORD);
    /* High water plus the most one pump step or one inbound record can add. */
    byte_queue_init(&c->out, limits->out_high_water + 4 * FCGI_MAX_RECORD);
    return c;
}

void fcgi_conn_free(struct fcgi_conn *c)
{
    if (!c)
        return;
    while (c->reqs_count > 0) {
        atomic_fetch_sub(&c->load->active_requests, 1);
        free_request(c->reqs[--c->reqs_count]);
    }
    if (c->spare_request)
        free_request(c->spare_request);
    free(c->reqs);
    free(c->finished_ids);
    byte_queue_free(&c->in);
    byte_queue_free(&c->out);
    byte_queue_free(&c->held_get_values);
    free(c);
}

bool fcgi_conn_wants_input(const struct fcgi_conn *c)
{
    return c->state == FCGI_CONN_OPEN && !c->input_eof && !c->input_stalled && !output_full(c) &&
           byte_queue_room(&c->in) > 0;
}

uint8_t *fcgi_conn_input_space(struct fcgi_conn *c, size_t *len)
{
    if (!fcgi_conn_wants_input(c)) {
        *len = 0;
        return NULL;
    }
    return byte_queue_reserve(&c->in, byte_queue_room(&c->in), len);
}

void fcgi_conn_input_commit(struct fcgi_conn *c, size_t n, uint64_t now_ms)
{
    c->now_ms = now_ms;
    byte_queue_commit(&c->in, n);
    process_input(c);
    size_t left = byte_queue_len(&c->in);
    if (left > 0 && left < FCGI_HEADER_LEN && fault(c, FAULT_SPLIT_HEADER_LOST))
        byte_queue_clear(&c->in); /* as if every read started with a whole header */
}

size_t fcgi_conn_feed(struct fcgi_conn *c, const uint8_t *data, size_t len, uint64_t now_ms)
{
    size_t taken = 0;
    while (taken < len) {
        size_t room;
        uint8_t *space = fcgi_conn_input_space(c, &room);
        if (!space)
            break;
        size_t n = len - taken < room ? len - taken : room;
        memcpy(space, data + taken, n);
        taken += n;
        fcgi_conn_input_commit(c, n, now_ms);
    }
    return taken;
}

/* The peer sent EOF: ends the requests still waiting for input, as if aborted, and closes once idle. */
void fcgi_conn_input_eof(struct fcgi_conn *c, uint64_t now_ms)
{
    c->now_ms = now_ms;
    c->input_eof = true;
    /* Requests still waiting for input can never complete: end them as if
     * aborted, so a peer that only half-closed still learns their fate. */
    for (size_t i = 0; i < c->reqs_count; i++) {
        struct fcgi_request *req = c->reqs[i];
        bool waiting = !(req->flags & REQ_PARAMS_DONE) || !(req->flags & REQ_STDIN_DONE) ||
                       (req->role == FCGI_FILTER && !(req->flags & REQ_DATA_DONE));
        if (waiting && !(req->flags & REQ_FINISHED)) {
            byte_queue_clear(&req->stdout_spool);
            byte_queue_clear(&req->stderr_spool);
            fcgi_request_finish(req, 0);
        }
    }
    c->close_when_idle = true;
    pump(c);
    if (c->reqs_count == 0 && c->state == FCGI_CONN_OPEN)
        c->state = FCGI_CONN_CLOSING;
}

const uint8_t *fcgi_conn_output(const struct fcgi_conn *c, size_t *len)
{
    *len = byte_queue_len(&c->out);
    return byte_queue_peek(&c->out);
}

void fcgi_conn_output_done(struct fcgi_conn *c, size_t n, uint64_t now_ms)
{
    c->now_ms = now_ms;
    byte_queue_consume(&c->out, n);
    process_input(c); /* input first: an ABORT_REQUEST cuts the output short */
    pump(c);
}

uint64_t fcgi_conn_next_wakeup(const struct fcgi_conn *c)
{
    uint64_t next = 0;
    for (size_t i = 0; i < c->reqs_count; i++) {
        uint64_t at = c->reqs[i]->wake_at_ms;
        if (at && (!next || at < next))
            next = at;
    }
    return next;
}

void fcgi_conn_tick(struct fcgi_conn *c, uint64_t now_ms)
{
    c->now_ms = now_ms;
    for (size_t i = 0; i < c->reqs_count; i++) {
        struct fcgi_request *req = c->reqs[i];
        if (req->wake_at_ms && req->wake_at_ms <= now_ms) {
            req->wake_at_ms = 0;
            req->app->timer(req);
        }
    }
    pump(c);
    process_input(c); /* input held back (mpx-serialized) may go on now */
}

enum fcgi_conn_state fcgi_conn_state(const struct fcgi_conn *c) { return c->state; }

const char *fcgi_conn_close_reason(const struct fcgi_conn *c) { return c->close_reason; }

bool fcgi_conn_fatal(const struct fcgi_conn *c) { return c->fatal; }

bool fcgi_conn_idle(const struct fcgi_conn *c) { return c->reqs_count == 0; }
