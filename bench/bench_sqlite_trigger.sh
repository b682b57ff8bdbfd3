#!/usr/bin/env bash
# What each part of the SQLite capture trigger costs, measured inside SQLite (the sqlite3 shell,
# one INSERT ... SELECT of ROWS rows, so no per-statement overhead of a client):
#
#   bench/bench_sqlite_trigger.sh [BUILD_DIR] [ROWS] [REPS]   (defaults: $ARRAYSYNC_BUILD or
#                                                              <repo>/build, 300000, 3)
#
# `arraysync install` creates the table, the bookkeeping tables and the capture triggers of a
# six-column mapping in an empty file; each variant is a copy of that file with the insert
# trigger replaced. Each round times the same insert in every variant in turn, so the
# machine's noise spreads over all of them. Printed: the best time of each and its rate as a
# ratio to the table without a trigger (the same run):
#   plain        no capture trigger
#   shipped      the insert trigger `install` creates: origin checked in WHEN, a json image
#                of every mapped column (typed: reals printed exactly, blobs as hex), origin,
#                a time at least the last changelog row's + 1 µs
#   key_only     that trigger with the key in place of the json image
#   key_no_ts    key only, the time from the clock alone (no read of the last changelog row)
#   bare_row     a changelog row with the key and constants: no origin, no clock (what any
#                trigger writing a row per change costs at least)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${ARRAYSYNC_BUILD:-$root/build}}
rows=${2:-300000}
reps=${3:-3}
[ -x "$build/arraysync" ] || { echo "bench_sqlite_trigger.sh: $build/arraysync missing" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "bench_sqlite_trigger.sh: the sqlite3 shell is missing" >&2; exit 2; }
work=$(mktemp -d /tmp/arraysync-trigger-XXXXXX)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/mappings"
cat > "$work/mappings/bench.yaml" <<'YAML'
mapping: bench
collection: bench
table: bench
key: id
columns:
  id:    { field: _id, type: int64 }
  name:  { field: name, type: text }
  qty:   { field: qty, type: int64 }
  price: { field: price, type: double }
  total: { field: total, type: decimal }
  at:    { field: at, type: timestamp }
YAML
cat > "$work/arraysync.yaml" <<'YAML'
nodes:
  one: { kind: sqlite, path: template.db }
  two: { kind: sqlite, path: other.db }
state: state.db
mappings: "mappings/*.yaml"
log: { level: warn }
YAML
(cd "$work" && "$build/arraysync" install -c arraysync.yaml >/dev/null 2>&1) ||
  { echo "bench_sqlite_trigger.sh: arraysync install failed" >&2; exit 1; }
shipped=$(sqlite3 "$work/template.db" "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = '_arraysync_bench_ins'")
[ -n "$shipped" ] || { echo "bench_sqlite_trigger.sh: no insert trigger installed" >&2; exit 1; }
sqlite3 "$work/template.db" "DROP TRIGGER _arraysync_bench_ins; DROP TRIGGER _arraysync_bench_upd; DROP TRIGGER _arraysync_bench_del; PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null

clock="CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) * 1000"
ts="max($clock, coalesce((SELECT ts FROM _arraysync_changelog ORDER BY seq DESC LIMIT 1), 0) + 1)"
origin="(SELECT origin FROM _arraysync_origin WHERE id = 1)"
head="CREATE TRIGGER bench_ins AFTER INSERT ON bench"
ins="INSERT INTO _arraysync_changelog (tbl, op, old, new, origin, ts) VALUES ('bench', 'insert', NULL"

variants="plain shipped key_only key_no_ts bare_row"
trigger() {
  case $1 in
  plain) echo "" ;;
  shipped) echo "$shipped;" ;;
  key_only) echo "$head WHEN $origin IS NOT '-' BEGIN $ins, NEW.id, $origin, $ts); END;" ;;
  key_no_ts) echo "$head WHEN $origin IS NOT '-' BEGIN $ins, NEW.id, $origin, $clock); END;" ;;
  bare_row) echo "$head BEGIN $ins, NEW.id, NULL, 0); END;" ;;
  esac
}
load="WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $rows)
INSERT INTO bench (id, name, qty, price, total, at)
SELECT i, 'name ' || i, i % 100, i * 1.5, '12.50', '2026-01-01T00:00:00.000Z' FROM c;"

declare -A best
for ((r = 0; r < reps; r++)); do
  for v in $variants; do
    db="$work/$v.db"
    rm -f "$db" "$db-wal" "$db-shm"
    cp "$work/template.db" "$db"
    t=$(printf 'PRAGMA synchronous=NORMAL;\n%s\n.timer on\n%s\n' "$(trigger "$v")" "$load" | sqlite3 "$db" |
      sed -n 's/^Run Time: real \([0-9.]*\).*/\1/p' | tail -1)
    [ -n "$t" ] || { echo "bench_sqlite_trigger.sh: no timing for $v" >&2; exit 1; }
    want=$rows
    [ "$v" = plain ] && want=0
    got=$(sqlite3 "$db" "SELECT (SELECT count(*) FROM _arraysync_changelog) || ' ' || (SELECT count(*) FROM bench)")
    [ "$got" = "$want $rows" ] || { echo "bench_sqlite_trigger.sh: $v: changelog and table rows $got, want $want $rows" >&2; exit 1; }
    if [ -z "${best[$v]:-}" ] || awk -v a="$t" -v b="${best[$v]}" 'BEGIN { exit !(a < b) }'; then
      best[$v]=$t
    fi
  done
done
for v in $variants; do
  awk -v v="$v" -v t="${best[$v]}" -v p="${best[plain]}" -v n="$rows" -v reps="$reps" \
    'BEGIN { printf "sqlite.trigger_cost variant=%s rows=%d best_of=%d seconds=%.3f rows_per_s=%.0f ratio_to_plain=%.2f\n", v, n, reps, t, n / t, p / t }'
done
