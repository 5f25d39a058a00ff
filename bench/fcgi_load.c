/* fcgi-load: a FastCGI load generator.
 *
 * Keeps N connections open (FCGI_KEEP_CONN), each with K requests in flight
 * (K > 1 multiplexes ids 1..K; K = 1 reuses id 1 on every request, as nginx does),
 * sends the same probe request again as soon as one is answered, and prints the
 * rate and latency percentiles. With --raw REQ:RESP it instead sends REQ bytes and
 * waits for RESP bytes per exchange: against bench/pingpong-server, that measures
 * the limit of the machine for exchanges of the same size.
 *
 * The report line also gives the exact bytes of one request and of one response
 * on the wire (request_bytes, response_bytes: what --raw needs to reproduce the
 * exchange), how many connections got at least one answer, and the fewest
 * answers any connection got (a starved connection shows as 0). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fcgi_codec.h"

#define MAX_INFLIGHT 256
#define READ_CHUNK 65536
#define MAX_EXTRA_PARAMS 16

struct options {
    const char *address;
    unsigned connections;
    unsigned inflight;
    uint64_t requests;
    double duration_s;
    const char *query;
    size_t stdin_bytes;
    bool raw;
    size_t raw_request;
    size_t raw_response;
    double linger_s;   /* > 0: connections stay open this long after the last answer */
    double progress_s; /* > 0: a `progress ANSWERED SECONDS` line on stderr this often */
    const char *extra_params[MAX_EXTRA_PARAMS]; /* NAME=VALUE: replaces a default or is added */
    unsigned extra_param_count;
};

struct conn {
    int fd;
    bool want_out; /* registered for EPOLLOUT */
    uint8_t *in;
    size_t in_len;
    size_t out_sent; /* bytes of the pending request batch already written */
    size_t out_len;
    uint8_t *out;
    uint64_t started_ns[MAX_INFLIGHT + 1]; /* per request id */
    unsigned outstanding;
    size_t raw_received;
    uint64_t answered;
    bool finished; /* all its requests answered */
};

struct run {
    struct options opt;
    uint8_t *request_template; /* one request for id 1 */
    size_t request_len;
    uint64_t sent, answered, errors;
    uint64_t bytes_out, bytes_in; /* on the wire, all connections */
    uint64_t *latencies_ns;
    size_t latencies_cap;
    bool stopping;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int connect_to(const char *address)
{
    int fd;
    if (strncmp(address, "unix:", 5) == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", address + 5);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            die("connect");
        return fd;
    }
    const char *hostport = strncmp(address, "tcp:", 4) == 0 ? address + 4 : address;
    char host[64];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof(host)) {
        fprintf(stderr, "fcgi-load: address must be tcp:HOST:PORT or unix:PATH\n");
        exit(2);
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "fcgi-load: not an IPv4 address: %s\n", host);
        exit(2);
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static size_t put_record(uint8_t *out, size_t cap, uint8_t type, uint16_t id, const uint8_t *content, size_t len)
{
    size_t n = fcgi_record_encode(type, id, content, len, out, cap);
    if (!n) {
        fprintf(stderr, "fcgi-load: request too large\n");
        exit(2);
    }
    return n;
}

/* The probe request every connection sends: what nginx sends for a GET (or POST). */
static void build_request(struct run *r)
{
    size_t cap = 4096 + r->opt.stdin_bytes + (r->opt.stdin_bytes / FCGI_MAX_CONTENT + 2) * 16;
    uint8_t *buf = malloc(cap);
    uint8_t params[2048];
    size_t plen = 0;
    char content_length[24];
    snprintf(content_length, sizeof(content_length), "%zu", r->opt.stdin_bytes);
    const char *pairs[][2] = {
        {"REQUEST_METHOD", r->opt.stdin_bytes ? "POST" : "GET"},
        {"SCRIPT_NAME", "/probe"},
        {"SCRIPT_FILENAME", "/fcgispec/probe"},
        {"QUERY_STRING", r->opt.query},
        {"SERVER_PROTOCOL", "HTTP/1.1"},
        {"CONTENT_LENGTH", content_length},
        {"REMOTE_ADDR", "127.0.0.1"},
    };
    enum { DEFAULTS = sizeof(pairs) / sizeof(pairs[0]) };
    bool replaced[DEFAULTS] = {false};
    for (unsigned e = 0; e < r->opt.extra_param_count; e++) {
        const char *eq = strchr(r->opt.extra_params[e], '=');
        for (size_t i = 0; i < DEFAULTS; i++)
            if (strlen(pairs[i][0]) == (size_t)(eq - r->opt.extra_params[e]) &&
                memcmp(pairs[i][0], r->opt.extra_params[e], (size_t)(eq - r->opt.extra_params[e])) == 0)
                replaced[i] = true;
    }
    for (size_t i = 0; i < DEFAULTS; i++)
        if (!replaced[i])
            plen += fcgi_nv_encode((const uint8_t *)pairs[i][0], strlen(pairs[i][0]), (const uint8_t *)pairs[i][1],
                                   strlen(pairs[i][1]), params + plen, sizeof(params) - plen);
    for (unsigned e = 0; e < r->opt.extra_param_count; e++) {
        const char *text = r->opt.extra_params[e];
        const char *eq = strchr(text, '=');
        size_t used = fcgi_nv_encode((const uint8_t *)text, (size_t)(eq - text), (const uint8_t *)eq + 1,
                                     strlen(eq + 1), params + plen, sizeof(params) - plen);
        if (!used) {
            fprintf(stderr, "fcgi-load: params too large\n");
            exit(2);
        }
        plen += used;
    }
    uint8_t body[8];
    struct fcgi_begin_request begin = {FCGI_RESPONDER, FCGI_KEEP_CONN};
    fcgi_begin_request_encode(&begin, body);
    size_t len = 0;
    len += put_record(buf + len, cap - len, FCGI_BEGIN_REQUEST, 1, body, 8);
    len += put_record(buf + len, cap - len, FCGI_PARAMS, 1, params, plen);
    len += put_record(buf + len, cap - len, FCGI_PARAMS, 1, NULL, 0);
    uint8_t *data = calloc(1, r->opt.stdin_bytes + 1);
    for (size_t off = 0; off < r->opt.stdin_bytes; off += FCGI_MAX_CONTENT) {
        size_t n = r->opt.stdin_bytes - off < FCGI_MAX_CONTENT ? r->opt.stdin_bytes - off : FCGI_MAX_CONTENT;
        len += put_record(buf + len, cap - len, FCGI_STDIN, 1, data + off, n);
    }
    free(data);
    len += put_record(buf + len, cap - len, FCGI_STDIN, 1, NULL, 0);
    r->request_template = buf;
    r->request_len = len;
}

/* Appends the request for `id` to the connection's output: the template with its ids rewritten. */
static void queue_request(struct run *r, struct conn *c, uint16_t id)
{
    if (c->out_sent) { /* keep only unsent bytes: they belong to requests in flight */
        memmove(c->out, c->out + c->out_sent, c->out_len - c->out_sent);
        c->out_len -= c->out_sent;
        c->out_sent = 0;
    }
    if (r->opt.raw) {
        c->out_len += r->opt.raw_request;
        c->started_ns[1] = now_ns();
        c->outstanding++;
        r->sent++;
        return;
    }
    uint8_t *dst = c->out + c->out_len;
    memcpy(dst, r->request_template, r->request_len);
    for (size_t pos = 0; pos < r->request_len;) {
        struct fcgi_header h;
        fcgi_header_decode(dst + pos, r->request_len - pos, &h);
        dst[pos + 2] = (uint8_t)(id >> 8);
        dst[pos + 3] = (uint8_t)id;
        pos += fcgi_record_size(&h);
    }
    c->out_len += r->request_len;
    c->started_ns[id] = now_ns();
    c->outstanding++;
    r->sent++;
}

static void record_latency(struct run *r, struct conn *c, uint64_t started)
{
    c->answered++;
    if (r->answered < r->latencies_cap)
        r->latencies_ns[r->answered] = now_ns() - started;
    r->answered++;
}

static bool more_wanted(const struct run *r)
{
    return !r->stopping && (r->opt.requests == 0 || r->sent < r->opt.requests);
}

/* Consumes whole records; returns the ids whose END_REQUEST arrived via the callback. */
static void parse_responses(struct run *r, struct conn *c)
{
    if (r->opt.raw) {
        while (c->raw_received >= r->opt.raw_response && c->outstanding) {
            c->raw_received -= r->opt.raw_response;
            c->outstanding--;
            record_latency(r, c, c->started_ns[1]);
            if (more_wanted(r))
                queue_request(r, c, 1);
        }
        return;
    }
    size_t pos = 0;
    for (;;) {
        struct fcgi_header h;
        if (fcgi_header_decode(c->in + pos, c->in_len - pos, &h) != FCGI_DECODE_OK)
            break;
        size_t size = fcgi_record_size(&h);
        if (c->in_len - pos < size)
            break;
        if (h.type == FCGI_END_REQUEST && h.request_id >= 1 && h.request_id <= MAX_INFLIGHT) {
            struct fcgi_end_request end;
            if (fcgi_end_request_decode(c->in + pos + 8, h.content_length, &end) != FCGI_DECODE_OK ||
                end.protocol_status != FCGI_REQUEST_COMPLETE)
                r->errors++;
            c->outstanding--;
            record_latency(r, c, c->started_ns[h.request_id]);
            if (more_wanted(r))
                queue_request(r, c, h.request_id);
        }
        pos += size;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
}

/* Writes what is queued; waits for EPOLLOUT only while something is left. */
static void flush(struct run *r, int ep, struct conn *c)
{
    while (c->fd >= 0 && c->out_sent < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0)
            break;
        c->out_sent += (size_t)w;
        r->bytes_out += (size_t)w;
    }
    bool want_out = c->fd >= 0 && c->out_sent < c->out_len;
    if (c->fd >= 0 && want_out != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = want_out;
    }
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(struct run *r, const struct conn *conns, double seconds)
{
    unsigned served = 0;
    uint64_t fewest = UINT64_MAX;
    for (unsigned i = 0; i < r->opt.connections; i++) {
        served += conns[i].answered > 0;
        if (conns[i].answered < fewest)
            fewest = conns[i].answered;
    }
    size_t n = r->answered < r->latencies_cap ? (size_t)r->answered : r->latencies_cap;
    qsort(r->latencies_ns, n, sizeof(uint64_t), compare_u64);
#define PCT(p) (n ? (double)r->latencies_ns[(size_t)((double)(n - 1) * (p))] / 1000.0 : 0.0)
    printf("requests %llu errors %llu seconds %.3f rps %.0f p50_us %.1f p90_us %.1f p99_us %.1f max_us %.1f "
           "request_bytes %.1f response_bytes %.1f connections %u served %u fewest_answers %llu\n",
           (unsigned long long)r->answered, (unsigned long long)r->errors, seconds, (double)r->answered / seconds,
           PCT(0.50), PCT(0.90), PCT(0.99), PCT(1.0), r->sent ? (double)r->bytes_out / (double)r->sent : 0.0,
           r->answered ? (double)r->bytes_in / (double)r->answered : 0.0, r->opt.connections, served,
           (unsigned long long)(r->opt.connections ? fewest : 0));
#undef PCT
}

static void usage(FILE *to, int status)
{
    fputs("usage: fcgi-load --address tcp:HOST:PORT|unix:PATH [--connections N] [--inflight K]\n"
          "                 [--requests N | --duration SECONDS] [--query QUERY_STRING] [--stdin BYTES]\n"
          "                 [--param NAME=VALUE]... [--progress SECONDS] [--linger SECONDS] [--raw REQUEST_BYTES:RESPONSE_BYTES]\n"
          "  --connections N   kept connections (FCGI_KEEP_CONN), all opened before the run (default 1)\n"
          "  --inflight K      requests in flight per connection: K > 1 multiplexes ids 1..K,\n"
          "                    K = 1 reuses id 1 on every request, as nginx does (default 1, at most 256)\n"
          "  --requests N      stop after N requests in all; --duration SECONDS stops after a time (default 5)\n"
          "  --query Q         QUERY_STRING of the probe request (e.g. out=4096)\n"
          "  --stdin BYTES     a POST with that much STDIN (CONTENT_LENGTH set)\n"
          "  --param N=V       adds a param or replaces a default one (e.g. SCRIPT_FILENAME=/path/probe.php)\n"
          "  --linger SECS     keep every connection open SECS after the last answer (then close);\n"
          "                    `lingering ANSWERED` on stderr when that starts\n"
          "  --progress SECS   every SECS, `progress ANSWERED ELAPSED_SECONDS` on stderr\n"
          "  --raw REQ:RESP    no FastCGI: send REQ bytes, wait for RESP bytes (against bench/pingpong-server)\n"
          "Prints one line: requests errors seconds rps p50_us p90_us p99_us max_us request_bytes\n"
          "response_bytes connections served fewest_answers.\n",
          to);
    exit(status);
}

static void parse_options(int argc, char **argv, struct options *o)
{
    *o = (struct options){.connections = 1, .inflight = 1, .duration_s = 5.0, .query = ""};
    static const struct option options[] = {
        {"address", required_argument, NULL, 'a'}, {"connections", required_argument, NULL, 'c'},
        {"inflight", required_argument, NULL, 'k'}, {"requests", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'd'}, {"query", required_argument, NULL, 'q'},
        {"stdin", required_argument, NULL, 's'},    {"raw", required_argument, NULL, 'r'},
        {"param", required_argument, NULL, 'p'},    {"help", no_argument, NULL, 'h'},
        {"progress", required_argument, NULL, 'P'}, {"linger", required_argument, NULL, 'L'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'a': o->address = optarg; break;
        case 'c': o->connections = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'k': o->inflight = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'n': o->requests = strtoull(optarg, NULL, 10); o->duration_s = 0; break;
        case 'd': o->duration_s = strtod(optarg, NULL); break;
        case 'q': o->query = optarg; break;
        case 's': o->stdin_bytes = strtoul(optarg, NULL, 10); break;
        case 'r':
            o->raw = true;
            if (sscanf(optarg, "%zu:%zu", &o->raw_request, &o->raw_response) != 2 || !o->raw_request ||
                !o->raw_response)
                usage(stderr, 2);
            break;
        case 'p':
            if (!strchr(optarg, '=') || optarg[0] == '=' || o->extra_param_count == MAX_EXTRA_PARAMS)
                usage(stderr, 2);
            o->extra_params[o->extra_param_count++] = optarg;
            break;
        case 'h': usage(stdout, 0); break;
        case 'P': o->progress_s = strtod(optarg, NULL); break;
        case 'L': o->linger_s = strtod(optarg, NULL); break;
        default: usage(stderr, 2);
        }
    }
    if (!o->address || o->connections == 0 || o->inflight == 0 || o->inflight > MAX_INFLIGHT ||
        (o->raw && o->inflight != 1))
        usage(stderr, 2);
}

int main(int argc, char **argv)
{
    struct run r = {0};
    parse_options(argc, argv, &r.opt);
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max; /* 1000 connections need more than the usual 1024 */
        setrlimit(RLIMIT_NOFILE, &files);
    }
    if (!r.opt.raw)
        build_request(&r);
    r.latencies_cap = 4u << 20;
    r.latencies_ns = malloc(r.latencies_cap * sizeof(uint64_t));
    int ep = epoll_create1(0);
    struct conn *conns = calloc(r.opt.connections, sizeof(*conns));
    size_t batch = r.opt.raw ? r.opt.raw_request * 2 : r.request_len * r.opt.inflight;
    for (unsigned i = 0; i < r.opt.connections; i++) {
        struct conn *c = &conns[i];
        c->fd = connect_to(r.opt.address);
        c->in = malloc(READ_CHUNK + FCGI_MAX_RECORD);
        c->out = calloc(1, batch);
        for (unsigned k = 1; k <= r.opt.inflight && more_wanted(&r); k++)
            queue_request(&r, c, (uint16_t)k);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    uint64_t start = now_ns();
    uint64_t deadline = r.opt.duration_s > 0 ? start + (uint64_t)(r.opt.duration_s * 1e9) : 0;
    struct epoll_event events[256];
    unsigned busy = r.opt.connections;
    for (unsigned i = 0; i < r.opt.connections; i++)
        flush(&r, ep, &conns[i]);
    uint64_t progress_every = (uint64_t)(r.opt.progress_s * 1e9), next_progress = start + progress_every;
    while (busy) {
        int n = epoll_wait(ep, events, 256, progress_every ? 100 : 1000);
        uint64_t now = now_ns();
        if (deadline && now >= deadline)
            r.stopping = true;
        if (progress_every && now >= next_progress) {
            fprintf(stderr, "progress %llu %.3f\n", (unsigned long long)r.answered, (double)(now - start) / 1e9);
            fflush(stderr);
            next_progress = now + progress_every;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t got = recv(c->fd, c->in + c->in_len, READ_CHUNK, 0);
                if (got <= 0 && !(got < 0 && errno == EAGAIN)) {
                    fprintf(stderr, "fcgi-load: connection closed by the server after %llu answers\n",
                            (unsigned long long)r.answered);
                    report(&r, conns, (double)(now_ns() - start) / 1e9);
                    return 1;
                }
                if (got > 0) {
                    r.bytes_in += (size_t)got;
                    if (r.opt.raw)
                        c->raw_received += (size_t)got;
                    else
                        c->in_len += (size_t)got;
                    parse_responses(&r, c);
                }
            }
            flush(&r, ep, c);
            if (c->outstanding == 0 && c->fd >= 0 && !c->finished) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                c->finished = true;
                if (r.opt.linger_s <= 0) {
                    close(c->fd);
                    c->fd = -1;
                }
                busy--;
            }
        }
    }
    double seconds = (double)(now_ns() - start) / 1e9;
    if (r.opt.linger_s > 0) {
        fprintf(stderr, "lingering %llu\n", (unsigned long long)r.answered);
        fflush(stderr);
        struct timespec pause = {(time_t)r.opt.linger_s, (long)((r.opt.linger_s - (double)(time_t)r.opt.linger_s) * 1e9)};
        nanosleep(&pause, NULL);
        for (unsigned i = 0; i < r.opt.connections; i++)
            if (conns[i].fd >= 0)
                close(conns[i].fd);
    }
    report(&r, conns, seconds);
    for (unsigned i = 0; i < r.opt.connections; i++) {
        free(conns[i].in);
        free(conns[i].out);
    }
    free(conns);
    free(r.latencies_ns);
    free(r.request_template);
    close(ep);
    return r.errors ? 1 : 0;
}
