/* sqlite_ddl.c — install/uninstall: bookkeeping tables (versioned), mapped tables, capture
 * triggers. Identifiers are quoted ("" doubling); no value is ever put into SQL text. */
#include <stdlib.h>
#include <string.h>

#include "as_log.h"
#include "sqlite_internal.h"
#include "sqlite_sql.h"

int sq_quote_literal(as_buf *b, const char *s) {
  if (as_buf_putc(b, '\'')) return AS_ERR;
  for (const char *p = s; *p; p++) {
    if (*p == '\'' && as_buf_putc(b, '\'')) return AS_ERR;
    if (as_buf_putc(b, (uint8_t)*p)) return AS_ERR;
  }
  return as_buf_putc(b, '\'') ? AS_ERR : AS_OK;
}

/* Upgrade steps: steps[v] brings version v-1 to v. */
static const char *const *const steps[SQ_SCHEMA_VERSION + 1] = {NULL, SQ_STEP1};

void sq_upsert_sql(as_buf *b, const as_schema *s, const uint8_t *mask) {
  as_buf_append_str(b, "INSERT INTO ");
  as_sql_quote_ident(s->table, b);
  as_buf_append_str(b, " (");
  int np = 0;
  for (size_t i = 0; i < s->ntable; i++) {
    if (!mask[i]) continue;
    if (np++) as_buf_append_str(b, ", ");
    as_sql_quote_ident(s->cols[i].name, b);
  }
  as_buf_append_str(b, ") VALUES (");
  for (int k = 1; k <= np; k++) as_buf_printf(b, "%s?%d", k > 1 ? ", " : "", k);
  as_buf_append_str(b, ") ON CONFLICT (");
  for (size_t k = 0; k < s->nkey; k++) {
    if (k) as_buf_append_str(b, ", ");
    as_sql_quote_ident(s->cols[s->key_idx[k]].name, b);
  }
  as_buf_append_str(b, ") DO ");
  int nset = 0;
  for (size_t i = 0; i < s->ntable; i++) {
    if (!mask[i] || s->cols[i].is_key) continue;
    as_buf_append_str(b, nset++ ? ", " : "UPDATE SET ");
    as_sql_quote_ident(s->cols[i].name, b);
    as_buf_append_str(b, " = excluded.");
    as_sql_quote_ident(s->cols[i].name, b);
  }
  if (!nset) as_buf_append_str(b, "NOTHING");
}

/* JSON form of one column value inside a trigger (see README.md "changelog"). REAL values are
 * printed with 20 significant digits (json_object's own %.15g is lossy), ±Inf as text, BLOBs
 * as {"$b": hex} because JSON cannot hold blobs (json_object would fail the user's write),
 * TEXT through `|| ''`, which drops the JSON subtype a value made by json_set() & co. carries
 * into the trigger (json_object would embed it as an object, not as the column's text). */
static void cell_expr(as_buf *b, const char *row, const char *col) {
  as_buf x = AS_BUF_INIT;
  as_buf_append_str(&x, row);
  as_buf_putc(&x, '.');
  as_sql_quote_ident(col, &x);
  const char *X = as_buf_cstr(&x);
  as_buf_append_str(b, "CASE typeof(");
  as_buf_append_str(b, X);
  as_buf_append_str(b, ") WHEN 'real' THEN CASE WHEN ");
  as_buf_append_str(b, X);
  as_buf_append_str(b, " = 9e999 THEN 'Infinity' WHEN ");
  as_buf_append_str(b, X);
  as_buf_append_str(b, " = -9e999 THEN '-Infinity' ELSE json(printf('%!.20e', ");
  as_buf_append_str(b, X);
  as_buf_append_str(b, ")) END WHEN 'blob' THEN json_object('$b', hex(");
  as_buf_append_str(b, X);
  as_buf_append_str(b, ")) WHEN 'text' THEN ");
  as_buf_append_str(b, X);
  as_buf_append_str(b, " || '' ELSE ");
  as_buf_append_str(b, X);
  as_buf_append_str(b, " END");
  as_buf_free(&x);
}

static void json_row(as_buf *b, const as_schema *s, const char *row, bool keys_only) {
  as_buf_append_str(b, "json_object(");
  int n = 0;
  for (size_t i = 0; i < s->ntable; i++) {
    if (keys_only && !s->cols[i].is_key) continue;
    if (n++) as_buf_append_str(b, ", ");
    sq_quote_literal(b, s->cols[i].name);
    as_buf_append_str(b, ", ");
    cell_expr(b, row, s->cols[i].name);
  }
  as_buf_append_str(b, ")");
}

static void trigger_name(as_buf *b, const char *table, const char *suffix) {
  as_buf n = AS_BUF_INIT;
  as_buf_printf(&n, "_arraysync_%s_%s", table, suffix);
  as_sql_quote_ident(as_buf_cstr(&n), b);
  as_buf_free(&n);
}

static void child_rows_expr(as_buf *b, const as_schema *owner, size_t ci, const char *row,
                            const as_schema *rowtab, int depth);

/* json_object of the row `alias` of table t: its columns, then (nested children) each child
 * table's rows of that row under SQ_CHILD_MEMBER "<table>". */
static void row_image(as_buf *b, const as_schema *t, const char *alias, int depth) {
  json_row(b, t, alias, false);
  if (!t->nchildren) return;
  b->len--; /* reopen json_object( ... ) */
  for (size_t ci = 0; ci < t->nchildren; ci++) {
    as_buf name = AS_BUF_INIT;
    as_buf_printf(&name, SQ_CHILD_MEMBER "%s", t->children[ci].table);
    as_buf_append_str(b, ", ");
    sq_quote_literal(b, as_buf_cstr(&name));
    as_buf_append_str(b, ", json(");
    child_rows_expr(b, t, ci, alias, NULL, depth);
    as_buf_append_str(b, ")");
    as_buf_free(&name);
  }
  as_buf_append_str(b, ")");
}

/* (SELECT json_group_array(json(r)) FROM (SELECT <row_image of child table t> AS r FROM t AS cD
 * WHERE <parent key columns> = <row>.<...> ORDER BY position)): the child rows of child ci of
 * `owner` whose parent `row` names. row is a row of rowtab, whose first owner->nkey columns
 * hold the parent key (a child table, or a nested child table under it), or, when rowtab is
 * NULL, a row of owner itself. depth: nesting level, for distinct aliases. */
static void child_rows_expr(as_buf *b, const as_schema *owner, size_t ci, const char *row,
                            const as_schema *rowtab, int depth) {
  const as_schema *t = owner->children[ci].tab;
  char alias[16];
  snprintf(alias, sizeof alias, "c%d", depth);
  as_buf_append_str(b, "(SELECT json_group_array(json(r)) FROM (SELECT ");
  row_image(b, t, alias, depth + 1);
  as_buf_append_str(b, " AS r FROM ");
  as_sql_quote_ident(t->table, b);
  as_buf_printf(b, " AS %s WHERE ", alias);
  for (size_t k = 0; k < owner->nkey; k++) {
    if (k) as_buf_append_str(b, " AND ");
    as_buf_printf(b, "%s.", alias);
    as_sql_quote_ident(t->cols[k].name, b);
    as_buf_printf(b, " IS %s.", row);
    as_sql_quote_ident(rowtab ? rowtab->cols[k].name : owner->cols[owner->key_idx[k]].name, b);
  }
  as_buf_append_str(b, " ORDER BY ");
  as_child_order_sql(t, alias, b);
  as_buf_append_str(b, "))");
}

/* The changelog image of a row change of child table ci of owner, or of a table nested under
 * it (rowtab: the table whose row `row` is; its first owner->nkey columns hold the mapping's
 * key): the mapping row's key (named as in child ci's table), whether that row exists, and
 * all its rows of child ci (with their nested rows) as they are at this point of the
 * transaction: {"parent": {...}, "exists": 0|1, "rows": [{...}, ...]}. */
static void child_image(as_buf *b, const as_schema *owner, size_t ci, const char *row,
                        const as_schema *rowtab) {
  const as_schema *t = owner->children[ci].tab;
  as_buf_append_str(b, "json_object('parent', json_object(");
  for (size_t k = 0; k < owner->nkey; k++) {
    if (k) as_buf_append_str(b, ", ");
    sq_quote_literal(b, t->cols[k].name);
    as_buf_append_str(b, ", ");
    cell_expr(b, row, rowtab->cols[k].name);
  }
  as_buf_append_str(b, "), 'exists', (SELECT count(*) FROM ");
  as_sql_quote_ident(owner->table, b);
  as_buf_append_str(b, " AS p WHERE ");
  for (size_t k = 0; k < owner->nkey; k++) {
    if (k) as_buf_append_str(b, " AND ");
    as_buf_append_str(b, "p.");
    as_sql_quote_ident(owner->cols[owner->key_idx[k]].name, b);
    as_buf_printf(b, " IS %s.", row);
    as_sql_quote_ident(rowtab->cols[k].name, b);
  }
  as_buf_append_str(b, "), 'rows', ");
  child_rows_expr(b, owner, ci, row, rowtab, 0);
  as_buf_append_str(b, ")");
}

/* The capture trigger of table s for op; owner: the mapping when s is its child table ci
 * (the image then is child_image's), else NULL. */
static void trigger_sql(as_buf *b, const as_schema *s, const as_schema *owner, size_t ci,
                        const char *op) {
  const char *suffix = op[0] == 'i' ? "ins" : op[0] == 'u' ? "upd" : "del";
  const char *event = op[0] == 'i' ? "INSERT" : op[0] == 'u' ? "UPDATE" : "DELETE";
  as_buf_append_str(b, "CREATE TRIGGER ");
  trigger_name(b, s->table, suffix);
  as_buf_printf(b, " AFTER %s ON ", event);
  as_sql_quote_ident(s->table, b);
  /* a write of the connector marked local-only is not logged at all (adapter.h) */
  as_buf_append_str(b, " WHEN " SQ_TRIGGER_ORIGIN " IS NOT '" AS_ORIGIN_LOCAL_ONLY "'");
  if (op[0] == 'u') {
    /* an UPDATE that changes no mapped column writes nothing */
    as_buf_append_str(b, " AND (");
    for (size_t i = 0; i < s->ntable; i++) {
      if (i) as_buf_append_str(b, " OR ");
      as_buf_append_str(b, "OLD.");
      as_sql_quote_ident(s->cols[i].name, b);
      as_buf_append_str(b, " IS NOT NEW.");
      as_sql_quote_ident(s->cols[i].name, b);
    }
    as_buf_append_str(b, ")");
  }
  as_buf_append_str(b,
                    " BEGIN INSERT INTO _arraysync_changelog (tbl, op, old, new, origin, "
                    "ts) VALUES (");
  sq_quote_literal(b, s->table);
  as_buf_printf(b, ", '%s', ", op);
  if (op[0] == 'i')
    as_buf_append_str(b, "NULL");
  else if (owner)
    child_image(b, owner, ci, "OLD", s);
  else
    json_row(b, s, "OLD", op[0] == 'd'); /* a delete needs the key only */
  as_buf_append_str(b, ", ");
  if (op[0] == 'd')
    as_buf_append_str(b, "NULL");
  else if (owner)
    child_image(b, owner, ci, "NEW", s);
  else
    row_image(b, s, "NEW", 0); /* a parent row: its columns and its child rows */
  as_buf_append_str(b, ", " SQ_TRIGGER_ORIGIN ", " SQ_TRIGGER_TS "); END");
}

static int meta_version(sqlite3 *db, int *out, as_error *err) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, SQ_META_GET, -1, &st, NULL);
  if (rc != SQLITE_OK) return sq_fail(db, rc, err, "read schema_version");
  sqlite3_bind_text(st, 1, "schema_version", -1, SQLITE_STATIC);
  *out = 0;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *out = atoi((const char *)sqlite3_column_text(st, 0));
  int ret =
      (rc == SQLITE_ROW || rc == SQLITE_DONE) ? AS_OK : sq_fail(db, rc, err, "read schema_version");
  sqlite3_finalize(st);
  return ret;
}

static int meta_put(sqlite3 *db, const char *key, const char *value, as_error *err) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, SQ_META_PUT, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
  }
  int ret = rc == SQLITE_DONE ? AS_OK : sq_fail(db, rc, err, "write _arraysync_meta");
  sqlite3_finalize(st);
  return ret;
}

/* Drops every trigger install ever created (also for tables no longer mapped). */
static int drop_triggers(sqlite3 *db, as_error *err) {
  sqlite3_stmt *st = NULL;
  as_buf names = AS_BUF_INIT; /* NUL-separated */
  as_buf sql = AS_BUF_INIT;
  int ret = AS_OK;
  int rc = sqlite3_prepare_v2(db, SQ_TRIGGERS_LIST, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    ret = sq_fail(db, rc, err, "list triggers");
    goto cleanup;
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    as_buf_append_str(&names, (const char *)sqlite3_column_text(st, 0));
    as_buf_putc(&names, 0);
  }
  if (rc != SQLITE_DONE) {
    ret = sq_fail(db, rc, err, "list triggers");
    goto cleanup;
  }
  for (size_t off = 0; off < names.len; off += strlen((char *)names.data + off) + 1) {
    as_buf_reset(&sql);
    as_buf_append_str(&sql, "DROP TRIGGER IF EXISTS ");
    as_sql_quote_ident((char *)names.data + off, &sql);
    if ((ret = sq_exec(db, as_buf_cstr(&sql), err)) != AS_OK) goto cleanup;
  }
cleanup:
  sqlite3_finalize(st);
  as_buf_free(&names);
  as_buf_free(&sql);
  return ret;
}

/* Creates the mapped table when missing, else checks its columns and key constraint. */
static int ensure_table(as_node *n, const as_schema *s, as_error *err) {
  sqlite3_stmt *st = NULL;
  as_buf sql = AS_BUF_INIT;
  uint8_t *mask = NULL;
  bool *seen = calloc(s->ncols + 1, sizeof *seen);
  int ret = AS_OK, nrows = 0;
  if (!seen) return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  int rc = sqlite3_prepare_v2(n->db, SQ_TABLE_INFO, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    ret = sq_fail(n->db, rc, err, "table_info");
    goto cleanup;
  }
  sqlite3_bind_text(st, 1, s->table, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    nrows++;
    const char *name = (const char *)sqlite3_column_text(st, 0);
    for (size_t i = 0; i < s->ntable; i++) {
      if (name && sqlite3_stricmp(name, s->cols[i].name) == 0) seen[i] = true;
    }
  }
  if (rc != SQLITE_DONE) {
    ret = sq_fail(n->db, rc, err, "table_info");
    goto cleanup;
  }
  if (nrows == 0) {
    if ((ret = as_ddl_sqlite(s, &sql, err)) != AS_OK) goto cleanup;
    if ((ret = sq_exec(n->db, as_buf_cstr(&sql), err)) != AS_OK) {
      as_error_prefix(err, "create table \"%s\" (mapping %s)", s->table, s->name);
      goto cleanup;
    }
    AS_LOG(AS_LOG_INFO, n->comp_sink, "created table \"%s\" for mapping %s", s->table, s->name);
    goto cleanup;
  }
  for (size_t i = 0; i < s->ntable; i++) {
    if (!seen[i]) {
      ret = as_error_set(
          err, AS_DOM_SQLITE, AS_EINVAL, "%s:%d:%d: table \"%s\" has no column \"%s\" (mapping %s)",
          s->cols[i].mark.file ? s->cols[i].mark.file
          : s->file            ? s->file
                               : "?",
          s->cols[i].mark.line, s->cols[i].mark.col, s->table, s->cols[i].name, s->name);
      goto cleanup;
    }
  }
  /* the upsert needs a PRIMARY KEY or UNIQUE constraint on exactly the key columns */
  mask = malloc(s->ncols ? s->ncols : 1);
  if (!mask) {
    ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
    goto cleanup;
  }
  memset(mask, 1, s->ncols);
  sq_upsert_sql(&sql, s, mask);
  sqlite3_finalize(st);
  st = NULL;
  rc = sqlite3_prepare_v2(n->db, as_buf_cstr(&sql), -1, &st, NULL);
  if (rc != SQLITE_OK) {
    ret = as_error_set(err, AS_DOM_SQLITE, AS_EINVAL,
                       "table \"%s\" (mapping %s) cannot take upserts on its key: %s", s->table,
                       s->name, sqlite3_errmsg(n->db));
    goto cleanup;
  }
cleanup:
  sqlite3_finalize(st);
  as_buf_free(&sql);
  free(mask);
  free(seen);
  return ret;
}

static int create_triggers(as_node *n, const as_schema *s, const as_schema *owner, size_t ci,
                           as_error *err) {
  static const char *const ops[] = {"insert", "update", "delete"};
  as_buf sql = AS_BUF_INIT;
  int ret = AS_OK;
  for (int k = 0; k < 3 && ret == AS_OK; k++) {
    as_buf_reset(&sql);
    trigger_sql(&sql, s, owner, ci, ops[k]);
    ret = sq_exec(n->db, as_buf_cstr(&sql), err);
    if (ret != AS_OK) as_error_prefix(err, "create %s trigger on \"%s\"", ops[k], s->table);
  }
  as_buf_free(&sql);
  return ret;
}

/* Child table tab of child ci of mapping s (or one nested under it) and the tables nested
 * under tab: created or checked, with the triggers that capture their changes as changes of
 * the mapping row. */
static int child_tables_install(as_node *n, const as_schema *s, size_t ci, const as_schema *tab,
                                as_error *err) {
  int ret = ensure_table(n, tab, err);
  if (ret == AS_OK) ret = create_triggers(n, tab, s, ci, err);
  for (size_t g = 0; ret == AS_OK && g < tab->nchildren; g++)
    ret = child_tables_install(n, s, ci, tab->children[g].tab, err);
  return ret;
}

int sq_install(as_node *n, as_error *err) {
  int ret, version = 0;
  char vbuf[16];
  if ((ret = sq_exec(n->db, SQ_BEGIN_IMMEDIATE, err)) != AS_OK) return ret;
  if ((ret = sq_exec(n->db, SQ_META_CREATE, err)) != AS_OK) goto fail;
  if ((ret = meta_version(n->db, &version, err)) != AS_OK) goto fail;
  if (version > SQ_SCHEMA_VERSION) {
    ret = as_error_set(err, AS_DOM_SQLITE, AS_EINVAL,
                       "%s: bookkeeping schema version %d is newer than this arraysync (%d)",
                       n->path, version, SQ_SCHEMA_VERSION);
    goto fail;
  }
  for (int v = version + 1; v <= SQ_SCHEMA_VERSION; v++) {
    for (const char *const *q = steps[v]; *q; q++) {
      if ((ret = sq_exec(n->db, *q, err)) != AS_OK) {
        as_error_prefix(err, "upgrade step %d", v);
        goto fail;
      }
    }
    AS_LOG(AS_LOG_INFO, n->comp_sink, "bookkeeping schema upgraded to version %d", v);
  }
  snprintf(vbuf, sizeof vbuf, "%d", SQ_SCHEMA_VERSION);
  if ((ret = meta_put(n->db, "schema_version", vbuf, err)) != AS_OK) goto fail;
  if ((ret = drop_triggers(n->db, err)) != AS_OK) goto fail;
  for (size_t i = 0; i < n->nschemas; i++) {
    const as_schema *s = n->schemas[i];
    if ((ret = ensure_table(n, s, err)) != AS_OK) goto fail;
    for (size_t c = 0; c < s->nchildren; c++) { /* a child table's changes are its parent's */
      if ((ret = child_tables_install(n, s, c, s->children[c].tab, err)) != AS_OK) goto fail;
    }
    if ((ret = create_triggers(n, s, NULL, 0, err)) != AS_OK) goto fail;
  }
  if ((ret = sq_exec(n->db, SQ_COMMIT, err)) != AS_OK) goto fail;
  return AS_OK;
fail:
  if (!sqlite3_get_autocommit(n->db)) sqlite3_exec(n->db, SQ_ROLLBACK, NULL, NULL, NULL);
  return ret;
}

int sq_uninstall(as_node *n, as_error *err) {
  int ret;
  as_buf sql = AS_BUF_INIT;
  if ((ret = sq_exec(n->db, SQ_BEGIN_IMMEDIATE, err)) != AS_OK) return ret;
  if ((ret = drop_triggers(n->db, err)) != AS_OK) goto fail;
  for (const char *const *t = SQ_BOOKKEEPING_TABLES; *t; t++) {
    as_buf_reset(&sql);
    as_buf_append_str(&sql, "DROP TABLE IF EXISTS ");
    as_sql_quote_ident(*t, &sql);
    if ((ret = sq_exec(n->db, as_buf_cstr(&sql), err)) != AS_OK) goto fail;
  }
  if ((ret = sq_exec(n->db, SQ_COMMIT, err)) != AS_OK) goto fail;
  as_buf_free(&sql);
  return AS_OK;
fail:
  as_buf_free(&sql);
  if (!sqlite3_get_autocommit(n->db)) sqlite3_exec(n->db, SQ_ROLLBACK, NULL, NULL, NULL);
  return ret;
}
