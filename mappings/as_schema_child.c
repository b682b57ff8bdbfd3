/* as_schema_child.c — what a mapping's child tables add to it (as_schema.h, as_child):
 * each child's array column, its element schema and its child table schema.
 *
 * Decisions:
 * - The array column is named after the array field and typed json (type name "array"); a
 *   parent column of that name is an error at the child (a row cannot hold both).
 * - The element schema has the element columns and no key: it converts one element with
 *   as_doc_to_row / as_row_to_doc, so elements follow the parent's value rules exactly.
 * - The child table schema is a plain mapping schema to the SQL adapters (DDL, statements,
 *   reads): parent key columns (types of the parent key), "position" (int64), the element
 *   columns; its key is parent key + element key, or parent key + position.
 * - Nested children (an array inside an element): the child table schema is their parent, so
 *   it gets their array columns (after its table columns) like a mapping; the element schema
 *   gets the same array columns, as plain json columns, after the element columns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_schema.h"
#include "as_yaml.h"

static int nomem(as_error *err) {
  return as_error_set(err, AS_DOM_CONFIG, AS_ERR, "out of memory");
}

static char **split_dup(const char *field, size_t *n) {
  size_t k = 1;
  for (const char *p = field; *p; p++) k += *p == '.';
  char **parts = calloc(k, sizeof *parts);
  if (!parts) return NULL;
  const char *p = field;
  for (size_t i = 0; i < k; i++) {
    const char *e = strchr(p, '.');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (!(parts[i] = strndup(p, len))) {
      for (size_t j = 0; j < i; j++) free(parts[j]);
      free(parts);
      return NULL;
    }
    p = e ? e + 1 : p + len;
  }
  *n = k;
  return parts;
}

/* A column named name (field = name) of type t. */
static int column_make(as_column *c, const char *name, const char *field, as_type t,
                       const char *type_name, as_mark mark) {
  memset(c, 0, sizeof *c);
  c->name = strdup(name);
  c->field = strdup(field);
  c->type_name = strdup(type_name);
  c->type = t;
  c->mark = mark;
  if (!c->name || !c->field || !c->type_name) return AS_ERR;
  return (c->path = split_dup(field, &c->npath)) ? AS_OK : AS_ERR;
}

static int column_copy(as_column *dst, const as_column *src) {
  *dst = *src;
  dst->name = strdup(src->name);
  dst->field = strdup(src->field);
  dst->type_name = strdup(src->type_name);
  dst->path = NULL;
  dst->npath = 0;
  if (!dst->name || !dst->field || !dst->type_name) return AS_ERR;
  if (src->catch_all) return AS_OK;
  return (dst->path = split_dup(src->field, &dst->npath)) ? AS_OK : AS_ERR;
}

/* A schema of its own, attached at *slot at once: whatever fails later, the mapping's
 * as_schema_free releases it (this file never frees a schema itself). */
static as_schema *schema_new(const as_schema *s, as_schema **slot, const char *name,
                             const char *table, size_t ncols) {
  as_schema *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  *slot = t;
  t->name = strdup(name);
  t->file = strdup(s->file ? s->file : "");
  t->table = strdup(table);
  t->collection = strdup(s->collection ? s->collection : "");
  t->cols = calloc(ncols, sizeof *t->cols);
  t->key_idx = calloc(ncols, sizeof *t->key_idx);
  t->catch_all_idx = -1;
  t->conflict.clock_idx = -1;
  t->on_error = s->on_error;
  t->mark = s->mark;
  if (!t->name || !t->file || !t->table || !t->collection || !t->cols || !t->key_idx) return NULL;
  return t;
}

/* The element schema: the element columns, no key. */
static int element_schema(const as_schema *s, as_child *ch) {
  char name[300];
  snprintf(name, sizeof name, "%s.%s", s->name, ch->field);
  as_schema *e = schema_new(s, &ch->elem, name, ch->table, ch->ncols);
  if (!e) return AS_ERR;
  for (size_t i = 0; i < ch->ncols; i++) {
    e->ncols++; /* counted first: a half-copied column is freed too */
    if (column_copy(&e->cols[i], &ch->cols[i]) != AS_OK) return AS_ERR;
    e->cols[i].is_key = false;
  }
  e->ntable = e->ncols;
  e->catch_all_idx = ch->catch_all_idx;
  return AS_OK;
}

/* The child table schema: parent key columns, position, element columns. */
static int table_schema(const as_schema *s, as_child *ch) {
  char name[300];
  snprintf(name, sizeof name, "%s.%s", s->name, ch->field);
  as_schema *t = schema_new(s, &ch->tab, name, ch->table, s->nkey + 1 + ch->ncols);
  if (!t) return AS_ERR;
  int rc = AS_OK;
  for (size_t k = 0; rc == AS_OK && k < s->nkey; k++, t->ncols++) {
    const as_column *pk = &s->cols[s->key_idx[k]];
    rc = column_make(&t->cols[k], ch->parent_cols[k], ch->parent_cols[k], pk->type,
                     pk->type_name, ch->mark);
    t->cols[k].is_key = t->cols[k].required = true;
    t->key_idx[t->nkey++] = k;
  }
  if (rc == AS_OK) {
    rc = column_make(&t->cols[s->nkey], AS_CHILD_POSITION, AS_CHILD_POSITION, AS_T_INT64,
                     "bigint", ch->mark);
    t->cols[s->nkey].required = true;
    t->ncols++;
  }
  for (size_t i = 0; rc == AS_OK && i < ch->ncols; i++, t->ncols++) {
    rc = column_copy(&t->cols[t->ncols], &ch->cols[i]);
  }
  if (rc != AS_OK) return AS_ERR;
  size_t first = s->nkey + 1;
  size_t id = ch->key >= 0 ? first + (size_t)ch->key : s->nkey;
  t->cols[id].is_key = t->cols[id].required = true;
  t->key_idx[t->nkey++] = id;
  t->catch_all_idx = ch->catch_all_idx >= 0 ? (int)first + ch->catch_all_idx : -1;
  t->ntable = t->ncols;
  return AS_OK;
}

int as_schema_children_build(as_schema *s, as_error *err) {
  if (s->nchildren == 0) return AS_OK;
  as_column *cols = realloc(s->cols, (s->ncols + s->nchildren) * sizeof *cols);
  if (!cols) return nomem(err);
  s->cols = cols;
  for (size_t i = 0; i < s->nchildren; i++) {
    as_child *ch = &s->children[i];
    for (size_t c = 0; c < s->ncols; c++) {
      if (strcmp(s->cols[c].name, ch->field) == 0) {
        return as_yaml_error(err, &ch->mark, "child table \"%s\": its array is the mapping's "
                             "column \"%s\", and there is already a column of that name",
                             ch->table, ch->field);
      }
    }
    as_column *c = &s->cols[s->ncols];
    int rc = column_make(c, ch->field, ch->field, AS_T_JSON, "array", ch->mark);
    s->ncols++; /* freed with the schema even when half built */
    if (rc != AS_OK) return nomem(err);
    c->child = (int)i + 1;
    ch->col = s->ncols - 1;
    if (element_schema(s, ch) != AS_OK || table_schema(s, ch) != AS_OK) return nomem(err);
  }
  return AS_OK;
}

int as_schema_child_elem_arrays(as_child *ch, as_error *err) {
  const as_schema *tab = ch->tab;
  as_schema *e = ch->elem;
  if (!tab->nchildren) return AS_OK;
  as_column *cols = realloc(e->cols, (e->ncols + tab->nchildren) * sizeof *cols);
  if (!cols) return nomem(err);
  e->cols = cols;
  for (size_t g = 0; g < tab->nchildren; g++) {
    const as_child *gc = &tab->children[g];
    int rc = column_make(&e->cols[e->ncols], gc->field, gc->field, AS_T_JSON, "array", gc->mark);
    e->ncols++;
    if (rc != AS_OK) return nomem(err);
    e->cols[e->ncols - 1].inner_array = true;
  }
  e->ntable = e->ncols;
  return AS_OK;
}

size_t as_schema_tables(const as_schema *s, const char **out, size_t max) {
  size_t n = 0;
  if (n < max) out[n] = s->table;
  n++;
  for (size_t i = 0; i < s->nchildren; i++) {
    const as_schema *t = s->children[i].tab;
    if (!t) { /* not built yet: the child's own name */
      if (n < max) out[n] = s->children[i].table;
      n++;
      continue;
    }
    n += as_schema_tables(t, n < max ? out + n : NULL, n < max ? max - n : 0);
  }
  return n;
}

const as_schema *as_schema_child_tab(const as_schema *s, const char *table, size_t *top) {
  for (size_t i = 0; i < s->nchildren; i++) {
    const as_schema *t = s->children[i].tab;
    size_t ignored;
    if (t && (strcmp(t->table, table) == 0 || as_schema_child_tab(t, table, &ignored))) {
      *top = i;
      return strcmp(t->table, table) == 0 ? t : as_schema_child_tab(t, table, &ignored);
    }
  }
  return NULL;
}

bool as_schema_has_table(const as_schema *s, const char *table) {
  if (strcmp(s->table, table) == 0) return true;
  for (size_t i = 0; i < s->nchildren; i++) {
    const as_schema *t = s->children[i].tab;
    if (t ? as_schema_has_table(t, table) : strcmp(s->children[i].table, table) == 0) return true;
  }
  return false;
}

const char *as_schema_shared_table(const as_schema *a, const as_schema *b) {
  if (as_schema_has_table(b, a->table)) return a->table;
  for (size_t i = 0; i < a->nchildren; i++) {
    const as_schema *t = a->children[i].tab;
    const char *x = t ? as_schema_shared_table(t, b)
                      : as_schema_has_table(b, a->children[i].table) ? a->children[i].table : NULL;
    if (x) return x;
  }
  return NULL;
}
