/*
 * nbecho.h - echoing on a non-blocking socket, for the readiness-based models (select, poll,
 * epoll): what to do when a connection is readable or writable, written once.
 *
 * The rule that keeps memory bounded: never read from a connection while it holds bytes its
 * client has not taken. A short send() parks the rest (at most one read's worth) in a buffer of
 * the connection; reading resumes when the socket has taken it all. An idle connection owns no
 * buffer: the receive buffer belongs to the loop.
 */
#ifndef ECHOBENCH_NBECHO_H
#define ECHOBENCH_NBECHO_H

#include <stdbool.h>
#include <stdint.h>

#include "echo.h"
#include "server.h"

#define NB_SPARE_BUFFERS 64 /* parked-output buffers a loop keeps for reuse */

/* One connection's state. Zero it, then set fd. */
struct nb_conn {
    int fd;
    uint32_t pending_off, pending_len;
    char *pending;       /* unsent output; NULL unless the client fell behind */
    struct echo_stream stream;
    uint64_t echoed;     /* bytes sent back */
};

/* What a loop shares between its connections. Zero it, then set work. */
struct nb_loop {
    const struct echo_work *work;
    /* Set by a loop that spends per-message costs on other threads (reactor_pool): a read that
     * completes messages is not echoed; nb_readable returns NB_WANT_WORK with its deferred_len
     * bytes in buf, completing deferred_msgs messages. Reading that connection stops there. */
    bool defer_costs;
    size_t deferred_len;
    uint64_t deferred_msgs;
    char *spare[NB_SPARE_BUFFERS];
    unsigned nspare;
    char buf[ECHO_BUF_SIZE];
};

/* How much to read when a connection is readable. */
enum nb_read {
    NB_READ_ONCE,        /* one recv(): level-triggered loops are told again if more is there */
    NB_READ_UNTIL_SHORT, /* edge-triggered: a read shorter than the buffer means drained */
    NB_READ_ALL,         /* until EAGAIN or end of stream (no further notice will come) */
};

/* What the connection waits for next. */
enum nb_next {
    NB_WANT_INPUT,   /* readable */
    NB_WANT_OUTPUT,  /* writable: output is parked, input must not be read meanwhile */
    NB_DONE,         /* the client is done (all echoed) or failed: close the connection */
    NB_WANT_WORK,    /* with defer_costs: a read completed messages; their bytes are in the
                        loop's buffer, not echoed, until their cost is spent (nb_loop) */
};

/* The connection is readable: read (how much: `how`) and echo. */
enum nb_next nb_readable(struct nb_loop *l, struct nb_conn *c, enum nb_read how);

/* The connection is writable: send parked output; once it is all sent, resume reading. */
enum nb_next nb_writable(struct nb_loop *l, struct nb_conn *c);

/* Echoes n bytes of buf (another buffer than the loop's: reactor_pool's batch back from a
 * worker): sends what the socket takes and parks the rest (NB_WANT_OUTPUT), as nb_readable
 * does with what it reads. */
enum nb_next nb_send(struct nb_loop *l, struct nb_conn *c, const char *buf, size_t n);

/* Releases the connection's parked output, if any (call before closing its fd). */
void nb_release(struct nb_loop *l, struct nb_conn *c);

/* The end of a connection, the same in every readiness loop: releases its parked output, adds
 * its bytes to the loop thread's totals and closes its socket (which also takes it out of an
 * epoll set). The caller then unlinks and frees its own structure. */
void nb_close(struct nb_loop *l, struct nb_conn *c, struct server_thread_totals *t);

/* For the loops on epoll (epoll.c, reactor_pool.c, coroutine.c): the registrations they all make,
 * written once. Each returns 0 or -errno. */

/* Watches fd for input, level-triggered (the listener, the stop descriptor); data.ptr = tag. */
int nb_epoll_watch(int ep, int fd, void *tag);

/* Puts the listener in the set (on) or takes it out (after EMFILE, until the pause is over). */
int nb_epoll_listener(int ep, int listen_fd, void *tag, bool on);

/* Registers a connection once, for good: edge-triggered input, output and the client's
 * half-close, so the loop never calls epoll_ctl() for it again; data.ptr = ptr. */
int nb_epoll_add_conn(int ep, int fd, void *ptr);

/* Frees the loop's spare buffers. */
void nb_loop_destroy(struct nb_loop *l);

#endif
