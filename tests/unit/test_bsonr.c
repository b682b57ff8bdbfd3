/* test_bsonr.c — the raw BSON reader (mappings/as_bsonr.h): every type read like libbson
 * reads it, and truncated or corrupt input is an error, never a crash or a read outside the
 * document (each document is read from a heap block of exactly its size, so a sanitizer or
 * valgrind run sees any overrun). */
#include <check.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "as_bson.h"
#include "as_bsonr.h"
#include "as_buf.h"
#include "as_test_util.h"

/* A heap copy of exactly the document's bytes. */
static uint8_t *exact_copy(const uint8_t *p, size_t n) {
  uint8_t *c = malloc(n ? n : 1);
  ck_assert_ptr_nonnull(c);
  memcpy(c, p, n);
  return c;
}

/* Every type of the specification, and the two binary forms. */
static bson_t *all_types(void) {
  bson_t *b = bson_new();
  bson_oid_t oid;
  bson_oid_init_from_string(&oid, "65a1b2c3d4e5f60718293a4b");
  bson_decimal128_t dec;
  bson_decimal128_from_string("-1.2345E-10", &dec);
  BSON_APPEND_DOUBLE(b, "double", -2.5);
  bson_append_utf8(b, "utf8", -1, "a\0b", 3);
  bson_t sub;
  BSON_APPEND_DOCUMENT_BEGIN(b, "doc", &sub);
  BSON_APPEND_INT32(&sub, "x", 1);
  bson_append_document_end(b, &sub);
  BSON_APPEND_ARRAY_BEGIN(b, "arr", &sub);
  BSON_APPEND_UTF8(&sub, "0", "e");
  bson_append_array_end(b, &sub);
  BSON_APPEND_BINARY(b, "bin", BSON_SUBTYPE_USER, (const uint8_t *)"\x01\x02\x03", 3);
  BSON_APPEND_BINARY(b, "bin2", BSON_SUBTYPE_BINARY_DEPRECATED, (const uint8_t *)"\x09\x08", 2);
  BSON_APPEND_UNDEFINED(b, "undef");
  BSON_APPEND_OID(b, "oid", &oid);
  BSON_APPEND_BOOL(b, "bool", true);
  BSON_APPEND_DATE_TIME(b, "date", -1234567);
  BSON_APPEND_NULL(b, "null");
  BSON_APPEND_REGEX(b, "regex", "^a.c$", "imx");
  bson_append_dbpointer(b, "dbp", -1, "db.coll", &oid);
  BSON_APPEND_CODE(b, "code", "f(x)");
  BSON_APPEND_SYMBOL(b, "sym", "sy");
  bson_t scope = BSON_INITIALIZER;
  BSON_APPEND_INT32(&scope, "x", 7);
  BSON_APPEND_CODE_WITH_SCOPE(b, "cws", "g(x)", &scope);
  bson_destroy(&scope);
  BSON_APPEND_INT32(b, "i32", -7);
  BSON_APPEND_TIMESTAMP(b, "ts", 4000000000u, 9);
  BSON_APPEND_INT64(b, "i64", INT64_MIN);
  BSON_APPEND_DECIMAL128(b, "dec", &dec);
  BSON_APPEND_MAXKEY(b, "max");
  BSON_APPEND_MINKEY(b, "min");
  bson_append_utf8(b, "", 0, "", 0); /* empty key, empty string */
  return b;
}

/* One element read by as_bsonr against the same element read by libbson's public API. */
static void same_element(const as_bsonr_el *e, const bson_iter_t *it) {
  ck_assert_int_eq(e->type, bson_iter_type(it));
  ck_assert_uint_eq(e->keylen, bson_iter_key_len(it));
  ck_assert(memcmp(e->key, bson_iter_key(it), e->keylen) == 0 && e->key[e->keylen] == '\0');
  uint32_t n, m;
  switch (bson_iter_type(it)) {
    case BSON_TYPE_DOUBLE: ck_assert(as_bsonr_double(e) == bson_iter_double(it)); break;
    case BSON_TYPE_UTF8: {
      const char *s = as_bsonr_str(e, &n), *t = bson_iter_utf8(it, &m);
      ck_assert(n == m && memcmp(s, t, n) == 0);
      break;
    }
    case BSON_TYPE_SYMBOL: {
      const char *s = as_bsonr_str(e, &n), *t = bson_iter_symbol(it, &m);
      ck_assert(n == m && memcmp(s, t, n) == 0);
      break;
    }
    case BSON_TYPE_CODE: {
      const char *s = as_bsonr_str(e, &n), *t = bson_iter_code(it, &m);
      ck_assert(n == m && memcmp(s, t, n) == 0);
      break;
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: {
      const uint8_t *d;
      if (bson_iter_type(it) == BSON_TYPE_DOCUMENT) bson_iter_document(it, &m, &d);
      else bson_iter_array(it, &m, &d);
      ck_assert(e->vlen == m && e->val == d);
      as_bsonr child;
      ck_assert_int_eq(as_bsonr_child(e, &child), AS_OK);
      break;
    }
    case BSON_TYPE_BINARY: {
      bson_subtype_t st;
      const uint8_t *p, *q;
      uint8_t st2;
      bson_iter_binary(it, &st, &m, &p);
      q = as_bsonr_binary(e, &st2, &n);
      ck_assert(st2 == st && n == m && memcmp(p, q, n) == 0);
      break;
    }
    case BSON_TYPE_OID: ck_assert(memcmp(as_bsonr_oid(e), bson_iter_oid(it)->bytes, 12) == 0); break;
    case BSON_TYPE_BOOL: ck_assert(as_bsonr_bool(e) == bson_iter_bool(it)); break;
    case BSON_TYPE_DATE_TIME: ck_assert(as_bsonr_i64(e) == bson_iter_date_time(it)); break;
    case BSON_TYPE_REGEX: {
      const char *o1, *o2;
      const char *p1 = as_bsonr_regex(e, &o1), *p2 = bson_iter_regex(it, &o2);
      ck_assert(strcmp(p1, p2) == 0 && strcmp(o1, o2) == 0);
      break;
    }
    case BSON_TYPE_DBPOINTER: {
      const char *c1, *c2;
      const uint8_t *o1;
      const bson_oid_t *o2;
      c1 = as_bsonr_dbpointer(e, &n, &o1);
      bson_iter_dbpointer(it, &m, &c2, &o2);
      ck_assert(n == m && memcmp(c1, c2, n) == 0 && memcmp(o1, o2->bytes, 12) == 0);
      break;
    }
    case BSON_TYPE_CODEWSCOPE: {
      uint32_t sl, sl2;
      const uint8_t *sp, *sp2;
      const char *c1 = as_bsonr_codewscope(e, &n, &sp, &sl), *c2 = bson_iter_codewscope(it, &m, &sl2, &sp2);
      ck_assert(n == m && memcmp(c1, c2, n) == 0 && sl == sl2 && sp == sp2);
      break;
    }
    case BSON_TYPE_INT32: ck_assert_int_eq(as_bsonr_i32(e), bson_iter_int32(it)); break;
    case BSON_TYPE_TIMESTAMP: {
      uint32_t t1, i1, t2, i2;
      as_bsonr_timestamp(e, &t1, &i1);
      bson_iter_timestamp(it, &t2, &i2);
      ck_assert(t1 == t2 && i1 == i2);
      break;
    }
    case BSON_TYPE_INT64: ck_assert(as_bsonr_i64(e) == bson_iter_int64(it)); break;
    case BSON_TYPE_DECIMAL128: {
      bson_decimal128_t a, b;
      as_bsonr_dec128(e, &a);
      bson_iter_decimal128(it, &b);
      ck_assert(a.low == b.low && a.high == b.high);
      break;
    }
    default: break; /* null, undefined, minKey, maxKey: no value */
  }
}

/* as_bsonr_dup_key in its three regimes: pairwise (<= 8 keys), stack set (<= 128), sorted. */
START_TEST(test_dup_key) {
  static const int sizes[] = {1, 2, 8, 9, 50, 127, 128, 129, 300};
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    int n = sizes[si];
    for (int dup_at = -1; dup_at < n; dup_at += n > 2 ? n / 2 + 1 : 1) {
      bson_t b = BSON_INITIALIZER;
      char k[16];
      for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "k%d", i);
        BSON_APPEND_INT32(&b, k, i);
      }
      if (dup_at >= 0) { /* one more element named like element dup_at */
        snprintf(k, sizeof k, "k%d", dup_at);
        BSON_APPEND_INT32(&b, k, -1);
      }
      as_bsonr r;
      as_bsonr_el e;
      ck_assert_int_eq(as_bsonr_init_doc(&r, &b), AS_OK);
      int rc = as_bsonr_dup_key(&r, &e);
      ck_assert_msg(rc == (dup_at >= 0), "%d keys, duplicate of %d: %d", n, dup_at, rc);
      if (rc == 1) {
        ck_assert_str_eq(e.key, k);
        ck_assert_int_eq(as_bsonr_i32(&e), -1); /* the second occurrence */
      }
      bson_destroy(&b);
    }
  }
}
END_TEST

/* A random document for the key-set property: up to 80 keys drawn from few short names and a
 * few long ones sharing a prefix and a suffix (so the digest's parts collide), values of sizes
 * 0 (null: a short key may end the document with fewer than 8 bytes after it), 4, 8 and more;
 * sometimes a sub-document holding the same shape. *has_dup: some level has a key twice. */
static void random_doc(bson_t *b, unsigned *seed, int depth, bool *has_dup) {
  static const char *names[] = {"", "a", "b", "ab", "ba", "abcdefg", "abcdefh", "abcdefgh", "_id",
                                "long_prefix_middle_suffix", "long_prefix_MIDDLE_suffix",
                                "long_prefix_middle_suffiy", "0123456789abcdef", "0123456789abcdeg"};
  enum { NNAMES = sizeof names / sizeof *names };
  int n = (int)(rand_r(seed) % 81);
  bool pool_small = rand_r(seed) % 2; /* few names: a key twice is likely */
  char keys[90][40];
  int nk = 0;
  for (int i = 0; i < n; i++) {
    char k[40];
    if (pool_small) snprintf(k, sizeof k, "%s", names[rand_r(seed) % NNAMES]);
    else snprintf(k, sizeof k, "%s%d", names[rand_r(seed) % NNAMES], (int)(rand_r(seed) % 400));
    for (int j = 0; j < nk; j++)
      if (strcmp(keys[j], k) == 0) *has_dup = true;
    snprintf(keys[nk++], sizeof keys[0], "%s", k);
    switch (rand_r(seed) % 5) {
      case 0: BSON_APPEND_NULL(b, k); break;
      case 1: BSON_APPEND_INT32(b, k, i); break;
      case 2: BSON_APPEND_INT64(b, k, i); break;
      case 3: BSON_APPEND_UTF8(b, k, "some text"); break;
      default:
        if (depth < 2) {
          bson_t sub;
          BSON_APPEND_DOCUMENT_BEGIN(b, k, &sub);
          random_doc(&sub, seed, depth + 1, has_dup);
          bson_append_document_end(b, &sub);
        } else {
          BSON_APPEND_BOOL(b, k, true);
        }
    }
  }
}

/* A walk with as_keyset (and as_bsonr_dup_key once it is full) finds a key twice exactly when
 * a pairwise comparison does; the writer of AS-JSON refuses exactly those documents. */
START_TEST(test_keyset_property) {
  unsigned seed = 20261206u;
  int dups = 0, full = 0;
  for (int round = 0; round < 4000; round++) {
    bson_t b = BSON_INITIALIZER;
    bool nested_dup = false;
    unsigned s0 = seed;
    random_doc(&b, &seed, 2, &nested_dup); /* depth 2: one level, no sub-documents */
    as_bsonr r;
    as_bsonr_el e;
    ck_assert_int_eq(as_bsonr_init_doc(&r, &b), AS_OK);
    as_keyset ks;
    as_keyset_init(&ks);
    int found = 0, rc;
    bool gave_up = false;
    while ((rc = as_bsonr_next(&r, &e)) == 1 && !found) {
      int a = as_keyset_add(&ks, &e);
      ck_assert(a >= 0 && a <= 2);
      if (a == 1) found = 1;
      if (a == 2) gave_up = true;
    }
    if (!found && gave_up) {
      full++;
      ck_assert_int_eq(as_bsonr_init_doc(&r, &b), AS_OK);
      found = as_bsonr_dup_key(&r, &e);
    }
    ck_assert_msg(found == (int)nested_dup, "round %d (seed %u): found %d, expected %d", round, s0, found,
                  (int)nested_dup);
    dups += found;
    bson_destroy(&b);

    /* nested documents through the AS-JSON writer */
    bson_t d = BSON_INITIALIZER;
    bool any_dup = false;
    random_doc(&d, &seed, 0, &any_dup);
    as_buf out = AS_BUF_INIT;
    as_error err = {0};
    int wr = as_bson_to_asjson(&d, false, &out, &err);
    ck_assert_msg((wr != AS_OK) == any_dup, "round %d: writer %d (%s), key twice: %d", round, wr, err.message,
                  (int)any_dup);
    if (wr != AS_OK) ck_assert_msg(strstr(err.message, "twice") != NULL, "%s", err.message);
    as_buf_free(&out);
    bson_destroy(&d);
  }
  ck_assert_int_gt(dups, 500); /* both answers were met often */
  ck_assert_int_gt(4000 - dups, 500);
  ck_assert_int_gt(full, 100);
}
END_TEST

START_TEST(test_every_type) {
  bson_t *b = all_types();
  uint8_t *data = exact_copy(bson_get_data(b), b->len);
  bson_t view;
  ck_assert(bson_init_static(&view, data, b->len));
  as_bsonr r;
  ck_assert_int_eq(as_bsonr_init(&r, data, b->len), AS_OK);
  bson_iter_t it;
  ck_assert(bson_iter_init(&it, &view));
  as_bsonr_el e;
  int count = 0;
  while (bson_iter_next(&it)) {
    ck_assert_int_eq(as_bsonr_next(&r, &e), 1);
    same_element(&e, &it);
    count++;
  }
  ck_assert_int_eq(count, 23);
  ck_assert_int_eq(as_bsonr_next(&r, &e), 0);
  ck_assert_int_eq(as_bsonr_next(&r, &e), 0); /* stays at the end */
  /* find, first */
  ck_assert_int_eq(as_bsonr_find(&r, "ts", 2, &e), 1);
  ck_assert_int_eq(e.type, BSON_TYPE_TIMESTAMP);
  ck_assert_int_eq(as_bsonr_find(&r, "t", 1, &e), 0);
  ck_assert_int_eq(as_bsonr_find(&r, "", 0, &e), 1);
  ck_assert_int_eq(e.type, BSON_TYPE_UTF8);
  ck_assert_int_eq(as_bsonr_first(&view, &e), AS_OK);
  ck_assert_str_eq(e.key, "double");
  /* the empty document */
  bson_t empty = BSON_INITIALIZER;
  ck_assert_int_eq(as_bsonr_init_doc(&r, &empty), AS_OK);
  ck_assert_int_eq(as_bsonr_next(&r, &e), 0);
  ck_assert_int_eq(as_bsonr_first(&empty, &e), AS_EDATA);
  free(data);
  bson_destroy(b);
}
END_TEST

static bool key_not_utf8; /* set by read_all: libbson's validation refuses such keys, we do not */

/* Reads the whole document, recursing into documents, arrays and scopes: AS_OK or AS_EDATA. */
static int read_all(const uint8_t *p, size_t n, int depth) {
  as_bsonr r;
  as_bsonr_el e;
  int rc;
  if (depth > 100) return AS_EDATA;
  if (as_bsonr_init(&r, p, n) != AS_OK) return AS_EDATA;
  while ((rc = as_bsonr_next(&r, &e)) == 1) {
    volatile uint8_t sink = 0;
    for (uint32_t i = 0; i < e.vlen; i++) sink ^= e.val[i]; /* touch every value byte */
    for (uint32_t i = 0; i < e.keylen; i++) sink ^= (uint8_t)e.key[i];
    (void)sink;
    if (!bson_utf8_validate(e.key, e.keylen, false)) key_not_utf8 = true;
    if (e.type == BSON_TYPE_DOCUMENT || e.type == BSON_TYPE_ARRAY) {
      as_bsonr c;
      if (as_bsonr_child(&e, &c) != AS_OK || read_all(e.val, e.vlen, depth + 1) != AS_OK) return AS_EDATA;
    } else if (e.type == BSON_TYPE_CODEWSCOPE) {
      uint32_t len, sl;
      const uint8_t *sp;
      (void)as_bsonr_codewscope(&e, &len, &sp, &sl);
      if (read_all(sp, sl, depth + 1) != AS_OK) return AS_EDATA;
    } else if (e.type == BSON_TYPE_REGEX) {
      const char *opt;
      const char *pat = as_bsonr_regex(&e, &opt);
      ck_assert(pat + strlen(pat) < (const char *)e.val + e.vlen && opt + strlen(opt) < (const char *)e.val + e.vlen);
    }
  }
  return rc == 0 ? AS_OK : AS_EDATA;
}

START_TEST(test_truncated) {
  /* every prefix of a valid document, its length field saying so and its last byte made the
   * final NUL: valid exactly when the cut falls between two top-level elements */
  bson_t *b = all_types();
  const uint8_t *src = bson_get_data(b);
  ck_assert_int_eq(read_all(src, b->len, 0), AS_OK);
  uint8_t *boundary = calloc(b->len + 1, 1);
  as_bsonr r;
  as_bsonr_el e;
  ck_assert_int_eq(as_bsonr_init(&r, src, b->len), AS_OK);
  boundary[r.off] = 1;
  while (as_bsonr_next(&r, &e) == 1) boundary[r.off] = 1;
  for (size_t n = 0; n < b->len; n++) {
    uint8_t *p = exact_copy(src, n);
    if (n >= 4) {
      uint32_t le = BSON_UINT32_TO_LE((uint32_t)n);
      memcpy(p, &le, 4);
    }
    if (n >= 5) p[n - 1] = 0;
    int want = n >= 5 && boundary[n - 1] ? AS_OK : AS_EDATA;
    ck_assert_msg(read_all(p, n, 0) == want, "prefix of %zu bytes", n);
    free(p);
  }
  free(boundary);
  bson_destroy(b);
}
END_TEST

/* A document of one element: type byte, key "k", value bytes. */
static int one(uint8_t type, const void *val, size_t n) {
  uint8_t buf[256];
  size_t len = 4 + 1 + 2 + n + 1;
  ck_assert(len <= sizeof buf);
  uint32_t le = BSON_UINT32_TO_LE((uint32_t)len);
  memcpy(buf, &le, 4);
  buf[4] = type;
  buf[5] = 'k';
  buf[6] = 0;
  memcpy(buf + 7, val, n);
  buf[len - 1] = 0;
  uint8_t *p = exact_copy(buf, len);
  int rc = read_all(p, len, 0);
  free(p);
  return rc;
}

START_TEST(test_corrupt_elements) {
  ck_assert_int_eq(one(BSON_TYPE_INT32, "\1\0\0\0", 4), AS_OK);
  ck_assert_int_eq(one(BSON_TYPE_INT32, "\1\0\0", 3), AS_EDATA);       /* short value */
  ck_assert_int_eq(one(BSON_TYPE_BOOL, "\1", 1), AS_OK);
  ck_assert_int_eq(one(BSON_TYPE_BOOL, "\2", 1), AS_EDATA);            /* bool 2 */
  ck_assert_int_eq(one(0x20, "", 0), AS_EDATA);                        /* unknown type */
  ck_assert_int_eq(one(0x06 + 0x80, "", 0), AS_EDATA);                 /* unknown type */
  ck_assert_int_eq(one(BSON_TYPE_UTF8, "\2\0\0\0a\0", 6), AS_OK);
  ck_assert_int_eq(one(BSON_TYPE_UTF8, "\2\0\0\0ab", 6), AS_EDATA);     /* no NUL at the end */
  ck_assert_int_eq(one(BSON_TYPE_UTF8, "\0\0\0\0", 4), AS_EDATA);       /* length 0 */
  ck_assert_int_eq(one(BSON_TYPE_UTF8, "\xff\xff\xff\x7f" "a\0", 6), AS_EDATA); /* too long */
  ck_assert_int_eq(one(BSON_TYPE_UTF8, "\xff\xff\xff\xff" "a\0", 6), AS_EDATA); /* negative */
  ck_assert_int_eq(one(BSON_TYPE_DOCUMENT, "\5\0\0\0\0", 5), AS_OK);
  ck_assert_int_eq(one(BSON_TYPE_DOCUMENT, "\4\0\0\0", 4), AS_EDATA);   /* shorter than 5 */
  ck_assert_int_eq(one(BSON_TYPE_DOCUMENT, "\6\0\0\0\0\0", 6), AS_EDATA); /* a NUL where an element starts */
  ck_assert_int_eq(one(BSON_TYPE_DOCUMENT, "\5\0\0\0\1", 5), AS_EDATA); /* no final NUL */
  ck_assert_int_eq(one(BSON_TYPE_DOCUMENT, "\x09\0\0\0\0", 5), AS_EDATA); /* beyond the parent */
  ck_assert_int_eq(one(BSON_TYPE_BINARY, "\2\0\0\0\0ab", 7), AS_OK);
  ck_assert_int_eq(one(BSON_TYPE_BINARY, "\3\0\0\0\0ab", 7), AS_EDATA); /* beyond */
  ck_assert_int_eq(one(BSON_TYPE_BINARY, "\6\0\0\0\2\2\0\0\0ab", 11), AS_OK);
  ck_assert_int_eq(one(BSON_TYPE_BINARY, "\6\0\0\0\2\3\0\0\0ab", 11), AS_EDATA); /* subtype 2, bad inner length */
  ck_assert_int_eq(one(BSON_TYPE_BINARY, "\3\0\0\0\2abc", 8), AS_EDATA); /* subtype 2 without inner length */
  ck_assert_int_eq(one(BSON_TYPE_REGEX, "a\0i\0", 4), AS_OK);
  ck_assert_int_eq(one(BSON_TYPE_REGEX, "a\0i", 3), AS_EDATA);          /* options unterminated */
  ck_assert_int_eq(one(BSON_TYPE_DBPOINTER, "\2\0\0\0c\0" "abcdefghijkl", 18), AS_OK);
  ck_assert_int_eq(one(BSON_TYPE_DBPOINTER, "\2\0\0\0c\0" "abcdefghijk", 17), AS_EDATA); /* short oid */
  /* code with scope: total 4 + (4+2) + 5 = 15 */
  ck_assert_int_eq(one(BSON_TYPE_CODEWSCOPE, "\x0f\0\0\0\2\0\0\0f\0\5\0\0\0\0", 15), AS_OK);
  ck_assert_int_eq(one(BSON_TYPE_CODEWSCOPE, "\x10\0\0\0\2\0\0\0f\0\5\0\0\0\0\0", 16), AS_EDATA); /* total != parts */
  ck_assert_int_eq(one(BSON_TYPE_CODEWSCOPE, "\x0f\0\0\0\2\0\0\0f\0\6\0\0\0\0", 15), AS_EDATA);   /* scope length */
  ck_assert_int_eq(one(BSON_TYPE_CODEWSCOPE, "\x0f\0\0\0\3\0\0\0f\0\5\0\0\0\0", 15), AS_EDATA);   /* code length */
  ck_assert_int_eq(one(BSON_TYPE_CODEWSCOPE, "\x0f\0\0\0\2\0\0\0f\0\5\0\0\0\1", 15), AS_EDATA);   /* scope's NUL */
  /* key without its NUL: the document's final NUL is not a key terminator */
  uint8_t nokey[] = {7, 0, 0, 0, BSON_TYPE_NULL, 'k', 0};
  ck_assert_int_eq(read_all(nokey, sizeof nokey, 0), AS_EDATA);
  /* document length field disagreeing with the buffer, missing final NUL, too short */
  uint8_t d1[] = {6, 0, 0, 0, 0}, d2[] = {5, 0, 0, 0, 1}, d3[] = {4, 0, 0, 0};
  as_bsonr r;
  ck_assert_int_eq(as_bsonr_init(&r, d1, sizeof d1), AS_EDATA);
  ck_assert_int_eq(as_bsonr_init(&r, d2, sizeof d2), AS_EDATA);
  ck_assert_int_eq(as_bsonr_init(&r, d3, sizeof d3), AS_EDATA);
  ck_assert_int_eq(as_bsonr_init(&r, NULL, 0), AS_EDATA);
  as_bsonr_el e;
  ck_assert_int_eq(as_bsonr_next(&r, &e), 0); /* a failed init reads as an empty document */
}
END_TEST

START_TEST(test_random_corruption) {
  /* random byte changes in a valid document: each read ends in AS_OK or AS_EDATA, within the
   * document's bytes; what we accept libbson accepts too (keys aside: libbson's validation
   * also wants them UTF-8, the AS-JSON writer checks that) */
  unsigned seed = (unsigned)time(NULL);
  const char *env = getenv("AS_TEST_SEED");
  if (env) seed = (unsigned)strtoul(env, NULL, 10);
  srand(seed);
  bson_t *b = all_types();
  const uint8_t *src = bson_get_data(b);
  int accepted = 0;
  for (int round = 0; round < 3000; round++) {
    uint8_t *p = exact_copy(src, b->len);
    int flips = 1 + rand() % 3;
    for (int k = 0; k < flips; k++) {
      size_t at = 4 + (size_t)rand() % (b->len - 5); /* keep the header and final NUL */
      p[at] = (uint8_t)(rand() % 4 == 0 ? (unsigned)rand() % 256u : p[at] ^ (1u << (rand() % 8)));
    }
    key_not_utf8 = false;
    if (read_all(p, b->len, 0) == AS_OK && !key_not_utf8) {
      accepted++;
      bson_t view;
      size_t off = 0;
      ck_assert(bson_init_static(&view, p, b->len));
      ck_assert_msg(bson_validate(&view, BSON_VALIDATE_NONE, &off), "seed %u round %d: accepted, libbson refuses at %zu",
                    seed, round, off);
    }
    free(p);
  }
  ck_assert_int_gt(accepted, 0); /* some changes (inside values) keep the document valid */
  bson_destroy(b);
}
END_TEST

int main(void) {
  Suite *s = suite_create("bsonr");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_dup_key);
  tcase_add_test(tc, test_keyset_property);
  tcase_add_test(tc, test_every_type);
  tcase_add_test(tc, test_truncated);
  tcase_add_test(tc, test_corrupt_elements);
  tcase_add_test(tc, test_random_corruption);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
