/*
 * coroutine.c - a coroutine (green thread) per connection, written in blocking style, scheduled
 * by one thread over epoll: the goroutine model, in C.
 *
 * How it works
 *   Every connection gets a coroutine: a function with a small stack of its own that runs the
 *   plain blocking echo loop - receive into a buffer on its stack, pay the message's cost, send
 *   it all back - exactly as the thread model writes it. The difference is in co_recv() and
 *   co_send(): on a non-blocking socket, when recv() or send() says EAGAIN, they do not block
 *   the thread; they note what the coroutine waits for (EPOLLIN or EPOLLOUT) and switch to the
 *   scheduler. The scheduler is one loop on the thread's own stack: it runs the coroutines that
 *   are ready, then sleeps in epoll_wait(); when epoll says a socket is ready, the coroutine
 *   parked on it is put back in the run queue and resumed where it stopped, inside co_recv(),
 *   which tries again. Code that reads like thread.c, costs like epoll.c: no kernel thread, no
 *   kernel context switch per connection - a switch is a function call that swaps stacks.
 *
 *   Each socket is registered once, edge-triggered, for input and output; co_recv()/co_send()
 *   always try the call first and park only on EAGAIN, so no edge is lost and a stale one only
 *   costs a wasted resume. Back-pressure comes for free, as with blocking threads: a coroutine
 *   whose client does not read is parked in co_send() and reads nothing more; it holds its one
 *   16 KiB buffer and wakes no one until the client takes its bytes. Fairness is not free:
 *   a client that keeps 16 KiB or more queued and reads its echo never makes co_recv() see
 *   EAGAIN, so after each full-buffer read the coroutine yields (co_yield: to the run queue's
 *   next round, after the scheduler has looked at epoll without waiting).
 *
 *   The context switch is ours (co_switch_x86_64 below): push the six callee-saved registers
 *   of the x86-64 ABI on the current stack, store the stack pointer, load the other one, pop
 *   its registers and return into it - 15 instructions, no system call. (MXCSR and the x87
 *   control word are callee-saved too; nothing here changes them, so they are not switched.)
 *   swapcontext() from <ucontext.h>, the fallback compiled on other architectures, also saves
 *   and restores the signal mask: an rt_sigprocmask system call per switch. Measured with
 *   bench/coroutine_switch.c (a million round trips on a 2-vCPU VM, pinned to one CPU, five
 *   runs): 16-26 ns per switch here, against 1,800-2,200 ns with swapcontext() - nearly all of
 *   it the system call, which costs a virtual machine dearly (strace counts one per switch).
 *
 *   The stack: 64 KiB per coroutine, mmap()ed (MAP_NORESERVE) with a PROT_NONE guard page
 *   below it, so an overflow faults instead of corrupting a neighbour; stacks of finished
 *   coroutines are kept for reuse (up to 64). The blocking echo loop keeps its 16 KiB buffer on
 *   the coroutine's stack, as echo_serve_blocking() does on a thread's: 64 KiB leaves room for
 *   the frames of the cost functions and for the sanitizers' red zones. Only the pages a
 *   coroutine touches are real memory. Measured with 1,000 connections held by loadgen and
 *   Pss_Anon of /proc/PID/smaps_rollup: a connection that has not spoken yet (`loadgen --idle`)
 *   costs 4.1 KiB - the one page of its initial frame - plus 140 bytes of page tables; one
 *   that has echoed small messages (`--rate 2000`) 12.1 KiB: the top page of frames, the page
 *   the buffer starts on and the frames below it. Against 65 bytes in epoll (a parked-output
 *   pointer and the socket's state; the buffer is the loop's) and 13.5 KiB for a thread.
 *
 *   Per-message costs: the CPU work (--work-us) is real computation on the one thread, so it
 *   delays every other connection, as in every event loop. The blocking wait (--sleep-us) is
 *   a coroutine sleep instead, as Go's time.Sleep is a goroutine's: co_sleep() puts the
 *   coroutine on a list of sleepers and switches to the scheduler, which keeps one timerfd
 *   set to the first wake-up (every sleep has the same length, so the list is in wake-up
 *   order by construction) - a thousand connections can wait at once on one thread, where the
 *   epoll model sleeps through each wait with all its clients.
 *
 *   Under AddressSanitizer every switch is announced (__sanitizer_start_switch_fiber), which it
 *   needs to follow a stack that changes under its feet; under ThreadSanitizer the coroutines
 *   share the thread's shadow call stack (see co_ctx_entry).
 *
 * What limits it
 *   One thread: one core, like a single epoll reactor, with a switch pair per event on top.
 *   Per-message CPU work (--work-us) runs on that thread and delays every other connection,
 *   and so would any real blocking call made by a coroutine (a disk read, a DNS lookup): only
 *   what goes through co_recv(), co_send() and co_sleep() parks just the coroutine - the
 *   reason Go's runtime wraps every system call. Each connection reserves 64 KiB of address space and two memory
 *   mappings (stack and guard): the kernel's vm.max_map_count (65530 by default) caps it near
 *   32,000 connections. A coroutine is never preempted: one that computes for long starves
 *   the others (Go preempts goroutines with a signal since 1.14).
 *
 * Try it
 *   echo-server --model coroutine --port 7007
 *   nc 127.0.0.1 7007     # as many as you like: one thread, one small stack each
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* --- the context switch (bench/coroutine_switch.c includes this part alone) ---------------- */

#if defined(__x86_64__) && !defined(COROUTINE_UCONTEXT)
#define CO_SWITCH_NAME "x86-64 assembly"

/* co_switch_x86_64(&from_sp, to_sp): saves the callee-saved registers on the current stack and
 * the stack pointer in *from_sp, then resumes the stack to_sp - which holds the same layout,
 * pushed by an earlier call, or prepared by co_ctx_init - and returns into it. The caller-saved
 * registers need no saving: the compiler assumes this call clobbers them, like any call. */
void co_switch_x86_64(void **from_sp, void *to_sp);
__asm__(".pushsection .text\n"
        ".p2align 4\n"
        ".type co_switch_x86_64, @function\n"
        "co_switch_x86_64:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    movq  %rsp, (%rdi)\n"
        "    movq  %rsi, %rsp\n"
        "    popq  %r15\n"
        "    popq  %r14\n"
        "    popq  %r13\n"
        "    popq  %r12\n"
        "    popq  %rbx\n"
        "    popq  %rbp\n"
        "    ret\n"
        ".size co_switch_x86_64, .-co_switch_x86_64\n"
        ".popsection\n");

struct co_arch {
    void *sp; /* where its registers are saved, while it is not running */
};
#else
#include <ucontext.h>
#define CO_SWITCH_NAME "swapcontext"

struct co_arch {
    ucontext_t uc;
};
#endif

/* A context: the scheduler's (on the thread's stack; zero it) or a coroutine's (co_ctx_init). */
struct co_ctx {
    struct co_arch arch;
    /* What a coroutine runs; it returns the context to switch to for good when it is done. */
    struct co_ctx *(*fn)(void *arg);
    void *arg;
    const void *stack; /* its stack, for AddressSanitizer (the thread's: learnt on switching) */
    size_t stack_size;
    void *asan_fake_stack;
    bool exiting; /* its last switch: it will never be resumed */
};

static struct co_ctx *co_switch_from, *co_switch_to; /* the switch in progress */

/* The other half of a switch, run by the context that has just been resumed. */
static void co_switch_finish(void)
{
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(co_switch_to->asan_fake_stack, &co_switch_from->stack,
                                    &co_switch_from->stack_size);
#endif
}

/* Suspends `from` and resumes `to`; returns when something switches back to `from`. Inlined,
 * so that co_ctx_entry's last switch is as uninstrumented as the rest of it. */
static inline __attribute__((always_inline)) void co_ctx_switch(struct co_ctx *from,
                                                                struct co_ctx *to)
{
    co_switch_from = from;
    co_switch_to = to;
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_start_switch_fiber(from->exiting ? NULL : &from->asan_fake_stack, to->stack,
                                   to->stack_size);
#endif
#if defined(__x86_64__) && !defined(COROUTINE_UCONTEXT)
    co_switch_x86_64(&from->arch.sp, to->arch.sp);
#else
    swapcontext(&from->arch.uc, &to->arch.uc);
#endif
    co_switch_finish();
}

/* Where a coroutine starts, and ends. ThreadSanitizer keeps a shadow call stack per thread,
 * pushed at every function's entry and popped at its exit; the coroutines of one thread share
 * it (its fibers, one per coroutine, cost most of a megabyte each and it runs out of slots
 * for them beyond a few hundred). This function is left uninstrumented, and fn returns here
 * instead of switching away for good, so that every push of a coroutine is matched by a pop
 * and the shared stack stays balanced however many coroutines come and go. (One thread:
 * there is no race between its coroutines for it to find.) */
__attribute__((no_sanitize("thread"))) static void co_ctx_entry(void)
{
    co_switch_finish();
    struct co_ctx *self = co_switch_to;
    struct co_ctx *next = self->fn(self->arg);
    self->exiting = true;
    co_ctx_switch(self, next);
    abort(); /* an exiting context is never resumed */
}

/* Prepares a coroutine that will run fn(arg) on [stack, stack + size) when first switched to. */
static void co_ctx_init(struct co_ctx *c, void *stack, size_t size,
                        struct co_ctx *(*fn)(void *), void *arg)
{
    *c = (struct co_ctx){.fn = fn, .arg = arg, .stack = stack, .stack_size = size};
#if defined(__x86_64__) && !defined(COROUTINE_UCONTEXT)
    /* What co_switch_x86_64 pops: six registers, then the address it returns to - the entry -
     * above which a null return address for the entry itself keeps the ABI's alignment (the
     * stack pointer is 8 past a multiple of 16 when a function starts). */
    uintptr_t *sp = (uintptr_t *)(((uintptr_t)stack + size) & ~(uintptr_t)15);
    *--sp = 0;
    *--sp = (uintptr_t)co_ctx_entry;
    for (int i = 0; i < 6; i++)
        *--sp = 0; /* rbp rbx r12 r13 r14 r15 */
    c->arch.sp = sp;
#else
    getcontext(&c->arch.uc);
    c->arch.uc.uc_stack.ss_sp = stack;
    c->arch.uc.uc_stack.ss_size = size;
    c->arch.uc.uc_link = NULL;
    makecontext(&c->arch.uc, co_ctx_entry, 0);
#endif
}

/* A coroutine that will not run again: its stack may serve another. */
static void co_ctx_retire(struct co_ctx *c)
{
#if defined(__SANITIZE_ADDRESS__)
    /* Its frames' red zones stay poisoned: clean them for the next user of the stack. */
    __asan_unpoison_memory_region(c->stack, c->stack_size);
#else
    (void)c;
#endif
}


#ifndef COROUTINE_SWITCH_ONLY
/* --- the scheduler and the model --------------------------------------------------------- */

#include <errno.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "clock.h"
#include "list.h"
#include "nbecho.h"
#include "server.h"

#define MAX_EVENTS 256
#define CO_STACK_SIZE (64 * 1024)
#define CO_GUARD_SIZE 4096
#define CO_STACK_CACHE 64

struct sched;

struct co {
    struct co_ctx ctx;
    struct sched *s;
    struct list link;  /* every coroutine, for the stop */
    struct list ready; /* in the run queue, or among the sleepers */
    int fd;
    uint32_t waiting;  /* EPOLLIN or EPOLLOUT while parked on it; 0 when runnable or asleep */
    uint64_t wake_ns;  /* asleep: when to run again */
    bool done;
    uint64_t echoed;
    char *mapping;     /* guard page + stack */
};

struct sched {
    struct server *srv;
    int ep;
    struct nb_listener listener; /* in the epoll set, or paused after EMFILE */
    struct co_ctx main;         /* the scheduler's own context, on the thread's stack */
    struct list runq, all;
    struct list yielded;        /* ran a full buffer's worth: the run queue's next round */
    struct list sleepers;       /* by wake_ns: every sleep is --sleep-us long, so FIFO order */
    int timer_fd;               /* a timerfd set to the first sleeper's wake_ns */
    char *stacks[CO_STACK_CACHE]; /* mappings of finished coroutines, for reuse */
    unsigned nstacks;
    struct server_thread_totals totals;
};

static char stop_tag, timer_tag; /* and &sched->listener */

/* Parks the running coroutine until epoll reports `events` on its socket. */
static void co_wait(struct co *co, uint32_t events)
{
    co->waiting = events;
    co_ctx_switch(&co->ctx, &co->s->main);
}

/* recv() that blocks only its coroutine: 0 at end of stream, the bytes, or -errno. */
static ssize_t co_recv(struct co *co, char *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(co->fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno == EAGAIN)
            co_wait(co, EPOLLIN);
        else if (errno != EINTR)
            return -errno;
    }
}

/* send() of all len bytes that blocks only its coroutine: 0 or -errno. */
static int co_send(struct co *co, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(co->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) {
            buf += n;
            len -= (size_t)n;
            co->echoed += (uint64_t)n;
        } else if (errno == EAGAIN) {
            co_wait(co, EPOLLOUT);
        } else if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

/* Sets the timer to the first sleeper's wake-up time (0: disarmed). */
static void timer_set(struct sched *s, uint64_t at_ns)
{
    struct itimerspec t = {.it_value = {.tv_sec = (time_t)(at_ns / NS_PER_SEC),
                                        .tv_nsec = (long)(at_ns % NS_PER_SEC)}};
    timerfd_settime(s->timer_fd, TFD_TIMER_ABSTIME, &t, NULL);
}

/* The running coroutine read a full buffer: there may be more at once, and co_recv() would
 * never say EAGAIN to a client that keeps that much queued and reads its echo - the coroutine
 * would run for as long as its client likes, holding every other connection, the listener, the
 * sleep timer and the stop. So it steps aside: it runs again after the others that are ready
 * now and after the scheduler has looked at epoll (which it does without waiting, then). */
static void co_yield(struct co *co)
{
    list_insert_tail(&co->s->yielded, &co->ready);
    co_ctx_switch(&co->ctx, &co->s->main);
}

/* A sleep that parks only its coroutine: the scheduler runs the others meanwhile. */
static void co_sleep(struct co *co, uint64_t ns)
{
    struct sched *s = co->s;
    co->wake_ns = clock_now_ns() + ns;
    if (list_empty(&s->sleepers))
        timer_set(s, co->wake_ns);
    list_insert_tail(&s->sleepers, &co->ready);
    co_ctx_switch(&co->ctx, &s->main);
}

/* The timer fired: wake the sleepers whose time has come, set it for the next one. */
static void on_timer(struct sched *s)
{
    uint64_t expirations;
    ssize_t r = read(s->timer_fd, &expirations, sizeof expirations);
    (void)r; /* EAGAIN if it was re-armed meanwhile: the list below decides */
    uint64_t now = clock_now_ns();
    struct list *node;
    while ((node = list_first(&s->sleepers)) != &s->sleepers) {
        struct co *co = list_entry(node, struct co, ready);
        if (co->wake_ns > now) {
            timer_set(s, co->wake_ns);
            return;
        }
        list_remove(node);
        list_insert_tail(&s->runq, node);
    }
}

/* The per-message cost, in blocking style as echo_account() pays it, but with the wait as a
 * coroutine sleep: the CPU work is real and holds the thread, the wait only this coroutine. */
static void co_pay(struct co *co, const struct echo_work *w, struct echo_stream *stream,
                   size_t len)
{
    if (!w->sleep_us) {
        echo_account(w, stream, len);
        return;
    }
    for (uint64_t k = echo_count_messages(w, stream, len); k > 0; k--) {
        echo_burn_cpu(w->work_us);
        co_sleep(co, w->sleep_us * NS_PER_US);
    }
}

/* A connection's whole life, in blocking style; then back to the scheduler, for good. */
static struct co_ctx *co_serve(void *arg)
{
    struct co *co = arg;
    const struct echo_work *work = &co->s->srv->cfg->work;
    struct echo_stream stream = {0};
    char buf[ECHO_BUF_SIZE];
    ssize_t n;
    while ((n = co_recv(co, buf, sizeof buf)) > 0) {
        co_pay(co, work, &stream, (size_t)n);
        if (co_send(co, buf, (size_t)n) < 0)
            break;
        if ((size_t)n == sizeof buf)
            co_yield(co);
    }
    co->done = true; /* the scheduler frees it */
    return &co->s->main;
}

static void stack_put(struct sched *s, char *mapping)
{
    if (s->nstacks < CO_STACK_CACHE)
        s->stacks[s->nstacks++] = mapping;
    else
        munmap(mapping, CO_GUARD_SIZE + CO_STACK_SIZE);
}

static char *stack_get(struct sched *s)
{
    if (s->nstacks)
        return s->stacks[--s->nstacks];
    char *m = mmap(NULL, CO_GUARD_SIZE + CO_STACK_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (mprotect(m, CO_GUARD_SIZE, PROT_NONE) != 0) {
        munmap(m, CO_GUARD_SIZE + CO_STACK_SIZE);
        return NULL;
    }
    return m;
}

static void co_destroy(struct sched *s, struct co *co)
{
    list_remove(&co->link);
    list_remove(&co->ready);
    close(co->fd); /* also leaves the epoll set */
    s->totals.echoed += co->echoed;
    co_ctx_retire(&co->ctx);
    stack_put(s, co->mapping);
    free(co);
}

/* A new connection: its coroutine starts parked on input, and first runs when bytes come. */
static int adopt(void *arg, int fd)
{
    struct sched *s = arg;
    struct co *co = calloc(1, sizeof *co);
    char *m = co ? stack_get(s) : NULL;
    if (!m) {
        free(co);
        return -ENOMEM;
    }
    int err = nb_epoll_add_conn(s->ep, fd, co);
    if (err < 0) {
        stack_put(s, m);
        free(co);
        return err;
    }
    co->s = s;
    co->fd = fd;
    co->mapping = m;
    co->waiting = EPOLLIN;
    co_ctx_init(&co->ctx, m + CO_GUARD_SIZE, CO_STACK_SIZE, co_serve, co);
    list_insert_tail(&s->all, &co->link);
    return 0;
}

/* epoll reported `events` on the socket of co: resume it if that is what it waits for. */
static void wake(struct sched *s, struct co *co, uint32_t events)
{
    uint32_t want = co->waiting == EPOLLIN ? EPOLLIN | EPOLLRDHUP : co->waiting;
    if (co->waiting && (events & (want | EPOLLERR | EPOLLHUP))) {
        co->waiting = 0;
        list_insert_tail(&s->runq, &co->ready);
    }
}

/* Runs every ready coroutine; those that yield are ready again for the next round. */
static void run_ready(struct sched *s)
{
    struct list *node;
    while ((node = list_pop_first(&s->runq))) {
        struct co *co = list_entry(node, struct co, ready);
        co_ctx_switch(&s->main, &co->ctx);
        if (co->done)
            co_destroy(s, co);
    }
    while ((node = list_pop_first(&s->yielded)))
        list_insert_tail(&s->runq, node);
}

static int sched_run(struct sched *s)
{
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        run_ready(s);
        if (server_stopping(s->srv))
            return 0;
        const char *call;
        /* Coroutines that yielded are ready: look at epoll, but do not wait. */
        int n = nb_epoll_wait(&s->listener, events, MAX_EVENTS, list_empty(&s->runq) ? -1 : 0,
                              &call);
        if (n < 0)
            return server_fail(s->srv, call, n);
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &stop_tag)
                return 0;
            if (p == &timer_tag) {
                on_timer(s);
            } else if (p == &s->listener) {
                nb_listener_accept(&s->listener, &s->totals, adopt, s);
            } else {
                wake(s, p, events[i].events);
            }
        }
    }
}

static int coroutine_run(struct server *srv)
{
    struct sched *s = calloc(1, sizeof *s);
    if (!s)
        return server_fail(srv, "calloc", -ENOMEM);
    s->srv = srv;
    s->ep = -1;
    s->timer_fd = -1;
    list_init(&s->runq);
    list_init(&s->yielded);
    list_init(&s->sleepers);
    list_init(&s->all);
    int err = net_set_nonblock(srv->listen_fd);
    if (err < 0) {
        err = server_fail(srv, "fcntl", err);
    } else if ((s->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        err = server_fail(srv, "epoll_create1", -errno);
    } else if ((s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
        err = server_fail(srv, "timerfd_create", -errno);
    } else {
        /* The listener is watched by the first nb_epoll_wait(). */
        s->listener = (struct nb_listener){.ep = s->ep, .fd = srv->listen_fd};
        if ((err = nb_epoll_watch(s->ep, srv->stop_fd, &stop_tag)) < 0
            || (err = nb_epoll_watch(s->ep, s->timer_fd, &timer_tag)) < 0)
            err = server_fail(srv, "epoll_ctl", err);
        else
            err = sched_run(s);
    }
    /* Parked coroutines are dropped where they stand: a coroutine owns nothing but its socket
     * and its stack. */
    while (!list_empty(&s->all))
        co_destroy(s, list_entry(list_first(&s->all), struct co, link));
    while (s->nstacks)
        munmap(s->stacks[--s->nstacks], CO_GUARD_SIZE + CO_STACK_SIZE);
    if (s->ep >= 0)
        close(s->ep);
    if (s->timer_fd >= 0)
        close(s->timer_fd);
    s->totals.served = s->totals.accepted;
    server_add_thread_totals(srv, 0, &s->totals);
    free(s);
    return err;
}

const struct server_model model_coroutine = {
    .name = "coroutine",
    .summary = "a coroutine per connection (own stack, blocking style), one thread over epoll",
    .kind = MODEL_EVENT_LOOP,
    /* Every coroutine maps its stack as two areas (the stack and its PROT_NONE guard page). */
    .kernel_limits = {{"vm.max_map_count", 2, "a coroutine stack and its guard page per "
                                              "connection"}},
    .run = coroutine_run,
};
#endif
