"""Writing and reading a run folder's results (columns documented in docs/results.md)."""

import csv
import json
import os
import statistics

from .scenarios import Cell
from .stats import finite, median_interval

# results.csv columns, in order: the cell's parameters, its status, then what was measured.
PARAM_COLUMNS = ["scenario", "model", "repeat", "status", "reason", "connections", "size",
                 "pipeline", "rate", "reconnect", "work_us", "sleep_us", "idle"]
RESULT_COLUMNS = [
    "requests", "requests_per_sec", "mb_per_sec", "duration_s",
    "lat_mean_us", "lat_p50_us", "lat_p90_us", "lat_p99_us", "lat_p999_us", "lat_p9999_us",
    "lat_max_us", "connect_p50_us", "connect_p99_us",
    "errors_total", "errors_connect", "errors_reset", "errors_eof", "errors_timeout",
    "errors_mismatch", "errors_other", "mismatches", "late", "achieved_ratio",
    "connections_open",
    "server_cpu_s", "server_cpu_us_per_request", "server_utilization",
    "server_rss_base_kib", "server_rss_peak_kib",
    "server_mem_base_kib", "server_mem_peak_kib", "memory_per_connection_bytes",
    "server_processes_peak", "server_threads_peak", "server_exit",
    "loadgen_cpu_s", "loadgen_busy", "loadgen_saturated", "hgrm",
    # Added later, so at the end: the load generator's stall figures, where it reports them.
    "stalls_max_us", "stalls_count_over_1ms", "stalls_total_us",
]
# Added after those: which attempt at the repeat this is and whether it was disturbed; what a
# variant runs; the pool size the bench gave; the sysctls --tune-kernel raised.
LATE_COLUMNS = ["attempt", "disturbed", "server_model", "server_options", "threads",
                "kernel_tuning"]
# Then the mixed work cells: the cell's cost_every, and the figures of its cheap and costly
# messages apart (empty in the other cells).
MIXED_COLUMNS = ["cost_every"]
MIXED_RESULT_COLUMNS = ["cheap_count", "cheap_p50_us", "cheap_p99_us", "cheap_p999_us",
                        "costly_count", "costly_p50_us", "costly_p99_us"]
COLUMNS = PARAM_COLUMNS + RESULT_COLUMNS + LATE_COLUMNS + MIXED_COLUMNS + MIXED_RESULT_COLUMNS


# The metrics results.json's summary gives for each scenario (docs/results.md).
SUMMARY_METRICS = {
    "connections": ["requests_per_sec", "server_cpu_us_per_request", "lat_p50_us", "lat_p99_us",
                    "lat_p999_us"],
    "latency": ["lat_p50_us", "lat_p99_us", "lat_p999_us", "achieved_ratio",
                "server_cpu_us_per_request"],
    "churn": ["requests_per_sec", "connect_p50_us", "connect_p99_us",
              "server_cpu_us_per_request"],
    "size": ["mb_per_sec", "lat_p50_us", "lat_p99_us", "server_cpu_us_per_request"],
    # The cheap_* and costly_* figures exist in mixed cells only.
    "work": ["requests_per_sec", "lat_p50_us", "lat_p99_us", "server_cpu_us_per_request",
             "cheap_p50_us", "cheap_p99_us", "cheap_p999_us", "costly_p99_us"],
    "idle": ["memory_per_connection_bytes"],
}
STALL_METRICS = ["stalls_max_us", "stalls_total_us"]  # every scenario, where reported
# The metric that stands for a cell (--repeat auto settles on it; scripts/compare shows it), and
# whether more is better.
HEADLINE = {
    "connections": ("requests_per_sec", True),
    "latency": ("lat_p99_us", False),
    "churn": ("requests_per_sec", True),
    "size": ("mb_per_sec", True),
    "work": ("requests_per_sec", True),
    "idle": ("memory_per_connection_bytes", False),
}
# A mixed work cell's: what the cheap messages' p99 becomes.
MIXED_HEADLINE = ("cheap_p99_us", False)


# Metrics for which a cell that completed no request still has a value - zero: how much it
# served. Its latency and CPU per request do not exist (docs/methodology.md, "Zeros").
ZERO_IS_A_VALUE = {"requests", "requests_per_sec", "mb_per_sec", "achieved_ratio"}


# When the load generator's platform stalls could explain a tail percentile
# (docs/methodology.md, "Disturbed cells"): the longest stall is at least STALL_MIN_US and at
# least STALL_TAIL_SHARE of the percentile, and the stalls took at least the share of the
# window that lies above it (1 % for a p99, 0.1 % for a p99.9).
STALL_MIN_US = 1000.0
STALL_TAIL_SHARE = 0.25
# The p99.9 metrics. A measurement whose p99.9 the stalls could explain is not disturbed for it
# (on a VM that stalls for 1-4 ms several times a minute that is a third of all measurements:
# re-measuring would keep only lucky windows, and their p99 and throughput are sound); its
# p99.9 stays in the summary (counted in explained_by_stalls), and no finding is made on a
# p99.9 that such a measurement is part of (findings.comparisons). Leaving those p99.9s out
# instead would keep the larger ones: a biased median.
P999_METRICS = ("lat_p999_us", "cheap_p999_us")


def stalls_explain(result, value, share_above):
    """True if the stalls recorded in `result` could explain a tail percentile `value` (us)
    above which lies `share_above` of the messages."""
    longest, total = result.get("stalls_max_us"), result.get("stalls_total_us")
    window_us = (result.get("duration_s") or 0) * 1e6
    if not value or longest is None or total is None or not window_us:
        return False
    return longest >= STALL_MIN_US and longest >= STALL_TAIL_SHARE * value and \
        total >= share_above * window_us


def p999_masked(cell):
    """True if the cell's p99.9 (its cheap messages' in a mixed cell) is one the platform's
    stalls could explain: no finding is then made on a p99.9 it is part of."""
    if cell.idle:
        return False
    metric = "cheap_p999_us" if cell.cost_every else "lat_p999_us"
    return stalls_explain(cell.result, cell.result.get(metric), 0.001)


def metric_value(cell, metric):
    """The cell's value of the metric, or None: none recorded, or a figure of requests when the
    (non-idle) cell completed none. NaN and inf are returned as they are, for the statistics
    to leave out and count."""
    v = cell.result.get(metric)
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if not cell.idle and cell.result.get("requests") == 0 and metric not in ZERO_IS_A_VALUE:
        return None
    return v


def headline(cell):
    """(metric, more is better) that stands for this cell."""
    return MIXED_HEADLINE if cell.cost_every else HEADLINE[cell.scenario]


def measured(cell):
    """A cell with figures: status ok or errors (disturbed or not)."""
    return cell.status in ("ok", "errors")


def usable(cell):
    """A measurement that plots, summaries and findings use: measured and not disturbed (or
    disturbed and kept: by --keep-disturbed, or because its stalls follow its series), and not
    a re-measurement superseded by its repeat's first attempt."""
    return measured(cell) and not cell.result.get("superseded") and \
        (not cell.disturbed or bool(cell.result.get("kept_disturbed")))


def discarded(cell):
    """A disturbed measurement left out."""
    return measured(cell) and not usable(cell) and not cell.result.get("superseded")


# Stalls that follow a series. A platform stall strikes cells at random; when the first attempts
# of one series at a setting are disturbed in most repeats while those of the other series at
# the same setting are not, the stalls come with the load that series puts on the machine (a
# server that runs 128 threads on its one CPU makes the load generator's system calls on the
# other CPU wait: measured 2-6 ms "stalls" in most attempts, none for the event loops beside
# it). Leaving those attempts out would keep only the series' lucky repeats, or none at all.
# So its first attempts are used, flagged, and its re-measurements are superseded.
FOLLOW_MIN_REPEATS = 3  # first attempts of the series needed to tell
FOLLOW_SHARE = 0.5      # ... disturbed in at least this share of them
OTHERS_QUIET = 0.25     # ... while the other series' median share is at most this
OTHERS_MIN = 2          # ... over at least this many other series
# The median over the other series, not their pooled share: several series may share the
# behaviour (every thread- or process-per-connection model at 128 connections does).


def stalls_follow_series(cells, scenario, model, setting):
    """True if the first attempts of (scenario, model, setting) are disturbed far more often
    than those of the other series at the same setting (see above)."""
    first = {}  # series -> [disturbed?] of its first attempts at the setting
    for c in cells:
        if c.scenario == scenario and c.attempt == 0 and measured(c) and c.setting() == setting:
            first.setdefault(c.model, []).append(c.disturbed)
    mine = first.pop(model, [])
    if len(mine) < FOLLOW_MIN_REPEATS or len(first) < OTHERS_MIN:
        return False
    others = statistics.median(sum(v) / len(v) for v in first.values())
    return sum(mine) >= FOLLOW_SHARE * len(mine) and others <= OTHERS_QUIET


def keep_stalls_that_follow_series(cells):
    """Applies stalls_follow_series to every (scenario, series, setting) of a run: its disturbed
    first attempts are kept (result stalls_follow_series), its later attempts superseded.
    Returns the number of series-settings it applied to."""
    n = 0
    for (scenario, model, setting), group in _groups(cells).items():
        if not any(c.disturbed for c in group) or \
                not stalls_follow_series(cells, scenario, model, setting):
            continue
        n += 1
        for c in group:
            if not measured(c):
                continue
            if c.attempt == 0:
                if c.disturbed:
                    c.result.update(kept_disturbed=True, stalls_follow_series=True)
            else:
                c.result["superseded"] = True
    return n


def summarize(cells):
    """One entry per (scenario, model, setting, metric) measured at least once: the median over
    the undisturbed repeats with a distribution-free 95 % interval (stats.median_interval), and
    how many disturbed measurements were left out."""
    out = []
    for (scenario, model, setting), group in _groups(cells).items():
        used = [c for c in group if usable(c)]
        n_discarded = sum(1 for c in group if discarded(c))
        for metric in SUMMARY_METRICS.get(scenario, []) + STALL_METRICS:
            values = finite([metric_value(c, metric) for c in used])[0]
            if not values:
                continue
            iv = median_interval(values)
            entry = {"scenario": scenario, "model": model, "setting": setting,
                     "metric": metric, "median": iv.median, "ci_low": iv.low,
                     "ci_high": iv.high, "n": iv.n, "interval": iv.method,
                     "coverage": round(iv.coverage, 4), "discarded": n_discarded}
            if metric in P999_METRICS:
                entry["explained_by_stalls"] = sum(1 for c in used if p999_masked(c))
            out.append(entry)
    return out


def write_results(run_dir, cells, meta):
    rows = []
    for c in cells:
        row = c.params()
        row.update(status=c.status, reason=c.reason)
        row.update({k: c.result.get(k) for k in RESULT_COLUMNS + MIXED_RESULT_COLUMNS})
        rows.append(row)
    with open(os.path.join(run_dir, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: "" if row.get(k) is None else row.get(k) for k in COLUMNS})
    with open(os.path.join(run_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "cells": [dict(c.params(), status=c.status, reason=c.reason,
                                                 result=c.result) for c in cells],
                   "summary": summarize(cells)}, f, indent=1)


def run_date(run_dir):
    """meta.date of a run folder's results.json ("" if it has none), or None if the file cannot
    be read as a run's."""
    try:
        with open(os.path.join(run_dir, "results.json")) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("meta"), dict):
        return None
    return str(data["meta"].get("date") or "")


class RunError(Exception):
    """A run folder that cannot be read: the message names the file and the problem."""


def load_run(run_dir):
    """(meta, cells) of a run folder; RunError naming results.json and what is wrong with it
    (unreadable, not JSON, not a run's document, a cell without its fields)."""
    path = os.path.join(run_dir, "results.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise RunError(f"{path}: cannot be read: {e.strerror or e}")
    except ValueError as e:
        raise RunError(f"{path}: not JSON ({e})")
    if not isinstance(data, dict) or not isinstance(data.get("meta"), dict) or \
            not isinstance(data.get("cells"), list):
        raise RunError(f"{path}: not a run's results (an object with 'meta' and 'cells' is "
                       "expected; written by another version?)")
    if not isinstance(data["meta"].get("models"), list):
        raise RunError(f"{path}: meta has no list of 'models'")
    cells = []
    for i, d in enumerate(data["cells"]):
        if not isinstance(d, dict):
            raise RunError(f"{path}: cell {i} is not an object")
        missing = [k for k in ("result", "status", "reason", "scenario", "model", "connections")
                   if k not in d]
        if missing:
            raise RunError(f"{path}: cell {i} has no {', '.join(missing)} (written by another "
                           "version?)")
        d = dict(d)
        result, status, reason = d.pop("result"), d.pop("status"), d.pop("reason")
        if not isinstance(result, dict):
            raise RunError(f"{path}: cell {i}'s result is not an object")
        try:
            cell = Cell(**d)
        except TypeError as e:
            raise RunError(f"{path}: cell {i}: {e}")
        cell.result, cell.status, cell.reason = result, status, reason
        cells.append(cell)
    return data["meta"], cells


class Aggregate:
    """A value over the undisturbed repeats of one cell: median, its 95 % interval (low, high:
    stats.median_interval), min, max, count, the values themselves; whether the load generator
    was saturated in any of them, and the server's capacity from its CPU per request. NaN and
    infinite values are left out, and counted (non_finite)."""

    def __init__(self, values, saturated=False, capacity=None, discarded=0):
        values, self.non_finite = finite(values)
        self.values = values
        self.n = len(values)
        self.median = statistics.median(values) if values else None
        self.min = min(values) if values else None
        self.max = max(values) if values else None
        iv = median_interval(values) if values else None
        self.low = iv.low if iv else None
        self.high = iv.high if iv else None
        self.saturated = saturated
        self.capacity = capacity    # req/s one server CPU could serve: 1e6 / CPU us per request
        self.discarded = discarded  # disturbed measurements left out


def _groups(cells):
    """{(scenario, model, setting): [its cells, every repeat]}, in the cells' order."""
    groups = {}
    for c in cells:
        groups.setdefault((c.scenario, c.model, c.setting()), []).append(c)
    return groups


def aggregate(cells, metric):
    """{(scenario, model, setting): (Aggregate of the metric, representative cell)} over the
    measured repeats; cells that were not measured keep their status for the plots and report."""
    out = {}
    for key, group in _groups(cells).items():
        used = [c for c in group if usable(c)]
        cpu = statistics.median([v for v in finite(
            [metric_value(c, "server_cpu_us_per_request") for c in used])[0] if v] or [0])
        agg = Aggregate([metric_value(c, metric) for c in used],
                        saturated=any(c.result.get("loadgen_saturated") for c in used),
                        capacity=1e6 / cpu if cpu else None,
                        discarded=sum(1 for c in group if discarded(c)))
        out[key] = (agg, used[0] if used else group[0])
    return out


def values_of(cells, metric):
    """{(scenario, series, setting): [the metric of every undisturbed repeat]}."""
    out = {}
    for key, group in _groups(cells).items():
        vals = finite([metric_value(c, metric) for c in group if usable(c)])[0]
        if vals:
            out[key] = vals
    return out
