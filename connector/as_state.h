/* as_state.h — the state store: an embedded SQLite file with per-key versions (winners,
 * tombstones, what the connector last wrote to each node), stream progress and counters, dead
 * letters, conflicts and pending repairs, with an in-memory cache for hot keys in front of the
 * versions table.
 *
 * Per-key state is keyed by (mapping, partition, key) so it can move between processes later;
 * this process uses partition 0. `key` is the canonical key text (mappings/as_key.h).
 * Thread-safe: one (recursive) mutex around the connection. Readers in other processes
 * (`arraysync status`, `dlq list`) open the same file read-only; WAL mode lets them read while
 * `run` writes. One `run` per store: as_state_claim takes an exclusive lock on PATH.lock and
 * refuses a second process with a message naming the holder's pid. */
#ifndef AS_STATE_H
#define AS_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "as_error.h"
#include "as_row.h"

typedef struct as_state as_state;

/* Most nodes a key keeps a write record for (the least recently written is forgotten first). */
#define AS_VERSION_MAX_HELD 8
/* Most columns a key keeps a version of its own for (see as_version). */
#define AS_VERSION_MAX_COLS 32

/* The last version of a key a node is known to hold (a "held" version): either the connector
 * wrote it there (written_us: when that write committed, the connector's clock; 0 = recorded
 * before the commit), or the node made it itself (`made`: a local change that won; written_us
 * is then its commit time there). Nodes are small ids given by as_state_node_id. */
typedef struct as_held {
  uint16_t node;
  uint16_t origin;    /* origin of the version */
  bool deleted;       /* a delete */
  bool made;          /* the node's own change, not a write of the connector */
  int64_t hlc;        /* hlc of the version */
  int64_t written_us;
  /* The connector's last write of the key to the node, whatever the node made since: when it
   * committed, or pending (written ahead, commit not seen yet). A local change committed
   * before that write may have been overwritten by it. */
  int64_t wrote_us;
  bool wrote_pending;
  /* that write's place in the node's own commit order (as_adapter.commit_order; 0 unknown) */
  int64_t wrote_order;
} as_held;

/* The version of one column written by an update of some columns after the row's version. */
typedef struct as_colver {
  uint16_t col;    /* schema column index */
  uint16_t origin; /* node id */
  int64_t hlc;
  /* version vectors (strategies vector and script): the change's number among its origin's
   * changes of the key (0: unknown), and the nodes known to hold it (bit = node id % 64) */
  uint32_t n;
  uint64_t mask;
} as_colver;

/* One entry of a key's version vector: how many changes of the key a node has made. */
typedef struct as_vv_count {
  uint16_t node;
  uint32_t n;
  int64_t hlc; /* the version of the node's last change of the key the connector decided */
  uint64_t cols; /* the columns that change carried (bit = column index % 64) */
} as_vv_count;

/* A key's versions. (hlc, origin, deleted) is the row's version: the last change that wrote
 * the whole row (insert, a whole-row update, a delete). An update of some columns that wins
 * gives those columns a version of their own (colv), newer than the row's; a later
 * whole-row change supersedes them. A column's value is the one of the greatest version
 * that wrote it (last-write-wins per column), so concurrent updates of different columns
 * both survive, and an update never brings back columns it did not carry. */
typedef struct as_version {
  int64_t hlc;        /* the row's version: (hlc, origin) */
  char origin[64];
  bool deleted;       /* tombstone */
  uint64_t hash;      /* row hash of the winning value (0 for tombstones / unknown) */
  int64_t updated_us; /* wall time the version was recorded */
  uint8_t nheld;
  as_held held[AS_VERSION_MAX_HELD];
  uint8_t ncolv;
  as_colver colv[AS_VERSION_MAX_COLS];
  /* version vectors (strategies vector and script; zero otherwise): the row version's change
   * number and holders, and the key's vector */
  uint32_t row_n;
  uint64_t row_mask;
  uint8_t nvv;
  as_vv_count vv[AS_VERSION_MAX_HELD];
} as_version;

/* The key's count of node's changes (0 if none). */
uint32_t as_version_vv(const as_version *v, uint16_t node);
void as_version_vv_set(as_version *v, uint16_t node, uint32_t n);
/* The key's vector entry of node (NULL: none). */
const as_vv_count *as_version_vv_get(const as_version *v, uint16_t node);
/* Counts a new change of node (version hlc, carrying cols): its entry n+1; returns the new n. */
uint32_t as_version_vv_next(as_version *v, uint16_t node, int64_t hlc, uint64_t cols);
/* Node holds the key's current versions (row and every column): a repair wrote the winning
 * row there. Bit = node id % 64. */
void as_version_mark_holder(as_version *v, uint16_t node);
/* When every column in cols[0..n) (a mapping's non-key columns) has a version of its own, the
 * row's version says no more than that the row exists: a node holding every column's version
 * holds the whole current row, and is marked as holding the row's version too (the quick
 * signatures count a node as current only when it holds both). Not for tombstones. Returns
 * whether a mark was added. */
bool as_version_hold_covered_row(as_version *v, const uint16_t *cols, size_t n);

/* For a batch's record in flight: appends "\thlc\torigin" (origin: node name) to b for each
 * version `now` marks node as holding that `before` (NULL: nothing) did not — the row's
 * version, then each column version once. */
struct as_buf;
int as_version_marks_diff(as_state *st, const as_version *now, const as_version *before,
                          uint16_t node, struct as_buf *b) AS_MUSTCHECK;
/* Takes back the marks of such a text (its first tab may be missing) for a batch that did
 * not commit: node no longer counts as holding those versions (row mask, column masks),
 * unless its write record says it got that version since (a repair wrote it there).
 * Returns whether v changed. */
bool as_version_unmark(as_state *st, as_version *v, uint16_t node, const char *marks);

/* The column's own version, or NULL (then the row's version is the column's). */
const as_colver *as_version_col(const as_version *v, uint16_t col);
/* Gives col the version (origin, hlc); when full, the oldest column version is forgotten. */
void as_version_set_col(as_version *v, uint16_t col, uint16_t origin, int64_t hlc);
/* Drops the column versions a whole-row change of version hlc supersedes (hlc at least theirs). */
void as_version_drop_cols_upto(as_version *v, int64_t hlc);

/* The connector's last write of the key to node, or NULL. */
const as_held *as_version_held(const as_version *v, uint16_t node);
/* Records a write of version (hlc, origin) to node; written_us 0 until the commit is known. */
void as_version_set_held(as_version *v, uint16_t node, uint16_t origin, int64_t hlc,
                         bool deleted, int64_t written_us);
/* The commit order (as_adapter.commit_order) of the connector's last write to node, once that
 * write committed (after as_version_set_held with its written_us). */
void as_version_set_wrote_order(as_version *v, uint16_t node, int64_t order);
/* Records that node made the version (hlc) itself, committed there at ts (a local change that
 * won): the node holds it until the connector writes something else there. */
void as_version_set_made(as_version *v, uint16_t node, int64_t hlc, bool deleted, int64_t ts);
/* Forgets what node holds (nothing known). */
void as_version_drop_held(as_version *v, uint16_t node);
/* When the connector last wrote the key to node (0 = never recorded). */
int64_t as_version_written(const as_version *v, uint16_t node);

/* Total order of versions: hlc first, then origin name. */
int as_version_compare(int64_t hlc_a, const char *origin_a, int64_t hlc_b, const char *origin_b);

/* Opens (creating or upgrading) the store. readonly: for status/list commands of another
 * process; no lock taken. */
int as_state_open(const char *path, bool readonly, as_state **out, as_error *err) AS_MUSTCHECK;
void as_state_close(as_state *st);
/* Claims the store for one `run` process (held until close); AS_EINVAL naming the holder's pid
 * when another process has it. */
int as_state_claim(as_state *st, as_error *err) AS_MUSTCHECK;

/* Small stable ids for node names (held versions store ids). as_state_node_id creates the
 * id on first use (read-write stores); as_state_node_name returns the interned name (valid
 * until close) or NULL. */
int as_state_node_id(as_state *st, const char *name, uint16_t *out, as_error *err) AS_MUSTCHECK;
const char *as_state_node_name(as_state *st, uint16_t id);

/* Versions. key: canonical key text. AS_ENOTFOUND if none. */
int as_state_version_get(as_state *st, const char *mapping, const char *key, as_version *out,
                         as_error *err) AS_MUSTCHECK;
/* The versions of n keys (mappings[i], keys[i]) in one call: the same answers as n calls of
 * as_state_version_get (found[i] false where it gives AS_ENOTFOUND; out[i] is then left as
 * it was), read under one hold of the lock and, outside a transaction, in one read
 * transaction of the store (one WAL read lock instead of one per key). AS_OK, or the first
 * error (the rest of out/found undefined). */
int as_state_version_get_many(as_state *st, const char *const *mappings, const char *const *keys, size_t n,
                              as_version *const *out, bool *found, as_error *err) AS_MUSTCHECK;
/* Inside as_state_begin/commit the hot-key cache follows the commit (a rolled-back put never
 * reaches it); outside a transaction a put commits by itself. */
int as_state_version_put(as_state *st, const char *mapping, const char *key,
                         const as_version *v, as_error *err) AS_MUSTCHECK;
/* as_state_version_put of a record that differs from the stored one only in the write times
 * of its holders (as_version_set_held's written_us): the quick signatures do not change, so
 * they are not looked at (the engine's stamp after a target committed). */
int as_state_version_put_written(as_state *st, const char *mapping, const char *key,
                                 const as_version *v, as_error *err) AS_MUSTCHECK;
/* Forgets every key version of a mapping (its table was emptied by a TRUNCATE). */
int as_state_versions_forget(as_state *st, const char *mapping, as_error *err) AS_MUSTCHECK;
/* Drops tombstones older than retention; returns how many were dropped. */
int64_t as_state_purge_tombstones(as_state *st, int64_t retention_ms, as_error *err);
/* Settles up to max_rows more version records (the scan goes on where the last call left
 * it, and starts again at the end): a live key's record whose every holder holds the row
 * version, with nothing written ahead, and whose holders' write records are all older than
 * before_us[holder's node id] (0 or an id >= nbefore: not that node) keeps only who holds the
 * row version. Its write records become "written long ago": written_us 1, no later write of
 * the connector (wrote_us 0), made by the version's origin only. The engine passes, per node,
 * a time by which every stream of that node has read everything committed before it: no
 * change made on the node before such a write can arrive any more, so nothing the record
 * loses can decide anything (docs/ARCHITECTURE.md, "The state store"). Adds to pass what it
 * saw; returns how many it settled, or -1 with err set. */
typedef struct as_settle_pass {
  int64_t settled;  /* records settled */
  int64_t waiting;  /* records that may settle later (a holder's write too recent) */
  int64_t seen;     /* records read */
  bool wrapped;     /* the scan reached the last key (and starts again at the first) */
} as_settle_pass;
int64_t as_state_versions_settle(as_state *st, const int64_t *before_us, size_t nbefore,
                                 size_t max_rows, as_settle_pass *pass, as_error *err);
/* Rewrites the store's file without the space settled or deleted records left in its pages
 * (SQLite VACUUM, then the log truncated); blocks every other use of the store meanwhile.
 * Sets the file's size before and after. */
int as_state_compact(as_state *st, int64_t *bytes_before, int64_t *bytes_after, as_error *err);
/* Version writes since the store was opened (a change to settle may have come since). */
uint64_t as_state_version_puts(as_state *st);

/* Several writes in one SQLite transaction, all or nothing. begin takes the store's lock and
 * keeps it until commit or rollback. A failed commit rolls back by itself. */
int as_state_begin(as_state *st, as_error *err) AS_MUSTCHECK;
int as_state_commit(as_state *st, as_error *err) AS_MUSTCHECK;
void as_state_rollback(as_state *st);

/* Pending repairs, recorded in the same transaction as the decision that needs them, removed
 * once the write committed, so a repair survives a crash of the connector. Without delta:
 * "write the current winning row of (mapping, key) to node" (read_from: where to read the
 * columns the node itself won); with delta (canonical delta JSON): "write back to node the
 * columns of this change of its own that still win" (the connector overwrote it there). A
 * repair already pending for the same key and node with the same delta (or none) is not
 * queued twice: *id is that one's (a winning row is read when the repair runs, whoever queued
 * it). */
typedef struct as_repair_rec {
  int64_t id;
  char mapping[96];
  char *key;
  char node[64];
  char read_from[64];
  char *delta;
  int64_t created_us;
} as_repair_rec;
int as_state_repair_add(as_state *st, const char *mapping, const char *key, const char *node,
                        const char *read_from, const char *delta, int64_t *id, as_error *err)
    AS_MUSTCHECK;
int as_state_repair_done(as_state *st, int64_t id, as_error *err) AS_MUSTCHECK;
/* Calls fn for every pending repair (oldest first; fn is called without the store's lock). */
int as_state_repair_each(as_state *st, int (*fn)(void *ctx, const as_repair_rec *r), void *ctx,
                         as_error *err) AS_MUSTCHECK;
/* The deltas of the pending rewrites of (mapping, key) on any node, oldest first (*out: n
 * strings, each and the array freed by the caller): local changes the connector overwrote,
 * the exact values of their versions. */
int as_state_repair_deltas(as_state *st, const char *mapping, const char *key, char ***out,
                           size_t *n, as_error *err) AS_MUSTCHECK;
int64_t as_state_repair_count(as_state *st);
/* Whether a repair of (mapping, key) on node is pending (rewrites only: with a delta). */
bool as_state_repair_pending(as_state *st, const char *mapping, const char *key, const char *node,
                             bool rewrites_only);

/* Batches in flight: before a batch writes to its target, the keys it writes and the checkpoint
 * it commits there are recorded (in the write-ahead transaction); once the target committed
 * and the write times are stamped, the record goes. After a crash, the target's checkpoint
 * tells whether that batch committed: its writes are then stamped, else forgotten. keys:
 * "mapping\tkey" lines. */
int as_state_inflight_put(as_state *st, const char *stream_id, const char *ckpt, const char *keys,
                          as_error *err) AS_MUSTCHECK;
/* AS_ENOTFOUND when none; *ckpt and *keys are the caller's to free. */
int as_state_inflight_get(as_state *st, const char *stream_id, char **ckpt, char **keys,
                          as_error *err) AS_MUSTCHECK;
int as_state_inflight_del(as_state *st, const char *stream_id, as_error *err) AS_MUSTCHECK;

/* The relay log: changes the connector applied to node `via` that the topology has `via` pass
 * on (as_router.h), as canonical delta JSON, in the order they were written; written in the
 * same transaction as their versions. `seq` only grows. */
int as_state_relay_add(as_state *st, uint16_t via, const char *delta_json, as_error *err)
    AS_MUSTCHECK;
/* Calls fn for up to max entries of via with seq > after, in seq order (fn is called without
 * the store's lock; returning non-AS_OK stops). */
int as_state_relay_read(as_state *st, uint16_t via, int64_t after, size_t max,
                        int (*fn)(void *ctx, int64_t seq, const char *delta_json), void *ctx,
                        as_error *err) AS_MUSTCHECK;
/* The greatest seq written for via (0 if none). */
int64_t as_state_relay_last(as_state *st, uint16_t via);
/* Drops the entries of via with seq <= upto (every consumer is past them). */
int as_state_relay_purge(as_state *st, uint16_t via, int64_t upto, as_error *err);

/* Stream progress and counters ("<source>-><target>"). */
typedef struct as_stream_stats {
  char stream_id[160];
  char source[64];
  char target[64];
  char phase[16];        /* "snapshot" | "streaming" | "stopped" | "error" */
  char checkpoint[512];  /* truncated for display */
  int64_t captured, applied, skipped, conflicts, dead;
  int64_t lag_ms;        /* now - source commit time of the last applied delta */
  int64_t last_ts_us;
  int64_t updated_us;
  char error[512];
} as_stream_stats;

int as_state_stream_put(as_state *st, const as_stream_stats *s, as_error *err) AS_MUSTCHECK;
/* Calls fn for every stream, in stream_id order. */
int as_state_stream_each(as_state *st, int (*fn)(void *ctx, const as_stream_stats *s),
                         void *ctx, as_error *err);

/* Gauges nodes report (e.g. arraysync_pg_slot_retained_bytes per consumer), kept for
 * `status` of another process. */
int as_state_gauge_put(as_state *st, const char *node, const char *metric, const char *consumer,
                       double value, as_error *err);
int as_state_gauge_each(as_state *st,
                        int (*fn)(void *ctx, const char *node, const char *metric,
                                  const char *consumer, double value, int64_t updated_us),
                        void *ctx, as_error *err);

/* Per mapping counters of a stream: captured, applied, skipped, conflicts, dead. */
typedef struct as_stream_mapping_stats {
  char stream_id[160];
  char mapping[96];
  int64_t captured, applied, skipped, conflicts, dead;
} as_stream_mapping_stats;
/* Mappings a stream has copied (its snapshot, or the copy of a mapping added later):
 * add after the copy completed; has: how many rows match (mapping NULL: any of the stream's),
 * -1 on error. Outside as_state_begin/commit. */
int as_state_copied_add(as_state *st, const char *stream_id, const char *mapping, as_error *err)
    AS_MUSTCHECK;
int as_state_copied_has(as_state *st, const char *stream_id, const char *mapping);
int as_state_stream_mapping_put(as_state *st, const as_stream_mapping_stats *m, as_error *err);
/* stream_id NULL = every stream. */
int as_state_stream_mapping_each(as_state *st, const char *stream_id,
                                 int (*fn)(void *ctx, const as_stream_mapping_stats *m),
                                 void *ctx, as_error *err);

/* Dead letters. stage: "capture" (source row/document could not be mapped) or "apply"
 * (the target refused it). delta_json: canonical delta JSON when there is one. */
typedef struct as_dead_letter {
  int64_t id;
  int64_t created_us;
  char *mapping, *source, *target, *stage, *key, *raw, *delta_json, *error, *pos, *status;
  int64_t retries;
} as_dead_letter;

int as_state_dead_add(as_state *st, const char *mapping, const char *source, const char *target,
                      const char *stage, const char *key, const char *raw,
                      const char *delta_json, const char *error, const char *pos,
                      as_error *err);
/* status NULL = all; "open", "retried", "resolved". */
int as_state_dead_each(as_state *st, const char *status,
                       int (*fn)(void *ctx, const as_dead_letter *d), void *ctx, as_error *err);
int as_state_dead_set_status(as_state *st, int64_t id, const char *status, const char *error,
                             as_error *err);
int64_t as_state_dead_count(as_state *st, const char *status);

/* Conflicts: two versions of a key that neither knew of (or an LWW loss), both kept until a
 * person settles them (`arraysync conflicts`). Row values are in the canonical JSON form of
 * as_value.h (as in a delta's "cols"), key columns included where known; row_json "null"
 * (the JSON text) says the side's version is a delete. */
typedef struct as_conflict_side {
  const char *node;     /* node whose version this is */
  const char *row_json; /* AS-JSON object column -> value of this side's row (NULL: not known) */
  const char *vv_json;  /* JSON object node -> counter (NULL: none) */
  int64_t ts_us;        /* commit time of the change, µs UTC (0: unknown) */
} as_conflict_side;
typedef struct as_conflict_rec {
  const char *mapping, *key, *strategy; /* key: canonical key text (mappings/as_key.h) */
  const char *columns_json;             /* JSON array of the disputed column names */
  const char *chosen;                   /* node whose version the fallback chose meanwhile */
  bool open;                            /* false: recorded as already settled (lww losses) */
  as_conflict_side local, remote;       /* local: the target's current version; remote: incoming */
} as_conflict_rec;
/* Records c (strings copied; any but mapping and key may be NULL) with status "open" or
 * "resolved" (c->open false); *id_out (may be NULL) receives its id. Joins a transaction of
 * as_state_begin when one is open. */
int as_state_conflict_record(as_state *st, const as_conflict_rec *c, int64_t *id_out,
                             as_error *err) AS_MUSTCHECK;

/* Helpers for the record's JSON (caller frees; NULL with err set when out of memory or a
 * value cannot be written): the columns set in row as an object column -> value (canonical
 * JSON of as_value.h), or "null" when deleted; the names of the non-key columns set in row as
 * a JSON array. */
char *as_conflict_row_json(const as_schema *s, const as_row *row, bool deleted, as_error *err);
char *as_conflict_columns_json(const as_schema *s, const as_row *row, as_error *err);

/* A recorded conflict as read back; every string is owned by the struct (as_conflict_clear)
 * and may be NULL. Records of stores before this form (an LWW loss: the losing delta only) read
 * as remote = the losing change (node, its columns, time), local.node = chosen = the winner's
 * origin, status "resolved". */
typedef struct as_conflict_view {
  char *node, *row, *vv; /* row/vv: JSON text as recorded */
  int64_t ts_us;
} as_conflict_view;
typedef struct as_conflict {
  int64_t id, created_us;
  int64_t resolved_us;   /* 0 while open */
  char *mapping, *key, *strategy;
  char *columns;         /* JSON array text of the disputed columns, or NULL */
  char *status;          /* "open" | "resolved" */
  char *chosen;          /* the fallback's choice; once resolved, the node of the chosen row
                            (or "row" for a row given by hand) */
  char *resolved_row;    /* once resolved: the row written (JSON object), or NULL */
  as_conflict_view local, remote;
} as_conflict;
void as_conflict_clear(as_conflict *c); /* NULL-safe; leaves c zeroed */
/* AS_ENOTFOUND (naming the id) when there is no conflict `id`. */
int as_state_conflict_get(as_state *st, int64_t id, as_conflict *out, as_error *err) AS_MUSTCHECK;
/* Sets the status ("open" | "resolved"); chosen and row_json (the row written) replace the
 * recorded ones when not NULL; resolved_us is set when status is "resolved". AS_ENOTFOUND when
 * there is no such conflict; AS_EINVAL when it already has that status. */
int as_state_conflict_set_status(as_state *st, int64_t id, const char *status, const char *chosen,
                                 const char *row_json, as_error *err) AS_MUSTCHECK;
/* Conflicts recorded (mapping NULL: every mapping; open_only: status "open"); -1 on error. */
int64_t as_state_conflict_count(as_state *st, const char *mapping, bool open_only);
/* Open conflicts of one key with that strategy; -1 on error. */
int64_t as_state_conflict_open_for(as_state *st, const char *mapping, const char *key,
                                   const char *strategy);
/* Per (mapping, strategy): conflicts open and recorded in all, in mapping order (metrics). */
int as_state_conflict_counts(as_state *st,
                             int (*fn)(void *ctx, const char *mapping, const char *strategy,
                                       int64_t open, int64_t total),
                             void *ctx, as_error *err);
/* Calls fn for every conflict in id order (mapping NULL: all; open_only: status "open"); fn
 * is called without the store's lock and may write to the store; non-AS_OK stops. */
int as_state_conflict_each(as_state *st, const char *mapping, bool open_only,
                           int (*fn)(void *ctx, const as_conflict *c), void *ctx, as_error *err);

/* The conflicts mirrored into a SQL node's table (conflicts: { node, table }): their ids, in
 * order (*ids: caller frees); a conflict marked mirrored (on) or no longer (off). */
int as_state_mirror_ids(as_state *st, int64_t **ids, size_t *n, as_error *err) AS_MUSTCHECK;
int as_state_mirror_set(as_state *st, int64_t id, bool on, as_error *err) AS_MUSTCHECK;

/* Quick-verify signatures (docs/VERIFY.md, `verify --quick`): per mapping and node,
 * AS_QUICK_BUCKETS buckets (by as_quick_bucket of the key) of (count, sum mod 2^64) of what
 * the node holds according to the key's version record: a node marked as holding the key's
 * current versions (the row's and every column's; as_version_mark_holder and the engine's
 * holder marks) adds as_quick_digest of the record to its key's bucket (and 1 to its count
 * unless the record is a tombstone); a node not marked adds nothing. Two nodes' buckets are
 * equal when the connector believes both hold the same versions of every key in them.
 * Kept by every as_state_version_put of a store opened read-write (any process: run, verify
 * --repair, conflicts resolve), written in the same transaction as the versions;
 * as_state_quick_enable(st, false) stops it (benchmarks of its cost). Stored as one row per
 * (mapping, node, bucket), only the buckets a transaction changed written. load: the whole set
 * of one (mapping, node); AS_ENOTFOUND when nothing was ever stored for it. */
void as_state_quick_enable(as_state *st, bool on);
uint32_t as_quick_bucket(const char *key);
uint64_t as_quick_digest(const char *key, const as_version *v);
#define AS_QUICK_BUCKETS 64
typedef struct as_quick_sig {
  int64_t count;
  uint64_t sum;
} as_quick_sig;
int as_state_quick_load(as_state *st, const char *mapping, const char *node, as_quick_sig *out,
                        as_error *err);

#endif
