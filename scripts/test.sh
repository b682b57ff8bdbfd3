#!/usr/bin/env bash
# The README's test command: installs what is missing, builds with warnings as errors, runs
# every test (unit + integration against a private PostgreSQL, SQLite files and the MongoDB
# test server), then the unit tests and the MongoDB <-> SQLite end-to-end test again under
# AddressSanitizer + UBSan, a bounded run of every fuzz target (scripts/fuzz.sh ci), the
# end-to-end and topology tests under ThreadSanitizer, then the docker/ consistency checks and
# the .deb package's contents.
#   scripts/test.sh            everything
#   scripts/test.sh unit       unit tests only (fast)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build"
status=0
if [ "$what" = unit ]; then
  ctest --test-dir "$root/build" -L unit --output-on-failure || status=1
  exit $status
fi
ctest --test-dir "$root/build" --output-on-failure --timeout 900 || status=1
echo "== sanitizer build (ASan + UBSan): unit tests =="
"$root/scripts/build.sh" "$root/build-asan" -DARRAYSYNC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$root/build-asan" -L unit --output-on-failure || status=1
echo "== fuzz targets (libFuzzer, ASan + UBSan + LeakSanitizer): a bounded run of each =="
"$root/scripts/fuzz.sh" ci || status=1
echo "== sanitizer build: the connector end to end (MongoDB <-> SQLite, kill -9 included) =="
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  bash "$root/tests/integration/test_e2e.sh" "$root/build-asan" sqlite || status=1
echo "== ThreadSanitizer build: the connector end to end and the topologies =="
"$root/scripts/build.sh" "$root/build-tsan" -DARRAYSYNC_TSAN=ON -DCMAKE_BUILD_TYPE=Debug
# detect_deadlocks=0: a batch holds the stripe locks of all its keys (ordered, so no cycle),
# more than TSan's deadlock detector can track per thread
export TSAN_OPTIONS="halt_on_error=1 detect_deadlocks=0 suppressions=$root/tests/tsan.supp"
bash "$root/tests/integration/test_e2e.sh" "$root/build-tsan" sqlite || status=1
bash "$root/tests/integration/test_e2e.sh" "$root/build-tsan" topology || status=1
unset TSAN_OPTIONS
echo "== docker/ consistency =="
bash "$root/tests/scripts/check_docker.sh" || status=1
echo "== the .deb package =="
bash "$root/tests/scripts/check_package.sh" "$root/build" || status=1
if [ $status -ne 0 ]; then
  # the failing checks again at the end, where a shortened log still shows them
  echo "== what failed =="
  for d in "$root"/build*/Testing/Temporary; do
    [ -f "$d/LastTestsFailed.log" ] || continue
    while IFS=: read -r _ name; do
      echo "-- $(basename "$(dirname "$(dirname "$d")")"): $name"
      # that test's output: its failing checks, then its last lines
      awk -v t="Test: $name" 'index($0, t) { on = 1 } on && /^<end of output>/ { exit } on' \
        "$d/LastTest.log" >"$d/failed.out" || true
      grep -E '^(FAIL|Traceback)|:[FE]:|[1-9][0-9]* failed' "$d/failed.out" | tail -20 || true
      echo "   ... its last lines:"
      tail -n 8 "$d/failed.out"
    done <"$d/LastTestsFailed.log"
  done
fi
exit $status
