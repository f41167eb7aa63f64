/*
 * parse.h - strict parsers for command-line values, shared by echo-server and loadgen.
 *
 * Every parser accepts the whole string or nothing: "12x" is an error, not 12. They return 0 on
 * success, -EINVAL when the text is not of the expected form and -ERANGE when the value is
 * outside the allowed range; *out is written only on success.
 */
#ifndef ECHOBENCH_PARSE_H
#define ECHOBENCH_PARSE_H

#include <stdint.h>

/* A decimal integer in [min, max]. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* A byte count in [min, max]: digits with an optional binary suffix k/K/KiB, m/M/MiB, g/G/GiB
 * (all powers of 1024) or B. Examples: "128", "64k", "1MiB". */
int parse_bytes(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* A duration in nanoseconds: digits (with an optional fraction) and a unit ns, us, ms, s, m or
 * h; a bare number means seconds. Examples: "500ms", "10s", "2m", "1.5s". At most 30 days. */
int parse_duration(const char *s, uint64_t *ns_out);

/* A rate in events per second: digits with an optional fraction and an optional k or M suffix
 * (x1000, x1000000); must be > 0. Examples: "5000", "20k", "1.5M". */
int parse_rate(const char *s, double *out);

/* A CPU list such as "0", "0,2" or "0-3,6": fills cpus[] with up to max entries and returns how
 * many (> 0), or -EINVAL / -ERANGE (more than max entries, or a CPU number above 4095). */
int parse_cpu_list(const char *s, int *cpus, int max);

#endif
