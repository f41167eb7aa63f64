"""The plots of a run, drawn by gnuplot as PNG and SVG.

Each plot is a gnuplot script plus its data files under plots/, so a reader can re-draw or
restyle any of them (`gnuplot plots/throughput.gp`). Every model keeps one colour in every plot;
cells a model could not serve are named under the plot, never silently dropped.
"""

import os
import subprocess
import sys
import textwrap

from .results import aggregate, discarded, usable

# Distinct colours, assigned to series in order - the models in registry order, then the peers,
# then variants (one colour per series everywhere). Enough for every model and the three peers
# before a colour comes round again.
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#ad494a", "#637939", "#843c39",
           "#000000", "#e7ba52", "#3182bd", "#de9ed6", "#31a354", "#fd8d3c"]

WIDTH, HEIGHT = 900, 560


def model_colors(model_names):
    """{series: colour} of a run's report: the palette in the series' order."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(model_names)}


def merged_colors(runs_models):
    """{series: colour} over several runs' series lists, the first list first (a comparison
    passes the newest run's): every series of the first keeps the colour of that run's own
    report (model_colors); a series of a later list only, the colour of its own run's report
    if no series has it yet, else the first colour nobody has. No two series share a colour
    until the palette runs out."""
    out = dict(model_colors(runs_models[0])) if runs_models else {}
    for names in runs_models[1:]:
        own = model_colors(names)
        for m in names:
            if m in out:
                continue
            used = set(out.values())
            free = [c for c in PALETTE if c not in used]
            out[m] = own[m] if own[m] not in used else (free[0] if free else own[m])
    return out


def _quote(text):
    """A gnuplot double-quoted string (where \\n is a line break)."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + text + '"'


def _yformat(values):
    """Large values with an SI prefix (200.0k, 1.5M), small ones as they are."""
    big = max((v for v in values if v), default=0) >= 10000
    return "set format y '%.1s%c'" if big else "set format y '%g'"


def _spans_decades(values):
    values = [v for v in values if v and v > 0]
    return bool(values) and max(values) / min(values) >= 20


class Plotter:
    def __init__(self, run_dir, models, repeats):
        self.dir = os.path.join(run_dir, "plots")
        os.makedirs(self.dir, exist_ok=True)
        self.models = models
        self.colors = model_colors(models)
        self.repeats = repeats
        self.made = []   # (name, title) of every plot drawn
        self.failed = []  # (name, error) of plots gnuplot could not draw

    def _draw(self, name, title, lines):
        """Writes name.gp and runs gnuplot for name.png and name.svg."""
        gp = os.path.join(self.dir, name + ".gp")
        body = "\n".join(lines)
        with open(gp, "w") as f:
            f.write("# Drawn by scripts/bench; run `gnuplot " + name + ".gp` in this folder "
                    "to draw it again.\n")
            f.write(f"set terminal pngcairo size {WIDTH},{HEIGHT} font 'Sans,10'\n")
            f.write(f"set output '{name}.png'\n")
            f.write("set termoption noenhanced\n")
            f.write(body + "\n")
            f.write(f"set terminal svg size {WIDTH},{HEIGHT} font 'Sans,10' dynamic\n")
            f.write(f"set output '{name}.svg'\n")
            f.write("replot\n")
        proc = subprocess.run(["gnuplot", name + ".gp"], cwd=self.dir, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            # One broken plot must not cost the others or the report: say so and go on.
            self.failed.append((name, proc.stderr.strip().splitlines()[-1:]))
            print(f"bench: warning: gnuplot could not draw {gp}: {proc.stderr.strip()}",
                  file=sys.stderr)
            return
        self.made.append((name, title))

    def _common(self, title, xlabel, ylabel, logx, logy, notes):
        lines = [f"set title {_quote(title)} font 'Sans,12'",
                 f"set xlabel {_quote(xlabel)}", f"set ylabel {_quote(ylabel)}",
                 "set grid xtics ytics mxtics mytics lc rgb '#dddddd'",
                 "set key outside right top box opaque"]
        if logx:
            lines.append("set logscale x")
            lines.append("set autoscale xfix")  # no empty decade past the data
            # ... but room for the error bars of the first and the last point.
            lines.append("set offsets graph 0.03, graph 0.03, 0, 0")
        if logy:
            lines.append("set logscale y")
        if notes:
            wrapped = []
            for note in notes[:8]:
                wrapped += textwrap.wrap(note, 150, subsequent_indent="    ")
            lines.append(f"set label 1 {_quote(chr(10).join(wrapped))} at screen 0.01, "
                         f"screen {0.021 * len(wrapped) + 0.005:.3f} left font 'Sans,8' "
                         "tc rgb '#aa0000'")
            lines.append(f"set bmargin {4 + len(wrapped)}")
        return lines

    def lines_plot(self, name, title, xlabel, ylabel, series, logx=False, logy=None,
                   notes=(), hline=None, xtics=None, capacity=None):
        """series: {model: [(x, median, ci_low, ci_high, saturated)]}, drawn in registry
        order; capacity: {model: [(x, capacity)]}, drawn dashed."""
        styled = [(model, model, self.colors[model], 1, series[model])
                  for model in self.models if series.get(model)]
        extra = [(f"{model}.capacity", f"{model} capacity",
                  self.colors[model], 2, capacity[model])
                 for model in self.models if (capacity or {}).get(model)]
        self.styled_lines_plot(name, title, xlabel, ylabel, styled, logx, logy, notes, hline,
                               xtics, extra)

    def styled_lines_plot(self, name, title, xlabel, ylabel, styled, logx=False, logy=None,
                          notes=(), hline=None, xtics=None, extra=()):
        """styled: [(file tag, legend, colour, dash type, [(x, median, ci_low, ci_high,
        saturated)])]: lines through the medians, the 95 % intervals as error bars (with
        repeats), a hollow point where the load generator was saturated. extra: [(file tag,
        legend, colour, dash type, [(x, y)])], dashed lines with open squares."""
        values = [p[1] for *_, pts in styled for p in pts]
        if logy is None:
            logy = _spans_decades(values)
        notes = list(notes)
        if any(len(p) > 4 and p[4] for *_, pts in styled for p in pts):
            notes.insert(0, "hollow points: the load generator was saturated (busy >= 90 % of "
                            "the window): the server may be faster than shown"
                         + ("; dashed: the server's capacity, 1e6 / its CPU us per request "
                            "(requests/s per server CPU), which does not depend on the load "
                            "generator" if extra else ""))
        if self.repeats > 1:
            notes.insert(0, "error bars: 95 % interval of the median over the repeats "
                            "(min-max below 6 repeats)")
        lines = self._common(title, xlabel, ylabel, logx, logy, notes)
        lines.append(_yformat(values))
        if xtics:
            lines.append(f"set xtics ({', '.join(f'{_quote(l)} {x}' for x, l in xtics)})")
        plots = []
        for tag, legend, color, dash, pts in styled:
            pts = sorted(tuple(p) + (False,) * (5 - len(p)) for p in pts
                         if not logy or (p[1] or 0) > 0)
            if not pts:
                continue
            dat = os.path.join(self.dir, f"{name}.{tag}.dat")
            with open(dat, "w") as f:
                f.write("# x median ci_low ci_high saturated\n")
                for x, med, lo, hi, sat in pts:
                    f.write(f"{x} {med} {lo if lo is not None else med} "
                            f"{hi if hi is not None else med} {1 if sat else 0}\n")
            base = os.path.basename(dat)
            plots.append(f"'{base}' using 1:2 with lines lw 2 dt {dash} lc rgb '{color}' "
                         f"title {_quote(legend)}")
            style, using = ("yerrorbars", ":3:4") if self.repeats > 1 else ("points", "")
            plots.append(f"'{base}' using 1:($5 > 0 ? 1/0 : $2){using} with {style} pt 7 "
                         f"ps 0.8 lc rgb '{color}' notitle")
            plots.append(f"'{base}' using 1:($5 > 0 ? $2 : 1/0){using} with {style} pt 6 "
                         f"ps 1.2 lc rgb '{color}' notitle")
        for tag, legend, color, dash, pts in extra:
            pts = sorted(p for p in pts if p[1])
            if not pts:
                continue
            dat = os.path.join(self.dir, f"{name}.{tag}.dat")
            with open(dat, "w") as f:
                f.write("# x capacity\n")
                for x, y in pts:
                    f.write(f"{x} {y}\n")
            plots.append(f"'{os.path.basename(dat)}' using 1:2 with linespoints lw 1 dt 2 pt 4 "
                         f"ps 0.8 lc rgb '{color}' title {_quote(legend)}")
        if hline:
            lines.append(f"set arrow from graph 0, first {hline[0]} to graph 1, first "
                         f"{hline[0]} nohead dt 2 lc rgb '#555555'")
            lines.append(f"set label 2 {_quote(hline[1])} at graph 0.01, first {hline[0]} "
                         "offset 0,0.6 font 'Sans,8'")
        if not plots:
            return
        lines.append("plot " + ", \\\n     ".join(plots))
        self._draw(name, title, lines)

    def bars_plot(self, name, title, ylabel, categories, data, notes=(), logy=None):
        """Clustered bars: one cluster per category, one bar per model, with the 95 % interval
        of the median as an error bar. data: {model: {category: (median, ci_low, ci_high,
        saturated)}}; a model saturated anywhere says so in its legend."""
        models = [m for m in self.models if m in data]
        if not models:
            return
        values = [v[0] for m in models for v in data[m].values() if v and v[0]]
        if logy is None:
            logy = _spans_decades(values)
        notes = list(notes)
        if any(len(v) > 3 and v[3] for m in models for v in data[m].values() if v):
            notes.insert(0, "(load generator saturated): that series' server may be faster than "
                         "its bar shows; report.md gives its CPU per request, which is exact")
        lines = self._common(title, "", ylabel, False, logy, notes)
        lines.append(_yformat(values))
        dat = os.path.join(self.dir, f"{name}.dat")
        with open(dat, "w") as f:
            f.write("# category " + " ".join(models) + "\n")
            for cat in categories:
                row = [_quote(cat)]
                for m in models:
                    v = data[m].get(cat)
                    if v and v[0] is not None:
                        row += [str(v[0]), str(v[1] if v[1] is not None else v[0]),
                                str(v[2] if v[2] is not None else v[0])]
                    else:
                        row += ["?", "?", "?"]
                f.write(" ".join(row) + "\n")
        lines += ["set style data histogram", "set style histogram errorbars gap 1 lw 1",
                  "set style fill solid 0.85 border -1", "set boxwidth 0.9",
                  "set datafile missing '?'", "set xtics nomirror", "set yrange [0:*]" if
                  not logy else "set yrange [*:*]"]
        plots = []
        for i, m in enumerate(models):
            xt = ":xtic(1)" if i == 0 else ""
            col = 2 + 3 * i
            sat = any(len(v) > 3 and v[3] for v in data[m].values() if v)
            legend = m + (" (load generator saturated)" if sat else "")
            plots.append(f"'{os.path.basename(dat)}' using {col}:{col + 1}:{col + 2}{xt} lc rgb "
                         f"'{self.colors[m]}' title {_quote(legend)}")
        lines.append("plot " + ", \\\n     ".join(plots))
        self._draw(name, title, lines)

    def spectrum_plot(self, name, title, hgrms, notes=()):
        """HdrHistogram-style percentile spectrum: hgrms {model: path to .hgrm}."""
        lines = self._common(title, "percentile", "latency (us)", True, True, list(notes))
        # Tic labels are formats to gnuplot: a literal percent sign is written %%.
        lines.append("set xtics ('0%%' 1, '90%%' 10, '99%%' 100, '99.9%%' 1000, "
                     "'99.99%%' 10000, '99.999%%' 100000, '99.9999%%' 1000000)")
        lines.append("set xrange [1:*]")
        plots = []
        for model in self.models:
            path = hgrms.get(model)
            if not path:
                continue
            rel = os.path.relpath(path, self.dir)
            # Column 4 is 1/(1-percentile); the last line (100 %) has none and is skipped.
            plots.append(f"'{rel}' using 4:1 every ::2 with lines lw 2 "
                         f"lc rgb '{self.colors[model]}' title {_quote(model)}")
        if not plots:
            return
        lines.append("plot " + ", \\\n     ".join(plots))
        self._draw(name, title, lines)


def unserved_notes(cells, scenario):
    """One line per model listing the settings it could not serve, with the reason, and one
    saying how many disturbed measurements the plot leaves out."""
    by_model = {}
    for c in cells:
        if c.scenario == scenario and c.status in ("unservable", "unavailable", "failed") \
                and c.repeat == 0:
            reason = c.reason.split(": ", 1)[-1] if c.status == "unservable" else c.status
            by_model.setdefault((c.model, reason), []).append(c.setting())
    out = [f"not measured: {m} at {', '.join(s)} ({why})"
           for (m, why), s in sorted(by_model.items())]
    left_out = sum(1 for c in cells if c.scenario == scenario and discarded(c))
    if left_out:
        out.append(f"{left_out} disturbed measurement{'s' if left_out > 1 else ''} left out "
                   "(platform stalls could explain them; report.md)")
    return out


def series_of(cells, scenario, xfield, metric):
    """{model: [(x, median, ci_low, ci_high, saturated)]} of a metric over a scenario's
    undisturbed cells."""
    out = {}
    for (scen, model, _), (agg, cell) in aggregate(cells, metric).items():
        if scen != scenario or agg.median is None:
            continue
        out.setdefault(model, []).append((getattr(cell, xfield), agg.median, agg.low, agg.high,
                                          agg.saturated))
    return out


def capacity_of(cells, scenario, xfield):
    """{model: [(x, requests/s per server CPU)]} for the models whose load generator saturated
    somewhere in the scenario: 1e6 / the median CPU us per request."""
    out, saturated = {}, set()
    for (scen, model, _), (agg, cell) in aggregate(cells, "requests_per_sec").items():
        if scen != scenario or agg.capacity is None:
            continue
        out.setdefault(model, []).append((getattr(cell, xfield), agg.capacity))
        if agg.saturated:
            saturated.add(model)
    return {m: pts for m, pts in out.items() if m in saturated}


def draw_all(run_dir, cells, models, repeats, latency_threshold_us):
    """Draws every plot the run's data allows; returns [(name, title)]."""
    p = Plotter(run_dir, models, repeats)
    scenarios = {c.scenario for c in cells}

    if "connections" in scenarios:
        p.lines_plot("throughput", "Throughput versus connections (closed loop, 128 B)",
                     "connections", "requests per second",
                     series_of(cells, "connections", "connections", "requests_per_sec"),
                     logx=True, notes=unserved_notes(cells, "connections"),
                     capacity=capacity_of(cells, "connections", "connections"))
        p.lines_plot("cpu_per_request", "Server CPU time per request (closed loop, 128 B)",
                     "connections", "server CPU per request (us)",
                     series_of(cells, "connections", "connections", "server_cpu_us_per_request"),
                     logx=True, notes=unserved_notes(cells, "connections"))
    if "latency" in scenarios:
        notes = unserved_notes(cells, "latency")
        p.lines_plot("latency_p99", "p99 latency at fixed offered rates (open loop, 128 B)",
                     "offered rate (requests per second)", "p99 latency (us)",
                     series_of(cells, "latency", "rate", "lat_p99_us"), logx=True, logy=True,
                     notes=notes,
                     hline=(latency_threshold_us, f"{latency_threshold_us:g} us threshold"))
        rates = sorted({c.rate for c in cells if c.scenario == "latency"})
        if rates:
            rate = rates[len(rates) // 2]
            hgrms = {}
            for c in cells:  # the first undisturbed repeat of each series
                if c.scenario == "latency" and c.rate == rate and usable(c) and \
                        c.result.get("hgrm") and c.model not in hgrms:
                    hgrms[c.model] = os.path.join(run_dir, c.result["hgrm"])
            p.spectrum_plot("latency_spectrum",
                            f"Latency percentile spectrum at {rate:,.0f} requests/s (open loop)",
                            hgrms, notes=notes)
    if "churn" in scenarios:
        agg = aggregate(cells, "requests_per_sec")
        data = {m: {"connections per second": (a.median, a.low, a.high, a.saturated)}
                for (s, m, _), (a, _) in agg.items() if s == "churn" and a.median}
        p.bars_plot("churn", "Connection churn: one connection per request",
                    "connections (= requests) per second", ["connections per second"], data,
                    notes=unserved_notes(cells, "churn"))
    if "size" in scenarios:
        p.lines_plot("size_sweep", "Message size sweep (closed loop)", "message size (bytes)",
                     "MB/s echoed", series_of(cells, "size", "size", "mb_per_sec"),
                     logx=True, notes=unserved_notes(cells, "size"))
    if "work" in scenarios:
        agg = aggregate(cells, "requests_per_sec")
        cats, data = [], {}
        for (s, m, setting), (a, cell) in agg.items():
            if s != "work" or cell.cost_every:  # the mixed cells have a plot of their own
                continue
            if setting not in cats:
                cats.append(setting)
            if a.median:
                data.setdefault(m, {})[setting] = (a.median, a.low, a.high, a.saturated)
        p.bars_plot("work_sleep", "Per-message CPU work and blocking wait (closed loop)",
                    "requests per second", cats, data,
                    notes=unserved_notes([c for c in cells if not c.cost_every], "work"))
        cats, data, every = [], {}, None
        for (s, m, setting), (a, cell) in aggregate(cells, "cheap_p99_us").items():
            if s != "work" or not cell.cost_every:
                continue
            every = cell.cost_every
            if setting not in cats:
                cats.append(setting)
            if a.median:
                data.setdefault(m, {})[setting] = (a.median, a.low, a.high, a.saturated)
        if data:
            p.bars_plot("mixed_work", f"Mixed work: the cheap messages' p99 when 1 message in "
                        f"{every} costs (closed loop, 128 B)", "cheap messages' p99 latency (us)",
                        cats, data,
                        notes=unserved_notes([c for c in cells if c.cost_every], "work"))
    if "idle" in scenarios:
        p.lines_plot("memory_per_connection", "Server memory per idle connection",
                     "idle connections", "user memory per connection (bytes)",
                     series_of(cells, "idle", "connections", "memory_per_connection_bytes"),
                     logx=True, logy=True, notes=unserved_notes(cells, "idle"))
    return p.made
