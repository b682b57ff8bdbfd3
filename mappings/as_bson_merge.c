/* as_bson_merge.c — the sink's minimal write: the document as it is + a row -> the document as
 * it must become (as_doc_merge), and the $set/$unset paths between the two
 * (as_doc_diff_update). Nothing changes that nobody changed.
 *
 * Decisions:
 * - Equality is the mapping layer's (as_value_equal): a set column whose value equals the
 *   current field read through the column (as_doc_to_row) keeps the field's bytes, whatever its
 *   BSON type (a double 2.0 in a bigint column, Decimal128 "2.50" for a numeric 2.5, int32 vs
 *   int64, a json value whose keys jsonb reordered). When every set column is equal the
 *   document stays as it is: nothing to write.
 * - NULL means absent: a NULL column keeps a field holding null, removes a field holding a
 *   value, and never adds a field; a new document has no field for a NULL column. A json
 *   column holds any value, null too: a null field reads as JSON null, so NULL removes it and
 *   JSON null writes it.
 * - A changed value keeps the BSON type the field already has when it reads back through the
 *   column as an equal value: int64 5 into an int32 field stays int32, 2.5 into a double field
 *   stays a double, an integral numeric into an int32/int64/double field keeps that type, a
 *   numeric into a double field becomes that double only if the double reads back equal
 *   (decimal "0.10" -> 0.1, whose text "0.1" equals "0.10"; "0.1000000000000000000001" does
 *   not survive a double and is written as Decimal128, the numeric column's natural type), text
 *   into a symbol stays a symbol, bytes keep binary subtype 2/0x80, a uuid held as text or as
 *   subtype 3 keeps that form, a timestamp of whole seconds into a BSON timestamp stays one (its
 *   increment kept). Anything else gets the column type's natural BSON type
 *   (as_value_append_bson). Where that natural type does not read back through the column
 *   (never for values the column produced) the write still happens.
 * - json columns and the catch-all, when not equal: merged structurally with the current value
 *   (documents member by member in the current order: equal members keep their bytes, members
 *   the new value lacks are removed, new ones appended in the new value's order; arrays of the
 *   same length element by element; arrays of another length element by element too, each new
 *   element written as the current element equal to it (its bytes, so an element a child table
 *   gave back in its columns' order keeps its own), else merged with the current element at its
 *   index when both are documents; anything else replaced). Equal members include the same
 *   number in another BSON type (int32 2, int64 2, double 2.0: SQL cannot say which it was)
 *   and two NaN doubles (AS-JSON has one NaN).
 * - The catch-all holds every unmapped field (as_doc_to_row): when it is set and differs,
 *   unmapped fields it lacks are removed, also inside documents that columns descend into. When
 *   it is not set (an update of other columns) or equal, unmapped fields are untouched; so are
 *   child tables' array fields and, in an existing document, the key fields.
 * - New fields are appended to their level (new columns in schema order, then new catch-all
 *   fields); a new document (no current one) comes out in as_row_to_doc's order.
 * - A field on a column's path that is not a document (null, a string) is replaced by a
 *   document only when something is written below it.
 * - The diff: fields of `next` that `cur` lacks or holds with other bytes are $set; documents,
 *   and arrays of the same length, are descended into so that only the changed paths are
 *   written; fields only `cur` has are $unset. A path part that is empty, contains '.' or starts
 *   with '$' cannot be written as a path: its nearest writable parent is $set whole, and at the
 *   top level the caller must replace the document with `next` (*replace).
 * - Lookups by key try the element after the last one found first: merged documents keep the
 *   current order, so walking two of them is linear, not quadratic.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "as_bson_priv.h"

#define UNSAFE 1 /* internal: a path part that $set/$unset cannot name */

static AS_MUSTCHECK int oom(as_error *err) {
  return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
}

static AS_MUSTCHECK int corrupt(as_error *err) {
  return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "invalid BSON in the current document");
}

static AS_MUSTCHECK int keep(as_buf *out, const as_bsonr_el *e, as_error *err) {
  return rw_bytes(out, e->type, e->key, e->keylen, e->val, e->vlen) ? oom(err) : AS_OK;
}

/* Same type and bytes, or two NaN doubles. */
static bool same_value(const as_bsonr_el *a, const as_bsonr_el *b) {
  if (a->type != b->type || a->vlen != b->vlen) return false;
  if (memcmp(a->val, b->val, a->vlen) == 0) return true;
  return a->type == BSON_TYPE_DOUBLE && isnan(as_bsonr_double(a)) && isnan(as_bsonr_double(b));
}

/* Finds key in r, trying the element at *hint first; *hint moves past a found element.
 * 1 found, 0 absent, AS_EDATA corrupt. */
static AS_MUSTCHECK int find_hint(const as_bsonr *r, as_bsonr *hint, const char *key, size_t kl, as_bsonr_el *e) {
  as_bsonr h = *hint;
  if (as_bsonr_next(&h, e) == 1 && e->keylen == kl && memcmp(e->key, key, kl) == 0) {
    *hint = h;
    return 1;
  }
  int rc = as_bsonr_find(r, key, kl, e);
  if (rc == 1) {
    *hint = *r;
    hint->off = (uint32_t)(e->val - r->data) + e->vlen;
  }
  return rc;
}

/* Number of elements (AS_EDATA if corrupt). */
static int64_t count_elems(const as_bsonr *r) {
  as_bsonr it = *r;
  as_bsonr_el e;
  int64_t n = 0;
  int more;
  while ((more = as_bsonr_next(&it, &e)) == 1) n++;
  return more == 0 ? n : AS_EDATA;
}

/* ================================================================ structural merge */

static AS_MUSTCHECK int deep_merge(const as_bsonr_el *c, const as_bsonr_el *x, as_buf *out, bool *changed, int depth,
                                   as_error *err);

/* The members of document c changed to those of document x. */
static AS_MUSTCHECK int merge_docs(const as_bsonr *c, const as_bsonr *x, as_buf *out, bool *changed, int depth,
                                   as_error *err) {
  as_bsonr it = *c, hint = *x;
  as_bsonr_el ce, xe;
  int more, f, rc;
  while ((more = as_bsonr_next(&it, &ce)) == 1) {
    if ((f = find_hint(x, &hint, ce.key, ce.keylen, &xe)) < 0) return corrupt(err);
    if (!f) {
      *changed = true; /* removed */
      continue;
    }
    if ((rc = deep_merge(&ce, &xe, out, changed, depth + 1, err)) != AS_OK) return rc;
  }
  if (more != 0) return corrupt(err);
  it = *x;
  hint = *c;
  while ((more = as_bsonr_next(&it, &xe)) == 1) {
    if ((f = find_hint(c, &hint, xe.key, xe.keylen, &ce)) < 0) return corrupt(err);
    if (f) continue;
    *changed = true; /* added */
    if ((rc = keep(out, &xe, err)) != AS_OK) return rc;
  }
  return more == 0 ? AS_OK : corrupt(err);
}

/* Arrays of the same length, element by element (c's keys). */
static AS_MUSTCHECK int merge_arrays(const as_bsonr *c, const as_bsonr *x, as_buf *out, bool *changed, int depth,
                                     as_error *err) {
  as_bsonr ci = *c, xi = *x;
  as_bsonr_el ce, xe;
  int more, rc;
  while ((more = as_bsonr_next(&ci, &ce)) == 1) {
    if (as_bsonr_next(&xi, &xe) != 1) return corrupt(err);
    if ((rc = deep_merge(&ce, &xe, out, changed, depth + 1, err)) != AS_OK) return rc;
  }
  return more == 0 ? AS_OK : corrupt(err);
}

/* An int32, int64 or double as an integer (*is_int) or a double. */
static bool num_read(const as_bsonr_el *e, bool *is_int, int64_t *i, double *d) {
  *is_int = e->type != BSON_TYPE_DOUBLE;
  if (e->type == BSON_TYPE_INT32) *i = as_bsonr_i32(e);
  else if (e->type == BSON_TYPE_INT64) *i = as_bsonr_i64(e);
  else if (e->type == BSON_TYPE_DOUBLE) *d = as_bsonr_double(e);
  else return false;
  return true;
}

/* The same number in another BSON type (int32 2, int64 2, double 2.0; -0.0 and 0): a json
 * value that went through SQL (jsonb, a bigint element column) cannot say which it was. */
static bool same_number(const as_bsonr_el *a, const as_bsonr_el *b) {
  bool ai, bi;
  int64_t ia = 0, ib = 0;
  double da = 0, db = 0;
  if (!num_read(a, &ai, &ia, &da) || !num_read(b, &bi, &ib, &db)) return false;
  if (ai && bi) return ia == ib;
  if (ai || bi) {
    int64_t iv = ai ? ia : ib;
    double dv = ai ? db : da;
    return dv >= -9223372036854775808.0 && dv < 9223372036854775808.0 && (int64_t)dv == iv &&
           dv == (double)iv;
  }
  return da == db || (isnan(da) && isnan(db));
}

/* Equal as values: the same bytes, the same number, or documents with the same members (in
 * any order) and arrays with the same elements, each equal so. */
static bool loose_equal(const as_bsonr_el *a, const as_bsonr_el *b, int depth) {
  if (same_value(a, b) || same_number(a, b)) return true;
  if (a->type != b->type || depth >= AS_JSON_MAX_DEPTH) return false;
  if (a->type != BSON_TYPE_DOCUMENT && a->type != BSON_TYPE_ARRAY) return false;
  as_bsonr ar, br, it, hint;
  as_bsonr_el ae, be;
  if (as_bsonr_child(a, &ar) != AS_OK || as_bsonr_child(b, &br) != AS_OK) return false;
  int64_t na = count_elems(&ar), nb = count_elems(&br);
  if (na < 0 || na != nb) return false;
  it = ar;
  hint = br;
  while (as_bsonr_next(&it, &ae) == 1) {
    if (find_hint(&br, &hint, ae.key, ae.keylen, &be) != 1 || !loose_equal(&ae, &be, depth + 1))
      return false;
  }
  return true;
}

/* Arrays of different lengths: element i of x written as an element of c equal to it where
 * there is one (its bytes), else merged with c's element i when both are documents, else as
 * x has it. */
static AS_MUSTCHECK int merge_resized(const as_bsonr *c, const as_bsonr *x, int64_t nc, as_buf *out,
                                      bool *changed, int depth, as_error *err) {
  uint8_t used_stack[64], *used = nc <= 64 ? used_stack : calloc((size_t)nc, 1);
  if (!used) return oom(err);
  memset(used, 0, nc <= 64 ? sizeof used_stack : (size_t)nc);
  as_bsonr xi = *x;
  as_bsonr_el xe, ce;
  int more, rc = AS_OK;
  *changed = true;
  for (uint32_t i = 0; rc == AS_OK && (more = as_bsonr_next(&xi, &xe)) == 1; i++) {
    char key[16];
    const char *kp;
    size_t kl = bson_uint32_to_string(i, &kp, key, sizeof key);
    as_bsonr ci = *c;
    bool done = false;
    for (int64_t j = 0; !done && as_bsonr_next(&ci, &ce) == 1; j++) {
      if (used[j] || !loose_equal(&ce, &xe, depth + 1)) continue;
      used[j] = 1;
      done = true;
      if (rw_bytes(out, ce.type, kp, kl, ce.val, ce.vlen)) rc = oom(err);
    }
    if (done) continue;
    ci = *c;
    bool at = false;
    for (uint32_t j = 0; !at && as_bsonr_next(&ci, &ce) == 1; j++) at = j == i;
    if (at && !used[i] && ce.type == BSON_TYPE_DOCUMENT && xe.type == BSON_TYPE_DOCUMENT) {
      used[i] = 1;
      ce.key = kp;
      ce.keylen = (uint32_t)kl;
      bool ch = false;
      rc = deep_merge(&ce, &xe, out, &ch, depth + 1, err);
    } else if (rw_bytes(out, xe.type, kp, kl, xe.val, xe.vlen)) {
      rc = oom(err);
    }
  }
  if (rc == AS_OK && more != 0) rc = corrupt(err);
  if (used != used_stack) free(used);
  return rc;
}

/* Writes the current element c changed to the new value x (under c's key). */
static AS_MUSTCHECK int deep_merge(const as_bsonr_el *c, const as_bsonr_el *x, as_buf *out, bool *changed, int depth,
                                   as_error *err) {
  if (same_value(c, x) || same_number(c, x)) return keep(out, c, err);
  bool docs = c->type == BSON_TYPE_DOCUMENT && x->type == BSON_TYPE_DOCUMENT;
  bool arrs = c->type == BSON_TYPE_ARRAY && x->type == BSON_TYPE_ARRAY;
  as_bsonr cr, xr;
  if ((docs || arrs) && depth < AS_JSON_MAX_DEPTH) {
    if (as_bsonr_child(c, &cr) != AS_OK || as_bsonr_child(x, &xr) != AS_OK) return corrupt(err);
    int64_t nc = arrs ? count_elems(&cr) : 0, nx = arrs ? count_elems(&xr) : 0;
    if (nc < 0 || nx < 0) return corrupt(err);
    size_t at;
    if (rw_begin(out, c->type, c->key, c->keylen, &at)) return oom(err);
    int rc = docs       ? merge_docs(&cr, &xr, out, changed, depth, err)
             : nc == nx ? merge_arrays(&cr, &xr, out, changed, depth, err)
                        : merge_resized(&cr, &xr, nc, out, changed, depth, err);
    if (rc == AS_OK && rw_end(out, at)) rc = oom(err);
    return rc;
  }
  *changed = true;
  return rw_bytes(out, x->type, c->key, c->keylen, x->val, x->vlen) ? oom(err) : AS_OK;
}

/* ================================================================ typed values */

/* The integer and double readings of a numeric value (has_i/has_d: whether it has one). */
static void numbers(const as_value *v, bool *has_i, int64_t *i, bool *has_d, double *d) {
  *has_i = *has_d = false;
  if (v->type == AS_T_INT64) {
    *has_i = *has_d = true;
    *i = v->u.i;
    *d = (double)v->u.i;
  } else if (v->type == AS_T_DOUBLE) {
    *has_d = true;
    *d = v->u.d;
    if (isfinite(v->u.d) && v->u.d == floor(v->u.d) && v->u.d >= -9223372036854775808.0 &&
        v->u.d < 9223372036854775808.0) {
      *has_i = true;
      *i = (int64_t)v->u.d;
    }
  } else if (v->type == AS_T_DECIMAL && v->u.s.ptr) {
    as_buf nb = AS_BUF_INIT;
    if (as_decimal_normalize(v->u.s.ptr, v->u.s.len, &nb) == AS_OK && as_buf_cstr(&nb)) {
      const char *ns = (const char *)nb.data;
      if (!strpbrk(ns, ".NI")) *has_i = as_jsonr_parse_i64(ns, nb.len, i);
      char *end = NULL;
      *d = strtod(ns, &end);
      *has_d = end && *end == '\0';
    }
    as_buf_free(&nb);
  }
}

static AS_MUSTCHECK int put_dec128(as_buf *b, const char *key, size_t kl, const char *txt, size_t n) {
  bson_decimal128_t dec;
  if (!as_dec128_from_str(txt, n, &dec)) return 0;
  uint8_t raw[16];
  put_le64(raw, dec.low);
  put_le64(raw + 8, dec.high);
  return rw_bytes(b, BSON_TYPE_DECIMAL128, key, kl, raw, 16) ? -1 : 1;
}

/* Writes v in the BSON type of the current element e when there is such a form: 1 written,
 * 0 none, -1 out of memory. The caller checks that it reads back equal. */
static int encode_like(as_buf *b, const as_bsonr_el *e, const as_value *v) {
  const char *key = e->key;
  size_t kl = e->keylen;
  bool has_i, has_d;
  int64_t i = 0;
  double d = 0;
  numbers(v, &has_i, &i, &has_d, &d);
  switch (e->type) {
    case BSON_TYPE_INT32:
      if (has_i && i >= INT32_MIN && i <= INT32_MAX) return rw_i32(b, key, kl, (int32_t)i) ? -1 : 1;
      return 0;
    case BSON_TYPE_INT64: return has_i ? (rw_64(b, BSON_TYPE_INT64, key, kl, (uint64_t)i) ? -1 : 1) : 0;
    case BSON_TYPE_DOUBLE: return has_d ? (rw_double(b, key, kl, d) ? -1 : 1) : 0;
    case BSON_TYPE_DECIMAL128: {
      char t[40];
      if (v->type == AS_T_INT64) return put_dec128(b, key, kl, t, (size_t)snprintf(t, sizeof t, "%" PRId64, v->u.i));
      if (v->type == AS_T_DOUBLE) return put_dec128(b, key, kl, t, as_double_format(v->u.d, t));
      return 0;
    }
    case BSON_TYPE_SYMBOL:
      if (v->type != AS_T_TEXT) return 0;
      return rw_str(b, BSON_TYPE_SYMBOL, key, kl, v->u.s.ptr ? v->u.s.ptr : "", v->u.s.ptr ? v->u.s.len : 0) ? -1 : 1;
    case BSON_TYPE_UTF8: {
      if (v->type != AS_T_UUID) return 0;
      char *txt = NULL;
      if (as_value_to_text(v, &txt, NULL) != AS_OK) return 0;
      int w = rw_str(b, BSON_TYPE_UTF8, key, kl, txt, strlen(txt)) ? -1 : 1;
      free(txt);
      return w;
    }
    case BSON_TYPE_BINARY: {
      uint8_t st;
      uint32_t n;
      (void)as_bsonr_binary(e, &st, &n);
      if (v->type == AS_T_BYTES && (st == BSON_SUBTYPE_BINARY_DEPRECATED || st == BSON_SUBTYPE_USER))
        return rw_binary(b, key, kl, st, v->u.s.ptr, v->u.s.ptr ? v->u.s.len : 0) ? -1 : 1;
      if (v->type == AS_T_UUID && st == BSON_SUBTYPE_UUID_DEPRECATED)
        return rw_binary(b, key, kl, st, v->u.uuid, 16) ? -1 : 1;
      return 0;
    }
    case BSON_TYPE_TIMESTAMP: {
      if (v->type != AS_T_TIMESTAMP || v->u.ts_us < 0 || v->u.ts_us % 1000000 != 0 ||
          v->u.ts_us / 1000000 > (int64_t)UINT32_MAX)
        return 0;
      uint32_t t, inc;
      as_bsonr_timestamp(e, &t, &inc);
      uint64_t raw = (uint64_t)(v->u.ts_us / 1000000) << 32 | inc;
      return rw_64(b, BSON_TYPE_TIMESTAMP, key, kl, raw) ? -1 : 1;
    }
    default: return 0;
  }
}

/* The element written at out[mark..len). */
static void written(const as_buf *out, size_t mark, size_t kl, as_bsonr_el *w) {
  w->type = out->data[mark];
  w->key = (const char *)out->data + mark + 1;
  w->keylen = (uint32_t)kl;
  w->val = out->data + mark + 2 + kl;
  w->vlen = (uint32_t)(out->len - (mark + 2 + kl));
}

/* A changed value of column c where the current element is e (NULL: a new field). */
static AS_MUSTCHECK int write_value(const as_schema *s, const as_column *c, const as_bsonr_el *e, const char *key,
                                    size_t kl, const as_value *v, as_buf *out, as_error *err) {
  size_t mark = out->len;
  int r = e ? encode_like(out, e, v) : 0;
  if (r < 0) return oom(err);
  if (r == 1) {
    as_bsonr_el w;
    as_value back = AS_VALUE_NULL;
    char why[WHY_MAX];
    written(out, mark, kl, &w);
    bool same = as_bson_convert(c, &w, &back, why) == AS_OK && as_value_equal(&back, v);
    as_value_clear(&back);
    if (same) return AS_OK;
    out->len = mark;
  }
  int rc = as_bsonw_value_inline(out, key, kl, v, err);
  if (rc != AS_OK) as_error_prefix(err, "mapping %s, column \"%s\"", s->name, c->name);
  return rc;
}

/* A json value as the single element of a small document in raw, read as x. */
static AS_MUSTCHECK int json_element(const as_value *v, as_buf *raw, as_bsonr_el *x, as_error *err) {
  as_jsonr j;
  as_bsonr r;
  int rc = room(raw, 4) ? AS_ERR : AS_OK;
  as_jsonr_init(&j, v->u.s.ptr ? v->u.s.ptr : "", v->u.s.ptr ? v->u.s.len : 0);
  if (rc == AS_OK) {
    raw->len = 4;
    rc = as_jsonr_value(&j, raw, "v", 1, 0);
  }
  if (rc == AS_OK) rc = as_jsonr_end(&j);
  if (rc != AS_OK && rc != AS_ERR) {
    as_jsonr_error(&j, rc, err);
    if (err) err->code = AS_EDATA;
    rc = AS_EDATA;
  } else if (rc == AS_ERR) {
    rc = oom(err);
  }
  as_jsonr_free(&j);
  if (rc == AS_OK && rw_end(raw, 0)) rc = oom(err);
  if (rc == AS_OK && (as_bsonr_init(&r, raw->data, raw->len) != AS_OK || as_bsonr_next(&r, x) != 1))
    rc = corrupt(err);
  return rc;
}

/* ================================================================ child table arrays */

/* Whether elements of child ch (or of its nested children) have fields SQL does not hold: an
 * element without a catch-all. */
static bool loses_fields(const as_child *ch) {
  if (ch->catch_all_idx < 0) return true;
  for (size_t g = 0; ch->tab && g < ch->tab->nchildren; g++)
    if (loses_fields(&ch->tab->children[g])) return true;
  return false;
}

/* The nested child of ch whose array is the element's field key, or NULL. */
static const as_child *nested_of(const as_child *ch, const char *key, size_t kl) {
  for (size_t g = 0; ch->tab && g < ch->tab->nchildren; g++) {
    const as_child *gc = &ch->tab->children[g];
    if (strncmp(gc->field, key, kl) == 0 && gc->field[kl] == '\0') return gc;
  }
  return NULL;
}

/* Whether an element field (its first path part) is held by an element column or a nested
 * child table. */
static bool element_claims(const as_child *ch, const char *key, size_t kl) {
  for (size_t c = 0; c < ch->ncols; c++) {
    const as_column *col = &ch->cols[c];
    if (col->catch_all || !col->npath) continue;
    if (strncmp(col->path[0], key, kl) == 0 && col->path[0][kl] == '\0') return true;
  }
  for (size_t g = 0; ch->tab && g < ch->tab->nchildren; g++) {
    const char *f = ch->tab->children[g].field, *dot = strchr(f, '.');
    size_t fl = dot ? (size_t)(dot - f) : strlen(f);
    if (fl == kl && strncmp(f, key, kl) == 0) return true;
  }
  return false;
}

/* The value at the element column's path in document d (1 found, 0 not). */
static int path_value(const as_bsonr *d, const as_column *col, as_bsonr_el *out) {
  as_bsonr level = *d;
  for (size_t i = 0; i < col->npath; i++) {
    if (as_bsonr_find(&level, col->path[i], strlen(col->path[i]), out) != 1) return 0;
    if (i + 1 < col->npath && (out->type != BSON_TYPE_DOCUMENT || as_bsonr_child(out, &level) != AS_OK)) return 0;
  }
  return 1;
}

/* Whether element documents a and b agree on every element column (absent on both counts). */
static bool same_mapped(const as_child *ch, const as_bsonr *a, const as_bsonr *b) {
  for (size_t c = 0; c < ch->ncols; c++) {
    const as_column *col = &ch->cols[c];
    if (col->catch_all || !col->npath) continue;
    as_bsonr_el x, y;
    int fa = path_value(a, col, &x), fb = path_value(b, col, &y);
    if (fa != fb || (fa && !same_value(&x, &y) && !same_number(&x, &y))) return false;
  }
  return true;
}

/* The current element the new element xd (index i) stands for: by the element key when the
 * child has one; by position else, preferring an unused current element with the same mapped
 * values (an element removed before it moves the others). -1: none. */
static int64_t match_element(const as_child *ch, const as_bsonr *cur, const uint8_t *used, int64_t nc,
                             const as_bsonr *xd, int64_t i, as_bsonr *found) {
  as_bsonr it = *cur, cd;
  as_bsonr_el ce, xk, ck;
  if (ch->key >= 0 && path_value(xd, &ch->cols[ch->key], &xk) != 1) return -1;
  int64_t same_index = -1;
  for (int64_t j = 0; j < nc && as_bsonr_next(&it, &ce) == 1; j++) {
    if (used[j] || ce.type != BSON_TYPE_DOCUMENT || as_bsonr_child(&ce, &cd) != AS_OK) continue;
    if (ch->key >= 0 ? path_value(&cd, &ch->cols[ch->key], &ck) == 1 && (same_value(&xk, &ck) || same_number(&xk, &ck))
                     : same_mapped(ch, &cd, xd)) {
      *found = cd;
      return j;
    }
    if (ch->key < 0 && j == i) {
      same_index = j;
      *found = cd;
    }
  }
  return same_index;
}

static AS_MUSTCHECK int enrich_array(const as_child *ch, const as_bsonr_el *cur, const as_bsonr_el *x,
                                     const char *key, size_t kl, as_buf *out, as_error *err);

/* New element document xd written under key (as written at out), with the fields of its current
 * element cd that SQL does not hold (no element column claims them; the element has no
 * catch-all) appended, and its nested arrays likewise. */
static AS_MUSTCHECK int enrich_element(const as_child *ch, const as_bsonr *cd, const as_bsonr *xd,
                                       const char *key, size_t kl, as_buf *out, as_error *err) {
  size_t at = 0;
  if (rw_begin(out, BSON_TYPE_DOCUMENT, key, kl, &at)) return oom(err);
  as_bsonr it = *xd;
  as_bsonr_el xe, ce;
  int more, rc = AS_OK;
  while (rc == AS_OK && (more = as_bsonr_next(&it, &xe)) == 1) {
    const as_child *gc = xe.type == BSON_TYPE_ARRAY ? nested_of(ch, xe.key, xe.keylen) : NULL;
    if (gc && loses_fields(gc) && as_bsonr_find(cd, xe.key, xe.keylen, &ce) == 1 && ce.type == BSON_TYPE_ARRAY)
      rc = enrich_array(gc, &ce, &xe, xe.key, xe.keylen, out, err);
    else
      rc = keep(out, &xe, err);
  }
  if (rc == AS_OK && more != 0) rc = corrupt(err);
  it = *cd;
  while (rc == AS_OK && ch->catch_all_idx < 0 && (more = as_bsonr_next(&it, &ce)) == 1) {
    if (element_claims(ch, ce.key, ce.keylen) || as_bsonr_find(xd, ce.key, ce.keylen, &xe) == 1) continue;
    rc = keep(out, &ce, err);
  }
  if (rc == AS_OK && rw_end(out, at)) rc = oom(err);
  return rc;
}

/* The new array x of child ch written under key, each element with what SQL does not hold
 * from the current element it stands for (cur: the current array). */
static AS_MUSTCHECK int enrich_array(const as_child *ch, const as_bsonr_el *cur, const as_bsonr_el *x,
                                     const char *key, size_t kl, as_buf *out, as_error *err) {
  as_bsonr cr, xr, it, cd, xd;
  if (as_bsonr_child(cur, &cr) != AS_OK || as_bsonr_child(x, &xr) != AS_OK) return corrupt(err);
  int64_t nc = count_elems(&cr);
  if (nc < 0) return corrupt(err);
  uint8_t used_stack[64], *used = nc <= 64 ? used_stack : calloc((size_t)nc, 1);
  if (!used) return oom(err);
  memset(used, 0, nc <= 64 ? sizeof used_stack : (size_t)nc);
  size_t at = 0;
  int rc = rw_begin(out, BSON_TYPE_ARRAY, key, kl, &at) ? oom(err) : AS_OK;
  as_bsonr_el xe;
  it = xr;
  int more = 0;
  for (int64_t i = 0; rc == AS_OK && (more = as_bsonr_next(&it, &xe)) == 1; i++) {
    int64_t j = -1;
    if (xe.type == BSON_TYPE_DOCUMENT && as_bsonr_child(&xe, &xd) == AS_OK)
      j = match_element(ch, &cr, used, nc, &xd, i, &cd);
    if (j < 0) {
      rc = keep(out, &xe, err);
      continue;
    }
    used[j] = 1;
    rc = enrich_element(ch, &cd, &xd, xe.key, xe.keylen, out, err);
  }
  if (rc == AS_OK && more != 0) rc = corrupt(err);
  if (rc == AS_OK && rw_end(out, at)) rc = oom(err);
  if (used != used_stack) free(used);
  return rc;
}

/* x (the new value of child table array column ch) with what SQL does not hold of the current
 * array e, as the single element of a small document in raw, read as *out. */
static AS_MUSTCHECK int enrich_value(const as_child *ch, const as_bsonr_el *e, const as_bsonr_el *x, as_buf *raw,
                                     as_bsonr_el *out, as_error *err) {
  as_bsonr r;
  if (room(raw, 4)) return oom(err);
  raw->len = 4;
  int rc = enrich_array(ch, e, x, "v", 1, raw, err);
  if (rc == AS_OK && rw_end(raw, 0)) rc = oom(err);
  if (rc == AS_OK && (as_bsonr_init(&r, raw->data, raw->len) != AS_OK || as_bsonr_next(&r, out) != 1))
    rc = corrupt(err);
  return rc;
}

/* ================================================================ document merge */

typedef struct mctx {
  const as_schema *s;
  const as_row *row;     /* the values to write (set: present) */
  const as_row *cur_row; /* the current document through the mapping, NULL if it cannot be read */
  bool exists;           /* there is a current document: its key fields stay */
  bool catch_changed;    /* the catch-all is set and differs: unmapped fields follow it */
  bool changed;
  as_error *err;
} mctx;

/* Is key, at this level, claimed by one of the columns cols (or a child table's field)? */
static bool claimed(const mctx *m, size_t depth, const int *cols, size_t n, const char *key, size_t kl) {
  for (size_t i = 0; i < n; i++) {
    const char *p = m->s->cols[cols[i]].path[depth];
    if (strncmp(p, key, kl) == 0 && p[kl] == '\0') return true;
  }
  return depth == 0 && as_bson_child_head(m->s, 0, key);
}

/* The catch-all's sub-document for key at this level, if any. */
static bool extra_sub(const as_bsonr *extra, const char *key, size_t kl, as_bsonr *sub) {
  as_bsonr_el e;
  return extra && as_bsonr_find(extra, key, kl, &e) == 1 && e.type == BSON_TYPE_DOCUMENT &&
         as_bsonr_child(&e, sub) == AS_OK;
}

static AS_MUSTCHECK int merge_level(mctx *m, size_t depth, const int *cols, size_t n, const as_bsonr *cur,
                                    const as_bsonr *extra, as_buf *out);

/* The current element e of column ci (a leaf at this level). */
static AS_MUSTCHECK int merge_leaf(mctx *m, int ci, const as_bsonr_el *e, as_buf *out) {
  const as_column *c = &m->s->cols[ci];
  if ((m->exists && c->is_key) || !m->row->set[ci]) return keep(out, e, m->err);
  const as_value *v = &m->row->v[ci];
  if (v->type == AS_T_NULL) {
    /* (in a json column a null field is JSON null, not NULL: removed too) */
    if (e->type == BSON_TYPE_NULL && !as_column_json_null(c)) return keep(out, e, m->err);
    m->changed = true; /* removed */
    return AS_OK;
  }
  bool eq;
  if (m->cur_row) {
    eq = as_value_equal(&m->cur_row->v[ci], v);
  } else {
    as_value cv = AS_VALUE_NULL;
    char why[WHY_MAX];
    eq = as_bson_convert(c, e, &cv, why) == AS_OK && as_value_equal(&cv, v);
    as_value_clear(&cv);
  }
  if (eq) return keep(out, e, m->err);
  if (v->type == AS_T_JSON && (e->type == BSON_TYPE_DOCUMENT || e->type == BSON_TYPE_ARRAY)) {
    as_buf raw = AS_BUF_INIT;
    as_bsonr_el x;
    bool ch = false;
    as_buf raw2 = AS_BUF_INIT;
    int rc = json_element(v, &raw, &x, m->err);
    /* a child table's array: SQL holds no fields of an element that no column maps (no
     * element catch-all), so the current element's stay */
    if (rc == AS_OK && c->child > 0 && e->type == BSON_TYPE_ARRAY && x.type == BSON_TYPE_ARRAY &&
        loses_fields(&m->s->children[c->child - 1]))
      rc = enrich_value(&m->s->children[c->child - 1], e, &x, &raw2, &x, m->err);
    if (rc == AS_OK) rc = deep_merge(e, &x, out, &ch, 0, m->err);
    else if (rc == AS_EDATA) as_error_prefix(m->err, "mapping %s, column \"%s\"", m->s->name, c->name);
    as_buf_free(&raw);
    as_buf_free(&raw2);
    m->changed = m->changed || ch;
    return rc;
  }
  m->changed = true;
  return write_value(m->s, c, e, e->key, e->keylen, v, out, m->err);
}

/* The current element e leads to the columns group[0..ng) below it. */
static AS_MUSTCHECK int merge_parent(mctx *m, size_t depth, const int *group, size_t ng, const as_bsonr_el *e,
                                     const as_bsonr *extra, as_buf *out) {
  as_bsonr sub, child;
  bool have_sub = m->catch_changed && extra_sub(extra, e->key, e->keylen, &sub);
  size_t mark = out->len, at;
  if (e->type == BSON_TYPE_DOCUMENT && as_bsonr_child(e, &child) != AS_OK) return corrupt(m->err);
  if (rw_begin(out, BSON_TYPE_DOCUMENT, e->key, e->keylen, &at)) return oom(m->err);
  bool doc = e->type == BSON_TYPE_DOCUMENT;
  bool was = m->changed;
  int rc = merge_level(m, depth + 1, group, ng, doc ? &child : NULL, have_sub ? &sub : NULL, out);
  if (rc != AS_OK) return rc;
  if (!doc && out->len == at + 4) { /* nothing below: the field stays as it is */
    out->len = mark;
    m->changed = was;
    return keep(out, e, m->err);
  }
  if (!doc) m->changed = true;
  return rw_end(out, at) ? oom(m->err) : AS_OK;
}

/* Columns of cols not present in the current level: leaves with a value, and documents for
 * groups below them that get something. */
static AS_MUSTCHECK int append_columns(mctx *m, size_t depth, const int *cols, size_t n, uint8_t *used,
                                       const as_bsonr *extra, as_buf *out) {
  int stack[32], *group = n <= 32 ? stack : malloc(n * sizeof *group);
  int rc = AS_OK;
  if (!group) return oom(m->err);
  for (size_t i = 0; i < n && rc == AS_OK; i++) {
    if (used[i]) continue;
    used[i] = 1;
    const as_column *c = &m->s->cols[cols[i]];
    const char *head = c->path[depth];
    size_t hl = strlen(head);
    if (c->npath == depth + 1) {
      const as_value *v = &m->row->v[cols[i]];
      if (!m->row->set[cols[i]] || v->type == AS_T_NULL) continue;
      m->changed = true;
      rc = write_value(m->s, c, NULL, head, hl, v, out, m->err);
      continue;
    }
    size_t ng = 0;
    group[ng++] = cols[i];
    for (size_t k = i + 1; k < n; k++) {
      const as_column *o = &m->s->cols[cols[k]];
      if (!used[k] && o->npath > depth + 1 && strcmp(o->path[depth], head) == 0) {
        group[ng++] = cols[k];
        used[k] = 1;
      }
    }
    as_bsonr sub;
    bool have_sub = m->catch_changed && extra_sub(extra, head, hl, &sub);
    size_t mark = out->len, at;
    if (rw_begin(out, BSON_TYPE_DOCUMENT, head, hl, &at)) {
      rc = oom(m->err);
      break;
    }
    rc = merge_level(m, depth + 1, group, ng, NULL, have_sub ? &sub : NULL, out);
    if (rc == AS_OK && out->len == at + 4) out->len = mark; /* nothing in it: no field */
    else if (rc == AS_OK && rw_end(out, at)) rc = oom(m->err);
  }
  if (group != stack) free(group);
  return rc;
}

/* New catch-all fields of this level (not in cur, not claimed). */
static AS_MUSTCHECK int append_extra(mctx *m, size_t depth, const int *cols, size_t n, const as_bsonr *cur,
                                     const as_bsonr *extra, as_buf *out) {
  as_bsonr it = *extra, hint = cur ? *cur : (as_bsonr){0};
  as_bsonr_el x, ce;
  int more;
  while ((more = as_bsonr_next(&it, &x)) == 1) {
    int f = cur ? find_hint(cur, &hint, x.key, x.keylen, &ce) : 0;
    if (f < 0) return corrupt(m->err);
    if (f || claimed(m, depth, cols, n, x.key, x.keylen)) continue;
    m->changed = true;
    int rc = keep(out, &x, m->err);
    if (rc != AS_OK) return rc;
  }
  return more == 0 ? AS_OK : corrupt(m->err);
}

/* One level: cur's fields in their order (kept, changed or removed), then what is new. cols:
 * the columns whose path continues below the fields matched so far (path[0..depth) equal);
 * extra: the catch-all's document for this level (used when catch_changed). */
static AS_MUSTCHECK int merge_level(mctx *m, size_t depth, const int *cols, size_t n, const as_bsonr *cur,
                                    const as_bsonr *extra, as_buf *out) {
  uint8_t used_stack[64], *used = n <= 64 ? used_stack : calloc(n, 1);
  int stack[32], *group = n <= 32 ? stack : malloc(n * sizeof *group);
  int rc = AS_OK, more = 0;
  if (!used || !group) {
    rc = oom(m->err);
    goto cleanup;
  }
  memset(used, 0, n);
  as_bsonr it = cur ? *cur : (as_bsonr){0}, hint = extra ? *extra : (as_bsonr){0};
  as_bsonr_el e, x;
  while (cur && rc == AS_OK && (more = as_bsonr_next(&it, &e)) == 1) {
    int leaf = -1;
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
      const as_column *c = &m->s->cols[cols[i]];
      const char *p = c->path[depth];
      if (p[0] != e.key[0] || strncmp(p, e.key, e.keylen) != 0 || p[e.keylen] != '\0') continue;
      used[i] = 1;
      if (c->npath == depth + 1) leaf = cols[i];
      else group[ng++] = cols[i];
    }
    if (leaf >= 0) {
      rc = merge_leaf(m, leaf, &e, out);
    } else if (ng) {
      rc = merge_parent(m, depth, group, ng, &e, extra, out);
    } else if (!m->catch_changed || (depth == 0 && as_bson_child_head(m->s, 0, e.key))) {
      rc = keep(out, &e, m->err);
    } else {
      int f = extra ? find_hint(extra, &hint, e.key, e.keylen, &x) : 0;
      bool ch = false;
      if (f < 0) rc = corrupt(m->err);
      else if (f) rc = deep_merge(&e, &x, out, &ch, (int)depth, m->err);
      else ch = true; /* an unmapped field the catch-all no longer has */
      m->changed = m->changed || ch;
    }
  }
  if (rc == AS_OK && more != 0) rc = corrupt(m->err);
  if (rc == AS_OK) rc = append_columns(m, depth, cols, n, used, extra, out);
  if (rc == AS_OK && m->catch_changed && extra) rc = append_extra(m, depth, cols, n, cur, extra, out);
cleanup:
  if (used != used_stack) free(used);
  if (group != stack) free(group);
  return rc;
}

/* The catch-all value as a raw document (AS_EDATA naming the column unless an object). */
static AS_MUSTCHECK int catch_all_raw(const as_schema *s, const as_value *v, as_buf *raw, as_bsonr *r,
                                      as_error *err) {
  const char *col = s->cols[s->catch_all_idx].name;
  if (v->type != AS_T_JSON)
    return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s, column \"%s\": the catch-all must be json, not %s",
                        s->name, col, as_type_name(v->type));
  as_jsonr j;
  bool arr = false;
  as_jsonr_init(&j, v->u.s.ptr ? v->u.s.ptr : "", v->u.s.ptr ? v->u.s.len : 0);
  int rc = as_jsonr_top(&j, raw, &arr);
  if (rc != AS_OK) as_jsonr_error(&j, rc, err);
  as_jsonr_free(&j);
  if (rc == AS_ERR) return oom(err);
  if (rc == AS_OK && arr) rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "an array, not an object");
  if (rc == AS_OK && as_bsonr_init(r, raw->data, raw->len) != AS_OK) rc = corrupt(err);
  if (rc != AS_OK) {
    as_error_prefix(err, "mapping %s, column \"%s\"", s->name, col);
    if (err) err->code = AS_EDATA;
    return AS_EDATA;
  }
  return AS_OK;
}

/* Reads cur through the mapping into cr: true if it could be read (AS_ERR: out of memory). */
static AS_MUSTCHECK int read_current(const as_schema *s, const bson_t *cur, as_row *cr, bool *ok, as_error *err) {
  *ok = false;
  if (as_row_init(cr, s->ncols) != AS_OK) return oom(err);
  int rc = as_doc_to_row(s, cur, cr, NULL);
  if (rc == AS_ERR) return oom(err);
  *ok = rc == AS_OK;
  return AS_OK;
}

int as_doc_merge(const as_schema *s, const bson_t *cur, const as_row *row, bson_t *next, bool *changed,
                 as_error *err) {
  mctx m = {.s = s, .row = row, .exists = cur != NULL, .err = err};
  as_row cr = {0};
  as_buf extra_raw = AS_BUF_INIT, out = AS_BUF_INIT;
  as_bsonr cur_r, extra;
  bool have_extra = false, readable = false;
  int stack[32], *idx = stack;
  size_t n = 0;
  int rc = AS_OK;
  bson_init(next);
  *changed = false;
  if (row->n != s->ncols) return as_error_set(err, AS_DOM_MAPPING, AS_EINVAL, "mapping %s: row of %zu columns", s->name, row->n);
  if (cur && as_bsonr_init_doc(&cur_r, cur) != AS_OK) return corrupt(err);
  if (cur && (rc = read_current(s, cur, &cr, &readable, err)) != AS_OK) goto cleanup;
  if (readable) {
    m.cur_row = &cr;
    bool all_equal = true;
    for (size_t i = 0; i < s->ncols && all_equal; i++)
      all_equal = !row->set[i] || s->cols[i].is_key || as_value_equal(&cr.v[i], &row->v[i]);
    if (all_equal) goto cleanup; /* nothing to write */
  }
  if (s->catch_all_idx >= 0 && row->set[s->catch_all_idx]) {
    const as_value *cv = &row->v[s->catch_all_idx];
    m.catch_changed = !readable || !as_value_equal(&cr.v[s->catch_all_idx], cv);
    if (m.catch_changed && cv->type != AS_T_NULL) {
      if ((rc = catch_all_raw(s, cv, &extra_raw, &extra, err)) != AS_OK) goto cleanup;
      if ((rc = as_catch_all_collision(s, &extra, err)) != AS_OK) goto cleanup;
      have_extra = true;
    }
  }
  if (s->ncols > 32 && !(idx = malloc(s->ncols * sizeof *idx))) {
    rc = oom(err);
    goto cleanup;
  }
  for (size_t i = 0; i < s->ncols; i++)
    if (!s->cols[i].catch_all && s->cols[i].npath) idx[n++] = (int)i;
  if (room(&out, 4)) {
    rc = oom(err);
    goto cleanup;
  }
  out.len = 4;
  rc = merge_level(&m, 0, idx, n, cur ? &cur_r : NULL, have_extra ? &extra : NULL, &out);
  if (rc == AS_OK && rw_end(&out, 0))
    rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s: document too large", s->name);
  if (rc != AS_OK || (cur && !m.changed)) goto cleanup;
  uint8_t *p = bson_reserve_buffer(next, (uint32_t)out.len);
  if (!p) {
    rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s: document too large", s->name);
    goto cleanup;
  }
  memcpy(p, out.data, out.len);
  *changed = true;
cleanup:
  if (rc != AS_OK) bson_reinit(next);
  if (idx != stack) free(idx);
  as_row_clear(&cr);
  as_buf_free(&extra_raw);
  as_buf_free(&out);
  return rc;
}

/* ================================================================ diff -> $set / $unset */

typedef struct dctx {
  as_buf set, unset; /* documents being built (4-byte header first) */
  as_buf path;       /* the dotted path of the current level (len = its length) */
  as_error *err;
} dctx;

static bool path_part_ok(const char *k, size_t kl) { return kl > 0 && k[0] != '$' && !memchr(k, '.', kl); }

/* path[0..plen) + "." + key; returns the new length (0 on out of memory). */
static size_t path_push(dctx *d, size_t plen, const char *key, size_t kl) {
  if (room(&d->path, plen + kl + 2)) return 0;
  size_t at = plen;
  if (plen) d->path.data[at++] = '.';
  memcpy(d->path.data + at, key, kl);
  d->path.data[at + kl] = '\0';
  d->path.len = at + kl;
  return at + kl;
}

static AS_MUSTCHECK int diff_level(dctx *d, const as_bsonr *cr, const as_bsonr *nr, bool arr, size_t plen, int depth);

/* next's element ne replaces cur's ce (f: cur has it) at path[0..pl). */
static AS_MUSTCHECK int diff_element(dctx *d, const as_bsonr_el *ce, bool f, const as_bsonr_el *ne, size_t pl, int depth) {
  bool docs = f && ce->type == BSON_TYPE_DOCUMENT && ne->type == BSON_TYPE_DOCUMENT;
  bool arrs = f && ce->type == BSON_TYPE_ARRAY && ne->type == BSON_TYPE_ARRAY;
  if ((docs || arrs) && depth < AS_JSON_MAX_DEPTH) {
    as_bsonr cs, ns;
    if (as_bsonr_child(ce, &cs) != AS_OK || as_bsonr_child(ne, &ns) != AS_OK) return corrupt(d->err);
    int64_t a = arrs ? count_elems(&cs) : 0, b = arrs ? count_elems(&ns) : 0;
    if (a < 0 || b < 0) return corrupt(d->err);
    if (docs || a == b) {
      size_t sm = d->set.len, um = d->unset.len;
      int rc = diff_level(d, &cs, &ns, arrs, pl, depth + 1);
      if (rc != UNSAFE) return rc;
      d->set.len = sm; /* a part below cannot be named: set this one whole */
      d->unset.len = um;
    }
  }
  return rw_bytes(&d->set, ne->type, (const char *)d->path.data, pl, ne->val, ne->vlen) ? oom(d->err) : AS_OK;
}

static AS_MUSTCHECK int diff_level(dctx *d, const as_bsonr *cr, const as_bsonr *nr, bool arr, size_t plen, int depth) {
  as_bsonr it = *nr, hint = *cr, ci = *cr;
  as_bsonr_el ne, ce;
  int more, f, rc;
  uint32_t pos = 0;
  while ((more = as_bsonr_next(&it, &ne)) == 1) {
    char kb[16];
    const char *key = ne.key;
    size_t kl = ne.keylen;
    if (arr) { /* same length: element by element, named by position */
      f = as_bsonr_next(&ci, &ce);
      kl = as_idx_key(pos++, kb);
      key = kb;
    } else {
      f = find_hint(cr, &hint, ne.key, ne.keylen, &ce);
    }
    if (f < 0) return corrupt(d->err);
    if (f && same_value(&ce, &ne)) continue;
    if (!path_part_ok(key, kl)) return UNSAFE;
    size_t pl = path_push(d, plen, key, kl);
    if (!pl) return oom(d->err);
    if ((rc = diff_element(d, &ce, f == 1, &ne, pl, depth)) != AS_OK) return rc;
  }
  if (more != 0) return corrupt(d->err);
  it = *cr;
  hint = *nr;
  while (!arr && (more = as_bsonr_next(&it, &ce)) == 1) {
    if ((f = find_hint(nr, &hint, ce.key, ce.keylen, &ne)) < 0) return corrupt(d->err);
    if (f) continue;
    if (!path_part_ok(ce.key, ce.keylen)) return UNSAFE;
    size_t pl = path_push(d, plen, ce.key, ce.keylen);
    if (!pl) return oom(d->err);
    if (rw_str(&d->unset, BSON_TYPE_UTF8, (const char *)d->path.data, pl, "", 0)) return oom(d->err);
  }
  return more == 0 ? AS_OK : corrupt(d->err);
}

/* Appends the document buf (header reserved, elements written) as key, if not empty. */
static AS_MUSTCHECK int append_doc(bson_t *out, const char *key, as_buf *b) {
  if (b->len == 4) return AS_OK;
  bson_t view;
  if (rw_end(b, 0) || !bson_init_static(&view, b->data, b->len) || !bson_append_document(out, key, -1, &view))
    return AS_ERR;
  return AS_OK;
}

int as_doc_diff_update(const bson_t *cur, const bson_t *next, bson_t *update, bool *replace, as_error *err) {
  dctx d = {.set = AS_BUF_INIT, .unset = AS_BUF_INIT, .path = AS_BUF_INIT, .err = err};
  as_bsonr cr, nr;
  int rc = AS_OK;
  bson_init(update);
  *replace = false;
  if (as_bsonr_init_doc(&cr, cur) != AS_OK || as_bsonr_init_doc(&nr, next) != AS_OK) return corrupt(err);
  if (room(&d.set, 256) || room(&d.unset, 4) || room(&d.path, 64)) {
    rc = oom(err);
    goto cleanup;
  }
  d.set.len = d.unset.len = 4;
  rc = diff_level(&d, &cr, &nr, false, 0, 0);
  if (rc == UNSAFE) {
    *replace = true;
    rc = AS_OK;
  } else if (rc == AS_OK && (append_doc(update, "$set", &d.set) != AS_OK || append_doc(update, "$unset", &d.unset) != AS_OK)) {
    rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "update too large");
  }
cleanup:
  if (rc != AS_OK) bson_reinit(update);
  as_buf_free(&d.set);
  as_buf_free(&d.unset);
  as_buf_free(&d.path);
  return rc;
}
