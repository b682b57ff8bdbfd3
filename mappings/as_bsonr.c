/* as_bsonr.c — the out-of-line part of the raw BSON reader (see as_bsonr.h for the decisions). */
#include "as_bsonr.h"

#include <stdlib.h>

int as_bsonr_init(as_bsonr *r, const uint8_t *data, size_t len) {
  r->data = data;
  r->len = 5;
  r->off = 4;
  if (!data || len < 5 || len > BSON_MAX_SIZE || as_rd32(data) != len || data[len - 1] != 0) {
    static const uint8_t empty[5] = {5, 0, 0, 0, 0};
    r->data = empty; /* reads as an empty document if the caller goes on anyway */
    return AS_EDATA;
  }
  r->len = (uint32_t)len;
  return AS_OK;
}

int as_bsonr_init_doc(as_bsonr *r, const bson_t *doc) {
  return as_bsonr_init(r, doc ? bson_get_data(doc) : NULL, doc ? doc->len : 0);
}

/* A string (int32 length with the NUL, bytes, NUL) at d[v..end): its size, or 0 if invalid. */
static uint32_t string_size(const uint8_t *d, uint32_t v, uint32_t end) {
  if (end - v < 5) return 0;
  uint32_t l = as_rd32(d + v);
  if (l < 1 || l > end - v - 4 || d[v + 4 + l - 1] != 0) return 0;
  return 4 + l;
}

/* Size of the value of a rare type at d[v..end), or 0 if it is invalid. */
static uint32_t rare_size(uint8_t type, const uint8_t *d, uint32_t v, uint32_t end) {
  switch (type) {
    case BSON_TYPE_BINARY: {
      if (end - v < 5) return 0;
      uint32_t n = as_rd32(d + v);
      if (n > end - v - 5) return 0;
      if (d[v + 4] == BSON_SUBTYPE_BINARY_DEPRECATED && (n < 4 || as_rd32(d + v + 5) != n - 4)) return 0;
      return 5 + n;
    }
    case BSON_TYPE_REGEX: {
      const uint8_t *p = memchr(d + v, 0, end - v);
      if (!p) return 0;
      uint32_t o = (uint32_t)(p - d) + 1;
      const uint8_t *q = o < end ? memchr(d + o, 0, end - o) : NULL;
      return q ? (uint32_t)(q - d) + 1 - v : 0;
    }
    case BSON_TYPE_DBPOINTER: {
      uint32_t s = string_size(d, v, end);
      return s && end - v - s >= 12 ? s + 12 : 0;
    }
    case BSON_TYPE_CODEWSCOPE: {
      if (end - v < 14) return 0;
      uint32_t total = as_rd32(d + v);
      if (total < 14 || total > end - v) return 0;
      uint32_t s = string_size(d, v + 4, v + total);
      if (!s || total - 4 - s < 5) return 0;
      uint32_t so = v + 4 + s, sl = as_rd32(d + so);
      if (sl != total - 4 - s || d[so + sl - 1] != 0) return 0;
      return total;
    }
    default: return 0; /* unknown or removed type */
  }
}

int as_bsonr_next_rare(as_bsonr *r, as_bsonr_el *e, uint32_t v) {
  const uint8_t *d = r->data;
  uint32_t end = r->len - 1;
  uint32_t n = rare_size(d[r->off], d, v, end);
  if (n == 0) return AS_EDATA;
  e->type = d[r->off];
  e->key = (const char *)d + r->off + 1;
  e->keylen = v - r->off - 2;
  e->val = d + v;
  e->vlen = n;
  r->off = v + n;
  return 1;
}

int as_bsonr_find(const as_bsonr *r, const char *key, size_t keylen, as_bsonr_el *e) {
  as_bsonr it = *r;
  it.off = 4;
  int rc;
  while ((rc = as_bsonr_next(&it, e)) == 1) {
    if (e->keylen == keylen && memcmp(e->key, key, keylen) == 0) return 1;
  }
  return rc;
}

typedef struct keyref {
  const char *key;
  uint32_t len;
} keyref;

static uint32_t key_hash(const char *k, uint32_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (uint32_t i = 0; i < n; i++) h = (h ^ (uint8_t)k[i]) * 16777619u;
  return h;
}

static int keyref_cmp(const void *a, const void *b) {
  const keyref *x = a, *y = b;
  if (x->len != y->len) return x->len < y->len ? -1 : 1;
  int c = memcmp(x->key, y->key, x->len);
  if (c) return c;
  return x->key < y->key ? -1 : x->key > y->key; /* document order: the second one reported */
}

int as_bsonr_dup_key(const as_bsonr *r, as_bsonr_el *dup) {
  /* up to SMALL keys: pairwise (no setup); up to HASHED: an open-addressing set on the stack;
   * beyond: sorted on the heap */
  enum { SMALL = 8, HASHED = 128, SLOTS = 256 };
  as_bsonr it = *r;
  it.off = 4;
  as_bsonr_el e;
  keyref stack[HASHED], *all = stack;
  uint8_t slot[SLOTS]; /* index + 1 into all[], 0: empty */
  size_t n = 0, cap = HASHED;
  int rc;
  while ((rc = as_bsonr_next(&it, &e)) == 1) {
    if (n < SMALL) {
      for (size_t i = 0; i < n; i++) {
        if (all[i].len == e.keylen && memcmp(all[i].key, e.key, e.keylen) == 0) {
          *dup = e;
          return 1;
        }
      }
    } else if (n < HASHED) {
      if (n == SMALL) { /* the set starts: the first SMALL keys go in (all distinct) */
        memset(slot, 0, sizeof slot);
        for (size_t i = 0; i < SMALL; i++) {
          uint32_t h = key_hash(all[i].key, all[i].len) & (SLOTS - 1);
          while (slot[h]) h = (h + 1) & (SLOTS - 1);
          slot[h] = (uint8_t)(i + 1);
        }
      }
      uint32_t h = key_hash(e.key, e.keylen) & (SLOTS - 1);
      for (; slot[h]; h = (h + 1) & (SLOTS - 1)) {
        const keyref *k = &all[slot[h] - 1];
        if (k->len == e.keylen && memcmp(k->key, e.key, e.keylen) == 0) {
          *dup = e;
          return 1;
        }
      }
      slot[h] = (uint8_t)(n + 1);
    } else if (n == cap) {
      keyref *p = malloc(2 * cap * sizeof *p);
      if (!p) {
        if (all != stack) free(all);
        return AS_ERR;
      }
      memcpy(p, all, n * sizeof *p);
      if (all != stack) free(all);
      all = p;
      cap *= 2;
    }
    all[n].key = e.key;
    all[n].len = e.keylen;
    n++;
  }
  int found = 0;
  if (rc == 0 && n > HASHED) {
    qsort(all, n, sizeof *all, keyref_cmp);
    for (size_t i = 1; i < n && !found; i++) {
      if (all[i].len == all[i - 1].len && memcmp(all[i].key, all[i - 1].key, all[i].len) == 0) {
        found = 1;
        it.off = 4;
        /* the element of the second occurrence, for the caller's message */
        while (as_bsonr_next(&it, dup) == 1 && dup->key != all[i].key) {
        }
      }
    }
  }
  if (all != stack) free(all);
  return rc != 0 ? AS_EDATA : found;
}

int as_keyset_add_hashed(as_keyset *ks, const as_bsonr_el *e, uint32_t h) {
  enum { SLOTS = sizeof ks->slot };
  uint32_t n = ks->n;
  if (n == 8) { /* the set starts: the first 8 keys (all distinct) go in */
    memset(ks->slot, 0, sizeof ks->slot);
    for (uint32_t i = 0; i < 8; i++) {
      uint32_t s = ks->k[i].h & (SLOTS - 1);
      while (ks->slot[s]) s = (s + 1) & (SLOTS - 1);
      ks->slot[s] = (uint8_t)(i + 1);
    }
  }
  uint32_t s = h & (SLOTS - 1);
  for (; ks->slot[s]; s = (s + 1) & (SLOTS - 1)) {
    const uint32_t i = ks->slot[s] - 1u;
    if (ks->k[i].h == h && ks->k[i].len == e->keylen && memcmp(ks->k[i].key, e->key, e->keylen) == 0) return 1;
  }
  ks->slot[s] = (uint8_t)(n + 1); /* at most 32 of 64 slots are used: a free one is always found */
  ks->k[n].key = e->key;
  ks->k[n].len = e->keylen;
  ks->k[n].h = h;
  ks->n = n + 1;
  return 0;
}

int as_bsonr_first(const bson_t *holder, as_bsonr_el *e) {
  as_bsonr r;
  if (as_bsonr_init_doc(&r, holder) != AS_OK) return AS_EDATA;
  return as_bsonr_next(&r, e) == 1 ? AS_OK : AS_EDATA;
}
