/* Listening sockets: tcp:HOST:PORT, unix:PATH, or one inherited on fd 0 the way
 * spawn-fcgi and web servers start FastCGI applications (FCGI_LISTENSOCK_FILENO). */
#ifndef LISTENER_H
#define LISTENER_H

#include <stdbool.h>
#include <stddef.h>

struct listener {
    int fd;
    bool is_unix;
    bool owns_path;    /* we created the unix socket file and remove it at exit */
    char path[108];    /* unix socket path */
    char address[160]; /* as printed: tcp:127.0.0.1:40123, unix:/path, fd:0 */
};

/* Opens a non-blocking listening socket for spec; on failure writes why into err.
 * reuse_port (TCP only): let listener_open_sibling bind more sockets to the address. */
bool listener_open(const char *spec, bool reuse_port, struct listener *out, char *err, size_t err_len);

/* Another listening socket on the address of a TCP listener opened with reuse_port,
 * for one more worker: the kernel then spreads new connections over the sockets
 * (SO_REUSEPORT) instead of waking whichever worker waited last. False for unix
 * sockets and for listeners without SO_REUSEPORT (fd 0 from a web server). */
bool listener_open_sibling(const struct listener *l, struct listener *out);

/* Takes fd 0 when it is a listening socket; false otherwise. */
bool listener_inherit_fd0(struct listener *out);

void listener_close(struct listener *l);

#endif
