/* One client connection: a non-blocking TCP socket, optionally TLS (OpenSSL 3),
 * with its read buffer. Every wait is a poll() bounded by a deadline
 * (monotonic milliseconds), so nothing here can hang. */
#ifndef FCGISPEC_HTTPC_CONNECTION_H
#define FCGISPEC_HTTPC_CONNECTION_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "httpc.h"

#define CONN_RBUF_SIZE 16384

struct conn {
    int fd;
    SSL *ssl;       /* NULL for plain TCP */
    int broken;     /* an I/O error or EOF was seen: never send close_notify, never reuse */
    uint8_t rbuf[CONN_RBUF_SIZE];
    size_t rpos, rend; /* unconsumed bytes are rbuf[rpos .. rend) */
    unsigned long requests; /* requests sent on this connection */
};

enum conn_io {
    CONN_IO_OK,          /* *n bytes transferred (> 0) */
    CONN_IO_WANT_READ,   /* wait for readability and call again */
    CONN_IO_WANT_WRITE,  /* wait for writability and call again */
    CONN_IO_EOF,         /* orderly end: FIN (plain) or close_notify (TLS) */
    CONN_IO_EOF_UNCLEAN, /* TLS: FIN without close_notify */
    CONN_IO_ERROR        /* reset or protocol error */
};

uint64_t conn_now_ms(void);

/* Resolves, connects and (with ctx) does the TLS handshake with SNI and
 * host name (or IP address) verification. */
httpc_error conn_open(struct conn **out, const char *host, uint16_t port, SSL_CTX *ctx, int host_is_ip,
                      uint64_t deadline);

enum conn_io conn_read_some(struct conn *c, void *buf, size_t len, size_t *n);
enum conn_io conn_write_some(struct conn *c, const void *buf, size_t len, size_t *n);

/* Waits for the directions asked; returns 1 ready (flags set), 0 timeout, -1 error. */
int conn_wait(struct conn *c, int want_read, int want_write, uint64_t deadline, int *readable, int *writable);

/* Before pooling or reusing: 1 if nothing is pending on the connection (no
 * buffered or unsolicited bytes, no EOF, no close_notify), else 0. TLS
 * handshake records that carry no application data (TLS 1.3 NewSessionTicket,
 * KeyUpdate) are consumed and leave the connection alive. Never blocks. */
int conn_idle_alive(struct conn *c);

/* Sends close_notify (TLS, best effort, non-blocking) unless broken; closes. */
void conn_close(struct conn *c);

#endif
