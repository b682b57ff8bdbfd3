#!/usr/bin/env bash
# The first sync of two non-empty SQLite files (written with the sqlite3 shell before any run),
# then of MongoDB + PostgreSQL + SQLite (initial_sync3.py):
# keys on one side are copied, equal keys are left as they are, and a key both hold with
# different values is decided by `initial_sync: { prefer: NODE }`, or reported as a conflict
# (strategy "initial") and left alone.
#   test_initial_sync.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: $0 BUILD_DIR}
BIN="$BUILD/arraysync"
W=$(mktemp -d /tmp/arraysync-initial-XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
check() { # DESCRIPTION WANT GOT
  if [ "$2" = "$3" ]; then echo "PASS $1"; else echo "FAIL $1: wanted [$2], got [$3]"; fails=$((fails + 1)); fi
}
rows() { sqlite3 "$1" 'select id, val from items order by id' | tr '\n' ' ' | sed 's/ $//'; }
setup() { # DIR EXTRA-MAPPING-LINE
  local d=$1
  mkdir -p "$d"
  cat > "$d/items.yaml" <<EOM
mapping: items
collection: items
table: items
key: id
columns:
  id: { field: _id, type: text }
  val: { field: val, type: text }
$2
EOM
  cat > "$d/arraysync.yaml" <<EOM
nodes:
  a: { kind: sqlite, path: $d/a.db }
  b: { kind: sqlite, path: $d/b.db }
mappings: [items.yaml]
state: $d/state.db
EOM
  for n in a b; do sqlite3 "$d/$n.db" "create table items(id text primary key, val text)"; done
  sqlite3 "$d/a.db" "insert into items values ('e1', 'same'), ('k1', 'A'), ('oa', 'only a')"
  sqlite3 "$d/b.db" "insert into items values ('e1', 'same'), ('k1', 'B'), ('ob', 'only b')"
  "$BIN" install -c "$d/arraysync.yaml" >>"$d/log" 2>&1
  "$BIN" run -c "$d/arraysync.yaml" --exit-when-idle 2s >>"$d/log" 2>&1
}
setup "$W/prefer" "initial_sync: { prefer: b }"
check "prefer b: a" "e1|same k1|B oa|only a ob|only b" "$(rows "$W/prefer/a.db")"
check "prefer b: b" "e1|same k1|B oa|only a ob|only b" "$(rows "$W/prefer/b.db")"
check "prefer b: no conflict" "0" "$("$BIN" conflicts list -c "$W/prefer/arraysync.yaml" --json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
setup "$W/report" ""
check "no preference: a keeps its row" "e1|same k1|A oa|only a ob|only b" "$(rows "$W/report/a.db")"
check "no preference: b keeps its row" "e1|same k1|B oa|only a ob|only b" "$(rows "$W/report/b.db")"
check "no preference: one conflict, strategy initial, key k1" "1 initial k1" \
  "$("$BIN" conflicts list -c "$W/report/arraysync.yaml" --json | /usr/bin/python3 -c 'import json,sys; c=json.load(sys.stdin); print(len(c), c[0]["strategy"] if c else "-", c[0]["key"]["id"] if c else "-")')"
# a change made afterwards settles it the ordinary way
sqlite3 "$W/report/a.db" "update items set val = 'A2' where id = 'k1'"
"$BIN" run -c "$W/report/arraysync.yaml" --exit-when-idle 2s >>"$W/report/log" 2>&1
check "a later change reaches both" "k1|A2 k1|A2" "$(sqlite3 "$W/report/a.db" "select id, val from items where id = 'k1'") $(sqlite3 "$W/report/b.db" "select id, val from items where id = 'k1'")"
# Copies of copies: a holds keys N+1..2N, b holds 1..N (nobody synced either). b's copy pages
# through its own rows first and reaches N+1.. after a's copy has written them into b, so it
# reads a's rows back from b without being able to tell when they arrived. Such a copy holds
# no version of its own: a's rows must keep a as their origin (a repair reads the winner from
# the origin) and must not be written back into a (a trigger of the test's counts the writes).
N=20000
d="$W/copies"
mkdir -p "$d"
sed -e "s#$W/prefer#$d#g" "$W/prefer/arraysync.yaml" > "$d/arraysync.yaml"
grep -v initial_sync "$W/prefer/items.yaml" > "$d/items.yaml"
for n in a b; do sqlite3 "$d/$n.db" "create table items(id text primary key, val text)"; done
sqlite3 "$d/a.db" "with recursive c(i) as (select $N + 1 union all select i + 1 from c where i < 2 * $N)
  insert into items select printf('%06d', i), 'a ' || i from c"
sqlite3 "$d/b.db" "with recursive c(i) as (select 1 union all select i + 1 from c where i < $N)
  insert into items select printf('%06d', i), 'b ' || i from c"
"$BIN" install -c "$d/arraysync.yaml" >>"$d/log" 2>&1
sqlite3 "$d/a.db" "create table test_writes(n integer); insert into test_writes values (0);
  create trigger test_upd after update on items when old.id > '$(printf %06d $N)' begin update test_writes set n = n + 1; end;
  create trigger test_ins after insert on items when new.id > '$(printf %06d $N)' begin update test_writes set n = n + 1; end;"
"$BIN" run -c "$d/arraysync.yaml" --exit-when-idle 2s >>"$d/log" 2>&1
check "copies of copies: a and b equal" "$((2 * N)) 0" \
  "$(sqlite3 "$d/b.db" "select count(*) from items") $(diff <(sqlite3 "$d/a.db" "select * from items order by id") \
     <(sqlite3 "$d/b.db" "select * from items order by id") | grep -c '^[<>]')"
check "copies of copies: a's rows keep a as their origin" "$N" \
  "$("$BUILD/arraysync_state_dump" "$d/state.db" items | /usr/bin/python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    r = json.loads(line)
    if "key" in r and json.loads(r["key"])["id"] > sys.argv[1] and r["origin"] == "a":
        n += 1
print(n)' "$(printf %06d $N)")"
check "copies of copies: nothing written back into a" "0" "$(sqlite3 "$d/a.db" "select n from test_writes")"
# MongoDB + PostgreSQL + SQLite, every topology, with and without a preference; MongoDB's
# documents keep their exact bytes where nothing changed (tests/integration/initial_sync3.py)
/usr/bin/python3 "$(dirname "$0")/initial_sync3.py" --bin "$BIN" --work "$W/three" || fails=$((fails + 1))
if [ "$fails" -ne 0 ]; then tail -n 30 "$W"/*/log; echo "test_initial_sync: $fails failed"; exit 1; fi
echo "test_initial_sync: all passed"
