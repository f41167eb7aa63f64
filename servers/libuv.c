/*
 * libuv.c - the echo server on libuv, the event-loop library under Node.js.
 *
 * How it works
 *   The same design as epoll.c - one thread, non-blocking sockets, a loop that sleeps in epoll
 *   until something is ready - but written against a general-purpose library instead of the
 *   system calls: libuv owns the loop and the epoll set, and calls back into this file.
 *   - A uv_tcp_t handle wraps the listening socket; on_connection() accepts each client into a
 *     handle of its own and starts reading with uv_read_start().
 *   - libuv asks alloc_buffer() for a buffer before every read; every connection gets the same
 *     16 KiB loop buffer, since on_read() is called at once with the data and finishes with it.
 *   - on_read() tries to send the bytes straight back (uv_try_write(), one send() call). Only
 *     what the socket does not take is copied into a uv_write() request, and while such output
 *     is queued the connection stops reading (uv_read_stop()) until on_write() sees the queue
 *     empty: the same back-pressure as the other event loops. So the common case allocates
 *     nothing per message.
 *   - A uv_poll_t on the harness's stop descriptor closes every handle at stop; uv_run() returns
 *     when none is left.
 *
 * What it costs, what limits it
 *   The comparison with epoll.c is the point: what a portable, callback-based library adds per
 *   message over raw epoll (see the bench's CPU-per-request plot). libuv's loop is level-
 *   triggered and keeps its own bookkeeping per turn (timers, idle and check handles, pending
 *   queues). Out of descriptors, libuv applies its own policy: it accepts waiting connections
 *   and closes them at once (using a descriptor it keeps in reserve for that), so clients are
 *   turned away rather than held in the backlog - the other models pause accepting instead.
 *   One loop is one core; per-message work or a blocking wait stalls every client.
 *
 * Try it
 *   echo-server --model libuv --port 7007
 *   nc 127.0.0.1 7007
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "server.h"

struct uv_server {
    struct server *srv;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_tcp_t reject;         /* takes a connection off the listener when memory runs out */
    bool rejecting;
    uv_poll_t stop;
    struct server_thread_totals totals;
    char buf[ECHO_BUF_SIZE]; /* every read goes here, and is echoed before the next */
};

struct uv_conn {
    uv_tcp_t tcp;              /* first: a handle pointer is a connection pointer */
    struct uv_server *s;
    struct echo_stream stream;
    uint64_t echoed;
    size_t queued;             /* bytes in uv_write() requests not yet done */
    bool eof;
};

/* A copy of output the socket did not take at once. */
struct write_req {
    uv_write_t req;
    struct uv_conn *c;
    size_t len;
    char data[];
};

static void on_closed(uv_handle_t *h)
{
    if (h->type != UV_TCP || h->data == NULL)
        return; /* the listener, the reject and stop handles live in struct uv_server */
    struct uv_conn *c = (struct uv_conn *)h;
    c->s->totals.echoed += c->echoed;
    free(c);
}

static void close_conn(struct uv_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void alloc_buffer(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct uv_conn *c = (struct uv_conn *)h;
    *buf = uv_buf_init(c->s->buf, sizeof c->s->buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct uv_conn *c = w->c;
    c->queued -= w->len;
    if (status == 0)
        c->echoed += w->len;
    free(w);
    if (status < 0) {
        close_conn(c);
    } else if (c->queued == 0) {
        if (c->eof)
            close_conn(c); /* the client half-closed and now has everything back */
        else
            uv_read_start((uv_stream_t *)&c->tcp, alloc_buffer, on_read); /* caught up */
    }
}

/* Queues what the socket did not take; returns 0 or a libuv error. */
static int queue_rest(struct uv_conn *c, const char *data, size_t len)
{
    struct write_req *w = malloc(sizeof *w + len);
    if (!w)
        return UV_ENOMEM;
    w->c = c;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int err = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (err < 0) {
        free(w);
        return err;
    }
    c->queued += len;
    return 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct uv_conn *c = (struct uv_conn *)stream;
    if (nread == UV_EOF) {
        c->eof = true;
        if (c->queued == 0)
            close_conn(c);
        return;
    }
    if (nread < 0) {
        close_conn(c); /* reset or other error */
        return;
    }
    if (nread == 0)
        return; /* EAGAIN, in libuv's words */
    echo_account(&c->s->srv->cfg->work, &c->stream, (size_t)nread);
    /* Nothing queued: try to send at once. Otherwise queue behind, to keep the order. */
    int sent = 0;
    if (c->queued == 0) {
        uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
        sent = uv_try_write(stream, &b, 1);
        if (sent == UV_EAGAIN)
            sent = 0;
        if (sent < 0) {
            close_conn(c);
            return;
        }
        c->echoed += (uint64_t)sent;
    }
    if (sent < nread) {
        if (queue_rest(c, buf->base + sent, (size_t)(nread - sent)) < 0) {
            close_conn(c);
            return;
        }
        uv_read_stop(stream); /* back-pressure: read again when the queue is empty */
    }
}

static void on_rejected(uv_handle_t *h)
{
    struct uv_server *s = (struct uv_server *)((char *)h - offsetof(struct uv_server, reject));
    s->rejecting = false;
}

/* Out of memory for a new connection: it must still be taken off the listener - libuv stops
 * watching the listener until something accepts - so accept it and close it at once. */
static void reject(struct uv_server *s, uv_stream_t *listener)
{
    s->totals.shed++;
    if (s->rejecting || uv_tcp_init(&s->loop, &s->reject) < 0)
        return; /* (a second failure before the first close completes: rare, and it only
                   delays the next accept until the loop turns) */
    s->rejecting = true;
    uv_accept(listener, (uv_stream_t *)&s->reject);
    uv_close((uv_handle_t *)&s->reject, on_rejected);
}

static void on_connection(uv_stream_t *listener, int status)
{
    /* The listener is a member of struct uv_server (its data pointer stays NULL, which is how
     * on_closed() tells it from a connection). */
    struct uv_server *s = (struct uv_server *)((char *)listener - offsetof(struct uv_server,
                                                                           listener));
    if (status < 0)
        return; /* the listener was shut down at stop, or a transient accept error */
    struct uv_conn *c = calloc(1, sizeof *c);
    if (!c || uv_tcp_init(&s->loop, &c->tcp) < 0) {
        free(c);
        reject(s, listener);
        return;
    }
    c->s = s;
    c->tcp.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        close_conn(c);
        return;
    }
    s->totals.accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_buffer, on_read);
}

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, on_closed);
}

static void on_stop(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    uv_walk(p->loop, close_handle, NULL); /* uv_run() returns once every handle is closed */
}

static int libuv_run(struct server *srv)
{
    struct uv_server *s = calloc(1, sizeof *s);
    if (!s)
        return server_fail(srv, "calloc", -ENOMEM);
    s->srv = srv;
    int err = uv_loop_init(&s->loop);
    if (err < 0) {
        free(s);
        return server_fail(srv, "uv_loop_init", err);
    }
    /* libuv closes the descriptor it is given: give it a duplicate of the harness's listener
     * (the same socket, so the harness's shutdown at stop still reaches it). */
    int fd = dup(srv->listen_fd);
    bool opened = false;
    if (fd < 0 || (err = uv_tcp_init(&s->loop, &s->listener)) < 0
        || (err = uv_tcp_open(&s->listener, fd)) < 0 || !(opened = true)
        || (err = uv_listen((uv_stream_t *)&s->listener, srv->cfg->backlog,
                            on_connection)) < 0
        || (err = uv_poll_init(&s->loop, &s->stop, srv->stop_fd)) < 0
        || (err = uv_poll_start(&s->stop, UV_READABLE, on_stop)) < 0) {
        err = server_fail(srv, "libuv set-up", fd < 0 ? -errno : err);
        if (fd >= 0 && !opened)
            close(fd); /* not yet the listener handle's to close */
        uv_walk(&s->loop, close_handle, NULL); /* close what was set up; uv_run() finishes */
    }
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    server_add_thread_totals(srv, 0, &s->totals);
    free(s);
    return err;
}

const struct server_model model_libuv = {
    .name = "libuv",
    .summary = "the same event loop written on libuv (uv_read_start, uv_try_write)",
    .kind = MODEL_EVENT_LOOP,
    .run = libuv_run,
};
