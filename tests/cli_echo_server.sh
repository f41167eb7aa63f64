#!/usr/bin/env bash
# The command-line contract of echo-server: --help/--list/--version succeed; every bad input
# exits 2 with exactly one line on stderr naming the problem; a port in use exits 1.
#   usage: cli_echo_server.sh PATH/TO/echo-server
set -u
server=$1
failures=0
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
pid=

check() { # description, condition result
    if [ "$2" -ne 0 ]; then
        echo "FAIL: $1"
        failures=$((failures + 1))
    fi
}

expect_usage_error() { # expected words in the message, then the arguments
    local want=$1
    shift
    timeout 10 "$server" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? lines
    lines=$(wc -l <"$tmp/err")
    check "echo-server $* exits 2 (got $rc)" "$([ $rc -eq 2 ]; echo $?)"
    check "echo-server $* prints one line on stderr (got $lines)" "$([ "$lines" -eq 1 ]; echo $?)"
    check "echo-server $* prints nothing on stdout" "$([ ! -s "$tmp/out" ]; echo $?)"
    check "echo-server $*: message '$(cat "$tmp/err")' names '$want'" \
        "$(grep -q -- "$want" "$tmp/err"; echo $?)"
}

# Help, list and version.
"$server" --help >"$tmp/help"
check "--help exits 0" $?
for opt in --model --host --port --threads --backlog --stack-size --max-fds --msg-size --work-us \
           --sleep-us --cost-every --list --help --version; do
    check "--help documents $opt" "$(grep -q -- "$opt" "$tmp/help"; echo $?)"
done
"$server" --list >"$tmp/list"
check "--list exits 0" $?
for model in sequential fork thread threadpool; do
    check "--list shows $model" "$(grep -q "^$model " "$tmp/list"; echo $?)"
done
"$server" --version >/dev/null
check "--version exits 0" $?

# Bad input: exit 2, one line.
expect_usage_error "--model is required"
expect_usage_error "unknown model 'nosuch'" --model nosuch
expect_usage_error "--port" --model thread --port 70000
expect_usage_error "--port" --model thread --port abc
expect_usage_error "--port" --model thread --port -1
expect_usage_error "--threads" --model threadpool --threads 0
expect_usage_error "--threads" --model threadpool --threads many
expect_usage_error "does not take --threads" --model fork --threads 2
expect_usage_error "need --msg-size" --model thread --work-us 10
expect_usage_error "--msg-size" --model thread --msg-size 0
expect_usage_error "--stack-size" --model thread --stack-size 1k
expect_usage_error "--max-fds" --model thread --max-fds 5
expect_usage_error "--backlog" --model thread --backlog 0
expect_usage_error "unknown option '--bogus'" --model thread --bogus
expect_usage_error "needs a value" --model thread --port
expect_usage_error "unexpected argument 'extra'" --model thread extra
expect_usage_error "--host" --model thread --host no-such-host.invalid
# A per-message cost must stay well inside the 10 s stop grace.
expect_usage_error "--work-us" --model thread --msg-size 1 --work-us 1000001
expect_usage_error "--sleep-us" --model thread --msg-size 1 --sleep-us 10000000
expect_usage_error "--json goes with --list" --json
# --cost-every: 1 to 1,000,000, and only with framing and a cost to space out.
expect_usage_error "--cost-every" --model thread --msg-size 128 --sleep-us 10 --cost-every 0
expect_usage_error "--cost-every" --model thread --msg-size 128 --sleep-us 10 --cost-every 1000001
expect_usage_error "--cost-every" --model thread --msg-size 128 --sleep-us 10 --cost-every x
expect_usage_error "--cost-every needs --msg-size" --model thread --cost-every 10
expect_usage_error "--cost-every needs --msg-size and a cost" --model thread --msg-size 128 \
    --cost-every 10

# --list --json: the model contract for tools - valid JSON, versioned, every model of --list.
"$server" --list --json >"$tmp/list.json"
check "--list --json exits 0" $?
python3 - "$tmp/list.json" "$tmp/list" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["version"] == 1, doc.get("version")
names = [line.split()[0] for line in open(sys.argv[2]).read().splitlines()[1:]]
assert [m["name"] for m in doc["models"]] == names, "not the models of --list"
for m in doc["models"]:
    assert set(m) >= {"name", "summary", "kind", "threads_meaning",
                      "serves_one_connection_per_thread", "default_threads",
                      "max_connections", "listener_per_thread", "kernel_limits"}, m
    assert m["kind"] in ("iterative", "processes", "threads", "event-loop", "hybrid"), m
    assert m["serves_one_connection_per_thread"] == (m["default_threads"] is not None), m
PY
check "--list --json: every model, every field, version 1" $?

# select with a listener beyond FD_SETSIZE: exit 1 naming the reason, not a failing fcntl.
python3 - "$server" "$tmp/select.err" <<'PY'
import os, subprocess, sys
fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]  # inherited: the listener is >1023
for fd in fds:
    os.set_inheritable(fd, True)
with open(sys.argv[2], "w") as err:
    r = subprocess.run(["timeout", "10", sys.argv[1], "--model", "select", "--port", "0"],
                       stdout=subprocess.DEVNULL, stderr=err, close_fds=False)
sys.exit(0 if r.returncode == 1 else 1)
PY
check "select with the listener beyond FD_SETSIZE exits 1" $?
check "select says FD_SETSIZE: '$(cat "$tmp/select.err")'" \
    "$(grep -q "FD_SETSIZE" "$tmp/select.err" && ! grep -q fcntl "$tmp/select.err"; echo $?)"

# A port in use: a clear message and exit 1 - also for models that bind with SO_REUSEPORT (a
# listener per thread), whoever holds the port.
hold_port() { # model args...: starts a server on a free port; sets pid and port
    "$server" --port 0 "$@" >"$tmp/first" 2>/dev/null &
    pid=$!
    for _ in $(seq 100); do [ -s "$tmp/first" ] && break; sleep 0.05; done
    port=$(sed -E 's/^listening on .*:([0-9]+) model=.*/\1/' "$tmp/first")
}
expect_in_use() { # model
    timeout 10 "$server" --model "$1" --port "$port" >/dev/null 2>"$tmp/err"
    local rc=$?
    check "$1 on a port in use exits 1 (got $rc)" "$([ $rc -eq 1 ]; echo $?)"
    check "$1 on a port in use says so: '$(cat "$tmp/err")'" "$(grep -qi "in use" "$tmp/err"; echo $?)"
}
hold_port --model sequential
expect_in_use sequential
expect_in_use epoll
kill -TERM $pid
wait $pid
check "SIGTERM on an idle server exits 0" $?
hold_port --model epoll --threads 2
expect_in_use epoll
expect_in_use sequential
kill -TERM $pid
wait $pid
pid=

if [ $failures -gt 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all CLI checks passed"
