/* as_asjson_read.c — AS-JSON text -> BSON (the forms are listed in as_bson.h).
 *
 * Decisions:
 * - Two paths giving the same BSON: a streaming transcoder (as_jsonr_*) for plain JSON and the
 *   common wrappers, writing raw BSON elements (as_bson_priv.h); everything else (other
 *   wrappers, integers beyond int64, anything it gives up on) by jansson.
 * - Integers beyond int64 become doubles (PostgreSQL jsonb prints 1e20 as
 *   100000000000000000000).
 * - A malformed wrapper ({"$oid":"xyz"}) stays a plain document.
 * - The fast path does not validate UTF-8 and keeps duplicate keys as they come (jansson
 *   keeps the last).
 * - Decimal text -> Decimal128 has an exact fast path for "[-]digits[.digits]" up to 19
 *   digits; libbson does the rest (same bits as bson_decimal128_from_string_w_len).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "as_bson_priv.h"

/* ================================================================ AS-JSON reader */


static int json_to_bson_doc(bson_t *dst, const json_t *j, int depth) {
  if (depth > 200) return AS_EINVAL;
  if (json_is_array(j)) {
    char kb[16];
    const char *k;
    for (size_t i = 0; i < json_array_size(j); i++) {
      size_t kl = bson_uint32_to_string((uint32_t)i, &k, kb, sizeof kb);
      int rc = as_jsonr_jansson_value(dst, k, (int)kl, json_array_get(j, i), depth);
      if (rc != AS_OK) return rc;
    }
    return AS_OK;
  }
  const char *k;
  size_t kl;
  json_t *v;
  json_object_keylen_foreach((json_t *)j, k, kl, v) {
    if (memchr(k, '\0', kl)) return AS_EINVAL; /* BSON keys cannot hold NUL */
    int rc = as_jsonr_jansson_value(dst, k, (int)kl, v, depth);
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

static const char *obj_str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

bool as_jsonr_parse_i64(const char *s, int64_t *out) {
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*end || errno) return false;
  *out = v;
  return true;
}

/* Recognises the extended JSON wrappers; returns 1 if appended, 0 if j is a plain object. */
static int wrapper(bson_t *dst, const char *key, int kl, const json_t *j, int depth) {
  size_t n = json_object_size(j);
  if (n == 0 || n > 2) return 0;
  void *iter = json_object_iter((json_t *)j);
  const char *k = json_object_iter_key(iter);
  const json_t *v = json_object_iter_value(iter);
  if (k[0] != '$') return 0;
  if (n == 2) {
    const json_t *code = json_object_get(j, "$code"), *scope = json_object_get(j, "$scope");
    if (!json_is_string(code) || !json_is_object(scope)) return 0;
    bson_t sc = BSON_INITIALIZER;
    int rc = json_to_bson_doc(&sc, scope, depth + 1);
    if (rc == AS_OK && !bson_append_code_with_scope(dst, key, kl, json_string_value(code), &sc)) rc = AS_EINVAL;
    bson_destroy(&sc);
    return rc == AS_OK ? 1 : rc;
  }
  const char *s = json_string_value(v);
  if (strcmp(k, "$oid") == 0) {
    if (!s || strlen(s) != 24 || !bson_oid_is_valid(s, 24)) return 0;
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, s);
    return bson_append_oid(dst, key, kl, &oid) ? 1 : AS_EINVAL;
  }
  if (strcmp(k, "$numberLong") == 0 || strcmp(k, "$numberInt") == 0) {
    int64_t x;
    if (!as_jsonr_parse_i64(s, &x)) return 0;
    if (k[7] == 'I') {
      if (x < INT32_MIN || x > INT32_MAX) return 0;
      return bson_append_int32(dst, key, kl, (int32_t)x) ? 1 : AS_EINVAL;
    }
    return bson_append_int64(dst, key, kl, x) ? 1 : AS_EINVAL;
  }
  if (strcmp(k, "$numberDouble") == 0) {
    if (!s) return 0;
    double d;
    if (strcmp(s, "NaN") == 0) d = NAN;
    else if (strcmp(s, "Infinity") == 0) d = INFINITY;
    else if (strcmp(s, "-Infinity") == 0) d = -INFINITY;
    else {
      char *end;
      d = strtod(s, &end);
      if (*end || !*s) return 0;
    }
    return bson_append_double(dst, key, kl, d) ? 1 : AS_EINVAL;
  }
  if (strcmp(k, "$numberDecimal") == 0) {
    bson_decimal128_t dec;
    if (!s || !bson_decimal128_from_string(s, &dec)) return 0;
    return bson_append_decimal128(dst, key, kl, &dec) ? 1 : AS_EINVAL;
  }
  if (strcmp(k, "$date") == 0) {
    int64_t ms;
    if (json_is_object(v) && json_object_size(v) == 1 && as_jsonr_parse_i64(obj_str(v, "$numberLong"), &ms))
      return bson_append_date_time(dst, key, kl, ms) ? 1 : AS_EINVAL;
    if (json_is_integer(v)) return bson_append_date_time(dst, key, kl, json_integer_value(v)) ? 1 : AS_EINVAL;
    return 0;
  }
  if (strcmp(k, "$binary") == 0) {
    const char *b64 = obj_str(v, "base64"), *st = obj_str(v, "subType");
    if (!b64 || !st || json_object_size(v) != 2 || strlen(st) < 1 || strlen(st) > 2) return 0;
    char *end;
    long sub = strtol(st, &end, 16);
    if (*end) return 0;
    as_buf raw = AS_BUF_INIT;
    int rc = as_base64_decode(b64, strlen(b64), &raw);
    if (rc == AS_OK)
      rc = bson_append_binary(dst, key, kl, (bson_subtype_t)sub, raw.data ? raw.data : (const uint8_t *)"",
                              (uint32_t)raw.len) ? 1 : AS_EINVAL;
    else rc = 0;
    as_buf_free(&raw);
    return rc;
  }
  if (strcmp(k, "$timestamp") == 0) {
    const json_t *t = json_object_get(v, "t"), *i = json_object_get(v, "i");
    if (!json_is_integer(t) || !json_is_integer(i) || json_object_size(v) != 2) return 0;
    return bson_append_timestamp(dst, key, kl, (uint32_t)json_integer_value(t),
                                 (uint32_t)json_integer_value(i)) ? 1 : AS_EINVAL;
  }
  if (strcmp(k, "$regularExpression") == 0) {
    const char *p = obj_str(v, "pattern"), *o = obj_str(v, "options");
    if (!p || !o || json_object_size(v) != 2) return 0;
    return bson_append_regex(dst, key, kl, p, o) ? 1 : AS_EINVAL;
  }
  if (strcmp(k, "$minKey") == 0 || strcmp(k, "$maxKey") == 0) {
    if (!json_is_integer(v) || json_integer_value(v) != 1) return 0;
    return (k[2] == 'i' ? bson_append_minkey(dst, key, kl) : bson_append_maxkey(dst, key, kl)) ? 1 : AS_EINVAL;
  }
  if (strcmp(k, "$symbol") == 0) {
    if (!s) return 0;
    return bson_append_symbol(dst, key, kl, s, (int)json_string_length(v)) ? 1 : AS_EINVAL;
  }
  if (strcmp(k, "$code") == 0) {
    if (!s) return 0;
    return bson_append_code(dst, key, kl, s) ? 1 : AS_EINVAL;
  }
  if (strcmp(k, "$undefined") == 0) {
    if (!json_is_true(v)) return 0;
    return bson_append_undefined(dst, key, kl) ? 1 : AS_EINVAL;
  }
  if (strcmp(k, "$dbPointer") == 0) {
    const char *ref = obj_str(v, "$ref");
    const json_t *id = json_object_get(v, "$id");
    const char *ids = json_is_object(id) && json_object_size(id) == 1 ? obj_str(id, "$oid") : NULL;
    if (!ref || !ids || strlen(ids) != 24 || !bson_oid_is_valid(ids, 24) || json_object_size(v) != 2) return 0;
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, ids);
    return bson_append_dbpointer(dst, key, kl, ref, &oid) ? 1 : AS_EINVAL;
  }
  return 0;
}

int as_jsonr_jansson_value(bson_t *dst, const char *key, int kl, const json_t *j, int depth) {
  bool ok = true;
  switch (json_typeof(j)) {
    case JSON_OBJECT: {
      int w = wrapper(dst, key, kl, j, depth);
      if (w < 0) return w;
      if (w == 1) return AS_OK;
      bson_t child;
      if (!bson_append_document_begin(dst, key, kl, &child)) return AS_EINVAL;
      int rc = json_to_bson_doc(&child, j, depth + 1);
      if (!bson_append_document_end(dst, &child) && rc == AS_OK) rc = AS_EINVAL;
      return rc;
    }
    case JSON_ARRAY: {
      bson_t child;
      if (!bson_append_array_begin(dst, key, kl, &child)) return AS_EINVAL;
      int rc = json_to_bson_doc(&child, j, depth + 1);
      if (!bson_append_array_end(dst, &child) && rc == AS_OK) rc = AS_EINVAL;
      return rc;
    }
    case JSON_STRING:
      ok = bson_append_utf8(dst, key, kl, json_string_value(j), (int)json_string_length(j));
      break;
    case JSON_INTEGER: {
      json_int_t v = json_integer_value(j);
      ok = (v >= INT32_MIN && v <= INT32_MAX) ? bson_append_int32(dst, key, kl, (int32_t)v)
                                               : bson_append_int64(dst, key, kl, v);
      break;
    }
    case JSON_REAL: ok = bson_append_double(dst, key, kl, json_real_value(j)); break;
    case JSON_TRUE: ok = bson_append_bool(dst, key, kl, true); break;
    case JSON_FALSE: ok = bson_append_bool(dst, key, kl, false); break;
    case JSON_NULL: ok = bson_append_null(dst, key, kl); break;
  }
  return ok ? AS_OK : AS_EINVAL;
}

/* Integer literals beyond int64 (jansson refuses them) become reals: "1e20" that PostgreSQL
 * jsonb printed as 100000000000000000000 goes back to the double it was. */
static int fix_big_ints(const char *s, size_t len, as_buf *out) {
  size_t i = 0;
  while (i < len) {
    if (s[i] == '"') {
      size_t st = i++;
      while (i < len && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
      i = i < len ? i + 1 : len;
      if (as_buf_append(out, s + st, i - st)) return AS_ERR;
    } else if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
      size_t st = i;
      bool real = false;
      while (i < len && strchr("-+.eE0123456789", s[i]) && s[i]) {
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E') real = true;
        i++;
      }
      if (as_buf_append(out, s + st, i - st)) return AS_ERR;
      bool overflow = false;
      if (!real && i - st >= 19) {
        char num[64];
        size_t n = i - st < sizeof num ? i - st : sizeof num - 1;
        memcpy(num, s + st, n);
        num[n] = '\0';
        errno = 0;
        (void)strtoll(num, NULL, 10);
        overflow = errno == ERANGE || i - st >= sizeof num;
      }
      if (overflow && as_buf_append(out, ".0", 2)) return AS_ERR;
    } else {
      if (as_buf_putc(out, (uint8_t)s[i++])) return AS_ERR;
    }
  }
  return AS_OK;
}

json_t *as_jsonr_load(const char *json, size_t len, as_error *err) {
  json_error_t je;
  json_t *j = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  if (!j && strstr(je.text, "too big")) {
    as_buf fixed = AS_BUF_INIT;
    if (fix_big_ints(json, len, &fixed) == AS_OK)
      j = json_loadb((const char *)fixed.data, fixed.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    as_buf_free(&fixed);
  }
  if (!j) as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "invalid JSON: %s (line %d column %d)", je.text, je.line, je.column);
  return j;
}

/* ---------------------------------------------------------------- fast AS-JSON -> BSON
 *
 * A streaming transcoder for the hot path (MongoDB sink: json and catch-all values). It
 * handles plain JSON and the common wrappers ($numberLong, $numberInt, $numberDouble,
 * $numberDecimal, $oid, $date:{$numberLong}, $symbol, $code as a single key); an object whose
 * first key is any other "$..." is converted by the jansson path (wrapper() above) on its
 * own text. Anything else unusual (integers beyond int64, invalid JSON, NUL in a key) makes it
 * give up, and the caller redoes the whole value with jansson, so both paths give the same
 * BSON. Not checked here (jansson would): invalid UTF-8 in strings, duplicate keys (kept as
 * they come; jansson keeps the last value). */

void as_jsonr_ws(as_jsonr *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    int c = (unsigned char)p[i], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return -1;
    v = v << 4 | d;
  }
  return v;
}

/* Parses a string at j->p ('"'). Unescaped strings point into the text (*tmp untouched);
 * escaped ones are decoded into tmp. */
int as_jsonr_string(as_jsonr *j, const char **s, size_t *n, as_buf *tmp) {
  const char *p = ++j->p;
  while (p < j->end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) p++;
  if (p >= j->end) return FJ_FAIL;
  if (*p == '"') {
    *s = j->p;
    *n = (size_t)(p - j->p);
    j->p = p + 1;
    return AS_OK;
  }
  as_buf_reset(tmp);
  if (as_buf_append(tmp, j->p, (size_t)(p - j->p))) return AS_ERR;
  while (p < j->end && *p != '"') {
    unsigned char c = (unsigned char)*p;
    if (c < 0x20) return FJ_FAIL;
    if (c != '\\') {
      const char *st = p;
      while (p < j->end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) p++;
      if (as_buf_append(tmp, st, (size_t)(p - st))) return AS_ERR;
      continue;
    }
    if (++p >= j->end) return FJ_FAIL;
    char e = *p++;
    uint8_t out[4];
    size_t no = 1;
    switch (e) {
      case '"': out[0] = '"'; break;
      case '\\': out[0] = '\\'; break;
      case '/': out[0] = '/'; break;
      case 'b': out[0] = '\b'; break;
      case 'f': out[0] = '\f'; break;
      case 'n': out[0] = '\n'; break;
      case 'r': out[0] = '\r'; break;
      case 't': out[0] = '\t'; break;
      case 'u': {
        if (j->end - p < 4) return FJ_FAIL;
        int32_t cp = hex4(p);
        if (cp < 0) return FJ_FAIL;
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (j->end - p < 6 || p[0] != '\\' || p[1] != 'u') return FJ_FAIL;
          int lo = hex4(p + 2);
          if (lo < 0xDC00 || lo > 0xDFFF) return FJ_FAIL;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          return FJ_FAIL;
        }
        if (cp < 0x80) {
          out[0] = (uint8_t)cp;
        } else if (cp < 0x800) {
          out[0] = (uint8_t)(0xC0 | cp >> 6);
          out[1] = (uint8_t)(0x80 | (cp & 0x3F));
          no = 2;
        } else if (cp < 0x10000) {
          out[0] = (uint8_t)(0xE0 | cp >> 12);
          out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
          out[2] = (uint8_t)(0x80 | (cp & 0x3F));
          no = 3;
        } else {
          out[0] = (uint8_t)(0xF0 | cp >> 18);
          out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
          out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
          out[3] = (uint8_t)(0x80 | (cp & 0x3F));
          no = 4;
        }
        break;
      }
      default: return FJ_FAIL;
    }
    if (as_buf_append(tmp, out, no)) return AS_ERR;
  }
  if (p >= j->end) return FJ_FAIL;
  j->p = p + 1;
  *s = tmp->data ? (const char *)tmp->data : "";
  *n = tmp->len;
  return AS_OK;
}

/* Skips one JSON value (for handing an object to the jansson path). */
int as_jsonr_skip(as_jsonr *j) {
  int depth = 0;
  do {
    as_jsonr_ws(j);
    if (j->p >= j->end) return FJ_FAIL;
    char c = *j->p;
    if (c == '"') {
      j->p++;
      while (j->p < j->end && *j->p != '"') j->p += *j->p == '\\' ? 2 : 1;
      if (j->p >= j->end) return FJ_FAIL;
      j->p++;
    } else if (c == '{' || c == '[') {
      depth++;
      j->p++;
    } else if (c == '}' || c == ']') {
      depth--;
      j->p++;
    } else {
      j->p++;
    }
  } while (depth > 0);
  return AS_OK;
}

/* Decimal text -> Decimal128 as bson_decimal128_from_string_w_len: plain "[-]digits[.digits]"
 * with at most 19 digits here (coefficient = the digits, exponent = -fraction digits, sign bit
 * for '-', also for zero), everything else by libbson. */
bool as_dec128_from_str(const char *s, size_t n, bson_decimal128_t *dec) {
  const char *p = s, *e = s + n;
  bool neg = p < e && *p == '-';
  if (neg) p++;
  uint64_t coef = 0;
  int nd = 0, nfrac = 0;
  const char *st = p;
  while (p < e && *p >= '0' && *p <= '9') coef = coef * 10 + (uint64_t)(*p++ - '0');
  nd = (int)(p - st);
  if (nd > 0 && p < e && *p == '.') {
    st = ++p;
    while (p < e && *p >= '0' && *p <= '9') coef = coef * 10 + (uint64_t)(*p++ - '0');
    nfrac = (int)(p - st);
    if (nfrac == 0) p = s; /* "1." : libbson */
  }
  if (nd == 0 || p != e || nd + nfrac > 19)
    return n <= INT_MAX && bson_decimal128_from_string_w_len(s, (int)n, dec);
  dec->low = coef;
  dec->high = (uint64_t)(6176 - nfrac) << 49 | (neg ? 1ULL << 63 : 0);
  return true;
}

/* Decimal index key of an array element. */
static inline size_t idx_key(uint32_t i, char kb[16]) {
  if (i < 10) {
    kb[0] = (char)('0' + i);
    kb[1] = '\0';
    return 1;
  }
  char t[12];
  int n = 0;
  while (i) {
    t[n++] = (char)('0' + i % 10);
    i /= 10;
  }
  size_t l = 0;
  while (n) kb[l++] = t[--n];
  kb[l] = '\0';
  return l;
}


/* Members of an object or array (j->p just after '{' or '['). */
int as_jsonr_members(as_jsonr *j, as_buf *dst, bool arr, as_buf *tmp, int depth) {
  char close = arr ? ']' : '}';
  as_jsonr_ws(j);
  if (j->p < j->end && *j->p == close) {
    j->p++;
    return AS_OK;
  }
  char kb[16];
  char keybuf[256];
  for (uint32_t idx = 0;; idx++) {
    const char *key;
    size_t kl;
    as_jsonr_ws(j);
    if (arr) {
      kl = idx_key(idx, kb);
      key = kb;
    } else {
      if (j->p >= j->end || *j->p != '"') return FJ_FAIL;
      int rc = as_jsonr_string(j, &key, &kl, tmp);
      if (rc) return rc;
      if (memchr(key, '\0', kl)) return FJ_FAIL;
      if (key == (const char *)tmp->data) { /* the value may reuse tmp */
        if (kl >= sizeof keybuf) return FJ_FAIL;
        memcpy(keybuf, key, kl);
        key = keybuf;
      }
      as_jsonr_ws(j);
      if (j->p >= j->end || *j->p != ':') return FJ_FAIL;
      j->p++;
    }
    int rc = as_jsonr_value(j, dst, key, (int)kl, tmp, depth);
    if (rc) return rc;
    as_jsonr_ws(j);
    if (j->p >= j->end) return FJ_FAIL;
    if (*j->p == ',') {
      j->p++;
      continue;
    }
    if (*j->p == close) {
      j->p++;
      return AS_OK;
    }
    return FJ_FAIL;
  }
}

/* {"$x": "<string>"} with exactly one member: the string, or NULL. */
static bool fj_single_string(as_jsonr *j, const char **s, size_t *n, as_buf *tmp) {
  as_jsonr_ws(j);
  if (j->p >= j->end || *j->p != ':') return false;
  j->p++;
  as_jsonr_ws(j);
  if (j->p >= j->end || *j->p != '"' || as_jsonr_string(j, s, n, tmp)) return false;
  as_jsonr_ws(j);
  if (j->p >= j->end || *j->p != '}') return false;
  j->p++;
  return true;
}

/* Decimal integer text as as_jsonr_parse_i64 (strtoll: optional sign, digits, no overflow), without
 * leading blanks (never produced by the writer; such text goes the as_jsonr_parse_i64 way). */
static bool fast_i64(const char *s, int64_t *out) {
  const char *p = s;
  bool neg = *p == '-';
  if (*p == '-' || *p == '+') p++;
  if (*p < '0' || *p > '9') return as_jsonr_parse_i64(s, out);
  uint64_t u = 0;
  int nd = 0;
  while (*p >= '0' && *p <= '9') {
    u = u * 10 + (uint64_t)(*p++ - '0');
    if (++nd > 18) return as_jsonr_parse_i64(s, out);
  }
  if (*p) return false;
  *out = neg ? -(int64_t)u : (int64_t)u;
  return true;
}

/* The common wrappers; returns 1 appended, 0 not handled here (j->p unspecified), <0 error. */
static int fj_wrapper(as_jsonr *j, as_buf *dst, const char *key, int kl, const char *wk, size_t wl, as_buf *tmp) {
  const char *s;
  size_t n;
  char num[64];
#define IS(lit) (wl == sizeof(lit) - 1 && memcmp(wk, lit, wl) == 0)
  if (IS("$date")) {
    as_jsonr_ws(j);
    if (j->p >= j->end || *j->p != ':') return 0;
    j->p++;
    as_jsonr_ws(j);
    if (j->p >= j->end || *j->p != '{') return 0;
    j->p++;
    as_jsonr_ws(j);
    const char *k2;
    size_t k2l;
    if (j->p >= j->end || *j->p != '"' || as_jsonr_string(j, &k2, &k2l, tmp)) return 0;
    if (k2l != 11 || memcmp(k2, "$numberLong", 11) != 0) return 0;
    if (!fj_single_string(j, &s, &n, tmp) || n == 0 || n >= sizeof num) return 0;
    memcpy(num, s, n);
    num[n] = '\0';
    int64_t ms;
    if (!fast_i64(num, &ms)) return 0;
    as_jsonr_ws(j);
    if (j->p >= j->end || *j->p != '}') return 0;
    j->p++;
    return rw_64(dst, BSON_TYPE_DATE_TIME, key, (size_t)kl, (uint64_t)ms) ? AS_ERR : 1;
  }
  bool known = IS("$numberLong") || IS("$numberInt") || IS("$numberDouble") || IS("$numberDecimal") ||
               IS("$oid") || IS("$symbol") || IS("$code");
  if (!known || !fj_single_string(j, &s, &n, tmp)) return 0;
  if (IS("$symbol")) return rw_str(dst, BSON_TYPE_SYMBOL, key, (size_t)kl, s, n) ? AS_ERR : 1;
  if (memchr(s, '\0', n)) return 0;
  if (IS("$code")) {
    if (n >= 4096) return 0;
    return rw_str(dst, BSON_TYPE_CODE, key, (size_t)kl, s, n) ? AS_ERR : 1;
  }
  if (n >= sizeof num) return 0;
  memcpy(num, s, n);
  num[n] = '\0';
  if (IS("$oid")) {
    if (n != 24 || !bson_oid_is_valid(num, 24)) return 0;
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, num);
    return rw_bytes(dst, BSON_TYPE_OID, key, (size_t)kl, oid.bytes, 12) ? AS_ERR : 1;
  }
  if (IS("$numberDecimal")) {
    bson_decimal128_t dec;
    if (!as_dec128_from_str(num, n, &dec)) return 0;
    uint8_t raw[16];
    put_le64(raw, dec.low);
    put_le64(raw + 8, dec.high);
    return rw_bytes(dst, BSON_TYPE_DECIMAL128, key, (size_t)kl, raw, 16) ? AS_ERR : 1;
  }
  if (IS("$numberDouble")) {
    double d;
    if (strcmp(num, "NaN") == 0) d = NAN;
    else if (strcmp(num, "Infinity") == 0) d = INFINITY;
    else if (strcmp(num, "-Infinity") == 0) d = -INFINITY;
    else {
      char *end;
      d = strtod(num, &end);
      if (*end || !*num) return 0;
    }
    return rw_double(dst, key, (size_t)kl, d) ? AS_ERR : 1;
  }
  int64_t x;
  if (!fast_i64(num, &x)) return 0;
  if (IS("$numberInt")) {
    if (x < INT32_MIN || x > INT32_MAX) return 0;
    return rw_i32(dst, key, (size_t)kl, (int32_t)x) ? AS_ERR : 1;
  }
  return rw_64(dst, BSON_TYPE_INT64, key, (size_t)kl, (uint64_t)x) ? AS_ERR : 1;
#undef IS
}

static int fj_object(as_jsonr *j, as_buf *dst, const char *key, int kl, as_buf *tmp, int depth) {
  const char *start = j->p; /* at '{' */
  j->p++;
  as_jsonr_ws(j);
  if (j->p + 1 < j->end && j->p[0] == '"' && j->p[1] == '$') {
    const char *wk;
    size_t wl;
    size_t mark = dst->len;
    int rc = as_jsonr_string(j, &wk, &wl, tmp);
    if (rc) return rc;
    char wkey[32];
    if (wl < sizeof wkey) {
      memcpy(wkey, wk, wl);
      rc = fj_wrapper(j, dst, key, kl, wkey, wl, tmp);
      if (rc != 0) return rc < 0 ? rc : AS_OK;
    }
    dst->len = mark;
    /* any other "$..." object: the jansson path decides (wrapper or plain document) */
    j->p = start;
    if ((rc = as_jsonr_skip(j)) != AS_OK) return rc;
    json_error_t je;
    json_t *v = json_loadb(start, (size_t)(j->p - start), JSON_ALLOW_NUL, &je);
    if (!v) return FJ_FAIL;
    bson_t holder = BSON_INITIALIZER;
    rc = as_jsonr_jansson_value(&holder, key, kl, v, depth);
    if (rc == AS_OK) rc = rw_elements(dst, &holder);
    bson_destroy(&holder);
    json_decref(v);
    return rc;
  }
  size_t at;
  if (rw_begin(dst, BSON_TYPE_DOCUMENT, key, (size_t)kl, &at)) return FJ_FAIL;
  int rc = as_jsonr_members(j, dst, false, tmp, depth + 1);
  if (rc == AS_OK && rw_end(dst, at)) rc = FJ_FAIL;
  return rc;
}

int as_jsonr_value(as_jsonr *j, as_buf *dst, const char *key, int kl, as_buf *tmp, int depth) {
  if (depth > 200) return FJ_FAIL;
  as_jsonr_ws(j);
  if (j->p >= j->end) return FJ_FAIL;
  char c = *j->p;
  size_t k = (size_t)kl;
  int w;
  if (c == '{') return fj_object(j, dst, key, kl, tmp, depth);
  if (c == '[') {
    size_t at;
    j->p++;
    if (rw_begin(dst, BSON_TYPE_ARRAY, key, k, &at)) return FJ_FAIL;
    int rc = as_jsonr_members(j, dst, true, tmp, depth + 1);
    if (rc == AS_OK && rw_end(dst, at)) rc = FJ_FAIL;
    return rc;
  }
  if (c == '"') {
    const char *s;
    size_t n;
    int rc = as_jsonr_string(j, &s, &n, tmp);
    if (rc) return rc;
    w = rw_str(dst, BSON_TYPE_UTF8, key, k, s, n);
  } else if (c == 't' && j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
    j->p += 4;
    w = rw_byte(dst, BSON_TYPE_BOOL, key, k, 1);
  } else if (c == 'f' && j->end - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
    j->p += 5;
    w = rw_byte(dst, BSON_TYPE_BOOL, key, k, 0);
  } else if (c == 'n' && j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
    j->p += 4;
    w = rw_byte(dst, BSON_TYPE_NULL, key, k, -1);
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    /* JSON grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
    const char *st = j->p, *p = j->p;
    bool neg = *p == '-';
    if (neg) p++;
    if (p >= j->end || *p < '0' || *p > '9') return FJ_FAIL;
    if (*p == '0' && p + 1 < j->end && p[1] >= '0' && p[1] <= '9') return FJ_FAIL;
    uint64_t u = 0;
    int nd = 0;
    while (p < j->end && *p >= '0' && *p <= '9') {
      u = u * 10 + (uint64_t)(*p++ - '0');
      nd++;
    }
    bool real = false;
    if (p < j->end && *p == '.') {
      real = true;
      p++;
      if (p >= j->end || *p < '0' || *p > '9') return FJ_FAIL;
      while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
      real = true;
      p++;
      if (p < j->end && (*p == '+' || *p == '-')) p++;
      if (p >= j->end || *p < '0' || *p > '9') return FJ_FAIL;
      while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
    j->p = p;
    if (real) {
      char num[64];
      if ((size_t)(p - st) >= sizeof num) return FJ_FAIL;
      memcpy(num, st, (size_t)(p - st));
      num[p - st] = '\0';
      w = rw_double(dst, key, k, strtod(num, NULL));
    } else {
      if (nd > 19 || (nd == 19 && u > (neg ? 9223372036854775808ULL : 9223372036854775807ULL)) ||
          (nd == 19 && u < 1000000000000000000ULL))
        return FJ_FAIL; /* beyond int64 (or wrapped): the jansson path decides */
      w = rw_int(dst, key, k, neg ? (int64_t)(0 - u) : (int64_t)u);
    }
  } else {
    return FJ_FAIL;
  }
  return w == AS_OK ? AS_OK : FJ_FAIL;
}

/* The top-level object/array of json as a whole raw document (length, elements, NUL)
 * appended to raw. */
static int fast_asjson_raw(const char *json, size_t len, as_buf *raw, bool *is_array) {
  as_jsonr j = {json, json + len};
  as_buf tmp = AS_BUF_INIT;
  as_jsonr_ws(&j);
  if (j.p >= j.end || (*j.p != '{' && *j.p != '[')) return FJ_FAIL;
  bool arr = *j.p == '[';
  int rc;
  if (!arr && j.p + 1 < j.end) {
    /* a top-level object that is itself a wrapper is not a document */
    as_jsonr peek = {j.p + 1, j.end};
    as_jsonr_ws(&peek);
    if (peek.p + 1 < peek.end && peek.p[0] == '"' && peek.p[1] == '$') return FJ_FAIL;
  }
  j.p++;
  size_t at = raw->len;
  if (room(raw, 4)) return AS_ERR;
  raw->len += 4;
  rc = as_jsonr_members(&j, raw, arr, &tmp, 1);
  if (rc == AS_OK) {
    as_jsonr_ws(&j);
    if (j.p != j.end) rc = FJ_FAIL;
  }
  if (rc == AS_OK && rw_end(raw, at)) rc = FJ_FAIL;
  as_buf_free(&tmp);
  if (rc == AS_OK && is_array) *is_array = arr;
  return rc;
}

/* Members of the top-level object/array of json into out (initialised, empty). */
static int fast_asjson_doc(const char *json, size_t len, bson_t *out, bool *is_array) {
  as_buf raw = AS_BUF_INIT;
  int rc = fast_asjson_raw(json, len, &raw, is_array);
  if (rc == AS_OK) {
    uint8_t *p = bson_reserve_buffer(out, (uint32_t)raw.len);
    if (p) memcpy(p, raw.data, raw.len);
    else rc = FJ_FAIL;
  }
  as_buf_free(&raw);
  return rc;
}

/* One JSON value (any kind) appended as key; FJ_FAIL leaves dst unchanged. */
int as_jsonr_fast_value(bson_t *dst, const char *key, int kl, const char *json, size_t len) {
  as_jsonr j = {json, json + len};
  as_jsonr_ws(&j);
  if (j.p < j.end && (*j.p == '{' || *j.p == '[')) {
    as_buf raw = AS_BUF_INIT;
    bool arr = false;
    int rc = fast_asjson_raw(json, len, &raw, &arr);
    if (rc == AS_OK) {
      bson_t tmpdoc;
      bool ok = bson_init_static(&tmpdoc, raw.data, raw.len);
      ok = ok && (arr ? bson_append_array(dst, key, kl, &tmpdoc) : bson_append_document(dst, key, kl, &tmpdoc));
      rc = ok ? AS_OK : AS_EDATA;
    }
    as_buf_free(&raw);
    return rc;
  }
  return FJ_FAIL; /* scalars and wrappers: the jansson path */
}

int as_asjson_to_bson(const char *json, size_t len, bson_t *out, bool *is_array, as_error *err) {
  bson_init(out);
  if (fast_asjson_doc(json, len, out, is_array) == AS_OK) return AS_OK;
  bson_reinit(out);
  json_t *j = as_jsonr_load(json, len, err);
  if (!j) return AS_EINVAL;
  int rc = AS_OK;
  if (!json_is_object(j) && !json_is_array(j)) {
    rc = as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "AS-JSON must be an object or an array");
  } else if ((rc = json_to_bson_doc(out, j, 0)) != AS_OK) {
    as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "cannot convert JSON to BSON (too deep, NUL in key or too big)");
    bson_reinit(out);
  } else if (is_array) {
    *is_array = json_is_array(j);
  }
  json_decref(j);
  return rc;
}
