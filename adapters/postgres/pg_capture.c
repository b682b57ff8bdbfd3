/* pg_capture.c — PostgreSQL source side: changelog streams (snapshot windows, LISTEN/NOTIFY),
 * acknowledgements and purge, and the initial snapshot (keyset pagination).
 *
 * Position text: "v2|<prev snapshot>|<cur snapshot>|<last seq>|<element>" where the snapshots are
 * pg_snapshot text ("xmin:xmax:xip,..."). The window (prev, cur] holds the changelog rows of
 * transactions visible in cur and not in prev; they are read in seq order after <last seq>.
 * When a window is drained, prev := cur, cur := pg_current_snapshot(), last := (lowest seq in
 * the new window) - 1, or INT64_MAX when the new window is empty. A
 * transaction that took a lower seq but committed later is invisible in the snapshot of the
 * window that emitted the higher seq, so it falls into a later window: nothing is skipped. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/time.h>
#include <time.h>

#include <jansson.h>

#include "as_log.h"
#include "as_time.h"
#include "pg_internal.h"
#include "pg_sql.h"

#define PG_SQL_LOCK_CONSUMERS "SELECT pg_advisory_xact_lock(7231946502)"

/* What the stream knows of a mapped table: attnums (for the changed-columns mask) and the
 * value query (current row by key, key texts normalised in this session). */
struct tmeta {
  bool loaded;
  int *attnum;  /* per schema column */
  char *sql;    /* $1: JSON array of changelog key objects */
};
typedef struct tmeta tmeta;

/* A stream: trigger capture (changelog windows) or, when `logical` is set, logical decoding
 * (pg_logical.c) behind the same callbacks. */
struct as_stream {
  as_node *n;
  pg_lstream *logical;
  char *consumer;
  PGconn *conn;
  char *prev;
  char *cur;
  long long last;     /* changelog row seq and element read last */
  long long lasti;
  tmeta *meta;       /* per mapped table, loaded on first use */
  char *ack_pos;     /* trigger capture: the acknowledged position and its previous */
  char *ack_prev;    /* snapshot, written when pace says so (pg_ack) */
  as_ack_pace pace;
  char comp[128];
};

struct as_snapshot {
  as_node *n;
  pg_table *t;
  PGconn *conn;
  char **after;      /* key texts (PostgreSQL output form) of the last row returned */
  bool has_after;
  bool done;
  int64_t estimate;
  char *sql_first;
  char *sql_next;
};

/* ------------------------------------------------------------------ positions */

/* "v2|prev|cur|seq|element": everything up to element `element` of changelog row `seq` is
 * read. ("v1|prev|cur|seq", written before rows held several keys, is row `seq` done.) */
static char *pos_format(const char *prev, const char *cur, long long last, long long lasti) {
  as_buf b = AS_BUF_INIT;
  if (as_buf_printf(&b, "v2|%s|%s|%lld|%lld", prev, cur, last, lasti) != AS_OK) {
    as_buf_free(&b);
    return NULL;
  }
  return as_buf_steal(&b);
}

static bool snapshot_text_ok(const char *s, size_t n) {
  if (n == 0) return false;
  int colons = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == ':') colons++;
    else if (!(c >= '0' && c <= '9') && c != ',') return false;
  }
  return colons == 2;
}

static int pos_parse(const char *pos, char **prev, char **cur, long long *last,
                     long long *lasti, as_error *err) {
  *prev = *cur = NULL;
  const char *a, *b, *c;
  bool v2 = pos && strncmp(pos, "v2|", 3) == 0;
  if (!pos || (!v2 && strncmp(pos, "v1|", 3) != 0)) goto bad;
  a = pos + 3;
  b = strchr(a, '|');
  if (!b) goto bad;
  c = strchr(b + 1, '|');
  if (!c) goto bad;
  if (!snapshot_text_ok(a, (size_t)(b - a)) || !snapshot_text_ok(b + 1, (size_t)(c - b - 1)))
    goto bad;
  char *end;
  errno = 0;
  *last = strtoll(c + 1, &end, 10);
  if (end == c + 1 || errno) goto bad;
  *lasti = INT64_MAX;
  if (v2) {
    if (*end != '|') goto bad;
    const char *d = end + 1;
    *lasti = strtoll(d, &end, 10);
    if (end == d || errno) goto bad;
  }
  if (*end) goto bad;
  *prev = strndup(a, (size_t)(b - a));
  *cur = strndup(b + 1, (size_t)(c - b - 1));
  if (!*prev || !*cur) {
    free(*prev);
    free(*cur);
    *prev = *cur = NULL;
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  }
  return AS_OK;
bad:
  return as_error_set(err, AS_DOM_POSTGRES, AS_EINVAL,
                      "not a PostgreSQL changelog position: \"%.80s\"", pos ? pos : "(null)");
}

/* ------------------------------------------------------------------ streams */

static int current_snapshot(PGconn *c, char **out, as_error *err) {
  PGresult *r = NULL;
  int rc = pg_query(c, PG_SQL_CURRENT_SNAPSHOT, 0, NULL, "read snapshot", &r, err);
  if (rc != AS_OK) return rc;
  *out = strdup(PQgetvalue(r, 0, 0));
  PQclear(r);
  return *out ? AS_OK : as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
}

/* Records the consumer's position (and the purge horizon it implies). */
static int consumer_set(as_stream *s, const char *pos, const char *prev, as_error *err) {
  const char *p[3] = {s->consumer, pos, prev};
  int rc = pg_exec(s->conn, PG_SQL_BEGIN, "consumer", err);
  if (rc != AS_OK) return rc;
  if ((rc = pg_exec(s->conn, PG_SQL_LOCK_CONSUMERS, "consumer lock", err)) == AS_OK &&
      (rc = pg_query(s->conn, PG_SQL_CONSUMER_SET, 3, p, "record consumer position", NULL,
                     err)) == AS_OK)
    rc = pg_exec(s->conn, PG_SQL_COMMIT, "consumer commit", err);
  if (rc != AS_OK) {
    PGresult *r = PQexec(s->conn, PG_SQL_ROLLBACK);
    PQclear(r);
  }
  return rc;
}

static void tmeta_free(tmeta *m, size_t n);

void pg_close_stream(as_stream *s) {
  if (!s) return;
  pg_lstream_close(s->logical);
  tmeta_free(s->meta, s->n ? s->n->ntables : 0);
  if (s->conn) PQfinish(s->conn);
  free(s->consumer);
  free(s->prev);
  free(s->cur);
  free(s->ack_pos);
  free(s->ack_prev);
  free(s);
}

int pg_open_stream(as_node *n, const char *consumer, const char *checkpoint, as_stream **out,
                   as_error *err) {
  int rc = AS_ERR;
  char *pos = NULL;
  *out = NULL;
  as_stream *s = calloc(1, sizeof *s);
  if (!s || !(s->consumer = strdup(consumer ? consumer : ""))) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    goto cleanup;
  }
  s->n = n;
  s->pace.interval_us = n->purge_interval_us;
  snprintf(s->comp, sizeof s->comp, "source:postgres:%s", n->name);
  if (n->capture == PG_CAPTURE_AUTO) {
    /* not connected yet: decide on the stream's own connection */
    PGconn *c = NULL;
    if ((rc = pg_connect_dsn(n->dsn, s->comp, false, &c, err)) != AS_OK) goto cleanup;
    rc = pg_decide_capture(n, c, err);
    PQfinish(c);
    if (rc != AS_OK) goto cleanup;
  }
  if (n->capture == PG_CAPTURE_LOGICAL) {
    if ((rc = pg_lstream_open(n, consumer, checkpoint, &s->logical, err)) != AS_OK) goto cleanup;
    *out = s;
    return AS_OK;
  }
  if (!(s->meta = calloc(n->ntables ? n->ntables : 1, sizeof *s->meta))) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    goto cleanup;
  }
  if (checkpoint && checkpoint[0] != 'v' && strchr(checkpoint, '/')) {
    rc = pg_history_lost(n, err,
                         "checkpoint %s of %s is a logical-decoding position, the node captures "
                         "with triggers now (capture mode changed)",
                         checkpoint, s->consumer);
    goto cleanup;
  }
  if (checkpoint) {
    if ((rc = pos_parse(checkpoint, &s->prev, &s->cur, &s->last, &s->lasti, err)) != AS_OK)
      goto cleanup;
  }
  if ((rc = pg_connect_dsn(n->dsn, s->comp, false, &s->conn, err)) != AS_OK) goto cleanup;
  if ((rc = pg_exec(s->conn, PG_SQL_LISTEN, "listen", err)) != AS_OK) goto cleanup;
  if (!checkpoint) {
    /* Start at the current end: the snapshot is taken under the consumer lock, so a
     * concurrent purge cannot remove rows this consumer still needs. */
    if ((rc = pg_exec(s->conn, PG_SQL_BEGIN, "open stream", err)) != AS_OK) goto cleanup;
    if ((rc = pg_exec(s->conn, PG_SQL_LOCK_CONSUMERS, "open stream", err)) != AS_OK ||
        (rc = current_snapshot(s->conn, &s->cur, err)) != AS_OK) {
      PGresult *r = PQexec(s->conn, PG_SQL_ROLLBACK);
      PQclear(r);
      goto cleanup;
    }
    s->prev = strdup(s->cur);
    s->last = s->lasti = INT64_MAX; /* prev == cur: the window is empty */
    pos = s->prev ? pos_format(s->prev, s->cur, s->last, s->lasti) : NULL;
    const char *p[3] = {s->consumer, pos, s->prev};
    if (!pos) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    } else if ((rc = pg_query(s->conn, PG_SQL_CONSUMER_SET, 3, p, "record consumer position",
                              NULL, err)) == AS_OK) {
      rc = pg_exec(s->conn, PG_SQL_COMMIT, "open stream", err);
    }
    if (rc != AS_OK) {
      PGresult *r = PQexec(s->conn, PG_SQL_ROLLBACK);
      PQclear(r);
      goto cleanup;
    }
  } else {
    if (!(pos = pos_format(s->prev, s->cur, s->last, s->lasti))) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      goto cleanup;
    }
    if ((rc = consumer_set(s, pos, s->prev, err)) != AS_OK) goto cleanup;
  }
  AS_LOG(AS_LOG_DEBUG, s->comp, "stream for %s opened at %s", s->consumer, pos);
  *out = s;
  s = NULL;
  rc = AS_OK;
cleanup:
  free(pos);
  pg_close_stream(s);
  return rc;
}

int pg_stream_position(as_stream *s, char **out, as_error *err) {
  if (s->logical) return pg_lstream_position(s->logical, out, err);
  *out = pos_format(s->prev, s->cur, s->last, s->lasti);
  return *out ? AS_OK : as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
}

/* ------------------------------------------------------------------ changelog pages */


static void tmeta_free(tmeta *m, size_t n) {
  for (size_t i = 0; m && i < n; i++) {
    free(m[i].attnum);
    free(m[i].sql);
  }
  free(m);
}

static int tmeta_load(as_stream *s, size_t ti, as_error *err) {
  pg_table *t = &s->n->tables[ti];
  tmeta *m = &s->meta[ti];
  const as_schema *sc = t->s;
  PGresult *r = NULL;
  as_buf b = AS_BUF_INIT;
  const char *p[1] = {t->qname};
  int rc = pg_query(s->conn, PG_SQL_COLUMNS, 1, p, "read table columns", &r, err);
  if (rc != AS_OK) {
    as_error_prefix(err, "table %s", t->qname);
    return rc;
  }
  free(m->attnum);
  m->attnum = calloc(sc->ncols ? sc->ncols : 1, sizeof *m->attnum);
  if (!m->attnum || as_buf_append_str(&b, "SELECT x.i") != AS_OK) goto nomem;
  const char **ktype = calloc(sc->ncols ? sc->ncols : 1, sizeof *ktype);
  if (!ktype) goto nomem;
  for (size_t c = 0; c < sc->ntable; c++) {
    int row = -1;
    for (int j = 0; j < PQntuples(r); j++) {
      if (strcmp(PQgetvalue(r, j, 0), sc->cols[c].name) == 0) row = j;
    }
    if (row < 0) {
      free(ktype);
      PQclear(r);
      as_buf_free(&b);
      return as_error_set(err, AS_DOM_POSTGRES, AS_ERR,
                          "table %s: mapped column \"%s\" (mapping %s) is gone: restore it or "
                          "change the mapping and run install",
                          t->qname, sc->cols[c].name, sc->name);
    }
    m->attnum[c] = atoi(PQgetvalue(r, row, 4));
    ktype[c] = PQgetvalue(r, row, 5);
  }
  /* key texts, then every column, then "found" */
  for (size_t k = 0; k < sc->nkey; k++) {
    size_t c = sc->key_idx[k];
    char *lit = pg_quote_literal(sc->cols[c].name);
    if (!lit || as_buf_printf(&b, ", ((x.j->>%s)::%s)::text", lit, ktype[c]) != AS_OK) {
      free(lit);
      free(ktype);
      goto nomem;
    }
    free(lit);
  }
  if (as_buf_append_str(&b, ", ") != AS_OK || pg_select_list(t, "t", &b) != AS_OK ||
      as_buf_printf(&b, ", t.ctid IS NOT NULL FROM jsonb_array_elements($1::jsonb) WITH "
                        "ORDINALITY x(j, i) LEFT JOIN %s t ON ",
                    t->qname) != AS_OK) {
    free(ktype);
    goto nomem;
  }
  for (size_t k = 0; k < sc->nkey; k++) {
    size_t c = sc->key_idx[k];
    char *lit = pg_quote_literal(sc->cols[c].name);
    if (!lit || as_buf_printf(&b, "%st.%s = (x.j->>%s)::%s", k ? " AND " : "", t->qcols[c], lit,
                              ktype[c]) != AS_OK) {
      free(lit);
      free(ktype);
      goto nomem;
    }
    free(lit);
  }
  free(ktype);
  if (as_buf_append_str(&b, " ORDER BY x.i") != AS_OK) goto nomem;
  free(m->sql);
  m->sql = as_buf_steal(&b);
  m->loaded = true;
  PQclear(r);
  return AS_OK;
nomem:
  PQclear(r);
  as_buf_free(&b);
  return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
}

/* Window query columns. */
enum { W_SEQ, W_TXID, W_TBL, W_OP, W_KEY, W_OLD, W_NEW, W_ORIGIN, W_TS, W_COLS, W_IDX };

/* One changelog row of a page and where its values are. */
typedef struct crow {
  int table;  /* index into n->tables, -1 unmapped */
  int vrow;   /* row in the table's value result, -1 none */
  bool skip;  /* echo whose origin is the consumer, or another schema's table: left out */
  bool exact; /* the row carries its values (pg_table_exact): none read */
} crow;

/* Whether changelog row i carries its values (arrays of texts in new/old: pg_table_exact's
 * triggers; version-1 rows had objects there). */
static bool exact_row(PGresult *r, int i) {
  return (!PQgetisnull(r, i, W_NEW) && PQgetvalue(r, i, W_NEW)[0] == '[') ||
         (!PQgetisnull(r, i, W_OLD) && PQgetvalue(r, i, W_OLD)[0] == '[');
}

/* An exact row's values (an array of texts in the mapped columns' order) as {column: text}. */
static json_t *named_values(const pg_table *t, json_t *arr) {
  if (!t || !json_is_array(arr)) return NULL;
  json_t *o = json_object();
  for (size_t c = 0; o && c < t->s->ntable && c < json_array_size(arr); c++)
    json_object_set(o, t->s->cols[c].name, json_array_get(arr, c));
  return o;
}

/* The raw changelog row as JSON (dead letters), with "new": {column: text} of the row (as
 * the changelog carries it, or read from the table when there is one): what `dlq retry`
 * decodes (as_adapter_decode_row_json). */
static char *raw_row(PGresult *r, int i, const pg_table *t, const PGresult *v, int vr) {
  static const char *const names[] = {"seq", "txid", "tbl", "op",   "key",    "old",
                                      "new", "origin", "ts", "cols", "element"};
  json_t *o = json_object();
  for (int c = 0; o && c <= W_IDX; c++) {
    json_t *jv;
    if (PQgetisnull(r, i, c)) {
      jv = json_null();
    } else if (c == W_KEY || c == W_OLD || c == W_NEW) {
      jv = json_loads(PQgetvalue(r, i, c), JSON_DECODE_ANY, NULL);
      if (!jv) jv = json_string(PQgetvalue(r, i, c));
      json_t *named = c == W_KEY ? NULL : named_values(t, jv);
      if (named) {
        json_decref(jv);
        jv = named;
      }
    } else {
      jv = json_string(PQgetvalue(r, i, c));
    }
    json_object_set_new(o, names[c], jv);
  }
  int found = t && v && vr >= 0 ? 1 + (int)(t->s->nkey + t->s->ntable) : -1;
  if (o && found >= 0 && strcmp(PQgetvalue(v, vr, found), "t") == 0) {
    json_t *nw = json_object();
    for (size_t c = 0; nw && c < t->s->ntable; c++) {
      int col = 1 + (int)t->s->nkey + (int)c;
      json_object_set_new(nw, t->s->cols[c].name,
                          PQgetisnull(v, vr, col) ? json_null() : json_string(PQgetvalue(v, vr, col)));
    }
    json_object_set_new(o, "new", nw);
  }
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return s;
}

/* Is non-key column c reported changed by changelog row i? Version-2 rows carry a mask of
 * attnum bits; version-1 rows (written by older triggers) the old and new values. */
static bool col_changed(const tmeta *m, const as_schema *sc, size_t c, PGresult *r, int i) {
  if (!PQgetisnull(r, i, W_COLS)) {
    uint64_t mask = (uint64_t)strtoll(PQgetvalue(r, i, W_COLS), NULL, 10);
    return (mask & pg_mask_bit(m->attnum[c])) != 0;
  }
  if (PQgetisnull(r, i, W_OLD) || PQgetisnull(r, i, W_NEW)) return true;
  json_t *o = json_loads(PQgetvalue(r, i, W_OLD), 0, NULL);
  json_t *nw = json_loads(PQgetvalue(r, i, W_NEW), 0, NULL);
  const json_t *a = json_object_get(o, sc->cols[c].name), *b = json_object_get(nw, sc->cols[c].name);
  bool changed = !(a && b && json_equal(a, b));
  json_decref(o);
  json_decref(nw);
  return changed;
}

/* Fills d's row from value result v row vr: the key (from the key texts) and, for I/U, the
 * columns. AS_EDATA (err set) for an unparsable value. */
static int fill_row(as_stream *s, size_t ti, const PGresult *v, int vr, PGresult *r, int i,
                    as_delta *d, as_error *err) {
  pg_table *t = &s->n->tables[ti];
  const as_schema *sc = t->s;
  int first = 1 + (int)sc->nkey;
  for (size_t k = 0; k < sc->nkey; k++) {
    size_t c = sc->key_idx[k];
    as_value val = AS_VALUE_NULL;
    int rc = pg_value_from_text(sc->cols[c].type, PQgetvalue(v, vr, 1 + (int)k),
                                (size_t)PQgetlength(v, vr, 1 + (int)k), &val, err);
    if (rc != AS_OK) {
      as_error_prefix(err, "mapping %s: key column \"%s\"", sc->name, sc->cols[c].name);
      return rc == AS_ERR ? AS_ERR : AS_EDATA;
    }
    as_row_put(&d->row, c, &val);
  }
  if (d->op == AS_OP_DELETE) return AS_OK;
  /* an update also carries the whole row as read (its image: what it writes if it brings
   * back a row deleted elsewhere) */
  bool image = d->op == AS_OP_UPDATE && as_row_init(&d->image, sc->ncols) == AS_OK;
  for (size_t k = 0; image && k < sc->nkey; k++) {
    as_value kv;
    if (as_value_copy(&kv, &d->row.v[sc->key_idx[k]]) != AS_OK) return AS_ERR;
    as_row_put(&d->image, sc->key_idx[k], &kv);
  }
  for (size_t c = 0; c < sc->ntable; c++) {
    if (sc->cols[c].is_key) continue;
    bool changed = d->op != AS_OP_UPDATE || col_changed(&s->meta[ti], sc, c, r, i);
    if (!changed && !image) continue;
    as_value val = AS_VALUE_NULL;
    int col = first + (int)c;
    if (!PQgetisnull(v, vr, col)) {
      int rc = pg_value_from_text(sc->cols[c].type, PQgetvalue(v, vr, col),
                                  (size_t)PQgetlength(v, vr, col), &val, err);
      if (rc != AS_OK) {
        as_error_prefix(err, "mapping %s: column \"%s\"", sc->name, sc->cols[c].name);
        return rc == AS_ERR ? AS_ERR : AS_EDATA;
      }
    }
    if (image) {
      as_value copy;
      if (as_value_copy(&copy, &val) != AS_OK) {
        as_value_clear(&val);
        return AS_ERR;
      }
      as_row_put(&d->image, c, &copy);
    }
    if (changed) as_row_put(&d->row, c, &val);
    else as_value_clear(&val);
  }
  return AS_OK;
}

/* Fills d's row from the values changelog row i carries (exact tables): the key and, for an
 * insert every column, for an update the changed ones with the whole new row as its image
 * (and the old row as `before` for a script's ctx.base). */
static int fill_exact(as_stream *s, size_t ti, PGresult *r, int i, as_delta *d, as_error *err) {
  const as_schema *sc = s->n->tables[ti].s;
  int col = d->op == AS_OP_DELETE ? W_OLD : W_NEW;
  json_t *img = PQgetisnull(r, i, col) ? NULL : json_loads(PQgetvalue(r, i, col), 0, NULL);
  as_row full = {0};
  int rc = as_row_init(&full, sc->ncols) == AS_OK ? AS_OK
                                                  : as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  if (rc == AS_OK) rc = pg_texts_to_row(sc, img, NULL, sc->ntable, &full, err);
  if (rc == AS_OK && d->op == AS_OP_UPDATE && as_schema_keeps_before(sc) && !PQgetisnull(r, i, W_OLD)) {
    json_t *old = json_loads(PQgetvalue(r, i, W_OLD), 0, NULL);
    rc = as_row_init(&d->before, sc->ncols) == AS_OK
             ? pg_texts_to_row(sc, old, NULL, sc->ntable, &d->before, err)
             : as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    json_decref(old);
  }
  for (size_t c = 0; rc == AS_OK && c < sc->ntable; c++) {
    bool want = sc->cols[c].is_key || d->op == AS_OP_INSERT ||
                (d->op == AS_OP_UPDATE && col_changed(&s->meta[ti], sc, c, r, i));
    as_value v;
    if (want) {
      if (as_value_copy(&v, &full.v[c]) != AS_OK) rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      else as_row_put(&d->row, c, &v);
    }
  }
  if (rc == AS_OK && d->op == AS_OP_UPDATE) {
    as_row_clear(&d->image);
    d->image = full; /* the row as the change left it */
    memset(&full, 0, sizeof full);
  }
  as_row_clear(&full);
  json_decref(img);
  if (rc == AS_EDATA) as_error_prefix(err, "mapping %s", sc->name);
  return rc;
}

/* Converts changelog row i into a delta appended to out (or nothing: *skipped). AS_EDATA (err
 * set) for an unconvertible row, AS_ERR for a truncate the mapping refuses. */
static int row_to_delta(as_stream *s, PGresult *r, int i, const crow *cr, PGresult **vals,
                        const char *pos, as_batch *out, bool *skipped, as_error *err) {
  *skipped = false;
  const char *op = PQgetvalue(r, i, W_OP);
  if (cr->table < 0) {
    return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "table \"%s\" is not mapped on node %s",
                        PQgetvalue(r, i, W_TBL), s->n->name);
  }
  pg_table *t = &s->n->tables[cr->table];
  as_op dop = op[0] == 'I' ? AS_OP_INSERT : op[0] == 'U' ? AS_OP_UPDATE
              : op[0] == 'D' ? AS_OP_DELETE : op[0] == 'T' ? AS_OP_TRUNCATE : 0;
  if (!dop) return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "unknown changelog op \"%s\"", op);
  if (dop == AS_OP_TRUNCATE) {
    char where[64];
    bool emit = false;
    snprintf(where, sizeof where, "changelog seq %s", PQgetvalue(r, i, W_SEQ));
    int rc = pg_on_truncate(s->n, t, where, &emit, err);
    if (rc != AS_OK || !emit) {
      *skipped = rc == AS_OK;
      return rc;
    }
  } else if (!cr->exact &&
             (cr->vrow < 0 ||
              (dop != AS_OP_DELETE &&
               strcmp(PQgetvalue(vals[cr->table], cr->vrow, 1 + (int)(t->s->nkey + t->s->ntable)),
                      "t") != 0))) {
    *skipped = true; /* the row is gone: a later change of the changelog says so */
    return AS_OK;
  }
  as_delta *d = as_batch_push(out);
  if (!d || as_delta_init(d, t->s, dop) != AS_OK) {
    if (d) out->n--;
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  }
  if (cr->exact && !s->meta[cr->table].loaded && dop == AS_OP_UPDATE) {
    int mr = tmeta_load(s, (size_t)cr->table, err); /* the attnums of the changed-columns mask */
    if (mr != AS_OK) {
      as_delta_clear(d);
      out->n--;
      return mr;
    }
  }
  int rc = dop == AS_OP_TRUNCATE ? AS_OK
           : cr->exact           ? fill_exact(s, (size_t)cr->table, r, i, d, err)
                                 : fill_row(s, (size_t)cr->table, vals[cr->table], cr->vrow, r, i, d, err);
  size_t present = 0;
  for (size_t c = 0; rc == AS_OK && c < t->s->ncols; c++) present += as_row_has(&d->row, c) && !t->s->cols[c].is_key;
  if (rc == AS_OK && dop == AS_OP_UPDATE && present == 0) {
    *skipped = true; /* no mapped column of this mapping changed */
    goto drop;
  }
  const char *origin = PQgetisnull(r, i, W_ORIGIN) ? NULL : PQgetvalue(r, i, W_ORIGIN);
  d->echo = origin != NULL;
  if (rc == AS_OK && (as_delta_set_origin(d, origin ? origin : s->n->name) != AS_OK ||
                      as_delta_set_pos(d, pos) != AS_OK ||
                      as_delta_set_txn(d, PQgetvalue(r, i, W_TXID)) != AS_OK))
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  if (rc != AS_OK) goto drop;
  d->ts_us = strtoll(PQgetvalue(r, i, W_TS), NULL, 10);
  d->hlc = AS_HLC_FROM_US(d->ts_us);
  return AS_OK;
drop:
  as_delta_clear(d);
  out->n--;
  return rc;
}

/* Classifies the page's rows and reads the current values of every mapped table it touches
 * (one query per table). vals[table] gets the result (or NULL). */
static int page_values(as_stream *s, PGresult *r, crow *cr, PGresult **vals, as_error *err) {
  int rc = AS_OK;
  int nr = PQntuples(r);
  as_buf *keys = calloc(s->n->ntables ? s->n->ntables : 1, sizeof *keys);
  int *count = calloc(s->n->ntables ? s->n->ntables : 1, sizeof *count);
  if (!keys || !count) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    goto cleanup;
  }
  for (int i = 0; i < nr; i++) {
    pg_table *t = pg_table_by_name(s->n, PQgetvalue(r, i, W_TBL));
    cr[i].table = t ? (int)(t - s->n->tables) : -1;
    cr[i].vrow = -1;
    /* A write the connector made for the consumer's own change never goes back to it (a
     * delta never returns to its origin): skip it without reading it. */
    cr[i].skip = !PQgetisnull(r, i, W_ORIGIN) && s->consumer &&
                 strcmp(PQgetvalue(r, i, W_ORIGIN), s->consumer) == 0;
    /* the changelog is the database's: a table of another schema is another node's */
    cr[i].skip |= !t && !pg_name_in_schema(s->n, PQgetvalue(r, i, W_TBL));
    cr[i].exact = t && exact_row(r, i);
    if (!t || cr[i].skip || cr[i].exact || PQgetvalue(r, i, W_OP)[0] == 'T') continue;
    as_buf *b = &keys[cr[i].table];
    if (as_buf_append_str(b, b->len ? "," : "[") != AS_OK ||
        as_buf_append_str(b, PQgetvalue(r, i, W_KEY)) != AS_OK) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      goto cleanup;
    }
    cr[i].vrow = count[cr[i].table]++;
  }
  for (size_t ti = 0; ti < s->n->ntables; ti++) {
    if (!keys[ti].len) continue;
    if (!s->meta[ti].loaded && (rc = tmeta_load(s, ti, err)) != AS_OK) goto cleanup;
    if (as_buf_putc(&keys[ti], ']') != AS_OK) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      goto cleanup;
    }
    const char *p[1] = {as_buf_cstr(&keys[ti])};
    rc = pg_query(s->conn, s->meta[ti].sql, 1, p, "read changed rows", &vals[ti], err);
    if (rc != AS_OK) {
      as_error_prefix(err, "table %s", s->n->tables[ti].qname);
      goto cleanup;
    }
    if (PQntuples(vals[ti]) != count[ti]) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "table %s: %d keys read back as %d rows",
                        s->n->tables[ti].qname, count[ti], PQntuples(vals[ti]));
      goto cleanup;
    }
  }
cleanup:
  for (size_t ti = 0; keys && ti < s->n->ntables; ti++) as_buf_free(&keys[ti]);
  free(keys);
  free(count);
  return rc;
}

/* Key column c's text in the changelog's key object (jsonb: {"id": "x", "n": 5}). */
typedef struct key_obj {
  const as_schema *s;
  json_t *o;
  char num[64];
} key_obj;

static const char *key_obj_text(const void *ctx, size_t c, size_t *len) {
  key_obj *k = (key_obj *)ctx;
  json_t *v = json_object_get(k->o, k->s->cols[c].name);
  if (json_is_string(v)) {
    *len = json_string_length(v);
    return json_string_value(v);
  }
  if (json_is_integer(v)) {
    *len = (size_t)snprintf(k->num, sizeof k->num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return k->num;
  }
  if (json_is_boolean(v)) {
    *len = 1;
    return json_is_true(v) ? "t" : "f";
  }
  return NULL; /* (a numeric key: the changelog's text is kept) */
}

/* The canonical key (as every key is written elsewhere: the key columns in the mapping's
 * order) of the changelog's key object; its text when that cannot be read. */
static char *changelog_key(const as_schema *s, const char *jsonb) {
  key_obj k = {.s = s, .o = s ? json_loads(jsonb, 0, NULL) : NULL};
  char *key = k.o ? pg_key_from_texts(s, key_obj_text, &k) : NULL;
  json_decref(k.o);
  return key ? key : strdup(jsonb);
}

/* Reads up to max rows of the current window; *got = rows consumed (deltas, dead, skipped). */
static int read_window(as_stream *s, as_batch *out, size_t max, size_t *got, as_error *err) {
  char last[32], lim[32], lasti[32];
  snprintf(last, sizeof last, "%lld", s->last);
  snprintf(lasti, sizeof lasti, "%lld", s->lasti);
  snprintf(lim, sizeof lim, "%zu", max);
  const char *p[5] = {s->prev, s->cur, last, lim, lasti};
  PGresult *r = NULL;
  PGresult **vals = NULL;
  crow *cr = NULL;
  *got = 0;
  int rc = pg_query(s->conn, PG_SQL_WINDOW, 5, p, "read changelog", &r, err);
  if (rc != AS_OK) return rc;
  int nr = PQntuples(r);
  vals = calloc(s->n->ntables ? s->n->ntables : 1, sizeof *vals);
  cr = calloc(nr ? (size_t)nr : 1, sizeof *cr);
  if (!vals || !cr) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    goto cleanup;
  }
  if ((rc = page_values(s, r, cr, vals, err)) != AS_OK) goto cleanup;
  for (int i = 0; i < nr; i++) {
    long long seq = strtoll(PQgetvalue(r, i, W_SEQ), NULL, 10);
    long long el = strtoll(PQgetvalue(r, i, W_IDX), NULL, 10);
    if (cr[i].skip) {
      s->last = seq;
      s->lasti = el;
      (*got)++;
      continue;
    }
    char *pos = pos_format(s->prev, s->cur, seq, el);
    if (!pos) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      break;
    }
    bool skipped = false;
    as_error e = {0};
    rc = row_to_delta(s, r, i, &cr[i], vals, pos, out, &skipped, &e);
    if (rc == AS_EDATA) {
      pg_table *t = cr[i].table >= 0 ? &s->n->tables[cr[i].table] : NULL;
      char *raw = raw_row(r, i, t, t ? vals[cr[i].table] : NULL, cr[i].vrow);
      char *key = PQgetisnull(r, i, W_KEY) ? NULL : changelog_key(t ? t->s : NULL, PQgetvalue(r, i, W_KEY));
      AS_LOG(AS_LOG_WARN, s->comp, "dead letter at seq %lld: %s", seq, e.message);
      rc = as_batch_push_dead(out, t ? t->s : NULL, key, raw, strdup(e.message), pos);
      pos = NULL;
      if (rc != AS_OK) {
        rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
        break;
      }
    } else if (rc != AS_OK) {
      *err = e;
      free(pos);
      break;
    }
    free(pos);
    s->last = seq;
    s->lasti = el;
    (*got)++;
  }
cleanup:
  for (size_t ti = 0; vals && ti < s->n->ntables; ti++) PQclear(vals[ti]);
  free(vals);
  free(cr);
  PQclear(r);
  return rc;
}

static int advance(as_stream *s, as_error *err) {
  char *snap = NULL;
  PGresult *r = NULL;
  int rc = current_snapshot(s->conn, &snap, err);
  if (rc != AS_OK) return rc;
  const char *p[2] = {s->cur, snap};
  if ((rc = pg_query(s->conn, PG_SQL_WINDOW_START, 2, p, "read changelog", &r, err)) != AS_OK) {
    free(snap);
    return rc;
  }
  free(s->prev);
  s->prev = s->cur;
  s->cur = snap;
  s->last = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  s->lasti = INT64_MAX;
  PQclear(r);
  return AS_OK;
}

/* Drains pending notifications; true if there was one. -1 on a broken connection. */
static int drain_notifies(PGconn *c) {
  if (!PQconsumeInput(c)) return -1;
  int any = 0;
  PGnotify *nt;
  while ((nt = PQnotifies(c)) != NULL) {
    any = 1;
    PQfreemem(nt);
  }
  return any;
}

static int wait_notify(as_stream *s, int wait_ms, as_error *err) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    int d = drain_notifies(s->conn);
    if (d < 0) return pg_fail(s->conn, NULL, "wait for changes", err);
    if (d > 0) return AS_OK;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long el = (t1.tv_sec - t0.tv_sec) * 1000LL + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (el >= wait_ms) return AS_OK;
    int sock = PQsocket(s->conn);
    if (sock < 0) return pg_fail(s->conn, NULL, "wait for changes", err);
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(sock, &fds);
    long long left = wait_ms - el;
    struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
    int sr = select(sock + 1, &fds, NULL, NULL, &tv);
    if (sr < 0 && errno != EINTR) {
      return as_error_set(err, AS_DOM_POSTGRES, AS_RETRY, "wait for changes: %s",
                          strerror(errno));
    }
    if (sr < 0) return AS_OK; /* a signal: let the engine look at its flags */
  }
}

/* Writes the acknowledged position (s->ack_pos) and purges what every consumer is past. */
static int ack_write(as_stream *s, as_error *err) {
  int rc = consumer_set(s, s->ack_pos, s->ack_prev, err);
  /* Purge what every consumer is past, serialised with consumers that register. */
  if (rc == AS_OK && (rc = pg_exec(s->conn, PG_SQL_BEGIN, "purge", err)) == AS_OK) {
    if ((rc = pg_exec(s->conn, PG_SQL_LOCK_CONSUMERS, "purge lock", err)) == AS_OK &&
        (rc = pg_exec(s->conn, PG_SQL_PURGE, "purge changelog", err)) == AS_OK)
      rc = pg_exec(s->conn, PG_SQL_COMMIT, "purge commit", err);
    if (rc != AS_OK) {
      PGresult *r = PQexec(s->conn, PG_SQL_ROLLBACK);
      PQclear(r);
    }
  }
  as_ack_pace_written(&s->pace, rc == AS_OK);
  return rc;
}

static int poll_tables(as_stream *s, as_batch *out, size_t max, int wait_ms, as_error *err);

/* Polls, then turns the child tables' changes into their parents' (pg_children.c). */
int pg_poll(as_stream *s, as_batch *out, size_t max, int wait_ms, as_error *err) {
  size_t from = out->n;
  int rc = poll_tables(s, out, max, wait_ms, err);
  bool children = false;
  for (size_t i = 0; i < s->n->ntables && !children; i++) children = s->n->tables[i].owner != NULL;
  /* logical decoding carries the arrays itself (child_images, pg_logical.c on_image) */
  if (rc != AS_OK || !children || out->n == from || s->logical) return rc;
  return pg_children_fold(s->n, s->conn, out, from, err);
}

static int poll_tables(as_stream *s, as_batch *out, size_t max, int wait_ms, as_error *err) {
  if (s->logical) return pg_lstream_poll(s->logical, out, max, wait_ms, err);
  int rc;
  size_t got = 0, more = 0;
  if (PQstatus(s->conn) != CONNECTION_OK) return pg_fail(s->conn, NULL, "poll", err);
  if (drain_notifies(s->conn) < 0) return pg_fail(s->conn, NULL, "poll", err);
  if (max == 0) max = 1;
  if ((rc = read_window(s, out, max, &got, err)) != AS_OK) return rc;
  if (got < max) {
    /* The window is drained: move to a new snapshot and read what committed meanwhile. */
    if ((rc = advance(s, err)) != AS_OK) return rc;
    if ((rc = read_window(s, out, max - got, &more, err)) != AS_OK) return rc;
    got += more;
    /* nothing to read: a pending acknowledged position is written when it is due (a failure
     * is the engine's "ack" debug line, and the position stays pending), else the wait ends
     * when it will be (the next poll writes it) */
    if (got == 0 && as_ack_pace_idle(&s->pace, &wait_ms)) {
      as_error aerr;
      if (ack_write(s, &aerr) != AS_OK) AS_LOG(AS_LOG_DEBUG, s->comp, "ack: %s", aerr.message);
    }
    if (got == 0 && wait_ms > 0) {
      if ((rc = wait_notify(s, wait_ms, err)) != AS_OK) return rc;
      if ((rc = advance(s, err)) != AS_OK) return rc;
      if ((rc = read_window(s, out, max, &more, err)) != AS_OK) return rc;
    }
  }
  char *pos = pos_format(s->prev, s->cur, s->last, s->lasti);
  if (!pos) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  free(out->pos);
  out->pos = pos;
  return AS_OK;
}

/* Trigger capture: the position is written at once when the last write is purge_interval
 * old (every batch with 0), else kept pending for the next ack or a waiting poll (as in the
 * SQLite adapter). Not written at close: the next open_stream registers the consumer at its
 * checkpoint, which the target keeps. */
int pg_ack(as_stream *s, const char *pos, as_error *err) {
  if (s->logical) return pg_lstream_ack(s->logical, pos, err);
  char *prev = NULL, *cur = NULL;
  long long last, lasti;
  int rc = pos_parse(pos, &prev, &cur, &last, &lasti, err); /* a bad position fails here */
  free(cur);
  char *p = rc == AS_OK ? strdup(pos) : NULL;
  if (!p) {
    free(prev);
    return rc != AS_OK ? rc : as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  }
  free(s->ack_pos);
  free(s->ack_prev);
  s->ack_pos = p;
  s->ack_prev = prev;
  return as_ack_pace_ack(&s->pace) ? ack_write(s, err) : AS_OK;
}

/* ------------------------------------------------------------------ snapshot */

void pg_snapshot_close(as_snapshot *sn) {
  if (!sn) return;
  if (sn->conn) PQfinish(sn->conn);
  if (sn->after && sn->t) {
    for (size_t k = 0; k < sn->t->s->nkey; k++) free(sn->after[k]);
  }
  free(sn->after);
  free(sn->sql_first);
  free(sn->sql_next);
  free(sn);
}

int64_t pg_snapshot_estimate(as_snapshot *sn) { return sn ? sn->estimate : -1; }

static int snapshot_sql(as_snapshot *sn, as_error *err) {
  const pg_table *t = sn->t;
  const as_schema *s = t->s;
  as_buf sel = AS_BUF_INIT, order = AS_BUF_INIT, b = AS_BUF_INIT;
  int rc = AS_ERR;
  if (pg_select_list(t, "x", &sel) != AS_OK) goto nomem;
  for (size_t k = 0; k < s->nkey; k++) {
    /* qualified: a bare name would sort by the ::text output column of the same name */
    if (as_buf_printf(&order, "%sx.%s", k ? ", " : "", t->qcols[s->key_idx[k]]) != AS_OK)
      goto nomem;
  }
  if (as_buf_printf(&b, "SELECT %s FROM %s x ORDER BY %s LIMIT $1::bigint", as_buf_cstr(&sel),
                    t->qname, as_buf_cstr(&order)) != AS_OK)
    goto nomem;
  sn->sql_first = as_buf_steal(&b);
  if (as_buf_printf(&b, "SELECT %s FROM %s x WHERE (%s) > (", as_buf_cstr(&sel), t->qname,
                    as_buf_cstr(&order)) != AS_OK)
    goto nomem;
  for (size_t k = 0; k < s->nkey; k++) {
    if (as_buf_printf(&b, "%s$%zu::%s", k ? ", " : "", k + 1,
                      pg_cast_type(s->cols[s->key_idx[k]].type)) != AS_OK)
      goto nomem;
  }
  if (as_buf_printf(&b, ") ORDER BY %s LIMIT $%zu::bigint", as_buf_cstr(&order), s->nkey + 1) !=
      AS_OK)
    goto nomem;
  sn->sql_next = as_buf_steal(&b);
  rc = AS_OK;
  goto cleanup;
nomem:
  rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
cleanup:
  as_buf_free(&sel);
  as_buf_free(&order);
  as_buf_free(&b);
  return rc;
}

int pg_snapshot_open(as_node *n, const as_schema *s, const char *after_key, as_snapshot **out,
                     as_error *err) {
  int rc = AS_ERR;
  PGresult *r = NULL;
  *out = NULL;
  as_snapshot *sn = calloc(1, sizeof *sn);
  if (!sn) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  sn->n = n;
  sn->estimate = -1;
  if (!(sn->t = pg_table_for(n, s))) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_EINVAL, "mapping %s is not on node %s", s->name,
                      n->name);
    goto cleanup;
  }
  if (!(sn->after = calloc(s->nkey, sizeof *sn->after))) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    goto cleanup;
  }
  if (after_key) {
    as_value *kv = calloc(s->nkey, sizeof *kv);
    if (!kv) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      goto cleanup;
    }
    rc = as_key_parse_values(s, after_key, kv, err);
    for (size_t k = 0; rc == AS_OK && k < s->nkey; k++) {
      rc = pg_value_to_text(&kv[k], &sn->after[k], err);
      if (rc == AS_OK && !sn->after[k]) rc = as_error_set(err, AS_DOM_POSTGRES, AS_EINVAL, "NULL key");
    }
    for (size_t k = 0; k < s->nkey; k++) as_value_clear(&kv[k]);
    free(kv);
    if (rc != AS_OK) {
      as_error_prefix(err, "mapping %s: bad snapshot resume key", s->name);
      goto cleanup;
    }
    sn->has_after = true;
  }
  if ((rc = snapshot_sql(sn, err)) != AS_OK) goto cleanup;
  char what[128];
  snprintf(what, sizeof what, "snapshot:%s", n->comp);
  if ((rc = pg_connect_dsn(n->dsn, what, false, &sn->conn, err)) != AS_OK) goto cleanup;
  const char *p[1] = {sn->t->qname};
  if (pg_query(sn->conn, PG_SQL_ESTIMATE, 1, p, "estimate", &r, err) == AS_OK && PQntuples(r))
    sn->estimate = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  *out = sn;
  sn = NULL;
  rc = AS_OK;
cleanup:
  PQclear(r);
  pg_snapshot_close(sn);
  return rc;
}

/* Column c of a snapshot result row, for pg_key_from_texts (the select list is in schema order). */
typedef struct snap_cell {
  const PGresult *r;
  int row;
} snap_cell;

static const char *snap_text(const void *ctx, size_t c, size_t *len) {
  const snap_cell *x = ctx;
  if (PQgetisnull(x->r, x->row, (int)c)) return NULL;
  *len = (size_t)PQgetlength(x->r, x->row, (int)c);
  return PQgetvalue(x->r, x->row, (int)c);
}

int pg_snapshot_next(as_snapshot *sn, as_batch *out, size_t max, as_error *err) {
  if (sn->done) return AS_EOF;
  const as_schema *s = sn->t->s;
  char lim[32];
  snprintf(lim, sizeof lim, "%zu", max ? max : 1);
  const char *params[65];
  const char **p = params;
  const char **heap = NULL;
  if (s->nkey + 1 > 65) {
    heap = calloc(s->nkey + 1, sizeof *heap);
    if (!heap) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    p = heap;
  }
  int np = 1;
  if (sn->has_after) {
    for (size_t k = 0; k < s->nkey; k++) p[k] = sn->after[k];
    p[s->nkey] = lim;
    np = (int)s->nkey + 1;
  } else {
    p[0] = lim;
  }
  PGresult *r = NULL;
  /* the page's read time: taken before the query, so every write committed before it is in
   * the page (the engine trusts what it wrote here before that time: as_batch_decide.c label) */
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t ts = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
  int rc = pg_query(sn->conn, sn->has_after ? sn->sql_next : sn->sql_first, np, p, "snapshot",
                    &r, err);
  free(heap);
  if (rc != AS_OK) return rc;
  int nr = PQntuples(r);
  size_t first = out->n;
  for (int i = 0; i < nr; i++) {
    as_delta *d = as_batch_push(out);
    if (!d || as_delta_init(d, s, AS_OP_INSERT) != AS_OK) {
      if (d) out->n--;
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      break;
    }
    as_error e = {0};
    int cr = pg_row_from_result(sn->t, r, i, 0, &d->row, &e);
    if (cr == AS_OK && (as_delta_set_origin(d, sn->n->name) != AS_OK)) cr = AS_ERR;
    d->ts_us = ts;
    d->hlc = AS_HLC_FROM_US(ts);
    if (cr != AS_OK) {
      as_delta_clear(d);
      out->n--;
      if (cr != AS_EDATA) {
        *err = e;
        rc = cr;
        break;
      }
      /* unconvertible row: dead letter with the row as JSON (texts) */
      json_t *o = json_object();
      for (size_t c = 0; o && c < s->ntable; c++) {
        json_object_set_new(o, s->cols[c].name,
                            PQgetisnull(r, i, (int)c) ? json_null()
                                                      : json_string(PQgetvalue(r, i, (int)c)));
      }
      char *raw = o ? json_dumps(o, JSON_COMPACT) : NULL;
      json_decref(o);
      snap_cell sc = {r, i};
      if (as_batch_push_dead(out, s, pg_key_from_texts(s, snap_text, &sc), raw, strdup(e.message), NULL) != AS_OK) {
        rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
        break;
      }
    }
  }
  /* the page's arrays from the child tables, one read per child table */
  if (rc == AS_OK && s->nchildren) rc = pg_children_fill_many(sn->conn, sn->n, out->d + first, out->n - first, err);
  if (rc == AS_OK && nr > 0) {
    for (size_t k = 0; k < s->nkey; k++) {
      free(sn->after[k]);
      sn->after[k] = strdup(PQgetvalue(r, nr - 1, (int)s->key_idx[k]));
      if (!sn->after[k]) rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    }
    sn->has_after = true;
  }
  PQclear(r);
  if (rc != AS_OK) return rc;
  if ((size_t)nr < (max ? max : 1)) {
    sn->done = true;
    return AS_EOF;
  }
  return AS_OK;
}
