/* test_ddl.c — DDL implied by mappings, exact text; identifier quoting. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_ddl.h"
#include "as_test_util.h"

static as_schema *load_example(const char *name) {
  char rel[256];
  snprintf(rel, sizeof rel, "mappings/examples/mappings/%s", name);
  char *p = as_test_src_path(rel);
  as_error err = {0};
  as_schema *s = NULL;
  ck_assert_msg(as_schema_load(p, &s, &err) == AS_OK, "%s", err.message);
  free(p);
  return s;
}

START_TEST(users_example) {
  as_schema *s = load_example("users.yaml");
  as_buf b = AS_BUF_INIT;
  as_error err = {0};
  ck_assert_int_eq(as_ddl_postgres(s, NULL, &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b),
                   "CREATE TABLE IF NOT EXISTS \"users\" (\n"
                   "  \"id\" text NOT NULL,\n"
                   "  \"email\" text NOT NULL,\n"
                   "  \"name\" text,\n"
                   "  \"balance\" numeric,\n"
                   "  \"tags\" jsonb,\n"
                   "  \"last_updated\" timestamptz(3),\n"
                   "  \"extra\" jsonb,\n"
                   "  PRIMARY KEY (\"id\")\n"
                   ");\n");
  as_buf_reset(&b);
  ck_assert_int_eq(as_ddl_sqlite(s, &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b),
                   "CREATE TABLE IF NOT EXISTS \"users\" (\n"
                   "  \"id\" TEXT NOT NULL,\n"
                   "  \"email\" TEXT NOT NULL,\n"
                   "  \"name\" TEXT,\n"
                   "  \"balance\" TEXT,\n"
                   "  \"tags\" TEXT,\n"
                   "  \"last_updated\" TEXT,\n"
                   "  \"extra\" TEXT,\n"
                   "  PRIMARY KEY (\"id\")\n"
                   ");\n");
  as_buf_free(&b);
  as_schema_free(s);
}
END_TEST

START_TEST(orders_example_qualified) {
  as_schema *s = load_example("orders.yaml");
  as_buf b = AS_BUF_INIT;
  as_error err = {0};
  ck_assert_int_eq(as_ddl_postgres(s, "public", &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b),
                   "CREATE TABLE IF NOT EXISTS \"public\".\"orders\" (\n"
                   "  \"id\" bigint NOT NULL,\n"
                   "  \"customer_id\" text NOT NULL,\n"
                   "  \"customer_name\" text,\n"
                   "  \"status\" text,\n"
                   "  \"total\" numeric,\n"
                   "  \"order_date\" date,\n"
                   "  \"created_at\" timestamptz(3),\n"
                   "  \"items\" jsonb,\n"
                   "  \"extra\" jsonb,\n"
                   "  PRIMARY KEY (\"id\")\n"
                   ");\n");
  as_buf_reset(&b);
  ck_assert_int_eq(as_ddl_sqlite(s, &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b),
                   "CREATE TABLE IF NOT EXISTS \"orders\" (\n"
                   "  \"id\" INTEGER NOT NULL,\n"
                   "  \"customer_id\" TEXT NOT NULL,\n"
                   "  \"customer_name\" TEXT,\n"
                   "  \"status\" TEXT,\n"
                   "  \"total\" TEXT,\n"
                   "  \"order_date\" TEXT,\n"
                   "  \"created_at\" TEXT,\n"
                   "  \"items\" TEXT,\n"
                   "  \"extra\" TEXT,\n"
                   "  PRIMARY KEY (\"id\")\n"
                   ");\n");
  as_buf_free(&b);
  as_schema_free(s);
}
END_TEST

START_TEST(children_and_quoting) {
  as_error err = {0};
  as_schema *s = NULL;
  ck_assert_msg(as_schema_load_string(
                    "m.yaml",
                    "mapping: t\n"
                    "table: 'we\"ird'\n"
                    "key: [org, id]\n"
                    "columns:\n"
                    "  org: { field: org, type: int64 }\n"
                    "  id: { field: _id, type: uuid }\n"
                    "  \"a b\": { field: ab, type: double, required: true }\n"
                    "children:\n"
                    "  - table: t_lines\n"
                    "    field: lines\n"
                    "    columns: { sku: { field: sku, type: text, required: true }, "
                    "qty: int64, ok: bool }\n",
                    &s, &err) == AS_OK,
                "%s", err.message);
  as_buf b = AS_BUF_INIT;
  ck_assert_int_eq(as_ddl_postgres(s, "my\"schema", &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b),
                   "CREATE TABLE IF NOT EXISTS \"my\"\"schema\".\"we\"\"ird\" (\n"
                   "  \"org\" bigint NOT NULL,\n"
                   "  \"id\" uuid NOT NULL,\n"
                   "  \"a b\" double precision NOT NULL,\n"
                   "  PRIMARY KEY (\"org\", \"id\")\n"
                   ");\n"
                   "CREATE TABLE IF NOT EXISTS \"my\"\"schema\".\"t_lines\" (\n"
                   "  \"we\"\"ird_org\" bigint NOT NULL,\n"
                   "  \"we\"\"ird_id\" uuid NOT NULL,\n"
                   "  \"position\" bigint NOT NULL,\n"
                   "  \"sku\" text NOT NULL,\n"
                   "  \"qty\" bigint,\n"
                   "  \"ok\" boolean,\n"
                   "  PRIMARY KEY (\"we\"\"ird_org\", \"we\"\"ird_id\", \"position\"),\n"
                   "  FOREIGN KEY (\"we\"\"ird_org\", \"we\"\"ird_id\") REFERENCES "
                   "\"my\"\"schema\".\"we\"\"ird\" (\"org\", \"id\") ON DELETE CASCADE\n"
                   ");\n");
  as_buf_reset(&b);
  ck_assert_int_eq(as_ddl_sqlite(s, &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b),
                   "CREATE TABLE IF NOT EXISTS \"we\"\"ird\" (\n"
                   "  \"org\" INTEGER NOT NULL,\n"
                   "  \"id\" TEXT NOT NULL,\n"
                   "  \"a b\" REAL NOT NULL,\n"
                   "  PRIMARY KEY (\"org\", \"id\")\n"
                   ");\n"
                   "CREATE TABLE IF NOT EXISTS \"t_lines\" (\n"
                   "  \"we\"\"ird_org\" INTEGER NOT NULL,\n"
                   "  \"we\"\"ird_id\" TEXT NOT NULL,\n"
                   "  \"position\" INTEGER NOT NULL,\n"
                   "  \"sku\" TEXT NOT NULL,\n"
                   "  \"qty\" INTEGER,\n"
                   "  \"ok\" INTEGER,\n"
                   "  PRIMARY KEY (\"we\"\"ird_org\", \"we\"\"ird_id\", \"position\"),\n"
                   "  FOREIGN KEY (\"we\"\"ird_org\", \"we\"\"ird_id\") REFERENCES "
                   "\"we\"\"ird\" (\"org\", \"id\") ON DELETE CASCADE\n"
                   ");\n");
  as_buf_free(&b);
  as_schema_free(s);
}
END_TEST

START_TEST(nested_children) {
  as_error err = {0};
  as_schema *s = NULL;
  ck_assert_msg(as_schema_load_string("m.yaml",
                                      "mapping: c\n"
                                      "key: id\n"
                                      "columns: { id: { field: _id, type: text } }\n"
                                      "children:\n"
                                      "  - table: o\n"
                                      "    field: orders\n"
                                      "    key: sku\n"
                                      "    columns: { sku: text }\n"
                                      "    children:\n"
                                      "      - table: l\n"
                                      "        field: lines\n"
                                      "        columns: { item: text }\n",
                                      &s, &err) == AS_OK,
                "%s", err.message);
  as_buf b = AS_BUF_INIT;
  ck_assert_int_eq(as_ddl_postgres(s, NULL, &b, &err), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b),
                   "CREATE TABLE IF NOT EXISTS \"c\" (\n"
                   "  \"id\" text NOT NULL,\n"
                   "  PRIMARY KEY (\"id\")\n"
                   ");\n"
                   "CREATE TABLE IF NOT EXISTS \"o\" (\n"
                   "  \"c_id\" text NOT NULL,\n"
                   "  \"position\" bigint NOT NULL,\n"
                   "  \"sku\" text NOT NULL,\n"
                   "  PRIMARY KEY (\"c_id\", \"sku\"),\n"
                   "  FOREIGN KEY (\"c_id\") REFERENCES \"c\" (\"id\") ON DELETE CASCADE\n"
                   ");\n"
                   "CREATE TABLE IF NOT EXISTS \"l\" (\n"
                   "  \"o_c_id\" text NOT NULL,\n"
                   "  \"o_sku\" text NOT NULL,\n"
                   "  \"position\" bigint NOT NULL,\n"
                   "  \"item\" text,\n"
                   "  PRIMARY KEY (\"o_c_id\", \"o_sku\", \"position\"),\n"
                   "  FOREIGN KEY (\"o_c_id\", \"o_sku\") REFERENCES \"o\" (\"c_id\", \"sku\") ON "
                   "DELETE CASCADE\n"
                   ");\n");
  as_buf_free(&b);
  as_schema_free(s);
}
END_TEST

START_TEST(quote_ident) {
  as_buf b = AS_BUF_INIT;
  ck_assert_int_eq(as_sql_quote_ident("plain", &b), AS_OK);
  ck_assert_int_eq(as_sql_quote_ident("", &b), AS_OK);
  ck_assert_int_eq(as_sql_quote_ident("\"", &b), AS_OK);
  ck_assert_int_eq(as_sql_quote_ident("a\"\"b; DROP TABLE x", &b), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), "\"plain\"\"\"\"\"\"\"\"a\"\"\"\"b; DROP TABLE x\"");
  as_buf_free(&b);
}
END_TEST

int main(void) {
  Suite *su = suite_create("ddl");
  TCase *tc = tcase_create("ddl");
  tcase_add_test(tc, users_example);
  tcase_add_test(tc, orders_example_qualified);
  tcase_add_test(tc, children_and_quoting);
  tcase_add_test(tc, nested_children);
  tcase_add_test(tc, quote_ident);
  suite_add_tcase(su, tc);
  return as_test_run(su);
}
