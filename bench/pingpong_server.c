/* pingpong-server: the "limit" peer of the benchmark. For every REQUEST bytes it
 * reads on a connection it writes RESPONSE bytes back, with no parsing at all: the
 * same byte counts as a FastCGI exchange, so its rate is what loopback sockets and
 * one epoll loop allow on this machine. Prints `listening tcp:127.0.0.1:PORT`. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct peer {
    int fd;
    size_t request_progress; /* bytes of the current request received */
    size_t owed;             /* response bytes still to write */
};

int main(int argc, char **argv)
{
    size_t request = 0, response = 0;
    if (argc != 2 || sscanf(argv[1], "%zu:%zu", &request, &response) != 2 || !request || !response) {
        fprintf(stderr, "usage: pingpong-server REQUEST_BYTES:RESPONSE_BYTES\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1024) ||
        getsockname(lfd, (struct sockaddr *)&sa, &len)) {
        perror("pingpong-server: listen");
        return 1;
    }
    printf("listening tcp:127.0.0.1:%u\n", ntohs(sa.sin_port));
    fflush(stdout);
    char *zeros = calloc(1, response);
    char buf[65536];
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            struct peer *p = events[i].data.ptr;
            if (!p) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    struct peer *np = calloc(1, sizeof(*np));
                    np->fd = fd;
                    struct epoll_event pev = {.events = EPOLLIN, .data.ptr = np};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &pev);
                }
                continue;
            }
            ssize_t got = recv(p->fd, buf, sizeof(buf), 0);
            if (got == 0 || (got < 0 && errno != EAGAIN)) {
                close(p->fd);
                free(p);
                continue;
            }
            for (size_t left = got > 0 ? (size_t)got : 0; left;) {
                size_t take = request - p->request_progress < left ? request - p->request_progress : left;
                p->request_progress += take;
                left -= take;
                if (p->request_progress == request) {
                    p->request_progress = 0;
                    p->owed += response;
                }
            }
            while (p->owed) { /* small responses: the socket buffer takes them at once */
                ssize_t w = send(p->fd, zeros, p->owed < response ? p->owed : response, MSG_NOSIGNAL);
                if (w <= 0)
                    break;
                p->owed -= (size_t)w;
            }
        }
    }
}
