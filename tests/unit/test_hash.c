/* test_hash.c — canonical binary encoding, JSON canonicalisation, row/key hashes, segments. */
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

static as_schema *all;

/* One column of every type; the key is an ObjectId. */
static const fx_col all_cols[] = {
    {"id", "_id", AS_T_OBJECTID, FX_KEY}, {"b", "b", AS_T_BOOL, 0},      {"i", "i", AS_T_INT64, 0},
    {"d", "d", AS_T_DOUBLE, 0},           {"dec", "dec", AS_T_DECIMAL, 0}, {"t", "t", AS_T_TEXT, 0},
    {"by", "by", AS_T_BYTES, 0},          {"u", "u", AS_T_UUID, 0},       {"ts", "ts", AS_T_TIMESTAMP, 0},
    {"day", "day", AS_T_DATE, 0},         {"j", "j", AS_T_JSON, 0},       {"rest", "*", AS_T_JSON, 0},
};

static char *hex(const as_buf *b) {
  char *s = malloc(b->len * 2 + 1);
  for (size_t i = 0; i < b->len; i++) sprintf(s + 2 * i, "%02x", b->data[i]);
  s[b->len * 2] = '\0';
  return s;
}

static void enc(const as_value *v, const char *want_hex) {
  as_buf b = AS_BUF_INIT;
  as_error err;
  ck_assert_msg(as_value_encode(v, &b, &err) == AS_OK, "%s", err.message);
  char *h = hex(&b);
  ck_assert_str_eq(h, want_hex);
  free(h);
  as_buf_free(&b);
}

START_TEST(test_value_encoding) {
  as_value v = AS_VALUE_NULL;
  enc(&v, "00");
  as_value_set_bool(&v, true);
  enc(&v, "0101");
  as_value_set_int64(&v, -2);
  enc(&v, "02fffffffffffffffe");
  as_value_set_double(&v, 1.0);
  enc(&v, "033ff0000000000000");
  as_value_set_double(&v, -0.0);
  enc(&v, "030000000000000000");
  as_value_set_double(&v, -NAN);
  enc(&v, "037ff8000000000000");
  as_value_set_str(&v, AS_T_DECIMAL, "+001.500", 8);
  enc(&v, "0400000003312e35");
  as_value_set_str(&v, AS_T_DECIMAL, "-0.0", 4);
  enc(&v, "040000000130");
  as_value_set_str(&v, AS_T_TEXT, "ab", 2);
  enc(&v, "05000000026162");
  as_value_set_str(&v, AS_T_BYTES, "\0", 1);
  enc(&v, "060000000100");
  uint8_t u[16];
  for (int i = 0; i < 16; i++) u[i] = (uint8_t)i;
  as_value_set_uuid(&v, u);
  enc(&v, "07000102030405060708090a0b0c0d0e0f");
  as_value_set_oid(&v, u);
  enc(&v, "08000102030405060708090a0b");
  as_value_set_timestamp(&v, 1);
  enc(&v, "090000000000000001");
  as_value_set_date(&v, -1);
  enc(&v, "0affffffff");
  as_value_set_str(&v, AS_T_JSON, "{\"b\": 1.0, \"a\": [1e2]}", 22);
  enc(&v, "0b000000137b2261223a5b3130305d2c2262223a312e307d"); /* {"a":[100],"b":1.0} */
  as_value_set_str(&v, AS_T_DECIMAL, "x", 1);
  as_buf b = AS_BUF_INIT;
  as_error err;
  ck_assert_int_eq(as_value_encode(&v, &b, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "invalid decimal \"x\"");
  as_value_set_str(&v, AS_T_JSON, "{", 1);
  ck_assert_int_eq(as_value_encode(&v, &b, &err), AS_EINVAL);
  as_buf_free(&b);
  as_value_clear(&v);
}
END_TEST

static void canon(const char *in, const char *want) {
  as_buf b = AS_BUF_INIT;
  as_error err;
  ck_assert_msg(as_json_canonicalize(in, strlen(in), &b, &err) == AS_OK, "%s: %s", in, err.message);
  ck_assert_str_eq(as_buf_cstr(&b), want);
  as_buf_free(&b);
}

START_TEST(test_json_canonical) {
  canon("{\"b\":1,\"a\":{\"d\":[3,{\"z\":1,\"y\":2}],\"c\":null}}", "{\"a\":{\"c\":null,\"d\":[3,{\"y\":2,\"z\":1}]},\"b\":1}");
  canon("[1.0, 1, 1.50, -0, -0.0, 0.0]", "[1.0,1,1.50,0,0.0,0.0]");
  canon("[1e2, 1.50e1, 1e-7, 1.5E+3, -2.5e-1]", "[100,15.0,0.0000001,1500,-0.25]");
  canon("123456789012345678901234567890", "123456789012345678901234567890");
  canon("[-9223372036854775809, 18446744073709551616]", "[-9223372036854775809,18446744073709551616]");
  canon("{\"k\":\"\\u00e9\\/\\n\"}", "{\"k\":\"é/\\n\"}");
  canon("\"\\u0000N5\"", "\"\\u0000N5\""); /* a string that looks like the internal marker */
  canon("[\"\\u0000\", \"\\u0000S\", 5]", "[\"\\u0000\",\"\\u0000S\",5]");
  canon("{\"a\":1,\"a\":2}", "{\"a\":2}");
  canon(" true ", "true");
  canon("{\"$numberLong\":\"5\"}", "{\"$numberLong\":\"5\"}");
  as_buf b = AS_BUF_INIT;
  as_error err;
  ck_assert_int_eq(as_json_canonicalize("{\"a\":}", 6, &b, &err), AS_EINVAL);
  ck_assert_int_eq(as_json_canonicalize("[01]", 4, &b, &err), AS_OK); /* leading zeros: numeric text */
  as_buf_free(&b);
}
END_TEST

static uint64_t hash_row(const as_row *r) {
  uint64_t h = 0;
  as_error err;
  ck_assert_msg(as_row_hash(all, r, &h, &err) == AS_OK, "%s", err.message);
  return h;
}

static void put_text(as_row *r, size_t i, const char *text) {
  as_value v = AS_VALUE_NULL;
  as_error err;
  if (text) ck_assert_msg(as_value_from_text(all->cols[i].type, text, strlen(text), &v, &err) == AS_OK, "%s", err.message);
  as_row_put(r, i, &v);
}

/* The same logical row from BSON and from the text a SQL adapter reads. */
/* as_json_validate accepts exactly what as_json_canonicalize accepts. */
START_TEST(test_json_validate) {
  static const char *in[] = {"{\"a\":1}", "[1,2,3]", "123456789012345678901234567890", "1e400",
                             "-0.0", "\"x\"", "null", "true", "{\"a\":1,\"a\":2}",
                             "\"\\u0000x\"", "{", "[1,]", "01", "1.2.3", "--1", "\"abc",
                             "{\"a\" 1}", "", "  [ ]  ", "nul", "[1e5, -2.5E-3, 0]",
                             "{\"k\":[{\"x\":\"\\ud83d\\ude00\"}]}", "\"\\x\"", "1 2"};
  for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
    as_buf b = AS_BUF_INIT;
    as_error e1 = {0}, e2 = {0};
    int c = as_json_canonicalize(in[i], strlen(in[i]), &b, &e1);
    int v = as_json_validate(in[i], strlen(in[i]), &e2);
    ck_assert_msg(c == v, "%s: canonicalize %d, validate %d", in[i], c, v);
    if (c != AS_OK) ck_assert_str_eq(e1.message, e2.message);
    as_buf_free(&b);
  }
}
END_TEST

START_TEST(test_bson_vs_sql_text) {
  const char *json =
      "{\"_id\":{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"},\"b\":true,\"i\":{\"$numberInt\":\"-7\"},\"d\":0.1,"
      "\"dec\":{\"$numberDecimal\":\"1.5\"},\"t\":\"héllo\",\"by\":{\"$binary\":{\"base64\":\"AP8=\",\"subType\":\"00\"}},"
      "\"u\":{\"$binary\":{\"base64\":\"ABEiM0RVZneImaq7zN3u/w==\",\"subType\":\"04\"}},"
      "\"ts\":{\"$date\":{\"$numberLong\":\"-1000\"}},\"day\":{\"$date\":{\"$numberLong\":\"1709164800000\"}},"
      "\"j\":{\"z\":[1,2.5,{\"$numberLong\":\"3\"}],\"a\":{\"y\":1e300,\"x\":\"s\"}},\"other\":1,\"more\":[true]}";
  bson_error_t be;
  bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &be);
  ck_assert_ptr_nonnull(doc);
  as_row a = {0}, s;
  as_error err;
  ck_assert_msg(as_doc_to_row(all, doc, &a, &err) == AS_OK, "%s", err.message);
  /* what PostgreSQL hands back: numeric keeps its scale, timestamptz with offset, jsonb with
   * reordered keys and expanded numbers, bytea as \x hex */
  as_row_init(&s, all->ncols);
  put_text(&s, 0, "65A1B2C3D4E5F60718293A4B");
  put_text(&s, 1, "t");
  put_text(&s, 2, "-7");
  put_text(&s, 3, "0.1");
  put_text(&s, 4, "1.50");
  put_text(&s, 5, "héllo");
  put_text(&s, 6, "\\x00ff");
  put_text(&s, 7, "00112233-4455-6677-8899-aabbccddeeff");
  put_text(&s, 8, "1969-12-31 23:59:59+00");
  put_text(&s, 9, "2024-02-29");
  /* jsonb prints the number 1e+300 as "1" and 300 zeros */
  char big[400];
  memset(big, '0', sizeof big);
  big[0] = '1';
  big[301] = '\0';
  char jtext[800];
  snprintf(jtext, sizeof jtext, "{\"a\": {\"x\": \"s\", \"y\": %s}, \"z\": [1, 2.5, {\"$numberLong\": \"3\"}]}", big);
  put_text(&s, 10, jtext);
  put_text(&s, 11, "{\"more\": [true], \"other\": 1}");
  uint64_t ha = hash_row(&a), hs = hash_row(&s);
  as_buf ea = AS_BUF_INIT, es = AS_BUF_INIT;
  as_row_encode(all, &a, &ea, &err);
  as_row_encode(all, &s, &es, &err);
  ck_assert_uint_eq(ea.len, es.len);
  ck_assert(memcmp(ea.data, es.data, ea.len) == 0);
  ck_assert_uint_eq(ha, hs);
  as_buf_free(&ea);
  as_buf_free(&es);
  uint64_t ka, ks;
  ck_assert_int_eq(as_row_key_hash(all, &a, &ka, &err), AS_OK);
  ck_assert_int_eq(as_row_key_hash(all, &s, &ks, &err), AS_OK);
  ck_assert_uint_eq(ka, ks);
  ck_assert_uint_ne(ka, ha);

  /* any changed value changes the hash; so does a NULL and an absent column */
  static const char *const other[] = {"65a1b2c3d4e5f60718293a4c", "f", "-8", "0.2", "1.51", "hello", "\\x00fe",
                                      "00112233-4455-6677-8899-aabbccddeef0", "1969-12-31 23:59:58+00", "2024-03-01",
                                      "{\"z\":[1,2.5,{\"$numberLong\":\"3\"}],\"a\":{\"y\":1e300,\"x\":\"t\"}}",
                                      "{\"more\": [true], \"other\": 1.0}"};
  for (size_t i = 0; i < all->ncols; i++) {
    as_row m;
    as_row_copy(&m, &s);
    put_text(&m, i, other[i]);
    ck_assert_msg(hash_row(&m) != hs, "column %zu", i);
    put_text(&m, i, NULL);
    ck_assert_msg(hash_row(&m) != hs, "column %zu null", i);
    m.set[i] = 0;
    ck_assert_msg(hash_row(&m) != hs, "column %zu absent", i);
    as_row_clear(&m);
  }
  /* int64 1 vs double 1.0 in a json value differ; the same row twice hashes the same */
  as_row c;
  as_row_copy(&c, &a);
  ck_assert_uint_eq(hash_row(&c), ha);
  as_row_clear(&c);
  as_row_clear(&a);
  as_row_clear(&s);
  bson_destroy(doc);
}
END_TEST

START_TEST(test_same_value_other_types_differ) {
  static const fx_col one[] = {{"k", "k", AS_T_INT64, FX_KEY}, {"v", "v", AS_T_TEXT, 0}};
  as_schema *s1 = fx_schema("one", one, 2);
  as_row r;
  as_row_init(&r, 2);
  as_value v = AS_VALUE_NULL;
  as_value_set_int64(&v, 1);
  as_row_put(&r, 0, &v);
  as_value_set_str(&v, AS_T_TEXT, "1", 1);
  as_row_put(&r, 1, &v);
  uint64_t h1, h2;
  as_error err;
  ck_assert_int_eq(as_row_hash(s1, &r, &h1, &err), AS_OK);
  as_value_set_str(&v, AS_T_DECIMAL, "1", 1);
  as_row_put(&r, 1, &v);
  ck_assert_int_eq(as_row_hash(s1, &r, &h2, &err), AS_OK);
  ck_assert_uint_ne(h1, h2);
  /* column position is part of the encoding: swapping values between columns changes it */
  as_value_set_str(&v, AS_T_TEXT, "", 0);
  as_row_put(&r, 1, &v);
  ck_assert_int_eq(as_row_hash(s1, &r, &h1, &err), AS_OK);
  r.set[1] = 0;
  ck_assert_int_eq(as_row_hash(s1, &r, &h2, &err), AS_OK);
  ck_assert_uint_ne(h1, h2);
  r.set[0] = 0;
  ck_assert_int_eq(as_row_key_hash(s1, &r, &h1, &err), AS_EINVAL);
  as_row_clear(&r);
  fx_schema_free(s1);
}
END_TEST

START_TEST(test_seghash) {
  uint64_t hs[] = {1, UINT64_MAX, 0x123456789abcdefULL, 42, UINT64_MAX - 5};
  as_seghash a = {0}, b = {0};
  for (int i = 0; i < 5; i++) as_seghash_add(&a, hs[i]);
  for (int i = 4; i >= 0; i--) as_seghash_add(&b, hs[i]);
  ck_assert(a.count == 5 && a.count == b.count && a.sum == b.sum);
  as_seghash_remove(&a, hs[2]);
  as_seghash c = {0};
  for (int i = 0; i < 5; i++)
    if (i != 2) as_seghash_add(&c, hs[i]);
  ck_assert(a.count == c.count && a.sum == c.sum);
  as_seghash_add(&a, hs[3]);
  ck_assert(a.sum != b.sum || a.count != b.count);
  for (int i = 0; i < 5; i++)
    if (i != 2) as_seghash_remove(&c, hs[i]);
  ck_assert(c.count == 0 && c.sum == 0);
}
END_TEST

static void setup(void) { all = fx_schema("all", all_cols, sizeof all_cols / sizeof all_cols[0]); }
static void teardown(void) { fx_schema_free(all); }

int main(void) {
  Suite *s = suite_create("hash");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_value_encoding);
  tcase_add_test(tc, test_json_canonical);
  tcase_add_test(tc, test_json_validate);
  tcase_add_test(tc, test_bson_vs_sql_text);
  tcase_add_test(tc, test_same_value_other_types_differ);
  tcase_add_test(tc, test_seghash);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
