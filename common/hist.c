#include "hist.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int hist_init(struct hist *h)
{
    memset(h, 0, sizeof *h);
    h->counts = calloc(HIST_SLOTS, sizeof *h->counts);
    if (!h->counts)
        return -ENOMEM;
    h->min = UINT64_MAX;
    return 0;
}

void hist_free(struct hist *h)
{
    free(h->counts);
    h->counts = NULL;
}

void hist_reset(struct hist *h)
{
    uint64_t *counts = h->counts;
    memset(counts, 0, HIST_SLOTS * sizeof *counts);
    memset(h, 0, sizeof *h);
    h->counts = counts;
    h->min = UINT64_MAX;
}

void hist_add(struct hist *dst, const struct hist *src)
{
    if (src->total == 0)
        return;
    for (unsigned s = 0; s < HIST_SLOTS; s++)
        dst->counts[s] += src->counts[s];
    dst->total += src->total;
    dst->sum += src->sum;
    dst->sum_sq += src->sum_sq;
    dst->clamped += src->clamped;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

/*
 * Inverting hist_slot(): a value v with b = msb(v) - 10 (b = 0 below 2048) sits in slot
 * (b << 10) + (v >> b). Slots 0..2047 are the values 0..2047 themselves. For b >= 1 the slots
 * run from (b + 1) << 10 to ((b + 2) << 10) - 1, each 2^b values wide. So with k = slot >> 10:
 * k <= 1 means an exact value; otherwise b = k - 1 and the slot starts at
 * (1024 + slot % 1024) << b.
 */
uint64_t hist_slot_lowest(unsigned s)
{
    unsigned k = s >> HIST_SUB_BITS;
    if (k <= 1)
        return s;
    return ((uint64_t)HIST_SUB_HALF + (s & (HIST_SUB_HALF - 1))) << (k - 1);
}

uint64_t hist_slot_highest(unsigned s)
{
    unsigned k = s >> HIST_SUB_BITS;
    uint64_t width = k <= 1 ? 1 : 1ull << (k - 1);
    return hist_slot_lowest(s) + width - 1;
}

uint64_t hist_value_at_percentile(const struct hist *h, double p)
{
    if (h->total == 0)
        return 0;
    if (p >= 100)
        return h->max;
    if (p < 0)
        p = 0;
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->total);
    if (want == 0)
        want = 1; /* the 0th percentile is the smallest recorded value */
    uint64_t seen = 0;
    for (unsigned s = 0; s < HIST_SLOTS; s++) {
        seen += h->counts[s];
        if (seen >= want) {
            uint64_t v = hist_slot_highest(s);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->total ? (double)h->sum / (double)h->total : 0;
}

double hist_stddev(const struct hist *h)
{
    if (h->total == 0)
        return 0;
    double mean = hist_mean(h);
    double var = h->sum_sq / (double)h->total - mean * mean;
    return var > 0 ? sqrt(var) : 0;
}

/* The percentile step after `level`: HdrHistogram's schedule, which halves the step every time
 * the distance to 100 % halves, so the tail gets as many lines as the body. */
static double next_level(double level, unsigned ticks_per_half_distance)
{
    double halvings = floor(log2(100.0 / (100.0 - level))) + 1;
    double ticks = ticks_per_half_distance * pow(2, halvings);
    return level + 100.0 / ticks;
}

int hist_write_percentiles(const struct hist *h, FILE *out, double unit_scale,
                           unsigned ticks_per_half_distance)
{
    if (ticks_per_half_distance == 0)
        ticks_per_half_distance = 5;
    fprintf(out, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
            "1/(1-Percentile)");
    double level = 0;
    uint64_t seen = 0;
    for (unsigned s = 0; s < HIST_SLOTS && seen < h->total; s++) {
        if (h->counts[s] == 0)
            continue;
        seen += h->counts[s];
        uint64_t v = hist_slot_highest(s);
        if (v > h->max)
            v = h->max;
        double reached = 100.0 * (double)seen / (double)h->total;
        /* One line per reporting level this slot reaches (a heavy slot can pass several); the
         * last slot gets one, then the closing 100 % line below. */
        while (level <= reached && level < 100) {
            double frac = level / 100.0;
            fprintf(out, "%12.3f %2.12f %10llu %14.2f\n", (double)v / unit_scale, frac,
                    (unsigned long long)seen, 1.0 / (1.0 - frac));
            level = next_level(level, ticks_per_half_distance);
            if (seen == h->total)
                break;
        }
    }
    if (h->total > 0)
        fprintf(out, "%12.3f %2.12f %10llu\n", (double)h->max / unit_scale, 1.0,
                (unsigned long long)h->total);
    fprintf(out, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", hist_mean(h) / unit_scale,
            hist_stddev(h) / unit_scale);
    fprintf(out, "#[Max     = %12.3f, Total count    = %12llu]\n",
            (double)(h->total ? h->max : 0) / unit_scale, (unsigned long long)h->total);
    fprintf(out, "#[Buckets = %12u, SubBuckets     = %12u]\n", HIST_BUCKETS, 2 * HIST_SUB_HALF);
    return ferror(out) ? -EIO : 0;
}
