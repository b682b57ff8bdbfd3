/* as_children.c — array column <-> child table rows (as_children.h states the rules). */
#include "as_children.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_bson.h"
#include "as_key.h"

static int oom(as_error *err) { return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory"); }

/* "mapping M, key K, element F.I<sep><tail>" (the error returned: AS_EDATA). */
static int path_error(const as_schema *s, const as_row *parent, const as_child *ch, size_t i,
                      const char *sep, const char *tail, as_error *err) {
  as_error ke;
  char *k = as_key_json_dup(s, parent, &ke);
  as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s, key %s, element %s.%zu%s%s", s->name,
               k ? k : "?", ch->field, i, sep, tail);
  free(k);
  return AS_EDATA;
}

/* "mapping M, key K, element orders.2: why" */
static int element_error(const as_schema *s, const as_row *parent, const as_child *ch, size_t i,
                         const char *why, as_error *err) {
  /* an element's own message names its schema and an empty key: keep from "field" on */
  const char *tail = strstr(why, "field \"");
  return path_error(s, parent, ch, i, ": ", tail ? tail : why, err);
}

/* A nested child's error (its own "mapping M.F, key K, element G.J: why") -> the same at the
 * document's level: "mapping M, key K, element F.I.G.J: why". */
static int nested_error(const as_schema *s, const as_row *parent, const as_child *ch, size_t i,
                        const char *inner, as_error *err) {
  const char *el = strstr(inner, ", element ");
  return path_error(s, parent, ch, i, el ? "." : ": ", el ? el + strlen(", element ") : inner, err);
}

void as_child_rows_free(as_row *rows, size_t n) {
  for (size_t i = 0; rows && i < n; i++) as_row_clear(&rows[i]);
  free(rows);
}

bool as_child_same_key(const as_schema *tab, const as_row *a, const as_row *b) {
  for (size_t k = 0; k < tab->nkey; k++) {
    size_t c = tab->key_idx[k];
    if (!as_value_equal(&a->v[c], &b->v[c])) return false;
  }
  return true;
}

bool as_child_same_values(const as_schema *tab, const as_row *a, const as_row *b) {
  for (size_t c = 0; c < tab->ncols; c++) {
    if (!as_value_equal(&a->v[c], &b->v[c])) return false;
  }
  return true;
}

/* The child table row's column of element column c (an element column, then the nested
 * children's array columns). */
static size_t tab_col(const as_schema *s, const as_child *ch, size_t c) {
  return c < ch->ncols ? s->nkey + 1 + c : ch->tab->children[c - ch->ncols].col;
}

/* Element doc (as BSON) number i -> child table row r (its nested arrays as values, each
 * checked to convert to rows of its own child table). */
static int element_row(const as_schema *s, const as_child *ch, const as_row *parent, size_t i,
                       const bson_t *doc, as_row *er, as_row *r, as_error *err) {
  as_error e;
  int rc = as_doc_to_row(ch->elem, doc, er, &e);
  if (rc == AS_ERR) return oom(err);
  if (rc != AS_OK) return element_error(s, parent, ch, i, e.message, err);
  if (as_row_init(r, ch->tab->ncols) != AS_OK) return oom(err);
  for (size_t k = 0; k < s->nkey; k++) {
    as_value v;
    if (as_value_copy(&v, &parent->v[s->key_idx[k]]) != AS_OK) return oom(err);
    as_row_put(r, k, &v);
  }
  as_value pos = {.type = AS_T_INT64, .u.i = (int64_t)i};
  as_row_put(r, s->nkey, &pos);
  for (size_t c = 0; c < ch->elem->ncols; c++) as_row_put(r, tab_col(s, ch, c), &er->v[c]);
  for (size_t g = 0; g < ch->tab->nchildren; g++) {
    as_row *rows;
    size_t n;
    rc = as_child_rows(ch->tab, g, r, &r->v[ch->tab->children[g].col], &rows, &n, &e);
    if (rc == AS_ERR) return oom(err);
    if (rc != AS_OK) return nested_error(s, parent, ch, i, e.message, err);
    as_child_rows_free(rows, n);
  }
  return AS_OK;
}

int as_child_rows(const as_schema *s, size_t ci, const as_row *parent, const as_value *arr,
                  as_row **rows, size_t *nrows, as_error *err) {
  const as_child *ch = &s->children[ci];
  *rows = NULL;
  *nrows = 0;
  if (!arr || arr->type == AS_T_NULL) return AS_OK;
  bson_t wrap = BSON_INITIALIZER;
  bson_iter_t it, ai;
  as_row er = {0};
  as_row *out = NULL;
  size_t n = 0, cap = 0;
  int rc = as_value_append_bson(&wrap, "a", 1, arr, err);
  if (rc != AS_OK) goto done;
  if (!bson_iter_init_find(&it, &wrap, "a") || !BSON_ITER_HOLDS_ARRAY(&it) ||
      !bson_iter_recurse(&it, &ai)) {
    rc = element_error(s, parent, ch, 0, "the field is not an array", err);
    goto done;
  }
  while (bson_iter_next(&ai)) {
    if (n == cap) {
      size_t nc = cap ? 2 * cap : 8;
      as_row *g = realloc(out, nc * sizeof *g);
      if (!g) {
        rc = oom(err);
        goto done;
      }
      memset(g + cap, 0, (nc - cap) * sizeof *g);
      out = g;
      cap = nc;
    }
    if (!BSON_ITER_HOLDS_DOCUMENT(&ai)) {
      char why[96];
      snprintf(why, sizeof why, "the element is %s, not a document",
               BSON_ITER_HOLDS_ARRAY(&ai) ? "an array" : "a scalar");
      rc = element_error(s, parent, ch, n, why, err);
      goto done;
    }
    uint32_t len;
    const uint8_t *data;
    bson_t doc;
    bson_iter_document(&ai, &len, &data);
    if (!bson_init_static(&doc, data, len)) {
      rc = element_error(s, parent, ch, n, "invalid BSON", err);
      goto done;
    }
    rc = element_row(s, ch, parent, n, &doc, &er, &out[n], err);
    n++;
    if (rc != AS_OK) goto done;
    for (size_t j = 0; ch->key >= 0 && j + 1 < n; j++) {
      if (as_child_same_key(ch->tab, &out[j], &out[n - 1])) {
        char why[160];
        snprintf(why, sizeof why, "key \"%s\" of the element is also element %zu's (the child "
                 "table holds one row per key)", ch->cols[ch->key].field, j);
        rc = element_error(s, parent, ch, n - 1, why, err);
        goto done;
      }
    }
  }
done:
  bson_destroy(&wrap);
  as_row_clear(&er);
  if (rc != AS_OK) {
    as_child_rows_free(out, n);
    return rc;
  }
  *rows = out;
  *nrows = n;
  return AS_OK;
}

int as_child_array(const as_schema *s, size_t ci, const as_row *rows, size_t n, as_value *out,
                   as_error *err) {
  const as_child *ch = &s->children[ci];
  *out = AS_VALUE_NULL;
  if (n == 0) return AS_OK;
  bson_t wrap = BSON_INITIALIZER, arr, next;
  as_row er = {0};
  int rc = AS_OK;
  if (as_row_init(&er, ch->elem->ncols) != AS_OK) return oom(err);
  bson_append_array_begin(&wrap, "a", 1, &arr);
  for (size_t i = 0; rc == AS_OK && i < n; i++) {
    for (size_t c = 0; c < ch->elem->ncols; c++) {
      er.v[c] = rows[i].v[tab_col(s, ch, c)]; /* borrowed */
      er.set[c] = 1;
    }
    bool changed;
    rc = as_doc_merge(ch->elem, NULL, &er, &next, &changed, err);
    if (rc == AS_OK) {
      char key[24];
      const char *kp;
      size_t kl = bson_uint32_to_string((uint32_t)i, &kp, key, sizeof key);
      if (!bson_append_document(&arr, kp, (int)kl, &next)) rc = oom(err);
    }
    bson_destroy(&next);
  }
  bson_append_array_end(&wrap, &arr);
  memset(er.v, 0, ch->elem->ncols * sizeof *er.v); /* the values were borrowed */
  as_row_clear(&er);
  bson_iter_t it;
  if (rc == AS_OK && bson_iter_init_find(&it, &wrap, "a"))
    rc = as_bson_iter_to_value(s, &s->cols[ch->col], &it, out, err);
  bson_destroy(&wrap);
  return rc;
}

int as_children_drop_invalid(const as_schema *s, as_row *row, as_error *err) {
  int ret = AS_OK;
  for (size_t ci = 0; ci < s->nchildren; ci++) {
    size_t col = s->children[ci].col;
    if (col >= row->n || !row->set[col]) continue;
    as_row *rows;
    size_t n;
    as_error e;
    int rc = as_child_rows(s, ci, row, &row->v[col], &rows, &n, &e);
    if (rc == AS_OK) {
      as_child_rows_free(rows, n);
      continue;
    }
    if (rc != AS_EDATA) {
      if (err) *err = e;
      return rc;
    }
    if (ret == AS_OK && err) {
      *err = e;
      as_error_prefix(err, "left out of the change (the rest of the document syncs)");
    }
    ret = AS_EDATA;
    as_value_clear(&row->v[col]);
    row->set[col] = 0;
  }
  return ret;
}

int as_child_normalize(const as_schema *s, size_t ci, const as_row *parent, const as_value *arr,
                       as_value *out, as_error *err) {
  as_row *rows;
  size_t n;
  *out = AS_VALUE_NULL;
  int rc = as_child_rows(s, ci, parent, arr, &rows, &n, err);
  if (rc != AS_OK) return rc;
  const as_schema *tab = s->children[ci].tab;
  for (size_t j = 0; rc == AS_OK && j < n; j++) { /* nested arrays as their tables give them */
    for (size_t g = 0; rc == AS_OK && g < tab->nchildren; g++) {
      size_t col = tab->children[g].col;
      as_value v;
      rc = as_child_normalize(tab, g, &rows[j], &rows[j].v[col], &v, err);
      if (rc == AS_OK) as_row_put(&rows[j], col, &v);
    }
  }
  if (rc == AS_OK) rc = as_child_array(s, ci, rows, n, out, err);
  as_child_rows_free(rows, n);
  return rc;
}
