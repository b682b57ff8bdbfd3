#!/usr/bin/env bash
# integration.test_postgres: the PostgreSQL adapter against a private server.
#   bash tests/integration/test_postgres.sh BUILD_DIR [triggers|logical]
# Starts PostgreSQL (tests/scripts/pg_server.sh, wal_level = logical) on a free port in a fresh
# temp dir, runs BUILD_DIR/it_postgres (C tests, incl. psql outside sessions) with the given
# capture mode (default triggers; test_postgres_logical.sh runs logical), then psql-driven
# checks of a node installed by it_postgres's "keep" step, and stops the server on exit.
set -euo pipefail
build=${1:?usage: test_postgres.sh BUILD_DIR [triggers|logical]}
mode=${2:-triggers}
export IT_PG_CAPTURE=$mode
build=$(cd "$build" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
export PSQL=${PSQL:-$PGBIN/psql}

tmp=$(mktemp -d /tmp/arraysync-it-pg.XXXXXX)
cleanup() {
  bash "$root/tests/scripts/pg_server.sh" stop "$tmp/pg" || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port=$(bash "$root/tests/scripts/free_port.sh")
dsn=$(bash "$root/tests/scripts/pg_server.sh" start "$tmp/pg" "$port")
echo "test_postgres: server on port $port, capture $mode"

fail=0
"$build/it_postgres" "$dsn" || fail=1

# ---- psql-driven checks from an outside session
q() { "$PSQL" -X -q -t -A -v ON_ERROR_STOP=1 -d "$dsn" -c "$1"; }
pass=0; bad=0
expect() { # expect NAME WANT GOT
  if [ "$2" = "$3" ]; then pass=$((pass + 1)); else bad=$((bad + 1)); echo "FAIL psql.$1: want '$2', got '$3'" >&2; fi
}
# every C test uninstalls: nothing of arraysync is left, user tables stay
expect no_schema "t" "$(q "SELECT to_regnamespace('arraysync') IS NULL")"
expect no_triggers "0" "$(q "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'arraysync%'")"
expect no_functions "0" "$(q "SELECT count(*) FROM pg_proc WHERE proname LIKE 'arraysync%'")"
expect user_data_kept "1" "$(q "SELECT count(*) FROM t_install.users")"
# a node left installed by it_postgres keep: outside writes from psql are captured in order
"$build/it_postgres" "$dsn" keep_install >/dev/null || fail=1
if [ "$mode" = triggers ]; then
  q "INSERT INTO t_keep.users VALUES ('p1', 'p1@x', 1, 1.5)"
  q "UPDATE t_keep.users SET n = 2 WHERE id = 'p1'"
  q "BEGIN; SET LOCAL arraysync.origin = 'mongo'; INSERT INTO t_keep.users VALUES ('p2', 'p2@x', 3, 0); COMMIT"
  q "BEGIN; SET LOCAL arraysync.origin = '-'; INSERT INTO t_keep.users VALUES ('p3', 'p3@x', 3, 0); COMMIT"
  expect changelog_ops "I,U,I" "$(q "SELECT string_agg(op, ',' ORDER BY seq) FROM arraysync.changelog")"
  expect changelog_origin "mongo" "$(q "SELECT origin FROM arraysync.changelog WHERE key->0->>'id' = 'p2'")"
  # compact rows: the keys of a statement and, for updates, the changed columns (bit of n's
  # attnum 3)
  expect changelog_key '[{"id": "p1"}]' "$(q "SELECT key FROM arraysync.changelog WHERE op = 'I' AND key->0->>'id' = 'p1'")"
  expect changelog_mask "{4}" "$(q "SELECT cols FROM arraysync.changelog WHERE op = 'U'")"
  q "INSERT INTO t_keep.users SELECT 'b' || g, 'e', g, 0 FROM generate_series(1, 2500) g"
  expect changelog_chunks "3:2500" "$(q "SELECT count(*) || ':' || sum(jsonb_array_length(key)) FROM arraysync.changelog WHERE key->0->>'id' LIKE 'b%'")"
  q "DELETE FROM t_keep.users WHERE id LIKE 'b%'"
  q "DELETE FROM arraysync.changelog WHERE key->0->>'id' LIKE 'b%'"
  q "UPDATE t_keep.users SET id = id WHERE id = 'p1'"
  expect no_op_update "3" "$(q "SELECT count(*) FROM arraysync.changelog")"
  q "TRUNCATE t_keep.users"
  expect truncate_row "T" "$(q "SELECT op FROM arraysync.changelog ORDER BY seq DESC LIMIT 1")"
else
  expect publication "t_keep.users,arraysync.marks" \
    "$(q "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY schemaname DESC) FROM pg_publication_tables WHERE pubname LIKE 'arraysync_pg_%'")"
  expect no_capture_triggers "0" "$(q "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'arraysync%'")"
  # a slot reads what psql writes, with the origin mark of a sink transaction
  q "SELECT pg_create_logical_replication_slot('it_psql', 'pgoutput')" >/dev/null
  # (synchronous_commit on: the SQL interface decodes only WAL already flushed)
  q "SET synchronous_commit TO on; INSERT INTO t_keep.users VALUES ('p1', 'p1@x', 1, 1.5)"
  q "SET synchronous_commit TO on; BEGIN; INSERT INTO arraysync.marks VALUES (pg_backend_pid(), 'mongo') ON CONFLICT (pid) DO UPDATE SET origin = EXCLUDED.origin; INSERT INTO t_keep.users VALUES ('p2', 'p2@x', 3, 0); COMMIT"
  # three Insert messages: p1, the mark row, p2
  expect decoded_inserts "3" "$(q "SELECT count(*) FILTER (WHERE get_byte(data, 0) = 73) FROM pg_logical_slot_get_binary_changes('it_psql', NULL, NULL, 'proto_version', '1', 'publication_names', (SELECT pubname FROM pg_publication WHERE pubname LIKE 'arraysync_pg_%'))")"
  q "SELECT pg_drop_replication_slot('it_psql')" >/dev/null
fi
"$build/it_postgres" "$dsn" keep_uninstall >/dev/null || fail=1
expect uninstalled "t" "$(q "SELECT to_regnamespace('arraysync') IS NULL")"
expect no_slots "0" "$(q "SELECT count(*) FROM pg_replication_slots")"
expect no_publication "0" "$(q "SELECT count(*) FROM pg_publication")"
if [ "$mode" = triggers ]; then
  expect rows_kept "0" "$(q "SELECT count(*) FROM t_keep.users")"
else
  expect rows_kept "2" "$(q "SELECT count(*) FROM t_keep.users")"
fi
echo "psql checks: $pass passed, $bad failed"
[ "$bad" -eq 0 ] || fail=1
exit $fail
