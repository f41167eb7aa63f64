/*
 * worker.c - one load-generator thread: an epoll loop over its own connections.
 *
 * Per connection, the byte stream sent is a slice of the shared random pattern; every byte that
 * comes back is compared with the byte sent at that position. Messages are SIZE-byte spans of
 * the stream; a message's latency ends when its last byte has come back (echoes arrive in order,
 * so the oldest outstanding message is always the next to complete).
 *
 * Closed loop: each connection keeps --pipeline messages in flight; a message starts when it is
 * handed to send(). Open loop: messages are due at scheduled times (uniform or Poisson); a due
 * message goes out on a connection of this thread that has room, or waits in a FIFO until one
 * has; either way its latency starts at its scheduled time, so a stalled server cannot hide its
 * stall (no coordinated omission).
 *
 * The hot path - receive, compare, time, send - does no allocation, takes no lock and touches
 * no atomic; the loop reads the clock once per received chunk.
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "clock.h"
#include "list.h"
#include "loadgen.h"

#define RX_BUF_SIZE 65536
#define MAX_EVENTS 256
#define TICK_NS (20 * NS_PER_MS)        /* timeouts and reconnects are checked this often */
#define RETRY_BACKOFF_NS (100 * NS_PER_MS) /* after an error, before connecting again */
#define LATE_NS NS_PER_MS               /* open loop: sent this much after its time = late */
/* Sleeping workers: inside the window no sleep lasts longer than this, so that a stall that
 * starts while a worker sleeps is seen within 1 ms of its start (as the wake-up's lateness).
 * It costs a wake-up only to a worker that has had nothing to do for 1 ms. */
#define STALL_STEP_NS NS_PER_MS

enum conn_state { CONN_IDLE, CONN_CONNECTING, CONN_OPEN };

struct conn {
    int fd;
    uint8_t state;
    bool want_out;          /* EPOLLOUT is registered: the socket buffer was full */
    uint32_t id;            /* connection number, for its pattern offset */
    uint32_t streams;       /* connections made so far on this slot */
    uint32_t in_flight;     /* messages sent (or being sent) whose echo is incomplete */
    uint32_t oldest;        /* ring index of the oldest in-flight message's start time */
    uint64_t *starts;       /* ring of --pipeline start times */
    uint64_t origin;        /* pattern offset of this stream's first byte */
    uint64_t tx_goal;       /* bytes of the messages issued so far */
    uint64_t tx;            /* bytes handed to send() so far */
    uint64_t rx;            /* bytes echoed and verified so far */
    uint64_t msgs_done;     /* on this stream, for --reconnect */
    uint64_t last_progress; /* when the connection last had reason to expect nothing more */
    uint64_t connect_start;
    uint64_t retry_at;
    /* OPEN: in worker.room while it has room (open loop); CONNECTING: in worker.connecting,
     * oldest connect first. list_linked() tells. */
    struct list room_link;
};

struct worker {
    struct lg_worker *w;
    const struct lg_config *cfg;
    struct lg_result *res;
    const uint8_t *pattern;
    int ep;
    struct conn *conns;
    uint64_t *starts_block;
    uint8_t *rx;
    enum lg_phase phase;
    struct lg_window win;   /* re-read every turn of the loop: Ctrl-C moves its end */
    uint64_t drain_end, next_tick, cpu_at_start;
    uint64_t last_read;     /* the loop's previous clock read: a longer gap is a stall */
    uint64_t outstanding;   /* messages issued or queued and not completed */
    bool open_loop;
    /* open loop */
    uint64_t next_due;
    uint64_t scheduled_total;
    double mean_gap_ns;
    uint64_t rng;
    uint64_t *queue;        /* due messages waiting for room: their scheduled times */
    size_t queue_cap, queue_head, queue_len;
    struct list room;       /* open connections with room for a message, round robin */
    struct list connecting; /* connections in CONN_CONNECTING, in the order of connect() */
    unsigned nconnecting;   /* their number */
    /* --interval */
    struct hist ihist;
    uint64_t ireqs, iindex, next_interval;
};

static inline bool in_window(const struct worker *wk, uint64_t t)
{
    return lg_in_window(&wk->win, t);
}

/* --- platform stalls --------------------------------------------------------------------------- */

/* The rare path: logs [from, to), the part inside the window, if it is still a stall. The log
 * grows by doubling (never per message: only after a stall). */
static void stall_seen(struct worker *wk, uint64_t from, uint64_t to)
{
    if (from < wk->win.start)
        from = wk->win.start;
    if (to > wk->win.end)
        to = wk->win.end;
    if (to <= from || to - from <= LG_STALL_NS)
        return;
    struct lg_result *r = wk->res;
    if (r->nstalls == r->stalls_cap) {
        size_t cap = r->stalls_cap ? 2 * r->stalls_cap : 256;
        struct lg_stall *log = cap <= LG_STALL_LOG_MAX ? realloc(r->stalls, cap * sizeof *log)
                                                       : NULL;
        if (!log) {
            r->stalls_lost++;
            return;
        }
        r->stalls = log;
        r->stalls_cap = cap;
    }
    r->stalls[r->nstalls++] = (struct lg_stall){from, to};
}

/* Every clock read of the loop goes through here: consecutive reads are at most one system
 * call (or a sleep, see wait_events) apart, so a long gap between two of them is a stall. */
static inline uint64_t wk_now(struct worker *wk)
{
    uint64_t now = clock_now_ns();
    if (now - wk->last_read > LG_STALL_NS)
        stall_seen(wk, wk->last_read, now);
    wk->last_read = now;
    return now;
}

/* Every latency of the window goes through here: the main histogram and, with --cost-every,
 * the class of the message - msgno is its number on its connection, from 1. */
static inline void record_latency(struct worker *wk, uint64_t latency, uint64_t msgno)
{
    hist_record(&wk->res->latency, latency);
    if (wk->cfg->cost_every)
        hist_record(msgno % wk->cfg->cost_every == 0 ? &wk->res->costly : &wk->res->cheap,
                    latency);
}

static void count_error(struct worker *wk, enum lg_error kind)
{
    wk->res->errors[kind]++;
}

/* Open loop: a connection with room joins the back of the room list (once). */
static void room_append(struct worker *wk, struct conn *c)
{
    if (!list_linked(&c->room_link))
        list_insert_tail(&wk->room, &c->room_link);
}

/* --- connections ------------------------------------------------------------------------------ */

static int watch(struct worker *wk, struct conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    return epoll_ctl(wk->ep, op, c->fd, &ev) == 0 ? 0 : -errno;
}

/* A well-mixed pattern offset per connection and stream, so no two streams line up. */
static uint64_t stream_origin(uint32_t id, uint32_t stream)
{
    uint64_t x = ((uint64_t)id << 32 | stream) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return x % LG_PATTERN_LEN;
}

/* The connection's messages that will never complete: those never sent (not a byte of them
 * handed to the kernel: unsent, and late) and those sent but not echoed in full (incomplete).
 * Each is timed up to now: a lower bound. */
static void count_unfinished(struct worker *wk, struct conn *c, uint64_t now)
{
    for (uint32_t i = 0; i < c->in_flight; i++) {
        uint64_t start = c->starts[(c->oldest + i) % wk->cfg->pipeline];
        if (!in_window(wk, start))
            continue;
        if ((c->msgs_done + i) * wk->cfg->size >= c->tx) {
            wk->res->unsent++;
            wk->res->late++;
        } else {
            wk->res->incomplete++;
        }
        record_latency(wk, now - start, c->msgs_done + i + 1);
    }
}

static void conn_close(struct worker *wk, struct conn *c, uint64_t now, bool error)
{
    if (c->state == CONN_IDLE)
        return;
    wk->nconnecting -= c->state == CONN_CONNECTING;
    list_remove(&c->room_link);
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    c->state = CONN_IDLE;
    /* Messages lost with the connection never complete: count them, and time them up to now
     * (a lower bound) so that a failing server cannot look fast. */
    count_unfinished(wk, c, now);
    wk->outstanding -= c->in_flight;
    c->in_flight = 0;
    c->retry_at = now + (error ? RETRY_BACKOFF_NS : 0);
}

/* A connect that failed (err: -errno), in the errors of the run and, during the set-up, by
 * kind. `pending`: it failed after connect() returned (SO_ERROR, or --timeout), which the
 * run's errors always count as connect errors. */
static void connect_failed(struct worker *wk, int err, bool pending)
{
    bool connect_kind = pending || err == -ECONNREFUSED || err == -ETIMEDOUT
                        || err == -EADDRNOTAVAIL || err == -ENETUNREACH || err == -EHOSTUNREACH;
    count_error(wk, connect_kind ? LG_ERR_CONNECT : LG_ERR_OTHER);
    if (wk->phase == LG_SETUP)
        wk->res->setup_errors[lg_connect_error_kind(err)]++;
}

static void conn_connect(struct worker *wk, struct conn *c, uint64_t now)
{
    now = wk_now(wk); /* connect latency starts here, not when the loop woke */
    const struct lg_config *cfg = wk->cfg;
    const struct net_addr *src = cfg->nsources ? &cfg->sources[c->id % cfg->nsources] : NULL;
    int fd = net_connect_from(&cfg->addr, src, true);
    if (wk->phase == LG_SETUP)
        wk->res->setup_attempts++;
    if (fd < 0) {
        connect_failed(wk, fd, false);
        c->retry_at = now + RETRY_BACKOFF_NS;
        return;
    }
    c->fd = fd;
    c->state = CONN_CONNECTING;
    list_insert_tail(&wk->connecting, &c->room_link);
    wk->nconnecting++;
    c->want_out = true;
    c->origin = stream_origin(c->id, c->streams++);
    c->tx_goal = c->tx = c->rx = 0;
    c->msgs_done = 0;
    c->oldest = 0;
    c->connect_start = now;
    if (watch(wk, c, EPOLL_CTL_ADD, EPOLLOUT | EPOLLIN) < 0) {
        count_error(wk, LG_ERR_OTHER);
        conn_close(wk, c, now, true);
    }
}

/* Open loop: the messages whose first byte the last send() handed to the kernel (stream bytes
 * from sent_before to c->tx) went out now; those more than LATE_NS after their time are late. */
static void judge_lateness(struct worker *wk, struct conn *c, uint64_t sent_before)
{
    uint64_t size = wk->cfg->size;
    uint64_t now = 0;
    for (uint64_t m = (sent_before + size - 1) / size; m * size < c->tx; m++) {
        uint64_t due = c->starts[(c->oldest + (m - c->msgs_done)) % wk->cfg->pipeline];
        if (!now)
            now = wk_now(wk);
        if (now - due > LATE_NS && in_window(wk, due))
            wk->res->late++;
    }
}

/* Sends what has been issued and not yet sent; waits for EPOLLOUT if the socket is full. */
static int conn_flush(struct worker *wk, struct conn *c)
{
    uint64_t sent_before = c->tx;
    while (c->tx < c->tx_goal) {
        if (c->tx != sent_before)
            wk_now(wk); /* big messages: keep clock reads one system call apart */
        uint64_t at = (c->origin + c->tx) % LG_PATTERN_LEN;
        uint64_t len = c->tx_goal - c->tx;
        if (len > LG_PATTERN_LEN)
            len = LG_PATTERN_LEN; /* the pattern is stored twice: any window this long fits */
        ssize_t n = send(c->fd, wk->pattern + at, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -errno;
            if (!c->want_out && watch(wk, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT) == 0)
                c->want_out = true;
            break;
        }
        c->tx += (uint64_t)n;
    }
    if (wk->open_loop && c->tx > sent_before)
        judge_lateness(wk, c, sent_before);
    if (c->tx == c->tx_goal && c->want_out && watch(wk, c, EPOLL_CTL_MOD, EPOLLIN) == 0)
        c->want_out = false;
    return 0;
}

/* Adds one message, started (or scheduled) at `start`, to the connection's stream. */
static void conn_issue(struct worker *wk, struct conn *c, uint64_t start, uint64_t now)
{
    c->starts[(c->oldest + c->in_flight) % wk->cfg->pipeline] = start;
    if (c->in_flight++ == 0)
        c->last_progress = now;
    c->tx_goal += wk->cfg->size;
}

/* How many more messages a connection may carry now: up to --pipeline in flight, and with
 * --reconnect no more than what is left of the stream's quota (it closes after the last). */
static uint32_t conn_room(const struct worker *wk, const struct conn *c)
{
    uint32_t room = wk->cfg->pipeline - c->in_flight;
    if (wk->cfg->reconnect) {
        uint64_t left = wk->cfg->reconnect - c->msgs_done - c->in_flight;
        if (left < room)
            room = (uint32_t)left;
    }
    return room;
}

static bool issuing(const struct worker *wk)
{
    return wk->phase == LG_WARMUP || wk->phase == LG_MEASURE;
}

/* Whether connections carry messages at all (not with --idle). */
static bool sending(const struct worker *wk)
{
    return issuing(wk) && !wk->cfg->idle;
}

static void fail_conn(struct worker *wk, struct conn *c, int err, uint64_t now)
{
    count_error(wk, err == -ECONNRESET ? LG_ERR_RESET : err == -EPIPE ? LG_ERR_RESET
                                                                      : LG_ERR_OTHER);
    conn_close(wk, c, now, true);
}

/* Closed loop: top the connection up to --pipeline messages, all starting now. */
static void closed_loop_refill(struct worker *wk, struct conn *c, uint64_t now)
{
    if (!sending(wk))
        return;
    uint32_t room = conn_room(wk, c);
    /* The start of these messages: now, just before the send() that carries them. */
    uint64_t start = wk_now(wk);
    for (uint32_t i = 0; i < room; i++)
        conn_issue(wk, c, start, now);
    wk->outstanding += room;
    int err = conn_flush(wk, c);
    if (err < 0)
        fail_conn(wk, c, err, now);
}

/* Open loop: give a connection with room the oldest waiting messages. */
static void open_loop_refill(struct worker *wk, struct conn *c, uint64_t now)
{
    while (wk->queue_len > 0 && conn_room(wk, c) > 0) {
        uint64_t due = wk->queue[wk->queue_head];
        wk->queue_head = (wk->queue_head + 1) % wk->queue_cap;
        wk->queue_len--;
        conn_issue(wk, c, due, now); /* already counted in outstanding when queued */
    }
    int err = conn_flush(wk, c);
    if (err < 0) {
        fail_conn(wk, c, err, now);
        return;
    }
    if (conn_room(wk, c) > 0)
        room_append(wk, c);
}

static void conn_established(struct worker *wk, struct conn *c, uint64_t now)
{
    int err = net_socket_error(c->fd);
    if (err < 0) {
        connect_failed(wk, err, true);
        conn_close(wk, c, now, true);
        return;
    }
    list_remove(&c->room_link); /* from wk->connecting */
    wk->nconnecting--;
    c->state = CONN_OPEN;
    c->last_progress = now;
    if (wk->phase == LG_SETUP)
        hist_record(&wk->res->setup_latency, now - c->connect_start);
    if (in_window(wk, now)) {
        wk->res->connects++;
        hist_record(&wk->res->connect_latency, now - c->connect_start);
    }
    c->want_out = false;
    if (watch(wk, c, EPOLL_CTL_MOD, EPOLLIN) < 0) {
        fail_conn(wk, c, -errno, now);
        return;
    }
    if (wk->phase == LG_SETUP)
        return; /* messages start at t0 */
    if (wk->open_loop)
        open_loop_refill(wk, c, now);
    else
        closed_loop_refill(wk, c, now);
}

/* Counts the bytes of buf that differ from the pattern at stream offset `pos`. */
static uint64_t count_mismatches(const struct worker *wk, const struct conn *c,
                                 const uint8_t *buf, size_t len, uint64_t pos)
{
    uint64_t bad = 0;
    for (size_t i = 0; i < len; i++)
        bad += buf[i] != wk->pattern[(c->origin + pos + i) % LG_PATTERN_LEN];
    return bad;
}

/* Compares received bytes with what was sent at the same stream position. */
static bool verify(const struct worker *wk, const struct conn *c, const uint8_t *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        uint64_t at = (c->origin + c->rx + done) % LG_PATTERN_LEN;
        size_t n = len - done < LG_PATTERN_LEN ? len - done : LG_PATTERN_LEN;
        if (memcmp(buf + done, wk->pattern + at, n) != 0)
            return false;
        done += n;
    }
    return true;
}

static void record_completion(struct worker *wk, uint64_t start, uint64_t now, uint64_t msgno)
{
    uint64_t latency = now - start;
    if (in_window(wk, start))
        record_latency(wk, latency, msgno);
    if (in_window(wk, now))
        wk->res->requests++;
    if (wk->cfg->interval_ns) {
        hist_record(&wk->ihist, latency);
        wk->ireqs++;
    }
}

static void conn_readable(struct worker *wk, struct conn *c)
{
    ssize_t n = recv(c->fd, wk->rx, RX_BUF_SIZE, MSG_DONTWAIT);
    uint64_t now = wk_now(wk);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n == 0)
            count_error(wk, LG_ERR_EOF);
        else
            count_error(wk, errno == ECONNRESET ? LG_ERR_RESET : LG_ERR_OTHER);
        conn_close(wk, c, now, true);
        return;
    }
    size_t len = (size_t)n;
    uint64_t extra = c->rx + len > c->tx ? c->rx + len - c->tx : 0; /* never sent */
    if (extra || !verify(wk, c, wk->rx, len)) {
        wk->res->mismatched_bytes += extra + count_mismatches(wk, c, wk->rx, len - extra, c->rx);
        count_error(wk, LG_ERR_MISMATCH);
        conn_close(wk, c, now, true); /* the stream is out of step: start a fresh one */
        return;
    }
    uint64_t size = wk->cfg->size;
    uint64_t before = c->rx / size;
    c->rx += len;
    uint64_t completed = c->rx / size - before;
    if (in_window(wk, now))
        wk->res->bytes += len;
    c->last_progress = now;
    for (uint64_t i = 0; i < completed; i++) {
        record_completion(wk, c->starts[c->oldest], now, c->msgs_done + i + 1);
        c->oldest = (c->oldest + 1) % wk->cfg->pipeline;
    }
    c->in_flight -= (uint32_t)completed;
    wk->outstanding -= completed;
    c->msgs_done += completed;
    if (completed == 0)
        return;
    if (wk->cfg->reconnect && c->msgs_done >= wk->cfg->reconnect && c->in_flight == 0) {
        /* Planned churn: a clean close, and a new connection at once. */
        conn_close(wk, c, now, false);
        if (issuing(wk))
            conn_connect(wk, c, now);
        return;
    }
    if (wk->open_loop)
        open_loop_refill(wk, c, now);
    else
        closed_loop_refill(wk, c, now);
}

static void handle_event(struct worker *wk, struct conn *c, uint32_t events)
{
    if (c->state == CONN_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_established(wk, c, wk_now(wk));
        return;
    }
    if (c->state != CONN_OPEN)
        return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_readable(wk, c);
    if (c->state == CONN_OPEN && (events & EPOLLOUT)) {
        int err = conn_flush(wk, c);
        if (err < 0)
            fail_conn(wk, c, err, wk_now(wk));
    }
}

/* --- the open-loop schedule ------------------------------------------------------------------ */

static uint64_t next_random(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void advance_schedule(struct worker *wk)
{
    wk->scheduled_total++;
    if (wk->cfg->arrival == ARRIVAL_POISSON) {
        /* Exponential gaps: a Poisson process of the worker's rate. */
        double u = ((double)(next_random(&wk->rng) >> 11) + 0.5) / 9007199254740992.0;
        wk->next_due += (uint64_t)(-log(u) * wk->mean_gap_ns);
    } else {
        /* Computed from t0, not added up, so rounding never drifts the rate. */
        double offset = ((double)wk->w->index / wk->cfg->threads + (double)wk->scheduled_total)
                        * wk->mean_gap_ns;
        wk->next_due = wk->win.t0 + (uint64_t)offset;
    }
}

static int queue_push(struct worker *wk, uint64_t due)
{
    if (wk->queue_len == wk->queue_cap) {
        /* Grows by doubling: only while the server falls further behind. */
        size_t cap = wk->queue_cap ? wk->queue_cap * 2 : 4096;
        uint64_t *q = malloc(cap * sizeof *q);
        if (!q)
            return -ENOMEM;
        for (size_t i = 0; i < wk->queue_len; i++)
            q[i] = wk->queue[(wk->queue_head + i) % wk->queue_cap];
        free(wk->queue);
        wk->queue = q;
        wk->queue_cap = cap;
        wk->queue_head = 0;
    }
    wk->queue[(wk->queue_head + wk->queue_len++) % wk->queue_cap] = due;
    return 0;
}

/* Sends or queues every message whose time has come. */
static int open_loop_dispatch(struct worker *wk, uint64_t now)
{
    while (wk->next_due <= now && wk->next_due < wk->win.stop) {
        uint64_t due = wk->next_due;
        advance_schedule(wk);
        if (in_window(wk, due))
            wk->res->scheduled++;
        wk->outstanding++;
        if (wk->queue_len == 0 && !list_empty(&wk->room)) {
            struct conn *c = list_entry(list_first(&wk->room), struct conn, room_link);
            conn_issue(wk, c, due, now);
            list_remove(&c->room_link);
            int err = conn_flush(wk, c);
            if (err < 0)
                fail_conn(wk, c, err, now);
            else if (conn_room(wk, c) > 0)
                room_append(wk, c); /* to the back: round robin */
        } else if (queue_push(wk, due) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* --- the loop -------------------------------------------------------------------------------- */

/* Timeouts and reconnects, every TICK_NS. */
static void tick(struct worker *wk, uint64_t now)
{
    for (unsigned i = 0; i < wk->w->nconns; i++) {
        struct conn *c = &wk->conns[i];
        if (c->state == CONN_IDLE) {
            if (issuing(wk) && now >= c->retry_at)
                conn_connect(wk, c, now);
        } else if (c->state == CONN_CONNECTING) {
            if (now - c->connect_start > wk->cfg->timeout_ns) {
                connect_failed(wk, -ETIMEDOUT, true);
                conn_close(wk, c, now, true);
            }
        } else if (c->in_flight > 0 && now - c->last_progress > wk->cfg->timeout_ns) {
            count_error(wk, LG_ERR_TIMEOUT);
            conn_close(wk, c, now, true);
        }
    }
}

static void publish_interval(struct worker *wk)
{
    struct lg_interval *iv = wk->w->shared->interval;
    pthread_mutex_lock(&iv->lock);
    /* An interval the main thread has printed already is gone: its late data is dropped
     * rather than added to the next line. */
    if (wk->iindex >= iv->index) {
        hist_add(&iv->latency, &wk->ihist);
        iv->requests += wk->ireqs;
    }
    if (wk->iindex == iv->index)
        iv->contributors++;
    pthread_cond_signal(&iv->ready);
    pthread_mutex_unlock(&iv->lock);
    hist_reset(&wk->ihist);
    wk->ireqs = 0;
}

static void start_phase(struct worker *wk, uint64_t now)
{
    wk->phase = LG_WARMUP;
    if (wk->open_loop) {
        /* The first message: uniform schedules of the workers interleave evenly; a Poisson
         * schedule starts with a random gap like every other. */
        wk->next_due = wk->win.t0;
        if (wk->cfg->arrival == ARRIVAL_UNIFORM)
            wk->next_due += (uint64_t)((double)wk->w->index / wk->cfg->threads * wk->mean_gap_ns);
        else
            advance_schedule(wk);
        wk->scheduled_total = 0;
    }
    for (unsigned i = 0; i < wk->w->nconns; i++) {
        struct conn *c = &wk->conns[i];
        if (c->state != CONN_OPEN)
            continue;
        if (wk->open_loop)
            room_append(wk, c);
        else
            closed_loop_refill(wk, c, now);
    }
}

/* Moves the worker along the phases the clock gives (lg_window_phase), doing what each edge
 * needs. A window that is empty (Ctrl-C in the warm-up) is skipped; one the loop overslept
 * is entered and left in the same call. */
static void update_phase(struct worker *wk, uint64_t now)
{
    /* One relaxed load per turn: t0 is known, only Ctrl-C can move the window. */
    uint64_t stop_at = atomic_load_explicit(&wk->w->shared->stop_at_ns, memory_order_relaxed);
    wk->win = lg_window_of(wk->win.t0, wk->cfg->warmup_ns, wk->cfg->duration_ns, stop_at);
    enum lg_phase clock = lg_window_phase(&wk->win, now);
    if (wk->phase == LG_WARMUP && clock >= LG_MEASURE && wk->win.end > wk->win.start) {
        wk->phase = LG_MEASURE;
        wk->cpu_at_start = clock_thread_cpu_ns();
    }
    if (wk->phase == LG_MEASURE && clock == LG_DRAIN) {
        for (unsigned i = 0; i < wk->w->nconns; i++)
            wk->res->open_at_end += wk->conns[i].state == CONN_OPEN;
        wk->res->cpu_ns = clock_thread_cpu_ns() - wk->cpu_at_start;
    }
    if (wk->phase < LG_DRAIN && clock == LG_DRAIN) {
        wk->phase = LG_DRAIN;
        wk->drain_end = now + wk->cfg->timeout_ns;
    }
    if (wk->phase == LG_DRAIN && (wk->outstanding == 0 || now >= wk->drain_end))
        wk->phase = LG_DONE;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* The next moment something is due: the loop sleeps until then unless a socket wakes it. */
static uint64_t next_wakeup(const struct worker *wk, uint64_t now)
{
    uint64_t t = wk->next_tick;
    if (wk->phase < LG_DRAIN)
        t = min_u64(t, lg_window_next_edge(&wk->win, now));
    if (wk->phase == LG_DRAIN)
        t = min_u64(t, wk->drain_end);
    if (wk->open_loop && wk->next_due < wk->win.stop && issuing(wk))
        t = min_u64(t, wk->next_due);
    if (wk->cfg->interval_ns)
        t = min_u64(t, wk->next_interval);
    return t;
}

/* Waits for socket events until `until`. The time spent waiting is idle time: what is left of
 * the window is the thread's busy time, the measure of saturation. With --busy-poll the thread
 * never sleeps: it polls without blocking until something happens or the time comes (and every
 * poll is a clock read, so a stall shows as a gap). Asleep, the thread was due to run again by
 * `until` - or earlier, if an event came - so waking later than that is a stall. */
static int wait_events(struct worker *wk, struct epoll_event *events, uint64_t until)
{
    uint64_t start = wk_now(wk), now = start;
    int n;
    if (wk->cfg->busy_poll) {
        while ((n = epoll_wait(wk->ep, events, MAX_EVENTS, 0)) == 0 && now < until)
            now = wk_now(wk);
    } else {
        if (wk->phase == LG_MEASURE && until > start + STALL_STEP_NS)
            until = start + STALL_STEP_NS;
        uint64_t wait = until > now ? until - now : 0;
        struct timespec ts = {.tv_sec = (time_t)(wait / NS_PER_SEC),
                              .tv_nsec = (long)(wait % NS_PER_SEC)};
        n = epoll_pwait2(wk->ep, events, MAX_EVENTS, &ts, NULL);
        now = clock_now_ns();
        uint64_t due = until > start ? until : start;
        if (now > due && now - due > LG_STALL_NS)
            stall_seen(wk, due, now);
        wk->last_read = now;
    }
    if (wk->phase == LG_MEASURE)
        wk->res->idle_ns += now - start;
    if (n < 0 && errno == EINTR)
        return 0;
    return n < 0 ? -errno : n;
}

static int run_loop(struct worker *wk)
{
    struct epoll_event events[MAX_EVENTS];
    while (wk->phase != LG_DONE) {
        int n = wait_events(wk, events, next_wakeup(wk, wk->last_read));
        if (n < 0)
            return n;
        for (int i = 0; i < n; i++)
            handle_event(wk, events[i].data.ptr, events[i].events);
        uint64_t now = wk_now(wk);
        /* Messages due before the window ends go out even if the loop woke a little after it:
         * dispatch first, then let the phase move on. */
        if (wk->open_loop && issuing(wk) && open_loop_dispatch(wk, now) < 0)
            return -ENOMEM;
        update_phase(wk, now);
        if (now >= wk->next_tick) {
            tick(wk, now);
            wk->next_tick = now + TICK_NS;
        }
        if (wk->cfg->interval_ns && now >= wk->next_interval) {
            publish_interval(wk);
            wk->iindex++;
            wk->next_interval = wk->win.t0 + (wk->iindex + 1) * wk->cfg->interval_ns;
        }
    }
    return 0;
}

/* Set-up: connects that have taken longer than --timeout fail (timed out). The list is in
 * connect() order, so only its head need be looked at. */
static void expire_connects(struct worker *wk, uint64_t now)
{
    while (!list_empty(&wk->connecting)) {
        struct conn *c = list_entry(list_first(&wk->connecting), struct conn, room_link);
        if (now - c->connect_start <= wk->cfg->timeout_ns)
            return;
        connect_failed(wk, -ETIMEDOUT, true);
        conn_close(wk, c, now, true);
    }
}

/*
 * Connects every connection - paced at this worker's share of --connect-rate, if given, with at
 * most LG_CONNECT_INFLIGHT in progress - and waits for them to be established, all within
 * --setup-timeout. Events are taken between every few connect() calls, not after all of them:
 * on loopback a connect() may take a millisecond (the kernel's ephemeral port search), and a
 * connection established early but noticed only after 19,000 more connect() calls would be
 * timed (and timed out) by the loop's delay, not by the network. Connections whose connect
 * failed stay idle: the load's loop retries them. Every step is O(1) per connection.
 */
static int setup_connections(struct worker *wk)
{
    const struct lg_config *cfg = wk->cfg;
    const unsigned n = wk->w->nconns, batch = 8;
    uint64_t start = clock_now_ns();
    uint64_t deadline = start + cfg->setup_timeout_ns;
    /* This worker's share of the rate: n of the connections, n of the connects per second. */
    double gap = cfg->connect_rate > 0
                     ? 1e9 * (double)cfg->connections / (cfg->connect_rate * (double)n)
                     : 0;
    unsigned next = 0;
    struct epoll_event events[MAX_EVENTS];
    wk->last_read = start;
    for (;;) {
        uint64_t now = wk_now(wk);
        for (unsigned k = 0; k < batch && next < n && wk->nconnecting < LG_CONNECT_INFLIGHT
                             && start + (uint64_t)((double)next * gap) <= now;
             k++)
            conn_connect(wk, &wk->conns[next++], now);
        if (next == n && wk->nconnecting == 0)
            break;
        if (now >= deadline) {
            wk->res->setup_deadline_hit = true;
            break;
        }
        /* Sleep until the next connect is due, the oldest pending one times out, or the
         * deadline; not at all while connects may be made now. */
        uint64_t until = deadline;
        if (next < n && wk->nconnecting < LG_CONNECT_INFLIGHT)
            until = min_u64(until, start + (uint64_t)((double)next * gap));
        if (!list_empty(&wk->connecting)) {
            struct conn *c = list_entry(list_first(&wk->connecting), struct conn, room_link);
            until = min_u64(until, c->connect_start + cfg->timeout_ns + 1);
        }
        int r = wait_events(wk, events, until);
        if (r < 0)
            return r;
        for (int i = 0; i < r; i++)
            handle_event(wk, events[i].data.ptr, events[i].events);
        /* With a full batch of events more may be waiting: time nothing out before reading
         * them. */
        if (r < MAX_EVENTS)
            expire_connects(wk, wk_now(wk));
    }
    for (unsigned i = 0; i < n; i++)
        wk->res->setup_established += wk->conns[i].state == CONN_OPEN;
    return 0;
}

static int worker_init(struct worker *wk, struct lg_worker *w)
{
    const struct lg_config *cfg = w->shared->cfg;
    *wk = (struct worker){.w = w, .cfg = cfg, .res = &w->result, .pattern = w->shared->pattern,
                          .ep = -1, .open_loop = cfg->rate > 0};
    list_init(&wk->room);
    list_init(&wk->connecting);
    wk->rng = 0x853c49e6748fea9bull ^ ((uint64_t)w->index << 32 | 1);
    if (wk->open_loop)
        wk->mean_gap_ns = 1e9 / w->rate;
    wk->conns = calloc(w->nconns, sizeof *wk->conns);
    wk->starts_block = calloc((size_t)w->nconns * cfg->pipeline, sizeof *wk->starts_block);
    wk->rx = malloc(RX_BUF_SIZE);
    if (!wk->conns || !wk->starts_block || !wk->rx)
        return -ENOMEM;
    if (cfg->interval_ns && hist_init(&wk->ihist) < 0)
        return -ENOMEM;
    for (unsigned i = 0; i < w->nconns; i++) {
        wk->conns[i].fd = -1;
        wk->conns[i].id = w->first_conn + i;
        wk->conns[i].starts = wk->starts_block + (size_t)i * cfg->pipeline;
    }
    wk->ep = epoll_create1(EPOLL_CLOEXEC);
    return wk->ep < 0 ? -errno : 0;
}

static void worker_cleanup(struct worker *wk)
{
    if (wk->conns)
        for (unsigned i = 0; i < wk->w->nconns; i++)
            if (wk->conns[i].state != CONN_IDLE)
                close(wk->conns[i].fd);
    if (wk->ep >= 0)
        close(wk->ep);
    if (wk->cfg->interval_ns && wk->ihist.counts)
        hist_free(&wk->ihist);
    free(wk->queue);
    free(wk->rx);
    free(wk->starts_block);
    free(wk->conns);
}

/* Messages of the window that never completed - sent but not echoed in full, or never sent -
 * are timed up to now: a lower bound, but never a gap where the worst latencies should be. */
static void count_leftovers(struct worker *wk)
{
    uint64_t now = clock_now_ns();
    for (unsigned i = 0; i < wk->w->nconns; i++)
        count_unfinished(wk, &wk->conns[i], now);
    for (size_t k = 0; k < wk->queue_len; k++) {
        uint64_t due = wk->queue[(wk->queue_head + k) % wk->queue_cap];
        if (in_window(wk, due)) {
            wk->res->unsent++;
            wk->res->late++;
            hist_record(&wk->res->latency, now - due);
        }
    }
}

void *lg_worker_main(void *arg)
{
    struct lg_worker *w = arg;
    struct lg_shared *sh = w->shared;
    const struct lg_config *cfg = sh->cfg;
    struct worker wk;

    /* Exact wake-ups for the open-loop schedule: no timer slack. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    w->result.cpu = -1;
    if (cfg->ncpus > 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cfg->cpus[w->index % cfg->ncpus], &set);
        if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0)
            w->result.cpu = cfg->cpus[w->index % cfg->ncpus];
    }
    int err = worker_init(&wk, w);
    if (err < 0)
        w->failed_call = "worker set-up";
    else if ((err = setup_connections(&wk)) < 0)
        w->failed_call = "epoll_wait";

    /* Everyone is connected: main sets t0 between the two waits. */
    pthread_barrier_wait(&sh->ready);
    pthread_barrier_wait(&sh->ready);
    if (err == 0) {
        wk.win = lg_shared_window(sh);
        wk.next_tick = wk.win.t0 + TICK_NS;
        wk.next_interval = wk.win.t0 + cfg->interval_ns;
        wk.last_read = clock_now_ns(); /* the wait at the barrier is no stall */
        start_phase(&wk, wk_now(&wk));
        update_phase(&wk, wk_now(&wk));
        if ((err = run_loop(&wk)) < 0)
            w->failed_call = "the event loop";
        count_leftovers(&wk);
    }
    worker_cleanup(&wk);
    w->error = err;
    atomic_fetch_add(&sh->finished, 1);
    return NULL;
}
