/*
 * server.h - what the echo-server harness gives a server model, and what a model provides.
 *
 * A model is one file in servers/ holding static functions and one exported
 * `const struct server_model`, registered by one line in servers/models.list. The harness
 * (echo-server.c, server.c) parses the options, opens the listening socket, handles SIGINT and
 * SIGTERM, and prints the summary; the model only decides how connections are accepted and how
 * their bytes are moved, calling the echo core (common/echo.h) for the protocol.
 *
 * Stopping. When a stop is requested the harness, from its own signal thread:
 *   1. sets the flag read by server_stopping() and makes stop_fd readable (for event loops);
 *   2. shuts the listening socket down, so a blocked accept() returns at once;
 *   3. shuts down every connection registered with server_track(), so a blocked recv() or send()
 *      on it returns at once;
 *   4. calls the model's stop hook, if it set one with server_on_stop() (to wake a condition
 *      variable, say).
 * The model's run() then closes what it owns, waits for its threads or child processes, and
 * returns 0. No model needs a timeout or a polling loop to notice a stop.
 */
#ifndef ECHOBENCH_SERVER_H
#define ECHOBENCH_SERVER_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "echo.h"
#include "list.h"
#include "net.h"

/* How a model gets concurrency; shown by --list and used by the tests to pick their cases
 * (docs/adding-a-model.md says what the tests and the bench do for each kind). */
enum model_kind {
    MODEL_ITERATIVE,  /* one client at a time */
    MODEL_PROCESSES,  /* child processes */
    MODEL_THREADS,    /* blocking I/O on several threads */
    MODEL_EVENT_LOOP, /* non-blocking I/O multiplexed by one loop per thread */
    MODEL_HYBRID,     /* non-blocking I/O and threads together: a loop plus workers for the
                       * per-message work (reactor_pool), or threads sharing one epoll set
                       * (leader_followers); any number of connections */
};

/* The options every model receives, parsed and checked by the harness. */
struct server_config {
    const char *host;
    uint16_t port;
    int backlog;
    unsigned threads;  /* --threads; 0 when not given: the model picks its default */
    size_t stack_size; /* for every thread a model creates */
    long max_fds;      /* --max-fds: the descriptor limit set, 0 = as high as allowed */
    struct echo_work work;
};

/* Threads whose connection counts the summary shows (see per_thread below). */
#define SERVER_STATS_THREADS 64

/* Counters shared with child processes (they live in a MAP_SHARED mapping). Models add to them
 * once per connection or per batch, never per message, so no atomic sits on a hot path. */
struct server_stats {
    _Atomic uint64_t connections;   /* accepted */
    _Atomic uint64_t bytes_echoed;  /* written back to clients */
    _Atomic uint64_t shed;          /* accepted, then closed unserved (no thread, fork failed, ...) */
    _Atomic uint64_t accept_pauses; /* times accept waited because descriptors or memory ran out */
    /* Pools that serve one connection per worker (server_pool_enter/leave): workers serving
     * now, and how many times a connection made every worker busy - from then on, new clients
     * wait in the listen backlog until a worker is free. */
    _Atomic unsigned pool_busy;
    _Atomic uint64_t pool_all_busy;
    /* Optional: a model with a fixed set of threads (reactors, rings, workers) may count the
     * connections each one served, to show how evenly they share the load. */
    _Atomic unsigned threads_reported;
    _Atomic uint64_t per_thread[SERVER_STATS_THREADS];
    /* Optional: a short note for the summary (how a model set itself up), written once, by the
     * model, after its threads have ended. */
    char note[96];
};

/* A connection registered for interruption at stop time; lives wherever the model likes (on a
 * thread's stack is fine). */
struct server_conn {
    int fd;
    struct list link;
};

struct server {
    const struct server_config *cfg;
    struct server_stats *stats;
    int listen_fd;      /* bound, listening, blocking, close-on-exec */
    struct net_addr addr;
    int stop_fd;        /* an eventfd: becomes readable when the server must stop */

    /* Private to the harness. */
    atomic_bool stopping;
    pthread_mutex_t lock;
    struct list tracked; /* of struct server_conn */
    void (*stop_hook)(void *);
    void *stop_arg;
    const char *failed_call;
    int failed_err;
};

/* A kernel limit that caps how many connections a model can hold: each connection takes
 * `per_connection` of what the sysctl counts (a process per connection: kernel.pid_max). Not a
 * failure of the model: --list --json reports the limit with its current value, the bench marks
 * the cells beyond it with the sysctl's name, and docs/c100k.md says how to lift it. */
struct server_kernel_limit {
    const char *sysctl;      /* e.g. "kernel.pid_max", as sysctl(8) names it */
    unsigned per_connection; /* units of it each connection takes */
    const char *why;         /* e.g. "a process per connection" */
};
#define SERVER_KERNEL_LIMITS 3

struct server_model {
    const char *name;
    const char *summary; /* one line for --list */
    enum model_kind kind;
    /* What --threads means for this model ("workers", "reactors"), or NULL if it takes none. */
    const char *threads_meaning;
    /* Each of the model's --threads workers serves one connection for that connection's whole
     * life (a classic pool: threadpool, prefork), so the model serves at most --threads
     * connections at a time and the others wait in the listen backlog. The bench sizes such a
     * pool to a cell's connections; the tests leave out cases that need more at once. */
    bool serves_one_connection_per_thread;
    /* Its default --threads when that flag is set (the summary and the tests need it). */
    unsigned default_threads;
    /* The most connections the model can hold at once by construction (select: FD_SETSIZE),
     * or 0 for no limit of its own; shown by --list, respected by the tests and the bench. */
    unsigned max_connections;
    /* The kernel limits that cap its connections (a NULL sysctl ends the list). */
    struct server_kernel_limit kernel_limits[SERVER_KERNEL_LIMITS];
    /* The model opens one listener per thread with server_listen_again(): the harness then
     * creates the listener with SO_REUSEPORT (after checking that no one else holds the port,
     * so that "port in use" is still an error and never a silent sharing). */
    bool listener_per_thread;
    /* Optional: 0 if the model can run on this machine, else -errno with a reason in why. */
    int (*probe)(char *why, size_t why_len);
    /* Serves until a stop is requested, then returns once every thread and child process of the
     * model has finished. Fatal errors are reported with server_fail(). Returns 0 or -errno. */
    int (*run)(struct server *srv);
};

/* Every registered model, NULL-terminated, in the order of servers/models.list. */
extern const struct server_model *const server_models[];

/* True once a stop has been requested. A relaxed load: cheap enough for any loop. */
static inline bool server_stopping(const struct server *srv)
{
    return atomic_load_explicit(&srv->stopping, memory_order_relaxed);
}

/*
 * Blocking accept for blocking models: returns a connected socket (close-on-exec, TCP_NODELAY,
 * counted in stats), or a negative value once the server is stopping - so that
 * `while ((fd = server_accept(srv)) >= 0)` is a whole accept loop. When descriptors or memory run
 * out it pauses (waking on stop) and retries: the server neither dies nor spins, and the kernel's
 * backlog holds clients meanwhile. Any other error is fatal: it is reported with server_fail(),
 * which requests the stop.
 */
int server_accept(struct server *srv);

/* Sleeps up to ms milliseconds, returning early (true) if the server is stopping. */
bool server_pause(struct server *srv, int ms);

/* Registers fd so that a stop interrupts blocking I/O on it. Returns 0, or -ECANCELED if the
 * server is already stopping (the caller then closes fd without serving it). */
int server_track(struct server *srv, struct server_conn *conn, int fd);

/* Unregisters a connection; call before closing its fd. */
void server_untrack(struct server *srv, struct server_conn *conn);

/* The whole life of one connection in a blocking model: track it, echo until the client is done
 * (or the server stops), untrack, close, add its bytes to the stats. */
void server_serve_blocking(struct server *srv, int fd);

/* Calls fn(arg) from the stop request (on the harness's signal thread, after the steps above):
 * for models that sleep on something the harness cannot see. At most one hook; fn NULL removes
 * it, and once that returns the hook is not running and will not run. fn runs with the
 * harness's lock held: it may only wake things up (signal a condition variable, write an fd),
 * never call back into server_*(). */
void server_on_stop(struct server *srv, void (*fn)(void *), void *arg);

/* Another listening socket on the server's address, with SO_REUSEPORT: the kernel spreads new
 * connections over all of them by a hash of the addresses. Only for models that set
 * listener_per_thread. Returns the fd (non-blocking, close-on-exec) or -errno; the model closes
 * it. */
int server_listen_again(struct server *srv);

/* Initialises attr for a model thread: the configured stack size. Returns 0 or -errno. */
int server_thread_attr(struct server *srv, pthread_attr_t *attr);

/*
 * For models that run one loop per thread (epoll's reactors, ...): calls run(items + i * size)
 * for i = 1..n-1 on new threads (with the configured stack size) and i = 0 on the calling
 * thread, then joins them. A thread that cannot be created is a failure (server_fail: the others
 * are asked to stop). Returns the first non-zero result of run(), or that failure.
 */
int server_run_threads(struct server *srv, unsigned n, void *items, size_t size,
                       int (*run)(void *item));

/*
 * Child processes of a process model: the pids of the live ones, and a signalfd that becomes
 * readable when one exits (SIGCHLD, which the harness blocks in every thread). Only the thread
 * that forks uses it; a pid stays in the set until server_children_reap() has waited for it,
 * so a signal sent to the set never reaches a stranger that reused the pid.
 */
struct server_children {
    pid_t *pids;
    size_t count, cap;
    int sigchld_fd; /* poll it for readability */
};

int server_children_init(struct server_children *ch);           /* 0 or -errno */
int server_children_add(struct server_children *ch, pid_t pid); /* 0 or -ENOMEM */
/* Waits for the children that have exited (clearing the signalfd); with block, for all of them.
 * Returns how many were reaped. */
size_t server_children_reap(struct server_children *ch, bool block);
/* Sends SIGTERM to every live child and waits for them all; then frees the set. */
void server_children_stop(struct server_children *ch);

/* Prepares a freshly forked child process: closes the harness's descriptors (and the listener
 * unless keep_listener), and makes SIGINT/SIGTERM shut down the connection it serves (see
 * server_child_serving) and interrupt a blocked accept() (EINTR), so that the child finishes
 * promptly. conn_fd is the connection it serves from the start, or -1. The child must leave
 * with _exit(). */
void server_enter_child(struct server *srv, int conn_fd, bool keep_listener);

/* In a child process: the connection it serves now (-1: none). If a stop signal came already,
 * fd is shut down at once. */
void server_child_serving(int fd);

/* In a child process: true once SIGINT or SIGTERM has arrived. */
bool server_child_stopping(void);

/* In a child process: serves one accepted connection with blocking I/O to its end (a stop
 * shuts it down), closes it and adds its bytes to the stats. */
void server_child_serve(struct server *srv, int fd);

/* For the parent of a process model: sleeps until a child exits (SERVER_WAKE_CHILD: reap them
 * with server_children_reap()), fd is readable (if fd >= 0: SERVER_WAKE_FD) or the server must
 * stop (SERVER_WAKE_STOP). Returns a mask of those, or -errno if poll() failed. */
enum { SERVER_WAKE_CHILD = 1, SERVER_WAKE_FD = 2, SERVER_WAKE_STOP = 4 };
int server_children_wait(struct server *srv, struct server_children *ch, int fd);

/* Requests a stop: the steps listed at the top of this file. Idempotent; callable from any thread
 * (not from a signal handler). The harness calls it on SIGINT/SIGTERM. */
void server_request_stop(struct server *srv);

/* For a fatal error in a model: records which call failed (for the error message), requests a
 * stop so that the model's threads and children wind down as usual, and returns err (a -errno). */
int server_fail(struct server *srv, const char *call, int err);

static inline void server_count(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}


/* What one thread of an event-loop model counted locally (no atomics while serving). */
struct server_thread_totals {
    uint64_t accepted;  /* connections it accepted */
    uint64_t served;    /* connections it served (accepted here, or handed to it) */
    uint64_t echoed;    /* bytes */
    uint64_t shed;
    uint64_t pauses;    /* accept pauses */
};

/* How long a model stops accepting after running out of descriptors or memory: long enough not
 * to spin, short enough to recover quickly once connections close. Every model uses it. */
#define SERVER_ACCEPT_PAUSE_NS 50000000ull
#define SERVER_ACCEPT_PAUSE_MS ((int)(SERVER_ACCEPT_PAUSE_NS / 1000000))

/* Connections an event loop accepts per wake-up of its listener before it serves the others. */
#define SERVER_ACCEPT_BATCH 16

/*
 * For event loops: takes one waiting connection from a non-blocking listener. Returns the new
 * socket (non-blocking, close-on-exec, TCP_NODELAY; counted in t->accepted), or -1 when none is
 * waiting - or when descriptors or memory ran out: then t->pauses is counted and *resume_ns is
 * set to when the loop should start accepting again (until then it must stop watching the
 * listener, or it would spin). It keeps serving its connections meanwhile.
 */
int server_accept_nonblocking(int listen_fd, struct server_thread_totals *t, uint64_t *resume_ns);

/*
 * For event loops: accepts up to SERVER_ACCEPT_BATCH waiting connections, handing each to
 * adopt(arg, fd), which registers it with the loop and returns 0 - or -errno, and then the
 * connection is closed at once and counted as shed. Returns true if accepting must pause (out
 * of descriptors or memory; *resume_ns says until when: stop watching the listener until then).
 */
bool server_accept_batch(int listen_fd, struct server_thread_totals *t, uint64_t *resume_ns,
                         int (*adopt)(void *arg, int fd), void *arg);

/* For an event loop whose accepting is paused (*resume_ns != 0): the milliseconds to wait at
 * most before looking again (at least 1), or 0 when the pause is over - *resume_ns is then
 * cleared and the loop watches the listener again. With *resume_ns == 0, returns -1: no
 * pause, wait as long as you like. */
int server_accept_pause_ms(uint64_t *resume_ns);

/* Adds a thread's totals to the stats once it has finished, `served` as thread `index`. */
void server_add_thread_totals(struct server *srv, unsigned index,
                              const struct server_thread_totals *t);

/* The number of online CPUs (at least 1). */
unsigned server_cpu_count(void);

/* The default size of a pool that serves one connection per worker (threadpool, prefork): a
 * blocking pool is sized for the clients it must hold at once, not for the cores - a worker
 * waiting on an idle client costs no CPU, only its stack or process. Apache's worker and
 * prefork modules default to hundreds (MaxRequestWorkers 256), Tomcat to 200 threads; 64 keeps
 * a handful of idle or slow clients from locking everybody out while staying small on a laptop. */
#define SERVER_DEFAULT_POOL_SIZE 64

/* The number of workers a pool model runs: --threads, or SERVER_DEFAULT_POOL_SIZE. */
unsigned server_pool_size(const struct server *srv);

/* For pools that serve one connection per worker, in any thread or child process: a worker of
 * the `workers` has started serving a connection (enter) or finished (leave). Once per
 * connection; counts in stats->pool_all_busy each time a connection makes every worker busy. */
void server_pool_enter(struct server *srv, unsigned workers);
void server_pool_leave(struct server *srv);

#endif
