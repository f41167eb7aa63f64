/*
 * testlib.h - helpers for tests that drive a server process from the outside: start and stop
 * it, inspect its process tree in /proc, and talk to it as a client with verified echoes.
 *
 * Every blocking helper takes a timeout, so no test can hang; errors come back as -errno
 * (-ETIMEDOUT when time ran out) and the helpers write a reason into test_error.
 */
#ifndef ECHOBENCH_TESTLIB_H
#define ECHOBENCH_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The last failure's explanation, printed by the test runner. */
extern char test_error[512];

/* Records an explanation (printf-style) and returns -1, for `return fail("...")`. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A server process started by server_start(). */
struct server_proc {
    pid_t pid;     /* also its process group: the server runs in a group of its own */
    uint16_t port;
    char host[64];
    char stderr_path[64];
};

/* echo-server exits EXIT_UNAVAILABLE when the model cannot run on this machine; server_start()
 * then returns EXIT_SKIP, the CTest skip code (common/exit_codes.h). */
#include "exit_codes.h"

/* Starts `bin --model model --host host --port 0 extra...` in its own process group, with stdout
 * read until the "listening on" line (which gives the port) and stderr saved to a file. With
 * nofile > 0, RLIMIT_NOFILE (soft and hard) is set to it first. Returns 0, -1 (test_error), or
 * EXIT_SKIP if the server said the model cannot run here (test_error says why). */
int server_start(struct server_proc *sp, const char *bin, const char *model, const char *host,
                 const char *const *extra, long nofile);

/* Sends sig and waits up to timeout_ms for the process to exit; *status gets the wait status.
 * Returns 0, or -ETIMEDOUT (the process is then still running). */
int server_signal_and_wait(struct server_proc *sp, int sig, int timeout_ms, int *status);

/* Kills the whole process group with SIGKILL and reaps the server; safe to call twice. */
void server_kill(struct server_proc *sp);

/* The server's stderr so far (NUL-terminated, truncated to len-1). */
void server_stderr(const struct server_proc *sp, char *buf, size_t len);

/* Process inspection through /proc. */
int proc_children(pid_t parent, pid_t *out, int max);           /* direct children */
int proc_group_members(pid_t pgid, pid_t *out, int max);        /* live processes in a group */
int proc_zombie_children(pid_t parent);                         /* children in state Z */
long proc_tree_rss_kib(pid_t pid);                               /* VmRSS of pid + descendants */
/* Anonymous memory of pid and its descendants, in KiB: the proportional share (Pss_Anon) of each
 * process, so that pages a forked child shares with its parent count once. What buffering data
 * makes grow; program text and libraries are left out. */
long proc_tree_anon_kib(pid_t pid);
double proc_cpu_seconds(pid_t pid);                   /* utime + stime, descendants included */
/* Waits (up to timeout_ms) until the process tree of pid has stopped using CPU - a pool of
 * processes or threads still starting up - so that a measurement that follows is the test's. */
void proc_tree_settle(pid_t pid, int timeout_ms);

/* Client side. */
int client_connect(const struct server_proc *sp, int timeout_ms); /* blocking fd or -errno */
int send_all_timeout(int fd, const void *buf, size_t len, int timeout_ms);
int recv_exact_timeout(int fd, void *buf, size_t len, int timeout_ms); /* -EPIPE on early EOF */
int expect_eof(int fd, int timeout_ms);
void close_with_reset(int fd); /* SO_LINGER 0: the peer sees a RST */

/* Deterministic pseudo-random bytes and numbers (xorshift64*). */
uint64_t rng_next(uint64_t *state);
void fill_random(uint8_t *buf, size_t len, uint64_t seed);

/*
 * Writes data on fd in the given chunk sizes (one send() each; NULL chunks = as much as fits)
 * while concurrently reading the echo and comparing it byte by byte with data. With pause_every
 * > 0, every pause_every-th chunk is followed by a pause of up to pause_max_us. With shut_wr, the
 * write side is shut down after the last byte and end-of-stream is expected after the echo.
 * Returns 0 once every byte came back, or -1 with test_error set (mismatch offset, timeout...).
 */
struct exchange {
    const uint8_t *data;
    size_t len;
    const size_t *chunks;
    size_t nchunks;
    unsigned pause_every;
    unsigned pause_max_us;
    bool shut_wr;
    int timeout_ms;
};
int echo_exchange(int fd, const struct exchange *x);

/* A short exchange of len random bytes on a new connection: connect, echo, close. */
int echo_roundtrip(const struct server_proc *sp, size_t len, uint64_t seed, int timeout_ms);

/* Milliseconds on the monotonic clock. */
int64_t now_ms(void);

/* Raises this process's descriptor limit to its hard limit. */
void raise_fd_limit(void);

#endif
