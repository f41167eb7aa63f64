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
        """The --threads a variant's options set, or None (the options are normalised by
        parse_variant: `--threads N`)."""
        value = None
        for opt, text in zip(self.options[::2], self.options[1::2]):
            if opt == "--threads" and text.isdigit():
                value = int(text)
        return value

    def sets_option(self, option):
        """True if the variant's options set the long option `option` (normalised by
        parse_variant: `--work-us 5`)."""
        return option in self.options[::2]

    def describe(self):
        return f"{self.name}={self.model.name}" + (" " + shlex.join(self.options)
                                                    if self.options else "")

    @property
    def is_peer(self):
        return self.model.executable is not None


SERIES_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")

# echo-server's options (its --help), each long option with its short one or None. A variant
# may set those of VARIANT_OPTIONS, each with a value, and nothing else: getopt_long would also
# take an abbreviation (--mod, --work) or a cluster of short options (-mthread, -p5000), which
# would slip past the checks on the bench's own options and on the cells' costs. So a variant's
# options are normalised to `--long VALUE` and anything else is refused.
VARIANT_OPTIONS = {"--threads": "-t", "--backlog": "-b", "--stack-size": None,
                   "--max-fds": None, "--msg-size": None, "--work-us": None, "--sleep-us": None,
                   "--cost-every": None}
BENCH_OPTIONS = {"--model": "-m", "--port": "-p", "--host": "-H"}  # the bench's to choose
OTHER_OPTIONS = {"--list": "-l", "--json": None, "--help": "-h", "--version": "-V"}


def normalise_options(words):
    """echo-server options as `--long VALUE` pairs: each of VARIANT_OPTIONS as `--long VALUE`,
    `--long=VALUE`, or its short one as `-t VALUE` or `-tVALUE`; ValueError with one sentence
    naming anything else (another option, an abbreviation, a positional word)."""
    short = {v: k for k, v in VARIANT_OPTIONS.items() if v}
    bench = dict(BENCH_OPTIONS, **{v: k for k, v in BENCH_OPTIONS.items()})
    out, i = [], 0
    while i < len(words):
        word = words[i]
        name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        if not word.startswith("--") and word[:2] in short:
            name, value, eq = short[word[:2]], word[2:], "=" if len(word) > 2 else ""
        base = name if name.startswith("--") else word[:2]
        if base in bench:
            long = base if base.startswith("--") else bench[base]
            raise ValueError(f"{word}: {long} is the bench's to choose")
        if name not in VARIANT_OPTIONS:
            what = ("is not an option (a variant is a model, then options only)"
                    if not word.startswith("-") else "is not an option a variant may set")
            raise ValueError(f"'{word}' {what}; they are, exactly as written: " + ", ".join(
                f"{k} ({v})" if v else k for k, v in VARIANT_OPTIONS.items()))
        if not eq:
            i += 1
            if i == len(words) or words[i].startswith("-"):
                raise ValueError(f"{word} needs a value")
            value = words[i]
        elif not value or value.startswith("-"):
            raise ValueError(f"{word} needs a value")
        out += [name, value]
        i += 1
    return out


def variant_syntax(text):
    """(label, model name, normalised options) of 'LABEL=MODEL OPTION...', checked without the
    model registry; ValueError with one sentence if it is not one."""
    label, eq, rest = text.partition("=")
    label = label.strip()
    if not eq:
        raise ValueError(f"'{text}' is not LABEL=MODEL OPTION... (e.g. 'epoll2=epoll "
                         "--threads 2')")
    if not SERIES_NAME.fullmatch(label):
        raise ValueError(f"'{label}' is not a series name (lower-case letters, digits and _)")
    try:
        words = shlex.split(rest)
    except ValueError as e:
        raise ValueError(f"'{text}': {e}")
    if not words:
        raise ValueError(f"'{text}' names no model")
    if not SERIES_NAME.fullmatch(words[0]):
        raise ValueError(f"'{words[0]}' is not a model name")
    try:
        return label, words[0], normalise_options(words[1:])
    except ValueError as e:
        raise ValueError(f"'{text}': {e}")


def parse_variant(text, models, taken):
    """A Series from 'LABEL=MODEL OPTION...' (variant_syntax), its options normalised; ValueError
    with one sentence if it is not one. models: {name: Model}; taken: the series names already
    used."""
    label, model, options = variant_syntax(text)
    if label in taken or label in models:
        raise ValueError(f"'{label}' is already a series (a model or another variant)")
    if model not in models:
        raise ValueError(f"'{model}' is not a model; registered: " + ", ".join(models))
    return Series(label, models[model], options)


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
