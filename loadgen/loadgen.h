/*
 * loadgen.h - the load generator's shared definitions: configuration, per-thread results, and
 * the worker interface. See docs/methodology.md for what is measured and how.
 *
 * Each worker thread owns an epoll instance, its connections and its histograms (wrk2's shape).
 * Nothing is shared while the load runs except the read-only configuration and byte pattern, the
 * start time, and (once per --interval, not per message) the interval accumulator. Results are
 * merged by addition after the threads are joined.
 */
#ifndef ECHOBENCH_LOADGEN_H
#define ECHOBENCH_LOADGEN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hist.h"
#include "net.h"

#define LG_MAX_CPUS 256
#define LG_MAX_SOURCES 1024 /* --source addresses */
/* Set-up: at most this many connects in progress at once per worker (a slow or remote server
 * is not flooded with SYNs; on loopback a connect completes within its connect() call). */
#define LG_CONNECT_INFLIGHT 4096u
/* Without --source, a loopback IPv4 target is reached from 127.0.0.1, 127.0.0.2, ...: one
 * source address per this share of the ephemeral port range (docs/loadgen-performance.md). */
#define LG_AUTO_SOURCE_SHARE 4

enum arrival { ARRIVAL_UNIFORM, ARRIVAL_POISSON };

struct lg_config {
    const char *host;
    uint16_t port;
    struct net_addr addr;
    unsigned threads;
    unsigned connections;
    uint64_t duration_ns;
    uint64_t warmup_ns;
    uint32_t size;        /* bytes per message */
    uint32_t pipeline;    /* messages in flight per connection */
    double rate;          /* messages per second in total; 0 = closed loop */
    enum arrival arrival;
    uint64_t reconnect;   /* close and reconnect after this many messages; 0 = never */
    uint64_t timeout_ns;  /* no echo for this long: the connection is counted and closed */
    int cpus[LG_MAX_CPUS];
    int ncpus;            /* 0 = no pinning */
    uint64_t interval_ns; /* 0 = no progress lines */
    const char *json_path;
    const char *hgrm_path;
    bool quiet;
    pid_t server_pid;     /* 0 = not given: the server's CPU is not measured */
    bool busy_poll;       /* never sleep while the load runs */
    bool idle;            /* open the connections and send nothing */
    const struct net_addr *sources; /* connection i comes from sources[i % nsources] */
    unsigned nsources;    /* 0 = no bind: the kernel chooses the source address */
    bool auto_sources;    /* the sources were chosen by loadgen, not given with --source */
    double connect_rate;  /* set-up connects per second in total; 0 = as fast as possible */
    uint64_t setup_timeout_ns; /* the whole set-up must be done by then */
    uint32_t cost_every;  /* --cost-every N: message k of a connection (from 1) is "costly"
                             when k % N == 0, else "cheap"; 0 = not given, no classes */
};

/* Kinds of errors, each counted separately. */
enum lg_error {
    LG_ERR_CONNECT,  /* connect() failed or did not complete within --timeout */
    LG_ERR_RESET,    /* the server reset the connection */
    LG_ERR_EOF,      /* the server closed the connection while echoes were due */
    LG_ERR_TIMEOUT,  /* no echo within --timeout */
    LG_ERR_MISMATCH, /* an echoed byte differed from the byte sent (see mismatched_bytes) */
    LG_ERR_OTHER,    /* any other socket error */
    LG_ERR_KINDS
};

extern const char *const lg_error_names[LG_ERR_KINDS];

/* Why a connect failed, counted during the set-up (struct lg_result.setup_errors). */
enum lg_connect_error {
    LG_CERR_REFUSED,      /* ECONNREFUSED: nothing listens there */
    LG_CERR_TIMEOUT,      /* not established within --timeout (or ETIMEDOUT) */
    LG_CERR_ADDRNOTAVAIL, /* EADDRNOTAVAIL: no port left, or a source that is not local */
    LG_CERR_NOFILE,       /* EMFILE or ENFILE: out of descriptors */
    LG_CERR_OTHER,        /* anything else (ENETUNREACH, ECONNRESET, ENOBUFS, ...) */
    LG_CERR_KINDS
};

extern const char *const lg_connect_error_names[LG_CERR_KINDS];

/* The kind of a connect failure given as -errno. */
enum lg_connect_error lg_connect_error_kind(int err);

/*
 * Platform stalls (docs/methodology.md): a gap longer than LG_STALL_NS between two consecutive
 * clock reads of a worker's loop - reads at most one system call apart, or, across a sleep, the
 * wake-up's lateness past its deadline - is time the platform kept the thread from running.
 * Each worker logs them as intervals (only that rare path writes, and may allocate); the report
 * merges the logs of all workers, so a stall that froze every thread counts once.
 */
#define LG_STALL_NS (200 * 1000ull)
#define LG_STALL_LOG_MAX (1u << 20) /* intervals per worker; beyond, counted in stalls_lost */

struct lg_stall {
    uint64_t from, to;
};

/* What one worker measured; merged across workers by lg_result_add(). Counts cover the
 * measurement window only (warm-up excluded). */
struct lg_result {
    uint64_t requests;        /* messages whose echo completed inside the window */
    uint64_t bytes;           /* echoed bytes received inside the window */
    uint64_t scheduled;       /* open loop: messages scheduled inside the window */
    uint64_t late;            /* open loop: of those, sent later than scheduled (no room) */
    uint64_t unsent;          /* open loop: scheduled in the window, never sent */
    uint64_t incomplete;      /* sent in the window, never echoed in full: the connection
                                 failed or the run ended first (timed as lower bounds) */
    uint64_t mismatched_bytes;
    uint64_t errors[LG_ERR_KINDS];
    uint64_t connects;        /* connections established inside the window */
    uint64_t open_at_end;     /* connections open when the window ended */
    struct hist latency;      /* ns, messages started (or scheduled) inside the window */
    /* With --cost-every: the same latencies split by the message's number on its connection
     * (costly: k % N == 0; cheap: the others). Open-loop messages still queued at the end had
     * no connection, hence no number: they are in `latency` only. Without --cost-every these
     * are never allocated (counts is NULL). */
    struct hist cheap, costly;
    struct hist connect_latency; /* ns, connect() to established */
    /* The set-up, before t0 (not part of the window): */
    uint64_t setup_attempts;      /* connect() calls */
    uint64_t setup_established;   /* connections open at its end */
    uint64_t setup_errors[LG_CERR_KINDS];
    struct hist setup_latency;    /* ns, connect() called to established */
    bool setup_deadline_hit;      /* --setup-timeout passed before every connection was up */
    uint64_t cpu_ns;          /* the worker thread's CPU time inside the window */
    uint64_t idle_ns;         /* time inside the window spent waiting for something to do */
    int cpu;                  /* the CPU it was pinned to, or -1 */
    struct lg_stall *stalls;  /* this worker's stalls in the window (not merged by _add) */
    size_t nstalls, stalls_cap;
    uint64_t stalls_lost;     /* stalls that did not fit in the log */
};

/* Allocates r's histograms - with classes, also the cheap and costly ones (--cost-every).
 * Returns 0 or -ENOMEM. */
int lg_result_init(struct lg_result *r, bool classes);
void lg_result_free(struct lg_result *r);
void lg_result_add(struct lg_result *dst, const struct lg_result *src);

/* The set-up's connect errors, all kinds together. */
uint64_t lg_setup_errors(const struct lg_result *r);

/* The shared accumulator behind --interval: workers add their interval histogram once per
 * interval, under the lock; the main thread prints and resets it. */
struct lg_interval {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    uint64_t index;        /* the interval being accumulated */
    unsigned contributors; /* workers that have added to it */
    uint64_t requests;
    struct hist latency;
};

/*
 * The timeline of a run, computed in one place (lg_window_of) for the workers, the sampler
 * and the report. The window is [start, end); the load stops at `stop`: the planned end, or
 * Ctrl-C, which may come during the warm-up - then stop < start and the window is empty
 * (end == start).
 */
struct lg_window {
    uint64_t t0;    /* the load starts: warm-up */
    uint64_t start; /* t0 + warm-up */
    uint64_t end;   /* start + duration, or the Ctrl-C time if earlier; never before start */
    uint64_t stop;  /* no new messages from here on */
};

/* The phases of a run. The clock (lg_window_phase) says WARMUP, MEASURE or DRAIN; a worker
 * also has SETUP before t0 and DONE once the drain is over. */
enum lg_phase { LG_SETUP, LG_WARMUP, LG_MEASURE, LG_DRAIN, LG_DONE };

/* stop_at: the Ctrl-C time, UINT64_MAX if none. */
static inline struct lg_window lg_window_of(uint64_t t0, uint64_t warmup_ns, uint64_t duration_ns,
                                            uint64_t stop_at)
{
    struct lg_window w = {.t0 = t0, .start = t0 + warmup_ns};
    w.end = w.stop = w.start + duration_ns;
    if (stop_at < w.stop) {
        w.stop = stop_at;
        w.end = stop_at > w.start ? stop_at : w.start;
    }
    return w;
}

static inline bool lg_in_window(const struct lg_window *w, uint64_t t)
{
    return t >= w->start && t < w->end;
}

static inline enum lg_phase lg_window_phase(const struct lg_window *w, uint64_t now)
{
    return now >= w->stop ? LG_DRAIN : now >= w->start ? LG_MEASURE : LG_WARMUP;
}

/* When the clock's phase next changes (UINT64_MAX once the load has stopped). */
static inline uint64_t lg_window_next_edge(const struct lg_window *w, uint64_t now)
{
    return now < w->start && w->start < w->stop ? w->start : now < w->stop ? w->stop : UINT64_MAX;
}

/* What the sampler thread reads at the edges of the window, off the workers' loops. */
struct lg_sample {
    bool server_cpu_ok;    /* --server-pid: the server tree's CPU time could be read */
    uint64_t server_cpu_ns;
    bool switches_ok;      /* --server-pid: its threads' involuntary context switches */
    uint64_t switches;
    bool steal_ok;         /* steal time of all CPUs (/proc/stat), in ns */
    uint64_t steal_ns;
};

/* Everything the workers share, read-only once the load starts (except the atomics). */
struct lg_shared {
    const struct lg_config *cfg;
    const uint8_t *pattern; /* LG_PATTERN_LEN bytes, stored twice in a row */
    pthread_barrier_t ready;
    _Atomic uint64_t start_ns;   /* t0: warm-up starts; set by main between two barrier waits */
    _Atomic uint64_t stop_at_ns; /* Ctrl-C: the window ends here (UINT64_MAX otherwise) */
    _Atomic unsigned finished;   /* workers that have returned */
    struct lg_interval *interval; /* NULL without --interval */
    /* The sampler sleeps on `wake` until an edge of the window; main signals it at Ctrl-C. */
    pthread_mutex_t wake_lock;
    pthread_cond_t wake;          /* on CLOCK_MONOTONIC */
};

/* The window for this run so far (the Ctrl-C time read now). */
static inline struct lg_window lg_shared_window(struct lg_shared *sh)
{
    return lg_window_of(atomic_load(&sh->start_ns), sh->cfg->warmup_ns, sh->cfg->duration_ns,
                        atomic_load_explicit(&sh->stop_at_ns, memory_order_relaxed));
}

/* The byte stream of every connection is this pattern (random bytes, a prime length so that
 * the period never lines up with message sizes) starting at an offset derived from the
 * connection, so a byte echoed on the wrong connection or at the wrong place is caught. */
#define LG_PATTERN_LEN 65521u

struct lg_worker {
    unsigned index;
    unsigned first_conn, nconns; /* this worker's share of the connections */
    double rate;                 /* this worker's share of --rate */
    struct lg_shared *shared;
    struct lg_result result;
    int error;                   /* -errno if the worker could not run */
    const char *failed_call;
    pthread_t tid;
};

/* The worker thread: connects, waits at the start barrier, runs the load, drains, returns. */
void *lg_worker_main(void *arg);

/* The sampler thread (arg: struct lg_sampler): waits at the start barrier with the workers,
 * then reads the server's CPU time at the start of the window and at its end (or at Ctrl-C),
 * on no worker's CPU. */
struct lg_sampler {
    struct lg_shared *shared;
    struct lg_sample at_start, at_end;
    bool sampled;   /* both edges were read: the window was not empty */
    pthread_t tid;
};
void *lg_sampler_main(void *arg);

/* Wakes the sampler early (main calls it after setting stop_at_ns). */
void lg_sampler_wake(struct lg_shared *sh);

struct lg_run;
/* Fills in the run's server CPU, steal and switch figures from the two samples. */
void lg_sampler_result(const struct lg_sampler *sp, struct lg_run *run);

/* The measured run, merged: what the reports print. */
struct lg_run {
    const struct lg_config *cfg;
    struct lg_result total;
    struct lg_result *per_thread; /* cfg->threads entries */
    struct lg_window window;
    uint64_t window_ns;           /* the measurement window actually run */
    bool server_cpu_ok;           /* --server-pid: read at both edges */
    uint64_t server_cpu_ns;       /* the server tree's CPU time in the window */
    /* The sampler's figures over the window (each only if read at both edges). */
    bool steal_ok, switches_ok;
    uint64_t steal_ns, switches;
    /* Platform stalls of all workers, merged (lg_merge_stalls). */
    uint64_t stall_max_ns, stalls_over_1ms, stall_excess_ns, stalls_lost;
    bool interrupted;             /* Ctrl-C ended it early */
    uint64_t setup_ns;            /* from starting the workers until all had set up */
    bool saturated;
    double max_busy;              /* busiest thread (or pinned CPU): share of the window spent
                                     working, not waiting */
};

/* Fills in saturation from the per-thread CPU times. */
void lg_assess_saturation(struct lg_run *run);

/* Fills in the stall figures from the per-thread logs. Returns 0 or -ENOMEM. */
int lg_merge_stalls(struct lg_run *run);

/* The human summary (stdout) and the warnings (stderr, also in the JSON). */
void lg_print_summary(const struct lg_run *run, FILE *out);
void lg_print_warnings(const struct lg_run *run, FILE *out);

/* Writes the JSON report (schema: docs/loadgen-json.md). Returns 0 or -errno. */
int lg_write_json(const struct lg_run *run, const char *path);

/* Writes the latency distribution in HdrHistogram's .hgrm format, in microseconds. */
int lg_write_hgrm(const struct lg_run *run, const char *path);

#endif
