/* as_key.c — the canonical key text; see as_key.h. */
#include "as_key.h"
#include "as_json.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static int put_json(as_buf *out, const json_t *j) {
  char *t = as_json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!t) return AS_ERR;
  int rc = as_buf_append_str(out, t);
  free(t);
  return rc;
}

/* Appends "name": to out. */
static int put_name(as_buf *out, const char *name, bool first) {
  json_t *n = json_string(name);
  int rc = n ? AS_OK : AS_ERR;
  if (rc == AS_OK && !first) rc = as_buf_putc(out, ',');
  if (rc == AS_OK) rc = put_json(out, n);
  if (rc == AS_OK) rc = as_buf_putc(out, ':');
  json_decref(n);
  return rc;
}

/* Keys that the databases hold equal are spelled alike: a decimal by its normalised text
 * (MongoDB and PostgreSQL compare 1.50 = 1.5), a double -0.0 as 0.0. */
static json_t *key_value_json(const as_value *v, as_error *err) {
  if (v->type == AS_T_DOUBLE && v->u.d == 0.0) {
    as_value z = *v;
    z.u.d = 0.0;
    return as_value_to_json(&z, err);
  }
  if (v->type != AS_T_DECIMAL) return as_value_to_json(v, err);
  as_buf b = AS_BUF_INIT;
  json_t *j = NULL;
  if (as_decimal_normalize(v->u.s.ptr, v->u.s.len, &b) == AS_OK && as_buf_cstr(&b)) {
    as_value n = *v;
    n.u.s.ptr = (char *)b.data;
    n.u.s.len = b.len;
    j = as_value_to_json(&n, err);
  } else {
    as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "bad decimal key %.100s", v->u.s.ptr);
  }
  as_buf_free(&b);
  return j;
}

static int put_key(const as_schema *s, const as_row *r, as_buf *out, bool lenient,
                   as_error *err) {
  if (as_buf_putc(out, '{') != AS_OK) goto oom;
  for (size_t k = 0; k < s->nkey; k++) {
    size_t i = s->key_idx[k];
    const char *name = s->cols[i].name;
    bool present = r && i < r->n && r->set[i];
    if (!lenient && (!present || r->v[i].type == AS_T_NULL)) {
      return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "mapping %s: key column \"%s\" is %s",
                          s->name, name, present ? "NULL" : "missing");
    }
    if (put_name(out, name, k == 0) != AS_OK) goto oom;
    if (!present) {
      if (as_buf_putc(out, '?') != AS_OK) goto oom;
      continue;
    }
    json_t *v = key_value_json(&r->v[i], err);
    if (!v) return AS_EINVAL;
    int rc = put_json(out, v);
    json_decref(v);
    if (rc != AS_OK) goto oom;
  }
  if (as_buf_putc(out, '}') != AS_OK || !as_buf_cstr(out)) goto oom;
  return AS_OK;
oom:
  return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
}

int as_key_json(const as_schema *s, const as_row *r, as_buf *out, as_error *err) {
  return put_key(s, r, out, false, err);
}

char *as_key_json_dup(const as_schema *s, const as_row *r, as_error *err) {
  as_buf b = AS_BUF_INIT;
  if (put_key(s, r, &b, false, err) != AS_OK) {
    as_buf_free(&b);
    return NULL;
  }
  return as_buf_steal(&b);
}

char *as_key_describe(const as_schema *s, const as_row *r) {
  as_buf b = AS_BUF_INIT;
  as_error err;
  if (put_key(s, r, &b, true, &err) != AS_OK) {
    as_buf_free(&b);
    return strdup("?");
  }
  return as_buf_steal(&b);
}

int as_key_parse(const as_schema *s, const char *text, as_row *out, as_error *err) {
  json_error_t je;
  json_t *j = as_json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  int rc = AS_OK;
  if (!j && json_error_code(&je) == json_error_out_of_memory) {
    rc = as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
    goto cleanup;
  }
  if (!json_is_object(j) || json_object_size(j) != s->nkey) {
    rc = as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "mapping %s: %.200s is not a key (%s)",
                      s->name, text, j ? "wrong columns" : je.text);
    goto cleanup;
  }
  for (size_t k = 0; k < s->nkey && rc == AS_OK; k++) {
    size_t i = s->key_idx[k];
    const json_t *jv = json_object_get(j, s->cols[i].name);
    as_value v = AS_VALUE_NULL;
    if (!jv || json_is_null(jv)) {
      rc = as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "mapping %s: key %.200s lacks column \"%s\"",
                        s->name, text, s->cols[i].name);
      break;
    }
    rc = as_value_from_json_typed(jv, s->cols[i].type, &v, err);
    if (rc == AS_OK) as_row_put(out, i, &v);
  }
cleanup:
  json_decref(j);
  return rc;
}

int as_key_parse_values(const as_schema *s, const char *text, as_value *vals, as_error *err) {
  as_row r = {0};
  if (as_row_init(&r, s->ncols) != AS_OK) return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
  int rc = as_key_parse(s, text, &r, err);
  for (size_t k = 0; rc == AS_OK && k < s->nkey; k++) as_value_move(&vals[k], &r.v[s->key_idx[k]]);
  as_row_clear(&r);
  return rc;
}
