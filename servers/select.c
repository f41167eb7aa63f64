/*
 * select.c - the oldest readiness loop: one thread, select() over bitmaps of descriptors.
 *
 * How it works
 *   Every socket is non-blocking. Each turn of the loop fills two fd_sets - the descriptors to
 *   read from (the listener, the stop descriptor, every connection) and those to write to (the
 *   connections with output parked because their client fell behind) - and calls select(), which
 *   sleeps until one of them is ready and overwrites the sets with the ready ones. The loop then
 *   walks the descriptors and serves each ready one with calls that do not block (nbecho.c's
 *   nb_readable(): one recv() and the send() of what it got, per readiness - select reports level, not edges, so leftover input is reported again
 *   next turn). One thread serves every connection, as with epoll.
 *
 * What limits it
 *   - Work per turn grows with the number of descriptors, not with the number of ready ones: the
 *     sets are rebuilt and copied into the kernel every time, the kernel scans every descriptor
 *     up to the highest, and the loop scans them again to find the ready ones. With thousands
 *     of mostly idle connections, that is thousands of checks to find a handful of events.
 *   - An fd_set is a fixed bitmap of FD_SETSIZE (1024) bits, so a descriptor of 1024 or more
 *     cannot be watched at all (FD_SET would write past the bitmap). Past that, this server
 *     refuses new connections cleanly: it accepts them and closes them at once (the client sees
 *     the connection close; the summary counts them as shed). The descriptors below 1024 that
 *     the process itself uses leave room for about 1,020 clients; --list promises 1,000.
 *   - Like every event loop, per-message work or a blocking wait stalls every client.
 *   Out of descriptors (EMFILE): the listener is left out of the sets for 50 ms.
 *
 * Try it
 *   echo-server --model select --port 7007
 *   nc 127.0.0.1 7007
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbecho.h"
#include "server.h"

#define MAX_CONNECTIONS 1000         /* what --list promises; the hard limit is FD_SETSIZE */

struct select_loop {
    struct server *srv;
    struct nb_conn *conns[FD_SETSIZE]; /* by descriptor: select is bounded by FD_SETSIZE anyway */
    int max_fd;                        /* the highest descriptor watched */
    uint64_t accept_resume_ns;         /* 0, or when to watch the listener again after EMFILE */
    struct server_thread_totals totals;
    struct nb_loop nb;
};

static void conn_close(struct select_loop *l, int fd)
{
    struct nb_conn *c = l->conns[fd];
    nb_close(&l->nb, c, &l->totals);
    free(c);
    l->conns[fd] = NULL;
    while (l->max_fd > 0 && !l->conns[l->max_fd] && l->max_fd != l->srv->listen_fd
           && l->max_fd != l->srv->stop_fd)
        l->max_fd--;
}

/* A new connection (server_accept_batch's adopt step). */
static int conn_adopt(void *arg, int fd)
{
    struct select_loop *l = arg;
    /* Beyond FD_SETSIZE, FD_SET would write past the bitmap: refuse cleanly (the caller
     * closes it and counts it as shed). */
    struct nb_conn *c = fd < FD_SETSIZE ? calloc(1, sizeof *c) : NULL;
    if (!c)
        return -EMFILE;
    c->fd = fd;
    l->conns[fd] = c;
    if (fd > l->max_fd)
        l->max_fd = fd;
    return 0;
}

static int select_run(struct server *srv)
{
    struct select_loop *l = calloc(1, sizeof *l);
    if (!l)
        return server_fail(srv, "calloc", -ENOMEM);
    l->srv = srv;
    l->nb.work = &srv->cfg->work;
    if (srv->listen_fd >= FD_SETSIZE || srv->stop_fd >= FD_SETSIZE) {
        free(l);
        return server_fail(srv, "select (the listener's descriptor is beyond FD_SETSIZE)",
                           -EMFILE);
    }
    int err = net_set_nonblock(srv->listen_fd);
    if (err < 0) {
        free(l);
        return server_fail(srv, "fcntl", err);
    }
    l->max_fd = srv->listen_fd > srv->stop_fd ? srv->listen_fd : srv->stop_fd;

    while (err == 0) {
        fd_set rd, wr;
        FD_ZERO(&rd);
        FD_ZERO(&wr);
        FD_SET(srv->stop_fd, &rd);
        struct timeval pause = {0}, *timeout = NULL;
        int pause_ms = server_accept_pause_ms(&l->accept_resume_ns);
        if (pause_ms > 0) {
            pause.tv_usec = (suseconds_t)pause_ms * 1000;
            timeout = &pause;
        } else {
            /* Not paused, or the pause is over: watch the listener. */
            FD_SET(srv->listen_fd, &rd);
        }
        for (int fd = 0; fd <= l->max_fd; fd++)
            if (l->conns[fd])
                FD_SET(fd, l->conns[fd]->pending ? &wr : &rd);

        int n = select(l->max_fd + 1, &rd, &wr, NULL, timeout);
        if (n < 0) {
            if (errno != EINTR)
                err = server_fail(srv, "select", -errno);
            continue;
        }
        if (FD_ISSET(srv->stop_fd, &rd))
            break;
        int last = l->max_fd; /* connections accepted below are served next turn */
        if (FD_ISSET(srv->listen_fd, &rd))
            server_accept_batch(srv->listen_fd, &l->totals, &l->accept_resume_ns, conn_adopt, l);
        for (int fd = 0; fd <= last && n > 0; fd++) {
            struct nb_conn *c = l->conns[fd];
            if (!c)
                continue;
            enum nb_next next;
            if (FD_ISSET(fd, &wr))
                next = nb_writable(&l->nb, c);
            else if (FD_ISSET(fd, &rd))
                next = nb_readable(&l->nb, c, NB_READ_ONCE);
            else
                continue;
            if (next == NB_DONE)
                conn_close(l, fd);
        }
    }

    for (int fd = 0; fd < FD_SETSIZE; fd++)
        if (l->conns[fd])
            conn_close(l, fd);
    nb_loop_destroy(&l->nb);
    server_add_thread_totals(srv, 0, &l->totals);
    free(l);
    return err;
}

const struct server_model model_select = {
    .name = "select",
    .summary = "select() readiness loop, one thread; at most 1,000 connections (FD_SETSIZE)",
    .kind = MODEL_EVENT_LOOP,
    .max_connections = MAX_CONNECTIONS,
    .run = select_run,
};
