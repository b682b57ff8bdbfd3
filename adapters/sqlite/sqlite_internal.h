/* sqlite_internal.h — private declarations shared by the SQLite adapter's files. */
#ifndef AS_SQLITE_INTERNAL_H
#define AS_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "adapter.h"
#include "as_buf.h"
#include "as_ddl.h"

/* One cached prepared write statement: (schema, op, set of present columns). */
typedef struct sq_cached {
  const as_schema *schema;
  as_op op;      /* AS_OP_INSERT: insert and full-row update (upserts); AS_OP_UPDATE: partial
                    update (UPDATE ... WHERE key); AS_OP_DELETE; 0: read_row */
  uint8_t *mask; /* ncols presence flags (NULL for deletes) */
  sqlite3_stmt *st;
  int *param_col; /* parameter i+1 binds column param_col[i] */
  int nparams;
} sq_cached;

struct as_node {
  char *name;
  char *path;
  int busy_ms;
  bool use_inotify;
  int64_t purge_interval_us; /* a stream writes its acked position at most this often */
  const as_schema **schemas; /* borrowed schemas, array owned */
  size_t nschemas;
  char comp_src[128]; /* log components */
  char comp_sink[128];

  sqlite3 *db; /* sink/admin connection */
  bool in_txn;
  bool origin_dirty; /* _arraysync_origin holds cur_origin (non-NULL) */
  bool local_only;   /* as_node_config.local_only: origins are marked AS_ORIGIN_LOCAL_ONLY */
  char *cur_origin;
  sqlite3_stmt *st_origin, *st_ckpt_put, *st_ckpt_get, *st_seq_end;
  /* the changelog's last sequence number in the sink's last committed transaction: every
   * change committed before it has a sequence <= this, every later one a greater (commit_order) */
  int64_t commit_seq;
  sq_cached *cache;
  size_t ncache, capcache;
  sq_cached *last; /* most recently used cache entry */
};

/* Cell: one SQLite value as read from a column or from the changelog's JSON. */
typedef enum {
  SQ_CELL_NULL,
  SQ_CELL_INT,
  SQ_CELL_REAL,
  SQ_CELL_TEXT,
  SQ_CELL_BLOB,
  SQ_CELL_BOOL
} sq_cell_kind;
typedef struct sq_cell {
  sq_cell_kind k;
  int64_t i;
  double d;
  const char *p; /* TEXT/BLOB bytes (borrowed) */
  size_t len;
} sq_cell;

/* sqlite_values.c */
/* Converts a cell to a value of column type t, leniently where exact (see README.md).
 * AS_EDATA with a message describing the cell and the type on failure. */
int sq_cell_to_value(const sq_cell *c, as_type t, as_value *out, as_error *err);
void sq_cell_from_stmt(sqlite3_stmt *st, int col, sq_cell *c);
/* From the changelog JSON form written by the triggers. *tmp receives a buffer the cell may
 * point into (hex-decoded blob); caller frees it. */
int sq_cell_from_json(const json_t *j, sq_cell *c, uint8_t **tmp, as_error *err);
/* Binds a value in the form the adapter stores (see README.md). */
int sq_bind_value(sqlite3_stmt *st, int idx, const as_value *v, as_error *err);
/* Short printable description of a cell for error messages (caller frees). */
char *sq_cell_describe(const sq_cell *c);

/* sqlite_ddl.c */
/* Identifiers: as_sql_quote_ident (as_ddl.h). Names inside DDL string literals: */
int sq_quote_literal(as_buf *b, const char *s); /* 'text' with '' doubling */
int sq_install(as_node *n, as_error *err);
int sq_uninstall(as_node *n, as_error *err);

/* sqlite_adapter.c */
/* Maps an SQLite result code to AS_* (BUSY/LOCKED -> AS_RETRY) and fills err. */
int sq_fail(sqlite3 *db, int rc, as_error *err, const char *what);
int sq_exec(sqlite3 *db, const char *sql, as_error *err);
int sq_open(const char *path, int busy_ms, sqlite3 **out, as_error *err);
/* Builds "INSERT ... ON CONFLICT" for the given columns into b. */
void sq_upsert_sql(as_buf *b, const as_schema *s, const uint8_t *mask);
/* The pure part of changelog decoding (what the stream does with each changelog row's JSON),
 * for tests/fuzz/fuzz_changelog.c: fills r (from as_row_init) from the JSON object `row` of a
 * changelog row: every column (which 0), the key columns (1), or the key columns and those
 * whose JSON differs from `other` (2). AS_EDATA (err names the column and value) or AS_ERR. */
int sq_changelog_fill_row(const as_schema *sc, as_row *r, const json_t *row, const json_t *other,
                          int which, as_error *err);

/* " WHERE k1 = ?1 AND ..." over s's key columns, in key order, into b. */
void sq_key_where(as_buf *b, const as_schema *s);
/* SELECT of the table's own columns (cols[0..ntable)) FROM the table, into b. */
void sq_select_sql(as_buf *b, const as_schema *s);
/* Reads the current result row of st (the table's columns in schema order) into r. */
int sq_row_from_stmt(const as_schema *s, sqlite3_stmt *st, as_row *r, as_error *err);
/* Runs the statement of one insert/update/delete of d->schema's own table (cached), inside
 * the sink's transaction; *missing: an update found no row. AS_EDATA: this delta only. */
int sq_run_delta(as_node *n, const as_delta *d, bool *missing, as_error *err);

/* sqlite_children.c: child tables (as_schema.h as_child; the file's top says how) */
/* Child rows of child ci of the parent with key `parent`, in position order (db: the
 * connection to read with). Free with as_child_rows_free. */
int sq_child_read(sqlite3 *db, const as_schema *s, size_t ci, const as_row *parent,
                  as_row **rows, size_t *nrows, as_error *err);
/* Sets every array column of r (key columns set) from the child tables. */
int sq_children_fill(sqlite3 *db, const as_schema *s, as_row *r, as_error *err);
/* Sink: the child rows of d's key brought to d's array columns (those set). */
int sq_children_write(as_node *n, const as_delta *d, as_error *err);
/* Sink: deletes the child rows of key (NULL: of every parent). */
int sq_children_delete(as_node *n, const as_schema *s, const as_row *key, as_error *err);
int sq_parent_exists(sqlite3 *db, const as_schema *s, const as_row *key, bool *exists,
                     as_error *err);

/* sqlite_admin.c: the adapter's describe, check_live and versions callbacks (adapter.h). */
int sq_describe(as_node *n, const char *table, as_table_desc *out, as_error *err);
int sq_check_live(as_node *n, void (*report)(void *ctx, bool ok, const char *what,
                                             const char *fix),
                  void *ctx);
void sq_versions(void (*fn)(void *ctx, const char *lib, const char *version), void *ctx);
/* The node's connection, opened when not yet (sqlite_adapter.c). */
int sq_need_db(as_node *n, as_error *err);
/* sqlite_mirror.c: the conflicts mirror table (adapter.h mirror_*) */
int sq_mirror_ensure(as_node *n, const char *table, as_error *err);
int sq_mirror_ids(as_node *n, const char *table, int64_t **ids, size_t *nids, as_error *err);
int sq_mirror_put(as_node *n, const char *table, const as_mirror_row *m, as_error *err);
int sq_mirror_del(as_node *n, const char *table, int64_t id, as_error *err);

#endif
