/* httpc: the fcgispec reference HTTP/1.1 client.
 *
 * A small client whose one job is to get connection reuse right: a per-origin
 * idle pool, HTTP and HTTPS (OpenSSL 3, verification on), a streaming response
 * body, and the reuse rules that the client suite's CLI-REUSE scenarios check.
 *
 * Lifecycle of one request:
 *
 *     httpc_response *resp;
 *     httpc_error e = httpc_request(cl, &req, &resp, NULL); // sends, reads the head
 *     while ((n = httpc_response_read(resp, buf, sizeof buf, &e)) > 0) ...
 *     httpc_response_free(resp);                        // release or abandon
 *
 * The connection goes back to the pool the moment the body is complete (the
 * read that consumes its last byte, or httpc_request itself for a bodiless
 * response), whether or not the caller reads again. httpc_response_free() on an
 * unfinished body closes the connection (after finishing framing bytes that are
 * already buffered, never blocking).
 *
 * Threads: one httpc_client may be used from several threads at once; a
 * response object belongs to one thread at a time. The library installs no
 * signal handlers: a program must ignore SIGPIPE (OpenSSL writes with write(2)),
 * as the fcgispec-http-client command line does.
 */
#ifndef FCGISPEC_HTTPC_H
#define FCGISPEC_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Stable error codes; httpc_strerror() gives the text. New codes are added at the end. */
typedef enum httpc_error {
    HTTPC_OK = 0,
    HTTPC_E_NOMEM,              /* out of memory */
    HTTPC_E_INVALID,            /* invalid argument or API misuse */
    HTTPC_E_URL,                /* malformed URL */
    HTTPC_E_SCHEME,             /* URL scheme is not http or https */
    HTTPC_E_RESOLVE,            /* host name did not resolve */
    HTTPC_E_CONNECT,            /* TCP connect failed */
    HTTPC_E_TIMEOUT,            /* connect, write or read timed out */
    HTTPC_E_TLS_INIT,           /* TLS context setup failed (e.g. unreadable --cacert) */
    HTTPC_E_TLS_HANDSHAKE,      /* TLS handshake failed */
    HTTPC_E_TLS_VERIFY,         /* server certificate or host name did not verify */
    HTTPC_E_TLS,                /* TLS protocol error after the handshake */
    HTTPC_E_TLS_TRUNCATED,      /* TLS close-delimited body ended by FIN without close_notify */
    HTTPC_E_SEND,               /* writing the request failed */
    HTTPC_E_RECV,               /* reading the response failed (e.g. connection reset) */
    HTTPC_E_EMPTY_REPLY,        /* connection closed before any response byte */
    HTTPC_E_TRUNCATED_HEAD,     /* connection closed inside the response head */
    HTTPC_E_TRUNCATED_BODY,     /* connection closed before the end of a framed body */
    HTTPC_E_BAD_STATUS_LINE,    /* malformed status line */
    HTTPC_E_BAD_VERSION,        /* HTTP version other than 1.x */
    HTTPC_E_BAD_HEADER,         /* malformed header field line */
    HTTPC_E_OBS_FOLD,           /* obsolete line folding in a header */
    HTTPC_E_HEAD_TOO_LARGE,     /* response head over the size limit */
    HTTPC_E_TOO_MANY_HEADERS,   /* more header fields than the limit */
    HTTPC_E_BAD_CONTENT_LENGTH, /* Content-Length not a valid non-negative number, or too large */
    HTTPC_E_CONFLICTING_CONTENT_LENGTH, /* Content-Length values that differ */
    HTTPC_E_CL_AND_TE,          /* both Content-Length and Transfer-Encoding */
    HTTPC_E_UNSUPPORTED_TE,     /* Transfer-Encoding other than "chunked" */
    HTTPC_E_TE_IN_HTTP10,       /* Transfer-Encoding in an HTTP/1.0 response */
    HTTPC_E_BAD_CHUNK_SIZE,     /* malformed chunk-size line */
    HTTPC_E_CHUNK_TOO_LARGE,    /* chunk size over the limit */
    HTTPC_E_BAD_CHUNK,          /* chunk data not followed by CRLF */
    HTTPC_E_BAD_TRAILER,        /* malformed or oversized trailer section */
    HTTPC_E_TOO_MANY_INTERIM,   /* too many 1xx informational responses */
    HTTPC_E_BAD_REQUEST,        /* request header name or value not allowed (CR, LF, ...) */
    HTTPC_E__COUNT
} httpc_error;

const char *httpc_strerror(httpc_error e);

struct httpc_config {
    const char *cacert;          /* PEM file of trusted CAs; NULL: the system store */
    unsigned max_idle_per_host;  /* idle connections kept per origin (0: no pooling); default 6 */
    unsigned max_idle_total;     /* idle connections kept over all origins (LRU eviction); default 64 */
    unsigned idle_timeout_ms;    /* an idle connection older than this is closed; default 90000 */
    unsigned connect_timeout_ms; /* TCP connect plus TLS handshake; default 10000 */
    unsigned timeout_ms;         /* whole request: send, head and body; default 10000 */
    unsigned max_retries;        /* fresh-connection retries after a reused one died; default 1 */
};

/* Fills in the defaults above. */
void httpc_config_default(struct httpc_config *cfg);

typedef struct httpc_client httpc_client;
typedef struct httpc_response httpc_response;

/* NULL config: defaults. On failure returns NULL and sets *err (when err is not NULL). */
httpc_client *httpc_client_new(const struct httpc_config *cfg, httpc_error *err);
/* Closes every pooled connection. Responses must have been freed first. */
void httpc_client_free(httpc_client *cl);
/* Closes every idle pooled connection (closeIdleConnections). */
void httpc_client_close_idle(httpc_client *cl);

struct httpc_stats {
    unsigned long connects; /* connections opened so far */
    unsigned long reuses;   /* requests sent on a pooled connection */
    unsigned long retries;  /* automatic retries on a fresh connection */
    size_t idle;            /* connections in the idle pool now */
};
void httpc_client_stats(httpc_client *cl, struct httpc_stats *out);

struct httpc_header {
    const char *name;
    const char *value;
};

struct httpc_request {
    const char *method;                 /* "GET", "POST", ... */
    const char *url;                    /* http://host[:port]/path?query or https://... */
    const struct httpc_header *headers; /* extra headers; Host and Content-Length are added */
    size_t nheaders;
    const void *body; /* NULL with body_len 0: no body (POST/PUT/PATCH still send Content-Length: 0) */
    size_t body_len;
};

/* Sends the request and reads the response head (skipping 1xx interim
 * responses other than 101). On success *out is a response to read and free.
 * Idempotent requests (GET HEAD OPTIONS PUT DELETE TRACE, or any method with an
 * Idempotency-Key header) that fail on a reused connection before any response
 * byte are retried once on a fresh connection. */
struct httpc_request_info {
    int reused;       /* the last attempt went out on a pooled connection */
    unsigned retries; /* automatic retries made (0 or 1 with the default max_retries) */
};
httpc_error httpc_request(httpc_client *cl, const struct httpc_request *req, httpc_response **out,
                          struct httpc_request_info *info /* may be NULL */);

int httpc_response_status(const httpc_response *resp);
/* 0 for HTTP/1.0, 1 for HTTP/1.1. */
int httpc_response_version_minor(const httpc_response *resp);
/* The first header of that name (case-insensitive), or NULL. Valid until free. */
const char *httpc_response_header(const httpc_response *resp, const char *name);
/* 1 if the request went out on a pooled connection. */
int httpc_response_reused(const httpc_response *resp);
/* Reads body bytes: > 0 bytes read, 0 at the end of the body, -1 on error (*err set). */
ssize_t httpc_response_read(httpc_response *resp, void *buf, size_t len, httpc_error *err);
/* Releases the response: a complete body's connection is already pooled or
 * closed; an unfinished body's connection is closed. NULL is fine. */
void httpc_response_free(httpc_response *resp);

#ifdef __cplusplus
}
#endif

#endif
