/* as_row.c — rows, row deltas, version vectors, and the canonical JSON forms of values and
 * deltas (as_value.h, as_row.h). */
#include "as_row.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "as_buf.h"
#include "as_hash.h"
#include "as_json.h"

/* ---------------------------------------------------------------- rows */

int as_row_init(as_row *r, size_t n) {
  r->n = n;
  r->v = calloc(n ? n : 1, sizeof *r->v);
  r->set = calloc(n ? n : 1, 1);
  if (!r->v || !r->set) {
    free(r->v);
    free(r->set);
    memset(r, 0, sizeof *r);
    return AS_ERR;
  }
  return AS_OK; /* calloc: every value is AS_T_NULL (0) */
}

void as_row_clear(as_row *r) {
  if (!r) return;
  if (r->v)
    for (size_t i = 0; i < r->n; i++) as_value_clear(&r->v[i]);
  free(r->v);
  free(r->set);
  memset(r, 0, sizeof *r);
}

void as_row_reset(as_row *r) {
  for (size_t i = 0; i < r->n; i++) {
    as_value_clear(&r->v[i]);
    r->set[i] = 0;
  }
}

int as_row_copy(as_row *dst, const as_row *src) {
  if (as_row_init(dst, src->n) != AS_OK) return AS_ERR;
  for (size_t i = 0; i < src->n; i++) {
    dst->set[i] = src->set[i];
    if (as_value_copy(&dst->v[i], &src->v[i]) != AS_OK) {
      as_row_clear(dst);
      return AS_ERR;
    }
  }
  return AS_OK;
}

void as_row_put(as_row *r, size_t i, as_value *v) {
  as_value_move(&r->v[i], v);
  r->set[i] = 1;
}

bool as_row_has(const as_row *r, size_t i) { return i < r->n && r->set[i]; }

const char *as_op_name(as_op op) {
  switch (op) {
    case AS_OP_INSERT: return "insert";
    case AS_OP_UPDATE: return "update";
    case AS_OP_DELETE: return "delete";
    case AS_OP_TRUNCATE: return "truncate";
  }
  return "?";
}

bool as_op_parse(const char *s, as_op *out) {
  if (!s) return false;
  if (strcmp(s, "insert") == 0) *out = AS_OP_INSERT;
  else if (strcmp(s, "update") == 0) *out = AS_OP_UPDATE;
  else if (strcmp(s, "delete") == 0) *out = AS_OP_DELETE;
  else if (strcmp(s, "truncate") == 0) *out = AS_OP_TRUNCATE;
  else return false;
  return true;
}

/* ---------------------------------------------------------------- deltas */

int as_delta_init(as_delta *d, const as_schema *s, as_op op) {
  memset(d, 0, sizeof *d);
  d->schema = s;
  d->op = op;
  return as_row_init(&d->row, s ? s->ncols : 0);
}

void as_delta_clear(as_delta *d) {
  if (!d) return;
  as_row_clear(&d->row);
  as_row_clear(&d->image);
  as_row_clear(&d->before);
  free(d->origin);
  for (size_t i = 0; i < d->nvv; i++) free(d->vv[i].node);
  free(d->vv);
  free(d->pos);
  free(d->txn);
  memset(d, 0, sizeof *d);
}

static int dup_str(char **dst, const char *s) {
  char *p = NULL;
  if (s && !(p = strdup(s))) return AS_ERR;
  free(*dst);
  *dst = p;
  return AS_OK;
}

int as_delta_set_origin(as_delta *d, const char *origin) { return dup_str(&d->origin, origin); }
int as_delta_set_pos(as_delta *d, const char *pos) { return dup_str(&d->pos, pos); }
int as_delta_set_txn(as_delta *d, const char *txn) { return dup_str(&d->txn, txn); }

int as_delta_vv_set(as_delta *d, const char *node, uint64_t counter) {
  size_t i = 0;
  while (i < d->nvv && strcmp(d->vv[i].node, node) < 0) i++;
  if (i < d->nvv && strcmp(d->vv[i].node, node) == 0) {
    d->vv[i].counter = counter;
    return AS_OK;
  }
  char *name = strdup(node);
  as_vv_entry *nv = name ? realloc(d->vv, (d->nvv + 1) * sizeof *nv) : NULL;
  if (!nv) {
    free(name);
    return AS_ERR;
  }
  d->vv = nv;
  memmove(&d->vv[i + 1], &d->vv[i], (d->nvv - i) * sizeof *nv);
  d->vv[i].node = name;
  d->vv[i].counter = counter;
  d->nvv++;
  return AS_OK;
}

int as_delta_copy(as_delta *dst, const as_delta *src) {
  memset(dst, 0, sizeof *dst);
  dst->schema = src->schema;
  dst->op = src->op;
  dst->echo = src->echo;
  dst->relayed = src->relayed;
  dst->ts_us = src->ts_us;
  dst->hlc = src->hlc;
  dst->order = src->order;
  if (as_row_copy(&dst->row, &src->row) != AS_OK) goto fail;
  if (src->image.n && as_row_copy(&dst->image, &src->image) != AS_OK) goto fail;
  if (src->before.n && as_row_copy(&dst->before, &src->before) != AS_OK) goto fail;
  if (dup_str(&dst->origin, src->origin) || dup_str(&dst->pos, src->pos) ||
      dup_str(&dst->txn, src->txn))
    goto fail;
  for (size_t i = 0; i < src->nvv; i++)
    if (as_delta_vv_set(dst, src->vv[i].node, src->vv[i].counter) != AS_OK) goto fail;
  return AS_OK;
fail:
  as_delta_clear(dst);
  return AS_ERR;
}

/* ---------------------------------------------------------------- value JSON */

/* Compact JSON text of a jansson value, keys in insertion order, reals in their shortest
 * round-trip form (jansson itself prints %.17g: 0.1 -> 0.10000000000000001). */
static int put_jstr(as_buf *b, const char *s, size_t n) {
  static const char hx[] = "0123456789abcdef";
  if (as_buf_putc(b, '"')) return AS_ERR;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int rc;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      rc = as_buf_append(b, e, 2);
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hx[c >> 4], hx[c & 15]};
      rc = as_buf_append(b, e, 6);
    } else {
      rc = as_buf_putc(b, c);
    }
    if (rc) return AS_ERR;
  }
  return as_buf_putc(b, '"');
}

static int json_serialize(const json_t *j, as_buf *b) {
  switch (json_typeof(j)) {
    case JSON_OBJECT: {
      const char *k;
      size_t kl;
      json_t *v;
      bool first = true;
      if (as_buf_putc(b, '{')) return AS_ERR;
      json_object_keylen_foreach((json_t *)j, k, kl, v) {
        if ((!first && as_buf_putc(b, ',')) || put_jstr(b, k, kl) || as_buf_putc(b, ':') ||
            json_serialize(v, b))
          return AS_ERR;
        first = false;
      }
      return as_buf_putc(b, '}');
    }
    case JSON_ARRAY:
      if (as_buf_putc(b, '[')) return AS_ERR;
      for (size_t i = 0; i < json_array_size(j); i++)
        if ((i && as_buf_putc(b, ',')) || json_serialize(json_array_get(j, i), b)) return AS_ERR;
      return as_buf_putc(b, ']');
    case JSON_STRING: return put_jstr(b, json_string_value(j), json_string_length(j));
    case JSON_INTEGER: return as_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
    case JSON_REAL: {
      char t[40];
      size_t n = as_double_format(json_real_value(j), t);
      if (!memchr(t, '.', n) && !memchr(t, 'e', n)) {
        t[n++] = '.';
        t[n++] = '0';
      }
      return as_buf_append(b, t, n);
    }
    case JSON_TRUE: return as_buf_append_str(b, "true");
    case JSON_FALSE: return as_buf_append_str(b, "false");
    case JSON_NULL: return as_buf_append_str(b, "null");
  }
  return AS_ERR;
}

static int set_json_value(as_value *v, const json_t *j) {
  as_buf b = AS_BUF_INIT;
  int rc = json_serialize(j, &b);
  if (rc == AS_OK) rc = as_value_set_str(v, AS_T_JSON, b.data ? (const char *)b.data : "", b.len);
  as_buf_free(&b);
  return rc;
}

/* 1 if `inner` (parsed from text) serialises back to the same canonical JSON as text, 0 if
 * not, AS_ERR when out of memory (the answer must not change with memory pressure: it decides
 * the value's JSON form). */
static int json_lossless(const char *text, size_t len, const json_t *inner) {
  as_buf a = AS_BUF_INIT, b = AS_BUF_INIT, c = AS_BUF_INIT;
  int rc = json_serialize(inner, &a);
  if (rc == AS_OK) rc = as_json_canonicalize(text, len, &b, NULL);
  if (rc == AS_OK) rc = as_json_canonicalize((const char *)a.data, a.len, &c, NULL);
  int same = rc == AS_ERR ? AS_ERR
                          : rc == AS_OK && b.len == c.len && memcmp(b.data, c.data, b.len) == 0;
  as_buf_free(&a);
  as_buf_free(&b);
  as_buf_free(&c);
  return same;
}

/* {tag: v}; takes v's reference in every case. */
static json_t *tagged(const char *tag, json_t *v) {
  json_t *o = json_object();
  if (!o) {
    json_decref(v);
    return NULL;
  }
  if (!v || json_object_set_new(o, tag, v) != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

json_t *as_value_to_json(const as_value *v, as_error *err) {
  json_t *j = NULL;
  char *text = NULL;
  switch (v->type) {
    case AS_T_NULL: j = json_null(); break;
    case AS_T_BOOL: j = json_boolean(v->u.b); break;
    case AS_T_INT64: j = json_integer((json_int_t)v->u.i); break;
    case AS_T_DOUBLE:
      if (isfinite(v->u.d)) {
        j = json_real(v->u.d);
      } else {
        j = tagged("$double", json_string(isnan(v->u.d) ? "NaN" : v->u.d > 0 ? "Infinity" : "-Infinity"));
      }
      break;
    case AS_T_TEXT: j = json_stringn(v->u.s.ptr, v->u.s.len); break;
    case AS_T_DECIMAL: j = tagged("$decimal", json_stringn(v->u.s.ptr, v->u.s.len)); break;
    case AS_T_BYTES: {
      as_buf b = AS_BUF_INIT;
      if (as_base64_encode((const uint8_t *)v->u.s.ptr, v->u.s.len, &b) == AS_OK && as_buf_cstr(&b))
        j = tagged("$bytes", json_stringn((const char *)b.data, b.len));
      as_buf_free(&b);
      break;
    }
    case AS_T_UUID:
    case AS_T_OBJECTID:
    case AS_T_TIMESTAMP:
    case AS_T_DATE: {
      int rc = as_value_to_text(v, &text, err);
      if (rc != AS_OK) return NULL;
      const char *tag = v->type == AS_T_UUID ? "$uuid" : v->type == AS_T_OBJECTID ? "$oid"
                        : v->type == AS_T_TIMESTAMP ? "$ts" : "$date";
      j = tagged(tag, json_string(text));
      free(text);
      break;
    }
    case AS_T_JSON: {
      json_error_t je;
      json_t *inner = as_json_loadb(v->u.s.ptr, v->u.s.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
      if (!inner && json_error_code(&je) == json_error_out_of_memory) break; /* j NULL: error */
      int lossless = inner ? json_lossless(v->u.s.ptr, v->u.s.len, inner) : 0;
      if (lossless == 1) {
        j = tagged("$json", inner);
        break;
      }
      json_decref(inner);
      if (lossless == AS_ERR) break; /* j NULL: error */
      /* valid JSON that jansson cannot carry exactly (integers beyond int64, numbers whose
       * text is not the shortest form of a double, like 1.50 or 1e2): kept as text */
      as_buf scratch = AS_BUF_INIT;
      int rc = as_json_canonicalize(v->u.s.ptr, v->u.s.len, &scratch, NULL);
      as_buf_free(&scratch);
      if (rc != AS_OK) {
        as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "json value is not valid JSON: %s", je.text);
        return NULL;
      }
      j = tagged("$jsontext", json_stringn(v->u.s.ptr, v->u.s.len));
      break;
    }
    default:
      as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "bad value type %d", (int)v->type);
      return NULL;
  }
  if (!j) as_error_set(err, AS_DOM_CODEC, AS_ERR, "cannot build JSON value");
  return j;
}

static int bad_json(as_error *err, const char *what, const json_t *j) {
  char *d = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "%s: %.200s", what, d ? d : "?");
  free(d);
  return AS_EINVAL;
}

/* {"$tag": ...} with exactly one key: returns the tag's type or -1. */
static int tag_type(const json_t *j, const json_t **inner) {
  if (!json_is_object(j) || json_object_size(j) != 1) return -1;
  const char *k = json_object_iter_key(json_object_iter((json_t *)j));
  *inner = json_object_iter_value(json_object_iter((json_t *)j));
  static const struct {
    const char *tag;
    as_type t;
  } tags[] = {{"$double", AS_T_DOUBLE}, {"$decimal", AS_T_DECIMAL}, {"$bytes", AS_T_BYTES},
              {"$uuid", AS_T_UUID},     {"$oid", AS_T_OBJECTID},    {"$ts", AS_T_TIMESTAMP},
              {"$date", AS_T_DATE},     {"$json", AS_T_JSON},       {"$jsontext", AS_T__COUNT}};
  for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
    if (strcmp(k, tags[i].tag) == 0) return (int)tags[i].t;
  return -1;
}

int as_value_from_json(const json_t *j, as_value *out, as_error *err) {
  as_value v = AS_VALUE_NULL;
  int rc = AS_OK;
  const json_t *in = NULL;
  switch (json_typeof(j)) {
    case JSON_NULL: break;
    case JSON_TRUE: as_value_set_bool(&v, true); break;
    case JSON_FALSE: as_value_set_bool(&v, false); break;
    case JSON_INTEGER: as_value_set_int64(&v, (int64_t)json_integer_value(j)); break;
    case JSON_REAL: as_value_set_double(&v, json_real_value(j)); break;
    case JSON_STRING:
      if (as_value_set_str(&v, AS_T_TEXT, json_string_value(j), json_string_length(j)) != AS_OK)
        return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
      break;
    case JSON_OBJECT: {
      int t = tag_type(j, &in);
      if (t < 0) return bad_json(err, "untagged JSON object is not a value (wrap it in {\"$json\":...})", j);
      if (t == AS_T_JSON) {
        if (set_json_value(&v, in) != AS_OK) return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
        break;
      }
      if (!json_is_string(in)) return bad_json(err, "tagged value needs a string", j);
      const char *s = json_string_value(in);
      size_t n = json_string_length(in);
      if (t == AS_T__COUNT) {
        rc = as_value_from_text(AS_T_JSON, s, n, &v, err);
      } else if (t == AS_T_DOUBLE) {
        if (strcmp(s, "NaN") == 0) as_value_set_double(&v, NAN);
        else if (strcmp(s, "Infinity") == 0) as_value_set_double(&v, INFINITY);
        else if (strcmp(s, "-Infinity") == 0) as_value_set_double(&v, -INFINITY);
        else rc = as_value_from_text(AS_T_DOUBLE, s, n, &v, err);
      } else if (t == AS_T_BYTES) {
        as_buf b = AS_BUF_INIT;
        rc = as_base64_decode(s, n, &b);
        if (rc == AS_OK) rc = as_value_set_str(&v, AS_T_BYTES, (const char *)b.data, b.len);
        else rc = bad_json(err, "invalid base64", j);
        as_buf_free(&b);
      } else {
        rc = as_value_from_text((as_type)t, s, n, &v, err);
      }
      break;
    }
    default: return bad_json(err, "a JSON array is not a value (wrap it in {\"$json\":...})", j);
  }
  if (rc != AS_OK) {
    as_value_clear(&v);
    return rc;
  }
  *out = v; /* out is overwritten, not freed */
  return AS_OK;
}

static int cannot(as_error *err, const json_t *j, as_type type) {
  char *d = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "cannot convert %.200s to %s", d ? d : "?",
               as_type_name(type));
  free(d);
  return AS_EINVAL;
}

int as_value_from_json_typed(const json_t *j, as_type type, as_value *out, as_error *err) {
  as_value v = AS_VALUE_NULL;
  int rc = AS_OK;
  const json_t *in;
  if (json_is_null(j)) {
    *out = AS_VALUE_NULL;
    return AS_OK;
  }
  int tt = tag_type(j, &in);
  if (type == AS_T_JSON && tt != AS_T_JSON && tt != AS_T__COUNT) {
    /* an untagged JSON value for a json column: kept as its compact text */
    if (json_is_object(j) && tag_type(j, &in) >= 0) return cannot(err, j, type);
    char *d = as_json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!d) return as_error_set(err, AS_DOM_CODEC, AS_ERR, "cannot dump JSON");
    rc = as_value_set_str(&v, AS_T_JSON, d, strlen(d));
    free(d);
    if (rc != AS_OK) return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
    *out = v; /* out is overwritten, not freed */
    return AS_OK;
  }
  if (json_is_string(j) && type != AS_T_TEXT) {
    rc = as_value_from_text(type, json_string_value(j), json_string_length(j), &v, err);
    if (rc != AS_OK) return rc;
    *out = v; /* out is overwritten, not freed */
    return AS_OK;
  }
  rc = as_value_from_json(j, &v, err);
  if (rc != AS_OK) return rc;
  if (v.type == type) goto ok;
  switch (type) {
    case AS_T_DOUBLE:
      if (v.type == AS_T_INT64) {
        double d = (double)v.u.i;
        if (d >= 9223372036854775808.0 || (int64_t)d != v.u.i) goto bad;
        as_value_set_double(&v, d);
        goto ok;
      }
      break;
    case AS_T_INT64:
      if (v.type == AS_T_DOUBLE) {
        double d = v.u.d;
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d)) goto bad;
        as_value_set_int64(&v, (int64_t)d);
        goto ok;
      }
      break;
    case AS_T_DECIMAL:
      if (v.type == AS_T_INT64 || v.type == AS_T_DOUBLE) {
        char *t = NULL;
        if (v.type == AS_T_DOUBLE && !isfinite(v.u.d)) {
          t = strdup(isnan(v.u.d) ? "NaN" : v.u.d > 0 ? "Infinity" : "-Infinity");
        } else if (as_value_to_text(&v, &t, err) != AS_OK) {
          goto bad;
        }
        rc = t ? as_value_set_str(&v, AS_T_DECIMAL, t, strlen(t)) : AS_ERR;
        free(t);
        if (rc != AS_OK) {
          as_value_clear(&v);
          return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
        }
        goto ok;
      }
      break;
    case AS_T_BOOL:
      if (v.type == AS_T_INT64 && (v.u.i == 0 || v.u.i == 1)) {
        as_value_set_bool(&v, v.u.i == 1);
        goto ok;
      }
      break;
    default: break;
  }
bad:
  as_value_clear(&v);
  return cannot(err, j, type);
ok:
  *out = v; /* out is overwritten, not freed */
  return AS_OK;
}

/* ---------------------------------------------------------------- delta JSON */

json_t *as_delta_to_json(const as_delta *d, as_error *err) {
  const as_schema *s = d->schema;
  if (!s) {
    as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "delta has no schema");
    return NULL;
  }
  json_t *o = json_object(), *key = json_object(), *cols = json_object();
  if (!o || !key || !cols) goto oom;
  /* every member checked: a member that could not be added would be a lost value
   * (json_object_set_new takes the value's reference even when it fails) */
  if (json_object_set_new(o, "mapping", json_string(s->name)) ||
      json_object_set_new(o, "op", json_string(as_op_name(d->op))))
    goto oom;
  for (size_t k = 0; d->op != AS_OP_TRUNCATE && k < s->nkey; k++) {
    size_t i = s->key_idx[k];
    json_t *v = as_value_to_json(&d->row.v[i], err);
    if (!v) goto fail;
    if (json_object_set_new(key, s->cols[i].name, v)) goto oom;
  }
  int bad = json_object_set_new(o, "key", key);
  key = NULL;
  if (bad) goto oom;
  for (size_t i = 0; i < s->ncols && i < d->row.n; i++) {
    if (!d->row.set[i] || s->cols[i].is_key) continue;
    json_t *v = as_value_to_json(&d->row.v[i], err);
    if (!v) goto fail;
    if (json_object_set_new(cols, s->cols[i].name, v)) goto oom;
  }
  bad = json_object_set_new(o, "cols", cols);
  cols = NULL;
  if (bad || json_object_set_new(o, "origin", d->origin ? json_string(d->origin) : json_null()) ||
      json_object_set_new(o, "echo", json_boolean(d->echo)) ||
      json_object_set_new(o, "ts", json_integer(d->ts_us)) ||
      json_object_set_new(o, "hlc", json_integer(d->hlc)))
    goto oom;
  if (d->nvv) {
    json_t *vv = json_object();
    if (!vv) goto oom;
    for (size_t i = 0; i < d->nvv; i++) {
      if (json_object_set_new(vv, d->vv[i].node, json_integer((json_int_t)d->vv[i].counter))) {
        json_decref(vv);
        goto oom;
      }
    }
    if (json_object_set_new(o, "vv", vv)) goto oom;
  }
  if ((d->pos && json_object_set_new(o, "pos", json_string(d->pos))) ||
      (d->txn && json_object_set_new(o, "txn", json_string(d->txn))))
    goto oom;
  if (d->image.n) {
    json_t *img = json_object();
    if (!img || json_object_set_new(o, "image", img)) goto oom;
    for (size_t i = 0; i < s->ncols && i < d->image.n; i++) {
      if (!d->image.set[i] || s->cols[i].is_key) continue;
      json_t *v = as_value_to_json(&d->image.v[i], err);
      if (!v) goto fail;
      if (json_object_set_new(img, s->cols[i].name, v)) goto oom;
    }
  }
  return o;
oom:
  as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
fail:
  json_decref(o);
  json_decref(key);
  json_decref(cols);
  return NULL;
}

char *as_delta_to_json_string(const as_delta *d, as_error *err) {
  json_t *j = as_delta_to_json(d, err);
  if (!j) return NULL;
  char *s = as_json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!s) as_error_set(err, AS_DOM_CODEC, AS_ERR, "cannot dump JSON");
  return s;
}

static int column_values(const as_schema *s, const json_t *obj, bool keys, as_delta *d,
                         as_error *err) {
  const char *name;
  json_t *jv;
  json_object_foreach((json_t *)obj, name, jv) {
    int i = as_schema_column_index(s, name);
    if (i < 0 || s->cols[i].is_key != keys)
      return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "mapping %s: %s \"%s\" is not a %s column",
                          s->name, keys ? "key" : "cols", name, keys ? "key" : "non-key");
    as_value v = AS_VALUE_NULL;
    int rc = as_value_from_json_typed(jv, s->cols[i].type, &v, err);
    if (rc != AS_OK) {
      as_error_prefix(err, "mapping %s, column \"%s\"", s->name, name);
      return rc;
    }
    as_row_put(&d->row, (size_t)i, &v);
  }
  return AS_OK;
}

int as_delta_from_json(const json_t *j, as_schema_lookup_fn lookup, void *ctx, as_delta *out,
                       as_error *err) {
  as_delta d;
  memset(&d, 0, sizeof d);
  int rc = AS_EINVAL;
  if (!json_is_object(j)) {
    as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "delta must be a JSON object");
    goto cleanup;
  }
  const char *mapping = json_string_value(json_object_get(j, "mapping"));
  const char *opname = json_string_value(json_object_get(j, "op"));
  as_op op;
  if (!mapping) {
    as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "delta has no \"mapping\"");
    goto cleanup;
  }
  if (!as_op_parse(opname, &op)) {
    as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "delta has no valid \"op\"");
    goto cleanup;
  }
  const as_schema *s = lookup ? lookup(ctx, mapping) : NULL;
  if (!s) {
    rc = as_error_set(err, AS_DOM_CODEC, AS_ENOTFOUND, "unknown mapping \"%s\"", mapping);
    goto cleanup;
  }
  if (as_delta_init(&d, s, op) != AS_OK) {
    rc = as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
    goto cleanup;
  }
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)j, k, v) {
    if (strcmp(k, "mapping") == 0 || strcmp(k, "op") == 0) continue;
    if (strcmp(k, "key") == 0 || strcmp(k, "cols") == 0) {
      if (!json_is_object(v)) goto badfield;
      if ((rc = column_values(s, v, k[0] == 'k', &d, err)) != AS_OK) goto cleanup;
    } else if (strcmp(k, "origin") == 0 || strcmp(k, "pos") == 0 || strcmp(k, "txn") == 0) {
      if (json_is_null(v)) continue;
      if (!json_is_string(v)) goto badfield;
      char **dst = k[0] == 'o' ? &d.origin : k[0] == 'p' ? &d.pos : &d.txn;
      if (dup_str(dst, json_string_value(v)) != AS_OK) goto oom;
    } else if (strcmp(k, "echo") == 0) {
      if (!json_is_boolean(v)) goto badfield;
      d.echo = json_is_true(v);
    } else if (strcmp(k, "ts") == 0 || strcmp(k, "hlc") == 0) {
      if (!json_is_integer(v)) goto badfield;
      *(k[0] == 't' ? &d.ts_us : &d.hlc) = (int64_t)json_integer_value(v);
    } else if (strcmp(k, "image") == 0) {
      if (!json_is_object(v)) goto badfield;
      as_delta img;
      memset(&img, 0, sizeof img);
      if (as_row_init(&img.row, s->ncols) != AS_OK) goto oom;
      rc = column_values(s, v, false, &img, err);
      d.image = img.row;
      if (rc != AS_OK) goto cleanup;
    } else if (strcmp(k, "vv") == 0) {
      if (!json_is_object(v)) goto badfield;
      const char *node;
      json_t *c;
      json_object_foreach(v, node, c) {
        if (!json_is_integer(c) || json_integer_value(c) < 0) goto badfield;
        if (as_delta_vv_set(&d, node, (uint64_t)json_integer_value(c)) != AS_OK) goto oom;
      }
    } else {
      rc = as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "unknown delta field \"%s\"", k);
      goto cleanup;
    }
    continue;
  badfield:
    rc = as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "delta field \"%s\" has the wrong type", k);
    goto cleanup;
  }
  for (size_t i = 0; i < s->nkey; i++) {
    if (op == AS_OP_TRUNCATE) break;
    if (!d.row.set[s->key_idx[i]]) {
      rc = as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "mapping %s: delta lacks key column \"%s\"",
                        s->name, s->cols[s->key_idx[i]].name);
      goto cleanup;
    }
  }
  for (size_t k2 = 0; d.image.n && k2 < s->nkey; k2++) {
    size_t i = s->key_idx[k2];
    as_value kv;
    if (as_value_copy(&kv, &d.row.v[i]) != AS_OK) goto oom;
    as_row_put(&d.image, i, &kv);
  }
  for (size_t i = 0; op == AS_OP_TRUNCATE && i < s->ncols; i++) {
    if (d.row.set[i]) {
      rc = as_error_set(err, AS_DOM_CODEC, AS_EINVAL,
                        "mapping %s: a truncate has neither key nor columns", s->name);
      goto cleanup;
    }
  }
  *out = d; /* out is overwritten, not freed */
  memset(&d, 0, sizeof d);
  rc = AS_OK;
  goto cleanup;
oom:
  rc = as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
cleanup:
  as_delta_clear(&d);
  return rc;
}
