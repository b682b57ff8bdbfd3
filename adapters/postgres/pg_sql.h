/* pg_sql.h — every fixed SQL text of the PostgreSQL adapter in one place.
 * Per-table SQL (DDL, trigger functions, upserts) is assembled in the .c files from quoted
 * identifiers and pg_quote_literal only; values are always bound parameters (replication
 * connections take no parameters: the few queries there use pg_quote_literal). */
#ifndef AS_PG_SQL_H
#define AS_PG_SQL_H

/* Session settings every adapter connection uses, so that ::text output is in the forms
 * as_value_from_text parses (ISO dates in UTC, shortest exact floats, hex bytea). The trigger
 * functions carry the same settings as SET clauses, independent of the writer's session. */
#define PG_SQL_SESSION                                                                  \
  "SET datestyle TO 'ISO, YMD'; SET timezone TO 'UTC'; SET extra_float_digits TO 1; " \
  "SET bytea_output TO 'hex'; SET intervalstyle TO 'iso_8601'; "                      \
  "SET standard_conforming_strings TO on"
/* Bounds on the sink's waits: a lock held by another session for longer fails the statement
 * (SQLSTATE 55P03, retried with backoff) instead of holding the stream. */
#define PG_SQL_SINK_TIMEOUTS "SET lock_timeout TO '10s'; SET statement_timeout TO '120s'"
/* Capture decision: wal_level, may the role replicate, database, server version. */
#define PG_SQL_CAPTURE_INFO                                                              \
  "SELECT current_setting('wal_level'), coalesce((SELECT rolsuper OR rolreplication"    \
  " FROM pg_roles WHERE rolname = current_user), false), current_database(),"           \
  " current_setting('server_version_num')::int"

/* ---- install ---- */
#define PG_SCHEMA_VERSION 3
#define PG_SQL_LOCK "SELECT pg_advisory_xact_lock(7231946501)"
#define PG_SQL_INSTALL_LOCK_TIMEOUT "SET LOCAL lock_timeout TO '2s'"
/* (CREATE SCHEMA IF NOT EXISTS asks for CREATE on the database even when the schema exists:
 * a role given its own arraysync schema has no such right) */
#define PG_SQL_BOOTSTRAP                                                                     \
  "DO $b$ BEGIN IF to_regnamespace('arraysync') IS NULL THEN CREATE SCHEMA arraysync;"        \
  " END IF; END $b$; "                                                                        \
  "CREATE TABLE IF NOT EXISTS arraysync.meta(key text PRIMARY KEY, value text)"
#define PG_SQL_GET_VERSION \
  "SELECT coalesce((SELECT value::int FROM arraysync.meta WHERE key = 'schema_version'), 0)"
#define PG_SQL_SET_VERSION                                                        \
  "INSERT INTO arraysync.meta(key, value) VALUES ('schema_version', $1) "         \
  "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"

/* Records of arraysync.meta (pg_bulk.c: foreign keys set aside for a first copy). */
#define PG_SQL_META_PUT                                           \
  "INSERT INTO arraysync.meta(key, value) VALUES ($1, $2) "       \
  "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
#define PG_SQL_META_DEL "DELETE FROM arraysync.meta WHERE key = $1"
#define PG_SQL_META_PREFIX \
  "SELECT key, value FROM arraysync.meta WHERE key LIKE 'dropped\\_fk:%' ORDER BY key"

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

/* Version 2: compact changelog rows (keys + changed-columns masks, values read at poll time;
 * a statement-level trigger writes up to 1000 keys per row as a jsonb array with the masks in
 * `cols` in the same order and their number in `nkeys`; `old`/`new` stay for rows written by
 * version-1 triggers) and the
 * origin marks of the sink for logical-decoding capture (one row per sink connection). */
#define PG_SQL_UPGRADE_1_TO_2                                                              \
  "ALTER TABLE arraysync.changelog ADD COLUMN cols bigint[],"                              \
  " ADD COLUMN nkeys int NOT NULL DEFAULT 1; "                                              \
  "CREATE TABLE arraysync.marks(pid int PRIMARY KEY, origin text)"

/* Version 3: the images of child tables (pg_children.c): per child table and parent key, the
 * parent's child rows as their column texts, written by the child table's trigger in the
 * writer's transaction, so logical decoding carries the array as it was at that change. */
#define PG_SQL_UPGRADE_2_TO_3                                                             \
  "CREATE TABLE IF NOT EXISTS arraysync.child_images(tbl text NOT NULL, key jsonb NOT NULL,"\
  " parent_exists boolean NOT NULL, rows jsonb NOT NULL, PRIMARY KEY (tbl, key))"

/* Columns of a table ($1 = quoted name as text): name, type as written, type name, typmod,
 * attnum, type without modifier, generated (GENERATED ALWAYS AS ... STORED). */
/* (typname and typmod of a domain are its base type's: a domain over text holds text; the
 * typname of an enum type is "enum") */
#define PG_SQL_COLUMNS                                                                      \
  "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"                                 \
  " CASE t.typtype WHEN 'd' THEN b.typname WHEN 'e' THEN 'enum' ELSE t.typname END,"      \
  " CASE WHEN t.typtype = 'd' AND a.atttypmod < 0 THEN t.typtypmod ELSE a.atttypmod END,"  \
  " a.attnum, format_type(a.atttypid, NULL), a.attgenerated <> ''"                          \
  " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"                              \
  " LEFT JOIN pg_type b ON b.oid = t.typbasetype"                                           \
  " WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped"
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
/* Capture triggers present on a table ($1 = quoted name as text), enabled ones only. */
#define PG_SQL_TRIGGERS                                                         \
  "SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal" \
  " AND tgenabled <> 'D' AND tgname LIKE 'arraysync%'"
/* Replica identity of a table ($1 quoted name): 'd' default (primary key), 'i' index,
 * 'f' full, 'n' nothing; and whether it holds every key column ($2 JSON array of names). */
#define PG_SQL_REPLICA_IDENTITY                                                            \
  "SELECT c.relreplident, c.relreplident = 'f' OR coalesce((SELECT array_agg(a.attname::text)" \
  " FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"                       \
  "  AND a.attnum = ANY (i.indkey::int2[])"                                                \
  " WHERE i.indrelid = c.oid AND ((c.relreplident = 'd' AND i.indisprimary)"               \
  "  OR (c.relreplident = 'i' AND i.indisreplident)))"                                     \
  " @> ARRAY(SELECT jsonb_array_elements_text($2::jsonb)), false)"                         \
  " FROM pg_class c WHERE c.oid = $1::regclass"

/* ---- logical decoding: publication and slots ---- */
#define PG_SQL_PUB_EXISTS                                                                      \
  "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1),"                           \
  " coalesce((SELECT pubviaroot FROM pg_publication WHERE pubname = $1), false)"
/* Tables of a publication: schema, table. */
#define PG_SQL_PUB_TABLES \
  "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1"
/* Slots of this node in this database ($1 = prefix). */
#define PG_SQL_NODE_SLOTS                                                            \
  "SELECT slot_name, active_pid FROM pg_replication_slots"                          \
  " WHERE database = current_database() AND left(slot_name::text, length($1)) = $1"
#define PG_SQL_SLOT_CREATE "SELECT pg_create_logical_replication_slot($1, 'pgoutput')"
#define PG_SQL_SLOT_DROP "SELECT pg_drop_replication_slot($1)"
/* Retained WAL of this node's slots ($1 = prefix). */
#define PG_SQL_SLOT_RETAINED                                                            \
  "SELECT slot_name, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8"       \
  " FROM pg_replication_slots WHERE database = current_database()"                     \
  " AND left(slot_name::text, length($1)) = $1 AND restart_lsn IS NOT NULL"
/* Forget marks of sink connections that are gone. */
#define PG_SQL_MARKS_GC \
  "DELETE FROM arraysync.marks WHERE pid NOT IN (SELECT pid FROM pg_stat_activity)"
/* the mark row, and the same origin in arraysync.origin for the rest of the transaction (the
 * child tables' image triggers write nothing for the connector's own writes: pg_children.c) */
#define PG_SQL_MARK                                                                 \
  "WITH m AS (INSERT INTO arraysync.marks(pid, origin) VALUES (pg_backend_pid(), $1)" \
  " ON CONFLICT (pid) DO UPDATE SET origin = EXCLUDED.origin)"                      \
  " SELECT set_config('arraysync.origin', $1, true)"


/* ---- capture ---- */
#define PG_SQL_LISTEN "LISTEN arraysync_changes"
#define PG_SQL_CURRENT_SNAPSHOT "SELECT pg_current_snapshot()::text"
/* One window: the keys (array elements, or the one key object) of rows of transactions visible
 * in the current snapshot ($2) and not in the previous one ($1), after element $5 of row $3,
 * in (seq, element) order, at most $4, with each key's old and new values where the row
 * carries them (statement level: arrays in the keys' order, unnested alongside them so a
 * large row is read once; row level: the row's own). The inner query walks the seq index and
 * stops after $4 rows; `cum` counts the keys still to read up to each row (from `nkeys`,
 * without reading the keys), so only the rows needed for $4 keys are expanded. */
#define PG_SQL_WINDOW                                                                        \
  "SELECT x.seq, x.txid::text, x.tbl, x.op, e.k::text, nullif(e.ov, 'null')::text,"          \
  " nullif(e.nv, 'null')::text, x.origin, x.ts, x.cols[e.i], e.i"                            \
  " FROM (SELECT c.*, sum(CASE WHEN c.seq = $3::bigint THEN c.nkeys - $5::bigint"            \
  "   ELSE c.nkeys END) OVER (ORDER BY c.seq) AS cum,"                                       \
  "   CASE WHEN c.seq = $3::bigint THEN c.nkeys - $5::bigint ELSE c.nkeys END AS rem"        \
  "  FROM arraysync.changelog c"                                                             \
  "  WHERE c.seq >= $3::bigint AND (c.seq > $3::bigint OR c.nkeys > $5::bigint)"             \
  "   AND pg_visible_in_snapshot(c.txid, $2::pg_snapshot)"                                   \
  "   AND NOT pg_visible_in_snapshot(c.txid, $1::pg_snapshot)"                               \
  "  ORDER BY c.seq LIMIT $4::bigint) x"                                                     \
  " CROSS JOIN LATERAL ROWS FROM ("                                                          \
  "  jsonb_array_elements(CASE WHEN jsonb_typeof(x.key) = 'array'"                           \
  "   THEN x.key ELSE jsonb_build_array(x.key) END),"                                        \
  "  jsonb_array_elements(CASE WHEN jsonb_typeof(x.key) = 'array'"                           \
  "   THEN x.old ELSE jsonb_build_array(x.old) END),"                                        \
  "  jsonb_array_elements(CASE WHEN jsonb_typeof(x.key) = 'array'"                           \
  "   THEN x.new ELSE jsonb_build_array(x.new) END)) WITH ORDINALITY e(k, ov, nv, i)"        \
  " WHERE x.cum - x.rem < $4::bigint AND (x.seq > $3::bigint OR e.i > $5::bigint)"           \
  " ORDER BY x.seq, e.i LIMIT $4::bigint"
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
#define PG_SQL_WAL_INSERT_LSN "SELECT pg_current_wal_insert_lsn()"
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
