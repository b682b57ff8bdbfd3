#!/usr/bin/env bash
# Runs every benchmark in bench/ and prints all figures (see bench/README.md).
#
#   bench/run.sh [SCALE] [BUILD_DIR]
#
# SCALE (default 1, may be fractional: 0.2 for a quick look) multiplies every size; at 1 the
# whole run takes about 5 minutes on 2 cores. BUILD_DIR (default $ARRAYSYNC_BUILD or
# <repo>/build) must hold a Release build of arraysync and the bench_* programs:
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2
# Starts and stops its own private PostgreSQL (tests/scripts/pg_server.sh) and MongoDB test
# server (tests/scripts/mongo_server.sh) on free 127.0.0.1 ports; nothing else is touched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scale=${1:-1}
build=${2:-${ARRAYSYNC_BUILD:-$root/build}}
build=$(cd "$build" && pwd)
PY=/usr/bin/python3
for b in arraysync bench_postgres bench_sqlite bench_mongodb bench_e2e bench_children bench_verify bench_resolve bench_lua; do
  [ -x "$build/$b" ] || { echo "run.sh: $build/$b missing (build with -DCMAKE_BUILD_TYPE=Release)" >&2; exit 2; }
done
n() { $PY -c "import sys; print(max(1, int(float(sys.argv[1]) * float(sys.argv[2]))))" "$1" "$scale"; }

work=$(mktemp -d /tmp/arraysync-bench-XXXXXX)
chmod 755 "$work"
mport=""
cleanup() {
  [ -n "$mport" ] && "$root/tests/scripts/mongo_server.sh" stop "$mport" "$work/mongo" >/dev/null 2>&1 || true
  "$root/tests/scripts/pg_server.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

pport=$("$root/tests/scripts/free_port.sh")
dsn=$("$root/tests/scripts/pg_server.sh" start "$work/pg" "$pport")
mport=$("$root/tests/scripts/free_port.sh")
"$root/tests/scripts/mongo_server.sh" start "$mport" "$work/mongo" >/dev/null
uri="mongodb://127.0.0.1:$mport/?replicaSet=rs0"
mpid=$(cat "$work/mongo/mongo_server.pid")
mkdb() { PGOPTIONS="-c client_min_messages=warning" psql "$dsn" -qAt -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null; echo "${dsn% dbname=*} dbname=$1"; }

t_all=$(date +%s)
echo "# arraysync benchmarks  $(date -u +%Y-%m-%dT%H:%MZ)  scale=$scale  $(nproc) cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "# PostgreSQL $(psql "$dsn" -qAt -c 'show server_version') (fsync off), MongoDB: the Python test server (tests/mongo_server)"
section() { echo; echo "## $1  (+$(( $(date +%s) - t_all ))s)"; }

section "bench_postgres: adapter vs COPY, capture cost, changelog read"
"$build/bench_postgres" "$(mkdb bench_pg)" "$(n 100000)"

section "bench_sqlite: adapter vs raw inserts, capture overhead, changelog read"
mkdir -p "$work/sqlite"
"$build/bench_sqlite" "$(n 100000)" "$work/sqlite"

section "bench_mongodb: transcoding, change stream through the adapter"
# (bounded: its stream part has been seen to wait forever on the test server)
ARRAYSYNC_TEST_MONGODB_URI="$uri" timeout 180 stdbuf -oL "$build/bench_mongodb" "$(n 50000)" "$(n 10000)" \
  || echo "bench_mongodb: exit status $? (124 = killed after 180 s)"

section "bench_e2e: snapshot path from a BSON dump vs binary COPY"
docs=$(n 50000)
$PY "$root/bench/bench_e2e.py" gen --docs "$docs" --bson "$work/docs.bson" --mapping "$work/customers.yaml"
"$build/bench_e2e" "$(mkdb bench_e2e_c)" "$work/customers.yaml" "$work/docs.bson" 3

section "bench_children: snapshot path, orders as a child table vs as jsonb"
"$build/bench_children" "$(mkdb bench_children)" "$work/docs.bson" 3 logical
"$build/bench_children" "$(mkdb bench_children)" "$work/docs.bson" 3 triggers

section "bench_e2e: arraysync run, snapshot MongoDB test server -> PostgreSQL"
$PY "$root/bench/bench_e2e.py" snapshot --bin "$build/arraysync" --uri "$uri" --dsn "$dsn" \
  --pg-dir "$work/pg" --mongo-pid "$mpid" --work "$work/snapshot" --bson "$work/docs.bson"

section "bench_e2e: arraysync run, streaming both ways (latency, throughput, CPU)"
$PY "$root/bench/bench_e2e.py" stream --bin "$build/arraysync" --uri "$uri" --dsn "$dsn" \
  --pg-dir "$work/pg" --mongo-pid "$mpid" --work "$work/stream" --rates 1000,5000 \
  --seconds "$($PY -c "print(max(3.0, 8 * float('$scale')))")"

section "bench_stream: arraysync run streaming SQLite <-> PostgreSQL (no Python in the data path)"
$PY "$root/bench/bench_stream.py" --bin "$build/arraysync" --dsn "$(mkdb bench_lite_pg)" --work "$work/bstream" \
  --rows "$(n 50000)" --rate 1000 --seconds "$($PY -c "print(max(3.0, 8 * float('$scale')))")"

section "latency of single isolated changes through arraysync run (MongoDB <-> PostgreSQL)"
$PY "$root/bench/latency_isolated.py" --bin "$build/arraysync" --uri "$uri" --dsn "$(mkdb bench_latency)" \
  --work "$work/latency" --n "$(n 100)"

section "bench_e2e: peak RSS of arraysync run during a snapshot (SQLite -> PostgreSQL)"
$PY "$root/bench/bench_e2e.py" rss --bin "$build/arraysync" --dsn "$dsn" --work "$work/rss" \
  --rows "$(n 100000),$(n 300000)"

section "bench_verify: arraysync verify vs a plain full fetch (PostgreSQL + SQLite; test server + SQLite)"
$PY "$root/bench/bench_verify.py" --build "$build" --dsn "$dsn" --uri "$uri" --work "$work/verify" \
  --docs "$(n 1000000)" --mongo-docs "$(n 5000)"

section "bench_wire: bytes on the MongoDB wire per delta, plain vs compressors=zstd (own test server)"
$PY "$root/bench/bench_wire.py" --bin "$build/arraysync" --docs "$(n 5000)" --work "$work/wire"

section "bench_resolve / bench_lua: conflict resolution per decision (vector vs lww) and per Lua call"
"$build/bench_resolve" "$(n 2000000)"
"$build/bench_lua" "$(n 200000)"

section "bench_at_rest: what a synced row costs at rest (SQLite -> SQLite first copy through arraysync run)"
"$root/bench/bench_at_rest.sh" "$build" "$(n 200000)"

echo
echo "# done in $(( $(date +%s) - t_all ))s"
