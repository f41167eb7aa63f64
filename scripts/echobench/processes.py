"""Running servers and the load generator: the pieces every benchmark script shares.

A Server is started in a process group of its own, pinned if asked, and is always stopped -
SIGTERM, then SIGKILL for the whole group - when its `with` block ends, whatever happened inside.
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
        from .proc import tree_pids
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


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
