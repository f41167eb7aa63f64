/*
 * prefork.c - N worker processes, forked at start, accept on one shared listener (Apache's
 * prefork).
 *
 * How it works
 *   The parent creates the listening socket (the harness does), then forks --threads N worker
 *   processes (default 64, SERVER_DEFAULT_POOL_SIZE: a pool of blocking workers is sized for
 *   the clients it must hold at once, not for the cores). Each worker inherits the listener and
 *   runs the sequential server's loop on it: accept() a connection, echo it with blocking calls
 *   until the client is done, close, accept the next. No fork() per connection - the cost of
 *   fork.c is paid N times at start - and the workers are isolated processes, so a crash takes
 *   one client down and the parent simply forks a replacement. The parent only supervises: it
 *   sleeps on a SIGCHLD signalfd and the stop descriptor, replaces a worker that died, and at stop
 *   sends SIGTERM to all and waits for them.
 *
 * The thundering herd
 *   N processes sleep in accept() on the same socket; when one connection arrives, must all N
 *   wake up and race for it, N-1 in vain? Not for a blocking accept() on Linux: the listener's
 *   wait queue is exclusive, so the kernel wakes exactly one sleeper per connection (since
 *   2.6). The herd was real with select()/poll() on the listener before accept() - every
 *   poller wakes - which is why Apache serialised its workers with an "accept mutex". This model
 *   relies on the blocking accept() and needs none; the summary line shows how the connections
 *   spread over the workers (per_thread=...).
 *
 * What limits it
 *   A worker serves one connection at a time: N workers serve N clients, and client N+1 waits in
 *   the listen backlog until one leaves, as with the thread pool (the summary's pool_all_busy=
 *   counts the connections that made every worker busy). Each worker is a full process
 *   (memory, a scheduler entity). The listener must stay blocking (a shared non-blocking
 *   listener would turn the kernel's single wake-up into N workers spinning on EAGAIN).
 *
 * Try it
 *   echo-server --model prefork --threads 4 --port 7007
 *   nc 127.0.0.1 7007
 *   pstree -p $(pgrep -f 'model prefork')      # the parent and its 4 workers
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "server.h"

/* A worker process: accept, serve, repeat, until a stop. */
static _Noreturn void worker_main(struct server *srv, unsigned index, unsigned workers,
                                   int sigchld_fd)
{
    close(sigchld_fd);
    server_enter_child(srv, -1, true); /* keep the listener: accepting is the worker's job */
    while (!server_child_stopping()) {
        /* accept4() itself, not net_accept(): a stop signal must interrupt it (EINTR). */
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (net_accept_error_is_per_connection(errno))
                continue; /* one client's trouble (or EINTR): the loop checks for a stop */
            if (!net_accept_error_is_exhaustion(errno))
                break; /* EINVAL: the listener was shut down - the server is stopping */
            server_count(&srv->stats->accept_pauses, 1);
            clock_sleep_ns(SERVER_ACCEPT_PAUSE_NS); /* out of descriptors: let some close */
            continue;
        }
        if (server_child_stopping()) {
            close(fd); /* stopped while accepting: leave the client to another worker's fate */
            break;
        }
        net_set_nodelay(fd);
        server_count(&srv->stats->connections, 1);
        if (index < SERVER_STATS_THREADS)
            server_count(&srv->stats->per_thread[index], 1);
        server_pool_enter(srv, workers);
        server_child_serve(srv, fd);
        server_pool_leave(srv);
    }
    _exit(0);
}

struct workers {
    struct server_children children;
    pid_t *pid_of; /* pid_of[i]: worker i's process, to replace the right one */
    unsigned n;
    uint64_t window_start_ns; /* replacements are counted per second ... */
    unsigned replaced;        /* ... to stop a storm of workers that exit at once */
};

static int start_worker(struct server *srv, struct workers *w, unsigned i)
{
    pid_t pid = fork();
    if (pid == 0)
        worker_main(srv, i, w->n, w->children.sigchld_fd);
    if (pid < 0)
        return -errno;
    w->pid_of[i] = pid;
    int err = server_children_add(&w->children, pid);
    if (err < 0) {
        kill(pid, SIGTERM); /* cannot track it, so do not leave it running unwatched */
        waitpid(pid, NULL, 0);
    }
    return err;
}

/* Replaces the workers that have exited (while the server is not stopping). Workers that keep
 * dying at once - more than 2N replacements within a second - mean the listener or the machine
 * is broken: the server then fails instead of forking in a loop. */
static int replace_exited(struct server *srv, struct workers *w)
{
    size_t exited = server_children_reap(&w->children, false);
    uint64_t now = clock_now_ns();
    if (now - w->window_start_ns > NS_PER_SEC) {
        w->window_start_ns = now;
        w->replaced = 0;
    }
    w->replaced += (unsigned)exited;
    if (w->replaced > 2 * w->n)
        return -EIO;
    for (unsigned i = 0; i < w->n && !server_stopping(srv); i++) {
        bool alive = false;
        for (size_t k = 0; k < w->children.count; k++)
            alive |= w->children.pids[k] == w->pid_of[i];
        if (!alive) {
            int err = start_worker(srv, w, i);
            if (err < 0)
                return err;
        }
    }
    return 0;
}

static int prefork_run(struct server *srv)
{
    struct workers w = {.n = server_pool_size(srv)};
    w.pid_of = calloc(w.n, sizeof *w.pid_of);
    if (!w.pid_of)
        return server_fail(srv, "calloc", -ENOMEM);
    int err = server_children_init(&w.children);
    if (err < 0) {
        free(w.pid_of);
        return server_fail(srv, "signalfd", err);
    }
    atomic_store(&srv->stats->threads_reported, w.n);
    for (unsigned i = 0; i < w.n && err == 0; i++)
        if ((err = start_worker(srv, &w, i)) < 0)
            err = server_fail(srv, "fork", err);

    while (err == 0 && !server_stopping(srv)) {
        int wake = server_children_wait(srv, &w.children, -1);
        if (wake < 0) {
            err = server_fail(srv, "poll", wake);
            break;
        }
        if ((wake & SERVER_WAKE_CHILD) && (err = replace_exited(srv, &w)) < 0)
            err = server_fail(srv, err == -EIO ? "worker processes (they keep exiting)" : "fork",
                              err);
    }
    /* The harness shut the shared listener down, which ends every worker's accept(); SIGTERM
     * ends the connections they are serving. */
    server_children_stop(&w.children);
    free(w.pid_of);
    return err;
}

const struct server_model model_prefork = {
    .name = "prefork",
    .summary = "N pre-forked worker processes accept on one shared listener (Apache prefork)",
    .kind = MODEL_PROCESSES,
    .threads_meaning = "workers",
    .serves_one_connection_per_thread = true,
    .default_threads = SERVER_DEFAULT_POOL_SIZE,
    .run = prefork_run,
};
