/* test_config.c — the top-level configuration: bad files with exact messages, the examples,
 * topologies, path resolution, and `arraysync check` output. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "as_config.h"
#include "as_test_util.h"
#include "cmd_check.h"

/* Bad configs under tests/unit/bad_configs/config/; "@" in msg stands for that directory, "#"
 * for the keys of the SQLite adapter's config map ("path, ..."), which its owner may extend. */
static const struct {
  const char *file;
  const char *msg;
} bad[] = {
    {"unknown_kind.yaml",
     "@/unknown_kind.yaml:3:18: unknown node kind \"mysql\" for node \"my\" (known: mongodb, "
     "postgres, sqlite)"},
    {"unknown_node_option.yaml",
     "@/unknown_node_option.yaml:6:5: unknown key \"journal\" in sqlite node \"lite\" (allowed: "
     "kind, #)"},
    {"node_without_kind.yaml",
     "@/node_without_kind.yaml:3:3: node \"lite\" has no kind (kind: mongodb, postgres, sqlite)"},
    {"hub_unknown.yaml",
     "@/hub_unknown.yaml:4:39: topology hub \"central\" is not a node (nodes: mongo, lite)"},
    {"ring_twice.yaml", "@/ring_twice.yaml:7:24: node \"mongo\" appears twice in the ring"},
    {"ring_missing_node.yaml",
     "@/ring_missing_node.yaml:5:32: ring order must list every node; node \"lite2\" is "
     "missing"},
    {"bad_topology_type.yaml",
     "@/bad_topology_type.yaml:4:19: bad topology type \"star\" (expected peer-to-peer, "
     "hub-and-spoke or ring)"},
    {"glob_nomatch.yaml",
     "@/glob_nomatch.yaml:6:5: mappings pattern \"nomaps/*.yaml\" matches no file (looked for "
     "\"@/nomaps/*.yaml\")"},
    {"dup_mapping_names.yaml",
     "@/maps/users_again.yaml:2:1: mapping \"users\" is already defined in "
     "@/maps/users.yaml:1:1"},
    {"one_node.yaml", "@/one_node.yaml:2:3: at least two nodes are needed to sync (found 1)"},
    {"unknown_top_key.yaml",
     "@/unknown_top_key.yaml:4:1: unknown key \"mapping\" in configuration (allowed: nodes, "
     "state, topology, mappings, batch, tombstones, versions, log, metrics, verify, conflicts)"},
    {"conflicts_node_unknown.yaml",
     "@/conflicts_node_unknown.yaml:4:20: option conflicts.node: \"pg\" is not a node of this "
     "configuration"},
    {"conflicts_node_mongo.yaml",
     "@/conflicts_node_mongo.yaml:4:20: option conflicts.node: \"mongo\" is a mongodb node; "
     "the conflicts table needs a SQL node (postgres or sqlite)"},
    {"missing_mappings.yaml",
     "@/missing_mappings.yaml:1:1: missing \"mappings\" (a file pattern such as "
     "mappings/*.yaml, or a list of them)"},
    {"bad_batch.yaml",
     "@/bad_batch.yaml:5:20: option batch.max_rows: integer \"0\" is out of range (allowed: 1 "
     "to 1000000)"},
    {"bad_mapping_file.yaml",
     "@/maps_bad/bad_type.yaml:4:27: unknown type \"varchar2\" for column \"id\" (valid types "
     "include text, int64, double, numeric, bool, uuid, objectid, timestamptz, date, jsonb, "
     "bytes)"},
    {"unset_env.yaml",
     "@/unset_env.yaml:2:32: environment variable AS_TEST_SURELY_UNSET_VAR is not set (write "
     "${AS_TEST_SURELY_UNSET_VAR:-default} to give a default)"},
};

static void expand(const char *tmpl, const char *dir, char *out, size_t cap) {
  size_t o = 0;
  for (const char *p = tmpl; *p && o + 1 < cap; p++) {
    if (*p == '@') {
      o += (size_t)snprintf(out + o, cap - o, "%s", dir);
    } else if (*p == '#') {
      const as_adapter *a = as_adapter_find("sqlite");
      ck_assert_ptr_nonnull(a);
      ck_assert_str_eq(a->config_map[0].key, "path");
      for (const as_config_entry *e = a->config_map; e->key && o + 1 < cap; e++) {
        o += (size_t)snprintf(out + o, cap - o, "%s%s", e == a->config_map ? "" : ", ", e->key);
      }
    } else {
      out[o++] = *p;
    }
  }
  out[o < cap ? o : cap - 1] = '\0';
}

START_TEST(bad_config_files) {
  unsetenv("AS_TEST_SURELY_UNSET_VAR");
  char *dir = as_test_src_path("tests/unit/bad_configs/config");
  char path[2048], expected[4096];
  snprintf(path, sizeof path, "%s/%s", dir, bad[_i].file);
  expand(bad[_i].msg, dir, expected, sizeof expected);
  as_error err = {0};
  as_config *c = NULL;
  ck_assert_int_eq(as_config_load(path, &c, &err), AS_EINVAL);
  ck_assert_ptr_null(c);
  ck_assert_str_eq(err.message, expected);
  free(dir);
}
END_TEST

START_TEST(required_option_missing) {
  char *path = as_test_src_path("tests/unit/bad_configs/config/postgres_without_dsn.yaml");
  as_error err = {0};
  as_config *c = NULL;
  ck_assert_int_eq(as_config_load(path, &c, &err), AS_EINVAL);
  /* the text in parentheses is the adapter's description of the option */
  const as_config_entry *dsn = as_adapter_find("postgres")->config_map;
  while (dsn->key && strcmp(dsn->key, "dsn") != 0) dsn++;
  ck_assert_ptr_nonnull(dsn->key);
  ck_assert(dsn->required);
  char expected[2048];
  snprintf(expected, sizeof expected, "%s:3:3: node pg: option dsn: missing; it is required (%s)",
           path, dsn->description);
  ck_assert_str_eq(err.message, expected);
  free(path);
}
END_TEST

static void clear_example_env(void) {
  const char *vars[] = {"MONGODB_URI", "MONGODB_DATABASE", "SQLITE_PATH", "ARRAYSYNC_STATE",
                        "PG_DSN", "PG_SCHEMA"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
}

START_TEST(example_sqlite) {
  clear_example_env();
  char *path = as_test_src_path("mappings/examples/arraysync.yaml");
  char *dir = as_test_src_path("mappings/examples");
  as_error err = {0};
  as_config *c = NULL;
  ck_assert_msg(as_config_load(path, &c, &err) == AS_OK, "%s", err.message);
  ck_assert_str_eq(c->file, path);
  ck_assert_str_eq(c->dir, dir);
  ck_assert_uint_eq(c->nnodes, 2);
  const as_node_config *mongo = as_config_node(c, "mongo");
  const as_node_config *lite = as_config_node(c, "lite");
  ck_assert_ptr_nonnull(mongo);
  ck_assert_ptr_nonnull(lite);
  ck_assert_ptr_null(as_config_node(c, "pg"));
  ck_assert_str_eq(mongo->kind, "mongodb");
  ck_assert_str_eq(as_node_config_get(mongo, "uri"),
                   "mongodb://127.0.0.1:27017/?replicaSet=rs0");
  ck_assert_str_eq(as_node_config_get(mongo, "database"), "shop");
  ck_assert_str_eq(as_node_config_get(lite, "path"), "./shop.db"); /* not resolved */
  ck_assert_int_eq(mongo->opts[0].mark.line, 6);
  char state[2048];
  snprintf(state, sizeof state, "%s/./arraysync-state.db", dir);
  ck_assert_str_eq(c->state_path, state);
  ck_assert_int_eq(c->topology.type, AS_TOPO_PEER_TO_PEER);
  ck_assert_uint_eq(c->nschemas, 2);
  ck_assert_str_eq(c->schemas[0]->name, "orders"); /* glob order */
  ck_assert_str_eq(c->schemas[1]->name, "users");
  char users[2048];
  snprintf(users, sizeof users, "%s/mappings/users.yaml", dir);
  ck_assert_str_eq(c->schemas[1]->file, users);
  ck_assert_ptr_eq(as_config_schema(c, "users"), c->schemas[1]);
  ck_assert_ptr_null(as_config_schema(c, "nope"));
  ck_assert_uint_eq(c->batch_max_rows, 1000);
  ck_assert_int_eq(c->batch_max_latency_ms, 20);
  ck_assert_int_eq(c->tombstone_retention_ms, 7LL * 86400 * 1000);
  ck_assert_str_eq(c->log_level, "info");
  ck_assert_str_eq(c->log_format, "text");
  ck_assert_ptr_null(c->metrics_listen);
  as_config_free(c);
  as_config_free(NULL);
  free(path);
  free(dir);
}
END_TEST

START_TEST(example_postgres_with_env) {
  clear_example_env();
  setenv("PG_DSN", "host=127.0.0.1 port=6543 dbname=x", 1);
  setenv("ARRAYSYNC_STATE", "/var/lib/arraysync/state.db", 1);
  setenv("MONGODB_DATABASE", "other", 1);
  char *path = as_test_src_path("mappings/examples/arraysync-postgres.yaml");
  as_error err = {0};
  as_config *c = NULL;
  ck_assert_msg(as_config_load(path, &c, &err) == AS_OK, "%s", err.message);
  const as_node_config *pg = as_config_node(c, "pg");
  ck_assert_str_eq(pg->kind, "postgres");
  ck_assert_str_eq(as_node_config_get(pg, "dsn"), "host=127.0.0.1 port=6543 dbname=x");
  ck_assert_str_eq(as_node_config_get(pg, "schema"), "public");
  ck_assert_str_eq(as_node_config_get(as_config_node(c, "mongo"), "database"), "other");
  ck_assert_str_eq(c->state_path, "/var/lib/arraysync/state.db");
  as_config_free(c);
  free(path);
  clear_example_env();
}
END_TEST

static char *write_tree(const char *config) {
  char *dir = as_test_tmpdir();
  char maps[4096];
  snprintf(maps, sizeof maps, "mkdir -p '%s/maps'", dir);
  ck_assert_int_eq(system(maps), 0);
  snprintf(maps, sizeof maps, "%s/maps", dir);
  free(as_test_write_file(maps, "a.yaml", "mapping: a\nkey: id\ncolumns: { id: text }\n"));
  free(as_test_write_file(maps, "b.yaml", "mapping: b\nkey: id\ncolumns: { id: int64 }\n"));
  free(as_test_write_file(dir, "c.yaml", config));
  return dir;
}

START_TEST(topologies_and_options) {
  char *dir = write_tree("nodes:\n"
                         "  m: { kind: mongodb, uri: 'mongodb://x', database: d }\n"
                         "  p: { kind: postgres, dsn: 'dbname=x' }\n"
                         "  s: { kind: sqlite, path: /tmp/x.db }\n"
                         "topology: { type: ring, order: [s, m, p] }\n"
                         "mappings: [maps/b.yaml, 'maps/*.yaml']\n"
                         "state: st/state.db\n"
                         "batch: { max_rows: 500, max_latency: 250ms }\n"
                         "tombstones: { retention: 2d }\n"
                         "log: { level: debug, format: json }\n"
                         "metrics: { listen: '127.0.0.1:9187' }\n");
  char path[4096];
  snprintf(path, sizeof path, "%s/c.yaml", dir);
  as_error err = {0};
  as_config *c = NULL;
  ck_assert_msg(as_config_load(path, &c, &err) == AS_OK, "%s", err.message);
  ck_assert_int_eq(c->topology.type, AS_TOPO_RING);
  ck_assert_uint_eq(c->topology.norder, 3);
  ck_assert_str_eq(c->topology.order[0], "s");
  ck_assert_str_eq(c->topology.order[2], "p");
  ck_assert_uint_eq(c->nschemas, 2); /* b.yaml matched twice, loaded once */
  ck_assert_str_eq(c->schemas[0]->name, "b");
  ck_assert_str_eq(c->schemas[1]->name, "a");
  char st[4200];
  snprintf(st, sizeof st, "%s/st/state.db", dir);
  ck_assert_str_eq(c->state_path, st);
  ck_assert_uint_eq(c->batch_max_rows, 500);
  ck_assert_int_eq(c->batch_max_latency_ms, 250);
  ck_assert_int_eq(c->tombstone_retention_ms, 2LL * 86400 * 1000);
  ck_assert_str_eq(c->log_level, "debug");
  ck_assert_str_eq(c->log_format, "json");
  ck_assert_str_eq(c->metrics_listen, "127.0.0.1:9187");
  as_config_free(c);
  as_test_rmtree(dir);
  free(dir);

  dir = write_tree("nodes:\n"
                   "  m: { kind: mongodb, uri: 'mongodb://x', database: d }\n"
                   "  s: { kind: sqlite, path: x.db }\n"
                   "topology: { type: hub-and-spoke, hub: m }\n"
                   "mappings: 'maps/a.yaml'\n");
  snprintf(path, sizeof path, "%s/c.yaml", dir);
  ck_assert_msg(as_config_load(path, &c, &err) == AS_OK, "%s", err.message);
  ck_assert_int_eq(c->topology.type, AS_TOPO_HUB_AND_SPOKE);
  ck_assert_str_eq(c->topology.hub, "m");
  as_config_free(c);
  as_test_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(relative_paths_as_given) {
  /* from inside the config's directory, paths stay relative */
  char *dir = write_tree("nodes:\n"
                         "  m: { kind: mongodb, uri: 'mongodb://x', database: d }\n"
                         "  s: { kind: sqlite, path: x.db }\n"
                         "topology: peer-to-peer\n"
                         "mappings: 'maps/*.yaml'\n");
  char cwd[4096];
  ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
  ck_assert_int_eq(chdir(dir), 0);
  free(as_test_write_file("maps", "z.yaml", "mapping: a\ntable: z\ncollection: z\nkey: id\n"
                                            "columns: { id: text }\n"));
  as_error err = {0};
  as_config *c = NULL;
  ck_assert_int_eq(as_config_load("c.yaml", &c, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "maps/z.yaml:1:1: mapping \"a\" is already defined in "
                                "maps/a.yaml:1:1");
  ck_assert_int_eq(unlink("maps/z.yaml"), 0);
  ck_assert_msg(as_config_load("c.yaml", &c, &err) == AS_OK, "%s", err.message);
  ck_assert_str_eq(c->state_path, "arraysync-state.db");
  ck_assert_str_eq(c->schemas[0]->file, "maps/a.yaml");
  ck_assert_int_eq(c->topology.type, AS_TOPO_PEER_TO_PEER);
  as_config_free(c);
  ck_assert_int_eq(chdir(cwd), 0);
  as_test_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(more_config_errors) {
  static const struct {
    const char *config;
    const char *msg; /* after "DIR/c.yaml:" */
  } cases[] = {
      {"nodes:\n  m: { kind: mongodb, uri: u, database: d }\n  s: { kind: sqlite, path: x }\n"
       "topology: { type: peer-to-peer, hub: m }\nmappings: maps/a.yaml\n",
       "4:33: hub is only used with type: hub-and-spoke"},
      {"nodes:\n  m: { kind: mongodb, uri: u, database: d }\n  s: { kind: sqlite, path: x }\n"
       "topology: { type: ring, order: [m] }\nmappings: maps/a.yaml\n",
       "4:32: ring order must list at least two nodes"},
      {"nodes:\n  m: { kind: mongodb, uri: u, database: d }\n  s: { kind: sqlite, path: x }\n"
       "mappings: maps/a.yaml\nlog: { level: loud }\n",
       "5:15: option log.level: unknown value \"loud\" (allowed: error, warn, warning, info, "
       "debug, trace)"},
      {"nodes:\n  m: { kind: mongodb, uri: u, database: d }\n  s: { kind: sqlite, path: x }\n"
       "mappings: maps/a.yaml\nmetrics: { listen: 9187 }\n",
       "5:20: option metrics.listen: \"9187\" is not HOST:PORT (allowed: e.g. 127.0.0.1:9187)"},
      {"nodes:\n  m: { kind: mongodb, uri: u, database: d }\n  s: { kind: sqlite, path: x }\n"
       "mappings: maps/a.yaml\ntombstones: { retention: forever }\n",
       "5:26: option tombstones.retention: \"forever\" is not a duration (allowed: 250ms, 30s, "
       "5m, 1h, 2d; a plain number is seconds)"},
      {"nodes:\n  m: { kind: mongodb, uri: u, database: d }\n  s: { kind: sqlite, path: [x] }\n"
       "mappings: maps/a.yaml\n",
       "3:28: option path of node \"s\" must be a value, not a list"},
      {"nodes:\n  m: { kind: mongodb, uri: u, database: d }\n  's 1': { kind: sqlite, path: x }\n"
       "mappings: maps/a.yaml\n",
       "3:3: node name \"s 1\" may contain only letters, digits, '_' and '-'"},
      {"nodes:\n  m: { kind: mongodb, uri: u, database: d }\n  s: { kind: sqlite, path: x }\n"
       "mappings: [maps/a.yaml, maps/a2.yaml]\n",
       "4:25: mappings pattern \"maps/a2.yaml\" matches no file (looked for \"@/maps/a2.yaml\")"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *dir = write_tree(cases[i].config);
    char path[4096], tmpl[4096], expected[8192];
    snprintf(path, sizeof path, "%s/c.yaml", dir);
    snprintf(tmpl, sizeof tmpl, "@/c.yaml:%s", cases[i].msg);
    expand(tmpl, dir, expected, sizeof expected);
    as_error err = {0};
    as_config *c = NULL;
    ck_assert_int_eq(as_config_load(path, &c, &err), AS_EINVAL);
    ck_assert_str_eq(err.message, expected);
    as_test_rmtree(dir);
    free(dir);
  }
}
END_TEST

/* Loads dir/c.yaml with maps/a.yaml replaced by a_yaml (mapping a, table a); expect the
 * error text (with @ for dir) or, when NULL, success (*out). */
static void load_with_a(const char *config, const char *a_yaml, const char *expect, as_config **out) {
  char *dir = write_tree(config);
  char maps[4200], path[4096], expected[8192];
  snprintf(maps, sizeof maps, "%s/maps", dir);
  free(as_test_write_file(maps, "a.yaml", a_yaml));
  snprintf(path, sizeof path, "%s/c.yaml", dir);
  as_error err = {0};
  as_config *c = NULL;
  int rc = as_config_load(path, &c, &err);
  if (expect) {
    expand(expect, dir, expected, sizeof expected);
    ck_assert_int_eq(rc, AS_EINVAL);
    ck_assert_str_eq(err.message, expected);
  } else {
    ck_assert_msg(rc == AS_OK, "%s", err.message);
  }
  *out = c;
  as_test_rmtree(dir);
  free(dir);
}

START_TEST(conflicts_tables) {
  static const char *nodes = "nodes:\n  m: { kind: mongodb, uri: u, database: d }\n"
                             "  s: { kind: sqlite, path: x }\n  p: { kind: postgres, dsn: x }\n"
                             "mappings: 'maps/*.yaml'\n";
  static const char *plain = "mapping: a\nkey: id\ncolumns: { id: text }\n";
  char cfg[1024];
  as_config *c;
  /* no conflicts block anywhere: nothing mirrored */
  load_with_a(nodes, plain, NULL, &c);
  ck_assert_ptr_null(c->mirror_node);
  ck_assert_ptr_null(c->schemas[0]->mirror_node);
  as_config_free(c);
  /* a mapping's own block without a node: the first SQL node, the default table */
  load_with_a(nodes, "mapping: a\nkey: id\ncolumns: { id: text }\nconflicts: { table: a_c }\n",
              NULL, &c);
  const as_schema *a = as_config_schema(c, "a"), *b = as_config_schema(c, "b");
  ck_assert_str_eq(a->mirror_node, "s");
  ck_assert_str_eq(a->mirror_table, "a_c");
  ck_assert_ptr_null(b->mirror_node); /* no configuration block: b is not mirrored */
  as_config_free(c);
  /* the configuration's block for every mapping; a mapping's own block wins where it speaks */
  snprintf(cfg, sizeof cfg, "%sconflicts: { node: p, table: all_c }\n", nodes);
  load_with_a(cfg, "mapping: a\nkey: id\ncolumns: { id: text }\nconflicts: { node: s }\n", NULL, &c);
  a = as_config_schema(c, "a");
  b = as_config_schema(c, "b");
  ck_assert_str_eq(a->mirror_node, "s");
  ck_assert_str_eq(a->mirror_table, "all_c");
  ck_assert_str_eq(b->mirror_node, "p");
  ck_assert_str_eq(b->mirror_table, "all_c");
  as_config_free(c);
  /* a configuration block without a node: the first SQL node */
  snprintf(cfg, sizeof cfg, "%sconflicts: { table: all_c }\n", nodes);
  load_with_a(cfg, plain, NULL, &c);
  ck_assert_str_eq(c->mirror_node, "s");
  ck_assert_str_eq(as_config_schema(c, "b")->mirror_node, "s");
  as_config_free(c);
  /* errors name the mapping file and the block */
  load_with_a(nodes, "mapping: a\nkey: id\ncolumns: { id: text }\nconflicts: { node: m }\n",
              "@/maps/a.yaml:4:12: option conflicts.node: mapping \"a\": \"m\" is a mongodb node; "
              "the conflicts table needs a SQL node (postgres or sqlite)", &c);
  load_with_a(nodes, "mapping: a\nkey: id\ncolumns: { id: text }\nconflicts: { node: q }\n",
              "@/maps/a.yaml:4:12: option conflicts.node: mapping \"a\": \"q\" is not a node of "
              "this configuration", &c);
  load_with_a(nodes, "mapping: a\nkey: id\ncolumns: { id: text }\nconflicts: { table: b }\n",
              "@/maps/a.yaml:4:12: mapping \"a\": its conflicts table \"b\" is a table of mapping "
              "\"b\"; name another (conflicts: { table: ... })", &c);
  load_with_a(nodes, "mapping: a\nkey: id\ncolumns: { id: text }\nconflicts: { tabel: x }\n",
              "@/maps/a.yaml:4:14: unknown key \"tabel\" in conflicts (allowed: node, table)", &c);
}
END_TEST

START_TEST(same_table_in_two_mappings) {
  char *dir = write_tree("nodes:\n  m: { kind: mongodb, uri: u, database: d }\n"
                         "  s: { kind: sqlite, path: x }\nmappings: 'maps/*.yaml'\n");
  char maps[4200];
  snprintf(maps, sizeof maps, "%s/maps", dir);
  free(as_test_write_file(maps, "c.yaml", "mapping: c\ncollection: c\ntable: b\nkey: id\n"
                                          "columns: { id: text }\n"));
  char path[4096], expected[8192];
  snprintf(path, sizeof path, "%s/c.yaml", dir);
  expand("@/maps/c.yaml:1:1: table \"b\" of mapping \"c\" is already used by mapping \"b\" "
         "(@/maps/b.yaml)", dir, expected, sizeof expected);
  as_error err = {0};
  as_config *c = NULL;
  ck_assert_int_eq(as_config_load(path, &c, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, expected);
  as_test_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(cmd_check_output) {
  clear_example_env();
  char *path = as_test_src_path("mappings/examples/arraysync.yaml");
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  as_error err = {0};
  ck_assert_msg(as_cmd_check(path, out, &err) == AS_OK, "%s", err.message);
  fclose(out);
  char head[4096];
  snprintf(head, sizeof head, "-- config %s: 2 nodes, 2 mappings, topology peer-to-peer\n"
           "-- mapping orders (mappings/orders.yaml): PostgreSQL\n"
           "CREATE TABLE IF NOT EXISTS \"orders\" (\n", path);
  ck_assert_msg(strncmp(buf, head, strlen(head)) == 0, "%s", buf);
  const char *order[] = {"-- mapping orders (mappings/orders.yaml): SQLite\n",
                         "-- mapping users (mappings/users.yaml): PostgreSQL\n",
                         "-- mapping users (mappings/users.yaml): SQLite\n",
                         "-- node mongo (mongodb): orders -> collection orders (both), users "
                         "-> collection users (both)\n"
                         "-- node lite (sqlite): orders -> table orders (both), users -> table "
                         "users (both)\n"};
  const char *at = buf;
  for (size_t i = 0; i < 4; i++) {
    const char *f = strstr(at, order[i]);
    ck_assert_msg(f != NULL, "missing %s in\n%s", order[i], buf);
    at = f + strlen(order[i]);
  }
  ck_assert_str_eq(at, ""); /* node lines end the output */
  size_t creates = 0;
  for (const char *p = buf; (p = strstr(p, "CREATE TABLE")); p++) creates++;
  ck_assert_uint_eq(creates, 4);
  free(buf);
  free(path);

  path = as_test_src_path("tests/unit/bad_configs/config/one_node.yaml");
  out = open_memstream(&buf, &len);
  ck_assert_int_eq(as_cmd_check(path, out, &err), AS_EINVAL);
  fclose(out);
  ck_assert_uint_eq(len, 0);
  ck_assert_ptr_nonnull(strstr(err.message, "at least two nodes are needed"));
  free(buf);
  free(path);
}
END_TEST

int main(void) {
  Suite *su = suite_create("config");
  TCase *tc = tcase_create("config");
  tcase_add_loop_test(tc, bad_config_files, 0, (int)(sizeof bad / sizeof bad[0]));
  tcase_add_test(tc, required_option_missing);
  tcase_add_test(tc, example_sqlite);
  tcase_add_test(tc, example_postgres_with_env);
  tcase_add_test(tc, topologies_and_options);
  tcase_add_test(tc, relative_paths_as_given);
  tcase_add_test(tc, more_config_errors);
  tcase_add_test(tc, same_table_in_two_mappings);
  tcase_add_test(tc, conflicts_tables);
  tcase_add_test(tc, cmd_check_output);
  suite_add_tcase(su, tc);
  return as_test_run(su);
}
