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
 *   - Multishot receive with provided buffers: one request per connection produces a completion
 *     for every chunk that arrives, and the kernel picks the buffer from a ring of buffers
 *     registered up front (IORING_REGISTER_PBUF_RING). Memory for received data is that fixed
 *     pool - BUF_COUNT buffers of 16 KiB per ring - however many connections there are; an idle
 *     connection holds no buffer at all.
 *   - Sends: each received buffer is sent back as it is, from the pool, with at most one send in
 *     flight per connection (a second would race the first and could reorder bytes); further
 *     buffers wait in a per-connection FIFO, and a short send is continued from where it stopped.
 *     A buffer goes back to the ring as soon as it has been sent in full.
 *   - Back-pressure: a connection whose client does not read holds its buffers; once it holds
 *     MAX_HELD of them, its receive is cancelled and re-armed only when the client has taken them.
 *     A non-reading client thus ties up at most MAX_HELD buffers (and at most BUF_COUNT /
 *     MAX_HELD such clients can hold buffers at once; beyond that, others wait for buffers).
 *   - When the ring runs out of buffers, a receive completes with ENOBUFS and stops; the
 *     connection waits on a list and is re-armed as buffers come back. A multishot request that
 *     ends for any other reason (no IORING_CQE_F_MORE) is re-armed too. No byte is lost or
 *     duplicated: data not yet received stays in the socket.
 *   - The ring is set up with SINGLE_ISSUER and DEFER_TASKRUN when the kernel accepts them
 *     (completion work runs when this thread asks for completions, not by interrupting it),
 *     falling back to COOP_TASKRUN, then to no flags. The summary says which (note=...).
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
 *   (measured: 453/28/19 of 500 over three rings); the hand-off splits them evenly.
 *
 * What limits it
 *   Like every event loop, one ring is one core, and per-message work or a blocking wait
 *   (--work-us, --sleep-us) stalls all of its connections. io_uring needs Linux 6.0 or later for
 *   multishot receive; where io_uring is missing or forbidden (old kernel,
 *   kernel.io_uring_disabled, seccomp), echo-server says why and exits with status 3.
 *
 * Try it
 *   echo-server --model uring --port 7007 [--threads 2]
 *   nc 127.0.0.1 7007
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "server.h"

#define SQ_ENTRIES 4096
#define CQ_ENTRIES 32768
#define BUF_COUNT 1024          /* provided buffers per ring (a power of two) */
#define BUF_SIZE ECHO_BUF_SIZE
#define BUF_GROUP 1
#define MAX_HELD 4              /* unsent buffers a connection may hold before reading pauses */
#define ACCEPT_PAUSE_NS 50000000LL
#define NO_BUF 0xFFFF
#define SQPOLL_IDLE_MS 10       /* uring_sqpoll: how long the kernel thread polls when idle */

/* The operation a completion belongs to, in the low bits of user_data; the rest is the
 * connection pointer (NULL for the ring's own requests). */
enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_STOP, OP_PAUSE, OP_CANCEL, OP_ADOPT, OP_HANDOFF };
#define OP_MASK 7u
/* OP_ADOPT and OP_HANDOFF carry a descriptor instead of a pointer: (fd << 3) | op. */

struct conn {
    int fd;
    uint16_t head, tail;   /* FIFO of received buffers not yet sent in full */
    uint16_t held;
    uint32_t sent;         /* bytes of the head buffer already sent */
    bool recv_armed;       /* a multishot receive is active */
    bool recv_paused;      /* back-pressure: receive cancelled until buffers are sent */
    bool send_in_flight;
    bool eof;              /* the client half-closed: close once everything is sent */
    bool closing;          /* an error: close as soon as no request is in flight */
    bool starved;          /* on the list of connections waiting for buffers */
    struct echo_stream stream;
    uint64_t echoed;
    struct conn *prev, *next; /* all connections of the ring */
    struct conn *starved_next;
};

/* Rings wait here after setting up, until every ring is ready (or start-up failed). */
struct start_gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned ready;
    bool open;
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

struct uring_loop {
    struct server *srv;
    unsigned index;
    struct uring_loop *all; /* every ring, for ring 0's hand-offs */
    unsigned nloops, next_target;
    struct start_gate *gate; /* every ring is set up before ring 0 accepts */
    bool sqpoll;             /* the uring_sqpoll variant */
    struct io_uring ring;
    bool ring_ready;
    struct io_uring_buf_ring *br;
    size_t br_size;
    char *bufs;
    uint16_t next_bid[BUF_COUNT];   /* FIFO links between held buffers */
    uint32_t buf_len[BUF_COUNT];    /* bytes received into each held buffer */
    int returned;                   /* buffers handed back since the last advance */
    unsigned available;             /* buffers the kernel can pick now (published, unused) */
    struct conn conns;              /* list head */
    struct conn *starved;           /* connections waiting for buffers */
    bool stopping;
    struct server_thread_totals totals;
    const char *setup_mode;
    pthread_t tid;
    int error;
};

static inline uint64_t tag(struct conn *c, enum op op)
{
    return (uint64_t)(uintptr_t)c | op;
}

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

static void arm_accept(struct uring_loop *l)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_multishot_accept(sqe, l->srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, OP_ACCEPT);
}

static void arm_recv(struct uring_loop *l, struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, tag(c, OP_RECV));
    c->recv_armed = true;
    c->recv_paused = false;
}

static void cancel_recv(struct uring_loop *l, struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_cancel64(sqe, tag(c, OP_RECV), 0);
    io_uring_sqe_set_data64(sqe, OP_CANCEL);
}

static void send_head(struct uring_loop *l, struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_send(sqe, c->fd, buf_addr(l, c->head) + c->sent, l->buf_len[c->head] - c->sent,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, tag(c, OP_SEND));
    c->send_in_flight = true;
}

/* Frees the connection once nothing of it is in flight; cancels its receive first if needed. */
static void conn_retire(struct uring_loop *l, struct conn *c)
{
    if (c->recv_armed) {
        if (!c->recv_paused) {
            cancel_recv(l, c);
            c->recv_paused = true; /* the cancellation is on its way */
        }
        return;
    }
    if (c->send_in_flight)
        return;
    while (c->held > 0) {
        uint16_t bid = c->head;
        c->head = l->next_bid[bid];
        c->held--;
        buf_return(l, bid);
    }
    if (c->starved) {
        for (struct conn **p = &l->starved; *p; p = &(*p)->starved_next)
            if (*p == c) {
                *p = c->starved_next;
                break;
            }
    }
    c->prev->next = c->next;
    c->next->prev = c->prev;
    close(c->fd);
    l->totals.echoed += c->echoed;
    free(c);
}

/* Takes a connected socket into this ring. */
static void adopt(struct uring_loop *l, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        l->totals.shed++;
        return;
    }
    l->totals.served++;
    c->fd = fd;
    c->head = c->tail = NO_BUF;
    c->next = l->conns.next;
    c->prev = &l->conns;
    l->conns.next->prev = c;
    l->conns.next = c;
    arm_recv(l, c);
}

/* Ring 0: serve the connection here or pass it to the next ring, in turn. */
static void dispatch(struct uring_loop *l, int fd)
{
    struct uring_loop *target = &l->all[l->next_target++ % l->nloops];
    if (target == l || !target->ring_ready) { /* (a ring that failed to start is stopping) */
        adopt(l, fd);
        return;
    }
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_msg_ring(sqe, target->ring.ring_fd, (unsigned)fd,
                           ((uint64_t)fd << 3) | OP_ADOPT, 0);
    io_uring_sqe_set_data64(sqe, ((uint64_t)fd << 3) | OP_HANDOFF);
}

static void on_accept(struct uring_loop *l, struct io_uring_cqe *cqe)
{
    if (cqe->res >= 0) {
        l->totals.accepted++;
        net_set_nodelay(cqe->res);
        dispatch(l, cqe->res);
    }
    if (cqe->flags & IORING_CQE_F_MORE || l->stopping)
        return;
    if (cqe->res < 0 && net_accept_error_is_exhaustion(-cqe->res)) {
        /* Out of descriptors: keep serving, and accept again after a pause. */
        static struct __kernel_timespec pause = {.tv_nsec = ACCEPT_PAUSE_NS};
        l->totals.pauses++;
        struct io_uring_sqe *sqe = get_sqe(l);
        io_uring_prep_timeout(sqe, &pause, 0, 0);
        io_uring_sqe_set_data64(sqe, OP_PAUSE);
        return;
    }
    arm_accept(l); /* the multishot accept ended: start another */
}

static void on_recv(struct uring_loop *l, struct conn *c, struct io_uring_cqe *cqe)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more)
        c->recv_armed = false;
    if (cqe->res > 0) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        l->available--;
        if (c->closing) {
            buf_return(l, bid);
        } else {
            echo_account(&l->srv->cfg->work, &c->stream, (size_t)cqe->res);
            l->buf_len[bid] = (uint32_t)cqe->res;
            l->next_bid[bid] = NO_BUF;
            if (c->held++ == 0)
                c->head = bid;
            else
                l->next_bid[c->tail] = bid;
            c->tail = bid;
            if (!c->send_in_flight)
                send_head(l, c);
            if (c->held >= MAX_HELD && !c->recv_paused) {
                /* Back-pressure: the client is not keeping up. Stop receiving until it has
                 * taken what it has (on_send re-arms). */
                if (more)
                    cancel_recv(l, c);
                c->recv_paused = true;
            }
        }
    } else if (cqe->res == 0) {
        c->eof = true;
    } else if (cqe->res == -ENOBUFS) {
        if (c->closing) {
            conn_retire(l, c); /* its receive is over: nothing left to cancel */
            return;
        }
        /* The pool is empty: wait for buffers to come back (see the end of the batch). */
        if (!c->starved) {
            c->starved = true;
            c->starved_next = l->starved;
            l->starved = c;
        }
        return;
    } else if (cqe->res != -ECANCELED) {
        c->closing = true; /* reset or other error */
    }
    if (c->closing || (c->eof && !c->held && !c->send_in_flight)) {
        conn_retire(l, c);
        return;
    }
    if (!c->recv_armed && !c->eof && !c->recv_paused && !l->stopping)
        arm_recv(l, c);
    else if (!c->recv_armed && c->recv_paused && c->held < MAX_HELD && !c->eof)
        arm_recv(l, c); /* a cancellation that raced with the last sends */
}

static void on_send(struct uring_loop *l, struct conn *c, struct io_uring_cqe *cqe)
{
    c->send_in_flight = false;
    if (cqe->res < 0 || c->closing) {
        c->closing = true;
        conn_retire(l, c);
        return;
    }
    c->echoed += (uint64_t)cqe->res;
    c->sent += (uint32_t)cqe->res;
    if (c->sent == l->buf_len[c->head]) {
        uint16_t bid = c->head;
        c->head = l->next_bid[bid];
        c->held--;
        c->sent = 0;
        buf_return(l, bid);
    }
    if (c->held > 0)
        send_head(l, c); /* the rest of a short send, or the next buffer */
    else if (c->eof)
        conn_retire(l, c);
    else if (c->recv_paused && !c->recv_armed && !l->stopping)
        arm_recv(l, c); /* the client caught up: read again */
}

/* After a batch of completions: publish returned buffers, and re-arm as many starved
 * connections as there are buffers available (each needs at least one; more would only fail
 * again). Counted, not just returned in this batch: an ENOBUFS can complete after the batch in
 * which the last buffers came back. */
static void after_batch(struct uring_loop *l)
{
    if (l->returned) {
        io_uring_buf_ring_advance(l->br, l->returned);
        l->available += (unsigned)l->returned;
        l->returned = 0;
    }
    for (unsigned budget = l->available; l->starved && budget > 0; budget--) {
        struct conn *c = l->starved;
        l->starved = c->starved_next;
        c->starved = false;
        if (!c->recv_armed && !c->closing && !c->eof && !l->stopping)
            arm_recv(l, c);
    }
}

static void handle(struct uring_loop *l, struct io_uring_cqe *cqe)
{
    uint64_t data = io_uring_cqe_get_data64(cqe);
    struct conn *c = (struct conn *)(uintptr_t)(data & ~(uint64_t)OP_MASK);
    switch (data & OP_MASK) {
    case OP_ACCEPT: on_accept(l, cqe); break;
    case OP_RECV: on_recv(l, c, cqe); break;
    case OP_SEND: on_send(l, c, cqe); break;
    case OP_STOP: l->stopping = true; break;
    case OP_PAUSE:
        if (!l->stopping)
            arm_accept(l);
        break;
    case OP_CANCEL: break; /* the cancelled request reports on its own */
    case OP_ADOPT: adopt(l, (int)(data >> 3)); break; /* from ring 0 */
    case OP_HANDOFF:
        if (cqe->res < 0)
            adopt(l, (int)(data >> 3)); /* the target could not take it: keep it */
        break;
    }
}

static int loop_run(struct uring_loop *l)
{
    while (!l->stopping) {
        int ret = io_uring_submit_and_wait(&l->ring, 1);
        if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EBUSY)
            return server_fail(l->srv, "io_uring_submit_and_wait", ret);
        unsigned head, seen = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&l->ring, head, cqe) {
            handle(l, cqe);
            seen++;
        }
        io_uring_cq_advance(&l->ring, seen);
        after_batch(l);
    }
    return 0;
}

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
    io_uring_sqe_set_data64(sqe, OP_STOP);
    if (index == 0)
        arm_accept(l);
    return 0;
}

static void loop_destroy(struct uring_loop *l)
{
    while (l->conns.next != &l->conns) {
        struct conn *c = l->conns.next;
        c->prev->next = c->next;
        c->next->prev = c->prev;
        close(c->fd);
        l->totals.echoed += c->echoed;
        free(c);
    }
    if (l->ring_ready)
        io_uring_queue_exit(&l->ring); /* cancels whatever is still in flight */
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
    return NULL;
}

static int run_rings(struct server *srv, bool sqpoll)
{
    unsigned n = srv->cfg->threads ? srv->cfg->threads : 1;
    struct uring_loop *loops = calloc(n, sizeof *loops);
    if (!loops)
        return server_fail(srv, "calloc", -ENOMEM);
    atomic_store(&srv->stats->threads_reported, n);
    struct start_gate gate = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    for (unsigned i = 0; i < n; i++) {
        loops[i] = (struct uring_loop){.srv = srv, .index = i, .all = loops, .nloops = n,
                                       .gate = &gate, .sqpoll = sqpoll};
        loops[i].conns.next = loops[i].conns.prev = &loops[i].conns;
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
    for (unsigned i = 1; i < started; i++) {
        pthread_join(loops[i].tid, NULL);
        if (err == 0)
            err = loops[i].error;
    }
    if (loops[0].setup_mode)
        snprintf(srv->stats->note, sizeof srv->stats->note, "ring=%s", loops[0].setup_mode);
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

/* io_uring with provided buffer rings (5.19) and multishot receive (6.0); with sqpoll, a ring
 * with a submission-polling thread as well. */
static int probe(char *why, size_t len, bool sqpoll)
{
    struct utsname u;
    unsigned major = 0, minor = 0;
    if (uname(&u) == 0 && sscanf(u.release, "%u.%u", &major, &minor) == 2
        && (major < 6)) {
        snprintf(why, len, "Linux %s is too old: multishot receive needs 6.0 or later", u.release);
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
    .summary = "io_uring: multishot accept and receive, provided buffers, batched submits",
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
