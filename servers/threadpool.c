/*
 * threadpool.c - N pre-started worker threads take connections from a bounded queue.
 *
 * How it works
 *   At start-up the server creates --threads workers (default 64: SERVER_DEFAULT_POOL_SIZE - a
 *   blocking pool is sized for the clients it must hold at once, not for the cores, because a
 *   worker waiting on an idle client costs a stack, not CPU).
 *   The main thread is the acceptor: it accepts connections and puts them in a bounded queue (a
 *   ring of descriptors guarded by a mutex and two condition variables); an idle worker takes the
 *   oldest one and serves it with blocking calls until the client is done, then takes the next.
 *   No thread is created per connection, so connection churn costs no clone(), and the number of
 *   threads - hence stacks and scheduler load - is fixed however many clients come.
 *
 * When every worker is busy and the queue is full
 *   The queue holds as many connections as there are workers. When it is full the acceptor stops
 *   calling accept() and waits for a worker to free a slot. New clients then wait in the kernel's
 *   listen backlog (their handshake completes, their bytes are buffered, no echo comes back); once
 *   the backlog is full too, the kernel drops new SYNs and clients retry. This is back-pressure:
 *   the server never holds more connections than it can soon serve, and memory stays bounded.
 *   The alternative - accepting without limit into an unbounded queue - only moves the same wait
 *   into user space, hides it from the clients' connect() and grows without bound.
 *
 * What limits it
 *   A worker is tied to one connection for the connection's whole life, so at most N clients are
 *   served at a time: N idle or slow clients stall everyone else (try it with --threads 2 and
 *   three idle nc). The summary line says when that happened: pool_all_busy= counts the
 *   connections that made every worker busy. The pool shines when connections are short or the per-message work blocks (--sleep-us): then
 *   N workers overlap N waits, where an event loop would stall on each.
 *
 * Try it
 *   echo-server --model threadpool --threads 2 --port 7007
 *   nc 127.0.0.1 7007      # two of these are served at once;
 *   nc 127.0.0.1 7007      # a third waits, silently, until one of the first two exits
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "server.h"

/* A bounded FIFO of accepted descriptors. */
struct conn_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    int *fds;
    unsigned cap, head, count;
    bool closed; /* set at stop: nobody waits any more */
};

static int queue_init(struct conn_queue *q, unsigned cap)
{
    *q = (struct conn_queue){.cap = cap};
    q->fds = calloc(cap, sizeof *q->fds);
    if (!q->fds)
        return -ENOMEM;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    return 0;
}

/* Waits until the queue has room (true) or is closed (false). */
static bool queue_wait_for_room(struct conn_queue *q)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == q->cap && !q->closed)
        pthread_cond_wait(&q->not_full, &q->lock);
    bool open = !q->closed;
    pthread_mutex_unlock(&q->lock);
    return open;
}

/* Appends fd; returns false (leaving fd to the caller) if the queue is closed. Only the acceptor
 * pushes, after queue_wait_for_room(), so there is always room. */
static bool queue_push(struct conn_queue *q, int fd)
{
    pthread_mutex_lock(&q->lock);
    bool open = !q->closed;
    if (open) {
        q->fds[(q->head + q->count++) % q->cap] = fd;
        pthread_cond_signal(&q->not_empty);
    }
    pthread_mutex_unlock(&q->lock);
    return open;
}

/* Takes the oldest fd, waiting for one; returns -1 once the queue is closed. */
static int queue_pop(struct conn_queue *q)
{
    int fd = -1;
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->lock);
    if (!q->closed) {
        fd = q->fds[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->lock);
    return fd;
}

/* The stop hook: wakes the acceptor and every idle worker. */
static void queue_close(void *p)
{
    struct conn_queue *q = p;
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
}

/* Closes the connections still waiting in a closed queue (accepted, never served). */
static void queue_discard(struct conn_queue *q, struct server *srv)
{
    for (; q->count > 0; q->count--, q->head = (q->head + 1) % q->cap) {
        close(q->fds[q->head]);
        server_count(&srv->stats->shed, 1);
    }
}

struct pool {
    struct server *srv;
    struct conn_queue queue;
};

static void *worker_main(void *p)
{
    struct pool *pool = p;
    int fd;
    while ((fd = queue_pop(&pool->queue)) >= 0) {
        server_pool_enter(pool->srv, pool->queue.cap);
        server_serve_blocking(pool->srv, fd);
        server_pool_leave(pool->srv);
    }
    return NULL;
}

static int threadpool_run(struct server *srv)
{
    unsigned n = server_pool_size(srv);
    struct pool pool = {.srv = srv};
    pthread_t *workers = calloc(n, sizeof *workers);
    if (!workers || queue_init(&pool.queue, n) < 0) {
        free(workers);
        return server_fail(srv, "calloc", -ENOMEM);
    }
    server_on_stop(srv, queue_close, &pool.queue);

    pthread_attr_t attr;
    int err = server_thread_attr(srv, &attr);
    bool have_attr = err == 0;
    unsigned started = 0;
    for (; err == 0 && started < n; started++) {
        int e = pthread_create(&workers[started], &attr, worker_main, &pool);
        if (e != 0) {
            err = server_fail(srv, "pthread_create", -e);
            break; /* workers[started] does not exist: it must not be joined */
        }
    }
    if (have_attr)
        pthread_attr_destroy(&attr);

    int fd;
    while (err == 0 && queue_wait_for_room(&pool.queue) && (fd = server_accept(srv)) >= 0) {
        if (!queue_push(&pool.queue, fd)) {
            close(fd);
            server_count(&srv->stats->shed, 1);
        }
    }

    /* Stopped (or failed): close the queue, let the workers finish their connections - a stop
     * has shut them down - and join them. */
    queue_close(&pool.queue);
    for (unsigned i = 0; i < started; i++)
        pthread_join(workers[i], NULL);
    queue_discard(&pool.queue, srv);
    server_on_stop(srv, NULL, NULL);
    free(pool.queue.fds);
    free(workers);
    return err;
}

const struct server_model model_threadpool = {
    .name = "threadpool",
    .summary = "N pre-started workers take connections from a bounded queue",
    .kind = MODEL_THREADS,
    .threads_meaning = "workers",
    .serves_one_connection_per_thread = true,
    .default_threads = SERVER_DEFAULT_POOL_SIZE,
    .run = threadpool_run,
};
