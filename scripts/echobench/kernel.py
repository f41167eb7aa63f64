"""Kernel limits raised for one cell (--tune-kernel) and always put back.

A model that a kernel limit stops - fork by kernel.pid_max, thread by vm.max_map_count - is not
failing: the limit is the machine's. With --tune-kernel (root only) the bench raises the sysctl
to what the cell needs before its server starts and restores the old value when the cell ends,
whatever ends it (an error, Ctrl-C): `raised` is a context manager with a finally.

ECHOBENCH_PROC_SYS names another folder than /proc/sys (for the tests of the bench).
"""

import os
from contextlib import contextmanager


def proc_sys():
    return os.environ.get("ECHOBENCH_PROC_SYS", "/proc/sys")


def sysctl_path(name):
    return os.path.join(proc_sys(), *name.split("."))


def read_sysctl(name):
    with open(sysctl_path(name)) as f:
        return int(f.read().split()[0])


def write_sysctl(name, value):
    with open(sysctl_path(name), "w") as f:
        f.write(f"{value}\n")


def can_tune():
    """None if this process may write sysctls, else why not."""
    if os.environ.get("ECHOBENCH_PROC_SYS"):
        return None
    if os.geteuid() != 0:
        return "--tune-kernel needs root (it writes /proc/sys for the duration of a cell)"
    return None


def parse_tuning(text):
    """[(sysctl, value)] of a cell's kernel_tuning text, "kernel.pid_max=40000,..."."""
    out = []
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        out.append((name, int(value)))
    return out


@contextmanager
def raised(tuning):
    """Raises each sysctl of `tuning` [(name, value)] that is below its value, for the `with`
    block; yields the record of what was done ("kernel.pid_max 32768 -> 40000"). Restores every
    value it changed on the way out, also on an exception. OSError if a value cannot be written
    (then what was already raised is restored first)."""
    changed, record = [], []
    try:
        for name, value in tuning:
            old = read_sysctl(name)
            if old >= value:
                record.append(f"{name} {old} (enough)")
                continue
            write_sysctl(name, value)
            changed.append((name, old))
            record.append(f"{name} {old} -> {value}")
        yield record
    finally:
        for name, old in reversed(changed):
            try:
                write_sysctl(name, old)
            except OSError as e:  # say so loudly: the machine is left changed
                print(f"bench: warning: could not restore {name} to {old}: {e}")
