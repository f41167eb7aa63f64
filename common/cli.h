/*
 * cli.h - command-line helpers shared by the programs' main() functions (echo-server, loadgen).
 *
 * Unlike the rest of common/, these print and exit: they implement the command-line contract -
 * a bad value gets one line naming the option and the problem, and exit status 2. Call them only
 * from option parsing in main().
 */
#ifndef ECHOBENCH_CLI_H
#define ECHOBENCH_CLI_H

#include <stdint.h>

/* The program name used in messages; main() sets it first. */
extern const char *cli_prog;

/* Prints "PROG: <message> (see --help)" on stderr and exits 2. */
_Noreturn void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse an option's value with the strict parsers of parse.h, or exit 2 naming the option. */
uint64_t cli_uint(const char *opt, const char *text, uint64_t min, uint64_t max);
uint64_t cli_bytes(const char *opt, const char *text, uint64_t min, uint64_t max);
uint64_t cli_duration(const char *opt, const char *text, uint64_t min_ns);

#endif
