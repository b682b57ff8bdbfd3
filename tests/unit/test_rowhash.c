/* test_rowhash.c — verify's row hash: MD5, $toHashedIndexKey (published vector), canonical
 * text of every type, PostgreSQL's jsonb text form. */
#include <check.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_codec_fixture.h"
#include "as_rowhash.h"
#include "as_test_util.h"

static char *md5_hex(const char *s, size_t n) {
  uint8_t d[16];
  as_md5 m;
  as_md5_init(&m);
  /* feed in uneven pieces to exercise the block buffering */
  size_t i = 0, step = 1;
  while (i < n) {
    size_t k = n - i < step ? n - i : step;
    as_md5_update(&m, s + i, k);
    i += k;
    step = step * 3 + 1;
  }
  as_md5_final(&m, d);
  char *h = malloc(33);
  for (int j = 0; j < 16; j++) sprintf(h + 2 * j, "%02x", d[j]);
  return h;
}

START_TEST(test_md5_rfc1321) {
  /* the test suite of RFC 1321, appendix A.5 */
  static const struct {
    const char *in, *hex;
  } v[] = {
      {"", "d41d8cd98f00b204e9800998ecf8427e"},
      {"a", "0cc175b9c0f1b6a831c399e269772661"},
      {"abc", "900150983cd24fb0d6963f7d28e17f72"},
      {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
      {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
      {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
       "d174ab98d277d9f5a5611c2c9f419d9f"},
      {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
       "57edf4a22be3c955ac49da2e2107b67a"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char *h = md5_hex(v[i].in, strlen(v[i].in));
    ck_assert_str_eq(h, v[i].hex);
    free(h);
  }
}
END_TEST

START_TEST(test_mongo_hash_vector) {
  /* MongoDB's documentation of $toHashedIndexKey: "string to hash" -> 763543691661428748 */
  ck_assert_int_eq(as_mongo_hash_string("string to hash", 14), 763543691661428748LL);
  /* different strings, different hashes; the length is part of the input */
  ck_assert_int_ne(as_mongo_hash_string("a", 1), as_mongo_hash_string("b", 1));
  ck_assert_int_ne(as_mongo_hash_string("", 0), as_mongo_hash_string("\0", 1));
  /* binary data: subtype is part of the input */
  const uint8_t u[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  ck_assert_int_ne(as_mongo_hash_binary(4, u, 16), as_mongo_hash_binary(3, u, 16));
}
END_TEST

static void dbl(double d, const char *want) {
  char t[32];
  size_t n = as_rowtext_double(d, t);
  ck_assert_uint_eq(n, strlen(t));
  ck_assert_msg(strcmp(t, want) == 0, "%.17g: got %s want %s", d, t, want);
  /* the text names the value exactly */
  if (isfinite(d) && d != 0) {
    char *p = strchr(t, 'p');
    double m = strtod(t, NULL);
    ck_assert(ldexp(m, atoi(p + 1)) == d);
  }
}

START_TEST(test_double_text) {
  dbl(1.0, "4503599627370496p-52");
  dbl(-2.5, "-5629499534213120p-51");
  dbl(0.1, "7205759403792794p-56");
  dbl(0.0, "0");
  dbl(-0.0, "0");
  dbl(5e-324, "1p-1074");
  dbl(DBL_MIN, "4503599627370496p-1074");
  dbl(DBL_MIN / 2, "2251799813685248p-1074");
  dbl(DBL_MAX, "9007199254740991p971");
  dbl(NAN, "NaN");
  dbl(INFINITY, "Infinity");
  dbl(-INFINITY, "-Infinity");
  /* neighbours differ */
  char a[32], b[32];
  as_rowtext_double(0.1, a);
  as_rowtext_double(nextafter(0.1, 1), b);
  ck_assert_str_ne(a, b);
}
END_TEST

static void jb(const char *in, const char *want) {
  as_buf b = AS_BUF_INIT;
  as_error err;
  int rc = as_jsonb_text(in, strlen(in), &b, &err);
  ck_assert_msg(rc == AS_OK, "%s: %s", in, err.message);
  ck_assert_msg(strcmp(as_buf_cstr(&b), want) == 0, "%s: got %s want %s", in, as_buf_cstr(&b), want);
  as_buf_free(&b);
}

static void jb_bad(const char *in) {
  as_buf b = AS_BUF_INIT;
  as_error err;
  ck_assert_msg(as_jsonb_text(in, strlen(in), &b, &err) == AS_EINVAL, "%s accepted", in);
  ck_assert_uint_eq(b.len, 0);
  as_buf_free(&b);
}

START_TEST(test_jsonb_text) {
  /* keys by length, then bytes; last duplicate wins; jsonb's separators */
  jb("{\"b\":1,\"a\":2,\"aa\":[1,2.50,{\"z\":null}],\"a\":3}",
     "{\"a\": 3, \"b\": 1, \"aa\": [1, 2.50, {\"z\": null}]}");
  jb("{\"B\":1,\"a\":1,\"\\u00e9\":1}", "{\"B\": 1, \"a\": 1, \"\xc3\xa9\": 1}");
  jb("  [ ]  ", "[]");
  jb("{}", "{}");
  jb("[true,false,null,\"x\"]", "[true, false, null, \"x\"]");
  /* numbers as numeric prints them */
  jb("[1e2,1.0,-0,-0.0,1.50e1,1e-7,12345678901234567890123]",
     "[100, 1.0, 0, 0.0, 15.0, 0.0000001, 12345678901234567890123]");
  /* strings: decoded, then escaped as escape_json does */
  jb("\"a\\/b\\\"c\\\\d\\n\\t\\r\\b\\f\\u001f\\u007f\\u20ac\\ud83d\\ude00\"",
     "\"a/b\\\"c\\\\d\\n\\t\\r\\b\\f\\u001f\x7f\xe2\x82\xac\xf0\x9f\x98\x80\"");
  jb("{\"k\\\"ey\":\"\\u0001\"}", "{\"k\\\"ey\": \"\\u0001\"}");
  /* key order of the input never matters */
  as_buf x = AS_BUF_INIT, y = AS_BUF_INIT;
  as_error err;
  const char *p = "{\"orders\":[{\"sku\":\"A\",\"qty\":2}],\"city\":\"X\",\"n\":{\"b\":[1],\"a\":{}}}";
  const char *q = "{\"n\":{\"a\":{},\"b\":[1]},\"city\":\"X\",\"orders\":[{\"qty\":2,\"sku\":\"A\"}]}";
  ck_assert_int_eq(as_jsonb_text(p, strlen(p), &x, &err), AS_OK);
  ck_assert_int_eq(as_jsonb_text(q, strlen(q), &y, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&x), as_buf_cstr(&y));
  as_buf_free(&x);
  as_buf_free(&y);
  jb_bad("{\"a\":}");
  jb_bad("[1,]");
  jb_bad("\"\\u0000\"");
  jb_bad("\"\\ud800\"");
  jb_bad("01");
  jb_bad("[1] x");
  jb_bad("{\"a\" 1}");
}
END_TEST

/* One column of every type. */
static const fx_col cols[] = {
    {"id", "_id", AS_T_OBJECTID, FX_KEY}, {"b", "b", AS_T_BOOL, 0},      {"i", "i", AS_T_INT64, 0},
    {"d", "d", AS_T_DOUBLE, 0},           {"dec", "dec", AS_T_DECIMAL, 0}, {"t", "t", AS_T_TEXT, 0},
    {"by", "by", AS_T_BYTES, 0},          {"u", "u", AS_T_UUID, 0},       {"ts", "ts", AS_T_TIMESTAMP, 0},
    {"day", "day", AS_T_DATE, 0},         {"j", "j", AS_T_JSON, 0},       {"rest", "*", AS_T_JSON, 0},
};

START_TEST(test_row_text) {
  as_schema *s = fx_schema("all", cols, sizeof cols / sizeof cols[0]);
  as_row r = {0};
  ck_assert_int_eq(as_row_init(&r, s->ncols), AS_OK);
  as_value v = AS_VALUE_NULL;
  uint8_t oid[12] = {0x65, 0x5f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a};
  as_value_set_oid(&v, oid);
  as_row_put(&r, 0, &v);
  as_value_set_bool(&v, true);
  as_row_put(&r, 1, &v);
  as_value_set_int64(&v, -42);
  as_row_put(&r, 2, &v);
  as_value_set_double(&v, 1.0);
  as_row_put(&r, 3, &v);
  as_value_set_str(&v, AS_T_DECIMAL, "001.500", strlen("001.500"));
  as_row_put(&r, 4, &v);
  as_value_set_str(&v, AS_T_TEXT, "a|b", strlen("a|b"));
  as_row_put(&r, 5, &v);
  as_value_set_str(&v, AS_T_BYTES, "\x01\x02", strlen("\x01\x02"));
  as_row_put(&r, 6, &v);
  uint8_t u[16] = {0};
  as_value_set_uuid(&v, u);
  as_row_put(&r, 7, &v);
  as_value_set_timestamp(&v, -1); /* 1969-12-31T23:59:59.999999Z -> ms -1 (floor) */
  as_row_put(&r, 8, &v);
  as_value_set_date(&v, 19358);
  as_row_put(&r, 9, &v);
  as_value_set_str(&v, AS_T_JSON, "{\"b\":1,\"a\":[1.50]}", strlen("{\"b\":1,\"a\":[1.50]}"));
  as_row_put(&r, 10, &v);
  /* column 11 (catch-all) absent: NULL */
  as_buf b = AS_BUF_INIT;
  as_error err;
  ck_assert_int_eq(as_rowtext(s, &r, &b, &err), AS_OK);
  char want[512];
  snprintf(want, sizeof want,
           "655f0000000000000000002a|true|-42|4503599627370496p-52|1.5|3:a|b|%lld|%lld|-1|19358|"
           "{\"a\": [1.50], \"b\": 1}|~|",
           (long long)as_mongo_hash_binary(0, (const uint8_t *)"\x01\x02", 2),
           (long long)as_mongo_hash_binary(4, u, 16));
  ck_assert_str_eq(as_buf_cstr(&b), want);
  int64_t h;
  ck_assert_int_eq(as_rowhash(s, &r, NULL, &h, &err), AS_OK);
  ck_assert_int_eq(h, as_mongo_hash_string((const char *)b.data, b.len));
  /* equal values in other spellings give the same text; a changed value another one */
  as_buf c = AS_BUF_INIT;
  as_value_set_str(&v, AS_T_DECIMAL, "1.5", strlen("1.5"));
  as_row_put(&r, 4, &v);
  as_value_set_str(&v, AS_T_JSON, "{ \"a\" : [ 15.0e-1 ] , \"b\" : 1 }", strlen("{ \"a\" : [ 15.0e-1 ] , \"b\" : 1 }"));
  as_row_put(&r, 10, &v);
  ck_assert_int_eq(as_rowtext(s, &r, &c, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), as_buf_cstr(&c)); /* jsonb reads 15.0e-1 as 1.50 */
  as_buf_reset(&c);
  as_value_set_str(&v, AS_T_JSON, "{ \"b\" : 1 , \"a\" : [ 1.50 ] }", strlen("{ \"b\" : 1 , \"a\" : [ 1.50 ] }"));
  as_row_put(&r, 10, &v);
  ck_assert_int_eq(as_rowtext(s, &r, &c, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), as_buf_cstr(&c));
  as_value_set_int64(&v, -43);
  as_row_put(&r, 2, &v);
  as_buf_reset(&c);
  ck_assert_int_eq(as_rowtext(s, &r, &c, &err), AS_OK);
  ck_assert_str_ne(as_buf_cstr(&b), as_buf_cstr(&c));
  /* NULL and an absent column read alike; invalid json is kept, marked with '!' */
  as_value_set_null(&v);
  as_row_put(&r, 11, &v);
  as_buf_reset(&c);
  as_value_set_int64(&v, -42);
  as_row_put(&r, 2, &v);
  ck_assert_int_eq(as_rowtext(s, &r, &c, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), as_buf_cstr(&c));
  as_buf_reset(&c);
  as_value_set_str(&v, AS_T_JSON, "{bad", strlen("{bad"));
  ck_assert_int_eq(as_rowtext_value(&v, &c, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&c), "!{bad");
  as_value_clear(&v);
  as_buf_free(&b);
  as_buf_free(&c);
  as_row_clear(&r);
  fx_schema_free(s);
}
END_TEST

START_TEST(test_timestamp_and_text_forms) {
  as_buf b = AS_BUF_INIT;
  as_error err;
  as_value v = AS_VALUE_NULL;
  as_value_set_timestamp(&v, 1672531200123456LL); /* µs below the millisecond are dropped */
  ck_assert_int_eq(as_rowtext_value(&v, &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), "1672531200123");
  as_buf_reset(&b);
  as_value_set_timestamp(&v, -1000);
  ck_assert_int_eq(as_rowtext_value(&v, &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), "-1");
  as_buf_reset(&b);
  as_value_set_timestamp(&v, -1001);
  ck_assert_int_eq(as_rowtext_value(&v, &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), "-2");
  as_buf_reset(&b);
  as_value_set_str(&v, AS_T_TEXT, "\xc3\xa9", strlen("\xc3\xa9")); /* byte length, not characters */
  ck_assert_int_eq(as_rowtext_value(&v, &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), "2:\xc3\xa9");
  as_buf_reset(&b);
  as_value_set_str(&v, AS_T_DECIMAL, "-0.00", strlen("-0.00"));
  ck_assert_int_eq(as_rowtext_value(&v, &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), "0");
  as_buf_reset(&b);
  as_value_set_str(&v, AS_T_DECIMAL, "1.5E+3", strlen("1.5E+3"));
  ck_assert_int_eq(as_rowtext_value(&v, &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), "1500");
  as_buf_reset(&b);
  as_value_set_bool(&v, false);
  ck_assert_int_eq(as_rowtext_value(&v, &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), "false");
  as_value_clear(&v);
  as_buf_free(&b);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("rowhash");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_md5_rfc1321);
  tcase_add_test(tc, test_mongo_hash_vector);
  tcase_add_test(tc, test_double_text);
  tcase_add_test(tc, test_jsonb_text);
  tcase_add_test(tc, test_row_text);
  tcase_add_test(tc, test_timestamp_and_text_forms);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return as_test_run(suite()); }
