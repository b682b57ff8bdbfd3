#!/usr/bin/env bash
# Conflict strategies, deterministically (tests/integration/strategies.py): MongoDB + PostgreSQL
# + SQLite in every topology (peer-to-peer, hub-and-spoke, ring) with strategy vector (fallback
# lww, fallback keep-local) and strategy script; edits made while the connector is stopped, then
# `arraysync run --exit-when-idle 3s`; whole rows compared on every node, the conflict log
# checked key by key; `conflicts resolve --take NODE` carried to every node. Everything twice:
# PostgreSQL by logical decoding, then by trigger capture (whose changelog rows carry the
# values for these mappings). Then, under a live load in every topology, which keys get a
# conflict against an oracle that knows which writes were concurrent (conflict_oracle.py).
# MongoDB comes from ARRAYSYNC_TEST_MONGODB_URI, or the project's test server started here.
#   test_strategies.sh BUILD_DIR [TOPOLOGY-STRATEGY ...]   (e.g. ring-script; default: all nine)
# STRATEGIES_KEEP=1 keeps the work directory (connector logs per case).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
shift || true
work=$(mktemp -d /tmp/arraysync-strategies-XXXXXX)
mport=""
cleanup() {
  [ -n "$mport" ] && "$root/tests/scripts/mongo_server.sh" stop "$mport" "$work/mongo" >/dev/null 2>&1 || true
  "$root/tests/scripts/pg_server.sh" stop "$work/pg" >/dev/null 2>&1 || true
  if [ "${STRATEGIES_KEEP:-0}" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
if [ -z "${ARRAYSYNC_TEST_MONGODB_URI:-}" ]; then
  mport=$("$root/tests/scripts/free_port.sh")
  "$root/tests/scripts/mongo_server.sh" start "$mport" "$work/mongo" >/dev/null
  export ARRAYSYNC_TEST_MONGODB_URI="mongodb://127.0.0.1:$mport/?replicaSet=rs0"
fi
pport=$("$root/tests/scripts/free_port.sh")
dsn=$("$root/tests/scripts/pg_server.sh" start "$work/pg" "$pport")
cases=()
for c in "$@"; do cases+=(--case "$c"); done
status=0
/usr/bin/python3 "$root/tests/integration/strategies.py" --bin "$build/arraysync" --work "$work/cases" \
  --pg-dsn "$dsn" ${STRATEGIES_ARGS:-} "${cases[@]}" || status=1
if [ -z "${STRATEGIES_ARGS:-}" ]; then
  echo "== again with PostgreSQL trigger capture, version records settling 300 ms after the streams read past"
  /usr/bin/python3 "$root/tests/integration/strategies.py" --bin "$build/arraysync" --work "$work/cases-triggers" \
    --pg-dsn "$dsn" --pg-capture triggers --settle-after 300ms "${cases[@]}" || status=1
fi
if [ $# -eq 0 ] && [ -z "${STRATEGIES_ARGS:-}" ]; then
  # under a live load: which keys get a conflict, against an oracle (conflict_oracle.py)
  # (hub and ring with version records settling 300 ms after the streams read past)
  for t in p2p hub ring; do
    settle=()
    [ "$t" = p2p ] || settle=(--settle-after 300ms)
    echo "== conflict oracle, $t ${settle[*]}"
    /usr/bin/python3 "$root/tests/integration/conflict_oracle.py" --bin "$build/arraysync" \
      --work "$work/oracle-$t" --topology "$t" --pg-dsn "$dsn" "${settle[@]}" || status=1
  done
fi
if [ $status -ne 0 ]; then
  keep=/tmp/arraysync-strategies-failed
  rm -rf "$keep" && mkdir -p "$keep"
  for d in "$work"/cases/*/ "$work"/cases-triggers/*/ "$work"/oracle-*/; do
    [ -d "$d" ] || continue
    n=${d#"$work"/}
    mkdir -p "$keep/$n" && cp "$d"/connector.log "$d"/arraysync.yaml "$keep/$n" 2>/dev/null || true
  done
  echo "connector logs kept in $keep"
fi
exit $status
