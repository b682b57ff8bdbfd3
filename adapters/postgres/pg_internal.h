/* pg_internal.h — private state of the PostgreSQL adapter, shared by pg_adapter.c (node,
 * install), pg_capture.c (streams, snapshots) and pg_apply.c (sink, read_row).
 * Nothing outside adapters/postgres/ includes this. */
#ifndef AS_PG_INTERNAL_H
#define AS_PG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "../adapter.h"
#include "as_buf.h"

#define PG_COMPONENT "postgres"

/* One mapped table as this node sees it. */
typedef struct pg_table {
  const as_schema *s;
  char *qname;       /* "schema"."table", quoted */
  char *lit_table;   /* the table name as a quoted SQL string literal (changelog tbl) */
  char **qcols;      /* quoted column names, schema order */
  char *qstage;      /* quoted name of the per-session staging temp table */
  char *conflict;    /* "(k1,k2)" quoted key list */
  char *fname;       /* base name of the trigger functions (unquoted, < 50 bytes) */
  bool stage_ready;  /* staging table exists in the current sink session */
  int optimistic_skip; /* batches to skip the direct-COPY attempt after a key clash */
} pg_table;

struct as_node {
  char *name;        /* node name = origin of local changes */
  char *dsn;         /* never logged unredacted */
  char *schema;      /* where mapped tables live */
  char *qschema;     /* quoted */
  bool stmt_level;   /* insert/delete capture with statement-level transition-table triggers */
  bool fast_copy;    /* COPY fast path for runs of full-row inserts */
  pg_table *tables;
  size_t ntables;
  PGconn *conn;      /* sink + admin connection */
  bool in_txn;
  char *txn_origin;  /* origin set with set_config in the open transaction, or NULL */
  char comp[96];     /* log component "sink:postgres:<name>" */
};

/* ---- helpers (pg_adapter.c) ---- */
/* "" doubling, always quoted. Caller frees. */
char *pg_quote_ident(const char *s);
/* '...' with quotes doubled (standard_conforming_strings). Caller frees. */
char *pg_quote_literal(const char *s);
/* Opens a connection, sets the session settings the text forms rely on. */
int pg_connect_dsn(const char *dsn, const char *what, PGconn **out, as_error *err);
/* Turns a failed result (res may be NULL) into AS_RETRY or AS_ERR with "what: message
 * (SQLSTATE xxxxx)". Does not clear res. */
int pg_fail(PGconn *c, const PGresult *res, const char *what, as_error *err);
/* True for SQLSTATEs/connection states that are worth retrying. */
bool pg_retryable(PGconn *c, const PGresult *res);
/* Executes a command without parameters; returns 0 or pg_fail(). */
int pg_exec(PGconn *c, const char *sql, const char *what, as_error *err);
/* Executes with text parameters; *out gets the result on success (caller PQclear). */
int pg_query(PGconn *c, const char *sql, int nparams, const char *const *params,
             const char *what, PGresult **out, as_error *err);
pg_table *pg_table_for(as_node *n, const as_schema *s);
pg_table *pg_table_by_name(as_node *n, const char *table);

/* ---- values as PostgreSQL text (pg_apply.c) ---- */
/* Text form PostgreSQL accepts for a value cast to as_schema_pg_type(type). NULL -> *out NULL. */
int pg_value_to_text(const as_value *v, char **out, as_error *err);
/* Parses PostgreSQL output text (session settings of pg_connect_dsn / the trigger functions). */
int pg_value_from_text(as_type t, const char *s, size_t len, as_value *out, as_error *err);
/* Converts result row `row` (columns in schema order, text) into out (initialised with
 * schema->ncols slots); AS_EDATA (err names mapping and column) for an unparsable value. */
int pg_row_from_result(const pg_table *t, const PGresult *r, int row, as_row *out, as_error *err);
/* The select list "c1"::text, "c2"::text, ... for all columns of t. */
int pg_select_list(const pg_table *t, const char *alias, as_buf *b);

/* ---- callbacks defined in pg_capture.c / pg_apply.c ---- */
int pg_open_stream(as_node *n, const char *consumer, const char *checkpoint, as_stream **out,
                   as_error *err);
int pg_poll(as_stream *s, as_batch *out, size_t max, int wait_ms, as_error *err);
int pg_ack(as_stream *s, const char *pos, as_error *err);
int pg_stream_position(as_stream *s, char **out, as_error *err);
void pg_close_stream(as_stream *s);
int pg_snapshot_open(as_node *n, const as_schema *s, const char *after_key, as_snapshot **out,
                     as_error *err);
int pg_snapshot_next(as_snapshot *sn, as_batch *out, size_t max, as_error *err);
int64_t pg_snapshot_estimate(as_snapshot *sn);
void pg_snapshot_close(as_snapshot *sn);
int pg_begin(as_node *n, as_error *err);
int pg_apply(as_node *n, const as_delta *d, size_t nd, as_dead_list *dead, as_error *err);
int pg_commit(as_node *n, const char *stream_id, const char *checkpoint, as_error *err);
int pg_rollback(as_node *n);
int pg_checkpoint_load(as_node *n, const char *stream_id, char **out, as_error *err);
int pg_read_row(as_node *n, const as_schema *s, const as_row *key, as_row *out, as_error *err);
int pg_node_connect(as_node *n, as_error *err);
/* Forgets per-session state (staging tables) after the sink connection was replaced. */
void pg_sink_reset_session(as_node *n);

/* ---- pg_check.c: the describe, check_live and versions callbacks (adapter.h) ---- */
int pg_describe(as_node *n, const char *table, as_table_desc *out, as_error *err);
int pg_check_live(as_node *n, void (*report)(void *ctx, bool ok, const char *what,
                                             const char *fix),
                  void *ctx);
void pg_versions(void (*fn)(void *ctx, const char *lib, const char *version), void *ctx);

#endif
