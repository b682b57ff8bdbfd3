/* pg_verify.c — the PostgreSQL adapter's verify callbacks (adapter.h, "verify").
 *
 * A session has its own connection (the adapter's session settings, jit off) and one
 * REPEATABLE READ READ ONLY transaction: every query sees the same snapshot.
 *
 * Server mode hashes in plain SQL (no extension). Per row, the canonical text of
 * mappings/as_rowhash.h is built from the mapped columns, then MongoDB's $toHashedIndexKey
 * framing is hashed with the built-in md5():
 *   md5('\x000000000f000000' || int32le(octet_length(text) + 1) || text || '\x00')
 * and a segment's sum of the little-endian int64s is assembled from eight per-byte sums of the
 * digest (sum(get_byte(d, j)) for j = 0..7; sum = sum_j 256^j * S_j mod 2^64), which keeps
 * every aggregate an int8 sum. Subqueries with OFFSET 0 keep the planner from evaluating the
 * row text or the digest more than once per row. Texts by type:
 *   bool, int64: c::text;  decimal: trim_scale(c)::text;  text: octet_length(c) || ':' || c
 *   double: m and q from float8send's bits;  bytes, uuid: md5 of the BinData framing, read as
 *   a little-endian int64;  ObjectId (a text column): lower(c);  timestamp: floor(epoch ms);
 *   date: c - '1970-01-01' (an infinite timestamp or date: its text, which no other node's
 *   row gives);  json: c::jsonb::text;  NULL: '~'.
 * Client mode fetches the mapped columns through a cursor (pages of 5000) and hashes in C.
 *
 * Key ranges: text keys are compared with COLLATE "C" unless the column's collation already
 * orders bytewise (C, POSIX, C.UTF-8), so an index on the key serves the ranges. The first
 * split of a big table samples keys (TABLESAMPLE SYSTEM); smaller ranges are split exactly
 * (row_number over the key order).
 *
 * Bytes received: the size of each DataRow message of the results read (7 bytes + 4 per field
 * + the field's length). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "as_log.h"
#include "as_rowhash.h"
#include "pg_internal.h"
#include "pg_verify.h"
#include "verify_sql.h"

#define PG_V_PAGE 5000
#define PG_V_SAMPLE_MIN_ROWS 200000 /* above this, the first split samples */

struct as_verify {
  as_node *n;
  const as_schema *s;
  pg_table *t;
  bool client;
  PGconn *conn;
  PGconn *conn2;     /* a second connection on the same snapshot (pg_export_snapshot), so a
                        big signature query runs as two halves at once; NULL if unavailable */
  char comp[160];
  uint64_t bytes;
  char **qkey;       /* key columns as compared (quoted, COLLATE "C" where needed) */
  char *rowtext;     /* the row text expression (level 1) */
  char *pre;         /* level-0 select list of helper values, or NULL */
  as_vsql q;
  as_buf sql;
  as_buf tmp;
  as_row row;
  bool used;         /* a query ran (AS_ENOTFOUND is only for the first) */
  int arr_col;       /* client mode with child tables: result column of the first child's rows */
};

/* ------------------------------------------------------------ helpers */

static void count_bytes(as_verify *v, const PGresult *r) {
  int n = PQntuples(r), f = PQnfields(r);
  for (int i = 0; i < n; i++) {
    uint64_t b = 7;
    for (int j = 0; j < f; j++) b += 4 + (uint64_t)(PQgetisnull(r, i, j) ? 0 : PQgetlength(r, i, j));
    v->bytes += b;
  }
}

static int placeholder(as_buf *b, size_t k, int n, void *ctx) {
  as_verify *v = ctx;
  return as_buf_printf(b, "$%d::%s", n, pg_cast_type(v->s->cols[v->s->key_idx[k]].type));
}

static void free_params(char **p, size_t np) {
  for (size_t i = 0; p && i < np; i++) free(p[i]);
  free(p);
}

/* v->q's parameters as text (caller frees with free_params). */
static int text_params(as_verify *v, char ***out, as_error *err) {
  size_t np = v->q.nparams;
  char **p = calloc(np ? np : 1, sizeof *p);
  int rc = p ? AS_OK : as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  for (size_t i = 0; rc == AS_OK && i < np; i++) rc = pg_value_to_text(v->q.params[i], &p[i], err);
  if (rc != AS_OK) {
    free_params(p, np);
    return rc;
  }
  *out = p;
  return AS_OK;
}

/* Runs v->sql with v->q's parameters; *out gets the result (caller PQclear). */
static int run(as_verify *v, const char *what, PGresult **out, as_error *err) {
  size_t np = v->q.nparams;
  char **p = NULL;
  int rc = text_params(v, &p, err);
  if (rc == AS_OK) {
    AS_LOG(AS_LOG_TRACE, v->comp, "%s: %s", what, as_buf_cstr(&v->sql));
    rc = pg_query(v->conn, as_buf_cstr(&v->sql), (int)np, (const char *const *)p, what, out, err);
    if (rc == AS_OK) count_bytes(v, *out);
  }
  free_params(p, np);
  return rc;
}

/* Little-endian int64 from the first 16 hex digits of an md5 text. */
static uint64_t le64_hex(const char *h) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) {
    int hi = h[2 * i], lo = h[2 * i + 1];
    hi = hi <= '9' ? hi - '0' : hi - 'a' + 10;
    lo = lo <= '9' ? lo - '0' : lo - 'a' + 10;
    v = v << 8 | (uint64_t)(hi << 4 | lo);
  }
  return v;
}

/* int4send of the byte-swapped value: little-endian int32 bytes of x. */
/* (PostgreSQL gives &, |, << and >> one precedence, left to right: hence the parentheses.) */
#define PG_LE32(x)                                                                   \
  "int4send(((((" x ") & 255) << 24) | (((" x ") & 65280) << 8) | (((" x ") >> 8) & 65280) | \
  (((" x ") >> 24) & 255)))"
/* The little-endian int64 of the first 8 digest bytes of md5 text m. */
#define PG_MD5_LE64(m)                                                                       \
  "('x' || substr(" m ", 15, 2) || substr(" m ", 13, 2) || substr(" m ", 11, 2) || substr(" \
  m ", 9, 2) || substr(" m ", 7, 2) || substr(" m ", 5, 2) || substr(" m ", 3, 2) || substr(" m \
  ", 1, 2))::bit(64)::bigint"

/* Appends column i's canonical text expression (level 1; helper values as _as_p<i>). */
static int col_text_sql(as_verify *v, size_t i, as_buf *b, as_buf *pre) {
  const char *c = v->t->qcols[i];
  char pv[32];
  snprintf(pv, sizeof pv, "_as_p%zu", i);
  switch (v->s->cols[i].type) {
    case AS_T_BOOL:
    case AS_T_INT64: return as_buf_printf(b, "coalesce(%s::text, '~')", c);
    case AS_T_DECIMAL: return as_buf_printf(b, "coalesce(trim_scale(%s)::text, '~')", c);
    case AS_T_TEXT:
      /* ::text: an enum column reads as its label */
      return as_buf_printf(b, "coalesce(octet_length(%s::text)::text || ':' || %s::text, '~')", c,
                           c);
    case AS_T_OBJECTID: return as_buf_printf(b, "coalesce(lower(%s), '~')", c);
    case AS_T_TIMESTAMP:
      /* an infinite value (PostgreSQL's own; no other node can hold it) hashes as its text,
       * so the row differs instead of the query failing */
      return as_buf_printf(b, "coalesce(CASE WHEN isfinite(%s) THEN floor(extract(epoch FROM %s) * "
                           "1000)::bigint::text ELSE %s::text END, '~')", c, c, c);
    case AS_T_DATE:
      return as_buf_printf(b, "coalesce(CASE WHEN isfinite(%s) THEN (%s - DATE '1970-01-01')::text "
                           "ELSE %s::text END, '~')", c, c, c);
    case AS_T_JSON: return as_buf_printf(b, "coalesce(%s::jsonb::text, '~')", c);
    case AS_T_DOUBLE:
      if (as_buf_printf(pre, ", ('x' || encode(float8send(%s), 'hex'))::bit(64)::bigint AS %s", c, pv))
        return AS_ERR;
      return as_buf_printf(
          b,
          "CASE WHEN %s IS NULL THEN '~' WHEN %s = 0 THEN '0' WHEN %s = 'NaN'::float8 THEN 'NaN' "
          "WHEN %s = 'Infinity'::float8 THEN 'Infinity' WHEN %s = '-Infinity'::float8 THEN "
          "'-Infinity' ELSE CASE WHEN %s < 0 THEN '-' ELSE '' END || ((%s & 4503599627370495) + "
          "CASE WHEN (%s >> 52) & 2047 = 0 THEN 0 ELSE 4503599627370496 END)::text || 'p' || "
          "(CASE WHEN (%s >> 52) & 2047 = 0 THEN -1074 ELSE ((%s >> 52) & 2047) - 1075 END)::text END",
          c, c, c, c, c, pv, pv, pv, pv, pv);
    case AS_T_BYTES:
      if (as_buf_printf(pre, ", md5('\\x000000001e000000'::bytea || " PG_LE32("octet_length(%s)")
                             " || '\\x00'::bytea || %s) AS %s",
                        c, c, c, c, c, pv))
        return AS_ERR;
      return as_buf_printf(b, "coalesce(" PG_MD5_LE64("%s") "::text, '~')", pv, pv, pv, pv, pv,
                           pv, pv, pv);
    case AS_T_UUID:
      if (as_buf_printf(pre, ", md5('\\x000000001e0000001000000004'::bytea || uuid_send(%s)) AS %s", c,
                        pv))
        return AS_ERR;
      return as_buf_printf(b, "coalesce(" PG_MD5_LE64("%s") "::text, '~')", pv, pv, pv, pv, pv,
                           pv, pv, pv);
    default: return as_buf_printf(b, "'!'");
  }
}

static int build_rowtext(as_verify *v, as_error *err) {
  as_buf b = AS_BUF_INIT, pre = AS_BUF_INIT;
  int bad = as_buf_append_str(&b, "convert_to(");
  for (size_t i = 0; !bad && i < v->s->ntable; i++) {
    bad = (i && as_buf_append_str(&b, " || ")) || col_text_sql(v, i, &b, &pre) ||
          as_buf_append_str(&b, " || '|'");
  }
  bad = bad || as_buf_append_str(&b, ", 'UTF8')");
  if (bad || !(v->rowtext = as_buf_steal(&b))) {
    as_buf_free(&b);
    as_buf_free(&pre);
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  }
  if (pre.len && !(v->pre = as_buf_steal(&pre))) {
    as_buf_free(&pre);
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  }
  as_buf_free(&pre);
  return AS_OK;
}

/* "FROM <table> WHERE <range>" or, with helper values, "FROM (SELECT *, <pre> FROM <table>
 * WHERE <range> OFFSET 0) _v0". */
static int from_range(as_verify *v, as_buf *b, const as_value *lo, const as_value *hi) {
  if (!v->pre) {
    return as_buf_printf(b, " FROM %s WHERE ", v->t->qname) || as_vsql_range(&v->q, b, lo, hi);
  }
  return as_buf_printf(b, " FROM (SELECT *%s FROM %s WHERE ", v->pre, v->t->qname) ||
         as_vsql_range(&v->q, b, lo, hi) || as_buf_append_str(b, " OFFSET 0) _v0");
}

/* Whether text comparisons of column `name` already order bytewise. */
static int key_collation(as_verify *v, const char *name, bool *bytewise, as_error *err) {
  const char *sql =
      "SELECT coalesce(c.collname, ''), (SELECT datcollate FROM pg_database WHERE datname = "
      "current_database()) FROM pg_attribute a LEFT JOIN pg_collation c ON c.oid = "
      "a.attcollation WHERE a.attrelid = $1::regclass AND a.attname = $2";
  const char *p[2] = {v->t->qname, name};
  PGresult *r = NULL;
  int rc = pg_query(v->conn, sql, 2, p, "verify: key collation", &r, err);
  if (rc != AS_OK) return rc;
  *bytewise = false;
  if (PQntuples(r) == 1) {
    const char *coll = PQgetvalue(r, 0, 0), *dbc = PQgetvalue(r, 0, 1);
    if (strcmp(coll, "default") == 0 || coll[0] == '\0') coll = dbc;
    *bytewise = strcmp(coll, "C") == 0 || strcmp(coll, "POSIX") == 0 ||
                strcmp(coll, "C.UTF-8") == 0 || strcmp(coll, "C.utf8") == 0;
  }
  PQclear(r);
  return AS_OK;
}

static int build_keys(as_verify *v, as_error *err) {
  const as_schema *s = v->s;
  v->qkey = calloc(s->nkey ? s->nkey : 1, sizeof *v->qkey);
  if (!v->qkey) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  for (size_t k = 0; k < s->nkey; k++) {
    size_t c = s->key_idx[k];
    bool bytewise = true;
    as_type t = s->cols[c].type;
    if (t == AS_T_TEXT || t == AS_T_OBJECTID) {
      int rc = key_collation(v, s->cols[c].name, &bytewise, err);
      if (rc != AS_OK) return rc;
      if (!bytewise)
        AS_LOG(AS_LOG_INFO, v->comp, "mapping %s: key column \"%s\" does not order bytewise; "
               "comparing with COLLATE \"C\" (an index with that collation makes this faster)",
               s->name, s->cols[c].name);
    }
    as_buf b = AS_BUF_INIT;
    if (as_buf_printf(&b, "%s%s", v->t->qcols[c], bytewise ? "" : " COLLATE \"C\"") ||
        !(v->qkey[k] = as_buf_steal(&b))) {
      as_buf_free(&b);
      return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    }
  }
  return AS_OK;
}

/* Key values from result columns [first, first + nkey) of row i. */
static int read_key(as_verify *v, const PGresult *r, int i, int first, as_value *keys,
                    as_error *err) {
  for (size_t k = 0; k < v->s->nkey; k++) {
    as_value_clear(&keys[k]);
    int col = first + (int)k;
    if (PQgetisnull(r, i, col)) continue;
    int rc = pg_value_from_text(v->s->cols[v->s->key_idx[k]].type, PQgetvalue(r, i, col),
                                (size_t)PQgetlength(r, i, col), &keys[k], err);
    if (rc != AS_OK) {
      as_error_prefix(err, "mapping %s, key column \"%s\"", v->s->name,
                      v->s->cols[v->s->key_idx[k]].name);
      return rc == AS_ERR ? AS_ERR : AS_EDATA;
    }
  }
  return AS_OK;
}

/* Client mode: XXH3 of the canonical text of the columns [0, ncols) of row i. */
static int client_hash(as_verify *v, const PGresult *r, int i, uint64_t *out, as_error *err) {
  as_row_reset(&v->row);
  int rc = pg_row_from_result(v->t, r, i, 0, &v->row, err);
  /* the arrays, from the child rows the query gave beside the row (pg_children_rows_sql) */
  for (size_t ci = 0; rc == AS_OK && ci < v->s->nchildren; ci++) {
    as_value a = AS_VALUE_NULL;
    int col = v->arr_col + (int)ci;
    rc = pg_children_array_from_text(v->n, v->s, ci, PQgetisnull(r, i, col) ? NULL : PQgetvalue(r, i, col),
                                     &a, err);
    if (rc == AS_OK) as_row_put(&v->row, v->s->children[ci].col, &a);
  }
  if (rc != AS_OK && rc != AS_EDATA) return rc;
  if (rc != AS_OK) {
    /* a value this adapter cannot read: a hash no other node produces for the row */
    as_buf_reset(&v->tmp);
    as_buf_printf(&v->tmp, "!%s", err->message);
    *out = XXH3_64bits(v->tmp.data, v->tmp.len);
    return AS_OK;
  }
  return as_rowhash_xxh3(v->s, &v->row, &v->tmp, out, err);
}

/* ", <child rows>..." after a client-mode select list whose row has result column `at`
 * onwards free: each child table's rows of the row (one expression per child table, on the
 * server: no query per row). */
static int child_columns(as_verify *v, as_buf *b, int at) {
  v->arr_col = at;
  for (size_t ci = 0; ci < v->s->nchildren; ci++) {
    if (as_buf_append_str(b, ", ") != AS_OK || pg_children_rows_sql(v->n, v->s, ci, v->t->qname, b) != AS_OK)
      return AS_ERR;
  }
  return AS_OK;
}

/* ------------------------------------------------------------ callbacks */

void pg_verify_close(as_verify *v) {
  if (!v) return;
  if (v->conn) PQfinish(v->conn);
  if (v->conn2) PQfinish(v->conn2);
  for (size_t k = 0; v->qkey && k < v->s->nkey; k++) free(v->qkey[k]);
  free(v->qkey);
  free(v->rowtext);
  free(v->pre);
  as_vsql_free(&v->q);
  as_buf_free(&v->sql);
  as_buf_free(&v->tmp);
  as_row_clear(&v->row);
  free(v);
}

/* The second connection, on the first one's snapshot (best effort: without it, queries run
 * one at a time). */
static void second_conn(as_verify *v, as_node *n) {
  PGresult *r = NULL;
  as_error err;
  char what[200];
  snprintf(what, sizeof what, "%s (2)", v->comp);
  if (pg_query(v->conn, "SELECT pg_export_snapshot()", 0, NULL, "verify: export snapshot", &r,
               &err) != AS_OK)
    return;
  char *lit = pg_quote_literal(PQgetvalue(r, 0, 0));
  char set[160];
  snprintf(set, sizeof set, "SET TRANSACTION SNAPSHOT %s", lit ? lit : "''");
  free(lit);
  if (pg_connect_dsn(n->dsn, what, false, &v->conn2, &err) != AS_OK ||
      pg_exec(v->conn2, "SET jit = off", what, &err) != AS_OK ||
      pg_exec(v->conn2, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", what, &err) != AS_OK ||
      pg_exec(v->conn2, set, what, &err) != AS_OK) {
    AS_LOG(AS_LOG_DEBUG, v->comp, "no second connection: %s", err.message);
    if (v->conn2) PQfinish(v->conn2);
    v->conn2 = NULL;
  }
  PQclear(r);
}

int pg_verify_open(as_node *n, const as_schema *s, bool client_hash, as_verify **out,
                   as_error *err) {
  *out = NULL;
  pg_table *t = pg_table_for(n, s);
  if (!t)
    return as_error_set(err, AS_DOM_POSTGRES, AS_EINVAL, "mapping %s is not on node %s", s->name,
                        n->name);
  as_verify *v = calloc(1, sizeof *v);
  if (!v) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  v->n = n;
  v->s = s;
  v->t = t;
  v->client = client_hash;
  snprintf(v->comp, sizeof v->comp, "verify:postgres:%s", n->name);
  int rc = as_row_init(&v->row, s->ncols) == AS_OK
               ? AS_OK
               : as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  if (rc == AS_OK) rc = pg_connect_dsn(n->dsn, v->comp, false, &v->conn, err);
  if (rc == AS_OK) rc = pg_exec(v->conn, "SET jit = off", "verify: session", err);
  if (rc == AS_OK)
    rc = pg_exec(v->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "verify: begin", err);
  if (rc == AS_OK) rc = build_keys(v, err); /* also the first read: fixes the snapshot */
  if (rc == AS_OK) rc = build_rowtext(v, err);
  if (rc == AS_OK && !client_hash) second_conn(v, n);
  if (rc != AS_OK) {
    as_error_prefix(err, "verify: node %s, mapping %s", n->name, s->name);
    pg_verify_close(v);
    return rc == AS_RETRY ? AS_ERR : rc;
  }
  as_vsql_init(&v->q, s, (const char *const *)v->qkey, placeholder, v);
  *out = v;
  return AS_OK;
}

int pg_verify_estimate(as_verify *v, int64_t *out, as_error *err) {
  PGresult *r = NULL;
  as_buf_reset(&v->sql);
  as_vsql_reset(&v->q);
  as_buf_printf(&v->sql,
                "SELECT CASE WHEN reltuples < 0 THEN (SELECT count(*) FROM %s) ELSE "
                "reltuples::bigint END FROM pg_class WHERE oid = '%s'::regclass",
                v->t->qname, v->t->qname);
  int rc = run(v, "verify: estimate", &r, err);
  if (rc != AS_OK) return rc;
  *out = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
  PQclear(r);
  return AS_OK;
}

/* The signature query of [lo, hi) cut at bounds into sql (parameters in v->q). */
static int sign_sql(as_verify *v, const as_value *lo, const as_value *hi, const as_value *bounds,
                    size_t nb, as_buf *b) {
  int bad = as_buf_append_str(b, "SELECT _as_b, count(*)");
  for (int j = 0; j < 8; j++) bad = bad || as_buf_printf(b, ", sum(get_byte(_as_d, %d))", j);
  return bad ||
         as_buf_append_str(b, " FROM (SELECT _as_b, decode(md5('\\x000000000f000000'::bytea || " PG_LE32(
                                  "octet_length(_as_r) + 1") " || _as_r || '\\x00'::bytea), 'hex') AS _as_d "
                                                         "FROM (SELECT ") ||
         as_vsql_bucket(&v->q, b, bounds, nb) ||
         as_buf_printf(b, " AS _as_b, %s AS _as_r", v->rowtext) || from_range(v, b, lo, hi) ||
         as_buf_append_str(b, " OFFSET 0) _v1 OFFSET 0) _v2 GROUP BY _as_b");
}

static void sign_result(const PGresult *r, size_t first, size_t nb, as_seghash *out) {
  for (int i = 0; i < PQntuples(r); i++) {
    long long bk = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    if (bk < 0 || (size_t)bk > nb) continue;
    as_seghash *o = &out[first + (size_t)bk];
    o->count = strtoull(PQgetvalue(r, i, 1), NULL, 10);
    uint64_t sum = 0;
    for (int j = 0; j < 8; j++) sum += strtoull(PQgetvalue(r, i, 2 + j), NULL, 10) << (8 * j);
    o->sum = sum;
  }
}

/* One half of a split signature query, sent without waiting. */
typedef struct half {
  PGconn *c;
  as_buf sql;
  char **params;
  size_t np;
  size_t first, nb; /* segments [first, first + nb] of the whole call */
} half;

static int send_half(as_verify *v, half *h, const as_value *lo, const as_value *hi,
                     const as_value *bounds, as_error *err) {
  as_vsql_reset(&v->q);
  if (sign_sql(v, lo, hi, bounds, h->nb, &h->sql))
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  int rc = text_params(v, &h->params, err);
  if (rc != AS_OK) return rc;
  h->np = v->q.nparams;
  if (!PQsendQueryParams(h->c, as_buf_cstr(&h->sql), (int)h->np, NULL,
                         (const char *const *)h->params, NULL, NULL, 0))
    return pg_fail(h->c, NULL, "verify: segment signatures", err);
  return AS_OK;
}

static int recv_half(as_verify *v, half *h, as_seghash *out, as_error *err) {
  int rc = AS_OK;
  PGresult *r;
  while ((r = PQgetResult(h->c))) {
    if (rc == AS_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
      rc = pg_fail(h->c, r, "verify: segment signatures", err);
    } else if (rc == AS_OK) {
      count_bytes(v, r);
      sign_result(r, h->first, h->nb, out);
    }
    PQclear(r);
  }
  return rc;
}

/* A big call runs as two queries at once, one per connection: segments [0, m) and [m, nb]. */
static int sign_split(as_verify *v, const as_value *lo, const as_value *hi,
                      const as_value *bounds, size_t nb, as_seghash *out, as_error *err) {
  size_t nk = v->s->nkey, m = (nb + 1) / 2; /* bounds[m-1] separates the halves */
  half h[2] = {{.c = v->conn, .first = 0, .nb = m - 1}, {.c = v->conn2, .first = m, .nb = nb - m}};
  const as_value *mid = bounds + (m - 1) * nk;
  int rc = send_half(v, &h[0], lo, mid, bounds, err);
  int rc2 = rc == AS_OK ? send_half(v, &h[1], mid, hi, bounds + m * nk, err) : AS_OK;
  as_error e2;
  int r0 = rc == AS_OK ? recv_half(v, &h[0], out, err) : rc;
  int r1 = rc == AS_OK && rc2 == AS_OK ? recv_half(v, &h[1], out, &e2) : rc2;
  if (r0 == AS_OK && r1 != AS_OK && rc2 == AS_OK) *err = e2;
  for (int i = 0; i < 2; i++) {
    free_params(h[i].params, h[i].np);
    as_buf_free(&h[i].sql);
  }
  return r0 != AS_OK ? r0 : r1;
}

static int sign_server(as_verify *v, const as_value *lo, const as_value *hi,
                       const as_value *bounds, size_t nb, as_seghash *out, as_error *err) {
  if (v->conn2 && nb >= 3) return sign_split(v, lo, hi, bounds, nb, out, err);
  PGresult *r = NULL;
  if (sign_sql(v, lo, hi, bounds, nb, &v->sql))
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  int rc = run(v, "verify: segment signatures", &r, err);
  if (rc != AS_OK) return rc;
  sign_result(r, 0, nb, out);
  PQclear(r);
  return AS_OK;
}

/* Client mode: runs the query of v->sql through a cursor; fn gets each page. */
static int cursor_pages(as_verify *v, const char *what,
                        int (*fn)(as_verify *v, const PGresult *r, void *ctx), void *ctx,
                        as_error *err) {
  as_buf q = AS_BUF_INIT;
  int rc = as_buf_printf(&q, "DECLARE _as_vcur NO SCROLL CURSOR FOR %s", as_buf_cstr(&v->sql))
               ? as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory")
               : AS_OK;
  if (rc == AS_OK) {
    as_buf_reset(&v->sql);
    as_buf_append(&v->sql, q.data, q.len);
    PGresult *r = NULL;
    rc = run(v, what, &r, err);
    PQclear(r);
  }
  as_buf_free(&q);
  while (rc == AS_OK) {
    PGresult *r = NULL;
    rc = pg_query(v->conn, "FETCH " "5000" " FROM _as_vcur", 0, NULL, what, &r, err);
    if (rc != AS_OK) break;
    count_bytes(v, r);
    int n = PQntuples(r);
    if (n > 0) rc = fn(v, r, ctx);
    PQclear(r);
    if (n < PG_V_PAGE) break;
  }
  as_error cerr;
  int crc = pg_exec(v->conn, "CLOSE _as_vcur", what, &cerr);
  if (rc == AS_OK && crc != AS_OK) {
    *err = cerr;
    rc = crc;
  }
  return rc;
}

typedef struct sign_ctx {
  as_seghash *out;
  size_t nb;
} sign_ctx;

static int sign_page(as_verify *v, const PGresult *r, void *vctx) {
  sign_ctx *c = vctx;
  as_error err;
  int nc = (int)v->s->ntable;
  for (int i = 0; i < PQntuples(r); i++) {
    long long bk = strtoll(PQgetvalue(r, i, nc), NULL, 10);
    uint64_t h;
    if (bk < 0 || (size_t)bk > c->nb) continue;
    if (client_hash(v, r, i, &h, &err) != AS_OK) return AS_ERR;
    as_seghash_add(&c->out[bk], h);
  }
  return AS_OK;
}

int pg_verify_sign(as_verify *v, const as_value *lo, const as_value *hi, const as_value *bounds,
                   size_t nb, as_seghash *out, as_error *err) {
  memset(out, 0, (nb + 1) * sizeof *out);
  as_buf_reset(&v->sql);
  as_vsql_reset(&v->q);
  v->used = true;
  if (!v->client) return sign_server(v, lo, hi, bounds, nb, out, err);
  if (as_buf_append_str(&v->sql, "SELECT ") || pg_select_list(v->t, NULL, &v->sql) ||
      as_buf_append_str(&v->sql, ", ") || as_vsql_bucket(&v->q, &v->sql, bounds, nb) ||
      child_columns(v, &v->sql, (int)v->s->ntable + 1) ||
      as_buf_printf(&v->sql, " FROM %s WHERE ", v->t->qname) ||
      as_vsql_range(&v->q, &v->sql, lo, hi))
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  sign_ctx c = {out, nb};
  return cursor_pages(v, "verify: rows for signatures", sign_page, &c, err);
}

/* Picks parts - 1 evenly spaced keys out of the n sorted sample rows of r. */
static int keys_from_sample(as_verify *v, const PGresult *r, size_t parts, as_value *b, size_t *nb,
                            as_error *err) {
  size_t n = (size_t)PQntuples(r), nk = v->s->nkey;
  if (n == 0) return AS_OK;
  as_value *all = calloc(n * nk, sizeof *all);
  if (!all) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  int rc = AS_OK;
  for (size_t i = 0; rc == AS_OK && i < n; i++) rc = read_key(v, r, (int)i, 0, all + i * nk, err);
  if (rc == AS_OK && as_verify_bounds_from_sample(all, n, nk, parts, b, nb) != AS_OK)
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  for (size_t i = 0; i < n * nk; i++) as_value_clear(&all[i]);
  free(all);
  return rc;
}

static int split_query(as_verify *v, const as_value *lo, const as_value *hi, int64_t rows,
                       size_t parts) {
  as_buf *b = &v->sql;
  if (!lo && !hi && rows > PG_V_SAMPLE_MIN_ROWS) {
    double pct = 100.0 * (double)parts * 64.0 / (double)rows;
    if (pct > 100) pct = 100;
    if (as_buf_append_str(b, "SELECT ")) return AS_ERR;
    for (size_t k = 0; k < v->s->nkey; k++) {
      if (as_buf_printf(b, "%s%s::text", k ? ", " : "", v->t->qcols[v->s->key_idx[k]]))
        return AS_ERR;
    }
    return as_buf_printf(b, " FROM %s TABLESAMPLE SYSTEM (%.6f) ORDER BY ", v->t->qname, pct) ||
           as_vsql_keys(&v->q, b);
  }
  int64_t step = rows > 0 ? (rows + (int64_t)parts - 1) / (int64_t)parts : 1;
  if (step < 1) step = 1;
  if (as_buf_append_str(b, "SELECT ")) return AS_ERR;
  for (size_t k = 0; k < v->s->nkey; k++) {
    if (as_buf_printf(b, "%s_as_k%zu", k ? ", " : "", k)) return AS_ERR;
  }
  if (as_buf_append_str(b, " FROM (SELECT ")) return AS_ERR;
  for (size_t k = 0; k < v->s->nkey; k++) {
    if (as_buf_printf(b, "%s%s::text AS _as_k%zu", k ? ", " : "", v->t->qcols[v->s->key_idx[k]], k))
      return AS_ERR;
  }
  return as_buf_append_str(b, ", row_number() OVER (ORDER BY ") || as_vsql_keys(&v->q, b) ||
         as_buf_printf(b, ") AS _as_rn FROM %s WHERE ", v->t->qname) ||
         as_vsql_range(&v->q, b, lo, hi) ||
         as_buf_printf(b, ") _as_s WHERE _as_rn > 1 AND (_as_rn - 1) %% %" PRId64 " = 0 ORDER BY _as_rn LIMIT %zu",
                       step, parts - 1);
}

int pg_verify_split(as_verify *v, const as_value *lo, const as_value *hi, int64_t rows,
                    size_t parts, as_value **bounds, size_t *nb, as_error *err) {
  *bounds = NULL;
  *nb = 0;
  if (parts < 2) return AS_OK;
  as_buf_reset(&v->sql);
  as_vsql_reset(&v->q);
  v->used = true;
  bool sample = !lo && !hi && rows > PG_V_SAMPLE_MIN_ROWS;
  if (split_query(v, lo, hi, rows, parts))
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  PGresult *r = NULL;
  int rc = run(v, "verify: split", &r, err);
  if (rc != AS_OK) return rc;
  size_t nk = v->s->nkey;
  as_value *b = calloc(parts * nk, sizeof *b);
  if (!b) {
    PQclear(r);
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  }
  size_t got = 0;
  if (sample) {
    rc = keys_from_sample(v, r, parts, b, &got, err);
  } else {
    for (int i = 0; rc == AS_OK && i < PQntuples(r) && got + 1 < parts; i++, got++)
      rc = read_key(v, r, i, 0, b + got * nk, err);
  }
  PQclear(r);
  if (rc != AS_OK) {
    for (size_t k = 0; k < parts * nk; k++) as_value_clear(&b[k]);
    free(b);
    return rc;
  }
  *bounds = b;
  *nb = got;
  return AS_OK;
}

typedef struct rows_ctx {
  int (*fn)(void *ctx, const as_value *key, uint64_t hash);
  void *ctx;
  as_value *keys;
  as_error *err;
} rows_ctx;

static int rows_page(as_verify *v, const PGresult *r, void *vctx) {
  rows_ctx *c = vctx;
  for (int i = 0; i < PQntuples(r); i++) {
    uint64_t h;
    int rc = client_hash(v, r, i, &h, c->err);
    if (rc == AS_OK) rc = read_key(v, r, i, (int)v->s->ntable, c->keys, c->err);
    if (rc == AS_OK) rc = c->fn(c->ctx, c->keys, h);
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

int pg_verify_rows(as_verify *v, const as_value *lo, const as_value *hi,
                   int (*fn)(void *ctx, const as_value *key, uint64_t hash), void *ctx,
                   as_error *err) {
  size_t nk = v->s->nkey;
  as_value *keys = calloc(nk, sizeof *keys);
  if (!keys) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  as_buf *b = &v->sql;
  as_buf_reset(b);
  as_vsql_reset(&v->q);
  v->used = true;
  int bad = as_buf_append_str(b, "SELECT ");
  if (v->client) {
    bad = bad || pg_select_list(v->t, NULL, b);
    for (size_t k = 0; k < nk; k++)
      bad = bad || as_buf_printf(b, ", %s::text", v->t->qcols[v->s->key_idx[k]]);
    bad = bad || child_columns(v, b, (int)(v->s->ntable + nk));
    bad = bad || as_buf_printf(b, " FROM %s WHERE ", v->t->qname) || as_vsql_range(&v->q, b, lo, hi);
  } else {
    for (size_t k = 0; k < nk; k++) bad = bad || as_buf_printf(b, "_as_k%zu, ", k);
    bad = bad ||
          as_buf_append_str(b, "substr(md5('\\x000000000f000000'::bytea || " PG_LE32(
                                   "octet_length(_as_r) + 1") " || _as_r || '\\x00'::bytea), 1, 16) FROM (SELECT ");
    for (size_t k = 0; k < nk; k++)
      bad = bad || as_buf_printf(b, "%s::text AS _as_k%zu, ", v->t->qcols[v->s->key_idx[k]], k);
    bad = bad || as_buf_printf(b, "%s AS _as_r", v->rowtext) || from_range(v, b, lo, hi) ||
          as_buf_append_str(b, " OFFSET 0) _v1");
  }
  int rc = bad ? as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory") : AS_OK;
  if (rc == AS_OK && v->client) {
    rows_ctx c = {fn, ctx, keys, err};
    rc = cursor_pages(v, "verify: rows", rows_page, &c, err);
  } else if (rc == AS_OK) {
    PGresult *r = NULL;
    rc = run(v, "verify: row hashes", &r, err);
    for (int i = 0; rc == AS_OK && i < PQntuples(r); i++) {
      rc = read_key(v, r, i, 0, keys, err);
      if (rc == AS_OK) rc = fn(ctx, keys, le64_hex(PQgetvalue(r, i, (int)nk)));
    }
    PQclear(r);
  }
  for (size_t k = 0; k < nk; k++) as_value_clear(&keys[k]);
  free(keys);
  return rc;
}

uint64_t pg_verify_bytes(as_verify *v) { return v->bytes; }
