/*
 * echo.h - the echo core: the protocol every server model speaks, written once.
 *
 * The protocol is RFC 862 over TCP (docs/protocol.md): every byte a client sends comes back on
 * the same connection, in order, whatever the client's write sizes; when the client half-closes,
 * the server finishes echoing and closes. Server models only move bytes; this file decides what
 * a byte costs.
 *
 * Optional per-message cost, so that models can be compared under load that is not free: with a
 * message size S, every complete S-byte message costs work_us microseconds of CPU (a real
 * computation, measured on the thread's CPU clock) and then sleep_us microseconds of blocking
 * wait, before the bytes that complete it are echoed. Bytes are always echoed unchanged.
 *
 * With cost_every N (--cost-every) only every Nth message costs - the mixed workload where a
 * few slow requests hold up the cheap ones behind them. Messages are numbered 1, 2, 3 ... per
 * connection in stream order, from the connection's first byte; message k costs when
 * k % N == 0, the others cost nothing. The count lives in the connection's echo_stream, so it
 * is right whatever the read sizes and whichever thread reads.
 */
#ifndef ECHOBENCH_ECHO_H
#define ECHOBENCH_ECHO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Receive buffer size used by every model, so that none gains by reading in larger gulps. */
#define ECHO_BUF_SIZE 16384

/* The per-message cost, from --msg-size, --work-us, --sleep-us and --cost-every. All zero:
 * pure stream echo. */
struct echo_work {
    uint64_t msg_size;   /* S: bytes per message; 0 = no message framing, no cost */
    uint32_t work_us;    /* CPU time burnt per costly message */
    uint32_t sleep_us;   /* blocking wait per costly message */
    uint32_t cost_every; /* N: message k costs when k % N == 0; 0 and 1 both mean every one
                            (so a zero-initialised echo_work costs every message) */
};

/* Where a connection stands in its message stream. Zero-initialise one per connection. */
struct echo_stream {
    uint64_t msg_fill;  /* bytes of the current, incomplete message received so far */
    uint64_t msg_phase; /* complete messages since the last costly one (count % cost_every),
                           so the count cannot overflow however long the connection lives */
};

uint64_t echo_account_slow(const struct echo_work *w, struct echo_stream *s, size_t len);

/*
 * Accounts for len bytes just received on a connection and spends the cost of every costly
 * message they complete (every one, or every cost_every-th), before the caller echoes them.
 * Returns the number of costly messages completed (0 without framing). Without a configured
 * cost this is one predictable branch, so the hot path of a pure echo pays nothing.
 */
static inline uint64_t echo_account(const struct echo_work *w, struct echo_stream *s, size_t len)
{
    if (w->msg_size == 0)
        return 0;
    return echo_account_slow(w, s, len);
}

/* echo_account() in two halves, for models that do not pay the cost where they read: count
 * the costly messages that len received bytes complete (updating the stream, spending nothing;
 * 0 without framing; with cost_every N only the messages numbered k % N == 0), then spend the
 * cost of that many messages - on a worker thread (reactor_pool), or with the wait as a
 * coroutine sleep (coroutine). A batch that completes only cheap messages counts 0, so such a
 * model echoes it at once, as if there were no cost. */
uint64_t echo_count_messages(const struct echo_work *w, struct echo_stream *s, size_t len);
void echo_spend_messages(const struct echo_work *w, uint64_t messages);

/* Stops paying per-message costs in this process from now on: a server that is stopping must
 * not keep burning CPU or sleeping for thousands of buffered messages. Bytes are still
 * echoed. Async-signal-safe (it sets a flag), so a signal handler may call it. */
void echo_abort_costs(void);

/* Burns us microseconds of this thread's CPU time on a computation the compiler cannot remove. */
void echo_burn_cpu(uint32_t us);

/*
 * Serves one connection with blocking I/O until the client's end of stream (0 is returned, the
 * whole stream having been echoed) or an error such as a reset (-errno). Does not close fd.
 * *echoed receives the number of bytes written back, also on error. Used by every blocking model.
 */
int echo_serve_blocking(int fd, const struct echo_work *w, uint64_t *echoed);

#endif
