"""Statistics over the repeats of a measurement."""

from dataclasses import dataclass
from math import comb, exp, inf, isfinite, log


def finite(values):
    """(the finite values of `values`, how many were NaN or infinite); None is no value and is
    not counted."""
    kept = [v for v in values if v is not None and isfinite(v)]
    return kept, sum(1 for v in values if v is not None) - len(kept)


def median(values):
    values = sorted(finite(values)[0])
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


@dataclass
class Interval:
    median: float
    low: float
    high: float
    n: int
    method: str      # "order statistics" (a 95 % interval) or "min-max" (too few values)
    coverage: float  # the probability that [low, high] holds the true median
    non_finite: int = 0  # NaN or infinite values left out


def median_interval(values, confidence=0.95):
    """The median of `values` with a distribution-free confidence interval for it.

    Of n independent values, the number below the true median is binomial (n, 1/2), so the
    k-th smallest and the k-th largest enclose it with probability 1 - 2 P(B <= k - 1): the
    interval takes the largest k for which that is at least `confidence`. It assumes nothing
    about the distribution, only that the repeats are independent. Below 6 values no such k
    exists at 95 % (with 5, min-max covers 93.75 %): the interval is then the min-max range,
    and `method` says so. NaN and infinite values are no measurement: they are left out and
    counted (`non_finite`); ValueError if no finite value is left."""
    xs, bad = finite(values)
    xs.sort()
    n = len(xs)
    if n == 0:
        raise ValueError("no finite values")
    tail = (1 - confidence) / 2

    def below(j):  # P(B <= j), B binomial (n, 1/2)
        return sum(comb(n, i) for i in range(j + 1)) / 2 ** n

    k = 0
    while k + 1 <= n // 2 and below(k) <= tail:
        k += 1
    if k == 0:
        return Interval(median(xs), xs[0], xs[-1], n, "min-max", 1 - 2 * 0.5 ** n, bad)
    return Interval(median(xs), xs[k - 1], xs[n - k], n, "order statistics",
                    1 - 2 * below(k - 1), bad)


def _mann_whitney_counts(m, n):
    """counts[u]: how many of the C(m + n, m) orderings of two samples of m and n values give
    the Mann-Whitney statistic U = u (the number of pairs (a, b) with b < a)."""
    # f(m, n) as a polynomial in u: f(m, n) = x^n f(m - 1, n) + f(m, n - 1).
    table = {}
    for i in range(m + 1):
        for j in range(n + 1):
            if i == 0 or j == 0:
                table[i, j] = [1]
                continue
            a, b = table[i - 1, j], table[i, j - 1]
            out = [0] * (i * j + 1)
            for u, c in enumerate(a):
                out[u + j] += c
            for u, c in enumerate(b):
                out[u] += c
            table[i, j] = out
    return table[m, n]


@dataclass
class Ratio:
    """b relative to a: the Hodges-Lehmann estimate of the ratio and its interval."""
    ratio: float          # exp(median of the pairwise log ratios); b / a for single values;
                          # 0 or inf when zeros dominate; None for 0 / 0
    low: float            # None when the samples are too small for the confidence asked;
    high: float           # 0 or inf: open-ended (repeats that were zero)
    significant: bool     # the interval excludes 1 (without ties: the exact test rejects)
    coverage: float       # the exact coverage of [low, high] (0 when there is none)
    n_a: int
    n_b: int
    note: str = ""        # why there is no interval, or why it is open-ended
    non_finite: int = 0   # NaN, infinite or negative values left out


def _log_ratio(x, y):
    """log(y / x) for values >= 0: -inf when y alone is 0, inf when x alone is, 0 for 0 and 0
    (a tie)."""
    if x == 0 or y == 0:
        return 0.0 if x == y else (inf if x == 0 else -inf)
    return log(y) - log(x)


def _median_log(d):
    """The median of sorted log ratios, which may hold -inf and inf."""
    mid = len(d) // 2
    if len(d) % 2:
        return d[mid]
    lo, hi = d[mid - 1], d[mid]
    if lo == -inf and hi == inf:
        return 0.0  # as many pairs each way: no direction
    return (lo + hi) / 2


def ratio_interval(a_values, b_values, confidence=0.95):
    """The ratio b / a of two samples of positive values (repeats of one cell for two series),
    with a distribution-free confidence interval: Mann-Whitney on the logarithms.

    Every pair gives a log ratio log(b_j) - log(a_i); the estimate is their median (the
    Hodges-Lehmann estimator of the shift between the two log distributions), and the interval
    runs from the k-th smallest to the k-th largest pairwise log ratio, k the largest for which
    the exact null distribution of the Mann-Whitney U gives P(U <= k - 1) <= (1 - confidence)/2.
    Without ties, the interval excludes 1 exactly when the two-sided exact Mann-Whitney test
    rejects "the two series are the same" at 1 - confidence: that is `significant`. With ties
    (equal values, or zeros on both sides) the exact null distribution used is that of untied
    samples, and the interval is conservative: it may include 1 where a test corrected for ties
    would reject. It assumes only that the repeats are independent and that the two
    distributions differ by a factor (a shift of the logarithms). With 3 repeats each, or
    fewer, no interval reaches 95 %: low and high are None and the difference is never
    significant.

    Zero is a value (a throughput of a cell that completed nothing): the test ranks it below
    every positive value, its pairwise ratios are 0 or infinite (0 / 0 a tie), and the
    interval is then open-ended - low 0 or high inf - with the test's verdict all the same.
    NaN, infinite and negative values are no measurement: left out and counted (non_finite)."""
    a, bad_a = finite(a_values)
    b, bad_b = finite(b_values)
    bad = bad_a + bad_b + sum(1 for v in a + b if v < 0)
    a, b = [v for v in a if v >= 0], [v for v in b if v >= 0]
    if not a or not b:
        raise ValueError("no finite values")
    m, n = len(a), len(b)
    zeros = 0 in a or 0 in b
    note = "repeats of zero: an open-ended interval" if zeros else ""
    d = sorted(_log_ratio(x, y) for x in a for y in b)
    if not any(a) and not any(b):
        return Ratio(None, None, None, False, 0.0, m, n, "every value is zero: no ratio", bad)
    est = exp(_median_log(d))
    counts = _mann_whitney_counts(m, n)
    total = sum(counts)
    tail = (1 - confidence) / 2
    k, below = 0, 0
    while k < len(d) // 2 and (below + counts[k]) / total <= tail:
        below += counts[k]
        k += 1
    if k == 0:
        return Ratio(est, None, None, False, 0.0, m, n,
                     f"{m} and {n} repeats: too few for a {confidence:.0%} interval", bad)
    low, high = exp(d[k - 1]), exp(d[len(d) - k])
    return Ratio(est, low, high, low > 1 or high < 1, 1 - 2 * below / total, m, n, note, bad)


def within(interval, median_value, tolerance):
    """True if [low, high] lies within +-tolerance (a fraction) of the median."""
    if interval is None or median_value is None or median_value == 0:
        return False
    lo, hi = interval
    return lo >= median_value * (1 - tolerance) and hi <= median_value * (1 + tolerance)
