"""Statistics over the repeats of a measurement."""

from dataclasses import dataclass
from math import comb, exp, log


def median(values):
    values = sorted(v for v in values if v is not None)
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


def median_interval(values, confidence=0.95):
    """The median of `values` with a distribution-free confidence interval for it.

    Of n independent values, the number below the true median is binomial (n, 1/2), so the
    k-th smallest and the k-th largest enclose it with probability 1 - 2 P(B <= k - 1): the
    interval takes the largest k for which that is at least `confidence`. It assumes nothing
    about the distribution, only that the repeats are independent. Below 6 values no such k
    exists at 95 % (with 5, min-max covers 93.75 %): the interval is then the min-max range,
    and `method` says so."""
    xs = sorted(v for v in values if v is not None)
    n = len(xs)
    if n == 0:
        raise ValueError("no values")
    tail = (1 - confidence) / 2

    def below(j):  # P(B <= j), B binomial (n, 1/2)
        return sum(comb(n, i) for i in range(j + 1)) / 2 ** n

    k = 0
    while k + 1 <= n // 2 and below(k) <= tail:
        k += 1
    if k == 0:
        return Interval(median(xs), xs[0], xs[-1], n, "min-max", 1 - 2 * 0.5 ** n)
    return Interval(median(xs), xs[k - 1], xs[n - k], n, "order statistics",
                    1 - 2 * below(k - 1))


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
    ratio: float          # exp(median of the pairwise log ratios); b / a for single values
    low: float            # None when the samples are too small for the confidence asked
    high: float
    significant: bool     # the interval excludes 1 (the exact Mann-Whitney test rejects)
    coverage: float       # the exact coverage of [low, high] (0 when there is none)
    n_a: int
    n_b: int
    note: str = ""        # why there is no interval, when there is none


def ratio_interval(a_values, b_values, confidence=0.95):
    """The ratio b / a of two samples of positive values (repeats of one cell for two series),
    with a distribution-free confidence interval: Mann-Whitney on the logarithms.

    Every pair gives a log ratio log(b_j) - log(a_i); the estimate is their median (the
    Hodges-Lehmann estimator of the shift between the two log distributions), and the interval
    runs from the k-th smallest to the k-th largest pairwise log ratio, k the largest for which
    the exact null distribution of the Mann-Whitney U gives P(U <= k - 1) <= (1 - confidence)/2.
    The interval excludes 1 exactly when the two-sided exact Mann-Whitney test rejects "the two
    series are the same" at 1 - confidence: that is `significant`. It assumes only that the
    repeats are independent and that the two distributions differ by a factor (a shift of the
    logarithms). With 3 repeats each, or fewer, no interval reaches 95 %: low and high are None
    and the difference is never significant."""
    a = [v for v in a_values if v is not None]
    b = [v for v in b_values if v is not None]
    if not a or not b:
        raise ValueError("no values")
    if min(a) <= 0 or min(b) <= 0:
        ma, mb = median(a), median(b)
        return Ratio(mb / ma if ma else None, None, None, False, 0.0, len(a), len(b),
                     "a value of zero or less: no ratio interval")
    d = sorted(log(y) - log(x) for x in a for y in b)
    m, n = len(a), len(b)
    est = exp(median(d))
    counts = _mann_whitney_counts(m, n)
    total = sum(counts)
    tail = (1 - confidence) / 2
    k, below = 0, 0
    while k < len(d) // 2 and (below + counts[k]) / total <= tail:
        below += counts[k]
        k += 1
    if k == 0:
        return Ratio(est, None, None, False, 0.0, m, n,
                     f"{m} and {n} repeats: too few for a {confidence:.0%} interval")
    low, high = exp(d[k - 1]), exp(d[len(d) - k])
    return Ratio(est, low, high, low > 1 or high < 1, 1 - 2 * below / total, m, n)


def within(interval, median_value, tolerance):
    """True if [low, high] lies within +-tolerance (a fraction) of the median."""
    if interval is None or median_value is None or median_value == 0:
        return False
    lo, hi = interval
    return lo >= median_value * (1 - tolerance) and hi <= median_value * (1 + tolerance)
