#!/usr/bin/env bash
# What the conformance suite cannot see of the uring model (servers/uring.c) from outside:
#   handoff_failure      with ECHOBENCH_URING_FAIL_HANDOFF=1 every hand-off from ring 0 to
#                        another ring fails (IORING_OP_MSG_RING to an invalid ring): with
#                        --threads 2, 20 connections in a row are all echoed (ring 0 serves
#                        them), none of their descriptors stays open, and the summary accounts
#                        for each one
#   stop_during_handoffs SIGTERM while 32 clients churn connections through --threads 3 rings
#                        (hand-offs in flight), with and without the hook: exit 0 within 2 s,
#                        no sanitizer report, and every accepted connection was served or shed
#                        (connections = sum of per_thread + shed: none lost between rings)
#   pool_non_readers     clients that never read, with small receive buffers so that the
#                        server's sends really stop: 64 pushing 16 MiB each, and - in a network
#                        namespace of its own with small TCP buffers, where that can be made -
#                        1,100 of them, more than the ring's 1,024 pool buffers. A new client
#                        still echoes 64 KiB plus 10 single bytes within 2 s, the server's memory
#                        stays bounded, and everything recovers once they leave
#   usage: uring_model.sh CASE ECHO_SERVER [MODEL]     (MODEL: uring, the default, or uring_sqpoll)
set -u
case_name=$1 server=$2 model=${3:-uring}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -KILL $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
command -v python3 >/dev/null || { echo "SKIP: python3 is needed"; exit 77; }
"$server" --list | grep -q "^$model " || { echo "SKIP: $model is not built"; exit 77; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null

start() { # args...: sets pid and port; exits 77 if the model cannot run here
    "$server" --model "$model" --port 0 "$@" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    for _ in $(seq 100); do
        grep -q '^listening' "$tmp/out" && break
        kill -0 $pid 2>/dev/null || { wait $pid; [ $? -eq 3 ] && { cat "$tmp/err"; exit 77; }; }
        sleep 0.05
    done
    port=$(sed -E 's/^listening on .*:([0-9]+) model=.*/\1/' "$tmp/out")
    [ -n "$port" ] || { cat "$tmp/err"; echo "FAIL: the server did not start"; exit 1; }
}

stop() { # SIGTERM; expects exit 0 within $1 seconds and a summary; sets summary
    local limit=$1 rc
    kill -TERM $pid
    for _ in $(seq $((limit * 20))); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    if kill -0 $pid 2>/dev/null; then
        fail "still running ${limit} s after SIGTERM"
        kill -KILL $pid
    fi
    wait $pid
    rc=$?
    pid=
    [ $rc -eq 0 ] || fail "exit status $rc after SIGTERM"
    summary=$(grep 'stopped model=' "$tmp/err")
    [ -n "$summary" ] || fail "no summary line: $(cat "$tmp/err")"
    if grep -q 'Sanitizer' "$tmp/err"; then
        fail "sanitizer report:"
        cat "$tmp/err"
    fi
}

field() { echo "$summary" | sed -nE "s/.* $1=([0-9,]+).*/\1/p"; }

accounted() { # every accepted connection was served by a ring or shed
    local conns shed served
    conns=$(field connections) shed=$(field shed)
    served=$(( $(field per_thread | tr ',' '+') ))
    [ "$conns" -eq $((served + shed)) ] \
        || fail "$conns connections accepted, $served served + $shed shed: some were lost ($summary)"
}

cat >"$tmp/client.py" <<'EOF'
import os, select, socket, sys, time

def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=5)

def echo_once(port, size, timeout):
    """A new client: size bytes, then 10 single bytes, all echoed within timeout seconds."""
    t0 = time.time()
    c = connect(port)
    data = os.urandom(size)
    c.settimeout(timeout)
    try:
        c.sendall(data)
        got = b""
        while len(got) < size:
            k = c.recv(65536)
            if not k:
                return "closed after %d of %d bytes" % (len(got), size)
            got += k
        if got != data:
            return "echo differs"
        for i in range(10):
            c.settimeout(max(0.01, timeout - (time.time() - t0)))
            c.sendall(b"%d" % i)
            if c.recv(1) != b"%d" % i:
                return "single byte %d differs" % i
    except OSError as e:
        return "no echo after %.0f ms: %s" % ((time.time() - t0) * 1000, e)
    finally:
        c.close()
    return "ok %.0f" % ((time.time() - t0) * 1000)

def sequential(port, n):
    for i in range(n):
        r = echo_once(port, 1000, 3)
        if not r.startswith("ok"):
            print("connection %d: %s" % (i, r))
            return 1
    print("ok")
    return 0

def churn(port, n, seconds):
    """n clients connect, send a byte, read it, close, over and over."""
    end = time.time() + seconds
    slots = [None] * n
    echoed, flag = 0, os.environ.get("CHURN_FLAG")
    while time.time() < end:
        for i in range(n):
            if slots[i] is None:
                s = socket.socket()
                s.setblocking(False)
                try:
                    s.connect(("127.0.0.1", port))
                except BlockingIOError:
                    pass
                except OSError:
                    s.close()
                    continue
                slots[i] = [s, 0]
        r, w, _ = select.select([x[0] for x in slots if x and x[1] == 1],
                                [x[0] for x in slots if x and x[1] == 0], [], 0.01)
        for i, x in enumerate(slots):
            if not x:
                continue
            done = False
            try:
                if x[1] == 0 and x[0] in w:
                    x[0].send(b"c")
                    x[1] = 1
                elif x[1] == 1 and x[0] in r:
                    x[0].recv(1)
                    done = True
                    echoed += 1
                    if flag and echoed == 200:
                        open(flag, "w").close()  # churning for real: the stop may come
            except OSError:
                done = True  # refused or reset: the next connection
            if done:
                x[0].close()
                slots[i] = None
    for x in slots:
        if x:
            x[0].close()
    return 0

def anon_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0

def non_readers(port, pid, n, cap_mib, push_s, rcvbuf, mem_scale):
    """n clients push up to cap_mib MiB each for push_s seconds and never read; then a new
    client must be served within 2 s, memory must stay bounded, and after they leave the
    server must serve again."""
    junk = os.urandom(65536)
    before = anon_kib(pid)
    fds = []
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        fds.append(s)
    pushed = [0] * n
    cap = cap_mib << 20
    p = select.poll()
    index = {s.fileno(): i for i, s in enumerate(fds)}
    for s in fds:
        p.register(s, select.POLLOUT)
    stalled_since = None
    end = time.time() + push_s
    while time.time() < end:
        ready = p.poll(50)
        if not ready:
            stalled_since = stalled_since or time.time()
            if time.time() - stalled_since > 0.5:
                break  # every socket is full: the server has stopped taking bytes
            continue
        stalled_since = None
        for fd, ev in ready:
            i = index[fd]
            try:
                pushed[i] += fds[i].send(junk)
            except BlockingIOError:
                pass
            if pushed[i] >= cap:
                p.unregister(fd)
    r = echo_once(port, 65536, 2)
    grew = anon_kib(pid) - before
    print("%d non-readers pushed %d MiB (%d to %d KiB each); a new client: %s; server anonymous "
          "memory grew by %d KiB" % (n, sum(pushed) >> 20, min(pushed) >> 10, max(pushed) >> 10,
                                     r, grew))
    bad = 0
    if not r.startswith("ok"):
        print("with %d clients that do not read, a new client was not served: %s" % (n, r))
        bad = 1
    # 16 MiB of pool that may be touched the first time, plus a parked buffer and socket state
    # per non-reader (times the sanitizers' shadow memory, in their builds).
    if grew > (16 * 1024 + n * 64) * mem_scale:
        print("server memory grew by %d KiB for %d clients that do not read" % (grew, n))
        bad = 1
    for s in fds:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        s.close()
    time.sleep(0.3)
    r = echo_once(port, 65536, 5)
    if not r.startswith("ok"):
        print("not serving after the non-readers left: %s" % r)
        bad = 1
    return bad

cmd = sys.argv[1]
args = [int(a) for a in sys.argv[2:]]
sys.exit({"sequential": sequential, "churn": churn, "non_readers": non_readers}[cmd](*args))
EOF

fd_count() { ls /proc/$pid/fd 2>/dev/null | wc -l; }
# Sanitizer builds map shadow memory for what the server touches: memory limits scale.
mem_scale=1
ldd "$server" 2>/dev/null | grep -qE 'lib[at]san' && mem_scale=8

case $case_name in
handoff_failure)
    ECHOBENCH_URING_FAIL_HANDOFF=1 start --threads 2
    sleep 0.2
    fds_before=$(fd_count)
    out=$(timeout 100 python3 "$tmp/client.py" sequential "$port" 20)
    [ "$out" = ok ] || fail "20 connections in a row with failing hand-offs: $out"
    sleep 0.2
    fds_after=$(fd_count)
    [ "$fds_after" -le "$fds_before" ] \
        || fail "$((fds_after - fds_before)) descriptors left open by 20 closed connections"
    stop 5
    echo "$summary" | grep -q 'fail_handoff' || fail "the hook is not reported: $summary"
    [ "$(field per_thread)" = "20,0" ] \
        || fail "ring 0 should have served all 20 connections: $summary"
    accounted
    ;;
stop_during_handoffs)
    for hook in 0 1; do
        for round in 1 2 3; do
            ECHOBENCH_URING_FAIL_HANDOFF=$hook start --threads 3
            rm -f "$tmp/go"
            CHURN_FLAG=$tmp/go timeout 30 python3 "$tmp/client.py" churn "$port" 32 10 &
            churner=$!
            for _ in $(seq 200); do [ -e "$tmp/go" ] && break; sleep 0.05; done
            [ -e "$tmp/go" ] || fail "the churn did not get going"
            sleep 0.$((round * 2))
            stop 2
            kill $churner 2>/dev/null
            wait $churner 2>/dev/null
            [ "$(field connections)" -gt 0 ] || fail "no connection before the stop: $summary"
            accounted
            echo "hook=$hook round $round: $summary"
        done
    done
    ;;
pool_non_readers)
    start
    timeout 60 python3 "$tmp/client.py" non_readers "$port" $pid 64 16 4 4096 $mem_scale \
        || fail "64 non-readers"
    stop 5
    # More clients than pool buffers: a network namespace with small TCP buffers makes each
    # one stop the server's sends after a few hundred KiB.
    if unshare -rn true 2>/dev/null; then
        out=$(timeout 120 unshare -rn bash -c '
            ip link set lo up && sysctl -qw net.ipv4.tcp_rmem="4096 16384 65536" \
                && sysctl -qw net.ipv4.tcp_wmem="4096 16384 65536" || exit 77
            "$1" --model "$2" --port 0 >"$3/out2" 2>"$3/err2" &
            spid=$!
            for _ in $(seq 100); do grep -q "^listening" "$3/out2" && break; sleep 0.05; done
            sport=$(sed -E "s/^listening on .*:([0-9]+) model=.*/\1/" "$3/out2")
            python3 "$3/client.py" non_readers "$sport" $spid 1100 1 6 4096 $4
            r=$?
            kill -TERM $spid; wait $spid; s=$?
            [ $s -eq 0 ] || { echo "exit status $s after SIGTERM"; r=1; }
            grep -q Sanitizer "$3/err2" && { cat "$3/err2"; r=1; }
            exit $r' _ "$server" "$model" "$tmp" $mem_scale 2>&1)
        rc=$?
        echo "$out"
        [ $rc -eq 77 ] && echo "(no namespace with small TCP buffers here: 1,100 left out)"
        [ $rc -eq 0 ] || [ $rc -eq 77 ] || fail "1,100 non-readers"
    else
        echo "(no network namespace here: the case with 1,100 non-readers is left out)"
    fi
    ;;
*)
    echo "unknown case $case_name"
    exit 2
    ;;
esac

[ $failures -eq 0 ] && echo "PASS: $model $case_name"
exit $((failures > 0))
