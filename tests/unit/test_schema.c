/* test_schema.c — mapping files: every bad input with its exact message, defaults, the full
 * format, the examples, and column lookup by field path. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_schema.h"
#include "as_test_util.h"

/* Bad mapping files under tests/unit/bad_configs/mapping/, and the message after "PATH:". */
static const struct {
  const char *file;
  const char *msg;
} bad[] = {
    {"bad_indent.yaml",
     "5:4: did not find expected key (while parsing a block mapping started at line 4 column "
     "3)"},
    {"tab.yaml",
     "4:1: found character that cannot start any token (while scanning for the next token); a "
     "tab cannot be used for indentation in YAML, use spaces"},
    {"unclosed_quote.yaml",
     "5:1: found unexpected end of stream (while scanning a quoted scalar started at line 4 "
     "column 16)"},
    {"unknown_top_key.yaml",
     "3:1: unknown key \"colums\" in mapping file (allowed: mapping, collection, table, "
     "direction, mode, key, reloadable, columns, children, conflict, on_error, on_truncate, initial_sync, conflicts)"},
    {"unknown_column_key.yaml",
     "5:38: unknown key \"nullable\" in column \"email\" (allowed: field, type, required)"},
    {"unknown_type.yaml",
     "5:32: unknown type \"strng\" for column \"email\" (valid types include text, int64, "
     "double, numeric, bool, uuid, objectid, timestamptz, date, jsonb, bytes)"},
    {"type_with_precision.yaml",
     "6:12: type \"numeric(12,2)\" of column \"balance\": a mapping's type takes no length or "
     "precision (write numeric; an existing SQL column keeps its own numeric(12,2))"},
    {"type_with_precision_flow.yaml",
     "6:31: unknown key \"2)\" in column \"balance\" (allowed: field, type, required); inside { } "
     "a comma ends an entry: a type is written without length or precision (numeric, not "
     "numeric(12,2))"},
    {"duplicate_column.yaml", "6:3: duplicate key \"email\" (first at line 5 column 3)"},
    {"missing_key.yaml",
     "1:1: missing \"key\" (the column, or list of columns, that identifies a row)"},
    {"key_not_column.yaml", "2:11: key column \"uid\" is not a column (columns: id, email)"},
    {"two_columns_one_field.yaml",
     "6:20: column \"email2\" maps field \"email\", already mapped by column \"email\" (line 5 "
     "column 20)"},
    {"field_prefix.yaml",
     "6:21: field \"account.balance\" of column \"balance\" is inside field \"account\" of "
     "column \"account\" (line 5 column 21); a field and its sub-fields cannot be mapped by two "
     "columns"},
    {"bad_duration.yaml",
     "2:19: mode interval must be a duration such as 250ms, 30s, 5m, 1h or 2d, not \"30 "
     "seconds\""},
    {"unset_env.yaml",
     "2:8: environment variable AS_TEST_SURELY_UNSET_VAR is not set (write "
     "${AS_TEST_SURELY_UNSET_VAR:-default} to give a default)"},
    {"bad_direction.yaml", "2:12: bad direction \"sideways\" (expected both, to-sql or to-mongo)"},
    {"two_catch_alls.yaml",
     "6:20: column \"extra2\" is a second catch-all (field \"*\"); column \"extra\" already "
     "collects the unmapped fields"},
    {"catch_all_not_json.yaml",
     "5:30: catch-all column \"extra\" (field \"*\") must have type json or jsonb, not \"text\""},
    {"clock_not_column.yaml", "8:10: conflict clock \"updated_at\" is not a column"},
    {"clock_wrong_type.yaml",
     "6:35: conflict clock column \"email\" must have type timestamptz or int64, not text"},
    {"script_strategy_without_script.yaml",
     "6:13: conflict strategy script needs conflict.script (a Lua file with function "
     "resolve(mine, theirs, ctx))"},
    {"empty_path_part.yaml",
     "5:21: empty part in field path \"account..balance\" of column \"balance\""},
    {"dollar_field.yaml",
     "5:17: field path \"$set\" of column \"op\" has a part starting with '$' (MongoDB operators "
     "cannot be mapped)"},
    {"key_is_catch_all.yaml", "2:6: key column \"extra\" cannot be the catch-all column"},
    {"key_is_json.yaml",
     "2:11: key column \"tags\" cannot have type jsonb (a key must be a scalar type)"},
    {"missing_columns.yaml",
     "1:1: missing \"columns\" (a map of column name -> { field, type })"},
    {"bad_on_error.yaml", "5:11: bad on_error \"ignore\" (expected dead-letter or stop)"},
    {"bad_on_truncate.yaml",
     "5:14: bad on_truncate \"cascade\" (expected stop, propagate or ignore)"},
    {"bad_strategy.yaml",
     "5:23: bad conflict strategy \"newest\" (expected lww, vector or script)"},
    {"bad_mode.yaml", "2:7: bad mode \"batch\" (expected realtime or { interval: DURATION })"},
    {"bad_required.yaml",
     "5:48: required of column \"email\" must be true or false, not \"maybe\""},
    {"child_column_is_parent_key.yaml",
     "9:7: column \"users_id\" of child table \"user_addresses\" has the name of the column "
     "that holds the parent key (name that one with parent_key)"},
    {"child_unknown_key.yaml",
     "8:5: unknown key \"bogus\" in a child table (allowed: table, field, columns, key, "
     "parent_key, children)"},
    {"child_field_mapped.yaml",
     "8:12: field \"addresses\" of child table \"user_addresses\" overlaps field \"addresses\" "
     "of column \"addresses\" (line 5 column 23)"},
    {"child_nested_three_levels.yaml",
     "14:11: child table \"order_lines\" is nested two levels deep already; its arrays stay "
     "json columns of its elements (children nest two levels at most)"},
    {"child_nested_table_twice.yaml",
     "1:1: mapping \"users\" names table \"notes\" twice (its own table and its child tables "
     "each need a name of their own)"},
    {"child_nested_field_overlap.yaml",
     "11:16: field \"lines\" of child table \"order_lines\" overlaps field \"lines\" of "
     "column \"lines\" (line 8 column 49)"},
    {"two_documents.yaml",
     "4:1: only one YAML document is allowed in a file (found a second)"},
    {"not_a_map.yaml",
     "1:1: a mapping file must be a map (mapping:, table:, key:, columns:, ...), not a list"},
    {"unknown_anchor.yaml", "4:7: unknown anchor *idcol (define &idcol before using it)"},
};

START_TEST(bad_mapping_files) {
  unsetenv("AS_TEST_SURELY_UNSET_VAR");
  char rel[256];
  snprintf(rel, sizeof rel, "tests/unit/bad_configs/mapping/%s", bad[_i].file);
  char *path = as_test_src_path(rel);
  char expected[2048];
  snprintf(expected, sizeof expected, "%s:%s", path, bad[_i].msg);
  as_error err = {0};
  as_schema *s = NULL;
  ck_assert_int_eq(as_schema_load(path, &s, &err), AS_EINVAL);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(err.domain, AS_DOM_CONFIG);
  ck_assert_str_eq(err.message, expected);
  free(path);
}
END_TEST

START_TEST(script_missing_names_resolved_path) {
  char *path = as_test_src_path("tests/unit/bad_configs/mapping/script_missing.yaml");
  char *dir = as_test_src_path("tests/unit/bad_configs/mapping");
  char expected[2048];
  snprintf(expected, sizeof expected,
           "%s:7:11: conflict script \"resolvers/nope.lua\" not found (looked for "
           "\"%s/resolvers/nope.lua\")",
           path, dir);
  as_error err = {0};
  as_schema *s = NULL;
  ck_assert_int_eq(as_schema_load(path, &s, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, expected);
  free(path);
  free(dir);
}
END_TEST

static as_schema *load_str(const char *yaml) {
  as_error err = {0};
  as_schema *s = NULL;
  int rc = as_schema_load_string("m.yaml", yaml, &s, &err);
  ck_assert_msg(rc == AS_OK, "load failed: %s", err.message);
  return s;
}

static void bad_str(const char *yaml, const char *expected) {
  as_error err = {0};
  as_schema *s = NULL;
  ck_assert_int_eq(as_schema_load_string("m.yaml", yaml, &s, &err), AS_EINVAL);
  ck_assert_ptr_null(s);
  ck_assert_str_eq(err.message, expected);
}

START_TEST(more_inline_errors) {
  bad_str("mapping: users\nkey: id\ncolumns:\n  id: { field: _id, type: text }\nconflict: "
          "{ strategy: lww, fallback: script }\n",
          "m.yaml:5:38: conflict fallback is only used with strategy vector or script");
  bad_str("mapping: users\nkey: id\ncolumns:\n  id: { field: _id, type: text }\nconflict: "
          "{ strategy: vector, fallback: script }\n",
          "m.yaml:5:41: conflict fallback script needs conflict.script (a Lua file with "
          "function resolve(mine, theirs, ctx))");
  bad_str("mapping: users\nkey: id\ncolumns:\n  id: { field: _id }\n",
          "m.yaml:4:3: column \"id\" has no type (add type: text, int64, numeric, timestamptz, "
          "jsonb, ...)");
  bad_str("mapping: users\nkey: [id, id]\ncolumns:\n  id: text\n",
          "m.yaml:2:11: column \"id\" appears twice in key");
  bad_str("mapping: users\nkey: []\ncolumns:\n  id: text\n",
          "m.yaml:2:6: key must name at least one column");
  bad_str("mapping: users\nkey: id\ncolumns: {}\n", "m.yaml:3:10: columns of mapping \"users\" "
          "must not be empty");
  bad_str("mapping: bad name\nkey: id\ncolumns:\n  id: text\n",
          "m.yaml:1:10: mapping name \"bad name\" may contain only letters, digits, '_', '-' and "
          "'.'");
  bad_str("key: id\ncolumns:\n  id: text\n", "m.yaml:1:1: missing \"mapping\" (the mapping's "
          "name)");
  bad_str("mapping: users\nmode: { interval: 0s }\nkey: id\ncolumns:\n  id: text\n",
          "m.yaml:2:19: mode interval must be greater than zero");
  bad_str("mapping: users\nmode: { every: 5s }\nkey: id\ncolumns:\n  id: text\n",
          "m.yaml:2:9: unknown key \"every\" in mode (allowed: interval)");
  bad_str("mapping: users\nkey: id\ncolumns:\n  id: text\n  tag: { field: a.*, type: text }\n",
          "m.yaml:5:17: \"*\" in field path \"a.*\" of column \"tag\": \"*\" is only allowed "
          "alone, as the catch-all field");
  bad_str("mapping: users\nkey: id\ncolumns:\n  id: text\nchildren:\n  - table: users\n    "
          "field: a\n    columns: { x: text }\n",
          "m.yaml:6:12: child table \"users\" is the mapping's own table");
  bad_str("mapping: users\nkey: id\ncolumns:\n  id: text\nchildren:\n  - table: c\n    "
          "field: a\n    key: x\n    columns: { x: { field: \"*\", type: jsonb } }\n",
          "m.yaml:8:10: key column \"x\" of child table \"c\" must have a scalar type, not jsonb");
  bad_str("mapping: users\nkey: id\ncolumns:\n  id: text\n  a: text\nchildren:\n  - table: c\n"
          "    field: a.b\n    columns: { x: text }\n",
          "m.yaml:8:12: field \"a.b\" of child table \"c\" overlaps field \"a\" of column \"a\" "
          "(line 5 column 3)");
  bad_str("mapping: users\nkey: id\ncolumns:\n  id: text\n  tags: { field: t, type: text }\n"
          "children:\n  - table: c\n    field: tags\n    columns: { x: text }\n",
          "m.yaml:7:5: child table \"c\": its array is the mapping's column \"tags\", and there "
          "is already a column of that name");
  bad_str("mapping: users\nkey: id\ncolumns:\n  id: text\nchildren:\n  - table: c\n    "
          "field: a\n    parent_key: [p, q]\n    columns: { x: text }\n",
          "m.yaml:8:17: parent_key of child table \"c\" must name 1 column (one per key column "
          "of the parent)");
  bad_str("", "m.yaml:1:1: empty mapping file");
  bad_str("mapping: users\ncollection: system.users\nkey: id\ncolumns:\n  id: text\n",
          "m.yaml:2:13: collection name \"system.users\" must not contain '$' or start with "
          "\"system.\"");
  bad_str("mapping: users\ntable: "
          "a_very_long_table_name_that_goes_on_and_on_and_on_beyond_the_limit_of_pg\n"
          "key: id\ncolumns:\n  id: text\n",
          "m.yaml:2:8: table name "
          "\"a_very_long_table_name_that_goes_on_and_on_and_on_beyond_the_limit_of_pg\" is "
          "longer than 63 bytes (PostgreSQL's limit)");
}
END_TEST

START_TEST(defaults) {
  as_schema *s = load_str("mapping: things\nkey: id\ncolumns:\n  id: int64\n  name: text\n");
  ck_assert_str_eq(s->name, "things");
  ck_assert_str_eq(s->collection, "things");
  ck_assert_str_eq(s->table, "things");
  ck_assert_str_eq(s->file, "m.yaml");
  ck_assert_int_eq(s->direction, AS_DIR_BOTH);
  ck_assert_int_eq(s->mode, AS_MODE_REALTIME);
  ck_assert_int_eq(s->conflict.strategy, AS_STRATEGY_LWW);
  ck_assert_int_eq(s->conflict.fallback, AS_STRATEGY_LWW);
  ck_assert_int_eq(s->conflict.clock_idx, -1);
  ck_assert_ptr_null(s->conflict.script);
  ck_assert_int_eq(s->on_error, AS_ON_ERROR_DEAD_LETTER);
  ck_assert_int_eq(s->on_truncate, AS_ON_TRUNCATE_STOP);
  ck_assert(!s->reloadable);
  ck_assert_int_eq(s->catch_all_idx, -1);
  ck_assert_uint_eq(s->nchildren, 0);
  ck_assert_uint_eq(s->ncols, 2);
  ck_assert_str_eq(s->cols[1].field, "name");
  ck_assert_uint_eq(s->cols[1].npath, 1);
  ck_assert_str_eq(s->cols[1].path[0], "name");
  ck_assert_int_eq(s->cols[1].type, AS_T_TEXT);
  ck_assert(!s->cols[1].required);
  ck_assert(s->cols[0].is_key);
  ck_assert(s->cols[0].required); /* keys are implicitly required */
  ck_assert_uint_eq(s->nkey, 1);
  ck_assert_uint_eq(s->key_idx[0], 0);
  ck_assert_str_eq(s->cols[1].mark.file, s->file);
  ck_assert_int_eq(s->cols[1].mark.line, 5);
  ck_assert_int_eq(s->cols[1].mark.col, 3);
  as_schema_free(s);
  as_schema_free(NULL);
}
END_TEST

START_TEST(full_format) {
  char *dir = as_test_tmpdir();
  char sub[4096];
  snprintf(sub, sizeof sub, "%s/resolvers", dir);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", sub);
  ck_assert_int_eq(system(cmd), 0);
  char *lua = as_test_write_file(sub, "users.lua", "function resolve(l, r, c) return r end\n");
  char *path = as_test_write_file(
      dir, "users.yaml",
      "mapping: users\n"
      "collection: people\n"
      "table: app_users\n"
      "direction: to-sql\n"
      "mode: { interval: 30s }\n"
      "key: [tenant, id]\n"
      "reloadable: yes\n"
      "columns:\n"
      "  tenant:       { field: tenant,          type: text }\n"
      "  id:           { field: _id,             type: uuid }\n"
      "  email:        { field: email,           type: text, required: true }\n"
      "  last_updated: { field: lastUpdated,     type: timestamptz }\n"
      "  balance:      { field: account.balance, type: numeric }\n"
      "  extra:        { field: \"*\",             type: jsonb }\n"
      "children:\n"
      "  - table: user_addresses\n"
      "    field: addresses\n"
      "    columns: { city: { field: city, type: text, required: true }, zip: text }\n"
      "conflict: { strategy: vector, clock: last_updated, script: resolvers/users.lua, "
      "fallback: script }\n"
      "on_error: stop\n"
      "on_truncate: propagate\n");
  as_error err = {0};
  as_schema *s = NULL;
  ck_assert_msg(as_schema_load(path, &s, &err) == AS_OK, "%s", err.message);
  ck_assert_str_eq(s->collection, "people");
  ck_assert_str_eq(s->table, "app_users");
  ck_assert_int_eq(s->direction, AS_DIR_TO_SQL);
  ck_assert_int_eq(s->mode, AS_MODE_INTERVAL);
  ck_assert_int_eq(s->interval_ms, 30000);
  ck_assert(s->reloadable);
  ck_assert_uint_eq(s->nkey, 2);
  ck_assert_uint_eq(s->key_idx[0], 0);
  ck_assert_uint_eq(s->key_idx[1], 1);
  ck_assert_int_eq(s->cols[1].type, AS_T_UUID);
  ck_assert_str_eq(s->cols[1].type_name, "uuid");
  ck_assert(s->cols[2].required);
  ck_assert_uint_eq(s->cols[4].npath, 2);
  ck_assert_str_eq(s->cols[4].path[0], "account");
  ck_assert_str_eq(s->cols[4].path[1], "balance");
  ck_assert_int_eq(s->cols[4].type, AS_T_DECIMAL);
  ck_assert_int_eq(s->catch_all_idx, 5);
  ck_assert(s->cols[5].catch_all);
  ck_assert_ptr_null(s->cols[5].path);
  ck_assert_uint_eq(s->nchildren, 1);
  ck_assert_str_eq(s->children[0].table, "user_addresses");
  ck_assert_str_eq(s->children[0].field, "addresses");
  ck_assert_uint_eq(s->children[0].ncols, 2);
  ck_assert(s->children[0].cols[0].required);
  ck_assert_str_eq(s->children[0].cols[1].field, "zip");
  ck_assert_int_eq(s->conflict.strategy, AS_STRATEGY_VECTOR);
  ck_assert_int_eq(s->conflict.fallback, AS_STRATEGY_SCRIPT);
  ck_assert_int_eq(s->conflict.clock_idx, 3);
  ck_assert_str_eq(s->conflict.script, lua);
  ck_assert_int_eq(s->on_error, AS_ON_ERROR_STOP);
  ck_assert_int_eq(s->on_truncate, AS_ON_TRUNCATE_PROPAGATE);
  ck_assert_int_eq(as_schema_column_index(s, "balance"), 4);
  ck_assert_int_eq(as_schema_column_index(s, "nope"), -1);
  as_schema_free(s);
  free(lua);
  free(path);
  as_test_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(mode_scalar_and_required_on_key) {
  as_schema *s = load_str("mapping: a\nmode: realtime\nkey: id\ncolumns:\n"
                          "  id: { field: _id, type: objectid, required: true }\n"
                          "direction: to-mongo\n");
  ck_assert_int_eq(s->mode, AS_MODE_REALTIME);
  ck_assert_int_eq(s->direction, AS_DIR_TO_MONGO);
  ck_assert(s->cols[0].required && s->cols[0].is_key);
  as_schema_free(s);
}
END_TEST

START_TEST(examples_load) {
  const char *files[] = {"mappings/examples/mappings/users.yaml",
                         "mappings/examples/mappings/orders.yaml",
                         "mappings/examples/children/customers.yaml"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char *p = as_test_src_path(files[i]);
    as_error err = {0};
    as_schema *s = NULL;
    ck_assert_msg(as_schema_load(p, &s, &err) == AS_OK, "%s", err.message);
    ck_assert_uint_eq(s->nkey, 1);
    ck_assert_str_eq(s->cols[s->key_idx[0]].name, "id");
    ck_assert_int_ge(s->catch_all_idx, 0);
    as_schema_free(s);
    free(p);
  }
}
END_TEST

START_TEST(column_for_path) {
  as_schema *s = load_str("mapping: u\nkey: id\ncolumns:\n"
                          "  id:      { field: _id, type: text }\n"
                          "  balance: { field: account.balance, type: numeric }\n"
                          "  items:   { field: items, type: jsonb }\n"
                          "  second:  { field: pair.1.v, type: text }\n"
                          "  extra:   { field: \"*\", type: jsonb }\n"
                          "children:\n"
                          "  - { table: u_addr, field: addresses, columns: { city: text } }\n");
  ck_assert_int_eq(as_schema_column_for_path(s, "_id"), 0);
  ck_assert_int_eq(as_schema_column_for_path(s, "account.balance"), 1);
  ck_assert_int_eq(as_schema_column_for_path(s, "account.balance.x"), 1);
  ck_assert_int_eq(as_schema_column_for_path(s, "items"), 2);
  ck_assert_int_eq(as_schema_column_for_path(s, "items.2.qty"), 2);
  ck_assert_int_eq(as_schema_column_for_path(s, "pair.1.v"), 3);
  ck_assert_int_eq(as_schema_column_for_path(s, "pair.0"), 4); /* not mapped: catch-all */
  ck_assert_int_eq(as_schema_column_for_path(s, "pair"), AS_SCHEMA_PATH_PARENT);
  ck_assert_int_eq(as_schema_column_for_path(s, "account"), AS_SCHEMA_PATH_PARENT);
  ck_assert_int_eq(as_schema_column_for_path(s, "account.currency"), 4);
  ck_assert_int_eq(as_schema_column_for_path(s, "nickname"), 4);
  ck_assert_int_eq(as_schema_column_for_path(s, "itemsx"), 4);
  ck_assert_int_eq(as_schema_column_for_path(s, "addresses.0.city"), 5); /* its array column */
  ck_assert_uint_eq(s->ntable, 5);
  ck_assert_str_eq(s->cols[5].name, "addresses");
  ck_assert_int_eq(s->cols[5].child, 1);
  ck_assert_str_eq(s->children[0].tab->cols[0].name, "u_id");
  ck_assert_str_eq(s->children[0].tab->cols[1].name, "position");
  ck_assert_uint_eq(s->children[0].tab->nkey, 2);
  ck_assert_int_eq(as_schema_child_for_path(s, "addresses.0.city"), 0);
  ck_assert_int_eq(as_schema_child_for_path(s, "addresses"), 0);
  ck_assert_int_eq(as_schema_child_for_path(s, "items"), -1);
  ck_assert_int_eq(as_schema_column_for_path(s, ""), -1);
  /* long and deep paths are looked at whole */
  char deep[4000] = "items";
  for (int i = 0; i < 300; i++) strcat(deep, ".7");
  ck_assert_int_eq(as_schema_column_for_path(s, deep), 2);
  deep[0] = 'j';
  ck_assert_int_eq(as_schema_column_for_path(s, deep), 4);
  as_schema_free(s);
  s = load_str("mapping: v\nkey: id\ncolumns:\n  id: { field: _id, type: text }\n");
  ck_assert_int_eq(as_schema_column_for_path(s, "other"), -1); /* no catch-all */
  as_schema_free(s);
}
END_TEST

int main(void) {
  Suite *su = suite_create("schema");
  TCase *tc = tcase_create("schema");
  tcase_add_loop_test(tc, bad_mapping_files, 0, (int)(sizeof bad / sizeof bad[0]));
  tcase_add_test(tc, script_missing_names_resolved_path);
  tcase_add_test(tc, more_inline_errors);
  tcase_add_test(tc, defaults);
  tcase_add_test(tc, full_format);
  tcase_add_test(tc, mode_scalar_and_required_on_key);
  tcase_add_test(tc, examples_load);
  tcase_add_test(tc, column_for_path);
  suite_add_tcase(su, tc);
  return as_test_run(su);
}
