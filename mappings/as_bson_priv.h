/* as_bson_priv.h — private to the as_bson_* / as_asjson_* files of the mapping layer: inline
 * as_buf helpers, the raw BSON writer, UTF-8 checking and the functions these files share.
 * Not for use outside them. (Reading BSON: as_bsonr.h.) */
#ifndef AS_BSON_PRIV_H
#define AS_BSON_PRIV_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <bson/bson.h>

#include "as_bson.h"
#include "as_bsonr.h"
#include "as_buf.h"
#include "as_utf8.h"

#define MAX_DEPTH 32          /* nesting levels of column paths and catch-all documents */
#define AS_JSON_MAX_DEPTH 200 /* nesting levels of AS-JSON text / BSON written as AS-JSON */
#define WHY_MAX 512           /* room for the tail of a conversion error message */

/* Decimal index key of an array element ("0", "1", ...); returns its length. */
static inline size_t as_idx_key(uint32_t i, char kb[16]) {
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

/* ================================================================ as_buf helpers
 *
 * Room for n more bytes (and the NUL as_buf keeps room for), without a call when it fits,
 * and inline fast paths of as_buf_putc/as_buf_append for the writers (the common case needs
 * no call into as_buf.c). */

static inline AS_MUSTCHECK int room(as_buf *b, size_t n) {
  if (b->len + n + 1 <= b->cap) return AS_OK;
  return as_buf_reserve(b, n);
}

static inline AS_MUSTCHECK int bput(as_buf *b, uint8_t c) {
  if (b->len + 2 <= b->cap) {
    b->data[b->len++] = c;
    return AS_OK;
  }
  return as_buf_putc(b, c);
}

static inline AS_MUSTCHECK int bappend(as_buf *b, const void *p, size_t n) {
  if (b->len + n + 1 <= b->cap) {
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return AS_OK;
  }
  return as_buf_append(b, p, n);
}

static inline AS_MUSTCHECK int put_lit(as_buf *b, const char *s) { return bappend(b, s, strlen(s)); }


/* ================================================================ raw BSON writer
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
static inline AS_MUSTCHECK int rw_head(as_buf *b, uint8_t type, const char *key, size_t kl, size_t extra) {
  if (room(b, kl + 2 + extra) != AS_OK) return AS_ERR;
  uint8_t *o = b->data + b->len;
  *o++ = type;
  memcpy(o, key, kl);
  o[kl] = '\0';
  b->len += kl + 2;
  return AS_OK;
}

static inline AS_MUSTCHECK int rw_i32(as_buf *b, const char *key, size_t kl, int32_t v) {
  if (rw_head(b, BSON_TYPE_INT32, key, kl, 4)) return AS_ERR;
  put_le32(b->data + b->len, (uint32_t)v);
  b->len += 4;
  return AS_OK;
}

static inline AS_MUSTCHECK int rw_64(as_buf *b, uint8_t type, const char *key, size_t kl, uint64_t v) {
  if (rw_head(b, type, key, kl, 8)) return AS_ERR;
  put_le64(b->data + b->len, v);
  b->len += 8;
  return AS_OK;
}

static inline AS_MUSTCHECK int rw_double(as_buf *b, const char *key, size_t kl, double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return rw_64(b, BSON_TYPE_DOUBLE, key, kl, u);
}

/* int64 as bson_append_int32 when it fits, else int64 (as the drivers write small integers) */
static inline AS_MUSTCHECK int rw_int(as_buf *b, const char *key, size_t kl, int64_t v) {
  if (v >= INT32_MIN && v <= INT32_MAX) return rw_i32(b, key, kl, (int32_t)v);
  return rw_64(b, BSON_TYPE_INT64, key, kl, (uint64_t)v);
}

static inline AS_MUSTCHECK int rw_byte(as_buf *b, uint8_t type, const char *key, size_t kl, int byte) {
  if (rw_head(b, type, key, kl, 1)) return AS_ERR;
  if (byte >= 0) b->data[b->len++] = (uint8_t)byte;
  return AS_OK;
}

/* utf8, symbol, code: length with the NUL, bytes, NUL */
static inline AS_MUSTCHECK int rw_str(as_buf *b, uint8_t type, const char *key, size_t kl, const char *s, size_t n) {
  if (n >= BSON_MAX_SIZE || rw_head(b, type, key, kl, n + 5)) return AS_ERR;
  uint8_t *o = b->data + b->len;
  put_le32(o, (uint32_t)n + 1);
  if (n) memcpy(o + 4, s, n);
  o[4 + n] = '\0';
  b->len += n + 5;
  return AS_OK;
}

static inline AS_MUSTCHECK int rw_bytes(as_buf *b, uint8_t type, const char *key, size_t kl, const void *p, size_t n) {
  if (rw_head(b, type, key, kl, n)) return AS_ERR;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return AS_OK;
}

/* binary: length, subtype, bytes; the old subtype 2 also carries the length inside */
static inline AS_MUSTCHECK int rw_binary(as_buf *b, const char *key, size_t kl, uint8_t subtype, const void *p, size_t n) {
  size_t inner = subtype == BSON_SUBTYPE_BINARY_DEPRECATED ? 4 : 0;
  if (n >= BSON_MAX_SIZE || rw_head(b, BSON_TYPE_BINARY, key, kl, n + 5 + inner)) return AS_ERR;
  uint8_t *o = b->data + b->len;
  put_le32(o, (uint32_t)(n + inner));
  o[4] = subtype;
  if (inner) put_le32(o + 5, (uint32_t)n);
  if (n) memcpy(o + 5 + inner, p, n);
  b->len += n + 5 + inner;
  return AS_OK;
}

/* regex: pattern and options as C strings (the caller checked they hold no NUL) */
static inline AS_MUSTCHECK int rw_regex(as_buf *b, const char *key, size_t kl, const char *pat, size_t pl, const char *opt,
                           size_t ol) {
  if (pl + ol >= BSON_MAX_SIZE || rw_head(b, BSON_TYPE_REGEX, key, kl, pl + ol + 2)) return AS_ERR;
  uint8_t *o = b->data + b->len;
  if (pl) memcpy(o, pat, pl);
  o[pl] = '\0';
  if (ol) memcpy(o + pl + 1, opt, ol);
  o[pl + 1 + ol] = '\0';
  b->len += pl + ol + 2;
  return AS_OK;
}

/* dbPointer: collection (a string) and 12 ObjectId bytes */
static inline AS_MUSTCHECK int rw_dbpointer(as_buf *b, const char *key, size_t kl, const char *coll, size_t n,
                               const uint8_t oid[12]) {
  if (n >= BSON_MAX_SIZE || rw_head(b, BSON_TYPE_DBPOINTER, key, kl, n + 17)) return AS_ERR;
  uint8_t *o = b->data + b->len;
  put_le32(o, (uint32_t)n + 1);
  if (n) memcpy(o + 4, coll, n);
  o[4 + n] = '\0';
  memcpy(o + 5 + n, oid, 12);
  b->len += n + 17;
  return AS_OK;
}

/* code with scope: total length, the code (a string), the scope document's bytes */
static inline AS_MUSTCHECK int rw_codewscope(as_buf *b, const char *key, size_t kl, const char *code, size_t n,
                                const uint8_t *scope, size_t sl) {
  size_t total = 4 + 4 + n + 1 + sl;
  if (total >= BSON_MAX_SIZE || rw_head(b, BSON_TYPE_CODEWSCOPE, key, kl, total)) return AS_ERR;
  uint8_t *o = b->data + b->len;
  put_le32(o, (uint32_t)total);
  put_le32(o + 4, (uint32_t)n + 1);
  if (n) memcpy(o + 8, code, n);
  o[8 + n] = '\0';
  memcpy(o + 9 + n, scope, sl);
  b->len += total;
  return AS_OK;
}

/* Starts an embedded document or array; *at receives the offset of its length. */
static inline AS_MUSTCHECK int rw_begin(as_buf *b, uint8_t type, const char *key, size_t kl, size_t *at) {
  if (rw_head(b, type, key, kl, 4)) return AS_ERR;
  *at = b->len;
  b->len += 4;
  return AS_OK;
}

static inline AS_MUSTCHECK int rw_end(as_buf *b, size_t at) {
  if (room(b, 1)) return AS_ERR;
  b->data[b->len++] = '\0';
  if (b->len - at > BSON_MAX_SIZE) return AS_ERR;
  put_le32(b->data + at, (uint32_t)(b->len - at));
  return AS_OK;
}



/* ================================================================ shared functions */

/* as_asjson_write.c — the AS-JSON writer. Results: AS_OK, AS_ERR (out of memory), AS_EDATA
 * (a string or key that is not UTF-8), AS_EINVAL (corrupt BSON, nested too deep). */
int as_jsonw_str(as_buf *b, const char *s, size_t n) AS_MUSTCHECK;
/* A document key: one more '$' in front of a key starting with '$'. */
int as_jsonw_key(as_buf *b, const char *key, size_t n) AS_MUSTCHECK;
int as_jsonw_i64(as_buf *b, int64_t v) AS_MUSTCHECK;
int as_jsonw_value(const as_bsonr_el *e, as_buf *b, int depth) AS_MUSTCHECK;
/* The rest of the document or array r as an object or array. */
int as_jsonw_doc(as_bsonr *r, bool is_array, as_buf *b, int depth) AS_MUSTCHECK;
/* The writers' result for a document holding one key twice (as_bsonr_dup_key): the text
 * would not read back (the AS-JSON reader refuses duplicate keys). Callers report it as
 * AS_EDATA. */
#define AS_JSONW_EDUP (-100)
/* Decimal128 -> text exactly as bson_decimal128_to_string; returns the length. */
size_t as_dec128_to_str(const bson_decimal128_t *dec, char out[BSON_DECIMAL128_STRING]);

/* as_asjson_read.c — the AS-JSON decoder: reads text, writes raw BSON elements (above) into an
 * as_buf. Results: AS_OK, AS_EINVAL (invalid AS-JSON; as_jsonr_error tells where and why),
 * AS_ERR (out of memory, or over the BSON size limit). */
typedef struct as_jsonr_key {
  const char *p;
  size_t n;
} as_jsonr_key;

typedef struct as_jsonr_chunk {
  struct as_jsonr_chunk *next;
  size_t len, cap;
  char data[];
} as_jsonr_chunk;

#define AS_JSONR_INLINE 32

typedef struct as_jsonr {
  const char *start, *p, *end;
  const char *at;          /* where the first error was found */
  char msg[256];           /* its reason ("" while there is none) */
  as_buf tmp;              /* the last decoded string with escapes */
  as_jsonr_key *ents;      /* keys of the open objects (a stack), for the duplicate check */
  size_t nents, cents;
  as_jsonr_chunk *arena;   /* copies of keys that had escapes */
  as_jsonr_key ent_inl[AS_JSONR_INLINE];
} as_jsonr;

/* The keys of one object being read. */
typedef struct as_jsonr_level {
  size_t ent_mark;
  uint32_t n;
  uint32_t *index, icap; /* hash index once the object has many keys */
} as_jsonr_level;

void as_jsonr_init(as_jsonr *j, const char *json, size_t len);
void as_jsonr_free(as_jsonr *j);
/* err <- "invalid AS-JSON at line L column C: reason" (AS_OK passes through). */
int as_jsonr_error(const as_jsonr *j, int rc, as_error *err);
/* Skips blanks: most calls find none, so the first test is the cheap one. */
static inline void as_jsonr_ws(as_jsonr *j) {
  if (j->p >= j->end || (unsigned char)*j->p > ' ') return;
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}
/* A string (decoded into j->tmp when it has escapes). */
int as_jsonr_string(as_jsonr *j, const char **s, size_t *n) AS_MUSTCHECK;
/* Any value (wrappers included) as one element `key`. */
int as_jsonr_value(as_jsonr *j, as_buf *dst, const char *key, size_t kl, int depth) AS_MUSTCHECK;
/* The members of a document/array (j->p just after its '{' or '['), up to its close. */
int as_jsonr_members(as_jsonr *j, as_buf *dst, bool arr, int depth) AS_MUSTCHECK;
/* A top-level object/array as a whole raw document (length, elements, NUL) appended to raw;
 * nothing but blanks may follow. */
int as_jsonr_top(as_jsonr *j, as_buf *raw, bool *is_array) AS_MUSTCHECK;
/* Only blanks left? */
int as_jsonr_end(as_jsonr *j) AS_MUSTCHECK;
/* For callers that walk a document's members themselves: as_jsonr_level_begin, then for
 * each member as_jsonr_member (the document key, unescaped and checked against the level's
 * keys, and its ':'; *in_tmp if the key lives in j->tmp), then the value, then
 * as_jsonr_level_end. */
void as_jsonr_level_begin(as_jsonr *j, as_jsonr_level *lv);
void as_jsonr_level_end(as_jsonr *j, as_jsonr_level *lv);
int as_jsonr_member(as_jsonr *j, as_jsonr_level *lv, const char **key, size_t *kl, bool *in_tmp) AS_MUSTCHECK;
/* Decimal integer text "-?digits" within int64. */
bool as_jsonr_parse_i64(const char *s, size_t n, int64_t *out) AS_MUSTCHECK;
/* Decimal text -> Decimal128 as bson_decimal128_from_string_w_len. */
bool as_dec128_from_str(const char *s, size_t n, bson_decimal128_t *dec) AS_MUSTCHECK;
/* One AS-JSON value (any kind, wrappers included) appended to dst as key. */
int as_asjson_value_to_bson(bson_t *dst, const char *key, size_t kl, const char *json, size_t len,
                            as_error *err) AS_MUSTCHECK;

/* as_bson_value.c — one BSON value <-> one typed value. */
void as_bson_describe(const as_bsonr_el *e, char *out, size_t cap);
as_buf as_bson_buf_over(as_value *out);
/* The conversion table of as_bson.h; on failure `why` (WHY_MAX) holds the message tail. */
int as_bson_convert(const as_column *c, const as_bsonr_el *e, as_value *out, char *why) AS_MUSTCHECK;
/* A typed value as a raw element, the same bytes as as_value_append_bson. */
int as_bsonw_value(as_buf *b, const char *key, size_t kl, const as_value *v, as_error *err) AS_MUSTCHECK;

/* The fixed-size types (and whole-millisecond timestamps) as an element: true and *w the
 * writer's result; false for any other value (as_bsonw_value writes those). */
static inline bool as_bsonw_fixed(as_buf *b, const char *key, size_t kl, const as_value *v, int *w) {
  switch (v->type) {
    case AS_T_NULL: *w = rw_byte(b, BSON_TYPE_NULL, key, kl, -1); return true;
    case AS_T_BOOL: *w = rw_byte(b, BSON_TYPE_BOOL, key, kl, v->u.b ? 1 : 0); return true;
    case AS_T_INT64: *w = rw_int(b, key, kl, v->u.i); return true;
    case AS_T_DOUBLE: *w = rw_double(b, key, kl, v->u.d); return true;
    case AS_T_OBJECTID: *w = rw_bytes(b, BSON_TYPE_OID, key, kl, v->u.oid, 12); return true;
    case AS_T_DATE: *w = rw_64(b, BSON_TYPE_DATE_TIME, key, kl, (uint64_t)((int64_t)v->u.days * 86400000)); return true;
    case AS_T_UUID: *w = rw_binary(b, key, kl, BSON_SUBTYPE_UUID, v->u.uuid, 16); return true;
    case AS_T_TIMESTAMP:
      if (v->u.ts_us % 1000 != 0) return false;
      *w = rw_64(b, BSON_TYPE_DATE_TIME, key, kl, (uint64_t)(v->u.ts_us / 1000));
      return true;
    default: return false;
  }
}

/* as_bsonw_value with the fixed-size types and plain text inline (the update and document
 * writers call it once per column); anything else, and every error message, from
 * as_bsonw_value. */
static inline AS_MUSTCHECK int as_bsonw_value_inline(as_buf *b, const char *key, size_t kl, const as_value *v,
                                                     as_error *err) {
  int w;
  if (v->type == AS_T_TEXT && v->u.s.ptr)
    w = rw_str(b, BSON_TYPE_UTF8, key, kl, v->u.s.ptr, v->u.s.len);
  else if (!as_bsonw_fixed(b, key, kl, v, &w))
    return as_bsonw_value(b, key, kl, v, err);
  return w == AS_OK ? AS_OK : as_bsonw_value(b, key, kl, v, err); /* its message */
}

/* as_bson_from_row.c */
bool as_bson_child_head(const as_schema *s, size_t depth, const char *key);
/* AS_EDATA (naming both columns) when the catch-all document `extra` holds a field at a mapped
 * column's own path: a row whose document could not hold both values (a SQL user put it
 * there); AS_OK otherwise. */
int as_catch_all_collision(const as_schema *s, const as_bsonr *extra, as_error *err) AS_MUSTCHECK;

#endif
