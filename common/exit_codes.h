/*
 * exit_codes.h - the exit statuses that mean something between the programs and the tests,
 * defined once.
 */
#ifndef ECHOBENCH_EXIT_CODES_H
#define ECHOBENCH_EXIT_CODES_H

/* Bad command-line input (one line on stderr names the problem). */
#define EXIT_USAGE 2
/* echo-server: the model cannot run on this machine (io_uring unavailable, ...). */
#define EXIT_UNAVAILABLE 3
/* A test that cannot run here (a model not built, no IPv6 loopback, ...): CTest's
 * SKIP_RETURN_CODE, so it is reported as skipped, not passed or failed. */
#define EXIT_SKIP 77

#endif
