#include "clock.h"

#include <errno.h>

static uint64_t cpu_clock_ns(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t clock_thread_cpu_ns(void)
{
    return cpu_clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

uint64_t clock_process_cpu_ns(void)
{
    return cpu_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

void clock_sleep_ns(uint64_t ns)
{
    /* An absolute deadline makes retries after EINTR exact instead of drifting. */
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    uint64_t nsec = (uint64_t)deadline.tv_nsec + ns % NS_PER_SEC;
    deadline.tv_sec += (time_t)(ns / NS_PER_SEC + nsec / NS_PER_SEC);
    deadline.tv_nsec = (long)(nsec % NS_PER_SEC);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR)
        ;
}
