/* The timer heap against a plain array model: random inserts, moves and removals,
 * checking after each step that the first node is the earliest deadline and that
 * every node's index points back at it. */
#include <stdlib.h>

#include "test_main.h"
#include "timer_heap.h"

#define NODES 300

static void check_invariants(struct test_counts *tc, const struct timer_heap *h, const struct timer_node *nodes)
{
    uint64_t earliest = 0;
    size_t in_heap = 0;
    for (size_t i = 0; i < NODES; i++) {
        if (!nodes[i].due_ms)
            continue;
        in_heap++;
        if (!earliest || nodes[i].due_ms < earliest)
            earliest = nodes[i].due_ms;
        if (!CHECK(nodes[i].index < h->count && h->nodes[nodes[i].index] == &nodes[i]))
            return;
    }
    CHECK_EQ_U(timer_heap_count(h), in_heap);
    const struct timer_node *first = timer_heap_first(h);
    if (in_heap == 0)
        CHECK(first == NULL);
    else
        CHECK(first && first->due_ms == earliest);
    for (size_t i = 1; i < h->count; i++)
        if (!CHECK(h->nodes[(i - 1) / 2]->due_ms <= h->nodes[i]->due_ms))
            return;
}

static void test_random_operations(struct test_counts *tc)
{
    struct timer_node nodes[NODES] = {0};
    struct timer_heap h;
    timer_heap_init(&h);
    unsigned seed = 12345;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        size_t which = (seed >> 8) % NODES;
        seed = seed * 1103515245u + 12345u;
        /* A quarter of the operations remove; few distinct deadlines make ties common. */
        uint64_t due = (seed >> 8) % 4 == 0 ? 0 : 1 + (seed >> 12) % 50;
        CHECK(timer_heap_set(&h, &nodes[which], due));
        CHECK_EQ_U(nodes[which].due_ms, due);
        if (step % 97 == 0)
            check_invariants(tc, &h, nodes);
    }
    check_invariants(tc, &h, nodes);
    /* Draining in order yields non-decreasing deadlines. */
    uint64_t last = 0;
    struct timer_node *first;
    while ((first = timer_heap_first(&h))) {
        CHECK(first->due_ms >= last);
        last = first->due_ms;
        timer_heap_set(&h, first, 0);
    }
    check_invariants(tc, &h, nodes);
    timer_heap_free(&h);
}

static void test_edges(struct test_counts *tc)
{
    struct timer_heap h;
    timer_heap_init(&h);
    struct timer_node a = {0}, b = {0};
    CHECK(timer_heap_first(&h) == NULL);
    CHECK(timer_heap_set(&h, &a, 0)); /* removing a node that is not there */
    CHECK_EQ_U(timer_heap_count(&h), 0);
    CHECK(timer_heap_set(&h, &a, 10));
    CHECK(timer_heap_set(&h, &b, 5));
    CHECK(timer_heap_first(&h) == &b);
    CHECK(timer_heap_set(&h, &b, 20)); /* moved later */
    CHECK(timer_heap_first(&h) == &a);
    CHECK(timer_heap_set(&h, &b, 1)); /* moved earlier */
    CHECK(timer_heap_first(&h) == &b);
    CHECK(timer_heap_set(&h, &b, 0));
    CHECK(timer_heap_first(&h) == &a);
    CHECK_EQ_U(timer_heap_count(&h), 1);
    timer_heap_free(&h);
}

int main(void)
{
    struct test_counts counts = {0};
    struct test_counts *tc = &counts;
    test_edges(tc);
    test_random_operations(tc);
    return test_finish(tc);
}
