/*
 * conformance - the behaviour every server model must show, tested from the outside.
 *
 *   conformance --list-cases            one line per case: NAME SCOPE (all | concurrent |
 *                                       threads: models that take --threads | limited: models
 *                                       with a maximum number of connections | many: models
 *                                       that hold any number of connections at once)
 *   conformance SERVER MODEL CASE       run one case against `SERVER --model MODEL`
 *
 * CTest runs every case against every model that `echo-server --list` reports (see
 * tests/conformance_tests.cmake), so a newly registered model is tested with no edit here.
 * "concurrent" cases are not run for iterative models, "threads" cases only for models that take
 * --threads. Each case starts its own server on a free
 * port, checks it, and ends by stopping the server with SIGTERM: it must exit 0, print its
 * summary and leave no process behind. Exit status: 0 pass, 1 fail, 77 skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net.h"
#include "testlib.h"

#define SKIP EXIT_SKIP

/* Sanitizer builds (the server is built like this test) keep shadow memory per thread and per
 * allocation: memory bounds are multiplied by this. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_MEMORY_FACTOR 8
#else
#define SANITIZER_MEMORY_FACTOR 1
#endif
#define CASE_TIMEOUT_S 120

/* What a case knows of the model under test, from `echo-server --list --json`. */
struct ctx {
    struct server_proc srv;
    const char *bin;
    const char *model;
    char kind[32];
    bool concurrent;
    bool one_connection_per_thread; /* a pool: at most --threads connections at a time */
    int max_connections;            /* 0: no limit of its own */
    bool no_costs; /* "supports_costs": false (a peer, docs/peers.md): no --msg-size & co */
};

/* The server must exit 0 on its own within the time it was given, print its summary and leave
 * no process behind: what every case checks after its stop. */
static int expect_clean_exit(struct ctx *c, int status)
{
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return fail("server exited with status 0x%x after SIGTERM", status);
    char err[4096];
    server_stderr(&c->srv, err, sizeof err);
    if (!strstr(err, "stopped model="))
        return fail("no summary line on stderr: '%s'", err);
    usleep(100 * 1000);
    pid_t left[16];
    int n = proc_group_members(-c->srv.pid, left, 16);
    if (n > 0)
        return fail("%d processes of the server left after it exited (pid %ld)", n,
                    (long)left[0]);
    return 0;
}

/* --- cases that every model passes ---------------------------------------------------------- */

static int case_single_byte(struct ctx *c)
{
    int fd = client_connect(&c->srv, 5000);
    if (fd < 0)
        return fail("connect: %s", strerror(-fd));
    char out = 'x', in = 0;
    int r = send_all_timeout(fd, &out, 1, 5000);
    if (r == 0)
        r = recv_exact_timeout(fd, &in, 1, 5000);
    close(fd);
    if (r < 0)
        return fail("one byte did not come back: %s", strerror(-r));
    return in == out ? 0 : fail("sent 'x', got 0x%02x", (unsigned char)in);
}

static int exchange_on_new_connection(struct ctx *c, struct exchange *x)
{
    int fd = client_connect(&c->srv, 5000);
    if (fd < 0)
        return fail("connect: %s", strerror(-fd));
    int r = echo_exchange(fd, x);
    close(fd);
    return r;
}

static int case_mib_concurrent(struct ctx *c)
{
    size_t len = 1 << 20;
    uint8_t *data = malloc(len);
    fill_random(data, len, 1);
    /* Without chunks the whole remainder is offered to each send(): the kernel takes what fits
     * while the echo is read concurrently, so neither side's buffers can deadlock. */
    struct exchange x = {.data = data, .len = len, .timeout_ms = 20000};
    int r = exchange_on_new_connection(c, &x);
    free(data);
    return r;
}

static int case_pipelined_10k(struct ctx *c)
{
    enum { N = 10000, SIZE = 32 };
    uint8_t *data = malloc(N * SIZE);
    size_t *chunks = malloc(N * sizeof *chunks);
    for (size_t i = 0; i < N; i++) {
        /* Each message carries its index, so a lost, repeated or reordered one is caught. */
        snprintf((char *)data + i * SIZE, SIZE, "message %05zu of %d ........", i, N);
        data[i * SIZE + SIZE - 1] = '\n';
        chunks[i] = SIZE;
    }
    struct exchange x = {.data = data, .len = N * SIZE, .chunks = chunks, .nchunks = N,
                         .timeout_ms = 20000};
    int r = exchange_on_new_connection(c, &x);
    free(chunks);
    free(data);
    return r;
}

static int case_random_sizes_pauses(struct ctx *c)
{
    size_t len = 256 * 1024, n = 0, total = 0;
    uint8_t *data = malloc(len);
    size_t *chunks = malloc(len * sizeof *chunks);
    fill_random(data, len, 3);
    uint64_t rng = 7;
    while (total < len) {
        /* Sizes spread over 1 B .. 16 KiB, smaller ones more often. */
        size_t size = 1 + rng_next(&rng) % (1u << (1 + rng_next(&rng) % 14));
        chunks[n++] = size;
        total += size;
    }
    struct exchange x = {.data = data, .len = len, .chunks = chunks, .nchunks = n,
                         .pause_every = 8, .pause_max_us = 3000, .timeout_ms = 30000};
    int r = exchange_on_new_connection(c, &x);
    free(chunks);
    free(data);
    return r;
}

static int case_binary(struct ctx *c)
{
    size_t len = 64 * 1024;
    uint8_t *data = malloc(len);
    for (size_t i = 0; i < len; i++) {
        /* Every byte value, then runs of NUL and 0xFF, CR LF and Ctrl-D: nothing is special. */
        size_t block = i / 4096;
        data[i] = block % 4 == 0 ? (uint8_t)i
                : block % 4 == 1 ? 0x00
                : block % 4 == 2 ? 0xFF
                                 : (uint8_t)("\r\n\x04\0"[i % 4]);
    }
    struct exchange x = {.data = data, .len = len, .timeout_ms = 10000};
    int r = exchange_on_new_connection(c, &x);
    free(data);
    return r;
}

static int case_half_close(struct ctx *c)
{
    size_t len = 200 * 1024;
    uint8_t *data = malloc(len);
    fill_random(data, len, 4);
    struct exchange x = {.data = data, .len = len, .shut_wr = true, .timeout_ms = 10000};
    int r = exchange_on_new_connection(c, &x);
    free(data);
    return r;
}

static int case_reset_midstream(struct ctx *c)
{
    /* A bystander, connected before the reset, must not notice it (concurrent models only: an
     * iterative server would serve it first and never get to the resetting client). */
    int bystander = -1;
    uint8_t data[4096];
    fill_random(data, sizeof data, 5);
    struct exchange x = {.data = data, .len = sizeof data, .timeout_ms = 5000};
    if (c->concurrent) {
        bystander = client_connect(&c->srv, 5000);
        if (bystander < 0 || echo_exchange(bystander, &x) < 0)
            return fail("bystander before the reset: %s", test_error);
    }

    int fd = client_connect(&c->srv, 5000);
    if (fd < 0)
        return fail("connect: %s", strerror(-fd));
    /* Send a lot without reading the echo, then reset: the server is mid-stream, with bytes in
     * both directions, when the RST arrives. */
    uint8_t *bulk = malloc(256 * 1024);
    fill_random(bulk, 256 * 1024, 6);
    ssize_t sent = send(fd, bulk, 256 * 1024, MSG_NOSIGNAL | MSG_DONTWAIT);
    free(bulk);
    usleep(50 * 1000);
    close_with_reset(fd);
    if (sent <= 0)
        return fail("could not send before resetting: %s", strerror(errno));

    if (bystander >= 0) {
        int r = echo_exchange(bystander, &x);
        close(bystander);
        if (r < 0)
            return fail("bystander after the reset: %s", test_error);
    }
    if (echo_roundtrip(&c->srv, 4096, 8, 10000) < 0)
        return fail("new client after the reset: %s", test_error);
    return 0;
}

/* Clients that end while their message's cost is being paid: each sends one message (the server
 * runs with --msg-size 1 --sleep-us 300) and half-closes - or, every other round, resets - a
 * little before or after the cost is paid, so that the end of the stream reaches a model just
 * as the message comes back from its cost (reactor_pool: the worker's hand-back and the
 * client's FIN in one batch of events). Each half-closed client must get its byte back and
 * then the end of the stream, and the server must go on serving. Bounded: rounds for 2 s. */
static int case_end_during_cost(struct ctx *c)
{
    enum { K = 32 };
    int fds[K];
    int rounds = 0;
    for (int64_t until = now_ms() + 2000; now_ms() < until; rounds++) {
        bool reset = rounds % 2;
        for (int i = 0; i < K; i++)
            if ((fds[i] = client_connect(&c->srv, 5000)) < 0)
                return fail("round %d: connect: %s", rounds, strerror(-fds[i]));
        for (int i = 0; i < K; i++)
            if (send(fds[i], "e", 1, MSG_NOSIGNAL) != 1)
                return fail("round %d: send: %s", rounds, strerror(errno));
        usleep((useconds_t)(rounds * 37 % 700)); /* before, at and after the 300 us cost */
        for (int i = 0; i < K; i++) {
            if (reset)
                close_with_reset(fds[i]);
            else
                shutdown(fds[i], SHUT_WR);
        }
        for (int i = 0; i < K && !reset; i++) {
            char b = 0;
            int r = recv_exact_timeout(fds[i], &b, 1, 5000);
            if (r == 0 && b != 'e')
                r = -EPROTO;
            if (r == 0)
                r = expect_eof(fds[i], 5000);
            close(fds[i]);
            if (r < 0)
                return fail("round %d, client %d: no echo and end of stream after its "
                            "half-close: %s", rounds, i, strerror(-r));
        }
    }
    printf("%d rounds of %d clients\n", rounds, K);
    if (echo_roundtrip(&c->srv, 64, 31, 5000) < 0)
        return fail("not serving after clients ended during costs: %s", test_error);
    return 0;
}

static int case_work_exact(struct ctx *c)
{
    /* The server runs with --msg-size 100 --work-us 300 --sleep-us 200 (see the case table). */
    enum { MSGS = 100, MSG_SIZE = 100, COST_US = 300 + 200 };
    uint8_t data[MSGS * MSG_SIZE];
    size_t chunks[MSGS * MSG_SIZE];
    size_t n = 0, total = 0;
    fill_random(data, sizeof data, 9);
    uint64_t rng = 11;
    while (total < sizeof data) {
        chunks[n] = 1 + rng_next(&rng) % 250; /* messages split and joined at random */
        total += chunks[n++];
    }
    struct exchange x = {.data = data, .len = sizeof data, .chunks = chunks, .nchunks = n,
                         .timeout_ms = 30000};
    int64_t start = now_ms();
    int r = exchange_on_new_connection(c, &x);
    int64_t took = now_ms() - start;
    if (r < 0)
        return r;
    /* The cost is real: the last message cannot come back before every message was paid for. */
    if (took < MSGS * COST_US / 1000)
        return fail("%d messages costing %d us each came back in %lld ms", MSGS, COST_US,
                    (long long)took);
    return 0;
}

/* One try of case_cost_every on a new connection: ten 128-byte messages, one at a time, each
 * round trip timed into took[1..10]. Returns 0 or fails. */
static int cost_every_try(struct ctx *c, int64_t *took, int msgs)
{
    uint8_t out[128], in[128];
    int fd = client_connect(&c->srv, 5000);
    if (fd < 0)
        return fail("connect: %s", strerror(-fd));
    /* The first message is sent 50 ms after the connection, so that it does not also pay for
     * the server's accept (a fork or a thread start: 38 ms seen on a busy machine). */
    usleep(50 * 1000);
    for (int k = 1; k <= msgs; k++) {
        fill_random(out, sizeof out, 40 + (uint64_t)k);
        int64_t t0 = now_ms();
        int r = send_all_timeout(fd, out, sizeof out, 5000);
        if (r == 0)
            r = recv_exact_timeout(fd, in, sizeof in, 5000);
        took[k] = now_ms() - t0;
        if (r < 0 || memcmp(in, out, sizeof in) != 0) {
            close(fd);
            return fail("message %d did not come back intact: %s", k,
                        r < 0 ? strerror(-r) : "bytes differ");
        }
    }
    close(fd);
    return 0;
}

static int case_cost_every(struct ctx *c)
{
    /* The server runs with --msg-size 128 --sleep-us 20000 --cost-every 10: of ten messages
     * sent one at a time on one connection only the tenth waits, on every connection (the
     * count starts again with each). The tenth is a lower bound, checked every time; the nine
     * cheap ones must come back in well under the wait (15 ms), which a VM stall or a busy
     * machine can spoil once: they get three connections to show it. */
    enum { MSGS = 10, WAIT_MS = 20, CHEAP_MS = 15, TRIES = 3 };
    for (int t = 1; t <= TRIES; t++) {
        int64_t took[MSGS + 1], all = 0;
        if (cost_every_try(c, took, MSGS) < 0)
            return -1;
        printf("round trips (ms), connection %d:", t);
        for (int k = 1; k <= MSGS; k++) {
            printf(" %lld", (long long)took[k]);
            all += took[k];
        }
        printf("\n");
        if (all < WAIT_MS || took[MSGS] < WAIT_MS)
            return fail("message %d should wait %d ms: it took %lld ms, all ten %lld ms", MSGS,
                        WAIT_MS, (long long)took[MSGS], (long long)all);
        int slow = 0;
        for (int k = 1; k < MSGS; k++)
            if (took[k] >= CHEAP_MS)
                slow = k;
        if (!slow)
            return 0;
        if (t == TRIES)
            return fail("message %d of %d costs nothing but took %lld ms (on each of %d "
                        "connections, a cheap message was slow)", slow, MSGS,
                        (long long)took[slow], TRIES);
    }
    return 0;
}

static int case_ipv6(struct ctx *c)
{
    return echo_roundtrip(&c->srv, 8192, 12, 5000);
}

static int case_nc(struct ctx *c)
{
    /* The protocol is plain enough for netcat: pipe a file through `nc -N`, compare. */
    if (system("nc -h 2>&1 | grep -q -- '-N'") != 0) {
        fail("netcat-openbsd (nc with -N) is not installed");
        return SKIP;
    }
    char in[] = "/tmp/echobench-nc-in-XXXXXX", out[] = "/tmp/echobench-nc-out-XXXXXX";
    int ifd = mkstemp(in), ofd = mkstemp(out);
    uint8_t data[100000];
    fill_random(data, sizeof data, 13);
    if (ifd < 0 || ofd < 0 || write(ifd, data, sizeof data) != (ssize_t)sizeof data)
        return fail("temporary files: %s", strerror(errno));
    close(ifd);
    close(ofd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "timeout 10 nc -N %s %u < %s > %s && cmp -s %s %s", c->srv.host,
             (unsigned)c->srv.port, in, out, in, out);
    int r = system(cmd);
    unlink(in);
    unlink(out);
    return r == 0 ? 0 : fail("`%s` failed (status %d)", cmd, r);
}

static int case_churn_2000(struct ctx *c)
{
    for (int i = 0; i < 2000; i++) {
        int fd = client_connect(&c->srv, 5000);
        if (fd < 0)
            return fail("connect #%d: %s", i, strerror(-fd));
        char b = (char)i, e = 0;
        int r = send_all_timeout(fd, &b, 1, 5000);
        if (r == 0)
            r = recv_exact_timeout(fd, &e, 1, 5000);
        close(fd);
        if (r < 0 || e != b)
            return fail("connection #%d: %s", i, r < 0 ? strerror(-r) : "wrong byte");
    }
    if (echo_roundtrip(&c->srv, 4096, 14, 5000) < 0)
        return fail("after 2000 connections: %s", test_error);
    /* Children (of process models) must be reaped, not left as zombies. */
    int zombies = 0;
    for (int64_t until = now_ms() + 3000; now_ms() < until; usleep(20000))
        if ((zombies = proc_zombie_children(c->srv.pid)) == 0)
            break;
    return zombies == 0 ? 0 : fail("%d zombie children left after connection churn", zombies);
}

/* Streams data on n connections for ms milliseconds, verifying what comes back. */
static int stream_load(int *fds, int n, int ms, const uint8_t *data, size_t len, size_t *sent,
                       size_t *got)
{
    uint8_t buf[16384];
    for (int64_t until = now_ms() + ms; now_ms() < until;) {
        struct pollfd p[64];
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN | POLLOUT};
        if (poll(p, (nfds_t)n, 50) < 0 && errno != EINTR)
            return fail("poll: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            if (p[i].revents & POLLOUT) {
                ssize_t k = send(fds[i], data + sent[i] % len, len - sent[i] % len,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k > 0)
                    sent[i] += (size_t)k;
            }
            if (p[i].revents & POLLIN) {
                ssize_t k = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
                for (ssize_t j = 0; j < k; j++, got[i]++)
                    if (buf[j] != data[got[i] % len])
                        return fail("client %d: echo differs at byte %zu", i, got[i]);
            }
        }
    }
    return 0;
}

static int case_shutdown_under_load(struct ctx *c)
{
    enum { N = 8 };
    int fds[N];
    size_t sent[N] = {0}, got[N] = {0};
    uint8_t data[65536];
    fill_random(data, sizeof data, 15);
    for (int i = 0; i < N; i++)
        if ((fds[i] = client_connect(&c->srv, 5000)) < 0)
            return fail("connect: %s", strerror(-fds[i]));
    proc_tree_settle(c->srv.pid, 3000); /* a pool of 64 workers starting up */
    int r = stream_load(fds, N, 300, data, sizeof data, sent, got);
    if (r < 0)
        return r;
    if (got[0] == 0)
        return fail("no echo at all before the stop");

    /* Stop while the clients keep their connections open: the server must close them itself. */
    int status;
    int64_t start = now_ms();
    if (server_signal_and_wait(&c->srv, SIGTERM, 10000, &status) < 0)
        return fail("server still running 10 s after SIGTERM under load");
    int64_t took = now_ms() - start;
    for (int i = 0; i < N; i++)
        close(fds[i]);
    if (expect_clean_exit(c, status) < 0)
        return -1;
    printf("stopped under load in %lld ms\n", (long long)took);
    return 0;
}

static int case_stop_during_costs(struct ctx *c)
{
    /* The server runs with --msg-size 1 --work-us 1000 --sleep-us 1000: 64 KiB sent at once is
     * two minutes of per-message cost. A stop must not wait for it. */
    int fd = client_connect(&c->srv, 5000);
    if (fd < 0)
        return fail("connect: %s", strerror(-fd));
    uint8_t data[65536];
    fill_random(data, sizeof data, 22);
    ssize_t sent = send(fd, data, sizeof data, MSG_NOSIGNAL | MSG_DONTWAIT);
    usleep(300 * 1000); /* the server is now deep in paying for it */
    int status;
    int64_t start = now_ms();
    int r = server_signal_and_wait(&c->srv, SIGTERM, 5000, &status);
    close(fd);
    if (sent <= 0)
        return fail("could not send: %s", strerror(errno));
    if (r < 0)
        return fail("server still busy with per-message costs 5 s after SIGTERM");
    if (expect_clean_exit(c, status) < 0)
        return -1;
    printf("stopped in %lld ms with per-message costs pending\n", (long long)(now_ms() - start));
    return 0;
}

static int case_stop_during_long_cost(struct ctx *c)
{
    /* The server runs with --msg-size 1 --work-us 1000000 --sleep-us 1000000, the longest cost
     * echo-server accepts: a stop must cut even one message's cost short, in every thread and
     * child process - a second of CPU work or sleep left to run would outlast the check. */
    int fd = client_connect(&c->srv, 5000);
    if (fd < 0)
        return fail("connect: %s", strerror(-fd));
    ssize_t sent = send(fd, "ab", 2, MSG_NOSIGNAL);
    usleep(300 * 1000); /* in the middle of the first message's second of CPU work */
    int status;
    int64_t start = now_ms();
    int r = server_signal_and_wait(&c->srv, SIGTERM, 5000, &status);
    int64_t took = now_ms() - start;
    close(fd);
    if (sent != 2)
        return fail("could not send: %s", strerror(errno));
    if (r < 0)
        return fail("server still running 5 s after SIGTERM");
    if (expect_clean_exit(c, status) < 0)
        return -1;
    printf("stopped in %lld ms in the middle of a 2 s per-message cost\n", (long long)took);
    return took <= 700 ? 0 : fail("the stop took %lld ms: a message's cost held it up",
                                  (long long)took);
}

/* One churning client slot: connect, send one byte, read it back, close, again. */
struct churner {
    int fd;
    int state; /* 0 closed, 1 connecting, 2 waiting for the echo */
};

static void churn_step(struct churner *ch, const struct net_addr *addr, short revents)
{
    if (ch->state == 0) {
        ch->fd = net_connect(addr, true);
        ch->state = ch->fd >= 0 ? 1 : 0;
        return;
    }
    if (!revents)
        return;
    char b = 'c';
    if (ch->state == 1 && (revents & POLLOUT)) {
        if (net_socket_error(ch->fd) == 0 && send(ch->fd, &b, 1, MSG_NOSIGNAL) == 1) {
            ch->state = 2;
            return;
        }
    } else if (ch->state == 2 && (revents & (POLLIN | POLLHUP | POLLERR))) {
        (void)recv(ch->fd, &b, 1, MSG_DONTWAIT);
    } else {
        return;
    }
    close(ch->fd); /* echoed, refused or reset: the next connection */
    ch->fd = -1;
    ch->state = 0;
}

/* Runs `n` churning slots for ms milliseconds, or - with stop_pid - until that process exits
 * (status in *status; returns 1 then) or ms pass. */
static int churn(struct churner *chs, int n, const struct net_addr *addr, int ms, pid_t stop_pid,
                 int *status)
{
    struct pollfd p[64];
    for (int64_t until = now_ms() + ms; now_ms() < until;) {
        for (int i = 0; i < n; i++) {
            if (chs[i].state == 0)
                churn_step(&chs[i], addr, 0);
            p[i] = (struct pollfd){.fd = chs[i].fd,
                                   .events = chs[i].state == 1 ? POLLOUT : POLLIN};
        }
        if (poll(p, (nfds_t)n, 5) < 0 && errno != EINTR)
            return fail("poll: %s", strerror(errno));
        for (int i = 0; i < n; i++)
            churn_step(&chs[i], addr, p[i].fd >= 0 ? p[i].revents : 0);
        if (stop_pid > 0 && waitpid(stop_pid, status, WNOHANG) == stop_pid)
            return 1;
    }
    return 0;
}

static int case_stop_during_churn(struct ctx *c)
{
    /* 32 clients connect, send one byte, read it and close, over and over; SIGTERM lands in the
     * middle of it. The server must stop as promptly as when idle: exit 0 within 2 s with its
     * summary, every process gone. */
    enum { N = 32 };
    struct churner chs[N];
    for (int i = 0; i < N; i++)
        chs[i] = (struct churner){.fd = -1};
    struct net_addr addr;
    if (net_resolve(c->srv.host, c->srv.port, &addr) < 0)
        return fail("cannot resolve %s", c->srv.host);
    int r = churn(chs, N, &addr, 500, 0, NULL);
    int status = 0;
    int64_t start = now_ms();
    if (r == 0) {
        kill(c->srv.pid, SIGTERM);
        r = churn(chs, N, &addr, 2000, c->srv.pid, &status);
    }
    int64_t took = now_ms() - start;
    for (int i = 0; i < N; i++)
        if (chs[i].fd >= 0)
            close(chs[i].fd);
    if (r < 0)
        return -1;
    if (r == 0)
        return fail("server still running 2 s after SIGTERM during connection churn");
    c->srv.pid = -c->srv.pid; /* reaped */
    if (expect_clean_exit(c, status) < 0)
        return -1;
    printf("stopped during connection churn in %lld ms\n", (long long)took);
    return 0;
}

static int case_stop_during_churn_x3(struct ctx *c)
{
    /* Where the stop meets an accept is a matter of timing: three servers, three stops. */
    for (int round = 0; round < 3; round++) {
        if (round > 0) {
            server_kill(&c->srv);
            if (server_start(&c->srv, c->bin, c->model, "127.0.0.1", NULL, 0) != 0)
                return fail("restarting the server: %s", test_error);
        }
        if (case_stop_during_churn(c) < 0)
            return fail("round %d: %s", round + 1, test_error);
    }
    return 0;
}

/* Sends to a client socket that never reads until nothing more goes in for quiet_ms (the
 * buffers on both sides and the server's parked output are full), total bytes are pushed or
 * give_up_ms pass. Returns the bytes pushed. */
static size_t push_until_full(int fd, size_t total, int quiet_ms, int give_up_ms)
{
    static uint8_t chunk[65536];
    fill_random(chunk, sizeof chunk, 23);
    size_t pushed = 0;
    int64_t start = now_ms(), last_progress = start;
    while (pushed < total && now_ms() - last_progress < quiet_ms && now_ms() - start < give_up_ms) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 20) <= 0)
            continue;
        ssize_t k = send(fd, chunk, sizeof chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k > 0) {
            pushed += (size_t)k;
            last_progress = now_ms();
        }
    }
    return pushed;
}

static int case_backpressure_no_spin(struct ctx *c)
{
    /* One client sends up to 16 MiB and never reads. Once the socket buffers are full the server
     * has nothing to do but wait for the client: over the next 3 s it must use under 5 % of one
     * CPU. A model that keeps asking for the wrong event while its output is parked (writability
     * it cannot use, readability it must not act on) spins a whole core here. The window starts
     * only when the buffers are full: filling them is work (and with SQPOLL, a kernel thread that
     * polls between the client's sends), and on a loaded machine it is slow and costly. */
    enum { TOTAL = 16 << 20, WINDOW_MS = 3000 };
    int fd = client_connect(&c->srv, 5000);
    if (fd < 0)
        return fail("connect: %s", strerror(-fd));
    size_t pushed = push_until_full(fd, TOTAL, 300, 10000);
    proc_tree_settle(c->srv.pid, 3000);
    double cpu0 = proc_cpu_seconds(c->srv.pid);
    int64_t t0 = now_ms();
    size_t more = 0;
    while (now_ms() - t0 < WINDOW_MS) {
        /* Keep offering data: a server that frees room while parked must get more to chew on. */
        more += push_until_full(fd, TOTAL, 50, (int)(WINDOW_MS - (now_ms() - t0)));
        usleep(50 * 1000);
    }
    double cpu = proc_cpu_seconds(c->srv.pid) - cpu0;
    double wall = (double)(now_ms() - t0) / 1000;
    close_with_reset(fd);
    printf("pushed %zu KiB without reading (%zu KiB of it in the window); server CPU %.3f s in "
           "%.2f s\n", (pushed + more) / 1024, more / 1024, cpu, wall);
    if (kill(c->srv.pid, 0) != 0)
        return fail("server died while a client did not read");
    if (cpu > 0.05 * wall)
        return fail("server used %.0f%% of a CPU while its client did not read (%.3f s in %.2f s)",
                    100 * cpu / wall, cpu, wall);
    return echo_roundtrip(&c->srv, 4096, 24, 5000) < 0
               ? fail("not serving after the non-reader left: %s", test_error) : 0;
}

/* --- cases for concurrent models ------------------------------------------------------------- */

static int case_idle_client(struct ctx *c)
{
    int idle = client_connect(&c->srv, 5000);
    if (idle < 0)
        return fail("connect: %s", strerror(-idle));
    usleep(100 * 1000); /* let the server accept it and sit in a read on it */
    int r = echo_roundtrip(&c->srv, 16384, 16, 5000);
    if (r < 0) {
        close(idle);
        return fail("an idle client blocked another: %s", test_error);
    }
    uint8_t data[100];
    fill_random(data, sizeof data, 17);
    struct exchange x = {.data = data, .len = sizeof data, .timeout_ms = 5000};
    r = echo_exchange(idle, &x);
    close(idle);
    return r < 0 ? fail("the idle client, once it spoke: %s", test_error) : 0;
}

static int case_many_500(struct ctx *c)
{
    enum { N = 500, SIZE = 256 };
    static int fds[N];
    static uint8_t data[N][SIZE];
    static size_t got[N];
    static struct pollfd p[N];
    for (int i = 0; i < N; i++) {
        fill_random(data[i], SIZE, 100 + (uint64_t)i);
        fds[i] = client_connect(&c->srv, 10000);
        if (fds[i] < 0)
            return fail("connection %d: %s", i, strerror(-fds[i]));
    }
    /* All 500 are open at once; then each sends its message and is closed once verified. */
    for (int i = 0; i < N; i++) {
        int r = send_all_timeout(fds[i], data[i], SIZE, 5000);
        if (r < 0)
            return fail("send on connection %d: %s", i, strerror(-r));
        p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    }
    int done = 0;
    for (int64_t deadline = now_ms() + 60000; done < N;) {
        if (now_ms() > deadline)
            return fail("%d of %d connections verified before the timeout", done, N);
        if (poll(p, N, 1000) < 0 && errno != EINTR)
            return fail("poll: %s", strerror(errno));
        for (int i = 0; i < N; i++) {
            if (!p[i].revents)
                continue;
            uint8_t buf[SIZE];
            ssize_t k = recv(fds[i], buf, SIZE - got[i], MSG_DONTWAIT);
            if (k <= 0)
                return fail("connection %d ended after %zu of %d bytes", i, got[i], SIZE);
            if (memcmp(buf, data[i] + got[i], (size_t)k) != 0)
                return fail("connection %d: echo differs", i);
            got[i] += (size_t)k;
            if (got[i] == SIZE) {
                close(fds[i]);
                p[i].fd = -1;
                done++;
            }
        }
    }
    return 0;
}

static int case_non_reader(struct ctx *c)
{
    proc_tree_settle(c->srv.pid, 3000);
    long rss_before = proc_tree_anon_kib(c->srv.pid);
    int hog = client_connect(&c->srv, 5000);
    if (hog < 0)
        return fail("connect: %s", strerror(-hog));
    uint8_t junk[65536];
    fill_random(junk, sizeof junk, 18);
    uint64_t pushed = 0;
    /* The hog sends as fast as the server takes bytes and never reads. Meanwhile another client
     * must be served, every 150 ms. */
    for (int round = 0; round < 12; round++) {
        for (int64_t until = now_ms() + 150; now_ms() < until;) {
            struct pollfd p = {.fd = hog, .events = POLLOUT};
            if (poll(&p, 1, 10) > 0) {
                ssize_t k = send(hog, junk, sizeof junk, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k > 0)
                    pushed += (uint64_t)k;
            }
        }
        if (echo_roundtrip(&c->srv, 4096, 200 + (uint64_t)round, 3000) < 0) {
            close(hog);
            return fail("round %d, with a client that does not read: %s", round, test_error);
        }
    }
    long rss_after = proc_tree_anon_kib(c->srv.pid);
    close_with_reset(hog);
    printf("non-reader pushed %llu KiB; server anonymous memory %ld -> %ld KiB\n",
           (unsigned long long)(pushed / 1024), rss_before, rss_after);
    if (rss_after - rss_before > 32 * 1024 * SANITIZER_MEMORY_FACTOR)
        return fail("server memory grew by %ld KiB while a client did not read",
                    rss_after - rss_before);
    return 0;
}

static int case_many_non_readers(struct ctx *c)
{
    /* 64 clients send megabytes each and never read their echo. They may cost the server a
     * bounded amount of memory each, but must not stop anyone else from being served: a new
     * client then echoes 64 KiB plus 10 single bytes within 2 s, and once they leave,
     * everything recovers. A shared buffer pool emptied by connections that cannot send is
     * what this catches. */
    /* Loopback sockets buffer several MiB each way: push until every client is blocked. */
    enum { N = 64, CAP = 32 << 20, PUSH_MS = 3000, BLOCKED_MS = 300 };
    int fds[N];
    size_t pushed[N] = {0};
    static uint8_t junk[65536];
    fill_random(junk, sizeof junk, 25);
    proc_tree_settle(c->srv.pid, 3000);
    long anon_before = proc_tree_anon_kib(c->srv.pid);
    for (int i = 0; i < N; i++)
        if ((fds[i] = client_connect(&c->srv, 5000)) < 0)
            return fail("non-reader %d: connect: %s", i, strerror(-fds[i]));
    size_t total = 0;
    int64_t last_progress = now_ms();
    for (int64_t until = now_ms() + PUSH_MS;
         now_ms() < until && now_ms() - last_progress < BLOCKED_MS;) {
        struct pollfd p[N];
        for (int i = 0; i < N; i++)
            p[i] = (struct pollfd){.fd = pushed[i] < CAP ? fds[i] : -1, .events = POLLOUT};
        if (poll(p, N, 20) <= 0)
            continue;
        last_progress = now_ms();
        for (int i = 0; i < N; i++) {
            if (!(p[i].revents & POLLOUT))
                continue;
            ssize_t k = send(fds[i], junk, sizeof junk, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (k > 0) {
                pushed[i] += (size_t)k;
                total += (size_t)k;
            }
        }
    }
    int r = 0;
    int64_t start = now_ms();
    int fd = client_connect(&c->srv, 2000);
    if (fd < 0) {
        r = fail("with %d non-readers, a new client cannot connect: %s", N, strerror(-fd));
    } else {
        static uint8_t data[65536];
        fill_random(data, sizeof data, 26);
        struct exchange x = {.data = data, .len = sizeof data, .timeout_ms = 2000};
        r = echo_exchange(fd, &x);
        for (int i = 0; r == 0 && i < 10; i++) {
            char b = (char)('0' + i), e = 0;
            int left = 2000 - (int)(now_ms() - start);
            r = send_all_timeout(fd, &b, 1, left > 0 ? left : 1);
            if (r == 0)
                r = recv_exact_timeout(fd, &e, 1, left > 0 ? left : 1);
            if (r == 0 && e != b)
                r = fail("single byte %d came back as 0x%02x", i, (unsigned char)e);
            else if (r < 0)
                r = fail("single byte %d: %s", i, strerror(-r));
        }
        close(fd);
        if (r < 0)
            r = fail("with %d clients that do not read, a new client was not served: %s", N,
                     test_error);
    }
    int64_t took = now_ms() - start;
    long anon_after = proc_tree_anon_kib(c->srv.pid);
    for (int i = 0; i < N; i++)
        close_with_reset(fds[i]);
    printf("%d non-readers pushed %zu MiB; a new client was served in %lld ms; server anonymous "
           "memory %ld -> %ld KiB\n", N, total >> 20, (long long)took, anon_before, anon_after);
    if (r < 0)
        return r;
    if (took > 2000)
        return fail("the new client took %lld ms (limit 2000)", (long long)took);
    /* Up to 1 MiB per non-reader (a thread's stack, a process, a parked buffer): bounded by the
     * clients, not by the megabytes they pushed. */
    if (anon_after - anon_before > N * 1024 * SANITIZER_MEMORY_FACTOR)
        return fail("server memory grew by %ld KiB for %d clients that do not read",
                    anon_after - anon_before, N);
    usleep(200 * 1000);
    return echo_roundtrip(&c->srv, 65536, 27, 5000) < 0
               ? fail("not serving after the non-readers left: %s", test_error) : 0;
}

static int case_idle_clients_16(struct ctx *c)
{
    /* Sixteen people leave an nc session open: with the model's default settings, the next
     * client must still be served at once. (A pool of one worker per CPU would be locked.) */
    enum { N = 16 };
    int fds[N];
    for (int i = 0; i < N; i++)
        if ((fds[i] = client_connect(&c->srv, 5000)) < 0)
            return fail("idle client %d: connect: %s", i, strerror(-fds[i]));
    usleep(200 * 1000);
    int r = echo_roundtrip(&c->srv, 4096, 28, 2000);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    return r < 0 ? fail("with %d idle clients connected, a new one was not served: %s", N,
                        test_error) : 0;
}

static int case_fd_exhaustion(struct ctx *c)
{
    /* The server runs with RLIMIT_NOFILE 64 (see the case table); 100 clients connect. */
    enum { N = 100 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = client_connect(&c->srv, 5000);
        if (fds[i] < 0)
            return fail("connect %d: %s", i, strerror(-fds[i]));
    }
    /* Threads started for the clients cost CPU once (much more under a sanitizer); a spin goes
     * on, and outlasts the settling. */
    proc_tree_settle(c->srv.pid, 3000);
    double cpu0 = proc_cpu_seconds(c->srv.pid);
    int64_t t0 = now_ms();
    usleep(1500 * 1000);
    double cpu = proc_cpu_seconds(c->srv.pid) - cpu0;
    double wall = (double)(now_ms() - t0) / 1000;
    for (int i = 0; i < N; i++)
        close(fds[i]);
    if (kill(c->srv.pid, 0) != 0)
        return fail("server died when it ran out of descriptors");
    if (cpu > wall / 3)
        return fail("server spun while out of descriptors: %.2f s CPU in %.2f s", cpu, wall);
    /* Recovery: once the clients are gone, descriptors free up and service resumes. */
    if (echo_roundtrip(&c->srv, 4096, 19, 10000) < 0)
        return fail("not serving again after descriptors freed up: %s", test_error);
    /* And the summary says it happened: a server that ran out of descriptors paused or turned
     * clients away, and counts either (a process model's parent never runs out: each child
     * holds its own connection). */
    int status;
    if (server_signal_and_wait(&c->srv, SIGTERM, 10000, &status) < 0)
        return fail("server still running 10 s after SIGTERM");
    if (expect_clean_exit(c, status) < 0)
        return -1;
    char err[4096];
    server_stderr(&c->srv, err, sizeof err);
    const char *pauses = strstr(err, "accept_pauses="), *shed = strstr(err, "shed=");
    if (strcmp(c->kind, "processes") != 0
        && (!pauses || !shed || (atol(pauses + 14) == 0 && atol(shed + 5) == 0)))
        return fail("out of descriptors, yet the summary counts no pause and no shed "
                    "connection: '%s'", err);
    return 0;
}

static int case_beyond_max_connections(struct ctx *c)
{
    /* A model that can hold at most `max` connections (select: FD_SETSIZE) must refuse the
     * rest cleanly: each connection is either served or closed, none hangs, nothing crashes. */
    int n = c->max_connections + 50;
    int *fds = calloc((size_t)n, sizeof *fds);
    int served = 0, refused = 0;
    for (int i = 0; i < n; i++)
        if ((fds[i] = client_connect(&c->srv, 5000)) < 0)
            return fail("connect %d: %s", i, strerror(-fds[i]));
    for (int i = 0; i < n; i++) {
        char b = 'y', e = 0;
        int r = send_all_timeout(fds[i], &b, 1, 2000);
        if (r == 0)
            r = recv_exact_timeout(fds[i], &e, 1, 5000);
        if (r == 0 && e == b)
            served++;
        else if (r == -EPIPE || r == -ECONNRESET)
            refused++;
        else
            return fail("connection %d neither served nor refused: %s", i,
                        r < 0 ? strerror(-r) : "wrong byte");
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
    printf("%d connections: %d served, %d refused\n", n, served, refused);
    if (served < c->max_connections)
        return fail("only %d connections served, the model promises %d", served,
                    c->max_connections);
    if (refused == 0)
        return fail("no connection refused beyond the limit of %d", c->max_connections);
    usleep(200 * 1000);
    return echo_roundtrip(&c->srv, 4096, 21, 5000) < 0
               ? fail("not serving after the excess connections closed: %s", test_error) : 0;
}

/* --- the table ------------------------------------------------------------------------------ */

static const char *const three_threads[] = {"--threads", "3", NULL};
/* Also as an option: a privileged server raises its own limit, whatever it inherited. */
static const char *const few_fds[] = {"--max-fds", "64", NULL};
static const char *const heavy_cost_args[] = {"--msg-size", "1", "--work-us", "1000",
                                              "--sleep-us", "1000", NULL};
static const char *const longest_cost_args[] = {"--msg-size", "1", "--work-us", "1000000",
                                                "--sleep-us", "1000000", NULL};
static const char *const work_args[] = {"--msg-size", "100", "--work-us", "300", "--sleep-us",
                                        "200", NULL};

static const char *const short_cost_args[] = {"--msg-size", "1", "--sleep-us", "300", NULL};
static const char *const cost_every_args[] = {"--msg-size", "128", "--sleep-us", "20000",
                                              "--cost-every", "10", NULL};

static const struct test_case {
    const char *name;
    bool concurrent_only;
    bool threads_only; /* for models that take --threads: run with 3 of them */
    bool limited_only; /* for models that declare a maximum number of connections */
    bool many_only;    /* for models that hold any number of connections at once (not an
                          iterative server, not a pool of one connection per worker) */
    int (*run)(struct ctx *c);
    const char *const *server_args;
    long nofile;
    const char *host;
} cases[] = {
    {.name = "single_byte", .run = case_single_byte},
    {.name = "mib_concurrent", .run = case_mib_concurrent},
    {.name = "pipelined_10k", .run = case_pipelined_10k},
    {.name = "random_sizes_pauses", .run = case_random_sizes_pauses},
    {.name = "binary", .run = case_binary},
    {.name = "half_close", .run = case_half_close},
    {.name = "reset_midstream", .run = case_reset_midstream},
    {.name = "end_during_cost", .run = case_end_during_cost, .concurrent_only = true,
     .server_args = short_cost_args},
    {.name = "work_exact", .run = case_work_exact, .server_args = work_args},
    {.name = "cost_every", .run = case_cost_every, .server_args = cost_every_args},
    {.name = "ipv6", .run = case_ipv6, .host = "::1"},
    {.name = "nc", .run = case_nc},
    {.name = "churn_2000", .run = case_churn_2000},
    {.name = "shutdown_under_load", .run = case_shutdown_under_load},
    {.name = "stop_during_costs", .run = case_stop_during_costs, .server_args = heavy_cost_args},
    {.name = "stop_during_long_cost", .run = case_stop_during_long_cost,
     .server_args = longest_cost_args},
    {.name = "stop_during_churn", .run = case_stop_during_churn_x3},
    {.name = "backpressure_no_spin", .run = case_backpressure_no_spin},
    {.name = "idle_client", .run = case_idle_client, .concurrent_only = true},
    {.name = "many_500", .run = case_many_500, .concurrent_only = true},
    {.name = "non_reader", .run = case_non_reader, .concurrent_only = true},
    {.name = "idle_clients_16", .run = case_idle_clients_16, .concurrent_only = true},
    {.name = "many_non_readers", .run = case_many_non_readers, .many_only = true},
    {.name = "fd_exhaustion", .run = case_fd_exhaustion, .concurrent_only = true, .nofile = 64,
     .server_args = few_fds},
    {.name = "many_500_threads", .run = case_many_500, .threads_only = true,
     .server_args = three_threads},
    {.name = "beyond_max_connections", .run = case_beyond_max_connections, .limited_only = true},
};

/* The value of "key" in the JSON object text obj (the flat objects of `--list --json`, as
 * common/json.c writes them: "key": value), copied into out without quotes; -1 if absent. */
static int json_member(const char *obj, const char *key, char *out, size_t len)
{
    char pattern[80];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *p = strstr(obj, pattern);
    if (!p)
        return -1;
    p += strlen(pattern);
    bool quoted = *p == '"';
    p += quoted;
    size_t n = 0;
    while (p[n] && (quoted ? p[n] != '"' : p[n] != ',' && p[n] != '\n' && p[n] != '}'))
        n++;
    snprintf(out, len, "%.*s", (int)n, p);
    return 0;
}

/* Fills in what the case needs to know of the model from `SERVER --list --json`. Returns 0, or
 * -1 if the model is not listed. */
static int model_facts(struct ctx *c)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' --list --json", c->bin);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    static char doc[1 << 16];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    doc[n] = '\0';
    pclose(f);
    char name[160];
    snprintf(name, sizeof name, "\"name\": \"%s\",", c->model);
    char *obj = strstr(doc, name);
    if (!obj)
        return -1;
    char *end = strchr(obj, '}');
    if (end)
        *end = '\0';
    char value[64];
    if (json_member(obj, "kind", c->kind, sizeof c->kind) < 0
        || json_member(obj, "max_connections", value, sizeof value) < 0)
        return -1;
    c->max_connections = atoi(value);
    c->one_connection_per_thread =
        json_member(obj, "serves_one_connection_per_thread", value, sizeof value) == 0
        && strcmp(value, "true") == 0;
    c->concurrent = strcmp(c->kind, "iterative") != 0;
    c->no_costs = json_member(obj, "supports_costs", value, sizeof value) == 0
                  && strcmp(value, "false") == 0;
    return 0;
}

static bool ipv6_loopback_available(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static struct ctx *running; /* for the alarm handler */

static void on_case_timeout(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL: case timed out\n";
    if (running && running->srv.pid != 0) {
        pid_t g = running->srv.pid > 0 ? running->srv.pid : -running->srv.pid;
        kill(-g, SIGKILL);
    }
    ssize_t n = write(STDOUT_FILENO, msg, sizeof msg - 1);
    (void)n;
    _exit(1);
}

/* The epilogue of every case: SIGTERM must stop the server cleanly. */
static int check_clean_stop(struct ctx *c)
{
    int status;
    if (server_signal_and_wait(&c->srv, SIGTERM, 10000, &status) < 0)
        return fail("server still running 10 s after SIGTERM");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return fail("server exited with status 0x%x after SIGTERM", status);
    usleep(50 * 1000);
    pid_t left[16];
    int n = proc_group_members(-c->srv.pid, left, 16);
    return n == 0 ? 0 : fail("%d processes of the server left after it exited", n);
}

int main(int argc, char **argv)
{
    size_t ncases = sizeof cases / sizeof cases[0];
    if (argc == 2 && strcmp(argv[1], "--list-cases") == 0) {
        for (size_t i = 0; i < ncases; i++)
            printf("%s %s\n", cases[i].name, cases[i].threads_only      ? "threads"
                                            : cases[i].limited_only    ? "limited"
                                            : cases[i].many_only       ? "many"
                                            : cases[i].concurrent_only ? "concurrent"
                                                                       : "all");
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: conformance --list-cases | conformance SERVER MODEL CASE\n");
        return 2;
    }
    const struct test_case *tc = NULL;
    for (size_t i = 0; i < ncases; i++)
        if (strcmp(cases[i].name, argv[3]) == 0)
            tc = &cases[i];
    if (!tc) {
        fprintf(stderr, "conformance: unknown case '%s'\n", argv[3]);
        return 2;
    }
    struct ctx c = {.bin = argv[1], .model = argv[2]};
    if (model_facts(&c) < 0) {
        printf("FAIL: '%s --list --json' does not list model '%s'\n", c.bin, c.model);
        return 1;
    }
    if (tc->concurrent_only && !c.concurrent) {
        printf("SKIP: %s is for concurrent models; %s is %s\n", tc->name, c.model, c.kind);
        return SKIP;
    }
    if (tc->many_only && (!c.concurrent || c.one_connection_per_thread)) {
        printf("SKIP: %s is for models that hold any number of connections\n", tc->name);
        return SKIP;
    }
    if (c.no_costs && tc->server_args && strcmp(tc->server_args[0], "--msg-size") == 0) {
        printf("SKIP: %s needs per-message costs (--msg-size); %s does not support them\n",
               tc->name, c.model);
        return SKIP;
    }
    if (tc->host && strchr(tc->host, ':') && !ipv6_loopback_available()) {
        printf("SKIP: no IPv6 loopback on this machine\n");
        return SKIP;
    }

    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    running = &c;
    signal(SIGALRM, on_case_timeout);
    alarm(CASE_TIMEOUT_S);

    int started = server_start(&c.srv, c.bin, c.model, tc->host ? tc->host : "127.0.0.1",
                               tc->server_args, tc->nofile);
    if (started == EXIT_SKIP) {
        printf("SKIP: %s", test_error); /* the model cannot run on this machine, and says why */
        return SKIP;
    }
    if (started < 0) {
        printf("FAIL: %s\n", test_error);
        return 1;
    }
    int r = tc->run(&c);
    if (r == 0 && c.srv.pid > 0 && check_clean_stop(&c) < 0)
        r = -1;
    char err[4096];
    server_stderr(&c.srv, err, sizeof err);
    server_kill(&c.srv);
    if (r == SKIP) {
        printf("SKIP: %s\n", test_error);
        return SKIP;
    }
    if (r < 0) {
        printf("FAIL: %s %s: %s\n--- server stderr ---\n%s", c.model, tc->name, test_error, err);
        return 1;
    }
    printf("PASS: %s %s\n%s", c.model, tc->name, err);
    return 0;
}
