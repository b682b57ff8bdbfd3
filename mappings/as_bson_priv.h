/* as_bson_priv.h — private to the as_bson_* / as_asjson_* files of the mapping layer: the
 * fast BSON iterator, the raw BSON writer, inline as_buf helpers and the functions these
 * files share. Not for use outside mappings/as_bson*.c and mappings/as_asjson*.c. */
#ifndef AS_BSON_PRIV_H
#define AS_BSON_PRIV_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <bson/bson.h>
#include <jansson.h>

#include "as_bson.h"
#include "as_buf.h"

#define MAX_DEPTH 32 /* nesting levels of column paths and catch-all documents */
#define WHY_MAX 512  /* room for the tail of a conversion error message */
#define FJ_FAIL AS_EINVAL

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

/* ================================================================ as_buf helpers
 *
 * Room for n more bytes (and the NUL as_buf keeps room for), without a call when it fits,
 * and inline fast paths of as_buf_putc/as_buf_append for the writers (the common case needs
 * no call into as_buf.c). */

static inline int room(as_buf *b, size_t n) {
  if (b->len + n + 1 <= b->cap) return AS_OK;
  return as_buf_reserve(b, n);
}

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


/* ================================================================ shared functions */

/* as_asjson_write.c — AS-JSON writer (see as_bson.h for the forms). Return AS_OK, AS_ERR (out
 * of memory) or AS_EINVAL (invalid BSON). */
int as_jsonw_str(as_buf *b, const char *s, size_t n);
int as_jsonw_i64(as_buf *b, int64_t v);
int as_jsonw_value(const bson_iter_t *it, as_buf *b, int depth);
/* A document or array: from `parent` (a DOCUMENT/ARRAY iterator) or, if NULL, from doc. */
int as_jsonw_doc(const bson_iter_t *parent, const bson_t *doc, bool is_array, as_buf *b, int depth);
/* Decimal128 -> text exactly as bson_decimal128_to_string; returns the length. */
size_t as_dec128_to_str(const bson_decimal128_t *dec, char out[BSON_DECIMAL128_STRING]);

/* as_asjson_read.c — AS-JSON reader. The streaming transcoder writes raw BSON elements
 * (as_bsonw_*, below) into an as_buf; FJ_FAIL when it gives up (the jansson path decides). */
typedef struct as_jsonr {
  const char *p, *end;
} as_jsonr;
void as_jsonr_ws(as_jsonr *j);
int as_jsonr_string(as_jsonr *j, const char **s, size_t *n, as_buf *tmp);
int as_jsonr_skip(as_jsonr *j);
int as_jsonr_members(as_jsonr *j, as_buf *dst, bool arr, as_buf *tmp, int depth);
int as_jsonr_value(as_jsonr *j, as_buf *dst, const char *key, int kl, as_buf *tmp, int depth);
int as_jsonr_fast_value(bson_t *dst, const char *key, int kl, const char *json, size_t len);
json_t *as_jsonr_load(const char *json, size_t len, as_error *err);
int as_jsonr_jansson_value(bson_t *dst, const char *key, int kl, const json_t *j, int depth);
bool as_jsonr_parse_i64(const char *s, int64_t *out);
/* Decimal text -> Decimal128 as bson_decimal128_from_string_w_len. */
bool as_dec128_from_str(const char *s, size_t n, bson_decimal128_t *dec);

/* as_bson_value.c — one BSON value <-> one typed value. */
void as_bson_describe(const bson_iter_t *it, char *out, size_t cap);
as_buf as_bson_buf_over(as_value *out);
int as_bson_convert(const as_column *c, const bson_iter_t *it, as_value *out, char *why);
int as_bsonw_value(as_buf *b, const char *key, size_t kl, const as_value *v, as_error *err);

/* as_bson_from_row.c */
bool as_bson_child_head(const as_schema *s, size_t depth, const char *key);

#endif
