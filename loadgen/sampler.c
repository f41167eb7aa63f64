/*
 * sampler.c - the thread that reads the server at the edges of the measurement window.
 *
 * Reading a process tree from /proc takes milliseconds for a fork server with thousands of
 * children. Done on a worker's loop, that time delayed the echoes in flight and was counted as
 * server latency; so it runs here, on a thread of its own that the workers never wait for,
 * kept off the workers' CPUs. It sleeps until the window starts, reads, sleeps until the
 * window ends - or until main wakes it at Ctrl-C - and reads again.
 */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "clock.h"
#include "loadgen.h"
#include "procstat.h"

/* Keeps the calling thread off the CPUs the workers are pinned to, if any other is allowed. */
static void avoid_worker_cpus(const struct lg_config *cfg)
{
    cpu_set_t set;
    if (cfg->ncpus == 0 || sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    for (int i = 0; i < cfg->ncpus; i++)
        CPU_CLR(cfg->cpus[i], &set);
    if (CPU_COUNT(&set) > 0)
        sched_setaffinity(0, sizeof set, &set);
}

/* Steal time of all CPUs: the time the hypervisor ran something else while this machine's
 * CPUs had work (the 8th field of the "cpu" line of /proc/stat, in clock ticks). */
static bool read_steal_ns(uint64_t *ns)
{
    FILE *f = fopen("/proc/stat", "re");
    if (!f)
        return false;
    unsigned long long v[8];
    bool ok = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                     &v[3], &v[4], &v[5], &v[6], &v[7]) == 8;
    fclose(f);
    if (ok)
        *ns = v[7] * (NS_PER_SEC / (uint64_t)sysconf(_SC_CLK_TCK));
    return ok;
}

/* The server's CPU time first: it is the figure that must be closest to the edge. */
static void take_sample(const struct lg_config *cfg, struct lg_sample *s)
{
    memset(s, 0, sizeof *s);
    if (cfg->server_pid) {
        s->server_cpu_ok = procstat_tree_cpu_ns(cfg->server_pid, &s->server_cpu_ns) == 0;
        s->switches_ok = procstat_tree_involuntary_switches(cfg->server_pid, &s->switches) == 0;
    }
    s->steal_ok = read_steal_ns(&s->steal_ns);
}

/* b - a, for counters that may dip when a process of the tree exits (its count goes with
 * it, or moves from its own clock to its parent's ticks): never a wrap-around. */
static uint64_t growth(uint64_t a, uint64_t b)
{
    return b > a ? b - a : 0;
}

void lg_sampler_result(const struct lg_sampler *sp, struct lg_run *run)
{
    const struct lg_sample *a = &sp->at_start, *b = &sp->at_end;
    if (!sp->sampled)
        return;
    run->server_cpu_ok = a->server_cpu_ok && b->server_cpu_ok;
    run->server_cpu_ns = growth(a->server_cpu_ns, b->server_cpu_ns);
    run->switches_ok = a->switches_ok && b->switches_ok;
    run->switches = growth(a->switches, b->switches);
    run->steal_ok = a->steal_ok && b->steal_ok;
    run->steal_ns = growth(a->steal_ns, b->steal_ns);
}

/* Sleeps until `deadline` (CLOCK_MONOTONIC) or until lg_sampler_wake(). */
static void sleep_until(struct lg_shared *sh, uint64_t deadline)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline / NS_PER_SEC),
                          .tv_nsec = (long)(deadline % NS_PER_SEC)};
    pthread_mutex_lock(&sh->wake_lock);
    /* Re-read under the lock: a Ctrl-C stored before main takes the lock is seen here, and
     * one stored after wakes the wait below. */
    struct lg_window win = lg_shared_window(sh);
    if (lg_window_next_edge(&win, clock_now_ns()) == deadline)
        pthread_cond_timedwait(&sh->wake, &sh->wake_lock, &ts);
    pthread_mutex_unlock(&sh->wake_lock);
}

void lg_sampler_wake(struct lg_shared *sh)
{
    pthread_mutex_lock(&sh->wake_lock);
    pthread_cond_signal(&sh->wake);
    pthread_mutex_unlock(&sh->wake_lock);
}

void *lg_sampler_main(void *arg)
{
    struct lg_sampler *sp = arg;
    struct lg_shared *sh = sp->shared;
    avoid_worker_cpus(sh->cfg);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* read at the edges, not 50 us after */
    pthread_barrier_wait(&sh->ready);
    pthread_barrier_wait(&sh->ready);
    bool started = false;
    for (;;) {
        struct lg_window win = lg_shared_window(sh);
        uint64_t now = clock_now_ns();
        enum lg_phase phase = lg_window_phase(&win, now);
        if (phase == LG_MEASURE && !started) {
            take_sample(sh->cfg, &sp->at_start);
            started = true;
        } else if (phase == LG_DRAIN) {
            /* A window that never started (Ctrl-C in the warm-up) is not sampled at all. */
            if (started) {
                take_sample(sh->cfg, &sp->at_end);
                sp->sampled = true;
            }
            return NULL;
        } else {
            sleep_until(sh, lg_window_next_edge(&win, now));
        }
    }
}
