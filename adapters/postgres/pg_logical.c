/* pg_logical.c — capture by logical decoding (capture: logical): one replication slot per
 * consumer stream, the built-in pgoutput plugin (protocol version 1) over a replication
 * connection (replication=database), its binary messages decoded here into deltas.
 *
 * Positions are LSNs as text ("16/B374D848"). After a complete transaction the position is
 * its end LSN; a batch cut inside a transaction (only when that transaction alone exceeds the
 * batch size) carries the LSN of its commit record, from which START_REPLICATION replays that
 * whole transaction again (harmless: state-based). While nothing happens, keepalives move the
 * position to the server's decoded WAL end, so an idle stream's slot does not hold WAL.
 * The slot's confirmed flush position is advanced only by ack (the target committed), and is
 * reported in Standby Status Updates, which are also sent every 10 s and whenever the server
 * asks.
 *
 * Origins: the sink writes its connection's row in arraysync.marks (part of the publication)
 * first in each transaction and whenever the origin changes; the decoder takes the origin of
 * the following changes from it. Origin AS_ORIGIN_LOCAL_ONLY: the changes are left out. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "as_children.h"
#include "as_log.h"
#include "pg_internal.h"
#include "pg_sql.h"

#define PG_EPOCH_US 946684800000000LL /* 2000-01-01 in Unix µs */
#define STATUS_EVERY_US 10000000LL

/* A relation as the last Relation message described it. */
typedef struct lrel {
  uint32_t relid;
  int table;         /* index into n->tables, -1: not mapped */
  bool marks;        /* arraysync.marks */
  int origin_col;    /* marks: column of "origin" */
  bool images;       /* arraysync.child_images (pg_children.c) */
  int img_col[4];    /* images: columns of tbl, key, parent_exists, rows */
  int ncols;
  int *map;          /* relation column -> schema column or -1 */
  char *name;        /* "schema.table" for messages */
} lrel;

/* One column of a TupleData. */
typedef struct lcol {
  char kind;         /* 'n' null, 'u' unchanged TOAST, 't' text */
  const char *p;
  uint32_t len;
} lcol;

/* Reading cursor over one message. */
typedef struct cur {
  const uint8_t *p;
  size_t n;
  bool bad;
} cur;

struct pg_lstream {
  as_node *n;
  char *consumer;
  char *slot;
  PGconn *conn;      /* replication connection */
  PGconn *aux;       /* plain connection for reads by key (TOAST), opened on demand */
  bool started;
  uint64_t start;    /* START_REPLICATION position */
  uint64_t pos;      /* after the last complete transaction (or keepalive) */
  uint64_t received; /* highest WAL position seen */
  uint64_t acked;    /* flush position reported to the server (0: none yet) */
  int64_t last_status_us;
  /* the transaction being decoded */
  bool in_txn;
  uint64_t final_lsn;
  int64_t ts_us;
  char xid[16];
  char *origin;      /* current mark (NULL: local write) */
  bool local_only;   /* current mark is AS_ORIGIN_LOCAL_ONLY */
  as_batch carry;    /* decoded part of an unfinished transaction, handed out next poll */
  lrel *rels;
  size_t nrels;
  lcol *cols[2];     /* scratch TupleData columns (old, new) */
  size_t capcols;
  char comp[128];
  bool offline;      /* pg_logical_decode: no connection, no reads by key */
};

/* ------------------------------------------------------------------ helpers */

static int64_t now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static int64_t mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int nomem(as_error *err) { return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory"); }

static void lsn_text(uint64_t lsn, char *buf, size_t n) {
  snprintf(buf, n, "%X/%X", (unsigned)(lsn >> 32), (unsigned)(lsn & 0xffffffffu));
}

bool pg_lsn_parse(const char *s, uint64_t *out) {
  unsigned hi, lo;
  char tail;
  if (!s || sscanf(s, "%X/%X%c", &hi, &lo, &tail) != 2) return false;
  *out = ((uint64_t)hi << 32) | lo;
  return true;
}

static uint8_t get_u8(cur *c) {
  if (c->n < 1) {
    c->bad = true;
    return 0;
  }
  c->n--;
  return *c->p++;
}

static uint64_t get_be(cur *c, int bytes) {
  if (c->n < (size_t)bytes) {
    c->bad = true;
    c->n = 0;
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v = (v << 8) | c->p[i];
  c->p += bytes;
  c->n -= (size_t)bytes;
  return v;
}

/* NUL-terminated string inside the message (pointer into it). */
static const char *get_str(cur *c) {
  const uint8_t *z = memchr(c->p, 0, c->n);
  if (!z) {
    c->bad = true;
    c->n = 0;
    return "";
  }
  const char *s = (const char *)c->p;
  c->n -= (size_t)(z - c->p) + 1;
  c->p = z + 1;
  return s;
}

static void put_be(uint8_t *p, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--) {
    p[i] = (uint8_t)(v & 0xff);
    v >>= 8;
  }
}

/* Moves b's deltas and dead letters from index d0/x0 on to the end of `to`. */
static int move_tail(as_batch *b, size_t d0, size_t x0, as_batch *to) {
  for (size_t i = d0; i < b->n; i++) {
    as_delta *d = as_batch_push(to);
    if (!d) return AS_ERR;
    *d = b->d[i];
  }
  b->n = d0 < b->n ? d0 : b->n;
  for (size_t i = x0; i < b->ndead; i++) {
    as_dead *x = &b->dead[i];
    if (as_batch_push_dead(to, x->schema, x->key, x->raw, x->error, x->pos) != AS_OK) return AS_ERR;
  }
  b->ndead = x0 < b->ndead ? x0 : b->ndead;
  return AS_OK;
}

/* ------------------------------------------------------------------ status updates */

static int send_status(pg_lstream *s, bool reply, as_error *err) {
  uint8_t m[34];
  uint64_t write = s->received > s->acked ? s->received : s->acked;
  m[0] = 'r';
  put_be(m + 1, write, 8);
  put_be(m + 9, s->acked, 8);
  put_be(m + 17, s->acked, 8);
  put_be(m + 25, (uint64_t)(now_us() - PG_EPOCH_US), 8);
  m[33] = reply ? 1 : 0;
  if (PQputCopyData(s->conn, (const char *)m, (int)sizeof m) != 1 || PQflush(s->conn) != 0)
    return pg_fail(s->conn, NULL, "send standby status", err);
  s->last_status_us = now_us();
  return AS_OK;
}

/* ------------------------------------------------------------------ relations */

static void rel_clear(lrel *r) {
  free(r->map);
  free(r->name);
  memset(r, 0, sizeof *r);
}

static lrel *rel_find(pg_lstream *s, uint32_t relid) {
  for (size_t i = 0; i < s->nrels; i++) {
    if (s->rels[i].relid == relid) return &s->rels[i];
  }
  return NULL;
}

/* Relation message: map columns by name; a mapped column that is gone is an error. */
static int on_relation(pg_lstream *s, cur *c, as_error *err) {
  uint32_t relid = (uint32_t)get_be(c, 4);
  const char *nsp = get_str(c), *rel = get_str(c);
  get_u8(c); /* replica identity */
  int ncols = (int)(int16_t)get_be(c, 2);
  if (c->bad || ncols < 0) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "malformed Relation message");
  lrel *r = rel_find(s, relid);
  if (!r) {
    lrel *nr = realloc(s->rels, (s->nrels + 1) * sizeof *nr);
    if (!nr) return nomem(err);
    s->rels = nr;
    r = &s->rels[s->nrels++];
    memset(r, 0, sizeof *r);
  } else {
    rel_clear(r);
  }
  r->relid = relid;
  r->table = -1;
  r->origin_col = -1;
  r->ncols = ncols;
  size_t nl = strlen(nsp) + strlen(rel) + 2;
  r->name = malloc(nl);
  r->map = calloc(ncols ? (size_t)ncols : 1, sizeof *r->map);
  if (!r->name || !r->map) return nomem(err);
  snprintf(r->name, nl, "%s.%s", nsp, rel);
  r->marks = strcmp(nsp, "arraysync") == 0 && strcmp(rel, "marks") == 0;
  r->images = strcmp(nsp, "arraysync") == 0 && strcmp(rel, "child_images") == 0;
  for (int k = 0; k < 4; k++) r->img_col[k] = -1;
  pg_table *t = strcmp(nsp, s->n->schema) == 0 ? pg_table_by_name(s->n, rel) : NULL;
  if (t) r->table = (int)(t - s->n->tables);
  for (int i = 0; i < ncols; i++) {
    get_u8(c); /* flags */
    const char *name = get_str(c);
    get_be(c, 4); /* type oid */
    get_be(c, 4); /* typmod */
    r->map[i] = t ? as_schema_column_index(t->s, name) : -1;
    if (r->map[i] >= (int)(t ? t->s->ntable : 0)) r->map[i] = -1; /* an array column's name */
    if (r->marks && strcmp(name, "origin") == 0) r->origin_col = i;
    static const char *const img_names[4] = {"tbl", "key", "parent_exists", "rows"};
    for (int k = 0; r->images && k < 4; k++)
      if (strcmp(name, img_names[k]) == 0) r->img_col[k] = i;
  }
  if (c->bad) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "malformed Relation message");
  for (size_t k = 0; t && k < t->s->ntable; k++) {
    bool found = false;
    for (int i = 0; i < ncols && !found; i++) found = r->map[i] == (int)k;
    if (!found) {
      const as_column *col = &t->s->cols[k];
      return as_error_set(err, AS_DOM_POSTGRES, AS_ERR,
                          "table %s: mapped column \"%s\" (mapping %s, %s:%d:%d) is no longer in "
                          "the table (dropped or renamed) as of WAL %X/%X; capture cannot go "
                          "on: change the mapping (and run install) or restore the column",
                          t->qname, col->name, t->s->name,
                          col->mark.file ? col->mark.file : t->s->file, col->mark.line,
                          col->mark.col, (unsigned)(s->received >> 32), (unsigned)s->received);
    }
  }
  return AS_OK;
}

/* ------------------------------------------------------------------ tuples */

static int read_tuple(pg_lstream *s, cur *c, int which, int *ncols, as_error *err) {
  int n = (int)(int16_t)get_be(c, 2);
  if (c->bad || n < 0) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "malformed TupleData");
  if ((size_t)n > s->capcols) {
    for (int w = 0; w < 2; w++) {
      lcol *nc = realloc(s->cols[w], (size_t)n * sizeof *nc);
      if (!nc) return nomem(err);
      s->cols[w] = nc;
    }
    s->capcols = (size_t)n;
  }
  for (int i = 0; i < n; i++) {
    lcol *col = &s->cols[which][i];
    col->kind = (char)get_u8(c);
    col->p = NULL;
    col->len = 0;
    if (col->kind == 't' || col->kind == 'b') {
      col->len = (uint32_t)get_be(c, 4);
      if (c->n < col->len) c->bad = true;
      if (c->bad) break;
      col->p = (const char *)c->p;
      c->p += col->len;
      c->n -= col->len;
    } else if (col->kind != 'n' && col->kind != 'u') {
      c->bad = true;
    }
  }
  if (c->bad) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "malformed TupleData");
  *ncols = n;
  return AS_OK;
}

static bool col_equal(const lcol *a, const lcol *b) {
  if (a->kind != b->kind) return false;
  if (a->kind != 't') return a->kind == 'n';
  return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* The raw change as JSON for a dead letter: {"relation", "op", "new": {name: text}} (what
 * `dlq retry` decodes: as_adapter_decode_row_json). */
static char *raw_change(const lrel *r, const pg_table *t, char op, const lcol *cols, int n) {
  json_t *o = json_object(), *c = json_object();
  char ops[2] = {op, 0};
  json_object_set_new(o, "relation", json_string(r->name));
  json_object_set_new(o, "op", json_string(ops));
  for (int i = 0; t && c && i < n && i < r->ncols; i++) {
    if (r->map[i] < 0) continue;
    json_t *v = cols[i].kind == 't' ? json_stringn(cols[i].p, cols[i].len)
                : cols[i].kind == 'u' ? json_string("(unchanged TOAST)") : json_null();
    json_object_set_new(c, t->s->cols[r->map[i]].name, v);
  }
  json_object_set_new(o, "new", c);
  char *out = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return out;
}

/* Puts the mapped columns of a tuple into d->row: all (want = NULL) or where want[i]; 'u'
 * (unchanged TOAST value) leaves the column out. AS_EDATA with err for a bad value. */
static int put_cols(const lrel *r, const pg_table *t, const lcol *cols, int n, const bool *want,
                    bool keys_only, as_delta *d, as_error *err) {
  const as_schema *sc = t->s;
  for (int i = 0; i < n && i < r->ncols; i++) {
    int k = r->map[i];
    if (k < 0 || (keys_only && !sc->cols[k].is_key)) continue;
    if (want && !want[i] && !sc->cols[k].is_key) continue;
    if (cols[i].kind == 'u') continue;
    as_value v = AS_VALUE_NULL;
    if (cols[i].kind == 't') {
      int rc = pg_value_from_text(sc->cols[k].type, cols[i].p, cols[i].len, &v, err);
      if (rc != AS_OK) {
        as_error_prefix(err, "mapping %s: column \"%s\"", sc->name, sc->cols[k].name);
        return rc == AS_ERR ? AS_ERR : AS_EDATA;
      }
    } else if (cols[i].kind == 'b') {
      return as_error_set(err, AS_DOM_POSTGRES, AS_EDATA, "binary column value not expected");
    }
    as_row_put(&d->row, (size_t)k, &v);
  }
  for (size_t j = 0; j < sc->nkey; j++) {
    size_t k = sc->key_idx[j];
    if (!as_row_has(&d->row, k) || d->row.v[k].type == AS_T_NULL) {
      return as_error_set(err, AS_DOM_POSTGRES, AS_EDATA,
                          "mapping %s: key column \"%s\" is not in the change (replica identity "
                          "without it?)",
                          sc->name, sc->cols[k].name);
    }
  }
  return AS_OK;
}

/* A tuple as a whole row into *out: every column readable (no unchanged TOASTed value 'u'),
 * every mapped column set; else *out stays empty. */
static void whole_row(const lrel *r, const pg_table *t, const lcol *cols, int n, as_row *out) {
  bool whole = true;
  for (int i = 0; i < n && whole; i++) whole = cols[i].kind != 'u';
  as_delta tmp;
  memset(&tmp, 0, sizeof tmp);
  if (!whole || as_delta_init(&tmp, t->s, AS_OP_UPDATE) != AS_OK) return;
  as_error e;
  whole = put_cols(r, t, cols, n, NULL, false, &tmp, &e) == AS_OK;
  for (size_t k = 0; whole && k < t->s->ntable; k++) whole = as_row_has(&tmp.row, k);
  if (whole) {
    *out = tmp.row;
    memset(&tmp.row, 0, sizeof tmp.row);
  }
  as_delta_clear(&tmp);
}

/* An update's row image (as_row.h: what it writes if it brings back a row deleted elsewhere):
 * the new tuple, an unchanged TOASTed value taken from the old one (REPLICA IDENTITY FULL). A
 * value that cannot be read leaves no image (the engine then reads the row from a holder). */
static int put_image(const lrel *r, const pg_table *t, const lcol *newc, int nnew, const lcol *oldc,
                     int nold, as_delta *d) {
  lcol *cols = malloc((nnew ? (size_t)nnew : 1) * sizeof *cols);
  if (!cols) return AS_ERR;
  for (int i = 0; i < nnew; i++) {
    cols[i] = newc[i];
    if (cols[i].kind == 'u' && i < nold && oldc[i].kind != 'u') cols[i] = oldc[i];
  }
  whole_row(r, t, cols, nnew, &d->image);
  free(cols);
  return AS_OK;
}


/* Reads the columns missing from an insert (unchanged TOAST values of a key change) from the
 * table by key. *gone: the row no longer exists (a later change removes it). */
static int fill_missing(pg_lstream *s, const pg_table *t, as_delta *d, bool *gone,
                        as_error *err) {
  const as_schema *sc = t->s;
  *gone = false;
  bool missing = false;
  for (size_t c = 0; c < sc->ntable; c++) missing = missing || !as_row_has(&d->row, c);
  if (!missing) return AS_OK;
  if (s->offline) {
    return as_error_set(err, AS_DOM_POSTGRES, AS_EDATA,
                        "mapping %s: columns missing from the change, and no connection to "
                        "read them from (decoder test)", sc->name);
  }
  if (!s->aux) {
    char what[160];
    snprintf(what, sizeof what, "%s (reads)", s->comp);
    int rc = pg_connect_dsn(s->n->dsn, what, false, &s->aux, err);
    if (rc != AS_OK) return rc;
  }
  as_buf sql = AS_BUF_INIT;
  char **params = calloc(sc->nkey, sizeof *params);
  PGresult *r = NULL;
  int rc = params && as_buf_append_str(&sql, "SELECT ") == AS_OK && pg_select_list(t, NULL, &sql) == AS_OK &&
               as_buf_printf(&sql, " FROM %s WHERE ", t->qname) == AS_OK
           ? AS_OK
           : nomem(err);
  for (size_t k = 0; rc == AS_OK && k < sc->nkey; k++) {
    size_t c = sc->key_idx[k];
    rc = pg_value_to_text(&d->row.v[c], &params[k], err);
    if (rc == AS_OK && as_buf_printf(&sql, "%s%s = $%zu::%s", k ? " AND " : "", t->qcols[c], k + 1,
                                     pg_cast_type(sc->cols[c].type)) != AS_OK)
      rc = nomem(err);
  }
  if (rc == AS_OK)
    rc = pg_query(s->aux, as_buf_cstr(&sql), (int)sc->nkey, (const char *const *)params,
                  "read row for unchanged TOAST values", &r, err);
  if (rc == AS_OK && PQntuples(r) == 0) *gone = true;
  for (size_t c = 0; rc == AS_OK && !*gone && c < sc->ntable; c++) {
    if (as_row_has(&d->row, c)) continue;
    as_value v = AS_VALUE_NULL;
    if (!PQgetisnull(r, 0, (int)c)) {
      rc = pg_value_from_text(sc->cols[c].type, PQgetvalue(r, 0, (int)c),
                              (size_t)PQgetlength(r, 0, (int)c), &v, err);
      if (rc != AS_OK) rc = AS_EDATA;
    }
    if (rc == AS_OK) as_row_put(&d->row, c, &v);
  }
  PQclear(r);
  for (size_t k = 0; params && k < sc->nkey; k++) free(params[k]);
  free(params);
  as_buf_free(&sql);
  return rc;
}

/* ------------------------------------------------------------------ changes */

/* A new delta of this transaction in out, with origin, ts, txn and position set. */
static as_delta *new_delta(pg_lstream *s, as_batch *out, const pg_table *t, as_op op,
                           as_error *err) {
  as_delta *d = as_batch_push(out);
  if (!d || as_delta_init(d, t->s, op) != AS_OK) {
    if (d) out->n--;
    nomem(err);
    return NULL;
  }
  char pos[32];
  lsn_text(s->final_lsn, pos, sizeof pos);
  d->echo = s->origin != NULL;
  if (as_delta_set_origin(d, s->origin ? s->origin : s->n->name) != AS_OK ||
      as_delta_set_pos(d, pos) != AS_OK || as_delta_set_txn(d, s->xid) != AS_OK) {
    as_delta_clear(d);
    out->n--;
    nomem(err);
    return NULL;
  }
  d->ts_us = s->ts_us;
  d->hlc = AS_HLC_FROM_US(s->ts_us);
  d->order = (int64_t)s->final_lsn; /* the commit record's LSN: commit order */
  return d;
}

static void drop_last(as_batch *out) {
  as_delta_clear(&out->d[out->n - 1]);
  out->n--;
}

/* Leaves the change out? A mark of AS_ORIGIN_LOCAL_ONLY, or an echo going back to its
 * origin (a delta never returns to its origin: saves converting the connector's writes). */
static bool skip_change(const pg_lstream *s) {
  return s->local_only || (s->origin && s->consumer && strcmp(s->origin, s->consumer) == 0);
}

/* Schema column c of a decoded tuple, for pg_key_from_texts. */
typedef struct tuple_cells {
  const lrel *r;
  const lcol *cols;
  int n;
} tuple_cells;

static const char *tuple_text(const void *ctx, size_t c, size_t *len) {
  const tuple_cells *x = ctx;
  for (int i = 0; i < x->n && i < x->r->ncols; i++) {
    if (x->r->map[i] != (int)c) continue;
    if (x->cols[i].kind != 't') return NULL;
    *len = x->cols[i].len;
    return x->cols[i].p;
  }
  return NULL;
}

static int dead(pg_lstream *s, as_batch *out, const lrel *r, const pg_table *t, char op,
                const lcol *cols, int n, as_error *e) {
  char pos[32];
  lsn_text(s->final_lsn, pos, sizeof pos);
  AS_LOG(AS_LOG_WARN, s->comp, "dead letter in transaction %s at %s: %s", s->xid, pos, e->message);
  tuple_cells tc = {r, cols, n};
  char *key = t ? pg_key_from_texts(t->s, tuple_text, &tc) : NULL;
  if (as_batch_push_dead(out, t ? t->s : NULL, key, raw_change(r, t, op, cols, n),
                         strdup(e->message), strdup(pos)) != AS_OK)
    return AS_ERR;
  return AS_OK;
}

static void set_mark(pg_lstream *s, const lrel *r, const lcol *cols, int n) {
  free(s->origin);
  s->origin = NULL;
  s->local_only = false;
  /* empty, or with a NUL byte (not PostgreSQL text): no origin */
  if (r->origin_col < 0 || r->origin_col >= n || cols[r->origin_col].kind != 't' ||
      cols[r->origin_col].len == 0 || memchr(cols[r->origin_col].p, 0, cols[r->origin_col].len))
    return;
  s->origin = strndup(cols[r->origin_col].p, cols[r->origin_col].len);
  s->local_only = s->origin && strcmp(s->origin, AS_ORIGIN_LOCAL_ONLY) == 0;
}

/* Text of tuple column i (NULL when absent or null). Caller frees. */
static char *col_text(const lcol *cols, int n, int i) {
  if (i < 0 || i >= n || cols[i].kind != 't') return NULL;
  return strndup(cols[i].p, cols[i].len);
}

/* The image of a parent's child rows (arraysync.child_images, written by the child table's
 * trigger in the same transaction: pg_children.c) -> an update of the parent's array column,
 * put into the transaction's previous delta of that parent when there is one (its insert, or
 * an earlier image). */
static int on_image(pg_lstream *s, const lrel *r, const lcol *cols, int n, as_batch *out,
                    as_error *err) {
  char *tbl = col_text(cols, n, r->img_col[0]), *key = col_text(cols, n, r->img_col[1]);
  char *ex = col_text(cols, n, r->img_col[2]), *rows = col_text(cols, n, r->img_col[3]);
  pg_table *ct = tbl ? pg_table_by_name(s->n, tbl) : NULL;
  const as_schema *sc = ct && ct->owner ? ct->owner : NULL;
  pg_table *pt = sc ? pg_table_for(s->n, sc) : NULL;
  json_t *jk = key ? json_loads(key, 0, NULL) : NULL, *jr = rows ? json_loads(rows, 0, NULL) : NULL;
  as_row pk = {0}, *cr = NULL;
  size_t nr = json_array_size(jr);
  as_error e = {0};
  int rc = AS_OK;
  if (!pt) goto done; /* a table no mapping has now */
  const as_schema *tab = ct->s;
  size_t ci = ct->child;
  if (as_row_init(&pk, sc->ncols) != AS_OK) {
    rc = nomem(err);
    goto done;
  }
  rc = pg_texts_to_row(sc, jk, sc->key_idx, sc->nkey, &pk, &e);
  if (rc == AS_OK) rc = pg_children_rows_from_json(s->n, sc, ci, jr, &cr, &nr, &e);
  bool exists = ex && ex[0] == 't';
  if (rc == AS_OK && !exists && nr > 0) {
    char *k = as_key_describe(sc, &pk);
    rc = as_error_set(&e, AS_DOM_POSTGRES, AS_EDATA, "child table \"%s\" holds rows of parent key "
                      "%s, which table \"%s\" does not have", tab->table, k ? k : "?", sc->table);
    free(k);
  }
  as_value arr = AS_VALUE_NULL;
  if (rc == AS_OK && exists) rc = as_child_array(sc, ci, cr, nr, &arr, &e);
  if (rc == AS_OK && exists) {
    size_t col = sc->children[ci].col;
    as_delta *last = out->n ? &out->d[out->n - 1] : NULL;
    bool same = last && last->schema == sc && last->op != AS_OP_DELETE && last->txn &&
                strcmp(last->txn, s->xid) == 0;
    for (size_t k = 0; same && k < sc->nkey; k++)
      same = as_value_equal(&last->row.v[sc->key_idx[k]], &pk.v[sc->key_idx[k]]);
    as_delta *d = same ? last : new_delta(s, out, pt, AS_OP_UPDATE, err);
    if (!d) {
      as_value_clear(&arr);
      rc = AS_ERR;
      goto done;
    }
    for (size_t k = 0; !same && k < sc->nkey; k++) {
      as_value v;
      if (as_value_copy(&v, &pk.v[sc->key_idx[k]]) != AS_OK) {
        as_value_clear(&arr);
        rc = nomem(err);
        goto done;
      }
      as_row_put(&d->row, sc->key_idx[k], &v);
    }
    as_row_put(&d->row, col, &arr);
  }
  if (rc == AS_EDATA) {
    char pos[32];
    lsn_text(s->final_lsn, pos, sizeof pos);
    char *k = as_key_describe(sc, &pk);
    AS_LOG(AS_LOG_WARN, s->comp, "dead letter in transaction %s at %s: mapping %s: %s", s->xid,
           pos, sc->name, e.message);
    char msg[AS_ERROR_MSG_MAX + 64];
    snprintf(msg, sizeof msg, "mapping %s: %s", sc->name, e.message);
    rc = as_batch_push_dead(out, sc, k, rows ? strdup(rows) : NULL, strdup(msg), strdup(pos)) == AS_OK
             ? AS_OK
             : nomem(err);
  } else if (rc != AS_OK && e.message[0]) {
    *err = e;
  }
done:
  as_child_rows_free(cr, nr);
  as_row_clear(&pk);
  json_decref(jk);
  json_decref(jr);
  free(tbl);
  free(key);
  free(ex);
  free(rows);
  return rc;
}

/* Insert 'I' / Update 'U' / Delete 'D' of a relation. */
static int on_change(pg_lstream *s, char op, cur *c, as_batch *out, as_error *err) {
  uint32_t relid = (uint32_t)get_be(c, 4);
  lrel *r = rel_find(s, relid);
  if (!r) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "change of relation %u before its Relation message", relid);
  int nold = 0, nnew = 0, rc;
  char oldkind = 0;
  uint8_t tag = get_u8(c);
  if (op != 'I' && (tag == 'K' || tag == 'O')) {
    oldkind = (char)tag;
    if ((rc = read_tuple(s, c, 0, &nold, err)) != AS_OK) return rc;
    if (op == 'U') tag = get_u8(c);
  }
  if (op != 'D') {
    if (tag != 'N') return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "malformed change message");
    if ((rc = read_tuple(s, c, 1, &nnew, err)) != AS_OK) return rc;
  }
  /* pgoutput writes a tuple's columns as the Relation message listed them, all of them */
  if ((oldkind && nold != r->ncols) || (op != 'D' && nnew != r->ncols)) {
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR,
                        "malformed change message: a tuple of %d columns for relation %s of %d",
                        oldkind && nold != r->ncols ? nold : nnew, r->name, r->ncols);
  }
  const lcol *oldc = s->cols[0], *newc = s->cols[1];
  if (r->marks) {
    if (op != 'D') set_mark(s, r, newc, nnew);
    return AS_OK;
  }
  if (skip_change(s)) return AS_OK;
  if (r->images) return op == 'D' ? AS_OK : on_image(s, r, newc, nnew, out, err);
  as_error e = {0};
  if (r->table < 0) {
    as_error_set(&e, AS_DOM_MAPPING, AS_EDATA, "table %s is not mapped on node %s", r->name, s->n->name);
    return dead(s, out, r, NULL, op, op == 'D' ? oldc : newc, op == 'D' ? nold : nnew, &e) == AS_OK ? AS_OK : nomem(err);
  }
  pg_table *t = &s->n->tables[r->table];
  if (t->owner) return AS_OK; /* a child table: its changes come as images (on_image) */
  const as_schema *sc = t->s;
  bool key_moved = false;
  bool *changed = NULL;
  if (op == 'U' && oldkind) {
    for (int i = 0; i < nold && i < nnew && i < r->ncols; i++) {
      int k = r->map[i];
      if (k >= 0 && sc->cols[k].is_key && oldc[i].kind != 'n' && !col_equal(&oldc[i], &newc[i]))
        key_moved = true;
    }
  }
  if (op == 'U' && oldkind == 'O' && !key_moved) {
    /* REPLICA IDENTITY FULL: the columns whose values differ */
    changed = calloc(nnew ? (size_t)nnew : 1, sizeof *changed);
    if (!changed) return nomem(err);
    bool any = false;
    for (int i = 0; i < nnew && i < r->ncols; i++) {
      changed[i] = newc[i].kind != 'u' && (i >= nold || !col_equal(&oldc[i], &newc[i]));
      any = any || (changed[i] && r->map[i] >= 0 && !sc->cols[r->map[i]].is_key);
    }
    if (!any) {
      free(changed);
      return AS_OK; /* no mapped column changed */
    }
  }
  size_t n0 = out->n;
  rc = AS_OK;
  if (op == 'D' || key_moved) {
    as_delta *d = new_delta(s, out, t, AS_OP_DELETE, err);
    if (!d) rc = AS_ERR;
    if (rc == AS_OK && (rc = put_cols(r, t, oldc, nold, NULL, true, d, &e)) != AS_OK) drop_last(out);
  }
  if (rc == AS_OK && op != 'D') {
    as_delta *d = new_delta(s, out, t, key_moved || op == 'I' ? AS_OP_INSERT : AS_OP_UPDATE, err);
    if (!d) rc = AS_ERR;
    if (rc == AS_OK && (rc = put_cols(r, t, newc, nnew, changed, false, d, &e)) != AS_OK) drop_last(out);
    if (rc == AS_OK && d->op == AS_OP_UPDATE && changed && (rc = put_image(r, t, newc, nnew, oldc, nold, d)) != AS_OK)
      drop_last(out);
    /* the old row, for a script's ctx.base (as_row.h `before`) */
    if (rc == AS_OK && d->op == AS_OP_UPDATE && changed && as_schema_keeps_before(sc))
      whole_row(r, t, oldc, nold, &d->before);
    bool gone = false;
    if (rc == AS_OK && d->op == AS_OP_INSERT && (rc = fill_missing(s, t, d, &gone, &e)) != AS_OK)
      drop_last(out);
    if (rc == AS_OK && gone) drop_last(out); /* removed later: that change follows */
    if (rc == AS_OK && !gone && sc->nchildren) {
      /* no child rows yet; the parent's insert trigger writes its arrays' images right after
       * (on_image puts them into this delta); an update's image lacks its arrays: none */
      for (size_t ci = 0; d->op == AS_OP_INSERT && ci < sc->nchildren; ci++) {
        as_value nul = AS_VALUE_NULL;
        as_row_put(&d->row, sc->children[ci].col, &nul);
      }
      as_row_clear(&d->image);
    }
  }
  free(changed);
  if (rc == AS_EDATA) {
    while (out->n > n0) drop_last(out);
    return dead(s, out, r, t, op, op == 'D' ? oldc : newc, op == 'D' ? nold : nnew, &e) == AS_OK ? AS_OK : nomem(err);
  }
  if (rc != AS_OK && e.message[0]) *err = e;
  return rc;
}

static int on_truncate(pg_lstream *s, cur *c, as_batch *out, as_error *err) {
  uint32_t nrel = (uint32_t)get_be(c, 4);
  get_u8(c); /* options: CASCADE, RESTART IDENTITY */
  for (uint32_t i = 0; i < nrel && !c->bad; i++) {
    lrel *r = rel_find(s, (uint32_t)get_be(c, 4));
    if (!r || r->table < 0 || skip_change(s)) continue;
    pg_table *t = &s->n->tables[r->table];
    char where[64];
    bool emit = false;
    snprintf(where, sizeof where, "transaction %s, WAL %X/%X", s->xid,
             (unsigned)(s->final_lsn >> 32), (unsigned)s->final_lsn);
    int rc = pg_on_truncate(s->n, t, where, &emit, err);
    if (rc != AS_OK) return rc;
    if (emit && !new_delta(s, out, t, AS_OP_TRUNCATE, err)) return AS_ERR;
  }
  return c->bad ? as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "malformed Truncate message") : AS_OK;
}

/* One pgoutput message. *committed: a Commit was processed. */
static int on_message(pg_lstream *s, cur *c, as_batch *out, bool *committed, as_error *err) {
  char type = (char)get_u8(c);
  *committed = false;
  switch (type) {
    case 'B': {
      s->final_lsn = get_be(c, 8);
      int64_t ts = (int64_t)get_be(c, 8); /* commit time, µs since 2000 */
      snprintf(s->xid, sizeof s->xid, "%u", (unsigned)get_be(c, 4));
      if (c->bad) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "malformed Begin message");
      /* a commit time the HLC (Unix µs << 8) cannot hold is not a server's clock */
      if (ts < -PG_EPOCH_US || ts > (INT64_MAX >> 8) - PG_EPOCH_US) {
        return as_error_set(err, AS_DOM_POSTGRES, AS_ERR,
                            "malformed Begin message: commit time %" PRId64 " out of range", ts);
      }
      s->ts_us = ts + PG_EPOCH_US;
      s->in_txn = true;
      free(s->origin);
      s->origin = NULL;
      s->local_only = false;
      return AS_OK;
    }
    case 'C': {
      get_u8(c);                      /* flags */
      get_be(c, 8);                   /* commit LSN */
      uint64_t end = get_be(c, 8);    /* end of the commit record */
      get_be(c, 8);                   /* commit time */
      if (c->bad) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "malformed Commit message");
      s->in_txn = false;
      if (end > s->pos) s->pos = end;
      *committed = true;
      return AS_OK;
    }
    case 'R': return on_relation(s, c, err);
    case 'I':
    case 'U':
    case 'D': return on_change(s, type, c, out, err);
    case 'T': return on_truncate(s, c, out, err);
    case 'Y': /* Type: values come as text, nothing to learn */
    case 'O': /* Origin (replication origins): not used */
    case 'M': /* logical decoding message: not requested */
      return AS_OK;
    default:
      return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "unexpected pgoutput message '%c'", type);
  }
}

/* ------------------------------------------------------------------ stream */

void pg_lstream_close(pg_lstream *s) {
  if (!s) return;
  if (s->conn) PQfinish(s->conn);
  if (s->aux) PQfinish(s->aux);
  for (size_t i = 0; i < s->nrels; i++) rel_clear(&s->rels[i]);
  free(s->rels);
  free(s->cols[0]);
  free(s->cols[1]);
  as_batch_clear(&s->carry);
  free(s->origin);
  free(s->consumer);
  free(s->slot);
  free(s);
}

/* Where to start: the checkpoint if the slot can still give everything after it. */
static int resume_point(pg_lstream *s, const char *checkpoint, as_error *err) {
  as_node *n = s->n;
  PGresult *r = NULL;
  char *l = pg_quote_literal(s->slot);
  as_buf q = AS_BUF_INIT;
  int rc = l && as_buf_printf(&q, "SELECT coalesce(confirmed_flush_lsn::text, ''), "
                                  "coalesce(wal_status, '') FROM pg_replication_slots WHERE "
                                  "slot_name = %s", l) == AS_OK
               ? pg_query_simple(s->conn, as_buf_cstr(&q), "read replication slot", &r, err)
               : nomem(err);
  free(l);
  as_buf_free(&q);
  if (rc != AS_OK) return rc;
  bool exists = PQntuples(r) > 0;
  uint64_t confirmed = 0, ck = 0;
  if (exists) pg_lsn_parse(PQgetvalue(r, 0, 0), &confirmed);
  bool lost = exists && strcmp(PQgetvalue(r, 0, 1), "lost") == 0;
  PQclear(r);
  if (checkpoint && !pg_lsn_parse(checkpoint, &ck)) {
    return pg_history_lost(n, err,
                           "checkpoint \"%.60s\" of %s is not a logical-decoding position: the "
                           "node captured with triggers before (capture mode changed)",
                           checkpoint, s->consumer);
  }
  if (!exists && checkpoint) {
    return pg_history_lost(n, err,
                           "replication slot %s (stream to %s) does not exist (dropped, or the "
                           "node was uninstalled): the changes after %s are gone",
                           s->slot, s->consumer, checkpoint);
  }
  if (lost) {
    return pg_history_lost(n, err,
                           "replication slot %s (stream to %s) was invalidated: the server "
                           "removed WAL it needed (max_slot_wal_keep_size)",
                           s->slot, s->consumer);
  }
  if (checkpoint && confirmed > ck) {
    char cf[32];
    lsn_text(confirmed, cf, sizeof cf);
    return pg_history_lost(n, err,
                           "replication slot %s (stream to %s) is at %s, past the checkpoint %s "
                           "(the target's checkpoint is older than the slot: restored from a "
                           "backup?)",
                           s->slot, s->consumer, cf, checkpoint);
  }
  if (!exists) {
    /* on a plain connection, so the wait for running transactions is bounded */
    bool created = false;
    if (!s->aux) {
      char what[160];
      snprintf(what, sizeof what, "%s (reads)", s->comp);
      if ((rc = pg_connect_dsn(n->dsn, what, false, &s->aux, err)) != AS_OK) return rc;
    }
    if ((rc = pg_slot_ensure(s->aux, s->slot, &created, err)) != AS_OK) return rc;
    if (created)
      AS_LOG(AS_LOG_INFO, s->comp, "created replication slot %s for %s", s->slot, s->consumer);
  }
  if (checkpoint) {
    s->start = ck;
    s->acked = ck; /* durable at the target: the slot may release what precedes it */
    return AS_OK;
  }
  /* start at the current end (the insert position: with synchronous_commit off a commit
   * may not be written yet): nothing old replayed */
  if ((rc = pg_query_simple(s->conn, "SELECT pg_current_wal_insert_lsn()::text", "read WAL position", &r,
                            err)) != AS_OK)
    return rc;
  pg_lsn_parse(PQgetvalue(r, 0, 0), &s->start);
  PQclear(r);
  return AS_OK;
}

int pg_lstream_open(as_node *n, const char *consumer, const char *checkpoint, pg_lstream **out,
                    as_error *err) {
  int rc;
  PGresult *r = NULL;
  *out = NULL;
  pg_lstream *s = calloc(1, sizeof *s);
  if (!s || !(s->consumer = strdup(consumer ? consumer : ""))) {
    free(s);
    return nomem(err);
  }
  s->n = n;
  snprintf(s->comp, sizeof s->comp, "source:postgres:%s", n->name);
  if ((rc = pg_connect_dsn(n->dsn, s->comp, true, &s->conn, err)) != AS_OK) goto fail;
  if ((rc = pg_query_simple(s->conn, "SELECT current_database()", "read database", &r, err)) !=
      AS_OK)
    goto fail;
  s->slot = pg_slot_name(n, PQgetvalue(r, 0, 0), s->consumer);
  PQclear(r);
  r = NULL;
  if (!s->slot) {
    rc = nomem(err);
    goto fail;
  }
  char *pl = pg_quote_literal(n->pubname);
  as_buf q = AS_BUF_INIT;
  rc = pl && as_buf_printf(&q, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = %s)",
                           pl) == AS_OK
           ? pg_query_simple(s->conn, as_buf_cstr(&q), "read publication", &r, err)
           : nomem(err);
  free(pl);
  as_buf_free(&q);
  if (rc != AS_OK) goto fail;
  bool pub = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  r = NULL;
  if (!pub) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR,
                      "node %s: publication %s is missing: run install", n->name, n->pubname);
    goto fail;
  }
  if ((rc = resume_point(s, checkpoint, err)) != AS_OK) goto fail;
  s->pos = s->start;
  char p[32];
  lsn_text(s->start, p, sizeof p);
  AS_LOG(AS_LOG_DEBUG, s->comp, "stream for %s opened at %s (slot %s)", s->consumer, p, s->slot);
  *out = s;
  return AS_OK;
fail:
  PQclear(r);
  pg_lstream_close(s);
  return rc;
}

int pg_lstream_position(pg_lstream *s, char **out, as_error *err) {
  char p[32];
  lsn_text(s->pos, p, sizeof p);
  *out = strdup(p);
  return *out ? AS_OK : nomem(err);
}

/* START_REPLICATION (on the first poll, so a long snapshot does not hold an unread stream).
 * A slot still held by a connection that is going away is waited for until the deadline. */
static int start(pg_lstream *s, int64_t deadline_ms, as_error *err) {
  char p[32];
  lsn_text(s->start, p, sizeof p);
  as_buf q = AS_BUF_INIT;
  if (as_buf_printf(&q, "START_REPLICATION SLOT \"%s\" LOGICAL %s (proto_version '1', "
                        "publication_names '\"%s\"')",
                    s->slot, p, s->n->pubname) != AS_OK) {
    as_buf_free(&q);
    return nomem(err);
  }
  int rc = AS_OK;
  for (;;) {
    PGresult *r = PQexec(s->conn, as_buf_cstr(&q));
    if (r && PQresultStatus(r) == PGRES_COPY_BOTH) {
      PQclear(r);
      s->started = true;
      s->last_status_us = now_us();
      break;
    }
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    bool busy = st && strcmp(st, "55006") == 0; /* slot active for another process */
    if (busy && mono_ms() < deadline_ms) {
      PQclear(r);
      usleep(20000);
      continue;
    }
    rc = pg_fail(s->conn, r, "start replication", err);
    if (busy) rc = AS_RETRY;
    if (st && strcmp(st, "42704") == 0) {
      rc = pg_history_lost(s->n, err, "replication slot %s (stream to %s) does not exist",
                           s->slot, s->consumer);
    } else if (st && strcmp(st, "55000") == 0 && strstr(err->message, "can no longer get changes")) {
      rc = pg_history_lost(s->n, err, "replication slot %s (stream to %s) was invalidated",
                           s->slot, s->consumer);
    }
    PQclear(r);
    break;
  }
  as_buf_free(&q);
  return rc;
}

/* One CopyData message of the replication stream. */
static int on_copydata(pg_lstream *s, const char *buf, int len, as_batch *out, bool *committed,
                       as_error *err) {
  cur c = {.p = (const uint8_t *)buf, .n = (size_t)len};
  char kind = (char)get_u8(&c);
  *committed = false;
  if (kind == 'k') {
    uint64_t end = get_be(&c, 8);
    get_be(&c, 8);
    bool reply = get_u8(&c) != 0;
    if (end > s->received) s->received = end;
    /* everything decoded up to `end` has been sent: between transactions, resuming there
     * loses nothing */
    if (!s->in_txn && end > s->pos) s->pos = end;
    return reply ? send_status(s, false, err) : AS_OK;
  }
  if (kind != 'w') return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "unexpected replication message '%c'", kind);
  uint64_t at = get_be(&c, 8);
  get_be(&c, 8); /* WAL end */
  get_be(&c, 8); /* send time */
  if (c.bad) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "malformed XLogData");
  if (at > s->received) s->received = at;
  return on_message(s, &c, out, committed, err);
}

/* Waits for the socket to be readable until deadline; sends a status update when due. */
static int wait_input(pg_lstream *s, int64_t deadline_ms, as_error *err) {
  if (now_us() - s->last_status_us >= STATUS_EVERY_US) {
    int rc = send_status(s, false, err);
    if (rc != AS_OK) return rc;
  }
  int64_t left = deadline_ms - mono_ms();
  if (left <= 0) return AS_OK;
  int sock = PQsocket(s->conn);
  if (sock < 0) return pg_fail(s->conn, NULL, "wait for changes", err);
  fd_set fds;
  FD_ZERO(&fds);
  FD_SET(sock, &fds);
  struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
  int sr = select(sock + 1, &fds, NULL, NULL, &tv);
  if (sr < 0 && errno != EINTR) {
    return as_error_set(err, AS_DOM_POSTGRES, AS_RETRY, "wait for changes: %s", strerror(errno));
  }
  if (sr > 0 && !PQconsumeInput(s->conn)) return pg_fail(s->conn, NULL, "wait for changes", err);
  return AS_OK;
}

int pg_lstream_poll(pg_lstream *s, as_batch *out, size_t max, int wait_ms, as_error *err) {
  int rc = AS_OK;
  int64_t deadline = mono_ms() + (wait_ms > 0 ? wait_ms : 0);
  if (max == 0) max = 1;
  if (PQstatus(s->conn) != CONNECTION_OK) return pg_fail(s->conn, NULL, "poll", err);
  if (!s->started && (rc = start(s, deadline, err)) != AS_OK) return rc;
  if (now_us() - s->last_status_us >= STATUS_EVERY_US && (rc = send_status(s, false, err)) != AS_OK)
    return rc;
  size_t base = out->n, xbase = out->ndead;
  /* t0/x0: where the transaction being decoded starts in out; the unfinished transaction
   * handed back last time comes first */
  size_t t0 = out->n, x0 = out->ndead;
  if (move_tail(&s->carry, 0, 0, out) != AS_OK) return nomem(err);
  bool partial = false; /* out ends inside a transaction that alone fills the batch */
  for (;;) {
    char *buf = NULL;
    int len = PQgetCopyData(s->conn, &buf, 1);
    if (len > 0) {
      bool committed = false;
      rc = on_copydata(s, buf, len, out, &committed, err);
      PQfreemem(buf);
      if (rc != AS_OK) break;
      if (committed) {
        t0 = out->n;
        x0 = out->ndead;
      }
      if (out->n - base < max) continue;
      if (!s->in_txn) break;
      if (t0 == base) partial = true; /* whole transactions first, unless one alone is more */
      break;
    }
    if (len == -2) {
      rc = pg_fail(s->conn, NULL, "read replication stream", err);
      break;
    }
    if (len == -1) {
      PGresult *r = PQgetResult(s->conn);
      rc = pg_fail(s->conn, r, "replication stream ended", err);
      if (rc == AS_ERR) rc = AS_RETRY;
      PQclear(r);
      break;
    }
    /* nothing buffered: return complete transactions in hand at once, else wait */
    if (!s->in_txn && (out->n > base || out->ndead > xbase)) break;
    if (mono_ms() >= deadline) break;
    if ((rc = wait_input(s, deadline, err)) != AS_OK) break;
  }
  if (rc != AS_OK) return rc;
  /* an unfinished transaction waits for the next poll, unless it alone fills the batch */
  if (s->in_txn && !partial && move_tail(out, t0, x0, &s->carry) != AS_OK) return nomem(err);
  char p[32];
  lsn_text(partial ? s->final_lsn : s->pos, p, sizeof p);
  free(out->pos);
  out->pos = strdup(p);
  return out->pos ? AS_OK : nomem(err);
}

int pg_lstream_ack(pg_lstream *s, const char *pos, as_error *err) {
  uint64_t lsn;
  if (!pg_lsn_parse(pos, &lsn)) {
    return as_error_set(err, AS_DOM_POSTGRES, AS_EINVAL, "not a logical-decoding position: \"%.60s\"", pos);
  }
  if (lsn <= s->acked) return AS_OK;
  s->acked = lsn;
  if (!s->started) return AS_OK; /* reported with the first status update */
  return send_status(s, false, err);
}

/* ------------------------------------------------------------------ test entry */

int pg_logical_decode(as_node *n, const char *consumer, const uint8_t *const *msg,
                      const size_t *len, size_t nmsg, as_batch *out, as_error *err) {
  pg_lstream *s = calloc(1, sizeof *s);
  if (!s || !(s->consumer = strdup(consumer ? consumer : ""))) {
    free(s);
    return nomem(err);
  }
  s->n = n;
  s->offline = true;
  snprintf(s->comp, sizeof s->comp, "source:postgres:%s", n->name);
  int rc = AS_OK;
  for (size_t i = 0; i < nmsg && rc == AS_OK; i++) {
    cur c = {.p = msg[i], .n = len[i]};
    bool committed = false;
    rc = on_message(s, &c, out, &committed, err);
  }
  pg_lstream_close(s);
  return rc;
}
