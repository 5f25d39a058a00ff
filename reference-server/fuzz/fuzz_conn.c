/* libFuzzer target: the input is what a web server sends on one connection.
 *
 * The first byte chooses the configuration (--no-mpx, a small max_reqs, an
 * overloaded connection), the second how the bytes arrive (piece sizes, how
 * much output is taken per turn, how far the clock jumps), the third the fault
 * modes (none, one, or a mix). The rest is fed in
 * pieces, alternating with partial drains of the output and timer ticks, then
 * EOF, then everything left is drained and the connection freed: the life of a
 * connection in the server, without sockets.
 *
 * Beyond ASan/UBSan/LeakSanitizer, it checks what must hold whatever the input:
 * the output is well-framed version-1 records of types a server sends (unless a
 * fault misshapes output on purpose), it never
 * overruns or overflows its queue, timers are never in the past after a tick, and the
 * shared request counter returns to zero. A violation aborts, which libFuzzer
 * reports as a crash with the input. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi_codec.h"
#include "fcgi_conn.h"
#include "faults.h"

/* Bounds per input, so that out=N and delay=N cannot make one run take seconds. */
#define MAX_OUTPUT_PER_RUN (4u << 20)
#define MAX_TURNS 20000

/* Follows the output stream across partial drains and checks each record header. */
struct framing {
    uint8_t header[FCGI_HEADER_LEN];
    size_t header_have;
    size_t body_left; /* content + padding of the current record still to come */
};

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_conn: invariant broken: %s\n", what);
    abort();
}

static void framing_check_header(const uint8_t h8[FCGI_HEADER_LEN], struct framing *f)
{
    struct fcgi_header h;
    if (fcgi_header_decode(h8, FCGI_HEADER_LEN, &h) != FCGI_DECODE_OK)
        fail("header does not decode");
    if (h.version != FCGI_VERSION_1)
        fail("output record version is not 1");
    if (h.padding_length != fcgi_padding_for(h.content_length))
        fail("output padding is not the canonical one");
    switch (h.type) {
    case FCGI_STDOUT:
    case FCGI_STDERR:
        break;
    case FCGI_END_REQUEST:
    case FCGI_UNKNOWN_TYPE:
        if (h.content_length != 8)
            fail("END_REQUEST/UNKNOWN_TYPE body is not 8 bytes");
        break;
    case FCGI_GET_VALUES_RESULT:
        if (h.request_id != FCGI_NULL_REQUEST_ID)
            fail("GET_VALUES_RESULT with a request id");
        break;
    default:
        fail("output record of a type a server does not send");
    }
    f->body_left = (size_t)h.content_length + h.padding_length;
}

static void framing_feed(struct framing *f, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (f->body_left > 0) {
            size_t take = n < f->body_left ? n : f->body_left;
            f->body_left -= take;
            p += take, n -= take;
            continue;
        }
        size_t take = FCGI_HEADER_LEN - f->header_have;
        if (take > n)
            take = n;
        memcpy(f->header + f->header_have, p, take);
        f->header_have += take;
        p += take, n -= take;
        if (f->header_have == FCGI_HEADER_LEN) {
            framing_check_header(f->header, f);
            f->header_have = 0;
        }
    }
}

struct run {
    struct fcgi_conn *c;
    const struct fcgi_limits *limits;
    bool check_framing; /* off under faults whose point is misshapen output */
    struct framing framing;
    uint64_t now;
    size_t output_total;
};

/* Takes up to `max` bytes of output, as one socket write would. */
static void take_output(struct run *r, size_t max)
{
    size_t len;
    const uint8_t *p = fcgi_conn_output(r->c, &len);
    if (len > r->limits->out_high_water + 4 * (size_t)FCGI_MAX_RECORD)
        fail("output queue past its capacity");
    size_t n = len < max ? len : max;
    if (n == 0)
        return;
    if (r->check_framing)
        framing_feed(&r->framing, p, n);
    r->output_total += n;
    fcgi_conn_output_done(r->c, n, r->now);
}

static void tick(struct run *r, uint64_t advance)
{
    r->now += advance;
    fcgi_conn_tick(r->c, r->now);
    uint64_t next = fcgi_conn_next_wakeup(r->c);
    if (next != 0 && next <= r->now)
        fail("a due timer survived the tick");
}

/* Faults that send misshapen output on purpose: the framing invariants do not
 * hold under them (memory safety, bounds and timers still do). */
static const fault_set output_shape_faults =
    (fault_set)1 << FAULT_UNALIGNED_OUTPUT | (fault_set)1 << FAULT_MISFRAME_ON_REUSE |
    (fault_set)1 << FAULT_STDOUT_AS_DATA | (fault_set)1 << FAULT_END_REQUEST_SHORT_BODY |
    (fault_set)1 << FAULT_REPLY_ID_ZERO | (fault_set)1 << FAULT_GET_VALUES_ID_1 |
    (fault_set)1 << FAULT_BEGIN_ID_ZERO_SERVED | (fault_set)1 << FAULT_ID_HIGH_BYTE_DROPPED;

/* The fault byte: 0 no fault, 1..FAULT_COUNT one fault, above that a mix of several. */
static fault_set faults_from(uint8_t choice)
{
    unsigned pick = choice;
    if (pick == 0)
        return 0;
    if (pick <= FAULT_COUNT)
        return (fault_set)1 << (pick - 1);
    /* A spread of faults that differs per value (multiplicative hashing). */
    uint64_t mix = (uint64_t)pick * 0x9E3779B97F4A7C15u;
    return mix & (((fault_set)1 << FAULT_COUNT) - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (size < 3)
        return 0;
    uint8_t config = data[0], rhythm = data[1], fault_choice = data[2];
    data += 3, size -= 3;

    struct fcgi_limits limits = fcgi_limits_default();
    limits.max_reqs = (config & 0x40) ? 2 : 4096;
    limits.mpx = !(config & 0x80);
    limits.out_high_water = 4096; /* small, so backpressure happens often */
    limits.faults = faults_from(fault_choice);
    struct fcgi_load load = {0};
    struct run r = {.limits = &limits, .now = 1000, .check_framing = !(limits.faults & output_shape_faults)};
    r.c = fcgi_conn_new(&limits, &load, 1, (config & 0x20) != 0, r.now);
    if (!r.c)
        return 0;

    size_t piece = 1 + (rhythm & 0x0F) * 37u;         /* 1..556 bytes per read */
    size_t write_size = 1 + ((rhythm >> 4) & 0x7) * 3000u; /* 1..21001 bytes per write */
    uint64_t clock_step = (rhythm & 0x80) ? 40 : 3;

    size_t pos = 0;
    for (int turn = 0; turn < MAX_TURNS && pos < size && r.output_total < MAX_OUTPUT_PER_RUN; turn++) {
        if (fcgi_conn_state(r.c) == FCGI_CONN_CLOSING)
            break;
        size_t n = size - pos < piece ? size - pos : piece;
        /* Both input paths: the feed helper and the reserve/commit pair the server uses. */
        if (turn % 2) {
            pos += fcgi_conn_feed(r.c, data + pos, n, r.now);
        } else {
            size_t room;
            uint8_t *space = fcgi_conn_input_space(r.c, &room);
            if (space) {
                size_t k = n < room ? n : room;
                memcpy(space, data + pos, k);
                pos += k;
                fcgi_conn_input_commit(r.c, k, r.now);
            } else if (fcgi_conn_wants_input(r.c)) {
                fail("wants input but offers no space");
            }
        }
        take_output(&r, write_size);
        tick(&r, clock_step);
    }

    fcgi_conn_input_eof(r.c, r.now);
    /* Let timers run and the output drain, as the server does until it closes. */
    for (int turn = 0; turn < MAX_TURNS && r.output_total < MAX_OUTPUT_PER_RUN; turn++) {
        size_t len;
        fcgi_conn_output(r.c, &len);
        uint64_t next = fcgi_conn_next_wakeup(r.c);
        if (len == 0 && next == 0)
            break;
        if (len > 0)
            take_output(&r, write_size);
        else /* straight to the next timer; a wrapped one (delay near 2^64) is due now */
            tick(&r, next > r.now ? next - r.now : 0);
    }

    /* The queue is sized so that it never overflows; overflowing would drop a
     * connection for the server's own doing, not the peer's. */
    if (strstr(fcgi_conn_close_reason(r.c), "output queue") != NULL)
        fail("the output queue overflowed");
    fcgi_conn_free(r.c);
    if (load.active_requests != 0)
        fail("active_requests not back to 0 after fcgi_conn_free");
    return 0;
}
