/* A FIFO of bytes with a hard capacity: the one buffer type of the responder.
 * Storage grows on demand up to the cap, so idle connections stay small. */
#ifndef BYTE_QUEUE_H
#define BYTE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct byte_queue {
    uint8_t *data;
    size_t head; /* first unread byte */
    size_t len;  /* bytes queued after head */
    size_t alloc;
    size_t cap; /* hard limit on len */
};

void byte_queue_init(struct byte_queue *q, size_t cap);
void byte_queue_free(struct byte_queue *q);

/* NULL while nothing was ever stored (NULL + 0 is undefined behaviour in C). */
static inline const uint8_t *byte_queue_peek(const struct byte_queue *q) { return q->data ? q->data + q->head : NULL; }
static inline size_t byte_queue_len(const struct byte_queue *q) { return q->len; }
static inline size_t byte_queue_room(const struct byte_queue *q) { return q->cap - q->len; }

/* Appends len bytes; false (and nothing appended) if that would pass the cap or
 * memory runs out. */
bool byte_queue_append(struct byte_queue *q, const void *src, size_t len);

/* Contiguous free space after the queued bytes, at most `want` bytes, growing
 * the storage if needed; *got receives its size (0 at the cap or out of memory).
 * Follow with byte_queue_commit() for the bytes actually written. */
uint8_t *byte_queue_reserve(struct byte_queue *q, size_t want, size_t *got);
void byte_queue_commit(struct byte_queue *q, size_t n);

void byte_queue_consume(struct byte_queue *q, size_t n);
void byte_queue_clear(struct byte_queue *q);

#endif
