/*
 * uring.c - a completion-based event loop on io_uring (liburing): one ring per thread.
 *
 * How it works
 *   Where epoll says "this socket is ready, now make the call", io_uring takes the calls
 *   themselves: the loop puts requests (accept, receive, send) in a submission queue shared with
 *   the kernel and later reads their results from a completion queue. Each loop iteration makes
 *   exactly one system call, io_uring_submit_and_wait(): it submits everything queued while
 *   handling the previous batch of completions and sleeps until at least one more arrives. Many
 *   receives and sends therefore cost one kernel entry between them, instead of one each.
 *
 *   - Multishot accept: one request on the listener produces a completion per new connection.
 *   - Receives with provided buffers: the kernel picks the buffer a receive fills from a ring of
 *     buffers registered up front (IORING_REGISTER_PBUF_RING), when data arrives - not when the
 *     request is queued. Memory for received data is that fixed pool, BUF_COUNT buffers of
 *     16 KiB per ring, however many connections there are; an idle connection holds none.
 *     Receives are single-shot, and the next one is queued only once the previous bytes are
 *     echoed; it waits for data with IORING_RECVSEND_POLL_FIRST unless the last receive said
 *     more was waiting (IORING_CQE_F_SOCK_NONEMPTY), which skips a receive bound to fail.
 *   - Sends: a received buffer is sent back as it is, from the pool, with MSG_DONTWAIT: the send
 *     completes at once (in the same kernel entry that submitted it) with what the socket took.
 *     A full send returns the buffer to the pool and the next receive is queued. A short one
 *     means the client is behind: the rest (less than one receive) is copied into a buffer of
 *     the connection's own, the pool buffer goes back at once, and a send that waits for room
 *     (MSG_WAITALL, no MSG_DONTWAIT) takes over. Nothing is received meanwhile; when the parked
 *     bytes are all sent, the connection's own buffer is kept on a small spare list for the next
 *     parked connection (like nbecho.c) and receiving resumes.
 *   - When the pool is empty, a receive completes with ENOBUFS and nothing is lost (the data
 *     stays in the socket): the connection waits on a FIFO and, as buffers come back, the
 *     longest waiter is re-armed first (one connection per buffer available), and only if it
 *     still wants a receive. A waiter re-armed that finds the pool empty again keeps its place.
 *   - The ring is set up with SINGLE_ISSUER and DEFER_TASKRUN when the kernel accepts them
 *     (completion work runs when this thread asks for completions, not by interrupting it),
 *     falling back to COOP_TASKRUN, then to no flags. The summary says which (note=...).
 *
 *   The buffer bound. A connection holds at most POOL_BUFFERS_PER_CONN (1) pool buffer, and
 *   only from a receive's completion to the completion of the MSG_DONTWAIT send queued in the
 *   same turn of the loop - one io_uring_submit_and_wait() later. Enforced by construction: a
 *   connection has at most one request in flight (the state table below), and a receive - the
 *   only request that lets the kernel take a pool buffer for it - is queued only from a state
 *   that holds none. A client that does not read its echo therefore holds no pool buffer at
 *   all, only its parked bytes (at most one receive, ECHO_BUF_SIZE, in its own buffer), and no
 *   set of such clients, however large, can empty the pool: it runs dry only if more than
 *   BUF_COUNT connections complete a receive in the same turn, and then only until that turn's
 *   sends complete. Why not multishot receives: a multishot receive keeps taking buffers for as
 *   long as data arrives - the kernel retries it up to 32 times per wake-up and then requeues
 *   it - and cancelling it is asynchronous, so the buffers a connection could hold before the
 *   cancellation lands have no bound this code can state (the previous version of this file
 *   cancelled at 4 buffers: 64 clients that did not read still emptied the pool of 1,024, and
 *   a new client got no echo at all - the conformance case many_non_readers). Their advantage
 *   is one poll armed for good instead of one per receive; measured with bench/cpu-per-request
 *   (128-byte requests, pipeline 1, medians of 4, against the multishot version): 8.48 against
 *   8.40 us of server CPU per request with 50 connections, 9.30 against 8.92 with 1,000 - up
 *   to 4% for a bound. Without POLL_FIRST: 8.56 and 9.17, no clear difference.
 *
 *   Connection states (one request in flight in each, except STARVED; "holds" = pool buffers):
 *
 *     state     in flight                  holds  event                  -> next
 *     RECV      receive (kernel picks buf) 0      bytes in buffer b      -> SEND (send b, DONTWAIT)
 *                                                 ENOBUFS                -> STARVED (FIFO tail)
 *                                                 end of stream, error   -> closed
 *     SEND      send of pool buffer b      1      all sent               -> RECV (b back to pool)
 *                                                 short / EAGAIN         -> PARKED (rest copied to
 *                                                                           own buffer, b back)
 *                                                 error                  -> closed (b back)
 *     PARKED    send of own buffer, waits  0      all sent               -> RECV (own buf spared)
 *                                                 part sent              -> PARKED (send the rest)
 *                                                 error                  -> closed
 *     STARVED   nothing (on the FIFO)      0      buffers back, at head  -> RECV
 *     any       -                          -      stop                   -> closed at the end
 *
 *   End of stream needs no state: it is seen in RECV, where every byte received is echoed.
 *
 *   user_data. Every request carries 64 bits that say what its completion is for; one pair,
 *   ud_encode() / ud_op() + ud_conn() / ud_fd(), writes and reads them:
 *
 *      63                                                              4 3       0
 *     +------------------------------------------------------------------+---------+
 *     | payload: a struct conn * (aligned to 16, so its low 4 bits are 0) |   op    |
 *     |          or a descriptor << 4 (OP_ADOPT, OP_HANDOFF), or 0        | enum op |
 *     +------------------------------------------------------------------+---------+
 *
 *   _Static_asserts check that every op fits the 4 bits and that a connection's alignment
 *   leaves them free.
 *
 *   The uring_sqpoll variant sets the ring up with IORING_SETUP_SQPOLL: a kernel thread
 *   (iou-sqp-PID) polls the submission queue and submits what the loop queues, so the loop makes
 *   no system call to submit - only to wait for completions. The thread keeps polling for
 *   SQPOLL_IDLE_MS after the last submission before it sleeps. It belongs to the server's
 *   process, so its CPU time is counted in the server's (the bench reads every thread's
 *   runtime): on a server confined to one core it competes with the loop for that core, and
 *   pays off only with a core to spare.
 *
 *   --threads N runs N rings on N threads, each with its own buffer pool and connections. Ring 0
 *   alone accepts, and hands each new connection to the next ring in turn with a message from
 *   ring to ring (IORING_OP_MSG_RING: the kernel posts a completion carrying the descriptor in
 *   the target ring, no system call of its own). Rings that each ran a multishot accept on the
 *   shared listener would compete for it, and the first waiter wins nearly every connection
 *   (measured: 453/28/19 of 500 over three rings); the hand-off splits them evenly. A hand-off
 *   that fails (the message is refused) is served by ring 0 itself. At a stop, ring 0 waits for
 *   its hand-offs in flight to complete, then lets the other rings collect the descriptors that
 *   reached them after they left their loops, and close them (counted as shed): every accepted
 *   connection is served or shed, none is lost.
 *
 *   Out of descriptors (EMFILE/ENFILE): the multishot accept ends; ring 0 waits
 *   SERVER_ACCEPT_PAUSE_NS (a timeout request) and keeps serving meanwhile, then accepts again.
 *
 *   Test hook: ECHOBENCH_URING_FAIL_HANDOFF=1 in the environment (read once at start-up) makes
 *   every hand-off target an invalid ring descriptor, so that IORING_OP_MSG_RING fails and the
 *   failure path runs (tests/uring_model.sh); the summary note then says fail_handoff.
 *
 * What limits it
 *   Like every event loop, one ring is one core, and per-message work or a blocking wait
 *   (--work-us, --sleep-us) stalls all of its connections. io_uring needs Linux 6.0 or later
 *   here (provided buffer rings, multishot accept, DEFER_TASKRUN from 6.1); where io_uring is
 *   missing or forbidden (old kernel, kernel.io_uring_disabled, seccomp), echo-server says why
 *   and exits with status 3. Memory: the pool (16 MiB per ring) plus 16 KiB per connection whose
 *   client is behind, plus a small structure per connection.
 *
 * Try it
 *   echo-server --model uring --port 7007 [--threads 2]
 *   nc 127.0.0.1 7007
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "clock.h"
#include "list.h"
#include "server.h"

#define SQ_ENTRIES 4096
#define CQ_ENTRIES 32768
#define BUF_COUNT 1024          /* provided buffers per ring (a power of two) */
#define BUF_SIZE ECHO_BUF_SIZE
#define BUF_GROUP 1
#define POOL_BUFFERS_PER_CONN 1 /* the bound: pool buffers one connection can hold at once */
#define SPARE_BUFFERS 64        /* parked-output buffers a ring keeps for reuse */
#define SQPOLL_IDLE_MS 10       /* uring_sqpoll: how long the kernel thread polls when idle */
#define FINISH_WAIT_MS 1000     /* at a stop: the longest wait for requests still in flight */

/* --- user_data: one encoding (the layout is drawn at the top of the file) -------------------- */

enum op {
    OP_NONE,     /* never used: a zero user_data is a bug */
    OP_ACCEPT,   /* the multishot accept */
    OP_RECV,     /* a connection's receive */
    OP_SEND,     /* a connection's send (from the pool in SEND, from its own buffer in PARKED) */
    OP_STOP,     /* the poll on stop_fd */
    OP_PAUSE,    /* the timeout that ends an accept pause */
    OP_CANCEL,   /* a cancellation request (its target reports on its own) */
    OP_ADOPT,    /* in a target ring: a descriptor handed over by ring 0 */
    OP_HANDOFF,  /* in ring 0: the MSG_RING request that handed a descriptor over */
    OP_COUNT
};
#define OP_BITS 4
#define OP_MASK ((UINT64_C(1) << OP_BITS) - 1)
_Static_assert(OP_COUNT - 1 <= OP_MASK, "every op must fit the tag bits of user_data");

enum conn_state { CS_RECV, CS_SEND, CS_PARKED, CS_STARVED };

struct conn {
    alignas(1 << OP_BITS) int fd;
    enum conn_state state;
    uint16_t bid;          /* SEND: the pool buffer being sent */
    bool data_waiting;     /* the last receive left data in the socket: next one skips the poll */
    uint32_t off, len;     /* SEND: len bytes in bid; PARKED: own[off, len) not yet sent */
    char *own;             /* PARKED: the unsent bytes, out of the pool */
    uint64_t ticket;       /* STARVED (and while re-armed from the FIFO): its place in line */
    struct echo_stream stream;
    uint64_t echoed;
    struct list link;      /* every connection of the ring */
    struct list starved;   /* the FIFO of connections waiting for buffers */
};
_Static_assert(alignof(struct conn) >= (1 << OP_BITS),
               "a connection's address must leave the tag bits of user_data free");
_Static_assert(sizeof(uintptr_t) <= sizeof(uint64_t), "a pointer must fit user_data");

static inline uint64_t ud_encode(enum op op, uint64_t payload)
{
    return payload | (uint64_t)op;
}

static inline uint64_t ud_of_conn(enum op op, struct conn *c)
{
    return ud_encode(op, (uint64_t)(uintptr_t)c);
}

static inline uint64_t ud_of_fd(enum op op, int fd)
{
    return ud_encode(op, (uint64_t)(unsigned)fd << OP_BITS);
}

static inline enum op ud_op(uint64_t data)
{
    return (enum op)(data & OP_MASK);
}

static inline struct conn *ud_conn(uint64_t data)
{
    return (struct conn *)(uintptr_t)(data & ~OP_MASK);
}

static inline int ud_fd(uint64_t data)
{
    return (int)(unsigned)(data >> OP_BITS);
}

/* --- start and stop of the rings ------------------------------------------------------------ */

/* Rings wait here after setting up, until every ring is ready (or start-up failed); and at a
 * stop, the other rings wait for ring 0 to have no hand-off in flight before they collect what
 * reached them. */
struct start_gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned ready;
    bool open;
    bool handoffs_done;
};

static void gate_arrive(struct start_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->ready++;
    pthread_cond_broadcast(&g->cond);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

/* Waits for `count` rings to arrive, then lets them all go. */
static void gate_open(struct start_gate *g, unsigned count)
{
    pthread_mutex_lock(&g->lock);
    while (g->ready < count)
        pthread_cond_wait(&g->cond, &g->lock);
    g->open = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* Ring 0 has left its loop and none of its hand-offs is in flight any more. */
static void gate_handoffs_done(struct start_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->handoffs_done = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void gate_wait_handoffs_done(struct start_gate *g)
{
    pthread_mutex_lock(&g->lock);
    while (!g->handoffs_done)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

struct uring_loop {
    struct server *srv;
    unsigned index;
    struct uring_loop *all;  /* every ring, for ring 0's hand-offs */
    unsigned nloops, next_target;
    struct start_gate *gate; /* every ring is set up before ring 0 accepts */
    bool sqpoll;             /* the uring_sqpoll variant */
    bool fail_handoff;       /* the test hook (ECHOBENCH_URING_FAIL_HANDOFF=1) */
    struct io_uring ring;
    bool ring_ready;
    bool adopting;           /* set up in full: ring 0 may hand connections to it */
    struct io_uring_buf_ring *br;
    size_t br_size;
    char *bufs;
    int returned;            /* buffers handed back since the last advance */
    unsigned available;      /* buffers the kernel can pick now (published, unused) */
    struct list conns;       /* every connection */
    struct list starved;     /* connections waiting for buffers, longest waiter first */
    uint64_t next_ticket;
    char *spare[SPARE_BUFFERS];
    unsigned nspare;
    bool stopping;
    bool accept_armed;       /* ring 0: the multishot accept is active */
    unsigned handoffs;       /* ring 0: MSG_RING requests in flight */
    struct server_thread_totals totals;
    const char *setup_mode;
    pthread_t tid;
    int error;
};

/* --- requests ------------------------------------------------------------------------------- */

/* A submission queue entry; when the queue is full, submits what is queued first. */
static struct io_uring_sqe *get_sqe(struct uring_loop *l)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    while (!sqe) {
        io_uring_submit(&l->ring);
        sqe = io_uring_get_sqe(&l->ring);
    }
    return sqe;
}

static char *buf_addr(struct uring_loop *l, uint16_t bid)
{
    return l->bufs + (size_t)bid * BUF_SIZE;
}

/* Hands a buffer back to the kernel's ring (made visible in a batch, after the completions). */
static void buf_return(struct uring_loop *l, uint16_t bid)
{
    io_uring_buf_ring_add(l->br, buf_addr(l, bid), BUF_SIZE, bid,
                          io_uring_buf_ring_mask(BUF_COUNT), l->returned++);
}

static char *own_get(struct uring_loop *l)
{
    return l->nspare ? l->spare[--l->nspare] : malloc(BUF_SIZE);
}

static void own_put(struct uring_loop *l, char *b)
{
    if (l->nspare < SPARE_BUFFERS)
        l->spare[l->nspare++] = b;
    else
        free(b);
}

static void arm_accept(struct uring_loop *l)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_multishot_accept(sqe, l->srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud_encode(OP_ACCEPT, 0));
    l->accept_armed = true;
}

/* -> RECV. The one request that lets the kernel take a pool buffer for c: only from a state
 * that holds none (a new connection, SEND completed, PARKED drained, STARVED). */
static void arm_recv(struct uring_loop *l, struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_recv(sqe, c->fd, NULL, BUF_SIZE, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    if (!c->data_waiting)
        sqe->ioprio |= IORING_RECVSEND_POLL_FIRST; /* wait for data before trying */
    io_uring_sqe_set_data64(sqe, ud_of_conn(OP_RECV, c));
    c->state = CS_RECV;
}

/* -> SEND: echo pool buffer c->bid, taking only what the socket takes now. */
static void send_pool(struct uring_loop *l, struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_send(sqe, c->fd, buf_addr(l, c->bid), c->len, MSG_NOSIGNAL | MSG_DONTWAIT);
    io_uring_sqe_set_data64(sqe, ud_of_conn(OP_SEND, c));
    c->state = CS_SEND;
}

/* -> PARKED: send the connection's own buffer, waiting for room as long as it takes. */
static void send_own(struct uring_loop *l, struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_send(sqe, c->fd, c->own + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_WAITALL);
    io_uring_sqe_set_data64(sqe, ud_of_conn(OP_SEND, c));
    c->state = CS_PARKED;
}

/* Frees a connection. Only when none of its requests is in flight (see the state table). */
static void conn_close(struct uring_loop *l, struct conn *c)
{
    list_remove(&c->link);
    list_remove(&c->starved);
    if (c->own)
        own_put(l, c->own);
    close(c->fd);
    l->totals.echoed += c->echoed;
    free(c);
}

/* -> STARVED: the pool was empty. A first-time waiter joins the tail of the FIFO; one that was
 * re-armed from it and found the pool empty again goes back to its place (the list is kept in
 * ticket order, and only the few re-armed ones are older than the tail). */
static void starve(struct uring_loop *l, struct conn *c)
{
    c->state = CS_STARVED;
    if (c->ticket == 0) {
        c->ticket = ++l->next_ticket;
        list_insert_tail(&l->starved, &c->starved);
        return;
    }
    struct list *node, *tmp;
    list_for_each_safe(node, tmp, &l->starved) {
        if (list_entry(node, struct conn, starved)->ticket > c->ticket) {
            list_insert_tail(node, &c->starved); /* before node */
            return;
        }
    }
    list_insert_tail(&l->starved, &c->starved);
}

/* Takes a connected socket into this ring. */
static void adopt(struct uring_loop *l, int fd)
{
    struct conn *c = aligned_alloc(alignof(struct conn), sizeof *c);
    if (!c) {
        close(fd);
        l->totals.shed++;
        return;
    }
    *c = (struct conn){.fd = fd};
    l->totals.served++;
    list_insert_tail(&l->conns, &c->link);
    arm_recv(l, c);
}

/* Ring 0: serve the connection here or pass it to the next ring, in turn. */
static void dispatch(struct uring_loop *l, int fd)
{
    struct uring_loop *target = &l->all[l->next_target++ % l->nloops];
    if (target == l || !target->adopting) { /* (a ring that failed to start is stopping) */
        adopt(l, fd);
        return;
    }
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_msg_ring(sqe, l->fail_handoff ? -1 : target->ring.ring_fd, (unsigned)fd,
                           ud_of_fd(OP_ADOPT, fd), 0);
    io_uring_sqe_set_data64(sqe, ud_of_fd(OP_HANDOFF, fd));
    l->handoffs++;
}

/* A descriptor that arrived when it can no longer be served: closed, counted as shed. */
static void shed(struct uring_loop *l, int fd)
{
    close(fd);
    l->totals.shed++;
}

/* --- completions ---------------------------------------------------------------------------- */

static void on_accept(struct uring_loop *l, struct io_uring_cqe *cqe)
{
    if (cqe->res >= 0) {
        l->totals.accepted++;
        if (l->stopping) {
            shed(l, cqe->res);
        } else {
            net_set_nodelay(cqe->res);
            dispatch(l, cqe->res);
        }
    }
    if (cqe->flags & IORING_CQE_F_MORE)
        return;
    l->accept_armed = false;
    if (l->stopping)
        return;
    if (cqe->res < 0 && net_accept_error_is_exhaustion(-cqe->res)) {
        /* Out of descriptors: keep serving, and accept again after a pause. */
        static struct __kernel_timespec pause = {.tv_nsec = SERVER_ACCEPT_PAUSE_NS};
        l->totals.pauses++;
        struct io_uring_sqe *sqe = get_sqe(l);
        io_uring_prep_timeout(sqe, &pause, 0, 0);
        io_uring_sqe_set_data64(sqe, ud_encode(OP_PAUSE, 0));
        return;
    }
    arm_accept(l); /* the multishot accept ended: start another */
}

/* RECV completed. */
static void on_recv(struct uring_loop *l, struct conn *c, struct io_uring_cqe *cqe)
{
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        l->available--;
        if (cqe->res <= 0 || l->stopping) /* (a buffer comes with bytes; to be sure) */
            buf_return(l, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
    }
    if (l->stopping) {
        conn_close(l, c);
        return;
    }
    if (cqe->res > 0) {
        c->bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        c->len = (uint32_t)cqe->res;
        c->data_waiting = cqe->flags & IORING_CQE_F_SOCK_NONEMPTY;
        c->ticket = 0;
        echo_account(&l->srv->cfg->work, &c->stream, (size_t)cqe->res);
        send_pool(l, c);
    } else if (cqe->res == -ENOBUFS) {
        starve(l, c);
    } else {
        conn_close(l, c); /* end of stream (everything received is echoed) or an error */
    }
}

/* SEND or PARKED completed. */
static void on_send(struct uring_loop *l, struct conn *c, struct io_uring_cqe *cqe)
{
    bool pool = c->state == CS_SEND;
    if (pool)
        buf_return(l, c->bid); /* (published after the batch: the bytes below are read first) */
    if ((cqe->res < 0 && cqe->res != -EAGAIN) || l->stopping) {
        conn_close(l, c);
        return;
    }
    uint32_t sent = cqe->res > 0 ? (uint32_t)cqe->res : 0;
    c->echoed += sent;
    if (pool) {
        if (sent == c->len) {
            arm_recv(l, c);
            return;
        }
        /* The client is behind: park the rest out of the pool. */
        if (!(c->own = own_get(l))) {
            conn_close(l, c);
            return;
        }
        c->len -= sent;
        c->off = 0;
        memcpy(c->own, buf_addr(l, c->bid) + sent, c->len);
        send_own(l, c);
        return;
    }
    c->off += sent;
    if (c->off < c->len) {
        send_own(l, c);
        return;
    }
    own_put(l, c->own); /* drained: read again */
    c->own = NULL;
    c->data_waiting = true; /* it stopped reading with data waiting, most likely */
    arm_recv(l, c);
}

/* After a batch of completions: publish returned buffers, and re-arm as many starved
 * connections as there are buffers available (each takes at most one), longest waiter first.
 * Counted, not just returned in this batch: an ENOBUFS can complete after the batch in which
 * the last buffers came back. */
static void after_batch(struct uring_loop *l)
{
    if (l->returned) {
        io_uring_buf_ring_advance(l->br, l->returned);
        l->available += (unsigned)l->returned;
        l->returned = 0;
    }
    for (unsigned budget = l->available; budget > 0 && !l->stopping; budget--) {
        struct list *node = list_pop_first(&l->starved);
        if (!node)
            break;
        struct conn *c = list_entry(node, struct conn, starved);
        if (c->state == CS_STARVED)
            arm_recv(l, c);
    }
}

static void handle(struct uring_loop *l, struct io_uring_cqe *cqe)
{
    uint64_t data = io_uring_cqe_get_data64(cqe);
    switch (ud_op(data)) {
    case OP_ACCEPT: on_accept(l, cqe); break;
    case OP_RECV: on_recv(l, ud_conn(data), cqe); break;
    case OP_SEND: on_send(l, ud_conn(data), cqe); break;
    case OP_STOP: l->stopping = true; break;
    case OP_PAUSE:
        if (!l->stopping)
            arm_accept(l);
        break;
    case OP_ADOPT: /* from ring 0 */
        if (l->stopping)
            shed(l, ud_fd(data));
        else
            adopt(l, ud_fd(data));
        break;
    case OP_HANDOFF:
        l->handoffs--;
        if (cqe->res >= 0)
            break; /* the target has it */
        if (l->stopping)
            shed(l, ud_fd(data));
        else
            adopt(l, ud_fd(data)); /* the target could not take it: serve it here */
        break;
    case OP_CANCEL: /* the cancelled request reports on its own */
    case OP_NONE:
    case OP_COUNT:
        break;
    }
}

/* Handles every completion waiting now, then the end-of-batch work. Returns how many. */
static unsigned handle_batch(struct uring_loop *l)
{
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&l->ring, head, cqe) {
        handle(l, cqe);
        seen++;
    }
    io_uring_cq_advance(&l->ring, seen);
    after_batch(l);
    return seen;
}

static int loop_run(struct uring_loop *l)
{
    while (!l->stopping) {
        int ret = io_uring_submit_and_wait(&l->ring, 1);
        if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EBUSY)
            return server_fail(l->srv, "io_uring_submit_and_wait", ret);
        handle_batch(l);
    }
    return 0;
}

/* Nothing of this ring is in flight that holds a connection or a descriptor. */
static bool quiet(struct uring_loop *l)
{
    return list_empty(&l->conns) && !l->accept_armed && l->handoffs == 0;
}

/* Waits (up to FINISH_WAIT_MS) for the requests still in flight, handling their completions
 * as a stopping ring does: connections are closed, descriptors that arrive are shed. */
static void drain(struct uring_loop *l)
{
    uint64_t deadline = clock_now_ns() + FINISH_WAIT_MS * NS_PER_MS;
    while (!quiet(l) && clock_now_ns() < deadline) {
        struct __kernel_timespec ts = {.tv_nsec = 50 * (long long)NS_PER_MS};
        struct io_uring_cqe *cqe;
        int ret = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
        if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY)
            break;
        handle_batch(l);
    }
}

/* After the loop: end every request that holds a connection or a descriptor, so that all of
 * them can be closed before the ring goes. The other rings then collect what ring 0 handed
 * them after they had left their loops. */
static void loop_finish(struct uring_loop *l)
{
    if (!l->ring_ready)
        return;
    l->stopping = true;
    if (l->accept_armed) {
        struct io_uring_sqe *sqe = get_sqe(l);
        io_uring_prep_cancel64(sqe, ud_encode(OP_ACCEPT, 0), 0);
        io_uring_sqe_set_data64(sqe, ud_encode(OP_CANCEL, 0));
    }
    struct list *node, *tmp;
    list_for_each_safe(node, tmp, &l->conns) {
        struct conn *c = list_entry(node, struct conn, link);
        if (c->state == CS_STARVED)
            conn_close(l, c);           /* nothing in flight */
        else
            shutdown(c->fd, SHUT_RDWR); /* its one request completes at once */
    }
    drain(l);
    if (l->index == 0) {
        gate_handoffs_done(l->gate);
    } else {
        gate_wait_handoffs_done(l->gate);
        io_uring_get_events(&l->ring); /* (runs deferred work: posts late hand-offs) */
        handle_batch(l);
    }
}

/* --- set-up and tear-down ------------------------------------------------------------------- */

/* Rings accept SINGLE_ISSUER and DEFER_TASKRUN since 6.1, COOP_TASKRUN since 5.19. An SQPOLL
 * ring (the variant) takes neither DEFER_TASKRUN (the kernel thread runs the task work) nor
 * fallbacks: without SQPOLL it would not be the model it claims to be. */
static int ring_setup(struct uring_loop *l)
{
    static const struct { unsigned flags; const char *name; } modes[] = {
        {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "single_issuer+defer_taskrun"},
        {IORING_SETUP_COOP_TASKRUN, "coop_taskrun"},
        {0, "default"},
    }, sqpoll_mode[] = {
        {IORING_SETUP_SQPOLL, "sqpoll"},
    };
    size_t count = l->sqpoll ? 1 : sizeof modes / sizeof modes[0];
    int ret = -EINVAL;
    for (size_t i = 0; i < count; i++) {
        const char *name = l->sqpoll ? sqpoll_mode[i].name : modes[i].name;
        struct io_uring_params p = {.flags = (l->sqpoll ? sqpoll_mode[i].flags : modes[i].flags)
                                             | IORING_SETUP_CQSIZE,
                                    .cq_entries = CQ_ENTRIES,
                                    .sq_thread_idle = SQPOLL_IDLE_MS};
        ret = io_uring_queue_init_params(SQ_ENTRIES, &l->ring, &p);
        if (ret == 0) {
            l->setup_mode = name;
            l->ring_ready = true;
            return 0;
        }
        if (ret != -EINVAL)
            break;
    }
    return ret;
}

static int buffers_setup(struct uring_loop *l)
{
    l->br_size = BUF_COUNT * sizeof(struct io_uring_buf);
    l->br = mmap(NULL, l->br_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (l->br == MAP_FAILED) {
        l->br = NULL;
        return -errno;
    }
    l->bufs = malloc((size_t)BUF_COUNT * BUF_SIZE);
    if (!l->bufs)
        return -ENOMEM;
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)l->br,
                                   .ring_entries = BUF_COUNT, .bgid = BUF_GROUP};
    int ret = io_uring_register_buf_ring(&l->ring, &reg, 0);
    if (ret < 0)
        return ret;
    io_uring_buf_ring_init(l->br);
    for (uint16_t bid = 0; bid < BUF_COUNT; bid++)
        buf_return(l, bid);
    io_uring_buf_ring_advance(l->br, l->returned);
    l->available = BUF_COUNT;
    l->returned = 0;
    return 0;
}

static int loop_init(struct uring_loop *l, struct server *srv, unsigned index)
{
    int ret = ring_setup(l);
    if (ret < 0)
        return server_fail(srv, "io_uring_queue_init_params", ret);
    if ((ret = buffers_setup(l)) < 0)
        return server_fail(srv, "io_uring_register_buf_ring", ret);
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_poll_add(sqe, srv->stop_fd, POLLIN);
    io_uring_sqe_set_data64(sqe, ud_encode(OP_STOP, 0));
    if (index == 0)
        arm_accept(l);
    l->adopting = true;
    return 0;
}

static void loop_destroy(struct uring_loop *l)
{
    if (l->ring_ready)
        io_uring_queue_exit(&l->ring); /* cancels whatever is still in flight */
    /* Connections left only if the drain timed out. */
    struct list *node, *tmp;
    list_for_each_safe(node, tmp, &l->conns)
        conn_close(l, list_entry(node, struct conn, link));
    while (l->nspare)
        free(l->spare[--l->nspare]);
    if (l->br)
        munmap(l->br, l->br_size);
    free(l->bufs);
    server_add_thread_totals(l->srv, l->index, &l->totals);
}

static void *loop_thread(void *p)
{
    struct uring_loop *l = p;
    /* SINGLE_ISSUER: the ring must be set up by the thread that submits to it. */
    l->error = loop_init(l, l->srv, l->index);
    gate_arrive(l->gate);
    if (l->error == 0)
        l->error = loop_run(l);
    loop_finish(l);
    return NULL;
}

static int run_rings(struct server *srv, bool sqpoll)
{
    unsigned n = srv->cfg->threads ? srv->cfg->threads : 1;
    struct uring_loop *loops = calloc(n, sizeof *loops);
    if (!loops)
        return server_fail(srv, "calloc", -ENOMEM);
    atomic_store(&srv->stats->threads_reported, n);
    const char *hook = getenv("ECHOBENCH_URING_FAIL_HANDOFF");
    bool fail_handoff = hook && strcmp(hook, "1") == 0;
    struct start_gate gate = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    for (unsigned i = 0; i < n; i++) {
        loops[i] = (struct uring_loop){.srv = srv, .index = i, .all = loops, .nloops = n,
                                       .gate = &gate, .sqpoll = sqpoll,
                                       .fail_handoff = fail_handoff};
        list_init(&loops[i].conns);
        list_init(&loops[i].starved);
    }
    pthread_attr_t attr;
    int err = server_thread_attr(srv, &attr);
    unsigned started = 1;
    if (err == 0) {
        for (; started < n; started++) {
            int e = pthread_create(&loops[started].tid, &attr, loop_thread, &loops[started]);
            if (e != 0) {
                err = server_fail(srv, "pthread_create", -e); /* also requests the stop */
                break;
            }
        }
        pthread_attr_destroy(&attr);
    }
    /* Ring 0 on this thread, once every ring exists (ring 0 hands connections to them). */
    if (err == 0)
        err = loop_init(&loops[0], srv, 0);
    gate_open(&gate, started - 1);
    if (err == 0)
        err = loop_run(&loops[0]);
    loop_finish(&loops[0]); /* lets the other rings finish too, whatever happened */
    gate_handoffs_done(&gate);
    for (unsigned i = 1; i < started; i++) {
        pthread_join(loops[i].tid, NULL);
        if (err == 0)
            err = loops[i].error;
    }
    if (loops[0].setup_mode)
        snprintf(srv->stats->note, sizeof srv->stats->note, "ring=%s%s", loops[0].setup_mode,
                 fail_handoff ? " fail_handoff" : "");
    for (unsigned i = 0; i < n; i++)
        loop_destroy(&loops[i]);
    free(loops);
    return err;
}

static int uring_run(struct server *srv)
{
    return run_rings(srv, false);
}

static int uring_sqpoll_run(struct server *srv)
{
    return run_rings(srv, true);
}

/* io_uring with provided buffer rings (5.19) and multishot accept; the model asks for 6.0 or
 * later. With sqpoll, a ring with a submission-polling thread as well. */
static int probe(char *why, size_t len, bool sqpoll)
{
    struct utsname u;
    unsigned major = 0, minor = 0;
    if (uname(&u) == 0 && sscanf(u.release, "%u.%u", &major, &minor) == 2
        && (major < 6)) {
        snprintf(why, len, "Linux %s is too old: the uring model needs 6.0 or later", u.release);
        return -ENOSYS;
    }
    struct uring_loop *probe = calloc(1, sizeof *probe);
    if (!probe)
        return -ENOMEM;
    int ret = io_uring_queue_init(8, &probe->ring, 0);
    if (ret < 0) {
        free(probe);
        snprintf(why, len, "io_uring_setup failed: %s (io_uring missing, disabled by "
                           "kernel.io_uring_disabled, or blocked by seccomp)", strerror(-ret));
        return ret;
    }
    ret = buffers_setup(probe);
    if (probe->br)
        munmap(probe->br, probe->br_size);
    free(probe->bufs);
    io_uring_queue_exit(&probe->ring);
    if (ret < 0) {
        free(probe);
        snprintf(why, len, "cannot register a provided buffer ring: %s", strerror(-ret));
        return ret;
    }
    if (sqpoll) {
        struct io_uring_params p = {.flags = IORING_SETUP_SQPOLL, .sq_thread_idle = 1};
        ret = io_uring_queue_init_params(8, &probe->ring, &p);
        if (ret == 0)
            io_uring_queue_exit(&probe->ring);
        else
            snprintf(why, len, "an SQPOLL ring is refused: %s", strerror(-ret));
    }
    free(probe);
    return ret;
}

static int uring_probe(char *why, size_t len)
{
    return probe(why, len, false);
}

static int uring_sqpoll_probe(char *why, size_t len)
{
    return probe(why, len, true);
}

const struct server_model model_uring = {
    .name = "uring",
    .summary = "io_uring: multishot accept, provided buffers, batched submits",
    .kind = MODEL_EVENT_LOOP,
    .threads_meaning = "rings",
    .probe = uring_probe,
    .run = uring_run,
};

const struct server_model model_uring_sqpoll = {
    .name = "uring_sqpoll",
    .summary = "the uring model with a kernel thread polling submissions (SQPOLL)",
    .kind = MODEL_EVENT_LOOP,
    .threads_meaning = "rings",
    .probe = uring_sqpoll_probe,
    .run = uring_sqpoll_run,
};
