/* Small helpers the bundled applications share: query strings, digests, text. */
#ifndef APP_UTIL_H
#define APP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "byte_queue.h"

/* One pair of a k=v&k=v query string as it appears (still percent-encoded). */
struct query_pair {
    const uint8_t *key;
    size_t key_len;
    bool has_value; /* an '=' follows the key */
    const uint8_t *value;
    size_t value_len;
};

/* The pair at *pos, moving *pos past it; false at the end. Apps read the query in
 * one pass, taking the first pair of each key. */
bool query_next(const uint8_t *query, size_t query_len, size_t *pos, struct query_pair *pair);

/* True when the pair is `key=...`. */
bool query_key_is(const struct query_pair *pair, const char *key);

/* Percent-decodes the value into out (NUL-terminated, cut at out_cap - 1). */
void query_decode(const struct query_pair *pair, char *out, size_t out_cap);

/* The value as an unsigned decimal number, or `fallback` when it is not one. */
uint64_t query_decode_u64(const struct query_pair *pair, uint64_t fallback);

/* Streaming SHA-256 (OpenSSL), with the length seen so far. The OpenSSL context
 * is made at the first non-empty update: most requests carry no body, and the
 * digest of nothing is a constant (the context, the provider fetch and the final
 * block were a fifth of a small request's cost). */
struct stream_digest {
    void *md_ctx;
    uint64_t length;
    bool failed; /* OpenSSL could not make or run the context: no digest */
};
bool stream_digest_init(struct stream_digest *d);
void stream_digest_update(struct stream_digest *d, const uint8_t *data, size_t len);
/* Writes 64 lowercase hex digits and a NUL into hex; the digest can't be updated after. */
void stream_digest_final_hex(struct stream_digest *d, char hex[65]);
void stream_digest_free(struct stream_digest *d);

/* Appends text as a JSON string body: every byte 0x00-0xFF becomes the character
 * U+0000-U+00FF, so binary params survive (decode with latin-1 on the other side). */
bool json_append_bytes(struct byte_queue *out, const uint8_t *data, size_t len);
bool queue_printf(struct byte_queue *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
