/* it_mongodb.c — integration tests of the MongoDB adapter (adapters/mongodb/) against a server
 * reached ONLY through ARRAYSYNC_TEST_MONGODB_URI (the Python test server or a real replica
 * set). Optional: ARRAYSYNC_TEST_MONGODB_URI_SMALL_HISTORY, a second server keeping very little
 * change history (the test server's --history 20), for the error-286 tests.
 * Prints "N passed, N failed"; exits nonzero on failure. Usage: it_mongodb [test-name...] */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <mongoc/mongoc.h>

#include "adapter.h"
#include "as_bson.h"
#include "as_log.h"
#include "as_schema.h"

#ifdef __SANITIZE_ADDRESS__
/* ASan keeps freed memory in a 256 MB quarantine by default, which would hide (or fake) the
 * bounded-memory result of the 200k snapshot; keep it small. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "quarantine_size_mb=4"; }
#endif

static int npass, nfail;
static bool cur_failed;
static const char *uri;
static char dbname[64];
static mongoc_client_t *cli; /* independent client for outside writes and checks */

#define CHECK(cond, ...)                                                 \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
      fprintf(stderr, __VA_ARGS__);                                      \
      fprintf(stderr, "\n");                                             \
      cur_failed = true;                                                 \
      goto out;                                                          \
    }                                                                    \
  } while (0)

/* ------------------------------------------------------------------ fixtures */

static const char *users_yaml =
    "mapping: users\n"
    "collection: users\n"
    "key: id\n"
    "columns:\n"
    "  id: { field: _id, type: text }\n"
    "  email: { field: email, type: text }\n"
    "  age: { field: age, type: int64 }\n"
    "  balance: { field: account.balance, type: int64 }\n"
    "  tags: { field: tags, type: jsonb }\n"
    "  extra: { field: \"*\", type: jsonb }\n";

static const char *items_yaml =
    "mapping: items\n"
    "collection: items\n"
    "key: id\n"
    "columns:\n"
    "  id: { field: _id, type: int64 }\n"
    "  name: { field: name, type: text }\n"
    "  qty: { field: qty, type: int64 }\n";

static const char *dropme_yaml =
    "mapping: dropme\n"
    "collection: dropme\n"
    "key: id\n"
    "columns:\n"
    "  id: { field: _id, type: int64 }\n"
    "  v: { field: v, type: int64 }\n";

static as_schema *users, *items, *dropme;
static const as_schema *all_schemas[3];

static as_node *make_node(const char *name, const char *u, const char *extra_key,
                          const char *extra_val, const as_schema *const *schemas, size_t ns) {
  as_node_option opts[4] = {
      {.key = "uri", .value = (char *)u},
      {.key = "database", .value = dbname},
      {.key = "max_await_ms", .value = "100"},
      {.key = (char *)extra_key, .value = (char *)extra_val},
  };
  as_node_config cfg = {.name = (char *)name, .kind = "mongodb", .opts = opts,
                        .nopts = extra_key ? 4 : 3};
  as_node *n = NULL;
  as_error err = {0};
  if (as_adapter_mongodb.init(&cfg, schemas, ns, &n, &err) != AS_OK) {
    fprintf(stderr, "  init: %s\n", err.message);
    return NULL;
  }
  if (as_adapter_mongodb.connect(n, &err) != AS_OK ||
      as_adapter_mongodb.install(n, &err) != AS_OK) {
    fprintf(stderr, "  connect/install: %s\n", err.message);
    as_adapter_mongodb.exit(n);
    return NULL;
  }
  return n;
}

static bool run_cmd(const char *db, const char *json, bson_t *reply_out) {
  bson_error_t be;
  bson_t *cmd = bson_new_from_json((const uint8_t *)json, -1, &be);
  bson_t reply;
  if (!cmd) {
    fprintf(stderr, "  bad json %s: %s\n", json, be.message);
    return false;
  }
  bool ok = mongoc_client_command_simple(cli, db, cmd, NULL, &reply, &be);
  if (!ok) fprintf(stderr, "  command %s: %s\n", json, be.message);
  if (reply_out) bson_copy_to(&reply, reply_out);
  bson_destroy(&reply);
  bson_destroy(cmd);
  return ok;
}

/* Runs a command in the test database, printf-style JSON. */
static bool dbcmd(const char *fmt, ...) {
  char buf[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return run_cmd(dbname, buf, NULL);
}

static bool insert_json(const char *coll, const char *json) {
  return dbcmd("{\"insert\": \"%s\", \"documents\": [%s]}", coll, json);
}

static bson_t *find_one(const char *coll, const char *filter_json) {
  bson_error_t be;
  bson_t *f = bson_new_from_json((const uint8_t *)filter_json, -1, &be);
  mongoc_collection_t *c = mongoc_client_get_collection(cli, dbname, coll);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, f, NULL, NULL);
  const bson_t *doc;
  bson_t *out = NULL;
  if (mongoc_cursor_next(cur, &doc)) out = bson_copy(doc);
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(c);
  bson_destroy(f);
  return out;
}

/* Polls until `want` deltas arrived (or about 5 s of no progress). */
static int poll_n(as_stream *s, as_batch *b, size_t want, as_error *err) {
  int idle = 0;
  while (b->n + b->ndead < want && idle < 50) {
    size_t before = b->n + b->ndead;
    int rc = as_adapter_mongodb.poll(s, b, 1000, 100, err);
    if (rc != AS_OK) return rc;
    idle = b->n + b->ndead == before ? idle + 1 : 0;
  }
  return AS_OK;
}

/* Polls until a poll returns nothing (after at least one quiet poll). */
static int poll_drain(as_stream *s, as_batch *b, as_error *err) {
  for (int quiet = 0; quiet < 2;) {
    size_t before = b->n + b->ndead;
    int rc = as_adapter_mongodb.poll(s, b, 1000, 100, err);
    if (rc != AS_OK) return rc;
    quiet = b->n + b->ndead == before ? quiet + 1 : 0;
  }
  return AS_OK;
}

static char *val_text(const as_delta *d, const char *col) {
  int i = as_schema_column_index(d->schema, col);
  if (i < 0 || !as_row_has(&d->row, (size_t)i)) return strdup("<absent>");
  json_t *j = as_value_to_json(&d->row.v[i], NULL);
  char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("<err>");
  json_decref(j);
  return s;
}

static bool val_is(const as_delta *d, const char *col, const char *want) {
  char *t = val_text(d, col);
  bool ok = strcmp(t, want) == 0;
  if (!ok) fprintf(stderr, "  column %s = %s, want %s\n", col, t, want);
  free(t);
  return ok;
}

static size_t nset(const as_delta *d) {
  size_t k = 0;
  for (size_t i = 0; i < d->row.n; i++) k += d->row.set[i] ? 1 : 0;
  return k;
}

static void make_delta(as_delta *d, const as_schema *s, as_op op, const char *origin,
                       const char *json_cols) {
  as_delta_init(d, s, op);
  as_delta_set_origin(d, origin);
  json_error_t je;
  json_t *o = json_loads(json_cols, 0, &je);
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    int i = as_schema_column_index(s, k);
    as_value x = AS_VALUE_NULL;
    if (i < 0 || as_value_from_json_typed(v, s->cols[i].type, &x, NULL) != AS_OK) {
      fprintf(stderr, "  bad test delta column %s\n", k);
      continue;
    }
    as_row_put(&d->row, (size_t)i, &x);
  }
  json_decref(o);
  d->ts_us = 1;
  d->hlc = AS_HLC_FROM_US(1);
}

static int apply_batch(as_node *n, as_delta *d, size_t nd, as_dead_list *dead,
                       const char *stream, const char *cp, as_error *err) {
  int rc;
  if ((rc = as_adapter_mongodb.begin(n, err)) != AS_OK) return rc;
  if ((rc = as_adapter_mongodb.apply(n, d, nd, dead, err)) != AS_OK) {
    as_adapter_mongodb.rollback(n);
    return rc;
  }
  rc = as_adapter_mongodb.commit(n, stream, cp, err);
  if (rc != AS_OK) as_adapter_mongodb.rollback(n);
  return rc;
}

/* ------------------------------------------------------------------ tests */

static void t_install(void) {
  as_error err = {0};
  as_node *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  CHECK(as_adapter_mongodb.install(n, &err) == AS_OK, "second install: %s", err.message);
  bson_error_t be;
  mongoc_database_t *db = mongoc_client_get_database(cli, dbname);
  char **names = mongoc_database_get_collection_names_with_opts(db, NULL, &be);
  mongoc_database_destroy(db);
  CHECK(names, "listCollections: %s", be.message);
  int found = 0;
  for (size_t i = 0; names[i]; i++) {
    if (!strcmp(names[i], "users") || !strcmp(names[i], "items") ||
        !strcmp(names[i], "__arraysync_checkpoints") || !strcmp(names[i], "__arraysync_marks"))
      found++;
  }
  bson_strfreev(names);
  CHECK(found == 4, "found %d of 4 collections", found);
  /* uninstall drops the bookkeeping only; install brings it back */
  CHECK(insert_json("items", "{\"_id\": -1, \"name\": \"keep\"}"), "user data");
  CHECK(as_adapter_mongodb.uninstall(n, &err) == AS_OK, "uninstall: %s", err.message);
  {
    mongoc_database_t *d2 = mongoc_client_get_database(cli, dbname);
    char **nm = mongoc_database_get_collection_names_with_opts(d2, NULL, &be);
    mongoc_database_destroy(d2);
    int book = 0, data = 0;
    for (size_t i = 0; nm && nm[i]; i++) {
      if (!strncmp(nm[i], "__arraysync_", 12)) book++;
      if (!strcmp(nm[i], "items")) data++;
    }
    bson_strfreev(nm);
    CHECK(book == 0 && data == 1, "after uninstall: %d bookkeeping, %d data", book, data);
  }
  CHECK(dbcmd("{\"delete\": \"items\", \"deletes\": [{\"q\": {\"_id\": -1}, \"limit\": 1}]}"),
        "cleanup");
  CHECK(as_adapter_mongodb.install(n, &err) == AS_OK, "re-install: %s", err.message);
  /* bad configuration fails before connecting, naming the key */
  {
    as_node_option o[2] = {{.key = "uri", .value = "mongodb://u:s3cret@127.0.0.1:1/"},
                           {.key = "full_document", .value = "sometimes"}};
    as_node_config cfg = {.name = "bad", .kind = "mongodb", .opts = o, .nopts = 2};
    as_node *b = NULL;
    CHECK(as_adapter_mongodb.init(&cfg, NULL, 0, &b, &err) == AS_EINVAL, "missing database");
    CHECK(strstr(err.message, "database") && !strstr(err.message, "s3cret"), "%s", err.message);
  }
out:
  as_adapter_mongodb.exit(n);
}

static void t_ops(void) {
  as_error err = {0};
  as_batch b = {0};
  as_stream *s = NULL;
  as_node *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s, &err) == AS_OK, "%s", err.message);
  CHECK(insert_json("users", "{\"_id\": \"o1\", \"email\": \"a@x\", \"age\": 30, \"account\": "
                             "{\"balance\": 5}, \"tags\": [1, 2], \"nick\": \"al\"}"), "insert");
  CHECK(dbcmd("{\"update\": \"users\", \"updates\": [{\"q\": {\"_id\": \"o1\"}, \"u\": {\"$set\": "
              "{\"email\": \"b@x\"}}}]}"), "update");
  CHECK(dbcmd("{\"update\": \"users\", \"updates\": [{\"q\": {\"_id\": \"o1\"}, \"u\": {\"email\": "
              "\"c@x\", \"age\": 31}}]}"), "replace");
  CHECK(dbcmd("{\"delete\": \"users\", \"deletes\": [{\"q\": {\"_id\": \"o1\"}, \"limit\": 1}]}"),
        "delete");
  CHECK(poll_n(s, &b, 4, &err) == AS_OK, "poll: %s", err.message);
  CHECK(b.n == 4 && b.ndead == 0, "got %zu deltas %zu dead", b.n, b.ndead);
  as_delta *d = b.d;
  CHECK(d[0].op == AS_OP_INSERT && d[1].op == AS_OP_UPDATE && d[2].op == AS_OP_INSERT &&
            d[3].op == AS_OP_DELETE, "ops %d %d %d %d", d[0].op, d[1].op, d[2].op, d[3].op);
  CHECK(val_is(&d[0], "id", "\"o1\"") && val_is(&d[0], "email", "\"a@x\"") &&
            val_is(&d[0], "age", "30") && val_is(&d[0], "balance", "5"), "insert values");
  CHECK(val_is(&d[0], "extra", "{\"$json\":{\"nick\":\"al\"}}"), "catch-all");
  CHECK(nset(&d[1]) == 2 && val_is(&d[1], "email", "\"b@x\""), "update has %zu cols", nset(&d[1]));
  CHECK(val_is(&d[2], "email", "\"c@x\"") && val_is(&d[2], "balance", "null"), "replace");
  CHECK(nset(&d[3]) == 1 && val_is(&d[3], "id", "\"o1\""), "delete key");
  for (size_t i = 0; i < 4; i++) {
    CHECK(!d[i].echo && d[i].origin && strcmp(d[i].origin, "mongo") == 0, "origin %s",
          d[i].origin ? d[i].origin : "(null)");
    CHECK(d[i].ts_us > 1000000000000000LL && d[i].hlc == AS_HLC_FROM_US(d[i].ts_us), "ts");
    CHECK(d[i].pos && *d[i].pos, "pos");
  }
  CHECK(b.pos && strcmp(b.pos, d[0].pos) != 0, "batch pos");
out:
  as_batch_clear(&b);
  as_adapter_mongodb.close_stream(s);
  as_adapter_mongodb.exit(n);
}

static void t_update_paths(void) {
  as_error err = {0};
  as_batch b = {0};
  as_stream *s = NULL;
  as_node *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  CHECK(insert_json("users", "{\"_id\": \"p1\", \"email\": \"a@x\", \"account\": {\"balance\": 1},"
                             " \"tags\": [1, 2, 3], \"other\": {\"x\": 1}}"), "insert");
  CHECK(insert_json("items", "{\"_id\": 1, \"name\": \"n1\", \"qty\": 1}"), "insert item");
  CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s, &err) == AS_OK, "%s", err.message);
#define UPD(coll, u) \
  dbcmd("{\"update\": \"%s\", \"updates\": [{\"q\": {\"_id\": %s}, \"u\": %s}]}", coll, \
        strcmp(coll, "items") ? "\"p1\"" : "1", u)
  CHECK(UPD("users", "{\"$set\": {\"tags.1\": 5}}"), "array index");
  CHECK(UPD("users", "{\"$set\": {\"account.balance\": 7}}"), "nested");
  CHECK(UPD("users", "{\"$set\": {\"other.x\": 2}}"), "unmapped nested");
  CHECK(UPD("users", "{\"$unset\": {\"email\": \"\"}}"), "unset");
  CHECK(UPD("items", "{\"$set\": {\"color\": \"red\"}}"), "unmapped only, no catch-all");
  CHECK(UPD("items", "{\"$set\": {\"qty\": 2}}"), "qty");
  CHECK(poll_drain(s, &b, &err) == AS_OK, "poll: %s", err.message);
  CHECK(b.n == 5, "got %zu deltas (want 5: the unmapped-only item update gives none)", b.n);
  as_delta *d = b.d;
  CHECK(nset(&d[0]) == 2 && val_is(&d[0], "tags", "{\"$json\":[1,5,3]}"), "tags: %zu", nset(&d[0]));
  CHECK(nset(&d[1]) == 2 && val_is(&d[1], "balance", "7"), "balance");
  CHECK(nset(&d[2]) == 2 && val_is(&d[2], "extra", "{\"$json\":{\"other\":{\"x\":2}}}"),
        "catch-all only");
  CHECK(nset(&d[3]) == 2 && val_is(&d[3], "email", "null"), "unset -> NULL");
  CHECK(d[4].schema == items && nset(&d[4]) == 2 && val_is(&d[4], "qty", "2"), "items qty");
out:
  as_batch_clear(&b);
  as_adapter_mongodb.close_stream(s);
  as_adapter_mongodb.exit(n);
}

/* Applies a delta to a model: object key-json -> object of column -> value JSON. */
static void model_apply(json_t *model, const as_delta *d) {
  char *k = NULL;
  json_t *kj = json_object();
  int ki = (int)d->schema->key_idx[0];
  json_object_set_new(kj, "k", as_value_to_json(&d->row.v[ki], NULL));
  k = json_dumps(kj, JSON_COMPACT);
  json_decref(kj);
  if (d->op == AS_OP_DELETE) {
    json_object_del(model, k);
  } else {
    json_t *row = json_object_get(model, k);
    if (!row || d->op == AS_OP_INSERT) {
      row = json_object();
      json_object_set_new(model, k, row);
    }
    for (size_t i = 0; i < d->row.n; i++)
      if (d->row.set[i])
        json_object_set_new(row, d->schema->cols[i].name, as_value_to_json(&d->row.v[i], NULL));
  }
  free(k);
}

static void t_snapshot_handoff(void) {
  as_error err = {0};
  as_batch b = {0};
  as_stream *s = NULL;
  as_snapshot *sn = NULL;
  char *pos = NULL;
  json_t *model = json_object(), *truth = json_object();
  /* small cursor batches so that the writes below interleave with the copy on the server */
  as_node *n = make_node("mongo", uri, "batch_size", "50", all_schemas, 3);
  CHECK(n, "node");
  CHECK(dbcmd("{\"delete\": \"items\", \"deletes\": [{\"q\": {}, \"limit\": 0}]}"), "clear");
  {
    char buf[64];
    as_buf docs = AS_BUF_INIT;
    as_buf_append_str(&docs, "{\"insert\": \"items\", \"documents\": [");
    for (int i = 0; i < 500; i++) {
      snprintf(buf, sizeof buf, "%s{\"_id\": %d, \"name\": \"n%d\", \"qty\": %d}", i ? "," : "",
               i * 2, i, i);
      as_buf_append_str(&docs, buf);
    }
    as_buf_append_str(&docs, "]}");
    bool ok = run_cmd(dbname, as_buf_cstr(&docs), NULL);
    as_buf_free(&docs);
    CHECK(ok, "bulk insert");
  }
  /* DESIGN §5: open the stream first, record its position, copy, then stream from there */
  CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s, &err) == AS_OK, "%s", err.message);
  CHECK(as_adapter_mongodb.stream_position(s, &pos, &err) == AS_OK, "%s", err.message);
  as_adapter_mongodb.close_stream(s);
  s = NULL;
  CHECK(as_adapter_mongodb.snapshot_open(n, items, NULL, &sn, &err) == AS_OK, "%s", err.message);
  CHECK(as_adapter_mongodb.snapshot_estimate(sn) == 500, "estimate %lld",
        (long long)as_adapter_mongodb.snapshot_estimate(sn));
  int rc, batches = 0;
  int64_t last = -1;
  do {
    as_batch_reset(&b);
    rc = as_adapter_mongodb.snapshot_next(sn, &b, 100, &err);
    CHECK(rc == AS_OK || rc == AS_EOF, "snapshot_next: %s", err.message);
    for (size_t i = 0; i < b.n; i++) {
      CHECK(b.d[i].op == AS_OP_INSERT && b.d[i].row.v[0].u.i > last, "key order");
      last = b.d[i].row.v[0].u.i;
      model_apply(model, &b.d[i]);
    }
    if (batches++ == 1) {
      /* writes during the snapshot: on both sides of the copy cursor */
      CHECK(dbcmd("{\"update\": \"items\", \"updates\": [{\"q\": {\"_id\": 2}, \"u\": {\"$set\": "
                  "{\"qty\": 1002}}}, {\"q\": {\"_id\": 900}, \"u\": {\"$set\": {\"qty\": 1900}}}]}"),
            "upd");
      CHECK(insert_json("items", "{\"_id\": 1, \"name\": \"odd\", \"qty\": 1}, "
                                 "{\"_id\": 2001, \"name\": \"late\", \"qty\": 7}"), "ins");
      CHECK(dbcmd("{\"delete\": \"items\", \"deletes\": [{\"q\": {\"_id\": 4}, \"limit\": 1}, "
                  "{\"q\": {\"_id\": 800}, \"limit\": 1}]}"), "del");
    }
  } while (rc != AS_EOF);
  as_batch_reset(&b);
  /* resume the snapshot after a key (the engine's after_key) */
  {
    as_snapshot *sn2 = NULL;
    CHECK(as_adapter_mongodb.snapshot_open(n, items, "{\"id\":996}", &sn2, &err) == AS_OK, "%s",
          err.message);
    rc = as_adapter_mongodb.snapshot_next(sn2, &b, 100, &err);
    as_adapter_mongodb.snapshot_close(sn2);
    CHECK(rc == AS_EOF && b.n == 2 && b.d[0].row.v[0].u.i == 998 && b.d[1].row.v[0].u.i == 2001,
          "after_key resume: rc %d n %zu", rc, b.n);
    as_batch_reset(&b);
  }
  CHECK(as_adapter_mongodb.open_stream(n, "pg", pos, &s, &err) == AS_OK, "%s", err.message);
  CHECK(poll_drain(s, &b, &err) == AS_OK, "poll: %s", err.message);
  CHECK(b.n >= 6, "stream deltas %zu", b.n);
  for (size_t i = 0; i < b.n; i++)
    if (b.d[i].schema == items) model_apply(model, &b.d[i]);
  /* the truth: every document now in the collection */
  {
    mongoc_collection_t *c = mongoc_client_get_collection(cli, dbname, "items");
    bson_t f = BSON_INITIALIZER;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &f, NULL, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc)) {
      as_delta d;
      as_delta_init(&d, items, AS_OP_INSERT);
      if (as_doc_to_row(items, doc, &d.row, &err) == AS_OK) model_apply(truth, &d);
      as_delta_clear(&d);
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
  }
  CHECK(json_object_size(truth) == 500 - 2 + 2, "truth has %zu", json_object_size(truth));
  CHECK(json_equal(model, truth), "snapshot + stream differ from the collection (%zu vs %zu rows)",
        json_object_size(model), json_object_size(truth));
out:
  json_decref(model);
  json_decref(truth);
  free(pos);
  as_batch_clear(&b);
  as_adapter_mongodb.snapshot_close(sn);
  as_adapter_mongodb.close_stream(s);
  as_adapter_mongodb.exit(n);
}

static void t_resume(void) {
  as_error err = {0};
  as_batch b = {0};
  as_stream *s = NULL;
  char *cp = NULL;
  as_node *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s, &err) == AS_OK, "%s", err.message);
  CHECK(insert_json("items", "{\"_id\": 5001, \"name\": \"r1\", \"qty\": 1}"), "insert");
  CHECK(poll_n(s, &b, 1, &err) == AS_OK && b.n == 1, "first event");
  /* the connection drops on the next getMore */
  CHECK(run_cmd("admin", "{\"configureFailPoint\": \"failCommand\", \"mode\": {\"times\": 1}, "
                         "\"data\": {\"failCommands\": [\"getMore\"], \"closeConnection\": true}}",
                NULL), "failpoint");
  CHECK(insert_json("items", "{\"_id\": 5002, \"name\": \"r2\", \"qty\": 2}"), "insert 2");
  {
    int tries = 0, rc;
    while (b.n < 2 && tries++ < 50) {
      rc = as_adapter_mongodb.poll(s, &b, 1000, 100, &err);
      if (rc == AS_RETRY) { /* what the engine does: reopen at the last position */
        as_adapter_mongodb.close_stream(s);
        s = NULL;
        CHECK(as_adapter_mongodb.open_stream(n, "pg", b.pos, &s, &err) == AS_OK, "%s",
              err.message);
      } else {
        CHECK(rc == AS_OK, "poll after closeConnection: %d %s", rc, err.message);
      }
    }
  }
  CHECK(b.n == 2 && b.d[1].row.v[0].u.i == 5002, "resumed: %zu deltas", b.n);
  /* a committed checkpoint, then a restart from it */
  CHECK(apply_batch(n, NULL, 0, NULL, "mongo->pg", b.pos, &err) == AS_OK, "commit: %s",
        err.message);
  as_adapter_mongodb.close_stream(s);
  s = NULL;
  CHECK(insert_json("items", "{\"_id\": 5003, \"name\": \"r3\", \"qty\": 3}"), "insert 3");
  CHECK(as_adapter_mongodb.checkpoint_load(n, "mongo->pg", &cp, &err) == AS_OK, "%s", err.message);
  CHECK(strcmp(cp, b.pos) == 0, "checkpoint %s vs %s", cp, b.pos);
  {
    char *none = NULL;
    CHECK(as_adapter_mongodb.checkpoint_load(n, "nobody", &none, &err) == AS_ENOTFOUND, "missing");
  }
  as_batch_reset(&b);
  CHECK(as_adapter_mongodb.open_stream(n, "pg", cp, &s, &err) == AS_OK, "%s", err.message);
  CHECK(poll_drain(s, &b, &err) == AS_OK, "poll: %s", err.message);
  CHECK(b.n == 1 && b.d[0].row.v[0].u.i == 5003, "after restart: %zu deltas", b.n);
  /* idle: the position still advances to the post-batch resume token */
  {
    char *p1 = strdup(b.pos);
    CHECK(insert_json("users", "{\"_id\": \"idle-other\"}") &&
              dbcmd("{\"insert\": \"unmapped_coll\", \"documents\": [{\"x\": 1}]}"), "writes");
    as_batch_reset(&b);
    CHECK(poll_drain(s, &b, &err) == AS_OK, "poll");
    as_batch_reset(&b);
    CHECK(dbcmd("{\"insert\": \"unmapped_coll\", \"documents\": [{\"x\": 2}]}"), "write");
    CHECK(poll_drain(s, &b, &err) == AS_OK && b.n == 0, "unmapped gives %zu", b.n);
    CHECK(b.pos && strcmp(b.pos, p1) != 0, "position did not advance");
    free(p1);
  }
out:
  free(cp);
  as_batch_clear(&b);
  as_adapter_mongodb.close_stream(s);
  as_adapter_mongodb.exit(n);
}

static void t_history_lost(void) {
  const char *small = getenv("ARRAYSYNC_TEST_MONGODB_URI_SMALL_HISTORY");
  as_error err = {0};
  as_stream *s = NULL;
  char *pos = NULL;
  as_node *n = NULL, *n2 = NULL;
  if (!small) {
    printf("  (skipped: ARRAYSYNC_TEST_MONGODB_URI_SMALL_HISTORY unset)\n");
    return;
  }
  const char *saved = uri;
  uri = small;
  mongoc_client_t *saved_cli = cli;
  cli = mongoc_client_new(small);
  n = make_node("mongo", small, NULL, NULL, all_schemas, 3);
  n2 = make_node("mongo", small, "on_history_lost", "resnapshot", all_schemas, 3);
  CHECK(n && n2, "nodes");
  CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s, &err) == AS_OK, "%s", err.message);
  CHECK(as_adapter_mongodb.stream_position(s, &pos, &err) == AS_OK, "pos");
  as_adapter_mongodb.close_stream(s);
  s = NULL;
  for (int i = 0; i < 60; i++) CHECK(insert_json("items", "{\"name\": \"h\"}"), "insert");
  int rc = as_adapter_mongodb.open_stream(n, "pg", pos, &s, &err);
  CHECK(rc == AS_ERR && err.code == 286 && strstr(err.message, "286") &&
            strstr(err.message, "resnapshot"), "fail mode: rc %d %s", rc, err.message);
  rc = as_adapter_mongodb.open_stream(n2, "pg", pos, &s, &err);
  CHECK(rc == AS_ERESNAPSHOT, "resnapshot mode: rc %d %s", rc, err.message);
  {
    /* An open stream whose cursor falls behind the history: MongoDB fails the getMore with 286. */
    as_batch b = {0};
    CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s, &err) == AS_OK, "%s", err.message);
    for (int i = 0; i < 60; i++) CHECK(insert_json("items", "{\"name\": \"h\"}"), "insert");
    rc = poll_drain(s, &b, &err);
    printf("  lagging cursor: rc %d, %zu deltas, %zu dead\n", rc, b.n, b.ndead);
    as_batch_clear(&b);
    CHECK(rc == AS_ERR && err.code == 286, "lagging cursor: rc %d %s", rc, err.message);
  }
out:
  free(pos);
  as_adapter_mongodb.close_stream(s);
  as_adapter_mongodb.exit(n);
  as_adapter_mongodb.exit(n2);
  mongoc_client_destroy(cli);
  cli = saved_cli;
  uri = saved;
}

static void t_drop(void) {
  as_error err = {0};
  as_batch b = {0};
  as_stream *s = NULL, *s2 = NULL;
  as_node *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  as_node *n2 = make_node("mongo", uri, "on_history_lost", "resnapshot", all_schemas, 3);
  CHECK(n && n2, "node");
  CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s, &err) == AS_OK, "%s", err.message);
  CHECK(as_adapter_mongodb.open_stream(n2, "pg", NULL, &s2, &err) == AS_OK, "%s", err.message);
  CHECK(insert_json("dropme", "{\"_id\": 1, \"v\": 1}"), "insert");
  CHECK(dbcmd("{\"drop\": \"dropme\"}"), "drop");
  int rc = poll_drain(s, &b, &err);
  CHECK(rc == AS_ERR && strstr(err.message, "dropme") && strstr(err.message, "drop"),
        "rc %d: %s", rc, err.message);
  CHECK(b.n == 1 && b.d[0].op == AS_OP_INSERT, "the insert before the drop was delivered");
  rc = as_adapter_mongodb.poll(s, &b, 10, 10, &err);
  CHECK(rc == AS_ERR, "stays stopped: %d", rc);
  as_batch_reset(&b);
  rc = poll_drain(s2, &b, &err);
  CHECK(rc == AS_ERESNAPSHOT, "resnapshot mode: %d %s", rc, err.message);
  CHECK(as_adapter_mongodb.install(n, &err) == AS_OK, "re-create");
  /* dropDatabase: MongoDB first emits a drop for every collection */
  {
    char saved[64];
    as_stream *s3 = NULL;
    as_node *n3 = NULL;
    snprintf(saved, sizeof saved, "%s", dbname);
    snprintf(dbname, sizeof dbname, "%.50s_x", saved);
    n3 = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
    bool ok = n3 && as_adapter_mongodb.open_stream(n3, "pg", NULL, &s3, &err) == AS_OK &&
              insert_json("items", "{\"_id\": 1}") && dbcmd("{\"dropDatabase\": 1}");
    as_batch_reset(&b);
    rc = ok ? poll_drain(s3, &b, &err) : AS_OK;
    as_adapter_mongodb.close_stream(s3);
    as_adapter_mongodb.exit(n3);
    snprintf(dbname, sizeof dbname, "%s", saved);
    CHECK(ok, "dropDatabase setup");
    CHECK(rc == AS_ERR && strstr(err.message, "drop") && b.n == 1, "dropDatabase: rc %d n %zu %s",
          rc, b.n, err.message);
  }
out:
  as_batch_clear(&b);
  as_adapter_mongodb.close_stream(s);
  as_adapter_mongodb.close_stream(s2);
  as_adapter_mongodb.exit(n);
  as_adapter_mongodb.exit(n2);
}

static void t_sink_preserves(void) {
  as_error err = {0};
  as_delta d[3] = {0};
  as_dead_list dead = {0};
  bson_t *doc = NULL;
  bson_iter_t it;
  as_row row = {0};
  as_node *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  CHECK(insert_json("items", "{\"_id\": 7001, \"name\": \"keep\", \"qty\": 1, \"secret\": \"s\", "
                             "\"sub\": {\"a\": 1}}"), "insert");
  CHECK(insert_json("users", "{\"_id\": \"k1\", \"email\": \"e\", \"account\": {\"balance\": 1, "
                             "\"currency\": \"EUR\"}, \"nick\": \"n\"}"), "insert");
  make_delta(&d[0], items, AS_OP_UPDATE, "pg", "{\"id\": 7001, \"qty\": 9}");
  make_delta(&d[1], users, AS_OP_UPDATE, "pg", "{\"id\": \"k1\", \"balance\": 2}");
  make_delta(&d[2], items, AS_OP_INSERT, "pg", "{\"id\": 7001, \"name\": \"keep2\", \"qty\": 10}");
  CHECK(apply_batch(n, d, 2, &dead, "pg->mongo", "cp", &err) == AS_OK, "%s", err.message);
  CHECK(dead.n == 0, "dead %zu", dead.n);
  doc = find_one("items", "{\"_id\": 7001}");
  CHECK(doc && bson_iter_init_find(&it, doc, "secret") && bson_iter_init_find(&it, doc, "sub"),
        "unmapped item fields kept");
  CHECK(bson_iter_init_find(&it, doc, "qty") && bson_iter_as_int64(&it) == 9, "qty");
  bson_destroy(doc);
  doc = find_one("users", "{\"_id\": \"k1\"}");
  CHECK(doc && bson_iter_init_find(&it, doc, "nick"), "catch-all field kept");
  CHECK(bson_iter_init_find(&it, doc, "account") && BSON_ITER_HOLDS_DOCUMENT(&it), "account");
  {
    bson_iter_t a;
    CHECK(bson_iter_init_find(&it, doc, "account") && bson_iter_recurse(&it, &a) &&
              bson_iter_find(&a, "currency"), "account.currency kept (only account.balance set)");
  }
  bson_destroy(doc);
  /* an insert delta on an existing document of a mapping without catch-all: upsert of the
   * column paths, unmapped fields kept */
  CHECK(apply_batch(n, &d[2], 1, &dead, "pg->mongo", "cp2", &err) == AS_OK, "%s", err.message);
  doc = find_one("items", "{\"_id\": 7001}");
  CHECK(doc && bson_iter_init_find(&it, doc, "secret"), "insert kept unmapped");
  CHECK(bson_iter_init_find(&it, doc, "name") && !strcmp(bson_iter_utf8(&it, NULL), "keep2"), "name");
  /* read_row */
  {
    as_row key = {0};
    as_row_init(&key, items->ncols);
    as_value v = AS_VALUE_NULL;
    as_value_set_int64(&v, 7001);
    as_row_put(&key, 0, &v);
    as_row_init(&row, items->ncols);
    int rc = as_adapter_mongodb.read_row(n, items, &key, &row, &err);
    CHECK(rc == AS_OK && row.v[2].u.i == 10, "read_row: %d %s", rc, err.message);
    as_value_set_int64(&v, 999999);
    as_row_put(&key, 0, &v);
    as_row_reset(&row);
    rc = as_adapter_mongodb.read_row(n, items, &key, &row, &err);
    as_row_clear(&key);
    CHECK(rc == AS_ENOTFOUND, "read_row missing: %d", rc);
  }
out:
  as_row_clear(&row);
  bson_destroy(doc);
  for (int i = 0; i < 3; i++) as_delta_clear(&d[i]);
  as_dead_list_clear(&dead);
  as_adapter_mongodb.exit(n);
}

static void t_echo(void) {
  as_error err = {0};
  as_batch b = {0};
  as_stream *s = NULL;
  as_stream *s_pg = NULL;
  as_delta d[3] = {0};
  as_dead_list dead = {0};
  as_node *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  CHECK(as_adapter_mongodb.open_stream(n, "reader", NULL, &s, &err) == AS_OK, "%s", err.message);
  CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s_pg, &err) == AS_OK, "%s", err.message);
  make_delta(&d[0], items, AS_OP_INSERT, "pg", "{\"id\": 8001, \"name\": \"e1\", \"qty\": 1}");
  make_delta(&d[1], items, AS_OP_UPDATE, "pg", "{\"id\": 8001, \"qty\": 2}");
  make_delta(&d[2], users, AS_OP_INSERT, "lite", "{\"id\": \"e3\", \"email\": \"x\"}");
  CHECK(apply_batch(n, d, 3, &dead, "pg->mongo", "cp-echo", &err) == AS_OK, "%s", err.message);
  CHECK(insert_json("items", "{\"_id\": 8002, \"name\": \"outside\", \"qty\": 1}"), "outside");
  CHECK(poll_n(s, &b, 4, &err) == AS_OK && b.n == 4, "got %zu: %s", b.n, err.message);
  CHECK(b.d[0].echo && !strcmp(b.d[0].origin, "pg") && b.d[0].op == AS_OP_INSERT, "echo pg 0");
  CHECK(b.d[1].echo && !strcmp(b.d[1].origin, "pg") && b.d[1].op == AS_OP_UPDATE, "echo pg 1");
  CHECK(b.d[2].echo && !strcmp(b.d[2].origin, "lite"), "echo lite: %d %s", b.d[2].echo,
        b.d[2].origin);
  CHECK(b.d[0].txn && b.d[2].txn && !strcmp(b.d[0].txn, b.d[2].txn), "one source transaction");
  CHECK(!b.d[3].echo && !strcmp(b.d[3].origin, "mongo"), "outside write: echo %d origin %s",
        b.d[3].echo, b.d[3].origin);
  /* the stream of consumer "pg" leaves out what was written for pg's own changes */
  {
    as_batch bp = {0};
    int prc = poll_n(s_pg, &bp, 2, &err);
    bool ok = prc == AS_OK && bp.n == 2 && !strcmp(bp.d[0].origin, "lite") &&
              !strcmp(bp.d[1].origin, "mongo");
    size_t got = bp.n;
    as_batch_clear(&bp);
    as_adapter_mongodb.close_stream(s_pg);
    s_pg = NULL;
    CHECK(ok, "consumer pg: got %zu", got);
  }
  /* a stream reopened in the middle of the marked transaction still knows the origin */
  {
    as_stream *s2 = NULL;
    as_batch b2 = {0};
    CHECK(as_adapter_mongodb.open_stream(n, "reader", b.d[0].pos, &s2, &err) == AS_OK, "%s",
          err.message);
    CHECK(poll_n(s2, &b2, 3, &err) == AS_OK && b2.n == 3, "reopen got %zu", b2.n);
    bool ok = b2.d[0].echo && !strcmp(b2.d[0].origin, "pg") && !b2.d[2].echo;
    as_batch_clear(&b2);
    as_adapter_mongodb.close_stream(s2);
    CHECK(ok, "echo state restored from the position");
  }
out:
  if (s_pg) as_adapter_mongodb.close_stream(s_pg);
  for (int i = 0; i < 3; i++) as_delta_clear(&d[i]);
  as_dead_list_clear(&dead);
  as_batch_clear(&b);
  as_adapter_mongodb.close_stream(s);
  as_adapter_mongodb.exit(n);
}

static void t_dead_letters(void) {
  as_error err = {0};
  as_delta d[5] = {0};
  as_dead_list dead = {0};
  char *cp = NULL;
  as_node *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  CHECK(dbcmd("{\"createIndexes\": \"items\", \"indexes\": [{\"key\": {\"name\": 1}, \"name\": "
              "\"uniq_name\", \"unique\": true}]}"), "unique index");
  CHECK(insert_json("items", "{\"_id\": 9000, \"name\": \"taken\", \"qty\": 0}"), "insert");
  make_delta(&d[0], items, AS_OP_INSERT, "pg", "{\"id\": 9001, \"name\": \"g1\", \"qty\": 1}");
  make_delta(&d[1], items, AS_OP_INSERT, "pg", "{\"id\": 9002, \"name\": \"g2\", \"qty\": 2}");
  make_delta(&d[2], items, AS_OP_INSERT, "pg", "{\"id\": 9003, \"name\": \"taken\", \"qty\": 3}");
  make_delta(&d[3], items, AS_OP_INSERT, "pg", "{\"id\": 9004, \"name\": \"g4\", \"qty\": 4}");
  make_delta(&d[4], items, AS_OP_DELETE, "pg", "{\"id\": 9000}");
  CHECK(apply_batch(n, d, 5, &dead, "pg->mongo", "cp-dead", &err) == AS_OK, "%s", err.message);
  CHECK(dead.n == 1 && dead.items[0].index == 2, "dead %zu index %zu", dead.n,
        dead.n ? dead.items[0].index : 0);
  CHECK(strstr(dead.items[0].error, "11000") && strstr(dead.items[0].error, "items") &&
            dead.items[0].raw && dead.items[0].key, "%s", dead.items[0].error);
  for (int id = 9001; id <= 9004; id++) {
    char f[64];
    snprintf(f, sizeof f, "{\"_id\": %d}", id);
    bson_t *doc = find_one("items", f);
    bool there = doc != NULL;
    bson_destroy(doc);
    CHECK(there == (id != 9003), "document %d %s", id, there ? "present" : "missing");
  }
  {
    bson_t *doc = find_one("items", "{\"_id\": 9000}");
    bool there = doc != NULL;
    bson_destroy(doc);
    CHECK(!there, "the delete in the same batch applied");
  }
  CHECK(as_adapter_mongodb.checkpoint_load(n, "pg->mongo", &cp, &err) == AS_OK &&
            !strcmp(cp, "cp-dead"), "checkpoint committed with the batch");
  CHECK(dbcmd("{\"dropIndexes\": \"items\", \"index\": \"uniq_name\"}"), "drop index");
out:
  free(cp);
  for (int i = 0; i < 5; i++) as_delta_clear(&d[i]);
  as_dead_list_clear(&dead);
  as_adapter_mongodb.exit(n);
}

/* A document that cannot be mapped goes to batch->dead (raw relaxed JSON, error, key, pos); the
 * stream goes on. */
static void t_capture_dead(void) {
  as_error err = {0};
  as_batch b = {0};
  as_stream *s = NULL;
  as_node *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s, &err) == AS_OK, "%s", err.message);
  CHECK(insert_json("users", "{\"_id\": \"bad1\", \"age\": \"not a number\"}"), "insert bad");
  CHECK(insert_json("users", "{\"_id\": \"good1\", \"age\": 3}"), "insert good");
  CHECK(poll_n(s, &b, 2, &err) == AS_OK, "poll: %s", err.message);
  CHECK(b.ndead == 1 && b.n == 1, "dead %zu deltas %zu", b.ndead, b.n);
  CHECK(b.dead[0].schema == users && b.dead[0].raw && strstr(b.dead[0].raw, "not a number"),
        "raw %s", b.dead[0].raw ? b.dead[0].raw : "(null)");
  CHECK(b.dead[0].error && strstr(b.dead[0].error, "age"), "error %s", b.dead[0].error);
  CHECK(b.dead[0].key && strstr(b.dead[0].key, "bad1") && b.dead[0].pos, "key %s",
        b.dead[0].key ? b.dead[0].key : "(null)");
  CHECK(val_is(&b.d[0], "id", "\"good1\""), "the good one follows");
out:
  as_batch_clear(&b);
  as_adapter_mongodb.close_stream(s);
  as_adapter_mongodb.exit(n);
}

/* Transient failures of the sink: the engine rolls back and retries the batch (AS_RETRY). */
static void t_transient(void) {
  as_error err = {0};
  as_delta d[2] = {0};
  as_dead_list dead = {0};
  char *cp = NULL;
  bson_t *doc = NULL;
  bson_iter_t it;
  as_node *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  make_delta(&d[0], items, AS_OP_INSERT, "pg", "{\"id\": 9501, \"name\": \"t1\", \"qty\": 1}");
  make_delta(&d[1], items, AS_OP_UPDATE, "pg", "{\"id\": 9501, \"qty\": 2}");
  /* a WriteConflict at commit (TransientTransactionError) */
  CHECK(run_cmd("admin", "{\"configureFailPoint\": \"failCommand\", \"mode\": {\"times\": 1}, "
                         "\"data\": {\"failCommands\": [\"commitTransaction\"], \"errorCode\": 112, "
                         "\"errorLabels\": [\"TransientTransactionError\"]}}", NULL), "failpoint");
  int rc = apply_batch(n, d, 2, &dead, "pg->mongo", "cp-t1", &err);
  CHECK(rc == AS_RETRY, "commit conflict gives %d (%s)", rc, err.message);
  doc = find_one("items", "{\"_id\": 9501}");
  CHECK(doc == NULL, "nothing of the aborted batch is visible");
  CHECK(as_adapter_mongodb.checkpoint_load(n, "pg->mongo", &cp, &err) == AS_ENOTFOUND ||
            strcmp(cp, "cp-t1") != 0, "no checkpoint from the aborted batch");
  free(cp);
  cp = NULL;
  /* the connection drops during a write inside the transaction */
  CHECK(run_cmd("admin", "{\"configureFailPoint\": \"failCommand\", \"mode\": {\"times\": 1}, "
                         "\"data\": {\"failCommands\": [\"update\"], \"closeConnection\": true}}",
                NULL), "failpoint");
  rc = apply_batch(n, d, 2, &dead, "pg->mongo", "cp-t2", &err);
  CHECK(rc == AS_RETRY, "connection drop gives %d (%s)", rc, err.message);
  /* the engine retries: everything applies once */
  CHECK(apply_batch(n, d, 2, &dead, "pg->mongo", "cp-t3", &err) == AS_OK, "%s", err.message);
  CHECK(dead.n == 0, "dead %zu", dead.n);
  doc = find_one("items", "{\"_id\": 9501}");
  CHECK(doc && bson_iter_init_find(&it, doc, "qty") && bson_iter_as_int64(&it) == 2, "applied");
  CHECK(as_adapter_mongodb.checkpoint_load(n, "pg->mongo", &cp, &err) == AS_OK &&
            strcmp(cp, "cp-t3") == 0, "checkpoint %s", cp ? cp : "(none)");
out:
  bson_destroy(doc);
  free(cp);
  for (int i = 0; i < 2; i++) as_delta_clear(&d[i]);
  as_dead_list_clear(&dead);
  as_adapter_mongodb.exit(n);
}

static long vm_hwm_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) kb = atol(line + 6);
  if (f) fclose(f);
  return kb;
}

static void t_big_snapshot(void) {
  const int N = 200000;
  bson_t ignored;
  run_cmd(dbname, "{\"drop\": \"users\"}", &ignored); /* may not exist yet */
  bson_destroy(&ignored);
  {
    mongoc_collection_t *c = mongoc_client_get_collection(cli, dbname, "users");
    for (int base = 0; base < N; base += 5000) {
      mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(c, NULL);
      for (int i = base; i < base + 5000; i++) {
        char id[32], email[64];
        snprintf(id, sizeof id, "u%07d", i);
        snprintf(email, sizeof email, "user%d@example.com", i);
        bson_t *doc = BCON_NEW("_id", BCON_UTF8(id), "email", BCON_UTF8(email), "age",
                               BCON_INT32(i % 90), "account", "{", "balance", BCON_INT64(i), "}",
                               "tags", "[", BCON_UTF8("a"), BCON_UTF8("b"), "]", "note",
                               BCON_UTF8("some unmapped text that goes to the catch-all column"));
        mongoc_bulk_operation_insert(bulk, doc);
        bson_destroy(doc);
      }
      bson_error_t be;
      bool ok = mongoc_bulk_operation_execute(bulk, NULL, &be) != 0;
      mongoc_bulk_operation_destroy(bulk);
      if (!ok) {
        mongoc_collection_destroy(c);
        CHECK(false, "bulk insert: %s", be.message);
      }
    }
    mongoc_collection_destroy(c);
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    /* the child has its own client pool (libmongoc clients must not cross fork) */
    as_error err = {0};
    as_batch b = {0};
    as_snapshot *sn = NULL;
    as_node *cn = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
    long before = vm_hwm_kb();
    long count = 0;
    int rc = cn ? as_adapter_mongodb.snapshot_open(cn, users, NULL, &sn, &err) : AS_ERR;
    while (rc == AS_OK) {
      rc = as_adapter_mongodb.snapshot_next(sn, &b, 1000, &err);
      count += (long)b.n;
      as_batch_reset(&b);
    }
    as_adapter_mongodb.snapshot_close(sn);
    as_batch_clear(&b);
    as_adapter_mongodb.exit(cn);
    long after = vm_hwm_kb();
    printf("  200k snapshot: %ld rows, peak RSS (VmHWM) %ld kB before, %ld kB after (+%ld kB)\n",
           count, before, after, after - before);
    if (rc != AS_EOF) printf("  snapshot error: %s\n", err.message);
    fflush(stdout);
    /* bounded: keeping all 200k rows would need far more than 64 MB */
    _exit(rc == AS_EOF && count == N && after - before < 64 * 1024 ? 0 : 1);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
  CHECK(dbcmd("{\"drop\": \"users\"}"), "drop users");
out:
  return;
}

/* ------------------------------------------------------------------ main */

typedef struct test {
  const char *name;
  void (*fn)(void);
} test;

int main(int argc, char **argv) {
  static const test tests[] = {
      {"install", t_install},         {"ops", t_ops},
      {"update_paths", t_update_paths}, {"snapshot_handoff", t_snapshot_handoff},
      {"resume", t_resume},           {"history_lost", t_history_lost},
      {"drop", t_drop},               {"sink_preserves", t_sink_preserves},
      {"echo", t_echo},               {"dead_letters", t_dead_letters},
      {"transient", t_transient},     {"capture_dead", t_capture_dead},
      {"big_snapshot", t_big_snapshot}, {NULL, NULL}};
  uri = getenv("ARRAYSYNC_TEST_MONGODB_URI");
  if (!uri || !*uri) {
    fprintf(stderr, "ARRAYSYNC_TEST_MONGODB_URI is not set\n");
    return 2;
  }
  const char *lvl = getenv("ARRAYSYNC_LOG");
  as_log_level l;
  if (lvl && as_log_parse_level(lvl, &l)) as_log_set_level(l);
  else as_log_set_level(AS_LOG_ERROR);
  mongoc_init();
  snprintf(dbname, sizeof dbname, "it_mongo_%ld_%ld", (long)getpid(), (long)time(NULL));
  as_error err = {0};
  if (as_schema_load_string("users.yaml", users_yaml, &users, &err) != AS_OK ||
      as_schema_load_string("items.yaml", items_yaml, &items, &err) != AS_OK ||
      as_schema_load_string("dropme.yaml", dropme_yaml, &dropme, &err) != AS_OK) {
    fprintf(stderr, "schema: %s\n", err.message);
    return 2;
  }
  all_schemas[0] = users;
  all_schemas[1] = items;
  all_schemas[2] = dropme;
  cli = mongoc_client_new(uri);
  mongoc_client_set_error_api(cli, MONGOC_ERROR_API_VERSION_2);
  for (const test *t = tests; t->name; t++) {
    bool selected = argc < 2;
    for (int i = 1; i < argc; i++) selected = selected || strcmp(argv[i], t->name) == 0;
    if (!selected) continue;
    printf("- %s\n", t->name);
    fflush(stdout);
    cur_failed = false;
    t->fn();
    if (cur_failed) nfail++;
    else npass++;
  }
  run_cmd(dbname, "{\"dropDatabase\": 1}", NULL);
  mongoc_client_destroy(cli);
  as_schema_free(users);
  as_schema_free(items);
  as_schema_free(dropme);
  mongoc_cleanup();
  printf("%d passed, %d failed\n", npass, nfail);
  return nfail ? 1 : 0;
}
