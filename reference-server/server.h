/* The event loop: accepts connections on the listeners, moves bytes between
 * sockets and connection state machines, runs timers, exits on SIGTERM. */
#ifndef SERVER_H
#define SERVER_H

#include <stddef.h>

#include "fcgi_conn.h"
#include "listener.h"

struct server_config {
    struct fcgi_limits limits;
    struct listener *listeners;
    size_t listener_count;
    /* FCGI_WEB_SERVER_ADDRS (spec §3.2): comma-separated IPv4 peers allowed; NULL allows all. */
    const char *web_server_addrs;
    /* Event loops sharing the listeners (workers.h), which one this is, and the
     * counters they share (NULL: the loop keeps its own). */
    unsigned workers;
    unsigned worker_index;
    struct fcgi_load *shared_load;
};

/* Runs until SIGTERM or SIGINT; returns the process exit status. */
int server_run(const struct server_config *config);

/* Writes a connection's log line to stderr (the fcgi_limits.log of the command line). */
void server_log_conn(unsigned long conn_id, const char *message);

#endif
