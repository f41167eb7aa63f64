"""Running one cell: a fresh server, the load generator against it, and the server's process
tree watched from /proc meanwhile. Every cell is bounded in time and leaves nothing running."""

import os
import shlex
from dataclasses import dataclass

from . import kernel
from .processes import Server, ServerError, TreeSampler, run_loadgen
from .results import stalls_explain
from .scenarios import Settings
from .units import parse_cpu_list

LOADGEN_TIMEOUT = "2s"   # no echo for this long: the connection is counted as timed out
IDLE_TIMEOUT = "15s"     # idle cells: time to establish every connection (fork forks each)


@dataclass
class Placement:
    server_cpus: str = None    # taskset list for the server, or None (not pinned)
    loadgen_cpus: str = None   # for the load generator
    loadgen_threads: int = 1
    busy_poll: bool = False    # only with a CPU of its own
    note: str = ""

    @staticmethod
    def choose(cpus):
        """One CPU for the server, the next for the load generator, when there are two: cpus
        are those this process may run on."""
        if len(cpus) >= 2:
            s, l = cpus[0], cpus[1]
            return Placement(str(s), str(l), 1, True,
                             f"server pinned to CPU {s}, load generator to CPU {l} "
                             "(busy-polling)")
        return Placement(None, None, 1, False,
                         "fewer than 2 CPUs: server and load generator share the CPU, so the "
                         "server's figures include the load generator's interference")

    @staticmethod
    def given(server_text, loadgen_text):
        """The placement of --server-cpus / --loadgen-cpus (CPU lists, or None), and the
        warnings it deserves. The load generator busy-polls on CPUs of its own, never on the
        server's."""
        server_cpus = parse_cpu_list(server_text) if server_text else []
        loadgen_cpus = parse_cpu_list(loadgen_text) if loadgen_text else []
        shared = sorted(set(server_cpus) & set(loadgen_cpus))
        warnings = []
        if shared:
            warnings.append(f"the server and the load generator share CPU(s) "
                            f"{','.join(map(str, shared))}: the server's figures include the "
                            "load generator's interference (and it will not busy-poll)")
        elif not server_cpus or not loadgen_cpus:
            unpinned, option = (("server", "--server-cpus") if not server_cpus else
                                ("load generator", "--loadgen-cpus"))
            warnings.append(f"the {unpinned} is not pinned ({option}): it may run on the "
                            "other's CPUs (and the load generator will not busy-poll)")
        return Placement(server_text, loadgen_text, len(loadgen_cpus) or 1,
                         bool(server_cpus) and bool(loadgen_cpus) and not shared,
                         f"server on CPUs {server_text or 'any'}, load generator on "
                         f"{loadgen_text or 'any'}"), warnings


@dataclass
class Bench:
    """What every cell of a run shares: the programs, where results go, the placement and the
    resolved settings (windows, warm-up)."""
    echo_server: str
    loadgen: str
    run_dir: str
    placement: Placement
    settings: Settings


# How often each scenario samples the server's tree, in seconds (None: only before and after).
SAMPLE_INTERVAL = {"latency": None, "idle": 0.2}
DEFAULT_SAMPLE_INTERVAL = 1.0


def server_args(cell, series):
    """echo-server's options for a cell of a series: the model, the pool size the bench chose
    (cell.threads), the cell's per-message cost, then a variant's own options. The two never
    set the same option: a variant that fixes one of a cell's is left out of that cell
    (scenarios.cells_of_series)."""
    args = ["--model", series.model.name, "--port", "0"]
    if cell.threads:
        args += ["--threads", str(cell.threads)]
    for opt, value in cell.cost_options():
        args += [opt, str(value)]
    return args + list(series.options)


# A cell is `disturbed` when the load generator's platform stalls could explain its figures
# (docs/methodology.md, "Disturbed cells"): its p99 (results.stalls_explain), or its
# throughput, when the stalls took at least DISTURB_TIME_SHARE of the window. A p99.9 the
# stalls could explain only leaves the p99.9 (results.p999_masked).
DISTURB_TIME_SHARE = 0.02
MAX_ATTEMPTS = 3  # a disturbed cell is measured at most twice more


def disturbance(cell):
    """Why the cell's measurement could be explained by platform stalls, or ""."""
    r = cell.result
    longest, total = r.get("stalls_max_us"), r.get("stalls_total_us")
    if cell.idle or cell.status not in ("ok", "errors") or longest is None or total is None:
        return ""
    window_us = (r.get("duration_s") or 0) * 1e6
    if not window_us:
        return ""
    # A mixed cell's tail is its cheap messages' (the costly ones' is the cost itself).
    p99 = r.get("cheap_p99_us") if cell.cost_every else r.get("lat_p99_us")
    if stalls_explain(r, p99, 0.01):
        return (f"disturbed: stalls of up to {longest / 1e3:,.1f} ms (p99 {p99:,.0f} us), "
                f"{total / window_us:.1%} of the window")
    if total >= DISTURB_TIME_SHARE * window_us:
        return f"disturbed: stalls took {total / window_us:.1%} of the window"
    return ""


def loadgen_args(cell, bench, server_pid, hgrm):
    pl = bench.placement
    threads = max(1, min(pl.loadgen_threads, cell.connections))
    duration = bench.settings.window(cell.scenario, bool(cell.cost_every))
    warmup = bench.settings.warmup
    args = ["-t", str(threads), "-c", str(cell.connections), "-s", str(cell.size),
            "--pipeline", str(cell.pipeline), "-d", f"{duration:.6f}s",
            "--warmup", f"{warmup:.6f}s",
            "--timeout", IDLE_TIMEOUT if cell.idle else LOADGEN_TIMEOUT,
            "--server-pid", str(server_pid)]
    if hgrm:
        args += ["--hgrm", hgrm]
    if pl.loadgen_cpus:
        args += ["--cpus", pl.loadgen_cpus]
    if pl.busy_poll:
        args += ["--busy-poll"]
    if cell.rate:
        args += ["--rate", f"{cell.rate:.0f}"]
    if cell.reconnect:
        args += ["--reconnect", str(cell.reconnect)]
    if cell.idle:
        args += ["--idle"]
    if cell.cost_every:  # numbers messages as the server does: the cheap and costly apart
        args += ["--cost-every", str(cell.cost_every)]
    return args


# The figures a mixed work cell keeps of each class of loadgen's "classes" (the cheap messages'
# p99 is its headline), as cheap_p50_us, ...; and the count of each, as cheap_count.
MIXED_CLASSES = {"cheap": ("p50", "p99", "p999"), "costly": ("p50", "p99")}


def flatten(report):
    """The loadgen report fields a cell keeps (see docs/results.md)."""
    lat, con = report["latency_us"], report["connect_latency_us"]
    server = report.get("server_cpu") or {}
    errors = report["errors"]
    r = {
        "requests": report["requests"],
        "requests_per_sec": report["requests_per_sec"],
        "mb_per_sec": report["bytes_per_sec"] / 1e6,
        "duration_s": report["duration_s"],
        "connections_open": report["connections_open"],
        "errors_total": errors["total"],
        "mismatches": report["mismatches"],
        "late": report["late"],
        "achieved_ratio": (report.get("open_loop") or {}).get("achieved_ratio"),
        "server_cpu_s": server.get("seconds"),
        "server_cpu_us_per_request": server.get("us_per_request") if report["requests"] else None,
        "server_utilization": server.get("utilization"),
        "loadgen_cpu_s": report["loadgen_cpu"]["total_seconds"],
        "loadgen_busy": report["loadgen_cpu"]["max_busy"],
        "loadgen_saturated": report["saturated"],
    }
    stalls = report.get("stalls") or {}  # reported by newer load generators only
    for k in ("max_us", "count_over_1ms", "total_us"):
        r[f"stalls_{k}"] = stalls.get(k)
    for k in ("mean", "p50", "p90", "p99", "p999", "p9999", "max"):
        r[f"lat_{k}_us"] = lat.get(k)
    for k in ("p50", "p99"):
        r[f"connect_{k}_us"] = con.get(k)
    classes = report.get("classes") or {}  # loadgen --cost-every: mixed work cells only
    for cls, keys in MIXED_CLASSES.items():
        obj = classes.get(cls) or {}
        if classes:
            r[f"{cls}_count"] = obj.get("count")
        for k in keys if classes else ():
            r[f"{cls}_{k}_us"] = obj.get(k)
    for k in ("connect", "reset", "eof", "timeout", "mismatch", "other"):
        r[f"errors_{k}"] = errors[k]
    return r


def run_cell(cell, series, bench):
    """Runs the cell - with its sysctls raised if it has kernel_tuning, and restored after -
    and fills in cell.status, cell.reason and cell.result."""
    tuning = kernel.parse_tuning(cell.kernel_tuning)
    if not tuning:
        _run_cell(cell, series, bench)
        return
    try:
        with kernel.raised(tuning) as record:
            _run_cell(cell, series, bench)
            if cell.result:
                cell.result["kernel_tuning"] = "; ".join(record) + " (restored after the cell)"
    except OSError as e:
        cell.status, cell.reason = "failed", f"--tune-kernel: {e}"


def _run_cell(cell, series, bench):
    hgrm = None
    if not cell.idle:
        suffix = f"_a{cell.attempt}" if cell.attempt else ""
        hgrm = os.path.join(bench.run_dir, "hgrm", f"{cell.slug()}_r{cell.repeat}{suffix}.hgrm")
        os.makedirs(os.path.dirname(hgrm), exist_ok=True)
    argv = [series.model.executable or bench.echo_server] + server_args(cell, series)
    cell_timeout = bench.settings.warmup + bench.settings.window(
        cell.scenario, bool(cell.cost_every)) + 45
    try:
        with Server(argv, cpus=bench.placement.server_cpus) as srv:
            sampler = TreeSampler(srv.pid, SAMPLE_INTERVAL.get(cell.scenario,
                                                               DEFAULT_SAMPLE_INTERVAL),
                                  pss=cell.idle)
            rss_base, _, pss_base = sampler.sample()
            sampler.start()
            try:
                report, status, err = run_loadgen(
                    bench.loadgen, srv.port, loadgen_args(cell, bench, srv.pid, hgrm),
                    timeout=cell_timeout)
            finally:
                sampler.final()
            exit_status = srv.stop()
            server_err = srv.stderr().strip().splitlines()
    except ServerError as e:
        cell.status = "unavailable" if e.unavailable else "failed"
        cell.reason = str(e)
        return
    if report is None:
        cell.status = "failed"
        cell.reason = (err.strip().splitlines() or ["loadgen failed"])[-1]
        return
    r = flatten(report)
    r.update(server_rss_base_kib=rss_base, server_rss_peak_kib=sampler.rss_peak,
             server_mem_base_kib=pss_base if cell.idle else None,
             server_mem_peak_kib=sampler.pss_peak if cell.idle else None,
             # Without samples during the run, the counts would only show the tree before and
             # after the connections: not measured rather than wrong.
             server_processes_peak=sampler.processes_peak if sampler.interval else None,
             server_threads_peak=sampler.threads_peak if sampler.interval else None,
             server_exit=exit_status,
             server_summary=server_err[-1] if server_err else "",
             hgrm=os.path.relpath(hgrm, bench.run_dir) if hgrm else "")
    if cell.idle and cell.connections:
        # Proportional, not resident: a forked child shares most pages with its parent, and
        # summing RSS would count them once per child.
        r["memory_per_connection_bytes"] = (sampler.pss_peak - pss_base) * 1024 / cell.connections
    cell.result = r
    problems = cell_problems(cell, r, exit_status)
    cell.status = "errors" if problems else "ok"
    cell.reason = "; ".join(problems)
    why = disturbance(cell)
    if why:
        cell.disturbed = True
        cell.reason = "; ".join(filter(None, [cell.reason, why]))


def check_variant(echo_server, series, timeout=10.0):
    """None if echo-server starts with the variant's options (on --port 0, then stopped at
    once), else the one line it said."""
    argv = [series.model.executable or echo_server, "--model", series.model.name, "--port",
            "0"] + list(series.options)
    try:
        with Server(argv, start_timeout=timeout):
            pass
    except ServerError as e:
        text = str(e).split(" did not start: ", 1)[-1].strip().splitlines()
        program = os.path.basename(series.model.executable or echo_server)
        return (f"--variant '{series.describe()}': {program} refused "
                f"{shlex.join(series.options)}: " + (text[-1] if text else "no output"))
    return None


def cell_problems(cell, r, exit_status):
    """What makes a measured cell's status `errors` rather than `ok`, one phrase each."""
    problems = []
    if r["errors_total"] or r["mismatches"]:
        kinds = [f"{k} {r['errors_' + k]}" for k in
                 ("connect", "reset", "eof", "timeout", "mismatch", "other") if r["errors_" + k]]
        problems.append("errors: " + ", ".join(kinds))
    if not cell.idle and not r["requests"]:
        problems.append("no request completed in the window")
    elif cell.cost_every and r.get("cheap_count") is None:
        problems.append("the load generator reported no cheap and costly classes "
                        "(loadgen --cost-every)")
    elif cell.cost_every and not r.get("costly_count"):
        problems.append("no costly message completed in the window")
    if cell.idle and r["connections_open"] < cell.connections:
        problems.append(f"only {r['connections_open']} of {cell.connections} connections held")
    if exit_status != 0:
        problems.append(f"server exit status {exit_status} at stop")
    return problems
