/*
 * check.h - the assertion macro of the unit tests: report the failing expression with its
 * location, count failures, and let check_exit_code() turn them into the exit status.
 */
#ifndef ECHOBENCH_CHECK_H
#define ECHOBENCH_CHECK_H

#include <stdio.h>

static int check_failures;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            check_failures++;                                                                \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
        }                                                                                    \
    } while (0)

static inline int check_exit_code(const char *name)
{
    if (check_failures)
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
    else
        printf("%s: all checks passed\n", name);
    return check_failures ? 1 : 0;
}

#endif
