"""report.md of a run: the environment, a summary table, every plot, and findings computed from
the data (never written by hand)."""

import os

from .results import aggregate
from .scenarios import SCENARIOS


def _n(v, digits=0):
    if v is None:
        return "-"
    if abs(v) >= 100 or digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def _ratio(a, b):
    return a / b if a and b else None


def _med(cells, metric, scenario):
    """{(model, setting): median} for the measured cells of a scenario."""
    return {(m, s): a.median for (scen, m, s), (a, _) in aggregate(cells, metric).items()
            if scen == scenario and a.median is not None}


def _settings(cells, scenario, field):
    return sorted({getattr(c, field) for c in cells if c.scenario == scenario})


def knee(cells, model, threshold_us):
    """The knee: the highest offered rate below the first one at which the model's p99 went
    over the threshold or it achieved less than 99 % of the rate; (that rate or None, the first
    failing rate or None)."""
    p99 = _med(cells, "lat_p99_us", "latency")
    achieved = _med(cells, "achieved_ratio", "latency")
    best, failed = None, None
    for rate in _settings(cells, "latency", "rate"):
        key = (model, f"rate={rate:.0f}")
        if key not in p99:
            continue
        if p99[key] > threshold_us or (achieved.get(key) or 0) < 0.99:
            return best, rate  # the knee: a higher rate that happens to pass does not count
        best = rate
    return best, failed


def _extremes(cells, metric, scenario, setting, higher_is_better=True):
    """(best model, its value, worst model, its value) at one setting, or None if fewer than
    two models were measured there."""
    vals = {m: v for (m, s), v in _med(cells, metric, scenario).items()
            if setting is None or s == setting}
    if len(vals) < 2:
        return None
    pick = (max, min) if higher_is_better else (min, max)
    best, worst = pick[0](vals, key=vals.get), pick[1](vals, key=vals.get)
    return best, vals[best], worst, vals[worst]


def _times(best, worst, worst_model):
    """'3.2x WORST (1,234)', or 'while WORST completed none' when its value is 0."""
    if not worst:
        return f"while {worst_model} completed none"
    return f"{best / worst:.1f}x {worst_model} ({_n(worst)})"


def findings(cells, models, threshold_us):
    """Sentences computed from the data, strongest comparisons first."""
    out = []
    conns = _settings(cells, "connections", "connections")
    for c in reversed(conns):
        e = _extremes(cells, "requests_per_sec", "connections", f"c={c}")
        if e:
            out.append(f"At {c:,} connections, {e[0]} served {_n(e[1])} requests/s: "
                       + (f"{e[1] / e[3]:.1f}x the rate of {e[2]} ({_n(e[3])})." if e[3] else
                          f"{e[2]} completed none."))
            break
    for c in conns[len(conns) // 2:]:
        e = _extremes(cells, "server_cpu_us_per_request", "connections", f"c={c}", False)
        if e and e[1]:
            out.append(f"Server CPU per request at {c:,} connections: {e[0]} {e[1]:.2f} us, "
                       f"{e[2]} {e[3]:.2f} us ({e[3] / e[1]:.1f}x).")
            break
    knees = {m: knee(cells, m, threshold_us) for m in models}
    measured = {m: k for m, k in knees.items() if k[0] or k[1]}
    if measured:
        every = [m for m, (ok, bad) in measured.items() if ok and not bad]
        parts = [f"{m} up to {_n(ok)} (not at {_n(bad)})" if ok else
                 f"{m} not even at {_n(bad)}"
                 for m, (ok, bad) in measured.items() if bad]
        rates = _settings(cells, "latency", "rate")
        text = f"p99 latency under {threshold_us:g} us with the offered rate achieved: "
        if every:
            text += f"at every rate up to {_n(rates[-1])} requests/s for {', '.join(every)}"
            text += "; " if parts else ""
        out.append(text + "; ".join(parts) + ".")
    e = _extremes(cells, "requests_per_sec", "churn", None)
    if e:
        out.append(f"Connection churn: {e[0]} accepted {_n(e[1])} connections/s, "
                   f"{_times(e[1], e[3], e[2])}.")
    sizes = _settings(cells, "size", "size")
    e = sizes and _extremes(cells, "mb_per_sec", "size", f"size={sizes[-1]}")
    if e:
        out.append(f"With {sizes[-1]:,}-byte messages, {e[0]} echoed {e[1]:,.0f} MB/s, "
                   f"{e[2]} {e[3]:,.0f} MB/s.")
    for setting in sorted({s for _, s in _med(cells, "requests_per_sec", "work")}):
        e = _extremes(cells, "requests_per_sec", "work", setting)
        if e:
            what = "CPU work" if setting.startswith("work") else "blocking wait"
            out.append(f"With {setting.split('=')[1]} of {what} per message, {e[0]} served "
                       f"{_n(e[1])} requests/s, {_times(e[1], e[3], e[2])}.")
    counts = _settings(cells, "idle", "connections")
    e = counts and _extremes(cells, "memory_per_connection_bytes", "idle",
                             f"idle={counts[-1]}", False)
    if e:
        out.append(f"Holding {counts[-1]:,} idle connections cost {e[2]} "
                   f"{e[3] / 1024:,.1f} KiB of memory each, {e[0]} {max(e[1], 0):,.0f} bytes.")
    return out


def summary_table(cells, models, threshold_us):
    conns = _settings(cells, "connections", "connections")
    sizes = _settings(cells, "size", "size")
    idle_counts = _settings(cells, "idle", "connections")
    mid = conns[len(conns) // 2] if conns else None
    rps = _med(cells, "requests_per_sec", "connections")
    cpu = _med(cells, "server_cpu_us_per_request", "connections")
    churn = _med(cells, "requests_per_sec", "churn")
    mbs = _med(cells, "mb_per_sec", "size")
    work = _med(cells, "requests_per_sec", "work")
    idle = _med(cells, "memory_per_connection_bytes", "idle")
    work_settings = sorted({s for _, s in work})
    head = ["model", "best req/s (connections)",
            f"CPU us/req at {mid} conns" if mid else "CPU us/req",
            f"max rate with p99 < {threshold_us:g} us", "churn conn/s",
            f"MB/s at {sizes[-1]} B" if sizes else "MB/s"] + \
        [f"req/s, {s}" for s in work_settings] + \
        [f"bytes per idle conn ({idle_counts[-1]})" if idle_counts else "idle"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in models:
        best = max(((v, s) for (mm, s), v in rps.items() if mm == m), default=None)
        k, _ = knee(cells, m, threshold_us)
        row = [m, f"{_n(best[0])} ({best[1]})" if best else "-",
               _n(cpu.get((m, f"c={mid}")), 2),
               _n(k) if k else "-",
               _n(next((v for (mm, _), v in churn.items() if mm == m), None)),
               _n(mbs.get((m, f"size={sizes[-1]}")) if sizes else None)]
        row += [_n(work.get((m, s))) for s in work_settings]
        row += [_n(idle.get((m, f"idle={idle_counts[-1]}"))) if idle_counts else "-"]
        rows.append("| " + " | ".join(row) + " |")
    return rows


def windows(meta):
    """'1.0 s measured per cell (latency cells 3.0 s, idle cells 3.0 s)': the windows the cells
    of the run's scenarios had, where they differ from the others'."""
    settings, scenarios = meta.get("settings", {}), meta.get("scenarios", [])
    other = [f"{scen} cells {settings[key]} s" for scen, key in
             (("latency", "latency_duration"), ("idle", "idle_duration"))
             if scen in scenarios and settings.get(key) not in (None, meta["duration"])]
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
    lines += ["", "## Findings", ""]
    lines += [f"- {f}" for f in findings(cells, models, threshold_us)] or ["- (no data)"]
    saturated = [c for c in cells if c.result.get("loadgen_saturated")]
    if saturated:
        lines.append(f"- The load generator was itself saturated in {len(saturated)} of "
                     f"{sum(1 for c in cells if c.result)} measured cells: there the server may "
                     f"be faster than its throughput shows; its CPU per request is exact "
                     f"regardless.")
    lines += ["", "## Summary", ""] + summary_table(cells, models, threshold_us)
    lines += ["", "## Plots", ""]
    for name, title in plots:
        lines += [f"### {title}", "", f"![{title}](plots/{name}.png)", "",
                  f"[SVG](plots/{name}.svg) - [gnuplot script](plots/{name}.gp)", ""]
    problems = [c for c in cells if c.status not in ("ok",)]
    if problems:
        lines += ["## Cells not measured, or measured with errors", "",
                  "| scenario | model | setting | status | reason |", "|---|---|---|---|---|"]
        for c in problems:
            if c.repeat == 0 or c.status != "unservable":
                lines.append(f"| {c.scenario} | {c.model} | {c.setting()} | {c.status} | "
                             f"{c.reason.replace('|', '/')} |")
        lines.append("")
    lines += ["## Scenarios", ""]
    lines += [f"- **{name}**: {text}" for name, text in SCENARIOS.items()
              if any(c.scenario == name for c in cells)]
    lines += ["", "Columns of `results.csv`: see docs/results.md in the source tree. Latency "
                  "distributions of every cell: `hgrm/` (HdrHistogram format, microseconds).", ""]
    with open(os.path.join(run_dir, "report.md"), "w") as f:
        f.write("\n".join(lines))
