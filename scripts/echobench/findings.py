"""The comparisons a report makes, each a ratio of two series on one metric with its 95 %
interval (stats.ratio_interval: Mann-Whitney on the logarithms, Hodges-Lehmann estimate), stated
as a difference only when it is significant. findings.json in the run folder lists them all.

Which pairs: with --baseline B, every other series against B; otherwise, at each setting, the
best series against the runner-up and against the last.
"""

import json
import os

from .results import values_of
from .stats import median, ratio_interval

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
                    out.append({
                        "scenario": scenario, "setting": setting, "metric": metric,
                        "a": a, "b": b,
                        "ratio": r.ratio, "ci_low": r.low, "ci_high": r.high,
                        "significant": r.significant, "coverage": round(r.coverage, 4),
                        "n_a": r.n_a, "n_b": r.n_b,
                        "median_a": median(have[a]), "median_b": median(have[b]),
                        "indicative": bool(indicative or r.n_a < 2 or r.n_b < 2),
                        "what": what, "unit": unit, "more_is_better": more_better,
                        "note": r.note})
    return out


def _v(x):
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}"


def sentence(f):
    """One finding as a sentence of the report."""
    head = f"{f['scenario']} {f['setting']}, {f['what']}: {f['b']} / {f['a']}"
    if f["ratio"] is None or not f["median_a"] or not f["median_b"]:
        zero = f["b"] if not f["median_b"] else f["a"]
        text = (f"{head}: {zero} completed none ({f['a']} {_v(f['median_a'])}, "
                f"{f['b']} {_v(f['median_b'])} {f['unit']})" if f["more_is_better"] else
                f"{head}: no ratio ({f['a']} {_v(f['median_a'])}, {f['b']} "
                f"{_v(f['median_b'])} {f['unit']})")
        return text + (" [indicative]" if f["indicative"] else "")
    values = f"({_v(f['median_b'])} vs {_v(f['median_a'])} {f['unit']})"
    if f["ci_low"] is None:
        text = (f"{head} = {f['ratio']:.2f} {values}: indistinguishable at this precision "
                f"({f['note']})")
    elif f["significant"]:
        higher = f["ratio"] > 1
        better = higher == f["more_is_better"]
        text = (f"{head} = {f['ratio']:.2f} (95 % interval {f['ci_low']:.2f}-"
                f"{f['ci_high']:.2f}) {values}: {f['b']} is significantly "
                f"{'higher' if higher else 'lower'} ({'better' if better else 'worse'})")
    else:
        text = (f"{head} = {f['ratio']:.2f} (95 % interval {f['ci_low']:.2f}-"
                f"{f['ci_high']:.2f}) {values}: indistinguishable at this precision")
    return text + (" [indicative]" if f["indicative"] else "")


def write_findings(run_dir, found):
    keys = ["scenario", "setting", "metric", "a", "b", "ratio", "ci_low", "ci_high",
            "significant", "coverage", "n_a", "n_b", "median_a", "median_b", "indicative"]
    with open(os.path.join(run_dir, "findings.json"), "w") as f:
        json.dump([{k: x[k] for k in keys} for x in found], f, indent=1)
