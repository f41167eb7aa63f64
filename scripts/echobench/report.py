"""report.md of a run: the environment, a summary table, every plot, and findings computed from
the data (never written by hand)."""

import os

from .findings import (NOT_ACHIEVED, OVER, TEST, UNCLEAR, baseline_gaps, comparisons, knees,
                       sentence, threshold_comparisons, why_missing, write_findings)
from .results import aggregate, discarded, measured, p999_masked, usable
from .scenarios import SCENARIOS


def _n(v, digits=0):
    if v is None:
        return "-"
    if abs(v) >= 100 or digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def _ratio(a, b):
    return a / b if a and b else None


def _settings(cells, scenario, field):
    return sorted({getattr(c, field) for c in cells if c.scenario == scenario})


def knee(cells, model, threshold_us):
    """The knee of a series (findings.knees): (the highest offered rate up to which its p99 was
    under the threshold at every rate - the whole 95 % interval below it - and the offered
    rate achieved, or None; the first rate at which it was not, or None; that rate's verdict:
    over, indistinguishable from the threshold, or rate not achieved)."""
    best, first, verdict, _ = knees(threshold_comparisons(cells, [model], threshold_us)).get(
        model, (None, None, None, False))
    return best, first, verdict


def knee_sentence(cells, models, threshold_us, indicative=False):
    """The latency knees of every series in one sentence, or None."""
    found = knees(threshold_comparisons(cells, models, threshold_us, indicative))
    if not found:
        return None

    def mark(m):
        return " [indicative]" if found[m][3] else ""
    every = [m + mark(m) for m, (ok, bad, _, _) in found.items() if ok and bad is None]
    parts = []
    for m, (ok, bad, verdict, _) in found.items():
        if bad is None:
            continue
        what = {OVER: f"over it at {_n(bad)}", NOT_ACHIEVED: f"the rate not achieved at {_n(bad)}",
                UNCLEAR: f"indistinguishable from it at {_n(bad)}"}[verdict]
        parts.append((f"{m} up to {_n(ok)} ({what})" if ok else f"{m}: {what}") + mark(m))
    rates = _settings(cells, "latency", "rate")
    text = (f"p99 latency against the {threshold_us:g} us threshold, with the offered rate "
            "achieved - under (or over) it only where the whole 95 % interval of the median "
            "(min-max below 6 repeats) is, otherwise indistinguishable from it at this "
            "precision: ")
    if every:
        text += f"under it at every rate up to {_n(rates[-1])} requests/s for {', '.join(every)}"
        text += "; " if parts else ""
    return text + "; ".join(parts) + "."


def findings(cells, models, threshold_us, baseline=None, indicative=False):
    """Sentences computed from the data: every comparison (findings.comparisons), the
    significant ones first, then the knees."""
    found = comparisons(cells, models, baseline, indicative)
    out = [sentence(f) for f in found if f["significant"]]
    out += [sentence(f) for f in found if not f["significant"]]
    out += baseline_gaps(cells, models, baseline)
    k = knee_sentence(cells, models, threshold_us, indicative)
    return out + ([k] if k else [])


def _aggs(cells, metric, scenario):
    """{(model, setting): Aggregate} for the measured cells of a scenario."""
    return {(m, s): a for (scen, m, s), (a, _) in aggregate(cells, metric).items()
            if scen == scenario and a.median is not None}


def _ci(a, digits=0):
    """'median (low-high)', the 95 % interval of the median, or '-'."""
    if a is None:
        return "-"
    text = _n(a.median, digits)
    if a.n > 1:
        text += f" ({_n(a.low, digits)}-{_n(a.high, digits)})"
    return text


def summary_table(cells, models, threshold_us):
    """Per series: medians with their 95 % intervals (min-max below 6 repeats)."""
    conns = _settings(cells, "connections", "connections")
    sizes = _settings(cells, "size", "size")
    idle_counts = _settings(cells, "idle", "connections")
    mid = conns[len(conns) // 2] if conns else None
    rps = _aggs(cells, "requests_per_sec", "connections")
    cpu = _aggs(cells, "server_cpu_us_per_request", "connections")
    churn = _aggs(cells, "requests_per_sec", "churn")
    mbs = _aggs(cells, "mb_per_sec", "size")
    work = _aggs(cells, "requests_per_sec", "work")
    idle = _aggs(cells, "memory_per_connection_bytes", "idle")
    work_settings = sorted({s for _, s in work})
    head = ["model", "best req/s (connections)",
            f"CPU us/req at {mid} conns" if mid else "CPU us/req",
            f"max rate with p99 < {threshold_us:g} us (interval)", "churn conn/s",
            f"MB/s at {sizes[-1]} B" if sizes else "MB/s"] + \
        [f"req/s, {s}" for s in work_settings] + \
        [f"bytes per idle conn ({idle_counts[-1]})" if idle_counts else "idle"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in models:
        best = max(((a.median, s, a) for (mm, s), a in rps.items() if mm == m),
                   default=None, key=lambda t: t[0])
        k, first, verdict = knee(cells, m, threshold_us)
        row = [m, f"{_ci(best[2])} ({best[1]})" if best else "-",
               _ci(cpu.get((m, f"c={mid}")), 2),
               (_n(k) if k else "-") + (f" (? at {_n(first)})" if verdict == UNCLEAR else ""),
               _ci(next((a for (mm, _), a in churn.items() if mm == m), None)),
               _ci(mbs.get((m, f"size={sizes[-1]}")) if sizes else None)]
        row += [_ci(work.get((m, s))) for s in work_settings]
        row += [_ci(idle.get((m, f"idle={idle_counts[-1]}"))) if idle_counts else "-"]
        rows.append("| " + " | ".join(row) + " |")
    return rows


def peer_notes(meta, cells):
    """Bullets on the peers (--peers): which ran, which were skipped and why, and the cells a
    peer was left out of because it takes no per-message costs - never a silent hole."""
    out = []
    ran = meta.get("peers") or []
    if ran:
        out.append("- Peers in other runtimes (docs/peers.md), measured like the models: "
                   + ", ".join(f"{p['name']} (`{os.path.basename(p['executable'])}`)"
                               for p in ran) + ".")
    for name, why in (meta.get("peers_skipped") or {}).items():
        out.append(f"- Peer {name} was asked for (--peers) and skipped: {why}.")
    for p in ran:
        if p.get("supports_costs", True):
            continue
        left = sorted({c.setting() for c in cells if c.model == p["name"] and
                       c.status == "unservable" and c.needs_costs()})
        if left:
            out.append(f"- {p['name']} takes no per-message costs (supports_costs false): it "
                       f"is left out of the cells that need them ({', '.join(left)}).")
    return out


def mixed_table(cells, models):
    """The mixed work cells: per series and setting, what the cheap messages' p99 becomes,
    with the cheap p50, the costly p99, throughput and CPU per request (medians, 95 %
    intervals), and the series not measured there with the reason. [] without mixed cells."""
    mixed = [c for c in cells if c.scenario == "work" and c.cost_every]
    if not mixed:
        return []
    settings = []
    for c in mixed:
        if c.setting() not in settings:
            settings.append(c.setting())
    aggs = {m: _aggs(cells, m, "work") for m in
            ("cheap_p99_us", "cheap_p50_us", "costly_p99_us", "requests_per_sec",
             "server_cpu_us_per_request", "costly_count")}
    every = mixed[0].cost_every
    rows = ["## Mixed work: what the cheap messages' p99 becomes", "",
            f"1 message in {every} of each connection costs (every {every}th, counted per "
            "connection), the others nothing; the cheap messages' latency is measured apart "
            "from the costly ones'. Medians over the undisturbed repeats with their 95 % "
            "interval (min-max below 6 repeats).", "",
            "| series | cost | cheap p99 us | cheap p50 us | costly p99 us | req/s | "
            "CPU us/req | costly messages per cell |", "|---|---|---|---|---|---|---|---|"]
    left = []
    for m in models:
        for setting in settings:
            a = aggs["cheap_p99_us"].get((m, setting))
            if a is None:
                why = why_missing(cells, "work", m, setting)
                left.append(f"- {m}, {setting}: not measured: {why}")
                continue
            rows.append("| " + " | ".join(
                [m, setting.split(" ", 2)[-1], _ci(a), _ci(aggs["cheap_p50_us"].get((m, setting))),
                 _ci(aggs["costly_p99_us"].get((m, setting))),
                 _ci(aggs["requests_per_sec"].get((m, setting))),
                 _ci(aggs["server_cpu_us_per_request"].get((m, setting)), 2),
                 _ci(aggs["costly_count"].get((m, setting)))]) + " |")
    return rows + ([""] + left if left else []) + [""]


def windows(meta):
    """'1.0 s measured per cell (latency cells 3.0 s, idle cells 3.0 s)': the windows the cells
    of the run's scenarios had, where they differ from the others'."""
    settings, scenarios = meta.get("settings", {}), meta.get("scenarios", [])
    other = [f"{scen} cells {settings[key]} s" for scen, key in
             (("latency", "latency_duration"), ("idle", "idle_duration"))
             if scen in scenarios and settings.get(key) not in (None, meta["duration"])]
    if "work" in scenarios and (settings.get("mixed_sleep_us") or settings.get("mixed_work_us")) \
            and settings.get("mixed_duration") not in (None, meta["duration"]):
        other.append(f"mixed work cells {settings['mixed_duration']} s")
    return f"{meta['duration']} s measured per cell" + (f" ({', '.join(other)})" if other else "")


def write_report(run_dir, meta, env, cells, models, plots, threshold_us):
    lines = [f"# echobench run {meta['run_id']}", ""]
    lines += [f"Profile `{meta['profile']}`, {windows(meta)} after "
              f"{meta['warmup']} s of warm-up, {meta['repeat']} repeat(s)"
              + (f", cells in a shuffled order (seed {meta['seed']})" if "seed" in meta else "")
              + f". Command: `{meta['command']}`", ""]
    lines += ["## Environment", "", "| | |", "|---|---|"]
    e = env.get("machine", {})
    for label, value in [
        ("date", meta.get("date")), ("host", e.get("hostname")),
        ("kernel", e.get("kernel")), ("CPU", e.get("cpu_model")),
        ("CPUs online", e.get("cpus_online")),
        ("memory", f"{(e.get('memory_kib') or 0) / 1048576:.1f} GiB"),
        ("commit", env.get("git_commit")), ("compiler", e.get("compiler")),
        ("flags", e.get("flags")), ("placement", meta.get("placement")),
        ("server options", meta.get("server_options")),
        ("TCP congestion control", env.get("tcp_congestion_control")),
        ("somaxconn", (e.get("sysctl") or {}).get("net.core.somaxconn")),
        ("local port range", (e.get("sysctl") or {}).get("net.ipv4.ip_local_port_range")),
    ]:
        lines.append(f"| {label} | {value if value is not None else '-'} |")
    if meta.get("interrupted"):
        lines += ["", "**This run was interrupted: only the cells finished before Ctrl-C are "
                      "here.**"]
    baseline = meta.get("baseline")
    indicative = meta.get("profile") == "tiny"
    found = comparisons(cells, models, baseline, indicative)
    against = threshold_comparisons(cells, models, threshold_us, indicative)
    write_findings(run_dir, found + against)
    lines += ["", "## Findings", ""]
    n_sig = sum(1 for f in found if f["significant"])
    pairs = (f"every series against {baseline}" if baseline else
             "at each setting, the best series against the runner-up and the last")
    intro = (f"{len(found)} comparisons ({pairs}), each the ratio of two series on one metric "
             f"with its 95 % interval; {n_sig} significant ({TEST}). All are in "
             "`findings.json`" + (f", with the {len(against)} comparisons of a series' p99 "
                                  f"with the {threshold_us:g} us threshold (the knees below)"
                                  if against else "") + ".")
    if indicative:
        intro += (" **Indicative only**: the `tiny` profile's windows are too short for "
                  "figures to rely on.")
    elif any(f["indicative"] for f in found):
        intro += " Findings from single measurements are marked [indicative]."
    lines += [intro, ""]
    sig = [f for f in found if f["significant"]]
    same = [f for f in found if not f["significant"]]
    if sig:
        lines += ["Significant differences:", ""] + [f"- {sentence(f)}" for f in sig] + [""]
    if same:
        lines += ["Indistinguishable at this precision:", ""] + \
            [f"- {sentence(f)}" for f in same] + [""]
    lines += [f"- {g}" for g in baseline_gaps(cells, models, baseline)]
    k = knee_sentence(cells, models, threshold_us, indicative)
    lines += [f"- {k}"] if k else []
    if not found and not k:
        lines.append("- (no data)")
    disturbed = [c for c in cells if discarded(c)]
    following = [c for c in cells if c.result.get("stalls_follow_series")]
    kept = [c for c in cells if usable(c) and c.disturbed
            and not c.result.get("stalls_follow_series")]
    if following:
        series = sorted({f"{c.model} ({c.scenario} {c.setting()})" for c in following})
        lines.append(f"- {len(following)} disturbed measurements are used, flagged: their stalls "
                     "follow their series - its first attempts were disturbed in most repeats, "
                     "those of the other series at the same setting were not - so they come "
                     "with the load the server puts on the machine, not from the platform "
                     "(docs/methodology.md): " + ", ".join(series) + ".")
    if kept:
        lines.append(f"- {len(kept)} measurements were disturbed (the load generator's platform "
                     "stalls could explain their figures) and are used all the same "
                     "(--keep-disturbed): treat the figures with care.")
    if disturbed:
        lost = sum(1 for c in disturbed if c.attempt + 1 >= 3 and not any(
            o.scenario == c.scenario and o.model == c.model and o.setting() == c.setting()
            and o.repeat == c.repeat and usable(o) for o in cells))
        lines.append(f"- {len(disturbed)} measurements were disturbed (the load generator's "
                     "platform stalls could explain their figures) and are left out of the "
                     "plots, the summary and the findings; each was measured again, at most "
                     f"twice, and {lost} attempts ended disturbed with no undisturbed one for "
                     "their repeat. Every attempt is in results.csv (`attempt`, `disturbed`)."
                     + (" On a machine this busy, `--keep-disturbed` uses them, flagged." if lost
                        else ""))
    masked = [c for c in cells if usable(c) and p999_masked(c)]
    if masked:
        lines.append(f"- The platform's stalls could explain the p99.9 of {len(masked)} "
                     "measurements (a stall of at least a quarter of it, stalls over 0.1 % of "
                     "the window): their p99.9 is in the summary (`explained_by_stalls`), but no "
                     "finding is made on a p99.9 they are part of; their p99 and throughput "
                     "are sound (docs/methodology.md).")
    saturated = [c for c in cells if c.result.get("loadgen_saturated")]
    if saturated:
        lines.append(f"- The load generator was itself saturated in {len(saturated)} of "
                     f"{sum(1 for c in cells if c.result)} measured cells (hollow points in the "
                     "plots): there the server may be faster than its throughput shows; its CPU "
                     "per request is exact regardless, and the throughput plot adds the "
                     "capacity it gives (1,000,000 / CPU us per request: requests/s per server "
                     "CPU).")
    lines += peer_notes(meta, cells)
    tuned = [c for c in cells if c.result.get("kernel_tuning")]
    for c in tuned:
        lines.append(f"- --tune-kernel: {c.scenario} {c.model} {c.setting()} (repeat "
                     f"{c.repeat}) ran with {c.result['kernel_tuning']}.")
    lines += ["", "## Summary", "", "Medians over the undisturbed repeats, with their 95 % "
              "interval in brackets (min-max below 6 repeats; `summary` in results.json has "
              "every metric).", ""] + summary_table(cells, models, threshold_us)
    lines += [""] + mixed_table(cells, models)
    lines += ["", "## Plots", ""]
    for name, title in plots:
        lines += [f"### {title}", "", f"![{title}](plots/{name}.png)", "",
                  f"[SVG](plots/{name}.svg) - [gnuplot script](plots/{name}.gp)", ""]
    problems = [c for c in cells if c.status not in ("ok",) or c.disturbed]
    if problems:
        lines += ["## Cells not measured, or measured with errors", "",
                  "| scenario | model | setting | status | reason |", "|---|---|---|---|---|"]
        for c in problems:
            if c.repeat == 0 or c.status != "unservable":
                status = c.status + (f" (disturbed, attempt {c.attempt})" if c.disturbed
                                     else "")
                lines.append(f"| {c.scenario} | {c.model} | {c.setting()} | {status} | "
                             f"{c.reason.replace('|', '/')} |")
        lines.append("")
    lines += ["## Scenarios", ""]
    lines += [f"- **{name}**: {text}" for name, text in SCENARIOS.items()
              if any(c.scenario == name for c in cells)]
    lines += ["", "Columns of `results.csv`: see docs/results.md in the source tree. Latency "
                  "distributions of every cell: `hgrm/` (HdrHistogram format, microseconds).", ""]
    with open(os.path.join(run_dir, "report.md"), "w") as f:
        f.write("\n".join(lines))
