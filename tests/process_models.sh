#!/usr/bin/env bash
# What the conformance suite cannot see from outside one connection:
#   prefork   - a worker process that dies is replaced, and service goes on; a signal to one
#               worker is not a stop of the server
#   uring_sqpoll - the CPU time of the kernel's submission thread (iou-sqp-PID) is counted in
#               the server's CPU figures (loadgen --server-pid)
#   thread    - the CPU time of threads that have ended is counted too
#   every model - an accept() error that belongs to one connection (ENETDOWN, EPROTO, ...) is
#               that connection's trouble: accepting goes on, no worker process is replaced
#   pools     - when every worker of a pool is busy, the summary line says so
#   usage: process_models.sh CASE ECHO_SERVER LOADGEN ACCEPT_FAULTS_SO
set -u
case_name=$1 server=$2 loadgen=$3 accept_faults=${4:-}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -TERM $pid 2>/dev/null; wait; rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

start() { # model, args...: sets pid and port; exits 77 if the model is not built or cannot run
    local model=$1; shift
    "$server" --list | grep -q "^$model " || { echo "SKIP: $model is not built"; exit 77; }
    ${PRELOAD:+env LD_PRELOAD="$PRELOAD" ASAN_OPTIONS=verify_asan_link_order=0} \
        "$server" --model "$model" --port 0 "$@" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    for _ in $(seq 100); do
        grep -q '^listening' "$tmp/out" && break
        kill -0 $pid 2>/dev/null || { wait $pid; [ $? -eq 3 ] && { cat "$tmp/err"; exit 77; }; }
        sleep 0.05
    done
    port=$(sed -E 's/^listening on .*:([0-9]+) model=.*/\1/' "$tmp/out")
}

case $case_name in
prefork_replaces_workers)
    start prefork --threads 2
    workers=$(pgrep -P $pid | sort)
    [ "$(echo "$workers" | wc -l)" -eq 2 ] || fail "expected 2 workers, found: $workers"
    victim=$(echo "$workers" | head -1)
    kill -KILL "$victim"
    for _ in $(seq 40); do
        now=$(pgrep -P $pid | sort)
        [ "$(echo "$now" | wc -l)" -eq 2 ] && ! echo "$now" | grep -qx "$victim" && break
        sleep 0.05
    done
    echo "$now" | grep -qx "$victim" && fail "the killed worker is still listed"
    [ "$(echo "$now" | wc -l)" -eq 2 ] || fail "the killed worker was not replaced: $now"
    for i in 1 2 3 4; do
        out=$(echo "ping $i" | timeout 5 nc -N 127.0.0.1 "$port")
        [ "$out" = "ping $i" ] || fail "no echo after the replacement: '$out'"
    done
    ;;
sqpoll_cpu_counted)
    start uring_sqpoll
    sqpoll_runtime() { # ns of CPU used so far by the process's iou-sqp threads
        local total=0 t
        for t in /proc/$pid/task/*; do
            grep -q '^iou-sqp' "$t/comm" 2>/dev/null || continue
            total=$((total + $(cut -d' ' -f1 "$t/schedstat")))
        done
        echo $total
    }
    before=$(sqpoll_runtime)
    [ "$before" -gt 0 ] || fail "no iou-sqp thread in the server process"
    timeout 60 "$loadgen" --port "$port" -c 8 -d 2s --warmup 0 --server-pid $pid \
        --json "$tmp/r.json" -q || fail "loadgen failed"
    after=$(sqpoll_runtime)
    verdict=$(python3 -c "
import json, sys
j = json.load(open('$tmp/r.json'))
server = j['server_cpu']['seconds']
sqp = ($after - $before) / 1e9
print('ok' if sqp > 0.05 and server >= 0.9 * sqp else f'server {server:.2f} s, sqpoll thread {sqp:.2f} s')")
    [ "$verdict" = ok ] || fail "the SQPOLL thread's CPU is not in the server's: $verdict"
    ;;
prefork_lone_signal)
    # SIGTERM to one worker is not a stop of the server: that worker goes, is replaced, and the
    # others keep serving - no storm of replacements.
    start prefork --threads 3
    victim=$(pgrep -P $pid | head -1)
    kill -TERM "$victim"
    sleep 1
    now=$(pgrep -P $pid)
    [ "$(echo "$now" | wc -l)" -eq 3 ] || fail "expected 3 workers after the replacement: $now"
    echo "$now" | grep -qx "$victim" && fail "the signalled worker is still there"
    grep -q "failed" "$tmp/err" && fail "the server failed: $(cat "$tmp/err")"
    for i in 1 2 3 4 5 6; do
        out=$(echo "ping $i" | timeout 5 nc -N 127.0.0.1 "$port")
        [ "$out" = "ping $i" ] || fail "no echo after one worker was signalled: '$out'"
    done
    ;;
thread_cpu_counted)
    # Every connection of the thread model is a thread that ends with it: the CPU it used must
    # stay in the server's figures (the process CPU clock keeps exited threads' time).
    start thread
    ticks() { awk '{print $14 + $15}' /proc/$pid/stat; }
    t0=$(ticks)
    timeout 60 "$loadgen" --port "$port" -c 4 -d 2s --warmup 0 --reconnect 1 \
        --server-pid $pid --json "$tmp/r.json" -q || fail "loadgen failed"
    t1=$(ticks)
    verdict=$(python3 -c "
import json, os
j = json.load(open('$tmp/r.json'))
server = j['server_cpu']['seconds']
ticks = ($t1 - $t0) / os.sysconf('SC_CLK_TCK')
print('ok' if ticks > 0.2 and 0.7 * ticks <= server <= 1.3 * ticks + 0.05
      else f'loadgen says {server:.2f} s, /proc/PID/stat {ticks:.2f} s')")
    [ "$verdict" = ok ] || fail "the server's CPU lost its exited threads: $verdict"
    ;;
accept_errors_per_connection)
    # Every second accept() of each process fails with ENETDOWN (then EPROTO): 20 clients one
    # after another are all served, by the same worker processes, and the server does not fail.
    for errno_value in 100 71; do # ENETDOWN, EPROTO
        export ACCEPT_FAULT_EVERY=2 ACCEPT_FAULT_ERRNO=$errno_value
        PRELOAD=$accept_faults start prefork --threads 2
        grep -q "accept_faults: every 2" "$tmp/err" || fail "the accept_faults shim did not load"
        before=$(pgrep -P $pid | sort | tr '\n' ' ')
        for i in $(seq 20); do
            out=$(echo "ping $i" | timeout 5 nc -N 127.0.0.1 "$port")
            [ "$out" = "ping $i" ] || { fail "errno $errno_value: no echo for client $i: '$out'"; break; }
        done
        after=$(pgrep -P $pid | sort | tr '\n' ' ')
        [ "$before" = "$after" ] || fail "errno $errno_value: workers replaced ($before -> $after)"
        grep -q "failed" "$tmp/err" && fail "errno $errno_value: the server failed: $(cat "$tmp/err")"
        unset ACCEPT_FAULT_EVERY ACCEPT_FAULT_ERRNO
        kill -TERM $pid; wait $pid; rc=$?; pid=
        [ $rc -eq 0 ] || fail "errno $errno_value: exit status $rc after SIGTERM"
    done
    [ $failures -eq 0 ] && echo "PASS: $case_name"
    exit $((failures > 0))
    ;;
pool_all_busy_visible)
    # A pool of 2 with 2 idle clients: a third waits, and the summary line says every worker was
    # busy. (--help says what that means.)
    "$server" --help | grep -q "pool_all_busy" || fail "--help does not explain pool_all_busy"
    for model in threadpool prefork; do
        start $model --threads 2
        exec 5<>/dev/tcp/127.0.0.1/$port 6<>/dev/tcp/127.0.0.1/$port
        sleep 0.3
        kill -TERM $pid; wait $pid; rc=$?; pid=
        exec 5>&- 6>&-
        [ $rc -eq 0 ] || fail "$model: exit status $rc"
        grep -q "workers=2 pool_all_busy=[1-9]" "$tmp/err" \
            || fail "$model: the summary does not say the pool was all busy: $(cat "$tmp/err")"
    done
    [ $failures -eq 0 ] && echo "PASS: $case_name"
    exit $((failures > 0))
    ;;
*)
    echo "unknown case $case_name"; exit 2 ;;
esac
kill -TERM $pid; wait $pid; rc=$?; pid=
[ $rc -eq 0 ] || fail "the server exited $rc after SIGTERM"
[ $failures -eq 0 ] && echo "PASS: $case_name"
exit $((failures > 0))
