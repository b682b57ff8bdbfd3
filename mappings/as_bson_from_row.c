/* as_bson_from_row.c — row -> MongoDB document (as_row_to_doc) and key -> filter.
 *
 * Decisions:
 * - Order: mapped columns in schema order (columns sharing a parent document are grouped
 *   where the first of them is), then the catch-all fields of that document in their stored
 *   order. A document already in that order round-trips byte for byte; others come back with
 *   the same fields and values in that order.
 * - The document is written as raw bytes (as_bson_priv.h) and copied into the bson_t once.
 * - The catch-all is read with the AS-JSON decoder: text that is not an AS-JSON object (an
 *   array, a single-'$' key that is no wrapper, a duplicate key, ...) is AS_EDATA naming the
 *   column.
 * - NULL values are written as BSON null (a field that was missing comes back as null unless
 *   a catch-all is involved), except in a json column, where null is JSON null and NULL is no
 *   field (as_column_json_null); a catch-all field at a column's own path is AS_EDATA naming both
 *   (as_catch_all_collision: the document cannot hold both values); catch-all sub-documents
 *   under a column's parent path are merged with it; a child table's field is skipped.
 */
#include <stdlib.h>

#include "as_bson_priv.h"

/* ================================================================ row -> document */

static AS_MUSTCHECK bool has_head(const as_schema *s, const int *idx, size_t n, size_t depth, const char *key, size_t kl) {
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

int as_catch_all_collision(const as_schema *s, const as_bsonr *extra, as_error *err) {
  for (size_t i = 0; i < s->ncols; i++) {
    const as_column *c = &s->cols[i];
    if (c->catch_all || !c->npath) continue;
    as_bsonr level = *extra;
    as_bsonr_el e;
    for (size_t d = 0; d < c->npath; d++) {
      if (as_bsonr_find(&level, c->path[d], strlen(c->path[d]), &e) != 1) break;
      if (d + 1 == c->npath) {
        return as_error_set(err, AS_DOM_MAPPING, AS_EDATA,
                            "mapping %s, column \"%s\": the catch-all holds field \"%s\", which "
                            "is column \"%s\"'s; a document cannot hold both",
                            s->name, s->cols[s->catch_all_idx].name, c->field, c->name);
      }
      if (e.type != BSON_TYPE_DOCUMENT || as_bsonr_child(&e, &level) != AS_OK) break;
    }
  }
  return AS_OK;
}

/* The catch-all fields of this level that no column or child table claims, copied. */
static AS_MUSTCHECK int emit_extra(const as_schema *s, as_buf *dst, size_t depth, const int *idx, size_t n,
                      const as_bsonr *extra, as_error *err) {
  as_bsonr it = *extra;
  as_bsonr_el e;
  int more;
  while ((more = as_bsonr_next(&it, &e)) == 1) {
    if (has_head(s, idx, n, depth, e.key, e.keylen) || as_bson_child_head(s, depth, e.key)) continue;
    if (rw_bytes(dst, e.type, e.key, e.keylen, e.val, e.vlen))
      return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "document too large");
  }
  return more == 0 ? AS_OK : as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "catch-all value: invalid BSON");
}

/* Does column i get a field? When set, unless NULL in a json column (a json column's null
 * field is JSON null, so its NULL is a missing field: as_column_json_null). */
static bool written(const as_column *c, const as_row *r, int i) {
  return r->set[i] && !(r->v[i].type == AS_T_NULL && as_column_json_null(c));
}

/* Writes the columns idx[0..n) (all sharing path[0..depth)) and the catch-all fields of this
 * level (`extra`, may be NULL) as raw elements into dst. */
static AS_MUSTCHECK int emit_level(const as_schema *s, const as_row *r, as_buf *dst, size_t depth, const int *idx,
                      size_t n, const as_bsonr *extra, as_error *err) {
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
    size_t hl = strlen(head);
    if (c->npath == depth + 1) {
      done[i] = 1;
      if (!written(c, r, idx[i])) continue;
      if ((rc = as_bsonw_value_inline(dst, head, hl, &r->v[idx[i]], err)) != AS_OK) {
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
        any = any || written(o, r, idx[k]);
      }
    }
    as_bsonr sub;
    as_bsonr_el e;
    bool have_sub = extra && as_bsonr_find(extra, head, hl, &e) == 1 && e.type == BSON_TYPE_DOCUMENT &&
                    as_bsonr_child(&e, &sub) == AS_OK;
    if (!any && !have_sub) continue;
    int *gcopy = malloc(ng * sizeof *gcopy);
    size_t at;
    if (!gcopy || rw_begin(dst, BSON_TYPE_DOCUMENT, head, hl, &at)) {
      free(gcopy);
      rc = as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
      goto cleanup;
    }
    memcpy(gcopy, group, ng * sizeof *gcopy);
    rc = emit_level(s, r, dst, depth + 1, gcopy, ng, have_sub ? &sub : NULL, err);
    free(gcopy);
    if (rc == AS_OK && rw_end(dst, at)) rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "document too large");
    if (rc != AS_OK) goto cleanup;
  }
  if (extra) rc = emit_extra(s, dst, depth, idx, n, extra, err);
cleanup:
  free(group);
  free(done);
  return rc;
}

/* The catch-all's text as a raw document into raw; AS_EDATA naming the column if it is not
 * an AS-JSON object. */
static AS_MUSTCHECK int catch_all_doc(const as_schema *s, const as_value *cv, as_buf *raw, as_error *err) {
  as_jsonr j;
  bool arr = false;
  as_jsonr_init(&j, cv->u.s.ptr, cv->u.s.len);
  int rc = as_jsonr_top(&j, raw, &arr);
  if (rc != AS_OK) as_jsonr_error(&j, rc, err);
  else if (arr) as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "catch-all value is an array, not an object");
  as_jsonr_free(&j);
  if (rc == AS_ERR) return rc;
  if (rc != AS_OK || arr) {
    as_error_prefix(err, "mapping %s, column \"%s\"", s->name, s->cols[s->catch_all_idx].name);
    if (err) err->code = AS_EDATA;
    return AS_EDATA;
  }
  return AS_OK;
}

int as_row_to_doc(const as_schema *s, const as_row *r, bson_t *out, as_error *err) {
  bson_init(out);
  as_buf extra = AS_BUF_INIT, doc = AS_BUF_INIT;
  as_bsonr er;
  bool have_extra = false;
  int rc = AS_OK;
  int stack[32], *idx = stack;
  size_t n = 0, at = 0;
  if (s->ncols > 32 && !(idx = malloc(s->ncols * sizeof *idx)))
    return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
  for (size_t i = 0; i < s->ncols; i++)
    if (!s->cols[i].catch_all && s->cols[i].npath) idx[n++] = (int)i;
  if (s->catch_all_idx >= 0 && r->set[s->catch_all_idx] && r->v[s->catch_all_idx].type == AS_T_JSON) {
    if ((rc = catch_all_doc(s, &r->v[s->catch_all_idx], &extra, err)) != AS_OK) goto cleanup;
    if ((rc = as_bsonr_init(&er, extra.data, extra.len)) != AS_OK) {
      rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s: catch-all value too large", s->name);
      goto cleanup;
    }
    if ((rc = as_catch_all_collision(s, &er, err)) != AS_OK) goto cleanup;
    have_extra = true;
  }
  if (room(&doc, 4)) {
    rc = as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
    goto cleanup;
  }
  doc.len = 4;
  rc = emit_level(s, r, &doc, 0, idx, n, have_extra ? &er : NULL, err);
  if (rc == AS_OK && rw_end(&doc, at)) rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s: document too large", s->name);
  if (rc == AS_OK) {
    uint8_t *p = bson_reserve_buffer(out, (uint32_t)doc.len);
    if (p) memcpy(p, doc.data, doc.len);
    else rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s: document too large", s->name);
  }
cleanup:
  if (rc != AS_OK) bson_reinit(out);
  if (idx != stack) free(idx);
  as_buf_free(&extra);
  as_buf_free(&doc);
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

