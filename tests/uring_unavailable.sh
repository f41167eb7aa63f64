#!/usr/bin/env bash
# Where io_uring is unavailable (here: refused by a seccomp filter), `--model uring` exits 3 with
# a clear message, and the conformance and load tests report the model as skipped - not failed.
#   uring_unavailable.sh NO_URING ECHO_SERVER CONFORMANCE LOADGEN_TEST LOADGEN FAKE_SERVER
set -u
no_uring=$1 server=$2 conformance=$3 loadgen_test=$4 loadgen=$5 fake=$6
"$server" --list | grep -q '^uring ' || { echo "SKIP: the uring model is not built"; exit 77; }
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

err=$(timeout 10 "$no_uring" "$server" --model uring --port 0 2>&1 >/dev/null)
rc=$?
[ $rc -eq 3 ] || fail "echo-server --model uring exits $rc without io_uring, expected 3"
echo "$err" | grep -q "cannot run here: io_uring_setup failed" || fail "message: $err"

timeout 60 "$no_uring" "$conformance" "$server" uring single_byte
rc=$?
[ $rc -eq 77 ] || fail "the conformance case exits $rc without io_uring, expected 77 (skip)"

timeout 60 "$no_uring" bash "$loadgen_test" model "$loadgen" "$server" "$fake" uring
rc=$?
[ $rc -eq 77 ] || fail "the load test exits $rc without io_uring, expected 77 (skip)"

# And with io_uring available, the same case runs and passes: skipping is for unavailability only.
timeout 60 "$conformance" "$server" uring single_byte >/dev/null
rc=$?
[ $rc -eq 0 ] || fail "with io_uring the conformance case exits $rc, expected 0"

[ $failures -eq 0 ] && echo "PASS: unavailable io_uring is reported and skipped"
exit $((failures > 0))
