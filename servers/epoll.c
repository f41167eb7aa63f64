/*
 * epoll.c - an event loop (reactor) on epoll: one thread serves every connection.
 *
 * How it works
 *   All sockets are non-blocking. One thread sleeps in epoll_wait() until some of them are ready,
 *   then does exactly the work that will not block: accept the connections that are waiting,
 *   receive what has arrived, send it back. No thread per connection, no context switch per
 *   message: thousands of connections cost one thread and a small structure each.
 *
 *   Edge-triggered, and why. Each connection is registered once, for input and output, with
 *   EPOLLET: epoll reports a change (new data, buffer space freed) instead of a state. So the loop
 *   never calls epoll_ctl() again for that connection - no syscall to switch output interest on
 *   and off around short writes, as level-triggered code must - and a slow client's pending
 *   output costs nothing until its socket can take more. The price is discipline: after an event
 *   the loop must consume everything, because the same readiness will not be reported twice.
 *   Here a receive that returns less than the buffer size means the socket is drained (any byte
 *   arriving later raises a new edge), so a small message costs one recv() and one send(),
 *   without the extra recv() that would end in EAGAIN.
 *
 *   Back-pressure. The loop never reads from a connection while it still holds bytes that the
 *   client has not taken: a short send() parks the rest (at most one 16 KiB read) in a buffer of
 *   that connection, and reading resumes when the EPOLLOUT edge says the socket drained. A client
 *   that does not read therefore stops being read from, and the server's memory stays bounded.
 *   Idle connections own no buffer at all: the receive buffer belongs to the reactor.
 *
 *   --threads N runs N reactors, each with its own epoll instance, connections and listening
 *   socket: all the listeners are bound to the same port with SO_REUSEPORT, and the kernel picks
 *   the listener of each new connection by a hash of its addresses. Balance versus tail latency:
 *   the hash spreads connections evenly on average (measured: 50/50 within a few percent, see
 *   docs/event-loops.md) whatever the reactors are doing - so a reactor stalled by slow work
 *   keeps receiving its share, and those clients wait. The alternative, one shared listener
 *   registered in every epoll set with EPOLLEXCLUSIVE, wakes one *idle* reactor per new
 *   connection, which favours latency but lets whichever reactor sleeps take whole bursts:
 *   measured 97/4, 34/67 and 84/17 for 100 connections over two reactors. Even load matters more
 *   to a benchmark of throughput per core, hence SO_REUSEPORT. The summary line reports how many
 *   connections each reactor accepted (per_thread=...).
 *
 *   Out of descriptors (EMFILE/ENFILE): the reactor takes the listener out of its epoll set for
 *   50 ms and keeps serving its connections; accepting resumes after the pause. No busy loop.
 *
 * What limits it
 *   One reactor uses one core. Any work done inside the loop delays every other connection of
 *   that reactor: per-message CPU work (--work-us) adds up, and a blocking wait (--sleep-us)
 *   stops the whole reactor. Scaling across cores needs several reactors (--threads).
 *
 * Try it
 *   echo-server --model epoll --port 7007 [--threads 2]
 *   nc 127.0.0.1 7007           # as many as you like: one thread serves them all
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbecho.h"
#include "server.h"

#define MAX_EVENTS 256

struct conn {
    struct nb_conn nb;           /* the socket and its echo state (nbecho.h) */
    struct list link;            /* the reactor's list, for closing at stop */
};
NB_EPOLL_CONN_LAYOUT(struct conn);

struct reactor {
    struct server *srv;
    unsigned index;
    int ep;
    int listen_fd;             /* the harness's listener for reactor 0, its own for the others */
    struct nb_listener listener; /* listen_fd in this epoll set, or paused after EMFILE */
    struct list conns;         /* of struct conn */
    struct server_thread_totals totals;
    struct nb_loop nb;         /* the receive buffer all connections of this reactor share */
};

/* epoll_event.data.ptr values that are not connections: &stop_tag, and &reactor->listener. */
static char stop_tag;

static void conn_close(struct reactor *r, struct conn *c)
{
    list_remove(&c->link);
    nb_close(&r->nb, &c->nb, &r->totals); /* closing the socket also leaves the epoll set */
    free(c);
}

/* One event for a connection. epoll reports the socket's whole state, so input events usually
 * carry EPOLLOUT as well: parked output is handled first (and reading resumes once it is all
 * sent). A read shorter than the buffer ends the reading early - the socket is drained, and
 * bytes that arrive later raise a new edge - except when the event already reported the client's
 * end of stream, which raises no further edge: then read until EAGAIN or the end. */
static void on_event(struct reactor *r, struct conn *c, uint32_t events)
{
    enum nb_next next;
    if ((events & EPOLLOUT) && c->nb.pending)
        next = nb_writable(&r->nb, &c->nb);
    else
        next = nb_readable(&r->nb, &c->nb, events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)
                                               ? NB_READ_ALL : NB_READ_UNTIL_SHORT);
    /* NB_WANT_OUTPUT needs nothing: EPOLLOUT is registered for good, and its edge will come. */
    if (next == NB_DONE)
        conn_close(r, c);
}

/* A new connection (server_accept_batch's adopt step): registered once, for good. */
static int conn_adopt(void *arg, int fd)
{
    struct reactor *r = arg;
    return nb_epoll_adopt(r->ep, &r->conns, fd, sizeof(struct conn));
}

static int reactor_loop(void *p)
{
    struct reactor *r = p;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        const char *call;
        int n = nb_epoll_wait(&r->listener, events, MAX_EVENTS, -1, &call);
        if (n < 0)
            return server_fail(r->srv, call, n);
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &stop_tag)
                return 0;
            if (p == &r->listener)
                nb_listener_accept(&r->listener, &r->totals, conn_adopt, r);
            else
                on_event(r, p, events[i].events);
        }
    }
}

static void reactor_destroy(struct reactor *r)
{
    struct list *node;
    while ((node = list_first(&r->conns)) != &r->conns)
        conn_close(r, list_entry(node, struct conn, link));
    nb_loop_destroy(&r->nb);
    if (r->ep >= 0)
        close(r->ep);
    if (r->index > 0 && r->listen_fd >= 0)
        close(r->listen_fd);
    r->totals.served = r->totals.accepted;
    server_add_thread_totals(r->srv, r->index, &r->totals);
}

static int reactor_init(struct reactor *r, struct server *srv, unsigned index)
{
    r->srv = srv;
    r->index = index;
    list_init(&r->conns);
    r->nb.work = &srv->cfg->work;
    r->ep = -1;
    r->listen_fd = index == 0 ? srv->listen_fd : server_listen_again(srv);
    if (r->listen_fd < 0)
        return server_fail(srv, "listen (SO_REUSEPORT)", r->listen_fd);
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    if (r->ep < 0)
        return server_fail(srv, "epoll_create1", -errno);
    r->listener = (struct nb_listener){.ep = r->ep, .fd = r->listen_fd};
    int err = nb_epoll_watch(r->ep, srv->stop_fd, &stop_tag);
    if (err == 0)
        err = nb_listener_watch(&r->listener, true);
    return err < 0 ? server_fail(srv, "epoll_ctl", err) : 0;
}

static int epoll_run(struct server *srv)
{
    unsigned n = srv->cfg->threads ? srv->cfg->threads : 1;
    int err = net_set_nonblock(srv->listen_fd);
    if (err < 0)
        return server_fail(srv, "fcntl", err);
    struct reactor *rs = calloc(n, sizeof *rs);
    if (!rs)
        return server_fail(srv, "calloc", -ENOMEM);
    atomic_store(&srv->stats->threads_reported, n);

    unsigned ready = 0;
    for (; ready < n && err == 0; ready++)
        err = reactor_init(&rs[ready], srv, ready);
    /* Reactor 0 runs on this thread; the others on threads of their own. */
    if (err == 0)
        err = server_run_threads(srv, n, rs, sizeof *rs, reactor_loop);
    for (unsigned i = 0; i < ready; i++)
        reactor_destroy(&rs[i]);
    free(rs);
    return err;
}

const struct server_model model_epoll = {
    .name = "epoll",
    .summary = "edge-triggered epoll reactor; --threads N: reactors on SO_REUSEPORT listeners",
    .kind = MODEL_EVENT_LOOP,
    .threads_meaning = "reactors",
    .listener_per_thread = true,
    .run = epoll_run,
};
