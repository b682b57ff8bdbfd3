/* test_bson_merge.c — the sink's minimal write (as_doc_merge, as_doc_diff_update): the next
 * document keeps the current one's bytes wherever nothing changed, and the update names only the
 * changed paths. Documents are compared as canonical extended JSON (types visible). */
#include <check.h>

#include "as_test_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_bson.h"
#include "as_children.h"
#include "as_schema.h"

static as_schema *m;

static const char *yaml =
    "mapping: m\n"
    "collection: m\n"
    "key: id\n"
    "columns:\n"
    "  id: { field: _id, type: text }\n"
    "  a: { field: a, type: text }\n"
    "  b: { field: b, type: bigint }\n"
    "  p: { field: p, type: numeric }\n"
    "  f: { field: f, type: double }\n"
    "  bal: { field: acc.bal, type: bigint }\n"
    "  j: { field: j, type: jsonb }\n"
    "  u: { field: u, type: uuid }\n"
    "  y: { field: by, type: bytea }\n"
    "  ts: { field: ts, type: timestamptz }\n"
    "  t: { field: t, type: text }\n"
    "  x: { field: \"*\", type: jsonb }\n";

static bson_t *doc(const char *json) {
  bson_error_t be;
  bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &be);
  ck_assert_msg(b != NULL, "%s: %s", json, be.message);
  return b;
}

static char *canon(const bson_t *b) { return bson_as_canonical_extended_json(b, NULL); }

static int col(const char *name) {
  int i = as_schema_column_index(m, name);
  ck_assert_int_ge(i, 0);
  return i;
}

/* Sets column name from its canonical value JSON (as_value.h form, untagged converted). */
static void put(as_row *r, const char *name, const char *json) {
  json_error_t je;
  json_t *j = json_loads(json, JSON_DECODE_ANY, &je);
  ck_assert_msg(j != NULL, "%s: %s", json, je.text);
  as_value v = AS_VALUE_NULL;
  as_error err;
  int i = col(name);
  ck_assert_msg(as_value_from_json_typed(j, m->cols[i].type, &v, &err) == AS_OK, "%s", err.message);
  as_row_put(r, (size_t)i, &v);
  json_decref(j);
}

static void put_text(as_row *r, const char *name, const char *s, size_t n) {
  as_value v = AS_VALUE_NULL;
  ck_assert_int_eq(as_value_set_str(&v, AS_T_TEXT, s, n), AS_OK);
  as_row_put(r, (size_t)col(name), &v);
}

/* The row of cur_json (every column), or a row with only the key when `whole` is false. */
static void row_of(const char *cur_json, bool whole, as_row *r) {
  bson_t *b = doc(cur_json);
  as_error err;
  as_row full = {0};
  ck_assert_int_eq(as_row_init(&full, m->ncols), AS_OK);
  ck_assert_msg(as_doc_to_row(m, b, &full, &err) == AS_OK, "%s", err.message);
  if (whole) {
    *r = full;
  } else {
    ck_assert_int_eq(as_row_init(r, m->ncols), AS_OK);
    as_value v = AS_VALUE_NULL;
    ck_assert_int_eq(as_value_copy(&v, &full.v[0]), AS_OK);
    as_row_put(r, 0, &v);
    as_row_clear(&full);
  }
  bson_destroy(b);
}

/* Merges r into cur_json (NULL: no document) and checks next and the update (NULL: unchanged). */
static void expect(const char *cur_json, const as_row *r, const char *want_next, const char *want_update,
                   bool want_replace) {
  bson_t *cur = cur_json ? doc(cur_json) : NULL;
  bson_t next, upd;
  bool changed = false, replace = false;
  as_error err = {0};
  ck_assert_msg(as_doc_merge(m, cur, r, &next, &changed, &err) == AS_OK, "%s", err.message);
  if (!want_next) {
    ck_assert_msg(!changed, "unexpected change: %s", canon(&next));
    bson_destroy(&next);
    if (cur) bson_destroy(cur);
    return;
  }
  ck_assert(changed);
  char *got = canon(&next);
  bson_t *w = doc(want_next);
  char *want = canon(w);
  ck_assert_msg(strcmp(got, want) == 0, "next\n got %s\nwant %s", got, want);
  bson_free(got);
  bson_free(want);
  bson_destroy(w);
  if (cur) {
    ck_assert_msg(as_doc_diff_update(cur, &next, &upd, &replace, &err) == AS_OK, "%s", err.message);
    ck_assert_int_eq(replace, want_replace);
    got = canon(&upd);
    w = doc(want_update);
    want = canon(w);
    ck_assert_msg(strcmp(got, want) == 0, "update\n got %s\nwant %s", got, want);
    bson_free(got);
    bson_free(want);
    bson_destroy(w);
    bson_destroy(&upd);
    bson_destroy(cur);
  }
  bson_destroy(&next);
}

#define N5 "{\"_id\":\"n5\",\"a\":\"text 5\",\"b\":{\"$numberDouble\":\"2.0\"},\"p\":{\"$numberDouble\":\"0.1\"}," \
           "\"z\":{\"q\":{\"$numberInt\":\"1\"},\"b\":{\"$numberInt\":\"2\"}}}"

/* The issue: the row read back from PostgreSQL (bigint 2, numeric 0.1, jsonb with sorted keys)
 * written over the document it came from changes nothing. */
START_TEST(test_equal_row_writes_nothing) {
  as_row r = {0};
  row_of(N5, false, &r);
  put(&r, "a", "\"text 5\"");
  put(&r, "b", "2");
  put(&r, "p", "{\"$decimal\":\"0.10\"}");
  put(&r, "f", "null");
  put(&r, "bal", "null");
  put(&r, "j", "null");
  put(&r, "u", "null");
  put(&r, "x", "{\"$json\":{\"z\":{\"b\":2,\"q\":1}}}");
  expect(N5, &r, NULL, NULL, false);
  as_row_clear(&r);
  /* the whole row of the document itself */
  row_of(N5, true, &r);
  expect(N5, &r, NULL, NULL, false);
  as_row_clear(&r);
}
END_TEST

START_TEST(test_changed_value_keeps_type) {
  as_row r = {0};
  row_of(N5, false, &r);
  put(&r, "b", "3");
  expect(N5, &r,
         "{\"_id\":\"n5\",\"a\":\"text 5\",\"b\":{\"$numberDouble\":\"3.0\"},\"p\":{\"$numberDouble\":\"0.1\"},"
         "\"z\":{\"q\":{\"$numberInt\":\"1\"},\"b\":{\"$numberInt\":\"2\"}}}",
         "{\"$set\":{\"b\":{\"$numberDouble\":\"3.0\"}}}", false);
  as_row_clear(&r);
  /* a decimal that a double holds exactly (as the column reads it) stays a double */
  row_of(N5, false, &r);
  put(&r, "p", "{\"$decimal\":\"0.250\"}");
  expect(N5, &r,
         "{\"_id\":\"n5\",\"a\":\"text 5\",\"b\":{\"$numberDouble\":\"2.0\"},\"p\":{\"$numberDouble\":\"0.25\"},"
         "\"z\":{\"q\":{\"$numberInt\":\"1\"},\"b\":{\"$numberInt\":\"2\"}}}",
         "{\"$set\":{\"p\":{\"$numberDouble\":\"0.25\"}}}", false);
  as_row_clear(&r);
  /* one a double cannot hold becomes the column's natural Decimal128 */
  row_of(N5, false, &r);
  put(&r, "p", "{\"$decimal\":\"0.1000000000000000000001\"}");
  expect(N5, &r,
         "{\"_id\":\"n5\",\"a\":\"text 5\",\"b\":{\"$numberDouble\":\"2.0\"},"
         "\"p\":{\"$numberDecimal\":\"0.1000000000000000000001\"},"
         "\"z\":{\"q\":{\"$numberInt\":\"1\"},\"b\":{\"$numberInt\":\"2\"}}}",
         "{\"$set\":{\"p\":{\"$numberDecimal\":\"0.1000000000000000000001\"}}}", false);
  as_row_clear(&r);
  /* int64 fields stay int64 even for small values; int32 stays int32; a fraction into a bigint
   * field held as double is impossible (bigint), a double column's 2.5 into an int32 field
   * becomes a double */
  const char *ints = "{\"_id\":\"i\",\"b\":{\"$numberLong\":\"7\"},\"f\":{\"$numberInt\":\"4\"},"
                     "\"p\":{\"$numberDecimal\":\"2.50\"}}";
  row_of(ints, false, &r);
  put(&r, "b", "8");
  put(&r, "f", "2.5");
  put(&r, "p", "{\"$decimal\":\"2.5\"}"); /* equal to 2.50: untouched */
  expect(ints, &r,
         "{\"_id\":\"i\",\"b\":{\"$numberLong\":\"8\"},\"f\":{\"$numberDouble\":\"2.5\"},"
         "\"p\":{\"$numberDecimal\":\"2.50\"}}",
         "{\"$set\":{\"b\":{\"$numberLong\":\"8\"},\"f\":{\"$numberDouble\":\"2.5\"}}}", false);
  as_row_clear(&r);
  row_of(ints, false, &r);
  put(&r, "f", "6.0");
  put(&r, "p", "{\"$decimal\":\"3\"}");
  expect(ints, &r,
         "{\"_id\":\"i\",\"b\":{\"$numberLong\":\"7\"},\"f\":{\"$numberInt\":\"6\"},"
         "\"p\":{\"$numberDecimal\":\"3\"}}",
         "{\"$set\":{\"f\":{\"$numberInt\":\"6\"},\"p\":{\"$numberDecimal\":\"3\"}}}", false);
  as_row_clear(&r);
  /* a uuid held as text stays text */
  const char *ut = "{\"_id\":\"u\",\"u\":\"00112233-4455-6677-8899-AABBCCDDEEFF\"}";
  row_of(ut, false, &r);
  put(&r, "u", "{\"$uuid\":\"00112233-4455-6677-8899-aabbccddeeff\"}");
  expect(ut, &r, NULL, NULL, false); /* equal */
  put(&r, "u", "{\"$uuid\":\"00112233-4455-6677-8899-aabbccddeef0\"}");
  expect(ut, &r, "{\"_id\":\"u\",\"u\":\"00112233-4455-6677-8899-aabbccddeef0\"}",
         "{\"$set\":{\"u\":\"00112233-4455-6677-8899-aabbccddeef0\"}}", false);
  as_row_clear(&r);
}
END_TEST

START_TEST(test_null_is_absent) {
  const char *d = "{\"_id\":\"k\",\"a\":null,\"b\":{\"$numberInt\":\"1\"}}";
  as_row r = {0};
  row_of(d, false, &r);
  put(&r, "a", "null"); /* field holds null: stays */
  put(&r, "f", "null"); /* no field: none added */
  expect(d, &r, NULL, NULL, false);
  put(&r, "b", "null"); /* a value: removed */
  expect(d, &r, "{\"_id\":\"k\",\"a\":null}", "{\"$unset\":{\"b\":\"\"}}", false);
  as_row_clear(&r);
  /* a new document has no field for a NULL column, columns in schema order */
  row_of("{\"_id\":\"new\"}", true, &r);
  put(&r, "b", "5");
  put(&r, "bal", "6");
  put(&r, "x", "{\"$json\":{\"k\":[1,{\"$$x\":true}]}}");
  expect(NULL, &r,
         "{\"_id\":\"new\",\"b\":{\"$numberInt\":\"5\"},\"acc\":{\"bal\":{\"$numberInt\":\"6\"}},"
         "\"k\":[{\"$numberInt\":\"1\"},{\"$x\":true}]}",
         NULL, false);
  as_row_clear(&r);
}
END_TEST

START_TEST(test_nested_and_catch_all) {
  const char *d = "{\"_id\":\"c\",\"acc\":{\"cur\":\"EUR\",\"bal\":{\"$numberInt\":\"1\"}},"
                  "\"z\":{\"q\":1,\"b\":[1,2],\"s\":{\"$k\":1}},\"y\":true}";
  as_row r = {0};
  /* an update of one nested column: only that path */
  row_of(d, false, &r);
  put(&r, "bal", "2");
  expect(d, &r,
         "{\"_id\":\"c\",\"acc\":{\"cur\":\"EUR\",\"bal\":{\"$numberInt\":\"2\"}},"
         "\"z\":{\"q\":1,\"b\":[1,2],\"s\":{\"$k\":1}},\"y\":true}",
         "{\"$set\":{\"acc.bal\":{\"$numberInt\":\"2\"}}}", false);
  as_row_clear(&r);
  /* the catch-all: y gone, z.b[1] changed, z.s.$k changed (cannot be named: z.s set whole),
   * acc.cur gone, w new */
  row_of(d, false, &r);
  put(&r, "x", "{\"$json\":{\"w\":\"new\",\"z\":{\"s\":{\"$$k\":2},\"b\":[1,3],\"q\":1},\"acc\":{}}}");
  expect(d, &r,
         "{\"_id\":\"c\",\"acc\":{\"bal\":{\"$numberInt\":\"1\"}},"
         "\"z\":{\"q\":1,\"b\":[1,3],\"s\":{\"$k\":2}},\"w\":\"new\"}",
         "{\"$set\":{\"z.b.1\":{\"$numberInt\":\"3\"},\"z.s\":{\"$k\":{\"$numberInt\":\"2\"}},\"w\":\"new\"},"
         "\"$unset\":{\"acc.cur\":\"\",\"y\":\"\"}}",
         false);
  as_row_clear(&r);
  /* arrays of another length are set whole */
  row_of(d, false, &r);
  put(&r, "x", "{\"$json\":{\"z\":{\"q\":1,\"b\":[1,2,3],\"s\":{\"$$k\":1}},\"y\":true,\"acc\":{\"cur\":\"EUR\"}}}");
  expect(d, &r,
         "{\"_id\":\"c\",\"acc\":{\"cur\":\"EUR\",\"bal\":{\"$numberInt\":\"1\"}},"
         "\"z\":{\"q\":1,\"b\":[1,2,3],\"s\":{\"$k\":1}},\"y\":true}",
         "{\"$set\":{\"z.b\":[1,2,3]}}", false);
  as_row_clear(&r);
  /* a top-level field whose name cannot be a path: replace */
  const char *dot = "{\"_id\":\"d\",\"a.b\":1}";
  row_of(dot, false, &r);
  put(&r, "x", "{\"$json\":{\"a.b\":2}}");
  expect(dot, &r, "{\"_id\":\"d\",\"a.b\":2}", "{}", true);
  as_row_clear(&r);
}
END_TEST

START_TEST(test_json_column_and_nul) {
  const char *d = "{\"_id\":\"j\",\"j\":[1,{\"a\":1,\"b\":{\"$numberLong\":\"2\"}}],\"a\":\"x\\u0000y\"}";
  as_row r = {0};
  row_of(d, false, &r);
  put(&r, "j", "{\"$json\":[1,{\"b\":{\"$numberLong\":\"2\"},\"a\":1}]}");
  put_text(&r, "a", "x\0y", 3);
  expect(d, &r, NULL, NULL, false);
  put(&r, "j", "{\"$json\":[1,{\"b\":{\"$numberLong\":\"3\"},\"a\":1}]}");
  put_text(&r, "a", "x\0z", 3);
  expect(d, &r, "{\"_id\":\"j\",\"j\":[1,{\"a\":1,\"b\":{\"$numberLong\":\"3\"}}],\"a\":\"x\\u0000z\"}",
         "{\"$set\":{\"j.1.b\":{\"$numberLong\":\"3\"},\"a\":\"x\\u0000z\"}}", false);
  as_row_clear(&r);
}
END_TEST

/* Binary subtypes, a uuid as subtype 3, a BSON timestamp and a symbol keep their form. */
START_TEST(test_other_types_keep_form) {
  const char *d = "{\"_id\":\"o\",\"by\":{\"$binary\":{\"base64\":\"AAE=\",\"subType\":\"80\"}},"
                  "\"u\":{\"$binary\":{\"base64\":\"ABEiM0RVZneImaq7zN3u/w==\",\"subType\":\"03\"}},"
                  "\"ts\":{\"$timestamp\":{\"t\":100,\"i\":7}},\"t\":{\"$symbol\":\"s\"}}";
  as_row r = {0};
  row_of(d, false, &r);
  put(&r, "y", "{\"$bytes\":\"AgM=\"}");
  put(&r, "u", "{\"$uuid\":\"00112233-4455-6677-8899-aabbccddeef0\"}");
  put(&r, "ts", "{\"$ts\":\"1970-01-01T00:03:20.000000Z\"}");
  put(&r, "t", "\"s2\"");
  expect(d, &r,
         "{\"_id\":\"o\",\"by\":{\"$binary\":{\"base64\":\"AgM=\",\"subType\":\"80\"}},"
         "\"u\":{\"$binary\":{\"base64\":\"ABEiM0RVZneImaq7zN3u8A==\",\"subType\":\"03\"}},"
         "\"ts\":{\"$timestamp\":{\"t\":200,\"i\":7}},\"t\":{\"$symbol\":\"s2\"}}",
         "{\"$set\":{\"by\":{\"$binary\":{\"base64\":\"AgM=\",\"subType\":\"80\"}},"
         "\"u\":{\"$binary\":{\"base64\":\"ABEiM0RVZneImaq7zN3u8A==\",\"subType\":\"03\"}},"
         "\"ts\":{\"$timestamp\":{\"t\":200,\"i\":7}},\"t\":{\"$symbol\":\"s2\"}}}",
         false);
  /* a timestamp with milliseconds cannot be a BSON timestamp: a date */
  put(&r, "ts", "{\"$ts\":\"1970-01-01T00:03:20.500000Z\"}");
  put(&r, "y", "{\"$bytes\":\"AAE=\"}");
  put(&r, "u", "{\"$uuid\":\"00112233-4455-6677-8899-aabbccddeeff\"}");
  put(&r, "t", "\"s\"");
  expect(d, &r,
         "{\"_id\":\"o\",\"by\":{\"$binary\":{\"base64\":\"AAE=\",\"subType\":\"80\"}},"
         "\"u\":{\"$binary\":{\"base64\":\"ABEiM0RVZneImaq7zN3u/w==\",\"subType\":\"03\"}},"
         "\"ts\":{\"$date\":{\"$numberLong\":\"200500\"}},\"t\":{\"$symbol\":\"s\"}}",
         "{\"$set\":{\"ts\":{\"$date\":{\"$numberLong\":\"200500\"}}}}", false);
  as_row_clear(&r);
}
END_TEST

/* A document the mapping cannot read (b is a string): equal values still keep their bytes. */
START_TEST(test_unreadable_current) {
  const char *d = "{\"_id\":\"e\",\"b\":\"oops\",\"a\":\"t\",\"q\":1}";
  as_row r = {0};
  ck_assert_int_eq(as_row_init(&r, m->ncols), AS_OK);
  put(&r, "id", "\"e\"");
  put(&r, "a", "\"t\"");
  put(&r, "b", "4");
  put(&r, "x", "{\"$json\":{\"q\":1}}");
  expect(d, &r, "{\"_id\":\"e\",\"b\":{\"$numberInt\":\"4\"},\"a\":\"t\",\"q\":1}",
         "{\"$set\":{\"b\":{\"$numberInt\":\"4\"}}}", false);
  as_row_clear(&r);
}
END_TEST

/* A child table's array without an element catch-all: SQL holds no field no element column
 * maps, so writing the array SQL gives back keeps them in every element it stands for (by
 * key; by position, an element with the same mapped values first), nested arrays too. */
START_TEST(test_child_array_keeps_unmapped) {
  as_error err = {0};
  as_schema *c = NULL;
  ck_assert_msg(as_schema_load_string("c.yaml",
                                      "mapping: c\n"
                                      "key: id\n"
                                      "columns: { id: { field: _id, type: text } }\n"
                                      "children:\n"
                                      "  - table: o\n"
                                      "    field: o\n"
                                      "    key: sku\n"
                                      "    columns: { sku: text, q: bigint }\n"
                                      "    children:\n"
                                      "      - table: l\n"
                                      "        field: l\n"
                                      "        columns: { t: text }\n"
                                      "  - table: p\n"
                                      "    field: p\n"
                                      "    columns: { t: text }\n",
                                      &c, &err) == AS_OK,
                "%s", err.message);
  static const char *const cases[][3] = {
      /* current, what SQL gives back, the next document */
      {"{\"_id\":\"1\",\"o\":[{\"sku\":\"a\",\"q\":1,\"gift\":true},{\"sku\":\"b\",\"q\":2,\"g\":1}],\"z\":0}",
       "{\"_id\":\"1\",\"o\":[{\"sku\":\"b\",\"q\":3},{\"sku\":\"a\",\"q\":1}]}",
       "{\"_id\":\"1\",\"o\":[{\"sku\":\"b\",\"q\":{\"$numberInt\":\"3\"},\"g\":{\"$numberInt\":\"1\"}},"
       "{\"sku\":\"a\",\"q\":{\"$numberInt\":\"1\"},\"gift\":true}],\"z\":{\"$numberInt\":\"0\"}}"},
      {"{\"_id\":\"1\",\"p\":[{\"t\":\"x\",\"u\":1},{\"t\":\"y\",\"u\":2},{\"t\":\"z\",\"u\":3}]}",
       "{\"_id\":\"1\",\"p\":[{\"t\":\"y\"},{\"t\":\"z\"}]}",
       "{\"_id\":\"1\",\"p\":[{\"t\":\"y\",\"u\":{\"$numberInt\":\"2\"}},{\"t\":\"z\",\"u\":{\"$numberInt\":\"3\"}}]}"},
      {"{\"_id\":\"1\",\"o\":[{\"sku\":\"a\",\"l\":[{\"t\":\"x\",\"w\":1},{\"t\":\"y\",\"w\":2}],\"k\":1}]}",
       "{\"_id\":\"1\",\"o\":[{\"sku\":\"a\",\"l\":[{\"t\":\"y\"},{\"t\":\"n\"}]}]}",
       "{\"_id\":\"1\",\"o\":[{\"sku\":\"a\",\"l\":[{\"t\":\"y\",\"w\":{\"$numberInt\":\"2\"}},{\"t\":\"n\"}],"
       "\"k\":{\"$numberInt\":\"1\"}}]}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bson_t *cur = doc(cases[i][0]), *sqlv = doc(cases[i][1]), next;
    as_row full = {0}, r = {0};
    ck_assert_int_eq(as_row_init(&full, c->ncols), AS_OK);
    ck_assert_msg(as_doc_to_row(c, sqlv, &full, &err) == AS_OK, "%s", err.message);
    ck_assert_int_eq(as_row_init(&r, c->ncols), AS_OK);
    for (size_t k = 0; k < c->ncols; k++) { /* the key and the arrays SQL gave back */
      if (k != 0 && !c->cols[k].child) continue;
      as_value v = AS_VALUE_NULL;
      ck_assert_int_eq(as_value_copy(&v, &full.v[k]), AS_OK);
      if (c->cols[k].child && v.type != AS_T_NULL) { /* as the child table gives it back */
        as_value nv;
        ck_assert_msg(as_child_normalize(c, (size_t)c->cols[k].child - 1, &full, &v, &nv, &err) == AS_OK, "%s",
                      err.message);
        as_value_clear(&v);
        v = nv;
      }
      if (c->cols[k].child && v.type == AS_T_NULL) continue;
      as_row_put(&r, k, &v);
    }
    bool changed = false;
    ck_assert_msg(as_doc_merge(c, cur, &r, &next, &changed, &err) == AS_OK, "%s", err.message);
    char *got = canon(&next);
    bson_t *w = doc(cases[i][2]);
    char *want = canon(w);
    ck_assert_msg(strcmp(got, want) == 0, "case %zu\n got %s\nwant %s", i, got, want);
    bson_free(got);
    bson_free(want);
    bson_destroy(w);
    bson_destroy(&next);
    bson_destroy(cur);
    bson_destroy(sqlv);
    as_row_clear(&full);
    as_row_clear(&r);
  }
  as_schema_free(c);
}
END_TEST

static void setup(void) {
  as_error err;
  ck_assert_msg(as_schema_load_string("m.yaml", yaml, &m, &err) == AS_OK, "%s", err.message);
}
static void teardown(void) { as_schema_free(m); }

int main(void) {
  Suite *s = suite_create("bson_merge");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_equal_row_writes_nothing);
  tcase_add_test(tc, test_changed_value_keeps_type);
  tcase_add_test(tc, test_null_is_absent);
  tcase_add_test(tc, test_nested_and_catch_all);
  tcase_add_test(tc, test_json_column_and_nul);
  tcase_add_test(tc, test_unreadable_current);
  tcase_add_test(tc, test_other_types_keep_form);
  tcase_add_test(tc, test_child_array_keeps_unmapped);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
