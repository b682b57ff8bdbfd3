#!/usr/bin/env bash
# Convergence under concurrent writers on every node (tests/integration/converge.py): every
# topology over MongoDB + PostgreSQL + SQLite, contended shared keys, with and without kill -9.
# Cases named *-full write whole rows only (inserts, upserts, deletes: the original report's
# load); the others add updates of one or several columns, meta.n set/increment, a one-column
# upsert, clearing a column.
# MongoDB comes from ARRAYSYNC_TEST_MONGODB_URI, or the project's test server started here.
#
#   test_converge.sh BUILD_DIR            the CI set (~8-10 minutes on 2 cores)
#   test_converge.sh BUILD_DIR CASE...    some cases, by name (see CASES below)
#   test_converge.sh BUILD_DIR vector     the strategy-vector set (test_converge_vector.sh)
#   test_converge.sh BUILD_DIR issue      manual: the original report's runs (whole-row writes):
#                                         ring [mongo, pg, lite], two writers per node, 60 s of
#                                         load + up to 180 s of quiescence; then the same ring
#                                         with kill -9 every 2-6 s during 120 s of load (~10 min)
#   test_converge.sh BUILD_DIR soak       manual: peer-to-peer, six writers at ~450 writes/s in
#                                         all, kill -9 every 2-6 s for 600 s (~15 minutes)
#
# Environment: CONVERGE_LOG_LEVEL (connector log level, default debug), CONVERGE_ARGS (more
# converge.py flags for every case, e.g. "--seed 42"), CONVERGE_KEEP=1 (keep the work directory).
# The logs and write logs of failing cases are copied to /tmp/arraysync-converge-failed/CASE/.
# Each case prints its seed; rerun one with CONVERGE_ARGS="--seed N" test_converge.sh BUILD CASE.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
shift || true
work=$(mktemp -d /tmp/arraysync-converge-XXXXXX)
mport=""
cleanup() {
  [ -n "$mport" ] && "$root/tests/scripts/mongo_server.sh" stop "$mport" "$work/mongo" >/dev/null 2>&1 || true
  "$root/tests/scripts/pg_server.sh" stop "$work/pg" >/dev/null 2>&1 || true
  if [ "${CONVERGE_KEEP:-0}" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
py=/usr/bin/python3
conv="$root/tests/integration/converge.py"
"$py" "$conv" --self-test

if [ -z "${ARRAYSYNC_TEST_MONGODB_URI:-}" ]; then
  mport=$("$root/tests/scripts/free_port.sh")
  "$root/tests/scripts/mongo_server.sh" start "$mport" "$work/mongo" >/dev/null
  export ARRAYSYNC_TEST_MONGODB_URI="mongodb://127.0.0.1:$mport/?replicaSet=rs0"
fi
pport=$("$root/tests/scripts/free_port.sh")
dsn=$("$root/tests/scripts/pg_server.sh" start "$work/pg" "$pport")

NODES3=mongo:mongodb,pg:postgres,lite:sqlite
# CI load: 2 writers per node at 50 writes/s each (~300/s in all), 60 shared keys taking 60% of
# the writes, 20 s; quiescence ends as soon as every node is equal for 3 s (or after 45 s, or when
# nothing changed for 25 s): at most ~80 s a case, so the set stays under ctest's 900 s.
LOAD="--writers 2 --rate 50 --shared 60 --shared-frac 0.6 --duration 20 --quiesce 45 --stall 25"
# Cases with --settle-after 300ms settle version records during the load (the default, 5 s,
# leaves streams too few empty polls to settle much before the load ends): decisions then meet
# keys whose write records are gone (docs/ARCHITECTURE.md, "The state store").
SETTLE="--settle-after 300ms"
declare -A CASES=(
  [p2p]="--topology peer-to-peer --nodes $NODES3"
  [p2p-kill]="--topology peer-to-peer --nodes $NODES3 --kill 2-6 --drop 4-9 $SETTLE"
  [p2p-kill-full]="--topology peer-to-peer --nodes $NODES3 --kill 2-6 --ops full"
  [ring-full]="--topology ring --nodes $NODES3 --order mongo,pg,lite --ops full"
  [ring]="--topology ring --nodes $NODES3 --order mongo,pg,lite"
  [ring-kill]="--topology ring --nodes $NODES3 --order mongo,pg,lite --kill 2-6 $SETTLE"
  [ring-kill-full]="--topology ring --nodes $NODES3 --order mongo,pg,lite --kill 2-6 --ops full"
  [hub-mongo]="--topology hub-and-spoke --nodes $NODES3 --hub mongo"
  [hub-pg-kill]="--topology hub-and-spoke --nodes $NODES3 --hub pg --kill 2-6 $SETTLE"
  [hub-lite-4]="--topology hub-and-spoke --nodes $NODES3,lite2:sqlite --hub lite"
  [p2p-vector-kill]="--topology peer-to-peer --nodes $NODES3 --kill 2-6 --strategy vector $SETTLE"
  [ring-vector]="--topology ring --nodes $NODES3 --order mongo,pg,lite --strategy vector"
  [hub-vector]="--topology hub-and-spoke --nodes $NODES3 --hub pg --strategy vector $SETTLE"
)
ORDER=(p2p p2p-kill p2p-kill-full ring-full ring ring-kill ring-kill-full hub-mongo hub-pg-kill hub-lite-4)
VECTOR_ORDER=(p2p-vector-kill ring-vector hub-vector)  # test_converge_vector.sh

run_case() {  # NAME FLAGS...
  local name=$1; shift
  local dir="$work/$name"
  mkdir -p "$dir"
  echo "== $name"
  # shellcheck disable=SC2086
  if "$py" "$conv" --bin "$build/arraysync" --work "$dir" --pg-dsn "$dsn" --name "conv_${name//-/_}" \
      --log-level "${CONVERGE_LOG_LEVEL:-debug}" "$@" ${CONVERGE_ARGS:-} >"$dir/out.txt" 2>"$dir/err.txt"; then
    grep -E '^(converge: PASS|load:|writes:|contention:|restarts|drain:|verify --quick|streams |  [a-z0-9_]+->[a-z0-9_]+ )' "$dir/out.txt" || true
    return 0
  fi
  cat "$dir/out.txt"
  tail -n 20 "$dir/err.txt" >&2 || true
  local keep=/tmp/arraysync-converge-failed/$name
  rm -rf "$keep" && mkdir -p "$keep"
  cp "$dir"/out.txt "$dir"/err.txt "$dir"/connector.log "$dir"/writes.jsonl "$dir"/final.json "$dir"/arraysync.yaml "$dir"/state.db* "$keep"/ 2>/dev/null || true
  echo "   (logs kept in $keep)"
  return 1
}

status=0
failed=()
case "${1:-ci}" in
  ci)
    for c in "${ORDER[@]}"; do
      # shellcheck disable=SC2086
      run_case "$c" ${CASES[$c]} $LOAD || { status=1; failed+=("$c"); }
    done ;;
  vector)
    for c in "${VECTOR_ORDER[@]}"; do
      # shellcheck disable=SC2086
      run_case "$c" ${CASES[$c]} $LOAD || { status=1; failed+=("$c"); }
    done ;;
  issue)
    run_case issue-ring --topology ring --nodes $NODES3 --order mongo,pg,lite --ops full --writers 2 --rate 75 \
      --duration 60 --quiesce 180 --stall 0 || { status=1; failed+=(issue-ring); }
    run_case issue-ring-kill --topology ring --nodes $NODES3 --order mongo,pg,lite --ops full --writers 2 --rate 75 \
      --duration 120 --kill 2-6 --quiesce 180 --stall 0 || { status=1; failed+=(issue-ring-kill); }
    ;;
  soak)
    run_case soak-p2p-kill --topology peer-to-peer --nodes $NODES3 --ops full --writers 2 --rate 75 --duration 600 \
      --kill 2-6 --quiesce 300 --stall 0 || { status=1; failed+=(soak-p2p-kill); }
    ;;
  *)
    for c in "$@"; do
      [ -n "${CASES[$c]:-}" ] || { echo "unknown case $c (cases: ${ORDER[*]}, issue, soak)" >&2; exit 2; }
      # shellcheck disable=SC2086
      run_case "$c" ${CASES[$c]} $LOAD || { status=1; failed+=("$c"); }
    done ;;
esac
if [ $status -ne 0 ]; then echo "converge: FAILED cases: ${failed[*]}"; else echo "converge: all cases passed"; fi
exit $status
