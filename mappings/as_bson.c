/* as_bson.c — MongoDB documents <-> typed rows, and AS-JSON (see as_bson.h).
 *
 * Decisions (also in as_bson.h):
 * - A document is walked once; top-level (and nested) field names are matched against the
 *   column path parts of the current depth. No allocation per field except the values.
 * - A missing field or null anywhere on a column's path gives NULL. Any other non-document
 *   in the middle of a path ("account" is a string, column "account.balance") is AS_EDATA:
 *   the value would otherwise be lost (the head is claimed by a column, so the catch-all
 *   does not gather it).
 * - The catch-all gathers every field no column path (or child-table field) leads to: the
 *   unmapped top-level fields, and the unmapped fields inside documents that columns descend
 *   into, kept nested ({"account":{"note":"x"}}) so as_row_to_doc can merge them back.
 * - as_row_to_doc writes mapped columns in schema order (columns sharing a parent document
 *   grouped at the first one), each document's catch-all fields after its mapped fields. A
 *   document whose fields are already in that order round-trips byte for byte.
 * - int64 values are written back as int32 when they fit (what the drivers do for small
 *   integers), so a NumberLong(5) in an int64 column comes back as int32 5.
 * - Performance (bench/bench_mongodb.c, mongo.transcode): documents are read with it_next, an
 *   inline equivalent of libbson 1.23's bson_iter_next; updates and AS-JSON -> BSON are
 *   written as raw BSON bytes (rw_*) instead of bson_append_* calls, then copied once;
 *   Decimal128 <-> text has exact fast paths for the common forms (libbson for the rest);
 *   string values and json texts of a reused row keep their heap blocks (whole usable size).
 *   Every fast path gives byte-identical results to the libbson calls it replaces.
 */
#include "as_bson.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>

#include <jansson.h>

#include "as_buf.h"

#define MAX_DEPTH 32

/* ================================================================ fast BSON reading
 *
 * it_next is an inline equivalent of libbson 1.23's bson_iter_next (_bson_iter_next_internal):
 * the same bounds checks and the same bson_iter_t fields, so every bson_iter_* accessor keeps
 * working on the iterator. The common types are decoded here; the rare ones (binary, regex,
 * dbPointer, code with scope, unknown types) go to bson_iter_next itself, which recomputes
 * everything from next_off. The IT_* accessors read a field of the type the caller checked. */

static inline uint32_t rd32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return BSON_UINT32_FROM_LE(v);
}

static inline uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return BSON_UINT64_FROM_LE(v);
}

static inline bool it_invalid(bson_iter_t *iter) {
  iter->raw = NULL;
  iter->len = 0;
  iter->next_off = 0;
  return false;
}

static inline bool it_next(bson_iter_t *iter) {
  const uint8_t *data = iter->raw;
  if (!data) return false;
  uint32_t len = iter->len, o, next;
  uint32_t start = iter->next_off;
  o = start + 1;
  while (o < len && data[o]) o++;
  if (o >= len) {
    iter->off = iter->type = start;
    iter->key = start + 1;
    iter->d1 = iter->d2 = iter->d3 = iter->d4 = 0;
    return it_invalid(iter);
  }
  o++; /* first value byte */
  switch (data[start]) {
    case BSON_TYPE_DATE_TIME:
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_INT64:
    case BSON_TYPE_TIMESTAMP: next = o + 8; break;
    case BSON_TYPE_INT32: next = o + 4; break;
    case BSON_TYPE_OID: next = o + 12; break;
    case BSON_TYPE_DECIMAL128: next = o + 16; break;
    case BSON_TYPE_MAXKEY:
    case BSON_TYPE_MINKEY:
    case BSON_TYPE_NULL:
    case BSON_TYPE_UNDEFINED: next = o; break;
    case BSON_TYPE_BOOL:
      if (o >= len || (data[o] != 0 && data[o] != 1)) return bson_iter_next(iter);
      next = o + 1;
      break;
    case BSON_TYPE_CODE:
    case BSON_TYPE_SYMBOL:
    case BSON_TYPE_UTF8: {
      if (o + 4 >= len) return bson_iter_next(iter);
      uint32_t l = rd32(data + o);
      if (l > len - (o + 4)) return bson_iter_next(iter);
      next = o + 4 + l;
      if (l == 0 || next >= len || data[o + 4 + l - 1] != '\0') return bson_iter_next(iter);
      iter->off = iter->type = start;
      iter->key = start + 1;
      iter->d1 = o;
      iter->d2 = o + 4;
      iter->d3 = iter->d4 = 0;
      iter->next_off = next;
      iter->err_off = 0;
      return true;
    }
    case BSON_TYPE_ARRAY:
    case BSON_TYPE_DOCUMENT: {
      if (o >= len - 4) return bson_iter_next(iter);
      uint32_t l = rd32(data + o);
      if (l > len || l > len - o) return bson_iter_next(iter);
      next = o + l;
      break;
    }
    default: return bson_iter_next(iter);
  }
  if (next >= len) return bson_iter_next(iter);
  iter->off = iter->type = start;
  iter->key = start + 1;
  iter->d1 = o;
  iter->d2 = iter->d3 = iter->d4 = 0;
  iter->next_off = next;
  iter->err_off = 0;
  return true;
}

/* bson_iter_recurse for a DOCUMENT or ARRAY iterator (type checked by the caller). */
static inline void it_recurse(const bson_iter_t *it, bson_iter_t *child) {
  memset(child, 0, sizeof *child);
  child->raw = it->raw + it->d1;
  child->len = rd32(it->raw + it->d1);
  child->next_off = 4;
}

#define IT_TYPE(it) ((bson_type_t)(it)->raw[(it)->type])
#define IT_KEY(it) ((const char *)(it)->raw + (it)->key)
#define IT_KEYLEN(it) ((size_t)((it)->d1 - (it)->key - 1))
#define IT_STRLEN(it) (rd32((it)->raw + (it)->d1) - 1) /* UTF8/SYMBOL/CODE */
#define IT_STR(it) ((const char *)(it)->raw + (it)->d2)
#define IT_I32(it) ((int32_t)rd32((it)->raw + (it)->d1))
#define IT_I64(it) ((int64_t)rd64((it)->raw + (it)->d1))
#define IT_BOOL(it) ((it)->raw[(it)->d1] != 0)

static inline double IT_DOUBLE(const bson_iter_t *it) {
  uint64_t u = rd64(it->raw + it->d1);
  double d;
  memcpy(&d, &u, 8);
  return d;
}

static inline void IT_DEC(const bson_iter_t *it, bson_decimal128_t *dec) {
  dec->low = rd64(it->raw + it->d1);
  dec->high = rd64(it->raw + it->d1 + 8);
}

/* ================================================================ AS-JSON writer */

static const char hexd[] = "0123456789abcdef";

/* 1 for the bytes a JSON string must escape (control characters, '"', '\\'). */
static const uint8_t json_esc[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

/* Room for n more bytes (and the NUL as_buf keeps room for), without a call when it fits. */
static inline int room(as_buf *b, size_t n) {
  if (b->len + n + 1 <= b->cap) return AS_OK;
  return as_buf_reserve(b, n);
}

static int put_str(as_buf *b, const char *s, size_t n) {
  if (room(b, n * 6 + 2) != AS_OK) return AS_ERR;
  uint8_t *o = b->data + b->len;
  const uint8_t *p = (const uint8_t *)s, *e = p + n;
  *o++ = '"';
  while (p < e) {
    /* 8 bytes at a time while none needs escaping (bytes < 0x20, '"', '\\') */
    while (e - p >= 8) {
      uint64_t x;
      memcpy(&x, p, 8);
      const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
      uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
      uint64_t hit = ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs);
      if (hit & high) break;
      memcpy(o, &x, 8);
      o += 8;
      p += 8;
    }
    const uint8_t *st = p;
    while (p < e && !json_esc[*p]) p++;
    size_t run = (size_t)(p - st);
    if (run > 16) {
      memcpy(o, st, run);
      o += run;
    } else {
      while (st < p) *o++ = *st++;
    }
    if (p >= e) break;
    unsigned char c = *p++;
    *o++ = '\\';
    switch (c) {
      case '"': *o++ = '"'; break;
      case '\\': *o++ = '\\'; break;
      case '\n': *o++ = 'n'; break;
      case '\r': *o++ = 'r'; break;
      case '\t': *o++ = 't'; break;
      case '\b': *o++ = 'b'; break;
      case '\f': *o++ = 'f'; break;
      default:
        *o++ = 'u';
        *o++ = '0';
        *o++ = '0';
        *o++ = (uint8_t)hexd[c >> 4];
        *o++ = (uint8_t)hexd[c & 15];
    }
  }
  *o++ = '"';
  b->len = (size_t)(o - b->data);
  return AS_OK;
}

/* Inline fast paths of as_buf_putc/as_buf_append for the writer (the common case needs no
 * call into as_buf.c). */
static inline int bput(as_buf *b, uint8_t c) {
  if (b->len + 2 <= b->cap) {
    b->data[b->len++] = c;
    return AS_OK;
  }
  return as_buf_putc(b, c);
}

static inline int bappend(as_buf *b, const void *p, size_t n) {
  if (b->len + n + 1 <= b->cap) {
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return AS_OK;
  }
  return as_buf_append(b, p, n);
}

static inline int put_lit(as_buf *b, const char *s) { return bappend(b, s, strlen(s)); }

static int put_i64(as_buf *b, int64_t v) {
  char tmp[24];
  int n = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (room(b, 21) != AS_OK) return AS_ERR;
  char *o = (char *)b->data + b->len;
  if (v < 0) *o++ = '-';
  while (n) *o++ = tmp[--n];
  b->len = (size_t)(o - (char *)b->data);
  return AS_OK;
}

static int put_double(as_buf *b, double d) {
  if (isnan(d)) return put_lit(b, "{\"$numberDouble\":\"NaN\"}");
  if (isinf(d)) return put_lit(b, d > 0 ? "{\"$numberDouble\":\"Infinity\"}" : "{\"$numberDouble\":\"-Infinity\"}");
  if (d == 0 && signbit(d)) return put_lit(b, "{\"$numberDouble\":\"-0.0\"}");
  char tmp[40];
  size_t n = as_double_format(d, tmp);
  if (!memchr(tmp, '.', n) && !memchr(tmp, 'e', n)) {
    tmp[n++] = '.';
    tmp[n++] = '0';
  }
  return as_buf_append(b, tmp, n);
}

static int put_oid(as_buf *b, const bson_oid_t *oid) {
  if (room(b, 34) != AS_OK) return AS_ERR;
  uint8_t *o = b->data + b->len;
  memcpy(o, "{\"$oid\":\"", 9);
  o += 9;
  for (int i = 0; i < 12; i++) {
    *o++ = (uint8_t)hexd[oid->bytes[i] >> 4];
    *o++ = (uint8_t)hexd[oid->bytes[i] & 15];
  }
  *o++ = '"';
  *o++ = '}';
  b->len = (size_t)(o - b->data);
  return AS_OK;
}

/* Decimal128 -> text, exactly as bson_decimal128_to_string writes it (the decimal128 string
 * conversion of the IEEE 754-2008 BID encoding): the common case, a coefficient below 2^64
 * printed without exponent (exponent <= 0, adjusted exponent >= -6), is done here; the rest
 * (NaN, infinities, big coefficients, scientific notation) by libbson. Returns the length. */
static size_t dec_to_str(const bson_decimal128_t *dec, char out[BSON_DECIMAL128_STRING]) {
  uint64_t hi = dec->high;
  if (((hi >> 61) & 3) != 3 && (hi & 0x1ffffffffffffULL) == 0) {
    int32_t exp = (int32_t)((hi >> 49) & 0x3fff) - 6176;
    if (exp <= 0) {
      char dig[24]; /* reversed */
      int nd = 0;
      uint64_t u = dec->low;
      do {
        dig[nd++] = (char)('0' + u % 10);
        u /= 10;
      } while (u);
      if (nd - 1 + exp >= -6) {
        char *o = out;
        if (hi >> 63) *o++ = '-';
        int radix = nd + exp; /* digits before the point */
        if (exp == 0) {
          while (nd) *o++ = dig[--nd];
        } else if (radix > 0) {
          for (int k = 0; k < radix; k++) *o++ = dig[--nd];
          *o++ = '.';
          while (nd) *o++ = dig[--nd];
        } else {
          *o++ = '0';
          *o++ = '.';
          for (; radix < 0; radix++) *o++ = '0';
          while (nd) *o++ = dig[--nd];
        }
        *o = '\0';
        return (size_t)(o - out);
      }
    }
  }
  bson_decimal128_to_string(dec, out);
  return strlen(out);
}

static int write_doc(const bson_iter_t *parent_or_null, const bson_t *doc, bool is_array,
                     as_buf *b, int depth);

static int write_value(const bson_iter_t *it, as_buf *b, int depth) {
  switch (IT_TYPE(it)) {
    case BSON_TYPE_DOUBLE: return put_double(b, IT_DOUBLE(it));
    case BSON_TYPE_UTF8: return put_str(b, IT_STR(it), IT_STRLEN(it));
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: return write_doc(it, NULL, IT_TYPE(it) == BSON_TYPE_ARRAY, b, depth + 1);
    case BSON_TYPE_BINARY: {
      bson_subtype_t st;
      uint32_t n;
      const uint8_t *p;
      bson_iter_binary(it, &st, &n, &p);
      if (put_lit(b, "{\"$binary\":{\"base64\":\"") || as_base64_encode(p, n, b) ||
          put_lit(b, "\",\"subType\":\"") || bput(b, (uint8_t)hexd[(st >> 4) & 15]) ||
          bput(b, (uint8_t)hexd[st & 15]) || put_lit(b, "\"}}"))
        return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_UNDEFINED: return put_lit(b, "{\"$undefined\":true}");
    case BSON_TYPE_OID: return put_oid(b, (const bson_oid_t *)(it->raw + it->d1));
    case BSON_TYPE_BOOL: return IT_BOOL(it) ? put_lit(b, "true") : put_lit(b, "false");
    case BSON_TYPE_DATE_TIME:
      if (put_lit(b, "{\"$date\":{\"$numberLong\":\"") || put_i64(b, IT_I64(it)) ||
          put_lit(b, "\"}}"))
        return AS_ERR;
      return AS_OK;
    case BSON_TYPE_NULL: return put_lit(b, "null");
    case BSON_TYPE_REGEX: {
      const char *opts;
      const char *re = bson_iter_regex(it, &opts);
      if (put_lit(b, "{\"$regularExpression\":{\"pattern\":") || put_str(b, re, strlen(re)) ||
          put_lit(b, ",\"options\":") || put_str(b, opts, strlen(opts)) || put_lit(b, "}}"))
        return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_DBPOINTER: {
      uint32_t n;
      const char *coll;
      const bson_oid_t *oid;
      bson_iter_dbpointer(it, &n, &coll, &oid);
      if (put_lit(b, "{\"$dbPointer\":{\"$ref\":") || put_str(b, coll, n) || put_lit(b, ",\"$id\":") ||
          put_oid(b, oid) || put_lit(b, "}}"))
        return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_CODE: {
      uint32_t n;
      const char *code = bson_iter_code(it, &n);
      if (put_lit(b, "{\"$code\":") || put_str(b, code, n) || put_lit(b, "}")) return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_SYMBOL: {
      uint32_t n;
      const char *sym = bson_iter_symbol(it, &n);
      if (put_lit(b, "{\"$symbol\":") || put_str(b, sym, n) || put_lit(b, "}")) return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_CODEWSCOPE: {
      uint32_t n, sn;
      const uint8_t *sp;
      const char *code = bson_iter_codewscope(it, &n, &sn, &sp);
      bson_t scope;
      if (!bson_init_static(&scope, sp, sn)) return AS_EINVAL;
      if (put_lit(b, "{\"$code\":") || put_str(b, code, n) || put_lit(b, ",\"$scope\":") ||
          write_doc(NULL, &scope, false, b, depth + 1) || put_lit(b, "}"))
        return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_INT32: return put_i64(b, IT_I32(it));
    case BSON_TYPE_TIMESTAMP: {
      uint32_t t, i;
      bson_iter_timestamp(it, &t, &i);
      if (put_lit(b, "{\"$timestamp\":{\"t\":") || put_i64(b, t) || put_lit(b, ",\"i\":") ||
          put_i64(b, i) || put_lit(b, "}}"))
        return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_INT64: {
      int64_t v = IT_I64(it);
      if (v < INT32_MIN || v > INT32_MAX) return put_i64(b, v);
      if (put_lit(b, "{\"$numberLong\":\"") || put_i64(b, v) || put_lit(b, "\"}")) return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_DECIMAL128: {
      bson_decimal128_t dec;
      char s[BSON_DECIMAL128_STRING];
      IT_DEC(it, &dec);
      size_t n = dec_to_str(&dec, s);
      if (put_lit(b, "{\"$numberDecimal\":\"") || bappend(b, s, n) || put_lit(b, "\"}")) return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_MAXKEY: return put_lit(b, "{\"$maxKey\":1}");
    case BSON_TYPE_MINKEY: return put_lit(b, "{\"$minKey\":1}");
    default: return AS_EINVAL;
  }
}

static int write_doc(const bson_iter_t *parent, const bson_t *doc, bool is_array, as_buf *b,
                     int depth) {
  bson_iter_t it;
  if (depth > 200) return AS_EINVAL;
  if (parent) it_recurse(parent, &it);
  else if (!bson_iter_init(&it, doc)) return AS_EINVAL;
  if (bput(b, is_array ? '[' : '{') != AS_OK) return AS_ERR;
  bool first = true;
  while (it_next(&it)) {
    if (!first && bput(b, ',') != AS_OK) return AS_ERR;
    first = false;
    if (!is_array) {
      if (put_str(b, IT_KEY(&it), IT_KEYLEN(&it)) || bput(b, ':')) return AS_ERR;
    }
    int rc = write_value(&it, b, depth);
    if (rc != AS_OK) return rc;
  }
  return bput(b, is_array ? ']' : '}');
}

int as_bson_to_asjson(const bson_t *doc, bool is_array, as_buf *out, as_error *err) {
  int rc = write_doc(NULL, doc, is_array, out, 0);
  if (rc != AS_OK)
    return as_error_set(err, AS_DOM_CODEC, rc, rc == AS_ERR ? "out of memory" : "invalid BSON document");
  return AS_OK;
}

int as_bson_value_to_asjson(const bson_iter_t *it, as_buf *out, as_error *err) {
  int rc = write_value(it, out, 0);
  if (rc != AS_OK)
    return as_error_set(err, AS_DOM_CODEC, rc, rc == AS_ERR ? "out of memory" : "invalid BSON value");
  return AS_OK;
}

/* ================================================================ AS-JSON reader */

static int json_to_bson_value(bson_t *dst, const char *key, int keylen, const json_t *j, int depth);

static int json_to_bson_doc(bson_t *dst, const json_t *j, int depth) {
  if (depth > 200) return AS_EINVAL;
  if (json_is_array(j)) {
    char kb[16];
    const char *k;
    for (size_t i = 0; i < json_array_size(j); i++) {
      size_t kl = bson_uint32_to_string((uint32_t)i, &k, kb, sizeof kb);
      int rc = json_to_bson_value(dst, k, (int)kl, json_array_get(j, i), depth);
      if (rc != AS_OK) return rc;
    }
    return AS_OK;
  }
  const char *k;
  size_t kl;
  json_t *v;
  json_object_keylen_foreach((json_t *)j, k, kl, v) {
    if (memchr(k, '\0', kl)) return AS_EINVAL; /* BSON keys cannot hold NUL */
    int rc = json_to_bson_value(dst, k, (int)kl, v, depth);
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

static const char *obj_str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static bool parse_i64(const char *s, int64_t *out) {
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
    if (!parse_i64(s, &x)) return 0;
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
    if (json_is_object(v) && json_object_size(v) == 1 && parse_i64(obj_str(v, "$numberLong"), &ms))
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

static int json_to_bson_value(bson_t *dst, const char *key, int kl, const json_t *j, int depth) {
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

static json_t *load_asjson(const char *json, size_t len, as_error *err) {
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

typedef struct fj {
  const char *p, *end;
} fj;

#define FJ_FAIL AS_EINVAL

static void fj_ws(fj *j) {
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
static int fj_string(fj *j, const char **s, size_t *n, as_buf *tmp) {
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
static int fj_skip(fj *j) {
  int depth = 0;
  do {
    fj_ws(j);
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

/* ---------------------------------------------------------------- raw BSON writer
 *
 * Elements written straight into an as_buf, byte for byte what the bson_append_* calls of
 * libbson write (little-endian lengths and numbers, NUL-terminated keys); a document is a
 * 4-byte length patched when it ends. Much cheaper than bson_append_*, which copies each part
 * through a varargs helper. */

static inline void put_le32(uint8_t *p, uint32_t v) {
  v = BSON_UINT32_TO_LE(v);
  memcpy(p, &v, 4);
}

static inline void put_le64(uint8_t *p, uint64_t v) {
  v = BSON_UINT64_TO_LE(v);
  memcpy(p, &v, 8);
}

/* Type byte and key, with room for `extra` more bytes after them. */
static inline int rw_head(as_buf *b, uint8_t type, const char *key, size_t kl, size_t extra) {
  if (room(b, kl + 2 + extra) != AS_OK) return AS_ERR;
  uint8_t *o = b->data + b->len;
  *o++ = type;
  memcpy(o, key, kl);
  o[kl] = '\0';
  b->len += kl + 2;
  return AS_OK;
}

static inline int rw_i32(as_buf *b, const char *key, size_t kl, int32_t v) {
  if (rw_head(b, BSON_TYPE_INT32, key, kl, 4)) return AS_ERR;
  put_le32(b->data + b->len, (uint32_t)v);
  b->len += 4;
  return AS_OK;
}

static inline int rw_64(as_buf *b, uint8_t type, const char *key, size_t kl, uint64_t v) {
  if (rw_head(b, type, key, kl, 8)) return AS_ERR;
  put_le64(b->data + b->len, v);
  b->len += 8;
  return AS_OK;
}

static inline int rw_double(as_buf *b, const char *key, size_t kl, double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return rw_64(b, BSON_TYPE_DOUBLE, key, kl, u);
}

/* int64 as bson_append_int32 when it fits, else int64 (as the drivers write small integers) */
static inline int rw_int(as_buf *b, const char *key, size_t kl, int64_t v) {
  if (v >= INT32_MIN && v <= INT32_MAX) return rw_i32(b, key, kl, (int32_t)v);
  return rw_64(b, BSON_TYPE_INT64, key, kl, (uint64_t)v);
}

static inline int rw_byte(as_buf *b, uint8_t type, const char *key, size_t kl, int byte) {
  if (rw_head(b, type, key, kl, 1)) return AS_ERR;
  if (byte >= 0) b->data[b->len++] = (uint8_t)byte;
  return AS_OK;
}

/* utf8, symbol, code: length with the NUL, bytes, NUL */
static inline int rw_str(as_buf *b, uint8_t type, const char *key, size_t kl, const char *s, size_t n) {
  if (n >= BSON_MAX_SIZE || rw_head(b, type, key, kl, n + 5)) return AS_ERR;
  uint8_t *o = b->data + b->len;
  put_le32(o, (uint32_t)n + 1);
  if (n) memcpy(o + 4, s, n);
  o[4 + n] = '\0';
  b->len += n + 5;
  return AS_OK;
}

static inline int rw_bytes(as_buf *b, uint8_t type, const char *key, size_t kl, const void *p, size_t n) {
  if (rw_head(b, type, key, kl, n)) return AS_ERR;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return AS_OK;
}

static inline int rw_binary(as_buf *b, const char *key, size_t kl, uint8_t subtype, const void *p, size_t n) {
  if (n >= BSON_MAX_SIZE || rw_head(b, BSON_TYPE_BINARY, key, kl, n + 5)) return AS_ERR;
  uint8_t *o = b->data + b->len;
  put_le32(o, (uint32_t)n);
  o[4] = subtype;
  if (n) memcpy(o + 5, p, n);
  b->len += n + 5;
  return AS_OK;
}

/* Starts an embedded document or array; *at receives the offset of its length. */
static inline int rw_begin(as_buf *b, uint8_t type, const char *key, size_t kl, size_t *at) {
  if (rw_head(b, type, key, kl, 4)) return AS_ERR;
  *at = b->len;
  b->len += 4;
  return AS_OK;
}

static inline int rw_end(as_buf *b, size_t at) {
  if (room(b, 1)) return AS_ERR;
  b->data[b->len++] = '\0';
  if (b->len - at > BSON_MAX_SIZE) return AS_ERR;
  put_le32(b->data + at, (uint32_t)(b->len - at));
  return AS_OK;
}

/* The elements of a document (its bytes between the length and the final NUL). */
static inline int rw_elements(as_buf *b, const bson_t *doc) {
  const uint8_t *d = bson_get_data(doc);
  return doc->len >= 5 ? bappend(b, d + 4, doc->len - 5) : AS_OK;
}

/* Decimal text -> Decimal128 as bson_decimal128_from_string_w_len: plain "[-]digits[.digits]"
 * with at most 19 digits here (coefficient = the digits, exponent = -fraction digits, sign bit
 * for '-', also for zero), everything else by libbson. */
static bool dec_from_str(const char *s, size_t n, bson_decimal128_t *dec) {
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

static int fj_value(fj *j, as_buf *dst, const char *key, int kl, as_buf *tmp, int depth);

/* Members of an object or array (j->p just after '{' or '['). */
static int fj_members(fj *j, as_buf *dst, bool arr, as_buf *tmp, int depth) {
  char close = arr ? ']' : '}';
  fj_ws(j);
  if (j->p < j->end && *j->p == close) {
    j->p++;
    return AS_OK;
  }
  char kb[16];
  char keybuf[256];
  for (uint32_t idx = 0;; idx++) {
    const char *key;
    size_t kl;
    fj_ws(j);
    if (arr) {
      kl = idx_key(idx, kb);
      key = kb;
    } else {
      if (j->p >= j->end || *j->p != '"') return FJ_FAIL;
      int rc = fj_string(j, &key, &kl, tmp);
      if (rc) return rc;
      if (memchr(key, '\0', kl)) return FJ_FAIL;
      if (key == (const char *)tmp->data) { /* the value may reuse tmp */
        if (kl >= sizeof keybuf) return FJ_FAIL;
        memcpy(keybuf, key, kl);
        key = keybuf;
      }
      fj_ws(j);
      if (j->p >= j->end || *j->p != ':') return FJ_FAIL;
      j->p++;
    }
    int rc = fj_value(j, dst, key, (int)kl, tmp, depth);
    if (rc) return rc;
    fj_ws(j);
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
static bool fj_single_string(fj *j, const char **s, size_t *n, as_buf *tmp) {
  fj_ws(j);
  if (j->p >= j->end || *j->p != ':') return false;
  j->p++;
  fj_ws(j);
  if (j->p >= j->end || *j->p != '"' || fj_string(j, s, n, tmp)) return false;
  fj_ws(j);
  if (j->p >= j->end || *j->p != '}') return false;
  j->p++;
  return true;
}

/* Decimal integer text as parse_i64 (strtoll: optional sign, digits, no overflow), without
 * leading blanks (never produced by the writer; such text goes the parse_i64 way). */
static bool fast_i64(const char *s, int64_t *out) {
  const char *p = s;
  bool neg = *p == '-';
  if (*p == '-' || *p == '+') p++;
  if (*p < '0' || *p > '9') return parse_i64(s, out);
  uint64_t u = 0;
  int nd = 0;
  while (*p >= '0' && *p <= '9') {
    u = u * 10 + (uint64_t)(*p++ - '0');
    if (++nd > 18) return parse_i64(s, out);
  }
  if (*p) return false;
  *out = neg ? -(int64_t)u : (int64_t)u;
  return true;
}

/* The common wrappers; returns 1 appended, 0 not handled here (j->p unspecified), <0 error. */
static int fj_wrapper(fj *j, as_buf *dst, const char *key, int kl, const char *wk, size_t wl, as_buf *tmp) {
  const char *s;
  size_t n;
  char num[64];
#define IS(lit) (wl == sizeof(lit) - 1 && memcmp(wk, lit, wl) == 0)
  if (IS("$date")) {
    fj_ws(j);
    if (j->p >= j->end || *j->p != ':') return 0;
    j->p++;
    fj_ws(j);
    if (j->p >= j->end || *j->p != '{') return 0;
    j->p++;
    fj_ws(j);
    const char *k2;
    size_t k2l;
    if (j->p >= j->end || *j->p != '"' || fj_string(j, &k2, &k2l, tmp)) return 0;
    if (k2l != 11 || memcmp(k2, "$numberLong", 11) != 0) return 0;
    if (!fj_single_string(j, &s, &n, tmp) || n == 0 || n >= sizeof num) return 0;
    memcpy(num, s, n);
    num[n] = '\0';
    int64_t ms;
    if (!fast_i64(num, &ms)) return 0;
    fj_ws(j);
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
    if (!dec_from_str(num, n, &dec)) return 0;
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

static int fj_object(fj *j, as_buf *dst, const char *key, int kl, as_buf *tmp, int depth) {
  const char *start = j->p; /* at '{' */
  j->p++;
  fj_ws(j);
  if (j->p + 1 < j->end && j->p[0] == '"' && j->p[1] == '$') {
    const char *wk;
    size_t wl;
    size_t mark = dst->len;
    int rc = fj_string(j, &wk, &wl, tmp);
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
    if ((rc = fj_skip(j)) != AS_OK) return rc;
    json_error_t je;
    json_t *v = json_loadb(start, (size_t)(j->p - start), JSON_ALLOW_NUL, &je);
    if (!v) return FJ_FAIL;
    bson_t holder = BSON_INITIALIZER;
    rc = json_to_bson_value(&holder, key, kl, v, depth);
    if (rc == AS_OK) rc = rw_elements(dst, &holder);
    bson_destroy(&holder);
    json_decref(v);
    return rc;
  }
  size_t at;
  if (rw_begin(dst, BSON_TYPE_DOCUMENT, key, (size_t)kl, &at)) return FJ_FAIL;
  int rc = fj_members(j, dst, false, tmp, depth + 1);
  if (rc == AS_OK && rw_end(dst, at)) rc = FJ_FAIL;
  return rc;
}

static int fj_value(fj *j, as_buf *dst, const char *key, int kl, as_buf *tmp, int depth) {
  if (depth > 200) return FJ_FAIL;
  fj_ws(j);
  if (j->p >= j->end) return FJ_FAIL;
  char c = *j->p;
  size_t k = (size_t)kl;
  int w;
  if (c == '{') return fj_object(j, dst, key, kl, tmp, depth);
  if (c == '[') {
    size_t at;
    j->p++;
    if (rw_begin(dst, BSON_TYPE_ARRAY, key, k, &at)) return FJ_FAIL;
    int rc = fj_members(j, dst, true, tmp, depth + 1);
    if (rc == AS_OK && rw_end(dst, at)) rc = FJ_FAIL;
    return rc;
  }
  if (c == '"') {
    const char *s;
    size_t n;
    int rc = fj_string(j, &s, &n, tmp);
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
  fj j = {json, json + len};
  as_buf tmp = AS_BUF_INIT;
  fj_ws(&j);
  if (j.p >= j.end || (*j.p != '{' && *j.p != '[')) return FJ_FAIL;
  bool arr = *j.p == '[';
  int rc;
  if (!arr && j.p + 1 < j.end) {
    /* a top-level object that is itself a wrapper is not a document */
    fj peek = {j.p + 1, j.end};
    fj_ws(&peek);
    if (peek.p + 1 < peek.end && peek.p[0] == '"' && peek.p[1] == '$') return FJ_FAIL;
  }
  j.p++;
  size_t at = raw->len;
  if (room(raw, 4)) return AS_ERR;
  raw->len += 4;
  rc = fj_members(&j, raw, arr, &tmp, 1);
  if (rc == AS_OK) {
    fj_ws(&j);
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
static int fast_asjson_value(bson_t *dst, const char *key, int kl, const char *json, size_t len) {
  fj j = {json, json + len};
  fj_ws(&j);
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
  json_t *j = load_asjson(json, len, err);
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

/* ================================================================ value conversions */

static const char *bson_type_label(bson_type_t t) {
  switch (t) {
    case BSON_TYPE_DOUBLE: return "double";
    case BSON_TYPE_UTF8: return "string";
    case BSON_TYPE_DOCUMENT: return "document";
    case BSON_TYPE_ARRAY: return "array";
    case BSON_TYPE_BINARY: return "binary";
    case BSON_TYPE_UNDEFINED: return "undefined";
    case BSON_TYPE_OID: return "objectId";
    case BSON_TYPE_BOOL: return "bool";
    case BSON_TYPE_DATE_TIME: return "date";
    case BSON_TYPE_NULL: return "null";
    case BSON_TYPE_REGEX: return "regex";
    case BSON_TYPE_DBPOINTER: return "dbPointer";
    case BSON_TYPE_CODE: return "javascript";
    case BSON_TYPE_SYMBOL: return "symbol";
    case BSON_TYPE_CODEWSCOPE: return "javascriptWithScope";
    case BSON_TYPE_INT32: return "int32";
    case BSON_TYPE_TIMESTAMP: return "timestamp";
    case BSON_TYPE_INT64: return "int64";
    case BSON_TYPE_DECIMAL128: return "decimal128";
    case BSON_TYPE_MAXKEY: return "maxKey";
    case BSON_TYPE_MINKEY: return "minKey";
    default: return "unknown";
  }
}

/* "string \"abc\"" — type and AS-JSON of the value (plain digits for int64), truncated. */
static void describe(const bson_iter_t *it, char *out, size_t cap) {
  as_buf b = AS_BUF_INIT;
  if (bson_iter_type(it) == BSON_TYPE_INT64) put_i64(&b, bson_iter_int64(it));
  else if (write_value(it, &b, 0) != AS_OK) as_buf_append_str(&b, "?");
  const char *txt = as_buf_cstr(&b);
  if (b.len > 100) snprintf(out, cap, "%s %.100s...", bson_type_label(bson_iter_type(it)), txt);
  else snprintf(out, cap, "%s %s", bson_type_label(bson_iter_type(it)), txt ? txt : "?");
  as_buf_free(&b);
}

#define WHY_MAX 512

static int cannot_store(const as_column *c, const bson_iter_t *it, const char *reason, char *why) {
  char d[160];
  describe(it, d, sizeof d);
  snprintf(why, WHY_MAX, "cannot store %s in %s column \"%s\"%s%s", d, as_type_name(c->type), c->name,
           reason ? ": " : "", reason ? reason : "");
  return AS_EDATA;
}

/* Stores a string value, reusing out's buffer when it is large enough (rows are reused
 * document after document, so steady state needs no allocation). */
/* Bytes a string value's buffer can hold (with its NUL): the whole heap block where known. */
static inline size_t str_cap(const as_value *v) {
#ifdef __GLIBC__
  size_t c = v->u.s.ptr ? malloc_usable_size(v->u.s.ptr) : 0;
  return c > v->u.s.len ? c : v->u.s.len + 1;
#else
  return v->u.s.len + 1;
#endif
}

static int set_str(as_value *out, as_type t, const char *s, size_t n, char *why) {
  bool strtype = out->type == AS_T_TEXT || out->type == AS_T_DECIMAL || out->type == AS_T_JSON ||
                 out->type == AS_T_BYTES;
  if (strtype && out->u.s.ptr && str_cap(out) > n) {
    if (n) memmove(out->u.s.ptr, s, n);
    out->u.s.ptr[n] = '\0';
    out->u.s.len = n;
    out->type = t;
    return AS_OK;
  }
  if (as_value_set_str(out, t, s, n) != AS_OK) {
    snprintf(why, WHY_MAX, "out of memory");
    return AS_ERR;
  }
  return AS_OK;
}

/* An as_buf over out's string buffer (empty), to write into it directly. */
static as_buf buf_over(as_value *out) {
  as_buf b = AS_BUF_INIT;
  if ((out->type == AS_T_TEXT || out->type == AS_T_DECIMAL || out->type == AS_T_JSON ||
       out->type == AS_T_BYTES) && out->u.s.ptr) {
    b.data = (uint8_t *)out->u.s.ptr;
    b.cap = str_cap(out); /* the whole heap block: usually larger than the text */
    out->u.s.ptr = NULL;
    out->u.s.len = 0;
  }
  out->type = AS_T_NULL;
  return b;
}

/* The conversion table of as_bson.h. On failure `why` holds the message tail. */
static int convert(const as_column *c, const bson_iter_t *it, as_value *out, char *why) {
  bson_type_t bt = IT_TYPE(it);
  if (bt == BSON_TYPE_NULL) {
    as_value_clear(out);
    return AS_OK;
  }
  switch (c->type) {
    case AS_T_INT64:
      if (bt == BSON_TYPE_INT32) { as_value_set_int64(out, IT_I32(it)); return AS_OK; }
      if (bt == BSON_TYPE_INT64) { as_value_set_int64(out, IT_I64(it)); return AS_OK; }
      if (bt == BSON_TYPE_DOUBLE) {
        double d = IT_DOUBLE(it);
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
          return cannot_store(c, it, "out of int64 range", why);
        if (d != floor(d)) return cannot_store(c, it, "not an integer", why);
        as_value_set_int64(out, (int64_t)d);
        return AS_OK;
      }
      if (bt == BSON_TYPE_DECIMAL128) {
        bson_decimal128_t dec;
        char s[BSON_DECIMAL128_STRING];
        IT_DEC(it, &dec);
        size_t sl = dec_to_str(&dec, s);
        as_buf nb = AS_BUF_INIT;
        int64_t v = 0;
        bool okn = as_decimal_normalize(s, sl, &nb) == AS_OK && as_buf_cstr(&nb);
        const char *ns = okn ? (const char *)nb.data : "";
        bool integral = okn && !strchr(ns, '.') && !strchr(ns, 'N') && !strchr(ns, 'I');
        bool fits = integral && parse_i64(ns, &v);
        as_buf_free(&nb);
        if (!integral) return cannot_store(c, it, "not an integer", why);
        if (!fits) return cannot_store(c, it, "out of int64 range", why);
        as_value_set_int64(out, v);
        return AS_OK;
      }
      break;
    case AS_T_DOUBLE:
      if (bt == BSON_TYPE_DOUBLE) { as_value_set_double(out, IT_DOUBLE(it)); return AS_OK; }
      if (bt == BSON_TYPE_INT32) { as_value_set_double(out, IT_I32(it)); return AS_OK; }
      if (bt == BSON_TYPE_INT64) {
        int64_t i = IT_I64(it);
        double d = (double)i;
        if (d >= 9223372036854775808.0 || (int64_t)d != i)
          return cannot_store(c, it, "not exactly representable as a double", why);
        as_value_set_double(out, d);
        return AS_OK;
      }
      break;
    case AS_T_DECIMAL: {
      char s[BSON_DECIMAL128_STRING + 8];
      size_t sl;
      if (bt == BSON_TYPE_DECIMAL128) {
        bson_decimal128_t dec;
        IT_DEC(it, &dec);
        sl = dec_to_str(&dec, s);
      } else if (bt == BSON_TYPE_INT32) {
        sl = (size_t)snprintf(s, sizeof s, "%" PRId32, IT_I32(it));
      } else if (bt == BSON_TYPE_INT64) {
        sl = (size_t)snprintf(s, sizeof s, "%" PRId64, IT_I64(it));
      } else if (bt == BSON_TYPE_DOUBLE) {
        sl = as_double_format(IT_DOUBLE(it), s);
      } else {
        break;
      }
      return set_str(out, AS_T_DECIMAL, s, sl, why);
    }
    case AS_T_TEXT:
      if (bt == BSON_TYPE_UTF8 || bt == BSON_TYPE_SYMBOL) {
        return set_str(out, AS_T_TEXT, IT_STR(it), IT_STRLEN(it), why);
      }
      break;
    case AS_T_BOOL:
      if (bt == BSON_TYPE_BOOL) { as_value_set_bool(out, IT_BOOL(it)); return AS_OK; }
      break;
    case AS_T_BYTES:
      if (bt == BSON_TYPE_BINARY) {
        bson_subtype_t st;
        uint32_t n;
        const uint8_t *p;
        bson_iter_binary(it, &st, &n, &p);
        if (st != BSON_SUBTYPE_BINARY && st != BSON_SUBTYPE_BINARY_DEPRECATED && st != BSON_SUBTYPE_USER)
          return cannot_store(c, it, "only binary subtypes 0, 2 and 0x80 are bytes", why);
        return set_str(out, AS_T_BYTES, (const char *)p, n, why);
      }
      break;
    case AS_T_UUID:
      if (bt == BSON_TYPE_BINARY) {
        bson_subtype_t st;
        uint32_t n;
        const uint8_t *p;
        bson_iter_binary(it, &st, &n, &p);
        if (st != BSON_SUBTYPE_UUID && st != BSON_SUBTYPE_UUID_DEPRECATED)
          return cannot_store(c, it, "only binary subtypes 4 and 3 are UUIDs", why);
        if (n != 16) return cannot_store(c, it, "a UUID has 16 bytes", why);
        as_value_set_uuid(out, p);
        return AS_OK;
      }
      if (bt == BSON_TYPE_UTF8) {
        uint32_t n;
        const char *s = bson_iter_utf8(it, &n);
        as_value v = AS_VALUE_NULL;
        if (as_value_from_text(AS_T_UUID, s, n, &v, NULL) != AS_OK)
          return cannot_store(c, it, "not a UUID", why);
        as_value_move(out, &v);
        return AS_OK;
      }
      break;
    case AS_T_OBJECTID:
      if (bt == BSON_TYPE_OID) { as_value_set_oid(out, it->raw + it->d1); return AS_OK; }
      break;
    case AS_T_TIMESTAMP:
      if (bt == BSON_TYPE_DATE_TIME) {
        int64_t ms = IT_I64(it);
        if (ms < AS_TS_MIN_US / 1000 || ms > AS_TS_MAX_US / 1000)
          return cannot_store(c, it, "outside years 0001..9999", why);
        as_value_set_timestamp(out, ms * 1000);
        return AS_OK;
      }
      if (bt == BSON_TYPE_TIMESTAMP) {
        uint32_t t, i;
        bson_iter_timestamp(it, &t, &i);
        as_value_set_timestamp(out, (int64_t)t * 1000000);
        return AS_OK;
      }
      break;
    case AS_T_DATE:
      if (bt == BSON_TYPE_DATE_TIME) {
        int64_t ms = bson_iter_date_time(it);
        if (ms % 86400000 != 0) return cannot_store(c, it, "has a time part", why);
        int64_t days = ms / 86400000;
        if (days < AS_DATE_MIN_DAYS || days > AS_DATE_MAX_DAYS)
          return cannot_store(c, it, "outside years 0001..9999", why);
        as_value_set_date(out, (int32_t)days);
        return AS_OK;
      }
      break;
    case AS_T_JSON:
      if (bt == BSON_TYPE_DOCUMENT || bt == BSON_TYPE_ARRAY) {
        as_buf b = buf_over(out);
        int rc = write_doc(it, NULL, bt == BSON_TYPE_ARRAY, &b, 0);
        if (rc != AS_OK || !as_buf_cstr(&b)) {
          as_buf_free(&b);
          return cannot_store(c, it, "invalid BSON", why);
        }
        out->type = AS_T_JSON;
        out->u.s.len = b.len;
        out->u.s.ptr = (char *)b.data;
        return AS_OK;
      }
      break;
    default: break;
  }
  return cannot_store(c, it, NULL, why);
}

int as_bson_iter_to_value(const as_schema *s, const as_column *c, const bson_iter_t *it,
                          as_value *out, as_error *err) {
  char why[WHY_MAX];
  as_value v = AS_VALUE_NULL;
  int rc = convert(c, it, &v, why);
  if (rc != AS_OK)
    return as_error_set(err, AS_DOM_MAPPING, rc, "mapping %s, field \"%s\": %s", s ? s->name : "?",
                        c->field ? c->field : c->name, why);
  *out = v; /* overwritten, not freed */
  return AS_OK;
}

/* ================================================================ document -> row */

/* Index list entry: a column (>= 0) or a child-table field (-1 - child index). */
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

/* Opens the catch-all containers down to `depth` (lazily, only when a field lands there). */
static int extra_open(walker *w, size_t depth) {
  for (size_t d = 0; d <= depth; d++) {
    if (w->opened[d]) continue;
    if (d > 0) {
      if (w->opened[d - 1] > 1 && bput(w->extra, ',')) return AS_ERR;
      w->opened[d - 1]++;
      if (put_str(w->extra, w->okey[d], w->okeylen[d]) || bput(w->extra, ':')) return AS_ERR;
    }
    if (bput(w->extra, '{')) return AS_ERR;
    w->opened[d] = 1;
  }
  return AS_OK;
}

static int extra_field(walker *w, size_t depth, const bson_iter_t *it) {
  if (extra_open(w, depth)) return AS_ERR;
  if (w->opened[depth] > 1 && bput(w->extra, ',')) return AS_ERR;
  w->opened[depth]++;
  if (put_str(w->extra, IT_KEY(it), IT_KEYLEN(it)) || bput(w->extra, ':'))
    return AS_ERR;
  int rc = write_value(it, w->extra, (int)depth);
  if (rc == AS_EINVAL) {
    snprintf(w->why, WHY_MAX, "field \"%s\" holds invalid BSON", bson_iter_key(it));
    return AS_EDATA;
  }
  return rc;
}

static int walk_level(walker *w, bson_iter_t *it, size_t depth, const pref *refs, size_t nrefs) {
  pref sub[64];
  pref *heap = NULL;
  int rc = AS_OK;
  if (depth >= MAX_DEPTH) return AS_OK;
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
  while (it_next(it)) {
    const char *key = IT_KEY(it);
    size_t kl = IT_KEYLEN(it);
    size_t nm = 0;
    for (int i = bucket[kl < 31 ? kl : 31]; i >= 0; i = nxt[i]) {
      const char *p = refs[i].path[depth];
      if (refs[i].hlen == kl && p[0] == key[0] && memcmp(p, key, kl) == 0) m[nm++] = refs[i];
    }
    if (nm == 0) {
      if (w->extra && (rc = extra_field(w, depth, it)) != AS_OK) goto done;
      continue;
    }
    if (m[0].npath == depth + 1) { /* a leaf (the loader forbids overlapping paths) */
      if (m[0].col < 0) continue;   /* a child table's array: not ours */
      const as_column *c = &w->s->cols[m[0].col];
      as_value *v = &w->row->v[m[0].col];
      if ((rc = convert(c, it, v, w->why)) != AS_OK) {
        w->err_col = m[0].col;
        goto done;
      }
      w->row->set[m[0].col] = 1;
      continue;
    }
    bson_type_t bt = IT_TYPE(it);
    if (bt == BSON_TYPE_NULL) continue;
    if (bt != BSON_TYPE_DOCUMENT) {
      char d[160];
      describe(it, d, sizeof d);
      int col = -1;
      for (size_t i = 0; i < nm && col < 0; i++) col = m[i].col;
      if (col < 0) continue; /* only child fields below: leave it to them */
      w->err_col = col;
      snprintf(w->why, WHY_MAX, "cannot descend into %s at \"%.*s\"", d, (int)kl, key);
      rc = AS_EDATA;
      goto done;
    }
    bson_iter_t child;
    it_recurse(it, &child);
    if (w->extra) {
      w->okey[depth + 1] = key;
      w->okeylen[depth + 1] = kl;
      w->opened[depth + 1] = 0;
    }
    if (heap) {
      pref *copy = malloc(nm * sizeof *copy);
      if (!copy) { rc = AS_ERR; goto done; }
      memcpy(copy, m, nm * sizeof *copy);
      for (size_t i = 0; i < nm; i++) copy[i].hlen = strlen(copy[i].path[depth + 1]);
      rc = walk_level(w, &child, depth + 1, copy, nm);
      free(copy);
    } else {
      pref copy[64];
      memcpy(copy, m, nm * sizeof *copy);
      for (size_t i = 0; i < nm; i++) copy[i].hlen = strlen(copy[i].path[depth + 1]);
      rc = walk_level(w, &child, depth + 1, copy, nm);
    }
    if (rc != AS_OK) goto done;
    if (w->extra && w->opened[depth + 1]) {
      if (bput(w->extra, '}')) { rc = AS_ERR; goto done; }
      w->opened[depth + 1] = 0;
    }
  }
done:
  free(heap);
  free(nxt_heap);
  return rc;
}

/* The refs of all columns (except the catch-all) and child-table fields. */
static int build_refs(const as_schema *s, bool keys_only, pref *stack, size_t cap, pref **out, size_t *n) {
  size_t need = s->ncols + (keys_only ? 0 : s->nchildren);
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
    /* child fields: split on the fly would allocate; children use single-level or dotted
     * fields, matched by their first part only when not dotted */
    for (size_t i = 0; i < s->nchildren; i++) {
      const char *f = s->children[i].field;
      if (f && !strchr(f, '.')) r[k++] = (pref){(const char *const *)&s->children[i].field, 1, -1 - (int)i, strlen(f)};
    }
  }
  *out = r;
  *n = k;
  return AS_OK;
}

/* keep_values: leave the values in place (their buffers are reused; columns not seen are
 * cleared after the walk). */
static int prepare_row(const as_schema *s, as_row *out, bool keep_values) {
  if (out->v && out->set && out->n == s->ncols) {
    if (keep_values) memset(out->set, 0, out->n);
    else as_row_reset(out);
    return AS_OK;
  }
  as_row_clear(out);
  return as_row_init(out, s->ncols);
}

static int doc_to_key_row(const as_schema *s, const bson_t *doc, as_row *out, walker *w) {
  pref stack[16], *refs = NULL;
  size_t nrefs = 0;
  bson_iter_t it;
  int rc;
  if ((rc = build_refs(s, true, stack, 16, &refs, &nrefs)) != AS_OK) return rc;
  memset(w, 0, sizeof *w);
  w->s = s;
  w->row = out;
  w->err_col = -1;
  if (!bson_iter_init(&it, doc)) {
    snprintf(w->why, WHY_MAX, "invalid BSON document");
    rc = AS_EDATA;
  } else {
    rc = walk_level(w, &it, 0, refs, nrefs);
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

static int data_error(const as_schema *s, const bson_t *doc, const char *field, const char *why,
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
  bson_iter_t it;
  int rc;
  if (prepare_row(s, out, true) != AS_OK || build_refs(s, false, stack, 32, &refs, &nrefs) != AS_OK)
    return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
  memset(w.opened, 0, sizeof w.opened);
  w.s = s;
  w.row = out;
  if (s->catch_all_idx >= 0) extra = buf_over(&out->v[s->catch_all_idx]);
  w.extra = s->catch_all_idx >= 0 ? &extra : NULL;
  w.err_col = -1;
  w.why[0] = '\0';
  if (!bson_iter_init(&it, doc)) {
    rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s: invalid BSON document", s->name);
    goto cleanup;
  }
  rc = walk_level(&w, &it, 0, refs, nrefs);
  if (rc == AS_ERR) {
    as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
    goto cleanup;
  }
  if (rc != AS_OK) {
    data_error(s, doc, w.err_col >= 0 ? s->cols[w.err_col].field : "*", w.why, rc, err);
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
  as_buf_free(&extra);
  return rc;
}

/* ================================================================ typed value -> BSON */

int as_value_append_bson(bson_t *doc, const char *key, int keylen, const as_value *v, as_error *err) {
  bool ok = true;
  switch (v->type) {
    case AS_T_NULL: ok = bson_append_null(doc, key, keylen); break;
    case AS_T_BOOL: ok = bson_append_bool(doc, key, keylen, v->u.b); break;
    case AS_T_INT64:
      ok = (v->u.i >= INT32_MIN && v->u.i <= INT32_MAX) ? bson_append_int32(doc, key, keylen, (int32_t)v->u.i)
                                                        : bson_append_int64(doc, key, keylen, v->u.i);
      break;
    case AS_T_DOUBLE: ok = bson_append_double(doc, key, keylen, v->u.d); break;
    case AS_T_DECIMAL: {
      bson_decimal128_t dec;
      if (!bson_decimal128_from_string_w_len(v->u.s.ptr, (int)v->u.s.len, &dec))
        return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "cannot store decimal \"%.100s\" as Decimal128",
                            v->u.s.ptr);
      ok = bson_append_decimal128(doc, key, keylen, &dec);
      break;
    }
    case AS_T_TEXT: ok = bson_append_utf8(doc, key, keylen, v->u.s.ptr, (int)v->u.s.len); break;
    case AS_T_BYTES:
      ok = bson_append_binary(doc, key, keylen, BSON_SUBTYPE_BINARY, (const uint8_t *)v->u.s.ptr, (uint32_t)v->u.s.len);
      break;
    case AS_T_UUID: ok = bson_append_binary(doc, key, keylen, BSON_SUBTYPE_UUID, v->u.uuid, 16); break;
    case AS_T_OBJECTID: {
      bson_oid_t oid;
      memcpy(oid.bytes, v->u.oid, 12);
      ok = bson_append_oid(doc, key, keylen, &oid);
      break;
    }
    case AS_T_TIMESTAMP:
      if (v->u.ts_us % 1000 != 0)
        return as_error_set(err, AS_DOM_MAPPING, AS_EDATA,
                            "timestamp %" PRId64 " µs has sub-millisecond precision, a BSON date cannot hold it",
                            v->u.ts_us);
      ok = bson_append_date_time(doc, key, keylen, v->u.ts_us / 1000);
      break;
    case AS_T_DATE: ok = bson_append_date_time(doc, key, keylen, (int64_t)v->u.days * 86400000); break;
    case AS_T_JSON: {
      int frc = fast_asjson_value(doc, key, keylen < 0 ? (int)strlen(key) : keylen, v->u.s.ptr, v->u.s.len);
      if (frc == AS_OK) break;
      if (frc == AS_EDATA) return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "document too large");
      json_t *j = load_asjson(v->u.s.ptr, v->u.s.len, err);
      if (!j) return AS_EDATA;
      int rc = json_to_bson_value(doc, key, keylen, j, 0);
      json_decref(j);
      if (rc != AS_OK) return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "cannot convert json value to BSON");
      break;
    }
    default: return as_error_set(err, AS_DOM_MAPPING, AS_EINVAL, "bad value type %d", (int)v->type);
  }
  if (!ok) return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "document too large");
  return AS_OK;
}

/* ================================================================ row -> document */

static bool has_head(const as_schema *s, const int *idx, size_t n, size_t depth, const char *key, size_t kl) {
  for (size_t i = 0; i < n; i++) {
    const as_column *c = &s->cols[idx[i]];
    const char *p = c->path[depth];
    if (strncmp(p, key, kl) == 0 && p[kl] == '\0') return true;
  }
  return false;
}

static bool child_head(const as_schema *s, size_t depth, const char *key) {
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
      if (has_head(s, idx, n, depth, k, bson_iter_key_len(&it)) || child_head(s, depth, k)) continue;
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

/* ================================================================ updates
 *
 * $set and $unset are built as raw element lists (rw_* above) and assembled into the output
 * once at the end. Values take the raw path (same bytes as as_value_append_bson); whatever it
 * does not handle (errors, rare forms, json the streaming transcoder gives up on) is done by
 * as_value_append_bson into a holder document whose element is copied, so results and
 * messages are those of the libbson path. */

typedef struct upd {
  const as_schema *s;
  as_buf set, unset; /* elements */
  char path[1024];
} upd;

/* Is prefix path[0..depth) + key the head of some column's path? */
static bool claimed(const as_schema *s, char *const *prefix, size_t depth, const char *key) {
  for (size_t i = 0; i < s->ncols; i++) {
    const as_column *c = &s->cols[i];
    if (c->catch_all || c->npath <= depth + 1) continue;
    const char *p = c->path[depth];
    if (p[0] != key[0] || strcmp(p, key) != 0) continue;
    bool ok = true;
    for (size_t d = 0; d < depth && ok; d++) ok = strcmp(c->path[d], prefix[d]) == 0;
    if (ok) return true;
  }
  return child_head(s, depth, key);
}

static bool same_value(const bson_iter_t *a, const bson_iter_t *b) {
  if (bson_iter_type(a) != bson_iter_type(b)) return false;
  uint32_t la = a->next_off - a->d1, lb = b->next_off - b->d1;
  return la == lb && memcmp(a->raw + a->d1, b->raw + b->d1, la) == 0;
}

/* bson_append_iter into a raw element list: the value bytes copied where bson_append_iter
 * writes them unchanged, the other types through bson_append_iter itself. */
static int rw_iter(as_buf *b, const char *key, size_t kl, const bson_iter_t *it) {
  bson_type_t t = IT_TYPE(it);
  uint32_t vl = it->next_off - it->d1;
  switch (t) {
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
      if (vl < 5 || rd32(it->raw + it->d1) != vl || it->raw[it->next_off - 1] != 0) break;
      /* fall through */
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_UTF8:
    case BSON_TYPE_UNDEFINED:
    case BSON_TYPE_OID:
    case BSON_TYPE_BOOL:
    case BSON_TYPE_DATE_TIME:
    case BSON_TYPE_NULL:
    case BSON_TYPE_SYMBOL:
    case BSON_TYPE_INT32:
    case BSON_TYPE_TIMESTAMP:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DECIMAL128:
    case BSON_TYPE_MAXKEY:
    case BSON_TYPE_MINKEY: return rw_bytes(b, (uint8_t)t, key, kl, it->raw + it->d1, vl);
    default: break;
  }
  bson_t h = BSON_INITIALIZER;
  int rc = bson_append_iter(&h, key, (int)kl, it) ? rw_elements(b, &h) : AS_EDATA;
  bson_destroy(&h);
  return rc;
}

static int extra_updates(upd *u, const bson_t *now, const bson_t *prev, char **prefix, size_t depth,
                         size_t plen, as_error *err) {
  bson_iter_t it, pit;
  if (depth >= MAX_DEPTH) return AS_OK;
  if (now) {
    bson_iter_init(&it, now);
    while (it_next(&it)) {
      const char *k = IT_KEY(&it);
      size_t kl = IT_KEYLEN(&it);
      if (plen + kl + 2 > sizeof u->path) return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "field path too long");
      memcpy(u->path + plen, k, kl + 1);
      bool in_prev = prev && bson_iter_init_find(&pit, prev, k);
      if (claimed(u->s, prefix, depth, k)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&it)) continue; /* mapped paths are the columns' business */
        bson_t sub, psub;
        uint32_t len;
        const uint8_t *data;
        bson_iter_document(&it, &len, &data);
        bson_init_static(&sub, data, len);
        bool hp = in_prev && BSON_ITER_HOLDS_DOCUMENT(&pit);
        if (hp) {
          bson_iter_document(&pit, &len, &data);
          bson_init_static(&psub, data, len);
        }
        prefix[depth] = (char *)k;
        u->path[plen + kl] = '.';
        int rc = extra_updates(u, &sub, hp ? &psub : NULL, prefix, depth + 1, plen + kl + 1, err);
        if (rc != AS_OK) return rc;
        continue;
      }
      if (in_prev && same_value(&it, &pit)) continue;
      u->path[plen + kl] = '\0';
      if (rw_iter(&u->set, u->path, plen + kl, &it) != AS_OK)
        return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "update too large");
    }
  }
  if (prev) {
    bson_iter_init(&pit, prev);
    while (it_next(&pit)) {
      const char *k = IT_KEY(&pit);
      size_t kl = IT_KEYLEN(&pit);
      if (now && bson_iter_init_find(&it, now, k)) continue;
      if (plen + kl + 2 > sizeof u->path) return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "field path too long");
      memcpy(u->path + plen, k, kl + 1);
      if (claimed(u->s, prefix, depth, k)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&pit)) continue;
        bson_t psub;
        uint32_t len;
        const uint8_t *data;
        bson_iter_document(&pit, &len, &data);
        bson_init_static(&psub, data, len);
        prefix[depth] = (char *)k;
        u->path[plen + kl] = '.';
        int rc = extra_updates(u, NULL, &psub, prefix, depth + 1, plen + kl + 1, err);
        if (rc != AS_OK) return rc;
        continue;
      }
      if (rw_str(&u->unset, BSON_TYPE_UTF8, u->path, plen + kl, "", 0) != AS_OK)
        return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "update too large");
    }
  }
  return AS_OK;
}

#define AS_RESTART (-100) /* internal: the fast path wrote something it cannot finish */

/* as_value_append_bson into a holder, its element copied (the general path of rw_value). */
static int rw_value_slow(as_buf *b, const char *key, size_t kl, const as_value *v, as_error *err) {
  bson_t h = BSON_INITIALIZER;
  int rc = as_value_append_bson(&h, key, (int)kl, v, err);
  if (rc == AS_OK && rw_elements(b, &h) != AS_OK) rc = as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
  bson_destroy(&h);
  return rc;
}

/* A json object/array value as an element (the streaming transcoder); FJ_FAIL with b unchanged
 * when it gives up. */
static int rw_json(as_buf *b, const char *key, size_t kl, const as_value *v) {
  fj j = {v->u.s.ptr, v->u.s.ptr + v->u.s.len};
  fj_ws(&j);
  if (j.p >= j.end || (*j.p != '{' && *j.p != '[')) return FJ_FAIL;
  bool arr = *j.p == '[';
  if (!arr) {
    fj peek = {j.p + 1, j.end};
    fj_ws(&peek);
    if (peek.p + 1 < peek.end && peek.p[0] == '"' && peek.p[1] == '$') return FJ_FAIL;
  }
  j.p++;
  size_t mark = b->len, at;
  as_buf tmp = AS_BUF_INIT;
  int rc = rw_begin(b, arr ? BSON_TYPE_ARRAY : BSON_TYPE_DOCUMENT, key, kl, &at) ? FJ_FAIL : AS_OK;
  if (rc == AS_OK) rc = fj_members(&j, b, arr, &tmp, 1);
  if (rc == AS_OK) {
    fj_ws(&j);
    if (j.p != j.end || rw_end(b, at)) rc = FJ_FAIL;
  }
  as_buf_free(&tmp);
  if (rc != AS_OK) {
    b->len = mark;
    return FJ_FAIL;
  }
  return AS_OK;
}

/* A typed value as an element, byte for byte what as_value_append_bson appends. */
static int rw_value(as_buf *b, const char *key, size_t kl, const as_value *v, as_error *err) {
  int w;
  switch (v->type) {
    case AS_T_NULL: w = rw_byte(b, BSON_TYPE_NULL, key, kl, -1); break;
    case AS_T_BOOL: w = rw_byte(b, BSON_TYPE_BOOL, key, kl, v->u.b ? 1 : 0); break;
    case AS_T_INT64: w = rw_int(b, key, kl, v->u.i); break;
    case AS_T_DOUBLE: w = rw_double(b, key, kl, v->u.d); break;
    case AS_T_DECIMAL: {
      bson_decimal128_t dec;
      if (!v->u.s.ptr || !dec_from_str(v->u.s.ptr, v->u.s.len, &dec)) return rw_value_slow(b, key, kl, v, err);
      uint8_t raw[16];
      put_le64(raw, dec.low);
      put_le64(raw + 8, dec.high);
      w = rw_bytes(b, BSON_TYPE_DECIMAL128, key, kl, raw, 16);
      break;
    }
    case AS_T_TEXT:
      if (!v->u.s.ptr || v->u.s.len >= INT_MAX) return rw_value_slow(b, key, kl, v, err);
      w = rw_str(b, BSON_TYPE_UTF8, key, kl, v->u.s.ptr, v->u.s.len);
      break;
    case AS_T_BYTES:
      if (!v->u.s.ptr) return rw_value_slow(b, key, kl, v, err);
      w = rw_binary(b, key, kl, BSON_SUBTYPE_BINARY, v->u.s.ptr, v->u.s.len);
      break;
    case AS_T_UUID: w = rw_binary(b, key, kl, BSON_SUBTYPE_UUID, v->u.uuid, 16); break;
    case AS_T_OBJECTID: w = rw_bytes(b, BSON_TYPE_OID, key, kl, v->u.oid, 12); break;
    case AS_T_TIMESTAMP:
      if (v->u.ts_us % 1000 != 0) return rw_value_slow(b, key, kl, v, err);
      w = rw_64(b, BSON_TYPE_DATE_TIME, key, kl, (uint64_t)(v->u.ts_us / 1000));
      break;
    case AS_T_DATE: w = rw_64(b, BSON_TYPE_DATE_TIME, key, kl, (uint64_t)((int64_t)v->u.days * 86400000)); break;
    case AS_T_JSON:
      if (!v->u.s.ptr || rw_json(b, key, kl, v) != AS_OK) return rw_value_slow(b, key, kl, v, err);
      return AS_OK;
    default: return rw_value_slow(b, key, kl, v, err);
  }
  if (w != AS_OK) return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
  return AS_OK;
}

/* The catch-all without a previous value, straight from its text: each unclaimed top-level
 * field is parsed into $set, claimed documents go through extra_updates. FJ_FAIL before
 * anything was written, AS_RESTART after (the caller truncates $set/$unset and redoes the
 * catch-all the general way). */
static int catch_all_direct(upd *u, const as_value *v, as_error *err) {
  fj j = {v->u.s.ptr, v->u.s.ptr + v->u.s.len};
  fj_ws(&j);
  if (j.p >= j.end || *j.p != '{') return FJ_FAIL;
  fj peek = {j.p + 1, j.end};
  fj_ws(&peek);
  if (peek.p + 1 < peek.end && peek.p[0] == '"' && peek.p[1] == '$') return FJ_FAIL;
  j.p++;
  fj_ws(&j);
  if (j.p < j.end && *j.p == '}') {
    j.p++;
    fj_ws(&j);
    return j.p == j.end ? AS_OK : FJ_FAIL;
  }
  as_buf tmp = AS_BUF_INIT;
  int rc = AS_OK;
  char keybuf[256];
  for (;;) {
    const char *key;
    size_t kl;
    fj_ws(&j);
    if (j.p >= j.end || *j.p != '"' || fj_string(&j, &key, &kl, &tmp) || kl >= sizeof keybuf ||
        memchr(key, '\0', kl)) {
      rc = AS_RESTART;
      break;
    }
    memcpy(keybuf, key, kl);
    keybuf[kl] = '\0';
    fj_ws(&j);
    if (j.p >= j.end || *j.p != ':') {
      rc = AS_RESTART;
      break;
    }
    j.p++;
    fj_ws(&j);
    if (claimed(u->s, NULL, 0, keybuf)) {
      if (j.p < j.end && *j.p == '{') {
        as_buf hraw = AS_BUF_INIT; /* {"v": <the value>} */
        bson_t holder;
        bson_iter_t it;
        rc = room(&hraw, 4) ? AS_ERR : AS_OK;
        if (rc == AS_OK) {
          hraw.len = 4;
          rc = fj_value(&j, &hraw, "v", 1, &tmp, 1);
        }
        if (rc == AS_OK && rw_end(&hraw, 0)) rc = AS_ERR;
        if (rc == AS_OK && bson_init_static(&holder, hraw.data, hraw.len) && bson_iter_init_find(&it, &holder, "v") &&
            BSON_ITER_HOLDS_DOCUMENT(&it)) {
          uint32_t len;
          const uint8_t *data;
          bson_t sub;
          bson_iter_document(&it, &len, &data);
          bson_init_static(&sub, data, len);
          char *prefix[MAX_DEPTH];
          prefix[0] = keybuf;
          memcpy(u->path, keybuf, kl);
          u->path[kl] = '.';
          rc = extra_updates(u, &sub, NULL, prefix, 1, kl + 1, err);
          if (rc != AS_OK && rc != AS_EDATA) rc = AS_RESTART;
        } else if (rc == AS_OK) {
          rc = AS_OK; /* a wrapper, not a document: the columns' business */
        } else {
          rc = AS_RESTART;
        }
        as_buf_free(&hraw);
      } else if (fj_skip(&j) != AS_OK) {
        rc = AS_RESTART;
      }
    } else if (fj_value(&j, &u->set, keybuf, (int)kl, &tmp, 1) != AS_OK) {
      rc = AS_RESTART;
    }
    if (rc != AS_OK) break;
    fj_ws(&j);
    if (j.p < j.end && *j.p == ',') {
      j.p++;
      continue;
    }
    if (j.p < j.end && *j.p == '}') {
      j.p++;
      fj_ws(&j);
      if (j.p != j.end) rc = AS_RESTART;
      break;
    }
    rc = AS_RESTART;
    break;
  }
  as_buf_free(&tmp);
  return rc;
}

/* {"$set": {set}, "$unset": {unset}} (each only when not empty) into out (empty). */
static int finish_update(const as_schema *s, const upd *u, bson_t *out, as_error *err) {
  size_t total = 5 + (u->set.len ? 11 + u->set.len : 0) + (u->unset.len ? 13 + u->unset.len : 0);
  if (total > BSON_MAX_SIZE) return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s: update too large", s->name);
  if (total == 5) return AS_OK;
  uint8_t *p = bson_reserve_buffer(out, (uint32_t)total);
  if (!p) return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
  put_le32(p, (uint32_t)total);
  p += 4;
  if (u->set.len) {
    memcpy(p, "\x03$set", 6);
    put_le32(p + 6, (uint32_t)u->set.len + 5);
    memcpy(p + 10, u->set.data, u->set.len);
    p += 10 + u->set.len;
    *p++ = '\0';
  }
  if (u->unset.len) {
    memcpy(p, "\x03$unset", 8);
    put_le32(p + 8, (uint32_t)u->unset.len + 5);
    memcpy(p + 12, u->unset.data, u->unset.len);
    p += 12 + u->unset.len;
    *p++ = '\0';
  }
  *p = '\0';
  return AS_OK;
}

int as_delta_to_update(const as_schema *s, const as_delta *d, const char *prev_catch_all, bson_t *out,
                       as_error *err) {
  upd u;
  int rc = AS_OK;
  bson_t now, prev;
  bool have_now = false, have_prev = false;
  bson_init(out);
  if (d->op != AS_OP_UPDATE)
    return as_error_set(err, AS_DOM_MAPPING, AS_EINVAL, "mapping %s: $set/$unset only for updates, not %s",
                        s->name, as_op_name(d->op));
  u.s = s;
  u.set = u.unset = (as_buf)AS_BUF_INIT;
  if (as_buf_reserve(&u.set, 480) != AS_OK) return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
  for (size_t i = 0; i < s->ncols && i < d->row.n; i++) {
    const as_column *c = &s->cols[i];
    if (!d->row.set[i] || c->is_key || c->catch_all) continue;
    const as_value *v = &d->row.v[i];
    size_t fl = strlen(c->field);
    if (v->type == AS_T_NULL) {
      if (rw_str(&u.unset, BSON_TYPE_UTF8, c->field, fl, "", 0) != AS_OK)
        rc = as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
    } else if ((rc = rw_value(&u.set, c->field, fl, v, err)) != AS_OK) {
      as_error_prefix(err, "mapping %s, column \"%s\"", s->name, c->name);
    }
    if (rc != AS_OK) goto cleanup;
  }
  if (s->catch_all_idx >= 0 && d->row.set[s->catch_all_idx]) {
    const as_value *cv = &d->row.v[s->catch_all_idx];
    bool arr = false;
    if (!prev_catch_all && cv->type == AS_T_JSON) {
      size_t set_mark = u.set.len, unset_mark = u.unset.len;
      rc = catch_all_direct(&u, cv, err);
      if (rc == AS_OK || rc == AS_EDATA) goto cleanup;
      u.set.len = set_mark; /* redo the catch-all the general way */
      u.unset.len = unset_mark;
      rc = AS_OK;
    }
    if (cv->type == AS_T_JSON) {
      if ((rc = as_asjson_to_bson(cv->u.s.ptr, cv->u.s.len, &now, &arr, err)) != AS_OK || arr) {
        bson_destroy(&now);
        rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s: catch-all value is not an AS-JSON object", s->name);
        goto cleanup;
      }
      have_now = true;
    }
    if (prev_catch_all) {
      if ((rc = as_asjson_to_bson(prev_catch_all, strlen(prev_catch_all), &prev, &arr, err)) != AS_OK || arr) {
        bson_destroy(&prev);
        rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s: previous catch-all value is not an AS-JSON object", s->name);
        goto cleanup;
      }
      have_prev = true;
    }
    char *prefix[MAX_DEPTH];
    rc = extra_updates(&u, have_now ? &now : NULL, have_prev ? &prev : NULL, prefix, 0, 0, err);
  }
cleanup:
  if (rc == AS_OK) rc = finish_update(s, &u, out, err);
  if (have_now) bson_destroy(&now);
  if (have_prev) bson_destroy(&prev);
  as_buf_free(&u.set);
  as_buf_free(&u.unset);
  return rc;
}
