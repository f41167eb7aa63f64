#!/usr/bin/env bash
# A new model is one file and one line. In a copy of the source tree: add servers/example.c
# (tests/example_model.c) and the line "example" to servers/models.list, configure with the
# optional libraries hidden from pkg-config, build, and check that
#   - the models whose library is missing are left out with a clear message, the build succeeds;
#   - echo-server --list shows the new model;
#   - the whole conformance suite is generated for it, and passes;
#   - scripts/bench runs it and draws it.
#   usage: extra_model_test.sh SOURCE_DIR
set -u
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

tar -C "$src" --exclude='./build*' --exclude=./.git --exclude=./results -cf - . \
    | (mkdir "$tmp/src" && tar -C "$tmp/src" -xf -)
cp "$src/tests/example_model.c" "$tmp/src/servers/example.c"
echo "example" >> "$tmp/src/servers/models.list"
mkdir "$tmp/no-pkgconfig"

# liburing and libuv are not found: their models are left out, the rest builds.
PKG_CONFIG_LIBDIR="$tmp/no-pkgconfig" cmake -S "$tmp/src" -B "$tmp/build" \
    -DCMAKE_BUILD_TYPE=Release >"$tmp/configure.log" 2>&1 || fail "configure failed"
for line in "Server model 'uring' left out: missing liburing (Debian: apt-get install liburing-dev)" \
            "Server model 'uring_sqpoll' left out: missing liburing" \
            "Server model 'libuv' left out: missing libuv (Debian: apt-get install libuv1-dev)"; do
    tr -d '\n' <"$tmp/configure.log" | sed 's/  */ /g' | grep -qF "$line" \
        || fail "configure does not say: $line"
done
cmake --build "$tmp/build" -j"$(nproc)" >"$tmp/build.log" 2>&1 \
    || { fail "the build failed without the optional libraries"; tail -20 "$tmp/build.log"; }
server="$tmp/build/servers/echo-server"
"$server" --list >"$tmp/list" || fail "--list failed"
grep -q "^example " "$tmp/list" || fail "--list does not show the new model"
for gone in uring uring_sqpoll libuv; do
    grep -q "^$gone " "$tmp/list" && fail "--list shows $gone, built without its library"
done

# The conformance suite finds the model by itself.
ctest --test-dir "$tmp/build" -N -L model-example >"$tmp/tests"
count=$(grep -c "conformance.example\." "$tmp/tests")
[ "$count" -ge 10 ] || fail "only $count conformance tests generated for the new model"
ctest --test-dir "$tmp/build" -L model-example -j"$(nproc)" >"$tmp/ctest.log" 2>&1 \
    || { fail "the conformance suite fails for the new model"; grep -E "Failed|FAIL" "$tmp/ctest.log"; }

# The bench finds it too.
# --keep-disturbed: on a loaded machine every measurement may be disturbed, and the bench would
# leave them all out of the plots.
"$tmp/src/scripts/bench" --profile tiny --models example --no-build --build-dir "$tmp/build" \
    --keep-disturbed --out "$tmp/run" >"$tmp/bench.log" 2>&1 \
    || fail "the bench failed: $(tail -3 "$tmp/bench.log")"
grep -q "^connections,example,0,ok" "$tmp/run/results.csv" || fail "no measured cell for the model"
grep -q "'throughput.example.dat'" "$tmp/run/plots/throughput.gp" \
    || fail "the throughput plot does not draw the model"
grep -q "| example |" "$tmp/run/report.md" || fail "the report does not list the model"

[ $failures -eq 0 ] && echo "PASS: a new model needs one file and one line"
exit $((failures > 0))
