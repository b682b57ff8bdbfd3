#!/usr/bin/env bash
# integration.test_conflicts: `arraysync conflicts list | show | resolve` against two SQLite
# nodes and a private PostgreSQL. Conflicts are recorded into the state store the way the
# engine does (BUILD_DIR/it_conflicts calls as_state_conflict_record); resolve must write the
# chosen row on a node as a new change that `arraysync run` carries to every node — after the
# fact (run not running) and while run is running (with the arraysync_conflicts_open gauge);
# and on a mapping with no SQL node, two MongoDB databases (conflicts_mongo.py).
#   bash tests/integration/test_conflicts.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: test_conflicts.sh BUILD_DIR}" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$build/arraysync
rec=$build/it_conflicts
PY=/usr/bin/python3
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
tmp=$(mktemp -d /tmp/arraysync-it-conflicts.XXXXXX)
rpid=
cleanup() {
  [ -n "$rpid" ] && kill -TERM "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null || true
  bash "$root/tests/scripts/pg_server.sh" stop "$tmp/pg" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
pass=0; bad=0
ok() { pass=$((pass + 1)); }
no() { bad=$((bad + 1)); echo "FAIL $1" >&2; [ -z "${2:-}" ] || { echo "--- output:" >&2; cat "$2" >&2 || true; }; }
expect_rc() { # NAME WANT OUTFILE CMD...
  local name=$1 want=$2 out=$3; shift 3
  set +e; "$@" >"$out" 2>&1; local rc=$?; set -e
  if [ "$rc" = "$want" ]; then ok; else no "$name: exit $rc, want $want" "$out"; fi
}
has() { if grep -qF -- "$2" "$3"; then ok; else no "$1: no line with '$2'" "$3"; fi; }
same() { if [ "$2" = "$3" ]; then ok; else no "$1: want '$2', got '$3'"; fi; }

pport=$(bash "$root/tests/scripts/free_port.sh")
dsn=$(bash "$root/tests/scripts/pg_server.sh" start "$tmp/pg" "$pport")
pq() { "$PGBIN/psql" -X -q -t -A -F '|' -v ON_ERROR_STOP=1 -d "$dsn" -c "$1"; }
lq() { $PY -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("pragma busy_timeout=5000")
for r in c.execute(sys.argv[2]): print("|".join("" if v is None else str(v) for v in r))
c.commit()' "$1" "$2"; }
row_of() { # NODE ID -> name|qty|note
  case $1 in
    pg) pq "SELECT name, qty, note FROM public.items WHERE id = '$2'" ;;
    *) lq "$tmp/$1.db" "SELECT name, qty, note FROM items WHERE id = '$2'" ;;
  esac
}

mkdir -p "$tmp/maps"
cat >"$tmp/maps/items.yaml" <<'YAML'
mapping: items
collection: items
table: items
key: id
columns:
  id:   { field: _id,  type: text }
  name: { field: name, type: text }
  qty:  { field: qty,  type: bigint }
  note: { field: note, type: text }
conflict: { strategy: lww }
YAML
cat >"$tmp/c.yaml" <<YAML
nodes:
  lite1: { kind: sqlite, path: "$tmp/lite1.db" }
  pg: { kind: postgres, dsn: "$dsn", schema: public }
  lite2: { kind: sqlite, path: "$tmp/lite2.db" }
state: state.db
mappings: "maps/*.yaml"
YAML
state=$tmp/state.db

# ---- three rows made on lite1 reach every node
expect_rc install 0 "$tmp/o" "$bin" install -c "$tmp/c.yaml"
lq "$tmp/lite1.db" "INSERT INTO items(id, name, qty, note) VALUES ('k1', 'A', 1, 'n1'), ('k2', 'A2', 20, 'n2'), ('k3', 'A3', 30, 'n3')"
expect_rc run.first 0 "$tmp/run1" "$bin" run -c "$tmp/c.yaml" --exit-when-idle 2s
for n in lite1 pg lite2; do same "first.$n" "A|1|n1" "$(row_of $n k1)"; done

# ---- conflicts recorded as the engine does
now=$($PY -c 'import time; print(int(time.time() * 1e6))')
id1=$("$rec" "$state" items '{"id":"k1"}' vector '["name","qty"]' lite1 1 \
  lite1 '{"id":"k1","name":"A","qty":1,"note":"n1"}' '{"lite1":2,"pg":1}' "$now" \
  pg '{"name":"B","qty":2}' '{"pg":2}' "$((now + 1500))")
id2=$("$rec" "$state" items '{"id":"k2"}' vector '["note"]' pg 1 \
  pg '{"id":"k2","note":null}' - - lite2 - - -)
id3=$("$rec" "$state" items '{"id":"k3"}' vector '["name"]' pg 1 \
  lite2 '{"id":"k3","name":"L3"}' '{"lite2":5}' "$now" pg '{"id":"k3","name":"P3"}' '{"pg":4}' "$now")
id4=$("$rec" "$state" items '{"id":"k1"}' lww '["qty"]' pg 0 pg - - - lite2 '{"qty":7}' - -)
same ids "1 2 3 4" "$id1 $id2 $id3 $id4"

# ---- list --json: every field
expect_rc list.json 0 "$tmp/list.json" "$bin" conflicts list -c "$tmp/c.yaml" --json
if $PY - "$tmp/list.json" "$now" <<'PYEOF'; then ok; else no "list.json fields" "$tmp/list.json"; fi
import json, sys, datetime
a = json.load(open(sys.argv[1])); now = int(sys.argv[2])
def iso(us):
    return datetime.datetime.fromtimestamp(us // 1000000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % (us % 1000000)
assert [c["id"] for c in a] == [1, 2, 3, 4], a
c = a[0]
assert c["mapping"] == "items" and c["key"] == {"id": "k1"}, c
assert c["status"] == "open" and c["strategy"] == "vector" and c["chosen"] == "lite1", c
assert c["columns"] == ["name", "qty"], c
l, r = c["versions"]
assert l == {"side": "local", "node": "lite1", "row": {"id": "k1", "name": "A", "qty": 1, "note": "n1"},
             "vv": {"lite1": 2, "pg": 1}, "ts": iso(now)}, l
assert r == {"side": "remote", "node": "pg", "row": {"name": "B", "qty": 2}, "vv": {"pg": 2},
             "ts": iso(now + 1500)}, r
assert c["created"].endswith("Z") and c["resolved"] is None and c["resolved_row"] is None, c
c = a[1]
assert c["versions"][0]["row"] == {"id": "k2", "note": None}, c   # null kept, not dropped
assert c["versions"][1] == {"side": "remote", "node": "lite2", "row": None, "vv": None, "ts": None}, c
c = a[3]
assert c["status"] == "resolved" and c["strategy"] == "lww" and c["resolved"] is not None, c
PYEOF
expect_rc list.open 0 "$tmp/o" "$bin" conflicts list -c "$tmp/c.yaml" --open --json
same list.open "1,2,3" "$($PY -c 'import json,sys; print(",".join(str(c["id"]) for c in json.load(open(sys.argv[1]))))' "$tmp/o")"
expect_rc list.text 0 "$tmp/o" "$bin" conflicts list -c "$tmp/c.yaml" --mapping items
has list.text.line '#1 ' "$tmp/o"
has list.text.fields 'mapping=items key={"id":"k1"} strategy=vector columns=name,qty local=lite1 remote=pg chosen=lite1' "$tmp/o"
has list.text.count '4 conflicts listed (3 open in all, 4 recorded)' "$tmp/o"
expect_rc list.other 0 "$tmp/o" "$bin" conflicts list -c "$tmp/c.yaml" --mapping nosuch --json
same list.other "[]" "$(cat "$tmp/o")"

# ---- show: side by side, disputed columns marked
expect_rc show 0 "$tmp/show" "$bin" conflicts show 1 -c "$tmp/c.yaml"
has show.head 'conflict 1 [open]: mapping items, key {"id":"k1"}, strategy vector' "$tmp/show"
has show.fallback 'meanwhile the fallback chose: lite1' "$tmp/show"
has show.sides 'local (lite1)' "$tmp/show"
has show.sides2 'remote (pg)' "$tmp/show"
if grep -qE '^\* name +"A" +"B"' "$tmp/show"; then ok; else no "show.name disputed" "$tmp/show"; fi
if grep -qE '^  note +"n1" +\(not recorded\)' "$tmp/show"; then ok; else no "show.note" "$tmp/show"; fi
has show.vv '{"lite1":2,"pg":1}' "$tmp/show"
expect_rc show.json 0 "$tmp/o" "$bin" conflicts show 2 -c "$tmp/c.yaml" --json
same show.json.id 2 "$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$tmp/o")"

# ---- errors (exit codes as dlq: 1 runtime, 2 usage)
expect_rc err.noid 1 "$tmp/o" "$bin" conflicts resolve 99 -c "$tmp/c.yaml" --take remote
has err.noid.msg 'conflict 99: no such conflict' "$tmp/o"
expect_rc err.resolved 1 "$tmp/o" "$bin" conflicts resolve 4 -c "$tmp/c.yaml" --take remote
has err.resolved.msg 'conflict 4 is already resolved' "$tmp/o"
expect_rc err.node 2 "$tmp/o" "$bin" conflicts resolve 1 -c "$tmp/c.yaml" --take nosuch
has err.node.msg "unknown node 'nosuch' (the configuration has: lite1, pg, lite2)" "$tmp/o"
printf '{"id": "k2",\n  "name": oops}\n' >"$tmp/bad.json"
expect_rc err.rowparse 2 "$tmp/o" "$bin" conflicts resolve 2 -c "$tmp/c.yaml" --row "$tmp/bad.json"
has err.rowparse.pos "$tmp/bad.json:2:" "$tmp/o"
expect_rc err.rowmissing 2 "$tmp/o" "$bin" conflicts resolve 2 -c "$tmp/c.yaml" --row "$tmp/nothere.json"
has err.rowmissing.msg "$tmp/nothere.json: unable to open" "$tmp/o"
printf '{"name": "R", "colour": "red"}\n' >"$tmp/unknown.json"
expect_rc err.rowcol 2 "$tmp/o" "$bin" conflicts resolve 2 -c "$tmp/c.yaml" --row "$tmp/unknown.json"
has err.rowcol.msg "unknown column 'colour' of mapping items" "$tmp/o"
printf '{"id": "other", "name": "R"}\n' >"$tmp/otherkey.json"
expect_rc err.rowkey 2 "$tmp/o" "$bin" conflicts resolve 2 -c "$tmp/c.yaml" --row "$tmp/otherkey.json"
has err.rowkey.msg "key column id differs" "$tmp/o"
expect_rc err.usage 2 "$tmp/o" "$bin" conflicts resolve 1 -c "$tmp/c.yaml"
expect_rc err.usage2 2 "$tmp/o" "$bin" conflicts frobnicate -c "$tmp/c.yaml"
expect_rc err.still_open 0 "$tmp/o" "$bin" conflicts list -c "$tmp/c.yaml" --open --json
same err.still_open "3" "$($PY -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$tmp/o")"

# ---- resolve while run is not running: take remote (pg's recorded columns over its row)
expect_rc resolve.remote 0 "$tmp/o" "$bin" conflicts resolve 1 -c "$tmp/c.yaml" --take remote
has resolve.remote.msg 'took pg; wrote the row on pg as a new change' "$tmp/o"
same resolve.remote.pg "B|2|n1" "$(row_of pg k1)"
same resolve.remote.lite1_before "A|1|n1" "$(row_of lite1 k1)"
printf '{"id": "k2", "name": "R2", "note": null}\n' >"$tmp/row.json"
expect_rc resolve.row 0 "$tmp/o" "$bin" conflicts resolve 2 -c "$tmp/c.yaml" --row "$tmp/row.json"
has resolve.row.msg "wrote the row on lite1" "$tmp/o"
same resolve.row.lite1 "R2|20|" "$(row_of lite1 k2)"
expect_rc resolve.after 0 "$tmp/o" "$bin" conflicts show 1 -c "$tmp/c.yaml" --json
if $PY - "$tmp/o" <<'PYEOF'; then ok; else no "resolve.after record" "$tmp/o"; fi
import json, sys
c = json.load(open(sys.argv[1]))
assert c["status"] == "resolved" and c["chosen"] == "pg" and c["resolved"], c
assert c["resolved_row"] == {"id": "k1", "name": "B", "qty": 2, "note": "n1"}, c
assert c["versions"][0]["row"]["name"] == "A", c  # both versions stay recorded
PYEOF
expect_rc run.after 0 "$tmp/run2" "$bin" run -c "$tmp/c.yaml" --exit-when-idle 2s
for n in lite1 pg lite2; do
  same "propagated.k1.$n" "B|2|n1" "$(row_of $n k1)"
  same "propagated.k2.$n" "R2|20|" "$(row_of $n k2)"
done

# ---- resolve --all while run is running; the gauge follows the store
mport=$(bash "$root/tests/scripts/free_port.sh")
"$bin" run -c "$tmp/c.yaml" --metrics "127.0.0.1:$mport" >"$tmp/run3" 2>&1 &
rpid=$!
metric() { $PY - "$mport" "$1" <<'PYEOF'
import sys, time, urllib.request
for _ in range(100):
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=2).read().decode()
        for line in body.splitlines():
            if line.startswith(sys.argv[2] + " "):
                print(line.split()[-1]); sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
print("absent")
PYEOF
}
same gauge.before 1 "$(metric 'arraysync_conflicts_open{mapping="items"}')"
expect_rc resolve.all 0 "$tmp/o" "$bin" conflicts resolve --all -c "$tmp/c.yaml" --take local --mapping items
has resolve.all.msg 'took lite2; wrote the row on lite2 as a new change' "$tmp/o"
has resolve.all.count '1 conflicts resolved, 0 failed' "$tmp/o"
same resolve.all.lite2 "L3|30|n3" "$(row_of lite2 k3)"
same gauge.after 0 "$(metric 'arraysync_conflicts_open{mapping="items"}')"
for n in pg lite1; do
  got=
  for _ in $(seq 1 150); do got=$(row_of $n k3); [ "$got" = "L3|30|n3" ] && break; sleep 0.2; done
  same "live.k3.$n" "L3|30|n3" "$got"
done
same counter.strategy 0 "$(metric 'arraysync_conflicts_total{source="lite2",target="pg",mapping="items",strategy="lww"}')"
kill -TERM "$rpid"; wait "$rpid" || no "run.live exit" "$tmp/run3"; rpid=
expect_rc none.open 0 "$tmp/o" "$bin" conflicts list -c "$tmp/c.yaml" --open --json
same none.open "[]" "$(cat "$tmp/o")"

# ---- a mapping with no SQL node (two MongoDB databases): the chosen row is written on MongoDB,
# unmarked, and travels like a local change (conflicts_mongo.py; the MongoDB test server, or
# ARRAYSYNC_TEST_MONGODB_URI)
if $PY "$root/tests/integration/conflicts_mongo.py" --bin "$bin" --work "$tmp/mongo" >"$tmp/cm" 2>&1; then
  ok
else
  no "conflicts_mongo.py" "$tmp/cm"
fi

echo "test_conflicts: $pass passed, $bad failed"
[ "$bad" -eq 0 ]
