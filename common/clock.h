/*
 * clock.h - the clocks every measurement in this project uses.
 *
 * Wall time is CLOCK_MONOTONIC (never jumps, read through the vDSO without a syscall); CPU time
 * comes from the per-thread and per-process CPU clocks.
 */
#ifndef ECHOBENCH_CLOCK_H
#define ECHOBENCH_CLOCK_H

#include <stdint.h>
#include <time.h>

#define NS_PER_US 1000ull
#define NS_PER_MS 1000000ull
#define NS_PER_SEC 1000000000ull

/* Nanoseconds since an arbitrary fixed point (CLOCK_MONOTONIC). Cheap: no syscall. */
static inline uint64_t clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* CPU time used so far by the calling thread, in nanoseconds. A syscall: keep it off hot paths. */
uint64_t clock_thread_cpu_ns(void);

/* CPU time used so far by all threads of this process (not its children), in nanoseconds. */
uint64_t clock_process_cpu_ns(void);

/* Sleep ns nanoseconds of monotonic time; a signal does not cut the sleep short. */
void clock_sleep_ns(uint64_t ns);

#endif
