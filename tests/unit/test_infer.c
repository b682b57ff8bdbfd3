/* test_infer.c — `arraysync infer`: the mapping inferred from realistic customer documents
 * (bench/bench_e2e.py's generator) and from deliberately messy ones passes `arraysync check`
 * and takes every sampled document through document -> row -> document byte for byte; the
 * decisions (types, required, catch-all reasons) and column names; mappings from tables. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "as_bson.h"
#include "as_test_util.h"
#include "cmd_check.h"
#include "cmd_infer.h"

typedef struct docs {
  bson_t **d;
  size_t n;
} docs;

static void docs_add(docs *ds, bson_t *b) {
  ds->d = realloc(ds->d, (ds->n + 1) * sizeof *ds->d);
  ck_assert_ptr_nonnull(ds->d);
  ds->d[ds->n++] = b;
}

static void docs_free(docs *ds) {
  for (size_t i = 0; i < ds->n; i++) bson_destroy(ds->d[i]);
  free(ds->d);
}

static void add_json(docs *ds, const char *json) {
  bson_error_t be;
  bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &be);
  ck_assert_msg(b != NULL, "%s: %s", json, be.message);
  docs_add(ds, b);
}

/* Infers, checks the mapping loads and passes `arraysync check` in a config with a MongoDB and
 * a SQLite node, and round-trips every document. Returns the YAML (caller frees). */
static char *infer_and_verify(const docs *ds, const char *collection) {
  as_infer *in = as_infer_new();
  for (size_t i = 0; i < ds->n; i++) ck_assert_int_eq(as_infer_add(in, ds->d[i]), AS_OK);
  ck_assert_uint_eq(as_infer_count(in), ds->n);
  as_buf y = AS_BUF_INIT;
  as_error err = {0};
  as_infer_opts o = {.collection = collection, .source = "test"};
  ck_assert_msg(as_infer_mapping(in, &o, &y, &err) == AS_OK, "%s", err.message);
  as_infer_free(in);
  char *yaml = as_buf_steal(&y);
  /* the mapping file, in a configuration `arraysync check` accepts */
  char *dir = as_test_tmpdir();
  char mdir[4096];
  snprintf(mdir, sizeof mdir, "%s/mappings", dir);
  ck_assert_int_eq(mkdir(mdir, 0755), 0);
  char name[300];
  snprintf(name, sizeof name, "%s.yaml", collection);
  free(as_test_write_file(mdir, name, yaml));
  char *cfg = as_test_write_file(dir, "c.yaml",
                                 "nodes:\n  mongo: { kind: mongodb, uri: \"mongodb://127.0.0.1:1/\","
                                 " database: d }\n  lite: { kind: sqlite, path: x.db }\n"
                                 "mappings: \"mappings/*.yaml\"\n");
  char *out = NULL;
  size_t outlen = 0;
  FILE *f = open_memstream(&out, &outlen);
  int rc = as_cmd_check(cfg, f, &err);
  fclose(f);
  ck_assert_msg(rc == AS_OK, "check: %s\n%s", err.message, yaml);
  free(out);
  as_schema *s = NULL;
  ck_assert_msg(as_schema_load_string("m.yaml", yaml, &s, &err) == AS_OK, "%s\n%s", err.message,
                yaml);
  for (size_t i = 0; i < ds->n; i++) {
    as_row r = {0};
    bson_t back;
    ck_assert_msg(as_doc_to_row(s, ds->d[i], &r, &err) == AS_OK, "doc %zu: %s\n%s", i,
                  err.message, yaml);
    ck_assert_msg(as_row_to_doc(s, &r, &back, &err) == AS_OK, "doc %zu: %s", i, err.message);
    if (back.len != ds->d[i]->len ||
        memcmp(bson_get_data(&back), bson_get_data(ds->d[i]), back.len) != 0) {
      char *a = bson_as_canonical_extended_json(ds->d[i], NULL);
      char *b = bson_as_canonical_extended_json(&back, NULL);
      ck_abort_msg("doc %zu does not round-trip byte for byte:\n  in:  %s\n  out: %s\n%s", i, a,
                   b, yaml);
    }
    bson_destroy(&back);
    as_row_clear(&r);
  }
  as_schema_free(s);
  free(cfg);
  as_test_rmtree(dir);
  free(dir);
  return yaml;
}

/* The line of the column for field `field` (as written, quoted) or NULL. */
static const char *column_line(const char *yaml, const char *field) {
  char needle[300];
  snprintf(needle, sizeof needle, "{ field: \"%s\",", field);
  const char *p = strstr(yaml, needle);
  if (!p) return NULL;
  while (p > yaml && p[-1] != '\n') p--;
  return p;
}

static void assert_column(const char *yaml, const char *field, const char *expect) {
  const char *l = column_line(yaml, field);
  ck_assert_msg(l != NULL, "no column for %s:\n%s", field, yaml);
  ck_assert_msg(strncmp(l, expect, strlen(expect)) == 0, "column for %s:\n  got  %.*s\n  want %s",
                field, (int)strcspn(l, "\n"), l, expect);
}

START_TEST(realistic_customers) {
  char *dir = as_test_tmpdir();
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/bench/bench_e2e.py gen --docs 400 --bson %s/c.bson "
           "--mapping %s/m.yaml", AS_SOURCE_DIR, dir, dir);
  ck_assert_int_eq(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "%s/c.bson", dir);
  bson_error_t be;
  bson_reader_t *rd = bson_reader_new_from_file(cmd, &be);
  ck_assert_ptr_nonnull(rd);
  docs ds = {0};
  const bson_t *b;
  bool eof = false;
  while ((b = bson_reader_read(rd, &eof))) docs_add(&ds, bson_copy(b));
  bson_reader_destroy(rd);
  ck_assert_uint_eq(ds.n, 400);
  char *y = infer_and_verify(&ds, "customers");
  assert_column(y, "_id", "  id: { field: \"_id\", type: objectid, required: true }");
  ck_assert_ptr_nonnull(strstr(y, "key: id\n"));
  assert_column(y, "email", "  email: { field: \"email\", type: text, required: true }");
  assert_column(y, "profile.name", "  profile_name: { field: \"profile.name\", type: text, "
                                   "required: true }");
  assert_column(y, "profile.age", "  profile_age: { field: \"profile.age\", type: bigint");
  assert_column(y, "profile.address.city",
                "  profile_address_city: { field: \"profile.address.city\", type: text");
  assert_column(y, "account.balance", "  account_balance: { field: \"account.balance\", type: "
                                      "numeric");
  assert_column(y, "account.opened", "  account_opened: { field: \"account.opened\", type: "
                                     "timestamptz");
  assert_column(y, "created", "  created: { field: \"created\", type: timestamptz");
  assert_column(y, "active", "  active: { field: \"active\", type: boolean");
  assert_column(y, "score", "  score: { field: \"score\", type: double precision");
  assert_column(y, "tags", "  tags: { field: \"tags\", type: jsonb");
  const char *orders = column_line(y, "orders");
  ck_assert_ptr_nonnull(orders);
  ck_assert_ptr_nonnull(strstr(orders, "child tables are not synced yet"));
  /* Int64(i * 3) is small: a bigint column would write it back as int32 */
  ck_assert_ptr_null(column_line(y, "visits"));
  ck_assert_ptr_nonnull(strstr(y, "#   visits: 400 int64 values lie in the int32 range"));
  ck_assert_ptr_nonnull(strstr(y, "#   notes: follows visits"));
  ck_assert_ptr_nonnull(strstr(y, "  extra: { field: \"*\", type: jsonb }"));
  free(y);
  docs_free(&ds);
  as_test_rmtree(dir);
  free(dir);
}
END_TEST

static bson_t *messy_keys_doc(int i) {
  bson_t *b = bson_new();
  BSON_APPEND_INT32(b, "_id", i);
  BSON_APPEND_UTF8(b, "name", "n");
  BSON_APPEND_UTF8(b, "a.b", "dotted");     /* not a path: catch-all */
  BSON_APPEND_INT32(b, "$weird", i);        /* leading $: catch-all */
  BSON_APPEND_UTF8(b, "with space", "x");
  BSON_APPEND_UTF8(b, "\xc3\xa9t\xc3\xa9", "unicode");
  return b;
}

START_TEST(messy_documents) {
  docs ds = {0};
  /* mixed types, missing fields, nulls, nested arrays, deep nesting, empty documents */
  static const char *const json[] = {
      "{\"_id\": \"k1\", \"name\": \"Ada\", \"n\": 1, \"maybe\": null, \"deep\": {\"a\": {\"b\": "
      "{\"c\": {\"d\": 1}}}}, \"grid\": [[1, 2], [3, [4, {\"x\": null}]]], \"o\": {}, "
      "\"camelCaseField\": true, \"price\": {\"$numberDecimal\": \"1.50\"}}",
      "{\"_id\": \"k2\", \"name\": null, \"n\": 2.5, \"maybe\": \"s\", \"deep\": {\"a\": {\"b\": "
      "{\"c\": {}}}}, \"grid\": [], \"o\": {\"p\": 1}, \"camelCaseField\": false, \"price\": "
      "{\"$numberDecimal\": \"-0.0001\"}, \"late\": 1}",
      "{\"_id\": \"k3\"}",
      "{\"_id\": \"k4\", \"name\": \"Bob\", \"n\": \"three\", \"maybe\": {\"$numberLong\": "
      "\"5000000000\"}, \"deep\": {\"a\": {\"b\": null}}, \"grid\": [{\"y\": 1}], \"o\": {\"q\": "
      "{\"r\": [true]}}, \"camelCaseField\": null, \"price\": {\"$numberDecimal\": \"7\"}}",
      "{\"_id\": \"k5\", \"name\": \"Cy\", \"n\": {\"$numberLong\": \"1\"}, \"maybe\": {\"$date\": "
      "{\"$numberLong\": \"0\"}}, \"deep\": {\"a\": {\"b\": {\"c\": {\"d\": [1]}}}}, \"grid\": "
      "null, \"o\": {}, \"camelCaseField\": true, \"price\": null, \"extra\": \"named like the "
      "catch-all\"}",
  };
  for (size_t i = 0; i < sizeof json / sizeof json[0]; i++) add_json(&ds, json[i]);
  char *y = infer_and_verify(&ds, "messy things");
  /* k3 has only _id: the common prefix is _id alone, everything else is catch-all */
  ck_assert_ptr_nonnull(strstr(y, "mapping: messy_things\ncollection: \"messy things\"\n"));
  assert_column(y, "_id", "  id: { field: \"_id\", type: text, required: true }");
  ck_assert_ptr_null(column_line(y, "name"));
  ck_assert_ptr_nonnull(strstr(y, "#   name: in 80% of the documents (a column would write null "
                                  "where it is absent)"));
  ck_assert_ptr_nonnull(strstr(y, "#   late: in 20% of the documents"));
  free(y);
  /* without k3: mixed types and nulls decide */
  bson_destroy(ds.d[2]);
  ds.d[2] = ds.d[--ds.n];
  y = infer_and_verify(&ds, "messy");
  assert_column(y, "name", "  name: { field: \"name\", type: text }   # in all 4 documents, null "
                           "in 25%");
  ck_assert_ptr_null(column_line(y, "n"));
  ck_assert_ptr_nonnull(strstr(y, "#   n: mixed types (string 25%, int32 25%, int64 25%, double "
                                  "25%)"));
  ck_assert_ptr_nonnull(strstr(y, "#   maybe: follows n, which the catch-all holds"));
  free(y);
  docs_free(&ds);

  /* keys with dots, dollars, spaces, unicode; names made SQL-safe and unique */
  docs ks = {0};
  for (int i = 0; i < 3; i++) docs_add(&ks, messy_keys_doc(i));
  y = infer_and_verify(&ks, "keys");
  assert_column(y, "_id", "  id: { field: \"_id\", type: bigint, required: true }");
  assert_column(y, "name", "  name: { field: \"name\", type: text, required: true }");
  ck_assert_ptr_nonnull(strstr(y, "#   a.b: the name has '.', a leading '$' or control "
                                  "characters"));
  ck_assert_ptr_nonnull(strstr(y, "#   $weird: follows a.b"));
  free(y);
  docs_free(&ks);

  /* deep nesting and field order: nested documents up to depth 3, jsonb below */
  docs dn = {0};
  add_json(&dn, "{\"_id\": 1, \"a\": {\"b\": {\"c\": {\"d\": 1}, \"e\": \"x\"}, \"f\": 2}, \"g\": 3}");
  add_json(&dn, "{\"_id\": 2, \"a\": {\"b\": {\"c\": {\"d\": 2}, \"e\": \"y\"}, \"f\": 3}, \"g\": 4}");
  y = infer_and_verify(&dn, "deep");
  assert_column(y, "a.b.c", "  a_b_c: { field: \"a.b.c\", type: jsonb, required: true }");
  assert_column(y, "a.b.e", "  a_b_e: { field: \"a.b.e\", type: text, required: true }");
  assert_column(y, "a.f", "  a_f: { field: \"a.f\", type: bigint, required: true }");
  assert_column(y, "g", "  g: { field: \"g\", type: bigint, required: true }");
  free(y);
  docs_free(&dn);
}
END_TEST

START_TEST(no_key) {
  as_infer *in = as_infer_new();
  as_buf y = AS_BUF_INIT;
  as_error err = {0};
  as_infer_opts o = {.collection = "c"};
  ck_assert_int_eq(as_infer_mapping(in, &o, &y, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "collection c: no documents to infer a mapping from");
  bson_error_t be;
  bson_t *a = bson_new_from_json((const uint8_t *)"{\"_id\": 1}", -1, &be);
  bson_t *b = bson_new_from_json((const uint8_t *)"{\"_id\": \"x\"}", -1, &be);
  ck_assert_int_eq(as_infer_add(in, a), AS_OK);
  ck_assert_int_eq(as_infer_add(in, b), AS_OK);
  ck_assert_int_eq(as_infer_mapping(in, &o, &y, &err), AS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.message, "collection c: _id cannot be a key column: _id: "
                                            "mixed types (string 50%, int32 50%)"));
  bson_destroy(a);
  bson_destroy(b);
  as_buf_free(&y);
  as_infer_free(in);
}
END_TEST

START_TEST(column_names) {
  static const char *const cases[][2] = {
      {"_id", "id"},          {"profile.homeAddress", "profile_home_address"},
      {"a b-c", "a_b_c"},     {"\xc3\xa9t\xc3\xa9s", "t_s"},
      {"9lives", "f_9lives"}, {"__x__", "x"},
      {"$$$", "field"},       {"HTTPServer", "httpserver"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *n = as_infer_column_name(cases[i][0]);
    ck_assert_str_eq(n, cases[i][1]);
    free(n);
  }
  char long_name[200];
  memset(long_name, 'a', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  char *n = as_infer_column_name(long_name);
  ck_assert_uint_eq(strlen(n), 55);
  free(n);
}
END_TEST

START_TEST(from_tables) {
  as_table_desc d = {.table = strdup("users")};
  ck_assert_int_eq(as_table_desc_add(&d, "id", "bigint", true, 1), AS_OK);
  ck_assert_int_eq(as_table_desc_add(&d, "email", "character varying(200)", true, 0), AS_OK);
  ck_assert_int_eq(as_table_desc_add(&d, "seen", "timestamp(3) with time zone", false, 0), AS_OK);
  ck_assert_int_eq(as_table_desc_add(&d, "doc", "jsonb", false, 0), AS_OK);
  ck_assert_int_eq(as_table_desc_add(&d, "geo", "point", false, 0), AS_OK);
  ck_assert_int_eq(as_table_desc_add(&d, "n", "MEDIUMINT", false, 0), AS_OK);
  as_buf y = AS_BUF_INIT;
  as_error err = {0};
  as_infer_opts o = {.source = "node pg, table users"};
  ck_assert_int_eq(as_infer_table(&d, &o, &y, &err), AS_OK);
  const char *t = as_buf_cstr(&y);
  ck_assert_ptr_nonnull(strstr(t, "key: id\n"));
  assert_column(t, "_id", "  id: { field: \"_id\", type: bigint }   # bigint not null, primary key");
  assert_column(t, "email", "  email: { field: \"email\", type: text, required: true }");
  assert_column(t, "seen", "  seen: { field: \"seen\", type: timestamptz }");
  assert_column(t, "doc", "  doc: { field: \"doc\", type: jsonb }");
  assert_column(t, "geo", "  geo: { field: \"geo\", type: text }   # point: no mapping type holds "
                          "it");
  ck_assert_ptr_nonnull(strstr(t, "  n: { field: \"n\", type: text }   # MEDIUMINT: no mapping "
                                  "type holds it"));
  /* SQLite declarations: affinity rules */
  d.affinity = true;
  as_buf_reset(&y);
  ck_assert_int_eq(as_infer_table(&d, &o, &y, &err), AS_OK);
  ck_assert_ptr_nonnull(strstr(as_buf_cstr(&y), "  n: { field: \"n\", type: bigint }   # "
                                                "MEDIUMINT: type by SQLite's affinity rules"));
  d.affinity = false;
  as_buf_reset(&y);
  ck_assert_int_eq(as_infer_table(&d, &o, &y, &err), AS_OK);
  t = as_buf_cstr(&y);
  as_schema *s = NULL;
  ck_assert_msg(as_schema_load_string("t.yaml", t, &s, &err) == AS_OK, "%s\n%s", err.message, t);
  ck_assert_uint_eq(s->ncols, 6);
  as_schema_free(s);
  /* a composite key keeps the column names as fields */
  d.cols[1].key_pos = 2;
  as_buf_reset(&y);
  ck_assert_int_eq(as_infer_table(&d, &o, &y, &err), AS_OK);
  ck_assert_ptr_nonnull(strstr(as_buf_cstr(&y), "key: [id, email]\n"));
  assert_column(as_buf_cstr(&y), "id", "  id: { field: \"id\", type: bigint }");
  for (size_t i = 0; i < d.ncols; i++) d.cols[i].key_pos = 0;
  ck_assert_int_eq(as_infer_table(&d, &o, &y, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "table users has no primary key: add one (the mapping's key "
                                "must be unique)");
  as_buf_free(&y);
  as_table_desc_free(&d);
}
END_TEST

int main(void) {
  Suite *s = suite_create("infer");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, realistic_customers);
  tcase_add_test(tc, messy_documents);
  tcase_add_test(tc, no_key);
  tcase_add_test(tc, column_names);
  tcase_add_test(tc, from_tables);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
