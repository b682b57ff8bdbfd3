/* adapter.h — the one seam between the engine and a database.
 *
 * An adapter is a versioned struct of callbacks (as_adapter) registered by kind ("mongodb",
 * "postgres", "sqlite"). The engine reaches adapters only through this header and the
 * registry; adapters never include each other or anything in connector/.
 *
 * Optional callbacks are at the end of the struct and may be NULL.
 *
 * Rules every adapter keeps:
 * - 0 is success; AS_RETRY for transient failures (connection lost, failover, serialization
 *   failure, deadlock, admin shutdown): the engine reconnects/retries with backoff; adapters
 *   never sleep to retry and never loop on errors. Permanent failures return AS_ERR/AS_EINVAL.
 * - Every `exit`/`close` accepts a half-built object.
 * - Values are bound parameters, identifiers quoted (PQescapeIdentifier / "" doubling).
 * - Threads: a node's sink side and admin calls (install, begin/apply/commit, read_row,
 *   checkpoint_load) are called from one thread at a time. Each stream and snapshot has its own
 *   connection and is used by one (possibly different) thread at a time.
 * - Deltas produced by a source are fully owned by the batch (as_batch_clear frees them).
 *
 * Origin and echoes: a sink marks every write it applies with the delta's
 * `origin` (PostgreSQL: set_config('arraysync.origin', origin, true) read by the trigger, or
 * with logical-decoding capture a row in arraysync.marks written first in the transaction;
 * SQLite: the one-row origin table written in the transaction; MongoDB: a marker the
 * adapter's capture recognises). Capture of such a write yields a delta with echo = true and
 * origin = that marked origin; a local write by anyone else yields echo = false and origin =
 * the node's own name. The engine's router drops or forwards echoes; the only echoes an adapter
 * may leave out are those whose origin is the stream's consumer (a delta never returns to its
 * origin), which saves decoding the connector's own writes.
 * The origin AS_ORIGIN_LOCAL_ONLY ("-") marks a write of the connector that no topology needs
 * relayed: capture leaves such writes out entirely (no delta, echo or not). A node whose
 * as_node_config.local_only is set marks every write that has an origin so.
 *
 * Truncate: a delta with op AS_OP_TRUNCATE (no key, no columns) says every row of the
 * mapping's table was removed at once. A source produces it only for a mapping with
 * on_truncate: propagate (stop: poll fails with AS_ERR naming table and position; ignore: a
 * warning, no delta). A sink applies it by emptying its table, marked with the delta's origin
 * like any write (PostgreSQL: TRUNCATE, or DELETE of every row where TRUNCATE is refused).
 */
#ifndef AS_ADAPTER_H
#define AS_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "../mappings/as_cfgmap.h"
#include "../mappings/as_error.h"
#include "../mappings/as_hash.h"
#include "../mappings/as_key.h"
#include "../mappings/as_row.h"
#include "../mappings/as_schema.h"

#define AS_ADAPTER_ABI 1

/* Origin of a connector write that capture must leave out entirely (see above). */
#define AS_ORIGIN_LOCAL_ONLY "-"

/* ---- node configuration (filled by connector/ from the top-level YAML) ---- */
/* as_node_option (key, value after ${ENV} substitution, mark) and as_config_entry, the typed
 * config map entry, are in as_cfgmap.h. */

typedef struct as_node_config {
  char *name;      /* the node's name: its key in the config, and the origin of its changes */
  char *kind;      /* "mongodb" | "postgres" | "sqlite" */
  as_node_option *opts;
  size_t nopts;
  as_mark mark;
  /* Names of the nodes that stream from this one (the topology's consumers of this source),
   * for adapters that keep capture state per consumer (PostgreSQL replication slots): install
   * creates it for these and drops it for consumers no longer listed. May be empty (n = 0):
   * then such state is created by the first open_stream and only uninstall removes it. */
  char **consumers;
  size_t nconsumers;
  /* Mark every write applied with an origin as AS_ORIGIN_LOCAL_ONLY instead, so that capture
   * leaves it out (no changelog row, no echo to decode). The connector sets it on every node:
   * it passes changes on (ring, hub) through its own state store, never by capturing its
   * writes again, so no topology needs them. A write without an origin (a local write made
   * through the adapter, e.g. `conflicts resolve`) is captured as before. */
  bool local_only;
} as_node_config;

/* Value of an option, or the adapter's default from its config map, or NULL. */
const char *as_node_config_get(const as_node_config *c, const char *key);

/* Parses the node's options with an adapter's config map (as_cfgmap.h: type, default,
 * offset per key) into the adapter's options struct `opts` (zeroed by the caller; free its
 * strings with as_cfgmap_free). Errors "FILE:LINE:COL: node NAME: option KEY: ...". */
int as_node_options_parse(const as_node_config *cfg, const as_config_entry *map, void *opts,
                          as_error *err);
/* An error about option key of node cfg, at the option's mark (else the node's):
 * "FILE:LINE:COL: node NAME: option KEY: message" (AS_EINVAL). */
int as_node_option_error(as_error *err, const as_node_config *cfg, const char *key,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- batches and dead letters ---- */
typedef struct as_dead {
  const as_schema *schema; /* mapping, or NULL if it could not be determined */
  char *key;       /* canonical JSON of the key if known, else NULL */
  char *raw;       /* the raw value: relaxed JSON of the document, or the row as JSON */
  char *error;     /* what went wrong, naming mapping, key, field and value */
  char *pos;       /* source position, or NULL */
  size_t index;    /* sink side: index of the failing delta in the apply call */
  bool missing;    /* sink side: not an error: an update (some columns) found no row for its
                      key, so nothing was written (see `apply`) */
} as_dead;

typedef struct as_batch {
  as_delta *d;     /* deltas in source commit order */
  size_t n, cap;
  as_dead *dead;   /* source side: rows/documents that could not be mapped */
  size_t ndead, capdead;
  char *pos;       /* position after everything in this batch (also advances when n == 0,
                      e.g. a post-batch resume token on an idle stream); NULL = unchanged */
} as_batch;

/* Appends a zeroed delta and returns it (NULL on ENOMEM). */
as_delta *as_batch_push(as_batch *b);
/* Takes ownership of the strings (any may be NULL). */
int as_batch_push_dead(as_batch *b, const as_schema *s, char *key, char *raw, char *error,
                       char *pos);
int as_batch_set_pos(as_batch *b, const char *pos);
void as_batch_reset(as_batch *b);   /* frees contents, keeps capacity */
void as_batch_clear(as_batch *b);   /* frees everything */

typedef struct as_dead_list {
  as_dead *items;
  size_t n, cap;
} as_dead_list;
int as_dead_list_push(as_dead_list *l, const as_schema *s, size_t index, char *key, char *raw,
                      char *error);
/* Reports that the update at index found no row (as_dead.missing). */
int as_dead_list_push_missing(as_dead_list *l, const as_schema *s, size_t index);
void as_dead_list_clear(as_dead_list *l);
void as_dead_free(as_dead *d);

/* Pacing of a source's writes of its acknowledged position (SQLite, PostgreSQL trigger
 * capture): at most one write per interval; a position acked in between stays pending until
 * the next ack or a poll that finds nothing writes it. */
typedef struct as_ack_pace {
  int64_t interval_us;
  int64_t written_us; /* monotonic time of the last write, or of the last failed try */
  bool pending;
} as_ack_pace;
/* A position was acked: true when it is to be written now. */
bool as_ack_pace_ack(as_ack_pace *p);
/* A poll found nothing: true when the pending position is due now (the caller writes it);
 * else *wait_ms is lowered to when it will be, so that a waiting poll comes back for it. */
bool as_ack_pace_idle(const as_ack_pace *p, int *wait_ms);
/* The caller wrote the position (ok) or failed to (it stays pending, tried an interval later). */
void as_ack_pace_written(as_ack_pace *p, bool ok);

/* ---- the adapter ---- */
typedef struct as_node as_node;         /* adapter-private */
struct as_table_desc;
typedef struct as_stream as_stream;     /* adapter-private */
typedef struct as_snapshot as_snapshot; /* adapter-private */
typedef struct as_verify as_verify;     /* adapter-private */

enum {
  AS_CAP_SOURCE = 1u << 0,
  AS_CAP_SINK = 1u << 1,
  AS_CAP_TXN = 1u << 2,       /* the checkpoint commits atomically with the data */
  AS_CAP_SNAPSHOT = 1u << 3
};

/* One open conflict as a SQL node's mirror table holds it (conflicts: { node, table }; the
 * engine's as_conflict_mirror.c). JSON values are text. */
typedef struct as_mirror_row {
  int64_t id;
  const char *mapping, *key_json, *strategy, *columns_json, *chosen;
  const char *local_node, *local_row_json, *remote_node, *remote_row_json;
  int64_t created_us;
} as_mirror_row;

typedef struct as_adapter {
  int abi;                    /* AS_ADAPTER_ABI */
  const char *kind;
  unsigned caps;
  const as_config_entry *config_map; /* terminated by an entry with key == NULL */

  /* Validates options (unknown keys were already rejected by the engine against config_map)
   * and builds the node without connecting. schemas: every mapping this node takes part in
   * (borrowed; they outlive the node). */
  int (*init)(const as_node_config *cfg, const as_schema *const *schemas, size_t nschemas,
              as_node **out, as_error *err);
  /* Connects (or reconnects: the engine calls connect again after an AS_RETRY from any sink
   * or admin call, so drop a broken connection and open a new one). */
  int (*connect)(as_node *n, as_error *err);
  /* Idempotent, versioned set-up: bookkeeping (changelog, checkpoints, origin), target
   * tables/collections from the mappings when missing (a mismatch of an existing table is
   * AS_EINVAL naming table and column), capture triggers. */
  int (*install)(as_node *n, as_error *err);
  /* Removes triggers and bookkeeping; leaves user data alone. */
  int (*uninstall)(as_node *n, as_error *err);
  void (*exit)(as_node *n);

  /* ---- source side ---- */
  /* Opens a capture stream for `consumer` (the target node's name; each consumer has its own
   * position, and changes are purged only when every consumer is past them). checkpoint:
   * a position this adapter produced earlier, or NULL to start at the current end.
   * AS_ERESNAPSHOT (open_stream and poll): the position can no longer be resumed (MongoDB
   * change history lost, error 286; a mapped collection dropped/renamed) and the node is
   * configured with on_history_lost: resnapshot: the engine closes the stream, re-snapshots
   * the node's mappings and opens a new stream at the current end. With the default (fail)
   * the same conditions are AS_ERR with a message saying how to recover. */
  int (*open_stream)(as_node *n, const char *consumer, const char *checkpoint,
                     as_stream **out, as_error *err);
  /* Appends up to `max` deltas (whole source transactions where possible) to out, waiting at
   * most wait_ms for the first one (event-driven: LISTEN/NOTIFY, data_version, getMore).
   * Sets out->pos. Unmappable source rows go to out->dead, never dropped. */
  int (*poll)(as_stream *s, as_batch *out, size_t max, int wait_ms, as_error *err);
  /* Everything up to and including pos is durable at the consumer: purge what no consumer
   * needs any more. It may be written later (SQLite and PostgreSQL trigger capture: at most
   * every purge_interval, or by a poll that finds nothing): the target's checkpoint, where
   * open_stream registers the consumer again, is never behind it. */
  int (*ack)(as_stream *s, const char *pos, as_error *err);
  /* The current end position (for "start streaming here after the snapshot"). */
  int (*stream_position)(as_stream *s, char **out, as_error *err);
  void (*close_stream)(as_stream *s);

  /* ---- snapshot (initial load of one mapping, in key order, bounded memory) ---- */
  /* after_key: canonical JSON of the last key already copied (resume), or NULL. */
  int (*snapshot_open)(as_node *n, const as_schema *s, const char *after_key,
                       as_snapshot **out, as_error *err);
  /* Appends up to max insert deltas; AS_EOF when done (possibly with deltas appended). */
  int (*snapshot_next)(as_snapshot *sn, as_batch *out, size_t max, as_error *err);
  /* Estimated row count (-1 if unknown). */
  int64_t (*snapshot_estimate)(as_snapshot *sn);
  void (*snapshot_close)(as_snapshot *sn);

  /* ---- sink side ---- */
  int (*begin)(as_node *n, as_error *err);
  /* Applies deltas in order, each write marked with d->origin: an insert (every column) as an
   * upsert; an update (the key and some columns) changes those columns of the existing row
   * only — when the target has no row for the key it writes nothing and reports the delta
   * with as_dead_list_push_missing (the engine then writes the key's whole winning row; a row
   * made of one update's columns would hold values nobody wrote); a delete by key. A permanent
   * error on one delta appends it to dead (with its index) and the rest still applies;
   * AS_RETRY means the transaction is lost and the engine rolls back and retries the batch. */
  int (*apply)(as_node *n, const as_delta *d, size_t nd, as_dead_list *dead, as_error *err);
  /* Commits the batch with the checkpoint of stream_id ("<source>-><this node>") in the same
   * transaction where the target can (AS_CAP_TXN), else right after. checkpoint may be NULL
   * (nothing to record). */
  int (*commit)(as_node *n, const char *stream_id, const char *checkpoint, as_error *err);
  int (*rollback)(as_node *n);
  /* AS_ENOTFOUND if this stream never committed here. Caller frees *out. */
  int (*checkpoint_load)(as_node *n, const char *stream_id, char **out, as_error *err);

  /* ---- reads (LWW repair, verify) ---- */
  /* Reads the current row for key (key columns set in key). AS_ENOTFOUND if absent. */
  int (*read_row)(as_node *n, const as_schema *s, const as_row *key, as_row *out,
                  as_error *err);

  /* ---- optional (NULL = not supported) ---- */
  /* Called from another thread when the engine stops: makes a wait in flight on n (a row
   * lock, a slow server) return promptly with an error. Must be safe to call at any time. */
  void (*interrupt)(as_node *n);
  /* Decodes the raw form this adapter's capture stored with a dead letter (as_dead.raw) into
   * an insert delta of mapping s with today's mapping (`arraysync dlq retry` of a change whose
   * key could not be read). AS_EDATA when it still cannot be mapped. */
  int (*decode_raw)(const as_schema *s, const char *raw, as_delta *out, as_error *err);
  /* Reads up to max documents of collection `name` without changing anything (`arraysync
   * infer`), calling fn once per document (borrowed for the call; a non-zero return stops
   * the read and is returned). random: a random sample ($sample) instead of the first max in
   * natural order. Admin call on a connected node; AS_ENOTFOUND if there is no such
   * collection. Document stores only (SQL adapters describe their tables instead). */
  int (*sample)(as_node *n, const char *name, size_t max, bool random,
                int (*fn)(void *ctx, const bson_t *doc), void *ctx, as_error *err);
  /* Describes an existing table (`arraysync infer` of a SQL node): its columns in order with
   * the server's type names and the primary key. AS_ENOTFOUND if there is no such table.
   * Admin call on a connected node. Free *out with as_table_desc_free. */
  int (*describe)(as_node *n, const char *table, struct as_table_desc *out, as_error *err);
  /* Checks, without changing anything, what `run` will need of this node (privileges, server
   * settings, existing tables against the mappings, writable files), calling report once per
   * check: ok, what was checked, and when not ok how to fix it. Called on a node whose init
   * succeeded; it connects itself (the connection is one of its checks). Returns AS_OK when
   * every check passed, AS_ERR otherwise (details went to report). */
  int (*check_live)(as_node *n, void (*report)(void *ctx, bool ok, const char *what,
                                               const char *fix),
                    void *ctx);
  /* Names the client libraries this adapter runs with and their versions at run time
   * (`arraysync version`): fn(ctx, "libpq", "16.2") once per library. */
  void (*versions)(void (*fn)(void *ctx, const char *lib, const char *version), void *ctx);
  /* Checks that the capture objects are all in place (PostgreSQL: the triggers of every mapped
   * table, or the publication with every mapped table and the replication slots of the known
   * consumers); `DROP COLUMN ... CASCADE` or a re-created table can remove them behind the
   * connector's back. repair = true puts back what can be put back without losing changes
   * (triggers, publication membership), logging one warning per object; a lost slot is never
   * recreated silently (its changes are gone: the stream reports history lost). AS_OK:
   * everything is in place (after repair); AS_ENOTFOUND: something is missing, err names every
   * missing object; AS_RETRY/AS_ERR as usual. Admin call: at start (after install) and
   * periodically. */
  int (*check_capture)(as_node *n, bool repair, as_error *err);
  /* Numeric gauges of the node for `status` and /metrics: calls fn once per value with the
   * metric name (PostgreSQL: "arraysync_pg_slot_retained_bytes", WAL the server keeps for a
   * consumer's slot: pg_current_wal_lsn() - restart_lsn), the consumer the value is about (or
   * NULL) and the value. Admin call. */
  int (*gauges)(as_node *n, void (*fn)(void *ctx, const char *metric, const char *consumer,
                                       double value),
                void *ctx, as_error *err);
  /* ---- verify (optional: NULL = this adapter cannot be verified) ----
   * `arraysync verify` compares a mapping between two nodes by segment signatures (row count,
   * sum of row hashes mod 2^64; mappings/as_rowhash.h) and bisects segments that differ. A
   * session has its own read-only connection and reads one snapshot where the database offers
   * it (PostgreSQL: REPEATABLE READ READ ONLY; SQLite: one read transaction). Server mode:
   * the database computes each row's hash (as_rowhash: $toHashedIndexKey of the canonical
   * text) and sums per segment, so rows are not shipped. Client mode: rows are fetched and
   * hashed here with XXH3 (as_rowhash_xxh3).
   * Keys are arrays of s->nkey values in key order. A range is [lo, hi), NULL = unbounded.
   * Every node must select the same rows for a range: text compared bytewise (PostgreSQL
   * COLLATE "C" unless the column's collation already orders bytewise, SQLite BINARY, MongoDB
   * simple collation), numbers numerically, other types by their natural order (uuid, bytes
   * and ObjectId bytewise, timestamps and dates by time). Rows whose key does not have the
   * column's type (possible in MongoDB) are outside every range. */
  int (*verify_open)(as_node *n, const as_schema *s, bool client_hash, as_verify **out,
                     as_error *err);
  /* Estimated number of rows of the mapping (cheap: statistics where available). */
  int (*verify_estimate)(as_verify *v, int64_t *out, as_error *err);
  /* Signatures of the nb + 1 segments [lo, b[0]), [b[0], b[1]), ..., [b[nb-1], hi) into
   * out[0..nb]. bounds: nb keys (nb * nkey values), ascending, inside (lo, hi). AS_ENOTFOUND
   * (server mode, on the first call only) when the server refuses the hash operator: the
   * caller may switch to client mode. */
  int (*verify_sign)(as_verify *v, const as_value *lo, const as_value *hi, const as_value *bounds,
                     size_t nb, as_seghash *out, as_error *err);
  /* Up to parts - 1 keys strictly inside (lo, hi), ascending and distinct, cutting the range
   * into segments of about equal row counts (rows: the caller's count of the range on this
   * node, or -1). *bounds receives nb * nkey values (caller clears each and frees). */
  int (*verify_split)(as_verify *v, const as_value *lo, const as_value *hi, int64_t rows,
                      size_t parts, as_value **bounds, size_t *nb, as_error *err);
  /* Calls fn for every row of [lo, hi) (any order) with its key values and its row hash
   * (server mode: as_rowhash's value as unsigned; client mode: XXH3); for a row whose key the
   * mapping cannot read (a dead letter of the capture), key NULL and hash 0. A non-zero
   * return of fn stops the scan and is returned. */
  int (*verify_rows)(as_verify *v, const as_value *lo, const as_value *hi,
                     int (*fn)(void *ctx, const as_value *key, uint64_t hash), void *ctx,
                     as_error *err);
  /* Bytes received from the database by this session so far (0 where nothing crosses a
   * connection, e.g. SQLite in-process). */
  uint64_t (*verify_bytes)(as_verify *v);
  void (*verify_close)(as_verify *v);
  /* ---- the conflicts mirror (optional: SQL nodes; NULL = this node cannot hold it) ----
   * A table of the node's own (never captured) holding the open conflicts, so applications
   * can show and settle them: created when missing (mirror_ensure; the table name is checked
   * by the configuration), its ids read in ascending order (*ids: caller frees), a row
   * written (nothing when a row of that id is there), a row deleted. Admin calls, between
   * transactions. */
  int (*mirror_ensure)(as_node *n, const char *table, as_error *err);
  int (*mirror_ids)(as_node *n, const char *table, int64_t **ids, size_t *nids, as_error *err);
  int (*mirror_put)(as_node *n, const char *table, const as_mirror_row *r, as_error *err);
  int (*mirror_del)(as_node *n, const char *table, int64_t id, as_error *err);
  /* ---- the order of the connector's own commits (optional: NULL = unknown) ----
   * Right after a successful `commit` (same thread): that commit's place in the order of the
   * node's captured changes (as_delta.order), or an upper bound of it. Every change that
   * committed on the node before it has an order <= the value; a change with a greater order
   * committed after it. 0 when unknown (e.g. PostgreSQL with trigger capture, whose changelog
   * is not in commit order). The engine uses it to tell whether a local change was made on
   * top of the connector's last write of its key to the node, or before that write (raced). */
  int64_t (*commit_order)(as_node *n);
  /* ---- first copies (optional: NULL = nothing to do) ----
   * A first copy of mapping s into this node, whose tables held no row of it, begins (begin)
   * or is over (begin = false; called once for every begin, whatever the copy's outcome). The
   * node may set aside, for the copy, what makes each row's write slow and what an empty
   * table does not need, and must put it back at the end (and at its next install when the
   * process died in between): PostgreSQL drops the foreign keys of empty child tables and
   * adds them back, validated in one pass. Calls of one mapping nest (several pairs may copy
   * into the node at once). Admin call, between transactions. */
  int (*bulk_load)(as_node *n, const as_schema *s, bool begin, as_error *err);
} as_adapter;

/* The end of a verify_split over a sample of keys (n keys of nkey values each, already in the
 * node's key order): parts - 1 evenly spaced keys of the sample become the segment bounds,
 * copied to out (room for parts * nkey values), a key equal to the previous bound skipped.
 * *got: how many. AS_ERR only when a copy runs out of memory (out is then cleared). */
int as_verify_bounds_from_sample(const as_value *sample, size_t n, size_t nkey, size_t parts,
                                 as_value *out, size_t *got);

/* A table as the server describes it (the adapters' `describe`). */
typedef struct as_table_column {
  char *name;
  char *sql_type;  /* as the server names it: "bigint", "timestamp with time zone", "TEXT" */
  bool not_null;
  int key_pos;     /* 1-based position in the primary key, 0 when not part of it */
} as_table_column;

typedef struct as_table_desc {
  char *table;
  as_table_column *cols;
  size_t ncols;
  bool affinity;   /* types are declarations read by SQLite's affinity rules */
} as_table_desc;

/* Appends a column (copies the strings). */
int as_table_desc_add(as_table_desc *d, const char *name, const char *sql_type, bool not_null,
                      int key_pos);
void as_table_desc_free(as_table_desc *d);

/* The raw form the SQL adapters store with a capture dead letter ({"new": {col: text}} or a
 * plain object of column -> text/JSON value) -> an insert delta (their decode_raw). */
int as_adapter_decode_row_json(const as_schema *s, const char *raw, as_delta *out,
                               as_error *err);

/* ---- registry ---- */
const as_adapter *as_adapter_find(const char *kind);
/* NULL-terminated list of every registered adapter. */
const as_adapter *const *as_adapter_all(void);

/* The adapters (defined in adapters/<kind>/). */
extern const as_adapter as_adapter_postgres;
extern const as_adapter as_adapter_sqlite;
extern const as_adapter as_adapter_mongodb;

#endif
