/* as_ddl.c — CREATE TABLE statements implied by a mapping (see as_ddl.h). */
#include "as_ddl.h"

#include <string.h>

int as_sql_quote_ident(const char *name, as_buf *out) {
  if (as_buf_putc(out, '"')) return AS_ERR;
  for (const char *p = name; *p; p++) {
    if (*p == '"' && as_buf_putc(out, '"')) return AS_ERR;
    if (as_buf_putc(out, (uint8_t)*p)) return AS_ERR;
  }
  return as_buf_putc(out, '"') ? AS_ERR : AS_OK;
}

typedef const char *(*type_fn)(as_type t);

static int column_def(as_buf *b, const char *name, const char *type, bool not_null) {
  if (as_buf_append_str(b, "  ")) return AS_ERR;
  if (as_sql_quote_ident(name, b)) return AS_ERR;
  return as_buf_printf(b, " %s%s,\n", type, not_null ? " NOT NULL" : "");
}

static int table_head(as_buf *b, const char *sql_schema, const char *table) {
  if (as_buf_append_str(b, "CREATE TABLE IF NOT EXISTS ")) return AS_ERR;
  if (sql_schema) {
    if (as_sql_quote_ident(sql_schema, b) || as_buf_putc(b, '.')) return AS_ERR;
  }
  if (as_sql_quote_ident(table, b)) return AS_ERR;
  return as_buf_append_str(b, " (\n");
}

static int key_list(as_buf *b, const as_schema *s) {
  for (size_t k = 0; k < s->nkey; k++) {
    if (k && as_buf_append_str(b, ", ")) return AS_ERR;
    if (as_sql_quote_ident(s->cols[s->key_idx[k]].name, b)) return AS_ERR;
  }
  return AS_OK;
}

/* One table: the schema's own columns (cols[0..ntable)) and its key. */
static int table(const as_schema *s, const char *sql_schema, type_fn type, as_buf *b) {
  if (table_head(b, sql_schema, s->table)) return AS_ERR;
  for (size_t i = 0; i < s->ntable; i++) {
    const as_column *c = &s->cols[i];
    if (column_def(b, c->name, type(c->type), c->required || c->is_key)) return AS_ERR;
  }
  return as_buf_append_str(b, "  PRIMARY KEY (") || key_list(b, s) ? AS_ERR : AS_OK;
}

/* The child tables of s (and theirs, after each), each with its foreign key to s. */
static int children_ddl(const as_schema *s, const char *sql_schema, type_fn type, as_buf *b) {
  for (size_t ci = 0; ci < s->nchildren; ci++) {
    const as_schema *t = s->children[ci].tab;
    if (table(t, sql_schema, type, b) || as_buf_append_str(b, "),\n  FOREIGN KEY (")) return AS_ERR;
    for (size_t k = 0; k < s->nkey; k++) {
      if (k && as_buf_append_str(b, ", ")) return AS_ERR;
      if (as_sql_quote_ident(t->cols[k].name, b)) return AS_ERR;
    }
    if (as_buf_append_str(b, ") REFERENCES ")) return AS_ERR;
    if (sql_schema && (as_sql_quote_ident(sql_schema, b) || as_buf_putc(b, '.'))) return AS_ERR;
    if (as_sql_quote_ident(s->table, b) || as_buf_append_str(b, " (") || key_list(b, s) ||
        as_buf_append_str(b, ") ON DELETE CASCADE\n);\n"))
      return AS_ERR;
    if (children_ddl(t, sql_schema, type, b)) return AS_ERR;
  }
  return AS_OK;
}

static int ddl(const as_schema *s, const char *sql_schema, type_fn type, as_buf *b) {
  if (table(s, sql_schema, type, b) || as_buf_append_str(b, ")\n);\n")) return AS_ERR;
  return children_ddl(s, sql_schema, type, b);
}

static int finish(int rc, as_buf *out, size_t start, as_error *err) {
  if (rc == AS_OK) return AS_OK;
  out->len = start;
  return as_error_set(err, AS_DOM_CONFIG, AS_ERR, "out of memory writing DDL");
}

int as_ddl_postgres(const as_schema *s, const char *sql_schema, as_buf *out, as_error *err) {
  size_t start = out->len;
  return finish(ddl(s, sql_schema, as_schema_pg_type, out), out, start, err);
}

int as_ddl_sqlite(const as_schema *s, as_buf *out, as_error *err) {
  size_t start = out->len;
  return finish(ddl(s, NULL, as_schema_sqlite_type, out), out, start, err);
}

int as_child_order_sql(const as_schema *tab, const char *alias, as_buf *out) {
  size_t pos = as_schema_column_index(tab, AS_CHILD_POSITION) >= 0
                   ? (size_t)as_schema_column_index(tab, AS_CHILD_POSITION)
                   : 0;
  size_t last = tab->key_idx[tab->nkey - 1]; /* the element key, or position itself */
  size_t cols[2] = {pos, last};
  for (size_t i = 0; i < (last == pos ? 1u : 2u); i++) {
    if ((i && as_buf_append_str(out, ", ")) || (alias && as_buf_printf(out, "%s.", alias)) ||
        as_sql_quote_ident(tab->cols[cols[i]].name, out))
      return AS_ERR;
  }
  return AS_OK;
}
