/* as_hash.c — canonical binary encoding of values and rows, XXH3 hashes, segment hashes,
 * and the canonical JSON text used for json values (see as_hash.h). */
#include "as_hash.h"
#include "as_json.h"

#include <math.h>
#include <string.h>

#include <jansson.h>
#include <xxhash.h>

/* ---------------------------------------------------------------- canonical JSON */

/* Rewrites one JSON number literal into PostgreSQL numeric text. */
static int number_canon(const char *s, size_t len, as_buf *out) {
  size_t i = 0;
  int neg = 0;
  if (i < len && s[i] == '-') neg = 1, i++;
  const char *ip = s + i;
  while (i < len && s[i] >= '0' && s[i] <= '9') i++;
  size_t ni = (size_t)(s + i - ip);
  const char *fp = s + i;
  size_t nf = 0;
  if (i < len && s[i] == '.') {
    fp = s + ++i;
    while (i < len && s[i] >= '0' && s[i] <= '9') i++;
    nf = (size_t)(s + i - fp);
  }
  long long exp = 0;
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    int eneg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
    size_t st = i;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
      if (exp < 100000000LL) exp = exp * 10 + (s[i] - '0');
      i++;
    }
    if (st == i) return AS_EINVAL;
    if (eneg) exp = -exp;
  }
  if (i != len || ni == 0) return AS_EINVAL;
  long long n = (long long)(ni + nf);
  long long point = (long long)ni + exp;
  long long scale = (long long)nf - exp;
  if (scale < 0) scale = 0;
  if (point > 200000 || scale > 200000) return AS_EINVAL; /* beyond PostgreSQL numeric too */
#define DIG(k) ((k) < 0 || (k) >= n ? '0' : ((k) < (long long)ni ? ip[(k)] : fp[(k) - (long long)ni]))
  size_t start = out->len;
  bool nonzero = false;
  if (neg && as_buf_putc(out, '-') != AS_OK) return AS_ERR;
  size_t digits_at = out->len;
  bool leading = true;
  for (long long k = 0; k < point; k++) {
    char c = DIG(k);
    if (leading && c == '0') continue;
    leading = false;
    nonzero = true;
    if (as_buf_putc(out, (uint8_t)c) != AS_OK) return AS_ERR;
  }
  if (leading && as_buf_putc(out, '0') != AS_OK) return AS_ERR;
  if (scale > 0) {
    if (as_buf_putc(out, '.') != AS_OK) return AS_ERR;
    for (long long k = point; k < point + scale; k++) {
      char c = DIG(k);
      if (c != '0') nonzero = true;
      if (as_buf_putc(out, (uint8_t)c) != AS_OK) return AS_ERR;
    }
  }
#undef DIG
  if (neg && !nonzero) { /* "-0.00" -> "0.00" */
    memmove(out->data + start, out->data + digits_at, out->len - digits_at);
    out->len -= 1;
  }
  return AS_OK;
}

/* Pass 1: number literals become strings "\u0000N<canonical>", strings that start with
 * U+0000 get a "\u0000S" prefix so they cannot be mistaken for numbers. */
static int prescan(const char *s, size_t len, as_buf *out) {
  size_t i = 0;
  while (i < len) {
    char c = s[i];
    if (c == '"') {
      size_t st = i++;
      if (len - i >= 6 && memcmp(s + i, "\\u0000", 6) == 0) {
        if (as_buf_append(out, "\"\\u0000S", 8) != AS_OK) return AS_ERR;
        st = i;
      }
      while (i < len && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
      if (i >= len) return AS_EINVAL;
      i++;
      if (as_buf_append(out, s + st, i - st) != AS_OK) return AS_ERR;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t st = i;
      while (i < len && (s[i] == '-' || s[i] == '+' || s[i] == '.' || s[i] == 'e' ||
                         s[i] == 'E' || (s[i] >= '0' && s[i] <= '9')))
        i++;
      if (as_buf_append(out, "\"\\u0000N", 8) != AS_OK) return AS_ERR;
      int rc = number_canon(s + st, i - st, out);
      if (rc != AS_OK) return rc;
      if (as_buf_putc(out, '"') != AS_OK) return AS_ERR;
    } else {
      size_t st = i;
      while (i < len && s[i] != '"' && s[i] != '-' && !(s[i] >= '0' && s[i] <= '9')) i++;
      if (as_buf_append(out, s + st, i - st) != AS_OK) return AS_ERR;
    }
  }
  return AS_OK;
}

/* Pass 3: undo the markers in jansson's compact output. */
static int postscan(const char *s, size_t len, as_buf *out) {
  size_t i = 0;
  while (i < len) {
    if (s[i] != '"') {
      size_t st = i;
      while (i < len && s[i] != '"') i++;
      if (as_buf_append(out, s + st, i - st) != AS_OK) return AS_ERR;
      continue;
    }
    size_t st = i++;
    bool num = false;
    if (len - i >= 7 && memcmp(s + i, "\\u0000", 6) == 0 && (s[i + 6] == 'N' || s[i + 6] == 'S')) {
      num = s[i + 6] == 'N';
      i += 7;
      if (!num && as_buf_putc(out, '"') != AS_OK) return AS_ERR;
      st = i;
    }
    while (i < len && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
    if (i >= len) return AS_EINVAL;
    if (num) {
      if (as_buf_append(out, s + st, i - st) != AS_OK) return AS_ERR;
      i++;
    } else {
      i++;
      if (as_buf_append(out, s + st, i - st) != AS_OK) return AS_ERR;
    }
  }
  return AS_OK;
}

int as_json_number_canon(const char *s, size_t len, as_buf *out) {
  return number_canon(s, len, out);
}

/* Passes 1 and 2: the marked text parsed by jansson (*j, or an error). */
static int marked_load(const char *json, size_t len, json_t **j, as_error *err) {
  as_buf pre = AS_BUF_INIT;
  *j = NULL;
  int rc = prescan(json, len, &pre);
  if (rc != AS_OK) {
    as_error_set(err, AS_DOM_CODEC, rc, "invalid JSON (bad number or string)");
  } else {
    json_error_t je;
    *j = as_json_loadb((const char *)pre.data, pre.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!*j) {
      rc = json_error_code(&je) == json_error_out_of_memory
               ? as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory")
               : as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "invalid JSON: %s", je.text);
    }
  }
  as_buf_free(&pre);
  return rc;
}

int as_json_validate(const char *json, size_t len, as_error *err) {
  json_t *j;
  int rc = marked_load(json, len, &j, err);
  json_decref(j);
  return rc;
}

int as_json_canonicalize(const char *json, size_t len, as_buf *out, as_error *err) {
  json_t *j = NULL;
  char *dump = NULL;
  int rc = marked_load(json, len, &j, err);
  if (rc != AS_OK) goto cleanup;
  dump = as_json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
  if (!dump) {
    rc = as_error_set(err, AS_DOM_CODEC, AS_ERR, "cannot dump JSON");
    goto cleanup;
  }
  rc = postscan(dump, strlen(dump), out);
  if (rc != AS_OK) as_error_set(err, AS_DOM_CODEC, rc, "cannot canonicalise JSON");
cleanup:
  free(dump);
  json_decref(j);
  return rc;
}

/* ---------------------------------------------------------------- binary encoding */

int as_value_encode(const as_value *v, as_buf *out, as_error *err) {
  if (v->type < 0 || v->type >= AS_T__COUNT)
    return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "bad value type %d", (int)v->type);
  if (as_buf_putc(out, (uint8_t)v->type) != AS_OK) goto oom;
  switch (v->type) {
    case AS_T_NULL: return AS_OK;
    case AS_T_BOOL: return as_buf_putc(out, v->u.b ? 1 : 0) == AS_OK ? AS_OK : AS_ERR;
    case AS_T_INT64:
    case AS_T_TIMESTAMP:
      if (as_buf_put_be64(out, (uint64_t)v->u.i) != AS_OK) goto oom;
      return AS_OK;
    case AS_T_DOUBLE: {
      double d = v->u.d;
      uint64_t bits;
      if (isnan(d)) bits = 0x7ff8000000000000ULL;
      else {
        if (d == 0) d = 0.0;
        memcpy(&bits, &d, 8);
      }
      if (as_buf_put_be64(out, bits) != AS_OK) goto oom;
      return AS_OK;
    }
    case AS_T_DATE:
      if (as_buf_put_be32(out, (uint32_t)v->u.days) != AS_OK) goto oom;
      return AS_OK;
    case AS_T_UUID:
      if (as_buf_append(out, v->u.uuid, 16) != AS_OK) goto oom;
      return AS_OK;
    case AS_T_OBJECTID:
      if (as_buf_append(out, v->u.oid, 12) != AS_OK) goto oom;
      return AS_OK;
    case AS_T_TEXT:
    case AS_T_BYTES:
      if (v->u.s.len > UINT32_MAX) goto toobig;
      if (as_buf_put_be32(out, (uint32_t)v->u.s.len) != AS_OK ||
          as_buf_append(out, v->u.s.ptr, v->u.s.len) != AS_OK)
        goto oom;
      return AS_OK;
    case AS_T_DECIMAL:
    case AS_T_JSON: {
      size_t at = out->len;
      if (as_buf_put_be32(out, 0) != AS_OK) goto oom;
      size_t body = out->len;
      int rc;
      if (v->type == AS_T_DECIMAL) {
        rc = as_decimal_normalize(v->u.s.ptr, v->u.s.len, out);
        if (rc == AS_EINVAL)
          return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "invalid decimal \"%.100s\"",
                              v->u.s.ptr);
      } else {
        rc = as_json_canonicalize(v->u.s.ptr, v->u.s.len, out, err);
        if (rc == AS_EINVAL) return rc;
      }
      if (rc != AS_OK) goto oom;
      size_t n = out->len - body;
      if (n > UINT32_MAX) goto toobig;
      uint8_t b[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
      memcpy(out->data + at, b, 4);
      return AS_OK;
    }
    default: break;
  }
  return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "bad value type %d", (int)v->type);
oom:
  return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
toobig:
  return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "value longer than 4 GiB");
}

static int encode_col(const as_row *r, size_t i, as_buf *out, as_error *err) {
  if (as_buf_put_be32(out, (uint32_t)i) != AS_OK)
    return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
  return as_value_encode(&r->v[i], out, err);
}

int as_row_encode(const as_schema *s, const as_row *r, as_buf *out, as_error *err) {
  size_t n = s ? s->ncols : r->n;
  if (r->n < n) return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "row has %zu slots, schema %zu", r->n, n);
  for (size_t i = 0; i < n; i++) {
    if (!r->set[i]) continue;
    int rc = encode_col(r, i, out, err);
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

int as_row_hash(const as_schema *s, const as_row *r, uint64_t *out, as_error *err) {
  as_buf b = AS_BUF_INIT;
  int rc = as_row_encode(s, r, &b, err);
  if (rc == AS_OK) *out = XXH3_64bits(b.data, b.len);
  as_buf_free(&b);
  return rc;
}

int as_row_key_hash(const as_schema *s, const as_row *r, uint64_t *out, as_error *err) {
  as_buf b = AS_BUF_INIT;
  int rc = AS_OK;
  for (size_t k = 0; k < s->nkey && rc == AS_OK; k++) {
    size_t i = s->key_idx[k];
    if (i >= r->n || !r->set[i]) {
      rc = as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "key column \"%s\" is not set",
                        s->cols[i].name);
      break;
    }
    rc = encode_col(r, i, &b, err);
  }
  if (rc == AS_OK) *out = XXH3_64bits(b.data, b.len);
  as_buf_free(&b);
  return rc;
}

void as_seghash_add(as_seghash *h, uint64_t row_hash) {
  h->count++;
  h->sum += row_hash;
}

void as_seghash_remove(as_seghash *h, uint64_t row_hash) {
  h->count--;
  h->sum -= row_hash;
}
