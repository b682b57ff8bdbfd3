/* sqlite_sql.h — every fixed SQL text of the SQLite adapter, in one place.
 *
 * Values are always bound parameters. Statements that depend on a mapping (upserts, deletes,
 * reads, snapshot pages, DDL, triggers) are built in sqlite_ddl.c / sqlite_adapter.c from
 * quoted identifiers only ("" doubling), never from values. */
#ifndef AS_SQLITE_SQL_H
#define AS_SQLITE_SQL_H

/* Version of the bookkeeping schema written by install. Upgrade steps are keyed by version:
 * step N brings a database at version N-1 to version N. */
#define SQ_SCHEMA_VERSION 1

#define SQ_PRAGMA_WAL "PRAGMA journal_mode=WAL"
#define SQ_PRAGMA_SYNC "PRAGMA synchronous=NORMAL"
#define SQ_PRAGMA_DATA_VERSION "PRAGMA data_version"

#define SQ_BEGIN_IMMEDIATE "BEGIN IMMEDIATE"
#define SQ_COMMIT "COMMIT"
#define SQ_ROLLBACK "ROLLBACK"

#define SQ_META_CREATE \
  "CREATE TABLE IF NOT EXISTS _arraysync_meta (key TEXT PRIMARY KEY, value TEXT)"
#define SQ_META_GET "SELECT value FROM _arraysync_meta WHERE key = ?1"
#define SQ_META_PUT                                           \
  "INSERT INTO _arraysync_meta (key, value) VALUES (?1, ?2) " \
  "ON CONFLICT (key) DO UPDATE SET value = excluded.value"

/* Upgrade step 1 (fresh install). */
static const char *const SQ_STEP1[] __attribute__((unused)) = {
    "CREATE TABLE IF NOT EXISTS _arraysync_changelog ("
    /* no AUTOINCREMENT (it costs a sqlite_sequence read and write per user statement);
     * seq stays monotonic because the purge always keeps the newest row, so max(seq) never
     * goes back and SQLite's next rowid is max(seq) + 1 */
    " seq INTEGER PRIMARY KEY,"
    " tbl TEXT NOT NULL, op TEXT NOT NULL,"
    /* json_object of the mapped columns: insert: new; update: old and new (full rows, the
     * reader diffs them); delete: old holding the key columns only */
    " old TEXT, new TEXT,"
    " origin TEXT," /* NULL = a local write; else the node whose change the connector applied */
    " ts INTEGER NOT NULL)", /* µs since the epoch (SQ_TRIGGER_TS) */
    "CREATE TABLE IF NOT EXISTS _arraysync_origin ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), origin TEXT)",
    "INSERT OR IGNORE INTO _arraysync_origin (id, origin) VALUES (1, NULL)",
    "CREATE TABLE IF NOT EXISTS _arraysync_consumers ("
    " name TEXT PRIMARY KEY, position INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS _arraysync_checkpoints ("
    " stream_id TEXT PRIMARY KEY, position TEXT, updated_at INTEGER)",
    "INSERT OR IGNORE INTO _arraysync_meta (key, value) VALUES ('purged_upto', '0')",
    NULL};

/* Uninstall: the bookkeeping tables (user tables stay). */
static const char *const SQ_BOOKKEEPING_TABLES[] __attribute__((unused)) = {
    "_arraysync_changelog",   "_arraysync_origin", "_arraysync_consumers",
    "_arraysync_checkpoints", "_arraysync_meta",   NULL};

/* Triggers written by install carry this prefix (LIKE pattern, '\' escape). */
#define SQ_TRIGGERS_LIST                                                 \
  "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE " \
  "'\\_arraysync\\_%' ESCAPE '\\'"

#define SQ_TABLE_INFO "SELECT name, type, pk FROM pragma_table_info(?1)"

/* Expression pieces of the capture triggers. */
/* Member of a parent row's changelog image holding a child table's rows (+ the table name). */
#define SQ_CHILD_MEMBER "_arraysync_child:"

#define SQ_TRIGGER_ORIGIN "(SELECT origin FROM _arraysync_origin WHERE id = 1)"
/* A change's time, µs since the epoch, strictly increasing in changelog order. SQLite 3.40 has
 * no unixepoch('subsec'); julianday('now') has millisecond resolution and is constant within
 * one statement (rounded to whole ms, then scaled, so no float noise). Two changes of one key
 * in one millisecond would then carry one version, and a later change could count as a
 * re-delivery of the earlier one; so a change takes at least the previous changelog row's time
 * + 1 µs (writers are serialized, seq order is commit order, and the purge keeps the newest
 * row). A burst of more than 1,000 changes in one millisecond runs ahead of the clock by the
 * excess in µs until the clock catches up. */
#define SQ_TRIGGER_TS                                                               \
  "max(CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) * 1000, " \
  "coalesce((SELECT ts FROM _arraysync_changelog ORDER BY seq DESC LIMIT 1), 0) + 1)"

/* ---- source side ---- */
#define SQ_SEQ_END "SELECT coalesce(max(seq), 0) FROM _arraysync_changelog"
#define SQ_CHANGELOG_READ                                                \
  "SELECT seq, tbl, op, old, new, origin, ts FROM _arraysync_changelog " \
  "WHERE seq > ?1 ORDER BY seq LIMIT ?2"
#define SQ_CONSUMER_PUT                                                \
  "INSERT INTO _arraysync_consumers (name, position) VALUES (?1, ?2) " \
  "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
#define SQ_CONSUMER_MIN "SELECT min(position) FROM _arraysync_consumers"
/* keeps the newest row whatever happens: it anchors max(seq) (see SQ_STEP1) */
#define SQ_CHANGELOG_PURGE                                      \
  "DELETE FROM _arraysync_changelog WHERE seq <= ?1 AND seq < " \
  "(SELECT max(seq) FROM _arraysync_changelog)"

/* ---- sink side ---- */
#define SQ_ORIGIN_SET "UPDATE _arraysync_origin SET origin = ?1 WHERE id = 1"
#define SQ_CHECKPOINT_PUT                                                                        \
  "INSERT INTO _arraysync_checkpoints (stream_id, position, updated_at) "                        \
  "VALUES (?1, ?2, CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) * 1000) " \
  "ON CONFLICT (stream_id) DO UPDATE SET position = excluded.position, "                         \
  "updated_at = excluded.updated_at"
#define SQ_CHECKPOINT_GET "SELECT position FROM _arraysync_checkpoints WHERE stream_id = ?1"

#endif
