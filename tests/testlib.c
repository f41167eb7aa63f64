#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "procstat.h"

char test_error[512];

int fail(const char *fmt, ...)
{
    /* Formatted aside first: callers often wrap the previous message, fail("...: %s",
     * test_error), and vsnprintf must not write the buffer it reads. */
    char msg[sizeof test_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(test_error, msg, sizeof msg);
    return -1;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - now_ms();
    return left < 0 ? 0 : (int)left;
}

void raise_fd_limit(void)
{
    (void)net_raise_fd_limit();
}

/* --- the server process -------------------------------------------------------------------- */

/* Reads one line from fd within timeout_ms. */
static int read_line(int fd, char *buf, size_t len, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    size_t used = 0;
    while (used + 1 < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, remaining_ms(deadline));
        if (r == 0)
            return -ETIMEDOUT;
        if (r < 0 && errno == EINTR)
            continue;
        ssize_t n = read(fd, buf + used, 1);
        if (n <= 0)
            return n == 0 ? -EPIPE : -errno;
        if (buf[used] == '\n')
            break;
        used++;
    }
    buf[used] = '\0';
    return 0;
}

int server_start(struct server_proc *sp, const char *bin, const char *model, const char *host,
                 const char *const *extra, long nofile)
{
    memset(sp, 0, sizeof *sp);
    snprintf(sp->host, sizeof sp->host, "%s", host);
    snprintf(sp->stderr_path, sizeof sp->stderr_path, "/tmp/echobench-test-XXXXXX");
    int errfd = mkstemp(sp->stderr_path);
    int out[2];
    if (errfd < 0 || pipe2(out, O_CLOEXEC) != 0)
        return fail("cannot create pipes: %s", strerror(errno));

    const char *argv[64] = {bin, "--model", model, "--host", host, "--port", "0"};
    int argc = 7;
    for (; extra && *extra && argc < 62; extra++)
        argv[argc++] = *extra;
    argv[argc] = NULL;

    pid_t pid = fork();
    if (pid < 0)
        return fail("fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        if (nofile > 0) {
            struct rlimit rl = {.rlim_cur = (rlim_t)nofile, .rlim_max = (rlim_t)nofile};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        dup2(out[1], STDOUT_FILENO);
        dup2(errfd, STDERR_FILENO);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    setpgid(pid, pid); /* also here, so the group exists whichever process runs first */
    sp->pid = pid;
    close(out[1]);
    close(errfd);

    char line[256];
    int r = read_line(out[0], line, sizeof line, 10000);
    close(out[0]);
    if (r < 0) {
        char err[512];
        int status = 0;
        server_stderr(sp, err, sizeof err);
        bool exited = r == -EPIPE && waitpid(pid, &status, 0) == pid;
        if (exited)
            sp->pid = -pid;
        server_kill(sp);
        if (exited && WIFEXITED(status) && WEXITSTATUS(status) == EXIT_UNAVAILABLE) {
            fail("%s", err);
            return EXIT_SKIP;
        }
        return fail("server did not print its listening line (%s); stderr: %s", strerror(-r), err);
    }
    /* "listening on HOST:PORT model=NAME pid=PID" */
    const char *model_at = strstr(line, " model=");
    const char *colon = NULL;
    for (const char *p = line; p < model_at; p++)
        if (*p == ':')
            colon = p;
    if (strncmp(line, "listening on ", 13) != 0 || !model_at || !colon) {
        server_kill(sp);
        return fail("unexpected first line from server: '%s'", line);
    }
    sp->port = (uint16_t)atoi(colon + 1);
    char expect[64];
    snprintf(expect, sizeof expect, " model=%s pid=%ld", model, (long)pid);
    if (sp->port == 0 || strcmp(model_at, expect) != 0) {
        server_kill(sp);
        return fail("unexpected listening line: '%s'", line);
    }
    return 0;
}

int server_signal_and_wait(struct server_proc *sp, int sig, int timeout_ms, int *status)
{
    if (sp->pid <= 0)
        return -ESRCH;
    kill(sp->pid, sig);
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(sp->pid, status, WNOHANG);
        if (r == sp->pid) {
            sp->pid = -sp->pid; /* reaped; keep the number for group checks */
            return 0;
        }
        if (now_ms() >= deadline)
            return -ETIMEDOUT;
        usleep(5000);
    }
}

void server_kill(struct server_proc *sp)
{
    pid_t pgid = sp->pid > 0 ? sp->pid : -sp->pid;
    if (pgid > 0)
        kill(-pgid, SIGKILL);
    if (sp->pid > 0) {
        waitpid(sp->pid, NULL, 0);
        sp->pid = -sp->pid;
    }
    if (sp->stderr_path[0]) {
        unlink(sp->stderr_path);
        sp->stderr_path[0] = '\0';
    }
}

void server_stderr(const struct server_proc *sp, char *buf, size_t len)
{
    buf[0] = '\0';
    int fd = open(sp->stderr_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
}

/* --- /proc (through common/procstat) ----------------------------------------------------- */

struct pid_filter {
    pid_t *out;
    int max, count;
    bool zombies_only;
};

static void collect(pid_t pid, const struct procstat *ps, void *arg)
{
    struct pid_filter *f = arg;
    if (f->zombies_only && ps->state != 'Z')
        return;
    if (f->count < f->max && f->out)
        f->out[f->count] = pid;
    f->count++;
}

int proc_children(pid_t parent, pid_t *out, int max)
{
    struct pid_filter f = {.out = out, .max = max};
    procstat_children(parent, collect, &f);
    return f.count;
}

int proc_zombie_children(pid_t parent)
{
    struct pid_filter f = {.zombies_only = true};
    procstat_children(parent, collect, &f);
    return f.count;
}

struct group_filter {
    pid_t pgid;
    struct pid_filter f;
};

static void collect_group(pid_t pid, const struct procstat *ps, void *arg)
{
    struct group_filter *g = arg;
    if (ps->pgrp == g->pgid && ps->state != 'Z')
        collect(pid, ps, &g->f);
}

int proc_group_members(pid_t pgid, pid_t *out, int max)
{
    struct group_filter g = {.pgid = pgid, .f = {.out = out, .max = max}};
    procstat_each(collect_group, &g);
    return g.f.count;
}

long proc_tree_rss_kib(pid_t pid)
{
    long kib = procstat_tree_rss_kib(pid);
    return kib > 0 ? kib : 0;
}

struct anon_sum {
    pid_t root;
    long kib;
};

static long pss_anon_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/smaps_rollup", (long)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    long kib = 0, v;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Pss_Anon: %ld kB", &v) == 1 || sscanf(line, "Pss_Shmem: %ld kB", &v) == 1)
            kib += v;
    fclose(f);
    return kib;
}

static void add_descendant_anon(pid_t pid, const struct procstat *ps, void *arg);

static void add_anon_of_tree(struct anon_sum *sum, pid_t pid)
{
    sum->kib += pss_anon_kib(pid);
    procstat_children(pid, add_descendant_anon, sum);
}

static void add_descendant_anon(pid_t pid, const struct procstat *ps, void *arg)
{
    (void)ps;
    add_anon_of_tree(arg, pid);
}

long proc_tree_anon_kib(pid_t pid)
{
    struct anon_sum sum = {.root = pid};
    add_anon_of_tree(&sum, pid);
    return sum.kib;
}

double proc_cpu_seconds(pid_t pid)
{
    uint64_t ns = 0;
    procstat_tree_cpu_ns(pid, &ns);
    return (double)ns / 1e9;
}

void proc_tree_settle(pid_t pid, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    double last = proc_cpu_seconds(pid);
    for (int quiet = 0; quiet < 2 && now_ms() < deadline;) {
        usleep(50 * 1000);
        double cpu = proc_cpu_seconds(pid);
        quiet = cpu - last < 0.002 ? quiet + 1 : 0;
        last = cpu;
    }
}

/* --- client side --------------------------------------------------------------------------- */

static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int r = poll(&p, 1, remaining_ms(deadline));
        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

int client_connect(const struct server_proc *sp, int timeout_ms)
{
    struct net_addr addr;
    if (net_resolve(sp->host, sp->port, &addr) < 0)
        return -EINVAL;
    int fd = net_connect(&addr, true);
    if (fd < 0)
        return fd;
    int err = wait_fd(fd, POLLOUT, now_ms() + timeout_ms);
    if (err == 0)
        err = net_socket_error(fd);
    if (err == 0) {
        int flags = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        return fd;
    }
    close(fd);
    return err;
}

/* Moves exactly len bytes in one direction before the deadline. */
static int transfer_exact(int fd, uint8_t *p, size_t len, int timeout_ms, bool sending)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (len > 0) {
        int err = wait_fd(fd, sending ? POLLOUT : POLLIN, deadline);
        if (err < 0)
            return err;
        ssize_t n = sending ? send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT)
                            : recv(fd, p, len, MSG_DONTWAIT);
        if (n == 0 && !sending)
            return -EPIPE;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int send_all_timeout(int fd, const void *buf, size_t len, int timeout_ms)
{
    return transfer_exact(fd, (uint8_t *)buf, len, timeout_ms, true);
}

int recv_exact_timeout(int fd, void *buf, size_t len, int timeout_ms)
{
    return transfer_exact(fd, buf, len, timeout_ms, false);
}

int expect_eof(int fd, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int err = wait_fd(fd, POLLIN, deadline);
        if (err < 0)
            return err;
        char c;
        ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
        if (n == 0)
            return 0;
        if (n > 0)
            return -EPROTO; /* more data where the end was expected */
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
    }
}

void close_with_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

void fill_random(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t st = seed;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(rng_next(&st) >> 56);
}

int echo_exchange(int fd, const struct exchange *x)
{
    int64_t deadline = now_ms() + x->timeout_ms;
    uint8_t buf[65536];
    size_t sent = 0, got = 0, chunk = 0, chunk_left = 0;
    int64_t resume_at = 0; /* a pause in progress ends at this time (us) */
    uint64_t rng = 42;
    bool shut = false;

    while (got < x->len || (x->shut_wr && !shut)) {
        if (sent == x->len && x->shut_wr && !shut) {
            shutdown(fd, SHUT_WR);
            shut = true;
        }
        if (sent < x->len && chunk_left == 0) {
            chunk_left = (x->chunks && chunk < x->nchunks) ? x->chunks[chunk] : x->len - sent;
            if (chunk_left > x->len - sent)
                chunk_left = x->len - sent;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        bool may_send = sent < x->len && now_us >= resume_at;
        int timeout = remaining_ms(deadline);
        if (timeout == 0)
            return fail("timed out: sent %zu of %zu bytes, %zu echoed", sent, x->len, got);
        if (sent < x->len && !may_send) {
            int pause = (int)((resume_at - now_us + 999) / 1000);
            if (pause < timeout)
                timeout = pause;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN | (may_send ? POLLOUT : 0)};
        if (poll(&p, 1, timeout) < 0 && errno != EINTR)
            return fail("poll: %s", strerror(errno));
        if (p.revents & POLLOUT) {
            ssize_t n = send(fd, x->data + sent, chunk_left, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return fail("send after %zu bytes: %s", sent, strerror(errno));
            if (n > 0) {
                sent += (size_t)n;
                chunk_left -= (size_t)n;
                if (chunk_left == 0 && x->chunks) {
                    chunk++;
                    if (x->pause_every && chunk % x->pause_every == 0)
                        resume_at = now_us + (int64_t)(rng_next(&rng) % (x->pause_max_us + 1));
                }
            }
        }
        if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0)
                return fail("server closed early: %zu of %zu bytes echoed", got, x->len);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return fail("recv after %zu bytes: %s", got, strerror(errno));
            if (n > 0) {
                if ((size_t)n > x->len - got)
                    return fail("server echoed %zu bytes more than were sent", got + n - x->len);
                if (memcmp(buf, x->data + got, (size_t)n) != 0) {
                    size_t i = 0;
                    while (buf[i] == x->data[got + i])
                        i++;
                    return fail("echo differs at byte %zu: got 0x%02x, sent 0x%02x", got + i,
                                buf[i], x->data[got + i]);
                }
                got += (size_t)n;
            }
        }
    }
    if (x->shut_wr) {
        int err = expect_eof(fd, remaining_ms(deadline));
        if (err == -EPROTO)
            return fail("data after the full echo, where end-of-stream was expected");
        if (err < 0)
            return fail("no end-of-stream after the full echo of a half-closed stream: %s",
                        strerror(-err));
    }
    return 0;
}

int echo_roundtrip(const struct server_proc *sp, size_t len, uint64_t seed, int timeout_ms)
{
    int fd = client_connect(sp, timeout_ms);
    if (fd < 0)
        return fail("connect: %s", strerror(-fd));
    uint8_t *data = malloc(len);
    fill_random(data, len, seed);
    struct exchange x = {.data = data, .len = len, .timeout_ms = timeout_ms};
    int r = echo_exchange(fd, &x);
    free(data);
    close(fd);
    return r;
}
