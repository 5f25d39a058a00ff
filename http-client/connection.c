/* Plain and TLS client connections (see connection.h). */
#include "connection.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

uint64_t conn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int poll_timeout(uint64_t deadline)
{
    uint64_t now = conn_now_ms();
    if (now >= deadline)
        return 0;
    uint64_t left = deadline - now;
    return left > 60000 ? 60000 : (int)left;
}

static int poll_fd(int fd, short events, uint64_t deadline, short *revents)
{
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = events, .revents = 0};
        int t = poll_timeout(deadline);
        int r = poll(&pfd, 1, t);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0) {
            if (conn_now_ms() >= deadline)
                return 0;
            continue;
        }
        *revents = pfd.revents;
        return 1;
    }
}

static httpc_error tcp_connect(const char *host, uint16_t port, uint64_t deadline, int *out_fd)
{
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res)
        return HTTPC_E_RESOLVE;
    httpc_error err = HTTPC_E_CONNECT;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (r < 0 && errno == EINPROGRESS) {
            short rev = 0;
            int w = poll_fd(fd, POLLOUT, deadline, &rev);
            if (w == 0) {
                close(fd);
                err = HTTPC_E_TIMEOUT;
                break;
            }
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0)
                r = -1;
            else
                r = 0;
        }
        if (r == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            freeaddrinfo(res);
            *out_fd = fd;
            return HTTPC_OK;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return err;
}

static httpc_error tls_handshake(struct conn *c, SSL_CTX *ctx, const char *host, int host_is_ip,
                                 uint64_t deadline)
{
    c->ssl = SSL_new(ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
        return HTTPC_E_TLS_INIT;
    if (host_is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) != 1)
            return HTTPC_E_TLS_INIT;
    } else {
        if (SSL_set_tlsext_host_name(c->ssl, host) != 1 || SSL_set1_host(c->ssl, host) != 1)
            return HTTPC_E_TLS_INIT;
    }
    SSL_set_connect_state(c->ssl);
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return HTTPC_OK;
        int e = SSL_get_error(c->ssl, r);
        short rev = 0;
        int w;
        if (e == SSL_ERROR_WANT_READ)
            w = poll_fd(c->fd, POLLIN, deadline, &rev);
        else if (e == SSL_ERROR_WANT_WRITE)
            w = poll_fd(c->fd, POLLOUT, deadline, &rev);
        else {
            c->broken = 1;
            ERR_clear_error();
            return SSL_get_verify_result(c->ssl) != X509_V_OK ? HTTPC_E_TLS_VERIFY : HTTPC_E_TLS_HANDSHAKE;
        }
        if (w == 0)
            return HTTPC_E_TIMEOUT;
        if (w < 0)
            return HTTPC_E_TLS_HANDSHAKE;
    }
}

httpc_error conn_open(struct conn **out, const char *host, uint16_t port, SSL_CTX *ctx, int host_is_ip,
                      uint64_t deadline)
{
    *out = NULL;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return HTTPC_E_NOMEM;
    c->fd = -1;
    httpc_error err = tcp_connect(host, port, deadline, &c->fd);
    if (err == HTTPC_OK && ctx)
        err = tls_handshake(c, ctx, host, host_is_ip, deadline);
    if (err != HTTPC_OK) {
        c->broken = 1;
        conn_close(c);
        return err;
    }
    *out = c;
    return HTTPC_OK;
}

static enum conn_io tls_result(struct conn *c, int r)
{
    int e = SSL_get_error(c->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ: return CONN_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return CONN_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        c->broken = 1;
        return CONN_IO_EOF;
    case SSL_ERROR_SSL: {
        unsigned long le = ERR_peek_error();
        c->broken = 1;
        ERR_clear_error();
        if (ERR_GET_REASON(le) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            return CONN_IO_EOF_UNCLEAN;
        return CONN_IO_ERROR;
    }
    case SSL_ERROR_SYSCALL:
        c->broken = 1;
        ERR_clear_error();
        return errno == 0 ? CONN_IO_EOF_UNCLEAN : CONN_IO_ERROR;
    default:
        c->broken = 1;
        ERR_clear_error();
        return CONN_IO_ERROR;
    }
}

/* Reads what is available (plain or TLS) without blocking. */
enum conn_io conn_read_some(struct conn *c, void *buf, size_t len, size_t *n)
{
    *n = 0;
    if (c->ssl) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_read(c->ssl, buf, len > 0x40000000 ? 0x40000000 : (int)len);
        if (r > 0) {
            *n = (size_t)r;
            return CONN_IO_OK;
        }
        return tls_result(c, r);
    }
    for (;;) {
        ssize_t r = recv(c->fd, buf, len, 0);
        if (r > 0) {
            *n = (size_t)r;
            return CONN_IO_OK;
        }
        if (r == 0) {
            c->broken = 1;
            return CONN_IO_EOF;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return CONN_IO_WANT_READ;
        c->broken = 1;
        return CONN_IO_ERROR;
    }
}

/* Writes what the socket takes now (plain or TLS) without blocking. */
enum conn_io conn_write_some(struct conn *c, const void *buf, size_t len, size_t *n)
{
    *n = 0;
    if (c->ssl) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_write(c->ssl, buf, len > 0x40000000 ? 0x40000000 : (int)len);
        if (r > 0) {
            *n = (size_t)r;
            return CONN_IO_OK;
        }
        enum conn_io io = tls_result(c, r);
        return io == CONN_IO_EOF || io == CONN_IO_EOF_UNCLEAN ? CONN_IO_ERROR : io;
    }
    for (;;) {
        ssize_t r = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (r >= 0) {
            *n = (size_t)r;
            return CONN_IO_OK;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return CONN_IO_WANT_WRITE;
        c->broken = 1;
        return CONN_IO_ERROR;
    }
}

/* Waits with poll(2) until the connection is readable or writable as asked, or the deadline. */
int conn_wait(struct conn *c, int want_read, int want_write, uint64_t deadline, int *readable, int *writable)
{
    short ev = (short)((want_read ? POLLIN : 0) | (want_write ? POLLOUT : 0));
    short rev = 0;
    *readable = *writable = 0;
    if (want_read && c->ssl && SSL_has_pending(c->ssl)) {
        *readable = 1;
        return 1;
    }
    int r = poll_fd(c->fd, ev, deadline, &rev);
    if (r <= 0)
        return r;
    /* Errors and hang-ups show as readable: the next read reports them. */
    if (rev & (POLLIN | POLLHUP | POLLERR))
        *readable = 1;
    if (rev & POLLOUT)
        *writable = 1;
    if ((rev & (POLLHUP | POLLERR)) && !want_read)
        *writable = 1; /* the next write reports the error */
    return 1;
}

static int fd_readable_now(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
    int r;
    do
        r = poll(&pfd, 1, 0);
    while (r < 0 && errno == EINTR);
    return r != 0; /* errors count as "something happened" */
}

/* Whether a connection about to be pooled or reused has nothing pending (no bytes, EOF or close_notify). */
int conn_idle_alive(struct conn *c)
{
    if (c->broken || c->rpos != c->rend)
        return 0;
    if (!c->ssl) {
        if (!fd_readable_now(c->fd))
            return 1;
        char b;
        ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        c->broken = 1; /* unsolicited bytes, EOF or an error */
        return 0;
    }
    if (SSL_pending(c->ssl) > 0)
        return 0;
    /* Process whatever TLS records have arrived: handshake messages (tickets,
     * key updates) are fine, application data or an alert is not. Bounded. */
    for (int rounds = 0; rounds < 16; rounds++) {
        if (!SSL_has_pending(c->ssl) && !fd_readable_now(c->fd))
            return 1;
        uint8_t scratch[256];
        size_t n;
        enum conn_io io = conn_read_some(c, scratch, sizeof(scratch), &n);
        if (io == CONN_IO_WANT_READ)
            continue;
        if (io == CONN_IO_WANT_WRITE) /* e.g. a KeyUpdate reply that cannot go out now */
            return 1;
        c->broken = 1;
        return 0;
    }
    return 0;
}

void conn_close(struct conn *c)
{
    if (!c)
        return;
    if (c->ssl) {
        if (!c->broken) {
            ERR_clear_error();
            SSL_shutdown(c->ssl); /* one non-blocking attempt to send close_notify */
        }
        ERR_clear_error();
        SSL_free(c->ssl);
    }
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}
