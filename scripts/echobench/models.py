"""The registered server models, as `echo-server --list --json` describes them (the model
contract: docs/adding-a-model.md).

The bench decides from the contract's fields, never from display text: a model whose every
--threads thread serves one connection at a time (serves_one_connection_per_thread) holds at most
--threads connections, a model with a declared max_connections no more than that, an iterative
model one. An echo-server built before `--json` existed is read from the text of `--list`.
"""

import json
import subprocess
from dataclasses import dataclass
from typing import Optional

LIST_JSON_VERSION = 1


@dataclass
class Model:
    name: str
    summary: str
    kind: str                   # iterative | processes | threads | event-loop | hybrid
    threads_meaning: Optional[str]  # what --threads counts: workers | reactors | rings; None
    serves_one_connection_per_thread: bool  # each thread (process) serves one connection
    max_connections: int        # the most it can hold by construction, or 0 for no limit of its own
    listener_per_thread: bool   # every thread accepts on a listener of its own (SO_REUSEPORT)

    @property
    def pool_of_one_connection_threads(self):
        """--threads N threads, each serving one connection: N connections at a time at most."""
        return self.serves_one_connection_per_thread and self.threads_meaning is not None

    def threads_for(self, workers):
        """The --threads the bench gives the model: `workers` for a pool of workers (and for
        any pool whose threads serve one connection each, so that its limit is known); None
        leaves the model's own default (reactors, rings)."""
        if self.threads_meaning == "workers" or self.pool_of_one_connection_threads:
            return workers
        return None

    def connection_limit(self, workers):
        """(how many persistent connections the model serves at once, why), or (None, "")."""
        if self.kind == "iterative":
            return 1, "serves one connection at a time"
        if self.pool_of_one_connection_threads:
            return workers, (f"{workers} {self.threads_meaning} serve {workers} connections at "
                             "a time")
        if self.max_connections:
            return self.max_connections, (f"holds at most {self.max_connections} connections "
                                          "(see echo-server --list)")
        return None, ""


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
                      bool(m["listener_per_thread"])) for m in doc["models"]]
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
