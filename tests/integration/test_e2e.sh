#!/usr/bin/env bash
# End-to-end: `arraysync run` between MongoDB and SQLite, then MongoDB and PostgreSQL.
# MongoDB comes from ARRAYSYNC_TEST_MONGODB_URI, or the project's test server started here.
#   test_e2e.sh BUILD_DIR [sqlite|postgres|topology]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
which=${2:-all}
work=$(mktemp -d /tmp/arraysync-e2e-XXXXXX)
mport=""
cleanup() {
  [ -n "$mport" ] && "$root/tests/scripts/mongo_server.sh" stop "$mport" "$work/mongo" >/dev/null 2>&1 || true
  "$root/tests/scripts/pg_server.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
if [ -z "${ARRAYSYNC_TEST_MONGODB_URI:-}" ]; then
  mport=$("$root/tests/scripts/free_port.sh")
  "$root/tests/scripts/mongo_server.sh" start "$mport" "$work/mongo" >/dev/null
  export ARRAYSYNC_TEST_MONGODB_URI="mongodb://127.0.0.1:$mport/?replicaSet=rs0"
fi
status=0
if [ "$which" = all ] || [ "$which" = sqlite ]; then
  echo "== MongoDB <-> SQLite"
  mkdir -p "$work/sqlite"
  /usr/bin/python3 "$root/tests/integration/e2e.py" --bin "$build/arraysync" \
    --sql "sqlite:$work/sqlite/e2e.db" --work "$work/sqlite" || { status=1; cp "$work/sqlite/connector.log" /tmp/arraysync-e2e-sqlite-failed.log; tail -n 40 "$work/sqlite/connector.log"; }
fi
if [ "$which" = all ] || [ "$which" = postgres ]; then
  echo "== MongoDB <-> PostgreSQL"
  mkdir -p "$work/postgres"
  pport=$("$root/tests/scripts/free_port.sh")
  dsn=$("$root/tests/scripts/pg_server.sh" start "$work/pg" "$pport")
  /usr/bin/python3 "$root/tests/integration/e2e.py" --bin "$build/arraysync" \
    --sql "postgres:$dsn" --work "$work/postgres" || { status=1; cp "$work/postgres/connector.log" /tmp/arraysync-e2e-postgres-failed.log; tail -n 40 "$work/postgres/connector.log"; }
fi
if [ "$which" = all ] || [ "$which" = topology ]; then
  echo "== topologies: MongoDB + three SQLite files"
  mkdir -p "$work/topology"
  /usr/bin/python3 "$root/tests/integration/e2e_topology.py" --bin "$build/arraysync" --work "$work/topology" \
    || { status=1; for f in "$work"/topology/*/connector.log; do echo "--- $f"; tail -n 30 "$f"; done; }
fi
exit $status
