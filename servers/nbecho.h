/*
 * nbecho.h - echoing on a non-blocking socket, for the readiness-based models (select, poll,
 * epoll): what to do when a connection is readable or writable, written once.
 *
 * The rule that keeps memory bounded: never read from a connection while it holds bytes its
 * client has not taken. A short send() parks the rest (at most one read's worth) in a buffer of
 * the connection; reading resumes when the socket has taken it all. An idle connection owns no
 * buffer: the receive buffer belongs to the loop.
 *
 * Threads: a struct nb_loop belongs to one thread, and only that thread calls these functions
 * with it. A connection may move between threads (leader_followers: whichever thread takes its
 * event serves it, with that thread's nb_loop), and its parked output moves with it: a buffer
 * taken from thread A's spare list may be released into thread B's. That is safe: a parked
 * buffer is plain malloc() memory with no tie to the loop it came from, each spare list is only
 * touched by the thread that owns its nb_loop, and the hand-over of the connection itself orders
 * A's writes before B's reads (leader_followers.c). Nor can buffers pile up on one thread: each
 * spare list is capped (NB_SPARE_BUFFERS; beyond that a released buffer is freed).
 */
#ifndef ECHOBENCH_NBECHO_H
#define ECHOBENCH_NBECHO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "echo.h"
#include "list.h"
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

/* The connection is writable: send parked output; once it is all sent, resume reading - until
 * EAGAIN (NB_READ_ALL), since an edge-triggered loop gets no new notice for input that came
 * meanwhile; so a client that keeps sending and reads its echo holds the loop in this call
 * for as long as it likes (epoll's behaviour, as with NB_READ_UNTIL_SHORT). */
enum nb_next nb_writable(struct nb_loop *l, struct nb_conn *c);

/* The first half of nb_writable: sends parked output and releases its buffer once it is all
 * sent (NB_WANT_INPUT; NB_WANT_OUTPUT while some is left, NB_DONE on an error), reading
 * nothing. For a loop that is told again of input already there (leader_followers' level-style
 * re-arm), which then reads as it likes. */
enum nb_next nb_flush(struct nb_loop *l, struct nb_conn *c);

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

/* An epoll loop's listener: in the loop's set, or out of it during the pause after running out
 * of descriptors (server_accept_nonblocking). Its events carry data.ptr = the structure itself,
 * which is how the loop tells them from a connection's. */
struct nb_listener {
    int ep, fd;         /* the loop's epoll set; the listening socket (non-blocking) */
    bool watched;       /* in the set now */
    uint64_t resume_ns; /* 0, or when the pause ends */
};

/* Puts the listener in the set (on), or takes it out (off). */
int nb_listener_watch(struct nb_listener *l, bool on);

/* The loop's one wait: epoll_wait() for up to max events, no longer than timeout_ms (-1: no
 * limit of the loop's own) nor than a pause of the listener - which is watched again first when
 * its pause is over. Returns the number of events (0 after EINTR or a timeout), or -errno with
 * *call naming what failed. */
int nb_epoll_wait(struct nb_listener *l, struct epoll_event *events, int max, int timeout_ms,
                  const char **call);

/* The listener is readable: accepts a batch (server_accept_batch, adopt as there) and takes the
 * listener out of the set if descriptors ran out. */
void nb_listener_accept(struct nb_listener *l, struct server_thread_totals *t,
                        int (*adopt)(void *arg, int fd), void *arg);

/* Registers a connection once, for good: edge-triggered input, output and the client's
 * half-close, so the loop never calls epoll_ctl() for it again; data.ptr = ptr. */
int nb_epoll_add_conn(int ep, int fd, void *ptr);

/* What an epoll loop's connection structure begins with (its "common initial sequence"): the
 * loop's own structure may add members after these two, and a _Static_assert in the model's
 * file checks the layout (NB_EPOLL_CONN_LAYOUT). */
struct nb_epoll_conn {
    struct nb_conn nb;  /* the socket and its echo state */
    struct list link;   /* the loop's connections, for closing at stop */
};
#define NB_EPOLL_CONN_LAYOUT(type)                                                          \
    _Static_assert(offsetof(type, nb) == 0                                                   \
                       && offsetof(type, link) == offsetof(struct nb_epoll_conn, link),      \
                   #type " must begin with the members of struct nb_epoll_conn")

/* A new connection of an epoll loop: a zeroed structure of `size` bytes (beginning as struct
 * nb_epoll_conn) for fd, registered with nb_epoll_add_conn() and linked at the tail of conns.
 * The adopt step of server_accept_batch() for such loops. Returns 0 or -errno. */
int nb_epoll_adopt(int ep, struct list *conns, int fd, size_t size);

/* An ECHO_BUF_SIZE buffer from the loop's spare list (parked output's), or a new one; NULL if
 * out of memory. For a model's own per-connection buffer of that size (reactor_pool's batch),
 * so that it is reused as parked output is, with no malloc per message. */
char *nb_buffer_get(struct nb_loop *l);

/* Gives a buffer of nb_buffer_get() back to the loop's spare list (freed if it is full;
 * nothing for NULL). */
void nb_buffer_put(struct nb_loop *l, char *b);

/* Frees the loop's spare buffers. */
void nb_loop_destroy(struct nb_loop *l);

#endif
