/* Unit tests for the idle pool: per-origin LIFO, per-host and total limits
 * (CLI-REUSE-24/24b), idle expiry and Keep-Alive hints (CLI-REUSE-25),
 * close-all, and use from several threads. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "pool.h"
#include "test_main.h"

struct fake {
    int id;
    int closed;
};

static void fake_close(void *c)
{
    ((struct fake *)c)->closed++;
}

static void test_basic(struct test_counts *tc)
{
    struct pool p;
    struct fake f[8] = {{0, 0}};
    for (int i = 0; i < 8; i++)
        f[i].id = i;
    CHECK(pool_init(&p, 2, 4, 1000, fake_close) == 0);
    CHECK(pool_take(&p, "http://a:80", 0) == NULL);
    CHECK_EQ_U(pool_put(&p, "http://a:80", &f[0], 0, 0), 1);
    CHECK_EQ_U(pool_idle(&p, "http://a:80"), 1);
    CHECK_EQ_U(pool_put(&p, "http://a:80", &f[1], 1, 0), 1);
    CHECK_EQ_U(pool_idle(&p, "http://a:80"), 2);
    /* the per-host limit: the third is closed, not pooled (idle 1, 2, 2) */
    CHECK_EQ_U(pool_put(&p, "http://a:80", &f[2], 2, 0), 0);
    CHECK_EQ_U(f[2].closed, 1);
    CHECK_EQ_U(pool_idle(&p, "http://a:80"), 2);
    /* other origins are separate: a different port, a different scheme */
    CHECK(pool_take(&p, "http://a:81", 3) == NULL);
    CHECK(pool_take(&p, "https://a:80", 3) == NULL);
    /* LIFO: the most recently pooled first */
    CHECK(pool_take(&p, "http://a:80", 3) == &f[1]);
    CHECK(pool_take(&p, "http://a:80", 3) == &f[0]);
    CHECK(pool_take(&p, "http://a:80", 3) == NULL);
    CHECK_EQ_U(f[0].closed + f[1].closed, 0);
    pool_destroy(&p);
}

static void test_total_limit(struct test_counts *tc)
{
    struct pool p;
    struct fake f[6] = {{0, 0}};
    char key[6][32];
    CHECK(pool_init(&p, 2, 4, 100000, fake_close) == 0);
    for (int i = 0; i < 5; i++) {
        snprintf(key[i], sizeof(key[i]), "http://host%d:80", i);
        CHECK_EQ_U(pool_put(&p, key[i], &f[i], (uint64_t)i, 0), 1);
    }
    /* 5 hosts, max 4 total: the oldest (host0) evicted */
    CHECK_EQ_U(f[0].closed, 1);
    CHECK_EQ_U(pool_idle(&p, NULL), 4);
    CHECK_EQ_U(pool_idle(&p, key[0]), 0);
    for (int i = 1; i < 5; i++)
        CHECK_EQ_U(f[i].closed, 0);
    pool_close_all(&p);
    CHECK_EQ_U(pool_idle(&p, NULL), 0);
    for (int i = 1; i < 5; i++)
        CHECK_EQ_U(f[i].closed, 1);
    pool_destroy(&p);
}

static void test_expiry(struct test_counts *tc)
{
    struct pool p;
    struct fake f[4] = {{0, 0}};
    CHECK(pool_init(&p, 4, 8, 1000, fake_close) == 0);
    CHECK_EQ_U(pool_put(&p, "k", &f[0], 0, 0), 1);
    CHECK_EQ_U(pool_put(&p, "k", &f[1], 500, 200), 1); /* Keep-Alive hint: 200 ms */
    CHECK_EQ_U(pool_put(&p, "other", &f[2], 500, 5000), 1); /* a hint above the timeout does not extend it */
    CHECK(pool_take(&p, "k", 699) == &f[1]);
    CHECK_EQ_U(pool_put(&p, "k", &f[1], 700, 200), 1);
    CHECK(pool_take(&p, "k", 900) == &f[0]); /* f[1] expired at 900 and was closed */
    CHECK_EQ_U(f[1].closed, 1);
    CHECK_EQ_U(f[0].closed, 0);
    CHECK_EQ_U(pool_idle(&p, "other"), 1);
    CHECK(pool_take(&p, "other", 1500) == NULL);
    CHECK_EQ_U(f[2].closed, 1);
    pool_destroy(&p);
    CHECK_EQ_U(f[0].closed, 0); /* taken: the caller's, not the pool's */
}

static void test_no_pooling(struct test_counts *tc)
{
    struct pool p;
    struct fake f = {0, 0};
    CHECK(pool_init(&p, 0, 0, 1000, fake_close) == 0);
    CHECK_EQ_U(pool_put(&p, "k", &f, 0, 0), 0);
    CHECK_EQ_U(f.closed, 1);
    pool_destroy(&p);
    char longkey[POOL_MAX_KEY + 10];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    CHECK(pool_init(&p, 2, 2, 1000, fake_close) == 0);
    CHECK_EQ_U(pool_put(&p, longkey, &f, 0, 0), 0);
    CHECK_EQ_U(f.closed, 2);
    pool_destroy(&p);
}

struct worker {
    struct pool *p;
    struct fake f[200];
    int taken;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 200; i++) {
        pool_put(w->p, "shared", &w->f[i], 0, 0);
        if (pool_take(w->p, "shared", 0))
            w->taken++;
    }
    return NULL;
}

static void test_threads(struct test_counts *tc)
{
    struct pool p;
    static struct worker w[4];
    pthread_t th[4];
    CHECK(pool_init(&p, 3, 8, 100000, fake_close) == 0);
    for (int i = 0; i < 4; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].p = &p;
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    size_t idle = pool_idle(&p, NULL);
    CHECK(idle <= 3);
    /* every connection is accounted for: taken, closed by the pool, or still idle */
    unsigned long closed = 0, taken = 0;
    for (int i = 0; i < 4; i++) {
        taken += (unsigned long)w[i].taken;
        for (int k = 0; k < 200; k++) {
            closed += (unsigned long)w[i].f[k].closed;
            CHECK(w[i].f[k].closed <= 1);
        }
    }
    CHECK_EQ_U(taken + closed + idle, 800);
    pool_destroy(&p);
}

int main(void)
{
    struct test_counts counts = {0, 0};
    struct test_counts *tc = &counts;
    test_basic(tc);
    test_total_limit(tc);
    test_expiry(tc);
    test_no_pooling(tc);
    test_threads(tc);
    return test_finish(tc);
}
