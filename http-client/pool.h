/* The idle connection pool: per-origin idle lists with limits, thread-safe.
 *
 * Generic over the connection (a void *), so that unit tests drive it without
 * sockets; the caller passes the clock (monotonic milliseconds). Entries are
 * kept oldest first. Every connection the pool gives up (expired, over a limit,
 * evicted, closed on shutdown) goes to the close callback, under the pool lock,
 * which is why that callback must not block or call back into the pool. */
#ifndef FCGISPEC_HTTPC_POOL_H
#define FCGISPEC_HTTPC_POOL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define POOL_MAX_KEY 320

struct pool_entry {
    void *conn;
    char key[POOL_MAX_KEY];
    uint64_t idle_since, expires;
};

struct pool {
    pthread_mutex_t mu;
    struct pool_entry *v;
    size_t n;
    size_t max_per_key, max_total;
    uint64_t idle_timeout_ms;
    void (*close)(void *conn);
};

int pool_init(struct pool *p, size_t max_per_key, size_t max_total, uint64_t idle_timeout_ms,
              void (*close_fn)(void *conn));
void pool_destroy(struct pool *p); /* closes every idle connection */

/* The most recently pooled live-by-age connection of that key, removed from the
 * pool, or NULL. Expired entries (any key) are closed on the way. */
void *pool_take(struct pool *p, const char *key, uint64_t now);

/* Pools conn. max_idle_ms (0: the pool's idle timeout) caps its idle life, e.g.
 * from a Keep-Alive: timeout hint. If the key already holds max_per_key idle
 * connections, conn is closed (the pool does not grow); if the pool holds
 * max_total, the oldest entry overall is evicted. Returns 1 if pooled, 0 if closed. */
int pool_put(struct pool *p, const char *key, void *conn, uint64_t now, uint64_t max_idle_ms);

void pool_close_all(struct pool *p);

/* Idle connections for key, or for every key when key is NULL. */
size_t pool_idle(struct pool *p, const char *key);

#endif
