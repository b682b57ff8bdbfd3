#!/usr/bin/env bash
# integration.test_ops: `arraysync infer` and `arraysync check --live` against a private
# PostgreSQL, the MongoDB test server (or ARRAYSYNC_TEST_MONGODB_URI) and SQLite files, and
# `arraysync healthcheck` against a running connector's /healthz.
#   bash tests/integration/test_ops.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: test_ops.sh BUILD_DIR}" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$build/arraysync
PY=/usr/bin/python3
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
tmp=$(mktemp -d /tmp/arraysync-it-ops.XXXXXX)
mport=
cpid=
cleanup() {
  [ -n "$cpid" ] && kill -TERM "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null || true
  bash "$root/tests/scripts/pg_server.sh" stop "$tmp/pg" >/dev/null 2>&1 || true
  [ -n "$mport" ] && sh "$root/tests/scripts/mongo_server.sh" stop "$mport" "$tmp/mongo" >/dev/null 2>&1 || true
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

pport=$(bash "$root/tests/scripts/free_port.sh")
dsn=$(bash "$root/tests/scripts/pg_server.sh" start "$tmp/pg" "$pport")
if [ -n "${ARRAYSYNC_TEST_MONGODB_URI:-}" ]; then
  uri=$ARRAYSYNC_TEST_MONGODB_URI
else
  mport=$(bash "$root/tests/scripts/free_port.sh")
  sh "$root/tests/scripts/mongo_server.sh" start "$mport" "$tmp/mongo" >/dev/null
  uri="mongodb://127.0.0.1:$mport/?replicaSet=rs0"
fi
db=ops_$$
# realistic customers (the benchmark's generator) and messy documents
$PY - "$uri" "$db" "$root" <<'PYEOF'
import random, sys
sys.path.insert(0, sys.argv[3] + "/bench")
import bench_e2e
from bson.int64 import Int64
from pymongo import MongoClient
c = MongoClient(sys.argv[1])[sys.argv[2]]
rnd = random.Random(7)
c.customers.insert_many([bench_e2e.customer(i, rnd) for i in range(300)])
c.messy.insert_many([
    {"_id": "a", "n": 1, "deep": {"x": {"y": {"z": [1, {"w": None}]}}}, "sp ace": "s"},
    {"_id": "b", "n": "two", "deep": {"x": {"y": None}}, "sp ace": None, "only": True},
    {"_id": "c", "n": Int64(3), "deep": {}, "sp ace": "\u00e9"},
])
PYEOF
mkdir -p "$tmp/maps" "$tmp/inferred"
cp "$root/mappings/examples/mappings/users.yaml" "$tmp/maps/"
cat >"$tmp/c.yaml" <<YAML
nodes:
  mongo: { kind: mongodb, uri: "$uri", database: $db }
  pg: { kind: postgres, dsn: "$dsn", schema: public }
  lite: { kind: sqlite, path: "$tmp/lite.db" }
state: state.db
mappings: "maps/*.yaml"
YAML

# ---- infer from documents; the result passes check
expect_rc infer.customers 0 "$tmp/o1" "$bin" infer -c "$tmp/c.yaml" --node mongo --collection customers --sample 200 -o "$tmp/inferred/customers.yaml"
has infer.customers.wrote "infer: wrote $tmp/inferred/customers.yaml" "$tmp/o1"
has infer.customers.objectid 'id: { field: "_id", type: objectid, required: true }' "$tmp/inferred/customers.yaml"
has infer.customers.nested 'profile_address_city: { field: "profile.address.city", type: text, required: true }' "$tmp/inferred/customers.yaml"
has infer.customers.sample '200 sampled documents' "$tmp/inferred/customers.yaml"
expect_rc infer.messy 0 "$tmp/o1b" "$bin" infer -c "$tmp/c.yaml" --node mongo --collection messy --first -o "$tmp/inferred/messy.yaml"
has infer.messy.mixed '#   n: mixed types' "$tmp/inferred/messy.yaml"
has infer.messy.absent '#   only: in 33% of the documents' "$tmp/inferred/messy.yaml"
sed "s#maps/\\*.yaml#inferred/*.yaml#" "$tmp/c.yaml" >"$tmp/c2.yaml"
expect_rc infer.check 0 "$tmp/o2" "$bin" check -c "$tmp/c2.yaml"
has infer.check.ddl 'CREATE TABLE' "$tmp/o2"
expect_rc infer.no_collection 1 "$tmp/o3" "$bin" infer -c "$tmp/c.yaml" --node mongo --collection nothere
has infer.no_collection.msg 'has no collection "nothere"' "$tmp/o3"
expect_rc infer.wrong_kind 2 "$tmp/o4" "$bin" infer -c "$tmp/c.yaml" --node pg --collection customers
has infer.wrong_kind.msg 'node pg (postgres) holds tables, not collections: use --table' "$tmp/o4"

# ---- infer from tables (PostgreSQL, SQLite)
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$dsn" -c "CREATE TABLE accounts (id bigint PRIMARY KEY, owner varchar(80) NOT NULL, opened timestamptz, balance numeric(12,2), doc jsonb)"
# to standard output (logs go to standard error)
"$bin" infer -c "$tmp/c.yaml" --node pg --table accounts >"$tmp/inferred/accounts.yaml" 2>"$tmp/o4b" && ok || no infer.pg "$tmp/o4b"
has infer.pg.key 'id: { field: "_id", type: bigint }   # bigint not null, primary key' "$tmp/inferred/accounts.yaml"
has infer.pg.varchar 'owner: { field: "owner", type: text, required: true }   # character varying(80) not null' "$tmp/inferred/accounts.yaml"
has infer.pg.numeric 'balance: { field: "balance", type: numeric }' "$tmp/inferred/accounts.yaml"
sqlite3 "$tmp/lite.db" "CREATE TABLE items (sku TEXT NOT NULL, n INTEGER, price REAL, PRIMARY KEY (sku, n))"
expect_rc infer.sqlite 0 "$tmp/o4c" "$bin" infer -c "$tmp/c.yaml" --node lite --table items -o "$tmp/inferred/items.yaml"
has infer.sqlite.key 'key: [sku, n]' "$tmp/inferred/items.yaml"
expect_rc infer.check2 0 "$tmp/o5" "$bin" check -c "$tmp/c2.yaml"

# ---- check --live: everything in order
expect_rc live.ok 0 "$tmp/l1" "$bin" check --live -c "$tmp/c.yaml"
has live.ok.pg "✓ node pg: connects to" "$tmp/l1"
has live.ok.mongo "✓ node mongo: connects to" "$tmp/l1"
has live.ok.rs "✓ node mongo: the server is a replica set member or mongos" "$tmp/l1"
has live.ok.lite "✓ node lite: database file $tmp/lite.db and its directory are writable" "$tmp/l1"
has live.ok.state "✓ state store $tmp/state.db is missing; its directory is writable" "$tmp/l1"
has live.ok.summary ' 0 failed' "$tmp/l1"
# a table whose column disagrees with the mapping: named, with the mapping's file:line:col
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$dsn" -c "CREATE TABLE users (id text PRIMARY KEY, email text, name text, balance integer, tags jsonb, last_updated timestamptz, extra jsonb, region text NOT NULL, seq bigint GENERATED ALWAYS AS IDENTITY, since date NOT NULL DEFAULT now())"
expect_rc live.mismatch 1 "$tmp/l2" "$bin" check --live -c "$tmp/c.yaml"
has live.mismatch.col "✗ node pg: column \"public\".\"users\".\"balance\" is integer, the mapping wants numeric ($tmp/maps/users.yaml:" "$tmp/l2"
has live.mismatch.fix 'fix: ALTER TABLE "public"."users" ALTER COLUMN "balance" TYPE numeric' "$tmp/l2"
# a column that fits but holds microseconds: a note (MongoDB dates hold milliseconds)
has live.micro "✓ node pg: column \"public\".\"users\".\"last_updated\" holds microseconds (timestamp with time zone); MongoDB dates hold milliseconds" "$tmp/l2"
# a column the mapping leaves out that every insert must fill: named (columns with a default or
# an identity are not)
has live.required "✗ node pg: column \"region\" of \"public\".\"users\" is NOT NULL without a default and mapping users does not map it" "$tmp/l2"
grep -q -E 'column "(seq|since)" of' "$tmp/l2" && no "live.required: a column with a default or an identity named" "$tmp/l2" || ok
sqlite3 "$tmp/lite.db" "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT, name TEXT, balance TEXT, tags TEXT, last_updated TEXT, extra TEXT, region TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0)"
expect_rc live.required.lite.rc 1 "$tmp/l2b" "$bin" check --live -c "$tmp/c.yaml"
grep -q 'column "n" of table' "$tmp/l2b" && no "live.required.lite: a column with a default named" "$tmp/l2b" || ok
has live.required.lite "✗ node lite: column \"region\" of table \"users\" is NOT NULL without a default and mapping users does not map it" "$tmp/l2b"
"$PGBIN/psql" -X -q -d "$dsn" -c "DROP TABLE users"
sqlite3 "$tmp/lite.db" "DROP TABLE users"
# a mapped generated column: PostgreSQL refuses every row written with a value for it
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$dsn" -c "CREATE TABLE users (id text PRIMARY KEY, email text, name text GENERATED ALWAYS AS (upper(email)) STORED, balance numeric, tags jsonb, last_updated timestamptz, extra jsonb)"
expect_rc live.generated.rc 1 "$tmp/l2c" "$bin" check --live -c "$tmp/c.yaml"
has live.generated "✗ node pg: column \"public\".\"users\".\"name\" is a generated column ($tmp/maps/users.yaml:" "$tmp/l2c"
"$PGBIN/psql" -X -q -d "$dsn" -c "DROP TABLE users"
# a schema whose name needs quoting (capitals, a space) is found as it is
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$dsn" -c 'CREATE SCHEMA "My Schema"'
sed 's#schema: public#schema: "My Schema"#' "$tmp/c.yaml" >"$tmp/c5.yaml"
"$bin" check --live -c "$tmp/c5.yaml" >"$tmp/l5" 2>&1 || true
has live.schema_quoted "✓ node pg: CREATE and USAGE on schema My Schema" "$tmp/l5"
grep -q "✗ node pg: server settings" "$tmp/l5" && no "live.schema_quoted: server settings not read" "$tmp/l5" || ok
# a node that cannot be reached, an unwritable SQLite directory
sed -e "s#port=$pport#port=1#" -e "s#$tmp/lite.db#/proc/arraysync-no/lite.db#" "$tmp/c.yaml" >"$tmp/c3.yaml"
expect_rc live.unreachable 1 "$tmp/l3" "$bin" check --live -c "$tmp/c3.yaml"
has live.unreachable.pg "✗ node pg: connects to" "$tmp/l3"
has live.unreachable.lite "✗ node lite: database file /proc/arraysync-no/lite.db is missing" "$tmp/l3"
grep -q "✓ node mongo: connects to" "$tmp/l3" && ok || no "live.unreachable.others_still_checked" "$tmp/l3"

# ---- healthcheck against a running connector
"$bin" install -c "$tmp/c.yaml" >/dev/null 2>&1 || true
hport=$(bash "$root/tests/scripts/free_port.sh")
"$bin" run -c "$tmp/c.yaml" --metrics "127.0.0.1:$hport" >"$tmp/run.log" 2>&1 & cpid=$!
up=0
for _ in $(seq 1 100); do
  if "$bin" healthcheck "http://127.0.0.1:$hport/healthz" >/dev/null 2>&1; then up=1; break; fi
  sleep 0.1
done
[ "$up" = 1 ] && ok || no "healthcheck: /healthz never answered 200" "$tmp/run.log"
expect_rc health.404 1 "$tmp/h1" "$bin" healthcheck "http://127.0.0.1:$hport/nothing"
has health.404.msg 'answered "HTTP/1.1 404' "$tmp/h1"
kill -TERM "$cpid"; wait "$cpid" || true; cpid=
expect_rc health.down 1 "$tmp/h2" "$bin" healthcheck "http://127.0.0.1:$hport/healthz"
expect_rc health.badurl 2 "$tmp/h3" "$bin" healthcheck "ftp://x/"

# ---- run while a writer's open transaction holds a mapped table (trigger capture)
mkdir -p "$tmp/lk/maps"
printf 'mapping: lk\ntable: lk\ncollection: lk\nkey: id\ncolumns:\n  id: { field: _id, type: text }\n  v: { field: v, type: text }\n' >"$tmp/lk/maps/lk.yaml"
cat >"$tmp/lk/c.yaml" <<YAML
nodes:
  pg: { kind: postgres, dsn: "$dsn", schema: public, capture: triggers }
  lite: { kind: sqlite, path: "$tmp/lk/lite.db" }
state: state.db
mappings: "maps/*.yaml"
YAML
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$dsn" -c "CREATE TABLE lk (id text PRIMARY KEY, v text)"
# not installed yet: creating the triggers waits for the transaction; run retries, then syncs
held() { # until a session holds the table (its insert done, its transaction open)
  for _ in $(seq 1 200); do
    [ "$("$PGBIN/psql" -X -Atq -d "$dsn" -c "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'lk' AND l.mode = 'RowExclusiveLock' AND l.granted")" != 0 ] && return 0
    sleep 0.1
  done
}
"$PGBIN/psql" -X -q -d "$dsn" -c "BEGIN; INSERT INTO lk VALUES ('held', 'x'); SELECT pg_sleep(8); COMMIT" >/dev/null 2>&1 & lpid=$!
held
expect_rc lock.first_run 0 "$tmp/lk1" "$bin" run -c "$tmp/lk/c.yaml" --exit-when-idle 2s
has lock.retried "trying again in" "$tmp/lk1"
wait "$lpid" || true
"$bin" run -c "$tmp/lk/c.yaml" --exit-when-idle 2s >"$tmp/lk1b" 2>&1 || true
[ "$(sqlite3 "$tmp/lk/lite.db" "SELECT v FROM lk WHERE id = 'held'")" = x ] && ok || no "lock: the held row synced" "$tmp/lk1b"
# installed: a run with the triggers as they are does not touch them (no lock, no wait)
"$PGBIN/psql" -X -q -d "$dsn" -c "BEGIN; INSERT INTO lk VALUES ('held2', 'y'); SELECT pg_sleep(60); COMMIT" >/dev/null 2>&1 & lpid=$!
held
expect_rc lock.next_run 0 "$tmp/lk2" "$bin" run -c "$tmp/lk/c.yaml" --exit-when-idle 2s
grep -q "trying again" "$tmp/lk2" && no "lock.next_run: waited for the table" "$tmp/lk2" || ok
kill -0 "$lpid" 2>/dev/null && ok || no "lock.next_run: ended only after the writer's transaction" "$tmp/lk2"
kill "$lpid" 2>/dev/null; wait "$lpid" 2>/dev/null || true

echo "test_ops: $pass passed, $bad failed"
[ "$bad" -eq 0 ]
