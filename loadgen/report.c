/*
 * report.c - merging per-thread results and reporting them: the human summary, warnings, the
 * JSON document (docs/loadgen-json.md) and the .hgrm percentile distribution.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "json.h"
#include "loadgen.h"
#include "sysinfo.h"

/* A thread (or a pinned CPU's threads) busier than this during the window was the bottleneck. */
#define SATURATION_THRESHOLD 0.90
/* Open loop: below this share of the requested rate, the run did not deliver its load. */
#define RATE_SHORTFALL 0.99
/* Stalls longer than this share of p99 (and than 1 ms) may explain the latency tail. */
#define STALL_TAIL_SHARE 0.25

const char *const lg_error_names[LG_ERR_KINDS] = {
    [LG_ERR_CONNECT] = "connect", [LG_ERR_RESET] = "reset",     [LG_ERR_EOF] = "eof",
    [LG_ERR_TIMEOUT] = "timeout", [LG_ERR_MISMATCH] = "mismatch", [LG_ERR_OTHER] = "other",
};

const char *const lg_connect_error_names[LG_CERR_KINDS] = {
    [LG_CERR_REFUSED] = "refused",         [LG_CERR_TIMEOUT] = "timed_out",
    [LG_CERR_ADDRNOTAVAIL] = "addrnotavail", [LG_CERR_NOFILE] = "emfile",
    [LG_CERR_OTHER] = "other",
};

enum lg_connect_error lg_connect_error_kind(int err)
{
    switch (-err) {
    case ECONNREFUSED: return LG_CERR_REFUSED;
    case ETIMEDOUT: return LG_CERR_TIMEOUT;
    case EADDRNOTAVAIL: return LG_CERR_ADDRNOTAVAIL;
    case EMFILE:
    case ENFILE: return LG_CERR_NOFILE;
    default: return LG_CERR_OTHER;
    }
}

int lg_result_init(struct lg_result *r, bool classes)
{
    memset(r, 0, sizeof *r);
    r->cpu = -1;
    if (hist_init(&r->latency) < 0 || hist_init(&r->connect_latency) < 0
        || hist_init(&r->setup_latency) < 0
        || (classes && (hist_init(&r->cheap) < 0 || hist_init(&r->costly) < 0))) {
        lg_result_free(r);
        return -ENOMEM;
    }
    return 0;
}

void lg_result_free(struct lg_result *r)
{
    hist_free(&r->latency);
    hist_free(&r->connect_latency);
    hist_free(&r->setup_latency);
    hist_free(&r->cheap);
    hist_free(&r->costly);
    free(r->stalls);
    r->stalls = NULL;
}

void lg_result_add(struct lg_result *dst, const struct lg_result *src)
{
    dst->requests += src->requests;
    dst->bytes += src->bytes;
    dst->scheduled += src->scheduled;
    dst->late += src->late;
    dst->unsent += src->unsent;
    dst->incomplete += src->incomplete;
    dst->mismatched_bytes += src->mismatched_bytes;
    for (int k = 0; k < LG_ERR_KINDS; k++)
        dst->errors[k] += src->errors[k];
    dst->connects += src->connects;
    dst->open_at_end += src->open_at_end;
    dst->cpu_ns += src->cpu_ns;
    dst->idle_ns += src->idle_ns;
    hist_add(&dst->latency, &src->latency);
    hist_add(&dst->connect_latency, &src->connect_latency);
    dst->setup_attempts += src->setup_attempts;
    dst->setup_established += src->setup_established;
    for (int k = 0; k < LG_CERR_KINDS; k++)
        dst->setup_errors[k] += src->setup_errors[k];
    hist_add(&dst->setup_latency, &src->setup_latency);
    dst->setup_deadline_hit |= src->setup_deadline_hit;
    if (dst->cheap.counts && src->cheap.counts) {
        hist_add(&dst->cheap, &src->cheap);
        hist_add(&dst->costly, &src->costly);
    }
}

static uint64_t total_errors(const struct lg_result *r)
{
    uint64_t n = 0;
    for (int k = 0; k < LG_ERR_KINDS; k++)
        n += r->errors[k];
    return n;
}

static double seconds(uint64_t ns)
{
    return (double)ns / 1e9;
}

/* Every ratio goes through these three: an empty window (Ctrl-C in the warm-up) or no
 * request gives 0, never inf or nan. */
static double per_second(uint64_t count, uint64_t window_ns)
{
    return window_ns ? (double)count / seconds(window_ns) : 0;
}

static double share(uint64_t part_ns, uint64_t window_ns)
{
    return window_ns ? (double)part_ns / (double)window_ns : 0;
}

static double per_request_us(uint64_t ns, uint64_t requests)
{
    return requests ? (double)ns / 1e3 / (double)requests : 0;
}

/* The share of the window a thread spent working rather than waiting for events or for the
 * next scheduled message. (Not its CPU time: with --busy-poll that is always 100%, and a thread
 * preempted by the server is starved even though its CPU time is low.) */
static double busy_fraction(const struct lg_run *run, const struct lg_result *t)
{
    if (run->window_ns == 0)
        return 0;
    double idle = (double)t->idle_ns / (double)run->window_ns;
    return idle < 1 ? 1 - idle : 0;
}

void lg_assess_saturation(struct lg_run *run)
{
    const struct lg_config *cfg = run->cfg;
    double worst = 0;
    for (unsigned i = 0; i < cfg->threads; i++) {
        const struct lg_result *t = &run->per_thread[i];
        /* Threads pinned to the same CPU share it: add them up. */
        double busy = busy_fraction(run, t);
        for (unsigned j = 0; t->cpu >= 0 && j < cfg->threads; j++)
            if (j != i && run->per_thread[j].cpu == t->cpu)
                busy += busy_fraction(run, &run->per_thread[j]);
        if (busy > worst)
            worst = busy;
    }
    run->max_busy = worst;
    run->saturated = worst >= SATURATION_THRESHOLD;
}

static int by_start(const void *a, const void *b)
{
    uint64_t x = ((const struct lg_stall *)a)->from, y = ((const struct lg_stall *)b)->from;
    return (x > y) - (x < y);
}

/* Adds one merged stall [from, to) to the figures. */
static void count_stall(struct lg_run *run, uint64_t from, uint64_t to)
{
    if (to <= from || to - from <= LG_STALL_NS)
        return;
    uint64_t len = to - from;
    if (len > run->stall_max_ns)
        run->stall_max_ns = len;
    run->stalls_over_1ms += len > NS_PER_MS;
    run->stall_excess_ns += len - LG_STALL_NS;
}

/* The union of every worker's stalls, clipped to the final window (Ctrl-C may have moved its
 * end after a worker logged one): overlapping stalls of different threads - the whole process
 * frozen - are one stall, as long as their union. */
int lg_merge_stalls(struct lg_run *run)
{
    size_t n = 0;
    for (unsigned i = 0; i < run->cfg->threads; i++) {
        n += run->per_thread[i].nstalls;
        run->stalls_lost += run->per_thread[i].stalls_lost;
    }
    if (n == 0)
        return 0;
    struct lg_stall *all = malloc(n * sizeof *all), *at = all;
    if (!all)
        return -ENOMEM;
    for (unsigned i = 0; i < run->cfg->threads; i++) {
        const struct lg_result *r = &run->per_thread[i];
        memcpy(at, r->stalls, r->nstalls * sizeof *at);
        at += r->nstalls;
    }
    qsort(all, n, sizeof *all, by_start);
    uint64_t lo = run->window.start, hi = run->window.end;
    uint64_t from = 0, to = 0; /* the stall being merged; empty at first */
    for (size_t k = 0; k < n; k++) {
        uint64_t a = all[k].from > lo ? all[k].from : lo, b = all[k].to < hi ? all[k].to : hi;
        if (b <= a)
            continue;
        if (a > to) {
            count_stall(run, from, to);
            from = a;
        }
        if (b > to)
            to = b;
    }
    count_stall(run, from, to);
    free(all);
    return 0;
}

static double achieved_ratio(const struct lg_run *run)
{
    double requested = run->cfg->rate;
    return requested > 0 ? per_second(run->total.requests, run->window_ns) / requested : 1;
}

/* Stalls long enough to explain the latency tail: over 1 ms and a quarter of p99. */
static bool stalls_explain_tail(const struct lg_run *run)
{
    const struct hist *h = &run->total.latency;
    return h->total > 0 && run->stall_max_ns > NS_PER_MS
           && (double)run->stall_max_ns > STALL_TAIL_SHARE * (double)hist_value_at_percentile(h, 99);
}

/* Every warning, one line each; `emit` gets them in order. */
static void for_each_warning(const struct lg_run *run, void (*emit)(void *, const char *),
                             void *arg)
{
    const struct lg_result *t = &run->total;
    char line[256];
    if (t->mismatched_bytes) {
        snprintf(line, sizeof line, "%" PRIu64 " echoed bytes differed from the bytes sent",
                 t->mismatched_bytes);
        emit(arg, line);
    }
    if (total_errors(t)) {
        snprintf(line, sizeof line, "%" PRIu64 " errors (see the errors line)", total_errors(t));
        emit(arg, line);
    }
    if (run->saturated) {
        snprintf(line, sizeof line,
                 "results limited by the load generator: a thread was busy %.0f%% of the "
                 "window (add threads or CPUs with -t/--cpus)", 100 * run->max_busy);
        emit(arg, line);
    }
    if (run->cfg->rate > 0 && run->window_ns > 0 && achieved_ratio(run) < RATE_SHORTFALL) {
        snprintf(line, sizeof line,
                 "achieved %.1f%% of the requested rate (%.0f of %.0f msg/s)",
                 100 * achieved_ratio(run), per_second(t->requests, run->window_ns),
                 run->cfg->rate);
        emit(arg, line);
    }
    if (t->unsent || t->incomplete) {
        snprintf(line, sizeof line,
                 "%" PRIu64 " messages were never sent and %" PRIu64 " never echoed in full "
                 "(connection failed or run ended); their latency is the time they had waited "
                 "(a lower bound)", t->unsent, t->incomplete);
        emit(arg, line);
    }
    if (t->latency.clamped) {
        snprintf(line, sizeof line, "%" PRIu64 " latencies above the histogram's range",
                 t->latency.clamped);
        emit(arg, line);
    }
    if (run->cfg->server_pid && !run->server_cpu_ok && run->window_ns > 0) {
        snprintf(line, sizeof line, "could not read the CPU time of server process %ld",
                 (long)run->cfg->server_pid);
        emit(arg, line);
    }
    if (stalls_explain_tail(run)) {
        snprintf(line, sizeof line,
                 "the platform stalled the load generator for up to %.1f ms in the window "
                 "(%" PRIu64 " stalls over 1 ms, steal %.1f ms): that alone may explain the "
                 "latency tail (p99 %.1f ms)", (double)run->stall_max_ns / 1e6,
                 run->stalls_over_1ms, (double)run->steal_ns / 1e6,
                 (double)hist_value_at_percentile(&t->latency, 99) / 1e6);
        emit(arg, line);
    }
    if (run->stalls_lost) {
        snprintf(line, sizeof line, "%" PRIu64 " stalls did not fit in the log and are not "
                 "counted", run->stalls_lost);
        emit(arg, line);
    }
    if (run->interrupted) {
        snprintf(line, sizeof line, "interrupted: the window lasted %.2f s",
                 seconds(run->window_ns));
        emit(arg, line);
    }
}

static void print_warning(void *out, const char *line)
{
    fprintf(out, "loadgen: warning: %s\n", line);
}

void lg_print_warnings(const struct lg_run *run, FILE *out)
{
    for_each_warning(run, print_warning, out);
}

static void print_latency_line(FILE *out, const char *label, const struct hist *h)
{
    if (h->total == 0) {
        fprintf(out, "  %-12s no samples\n", label);
        return;
    }
    fprintf(out,
            "  %-12s mean %.1f  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  p99.99 %.1f  "
            "max %.1f\n",
            label, hist_mean(h) / 1e3, hist_value_at_percentile(h, 50) / 1e3,
            hist_value_at_percentile(h, 90) / 1e3, hist_value_at_percentile(h, 99) / 1e3,
            hist_value_at_percentile(h, 99.9) / 1e3, hist_value_at_percentile(h, 99.99) / 1e3,
            (double)h->max / 1e3);
}

/* --cost-every: the cheap and the costly messages' latency side by side, on one line. */
static void print_classes_line(FILE *out, uint32_t every, const struct hist *cheap,
                               const struct hist *costly)
{
    fprintf(out, "  classes      every %" PRIu32 ":", every);
    const struct hist *h[2] = {cheap, costly};
    static const char *const name[2] = {"cheap", "costly"};
    for (int i = 0; i < 2; i++) {
        fprintf(out, "%s %s %" PRIu64, i ? ";" : "", name[i], h[i]->total);
        if (h[i]->total)
            fprintf(out, " p50 %.1f p99 %.1f max %.1f", hist_value_at_percentile(h[i], 50) / 1e3,
                    hist_value_at_percentile(h[i], 99) / 1e3, (double)h[i]->max / 1e3);
    }
    fprintf(out, " (us)\n");
}

uint64_t lg_setup_errors(const struct lg_result *r)
{
    uint64_t n = 0;
    for (int k = 0; k < LG_CERR_KINDS; k++)
        n += r->setup_errors[k];
    return n;
}

/* The set-up: how long, how fast, and its connect failures by kind. */
static void print_setup_line(const struct lg_run *run, FILE *out)
{
    const struct lg_result *t = &run->total;
    fprintf(out, "  set-up       %" PRIu64 " of %u connected in %.3f s: %.0f connects/s",
            t->setup_established, run->cfg->connections, seconds(run->setup_ns),
            per_second(t->setup_established, run->setup_ns));
    if (t->setup_latency.total)
        fprintf(out, ", connect p50 %.1f p99 %.1f max %.1f us",
                hist_value_at_percentile(&t->setup_latency, 50) / 1e3,
                hist_value_at_percentile(&t->setup_latency, 99) / 1e3,
                (double)t->setup_latency.max / 1e3);
    fprintf(out, "; connect errors ");
    if (lg_setup_errors(t) == 0)
        fprintf(out, "none");
    for (int k = 0, first = 1; k < LG_CERR_KINDS; k++)
        if (t->setup_errors[k]) {
            fprintf(out, "%s%s %" PRIu64, first ? "" : ", ", lg_connect_error_names[k],
                    t->setup_errors[k]);
            first = 0;
        }
    fprintf(out, "%s\n", t->setup_deadline_hit ? " (stopped by --setup-timeout)" : "");
}

void lg_print_summary(const struct lg_run *run, FILE *out)
{
    const struct lg_config *cfg = run->cfg;
    const struct lg_result *t = &run->total;
    char where[NET_ADDR_STRLEN];
    net_format(&cfg->addr, where, sizeof where);
    fprintf(out, "loadgen: %s, %u thread%s, %u connection%s, %u B messages, pipeline %u, ", where,
            cfg->threads, cfg->threads == 1 ? "" : "s", cfg->connections,
            cfg->connections == 1 ? "" : "s", cfg->size, cfg->pipeline);
    if (cfg->rate > 0)
        fprintf(out, "open loop %.0f msg/s (%s)", cfg->rate,
                cfg->arrival == ARRIVAL_POISSON ? "poisson" : "uniform");
    else
        fprintf(out, "closed loop");
    if (cfg->reconnect)
        fprintf(out, ", reconnect every %" PRIu64, cfg->reconnect);
    if (cfg->idle)
        fprintf(out, ", idle (no messages)");
    fprintf(out, ", %.1f s after %.1f s warm-up\n", seconds(run->window_ns),
            seconds(cfg->warmup_ns));

    print_setup_line(run, out);
    if (cfg->idle)
        fprintf(out, "  connections  %" PRIu64 " of %u open at the end of the window\n",
                t->open_at_end, cfg->connections);
    fprintf(out, "  requests     %" PRIu64 " in %.2f s: %.1f req/s, %.2f MB/s echoed\n",
            t->requests, seconds(run->window_ns), per_second(t->requests, run->window_ns),
            per_second(t->bytes, run->window_ns) / 1e6);
    if (cfg->rate > 0)
        fprintf(out, "  rate         requested %.1f/s, achieved %.1f/s (%.1f%%), late %" PRIu64
                     " of %" PRIu64 " scheduled\n",
                cfg->rate, per_second(t->requests, run->window_ns), 100 * achieved_ratio(run),
                t->late, t->scheduled);
    print_latency_line(out, "latency (us)", &t->latency);
    if (cfg->reconnect)
        print_latency_line(out, "connect (us)", &t->connect_latency);
    if (cfg->cost_every)
        print_classes_line(out, cfg->cost_every, &t->cheap, &t->costly);

    fprintf(out, "  errors       ");
    if (total_errors(t) == 0)
        fprintf(out, "none");
    for (int k = 0, first = 1; k < LG_ERR_KINDS; k++)
        if (t->errors[k]) {
            fprintf(out, "%s%s %" PRIu64, first ? "" : ", ", lg_error_names[k], t->errors[k]);
            first = 0;
        }
    if (t->mismatched_bytes)
        fprintf(out, " (%" PRIu64 " bytes differed)", t->mismatched_bytes);
    fprintf(out, "\n  loadgen      %.2f us CPU per request; ", per_request_us(t->cpu_ns, t->requests));
    for (unsigned i = 0; i < cfg->threads; i++) {
        const struct lg_result *r = &run->per_thread[i];
        double util = share(r->cpu_ns, run->window_ns);
        fprintf(out, "%sthread %u: %.0f%% CPU, %.0f%% busy", i ? "; " : "", i, 100 * util,
                100 * busy_fraction(run, r));
        if (r->cpu >= 0)
            fprintf(out, " on cpu %d", r->cpu);
    }
    fprintf(out, "%s\n", run->saturated ? ": SATURATED, results limited by the load generator"
                                        : ": not saturated");
    fprintf(out, "  stalls       max %.2f ms, %" PRIu64 " over 1 ms, %.2f ms beyond %.0f us in all",
            (double)run->stall_max_ns / 1e6, run->stalls_over_1ms,
            (double)run->stall_excess_ns / 1e6, (double)LG_STALL_NS / 1e3);
    if (run->steal_ok)
        fprintf(out, "; steal %.1f ms", (double)run->steal_ns / 1e6);
    if (run->switches_ok)
        fprintf(out, "; server involuntary switches %" PRIu64, run->switches);
    fprintf(out, "\n");
    if (cfg->server_pid && run->server_cpu_ok)
        fprintf(out, "  server CPU   %.2f s (%.0f%% of one CPU), %.2f us per request\n",
                seconds(run->server_cpu_ns), 100 * share(run->server_cpu_ns, run->window_ns),
                per_request_us(run->server_cpu_ns, t->requests));
}

/* --- JSON ------------------------------------------------------------------------------------ */

static void json_latency(struct json *j, const char *key, const struct hist *h)
{
    json_object_begin(j, key);
    json_uint(j, "count", h->total);
    if (h->total) {
        json_double(j, "mean", hist_mean(h) / 1e3);
        json_double(j, "stddev", hist_stddev(h) / 1e3);
        json_double(j, "min", (double)h->min / 1e3);
        json_double(j, "p50", (double)hist_value_at_percentile(h, 50) / 1e3);
        json_double(j, "p90", (double)hist_value_at_percentile(h, 90) / 1e3);
        json_double(j, "p99", (double)hist_value_at_percentile(h, 99) / 1e3);
        json_double(j, "p999", (double)hist_value_at_percentile(h, 99.9) / 1e3);
        json_double(j, "p9999", (double)hist_value_at_percentile(h, 99.99) / 1e3);
        json_double(j, "max", (double)h->max / 1e3);
    } else {
        static const char *const keys[] = {"mean", "stddev", "min", "p50", "p90",
                                           "p99", "p999", "p9999", "max"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            json_null(j, keys[i]);
    }
    json_object_end(j);
}

static void json_config(struct json *j, const struct lg_config *cfg)
{
    char where[NET_ADDR_STRLEN];
    net_format(&cfg->addr, where, sizeof where);
    json_object_begin(j, "config");
    json_string(j, "host", cfg->host);
    json_uint(j, "port", cfg->port);
    json_string(j, "address", where);
    json_uint(j, "threads", cfg->threads);
    json_uint(j, "connections", cfg->connections);
    json_double(j, "duration_s", seconds(cfg->duration_ns));
    json_double(j, "warmup_s", seconds(cfg->warmup_ns));
    json_uint(j, "size", cfg->size);
    json_uint(j, "pipeline", cfg->pipeline);
    json_string(j, "mode", cfg->rate > 0 ? "open" : "closed");
    if (cfg->rate > 0) {
        json_double(j, "rate", cfg->rate);
        json_string(j, "arrival", cfg->arrival == ARRIVAL_POISSON ? "poisson" : "uniform");
    } else {
        json_null(j, "rate");
        json_null(j, "arrival");
    }
    json_uint(j, "reconnect", cfg->reconnect);
    json_bool(j, "idle", cfg->idle);
    json_double(j, "timeout_s", seconds(cfg->timeout_ns));
    json_array_begin(j, "sources");
    for (unsigned i = 0; i < cfg->nsources; i++) {
        char text[NET_ADDR_STRLEN];
        net_format(&cfg->sources[i], text, sizeof text);
        *strrchr(text, ':') = '\0'; /* the port is always 0: the address alone */
        json_string(j, NULL, text);
    }
    json_array_end(j);
    json_bool(j, "auto_sources", cfg->auto_sources);
    if (cfg->connect_rate > 0)
        json_double(j, "connect_rate", cfg->connect_rate);
    else
        json_null(j, "connect_rate");
    json_double(j, "setup_timeout_s", seconds(cfg->setup_timeout_ns));
    json_array_begin(j, "cpus");
    for (int i = 0; i < cfg->ncpus; i++)
        json_int(j, NULL, cfg->cpus[i]);
    json_array_end(j);
    json_double(j, "interval_s", seconds(cfg->interval_ns));
    json_bool(j, "busy_poll", cfg->busy_poll);
    if (cfg->cost_every)
        json_uint(j, "cost_every", cfg->cost_every);
    else
        json_null(j, "cost_every");
    if (cfg->server_pid)
        json_int(j, "server_pid", cfg->server_pid);
    else
        json_null(j, "server_pid");
    json_object_end(j);
}

/* A histogram as power-of-two bins: [{"le_us": upper bound, "count": n}, ...], non-empty bins
 * only (the slots of struct hist never straddle a power of two). */
static void json_pow2_bins(struct json *j, const char *key, const struct hist *h)
{
    uint64_t bins[64] = {0};
    for (unsigned s = 0; s < HIST_SLOTS; s++)
        if (h->counts[s]) {
            uint64_t low = hist_slot_lowest(s);
            bins[low ? 63 - __builtin_clzll(low) : 0] += h->counts[s];
        }
    json_array_begin(j, key);
    for (int b = 0; b < 64; b++)
        if (bins[b]) {
            json_object_begin(j, NULL);
            json_double(j, "le_us", (double)(2ull << b) / 1e3);
            json_uint(j, "count", bins[b]);
            json_object_end(j);
        }
    json_array_end(j);
}

static void json_setup(struct json *j, const struct lg_run *run)
{
    const struct lg_result *t = &run->total;
    json_object_begin(j, "setup");
    json_uint(j, "connections", run->cfg->connections);
    json_uint(j, "established", t->setup_established);
    json_uint(j, "attempts", t->setup_attempts);
    json_double(j, "duration_s", seconds(run->setup_ns));
    json_double(j, "connect_rate", per_second(t->setup_established, run->setup_ns));
    json_string(j, "stopped_by", t->setup_deadline_hit ? "setup_timeout" : NULL);
    json_object_begin(j, "errors");
    for (int k = 0; k < LG_CERR_KINDS; k++)
        json_uint(j, lg_connect_error_names[k], t->setup_errors[k]);
    json_uint(j, "total", lg_setup_errors(t));
    json_object_end(j);
    json_latency(j, "connect_latency_us", &t->setup_latency);
    json_pow2_bins(j, "connect_latency_histogram", &t->setup_latency);
    json_object_end(j);
}

static void json_warning(void *j, const char *line)
{
    json_string(j, NULL, line);
}

int lg_write_json(const struct lg_run *run, const char *path)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    const struct lg_result *t = &run->total;
    const struct lg_config *cfg = run->cfg;
    struct json j;
    json_start(&j, f);
    json_object_begin(&j, NULL);
    json_string(&j, "tool", "loadgen");
    json_double(&j, "requests_per_sec", per_second(t->requests, run->window_ns));
    json_double(&j, "bytes_per_sec", per_second(t->bytes, run->window_ns));
    json_uint(&j, "requests", t->requests);
    json_uint(&j, "bytes", t->bytes);
    json_double(&j, "duration_s", seconds(run->window_ns));
    json_latency(&j, "latency_us", &t->latency);
    json_latency(&j, "connect_latency_us", &t->connect_latency);
    if (cfg->cost_every) {
        json_object_begin(&j, "classes");
        json_uint(&j, "cost_every", cfg->cost_every);
        json_latency(&j, "cheap", &t->cheap);
        json_latency(&j, "costly", &t->costly);
        json_object_end(&j);
    }
    json_object_begin(&j, "errors");
    uint64_t all = 0;
    for (int k = 0; k < LG_ERR_KINDS; k++) {
        json_uint(&j, lg_error_names[k], t->errors[k]);
        all += t->errors[k];
    }
    json_uint(&j, "total", all);
    json_object_end(&j);
    json_uint(&j, "mismatches", t->mismatched_bytes);
    json_uint(&j, "late", t->late);
    json_uint(&j, "unsent", t->unsent);
    json_uint(&j, "incomplete", t->incomplete);
    json_uint(&j, "connections_made", t->connects);
    json_uint(&j, "connections_open", t->open_at_end);
    json_setup(&j, run);
    if (cfg->rate > 0) {
        json_object_begin(&j, "open_loop");
        json_double(&j, "requested_rate", cfg->rate);
        json_double(&j, "achieved_rate", per_second(t->requests, run->window_ns));
        json_double(&j, "achieved_ratio", achieved_ratio(run));
        json_uint(&j, "scheduled", t->scheduled);
        json_object_end(&j);
    } else {
        json_null(&j, "open_loop");
    }
    json_object_begin(&j, "loadgen_cpu");
    json_double(&j, "total_seconds", seconds(t->cpu_ns));
    json_double(&j, "us_per_request", per_request_us(t->cpu_ns, t->requests));
    json_double(&j, "max_busy", run->max_busy);
    json_bool(&j, "busy_poll", cfg->busy_poll);
    json_array_begin(&j, "threads");
    for (unsigned i = 0; i < cfg->threads; i++) {
        const struct lg_result *r = &run->per_thread[i];
        json_object_begin(&j, NULL);
        json_uint(&j, "thread", i);
        if (r->cpu >= 0)
            json_int(&j, "cpu", r->cpu);
        else
            json_null(&j, "cpu");
        json_double(&j, "cpu_seconds", seconds(r->cpu_ns));
        json_double(&j, "cpu_utilization", share(r->cpu_ns, run->window_ns));
        json_double(&j, "busy", busy_fraction(run, r));
        json_object_end(&j);
    }
    json_array_end(&j);
    json_object_end(&j);
    json_bool(&j, "saturated", run->saturated);
    if (cfg->server_pid && run->server_cpu_ok) {
        json_object_begin(&j, "server_cpu");
        json_int(&j, "pid", cfg->server_pid);
        json_double(&j, "seconds", seconds(run->server_cpu_ns));
        json_double(&j, "utilization", share(run->server_cpu_ns, run->window_ns));
        json_double(&j, "us_per_request", per_request_us(run->server_cpu_ns, t->requests));
        json_object_end(&j);
    } else {
        json_null(&j, "server_cpu");
    }
    json_object_begin(&j, "stalls");
    json_double(&j, "max_us", (double)run->stall_max_ns / 1e3);
    json_uint(&j, "count_over_1ms", run->stalls_over_1ms);
    json_double(&j, "total_us", (double)run->stall_excess_ns / 1e3);
    json_double(&j, "threshold_us", (double)LG_STALL_NS / 1e3);
    if (run->steal_ok)
        json_double(&j, "steal_ms", (double)run->steal_ns / 1e6);
    else
        json_null(&j, "steal_ms");
    if (run->switches_ok)
        json_uint(&j, "server_involuntary_switches", run->switches);
    else
        json_null(&j, "server_involuntary_switches");
    json_object_end(&j);
    json_bool(&j, "interrupted", run->interrupted);
    json_array_begin(&j, "warnings");
    for_each_warning(run, json_warning, &j);
    json_array_end(&j);
    json_config(&j, cfg);
    sysinfo_write_json(&j, "env");
    json_object_end(&j);
    int err = json_finish(&j);
    if (fclose(f) != 0 && err == 0)
        err = -errno;
    return err;
}

int lg_write_hgrm(const struct lg_run *run, const char *path)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    int err = hist_write_percentiles(&run->total.latency, f, 1000.0, 5);
    if (fclose(f) != 0 && err == 0)
        err = -errno;
    return err;
}
