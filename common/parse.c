#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Reads leading decimal digits into *v; returns the first byte after them, or NULL on overflow
 * or when there is no digit at all. strtoull is avoided: it accepts signs and white space. */
static const char *read_digits(const char *s, uint64_t *v)
{
    uint64_t n = 0;
    const char *p = s;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            return NULL;
        n = n * 10 + d;
    }
    if (p == s)
        return NULL;
    *v = n;
    return p;
}

/* Reads "digits[.digits]" as a double; returns the byte after it or NULL. */
static const char *read_decimal(const char *s, double *v)
{
    uint64_t whole = 0;
    const char *p = read_digits(s, &whole);
    if (!p)
        return NULL;
    double value = (double)whole;
    if (*p == '.') {
        double scale = 0.1;
        const char *q = p + 1;
        for (; isdigit((unsigned char)*q); q++, scale /= 10)
            value += (*q - '0') * scale;
        if (q == p + 1)
            return NULL;
        p = q;
    }
    *v = value;
    return p;
}

int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;
    const char *end = read_digits(s, &v);
    if (!end) {
        /* All digits but too long: out of range rather than malformed. */
        size_t n = strspn(s, "0123456789");
        return (n > 0 && s[n] == '\0') ? -ERANGE : -EINVAL;
    }
    if (*end != '\0')
        return -EINVAL;
    if (v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int parse_bytes(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    static const struct { const char *suffix; uint64_t mult; } units[] = {
        {"", 1}, {"B", 1}, {"k", 1ull << 10}, {"K", 1ull << 10}, {"KiB", 1ull << 10},
        {"m", 1ull << 20}, {"M", 1ull << 20}, {"MiB", 1ull << 20},
        {"g", 1ull << 30}, {"G", 1ull << 30}, {"GiB", 1ull << 30},
    };
    uint64_t v;
    const char *end = read_digits(s, &v);
    if (!end)
        return -EINVAL;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) != 0)
            continue;
        if (v > UINT64_MAX / units[i].mult)
            return -ERANGE;
        v *= units[i].mult;
        if (v < min || v > max)
            return -ERANGE;
        *out = v;
        return 0;
    }
    return -EINVAL;
}

int parse_duration(const char *s, uint64_t *ns_out)
{
    static const struct { const char *unit; double ns; } units[] = {
        {"", 1e9}, {"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9},
    };
    double v;
    const char *end = read_decimal(s, &v);
    if (!end)
        return -EINVAL;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) != 0)
            continue;
        double ns = v * units[i].ns;
        if (ns > 30.0 * 86400e9)
            return -ERANGE;
        *ns_out = (uint64_t)llround(ns);
        return 0;
    }
    return -EINVAL;
}

int parse_rate(const char *s, double *out)
{
    double v;
    const char *end = read_decimal(s, &v);
    if (!end)
        return -EINVAL;
    if (strcmp(end, "k") == 0)
        v *= 1e3;
    else if (strcmp(end, "M") == 0)
        v *= 1e6;
    else if (*end != '\0')
        return -EINVAL;
    if (!(v > 0) || v > 1e9)
        return -ERANGE;
    *out = v;
    return 0;
}

int parse_cpu_list(const char *s, int *cpus, int max)
{
    int n = 0;
    const char *p = s;
    for (;;) {
        uint64_t lo, hi;
        p = read_digits(p, &lo);
        if (!p)
            return -EINVAL;
        hi = lo;
        if (*p == '-') {
            p = read_digits(p + 1, &hi);
            if (!p || hi < lo)
                return -EINVAL;
        }
        if (hi > 4095)
            return -ERANGE;
        for (uint64_t c = lo; c <= hi; c++) {
            if (n == max)
                return -ERANGE;
            cpus[n++] = (int)c;
        }
        if (*p == '\0')
            return n;
        if (*p != ',')
            return -EINVAL;
        p++;
    }
}
