"""The registered server models, as `echo-server --list` reports them."""

import subprocess
from dataclasses import dataclass


@dataclass
class Model:
    name: str
    kind: str            # iterative | processes | threads | event-loop
    threads: str         # what --threads means ("workers", "reactors", ...) or "-"
    summary: str


def list_models(echo_server):
    out = subprocess.run([echo_server, "--list"], capture_output=True, text=True, check=True)
    models = []
    for line in out.stdout.splitlines()[1:]:  # skip the header
        parts = line.split(None, 3)
        if len(parts) == 4:
            models.append(Model(*parts))
    return models
