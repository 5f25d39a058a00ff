/* Minimal assertion helpers shared by the C unit tests.
 *
 * The counters live in a struct owned by main() and passed to every test
 * function as `struct test_counts *tc`; the macros expect that name in scope.
 * A failed check prints file:line and carries on, so one run reports every
 * failure instead of the first. */
#ifndef FCGISPEC_TEST_MAIN_H
#define FCGISPEC_TEST_MAIN_H

#include <stdio.h>
#include <string.h>

struct test_counts {
    unsigned long passed;
    unsigned long failed;
};

/* Records one check; the macros below are the intended way to call it. */
static inline int test_record(struct test_counts *tc, int ok, const char *file, int line,
                              const char *what)
{
    if (ok) {
        tc->passed++;
    } else {
        tc->failed++;
        printf("%s:%d: FAILED: %s\n", file, line, what);
    }
    return ok;
}

#define CHECK(cond) test_record(tc, (cond) ? 1 : 0, __FILE__, __LINE__, #cond)

/* Unsigned comparison; both sides are widened so mixed widths compare by value. */
#define CHECK_EQ_U(a, b)                                                                    \
    do {                                                                                    \
        unsigned long long check_a_ = (unsigned long long)(a);                              \
        unsigned long long check_b_ = (unsigned long long)(b);                              \
        if (!test_record(tc, check_a_ == check_b_, __FILE__, __LINE__, #a " == " #b))      \
            printf("    left %llu (0x%llx), right %llu (0x%llx)\n", check_a_, check_a_,     \
                   check_b_, check_b_);                                                     \
    } while (0)

#define CHECK_MEM(a, b, n) \
    test_record(tc, memcmp((a), (b), (n)) == 0, __FILE__, __LINE__, "memcmp(" #a ", " #b ", " #n ") == 0")

/* Prints the closing line and gives main() its exit status. */
static inline int test_finish(const struct test_counts *tc)
{
    printf("%lu passed, %lu failed\n", tc->passed, tc->failed);
    return tc->failed > 0 ? 1 : 0;
}

#endif
