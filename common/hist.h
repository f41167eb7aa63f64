/*
 * hist.h - a high-dynamic-range latency histogram (log-linear buckets, HdrHistogram-style).
 *
 * Values are unsigned integers; the load generator records nanoseconds. Every value from 0 to
 * HIST_MAX_VALUE (2^43 ns, about 2.4 hours) is kept with a relative error below 1/1024 (better
 * than 3 significant digits); values below 2048 are exact. Recording is O(1), allocation-free
 * and lock-free (one histogram per thread); histograms merge by adding counts.
 *
 * Layout: values are grouped in power-of-two buckets; each bucket is split into 1024 linear
 * sub-buckets (bucket 0, covering 0..2047, into 2048), so a value's slot is found from its
 * highest set bit and its next ten bits. A histogram takes about 270 KiB.
 *
 * Percentiles follow HdrHistogram: the value at percentile p is the highest value equivalent to
 * (in the same slot as) the smallest recorded value with at least p% of all counts at or below
 * it. Mean, standard deviation, min and max are exact, not bucketed.
 */
#ifndef ECHOBENCH_HIST_H
#define ECHOBENCH_HIST_H

#include <stdint.h>
#include <stdio.h>

#define HIST_SUB_BITS 10                       /* 1024 sub-buckets per power of two */
#define HIST_SUB_HALF (1u << HIST_SUB_BITS)
#define HIST_MAX_BITS 43                       /* values up to 2^43 - 1 */
#define HIST_MAX_VALUE ((1ull << HIST_MAX_BITS) - 1)
#define HIST_BUCKETS (HIST_MAX_BITS - HIST_SUB_BITS)
#define HIST_SLOTS ((HIST_BUCKETS + 1) * HIST_SUB_HALF)

struct hist {
    uint64_t *counts;   /* HIST_SLOTS counters */
    uint64_t total;     /* number of recorded values */
    uint64_t min, max;  /* exact extremes (min is UINT64_MAX while empty) */
    uint64_t sum;       /* exact sum, for the mean */
    double sum_sq;      /* sum of squares, for the standard deviation */
    uint64_t clamped;   /* values above HIST_MAX_VALUE, recorded as HIST_MAX_VALUE */
};

/* Allocates an empty histogram. Returns 0 or -ENOMEM. */
int hist_init(struct hist *h);

/* Frees the counters; h may then be initialised again. */
void hist_free(struct hist *h);

/* Empties h without freeing it. */
void hist_reset(struct hist *h);

/* The slot of a value: its bucket from the highest set bit, its sub-bucket from the next bits. */
static inline unsigned hist_slot(uint64_t v)
{
    if (v > HIST_MAX_VALUE)
        v = HIST_MAX_VALUE;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v | (2 * HIST_SUB_HALF - 1));
    unsigned bucket = msb - HIST_SUB_BITS;             /* 0 for v < 2048 */
    unsigned sub = (unsigned)(v >> bucket);            /* 1024..2047 (0..2047 in bucket 0) */
    return (bucket << HIST_SUB_BITS) + sub;
}

/* Records one value. O(1): no allocation, no lock; values above HIST_MAX_VALUE are clamped to it
 * and counted in h->clamped. */
static inline void hist_record(struct hist *h, uint64_t v)
{
    if (v > HIST_MAX_VALUE) {
        h->clamped++;
        v = HIST_MAX_VALUE;
    }
    h->counts[hist_slot(v)]++;
    h->total++;
    h->sum += v;
    h->sum_sq += (double)v * (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

/* Adds every count of src to dst (merging per-thread histograms). */
void hist_add(struct hist *dst, const struct hist *src);

/* Smallest and largest value that share slot s (the slot's range). */
uint64_t hist_slot_lowest(unsigned s);
uint64_t hist_slot_highest(unsigned s);

/* The value at percentile p (0..100): see the top of this file. 0 for an empty histogram;
 * p >= 100 gives the exact maximum. */
uint64_t hist_value_at_percentile(const struct hist *h, double p);

/* Exact mean and (population) standard deviation; 0 when empty. */
double hist_mean(const struct hist *h);
double hist_stddev(const struct hist *h);

/*
 * Writes the percentile distribution in HdrHistogram's text format (.hgrm): the header
 * "Value Percentile TotalCount 1/(1-Percentile)", one line per reporting step (ticks per half
 * distance to 100 %), and the #[Mean ...], #[Max ...], #[Buckets ...] footer. Values are divided
 * by unit_scale (1000 turns nanoseconds into microseconds). Returns 0 or -errno.
 */
int hist_write_percentiles(const struct hist *h, FILE *out, double unit_scale,
                           unsigned ticks_per_half_distance);

#endif
