#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "timer_heap.h"

/* After the last byte is sent, a closing connection reads and discards what the
 * peer still sends for this long, so that the close is a FIN and not an RST
 * (an RST can destroy the response before the peer reads it). */
#define DRAIN_TIMEOUT_MS 2000
#define DRAIN_MAX_BYTES (1u << 20)
#define MAX_ALLOWED_PEERS 64
#define EVENTS_PER_WAIT 256
/* Reads per readiness event, so one busy peer cannot starve the others. */
#define READS_PER_EVENT 16

enum source_kind { SOURCE_LISTENER, SOURCE_SIGNAL, SOURCE_CONN };

struct source {
    enum source_kind kind;
};

struct listener_source {
    struct source base;
    const struct listener *listener; /* the shared one, or `own` */
    struct listener own;             /* this worker's SO_REUSEPORT sibling; fd -1 if none */
    bool shared;                     /* polled by other workers too */
};

struct server_conn {
    struct source base;
    int fd;
    unsigned long id;
    struct fcgi_conn *fc; /* NULL once draining */
    uint32_t events;      /* registered with epoll */
    uint64_t drain_deadline_ms;
    size_t drained_bytes;
    struct timer_node timer; /* the connection's next deadline, in the server's heap */
    struct server_conn *prev, *next; /* all connections */
};

struct server {
    const struct server_config *config;
    int epoll_fd;
    struct source signal_source;
    int signal_fd;
    int spare_fd; /* released to accept and shed a connection when out of fds */
    struct listener_source *listener_sources;
    struct fcgi_load own_load;
    struct fcgi_load *load; /* own_load, or the one the workers share */
    unsigned long next_conn_id;
    struct server_conn *conns;
    struct timer_heap timers;
    struct in_addr allowed_peers[MAX_ALLOWED_PEERS];
    size_t allowed_peer_count;
    bool stopping;
};

static bool fault(const struct server *s, enum fault f) { return fault_on(s->config->limits.faults, f); }

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void server_log_conn(unsigned long conn_id, const char *message)
{
    fprintf(stderr, "fcgispec-responder: conn %lu: %s\n", conn_id, message);
}

static void set_interest(struct server *s, struct server_conn *sc, uint32_t events)
{
    if (sc->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = sc};
    epoll_ctl(s->epoll_fd, EPOLL_CTL_MOD, sc->fd, &ev);
    sc->events = events;
}

static void destroy_conn(struct server *s, struct server_conn *sc)
{
    timer_heap_set(&s->timers, &sc->timer, 0);
    if (sc->fd >= 0) {
        epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, sc->fd, NULL);
        close(sc->fd);
    }
    fcgi_conn_free(sc->fc);
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        s->conns = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    atomic_fetch_sub(&s->load->connections, 1);
    free(sc);
}

/* Files the connection's next deadline (a request's wake-up, or the end of the
 * drain) in the timer heap. Returns false if the connection was destroyed because
 * the heap could not grow: a connection whose timer cannot fire would hang. */
static bool schedule(struct server *s, struct server_conn *sc)
{
    uint64_t due = sc->fc ? fcgi_conn_next_wakeup(sc->fc) : sc->drain_deadline_ms;
    if (sc->timer.due_ms == due || timer_heap_set(&s->timers, &sc->timer, due))
        return true;
    fprintf(stderr, "fcgispec-responder: out of memory for a timer; closed a connection\n");
    destroy_conn(s, sc);
    return false;
}

/* Everything is sent: half-close and read until the peer closes too. Returns
 * false if the connection was destroyed instead. */
static bool start_draining(struct server *s, struct server_conn *sc)
{
    const char *reason = fcgi_conn_close_reason(sc->fc);
    if (*reason && s->config->limits.log)
        s->config->limits.log(sc->id, reason);
    fcgi_conn_free(sc->fc);
    sc->fc = NULL;
    if (fault(s, FAULT_CLOSE_WITH_RST)) {
        struct linger abortive = {.l_onoff = 1, .l_linger = 0};
        setsockopt(sc->fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive));
        destroy_conn(s, sc);
        return false;
    }
    shutdown(sc->fd, SHUT_WR);
    sc->drain_deadline_ms = now_ms() + DRAIN_TIMEOUT_MS;
    set_interest(s, sc, EPOLLIN);
    return schedule(s, sc);
}

/* Reads and discards; false once the connection should be closed. */
static bool drain(struct server_conn *sc)
{
    uint8_t sink[16384];
    for (;;) {
        ssize_t n = recv(sc->fd, sink, sizeof(sink), 0);
        if (n > 0) {
            sc->drained_bytes += (size_t)n;
            if (sc->drained_bytes > DRAIN_MAX_BYTES)
                return false;
            continue;
        }
        return n < 0 && (errno == EAGAIN || errno == EINTR);
    }
}

/* Writes queued output, then settles what the connection waits for next.
 * Returns false if the connection was destroyed. */
static bool service(struct server *s, struct server_conn *sc)
{
    if (fcgi_conn_fatal(sc->fc)) {
        fprintf(stderr, "fcgispec-responder: exiting: %s\n", fcgi_conn_close_reason(sc->fc));
        if (fault(s, FAULT_ABORT_ON_MALFORMED))
            abort();
        _exit(70);
    }
    for (;;) {
        size_t len;
        const uint8_t *out = fcgi_conn_output(sc->fc, &len);
        if (len == 0)
            break;
        ssize_t n = send(sc->fd, out, len, MSG_NOSIGNAL);
        if (n > 0) {
            fcgi_conn_output_done(sc->fc, (size_t)n, now_ms());
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (s->config->limits.log)
            s->config->limits.log(sc->id, "peer gone while sending; dropping the connection");
        if (fault(s, FAULT_EXIT_ON_WRITE_ERROR)) {
            fprintf(stderr, "fcgispec-responder: exiting on a failed write (fault exit-on-write-error)\n");
            _exit(70);
        }
        destroy_conn(s, sc);
        return false;
    }
    size_t pending;
    fcgi_conn_output(sc->fc, &pending);
    if (fcgi_conn_state(sc->fc) == FCGI_CONN_CLOSING && pending == 0)
        return start_draining(s, sc);
    set_interest(s, sc, (fcgi_conn_wants_input(sc->fc) ? EPOLLIN : 0) | (pending ? EPOLLOUT : 0));
    return schedule(s, sc);
}

/* Fault fd-leak-on-eof: forgets the connection without closing its socket. */
static void leak_conn(struct server *s, struct server_conn *sc)
{
    epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, sc->fd, NULL);
    sc->fd = -1;
    fcgi_conn_free(sc->fc);
    sc->fc = NULL;
    sc->drain_deadline_ms = 1; /* run_timers frees what is left at once */
    schedule(s, sc);
}

static void read_input(struct server *s, struct server_conn *sc)
{
    for (int i = 0; i < READS_PER_EVENT; i++) {
        size_t room;
        uint8_t *space = fcgi_conn_input_space(sc->fc, &room);
        if (!space)
            return;
        ssize_t n = recv(sc->fd, space, room, 0);
        if (n > 0) {
            fcgi_conn_input_commit(sc->fc, (size_t)n, now_ms());
            if ((size_t)n < room)
                return; /* the socket is empty: epoll says when more (or EOF) comes */
            continue;
        }
        if (n == 0) {
            if (fault(s, FAULT_FD_LEAK_ON_EOF) && fcgi_conn_idle(sc->fc)) {
                leak_conn(s, sc);
                return;
            }
            fcgi_conn_input_eof(sc->fc, now_ms());
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            /* A reset: nothing sent can arrive any more. */
            fcgi_conn_input_eof(sc->fc, now_ms());
            (void)s;
        }
        return;
    }
}

static void handle_conn_event(struct server *s, struct server_conn *sc, uint32_t events)
{
    if (!sc->fc) {
        if (!drain(sc))
            destroy_conn(s, sc);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        read_input(s, sc);
    if (!sc->fc)
        return; /* leaked (fault fd-leak-on-eof) */
    if (!service(s, sc))
        return;
    if (sc->fc && (events & (EPOLLHUP | EPOLLERR)) && sc->events == 0)
        destroy_conn(s, sc); /* the peer is gone and nothing is left to do */
}

static bool peer_allowed(const struct server *s, const struct sockaddr_storage *addr)
{
    if (!s->config->web_server_addrs || fault(s, FAULT_WEB_SERVER_ADDRS_IGNORED))
        return true;
    if (addr->ss_family != AF_INET)
        return false; /* spec §3.2: a connection that didn't use TCP/IP fails the check */
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
    for (size_t i = 0; i < s->allowed_peer_count; i++)
        if (s->allowed_peers[i].s_addr == in->sin_addr.s_addr)
            return true;
    return false;
}

static void accept_connections(struct server *s, const struct listener_source *source)
{
    const struct listener *l = source->listener;
    /* One at a time when workers share the listener: the rest stay pending for
     * whichever worker epoll wakes next, which spreads connections over them. */
    unsigned batch = source->shared ? 1 : UINT32_MAX;
    for (unsigned accepted = 0; accepted < batch; accepted++) {
        struct sockaddr_storage addr;
        socklen_t addr_len = sizeof(addr);
        int fd = accept4(l->fd, (struct sockaddr *)&addr, &addr_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
                /* Shed one pending connection so the listener stops firing. */
                close(s->spare_fd);
                int shed = accept(l->fd, NULL, NULL);
                if (shed >= 0)
                    close(shed);
                s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                fprintf(stderr, "fcgispec-responder: out of file descriptors; refused a connection\n");
            }
            return;
        }
        if (!peer_allowed(s, &addr)) {
            fprintf(stderr, "fcgispec-responder: peer not in FCGI_WEB_SERVER_ADDRS; closed\n");
            close(fd);
            continue;
        }
        if (!l->is_unix) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        /* Counted before the check, as requests are (fcgi_conn.c): workers share the count. */
        bool overloaded = atomic_fetch_add(&s->load->connections, 1) >= s->config->limits.max_conns;
        struct server_conn *sc = calloc(1, sizeof(*sc));
        if (sc)
            sc->fc = fcgi_conn_new(&s->config->limits, s->load, s->next_conn_id, overloaded, now_ms());
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = sc};
        if (!sc || !sc->fc || epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            if (sc)
                fcgi_conn_free(sc->fc);
            free(sc);
            close(fd);
            atomic_fetch_sub(&s->load->connections, 1);
            continue;
        }
        sc->base.kind = SOURCE_CONN;
        sc->fd = fd;
        sc->id = s->next_conn_id;
        s->next_conn_id += s->config->workers > 1 ? s->config->workers : 1; /* ids stay unique across workers */
        sc->events = EPOLLIN;
        sc->next = s->conns;
        if (s->conns)
            s->conns->prev = sc;
        s->conns = sc;
        schedule(s, sc);
    }
}

/* Fires due timers and drain deadlines; returns the epoll timeout until the next.
 * Only the deadlines due when it starts are served: an app that asks to wake at
 * once is served on the next loop turn, after the sockets had their turn. */
static int run_timers(struct server *s)
{
    uint64_t now = now_ms();
    for (size_t budget = timer_heap_count(&s->timers); budget > 0; budget--) {
        struct timer_node *first = timer_heap_first(&s->timers);
        if (!first || first->due_ms > now)
            break;
        struct server_conn *sc = (struct server_conn *)((char *)first - offsetof(struct server_conn, timer));
        if (!sc->fc) {
            destroy_conn(s, sc); /* the drain is over, or the connection was leaked */
            continue;
        }
        timer_heap_set(&s->timers, &sc->timer, 0); /* taken out so service() files it anew */
        fcgi_conn_tick(sc->fc, now);
        service(s, sc);
    }
    const struct timer_node *first = timer_heap_first(&s->timers);
    if (!first)
        return -1;
    if (first->due_ms <= now)
        return 0;
    uint64_t wait = first->due_ms - now;
    return wait > INT32_MAX ? INT32_MAX : (int)wait;
}

static bool parse_allowed_peers(struct server *s, const char *list)
{
    char copy[1024];
    if (strlen(list) >= sizeof(copy))
        return false;
    strcpy(copy, list);
    char *save = NULL;
    for (char *item = strtok_r(copy, ", ", &save); item; item = strtok_r(NULL, ", ", &save)) {
        if (s->allowed_peer_count == MAX_ALLOWED_PEERS || inet_pton(AF_INET, item, &s->allowed_peers[s->allowed_peer_count]) != 1)
            return false;
        s->allowed_peer_count++;
    }
    return true;
}

static bool setup(struct server *s)
{
    if (s->config->web_server_addrs && !parse_allowed_peers(s, s->config->web_server_addrs)) {
        fprintf(stderr, "fcgispec-responder: FCGI_WEB_SERVER_ADDRS is not a list of IPv4 addresses\n");
        return false;
    }
    s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    sigset_t mask;
    sigemptyset(&mask);
    if (fault(s, FAULT_SIGTERM_IGNORED))
        signal(SIGTERM, SIG_IGN);
    else
        sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    s->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (s->epoll_fd < 0 || s->signal_fd < 0) {
        perror("fcgispec-responder: epoll/signalfd");
        return false;
    }
    s->signal_source.kind = SOURCE_SIGNAL;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->signal_source};
    epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->signal_fd, &ev);
    s->listener_sources = calloc(s->config->listener_count + 1, sizeof(*s->listener_sources));
    if (!s->listener_sources)
        return false;
    for (size_t i = 0; i < s->config->listener_count; i++)
        s->listener_sources[i].own.fd = -1; /* before anything can fail: teardown closes what is >= 0 */
    for (size_t i = 0; i < s->config->listener_count; i++) {
        struct listener_source *source = &s->listener_sources[i];
        source->base.kind = SOURCE_LISTENER;
        source->listener = &s->config->listeners[i];
        /* Workers after the first listen on their own socket of the same TCP address
         * when they can (even spread); otherwise they share the one socket, and
         * EPOLLEXCLUSIVE wakes one of them per connection instead of all. */
        if (s->config->workers > 1 && s->config->worker_index > 0 && listener_open_sibling(source->listener, &source->own))
            source->listener = &source->own;
        else
            source->shared = s->config->workers > 1;
        ev = (struct epoll_event){.events = EPOLLIN | (source->shared ? EPOLLEXCLUSIVE : 0), .data.ptr = source};
        if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, source->listener->fd, &ev) != 0) {
            perror("fcgispec-responder: epoll_ctl listener");
            return false;
        }
    }
    return true;
}

static void teardown(struct server *s)
{
    while (s->conns)
        destroy_conn(s, s->conns);
    timer_heap_free(&s->timers);
    for (size_t i = 0; s->listener_sources && i < s->config->listener_count; i++)
        if (s->listener_sources[i].own.fd >= 0)
            listener_close(&s->listener_sources[i].own);
    free(s->listener_sources);
    if (s->signal_fd >= 0)
        close(s->signal_fd);
    if (s->spare_fd >= 0)
        close(s->spare_fd);
    if (s->epoll_fd >= 0)
        close(s->epoll_fd);
}

/* Runs the event loop until SIGTERM or SIGINT; returns the exit status. */
int server_run(const struct server_config *config)
{
    struct server s = {.config = config, .epoll_fd = -1, .signal_fd = -1, .spare_fd = -1, .next_conn_id = 1 + config->worker_index};
    s.load = config->shared_load ? config->shared_load : &s.own_load;
    if (!setup(&s)) {
        teardown(&s);
        return 1;
    }
    struct epoll_event events[EVENTS_PER_WAIT];
    while (!s.stopping) {
        int timeout = run_timers(&s);
        int n = epoll_wait(s.epoll_fd, events, EVENTS_PER_WAIT, timeout);
        if (n < 0 && errno != EINTR) {
            perror("fcgispec-responder: epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            struct source *src = events[i].data.ptr;
            if (src->kind == SOURCE_SIGNAL) {
                s.stopping = true;
            } else if (src->kind == SOURCE_LISTENER) {
                accept_connections(&s, (struct listener_source *)src);
            } else {
                handle_conn_event(&s, (struct server_conn *)src, events[i].events);
            }
        }
    }
    teardown(&s);
    return 0;
}
