#!/usr/bin/env bash
# Private PostgreSQL for tests: initdb + pg_ctl as a non-root user, loopback only.
#   pg_server.sh start DIR PORT   -> prints the connection string on stdout
#   pg_server.sh stop DIR
# When run as root, the server runs as the user "arraysync_test" (created if missing); DIR is
# handed to that user. Data lives in DIR/data, the socket in DIR. wal_level = logical (or
# $ARRAYSYNC_TEST_PG_WAL_LEVEL, e.g. replica: capture: auto then uses triggers) with room
# for replication slots/senders (logical-decoding capture); initdb's pg_hba.conf trusts local
# replication connections; the role arraysync_pw (tests) must give a password.
set -euo pipefail
cmd=${1:?usage: pg_server.sh start DIR PORT | stop DIR}
dir=${2:?DIR required}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$PGBIN/pg_ctl" ] || { echo "pg_server.sh: no PostgreSQL server binaries (run scripts/install-deps.sh)" >&2; exit 1; }
RUNAS=()
if [ "$(id -u)" -eq 0 ]; then
  id arraysync_test >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin arraysync_test
  RUNAS=(runuser -u arraysync_test --)
fi
case "$cmd" in
  start)
    port=${3:?PORT required}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ ${#RUNAS[@]} -gt 0 ]; then
      chown -R arraysync_test "$dir"
      # the server user must be able to reach DIR (mktemp -d makes 0700 parents)
      p=$(dirname "$dir"); while [ "$p" != "/" ]; do chmod o+x "$p" 2>/dev/null || true; p=$(dirname "$p"); done
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      "${RUNAS[@]}" "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
      cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 128MB
max_wal_size = 2GB
logging_collector = off
wal_level = ${ARRAYSYNC_TEST_PG_WAL_LEVEL:-logical}
max_replication_slots = 40
max_wal_senders = 40
CONF
      # one role must give a password (tests of permanent connection errors)
      { echo "host all arraysync_pw 127.0.0.1/32 scram-sha-256"; cat "$dir/data/pg_hba.conf"; } >"$dir/hba.tmp"
      "${RUNAS[@]}" cp "$dir/hba.tmp" "$dir/data/pg_hba.conf"
      rm -f "$dir/hba.tmp"
    fi
    "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "-p $port" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    echo "host=127.0.0.1 port=$port user=postgres dbname=postgres"
    ;;
  stop)
    dir=$(cd "$dir" 2>/dev/null && pwd) || exit 0
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: pg_server.sh start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
