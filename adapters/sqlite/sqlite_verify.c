/* sqlite_verify.c — the SQLite adapter's verify callbacks (adapter.h, "verify").
 *
 * A session opens its own read-only connection and one read transaction (BEGIN, then a
 * first read fixes the WAL snapshot), so every query of the session sees the same data.
 * Server mode registers two functions on that connection: _as_vrow(c1, ..., cn), the row hash
 * of as_rowhash.h computed from the mapped columns (each value read the way the adapter
 * reads it, sq_cell_to_value), and the aggregate _as_vsum(h), the sum mod 2^64 (SQLite's
 * sum() fails on integer overflow). Client mode reads the columns and hashes them with XXH3.
 * Everything happens in this process: verify_bytes is 0.
 *
 * Key ranges compare the stored forms: INTEGER/REAL numerically, TEXT with BINARY (bytewise),
 * BLOB bytewise; uuid, ObjectId, timestamps and dates are stored as fixed-format text whose
 * byte order is their natural order. (Decimal keys are text too and do not order
 * numerically: they are refused.) */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "as_log.h"
#include "as_rowhash.h"
#include "sqlite_internal.h"
#include "sqlite_verify.h"
#include "verify_sql.h"

struct as_verify {
  const as_schema *s;
  bool client;
  sqlite3 *db;
  char comp[160];
  char **qkey;   /* quoted key columns */
  char *qtable;
  char *cols;    /* "c1", "c2", ... every mapped column, schema order */
  as_vsql q;
  as_buf sql;
  as_buf tmp;    /* row text scratch */
  as_row row;    /* conversion scratch */
  as_jsonb_scratch *jsc;
  as_seghash *acc; /* the segments of the signature query running (_as_vsig), nacc of them */
  size_t nacc;
};

/* ------------------------------------------------------------ helpers */

static void cell_from_value(sqlite3_value *v, sq_cell *c) {
  memset(c, 0, sizeof *c);
  switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
      c->k = SQ_CELL_INT;
      c->i = sqlite3_value_int64(v);
      break;
    case SQLITE_FLOAT:
      c->k = SQ_CELL_REAL;
      c->d = sqlite3_value_double(v);
      break;
    case SQLITE_TEXT:
      c->k = SQ_CELL_TEXT;
      c->p = (const char *)sqlite3_value_text(v);
      c->len = (size_t)sqlite3_value_bytes(v);
      break;
    case SQLITE_BLOB:
      c->k = SQ_CELL_BLOB;
      c->p = sqlite3_value_blob(v);
      c->len = (size_t)sqlite3_value_bytes(v);
      if (!c->p) c->p = "";
      break;
    default: c->k = SQ_CELL_NULL; break;
  }
}

static int put_u64(as_buf *b, uint64_t u, bool neg) {
  char t[24];
  int n = 0;
  do {
    t[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (as_buf_reserve(b, (size_t)n + 1) != AS_OK) return AS_ERR;
  if (neg) b->data[b->len++] = '-';
  while (n) b->data[b->len++] = (uint8_t)t[--n];
  return AS_OK;
}

static int put_i64(as_buf *b, int64_t i) {
  return put_u64(b, i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i, i < 0);
}

/* The common storage forms, straight to canonical text (what the general path through
 * sq_cell_to_value and as_rowtext_value gives, without building a value). 1 = done. */
static int fast_text(as_verify *v, size_t i, const sq_cell *c) {
  as_buf *b = &v->tmp;
  as_error err;
  switch (v->s->cols[i].type) {
    case AS_T_INT64:
      if (c->k != SQ_CELL_INT) return 0;
      return put_i64(b, c->i) == AS_OK ? 1 : AS_ERR;
    case AS_T_BOOL:
      if (c->k != SQ_CELL_INT || (c->i != 0 && c->i != 1)) return 0;
      return as_buf_append_str(b, c->i ? "true" : "false") == AS_OK ? 1 : AS_ERR;
    case AS_T_DOUBLE: {
      if (c->k != SQ_CELL_REAL) return 0;
      char t[32];
      size_t n = as_rowtext_double(c->d, t);
      return as_buf_append(b, t, n) == AS_OK ? 1 : AS_ERR;
    }
    case AS_T_TEXT:
      if (c->k != SQ_CELL_TEXT) return 0;
      return put_u64(b, c->len, false) == AS_OK && as_buf_putc(b, ':') == AS_OK &&
                     as_buf_append(b, c->p, c->len) == AS_OK
                 ? 1
                 : AS_ERR;
    case AS_T_DECIMAL: {
      if (c->k != SQ_CELL_TEXT) return 0;
      size_t at = b->len;
      int rc = as_decimal_normalize(c->p, c->len, b);
      if (rc == AS_EINVAL) { /* unreadable, as the general path says */
        b->len = at;
        return as_buf_putc(b, '!') == AS_OK ? 1 : AS_ERR;
      }
      return rc == AS_OK ? 1 : AS_ERR;
    }
    case AS_T_OBJECTID: /* 24 lower-case hex digits, as the adapter stores them */
      if (c->k != SQ_CELL_TEXT || c->len != 24 || strspn(c->p, "0123456789abcdef") < 24) return 0;
      return as_buf_append(b, c->p, 24) == AS_OK ? 1 : AS_ERR;
    case AS_T_TIMESTAMP: { /* the adapter's form YYYY-MM-DDTHH:MM:SS.ffffffZ */
      const char *t = c->p;
      static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
      if (c->k != SQ_CELL_TEXT || c->len != 27) return 0;
      for (int k = 0; k < 27; k++) {
        if (shape[k] == 'd' ? (t[k] < '0' || t[k] > '9') : t[k] != shape[k]) return 0;
      }
#define D2(i) ((t[i] - '0') * 10 + (t[(i) + 1] - '0'))
      int y = D2(0) * 100 + D2(2), mo = D2(5), d = D2(8), h = D2(11), mi = D2(14), se = D2(17);
      int ms = (t[20] - '0') * 100 + (t[21] - '0') * 10 + (t[22] - '0');
#undef D2
      if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) return 0;
      int64_t v_ms = as_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400000LL + h * 3600000LL +
                     mi * 60000LL + se * 1000LL + ms;
      return put_i64(b, v_ms) == AS_OK ? 1 : AS_ERR;
    }
    case AS_T_JSON: {
      if (c->k != SQ_CELL_TEXT) return 0;
      int rc = v->jsc ? as_jsonb_text_s(v->jsc, c->p, c->len, b, &err)
                      : as_jsonb_text(c->p, c->len, b, &err);
      if (rc == AS_EINVAL) return as_buf_putc(b, '!') == AS_OK ? 1 : AS_ERR;
      return rc == AS_OK ? 1 : AS_ERR;
    }
    default: return 0;
  }
}

/* Canonical text of column i from a cell; a value the adapter cannot read gets "!" (never
 * produced by another node, so the row's hash differs and the leaf comparison reports it). */
static int col_text(as_verify *v, size_t i, const sq_cell *c) {
  as_error err;
  if (c->k == SQ_CELL_NULL) return as_buf_putc(&v->tmp, '~');
  int f = fast_text(v, i, c);
  if (f != 0) return f == 1 ? AS_OK : AS_ERR;
  as_value *val = &v->row.v[i];
  int rc = sq_cell_to_value(c, v->s->cols[i].type, val, &err);
  if (rc == AS_EDATA || rc == AS_EINVAL) return as_buf_putc(&v->tmp, '!');
  if (rc != AS_OK) return rc;
  return as_rowtext_value(val, &v->tmp, &err);
}

static void fn_vrow(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  as_verify *v = sqlite3_user_data(ctx);
  as_buf_reset(&v->tmp);
  for (int i = 0; i < argc; i++) {
    sq_cell c;
    cell_from_value(argv[i], &c);
    if (col_text(v, (size_t)i, &c) != AS_OK || as_buf_putc(&v->tmp, '|') != AS_OK) {
      sqlite3_result_error_nomem(ctx);
      return;
    }
  }
  sqlite3_result_int64(ctx, as_mongo_hash_string((const char *)v->tmp.data, v->tmp.len));
}

/* Aggregate _as_vsig(segment, c1, ..., cn): adds each row's hash to its segment of v->acc
 * (no GROUP BY: SQLite would sort every row's columns through a temporary file). */
static void fn_vsig_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  as_verify *v = sqlite3_user_data(ctx);
  int64_t seg = sqlite3_value_int64(argv[0]);
  as_buf_reset(&v->tmp);
  for (int i = 1; i < argc; i++) {
    sq_cell c;
    cell_from_value(argv[i], &c);
    if (col_text(v, (size_t)i - 1, &c) != AS_OK || as_buf_putc(&v->tmp, '|') != AS_OK) {
      sqlite3_result_error_nomem(ctx);
      return;
    }
  }
  if (seg >= 0 && (size_t)seg < v->nacc)
    as_seghash_add(&v->acc[seg], (uint64_t)as_mongo_hash_string((const char *)v->tmp.data, v->tmp.len));
}

static void fn_vsig_final(sqlite3_context *ctx) { sqlite3_result_null(ctx); }

static void fn_vsum_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  uint64_t *acc = sqlite3_aggregate_context(ctx, sizeof *acc);
  if (!acc) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  *acc += (uint64_t)sqlite3_value_int64(argv[0]);
}

static void fn_vsum_final(sqlite3_context *ctx) {
  uint64_t *acc = sqlite3_aggregate_context(ctx, 0);
  sqlite3_result_int64(ctx, acc ? (int64_t)*acc : 0);
}

/* Row hash in client mode from the columns at st's columns [first, first + ncols). */
static int client_hash(as_verify *v, sqlite3_stmt *st, int first, uint64_t *out, as_error *err) {
  as_buf_reset(&v->tmp);
  for (size_t i = 0; i < v->s->ntable; i++) {
    sq_cell c;
    sq_cell_from_stmt(st, first + (int)i, &c);
    int rc = col_text(v, i, &c);
    if (rc == AS_OK) rc = as_buf_putc(&v->tmp, '|');
    if (rc != AS_OK) return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  }
  if (v->s->nchildren) {
    /* the arrays from the child tables, in this read transaction (already in the form
     * as_rowtext gives any array: as_child_normalize of a rebuilt array is itself) */
    const as_schema *s = v->s;
    int rc = AS_OK;
    for (size_t k = 0; rc == AS_OK && k < s->nkey; k++) {
      sq_cell c;
      size_t ki = s->key_idx[k];
      sq_cell_from_stmt(st, first + (int)ki, &c);
      as_value_clear(&v->row.v[ki]);
      rc = sq_cell_to_value(&c, s->cols[ki].type, &v->row.v[ki], err);
      v->row.set[ki] = 1;
    }
    if (rc == AS_OK) rc = sq_children_fill(v->db, s, &v->row, err);
    if (rc != AS_OK && rc != AS_EDATA) return rc;
    for (size_t i = s->ntable; i < s->ncols; i++) {
      if (rc == AS_OK) rc = as_rowtext_value(&v->row.v[i], &v->tmp, err);
      else rc = as_buf_putc(&v->tmp, '!') ? AS_ERR : AS_EDATA; /* unreadable: never equal */
      if ((rc != AS_OK && rc != AS_EDATA) || as_buf_putc(&v->tmp, '|') != AS_OK)
        return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
    }
  }
  *out = XXH3_64bits(v->tmp.data, v->tmp.len);
  return AS_OK;
}

static int placeholder(as_buf *b, size_t k, int n, void *ctx) {
  (void)k;
  (void)ctx;
  return as_buf_printf(b, "?%d", n);
}

static int prepare(as_verify *v, sqlite3_stmt **st, as_error *err) {
  int rc = sqlite3_prepare_v2(v->db, as_buf_cstr(&v->sql), -1, st, NULL);
  if (rc != SQLITE_OK) return sq_fail(v->db, rc, err, "verify: prepare");
  for (size_t i = 0; i < v->q.nparams; i++) {
    int r = sq_bind_value(*st, (int)i + 1, v->q.params[i], err);
    if (r != AS_OK) {
      sqlite3_finalize(*st);
      *st = NULL;
      return r;
    }
  }
  return AS_OK;
}

/* Key values of the current row (columns [0, nkey)) into keys (nkey values, cleared first). */
static int read_key(as_verify *v, sqlite3_stmt *st, as_value *keys, as_error *err) {
  for (size_t k = 0; k < v->s->nkey; k++) {
    sq_cell c;
    sq_cell_from_stmt(st, (int)k, &c);
    int rc = sq_cell_to_value(&c, v->s->cols[v->s->key_idx[k]].type, &keys[k], err);
    if (rc != AS_OK) {
      as_error_prefix(err, "mapping %s, key column \"%s\"", v->s->name,
                      v->s->cols[v->s->key_idx[k]].name);
      return rc;
    }
  }
  return AS_OK;
}

/* ------------------------------------------------------------ callbacks */

void sq_verify_close(as_verify *v) {
  if (!v) return;
  if (v->db) {
    sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(v->db);
  }
  for (size_t k = 0; v->qkey && k < v->s->nkey; k++) free(v->qkey[k]);
  free(v->qkey);
  free(v->qtable);
  free(v->cols);
  as_vsql_free(&v->q);
  as_buf_free(&v->sql);
  as_buf_free(&v->tmp);
  as_row_clear(&v->row);
  as_jsonb_scratch_free(v->jsc);
  free(v);
}

static int build_names(as_verify *v, as_error *err) {
  as_buf b = AS_BUF_INIT;
  v->qkey = calloc(v->s->nkey ? v->s->nkey : 1, sizeof *v->qkey);
  if (!v->qkey) return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  for (size_t k = 0; k < v->s->nkey; k++) {
    as_buf_reset(&b);
    if (as_sql_quote_ident(v->s->cols[v->s->key_idx[k]].name, &b) != AS_OK ||
        !(v->qkey[k] = strdup(as_buf_cstr(&b))))
      goto oom;
  }
  as_buf_reset(&b);
  if (as_sql_quote_ident(v->s->table, &b) != AS_OK || !(v->qtable = strdup(as_buf_cstr(&b))))
    goto oom;
  as_buf_reset(&b);
  for (size_t i = 0; i < v->s->ntable; i++) {
    if ((i && as_buf_append_str(&b, ", ")) || as_sql_quote_ident(v->s->cols[i].name, &b))
      goto oom;
  }
  if (!(v->cols = as_buf_steal(&b))) goto oom;
  as_buf_free(&b);
  return AS_OK;
oom:
  as_buf_free(&b);
  return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
}

int sq_verify_open(as_node *n, const as_schema *s, bool client_hash, as_verify **out,
                   as_error *err) {
  *out = NULL;
  for (size_t k = 0; k < s->nkey; k++) {
    if (s->cols[s->key_idx[k]].type == AS_T_DECIMAL)
      return as_error_set(err, AS_DOM_SQLITE, AS_EINVAL,
                          "mapping %s: verify cannot split decimal keys on SQLite (stored as "
                          "text, which does not order numerically)", s->name);
  }
  as_verify *v = calloc(1, sizeof *v);
  if (!v) return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  v->s = s;
  v->client = client_hash;
  v->jsc = as_jsonb_scratch_new();
  snprintf(v->comp, sizeof v->comp, "verify:sqlite:%s", n->name);
  int rc = build_names(v, err);
  if (rc != AS_OK) goto fail;
  if (as_row_init(&v->row, s->ncols) != AS_OK) {
    rc = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
    goto fail;
  }
  as_vsql_init(&v->q, s, (const char *const *)v->qkey, placeholder, v);
  int r = sqlite3_open_v2(n->path, &v->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
  if (r != SQLITE_OK) {
    rc = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "verify: open %s: %s", n->path,
                      v->db ? sqlite3_errmsg(v->db) : sqlite3_errstr(r));
    goto fail;
  }
  sqlite3_extended_result_codes(v->db, 1);
  sqlite3_busy_timeout(v->db, n->busy_ms);
  if (!client_hash &&
      (sqlite3_create_function_v2(v->db, "_as_vrow", (int)s->ntable, SQLITE_UTF8, v, fn_vrow,
                                  NULL, NULL, NULL) != SQLITE_OK ||
       sqlite3_create_function_v2(v->db, "_as_vsum", 1, SQLITE_UTF8, v, NULL, fn_vsum_step,
                                  fn_vsum_final, NULL) != SQLITE_OK ||
       sqlite3_create_function_v2(v->db, "_as_vsig", (int)s->ntable + 1, SQLITE_UTF8, v, NULL,
                                  fn_vsig_step, fn_vsig_final, NULL) != SQLITE_OK)) {
    rc = sq_fail(v->db, SQLITE_ERROR, err, "verify: register functions");
    goto fail;
  }
  /* one snapshot: a read transaction, fixed by its first read (of the mapped table, which
   * also checks that it exists) */
  as_buf_reset(&v->sql);
  as_buf_printf(&v->sql, "SELECT 1 FROM %s LIMIT 1", v->qtable);
  if ((rc = sq_exec(v->db, "BEGIN", err)) != AS_OK ||
      (rc = sq_exec(v->db, as_buf_cstr(&v->sql), err)) != AS_OK) {
    as_error_prefix(err, "verify: node %s, mapping %s", n->name, s->name);
    if (rc == AS_RETRY) rc = AS_ERR;
    goto fail;
  }
  *out = v;
  return AS_OK;
fail:
  sq_verify_close(v);
  return rc;
}

int sq_verify_estimate(as_verify *v, int64_t *out, as_error *err) {
  sqlite3_stmt *st = NULL;
  as_buf_reset(&v->sql);
  as_vsql_reset(&v->q);
  as_buf_printf(&v->sql, "SELECT count(*) FROM %s", v->qtable);
  int rc = prepare(v, &st, err);
  if (rc != AS_OK) return rc;
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
  else rc = sq_fail(v->db, r, err, "verify: count");
  sqlite3_finalize(st);
  return rc;
}

int sq_verify_sign(as_verify *v, const as_value *lo, const as_value *hi, const as_value *bounds,
                   size_t nb, as_seghash *out, as_error *err) {
  sqlite3_stmt *st = NULL;
  memset(out, 0, (nb + 1) * sizeof *out);
  as_buf_reset(&v->sql);
  as_vsql_reset(&v->q);
  int bad = as_buf_append_str(&v->sql, "SELECT ") || as_vsql_bucket(&v->q, &v->sql, bounds, nb);
  if (v->client) {
    bad = bad || as_buf_printf(&v->sql, ", %s FROM %s WHERE ", v->cols, v->qtable) ||
          as_vsql_range(&v->q, &v->sql, lo, hi);
  } else {
    as_buf_reset(&v->sql); /* SELECT _as_vsig(<segment>, c1, ..., cn) FROM t WHERE range */
    as_vsql_reset(&v->q);
    bad = as_buf_append_str(&v->sql, "SELECT _as_vsig(") || as_vsql_bucket(&v->q, &v->sql, bounds, nb) ||
          as_buf_printf(&v->sql, ", %s) FROM %s WHERE ", v->cols, v->qtable) ||
          as_vsql_range(&v->q, &v->sql, lo, hi);
  }
  if (bad) return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  v->acc = out;
  v->nacc = nb + 1;
  int rc = prepare(v, &st, err);
  if (rc != AS_OK) return rc;
  int r;
  while (rc == AS_OK && (r = sqlite3_step(st)) == SQLITE_ROW) {
    if (!v->client) continue; /* the aggregate filled out */
    int64_t b = sqlite3_column_int64(st, 0);
    if (b < 0 || (size_t)b > nb) continue;
    uint64_t h = 0;
    if ((rc = client_hash(v, st, 1, &h, err)) == AS_OK) as_seghash_add(&out[b], h);
  }
  v->acc = NULL;
  v->nacc = 0;
  if (rc == AS_OK && r != SQLITE_DONE) rc = sq_fail(v->db, r, err, "verify: segment signatures");
  sqlite3_finalize(st);
  return rc;
}

int sq_verify_split(as_verify *v, const as_value *lo, const as_value *hi, int64_t rows,
                    size_t parts, as_value **bounds, size_t *nb, as_error *err) {
  *bounds = NULL;
  *nb = 0;
  if (parts < 2) return AS_OK;
  sqlite3_stmt *st = NULL;
  int rc;
  as_buf_reset(&v->sql);
  as_vsql_reset(&v->q);
  if (rows < 0) {
    if (as_buf_printf(&v->sql, "SELECT count(*) FROM %s WHERE ", v->qtable) ||
        as_vsql_range(&v->q, &v->sql, lo, hi))
      return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
    if ((rc = prepare(v, &st, err)) != AS_OK) return rc;
    rows = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    st = NULL;
    as_buf_reset(&v->sql);
    as_vsql_reset(&v->q);
  }
  int64_t step = (rows + (int64_t)parts - 1) / (int64_t)parts;
  if (step < 1) step = 1;
  size_t nk = v->s->nkey;
  as_value *b = calloc(parts * nk, sizeof *b);
  if (!b) return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  if (as_buf_append_str(&v->sql, "SELECT ") || as_vsql_keys(&v->q, &v->sql) ||
      as_buf_printf(&v->sql, " FROM %s WHERE ", v->qtable) ||
      as_vsql_range(&v->q, &v->sql, lo, hi) || as_buf_append_str(&v->sql, " ORDER BY ") ||
      as_vsql_keys(&v->q, &v->sql)) {
    free(b);
    return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  }
  if ((rc = prepare(v, &st, err)) != AS_OK) {
    free(b);
    return rc;
  }
  int64_t i = 0;
  int r;
  size_t n = 0;
  while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    if (i > 0 && i >= (int64_t)(n + 1) * step && n + 1 < parts) {
      rc = read_key(v, st, b + n * nk, err);
      if (rc == AS_EDATA) { /* a key the mapping cannot read is no bound: the next row is */
        for (size_t k = 0; k < nk; k++) as_value_clear(&b[n * nk + k]);
        rc = AS_OK;
      } else if (rc != AS_OK) {
        break;
      } else {
        n++;
      }
    }
    i++;
  }
  if (rc == AS_OK && r != SQLITE_DONE) rc = sq_fail(v->db, r, err, "verify: split");
  sqlite3_finalize(st);
  if (rc != AS_OK) {
    for (size_t k = 0; k < parts * nk; k++) as_value_clear(&b[k]);
    free(b);
    return rc;
  }
  *bounds = b;
  *nb = n;
  return AS_OK;
}

int sq_verify_rows(as_verify *v, const as_value *lo, const as_value *hi,
                   int (*fn)(void *ctx, const as_value *key, uint64_t hash), void *ctx,
                   as_error *err) {
  sqlite3_stmt *st = NULL;
  as_buf_reset(&v->sql);
  as_vsql_reset(&v->q);
  if (as_buf_append_str(&v->sql, "SELECT ") || as_vsql_keys(&v->q, &v->sql) ||
      as_buf_printf(&v->sql, v->client ? ", %s FROM %s WHERE " : ", _as_vrow(%s) FROM %s WHERE ",
                    v->cols, v->qtable) ||
      as_vsql_range(&v->q, &v->sql, lo, hi))
    return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  int rc = prepare(v, &st, err);
  if (rc != AS_OK) return rc;
  size_t nk = v->s->nkey;
  as_value *keys = calloc(nk, sizeof *keys);
  if (!keys) {
    sqlite3_finalize(st);
    return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  }
  int r;
  while (rc == AS_OK && (r = sqlite3_step(st)) == SQLITE_ROW) {
    uint64_t h = 0;
    as_error ke;
    rc = read_key(v, st, keys, &ke);
    if (rc == AS_EDATA) { /* a row whose key cannot be read: counted, never equal */
      AS_LOG(AS_LOG_WARN, v->comp, "%s", ke.message);
      rc = fn(ctx, NULL, 0);
      continue;
    }
    if (rc != AS_OK) *err = ke;
    if (rc == AS_OK && v->client) rc = client_hash(v, st, (int)nk, &h, err);
    else if (rc == AS_OK) h = (uint64_t)sqlite3_column_int64(st, (int)nk);
    if (rc == AS_OK) rc = fn(ctx, keys, h);
  }
  if (rc == AS_OK && r != SQLITE_DONE) rc = sq_fail(v->db, r, err, "verify: rows");
  for (size_t k = 0; k < nk; k++) as_value_clear(&keys[k]);
  free(keys);
  sqlite3_finalize(st);
  return rc;
}

uint64_t sq_verify_bytes(as_verify *v) {
  (void)v;
  return 0;
}
