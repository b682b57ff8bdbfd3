#!/usr/bin/env bash
# `arraysync verify` with MongoDB (the test server unless ARRAYSYNC_TEST_MONGODB_URI is set),
# a private PostgreSQL and SQLite files (tests/integration/verify_it.py).
#   test_verify.sh BUILD_DIR [property,differences,drift]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
only=${2:-}
work=$(mktemp -d /tmp/arraysync-verify-XXXXXX)
mport=""
cleanup() {
  [ -n "$mport" ] && "$root/tests/scripts/mongo_server.sh" stop "$mport" "$work/mongo" >/dev/null 2>&1 || true
  "$root/tests/scripts/pg_server.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
uri=${ARRAYSYNC_TEST_MONGODB_URI:-}
if [ -z "$uri" ]; then
  mport=$("$root/tests/scripts/free_port.sh")
  "$root/tests/scripts/mongo_server.sh" start "$mport" "$work/mongo" >/dev/null
  uri="mongodb://127.0.0.1:$mport/?replicaSet=rs0"
fi
pport=$("$root/tests/scripts/free_port.sh")
dsn=$("$root/tests/scripts/pg_server.sh" start "$work/pg" "$pport")
/usr/bin/python3 "$root/tests/integration/verify_it.py" --build "$build" --uri "$uri" --dsn "$dsn" \
  --work "$work/run" ${only:+--only "$only"}
