/* FastCGI 1.0 record codec: pure functions over caller-owned buffers, no I/O,
 * no allocation. Every decoder checks each declared length against the bytes
 * actually present and reports what is wrong instead of reading past them. */
#ifndef FCGI_CODEC_H
#define FCGI_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FCGI_VERSION_1 1
#define FCGI_HEADER_LEN 8
#define FCGI_MAX_CONTENT 65535u
#define FCGI_MAX_PADDING 255u
#define FCGI_MAX_RECORD (FCGI_HEADER_LEN + FCGI_MAX_CONTENT + FCGI_MAX_PADDING)
#define FCGI_NULL_REQUEST_ID 0
/* The largest length a name-value pair can declare: 31 bits (spec §3.4). */
#define FCGI_MAX_NV_LENGTH 0x7fffffffu

enum fcgi_type {
    FCGI_BEGIN_REQUEST = 1,
    FCGI_ABORT_REQUEST = 2,
    FCGI_END_REQUEST = 3,
    FCGI_PARAMS = 4,
    FCGI_STDIN = 5,
    FCGI_STDOUT = 6,
    FCGI_STDERR = 7,
    FCGI_DATA = 8,
    FCGI_GET_VALUES = 9,
    FCGI_GET_VALUES_RESULT = 10,
    FCGI_UNKNOWN_TYPE = 11,
};
#define FCGI_MAXTYPE FCGI_UNKNOWN_TYPE

enum fcgi_role { FCGI_RESPONDER = 1, FCGI_AUTHORIZER = 2, FCGI_FILTER = 3 };

#define FCGI_KEEP_CONN 1

enum fcgi_protocol_status {
    FCGI_REQUEST_COMPLETE = 0,
    FCGI_CANT_MPX_CONN = 1,
    FCGI_OVERLOADED = 2,
    FCGI_UNKNOWN_ROLE = 3,
};

struct fcgi_header {
    uint8_t version;
    uint8_t type;
    uint16_t request_id;
    uint16_t content_length;
    uint8_t padding_length;
};

struct fcgi_begin_request {
    uint16_t role;
    uint8_t flags;
};

struct fcgi_end_request {
    uint32_t app_status;
    uint8_t protocol_status;
};

/* Result of the decoders. FCGI_NEED_MORE means "valid so far, but incomplete". */
enum fcgi_decode_status {
    FCGI_DECODE_OK = 0,
    FCGI_DECODE_NEED_MORE,   /* fewer bytes than a header or a length prefix needs */
    FCGI_DECODE_BAD_LENGTH,  /* a declared length runs past the bytes it must fit in */
    FCGI_DECODE_BAD_SIZE,    /* a fixed-size body (BEGIN, END, UNKNOWN_TYPE) of the wrong size */
};

/* Header: decode needs FCGI_HEADER_LEN bytes, encode writes exactly that many. */
enum fcgi_decode_status fcgi_header_decode(const uint8_t *buf, size_t len, struct fcgi_header *out);
void fcgi_header_encode(const struct fcgi_header *h, uint8_t out[FCGI_HEADER_LEN]);

/* Total on-wire size of the record a header announces. */
size_t fcgi_record_size(const struct fcgi_header *h);

/* Padding that brings content_length up to the next multiple of 8 (spec §3.3). */
uint8_t fcgi_padding_for(size_t content_length);

/* Writes header, content and zeroed padding (padding as fcgi_padding_for) into out.
 * Returns the bytes written, or 0 if content_length > FCGI_MAX_CONTENT or out_cap is
 * too small. content may be NULL when content_length is 0. */
size_t fcgi_record_encode(uint8_t type, uint16_t request_id, const uint8_t *content,
                          size_t content_length, uint8_t *out, size_t out_cap);

/* BEGIN_REQUEST body: exactly 8 bytes (role, flags, 5 reserved). */
enum fcgi_decode_status fcgi_begin_request_decode(const uint8_t *body, size_t len,
                                                  struct fcgi_begin_request *out);
void fcgi_begin_request_encode(const struct fcgi_begin_request *b, uint8_t out[8]);

/* END_REQUEST body: exactly 8 bytes (appStatus, protocolStatus, 3 reserved). */
enum fcgi_decode_status fcgi_end_request_decode(const uint8_t *body, size_t len,
                                                struct fcgi_end_request *out);
void fcgi_end_request_encode(const struct fcgi_end_request *e, uint8_t out[8]);

/* UNKNOWN_TYPE body: the type byte then 7 reserved zero bytes. */
void fcgi_unknown_type_encode(uint8_t type, uint8_t out[8]);

/* One name-value pair; name and value point into the decoded buffer. */
struct fcgi_nv {
    const uint8_t *name;
    size_t name_len;
    const uint8_t *value;
    size_t value_len;
};

/* Decodes one pair at buf. Lengths 0..127 take one byte; a byte with the top bit
 * set starts a 4-byte length (top bit masked off), which may also carry a short
 * length. On FCGI_DECODE_OK, *consumed is the pair's encoded size. NEED_MORE when
 * a length prefix is cut short; BAD_LENGTH when a declared length runs past len. */
enum fcgi_decode_status fcgi_nv_decode(const uint8_t *buf, size_t len, struct fcgi_nv *out,
                                       size_t *consumed);

/* Size of the encoding of one pair (1-byte lengths below 128, 4-byte otherwise). */
size_t fcgi_nv_encoded_size(size_t name_len, size_t value_len);

/* Encodes one pair; returns bytes written, or 0 if it does not fit in out_cap or a
 * length exceeds FCGI_MAX_NV_LENGTH. */
size_t fcgi_nv_encode(const uint8_t *name, size_t name_len, const uint8_t *value,
                      size_t value_len, uint8_t *out, size_t out_cap);

/* Name of a record type for logs ("BEGIN_REQUEST", ..., "UNKNOWN(200)" into buf;
 * "UNKNOWN" when buf is NULL or too small). */
const char *fcgi_type_name(uint8_t type, char *buf, size_t buf_len);

#endif
