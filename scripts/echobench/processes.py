"""Processes: starting and stopping servers, running the load generator, and watching a
server's process tree - the pieces every benchmark script shares.

A Server is started in a process group of its own, pinned if asked, and is always stopped -
SIGTERM, then SIGKILL for the whole group - when its `with` block ends, whatever happened inside.

Reading /proc costs CPU on whatever CPU the reader runs, so it is kept cheap: the tree is walked
through /proc/PID/task/TID/children (no scan of every process on the machine), and one status
file is read per process.
"""

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

LISTENING = re.compile(r"^listening on (.*):(\d+) model=(\S+) pid=(\d+)$")


class ServerError(Exception):
    """The server could not be started; `unavailable` is true for echo-server's exit status 3
    (the model cannot run on this machine)."""

    def __init__(self, message, unavailable=False):
        super().__init__(message)
        self.unavailable = unavailable


class Server:
    """A server process that prints echo-server's "listening on HOST:PORT ..." line."""

    def __init__(self, argv, cpus=None, start_timeout=10.0):
        self.argv = list(argv)
        if cpus:
            self.argv = ["taskset", "-c", cpus] + self.argv
        self.start_timeout = start_timeout
        self.proc = None
        self.port = None
        self.pid = None
        self.stderr_file = None
        self.exit_status = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        self.stderr_file = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.stderr_file,
                                     stdin=subprocess.DEVNULL, start_new_session=True, text=True)
        try:
            self._wait_listening()
        except BaseException:
            # Ctrl-C (or any error) before "listening on": __exit__ will not run, so nothing
            # else would stop the server (it has a session of its own, out of Ctrl-C's reach).
            self.stop()
            raise

    def _wait_listening(self):
        deadline = time.monotonic() + self.start_timeout
        line = ""
        os.set_blocking(self.proc.stdout.fileno(), False)
        while time.monotonic() < deadline:
            chunk = self.proc.stdout.readline()
            line += chunk or ""
            if line.endswith("\n"):
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        match = LISTENING.match(line.strip())
        if not match:
            status = self.proc.poll()
            self.stop()
            unavailable = status == 3
            raise ServerError(f"{' '.join(self.argv)} did not start: "
                              f"{self.stderr().strip() or line.strip() or 'no output'}",
                              unavailable)
        self.port = int(match.group(2))
        self.pid = int(match.group(4))

    def stderr(self):
        if not self.stderr_file:
            return ""
        self.stderr_file.seek(0)
        return self.stderr_file.read()

    def stop(self, timeout=12.0):
        """SIGTERM, wait; then SIGKILL the whole process group. Returns the exit status."""
        if self.proc is None:
            return self.exit_status
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers: children, a hung server
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.exit_status = self.proc.returncode
        self.proc.stdout.close()
        self.proc = None
        return self.exit_status


def run_loadgen(loadgen, port, args, timeout=300, host="127.0.0.1"):
    """Runs loadgen against host:port with extra arguments; returns (report dict or None,
    exit status, stderr text)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        cmd = [loadgen, "--host", host, "--port", str(port), "--json", out, "--quiet"] + args
        try:
            proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, -1, f"loadgen did not finish within {timeout} s"
        report = None
        if os.path.getsize(out) > 0:
            with open(out) as f:
                report = json.load(f)
        return report, proc.returncode, proc.stderr
    finally:
        os.unlink(out)


class KernelCounter(threading.Thread):
    """Counts, with `perf stat`, the system calls (tracepoint raw_syscalls:sys_enter) and context
    switches of a server's process tree - every process in it once `delay` has passed, so that
    children forked at set-up are included - for `duration` seconds. Counts nothing where perf is
    not usable. start() it, then read counts()."""

    EVENTS = ("raw_syscalls:sys_enter", "context-switches")

    def __init__(self, pid, delay, duration):
        super().__init__(daemon=True)
        self.pid, self.delay, self.duration = pid, delay, duration
        self.found = {}

    def run(self):
        time.sleep(self.delay)
        pids = ",".join(str(p) for p in tree_pids(self.pid))
        with tempfile.NamedTemporaryFile(mode="w+", suffix=".perf") as out:
            try:
                subprocess.run(["perf", "stat", "-x,", "-o", out.name, "-e", ",".join(self.EVENTS),
                                "-p", pids, "--", "sleep", f"{self.duration:.3f}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=self.duration + 30)
            except (OSError, subprocess.TimeoutExpired):
                return
            out.seek(0)
            for line in out:
                fields = line.split(",")
                if len(fields) > 2 and fields[2] in self.EVENTS:
                    try:
                        self.found[fields[2]] = int(fields[0])
                    except ValueError:
                        pass

    def counts(self):
        """{event: count} (empty if perf could not count)."""
        self.join()
        return self.found


# The server's process tree, from /proc.

_HAVE_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def processes():
    """(pid, parent pid, state, command) of every process on the machine, from /proc."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        yield int(name), int(fields[1]), fields[0], stat[stat.find("(") + 1:stat.rfind(")")]


def _children(pid, table):
    if not _HAVE_CHILDREN_FILES:
        return table.get(pid, [])
    kids = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tids:  # each thread lists the children it forked
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return kids


def tree_pids(root):
    """root and all its living descendants."""
    table = {}
    if not _HAVE_CHILDREN_FILES:  # fall back to one pass over every process
        for pid, ppid, _, _ in processes():
            table.setdefault(ppid, []).append(pid)
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(_children(pid, table))
    return pids


def _status(pid):
    """{field: value in kB or count} of the fields used here."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "VmPTE", "Threads"):
                    out[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def _pss_anon(pid):
    """The process's share, in KiB, of the anonymous and shared-memory pages it maps: heap,
    stacks, copy-on-write data (a page shared by N processes counts 1/N in each). File pages
    (program text, libraries) are left out: they do not grow with connections, and their share
    changes with whatever else maps the same libraries, such as the load generator starting.
    Falls back to the whole PSS on kernels without the split. Walks the page tables: costlier."""
    fields = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Pss", "Pss_Anon", "Pss_Shmem"):
                    fields[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    if "Pss_Anon" in fields:
        return fields["Pss_Anon"] + fields.get("Pss_Shmem", 0)
    return fields.get("Pss", 0)


def tree_sample(root, pss=False):
    """(resident KiB, high-water-mark KiB, memory KiB or 0, processes, threads) summed over
    root's tree. VmHWM is each process's own peak, kept by the kernel between samples. RSS
    counts a page shared by N processes N times. The memory figure (read only when asked) is
    what connections can make grow: the proportional share of anonymous pages, which counts a
    shared page once in all, plus each process's page tables."""
    rss = hwm = total_pss = threads = 0
    pids = tree_pids(root)
    for pid in pids:
        s = _status(pid)
        rss += s.get("VmRSS", 0)
        hwm += s.get("VmHWM", 0)
        threads += s.get("Threads", 0)
        if pss:
            total_pss += _pss_anon(pid) + s.get("VmPTE", 0)
    return rss, hwm, total_pss, len(pids), threads


def tree_rss_kib(root):
    """Resident memory (VmRSS) of root and its descendants, in KiB."""
    return tree_sample(root)[0]


class TreeSampler(threading.Thread):
    """Watches the server's process tree - resident memory, processes, threads - and keeps the
    maxima. Every sample takes CPU from the load generator's core, where this script runs, so
    it samples once per `interval` (none at all when interval is None: latency cells, where a
    preempted load generator would show up in the percentiles), and final() adds the tree's
    high-water marks at the end: the peak of each process, kept by the kernel."""

    def __init__(self, pid, interval, pss=False):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.pss = pss           # also the memory connections make grow (idle cells)
        self.pss_peak = 0
        self.rss_peak = 0
        self.processes_peak = 0
        self.threads_peak = 0
        self._finished = threading.Event()

    def sample(self):
        """One reading; returns (rss, high-water mark, pss) in KiB."""
        rss, hwm, pss, procs, threads = tree_sample(self.pid, self.pss)
        self.rss_peak = max(self.rss_peak, rss)
        self.pss_peak = max(self.pss_peak, pss)
        self.processes_peak = max(self.processes_peak, procs)
        self.threads_peak = max(self.threads_peak, threads)
        return rss, hwm, pss

    def run(self):
        while not self._finished.wait(self.interval):
            self.sample()

    def start(self):
        if self.interval:
            super().start()

    def final(self):
        """Stops sampling and takes the last reading (with the high-water marks)."""
        self._finished.set()
        if self.interval:
            self.join()
        hwm = self.sample()[1]
        self.rss_peak = max(self.rss_peak, hwm)
