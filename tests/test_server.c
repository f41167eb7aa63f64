/*
 * test_server - unit tests of the harness services in servers/server.c that can be checked
 * without a socket: failure recording from many threads at once (run under ThreadSanitizer by
 * scripts/test), the pool accounting, the pool size.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "check.h"
#include "harness.h"
#include "server.h"

enum { THREADS = 8 };

static struct server srv;
static pthread_barrier_t go;
static const char *const calls[THREADS] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"};

static void *fail_at_once(void *arg)
{
    long i = (long)arg;
    pthread_barrier_wait(&go);
    server_fail(&srv, calls[i], (int)-(i + 1));
    return NULL;
}

static void test_concurrent_failures(void)
{
    static struct server_config cfg;
    static struct server_stats stats;
    CHECK_EQ(harness_init(&srv, &cfg, &stats), 0);
    srv.stop_fd = eventfd(0, EFD_CLOEXEC);
    pthread_barrier_init(&go, NULL, THREADS);
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, fail_at_once, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* The first failure is recorded whole: its call with its own error. */
    int which = -1;
    for (int i = 0; i < THREADS; i++)
        if (srv.failed_call == calls[i])
            which = i;
    CHECK(which >= 0, "failed_call is none of the calls: %p", (const void *)srv.failed_call);
    CHECK_EQ(srv.failed_err, -(which + 1));
    CHECK(server_stopping(&srv), "a failure requests the stop");
    close(srv.stop_fd);
}

static void test_pool_accounting(void)
{
    static struct server_config cfg = {.threads = 3};
    static struct server_stats stats;
    struct server s;
    CHECK_EQ(harness_init(&s, &cfg, &stats), 0);
    CHECK_EQ(server_pool_size(&s), 3u);
    server_pool_enter(&s, 3);
    server_pool_enter(&s, 3);
    CHECK_EQ(atomic_load(&stats.pool_all_busy), 0u);
    server_pool_enter(&s, 3); /* the third of three: every worker busy */
    CHECK_EQ(atomic_load(&stats.pool_all_busy), 1u);
    server_pool_leave(&s);
    server_pool_enter(&s, 3);
    CHECK_EQ(atomic_load(&stats.pool_all_busy), 2u);
    cfg.threads = 0;
    CHECK_EQ(server_pool_size(&s), (unsigned)SERVER_DEFAULT_POOL_SIZE);
}

int main(void)
{
    test_concurrent_failures();
    test_pool_accounting();
    return check_exit_code("test_server");
}
