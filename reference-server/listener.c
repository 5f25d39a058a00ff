#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTEN_BACKLOG 1024

static bool fail(char *err, size_t err_len, const char *what, const char *spec)
{
    snprintf(err, err_len, "%s %s: %s", what, spec, errno ? strerror(errno) : "invalid");
    return false;
}

static bool set_nonblocking(int fd) { return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0; }

static bool open_tcp(const char *hostport, bool reuse_port, struct listener *out, char *err, size_t err_len)
{
    char host[64];
    const char *colon = strrchr(hostport, ':');
    errno = 0;
    if (!colon || (size_t)(colon - hostport) >= sizeof(host))
        return fail(err, err_len, "bad address", hostport);
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return fail(err, err_len, "bad port in", hostport);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return fail(err, err_len, "not an IPv4 address:", host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, err_len, "socket for", hostport);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuse_port)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        fail(err, err_len, "cannot listen on", hostport);
        close(fd);
        return false;
    }
    socklen_t len = sizeof(addr);
    getsockname(fd, (struct sockaddr *)&addr, &len);
    out->fd = fd;
    snprintf(out->address, sizeof(out->address), "tcp:%s:%u", host, ntohs(addr.sin_port));
    return true;
}

static bool open_unix(const char *path, struct listener *out, char *err, size_t err_len)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    errno = 0;
    if (strlen(path) >= sizeof(addr.sun_path) || strlen(path) >= sizeof(out->path) || !*path)
        return fail(err, err_len, "unix socket path too long or empty:", path);
    strcpy(addr.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path); /* a stale socket of an earlier run */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, err_len, "socket for", path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        fail(err, err_len, "cannot listen on", path);
        close(fd);
        return false;
    }
    out->fd = fd;
    out->is_unix = true;
    out->owns_path = true;
    strcpy(out->path, path);
    snprintf(out->address, sizeof(out->address), "unix:%s", path);
    return true;
}

bool listener_open(const char *spec, bool reuse_port, struct listener *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    if (strncmp(spec, "tcp:", 4) == 0)
        return open_tcp(spec + 4, reuse_port, out, err, err_len);
    if (strncmp(spec, "unix:", 5) == 0)
        return open_unix(spec + 5, out, err, err_len);
    errno = 0;
    return fail(err, err_len, "listen address must be tcp:HOST:PORT or unix:PATH, not", spec);
}

/* Opens one more SO_REUSEPORT socket on a TCP listener's address, for another worker. */
bool listener_open_sibling(const struct listener *l, struct listener *out)
{
    int reuse_port = 0;
    socklen_t opt_len = sizeof(reuse_port);
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof(addr);
    if (l->is_unix || getsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &reuse_port, &opt_len) != 0 || !reuse_port ||
        getsockname(l->fd, (struct sockaddr *)&addr, &addr_len) != 0)
        return false;
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&addr, addr_len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        close(fd);
        return false;
    }
    memset(out, 0, sizeof(*out));
    out->fd = fd;
    memcpy(out->address, l->address, sizeof(out->address));
    return true;
}

bool listener_inherit_fd0(struct listener *out)
{
    int accepting = 0;
    socklen_t len = sizeof(accepting);
    if (getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting)
        return false;
    memset(out, 0, sizeof(*out));
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof(addr);
    out->is_unix = getsockname(0, (struct sockaddr *)&addr, &addr_len) == 0 && addr.ss_family == AF_UNIX;
    out->fd = 0;
    snprintf(out->address, sizeof(out->address), "fd:0");
    return set_nonblocking(0);
}

void listener_close(struct listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    if (l->owns_path)
        unlink(l->path);
    l->fd = -1;
}
