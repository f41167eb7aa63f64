/*
 * thread.c - a thread per connection.
 *
 * How it works
 *   The main thread accepts; every connection gets a new thread that serves it with plain
 *   blocking calls and ends when the client is done. Threads share one address space, so
 *   starting one is much cheaper than fork() - no page tables to copy - and the code stays
 *   as straightforward as the sequential server's.
 *
 *   Threads are detached (nobody joins them one by one); instead a counter of live threads,
 *   guarded by a mutex and a condition variable, lets the main thread wait at stop time until
 *   the last one has finished, so no thread outlives the server. Every thread gets the stack
 *   size of --stack-size (default 256 KiB rather than the usual 8 MiB): what a thread really
 *   uses is about one 16 KiB buffer, and with 10,000 clients the stacks are 10,000 reservations.
 *
 * What limits it
 *   One kernel thread per client: memory for each stack, a scheduler entity each, and a context
 *   switch for every message when many clients are active on few cores. Thread creation still
 *   costs several microseconds per connection. If a thread cannot be created (the thread or
 *   memory limits are reached), the connection is closed at once and counted as shed, and the
 *   acceptor backs off briefly.
 *
 * Try it
 *   echo-server --model thread --port 7007
 *   nc 127.0.0.1 7007                           # each nc gets its own thread:
 *   ls /proc/$(pgrep -f 'model thread')/task    # one entry per client, plus two
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "server.h"

struct thread_pool_state {
    struct server *srv;
    pthread_mutex_t lock;
    pthread_cond_t all_done;
    unsigned live;
};

struct conn_thread_arg {
    struct thread_pool_state *st;
    int fd;
};

static void *conn_thread(void *p)
{
    struct conn_thread_arg arg = *(struct conn_thread_arg *)p;
    free(p);
    server_serve_blocking(arg.st->srv, arg.fd);
    pthread_mutex_lock(&arg.st->lock);
    if (--arg.st->live == 0)
        pthread_cond_signal(&arg.st->all_done);
    pthread_mutex_unlock(&arg.st->lock);
    return NULL;
}

/* Starts a detached thread for fd; returns 0 or -errno (the caller still owns fd then). */
static int start_conn_thread(struct thread_pool_state *st, pthread_attr_t *attr, int fd)
{
    struct conn_thread_arg *arg = malloc(sizeof *arg);
    if (!arg)
        return -ENOMEM;
    *arg = (struct conn_thread_arg){.st = st, .fd = fd};
    pthread_t tid;
    pthread_mutex_lock(&st->lock);
    int err = pthread_create(&tid, attr, conn_thread, arg);
    if (err == 0)
        st->live++;
    pthread_mutex_unlock(&st->lock);
    if (err != 0)
        free(arg);
    return -err;
}

static int thread_run(struct server *srv)
{
    struct thread_pool_state st = {.srv = srv};
    pthread_attr_t attr;
    int err = server_thread_attr(srv, &attr);
    if (err < 0)
        return server_fail(srv, "pthread_attr_setstacksize", err);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.all_done, NULL);

    int fd;
    while ((fd = server_accept(srv)) >= 0) {
        if (start_conn_thread(&st, &attr, fd) < 0) {
            close(fd);
            server_count(&srv->stats->shed, 1);
            server_pause(srv, 10); /* out of threads or memory: let some finish */
        }
    }

    /* A stop (also the one server_fail() requests) shut every tracked connection down; wait for
     * their threads to notice. */
    pthread_mutex_lock(&st.lock);
    while (st.live > 0)
        pthread_cond_wait(&st.all_done, &st.lock);
    pthread_mutex_unlock(&st.lock);
    pthread_attr_destroy(&attr);
    return 0;
}

const struct server_model model_thread = {
    .name = "thread",
    .summary = "a new thread per connection, blocking I/O",
    .kind = MODEL_THREADS,
    /* Every thread takes an id from the pid space, counts against threads-max, and maps its
     * stack as two areas (the stack and its guard page). */
    .kernel_limits = {{"kernel.pid_max", 1, "a thread (and its id) per connection"},
                      {"kernel.threads-max", 1, "a thread per connection"},
                      {"vm.max_map_count", 2, "a stack and its guard page per connection"}},
    .run = thread_run,
};
