/* as_asjson_write.c — BSON -> AS-JSON text (the forms, and the "$" escape of keys, are listed
 * in as_bson.h).
 *
 * Decisions:
 * - One pass over the BSON bytes (as_bsonr.h), written straight into an as_buf; strings are
 *   escaped 8 bytes at a time while no byte needs escaping or checking.
 * - Strings and keys must be valid UTF-8 (JSON text is UTF-8; PostgreSQL would refuse it, and
 *   the reader refuses it too): otherwise AS_EDATA, never bytes passed through or replaced.
 *   NUL bytes inside strings are written as \u0000 (keys cannot hold NUL in BSON).
 * - A document key that starts with '$' gets one more '$' ("$oid" -> "$$oid"), so no document
 *   can be read back as a wrapper (as_bson.h).
 * - Decimal128 -> text has an exact fast path for the common form (coefficient below 2^64,
 *   no exponent needed); libbson does the rest. Same text as bson_decimal128_to_string.
 * - Doubles: shortest round-trip text (as_double_format) with ".0" added when it would read
 *   back as an integer; NaN (one NaN: payload and sign bits are not kept), infinities and -0.0
 *   as {"$numberDouble": ...}.
 * - Nesting deeper than AS_JSON_MAX_DEPTH levels, and corrupt BSON, are AS_EINVAL.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "as_bson_priv.h"

static const char hexd[] = "0123456789abcdef";

/* 1 for the bytes a JSON string must escape (control characters, '"', '\\'), 2 for the bytes
 * that start (or wrongly continue) a multi-byte UTF-8 sequence, to be checked. */
static const uint8_t json_esc[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* The escape of byte c (one of json_esc's 1s) at o; returns the new end. */
static uint8_t *escape(uint8_t *o, unsigned char c) {
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
  return o;
}

/* A JSON string of s[0..n), with one more '$' in front when `dollar`. AS_EDATA if s is not
 * valid UTF-8. */
static AS_MUSTCHECK int put_string(as_buf *b, const char *s, size_t n, bool dollar) {
  if (room(b, n * 6 + 3) != AS_OK) return AS_ERR;
  uint8_t *o = b->data + b->len;
  const uint8_t *p = (const uint8_t *)s, *e = p + n;
  *o++ = '"';
  if (dollar) *o++ = '$';
  const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  while (p < e) {
    /* a short rest (the usual key or value) is copied whole first, then scanned for the first
     * byte that needs a look (< 0x20, '"', '\\', >= 0x80): room for n * 6 bytes is reserved,
     * so the copy fits, and it is bounded, so many escapes cost no more than a byte each */
    const uint8_t *st = p;
    bool copied = e - p <= 32;
    if (copied) memcpy(o, p, (size_t)(e - p));
    while (e - p >= 8) { /* 8 at a time: the lowest flagged byte is exact (borrows only go up) */
      uint64_t x;
      memcpy(&x, p, 8);
      uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
      uint64_t hit = (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs) | x) & high;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      if (hit) {
        p += __builtin_ctzll(hit) >> 3;
        goto look;
      }
#else
      if (hit) break;
#endif
      p += 8;
    }
    while (p < e && !json_esc[*p]) p++;
  look:
    if (!copied) memcpy(o, st, (size_t)(p - st));
    o += p - st;
    if (p >= e) break;
    if (json_esc[*p] == 1) {
      o = escape(o, *p++);
      continue;
    }
    size_t k = as_utf8_seq(p, e);
    if (k == 0) return AS_EDATA;
    memcpy(o, p, k);
    o += k;
    p += k;
  }
  *o++ = '"';
  b->len = (size_t)(o - b->data);
  return AS_OK;
}

int as_jsonw_str(as_buf *b, const char *s, size_t n) { return put_string(b, s, n, false); }

int as_jsonw_key(as_buf *b, const char *key, size_t n) { return put_string(b, key, n, n > 0 && key[0] == '$'); }

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

static AS_MUSTCHECK int put_double(as_buf *b, double d) {
  if (isnan(d)) return put_lit(b, "{\"$numberDouble\":\"NaN\"}");
  if (isinf(d)) return put_lit(b, d > 0 ? "{\"$numberDouble\":\"Infinity\"}" : "{\"$numberDouble\":\"-Infinity\"}");
  if (d == 0 && signbit(d)) return put_lit(b, "{\"$numberDouble\":\"-0.0\"}");
  char tmp[40];
  size_t n = as_double_format(d, tmp);
  if (!memchr(tmp, '.', n) && !memchr(tmp, 'e', n)) {
    tmp[n++] = '.';
    tmp[n++] = '0';
  }
  return bappend(b, tmp, n);
}

static AS_MUSTCHECK int put_oid(as_buf *b, const uint8_t *oid) {
  if (room(b, 34) != AS_OK) return AS_ERR;
  uint8_t *o = b->data + b->len;
  memcpy(o, "{\"$oid\":\"", 9);
  o += 9;
  for (int i = 0; i < 12; i++) {
    *o++ = (uint8_t)hexd[oid[i] >> 4];
    *o++ = (uint8_t)hexd[oid[i] & 15];
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
  /* A coefficient beyond 34 digits (possible in this form: 113 bits hold more) is a
   * non-canonical encoding whose value is zero (IEEE 754-2008); libbson would print all its
   * digits, text that no Decimal128 reads back from. */
  uint64_t chi = hi & 0x1ffffffffffffULL;
  if (((hi >> 61) & 3) != 3 &&
      (chi > 0x1ED09BEAD87C0ULL || (chi == 0x1ED09BEAD87C0ULL && dec->low > 0x378D8E63FFFFFFFFULL))) {
    bson_decimal128_t zero = {.high = hi & ~0x1ffffffffffffULL, .low = 0};
    bson_decimal128_to_string(&zero, out);
    return strlen(out);
  }
  bson_decimal128_to_string(dec, out);
  return strlen(out);
}

/* The rarer types: binary, regex, dbPointer, code with scope, timestamp, decimal. */
static AS_MUSTCHECK int write_rare(const as_bsonr_el *e, as_buf *b, int depth) {
  switch (e->type) {
    case BSON_TYPE_BINARY: {
      uint8_t st;
      uint32_t n;
      const uint8_t *p = as_bsonr_binary(e, &st, &n);
      if (put_lit(b, "{\"$binary\":{\"base64\":\"") || as_base64_encode(p, n, b) ||
          put_lit(b, "\",\"subType\":\"") || bput(b, (uint8_t)hexd[st >> 4]) || bput(b, (uint8_t)hexd[st & 15]) ||
          put_lit(b, "\"}}"))
        return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_REGEX: {
      const char *opts;
      const char *re = as_bsonr_regex(e, &opts);
      int rc;
      if (put_lit(b, "{\"$regularExpression\":{\"pattern\":")) return AS_ERR;
      if ((rc = as_jsonw_str(b, re, strlen(re))) != AS_OK) return rc;
      if (put_lit(b, ",\"options\":")) return AS_ERR;
      if ((rc = as_jsonw_str(b, opts, strlen(opts))) != AS_OK) return rc;
      return put_lit(b, "}}");
    }
    case BSON_TYPE_DBPOINTER: {
      uint32_t n;
      const uint8_t *oid;
      const char *coll = as_bsonr_dbpointer(e, &n, &oid);
      int rc;
      if (put_lit(b, "{\"$dbPointer\":{\"$ref\":")) return AS_ERR;
      if ((rc = as_jsonw_str(b, coll, n)) != AS_OK) return rc;
      if (put_lit(b, ",\"$id\":") || put_oid(b, oid) || put_lit(b, "}}")) return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_CODEWSCOPE: {
      uint32_t n, sn;
      const uint8_t *sp;
      const char *code = as_bsonr_codewscope(e, &n, &sp, &sn);
      as_bsonr scope;
      int rc;
      if (as_bsonr_init(&scope, sp, sn) != AS_OK) return AS_EINVAL;
      if (put_lit(b, "{\"$code\":")) return AS_ERR;
      if ((rc = as_jsonw_str(b, code, n)) != AS_OK) return rc;
      if (put_lit(b, ",\"$scope\":")) return AS_ERR;
      if ((rc = as_jsonw_doc(&scope, false, b, depth + 1)) != AS_OK) return rc;
      return bput(b, '}');
    }
    case BSON_TYPE_TIMESTAMP: {
      uint32_t t, i;
      as_bsonr_timestamp(e, &t, &i);
      if (put_lit(b, "{\"$timestamp\":{\"t\":") || as_jsonw_i64(b, t) || put_lit(b, ",\"i\":") ||
          as_jsonw_i64(b, i) || put_lit(b, "}}"))
        return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_DECIMAL128: {
      bson_decimal128_t dec;
      char s[BSON_DECIMAL128_STRING];
      as_bsonr_dec128(e, &dec);
      size_t n = as_dec128_to_str(&dec, s);
      if (put_lit(b, "{\"$numberDecimal\":\"") || bappend(b, s, n) || put_lit(b, "\"}")) return AS_ERR;
      return AS_OK;
    }
    default: return AS_EINVAL;
  }
}

/* {"<tag>":<string>} */
static AS_MUSTCHECK int put_tagged_str(as_buf *b, const char *open, const as_bsonr_el *e) {
  uint32_t n;
  const char *s = as_bsonr_str(e, &n);
  int rc;
  if (put_lit(b, open)) return AS_ERR;
  if ((rc = as_jsonw_str(b, s, n)) != AS_OK) return rc;
  return bput(b, '}');
}

int as_jsonw_value(const as_bsonr_el *e, as_buf *b, int depth) {
  switch (e->type) {
    case BSON_TYPE_DOUBLE: return put_double(b, as_bsonr_double(e));
    case BSON_TYPE_UTF8: {
      uint32_t n;
      const char *s = as_bsonr_str(e, &n);
      return as_jsonw_str(b, s, n);
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: {
      as_bsonr child;
      if (as_bsonr_child(e, &child) != AS_OK) return AS_EINVAL;
      return as_jsonw_doc(&child, e->type == BSON_TYPE_ARRAY, b, depth + 1);
    }
    case BSON_TYPE_UNDEFINED: return put_lit(b, "{\"$undefined\":true}");
    case BSON_TYPE_OID: return put_oid(b, as_bsonr_oid(e));
    case BSON_TYPE_BOOL: return as_bsonr_bool(e) ? put_lit(b, "true") : put_lit(b, "false");
    case BSON_TYPE_DATE_TIME:
      if (put_lit(b, "{\"$date\":{\"$numberLong\":\"") || as_jsonw_i64(b, as_bsonr_i64(e)) || put_lit(b, "\"}}"))
        return AS_ERR;
      return AS_OK;
    case BSON_TYPE_NULL: return put_lit(b, "null");
    case BSON_TYPE_CODE: return put_tagged_str(b, "{\"$code\":", e);
    case BSON_TYPE_SYMBOL: return put_tagged_str(b, "{\"$symbol\":", e);
    case BSON_TYPE_INT32: return as_jsonw_i64(b, as_bsonr_i32(e));
    case BSON_TYPE_INT64: {
      int64_t v = as_bsonr_i64(e);
      if (v < INT32_MIN || v > INT32_MAX) return as_jsonw_i64(b, v);
      if (put_lit(b, "{\"$numberLong\":\"") || as_jsonw_i64(b, v) || put_lit(b, "\"}")) return AS_ERR;
      return AS_OK;
    }
    case BSON_TYPE_MAXKEY: return put_lit(b, "{\"$maxKey\":1}");
    case BSON_TYPE_MINKEY: return put_lit(b, "{\"$minKey\":1}");
    default: return write_rare(e, b, depth);
  }
}

int as_jsonw_doc(as_bsonr *r, bool is_array, as_buf *b, int depth) {
  as_bsonr_el e;
  int rc;
  if (depth > AS_JSON_MAX_DEPTH) return AS_EINVAL;
  /* a key twice: checked as the keys are written (as_keyset); a document of more than
   * AS_KEYSET_MAX keys once it is written */
  as_keyset seen;
  as_keyset_init(&seen);
  const as_bsonr start = *r;
  bool seen_all = true;
  if (bput(b, is_array ? '[' : '{') != AS_OK) return AS_ERR;
  bool first = true;
  while ((rc = as_bsonr_next(r, &e)) == 1) {
    if (!first && bput(b, ',') != AS_OK) return AS_ERR;
    first = false;
    if (!is_array) {
      int ks = as_keyset_add(&seen, &e);
      if (ks == 1) return AS_JSONW_EDUP;
      if (ks == 2) seen_all = false;
      if ((rc = as_jsonw_key(b, e.key, e.keylen)) != AS_OK) return rc;
      if (bput(b, ':') != AS_OK) return AS_ERR;
    }
    if ((rc = as_jsonw_value(&e, b, depth)) != AS_OK) return rc;
  }
  if (rc != 0) return AS_EINVAL;
  if (!seen_all) {
    int dr = as_bsonr_dup_key(&start, &e);
    if (dr == 1) return AS_JSONW_EDUP;
    if (dr != 0) return dr == AS_ERR ? AS_ERR : AS_EINVAL;
  }
  return bput(b, is_array ? ']' : '}');
}

/* The message of a writer result. */
static AS_MUSTCHECK int writer_error(int rc, as_error *err, const char *what) {
  if (rc == AS_ERR) return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
  if (rc == AS_EDATA) return as_error_set(err, AS_DOM_CODEC, AS_EDATA, "%s holds a string or key that is not valid UTF-8", what);
  if (rc == AS_JSONW_EDUP) return as_error_set(err, AS_DOM_CODEC, AS_EDATA, "%s holds a document with a key twice", what);
  return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "invalid BSON %s (corrupt or nested too deep)", what);
}

int as_bson_to_asjson(const bson_t *doc, bool is_array, as_buf *out, as_error *err) {
  as_bsonr r;
  int rc = as_bsonr_init_doc(&r, doc) == AS_OK ? as_jsonw_doc(&r, is_array, out, 0) : AS_EINVAL;
  return rc == AS_OK ? AS_OK : writer_error(rc, err, "document");
}

int as_bson_value_to_asjson(const bson_iter_t *it, as_buf *out, as_error *err) {
  bson_t holder = BSON_INITIALIZER;
  as_bsonr_el e;
  int rc = AS_EINVAL;
  if (bson_append_iter(&holder, "", 0, it) && as_bsonr_first(&holder, &e) == AS_OK) rc = as_jsonw_value(&e, out, 0);
  bson_destroy(&holder);
  return rc == AS_OK ? AS_OK : writer_error(rc, err, "value");
}
