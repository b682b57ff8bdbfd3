#!/usr/bin/env bash
# integration.test_postgres: the PostgreSQL adapter against a private server.
#   bash tests/integration/test_postgres.sh BUILD_DIR
# Starts PostgreSQL (tests/scripts/pg_server.sh) on a free port in a fresh temp dir, runs
# BUILD_DIR/it_postgres (C tests, incl. psql outside sessions), then psql-driven checks of a
# node installed by it_postgres's "keep" step, and stops the server on exit.
set -euo pipefail
build=${1:?usage: test_postgres.sh BUILD_DIR}
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
echo "test_postgres: server on port $port"

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
q "INSERT INTO t_keep.users VALUES ('p1', 'p1@x', 1, 1.5)"
q "UPDATE t_keep.users SET n = 2 WHERE id = 'p1'"
q "BEGIN; SET LOCAL arraysync.origin = 'mongo'; INSERT INTO t_keep.users VALUES ('p2', 'p2@x', 3, 0); COMMIT"
expect changelog_ops "I,U,I" "$(q "SELECT string_agg(op, ',' ORDER BY seq) FROM arraysync.changelog")"
expect changelog_origin "mongo" "$(q "SELECT origin FROM arraysync.changelog WHERE key->>'id' = 'p2'")"
expect changelog_text "1.5" "$(q "SELECT new->>'score' FROM arraysync.changelog WHERE op = 'I' AND key->>'id' = 'p1'")"
q "UPDATE t_keep.users SET id = id WHERE id = 'p1'"
expect no_op_update "3" "$(q "SELECT count(*) FROM arraysync.changelog")"
"$build/it_postgres" "$dsn" keep_uninstall >/dev/null || fail=1
expect uninstalled "t" "$(q "SELECT to_regnamespace('arraysync') IS NULL")"
expect rows_kept "2" "$(q "SELECT count(*) FROM t_keep.users")"
echo "psql checks: $pass passed, $bad failed"
[ "$bad" -eq 0 ] || fail=1
exit $fail
