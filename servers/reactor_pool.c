/*
 * reactor_pool.c - half-sync/half-async: one event loop does all the I/O, a pool of worker
 * threads pays for the messages (Netty's boss/worker groups, Tomcat's NIO connector).
 *
 * How it works
 *   One thread runs an edge-triggered epoll loop over non-blocking sockets, exactly like the
 *   epoll model: it accepts, receives, sends, and parks what a slow client does not take
 *   (nbecho.h). The loop never waits on anything but epoll. What it cannot afford - the
 *   per-message CPU work and blocking wait of --msg-size/--work-us/--sleep-us - it hands off:
 *
 *     loop:    recv 16 KiB -> completes k messages? -> copy the bytes into a batch, queue it
 *     worker:  take a batch (mutex + condition variable), spend k messages' cost, put it on the
 *              finished list and write an eventfd if that list was empty
 *     loop:    the eventfd is readable -> take every finished batch, send its bytes, read on
 *
 *   Bytes that complete no message (the middle of a large message) are echoed by the loop at
 *   once, as every model does. Order is kept by one rule: while a connection has a batch in
 *   the pool, or output parked, the loop does not read from it - so a connection has at most
 *   one batch in the pool, its bytes go out in the order they came, and no lock is needed per
 *   connection (only the loop touches a connection; a worker reads the batch's message count
 *   and links the batch into a list, under the pool's lock). The edges that arrived meanwhile
 *   are ignored: when the batch comes back the loop sends it and then reads until EAGAIN.
 *   Memory stays bounded: at most one 16 KiB batch or parked buffer per connection, and a
 *   client that does not read stops being read from, as in epoll. Batch buffers come from the
 *   loop's spare list of parked-output buffers and go back to it (nb_buffer_get/put): the loop
 *   allocates none per message while no more than NB_SPARE_BUFFERS are out at once. What a
 *   hand-off does cost per batch is the pool's lock, taken by the loop and by the worker.
 *
 *   Without a per-message cost (no --work-us or --sleep-us) no worker is even started: the loop
 *   echoes straight from its receive buffer and this is the epoll model, instruction for
 *   instruction (one predictable branch more per read). The hand-off only costs where there is
 *   work to hand off. Measured on a 2-vCPU VM, server and loadgen pinned to one CPU each as
 *   the bench does, `loadgen -c 16 -d 3s --server-pid PID`, server CPU per request (median of
 *   five runs; the machine was shared, runs spread by +-20 %):
 *     no cost:                                 reactor_pool 8.8 us   epoll 8.9 us (one loop)
 *     --msg-size 128 --work-us 5 (--size 128): reactor_pool 36.0 us  epoll 22.2 us
 *   so a hand-off costs about 14 us of CPU per message here: the condition-variable wake of a
 *   worker (futex), the worker's eventfd write, the loop's extra epoll wake-up and eventfd
 *   read, a copy of the batch - and two thread switches on the one CPU, which a VM makes
 *   dear. It pays when a message's cost is large against that, when several CPUs can run the
 *   workers, or when the cost blocks: a --sleep-us wait stalls one worker, never the loop.
 *
 *   The pool: at most --threads workers, default 64 (SERVER_DEFAULT_POOL_SIZE, as threadpool).
 *   CPU work alone would want one worker per core, but a blocking wait (--sleep-us) occupies a
 *   worker for its whole length, and overlapping N waits needs N workers; an idle worker costs
 *   a stack and no CPU, so the pool is sized for the waits, like Tomcat's 200 worker threads.
 *   Workers are started on demand - when a batch is queued and no worker is free - so a server
 *   whose clients pay for one message at a time runs one worker, not 64 (the summary's
 *   note=workers=N of M says how many it needed). Unlike threadpool, a worker is never tied
 *   to a connection: 64 workers serve any number of connections, and an idle client costs the
 *   same as in epoll.
 *
 *   Stopping: stop_fd is in the loop's epoll set; the stop hook (server_on_stop) closes the
 *   pool and wakes every idle worker, and the harness's stop cuts a cost in progress short
 *   (echo_abort_costs), so the workers are joined within milliseconds.
 *
 * What limits it
 *   One loop thread does all the system calls: throughput is one core's worth of I/O, like a
 *   single epoll reactor, and two thread switches per batch are added when there is work. A
 *   cost that only takes a few microseconds is cheaper paid inline (epoll) than handed off.
 *   With more connections paying long waits than workers, batches queue for a worker (the
 *   loop keeps serving everyone else meanwhile).
 *
 * Try it
 *   echo-server --model reactor_pool --port 7007 --msg-size 1 --sleep-us 500000 --threads 4
 *   nc 127.0.0.1 7007     # type "abc": it comes back 1.5 s later, a byte every half second;
 *   nc 127.0.0.1 7007     # meanwhile a second nc is served by the same loop and other workers
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "list.h"
#include "nbecho.h"
#include "server.h"

#define MAX_EVENTS 256

struct conn {
    struct nb_conn nb;    /* the socket and its echo state (nbecho.h): the loop's only */
    struct list link;     /* the loop's connections */
    struct list job;      /* the pool's queue, or its finished list (under pool.lock) */
    char *batch;          /* received bytes whose messages' cost is being spent */
    size_t batch_len;
    uint64_t batch_msgs;  /* how many messages they complete */
    bool in_pool;         /* the loop's flag: a batch is out, do not read */
};
NB_EPOLL_CONN_LAYOUT(struct conn);

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;  /* a batch is queued, or the pool is closed */
    struct list queue;    /* batches waiting for a worker */
    struct list done;     /* batches paid for, waiting for the loop */
    bool closed;
    unsigned queued;      /* batches in `queue` */
    unsigned idle;        /* workers not paying for a batch (waiting, or just started) */
    int done_fd;          /* eventfd: written when `done` becomes non-empty */
    const struct echo_work *cost;
    /* The loop's: workers are started on demand, up to max. */
    struct server *srv;
    pthread_attr_t attr;
    pthread_t *tids;
    unsigned started, max;
};

struct loop {
    struct server *srv;
    int ep;
    struct nb_listener listener; /* in the epoll set, or paused after EMFILE */
    struct list conns;
    struct server_thread_totals totals;
    struct nb_loop nb;         /* the receive buffer, shared by all connections */
    struct pool *pool;         /* NULL without a per-message cost */
};

/* epoll_event.data.ptr values that are not connections (and &loop->listener). */
static char stop_tag, done_tag;

static void pool_close(void *p)
{
    struct pool *pool = p;
    pthread_mutex_lock(&pool->lock);
    pool->closed = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
}

static void *worker_main(void *p)
{
    struct pool *pool = p;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (list_empty(&pool->queue) && !pool->closed)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->closed)
            break;
        struct conn *c = list_entry(list_pop_first(&pool->queue), struct conn, job);
        uint64_t msgs = c->batch_msgs;
        pool->queued--;
        pool->idle--;
        pthread_mutex_unlock(&pool->lock);
        echo_spend_messages(pool->cost, msgs);
        pthread_mutex_lock(&pool->lock);
        pool->idle++;
        /* One eventfd write per wake-up of the loop, not per batch: whoever finds the list
         * empty writes, and the loop takes everything that is there when it looks. */
        bool first = list_empty(&pool->done);
        list_insert_tail(&pool->done, &c->job);
        if (first) {
            pthread_mutex_unlock(&pool->lock);
            uint64_t one = 1;
            ssize_t n = write(pool->done_fd, &one, sizeof one);
            (void)n; /* cannot fail: the counter is read long before it nears its limit */
            pthread_mutex_lock(&pool->lock);
        }
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

/* Starts one more worker. Without one, a queued batch would wait forever: a pool that cannot
 * start its first worker is a failure; one that has some goes on with those. */
static void pool_grow(struct pool *pool)
{
    int e = pthread_create(&pool->tids[pool->started], &pool->attr, worker_main, pool);
    if (e == 0) {
        pool->started++;
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->idle--;
    pthread_mutex_unlock(&pool->lock);
    if (pool->started == 0)
        server_fail(pool->srv, "pthread_create", -e);
}

static void batch_release(struct loop *r, struct conn *c)
{
    nb_buffer_put(&r->nb, c->batch);
    c->batch = NULL;
}

static void conn_close(struct loop *r, struct conn *c)
{
    list_remove(&c->link);
    nb_close(&r->nb, &c->nb, &r->totals);
    batch_release(r, c);
    free(c);
}

/* nb_readable found complete messages: their bytes go to the pool, and reading stops. */
static enum nb_next hand_off(struct loop *r, struct conn *c)
{
    c->batch = nb_buffer_get(&r->nb);
    if (!c->batch)
        return NB_DONE;
    memcpy(c->batch, r->nb.buf, r->nb.deferred_len);
    c->batch_len = r->nb.deferred_len;
    c->batch_msgs = r->nb.deferred_msgs;
    c->in_pool = true;
    struct pool *pool = r->pool;
    pthread_mutex_lock(&pool->lock);
    list_insert_tail(&pool->queue, &c->job);
    /* More batches waiting than workers free to take them: one more worker, up to max. */
    bool grow = ++pool->queued > pool->idle && pool->started < pool->max;
    if (grow)
        pool->idle++; /* counted before it runs, so the next hand-off does not start another */
    pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    if (grow)
        pool_grow(pool);
    return NB_WANT_INPUT;
}

/* What a connection does after an echo step; NB_WANT_OUTPUT needs nothing (EPOLLOUT is
 * registered for good, and its edge will come). */
static void after_step(struct loop *r, struct conn *c, enum nb_next next)
{
    if (next == NB_WANT_WORK)
        next = hand_off(r, c);
    if (next == NB_DONE)
        conn_close(r, c);
}

static void on_event(struct loop *r, struct conn *c, uint32_t events)
{
    if (c->in_pool)
        return; /* not a byte more until its batch is back; then it reads to EAGAIN */
    if ((events & EPOLLOUT) && c->nb.pending)
        after_step(r, c, nb_writable(&r->nb, &c->nb));
    else
        after_step(r, c, nb_readable(&r->nb, &c->nb, events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)
                                                         ? NB_READ_ALL : NB_READ_UNTIL_SHORT));
}

/* The eventfd says batches are back: send each, then read on - everything, since the edges
 * that came while the batch was out were ignored. */
static void on_done(struct loop *r)
{
    struct pool *pool = r->pool;
    uint64_t count;
    ssize_t n = read(pool->done_fd, &count, sizeof count);
    (void)n; /* EAGAIN: a write raced with an earlier look at the list; nothing is lost */
    struct list back;
    list_init(&back);
    pthread_mutex_lock(&pool->lock);
    struct list *node;
    while ((node = list_pop_first(&pool->done)))
        list_insert_tail(&back, node);
    pthread_mutex_unlock(&pool->lock);
    while ((node = list_pop_first(&back))) {
        struct conn *c = list_entry(node, struct conn, job);
        c->in_pool = false;
        enum nb_next next = nb_send(&r->nb, &c->nb, c->batch, c->batch_len);
        batch_release(r, c);
        if (next == NB_WANT_INPUT)
            next = nb_readable(&r->nb, &c->nb, NB_READ_ALL);
        after_step(r, c, next);
    }
}

static int adopt(void *arg, int fd)
{
    struct loop *r = arg;
    return nb_epoll_adopt(r->ep, &r->conns, fd, sizeof(struct conn));
}

static int loop_run(struct loop *r)
{
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        const char *call;
        int n = nb_epoll_wait(&r->listener, events, MAX_EVENTS, -1, &call);
        if (n < 0)
            return server_fail(r->srv, call, n);
        /* Batches that are back are taken after the other events of this wait, never among
         * them: on_done() may close a connection (its client half-closed or reset while the
         * batch was out), and an event of that connection later in this array would then be
         * handled on freed memory. The other order is safe: on_event() ignores a connection
         * whose batch is out, so it never closes one that on_done() is about to take. */
        bool done = false;
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &stop_tag)
                return 0;
            if (p == &done_tag)
                done = true;
            else if (p == &r->listener)
                nb_listener_accept(&r->listener, &r->totals, adopt, r);
            else
                on_event(r, p, events[i].events);
        }
        if (done)
            on_done(r);
    }
}

static int reactor_pool_run(struct server *srv)
{
    const struct echo_work *w = &srv->cfg->work;
    bool costly = w->msg_size && (w->work_us || w->sleep_us);
    unsigned nworkers = costly ? server_pool_size(srv) : 0;
    struct pool pool = {.cost = w, .done_fd = -1, .srv = srv, .max = nworkers};
    struct loop *r = calloc(1, sizeof *r);
    pool.tids = calloc(nworkers ? nworkers : 1, sizeof *pool.tids);
    if (!r || !pool.tids) {
        free(r);
        free(pool.tids);
        return server_fail(srv, "calloc", -ENOMEM);
    }
    *r = (struct loop){.srv = srv, .ep = -1, .nb = {.work = w, .defer_costs = costly}};
    list_init(&r->conns);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    list_init(&pool.queue);
    list_init(&pool.done);

    int err = server_thread_attr(srv, &pool.attr);
    bool have_attr = err == 0;
    const char *call = "pthread_attr_setstacksize";
    if (err == 0)
        err = net_set_nonblock(srv->listen_fd), call = "fcntl";
    if (err == 0 && (r->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        err = -errno, call = "epoll_create1";
    r->listener = (struct nb_listener){.ep = r->ep, .fd = srv->listen_fd}; /* watched at once */
    if (err == 0 && (err = nb_epoll_watch(r->ep, srv->stop_fd, &stop_tag)) < 0)
        call = "epoll_ctl";
    if (err == 0 && costly) {
        r->pool = &pool;
        if ((pool.done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
            err = -errno, call = "eventfd";
        else if ((err = nb_epoll_watch(r->ep, pool.done_fd, &done_tag)) < 0)
            call = "epoll_ctl";
    }
    if (err < 0)
        server_fail(srv, call, err);

    if (err == 0) {
        server_on_stop(srv, pool_close, &pool);
        err = loop_run(r);
    }
    pool_close(&pool);
    for (unsigned i = 0; i < pool.started; i++)
        pthread_join(pool.tids[i], NULL);
    server_on_stop(srv, NULL, NULL);

    while (!list_empty(&r->conns))
        conn_close(r, list_entry(list_first(&r->conns), struct conn, link));
    nb_loop_destroy(&r->nb);
    r->totals.served = r->totals.accepted;
    server_add_thread_totals(srv, 0, &r->totals);
    snprintf(srv->stats->note, sizeof srv->stats->note,
             costly ? "workers=%u of %u" : "workers=%u of %u (no per-message cost)",
             pool.started, nworkers);
    if (r->ep >= 0)
        close(r->ep);
    if (pool.done_fd >= 0)
        close(pool.done_fd);
    if (have_attr)
        pthread_attr_destroy(&pool.attr);
    pthread_cond_destroy(&pool.wake);
    pthread_mutex_destroy(&pool.lock);
    free(pool.tids);
    free(r);
    return err;
}

const struct server_model model_reactor_pool = {
    .name = "reactor_pool",
    .summary = "one epoll loop does the I/O, --threads workers pay per-message costs "
               "(half-sync/half-async)",
    .kind = MODEL_HYBRID,
    .threads_meaning = "workers",
    .run = reactor_pool_run,
};
