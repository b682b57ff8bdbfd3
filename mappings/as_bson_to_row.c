/* as_bson_to_row.c — MongoDB document -> row (as_doc_to_row, as_doc_to_key).
 *
 * Decisions:
 * - One walk over the document; field names are matched against the column path parts of
 *   the current depth (bucketed by length). No allocation per field except the values.
 * - Paths: a missing field or a null anywhere on a column's path gives NULL. Any other
 *   non-document in the middle of a path (column "account.balance", "account" is a string or
 *   an array) is AS_EDATA ("cannot descend into string \"x\" at \"account\""): the value would
 *   otherwise be lost, since the catch-all does not gather a field a column path starts with.
 *   Array indexes in column paths are not supported.
 * - Catch-all: every field no column path (or child-table field) leads to, also inside the
 *   documents that columns descend into, kept nested ({"account":{"note":"x"}} when only
 *   account.balance is mapped), so as_row_to_doc can merge them back. NULL when there is
 *   none. Without a catch-all such fields are ignored (MongoDB updates use $set, so they are
 *   not lost there).
 * - Child tables: a child's array is its array column (as_schema.h, as_child), a json column
 *   like any other here.
 * - Messages: "mapping M, key K, field \"F\": <tail of as_bson_value.c>", K the canonical JSON
 *   of the key ({"id":{"$uuid":"..."}}) or ? when the key itself cannot be read.
 * - Documents are read with as_bsonr (every element checked): a corrupt document, or a
 *   catch-all field holding a string or key that is not UTF-8, is AS_EDATA.
 * - A failing document leaves an empty row (every column unset).
 */
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "as_bson_priv.h"

/* ================================================================ document -> row */

/* Index list entry: a column. */
typedef struct pref {
  const char *const *path;
  size_t npath;
  int col;
  size_t hlen; /* strlen(path[depth]) for the depth being walked */
} pref;

typedef struct walker {
  const as_schema *s;
  as_row *row;
  as_buf *extra;            /* catch-all being built, or NULL */
  int opened[MAX_DEPTH];    /* per depth: 0 not opened, else items written + 1 */
  const char *okey[MAX_DEPTH];
  size_t okeylen[MAX_DEPTH];
  int err_col;              /* column of the failure */
  char why[WHY_MAX];
} walker;

/* A writer result for the catch-all as a walk result (why set for data errors). */
static AS_MUSTCHECK int extra_result(walker *w, int rc, const as_bsonr_el *e) {
  if (rc == AS_OK || rc == AS_ERR) return rc;
  snprintf(w->why, WHY_MAX, "field \"%.*s\" holds %s", (int)(e->keylen > 100 ? 100 : e->keylen), e->key,
           rc == AS_EDATA        ? "a string or key that is not valid UTF-8"
           : rc == AS_JSONW_EDUP ? "a document with a key twice"
                                 : "invalid BSON");
  return AS_EDATA;
}

/* Opens the catch-all containers down to `depth` (lazily, only when a field lands there). */
static AS_MUSTCHECK int extra_open(walker *w, size_t depth) {
  for (size_t d = 0; d <= depth; d++) {
    if (w->opened[d]) continue;
    if (d > 0) {
      if (w->opened[d - 1] > 1 && bput(w->extra, ',')) return AS_ERR;
      w->opened[d - 1]++;
      int rc = as_jsonw_key(w->extra, w->okey[d], w->okeylen[d]);
      if (rc != AS_OK) return rc;
      if (bput(w->extra, ':')) return AS_ERR;
    }
    if (bput(w->extra, '{')) return AS_ERR;
    w->opened[d] = 1;
  }
  return AS_OK;
}

static AS_MUSTCHECK int extra_field(walker *w, size_t depth, const as_bsonr_el *e) {
  int rc = extra_open(w, depth);
  if (rc != AS_OK) return extra_result(w, rc, e);
  if (w->opened[depth] > 1 && bput(w->extra, ',')) return AS_ERR;
  w->opened[depth]++;
  if ((rc = as_jsonw_key(w->extra, e->key, e->keylen)) != AS_OK) return extra_result(w, rc, e);
  if (bput(w->extra, ':')) return AS_ERR;
  return extra_result(w, as_jsonw_value(e, w->extra, (int)depth), e);
}

static AS_MUSTCHECK int walk_level(walker *w, as_bsonr *r, size_t depth, const pref *refs, size_t nrefs);

/* Field e leads to columns m[0..nm) deeper down: a document to walk, NULL, or an error. */
static AS_MUSTCHECK int descend(walker *w, const as_bsonr_el *e, size_t depth, const pref *m, size_t nm) {
  if (e->type == BSON_TYPE_NULL) return AS_OK;
  if (e->type != BSON_TYPE_DOCUMENT) {
    char d[160];
    as_bson_describe(e, d, sizeof d);
    w->err_col = m[0].col;
    snprintf(w->why, WHY_MAX, "cannot descend into %s at \"%.*s\"", d, (int)e->keylen, e->key);
    return AS_EDATA;
  }
  as_bsonr child;
  if (as_bsonr_child(e, &child) != AS_OK) {
    snprintf(w->why, WHY_MAX, "field \"%.*s\" holds invalid BSON", (int)e->keylen, e->key);
    return AS_EDATA;
  }
  if (w->extra) {
    w->okey[depth + 1] = e->key;
    w->okeylen[depth + 1] = e->keylen;
    w->opened[depth + 1] = 0;
  }
  pref stack[64], *copy = nm <= 64 ? stack : malloc(nm * sizeof *copy);
  if (!copy) return AS_ERR;
  memcpy(copy, m, nm * sizeof *copy);
  for (size_t i = 0; i < nm; i++) copy[i].hlen = strlen(copy[i].path[depth + 1]);
  int rc = walk_level(w, &child, depth + 1, copy, nm);
  if (copy != stack) free(copy);
  if (rc == AS_OK && w->extra && w->opened[depth + 1]) {
    if (bput(w->extra, '}')) return AS_ERR;
    w->opened[depth + 1] = 0;
  }
  return rc;
}

static AS_MUSTCHECK int twice(walker *w, const as_bsonr_el *dup) {
  snprintf(w->why, WHY_MAX, "field \"%.*s\" appears twice in the document", (int)(dup->keylen > 100 ? 100 : dup->keylen),
           dup->key);
  return AS_EDATA;
}

static AS_MUSTCHECK int walk_level(walker *w, as_bsonr *r, size_t depth, const pref *refs, size_t nrefs) {
  pref sub[64];
  pref *heap = NULL;
  int rc = AS_OK;
  if (depth >= MAX_DEPTH) return AS_OK;
  /* a field twice: which value would the column or the catch-all keep? neither: refused
   * (checked as the walk goes; a level of more than AS_KEYSET_MAX fields once it is walked) */
  as_keyset seen;
  as_keyset_init(&seen);
  const as_bsonr start = *r;
  bool seen_all = true;
  if (nrefs > 64 && !(heap = malloc(nrefs * sizeof *heap))) return AS_ERR;
  pref *m = heap ? heap : sub;
  /* refs bucketed by name length (chains through nxt), so a field is compared only with
   * the path parts of its own length */
  int16_t bucket[32], nxt_stack[64], *nxt = nxt_stack, *nxt_heap = NULL;
  if (nrefs > 64 && !(nxt = nxt_heap = malloc(nrefs * sizeof *nxt))) {
    free(heap);
    return AS_ERR;
  }
  for (int b = 0; b < 32; b++) bucket[b] = -1;
  for (size_t i = nrefs; i-- > 0;) {
    size_t b = refs[i].hlen < 31 ? refs[i].hlen : 31;
    nxt[i] = bucket[b];
    bucket[b] = (int16_t)i;
  }
  as_bsonr_el e;
  int more;
  while ((more = as_bsonr_next(r, &e)) == 1) {
    int ks = as_keyset_add(&seen, &e);
    if (ks == 1) {
      rc = twice(w, &e);
      goto done;
    }
    if (ks == 2) seen_all = false;
    size_t kl = e.keylen, nm = 0;
    for (int i = bucket[kl < 31 ? kl : 31]; i >= 0; i = nxt[i]) {
      const char *p = refs[i].path[depth];
      if (refs[i].hlen == kl && p[0] == e.key[0] && memcmp(p, e.key, kl) == 0) m[nm++] = refs[i];
    }
    if (nm == 0) {
      if (w->extra && (rc = extra_field(w, depth, &e)) != AS_OK) goto done;
      continue;
    }
    if (m[0].npath > depth + 1) {
      if ((rc = descend(w, &e, depth, m, nm)) != AS_OK) goto done;
      continue;
    }
    if ((rc = as_bson_convert(&w->s->cols[m[0].col], &e, &w->row->v[m[0].col], w->why)) != AS_OK) {
      w->err_col = m[0].col;
      goto done;
    }
    w->row->set[m[0].col] = 1;
  }
  if (more != 0) {
    snprintf(w->why, WHY_MAX, "invalid BSON document (corrupt at byte %u of a %u-byte document)", r->off, r->len);
    rc = AS_EDATA;
  } else if (!seen_all) {
    as_bsonr_el dup;
    int dr = as_bsonr_dup_key(&start, &dup);
    if (dr == 1) rc = twice(w, &dup);
    else if (dr != 0) rc = dr == AS_ERR ? AS_ERR : AS_EDATA;
  }
done:
  if (heap) free(heap); /* rarely allocated: no free(NULL) call per level */
  if (nxt_heap) free(nxt_heap);
  return rc;
}

/* The refs of all columns (except the catch-all; a child table's array column included). */
static AS_MUSTCHECK int build_refs(const as_schema *s, bool keys_only, pref *stack, size_t cap, pref **out, size_t *n) {
  size_t need = s->ncols;
  pref *r = stack;
  if (need > cap && !(r = malloc(need * sizeof *r))) return AS_ERR;
  size_t k = 0;
  if (keys_only) {
    for (size_t i = 0; i < s->nkey; i++) {
      const as_column *c = &s->cols[s->key_idx[i]];
      if (c->npath) r[k++] = (pref){(const char *const *)c->path, c->npath, (int)s->key_idx[i], strlen(c->path[0])};
    }
  } else {
    for (size_t i = 0; i < s->ncols; i++) {
      const as_column *c = &s->cols[i];
      if (!c->catch_all && c->npath) r[k++] = (pref){(const char *const *)c->path, c->npath, (int)i, strlen(c->path[0])};
    }
  }
  *out = r;
  *n = k;
  return AS_OK;
}

/* keep_values: leave the values in place (their buffers are reused; columns not seen are
 * cleared after the walk). */
static AS_MUSTCHECK int prepare_row(const as_schema *s, as_row *out, bool keep_values) {
  if (out->v && out->set && out->n == s->ncols) {
    if (keep_values) memset(out->set, 0, out->n);
    else as_row_reset(out);
    return AS_OK;
  }
  as_row_clear(out);
  return as_row_init(out, s->ncols);
}

static AS_MUSTCHECK int doc_to_key_row(const as_schema *s, const bson_t *doc, as_row *out, walker *w) {
  pref stack[16], *refs = NULL;
  size_t nrefs = 0;
  as_bsonr r;
  int rc;
  memset(w, 0, sizeof *w);
  w->err_col = -1;
  if ((rc = build_refs(s, true, stack, 16, &refs, &nrefs)) != AS_OK) return rc;
  w->s = s;
  w->row = out;
  if (as_bsonr_init_doc(&r, doc) != AS_OK) {
    snprintf(w->why, WHY_MAX, "invalid BSON document");
    rc = AS_EDATA;
  } else {
    rc = walk_level(w, &r, 0, refs, nrefs);
  }
  if (refs != stack) free(refs);
  return rc;
}

/* {"id":<canonical JSON>} of the document's key, for messages; "?" when it has none. */
static void key_text(const as_schema *s, const bson_t *doc, char *out, size_t cap) {
  as_row r = {0};
  walker w;
  snprintf(out, cap, "?");
  if (as_row_init(&r, s->ncols) != AS_OK) return;
  if (doc_to_key_row(s, doc, &r, &w) == AS_OK) {
    json_t *o = json_object();
    bool ok = o != NULL;
    for (size_t k = 0; k < s->nkey && ok; k++) {
      size_t i = s->key_idx[k];
      if (!r.set[i]) { ok = false; break; }
      json_t *v = as_value_to_json(&r.v[i], NULL);
      ok = v && json_object_set_new(o, s->cols[i].name, v) == 0;
    }
    char *d = ok ? json_dumps(o, JSON_COMPACT) : NULL;
    if (d) snprintf(out, cap, "%s", d);
    free(d);
    json_decref(o);
  }
  as_row_clear(&r);
}

static AS_MUSTCHECK int data_error(const as_schema *s, const bson_t *doc, const char *field, const char *why,
                      int code, as_error *err) {
  char key[256];
  if (!err) return code;
  key_text(s, doc, key, sizeof key);
  return as_error_set(err, AS_DOM_MAPPING, code, "mapping %s, key %s, field \"%s\": %s", s->name,
                      key, field, why);
}

int as_doc_to_key(const as_schema *s, const bson_t *doc, as_row *out, as_error *err) {
  walker w;
  if (prepare_row(s, out, false) != AS_OK) return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
  int rc = doc_to_key_row(s, doc, out, &w);
  if (rc != AS_OK) {
    const char *f = w.err_col >= 0 ? s->cols[w.err_col].field : "";
    return as_error_set(err, AS_DOM_MAPPING, rc, "mapping %s, key ?, field \"%s\": %s", s->name, f, w.why);
  }
  for (size_t k = 0; k < s->nkey; k++) {
    size_t i = s->key_idx[k];
    if (!out->set[i] || out->v[i].type == AS_T_NULL)
      return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s, key ?, field \"%s\": key field is missing or null",
                          s->name, s->cols[i].field);
  }
  return AS_OK;
}

int as_doc_to_row(const as_schema *s, const bson_t *doc, as_row *out, as_error *err) {
  pref stack[32], *refs = NULL;
  size_t nrefs = 0;
  as_buf extra = AS_BUF_INIT;
  walker w;
  as_bsonr r;
  int rc;
  if (prepare_row(s, out, true) != AS_OK || build_refs(s, false, stack, 32, &refs, &nrefs) != AS_OK)
    return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
  memset(w.opened, 0, sizeof w.opened);
  w.s = s;
  w.row = out;
  if (s->catch_all_idx >= 0) extra = as_bson_buf_over(&out->v[s->catch_all_idx]);
  w.extra = s->catch_all_idx >= 0 ? &extra : NULL;
  w.err_col = -1;
  w.why[0] = '\0';
  if (as_bsonr_init_doc(&r, doc) != AS_OK) {
    rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s: invalid BSON document", s->name);
    goto cleanup;
  }
  rc = walk_level(&w, &r, 0, refs, nrefs);
  if (rc == AS_ERR) {
    as_error_set(err, AS_DOM_MAPPING, AS_ERR, "mapping %s: out of memory", s->name);
    goto cleanup;
  }
  if (rc != AS_OK) {
    rc = data_error(s, doc, w.err_col >= 0 ? s->cols[w.err_col].field : "*", w.why, rc, err);
    goto cleanup;
  }
  if (w.extra) {
    as_value *cv = &out->v[s->catch_all_idx];
    if (w.opened[0]) {
      if (bput(&extra, '}') || !as_buf_cstr(&extra)) {
        rc = as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
        goto cleanup;
      }
      cv->type = AS_T_JSON;
      cv->u.s.len = extra.len;
      cv->u.s.ptr = as_buf_steal(&extra);
    }
    out->set[s->catch_all_idx] = 1;
  }
  for (size_t i = 0; i < s->ncols; i++) {
    if (out->set[i]) {
      if (out->v[i].type != AS_T_NULL || !(s->cols[i].required || s->cols[i].is_key)) continue;
    }
    as_value_clear(&out->v[i]); /* a value kept from the previous document */
    out->set[i] = 1;
    if (s->cols[i].required || s->cols[i].is_key) {
      char why[WHY_MAX];
      snprintf(why, sizeof why, "required column \"%s\" is missing or null", s->cols[i].name);
      rc = data_error(s, doc, s->cols[i].field, why, AS_EDATA, err);
      goto cleanup;
    }
  }
cleanup:
  if (rc != AS_OK) as_row_reset(out);
  if (refs != stack) free(refs);
  if (extra.data) as_buf_free(&extra); /* stolen into the row: usually empty */
  return rc;
}

