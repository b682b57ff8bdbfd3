#!/usr/bin/env bash
# What a synced row costs at rest: a SQLite -> SQLite first copy of ROWS rows through
# `arraysync run`, then the sizes of what it left, against a plain copy of the same table (one
# INSERT ... SELECT into a table without triggers, as a user would compare).
#
#   bench/bench_at_rest.sh [BUILD_DIR] [ROWS]
#
# Prints the target file against the plain copy (ratio and bytes per key above it), the
# changelog rows the target kept, the state store's bytes per key right after the copy and
# after a second run that idles 12 s (versions settled and the store compacted), and the
# first run's wall time.
# Everything lives in a temporary directory, removed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${ARRAYSYNC_BUILD:-$root/build}}
build=$(cd "$build" && pwd)
rows=${2:-200000}
[ -x "$build/arraysync" ] || { echo "bench_at_rest.sh: $build/arraysync missing" >&2; exit 2; }
work=$(mktemp -d /tmp/arraysync-atrest-XXXXXX)
trap 'rm -rf "$work"' EXIT

table="CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER, note TEXT)"
fill="WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $rows)
      INSERT INTO items SELECT i, 'name-' || i, i * 7 % 1000, printf('note %08d', i) FROM n"
sqlite3 "$work/src.db" "$table" "$fill"
sqlite3 "$work/plain.db" "$table" "ATTACH '$work/src.db' AS s" "INSERT INTO items SELECT * FROM s.items"

mkdir -p "$work/maps"
cat > "$work/maps/items.yaml" <<'EOF'
mapping: items
collection: items
table: items
key: id
columns:
  id:    { field: _id,   type: int64 }
  name:  { field: name,  type: text }
  score: { field: score, type: int64 }
  note:  { field: note,  type: text }
EOF
cat > "$work/arraysync.yaml" <<EOF
nodes:
  a: { kind: sqlite, path: "$work/src.db" }
  b: { kind: sqlite, path: "$work/dst.db" }
state: "$work/state.db"
topology: { type: peer-to-peer }
mappings: "maps/*.yaml"
log: { level: warn }
EOF
t0=$(date +%s.%N)
"$build/arraysync" run -c "$work/arraysync.yaml" --exit-when-idle 2s
t1=$(date +%s.%N)

size() { # file + WAL after a checkpoint
  sqlite3 "$1" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
  local s=$(stat -c %s "$1") w=0
  [ -f "$1-wal" ] && w=$(stat -c %s "$1-wal")
  echo $((s + w))
}
got=$(sqlite3 "$work/dst.db" "SELECT count(*) FROM items")
[ "$got" = "$rows" ] || { echo "bench_at_rest.sh: the target holds $got rows of $rows" >&2; exit 1; }
plain=$(size "$work/plain.db")
dst=$(size "$work/dst.db")
state=$(size "$work/state.db")
logged=$(sqlite3 "$work/dst.db" "SELECT count(*) FROM _arraysync_changelog")
# at rest: the connector run again with nothing to do, long enough for its streams to read past
# its writes (versions.settle_after, 5 s) and the store to settle and compact
"$build/arraysync" run -c "$work/arraysync.yaml" --exit-when-idle 12s
settled=$(size "$work/state.db")
/usr/bin/python3 - "$rows" "$plain" "$dst" "$state" "$logged" "$t0" "$t1" "$settled" <<'EOF'
import sys
rows, plain, dst, state, logged = (int(x) for x in sys.argv[1:6])
t0, t1 = float(sys.argv[6]), float(sys.argv[7])
settled = int(sys.argv[8])
print("at_rest.target_vs_plain rows=%d plain=%d target=%d ratio=%.2f extra_bytes_per_key=%.1f"
      % (rows, plain, dst, dst / plain, (dst - plain) / rows))
print("at_rest.target_changelog rows=%d" % logged)
print("at_rest.state_store bytes=%d bytes_per_key=%.1f" % (state, state / rows))
print("at_rest.state_store_settled bytes=%d bytes_per_key=%.1f" % (settled, settled / rows))
print("at_rest.run seconds=%.2f rows_per_s=%.0f" % (t1 - t0, rows / (t1 - t0)))
EOF
