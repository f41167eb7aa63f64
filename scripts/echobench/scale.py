"""Many connections at once: which limit of this machine caps them, several load generators
sharing them, and what idle connections cost the server and the kernel - shared by
bench/event-loop-scale and bench/c100k.

Every connection of a run on one machine costs a descriptor in the server and one in a load
generator, a socket at each end (both in this kernel), and an ephemeral port of its (source
address, destination address and port): plan() checks each of these before anything starts.
"""

import math
import os
import resource
import subprocess
import sys
import tempfile
import time

from .processes import Server, tree_sample

# Descriptors a process holds beyond one per connection: stdio, the listener, epoll, eventfd,
# signalfd, io_uring, timers. Generous: a run that fits in the limit minus these starts.
SERVER_SPARE_FDS = 32
LOADGEN_SPARE_FDS = 32
# Ports of the range kept free for whatever else on the machine connects meanwhile.
SPARE_PORTS = 64
# The slab caches that grow with TCP connections (a socket, its inode and file, its epoll
# entry); /proc/slabinfo names them the same on every kernel since 4.x.
TCP_SLABS = ("TCP", "TCPv6", "sock_inode_cache", "dentry", "filp", "eventpoll_epi",
             "eventpoll_pwq", "skbuff_head_cache", "request_sock_TCP", "tw_sock_TCP")


def read_sysctl(name):
    """The value of a sysctl (dotted name) as text, or None if unreadable."""
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return f.read().strip()
    except OSError:
        return None


def port_range():
    """(lowest, highest) ephemeral port of net.ipv4.ip_local_port_range."""
    lo, hi = (read_sysctl("net.ipv4.ip_local_port_range") or "32768 60999").split()
    return int(lo), int(hi)


def can_raise_nofile(n):
    """True if a child process may set its RLIMIT_NOFILE to n (soft and hard), as echo-server
    and loadgen try when started: asked of a child, so this process keeps its own limit."""
    code = ("import resource,sys\n"
            "try:\n resource.setrlimit(resource.RLIMIT_NOFILE, (%d, %d))\n"
            "except (ValueError, OSError):\n sys.exit(1)\n" % (n, n))
    return subprocess.run([sys.executable, "-c", code]).returncode == 0


def can_unshare_net():
    """True if this process may create a network namespace (unshare --net)."""
    try:
        return subprocess.run(["unshare", "--net", "true"], stderr=subprocess.DEVNULL).returncode == 0
    except OSError:
        return False


class Check:
    """One limit: what it is here, how many connections it allows (None: no cap), and what to
    change to lift it."""

    def __init__(self, name, state, allows, fix):
        self.name, self.state, self.allows, self.fix = name, state, allows, fix

    def line(self, wanted):
        if self.allows is None or self.allows >= wanted:
            return f"  ok    {self.name}: {self.state}"
        return (f"  STOPS {self.name}: {self.state}: at most {self.allows:,} connections; "
                f"to lift it: {self.fix}")

    def as_dict(self):
        return {"limit": self.name, "state": self.state, "allows": self.allows, "fix": self.fix}


class Plan:
    """How n connections are spread: `loadgens` shares, each against targets[i]."""

    def __init__(self, n, checks, shares, targets, netns):
        self.n, self.checks, self.shares, self.targets, self.netns = (
            n, checks, shares, targets, netns)

    def fits(self):
        """The most connections every limit allows."""
        return min([c.allows for c in self.checks if c.allows is not None] + [self.n])

    def as_dict(self):
        return {"connections": self.n, "loadgens": len(self.shares), "shares": self.shares,
                "targets": self.targets, "network_namespace": self.netns,
                "checks": [c.as_dict() for c in self.checks]}


def _fd_limit(want, nr_open):
    """(descriptors a program here gets when it asks for `want`, may it be raised)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if want <= hard:
        return want, False
    if want <= nr_open and can_raise_nofile(want):
        return want, True
    return hard, False


def plan(n, netns_possible, loadgen_max_fds=None, ports=None, backlog=4096):
    """Checks what would stop n connections and spreads them: every loadgen within its
    descriptor limit (loadgen_max_fds, if given, stands for a lower one), every (source,
    target) pair within the port range (ports, if given: (lo, hi) to use instead of this
    machine's). Targets beyond the first need a network namespace of the run's own
    (netns_possible): there the server can listen on every address, which are all loopback.
    backlog: the server's listen() backlog, which the kernel caps at net.core.somaxconn."""
    nr_open = int(read_sysctl("fs.nr_open") or 1048576)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    checks = []
    capfix = ("raise the hard RLIMIT_NOFILE (limits.conf nofile, systemd LimitNOFILE, "
              "prlimit) or run as a root that has CAP_SYS_RESOURCE")

    got, raised = _fd_limit(n + SERVER_SPARE_FDS, nr_open)
    how = "can be raised to it" if raised else (
        "enough" if got >= n + SERVER_SPARE_FDS else "raising it is refused")
    checks.append(Check("descriptors, server (RLIMIT_NOFILE)",
                        f"hard limit {hard:,}, {n + SERVER_SPARE_FDS:,} needed: {how}",
                        max(0, got - SERVER_SPARE_FDS), capfix))
    checks.append(Check("descriptors, absolute (fs.nr_open)", f"{nr_open:,}",
                        nr_open - SERVER_SPARE_FDS, f"sysctl fs.nr_open={n + 1024}"))
    try:
        with open("/proc/sys/fs/file-nr") as f:
            used, _, file_max = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        used, file_max = 0, int(read_sysctl("fs.file-max") or 1 << 62)
    checks.append(Check("descriptors, system-wide (fs.file-max)",
                        f"{file_max:,}, {used:,} in use, two per connection",
                        (file_max - used) // 2 - 1024, f"sysctl fs.file-max={used + 2 * n + 4096}"))

    per_lg, _ = _fd_limit(n + LOADGEN_SPARE_FDS, nr_open)
    per_lg -= LOADGEN_SPARE_FDS
    if loadgen_max_fds:
        per_lg = min(per_lg, loadgen_max_fds - LOADGEN_SPARE_FDS)
    if per_lg < 1:
        checks.append(Check("descriptors, loadgen", f"{per_lg + LOADGEN_SPARE_FDS}", 0,
                            capfix))
        return Plan(n, checks, [], [], False)

    lo, hi = ports or port_range()
    per_pair = hi - lo + 1 - SPARE_PORTS
    # Each loadgen has one target; a share fits both its loadgen and its target's ports.
    loadgens = max(1, math.ceil(n / min(per_lg, per_pair)))
    shares = [n // loadgens + (i < n % loadgens) for i in range(loadgens)]
    per_target = max(1, per_pair // shares[0])
    need_targets = math.ceil(loadgens / per_target)
    max_targets = 254 if netns_possible else 1
    targets = [f"127.0.0.{1 + i // per_target}" for i in range(loadgens)]
    checks.append(Check("descriptors, loadgen (RLIMIT_NOFILE)",
                        f"{per_lg + LOADGEN_SPARE_FDS:,} per process: {loadgens} loadgen "
                        f"process{'es' if loadgens > 1 else ''}", None, ""))
    where = ("" if need_targets == 1 else
             ", in a network namespace of the bench's own, the server on every address of its "
             "loopback" if netns_possible else ", but one target address only (no network "
             "namespace: unshare --net is refused)")
    checks.append(Check("ports (net.ipv4.ip_local_port_range)",
                        f"{lo}-{hi}: {per_pair:,} per (source, target) pair; "
                        f"{need_targets} target address{'es' if need_targets > 1 else ''}"
                        f"{where}",
                        per_pair * max_targets if need_targets > max_targets else None,
                        "sysctl net.ipv4.ip_local_port_range='1024 65535', or run as root "
                        "(the bench then spreads over 127.0.0.x in a network namespace)"))
    somaxconn = int(read_sysctl("net.core.somaxconn") or 4096)
    queue = min(backlog, somaxconn)
    checks.append(Check("listen backlog (net.core.somaxconn)",
                        f"{queue:,} (server backlog {backlog:,}, somaxconn {somaxconn:,})"
                        + (": below the count, which can only slow set-up (connections "
                           "wait to be accepted)" if queue < n else ""),
                        None, ""))
    return Plan(n, checks, shares, targets, need_targets > 1)


def sockstat():
    """{"TCP inuse": sockets, "TCP mem pages": pages} from /proc/net/sockstat (inuse counts
    this network namespace; the pages count every TCP buffer of the machine)."""
    out = {}
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    fields = line.split()[1:]
                    kv = dict(zip(fields[::2], fields[1::2]))
                    out = {"inuse": int(kv["inuse"]), "mem_pages": int(kv["mem"])}
    except (OSError, KeyError, ValueError):
        pass
    return out


def slabs():
    """{cache: bytes of its active objects} for TCP_SLABS, or None if /proc/slabinfo is
    unreadable (it is root-only); "all" sums every cache."""
    try:
        with open("/proc/slabinfo") as f:
            lines = f.readlines()[2:]
    except OSError:
        return None
    out = {"all": 0}
    for line in lines:
        fields = line.split()
        try:
            size = int(fields[1]) * int(fields[3])
        except (IndexError, ValueError):
            continue
        out["all"] += size
        if fields[0] in TCP_SLABS:
            out[fields[0]] = size
    return out


def kernel_sample():
    return {"sockstat": sockstat(), "slab": slabs()}


def kernel_delta(before, after, n):
    """Kernel memory the n connections took, per connection (both ends of each: client and
    server sockets live in this kernel): TCP buffer pages (sockstat) and the TCP slabs."""
    d = {}
    s0, s1 = before["sockstat"], after["sockstat"]
    if s0 and s1:
        d["tcp_inuse"] = s1["inuse"] - s0["inuse"]
        d["tcp_mem_bytes_per_conn"] = (s1["mem_pages"] - s0["mem_pages"]) * 4096 / n
    if before["slab"] is None or after["slab"] is None:
        d["slab"] = None
        d["bytes_per_conn"] = d.get("tcp_mem_bytes_per_conn")
        return d
    d["slab"] = {k: (after["slab"].get(k, 0) - before["slab"].get(k, 0)) / n
                 for k in after["slab"]}
    named = sum(v for k, v in d["slab"].items() if k != "all")
    d["slab_bytes_per_conn"] = named
    d["bytes_per_conn"] = named + d.get("tcp_mem_bytes_per_conn", 0)
    return d


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class Loadgens:
    """Several loadgen processes started at once, one share of the connections each, stopped
    (SIGKILL) when the `with` block ends, whatever happened. `fd_limit`, if given, is set as
    each one's RLIMIT_NOFILE (it cannot raise it: both soft and hard)."""

    def __init__(self, loadgen, port, shares, targets, args, fd_limit=None, cpus=None):
        self.cmds = []
        self.outs = []
        for share, host in zip(shares, targets):
            f = tempfile.NamedTemporaryFile(suffix=".json", delete=False)
            f.close()
            self.outs.append(f.name)
            self.cmds.append([loadgen, "--host", host, "--port", str(port), "--json", f.name,
                              "--quiet", "-t", "1", "-c", str(share)]
                             + (["--cpus", cpus] if cpus else []) + args)
        self.fd_limit = fd_limit
        self.procs = []

    def _limit(self):
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.fd_limit, self.fd_limit))

    def __enter__(self):
        for cmd in self.cmds:
            self.procs.append(subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                stdin=subprocess.DEVNULL, preexec_fn=self._limit if self.fd_limit else None))
        return self

    def wait(self, timeout):
        """[(report dict or None, exit status, stderr)] of every loadgen, in order."""
        deadline = time.monotonic() + timeout
        results = []
        for proc, out in zip(self.procs, self.outs):
            try:
                _, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
                err = f"loadgen did not finish within {timeout:.0f} s; " + (err or "")
            report = None
            if os.path.getsize(out) > 0:
                with open(out) as f:
                    report = __import__("json").load(f)
            results.append((report, proc.returncode, err))
        return results

    def __exit__(self, *exc):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for out in self.outs:
            os.unlink(out)
        return False


def merge_reports(results):
    """One figure for the run out of several loadgens' reports: sums of requests, errors,
    mismatches and open connections; the highest of their p50 and p99 (a merged distribution
    would need their histograms: the highest is the conservative bound); None if any loadgen
    left no report."""
    if any(r is None for r, _, _ in results):
        return None
    reports = [r for r, _, _ in results]
    return {
        "requests_per_sec": sum(r["requests_per_sec"] for r in reports),
        "p50_us": max(r["latency_us"]["p50"] or 0 for r in reports),
        "p99_us": max(r["latency_us"]["p99"] or 0 for r in reports),
        "errors": sum(r["errors"]["total"] for r in reports),
        "errors_by_kind": {k: sum(r["errors"][k] for r in reports)
                           for k in reports[0]["errors"] if k != "total"} if reports else {},
        "warnings": [w for r in reports for w in r.get("warnings", [])],
        "mismatches": sum(r["mismatches"] for r in reports),
        "connections_open": sum(r["connections_open"] for r in reports),
        "exit_statuses": [s for _, s, _ in results],
        "interrupted": any(r.get("interrupted") for r in reports),
        "connect_latency_us": [r.get("connect_latency_us") for r in reports],
    }


def idle_hold(server_argv, loadgen, shares, targets, cpus=None, fd_limit=None,
              connect_timeout=60.0, settle=1.0):
    """Starts a server, measures it with no client, then holds sum(shares) idle connections
    (loadgen --idle) and measures it again once the server holds them all: returns a dict of
    the server's memory ("rss_kib", "pss_kib": before and held - PSS is the anonymous pages
    and page tables, as the bench's idle cells measure), the kernel's (kernel_sample(), before
    and held), "setup_s" (from starting the loadgens until the server holds every connection,
    counted in its descriptors; None if it never did), "held" (the connections the loadgens
    had open when stopped) and the loadgens' merged report."""
    n = sum(shares)
    out = {"connections": n}
    server_cpu, loadgen_cpu = cpus or (None, None)
    with Server(server_argv, cpus=server_cpu) as srv:
        time.sleep(0.5)
        rss0, _, pss0, _, _ = tree_sample(srv.pid, pss=True)
        fds0 = fd_count(srv.pid)
        k0 = kernel_sample()
        # The hold lasts long enough for set-up and the readings; the loadgens are stopped
        # (killed) as soon as the readings are taken.
        hold = connect_timeout + settle + 5
        args = ["--idle", "-d", f"{hold:.0f}s", "--warmup", "0", "--timeout",
                f"{connect_timeout:.0f}s"]
        with Loadgens(loadgen, srv.port, shares, targets, args, fd_limit, loadgen_cpu) as lg:
            start = time.monotonic()
            setup = None
            while time.monotonic() - start < connect_timeout:
                if fd_count(srv.pid) - fds0 >= n:
                    setup = time.monotonic() - start
                    break
                if any(p.poll() is not None for p in lg.procs):
                    break
                time.sleep(0.05)
            if setup is not None:
                time.sleep(settle)
            rss1, _, pss1, _, _ = tree_sample(srv.pid, pss=True)
            k1 = kernel_sample()
            held = fd_count(srv.pid) - fds0
            for p in lg.procs:
                p.terminate()  # SIGTERM: loadgen ends its window early and reports
            results = lg.wait(30)
    report = merge_reports(results)
    out.update({"rss_kib": (rss0, rss1), "pss_kib": (pss0, pss1), "kernel": (k0, k1),
                "setup_s": setup, "server_fds_added": held, "report": report,
                # as the loadgens counted them when stopped (the server's descriptors may
                # include one of its own, e.g. libuv's)
                "held": report["connections_open"] if report else held,
                "loadgen_errors": [e.strip() for _, s, e in results if s not in (0, None)]})
    return out


def run_in_netns(argv, env_marker, ports=None, somaxconn=None):
    """Replaces this process with `argv` run in a new network namespace whose loopback is up
    and whose port range and backlog limit are this machine's (or `ports`; or `somaxconn`, if
    higher than this machine's). Never returns.
    There TIME_WAIT is off (tcp_max_tw_buckets 0): the connections a run closes would hold
    their ports for 60 s, and the next model's connections found the range exhausted
    (loadgen counted thousands of connect errors)."""
    lo, hi = ports or port_range()
    somaxconn = str(max(int(read_sysctl("net.core.somaxconn") or 4096), somaxconn or 0))
    script = ("ip link set lo up && sysctl -q -w net.ipv4.ip_local_port_range=\"$1 $2\" "
              "net.core.somaxconn=\"$3\" net.ipv4.tcp_max_tw_buckets=0 && shift 3 && "
              "exec \"$@\"")
    os.environ[env_marker] = "1"
    sys.stdout.flush()
    os.execvp("unshare", ["unshare", "--net", "--", "sh", "-c", script, "sh", str(lo), str(hi),
                          somaxconn] + argv)
