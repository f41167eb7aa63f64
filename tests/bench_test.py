#!/usr/bin/env python3
"""Tests of the bench and compare scripts, on the tiny profile (seconds).

  bench_test.py CASE BUILD_DIR      CASE: smoke | interrupt | compare | cli | units
                                  | stats | checker | disturbed | kernel | peers
                                  | mixed

This process makes itself a child subreaper, so that a server the bench failed to stop - an
orphan - would become its child and be found: "nothing left running" is checked, not assumed.
"""

import csv
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "scripts"))
from echobench import ROOT  # noqa: E402
from echobench.processes import processes  # noqa: E402
from echobench.results import COLUMNS  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
MODELS = "sequential,threadpool,epoll"  # one of each kind of limit, kept short
EXPECTED_PLOTS = ["throughput", "cpu_per_request", "latency_p99", "latency_spectrum", "churn",
                  "size_sweep", "work_sleep", "memory_per_connection"]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


def bench(build, out, *extra, timeout=300):
    return subprocess.run([os.path.join(ROOT, "scripts", "bench"), "--profile", "tiny",
                           "--no-build", "--build-dir", build, "--out", out] + list(extra),
                          capture_output=True, text=True, timeout=timeout)


def has_mixed(build):
    """True if the build's load generator takes --cost-every (the mixed work cells)."""
    return "--cost-every" in subprocess.run([os.path.join(build, "loadgen", "loadgen"),
                                             "--help"], capture_output=True, text=True).stdout


def leftover_processes():
    """Processes still alive that were started below this one (orphans land here)."""
    time.sleep(0.3)
    found = [f"{pid} ({cmd})" for pid, ppid, state, cmd in processes()
             if ppid == os.getpid() and state != "Z"]
    # Reap any zombies among them so they do not linger either.
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    return found


def check_run_folder(run, expect_complete=True):
    with open(os.path.join(run, "results.csv")) as f:
        reader = csv.DictReader(f)
        check(reader.fieldnames == COLUMNS, f"results.csv columns are the documented ones: "
                                            f"{reader.fieldnames}")
        rows = list(reader)
    check(len(rows) > 0, "results.csv has rows")
    statuses = {r["status"] for r in rows}
    check(statuses <= {"ok", "errors", "unservable", "unavailable", "failed", "interrupted"},
          f"statuses are the documented ones: {statuses}")
    unservable = [r for r in rows if r["status"] == "unservable"]
    check(all(r["reason"] for r in unservable), "every unservable cell says why")
    if expect_complete:
        check(all(r["status"] in ("ok", "unservable") for r in rows),
              "every servable cell measured without error: "
              + "; ".join(f"{r['scenario']} {r['model']}: {r['status']} {r['reason']}"
                          for r in rows if r["status"] not in ("ok", "unservable")))
        measured = [r for r in rows if r["status"] == "ok"]
        check(all(float(r["server_cpu_us_per_request"] or 0) > 0 for r in measured
                  if r["scenario"] != "idle"), "server CPU per request is recorded")
        check(all(int(r["server_rss_peak_kib"] or 0) > 0 for r in measured),
              "server peak memory is recorded")
    with open(os.path.join(run, "results.json")) as f:
        data = json.load(f)
    check(len(data["cells"]) == len(rows), "results.json has the cells of results.csv")
    with open(os.path.join(run, "env.json")) as f:
        env = json.load(f)
    for key in ("kernel", "cpu_model", "cpus_online", "compiler", "commit", "flags", "sysctl"):
        check(key in env["machine"], f"env.json records {key}")
    check("placement" in env, "env.json records the placement")
    with open(os.path.join(run, "report.md")) as f:
        report = f.read()
    for line in report.splitlines():
        if line.startswith("![") and "](plots/" in line:
            png = os.path.join(run, line.split("](")[1].rstrip(")"))
            check(os.path.getsize(png) > 1000, f"{png} is a real image")
            svg = png[:-4] + ".svg"
            check(os.path.exists(svg) and os.path.getsize(svg) > 1000, f"{svg} exists")
    return report


def case_smoke(build):
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        # --keep-disturbed: on a loaded machine every cell may be disturbed, and discarding
        # them would leave nothing to plot (the disturbed case checks discarding).
        # Mixed work cells need loadgen --cost-every (a build from before it: none of them).
        mixed = has_mixed(build)
        r = bench(build, run, "--models", MODELS, "--seed", "7", "--keep-disturbed",
                  *([] if mixed else ["--mixed-every", "0"]))
        check(r.returncode == 0, f"the bench exits 0 (got {r.returncode}): {r.stderr[-500:]}")
        check("report:" in r.stdout, "it prints where the report is")
        report = check_run_folder(run)
        with open(os.path.join(run, "results.csv")) as f:
            rows = list(csv.DictReader(f))
        check(any(r["model"] == "sequential" and r["status"] == "unservable" for r in rows),
              "the sequential model is marked unservable where it cannot serve")
        check("not measured: sequential" in open(os.path.join(run, "plots",
                                                               "throughput.gp")).read(),
              "the throughput plot names the cells sequential could not serve")
        for plot in EXPECTED_PLOTS + (["mixed_work"] if mixed else []):
            check(f"(plots/{plot}.png)" in report, f"the report shows the {plot} plot")
            png = os.path.join(run, "plots", plot + ".png")
            check(os.path.exists(png) and os.path.getsize(png) > 1000, f"{plot}.png drawn")
        check("0.3 s measured per cell (idle cells 0.5 s)" in report,
              "the report gives the windows the cells had (the tiny profile's idle cells: 0.5 s)")
        check("## Findings" in report and "comparisons" in report and
              "indistinguishable at this precision" in report,
              "the report has findings computed from the data, with their precision")
        with open(os.path.join(run, "findings.json")) as f:
            found = json.load(f)
        check(found and all(f["indicative"] for f in found),
              f"findings.json lists the comparisons, indicative (tiny): {found[:1]}")
        knees = [f for f in found if f["a"] == "threshold"]
        check(knees and all(f["threshold_us"] == 1000.0 and f["scenario"] == "latency" and
                            f["verdict"] for f in knees) and
              "p99 latency against the 1000 us threshold" in report,
              f"the knees: in the report and in findings.json: {knees[:1]}")
        check(len(os.listdir(os.path.join(run, "hgrm"))) > 0, "hgrm files are written")
        with open(os.path.join(run, "results.json")) as f:
            data = json.load(f)
        check(data["meta"].get("seed") == 7, f"the seed is recorded: {data['meta'].get('seed')}")
        summary = data.get("summary") or []
        keys = {"scenario", "model", "setting", "metric", "median", "ci_low", "ci_high", "n"}
        check(summary and all(keys <= set(e) for e in summary),
              f"results.json has a summary: {summary[:2]}")
        check(any(e["metric"] == "requests_per_sec" and e["model"] == "epoll"
                  and e["scenario"] == "connections" for e in summary),
              "the summary has the headline metric of the connections cells")
        # The cells ran in the order the seed gives, and the progress lines show it.
        from echobench.results import load_run
        from echobench.scenarios import run_order
        _, cells = load_run(run)
        # Re-measurements of disturbed cells follow their first attempt directly.
        ran = [m.groups() for m in (re.match(r"\[\s*\d+/\d+\] (\S+) +(\S+) +(\S+)", line)
                                    for line in r.stdout.splitlines()
                                    if "(attempt " not in line) if m]
        want = [(c.scenario, c.model, c.setting().split()[0])
                for c in run_order([c for c in cells if c.attempt == 0], 7)]
        check(ran == want, f"cells run in the seed's order: {ran[:4]} vs {want[:4]}")
        check(not leftover_processes(), "no server left running after the bench")


def case_interrupt(build):
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        proc = subprocess.Popen([os.path.join(ROOT, "scripts", "bench"), "--profile", "tiny",
                                 "--no-build", "--build-dir", build, "--out", run,
                                 "--models", "thread,epoll", "--duration", "1s"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(5)  # a few cells in
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        check(proc.returncode == 130, f"Ctrl-C exits 130 (got {proc.returncode})")
        check("interrupted" in err, "it says it was interrupted")
        report = check_run_folder(run, expect_complete=False)
        check("interrupted" in report, "the report says the run was interrupted")
        with open(os.path.join(run, "results.csv")) as f:
            rows = list(csv.DictReader(f))
        check(any(r["status"] == "ok" for r in rows), "finished cells are kept")
        check(any(r["status"] == "interrupted" for r in rows), "cells not run are marked")
        check(not leftover_processes(), "no server left running after Ctrl-C")
    interrupt_while_starting()


def interrupt_while_starting():
    """Ctrl-C while a server is starting (before it said "listening on") must not leave it
    running: the bench leaves the `with Server(...)` block before it was entered."""
    from echobench.processes import Server

    def interrupt(*_):
        raise KeyboardInterrupt

    with tempfile.TemporaryDirectory() as tmp:
        pidfile = os.path.join(tmp, "pid")
        srv = Server(["sh", "-c", f'echo $$ > {pidfile}; exec sleep 30'], start_timeout=10)
        old = signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        try:
            with srv:
                check(False, "a server that never says it listens is not entered")
        except KeyboardInterrupt:
            pass
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        with open(pidfile) as f:
            pid = int(f.read())
        check(not os.path.exists(f"/proc/{pid}"),
              "a server interrupted while starting is stopped")


def machine_drift_warning():
    """compare warns when every series moved alike: the machine, more likely than the code."""
    from importlib.machinery import SourceFileLoader
    compare = SourceFileLoader("compare_script",
                               os.path.join(ROOT, "scripts", "compare")).load_module()
    slower = [(m, 0.8) for m in ("epoll", "poll", "thread", "fork") for _ in range(3)]
    w = compare.machine_drift("B (run)", slower)
    check(w is not None and "worse than A in 12 of 12" in w and "4 of 4 series" in w,
          f"every series 20 % slower: the machine: {w}")
    one = [(m, 0.6 if m == "epoll" else 1.0 + i / 100) for i, m in
           enumerate(("epoll", "poll", "thread", "fork") * 3)]
    check(compare.machine_drift("B", one) is None,
          f"one series slower: a change of the code: {compare.machine_drift('B', one)}")
    check(compare.machine_drift("B", [(m, 0.97) for m in ("a", "b", "c") * 4]) is None,
          "3 % in every series: within the noise")
    check(compare.machine_drift("B", slower[:6]) is None, "too few cells to tell")


def case_compare(build):
    machine_drift_warning()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [os.path.join(tmp, n) for n in ("a", "b")]
        for run, extra in zip(runs, ([], ["--models", "epoll,poll", "--connections", "1,4,8"])):
            r = bench(build, run, "--models", "epoll", "--scenarios", "connections,size,idle",
                      "--repeat", "4", "--keep-disturbed", *extra)
            check(r.returncode == 0, f"bench for compare: {r.stderr[-300:]}")
        out = os.path.join(tmp, "cmp")
        r = subprocess.run([os.path.join(ROOT, "scripts", "compare")] + runs + ["--out", out],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, f"compare exits 0: {r.stderr}")
        lines = [l for l in r.stdout.splitlines() if l.startswith("| connections | epoll")]
        check(len(lines) == 2, f"one row per connections cell in both runs: {lines}")
        check(all("x (" in l and "significant" in l for l in lines),
              f"ratios with their interval, and whether the change is significant: {lines}")
        check("warning" in r.stderr and "connections" in r.stderr,
              f"runs with other settings: a warning: {r.stderr}")
        check("model poll: measured in B only" in r.stdout and
              "connections epoll c=8: measured in B only" in r.stdout,
              f"models and cells of one run only are listed: {r.stdout[-600:]}")
        with open(os.path.join(out, "compare.md")) as f:
            md = f.read()
        check("B/A" in md and "In one run only" in md, "compare.md has the ratio table")
        for plot in ("throughput", "size_sweep", "memory_per_connection"):
            png = os.path.join(out, "plots", plot + ".png")
            check(os.path.exists(png) and os.path.getsize(png) > 1000, f"overlay {plot}.png")
        # Each model in the colour of its run's own report.
        from echobench.plots import model_colors
        gp = open(os.path.join(out, "plots", "throughput.gp")).read()
        with open(os.path.join(runs[1], "results.json")) as f:
            want = model_colors(json.load(f)["meta"]["models"])["poll"]
        check(f"lc rgb '{want}' title \"poll (B)\"" in gp,
              f"poll has B's colour {want}: {gp[-400:]}")
        # --models: only those.
        r = subprocess.run([os.path.join(ROOT, "scripts", "compare")] + runs +
                           ["--out", out, "--models", "poll,epoll"],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, f"compare --models: {r.stderr}")
        r = subprocess.run([os.path.join(ROOT, "scripts", "compare")] + runs +
                           ["--out", out, "--models", "nosuch"],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 2 and "nosuch" in r.stderr, f"--models nosuch: {r.stderr}")
        r = subprocess.run([os.path.join(ROOT, "scripts", "compare")] + runs[:1] * 2 +
                           ["--out", out, "--models", "poll"],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode != 0, "--models with no cell in common fails")
        # Colours: each model in the colour of the newer run's own report, a model of the
        # older run only a colour the newer run does not use - never two models one colour.
        from echobench.plots import merged_colors
        colours = merged_colors([["thread", "uring"], ["epoll", "thread"]])
        newer = model_colors(["thread", "uring"])
        check(colours["thread"] == newer["thread"] and colours["uring"] == newer["uring"] and
              len(set(colours.values())) == 3,
              f"run A [epoll, thread], run B [thread, uring]: three colours, B's kept: {colours}")
        check(os.path.exists(os.path.join(ROOT, "scripts", "compare")) and "merged_colors" in
              open(os.path.join(ROOT, "scripts", "compare")).read() and "PALETTE" not in
              open(os.path.join(ROOT, "scripts", "compare")).read(),
              "compare colours with plots.py's function, not a copy")
        # `previous` is the run before results/latest.
        r = subprocess.run([os.path.join(ROOT, "scripts", "compare"), "--help"],
                           capture_output=True, text=True)
        check("previous" in r.stdout, "compare --help names `previous`")
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        import importlib.machinery
        import importlib.util
        loader = importlib.machinery.SourceFileLoader("compare_script",
                                                      os.path.join(ROOT, "scripts", "compare"))
        spec = importlib.util.spec_from_loader("compare_script", loader)
        mod = importlib.util.module_from_spec(spec)
        loader.exec_module(mod)
        # ... by meta.date, not by when results.json was last written (--replot rewrites it);
        # the same date: by folder name.
        fake = os.path.join(tmp, "results")
        for name, date, age in (("run-old", "2026-01-01T10:00:00", 0),
                                ("run-mid-b", "2026-01-02T10:00:00", 300),
                                ("run-mid-a", "2026-01-02T10:00:00", 200),
                                ("run-new", "2026-01-03T10:00:00", 100),
                                ("run-broken", None, 0)):
            os.makedirs(os.path.join(fake, name))
            path = os.path.join(fake, name, "results.json")
            with open(path, "w") as f:
                f.write("{" if date is None else json.dumps({"meta": {"date": date,
                                                                     "models": []},
                                                            "cells": []}))
            os.utime(path, (time.time() - age, time.time() - age))  # run-old written last
        os.symlink("run-new", os.path.join(fake, "latest"))
        order = [os.path.basename(p) for p in mod.run_folders(fake)]
        check(order == ["run-old", "run-mid-a", "run-mid-b", "run-new"],
              f"run folders by date, then name; an unreadable one left out: {order}")
        check(os.path.basename(mod.resolve("previous", fake)) == "run-mid-b",
              f"previous: the run dated before latest: {mod.resolve('previous', fake)}")
        results = os.path.join(ROOT, "results")
        latest = os.path.join(results, "latest")
        runs_now = mod.run_folders()
        if os.path.islink(latest) and os.path.realpath(latest) in runs_now and \
                runs_now.index(os.path.realpath(latest)) > 0:
            want = runs_now[runs_now.index(os.path.realpath(latest)) - 1]
            check(mod.resolve("previous") == want, f"previous is {want}")
        check(not leftover_processes(), "no server left running")


def case_cli(build):
    cpus = sorted(os.sched_getaffinity(0))
    missing = str(max(cpus) + 1)
    for args, words in [(["--models", "nosuch"], "unknown model"),
                        (["--scenarios", "nosuch"], "unknown scenario"),
                        (["--connections", "abc"], "--connections"),
                        (["--duration", "soon"], "--duration"),
                        (["--repeat", "0"], "--repeat"),
                        (["--profile", "huge"], "--profile"),
                        (["--bogus"], "unrecognized arguments"),
                        (["--sizes", "4kb"], "--sizes"),       # C parse_bytes: no kb
                        (["--sizes", "1.5k"], "--sizes"),      # bytes are whole numbers
                        (["--sizes", "4KB"], "--sizes"),
                        (["--sizes", "0"], "--sizes"),
                        (["--sizes", "128M"], "--sizes"),      # over loadgen's 64 MiB
                        (["--connections", "1.2345k"], "--connections"),
                        (["--latency-connections", "x"], "--latency-connections"),
                        (["--duration", "0"], "--duration"),   # no window to measure
                        (["--duration", "nan"], "--duration"),
                        (["--duration", "-1s"], "--duration"),
                        (["--warmup", "2e-1"], "--warmup"),
                        (["--server-cpus", missing], "--server-cpus"),
                        (["--loadgen-cpus", missing], "--loadgen-cpus"),
                        (["--server-cpus", "0-"], "--server-cpus"),
                        (["--loadgen-cpus", "a"], "--loadgen-cpus"),
                        (["--models", "epoll,"], "--models"),
                        (["--models", ""], "--models"),
                        (["--scenarios", ",size"], "--scenarios"),
                        (["--peers", "rust"], "unknown peer"),
                        (["--peers", "node,node"], "twice"),
                        (["--peers", "node,"], "--peers"),
                        (["--models", "node"], "--peers"),
                        (["--mixed-every", "2000000"], "--mixed-every"),
                        (["--mixed-sleep-us", "10ms"], "--mixed-sleep-us"),
                        (["--mixed-work-us", "2000000"], "--mixed-work-us"),
                        (["--p99-threshold", "inf"], "--p99-threshold"),
                        (["--p99-threshold", "nan"], "--p99-threshold"),
                        (["--p99-threshold", "0"], "--p99-threshold"),
                        (["--p99-threshold", "-5"], "--p99-threshold"),
                        (["--variant", "x=epoll --mod thread"], "--mod"),
                        (["--variant", "x=epoll -p5000"], "--port"),
                        (["--baseline", "Not-A-Series"], "--baseline")]:
        with tempfile.TemporaryDirectory() as tmp:
            # Should the option be taken, a one-cell run into a scratch folder, not a study.
            r = bench(build, os.path.join(tmp, "run"), "--models", "epoll", "--scenarios",
                      "churn", *args, timeout=60)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(lines) == 1 and words in r.stderr,
              f"bench {' '.join(args)}: exit 2 with one line naming {words} "
              f"(got {r.returncode}: {lines})")
    r = subprocess.run([os.path.join(ROOT, "scripts", "bench"), "--help"],
                       capture_output=True, text=True)
    check("x1000" in r.stdout and "x1024" in r.stdout,
          "bench --help says counts are decimal (x1000) and sizes binary (x1024)")

    # Byte sizes mean what loadgen -s means: 4k is 4,096 bytes. Server and load generator on
    # one CPU: a warning, and the run goes on.
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        r = bench(build, run, "--models", "epoll", "--scenarios", "size,connections",
                  "--sizes", "4k,1KiB,64B", "--connections", "0.002k",
                  "--server-cpus", str(cpus[0]), "--loadgen-cpus", str(cpus[0]),
                  "--warmup", "50us")
        check(r.returncode == 0, f"bench --sizes 4k exits 0: {r.stderr[-300:]}")
        rows = []
        if os.path.exists(os.path.join(run, "results.csv")):
            with open(os.path.join(run, "results.csv")) as f:
                rows = list(csv.DictReader(f))
        rows = [x for x in rows if x["attempt"] == "0"]  # not the re-measurements
        sizes = sorted(int(x["size"]) for x in rows if x["scenario"] == "size")
        check(sizes == [64, 1024, 4096], f"--sizes 4k,1KiB,64B are 4096, 1024, 64 bytes: {sizes}")
        conns = [int(x["connections"]) for x in rows if x["scenario"] == "connections"]
        check(conns == [2], f"--connections 0.002k is 2 connections (decimal): {conns}")
        check("warning" in r.stderr and "share" in r.stderr,
              f"overlapping server and load generator CPUs get a warning: {r.stderr[-300:]}")

    # A run in which no cell could be measured fails, and results/latest keeps pointing at
    # the last run that has data.
    with tempfile.TemporaryDirectory() as fake:
        real = os.path.join(build, "servers", "echo-server")
        fake_build(fake, build, f'case "$*" in *--list*) exec {real} "$@";; esac\n'
                                'echo "echo-server: cannot listen: broken on purpose" >&2; exit 1')
        latest = os.path.join(ROOT, "results", "latest")
        before = os.readlink(latest) if os.path.islink(latest) else None
        run = os.path.join(ROOT, "results", f"bench-test-nodata-{os.getpid()}")
        try:
            r = bench(fake, run, "--models", "epoll", "--scenarios", "connections")
            after = os.readlink(latest) if os.path.islink(latest) else None
            check(r.returncode == 1, f"a run with no cell measured exits 1 (got {r.returncode})")
            check("no cell was measured" in r.stderr,
                  f"it says no cell was measured: {r.stderr[-300:]}")
            check(before == after, f"results/latest is not moved ({before} -> {after})")
        finally:
            shutil.rmtree(run, ignore_errors=True)
            now = os.readlink(latest) if os.path.islink(latest) else None
            if now != before:  # put results/latest back as it was
                if now is not None:
                    os.unlink(latest)
                if before is not None:
                    os.symlink(before, latest)

    # An echo-server whose model list cannot be read: one line, exit status 1.
    with tempfile.TemporaryDirectory() as fake:
        fake_build(fake, build, "echo '{\"version\": 99, \"models\": []}'")
        r = bench(fake, os.path.join(fake, "run"), "--models", "epoll")
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 1 and len(lines) == 1 and "version 99" in r.stderr,
              f"an unreadable model list: one line, exit 1 (got {r.returncode}: {lines[-2:]})")

    # The measurements in bench/ read sizes, counts and durations by the same rules.
    quick = ["--build", build, "--servers", "epoll", "--connections", "1", "--pipelines", "1",
             "--repeat", "1", "--duration", "1s", "--warmup", "0"]
    for args, words in [(["--size", "4kb"], "--size"), (["--connections", "x"], "--connections"),
                        (["--pipelines", "1,"], "--pipelines"), (["--duration", "0"], "--duration"),
                        (["--server-cpu", missing], "--server-cpu"),
                        (["--loadgen-cpu", "x"], "--loadgen-cpu")]:
        r = subprocess.run([os.path.join(ROOT, "bench", "cpu-per-request")] + quick + args,
                           capture_output=True, text=True, timeout=60)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(lines) == 1 and words in r.stderr,
              f"cpu-per-request {' '.join(args)}: exit 2 with one line naming {words} "
              f"(got {r.returncode}: {lines[-3:]})")

    small = {"event-loop-scale": ["--connections", "2", "--duration", "1s"],
             "loadgen-floor": ["--repeat", "1", "--duration", "1"]}
    for script, args in [("event-loop-scale", ["--server-cpu", missing]),
                         ("loadgen-floor", ["--client-cpu", missing])]:
        r = subprocess.run([os.path.join(ROOT, "bench", script), "--build", build,
                            "--models", "epoll"] + small[script] + args,
                           capture_output=True, text=True, timeout=60)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(lines) == 1 and args[0] in r.stderr,
              f"{script} {' '.join(args)}: exit 2 with one line (got {r.returncode}: "
              f"{lines[-3:]})")

    # The checks that need no build come before it (which may install packages): with a
    # build folder that does not exist, bad input is refused at once and nothing is built.
    for args, words in [(["--scenarios", "nosuch"], "unknown scenario"),
                        (["--variant", "x=epoll --thr 2"], "--thr"),
                        (["--variant", "x=epoll 'unclosed"], "quotation"),
                        (["--variant", "Bad=epoll"], "series name"),
                        (["--variant", "x=epoll", "--variant", "x=poll"], "already"),
                        (["--baseline", "a b"], "--baseline")]:
        with tempfile.TemporaryDirectory() as tmp:
            nowhere = os.path.join(tmp, "nonexistent")
            started = time.monotonic()
            r = subprocess.run([os.path.join(ROOT, "scripts", "bench"), "--build-dir", nowhere]
                               + args, capture_output=True, text=True, timeout=60)
            took = time.monotonic() - started
            lines = r.stderr.strip().splitlines()
            check(r.returncode == 2 and len(lines) == 1 and words in r.stderr and
                  not os.path.exists(nowhere) and not r.stdout and took < 10,
                  f"bench --build-dir (none) {' '.join(args)}: exit 2 before the build, one "
                  f"line naming {words} (got {r.returncode} in {took:.1f} s: {lines[-3:]})")

    # A malformed or old-format results.json: one line naming the file, exit 2 - from
    # scripts/compare and scripts/bench --replot alike.
    good = {"meta": {"models": ["epoll"], "run_id": "x", "profile": "tiny", "duration": 1,
                     "warmup": 0, "repeat": 1, "command": "x"},
            "cells": [{"scenario": "connections", "model": "epoll", "connections": 1,
                       "status": "ok", "reason": "", "result": {"requests_per_sec": 1.0}}]}
    no_result = json.loads(json.dumps(good))
    del no_result["cells"][0]["result"]
    for name, text in [("truncated", "{"), ("empty object", "{}"), ("a list", "[]"),
                       ("a cell without result", json.dumps(no_result)),
                       ("cells not a list", json.dumps(dict(good, cells={})))]:
        with tempfile.TemporaryDirectory() as tmp:
            bad = os.path.join(tmp, "bad")
            os.makedirs(bad)
            with open(os.path.join(bad, "results.json"), "w") as f:
                f.write(text)
            with open(os.path.join(bad, "env.json"), "w") as f:
                f.write("{}")
            for argv in ([os.path.join(ROOT, "scripts", "compare"), bad, bad, "--out",
                          os.path.join(tmp, "cmp")],
                         [os.path.join(ROOT, "scripts", "bench"), "--replot", bad]):
                r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
                lines = r.stderr.strip().splitlines()
                check(r.returncode == 2 and len(lines) == 1 and "results.json" in r.stderr and
                      "Traceback" not in r.stderr,
                      f"{os.path.basename(argv[0])} with results.json {name}: one line, exit 2 "
                      f"(got {r.returncode}: {lines[-2:]})")

    r = subprocess.run([os.path.join(ROOT, "scripts", "compare"), "/nonexistent", "/x"],
                       capture_output=True, text=True)
    check(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1,
          f"compare with a non-run exits 2 with one line: {r.stderr}")
    for script in ("bench", "compare"):
        r = subprocess.run([os.path.join(ROOT, "scripts", script), "--help"],
                           capture_output=True, text=True)
        check(r.returncode == 0 and "usage" in r.stdout.lower(), f"{script} --help")


def fake_echo_server(folder, script):
    """An executable echo-server in folder that runs the shell script given."""
    path = os.path.join(folder, "echo-server")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + script + "\n")
    os.chmod(path, 0o755)
    return path


def fake_build(folder, build, script):
    """A build folder with a fake echo-server (the shell script) and the real loadgen."""
    os.makedirs(os.path.join(folder, "servers"))
    os.makedirs(os.path.join(folder, "loadgen"))
    os.symlink(os.path.join(build, "loadgen", "loadgen"),
               os.path.join(folder, "loadgen", "loadgen"))
    return fake_echo_server(os.path.join(folder, "servers"), script)


def case_units(build):
    """The pieces of the bench that need no server: the model contract and the decisions the
    bench takes from it."""
    from echobench.models import list_models
    from echobench.runner import server_args
    from echobench.scenarios import Cell, Settings, build_cells

    # Each plot says how many disturbed measurements it leaves out.
    from echobench.plots import unserved_notes
    kept, left = Cell("churn", "epoll", 4), Cell("churn", "epoll", 4, repeat=1)
    kept.status = left.status = "ok"
    kept.result, left.result = {"requests_per_sec": 10.0}, {"requests_per_sec": 1.0}
    left.disturbed = True
    notes = unserved_notes([kept, left], "churn")
    check(any("1 disturbed measurement left out" in n for n in notes),
          f"a plot names its disturbed measurements left out: {notes}")
    check(not any("disturbed" in n for n in unserved_notes([kept], "churn")),
          "and says nothing when none is")

    # echo-server --list --json is the contract; read as it is.
    models = {m.name: m for m in list_models(os.path.join(build, "servers", "echo-server"))}
    check({"sequential", "threadpool", "epoll"} <= set(models), f"models listed: {list(models)}")
    pool = models.get("threadpool")
    check(pool and pool.serves_one_connection_per_thread and pool.threads_meaning == "workers",
          f"threadpool serves one connection per worker: {pool}")
    check(models.get("epoll") and not models["epoll"].serves_one_connection_per_thread
          and models["epoll"].threads_meaning == "reactors", f"epoll: {models.get('epoll')}")

    doc = {"version": 1, "models": [
        {"name": "pool", "summary": "a pool", "kind": "threads", "threads_meaning": "workers",
         "serves_one_connection_per_thread": True, "max_connections": 0,
         "listener_per_thread": False, "default_threads": 64},
        {"name": "mixed", "summary": "loops and workers", "kind": "hybrid",
         "threads_meaning": "workers", "serves_one_connection_per_thread": False,
         "max_connections": 0, "listener_per_thread": True, "default_threads": None},
        {"name": "small", "summary": "at most 3", "kind": "event-loop", "threads_meaning": None,
         "serves_one_connection_per_thread": False, "max_connections": 3,
         "listener_per_thread": False}]}
    with tempfile.TemporaryDirectory() as tmp:
        exe = fake_echo_server(tmp, f"cat <<'EOF'\n{json.dumps(doc)}\nEOF")
        got = list_models(exe)
        check([(m.name, m.kind, m.threads_meaning, m.serves_one_connection_per_thread,
                m.max_connections, m.listener_per_thread) for m in got] ==
              [("pool", "threads", "workers", True, 0, False),
               ("mixed", "hybrid", "workers", False, 0, True),
               ("small", "event-loop", None, False, 3, False)],
              f"list_models reads --list --json: {got}")
        # What the bench does with them: a pool that serves one connection per worker is sized
        # to the cell's connections, up to its cap; a hybrid with workers holds any number and
        # keeps its default; a declared maximum is a limit.
        from echobench.models import POOL_CAP, Series
        series = [Series(m.name, m) for m in got]
        settings = Settings.resolve("tiny", connections=[2, 4, POOL_CAP["threads"] + 1])
        cells = build_cells(settings, series, ["connections"])
        status = {(c.model, c.connections): c.status for c in cells}
        big = POOL_CAP["threads"] + 1
        check(status == {("pool", 2): "pending", ("pool", 4): "pending",
                         ("pool", big): "unservable",
                         ("mixed", 2): "pending", ("mixed", 4): "pending",
                         ("mixed", big): "pending",
                         ("small", 2): "pending", ("small", 4): "unservable",
                         ("small", big): "unservable"},
              f"servable cells follow serves_one_connection_per_thread: {status}")
        threads = {(c.model, c.connections): c.threads for c in cells}
        check(threads[("pool", 2)] == 2 and threads[("pool", 4)] == 4
              and threads[("mixed", 4)] is None,
              f"a one-connection-per-worker pool gets --threads = connections: {threads}")
        reason = next(c.reason for c in cells if c.model == "pool" and c.connections == big)
        check(f"{POOL_CAP['threads']:,}" in reason, f"above the cap, the cap is the reason: {reason}")
        for s in series:
            cell = next(c for c in cells if c.model == s.name and c.connections == 4)
            argv = server_args(cell, s)
            want = s.name == "pool"
            check(("--threads" in argv) == want,
                  f"{s.name}: --threads given to one-connection pools only: {argv}")

        # A hybrid whose --threads are threads (leader_followers) serves any number of
        # connections: no pool sized to the connections, whatever its kind.
        from echobench.models import Model as _Model
        lf = Series("lf", _Model("lf", "shared epoll set", "hybrid", "threads", False, 0, False))
        cells = build_cells(settings, [lf], ["connections"])
        check([(c.status, c.threads) for c in cells] == [("pending", None)] * 3 and
              "--threads" not in server_args(cells[0], lf),
              "a hybrid with threads: its default, every cell: "
              f"{[(c.status, c.threads) for c in cells]}")

        # Before the C side had --json, a fallback to the text of --list.
        text = ("MODEL         KIND        THREADS   MAX_CONNS SUMMARY\n"
                "pool          threads     workers   -         a pool of N\n"
                "loop          event-loop  reactors  1000      a loop\n")
        exe = fake_echo_server(tmp, 'case "$*" in *--json*) echo "unknown option --json" >&2; '
                                    f"exit 2;; esac\ncat <<'EOF'\n{text}EOF")
        got = list_models(exe)
        check([(m.name, m.threads_meaning, m.serves_one_connection_per_thread,
                m.max_connections) for m in got] ==
              [("pool", "workers", True, 0), ("loop", "reactors", False, 1000)],
              f"the text fallback maps workers to one connection per thread: {got}")
        exe = fake_echo_server(tmp, "echo '{\"version\": 2, \"models\": []}'")
        try:
            list_models(exe)
            check(False, "a --list --json of another version is refused")
        except RuntimeError as e:
            check("version" in str(e), f"the error names the version: {e}")

    # The options a variant may set, the bench's and the others are every option of
    # echo-server --help: a new server option is neither silently refused nor let through.
    from echobench.models import BENCH_OPTIONS, OTHER_OPTIONS, VARIANT_OPTIONS
    help_text = subprocess.run([os.path.join(build, "servers", "echo-server"), "--help"],
                               capture_output=True, text=True).stdout
    # An option's line: indented 2 (with a short option) or 6; continuation lines, deeper.
    listed = set(re.findall(r"^ {2,6}(?:(-\w), )?(--[a-z][a-z-]*)", help_text, re.M))
    known = {(short or "", long) for opts in (VARIANT_OPTIONS, BENCH_OPTIONS, OTHER_OPTIONS)
             for long, short in opts.items()}
    check(len(listed) > 10 and listed == known,
          f"echo-server --help's options are the ones models.py knows: only in --help "
          f"{sorted(listed - known)}, only in models.py {sorted(known - listed)}")

    # Placement: CPUs that may be shared get a warning, and no busy-polling on them.
    from echobench.runner import Placement
    pl, warnings = Placement.given("0", "1")
    check(not warnings and pl.busy_poll and pl.loadgen_threads == 1, f"0 / 1: {pl} {warnings}")
    pl, warnings = Placement.given("0-1", "1")
    check(warnings and "share" in warnings[0] and not pl.busy_poll, f"0-1 / 1: {pl} {warnings}")
    pl, warnings = Placement.given(None, "1")
    check(warnings and "not pinned" in warnings[0] and not pl.busy_poll,
          f"an unpinned server may run on the load generator's CPU: {pl} {warnings}")
    pl, warnings = Placement.given("0", None)
    check(warnings and "not pinned" in warnings[0], f"an unpinned load generator: {warnings}")

    # A cell that completed no request is not "ok", and the report survives a zero.
    from echobench.report import findings
    from echobench.runner import cell_problems
    zero = Cell("work", "stuck", 4, work_us=20)
    r0 = {"requests": 0, "requests_per_sec": 0.0, "errors_total": 0, "mismatches": 0,
          "connections_open": 4}
    r0.update({f"errors_{k}": 0 for k in ("connect", "reset", "eof", "timeout", "mismatch",
                                          "other")})
    check(cell_problems(zero, r0, 0) == ["no request completed in the window"],
          f"zero requests is a problem: {cell_problems(zero, r0, 0)}")
    check(cell_problems(Cell("idle", "stuck", 4, idle=True), r0, 0) == [],
          "an idle cell sends no request by design")
    cells = []
    for model, rps in (("fast", 1000.0), ("stuck", 0.0)):
        for scen, kw in (("connections", {}), ("churn", {"reconnect": 1}),
                         ("work", {"work_us": 20})):
            c = Cell(scen, model, 4, **kw)
            c.status, c.result = "errors" if not rps else "ok", {"requests_per_sec": rps}
            cells.append(c)
    try:
        text = " ".join(findings(cells, ["fast", "stuck"], 1000.0))
        check("stuck" in text and "none" in text,
              f"findings name the model that served none: {text}")
    except ZeroDivisionError as e:
        check(False, f"findings with a model at 0 requests/s: {e!r}")
    mixed_units()


def mixed_units():
    """The mixed work cells: which profiles have them, the options both sides get, the
    classes read from the load generator's report, the headline."""
    from echobench.models import Model, Series
    from echobench.results import headline
    from echobench.runner import Bench, Placement, flatten, loadgen_args, server_args
    from echobench.scenarios import Settings, build_cells
    epoll = Series("epoll", Model("epoll", "", "event-loop", "reactors", False, 0, False))
    node = Series("node", Model("node", "", "event-loop", None, False, 0, False,
                                supports_costs=False, executable="/x/echo-node"))
    for profile, want in (("quick", ["mixed every=100 sleep=10000us"]),
                          ("full", ["mixed every=100 sleep=10000us",
                                    "mixed every=100 work=10000us"]),
                          ("tiny", ["mixed every=10 sleep=2000us", "mixed every=10 work=2000us"])):
        settings = Settings.resolve(profile)
        cells = build_cells(settings, [epoll], ["work"], repeats=1)
        got = [c.setting() for c in cells if c.cost_every]
        check(got == want, f"{profile}: the mixed cells {got}")
        check(all(c.connections == settings.work_connections for c in cells),
              f"{profile}: mixed cells have the work scenario's connections")
    check(Settings.resolve("quick").window("work", mixed=True) == 0.5 and
          Settings.resolve("quick", duration=2.0).window("work", mixed=True) == 2.0,
          "the mixed window: its own, or --duration's")
    s = Settings.resolve("quick", mixed_every=0)
    check(not s.mixed_sleep_us and not s.mixed_work_us, "--mixed-every 0: no mixed cells")
    s = Settings.resolve("tiny", mixed_every=50, mixed_sleep_us=[0], mixed_work_us=[300])
    cells = build_cells(s, [epoll, node], ["work"], repeats=1)
    mixed = [c for c in cells if c.cost_every]
    check([(c.model, c.setting(), c.status) for c in mixed] ==
          [("epoll", "mixed every=50 work=300us", "pending"),
           ("node", "mixed every=50 work=300us", "unservable")],
          f"overrides, and a peer without costs left out: {[(c.model, c.setting()) for c in mixed]}")
    cell = mixed[0]
    argv = server_args(cell, epoll)
    check(argv[argv.index("--cost-every") + 1] == "50" and "--msg-size" in argv,
          f"the server gets --cost-every: {argv}")
    bench_ = Bench("es", "lg", "/tmp", Placement(), s)
    largs = loadgen_args(cell, bench_, 1, None)
    check(largs[largs.index("--cost-every") + 1] == "50" and
          largs[largs.index("-d") + 1] == f"{s.mixed_duration:.6f}s",
          f"the load generator gets --cost-every and the mixed window: {largs}")
    lat = {"count": 10, "p50": 20.0, "p99": 40.0, "p999": 50.0}
    report = {"requests": 10, "requests_per_sec": 1.0, "bytes_per_sec": 1.0, "duration_s": 1,
              "connections_open": 4, "errors": {k: 0 for k in ("total", "connect", "reset",
                                                              "eof", "timeout", "mismatch",
                                                              "other")},
              "mismatches": 0, "late": 0, "loadgen_cpu": {"total_seconds": 1, "max_busy": 0},
              "saturated": False, "latency_us": lat, "connect_latency_us": {},
              "classes": {"cost_every": 50, "cheap": dict(lat, count=9, p99=30.0),
                          "costly": {"count": 1, "p50": 9000.0, "p99": 9100.0}}}
    r = flatten(report)
    check((r["cheap_count"], r["cheap_p99_us"], r["costly_count"], r["costly_p99_us"]) ==
          (9, 30.0, 1, 9100.0), f"the classes of the report: {r}")
    del report["classes"]
    check("cheap_p99_us" not in flatten(report), "no classes, no cheap figures")
    check(headline(cell) == ("cheap_p99_us", False) and
          headline(cells[0]) == ("requests_per_sec", True),
          "a mixed cell's headline is the cheap messages' p99")


def case_stats(build):
    """Run order, the summary's intervals and the stall columns: no server needed."""
    from echobench.results import COLUMNS, summarize
    from echobench.runner import flatten
    from echobench.scenarios import Cell, run_order
    from echobench.stats import median_interval

    # A distribution-free 95 % interval for the median from order statistics.
    iv = median_interval([5, 1, 4, 2, 3])
    check((iv.median, iv.low, iv.high, iv.method) == (3, 1, 5, "min-max"),
          f"n < 6: the min-max range, said so: {iv}")
    iv = median_interval(list(range(10, 0, -1)))
    check((iv.median, iv.low, iv.high, iv.method) == (5.5, 2, 9, "order statistics")
          and abs(iv.coverage - (1 - 2 * 11 / 1024)) < 1e-9,
          f"n = 10: the 2nd and 9th values, 97.9 % coverage: {iv}")
    iv = median_interval(list(range(1, 7)))
    check((iv.low, iv.high, iv.method) == (1, 6, "order statistics")
          and abs(iv.coverage - 62 / 64) < 1e-9, f"n = 6: min and max cover 96.9 %: {iv}")
    iv = median_interval(list(range(1, 101)))
    check((iv.low, iv.high) == (40, 61) and iv.coverage >= 0.95,
          f"n = 100: the 40th and 61st values: {iv}")

    cells = []
    for rep, rps in enumerate([100.0, 300.0, 200.0]):
        c = Cell("connections", "epoll", 4, repeat=rep)
        c.status, c.result = "ok", {"requests_per_sec": rps, "lat_p99_us": 50.0 + rep}
        cells.append(c)
    failed = Cell("connections", "epoll", 8)
    failed.status = "failed"
    summary = summarize(cells + [failed])
    entry = [e for e in summary if e["metric"] == "requests_per_sec"]
    check(len(entry) == 1 and {k: entry[0][k] for k in ("scenario", "model", "setting", "metric",
                                                          "median", "ci_low", "ci_high", "n")}
          == {"scenario": "connections", "model": "epoll", "setting": "c=4",
              "metric": "requests_per_sec", "median": 200.0, "ci_low": 100.0,
              "ci_high": 300.0, "n": 3} and entry[0]["interval"] == "min-max",
          f"summary entry per (scenario, model, setting, metric): {summary}")
    check(not [e for e in summary if e["setting"] == "c=8"], "no entry for cells not measured")

    # Cells run in a shuffled order within each repeat, reproducible from the seed.
    cells = [Cell("connections", m, c, repeat=r) for r in range(2) for m in ("a", "b")
             for c in (1, 2, 4, 8)]
    order = run_order(cells, 7)
    check(sorted(map(id, order)) == sorted(map(id, cells)), "the run order has every cell once")
    check([c.repeat for c in order] == sorted(c.repeat for c in order),
          "each repeat runs whole before the next")
    check([id(c) for c in run_order(cells, 7)] == [id(c) for c in order],
          "the same seed gives the same order")
    check(any([id(c) for c in run_order(cells, s)] != [id(c) for c in order]
              for s in range(1, 5)), "other seeds give other orders")
    check(order != cells, "the order is shuffled")

    # The load generator's stall figures, when it reports them: new columns after the old
    # ones, and after them the attempt and what came later still.
    at = COLUMNS.index("stalls_max_us")
    check(COLUMNS[at:at + 3] == ["stalls_max_us", "stalls_count_over_1ms", "stalls_total_us"]
          and COLUMNS[at - 1] == "hgrm", f"the stall columns follow hgrm: {COLUMNS[at - 1:]}")
    check(COLUMNS[at + 3:at + 9] == ["attempt", "disturbed", "server_model", "server_options",
                                     "threads", "kernel_tuning"],
          f"attempt, disturbed, ... follow the stalls: {COLUMNS[at + 3:]}")
    check(COLUMNS[at + 9:] == ["cost_every", "cheap_count", "cheap_p50_us", "cheap_p99_us",
                               "cheap_p999_us", "costly_count", "costly_p50_us",
                               "costly_p99_us"],
          f"the mixed work columns come last: {COLUMNS[at + 9:]}")
    report = {"latency_us": {"p50": 1}, "connect_latency_us": {}, "server_cpu": None,
              "errors": {k: 0 for k in ("total", "connect", "reset", "eof", "timeout",
                                        "mismatch", "other")},
              "requests": 10, "requests_per_sec": 10.0, "bytes_per_sec": 1.0, "duration_s": 1.0,
              "connections_open": 1, "mismatches": 0, "late": 0, "saturated": False,
              "loadgen_cpu": {"total_seconds": 0.1, "max_busy": 0.1}}
    r = flatten(report)
    check(r["stalls_max_us"] is None, "no stalls reported: the columns stay empty")
    report["stalls"] = {"max_us": 1500, "count_over_1ms": 2, "total_us": 2600}
    r = flatten(report)
    check((r["stalls_max_us"], r["stalls_count_over_1ms"], r["stalls_total_us"]) ==
          (1500, 2, 2600), f"stalls recorded per cell: {r}")
    with open(os.path.join(ROOT, "docs", "results.md")) as f:
        doc = f.read()
    for col in ("stalls_max_us", "stalls_count_over_1ms", "stalls_total_us", "summary", "seed",
                "attempt", "disturbed", "server_model", "server_options", "threads",
                "kernel_tuning", "findings.json", "--variant", "--baseline", "--tune-kernel",
                "--repeat auto", "--keep-disturbed"):
        check(f"`{col}`" in doc, f"docs/results.md documents {col}")
    with open(os.path.join(ROOT, "docs", "methodology.md")) as f:
        doc = f.read()
    for words in ("Disturbed cells", "Mann-Whitney", "Hodges-Lehmann", "indicative"):
        check(words in doc, f"docs/methodology.md explains {words}")

    # A progress line for a cell that completed nothing (no latency at all) does not crash.
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader("bench_script",
                                                  os.path.join(ROOT, "scripts", "bench"))
    spec = importlib.util.spec_from_loader("bench_script", loader)
    script = importlib.util.module_from_spec(spec)
    loader.exec_module(script)
    for scen, kw in (("size", {"size": 4096}), ("connections", {})):
        c = Cell(scen, "epoll", 2, **kw)
        c.status, c.reason = "errors", "no request completed in the window"
        c.result = {"requests_per_sec": 0.0, "mb_per_sec": 0.0, "lat_p99_us": None,
                    "server_cpu_us_per_request": None, "loadgen_saturated": False}
        line = script.progress_line(1, 1, c, 0)
        check("no request completed" in line, f"{scen}: a progress line without latency: {line}")

    # The summary covers every headline figure.
    from echobench.results import SUMMARY_METRICS
    every = {m for ms in SUMMARY_METRICS.values() for m in ms}
    for metric in ("requests_per_sec", "server_cpu_us_per_request", "lat_p50_us", "lat_p99_us",
                   "lat_p999_us", "mb_per_sec", "memory_per_connection_bytes"):
        check(metric in every, f"the summary has {metric}")
    check("lat_p999_us" in SUMMARY_METRICS["connections"], "connections: p99.9 too")

    # A ratio with its interval: Mann-Whitney on the logarithms, Hodges-Lehmann estimate.
    from echobench.stats import ratio_interval
    r = ratio_interval([10, 11, 12, 13, 14], [20, 22, 24, 26, 28])
    check(abs(r.ratio - 2) < 1e-9 and r.significant and 1 < r.low <= r.high and
          abs(r.coverage - (1 - 2 * 4 / 252)) < 1e-9,
          f"5 vs 5 repeats, twice as high: significant, 96.8 % interval: {r}")
    r = ratio_interval([10, 12, 11, 13, 14], [11, 10.5, 12.5, 13.5, 12])
    check(not r.significant and r.low < 1 < r.high, f"overlapping samples: not significant: {r}")
    r = ratio_interval([10, 11, 12], [20, 22, 24])
    check(r.low is None and not r.significant and "too few" in r.note,
          f"3 vs 3: no 95 % interval exists, never significant: {r}")
    r = ratio_interval([10, 11, 12, 13], [20, 22, 24, 26])
    check(r.significant and abs(r.low - 20 / 13) < 1e-9 and abs(r.high - 26 / 10) < 1e-9,
          f"4 vs 4, apart: the extreme pairwise ratios, significant: {r}")
    r = ratio_interval([5], [0])
    check(r.ratio == 0 and not r.significant, f"a zero: no interval: {r}")
    # Its false-positive rate, on samples of one distribution: at most the test's level.
    import random as _random
    rng = _random.Random(1)
    trials = 400
    false = sum(ratio_interval([rng.lognormvariate(0, 0.1) for _ in range(5)],
                               [rng.lognormvariate(0, 0.1) for _ in range(5)]).significant
                for _ in range(trials))
    check(false / trials <= 0.05, f"A/A false positives {false}/{trials} (expected ~3.2 %)")

    # A disturbed cell: platform stalls that could explain its tail or its throughput.
    from echobench.runner import disturbance
    def cell_with(**r):
        c = Cell("connections", "epoll", 4)
        c.status, c.result = "ok", dict(dict(duration_s=1.0, lat_p99_us=100.0), **r)
        return c
    check(disturbance(cell_with(stalls_max_us=None, stalls_total_us=None)) == "",
          "no stall figures: not disturbed")
    check(disturbance(cell_with(stalls_max_us=900.0, stalls_total_us=900.0)) == "",
          "stalls under 1 ms: not disturbed")
    check(disturbance(cell_with(stalls_max_us=3000.0, stalls_total_us=3000.0)) == "",
          "one 3 ms stall in 1 s (0.3 %): too little of the window to make a p99")
    check("p99" in disturbance(cell_with(stalls_max_us=5000.0, stalls_total_us=12000.0)),
          "5 ms stalls, 1.2 % of the window: the tail could be the platform's")
    check("window" in disturbance(cell_with(lat_p99_us=100000.0, stalls_max_us=5000.0,
                                            stalls_total_us=25000.0)),
          "2.5 % of the window stalled: the throughput could be the platform's")
    idle = Cell("idle", "epoll", 4, idle=True)
    idle.status, idle.result = "ok", {"duration_s": 1.0, "stalls_max_us": 9e5,
                                      "stalls_total_us": 9e5}
    check(disturbance(idle) == "", "idle cells (memory) are never disturbed")
    d = cell_with(stalls_max_us=1.0, stalls_total_us=1.0)
    d.disturbed, d.kernel_tuning = True, "kernel.pid_max=99"
    again = d.again()
    check((again.attempt, again.disturbed, again.status, again.result, again.kernel_tuning)
          == (1, False, "pending", {}, "kernel.pid_max=99"), f"another attempt: {again}")
    from echobench.results import summarize as _summarize
    ok = cell_with(requests_per_sec=100.0)
    bad = cell_with(requests_per_sec=5.0)
    bad.disturbed = True
    entry = [e for e in _summarize([ok, bad]) if e["metric"] == "requests_per_sec"][0]
    check(entry["n"] == 1 and entry["median"] == 100.0 and entry["discarded"] == 1,
          f"the summary leaves disturbed measurements out and counts them: {entry}")
    bad.result["kept_disturbed"] = True
    entry = [e for e in _summarize([ok, bad]) if e["metric"] == "requests_per_sec"][0]
    check(entry["n"] == 2, f"--keep-disturbed uses them: {entry}")
    # The p99.9 too: findings are made on it (latency scenario). A 3.9 ms stall in a 0.8 s
    # window is 0.49 % of it: too little for a p99 of 90 us, enough for a p99.9 of 3.5 ms. The
    # cell is not disturbed for it (its p99 and throughput are sound) and its p99.9 stays in
    # the summary, counted; no finding is made on a p99.9 it is part of.
    from echobench.results import p999_masked
    c = cell_with(duration_s=0.8, lat_p99_us=90.0, lat_p999_us=3500.0, stalls_max_us=3900.0,
                  stalls_total_us=3900.0)
    check(disturbance(c) == "" and p999_masked(c),
          f"a stall that could make the p99.9 does not disturb the cell: {disturbance(c)!r}")
    entry = [e for e in _summarize([c, cell_with(lat_p999_us=200.0)])
             if e["metric"] == "lat_p999_us"]
    check(entry and entry[0]["explained_by_stalls"] == 1 and entry[0]["n"] == 2,
          f"the summary keeps and counts p99.9s the stalls could explain: {entry}")
    from echobench.findings import comparisons as _comparisons, sentence as _sentence
    lat = []
    for rep in range(6):
        for model, p999 in (("a", 3000.0), ("b", 30000.0)):
            x = Cell("latency", model, 16, rate=20000.0, repeat=rep)
            x.status, x.result = "ok", {"duration_s": 0.8, "lat_p99_us": 500.0 * (1 + rep),
                                        "lat_p999_us": p999 + rep, "stalls_max_us": 100.0,
                                        "stalls_total_us": 100.0}
            lat.append(x)
    sig = [f for f in _comparisons(lat, ["a", "b"]) if f["metric"] == "lat_p999_us"]
    check(sig and sig[0]["significant"] and sig[0]["explained_by_stalls"] == 0,
          f"10x apart without stalls: a p99.9 finding: {sig}")
    lat[0].result.update(stalls_max_us=2000.0, stalls_total_us=2000.0)  # a's first p99.9
    got = [f for f in _comparisons(lat, ["a", "b"]) if f["metric"] == "lat_p999_us"]
    check(got and not got[0]["significant"] and got[0]["explained_by_stalls"] == 1 and
          "no finding" in _sentence(got[0]),
          f"a p99.9 the stalls could explain: no finding on it: {got}")
    from echobench.findings import write_findings as _write_findings
    with tempfile.TemporaryDirectory() as tmp:
        _write_findings(tmp, got)
        with open(os.path.join(tmp, "findings.json")) as f:
            written = json.load(f)
    check(written[0].get("explained_by_stalls") == 1,
          f"findings.json says why a p99.9 comparison is no finding: {written[:1]}")
    p99 = [f for f in _comparisons(lat, ["a", "b"]) if f["metric"] == "lat_p99_us"]
    check(p99 and p99[0]["explained_by_stalls"] == 0, f"the p99's findings are not touched: {p99}")
    c = cell_with(duration_s=0.8, lat_p99_us=90.0, lat_p999_us=3500.0, stalls_max_us=3900.0,
                  stalls_total_us=790.0)
    check(not p999_masked(c), "under 0.1 % of the window: not the p99.9's")
    c = cell_with(duration_s=0.8, lat_p99_us=90.0, lat_p999_us=20000.0, stalls_max_us=3900.0,
                  stalls_total_us=3900.0)
    check(not p999_masked(c), "a stall under 25 % of the p99.9")
    m = cell_with(duration_s=0.8, cheap_p99_us=90.0, cheap_p999_us=3500.0, lat_p999_us=9e4,
                  stalls_max_us=3900.0, stalls_total_us=3900.0)
    m.cost_every = 100
    check(p999_masked(m), "a mixed cell: its cheap messages' p99.9")
    stalls_that_follow_a_series()
    trust_units()

    # Kernel limits: a cell above 90 % of what a sysctl allows is unservable and says which;
    # with --tune-kernel it raises the sysctl for the cell, and puts it back.
    from echobench.models import KernelLimit, Model, Series
    from echobench.scenarios import Settings, build_cells
    from echobench import kernel
    forky = Model("forky", "f", "processes", None, False, 0, False,
                  [KernelLimit("kernel.pid_max", 1, "a process per connection", 1000, 1000)])
    settings = Settings.resolve("tiny", connections=[900, 901])
    cells = build_cells(settings, [Series("forky", forky)], ["connections"])
    got = {c.connections: (c.status, c.reason) for c in cells}
    check(got[900][0] == "pending" and got[901][0] == "unservable" and
          "limited by kernel.pid_max = 1000 (a process per connection" in got[901][1],
          f"kernel.pid_max stops a cell over 90 % of it: {got}")
    cells = build_cells(settings, [Series("forky", forky)], ["connections"], tune_kernel=True)
    got = {c.connections: (c.status, c.kernel_tuning) for c in cells}
    check(got[901] == ("pending", "kernel.pid_max=1002"),
          f"--tune-kernel: the cell raises kernel.pid_max to what it needs: {got}")
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "kernel"))
        with open(os.path.join(tmp, "kernel", "pid_max"), "w") as f:
            f.write("1000\n")
        os.environ["ECHOBENCH_PROC_SYS"] = tmp
        try:
            with kernel.raised([("kernel.pid_max", 1002)]) as record:
                check(kernel.read_sysctl("kernel.pid_max") == 1002, "raised for the cell")
                check(record == ["kernel.pid_max 1000 -> 1002"], f"and recorded: {record}")
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        check(kernel.read_sysctl("kernel.pid_max") == 1000, "restored, also on Ctrl-C")
        del os.environ["ECHOBENCH_PROC_SYS"]
    real_euid = os.geteuid
    try:
        os.geteuid = lambda: 1000
        check("root" in (kernel.can_tune() or ""), "--tune-kernel needs root")
    finally:
        os.geteuid = real_euid

    # Variants: a label, a model that exists, options passed through.
    from echobench.models import parse_variant
    models = {"epoll": Model("epoll", "e", "event-loop", "reactors", False, 0, True),
              "pool": Model("pool", "p", "threads", "workers", True, 0, False)}
    v = parse_variant("epoll2=epoll --threads 2", models, {"epoll"})
    check((v.name, v.model.name, v.options, v.given_threads()) ==
          ("epoll2", "epoll", ["--threads", "2"], 2), f"a variant: {v}")
    v = parse_variant("heavy=epoll --msg-size 128 --work-us 5", models, set())
    check(v.options == ["--msg-size", "128", "--work-us", "5"], f"options kept: {v.options}")
    for text, words in [("epoll", "LABEL=MODEL"), ("Bad=epoll", "series name"),
                        ("epoll=epoll --threads 2", "already"), ("x=nosuch", "not a model"),
                        ("x=", "no model"), ("x=epoll --port 1", "--port"),
                        ("x=epoll 'unclosed", "quotation")]:
        try:
            parse_variant(text, models, {"epoll"})
            check(False, f"variant {text!r} refused")
        except ValueError as e:
            check(words in str(e), f"variant {text!r}: {e}")
    # getopt_long would take abbreviations and short clusters: a variant may not.
    for text, words in [("x=epoll -mthread", "--model is the bench's"),
                        ("x=epoll --mod thread", "'--mod' is not an option a variant may set"),
                        ("x=epoll -p5000", "--port is the bench's"),
                        ("x=epoll --port=1", "--port is the bench's"),
                        ("h=epoll --work 5 --msg 128", "'--work'"),
                        ("p=pool --thr 2", "'--thr'"),
                        ("x=epoll --list", "'--list'"), ("x=epoll -tb 2", "-tb"),
                        ("x=epoll threads", "'threads' is not an option"),
                        ("x=epoll --threads", "--threads needs a value"),
                        ("x=epoll --msg-size --work-us 5", "--msg-size needs a value"),
                        ("x=epoll --threads=", "needs a value")]:
        try:
            v = parse_variant(text, models, set())
            check(False, f"variant {text!r} refused, not {v.options}")
        except ValueError as e:
            check(words in str(e) and "\n" not in str(e), f"variant {text!r}: {e}")
    v = parse_variant("x=pool -t2 -b 64 --work-us=5 --msg-size 128 --max-fds=99", models, set())
    check(v.options == ["--threads", "2", "--backlog", "64", "--work-us", "5", "--msg-size",
                        "128", "--max-fds", "99"] and v.given_threads() == 2 and
          v.sets_option("--work-us") and v.sets_option("--msg-size") and
          not v.sets_option("--sleep-us"), f"options normalised to --long VALUE: {v.options}")
    v = parse_variant("y=pool -t 3", models, set())
    check(v.given_threads() == 3, f"-t 3: {v.given_threads()}")
    pool8 = parse_variant("pool8=pool --threads 8", models, set())
    cells = build_cells(Settings.resolve("tiny", connections=[8, 9]), [pool8], ["connections"])
    got = {c.connections: (c.status, c.threads, c.server_model, c.server_options) for c in cells}
    check(got[8] == ("pending", None, "pool", "--threads 8") and got[9][0] == "unservable",
          f"a variant's --threads bounds its pool and is not overridden: {got}")

    # A variant that fixes an option a cell sets itself (the work scenario's --work-us) is left
    # out of that cell, saying why, instead of serving another cell under the cell's name.
    heavy = parse_variant("heavy=epoll --msg-size 128 --work-us=5", models, set())
    cells = build_cells(Settings.resolve("tiny"), [heavy], ["connections", "work"])
    work = [c for c in cells if c.scenario == "work"]
    check(work and all(c.status == "unservable" and "--work-us" in c.reason and
                       "--msg-size" in c.reason for c in work),
          f"a variant's --work-us is not served as the cell's: {[(c.setting(), c.status, c.reason) for c in work]}")
    check(all(c.status == "pending" for c in cells if c.scenario == "connections"),
          "the variant's options apply where the cell sets none of them")
    sleepy = parse_variant("sleepy=epoll --sleep-us 7", models, set())
    got = {c.setting(): c.status for c in build_cells(Settings.resolve("tiny"), [sleepy],
                                                      ["work"])}
    check(all(v == "unservable" for v in got.values()),
          f"every work cell sets --sleep-us (0 or its own): {got}")
    from echobench.runner import server_args
    plain = [c for c in build_cells(Settings.resolve("tiny"), [pool8], ["work"])
             if c.status == "pending"]
    check(plain and "--work-us" in server_args(plain[0], pool8),
          "a variant that fixes no cost option still gets the cell's costs")

    # Findings: every comparison, with --baseline against it; tiny or single: indicative.
    from echobench.findings import comparisons
    cells = []
    for model, base in (("a", 100.0), ("b", 200.0), ("c", 101.0)):
        for rep in range(5):
            c = Cell("connections", model, 4, repeat=rep)
            c.status = "ok"
            c.result = {"requests_per_sec": base + rep, "server_cpu_us_per_request": 10.0 + rep}
            cells.append(c)
    found = comparisons(cells, ["a", "b", "c"], baseline="a")
    pairs = {(f["metric"], f["a"], f["b"]): f for f in found}
    check(set(pairs) == {(m, "a", x) for m in ("requests_per_sec",
                                                "server_cpu_us_per_request") for x in "bc"},
          f"--baseline a: every series against a, every metric: {sorted(pairs)}")
    f = pairs[("requests_per_sec", "a", "b")]
    check(f["significant"] and f["ratio"] > 1.9 and f["ci_low"] > 1 and not f["indicative"],
          f"b is twice a: significant: {f}")
    f = pairs[("requests_per_sec", "a", "c")]
    check(not f["significant"], f"c and a overlap: not significant: {f}")
    check(all(comparisons(cells, ["a", "b"], indicative=True)[i]["indicative"]
              for i in range(1)), "tiny profile: indicative")
    found = comparisons(cells, ["a", "b", "c"])
    check({(f["a"], f["b"]) for f in found if f["metric"] == "requests_per_sec"} ==
          {("b", "c"), ("b", "a")}, f"no baseline: the best against the runner-up and the "
                                     f"last: {[(f['a'], f['b']) for f in found]}")


def latency_cells(p99s_by_model, rate=20000.0, achieved=1.0):
    """Latency cells at one offered rate: {model: [p99 of each repeat]}."""
    from echobench.scenarios import Cell
    cells = []
    for model, p99s in p99s_by_model.items():
        for rep, v in enumerate(p99s):
            c = Cell("latency", model, 16, rate=rate, repeat=rep)
            c.status, c.result = "ok", {"lat_p99_us": v, "lat_p999_us": v * 2,
                                        "achieved_ratio": achieved, "requests": 1000}
            cells.append(c)
    return cells


def trust_units():
    """The knees, zeros, non-finite values and baseline gaps: what the report may say."""
    from echobench.findings import baseline_gaps, threshold_comparisons, write_findings
    from echobench.report import findings, knee, knee_sentence, summary_table
    from echobench.results import Aggregate, metric_value, values_of
    from echobench.scenarios import Cell
    from echobench.stats import median_interval, ratio_interval

    # Knee: under or over the threshold only when the whole interval is; else indistinguishable.
    cells = latency_cells({"under": [700, 800, 900, 850, 750, 820],
                           "straddle": [700, 900, 950, 1100, 1200, 980],
                           "over": [1100, 1200, 1300, 1250, 1150, 1400]})
    cells += latency_cells({"under": [600] * 6, "straddle": [600] * 6, "over": [600] * 6},
                           rate=10000.0)
    k = {m: knee(cells, m, 1000.0) for m in ("under", "straddle", "over")}
    check(k == {"under": (20000.0, None, None),
                "straddle": (10000.0, 20000.0, "indistinguishable"),
                "over": (10000.0, 20000.0, "over")},
          f"a median under the threshold is not 'under' when the interval straddles it: {k}")
    text = knee_sentence(cells, ["under", "straddle", "over"], 1000.0)
    check("straddle up to 10,000 (indistinguishable from it at 20,000)" in text and
          "over up to 10,000 (over it at 20,000)" in text and
          "every rate up to 20,000 requests/s for under" in text and
          "[indicative]" not in text, f"the knee sentence: {text}")
    table = "\n".join(summary_table(cells, ["under", "straddle"], 1000.0))
    check("| 10,000 (? at 20,000) |" in table and "| 20,000 |" in table,
          f"the summary's max rate says when the next rate is unclear: {table}")
    found = threshold_comparisons(cells, ["under", "straddle", "over"], 1000.0)
    with tempfile.TemporaryDirectory() as tmp:
        write_findings(tmp, found)
        with open(os.path.join(tmp, "findings.json")) as f:
            saved = json.load(f)
    s20 = next(f for f in saved if f["b"] == "straddle" and f["setting"] == "rate=20000")
    check(s20["a"] == "threshold" and s20["threshold_us"] == 1000.0 and
          not s20["significant"] and s20["ci_low"] < 1 < s20["ci_high"] and
          s20["verdict"] == "indistinguishable" and s20["median_b"] == 965.0 and
          s20["n_b"] == 6 and s20["n_a"] is None,
          f"findings.json has the knee comparisons, in the comparisons' shape: {s20}")
    o20 = next(f for f in saved if f["b"] == "over" and f["setting"] == "rate=20000")
    check(o20["significant"] and o20["ci_low"] > 1 and o20["verdict"] == "over",
          f"over: the interval excludes the threshold: {o20}")
    one = latency_cells({"single": [500]})
    check(knee_sentence(one, ["single"], 1000.0).endswith("for single [indicative]."),
          f"one repeat: indicative: {knee_sentence(one, ['single'], 1000.0)}")
    check("[indicative]" in knee_sentence(cells, ["under"], 1000.0, indicative=True),
          "the tiny profile: indicative")
    slow = latency_cells({"lagging": [100] * 6}, achieved=0.9)
    check(knee(slow, "lagging", 1000.0) == (None, 20000.0, "rate not achieved"),
          f"a rate not achieved fails whatever the p99: {knee(slow, 'lagging', 1000.0)}")

    # A cell that completed no request: no latency, no CPU per request; its throughput is 0.
    zero = Cell("connections", "stuck", 4)
    zero.status, zero.result = "errors", {"requests": 0, "requests_per_sec": 0.0,
                                          "lat_p99_us": 0.0, "server_cpu_us_per_request": 0.0}
    check((metric_value(zero, "requests_per_sec"), metric_value(zero, "lat_p99_us"),
           metric_value(zero, "server_cpu_us_per_request")) == (0.0, None, None),
          "zero requests: throughput 0, no latency or CPU per request")
    # One repeat of zero throughput: the exact test's verdict, an open-ended interval.
    a = [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]
    r = ratio_interval(a, [0.0, 200.0, 201.0, 202.0, 203.0, 204.0])
    check(r.low == 0 and 1.9 < r.ratio < 2.1 and 2 < r.high < 2.1 and not r.significant,
          f"one zero among six against six: U = 6 > 5, the exact test does not reject: {r}")
    r = ratio_interval(a + [106.0, 107.0], [0.0] + [200.0 + i for i in range(7)])
    check(r.low is not None and r.low > 1 and r.significant and 1.9 < r.ratio < 2.1,
          f"one zero among eight against eight: U = 8 <= 13, significantly higher: {r}")
    r = ratio_interval(a, [0.0, 0.0, 0.0, 200.0, 201.0, 202.0])
    check(r.low == 0 and r.high is not None and r.high > 1 and not r.significant and
          "open-ended" in r.note, f"half zeros: open-ended below, not significant: {r}")
    r = ratio_interval([0.0] * 6, a)
    check(r.high == float("inf") and r.significant and r.low > 1,
          f"zeros against values: open-ended above, significant: {r}")
    r = ratio_interval(a, [0.0] * 6)
    check(r.significant and r.high == 0 and r.ratio == 0, f"all zero: significantly lower: {r}")
    cells = []
    for model, vals in (("base", a), ("other", [0.0, 0.0, 0.0, 200.0, 201.0, 202.0])):
        for rep, v in enumerate(vals):
            c = Cell("churn", model, 4, reconnect=1, repeat=rep)
            c.status, c.result = "ok", {"requests_per_sec": v, "requests": int(v)}
            cells.append(c)
    text = " ".join(findings(cells, ["base", "other"], 1000.0, baseline="base"))
    check("0.00-" in text and "indistinguishable" in text and "open-ended" in text,
          f"the sentence gives the open-ended interval: {text}")

    # NaN and inf are no measurement: left out, and counted.
    nan, inf = float("nan"), float("inf")
    iv = median_interval([1.0, 2.0, nan, inf, 3.0])
    check((iv.median, iv.n, iv.non_finite) == (2.0, 3, 2), f"non-finite values dropped: {iv}")
    r = ratio_interval([10, 11, 12, 13, nan], [20, 22, 24, 26, -inf])
    check(r.significant and r.n_a == 4 and r.n_b == 4 and r.non_finite == 2,
          f"the ratio drops them too: {r}")
    agg = Aggregate([1.0, nan, 2.0])
    check((agg.n, agg.non_finite, agg.median) == (2, 1, 1.5), f"the aggregate counts them: "
          f"{agg.__dict__}")
    c = Cell("connections", "x", 4)
    c.status, c.result = "ok", {"requests_per_sec": nan, "requests": 5}
    check(values_of([c], "requests_per_sec") == {}, "values_of leaves NaN out")
    try:
        median_interval([nan])
        check(False, "no finite value: ValueError")
    except ValueError:
        pass

    # --baseline: the settings at which the baseline has no measurement are said, with why.
    cells = []
    for model in ("epoll", "thread"):
        for conns in (1, 128):
            for rep in range(3):
                c = Cell("connections", model, conns, repeat=rep)
                c.status, c.result = "ok", {"requests_per_sec": 100.0 + rep}
                if model == "epoll" and conns == 128:
                    c.status, c.reason, c.result = "unservable", "holds at most 64", {}
                cells.append(c)
    gaps = baseline_gaps(cells, ["epoll", "thread"], "epoll")
    check(len(gaps) == 1 and "epoll has no undisturbed measurement" in gaps[0] and
          "c=128" in gaps[0] and "holds at most 64" in gaps[0] and "thread" in gaps[0],
          f"a setting without the baseline is named, with why: {gaps}")
    check(any("c=128" in t for t in findings(cells, ["epoll", "thread"], 1000.0,
                                             baseline="epoll")),
          "the report's findings say so")
    check(baseline_gaps(cells, ["epoll", "thread"], None) == [], "no baseline, no gaps")
    for c in cells:
        if c.model == "epoll" and c.connections == 128:
            c.status, c.result, c.disturbed = "ok", {"requests_per_sec": 5.0}, True
    gaps = baseline_gaps(cells, ["epoll", "thread"], "epoll")
    check(gaps and "disturbed" in gaps[0], f"every attempt disturbed: {gaps}")

    # The docs say what the code does.
    with open(os.path.join(ROOT, "docs", "methodology.md")) as f:
        doc = f.read()
    check("p99.9" in doc.split("## Disturbed cells")[1].split("##")[0],
          "methodology: the p99.9 rule of disturbed cells")
    check("conservative" in doc, "methodology: with ties the interval is conservative")
    with open(os.path.join(ROOT, "docs", "results.md")) as f:
        doc = f.read()
    check('"threshold"' in doc and "threshold_us" in doc and "verdict" in doc,
          "results.md documents the knee comparisons of findings.json")


def stalls_that_follow_a_series():
    """Stalls in most first attempts of one series, and in few of the others' at the same
    setting, come with that series: its first attempts are used, its re-measures superseded."""
    from echobench.results import keep_stalls_that_follow_series, summarize
    from echobench.scenarios import Cell

    def run(disturbed_repeats):
        """Six repeats of three series at c=128; disturbed_repeats[model]: the repeats whose
        first attempt was disturbed, each then measured again (undisturbed) once."""
        cells = []
        for model in ("thread", "epoll", "uring"):
            for rep in range(6):
                c = Cell("connections", model, 128, repeat=rep)
                c.status, c.result = "ok", {"requests_per_sec": 100.0 + rep}
                c.disturbed = rep in disturbed_repeats.get(model, ())
                cells.append(c)
                if c.disturbed:
                    again = c.again()
                    again.status, again.result = "ok", {"requests_per_sec": 500.0}
                    cells.append(again)
        return cells

    def thread_entry(cells):
        return [e for e in summarize(cells) if e["model"] == "thread"
                and e["metric"] == "requests_per_sec"][0]

    cells = run({"thread": range(5), "epoll": [2]})
    check(keep_stalls_that_follow_series(cells) == 1, "one series' stalls follow it")
    e = thread_entry(cells)
    check(e["n"] == 6 and e["median"] == 102.5 and e["discarded"] == 0,
          f"its six first attempts are used, its re-measures are not: {e}")
    check(all(c.result.get("superseded") for c in cells if c.model == "thread" and c.attempt),
          "its re-measures are marked superseded")
    check(not any(c.result.get("superseded") or c.result.get("stalls_follow_series")
                  for c in cells if c.model == "epoll"),
          "a series with one disturbed repeat is left as it is")
    cells = run({"thread": range(5), "epoll": range(3), "uring": range(1)})
    check(keep_stalls_that_follow_series(cells) == 0,
          "stalls in 4 of 12 first attempts of the others: the platform's, not the series'")
    e = thread_entry(cells)
    check(e["n"] == 6 and e["median"] == 500.0 and e["discarded"] == 5,
          f"platform stalls: disturbed attempts left out, re-measures used: {e}")
    cells = run({"thread": range(2)})
    check(keep_stalls_that_follow_series(cells) == 0, "2 of 6 disturbed: not most")


def case_checker(build):
    """Checking the checker: a model against itself (A/A) gives no significant finding beyond
    the test's false-positive rate; against itself with 5 us of work per message (A/B) it is
    found to take significantly more CPU per request. Then variants, --baseline, --repeat
    auto."""
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        # --keep-disturbed: the machine the tests run on is shared, often loaded; discarding
        # would leave too little here (the disturbed case checks discarding).
        # 4 and 16 connections: at one, a loaded machine's wake-ups cost more than the work.
        # 20 us of work, not the documented benchmark's 5: on a loaded machine the cost of
        # wake-ups per request moved epoll's CPU per request at 4 connections from 12 to 18 us
        # while `heavy`, busier, batched more (5 us: found 0.95x, not significant, once).
        r = bench(build, run, "--models", "epoll", "--scenarios", "connections",
                  "--connections", "4,16", "--variant", "twin=epoll", "--variant",
                  "heavy=epoll --msg-size 128 --work-us 20", "--baseline", "epoll",
                  "--repeat", "5", "--keep-disturbed",
                  "--seed", "11")
        check(r.returncode == 0, f"A/A and A/B run exits 0: {r.stderr[-500:]}")
        with open(os.path.join(run, "findings.json")) as f:
            found = json.load(f)
        keys = {"scenario", "setting", "metric", "a", "b", "ratio", "ci_low", "ci_high",
                "significant"}
        check(found and all(keys <= set(f) for f in found), f"findings.json: {found[:1]}")
        check(all(f["a"] == "epoll" for f in found), "--baseline epoll: every finding against it")
        check(all(f["indicative"] for f in found), "the tiny profile's findings are indicative")
        twin = [f for f in found if f["b"] == "twin"]
        false = [f for f in twin if f["significant"]]
        check(len(twin) >= 4 and len(false) <= 1,
              f"A/A: at most one of {len(twin)} comparisons significant (~3 % each): {false}")
        heavy = [f for f in found if f["b"] == "heavy" and
                 f["metric"] == "server_cpu_us_per_request"]
        check(heavy and all(f["significant"] and f["ratio"] > 1 for f in heavy),
              f"A/B: 20 us of work per message is significantly more CPU per request: {heavy}")
        for f in heavy:
            print(f"A/B {f['setting']}: CPU per request heavy/epoll {f['ratio']:.2f} "
                  f"({f['ci_low']:.2f}-{f['ci_high']:.2f})")
        print(f"A/A: {len(false)} of {len(twin)} significant")
        with open(os.path.join(run, "results.csv")) as f:
            rows = list(csv.DictReader(f))
        heavy_rows = [x for x in rows if x["model"] == "heavy"]
        check(heavy_rows and all(x["server_model"] == "epoll" and
                                 x["server_options"] == "--msg-size 128 --work-us 20"
                                 for x in heavy_rows),
              f"a variant's model and options are in results.csv: {heavy_rows[:1]}")
        with open(os.path.join(run, "report.md")) as f:
            report = f.read()
        check("heavy / epoll" in report and "significantly higher" in report and
              "Indicative only" in report, "the report states the findings and says indicative")
        check("heavy=epoll --msg-size 128 --work-us 20" in report, "the report names the variant")
        check("'throughput.heavy.dat'" in open(os.path.join(run, "plots", "throughput.gp")).read(),
              "the variant is a series of the plots")

    # Variants and baselines the bench refuses, before the run starts.
    for args, words in [(["--variant", "bad=epoll --bogus"], "--bogus"),
                        (["--variant", "epoll=epoll"], "already"),
                        (["--variant", "x=nosuch"], "not a model"),
                        (["--variant", "X=epoll"], "series name"),
                        (["--baseline", "nosuch"], "--baseline")]:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.monotonic()
            r = bench(build, os.path.join(tmp, "run"), "--models", "epoll", "--scenarios",
                      "churn", *args, timeout=60)
            took = time.monotonic() - started
            lines = r.stderr.strip().splitlines()
            check(r.returncode == 2 and len(lines) == 1 and words in r.stderr and took < 15
                  and not os.path.exists(os.path.join(tmp, "run")),
                  f"bench {' '.join(args)}: exit 2 with one line naming {words}, before the run "
                  f"(got {r.returncode}: {lines})")

    # --repeat auto: at least 6 repeats, then more while the interval is wider than +-5 %,
    # at most 9.
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        r = bench(build, run, "--models", "epoll", "--scenarios", "churn", "--repeat", "auto",
                  "--keep-disturbed")
        check(r.returncode == 0, f"--repeat auto exits 0: {r.stderr[-300:]}")
        with open(os.path.join(run, "results.json")) as f:
            data = json.load(f)
        reps = sorted({c["repeat"] for c in data["cells"]})
        entry = [e for e in data["summary"] if e["metric"] == "requests_per_sec"][0]
        settled = entry["ci_low"] >= 0.95 * entry["median"] and \
            entry["ci_high"] <= 1.05 * entry["median"]
        check(6 <= len(reps) <= 9 and (len(reps) == 9 or settled),
              f"--repeat auto: 6 to 9 repeats, fewer than 9 only when within +-5 %: "
              f"{len(reps)} repeats, {entry}")
        check(data["meta"]["repeat"] == "auto", "results.json says auto")
    check(not leftover_processes(), "no server left running")


def case_kernel(build):
    """A kernel limit: a cell above it is unservable with the limit's name and value; with
    --tune-kernel the sysctl is raised for the cell, recorded, and restored. The limit and the
    sysctl are fakes here (a model list that says fork's pid_max is 3, and a folder standing for
    /proc/sys), so that the machine's own are never touched."""
    real = os.path.join(build, "servers", "echo-server")
    doc = json.loads(subprocess.run([real, "--list", "--json"], capture_output=True,
                                    text=True).stdout)
    for m in doc["models"]:
        if m["name"] == "fork":
            m["kernel_limits"] = [{"sysctl": "kernel.pid_max", "per_connection": 1,
                                   "why": "a process per connection", "value": 3,
                                   "max_connections": 3}]
    with tempfile.TemporaryDirectory() as fake:
        fake_build(fake, build, f"case \"$*\" in *--list*) cat <<'EOF'\n{json.dumps(doc)}\nEOF\n"
                                f"exit 0;; esac\nexec {real} \"$@\"")
        sysdir = os.path.join(fake, "sys")
        os.makedirs(os.path.join(sysdir, "kernel"))
        pid_max = os.path.join(sysdir, "kernel", "pid_max")
        with open(pid_max, "w") as f:
            f.write("3\n")
        for tune in (False, True):
            run = os.path.join(fake, f"run{int(tune)}")
            env = dict(os.environ, ECHOBENCH_PROC_SYS=sysdir)
            r = subprocess.run([os.path.join(ROOT, "scripts", "bench"), "--profile", "tiny",
                                "--no-build", "--build-dir", fake, "--out", run,
                                "--models", "fork", "--scenarios", "connections",
                                "--keep-disturbed"] + (["--tune-kernel"] if tune else []),
                               capture_output=True, text=True, timeout=120, env=env)
            check(r.returncode == 0, f"tune={tune}: the bench exits 0: {r.stderr[-400:]}")
            with open(os.path.join(run, "results.csv")) as f:
                rows = {x["connections"]: x for x in csv.DictReader(f)}
            with open(os.path.join(run, "report.md")) as f:
                report = f.read()
            if not tune:
                check(rows["1"]["status"] == "ok" and rows["4"]["status"] == "unservable" and
                      "limited by kernel.pid_max = 3 (a process per connection" in
                      rows["4"]["reason"], f"pid_max stops the cell above it: {rows['4']}")
            else:
                # Measured (ok, or errors when a loaded machine starves a 0.3 s window).
                check(rows["4"]["status"] in ("ok", "errors") and rows["4"]["kernel_tuning"] ==
                      "kernel.pid_max=5", f"--tune-kernel runs the cell: {rows['4']}")
                with open(os.path.join(run, "results.json")) as f:
                    cells = json.load(f)["cells"]
                done = [c["result"].get("kernel_tuning") for c in cells if c["connections"] == 4]
                check(done == ["kernel.pid_max 3 -> 5 (restored after the cell)"],
                      f"results.json records what was done: {done}")
                check("--tune-kernel: connections fork c=4" in report,
                      "the report says which cell ran with a raised sysctl")
                with open(pid_max) as f:
                    check(f.read().strip() == "3", "the sysctl is restored after the cell")
    check(not leftover_processes(), "no server left running")


def case_peers(build):
    """--peers: the peers that can run here are series of their own in every scenario, with
    CPU per request and memory per connection; one that cannot is skipped with one line giving
    the apt-get command; a peer without per-message costs is left out of the work cells, and
    the report says so; a peer may be the baseline. SKIP (77) when no peer can run here."""
    from echobench import peers
    names = peers.known()
    usable = [n for n in names if peers.load(build, n)[0]]
    if not usable:
        print("SKIP: no peer can run in this build: "
              + "; ".join(f"{n}: {peers.load(build, n)[1]}" for n in names))
        sys.exit(77)
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        started = time.monotonic()
        r = bench(build, run, "--models", "epoll", "--peers", ",".join(names), "--scenarios",
                  "connections,work,idle", "--baseline", usable[0], "--keep-disturbed",
                  "--seed", "3", *([] if has_mixed(build) else ["--mixed-every", "0"]))
        print(f"bench --peers {','.join(names)} (usable: {','.join(usable)}): "
              f"{time.monotonic() - started:.1f} s")
        check(r.returncode == 0, f"the bench with peers exits 0: {r.stderr[-500:]}")
        for n in set(names) - set(usable):
            line = [x for x in r.stderr.splitlines() if f"peer {n} skipped" in x]
            check(line and ("apt-get install -y" in line[0] or "not built" in line[0]),
                  f"a peer that cannot run is skipped with one line saying how: {line}")
        report = check_run_folder(run, expect_complete=False)
        with open(os.path.join(run, "results.csv")) as f:
            rows = [x for x in csv.DictReader(f) if x["attempt"] == "0"]
        with open(os.path.join(run, "results.json")) as f:
            meta = json.load(f)["meta"]
        check(meta["models"] == ["epoll"] + usable and
              [p["name"] for p in meta["peers"]] == usable,
              f"the peers are series after the models: {meta['models']} {meta.get('peers')}")
        for n in usable:
            costs = peers.load(build, n)[0].supports_costs
            mine = [x for x in rows if x["model"] == n]
            for scen in ("connections", "work", "idle"):
                got = [x for x in mine if x["scenario"] == scen]
                if scen == "work" and not costs:
                    check(got and all(x["status"] == "unservable" and "supports_costs false"
                                      in x["reason"] for x in got),
                          f"{n} takes no costs: its work cells are unservable, saying why: {got}")
                    check(f"{n} takes no per-message costs" in report,
                          f"the report says {n} is left out of the work cells")
                    continue
                check(got and all(x["status"] in ("ok", "errors") for x in got),
                      f"{n} is measured in the {scen} scenario: {[x['status'] for x in got]}")
                if scen == "idle":
                    check(all(float(x["memory_per_connection_bytes"] or 0) > 0 for x in got),
                          f"{n}: memory per idle connection: {got[:1]}")
                else:
                    check(all(float(x["server_cpu_us_per_request"] or 0) > 0 for x in got),
                          f"{n}: server CPU per request in {scen}")
            check(f"'throughput.{n}.dat'" in open(os.path.join(run, "plots",
                                                                "throughput.gp")).read(),
                  f"{n} is a line of the throughput plot")
            check(f"`echo-{n}`" in report, f"the report names the peer {n}")
        with open(os.path.join(run, "findings.json")) as f:
            found = json.load(f)
        check(found and all(f["a"] == usable[0] for f in found),
              f"--baseline {usable[0]}: a peer may be the baseline: {found[:1]}")

        # A peer missing from the build (as with a toolchain not found at configure time):
        # skipped with its one line, the rest runs.
        fake = os.path.join(tmp, "fake")
        fake_build(fake, build, f'exec {os.path.join(build, "servers", "echo-server")} "$@"')
        os.makedirs(os.path.join(fake, "peers"))
        os.symlink(peers.executable(build, usable[0]), peers.executable(fake, usable[0]))
        missing = next(n for n in names if n != usable[0])
        r = bench(fake, os.path.join(tmp, "run2"), "--models", "epoll", "--peers",
                  f"{missing},{usable[0]}", "--scenarios", "churn", "--keep-disturbed")
        lines = [x for x in r.stderr.splitlines() if "skipped" in x]
        check(r.returncode == 0 and len(lines) == 1 and f"peer {missing} skipped" in lines[0]
              and ("apt-get install -y " + peers.TOOLCHAINS[missing][0] in lines[0]
                   or "not built" in lines[0]),
              f"a peer not built: one line, and the run goes on: {r.returncode} {lines}")
        with open(os.path.join(tmp, "run2", "report.md")) as f:
            check(f"Peer {missing} was asked for (--peers) and skipped" in f.read(),
                  "the report says which peer was skipped, and why")
    check(not leftover_processes(), "no server left running")


CLASSES_LOADGEN = """#!/usr/bin/env python3
# The real loadgen without --cost-every, its report given the "classes" of loadgen --cost-every
# (the whole latency object for each class): for the bench's plumbing, before loadgen has it.
import json, subprocess, sys
args = sys.argv[1:]
if "--help" in args:
    subprocess.run([{real!r}, "--help"])
    print("      --cost-every N   (this test's wrapper: classes from the whole latency)")
    sys.exit(0)
every = 0
if "--cost-every" in args:
    i = args.index("--cost-every")
    every = int(args[i + 1])
    del args[i:i + 2]
r = subprocess.run([{real!r}] + args)
if every and "--json" in args:
    out = args[args.index("--json") + 1]
    d = json.load(open(out))
    lat = d["latency_us"]
    d["classes"] = {{"cost_every": every,
                    "cheap": dict(lat, count=lat["count"] - lat["count"] // every),
                    "costly": dict(lat, count=lat["count"] // every)}}
    json.dump(d, open(out, "w"))
sys.exit(r.returncode)
"""


def case_mixed(build):
    """The work scenario's mixed cells: --cost-every to server and load generator, the cheap
    and costly messages' figures in results.csv, the summary and the findings, the report's
    table and the plot; a peer without costs is left out of them, saying so. With a load
    generator that has --cost-every, the event loop's cheap p99 must show the head-of-line
    blocking the thread per connection does not have; before it has, a wrapper stands in."""
    loadgen = os.path.join(build, "loadgen", "loadgen")
    server = os.path.join(build, "servers", "echo-server")
    if "--cost-every" not in subprocess.run([server, "--help"], capture_output=True,
                                            text=True).stdout:
        print("SKIP: this echo-server has no --cost-every")
        sys.exit(77)
    real = has_mixed(build)
    from echobench import peers
    node = peers.load(build, "node")[0]
    with tempfile.TemporaryDirectory() as tmp:
        use = build
        if not real:
            use = os.path.join(tmp, "fake")
            os.makedirs(os.path.join(use, "loadgen"))
            os.symlink(os.path.join(build, "servers"), os.path.join(use, "servers"))
            os.symlink(os.path.join(build, "peers"), os.path.join(use, "peers"))
            path = os.path.join(use, "loadgen", "loadgen")
            with open(path, "w") as f:
                f.write(CLASSES_LOADGEN.format(real=loadgen))
            os.chmod(path, 0o755)
        run = os.path.join(tmp, "run")
        # 10 ms waits (the tiny profile has 2 ms): on a loaded machine the thread model's cheap
        # p99 reached 3 ms too, so the test needs a cost the loop's tail cannot hide under.
        r = bench(use, run, "--models", "epoll,thread", "--scenarios", "work",
                  "--mixed-sleep-us", "10000", "--keep-disturbed", "--seed", "5",
                  *(["--peers", "node"] if node else []))
        check(r.returncode == 0, f"the bench with mixed cells exits 0: {r.stderr[-500:]}")
        print(f"(load generator: {'real' if real else 'a wrapper adding classes'})")
        with open(os.path.join(run, "results.csv")) as f:
            rows = [x for x in csv.DictReader(f) if x["attempt"] == "0"]
        mixed = [x for x in rows if x["cost_every"] not in ("", "0")]
        want = {("epoll", "sleep"), ("epoll", "work"), ("thread", "sleep"), ("thread", "work")}
        got = {(x["model"], "sleep" if x["sleep_us"] != "0" else "work") for x in mixed
               if x["model"] != "node"}
        check(got == want, f"a mixed sleep and a mixed work cell per series: {got}")
        for x in mixed:
            if x["model"] == "node":
                check(x["status"] == "unservable" and "supports_costs false" in x["reason"],
                      f"node takes no costs: left out of the mixed cells, saying why: {x}")
                continue
            check(x["status"] in ("ok", "errors") and x["cost_every"] == "10" and
                  float(x["cheap_p99_us"] or 0) > 0 and int(x["costly_count"] or 0) > 0 and
                  int(x["cheap_count"] or 0) > int(x["costly_count"]),
                  f"a mixed cell has its cheap and costly figures: {x}")
        for x in rows:
            if x["scenario"] == "work" and x["cost_every"] in ("", "0") and x["status"] == "ok":
                check(x["cheap_p99_us"] == "", f"a cell that is not mixed has no classes: {x}")
        with open(os.path.join(run, "results.json")) as f:
            data = json.load(f)
        check(any(e["metric"] == "cheap_p99_us" and e["setting"].startswith("mixed every=10")
                  for e in data["summary"]), "the summary has the cheap messages' p99")
        check(data["meta"]["settings"]["mixed_every"] == 10, "the settings record mixed_every")
        with open(os.path.join(run, "findings.json")) as f:
            found = json.load(f)
        check(any(f["metric"] == "cheap_p99_us" for f in found),
              "the findings compare the cheap messages' p99")
        with open(os.path.join(run, "report.md")) as f:
            report = f.read()
        check("## Mixed work: what the cheap messages' p99 becomes" in report and
              "| epoll | sleep=10000us |" in report and "| thread | work=2000us |" in report,
              "the report has the mixed table, per series and cost")
        if node:
            check("- node, mixed every=10 sleep=10000us: not measured: node does not support"
                  in report, "the mixed table says node was left out, and why")
        png = os.path.join(run, "plots", "mixed_work.png")
        check(os.path.exists(png) and os.path.getsize(png) > 1000, "mixed_work.png drawn")
        check("(plots/mixed_work.png)" in report, "the report shows the mixed plot")
        if real:
            p99 = {x["model"]: float(x["cheap_p99_us"]) for x in mixed
                   if x["sleep_us"] != "0" and x["model"] != "node"}
            print(f"mixed sleep: cheap p99 epoll {p99['epoll']:,.0f} us, "
                  f"thread {p99['thread']:,.0f} us")
            check(p99["epoll"] > 5000 and p99["epoll"] > 2 * p99["thread"],
                  f"10 ms waits on the one loop hold the cheap messages up, threads not: {p99}")
    check(not leftover_processes(), "no server left running")


FAKE_LOADGEN = """#!/usr/bin/env python3
import json, os, subprocess, sys
REAL, COUNTER, MODE = {real!r}, {counter!r}, {mode!r}
args = sys.argv[1:]
r = subprocess.run([REAL] + args)
if "--json" in args:
    out = args[args.index("--json") + 1]
    n = int(open(COUNTER).read()) if os.path.exists(COUNTER) else 0
    open(COUNTER, "w").write(str(n + 1))
    if os.path.getsize(out):  # stalls of 30 % of the window, or none (whatever the machine did)
        d = json.load(open(out))
        stalled = MODE == "always" or n % 2 == 0
        d["stalls"] = {{"max_us": 40000.0 if stalled else 0.0, "count_over_1ms": 3 * stalled,
                        "total_us": d["duration_s"] * 1e6 * 0.3 * stalled, "threshold_us": 200}}
        json.dump(d, open(out, "w"))
sys.exit(r.returncode)
"""


def case_disturbed(build):
    """A measurement that platform stalls could explain is flagged, measured again (at most
    twice), every attempt kept; plots and findings use the undisturbed ones. The load generator
    here is the real one with stalls written into every other report (or every report)."""
    for mode in ("every other", "always"):
        with tempfile.TemporaryDirectory() as fake:
            os.makedirs(os.path.join(fake, "servers"))
            os.makedirs(os.path.join(fake, "loadgen"))
            os.symlink(os.path.join(build, "servers", "echo-server"),
                       os.path.join(fake, "servers", "echo-server"))
            path = os.path.join(fake, "loadgen", "loadgen")
            with open(path, "w") as f:
                f.write(FAKE_LOADGEN.format(real=os.path.join(build, "loadgen", "loadgen"),
                                            counter=os.path.join(fake, "count"), mode=mode))
            os.chmod(path, 0o755)
            run = os.path.join(fake, "run")
            r = bench(fake, run, "--models", "epoll", "--scenarios", "connections",
                      "--seed", "1")
            check(r.returncode == 0, f"{mode}: the bench exits 0: {r.stderr[-500:]}")
            with open(os.path.join(run, "results.csv")) as f:
                rows = list(csv.DictReader(f))
            by_cell = {}
            for x in rows:
                by_cell.setdefault(x["connections"], []).append(
                    (x["attempt"], x["disturbed"], x["status"]))
            if mode == "every other":
                check(all(v == [("0", "True", "ok"), ("1", "False", "ok")]
                          for v in by_cell.values()),
                      f"a disturbed attempt, then a clean one; both kept: {by_cell}")
            else:
                check(all(v == [("0", "True", "ok"), ("1", "True", "ok"), ("2", "True", "ok")]
                          for v in by_cell.values()),
                      f"at most 2 re-measurements, every attempt kept: {by_cell}")
            with open(os.path.join(run, "results.json")) as f:
                data = json.load(f)
            rps = [e for e in data["summary"] if e["metric"] == "requests_per_sec"]
            if mode == "every other":
                check(rps and all(e["n"] == 1 and e["discarded"] == 1 for e in rps),
                      f"the summary uses the clean attempt, counts the other: {rps}")
            else:
                check(not rps, f"nothing undisturbed: no summary entry: {rps}")
            with open(os.path.join(run, "report.md")) as f:
                report = f.read()
            check("disturbed" in report and "left out" in report,
                  f"{mode}: the report says how many were discarded")
            check("disturbed: stalls" in r.stdout, "the progress lines say why")
            if mode == "always":
                r = bench(fake, run + "2", "--models", "epoll", "--scenarios",
                          "connections,churn,size,work", "--connections", "1,2,4,8,16")
                check("this machine is busy" in r.stderr,
                      f"most of the first 20 disturbed: a warning: {r.stderr[-300:]}")
    check(not leftover_processes(), "no server left running")


def main():
    case, build = sys.argv[1], os.path.abspath(sys.argv[2])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    {"smoke": case_smoke, "interrupt": case_interrupt, "compare": case_compare,
     "cli": case_cli, "units": case_units, "stats": case_stats, "checker": case_checker,
     "disturbed": case_disturbed, "kernel": case_kernel, "peers": case_peers,
     "mixed": case_mixed}[case](build)
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print(f"PASS: bench {case}")


if __name__ == "__main__":
    main()
