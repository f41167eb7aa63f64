/*
 * libuv.c - the echo server on libuv, the event-loop library under Node.js.
 *
 * How it works
 *   The same design as epoll.c - one thread, non-blocking sockets, a loop that sleeps in epoll
 *   until something is ready - but written against a general-purpose library instead of the
 *   system calls: libuv owns the loop and the epoll set, and calls back into this file.
 *   - The listener is watched with a uv_poll_t; when it is readable, on_listener() accepts up to
 *     ACCEPT_BATCH waiting clients with the harness's server_accept_nonblocking() and wraps each
 *     one in a uv_tcp_t handle of its own (uv_tcp_open), then starts reading (uv_read_start).
 *     (libuv's own uv_listen() would accept for us, but with its own policy when descriptors
 *     run out - it accepts and closes waiting clients, uncounted - and it calls back again and
 *     again once the listener is shut down at stop. Accepting here gives libuv the policy every
 *     other event loop has: out of descriptors or memory, stop watching the listener for 50 ms,
 *     keep serving, count the pause; the backlog holds the clients meanwhile.)
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
 *   queues). One loop is one core; per-message work or a blocking wait stalls every client.
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

#define ACCEPT_BATCH 16          /* connections taken per wake-up before serving others */

struct uv_server {
    struct server *srv;
    uv_loop_t loop;
    uv_poll_t listener;      /* the harness's listening socket */
    uv_timer_t accept_pause; /* out of descriptors: when to watch the listener again */
    uint64_t accept_resume_ns;
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
    if (h->type != UV_TCP)
        return; /* the listener, timer and stop handles live in struct uv_server */
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

/* Wraps an accepted socket in a handle and starts reading; a connection that cannot get one is
 * closed at once and counted as shed. */
static void adopt(struct uv_server *s, int fd)
{
    struct uv_conn *c = calloc(1, sizeof *c);
    if (!c || uv_tcp_init(&s->loop, &c->tcp) < 0) {
        free(c);
        close(fd);
        s->totals.shed++;
        return;
    }
    c->s = s;
    if (uv_tcp_open(&c->tcp, fd) < 0) {
        close(fd);                  /* not yet the handle's to close */
        s->totals.shed++;
        uv_close((uv_handle_t *)&c->tcp, on_closed); /* frees c */
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, alloc_buffer, on_read);
}

static void on_listener(uv_poll_t *p, int status, int events);

static void on_pause_over(uv_timer_t *t)
{
    struct uv_server *s = (struct uv_server *)((char *)t - offsetof(struct uv_server,
                                                                    accept_pause));
    if (!uv_is_closing((uv_handle_t *)&s->listener))
        uv_poll_start(&s->listener, UV_READABLE, on_listener);
}

static void on_listener(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    struct uv_server *s = (struct uv_server *)((char *)p - offsetof(struct uv_server, listener));
    if (server_stopping(s->srv)) {
        uv_poll_stop(p); /* the listener is shut down: the stop handle closes everything */
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = server_accept_nonblocking(s->srv->listen_fd, &s->totals, &s->accept_resume_ns);
        if (fd < 0) {
            if (s->accept_resume_ns) {
                /* Out of descriptors or memory: stop watching for a while (a level-triggered
                 * watch of a listener we cannot accept from would spin), keep serving. */
                uv_poll_stop(p);
                uv_timer_start(&s->accept_pause, on_pause_over, SERVER_ACCEPT_PAUSE_MS,
                               0);
                s->accept_resume_ns = 0;
            }
            return;
        }
        adopt(s, fd);
    }
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
    const char *call = "fcntl";
    if ((err = net_set_nonblock(srv->listen_fd)) < 0
        || (call = "uv_poll_init", err = uv_poll_init(&s->loop, &s->listener, srv->listen_fd)) < 0
        || (call = "uv_timer_init", err = uv_timer_init(&s->loop, &s->accept_pause)) < 0
        || (call = "uv_poll_start", err = uv_poll_start(&s->listener, UV_READABLE,
                                                       on_listener)) < 0
        || (call = "uv_poll_init", err = uv_poll_init(&s->loop, &s->stop, srv->stop_fd)) < 0
        || (call = "uv_poll_start", err = uv_poll_start(&s->stop, UV_READABLE, on_stop)) < 0) {
        err = server_fail(srv, call, err);
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
    .summary = "the same event loop written on libuv",
    .kind = MODEL_EVENT_LOOP,
    .run = libuv_run,
};
