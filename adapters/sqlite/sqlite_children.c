/* sqlite_children.c — child tables on a SQLite node (as_schema.h, as_child; as_children.h).
 *
 * - Sink: a delta that sets a mapping's array column brings that parent's child rows to the
 *   array: rows whose key is gone are deleted, new or changed rows upserted, equal rows left
 *   alone (so an element change is one row write). A parent delete deletes its child rows
 *   first (the foreign key cascades only where foreign keys are enabled).
 * - Reads (read_row, snapshot, capture): an array column is read from its child table at read
 *   time, ordered by position.
 * - Capture: the child tables have the parent's triggers; a change of a child row is an update
 *   of its parent's array column, read when the changelog is polled (state, not the row's own
 *   change). A child row whose parent does not exist is a dead letter; once both are gone the
 *   change is left out (the parent's delete says it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_children.h"
#include "sqlite_internal.h"

static int oom(as_error *err) { return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory"); }

/* " WHERE "p1" = ?1 AND ..." over the first nkey columns of tab (the parent key). */
static void parent_where(as_buf *b, const as_schema *tab, size_t nkey) {
  as_buf_append_str(b, " WHERE ");
  for (size_t k = 0; k < nkey; k++) {
    if (k) as_buf_append_str(b, " AND ");
    as_sql_quote_ident(tab->cols[k].name, b);
    as_buf_printf(b, " = ?%zu", k + 1);
  }
}

static int bind_parent(sqlite3_stmt *st, const as_schema *s, const as_row *parent,
                       as_error *err) {
  for (size_t k = 0; k < s->nkey; k++) {
    int rc = sq_bind_value(st, (int)k + 1, &parent->v[s->key_idx[k]], err);
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

int sq_child_read(sqlite3 *db, const as_schema *s, size_t ci, const as_row *parent,
                  as_row **rows, size_t *nrows, as_error *err) {
  const as_schema *tab = s->children[ci].tab;
  as_buf sql = AS_BUF_INIT;
  sqlite3_stmt *st = NULL;
  as_row *out = NULL;
  size_t n = 0, cap = 0;
  *rows = NULL;
  *nrows = 0;
  sq_select_sql(&sql, tab);
  parent_where(&sql, tab, s->nkey);
  as_buf_append_str(&sql, " ORDER BY ");
  as_child_order_sql(tab, NULL, &sql);
  int ret = as_buf_cstr(&sql) ? AS_OK : oom(err);
  if (ret == AS_OK) {
    int rc = sqlite3_prepare_v2(db, as_buf_cstr(&sql), -1, &st, NULL);
    if (rc != SQLITE_OK) ret = sq_fail(db, rc, err, "read child rows");
  }
  if (ret == AS_OK) ret = bind_parent(st, s, parent, err);
  int rc = SQLITE_DONE;
  while (ret == AS_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      size_t nc = cap ? 2 * cap : 8;
      as_row *g = realloc(out, nc * sizeof *g);
      if (!g) {
        ret = oom(err);
        break;
      }
      memset(g + cap, 0, (nc - cap) * sizeof *g);
      out = g;
      cap = nc;
    }
    if (as_row_init(&out[n], tab->ncols) != AS_OK) {
      ret = oom(err);
      break;
    }
    ret = sq_row_from_stmt(tab, st, &out[n++], err);
  }
  if (ret == AS_OK && rc != SQLITE_DONE) ret = sq_fail(db, rc, err, "read child rows");
  for (size_t j = 0; ret == AS_OK && tab->nchildren && j < n; j++) /* nested children */
    ret = sq_children_fill(db, tab, &out[j], err);
  if (ret != AS_OK) as_error_prefix(err, "mapping %s, table \"%s\"", s->name, tab->table);
  sqlite3_finalize(st);
  as_buf_free(&sql);
  if (ret != AS_OK) {
    as_child_rows_free(out, n);
    return ret;
  }
  *rows = out;
  *nrows = n;
  return AS_OK;
}

int sq_children_fill(sqlite3 *db, const as_schema *s, as_row *r, as_error *err) {
  for (size_t ci = 0; ci < s->nchildren; ci++) {
    as_row *rows;
    size_t n;
    as_value v;
    int ret = sq_child_read(db, s, ci, r, &rows, &n, err);
    if (ret != AS_OK) return ret;
    ret = as_child_array(s, ci, rows, n, &v, err);
    as_child_rows_free(rows, n);
    if (ret != AS_OK) return ret;
    as_row_put(r, s->children[ci].col, &v);
  }
  return AS_OK;
}

/* Runs one write of the child table (a full-row upsert or a delete by key), with the rows
 * nested under that row (the delete first, the upsert then). */
static int child_write(as_node *n, const as_schema *tab, as_op op, const as_row *r,
                       as_error *err) {
  as_delta d = {.schema = tab, .op = op, .row = *r};
  bool missing;
  int ret = op == AS_OP_DELETE && tab->nchildren ? sq_children_delete(n, tab, r, err) : AS_OK;
  if (ret == AS_OK) ret = sq_run_delta(n, &d, &missing, err);
  if (ret == AS_OK && op != AS_OP_DELETE && tab->nchildren) ret = sq_children_write(n, &d, err);
  return ret;
}

static int sync_child(as_node *n, const as_schema *s, size_t ci, const as_delta *d,
                      as_error *err) {
  const as_schema *tab = s->children[ci].tab;
  as_row *want = NULL, *have = NULL;
  size_t nwant = 0, nhave = 0;
  int ret = as_child_rows(s, ci, &d->row, &d->row.v[s->children[ci].col], &want, &nwant, err);
  if (ret == AS_OK) ret = sq_child_read(n->db, s, ci, &d->row, &have, &nhave, err);
  for (size_t h = 0; ret == AS_OK && h < nhave; h++) {
    bool kept = false;
    for (size_t w = 0; !kept && w < nwant; w++) kept = as_child_same_key(tab, &have[h], &want[w]);
    if (!kept) ret = child_write(n, tab, AS_OP_DELETE, &have[h], err);
  }
  for (size_t w = 0; ret == AS_OK && w < nwant; w++) {
    bool same = false;
    for (size_t h = 0; !same && h < nhave; h++)
      same = as_child_same_key(tab, &have[h], &want[w]) &&
             as_child_same_values(tab, &have[h], &want[w]);
    if (!same) ret = child_write(n, tab, AS_OP_INSERT, &want[w], err);
  }
  as_child_rows_free(want, nwant);
  as_child_rows_free(have, nhave);
  return ret;
}

/* Deletes the rows of tab, and of the tables nested under it, whose first s->nkey columns
 * hold key (the key of s's row; every table under s starts with it); all rows when key is
 * NULL. Innermost first. */
static int delete_under(as_node *n, const as_schema *s, const as_schema *tab, const as_row *key,
                        as_error *err) {
  for (size_t g = 0; g < tab->nchildren; g++) {
    int ret = delete_under(n, s, tab->children[g].tab, key, err);
    if (ret != AS_OK) return ret;
  }
  as_buf sql = AS_BUF_INIT;
  sqlite3_stmt *st = NULL;
  as_buf_append_str(&sql, "DELETE FROM ");
  as_sql_quote_ident(tab->table, &sql);
  if (key) parent_where(&sql, tab, s->nkey);
  int ret = as_buf_cstr(&sql) ? AS_OK : oom(err);
  if (ret == AS_OK) {
    int rc = sqlite3_prepare_v2(n->db, as_buf_cstr(&sql), -1, &st, NULL);
    if (rc != SQLITE_OK) ret = sq_fail(n->db, rc, err, "delete child rows");
  }
  if (ret == AS_OK && key) ret = bind_parent(st, s, key, err);
  if (ret == AS_OK) {
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) ret = sq_fail(n->db, rc, err, "delete child rows");
  }
  sqlite3_finalize(st);
  as_buf_free(&sql);
  if (ret != AS_OK) as_error_prefix(err, "table \"%s\"", tab->table);
  return ret;
}

int sq_children_delete(as_node *n, const as_schema *s, const as_row *key, as_error *err) {
  for (size_t ci = 0; ci < s->nchildren; ci++) {
    int ret = delete_under(n, s, s->children[ci].tab, key, err);
    if (ret != AS_OK) return ret;
  }
  return AS_OK;
}

int sq_children_write(as_node *n, const as_delta *d, as_error *err) {
  const as_schema *s = d->schema;
  for (size_t ci = 0; ci < s->nchildren; ci++) {
    if (!d->row.set[s->children[ci].col]) continue;
    int ret = sync_child(n, s, ci, d, err);
    if (ret != AS_OK) return ret;
  }
  return AS_OK;
}

int sq_parent_exists(sqlite3 *db, const as_schema *s, const as_row *key, bool *exists,
                     as_error *err) {
  as_buf sql = AS_BUF_INIT;
  sqlite3_stmt *st = NULL;
  as_buf_append_str(&sql, "SELECT 1 FROM ");
  as_sql_quote_ident(s->table, &sql);
  sq_key_where(&sql, s);
  int ret = as_buf_cstr(&sql) ? AS_OK : oom(err);
  if (ret == AS_OK) {
    int rc = sqlite3_prepare_v2(db, as_buf_cstr(&sql), -1, &st, NULL);
    if (rc != SQLITE_OK) ret = sq_fail(db, rc, err, "read parent row");
  }
  if (ret == AS_OK) ret = bind_parent(st, s, key, err);
  if (ret == AS_OK) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) *exists = rc == SQLITE_ROW;
    else ret = sq_fail(db, rc, err, "read parent row");
  }
  sqlite3_finalize(st);
  as_buf_free(&sql);
  return ret;
}
