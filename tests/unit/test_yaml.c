/* test_yaml.c — the YAML tree (marks, ${ENV}, duplicates, aliases, syntax errors, readers). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "as_test_util.h"
#include "as_yaml.h"

static as_ydoc *load_ok(const char *text) {
  as_error err = {0};
  as_ydoc *d = NULL;
  int rc = as_yaml_load_string("t.yaml", text, strlen(text), &d, &err);
  ck_assert_msg(rc == AS_OK, "load failed: %s", err.message);
  return d;
}

static void load_bad(const char *text, const char *expected) {
  as_error err = {0};
  as_ydoc *d = NULL;
  int rc = as_yaml_load_string("t.yaml", text, strlen(text), &d, &err);
  ck_assert_int_eq(rc, AS_EINVAL);
  ck_assert_ptr_null(d);
  ck_assert_str_eq(err.message, expected);
}

START_TEST(tree_and_marks) {
  as_ydoc *d = load_ok("# comment\n"
                       "name: users\n"
                       "list:\n"
                       "  - a\n"
                       "  - 'b c'\n"
                       "map: { x: 1, y: \"two\" }\n");
  const as_ynode *r = d->root;
  ck_assert_int_eq(r->kind, AS_Y_MAP);
  ck_assert_uint_eq(r->n, 3);
  ck_assert_str_eq(r->keys[0], "name");
  ck_assert_int_eq(r->key_marks[0].line, 2);
  ck_assert_int_eq(r->key_marks[0].col, 1);
  const as_ynode *name = as_ynode_get(r, "name");
  ck_assert_str_eq(name->scalar, "users");
  ck_assert_int_eq(name->mark.line, 2);
  ck_assert_int_eq(name->mark.col, 7);
  ck_assert(!name->quoted);
  const as_ynode *list = as_ynode_get(r, "list");
  ck_assert_int_eq(list->kind, AS_Y_SEQ);
  ck_assert_uint_eq(list->n, 2);
  ck_assert_str_eq(list->items[1]->scalar, "b c");
  ck_assert(list->items[1]->quoted);
  ck_assert_int_eq(list->items[1]->mark.line, 5);
  ck_assert_int_eq(list->items[1]->mark.col, 5);
  const as_ynode *map = as_ynode_get(r, "map");
  ck_assert_int_eq(map->mark.line, 6);
  ck_assert_int_eq(map->mark.col, 6);
  ck_assert_str_eq(as_ynode_get(map, "y")->scalar, "two");
  ck_assert_int_eq(as_ynode_key_mark(map, "y")->col, 14);
  ck_assert_str_eq(map->mark.file, "t.yaml");
  ck_assert_ptr_null(as_ynode_get(r, "nope"));
  ck_assert_ptr_null(as_ynode_get(name, "x"));
  as_ydoc_free(d);
}
END_TEST

START_TEST(empty_documents) {
  const char *texts[] = {"", "# only a comment\n", "~\n", "---\n"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    as_ydoc *d = load_ok(texts[i]);
    ck_assert_ptr_null(d->root);
    as_ydoc_free(d);
  }
  as_ydoc_free(NULL);
}
END_TEST

START_TEST(env_substitution) {
  setenv("AS_T_HOST", "db.example", 1);
  setenv("AS_T_EMPTY", "", 1);
  unsetenv("AS_T_UNSET");
  as_ydoc *d = load_ok("a: \"${AS_T_HOST}\"\n"
                       "b: ${AS_T_UNSET:-fallback value}\n"
                       "c: ${AS_T_HOST:-ignored}:5432\n"
                       "d: price $$5 and $HOME stays\n"
                       "e: '${AS_T_EMPTY:-dflt}'\n"
                       "f: x${AS_T_EMPTY}y\n"
                       "${AS_T_HOST}: keys are not substituted\n");
  ck_assert_str_eq(as_ynode_get(d->root, "a")->scalar, "db.example");
  ck_assert_str_eq(as_ynode_get(d->root, "b")->scalar, "fallback value");
  ck_assert_str_eq(as_ynode_get(d->root, "c")->scalar, "db.example:5432");
  ck_assert_str_eq(as_ynode_get(d->root, "d")->scalar, "price $5 and $HOME stays");
  ck_assert_str_eq(as_ynode_get(d->root, "e")->scalar, "dflt");
  ck_assert_str_eq(as_ynode_get(d->root, "f")->scalar, "xy");
  ck_assert_ptr_nonnull(as_ynode_get(d->root, "${AS_T_HOST}"));
  as_ydoc_free(d);

  char *out = NULL;
  const char *bad = NULL;
  ck_assert_int_eq(as_env_expand("${AS_T_UNSET}", &out, &bad), AS_ENOTFOUND);
  ck_assert_str_eq(bad, "AS_T_UNSET");
  ck_assert_ptr_null(out);
  ck_assert_int_eq(as_env_expand("${1ABC}", &out, &bad), AS_EINVAL);
  ck_assert_str_eq(bad, "${1ABC}");
  ck_assert_int_eq(as_env_expand("x ${AS_T_HOST", &out, &bad), AS_EINVAL);
  ck_assert_int_eq(as_env_expand("", &out, &bad), AS_OK);
  ck_assert_str_eq(out, "");
  free(out);
}
END_TEST

START_TEST(env_errors) {
  unsetenv("AS_T_UNSET");
  load_bad("a: 1\nuri: \"mongodb://${AS_T_UNSET}/\"\n",
           "t.yaml:2:6: environment variable AS_T_UNSET is not set (write "
           "${AS_T_UNSET:-default} to give a default)");
  load_bad("list:\n  - ${AS_T_UNSET:-ok}\n  - ${oops\n",
           "t.yaml:3:5: bad environment reference \"${oops\" (write ${NAME} or "
           "${NAME:-default}; $$ is a literal $)");
}
END_TEST

START_TEST(duplicate_keys) {
  load_bad("a: 1\nb:\n  x: 1\n  y: 2\n  x: 3\n",
           "t.yaml:5:3: duplicate key \"x\" (first at line 3 column 3)");
  load_bad("{a: 1, a: 2}\n", "t.yaml:1:8: duplicate key \"a\" (first at line 1 column 2)");
}
END_TEST

START_TEST(anchors_and_aliases) {
  as_ydoc *d = load_ok("base: &b { type: text, required: true }\n"
                       "col: *b\n"
                       "names: [&n joe, *n]\n");
  const as_ynode *col = as_ynode_get(d->root, "col");
  ck_assert_int_eq(col->kind, AS_Y_MAP);
  ck_assert_str_eq(as_ynode_get(col, "type")->scalar, "text");
  ck_assert_int_eq(col->mark.line, 2);
  ck_assert_int_eq(col->mark.col, 6);
  /* a copy: the two trees are independent */
  ck_assert_ptr_ne(col, as_ynode_get(d->root, "base"));
  const as_ynode *names = as_ynode_get(d->root, "names");
  ck_assert_str_eq(names->items[1]->scalar, "joe");
  as_ydoc_free(d);
  load_bad("a: *nope\n", "t.yaml:1:4: unknown anchor *nope (define &nope before using it)");
  /* recursion is refused: the anchor is not complete at the alias */
  load_bad("a: &r [1, *r]\n", "t.yaml:1:11: unknown anchor *r (define &r before using it)");
}
END_TEST

START_TEST(syntax_errors) {
  load_bad("a:\n  b: 1\n   c: 2\n",
           "t.yaml:3:5: mapping values are not allowed in this context; check the indentation "
           "of this line, or quote a value that contains \": \"");
  load_bad("a:\n  b: { x: 1 }\n   c: 2\n",
           "t.yaml:3:4: did not find expected key (while parsing a block mapping started at "
           "line 2 column 3)");
  load_bad("a:\n\tb: 1\n",
           "t.yaml:2:1: found character that cannot start any token (while scanning for the "
           "next token); a tab cannot be used for indentation in YAML, use spaces");
  load_bad("a: \"open\nb: 2\n",
           "t.yaml:3:1: found unexpected end of stream (while scanning a quoted scalar started "
           "at line 1 column 4)");
  load_bad("a: 1\n---\nb: 2\n",
           "t.yaml:2:1: only one YAML document is allowed in a file (found a second)");
  load_bad("? [a, b]\n: 1\n", "t.yaml:1:3: a map key must be a plain value, not a map or a list");
}
END_TEST

START_TEST(file_errors) {
  as_error err = {0};
  as_ydoc *d = NULL;
  ck_assert_int_eq(as_yaml_load_file("/nonexistent/dir/x.yaml", &d, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "/nonexistent/dir/x.yaml: cannot open: No such file or directory");
  char *dir = as_test_tmpdir();
  char *p = as_test_write_file(dir, "ok.yaml", "k: v\n");
  ck_assert_int_eq(as_yaml_load_file(p, &d, &err), AS_OK);
  ck_assert_str_eq(as_ynode_get(d->root, "k")->scalar, "v");
  ck_assert_str_eq(d->root->mark.file, p);
  as_ydoc_free(d);
  free(p);
  as_test_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(typed_readers) {
  as_ydoc *d = load_ok("t: true\ny: Yes\nn: no\nf: FALSE\nbad: maybe\n"
                       "i: 42\nneg: -3\nbig: 99999999999999999999\nx: 4x\nm: {a: 1}\ns: hi\n");
  as_error err = {0};
  bool b = false;
  ck_assert_int_eq(as_yaml_bool(as_ynode_get(d->root, "t"), "t", &b, &err), AS_OK);
  ck_assert(b);
  ck_assert_int_eq(as_yaml_bool(as_ynode_get(d->root, "y"), "y", &b, &err), AS_OK);
  ck_assert(b);
  ck_assert_int_eq(as_yaml_bool(as_ynode_get(d->root, "n"), "n", &b, &err), AS_OK);
  ck_assert(!b);
  b = true;
  ck_assert_int_eq(as_yaml_bool(as_ynode_get(d->root, "f"), "f", &b, &err), AS_OK);
  ck_assert(!b);
  ck_assert_int_eq(as_yaml_bool(as_ynode_get(d->root, "bad"), "flag", &b, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "t.yaml:5:6: flag must be true or false, not \"maybe\"");

  int64_t v = 0;
  ck_assert_int_eq(as_yaml_int(as_ynode_get(d->root, "i"), "n", 0, 100, &v, &err), AS_OK);
  ck_assert_int_eq(v, 42);
  ck_assert_int_eq(as_yaml_int(as_ynode_get(d->root, "neg"), "n", -5, 5, &v, &err), AS_OK);
  ck_assert_int_eq(v, -3);
  ck_assert_int_eq(as_yaml_int(as_ynode_get(d->root, "i"), "rows", 1, 10, &v, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "t.yaml:6:4: rows must be an integer from 1 to 10, not \"42\"");
  ck_assert_int_eq(as_yaml_int(as_ynode_get(d->root, "big"), "n", 0, INT64_MAX, &v, &err),
                   AS_EINVAL);
  ck_assert_int_eq(as_yaml_int(as_ynode_get(d->root, "x"), "n", 0, 100, &v, &err), AS_EINVAL);
  ck_assert_int_eq(as_yaml_int(as_ynode_get(d->root, "m"), "n", 0, 100, &v, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "t.yaml:10:4: n must be an integer, not a map");

  char *s = NULL;
  ck_assert_int_eq(as_yaml_str(as_ynode_get(d->root, "s"), "s", &s, &err), AS_OK);
  ck_assert_str_eq(s, "hi");
  free(s);
  ck_assert_int_eq(as_yaml_str(as_ynode_get(d->root, "m"), "name", &s, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "t.yaml:10:4: name must be a string, not a map");
  as_ydoc_free(d);
}
END_TEST

START_TEST(durations) {
  static const struct {
    const char *text;
    int64_t ms;
  } ok[] = {{"250ms", 250},     {"30s", 30000},       {"5m", 300000}, {"1h", 3600000},
            {"2d", 172800000}, {"15", 15000},        {"0s", 0},      {"0", 0}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int64_t v = -1;
    ck_assert_msg(as_parse_duration_ms(ok[i].text, &v) == AS_OK, "%s", ok[i].text);
    ck_assert_int_eq(v, ok[i].ms);
  }
  static const char *bad[] = {"", "s", "-1s", "1.5s", "10x", "30 s", "5M", "1hh",
                              "99999999999999999999d", "106751991167301d"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t v = -1;
    ck_assert_msg(as_parse_duration_ms(bad[i], &v) == AS_EINVAL, "%s", bad[i]);
  }
  as_ydoc *d = load_ok("x: 30 seconds\n");
  as_error err = {0};
  int64_t v;
  ck_assert_int_eq(as_yaml_duration_ms(as_ynode_get(d->root, "x"), "interval", &v, &err),
                   AS_EINVAL);
  ck_assert_str_eq(err.message, "t.yaml:1:4: interval must be a duration such as 250ms, 30s, "
                                "5m, 1h or 2d, not \"30 seconds\"");
  as_ydoc_free(d);
}
END_TEST

START_TEST(check_keys) {
  as_ydoc *d = load_ok("a: 1\nb: 2\nzz: 3\n");
  static const char *const allowed[] = {"a", "b", "c", NULL};
  static const char *const all[] = {"a", "b", "zz", NULL};
  as_error err = {0};
  ck_assert_int_eq(as_yaml_check_keys(d->root, all, "thing", &err), AS_OK);
  ck_assert_int_eq(as_yaml_check_keys(d->root, allowed, "thing", &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "t.yaml:3:1: unknown key \"zz\" in thing (allowed: a, b, c)");
  ck_assert_int_eq(as_yaml_check_keys(as_ynode_get(d->root, "a"), allowed, "thing", &err),
                   AS_EINVAL);
  ck_assert_str_eq(err.message, "t.yaml:1:4: thing must be a map, not a value");
  as_ydoc_free(d);
}
END_TEST

int main(void) {
  Suite *s = suite_create("yaml");
  TCase *tc = tcase_create("yaml");
  tcase_add_test(tc, tree_and_marks);
  tcase_add_test(tc, empty_documents);
  tcase_add_test(tc, env_substitution);
  tcase_add_test(tc, env_errors);
  tcase_add_test(tc, duplicate_keys);
  tcase_add_test(tc, anchors_and_aliases);
  tcase_add_test(tc, syntax_errors);
  tcase_add_test(tc, file_errors);
  tcase_add_test(tc, typed_readers);
  tcase_add_test(tc, durations);
  tcase_add_test(tc, check_keys);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
