/*
 * server.c - the services the harness offers every model (see server.h): blocking accept with
 * back-off, connection tracking for prompt shutdown, the blocking connection loop, child set-up.
 */
#include "server.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <stdint.h>
#include <unistd.h>

#include "clock.h"
#include "harness.h"

bool server_pause(struct server *srv, int ms)
{
    /* stop_fd is never drained: once written it stays readable, so this returns at once. */
    struct pollfd p = {.fd = srv->stop_fd, .events = POLLIN};
    while (poll(&p, 1, ms) < 0 && errno == EINTR)
        ;
    return server_stopping(srv);
}

int server_accept(struct server *srv)
{
    for (;;) {
        if (server_stopping(srv))
            return -ECANCELED;
        int fd = net_accept(srv->listen_fd, 0);
        if (fd >= 0) {
            server_count(&srv->stats->connections, 1);
            return fd;
        }
        /* After a stop the listener is shut down and accept fails with EINVAL. */
        if (server_stopping(srv))
            return -ECANCELED;
        if (!net_accept_error_is_exhaustion(-fd))
            return server_fail(srv, "accept", fd);
        server_count(&srv->stats->accept_pauses, 1);
        server_pause(srv, SERVER_ACCEPT_PAUSE_MS);
    }
}

int server_track(struct server *srv, struct server_conn *conn, int fd)
{
    conn->fd = fd;
    pthread_mutex_lock(&srv->lock);
    /* Checked under the lock that the stop request also takes: a connection is either in the
     * list when the stop walks it, or sees the flag here. */
    if (server_stopping(srv)) {
        pthread_mutex_unlock(&srv->lock);
        return -ECANCELED;
    }
    list_insert_head(&srv->tracked, &conn->link);
    pthread_mutex_unlock(&srv->lock);
    return 0;
}

void server_untrack(struct server *srv, struct server_conn *conn)
{
    pthread_mutex_lock(&srv->lock);
    list_remove(&conn->link);
    pthread_mutex_unlock(&srv->lock);
}

void server_serve_blocking(struct server *srv, int fd)
{
    struct server_conn conn;
    uint64_t echoed = 0;
    if (server_track(srv, &conn, fd) == 0) {
        /* A reset or a stop ends the connection; neither concerns any other client. */
        (void)echo_serve_blocking(fd, &srv->cfg->work, &echoed);
        server_untrack(srv, &conn);
    }
    close(fd);
    server_count(&srv->stats->bytes_echoed, echoed);
}

void server_on_stop(struct server *srv, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&srv->lock);
    srv->stop_hook = fn;
    srv->stop_arg = arg;
    pthread_mutex_unlock(&srv->lock);
}

int server_listen_again(struct server *srv)
{
    int fd = net_listen(&srv->addr, srv->cfg->backlog, true);
    if (fd >= 0 && net_set_nonblock(fd) < 0) {
        close(fd);
        return -errno;
    }
    return fd;
}

int server_thread_attr(struct server *srv, pthread_attr_t *attr)
{
    int err = pthread_attr_init(attr);
    if (err == 0)
        err = pthread_attr_setstacksize(attr, srv->cfg->stack_size);
    return -err;
}

struct thread_item {
    void *item;
    int (*run)(void *);
    int result;
    pthread_t tid;
};

static void *thread_item_main(void *p)
{
    struct thread_item *t = p;
    t->result = t->run(t->item);
    return NULL;
}

int server_run_threads(struct server *srv, unsigned n, void *items, size_t size,
                       int (*run)(void *item))
{
    struct thread_item *ts = calloc(n, sizeof *ts);
    if (!ts)
        return server_fail(srv, "calloc", -ENOMEM);
    pthread_attr_t attr;
    int err = server_thread_attr(srv, &attr);
    unsigned started = 1;
    if (err < 0) {
        err = server_fail(srv, "pthread_attr_setstacksize", err);
    } else {
        for (; started < n; started++) {
            ts[started] = (struct thread_item){.item = (char *)items + started * size, .run = run};
            int e = pthread_create(&ts[started].tid, &attr, thread_item_main, &ts[started]);
            if (e != 0) {
                err = server_fail(srv, "pthread_create", -e); /* the others are told to stop */
                break;
            }
        }
        pthread_attr_destroy(&attr);
    }
    int result = run(items); /* item 0, here: after a failed start it returns at once */
    for (unsigned i = 1; i < started; i++) {
        pthread_join(ts[i].tid, NULL);
        if (result == 0)
            result = ts[i].result;
    }
    free(ts);
    return err < 0 ? err : result;
}

int server_fail(struct server *srv, const char *call, int err)
{
    /* Any thread of a model may fail, several at once: the first one is recorded, under the
     * lock (main reads it after every thread has been joined). */
    pthread_mutex_lock(&srv->lock);
    if (!srv->failed_call) {
        srv->failed_call = call;
        srv->failed_err = err;
    }
    pthread_mutex_unlock(&srv->lock);
    server_request_stop(srv);
    return err;
}

int server_accept_nonblocking(int listen_fd, struct server_thread_totals *t, uint64_t *resume_ns)
{
    int fd = net_accept(listen_fd, SOCK_NONBLOCK);
    if (fd >= 0) {
        t->accepted++;
        return fd;
    }
    if (net_accept_error_is_exhaustion(-fd)) {
        t->pauses++;
        *resume_ns = clock_now_ns() + SERVER_ACCEPT_PAUSE_NS;
    }
    return -1; /* EAGAIN: nothing waiting (or another thread took it) */
}

bool server_accept_batch(int listen_fd, struct server_thread_totals *t, uint64_t *resume_ns,
                         int (*adopt)(void *arg, int fd), void *arg)
{
    for (int i = 0; i < SERVER_ACCEPT_BATCH; i++) {
        int fd = server_accept_nonblocking(listen_fd, t, resume_ns);
        if (fd < 0)
            return *resume_ns != 0;
        if (adopt(arg, fd) < 0) {
            close(fd); /* no memory for it, or the loop cannot watch it: refused cleanly */
            t->shed++;
        }
    }
    return false;
}

int server_accept_pause_ms(uint64_t *resume_ns)
{
    if (*resume_ns == 0)
        return -1;
    uint64_t now = clock_now_ns();
    if (now >= *resume_ns) {
        *resume_ns = 0;
        return 0;
    }
    return (int)((*resume_ns - now) / NS_PER_MS) + 1;
}

void server_add_thread_totals(struct server *srv, unsigned index,
                              const struct server_thread_totals *t)
{
    struct server_stats *st = srv->stats;
    server_count(&st->connections, t->accepted);
    server_count(&st->bytes_echoed, t->echoed);
    server_count(&st->shed, t->shed);
    server_count(&st->accept_pauses, t->pauses);
    if (index < SERVER_STATS_THREADS)
        server_count(&st->per_thread[index], t->served);
}

unsigned server_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

unsigned server_pool_size(const struct server *srv)
{
    return srv->cfg->threads ? srv->cfg->threads : SERVER_DEFAULT_POOL_SIZE;
}

void server_pool_enter(struct server *srv, unsigned workers)
{
    unsigned busy = atomic_fetch_add_explicit(&srv->stats->pool_busy, 1, memory_order_relaxed);
    if (busy + 1 >= workers)
        server_count(&srv->stats->pool_all_busy, 1);
}

void server_pool_leave(struct server *srv)
{
    atomic_fetch_sub_explicit(&srv->stats->pool_busy, 1, memory_order_relaxed);
}

/* --- child processes ---------------------------------------------------------------------- */

int server_children_init(struct server_children *ch)
{
    *ch = (struct server_children){0};
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ch->sigchld_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    return ch->sigchld_fd < 0 ? -errno : 0;
}

int server_children_add(struct server_children *ch, pid_t pid)
{
    if (ch->count == ch->cap) {
        size_t cap = ch->cap ? ch->cap * 2 : 64;
        pid_t *pids = realloc(ch->pids, cap * sizeof *pids);
        if (!pids)
            return -ENOMEM;
        ch->pids = pids;
        ch->cap = cap;
    }
    ch->pids[ch->count++] = pid;
    return 0;
}

static void children_remove(struct server_children *ch, pid_t pid)
{
    for (size_t i = 0; i < ch->count; i++) {
        if (ch->pids[i] == pid) {
            ch->pids[i] = ch->pids[--ch->count];
            return;
        }
    }
}

size_t server_children_reap(struct server_children *ch, bool block)
{
    struct signalfd_siginfo info;
    while (read(ch->sigchld_fd, &info, sizeof info) > 0)
        ; /* SIGCHLDs coalesce: the waitpid loop below finds every exited child */
    size_t reaped = 0;
    while (ch->count > 0) {
        pid_t pid = waitpid(-1, NULL, block ? 0 : WNOHANG);
        if (pid > 0) {
            children_remove(ch, pid);
            reaped++;
        } else if (pid < 0 && errno == EINTR) {
            continue;
        } else {
            break; /* 0: no other child has exited yet; ECHILD: none is left */
        }
    }
    return reaped;
}

void server_children_stop(struct server_children *ch)
{
    for (size_t i = 0; i < ch->count; i++)
        kill(ch->pids[i], SIGTERM);
    server_children_reap(ch, true);
    free(ch->pids);
    close(ch->sigchld_fd);
    *ch = (struct server_children){.sigchld_fd = -1};
}

/* What a child's signal handler shuts down: the connection it serves. */
static volatile sig_atomic_t child_conn_fd = -1, child_stop;

static void child_on_stop_signal(int sig)
{
    (void)sig;
    child_stop = 1;
    echo_abort_costs();
    /* shutdown() is async-signal-safe; it makes a blocked recv()/send() return, and stays in
     * effect if the signal lands just before the call. The listener, if the child shares it,
     * is left alone: a signal to one worker process is not a stop of the whole server (the
     * parent shuts the listener down when the server stops). */
    if (child_conn_fd >= 0)
        shutdown(child_conn_fd, SHUT_RDWR);
}

void server_enter_child(struct server *srv, int conn_fd, bool keep_listener)
{
    if (!keep_listener)
        close(srv->listen_fd);
    close(srv->stop_fd);
    child_conn_fd = conn_fd;
    /* No SA_RESTART: a worker blocked in accept() returns with EINTR and sees the stop. */
    struct sigaction sa = {.sa_handler = child_on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* The harness blocked these in every thread; the child has no signal thread, so it takes
     * them itself. A signal already pending runs the handler right here. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

void server_child_serve(struct server *srv, int fd)
{
    server_child_serving(fd);
    uint64_t echoed = 0;
    (void)echo_serve_blocking(fd, &srv->cfg->work, &echoed); /* a reset concerns this client */
    server_child_serving(-1);
    close(fd);
    server_count(&srv->stats->bytes_echoed, echoed);
}

int server_children_wait(struct server *srv, struct server_children *ch, int fd)
{
    struct pollfd pfd[3] = {
        {.fd = ch->sigchld_fd, .events = POLLIN},
        {.fd = srv->stop_fd, .events = POLLIN},
        {.fd = fd, .events = POLLIN}, /* ignored by poll() when fd < 0 */
    };
    while (poll(pfd, 3, -1) < 0)
        if (errno != EINTR)
            return -errno;
    int wake = 0;
    if (pfd[0].revents)
        wake |= SERVER_WAKE_CHILD;
    if (pfd[1].revents || server_stopping(srv))
        wake |= SERVER_WAKE_STOP;
    if (fd >= 0 && pfd[2].revents)
        wake |= SERVER_WAKE_FD;
    return wake;
}

void server_child_serving(int fd)
{
    child_conn_fd = fd;
    /* A stop that came before the line above found no connection to shut down. */
    if (fd >= 0 && child_stop)
        shutdown(fd, SHUT_RDWR);
}

bool server_child_stopping(void)
{
    return child_stop;
}

int harness_init(struct server *srv, const struct server_config *cfg, struct server_stats *stats)
{
    *srv = (struct server){.cfg = cfg, .stats = stats, .listen_fd = -1, .stop_fd = -1};
    atomic_init(&srv->stopping, false);
    list_init(&srv->tracked);
    int err = pthread_mutex_init(&srv->lock, NULL);
    return -err;
}

/*
 * The stop protocol, in this order, and why:
 *   1. the flag: from now on server_stopping() is true and server_track() refuses new
 *      connections, so nothing started after this point can be missed by step 3;
 *   2. per-message costs are cut short (echo_abort_costs), so no thread is stuck in a second of
 *      CPU work or sleep;
 *   3. stop_fd becomes readable: event loops (which never block elsewhere) wake up and return;
 *   4. the listener is shut down (not closed: a model may still be polling it): a thread blocked
 *      in accept() returns EINVAL at once, and no new client is taken;
 *   5. every tracked connection is shut down: a thread blocked in recv() or send() returns;
 *   6. the model's hook wakes whatever else it sleeps on (condition variables).
 * Forked children are told by the process model's parent (server_children_stop: SIGTERM),
 * whose handler (child_on_stop_signal) shuts the child's one connection down; a child leaves a
 * listener it shares alone - the parent's step 4 reaches every process that holds it.
 */
void server_request_stop(struct server *srv)
{
    if (atomic_exchange(&srv->stopping, true))
        return;
    echo_abort_costs(); /* a thread busy with --work-us/--sleep-us must not delay the stop */
    uint64_t one = 1;
    ssize_t n = write(srv->stop_fd, &one, sizeof one);
    (void)n; /* an eventfd write of 1 cannot fail short of a bug */
    shutdown(srv->listen_fd, SHUT_RDWR);
    pthread_mutex_lock(&srv->lock);
    struct list *node, *next;
    list_for_each_safe(node, next, &srv->tracked)
        shutdown(list_entry(node, struct server_conn, link)->fd, SHUT_RDWR);
    /* Called under the lock, so that once a model has removed its hook (server_on_stop with
     * NULL, which takes the lock) no call can still be running on memory the model frees. */
    if (srv->stop_hook)
        srv->stop_hook(srv->stop_arg);
    pthread_mutex_unlock(&srv->lock);
}
