/*
 * nbecho.c - the echo step of the readiness loops (select.c, poll.c, epoll.c): where their
 * recv() and send() are. nb_readable() receives into the loop's buffer, accounts the messages
 * it completes (echo_account: the per-message cost) and sends the bytes straight back; what the
 * socket does not take is copied into a parked buffer of the connection, and the connection then
 * waits for writability instead of readability (nb_writable() sends the rest and resumes
 * reading). See nbecho.h for the rule that keeps memory bounded.
 */
#include "nbecho.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

char *nb_buffer_get(struct nb_loop *l)
{
    return l->nspare ? l->spare[--l->nspare] : malloc(ECHO_BUF_SIZE);
}

void nb_buffer_put(struct nb_loop *l, char *b)
{
    if (!b)
        return;
    if (l->nspare < NB_SPARE_BUFFERS)
        l->spare[l->nspare++] = b;
    else
        free(b);
}

enum nb_next nb_send(struct nb_loop *l, struct nb_conn *c, const char *buf, size_t n)
{
    ssize_t sent;
    while ((sent = send(c->fd, buf, n, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    if (sent < 0) {
        if (errno != EAGAIN)
            return NB_DONE;
        sent = 0;
    }
    c->echoed += (uint64_t)sent;
    if ((size_t)sent == n)
        return NB_WANT_INPUT;
    c->pending = nb_buffer_get(l);
    if (!c->pending)
        return NB_DONE;
    c->pending_off = 0;
    c->pending_len = (uint32_t)(n - (size_t)sent);
    memcpy(c->pending, buf + sent, c->pending_len);
    return NB_WANT_OUTPUT;
}

enum nb_next nb_readable(struct nb_loop *l, struct nb_conn *c, enum nb_read how)
{
    if (c->pending)
        return NB_WANT_OUTPUT; /* back-pressure: not a byte more until the client catches up */
    for (;;) {
        ssize_t n = recv(c->fd, l->buf, sizeof l->buf, 0);
        if (n > 0) {
            if (!l->defer_costs) {
                echo_account(l->work, &c->stream, (size_t)n);
            } else if ((l->deferred_msgs = echo_count_messages(l->work, &c->stream, (size_t)n))) {
                l->deferred_len = (size_t)n;
                return NB_WANT_WORK; /* the bytes wait in l->buf for their cost to be spent */
            }
            enum nb_next next = nb_send(l, c, l->buf, (size_t)n);
            if (next != NB_WANT_INPUT || how == NB_READ_ONCE)
                return next;
            if (how == NB_READ_UNTIL_SHORT && (size_t)n < sizeof l->buf)
                return NB_WANT_INPUT; /* drained: later bytes raise a new edge */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return NB_WANT_INPUT;
        return NB_DONE; /* 0: the client half-closed and has everything back; or an error */
    }
}

enum nb_next nb_flush(struct nb_loop *l, struct nb_conn *c)
{
    while (c->pending_len > 0) {
        ssize_t n = send(c->fd, c->pending + c->pending_off, c->pending_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? NB_WANT_OUTPUT : NB_DONE;
        }
        c->pending_off += (uint32_t)n;
        c->pending_len -= (uint32_t)n;
        c->echoed += (uint64_t)n;
    }
    nb_release(l, c);
    return NB_WANT_INPUT;
}

enum nb_next nb_writable(struct nb_loop *l, struct nb_conn *c)
{
    enum nb_next next = nb_flush(l, c);
    /* Drained: resume reading, all of it - input that arrived meantime raised no new notice
     * for an edge-triggered loop. */
    return next == NB_WANT_INPUT ? nb_readable(l, c, NB_READ_ALL) : next;
}

void nb_release(struct nb_loop *l, struct nb_conn *c)
{
    if (c->pending) {
        nb_buffer_put(l, c->pending);
        c->pending = NULL;
        c->pending_len = 0;
    }
}

void nb_close(struct nb_loop *l, struct nb_conn *c, struct server_thread_totals *t)
{
    nb_release(l, c);
    t->echoed += c->echoed;
    close(c->fd);
}

int nb_epoll_watch(int ep, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

int nb_listener_watch(struct nb_listener *l, bool on)
{
    int err = on ? nb_epoll_watch(l->ep, l->fd, l)
                 : (epoll_ctl(l->ep, EPOLL_CTL_DEL, l->fd, NULL) == 0 ? 0 : -errno);
    if (err == 0)
        l->watched = on;
    return err;
}

int nb_epoll_wait(struct nb_listener *l, struct epoll_event *events, int max, int timeout_ms,
                  const char **call)
{
    int pause_ms = server_accept_pause_ms(&l->resume_ns);
    if (pause_ms <= 0 && !l->watched) { /* the pause is over (or never was): accept */
        int err = nb_listener_watch(l, true);
        if (err < 0) {
            *call = "epoll_ctl";
            return err;
        }
    }
    if (pause_ms > 0 && (timeout_ms < 0 || pause_ms < timeout_ms))
        timeout_ms = pause_ms;
    int n = epoll_wait(l->ep, events, max, timeout_ms);
    if (n >= 0 || errno == EINTR)
        return n > 0 ? n : 0;
    *call = "epoll_wait";
    return -errno;
}

void nb_listener_accept(struct nb_listener *l, struct server_thread_totals *t,
                        int (*adopt)(void *arg, int fd), void *arg)
{
    if (server_accept_batch(l->fd, t, &l->resume_ns, adopt, arg))
        nb_listener_watch(l, false); /* out of descriptors: not until the pause is over */
}

int nb_epoll_add_conn(int ep, int fd, void *ptr)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = ptr};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

int nb_epoll_adopt(int ep, struct list *conns, int fd, size_t size)
{
    struct nb_epoll_conn *c = calloc(1, size);
    int err = c ? nb_epoll_add_conn(ep, fd, c) : -ENOMEM;
    if (err < 0) {
        free(c);
        return err;
    }
    c->nb.fd = fd;
    list_insert_tail(conns, &c->link);
    return 0;
}

void nb_loop_destroy(struct nb_loop *l)
{
    while (l->nspare)
        free(l->spare[--l->nspare]);
}
