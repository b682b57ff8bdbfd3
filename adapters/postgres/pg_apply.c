/* pg_apply.c — PostgreSQL sink side: one transaction per batch, origin marking, upserts and
 * deletes (pipeline mode), the COPY fast path for runs of full-row inserts, per-delta dead
 * letters through savepoints, checkpoints in the same transaction, read_row.
 *
 * Fast path for a run of full-row inserts of one mapping (no key twice in the run):
 *   1. optimistic: COPY straight into the table (under a savepoint); a unique violation means
 *      some keys exist: roll back to the savepoint and use 2 (and skip 1 for a few batches);
 *   2. COPY into a per-session temp staging table, then one INSERT … SELECT … ON CONFLICT.
 * Any other failure rolls back to the savepoint and replays the run delta by delta, so the
 * failing delta is dead-lettered and the rest applies. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <xxhash.h>

#include "as_log.h"
#include "pg_internal.h"
#include "pg_sql.h"

#define FAST_MIN 8          /* shortest insert run worth a COPY */
#define STREAM_MIN 64       /* shortest run sent while it is formatted */
#define PIPE_CHUNK 256      /* statements per pipeline round trip */
#define OPTIMISTIC_SKIP 16  /* batches without direct COPY after a key clash */
#define MAX_REPLAYS 4       /* failed pipelines per chunk before going row by row */
_Static_assert(PG_STMT_IDLE > PIPE_CHUNK, "a pipeline never evicts a statement it runs");

/* ------------------------------------------------------------------ transactions */

void pg_sink_reset_session(as_node *n) {
  for (size_t i = 0; i < n->ntables; i++) {
    n->tables[i].stage_ready = false;
    free(n->tables[i].ts_unit); /* read again: the columns may have changed meanwhile */
    n->tables[i].ts_unit = NULL;
  }
}

static void end_txn(as_node *n) {
  n->in_txn = false;
  free(n->txn_origin);
  n->txn_origin = NULL;
  /* a temp table created in a rolled-back transaction is gone */
  pg_sink_reset_session(n);
}

int pg_begin(as_node *n, as_error *err) {
  int rc;
  if (!n->conn || PQstatus(n->conn) != CONNECTION_OK) {
    if ((rc = pg_node_connect(n, err)) != AS_OK) return rc;
  }
  if (n->in_txn) {
    PGresult *r = PQexec(n->conn, PG_SQL_ROLLBACK);
    PQclear(r);
    end_txn(n);
  }
  if ((rc = pg_exec(n->conn, PG_SQL_BEGIN, "begin", err)) != AS_OK) return rc;
  n->in_txn = true;
  return AS_OK;
}

int pg_rollback(as_node *n) {
  if (n->conn && PQstatus(n->conn) == CONNECTION_OK) {
    PGresult *r = PQexec(n->conn, PG_SQL_ROLLBACK);
    PQclear(r);
  }
  end_txn(n);
  return AS_OK;
}

/* The checkpoint, COMMIT and, under logical decoding, the WAL position after it go in one
 * pipeline: one round trip where they took three. A failing statement aborts those after it
 * (the server skips them up to the sync), as when they ran one by one. */
enum { CQ_CHECKPOINT, CQ_COMMIT, CQ_LSN };

int pg_commit(as_node *n, const char *stream_id, const char *checkpoint, as_error *err) {
  if (!n->in_txn) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "commit without begin");
  PGconn *c = n->conn;
  int kinds[3], nq = 0;
  n->commit_lsn = 0;
  if (!PQenterPipelineMode(c)) {
    int rc = pg_fail(c, NULL, "commit: pipeline", err);
    pg_rollback(n);
    return rc;
  }
  bool ok = true;
  if (checkpoint && stream_id) {
    const char *p[2] = {stream_id, checkpoint};
    ok = PQsendQueryParams(c, PG_SQL_CHECKPOINT_SET, 2, NULL, p, NULL, NULL, 0);
    kinds[nq++] = CQ_CHECKPOINT;
  }
  if (ok) {
    ok = PQsendQueryParams(c, PG_SQL_COMMIT, 0, NULL, NULL, NULL, NULL, 0);
    kinds[nq++] = CQ_COMMIT;
  }
  if (ok && n->capture == PG_CAPTURE_LOGICAL) { /* where the commit is in the WAL, at most */
    ok = PQsendQueryParams(c, PG_SQL_WAL_INSERT_LSN, 0, NULL, NULL, NULL, NULL, 0);
    kinds[nq++] = CQ_LSN;
  }
  if (!PQpipelineSync(c)) ok = false;
  int rc = ok ? AS_OK : pg_fail(c, NULL, "commit: send", err);
  for (int q = 0; ok;) { /* q: the statement whose results are read; all of them, up to the sync */
    PGresult *r = PQgetResult(c);
    if (!r) { /* the end of one statement's results */
      if (PQstatus(c) != CONNECTION_OK) {
        if (rc == AS_OK) rc = pg_fail(c, NULL, "commit", err);
        break;
      }
      q++;
      continue;
    }
    ExecStatusType st = PQresultStatus(r);
    int kind = q < nq ? kinds[q] : CQ_LSN;
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      break;
    }
    if (kind == CQ_LSN) { /* unknown (0) unless read: the engine compares commit times instead */
      if (st != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
          !pg_lsn_parse(PQgetvalue(r, 0, 0), &n->commit_lsn))
        n->commit_lsn = 0;
    } else if (st != PGRES_COMMAND_OK && rc == AS_OK) { /* later ones: skipped (aborted) */
      rc = pg_fail(c, r, kind == CQ_CHECKPOINT ? "write checkpoint" : "commit", err);
    }
    PQclear(r);
  }
  PQexitPipelineMode(c);
  if (rc != AS_OK) {
    n->commit_lsn = 0;
    pg_rollback(n);
    return rc;
  }
  n->in_txn = false;
  free(n->txn_origin);
  n->txn_origin = NULL;
  return AS_OK;
}

int64_t pg_commit_order(as_node *n) { return (int64_t)n->commit_lsn; }

int pg_checkpoint_load(as_node *n, const char *stream_id, char **out, as_error *err) {
  int rc;
  PGresult *r = NULL;
  *out = NULL;
  if (!n->conn && (rc = pg_node_connect(n, err)) != AS_OK) return rc;
  const char *p[1] = {stream_id};
  if ((rc = pg_query(n->conn, PG_SQL_CHECKPOINT_GET, 1, p, "read checkpoint", &r, err)) != AS_OK)
    return rc;
  if (PQntuples(r) == 0) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ENOTFOUND, "no checkpoint for %s", stream_id);
  } else if (!(*out = strdup(PQgetvalue(r, 0, 0)))) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  }
  PQclear(r);
  return rc;
}

/* ------------------------------------------------------------------ dead letters */

static int dead_delta(as_node *n, as_dead_list *dead, const as_delta *d, size_t index,
                      const char *msg, as_error *err) {
  char *key = d->schema ? as_key_describe(d->schema, &d->row) : NULL;
  char *raw = as_delta_to_json_string(d, NULL);
  as_buf b = AS_BUF_INIT;
  as_buf_printf(&b, "mapping %s, key %s: %s", d->schema ? d->schema->name : "?",
                key ? key : "?", msg);
  AS_LOG(AS_LOG_WARN, n->comp, "dead letter (delta %zu): %s", index, as_buf_cstr(&b));
  if (as_dead_list_push(dead, d->schema, index, key, raw, as_buf_steal(&b)) != AS_OK)
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  return AS_OK;
}

/* t->ts_unit from the table's columns (once per node): a timestamp column with fewer than
 * six fractional digits (timestamptz(3), as install creates them) rounds finer values. */
static int load_ts_units(as_node *n, pg_table *t, as_error *err) {
  const as_schema *s = t->s;
  PGresult *r = NULL;
  const char *p[1] = {t->qname};
  int rc = pg_query(n->conn, PG_SQL_COLUMNS, 1, p, "read table columns", &r, err);
  if (rc != AS_OK) return rc;
  int64_t *u = calloc(s->ncols ? s->ncols : 1, sizeof *u);
  if (!u) {
    PQclear(r);
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  }
  for (size_t c = 0; c < s->ntable; c++) {
    if (s->cols[c].type != AS_T_TIMESTAMP) continue;
    u[c] = 1;
    for (int j = 0; j < PQntuples(r); j++) {
      int typmod = atoi(PQgetvalue(r, j, 3));
      if (strcmp(PQgetvalue(r, j, 0), s->cols[c].name) != 0 || typmod < 0 || typmod >= 6) continue;
      for (int k = typmod; k < 6; k++) u[c] *= 10;
    }
  }
  PQclear(r);
  t->ts_unit = u;
  return AS_OK;
}

/* AS_EDATA naming the column when d holds a timestamp finer than its column keeps (the server
 * would round it: '…59.9996' into the next second, or year). */
static int check_ts_units(const pg_table *t, const as_delta *d, as_error *err) {
  const as_schema *s = t->s;
  for (size_t c = 0; t->ts_unit && c < s->ntable; c++) {
    if (t->ts_unit[c] <= 1 || !as_row_has(&d->row, c) || d->row.v[c].type != AS_T_TIMESTAMP) continue;
    int64_t us = d->row.v[c].u.ts_us;
    if (us % t->ts_unit[c] == 0) continue;
    int digits = 0;
    for (int64_t u = t->ts_unit[c]; u < 1000000; u *= 10) digits++;
    return as_error_set(err, AS_DOM_POSTGRES, AS_EDATA,
                        "column \"%s\": timestamp %lld µs since 1970 has digits below the %d "
                        "fractional digits of column %s, which would round it (never done: "
                        "widen the column to timestamptz, or write the value with fewer digits)",
                        s->cols[c].name, (long long)us, digits, t->qname);
  }
  return AS_OK;
}

static char *result_message(PGconn *c, const PGresult *r) {
  const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *det = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
  if (!m) m = PQerrorMessage(c);
  as_buf b = AS_BUF_INIT;
  as_buf_printf(&b, "%s%s%s (SQLSTATE %s)", m, det ? ": " : "", det ? det : "", st ? st : "none");
  return as_buf_steal(&b);
}

/* ------------------------------------------------------------------ statements */

static bool full_row(const as_delta *d) {
  for (size_t c = 0; c < d->schema->ncols; c++) {
    if (!as_row_has(&d->row, c)) return false;
  }
  return true;
}

/* An update that carries some columns only: it changes an existing row, never makes one. */
static bool partial_update(const as_delta *d) { return d->op == AS_OP_UPDATE && !full_row(d); }

/* Converts the present columns of d into text parameters params[0..*np), in schema order
 * (key columns only when keys_only). AS_EDATA names the column. */
static int params_of(const as_schema *s, const as_delta *d, bool keys_only, char **params,
                     int *np, as_error *err) {
  int k = 0;
  for (size_t c = 0; c < s->ntable; c++) {
    if (!as_row_has(&d->row, c) || (keys_only && !s->cols[c].is_key)) continue;
    int rc = pg_value_to_text(&d->row.v[c], &params[k], err);
    if (rc != AS_OK) {
      as_error_prefix(err, "column \"%s\"", s->cols[c].name);
      return rc == AS_ERR ? AS_ERR : AS_EDATA;
    }
    k++;
  }
  *np = k;
  return AS_OK;
}

/* "k1 = $i::t AND ..." over the key columns, numbering the present columns from 1 in schema
 * order (keys_only: only key columns are numbered). */
static int key_where(const pg_table *t, const as_delta *d, bool keys_only, as_buf *b) {
  const as_schema *s = t->s;
  int p = 0;
  bool first = true;
  for (size_t c = 0; c < s->ntable; c++) {
    if (!as_row_has(&d->row, c) || (keys_only && !s->cols[c].is_key)) continue;
    p++;
    if (!s->cols[c].is_key) continue;
    if (as_buf_printf(b, "%s%s = $%d::%s", first ? "" : " AND ", t->qcols[c], p,
                      pg_cast_type(s->cols[c].type)) != AS_OK)
      return AS_ERR;
    first = false;
  }
  return AS_OK;
}

/* The statement text of shape[0..nshape) remembered for t, appended to sql: AS_OK, AS_ERR
 * (out of memory), or AS_EINVAL when it is not remembered. */
static int memo_get(const pg_table *t, uint64_t h, const unsigned char *shape, size_t nshape,
                    as_buf *sql) {
  for (size_t i = 0; i < PG_SQL_MEMO; i++) {
    const pg_sql_memo *m = &t->memo[i];
    if (m->hash == h && m->sql && m->nshape == nshape && memcmp(m->shape, shape, nshape) == 0)
      return as_buf_append(sql, m->sql, m->len) == AS_OK ? AS_OK : AS_ERR;
  }
  return AS_EINVAL;
}

/* Remembers sql as the text of shape (replacing the oldest entry; nothing when out of
 * memory: the text is built again next time). */
static void memo_put(pg_table *t, uint64_t h, const unsigned char *shape, size_t nshape,
                     as_buf *sql) {
  unsigned char *sh = malloc(nshape);
  char *q = malloc(sql->len + 1);
  if (!sh || !q) {
    free(sh);
    free(q);
    return;
  }
  memcpy(sh, shape, nshape);
  memcpy(q, as_buf_cstr(sql), sql->len + 1);
  pg_sql_memo *m = &t->memo[t->memo_next++ % PG_SQL_MEMO];
  free(m->shape);
  free(m->sql);
  *m = (pg_sql_memo){.hash = h, .shape = sh, .nshape = nshape, .sql = q, .len = sql->len};
}

/* Builds the statement and text parameters of one delta: DELETE by key; a partial update as
 * UPDATE of the present columns (or, with no column but the key, a SELECT of the key: either
 * way no row touched = the row is missing); an insert or a whole-row update as an upsert.
 * *params gets ncols entries (owned strings or NULL); *np the count used. AS_EINVAL/AS_EDATA:
 * the delta itself is bad. The text depends on the delta's shape only (its kind, which
 * columns it carries): t remembers the last PG_SQL_MEMO shapes' texts (formatting a text
 * took most of the client's time per update). */
static int delta_sql(pg_table *t, const as_delta *d, as_buf *sql, char **params, int *np,
                     as_error *err) {
  const as_schema *s = t->s;
  as_buf_reset(sql);
  for (size_t c = 0; c < s->ncols; c++) params[c] = NULL;
  for (size_t j = 0; j < s->nkey; j++) {
    if (!as_row_has(&d->row, s->key_idx[j]) || d->row.v[s->key_idx[j]].type == AS_T_NULL)
      return as_error_set(err, AS_DOM_POSTGRES, AS_EDATA, "key column \"%s\" is missing",
                          s->cols[s->key_idx[j]].name);
  }
  size_t nset = 0;
  for (size_t c = 0; c < s->ntable; c++) nset += as_row_has(&d->row, c) && !s->cols[c].is_key;
  bool keys_only = d->op == AS_OP_DELETE || (partial_update(d) && nset == 0);
  int rc = params_of(s, d, keys_only, params, np, err);
  if (rc != AS_OK) return rc;
  /* shape: the kind (delete, key select, update, upsert), then a bit per column carried */
  unsigned char shape[256];
  size_t nshape = 0;
  uint64_t shape_hash = 0;
  if (s->ntable < 8 * (sizeof shape - 1)) {
    nshape = 1 + (s->ntable + 7) / 8;
    memset(shape, 0, nshape);
    shape[0] = d->op == AS_OP_DELETE ? 1 : keys_only ? 2 : partial_update(d) ? 3 : 4;
    for (size_t c = 0; c < s->ntable; c++) {
      if (as_row_has(&d->row, c)) shape[1 + c / 8] |= (unsigned char)(1u << (c % 8));
    }
    shape_hash = XXH3_64bits(shape, nshape);
    rc = memo_get(t, shape_hash, shape, nshape, sql);
    if (rc == AS_OK) return AS_OK;
  }
  as_buf set = AS_BUF_INIT, cols = AS_BUF_INIT, vals = AS_BUF_INIT;
  rc = AS_ERR;
  if (keys_only) {
    if (as_buf_printf(sql, d->op == AS_OP_DELETE ? "DELETE FROM %s WHERE " : "SELECT 1 FROM %s WHERE ",
                      t->qname) != AS_OK ||
        key_where(t, d, true, sql) != AS_OK)
      goto cleanup;
    rc = AS_OK;
    goto cleanup;
  }
  int p = 0;
  for (size_t c = 0; c < s->ntable; c++) {
    if (!as_row_has(&d->row, c)) continue;
    p++;
    /* a text or json value takes the column's own type (json keeps its text as given, an
     * enum or a domain reads the text); the other types are cast to the mapping's */
    bool bare = !s->cols[c].is_key && (s->cols[c].type == AS_T_TEXT || s->cols[c].type == AS_T_JSON);
    const char *cast = bare ? "" : "::", *ty = bare ? "" : pg_cast_type(s->cols[c].type);
    if (!s->cols[c].is_key &&
        as_buf_printf(&set, "%s%s = %s%d%s%s", set.len ? ", " : "", t->qcols[c],
                      partial_update(d) ? "$" : "EXCLUDED.", p, cast, ty) != AS_OK)
      goto cleanup;
    if (as_buf_printf(&cols, "%s%s", cols.len ? ", " : "", t->qcols[c]) != AS_OK ||
        as_buf_printf(&vals, "%s$%d%s%s", vals.len ? ", " : "", p, cast, ty) != AS_OK)
      goto cleanup;
  }
  if (partial_update(d)) {
    if (as_buf_printf(sql, "UPDATE %s SET %s WHERE ", t->qname, as_buf_cstr(&set)) != AS_OK ||
        key_where(t, d, false, sql) != AS_OK)
      goto cleanup;
  } else {
    /* ON CONFLICT sets every present non-key column from the proposed row */
    as_buf_reset(&set);
    for (size_t c = 0; c < s->ntable; c++) {
      if (!as_row_has(&d->row, c) || s->cols[c].is_key) continue;
      if (as_buf_printf(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "", t->qcols[c],
                        t->qcols[c]) != AS_OK)
        goto cleanup;
    }
    if (as_buf_printf(sql, "INSERT INTO %s (%s) " PG_OVERRIDING "VALUES (%s) ON CONFLICT %s DO ",
                      t->qname, as_buf_cstr(&cols), as_buf_cstr(&vals), t->conflict) != AS_OK ||
        (set.len ? as_buf_printf(sql, "UPDATE SET %s", as_buf_cstr(&set))
                 : as_buf_append_str(sql, "NOTHING")) != AS_OK)
      goto cleanup;
  }
  rc = AS_OK;
cleanup:
  as_buf_free(&set);
  as_buf_free(&cols);
  as_buf_free(&vals);
  if (rc == AS_OK && nshape) memo_put(t, shape_hash, shape, nshape, sql);
  if (rc != AS_OK) {
    for (int i = 0; i < *np; i++) {
      free(params[i]);
      params[i] = NULL;
    }
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  }
  return AS_OK;
}

static void free_params(char **p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(p[i]);
    p[i] = NULL;
  }
}

static size_t max_cols(const as_node *n) {
  size_t m = 1;
  for (size_t i = 0; i < n->ntables; i++) {
    if (n->tables[i].s->ncols > m) m = n->tables[i].s->ncols;
  }
  return m;
}

/* ------------------------------------------------------------------ prepared statements */

/* The apply path's statements are prepared once per connection and text (PG_STMT_CACHE at
 * most; option `prepare`): PostgreSQL then parses and plans an upsert once, not per row
 * (for unprepared statements, parse and plan took about two thirds of the server's time per
 * row). A statement's name is its text's hash: a session can only hold that text under it,
 * so a session the sink did not prepare it on (a pooler's) runs the right statement or none.
 * A prepared statement outlives a rolled-back transaction; one whose Parse failed or
 * never ran (a pipeline aborted before it) is forgotten. When every slot is taken, the one
 * used longest ago gives its place to a new text if no statement used it for PG_STMT_IDLE
 * sends (the texts a mapping sends have changed: its documents' shapes); texts that come
 * round more often than that stay unprepared rather than push each other out. */

static void stmt_drop(as_node *n, int slot) {
  free(n->stmts[slot].sql);
  n->stmts[slot] = (pg_stmt){0};
}

void pg_stmts_forget(as_node *n) {
  for (int i = 0; i < PG_STMT_CACHE; i++) stmt_drop(n, i);
}

/* The slot of sql: prepared (or pending in this pipeline: *parse false), or one taken for it
 * (*parse true: send its Parse first), free or given up by an idle text (*evicted: that
 * text's slot as it was, the caller's to free; its statement is to be deallocated before the
 * Parse); -1 when there is none or preparing is off. */
static int stmt_slot(as_node *n, const char *sql, size_t len, bool *parse, pg_stmt *evicted) {
  *parse = false;
  *evicted = (pg_stmt){0};
  if (!n->prepare) return -1;
  uint64_t now = ++n->stmt_clock;
  XXH128_hash_t full = XXH3_128bits(sql, len);
  uint64_t h = full.low64 | 1;
  int take = -1, lru = -1;
  for (int i = 0; i < PG_STMT_CACHE; i++) {
    pg_stmt *st = &n->stmts[i];
    if (st->hash == h && strcmp(st->sql, sql) == 0) {
      st->last = now;
      return i;
    }
    if (!st->sql) {
      if (take < 0) take = i;
    } else if (!st->pending && (lru < 0 || st->last < n->stmts[lru].last)) {
      lru = i;
    }
  }
  if (take < 0 && lru >= 0 && now - n->stmts[lru].last > PG_STMT_IDLE) take = lru;
  char *copy = take >= 0 ? malloc(len + 1) : NULL;
  if (!copy) return -1;
  memcpy(copy, sql, len + 1);
  *evicted = n->stmts[take];
  n->stmts[take] = (pg_stmt){.hash = h, .sql = copy, .last = now, .pending = true};
  snprintf(n->stmts[take].name, sizeof n->stmts[take].name, "arraysync_%016" PRIx64 "%016" PRIx64,
           full.high64, full.low64);
  *parse = true;
  return take;
}

/* What the pipeline did with one statement's prepared form. */
typedef struct pipe_stmt {
  int slot;        /* the cache slot used (-1: sent unnamed) */
  bool parsed;     /* its text's Parse was sent (one more result) */
  bool parse_ok;   /* ... and worked */
  bool earlier;    /* it ran a statement prepared before this pipeline */
  pg_stmt evicted; /* the slot's former text (sql NULL: none), deallocated first */
  bool close_ok;   /* ... and the DEALLOCATE worked */
} pipe_stmt;

/* Sends statement sql with params: prepared (the slot's former statement deallocated and its
 * Parse first, when new), or unnamed. Fills p. */
static bool send_stmt(as_node *n, const char *sql, size_t len, int np, char **params,
                      pipe_stmt *p) {
  PGconn *c = n->conn;
  *p = (pipe_stmt){0};
  p->slot = stmt_slot(n, sql, len, &p->parsed, &p->evicted);
  if (p->slot < 0)
    return PQsendQueryParams(c, sql, np, NULL, (const char *const *)params, NULL, NULL, 0);
  p->earlier = !n->stmts[p->slot].pending;
  const char *name = n->stmts[p->slot].name;
  char close[64];
  snprintf(close, sizeof close, "DEALLOCATE %s", p->evicted.name);
  if (p->evicted.sql && !PQsendQueryParams(c, close, 0, NULL, NULL, NULL, NULL, 0)) return false;
  if (p->parsed && !PQsendPrepare(c, name, sql, np, NULL)) return false;
  return PQsendQueryPrepared(c, name, np, (const char *const *)params, NULL, NULL, 0);
}

/* After the pipeline: a Parse that worked makes its slot prepared; one that failed or never
 * ran frees it, or gives it back to its former text when that was not deallocated either (a
 * DEALLOCATE that fails aborts the pipeline before the Parse). */
static void stmt_settle(as_node *n, pipe_stmt *p) {
  if (p->parsed && n->stmts[p->slot].pending) {
    if (p->parse_ok) {
      n->stmts[p->slot].pending = false;
    } else {
      stmt_drop(n, p->slot);
      if (p->evicted.sql && !p->close_ok) {
        n->stmts[p->slot] = p->evicted;
        p->evicted.sql = NULL;
      }
    }
  }
  free(p->evicted.sql);
  p->evicted.sql = NULL;
}

/* A failure that a statement planned before a change of its table can meet where the same
 * text parsed anew would not (a parameter's or a result's type fixed at the Parse, a
 * column or the table gone: SQLSTATE class 42, 0A000 "cached plan must not change result
 * type"). A row's own failure (a constraint, a value the column refuses) is none of them. */
static bool plan_may_be_stale(const PGresult *r) {
  const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return st && (strncmp(st, "42", 2) == 0 || strcmp(st, "0A000") == 0);
}

/* A failure of the statement names themselves (42P05 a name already taken, 26000 none by that
 * name): the session's prepared statements are not what the cache says (a connection pooler
 * that hands out server sessions by transaction). */
static bool names_differ(const PGresult *r) {
  const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return st && (strcmp(st, "42P05") == 0 || strcmp(st, "26000") == 0);
}

/* One entry of a pipeline's queue between its SAVEPOINT and its RELEASE: statement `stmt`'s
 * DEALLOCATE of its slot's former text, its Parse, or its execution. */
typedef enum { PE_EXEC, PE_PARSE, PE_CLOSE } pipe_kind;
typedef struct pipe_entry {
  int stmt;
  pipe_kind kind;
} pipe_entry;

/* Reads every result of a pipeline up to its sync. Sets *fail to the index (among the
 * statements after the leading SAVEPOINT) of the first failing statement (its DEALLOCATE,
 * Parse or execution, entries ent[0..nent); *fail_close: it was the DEALLOCATE) and *failres
 * to its result (caller clears), or leaves *fail = -1. Sets ps[j].parse_ok and .close_ok.
 * Returns AS_OK or a broken connection (AS_RETRY). */
static int pipeline_collect(PGconn *c, const pipe_entry *ent, int nent, int *fail,
                            bool *fail_close, PGresult **failres, bool *untouched, pipe_stmt *ps,
                            as_error *err) {
  *fail = -1;
  *fail_close = false;
  *failres = NULL;
  int q = -1; /* entry index: -1 = the SAVEPOINT, nent = the RELEASE */
  for (;;) {
    PGresult *r = PQgetResult(c);
    if (!r) {
      if (PQstatus(c) != CONNECTION_OK) return pg_fail(c, NULL, "apply", err);
      q++;
      continue;
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      break;
    }
    bool in = q >= 0 && q < nent;
    int j = in ? ent[q].stmt : q < 0 ? -1 : INT_MAX;
    if (st == PGRES_FATAL_ERROR && *fail < 0 && !*failres) {
      *fail = j;
      *fail_close = in && ent[q].kind == PE_CLOSE;
      *failres = r;
      continue;
    }
    if (in && ent[q].kind == PE_PARSE) ps[j].parse_ok = st == PGRES_COMMAND_OK;
    else if (in && ent[q].kind == PE_CLOSE) ps[j].close_ok = st == PGRES_COMMAND_OK;
    else if (in && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK))
      untouched[j] = strcmp(PQcmdTuples(r), "0") == 0;
    PQclear(r);
  }
  return AS_OK;
}

/* A partial update that touched no row: reported, not an error (adapter.h, apply). */
static int report_missing(as_dead_list *dead, const as_delta *d, size_t index, bool untouched,
                          as_error *err) {
  if (!untouched || !partial_update(d)) return AS_OK;
  if (as_dead_list_push_missing(dead, d->schema, index) != AS_OK)
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  return AS_OK;
}

/* Runs statements idx[0..cnt) (indexes into d) in one pipeline inside a savepoint. On a
 * failing statement the savepoint is rolled back and *failed_at set (index into idx);
 * *stale: it may have failed for a plan made before a change of its table (a statement
 * prepared before this pipeline, failing as plan_may_be_stale says) or for the cache not
 * matching the session (a DEALLOCATE, or names_differ): the caller forgets every prepared
 * statement and runs the statements again. */
static int run_pipeline(as_node *n, pg_table **tabs, const as_delta *d, const size_t *idx,
                        size_t cnt, char **params, as_buf *sql, int *failed_at, char **failmsg,
                        bool *untouched, bool *stale, as_error *err) {
  PGconn *c = n->conn;
  int rc = AS_OK;
  PGresult *fr = NULL;
  pipe_entry ent[3 * PIPE_CHUNK];
  pipe_stmt ps[PIPE_CHUNK];
  int nent = 0;
  *failed_at = -1;
  *failmsg = NULL;
  *stale = false;
  if (!PQenterPipelineMode(c)) return pg_fail(c, NULL, "apply: pipeline", err);
  bool ok = PQsendQueryParams(c, PG_SQL_SAVEPOINT, 0, NULL, NULL, NULL, NULL, 0);
  size_t sent = 0;
  for (size_t j = 0; ok && j < cnt; j++) {
    int np = 0;
    const as_delta *x = &d[idx[j]];
    rc = delta_sql(tabs[idx[j]], x, sql, params, &np, err);
    if (rc != AS_OK) { /* values were converted before: only ENOMEM gets here */
      ok = false;
      break;
    }
    ok = send_stmt(n, as_buf_cstr(sql), sql->len, np, params, &ps[j]);
    sent = j + 1;
    if (ps[j].evicted.sql) ent[nent++] = (pipe_entry){.stmt = (int)j, .kind = PE_CLOSE};
    if (ps[j].parsed) ent[nent++] = (pipe_entry){.stmt = (int)j, .kind = PE_PARSE};
    ent[nent++] = (pipe_entry){.stmt = (int)j, .kind = PE_EXEC};
    free_params(params, (size_t)np);
  }
  if (ok) ok = PQsendQueryParams(c, PG_SQL_RELEASE, 0, NULL, NULL, NULL, NULL, 0);
  if (!PQpipelineSync(c)) ok = false;
  if (!ok && rc == AS_OK) rc = pg_fail(c, NULL, "apply: send", err);
  if (PQstatus(c) == CONNECTION_OK) {
    int f;
    bool fclose;
    int crc = pipeline_collect(c, ent, nent, &f, &fclose, &fr, untouched, ps, err);
    if (crc != AS_OK && rc == AS_OK) rc = crc;
    if (rc == AS_OK && fr) {
      if (f < 0 || f >= (int)cnt || pg_retryable(c, fr)) {
        rc = pg_fail(c, fr, "apply", err);
      } else {
        *failed_at = f;
        *failmsg = result_message(c, fr);
        *stale = fclose || names_differ(fr) || (ps[f].earlier && plan_may_be_stale(fr));
      }
    }
  }
  for (size_t j = 0; j < sent; j++) stmt_settle(n, &ps[j]);
  PQexitPipelineMode(c);
  PQclear(fr);
  if (rc == AS_OK && *failed_at >= 0) {
    rc = pg_exec(c, PG_SQL_ROLLBACK_TO, "apply: rollback to savepoint", err);
    if (rc == AS_OK) rc = pg_exec(c, PG_SQL_RELEASE, "apply: release", err);
  }
  return rc;
}

/* One delta in its own savepoint (the slow, exact path). */
static int run_one(as_node *n, pg_table *t, const as_delta *d, char **params, as_buf *sql,
                   char **failmsg, bool *untouched, as_error *err) {
  PGconn *c = n->conn;
  int np = 0;
  *failmsg = NULL;
  *untouched = false;
  int rc = delta_sql(t, d, sql, params, &np, err);
  if (rc != AS_OK) return rc;
  if ((rc = pg_exec(c, PG_SQL_SAVEPOINT, "apply: savepoint", err)) != AS_OK) goto cleanup;
  PGresult *r = PQexecParams(c, as_buf_cstr(sql), np, NULL, (const char *const *)params, NULL,
                             NULL, 0);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    if (pg_retryable(c, r)) {
      rc = pg_fail(c, r, "apply", err);
    } else {
      *failmsg = result_message(c, r);
      rc = pg_exec(c, PG_SQL_ROLLBACK_TO, "apply: rollback to savepoint", err);
    }
  } else {
    *untouched = strcmp(PQcmdTuples(r), "0") == 0;
  }
  PQclear(r);
  if (rc == AS_OK) rc = pg_exec(c, PG_SQL_RELEASE, "apply: release", err);
cleanup:
  free_params(params, (size_t)np);
  return rc;
}

/* Applies the deltas idx[0..cnt) one statement each, pipelined, dead-lettering failures. */
static int apply_generic(as_node *n, pg_table **tabs, const as_delta *d, size_t *idx, size_t cnt,
                         size_t base, as_dead_list *dead, char **params, as_buf *sql,
                         as_error *err) {
  size_t pos = 0;
  while (pos < cnt) {
    size_t lim = cnt - pos < PIPE_CHUNK ? cnt : pos + PIPE_CHUNK;
    int replays = 0;
    bool refreshed = false; /* the prepared statements were forgotten once for this chunk */
    for (;;) {
      int f;
      char *msg = NULL;
      if (replays >= MAX_REPLAYS) {
        for (size_t j = pos; j < lim; j++) {
          bool none = false;
          int rc = run_one(n, tabs[idx[j]], &d[idx[j]], params, sql, &msg, &none, err);
          if (rc == AS_OK && msg) rc = dead_delta(n, dead, &d[idx[j]], base + idx[j], msg, err);
          if (rc == AS_OK && !msg) rc = report_missing(dead, &d[idx[j]], base + idx[j], none, err);
          free(msg);
          msg = NULL;
          if (rc != AS_OK) return rc;
        }
        break;
      }
      bool untouched[PIPE_CHUNK] = {false}, stale = false;
      int rc = run_pipeline(n, tabs, d, idx + pos, lim - pos, params, sql, &f, &msg, untouched,
                            &stale, err);
      if (rc != AS_OK) {
        free(msg);
        return rc;
      }
      /* a plan made before the table changed: again, every statement prepared anew (after
       * that no slot is evicted within the chunk, so a DEALLOCATE cannot fail again) */
      if (f >= 0 && stale && !refreshed) {
        refreshed = true;
        AS_LOG(AS_LOG_DEBUG, n->comp, "a prepared statement failed (%s); preparing again", msg);
        free(msg);
        if ((rc = pg_exec(n->conn, "DEALLOCATE ALL", "apply: deallocate", err)) != AS_OK) return rc;
        pg_stmts_forget(n);
        continue;
      }
      if (f < 0) {
        for (size_t j = pos; j < lim && rc == AS_OK; j++)
          rc = report_missing(dead, &d[idx[j]], base + idx[j], untouched[j - pos], err);
        if (rc != AS_OK) return rc;
        break;
      }
      /* drop the failing delta from the chunk and replay the rest */
      size_t bad = pos + (size_t)f;
      rc = dead_delta(n, dead, &d[idx[bad]], base + idx[bad], msg, err);
      free(msg);
      if (rc != AS_OK) return rc;
      memmove(idx + bad, idx + bad + 1, (cnt - bad - 1) * sizeof *idx);
      cnt--;
      lim--;
      replays++;
      if (pos >= lim) break;
    }
    pos = lim;
  }
  return AS_OK;
}

/* One delta of a mapping with child tables: the parent row's statement and the child rows
 * (pg_children.c) in one savepoint, so a child row PostgreSQL refuses dead-letters the whole
 * change. */
static int run_with_children(as_node *n, pg_table *t, const as_delta *d, size_t index,
                             as_dead_list *dead, char **params, as_buf *sql, as_error *err) {
  PGconn *c = n->conn;
  as_error e = {0};
  bool untouched = false;
  int np = 0;
  int rc = pg_exec(c, "SAVEPOINT arraysync_children", "apply: savepoint", err);
  if (rc != AS_OK) return rc;
  int dr = d->op == AS_OP_DELETE ? pg_children_delete(n, d->schema, &d->row, &e) : AS_OK;
  if (dr == AS_OK) dr = delta_sql(t, d, sql, params, &np, &e);
  if (dr == AS_OK) {
    PGresult *r = PQexecParams(c, as_buf_cstr(sql), np, NULL, (const char *const *)params, NULL,
                               NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      untouched = strcmp(PQcmdTuples(r), "0") == 0;
    } else if (pg_retryable(c, r)) {
      dr = pg_fail(c, r, "apply", &e);
    } else {
      char *m = result_message(c, r);
      dr = as_error_set(&e, AS_DOM_POSTGRES, AS_EDATA, "%s", m ? m : "refused");
      free(m);
    }
    PQclear(r);
    free_params(params, (size_t)np);
  }
  bool missing = untouched && partial_update(d);
  if (dr == AS_OK && d->op != AS_OP_DELETE && !missing) dr = pg_children_write(n, d, &e);
  if (dr != AS_OK && dr != AS_EDATA) {
    *err = e;
    return dr;
  }
  if (dr == AS_EDATA) {
    rc = pg_exec(c, "ROLLBACK TO SAVEPOINT arraysync_children", "apply: rollback to savepoint", err);
    if (rc == AS_OK) rc = pg_exec(c, "RELEASE SAVEPOINT arraysync_children", "apply: release", err);
    return rc == AS_OK ? dead_delta(n, dead, d, index, e.message, err) : rc;
  }
  rc = pg_exec(c, "RELEASE SAVEPOINT arraysync_children", "apply: release", err);
  return rc == AS_OK ? report_missing(dead, d, index, untouched, err) : rc;
}

/* ------------------------------------------------------------------ COPY fast path */

static int ensure_stage(as_node *n, pg_table *t, as_error *err) {
  if (t->stage_ready) return AS_OK;
  as_buf b = AS_BUF_INIT;
  int rc = AS_OK;
  /* the table's own column types (a json column's text, an enum, a domain) */
  if (as_buf_printf(&b, "CREATE TEMP TABLE IF NOT EXISTS %s ON COMMIT DELETE ROWS AS SELECT ",
                    t->qstage) != AS_OK)
    rc = AS_ERR;
  for (size_t c = 0; rc == AS_OK && c < t->s->ntable; c++) {
    if (as_buf_printf(&b, "%s%s", c ? ", " : "", t->qcols[c]) != AS_OK) rc = AS_ERR;
  }
  if (rc == AS_OK && as_buf_printf(&b, " FROM %s WITH NO DATA", t->qname) != AS_OK) rc = AS_ERR;
  if (rc != AS_OK) {
    as_buf_free(&b);
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  }
  rc = pg_exec(n->conn, as_buf_cstr(&b), "apply: staging table", err);
  as_buf_free(&b);
  if (rc == AS_OK) t->stage_ready = true;
  return rc;
}

static int copy_sqls(const pg_table *t, as_buf *direct, as_buf *stage, as_buf *merge) {
  const as_schema *s = t->s;
  as_buf cols = AS_BUF_INIT, set = AS_BUF_INIT;
  int rc = AS_OK;
  for (size_t c = 0; rc == AS_OK && c < s->ntable; c++) {
    rc = as_buf_printf(&cols, "%s%s", c ? ", " : "", t->qcols[c]);
    if (rc == AS_OK && !s->cols[c].is_key)
      rc = as_buf_printf(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "", t->qcols[c],
                         t->qcols[c]);
  }
  if (rc == AS_OK)
    rc = as_buf_printf(direct, "COPY %s (%s) FROM STDIN", t->qname, as_buf_cstr(&cols));
  if (rc == AS_OK)
    rc = as_buf_printf(stage, "COPY %s (%s) FROM STDIN", t->qstage, as_buf_cstr(&cols));
  if (rc == AS_OK)
    rc = as_buf_printf(merge,
                       "INSERT INTO %s (%s) " PG_OVERRIDING "SELECT %s FROM %s ON CONFLICT %s DO ",
                       t->qname, as_buf_cstr(&cols), as_buf_cstr(&cols), t->qstage, t->conflict);
  if (rc == AS_OK)
    rc = set.len ? as_buf_printf(merge, "UPDATE SET %s", as_buf_cstr(&set))
                 : as_buf_append_str(merge, "NOTHING");
  as_buf_free(&cols);
  as_buf_free(&set);
  return rc;
}

/* Starts the direct COPY of a run (the statement `direct`, under the savepoint fast_insert
 * expects) before the run is all formatted, so PostgreSQL parses rows while the rest are
 * made. *started false when the statement was refused for a reason that is not retryable:
 * the savepoint is undone and fast_insert then does the whole run as usual (and meets the
 * refusal again). */
static int stream_start(as_node *n, const char *direct, bool *started, as_error *err) {
  PGconn *c = n->conn;
  PGresult *r = NULL;
  int rc;
  *started = false;
  if ((rc = pg_exec(c, PG_SQL_SAVEPOINT, "apply: savepoint", err)) != AS_OK)
    ;
  else if (pg_copy_start(c, direct, &r) == AS_OK)
    *started = true;
  else if (pg_retryable(c, r))
    rc = pg_fail(c, r, "apply: copy", err);
  else if ((rc = pg_exec(c, PG_SQL_ROLLBACK_TO, "apply: rollback to savepoint", err)) == AS_OK)
    rc = pg_exec(c, PG_SQL_RELEASE, "apply: release", err);
  PQclear(r);
  return rc;
}

/* COPY of a run; returns AS_OK (applied; *fresh: straight into the table, so none of its
 * keys existed), AS_EDATA (permanent failure: caller replays the run delta by delta), or
 * AS_RETRY/AS_ERR. direct, stage, merge: the statements copy_sqls made. `started`:
 * stream_start began the direct COPY and data[0..sent) is sent. */
static int fast_insert(as_node *n, pg_table *t, const as_buf *data, const char *direct,
                       const char *stage, const char *merge, bool started, size_t sent,
                       bool *fresh, as_error *err) {
  PGconn *c = n->conn;
  as_buf trunc = AS_BUF_INIT;
  PGresult *r = NULL;
  int rc;
  if (started || t->optimistic_skip == 0) {
    int cr;
    if (started) {
      cr = pg_copy_finish(c, pg_copy_put(c, data->data + sent, data->len - sent) == AS_OK, &r);
    } else {
      if ((rc = pg_exec(c, PG_SQL_SAVEPOINT, "apply: savepoint", err)) != AS_OK) goto cleanup;
      cr = pg_copy_in(c, direct, data, &r);
    }
    if (cr == AS_OK) {
      rc = pg_exec(c, PG_SQL_RELEASE, "apply: release", err);
      *fresh = rc == AS_OK;
      goto cleanup;
    }
    if (pg_retryable(c, r)) {
      rc = pg_fail(c, r, "apply: copy", err);
      goto cleanup;
    }
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    bool clash = st && strcmp(st, "23505") == 0;
    PQclear(r);
    r = NULL;
    if ((rc = pg_exec(c, PG_SQL_ROLLBACK_TO, "apply: rollback to savepoint", err)) != AS_OK ||
        (rc = pg_exec(c, PG_SQL_RELEASE, "apply: release", err)) != AS_OK)
      goto cleanup;
    if (!clash) {
      rc = AS_EDATA;
      goto cleanup;
    }
    t->optimistic_skip = OPTIMISTIC_SKIP;
  }
  if ((rc = ensure_stage(n, t, err)) != AS_OK) goto cleanup;
  if ((rc = pg_exec(c, PG_SQL_SAVEPOINT, "apply: savepoint", err)) != AS_OK) goto cleanup;
  if (as_buf_printf(&trunc, "TRUNCATE %s", t->qstage) != AS_OK) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    goto cleanup;
  }
  if ((rc = pg_exec(c, as_buf_cstr(&trunc), "apply: truncate staging", err)) != AS_OK)
    goto cleanup;
  if (pg_copy_in(c, stage, data, &r) == AS_OK) {
    r = PQexec(c, merge);
    if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
      PQclear(r);
      r = NULL;
      rc = pg_exec(c, PG_SQL_RELEASE, "apply: release", err);
      goto cleanup;
    }
  }
  if (pg_retryable(c, r)) {
    rc = pg_fail(c, r, "apply: copy", err);
    goto cleanup;
  }
  if ((rc = pg_exec(c, PG_SQL_ROLLBACK_TO, "apply: rollback to savepoint", err)) == AS_OK &&
      (rc = pg_exec(c, PG_SQL_RELEASE, "apply: release", err)) == AS_OK)
    rc = AS_EDATA;
cleanup:
  PQclear(r);
  as_buf_free(&trunc);
  return rc;
}

/* A tiny set of key strings (open addressing on XXH3). */
typedef struct keyset {
  char **slot;
  size_t cap;
} keyset;

static bool keyset_add(keyset *ks, const char *k, size_t len, bool *dup) {
  *dup = false;
  uint64_t h = XXH3_64bits(k, len);
  for (size_t i = h & (ks->cap - 1);; i = (i + 1) & (ks->cap - 1)) {
    if (!ks->slot[i]) {
      ks->slot[i] = strndup(k, len);
      return ks->slot[i] != NULL;
    }
    if (strlen(ks->slot[i]) == len && memcmp(ks->slot[i], k, len) == 0) {
      *dup = true;
      return true;
    }
  }
}

static void keyset_clear(keyset *ks) {
  for (size_t i = 0; i < ks->cap; i++) free(ks->slot[i]);
  free(ks->slot);
  ks->slot = NULL;
  ks->cap = 0;
}

static bool full_insert(const as_delta *d) { return d->op == AS_OP_INSERT && full_row(d); }

/* Tries the COPY path on the run of full inserts of one table starting at d[i] (same origin
 * up to `end`). *used = deltas consumed (0: not worth it); *fresh (may be NULL): every one of
 * them went straight into the table as a new row. */
static int try_fast(as_node *n, pg_table **tabs, const as_delta *d, size_t i, size_t end,
                    size_t base, as_dead_list *dead, size_t *used, bool *fresh, as_error *err) {
  int rc = AS_OK;
  bool direct = false, started = false; /* started: a direct COPY is open (stream_start) */
  *used = 0;
  if (fresh) *fresh = false;
  pg_table *t = tabs[i];
  size_t m = i;
  while (m < end && tabs[m] == t && full_insert(&d[m])) m++;
  if (m - i < FAST_MIN) return AS_OK;
  keyset ks = {0};
  ks.cap = 16;
  while (ks.cap < 2 * (m - i)) ks.cap *= 2;
  ks.slot = calloc(ks.cap, sizeof *ks.slot);
  as_buf data = AS_BUF_INIT, key = AS_BUF_INIT;
  as_buf direct_sql = AS_BUF_INIT, stage_sql = AS_BUF_INIT, merge_sql = AS_BUF_INIT;
  size_t *idx = calloc(m - i, sizeof *idx);
  size_t nidx = 0;
  if (!ks.slot || !idx || copy_sqls(t, &direct_sql, &stage_sql, &merge_sql) != AS_OK) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    goto cleanup;
  }
  /* A long run goes out while it is being formatted (stream_start): the first PG_COPY_CHUNK
   * bytes start the direct COPY, each next PG_COPY_CHUNK is sent as it is complete. */
  bool stream = t->optimistic_skip == 0 && m - i >= STREAM_MIN;
  size_t sent = 0, j;
  for (j = i; j < m; j++) {
    if (stream && data.len - sent >= PG_COPY_CHUNK) {
      if (!started && (rc = stream_start(n, as_buf_cstr(&direct_sql), &started, err)) != AS_OK)
        goto cleanup;
      if (!started) {
        stream = false;
      } else if (pg_copy_put(n->conn, data.data + sent, data.len - sent) == AS_OK) {
        sent = data.len;
      } else { /* the connection failed: end the COPY, the error says why */
        PGresult *r = NULL;
        pg_copy_finish(n->conn, false, &r);
        rc = pg_fail(n->conn, r, "apply: copy", err);
        PQclear(r);
        goto cleanup;
      }
    }
    const as_schema *s = t->s;
    size_t mark = data.len;
    as_buf_reset(&key);
    bool bad = false;
    for (size_t c = 0; c < s->ntable && !bad; c++) {
      char *txt = NULL;
      as_error e = {0};
      if (c && as_buf_putc(&data, '\t') != AS_OK) {
        rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
        goto cleanup;
      }
      /* a key column's text is kept for the run's key set; the others go straight in */
      int vr = s->cols[c].is_key ? pg_value_to_text(&d[j].row.v[c], &txt, &e) : pg_copy_value(&data, &d[j].row.v[c], &e);
      if (vr != AS_OK) {
        as_error_prefix(&e, "column \"%s\"", s->cols[c].name);
        data.len = mark;
        if ((rc = dead_delta(n, dead, &d[j], base + j, e.message, err)) != AS_OK) goto cleanup;
        bad = true;
        break;
      }
      if (!s->cols[c].is_key) continue;
      rc = txt ? pg_copy_escape(&data, txt) : as_buf_append(&data, "\\N", 2);
      if (rc == AS_OK) rc = as_buf_append_str(&key, txt ? txt : "") || as_buf_putc(&key, 0x1f);
      free(txt);
      if (rc != AS_OK) {
        rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
        goto cleanup;
      }
    }
    if (bad) continue;
    bool dup;
    if (!keyset_add(&ks, (const char *)key.data, key.len, &dup)) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      goto cleanup;
    }
    if (dup) { /* the same key twice: end the run before it */
      data.len = mark;
      break;
    }
    if (as_buf_putc(&data, '\n') != AS_OK) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      goto cleanup;
    }
    idx[nidx++] = j;
  }
  *used = j - i;
  if (nidx > 0 || started) {
    rc = fast_insert(n, t, &data, as_buf_cstr(&direct_sql), as_buf_cstr(&stage_sql),
                     as_buf_cstr(&merge_sql), started, sent, &direct, err);
    started = false; /* fast_insert ended the COPY */
    if (fresh) *fresh = rc == AS_OK && direct && nidx == *used;
    if (rc == AS_EDATA) {
      /* something in the run is bad: replay it statement by statement */
      char **params = calloc(max_cols(n), sizeof *params);
      as_buf sql = AS_BUF_INIT;
      rc = params ? apply_generic(n, tabs, d, idx, nidx, base, dead, params, &sql, err)
                  : as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      free(params);
      as_buf_free(&sql);
    }
  }
cleanup:
  if (started) { /* failed half way: end the COPY (the caller gives the transaction up) */
    PGresult *r = NULL;
    pg_copy_finish(n->conn, false, &r);
    PQclear(r);
  }
  keyset_clear(&ks);
  as_buf_free(&data);
  as_buf_free(&key);
  as_buf_free(&direct_sql);
  as_buf_free(&stage_sql);
  as_buf_free(&merge_sql);
  free(idx);
  return rc;
}

/* ------------------------------------------------------------------ child tables */

/* The parent rows of deltas idx[0..cnt) (consecutive indexes when every one is a full
 * insert): the COPY path for a run of full inserts, else statements in a pipeline. *fresh:
 * every parent was new (COPY straight into the table), so none has child rows yet. */
static int parents(as_node *n, pg_table **tabs, const as_delta *d, size_t *idx, size_t cnt,
                   as_dead_list *dead, char **params, as_buf *sql, bool *fresh, as_error *err) {
  bool inserts = n->fast_copy && idx[cnt - 1] - idx[0] == cnt - 1;
  for (size_t j = 0; inserts && j < cnt; j++) inserts = full_insert(&d[idx[j]]);
  size_t used = 0;
  *fresh = false;
  int rc = inserts ? try_fast(n, tabs, d, idx[0], idx[0] + cnt, 0, dead, &used, fresh, err) : AS_OK;
  if (rc != AS_OK || used == cnt) return rc;
  *fresh = false;
  return apply_generic(n, tabs, d, idx + used, cnt - used, 0, dead, params, sql, err);
}

/* A run of inserts and updates of one mapping with child tables (keys distinct, from d[i] up
 * to `end`): the parent statements pipelined like any run, then the child rows in bulk
 * (pg_children_bulk), all under one savepoint; when PostgreSQL refuses a child statement the
 * run is rolled back and goes delta by delta (run_with_children), which finds the delta.
 * *used = deltas consumed (0: fewer than two, the caller goes delta by delta). */
static int children_run(as_node *n, pg_table **tabs, const as_delta *d, size_t i, size_t end,
                        as_dead_list *dead, char **params, as_buf *sql, size_t *used,
                        as_error *err) {
  pg_table *t = tabs[i];
  const as_schema *s = t->s;
  keyset ks = {0};
  as_buf key = AS_BUF_INIT;
  size_t *idx = NULL, m = i, cnt = 0, dead0 = dead->n;
  int rc = AS_OK;
  *used = 0;
  ks.cap = 16;
  while (ks.cap < 2 * (end - i)) ks.cap *= 2;
  if (!(ks.slot = calloc(ks.cap, sizeof *ks.slot))) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  for (; m < end && tabs[m] == t && (d[m].op == AS_OP_INSERT || d[m].op == AS_OP_UPDATE); m++) {
    as_buf_reset(&key);
    bool dup = false, bad = false;
    for (size_t k = 0; k < s->nkey && !bad; k++) {
      char *txt = NULL;
      as_error e;
      bad = pg_value_to_text(&d[m].row.v[s->key_idx[k]], &txt, &e) != AS_OK || !txt ||
            as_buf_append_str(&key, txt) != AS_OK || as_buf_putc(&key, 0x1f) != AS_OK;
      free(txt);
    }
    if (bad || !keyset_add(&ks, (const char *)key.data, key.len, &dup) || dup) break;
  }
  if (m - i < 2) goto cleanup;
  if (!(idx = calloc(m - i, sizeof *idx))) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    goto cleanup;
  }
  if ((rc = pg_exec(n->conn, "SAVEPOINT arraysync_run", "apply: savepoint", err)) != AS_OK) goto cleanup;
  for (size_t j = i; rc == AS_OK && j < m; j++) { /* arrays that cannot be rows: dead letters */
    as_error e = {0};
    int cr = pg_children_check(&d[j], &e);
    if (cr == AS_OK) idx[cnt++] = j;
    else if (cr == AS_EDATA) rc = dead_delta(n, dead, &d[j], j, e.message, err);
    else rc = as_error_set(err, AS_DOM_POSTGRES, cr, "%s", e.message);
  }
  bool fresh = false;
  if (rc == AS_OK && cnt) rc = parents(n, tabs, d, idx, cnt, dead, params, sql, &fresh, err);
  if (rc != AS_OK) goto cleanup;
  /* the children of the deltas whose parent statement went through */
  cnt = 0;
  for (size_t j = i; j < m; j++) {
    bool out = false;
    for (size_t k = dead0; k < dead->n && !out; k++) out = dead->items[k].index == j;
    if (!out) idx[cnt++] = j;
  }
  as_error e = {0};
  int br = pg_children_bulk(n, d, idx, cnt, fresh, &e);
  if (br == AS_OK) {
    rc = pg_exec(n->conn, "RELEASE SAVEPOINT arraysync_run", "apply: release", err);
    *used = rc == AS_OK ? m - i : 0;
    goto cleanup;
  }
  if (br != AS_EDATA) {
    *err = e;
    rc = br;
    goto cleanup;
  }
  AS_LOG(AS_LOG_DEBUG, n->comp, "child rows of %zu changes refused in bulk (%s): one by one",
         m - i, e.message);
  rc = pg_exec(n->conn, "ROLLBACK TO SAVEPOINT arraysync_run", "apply: rollback to savepoint", err);
  if (rc == AS_OK) rc = pg_exec(n->conn, "RELEASE SAVEPOINT arraysync_run", "apply: release", err);
  while (rc == AS_OK && dead->n > dead0) as_dead_free(&dead->items[--dead->n]);
  for (size_t j = i; rc == AS_OK && j < m; j++)
    rc = run_with_children(n, t, &d[j], j, dead, params, sql, err);
  if (rc == AS_OK) *used = m - i;
cleanup:
  keyset_clear(&ks);
  as_buf_free(&key);
  free(idx);
  return rc;
}

/* ------------------------------------------------------------------ truncate */

/* Empties the table of a truncate delta (already marked with its origin): TRUNCATE, or where
 * PostgreSQL refuses it (a foreign key points at the table, no TRUNCATE privilege) DELETE of
 * every row; if that fails too, the delta is a dead letter. */
static int run_truncate(as_node *n, pg_table *t, const as_delta *d, size_t index,
                        as_dead_list *dead, as_error *err) {
  PGconn *c = n->conn;
  as_buf sql = AS_BUF_INIT;
  char *msg = NULL;
  int rc = pg_exec(c, PG_SQL_SAVEPOINT, "apply: savepoint", err);
  for (int attempt = 0; rc == AS_OK && attempt < 2; attempt++) {
    as_buf_reset(&sql);
    /* child tables first (TRUNCATE needs every table a foreign key ties in one command) */
    bool bad = as_buf_append_str(&sql, attempt ? "" : "TRUNCATE ") != AS_OK;
    for (size_t k = n->ntables; !bad && k-- > 0;) { /* tables nested under a child table first */
      if (n->tables[k].owner == t->s)
        bad = as_buf_printf(&sql, attempt ? "DELETE FROM %s; " : "%s, ", n->tables[k].qname) != AS_OK;
    }
    if (bad || as_buf_printf(&sql, attempt ? "DELETE FROM %s" : "%s", t->qname) != AS_OK) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      break;
    }
    PGresult *r = PQexec(c, as_buf_cstr(&sql));
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK) {
      PQclear(r);
      free(msg);
      msg = NULL;
      break;
    }
    if (pg_retryable(c, r)) {
      rc = pg_fail(c, r, "apply: truncate", err);
      PQclear(r);
      break;
    }
    free(msg);
    msg = result_message(c, r);
    PQclear(r);
    rc = pg_exec(c, PG_SQL_ROLLBACK_TO, "apply: rollback to savepoint", err);
    if (rc == AS_OK && attempt == 0)
      AS_LOG(AS_LOG_INFO, n->comp, "TRUNCATE %s refused (%s): deleting every row instead",
             t->qname, msg);
  }
  if (rc == AS_OK) rc = pg_exec(c, PG_SQL_RELEASE, "apply: release", err);
  if (rc == AS_OK && msg) rc = dead_delta(n, dead, d, index, msg, err);
  free(msg);
  as_buf_free(&sql);
  return rc;
}

/* ------------------------------------------------------------------ apply */

static bool same_origin(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The origin a delta's write is marked with: AS_ORIGIN_LOCAL_ONLY for every delta with an
 * origin when the node is local_only (neither triggers nor the decoder then capture it). */
static const char *mark_of(const as_node *n, const char *origin) {
  return origin && n->local_only ? AS_ORIGIN_LOCAL_ONLY : origin;
}

/* Marks the following writes of the transaction with origin: the setting the capture
 * triggers read, or (logical capture) the sink connection's row in arraysync.marks, which
 * the decoder sees before the changes it marks. */
static int set_origin(as_node *n, const char *origin, as_error *err) {
  if (n->txn_origin && same_origin(n->txn_origin, origin ? origin : "")) return AS_OK;
  const char *p[1] = {origin ? origin : ""};
  int rc = n->capture == PG_CAPTURE_LOGICAL
               ? pg_query(n->conn, PG_SQL_MARK, 1, p, "apply: origin mark", NULL, err)
               : pg_query(n->conn, PG_SQL_SET_ORIGIN, 1, p, "apply: set origin", NULL, err);
  if (rc != AS_OK) return rc;
  free(n->txn_origin);
  n->txn_origin = strdup(p[0]);
  return AS_OK;
}

int pg_apply(as_node *n, const as_delta *d, size_t nd, as_dead_list *dead, as_error *err) {
  int rc = AS_OK;
  if (!n->in_txn) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "apply without begin");
  if (nd == 0) return AS_OK;
  pg_table **tabs = calloc(nd, sizeof *tabs);
  size_t *idx = calloc(nd, sizeof *idx);
  bool *gone = calloc(nd, sizeof *gone);
  char **params = calloc(max_cols(n), sizeof *params);
  as_buf sql = AS_BUF_INIT;
  if (!tabs || !idx || !gone || !params) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    goto cleanup;
  }
  for (size_t i = 0; i < nd; i++) tabs[i] = d[i].schema ? pg_table_for(n, d[i].schema) : NULL;
  /* timestamps the columns cannot hold: dead letters, out of the batch (gone marks them) */
  for (size_t i = 0; i < nd; i++) {
    as_error e = {0};
    if (!tabs[i] || d[i].op == AS_OP_DELETE || d[i].op == AS_OP_TRUNCATE) continue;
    if (!tabs[i]->ts_unit && (rc = load_ts_units(n, tabs[i], err)) != AS_OK) goto cleanup;
    if (check_ts_units(tabs[i], &d[i], &e) == AS_OK) continue;
    if ((rc = dead_delta(n, dead, &d[i], i, e.message, err)) != AS_OK) goto cleanup;
    tabs[i] = NULL;
    gone[i] = true;
  }
  size_t i = 0;
  while (i < nd) {
    /* a run of one origin: the origin is set before any savepoint, so rolling back to a
     * savepoint never reverts it */
    size_t end = i;
    const char *mark = mark_of(n, d[i].origin);
    while (end < nd && same_origin(mark_of(n, d[end].origin), mark)) end++;
    if ((rc = set_origin(n, mark, err)) != AS_OK) goto cleanup;
    size_t nidx = 0;
    while (i < end) {
      if (gone[i]) {
        i++; /* a dead letter already */
        continue;
      }
      if (!tabs[i]) {
        char msg[256];
        snprintf(msg, sizeof msg, "mapping %s is not on node %s",
                 d[i].schema ? d[i].schema->name : "?", n->name);
        if ((rc = dead_delta(n, dead, &d[i], i, msg, err)) != AS_OK) goto cleanup;
        i++;
        continue;
      }
      if (d[i].op == AS_OP_TRUNCATE) {
        /* order matters: what came before goes first */
        if (nidx && (rc = apply_generic(n, tabs, d, idx, nidx, 0, dead, params, &sql, err)) !=
                        AS_OK)
          goto cleanup;
        nidx = 0;
        if ((rc = run_truncate(n, tabs[i], &d[i], i, dead, err)) != AS_OK) goto cleanup;
        i++;
        continue;
      }
      if (d[i].schema->nchildren) {
        if (nidx && (rc = apply_generic(n, tabs, d, idx, nidx, 0, dead, params, &sql, err)) !=
                        AS_OK)
          goto cleanup;
        nidx = 0;
        size_t used = 0;
        if ((rc = children_run(n, tabs, d, i, end, dead, params, &sql, &used, err)) != AS_OK)
          goto cleanup;
        if (!used && (rc = run_with_children(n, tabs[i], &d[i], i, dead, params, &sql, err)) != AS_OK)
          goto cleanup;
        i += used ? used : 1;
        continue;
      }
      size_t used = 0;
      if (n->fast_copy && full_insert(&d[i])) {
        /* flush pending statements first: order matters */
        if (nidx && (rc = apply_generic(n, tabs, d, idx, nidx, 0, dead, params, &sql, err)) !=
                        AS_OK)
          goto cleanup;
        nidx = 0;
        if ((rc = try_fast(n, tabs, d, i, end, 0, dead, &used, NULL, err)) != AS_OK) goto cleanup;
      }
      if (used) {
        i += used;
        continue;
      }
      /* check values convert before they go into a pipeline */
      int np = 0;
      as_error e = {0};
      int vr = delta_sql(tabs[i], &d[i], &sql, params, &np, &e);
      free_params(params, max_cols(n));
      if (vr == AS_ERR) {
        *err = e;
        rc = AS_ERR;
        goto cleanup;
      }
      if (vr != AS_OK) {
        if ((rc = dead_delta(n, dead, &d[i], i, e.message, err)) != AS_OK) goto cleanup;
      } else {
        idx[nidx++] = i;
      }
      i++;
    }
    if (nidx && (rc = apply_generic(n, tabs, d, idx, nidx, 0, dead, params, &sql, err)) != AS_OK)
      goto cleanup;
  }
  for (size_t k = 0; k < n->ntables; k++) {
    if (n->tables[k].optimistic_skip > 0) n->tables[k].optimistic_skip--;
  }
cleanup:
  free(tabs);
  free(idx);
  free(gone);
  free(params);
  as_buf_free(&sql);
  return rc;
}

/* ------------------------------------------------------------------ read_row */

int pg_read_row(as_node *n, const as_schema *s, const as_row *key, as_row *out, as_error *err) {
  int rc;
  pg_table *t = pg_table_for(n, s);
  if (!t) {
    return as_error_set(err, AS_DOM_POSTGRES, AS_EINVAL, "mapping %s is not on node %s", s->name,
                        n->name);
  }
  if (!n->conn && (rc = pg_node_connect(n, err)) != AS_OK) return rc;
  as_buf sql = AS_BUF_INIT;
  char **params = calloc(s->nkey ? s->nkey : 1, sizeof *params);
  PGresult *r = NULL;
  if (!params || as_buf_append_str(&sql, "SELECT ") != AS_OK || pg_select_list(t, NULL, &sql) ||
      as_buf_printf(&sql, " FROM %s WHERE ", t->qname)) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    goto cleanup;
  }
  for (size_t k = 0; k < s->nkey; k++) {
    size_t c = s->key_idx[k];
    if (!as_row_has(key, c) || key->v[c].type == AS_T_NULL) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_EINVAL, "read_row: key column \"%s\" not set",
                        s->cols[c].name);
      goto cleanup;
    }
    if ((rc = pg_value_to_text(&key->v[c], &params[k], err)) != AS_OK) goto cleanup;
    if (as_buf_printf(&sql, "%s%s = $%zu::%s", k ? " AND " : "", t->qcols[c], k + 1,
                      pg_cast_type(s->cols[c].type)) != AS_OK) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      goto cleanup;
    }
  }
  if ((rc = pg_query(n->conn, as_buf_cstr(&sql), (int)s->nkey, (const char *const *)params,
                     "read row", &r, err)) != AS_OK)
    goto cleanup;
  if (PQntuples(r) == 0) {
    rc = AS_ENOTFOUND;
    as_error_set(err, AS_DOM_POSTGRES, AS_ENOTFOUND, "mapping %s: row not found", s->name);
    goto cleanup;
  }
  if (out->n != s->ncols || !out->v) {
    if (as_row_init(out, s->ncols) != AS_OK) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      goto cleanup;
    }
  } else {
    as_row_reset(out);
  }
  rc = pg_row_from_result(t, r, 0, 0, out, err);
  if (rc == AS_OK && s->nchildren) rc = pg_children_fill(n->conn, n, s, out, err);
cleanup:
  PQclear(r);
  if (params) free_params(params, s->nkey);
  free(params);
  as_buf_free(&sql);
  return rc;
}
