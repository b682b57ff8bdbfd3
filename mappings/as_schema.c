/* as_schema.c — mapping files: YAML tree -> validated, immutable as_schema.
 *
 * Decisions:
 * - `mapping` is required; collection and table default to it; field defaults to the column
 *   name; a column may be written `name: TYPE` as a shorthand for { field: name, type: TYPE }.
 * - Field paths: parts separated by '.', none empty, none starting with '$'; "*" alone is the
 *   catch-all (json/jsonb only, at most one, never a key column).
 * - One field, one column: two columns may not map the same path, nor a path and one of its
 *   sub-paths ("a" and "a.b"): MongoDB refuses $set on both in one update ("would create a
 *   conflict") and the change of "a" could not be told apart from a change of "a.b".
 *   A child table's array field counts as mapped the same way.
 * - Key columns are implicitly required. Key columns cannot be json or the catch-all.
 * - Children (as_schema.h, as_child): the child table holds the parent key columns
 *   (parent_key, default "<table>_<key column>") and "position", so element columns may not
 *   reuse those names; an element may have its own catch-all "*"; `key` names the element
 *   column that identifies an element (scalar, implicitly required). Each child adds its
 *   array column to the mapping, named after the field (as_schema_child.c builds it, the
 *   element schema and the child table schema); no other column may have that name.
 * - conflict.fallback (lww | script | keep-local | keep-remote) is only meaningful for
 *   strategy vector or script; a script strategy's fallback cannot be script. conflict.script resolves relative to the
 *   directory of the mapping file and must exist.
 * - conflict.call (conflicts | always, default conflicts) says when the script runs; it needs
 *   a script (strategy script, or fallback script).
 * - Table and column names longer than 63 bytes are rejected (PostgreSQL would truncate
 *   them silently). */
#include "as_schema.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "as_yaml.h"

#define MAX_IDENT 63

static const char *const top_keys[] = {"mapping",  "collection", "table",    "direction",
                                       "mode",     "key",        "reloadable", "columns",
                                       "children", "conflict",   "on_error", "on_truncate",
                                       "initial_sync", "conflicts", NULL};
static const char *const col_keys[] = {"field", "type", "required", NULL};
static const char *const child_keys[] = {"table", "field",      "columns",
                                         "key",   "parent_key", "children", NULL};
static const char *const conflict_keys[] = {"strategy", "clock", "script", "fallback",
                                            "call", NULL};
static const char *const mode_keys[] = {"interval", NULL};
static const char *const initial_keys[] = {"prefer", NULL};
static const char *const mirror_keys[] = {"node", "table", NULL};

#define VALID_TYPES \
  "text, int64, double, numeric, bool, uuid, objectid, timestamptz, date, jsonb, bytes"

/* ---------------------------------------------------------------- freeing */

static void column_clear(as_column *c) {
  free(c->name);
  free(c->field);
  for (size_t i = 0; i < c->npath; i++) free(c->path[i]);
  free(c->path);
  free(c->type_name);
}

void as_schema_free(as_schema *s) {
  if (!s) return;
  for (size_t i = 0; i < s->ncols; i++) column_clear(&s->cols[i]);
  free(s->cols);
  for (size_t i = 0; i < s->nchildren; i++) {
    as_child *ch = &s->children[i];
    free(ch->table);
    free(ch->field);
    for (size_t j = 0; j < ch->ncols; j++) column_clear(&ch->cols[j]);
    free(ch->cols);
    for (size_t k = 0; ch->parent_cols && k < s->nkey; k++) free(ch->parent_cols[k]);
    free(ch->parent_cols);
    as_schema_free(ch->elem);
    as_schema_free(ch->tab);
  }
  free(s->children);
  free(s->key_idx);
  free(s->conflict.script);
  free(s->initial_prefer);
  free(s->mirror_node);
  free(s->mirror_table);
  free(s->name);
  free(s->file);
  free(s->collection);
  free(s->table);
  free(s);
}

/* ---------------------------------------------------------------- helpers */

static int nomem(as_error *err) {
  return as_error_set(err, AS_DOM_CONFIG, AS_ERR, "out of memory");
}

/* Splits a field path; validates parts. On error reports at m. */
static int split_path(const char *field, const as_mark *m, const char *what, char ***out,
                      size_t *nout, as_error *err) {
  *out = NULL;
  *nout = 0;
  size_t n = 1;
  for (const char *p = field; *p; p++) n += *p == '.';
  char **parts = calloc(n, sizeof *parts);
  if (!parts) return nomem(err);
  const char *p = field;
  int rc = AS_OK;
  for (size_t i = 0; i < n; i++) {
    const char *e = strchr(p, '.');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == 0) {
      rc = as_yaml_error(err, m, "empty part in field path \"%s\" of %s", field, what);
      goto fail;
    }
    if (p[0] == '$') {
      rc = as_yaml_error(err, m,
                         "field path \"%s\" of %s has a part starting with '$' (MongoDB "
                         "operators cannot be mapped)",
                         field, what);
      goto fail;
    }
    if (len == 1 && p[0] == '*') {
      rc = as_yaml_error(err, m,
                         "\"*\" in field path \"%s\" of %s: \"*\" is only allowed alone, as "
                         "the catch-all field",
                         field, what);
      goto fail;
    }
    if (!(parts[i] = strndup(p, len))) {
      rc = nomem(err);
      goto fail;
    }
    p = e ? e + 1 : p + len;
  }
  *out = parts;
  *nout = n;
  return AS_OK;
fail:
  for (size_t i = 0; i < n; i++) free(parts[i]);
  free(parts);
  return rc;
}

/* 1 if a's path is a prefix of (or equal to) b's path. */
static bool path_prefix(char *const *a, size_t na, char *const *b, size_t nb) {
  if (na > nb) return false;
  for (size_t i = 0; i < na; i++) {
    if (strcmp(a[i], b[i]) != 0) return false;
  }
  return true;
}

static int check_ident(const char *name, const as_mark *m, const char *what, as_error *err) {
  if (!name[0]) return as_yaml_error(err, m, "%s must not be empty", what);
  if (strlen(name) > MAX_IDENT) {
    return as_yaml_error(err, m, "%s \"%s\" is longer than %d bytes (PostgreSQL's limit)", what,
                         name, MAX_IDENT);
  }
  return AS_OK;
}

static int read_str(const as_ynode *n, const char *what, char **out, as_error *err) {
  if (n && n->kind == AS_Y_SCALAR && as_ynode_is_null(n)) {
    return as_yaml_error(err, &n->mark, "%s must not be empty", what);
  }
  return as_yaml_str(n, what, out, err);
}

typedef struct colmarks {
  as_mark field;  /* where the field is written (or the column key if defaulted) */
  as_mark type;
} colmarks;

/* Parses a `columns:` map into cols (a mapping's or a child table's element's). */
/* One field, one column: no field mapped twice, no field inside another mapped one. */
static int one_field_one_column(const as_column *cols, const colmarks *marks, size_t n,
                                as_error *err) {
  for (size_t j = 0; j < n; j++) {
    if (cols[j].catch_all) continue;
    for (size_t i = 0; i < j; i++) {
      if (cols[i].catch_all) continue;
      const as_column *a = &cols[i], *b = &cols[j];
      if (a->npath == b->npath && path_prefix(a->path, a->npath, b->path, b->npath)) {
        return as_yaml_error(err, &marks[j].field,
                             "column \"%s\" maps field \"%s\", already mapped by column \"%s\" "
                             "(line %d column %d)",
                             b->name, b->field, a->name, marks[i].field.line, marks[i].field.col);
      }
      if (path_prefix(a->path, a->npath, b->path, b->npath) ||
          path_prefix(b->path, b->npath, a->path, a->npath)) {
        const as_column *outer = a->npath < b->npath ? a : b;
        const as_column *inner = a->npath < b->npath ? b : a;
        return as_yaml_error(err, &marks[j].field,
                             "field \"%s\" of column \"%s\" is inside field \"%s\" of column "
                             "\"%s\" (line %d column %d); a field and its sub-fields cannot be "
                             "mapped by two columns",
                             inner->field, inner->name, outer->field, outer->name,
                             marks[i].field.line, marks[i].field.col);
      }
    }
  }
  return AS_OK;
}

/* Column i is the catch-all (field "*"): allowed here, the only one, of type json. */
static int catch_all(as_column *cols, const colmarks *marks, size_t i, int *catch_idx,
                     as_error *err) {
  as_column *c = &cols[i];
  const char *name = c->name;
  if (*catch_idx >= 0) {
    return as_yaml_error(err, &marks[i].field,
                         "column \"%s\" is a second catch-all (field \"*\"); column \"%s\" "
                         "already collects the unmapped fields",
                         name, cols[*catch_idx].name);
  }
  if (c->type != AS_T_JSON) {
    return as_yaml_error(err, &marks[i].type,
                         "catch-all column \"%s\" (field \"*\") must have type json or jsonb, "
                         "not \"%s\"",
                         name, c->type_name);
  }
  c->catch_all = true;
  *catch_idx = (int)i;
  return AS_OK;
}

/* The error for a type name no alias knows; a type written with a length or precision
 * (numeric(12,2), varchar(20)) is told to drop it. */
static int bad_type(const char *type_name, const char *col, const as_mark *m, as_error *err) {
  const char *paren = strchr(type_name, '(');
  char base[64];
  as_type bt;
  if (paren && (size_t)(paren - type_name) < sizeof base) {
    size_t bn = (size_t)(paren - type_name);
    while (bn > 0 && type_name[bn - 1] == ' ') bn--;
    memcpy(base, type_name, bn);
    base[bn] = '\0';
    if (as_type_parse(base, &bt) && bt != AS_T_NULL)
      return as_yaml_error(err, m, "type \"%s\" of column \"%s\": a mapping's type takes no "
                           "length or precision (write %s; an existing SQL column keeps its own "
                           "%s)", type_name, col, base, type_name);
  }
  return as_yaml_error(err, m, "unknown type \"%s\" for column \"%s\" (valid types include "
                       VALID_TYPES ")", type_name, col);
}

static int parse_columns(const as_ynode *node, const as_mark *key_mark, const char *owner,
                         as_schema *s, as_column **out, size_t *nout,
                         int *catch_idx, colmarks **marks_out, as_error *err) {
  *out = NULL;
  *nout = 0;
  *marks_out = NULL;
  if (catch_idx) *catch_idx = -1;
  if (!node || as_ynode_is_null(node)) {
    return as_yaml_error(err, key_mark, "%s has no columns (columns: { NAME: { field, type } })",
                         owner);
  }
  if (node->kind != AS_Y_MAP) {
    return as_yaml_error(err, &node->mark, "columns of %s must be a map of column name -> "
                         "{ field, type }, not %s", owner, as_ynode_kind_name(node));
  }
  if (node->n == 0) {
    return as_yaml_error(err, &node->mark, "columns of %s must not be empty", owner);
  }
  as_column *cols = calloc(node->n, sizeof *cols);
  colmarks *marks = calloc(node->n, sizeof *marks);
  int rc = AS_OK;
  size_t n = 0;
  if (!cols || !marks) {
    rc = nomem(err);
    goto fail;
  }
  for (size_t i = 0; i < node->n; i++, n++) {
    as_column *c = &cols[i];
    const char *name = node->keys[i];
    const as_mark *km = &node->key_marks[i];
    const as_ynode *v = node->items[i];
    char what[160];
    snprintf(what, sizeof what, "column \"%s\"", name);
    c->mark = *km;
    c->mark.file = s->file;
    if ((rc = check_ident(name, km, "column name", err))) goto fail;
    if (!(c->name = strdup(name))) {
      rc = nomem(err);
      goto fail;
    }
    const as_ynode *type_node = NULL, *field_node = NULL, *req_node = NULL;
    if (as_ynode_is_null(v)) {
      rc = as_yaml_error(err, km, "column \"%s\" has no type (write %s: { field: ..., type: "
                         "text })", name, name);
      goto fail;
    } else if (v->kind == AS_Y_SCALAR) {
      type_node = v; /* shorthand  name: TYPE */
    } else if (v->kind == AS_Y_MAP) {
      if ((rc = as_yaml_check_keys(v, col_keys, what, err))) goto fail;
      type_node = as_ynode_get(v, "type");
      field_node = as_ynode_get(v, "field");
      req_node = as_ynode_get(v, "required");
      if (!type_node) {
        rc = as_yaml_error(err, km, "column \"%s\" has no type (add type: text, int64, "
                           "numeric, timestamptz, jsonb, ...)", name);
        goto fail;
      }
    } else {
      rc = as_yaml_error(err, &v->mark, "column \"%s\" must be a map { field, type }, not %s",
                         name, as_ynode_kind_name(v));
      goto fail;
    }
    char twhat[200];
    snprintf(twhat, sizeof twhat, "type of column \"%s\"", name);
    if ((rc = read_str(type_node, twhat, &c->type_name, err))) goto fail;
    marks[i].type = type_node->mark;
    if (!as_type_parse(c->type_name, &c->type) || c->type == AS_T_NULL) {
      rc = bad_type(c->type_name, name, &type_node->mark, err);
      goto fail;
    }
    if (field_node) {
      char fwhat[200];
      snprintf(fwhat, sizeof fwhat, "field of column \"%s\"", name);
      if (field_node->kind != AS_Y_SCALAR) {
        rc = as_yaml_str(field_node, fwhat, &c->field, err);
        goto fail;
      }
      if (!(c->field = strdup(field_node->scalar))) {
        rc = nomem(err);
        goto fail;
      }
      marks[i].field = field_node->mark;
    } else {
      if (!(c->field = strdup(name))) {
        rc = nomem(err);
        goto fail;
      }
      marks[i].field = *km;
    }
    if (req_node) {
      char rwhat[200];
      snprintf(rwhat, sizeof rwhat, "required of column \"%s\"", name);
      if ((rc = as_yaml_bool(req_node, rwhat, &c->required, err))) goto fail;
    }
    if (strcmp(c->field, "*") == 0) {
      if ((rc = catch_all(cols, marks, i, catch_idx, err))) goto fail;
    } else {
      if ((rc = split_path(c->field, &marks[i].field, what, &c->path, &c->npath, err))) goto fail;
    }
  }
  if ((rc = one_field_one_column(cols, marks, n, err))) goto fail;
  *out = cols;
  *nout = n;
  *marks_out = marks;
  return AS_OK;
fail:
  for (size_t i = 0; cols && i < node->n; i++) column_clear(&cols[i]);
  free(cols);
  free(marks);
  return rc;
}

static void fix_marks(as_schema *s) {
  for (size_t i = 0; i < s->nchildren; i++) /* nested children */
    if (s->children[i].tab) fix_marks(s->children[i].tab);
  s->mark.file = s->file;
  s->initial_prefer_mark.file = s->file;
  s->mirror_mark.file = s->file;
  for (size_t i = 0; i < s->ncols; i++) s->cols[i].mark.file = s->file;
  for (size_t i = 0; i < s->nchildren; i++) {
    s->children[i].mark.file = s->file;
    for (size_t j = 0; j < s->children[i].ncols; j++) s->children[i].cols[j].mark.file = s->file;
  }
}

static int parse_key(const as_ynode *root, as_schema *s, as_error *err) {
  const as_ynode *k = as_ynode_get(root, "key");
  if (!k || as_ynode_is_null(k)) {
    const as_mark *m = k ? &k->mark : &root->mark;
    return as_yaml_error(err, m, "missing \"key\" (the column, or list of columns, that "
                         "identifies a row)");
  }
  const as_ynode *const *items;
  const as_ynode *single[1] = {k};
  size_t n;
  if (k->kind == AS_Y_SCALAR) {
    items = single;
    n = 1;
  } else if (k->kind == AS_Y_SEQ) {
    items = (const as_ynode *const *)k->items;
    n = k->n;
    if (n == 0) return as_yaml_error(err, &k->mark, "key must name at least one column");
  } else {
    return as_yaml_error(err, &k->mark, "key must be a column name or a list of column names, "
                         "not %s", as_ynode_kind_name(k));
  }
  if (!(s->key_idx = calloc(n, sizeof *s->key_idx))) return nomem(err);
  for (size_t i = 0; i < n; i++) {
    const as_ynode *it = items[i];
    if (it->kind != AS_Y_SCALAR) {
      return as_yaml_error(err, &it->mark, "key must list column names, not %s",
                           as_ynode_kind_name(it));
    }
    int idx = as_schema_column_index(s, it->scalar);
    if (idx < 0) {
      char list[400];
      size_t off = 0;
      list[0] = '\0';
      for (size_t c = 0; c < s->ncols && off < sizeof list; c++) {
        int w = snprintf(list + off, sizeof list - off, "%s%s", c ? ", " : "", s->cols[c].name);
        if (w < 0) break;
        off += (size_t)w;
      }
      return as_yaml_error(err, &it->mark, "key column \"%s\" is not a column (columns: %s)",
                           it->scalar, list);
    }
    as_column *c = &s->cols[idx];
    if (c->is_key) {
      return as_yaml_error(err, &it->mark, "column \"%s\" appears twice in key", c->name);
    }
    if (c->catch_all) {
      return as_yaml_error(err, &it->mark, "key column \"%s\" cannot be the catch-all column",
                           c->name);
    }
    if (c->type == AS_T_JSON) {
      return as_yaml_error(err, &it->mark, "key column \"%s\" cannot have type %s (a key must "
                           "be a scalar type)", c->name, c->type_name);
    }
    c->is_key = true;
    c->required = true;
    s->key_idx[s->nkey++] = (size_t)idx;
  }
  return AS_OK;
}

/* parent_key: the child table's columns holding the parent key (a name, or a list with one
 * name per parent key column); default "<parent table>_<key column>". */
static int parse_parent_key(const as_ynode *cn, const as_schema *s, as_child *ch,
                            as_error *err) {
  const as_ynode *pk = as_ynode_get(cn, "parent_key");
  if (!(ch->parent_cols = calloc(s->nkey, sizeof *ch->parent_cols))) return nomem(err);
  if (pk && !as_ynode_is_null(pk)) {
    size_t n = pk->kind == AS_Y_SCALAR ? 1 : pk->kind == AS_Y_SEQ ? pk->n : 0;
    if (n != s->nkey) {
      return as_yaml_error(err, &pk->mark, "parent_key of child table \"%s\" must name %zu "
                           "column%s (one per key column of the parent)", ch->table, s->nkey,
                           s->nkey == 1 ? "" : "s");
    }
    for (size_t k = 0; k < n; k++) {
      const as_ynode *it = pk->kind == AS_Y_SCALAR ? pk : pk->items[k];
      int rc = read_str(it, "parent_key", &ch->parent_cols[k], err);
      if (rc == AS_OK) rc = check_ident(ch->parent_cols[k], &it->mark, "parent_key column", err);
      for (size_t j = 0; rc == AS_OK && j < k; j++) {
        if (strcmp(ch->parent_cols[j], ch->parent_cols[k]) == 0)
          rc = as_yaml_error(err, &it->mark, "parent_key names column \"%s\" twice",
                             ch->parent_cols[k]);
      }
      if (rc == AS_OK && strcmp(ch->parent_cols[k], AS_CHILD_POSITION) == 0)
        rc = as_yaml_error(err, &it->mark, "parent_key column \"" AS_CHILD_POSITION "\" is "
                           "the child table's array position");
      if (rc) return rc;
    }
    return AS_OK;
  }
  for (size_t k = 0; k < s->nkey; k++) {
    const char *kc = s->cols[s->key_idx[k]].name;
    size_t len = strlen(s->table) + 1 + strlen(kc);
    if (!(ch->parent_cols[k] = malloc(len + 1))) return nomem(err);
    snprintf(ch->parent_cols[k], len + 1, "%s_%s", s->table, kc);
    if (len > MAX_IDENT) {
      return as_yaml_error(err, &ch->mark, "the parent key column of child table \"%s\" would "
                           "be \"%s\", longer than %d bytes (name it with parent_key)",
                           ch->table, ch->parent_cols[k], MAX_IDENT);
    }
  }
  return AS_OK;
}

/* key: the element column that identifies an element (else its position does). */
static int parse_element_key(const as_ynode *cn, as_child *ch, as_error *err) {
  ch->key = -1;
  const as_ynode *kn = as_ynode_get(cn, "key");
  if (!kn || as_ynode_is_null(kn)) return AS_OK;
  if (kn->kind != AS_Y_SCALAR) {
    return as_yaml_error(err, &kn->mark, "key of child table \"%s\" must be one column of the "
                         "element, not %s", ch->table, as_ynode_kind_name(kn));
  }
  for (size_t c = 0; c < ch->ncols; c++) {
    as_column *col = &ch->cols[c];
    if (strcmp(col->name, kn->scalar) != 0) continue;
    if (col->catch_all || col->type == AS_T_JSON) {
      return as_yaml_error(err, &kn->mark, "key column \"%s\" of child table \"%s\" must "
                           "have a scalar type, not %s", col->name, ch->table, col->type_name);
    }
    col->required = true;
    ch->key = (int)c;
    return AS_OK;
  }
  return as_yaml_error(err, &kn->mark, "key \"%s\" of child table \"%s\" is not one of its "
                       "columns", kn->scalar, ch->table);
}

static int parse_children(const as_ynode *root, as_schema *s, const colmarks *pmarks,
                          as_error *err) {
  const as_ynode *node = as_ynode_get(root, "children");
  if (!node || as_ynode_is_null(node)) return AS_OK;
  if (node->kind != AS_Y_SEQ) {
    return as_yaml_error(err, &node->mark, "children must be a list of { table, field, "
                         "columns }, not %s", as_ynode_kind_name(node));
  }
  if (node->n == 0) return AS_OK;
  if (!(s->children = calloc(node->n, sizeof *s->children))) return nomem(err);
  for (size_t i = 0; i < node->n; i++) {
    const as_ynode *cn = node->items[i];
    as_child *ch = &s->children[i];
    s->nchildren++;
    ch->mark = cn->mark;
    int rc = as_yaml_check_keys(cn, child_keys, "a child table", err);
    if (rc) return rc;
    const as_ynode *tn = as_ynode_get(cn, "table");
    const as_ynode *fn = as_ynode_get(cn, "field");
    if (!tn) return as_yaml_error(err, &cn->mark, "child table needs \"table\" (its SQL table)");
    if (!fn) {
      return as_yaml_error(err, &cn->mark, "child table needs \"field\" (the array field of the "
                           "parent document)");
    }
    if ((rc = read_str(tn, "table of a child", &ch->table, err))) return rc;
    if ((rc = check_ident(ch->table, &tn->mark, "table name", err))) return rc;
    if (strcmp(ch->table, s->table) == 0) {
      return as_yaml_error(err, &tn->mark, "child table \"%s\" is the mapping's own table",
                           ch->table);
    }
    for (size_t j = 0; j < i; j++) {
      if (strcmp(s->children[j].table, ch->table) == 0) {
        return as_yaml_error(err, &tn->mark, "child table \"%s\" is listed twice", ch->table);
      }
    }
    if ((rc = read_str(fn, "field of a child", &ch->field, err))) return rc;
    char what[200];
    snprintf(what, sizeof what, "child table \"%s\"", ch->table);
    char **path = NULL;
    size_t npath = 0;
    if (strcmp(ch->field, "*") == 0) {
      return as_yaml_error(err, &fn->mark, "the field of child table \"%s\" must be an array "
                           "field, not \"*\"", ch->table);
    }
    if ((rc = split_path(ch->field, &fn->mark, what, &path, &npath, err))) return rc;
    for (size_t c = 0; c < s->ncols && rc == AS_OK; c++) {
      const as_column *pc = &s->cols[c];
      if (pc->catch_all) continue;
      if (path_prefix(pc->path, pc->npath, path, npath) ||
          path_prefix(path, npath, pc->path, pc->npath)) {
        const as_mark *at = pmarks ? &pmarks[c].field : &pc->mark;
        rc = as_yaml_error(err, &fn->mark, "field \"%s\" of child table \"%s\" overlaps field "
                           "\"%s\" of column \"%s\" (line %d column %d)", ch->field, ch->table,
                           pc->field, pc->name, at->line, at->col);
      }
    }
    for (size_t j = 0; j < i && rc == AS_OK; j++) {
      const as_child *o = &s->children[j];
      if (strcmp(o->field, ch->field) == 0) {
        rc = as_yaml_error(err, &fn->mark, "field \"%s\" is already the array of child table "
                           "\"%s\"", ch->field, o->table);
      }
    }
    for (size_t p = 0; p < npath; p++) free(path[p]);
    free(path);
    if (rc) return rc;
    colmarks *marks = NULL;
    rc = parse_columns(as_ynode_get(cn, "columns"), &cn->mark, what, s, &ch->cols,
                       &ch->ncols, &ch->catch_all_idx, &marks, err);
    free(marks);
    if (rc) return rc;
    if ((rc = parse_parent_key(cn, s, ch, err))) return rc;
    if ((rc = parse_element_key(cn, ch, err))) return rc;
    for (size_t c = 0; c < ch->ncols && rc == AS_OK; c++) {
      const char *name = ch->cols[c].name;
      if (strcmp(name, AS_CHILD_POSITION) == 0) {
        rc = as_yaml_error(err, &ch->cols[c].mark, "column \"" AS_CHILD_POSITION "\" of child "
                           "table \"%s\" is reserved for the array position", ch->table);
      }
      for (size_t k = 0; k < s->nkey && rc == AS_OK; k++) {
        if (strcmp(ch->parent_cols[k], name) == 0) {
          rc = as_yaml_error(err, &ch->cols[c].mark, "column \"%s\" of child table \"%s\" has "
                             "the name of the column that holds the parent key (name that one "
                             "with parent_key)", name, ch->table);
        }
      }
    }
    if (rc) return rc;
  }
  return AS_OK;
}

/* The children of each child table (`children:` inside a child): each child's table schema
 * becomes the parent of its own children (their parent key is the child table's key: the
 * mapping's key + the element key or position), and its element schema gains their array
 * columns. Two levels at most: an array inside an element of an array. */
static int parse_nested(const as_ynode *root, as_schema *s, int depth, as_error *err) {
  const as_ynode *node = as_ynode_get(root, "children");
  if (!node || node->kind != AS_Y_SEQ) return AS_OK;
  for (size_t i = 0; i < node->n && i < s->nchildren; i++) {
    const as_ynode *cn = node->items[i];
    const as_ynode *nn = as_ynode_get(cn, "children");
    if (!nn || as_ynode_is_null(nn)) continue;
    as_child *ch = &s->children[i];
    if (depth >= 1) {
      return as_yaml_error(err, &nn->mark, "child table \"%s\" is nested two levels deep "
                           "already; its arrays stay json columns of its elements (children "
                           "nest two levels at most)", ch->table);
    }
    as_schema *tab = ch->tab;
    int rc = parse_children(cn, tab, NULL, err);
    if (rc == AS_OK) rc = as_schema_children_build(tab, err);
    if (rc == AS_OK) rc = as_schema_child_elem_arrays(ch, err);
    if (rc == AS_OK) rc = parse_nested(cn, tab, depth + 1, err);
    if (rc) return rc;
  }
  return AS_OK;
}

/* Every SQL table of the mapping has a name of its own. */
static int distinct_tables(const as_schema *s, as_error *err) {
  size_t n = as_schema_tables(s, NULL, 0);
  const char **t = calloc(n, sizeof *t);
  if (!t) return nomem(err);
  as_schema_tables(s, t, n);
  int rc = AS_OK;
  for (size_t i = 1; i < n && rc == AS_OK; i++)
    for (size_t j = 0; j < i && rc == AS_OK; j++)
      if (strcmp(t[i], t[j]) == 0)
        rc = as_yaml_error(err, &s->mark, "mapping \"%s\" names table \"%s\" twice (its own "
                           "table and its child tables each need a name of their own)", s->name,
                           t[i]);
  free(t);
  return rc;
}

static int parse_strategy(const as_ynode *n, const char *what, bool allow_vector,
                          as_strategy *out, as_error *err) {
  char *v = NULL;
  int rc = read_str(n, what, &v, err);
  if (rc) return rc;
  if (strcmp(v, "lww") == 0) {
    *out = AS_STRATEGY_LWW;
  } else if (allow_vector && strcmp(v, "vector") == 0) {
    *out = AS_STRATEGY_VECTOR;
  } else if (strcmp(v, "script") == 0) {
    *out = AS_STRATEGY_SCRIPT;
  } else if (!allow_vector && strcmp(v, "keep-local") == 0) {
    *out = AS_STRATEGY_KEEP_LOCAL;
  } else if (!allow_vector && strcmp(v, "keep-remote") == 0) {
    *out = AS_STRATEGY_KEEP_REMOTE;
  } else {
    rc = as_yaml_error(err, &n->mark, "bad %s \"%s\" (expected %s)", what, v,
                       allow_vector ? "lww, vector or script"
                                    : "lww, script, keep-local or keep-remote");
  }
  free(v);
  return rc;
}

static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

static int parse_call(const as_ynode *node, bool has_script, as_schema *s, as_error *err) {
  const as_ynode *call = as_ynode_get(node, "call");
  s->conflict.call = AS_CALL_CONFLICTS;
  if (!call || as_ynode_is_null(call)) return AS_OK;
  char *v = NULL;
  int rc = read_str(call, "conflict call", &v, err);
  if (rc) return rc;
  if (strcmp(v, "always") == 0) {
    s->conflict.call = AS_CALL_ALWAYS;
  } else if (strcmp(v, "conflicts") != 0) {
    rc = as_yaml_error(err, &call->mark, "bad conflict call \"%s\" (expected conflicts or "
                       "always)", v);
  }
  free(v);
  if (!rc && !has_script) {
    rc = as_yaml_error(err, &call->mark, "conflict call is only used with a script (strategy "
                       "script, or fallback script)");
  }
  return rc;
}

/* initial_sync: { prefer: NODE } */
static int parse_initial_sync(const as_ynode *root, as_schema *s, as_error *err) {
  const as_ynode *node = as_ynode_get(root, "initial_sync");
  if (!node || as_ynode_is_null(node)) return AS_OK;
  int rc = as_yaml_check_keys(node, initial_keys, "initial_sync", err);
  if (rc) return rc;
  const as_ynode *prefer = as_ynode_get(node, "prefer");
  if (!prefer || as_ynode_is_null(prefer)) return AS_OK;
  if ((rc = read_str(prefer, "initial_sync prefer", &s->initial_prefer, err))) return rc;
  s->initial_prefer_mark = prefer->mark;
  return AS_OK;
}

/* conflicts: { node: NODE, table: NAME } (either may be left out; as_config completes them) */
static int parse_mirror(const as_ynode *root, as_schema *s, as_error *err) {
  const as_ynode *node = as_ynode_get(root, "conflicts");
  if (!node || as_ynode_is_null(node)) return AS_OK;
  int rc = as_yaml_check_keys(node, mirror_keys, "conflicts", err);
  if (rc) return rc;
  s->mirror_own = true;
  s->mirror_mark = node->mark;
  const as_ynode *n = as_ynode_get(node, "node"), *t = as_ynode_get(node, "table");
  if (n && !as_ynode_is_null(n) && (rc = read_str(n, "conflicts node", &s->mirror_node, err)))
    return rc;
  if (t && !as_ynode_is_null(t)) {
    if ((rc = read_str(t, "conflicts table", &s->mirror_table, err))) return rc;
    size_t len = strlen(s->mirror_table);
    if (len == 0 || len > MAX_IDENT)
      return as_yaml_error(err, &t->mark, "conflicts table \"%s\" is not a table name (1 to %d "
                           "bytes)", s->mirror_table, MAX_IDENT);
  }
  return AS_OK;
}

static int parse_conflict(const as_ynode *root, as_schema *s, as_error *err) {
  s->conflict.strategy = AS_STRATEGY_LWW;
  s->conflict.fallback = AS_STRATEGY_LWW;
  s->conflict.clock_idx = -1;
  const as_ynode *node = as_ynode_get(root, "conflict");
  if (!node || as_ynode_is_null(node)) return AS_OK;
  int rc = as_yaml_check_keys(node, conflict_keys, "conflict", err);
  if (rc) return rc;
  const as_ynode *st = as_ynode_get(node, "strategy");
  const as_ynode *clock = as_ynode_get(node, "clock");
  const as_ynode *script = as_ynode_get(node, "script");
  const as_ynode *fb = as_ynode_get(node, "fallback");
  if (st && (rc = parse_strategy(st, "conflict strategy", true, &s->conflict.strategy, err))) {
    return rc;
  }
  if (clock && !as_ynode_is_null(clock)) {
    if (clock->kind != AS_Y_SCALAR) {
      return as_yaml_error(err, &clock->mark, "conflict clock must be a column name, not %s",
                           as_ynode_kind_name(clock));
    }
    int idx = as_schema_column_index(s, clock->scalar);
    if (idx < 0) {
      return as_yaml_error(err, &clock->mark, "conflict clock \"%s\" is not a column",
                           clock->scalar);
    }
    as_type t = s->cols[idx].type;
    if (t != AS_T_TIMESTAMP && t != AS_T_INT64) {
      return as_yaml_error(err, &clock->mark, "conflict clock column \"%s\" must have type "
                           "timestamptz or int64, not %s", clock->scalar,
                           s->cols[idx].type_name);
    }
    s->conflict.clock_idx = idx;
  }
  if (fb) {
    if (s->conflict.strategy == AS_STRATEGY_LWW) {
      return as_yaml_error(err, &fb->mark, "conflict fallback is only used with strategy "
                           "vector or script");
    }
    if ((rc = parse_strategy(fb, "conflict fallback", false, &s->conflict.fallback, err))) {
      return rc;
    }
    if (s->conflict.strategy == AS_STRATEGY_SCRIPT &&
        s->conflict.fallback == AS_STRATEGY_SCRIPT) {
      return as_yaml_error(err, &fb->mark, "the fallback of strategy script cannot be script "
                           "(lww, keep-local or keep-remote)");
    }
  }
  bool needs_script = s->conflict.strategy == AS_STRATEGY_SCRIPT ||
                      s->conflict.fallback == AS_STRATEGY_SCRIPT;
  if (script && !as_ynode_is_null(script)) {
    char *given = NULL;
    if ((rc = as_yaml_str(script, "conflict script", &given, err))) return rc;
    char *resolved = NULL;
    if (given[0] == '/') {
      resolved = given;
      given = NULL;
    } else {
      char *dir = dir_of(s->file);
      size_t len = (dir ? strlen(dir) : 0) + strlen(given) + 2;
      resolved = dir ? malloc(len) : NULL;
      if (resolved) {
        if (strcmp(dir, ".") == 0) {
          snprintf(resolved, len, "%s", given);
        } else {
          snprintf(resolved, len, "%s/%s", dir, given);
        }
      }
      free(dir);
    }
    if (!resolved) {
      free(given);
      return nomem(err);
    }
    struct stat st_buf;
    if (stat(resolved, &st_buf) != 0 || !S_ISREG(st_buf.st_mode)) {
      rc = as_yaml_error(err, &script->mark, "conflict script \"%s\" not found (looked for "
                         "\"%s\")", given ? given : resolved, resolved);
      free(given);
      free(resolved);
      return rc;
    }
    free(given);
    s->conflict.script = resolved;
  } else if (needs_script) {
    const as_ynode *at = s->conflict.strategy == AS_STRATEGY_SCRIPT ? st : fb;
    return as_yaml_error(err, &at->mark, "conflict %s script needs conflict.script (a Lua "
                         "file with function resolve(mine, theirs, ctx))",
                         at == st ? "strategy" : "fallback");
  }
  return parse_call(node, needs_script, s, err);
}

static int parse_mode(const as_ynode *root, as_schema *s, as_error *err) {
  const as_ynode *m = as_ynode_get(root, "mode");
  s->mode = AS_MODE_REALTIME;
  if (!m || as_ynode_is_null(m)) return AS_OK;
  if (m->kind == AS_Y_SCALAR) {
    if (strcmp(m->scalar, "realtime") == 0) return AS_OK;
    return as_yaml_error(err, &m->mark, "bad mode \"%s\" (expected realtime or { interval: "
                         "DURATION })", m->scalar);
  }
  if (m->kind != AS_Y_MAP) {
    return as_yaml_error(err, &m->mark, "mode must be realtime or { interval: DURATION }, not "
                         "%s", as_ynode_kind_name(m));
  }
  int rc = as_yaml_check_keys(m, mode_keys, "mode", err);
  if (rc) return rc;
  const as_ynode *iv = as_ynode_get(m, "interval");
  if (!iv) return as_yaml_error(err, &m->mark, "mode map needs interval: DURATION");
  if ((rc = as_yaml_duration_ms(iv, "mode interval", &s->interval_ms, err))) return rc;
  if (s->interval_ms <= 0) {
    return as_yaml_error(err, &iv->mark, "mode interval must be greater than zero");
  }
  s->mode = AS_MODE_INTERVAL;
  return AS_OK;
}

static int parse_enum(const as_ynode *root, const char *key, const char *const *names,
                      const char *expected, int *out, as_error *err) {
  const as_ynode *n = as_ynode_get(root, key);
  if (!n) return AS_OK;
  if (n->kind != AS_Y_SCALAR) {
    return as_yaml_error(err, &n->mark, "%s must be %s, not %s", key, expected,
                         as_ynode_kind_name(n));
  }
  for (int i = 0; names[i]; i++) {
    if (strcmp(n->scalar, names[i]) == 0) {
      *out = i;
      return AS_OK;
    }
  }
  return as_yaml_error(err, &n->mark, "bad %s \"%s\" (expected %s)", key, n->scalar, expected);
}

static bool valid_mapping_name(const char *n) {
  if (!*n) return false;
  for (const char *p = n; *p; p++) {
    if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.')) return false;
  }
  return true;
}

static int build(const as_ydoc *doc, as_schema **out, as_error *err) {
  *out = NULL;
  const as_ynode *root = doc->root;
  as_mark top = {.file = doc->file, .line = 1, .col = 1};
  if (!root) return as_yaml_error(err, &top, "empty mapping file");
  if (root->kind != AS_Y_MAP) {
    return as_yaml_error(err, &root->mark, "a mapping file must be a map (mapping:, table:, "
                         "key:, columns:, ...), not %s", as_ynode_kind_name(root));
  }
  int rc = as_yaml_check_keys(root, top_keys, "mapping file", err);
  if (rc) return rc;
  as_schema *s = calloc(1, sizeof *s);
  colmarks *marks = NULL;
  if (!s || !(s->file = strdup(doc->file))) {
    free(s);
    return nomem(err);
  }
  s->catch_all_idx = -1;
  s->mark = root->mark;

  const as_ynode *name = as_ynode_get(root, "mapping");
  if (!name) {
    rc = as_yaml_error(err, &root->mark, "missing \"mapping\" (the mapping's name)");
    goto cleanup;
  }
  if ((rc = read_str(name, "mapping", &s->name, err))) goto cleanup;
  if (!valid_mapping_name(s->name)) {
    rc = as_yaml_error(err, &name->mark, "mapping name \"%s\" may contain only letters, digits, "
                       "'_', '-' and '.'", s->name);
    goto cleanup;
  }
  const as_ynode *coll = as_ynode_get(root, "collection");
  if ((rc = read_str(coll ? coll : name, "collection", &s->collection, err))) goto cleanup;
  if (strchr(s->collection, '$') || strncmp(s->collection, "system.", 7) == 0) {
    rc = as_yaml_error(err, coll ? &coll->mark : &name->mark, "collection name \"%s\" must not "
                       "contain '$' or start with \"system.\"", s->collection);
    goto cleanup;
  }
  const as_ynode *table = as_ynode_get(root, "table");
  if ((rc = read_str(table ? table : name, "table", &s->table, err))) goto cleanup;
  if ((rc = check_ident(s->table, table ? &table->mark : &name->mark, "table name", err))) {
    goto cleanup;
  }
  static const char *const dirs[] = {"both", "to-sql", "to-mongo", NULL};
  static const char *const on_errors[] = {"dead-letter", "stop", NULL};
  int v = AS_DIR_BOTH;
  if ((rc = parse_enum(root, "direction", dirs, "both, to-sql or to-mongo", &v, err))) {
    goto cleanup;
  }
  s->direction = (as_direction)v;
  if ((rc = parse_mode(root, s, err))) goto cleanup;
  const as_ynode *reload = as_ynode_get(root, "reloadable");
  if (reload && (rc = as_yaml_bool(reload, "reloadable", &s->reloadable, err))) goto cleanup;

  const as_ynode *cols = as_ynode_get(root, "columns");
  if (!cols) {
    rc = as_yaml_error(err, &root->mark, "missing \"columns\" (a map of column name -> "
                       "{ field, type })");
    goto cleanup;
  }
  char owner[200];
  snprintf(owner, sizeof owner, "mapping \"%s\"", s->name);
  if ((rc = parse_columns(cols, as_ynode_key_mark(root, "columns"), owner, s, &s->cols,
                          &s->ncols, &s->catch_all_idx, &marks, err))) {
    goto cleanup;
  }
  if ((rc = parse_key(root, s, err))) goto cleanup;
  if ((rc = parse_children(root, s, marks, err))) goto cleanup;
  s->ntable = s->ncols;
  if ((rc = as_schema_children_build(s, err))) goto cleanup;
  if ((rc = parse_nested(root, s, 0, err))) goto cleanup;
  if ((rc = distinct_tables(s, err))) goto cleanup;
  if ((rc = parse_conflict(root, s, err))) goto cleanup;
  v = AS_ON_ERROR_DEAD_LETTER;
  if ((rc = parse_enum(root, "on_error", on_errors, "dead-letter or stop", &v, err))) {
    goto cleanup;
  }
  s->on_error = (as_on_error)v;
  static const char *const on_truncates[] = {"stop", "propagate", "ignore", NULL};
  v = AS_ON_TRUNCATE_STOP;
  if ((rc = parse_enum(root, "on_truncate", on_truncates, "stop, propagate or ignore", &v,
                       err))) {
    goto cleanup;
  }
  s->on_truncate = (as_on_truncate)v;
  if ((rc = parse_initial_sync(root, s, err))) goto cleanup;
  if ((rc = parse_mirror(root, s, err))) goto cleanup;
  fix_marks(s);
  *out = s;
  s = NULL;
cleanup:
  free(marks);
  as_schema_free(s);
  return rc;
}

int as_schema_load(const char *path, as_schema **out, as_error *err) {
  *out = NULL;
  as_ydoc *doc = NULL;
  int rc = as_yaml_load_file(path, &doc, err);
  if (rc == AS_OK) rc = build(doc, out, err);
  as_ydoc_free(doc);
  return rc;
}

int as_schema_load_string(const char *name, const char *yaml, as_schema **out, as_error *err) {
  *out = NULL;
  as_ydoc *doc = NULL;
  int rc = as_yaml_load_string(name, yaml, strlen(yaml), &doc, err);
  if (rc == AS_OK) rc = build(doc, out, err);
  as_ydoc_free(doc);
  return rc;
}

/* ---------------------------------------------------------------- lookups */

int as_schema_column_index(const as_schema *s, const char *name) {
  for (size_t i = 0; s && name && i < s->ncols; i++) {
    if (strcmp(s->cols[i].name, name) == 0) return (int)i;
  }
  return -1;
}

/* Splits buf in place on '.'; parts must have room for (number of dots + 1) pointers. */
static size_t split_dotted(char *buf, char **parts) {
  size_t n = 0;
  for (char *p = buf;;) {
    parts[n++] = p;
    char *dot = strchr(p, '.');
    if (!dot) break;
    *dot = '\0';
    p = dot + 1;
  }
  return n;
}

static size_t count_parts(const char *s) {
  size_t n = 1;
  for (; *s; s++) n += *s == '.';
  return n;
}

/* relation of column/child path cp to the change path: 1 = cp is prefix of or equal to path,
 * 2 = path is a strict prefix of cp, 0 = unrelated */
static int relate(char *const *cp, size_t ncp, char *const *pp, size_t npp) {
  size_t m = ncp < npp ? ncp : npp;
  for (size_t i = 0; i < m; i++) {
    if (strcmp(cp[i], pp[i]) != 0) return 0;
  }
  return ncp <= npp ? 1 : 2;
}

/* Returns the column index, AS_SCHEMA_PATH_PARENT, the catch-all, or -1 (sets *child when the
 * column is a child table's array column). */
static int lookup(const as_schema *s, const char *dotted, int *child) {
  *child = -1;
  if (!s || !dotted || !*dotted) return -1;
  char *buf = strdup(dotted);
  char **parts = calloc(count_parts(dotted), sizeof *parts);
  int result = -1;
  bool parent = false;
  if (!buf || !parts) goto done; /* out of memory: nothing maps it */
  size_t np = split_dotted(buf, parts);
  for (size_t i = 0; i < s->ncols; i++) {
    const as_column *c = &s->cols[i];
    if (c->catch_all) continue;
    int r = relate(c->path, c->npath, parts, np);
    if (r == 1) {
      result = (int)i;
      if (c->child > 0) *child = c->child - 1;
      goto done;
    }
    if (r == 2) parent = true;
  }
  result = parent ? AS_SCHEMA_PATH_PARENT : s->catch_all_idx;
done:
  free(buf);
  free(parts);
  return result;
}

int as_schema_column_for_path(const as_schema *s, const char *dotted_path) {
  int child;
  return lookup(s, dotted_path, &child);
}

int as_schema_child_for_path(const as_schema *s, const char *dotted_path) {
  int child;
  lookup(s, dotted_path, &child);
  return child;
}
