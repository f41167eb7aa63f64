#include "echo.h"

#include <stdatomic.h>

#include "clock.h"
#include "net.h"

/* Process-wide: set once, when the server stops (see echo_abort_costs). Written by the
 * harness's signal thread and read by every worker, so it is a C11 atomic; relaxed order is
 * enough (it only cuts a loop short) and compiles to a plain load on the paths that read it. */
static atomic_bool costs_aborted;

void echo_abort_costs(void)
{
    atomic_store_explicit(&costs_aborted, true, memory_order_relaxed);
}

/* The sink keeps the burn loop's result observable, so the optimiser cannot delete the loop. */
static volatile uint64_t burn_sink;

static bool costs_are_aborted(void)
{
    return atomic_load_explicit(&costs_aborted, memory_order_relaxed);
}

void echo_burn_cpu(uint32_t us)
{
    if (us == 0)
        return;
    /* Measured on the thread's CPU clock, so the cost is us of CPU even when the thread is
     * preempted half-way: a busy machine makes the message slower, not cheaper. A stop ends it
     * early (checked once per clock read, about every microsecond). */
    uint64_t deadline = clock_thread_cpu_ns() + us * NS_PER_US;
    uint64_t x = burn_sink | 1;
    do {
        /* About a microsecond of dependent multiply-adds (an LCG) between clock reads. */
        for (int i = 0; i < 512; i++)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
    } while (clock_thread_cpu_ns() < deadline && !costs_are_aborted());
    burn_sink = x;
}

/* The blocking wait of a message, in slices short enough that a stop ends it within one. */
#define SLEEP_SLICE_NS (5 * NS_PER_MS)

static void sleep_unless_aborted(uint64_t ns)
{
    uint64_t deadline = clock_now_ns() + ns;
    for (uint64_t now = clock_now_ns(); now < deadline && !costs_are_aborted();
         now = clock_now_ns())
        clock_sleep_ns(deadline - now < SLEEP_SLICE_NS ? deadline - now : SLEEP_SLICE_NS);
}

uint64_t echo_count_messages(const struct echo_work *w, struct echo_stream *s, size_t len)
{
    if (w->msg_size == 0)
        return 0;
    uint64_t total = s->msg_fill + len;
    s->msg_fill = total % w->msg_size;
    uint64_t completed = total / w->msg_size;
    if (w->cost_every <= 1)
        return completed;
    /* The costly ones among messages phase+1 .. phase+completed (numbered from the last
     * costly one): the multiples of cost_every. */
    uint64_t seen = s->msg_phase + completed;
    s->msg_phase = seen % w->cost_every;
    return seen / w->cost_every;
}

void echo_spend_messages(const struct echo_work *w, uint64_t messages)
{
    for (uint64_t i = 0; i < messages && !costs_are_aborted(); i++) {
        echo_burn_cpu(w->work_us);
        if (w->sleep_us)
            sleep_unless_aborted(w->sleep_us * NS_PER_US);
    }
}

uint64_t echo_account_slow(const struct echo_work *w, struct echo_stream *s, size_t len)
{
    uint64_t completed = echo_count_messages(w, s, len);
    echo_spend_messages(w, completed);
    return completed;
}

int echo_serve_blocking(int fd, const struct echo_work *w, uint64_t *echoed)
{
    char buf[ECHO_BUF_SIZE];
    struct echo_stream stream = {0};
    *echoed = 0;
    for (;;) {
        ssize_t n = net_recv(fd, buf, sizeof buf);
        if (n <= 0)
            return (int)n; /* 0: the client half-closed and has all its bytes back */
        echo_account(w, &stream, (size_t)n);
        int err = net_send_all(fd, buf, (size_t)n);
        if (err < 0)
            return err;
        *echoed += (uint64_t)n;
    }
}
