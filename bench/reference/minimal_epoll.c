/*
 * minimal_epoll.c - the minimal epoll echo server of countless tutorials, as a reference point.
 *
 * Not a model of this suite (it does not use the harness or the echo core): it exists so that
 * benchmarks can put the suite's epoll and io_uring models side by side with the textbook
 * pattern, measured in the same run, instead of quoting a number from elsewhere. It is written
 * the way such servers usually are: one thread, level-triggered epoll, one read() and one
 * write() per readiness event, a 4 KiB buffer. For parity with the models it sets TCP_NODELAY
 * on accepted sockets. It does not handle short writes or back-pressure: it is only fit for
 * well-behaved clients such as the load generator.
 *
 *   minimal_epoll [PORT]      prints "listening on 127.0.0.1:PORT model=minimal-epoll pid=PID"
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 4096) != 0) {
        perror("minimal_epoll: listen");
        return 1;
    }
    getsockname(lfd, (struct sockaddr *)&addr, &len);
    printf("listening on 127.0.0.1:%d model=minimal-epoll pid=%d\n", ntohs(addr.sin_port),
           (int)getpid());
    fflush(stdout);

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[256];
    char buf[4096];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int c = accept(lfd, NULL, NULL);
                if (c < 0)
                    continue;
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) {
                close(fd);
                continue;
            }
            if (write(fd, buf, (size_t)r) < 0)
                close(fd);
        }
    }
}
