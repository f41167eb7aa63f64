/* Unit tests of common/echo.c: message accounting and the CPU burn behind --work-us. */
#include "check.h"
#include "clock.h"
#include "echo.h"

static void test_no_framing(void)
{
    struct echo_work w = {0};
    struct echo_stream s = {0};
    CHECK(echo_account(&w, &s, 1000) == 0, "without --msg-size there are no messages");
    CHECK(s.msg_fill == 0, "no state kept");
}

static void test_message_boundaries(void)
{
    struct echo_work w = {.msg_size = 100};
    struct echo_stream s = {0};
    CHECK(echo_account(&w, &s, 99) == 0, "99 of 100 bytes");
    CHECK(echo_account(&w, &s, 1) == 1, "the 100th byte completes one message");
    CHECK(echo_account(&w, &s, 250) == 2, "250 more bytes complete two");
    CHECK(s.msg_fill == 50, "and leave half a message, got %llu", (unsigned long long)s.msg_fill);
    CHECK(echo_account(&w, &s, 0) == 0, "zero bytes complete nothing");
    uint64_t total = 0;
    for (int i = 0; i < 1000; i++)
        total += echo_account(&w, &s, 7); /* 7000 bytes after the 50 already there */
    CHECK(total == 70, "7050 bytes in 7-byte reads: 70 messages, got %llu",
          (unsigned long long)total);
}

static void test_burn_is_cpu_time(void)
{
    uint64_t cpu0 = clock_thread_cpu_ns();
    echo_burn_cpu(20000);
    uint64_t used = clock_thread_cpu_ns() - cpu0;
    CHECK(used >= 20 * NS_PER_MS, "20 ms of work used only %llu ns of CPU",
          (unsigned long long)used);
}

static void test_cost_per_message(void)
{
    struct echo_work w = {.msg_size = 10, .work_us = 1000, .sleep_us = 2000};
    struct echo_stream s = {0};
    uint64_t wall0 = clock_now_ns(), cpu0 = clock_thread_cpu_ns();
    CHECK(echo_account(&w, &s, 30) == 3, "three messages");
    uint64_t wall = clock_now_ns() - wall0, cpu = clock_thread_cpu_ns() - cpu0;
    CHECK(cpu >= 3 * NS_PER_MS, "3 messages x 1 ms work used %llu ns CPU",
          (unsigned long long)cpu);
    CHECK(wall >= 9 * NS_PER_MS, "3 x (1 ms work + 2 ms sleep) took only %llu ns",
          (unsigned long long)wall);
}

int main(void)
{
    test_no_framing();
    test_message_boundaries();
    test_burn_is_cpu_time();
    test_cost_per_message();
    return check_exit_code("test_echo");
}
