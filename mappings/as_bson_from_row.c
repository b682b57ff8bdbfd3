/* as_bson_from_row.c — row -> MongoDB document (as_row_to_doc) and key -> filter.
 *
 * Decisions:
 * - Order: mapped columns in schema order (columns sharing a parent document are grouped
 *   where the first of them is), then the catch-all fields of that document in their stored
 *   order. A document already in that order round-trips byte for byte; others come back with
 *   the same fields and values in that order.
 * - NULL values are written as BSON null (a field that was missing comes back as null unless
 *   a catch-all is involved); catch-all fields that a column or a child table claims are
 *   skipped.
 */
#include <stdlib.h>

#include "as_bson_priv.h"

/* ================================================================ row -> document */

static bool has_head(const as_schema *s, const int *idx, size_t n, size_t depth, const char *key, size_t kl) {
  for (size_t i = 0; i < n; i++) {
    const as_column *c = &s->cols[idx[i]];
    const char *p = c->path[depth];
    if (strncmp(p, key, kl) == 0 && p[kl] == '\0') return true;
  }
  return false;
}

bool as_bson_child_head(const as_schema *s, size_t depth, const char *key) {
  if (depth != 0) return false;
  for (size_t i = 0; i < s->nchildren; i++)
    if (s->children[i].field && strcmp(s->children[i].field, key) == 0) return true;
  return false;
}

/* Writes the columns idx[0..n) (all sharing path[0..depth)) and the catch-all fields of this
 * level (`extra`, may be NULL). */
static int emit_level(const as_schema *s, const as_row *r, bson_t *dst, size_t depth, const int *idx,
                      size_t n, const bson_t *extra, as_error *err) {
  int rc = AS_OK;
  int *group = malloc((n ? n : 1) * sizeof *group);
  uint8_t *done = calloc(n ? n : 1, 1);
  if (!group || !done) {
    rc = as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
    goto cleanup;
  }
  for (size_t i = 0; i < n; i++) {
    if (done[i]) continue;
    const as_column *c = &s->cols[idx[i]];
    const char *head = c->path[depth];
    if (c->npath == depth + 1) {
      done[i] = 1;
      if (!r->set[idx[i]]) continue;
      if ((rc = as_value_append_bson(dst, head, -1, &r->v[idx[i]], err)) != AS_OK) {
        as_error_prefix(err, "mapping %s, column \"%s\"", s->name, c->name);
        goto cleanup;
      }
      continue;
    }
    size_t ng = 0;
    bool any = false;
    for (size_t k = i; k < n; k++) {
      const as_column *o = &s->cols[idx[k]];
      if (!done[k] && o->npath > depth + 1 && strcmp(o->path[depth], head) == 0) {
        group[ng++] = idx[k];
        done[k] = 1;
        any = any || r->set[idx[k]];
      }
    }
    bson_t sub_extra;
    bool have_sub = false;
    bson_iter_t eit;
    if (extra && bson_iter_init_find(&eit, extra, head) && BSON_ITER_HOLDS_DOCUMENT(&eit)) {
      uint32_t len;
      const uint8_t *data;
      bson_iter_document(&eit, &len, &data);
      have_sub = bson_init_static(&sub_extra, data, len);
    }
    if (!any && !have_sub) continue;
    int *gcopy = malloc(ng * sizeof *gcopy);
    if (!gcopy) {
      rc = as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
      goto cleanup;
    }
    memcpy(gcopy, group, ng * sizeof *gcopy);
    bson_t child;
    bson_append_document_begin(dst, head, -1, &child);
    rc = emit_level(s, r, &child, depth + 1, gcopy, ng, have_sub ? &sub_extra : NULL, err);
    bson_append_document_end(dst, &child);
    free(gcopy);
    if (rc != AS_OK) goto cleanup;
  }
  if (extra) {
    bson_iter_t it;
    bson_iter_init(&it, extra);
    while (bson_iter_next(&it)) {
      const char *k = bson_iter_key(&it);
      if (has_head(s, idx, n, depth, k, bson_iter_key_len(&it)) || as_bson_child_head(s, depth, k)) continue;
      if (!bson_append_iter(dst, NULL, 0, &it)) {
        rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "document too large");
        goto cleanup;
      }
    }
  }
cleanup:
  free(group);
  free(done);
  return rc;
}

int as_row_to_doc(const as_schema *s, const as_row *r, bson_t *out, as_error *err) {
  bson_init(out);
  bson_t extra;
  bool have_extra = false;
  int rc = AS_OK;
  int stack[32], *idx = stack;
  size_t n = 0;
  if (s->ncols > 32 && !(idx = malloc(s->ncols * sizeof *idx)))
    return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
  for (size_t i = 0; i < s->ncols; i++)
    if (!s->cols[i].catch_all && s->cols[i].npath) idx[n++] = (int)i;
  if (s->catch_all_idx >= 0 && r->set[s->catch_all_idx] && r->v[s->catch_all_idx].type == AS_T_JSON) {
    const as_value *cv = &r->v[s->catch_all_idx];
    bool arr = false;
    rc = as_asjson_to_bson(cv->u.s.ptr, cv->u.s.len, &extra, &arr, err);
    if (rc == AS_OK && arr) rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "catch-all value is an array, not an object");
    if (rc != AS_OK) {
      bson_destroy(&extra);
      as_error_prefix(err, "mapping %s, column \"%s\"", s->name, s->cols[s->catch_all_idx].name);
      rc = AS_EDATA;
      goto cleanup;
    }
    have_extra = true;
  }
  rc = emit_level(s, r, out, 0, idx, n, have_extra ? &extra : NULL, err);
  if (have_extra) bson_destroy(&extra);
cleanup:
  if (rc != AS_OK) bson_reinit(out);
  if (idx != stack) free(idx);
  return rc;
}

int as_key_to_filter(const as_schema *s, const as_row *r, bson_t *out, as_error *err) {
  bson_init(out);
  for (size_t k = 0; k < s->nkey; k++) {
    size_t i = s->key_idx[k];
    if (i >= r->n || !r->set[i]) {
      bson_reinit(out);
      return as_error_set(err, AS_DOM_MAPPING, AS_EINVAL, "mapping %s: key column \"%s\" is not set", s->name,
                          s->cols[i].name);
    }
    int rc = as_value_append_bson(out, s->cols[i].field, -1, &r->v[i], err);
    if (rc != AS_OK) {
      bson_reinit(out);
      return rc;
    }
  }
  return AS_OK;
}

