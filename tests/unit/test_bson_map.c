/* test_bson_map.c — document <-> row mapping, error messages, $set/$unset updates, AS-JSON. */
#include <check.h>

#include "as_test_util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_bson.h"
#include "as_buf.h"
#include "as_codec_fixture.h"

static as_schema *users;

#define UID "{\"$binary\":{\"base64\":\"ABEiM0RVZneImaq7zN3u/w==\",\"subType\":\"04\"}}"
#define KEYJSON "{\"id\":{\"$uuid\":\"00112233-4455-6677-8899-aabbccddeeff\"}}"

static bson_t *doc(const char *json) {
  bson_error_t be;
  bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &be);
  ck_assert_msg(b != NULL, "%s: %s", json, be.message);
  return b;
}

static char *asjson(const bson_t *b) {
  as_buf out = AS_BUF_INIT;
  as_error err;
  ck_assert_int_eq(as_bson_to_asjson(b, false, &out, &err), AS_OK);
  return as_buf_steal(&out);
}

static void row_from(const as_schema *s, const char *json, as_row *r) {
  bson_t *b = doc(json);
  as_error err;
  int rc = as_doc_to_row(s, b, r, &err);
  ck_assert_msg(rc == AS_OK, "%s", err.message);
  bson_destroy(b);
}

static void row_error(const as_schema *s, const char *json, const char *msg) {
  bson_t *b = doc(json);
  as_row r = {0};
  as_error err;
  ck_assert_int_eq(as_doc_to_row(s, b, &r, &err), AS_EDATA);
  ck_assert_int_eq(err.domain, AS_DOM_MAPPING);
  ck_assert_str_eq(err.message, msg);
  for (size_t i = 0; i < r.n; i++) ck_assert(!r.set[i]);
  as_row_clear(&r);
  bson_destroy(b);
}

static void expect_json(const as_value *v, const char *want) {
  ck_assert_int_eq(v->type, AS_T_JSON);
  ck_assert_str_eq(v->u.s.ptr, want);
  ck_assert_uint_eq(v->u.s.len, strlen(want));
}

START_TEST(test_users_doc_to_row_and_back) {
  const char *src =
      "{\"_id\":" UID ",\"email\":\"a@b.c\",\"age\":{\"$numberInt\":\"41\"},"
      "\"account\":{\"balance\":{\"$numberDecimal\":\"10.50\"},\"currency\":\"EUR\",\"note\":\"vip\"},"
      "\"lastUpdated\":{\"$date\":{\"$numberLong\":\"1700000000123\"}},"
      "\"tags\":[\"x\",{\"$numberInt\":\"1\"},{\"$numberLong\":\"2\"}],\"nick\":\"al\"}";
  as_row r = {0};
  row_from(users, src, &r);
  ck_assert_uint_eq(r.n, users->ncols);
  for (size_t i = 0; i < r.n; i++) ck_assert(r.set[i]);
  ck_assert_int_eq(r.v[0].type, AS_T_UUID);
  ck_assert_int_eq(r.v[0].u.uuid[1], 0x11);
  ck_assert_str_eq(r.v[1].u.s.ptr, "a@b.c");
  ck_assert_int_eq(r.v[2].u.i, 41);
  ck_assert_int_eq(r.v[3].type, AS_T_DECIMAL);
  ck_assert_str_eq(r.v[3].u.s.ptr, "10.50");
  ck_assert_str_eq(r.v[4].u.s.ptr, "EUR");
  ck_assert_int_eq(r.v[5].u.ts_us, 1700000000123000LL);
  expect_json(&r.v[6], "{\"account\":{\"note\":\"vip\"},\"tags\":[\"x\",1,{\"$numberLong\":\"2\"}],\"nick\":\"al\"}");

  bson_t back;
  as_error err;
  ck_assert_int_eq(as_row_to_doc(users, &r, &back, &err), AS_OK);
  bson_t *want = doc(src);
  char *a = asjson(&back), *b = asjson(want);
  ck_assert_str_eq(a, b);
  ck_assert_uint_eq(back.len, want->len);
  ck_assert(memcmp(bson_get_data(&back), bson_get_data(want), want->len) == 0);
  free(a);
  free(b);
  bson_destroy(&back);
  bson_destroy(want);

  /* the row is reused by the next call */
  row_from(users, "{\"_id\":" UID ",\"email\":\"z\"}", &r);
  ck_assert_int_eq(r.v[2].type, AS_T_NULL);
  ck_assert(r.set[2]);
  ck_assert_int_eq(r.v[6].type, AS_T_NULL); /* no unmapped field: catch-all NULL */
  ck_assert_int_eq(as_row_to_doc(users, &r, &back, &err), AS_OK);
  char *txt = asjson(&back);
  ck_assert_str_eq(txt, "{\"_id\":" UID ",\"email\":\"z\",\"age\":null,\"account\":{\"balance\":null,\"currency\":null},"
                        "\"lastUpdated\":null}");
  free(txt);
  bson_destroy(&back);
  as_row_clear(&r);
}
END_TEST

START_TEST(test_paths_and_nulls) {
  as_row r = {0};
  /* null in the middle of a path -> NULL columns, no error */
  row_from(users, "{\"_id\":" UID ",\"email\":\"e\",\"account\":null}", &r);
  ck_assert_int_eq(r.v[3].type, AS_T_NULL);
  ck_assert_int_eq(r.v[4].type, AS_T_NULL);
  ck_assert_int_eq(r.v[6].type, AS_T_NULL);
  /* BSON null in a leaf */
  row_from(users, "{\"_id\":" UID ",\"email\":\"e\",\"age\":null,\"account\":{}}", &r);
  ck_assert_int_eq(r.v[2].type, AS_T_NULL);
  /* a symbol as text, field order does not matter */
  row_from(users, "{\"email\":{\"$symbol\":\"sym\"},\"_id\":" UID "}", &r);
  ck_assert_int_eq(r.v[0].u.uuid[15], 0xff);
  ck_assert_str_eq(r.v[1].u.s.ptr, "sym");
  /* a key takes the one form it is written back in: MongoDB tells a uuid's text or subtype 3
   * form apart from its subtype 4 (other keys), one SQL row could not */
  row_error(users, "{\"email\":\"e\",\"_id\":\"00112233-4455-6677-8899-AABBCCDDEEFF\"}",
            "mapping users, key ?, field \"_id\": cannot store string \"00112233-4455-6677-8899-AABBCCDDEEFF\" "
            "in uuid column \"id\": a key column of type uuid takes binary subtype 4 only (MongoDB tells the "
            "string form of a UUID apart from it: another key); map the key as text");
  row_error(users, "{\"email\":\"e\",\"_id\":{\"$binary\":{\"base64\":\"ABEiM0RVZneImaq7zN3u/w==\",\"subType\":\"03\"}}}",
            "mapping users, key ?, field \"_id\": cannot store binary "
            "{\"$binary\":{\"base64\":\"ABEiM0RVZneImaq7zN3u/w==\",\"subType\":\"03\"}} in uuid column \"id\": "
            "a key column of type uuid takes binary subtype 4 only (MongoDB tells a legacy subtype 3 UUID apart "
            "from it: another key; legacy UUID keys are not supported yet)");
  /* deep catch-all nesting under a claimed path */
  static const fx_col deep_cols[] = {{"id", "_id", AS_T_INT64, FX_KEY},
                                     {"x", "a.b.c", AS_T_INT64, 0},
                                     {"y", "a.d", AS_T_JSON, 0},
                                     {"rest", "*", AS_T_JSON, 0}};
  as_schema *deep = fx_schema("deep", deep_cols, 4);
  const char *src = "{\"_id\":1,\"a\":{\"b\":{\"c\":2,\"k\":3},\"d\":[1,{\"e\":null}],\"q\":{\"r\":1}},\"z\":true}";
  as_row_clear(&r);
  row_from(deep, src, &r);
  ck_assert_int_eq(r.v[1].u.i, 2);
  expect_json(&r.v[2], "[1,{\"e\":null}]");
  expect_json(&r.v[3], "{\"a\":{\"b\":{\"k\":3},\"q\":{\"r\":1}},\"z\":true}");
  bson_t back;
  as_error err;
  ck_assert_int_eq(as_row_to_doc(deep, &r, &back, &err), AS_OK);
  bson_t *want = doc(src);
  ck_assert(bson_equal(&back, want));
  bson_destroy(&back);
  bson_destroy(want);
  /* without a catch-all, unmapped fields are ignored */
  static const fx_col plain_cols[] = {{"id", "_id", AS_T_INT64, FX_KEY}, {"x", "a.b.c", AS_T_INT64, 0}};
  as_schema *plain = fx_schema("plain", plain_cols, 2);
  as_row_clear(&r);
  row_from(plain, src, &r);
  ck_assert_int_eq(r.v[1].u.i, 2);
  ck_assert_int_eq(as_row_to_doc(plain, &r, &back, &err), AS_OK);
  char *t = asjson(&back);
  ck_assert_str_eq(t, "{\"_id\":1,\"a\":{\"b\":{\"c\":2}}}");
  free(t);
  bson_destroy(&back);
  /* key only */
  ck_assert_int_eq(as_doc_to_key(plain, want = doc("{\"a\":\"not a doc\",\"_id\":{\"$numberLong\":\"7\"}}"), &r, &err), AS_OK);
  ck_assert(r.set[0] && r.v[0].u.i == 7);
  ck_assert(!r.set[1]);
  bson_destroy(want);
  ck_assert_int_eq(as_doc_to_key(plain, want = doc("{\"a\":1}"), &r, &err), AS_EDATA);
  ck_assert_str_eq(err.message, "mapping plain, key ?, field \"_id\": key field is missing or null");
  bson_destroy(want);
  as_row_clear(&r);
  fx_schema_free(deep);
  fx_schema_free(plain);
}
END_TEST

START_TEST(test_conversion_errors) {
  const char *pre = "mapping users, key " KEYJSON ", field ";
  char want[1024];
#define ERR(json, field_and_msg)                         \
  snprintf(want, sizeof want, "%s%s", pre, field_and_msg); \
  row_error(users, "{\"_id\":" UID ",\"email\":\"e\"," json "}", want)
  ERR("\"age\":\"abc\"", "\"age\": cannot store string \"abc\" in int64 column \"age\"");
  ERR("\"age\":1.5", "\"age\": cannot store double 1.5 in int64 column \"age\": not an integer");
  ERR("\"age\":1e19", "\"age\": cannot store double 1e+19 in int64 column \"age\": out of int64 range");
  ERR("\"age\":{\"$numberDouble\":\"NaN\"}",
      "\"age\": cannot store double {\"$numberDouble\":\"NaN\"} in int64 column \"age\": out of int64 range");
  ERR("\"age\":{\"$numberDecimal\":\"2.5\"}",
      "\"age\": cannot store decimal128 {\"$numberDecimal\":\"2.5\"} in int64 column \"age\": not an integer");
  ERR("\"age\":{\"$numberDecimal\":\"1E+19\"}",
      "\"age\": cannot store decimal128 {\"$numberDecimal\":\"1E+19\"} in int64 column \"age\": out of int64 range");
  ERR("\"age\":true", "\"age\": cannot store bool true in int64 column \"age\"");
  ERR("\"account\":{\"balance\":\"10\"}",
      "\"account.balance\": cannot store string \"10\" in decimal column \"balance\"");
  ERR("\"account\":\"x\"", "\"account.balance\": cannot descend into string \"x\" at \"account\"");
  ERR("\"account\":[1]", "\"account.balance\": cannot descend into array [1] at \"account\"");
  ERR("\"lastUpdated\":{\"$date\":{\"$numberLong\":\"253402300800000\"}}",
      "\"lastUpdated\": cannot store date {\"$date\":{\"$numberLong\":\"253402300800000\"}} in timestamp column "
      "\"last_updated\": outside years 0001..9999");
  ERR("\"lastUpdated\":\"2024-01-01\"",
      "\"lastUpdated\": cannot store string \"2024-01-01\" in timestamp column \"last_updated\"");
  ERR("\"account\":{\"currency\":{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"}}",
      "\"account.currency\": cannot store objectId {\"$oid\":\"65a1b2c3d4e5f60718293a4b\"} in text "
      "column \"currency\": an ObjectId maps to a column of type objectid");
#undef ERR
  row_error(users, "{\"_id\":" UID ",\"email\":null}",
            "mapping users, key " KEYJSON ", field \"email\": required column \"email\" is missing or null");
  /* a field twice: neither value is taken (as_bsonr_dup_key) */
  row_error(users, "{\"_id\":" UID ",\"email\":\"e\",\"email\":null}",
            "mapping users, key ?, field \"*\": field \"email\" appears twice in the document");
  /* ... also among many fields (the walk's key set: 20 fields; beyond its 32: checked after the walk) */
  for (int nf = 20; nf <= 60; nf += 40) {
    char doc[2048];
    int o = snprintf(doc, sizeof doc, "{\"_id\":" UID ",\"email\":\"e\"");
    for (int f = 0; f < nf; f++) o += snprintf(doc + o, sizeof doc - (size_t)o, ",\"f%d\":%d", f, f);
    snprintf(doc + o, sizeof doc - (size_t)o, ",\"f%d\":true}", nf - 3);
    char msg[160];
    snprintf(msg, sizeof msg, "mapping users, key ?, field \"*\": field \"f%d\" appears twice in the document", nf - 3);
    row_error(users, doc, msg);
  }
  row_error(users, "{\"_id\":" UID "}",
            "mapping users, key " KEYJSON ", field \"email\": required column \"email\" is missing or null");
  row_error(users, "{\"email\":\"e\"}", "mapping users, key ?, field \"_id\": required column \"id\" is missing or null");
  row_error(users, "{\"_id\":{\"$binary\":{\"base64\":\"AAEC\",\"subType\":\"04\"}},\"email\":\"e\"}",
            "mapping users, key ?, field \"_id\": cannot store binary {\"$binary\":{\"base64\":\"AAEC\",\"subType\":\"04\"}} "
            "in uuid column \"id\": a UUID has 16 bytes");
  row_error(users, "{\"_id\":{\"$binary\":{\"base64\":\"ABEiM0RVZneImaq7zN3u/w==\",\"subType\":\"00\"}},\"email\":\"e\"}",
            "mapping users, key ?, field \"_id\": cannot store binary "
            "{\"$binary\":{\"base64\":\"ABEiM0RVZneImaq7zN3u/w==\",\"subType\":\"00\"}} in uuid column \"id\": only binary "
            "subtypes 4 and 3 are UUIDs");
  row_error(users, "{\"_id\":\"not-a-uuid\",\"email\":\"e\"}",
            "mapping users, key ?, field \"_id\": cannot store string \"not-a-uuid\" in uuid column \"id\": not a UUID");

  static const fx_col tc[] = {{"id", "_id", AS_T_OBJECTID, FX_KEY}, {"score", "score", AS_T_DOUBLE, 0},
                              {"day", "day", AS_T_DATE, 0},         {"blob", "blob", AS_T_BYTES, 0},
                              {"doc", "doc", AS_T_JSON, 0},         {"flag", "flag", AS_T_BOOL, 0}};
  as_schema *t = fx_schema("typed", tc, 6);
  const char *k = "mapping typed, key {\"id\":{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"}}, field ";
#define TERR(json, msg)                          \
  snprintf(want, sizeof want, "%s%s", k, msg); \
  row_error(t, "{\"_id\":{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"}," json "}", want)
  TERR("\"score\":{\"$numberLong\":\"9007199254740993\"}",
       "\"score\": cannot store int64 9007199254740993 in double column \"score\": not exactly representable as a double");
  TERR("\"day\":{\"$date\":{\"$numberLong\":\"86400001\"}}",
       "\"day\": cannot store date {\"$date\":{\"$numberLong\":\"86400001\"}} in date column \"day\": has a time part");
  TERR("\"day\":{\"$date\":{\"$numberLong\":\"-62135683200000\"}}",
       "\"day\": cannot store date {\"$date\":{\"$numberLong\":\"-62135683200000\"}} in date column \"day\": outside years "
       "0001..9999");
  TERR("\"blob\":{\"$binary\":{\"base64\":\"AA==\",\"subType\":\"05\"}}",
       "\"blob\": cannot store binary {\"$binary\":{\"base64\":\"AA==\",\"subType\":\"05\"}} in bytes column \"blob\": only "
       "binary subtypes 0, 2 and 0x80 are bytes");
  TERR("\"flag\":1", "\"flag\": cannot store int32 1 in bool column \"flag\"");
#undef TERR
  /* accepted conversions */
  as_row r = {0};
  row_from(t,
           "{\"_id\":{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"},\"score\":{\"$numberLong\":\"9007199254740992\"},"
           "\"day\":{\"$date\":{\"$numberLong\":\"-86400000\"}},\"blob\":{\"$binary\":{\"base64\":\"AAE=\",\"subType\":\"80\"}},"
           "\"doc\":[],\"flag\":false}",
           &r);
  ck_assert(r.v[1].u.d == 9007199254740992.0);
  ck_assert_int_eq(r.v[2].u.days, -1);
  ck_assert_uint_eq(r.v[3].u.s.len, 2);
  expect_json(&r.v[4], "[]");
  ck_assert_int_eq(r.v[5].u.b, 0);
  /* a json column holds scalars too, as their AS-JSON text */
  static const char *const scalars[][2] = {{"5", "5"},
                                           {"{\"$numberLong\":\"5\"}", "{\"$numberLong\":\"5\"}"},
                                           {"\"x\"", "\"x\""},
                                           {"true", "true"}};
  for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
    char src[256];
    snprintf(src, sizeof src, "{\"_id\":{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"},\"doc\":%s}", scalars[i][0]);
    as_row_clear(&r);
    row_from(t, src, &r);
    expect_json(&r.v[4], scalars[i][1]);
  }
  /* the single-value API names mapping and field, not the key */
  bson_t *d = doc("{\"v\":\"x\"}");
  bson_iter_t it;
  bson_iter_init_find(&it, d, "v");
  as_value v = AS_VALUE_NULL;
  as_error err;
  ck_assert_int_eq(as_bson_iter_to_value(t, &t->cols[1], &it, &v, &err), AS_EDATA);
  ck_assert_str_eq(err.message, "mapping typed, field \"score\": cannot store string \"x\" in double column \"score\"");
  bson_destroy(d);
  as_row_clear(&r);
  fx_schema_free(t);
}
END_TEST

START_TEST(test_int64_and_decimal_sources) {
  static const fx_col tc[] = {{"id", "_id", AS_T_INT64, FX_KEY}, {"n", "n", AS_T_INT64, 0}, {"dec", "dec", AS_T_DECIMAL, 0}};
  as_schema *t = fx_schema("nums", tc, 3);
  as_row r = {0};
  row_from(t, "{\"_id\":{\"$numberLong\":\"-9223372036854775808\"},\"n\":{\"$numberDecimal\":\"1.200E+3\"},\"dec\":2.5}", &r);
  ck_assert_int_eq(r.v[0].u.i, INT64_MIN);
  ck_assert_int_eq(r.v[1].u.i, 1200);
  ck_assert_str_eq(r.v[2].u.s.ptr, "2.5");
  row_from(t, "{\"_id\":-9.2233720368547758e18,\"n\":1e15,\"dec\":{\"$numberLong\":\"9223372036854775807\"}}", &r);
  ck_assert_int_eq(r.v[0].u.i, INT64_MIN);
  ck_assert_int_eq(r.v[1].u.i, 1000000000000000LL);
  ck_assert_str_eq(r.v[2].u.s.ptr, "9223372036854775807");
  row_from(t, "{\"_id\":1,\"dec\":{\"$numberDouble\":\"-Infinity\"}}", &r);
  ck_assert_str_eq(r.v[2].u.s.ptr, "-Infinity");
  as_row_clear(&r);
  fx_schema_free(t);
}
END_TEST

static as_delta *mk_update(void) {
  static as_delta d;
  as_value v = AS_VALUE_NULL;
  ck_assert_int_eq(as_delta_init(&d, users, AS_OP_UPDATE), AS_OK);
  uint8_t u[16] = {0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
  as_value_set_uuid(&v, u);
  as_row_put(&d.row, 0, &v);
  return &d;
}

/* want: the update as AS-JSON, where the operator keys read "$$set"/"$$unset" (a document key
 * starting with '$' is written with one more '$'). */
static void expect_update(as_delta *d, const char *prev, const char *want) {
  bson_t upd;
  as_error err;
  int rc = as_delta_to_update(users, d, prev, &upd, &err);
  ck_assert_msg(rc == AS_OK, "%s", err.message);
  char *t = asjson(&upd);
  ck_assert_str_eq(t, want);
  free(t);
  bson_destroy(&upd);
}

START_TEST(test_updates) {
  as_delta *d = mk_update();
  as_value v = AS_VALUE_NULL;
  /* only the present columns; NULL -> $unset; nested path dotted */
  as_value_set_str(&v, AS_T_TEXT, "new@x", 5);
  as_row_put(&d->row, 1, &v);
  as_row_put(&d->row, 2, &v); /* NULL */
  as_value_set_str(&v, AS_T_DECIMAL, "1.50", 4);
  as_row_put(&d->row, 3, &v);
  expect_update(d, NULL,
                "{\"$$set\":{\"email\":\"new@x\",\"account.balance\":{\"$numberDecimal\":\"1.50\"}},\"$$unset\":{\"age\":\"\"}}");
  /* catch-all against the previous value: changed fields set, missing ones unset, equal ones skipped;
   * fields under a claimed document are addressed by dotted path */
  as_row_reset(&d->row);
  as_value_set_uuid(&v, d->row.v[0].u.uuid);
  const char *now = "{\"nick\":\"al\",\"tags\":[2],\"account\":{\"note\":\"vvip\"},\"new\":true}";
  as_value_set_str(&v, AS_T_JSON, now, strlen(now));
  as_row_put(&d->row, 6, &v);
  d->row.set[0] = 1;
  expect_update(d, "{\"nick\":\"al\",\"tags\":[1],\"account\":{\"note\":\"vip\",\"gone\":1},\"old\":{\"$numberLong\":\"1\"}}",
                "{\"$$set\":{\"tags\":[2],\"account.note\":\"vvip\",\"new\":true},\"$$unset\":{\"account.gone\":\"\",\"old\":\"\"}}");
  /* no previous value: every catch-all field is set */
  expect_update(d, NULL, "{\"$$set\":{\"nick\":\"al\",\"tags\":[2],\"account.note\":\"vvip\",\"new\":true}}");
  /* a value the fast path gives up on half-way (integer beyond int64) is redone the slow way */
  const char *big = "{\"a\":1,\"big\":100000000000000000000,\"account\":{\"note\":\"n\"}}";
  as_value_set_str(&v, AS_T_JSON, big, strlen(big));
  as_row_put(&d->row, 6, &v);
  expect_update(d, NULL, "{\"$$set\":{\"a\":1,\"big\":1e+20,\"account.note\":\"n\"}}");
  /* catch-all NULL: every previous field unset */
  as_row_put(&d->row, 6, &v); /* v is NULL now */
  expect_update(d, "{\"a\":1,\"account\":{\"note\":\"x\"}}", "{\"$$unset\":{\"a\":\"\",\"account.note\":\"\"}}");
  /* nothing changed: empty update */
  expect_update(d, NULL, "{}");
  /* the key is never $set */
  as_row_reset(&d->row);
  d->row.set[0] = 1;
  expect_update(d, NULL, "{}");
  /* only for updates */
  bson_t upd;
  as_error err;
  d->op = AS_OP_INSERT;
  ck_assert_int_eq(as_delta_to_update(users, d, NULL, &upd, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "mapping users: $set/$unset only for updates, not insert");
  bson_destroy(&upd);
  /* sub-millisecond timestamps cannot go to BSON */
  d->op = AS_OP_UPDATE;
  as_value_set_timestamp(&v, 1500);
  as_row_put(&d->row, 5, &v);
  ck_assert_int_eq(as_delta_to_update(users, d, NULL, &upd, &err), AS_EDATA);
  ck_assert_str_eq(err.message,
                   "mapping users, column \"last_updated\": timestamp 1500 µs has sub-millisecond precision, a BSON date cannot hold it");
  bson_destroy(&upd);
  as_delta_clear(d);
}
END_TEST

START_TEST(test_filter) {
  as_delta *d = mk_update();
  bson_t f;
  as_error err;
  ck_assert_int_eq(as_key_to_filter(users, &d->row, &f, &err), AS_OK);
  char *t = asjson(&f);
  ck_assert_str_eq(t, "{\"_id\":" UID "}");
  free(t);
  bson_destroy(&f);
  d->row.set[0] = 0;
  ck_assert_int_eq(as_key_to_filter(users, &d->row, &f, &err), AS_EINVAL);
  bson_destroy(&f);
  as_delta_clear(d);
}
END_TEST

START_TEST(test_asjson_forms) {
  bson_t b = BSON_INITIALIZER;
  bson_oid_t oid;
  bson_oid_init_from_string(&oid, "65a1b2c3d4e5f60718293a4b");
  bson_decimal128_t dec;
  bson_decimal128_from_string("-1.50E-3", &dec);
  BSON_APPEND_DOUBLE(&b, "d1", 1.0);
  BSON_APPEND_DOUBLE(&b, "d2", -0.0);
  BSON_APPEND_DOUBLE(&b, "d3", NAN);
  BSON_APPEND_DOUBLE(&b, "d4", 1e300);
  BSON_APPEND_DOUBLE(&b, "d5", 0.1);
  BSON_APPEND_INT32(&b, "i32", -5);
  BSON_APPEND_INT64(&b, "i64s", 5);
  BSON_APPEND_INT64(&b, "i64b", INT64_MIN);
  BSON_APPEND_UTF8(&b, "s", "a\"\\\x1f/é");
  BSON_APPEND_OID(&b, "oid", &oid);
  BSON_APPEND_DATE_TIME(&b, "dt", -1);
  BSON_APPEND_DECIMAL128(&b, "dec", &dec);
  BSON_APPEND_BINARY(&b, "bin", BSON_SUBTYPE_USER, (const uint8_t *)"\x01\x02", 2);
  BSON_APPEND_TIMESTAMP(&b, "ts", 4000000000u, 7);
  BSON_APPEND_REGEX(&b, "re", "^a\\.b$", "im");
  BSON_APPEND_MINKEY(&b, "min");
  BSON_APPEND_MAXKEY(&b, "max");
  BSON_APPEND_SYMBOL(&b, "sym", "s");
  BSON_APPEND_CODE(&b, "code", "f()");
  BSON_APPEND_UNDEFINED(&b, "u");
  BSON_APPEND_NULL(&b, "n");
  BSON_APPEND_BOOL(&b, "t", true);
  bson_t scope = BSON_INITIALIZER;
  BSON_APPEND_INT32(&scope, "x", 1);
  BSON_APPEND_CODE_WITH_SCOPE(&b, "cws", "g(x)", &scope);
  bson_append_dbpointer(&b, "dbp", -1, "coll", &oid);
  bson_t arr;
  BSON_APPEND_ARRAY_BEGIN(&b, "arr", &arr);
  BSON_APPEND_INT32(&arr, "0", 1);
  BSON_APPEND_DOUBLE(&arr, "1", 2.0);
  bson_append_array_end(&b, &arr);
  char *t = asjson(&b);
  ck_assert_str_eq(
      t,
      "{\"d1\":1.0,\"d2\":{\"$numberDouble\":\"-0.0\"},\"d3\":{\"$numberDouble\":\"NaN\"},\"d4\":1e+300,\"d5\":0.1,"
      "\"i32\":-5,\"i64s\":{\"$numberLong\":\"5\"},\"i64b\":-9223372036854775808,\"s\":\"a\\\"\\\\\\u001f/é\","
      "\"oid\":{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"},\"dt\":{\"$date\":{\"$numberLong\":\"-1\"}},"
      "\"dec\":{\"$numberDecimal\":\"-0.00150\"},\"bin\":{\"$binary\":{\"base64\":\"AQI=\",\"subType\":\"80\"}},"
      "\"ts\":{\"$timestamp\":{\"t\":4000000000,\"i\":7}},\"re\":{\"$regularExpression\":{\"pattern\":\"^a\\\\.b$\","
      "\"options\":\"im\"}},\"min\":{\"$minKey\":1},\"max\":{\"$maxKey\":1},\"sym\":{\"$symbol\":\"s\"},"
      "\"code\":{\"$code\":\"f()\"},\"u\":{\"$undefined\":true},\"n\":null,\"t\":true,"
      "\"cws\":{\"$code\":\"g(x)\",\"$scope\":{\"x\":1}},"
      "\"dbp\":{\"$dbPointer\":{\"$ref\":\"coll\",\"$id\":{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"}}},\"arr\":[1,2.0]}");
  /* and back, byte for byte */
  bson_t back;
  bool is_array = true;
  as_error err;
  ck_assert_int_eq(as_asjson_to_bson(t, strlen(t), &back, &is_array, &err), AS_OK);
  ck_assert(!is_array);
  ck_assert_uint_eq(back.len, b.len);
  ck_assert(memcmp(bson_get_data(&back), bson_get_data(&b), b.len) == 0);
  bson_destroy(&back);
  free(t);
  /* JSON -> BSON integer widths, big integers, arrays */
  const char *j = "[1,2147483648,-2147483649,100000000000000000000,1.5,{\"$numberInt\":\"3\"}]";
  ck_assert_int_eq(as_asjson_to_bson(j, strlen(j), &back, &is_array, &err), AS_OK);
  ck_assert(is_array);
  bson_iter_t it;
  bson_iter_init(&it, &back);
  bson_type_t want[] = {BSON_TYPE_INT32, BSON_TYPE_INT64, BSON_TYPE_INT64, BSON_TYPE_DOUBLE, BSON_TYPE_DOUBLE, BSON_TYPE_INT32};
  for (int i = 0; i < 6; i++) {
    ck_assert(bson_iter_next(&it));
    ck_assert_int_eq(bson_iter_type(&it), want[i]);
  }
  bson_destroy(&back);
  ck_assert_int_eq(as_asjson_to_bson("5", 1, &back, &is_array, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "invalid AS-JSON at line 1 column 1: AS-JSON must be an object or an array");
  bson_destroy(&back);
  ck_assert_int_eq(as_asjson_to_bson("{\"a\":", 5, &back, &is_array, &err), AS_EINVAL);
  bson_destroy(&back);
  /* malformed wrappers are errors naming the wrapper; documents with such keys are written "$$" */
  j = "{\"a\":{\"$oid\":\"xyz\"}}";
  ck_assert_int_eq(as_asjson_to_bson(j, strlen(j), &back, &is_array, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "invalid AS-JSON at line 1 column 14: malformed \"$oid\" wrapper: not an ObjectId");
  ck_assert(bson_empty(&back));
  bson_destroy(&back);
  j = "{\"b\":{\"$date\":\"soon\"}}";
  ck_assert_int_eq(as_asjson_to_bson(j, strlen(j), &back, &is_array, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "invalid AS-JSON at line 1 column 15: malformed \"$date\" wrapper: "
                                "expected {\"$numberLong\":\"ms\"}");
  bson_destroy(&back);
  j = "{\"a\":{\"$$oid\":\"xyz\"},\"b\":{\"$$date\":\"soon\"}}";
  ck_assert_int_eq(as_asjson_to_bson(j, strlen(j), &back, &is_array, &err), AS_OK);
  ck_assert(bson_iter_init_find(&it, &back, "a") && BSON_ITER_HOLDS_DOCUMENT(&it));
  bson_iter_t sub;
  ck_assert(bson_iter_recurse(&it, &sub) && bson_iter_next(&sub) && strcmp(bson_iter_key(&sub), "$oid") == 0);
  bson_destroy(&back);
  bson_destroy(&scope);
  bson_destroy(&b);
}
END_TEST


START_TEST(test_asjson_parser_details) {
  /* escapes, surrogate pairs, number forms, wrappers nested in arrays, big integers */
  const char *j = "{\"s\":\"\\u00e9\\ud83d\\ude00\\/\\n\\\"\",\"k\\u00e9y\":[-0,1E5,0.5e-3,-12,2147483647,-2147483648,"
                  "9223372036854775807,-9223372036854775808,9223372036854775808],"
                  "\"w\":[{\"$regularExpression\":{\"pattern\":\"a\",\"options\":\"\"}},{\"$numberLong\":\"7\"},"
                  "{\"$date\":{\"$numberLong\":\"-5\"}},{\"$$oid\":\"bad\"},{\"$$unknown\":1}], \"e\" : { } }";
  bson_t got, *want = doc("{\"s\":\"é😀/\\n\\\"\",\"kéy\":[{\"$numberInt\":\"0\"},{\"$numberDouble\":\"100000.0\"},"
                          "{\"$numberDouble\":\"0.0005\"},{\"$numberInt\":\"-12\"},{\"$numberInt\":\"2147483647\"},"
                          "{\"$numberInt\":\"-2147483648\"},{\"$numberLong\":\"9223372036854775807\"},"
                          "{\"$numberLong\":\"-9223372036854775808\"},{\"$numberDouble\":\"9223372036854775808.0\"}],"
                          "\"w\":[{\"$regularExpression\":{\"pattern\":\"a\",\"options\":\"\"}},{\"$numberLong\":\"7\"},"
                          "{\"$date\":{\"$numberLong\":\"-5\"}},{\"x\":1},{\"x\":1}],\"e\":{}}");
  /* the two "x" documents stand for the documents {"$oid":"bad"} and {"$unknown":1} (written
   * with "$$" in AS-JSON): built below */
  bson_t *w2 = bson_new();
  bson_iter_t it;
  bson_iter_init(&it, want);
  while (bson_iter_next(&it)) {
    if (strcmp(bson_iter_key(&it), "w") != 0) {
      bson_append_iter(w2, NULL, 0, &it);
      continue;
    }
    bson_t arr;
    bson_append_array_begin(w2, "w", 1, &arr);
    bson_iter_t a;
    bson_iter_recurse(&it, &a);
    for (int i = 0; bson_iter_next(&a); i++) {
      if (i == 3) {
        bson_t d;
        bson_append_document_begin(&arr, "3", 1, &d);
        BSON_APPEND_UTF8(&d, "$oid", "bad");
        bson_append_document_end(&arr, &d);
      } else if (i == 4) {
        bson_t d;
        bson_append_document_begin(&arr, "4", 1, &d);
        BSON_APPEND_INT32(&d, "$unknown", 1);
        bson_append_document_end(&arr, &d);
      } else {
        bson_append_iter(&arr, NULL, 0, &a);
      }
    }
    bson_append_array_end(w2, &arr);
  }
  bool is_array;
  as_error err;
  ck_assert_int_eq(as_asjson_to_bson(j, strlen(j), &got, &is_array, &err), AS_OK);
  char *x = asjson(&got), *y = asjson(w2);
  ck_assert_str_eq(x, y);
  ck_assert(bson_equal(&got, w2));
  free(x);
  free(y);
  bson_destroy(&got);
  /* the same through as_value_append_bson (json value as a field) */
  as_value v = AS_VALUE_NULL;
  as_value_set_str(&v, AS_T_JSON, j, strlen(j));
  bson_t holder = BSON_INITIALIZER;
  ck_assert_int_eq(as_value_append_bson(&holder, "v", 1, &v, &err), AS_OK);
  ck_assert(bson_iter_init_find(&it, &holder, "v") && BSON_ITER_HOLDS_DOCUMENT(&it));
  uint32_t len;
  const uint8_t *data;
  bson_iter_document(&it, &len, &data);
  ck_assert_uint_eq(len, w2->len);
  ck_assert(memcmp(data, bson_get_data(w2), len) == 0);
  bson_destroy(&holder);
  /* scalar json values become scalar BSON values */
  as_value_set_str(&v, AS_T_JSON, "\"x\"", 3);
  bson_init(&holder);
  ck_assert_int_eq(as_value_append_bson(&holder, "v", 1, &v, &err), AS_OK);
  ck_assert(bson_iter_init_find(&it, &holder, "v") && BSON_ITER_HOLDS_UTF8(&it));
  bson_destroy(&holder);
  /* invalid JSON text is an error, not a partial document */
  as_value_set_str(&v, AS_T_JSON, "{\"a\":[1,2}", 10);
  bson_init(&holder);
  ck_assert_int_eq(as_value_append_bson(&holder, "v", 1, &v, &err), AS_EDATA);
  ck_assert(bson_empty(&holder));
  bson_destroy(&holder);
  as_value_clear(&v);
  bson_destroy(want);
  bson_destroy(w2);
}
END_TEST

START_TEST(test_row_reuse) {
  /* values are reused document after document: longer, shorter, missing, null */
  as_row r = {0};
  row_from(users, "{\"_id\":" UID ",\"email\":\"a-rather-long-address@example.com\",\"x\":\"long catch-all value\"}", &r);
  row_from(users, "{\"_id\":" UID ",\"email\":\"s@e\",\"y\":1}", &r);
  ck_assert_str_eq(r.v[1].u.s.ptr, "s@e");
  ck_assert_uint_eq(r.v[1].u.s.len, 3);
  expect_json(&r.v[6], "{\"y\":1}");
  row_from(users, "{\"_id\":" UID ",\"email\":\"a-much-much-longer-address-than-before@example.com\",\"account\":{\"balance\":1}}", &r);
  ck_assert_str_eq(r.v[1].u.s.ptr, "a-much-much-longer-address-than-before@example.com");
  ck_assert_int_eq(r.v[6].type, AS_T_NULL);
  ck_assert_str_eq(r.v[3].u.s.ptr, "1");
  row_from(users, "{\"_id\":" UID ",\"email\":\"e\",\"account\":{\"balance\":null}}", &r);
  ck_assert_int_eq(r.v[3].type, AS_T_NULL);
  /* a failing document leaves an empty row behind */
  row_error(users, "{\"_id\":" UID ",\"email\":7}",
            "mapping users, key " KEYJSON ", field \"email\": cannot store int32 7 in text column \"email\"");
  bson_t *b = doc("{\"_id\":" UID ",\"email\":7}");
  as_error err;
  ck_assert_int_eq(as_doc_to_row(users, b, &r, &err), AS_EDATA);
  for (size_t i = 0; i < r.n; i++) ck_assert(!r.set[i] && r.v[i].type == AS_T_NULL);
  bson_destroy(b);
  as_row_clear(&r);
}
END_TEST

static void setup(void) { users = fx_users(); }
static void teardown(void) { fx_schema_free(users); }

int main(void) {
  Suite *s = suite_create("bson_map");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_users_doc_to_row_and_back);
  tcase_add_test(tc, test_paths_and_nulls);
  tcase_add_test(tc, test_conversion_errors);
  tcase_add_test(tc, test_int64_and_decimal_sources);
  tcase_add_test(tc, test_updates);
  tcase_add_test(tc, test_filter);
  tcase_add_test(tc, test_asjson_forms);
  tcase_add_test(tc, test_asjson_parser_details);
  tcase_add_test(tc, test_row_reuse);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
