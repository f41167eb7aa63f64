"""The registered server models, as `echo-server --list --json` describes them (the model
contract: docs/adding-a-model.md).

The bench decides from the contract's fields, never from display text: a model whose every
--threads thread serves one connection at a time (serves_one_connection_per_thread) gets a pool
the size of the cell's connections, up to POOL_CAP; a model with a declared max_connections
holds no more than that, an iterative model one; a kernel limit (kernel_limits: pid_max for a
process per connection, ...) stops a model at 90 % of what it allows. An echo-server built
before `--json` existed is read from the text of `--list`.

A series is what the plots and findings compare: a model, or a variant - a model with server
options of its own under a label (`--variant 'epoll2=epoll --threads 2'`), or a peer - a server
in another runtime with echo-server's command line (peers.py), whose Model names its executable.
"""

import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from typing import Optional

LIST_JSON_VERSION = 1

# The largest pool the bench gives a model that serves one connection per worker: --threads is
# sized to the cell's connections up to this (docs/results.md says why these numbers).
POOL_CAP = {"processes": 512, "threads": 1024}
DEFAULT_POOL_CAP = 1024
# A kernel limit counts every process or thread of the machine, not only the server's: a cell
# may use this share of it.
KERNEL_HEADROOM = 0.9


@dataclass
class KernelLimit:
    sysctl: str           # e.g. kernel.pid_max
    per_connection: int   # how much of it one connection takes
    why: str              # "a process per connection"
    value: int            # the sysctl's value when echo-server was asked
    max_connections: int  # value / per_connection

    def usable(self):
        """The most connections a cell may ask for under this limit, with headroom."""
        return int(self.max_connections * KERNEL_HEADROOM)

    def needed(self, connections):
        """The sysctl value that would let `connections` connections through with headroom."""
        return -(-connections * self.per_connection * 10 // int(KERNEL_HEADROOM * 10))


@dataclass
class Model:
    name: str
    summary: str
    kind: str                   # iterative | processes | threads | event-loop | hybrid
    threads_meaning: Optional[str]  # what --threads counts: workers | reactors | rings; None
    serves_one_connection_per_thread: bool  # each thread (process) serves one connection
    max_connections: int        # the most it can hold by construction, or 0 for no limit of its own
    listener_per_thread: bool   # every thread accepts on a listener of its own (SO_REUSEPORT)
    kernel_limits: list = field(default_factory=list)  # [KernelLimit]
    default_threads: Optional[int] = None
    # Takes --msg-size/--work-us/--sleep-us (per-message costs): every echo-server model; a peer
    # says so in its --list --json ("supports_costs"). Cells that need costs skip the others.
    supports_costs: bool = True
    executable: Optional[str] = None  # the server program: None for echo-server, else a peer's

    @property
    def pool_cap(self):
        return POOL_CAP.get(self.kind, DEFAULT_POOL_CAP)

    @property
    def pool_of_one_connection_threads(self):
        """--threads N threads, each serving one connection: N connections at a time at most."""
        return self.serves_one_connection_per_thread and self.threads_meaning is not None

    def pool_for(self, connections, given_threads=None):
        """(--threads for a cell with `connections` connections or None, why not servable or
        ""). A pool that serves one connection per worker is sized to the connections, at
        least 1, up to its cap - unless a variant gave --threads, which then bounds it; other
        models keep their own default."""
        if not self.pool_of_one_connection_threads:
            return None, ""
        what = "processes" if self.kind == "processes" else "threads"
        if given_threads is not None:
            if connections > given_threads:
                return None, (f"{given_threads} {self.threads_meaning} (--threads) serve "
                              f"{given_threads} connections at a time")
            return None, ""
        if connections > self.pool_cap:
            return None, (f"serves one connection per worker, and the bench caps its pool at "
                          f"{self.pool_cap:,} {what}")
        return max(1, connections), ""

    def connection_limit(self):
        """(how many persistent connections the model holds by construction, why), or
        (None, "")."""
        if self.kind == "iterative":
            return 1, "serves one connection at a time"
        if self.max_connections:
            return self.max_connections, (f"holds at most {self.max_connections} connections "
                                          "(see echo-server --list)")
        return None, ""


@dataclass
class Series:
    """A line of the plots: a model under its own name, or a variant (a label, a model, server
    options of its own)."""
    name: str
    model: Model
    options: list = field(default_factory=list)

    @property
    def is_variant(self):
        return self.name != self.model.name or bool(self.options)

    def given_threads(self):
        """The --threads a variant's options set, or None."""
        value = None
        opts = self.options
        for i, opt in enumerate(opts):
            text = None
            if opt in ("-t", "--threads") and i + 1 < len(opts):
                text = opts[i + 1]
            elif opt.startswith("--threads="):
                text = opt.split("=", 1)[1]
            elif opt.startswith("-t") and len(opt) > 2 and opt[2:].isdigit():
                text = opt[2:]
            if text is not None and text.isdigit():
                value = int(text)
        return value

    def sets_option(self, option):
        """True if the variant's options set the long option `option` (`--work-us 5` or
        `--work-us=5`)."""
        return any(opt == option or opt.startswith(option + "=") for opt in self.options)

    def describe(self):
        return f"{self.name}={self.model.name}" + (" " + shlex.join(self.options)
                                                    if self.options else "")

    @property
    def is_peer(self):
        return self.model.executable is not None


SERIES_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")


def parse_variant(text, models, taken):
    """A Series from 'LABEL=MODEL OPTION...'; ValueError with one sentence if it is not one.
    models: {name: Model}; taken: the series names already used."""
    label, eq, rest = text.partition("=")
    label = label.strip()
    if not eq:
        raise ValueError(f"'{text}' is not LABEL=MODEL OPTION... (e.g. 'epoll2=epoll "
                         "--threads 2')")
    if not SERIES_NAME.fullmatch(label):
        raise ValueError(f"'{label}' is not a series name (lower-case letters, digits and _)")
    if label in taken or label in models:
        raise ValueError(f"'{label}' is already a series (a model or another variant)")
    try:
        words = shlex.split(rest)
    except ValueError as e:
        raise ValueError(f"'{text}': {e}")
    if not words:
        raise ValueError(f"'{text}' names no model")
    if words[0] not in models:
        raise ValueError(f"'{words[0]}' is not a model; registered: " + ", ".join(models))
    for opt in words[1:]:
        if opt in ("-m", "--model", "-p", "--port", "-H", "--host") or \
                opt.startswith(("--model=", "--port=", "--host=")):
            raise ValueError(f"'{text}': {opt} is the bench's to choose")
    return Series(label, models[words[0]], words[1:])


def parse_list_json(text):
    """[Model] of an `echo-server --list --json` document; RuntimeError if it is not one."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise RuntimeError(f"echo-server --list --json is not JSON: {e}")
    if not isinstance(doc, dict) or doc.get("version") != LIST_JSON_VERSION:
        raise RuntimeError(f"echo-server --list --json: version "
                           f"{doc.get('version') if isinstance(doc, dict) else '?'} is not "
                           f"understood (this script reads version {LIST_JSON_VERSION})")
    try:
        return [Model(m["name"], m["summary"], m["kind"], m["threads_meaning"],
                      bool(m["serves_one_connection_per_thread"]), int(m["max_connections"]),
                      bool(m["listener_per_thread"]),
                      [KernelLimit(k["sysctl"], int(k["per_connection"]), k["why"],
                                   int(k["value"]), int(k["max_connections"]))
                       for k in m.get("kernel_limits") or []],
                      m.get("default_threads"), bool(m.get("supports_costs", True)))
                for m in doc["models"]]
    except (KeyError, TypeError, ValueError) as e:
        raise RuntimeError(f"echo-server --list --json: a model lacks a field ({e})")


def parse_list_text(text):
    """[Model] of the text of `echo-server --list` (MODEL KIND THREADS MAX_CONNS SUMMARY): the
    columns it has; a pool of workers is taken to serve one connection per worker."""
    models = []
    for line in text.splitlines()[1:]:  # skip the header
        parts = line.split(None, 4)
        if len(parts) == 5:
            name, kind, threads, limit, summary = parts
            models.append(Model(name, summary, kind, None if threads == "-" else threads,
                                threads == "workers", 0 if limit == "-" else int(limit), False))
    return models


def list_models(echo_server):
    """The models of an echo-server binary. `--json` comes first so that a binary without it
    refuses the option (exit status 2) rather than printing the text list: only then is the
    text read."""
    out = subprocess.run([echo_server, "--json", "--list"], capture_output=True, text=True)
    if out.returncode == 0:
        return parse_list_json(out.stdout)
    out = subprocess.run([echo_server, "--list"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"echo-server --list failed: "
                           f"{(out.stderr.strip().splitlines() or ['no output'])[-1]}")
    return parse_list_text(out.stdout)
