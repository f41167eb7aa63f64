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

#include "clock.h"
#include "server.h"

#define MAX_EVENTS 256
#define ACCEPT_BATCH 16          /* connections taken per wake-up before serving others */
#define ACCEPT_PAUSE_NS (50 * NS_PER_MS)
#define SPARE_BUFFERS 64         /* parked-output buffers kept for reuse per reactor */

struct conn {
    int fd;
    uint32_t pending_off, pending_len; /* unsent output, in `pending` */
    char *pending;                     /* NULL unless a send() was short */
    struct echo_stream stream;
    uint64_t echoed;
    struct conn *prev, *next;          /* the reactor's list, for closing at stop */
};

struct reactor {
    struct server *srv;
    unsigned index;
    int ep;
    int listen_fd;             /* the harness's listener for reactor 0, its own for the others */
    bool listening;            /* the listener is in this epoll set */
    uint64_t accept_resume_ns; /* when paused after EMFILE */
    struct conn conns;         /* list head */
    struct server_thread_totals totals;
    char *spare[SPARE_BUFFERS];
    unsigned nspare;
    char buf[ECHO_BUF_SIZE];   /* shared by all connections of this reactor */
    pthread_t tid;
    int error;
};

/* epoll_event.data.ptr values that are not connections. */
static char listener_tag, stop_tag;

static char *get_buffer(struct reactor *r)
{
    return r->nspare ? r->spare[--r->nspare] : malloc(ECHO_BUF_SIZE);
}

static void put_buffer(struct reactor *r, char *b)
{
    if (r->nspare < SPARE_BUFFERS)
        r->spare[r->nspare++] = b;
    else
        free(b);
}

static void conn_close(struct reactor *r, struct conn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    close(c->fd); /* also leaves the epoll set */
    if (c->pending)
        put_buffer(r, c->pending);
    r->totals.echoed += c->echoed;
    free(c);
}

/* Sends parked output. Returns 1 when all is sent, 0 when the socket is full, -1 on error. */
static int flush_pending(struct reactor *r, struct conn *c)
{
    while (c->pending_len > 0) {
        ssize_t n = send(c->fd, c->pending + c->pending_off, c->pending_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        c->pending_off += (uint32_t)n;
        c->pending_len -= (uint32_t)n;
        c->echoed += (uint64_t)n;
    }
    put_buffer(r, c->pending);
    c->pending = NULL;
    return 1;
}

/* Echoes n bytes from the reactor buffer; parks what the socket does not take. */
static int echo_chunk(struct reactor *r, struct conn *c, size_t n)
{
    ssize_t sent = send(c->fd, r->buf, n, MSG_NOSIGNAL);
    if (sent < 0) {
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        sent = 0;
    }
    c->echoed += (uint64_t)sent;
    if ((size_t)sent == n)
        return 1;
    c->pending = get_buffer(r);
    if (!c->pending)
        return -1;
    c->pending_off = 0;
    c->pending_len = (uint32_t)(n - (size_t)sent);
    memcpy(c->pending, r->buf + sent, c->pending_len);
    return 0; /* wait for the EPOLLOUT edge */
}

/* Reads and echoes until the socket is drained, the output backs up, or the client is done.
 * A read shorter than the buffer ends the loop early - the socket is drained, and bytes that
 * arrive later raise a new edge - unless `to_the_end`: when the event already reported the
 * client's end of stream (which raises no further edge), or when resuming after output backed
 * up (the input edges of the meantime are gone), read until EAGAIN or end of stream. */
static void on_readable(struct reactor *r, struct conn *c, bool to_the_end)
{
    if (c->pending)
        return; /* back-pressure: not a byte more until the client takes what it has */
    for (;;) {
        ssize_t n = recv(c->fd, r->buf, sizeof r->buf, 0);
        if (n > 0) {
            echo_account(&r->srv->cfg->work, &c->stream, (size_t)n);
            int done = echo_chunk(r, c, (size_t)n);
            if (done < 0)
                break;
            if (done == 0 || ((size_t)n < sizeof r->buf && !to_the_end))
                return; /* output parked, or a short read: the socket is drained */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        break; /* 0: the client half-closed and has everything back; or an error */
    }
    conn_close(r, c);
}

/* One event for a connection. epoll reports the socket's whole state, so input events usually
 * carry EPOLLOUT as well: output is handled first, then input unless output is still backed up
 * (in which case the input edge is remembered by the data itself: reading resumes after the
 * drain, and reads until EAGAIN). */
static void on_event(struct reactor *r, struct conn *c, uint32_t events)
{
    bool to_the_end = events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    if ((events & EPOLLOUT) && c->pending) {
        int done = flush_pending(r, c);
        if (done < 0) {
            conn_close(r, c);
            return;
        }
        if (done == 0)
            return;
        to_the_end = true;
    }
    on_readable(r, c, to_the_end);
}

static int listen_in(struct reactor *r, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag};
    int op = on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL;
    if (epoll_ctl(r->ep, op, r->listen_fd, &ev) != 0)
        return -errno;
    r->listening = on;
    return 0;
}

static void accept_batch(struct reactor *r)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = net_accept(r->listen_fd, SOCK_NONBLOCK);
        if (fd < 0) {
            if (net_accept_error_is_exhaustion(-fd)) {
                /* Keep serving what we have; try again after a pause. */
                r->totals.pauses++;
                listen_in(r, false);
                r->accept_resume_ns = clock_now_ns() + ACCEPT_PAUSE_NS;
            }
            return; /* EAGAIN: another reactor took it, or nothing left */
        }
        r->totals.accepted++;
        struct conn *c = calloc(1, sizeof *c);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = c};
        if (!c || epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
            r->totals.shed++;
            continue;
        }
        c->fd = fd;
        c->next = r->conns.next;
        c->prev = &r->conns;
        r->conns.next->prev = c;
        r->conns.next = c;
    }
}

static int reactor_loop(struct reactor *r)
{
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int timeout = -1;
        if (!r->listening) {
            uint64_t now = clock_now_ns();
            if (now >= r->accept_resume_ns) {
                int err = listen_in(r, true);
                if (err < 0)
                    return server_fail(r->srv, "epoll_ctl", err);
                continue;
            }
            timeout = (int)((r->accept_resume_ns - now) / NS_PER_MS) + 1;
        }
        int n = epoll_wait(r->ep, events, MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return server_fail(r->srv, "epoll_wait", -errno);
        }
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &stop_tag)
                return 0;
            if (p == &listener_tag) {
                accept_batch(r);
                continue;
            }
            on_event(r, p, events[i].events);
        }
    }
}

static void reactor_destroy(struct reactor *r)
{
    while (r->conns.next != &r->conns)
        conn_close(r, r->conns.next);
    while (r->nspare)
        free(r->spare[--r->nspare]);
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
    r->conns.next = r->conns.prev = &r->conns;
    r->ep = -1;
    r->listen_fd = index == 0 ? srv->listen_fd : server_listen_again(srv);
    if (r->listen_fd < 0)
        return server_fail(srv, "listen (SO_REUSEPORT)", r->listen_fd);
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    if (r->ep < 0)
        return server_fail(srv, "epoll_create1", -errno);
    struct epoll_event stop = {.events = EPOLLIN, .data.ptr = &stop_tag};
    if (epoll_ctl(r->ep, EPOLL_CTL_ADD, srv->stop_fd, &stop) != 0)
        return server_fail(srv, "epoll_ctl", -errno);
    int err = listen_in(r, true);
    return err < 0 ? server_fail(srv, "epoll_ctl", err) : 0;
}

static void *reactor_thread(void *p)
{
    struct reactor *r = p;
    r->error = reactor_loop(r);
    return NULL;
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
    unsigned started = 1;
    pthread_attr_t attr;
    if (err == 0 && (err = server_thread_attr(srv, &attr)) == 0) {
        for (; started < n; started++) {
            int e = pthread_create(&rs[started].tid, &attr, reactor_thread, &rs[started]);
            if (e != 0) {
                err = server_fail(srv, "pthread_create", -e);
                break;
            }
        }
        pthread_attr_destroy(&attr);
    }
    if (err == 0)
        err = reactor_loop(&rs[0]);
    for (unsigned i = 1; i < started; i++) {
        pthread_join(rs[i].tid, NULL);
        if (err == 0)
            err = rs[i].error;
    }
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
