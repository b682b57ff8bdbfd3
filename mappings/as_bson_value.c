/* as_bson_value.c — one BSON value <-> one typed value (the conversion table is in as_bson.h).
 *
 * Decisions:
 * - Written back: int64 as int32 when it fits (what the drivers do for small integers), so a
 *   NumberLong(5) in an int64 column comes back as int32 5; bytes as subtype 0 (2 and 0x80
 *   become 0), uuid as subtype 4, timestamp and date as BSON dates.
 * - String values and json texts of a reused row keep their heap blocks (the whole usable
 *   size), so steady state needs no allocation.
 * - One writer of typed values: as_bsonw_value writes a raw element (as_bson_priv.h);
 *   as_value_append_bson appends what it wrote. Json values go through the AS-JSON decoder
 *   (as_asjson_read.c); invalid text is AS_EDATA with the decoder's message.
 * - Text values may hold NUL bytes (BSON strings have a length): lengths are used throughout,
 *   never strlen. Text is not checked for UTF-8 here (the column keeps the bytes).
 * - One BSON element reaches the conversions as an as_bsonr_el; as_bson_iter_to_value copies
 *   its bson_iter_t's element with bson_append_iter (libbson's public API) and reads that.
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
void as_bson_describe(const as_bsonr_el *it, char *out, size_t cap) {
  as_buf b = AS_BUF_INIT;
  int rc = it->type == BSON_TYPE_INT64 ? as_jsonw_i64(&b, as_bsonr_i64(it)) : as_jsonw_value(it, &b, 0);
  const char *txt = rc == AS_OK ? as_buf_cstr(&b) : NULL;
  const char *label = bson_type_label((bson_type_t)it->type);
  if (txt && b.len > 100) snprintf(out, cap, "%s %.100s...", label, txt);
  else snprintf(out, cap, "%s %s", label, txt ? txt : "(not valid UTF-8 or corrupt)");
  as_buf_free(&b);
}

static AS_MUSTCHECK int cannot_store(const as_column *c, const as_bsonr_el *it, const char *reason, char *why) {
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

static AS_MUSTCHECK int set_str(as_value *out, as_type t, const char *s, size_t n, char *why) {
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
static AS_MUSTCHECK int convert_number(const as_column *c, const as_bsonr_el *it, bson_type_t bt, as_value *out,
                          char *why) {
  switch (c->type) {
    case AS_T_INT64:
      if (bt == BSON_TYPE_INT32) { as_value_set_int64(out, as_bsonr_i32(it)); return AS_OK; }
      if (bt == BSON_TYPE_INT64) { as_value_set_int64(out, as_bsonr_i64(it)); return AS_OK; }
      if (bt == BSON_TYPE_DOUBLE) {
        double d = as_bsonr_double(it);
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
          return cannot_store(c, it, "out of int64 range", why);
        if (d != floor(d)) return cannot_store(c, it, "not an integer", why);
        as_value_set_int64(out, (int64_t)d);
        return AS_OK;
      }
      if (bt == BSON_TYPE_DECIMAL128) {
        bson_decimal128_t dec;
        char s[BSON_DECIMAL128_STRING];
        as_bsonr_dec128(it, &dec);
        size_t sl = as_dec128_to_str(&dec, s);
        as_buf nb = AS_BUF_INIT;
        int64_t v = 0;
        bool okn = as_decimal_normalize(s, sl, &nb) == AS_OK && as_buf_cstr(&nb);
        const char *ns = okn ? (const char *)nb.data : "";
        bool integral = okn && !strchr(ns, '.') && !strchr(ns, 'N') && !strchr(ns, 'I');
        bool fits = integral && as_jsonr_parse_i64(ns, strlen(ns), &v);
        as_buf_free(&nb);
        if (!integral) return cannot_store(c, it, "not an integer", why);
        if (!fits) return cannot_store(c, it, "out of int64 range", why);
        as_value_set_int64(out, v);
        return AS_OK;
      }
      break;
    case AS_T_DOUBLE:
      if (bt == BSON_TYPE_DOUBLE) { as_value_set_double(out, as_bsonr_double(it)); return AS_OK; }
      if (bt == BSON_TYPE_INT32) { as_value_set_double(out, as_bsonr_i32(it)); return AS_OK; }
      if (bt == BSON_TYPE_INT64) {
        int64_t i = as_bsonr_i64(it);
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
        as_bsonr_dec128(it, &dec);
        sl = as_dec128_to_str(&dec, s);
      } else if (bt == BSON_TYPE_INT32) {
        sl = (size_t)snprintf(s, sizeof s, "%" PRId32, as_bsonr_i32(it));
      } else if (bt == BSON_TYPE_INT64) {
        sl = (size_t)snprintf(s, sizeof s, "%" PRId64, as_bsonr_i64(it));
      } else if (bt == BSON_TYPE_DOUBLE) {
        sl = as_double_format(as_bsonr_double(it), s);
      } else {
        break;
      }
      return set_str(out, AS_T_DECIMAL, s, sl, why);
    }
    default: break;
  }
  return NO_RULE;
}

/* NULL when a key column takes value it as it is, else why not: a key is written back (the
 * filters of as_key_to_filter) in one form per type, and MongoDB tells the other forms of the
 * same UUID, bytes or time apart (other _id values), which one SQL row could not. */
static const char *key_form(const as_column *c, const as_bsonr_el *it) {
  bson_type_t bt = (bson_type_t)it->type;
  uint8_t st = 0;
  uint32_t n;
  if (bt == BSON_TYPE_NULL) return NULL; /* (a missing key is its own error) */
  if (bt == BSON_TYPE_BINARY) as_bsonr_binary(it, &st, &n);
  switch (c->type) {
    case AS_T_UUID:
      if (bt == BSON_TYPE_BINARY && st == BSON_SUBTYPE_UUID) return NULL;
      return bt == BSON_TYPE_UTF8
                 ? "a key column of type uuid takes binary subtype 4 only (MongoDB tells the "
                   "string form of a UUID apart from it: another key); map the key as text"
                 : "a key column of type uuid takes binary subtype 4 only (MongoDB tells a "
                   "legacy subtype 3 UUID apart from it: another key; legacy UUID keys are "
                   "not supported yet)";
    case AS_T_BYTES:
      return bt != BSON_TYPE_BINARY || st == BSON_SUBTYPE_BINARY
                 ? NULL
                 : "a key column of type bytes takes binary subtype 0 only (MongoDB tells the "
                   "other subtypes of the same bytes apart: another key)";
    case AS_T_TIMESTAMP:
      return bt != BSON_TYPE_TIMESTAMP
                 ? NULL
                 : "a key column of type timestamptz takes dates only (a BSON timestamp is "
                   "another key than the date of its second)";
    default: return NULL;
  }
}

/* The conversion table of as_bson.h (keys: as_bson_convert). */
static int convert_value(const as_column *c, const as_bsonr_el *it, as_value *out, char *why) {
  bson_type_t bt = (bson_type_t)it->type;
  if (bt == BSON_TYPE_NULL && !as_column_json_null(c)) {
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
        uint32_t n;
        const char *str = as_bsonr_str(it, &n);
        /* text values are UTF-8 (as_value.h): other bytes would have no JSON form */
        if (!as_utf8_valid(str, n)) return cannot_store(c, it, "not valid UTF-8", why);
        return set_str(out, AS_T_TEXT, str, n, why); /* may hold NUL bytes: n, not strlen */
      }
      break;
    case AS_T_BOOL:
      if (bt == BSON_TYPE_BOOL) { as_value_set_bool(out, as_bsonr_bool(it)); return AS_OK; }
      break;
    case AS_T_BYTES:
      if (bt == BSON_TYPE_BINARY) {
        uint8_t st;
        uint32_t n;
        const uint8_t *p = as_bsonr_binary(it, &st, &n);
        if (st != BSON_SUBTYPE_BINARY && st != BSON_SUBTYPE_BINARY_DEPRECATED && st != BSON_SUBTYPE_USER)
          return cannot_store(c, it, "only binary subtypes 0, 2 and 0x80 are bytes", why);
        return set_str(out, AS_T_BYTES, (const char *)p, n, why);
      }
      break;
    case AS_T_UUID:
      if (bt == BSON_TYPE_BINARY) {
        uint8_t st;
        uint32_t n;
        const uint8_t *p = as_bsonr_binary(it, &st, &n);
        if (st != BSON_SUBTYPE_UUID && st != BSON_SUBTYPE_UUID_DEPRECATED)
          return cannot_store(c, it, "only binary subtypes 4 and 3 are UUIDs", why);
        if (n != 16) return cannot_store(c, it, "a UUID has 16 bytes", why);
        as_value_set_uuid(out, p);
        return AS_OK;
      }
      if (bt == BSON_TYPE_UTF8) {
        uint32_t n;
        const char *s = as_bsonr_str(it, &n);
        as_value v = AS_VALUE_NULL;
        if (as_value_from_text(AS_T_UUID, s, n, &v, NULL) != AS_OK)
          return cannot_store(c, it, "not a UUID", why);
        as_value_move(out, &v);
        return AS_OK;
      }
      break;
    case AS_T_OBJECTID:
      if (bt == BSON_TYPE_OID) { as_value_set_oid(out, as_bsonr_oid(it)); return AS_OK; }
      break;
    case AS_T_TIMESTAMP:
      if (bt == BSON_TYPE_DATE_TIME) {
        int64_t ms = as_bsonr_i64(it);
        if (ms < AS_TS_MIN_US / 1000 || ms > AS_TS_MAX_US / 1000)
          return cannot_store(c, it, "outside years 0001..9999", why);
        as_value_set_timestamp(out, ms * 1000);
        return AS_OK;
      }
      if (bt == BSON_TYPE_TIMESTAMP) {
        uint32_t t, i;
        as_bsonr_timestamp(it, &t, &i);
        as_value_set_timestamp(out, (int64_t)t * 1000000);
        return AS_OK;
      }
      break;
    case AS_T_DATE:
      if (bt == BSON_TYPE_DATE_TIME) {
        int64_t ms = as_bsonr_i64(it);
        if (ms % 86400000 != 0) return cannot_store(c, it, "has a time part", why);
        int64_t days = ms / 86400000;
        if (days < AS_DATE_MIN_DAYS || days > AS_DATE_MAX_DAYS)
          return cannot_store(c, it, "outside years 0001..9999", why);
        as_value_set_date(out, (int32_t)days);
        return AS_OK;
      }
      break;
    case AS_T_JSON: {
      /* a document or an array, or any other value as its AS-JSON text (a jsonb column holds
       * scalars too: "abc", 1.5, {"$numberLong":"5"}, ...) */
      as_buf b = as_bson_buf_over(out);
      int rc;
      if (bt == BSON_TYPE_DOCUMENT || bt == BSON_TYPE_ARRAY) {
        as_bsonr child;
        rc = as_bsonr_child(it, &child) == AS_OK ? as_jsonw_doc(&child, bt == BSON_TYPE_ARRAY, &b, 0) : AS_EINVAL;
      } else {
        rc = as_jsonw_value(it, &b, 0);
      }
      if (rc == AS_OK && !as_buf_cstr(&b)) rc = AS_ERR;
      if (rc != AS_OK) {
        as_buf_free(&b);
        if (rc == AS_ERR) {
          snprintf(why, WHY_MAX, "out of memory");
          return AS_ERR;
        }
        return cannot_store(c, it,
                            rc == AS_EDATA        ? "a string or key is not valid UTF-8"
                            : rc == AS_JSONW_EDUP ? "a document holds a key twice"
                                                  : "invalid BSON",
                            why);
      }
      out->type = AS_T_JSON;
      out->u.s.len = b.len;
      out->u.s.ptr = (char *)b.data;
      return AS_OK;
    }
    default: break;
  }
  /* the usual slip: _id holding ObjectIds mapped as text */
  return cannot_store(c, it, it->type == BSON_TYPE_OID ? "an ObjectId maps to a column of type objectid"
                                                       : NULL, why);
}

/* The conversion table of as_bson.h. On failure `why` holds the message tail. */
int as_bson_convert(const as_column *c, const as_bsonr_el *it, as_value *out, char *why) {
  int rc = convert_value(c, it, out, why);
  const char *kf = rc == AS_OK && c->is_key ? key_form(c, it) : NULL;
  if (!kf) return rc;
  as_value_clear(out);
  return cannot_store(c, it, kf, why);
}

int as_bson_iter_to_value(const as_schema *s, const as_column *c, const bson_iter_t *it,
                          as_value *out, as_error *err) {
  char why[WHY_MAX];
  as_value v = AS_VALUE_NULL;
  bson_t holder = BSON_INITIALIZER; /* the element, copied through libbson's public API */
  as_bsonr_el e;
  int rc;
  if (!bson_append_iter(&holder, "", 0, it) || as_bsonr_first(&holder, &e) != AS_OK) {
    snprintf(why, sizeof why, "invalid BSON value");
    rc = AS_EDATA;
  } else {
    rc = as_bson_convert(c, &e, &v, why);
  }
  bson_destroy(&holder);
  if (rc != AS_OK)
    return as_error_set(err, AS_DOM_MAPPING, rc, "mapping %s, field \"%s\": %s", s ? s->name : "?",
                        c->field ? c->field : c->name, why);
  *out = v; /* overwritten, not freed */
  return AS_OK;
}

/* ================================================================ typed value -> BSON */

static AS_MUSTCHECK int too_large(as_error *err) {
  return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "value too large for a BSON document");
}

/* The string-like types (decimal, text, bytes, json). */
static AS_MUSTCHECK int string_value(as_buf *b, const char *key, size_t kl, const as_value *v, as_error *err) {
  const char *p = v->u.s.ptr ? v->u.s.ptr : "";
  size_t n = v->u.s.ptr ? v->u.s.len : 0;
  if (n >= BSON_MAX_SIZE) return too_large(err);
  switch (v->type) {
    case AS_T_DECIMAL: {
      bson_decimal128_t dec;
      if (!as_dec128_from_str(p, n, &dec))
        return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "cannot store decimal \"%.100s\" as Decimal128", p);
      uint8_t raw[16];
      put_le64(raw, dec.low);
      put_le64(raw + 8, dec.high);
      return rw_bytes(b, BSON_TYPE_DECIMAL128, key, kl, raw, 16) ? too_large(err) : AS_OK;
    }
    case AS_T_TEXT: return rw_str(b, BSON_TYPE_UTF8, key, kl, p, n) ? too_large(err) : AS_OK;
    case AS_T_BYTES: return rw_binary(b, key, kl, BSON_SUBTYPE_BINARY, p, n) ? too_large(err) : AS_OK;
    default: { /* AS_T_JSON: any AS-JSON value, wrappers included */
      as_jsonr j;
      size_t mark = b->len;
      as_jsonr_init(&j, p, n);
      int rc = as_jsonr_value(&j, b, key, kl, 0);
      if (rc == AS_OK) rc = as_jsonr_end(&j);
      if (rc != AS_OK) {
        b->len = mark;
        as_jsonr_error(&j, rc, err);
        if (rc != AS_ERR) rc = AS_EDATA;
        if (err) err->code = rc;
      }
      as_jsonr_free(&j);
      return rc;
    }
  }
}

/* A typed value as an element: the one writer of typed values (as_value_append_bson too). */
int as_bsonw_value(as_buf *b, const char *key, size_t kl, const as_value *v, as_error *err) {
  int w;
  if (as_bsonw_fixed(b, key, kl, v, &w)) return w == AS_OK ? AS_OK : too_large(err);
  switch (v->type) {
    case AS_T_DECIMAL:
    case AS_T_TEXT:
    case AS_T_BYTES:
    case AS_T_JSON: return string_value(b, key, kl, v, err);
    case AS_T_TIMESTAMP:
      return as_error_set(err, AS_DOM_MAPPING, AS_EDATA,
                          "timestamp %" PRId64 " µs has sub-millisecond precision, a BSON date cannot hold it",
                          v->u.ts_us);
    default: return as_error_set(err, AS_DOM_MAPPING, AS_EINVAL, "bad value type %d", (int)v->type);
  }
}

int as_value_append_bson(bson_t *doc, const char *key, int keylen, const as_value *v, as_error *err) {
  size_t kl = keylen < 0 ? strlen(key) : (size_t)keylen;
  if (memchr(key, '\0', kl)) return as_error_set(err, AS_DOM_MAPPING, AS_EINVAL, "a BSON key cannot hold NUL");
  as_buf raw = AS_BUF_INIT; /* {<the element>}, then concatenated to doc */
  int rc = room(&raw, 4) ? too_large(err) : AS_OK;
  if (rc == AS_OK) {
    raw.len = 4;
    rc = as_bsonw_value(&raw, key, kl, v, err);
  }
  if (rc == AS_OK && rw_end(&raw, 0)) rc = too_large(err);
  bson_t view;
  if (rc == AS_OK && (!bson_init_static(&view, raw.data, raw.len) || !bson_concat(doc, &view))) rc = too_large(err);
  as_buf_free(&raw);
  return rc;
}
