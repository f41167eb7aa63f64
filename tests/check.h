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

/* Prints a value of any scalar type, for the comparisons below. */
static inline void check_print_signed(long long v) { fprintf(stderr, "%lld", v); }
static inline void check_print_unsigned(unsigned long long v) { fprintf(stderr, "%llu", v); }
static inline void check_print_double(double v) { fprintf(stderr, "%.9g", v); }
static inline void check_print_string(const char *v) { fprintf(stderr, "\"%s\"", v ? v : "(null)"); }
static inline void check_print_pointer(const void *v) { fprintf(stderr, "%p", v); }
#define check_print(v)                                                                      \
    _Generic((v), char: check_print_signed, signed char: check_print_signed,                 \
             short: check_print_signed, int: check_print_signed, long: check_print_signed,    \
             long long: check_print_signed, _Bool: check_print_unsigned,                     \
             unsigned char: check_print_unsigned, unsigned short: check_print_unsigned,      \
             unsigned: check_print_unsigned, unsigned long: check_print_unsigned,            \
             unsigned long long: check_print_unsigned, float: check_print_double,            \
             double: check_print_double, char *: check_print_string,                         \
             const char *: check_print_string, default: check_print_pointer)(v)

/* CHECK_EQ(a, b) and friends (libuv's ASSERT_EQ): on failure, print both values. */
#define CHECK_OP(a, op, b)                                                                  \
    do {                                                                                     \
        __typeof__(a) check_a_ = (a);                                                        \
        __typeof__(b) check_b_ = (b);                                                        \
        if (!(check_a_ op check_b_)) {                                                       \
            check_failures++;                                                                \
            fprintf(stderr, "%s:%d: CHECK(%s %s %s) failed: ", __FILE__, __LINE__, #a, #op,  \
                    #b);                                                                     \
            check_print(check_a_);                                                           \
            fprintf(stderr, " %s ", #op);                                                    \
            check_print(check_b_);                                                           \
            fputs(" is false\n", stderr);                                                    \
        }                                                                                    \
    } while (0)
#define CHECK_EQ(a, b) CHECK_OP(a, ==, b)
#define CHECK_NE(a, b) CHECK_OP(a, !=, b)
#define CHECK_LT(a, b) CHECK_OP(a, <, b)
#define CHECK_LE(a, b) CHECK_OP(a, <=, b)
#define CHECK_GT(a, b) CHECK_OP(a, >, b)
#define CHECK_GE(a, b) CHECK_OP(a, >=, b)

static inline int check_exit_code(const char *name)
{
    if (check_failures)
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
    else
        printf("%s: all checks passed\n", name);
    return check_failures ? 1 : 0;
}

#endif
