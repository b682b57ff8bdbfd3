/* test_cfgmap.c — typed config maps: every type, defaults, bounds, required and unknown keys,
 * the exact error messages (with marks), YAML sections, the adapters' maps (defaults and
 * examples parse, node errors name file:line:col), and that the mapping-file documentation
 * lists exactly the keys as_schema accepts. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "as_cfgmap.h"
#include "as_config.h"
#include "as_test_util.h"
#include "as_yaml.h"

typedef struct t_opts {
  char *name;
  char *password;
  char *dir;
  bool flag;
  int64_t count;
  int64_t wait;
  int64_t cache;
  int color;
} t_opts;

static const char *const colors[] = {"red", "green", "blue", NULL};

static const as_config_entry tmap[] = {
    AS_OPT_REQ(STRING, t_opts, name, "a name", "x"),
    AS_OPT(SECRET, t_opts, password, NULL, "a password", NULL),
    AS_OPT(PATH, t_opts, dir, "/tmp", "a directory", NULL),
    AS_OPT(BOOL, t_opts, flag, "off", "a flag", "on"),
    AS_OPT(INT, t_opts, count, "3", "a count", "7", .min = 1, .max = 10),
    AS_OPT(DURATION, t_opts, wait, "20ms", "a wait", "1s", .min = 1, .max = 60000),
    AS_OPT(SIZE, t_opts, cache, "64k", "a cache", "16M"),
    AS_OPT(ENUM, t_opts, color, "green", "a color", "blue", .allowed = colors),
    AS_OPT_END};

static const as_mark owner_mark = {.file = "c.yaml", .line = 2, .col = 3};

/* Parses opts "k=v" (each at c.yaml:LINE:5 where LINE = 10 + index); returns rc. */
static int parse(const char *const *kv, size_t n, t_opts *o, as_error *err) {
  as_node_option opts[16];
  char keys[16][64];
  for (size_t i = 0; i < n; i++) {
    const char *eq = strchr(kv[i], '=');
    snprintf(keys[i], sizeof keys[i], "%.*s", (int)(eq - kv[i]), kv[i]);
    opts[i] = (as_node_option){.key = keys[i], .value = (char *)(eq + 1),
                               .mark = {.file = "c.yaml", .line = 10 + (int)i, .col = 5}};
  }
  memset(o, 0, sizeof *o);
  return as_cfgmap_parse(tmap, "node t", &owner_mark, opts, n, o, err);
}

START_TEST(defaults_and_every_type) {
  t_opts o;
  as_error err = {0};
  const char *only_name[] = {"name=n1"};
  ck_assert_int_eq(parse(only_name, 1, &o, &err), AS_OK);
  ck_assert_str_eq(o.name, "n1");
  ck_assert_ptr_null(o.password);
  ck_assert_str_eq(o.dir, "/tmp");
  ck_assert(!o.flag);
  ck_assert_int_eq(o.count, 3);
  ck_assert_int_eq(o.wait, 20);
  ck_assert_int_eq(o.cache, 65536);
  ck_assert_int_eq(o.color, 1);
  as_cfgmap_free(tmap, &o);
  ck_assert_ptr_null(o.name);

  const char *all[] = {"name=n2", "password=s3cret", "dir=./d", "flag=yes", "count=10",
                       "wait=1m", "cache=2MiB", "color=blue"};
  ck_assert_int_eq(parse(all, 8, &o, &err), AS_OK);
  ck_assert_str_eq(o.name, "n2");
  ck_assert_str_eq(o.password, "s3cret");
  ck_assert_str_eq(o.dir, "./d");
  ck_assert(o.flag);
  ck_assert_int_eq(o.count, 10);
  ck_assert_int_eq(o.wait, 60000);
  ck_assert_int_eq(o.cache, 2 * 1024 * 1024);
  ck_assert_int_eq(o.color, 2);
  as_cfgmap_free(tmap, &o);
  as_cfgmap_free(tmap, NULL); /* NULL-safe */
}
END_TEST

START_TEST(bool_and_size_forms) {
  static const struct {
    const char *s;
    bool v;
  } bools[] = {{"true", true}, {"TRUE", true}, {"yes", true}, {"on", true},
               {"false", false}, {"No", false}, {"off", false}};
  for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
    bool v = !bools[i].v;
    ck_assert_int_eq(as_cfgmap_parse_bool(bools[i].s, &v), AS_OK);
    ck_assert_int_eq(v, bools[i].v);
  }
  bool b;
  ck_assert_int_eq(as_cfgmap_parse_bool("1", &b), AS_EINVAL);
  static const struct {
    const char *s;
    int64_t v;
  } sizes[] = {{"0", 0}, {"512", 512}, {"512b", 512}, {"1k", 1024}, {"1KB", 1024},
               {"3kib", 3072}, {"16M", 16 << 20}, {"1G", 1LL << 30}, {"2TiB", 2LL << 40}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    int64_t v = -1;
    ck_assert_msg(as_cfgmap_parse_size(sizes[i].s, &v) == AS_OK, "%s", sizes[i].s);
    ck_assert_int_eq(v, sizes[i].v);
  }
  int64_t v;
  const char *bad[] = {"", "-1", "k", "1 k", "1.5M", "1P", "9999999999999T"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg(as_cfgmap_parse_size(bad[i], &v) == AS_EINVAL, "%s", bad[i]);
  }
}
END_TEST

START_TEST(error_messages) {
  static const struct {
    const char *kv[3];
    size_t n;
    const char *msg;
  } cases[] = {
      {{"count=3"}, 1, "c.yaml:2:3: node t: option name: missing; it is required (a name)"},
      {{"name="}, 1, "c.yaml:10:5: node t: option name: missing; it is required (a name)"},
      {{"name=a", "colour=red"}, 2,
       "c.yaml:11:5: node t: option colour: unknown key (allowed: name, password, dir, flag, "
       "count, wait, cache, color)"},
      {{"name=a", "flag=maybe"}, 2,
       "c.yaml:11:5: node t: option flag: \"maybe\" is not a boolean (allowed: true, false, yes, "
       "no, on, off)"},
      {{"name=a", "count=3x"}, 2,
       "c.yaml:11:5: node t: option count: \"3x\" is not an integer (allowed: decimal digits, "
       "e.g. 3)"},
      {{"name=a", "count=11"}, 2,
       "c.yaml:11:5: node t: option count: integer \"11\" is out of range (allowed: 1 to 10)"},
      {{"name=a", "wait=soon"}, 2,
       "c.yaml:11:5: node t: option wait: \"soon\" is not a duration (allowed: 250ms, 30s, 5m, "
       "1h, 2d; a plain number is seconds)"},
      {{"name=a", "wait=2m"}, 2,
       "c.yaml:11:5: node t: option wait: duration \"2m\" is out of range (allowed: 1ms to 60s)"},
      {{"name=a", "cache=lots"}, 2,
       "c.yaml:11:5: node t: option cache: \"lots\" is not a size (allowed: bytes, or a number "
       "with k, M, G or T, e.g. 64k, 16MiB)"},
      {{"name=a", "color=purple"}, 2,
       "c.yaml:11:5: node t: option color: unknown value \"purple\" (allowed: red, green, "
       "blue)"},
      {{"name=a", "dir="}, 2,
       "c.yaml:11:5: node t: option dir: empty path (allowed: a file system path)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    t_opts o;
    as_error err = {0};
    ck_assert_int_eq(parse(cases[i].kv, cases[i].n, &o, &err), AS_EINVAL);
    ck_assert_str_eq(err.message, cases[i].msg);
    ck_assert_int_eq(err.domain, AS_DOM_CONFIG);
    as_cfgmap_free(tmap, &o);
  }
  /* without a file, no position; without an owner, no owner */
  as_error err = {0};
  ck_assert_int_eq(as_cfgmap_error(&err, NULL, NULL, "k", "bad"), AS_EINVAL);
  ck_assert_str_eq(err.message, "option k: bad");
}
END_TEST

START_TEST(type_text_and_print) {
  char buf[256];
  as_cfgmap_type_text(&tmap[4], buf, sizeof buf);
  ck_assert_str_eq(buf, "integer 1..10");
  as_cfgmap_type_text(&tmap[5], buf, sizeof buf);
  ck_assert_str_eq(buf, "duration 1ms..60s");
  as_cfgmap_type_text(&tmap[7], buf, sizeof buf);
  ck_assert_str_eq(buf, "one of: red | green | blue");
  as_cfgmap_type_text(&tmap[1], buf, sizeof buf);
  ck_assert_str_eq(buf, "secret");
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  as_cfgmap_print(tmap, f, 2, "x.");
  fclose(f);
  ck_assert_ptr_nonnull(strstr(text, "  x.name (string, required)\n      a name\n      "
                                     "example: name: x\n"));
  ck_assert_ptr_nonnull(strstr(text, "  x.color (one of: red | green | blue)\n      a color\n"
                                     "      default: green\n      example: color: blue\n"));
  free(text);
  /* the struct size covers the last field */
  ck_assert_uint_ge(as_cfgmap_struct_size(tmap), offsetof(t_opts, color) + sizeof(int));
}
END_TEST

/* YAML sections: dotted keys, defaults, unknown keys at both levels, a section not a map. */
typedef struct y_opts {
  char *state;
  int64_t rows;
  int level;
} y_opts;
static const char *const levels[] = {"low", "high", NULL};
static const as_config_entry ymap[] = {
    AS_OPT_AT(PATH, "state", y_opts, state, "s.db", "state", NULL),
    AS_DOC(MAP, "nodes", NULL, "nodes", NULL, .required = true),
    AS_OPT_AT(INT, "batch.rows", y_opts, rows, "5", "rows", NULL, .min = 1, .max = 9),
    AS_OPT_AT(ENUM, "log.level", y_opts, level, "low", "level", NULL, .allowed = levels),
    AS_OPT_END};

static int yparse(const char *text, y_opts *o, as_error *err) {
  as_ydoc *d = NULL;
  int rc = as_yaml_load_string("y.yaml", text, strlen(text), &d, err);
  memset(o, 0, sizeof *o);
  if (rc == AS_OK) rc = as_cfgmap_parse_yaml(ymap, "configuration", d->root, o, err);
  as_ydoc_free(d);
  return rc;
}

START_TEST(yaml_sections) {
  y_opts o;
  as_error err = {0};
  ck_assert_int_eq(yparse("nodes: {a: 1}\n", &o, &err), AS_OK);
  ck_assert_str_eq(o.state, "s.db");
  ck_assert_int_eq(o.rows, 5);
  ck_assert_int_eq(o.level, 0);
  as_cfgmap_free(ymap, &o);
  ck_assert_int_eq(yparse("state: x.db\nbatch: { rows: 9 }\nlog:\n  level: high\n", &o, &err),
                   AS_OK);
  ck_assert_str_eq(o.state, "x.db");
  ck_assert_int_eq(o.rows, 9);
  ck_assert_int_eq(o.level, 1);
  as_cfgmap_free(ymap, &o);
  static const struct {
    const char *text, *msg;
  } bad[] = {
      {"stat: x\n", "y.yaml:1:1: unknown key \"stat\" in configuration (allowed: state, nodes, "
                    "batch, log)"},
      {"batch: { row: 1 }\n", "y.yaml:1:10: unknown key \"row\" in batch (allowed: rows)"},
      {"batch: 3\n", "y.yaml:1:8: batch must be a map, not a value"},
      {"batch: { rows: [1] }\n", "y.yaml:1:16: option batch.rows: must be a value, not a list "
                                 "(allowed: integer)"},
      {"log: { level: mid }\n", "y.yaml:1:15: option log.level: unknown value \"mid\" (allowed: "
                                "low, high)"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_int_eq(yparse(bad[i].text, &o, &err), AS_EINVAL);
    ck_assert_str_eq(err.message, bad[i].msg);
    as_cfgmap_free(ymap, &o);
  }
}
END_TEST

/* Strips one pair of YAML double quotes from an example. */
static void unquote(const char *in, char *out, size_t cap) {
  size_t n = strlen(in);
  if (n >= 2 && in[0] == '"' && in[n - 1] == '"') snprintf(out, cap, "%.*s", (int)n - 2, in + 1);
  else snprintf(out, cap, "%s", in);
}

/* Every adapter's map: documented, defaults parse; every example parses as its type. */
START_TEST(adapter_maps) {
  for (const as_adapter *const *a = as_adapter_all(); *a; a++) {
    const as_config_entry *map = (*a)->config_map;
    ck_assert_ptr_nonnull(map);
    size_t sz = as_cfgmap_struct_size(map);
    ck_assert_uint_gt(sz, 0);
    as_node_option req[16];
    char vals[16][256];
    size_t nreq = 0;
    for (const as_config_entry *e = map; e->key; e++) {
      ck_assert_msg(e->description && *e->description, "%s.%s", (*a)->kind, e->key);
      ck_assert_msg(e->stored, "%s.%s has no field", (*a)->kind, e->key);
      ck_assert_msg(e->required || e->default_value || e->type == AS_CFG_SECRET ||
                        e->type == AS_CFG_STRING,
                    "%s.%s: neither required nor a default", (*a)->kind, e->key);
      if (e->required) {
        ck_assert_msg(e->example != NULL, "%s.%s: a required key needs an example", (*a)->kind,
                      e->key);
        unquote(e->example, vals[nreq], sizeof vals[nreq]);
        req[nreq] = (as_node_option){.key = (char *)e->key, .value = vals[nreq]};
        nreq++;
      }
      if (e->example) {
        void *one = calloc(1, sz);
        char ex[256];
        unquote(e->example, ex, sizeof ex);
        as_error err = {0};
        ck_assert_msg(as_cfgmap_set(e, "node x", NULL, ex, one, &err) == AS_OK, "%s.%s: %s",
                      (*a)->kind, e->key, err.message);
        as_cfgmap_free(map, one);
        free(one);
      }
    }
    void *o = calloc(1, sz);
    as_node_config cfg = {.name = "x", .kind = (char *)(*a)->kind, .opts = req, .nopts = nreq};
    as_error err = {0};
    ck_assert_msg(as_node_options_parse(&cfg, map, o, &err) == AS_OK, "%s: %s", (*a)->kind,
                  err.message);
    as_cfgmap_free(map, o);
    free(o);
  }
}
END_TEST

/* The adapters' init reports bad options with the option's position. */
START_TEST(adapter_init_errors) {
  static const struct {
    const char *kind;
    as_node_option opts[3];
    size_t n;
    const char *msg;
  } cases[] = {
      {"sqlite",
       {{.key = "path", .value = "x.db"}, {.key = "wakeup", .value = "never"}},
       2,
       "f.yaml:11:7: node n: option wakeup: unknown value \"never\" (allowed: inotify, poll)"},
      {"sqlite",
       {{.key = "path", .value = "x.db"}, {.key = "busy_timeout", .value = "-1"}},
       2,
       "f.yaml:11:7: node n: option busy_timeout: integer \"-1\" is out of range (allowed: 0 "
       "to 2147483647)"},
      {"postgres",
       {{.key = "dsn", .value = "host=x password=s3cret"}, {.key = "copy", .value = "sometimes"}},
       2,
       "f.yaml:11:7: node n: option copy: \"sometimes\" is not a boolean (allowed: true, false, "
       "yes, no, on, off)"},
      {"postgres",
       {{.key = "dsn", .value = "host=x password=s3cret"}, {.key = "schema", .value = "arraysync"}},
       2,
       "f.yaml:11:7: node n: option schema: \"arraysync\" cannot hold mapped tables (allowed: a "
       "non-empty name other than arraysync)"},
      {"mongodb",
       {{.key = "uri", .value = "mongodb://u:s3cret@127.0.0.1:1/"}, {.key = "database", .value = "a.b"}},
       2,
       "f.yaml:11:7: node n: option database: \"a.b\" is not a plain database name (no /, \\, ., "
       "space, \" or $)"},
      {"mongodb",
       {{.key = "uri", .value = "mongodb://u:s3cret@127.0.0.1:1/"}},
       1,
       "f.yaml:1:3: node n: option database: missing; it is required (database holding the "
       "mapped collections and the bookkeeping)"},
      {"mongodb",
       {{.key = "uri", .value = "mongodb://u:s3cret@127.0.0.1:1/"}, {.key = "database", .value = "d"},
        {.key = "max_await_ms", .value = "0"}},
       3,
       "f.yaml:12:7: node n: option max_await_ms: integer \"0\" is out of range (allowed: 1 to "
       "1000000000)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    as_node_option o[3];
    for (size_t j = 0; j < cases[i].n; j++) {
      o[j] = cases[i].opts[j];
      o[j].mark = (as_mark){.file = "f.yaml", .line = 10 + (int)j, .col = 7};
    }
    as_node_config cfg = {.name = "n", .kind = (char *)cases[i].kind, .opts = o,
                          .nopts = cases[i].n, .mark = {.file = "f.yaml", .line = 1, .col = 3}};
    const as_adapter *a = as_adapter_find(cases[i].kind);
    as_node *n = NULL;
    as_error err = {0};
    ck_assert_int_eq(a->init(&cfg, NULL, 0, &n, &err), AS_EINVAL);
    ck_assert_ptr_null(n);
    ck_assert_str_eq(err.message, cases[i].msg);
    ck_assert_ptr_null(strstr(err.message, "s3cret"));
  }
}
END_TEST

/* The key list in an "unknown key" error of as_schema / as_config for the YAML in text. */
static void allowed_keys(const char *text, bool config, char *out, size_t cap) {
  as_error err = {0};
  int rc;
  if (config) {
    char *dir = as_test_tmpdir();
    char *p = as_test_write_file(dir, "c.yaml", text);
    as_config *c = NULL;
    rc = as_config_load(p, &c, &err);
    as_config_free(c);
    free(p);
    as_test_rmtree(dir);
    free(dir);
  } else {
    as_schema *s = NULL;
    rc = as_schema_load_string("m.yaml", text, &s, &err);
    as_schema_free(s);
  }
  ck_assert_int_eq(rc, AS_EINVAL);
  const char *a = strstr(err.message, "(allowed: ");
  ck_assert_msg(a != NULL, "%s", err.message);
  snprintf(out, cap, "%s", a + 10);
  out[strlen(out) - 1] = '\0';
}

/* The documented keys under prefix ("" = top level), comma separated, first parts once. */
static void doc_keys(const as_config_entry *map, const char *prefix, char *out, size_t cap) {
  size_t off = 0, pl = strlen(prefix);
  out[0] = '\0';
  for (const as_config_entry *e = map; e->key; e++) {
    if (strncmp(e->key, prefix, pl) != 0) continue;
    const char *k = e->key + pl;
    size_t kl = strcspn(k, ".");
    char part[64];
    snprintf(part, sizeof part, "%.*s", (int)kl, k);
    char needle[80];
    snprintf(needle, sizeof needle, ", %s,", part);
    char have[1024];
    snprintf(have, sizeof have, ", %s,", out);
    if (strstr(have, needle)) continue;
    off += (size_t)snprintf(out + off, cap - off, "%s%s", off ? ", " : "", part);
  }
}

START_TEST(docs_match_parsers) {
  const as_config_entry *sm = as_schema_config_map();
  char got[1024], want[1024];
  const char *base = "mapping: m\nkey: id\ncolumns: { id: { field: _id, type: text } }\n";
  char text[1024];
  snprintf(text, sizeof text, "%sbogus: 1\n", base);
  allowed_keys(text, false, got, sizeof got);
  doc_keys(sm, "", want, sizeof want);
  ck_assert_str_eq(got, want);
  allowed_keys("mapping: m\nkey: id\ncolumns: { id: { field: _id, type: text, bogus: 1 } }\n",
               false, got, sizeof got);
  doc_keys(sm, "columns.NAME.", want, sizeof want);
  ck_assert_str_eq(got, want);
  snprintf(text, sizeof text, "%sconflict: { bogus: 1 }\n", base);
  allowed_keys(text, false, got, sizeof got);
  doc_keys(sm, "conflict.", want, sizeof want);
  ck_assert_str_eq(got, want);
  snprintf(text, sizeof text, "%smode: { bogus: 1 }\n", base);
  allowed_keys(text, false, got, sizeof got);
  doc_keys(sm, "mode.", want, sizeof want);
  ck_assert_str_eq(got, want);
  snprintf(text, sizeof text, "%schildren: [{ bogus: 1 }]\n", base);
  allowed_keys(text, false, got, sizeof got);
  doc_keys(sm, "children.", want, sizeof want);
  ck_assert_str_eq(got, want);
  /* the top-level file: topology's keys */
  allowed_keys("nodes: {a: {kind: sqlite, path: a}, b: {kind: sqlite, path: b}}\n"
               "topology: { type: ring, bogus: 1 }\nmappings: x\n",
               true, got, sizeof got);
  doc_keys(as_config_map(), "topology.", want, sizeof want);
  ck_assert_str_eq(got, want);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cfgmap");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, defaults_and_every_type);
  tcase_add_test(tc, bool_and_size_forms);
  tcase_add_test(tc, error_messages);
  tcase_add_test(tc, type_text_and_print);
  tcase_add_test(tc, yaml_sections);
  tcase_add_test(tc, adapter_maps);
  tcase_add_test(tc, adapter_init_errors);
  tcase_add_test(tc, docs_match_parsers);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
