"""The peers (peers/, docs/peers.md): echo servers in other runtimes that the bench runs as
series of their own, next to the C models (`scripts/bench --peers go,node,python`).

A peer is an executable in BUILD/peers/echo-NAME, built by the top-level CMake when its toolchain
is found, that speaks echo-server's command line: `--list --json` gives the same document (one
model, plus "supports_costs"), `--model NAME --port 0` prints the listening line, SIGTERM stops
it. A peer that cannot be run here is skipped with one line saying why and how to install it.
"""

import os
import shutil

from . import ROOT
from .models import list_models

# name -> (the Debian package of its toolchain - the `peers` group of scripts/deps -, the
# programs that toolchain provides, one of which must be found). peers/CMakeLists.txt finds the
# same programs.
TOOLCHAINS = {
    "go": ("golang-go", ("go",)),
    "node": ("nodejs", ("node", "nodejs")),
    "python": ("python3", ("python3",)),
}


def known():
    """The peers of the source tree: the folders of peers/ (each one a peer's source)."""
    base = os.path.join(ROOT, "peers")
    return sorted(n for n in os.listdir(base) if os.path.isdir(os.path.join(base, n)))


def executable(build_dir, name):
    return os.path.join(build_dir, "peers", f"echo-{name}")


def install_line(name):
    return f"apt-get install -y {TOOLCHAINS[name][0]}"


def toolchain_found(name):
    """True if a program of the peer's toolchain is on PATH (or in /usr/bin, as CMake looks)."""
    progs = TOOLCHAINS[name][1]
    return any(shutil.which(p) or os.access(os.path.join("/usr/bin", p), os.X_OK)
               for p in progs)


def load(build_dir, name):
    """(Model with .executable set, "") for a peer that can run, or (None, why not: one
    sentence naming what to do)."""
    exe = executable(build_dir, name)
    if not os.access(exe, os.X_OK):
        if not toolchain_found(name):
            return None, (f"its toolchain is not installed ({install_line(name)}, or "
                          "scripts/deps peers; then rebuild)")
        return None, f"{exe} is not built (run without --no-build)"
    try:
        found = list_models(exe)
    except (OSError, RuntimeError) as e:
        why = str(e).replace("echo-server", os.path.basename(exe))
        return None, f"{exe} does not answer --list --json ({why}; {install_line(name)})"
    if len(found) != 1 or found[0].name != name:
        return None, (f"{exe} --list --json describes {[m.name for m in found]}, not the "
                      f"peer {name}")
    model = found[0]
    model.executable = exe
    return model, ""
