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

#include <stdint.h>

#include "echo.h"

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
};

/* The connection is readable: read (how much: `how`) and echo. */
enum nb_next nb_readable(struct nb_loop *l, struct nb_conn *c, enum nb_read how);

/* The connection is writable: send parked output; once it is all sent, resume reading. */
enum nb_next nb_writable(struct nb_loop *l, struct nb_conn *c);

/* Releases the connection's parked output, if any (call before closing its fd). */
void nb_release(struct nb_loop *l, struct nb_conn *c);

/* Frees the loop's spare buffers. */
void nb_loop_destroy(struct nb_loop *l);

#endif
