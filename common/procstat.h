/*
 * procstat.h - reading a process tree's CPU time and memory from /proc, so that the load
 * generator (--server-pid) and the tests can account for a server, its threads and its child
 * processes alike.
 */
#ifndef ECHOBENCH_PROCSTAT_H
#define ECHOBENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

/* The fields of /proc/PID/stat this project uses. CPU times are in clock ticks (USER_HZ). */
struct procstat {
    char state;      /* R, S, D, Z, ... */
    pid_t ppid, pgrp;
    uint64_t utime, stime;   /* this process, all its threads */
    uint64_t cutime, cstime; /* its children that have exited and been waited for */
    long threads;
};

/* Reads /proc/PID/stat. Returns 0 or -errno (-ENOENT once the process is gone). */
int procstat_read(pid_t pid, struct procstat *out);

/* Calls fn(pid, stat, arg) for every process on the machine. Returns how many, or -errno. */
int procstat_each(void (*fn)(pid_t, const struct procstat *, void *), void *arg);

/* Calls fn(pid, stat, arg) (fn may be NULL) for every process whose parent is `parent`.
 * Returns how many, or -errno. */
int procstat_children(pid_t parent, void (*fn)(pid_t, const struct procstat *, void *),
                      void *arg);

/*
 * CPU time, in nanoseconds, of a process and all its descendants, living or exited-and-waited:
 * for every living process of the tree, its process CPU clock (the scheduler's runtime of all its
 * threads, exited ones included; utime+stime in clock ticks where that clock cannot be read),
 * plus the cutime+cstime of the children each has reaped. The difference of two readings is the CPU the tree used in between, even if
 * child processes came and went. Returns 0 or -errno.
 */
int procstat_tree_cpu_ns(pid_t root, uint64_t *ns);

/* Involuntary context switches (nonvoluntary_ctxt_switches) summed over every thread of a
 * process and its living descendants: how often the scheduler took a CPU from the tree while
 * it could still run. Threads that exit take their count with them. Returns 0 or -errno. */
int procstat_tree_involuntary_switches(pid_t root, uint64_t *n);

/* Resident memory (VmRSS) of a process and all its living descendants, in KiB; -errno if the
 * root is gone. */
long procstat_tree_rss_kib(pid_t root);

#endif
