/* test_key.c — the one canonical key text (mappings/as_key.h): the same key reaches the same
 * text whether it came from a MongoDB document, PostgreSQL/SQLite text, or canonical JSON. */
#include <check.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "as_bson.h"
#include "as_codec_fixture.h"
#include "as_key.h"
#include "as_test_util.h"

typedef struct key_case {
  as_type type;
  const char *ext_json; /* the _id as MongoDB extended JSON */
  const char *sql_text; /* the same key as PostgreSQL/SQLite text */
  const char *want;     /* canonical key text */
} key_case;

static const key_case cases[] = {
    {AS_T_TEXT, "\"u1\"", "u1", "{\"id\":\"u1\"}"},
    {AS_T_TEXT, "\"\\u00fcn\\u00efc\\u00f8d\\u00e9 \\\"q\\\"\"", "\xc3\xbcn\xc3\xaf" "c\xc3\xb8" "d\xc3\xa9 \"q\"",
     "{\"id\":\"\xc3\xbcn\xc3\xaf" "c\xc3\xb8" "d\xc3\xa9 \\\"q\\\"\"}"},
    {AS_T_INT64, "{\"$numberLong\":\"9007199254740993\"}", "9007199254740993", "{\"id\":9007199254740993}"},
    {AS_T_INT64, "42", "42", "{\"id\":42}"},
    {AS_T_DECIMAL, "{\"$numberDecimal\":\"1.50\"}", "1.5", "{\"id\":{\"$decimal\":\"1.5\"}}"},
    {AS_T_DOUBLE, "{\"$numberDouble\":\"-0.0\"}", "0", "{\"id\":0.0}"},
    {AS_T_UUID, "{\"$binary\":{\"base64\":\"C05q2c+DQf6xNMe1kmgH7w==\",\"subType\":\"04\"}}",
     "0b4e6ad9-cf83-41fe-b134-c7b5926807ef", "{\"id\":{\"$uuid\":\"0b4e6ad9-cf83-41fe-b134-c7b5926807ef\"}}"},
    {AS_T_OBJECTID, "{\"$oid\":\"65a0f0c2e4b0a1b2c3d4e5f6\"}", "65a0f0c2e4b0a1b2c3d4e5f6",
     "{\"id\":{\"$oid\":\"65a0f0c2e4b0a1b2c3d4e5f6\"}}"},
    {AS_T_TIMESTAMP, "{\"$date\":{\"$numberLong\":\"1700000000123\"}}", "2023-11-14 22:13:20.123+00",
     "{\"id\":{\"$ts\":\"2023-11-14T22:13:20.123000Z\"}}"},
};

static as_schema *schema_for(as_type t) {
  const fx_col cols[] = {{"id", "_id", t, FX_KEY}, {"v", "v", AS_T_TEXT, 0}};
  return fx_schema("k", cols, 2);
}

START_TEST(test_same_key_from_every_side) {
  const key_case *c = &cases[_i];
  as_schema *s = schema_for(c->type);
  as_error err;
  /* MongoDB: the key of a document */
  char doc_json[512];
  snprintf(doc_json, sizeof doc_json, "{\"_id\": %s, \"v\": \"x\"}", c->ext_json);
  bson_error_t berr;
  bson_t *doc = bson_new_from_json((const uint8_t *)doc_json, -1, &berr);
  ck_assert_msg(doc != NULL, "%s: %s", doc_json, berr.message);
  as_row r1 = {0};
  ck_assert_int_eq(as_row_init(&r1, s->ncols), AS_OK);
  ck_assert_msg(as_doc_to_key(s, doc, &r1, &err) == AS_OK, "%s", err.message);
  char *k1 = as_key_json_dup(s, &r1, &err);
  ck_assert_msg(k1 != NULL, "%s", err.message);
  ck_assert_str_eq(k1, c->want);
  /* PostgreSQL / SQLite: the key as text */
  as_row r2 = {0};
  ck_assert_int_eq(as_row_init(&r2, s->ncols), AS_OK);
  as_value v = AS_VALUE_NULL;
  ck_assert_msg(as_value_from_text(c->type, c->sql_text, strlen(c->sql_text), &v, &err) == AS_OK,
                "%s", err.message);
  as_row_put(&r2, 0, &v);
  char *k2 = as_key_json_dup(s, &r2, &err);
  ck_assert_msg(k2 != NULL, "%s", err.message);
  ck_assert_str_eq(k2, c->want);
  /* and back: the text parses to the same key */
  as_row r3 = {0};
  ck_assert_int_eq(as_row_init(&r3, s->ncols), AS_OK);
  ck_assert_msg(as_key_parse(s, c->want, &r3, &err) == AS_OK, "%s", err.message);
  char *k3 = as_key_json_dup(s, &r3, &err);
  ck_assert_str_eq(k3, c->want);
  free(k1);
  free(k2);
  free(k3);
  as_row_clear(&r1);
  as_row_clear(&r2);
  as_row_clear(&r3);
  bson_destroy(doc);
  fx_schema_free(s);
}
END_TEST

START_TEST(test_incomplete_keys_refused) {
  as_schema *s = schema_for(AS_T_TEXT);
  as_error err;
  as_row r = {0};
  ck_assert_int_eq(as_row_init(&r, s->ncols), AS_OK);
  as_buf b = AS_BUF_INIT;
  ck_assert_int_eq(as_key_json(s, &r, &b, &err), AS_EINVAL);
  ck_assert_msg(strstr(err.message, "key column \"id\" is missing") != NULL, "%s", err.message);
  as_value v = AS_VALUE_NULL;
  as_row_put(&r, 0, &v);
  as_buf_reset(&b);
  ck_assert_int_eq(as_key_json(s, &r, &b, &err), AS_EINVAL);
  ck_assert_msg(strstr(err.message, "is NULL") != NULL, "%s", err.message);
  char *d = as_key_describe(s, &r);
  ck_assert_str_eq(d, "{\"id\":null}");
  free(d);
  as_row_reset(&r);
  d = as_key_describe(s, &r);
  ck_assert_str_eq(d, "{\"id\":?}");
  free(d);
  ck_assert_int_eq(as_key_parse(s, "{\"id\":\"a\",\"x\":1}", &r, &err), AS_EINVAL);
  ck_assert_int_eq(as_key_parse(s, "{\"id\":null}", &r, &err), AS_EINVAL);
  ck_assert_int_eq(as_key_parse(s, "not json", &r, &err), AS_EINVAL);
  as_buf_free(&b);
  as_row_clear(&r);
  fx_schema_free(s);
}
END_TEST

int main(void) {
  Suite *s = suite_create("key");
  TCase *tc = tcase_create("key");
  tcase_add_loop_test(tc, test_same_key_from_every_side, 0, (int)(sizeof cases / sizeof cases[0]));
  tcase_add_test(tc, test_incomplete_keys_refused);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
