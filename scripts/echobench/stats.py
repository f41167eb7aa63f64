"""Statistics over the repeats of a measurement."""

from dataclasses import dataclass
from math import comb


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
