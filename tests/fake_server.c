/*
 * fake_server - a deliberately misbehaving echo server, for testing the load generator.
 *
 *   fake_server MODE [ARG...]      prints "listening on 127.0.0.1:PORT model=fake pid=PID"
 *
 *   corrupt N           echoes, but flips one bit of every N-th byte
 *   stall               accepts and reads, never echoes
 *   pause AT_MS FOR_MS  echoes, but stops reading for FOR_MS milliseconds, AT_MS after the
 *                       first connection (one stall of the whole server)
 *   close N             echoes N bytes per connection, then closes it
 *
 * A thread per connection; SIGTERM or SIGINT ends it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "net.h"

enum mode { CORRUPT, STALL, PAUSE, CLOSE };
static enum mode mode;
static uint64_t arg1, arg2;
static _Atomic uint64_t first_conn_ns;

static void *serve(void *p)
{
    int fd = (int)(intptr_t)p;
    char buf[16384];
    uint64_t total = 0;
    for (;;) {
        if (mode == PAUSE) {
            uint64_t at = atomic_load(&first_conn_ns) + arg1 * NS_PER_MS;
            uint64_t now = clock_now_ns();
            if (now >= at && now < at + arg2 * NS_PER_MS)
                clock_sleep_ns(at + arg2 * NS_PER_MS - now);
        }
        ssize_t n = net_recv(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        if (mode == STALL)
            continue;
        if (mode == CORRUPT)
            for (ssize_t i = 0; i < n; i++)
                if ((total + (uint64_t)i + 1) % arg1 == 0)
                    buf[i] ^= 0x10;
        if (mode == CLOSE && total + (uint64_t)n > arg1)
            n = (ssize_t)(arg1 - total);
        if (n > 0 && net_send_all(fd, buf, (size_t)n) < 0)
            break;
        total += (uint64_t)n;
        if (mode == CLOSE && total >= arg1)
            break;
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "corrupt") == 0)
        mode = CORRUPT, arg1 = strtoull(argv[2], NULL, 10);
    else if (argc >= 2 && strcmp(argv[1], "stall") == 0)
        mode = STALL;
    else if (argc >= 4 && strcmp(argv[1], "pause") == 0)
        mode = PAUSE, arg1 = strtoull(argv[2], NULL, 10), arg2 = strtoull(argv[3], NULL, 10);
    else if (argc >= 3 && strcmp(argv[1], "close") == 0)
        mode = CLOSE, arg1 = strtoull(argv[2], NULL, 10);
    else {
        fprintf(stderr, "usage: fake_server corrupt N | stall | pause AT_MS FOR_MS | close N\n");
        return 2;
    }
    if (arg1 == 0 && mode != STALL) {
        fprintf(stderr, "fake_server: N must be positive\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct net_addr addr;
    net_resolve("127.0.0.1", 0, &addr);
    int lfd = net_listen(&addr, 4096, false);
    if (lfd < 0) {
        fprintf(stderr, "fake_server: listen: %s\n", strerror(-lfd));
        return 1;
    }
    net_local_addr(lfd, &addr);
    printf("listening on 127.0.0.1:%u model=fake pid=%ld\n", net_port(&addr), (long)getpid());
    fflush(stdout);
    for (;;) {
        int fd = net_accept(lfd, 0);
        if (fd < 0) {
            if (net_accept_error_is_exhaustion(-fd)) {
                usleep(10000);
                continue;
            }
            return 1;
        }
        uint64_t zero = 0;
        atomic_compare_exchange_strong(&first_conn_ns, &zero, clock_now_ns());
        pthread_t t;
        if (pthread_create(&t, NULL, serve, (void *)(intptr_t)fd) != 0)
            close(fd);
        else
            pthread_detach(t);
    }
}
