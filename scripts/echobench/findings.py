"""The comparisons a report makes, each a ratio of two series on one metric with its 95 %
interval (stats.ratio_interval: Mann-Whitney on the logarithms, Hodges-Lehmann estimate), stated
as a difference only when it is significant. findings.json in the run folder lists them all.

Which pairs: with --baseline B, every other series against B; otherwise, at each setting, the
best series against the runner-up and against the last. And at each offered rate of the
latency scenario, every series' p99 against --p99-threshold (threshold_comparisons: the knees).
"""

import json
import math
import os

from .results import P999_METRICS, discarded, p999_masked, usable, values_of
from .stats import median, median_interval, ratio_interval

# scenario -> [(metric, what it is, unit, more is better)]
METRICS = {
    "connections": [("requests_per_sec", "throughput", "requests/s", True),
                    ("server_cpu_us_per_request", "server CPU per request", "us", False),
                    ("lat_p99_us", "p99 latency", "us", False)],
    "latency": [("lat_p99_us", "p99 latency", "us", False),
                ("lat_p999_us", "p99.9 latency", "us", False)],
    "churn": [("requests_per_sec", "connections per second", "conn/s", True)],
    "size": [("mb_per_sec", "throughput", "MB/s", True)],
    "work": [("requests_per_sec", "throughput", "requests/s", True),
             ("server_cpu_us_per_request", "server CPU per request", "us", False),
             # mixed cells only (the others have no cheap class)
             ("cheap_p99_us", "cheap messages' p99 latency", "us", False)],
    "idle": [("memory_per_connection_bytes", "memory per idle connection", "bytes", False)],
}
TEST = ("two-sided exact Mann-Whitney test at 5 % on the repeats' logarithms; ratio: "
        "Hodges-Lehmann estimate with its distribution-free 95 % interval")


def _setting_order(setting):
    """Settings in numeric order: c=1 before c=16 before c=128."""
    digits = "".join(ch if ch.isdigit() else " " for ch in setting).split()
    return [int(d) for d in digits], setting


def comparisons(cells, series, baseline=None, indicative=False):
    """[finding dict] of every comparison; series: the series names in their order."""
    out = []
    scenarios = [s for s in METRICS if any(c.scenario == s for c in cells)]
    for scenario in scenarios:
        for metric, what, unit, more_better in METRICS[scenario]:
            vals = values_of(cells, metric)
            settings = sorted({s for (scen, _, s) in vals if scen == scenario},
                              key=_setting_order)
            for setting in settings:
                have = {m: vals[(scenario, m, setting)] for m in series
                        if (scenario, m, setting) in vals}
                if len(have) < 2:
                    continue
                if baseline:
                    if baseline not in have:
                        continue
                    pairs = [(baseline, m) for m in have if m != baseline]
                else:
                    ranked = sorted(have, key=lambda m: median(have[m]), reverse=more_better)
                    pairs = [(ranked[0], ranked[1])]
                    if len(ranked) > 2:
                        pairs.append((ranked[0], ranked[-1]))
                for a, b in pairs:
                    r = ratio_interval(have[a], have[b])
                    explained = _explained_by_stalls(cells, metric, scenario, setting, (a, b))
                    if explained:  # a p99.9 the platform could have made: no finding on it
                        r.significant = False
                    out.append({
                        "scenario": scenario, "setting": setting, "metric": metric,
                        "a": a, "b": b,
                        # An open end (a repeat of zero) is null in JSON: _finite_or_none.
                        "ratio": _finite_or_none(r.ratio), "ci_low": r.low,
                        "ci_high": _finite_or_none(r.high),
                        "significant": r.significant, "coverage": round(r.coverage, 4),
                        "n_a": r.n_a, "n_b": r.n_b,
                        "median_a": median(have[a]), "median_b": median(have[b]),
                        "indicative": bool(indicative or r.n_a < 2 or r.n_b < 2),
                        "what": what, "unit": unit, "more_is_better": more_better,
                        "note": r.note, "explained_by_stalls": explained})
    return out


def _explained_by_stalls(cells, metric, scenario, setting, series):
    """For a p99.9 metric: how many of the measurements of `series` at the setting have a p99.9
    the platform's stalls could explain (results.p999_masked); 0 for other metrics."""
    if metric not in P999_METRICS:
        return 0
    return sum(1 for c in cells if c.scenario == scenario and c.model in series and
               c.setting() == setting and usable(c) and p999_masked(c))


def _finite_or_none(x):
    return x if x is not None and math.isfinite(x) else None


def why_missing(cells, scenario, model, setting):
    """Why a series has no undisturbed measurement at a setting, in a few words."""
    mine = [c for c in cells if c.scenario == scenario and c.model == model and
            c.setting() == setting]
    if not mine:
        return "not measured"
    if any(usable(c) for c in mine):
        return "no value of this metric"
    if any(discarded(c) for c in mine):
        return "every attempt was disturbed"
    c = mine[0]
    if c.status == "unservable" and c.reason:
        return c.reason  # says why by itself
    return f"{c.status}" + (f": {c.reason}" if c.reason else "")


def baseline_gaps(cells, series, baseline):
    """Sentences for the report: the settings at which the baseline has no measurement of a
    metric that other series have, so that those series are not compared there, and why."""
    if not baseline:
        return []
    gaps = {}  # (scenario, setting) -> [(what, others)]
    for scenario in [s for s in METRICS if any(c.scenario == s for c in cells)]:
        for metric, what, _, _ in METRICS[scenario]:
            vals = values_of(cells, metric)
            settings = sorted({s for (scen, _, s) in vals if scen == scenario},
                              key=_setting_order)
            for setting in settings:
                others = [m for m in series if m != baseline and (scenario, m, setting) in vals]
                if others and (scenario, baseline, setting) not in vals:
                    gaps.setdefault((scenario, setting), []).append((what, others))
    out = []
    for (scenario, setting), lacking in gaps.items():
        others = sorted({m for _, ms in lacking for m in ms}, key=series.index)
        why = why_missing(cells, scenario, baseline, setting)
        whats = ", ".join(w for w, _ in lacking)
        out.append(f"{baseline} has no undisturbed measurement ({whats}) at {scenario} "
                   f"{setting} - {why}: {', '.join(others)} not compared against it there")
    return out


# The verdicts of a series' p99 against the threshold at one offered rate.
UNDER, OVER, UNCLEAR, NOT_ACHIEVED = "under", "over", "indistinguishable", "rate not achieved"
ACHIEVED_MIN = 0.99  # the share of the offered rate a series must achieve (median)


def threshold_comparisons(cells, series, threshold_us, indicative=False):
    """[finding dict]: at every offered rate of the latency scenario, each series' p99 against
    the threshold. It is under (or over) the threshold only when the 95 % interval of its median
    (min-max below 6 repeats) is wholly below (above) it - then `significant`; otherwise it is
    indistinguishable from it at this precision. A series that achieved less than 99 % of the
    offered rate (median over the repeats) fails at that rate whatever its p99. The shape is a
    comparison's: a is "threshold", b the series, ratio the median p99 / threshold, ci_low -
    ci_high its interval / threshold, plus threshold_us, achieved_ratio and verdict."""
    p99 = values_of(cells, "lat_p99_us")
    achieved = values_of(cells, "achieved_ratio")
    rates = sorted({c.rate for c in cells if c.scenario == "latency"})
    out = []
    for m in series:
        for rate in rates:
            setting = f"rate={rate:.0f}"
            vals = p99.get(("latency", m, setting))
            if not vals:
                continue
            iv = median_interval(vals)
            got = median(achieved.get(("latency", m, setting)) or [])
            below, above = iv.high < threshold_us, iv.low > threshold_us
            verdict = (NOT_ACHIEVED if got is None or got < ACHIEVED_MIN else
                       UNDER if below else OVER if above else UNCLEAR)
            out.append({
                "scenario": "latency", "setting": setting, "metric": "lat_p99_us",
                "a": "threshold", "b": m, "threshold_us": threshold_us,
                "ratio": iv.median / threshold_us, "ci_low": iv.low / threshold_us,
                "ci_high": iv.high / threshold_us, "significant": below or above,
                "coverage": round(iv.coverage, 4), "n_a": None, "n_b": iv.n,
                "median_a": threshold_us, "median_b": iv.median,
                "indicative": bool(indicative or iv.n < 2),
                "achieved_ratio": got, "verdict": verdict, "rate": rate,
                "what": "p99 latency against the threshold", "unit": "us",
                "more_is_better": False, "note": iv.method})
    return out


def knees(found):
    """{series: (the highest rate up to which every rate was under the threshold or None, the
    first rate that was not, its verdict or None, indicative)} from threshold_comparisons: a
    higher rate that happens to pass after one that did not does not count."""
    out = {}
    for f in found:
        best, first, verdict, ind = out.get(f["b"], (None, None, None, False))
        if first is not None:
            continue
        ind = ind or f["indicative"]
        if f["verdict"] == UNDER:
            out[f["b"]] = (f["rate"], None, None, ind)
        else:
            out[f["b"]] = (best, f["rate"], f["verdict"], ind)
    return out


def _v(x):
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}"


def sentence(f):
    """One finding as a sentence of the report."""
    head = f"{f['scenario']} {f['setting']}, {f['what']}: {f['b']} / {f['a']}"
    if not f["median_a"] or not f["median_b"] or (f["ratio"] is None and f["ci_low"] is None):
        zero = f["b"] if not f["median_b"] else f["a"]
        text = (f"{head}: {zero} completed none ({f['a']} {_v(f['median_a'])}, "
                f"{f['b']} {_v(f['median_b'])} {f['unit']})" if f["more_is_better"] else
                f"{head}: no ratio ({f['a']} {_v(f['median_a'])}, {f['b']} "
                f"{_v(f['median_b'])} {f['unit']})")
        return text + (" [indicative]" if f["indicative"] else "")
    values = f"({_v(f['median_b'])} vs {_v(f['median_a'])} {f['unit']})"
    ratio = "unbounded" if f["ratio"] is None else f"{f['ratio']:.2f}"
    high = "unbounded" if f["ci_high"] is None else f"{f['ci_high']:.2f}"
    note = f"; {f['note']}" if f["note"] and f["ci_low"] is not None else ""
    if f.get("explained_by_stalls") and f["ci_low"] is not None:
        text = (f"{head} = {ratio} (95 % interval {f['ci_low']:.2f}-{high}{note}) {values}: no "
                f"finding - the platform's stalls could explain {f['explained_by_stalls']} of "
                "these p99.9s")
    elif f["ci_low"] is None:
        text = (f"{head} = {ratio} {values}: indistinguishable at this precision "
                f"({f['note']})")
    elif f["significant"]:
        higher = f["ci_low"] > 1
        better = higher == f["more_is_better"]
        text = (f"{head} = {ratio} (95 % interval {f['ci_low']:.2f}-{high}{note}) {values}: "
                f"{f['b']} is significantly {'higher' if higher else 'lower'} "
                f"({'better' if better else 'worse'})")
    else:
        text = (f"{head} = {ratio} (95 % interval {f['ci_low']:.2f}-{high}{note}) {values}: "
                "indistinguishable at this precision")
    return text + (" [indicative]" if f["indicative"] else "")


def write_findings(run_dir, found):
    """findings.json: every comparison (docs/results.md, "Findings"); those against the
    threshold also have threshold_us, achieved_ratio and verdict."""
    keys = ["scenario", "setting", "metric", "a", "b", "ratio", "ci_low", "ci_high",
            "significant", "coverage", "n_a", "n_b", "median_a", "median_b", "indicative",
            "explained_by_stalls", "threshold_us", "achieved_ratio", "verdict"]
    with open(os.path.join(run_dir, "findings.json"), "w") as f:
        json.dump([{k: x[k] for k in keys if k in x} for x in found], f, indent=1)
