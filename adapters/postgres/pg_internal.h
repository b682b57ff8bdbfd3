/* pg_internal.h — private state of the PostgreSQL adapter, shared by pg_adapter.c (node,
 * connections, quoting, errors), pg_install.c (install/uninstall/check_capture), pg_triggers.c
 * (trigger DDL), pg_capture.c (trigger streams, snapshots), pg_logical.c (logical-decoding
 * streams, pgoutput), pg_apply.c (sink, read_row), pg_children.c (child tables) and
 * pg_values.c (values as text, rows from results). Nothing outside adapters/postgres/
 * includes this. */
#ifndef AS_PG_INTERNAL_H
#define AS_PG_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "../adapter.h"
#include "as_buf.h"

#define PG_COMPONENT "postgres"
/* In every INSERT the connector makes: a key (or other) column that is an identity column
 * GENERATED ALWAYS takes the row's value, as COPY gives it (the value comes from another node;
 * PostgreSQL refuses it otherwise). Allowed on any table. */
#define PG_OVERRIDING "OVERRIDING SYSTEM VALUE "

/* How changes are captured (node option `capture`). */
typedef enum pg_capture {
  PG_CAPTURE_AUTO = 0, /* decided at the first connect: logical where possible */
  PG_CAPTURE_TRIGGERS,
  PG_CAPTURE_LOGICAL
} pg_capture;

/* One mapped table as this node sees it. */
struct json_t; /* jansson */

/* A statement text of the apply path by its shape (pg_apply.c delta_sql): its kind and the
 * columns the delta carries, so a text is built once per shape, not per delta. */
#define PG_SQL_MEMO 64 /* shapes remembered per table */
typedef struct pg_sql_memo {
  uint64_t hash;  /* of shape */
  unsigned char *shape;
  size_t nshape;
  char *sql;
  size_t len;
} pg_sql_memo;

typedef struct pg_table {
  const as_schema *s;
  const as_schema *owner; /* a child table (pg_children.c), or a table nested under one: the
                             mapping it belongs to, else NULL */
  size_t child;      /* which of owner's children (it is, or is under) */
  char *qname;       /* "schema"."table", quoted */
  char *lit_table;   /* the qualified name (qname) as an SQL string literal (changelog tbl) */
  char *lit_qname;   /* qname as an SQL string literal (for ::regclass) */
  char **qcols;      /* quoted column names, schema order */
  char *qstage;      /* quoted name of the per-session staging temp table */
  char *conflict;    /* "(k1,k2)" quoted key list */
  char *fname;       /* base name of the trigger functions (unquoted, < 50 bytes) */
  bool stage_ready;  /* staging table exists in the current sink session */
  int optimistic_skip; /* batches to skip the direct-COPY attempt after a key clash */
  int bulk;          /* a mapping's own table: first copies in progress (pg_bulk.c) */
  int64_t *ts_unit;  /* per column: the microseconds a timestamp column holds a multiple of
                        (timestamptz(3): 1000), 0 for other columns; NULL until the sink
                        has read the table's columns (again in each new session) */
  pg_sql_memo memo[PG_SQL_MEMO]; /* the last statement texts built, by shape */
  unsigned memo_next;            /* the entry the next new shape replaces */
} pg_table;

/* A statement of the sink's apply path prepared on its connection (pg_apply.c). */
#define PG_STMT_CACHE 128 /* distinct statement texts prepared per connection, at most */
/* a prepared statement no statement of the sink used for this many sends may give its slot
 * to a new text (more than a pipeline's statements: never one of the pipeline being sent) */
#define PG_STMT_IDLE 1024
typedef struct pg_stmt {
  uint64_t hash;  /* of sql; 0 with sql NULL: a free slot */
  char *sql;
  char name[48];  /* "arraysync_" and the 128-bit hash of sql in hex: a session holding a
                     statement by this name holds this text, whoever prepared it there */
  uint64_t last;  /* as_node.stmt_clock at its last use */
  bool pending;   /* its Parse is in the pipeline being run, not yet known to have worked */
} pg_stmt;

struct as_node {
  char *name;        /* node name = origin of local changes */
  char *dsn;         /* never logged unredacted */
  char *schema;      /* where mapped tables live */
  char *qschema;     /* quoted */
  bool stmt_level;   /* trigger capture with statement-level transition-table triggers */
  bool fast_copy;    /* COPY fast path for runs of full-row inserts */
  bool prepare;      /* statements of the apply path prepared once per connection */
  pg_stmt stmts[PG_STMT_CACHE]; /* those prepared on conn */
  uint64_t stmt_clock; /* statements sent by the apply path (the prepared ones' use order) */
  int64_t purge_interval_us; /* trigger capture: a stream writes its acked position at most this often */
  bool resnapshot;   /* on_history_lost: resnapshot */
  bool local_only;   /* as_node_config.local_only: origins are marked AS_ORIGIN_LOCAL_ONLY */
  pg_capture capture_opt; /* as configured */
  pg_capture capture;     /* decided (TRIGGERS or LOGICAL); AUTO until the first connect */
  char *pubname;     /* publication of this node (logical capture), [a-z0-9_] only */
  char *slot_prefix; /* "as_<node>_<hash>_": every slot of this node starts with it */
  char **consumers;  /* from the node config (may be empty) */
  size_t nconsumers;
  pg_table *tables;
  size_t ntables;
  PGconn *conn;      /* sink + admin connection */
  PGcancel *cancel;  /* for `interrupt`, guarded by cancel_mu */
  pthread_mutex_t cancel_mu;
  bool in_txn;
  char *txn_origin;  /* origin marked in the open transaction, or NULL */
  /* logical capture: the WAL insert position right after the sink's last commit (an upper
   * bound of that commit's LSN; commit_order), else 0 */
  uint64_t commit_lsn;
  char comp[96];     /* log component "postgres:<name>" */
};

/* Forgets the statements prepared on the sink's connection (it was closed or will be). */
void pg_stmts_forget(as_node *n);

/* ---- helpers (pg_adapter.c) ---- */
/* The one identifier quoting of this adapter: "" doubling, always quoted. Caller frees. */
char *pg_quote_ident(const char *s);
/* The one literal quoting: '...' with quotes doubled, or E'...' with backslashes doubled too
 * when the text has one, so the result means the same whatever standard_conforming_strings
 * is (trigger bodies are parsed in the writer's session). Caller frees. */
char *pg_quote_literal(const char *s);
/* Opens a connection, sets the session settings the text forms rely on. replication: a
 * logical replication connection (replication=database). Permanent failures (bad conninfo,
 * authentication, unknown database or role) are AS_EINVAL, others AS_RETRY. */
int pg_connect_dsn(const char *dsn, const char *what, bool replication, PGconn **out,
                   as_error *err);
/* Turns a failed result (res may be NULL) into AS_RETRY or AS_ERR with "what: message
 * (SQLSTATE xxxxx)". Does not clear res. */
int pg_fail(PGconn *c, const PGresult *res, const char *what, as_error *err);
/* True for SQLSTATEs/connection states that are worth retrying. */
bool pg_retryable(PGconn *c, const PGresult *res);
/* Executes a command without parameters; returns 0 or pg_fail(). */
int pg_exec(PGconn *c, const char *sql, const char *what, as_error *err);
/* Executes with text parameters; *out gets the result on success (caller PQclear). */
/* "X/Y" -> LSN (pg_logical.c). */
bool pg_lsn_parse(const char *s, uint64_t *out);
int pg_query(PGconn *c, const char *sql, int nparams, const char *const *params,
             const char *what, PGresult **out, as_error *err);
/* Simple-protocol query returning rows (replication connections accept no parameters). */
int pg_query_simple(PGconn *c, const char *sql, const char *what, PGresult **out,
                    as_error *err);
void pg_rollback_quiet(PGconn *c);
pg_table *pg_table_for(as_node *n, const as_schema *s);
/* The type a parameter of a mapped column is cast to in statements: as_schema_pg_type but a
 * timestamp's without its (3) (a column that holds microseconds keeps them; a key compares
 * exactly). */
const char *pg_cast_type(as_type t);
/* The table of a name: the mapping's table name, or its qualified name (qname). */
pg_table *pg_table_by_name(as_node *n, const char *table);
/* Whether a changelog table name (qualified: "schema"."table") is in the node's schema; a
 * name written before the triggers qualified it counts as in it. */
bool pg_name_in_schema(const as_node *n, const char *name);
/* Decides the capture mode on connection c (once per node); logs which and why. */
int pg_decide_capture(as_node *n, PGconn *c, as_error *err);
/* Slot name of (node, consumer) in database db: [a-z0-9_], at most 63 bytes. Caller frees. */
char *pg_slot_name(const as_node *n, const char *db, const char *consumer);
/* AS_ERESNAPSHOT (on_history_lost: resnapshot) or AS_ERR with the message and the way out. */
int pg_history_lost(as_node *n, as_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- install (pg_install.c) ---- */
/* Can an existing column of type typname (pg_type.typname) with modifier typmod hold every
 * value of mapping type t? *narrow: the same kind of type, but narrower (integer for int64,
 * real for double, varchar(n), numeric(p,s), timestamptz(0)). One rule for install and
 * check --live. */
bool pg_column_fits(as_type t, bool key, const char *typname, int typmod, bool *narrow);
int pg_install(as_node *n, as_error *err);
int pg_uninstall(as_node *n, as_error *err);
int pg_check_capture(as_node *n, bool repair, as_error *err);
int pg_gauges(as_node *n, void (*fn)(void *ctx, const char *metric, const char *consumer,
                                     double value),
              void *ctx, as_error *err);
/* Creates the slot if missing (autocommit statements on c). *created tells. */
int pg_slot_ensure(PGconn *c, const char *slot, bool *created, as_error *err);

/* ---- trigger DDL (pg_triggers.c) ---- */
/* Appends the CREATE FUNCTION/TRIGGER statements of table t (capture with triggers). attnum:
 * the table's attnum of every mapped column (schema order), for the changed-column masks. */
int pg_triggers_sql(const as_node *n, const pg_table *t, const int *attnum, as_buf *b);
/* DROP TRIGGER IF EXISTS of every capture trigger of t. */
int pg_triggers_drop_sql(const pg_table *t, as_buf *b);
/* Names of the capture triggers of a table at the given trigger level (NULL-terminated);
 * pg_triggers_drop_sql drops them all. */
const char *const *pg_trigger_names(bool stmt_level);
/* Bit of a column in a changed-columns mask: 1 << ((attnum - 1) % 64). */
uint64_t pg_mask_bit(int attnum);
/* Trigger capture of a mapped table the connector also writes (direction both, or strategy
 * vector or script): its changelog rows carry the values (`new`; `old` for deletes, and for
 * updates of a script mapping: JSON arrays of the mapped columns' texts) instead of being
 * read at poll time, so a change the connector overwrote on this node before the poll keeps
 * its own values. */
bool pg_table_exact(const pg_table *t);
/* Whether table t's capture triggers are statement-level (the node's `capture_triggers`). */
bool pg_table_stmt_level(const as_node *n, const pg_table *t);

/* ---- values as PostgreSQL text, rows from results (pg_values.c) ---- */
/* Text form PostgreSQL accepts for a value cast to as_schema_pg_type(type). NULL -> *out NULL.
 * AS_EDATA for text holding a NUL byte (PostgreSQL text cannot store it). */
int pg_value_to_text(const as_value *v, char **out, as_error *err);
/* Appends s to b escaped for COPY's text format (backslash, newline, CR, tab). */
int pg_copy_escape(as_buf *b, const char *s);
/* Appends v to b as a COPY text-format field: what pg_value_to_text gives, escaped ("\\N" for
 * NULL), written straight into b for the common types (no string per value). The same
 * errors as pg_value_to_text (b may then hold part of the field: the caller cuts it off). */
int pg_copy_value(as_buf *b, const as_value *v, as_error *err);
/* COPY sql FROM STDIN with data (text format rows) on c. AS_ERR with *res (the failed result,
 * caller clears; may be NULL) when PostgreSQL refused it. */
int pg_copy_in(PGconn *c, const char *sql, const as_buf *data, PGresult **res);
/* The same in steps, for data sent while the rest is still being made: pg_copy_start
 * (AS_ERR with *res when the statement was refused), pg_copy_put any number of times
 * (AS_ERR: the connection failed; finish with ok false), pg_copy_finish (AS_ERR with *res
 * when PostgreSQL refused the data or ok was false). */
#define PG_COPY_CHUNK 32768 /* bytes of COPY data sent at a time while the rest is made */
int pg_copy_start(PGconn *c, const char *sql, PGresult **res);
int pg_copy_put(PGconn *c, const void *data, size_t len);
int pg_copy_finish(PGconn *c, bool ok, PGresult **res);
/* A JSON array of texts (or nulls) -> values of columns [0..n) of schema sc, put into r at
 * idx[k] (NULL idx: at k). AS_EDATA (err says why) for a malformed array or value. */
int pg_texts_to_row(const as_schema *sc, const struct json_t *arr, const size_t *idx, size_t n, as_row *r,
                    as_error *err);
/* Parses PostgreSQL output text (session settings of pg_connect_dsn). */
int pg_value_from_text(as_type t, const char *s, size_t len, as_value *out, as_error *err);
/* Converts result row `row` (columns first..first+ncols in schema order, text) into out
 * (initialised with schema->ncols slots); AS_EDATA (err names mapping and column) for an
 * unparsable value. */
int pg_row_from_result(const pg_table *t, const PGresult *r, int row, int first, as_row *out,
                       as_error *err);
/* The canonical JSON key of a row that could not be converted whole (its dead letter), from
 * the texts of its key columns: text(c, &len) gives column c's text, NULL for SQL NULL or
 * unknown. NULL when a key column is missing or does not convert. */
char *pg_key_from_texts(const as_schema *s, const char *(*text)(const void *ctx, size_t c, size_t *len),
                        const void *ctx);
/* The select list "c1"::text, "c2"::text, ... for all columns of t. */
int pg_select_list(const pg_table *t, const char *alias, as_buf *b);

/* ---- callbacks defined in pg_capture.c / pg_logical.c / pg_apply.c ---- */
int pg_open_stream(as_node *n, const char *consumer, const char *checkpoint, as_stream **out,
                   as_error *err);
int pg_poll(as_stream *s, as_batch *out, size_t max, int wait_ms, as_error *err);
int pg_ack(as_stream *s, const char *pos, as_error *err);
int pg_stream_position(as_stream *s, char **out, as_error *err);
void pg_close_stream(as_stream *s);

typedef struct pg_lstream pg_lstream;
int pg_lstream_open(as_node *n, const char *consumer, const char *checkpoint,
                    pg_lstream **out, as_error *err);
int pg_lstream_poll(pg_lstream *s, as_batch *out, size_t max, int wait_ms, as_error *err);
int pg_lstream_ack(pg_lstream *s, const char *pos, as_error *err);
int pg_lstream_position(pg_lstream *s, char **out, as_error *err);
void pg_lstream_close(pg_lstream *s);
/* Test-only (tests/fuzz/fuzz_pgoutput.c): decodes pgoutput messages (msg[i], len[i] bytes:
 * the body of an XLogData, from its type byte on) in order with the stream's decoder, on node
 * n (built by init, never connected) for `consumer`, appending deltas and dead letters to out;
 * stops at the first error. With no connection, an insert missing columns (unchanged TOAST
 * values the stream would read by key) becomes a dead letter. */
int pg_logical_decode(as_node *n, const char *consumer, const uint8_t *const *msg,
                      const size_t *len, size_t nmsg, as_batch *out, as_error *err);

int pg_snapshot_open(as_node *n, const as_schema *s, const char *after_key, as_snapshot **out,
                     as_error *err);
int pg_snapshot_next(as_snapshot *sn, as_batch *out, size_t max, as_error *err);
int64_t pg_snapshot_estimate(as_snapshot *sn);
void pg_snapshot_close(as_snapshot *sn);
int pg_begin(as_node *n, as_error *err);
int pg_apply(as_node *n, const as_delta *d, size_t nd, as_dead_list *dead, as_error *err);
int pg_commit(as_node *n, const char *stream_id, const char *checkpoint, as_error *err);
int64_t pg_commit_order(as_node *n);
int pg_rollback(as_node *n);
int pg_checkpoint_load(as_node *n, const char *stream_id, char **out, as_error *err);
int pg_read_row(as_node *n, const as_schema *s, const as_row *key, as_row *out, as_error *err);
/* pg_mirror.c: the conflicts mirror table (adapter.h mirror_*) */
int pg_mirror_ensure(as_node *n, const char *table, as_error *err);
int pg_mirror_ids(as_node *n, const char *table, int64_t **ids, size_t *nids, as_error *err);
int pg_mirror_put(as_node *n, const char *table, const as_mirror_row *m, as_error *err);
int pg_mirror_del(as_node *n, const char *table, int64_t id, as_error *err);
/* pg_bulk.c: bulk_load, and adding back the foreign keys recorded as set aside for mapping s
 * (NULL: all of them but those of copies still running here; install calls it after a
 * connector died during a first copy, check_capture with repair after a failed add). */
int pg_bulk_load(as_node *n, const as_schema *s, bool begin, as_error *err);
int pg_bulk_restore(as_node *n, const as_schema *s, as_error *err);
int pg_node_connect(as_node *n, as_error *err);
/* Forgets per-session state (staging tables) after the sink connection was replaced. */
void pg_sink_reset_session(as_node *n);

/* ---- pg_children.c: child tables (the file's top says how) ---- */
/* Child rows of child ci of s for the parent with key `parent`, in position order, read on
 * c. Free with as_child_rows_free. */
int pg_child_read(PGconn *c, as_node *n, const as_schema *s, size_t ci, const as_row *parent,
                  as_row **rows, size_t *nrows, as_error *err);
/* Sets every array column of r (key columns set) from the child tables, read on c. */
int pg_children_fill(PGconn *c, as_node *n, const as_schema *s, as_row *r, as_error *err);
/* Verify: an expression (text) giving child ci's rows of the parent row of table expression
 * `outer` as a JSON array of arrays of column texts, in child order; and that text -> the
 * parent's array column value (as pg_children_fill gives it). */
int pg_children_rows_sql(as_node *n, const as_schema *s, size_t ci, const char *outer, as_buf *b);
int pg_children_array_from_text(as_node *n, const as_schema *s, size_t ci, const char *text,
                                as_value *out, as_error *err);
/* The rows of child ci of s from that JSON form (each row: its table columns' texts, then each
 * nested child's rows the same way), as child table rows with their nested arrays set. Free
 * with as_child_rows_free. */
int pg_children_rows_from_json(as_node *n, const as_schema *s, size_t ci, const struct json_t *j,
                               as_row **rows, size_t *nrows, as_error *err);
/* The same for the rows of deltas d[0..cnt) of one mapping, one read per 1,000 of them. */
int pg_children_fill_many(PGconn *c, as_node *n, as_delta *d, size_t cnt, as_error *err);
int pg_parent_exists(PGconn *c, as_node *n, const as_schema *s, const as_row *key, bool *exists,
                     as_error *err);
/* Sink (inside the transaction, on n->conn): the child rows of key deleted / brought to d's
 * array columns. AS_EDATA: this delta cannot be written (err says why). */
int pg_children_delete(as_node *n, const as_schema *s, const as_row *key, as_error *err);
int pg_children_write(as_node *n, const as_delta *d, as_error *err);
/* Sink in bulk: whether d's arrays convert to child rows (AS_EDATA: err says why); the child
 * rows of a run of deltas with distinct keys whose parents are written (AS_EDATA: a statement
 * was refused, the caller goes delta by delta). fresh: every parent is new in this
 * transaction (no child rows to read; they go in by COPY). */
int pg_children_check(const as_delta *d, as_error *err);
int pg_children_bulk(as_node *n, const as_delta *d, const size_t *idx, size_t cnt, bool fresh,
                     as_error *err);
/* Capture: deltas out->d[from..] of child tables become updates of their parents' array
 * columns (or dead letters, or nothing), parent inserts and update images get their arrays;
 * read on c. */
int pg_children_fold(as_node *n, PGconn *c, as_batch *out, size_t from, as_error *err);
/* Appends the image trigger SQL of table t (DROP, and with logical capture CREATE of the
 * function and trigger of a child table or a parent with children). */
int pg_images_sql(as_node *n, const pg_table *t, as_buf *b);

/* ---- pg_check.c: the describe, check_live and versions callbacks (adapter.h) ---- */
int pg_describe(as_node *n, const char *table, as_table_desc *out, as_error *err);
int pg_check_live(as_node *n, void (*report)(void *ctx, bool ok, const char *what,
                                             const char *fix),
                  void *ctx);
void pg_versions(void (*fn)(void *ctx, const char *lib, const char *version), void *ctx);

/* What a captured TRUNCATE of table t does for this stream: AS_OK with *emit (propagate) or
 * not (ignore, logged), or AS_ERR (stop) with the message. */
int pg_on_truncate(const as_node *n, const pg_table *t, const char *where, bool *emit,
                   as_error *err);

/* The connection string for messages, secrets left out (pg_adapter.c). Caller frees. */
char *pg_dsn_describe(const char *dsn);

#endif
