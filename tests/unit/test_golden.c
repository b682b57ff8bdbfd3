/* test_golden.c — tests/golden/<case>/{mapping.yaml,input.jsonl,expected.json}.
 *
 * Each input line (canonical extended JSON) is mapped with as_doc_to_row and written as the
 * canonical JSON of an insert delta (origin "golden", ts 0, hlc 0), or as {"error": message}
 * when the document cannot be mapped. A mapping with child tables adds, per child table, its
 * rows (as_child_rows, each as the canonical JSON of an insert of the child table) or the
 * error, and the array column as the child tables give it back (as_child_normalize); a child row
 * with nested children holds theirs under "_children", the same way.
 * The array of results must equal expected.json (json_equal). AS_GOLDEN_UPDATE=1 rewrites
 * expected.json instead (review the diff!). */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_bson.h"
#include "as_children.h"
#include "as_test_util.h"

#define MAX_CASES 64
static char *cases[MAX_CASES];
static int ncases;

/* {"<child table>": {"rows": [...], "array": <array column from the rows>} | {"error": m}} */
static json_t *child_tables(const as_schema *s, const as_row *row) {
  json_t *out = json_object();
  for (size_t ci = 0; ci < s->nchildren; ci++) {
    const as_child *ch = &s->children[ci];
    as_row *rows = NULL;
    size_t n = 0;
    as_error err;
    json_t *o = json_object();
    if (as_child_rows(s, ci, row, &row->v[ch->col], &rows, &n, &err) != AS_OK) {
      ck_assert_int_eq(err.code, AS_EDATA);
      json_object_set_new(o, "error", json_string(err.message));
    } else {
      json_t *arr = json_array();
      for (size_t i = 0; i < n; i++) {
        as_delta d = {.schema = ch->tab, .op = AS_OP_INSERT, .row = rows[i]};
        json_t *j = as_delta_to_json(&d, &err);
        ck_assert_msg(j != NULL, "%s", err.message);
        json_t *r = json_deep_copy(json_object_get(j, "key"));
        json_object_update(r, json_object_get(j, "cols"));
        if (ch->tab->nchildren) /* nested children: this row's, the same way */
          json_object_set_new(r, "_children", child_tables(ch->tab, &rows[i]));
        json_array_append_new(arr, r);
        json_decref(j);
      }
      json_object_set_new(o, "rows", arr);
      as_value v;
      ck_assert_msg(as_child_normalize(s, ci, row, &row->v[ch->col], &v, &err) == AS_OK, "%s",
                    err.message);
      json_object_set_new(o, "array", v.type == AS_T_NULL ? json_null() : json_string(v.u.s.ptr));
      as_value_clear(&v);
      as_child_rows_free(rows, n);
    }
    json_object_set_new(out, ch->table, o);
  }
  return out;
}

static json_t *run_case(const char *dir) {
  char path[4096];
  as_schema *s = NULL;
  as_error err;
  snprintf(path, sizeof path, "%s/mapping.yaml", dir);
  ck_assert_msg(as_schema_load(path, &s, &err) == AS_OK, "%s", err.message);
  snprintf(path, sizeof path, "%s/input.jsonl", dir);
  char *input = as_test_read_file(path, NULL);
  ck_assert_msg(input != NULL, "cannot read %s", path);
  json_t *out = json_array();
  char *save = NULL;
  for (char *line = strtok_r(input, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (!*line) continue;
    bson_error_t be;
    bson_t *doc = bson_new_from_json((const uint8_t *)line, -1, &be);
    ck_assert_msg(doc != NULL, "%s: %s", line, be.message);
    as_delta d;
    ck_assert_int_eq(as_delta_init(&d, s, AS_OP_INSERT), AS_OK);
    as_delta_set_origin(&d, "golden");
    if (as_doc_to_row(s, doc, &d.row, &err) != AS_OK) {
      ck_assert_int_eq(err.code, AS_EDATA);
      json_array_append_new(out, json_pack("{s:s}", "error", err.message));
    } else {
      json_t *j = as_delta_to_json(&d, &err);
      ck_assert_msg(j != NULL, "%s", err.message);
      if (s->nchildren) json_object_set_new(j, "child_tables", child_tables(s, &d.row));
      json_array_append_new(out, j);
    }
    as_delta_clear(&d);
    bson_destroy(doc);
  }
  free(input);
  as_schema_free(s);
  return out;
}

START_TEST(test_case) {
  const char *dir = cases[_i];
  json_t *got = run_case(dir);
  char path[4096];
  snprintf(path, sizeof path, "%s/expected.json", dir);
  const char *upd = getenv("AS_GOLDEN_UPDATE");
  if (upd && strcmp(upd, "1") == 0) {
    ck_assert_int_eq(json_dump_file(got, path, JSON_INDENT(2)), 0);
    FILE *f = fopen(path, "a");
    if (f) {
      fputc('\n', f);
      fclose(f);
    }
  }
  json_error_t je;
  json_t *want = json_load_file(path, 0, &je);
  ck_assert_msg(want != NULL, "%s: %s", path, je.text);
  if (!json_equal(got, want)) {
    size_t n = json_array_size(got) > json_array_size(want) ? json_array_size(got) : json_array_size(want);
    for (size_t i = 0; i < n; i++) {
      json_t *g = json_array_get(got, i), *w = json_array_get(want, i);
      if (g && w && json_equal(g, w)) continue;
      char *gs = g ? json_dumps(g, JSON_COMPACT) : NULL, *ws = w ? json_dumps(w, JSON_COMPACT) : NULL;
      ck_abort_msg("%s line %zu:\n got  %s\n want %s", dir, i + 1, gs ? gs : "(none)", ws ? ws : "(none)");
    }
    ck_abort_msg("%s: results differ", dir);
  }
  json_decref(got);
  json_decref(want);
}
END_TEST

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
  char *root = as_test_src_path("tests/golden");
  DIR *d = opendir(root);
  if (!d) {
    fprintf(stderr, "cannot open %s\n", root);
    return EXIT_FAILURE;
  }
  struct dirent *e;
  while ((e = readdir(d)) && ncases < MAX_CASES) {
    if (e->d_name[0] == '.') continue;
    size_t n = strlen(root) + strlen(e->d_name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", root, e->d_name);
    cases[ncases++] = p;
  }
  closedir(d);
  free(root);
  qsort(cases, (size_t)ncases, sizeof cases[0], cmp);
  if (ncases < 4) {
    fprintf(stderr, "expected at least 4 golden cases, found %d\n", ncases);
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("golden");
  TCase *tc = tcase_create("cases");
  tcase_add_loop_test(tc, test_case, 0, ncases);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_ENV);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  for (int i = 0; i < ncases; i++) free(cases[i]);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
