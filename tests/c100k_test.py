#!/usr/bin/env python3
"""bench/c100k, small and fast: two models, 3,000 connections, 1 s - every row of both tables
present, every connection held, zero errors and mismatches; and 50,000,000 refused (exit 2) by
the limit check before anything starts. `spread`: the same with every
loadgen limited to 1,100 descriptors and 1,000 ports per target address, so the 3,000 need three
loadgens on three target addresses (the path 100,000 takes: 28,232 ports per address).

  c100k_test.py plain|spread BUILD_DIR
"""

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.realpath(__file__))
MODELS = ["epoll", "poll"]
N = 3000


def main():
    case, build = sys.argv[1], sys.argv[2]
    extra = []
    if case == "spread":
        if subprocess.run(["unshare", "--net", "true"], stderr=subprocess.DEVNULL).returncode:
            print("SKIP: unshare --net is refused (needs root)")
            sys.exit(77)
        extra = ["--loadgen-max-fds", "1100", "--port-range", "40000-41063"]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "c100k.json")
        proc = subprocess.run([sys.executable, os.path.join(HERE, "..", "bench", "c100k"),
                               "--build", build, "--models", ",".join(MODELS),
                               "--connections", str(N), "--duration", "1s", "--json", out]
                              + extra, capture_output=True, text=True, timeout=240)
        print(proc.stdout, proc.stderr)
        assert proc.returncode == 0, f"exit status {proc.returncode}"
        with open(out) as f:
            report = json.load(f)
    lines = proc.stdout.splitlines()
    for model in MODELS:
        rows = [line for line in lines if line.startswith(f"| {model} | {N} |")]
        assert len(rows) == 2, f"{model}: expected a load row and an idle row, got {rows}"
        cells = [c.strip() for c in rows[0].split("|")[1:-1]]
        assert cells[5:8] == ["0", "0", str(N)], f"{model}: errors, mismatches, open: {cells}"
    assert report["connections"] == N and report["at_most"] is None
    for row in report["models"]:
        load, idle = row["load"], row["idle"]
        assert load["errors"] == 0 and load["mismatches"] == 0, row["model"]
        assert load["connections_open"] == N and load["requests_per_sec"] > 0, row["model"]
        assert idle["held"] == N and idle["setup_s"] > 0, row["model"]
        assert idle["connect_rate_per_s"] > 0, row["model"]
    if case == "plain":
        # A count no limit here allows: refused before anything starts, naming what to change.
        proc = subprocess.run([sys.executable, os.path.join(HERE, "..", "bench", "c100k"),
                               "--build", build, "--connections", "50000000"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.returncode
        assert "  STOPS descriptors" in proc.stdout and "to lift it:" in proc.stdout, proc.stdout
        assert "--at-most" in proc.stderr, proc.stderr
    if case == "spread":
        plan = report["plan"]
        assert plan["shares"] == [1000, 1000, 1000], plan["shares"]
        assert plan["targets"] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"], plan["targets"]
        assert plan["network_namespace"] is True
    print("ok")


if __name__ == "__main__":
    main()
