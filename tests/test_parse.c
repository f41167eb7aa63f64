/* Unit tests of common/parse.c: the value parsers behind every command-line option. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "parse.h"

static void test_uint(void)
{
    uint64_t v = 0;
    CHECK(parse_uint("0", 0, 10, &v) == 0 && v == 0, "0");
    CHECK(parse_uint("65535", 0, 65535, &v) == 0 && v == 65535, "max");
    CHECK(parse_uint("65536", 0, 65535, &v) == -ERANGE, "above max");
    CHECK(parse_uint("0", 1, 9, &v) == -ERANGE, "below min");
    CHECK(parse_uint("99999999999999999999999", 0, UINT64_MAX, &v) == -ERANGE, "overflow");
    const char *bad[] = {"", "-1", "+1", " 1", "1 ", "1x", "0x10", "1.5", NULL};
    for (const char **b = bad; *b; b++)
        CHECK(parse_uint(*b, 0, 100, &v) == -EINVAL, "'%s' must be rejected", *b);
}

static void test_bytes(void)
{
    uint64_t v = 0;
    CHECK(parse_bytes("128", 1, UINT64_MAX, &v) == 0 && v == 128, "plain");
    CHECK(parse_bytes("64k", 1, UINT64_MAX, &v) == 0 && v == 65536, "k");
    CHECK(parse_bytes("64KiB", 1, UINT64_MAX, &v) == 0 && v == 65536, "KiB");
    CHECK(parse_bytes("1M", 1, UINT64_MAX, &v) == 0 && v == 1048576, "M");
    CHECK(parse_bytes("2g", 1, UINT64_MAX, &v) == 0 && v == 2ull << 30, "g");
    CHECK(parse_bytes("10B", 1, UINT64_MAX, &v) == 0 && v == 10, "B");
    CHECK(parse_bytes("0", 1, 10, &v) == -ERANGE, "below min");
    CHECK(parse_bytes("1k", 1, 1000, &v) == -ERANGE, "above max after suffix");
    CHECK(parse_bytes("1kb", 1, UINT64_MAX, &v) == -EINVAL, "unknown suffix");
    CHECK(parse_bytes("k", 1, UINT64_MAX, &v) == -EINVAL, "no digits");
}

static void test_duration(void)
{
    uint64_t ns = 0;
    CHECK(parse_duration("500ms", &ns) == 0 && ns == 500000000ull, "ms");
    CHECK(parse_duration("10s", &ns) == 0 && ns == 10000000000ull, "s");
    CHECK(parse_duration("10", &ns) == 0 && ns == 10000000000ull, "bare = seconds");
    CHECK(parse_duration("2m", &ns) == 0 && ns == 120000000000ull, "m");
    CHECK(parse_duration("1h", &ns) == 0 && ns == 3600000000000ull, "h");
    CHECK(parse_duration("250us", &ns) == 0 && ns == 250000ull, "us");
    CHECK(parse_duration("1.5s", &ns) == 0 && ns == 1500000000ull, "fraction");
    CHECK(parse_duration("0", &ns) == 0 && ns == 0, "zero");
    CHECK(parse_duration("31d", &ns) == -EINVAL, "unknown unit");
    CHECK(parse_duration("800h", &ns) == -ERANGE, "too long");
    CHECK(parse_duration("1.s", &ns) == -EINVAL, "dangling point");
    CHECK(parse_duration("-1s", &ns) == -EINVAL, "negative");
}

static void test_rate(void)
{
    double r = 0;
    CHECK(parse_rate("5000", &r) == 0 && r == 5000, "plain");
    CHECK(parse_rate("20k", &r) == 0 && r == 20000, "k");
    CHECK(parse_rate("1.5M", &r) == 0 && r == 1500000, "M");
    CHECK(parse_rate("0", &r) == -ERANGE, "zero");
    CHECK(parse_rate("5x", &r) == -EINVAL, "junk");
}

static void test_cpu_list(void)
{
    int cpus[8];
    CHECK(parse_cpu_list("0", cpus, 8) == 1 && cpus[0] == 0, "single");
    CHECK(parse_cpu_list("0,2", cpus, 8) == 2 && cpus[1] == 2, "pair");
    CHECK(parse_cpu_list("0-3,6", cpus, 8) == 5 && cpus[3] == 3 && cpus[4] == 6, "range");
    CHECK(parse_cpu_list("0-9", cpus, 8) == -ERANGE, "too many");
    CHECK(parse_cpu_list("3-1", cpus, 8) == -EINVAL, "reversed range");
    CHECK(parse_cpu_list("1,", cpus, 8) == -EINVAL, "trailing comma");
    CHECK(parse_cpu_list("", cpus, 8) == -EINVAL, "empty");
}

int main(void)
{
    test_uint();
    test_bytes();
    test_duration();
    test_rate();
    test_cpu_list();
    return check_exit_code("test_parse");
}
