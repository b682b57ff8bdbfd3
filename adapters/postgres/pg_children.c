/* pg_children.c — child tables on a PostgreSQL node (as_schema.h, as_child; as_children.h).
 *
 * Every child table is a pg_table of the node of its own (owner: the mapping, so install,
 * triggers, the publication and check --live cover it like any mapped table).
 * - Sink: after the parent row's statement, a delta that sets an array column brings that
 *   parent's child rows to the array: rows whose key is gone are deleted, new or changed rows
 *   upserted, equal rows left alone; a parent delete deletes the child rows first (tables made
 *   by another program may lack the foreign key). pg_apply runs all of it in one savepoint.
 * - Reads (read_row, snapshot, capture): an array column is read from its child table,
 *   ordered by position.
 * - Capture (triggers or logical decoding alike): the captured changes of a child table
 *   become, after the poll, updates of their parent's array column read at that moment
 *   (state, not the row's own change; consecutive ones of one parent collapse into one). A
 *   child row whose parent row does not exist is a dead letter; once both are gone the change
 *   is left out (the parent's delete says it). Parent inserts and update images get their
 *   arrays the same way. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "as_children.h"
#include "as_ddl.h"
#include "as_log.h"
#include "pg_internal.h"

static int oom(as_error *err) { return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory"); }

/* The pg_table of child ci of mapping s. */
static pg_table *child_table(as_node *n, const as_schema *s, size_t ci) {
  return pg_table_for(n, s->children[ci].tab);
}

static void free_params(char **p, size_t n) {
  for (size_t i = 0; p && i < n; i++) free(p[i]);
  free(p);
}

/* Runs sql with text params. A statement PostgreSQL refuses (not worth retrying) is AS_EDATA
 * with err naming it; the caller rolls back to its savepoint. */
static int run(PGconn *c, const char *sql, int np, char **params, const char *what,
               PGresult **out, as_error *err) {
  PGresult *r = PQexecParams(c, sql, np, NULL, (const char *const *)params, NULL, NULL, 0);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    if (out) *out = r;
    else PQclear(r);
    return AS_OK;
  }
  int rc = pg_fail(c, r, what, err);
  if (rc != AS_RETRY && r) rc = err->code = AS_EDATA;
  PQclear(r);
  return rc;
}

/* " WHERE p1 = $1::t AND ..." over child table t's first nkey columns (the parent key), and
 * their parameters from the parent row's key. */
static int parent_where(const pg_table *t, const as_schema *s, const as_row *parent, as_buf *b,
                        char **params, as_error *err) {
  if (as_buf_append_str(b, " WHERE ") != AS_OK) return oom(err);
  for (size_t k = 0; k < s->nkey; k++) {
    const as_column *pc = &s->cols[s->key_idx[k]];
    if (as_buf_printf(b, "%s%s = $%zu::%s", k ? " AND " : "", t->qcols[k], k + 1,
                      pg_cast_type(pc->type)) != AS_OK)
      return oom(err);
    int rc = pg_value_to_text(&parent->v[s->key_idx[k]], &params[k], err);
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

static int fill_nested(PGconn *c, as_node *n, const as_schema *ts, as_row **have, const size_t *nhave,
                       size_t cnt, as_error *err);

/* The child rows of child ci of one parent, with their nested rows. For a write that brings
 * them to an array (apply): locked FOR NO KEY UPDATE (a concurrent delete of one of them then
 * waits for that write's commit, where it would otherwise take away the row the write's inner
 * rows refer to), and their table columns only (each nested table's own sync reads its rows). */
static int child_read(PGconn *c, as_node *n, const as_schema *s, size_t ci, const as_row *parent,
                      bool apply, as_row **rows, size_t *nrows, as_error *err) {
  pg_table *t = child_table(n, s, ci);
  *rows = NULL;
  *nrows = 0;
  if (!t) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "child table of %s not set up", s->name);
  as_buf sql = AS_BUF_INIT;
  char **params = calloc(s->nkey, sizeof *params);
  PGresult *r = NULL;
  as_row *out = NULL;
  int n_ = 0;
  int rc = params && as_buf_append_str(&sql, "SELECT ") == AS_OK && pg_select_list(t, NULL, &sql) == AS_OK &&
                   as_buf_printf(&sql, " FROM %s", t->qname) == AS_OK
               ? AS_OK
               : oom(err);
  if (rc == AS_OK) rc = parent_where(t, s, parent, &sql, params, err);
  if (rc == AS_OK && (as_buf_append_str(&sql, " ORDER BY ") != AS_OK ||
                      as_child_order_sql(t->s, NULL, &sql) != AS_OK ||
                      (apply && as_buf_append_str(&sql, " FOR NO KEY UPDATE") != AS_OK)))
    rc = oom(err);
  if (rc == AS_OK) rc = run(c, as_buf_cstr(&sql), (int)s->nkey, params, "read child rows", &r, err);
  if (rc == AS_OK) {
    n_ = PQntuples(r);
    if (n_ > 0 && !(out = calloc((size_t)n_, sizeof *out))) rc = oom(err);
  }
  for (int i = 0; rc == AS_OK && i < n_; i++) {
    if (as_row_init(&out[i], t->s->ncols) != AS_OK) rc = oom(err);
    else rc = pg_row_from_result(t, r, i, 0, &out[i], err);
  }
  PQclear(r);
  free_params(params, s->nkey);
  as_buf_free(&sql);
  if (rc == AS_OK && !apply && t->s->nchildren && n_ > 0) { /* nested: in one read each */
    size_t one = (size_t)n_;
    rc = fill_nested(c, n, t->s, &out, &one, 1, err);
  }
  if (rc != AS_OK) {
    as_child_rows_free(out, (size_t)n_);
    as_error_prefix(err, "table %s", t->qname);
    return rc;
  }
  *rows = out;
  *nrows = (size_t)n_;
  return AS_OK;
}

int pg_child_read(PGconn *c, as_node *n, const as_schema *s, size_t ci, const as_row *parent,
                  as_row **rows, size_t *nrows, as_error *err) {
  return child_read(c, n, s, ci, parent, false, rows, nrows, err);
}

int pg_children_fill(PGconn *c, as_node *n, const as_schema *s, as_row *r, as_error *err) {
  for (size_t ci = 0; ci < s->nchildren; ci++) {
    as_row *rows;
    size_t nr;
    as_value v;
    int rc = pg_child_read(c, n, s, ci, r, &rows, &nr, err);
    if (rc != AS_OK) return rc;
    rc = as_child_array(s, ci, rows, nr, &v, err);
    as_child_rows_free(rows, nr);
    if (rc != AS_OK) return rc;
    as_row_put(r, s->children[ci].col, &v);
  }
  return AS_OK;
}

int pg_parent_exists(PGconn *c, as_node *n, const as_schema *s, const as_row *key, bool *exists,
                     as_error *err) {
  pg_table *t = pg_table_for(n, s);
  if (!t) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "mapping %s is not on node %s", s->name, n->name);
  as_buf sql = AS_BUF_INIT;
  char **params = calloc(s->nkey, sizeof *params);
  PGresult *r = NULL;
  int rc = params && as_buf_printf(&sql, "SELECT 1 FROM %s WHERE ", t->qname) == AS_OK ? AS_OK : oom(err);
  for (size_t k = 0; rc == AS_OK && k < s->nkey; k++) {
    size_t ki = s->key_idx[k];
    if (as_buf_printf(&sql, "%s%s = $%zu::%s", k ? " AND " : "", t->qcols[ki], k + 1,
                      pg_cast_type(s->cols[ki].type)) != AS_OK)
      rc = oom(err);
    else
      rc = pg_value_to_text(&key->v[ki], &params[k], err);
  }
  if (rc == AS_OK) rc = run(c, as_buf_cstr(&sql), (int)s->nkey, params, "read parent row", &r, err);
  if (rc == AS_OK) *exists = PQntuples(r) > 0;
  PQclear(r);
  free_params(params, s->nkey);
  as_buf_free(&sql);
  return rc;
}

/* ------------------------------------------------------------------ sink */

/* The row itself (its table columns). */
static int child_write_row(as_node *n, const pg_table *t, const as_row *row, bool del, as_error *err) {
  const as_schema *ts = t->s;
  as_buf sql = AS_BUF_INIT, set = AS_BUF_INIT;
  char **params = calloc(ts->ncols, sizeof *params);
  int np = 0, rc = params ? AS_OK : oom(err);
  if (rc == AS_OK && del) {
    if (as_buf_printf(&sql, "DELETE FROM %s WHERE ", t->qname) != AS_OK) rc = oom(err);
    for (size_t k = 0; rc == AS_OK && k < ts->nkey; k++) {
      size_t c = ts->key_idx[k];
      if (as_buf_printf(&sql, "%s%s = $%d::%s", k ? " AND " : "", t->qcols[c], np + 1,
                        pg_cast_type(ts->cols[c].type)) != AS_OK)
        rc = oom(err);
      else
        rc = pg_value_to_text(&row->v[c], &params[np++], err);
    }
  } else if (rc == AS_OK) {
    if (as_buf_printf(&sql, "INSERT INTO %s (", t->qname) != AS_OK) rc = oom(err);
    for (size_t c = 0; rc == AS_OK && c < ts->ntable; c++) {
      if (as_buf_printf(&sql, "%s%s", c ? ", " : "", t->qcols[c]) != AS_OK ||
          (!ts->cols[c].is_key &&
           as_buf_printf(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "", t->qcols[c], t->qcols[c]) != AS_OK))
        rc = oom(err);
    }
    if (rc == AS_OK && as_buf_append_str(&sql, ") " PG_OVERRIDING "VALUES (") != AS_OK) rc = oom(err);
    for (size_t c = 0; rc == AS_OK && c < ts->ntable; c++) {
      if (as_buf_printf(&sql, "%s$%zu::%s", c ? ", " : "", c + 1, pg_cast_type(ts->cols[c].type)) != AS_OK)
        rc = oom(err);
      else if ((rc = pg_value_to_text(&row->v[c], &params[np++], err)) != AS_OK)
        as_error_prefix(err, "column \"%s\"", ts->cols[c].name);
    }
    if (rc == AS_OK && as_buf_printf(&sql, ") ON CONFLICT %s DO %s%s", t->conflict,
                                     set.len ? "UPDATE SET " : "NOTHING", set.len ? as_buf_cstr(&set) : "") != AS_OK)
      rc = oom(err);
  }
  if (rc == AS_OK) rc = run(n->conn, as_buf_cstr(&sql), np, params, del ? "delete child row" : "write child row", NULL, err);
  else if (rc != AS_ERR) rc = AS_EDATA;
  free_params(params, ts->ncols);
  as_buf_free(&sql);
  as_buf_free(&set);
  return rc;
}

static int delete_under(as_node *n, const as_schema *s, const as_schema *tab, const as_row *key,
                        as_error *err);

/* A full-row upsert (del: a delete by key) of one child table row, with the rows nested under
 * it (deleted first; brought to the row's arrays after the upsert). */
static int child_write(as_node *n, const pg_table *t, const as_row *row, bool del, as_error *err) {
  const as_schema *ts = t->s;
  int rc = AS_OK;
  for (size_t g = 0; rc == AS_OK && del && g < ts->nchildren; g++)
    rc = delete_under(n, ts, ts->children[g].tab, row, err);
  if (rc == AS_OK) rc = child_write_row(n, t, row, del, err);
  return rc;
}

/* Whether two rows of child table ts hold the same values in its table's columns. */
static bool same_table_values(const as_schema *ts, const as_row *a, const as_row *b) {
  for (size_t c = 0; c < ts->ntable; c++)
    if (!as_value_equal(&a->v[c], &b->v[c])) return false;
  return true;
}

static int sync_child(as_node *n, const as_schema *s, size_t ci, const as_delta *d, as_error *err) {
  pg_table *t = child_table(n, s, ci);
  as_row *want = NULL, *have = NULL;
  size_t nwant = 0, nhave = 0;
  int rc = as_child_rows(s, ci, &d->row, &d->row.v[s->children[ci].col], &want, &nwant, err);
  if (rc == AS_OK) rc = child_read(n->conn, n, s, ci, &d->row, true, &have, &nhave, err);
  for (size_t h = 0; rc == AS_OK && h < nhave; h++) {
    bool kept = false;
    for (size_t w = 0; !kept && w < nwant; w++) kept = as_child_same_key(t->s, &have[h], &want[w]);
    if (!kept) rc = child_write(n, t, &have[h], true, err);
  }
  for (size_t w = 0; rc == AS_OK && w < nwant; w++) {
    bool same = false;
    for (size_t h = 0; !same && h < nhave; h++)
      same = as_child_same_key(t->s, &have[h], &want[w]) && same_table_values(t->s, &have[h], &want[w]);
    if (!same) rc = child_write(n, t, &want[w], false, err);
    if (rc == AS_OK && t->s->nchildren) { /* nested children: the row's own, the same way */
      as_delta nd = {.schema = t->s, .op = AS_OP_UPDATE, .row = want[w]};
      rc = pg_children_write(n, &nd, err);
    }
  }
  as_child_rows_free(want, nwant);
  as_child_rows_free(have, nhave);
  return rc;
}

/* Deletes the rows of tab, and of the tables nested under it, whose first s->nkey columns
 * hold key (the key of s's row: every table under s starts with it). Innermost first (a
 * table made by another program may lack the cascading foreign keys). */
static int delete_under(as_node *n, const as_schema *s, const as_schema *tab, const as_row *key,
                        as_error *err) {
  for (size_t g = 0; g < tab->nchildren; g++) {
    int rc = delete_under(n, s, tab->children[g].tab, key, err);
    if (rc != AS_OK) return rc;
  }
  pg_table *t = pg_table_for(n, tab);
  if (!t) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "child table %s not set up", tab->table);
  as_buf sql = AS_BUF_INIT;
  char **params = calloc(s->nkey, sizeof *params);
  int rc = params && as_buf_printf(&sql, "DELETE FROM %s", t->qname) == AS_OK ? AS_OK : oom(err);
  if (rc == AS_OK) rc = parent_where(t, s, key, &sql, params, err);
  if (rc == AS_OK) rc = run(n->conn, as_buf_cstr(&sql), (int)s->nkey, params, "delete child rows", NULL, err);
  free_params(params, s->nkey);
  as_buf_free(&sql);
  return rc;
}

int pg_children_delete(as_node *n, const as_schema *s, const as_row *key, as_error *err) {
  for (size_t ci = 0; ci < s->nchildren; ci++) {
    int rc = delete_under(n, s, s->children[ci].tab, key, err);
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

int pg_children_write(as_node *n, const as_delta *d, as_error *err) {
  const as_schema *s = d->schema;
  for (size_t ci = 0; ci < s->nchildren; ci++) {
    if (!as_row_has(&d->row, s->children[ci].col)) continue;
    int rc = sync_child(n, s, ci, d, err);
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

/* ------------------------------------------------------------------ capture */

/* The pg_table of a child table schema (its owner mapping in *owner, child in *ci). */
static bool child_of(as_node *n, const as_schema *tab, const as_schema **owner, size_t *ci) {
  for (size_t i = 0; i < n->ntables; i++) {
    const pg_table *t = &n->tables[i];
    if (t->owner && t->s == tab) {
      *owner = t->owner;
      *ci = t->child;
      return true;
    }
  }
  return false;
}

/* Child table delta d -> its parent's update in place (*keep false: left out, or a dead
 * letter pushed to out). */
static int fold_one(as_node *n, PGconn *c, as_batch *out, as_delta *d, const as_schema *owner,
                    size_t ci, bool *keep, as_error *err) {
  as_row row = {0};
  *keep = false;
  if (as_row_init(&row, owner->ncols) != AS_OK) return oom(err);
  int rc = AS_OK;
  for (size_t k = 0; rc == AS_OK && k < owner->nkey; k++) {
    as_value v;
    if (as_value_copy(&v, &d->row.v[k]) != AS_OK) rc = oom(err);
    else as_row_put(&row, owner->key_idx[k], &v);
  }
  bool exists = false;
  as_row *rows = NULL;
  size_t nr = 0;
  if (rc == AS_OK) rc = pg_parent_exists(c, n, owner, &row, &exists, err);
  if (rc == AS_OK) rc = pg_child_read(c, n, owner, ci, &row, &rows, &nr, err);
  if (rc == AS_OK && exists) {
    as_value v;
    rc = as_child_array(owner, ci, rows, nr, &v, err);
    if (rc == AS_OK) as_row_put(&row, owner->children[ci].col, &v);
  }
  if (rc == AS_EDATA || (rc == AS_OK && !exists && nr > 0)) {
    char *k = as_key_describe(owner, &row);
    char msg[AS_ERROR_MSG_MAX + 256];
    if (rc == AS_EDATA)
      snprintf(msg, sizeof msg, "mapping %s, key %s: %s", owner->name, k ? k : "?", err->message);
    else
      snprintf(msg, sizeof msg, "mapping %s: child table \"%s\" holds rows of parent key %s, which "
               "table \"%s\" does not have", owner->name, owner->children[ci].table, k ? k : "?",
               owner->table);
    AS_LOG(AS_LOG_WARN, n->comp, "dead letter: %s", msg);
    rc = as_batch_push_dead(out, owner, k, as_delta_to_json_string(d, NULL), strdup(msg),
                            d->pos ? strdup(d->pos) : NULL) == AS_OK ? AS_OK : oom(err);
  } else if (rc == AS_OK && exists) {
    as_row_clear(&d->row);
    as_row_clear(&d->image);
    as_row_clear(&d->before);
    d->row = row;
    memset(&row, 0, sizeof row);
    d->schema = owner;
    d->op = AS_OP_UPDATE;
    *keep = true;
  }
  as_child_rows_free(rows, nr);
  as_row_clear(&row);
  return rc;
}

int pg_children_fold(as_node *n, PGconn *c, as_batch *out, size_t from, as_error *err) {
  size_t w = from;
  int rc = AS_OK;
  for (size_t i = from; i < out->n; i++) {
    as_delta *d = &out->d[i];
    const as_schema *owner;
    size_t ci;
    bool keep = true;
    if (rc == AS_OK && d->schema && d->op != AS_OP_TRUNCATE && child_of(n, d->schema, &owner, &ci)) {
      rc = fold_one(n, c, out, d, owner, ci, &keep, err);
      /* the previous delta is this parent's array alone from the same writer (origin, echo):
       * this one, read at the same moment and later in the log, replaces it */
      as_delta *last = w > from ? &out->d[w - 1] : NULL;
      bool again = keep && last && last->schema == owner && last->op == AS_OP_UPDATE &&
                   last->echo == d->echo && last->origin && d->origin &&
                   strcmp(last->origin, d->origin) == 0;
      for (size_t c2 = 0; again && c2 < owner->ncols; c2++)
        again = owner->cols[c2].is_key ||
                (c2 == owner->children[ci].col) == (last->row.set[c2] != 0);
      for (size_t k = 0; again && k < owner->nkey; k++)
        again = as_value_equal(&last->row.v[owner->key_idx[k]], &d->row.v[owner->key_idx[k]]);
      if (again) {
        as_delta_clear(last);
        w--; /* this delta takes its place below */
      }
    } else if (rc == AS_OK && d->schema && d->schema->nchildren && d->op == AS_OP_INSERT) {
      rc = pg_children_fill(c, n, d->schema, &d->row, err);
    } else if (rc == AS_OK && d->schema && d->schema->nchildren && d->op == AS_OP_UPDATE &&
               d->image.n) {
      as_error ie;
      if (pg_children_fill(c, n, d->schema, &d->image, &ie) != AS_OK) as_row_clear(&d->image);
    }
    if (rc != AS_OK || !keep) {
      as_delta_clear(d);
      continue;
    }
    if (w != i) {
      out->d[w] = *d;
      memset(d, 0, sizeof *d);
    }
    w++;
  }
  out->n = w;
  return rc;
}

/* ------------------------------------------------------------------ images (logical) */

/* "a.<c1> = b.<c2> AND ..." over the parent key: a's columns named as in the child table
 * (a_child) or the parent, b's likewise. */
static int key_match(as_buf *b, const as_schema *s, const pg_table *tab, const pg_table *par,
                     const char *x, bool x_child, const char *y, bool y_child) {
  for (size_t k = 0; k < s->nkey; k++) {
    const char *xc = x_child ? tab->qcols[k] : par->qcols[s->key_idx[k]];
    const char *yc = y_child ? tab->qcols[k] : par->qcols[s->key_idx[k]];
    if (as_buf_printf(b, "%s%s.%s = %s.%s", k ? " AND " : "", x, xc, y, yc) != AS_OK) return AS_ERR;
  }
  return AS_OK;
}

/* (SELECT coalesce(jsonb_agg(jsonb_build_array(<the row's table columns as text>, <its
 * nested children's rows, the same way>) ORDER BY position), '[]') FROM <child table> WHERE
 * <its parent key> = <outer's>): the rows of child ci of s whose parent is the row `outer`
 * (columns named as in the child table when outer_child, else as in s's table), as jsonb, or
 * as its text (as_text). depth: nesting level, for distinct aliases. */
static int rows_expr(as_buf *b, as_node *n, const as_schema *s, size_t ci, const char *outer,
                     bool outer_child, int depth, bool as_text) {
  const pg_table *tab = child_table(n, s, ci), *par = pg_table_for(n, s);
  if (!tab || !par) return AS_ERR;
  char alias[16];
  snprintf(alias, sizeof alias, "_c%d", depth);
  if (as_buf_append_str(b, "(SELECT coalesce(jsonb_agg(jsonb_build_array(") != AS_OK) return AS_ERR;
  for (size_t c = 0; c < tab->s->ntable; c++) {
    if (as_buf_printf(b, "%s%s.%s::text", c ? ", " : "", alias, tab->qcols[c]) != AS_OK) return AS_ERR;
  }
  for (size_t g = 0; g < tab->s->nchildren; g++) {
    if (as_buf_append_str(b, ", ") != AS_OK || rows_expr(b, n, tab->s, g, alias, false, depth + 1, false) != AS_OK)
      return AS_ERR;
  }
  if (as_buf_append_str(b, ") ORDER BY ") != AS_OK || as_child_order_sql(tab->s, alias, b) != AS_OK ||
      as_buf_printf(b, "), '[]'::jsonb)%s FROM %s %s WHERE ", as_text ? "::text" : "", tab->qname, alias) != AS_OK ||
      key_match(b, s, tab, par, alias, true, outer, outer_child) != AS_OK || as_buf_putc(b, ')') != AS_OK)
    return AS_ERR;
  return AS_OK;
}

/* The statement that writes the images of child ci of s for the distinct parents named by the
 * rows of `from` (an SQL table expression with alias k; columns named as in the child table,
 * or as in the parent when parent_cols). */
static int image_upsert(as_buf *b, as_node *n, const as_schema *s, size_t ci, const char *from,
                        bool parent_cols) {
  const pg_table *tab = child_table(n, s, ci), *par = pg_table_for(n, s);
  if (!tab || !par) return AS_ERR;
  if (as_buf_printf(b, "INSERT INTO arraysync.child_images AS i (tbl, key, parent_exists, rows) "
                       "SELECT %s, jsonb_build_array(", tab->lit_table) != AS_OK)
    return AS_ERR;
  for (size_t k = 0; k < s->nkey; k++) {
    const char *kc = parent_cols ? par->qcols[s->key_idx[k]] : tab->qcols[k];
    if (as_buf_printf(b, "%sk.%s::text", k ? ", " : "", kc) != AS_OK) return AS_ERR;
  }
  if (as_buf_printf(b, "), EXISTS (SELECT 1 FROM %s p WHERE ", par->qname) != AS_OK ||
      key_match(b, s, tab, par, "p", false, "k", !parent_cols) != AS_OK ||
      as_buf_append_str(b, "), ") != AS_OK || rows_expr(b, n, s, ci, "k", !parent_cols, 0, false) != AS_OK ||
      as_buf_printf(b, " FROM %s ON CONFLICT (tbl, key) DO UPDATE SET "
                       "parent_exists = EXCLUDED.parent_exists, rows = EXCLUDED.rows; ", from) != AS_OK)
    return AS_ERR;
  return AS_OK;
}

int pg_children_rows_sql(as_node *n, const as_schema *s, size_t ci, const char *outer, as_buf *b) {
  return rows_expr(b, n, s, ci, outer, false, 0, true);
}

int pg_children_rows_from_json(as_node *n, const as_schema *s, size_t ci, const json_t *j,
                               as_row **out, size_t *nout, as_error *err) {
  const pg_table *tab = child_table(n, s, ci);
  const as_schema *ts = tab ? tab->s : NULL;
  size_t nr = json_array_size(j);
  as_row *rows = nr ? calloc(nr, sizeof *rows) : NULL;
  *out = NULL;
  *nout = 0;
  int rc = !tab || !json_is_array(j) ? as_error_set(err, AS_DOM_POSTGRES, AS_EDATA, "malformed child rows")
           : nr && !rows            ? oom(err)
                                    : AS_OK;
  for (size_t i = 0; rc == AS_OK && i < nr; i++) {
    const json_t *el = json_array_get(j, i);
    json_t *cols = json_array(); /* the table columns' texts (borrowed) */
    for (size_t c = 0; cols && c < ts->ntable; c++) json_array_append(cols, json_array_get(el, c));
    rc = !cols || as_row_init(&rows[i], ts->ncols) != AS_OK ? oom(err)
         : json_array_size(el) != ts->ntable + ts->nchildren
             ? as_error_set(err, AS_DOM_POSTGRES, AS_EDATA, "malformed child rows")
             : pg_texts_to_row(ts, cols, NULL, ts->ntable, &rows[i], err);
    json_decref(cols);
    for (size_t g = 0; rc == AS_OK && g < ts->nchildren; g++) { /* nested children */
      as_row *gr;
      size_t gn;
      as_value v;
      rc = pg_children_rows_from_json(n, ts, g, json_array_get(el, ts->ntable + g), &gr, &gn, err);
      if (rc == AS_OK) rc = as_child_array(ts, g, gr, gn, &v, err);
      if (rc == AS_OK) as_row_put(&rows[i], ts->children[g].col, &v);
      if (gn || gr) as_child_rows_free(gr, gn);
    }
  }
  if (rc != AS_OK) {
    as_child_rows_free(rows, nr);
    return rc;
  }
  *out = rows;
  *nout = nr;
  return AS_OK;
}

int pg_children_array_from_text(as_node *n, const as_schema *s, size_t ci, const char *text,
                                as_value *out, as_error *err) {
  json_t *j = text ? json_loads(text, 0, NULL) : NULL;
  as_row *rows = NULL;
  size_t nr = 0;
  int rc = pg_children_rows_from_json(n, s, ci, j, &rows, &nr, err);
  if (rc == AS_OK) rc = as_child_array(s, ci, rows, nr, out, err);
  as_child_rows_free(rows, nr);
  json_decref(j);
  return rc;
}

/* (SELECT DISTINCT <parent key columns> FROM <transition tables>) k; the key columns of a
 * child table's row (or of a table nested under it) named as in `named` (the child table). */
static int distinct_keys(as_buf *b, const as_schema *s, const pg_table *t, bool parent_cols,
                         const pg_table *named, const char *const *tables, size_t ntables) {
  if (as_buf_append_str(b, "(SELECT DISTINCT * FROM (") != AS_OK) return AS_ERR;
  for (size_t i = 0; i < ntables; i++) {
    if (as_buf_append_str(b, i ? " UNION ALL SELECT " : "SELECT ") != AS_OK) return AS_ERR;
    for (size_t k = 0; k < s->nkey; k++) {
      const char *kc = parent_cols ? t->qcols[s->key_idx[k]] : t->qcols[k];
      if (as_buf_printf(b, "%s%s", k ? ", " : "", kc) != AS_OK) return AS_ERR;
      if (!parent_cols && named && as_buf_printf(b, " AS %s", named->qcols[k]) != AS_OK) return AS_ERR;
    }
    if (as_buf_printf(b, " FROM %s", tables[i]) != AS_OK) return AS_ERR;
  }
  return as_buf_append_str(b, ") u) k");
}

/* One statement-level trigger function of t: the images of every parent its statement
 * touched (tables: the transition tables of the event). */
static int image_function(as_buf *b, as_node *n, const pg_table *t, const char *suffix,
                          const char *const *tables, size_t ntables) {
  as_buf body = AS_BUF_INIT, from = AS_BUF_INIT;
  /* the connector's own writes (an origin mark: pg_apply.c set_origin) are echoes the decoder
   * leaves out: their images would never be read */
  int rc = as_buf_append_str(&body, "BEGIN IF current_setting('arraysync.origin', true) <> '' "
                                    "THEN RETURN NULL; END IF; ");
  const as_schema *s = t->owner ? t->owner : t->s;
  const pg_table *named = t->owner ? child_table(n, s, t->child) : NULL;
  rc = rc || (t->owner && !named) || distinct_keys(&from, s, t, !t->owner, named, tables, ntables) ||
       !as_buf_cstr(&from);
  for (size_t ci = 0; !rc && ci < s->nchildren; ci++) {
    if (t->owner && ci != t->child) continue;
    rc = image_upsert(&body, n, s, ci, as_buf_cstr(&from), !t->owner);
  }
  rc = rc || as_buf_append_str(&body, "RETURN NULL; END");
  char *lit = rc ? NULL : pg_quote_literal(as_buf_cstr(&body));
  if (!lit ||
      as_buf_printf(b, "CREATE OR REPLACE FUNCTION arraysync.\"%s_img%s\"() RETURNS trigger LANGUAGE "
                       "plpgsql SET datestyle TO 'ISO, YMD' SET timezone TO 'UTC' SET "
                       "extra_float_digits TO 1 SET bytea_output TO 'hex' SET intervalstyle TO "
                       "'iso_8601' AS %s; ",
                    t->fname, suffix, lit) != AS_OK)
    rc = AS_ERR;
  free(lit);
  as_buf_free(&body);
  as_buf_free(&from);
  return rc ? AS_ERR : AS_OK;
}

/* The image triggers of a child table t (logical capture), statement level with transition
 * tables, on insert, update and delete.
 * Text forms in the connector's session settings. Triggers are created or dropped only when
 * missing or not wanted: a connector that starts under load takes no table lock it does not
 * need (CREATE OR REPLACE FUNCTION locks no table). */
int pg_images_sql(as_node *n, const pg_table *t, as_buf *b) {
  static const char *const names[] = {"arraysync_img_ins", "arraysync_img_upd", "arraysync_img_del"};
  static const char *const events[] = {"INSERT", "UPDATE", "DELETE"};
  static const char *const refs[] = {"REFERENCING NEW TABLE AS arraysync_new",
                                     "REFERENCING OLD TABLE AS arraysync_old NEW TABLE AS arraysync_new",
                                     "REFERENCING OLD TABLE AS arraysync_old"};
  static const char *const tnew[] = {"arraysync_new"}, *const told[] = {"arraysync_old"},
                           *const tboth[] = {"arraysync_old", "arraysync_new"};
  char *lit_q = pg_quote_literal(t->qname);
  if (!lit_q) return AS_ERR;
  /* child tables only: a parent's new row has no child rows yet (the foreign key), and the
   * images of its children's inserts follow in its transaction */
  bool want = n->capture == PG_CAPTURE_LOGICAL && t->owner;
  int rc = AS_OK;
  if (want) {
    rc = image_function(b, n, t, "_ins", tnew, 1);
    rc = rc || image_function(b, n, t, "_upd", tboth, 2);
    rc = rc || image_function(b, n, t, "_del", told, 1);
  }
  for (int e = 0; !rc && e < 3; e++) {
    bool this_one = want;
    rc = as_buf_printf(b, "DO $d$ BEGIN IF %sEXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = "
                          "%s::regclass AND tgname = '%s') THEN ",
                       this_one ? "NOT " : "", lit_q, names[e]) != AS_OK;
    if (!rc && this_one)
      rc = as_buf_printf(b, "CREATE TRIGGER %s AFTER %s ON %s %s FOR EACH STATEMENT EXECUTE "
                            "FUNCTION arraysync.\"%s_img_%s\"(); ",
                         names[e], events[e], t->qname, refs[e], t->fname,
                         e == 0 ? "ins" : e == 1 ? "upd" : "del") != AS_OK;
    else if (!rc)
      rc = as_buf_printf(b, "DROP TRIGGER %s ON %s; ", names[e], t->qname) != AS_OK;
    rc = rc || as_buf_append_str(b, "END IF; END $d$; ") != AS_OK;
  }
  free(lit_q);
  return rc ? AS_ERR : AS_OK;
}

/* ------------------------------------------------------------------ sink, in bulk */

/* Whether every array column d sets converts to child rows (AS_EDATA: err says why not). */
int pg_children_check(const as_delta *d, as_error *err) {
  const as_schema *s = d->schema;
  for (size_t ci = 0; ci < s->nchildren; ci++) {
    if (!as_row_has(&d->row, s->children[ci].col)) continue;
    as_row *rows;
    size_t n;
    int rc = as_child_rows(s, ci, &d->row, &d->row.v[s->children[ci].col], &rows, &n, err);
    if (rc != AS_OK) return rc;
    as_child_rows_free(rows, n);
  }
  return AS_OK;
}

/* Key text of the first nkey values of r at idx (NULL: 0..nkey), for matching. */
static int key_text(const as_row *r, const size_t *idx, size_t nkey, as_buf *b, as_error *err) {
  as_buf_reset(b);
  for (size_t k = 0; k < nkey; k++) {
    char *t = NULL;
    int rc = pg_value_to_text(&r->v[idx ? idx[k] : k], &t, err);
    if (rc != AS_OK) return rc;
    rc = (t && as_buf_append_str(b, t) != AS_OK) || as_buf_putc(b, 0x1f) != AS_OK;
    free(t);
    if (rc) return oom(err);
  }
  return as_buf_cstr(b) ? AS_OK : oom(err);
}

/* A growing list of rows (borrowed pointers) and statement text + parameters. */
typedef struct stmt_acc {
  as_buf sql;
  char **params;
  size_t np, cap;
  size_t rows;
} stmt_acc;

static int acc_param(stmt_acc *a, const as_value *v, as_error *err) {
  if (a->np == a->cap) {
    size_t nc = a->cap ? 2 * a->cap : 256;
    char **g = realloc(a->params, nc * sizeof *g);
    if (!g) return oom(err);
    a->params = g;
    a->cap = nc;
  }
  return pg_value_to_text(v, &a->params[a->np++], err);
}

static void acc_reset(stmt_acc *a) {
  for (size_t i = 0; i < a->np; i++) free(a->params[i]);
  a->np = 0;
  a->rows = 0;
  as_buf_reset(&a->sql);
}

static void acc_free(stmt_acc *a) {
  acc_reset(a);
  free(a->params);
  as_buf_free(&a->sql);
}

#define BULK_PARAMS 30000 /* below libpq's 65535 */

/* Runs the accumulated statement (if any). */
static int acc_flush(as_node *n, stmt_acc *a, const char *tail, const char *what, as_error *err) {
  if (a->rows == 0) return AS_OK;
  int rc = tail && as_buf_append_str(&a->sql, tail) != AS_OK ? oom(err) : AS_OK;
  if (rc == AS_OK) rc = run(n->conn, as_buf_cstr(&a->sql), (int)a->np, a->params, what, NULL, err);
  acc_reset(a);
  return rc;
}

/* Appends row r's columns cols[0..nc) as "($k::type, ...)" to a. */
static int acc_tuple(stmt_acc *a, const pg_table *t, const as_row *r, const size_t *cols, size_t nc,
                     as_error *err) {
  if (as_buf_append_str(&a->sql, a->rows ? ", (" : "(") != AS_OK) return oom(err);
  for (size_t k = 0; k < nc; k++) {
    size_t c = cols ? cols[k] : k;
    int rc = acc_param(a, &r->v[c], err);
    if (rc != AS_OK) {
      as_error_prefix(err, "column \"%s\"", t->s->cols[c].name);
      return rc == AS_ERR ? AS_ERR : AS_EDATA;
    }
    if (as_buf_printf(&a->sql, "%s$%zu::%s", k ? ", " : "", a->np, pg_cast_type(t->s->cols[c].type)) != AS_OK)
      return oom(err);
  }
  a->rows++;
  return as_buf_putc(&a->sql, ')') != AS_OK ? oom(err) : AS_OK;
}

/* Key texts sorted for lookup (first the lowest index among equal texts). */
typedef struct keyref {
  const char *key;
  size_t j;
} keyref;

static int keyref_cmp(const void *a, const void *b) {
  const keyref *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  return c ? c : (x->j > y->j) - (x->j < y->j);
}

/* The index of the first entry of r[0..n) whose key is k, or SIZE_MAX. */
static size_t keyref_find(const keyref *r, size_t n, const char *k) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(r[mid].key, k) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && strcmp(r[lo].key, k) == 0 ? r[lo].j : SIZE_MAX;
}

/* Child table rows kept for their nested children (owned). */
typedef struct row_list {
  as_row *r;
  size_t n, cap;
} row_list;

static void rows_free(row_list *l) {
  as_child_rows_free(l->r, l->n);
  *l = (row_list){0};
}

/* Moves rows[0..n) to l and frees the array. */
static int rows_keep(row_list *l, as_row *rows, size_t n, as_error *err) {
  if (l->n + n > l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 64;
    while (nc < l->n + n) nc *= 2;
    as_row *g = realloc(l->r, nc * sizeof *g);
    if (!g) {
      as_child_rows_free(rows, n);
      return oom(err);
    }
    l->r = g;
    l->cap = nc;
  }
  if (n) memcpy(l->r + l->n, rows, n * sizeof *rows);
  l->n += n;
  free(rows);
  return AS_OK;
}

/* Nested children of rows of child table schema ts (every array column set): their rows
 * brought to those arrays, as pg_children_bulk does for a mapping's (fresh: every row is new,
 * so are theirs). Frees l. */
static int nested_bulk(as_node *n, const as_schema *ts, row_list *l, bool fresh, as_error *err) {
  as_delta *d = l->n ? calloc(l->n, sizeof *d) : NULL;
  size_t *idx = l->n ? calloc(l->n, sizeof *idx) : NULL;
  int rc = l->n && (!d || !idx) ? oom(err) : AS_OK;
  for (size_t i = 0; rc == AS_OK && i < l->n; i++) {
    d[i] = (as_delta){.schema = ts, .op = AS_OP_UPDATE, .row = l->r[i]}; /* borrowed */
    idx[i] = i;
  }
  if (rc == AS_OK && l->n) rc = pg_children_bulk(n, d, idx, l->n, fresh, err);
  free(d);
  free(idx);
  rows_free(l);
  return rc;
}

/* The nested arrays of child table rows have[j][0..nhave[j]) (of schema ts) from their own
 * tables, one read per nested table and 1,000 rows. */
static int fill_nested(PGconn *c, as_node *n, const as_schema *ts, as_row **have, const size_t *nhave,
                       size_t cnt, as_error *err) {
  if (!ts->nchildren) return AS_OK;
  size_t total = 0;
  for (size_t j = 0; j < cnt; j++) total += nhave[j];
  if (!total) return AS_OK;
  as_delta *d = calloc(total, sizeof *d);
  if (!d) return oom(err);
  size_t k = 0;
  for (size_t j = 0; j < cnt; j++)
    for (size_t h = 0; h < nhave[j]; h++) d[k++] = (as_delta){.schema = ts, .row = have[j][h]};
  int rc = pg_children_fill_many(c, n, d, total, err);
  k = 0;
  for (size_t j = 0; j < cnt; j++) /* the same value arrays, the array columns now set */
    for (size_t h = 0; h < nhave[j]; h++) have[j][h] = d[k++].row;
  free(d);
  return rc;
}

/* The child rows of child ci of the parents of deltas d[idx[0..cnt)], grouped per delta:
 * have[j], nhave[j]. One query per chunk of parents (lock: FOR NO KEY UPDATE, as child_read's
 * for apply). */
static int bulk_read(PGconn *conn, as_node *n, const as_schema *s, size_t ci, const as_delta *d,
                     const size_t *idx, size_t cnt, bool lock, as_row **have, size_t *nhave,
                     as_error *err) {
  pg_table *t = child_table(n, s, ci);
  stmt_acc a = {0};
  as_buf kb = AS_BUF_INIT;
  char **dk = calloc(cnt ? cnt : 1, sizeof *dk); /* the deltas' key texts */
  keyref *sorted = calloc(cnt ? cnt : 1, sizeof *sorted); /* a chunk's, for the result rows */
  int rc = dk && sorted ? AS_OK : oom(err);
  for (size_t j = 0; rc == AS_OK && j < cnt; j++) {
    rc = key_text(&d[idx[j]].row, s->key_idx, s->nkey, &kb, err);
    if (rc == AS_OK && !(dk[j] = strdup(as_buf_cstr(&kb)))) rc = oom(err);
  }
  size_t from = 0;
  for (size_t j = 0; rc == AS_OK && j <= cnt; j++) {
    bool flush = j == cnt || a.np + s->nkey > BULK_PARAMS;
    if (flush && a.rows) {
      PGresult *r = NULL;
      if (as_buf_append_str(&a.sql, ") ORDER BY ") != AS_OK || as_child_order_sql(t->s, NULL, &a.sql) != AS_OK ||
          (lock && as_buf_append_str(&a.sql, " FOR NO KEY UPDATE") != AS_OK))
        rc = oom(err);
      if (rc == AS_OK) rc = run(conn, as_buf_cstr(&a.sql), (int)a.np, a.params, "read child rows", &r, err);
      for (size_t q = from; q < j; q++) sorted[q - from] = (keyref){dk[q], q};
      qsort(sorted, j - from, sizeof *sorted, keyref_cmp);
      for (int i = 0; rc == AS_OK && i < PQntuples(r); i++) {
        as_row row = {0};
        rc = as_row_init(&row, t->s->ncols) == AS_OK ? pg_row_from_result(t, r, i, 0, &row, err) : oom(err);
        if (rc == AS_OK) rc = key_text(&row, NULL, s->nkey, &kb, err);
        size_t hit = rc == AS_OK ? keyref_find(sorted, j - from, as_buf_cstr(&kb)) : SIZE_MAX;
        if (rc == AS_OK && hit < cnt) {
          as_row *g = realloc(have[hit], (nhave[hit] + 1) * sizeof *g);
          if (!g) rc = oom(err);
          else {
            have[hit] = g;
            g[nhave[hit]++] = row;
            memset(&row, 0, sizeof row);
          }
        }
        as_row_clear(&row);
      }
      PQclear(r);
      acc_reset(&a);
      from = j;
    }
    if (j == cnt || rc != AS_OK) break;
    if (a.rows == 0) {
      if (as_buf_append_str(&a.sql, "SELECT ") != AS_OK || pg_select_list(t, NULL, &a.sql) != AS_OK ||
          as_buf_printf(&a.sql, " FROM %s WHERE (", t->qname) != AS_OK)
        rc = oom(err);
      for (size_t k = 0; rc == AS_OK && k < s->nkey; k++)
        if (as_buf_printf(&a.sql, "%s%s", k ? ", " : "", t->qcols[k]) != AS_OK) rc = oom(err);
      if (rc == AS_OK && as_buf_append_str(&a.sql, ") IN (VALUES ") != AS_OK) rc = oom(err);
    }
    if (rc == AS_OK) {
      /* the parent key, typed as the child table's parent key columns */
      if (as_buf_append_str(&a.sql, a.rows ? ", (" : "(") != AS_OK) rc = oom(err);
      for (size_t k = 0; rc == AS_OK && k < s->nkey; k++) {
        rc = acc_param(&a, &d[idx[j]].row.v[s->key_idx[k]], err);
        if (rc == AS_OK && as_buf_printf(&a.sql, "%s$%zu::%s", k ? ", " : "", a.np,
                                         pg_cast_type(t->s->cols[k].type)) != AS_OK)
          rc = oom(err);
      }
      if (rc == AS_OK && as_buf_putc(&a.sql, ')') != AS_OK) rc = oom(err);
      a.rows++;
    }
  }
  acc_free(&a);
  as_buf_free(&kb);
  for (size_t j = 0; dk && j < cnt; j++) free(dk[j]);
  free(dk);
  free(sorted);
  return rc;
}

/* The child rows of child ci of new parents d[sel[0..nsel)] by one COPY (no rows to read or
 * replace: a new parent has none). AS_EDATA: PostgreSQL refused it. */
static int fresh_copy(as_node *n, const as_schema *s, size_t ci, const as_delta *d, const size_t *sel,
                      size_t nsel, as_error *err) {
  const pg_table *t = child_table(n, s, ci);
  const as_schema *ts = t->s;
  row_list all_ = {0}, *all = &all_;
  as_buf data = AS_BUF_INIT, sql = AS_BUF_INIT;
  bool started = false; /* the COPY is open: data[0..sent) went out */
  size_t sent = 0;
  int rc = as_buf_printf(&sql, "COPY %s (", t->qname) != AS_OK ? oom(err) : AS_OK;
  for (size_t c = 0; rc == AS_OK && c < ts->ntable; c++)
    if (as_buf_printf(&sql, "%s%s", c ? ", " : "", t->qcols[c]) != AS_OK) rc = oom(err);
  if (rc == AS_OK && as_buf_append_str(&sql, ") FROM STDIN") != AS_OK) rc = oom(err);
  for (size_t j = 0; rc == AS_OK && j < nsel; j++) {
    const as_delta *dj = &d[sel[j]];
    as_row *want = NULL;
    size_t nwant = 0;
    rc = as_child_rows(s, ci, &dj->row, &dj->row.v[s->children[ci].col], &want, &nwant, err);
    for (size_t w = 0; rc == AS_OK && w < nwant; w++) {
      for (size_t c = 0; rc == AS_OK && c < ts->ntable; c++) {
        if (c && as_buf_putc(&data, '\t') != AS_OK) {
          rc = oom(err);
        } else if ((rc = pg_copy_value(&data, &want[w].v[c], err)) != AS_OK) {
          as_error_prefix(err, "column \"%s\"", ts->cols[c].name);
          rc = rc == AS_ERR ? AS_ERR : AS_EDATA;
        }
      }
      if (rc == AS_OK && as_buf_putc(&data, '\n') != AS_OK) rc = oom(err);
    }
    if (rc == AS_OK && ts->nchildren) rc = rows_keep(all, want, nwant, err);
    else as_child_rows_free(want, nwant);
    /* sent while the rest is made, PG_COPY_CHUNK bytes at a time */
    if (rc == AS_OK && data.len - sent >= PG_COPY_CHUNK) {
      PGresult *r = NULL;
      if (!started && pg_copy_start(n->conn, as_buf_cstr(&sql), &r) != AS_OK) {
        rc = pg_fail(n->conn, r, "write child rows (copy)", err);
        if (rc != AS_RETRY && r) rc = err->code = AS_EDATA;
      } else {
        started = true;
        if (pg_copy_put(n->conn, data.data + sent, data.len - sent) == AS_OK) sent = data.len;
        else rc = AS_RETRY; /* the connection failed: the finish below says why */
      }
      PQclear(r);
    }
  }
  if (started) { /* a failure before the end (rc set) abandons the COPY: the caller rolls back */
    PGresult *r = NULL;
    bool ok = rc == AS_OK && pg_copy_put(n->conn, data.data + sent, data.len - sent) == AS_OK;
    if (pg_copy_finish(n->conn, ok, &r) != AS_OK && (rc == AS_OK || rc == AS_RETRY)) {
      rc = pg_fail(n->conn, r, "write child rows (copy)", err);
      if (rc != AS_RETRY && r) rc = err->code = AS_EDATA;
    }
    PQclear(r);
  } else if (rc == AS_OK && data.len) {
    PGresult *r = NULL;
    if (pg_copy_in(n->conn, as_buf_cstr(&sql), &data, &r) != AS_OK) {
      rc = pg_fail(n->conn, r, "write child rows (copy)", err);
      if (rc != AS_RETRY && r) rc = err->code = AS_EDATA;
    }
    PQclear(r);
  }
  as_buf_free(&data);
  as_buf_free(&sql);
  if (rc == AS_OK && ts->nchildren) rc = nested_bulk(n, ts, all, true, err); /* theirs, new too */
  else rows_free(all);
  return rc;
}

/* Child rows of a run of deltas with distinct keys whose parent rows are written: one read of
 * the existing rows per child table and chunk, then the deletes and upserts as multi-row
 * statements; for new parents (fresh) one COPY per child table. AS_EDATA: a statement
 * PostgreSQL refused (the caller rolls the run back and goes delta by delta). */
int pg_children_bulk(as_node *n, const as_delta *d, const size_t *idx, size_t cnt, bool fresh,
                     as_error *err) {
  if (cnt == 0) return AS_OK;
  const as_schema *s = d[idx[0]].schema;
  int rc = AS_OK;
  for (size_t ci = 0; fresh && rc == AS_OK && ci < s->nchildren; ci++) {
    size_t *sel = calloc(cnt, sizeof *sel), nsel = 0;
    if (!sel) return oom(err);
    for (size_t j = 0; j < cnt; j++)
      if (as_row_has(&d[idx[j]].row, s->children[ci].col)) sel[nsel++] = idx[j];
    rc = fresh_copy(n, s, ci, d, sel, nsel, err);
    free(sel);
  }
  for (size_t ci = 0; !fresh && rc == AS_OK && ci < s->nchildren; ci++) {
    const pg_table *t = child_table(n, s, ci);
    const as_schema *ts = t->s;
    size_t col = s->children[ci].col;
    as_row **have = calloc(cnt, sizeof *have);
    size_t *nhave = calloc(cnt, sizeof *nhave);
    size_t *sel = calloc(cnt, sizeof *sel);
    size_t nsel = 0;
    stmt_acc del = {0}, ups = {0};
    as_buf set = AS_BUF_INIT;
    if (!have || !nhave || !sel) rc = oom(err);
    for (size_t j = 0; rc == AS_OK && j < cnt; j++)
      if (as_row_has(&d[idx[j]].row, col)) sel[nsel++] = idx[j];
    if (rc == AS_OK) rc = bulk_read(n->conn, n, s, ci, d, sel, nsel, true, have, nhave, err);
    row_list all = {0}; /* nested children: every wanted row, whose own rows come next */
    for (size_t c = 0; rc == AS_OK && c < ts->ntable; c++) {
      if (!ts->cols[c].is_key &&
          as_buf_printf(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "", t->qcols[c], t->qcols[c]) != AS_OK)
        rc = oom(err);
    }
    char tail[4096];
    snprintf(tail, sizeof tail, " ON CONFLICT %s DO %s%s", t->conflict, set.len ? "UPDATE SET " : "NOTHING",
             set.len ? as_buf_cstr(&set) : "");
    for (size_t j = 0; rc == AS_OK && j < nsel; j++) {
      const as_delta *dj = &d[sel[j]];
      as_row *want = NULL;
      size_t nwant = 0;
      rc = as_child_rows(s, ci, &dj->row, &dj->row.v[col], &want, &nwant, err);
      for (size_t h = 0; rc == AS_OK && h < nhave[j]; h++) {
        bool kept = false;
        for (size_t w = 0; !kept && w < nwant; w++) kept = as_child_same_key(ts, &have[j][h], &want[w]);
        if (kept) continue;
        if (del.np + ts->nkey > BULK_PARAMS) rc = acc_flush(n, &del, ")", "delete child rows", err);
        if (rc == AS_OK && del.rows == 0) {
          rc = as_buf_printf(&del.sql, "DELETE FROM %s WHERE (", t->qname) != AS_OK ? oom(err) : AS_OK;
          for (size_t k = 0; rc == AS_OK && k < ts->nkey; k++)
            if (as_buf_printf(&del.sql, "%s%s", k ? ", " : "", t->qcols[ts->key_idx[k]]) != AS_OK) rc = oom(err);
          if (rc == AS_OK && as_buf_append_str(&del.sql, ") IN (VALUES ") != AS_OK) rc = oom(err);
        }
        if (rc == AS_OK) rc = acc_tuple(&del, t, &have[j][h], ts->key_idx, ts->nkey, err);
      }
      for (size_t w = 0; rc == AS_OK && w < nwant; w++) {
        bool same = false;
        for (size_t h = 0; !same && h < nhave[j]; h++)
          same = as_child_same_key(ts, &have[j][h], &want[w]) && same_table_values(ts, &have[j][h], &want[w]);
        if (same) continue;
        if (ups.np + ts->ntable > BULK_PARAMS) rc = acc_flush(n, &ups, tail, "write child rows", err);
        if (rc == AS_OK && ups.rows == 0) {
          rc = as_buf_printf(&ups.sql, "INSERT INTO %s (", t->qname) != AS_OK ? oom(err) : AS_OK;
          for (size_t c = 0; rc == AS_OK && c < ts->ntable; c++)
            if (as_buf_printf(&ups.sql, "%s%s", c ? ", " : "", t->qcols[c]) != AS_OK) rc = oom(err);
          if (rc == AS_OK && as_buf_append_str(&ups.sql, ") " PG_OVERRIDING "VALUES ") != AS_OK) rc = oom(err);
        }
        if (rc == AS_OK) rc = acc_tuple(&ups, t, &want[w], NULL, ts->ntable, err);
      }
      if (rc == AS_OK && ts->nchildren) rc = rows_keep(&all, want, nwant, err);
      else as_child_rows_free(want, nwant);
    }
    /* deletes first: a row's key may come back in another row */
    if (rc == AS_OK) rc = acc_flush(n, &del, ")", "delete child rows", err);
    if (rc == AS_OK) rc = acc_flush(n, &ups, tail, "write child rows", err);
    if (rc == AS_OK && ts->nchildren) rc = nested_bulk(n, ts, &all, false, err);
    else rows_free(&all);
    for (size_t j = 0; have && j < cnt; j++) as_child_rows_free(have[j], nhave ? nhave[j] : 0);
    free(have);
    free(nhave);
    free(sel);
    acc_free(&del);
    acc_free(&ups);
    as_buf_free(&set);
  }
  return rc;
}

int pg_children_fill_many(PGconn *c, as_node *n, as_delta *d, size_t cnt, as_error *err) {
  if (cnt == 0) return AS_OK;
  const as_schema *s = d[0].schema;
  size_t *idx = calloc(cnt, sizeof *idx);
  as_row **have = calloc(cnt, sizeof *have);
  size_t *nhave = calloc(cnt, sizeof *nhave);
  int rc = idx && have && nhave ? AS_OK : oom(err);
  for (size_t j = 0; j < cnt; j++) {
    if (idx) idx[j] = j;
  }
  for (size_t ci = 0; rc == AS_OK && ci < s->nchildren; ci++) {
    rc = bulk_read(c, n, s, ci, d, idx, cnt, false, have, nhave, err);
    if (rc == AS_OK) rc = fill_nested(c, n, s->children[ci].tab, have, nhave, cnt, err);
    for (size_t j = 0; rc == AS_OK && j < cnt; j++) {
      as_value v;
      rc = as_child_array(s, ci, have[j], nhave[j], &v, err);
      if (rc == AS_OK) as_row_put(&d[j].row, s->children[ci].col, &v);
    }
    for (size_t j = 0; j < cnt; j++) {
      as_child_rows_free(have[j], nhave[j]);
      have[j] = NULL;
      nhave[j] = 0;
    }
  }
  free(idx);
  free(have);
  free(nhave);
  return rc;
}
