/*
 * poll.c - a readiness loop on poll(): select() without the descriptor limit.
 *
 * How it works
 *   The same loop as select.c - one thread, non-blocking sockets, sleep until something is ready,
 *   serve what is ready without blocking (nbecho.c's nb_readable(): one recv() and the send() of
 *   what it got, per readiness) - but the set of
 *   watched descriptors is an array of struct pollfd that the loop keeps from turn to turn: one
 *   entry per connection, asking for POLLIN, or POLLOUT while its output is parked because the
 *   client fell behind. Any descriptor number works, and the array grows as clients come: no
 *   FD_SETSIZE. A connection that ends is removed by moving the last entry into its place, so
 *   the array stays dense.
 *
 * What limits it
 *   poll() still hands the whole array to the kernel on every call, and the kernel still checks
 *   every entry, and the loop still scans every revents field: the cost of a turn grows with the
 *   number of connections, ready or not. With thousands of mostly idle clients, that scan
 *   dominates - the reason epoll keeps its interest list inside the kernel instead. Per-message
 *   work or a blocking wait stalls every client, as in every event loop.
 *   Out of descriptors (EMFILE): the listener's entry stops asking for events for 50 ms.
 *
 * Try it
 *   echo-server --model poll --port 7007
 *   nc 127.0.0.1 7007
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbecho.h"
#include "server.h"

#define STOP 0      /* pfds[0]: the stop descriptor */
#define LISTENER 1  /* pfds[1]: the listener; connections from 2 on */

struct poll_loop {
    struct server *srv;
    struct pollfd *pfds;    /* what poll() watches */
    struct nb_conn **conns; /* conns[i] is the connection of pfds[i] (NULL for 0 and 1) */
    nfds_t n, cap;
    uint64_t accept_resume_ns;
    struct server_thread_totals totals;
    struct nb_loop nb;
};

/* A new connection (server_accept_batch's adopt step). */
static int conn_adopt(void *arg, int fd)
{
    struct poll_loop *l = arg;
    if (l->n == l->cap) {
        nfds_t cap = l->cap * 2;
        struct pollfd *pfds = realloc(l->pfds, cap * sizeof *pfds);
        if (!pfds)
            return -ENOMEM;
        l->pfds = pfds;
        struct nb_conn **conns = realloc(l->conns, cap * sizeof *conns);
        if (!conns)
            return -ENOMEM;
        l->conns = conns;
        l->cap = cap;
    }
    struct nb_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fd = fd;
    l->pfds[l->n] = (struct pollfd){.fd = fd, .events = POLLIN};
    l->conns[l->n++] = c;
    return 0;
}

/* Closes entry i by moving the last entry into its place (with its revents of this turn). */
static void conn_close(struct poll_loop *l, nfds_t i)
{
    struct nb_conn *c = l->conns[i];
    nb_close(&l->nb, c, &l->totals);
    free(c);
    l->n--;
    l->pfds[i] = l->pfds[l->n];
    l->conns[i] = l->conns[l->n];
}

static int poll_run(struct server *srv)
{
    struct poll_loop l = {.srv = srv, .cap = 64};
    l.nb.work = &srv->cfg->work;
    l.pfds = malloc(l.cap * sizeof *l.pfds);
    l.conns = malloc(l.cap * sizeof *l.conns);
    if (!l.pfds || !l.conns) {
        free(l.pfds);
        free(l.conns);
        return server_fail(srv, "malloc", -ENOMEM);
    }
    int err = net_set_nonblock(srv->listen_fd);
    if (err < 0) {
        free(l.pfds);
        free(l.conns);
        return server_fail(srv, "fcntl", err);
    }
    l.pfds[STOP] = (struct pollfd){.fd = srv->stop_fd, .events = POLLIN};
    l.pfds[LISTENER] = (struct pollfd){.fd = srv->listen_fd, .events = POLLIN};
    l.conns[STOP] = l.conns[LISTENER] = NULL;
    l.n = 2;

    while (err == 0) {
        int timeout = server_accept_pause_ms(&l.accept_resume_ns);
        if (timeout == 0) {
            l.pfds[LISTENER].events = POLLIN; /* the pause is over */
            timeout = -1;
        }
        int ready = poll(l.pfds, l.n, timeout);
        if (ready < 0) {
            if (errno != EINTR)
                err = server_fail(srv, "poll", -errno);
            continue;
        }
        if (l.pfds[STOP].revents)
            break;
        /* New entries have revents 0: they are served from the next turn. Out of descriptors,
         * the listener's entry stops asking for events until the pause ends. */
        if ((l.pfds[LISTENER].revents & POLLIN)
            && server_accept_batch(srv->listen_fd, &l.totals, &l.accept_resume_ns, conn_adopt, &l))
            l.pfds[LISTENER].events = 0;
        for (nfds_t i = 2; i < l.n;) {
            short rev = l.pfds[i].revents;
            struct nb_conn *c = l.conns[i];
            if (!rev) {
                i++;
                continue;
            }
            enum nb_next next = (rev & POLLOUT) && c->pending
                                    ? nb_writable(&l.nb, c)
                                    : nb_readable(&l.nb, c, NB_READ_ONCE); /* errors too */
            if (next == NB_DONE) {
                /* The last entry moves into slot i: one not visited yet this turn (or a new
                 * one, with nothing to do), so slot i is looked at again. */
                conn_close(&l, i);
                continue;
            }
            l.pfds[i].events = next == NB_WANT_OUTPUT ? POLLOUT : POLLIN;
            i++;
        }
    }

    while (l.n > 2)
        conn_close(&l, 2);
    nb_loop_destroy(&l.nb);
    server_add_thread_totals(srv, 0, &l.totals);
    free(l.pfds);
    free(l.conns);
    return err;
}

const struct server_model model_poll = {
    .name = "poll",
    .summary = "poll() readiness loop, one thread; no descriptor limit, O(n) per turn",
    .kind = MODEL_EVENT_LOOP,
    .run = poll_run,
};
