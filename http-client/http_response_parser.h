/* A pure, incremental HTTP/1.x response parser: bytes in, events out, no I/O.
 *
 * Feed any split of the input; the result is the same as for the whole. One
 * call stops at the first event:
 *   HRP_NEED_MORE  all input consumed, nothing to report
 *   HRP_HEADERS    the head of the final response is complete (1xx interim
 *                  responses other than 101 are skipped and counted)
 *   HRP_DATA       body bytes: *data points into the input, *data_len <= max_data
 *   HRP_PAUSE      body bytes are next but max_data was 0 (nothing consumed past them)
 *   HRP_DONE       the message is complete; further input is never consumed
 *                  (anything left over is excess the caller must deal with)
 *   HRP_ERROR      malformed input; hrp_error() says what; sticky
 * At end of input (EOF), hrp_finish() completes a close-delimited body or
 * reports the truncation.
 *
 * Every buffer is bounded by struct hrp_limits; the parser allocates once in
 * hrp_init(). */
#ifndef FCGISPEC_HTTP_RESPONSE_PARSER_H
#define FCGISPEC_HTTP_RESPONSE_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "httpc.h"

struct hrp_limits {
    size_t max_head_bytes;    /* status line + header lines, without line ends */
    size_t max_headers;       /* header fields per response */
    unsigned max_interim;     /* 1xx responses before the final one */
    uint64_t max_body_length; /* largest Content-Length accepted */
    uint64_t max_chunk_size;  /* largest chunk accepted */
    size_t max_chunk_line;    /* chunk-size line including extensions */
    size_t max_trailer_bytes; /* whole trailer section */
};

/* 32 KiB head, 100 headers, 5 interim, 2^53 body, 2^40 chunk, 4 KiB chunk line, 16 KiB trailers. */
void hrp_limits_default(struct hrp_limits *lim);

enum hrp_event { HRP_NEED_MORE, HRP_HEADERS, HRP_DATA, HRP_PAUSE, HRP_DONE, HRP_ERROR };

enum hrp_body_kind {
    HRP_BODY_NONE,    /* HEAD, 1xx, 204, 304, or Content-Length: 0 */
    HRP_BODY_LENGTH,  /* Content-Length */
    HRP_BODY_CHUNKED, /* Transfer-Encoding: chunked */
    HRP_BODY_CLOSE    /* delimited by the connection closing */
};

struct hrp_field {
    uint32_t name_off, name_len, value_off, value_len;
};

struct hrp {
    struct hrp_limits lim;
    int is_head;
    int state;
    httpc_error err;
    int saw_cr;
    /* the head being parsed: lines copied (without line ends) into head[] */
    char *head;
    size_t head_len, line_start;
    struct hrp_field *fields;
    size_t nfields;
    int version_minor, status;
    uint32_t reason_off, reason_len;
    unsigned interim;
    size_t head_bytes_seen; /* any byte of any head (0 at EOF: empty reply) */
    /* framing of the final response */
    enum hrp_body_kind body;
    int keep_alive;
    uint64_t content_length; /* HRP_BODY_LENGTH */
    uint64_t remaining;      /* of the Content-Length or the current chunk */
    uint64_t body_bytes;
    /* chunk-size and trailer lines */
    size_t line_len;
    unsigned chunk_digits;
    int chunk_after_digits;
    size_t trailer_bytes;
};

int hrp_init(struct hrp *p, const struct hrp_limits *lim, int is_head); /* 0, or -1 out of memory */
void hrp_free(struct hrp *p);

enum hrp_event hrp_execute(struct hrp *p, const uint8_t *in, size_t len, size_t max_data, size_t *consumed,
                           const uint8_t **data, size_t *data_len);
/* End of input: HRP_DONE or HRP_ERROR. */
enum hrp_event hrp_finish(struct hrp *p);

httpc_error hrp_error(const struct hrp *p);
int hrp_done(const struct hrp *p);
int hrp_head_complete(const struct hrp *p); /* the final head has been reported */
/* A final (non-1xx, or 101) status line has been parsed: the answer has begun. */
int hrp_final_started(const struct hrp *p);

/* Valid after HRP_HEADERS: */
int hrp_status(const struct hrp *p);
int hrp_version_minor(const struct hrp *p);
enum hrp_body_kind hrp_body_kind(const struct hrp *p);
uint64_t hrp_content_length(const struct hrp *p);
/* HTTP/1.1 without a "close" token, or HTTP/1.0 with "keep-alive"; and a
 * framed body (never for close-delimited bodies or 101). */
int hrp_keep_alive(const struct hrp *p);
size_t hrp_field_count(const struct hrp *p);
/* Field i's name and value (not NUL-terminated). */
void hrp_field(const struct hrp *p, size_t i, const char **name, size_t *name_len, const char **value,
               size_t *value_len);
/* First field of that name (case-insensitive): its value (NUL-terminated, the
 * head buffer keeps a NUL after each value) or NULL. */
const char *hrp_field_value(const struct hrp *p, const char *name);
/* Keep-Alive: timeout=N in seconds, or -1. */
long hrp_keep_alive_timeout(const struct hrp *p);

#endif
