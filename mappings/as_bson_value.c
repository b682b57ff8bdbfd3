/* as_bson_value.c — one BSON value <-> one typed value (the conversion table is in as_bson.h).
 *
 * Decisions:
 * - Written back: int64 as int32 when it fits (what the drivers do for small integers), so a
 *   NumberLong(5) in an int64 column comes back as int32 5; bytes as subtype 0 (2 and 0x80
 *   become 0), uuid as subtype 4, timestamp and date as BSON dates.
 * - String values and json texts of a reused row keep their heap blocks (the whole usable
 *   size), so steady state needs no allocation.
 * - as_bsonw_value writes the same bytes as as_value_append_bson straight into a raw element
 *   list; what it does not handle goes through as_value_append_bson into a holder.
 * - Error tails: "cannot store T V in TYPE column \"C\"[: reason]", V the AS-JSON of the value
 *   (plain digits for int64), cut at 100 characters.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "as_bson_priv.h"

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
void as_bson_describe(const bson_iter_t *it, char *out, size_t cap) {
  as_buf b = AS_BUF_INIT;
  if (bson_iter_type(it) == BSON_TYPE_INT64) as_jsonw_i64(&b, bson_iter_int64(it));
  else if (as_jsonw_value(it, &b, 0) != AS_OK) as_buf_append_str(&b, "?");
  const char *txt = as_buf_cstr(&b);
  if (b.len > 100) snprintf(out, cap, "%s %.100s...", bson_type_label(bson_iter_type(it)), txt);
  else snprintf(out, cap, "%s %s", bson_type_label(bson_iter_type(it)), txt ? txt : "?");
  as_buf_free(&b);
}

static int cannot_store(const as_column *c, const bson_iter_t *it, const char *reason, char *why) {
  char d[160];
  as_bson_describe(it, d, sizeof d);
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
as_buf as_bson_buf_over(as_value *out) {
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

#define NO_RULE 1 /* internal: no conversion rule for this BSON type and column type */

/* The numeric column types of the conversion table. */
static int convert_number(const as_column *c, const bson_iter_t *it, bson_type_t bt, as_value *out,
                          char *why) {
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
        size_t sl = as_dec128_to_str(&dec, s);
        as_buf nb = AS_BUF_INIT;
        int64_t v = 0;
        bool okn = as_decimal_normalize(s, sl, &nb) == AS_OK && as_buf_cstr(&nb);
        const char *ns = okn ? (const char *)nb.data : "";
        bool integral = okn && !strchr(ns, '.') && !strchr(ns, 'N') && !strchr(ns, 'I');
        bool fits = integral && as_jsonr_parse_i64(ns, &v);
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
        sl = as_dec128_to_str(&dec, s);
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
    default: break;
  }
  return NO_RULE;
}

/* The conversion table of as_bson.h. On failure `why` holds the message tail. */
int as_bson_convert(const as_column *c, const bson_iter_t *it, as_value *out, char *why) {
  bson_type_t bt = IT_TYPE(it);
  if (bt == BSON_TYPE_NULL) {
    as_value_clear(out);
    return AS_OK;
  }
  switch (c->type) {
    case AS_T_INT64:
    case AS_T_DOUBLE:
    case AS_T_DECIMAL: {
      int rc = convert_number(c, it, bt, out, why);
      if (rc != NO_RULE) return rc;
      break;
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
        as_buf b = as_bson_buf_over(out);
        int rc = as_jsonw_doc(it, NULL, bt == BSON_TYPE_ARRAY, &b, 0);
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
  int rc = as_bson_convert(c, it, &v, why);
  if (rc != AS_OK)
    return as_error_set(err, AS_DOM_MAPPING, rc, "mapping %s, field \"%s\": %s", s ? s->name : "?",
                        c->field ? c->field : c->name, why);
  *out = v; /* overwritten, not freed */
  return AS_OK;
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
      int frc = as_jsonr_fast_value(doc, key, keylen < 0 ? (int)strlen(key) : keylen, v->u.s.ptr, v->u.s.len);
      if (frc == AS_OK) break;
      if (frc == AS_EDATA) return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "document too large");
      json_t *j = as_jsonr_load(v->u.s.ptr, v->u.s.len, err);
      if (!j) return AS_EDATA;
      int rc = as_jsonr_jansson_value(doc, key, keylen, j, 0);
      json_decref(j);
      if (rc != AS_OK) return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "cannot convert json value to BSON");
      break;
    }
    default: return as_error_set(err, AS_DOM_MAPPING, AS_EINVAL, "bad value type %d", (int)v->type);
  }
  if (!ok) return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "document too large");
  return AS_OK;
}

/* as_value_append_bson into a holder, its element copied (the general path of as_bsonw_value). */
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
  as_jsonr j = {v->u.s.ptr, v->u.s.ptr + v->u.s.len};
  as_jsonr_ws(&j);
  if (j.p >= j.end || (*j.p != '{' && *j.p != '[')) return FJ_FAIL;
  bool arr = *j.p == '[';
  if (!arr) {
    as_jsonr peek = {j.p + 1, j.end};
    as_jsonr_ws(&peek);
    if (peek.p + 1 < peek.end && peek.p[0] == '"' && peek.p[1] == '$') return FJ_FAIL;
  }
  j.p++;
  size_t mark = b->len, at;
  as_buf tmp = AS_BUF_INIT;
  int rc = rw_begin(b, arr ? BSON_TYPE_ARRAY : BSON_TYPE_DOCUMENT, key, kl, &at) ? FJ_FAIL : AS_OK;
  if (rc == AS_OK) rc = as_jsonr_members(&j, b, arr, &tmp, 1);
  if (rc == AS_OK) {
    as_jsonr_ws(&j);
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
int as_bsonw_value(as_buf *b, const char *key, size_t kl, const as_value *v, as_error *err) {
  int w;
  switch (v->type) {
    case AS_T_NULL: w = rw_byte(b, BSON_TYPE_NULL, key, kl, -1); break;
    case AS_T_BOOL: w = rw_byte(b, BSON_TYPE_BOOL, key, kl, v->u.b ? 1 : 0); break;
    case AS_T_INT64: w = rw_int(b, key, kl, v->u.i); break;
    case AS_T_DOUBLE: w = rw_double(b, key, kl, v->u.d); break;
    case AS_T_DECIMAL: {
      bson_decimal128_t dec;
      if (!v->u.s.ptr || !as_dec128_from_str(v->u.s.ptr, v->u.s.len, &dec)) return rw_value_slow(b, key, kl, v, err);
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
