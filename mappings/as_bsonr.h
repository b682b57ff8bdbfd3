/* as_bsonr.h — a small reader of raw BSON bytes (the BSON 1.1 specification, bsonspec.org),
 * used by the mapping layer instead of libbson's bson_iter_t.
 *
 * Why our own: the hot paths (document -> row, AS-JSON) need an iterator as cheap as an inline
 * loop; libbson's public bson_iter_next is a function call per element that also decodes what
 * we do not need, and reaching into bson_iter_t's private fields would break silently with
 * another libbson version. The format is small and fixed, so we read it ourselves.
 *
 * Decisions:
 * - Every element is checked before it is returned: the key is NUL-terminated inside the
 *   document, the value lies inside the document (before its final NUL), length fields are
 *   consistent (strings end with a NUL, embedded documents are >= 5 bytes and end with a NUL,
 *   binary subtype 2 carries its inner length, code-with-scope's total length adds up), bools
 *   are 0 or 1, the type byte is known. Anything else is corrupt input: as_bsonr_next returns
 *   AS_EDATA and the reader stays at the bad element (no out-of-bounds read, ever).
 * - Embedded documents are checked when they are read (as_bsonr_child), not when their parent
 *   is: a walk that skips a sub-document does not pay for it.
 * - Strings are not checked for UTF-8 here (a text column keeps the bytes; the AS-JSON writer
 *   checks what it writes). A string may hold NUL bytes: use its length, never strlen.
 * - Deprecated types (undefined, dbPointer, symbol, code with scope) are read like the others.
 *
 * Ownership: the reader and its elements point into the caller's bytes, which must outlive
 * them. Nothing is allocated. */
#ifndef AS_BSONR_H
#define AS_BSONR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <bson/bson.h>

#include "as_error.h"

/* One element of a document. */
typedef struct as_bsonr_el {
  uint8_t type;         /* bson_type_t */
  uint32_t keylen;      /* bytes of the key (a key holds no NUL) */
  const char *key;      /* NUL-terminated, inside the document */
  const uint8_t *val;   /* the value's first byte */
  uint32_t vlen;        /* the value's size in bytes */
} as_bsonr_el;

/* A position in a document. */
typedef struct as_bsonr {
  const uint8_t *data;  /* the document (its 4-byte length first) */
  uint32_t len;         /* its length */
  uint32_t off;         /* next element */
} as_bsonr;

/* Starts reading the document data[0..len): its length field must equal len, len >= 5, the
 * last byte NUL. AS_OK or AS_EDATA. */
int as_bsonr_init(as_bsonr *r, const uint8_t *data, size_t len) AS_MUSTCHECK;
/* The same for a bson_t (its bytes, bson_get_data). */
int as_bsonr_init_doc(as_bsonr *r, const bson_t *doc) AS_MUSTCHECK;
/* Next element: 1 (e filled), 0 (end of document), AS_EDATA (corrupt; stays there). */
static inline int as_bsonr_next(as_bsonr *r, as_bsonr_el *e) AS_MUSTCHECK;
/* The document or array element e (type checked by the caller) as a reader. AS_OK or AS_EDATA. */
static inline int as_bsonr_child(const as_bsonr_el *e, as_bsonr *child) AS_MUSTCHECK;
/* Finds key (keylen bytes) among the elements of r from its start: 1 found, 0 absent,
 * AS_EDATA corrupt. r is not moved. */
int as_bsonr_find(const as_bsonr *r, const char *key, size_t keylen, as_bsonr_el *e) AS_MUSTCHECK;
/* Looks for a key that the document (r from its start; not its sub-documents) holds more than
 * once: 0 none, 1 found (*dup is its second occurrence), AS_ERR out of memory, AS_EDATA
 * corrupt. A document cannot keep both values anywhere else (AS-JSON, a row, a jsonb
 * column), so the mapping layer refuses such documents instead of dropping one value.
 * Pairwise for a few keys, a set on the stack up to 128, sorted beyond (no allocation for
 * documents of up to 128 fields, no quadratic time). */
int as_bsonr_dup_key(const as_bsonr *r, as_bsonr_el *dup) AS_MUSTCHECK;

/* The keys of one document met so far in a walk, so that a walk can refuse a key met twice
 * as it goes (as_bsonr_dup_key's answer without a second pass over the document). Keeps up to
 * AS_KEYSET_MAX keys: pairwise for the first 8 (a 32-bit digest compared first), an
 * open-addressing set of 64 slots after that. Past AS_KEYSET_MAX the set stops
 * (as_keyset_add returns 2): the caller checks the whole document with as_bsonr_dup_key
 * once it has walked it. Nothing is allocated; about 600 bytes on the stack. */
#define AS_KEYSET_MAX 32
typedef struct as_keyset {
  uint32_t n;
  struct {
    const char *key;
    uint32_t len;
    uint32_t h;
  } k[AS_KEYSET_MAX];
  uint8_t slot[64]; /* index + 1 into k[], 0: empty (once n > 8) */
} as_keyset;

static inline void as_keyset_init(as_keyset *ks) { ks->n = 0; }

/* e (just returned by as_bsonr_next): 0 new (remembered), 1 already met, 2 the set is full
 * (e is not remembered; no more answers from this set). */
static inline int as_keyset_add(as_keyset *ks, const as_bsonr_el *e) AS_MUSTCHECK;

/* Out-of-line part of as_keyset_add (the set of 64 slots). */
int as_keyset_add_hashed(as_keyset *ks, const as_bsonr_el *e, uint32_t h) AS_MUSTCHECK;

static inline int as_keyset_add(as_keyset *ks, const as_bsonr_el *e) {
  uint32_t n = ks->n, len = e->keylen;
  if (n >= AS_KEYSET_MAX) return 2;
  /* digest of the length and the first and last (up to) 8 bytes; a document holds at least
   * the key's NUL, the value and its own final NUL after the key */
  const uint8_t *k = (const uint8_t *)e->key;
  uint64_t a = 0, z = 0;
  size_t readable = (size_t)(e->val + e->vlen + 1 - k);
  if (len >= 8) {
    memcpy(&a, k, 8);
    memcpy(&z, k + len - 8, 8);
  } else if (readable >= 8) {
    memcpy(&a, k, 8);
    a &= len ? ~0ULL >> (64 - 8 * len) : 0;
  } else {
    for (uint32_t i = 0; i < len; i++) a |= (uint64_t)k[i] << (8 * i);
  }
  uint64_t x = (a ^ (z << 13 | z >> 51) ^ len) * 0x9E3779B97F4A7C15ULL;
  uint32_t h = (uint32_t)(x >> 32);
  if (n >= 8) return as_keyset_add_hashed(ks, e, h);
  for (uint32_t i = 0; i < n; i++) {
    if (ks->k[i].h == h && ks->k[i].len == len && memcmp(ks->k[i].key, e->key, len) == 0) return 1;
  }
  ks->k[n].key = e->key;
  ks->k[n].len = len;
  ks->k[n].h = h;
  ks->n = n + 1;
  return 0;
}

/* The single element of a document built by bson_append_iter (as_bson.h functions taking a
 * bson_iter_t read it this way, through libbson's public API only). */
int as_bsonr_first(const bson_t *holder, as_bsonr_el *e) AS_MUSTCHECK;

/* Out-of-line part of as_bsonr_next for the rarer types (binary, regex, dbPointer, code with
 * scope, unknown). Same contract; `vstart` is the value's offset. */
int as_bsonr_next_rare(as_bsonr *r, as_bsonr_el *e, uint32_t vstart) AS_MUSTCHECK;

/* ---------------------------------------------------------------- value accessors
 * Each reads an element of the type the caller checked (as_bsonr_next validated the sizes). */

static inline uint32_t as_rd32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return BSON_UINT32_FROM_LE(v);
}

static inline uint64_t as_rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return BSON_UINT64_FROM_LE(v);
}

static inline int32_t as_bsonr_i32(const as_bsonr_el *e) { return (int32_t)as_rd32(e->val); }
/* INT64, DATE_TIME */
static inline int64_t as_bsonr_i64(const as_bsonr_el *e) { return (int64_t)as_rd64(e->val); }
static inline bool as_bsonr_bool(const as_bsonr_el *e) { return e->val[0] != 0; }

static inline double as_bsonr_double(const as_bsonr_el *e) {
  uint64_t u = as_rd64(e->val);
  double d;
  memcpy(&d, &u, 8);
  return d;
}

static inline void as_bsonr_dec128(const as_bsonr_el *e, bson_decimal128_t *dec) {
  dec->low = as_rd64(e->val);
  dec->high = as_rd64(e->val + 8);
}

/* UTF8, SYMBOL, CODE: the bytes (NUL-terminated; may hold NULs) and their length. */
static inline const char *as_bsonr_str(const as_bsonr_el *e, uint32_t *len) {
  *len = as_rd32(e->val) - 1;
  return (const char *)e->val + 4;
}

/* OID: the 12 bytes. */
static inline const uint8_t *as_bsonr_oid(const as_bsonr_el *e) { return e->val; }

/* TIMESTAMP: seconds and increment. */
static inline void as_bsonr_timestamp(const as_bsonr_el *e, uint32_t *t, uint32_t *i) {
  *i = as_rd32(e->val);
  *t = as_rd32(e->val + 4);
}

/* BINARY: subtype and payload (for the old subtype 2, without its inner length). */
static inline const uint8_t *as_bsonr_binary(const as_bsonr_el *e, uint8_t *subtype, uint32_t *len) {
  *subtype = e->val[4];
  if (*subtype == BSON_SUBTYPE_BINARY_DEPRECATED) {
    *len = as_rd32(e->val) - 4;
    return e->val + 9;
  }
  *len = as_rd32(e->val);
  return e->val + 5;
}

/* REGEX: pattern and options, both NUL-terminated without inner NULs. */
static inline const char *as_bsonr_regex(const as_bsonr_el *e, const char **options) {
  const char *pat = (const char *)e->val;
  *options = pat + strlen(pat) + 1; /* bounded: as_bsonr_next checked both NULs */
  return pat;
}

/* DBPOINTER: collection name (length-prefixed string) and the ObjectId's 12 bytes. */
static inline const char *as_bsonr_dbpointer(const as_bsonr_el *e, uint32_t *len, const uint8_t **oid) {
  *len = as_rd32(e->val) - 1;
  *oid = e->val + 4 + *len + 1;
  return (const char *)e->val + 4;
}

/* CODEWSCOPE: the code (string) and the scope document's bytes. */
static inline const char *as_bsonr_codewscope(const as_bsonr_el *e, uint32_t *len, const uint8_t **scope,
                                              uint32_t *scope_len) {
  *len = as_rd32(e->val + 4) - 1;
  *scope = e->val + 8 + *len + 1;
  *scope_len = as_rd32(*scope);
  return (const char *)e->val + 8;
}

/* ---------------------------------------------------------------- inline next */

static inline int as_bsonr_next(as_bsonr *r, as_bsonr_el *e) {
  const uint8_t *d = r->data;
  uint32_t end = r->len - 1; /* the document's final NUL */
  uint32_t o = r->off;
  if (o >= end) return o == end ? 0 : AS_EDATA;
  uint8_t type = d[o];
  if (type == 0) return AS_EDATA; /* a NUL before the end */
  const uint8_t *k = d + o + 1, *nul = k, *kend = d + end;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  /* the key's NUL, 8 bytes at a time (keys are short: cheaper than a memchr call) */
  while (kend - nul >= 8) {
    uint64_t x, z;
    memcpy(&x, nul, 8);
    z = (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL; /* lowest set: first zero byte */
    if (z) {
      nul += __builtin_ctzll(z) >> 3;
      break;
    }
    nul += 8;
  }
#endif
  while (nul < kend && *nul) nul++;
  if (nul >= kend) return AS_EDATA;
  uint32_t v = (uint32_t)(nul - d) + 1, n;
  switch (type) {
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_DATE_TIME:
    case BSON_TYPE_INT64:
    case BSON_TYPE_TIMESTAMP: n = 8; break;
    case BSON_TYPE_INT32: n = 4; break;
    case BSON_TYPE_OID: n = 12; break;
    case BSON_TYPE_DECIMAL128: n = 16; break;
    case BSON_TYPE_NULL:
    case BSON_TYPE_UNDEFINED:
    case BSON_TYPE_MINKEY:
    case BSON_TYPE_MAXKEY: n = 0; break;
    case BSON_TYPE_BOOL:
      if (v >= end || d[v] > 1) return AS_EDATA;
      n = 1;
      break;
    case BSON_TYPE_UTF8:
    case BSON_TYPE_SYMBOL:
    case BSON_TYPE_CODE: {
      if (end - v < 5) return AS_EDATA;
      uint32_t l = as_rd32(d + v);
      if (l < 1 || l > end - v - 4 || d[v + 4 + l - 1] != 0) return AS_EDATA;
      n = 4 + l;
      break;
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: {
      if (end - v < 5) return AS_EDATA;
      uint32_t l = as_rd32(d + v);
      if (l < 5 || l > end - v || d[v + l - 1] != 0) return AS_EDATA;
      n = l;
      break;
    }
    default: return as_bsonr_next_rare(r, e, v);
  }
  if (n > end - v) return AS_EDATA;
  e->type = type;
  e->key = (const char *)k;
  e->keylen = (uint32_t)(nul - k);
  e->val = d + v;
  e->vlen = n;
  r->off = v + n;
  return 1;
}

static inline int as_bsonr_child(const as_bsonr_el *e, as_bsonr *child) {
  /* as_bsonr_next checked the length (>= 5, inside the parent) and the final NUL */
  child->data = e->val;
  child->len = e->vlen;
  child->off = 4;
  return as_rd32(e->val) == e->vlen ? AS_OK : AS_EDATA;
}

#endif
