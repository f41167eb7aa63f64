"""A server's process tree as /proc shows it: resident memory, processes and threads.

Reading it costs CPU on whatever CPU the reader runs, so it is kept cheap: the tree is walked
through /proc/PID/task/TID/children (no scan of every process on the machine), and one status
file is read per process.
"""

import os

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
