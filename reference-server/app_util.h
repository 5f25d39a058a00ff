/* Small helpers the bundled applications share: query strings, digests, text. */
#ifndef APP_UTIL_H
#define APP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "byte_queue.h"

/* Finds `key` in a k=v&k=v query string and percent-decodes its value into out
 * (NUL-terminated, cut at out_cap - 1). False when the key is absent. */
bool query_get(const uint8_t *query, size_t query_len, const char *key, char *out, size_t out_cap);

/* The value of `key` as an unsigned number, or `fallback` when absent or not a number. */
uint64_t query_get_u64(const uint8_t *query, size_t query_len, const char *key, uint64_t fallback);

/* Streaming SHA-256 (OpenSSL), with the length seen so far. */
struct stream_digest {
    void *md_ctx;
    uint64_t length;
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
