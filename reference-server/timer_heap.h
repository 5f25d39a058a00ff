/* A binary min-heap of deadlines, intrusive: each owner embeds a timer_node and
 * the heap stores pointers to them. The event loop keeps one entry per
 * connection that waits for a deadline, so finding the next one costs O(1) and
 * moving one O(log n), where scanning every connection on every loop turn cost
 * O(connections). */
#ifndef TIMER_HEAP_H
#define TIMER_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct timer_node {
    uint64_t due_ms; /* 0 while not in the heap */
    size_t index;    /* position in the heap while in it */
};

struct timer_heap {
    struct timer_node **nodes;
    size_t count;
    size_t alloc;
};

void timer_heap_init(struct timer_heap *h);
void timer_heap_free(struct timer_heap *h);

/* Puts the node in the heap at due_ms, moves it if it is there already, or takes
 * it out when due_ms is 0. False (and the node out of the heap) when memory runs out. */
bool timer_heap_set(struct timer_heap *h, struct timer_node *node, uint64_t due_ms);

/* The earliest node, or NULL when the heap is empty. */
static inline struct timer_node *timer_heap_first(const struct timer_heap *h) { return h->count ? h->nodes[0] : NULL; }

static inline size_t timer_heap_count(const struct timer_heap *h) { return h->count; }

#endif
