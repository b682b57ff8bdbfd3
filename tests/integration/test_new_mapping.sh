#!/usr/bin/env bash
# A mapping added to the configuration later copies what its table already holds (per-mapping
# copies within a stream that resumes from its checkpoint), and streams from then on; a stream
# never copies a mapping twice. Two SQLite files, written with the sqlite3 shell.
#   test_new_mapping.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: $0 BUILD_DIR}
BIN="$BUILD/arraysync"
W=$(mktemp -d /tmp/arraysync-newmap-XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
check() { # DESCRIPTION WANT GOT
  if [ "$2" = "$3" ]; then echo "PASS $1"; else echo "FAIL $1: wanted [$2], got [$3]"; fails=$((fails + 1)); fi
}
mapping() { # NAME
  cat > "$W/$1.yaml" <<EOM
mapping: $1
collection: $1
table: $1
key: id
columns:
  id: { field: _id, type: text }
  val: { field: val, type: text }
EOM
}
config() { # MAPPING...
  local list
  list=$(printf '%s.yaml, ' "$@")
  cat > "$W/arraysync.yaml" <<EOM
nodes:
  a: { kind: sqlite, path: $W/a.db }
  b: { kind: sqlite, path: $W/b.db }
mappings: [${list%, }]
state: $W/state.db
EOM
}
run() { "$BIN" run -c "$W/arraysync.yaml" --exit-when-idle 2s >>"$W/log" 2>&1; }
mapping items; mapping stuff
config items
"$BIN" install -c "$W/arraysync.yaml" >>"$W/log" 2>&1
sqlite3 "$W/a.db" "insert into items(id, val) values ('k1', 'x')"
run
check "first mapping copied" "k1|x" "$(sqlite3 "$W/b.db" 'select id, val from items')"
# a table that exists with rows on a before its mapping is configured
sqlite3 "$W/a.db" "create table stuff(id text primary key, val text); insert into stuff values ('s1', 'one'), ('s2', 'two')"
config items stuff
run
check "the added mapping's existing rows copied" "s1|one s2|two" "$(sqlite3 "$W/b.db" 'select id, val from stuff order by id' | tr '\n' ' ' | sed 's/ $//')"
check "the copy is logged" "1" "$(grep -c 'pair:a->b.*mapping stuff is new on this stream' "$W/log")"
sqlite3 "$W/a.db" "insert into stuff values ('s3', 'three')"
sqlite3 "$W/b.db" "update stuff set val = 'TWO' where id = 's2'"
run
check "the added mapping streams both ways (b)" "s1|one s2|TWO s3|three" "$(sqlite3 "$W/b.db" 'select id, val from stuff order by id' | tr '\n' ' ' | sed 's/ $//')"
check "the added mapping streams both ways (a)" "s1|one s2|TWO s3|three" "$(sqlite3 "$W/a.db" 'select id, val from stuff order by id' | tr '\n' ' ' | sed 's/ $//')"
check "copied once only" "1" "$(grep -c 'pair:a->b.*mapping stuff is new on this stream' "$W/log")"
if [ "$fails" -ne 0 ]; then tail -n 40 "$W/log"; echo "test_new_mapping: $fails failed"; exit 1; fi
echo "test_new_mapping: all passed"
