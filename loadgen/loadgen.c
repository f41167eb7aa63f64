/*
 * loadgen - a multithreaded load generator for TCP echo servers.
 *
 * Closed loop (each connection keeps --pipeline messages in flight) or open loop (--rate
 * messages per second, latency measured from each message's scheduled time). Every echoed byte
 * is verified; errors are counted by kind; latency goes into HDR histograms, one per thread,
 * merged at the end. See docs/methodology.md for the exact definitions.
 *
 *   loadgen --port 7007 -t 2 -c 64 -d 10s
 *   loadgen --port 7007 -c 16 --rate 20k --arrival poisson --json out.json --hgrm out.hgrm
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "json.h"
#include "loadgen.h"
#include "cli.h"
#include "parse.h"
#include "sysinfo.h"

#define PROBE_TIMEOUT_MS 5000
/* --rate bounds: below, the gap between a worker's messages would not fit in 64-bit
 * nanoseconds; above, it would round to nothing (and no loopback server goes near it). */
#define RATE_MIN 0.1
#define RATE_MAX 100e6
/* --cost-every: the bound echo-server takes, so that both sides accept the same N. */
#define COST_EVERY_MAX 1000000
/* --connect-rate bounds (connects per second). */
#define CONNECT_RATE_MIN 1
#define CONNECT_RATE_MAX 10e6
/* --setup-timeout default: 100,000 connections at 2,000 connects/s, with room to spare. */
#define SETUP_TIMEOUT_DEFAULT_NS (60 * NS_PER_SEC)
/* The ephemeral port range when /proc does not say (Linux's default). */
#define PORT_RANGE_DEFAULT 28232

static struct net_addr sources[LG_MAX_SOURCES];


static void usage(FILE *out)
{
    fprintf(out,
"Usage: %s --port P [options]\n"
"\n"
"Drives a TCP echo server (RFC 862) and measures throughput and latency. Every echoed byte\n"
"is compared with the byte sent; any difference makes the exit status 1. It also reports\n"
"its own stalls: the times the machine kept it from running (docs/methodology.md).\n"
"Every duration T is a number and a unit, ns, us, ms, s, m or h (500ms, 1.5s, 2m);\n"
"a bare number means seconds.\n"
"\n"
"Target and load:\n"
"  -H, --host H          server address, IPv4 or IPv6 (default 127.0.0.1)\n"
"  -p, --port P          server port (required)\n"
"  -t, --threads N       worker threads, each with its own connections (default 1)\n"
"  -c, --connections N   connections in total, at least --threads (default 10)\n"
"  -d, --duration T      measured time, e.g. 500ms, 10s, 2m (default 10s)\n"
"      --warmup T        unmeasured time before it (default 1s; 0 for none)\n"
"  -s, --size B          message size, e.g. 128, 4k (default 128)\n"
"      --pipeline K      messages in flight per connection (default 1)\n"
"\n"
"Closed loop (the default): every connection keeps K messages in flight; a message's latency\n"
"runs from handing it to send() to receiving its last echoed byte.\n"
"Open loop:\n"
"  -R, --rate R          R messages per second in total, from 0.1 to 100M (e.g. 5000, 20k,\n"
"                        1.5M), spread over the connections that have room; latency runs\n"
"                        from each message's scheduled time, so server stalls are not hidden\n"
"      --arrival A       uniform (default) or poisson inter-arrival times\n"
"\n"
"Connections:\n"
"      --idle            open the connections and hold them without sending anything\n"
"                        (to measure what idle connections cost a server)\n"
"      --reconnect N     close and reconnect after N messages per connection\n"
"                        (1 = connect per request); connect latency is reported too\n"
"      --timeout T       a connection with no echo for T is counted and closed; also\n"
"                        bounds each connect and the final drain (default 5s)\n"
"      --source LIST     connect from these local addresses, round robin, e.g.\n"
"                        127.0.0.2-127.0.0.9 or 10.0.0.1,10.0.0.2 (IPv4 ranges, or single\n"
"                        addresses of either family): each address has the whole ephemeral\n"
"                        port range. Default: the kernel's choice; for a 127.x.x.x target\n"
"                        beyond a quarter of the port range, 127.0.0.1, 127.0.0.2, ... (one\n"
"                        per quarter), as connect() slows down when the range fills\n"
"      --connect-rate R  set up the connections at R connects per second in total\n"
"                        (1 to 10M, e.g. 2000, 5k); default: as fast as they complete\n"
"      --setup-timeout T every connection must be up within T of the start, or loadgen\n"
"                        stops with exit status 1 naming it (default 60s)\n"
"\n"
"Measurement and output:\n"
"      --cpus LIST       pin thread i to the i-th CPU of LIST, e.g. 1 or 0,2-3\n"
"      --busy-poll       never sleep while the load runs: poll the sockets and the clock.\n"
"                        Cheaper per message and exact open-loop timing, but each thread\n"
"                        takes a whole CPU: use with --cpus on CPUs the server does not use\n"
"      --interval T      print a progress line every T on stderr\n"
"      --json FILE       write every figure, the configuration and the environment\n"
"      --hgrm FILE       write the latency distribution (HdrHistogram format, microseconds)\n"
"      --cost-every N    also report the latency of two classes of messages, as with\n"
"                        echo-server --cost-every N (1 to 1,000,000): messages are numbered\n"
"                        1, 2, 3 ... per connection (again from 1 on a new one); message k\n"
"                        is costly when k %% N == 0, else cheap\n"
"      --server-pid PID  also measure the CPU time of the server (PID and its threads and\n"
"                        child processes) during the window: CPU per request; and how often\n"
"                        it was preempted (involuntary context switches)\n"
"  -q, --quiet           no summary on stdout (warnings still go to stderr)\n"
"      --env             print the environment record as JSON and exit\n"
"  -h, --help            show this help\n"
"  -V, --version         show the version and build\n"
"\n"
"Exit status: 0 done (errors, if any, are reported), 1 echo mismatch or runtime failure\n"
"(server unreachable, ...), 2 bad usage.\n",
            cli_prog);
}

static void write_env_json(void)
{
    struct json j;
    json_start(&j, stdout);
    sysinfo_write_json(&j, NULL);
    json_finish(&j);
}

/* A rate option's value within [min, max]; anything else is a usage error saying `what`. */
static double rate_arg(const char *opt, const char *text, double min, double max,
                       const char *what)
{
    double r;
    if (parse_rate(text, &r) != 0 || r < min || r > max)
        cli_usage_error("%s: '%s' is not a rate %s", opt, text, what);
    return r;
}

/* The size of the ephemeral port range (net.ipv4.ip_local_port_range, used by IPv6 too). */
static unsigned port_range_size(unsigned *lo, unsigned *hi)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
    int got = f ? fscanf(f, "%u %u", lo, hi) : 0;
    if (f)
        fclose(f);
    if (got != 2 || *hi < *lo) {
        *lo = 65535 - PORT_RANGE_DEFAULT + 1;
        *hi = 65535;
        return PORT_RANGE_DEFAULT;
    }
    return *hi - *lo + 1;
}

static void add_source(struct lg_config *cfg, const struct net_addr *a, const char *item)
{
    if (cfg->nsources == LG_MAX_SOURCES)
        cli_usage_error("--source: more than %d addresses", LG_MAX_SOURCES);
    if (a->ss.ss_family != cfg->addr.ss.ss_family)
        cli_usage_error("--source: '%s' is not of the --host address's family", item);
    sources[cfg->nsources++] = *a;
}

/* --source LIST: comma-separated addresses and IPv4 ranges A-B (both ends included). */
static void parse_sources(const char *list, struct lg_config *cfg)
{
    char buf[4096];
    if (strlen(list) >= sizeof buf)
        cli_usage_error("--source: the list is too long");
    strcpy(buf, list);
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        char *dash = strchr(item, '-');
        struct net_addr a;
        if (!dash) {
            struct in6_addr probe6;
            struct in_addr probe4;
            if ((inet_pton(AF_INET, item, &probe4) != 1 && inet_pton(AF_INET6, item, &probe6) != 1)
                || net_resolve(item, 0, &a) < 0)
                cli_usage_error("--source: '%s' is not an IPv4 or IPv6 address", item);
            add_source(cfg, &a, item);
            continue;
        }
        *dash = '\0';
        struct in_addr from, to;
        if (inet_pton(AF_INET, item, &from) != 1 || inet_pton(AF_INET, dash + 1, &to) != 1
            || ntohl(to.s_addr) < ntohl(from.s_addr))
            cli_usage_error("--source: '%s-%s' is not an IPv4 range such as "
                            "127.0.0.2-127.0.0.9", item, dash + 1);
        for (uint32_t h = ntohl(from.s_addr);; h++) {
            struct net_addr r = {.len = sizeof(struct sockaddr_in)};
            struct sockaddr_in *sin = (struct sockaddr_in *)&r.ss;
            sin->sin_family = AF_INET;
            sin->sin_addr.s_addr = htonl(h);
            add_source(cfg, &r, item);
            if (h == ntohl(to.s_addr))
                break;
        }
    }
    if (cfg->nsources == 0)
        cli_usage_error("--source: no address in '%s'", list);
    cfg->sources = sources;
}

/* No --source: a 127.x.x.x target is reached from as many loopback addresses as keep each
 * (source, target) pair within 1/LG_AUTO_SOURCE_SHARE of the port range. connect() searches
 * the range for a free port from a random place, even ports first, so its cost grows with the
 * ports already taken (docs/loadgen-performance.md: 70 us, then 1 ms past half the range). */
static void choose_sources(struct lg_config *cfg)
{
    if (cfg->addr.ss.ss_family != AF_INET)
        return;
    const struct sockaddr_in *target = (const struct sockaddr_in *)&cfg->addr.ss;
    if ((ntohl(target->sin_addr.s_addr) >> 24) != 127)
        return;
    unsigned lo, hi;
    unsigned per = port_range_size(&lo, &hi) / LG_AUTO_SOURCE_SHARE;
    unsigned k = (cfg->connections + per - 1) / (per ? per : 1);
    if (k <= 1)
        return;
    if (k > 254)
        k = 254;
    for (unsigned i = 0; i < k; i++) {
        struct net_addr r = {.len = sizeof(struct sockaddr_in)};
        struct sockaddr_in *sin = (struct sockaddr_in *)&r.ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(0x7f000001u + i);
        sources[i] = r;
    }
    cfg->nsources = k;
    cfg->sources = sources;
    cfg->auto_sources = true;
}

static void parse_args(int argc, char **argv, struct lg_config *cfg)
{
    enum { OPT_WARMUP = 256, OPT_PIPELINE, OPT_ARRIVAL, OPT_RECONNECT, OPT_TIMEOUT, OPT_CPUS,
           OPT_INTERVAL, OPT_JSON, OPT_HGRM, OPT_ENV, OPT_SERVER_PID, OPT_BUSY_POLL, OPT_IDLE,
           OPT_COST_EVERY, OPT_SOURCE, OPT_CONNECT_RATE, OPT_SETUP_TIMEOUT };
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 't'},
        {"connections", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"size", required_argument, NULL, 's'},
        {"pipeline", required_argument, NULL, OPT_PIPELINE},
        {"rate", required_argument, NULL, 'R'},
        {"arrival", required_argument, NULL, OPT_ARRIVAL},
        {"reconnect", required_argument, NULL, OPT_RECONNECT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"cpus", required_argument, NULL, OPT_CPUS},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"json", required_argument, NULL, OPT_JSON},
        {"hgrm", required_argument, NULL, OPT_HGRM},
        {"server-pid", required_argument, NULL, OPT_SERVER_PID},
        {"busy-poll", no_argument, NULL, OPT_BUSY_POLL},
        {"idle", no_argument, NULL, OPT_IDLE},
        {"cost-every", required_argument, NULL, OPT_COST_EVERY},
        {"source", required_argument, NULL, OPT_SOURCE},
        {"connect-rate", required_argument, NULL, OPT_CONNECT_RATE},
        {"setup-timeout", required_argument, NULL, OPT_SETUP_TIMEOUT},
        {"quiet", no_argument, NULL, 'q'},
        {"env", no_argument, NULL, OPT_ENV},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    *cfg = (struct lg_config){
        .host = "127.0.0.1",
        .threads = 1,
        .connections = 10,
        .duration_ns = 10 * NS_PER_SEC,
        .warmup_ns = NS_PER_SEC,
        .size = 128,
        .pipeline = 1,
        .timeout_ns = 5 * NS_PER_SEC,
        .setup_timeout_ns = SETUP_TIMEOUT_DEFAULT_NS,
    };
    bool have_port = false, have_arrival = false;
    const char *source_list = NULL;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":H:p:t:c:d:s:R:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'H': cfg->host = optarg; break;
        case 'p':
            cfg->port = (uint16_t)cli_uint("--port", optarg, 1, 65535);
            have_port = true;
            break;
        case 't': cfg->threads = (unsigned)cli_uint("--threads", optarg, 1, 256); break;
        case 'c':
            cfg->connections = (unsigned)cli_uint("--connections", optarg, 1, 1000000);
            break;
        case 'd': cfg->duration_ns = cli_duration("--duration", optarg, NS_PER_MS); break;
        case OPT_WARMUP: cfg->warmup_ns = cli_duration("--warmup", optarg, 0); break;
        case 's': cfg->size = (uint32_t)cli_bytes("--size", optarg, 1, 64ull << 20); break;
        case OPT_PIPELINE: cfg->pipeline = (uint32_t)cli_uint("--pipeline", optarg, 1, 1024); break;
        case 'R':
            cfg->rate = rate_arg("--rate", optarg, RATE_MIN, RATE_MAX,
                                 "from 0.1 to 100M messages per second (such as 5000, 20k or "
                                 "1.5M)");
            break;
        case OPT_ARRIVAL:
            if (strcmp(optarg, "uniform") == 0)
                cfg->arrival = ARRIVAL_UNIFORM;
            else if (strcmp(optarg, "poisson") == 0)
                cfg->arrival = ARRIVAL_POISSON;
            else
                cli_usage_error("--arrival: '%s' is neither uniform nor poisson", optarg);
            have_arrival = true;
            break;
        case OPT_RECONNECT:
            cfg->reconnect = cli_uint("--reconnect", optarg, 1, UINT64_MAX);
            break;
        case OPT_TIMEOUT: cfg->timeout_ns = cli_duration("--timeout", optarg, NS_PER_MS); break;
        case OPT_CPUS:
            cfg->ncpus = parse_cpu_list(optarg, cfg->cpus, LG_MAX_CPUS);
            if (cfg->ncpus <= 0)
                cli_usage_error("--cpus: '%s' is not a CPU list such as 1 or 0,2-3", optarg);
            break;
        case OPT_INTERVAL: cfg->interval_ns = cli_duration("--interval", optarg, 10 * NS_PER_MS); break;
        case OPT_JSON: cfg->json_path = optarg; break;
        case OPT_HGRM: cfg->hgrm_path = optarg; break;
        case OPT_BUSY_POLL: cfg->busy_poll = true; break;
        case OPT_IDLE: cfg->idle = true; break;
        case OPT_COST_EVERY:
            cfg->cost_every = (uint32_t)cli_uint("--cost-every", optarg, 1, COST_EVERY_MAX);
            break;
        case OPT_SOURCE: source_list = optarg; break;
        case OPT_CONNECT_RATE:
            cfg->connect_rate = rate_arg("--connect-rate", optarg, CONNECT_RATE_MIN,
                                         CONNECT_RATE_MAX,
                                         "from 1 to 10M connects per second (such as 2000 or 5k)");
            break;
        case OPT_SETUP_TIMEOUT:
            cfg->setup_timeout_ns = cli_duration("--setup-timeout", optarg, NS_PER_MS);
            break;
        case OPT_SERVER_PID:
            cfg->server_pid = (pid_t)cli_uint("--server-pid", optarg, 1, INT32_MAX);
            if (kill(cfg->server_pid, 0) != 0 && errno == ESRCH)
                cli_usage_error("--server-pid: no process %ld", (long)cfg->server_pid);
            break;
        case 'q': cfg->quiet = true; break;
        case OPT_ENV: write_env_json(); exit(0);
        case 'h': usage(stdout); exit(0);
        case 'V': printf("loadgen %s (commit %s)\n", ECHOBENCH_VERSION, build_commit()); exit(0);
        case ':': cli_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!have_port)
        cli_usage_error("--port is required");
    if (cfg->connections < cfg->threads)
        cli_usage_error("--connections (%u) must be at least --threads (%u)", cfg->connections,
                    cfg->threads);
    if (have_arrival && cfg->rate == 0)
        cli_usage_error("--arrival needs --rate");
    if (cfg->idle && (cfg->rate > 0 || cfg->reconnect))
        cli_usage_error("--idle sends nothing: it does not go with --rate or --reconnect");
    if (cfg->idle && cfg->cost_every)
        cli_usage_error("--idle sends nothing: it does not go with --cost-every");
    if (net_resolve(cfg->host, cfg->port, &cfg->addr) < 0)
        cli_usage_error("--host: cannot resolve '%s'", cfg->host);
    if (source_list)
        parse_sources(source_list, cfg);
    else
        choose_sources(cfg);
    if (cfg->connect_rate > 0
        && (double)cfg->connections / cfg->connect_rate > (double)cfg->setup_timeout_ns / 1e9)
        cli_usage_error("--connect-rate %.0f: %u connections take %.1f s, longer than "
                        "--setup-timeout %.1f s", cfg->connect_rate, cfg->connections,
                        (double)cfg->connections / cfg->connect_rate,
                        (double)cfg->setup_timeout_ns / 1e9);
    long cpus = sysconf(_SC_NPROCESSORS_CONF);
    for (int i = 0; i < cfg->ncpus; i++)
        if (cfg->cpus[i] >= cpus)
            cli_usage_error("--cpus: CPU %d does not exist (this machine has %ld)", cfg->cpus[i],
                        cpus);
}

/* One connection attempt before the load starts: an unreachable server is a clear error, not a
 * run full of connect errors. */
static int probe_server(const struct lg_config *cfg)
{
    int fd = net_connect_from(&cfg->addr, cfg->nsources ? &cfg->sources[0] : NULL, true);
    if (fd < 0)
        return fd;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int timeout = cfg->timeout_ns / NS_PER_MS < PROBE_TIMEOUT_MS
                      ? (int)(cfg->timeout_ns / NS_PER_MS) : PROBE_TIMEOUT_MS;
    int r;
    while ((r = poll(&p, 1, timeout)) < 0 && errno == EINTR)
        ;
    int err = r == 0 ? -ETIMEDOUT : net_socket_error(fd);
    close(fd);
    return err;
}

static uint8_t *make_pattern(void)
{
    uint8_t *p = malloc(2 * (size_t)LG_PATTERN_LEN);
    if (!p)
        return NULL;
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < LG_PATTERN_LEN; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
    /* Stored twice, so any window of up to LG_PATTERN_LEN bytes is contiguous. */
    memcpy(p + LG_PATTERN_LEN, p, LG_PATTERN_LEN);
    return p;
}

/* Prints one --interval line once every worker has published, or a quarter interval late. */
static void print_interval(struct lg_shared *sh, uint64_t boundary, uint64_t t0)
{
    struct lg_interval *iv = sh->interval;
    const struct lg_config *cfg = sh->cfg;
    uint64_t deadline_ns = boundary + cfg->interval_ns / 4;
    pthread_mutex_lock(&iv->lock);
    while (iv->contributors < cfg->threads && clock_now_ns() < deadline_ns) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 5 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&iv->ready, &iv->lock, &ts);
    }
    double elapsed = (double)(boundary - t0) / 1e9;
    const char *phase = boundary <= t0 + cfg->warmup_ns ? " (warm-up)" : "";
    fprintf(stderr, "[%7.1fs] %10.0f req/s  p50 %8.1f us  p99 %8.1f us%s\n", elapsed,
            (double)iv->requests / ((double)cfg->interval_ns / 1e9),
            hist_value_at_percentile(&iv->latency, 50) / 1e3,
            hist_value_at_percentile(&iv->latency, 99) / 1e3, phase);
    hist_reset(&iv->latency);
    iv->requests = 0;
    iv->contributors = 0;
    iv->index++;
    pthread_mutex_unlock(&iv->lock);
}

/* The main thread during the run: waits for the workers, turns Ctrl-C into an early end of the
 * window (a second Ctrl-C exits at once), and prints interval lines. Returns true if
 * interrupted. */
static bool supervise(struct lg_shared *sh, uint64_t t0)
{
    const struct lg_config *cfg = sh->cfg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    bool interrupted = false;
    uint64_t next_interval = cfg->interval_ns ? t0 + cfg->interval_ns : UINT64_MAX;
    while (atomic_load(&sh->finished) < cfg->threads) {
        uint64_t now = clock_now_ns();
        if (next_interval <= now && next_interval <= lg_shared_window(sh).stop) {
            print_interval(sh, next_interval, t0);
            next_interval += cfg->interval_ns;
            continue;
        }
        uint64_t wait = 50 * NS_PER_MS;
        if (next_interval > now && next_interval - now < wait)
            wait = next_interval - now;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig > 0) {
            if (interrupted) {
                fprintf(stderr, "%s: interrupted again; exiting without a report\n", cli_prog);
                exit(130);
            }
            interrupted = true;
            atomic_store(&sh->stop_at_ns, clock_now_ns());
            lg_sampler_wake(sh); /* it reads the window's end now, not at the planned one */
        }
    }
    return interrupted;
}

int main(int argc, char **argv)
{
    cli_prog = "loadgen";
    struct lg_config cfg;
    parse_args(argc, argv, &cfg);
    signal(SIGPIPE, SIG_IGN);

    long limit = net_raise_fd_limit();
    if (limit > 0 && (long)cfg.connections + 32 > limit) {
        fprintf(stderr, "%s: %u connections need more file descriptors than the limit of %ld "
                        "(raise it with ulimit -n)\n", cli_prog, cfg.connections, limit);
        return 1;
    }
    unsigned port_lo, port_hi, ports = port_range_size(&port_lo, &port_hi);
    unsigned per_pair = cfg.nsources ? (cfg.connections + cfg.nsources - 1) / cfg.nsources
                                     : cfg.connections;
    if (per_pair > ports) {
        fprintf(stderr, "%s: %u connections from one source address need more than the %u "
                        "ephemeral ports of net.ipv4.ip_local_port_range (%u-%u): spread them "
                        "over more addresses with --source\n", cli_prog, per_pair, ports,
                port_lo, port_hi);
        return 1;
    }
    int err = probe_server(&cfg);
    if (err < 0) {
        char where[NET_ADDR_STRLEN];
        net_format(&cfg.addr, where, sizeof where);
        fprintf(stderr, "%s: cannot connect to %s: %s\n", cli_prog, where, strerror(-err));
        return 1;
    }

    struct lg_shared sh = {.cfg = &cfg};
    atomic_init(&sh.stop_at_ns, UINT64_MAX);
    atomic_init(&sh.finished, 0);
    struct lg_interval interval;
    struct lg_worker *workers = calloc(cfg.threads, sizeof *workers);
    uint8_t *pattern = make_pattern();
    if (!workers || !pattern)
        goto nomem;
    sh.pattern = pattern;
    if (cfg.interval_ns) {
        memset(&interval, 0, sizeof interval);
        if (hist_init(&interval.latency) < 0)
            goto nomem;
        pthread_mutex_init(&interval.lock, NULL);
        pthread_cond_init(&interval.ready, NULL);
        sh.interval = &interval;
    }
    /* The workers, the sampler and this thread start together. */
    pthread_barrier_init(&sh.ready, NULL, cfg.threads + 2);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&sh.wake, &monotonic);
    pthread_condattr_destroy(&monotonic);
    pthread_mutex_init(&sh.wake_lock, NULL);
    struct lg_sampler sampler = {.shared = &sh};

    /* Ctrl-C is taken by this thread (sigtimedwait); workers inherit the blocked mask. */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, NULL);

    unsigned next_conn = 0;
    for (unsigned i = 0; i < cfg.threads; i++) {
        struct lg_worker *w = &workers[i];
        w->index = i;
        w->shared = &sh;
        w->first_conn = next_conn;
        w->nconns = cfg.connections / cfg.threads + (i < cfg.connections % cfg.threads);
        w->rate = cfg.rate * w->nconns / cfg.connections;
        next_conn += w->nconns;
        if (lg_result_init(&w->result, cfg.cost_every != 0) < 0)
            goto nomem;
    }
    uint64_t setup_start = clock_now_ns();
    err = pthread_create(&sampler.tid, NULL, lg_sampler_main, &sampler);
    for (unsigned i = 0; err == 0 && i < cfg.threads; i++)
        err = pthread_create(&workers[i].tid, NULL, lg_worker_main, &workers[i]);
    if (err != 0) {
        fprintf(stderr, "%s: cannot start thread: %s\n", cli_prog, strerror(err));
        return 1; /* the threads already started are parked at the barrier; exit ends them */
    }

    pthread_barrier_wait(&sh.ready); /* every worker's set-up is over (or --setup-timeout) */
    uint64_t t0 = clock_now_ns();
    atomic_store(&sh.start_ns, t0);
    /* Written by the workers before the first wait: read after it. */
    bool setup_stopped = false;
    for (unsigned i = 0; i < cfg.threads; i++)
        setup_stopped |= workers[i].result.setup_deadline_hit;
    if (setup_stopped)
        atomic_store(&sh.stop_at_ns, t0); /* no load: an empty window */
    pthread_barrier_wait(&sh.ready);
    bool interrupted = supervise(&sh, t0);

    struct lg_run run = {.cfg = &cfg, .interrupted = interrupted, .setup_ns = t0 - setup_start};
    struct lg_result *per_thread = calloc(cfg.threads, sizeof *per_thread);
    if (!per_thread || lg_result_init(&run.total, cfg.cost_every != 0) < 0)
        goto nomem;
    int status = 0;
    for (unsigned i = 0; i < cfg.threads; i++) {
        pthread_join(workers[i].tid, NULL);
        if (workers[i].error < 0) {
            fprintf(stderr, "%s: thread %u failed in %s: %s\n", cli_prog, i,
                    workers[i].failed_call ? workers[i].failed_call : "set-up",
                    strerror(-workers[i].error));
            status = 1;
        }
        lg_result_add(&run.total, &workers[i].result);
        per_thread[i] = workers[i].result;
    }
    run.per_thread = per_thread;
    pthread_join(sampler.tid, NULL);
    run.window = lg_shared_window(&sh);
    run.window_ns = run.window.end - run.window.start;
    lg_sampler_result(&sampler, &run);
    if (lg_merge_stalls(&run) < 0)
        goto nomem;
    lg_assess_saturation(&run);

    if (!cfg.quiet)
        lg_print_summary(&run, stdout);
    fflush(stdout);
    lg_print_warnings(&run, stderr);
    if (cfg.json_path && (err = lg_write_json(&run, cfg.json_path)) < 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", cli_prog, cfg.json_path, strerror(-err));
        status = 1;
    }
    if (cfg.hgrm_path && (err = lg_write_hgrm(&run, cfg.hgrm_path)) < 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", cli_prog, cfg.hgrm_path, strerror(-err));
        status = 1;
    }
    if (run.total.mismatched_bytes > 0)
        status = 1;
    if (setup_stopped) {
        fprintf(stderr, "%s: set-up stopped by --setup-timeout %.3g s: %" PRIu64 " of %u "
                        "connections established (%" PRIu64 " connect errors)\n", cli_prog,
                (double)cfg.setup_timeout_ns / 1e9, run.total.setup_established,
                cfg.connections, lg_setup_errors(&run.total));
        status = 1;
    }

    for (unsigned i = 0; i < cfg.threads; i++)
        lg_result_free(&workers[i].result);
    lg_result_free(&run.total);
    if (sh.interval)
        hist_free(&interval.latency);
    pthread_barrier_destroy(&sh.ready);
    free(per_thread);
    free(workers);
    free(pattern);
    return status;

nomem:
    fprintf(stderr, "%s: out of memory\n", cli_prog);
    return 1;
}
