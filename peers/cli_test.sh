#!/usr/bin/env bash
# peers/cli_test.sh PEER_EXECUTABLE NAME - the command line every peer shares with echo-server
# (docs/peers.md): its own model name only, one line and exit 2 for anything else, --list and
# --list --json in echo-server's shape, --help. Exit 0 pass, 1 fail.
set -uo pipefail
bin=$1 name=$2
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect STATUS ARGS...: the peer exits with STATUS; for 2, exactly one line on stderr.
expect() {
    local want=$1; shift
    local err rc
    err=$(timeout 10 "$bin" "$@" 2>&1 >/dev/null); rc=$?
    [ "$rc" -eq "$want" ] || { fail "'$*' exited $rc, expected $want: $err"; return; }
    if [ "$want" -eq 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ]; then
        fail "'$*': expected one line on stderr, got: $err"
    fi
}

expect 0 --help
expect 0 --list
expect 0 --list --json
expect 2 --bogus
expect 2 --model "$name" --bogus
expect 2 --model not-"$name"
expect 2
expect 2 --json
expect 2 --model "$name" --port 70000
expect 2 --model "$name" --threads 3
expect 2 --model "$name" --port
expect 2 --model "$name" stray
err=$(timeout 10 "$bin" --model "$name" --bogus 2>&1 >/dev/null)
case $err in *--bogus*) ;; *) fail "the message does not name the unknown option: $err" ;; esac

# The document of echo-server --list --json, one model: this peer.
timeout 10 "$bin" --list --json | python3 -c '
import json, sys
name = sys.argv[1]
d = json.load(sys.stdin)
assert d["version"] == 1, d
(m,) = d["models"]
want = {"name", "summary", "kind", "threads_meaning", "serves_one_connection_per_thread",
        "default_threads", "max_connections", "kernel_limits", "listener_per_thread",
        "supports_costs"}
assert set(m) == want, set(m) ^ want
assert m["name"] == name and m["kind"] in ("threads", "event-loop"), m
assert isinstance(m["supports_costs"], bool), m
' "$name" || fail "--list --json is not echo-server's document for model $name"

# Costs: taken when the peer says it supports them, else refused with exit 2.
# (Read whole first: grep -q would close the pipe early, and under pipefail the writer's broken
# pipe would read as "no".)
contract=$(timeout 10 "$bin" --list --json)
# expect_named WORD ARGS...: exit 2, and the one line names WORD.
expect_named() {
    local word=$1; shift
    expect 2 "$@"
    local err
    err=$(timeout 10 "$bin" "$@" 2>&1 >/dev/null)
    case $err in *"$word"*) ;; *) fail "'$*': the message does not say '$word': $err" ;; esac
}
# Numbers are ASCII digits ('²' is a digit to Python's str.isdigit, a sign is one to Go's Atoi),
# and an address that does not resolve is a bad command line too (exit 2, as echo-server).
# (--port 0 where the option under test is another: a peer that wrongly starts takes no port.)
expect_named --port --model "$name" --port ²
expect_named --port --model "$name" --port +5
expect_named --host --model "$name" --port 0 --host no-such-host.invalid
if grep -q '"supports_costs": true' <<<"$contract"; then
    # A size whose multiplication by the suffix would wrap around a 64-bit integer.
    expect_named --msg-size --model "$name" --port 0 --msg-size 18014398509481985k
    expect_named --msg-size --model "$name" --port 0 --msg-size ²k
    expect 2 --model "$name" --work-us 10
    expect 2 --model "$name" --msg-size 0
    # --cost-every as echo-server takes it: 1 to 1,000,000, with --msg-size and a cost.
    timeout 10 "$bin" --help | grep -q -- --cost-every || fail "--help does not document --cost-every"
    expect_named --cost-every --model "$name" --msg-size 128 --sleep-us 10 --cost-every 0
    expect_named --cost-every --model "$name" --msg-size 128 --sleep-us 10 --cost-every 1000001
    expect_named --cost-every --model "$name" --msg-size 128 --sleep-us 10 --cost-every x
    expect_named "--cost-every needs --msg-size" --model "$name" --cost-every 10
    expect_named "--cost-every needs --msg-size and a cost" --model "$name" --msg-size 128 \
        --cost-every 10
else
    expect 2 --model "$name" --msg-size 100
    expect_named "not supported" --model "$name" --cost-every 10
fi

[ $fails -eq 0 ] && echo "PASS: the $name peer's command line"
[ $fails -eq 0 ]
