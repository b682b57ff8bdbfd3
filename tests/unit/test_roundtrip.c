/* test_roundtrip.c — document -> row -> document gives the same document (byte-equal BSON when
 * the fields are in as_row_to_doc's order, equal field by field otherwise), and the row hash is
 * stable; also BSON -> AS-JSON -> BSON on the same corpus, and a random corpus. */
#include <check.h>

#include "as_test_util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_bson.h"
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

/* Top-level fields in any order; every value byte-equal. */
static void assert_same_fields(const bson_t *a, const bson_t *b) {
  ck_assert_uint_eq(bson_count_keys(a), bson_count_keys(b));
  bson_iter_t ia, ib;
  bson_iter_init(&ia, a);
  while (bson_iter_next(&ia)) {
    ck_assert_msg(bson_iter_init_find(&ib, b, bson_iter_key(&ia)), "missing %s", bson_iter_key(&ia));
    ck_assert_int_eq(bson_iter_type(&ia), bson_iter_type(&ib));
    uint32_t la = ia.next_off - ia.d1, lb = ib.next_off - ib.d1;
    ck_assert_msg(la == lb && memcmp(ia.raw + ia.d1, ib.raw + ib.d1, la) == 0, "field %s differs", bson_iter_key(&ia));
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
                      "\"blob\":null,\"uid\":null,\"flag\":true,\"meta\":null,\"a\":{\"x\":5,\"b\":{\"y\":null},\"q\":1},"
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

/* ---------------------------------------------------------------- random corpus */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void random_value(bson_t *b, const char *key, int depth) {
  int kind = (int)(next_rand() % (depth > 2 ? 16 : 18));
  uint64_t r = next_rand();
  double d;
  switch (kind) {
    case 0: /* any bit pattern; NaN payloads are not kept (AS-JSON has one NaN) */
      memcpy(&d, &r, 8);
      BSON_APPEND_DOUBLE(b, key, isnan(d) ? NAN : d);
      break;
    case 1: BSON_APPEND_DOUBLE(b, key, (double)(int64_t)(r % 2000001) / 100.0 - 10000); break;
    case 2: BSON_APPEND_INT32(b, key, (int32_t)r); break;
    case 3: BSON_APPEND_INT64(b, key, (int64_t)r); break;
    case 4: BSON_APPEND_INT64(b, key, (int64_t)(r % 100)); break;
    case 5: {
      char s[32];
      int n = (int)(r % 20);
      for (int i = 0; i < n; i++) s[i] = (char)(1 + (next_rand() % 126));
      bson_append_utf8(b, key, -1, s, n);
      break;
    }
    case 6: BSON_APPEND_BOOL(b, key, r & 1); break;
    case 7: BSON_APPEND_NULL(b, key); break;
    case 8: BSON_APPEND_DATE_TIME(b, key, (int64_t)r >> (r % 20)); break;
    case 9: {
      bson_oid_t oid;
      memcpy(oid.bytes, &r, 8);
      memcpy(oid.bytes + 8, &r, 4);
      BSON_APPEND_OID(b, key, &oid);
      break;
    }
    case 10: {
      uint8_t bytes[17];
      for (int i = 0; i < 17; i++) bytes[i] = (uint8_t)next_rand();
      bson_subtype_t st = (bson_subtype_t)((const int[]){0, 4, 5, 0x80, 2})[r % 5];
      BSON_APPEND_BINARY(b, key, st, bytes, st == 4 ? 16 : (uint32_t)(r % 17));
      break;
    }
    case 11: {
      bson_decimal128_t dec = {.high = 0x3040000000000000ULL | (r & 0xffff), .low = next_rand()};
      BSON_APPEND_DECIMAL128(b, key, &dec);
      break;
    }
    case 12: BSON_APPEND_TIMESTAMP(b, key, (uint32_t)r, (uint32_t)(r >> 32)); break;
    case 13: BSON_APPEND_REGEX(b, key, "a\"b\\", "i"); break;
    case 14: BSON_APPEND_MINKEY(b, key); break;
    case 15: BSON_APPEND_MAXKEY(b, key); break;
    default: {
      bson_t child;
      bool arr = kind == 16;
      if (arr) BSON_APPEND_ARRAY_BEGIN(b, key, &child);
      else BSON_APPEND_DOCUMENT_BEGIN(b, key, &child);
      int n = (int)(r % 5);
      for (int i = 0; i < n; i++) {
        char k[16];
        if (arr) snprintf(k, sizeof k, "%d", i);
        else snprintf(k, sizeof k, "k%d", i);
        random_value(&child, k, depth + 1);
      }
      if (arr) bson_append_array_end(b, &child);
      else bson_append_document_end(b, &child);
    }
  }
}

START_TEST(test_random_corpus) {
  for (int iter = 0; iter < 400; iter++) {
    bson_t *d = doc("{" HEAD "\"meta\":{\"m\":1},\"a\":{\"x\":1,\"b\":{\"y\":\"s\"}}}");
    int n = (int)(next_rand() % 8);
    for (int i = 0; i < n; i++) {
      char k[16];
      snprintf(k, sizeof k, "f%d", i);
      random_value(d, k, 0);
    }
    roundtrip_doc(d, true);
    asjson_roundtrip(d);
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
  tcase_add_test(tc, test_random_corpus);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
