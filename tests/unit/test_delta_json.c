/* test_delta_json.c — canonical JSON of values and deltas, both ways. */
#include <check.h>

#include "as_test_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "as_codec_fixture.h"
#include "as_row.h"

static as_schema *users;

static const as_schema *lookup(void *ctx, const char *name) {
  (void)ctx;
  return strcmp(name, users->name) == 0 ? users : NULL;
}

static char *dump_value(const as_value *v) {
  as_error err;
  json_t *j = as_value_to_json(v, &err);
  ck_assert_msg(j != NULL, "%s", err.message);
  char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(j);
  return s;
}

/* value -> JSON text -> parsed -> value: identical value and identical text form. */
static void json_rt(const as_value *v, const char *want_text) {
  char *s = dump_value(v);
  if (want_text) ck_assert_str_eq(s, want_text);
  json_error_t je;
  json_t *j = json_loads(s, JSON_DECODE_ANY, &je);
  ck_assert_ptr_nonnull(j);
  as_value back = AS_VALUE_NULL;
  as_error err;
  ck_assert_msg(as_value_from_json(j, &back, &err) == AS_OK, "%s: %s", s, err.message);
  ck_assert_int_eq(back.type, v->type);
  ck_assert_msg(as_value_equal(&back, v), "%s", s);
  if (v->type == AS_T_DOUBLE) {
    ck_assert_int_eq(!!signbit(back.u.d), !!signbit(v->u.d));
    if (!isnan(v->u.d)) ck_assert(memcmp(&back.u.d, &v->u.d, 8) == 0);
  }
  if (v->type == AS_T_DECIMAL || v->type == AS_T_TEXT || v->type == AS_T_BYTES) {
    ck_assert_uint_eq(back.u.s.len, v->u.s.len);
    ck_assert(memcmp(back.u.s.ptr, v->u.s.ptr, v->u.s.len) == 0); /* exact, not just equal */
  }
  char *s2 = dump_value(&back);
  ck_assert_str_eq(s, s2);
  free(s2);
  free(s);
  json_decref(j);
  as_value_clear(&back);
}

START_TEST(test_value_json_every_type) {
  as_value v = AS_VALUE_NULL;
  json_rt(&v, "null");
  as_value_set_bool(&v, true);
  json_rt(&v, "true");
  as_value_set_int64(&v, INT64_MIN);
  json_rt(&v, "-9223372036854775808");
  as_value_set_int64(&v, INT64_MAX);
  json_rt(&v, "9223372036854775807");
  as_value_set_double(&v, NAN);
  json_rt(&v, "{\"$double\":\"NaN\"}");
  as_value_set_double(&v, INFINITY);
  json_rt(&v, "{\"$double\":\"Infinity\"}");
  as_value_set_double(&v, -INFINITY);
  json_rt(&v, "{\"$double\":\"-Infinity\"}");
  as_value_set_double(&v, -0.0);
  json_rt(&v, "-0.0");
  as_value_set_double(&v, 1.0);
  json_rt(&v, "1.0");
  as_value_set_double(&v, 0.1);
  json_rt(&v, NULL);
  as_value_set_double(&v, 1e300);
  json_rt(&v, NULL);
  as_value_set_double(&v, 5e-324);
  json_rt(&v, NULL);
  as_value_set_str(&v, AS_T_DECIMAL, "-12.50", 6);
  json_rt(&v, "{\"$decimal\":\"-12.50\"}");
  as_value_set_str(&v, AS_T_DECIMAL, "1.000000000000000000000000000000001E+6000", 41);
  json_rt(&v, NULL);
  as_value_set_str(&v, AS_T_TEXT, "h\"é\\\n\x01", strlen("h\"é\\\n\x01"));
  json_rt(&v, "\"h\\\"é\\\\\\n\\u0001\"");
  as_value_set_str(&v, AS_T_BYTES, "\0\1\2\xff", 4);
  json_rt(&v, "{\"$bytes\":\"AAEC/w==\"}");
  as_value_set_str(&v, AS_T_BYTES, "", 0);
  json_rt(&v, "{\"$bytes\":\"\"}");
  uint8_t u[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
  as_value_set_uuid(&v, u);
  json_rt(&v, "{\"$uuid\":\"01234567-89ab-cdef-0123-456789abcdef\"}");
  as_value_set_oid(&v, u);
  json_rt(&v, "{\"$oid\":\"0123456789abcdef01234567\"}");
  as_value_set_timestamp(&v, -1);
  json_rt(&v, "{\"$ts\":\"1969-12-31T23:59:59.999999Z\"}");
  as_value_set_date(&v, 19782);
  json_rt(&v, "{\"$date\":\"2024-02-29\"}");
  const char *js = "{\"b\":[1,2.5,{\"$oid\":\"x\"}],\"a\":null}";
  as_value_set_str(&v, AS_T_JSON, js, strlen(js));
  json_rt(&v, "{\"$json\":{\"b\":[1,2.5,{\"$oid\":\"x\"}],\"a\":null}}");
  js = "[100000000000000000000, 1.0]"; /* beyond int64: kept as text, not rounded */
  as_value_set_str(&v, AS_T_JSON, js, strlen(js));
  json_rt(&v, "{\"$jsontext\":\"[100000000000000000000, 1.0]\"}");
  js = "{\"price\":1.50}"; /* jsonb keeps the scale; a double could not */
  as_value_set_str(&v, AS_T_JSON, js, strlen(js));
  json_rt(&v, "{\"$jsontext\":\"{\\\"price\\\":1.50}\"}");
  js = "{\"price\":1.5,\"n\":[1e+300,0.1,-0.0,2.0]}"; /* shortest forms: carried as JSON */
  as_value_set_str(&v, AS_T_JSON, js, strlen(js));
  json_rt(&v, "{\"$json\":{\"price\":1.5,\"n\":[1.0000000000000001e300,0.10000000000000001,-0.0,2.0]}}");
  as_value_clear(&v);
}
END_TEST

static int from_typed(const char *json, as_type t, as_value *out, as_error *err) {
  json_error_t je;
  json_t *j = json_loads(json, JSON_DECODE_ANY, &je);
  ck_assert_ptr_nonnull(j);
  int rc = as_value_from_json_typed(j, t, out, err);
  json_decref(j);
  return rc;
}

START_TEST(test_value_json_typed) {
  as_value v = AS_VALUE_NULL;
  as_error err;
  ck_assert_int_eq(from_typed("\"01234567-89ab-cdef-0123-456789abcdef\"", AS_T_UUID, &v, &err), AS_OK);
  ck_assert_int_eq(v.type, AS_T_UUID);
  ck_assert_int_eq(v.u.uuid[15], 0xef);
  ck_assert_int_eq(from_typed("3", AS_T_DOUBLE, &v, &err), AS_OK);
  ck_assert(v.type == AS_T_DOUBLE && v.u.d == 3.0);
  ck_assert_int_eq(from_typed("3.0", AS_T_INT64, &v, &err), AS_OK);
  ck_assert(v.type == AS_T_INT64 && v.u.i == 3);
  ck_assert_int_eq(from_typed("3.5", AS_T_INT64, &v, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "cannot convert 3.5 to int64");
  ck_assert_int_eq(from_typed("9007199254740993", AS_T_DOUBLE, &v, &err), AS_EINVAL);
  ck_assert_int_eq(from_typed("2.25", AS_T_DECIMAL, &v, &err), AS_OK);
  ck_assert_str_eq(v.u.s.ptr, "2.25");
  as_value_clear(&v);
  ck_assert_int_eq(from_typed("\"2024-01-02 03:04:05+01\"", AS_T_TIMESTAMP, &v, &err), AS_OK);
  ck_assert_int_eq(v.u.ts_us, 1704161045000000LL);
  ck_assert_int_eq(from_typed("{\"a\":[1,2]}", AS_T_JSON, &v, &err), AS_OK);
  ck_assert_str_eq(v.u.s.ptr, "{\"a\":[1,2]}");
  as_value_clear(&v);
  ck_assert_int_eq(from_typed("{\"$json\":[1]}", AS_T_JSON, &v, &err), AS_OK);
  ck_assert_str_eq(v.u.s.ptr, "[1]");
  as_value_clear(&v);
  ck_assert_int_eq(from_typed("null", AS_T_UUID, &v, &err), AS_OK);
  ck_assert_int_eq(v.type, AS_T_NULL);
  ck_assert_int_eq(from_typed("true", AS_T_TEXT, &v, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "cannot convert true to text");
  ck_assert_int_eq(from_typed("\"abc\"", AS_T_INT64, &v, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "invalid int64 text \"abc\"");
  ck_assert_int_eq(from_typed("{\"x\":1}", AS_T_TEXT, &v, &err), AS_EINVAL);
  ck_assert_int_eq(from_typed("{\"$bytes\":\"!!\"}", AS_T_BYTES, &v, &err), AS_EINVAL);
  ck_assert_int_eq(from_typed("[1]", AS_T_INT64, &v, &err), AS_EINVAL);
}
END_TEST

static void fill_users_delta(as_delta *d, as_op op) {
  ck_assert_int_eq(as_delta_init(d, users, op), AS_OK);
  as_value v = AS_VALUE_NULL;
  uint8_t u[16];
  for (int i = 0; i < 16; i++) u[i] = (uint8_t)(i * 17);
  as_value_set_uuid(&v, u);
  as_row_put(&d->row, 0, &v);
  if (op == AS_OP_DELETE) return;
  as_value_set_str(&v, AS_T_TEXT, "a@b.c", 5);
  as_row_put(&d->row, 1, &v);
  as_value_set_str(&v, AS_T_DECIMAL, "10.50", 5);
  as_row_put(&d->row, 3, &v);
  if (op == AS_OP_UPDATE) {
    as_row_put(&d->row, 2, &v); /* v is NULL now: age set to null */
    return;
  }
  as_value_set_int64(&v, 41);
  as_row_put(&d->row, 2, &v);
  as_value_set_str(&v, AS_T_TEXT, "EUR", 3);
  as_row_put(&d->row, 4, &v);
  as_value_set_timestamp(&v, 1700000000123456LL);
  as_row_put(&d->row, 5, &v);
  const char *cj = "{\"z\":1,\"a\":{\"$numberLong\":\"2\"}}";
  as_value_set_str(&v, AS_T_JSON, cj, strlen(cj));
  as_row_put(&d->row, 6, &v);
}

START_TEST(test_delta_to_json) {
  as_delta d;
  as_error err;
  fill_users_delta(&d, AS_OP_UPDATE);
  as_delta_set_origin(&d, "mongo");
  d.ts_us = 1700000000000000LL;
  d.hlc = AS_HLC_FROM_US(d.ts_us) | 3;
  as_delta_vv_set(&d, "pg", 4);
  as_delta_vv_set(&d, "mongo", 7);
  as_delta_vv_set(&d, "pg", 5);
  as_delta_set_pos(&d, "82656F");
  char *s = as_delta_to_json_string(&d, &err);
  ck_assert_msg(s != NULL, "%s", err.message);
  ck_assert_str_eq(s,
                   "{\"mapping\":\"users\",\"op\":\"update\",\"key\":{\"id\":{\"$uuid\":\"00112233-4455-6677-8899-aabbccddeeff\"}},"
                   "\"cols\":{\"email\":\"a@b.c\",\"age\":null,\"balance\":{\"$decimal\":\"10.50\"}},"
                   "\"origin\":\"mongo\",\"echo\":false,\"ts\":1700000000000000,\"hlc\":435200000000000003,"
                   "\"vv\":{\"mongo\":7,\"pg\":5},\"pos\":\"82656F\"}");
  free(s);
  as_delta_clear(&d);
  as_delta_clear(&d); /* NULL-safe, zeroed */
  as_delta_clear(NULL);
}
END_TEST

static void delta_rt(as_op op) {
  as_delta d, back;
  as_error err;
  fill_users_delta(&d, op);
  d.echo = op == AS_OP_INSERT;
  d.ts_us = -5;
  d.hlc = INT64_MAX;
  as_delta_set_origin(&d, "sqlite-a");
  as_delta_set_txn(&d, "tx-9");
  as_delta_vv_set(&d, "b", UINT32_MAX);
  json_t *j = as_delta_to_json(&d, &err);
  ck_assert_ptr_nonnull(j);
  ck_assert_int_eq(as_delta_from_json(j, lookup, NULL, &back, &err), AS_OK);
  ck_assert_ptr_eq(back.schema, users);
  ck_assert_int_eq(back.op, op);
  ck_assert_int_eq(back.echo, d.echo);
  ck_assert_int_eq(back.ts_us, d.ts_us);
  ck_assert_int_eq(back.hlc, d.hlc);
  ck_assert_str_eq(back.origin, "sqlite-a");
  ck_assert_str_eq(back.txn, "tx-9");
  ck_assert_ptr_null(back.pos);
  ck_assert_uint_eq(back.nvv, 1);
  ck_assert_uint_eq(back.vv[0].counter, UINT32_MAX);
  for (size_t i = 0; i < users->ncols; i++) {
    ck_assert_int_eq(back.row.set[i], d.row.set[i]);
    if (d.row.set[i]) ck_assert_msg(as_value_equal(&back.row.v[i], &d.row.v[i]), "col %zu", i);
  }
  json_t *j2 = as_delta_to_json(&back, &err);
  ck_assert(json_equal(j, j2));
  /* copy */
  as_delta c;
  ck_assert_int_eq(as_delta_copy(&c, &back), AS_OK);
  json_t *j3 = as_delta_to_json(&c, &err);
  ck_assert(json_equal(j, j3));
  json_decref(j);
  json_decref(j2);
  json_decref(j3);
  as_delta_clear(&d);
  as_delta_clear(&back);
  as_delta_clear(&c);
}

START_TEST(test_delta_roundtrip) {
  delta_rt(AS_OP_INSERT);
  delta_rt(AS_OP_UPDATE);
  delta_rt(AS_OP_DELETE);
}
END_TEST

static void bad_delta(const char *json, int code, const char *msg) {
  json_error_t je;
  json_t *j = json_loads(json, 0, &je);
  ck_assert_msg(j != NULL, "%s", je.text);
  as_delta d;
  as_error err;
  ck_assert_int_eq(as_delta_from_json(j, lookup, NULL, &d, &err), code);
  ck_assert_str_eq(err.message, msg);
  json_decref(j);
}

START_TEST(test_delta_from_json_errors) {
  bad_delta("{\"op\":\"insert\"}", AS_EINVAL, "delta has no \"mapping\"");
  bad_delta("{\"mapping\":\"users\",\"op\":\"upsert\"}", AS_EINVAL, "delta has no valid \"op\"");
  bad_delta("{\"mapping\":\"nope\",\"op\":\"insert\"}", AS_ENOTFOUND, "unknown mapping \"nope\"");
  bad_delta("{\"mapping\":\"users\",\"op\":\"delete\",\"key\":{}}", AS_EINVAL,
            "mapping users: delta lacks key column \"id\"");
  bad_delta("{\"mapping\":\"users\",\"op\":\"delete\",\"key\":{\"email\":\"x\"}}", AS_EINVAL,
            "mapping users: key \"email\" is not a key column");
  bad_delta("{\"mapping\":\"users\",\"op\":\"update\",\"key\":{\"id\":\"00112233-4455-6677-8899-aabbccddeeff\"},"
            "\"cols\":{\"nope\":1}}",
            AS_EINVAL, "mapping users: cols \"nope\" is not a non-key column");
  bad_delta("{\"mapping\":\"users\",\"op\":\"update\",\"key\":{\"id\":\"00112233-4455-6677-8899-aabbccddeeff\"},"
            "\"cols\":{\"age\":\"x\"}}",
            AS_EINVAL, "mapping users, column \"age\": invalid int64 text \"x\"");
  bad_delta("{\"mapping\":\"users\",\"op\":\"delete\",\"key\":{\"id\":\"00112233-4455-6677-8899-aabbccddeeff\"},"
            "\"ts\":\"now\"}",
            AS_EINVAL, "delta field \"ts\" has the wrong type");
  bad_delta("{\"mapping\":\"users\",\"op\":\"delete\",\"key\":{\"id\":\"00112233-4455-6677-8899-aabbccddeeff\"},"
            "\"extra\":1}",
            AS_EINVAL, "unknown delta field \"extra\"");
}
END_TEST

START_TEST(test_truncate_json) {
  as_delta d;
  as_error err;
  as_delta_init(&d, users, AS_OP_TRUNCATE);
  as_delta_set_origin(&d, "pg");
  d.ts_us = 5;
  d.hlc = 7;
  char *s = as_delta_to_json_string(&d, &err);
  ck_assert_ptr_nonnull(s);
  ck_assert_str_eq(s, "{\"mapping\":\"users\",\"op\":\"truncate\",\"key\":{},\"cols\":{},"
                      "\"origin\":\"pg\",\"echo\":false,\"ts\":5,\"hlc\":7}");
  json_error_t je;
  json_t *j = json_loads(s, 0, &je);
  as_delta back;
  ck_assert_int_eq(as_delta_from_json(j, lookup, NULL, &back, &err), AS_OK);
  ck_assert_int_eq(back.op, AS_OP_TRUNCATE);
  for (size_t i = 0; i < users->ncols; i++) ck_assert(!as_row_has(&back.row, i));
  as_delta_clear(&back);
  json_decref(j);
  free(s);
  as_delta_clear(&d);
  bad_delta("{\"mapping\":\"users\",\"op\":\"truncate\",\"key\":{\"id\":\"00112233-4455-6677-8899-aabbccddeeff\"}}",
            AS_EINVAL, "mapping users: a truncate has neither key nor columns");
}
END_TEST

START_TEST(test_vv_sorted) {
  as_delta d;
  as_delta_init(&d, users, AS_OP_DELETE);
  const char *names[] = {"m", "c", "z", "a", "c", "q"};
  for (int i = 0; i < 6; i++) ck_assert_int_eq(as_delta_vv_set(&d, names[i], (uint64_t)i), AS_OK);
  ck_assert_uint_eq(d.nvv, 5);
  for (size_t i = 1; i < d.nvv; i++) ck_assert_int_lt(strcmp(d.vv[i - 1].node, d.vv[i].node), 0);
  ck_assert_str_eq(d.vv[1].node, "c");
  ck_assert_uint_eq(d.vv[1].counter, 4);
  as_delta_clear(&d);
}
END_TEST

static void setup(void) { users = fx_users(); }
static void teardown(void) { fx_schema_free(users); }

int main(void) {
  Suite *s = suite_create("delta_json");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_value_json_every_type);
  tcase_add_test(tc, test_value_json_typed);
  tcase_add_test(tc, test_delta_to_json);
  tcase_add_test(tc, test_delta_roundtrip);
  tcase_add_test(tc, test_delta_from_json_errors);
  tcase_add_test(tc, test_truncate_json);
  tcase_add_test(tc, test_vv_sorted);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
