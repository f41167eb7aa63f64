/* Unit tests of common/hist.c: slot layout, percentiles against exact values on known data,
 * merge, extremes, and the HdrHistogram text output. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hist.h"

/* The stated precision: every value is kept within 1/1024 of itself (exact below 2048). */
static int within_precision(uint64_t reported, uint64_t exact)
{
    double tolerance = exact < 2048 ? 0 : (double)exact / 1024.0;
    return fabs((double)reported - (double)exact) <= tolerance;
}

static void test_slots(void)
{
    unsigned prev = 0;
    uint64_t rng = 1;
    for (int i = 0; i < 2000000; i++) {
        uint64_t v;
        if (i < 100000)
            v = (uint64_t)i; /* every small value */
        else {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            v = rng >> (21 + rng % 40); /* spread over all magnitudes */
            if (v > HIST_MAX_VALUE)
                v = HIST_MAX_VALUE;
        }
        unsigned s = hist_slot(v);
        CHECK(s < HIST_SLOTS, "slot %u of %llu out of range", s, (unsigned long long)v);
        uint64_t lo = hist_slot_lowest(s), hi = hist_slot_highest(s);
        if (!(lo <= v && v <= hi)) {
            CHECK(0, "value %llu outside its slot [%llu, %llu]", (unsigned long long)v,
                  (unsigned long long)lo, (unsigned long long)hi);
            break;
        }
        CHECK(hi - lo + 1 == 1 || (hi - lo + 1) * 1024 <= lo, "slot [%llu,%llu] too wide",
              (unsigned long long)lo, (unsigned long long)hi);
        if (i < 100000) {
            CHECK(s >= prev, "slots must grow with values");
            prev = s;
        }
    }
    /* Adjacent slots tile the value range without gaps. */
    for (unsigned s = 0; s + 1 < HIST_SLOTS; s++)
        if (hist_slot_highest(s) + 1 != hist_slot_lowest(s + 1)) {
            CHECK(0, "gap after slot %u", s);
            break;
        }
    CHECK(hist_slot_highest(HIST_SLOTS - 1) == HIST_MAX_VALUE, "last slot ends at the maximum");
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void test_percentiles_known_data(void)
{
    /* 100,000 latencies spread log-uniformly from 1 us to 10 s, as nanoseconds. */
    enum { N = 100000 };
    static uint64_t values[N];
    struct hist h;
    CHECK(hist_init(&h) == 0, "init");
    uint64_t rng = 12345;
    for (int i = 0; i < N; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        values[i] = (uint64_t)(1000.0 * pow(10.0, 7.0 * (double)(rng % 1000000) / 1e6));
        hist_record(&h, values[i]);
    }
    qsort(values, N, sizeof values[0], cmp_u64);
    const double ps[] = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 99.999};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        size_t rank = (size_t)ceil(ps[i] / 100.0 * N); /* nearest rank */
        uint64_t exact = values[rank ? rank - 1 : 0];
        uint64_t got = hist_value_at_percentile(&h, ps[i]);
        CHECK(within_precision(got, exact), "p%g: %llu, exact %llu", ps[i],
              (unsigned long long)got, (unsigned long long)exact);
    }
    CHECK(hist_value_at_percentile(&h, 100) == values[N - 1], "p100 is the exact max");
    CHECK(h.min == values[0] && h.max == values[N - 1], "exact min and max");
    double sum = 0, sq = 0;
    for (int i = 0; i < N; i++)
        sum += (double)values[i];
    double mean = sum / N;
    for (int i = 0; i < N; i++)
        sq += ((double)values[i] - mean) * ((double)values[i] - mean);
    CHECK(fabs(hist_mean(&h) - mean) < 1e-6 * mean, "mean %f, exact %f", hist_mean(&h), mean);
    CHECK(fabs(hist_stddev(&h) - sqrt(sq / N)) < 1e-6 * sqrt(sq / N), "stddev %f, exact %f",
          hist_stddev(&h), sqrt(sq / N));
    hist_free(&h);
}

static void test_small_exact(void)
{
    struct hist h;
    hist_init(&h);
    for (uint64_t v = 1; v <= 100; v++)
        hist_record(&h, v);
    CHECK(hist_value_at_percentile(&h, 50) == 50, "p50 of 1..100");
    CHECK(hist_value_at_percentile(&h, 99) == 99, "p99 of 1..100");
    CHECK(hist_value_at_percentile(&h, 0) == 1, "p0 is the minimum");
    CHECK(hist_mean(&h) == 50.5, "mean of 1..100");
    hist_reset(&h);
    CHECK(h.total == 0 && hist_value_at_percentile(&h, 50) == 0 && hist_mean(&h) == 0,
          "an empty histogram reports zeros");
    hist_free(&h);
}

static void test_merge(void)
{
    struct hist a, b, all;
    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    uint64_t rng = 99;
    for (int i = 0; i < 50000; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        uint64_t v = rng % 50000000;
        hist_record(i % 3 ? &a : &b, v);
        hist_record(&all, v);
    }
    hist_add(&a, &b);
    CHECK(a.total == all.total && a.min == all.min && a.max == all.max && a.sum == all.sum,
          "merged totals and extremes");
    CHECK(memcmp(a.counts, all.counts, HIST_SLOTS * sizeof(uint64_t)) == 0, "merged counts");
    for (double p = 0; p <= 100; p += 0.5)
        CHECK(hist_value_at_percentile(&a, p) == hist_value_at_percentile(&all, p), "p%g", p);
    struct hist empty;
    hist_init(&empty);
    hist_add(&a, &empty);
    CHECK(a.total == all.total && a.min == all.min, "adding an empty histogram changes nothing");
    hist_free(&a);
    hist_free(&b);
    hist_free(&all);
    hist_free(&empty);
}

static void test_extremes(void)
{
    struct hist h;
    hist_init(&h);
    const uint64_t hour = 3600ull * 1000000000ull;
    hist_record(&h, 0);
    hist_record(&h, hour);
    CHECK(hist_value_at_percentile(&h, 0) == 0, "zero is recordable");
    CHECK(within_precision(hist_value_at_percentile(&h, 100), hour), "one hour in ns");
    CHECK(within_precision(hist_value_at_percentile(&h, 75), hour), "one hour at p75");
    hist_record(&h, HIST_MAX_VALUE);
    hist_record(&h, UINT64_MAX);
    CHECK(h.clamped == 1, "values above the range are counted as clamped");
    CHECK(h.max == HIST_MAX_VALUE, "and recorded at the maximum");
    hist_free(&h);
}

static void test_hgrm_format(void)
{
    struct hist h;
    hist_init(&h);
    for (uint64_t v = 1; v <= 10000; v++)
        hist_record(&h, v * 1000); /* 1 us .. 10 ms */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(hist_write_percentiles(&h, f, 1000.0, 5) == 0, "write");
    fclose(f);
    CHECK(strncmp(text, "       Value     Percentile TotalCount 1/(1-Percentile)\n\n", 57) == 0,
          "HdrHistogram header, got '%.60s'", text);
    CHECK(strstr(text, "       1.000 0.000000000000          1           1.00\n") != NULL,
          "first line is the minimum at percentile 0");
    CHECK(strstr(text, "   10000.000 1.000000000000      10000\n#[Mean    = ") != NULL,
          "last line is the maximum at percentile 1, then the footer");
    CHECK(strstr(text, "#[Mean    =     5000.500, StdDeviation   =     2886.751]\n") != NULL,
          "mean and standard deviation footer");
    CHECK(strstr(text, "#[Max     =    10000.000, Total count    =        10000]\n") != NULL,
          "max and count footer");
    CHECK(strstr(text, "#[Buckets =           33, SubBuckets     =         2048]\n") != NULL,
          "bucket footer");
    /* Values and percentiles never decrease. */
    double pv = -1, pp = -1;
    int lines = 0;
    for (char *line = strchr(text, '\n') + 2; line && *line && *line != '#';
         line = strchr(line, '\n') + 1, lines++) {
        double v, p;
        if (sscanf(line, "%lf %lf", &v, &p) != 2)
            break;
        CHECK(v >= pv && p >= pp, "monotonic at line %d", lines);
        pv = v, pp = p;
    }
    CHECK(lines > 50, "a detailed distribution (%d lines)", lines);
    free(text);
    hist_free(&h);
}

int main(void)
{
    test_slots();
    test_percentiles_known_data();
    test_small_exact();
    test_merge();
    test_extremes();
    test_hgrm_format();
    return check_exit_code("test_hist");
}
