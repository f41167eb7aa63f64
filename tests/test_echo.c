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

/* --cost-every: message k of a connection costs when k % N == 0, whatever the read sizes. */
static void test_cost_every_counting(void)
{
    struct echo_work w = {.msg_size = 10, .cost_every = 3};
    struct echo_stream s = {0};
    CHECK(echo_count_messages(&w, &s, 25) == 0, "messages 1-2 (and half of 3) are cheap");
    CHECK(echo_count_messages(&w, &s, 4) == 0, "29 bytes: message 3 is not complete yet");
    CHECK(echo_count_messages(&w, &s, 1) == 1, "the 30th byte completes message 3: costly");
    CHECK(echo_count_messages(&w, &s, 50) == 1, "messages 4-8: only 6 is costly");
    CHECK(echo_count_messages(&w, &s, 10) == 1, "message 9 is costly");
    CHECK(s.msg_fill == 0 && s.msg_phase == 0, "after message 9 the phase restarts, got %llu",
          (unsigned long long)s.msg_phase);
    CHECK(echo_count_messages(&w, &s, 300) == 10, "messages 10-39: 12, 15 ... 39 are costly");

    /* Byte by byte and in odd chunks: the same messages cost as in one read. */
    struct echo_work w7 = {.msg_size = 13, .cost_every = 7};
    struct echo_stream a = {0}, b = {0};
    uint64_t one_read = echo_count_messages(&w7, &a, 13 * 1000 + 5);
    uint64_t by_byte = 0, expect_at = 0;
    bool in_order = true;
    for (uint64_t i = 1; i <= 13 * 1000 + 5; i++) {
        uint64_t k = echo_count_messages(&w7, &b, 1);
        by_byte += k;
        /* A costly message completes exactly at byte 13 * 7 * j. */
        if (k != (i % (13 * 7) == 0))
            in_order = false;
        expect_at += i % (13 * 7) == 0;
    }
    CHECK(one_read == 1000 / 7 && by_byte == one_read && expect_at == one_read,
          "1000 messages, every 7th costly: %llu in one read, %llu byte by byte",
          (unsigned long long)one_read, (unsigned long long)by_byte);
    CHECK(in_order, "byte by byte, the costly messages are numbers 7, 14, 21 ...");

    /* 0 and 1 mean every message. */
    struct echo_work w0 = {.msg_size = 10}, w1 = {.msg_size = 10, .cost_every = 1};
    struct echo_stream s0 = {0}, s1 = {0};
    CHECK(echo_count_messages(&w0, &s0, 95) == 9 && echo_count_messages(&w1, &s1, 95) == 9,
          "cost_every 0 or 1: every message costs");
    /* Streams are independent: each connection numbers its own messages. */
    struct echo_stream c1 = {0}, c2 = {0};
    CHECK(echo_count_messages(&w, &c1, 20) == 0 && echo_count_messages(&w, &c2, 20) == 0
              && echo_count_messages(&w, &c1, 10) == 1 && echo_count_messages(&w, &c2, 5) == 0,
          "two connections keep separate counts");
}

/* Only the costly messages are paid for: 20 messages, every 10th sleeping 20 ms, take >= 40 ms,
 * and nine cheap ones in a row take less than one wait (with room for a VM stall). */
static void test_cost_every_spends_costly_only(void)
{
    struct echo_work w = {.msg_size = 8, .sleep_us = 20000, .cost_every = 10};
    struct echo_stream s = {0};
    uint64_t t0 = clock_now_ns();
    CHECK(echo_account(&w, &s, 8 * 9) == 0, "messages 1-9 are cheap");
    uint64_t cheap = clock_now_ns() - t0;
    CHECK(cheap < 15 * NS_PER_MS, "nine cheap messages took %llu ns", (unsigned long long)cheap);
    t0 = clock_now_ns();
    CHECK(echo_account(&w, &s, 8 * 11) == 2, "messages 10-20: 10 and 20 cost");
    uint64_t costly = clock_now_ns() - t0;
    CHECK(costly >= 40 * NS_PER_MS, "two 20 ms waits took only %llu ns",
          (unsigned long long)costly);
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
    test_cost_every_counting();
    test_cost_every_spends_costly_only();
    test_burn_is_cpu_time();
    test_cost_per_message();
    return check_exit_code("test_echo");
}
