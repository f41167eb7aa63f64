/*
 * coroutine_switch - what one context switch of the coroutine model costs: a million round
 * trips between the main context and a coroutine (two switches each), timed.
 *
 *   build/bench/coroutine-switch [ROUND_TRIPS]            the model's own switch (x86-64 asm)
 *   build/bench/coroutine-switch-ucontext [ROUND_TRIPS]   the same code on swapcontext()
 *
 * Both are this file with the context-switch part of servers/coroutine.c included (the model
 * itself left out), so what is timed is the code the server runs; the second is built with
 * COROUTINE_UCONTEXT, the fallback for other architectures, whose swapcontext() also saves and
 * restores the signal mask: `strace -c -e rt_sigprocmask` shows one system call per switch.
 */
#define COROUTINE_SWITCH_ONLY
#include "../servers/coroutine.c"

#include <stdio.h>
#include <sys/mman.h>
#include <time.h>

static struct co_ctx main_ctx, coroutine;
static volatile uint64_t resumed;

static struct co_ctx *ping(void *arg)
{
    (void)arg;
    for (;;) {
        resumed++;
        co_ctx_switch(&coroutine, &main_ctx);
    }
    return &main_ctx; /* not reached: main stops resuming it */
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    if (n <= 0) {
        fprintf(stderr, "usage: %s [ROUND_TRIPS > 0]\n", argv[0]);
        return 2;
    }
    size_t size = 64 * 1024;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    co_ctx_init(&coroutine, stack, size, ping, NULL);
    for (int i = 0; i < 10000; i++) /* warm-up: caches, branch predictors, the stack's pages */
        co_ctx_switch(&main_ctx, &coroutine);
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        co_ctx_switch(&main_ctx, &coroutine);
    double took = now_ns() - t0;
    printf("%s: %ld round trips in %.1f ms: %.1f ns per switch\n", CO_SWITCH_NAME, n, took / 1e6,
           took / (2.0 * (double)n));
    co_ctx_retire(&coroutine);
    munmap(stack, size);
    return resumed == (uint64_t)n + 10000 ? 0 : 1;
}
