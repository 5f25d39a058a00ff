#include "workers.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop_workers(const pid_t *pids, unsigned count)
{
    for (unsigned i = 0; i < count; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
}

/* Marks the worker as gone; returns true when pid was one of ours. */
static bool forget_worker(pid_t *pids, unsigned count, pid_t pid)
{
    for (unsigned i = 0; i < count; i++)
        if (pids[i] == pid) {
            pids[i] = 0;
            return true;
        }
    return false;
}

/* Leaves the supervisor the way the worker left: same exit status, same signal. */
static int finish_like(int status)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigset_t only;
        sigemptyset(&only);
        sigaddset(&only, sig);
        sigprocmask(SIG_UNBLOCK, &only, NULL);
        raise(sig);
        return 128 + sig;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* Runs the event loop, or with --workers N forks N of them and supervises them until they have exited. */
int workers_run(const struct server_config *config)
{
    unsigned count = config->workers;
    if (count <= 1)
        return server_run(config);
    bool sigterm_ignored = fault_on(config->limits.faults, FAULT_SIGTERM_IGNORED);
    /* Blocked before forking, so a SIGTERM that arrives early waits in each
     * worker's signalfd instead of killing it half set up. */
    sigset_t waited, previous;
    sigemptyset(&waited);
    sigaddset(&waited, SIGCHLD);
    sigaddset(&waited, SIGINT);
    if (!sigterm_ignored)
        sigaddset(&waited, SIGTERM);
    else
        signal(SIGTERM, SIG_IGN);
    sigprocmask(SIG_BLOCK, &waited, &previous);
    fflush(NULL);
    /* The request and connection counters, in memory every worker shares: the
     * limits hold for the server as a whole, as they are advertised. */
    struct fcgi_load *shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        perror("fcgispec-responder: mmap");
        sigprocmask(SIG_SETMASK, &previous, NULL);
        return 1;
    }
    atomic_init(&shared->active_requests, 0);
    atomic_init(&shared->connections, 0);

    pid_t supervisor = getpid();
    pid_t pids[MAX_WORKERS] = {0};
    for (unsigned i = 0; i < count; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* A supervisor killed outright must not leave workers serving; SIGKILL
             * because a worker may ignore SIGTERM (fault sigterm-ignored). */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != supervisor)
                _exit(0);
            /* The signals stay blocked: server_run reads them from its signalfd. */
            struct server_config mine = *config;
            mine.worker_index = i;
            mine.shared_load = shared;
            int status = server_run(&mine);
            fflush(NULL);
            _exit(status); /* the listeners and unix socket files belong to the supervisor */
        }
        if (pid < 0) {
            perror("fcgispec-responder: fork");
            stop_workers(pids, i);
            while (wait(NULL) > 0 || errno == EINTR)
                ;
            munmap(shared, sizeof(*shared));
            sigprocmask(SIG_SETMASK, &previous, NULL);
            return 1;
        }
        pids[i] = pid;
    }

    unsigned alive = count;
    bool failed = false;
    int failed_status = 0;
    while (alive > 0) {
        int sig = sigwaitinfo(&waited, NULL);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            stop_workers(pids, count);
            continue;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (!forget_worker(pids, count, pid))
                continue;
            alive--;
            if (!failed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                failed = true;
                failed_status = status;
                stop_workers(pids, count);
            }
        }
    }
    munmap(shared, sizeof(*shared));
    sigprocmask(SIG_SETMASK, &previous, NULL);
    return failed ? finish_like(failed_status) : 0;
}
