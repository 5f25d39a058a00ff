/* The idle connection pool (see pool.h). */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

int pool_init(struct pool *p, size_t max_per_key, size_t max_total, uint64_t idle_timeout_ms,
              void (*close_fn)(void *conn))
{
    memset(p, 0, sizeof(*p));
    p->max_per_key = max_per_key;
    p->max_total = max_total;
    p->idle_timeout_ms = idle_timeout_ms;
    p->close = close_fn;
    if (max_total > 0) {
        p->v = calloc(max_total, sizeof(*p->v));
        if (!p->v)
            return -1;
    }
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->v);
        return -1;
    }
    return 0;
}

static void remove_at(struct pool *p, size_t i)
{
    memmove(&p->v[i], &p->v[i + 1], (p->n - i - 1) * sizeof(p->v[0]));
    p->n--;
}

static void close_all_locked(struct pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        p->close(p->v[i].conn);
    p->n = 0;
}

void pool_destroy(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    close_all_locked(p);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_destroy(&p->mu);
    free(p->v);
    p->v = NULL;
}

static void expire_locked(struct pool *p, uint64_t now)
{
    size_t i = 0;
    while (i < p->n) {
        if (now >= p->v[i].expires) {
            p->close(p->v[i].conn);
            remove_at(p, i);
        } else {
            i++;
        }
    }
}

void *pool_take(struct pool *p, const char *key, uint64_t now)
{
    void *conn = NULL;
    pthread_mutex_lock(&p->mu);
    expire_locked(p, now);
    for (size_t i = p->n; i-- > 0;) {
        if (strcmp(p->v[i].key, key) == 0) {
            conn = p->v[i].conn;
            remove_at(p, i);
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return conn;
}

/* Pools an idle connection, within the per-key and total limits. */
int pool_put(struct pool *p, const char *key, void *conn, uint64_t now, uint64_t max_idle_ms)
{
    uint64_t life = p->idle_timeout_ms;
    if (max_idle_ms && max_idle_ms < life)
        life = max_idle_ms;
    pthread_mutex_lock(&p->mu);
    expire_locked(p, now);
    size_t same = 0;
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i].key, key) == 0)
            same++;
    if (strlen(key) >= POOL_MAX_KEY || life == 0 || same >= p->max_per_key || p->max_total == 0) {
        p->close(conn);
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    if (p->n >= p->max_total) { /* evict the least recently pooled */
        p->close(p->v[0].conn);
        remove_at(p, 0);
    }
    struct pool_entry *e = &p->v[p->n++];
    e->conn = conn;
    strcpy(e->key, key);
    e->idle_since = now;
    e->expires = now + life;
    pthread_mutex_unlock(&p->mu);
    return 1;
}

void pool_close_all(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    close_all_locked(p);
    pthread_mutex_unlock(&p->mu);
}

size_t pool_idle(struct pool *p, const char *key)
{
    size_t c = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n; i++)
        if (!key || strcmp(p->v[i].key, key) == 0)
            c++;
    pthread_mutex_unlock(&p->mu);
    return c;
}
