/* Several event loops sharing the listeners: --workers N forks N processes
 * after the listeners are open, each running server_run on the same address
 * with the request and connection counters in shared memory, and stays as their
 * supervisor. One loop per core is how a responder uses more
 * than one CPU without locks: each connection lives in exactly one process. */
#ifndef WORKERS_H
#define WORKERS_H

#include "server.h"

#define MAX_WORKERS 64

/* With config->workers <= 1 this is server_run itself. Otherwise it forks the
 * workers and waits: SIGTERM or SIGINT is passed on to every worker and the
 * supervisor exits 0 once they have; a worker that dies (fatal fault, crash)
 * takes the others down and its status becomes the supervisor's (a signal is
 * raised again), so whoever started the responder sees what a single loop would
 * have shown. */
int workers_run(const struct server_config *config);

#endif
