#!/usr/bin/env bash
# The README's first command: a demo of the real sync on the embedded default.
# MongoDB: the project's test server (a stand-in for MongoDB; set MONGODB_URI to use a real
# replica set instead) <-> SQLite file, with mappings/examples/arraysync.yaml.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
BUILD_TARGET=arraysync scripts/build.sh "$root/build"
bin=$root/build/arraysync
PY=/usr/bin/python3
work=$(mktemp -d /tmp/arraysync-demo-XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -n "${own_mongo:-}" ] && tests/scripts/mongo_server.sh stop "$own_mongo" "$work/mongo" || true
}
trap cleanup EXIT
if [ -z "${MONGODB_URI:-}" ]; then
  own_mongo=$(tests/scripts/free_port.sh)
  tests/scripts/mongo_server.sh start "$own_mongo" "$work/mongo" >/dev/null
  export MONGODB_URI="mongodb://127.0.0.1:$own_mongo/?replicaSet=rs0"
  echo "== MongoDB: the project's TEST SERVER (tests/mongo_server, a stand-in, not MongoDB) at $MONGODB_URI"
else
  echo "== MongoDB: $MONGODB_URI"
fi
export MONGODB_DATABASE=${MONGODB_DATABASE:-arraysync_demo_$$}
export SQLITE_PATH=$work/shop.db ARRAYSYNC_STATE=$work/state.db
cfg=mappings/examples/arraysync.yaml
echo "== SQLite: $SQLITE_PATH    state store: $ARRAYSYNC_STATE"
echo "== arraysync check -c $cfg (first lines)"
"$bin" check -c "$cfg" | sed -n '1,12p'

start() { "$bin" run -c "$cfg" >>"$work/run.log" 2>&1 & pid=$!; }
stop() { kill -TERM "$pid"; wait "$pid"; echo "   (connector stopped cleanly, exit $?)"; pid=; }
wait_for() { # wait_for DESCRIPTION COMMAND... : retry until the command prints something non-empty
  local what=$1; shift
  for _ in $(seq 1 100); do
    out=$("$@" 2>/dev/null || true)
    if [ -n "$out" ] && [ "$out" != null ]; then echo "$out"; return 0; fi
    sleep 0.1
  done
  echo "demo: timed out waiting for $what; connector log:" >&2; tail -n 30 "$work/run.log" >&2; exit 1
}
mongo() { $PY scripts/demo_mongo.py "$MONGODB_URI" "$MONGODB_DATABASE" "$@"; }
row() { sqlite3 -header -column "$SQLITE_PATH" "select id, email, name, balance, tags, extra from users where id = 'u1' $1"; }

echo; echo "== 1. start the connector; insert a document in MongoDB"
start
sleep 1
mongo insert u1
echo "   MongoDB: $(mongo show u1)"
echo "   SQLite row (appears within milliseconds):"
wait_for "the row in SQLite" row "" | sed 's/^/     /'

echo; echo "== 2. update the row with the sqlite3 shell"
sqlite3 "$SQLITE_PATH" "update users set email = 'ada@analytical.engine' where id = 'u1'"
wait_for "the update in MongoDB" bash -c "$PY scripts/demo_mongo.py '$MONGODB_URI' '$MONGODB_DATABASE' show u1 | grep analytical" | sed 's/^/   MongoDB: /'

echo; echo "== 3. a conflict: with the connector stopped, both sides change the same user"
stop
mongo set u1 email mongo-side@example.com
sleep 0.05
sqlite3 "$SQLITE_PATH" "update users set email = 'sqlite-side@example.com' where id = 'u1'"
echo "   MongoDB wrote first, SQLite wrote later: last-write-wins keeps the SQLite value"
start
wait_for "convergence" bash -c "$PY scripts/demo_mongo.py '$MONGODB_URI' '$MONGODB_DATABASE' show u1 | grep sqlite-side" | sed 's/^/   MongoDB: /'
row "" | sed 's/^/   SQLite:  /'
sleep 0.5
stop
echo; echo "== status"
"$bin" status -c "$cfg"
echo; echo "demo done (log: $work/run.log)"
