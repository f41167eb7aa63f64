/*
 * leader_followers.c - Leader/Followers: N threads share one epoll set; whoever takes an event
 * does the whole job for it.
 *
 * How it works
 *   All connections, the listener and stop_fd are in one epoll set, and every one of the N
 *   threads sleeps in epoll_wait() on it. The thread that returns with an event is the leader
 *   of that moment; it stops leading and becomes a worker at once - it receives, pays the
 *   message's cost (--work-us CPU work, --sleep-us blocking wait), echoes - and meanwhile
 *   another sleeping thread (a follower) returns with the next event and becomes the next
 *   leader. When the worker is done it re-arms the connection and goes back to epoll_wait().
 *
 *   EPOLLONESHOT is what makes this safe. A connection is registered with it: once an event of
 *   that connection has been delivered to one thread, the kernel disables the connection in the
 *   set, and no other thread can receive an event for it until the owner re-arms it with
 *   EPOLL_CTL_MOD. So at most one thread touches a connection at a time - its bytes stay in
 *   order and its state needs no lock. The re-arm is level-style: if more input (or room for
 *   output) is already there, the event is reported again at once, so the owner reads once
 *   per event (NB_READ_ONCE) and a busy connection cannot keep a thread to itself. A client
 *   that does not read gets its output parked (nbecho.h) and is re-armed for EPOLLOUT only:
 *   nothing is read from it, and nothing wakes a thread, until it takes its bytes.
 *
 *   The hand-over between threads goes through the kernel (its epoll lock orders the owner's
 *   re-arm before the next thread's wake-up), which the C memory model - and ThreadSanitizer -
 *   cannot see; a release store before the re-arm and an acquire load after the wake-up say
 *   it in C. On x86-64 both are plain moves: no lock and no atomic read-modify-write per
 *   message.
 *
 *   The listener is registered with EPOLLONESHOT too: exactly one thread gets a new
 *   connection's event, accepts a batch (SERVER_ACCEPT_BATCH), registers them and re-arms the
 *   listener - accept() is serialised by the socket's lock anyway, so nothing is lost by
 *   letting one thread at a time do it. EPOLLEXCLUSIVE does not apply: it picks one of several
 *   epoll sets watching the same descriptor (epoll's --threads with a shared listener), and
 *   here there is one set; a plain level-triggered listener would wake a chain of threads that
 *   race for the same connection, all but one of them for an EAGAIN. When descriptors run out
 *   the accepting thread leaves the listener disarmed and re-arms it after the pause (its own
 *   epoll_wait() times out then).
 *
 *   How it differs from a thread pool: no queue and no hand-off. threadpool's acceptor hands a
 *   connection to a worker through a queue and a condition variable (a thread switch per
 *   connection; here, with reactor_pool, per batch); here the thread that learns of the event
 *   is the one that serves it, with the data hot in its cache, and the only waiting is in
 *   epoll_wait(). Unlike threadpool, no thread is tied to a connection: N threads serve any
 *   number of connections, and an idle client costs a small structure, as in epoll.
 *
 *   --threads N, default: the number of CPUs, at least 2. Every thread does I/O and work, so
 *   beyond one per core they only add switches when the work is CPU; at least two so that one
 *   thread paying a cost - or sleeping - never stops the server.
 *
 * What limits it
 *   N threads serve N messages at a time: when all of them sleep in --sleep-us waits, every
 *   other connection waits (unlike reactor_pool, whose I/O loop never blocks; give it more
 *   threads: --threads 64). Each event costs an epoll_ctl(MOD) system call to re-arm, on top of
 *   the recv and send, which a single reactor with edge-triggered registration does not pay;
 *   and with fewer busy connections than threads the leader's wake-up is a thread switch.
 *
 * Try it
 *   echo-server --model leader_followers --port 7007 --threads 2 --msg-size 1 --sleep-us 2000000
 *   nc 127.0.0.1 7007      # type a line: each byte is a 2 s message, served by one thread;
 *   nc 127.0.0.1 7007      # a second client is served by the other thread meanwhile,
 *   nc 127.0.0.1 7007      # and a third waits until one of them is free
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "list.h"
#include "nbecho.h"
#include "server.h"

struct conn {
    struct nb_conn nb;     /* the socket and its echo state: one thread at a time */
    atomic_uint turns;     /* the hand-over between threads, written at each re-arm */
    struct list link;      /* every connection, under shared.lock (once per connection) */
};

struct shared {
    struct server *srv;
    int ep;
    pthread_mutex_t lock;
    struct list conns;
};

struct follower {
    struct shared *sh;
    unsigned index;
    uint64_t accept_resume_ns; /* 0, or when this thread re-arms the listener after EMFILE */
    struct server_thread_totals totals;
    struct nb_loop nb;         /* this thread's receive buffer and spare parked buffers */
};

/* ThreadSanitizer models a descriptor number as a memory location that epoll_ctl() reads and
 * close() writes; a re-arm and the next owner's close of the same socket may overlap, safely
 * (see serve), and these keep it from reporting that. Nothing in other builds. */
#if defined(__SANITIZE_THREAD__)
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
static void tsan_ignore_begin(void) { AnnotateIgnoreReadsBegin(__FILE__, __LINE__); }
static void tsan_ignore_end(void) { AnnotateIgnoreReadsEnd(__FILE__, __LINE__); }
#else
static void tsan_ignore_begin(void) {}
static void tsan_ignore_end(void) {}
#endif

/* epoll_event.data.ptr values that are not connections. */
static char listener_tag, stop_tag;

static int arm(struct shared *sh, int op, int fd, uint32_t events, void *ptr)
{
    struct epoll_event ev = {.events = events | EPOLLONESHOT, .data.ptr = ptr};
    return epoll_ctl(sh->ep, op, fd, &ev) == 0 ? 0 : -errno;
}

static int adopt(void *arg, int fd)
{
    struct follower *f = arg;
    struct shared *sh = f->sh;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->nb.fd = fd;
    pthread_mutex_lock(&sh->lock);
    list_insert_tail(&sh->conns, &c->link);
    pthread_mutex_unlock(&sh->lock);
    /* From here another thread may take it: nothing of c is touched after this call. */
    int err = arm(sh, EPOLL_CTL_ADD, fd, EPOLLIN, c);
    if (err < 0) {
        pthread_mutex_lock(&sh->lock);
        list_remove(&c->link);
        pthread_mutex_unlock(&sh->lock);
        free(c);
    }
    return err;
}

static void conn_close(struct follower *f, struct conn *c)
{
    pthread_mutex_lock(&f->sh->lock);
    list_remove(&c->link);
    pthread_mutex_unlock(&f->sh->lock);
    nb_close(&f->nb, &c->nb, &f->totals);
    free(c);
}

/* This thread took an event of c: it owns c until it re-arms or closes it. */
static void serve(struct follower *f, struct conn *c)
{
    atomic_load_explicit(&c->turns, memory_order_acquire); /* the previous owner's writes */
    /* Armed for output only while output is parked: then any event (writable, or an error)
     * means try to send it. Once it is all sent, one read, as for any event - not
     * nb_writable's read to EAGAIN, which a client that keeps sending and reads its echo would
     * never let end: the re-arm reports input that is already there again. */
    enum nb_next next = c->nb.pending ? nb_flush(&f->nb, &c->nb) : NB_WANT_INPUT;
    if (next == NB_WANT_INPUT)
        next = nb_readable(&f->nb, &c->nb, NB_READ_ONCE);
    if (next != NB_DONE) {
        int fd = c->nb.fd;
        atomic_store_explicit(&c->turns, 0, memory_order_release); /* for the next owner */
        /* From here c is not ours: another thread may take it, even close it, before the
         * re-arm returns (the kernel holds its own reference to the socket meanwhile). */
        tsan_ignore_begin();
        int err = arm(f->sh, EPOLL_CTL_MOD, fd, next == NB_WANT_OUTPUT ? EPOLLOUT : EPOLLIN, c);
        tsan_ignore_end();
        if (err == 0)
            return;
    }
    conn_close(f, c);
}

static void on_listener(struct follower *f)
{
    struct shared *sh = f->sh;
    if (server_accept_batch(sh->srv->listen_fd, &f->totals, &f->accept_resume_ns, adopt, f))
        return; /* out of descriptors: left disarmed until this thread's pause is over */
    int err = arm(sh, EPOLL_CTL_MOD, sh->srv->listen_fd, EPOLLIN, &listener_tag);
    if (err < 0)
        server_fail(sh->srv, "epoll_ctl", err);
}

static int follower_run(void *item)
{
    struct follower *f = item;
    struct shared *sh = f->sh;
    for (;;) {
        int timeout = server_accept_pause_ms(&f->accept_resume_ns);
        if (timeout == 0) {
            int err = arm(sh, EPOLL_CTL_MOD, sh->srv->listen_fd, EPOLLIN, &listener_tag);
            if (err < 0)
                return server_fail(sh->srv, "epoll_ctl", err);
            timeout = -1;
        }
        /* One event per wake-up: the leader takes one and becomes its worker; the next event
         * is another thread's. */
        struct epoll_event ev;
        int n = epoll_wait(sh->ep, &ev, 1, timeout);
        if (n < 0 && errno != EINTR)
            return server_fail(sh->srv, "epoll_wait", -errno);
        if (n <= 0)
            continue;
        if (ev.data.ptr == &stop_tag)
            return 0; /* level-triggered and never drained: every thread sees it */
        if (ev.data.ptr == &listener_tag)
            on_listener(f);
        else
            serve(f, ev.data.ptr);
    }
}

static int leader_followers_run(struct server *srv)
{
    unsigned n = srv->cfg->threads;
    if (n == 0) {
        n = server_cpu_count();
        n = n < 2 ? 2 : n;
    }
    struct shared sh = {.srv = srv, .ep = -1};
    list_init(&sh.conns);
    pthread_mutex_init(&sh.lock, NULL);
    struct follower *fs = calloc(n, sizeof *fs);
    if (!fs)
        return server_fail(srv, "calloc", -ENOMEM);
    for (unsigned i = 0; i < n; i++)
        fs[i] = (struct follower){.sh = &sh, .index = i, .nb = {.work = &srv->cfg->work}};

    int err = net_set_nonblock(srv->listen_fd);
    if (err < 0) {
        err = server_fail(srv, "fcntl", err);
    } else if ((sh.ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        err = server_fail(srv, "epoll_create1", -errno);
    } else {
        struct epoll_event stop = {.events = EPOLLIN, .data.ptr = &stop_tag};
        if (epoll_ctl(sh.ep, EPOLL_CTL_ADD, srv->stop_fd, &stop) != 0
            || arm(&sh, EPOLL_CTL_ADD, srv->listen_fd, EPOLLIN, &listener_tag) < 0)
            err = server_fail(srv, "epoll_ctl", -errno);
    }
    if (err == 0) {
        atomic_store(&srv->stats->threads_reported, n);
        err = server_run_threads(srv, n, fs, sizeof *fs, follower_run);
    }

    /* Every thread has returned: what is left is this thread's to close. */
    while (!list_empty(&sh.conns))
        conn_close(&fs[0], list_entry(list_first(&sh.conns), struct conn, link));
    for (unsigned i = 0; i < n; i++) {
        nb_loop_destroy(&fs[i].nb);
        fs[i].totals.served = fs[i].totals.accepted;
        server_add_thread_totals(srv, i, &fs[i].totals);
    }
    if (sh.ep >= 0)
        close(sh.ep);
    pthread_mutex_destroy(&sh.lock);
    free(fs);
    return err;
}

const struct server_model model_leader_followers = {
    .name = "leader_followers",
    .summary = "N threads share one epoll set (EPOLLONESHOT): the thread that takes an event "
               "serves it",
    /* Hybrid, not threads: its threads do non-blocking I/O on one shared epoll set, so any
     * number of connections is served, as by an event loop (and tested so: loadgen.scale). */
    .kind = MODEL_HYBRID,
    .threads_meaning = "threads",
    .run = leader_followers_run,
};
