"""The values the scripts read from the command line, with the rules of the C programs.

Byte sizes follow common/parse.c parse_bytes exactly - digits with an optional binary suffix
k/K/KiB, m/M/MiB, g/G/GiB (powers of 1024) or B - so that `--sizes 4k` means what `loadgen -s
4k` means: 4,096 bytes. Counts and rates are decimal: `10k` is 10,000. Durations follow
parse_duration (a bare number is seconds), CPU lists parse_cpu_list ("0", "0,2", "0-3,6").
Each parser returns the value or raises ValueError with a sentence that says what was expected.
"""

import os
import re

_BYTE_UNITS = {"": 1, "B": 1, "k": 1 << 10, "K": 1 << 10, "KiB": 1 << 10,
               "m": 1 << 20, "M": 1 << 20, "MiB": 1 << 20,
               "g": 1 << 30, "G": 1 << 30, "GiB": 1 << 30}
_DURATION_UNITS = {"": 1.0, "ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}
_UINT64_MAX = (1 << 64) - 1
# ASCII digits only: str.isdigit() and \d would take other scripts' digits, the C code does not.
_DIGITS = re.compile(r"([0-9]+)(.*)", re.S)
_DECIMAL = re.compile(r"([0-9]+(?:\.[0-9]+)?)(.*)", re.S)


def parse_bytes(text, lo=0, hi=_UINT64_MAX):
    """A byte count in [lo, hi]: "128", "64k" (65,536), "1MiB", "10B"."""
    m = _DIGITS.fullmatch(text)
    if not m or m.group(2) not in _BYTE_UNITS:
        raise ValueError(f"'{text}' is not a size such as 128, 4k or 1MiB "
                         "(k, m, g: x1024)")
    value = int(m.group(1)) * _BYTE_UNITS[m.group(2)]
    if not lo <= value <= hi:
        raise ValueError(f"'{text}' is not a size from {lo:,} to {hi:,} bytes")
    return value


def parse_count(text, lo=0):
    """A whole number, decimal: "512", "10k" or "10K" (10,000), "1.5k" (1,500)."""
    m = _DECIMAL.fullmatch(text)
    if not m or m.group(2) not in ("", "k", "K"):
        raise ValueError(f"'{text}' is not a number such as 512 or 10k (k: x1000)")
    value = float(m.group(1)) * (1000 if m.group(2) else 1)
    if value != int(value):
        raise ValueError(f"'{text}' is not a whole number")
    if value < lo:
        raise ValueError(f"'{text}' is less than {lo}")
    return int(value)


def parse_duration(text, min_seconds=0.0):
    """Seconds, from "500ms", "2s", "1.5m", "3" (seconds); at least min_seconds."""
    m = _DECIMAL.fullmatch(text)
    if not m or m.group(2) not in _DURATION_UNITS:
        raise ValueError(f"'{text}' is not a duration such as 500ms, 2s or 1m")
    value = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if value > 30 * 86400:
        raise ValueError(f"'{text}' is longer than 30 days")
    if value < min_seconds:
        raise ValueError(f"'{text}' is shorter than {min_seconds * 1e3:g} ms")
    return value


def parse_cpu_list(text):
    """The CPUs of a list such as "0", "0,2" or "0-3,6", in order, without repeats."""
    cpus = []
    for part in text.split(","):
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part)
        lo, hi = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (1, 0)
        if not m or hi < lo or hi > 4095:
            raise ValueError(f"'{text}' is not a CPU list such as 0, 0,2 or 0-3")
        cpus += [c for c in range(lo, hi + 1) if c not in cpus]
    return cpus


def parse_available_cpus(text):
    """A CPU list (parse_cpu_list) whose every CPU exists and is one this process may run on
    (its affinity: taskset, cgroups), as the text taskset and loadgen --cpus take."""
    cpus = parse_cpu_list(text)
    available = os.sched_getaffinity(0)
    missing = [c for c in cpus if c not in available]
    if missing:
        raise ValueError(f"CPU {missing[0]} does not exist or is not available (this process "
                         f"may run on CPUs {','.join(map(str, sorted(available)))})")
    return text


def split_names(text, what):
    """The names of a comma-separated list; an empty name is an error."""
    names = text.split(",")
    if "" in names:
        raise ValueError(f"'{text}' has an empty {what} name (a list is name,name,...)")
    return names
