#!/usr/bin/env bash
# Connector CPU per delta under each conflict strategy, on the same stream in one run
# (bench/bench_stream.py --bulk-only: ROWS inserts, then ROWS updates of those rows, SQLite ->
# PostgreSQL and back), every strategy on a fresh database of one private PostgreSQL, REPS
# rounds in turn; prints each figure and its ratio to lww's in the same round.
#
#   bench/bench_strategies.sh [BUILD_DIR] [ROWS] [REPS]
#
# Strategies: lww, vector, script (a trivial resolve, called for conflicts only: there are
# none here, so it costs what vector costs plus the script's presence), script-always
# (`call: always`: resolve() for every update).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${ARRAYSYNC_BUILD:-$root/build}}
build=$(cd "$build" && pwd)
rows=${2:-20000}
reps=${3:-2}
[ -x "$build/arraysync" ] || { echo "bench_strategies.sh: $build/arraysync missing" >&2; exit 2; }
work=$(mktemp -d /tmp/arraysync-bstrat-XXXXXX)
chmod 755 "$work"
cleanup() {
  "$root/tests/scripts/pg_server.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
pport=$("$root/tests/scripts/free_port.sh")
dsn0=$("$root/tests/scripts/pg_server.sh" start "$work/pg" "$pport")
echo "# bench_strategies  $(date -u +%Y-%m-%dT%H:%MZ)  rows=$rows reps=$reps  $(nproc) cpu, load $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
for r in $(seq 1 "$reps"); do
  declare -A base=()
  for s in lww vector script script-always; do
    db="bstrat_${r}_${s//-/_}"
    PGOPTIONS="-c client_min_messages=warning" psql "$dsn0" -qAt -c "CREATE DATABASE $db" >/dev/null
    dsn="${dsn0% dbname=*} dbname=$db"
    out=$(/usr/bin/python3 "$root/bench/bench_stream.py" --bin "$build/arraysync" --dsn "$dsn" \
      --work "$work/$db" --rows "$rows" --bulk-only --strategy "$s" 2>/dev/null) || status=1
    while read -r line; do
      name=$(echo "$line" | awk '{print $1}')
      us=$(echo "$line" | sed -n 's/.*connector_us_per_delta=\([0-9.]*\).*/\1/p')
      [ -n "$us" ] || { echo "round $r $s: $line"; status=1; continue; }
      if [ "$s" = lww ]; then
        base[$name]=$us
        echo "round $r $s $name us_per_delta=$us"
      else
        echo "round $r $s $name us_per_delta=$us ratio_to_lww=$(awk -v a="$us" -v b="${base[$name]}" 'BEGIN{printf "%.2f", a/b}')"
      fi
    done <<< "$(echo "$out" | grep '^stream\.')"
  done
  unset base
done
exit $status
