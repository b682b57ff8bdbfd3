/* as_asjson_write.c — BSON -> AS-JSON text (the forms are listed in as_bson.h).
 *
 * Decisions:
 * - One pass over the BSON bytes (the fast iterator of as_bson_priv.h), written straight into
 *   an as_buf; strings are escaped 8 bytes at a time while no byte needs escaping.
 * - Decimal128 -> text has an exact fast path for the common form (coefficient below 2^64,
 *   no exponent needed); libbson does the rest. Same text as bson_decimal128_to_string.
 * - Doubles: shortest round-trip text (as_double_format) with ".0" added when it would read
 *   back as an integer; NaN (one NaN: payload and sign bits are not kept), infinities and -0.0
 *   as {"$numberDouble": ...}.
 * - Nesting deeper than 200 levels is AS_EINVAL ("invalid BSON").
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "as_bson_priv.h"

static const char hexd[] = "0123456789abcdef";

/* 1 for the bytes a JSON string must escape (control characters, '"', '\\'). */
static const uint8_t json_esc[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

int as_jsonw_str(as_buf *b, const char *s, size_t n) {
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

int as_jsonw_i64(as_buf *b, int64_t v) {
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
size_t as_dec128_to_str(const bson_decimal128_t *dec, char out[BSON_DECIMAL128_STRING]) {
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

int as_jsonw_value(const bson_iter_t *it, as_buf *b, int depth) {
  switch (IT_TYPE(it)) {
    case BSON_TYPE_DOUBLE: return put_double(b, IT_DOUBLE(it));
    case BSON_TYPE_UTF8: return as_jsonw_str(b, IT_STR(it), IT_STRLEN(it));
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: return as_jsonw_doc(it, NULL, IT_TYPE(it) == BSON_TYPE_ARRAY, b, depth + 1);
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
      if (put_lit(b, "{\"$date\":{\"$numberLong\":\"") || as_jsonw_i64(b, IT_I64(it)) ||
          put_lit(b, "\"}}"))
        return AS_ERR;
      return AS_OK;
    case BSON_TYPE_NULL: return put_lit(b, "null");
    case BSON_TYPE_REGEX: {
      const char *opts;
      const char *re = bson_iter_regex(it, &opts);
      if (put_lit(b, "{\"$regularExpression\":{\"pattern\":") || as_jsonw_str(b, re, strlen(re)) ||
          put_lit(b, ",\"options\":") || as_jsonw_str(b, opts, strlen(opts)) || put_lit(b, "}}"))
        return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_DBPOINTER: {
      uint32_t n;
      const char *coll;
      const bson_oid_t *oid;
      bson_iter_dbpointer(it, &n, &coll, &oid);
      if (put_lit(b, "{\"$dbPointer\":{\"$ref\":") || as_jsonw_str(b, coll, n) || put_lit(b, ",\"$id\":") ||
          put_oid(b, oid) || put_lit(b, "}}"))
        return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_CODE: {
      uint32_t n;
      const char *code = bson_iter_code(it, &n);
      if (put_lit(b, "{\"$code\":") || as_jsonw_str(b, code, n) || put_lit(b, "}")) return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_SYMBOL: {
      uint32_t n;
      const char *sym = bson_iter_symbol(it, &n);
      if (put_lit(b, "{\"$symbol\":") || as_jsonw_str(b, sym, n) || put_lit(b, "}")) return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_CODEWSCOPE: {
      uint32_t n, sn;
      const uint8_t *sp;
      const char *code = bson_iter_codewscope(it, &n, &sn, &sp);
      bson_t scope;
      if (!bson_init_static(&scope, sp, sn)) return AS_EINVAL;
      if (put_lit(b, "{\"$code\":") || as_jsonw_str(b, code, n) || put_lit(b, ",\"$scope\":") ||
          as_jsonw_doc(NULL, &scope, false, b, depth + 1) || put_lit(b, "}"))
        return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_INT32: return as_jsonw_i64(b, IT_I32(it));
    case BSON_TYPE_TIMESTAMP: {
      uint32_t t, i;
      bson_iter_timestamp(it, &t, &i);
      if (put_lit(b, "{\"$timestamp\":{\"t\":") || as_jsonw_i64(b, t) || put_lit(b, ",\"i\":") ||
          as_jsonw_i64(b, i) || put_lit(b, "}}"))
        return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_INT64: {
      int64_t v = IT_I64(it);
      if (v < INT32_MIN || v > INT32_MAX) return as_jsonw_i64(b, v);
      if (put_lit(b, "{\"$numberLong\":\"") || as_jsonw_i64(b, v) || put_lit(b, "\"}")) return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_DECIMAL128: {
      bson_decimal128_t dec;
      char s[BSON_DECIMAL128_STRING];
      IT_DEC(it, &dec);
      size_t n = as_dec128_to_str(&dec, s);
      if (put_lit(b, "{\"$numberDecimal\":\"") || bappend(b, s, n) || put_lit(b, "\"}")) return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_MAXKEY: return put_lit(b, "{\"$maxKey\":1}");
    case BSON_TYPE_MINKEY: return put_lit(b, "{\"$minKey\":1}");
    default: return AS_EINVAL;
  }
}

int as_jsonw_doc(const bson_iter_t *parent, const bson_t *doc, bool is_array, as_buf *b,
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
      if (as_jsonw_str(b, IT_KEY(&it), IT_KEYLEN(&it)) || bput(b, ':')) return AS_ERR;
    }
    int rc = as_jsonw_value(&it, b, depth);
    if (rc != AS_OK) return rc;
  }
  return bput(b, is_array ? ']' : '}');
}

int as_bson_to_asjson(const bson_t *doc, bool is_array, as_buf *out, as_error *err) {
  int rc = as_jsonw_doc(NULL, doc, is_array, out, 0);
  if (rc != AS_OK)
    return as_error_set(err, AS_DOM_CODEC, rc, rc == AS_ERR ? "out of memory" : "invalid BSON document");
  return AS_OK;
}

int as_bson_value_to_asjson(const bson_iter_t *it, as_buf *out, as_error *err) {
  int rc = as_jsonw_value(it, out, 0);
  if (rc != AS_OK)
    return as_error_set(err, AS_DOM_CODEC, rc, rc == AS_ERR ? "out of memory" : "invalid BSON value");
  return AS_OK;
}
