"""The registered server models, as `echo-server --list` reports them."""

import subprocess
from dataclasses import dataclass


@dataclass
class Model:
    name: str
    kind: str            # iterative | processes | threads | event-loop
    threads: str         # what --threads means ("workers", "reactors", ...) or "-"
    max_connections: int  # the most it can hold by construction, or 0 for no limit of its own
    summary: str


def list_models(echo_server):
    out = subprocess.run([echo_server, "--list"], capture_output=True, text=True, check=True)
    models = []
    for line in out.stdout.splitlines()[1:]:  # skip the header
        parts = line.split(None, 4)
        if len(parts) == 5:
            name, kind, threads, limit, summary = parts
            models.append(Model(name, kind, threads, 0 if limit == "-" else int(limit), summary))
    return models
