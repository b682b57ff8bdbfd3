/* pg_sql.h — every fixed SQL text of the PostgreSQL adapter in one place (STYLE.md §7).
 * Per-table SQL (DDL, trigger functions, upserts) is assembled in the .c files from quoted
 * identifiers only; values are always bound parameters. */
#ifndef AS_PG_SQL_H
#define AS_PG_SQL_H

/* Session settings every adapter connection uses, so that ::text output is in the forms
 * as_value_from_text parses (ISO dates in UTC, shortest exact floats, hex bytea). The trigger
 * functions carry the same settings as SET clauses, independent of the writer's session. */
#define PG_SQL_SESSION                                                                  \
  "SET datestyle TO 'ISO, YMD'; SET timezone TO 'UTC'; SET extra_float_digits TO 1; " \
  "SET bytea_output TO 'hex'; SET intervalstyle TO 'iso_8601'"
#define PG_SQL_FUNC_SETTINGS                                                  \
  " SET datestyle TO 'ISO, YMD' SET timezone TO 'UTC' SET extra_float_digits TO 1" \
  " SET bytea_output TO 'hex'"

/* ---- install ---- */
#define PG_SCHEMA_VERSION 1
#define PG_SQL_LOCK "SELECT pg_advisory_xact_lock(7231946501)"
#define PG_SQL_BOOTSTRAP                                            \
  "CREATE SCHEMA IF NOT EXISTS arraysync; "                         \
  "CREATE TABLE IF NOT EXISTS arraysync.meta(key text PRIMARY KEY, value text)"
#define PG_SQL_GET_VERSION \
  "SELECT coalesce((SELECT value::int FROM arraysync.meta WHERE key = 'schema_version'), 0)"
#define PG_SQL_SET_VERSION                                                        \
  "INSERT INTO arraysync.meta(key, value) VALUES ('schema_version', $1) "         \
  "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"

/* Upgrade steps: PG_SQL_UPGRADE[v] brings a version-v installation to v+1. */
#define PG_SQL_UPGRADE_0_TO_1                                                              \
  "CREATE TABLE arraysync.changelog("                                                      \
  "  seq bigserial PRIMARY KEY,"                                                           \
  "  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),"                                     \
  "  tbl text NOT NULL, op char(1) NOT NULL, key jsonb, old jsonb, new jsonb,"             \
  "  origin text, ts bigint NOT NULL); "                                                   \
  "CREATE INDEX changelog_txid_idx ON arraysync.changelog(txid); "                         \
  "CREATE TABLE arraysync.consumers(name text PRIMARY KEY, position text,"                 \
  "  horizon xid8, updated_at timestamptz); "                                              \
  "CREATE TABLE arraysync.checkpoints(stream_id text PRIMARY KEY, position text NOT NULL," \
  "  updated_at timestamptz); "                                                            \
  "CREATE FUNCTION arraysync.arraysync_notify() RETURNS trigger LANGUAGE plpgsql AS "      \
  "$f$ BEGIN PERFORM pg_notify('arraysync_changes', ''); RETURN NULL; END $f$"

#define PG_SQL_COLUMNS                                                            \
  "SELECT column_name, data_type, udt_name FROM information_schema.columns "       \
  "WHERE table_schema = $1 AND table_name = $2"
/* $1 regclass text, $2 jsonb array of key column names: is there a unique index (or primary
 * key) on exactly these columns, usable by ON CONFLICT? */
#define PG_SQL_HAS_UNIQUE_KEY                                                                \
  "SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1::regclass AND i.indisunique" \
  " AND i.indpred IS NULL AND i.indexprs IS NULL"                                            \
  " AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_attribute a"     \
  "      WHERE a.attrelid = i.indrelid"                                                      \
  "        AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1]))"                    \
  "   = (SELECT array_agg(x ORDER BY x) FROM jsonb_array_elements_text($2::jsonb) x))"
#define PG_SQL_TABLE_EXISTS "SELECT to_regclass($1) IS NOT NULL"
#define PG_SQL_SCHEMA_EXISTS "SELECT to_regnamespace('arraysync') IS NOT NULL"
#define PG_SQL_UNINSTALL "DROP SCHEMA IF EXISTS arraysync CASCADE"

/* Expression for the changelog ts column: µs since the epoch of the trigger's clock. */
#define PG_SQL_TS_EXPR "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
#define PG_SQL_ORIGIN_EXPR "nullif(current_setting('arraysync.origin', true), '')"

/* ---- capture ---- */
#define PG_SQL_LISTEN "LISTEN arraysync_changes"
#define PG_SQL_CURRENT_SNAPSHOT "SELECT pg_current_snapshot()::text"
/* One window: rows of transactions visible in the current snapshot ($2) and not in the
 * previous one ($1), after seq $3, in seq order. The txid range lets the index help. */
#define PG_SQL_WINDOW                                                                        \
  "SELECT seq, txid::text, tbl, op, key::text, old::text, new::text, origin, ts"            \
  " FROM arraysync.changelog"                                                                \
  " WHERE seq > $3::bigint"                                                                  \
  "   AND pg_visible_in_snapshot(txid, $2::pg_snapshot)"                                     \
  "   AND NOT pg_visible_in_snapshot(txid, $1::pg_snapshot)"                                 \
  " ORDER BY seq LIMIT $4::bigint"
/* Lower bound of a new window (min seq - 1, or max bigint when empty): read once per window
 * through the txid index, so the window pages above walk the seq index from there instead of
 * re-reading the whole window for every page. */
#define PG_SQL_WINDOW_START                                                                  \
  "SELECT coalesce(min(seq) - 1, 9223372036854775807) FROM arraysync.changelog"             \
  " WHERE txid >= pg_snapshot_xmin($1::pg_snapshot) AND txid < pg_snapshot_xmax($2::pg_snapshot)" \
  "   AND pg_visible_in_snapshot(txid, $2::pg_snapshot)"                                     \
  "   AND NOT pg_visible_in_snapshot(txid, $1::pg_snapshot)"
#define PG_SQL_CONSUMER_SET                                                               \
  "INSERT INTO arraysync.consumers(name, position, horizon, updated_at)"                  \
  " VALUES ($1, $2, pg_snapshot_xmin($3::pg_snapshot), now())"                            \
  " ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position,"                       \
  " horizon = EXCLUDED.horizon, updated_at = EXCLUDED.updated_at"
#define PG_SQL_PURGE                                                                  \
  "DELETE FROM arraysync.changelog"                                                   \
  " WHERE txid < (SELECT min(horizon) FROM arraysync.consumers)"

/* ---- snapshot ---- */
#define PG_SQL_ESTIMATE \
  "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::regclass"

/* ---- sink ---- */
#define PG_SQL_BEGIN "BEGIN"
#define PG_SQL_COMMIT "COMMIT"
#define PG_SQL_ROLLBACK "ROLLBACK"
#define PG_SQL_SET_ORIGIN "SELECT set_config('arraysync.origin', $1, true)"
#define PG_SQL_SAVEPOINT "SAVEPOINT arraysync_sp"
#define PG_SQL_RELEASE "RELEASE SAVEPOINT arraysync_sp"
#define PG_SQL_ROLLBACK_TO "ROLLBACK TO SAVEPOINT arraysync_sp"
#define PG_SQL_CHECKPOINT_SET                                                        \
  "INSERT INTO arraysync.checkpoints(stream_id, position, updated_at)"               \
  " VALUES ($1, $2, now()) ON CONFLICT (stream_id) DO UPDATE"                        \
  " SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at"
#define PG_SQL_CHECKPOINT_GET \
  "SELECT position FROM arraysync.checkpoints WHERE stream_id = $1"

#endif
