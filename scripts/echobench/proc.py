"""A server's process tree as /proc shows it: resident memory, processes and threads."""

import os


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


def _children_map():
    """{parent pid: [child pids]} for every process on the machine, in one pass over /proc."""
    children = {}
    for pid, ppid, _, _ in processes():
        children.setdefault(ppid, []).append(pid)
    return children


def tree_pids(root):
    """root and all its living descendants."""
    children = _children_map()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def _status_field(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_rss_kib(root):
    """Resident memory (VmRSS) of root and its descendants, in KiB."""
    return sum(_status_field(pid, "VmRSS") for pid in tree_pids(root))


def tree_counts(root):
    """(processes, threads) in root's tree."""
    pids = tree_pids(root)
    return len(pids), sum(_status_field(pid, "Threads") for pid in pids)
