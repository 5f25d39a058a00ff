#include "timer_heap.h"

#include <stdlib.h>

void timer_heap_init(struct timer_heap *h) { *h = (struct timer_heap){0}; }

void timer_heap_free(struct timer_heap *h)
{
    free(h->nodes);
    *h = (struct timer_heap){0};
}

static void place(struct timer_heap *h, size_t i, struct timer_node *node)
{
    h->nodes[i] = node;
    node->index = i;
}

static void sift_up(struct timer_heap *h, size_t i)
{
    struct timer_node *node = h->nodes[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->nodes[parent]->due_ms <= node->due_ms)
            break;
        place(h, i, h->nodes[parent]);
        i = parent;
    }
    place(h, i, node);
}

static void sift_down(struct timer_heap *h, size_t i)
{
    struct timer_node *node = h->nodes[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->count)
            break;
        if (child + 1 < h->count && h->nodes[child + 1]->due_ms < h->nodes[child]->due_ms)
            child++;
        if (node->due_ms <= h->nodes[child]->due_ms)
            break;
        place(h, i, h->nodes[child]);
        i = child;
    }
    place(h, i, node);
}

static void remove_at(struct timer_heap *h, size_t i)
{
    struct timer_node *removed = h->nodes[i];
    removed->due_ms = 0;
    h->count--;
    if (i == h->count)
        return;
    struct timer_node *moved = h->nodes[h->count];
    place(h, i, moved);
    sift_down(h, i);
    sift_up(h, moved->index); /* the moved node may belong above its new place, or below */
}

/* Puts a node in the heap at due_ms, moves it, or (due_ms 0) takes it out. */
bool timer_heap_set(struct timer_heap *h, struct timer_node *node, uint64_t due_ms)
{
    bool present = node->due_ms != 0;
    if (due_ms == 0) {
        if (present)
            remove_at(h, node->index);
        return true;
    }
    if (present) {
        uint64_t old = node->due_ms;
        node->due_ms = due_ms;
        if (due_ms < old)
            sift_up(h, node->index);
        else if (due_ms > old)
            sift_down(h, node->index);
        return true;
    }
    if (h->count == h->alloc) {
        size_t alloc = h->alloc ? h->alloc * 2 : 16;
        struct timer_node **nodes = realloc(h->nodes, alloc * sizeof(*nodes));
        if (!nodes)
            return false;
        h->nodes = nodes;
        h->alloc = alloc;
    }
    node->due_ms = due_ms;
    place(h, h->count++, node);
    sift_up(h, node->index);
    return true;
}
