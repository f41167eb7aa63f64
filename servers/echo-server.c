/*
 * echo-server - one TCP echo server, many concurrency models.
 *
 * This file is the harness: it parses the command line, opens the listening socket, turns
 * SIGINT/SIGTERM into a stop request on a dedicated signal thread, runs the chosen model and
 * prints a summary. Everything a model sees is described in server.h.
 *
 *   echo-server --list
 *   echo-server --model thread --port 7007 &
 *   nc 127.0.0.1 7007
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "cli.h"
#include "exit_codes.h"
#include "json.h"
#include "parse.h"
#include "server.h"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 7007
#define DEFAULT_STACK_SIZE (256u * 1024)
#define MIN_STACK_SIZE (64u * 1024) /* the blocking loop keeps a 16 KiB buffer on the stack */
#define MAX_THREADS 4096
#define STOP_GRACE_SECONDS 10
/* The longest per-message cost: well inside the stop grace, so that even a message whose cost
 * has begun cannot hold a stop up (the costs are interruptible too: see echo_abort_costs). */
#define MAX_COST_US 1000000
#define MAX_COST_EVERY 1000000 /* --cost-every: one costly message in a million at most */
/* The version of the `--list --json` document (docs/adding-a-model.md); bump it when a field
 * changes meaning or goes away, not when one is added. */
#define MODEL_LIST_JSON_VERSION 1


static void usage(FILE *out)
{
    fprintf(out,
"Usage: %s --model NAME [options]\n"
"       %s --list\n"
"\n"
"A TCP echo server (RFC 862) built on the chosen concurrency model. Every byte a client sends\n"
"comes back in order; when the client half-closes, the server finishes echoing and closes.\n"
"Once listening it prints one line to stdout:\n"
"  listening on HOST:PORT model=NAME pid=PID\n"
"SIGINT or SIGTERM stops it: it stops accepting, closes connections, waits for its threads and\n"
"processes, prints a one-line summary to stderr and exits 0.\n"
"\n"
"Options:\n"
"  -m, --model NAME     concurrency model (required; --list shows them)\n"
"  -H, --host ADDR      address to listen on, IPv4 or IPv6 (default %s)\n"
"  -p, --port N         TCP port, 0 = any free port (default %d)\n"
"  -t, --threads N      workers, reactors or rings, for models that take it (see\n"
"                       --list); default: the model's own (%d for worker pools; 1\n"
"                       reactor or ring). A pool that serves one connection per worker\n"
"                       (threadpool, prefork) serves N clients at a time: when every\n"
"                       worker is busy, new clients wait in the listen backlog, and the\n"
"                       summary's pool_all_busy= counts how often that happened\n"
"  -b, --backlog N      listen() backlog (default %d; the kernel caps it at\n"
"                       net.core.somaxconn)\n"
"      --stack-size B   stack size of every thread a model starts, e.g. 256k\n"
"                       (default 256k, at least 64k)\n"
"      --max-fds N      descriptor limit (RLIMIT_NOFILE) to run with; default: as high\n"
"                       as the process may - the hard limit, raised to 1,048,576 (or\n"
"                       fs.nr_open) when run as root - the same for every model\n"
"\n"
"Per-message cost (all off by default: pure stream echo):\n"
"      --msg-size S     the stream is made of S-byte messages, e.g. 128 or 4k\n"
"      --work-us N      each complete message costs N microseconds of CPU (a real\n"
"                       computation on the thread's CPU clock) before it is echoed\n"
"      --sleep-us N     each complete message then waits N microseconds (blocking sleep)\n"
"                       before it is echoed; --work-us and --sleep-us need --msg-size,\n"
"                       at most %d each; a stop cuts a cost short\n"
"      --cost-every N   only every Nth message of a connection costs (1 to 1,000,000;\n"
"                       default 1): messages are numbered 1, 2, 3 ... per connection and\n"
"                       message k costs when k %% N == 0, the others are echoed at once;\n"
"                       needs --msg-size and --work-us or --sleep-us\n"
"\n"
"  -l, --list           list the models: name, kind, what --threads means, the most\n"
"                       connections the model can hold (- for no limit of its own), summary\n"
"      --json           with --list: every field of every model as JSON, for tools\n"
"  -h, --help           show this help\n"
"  -V, --version        show the version and build\n"
"\n"
"Exit status: 0 after a clean stop, 1 on a runtime error (port in use, ...), 2 on bad usage,\n"
"3 if the model cannot run on this machine (e.g. io_uring unavailable).\n",
            cli_prog, cli_prog, DEFAULT_HOST, DEFAULT_PORT, SERVER_DEFAULT_POOL_SIZE, SOMAXCONN,
            MAX_COST_US);
}

static const char *kind_name(enum model_kind kind)
{
    switch (kind) {
    case MODEL_ITERATIVE: return "iterative";
    case MODEL_PROCESSES: return "processes";
    case MODEL_THREADS: return "threads";
    case MODEL_EVENT_LOOP: return "event-loop";
    case MODEL_HYBRID: return "hybrid";
    }
    return "?";
}

static void list_models(void)
{
    printf("%-13s %-11s %-9s %-9s %s\n", "MODEL", "KIND", "THREADS", "MAX_CONNS", "SUMMARY");
    for (const struct server_model *const *m = server_models; *m; m++) {
        char max[16] = "-";
        if ((*m)->max_connections)
            snprintf(max, sizeof max, "%u", (*m)->max_connections);
        printf("%-13s %-11s %-9s %-9s %s\n", (*m)->name, kind_name((*m)->kind),
               (*m)->threads_meaning ? (*m)->threads_meaning : "-", max, (*m)->summary);
    }
}

/* The current value of a sysctl such as "kernel.pid_max", or -1 if it cannot be read. */
static long read_sysctl(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/proc/sys/%s", name);
    for (char *p = path + strlen("/proc/sys/"); *p; p++)
        if (*p == '.')
            *p = '/';
    long v = -1;
    FILE *f = fopen(path, "re");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* "kernel_limits": what caps the model's connections on this machine, now. */
static void write_kernel_limits(struct json *j, const struct server_model *m)
{
    json_array_begin(j, "kernel_limits");
    for (int i = 0; i < SERVER_KERNEL_LIMITS && m->kernel_limits[i].sysctl; i++) {
        const struct server_kernel_limit *k = &m->kernel_limits[i];
        long value = read_sysctl(k->sysctl);
        json_object_begin(j, NULL);
        json_string(j, "sysctl", k->sysctl);
        json_uint(j, "per_connection", k->per_connection);
        json_string(j, "why", k->why);
        if (value >= 0) {
            json_int(j, "value", value);
            json_int(j, "max_connections", value / (long)k->per_connection);
        } else {
            json_null(j, "value");
            json_null(j, "max_connections");
        }
        json_object_end(j);
    }
    json_array_end(j);
}

/* `--list --json`: the model contract for tools (the tests, the bench). Every field a tool needs
 * is here, so that adding one to struct server_model is one edit in this function. */
static void list_models_json(void)
{
    struct json j;
    json_start(&j, stdout);
    json_object_begin(&j, NULL);
    json_uint(&j, "version", MODEL_LIST_JSON_VERSION);
    json_array_begin(&j, "models");
    for (const struct server_model *const *m = server_models; *m; m++) {
        json_object_begin(&j, NULL);
        json_string(&j, "name", (*m)->name);
        json_string(&j, "summary", (*m)->summary);
        json_string(&j, "kind", kind_name((*m)->kind));
        json_string(&j, "threads_meaning", (*m)->threads_meaning);
        json_bool(&j, "serves_one_connection_per_thread",
                  (*m)->serves_one_connection_per_thread);
        if ((*m)->serves_one_connection_per_thread)
            json_uint(&j, "default_threads", (*m)->default_threads);
        else
            json_null(&j, "default_threads");
        json_uint(&j, "max_connections", (*m)->max_connections);
        write_kernel_limits(&j, *m);
        json_bool(&j, "listener_per_thread", (*m)->listener_per_thread);
        json_object_end(&j);
    }
    json_array_end(&j);
    json_object_end(&j);
    json_finish(&j);
}

static const struct server_model *find_model(const char *name)
{
    for (const struct server_model *const *m = server_models; *m; m++)
        if (strcmp((*m)->name, name) == 0)
            return *m;
    return NULL;
}

static const struct server_model *parse_args(int argc, char **argv, struct server_config *cfg)
{
    enum { OPT_STACK = 256, OPT_MSG, OPT_WORK, OPT_SLEEP, OPT_COST_EVERY, OPT_JSON, OPT_MAX_FDS };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 't'},
        {"backlog", required_argument, NULL, 'b'},
        {"stack-size", required_argument, NULL, OPT_STACK},
        {"max-fds", required_argument, NULL, OPT_MAX_FDS},
        {"msg-size", required_argument, NULL, OPT_MSG},
        {"work-us", required_argument, NULL, OPT_WORK},
        {"sleep-us", required_argument, NULL, OPT_SLEEP},
        {"cost-every", required_argument, NULL, OPT_COST_EVERY},
        {"list", no_argument, NULL, 'l'},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    const char *model_name = NULL;
    bool list = false, json = false;
    *cfg = (struct server_config){
        .host = DEFAULT_HOST,
        .port = DEFAULT_PORT,
        .backlog = SOMAXCONN,
        .stack_size = DEFAULT_STACK_SIZE,
    };
    opterr = 0; /* we print our own one-line messages */
    int c;
    while ((c = getopt_long(argc, argv, ":m:H:p:t:b:lhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model_name = optarg; break;
        case 'H': cfg->host = optarg; break;
        case 'p': cfg->port = (uint16_t)cli_uint("--port", optarg, 0, 65535); break;
        case 't': cfg->threads = (unsigned)cli_uint("--threads", optarg, 1, MAX_THREADS); break;
        case 'b': cfg->backlog = (int)cli_uint("--backlog", optarg, 1, 65535); break;
        case OPT_STACK:
            cfg->stack_size = cli_bytes("--stack-size", optarg, MIN_STACK_SIZE, 1ull << 30);
            break;
        case OPT_MAX_FDS:
            cfg->max_fds = (long)cli_uint("--max-fds", optarg, 16, NET_FD_LIMIT_WANTED);
            break;
        case OPT_MSG: cfg->work.msg_size = cli_bytes("--msg-size", optarg, 1, 1ull << 26); break;
        case OPT_WORK:
            cfg->work.work_us = (uint32_t)cli_uint("--work-us", optarg, 0, MAX_COST_US);
            break;
        case OPT_SLEEP:
            cfg->work.sleep_us = (uint32_t)cli_uint("--sleep-us", optarg, 0, MAX_COST_US);
            break;
        case OPT_COST_EVERY:
            cfg->work.cost_every =
                (uint32_t)cli_uint("--cost-every", optarg, 1, MAX_COST_EVERY);
            break;
        case 'l': list = true; break;
        case OPT_JSON: json = true; break;
        case 'h': usage(stdout); exit(0);
        case 'V':
            printf("echo-server %s\n", ECHOBENCH_VERSION);
            exit(0);
        case ':': cli_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (json && !list)
        cli_usage_error("--json goes with --list");
    if (list) {
        json ? list_models_json() : list_models();
        exit(0);
    }
    if (!model_name)
        cli_usage_error("--model is required; --list shows the models");
    const struct server_model *model = find_model(model_name);
    if (!model)
        cli_usage_error("unknown model '%s'; --list shows the models", model_name);
    if (cfg->threads && !model->threads_meaning)
        cli_usage_error("model '%s' does not take --threads", model->name);
    if ((cfg->work.work_us || cfg->work.sleep_us) && !cfg->work.msg_size)
        cli_usage_error("--work-us and --sleep-us need --msg-size");
    if (cfg->work.cost_every
        && (!cfg->work.msg_size || !(cfg->work.work_us || cfg->work.sleep_us)))
        cli_usage_error("--cost-every needs --msg-size and a cost (--work-us or --sleep-us)");
    return model;
}

/* --- signals ------------------------------------------------------------------------------ */

static struct server srv;
static atomic_bool finished;

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

/* All signals land here: the thread turns the first SIGINT/SIGTERM into a stop request, then
 * gives the model STOP_GRACE_SECONDS to finish. A second signal, or a model that does not stop,
 * ends the process at once: Ctrl-C always works. */
static void *signal_thread(void *arg)
{
    (void)arg;
    sigset_t set;
    stop_signals(&set);
    int sig;
    sigwait(&set, &sig);
    if (atomic_load(&finished))
        return NULL;
    server_request_stop(&srv);
    struct timespec grace = {.tv_sec = STOP_GRACE_SECONDS};
    for (;;) {
        sig = sigtimedwait(&set, NULL, &grace);
        if (atomic_load(&finished))
            return NULL;
        if (sig < 0 && errno == EINTR)
            continue;
        if (sig < 0)
            fprintf(stderr, "%s: the model did not stop within %d s; exiting\n", cli_prog,
                    STOP_GRACE_SECONDS);
        else
            fprintf(stderr, "%s: second signal; exiting without waiting\n", cli_prog);
        _exit(1);
    }
}

/* --- main --------------------------------------------------------------------------------- */

static void print_summary(const struct server_model *model, struct server_stats *st)
{
    fprintf(stderr,
            "%s: stopped model=%s connections=%" PRIu64 " bytes_echoed=%" PRIu64
            " shed=%" PRIu64 " accept_pauses=%" PRIu64,
            cli_prog, model->name, atomic_load(&st->connections), atomic_load(&st->bytes_echoed),
            atomic_load(&st->shed), atomic_load(&st->accept_pauses));
    unsigned n = atomic_load(&st->threads_reported);
    for (unsigned i = 0; i < n && i < SERVER_STATS_THREADS; i++)
        fprintf(stderr, "%s%" PRIu64, i ? "," : " per_thread=", atomic_load(&st->per_thread[i]));
    if (model->serves_one_connection_per_thread)
        fprintf(stderr, " workers=%u pool_all_busy=%" PRIu64, server_pool_size(&srv),
                atomic_load(&st->pool_all_busy));
    if (st->note[0])
        fprintf(stderr, " note=%.*s", (int)sizeof st->note, st->note);
    fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    cli_prog = "echo-server";
    struct server_config cfg;
    const struct server_model *model = parse_args(argc, argv, &cfg);

    char why[256] = "";
    if (model->probe && model->probe(why, sizeof why) < 0) {
        fprintf(stderr, "%s: model '%s' cannot run here: %s\n", cli_prog, model->name, why);
        return EXIT_UNAVAILABLE;
    }

    struct net_addr addr;
    if (net_resolve(cfg.host, cfg.port, &addr) < 0)
        cli_usage_error("--host: cannot resolve '%s'", cfg.host);

    /* Event-driven models hold up to 100,000 sockets; every model gets the same limit. */
    if (cfg.max_fds) {
        int e = net_set_fd_limit(cfg.max_fds);
        if (e < 0) {
            fprintf(stderr, "%s: --max-fds %ld: %s\n", cli_prog, cfg.max_fds, strerror(-e));
            return 1;
        }
    } else {
        (void)net_raise_fd_limit();
    }
    /* A client that vanishes mid-write must not kill the server: writes use MSG_NOSIGNAL and
     * SIGPIPE is ignored for anything else (liburing, libraries). */
    signal(SIGPIPE, SIG_IGN);
    /* Block the stop signals in every thread the model will create (they inherit this mask), so
     * they reach only the signal thread. SIGCHLD too: the fork model reads it from a signalfd. */
    sigset_t blocked;
    stop_signals(&blocked);
    sigaddset(&blocked, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &blocked, NULL);

    /* Shared with child processes, which add their connections' bytes before exiting. */
    struct server_stats *stats = mmap(NULL, sizeof *stats, PROT_READ | PROT_WRITE,
                                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (stats == MAP_FAILED) {
        fprintf(stderr, "%s: mmap: %s\n", cli_prog, strerror(errno));
        return 1;
    }
    int err = harness_init(&srv, &cfg, stats);
    if (err < 0) {
        fprintf(stderr, "%s: %s\n", cli_prog, strerror(-err));
        return 1;
    }

    char where[NET_ADDR_STRLEN];
    net_format(&addr, where, sizeof where);
    if (model->listener_per_thread && cfg.port != 0) {
        /* SO_REUSEPORT would let us share a port another server holds with it too: check
         * first, with a plain bind, that the port is free. */
        int probe = net_listen(&addr, 1, false);
        if (probe < 0) {
            fprintf(stderr, "%s: cannot listen on %s: %s\n", cli_prog, where, strerror(-probe));
            return 1;
        }
        close(probe);
    }
    srv.listen_fd = net_listen(&addr, cfg.backlog, model->listener_per_thread);
    if (srv.listen_fd < 0) {
        fprintf(stderr, "%s: cannot listen on %s: %s\n", cli_prog, where, strerror(-srv.listen_fd));
        return 1;
    }
    net_local_addr(srv.listen_fd, &srv.addr);
    srv.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_t sig_tid;
    if (srv.stop_fd < 0 || (err = pthread_create(&sig_tid, NULL, signal_thread, NULL)) != 0) {
        fprintf(stderr, "%s: cannot start: %s\n", cli_prog, strerror(srv.stop_fd < 0 ? errno : err));
        return 1;
    }

    net_format(&srv.addr, where, sizeof where);
    printf("listening on %s model=%s pid=%ld\n", where, model->name, (long)getpid());
    fflush(stdout);

    err = model->run(&srv);
    if (err == 0 && srv.failed_call)
        err = srv.failed_err;

    atomic_store(&finished, true);
    pthread_kill(sig_tid, SIGTERM); /* wakes the signal thread, which sees `finished` */
    pthread_join(sig_tid, NULL);
    close(srv.listen_fd);
    close(srv.stop_fd);
    if (err < 0) {
        fprintf(stderr, "%s: model '%s' failed%s%s: %s\n", cli_prog, model->name,
                srv.failed_call ? " in " : "", srv.failed_call ? srv.failed_call : "",
                strerror(-err));
        return 1;
    }
    print_summary(model, stats);
    return 0;
}
