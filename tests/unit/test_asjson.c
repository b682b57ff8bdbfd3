/* test_asjson.c — the AS-JSON decoder and writer rules of as_bson.h: UTF-8, duplicate keys, the
 * "$" escape of document keys, every wrapper (members in any order, as PostgreSQL jsonb
 * reorders them), numbers, error messages; as_buf_printf, which the writers format with. */
#include <check.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_bson.h"
#include "as_buf.h"
#include "as_codec_fixture.h"
#include "as_test_util.h"

static char *asjson(const bson_t *b) {
  as_buf out = AS_BUF_INIT;
  as_error err;
  ck_assert_msg(as_bson_to_asjson(b, false, &out, &err) == AS_OK, "%s", err.message);
  return as_buf_steal(&out);
}

/* json must decode to the document that libbson reads from canonical extended JSON `want`
 * (byte for byte). */
static void decodes_to(const char *json, const char *want) {
  bson_error_t be;
  bson_t *w = bson_new_from_json((const uint8_t *)want, -1, &be);
  ck_assert_msg(w != NULL, "%s: %s", want, be.message);
  bson_t got;
  as_error err;
  bool arr;
  ck_assert_msg(as_asjson_to_bson(json, strlen(json), &got, &arr, &err) == AS_OK, "%s: %s", json, err.message);
  if (got.len != w->len || memcmp(bson_get_data(&got), bson_get_data(w), w->len) != 0) {
    char *a = bson_as_canonical_extended_json(&got, NULL), *b = bson_as_canonical_extended_json(w, NULL);
    ck_abort_msg("%s\n got %s\nwant %s", json, a, b);
  }
  bson_destroy(&got);
  bson_destroy(w);
}

/* json must be refused with exactly this message. */
static void refused(const char *json, size_t len, const char *msg) {
  bson_t got;
  as_error err;
  bool arr;
  ck_assert_int_eq(as_asjson_to_bson(json, len, &got, &arr, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, msg);
  ck_assert(bson_empty(&got));
  bson_destroy(&got);
}
#define REFUSED(json, msg) refused(json, sizeof(json) - 1, msg)

START_TEST(test_utf8) {
  decodes_to("{\"s\":\"é日本😀\",\"é\":1}", "{\"s\":\"é日本😀\",\"é\":{\"$numberInt\":\"1\"}}");
  decodes_to("{\"s\":\"\\u00e9\\ud83d\\ude00\\u0000x\"}", "{\"s\":\"é😀\\u0000x\"}");
  REFUSED("{\"s\":\"\xc0\x80\"}", "invalid AS-JSON at line 1 column 7: string is not valid UTF-8");  /* overlong NUL */
  REFUSED("{\"s\":\"\xe0\x80\xaf\"}", "invalid AS-JSON at line 1 column 7: string is not valid UTF-8"); /* overlong */
  REFUSED("{\"s\":\"\xed\xa0\x80\"}", "invalid AS-JSON at line 1 column 7: string is not valid UTF-8"); /* surrogate */
  REFUSED("{\"s\":\"\xf4\x90\x80\x80\"}", "invalid AS-JSON at line 1 column 7: string is not valid UTF-8"); /* > U+10FFFF */
  REFUSED("{\"s\":\"\xf5\x80\x80\x80\"}", "invalid AS-JSON at line 1 column 7: string is not valid UTF-8");
  REFUSED("{\"s\":\"ab\x80\"}", "invalid AS-JSON at line 1 column 9: string is not valid UTF-8"); /* lone continuation */
  REFUSED("{\"s\":\"\xe2\x82\"}", "invalid AS-JSON at line 1 column 7: string is not valid UTF-8");  /* cut short */
  REFUSED("{\"k\xff\":1}", "invalid AS-JSON at line 1 column 4: string is not valid UTF-8");       /* in a key */
  REFUSED("{\"s\":\"\\ud800\"}", "invalid AS-JSON at line 1 column 13: bad \\u escape (or an unpaired surrogate)");
  REFUSED("{\"s\":\"\\udc00\\ud800\"}", "invalid AS-JSON at line 1 column 13: bad \\u escape (or an unpaired surrogate)");
  REFUSED("{\"k\\u0000\":1}", "invalid AS-JSON at line 1 column 2: NUL in a key");
  REFUSED("{\"s\":\"a\tb\"}", "invalid AS-JSON at line 1 column 8: control character in a string");
  /* the writer refuses what it could not write as JSON text */
  bson_t b = BSON_INITIALIZER;
  bson_append_utf8(&b, "s", 1, "\xc3\x28", 2);
  as_buf out = AS_BUF_INIT;
  as_error err;
  ck_assert_int_eq(as_bson_to_asjson(&b, false, &out, &err), AS_EDATA);
  ck_assert_str_eq(err.message, "document holds a string or key that is not valid UTF-8");
  bson_reinit(&b);
  bson_append_int32(&b, "k\xe9", 2, 1);
  as_buf_reset(&out);
  ck_assert_int_eq(as_bson_to_asjson(&b, false, &out, &err), AS_EDATA);
  /* NUL bytes in a string value are kept (\u0000) */
  bson_reinit(&b);
  bson_append_utf8(&b, "s", 1, "a\0b", 3);
  char *t = asjson(&b);
  ck_assert_str_eq(t, "{\"s\":\"a\\u0000b\"}");
  free(t);
  as_buf_free(&out);
  bson_destroy(&b);
}
END_TEST

/* as_buf_printf (the writers' formatting): one pass when the text fits the buffer's room,
 * two when it does not; either way the text appended is snprintf's, at any fill and length
 * (random, 2,000 appends over buffers started at every small capacity). */
START_TEST(test_buf_printf) {
  unsigned seed = 12345;
  char piece[600], want[8192];
  for (size_t start = 0; start < 80; start++) {
    as_buf b = AS_BUF_INIT;
    if (start) ck_assert_int_eq(as_buf_reserve(&b, start), AS_OK);
    size_t wlen = 0;
    for (int i = 0; i < 25; i++) {
      size_t n = (size_t)(rand_r(&seed) % 300);
      for (size_t k = 0; k < n; k++) piece[k] = (char)('a' + rand_r(&seed) % 26);
      piece[n] = 0;
      int num = rand_r(&seed);
      char one[700];
      int m = snprintf(one, sizeof one, "[%s|%d]", piece, num);
      if (wlen + (size_t)m >= sizeof want) break;
      memcpy(want + wlen, one, (size_t)m);
      wlen += (size_t)m;
      ck_assert_int_eq(as_buf_printf(&b, "[%s|%d]", piece, num), AS_OK);
      ck_assert_uint_eq(b.len, wlen);
      ck_assert(memcmp(b.data, want, wlen) == 0);
      ck_assert_uint_eq(strlen(as_buf_cstr(&b)), wlen);
    }
    as_buf_free(&b);
  }
}
END_TEST

START_TEST(test_duplicate_keys) {
  REFUSED("{\"a\":1,\"a\":2}", "invalid AS-JSON at line 1 column 8: duplicate key \"a\"");
  REFUSED("{\"x\":{\"b\":1,\"c\":2,\"b\":3}}", "invalid AS-JSON at line 1 column 19: duplicate key \"b\"");
  REFUSED("{\"a\":1,\"\\u0061\":2}", "invalid AS-JSON at line 1 column 8: duplicate key \"a\"");   /* escaped the same */
  REFUSED("{\"$$x\":1,\"$$x\":2}", "invalid AS-JSON at line 1 column 10: duplicate key \"$x\"");   /* after unescaping */
  /* many keys (the hashed path), the duplicate last */
  as_buf j = AS_BUF_INIT;
  as_buf_append_str(&j, "{");
  for (int i = 0; i < 300; i++) as_buf_printf(&j, "\"k%d\":%d,", i, i);
  as_buf_append_str(&j, "\"k123\":0}");
  bson_t got;
  as_error err;
  bool arr;
  ck_assert_int_eq(as_asjson_to_bson((const char *)j.data, j.len, &got, &arr, &err), AS_EINVAL);
  ck_assert_msg(strstr(err.message, "duplicate key \"k123\"") != NULL, "%s", err.message);
  bson_destroy(&got);
  /* without it: 300 keys, no false alarm; same keys in sibling objects are fine */
  j.len -= strlen("\"k123\":0}");
  as_buf_append_str(&j, "\"o\":{\"k1\":1,\"k2\":{\"k1\":1}}}");
  ck_assert_msg(as_asjson_to_bson((const char *)j.data, j.len, &got, &arr, &err) == AS_OK, "%s", err.message);
  ck_assert_uint_eq(bson_count_keys(&got), 301);
  bson_destroy(&got);
  as_buf_free(&j);
  /* arrays have no keys to repeat */
  decodes_to("[1,1]", "{\"0\":{\"$numberInt\":\"1\"},\"1\":{\"$numberInt\":\"1\"}}");
}
END_TEST

START_TEST(test_dollar_keys) {
  /* writer: a document key starting with '$' gets one more '$', at every depth */
  bson_t *d = bson_new(), sub, ar, el;
  BSON_APPEND_DOCUMENT_BEGIN(d, "$set", &sub);
  BSON_APPEND_UTF8(&sub, "$oid", "65a1b2c3d4e5f60718293a4b");
  bson_append_document_end(d, &sub);
  BSON_APPEND_ARRAY_BEGIN(d, "a", &ar);
  BSON_APPEND_DOCUMENT_BEGIN(&ar, "0", &el);
  BSON_APPEND_UTF8(&el, "$numberLong", "5");
  BSON_APPEND_INT32(&el, "$", 1);
  BSON_APPEND_UTF8(&el, "$$x", "");
  bson_append_document_end(&ar, &el);
  bson_append_array_end(d, &ar);
  BSON_APPEND_NULL(d, "x$");
  char *t = asjson(d);
  ck_assert_str_eq(t, "{\"$$set\":{\"$$oid\":\"65a1b2c3d4e5f60718293a4b\"},"
                      "\"a\":[{\"$$numberLong\":\"5\",\"$$\":1,\"$$$x\":\"\"}],\"x$\":null}");
  /* and back: the same documents, byte for byte */
  bson_t back;
  as_error err;
  bool arr;
  ck_assert_int_eq(as_asjson_to_bson(t, strlen(t), &back, &arr, &err), AS_OK);
  ck_assert(back.len == d->len && memcmp(bson_get_data(&back), bson_get_data(d), d->len) == 0);
  bson_destroy(&back);
  free(t);
  bson_destroy(d);
  /* reader: a single '$' key is a wrapper, and only a known, complete, lone one */
  REFUSED("{\"$set\":1}", "invalid AS-JSON at line 1 column 2: key \"$set\": a document key starting with '$' is "
                          "written with one more '$' (one '$' starts a wrapper, which must be alone in its object)");
  REFUSED("{\"a\":{\"$set\":1}}", "invalid AS-JSON at line 1 column 7: unknown wrapper key \"$set\" (a document key "
                                  "starting with '$' is written with one more '$')");
  REFUSED("{\"a\":{\"b\":1,\"$oid\":\"65a1b2c3d4e5f60718293a4b\"}}",
          "invalid AS-JSON at line 1 column 13: key \"$oid\": a document key starting with '$' is written with one "
          "more '$' (one '$' starts a wrapper, which must be alone in its object)");
  REFUSED("{\"a\":{\"$numberLong\":\"5\",\"b\":1}}",
          "invalid AS-JSON at line 1 column 24: \"$numberLong\" wrapper must be alone in its object");
  REFUSED("{\"a\":{\"$\":1}}", "invalid AS-JSON at line 1 column 7: unknown wrapper key \"$\" (a document key "
                               "starting with '$' is written with one more '$')");
  decodes_to("{\"$$a\":{\"$$$b\":[{\"$$\":{}}]}}", "{\"$a\":{\"$$b\":[{\"$\":{}}]}}");
}
END_TEST

START_TEST(test_wrappers) {
  /* canonical forms, then members in other orders (PostgreSQL jsonb sorts them) */
  decodes_to("{\"o\":{\"$oid\":\"65A1b2c3d4e5f60718293a4b\"}}", "{\"o\":{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"}}");
  decodes_to("{\"i\":{\"$numberInt\":\"-2147483648\"},\"l\":{\"$numberLong\":\"5\"},\"m\":{\"$numberLong\":\"-9223372036854775808\"}}",
             "{\"i\":{\"$numberInt\":\"-2147483648\"},\"l\":{\"$numberLong\":\"5\"},\"m\":{\"$numberLong\":\"-9223372036854775808\"}}");
  decodes_to("{\"a\":{\"$numberDouble\":\"-0.0\"},\"b\":{\"$numberDouble\":\"NaN\"},\"c\":{\"$numberDouble\":\"-Infinity\"},"
             "\"d\":{\"$numberDouble\":\"1e+300\"},\"e\":{\"$numberDouble\":\"1.0E-5\"}}",
             "{\"a\":{\"$numberDouble\":\"-0.0\"},\"b\":{\"$numberDouble\":\"NaN\"},\"c\":{\"$numberDouble\":\"-Infinity\"},"
             "\"d\":{\"$numberDouble\":\"1e+300\"},\"e\":{\"$numberDouble\":\"1e-05\"}}");
  decodes_to("{\"a\":{\"$numberDecimal\":\"1.50\"},\"b\":{\"$numberDecimal\":\"-0\"},\"c\":{\"$numberDecimal\":\"NaN\"},"
             "\"d\":{\"$numberDecimal\":\"1.2345678901234567890123456789012E+6000\"}}",
             "{\"a\":{\"$numberDecimal\":\"1.50\"},\"b\":{\"$numberDecimal\":\"-0\"},\"c\":{\"$numberDecimal\":\"NaN\"},"
             "\"d\":{\"$numberDecimal\":\"1.2345678901234567890123456789012E+6000\"}}");
  decodes_to("{\"d\":{\"$date\":{\"$numberLong\":\"-5\"}},\"e\":{\"$date\":1700000000000}}",
             "{\"d\":{\"$date\":{\"$numberLong\":\"-5\"}},\"e\":{\"$date\":{\"$numberLong\":\"1700000000000\"}}}");
  decodes_to("{\"b\":{\"$binary\":{\"subType\":\"80\",\"base64\":\"AQI=\"}},\"c\":{\"$binary\":{\"base64\":\"\",\"subType\":\"4\"}}}",
             "{\"b\":{\"$binary\":{\"base64\":\"AQI=\",\"subType\":\"80\"}},\"c\":{\"$binary\":{\"base64\":\"\",\"subType\":\"04\"}}}");
  decodes_to("{\"b\":{\"$binary\":{\"base64\":\"//8=\",\"subType\":\"02\"}}}", /* old binary: inner length */
             "{\"b\":{\"$binary\":{\"base64\":\"//8=\",\"subType\":\"02\"}}}");
  decodes_to("{\"t\":{\"$timestamp\":{\"i\":7,\"t\":4294967295}}}", "{\"t\":{\"$timestamp\":{\"t\":4294967295,\"i\":7}}}");
  decodes_to("{\"r\":{\"$regularExpression\":{\"options\":\"i\",\"pattern\":\"^a\\\\.b\"}}}",
             "{\"r\":{\"$regularExpression\":{\"pattern\":\"^a\\\\.b\",\"options\":\"i\"}}}");
  decodes_to("{\"p\":{\"$dbPointer\":{\"$id\":{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"},\"$ref\":\"c.d\"}}}",
             "{\"p\":{\"$dbPointer\":{\"$ref\":\"c.d\",\"$id\":{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"}}}}");
  decodes_to("{\"c\":{\"$code\":\"f()\"},\"s\":{\"$scope\":{\"x\":1},\"$code\":\"g\"},\"w\":{\"$code\":\"h\",\"$scope\":{}}}",
             "{\"c\":{\"$code\":\"f()\"},\"s\":{\"$code\":\"g\",\"$scope\":{\"x\":{\"$numberInt\":\"1\"}}},"
             "\"w\":{\"$code\":\"h\",\"$scope\":{}}}");
  decodes_to("{\"a\":{\"$symbol\":\"s\"},\"b\":{\"$minKey\":1},\"c\":{\"$maxKey\":1},\"d\":{\"$undefined\":true}}",
             "{\"a\":{\"$symbol\":\"s\"},\"b\":{\"$minKey\":1},\"c\":{\"$maxKey\":1},\"d\":{\"$undefined\":true}}");
  /* regex options are kept as written (not sorted) */
  bson_t got;
  as_error err;
  bool arr;
  const char *j = "{\"r\":{\"$regularExpression\":{\"pattern\":\"a\",\"options\":\"xi\"}}}";
  ck_assert_int_eq(as_asjson_to_bson(j, strlen(j), &got, &arr, &err), AS_OK);
  char *t = asjson(&got);
  ck_assert_str_eq(t, j);
  free(t);
  bson_destroy(&got);
  /* malformed ones, each naming the wrapper */
  REFUSED("{\"a\":{\"$oid\":\"65a1\"}}", "invalid AS-JSON at line 1 column 14: malformed \"$oid\" wrapper: not an ObjectId");
  REFUSED("{\"a\":{\"$numberInt\":\"2147483648\"}}",
          "invalid AS-JSON at line 1 column 20: malformed \"$numberInt\" wrapper: not an int32");
  REFUSED("{\"a\":{\"$numberLong\":\"+5\"}}", "invalid AS-JSON at line 1 column 21: malformed \"$numberLong\" wrapper: not an int64");
  REFUSED("{\"a\":{\"$numberLong\":5}}", "invalid AS-JSON at line 1 column 21: malformed \"$numberLong\" wrapper: expected a string");
  REFUSED("{\"a\":{\"$numberDouble\":\"inf\"}}", "invalid AS-JSON at line 1 column 23: malformed \"$numberDouble\" wrapper: not a double");
  REFUSED("{\"a\":{\"$numberDecimal\":\"1e\"}}",
          "invalid AS-JSON at line 1 column 24: malformed \"$numberDecimal\" wrapper: not a Decimal128");
  REFUSED("{\"a\":{\"$binary\":{\"base64\":\"AQI\",\"subType\":\"00\"}}}",
          "invalid AS-JSON at line 1 column 17: malformed \"$binary\" wrapper: bad base64");
  REFUSED("{\"a\":{\"$binary\":{\"base64\":\"\",\"subType\":\"100\"}}}",
          "invalid AS-JSON at line 1 column 17: malformed \"$binary\" wrapper: subType is not 1-2 hex digits");
  REFUSED("{\"a\":{\"$binary\":{\"base64\":\"\"}}}", "invalid AS-JSON at line 1 column 17: malformed \"$binary\" wrapper: member missing");
  REFUSED("{\"a\":{\"$timestamp\":{\"t\":1,\"i\":-1}}}",
          "invalid AS-JSON at line 1 column 20: malformed \"$timestamp\" wrapper: expected an integer 0..4294967295");
  REFUSED("{\"a\":{\"$timestamp\":{\"t\":1,\"t\":2}}}",
          "invalid AS-JSON at line 1 column 20: malformed \"$timestamp\" wrapper: unexpected member");
  REFUSED("{\"a\":{\"$regularExpression\":{\"pattern\":\"a\\u0000\",\"options\":\"\"}}}",
          "invalid AS-JSON at line 1 column 28: malformed \"$regularExpression\" wrapper: NUL in a regex");
  REFUSED("{\"a\":{\"$date\":\"2020-01-01\"}}",
          "invalid AS-JSON at line 1 column 15: malformed \"$date\" wrapper: expected {\"$numberLong\":\"ms\"}");
  REFUSED("{\"a\":{\"$minKey\":2}}", "invalid AS-JSON at line 1 column 17: malformed \"$minKey\" wrapper: expected 1");
  REFUSED("{\"a\":{\"$undefined\":false}}", "invalid AS-JSON at line 1 column 20: malformed \"$undefined\" wrapper: expected true");
  REFUSED("{\"a\":{\"$scope\":{},\"$cod\":\"x\"}}", "invalid AS-JSON at line 1 column 25: \"$code\" and \"$scope\" go together");
  REFUSED("{\"a\":{\"$dbPointer\":{\"$ref\":\"c\",\"$id\":{\"$oid\":\"x\"}}}}",
          "invalid AS-JSON at line 1 column 20: malformed \"$dbPointer\" wrapper: not an ObjectId");
}
END_TEST

START_TEST(test_numbers_and_syntax) {
  decodes_to("[0,-0,2147483647,2147483648,-2147483649,9223372036854775807,-9223372036854775808,"
             "9223372036854775808,100000000000000000000,1.5,1e2,-1E-2,0.0]",
             "{\"0\":{\"$numberInt\":\"0\"},\"1\":{\"$numberInt\":\"0\"},\"2\":{\"$numberInt\":\"2147483647\"},"
             "\"3\":{\"$numberLong\":\"2147483648\"},\"4\":{\"$numberLong\":\"-2147483649\"},"
             "\"5\":{\"$numberLong\":\"9223372036854775807\"},\"6\":{\"$numberLong\":\"-9223372036854775808\"},"
             "\"7\":{\"$numberDouble\":\"9223372036854775808.0\"},\"8\":{\"$numberDouble\":\"1e+20\"},"
             "\"9\":{\"$numberDouble\":\"1.5\"},\"10\":{\"$numberDouble\":\"100.0\"},\"11\":{\"$numberDouble\":\"-0.01\"},"
             "\"12\":{\"$numberDouble\":\"0.0\"}}");
  /* beyond a double's range: exact Decimal128s, never infinity or 0; subnormals stay doubles */
  decodes_to("[1e400,-1E+400,1e-400,0e-400,0.0e999,5e-324,1.7976931348623157e308]",
             "{\"0\":{\"$numberDecimal\":\"1E+400\"},\"1\":{\"$numberDecimal\":\"-1E+400\"},"
             "\"2\":{\"$numberDecimal\":\"1E-400\"},\"3\":{\"$numberDouble\":\"0.0\"},"
             "\"4\":{\"$numberDouble\":\"0.0\"},\"5\":{\"$numberDouble\":\"4.9406564584124654418e-324\"},"
             "\"6\":{\"$numberDouble\":\"1.7976931348623157081e+308\"}}");
  REFUSED("{\"a\":1e9999}", "invalid AS-JSON at line 1 column 12: number 1e9999 has no exact BSON form (a "
                          "double or a Decimal128 of 34 digits)");
  /* beyond a double's precision: exact Decimal128s, never a nearby double; a double's own
   * shortest text (17 digits) stays a double */
  decodes_to("[12345678901234567890,0.1000000000000000055511151231257827,0.30000000000000004,"
             "-123456789012345678.5,1234567890123456789012345678901234]",
             "{\"0\":{\"$numberDecimal\":\"12345678901234567890\"},"
             "\"1\":{\"$numberDecimal\":\"0.1000000000000000055511151231257827\"},"
             "\"2\":{\"$numberDouble\":\"0.30000000000000004441\"},"
             "\"3\":{\"$numberDecimal\":\"-123456789012345678.5\"},"
             "\"4\":{\"$numberDecimal\":\"1234567890123456789012345678901234\"}}");
  REFUSED("{\"a\":1.0000000000000000000000000000000000001}",
          "invalid AS-JSON at line 1 column 45: number 1.0000000000000000000000000000000000001 has no exact BSON "
          "form (a double or a Decimal128 of 34 digits)");
  decodes_to(" \n{ \"a\" : [ true , false , null , \"\" , { } , [ ] ] } \r\n\t",
             "{\"a\":[true,false,null,\"\",{},[]]}");
  REFUSED("{\"a\":01}", "invalid AS-JSON at line 1 column 6: bad number (leading zero?)");
  REFUSED("{\"a\":1.}", "invalid AS-JSON at line 1 column 6: bad number");
  REFUSED("{\"a\":-}", "invalid AS-JSON at line 1 column 6: bad number");
  REFUSED("{\"a\":+1}", "invalid AS-JSON at line 1 column 6: unexpected character");
  REFUSED("{\"a\":NaN}", "invalid AS-JSON at line 1 column 6: unexpected character");
  REFUSED("{\"a\":1,}", "invalid AS-JSON at line 1 column 8: expected a string");
  REFUSED("{\"a\":1} x", "invalid AS-JSON at line 1 column 9: text after the value");
  REFUSED("{\"a\":[1 2]}", "invalid AS-JSON at line 1 column 9: expected ',' or ']'");
  REFUSED("{\"a\"\n:tru}", "invalid AS-JSON at line 2 column 2: unexpected character");
  REFUSED("{\"a\":\"x", "invalid AS-JSON at line 1 column 8: unterminated string");
  REFUSED("", "invalid AS-JSON at line 1 column 1: AS-JSON must be an object or an array");
  /* nesting limit */
  as_buf deep = AS_BUF_INIT;
  for (int i = 0; i < 250; i++) as_buf_append_str(&deep, "[");
  for (int i = 0; i < 250; i++) as_buf_append_str(&deep, "]");
  bson_t got;
  as_error err;
  bool arr;
  ck_assert_int_eq(as_asjson_to_bson((const char *)deep.data, deep.len, &got, &arr, &err), AS_EINVAL);
  ck_assert_msg(strstr(err.message, "nested too deep") != NULL, "%s", err.message);
  bson_destroy(&got);
  as_buf_free(&deep);
}
END_TEST

START_TEST(test_json_column_values) {
  /* a json column's value is any AS-JSON value: wrappers become their types, "$$" documents
   * stay documents (a document that looks like a wrapper comes back as a document) */
  static const fx_col cols[] = {{"id", "_id", AS_T_INT64, FX_KEY}, {"j", "j", AS_T_JSON, 0}};
  as_schema *s = fx_schema("t", cols, 2);
  bson_t *src = bson_new_from_json((const uint8_t *)"{\"_id\":1,\"j\":{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"}}", -1, NULL);
  ck_assert_ptr_nonnull(src);
  bson_iter_t it;
  ck_assert(bson_iter_init_find(&it, src, "j") && BSON_ITER_HOLDS_OID(&it)); /* libbson reads the wrapper */
  bson_destroy(src);
  /* the same as a plain sub-document (what a user stored as a document in MongoDB) */
  bson_t doc = BSON_INITIALIZER, sub;
  BSON_APPEND_INT32(&doc, "_id", 1);
  BSON_APPEND_DOCUMENT_BEGIN(&doc, "j", &sub);
  BSON_APPEND_UTF8(&sub, "$oid", "65a1b2c3d4e5f60718293a4b");
  bson_append_document_end(&doc, &sub);
  as_row r = {0};
  as_error err;
  ck_assert_msg(as_doc_to_row(s, &doc, &r, &err) == AS_OK, "%s", err.message);
  ck_assert_str_eq(r.v[1].u.s.ptr, "{\"$$oid\":\"65a1b2c3d4e5f60718293a4b\"}");
  bson_t back;
  ck_assert_msg(as_row_to_doc(s, &r, &back, &err) == AS_OK, "%s", err.message);
  ck_assert(back.len == doc.len && memcmp(bson_get_data(&back), bson_get_data(&doc), doc.len) == 0);
  bson_destroy(&back);
  /* from SQL text: a wrapper is its type, a "$$" key a document key, anything else an error */
  as_value_clear(&r.v[1]);
  as_value_set_str(&r.v[1], AS_T_JSON, "{\"$numberLong\":\"5\"}", 19);
  ck_assert_int_eq(as_row_to_doc(s, &r, &back, &err), AS_OK);
  ck_assert(bson_iter_init_find(&it, &back, "j") && BSON_ITER_HOLDS_INT64(&it) && bson_iter_int64(&it) == 5);
  bson_destroy(&back);
  as_value_set_str(&r.v[1], AS_T_JSON, "{\"$set\":{\"a\":1}}", 17);
  ck_assert_int_eq(as_row_to_doc(s, &r, &back, &err), AS_EDATA);
  ck_assert_str_eq(err.message, "mapping t, column \"j\": invalid AS-JSON at line 1 column 2: unknown wrapper key "
                                "\"$set\" (a document key starting with '$' is written with one more '$')");
  bson_destroy(&back);
  as_row_clear(&r);
  bson_destroy(&doc);
  fx_schema_free(s);
}
END_TEST

START_TEST(test_catch_all_dollar_fields) {
  /* a catch-all holding top-level "$" fields: gathered escaped, written back as they were */
  static const fx_col cols[] = {{"id", "_id", AS_T_INT64, FX_KEY}, {"rest", "*", AS_T_JSON, 0}};
  as_schema *s = fx_schema("t", cols, 2);
  bson_t doc = BSON_INITIALIZER, sub;
  BSON_APPEND_INT32(&doc, "_id", 1);
  BSON_APPEND_INT32(&doc, "$set", 2);
  BSON_APPEND_DOCUMENT_BEGIN(&doc, "n", &sub);
  BSON_APPEND_UTF8(&sub, "$numberLong", "5");
  bson_append_document_end(&doc, &sub);
  as_row r = {0};
  as_error err;
  ck_assert_msg(as_doc_to_row(s, &doc, &r, &err) == AS_OK, "%s", err.message);
  ck_assert_str_eq(r.v[1].u.s.ptr, "{\"$$set\":2,\"n\":{\"$$numberLong\":\"5\"}}");
  bson_t back;
  ck_assert_msg(as_row_to_doc(s, &r, &back, &err) == AS_OK, "%s", err.message);
  ck_assert(back.len == doc.len && memcmp(bson_get_data(&back), bson_get_data(&doc), doc.len) == 0);
  bson_destroy(&back);
  /* as an update: the same fields, by their real names */
  as_delta d;
  ck_assert_int_eq(as_delta_init(&d, s, AS_OP_UPDATE), AS_OK);
  as_row_clear(&d.row);
  ck_assert_int_eq(as_row_copy(&d.row, &r), AS_OK);
  ck_assert_msg(as_delta_to_update(s, &d, NULL, &back, &err) == AS_OK, "%s", err.message);
  char *t = asjson(&back);
  ck_assert_str_eq(t, "{\"$$set\":{\"$$set\":2,\"n\":{\"$$numberLong\":\"5\"}}}");
  free(t);
  bson_destroy(&back);
  ck_assert_msg(as_delta_to_update(s, &d, "{\"$$set\":1,\"gone\":true}", &back, &err) == AS_OK, "%s", err.message);
  t = asjson(&back);
  ck_assert_str_eq(t, "{\"$$set\":{\"$$set\":2,\"n\":{\"$$numberLong\":\"5\"}},\"$$unset\":{\"gone\":\"\"}}");
  free(t);
  bson_destroy(&back);
  /* an unescaped "$" key in SQL text: an error naming it, not a silent operator */
  as_value_set_str(&d.row.v[1], AS_T_JSON, "{\"$set\":2}", 10);
  ck_assert_int_eq(as_delta_to_update(s, &d, NULL, &back, &err), AS_EDATA);
  ck_assert_msg(strstr(err.message, "key \"$set\"") != NULL, "%s", err.message);
  bson_destroy(&back);
  ck_assert_int_eq(as_delta_to_update(s, &d, "{}", &back, &err), AS_EDATA);
  ck_assert_msg(strstr(err.message, "key \"$set\"") != NULL, "%s", err.message);
  bson_destroy(&back);
  ck_assert_int_eq(as_row_to_doc(s, &d.row, &back, &err), AS_EDATA);
  ck_assert_msg(strstr(err.message, "key \"$set\"") != NULL, "%s", err.message);
  bson_destroy(&back);
  as_delta_clear(&d);
  as_row_clear(&r);
  bson_destroy(&doc);
  fx_schema_free(s);
}
END_TEST

START_TEST(test_text_with_nul) {
  /* a NUL inside a string headed for a text column is kept (the value has a length), and
   * written back whole; in a catch-all it is \u0000 */
  static const fx_col cols[] = {{"id", "_id", AS_T_INT64, FX_KEY}, {"t", "t", AS_T_TEXT, 0}, {"rest", "*", AS_T_JSON, 0}};
  as_schema *s = fx_schema("t", cols, 3);
  bson_t doc = BSON_INITIALIZER;
  BSON_APPEND_INT32(&doc, "_id", 1);
  bson_append_utf8(&doc, "t", 1, "a\0b\0", 4);
  bson_append_utf8(&doc, "x", 1, "\0", 1);
  as_row r = {0};
  as_error err;
  ck_assert_msg(as_doc_to_row(s, &doc, &r, &err) == AS_OK, "%s", err.message);
  ck_assert_int_eq(r.v[1].type, AS_T_TEXT);
  ck_assert_uint_eq(r.v[1].u.s.len, 4);
  ck_assert(memcmp(r.v[1].u.s.ptr, "a\0b\0", 4) == 0);
  ck_assert_str_eq(r.v[2].u.s.ptr, "{\"x\":\"\\u0000\"}");
  bson_t back;
  ck_assert_msg(as_row_to_doc(s, &r, &back, &err) == AS_OK, "%s", err.message);
  ck_assert(back.len == doc.len && memcmp(bson_get_data(&back), bson_get_data(&doc), doc.len) == 0);
  bson_destroy(&back);
  as_delta d;
  ck_assert_int_eq(as_delta_init(&d, s, AS_OP_UPDATE), AS_OK);
  as_row_clear(&d.row);
  ck_assert_int_eq(as_row_copy(&d.row, &r), AS_OK);
  ck_assert_msg(as_delta_to_update(s, &d, NULL, &back, &err) == AS_OK, "%s", err.message);
  bson_iter_t it;
  uint32_t n;
  ck_assert(bson_iter_init_find(&it, &back, "$set") && BSON_ITER_HOLDS_DOCUMENT(&it));
  bson_iter_t sub;
  ck_assert(bson_iter_recurse(&it, &sub) && bson_iter_find(&sub, "t"));
  const char *v = bson_iter_utf8(&sub, &n);
  ck_assert(n == 4 && memcmp(v, "a\0b\0", 4) == 0);
  bson_destroy(&back);
  as_delta_clear(&d);
  as_row_clear(&r);
  bson_destroy(&doc);
  fx_schema_free(s);
}
END_TEST

int main(void) {
  Suite *s = suite_create("asjson");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_utf8);
  tcase_add_test(tc, test_buf_printf);
  tcase_add_test(tc, test_duplicate_keys);
  tcase_add_test(tc, test_dollar_keys);
  tcase_add_test(tc, test_wrappers);
  tcase_add_test(tc, test_numbers_and_syntax);
  tcase_add_test(tc, test_json_column_values);
  tcase_add_test(tc, test_catch_all_dollar_fields);
  tcase_add_test(tc, test_text_with_nul);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
