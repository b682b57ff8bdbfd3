/* test_roundtrip.c — document -> row -> document gives the same document (byte-equal BSON when
 * the fields are in as_row_to_doc's order, equal field by field otherwise), and the row hash is
 * stable; also BSON -> AS-JSON -> BSON on the same corpus, and a random corpus. */
#include <check.h>

#include "as_test_util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "as_bson.h"
#include "as_bsonr.h"
#include "as_buf.h"
#include "as_codec_fixture.h"
#include "as_hash.h"

static as_schema *rt;

static const fx_col rt_cols[] = {
    {"id", "_id", AS_T_OBJECTID, FX_KEY}, {"name", "name", AS_T_TEXT, 0},    {"n", "n", AS_T_INT64, 0},
    {"score", "score", AS_T_DOUBLE, 0},   {"price", "price", AS_T_DECIMAL, 0}, {"at", "at", AS_T_TIMESTAMP, 0},
    {"day", "day", AS_T_DATE, 0},         {"blob", "blob", AS_T_BYTES, 0},   {"uid", "uid", AS_T_UUID, 0},
    {"flag", "flag", AS_T_BOOL, 0},       {"meta", "meta", AS_T_JSON, 0},    {"x", "a.x", AS_T_INT64, 0},
    {"y", "a.b.y", AS_T_TEXT, 0},         {"rest", "*", AS_T_JSON, 0},
};

#define OID "{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"}"
#define HEAD                                                                                              \
  "\"_id\":" OID ",\"name\":\"Zoë ✓ 日本\",\"n\":{\"$numberLong\":\"-9223372036854775808\"},"            \
  "\"score\":{\"$numberDouble\":\"-0.0\"},\"price\":{\"$numberDecimal\":\"1.50\"},"                      \
  "\"at\":{\"$date\":{\"$numberLong\":\"-2208988800000\"}},\"day\":{\"$date\":{\"$numberLong\":\"0\"}},"  \
  "\"blob\":{\"$binary\":{\"base64\":\"AAEC\",\"subType\":\"00\"}},"                                     \
  "\"uid\":{\"$binary\":{\"base64\":\"ABEiM0RVZneImaq7zN3u/w==\",\"subType\":\"04\"}},\"flag\":false,"

/* Canonical extended JSON documents, fields in as_row_to_doc order. */
static const char *const corpus[] = {
    "{" HEAD
    "\"meta\":{\"k\":[1,\"two\",3.5,null,{\"d\":{\"$date\":{\"$numberLong\":\"253402300800000\"}}}]},"
    "\"a\":{\"x\":{\"$numberInt\":\"7\"},\"b\":{\"y\":\"why\",\"z\":1},\"w\":[]},"
    "\"d_nan\":{\"$numberDouble\":\"NaN\"},\"d_inf\":{\"$numberDouble\":\"-Infinity\"},\"d_neg0\":{\"$numberDouble\":\"-0.0\"},"
    "\"d_big\":{\"$numberDouble\":\"1e+300\"},\"d_frac\":0.1,\"d_int\":3.0,"
    "\"s\":\"tab\\tquote\\\"back\\\\slash\\u0001 é\",\"doc\":{\"deep\":{\"deeper\":{\"x\":[[1],[2,[3]]]}}},"
    "\"arr\":[1,{\"$numberLong\":\"2\"},3.5,\"s\",true,null,{\"a\":1},[],{\"$oid\":\"65a1b2c3d4e5f60718293a4c\"}],"
    "\"b0\":{\"$binary\":{\"base64\":\"\",\"subType\":\"00\"}},\"b4\":{\"$binary\":{\"base64\":\"ABEiM0RVZneImaq7zN3u/w==\",\"subType\":\"04\"}},"
    "\"oid\":{\"$oid\":\"000000000000000000000000\"},\"t\":true,"
    "\"dt_pre\":{\"$date\":{\"$numberLong\":\"-62135596800000\"}},\"dt_far\":{\"$date\":{\"$numberLong\":\"253402300800001\"}},"
    "\"nul\":null,\"re\":{\"$regularExpression\":{\"pattern\":\"^a.*\\\\d$\",\"options\":\"imsx\"}},"
    "\"i32\":{\"$numberInt\":\"-2147483648\"},\"ts\":{\"$timestamp\":{\"t\":1700000000,\"i\":3}},"
    "\"i64max\":{\"$numberLong\":\"9223372036854775807\"},\"i64small\":{\"$numberLong\":\"0\"},"
    "\"dec\":{\"$numberDecimal\":\"-1.2345678901234567890123456789012E-6000\"},\"dec_nan\":{\"$numberDecimal\":\"NaN\"},"
    "\"min\":{\"$minKey\":1},\"max\":{\"$maxKey\":1},\"sym\":{\"$symbol\":\"sy\"},\"code\":{\"$code\":\"x=1\"},"
    "\"cws\":{\"$code\":\"y\",\"$scope\":{\"y\":{\"$numberInt\":\"2\"}}},\"undef\":{\"$undefined\":true},"
    "\"dbp\":{\"$dbPointer\":{\"$ref\":\"c.d\",\"$id\":" OID "}}}",
    /* NaN and 1e300 in the double column, big n, array in the json column, no catch-all */
    "{\"_id\":" OID ",\"name\":\"\",\"n\":{\"$numberLong\":\"9223372036854775807\"},\"score\":{\"$numberDouble\":\"NaN\"},"
    "\"price\":{\"$numberDecimal\":\"-0\"},\"at\":{\"$date\":{\"$numberLong\":\"253402300799999\"}},"
    "\"day\":{\"$date\":{\"$numberLong\":\"-62135596800000\"}},\"blob\":{\"$binary\":{\"base64\":\"/w==\",\"subType\":\"00\"}},"
    "\"uid\":{\"$binary\":{\"base64\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"subType\":\"04\"}},\"flag\":true,"
    "\"meta\":[1,[2],{\"$numberDecimal\":\"1E+10\"}],\"a\":{\"x\":{\"$numberInt\":\"-1\"},\"b\":{\"y\":\"\"}}}",
    "{\"_id\":" OID ",\"name\":null,\"n\":null,\"score\":{\"$numberDouble\":\"1.0E+300\"},\"price\":null,\"at\":null,"
    "\"day\":null,\"blob\":null,\"uid\":null,\"flag\":null,\"meta\":{},\"a\":{\"x\":null,\"b\":{\"y\":null}},"
    "\"z\":{\"$numberDouble\":\"Infinity\"}}",
    /* scalars in the json column: a string, an int64, a regex, a double with an integral value */
#define NULLS_BUT_META(m)                                                                                  \
  "{\"_id\":" OID ",\"name\":null,\"n\":null,\"score\":null,\"price\":null,\"at\":null,\"day\":null,\"blob\":null," \
  "\"uid\":null,\"flag\":null,\"meta\":" m ",\"a\":{\"x\":null,\"b\":{\"y\":null}}}"
    NULLS_BUT_META("\"just text\""),
    NULLS_BUT_META("{\"$numberLong\":\"5\"}"),
    NULLS_BUT_META("{\"$regularExpression\":{\"pattern\":\"a\",\"options\":\"i\"}}"),
    NULLS_BUT_META("{\"$numberDouble\":\"2.0\"}"),
    NULLS_BUT_META("{\"$numberInt\":\"-3\"}"),
#undef NULLS_BUT_META
};

static bson_t *doc(const char *json) {
  bson_error_t be;
  bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &be);
  ck_assert_msg(b != NULL, "%s", be.message);
  return b;
}

static char *asjson(const bson_t *b) {
  as_buf out = AS_BUF_INIT;
  as_error err;
  ck_assert_int_eq(as_bson_to_asjson(b, false, &out, &err), AS_OK);
  return as_buf_steal(&out);
}

static void assert_same_bytes(const bson_t *a, const bson_t *b) {
  if (a->len != b->len || memcmp(bson_get_data(a), bson_get_data(b), a->len) != 0) {
    char *x = asjson(a), *y = asjson(b);
    ck_abort_msg("documents differ:\n%s\n%s", x, y);
  }
}

/* Top-level fields in any order; every value byte-equal (read with as_bsonr: no libbson
 * private fields). */
static void assert_same_fields(const bson_t *a, const bson_t *b) {
  ck_assert_uint_eq(bson_count_keys(a), bson_count_keys(b));
  as_bsonr ra, rb;
  as_bsonr_el ea, eb;
  ck_assert_int_eq(as_bsonr_init_doc(&ra, a), AS_OK);
  ck_assert_int_eq(as_bsonr_init_doc(&rb, b), AS_OK);
  while (as_bsonr_next(&ra, &ea) == 1) {
    ck_assert_msg(as_bsonr_find(&rb, ea.key, ea.keylen, &eb) == 1, "missing %s", ea.key);
    ck_assert_int_eq(ea.type, eb.type);
    ck_assert_msg(ea.vlen == eb.vlen && memcmp(ea.val, eb.val, ea.vlen) == 0, "field %s differs", ea.key);
  }
}

static uint64_t row_hash(const as_row *r) {
  uint64_t h;
  as_error err;
  ck_assert_msg(as_row_hash(rt, r, &h, &err) == AS_OK, "%s", err.message);
  return h;
}

/* doc -> row -> doc2 -> row2: doc2 == doc (bytes), hash(row) == hash(row2). */
static void roundtrip_doc(const bson_t *d, bool exact_order) {
  as_row r = {0}, r2 = {0};
  as_error err;
  bson_t back;
  ck_assert_msg(as_doc_to_row(rt, d, &r, &err) == AS_OK, "%s", err.message);
  ck_assert_msg(as_row_to_doc(rt, &r, &back, &err) == AS_OK, "%s", err.message);
  if (exact_order) assert_same_bytes(d, &back);
  else assert_same_fields(d, &back);
  ck_assert_msg(as_doc_to_row(rt, &back, &r2, &err) == AS_OK, "%s", err.message);
  ck_assert_uint_eq(row_hash(&r), row_hash(&r2));
  for (size_t i = 0; i < r.n; i++) ck_assert_msg(as_value_equal(&r.v[i], &r2.v[i]), "column %zu", i);
  /* the row survives its canonical JSON form too */
  as_delta dl;
  as_delta_init(&dl, rt, AS_OP_INSERT);
  as_row_clear(&dl.row);
  as_row_copy(&dl.row, &r);
  json_t *j = as_delta_to_json(&dl, &err);
  ck_assert_msg(j != NULL, "%s", err.message);
  char *text = json_dumps(j, JSON_COMPACT);
  json_t *j2 = json_loads(text, 0, NULL);
  ck_assert_ptr_nonnull(j2);
  as_delta dl2;
  const as_schema *lookup(void *, const char *);
  ck_assert_msg(as_delta_from_json(j2, lookup, NULL, &dl2, &err) == AS_OK, "%s", err.message);
  ck_assert_uint_eq(row_hash(&dl2.row), row_hash(&r));
  bson_t back2;
  ck_assert_msg(as_row_to_doc(rt, &dl2.row, &back2, &err) == AS_OK, "%s", err.message);
  assert_same_bytes(&back, &back2);
  bson_destroy(&back2);
  as_delta_clear(&dl2);
  json_decref(j2);
  free(text);
  json_decref(j);
  as_delta_clear(&dl);
  bson_destroy(&back);
  as_row_clear(&r);
  as_row_clear(&r2);
}

const as_schema *lookup(void *ctx, const char *name) {
  (void)ctx;
  return strcmp(name, rt->name) == 0 ? rt : NULL;
}

static void asjson_roundtrip(const bson_t *d) {
  char *t = asjson(d);
  bson_t back;
  bool arr;
  as_error err;
  ck_assert_msg(as_asjson_to_bson(t, strlen(t), &back, &arr, &err) == AS_OK, "%s", err.message);
  assert_same_bytes(d, &back);
  bson_destroy(&back);
  free(t);
}

START_TEST(test_corpus) {
  for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
    bson_t *d = doc(corpus[i]);
    roundtrip_doc(d, true);
    asjson_roundtrip(d);
    bson_destroy(d);
  }
}
END_TEST

START_TEST(test_other_field_order) {
  /* catch-all fields first, mapped ones shuffled: equal field by field, order restored */
  const char *src = "{\"zz\":1,\"flag\":true,\"a\":{\"q\":1,\"x\":{\"$numberInt\":\"5\"}},\"_id\":" OID ",\"name\":\"n\"}";
  bson_t *d = doc(src);
  as_row r = {0};
  as_error err;
  ck_assert_int_eq(as_doc_to_row(rt, d, &r, &err), AS_OK);
  bson_t back;
  ck_assert_int_eq(as_row_to_doc(rt, &r, &back, &err), AS_OK);
  char *t = asjson(&back);
  ck_assert_str_eq(t, "{\"_id\":" OID ",\"name\":\"n\",\"n\":null,\"score\":null,\"price\":null,\"at\":null,\"day\":null,"
                      "\"blob\":null,\"uid\":null,\"flag\":true,\"a\":{\"x\":5,\"b\":{\"y\":null},\"q\":1},"
                      "\"zz\":1}");
  free(t);
  bson_destroy(&back);
  as_row_clear(&r);
  bson_destroy(d);
  /* with every mapped field present, the document comes back equal up to top-level order */
  const char *full = "{\"zz\":[1,{\"b\":2,\"a\":1}]," HEAD "\"meta\":{\"b\":1,\"a\":2},\"a\":{\"x\":1,\"b\":{\"y\":\"q\"}}}";
  d = doc(full);
  roundtrip_doc(d, false);
  bson_destroy(d);
}
END_TEST

/* ---------------------------------------------------------------- random corpus
 *
 * Property: random BSON documents of every type and shape -> AS-JSON -> BSON is byte-identical,
 * and document -> row -> document (through the rt mapping with its catch-all) is
 * byte-identical when the document is in as_row_to_doc's order and its mapped fields hold
 * types the columns keep exactly. The seed is random per run (AS_TEST_SEED overrides it) and
 * printed with any failure. */

static uint64_t rng;
static uint64_t seed;

static uint64_t next_rand(void) { /* splitmix64 */
  uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint32_t pick(uint32_t n) { return (uint32_t)(next_rand() % n); }

static void seed_rng(void) {
  const char *env = getenv("AS_TEST_SEED");
  seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  rng = seed;
}

/* Valid UTF-8 with NULs, controls, quotes, backslashes, 2-4 byte characters. */
static size_t random_text(char *s, size_t cap) {
  static const char *const parts[] = {"a", "Z", "0", " ", "\"", "\\", "/", "\t", "\n", "\x01", "\x1f", "\x7f",
                                      "é", "日", "😀", "\xef\xbf\xbf", "$", "$$", ".", "{", "}"};
  size_t n = 0, count = pick(12);
  for (size_t i = 0; i < count; i++) {
    if (pick(10) == 0) {
      if (n + 1 < cap) s[n++] = '\0'; /* a NUL byte inside the text */
      continue;
    }
    const char *p = parts[pick(sizeof parts / sizeof parts[0])];
    size_t l = strlen(p);
    if (n + l >= cap) break;
    memcpy(s + n, p, l);
    n += l;
  }
  s[n] = '\0';
  return n;
}

/* A key for a document: plain, "$"-prefixed, wrapper look-alikes, empty, odd characters. */
static void random_key(char *k, size_t cap, int i) {
  static const char *const special[] = {"$oid", "$numberLong", "$date", "$code", "$scope", "$binary", "$",
                                        "$$", "$$oid", "$set", "", "x.y", "é", "\"q\"", "\\", "$numberDouble"};
  uint32_t r = pick(4);
  if (r == 0) snprintf(k, cap, "%s", special[pick(sizeof special / sizeof special[0])]);
  else if (r == 1) snprintf(k, cap, "$k%d", i);
  else snprintf(k, cap, "k%d", i);
}

static void random_value(bson_t *b, const char *key, int depth);

/* A document or array of random members (keys unique: AS-JSON refuses duplicates). */
static void random_container(bson_t *b, const char *key, bool arr, int depth) {
  bson_t child;
  if (arr) BSON_APPEND_ARRAY_BEGIN(b, key, &child);
  else BSON_APPEND_DOCUMENT_BEGIN(b, key, &child);
  int n = depth > 6 ? 0 : (int)pick(5);
  char used[8][32];
  int nused = 0;
  for (int i = 0; i < n; i++) {
    char k[32];
    if (arr) {
      snprintf(k, sizeof k, "%d", i);
    } else {
      random_key(k, sizeof k, i);
      bool dup = false;
      for (int u = 0; u < nused; u++) dup = dup || strcmp(used[u], k) == 0;
      if (dup) continue;
      snprintf(used[nused++], sizeof used[0], "%s", k);
    }
    random_value(&child, k, depth + 1);
  }
  if (arr) bson_append_array_end(b, &child);
  else bson_append_document_end(b, &child);
}

static void random_decimal(bson_t *b, const char *key) {
  bson_decimal128_t dec;
  uint32_t r = pick(8);
  if (r == 0) {
    bson_decimal128_from_string(pick(2) ? "NaN" : pick(2) ? "-Infinity" : "Infinity", &dec);
  } else {
    /* coefficient below 10^34 (trailing zeros and zero too), any exponent, either sign */
    unsigned __int128 c = r == 1 ? 0 : r == 2 ? (unsigned __int128)pick(1000) * 1000 : ((unsigned __int128)next_rand() << 64 | next_rand());
    unsigned __int128 lim = 1;
    for (int i = 0; i < 34; i++) lim *= 10;
    c %= lim;
    uint64_t exp = (uint64_t)(r == 3 ? 6176 - pick(4) : pick(12288)); /* biased exponent 0..12287 */
    dec.low = (uint64_t)c;
    dec.high = (uint64_t)(c >> 64) | exp << 49 | (pick(2) ? 1ULL << 63 : 0);
  }
  BSON_APPEND_DECIMAL128(b, key, &dec);
}

static void random_double(bson_t *b, const char *key) {
  static const double special[] = {0.0, -0.0, 1.0, -1.0, 3.0, 1e300, -1e-300, 4.9e-324, 1.7976931348623157e308,
                                   9007199254740993.0, 0.1, 1e21, 1e22, 123456789012345678.0, 2.5e-7};
  uint64_t r = next_rand();
  double d;
  switch (pick(5)) {
    case 0: memcpy(&d, &r, 8); break; /* any bit pattern */
    case 1: d = special[pick(sizeof special / sizeof special[0])]; break;
    case 2: d = (double)(int64_t)(r % 2000001) - 1000000.0; break; /* integral values */
    case 3: d = pick(2) ? INFINITY : -INFINITY; break;
    default: d = (double)(int64_t)(r % 2000001) / 100.0 - 10000; break;
  }
  BSON_APPEND_DOUBLE(b, key, isnan(d) ? NAN : d); /* AS-JSON has one NaN: payloads are not kept */
}

static void random_value(bson_t *b, const char *key, int depth) {
  uint64_t r = next_rand();
  char s[256], s2[64];
  size_t n;
  bson_oid_t oid;
  memcpy(oid.bytes, &r, 8);
  memcpy(oid.bytes + 8, &r, 4);
  switch (pick(depth > 8 ? 22 : 25)) {
    case 0: random_double(b, key); break;
    case 1: BSON_APPEND_INT32(b, key, (int32_t)r); break;
    case 2: BSON_APPEND_INT32(b, key, (int32_t)(r % 5) - 2); break;
    case 3: BSON_APPEND_INT64(b, key, (int64_t)r); break;
    case 4: BSON_APPEND_INT64(b, key, (int64_t)(r % 100)); break; /* int64 in the int32 range */
    case 5: n = random_text(s, sizeof s); bson_append_utf8(b, key, -1, s, (int)n); break;
    case 6: BSON_APPEND_BOOL(b, key, r & 1); break;
    case 7: BSON_APPEND_NULL(b, key); break;
    case 8: BSON_APPEND_DATE_TIME(b, key, (int64_t)r >> (r % 40)); break;
    case 9: BSON_APPEND_OID(b, key, &oid); break;
    case 10: {
      uint8_t bytes[17];
      for (int i = 0; i < 17; i++) bytes[i] = (uint8_t)next_rand();
      bson_subtype_t st = (bson_subtype_t)((const int[]){0, 1, 2, 3, 4, 5, 6, 7, 0x80, 0xff})[pick(10)];
      BSON_APPEND_BINARY(b, key, st, bytes, st == 4 ? 16 : pick(17));
      break;
    }
    case 11: random_decimal(b, key); break;
    case 12: BSON_APPEND_TIMESTAMP(b, key, (uint32_t)r, (uint32_t)(r >> 32)); break;
    case 13: /* options as any driver may write them: not sorted */
      n = random_text(s, sizeof s);
      bson_append_regex(b, key, -1, strlen(s) == n ? s : "a\"b\\", pick(2) ? "xi" : "");
      break;
    case 14: BSON_APPEND_MINKEY(b, key); break;
    case 15: BSON_APPEND_MAXKEY(b, key); break;
    case 16: BSON_APPEND_UNDEFINED(b, key); break;
    case 17: n = random_text(s, sizeof s); bson_append_symbol(b, key, -1, s, (int)n); break;
    case 18: n = random_text(s, sizeof s); BSON_APPEND_CODE(b, key, strlen(s) == n ? s : "f()"); break;
    case 19: random_text(s2, sizeof s2); bson_append_dbpointer(b, key, -1, strlen(s2) ? s2 : "c", &oid); break;
    case 20: { /* a document that looks like a wrapper */
      bson_t child;
      BSON_APPEND_DOCUMENT_BEGIN(b, key, &child);
      static const char *const w[] = {"$oid", "$numberLong", "$numberDecimal", "$date", "$symbol", "$code"};
      const char *wk = w[pick(6)], *wv = pick(2) ? "65a1b2c3d4e5f60718293a4b" : "5"; /* the macro reads them twice */
      BSON_APPEND_UTF8(&child, wk, wv);
      bson_append_document_end(b, &child);
      break;
    }
    case 21: { /* nested far down */
      bson_t chain[40];
      int d = 20 + (int)pick(20);
      BSON_APPEND_DOCUMENT_BEGIN(b, key, &chain[0]);
      for (int i = 1; i < d; i++) bson_append_document_begin(&chain[i - 1], pick(2) ? "$d" : "d", -1, &chain[i]);
      BSON_APPEND_INT32(&chain[d - 1], "x", 1);
      for (int i = d - 1; i > 0; i--) bson_append_document_end(&chain[i - 1], &chain[i]);
      bson_append_document_end(b, &chain[0]);
      break;
    }
    case 22: {
      bson_t scope = BSON_INITIALIZER;
      random_value(&scope, "$s", depth + 1);
      BSON_APPEND_CODE_WITH_SCOPE(b, key, "g(x)", &scope);
      bson_destroy(&scope);
      break;
    }
    default: random_container(b, key, pick(2) == 0, depth); break;
  }
}

static void asjson_roundtrip_seeded(const bson_t *d, int iter) {
  as_buf out = AS_BUF_INIT;
  as_error err;
  bson_t back;
  bool arr;
  ck_assert_msg(as_bson_to_asjson(d, false, &out, &err) == AS_OK, "seed %llu case %d: %s", (unsigned long long)seed,
                iter, err.message);
  ck_assert_msg(as_asjson_to_bson((const char *)out.data, out.len, &back, &arr, &err) == AS_OK, "seed %llu case %d: %s\n%s",
                (unsigned long long)seed, iter, err.message, as_buf_cstr(&out));
  if (back.len != d->len || memcmp(bson_get_data(&back), bson_get_data(d), d->len) != 0) {
    char *x = bson_as_canonical_extended_json(d, NULL), *y = bson_as_canonical_extended_json(&back, NULL);
    ck_abort_msg("seed %llu case %d: AS-JSON round trip differs\n%s\n%s\n%s", (unsigned long long)seed, iter,
                 as_buf_cstr(&out), x, y);
  }
  bson_destroy(&back);
  as_buf_free(&out);
}

START_TEST(test_random_asjson) {
  seed_rng();
  for (int iter = 0; iter < 600; iter++) {
    bson_t d = BSON_INITIALIZER;
    int n = (int)pick(10);
    for (int i = 0; i < n; i++) {
      char k[32];
      random_key(k, sizeof k, i);
      bson_iter_t it;
      if (bson_iter_init_find(&it, &d, k)) continue; /* keys unique */
      random_value(&d, k, 0);
    }
    asjson_roundtrip_seeded(&d, iter);
    bson_destroy(&d);
  }
}
END_TEST

/* The mapped fields of rt with random values of the types each column keeps exactly (or null),
 * in schema order, then random catch-all fields (top level and inside "a" and "a.b"). */
static bson_t *random_mapped_doc(void) {
  bson_t *d = bson_new(), a, ab;
  char s[256];
  size_t n;
  uint64_t r = next_rand();
  bson_oid_t oid;
  memcpy(oid.bytes, &r, 8);
  memcpy(oid.bytes + 8, &r, 4);
  BSON_APPEND_OID(d, "_id", &oid);
  bool nul = pick(8) == 0;
#define MAYBE_NULL(k) if (nul && pick(2)) { BSON_APPEND_NULL(d, k); } else
  MAYBE_NULL("name") { n = random_text(s, sizeof s); bson_append_utf8(d, "name", -1, s, (int)n); }
  MAYBE_NULL("n") {
    int64_t v = (int64_t)next_rand();
    if (v >= INT32_MIN && v <= INT32_MAX) BSON_APPEND_INT32(d, "n", (int32_t)v); /* written back as int32 */
    else if (pick(2)) BSON_APPEND_INT64(d, "n", v);
    else BSON_APPEND_INT32(d, "n", (int32_t)v);
  }
  MAYBE_NULL("score") random_double(d, "score");
  MAYBE_NULL("price") random_decimal(d, "price");
  MAYBE_NULL("at") BSON_APPEND_DATE_TIME(d, "at", (int64_t)(next_rand() % 253402300799999ULL) - 62135596800000LL / 2);
  MAYBE_NULL("day") BSON_APPEND_DATE_TIME(d, "day", ((int64_t)pick(2900000) - 700000) * 86400000);
  MAYBE_NULL("blob") {
    uint8_t bytes[16];
    for (int i = 0; i < 16; i++) bytes[i] = (uint8_t)next_rand();
    BSON_APPEND_BINARY(d, "blob", BSON_SUBTYPE_BINARY, bytes, pick(17));
  }
  MAYBE_NULL("uid") {
    uint8_t bytes[16];
    for (int i = 0; i < 16; i++) bytes[i] = (uint8_t)next_rand();
    BSON_APPEND_BINARY(d, "uid", BSON_SUBTYPE_UUID, bytes, 16);
  }
  MAYBE_NULL("flag") BSON_APPEND_BOOL(d, "flag", pick(2));
  MAYBE_NULL("meta") random_container(d, "meta", pick(2), 1);
#undef MAYBE_NULL
  BSON_APPEND_DOCUMENT_BEGIN(d, "a", &a);
  if (pick(2)) BSON_APPEND_INT32(&a, "x", (int32_t)next_rand());
  else BSON_APPEND_NULL(&a, "x");
  BSON_APPEND_DOCUMENT_BEGIN(&a, "b", &ab);
  n = random_text(s, sizeof s);
  bson_append_utf8(&ab, "y", -1, s, (int)n);
  for (int i = 0, m = (int)pick(3); i < m; i++) { /* catch-all fields inside a.b */
    char k[32];
    random_key(k, sizeof k, i);
    bson_iter_t it;
    if (strcmp(k, "y") != 0 && !bson_iter_init_find(&it, &ab, k)) random_value(&ab, k, 2);
  }
  bson_append_document_end(&a, &ab);
  for (int i = 0, m = (int)pick(3); i < m; i++) { /* and inside a */
    char k[32];
    random_key(k, sizeof k, i);
    bson_iter_t it;
    if (strcmp(k, "x") != 0 && strcmp(k, "b") != 0 && !bson_iter_init_find(&it, &a, k)) random_value(&a, k, 1);
  }
  bson_append_document_end(d, &a);
  for (int i = 0, m = (int)pick(8); i < m; i++) { /* top-level catch-all fields */
    char k[32];
    random_key(k, sizeof k, i);
    bson_iter_t it;
    bool mapped = false;
    for (size_t c = 0; c < rt->ncols; c++) mapped = mapped || (rt->cols[c].npath && strcmp(rt->cols[c].path[0], k) == 0);
    if (!mapped && !bson_iter_init_find(&it, d, k)) random_value(d, k, 0);
  }
  return d;
}

START_TEST(test_random_mapped) {
  seed_rng();
  for (int iter = 0; iter < 300; iter++) {
    bson_t *d = random_mapped_doc();
    as_row r = {0};
    as_error err;
    bson_t back;
    ck_assert_msg(as_doc_to_row(rt, d, &r, &err) == AS_OK, "seed %llu case %d: %s", (unsigned long long)seed, iter,
                  err.message);
    ck_assert_msg(as_row_to_doc(rt, &r, &back, &err) == AS_OK, "seed %llu case %d: %s", (unsigned long long)seed, iter,
                  err.message);
    if (back.len != d->len || memcmp(bson_get_data(&back), bson_get_data(d), d->len) != 0) {
      char *x = bson_as_canonical_extended_json(d, NULL), *y = bson_as_canonical_extended_json(&back, NULL);
      ck_abort_msg("seed %llu case %d: document -> row -> document differs\n%s\n%s", (unsigned long long)seed, iter, x, y);
    }
    asjson_roundtrip_seeded(d, iter);
    bson_destroy(&back);
    as_row_clear(&r);
    bson_destroy(d);
  }
}
END_TEST

static void setup(void) { rt = fx_schema("rt", rt_cols, sizeof rt_cols / sizeof rt_cols[0]); }
static void teardown(void) { fx_schema_free(rt); }

int main(void) {
  Suite *s = suite_create("roundtrip");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_corpus);
  tcase_add_test(tc, test_other_field_order);
  tcase_add_test(tc, test_random_asjson);
  tcase_add_test(tc, test_random_mapped);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
