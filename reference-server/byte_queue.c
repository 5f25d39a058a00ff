#include "byte_queue.h"

#include <stdlib.h>
#include <string.h>

#define BYTE_QUEUE_MIN_ALLOC 1024u

void byte_queue_init(struct byte_queue *q, size_t cap)
{
    memset(q, 0, sizeof(*q));
    q->cap = cap;
}

void byte_queue_free(struct byte_queue *q)
{
    free(q->data);
    byte_queue_init(q, q->cap);
}

/* Makes room for `extra` more bytes after the queued ones: first by moving the
 * queued bytes to the front, then by doubling the storage up to the cap. */
static bool make_room(struct byte_queue *q, size_t extra)
{
    if (extra > q->cap - q->len)
        return false;
    size_t need = q->len + extra;
    if (q->head + need <= q->alloc)
        return true;
    if (need <= q->alloc) {
        memmove(q->data, q->data + q->head, q->len);
        q->head = 0;
        return true;
    }
    size_t alloc = q->alloc ? q->alloc : BYTE_QUEUE_MIN_ALLOC;
    while (alloc < need)
        alloc = alloc > q->cap / 2 ? q->cap : alloc * 2;
    uint8_t *grown = malloc(alloc);
    if (!grown)
        return false;
    if (q->len)
        memcpy(grown, q->data + q->head, q->len);
    free(q->data);
    q->data = grown;
    q->alloc = alloc;
    q->head = 0;
    return true;
}

bool byte_queue_append(struct byte_queue *q, const void *src, size_t len)
{
    if (len == 0)
        return true;
    if (!make_room(q, len))
        return false;
    memcpy(q->data + q->head + q->len, src, len);
    q->len += len;
    return true;
}

uint8_t *byte_queue_reserve(struct byte_queue *q, size_t want, size_t *got)
{
    if (want > q->cap - q->len)
        want = q->cap - q->len;
    if (want == 0 || !make_room(q, want)) {
        *got = 0;
        return NULL;
    }
    *got = q->alloc - q->head - q->len;
    if (*got > q->cap - q->len)
        *got = q->cap - q->len;
    return q->data + q->head + q->len;
}

void byte_queue_commit(struct byte_queue *q, size_t n) { q->len += n; }

void byte_queue_consume(struct byte_queue *q, size_t n)
{
    if (n >= q->len) {
        q->head = 0;
        q->len = 0;
        return;
    }
    q->head += n;
    q->len -= n;
}

void byte_queue_clear(struct byte_queue *q) { byte_queue_consume(q, q->len); }
