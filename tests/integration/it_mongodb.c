/* it_mongodb.c — integration tests of the MongoDB adapter (adapters/mongodb/) against a server
 * reached ONLY through ARRAYSYNC_TEST_MONGODB_URI (the Python test server or a real replica
 * set). Optional: ARRAYSYNC_TEST_MONGODB_URI_SMALL_HISTORY, a second server keeping very little
 * change history (the test server's --history 20), for the error-286 tests.
 * Prints "N passed, N failed"; exits nonzero on failure. Usage: it_mongodb [test-name...] */
#include <math.h>
#include <signal.h>
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
#include "as_bsonr.h"
#include "as_log.h"
#include "as_schema.h"
#include "as_time.h"

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

/* The consumers make_node configures (the topology's streams from the node; default none). */
static char **g_consumers;
static size_t g_nconsumers;

static as_node *make_node(const char *name, const char *u, const char *extra_key,
                          const char *extra_val, const as_schema *const *schemas, size_t ns) {
  as_node_option opts[4] = {
      {.key = "uri", .value = (char *)u},
      {.key = "database", .value = dbname},
      {.key = "max_await_ms", .value = "100"},
      {.key = (char *)extra_key, .value = (char *)extra_val},
  };
  size_t nopts = extra_key ? 4 : 3;
  if (extra_key && strcmp(extra_key, "max_await_ms") == 0) { /* in place of the default 100 */
    opts[2].value = (char *)extra_val;
    nopts = 3;
  }
  as_node_config cfg = {.name = (char *)name, .kind = "mongodb", .opts = opts, .nopts = nopts,
                        .consumers = g_consumers, .nconsumers = g_nconsumers};
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

/* Column col of row r (d's row or its image) as JSON text, "<absent>" when it has none. */
static char *row_text(const as_delta *d, const as_row *r, const char *col) {
  int i = as_schema_column_index(d->schema, col);
  if (i < 0 || !as_row_has(r, (size_t)i)) return strdup("<absent>");
  json_t *j = as_value_to_json(&r->v[i], NULL);
  char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("<err>");
  json_decref(j);
  return s;
}

static char *val_text(const as_delta *d, const char *col) { return row_text(d, &d->row, col); }

static bool row_is(const as_delta *d, const as_row *r, const char *what, const char *col, const char *want) {
  char *t = row_text(d, r, col);
  bool ok = strcmp(t, want) == 0;
  if (!ok) fprintf(stderr, "  %s %s = %s, want %s\n", what, col, t, want);
  free(t);
  return ok;
}

static bool val_is(const as_delta *d, const char *col, const char *want) {
  return row_is(d, &d->row, "column", col, want);
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
        !strcmp(names[i], "__arraysync_checkpoints") || !strcmp(names[i], "__arraysync_marks") ||
        !strcmp(names[i], "__arraysync_sessions") || !strcmp(names[i], "__arraysync_gone"))
      found++;
  }
  bson_strfreev(names);
  CHECK(found == 6, "found %d of 6 collections", found);
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
    /* the version: the commit time, and in the logical counter the clusterTime increment
     * (at most 255), so one node's changes in one millisecond still come in order */
    CHECK(d[i].ts_us > 1000000000000000LL && AS_HLC_US(d[i].hlc) == d[i].ts_us, "ts");
    CHECK(i == 0 || d[i].hlc > d[i - 1].hlc || (d[i - 1].hlc & 0xff) == 255,
          "change %zu's version %lld not above change %zu's %lld", i, (long long)d[i].hlc, i - 1,
          (long long)d[i - 1].hlc);
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

/* A poll hands over the events of the batch libmongoc fetched as soon as that batch is used
 * up, without a getMore after it (which waits up to max_await_ms for more): ten documents
 * inserted by one command arrive in one poll; the next insert's three in the next. Before, the
 * first event of a fetched batch went out alone and the rest waited for the next getMore to
 * return. The long max_await_ms makes a poll that waits in such a getMore take 30 s. */
static void t_batch_in_hand(void) {
  as_error err = {0};
  as_batch b = {0};
  as_stream *s = NULL;
  as_node *n = make_node("mongo", uri, "max_await_ms", "30000", all_schemas, 3);
  CHECK(n, "node");
  /* ids other tests may have left (an insert that meets a duplicate stops there) */
  CHECK(dbcmd("{\"delete\": \"items\", \"deletes\": [{\"q\": {\"_id\": {\"$gte\": 501, "
              "\"$lte\": 513}}, \"limit\": 0}]}"),
        "clear");
  CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s, &err) == AS_OK, "%s", err.message);
  CHECK(insert_json("items", "{\"_id\": 501}, {\"_id\": 502}, {\"_id\": 503}, {\"_id\": 504}, "
                             "{\"_id\": 505}, {\"_id\": 506}, {\"_id\": 507}, {\"_id\": 508}, "
                             "{\"_id\": 509}, {\"_id\": 510}"),
        "insert 10");
  int64_t t0 = as_monotonic_us();
  int rc = as_adapter_mongodb.poll(s, &b, 1000, 60000, &err);
  CHECK(rc == AS_OK, "poll: %s", err.message);
  CHECK(b.n == 10, "one poll took the whole batch: %zu of 10", b.n);
  CHECK(insert_json("items", "{\"_id\": 511}, {\"_id\": 512}, {\"_id\": 513}"), "insert 3");
  rc = as_adapter_mongodb.poll(s, &b, 1000, 60000, &err);
  CHECK(rc == AS_OK, "poll: %s", err.message);
  CHECK(b.n == 13, "the next poll took the next batch: %zu of 13", b.n);
  /* not a timing threshold: a poll waiting in a getMore would have taken 30 s each */
  printf("  two polls in %.1f ms\n", (double)(as_monotonic_us() - t0) / 1000.0);
out:
  as_batch_clear(&b);
  as_adapter_mongodb.close_stream(s);
  as_adapter_mongodb.exit(n);
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

/* Column col of d's row image as JSON text. */
static bool image_is(const as_delta *d, const char *col, const char *want) {
  return row_is(d, &d->image, "image column", col, want);
}

/* A local update that the connector's delete overwrote before a stream read it: the event's
 * full document is gone (updateLookup), and the update wins over that delete when it is the
 * later change, bringing the row back; its row image is the document the sink deleted (the
 * update included). A document deleted by someone else leaves no image; nor does a delete the
 * sink made before the update. */
static void t_deleted_image(void) {
  as_error err = {0};
  as_batch b = {0};
  as_stream *s = NULL;
  as_delta d[2] = {0};
  as_dead_list dead = {0};
  as_node *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s, &err) == AS_OK, "%s", err.message);
  CHECK(insert_json("items", "{\"_id\": 8101, \"name\": \"n0\", \"qty\": 1}"), "insert 8101");
  CHECK(insert_json("items", "{\"_id\": 8103, \"name\": \"m0\", \"qty\": 1}"), "insert 8103");
  CHECK(dbcmd("{\"update\": \"items\", \"updates\": [{\"q\": {\"_id\": 8101}, \"u\": {\"$set\": "
              "{\"qty\": 5}}}, {\"q\": {\"_id\": 8103}, \"u\": {\"$set\": {\"qty\": 7}}}]}"),
        "updates");
  make_delta(&d[0], items, AS_OP_DELETE, "lite", "{\"id\": 8101}");
  CHECK(apply_batch(n, d, 1, &dead, "lite->mongo", "cp-gone", &err) == AS_OK, "%s", err.message);
  CHECK(dbcmd("{\"delete\": \"items\", \"deletes\": [{\"q\": {\"_id\": 8103}, \"limit\": 1}]}"),
        "outside delete");
  /* a delete by the sink, then a local insert and update: the update comes after that delete */
  CHECK(insert_json("items", "{\"_id\": 8101, \"name\": \"n1\", \"qty\": 2}"), "insert again");
  CHECK(dbcmd("{\"update\": \"items\", \"updates\": [{\"q\": {\"_id\": 8101}, \"u\": {\"$set\": "
              "{\"qty\": 3}}}]}"), "update again");
  CHECK(dbcmd("{\"delete\": \"items\", \"deletes\": [{\"q\": {\"_id\": 8101}, \"limit\": 1}]}"),
        "outside delete again");
  /* deleted by the sink after the update and written again by it before the stream reads
   * the event: the looked-up document is the connector's, the deleted one the update's */
  CHECK(insert_json("items", "{\"_id\": 8104, \"name\": \"p0\", \"qty\": 1}"), "insert 8104");
  CHECK(dbcmd("{\"update\": \"items\", \"updates\": [{\"q\": {\"_id\": 8104}, \"u\": {\"$set\": "
              "{\"qty\": 9}}}]}"), "update 8104");
  as_delta_clear(&d[0]);
  make_delta(&d[0], items, AS_OP_DELETE, "lite", "{\"id\": 8104}");
  CHECK(apply_batch(n, d, 1, &dead, "lite->mongo", "cp-gone", &err) == AS_OK, "%s", err.message);
  make_delta(&d[1], items, AS_OP_INSERT, "pg", "{\"id\": 8104, \"name\": \"conn\", \"qty\": 100}");
  CHECK(apply_batch(n, d + 1, 1, &dead, "pg->mongo", "cp-gone2", &err) == AS_OK, "%s", err.message);
  /* (the stream of consumer pg leaves out the insert written for pg) */
  CHECK(poll_n(s, &b, 12, &err) == AS_OK && b.n == 12, "got %zu: %s", b.n, err.message);
  const as_delta *u1 = &b.d[2], *u3 = &b.d[3], *u1b = &b.d[7], *u4 = &b.d[10];
  CHECK(u1->op == AS_OP_UPDATE && val_is(u1, "id", "8101") && val_is(u1, "qty", "5"),
        "update of 8101 (op %d)", (int)u1->op);
  CHECK(nset(u1) == 2, "the update carries what it changed: %zu columns", nset(u1));
  CHECK(image_is(u1, "id", "8101") && image_is(u1, "name", "\"n0\"") && image_is(u1, "qty", "5"),
        "the deleted document is the update's image");
  CHECK(u3->op == AS_OP_UPDATE && val_is(u3, "id", "8103") && val_is(u3, "qty", "7"), "update of 8103");
  CHECK(image_is(u3, "name", "<absent>"), "deleted by another writer: no image");
  CHECK(b.d[4].op == AS_OP_DELETE && b.d[4].echo && !strcmp(b.d[4].origin, "lite"), "the sink's delete");
  CHECK(u1b->op == AS_OP_UPDATE && val_is(u1b, "qty", "3"), "second update of 8101 (op %d)", (int)u1b->op);
  CHECK(image_is(u1b, "name", "<absent>"), "an update after the sink's delete: no image");
  CHECK(u4->op == AS_OP_UPDATE && val_is(u4, "id", "8104") && val_is(u4, "qty", "9"), "update of 8104");
  CHECK(image_is(u4, "name", "\"p0\"") && image_is(u4, "qty", "9"),
        "the deleted document, not the one the connector wrote since, is the image");
out:
  for (int i = 0; i < 2; i++) as_delta_clear(&d[i]);
  as_dead_list_clear(&dead);
  as_batch_clear(&b);
  if (s) as_adapter_mongodb.close_stream(s);
  if (n) as_adapter_mongodb.exit(n);
}

/* The deleted documents outlive the process: a connector killed after its delete and before
 * its streams read the update finds the document again (kept in __arraysync_gone in the
 * delete's transaction, with a time before the commit). */
static void t_deleted_image_restart(void) {
  as_error err = {0};
  as_batch b = {0}, b2 = {0};
  as_stream *s = NULL;
  as_delta d[1] = {0};
  as_dead_list dead = {0};
  bson_t *entry = NULL;
  bson_iter_t it;
  char *pos = NULL;
  as_node *n2 = NULL, *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  CHECK(dbcmd("{\"delete\": \"__arraysync_gone\", \"deletes\": [{\"q\": {}, \"limit\": 0}]}"),
        "empty the kept documents");
  CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s, &err) == AS_OK, "%s", err.message);
  CHECK(insert_json("items", "{\"_id\": 8201, \"name\": \"r0\", \"qty\": 1}"), "insert 8201");
  CHECK(insert_json("items", "{\"_id\": 8202, \"name\": \"s0\", \"qty\": 1}"), "insert 8202");
  CHECK(dbcmd("{\"update\": \"items\", \"updates\": [{\"q\": {\"_id\": 8201}, \"u\": {\"$set\": "
              "{\"qty\": 6}}}, {\"q\": {\"_id\": 8202}, \"u\": {\"$set\": {\"qty\": 4}}}]}"),
        "updates");
  make_delta(&d[0], items, AS_OP_DELETE, "lite", "{\"id\": 8201}");
  CHECK(apply_batch(n, d, 1, &dead, "lite->mongo", "cp-gone", &err) == AS_OK, "%s", err.message);
  as_delta_clear(&d[0]);
  make_delta(&d[0], items, AS_OP_DELETE, "lite", "{\"id\": 8202}");
  CHECK(apply_batch(n, d, 1, &dead, "lite->mongo", "cp-gone", &err) == AS_OK, "%s", err.message);
  CHECK(poll_n(s, &b, 1, &err) == AS_OK && b.n >= 1 && b.d[0].op == AS_OP_INSERT && b.d[0].pos,
        "the first insert: %s", err.message);
  entry = find_one("__arraysync_gone", "{}");
  CHECK(entry && bson_iter_init_find(&it, entry, "at") && BSON_ITER_HOLDS_INT64(&it) &&
            bson_iter_int64(&it) > 0, "an entry with the time of its delete");
  pos = strdup(b.d[0].pos);
  as_adapter_mongodb.close_stream(s);
  s = NULL;
  as_adapter_mongodb.exit(n); /* what it held in memory is gone with it */
  n = NULL;
  n2 = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  CHECK(n2, "node after the restart");
  CHECK(as_adapter_mongodb.open_stream(n2, "pg", pos, &s, &err) == AS_OK, "%s", err.message);
  CHECK(poll_n(s, &b2, 5, &err) == AS_OK && b2.n == 5, "got %zu: %s", b2.n, err.message);
  const as_delta *u1 = &b2.d[1], *u2 = &b2.d[2];
  CHECK(u1->op == AS_OP_UPDATE && val_is(u1, "id", "8201") && val_is(u1, "qty", "6"),
        "update of 8201 (op %d)", (int)u1->op);
  CHECK(image_is(u1, "name", "\"r0\"") && image_is(u1, "qty", "6"),
        "after a restart the deleted document is still the update's image");
  CHECK(u2->op == AS_OP_UPDATE && val_is(u2, "id", "8202") && val_is(u2, "qty", "4"),
        "update of 8202 (op %d)", (int)u2->op);
  CHECK(image_is(u2, "name", "\"s0\"") && image_is(u2, "qty", "4"),
        "the second one too");
out:
  free(pos);
  bson_destroy(entry);
  as_delta_clear(&d[0]);
  as_dead_list_clear(&dead);
  as_batch_clear(&b);
  as_batch_clear(&b2);
  if (s) as_adapter_mongodb.close_stream(s);
  if (n) as_adapter_mongodb.exit(n);
  if (n2) as_adapter_mongodb.exit(n2);
}

/* Two streams of one node read an update event at different moments: the second takes the
 * row image the first used, not the document as it is when it reads the event (a later write
 * in between), so both pairs decide that update on one image. */
static void t_shared_image(void) {
  as_error err = {0};
  as_batch b1 = {0}, b2 = {0};
  as_stream *s1 = NULL, *s2 = NULL;
  as_node *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s1, &err) == AS_OK, "%s", err.message);
  CHECK(as_adapter_mongodb.open_stream(n, "lite", NULL, &s2, &err) == AS_OK, "%s", err.message);
  CHECK(insert_json("items", "{\"_id\": 8301, \"name\": \"a0\", \"qty\": 1}"), "insert 8301");
  CHECK(dbcmd("{\"update\": \"items\", \"updates\": [{\"q\": {\"_id\": 8301}, \"u\": {\"$set\": "
              "{\"qty\": 2}}}]}"), "update");
  CHECK(poll_n(s1, &b1, 2, &err) == AS_OK && b1.n == 2, "first stream got %zu: %s", b1.n, err.message);
  CHECK(b1.d[1].op == AS_OP_UPDATE && image_is(&b1.d[1], "name", "\"a0\"") &&
            image_is(&b1.d[1], "qty", "2"), "the first stream's image");
  CHECK(dbcmd("{\"update\": \"items\", \"updates\": [{\"q\": {\"_id\": 8301}, \"u\": {\"$set\": "
              "{\"name\": \"a1\"}}}]}"), "a later update");
  CHECK(poll_n(s2, &b2, 3, &err) == AS_OK && b2.n == 3, "second stream got %zu: %s", b2.n, err.message);
  CHECK(b2.d[1].op == AS_OP_UPDATE && val_is(&b2.d[1], "qty", "2"), "the update");
  CHECK(image_is(&b2.d[1], "name", "\"a0\"") && image_is(&b2.d[1], "qty", "2"),
        "the second stream takes the first one's image, not the later document");
  CHECK(b2.d[2].op == AS_OP_UPDATE && image_is(&b2.d[2], "name", "\"a1\""), "the later update's own");
out:
  as_batch_clear(&b1);
  as_batch_clear(&b2);
  if (s1) as_adapter_mongodb.close_stream(s1);
  if (s2) as_adapter_mongodb.close_stream(s2);
  if (n) as_adapter_mongodb.exit(n);
}

/* After a restart the node's streams open one after the other: the first reads an update
 * before the second is open. The second still takes the first one's image (the node knows
 * from its configuration that two streams read it), not the document as it is by then. */
static void t_shared_image_late_stream(void) {
  as_error err = {0};
  as_batch b1 = {0}, b2 = {0};
  as_stream *s1 = NULL, *s2 = NULL;
  char *pos = NULL;
  char *consumers[] = {"pg", "lite"};
  g_consumers = consumers;
  g_nconsumers = 2;
  as_node *n = make_node("mongo", uri, NULL, NULL, all_schemas, 3);
  g_consumers = NULL;
  g_nconsumers = 0;
  CHECK(n, "node");
  CHECK(as_adapter_mongodb.open_stream(n, "pg", NULL, &s1, &err) == AS_OK, "%s", err.message);
  CHECK(as_adapter_mongodb.stream_position(s1, &pos, &err) == AS_OK, "%s", err.message);
  CHECK(insert_json("items", "{\"_id\": 8311, \"name\": \"b0\", \"qty\": 1}"), "insert 8311");
  CHECK(dbcmd("{\"update\": \"items\", \"updates\": [{\"q\": {\"_id\": 8311}, \"u\": {\"$set\": "
              "{\"qty\": 2}}}]}"), "update");
  CHECK(poll_n(s1, &b1, 2, &err) == AS_OK && b1.n == 2, "first stream got %zu: %s", b1.n, err.message);
  CHECK(b1.d[1].op == AS_OP_UPDATE && image_is(&b1.d[1], "name", "\"b0\"") &&
            image_is(&b1.d[1], "qty", "2"), "the first stream's image");
  CHECK(dbcmd("{\"update\": \"items\", \"updates\": [{\"q\": {\"_id\": 8311}, \"u\": {\"$set\": "
              "{\"name\": \"b1\"}}}]}"), "a later update");
  CHECK(as_adapter_mongodb.open_stream(n, "lite", pos, &s2, &err) == AS_OK, "%s", err.message);
  CHECK(poll_n(s2, &b2, 3, &err) == AS_OK && b2.n == 3, "second stream got %zu: %s", b2.n, err.message);
  CHECK(b2.d[1].op == AS_OP_UPDATE && val_is(&b2.d[1], "qty", "2"), "the update");
  CHECK(image_is(&b2.d[1], "name", "\"b0\"") && image_is(&b2.d[1], "qty", "2"),
        "the stream opened later takes the first one's image, not the later document");
out:
  free(pos);
  as_batch_clear(&b1);
  as_batch_clear(&b2);
  if (s1) as_adapter_mongodb.close_stream(s1);
  if (s2) as_adapter_mongodb.close_stream(s2);
  if (n) as_adapter_mongodb.exit(n);
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

/* ------------------------------------------------------------------ minimal writes
 *
 * A write of a row changes only what changed: documents are compared as raw BSON before and
 * after. Rows are taken from the documents through the mapping and then made to look like
 * rows read back from PostgreSQL (jsonb reorders object keys). */

static const char *m_yaml =
    "mapping: m\n"
    "collection: m\n"
    "key: id\n"
    "columns:\n"
    "  id: { field: _id, type: text }\n"
    "  a: { field: a, type: text }\n"
    "  b: { field: b, type: bigint }\n"
    "  p: { field: p, type: numeric }\n"
    "  x: { field: \"*\", type: jsonb }\n";

static const char *prop_yaml =
    "mapping: prop\n"
    "collection: prop\n"
    "key: id\n"
    "columns:\n"
    "  id: { field: _id, type: text }\n"
    "  i: { field: i, type: bigint }\n"
    "  d: { field: d, type: double }\n"
    "  n: { field: n, type: numeric }\n"
    "  t: { field: t, type: text }\n"
    "  b: { field: b, type: bool }\n"
    "  y: { field: y, type: bytea }\n"
    "  u: { field: u, type: uuid }\n"
    "  o: { field: o, type: objectid }\n"
    "  ts: { field: ts, type: timestamptz }\n"
    "  dt: { field: dt, type: date }\n"
    "  j: { field: j, type: jsonb }\n"
    "  s: { field: sub.v, type: bigint }\n"
    "  x: { field: \"*\", type: jsonb }\n";

static bool insert_doc(const char *coll, const bson_t *doc) {
  bson_error_t be;
  mongoc_collection_t *c = mongoc_client_get_collection(cli, dbname, coll);
  bool ok = mongoc_collection_insert_one(c, doc, NULL, NULL, &be);
  if (!ok) fprintf(stderr, "  insert: %s\n", be.message);
  mongoc_collection_destroy(c);
  return ok;
}

/* The document with string _id id, or NULL. */
static bson_t *find_id(const char *coll, const char *id) {
  bson_t *f = BCON_NEW("_id", BCON_UTF8(id));
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

/* What PostgreSQL gives back for a json(b) value: the same value, object keys reordered
 * (jansson sorts them; jsonb orders them by length, then bytes: either way not the
 * document's order). */
static bool jsonb_like(as_row *r, const as_schema *s) {
  for (size_t i = 0; i < s->ncols; i++) {
    as_value *v = &r->v[i];
    if (!r->set[i] || v->type != AS_T_JSON) continue;
    json_error_t je;
    json_t *j = json_loadb(v->u.s.ptr, v->u.s.len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
    char *t = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!t) {
      fprintf(stderr, "  jsonb_like: %s\n", je.text);
      return false;
    }
    as_value nv = AS_VALUE_NULL;
    bool ok = as_value_set_str(&nv, AS_T_JSON, t, strlen(t)) == AS_OK;
    free(t);
    if (!ok) return false;
    as_row_put(r, i, &nv);
  }
  return true;
}

/* An insert (whole row) or update delta from the row of doc, as read back from PostgreSQL. */
static bool delta_from_doc(as_delta *d, const as_schema *s, as_op op, const bson_t *doc) {
  as_error err = {0};
  if (as_delta_init(d, s, op) != AS_OK || as_delta_set_origin(d, "pg") != AS_OK) return false;
  d->ts_us = 1;
  d->hlc = AS_HLC_FROM_US(1);
  if (as_doc_to_row(s, doc, &d->row, &err) != AS_OK) {
    fprintf(stderr, "  doc_to_row: %s\n", err.message);
    return false;
  }
  return jsonb_like(&d->row, s);
}

/* An update delta of the key of doc and column col := *v (moved in). */
static bool delta_one_col(as_delta *d, const as_schema *s, const bson_t *doc, const char *col, as_value *v) {
  as_row key = {0};
  as_error err = {0};
  int i = as_schema_column_index(s, col);
  if (i < 0 || as_delta_init(d, s, AS_OP_UPDATE) != AS_OK || as_delta_set_origin(d, "pg") != AS_OK) return false;
  d->ts_us = 1;
  d->hlc = AS_HLC_FROM_US(1);
  if (as_doc_to_key(s, doc, &key, &err) != AS_OK) return false;
  for (size_t k = 0; k < s->nkey; k++) {
    as_value kv = AS_VALUE_NULL;
    if (as_value_copy(&kv, &key.v[s->key_idx[k]]) != AS_OK) return false;
    as_row_put(&d->row, s->key_idx[k], &kv);
  }
  as_row_clear(&key);
  as_row_put(&d->row, (size_t)i, v);
  return true;
}

/* The elements of one document level. */
typedef struct lvl {
  as_bsonr_el e[64];
  size_t n;
} lvl;

static bool read_lvl(const uint8_t *data, size_t len, lvl *l) {
  as_bsonr r;
  l->n = 0;
  if (as_bsonr_init(&r, data, len) != AS_OK) return false;
  int more;
  while (l->n < 64 && (more = as_bsonr_next(&r, &l->e[l->n])) == 1) l->n++;
  return l->n < 64;
}

static bool el_same(const as_bsonr_el *a, const as_bsonr_el *b) {
  return a->type == b->type && a->keylen == b->keylen && !memcmp(a->key, b->key, a->keylen) &&
         a->vlen == b->vlen && !memcmp(a->val, b->val, a->vlen);
}

/* a and b are byte-identical except along path[0..np) (np 0: identical): at each level every
 * other field is the same, in the same order; the field on the path is in the same place
 * (changed, descended into when both are documents), or removed, or appended last. */
static bool only_differs(const uint8_t *a, size_t al, const uint8_t *b, size_t bl, char **path, size_t np,
                         char *why, size_t cap) {
  lvl *la = malloc(sizeof *la), *lb = malloc(sizeof *lb);
  bool ok = la && lb && read_lvl(a, al, la) && read_lvl(b, bl, lb);
  size_t i = 0, j = 0;
  if (!ok) snprintf(why, cap, "cannot read the documents");
  while (ok && (i < la->n || j < lb->n)) {
    bool pa = np && i < la->n && strcmp(la->e[i].key, path[0]) == 0;
    bool pb = np && j < lb->n && strcmp(lb->e[j].key, path[0]) == 0;
    if (pa && pb) {
      if (np > 1 && la->e[i].type == BSON_TYPE_DOCUMENT && lb->e[j].type == BSON_TYPE_DOCUMENT)
        ok = only_differs(la->e[i].val, la->e[i].vlen, lb->e[j].val, lb->e[j].vlen, path + 1, np - 1, why, cap);
      i++, j++;
    } else if (pa) {
      i++; /* removed */
    } else if (pb) {
      ok = j == lb->n - 1; /* appended */
      if (!ok) snprintf(why, cap, "field \"%s\" was added before \"%s\"", path[0], lb->e[j + 1].key);
      j++;
    } else if (i < la->n && j < lb->n && el_same(&la->e[i], &lb->e[j])) {
      i++, j++;
    } else {
      ok = false;
      snprintf(why, cap, "field \"%s\" differs (path %s)", i < la->n ? la->e[i].key : j < lb->n ? lb->e[j].key : "?",
               np ? path[0] : "none");
    }
  }
  free(la);
  free(lb);
  return ok;
}

static bool doc_only_differs(const bson_t *a, const bson_t *b, const char *dotted, char *why, size_t cap) {
  char buf[256], *parts[8];
  size_t np = 0;
  snprintf(buf, sizeof buf, "%s", dotted ? dotted : "");
  for (char *p = dotted ? strtok(buf, ".") : NULL; p && np < 8; p = strtok(NULL, ".")) parts[np++] = p;
  bool ok = only_differs(bson_get_data(a), a->len, bson_get_data(b), b->len, parts, np, why, cap);
  if (!ok) {
    char *ja = bson_as_canonical_extended_json(a, NULL), *jb = bson_as_canonical_extended_json(b, NULL);
    fprintf(stderr, "  before %s\n  after  %s\n", ja, jb);
    bson_free(ja);
    bson_free(jb);
  }
  return ok;
}

/* The BSON type of top-level field f (0: absent). */
static int field_type(const bson_t *doc, const char *f) {
  bson_iter_t it;
  return bson_iter_init_find(&it, doc, f) ? (int)bson_iter_type(&it) : 0;
}

static bool decimal_doc(bson_t *b, const char *key, const char *txt) {
  bson_decimal128_t dec;
  return bson_decimal128_from_string(txt, &dec) && BSON_APPEND_DECIMAL128(b, key, &dec);
}

/* The issue's documents: doubles holding integral values, Decimal128 with trailing zeros,
 * int32 vs int64, nested key orders, NUL bytes, missing fields vs explicit null, '$'-prefixed
 * and dotted keys in sub-documents. */
static void m_docs(bson_t *d) {
  bson_t z, y, arr, e0, w;
  for (int i = 0; i < 9; i++) bson_init(&d[i]);
  BSON_APPEND_UTF8(&d[0], "_id", "n5");
  BSON_APPEND_UTF8(&d[0], "a", "text 5");
  BSON_APPEND_DOUBLE(&d[0], "b", 2.0);
  BSON_APPEND_DOUBLE(&d[0], "p", 0.1);
  BSON_APPEND_DOCUMENT_BEGIN(&d[0], "z", &z);
  BSON_APPEND_INT32(&z, "q", 1);
  BSON_APPEND_INT32(&z, "b", 2);
  bson_append_document_end(&d[0], &z);
  BSON_APPEND_UTF8(&d[1], "_id", "dbl");
  BSON_APPEND_DOUBLE(&d[1], "b", 3.0);
  BSON_APPEND_DOUBLE(&d[1], "p", 2.0);
  BSON_APPEND_UTF8(&d[1], "a", "x");
  BSON_APPEND_UTF8(&d[2], "_id", "dec");
  decimal_doc(&d[2], "p", "2.50");
  decimal_doc(&d[2], "b", "7");
  BSON_APPEND_UTF8(&d[2], "a", "y");
  BSON_APPEND_UTF8(&d[3], "_id", "i32");
  BSON_APPEND_INT32(&d[3], "b", 7);
  BSON_APPEND_ARRAY_BEGIN(&d[3], "z", &arr);
  BSON_APPEND_INT32(&arr, "0", 1);
  BSON_APPEND_INT64(&arr, "1", 1);
  bson_append_array_end(&d[3], &arr);
  BSON_APPEND_UTF8(&d[4], "_id", "i64");
  BSON_APPEND_INT64(&d[4], "b", 7);
  BSON_APPEND_UTF8(&d[5], "_id", "nest");
  BSON_APPEND_DOCUMENT_BEGIN(&d[5], "z", &z);
  BSON_APPEND_DOCUMENT_BEGIN(&z, "y", &y);
  BSON_APPEND_INT32(&y, "b", 1);
  BSON_APPEND_ARRAY_BEGIN(&y, "a", &arr);
  BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &e0);
  BSON_APPEND_INT32(&e0, "d", 1);
  BSON_APPEND_INT32(&e0, "c", 2);
  bson_append_document_end(&arr, &e0);
  bson_append_array_end(&y, &arr);
  bson_append_document_end(&z, &y);
  BSON_APPEND_INT32(&z, "a", 1);
  bson_append_document_end(&d[5], &z);
  BSON_APPEND_DOCUMENT_BEGIN(&d[5], "w", &w);
  BSON_APPEND_INT32(&w, "$k", 1);
  BSON_APPEND_INT32(&w, "$$k", 2);
  BSON_APPEND_UTF8(&w, "$oid", "not an ObjectId");
  BSON_APPEND_INT32(&w, "a.b", 3);
  bson_append_document_end(&d[5], &w);
  BSON_APPEND_UTF8(&d[6], "_id", "nul");
  bson_append_utf8(&d[6], "a", 1, "a\0b", 3);
  BSON_APPEND_DOCUMENT_BEGIN(&d[6], "z", &z);
  bson_append_utf8(&z, "s", 1, "x\0y", 3);
  bson_append_document_end(&d[6], &z);
  BSON_APPEND_UTF8(&d[7], "_id", "missing");
  BSON_APPEND_UTF8(&d[8], "_id", "nulls");
  BSON_APPEND_NULL(&d[8], "a");
  BSON_APPEND_NULL(&d[8], "b");
  BSON_APPEND_NULL(&d[8], "p");
}

static void t_minimal_write(void) {
  enum { ND = 9 };
  as_error err = {0};
  as_schema *m = NULL;
  as_node *n = NULL;
  bson_t src[ND], *b0[ND] = {0}, *b1 = NULL;
  as_delta d[ND] = {0};
  as_dead_list dead = {0};
  char why[256];
  const char *id[ND] = {"n5", "dbl", "dec", "i32", "i64", "nest", "nul", "missing", "nulls"};
  /* b := 42 keeps the field's type: double, double, Decimal128, int32, int64, new fields and
   * the null are int32 */
  const int b_type[ND] = {BSON_TYPE_DOUBLE, BSON_TYPE_DOUBLE, BSON_TYPE_DECIMAL128, BSON_TYPE_INT32, BSON_TYPE_INT64,
                          BSON_TYPE_INT32,  BSON_TYPE_INT32,  BSON_TYPE_INT32,      BSON_TYPE_INT32};
  m_docs(src);
  CHECK(as_schema_load_string("m.yaml", m_yaml, &m, &err) == AS_OK, "%s", err.message);
  const as_schema *ms[1] = {m};
  n = make_node("mongo", uri, NULL, NULL, ms, 1);
  CHECK(n, "node");
  for (int i = 0; i < ND; i++) {
    CHECK(insert_doc("m", &src[i]), "insert %s", id[i]);
    CHECK((b0[i] = find_id("m", id[i])) != NULL, "read %s", id[i]);
  }
  /* 1. the rows read back from PostgreSQL, written as inserts of keys that exist */
  for (int i = 0; i < ND; i++) CHECK(delta_from_doc(&d[i], m, AS_OP_INSERT, b0[i]), "delta %s", id[i]);
  CHECK(apply_batch(n, d, ND, &dead, "pg->mongo", "cp-m1", &err) == AS_OK, "%s", err.message);
  CHECK(dead.n == 0, "dead %zu: %s", dead.n, dead.n ? dead.items[0].error : "");
  for (int i = 0; i < ND; i++) {
    b1 = find_id("m", id[i]);
    CHECK(b1 && doc_only_differs(b0[i], b1, NULL, why, sizeof why), "insert of %s changed it: %s", id[i], why);
    bson_destroy(b1);
    b1 = NULL;
  }
  /* 2. the same rows as updates of every column (whole-row writes with equal values) */
  for (int i = 0; i < ND; i++) d[i].op = AS_OP_UPDATE;
  CHECK(apply_batch(n, d, ND, &dead, "pg->mongo", "cp-m2", &err) == AS_OK, "%s", err.message);
  CHECK(dead.n == 0, "dead %zu", dead.n);
  for (int i = 0; i < ND; i++) {
    b1 = find_id("m", id[i]);
    CHECK(b1 && doc_only_differs(b0[i], b1, NULL, why, sizeof why), "update of %s changed it: %s", id[i], why);
    bson_destroy(b1);
    b1 = NULL;
    as_delta_clear(&d[i]);
  }
  /* 3. one column changed on the SQL side: only that field, in its own BSON type */
  for (int i = 0; i < ND; i++) {
    as_value v = AS_VALUE_NULL;
    as_value_set_int64(&v, 42);
    CHECK(delta_one_col(&d[i], m, b0[i], "b", &v), "delta");
  }
  CHECK(apply_batch(n, d, ND, &dead, "pg->mongo", "cp-m3", &err) == AS_OK, "%s", err.message);
  for (int i = 0; i < ND; i++) {
    as_delta_clear(&d[i]);
    b1 = find_id("m", id[i]);
    CHECK(b1 && doc_only_differs(b0[i], b1, "b", why, sizeof why), "b of %s: %s", id[i], why);
    CHECK(field_type(b1, "b") == b_type[i], "%s: b has type 0x%x, want 0x%x", id[i], field_type(b1, "b"), b_type[i]);
    bson_destroy(b0[i]);
    b0[i] = b1;
    b1 = NULL;
  }
  /* 4. an insert of an existing key whose row differs in one column (a) */
  for (int i = 0; i < ND; i++) {
    CHECK(delta_from_doc(&d[i], m, AS_OP_INSERT, b0[i]), "delta");
    as_value v = AS_VALUE_NULL;
    CHECK(as_value_set_str(&v, AS_T_TEXT, "c\0d", 3) == AS_OK, "text");
    as_row_put(&d[i].row, 1, &v);
  }
  CHECK(apply_batch(n, d, ND, &dead, "pg->mongo", "cp-m4", &err) == AS_OK, "%s", err.message);
  for (int i = 0; i < ND; i++) {
    as_delta_clear(&d[i]);
    b1 = find_id("m", id[i]);
    bson_iter_t it;
    uint32_t len = 0;
    const char *s = b1 && bson_iter_init_find(&it, b1, "a") && BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, &len) : "";
    CHECK(len == 3 && !memcmp(s, "c\0d", 3), "%s: a is not \"c\\0d\" (%u bytes)", id[i], len);
    CHECK(doc_only_differs(b0[i], b1, "a", why, sizeof why), "a of %s: %s", id[i], why);
    bson_destroy(b0[i]);
    b0[i] = b1;
    b1 = NULL;
  }
  /* 5. NULL: removes a value, never adds a field, keeps an explicit null */
  for (int i = 0; i < ND; i++) {
    as_value v = AS_VALUE_NULL;
    CHECK(delta_one_col(&d[i], m, b0[i], i == 8 ? "p" : "b", &v), "delta");
  }
  CHECK(apply_batch(n, d, ND, &dead, "pg->mongo", "cp-m5", &err) == AS_OK, "%s", err.message);
  for (int i = 0; i < ND; i++) {
    as_delta_clear(&d[i]);
    b1 = find_id("m", id[i]);
    const char *f = i == 8 ? "p" : "b";
    CHECK(b1 && doc_only_differs(b0[i], b1, f, why, sizeof why), "%s of %s: %s", f, id[i], why);
    CHECK(field_type(b1, f) == (i == 8 ? BSON_TYPE_NULL : 0), "%s: %s has type 0x%x", id[i], f, field_type(b1, f));
    bson_destroy(b0[i]);
    b0[i] = b1;
    b1 = NULL;
  }
  /* 6. a changed top-level field whose name no $set path can reach: the document is replaced by
   * itself with that one field changed */
  {
    bson_t *dot = BCON_NEW("_id", BCON_UTF8("dotted"), "k.x", BCON_INT32(1), "a", BCON_UTF8("t"), "b", BCON_DOUBLE(5.0));
    bool ins = insert_doc("m", dot);
    bson_destroy(dot);
    CHECK(ins, "insert dotted");
    bson_t *before = find_id("m", "dotted");
    as_delta dd = {0};
    bool ok = before && delta_from_doc(&dd, m, AS_OP_INSERT, before);
    as_value v = AS_VALUE_NULL;
    ok = ok && as_value_set_str(&v, AS_T_JSON, "{\"k.x\":2}", 9) == AS_OK;
    if (ok) as_row_put(&dd.row, 4, &v);
    int rc = ok ? apply_batch(n, &dd, 1, &dead, "pg->mongo", "cp-m6", &err) : AS_ERR;
    as_delta_clear(&dd);
    b1 = find_id("m", "dotted");
    char *part[1] = {"k.x"};
    ok = ok && rc == AS_OK && b1 && only_differs(bson_get_data(before), before->len, bson_get_data(b1), b1->len, part, 1, why, sizeof why);
    bson_iter_t it;
    ok = ok && bson_iter_init_find(&it, b1, "k.x") && BSON_ITER_HOLDS_INT32(&it) && bson_iter_int32(&it) == 2;
    bson_destroy(before);
    bson_destroy(b1);
    b1 = NULL;
    CHECK(ok, "dotted field: rc %d %s %s", rc, err.message, why);
  }
  /* 7. one key several times in a batch: each delta sees the document the previous one left */
  {
    as_delta seq[6] = {0};
    as_value v = AS_VALUE_NULL;
    bool ok = as_value_set_str(&v, AS_T_TEXT, "s1", 2) == AS_OK && delta_one_col(&seq[0], m, b0[0], "a", &v);
    as_value_set_int64(&v, 5);
    ok = ok && delta_one_col(&seq[1], m, b0[0], "b", &v);
    ok = ok && delta_one_col(&seq[2], m, b0[0], "b", &v); /* equal to the one before: nothing */
    ok = ok && delta_from_doc(&seq[3], m, AS_OP_DELETE, b0[0]) && delta_from_doc(&seq[4], m, AS_OP_INSERT, b0[0]);
    ok = ok && as_value_set_str(&v, AS_T_DECIMAL, "9.5", 3) == AS_OK && delta_one_col(&seq[5], m, b0[0], "p", &v);
    int rc = ok ? apply_batch(n, seq, 6, &dead, "pg->mongo", "cp-m7", &err) : AS_ERR;
    b1 = find_id("m", "n5");
    as_row got = {0};
    ok = ok && rc == AS_OK && dead.n == 0 && b1 && as_doc_to_row(m, b1, &got, &err) == AS_OK;
    for (size_t c = 0; ok && c < m->ncols; c++)
      ok = as_value_equal(&got.v[c], c == 3 ? &seq[5].row.v[3] : &seq[4].row.v[c]);
    as_row_clear(&got);
    for (int k = 0; k < 6; k++) as_delta_clear(&seq[k]);
    CHECK(ok, "sequence on one key: rc %d, %zu dead: %s", rc, dead.n, err.message);
    CHECK(field_type(b1, "p") == BSON_TYPE_DECIMAL128, "p of the re-created document: 0x%x", field_type(b1, "p"));
    bson_destroy(b1);
    b1 = NULL;
  }
out:
  bson_destroy(b1);
  for (int i = 0; i < ND; i++) {
    bson_destroy(&src[i]);
    bson_destroy(b0[i]);
    as_delta_clear(&d[i]);
  }
  as_dead_list_clear(&dead);
  as_adapter_mongodb.exit(n);
  as_schema_free(m);
}

/* ------------------------------------------------------------------ property: random documents */

static uint64_t prng;

static uint64_t rnd(void) { /* splitmix64 */
  uint64_t z = (prng += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint32_t rpick(uint32_t n) { return (uint32_t)(rnd() % n); }

/* Valid UTF-8 with NULs, quotes, backslashes, multi-byte characters. */
static size_t rtext(char *s, size_t cap) {
  static const char *const parts[] = {"a", "Z", " ", "\"", "\\", "\n", "\x01", "é", "日", "😀", "$", ".", "{"};
  size_t n = 0;
  for (uint32_t k = rpick(10); k > 0; k--) {
    const char *p = rpick(8) == 0 ? "\0" : parts[rpick(sizeof parts / sizeof parts[0])];
    size_t l = p[0] ? strlen(p) : 1;
    if (n + l >= cap) break;
    memcpy(s + n, p, l);
    n += l;
  }
  s[n] = '\0';
  return n;
}

static double rdouble(bool integral) {
  static const double special[] = {0.0, -0.0, 1.0, 0.1, 2.5, 1e300, -1e-300, 4.9e-324, 9007199254740993.0,
                                   123456789.125, -7.0};
  if (integral) return (double)((int64_t)(rnd() % 2000001) - 1000000);
  switch (rpick(5)) {
    case 0: return special[rpick(sizeof special / sizeof special[0])];
    case 1: return rpick(2) ? INFINITY : -INFINITY;
    case 2: return NAN;
    case 3: return (double)((int64_t)(rnd() % 2000001) - 1000000) / 64.0;
    default: {
      uint64_t u = rnd();
      double d;
      memcpy(&d, &u, 8);
      return isnan(d) ? 0.5 : d;
    }
  }
}

static const char *rdecimal(void) {
  static const char *const v[] = {"0", "1.50", "-0.001", "1E+3", "123456789012345678901234567890.1234",
                                  "2.50", "0.10", "-7", "NaN", "Infinity", "-Infinity", "1E-6176", "5.00"};
  return v[rpick(sizeof v / sizeof v[0])];
}

static void rkey(char *k, size_t cap, int i, bool top) {
  static const char *const special[] = {"$k", "$$k", "$oid", "$numberLong", "a.b", "é", "x y", "$set"};
  if (!top && rpick(3) == 0) snprintf(k, cap, "%s", special[rpick(sizeof special / sizeof special[0])]);
  else snprintf(k, cap, "%s%d", top ? "e" : "k", i);
}

static void rvalue(bson_t *b, const char *key, int depth);

static void rcontainer(bson_t *b, const char *key, bool arr, int depth) {
  bson_t c;
  char used[6][32];
  int nused = 0;
  if (arr) BSON_APPEND_ARRAY_BEGIN(b, key, &c);
  else BSON_APPEND_DOCUMENT_BEGIN(b, key, &c);
  for (int i = 0, n = depth > 3 ? 0 : (int)rpick(5); i < n; i++) {
    char k[32];
    if (arr) {
      snprintf(k, sizeof k, "%d", i);
    } else {
      rkey(k, sizeof k, i, false);
      bool dup = false;
      for (int u = 0; u < nused; u++) dup = dup || !strcmp(used[u], k);
      if (dup) continue;
      snprintf(used[nused++], sizeof used[0], "%s", k);
    }
    rvalue(&c, k, depth + 1);
  }
  if (arr) bson_append_array_end(b, &c);
  else bson_append_document_end(b, &c);
}

/* Any BSON value. */
static void rvalue(bson_t *b, const char *key, int depth) {
  char s[64];
  size_t n;
  uint8_t raw[16];
  bson_oid_t oid;
  uint64_t r = rnd();
  memcpy(raw, &r, 8);
  r = rnd();
  memcpy(raw + 8, &r, 8);
  memcpy(oid.bytes, raw, 12);
  switch (rpick(22)) {
    case 0: BSON_APPEND_DOUBLE(b, key, rdouble(rpick(2))); break;
    case 1: n = rtext(s, sizeof s); bson_append_utf8(b, key, -1, s, (int)n); break;
    case 2: rcontainer(b, key, false, depth); break;
    case 3: rcontainer(b, key, true, depth); break;
    case 4: bson_append_binary(b, key, -1, rpick(2) ? BSON_SUBTYPE_BINARY : BSON_SUBTYPE_USER, raw, rpick(17)); break;
    case 5: bson_append_binary(b, key, -1, BSON_SUBTYPE_UUID, raw, 16); break;
    case 6: bson_append_undefined(b, key, -1); break;
    case 7: BSON_APPEND_OID(b, key, &oid); break;
    case 8: BSON_APPEND_BOOL(b, key, rpick(2)); break;
    case 9: BSON_APPEND_DATE_TIME(b, key, (int64_t)(rnd() % 400000000000000ULL) - 200000000000000LL); break;
    case 10: BSON_APPEND_NULL(b, key); break;
    case 11: BSON_APPEND_REGEX(b, key, rpick(2) ? "^a.*b$" : "x\\d+", rpick(2) ? "im" : ""); break;
    case 12: bson_append_dbpointer(b, key, -1, "db.coll", &oid); break;
    case 13: BSON_APPEND_CODE(b, key, "function () { return 1; }"); break;
    case 14: n = rtext(s, sizeof s); bson_append_symbol(b, key, -1, s, (int)n); break;
    case 15: {
      bson_t *scope = BCON_NEW("x", BCON_INT32(1));
      BSON_APPEND_CODE_WITH_SCOPE(b, key, "return x;", scope);
      bson_destroy(scope);
      break;
    }
    case 16: BSON_APPEND_INT32(b, key, (int32_t)rnd()); break;
    case 17: BSON_APPEND_TIMESTAMP(b, key, (uint32_t)rnd(), (uint32_t)rnd()); break;
    case 18: BSON_APPEND_INT64(b, key, (int64_t)(rpick(2) ? rnd() : rnd() % 100)); break;
    case 19: decimal_doc(b, key, rdecimal()); break;
    case 20: BSON_APPEND_MINKEY(b, key); break;
    default: BSON_APPEND_MAXKEY(b, key); break;
  }
}

/* A value of a BSON type column c reads (the conversion table of as_bson.h). */
static void rcolumn(bson_t *b, const char *key, as_type t) {
  char s[64];
  size_t n;
  uint8_t raw[16];
  uint64_t r = rnd(), r2 = rnd();
  memcpy(raw, &r, 8);
  memcpy(raw + 8, &r2, 8);
  switch (t) {
    case AS_T_INT64:
      switch (rpick(5)) {
        case 0: BSON_APPEND_INT32(b, key, (int32_t)r); break;
        case 1: BSON_APPEND_INT64(b, key, (int64_t)r); break;
        case 2: BSON_APPEND_INT64(b, key, (int64_t)(r % 1000)); break;
        case 3: BSON_APPEND_DOUBLE(b, key, rdouble(true)); break;
        default: {
          char t2[32];
          snprintf(t2, sizeof t2, rpick(2) ? "%d" : "%d.00", (int)(r % 100000));
          decimal_doc(b, key, t2);
        }
      }
      break;
    case AS_T_DOUBLE:
      if (rpick(3)) BSON_APPEND_DOUBLE(b, key, rdouble(rpick(3) == 0));
      else if (rpick(2)) BSON_APPEND_INT32(b, key, (int32_t)(r % 1000));
      else BSON_APPEND_INT64(b, key, (int64_t)(r % 1000000));
      break;
    case AS_T_DECIMAL:
      switch (rpick(4)) {
        case 0: decimal_doc(b, key, rdecimal()); break;
        case 1: BSON_APPEND_INT32(b, key, (int32_t)r); break;
        case 2: BSON_APPEND_INT64(b, key, (int64_t)r); break;
        default: BSON_APPEND_DOUBLE(b, key, rdouble(false)); break;
      }
      break;
    case AS_T_TEXT:
      n = rtext(s, sizeof s);
      if (rpick(4)) bson_append_utf8(b, key, -1, s, (int)n);
      else bson_append_symbol(b, key, -1, s, (int)n);
      break;
    case AS_T_BOOL: BSON_APPEND_BOOL(b, key, rpick(2)); break;
    case AS_T_BYTES: {
      static const bson_subtype_t st[] = {BSON_SUBTYPE_BINARY, BSON_SUBTYPE_BINARY_DEPRECATED, BSON_SUBTYPE_USER};
      bson_append_binary(b, key, -1, st[rpick(3)], raw, rpick(17));
      break;
    }
    case AS_T_UUID:
      if (rpick(3) == 0) {
        snprintf(s, sizeof s, rpick(2) ? "%08x-0000-4000-8000-%012llx" : "%08X-0000-4000-8000-%012llX", (unsigned)r,
                 (unsigned long long)(r2 & 0xffffffffffffULL));
        BSON_APPEND_UTF8(b, key, s);
      } else {
        bson_append_binary(b, key, -1, rpick(4) ? BSON_SUBTYPE_UUID : BSON_SUBTYPE_UUID_DEPRECATED, raw, 16);
      }
      break;
    case AS_T_OBJECTID: {
      bson_oid_t oid;
      memcpy(oid.bytes, raw, 12);
      BSON_APPEND_OID(b, key, &oid);
      break;
    }
    case AS_T_TIMESTAMP:
      if (rpick(3)) BSON_APPEND_DATE_TIME(b, key, (int64_t)(r % 315537897599999ULL) - 62135596800000LL);
      else BSON_APPEND_TIMESTAMP(b, key, (uint32_t)r, (uint32_t)r2);
      break;
    case AS_T_DATE: BSON_APPEND_DATE_TIME(b, key, ((int64_t)(r % 3000000) - 700000) * 86400000LL); break;
    case AS_T_JSON: rcontainer(b, key, rpick(3) == 0, 1); break;
    default: BSON_APPEND_NULL(b, key); break;
  }
}

/* A random document of the prop mapping: every column absent, null or holding a type it reads;
 * sub.v inside "sub" with other fields; unmapped top-level fields; random field order. */
static bson_t *rdoc(const as_schema *s, const char *id) {
  bson_t *parts[24];
  int np = 0;
  for (size_t c = 1; c < s->ncols; c++) {
    const as_column *col = &s->cols[c];
    if (col->catch_all || rpick(6) == 0) continue;
    parts[np] = bson_new();
    if (col->npath == 2) {
      bson_t sub;
      BSON_APPEND_DOCUMENT_BEGIN(parts[np], col->path[0], &sub);
      if (rpick(2)) BSON_APPEND_UTF8(&sub, "note", "kept");
      if (rpick(5)) rcolumn(&sub, col->path[1], col->type);
      if (rpick(2)) rvalue(&sub, "$other", 2);
      bson_append_document_end(parts[np], &sub);
    } else if (rpick(8) == 0) {
      BSON_APPEND_NULL(parts[np], col->field);
    } else {
      rcolumn(parts[np], col->field, col->type);
    }
    np++;
  }
  for (int e = 0, ne = (int)rpick(5); e < ne; e++) {
    char k[32];
    rkey(k, sizeof k, e, true);
    parts[np] = bson_new();
    rvalue(parts[np], k, 1);
    np++;
  }
  for (int i = np - 1; i > 0; i--) { /* shuffle */
    int j = (int)rpick((uint32_t)i + 1);
    bson_t *t = parts[i];
    parts[i] = parts[j];
    parts[j] = t;
  }
  bson_t *d = bson_new();
  BSON_APPEND_UTF8(d, "_id", id);
  for (int i = 0; i < np; i++) {
    bson_concat(d, parts[i]);
    bson_destroy(parts[i]);
  }
  return d;
}

/* A new value of column c, as the SQL side would write it (NULL one time in six). old: the
 * current catch-all (AS-JSON or NULL), mutated for the catch-all. */
static bool rnew_value(const as_schema *s, size_t c, const as_value *old, as_value *v) {
  const as_column *col = &s->cols[c];
  char buf[64];
  uint8_t raw[16];
  uint64_t r = rnd(), r2 = rnd();
  memcpy(raw, &r, 8);
  memcpy(raw + 8, &r2, 8);
  *v = AS_VALUE_NULL;
  if (rpick(6) == 0) return true;
  switch (col->type) {
    case AS_T_INT64: as_value_set_int64(v, rpick(2) ? (int64_t)(r % 2000) - 1000 : (int64_t)r); return true;
    case AS_T_DOUBLE: as_value_set_double(v, rdouble(rpick(2))); return true;
    case AS_T_DECIMAL: {
      const char *t = rdecimal();
      return as_value_set_str(v, AS_T_DECIMAL, t, strlen(t)) == AS_OK;
    }
    case AS_T_TEXT: return as_value_set_str(v, AS_T_TEXT, buf, rtext(buf, sizeof buf)) == AS_OK;
    case AS_T_BOOL: as_value_set_bool(v, rpick(2)); return true;
    case AS_T_BYTES: return as_value_set_str(v, AS_T_BYTES, (const char *)raw, rpick(17)) == AS_OK;
    case AS_T_UUID: as_value_set_uuid(v, raw); return true;
    case AS_T_OBJECTID: as_value_set_oid(v, raw); return true;
    case AS_T_TIMESTAMP:
      as_value_set_timestamp(v, ((int64_t)(r % 315537897599999ULL) - 62135596800000LL) * 1000);
      return true;
    case AS_T_DATE: as_value_set_date(v, (int32_t)((int64_t)(r % 3000000) - 700000)); return true;
    case AS_T_JSON: break;
    default: return false;
  }
  /* json: a random document or array; the catch-all: the current one with a field dropped,
   * one changed (not "sub", which a column descends into) and one added */
  bson_t holder = BSON_INITIALIZER, src = BSON_INITIALIZER, *base = NULL;
  bool arr = false, ok = true;
  as_buf out = AS_BUF_INIT;
  as_error err;
  if (!col->catch_all) {
    arr = rpick(3) == 0;
    rcontainer(&holder, "v", arr, 1);
    bson_iter_t it;
    uint32_t len;
    const uint8_t *data;
    ok = bson_iter_init_find(&it, &holder, "v");
    if (ok && arr) bson_iter_array(&it, &len, &data);
    else if (ok) bson_iter_document(&it, &len, &data);
    ok = ok && bson_init_static(&src, data, len);
    base = &src;
  } else {
    bson_t cur = BSON_INITIALIZER;
    bool is_arr;
    if (old->type == AS_T_JSON) ok = as_asjson_to_bson(old->u.s.ptr, old->u.s.len, &cur, &is_arr, &err) == AS_OK;
    bson_iter_t it;
    uint32_t drop = rpick(4), change = rpick(4), i = 0;
    for (ok = ok && bson_iter_init(&it, &cur); ok && bson_iter_next(&it); i++) {
      bool claimed = !strcmp(bson_iter_key(&it), "sub");
      if (i == drop && !claimed) continue;
      if (i == change && !claimed) rvalue(&holder, bson_iter_key(&it), 1);
      else bson_append_iter(&holder, NULL, 0, &it);
    }
    rvalue(&holder, "e9", 1);
    bson_destroy(&cur);
    base = &holder;
  }
  ok = ok && as_bson_to_asjson(base, arr, &out, &err) == AS_OK && as_buf_cstr(&out) &&
       as_value_set_str(v, AS_T_JSON, (const char *)out.data, out.len) == AS_OK;
  as_buf_free(&out);
  bson_destroy(&holder);
  return ok;
}

/* A json value's text as the AS-JSON writer prints it (shortest doubles). */
static bool asjson_normal(const as_value *v, as_value *out) {
  bson_t x;
  bool arr;
  as_buf b = AS_BUF_INIT;
  bool ok = as_asjson_to_bson(v->u.s.ptr, v->u.s.len, &x, &arr, NULL) == AS_OK &&
            as_bson_to_asjson(&x, arr, &b, NULL) == AS_OK &&
            as_value_set_str(out, AS_T_JSON, (const char *)b.data, b.len) == AS_OK;
  bson_destroy(&x);
  as_buf_free(&b);
  return ok;
}

/* Equal values (as_value_equal); json ones once both are printed by the AS-JSON writer (text
 * that jansson printed, e.g. 4.9406564584124654e-324, is the same double as 5e-324, but not
 * the same canonical text). */
static bool same_value(const as_value *a, const as_value *b) {
  if (as_value_equal(a, b)) return true;
  if (a->type != AS_T_JSON || b->type != AS_T_JSON) return false;
  as_value x = AS_VALUE_NULL, y = AS_VALUE_NULL;
  bool ok = asjson_normal(a, &x) && asjson_normal(b, &y) && as_value_equal(&x, &y);
  as_value_clear(&x);
  as_value_clear(&y);
  return ok;
}

/* The BSON type a changed value must keep (0: not checked): integers stay int32/int64/double/
 * Decimal128 where they fit, doubles stay doubles (or integers where integral), decimals stay
 * Decimal128, text in a symbol stays a symbol. */
static int kept_type(as_type t, int was, const as_value *v) {
  if (v->type == AS_T_NULL) return 0;
  if (t == AS_T_INT64 && v->type == AS_T_INT64) {
    int64_t i = v->u.i;
    if (was == BSON_TYPE_INT32) return i >= INT32_MIN && i <= INT32_MAX ? was : BSON_TYPE_INT64;
    if (was == BSON_TYPE_DOUBLE) { /* a double that holds the integer exactly stays a double */
      double d = (double)i;
      bool exact = d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (int64_t)d == i;
      return exact ? was : BSON_TYPE_INT64;
    }
    if (was == BSON_TYPE_INT64 || was == BSON_TYPE_DECIMAL128) return was;
  }
  if (t == AS_T_DOUBLE && v->type == AS_T_DOUBLE) {
    double d = v->u.d;
    bool integral = isfinite(d) && d == floor(d);
    if (was == BSON_TYPE_DOUBLE) return was;
    if (was == BSON_TYPE_INT32) return integral && d >= INT32_MIN && d <= INT32_MAX ? was : BSON_TYPE_DOUBLE;
    if (was == BSON_TYPE_INT64) /* an int64 that holds the value exactly stays an int64 */
      return integral && d >= -9223372036854775808.0 && d < 9223372036854775808.0 ? was : BSON_TYPE_DOUBLE;
  }
  if (t == AS_T_DECIMAL && was == BSON_TYPE_DECIMAL128) return was;
  if (t == AS_T_TEXT && (was == BSON_TYPE_SYMBOL || was == BSON_TYPE_UTF8)) return was;
  return 0;
}

/* The BSON type of the field at a dotted path (0: absent). */
static int path_type(const bson_t *doc, const char *dotted) {
  bson_iter_t it, f;
  return bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, dotted, &f) ? (int)bson_iter_type(&f) : 0;
}

/* After an update of column c to v: only that field changed (or, for the catch-all, the
 * mapped fields kept their bytes), and it reads back as v. */
static bool check_one_col(const as_schema *s, size_t c, const as_value *v, const bson_t *b0, const bson_t *b1,
                          char *why, size_t cap) {
  as_row r0 = {0}, r1 = {0};
  as_error err = {0};
  bool ok = as_doc_to_row(s, b0, &r0, &err) == AS_OK && as_doc_to_row(s, b1, &r1, &err) == AS_OK;
  const as_column *col = &s->cols[c];
  if (!ok) snprintf(why, cap, "doc_to_row: %s", err.message);
  if (ok && !same_value(&r1.v[c], v)) {
    ok = false;
    snprintf(why, cap, "column %s does not read back as written", col->name);
  }
  if (ok && col->catch_all) {
    for (size_t i = 0; ok && i < s->ncols; i++) {
      ok = i == c || as_value_equal(&r0.v[i], &r1.v[i]);
      if (!ok) snprintf(why, cap, "column %s changed", s->cols[i].name);
      if (ok && i != c && s->cols[i].npath == 1) { /* a mapped field keeps its bytes */
        as_bsonr ra, rb;
        as_bsonr_el a, b;
        int fa = as_bsonr_init_doc(&ra, b0) == AS_OK ? as_bsonr_find(&ra, s->cols[i].field, strlen(s->cols[i].field), &a) : -1;
        int fb = as_bsonr_init_doc(&rb, b1) == AS_OK ? as_bsonr_find(&rb, s->cols[i].field, strlen(s->cols[i].field), &b) : -1;
        ok = fa == fb && fa >= 0 && (!fa || (a.type == b.type && a.vlen == b.vlen && !memcmp(a.val, b.val, a.vlen)));
        if (!ok) snprintf(why, cap, "field %s changed", s->cols[i].field);
      }
    }
  } else if (ok && as_value_equal(&r0.v[c], v)) {
    ok = b0->len == b1->len && !memcmp(bson_get_data(b0), bson_get_data(b1), b0->len);
    if (!ok) snprintf(why, cap, "an equal value of %s was written", col->name);
  } else if (ok) {
    ok = doc_only_differs(b0, b1, col->field, why, cap);
    int want = ok ? kept_type(col->type, path_type(b0, col->field), v) : 0;
    if (ok && want && path_type(b1, col->field) != want) {
      ok = false;
      snprintf(why, cap, "%s was type 0x%x, is 0x%x, want 0x%x", col->field, path_type(b0, col->field),
               path_type(b1, col->field), want);
    }
  }
  as_row_clear(&r0);
  as_row_clear(&r1);
  return ok;
}

static void t_sink_property(void) {
  as_error err = {0};
  as_schema *s = NULL;
  as_node *n = NULL;
  const char *env = getenv("IT_MONGO_PROPERTY_DOCS"), *seed_env = getenv("AS_TEST_SEED");
  size_t nd = env ? (size_t)atoi(env) : 300;
  uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
  bson_t **b0 = calloc(nd, sizeof *b0);
  as_delta *d = calloc(nd, sizeof *d);
  size_t *col = calloc(nd, sizeof *col);
  as_value *nv = calloc(nd, sizeof *nv);
  as_dead_list dead = {0};
  bson_t *b1 = NULL;
  char why[512], id[32];
  prng = seed;
  printf("  seed %llu (AS_TEST_SEED), %zu documents (IT_MONGO_PROPERTY_DOCS)\n", (unsigned long long)seed, nd);
  CHECK(b0 && d && col && nv, "memory");
  CHECK(as_schema_load_string("prop.yaml", prop_yaml, &s, &err) == AS_OK, "%s", err.message);
  const as_schema *ss[1] = {s};
  n = make_node("mongo", uri, NULL, NULL, ss, 1);
  CHECK(n, "node");
  for (size_t k = 0; k < nd; k++) {
    snprintf(id, sizeof id, "r%zu", k);
    bson_t *doc = rdoc(s, id);
    bool ins = insert_doc("prop", doc);
    bson_destroy(doc);
    CHECK(ins, "insert %s", id);
    CHECK((b0[k] = find_id("prop", id)) != NULL, "read %s", id);
    CHECK(delta_from_doc(&d[k], s, AS_OP_INSERT, b0[k]), "row of %s", id);
  }
  /* 1. the documents' own rows (as PostgreSQL gives them back), inserted: nothing changes */
  CHECK(apply_batch(n, d, nd, &dead, "pg->mongo", "cp-p1", &err) == AS_OK, "%s", err.message);
  CHECK(dead.n == 0, "dead %zu: %s", dead.n, dead.n ? dead.items[0].error : "");
  for (size_t k = 0; k < nd; k++) {
    snprintf(id, sizeof id, "r%zu", k);
    b1 = find_id("prop", id);
    CHECK(b1 && doc_only_differs(b0[k], b1, NULL, why, sizeof why), "%s: %s", id, why);
    bson_destroy(b1);
    b1 = NULL;
  }
  /* 2. one random column of each document changed on the SQL side */
  for (size_t k = 0; k < nd; k++) {
    as_value v = AS_VALUE_NULL;
    col[k] = 1 + rpick((uint32_t)s->ncols - 1);
    const as_value *old = &d[k].row.v[s->catch_all_idx];
    CHECK(rnew_value(s, col[k], old, &nv[k]) && as_value_copy(&v, &nv[k]) == AS_OK, "new value");
    as_delta_clear(&d[k]);
    CHECK(delta_one_col(&d[k], s, b0[k], s->cols[col[k]].name, &v), "delta");
  }
  CHECK(apply_batch(n, d, nd, &dead, "pg->mongo", "cp-p2", &err) == AS_OK, "%s", err.message);
  CHECK(dead.n == 0, "dead %zu: %s", dead.n, dead.n ? dead.items[0].error : "");
  for (size_t k = 0; k < nd; k++) {
    snprintf(id, sizeof id, "r%zu", k);
    b1 = find_id("prop", id);
    CHECK(b1 && check_one_col(s, col[k], &nv[k], b0[k], b1, why, sizeof why), "%s, column %s: %s", id,
          s->cols[col[k]].name, why);
    bson_destroy(b0[k]);
    b0[k] = b1;
    b1 = NULL;
    as_delta_clear(&d[k]);
    CHECK(delta_from_doc(&d[k], s, AS_OP_INSERT, b0[k]), "row of %s", id);
  }
  /* 3. their rows written back whole: nothing changes */
  CHECK(apply_batch(n, d, nd, &dead, "pg->mongo", "cp-p3", &err) == AS_OK, "%s", err.message);
  for (size_t k = 0; k < nd; k++) {
    snprintf(id, sizeof id, "r%zu", k);
    b1 = find_id("prop", id);
    CHECK(b1 && doc_only_differs(b0[k], b1, NULL, why, sizeof why), "%s: %s", id, why);
    bson_destroy(b1);
    b1 = NULL;
  }
  /* 4. into an empty collection: new documents holding the rows' values */
  CHECK(dbcmd("{\"delete\": \"prop\", \"deletes\": [{\"q\": {}, \"limit\": 0}]}"), "delete");
  CHECK(apply_batch(n, d, nd, &dead, "pg->mongo", "cp-p4", &err) == AS_OK, "%s", err.message);
  for (size_t k = 0; k < nd; k++) {
    as_row r = {0};
    snprintf(id, sizeof id, "r%zu", k);
    b1 = find_id("prop", id);
    bool same = b1 && as_doc_to_row(s, b1, &r, &err) == AS_OK;
    size_t c = 0;
    for (; same && c < s->ncols; c++) same = same_value(&r.v[c], &d[k].row.v[c]);
    if (!same && b1 && c > 0) {
      char *got = val_text(&(as_delta){.schema = s, .row = r}, s->cols[c - 1].name);
      char *want = val_text(&d[k], s->cols[c - 1].name);
      fprintf(stderr, "  column %s: got %s, want %s\n", s->cols[c - 1].name, got, want);
      free(got);
      free(want);
    }
    as_row_clear(&r);
    CHECK(same, "new document %s does not hold its row", id);
    bson_destroy(b1);
    b1 = NULL;
  }
out:
  bson_destroy(b1);
  for (size_t k = 0; b0 && k < nd; k++) bson_destroy(b0[k]);
  for (size_t k = 0; d && k < nd; k++) as_delta_clear(&d[k]);
  for (size_t k = 0; nv && k < nd; k++) as_value_clear(&nv[k]);
  free(b0);
  free(d);
  free(col);
  free(nv);
  as_dead_list_clear(&dead);
  as_adapter_mongodb.exit(n);
  as_schema_free(s);
  if (cur_failed) fprintf(stderr, "  (seed %llu)\n", (unsigned long long)seed);
}

/* ------------------------------------------------------------------ sessions after a crash */

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Error code of a write of item id in a transaction of our own client (0: it worked). */
static int raw_txn_write(int id) {
  bson_error_t be;
  bson_t opts = BSON_INITIALIZER, reply;
  int code = 0;
  mongoc_client_session_t *sess = mongoc_client_start_session(cli, NULL, &be);
  mongoc_collection_t *c = mongoc_client_get_collection(cli, dbname, "items");
  bson_t *sel = BCON_NEW("_id", BCON_INT32(id)), *upd = BCON_NEW("$set", "{", "probe", BCON_INT32(1), "}");
  if (!sess || !mongoc_client_session_start_transaction(sess, NULL, &be) || !mongoc_client_session_append(sess, &opts, &be)) {
    code = -1;
  } else if (!mongoc_collection_update_one(c, sel, upd, &opts, &reply, &be)) {
    code = (int)be.code;
    bson_destroy(&reply);
  } else {
    bson_destroy(&reply);
  }
  if (sess && mongoc_client_session_in_transaction(sess)) mongoc_client_session_abort_transaction(sess, &be);
  mongoc_client_session_destroy(sess);
  mongoc_collection_destroy(c);
  bson_destroy(sel);
  bson_destroy(upd);
  bson_destroy(&opts);
  return code;
}

/* Number of session ids recorded for node name (-1: no record). */
static int recorded_sessions(const char *name) {
  char f[128];
  snprintf(f, sizeof f, "{\"_id\": \"%s\"}", name);
  bson_t *doc = find_one("__arraysync_sessions", f);
  bson_iter_t it, a;
  int n = -1;
  if (doc && bson_iter_init_find(&it, doc, "lsids") && bson_iter_recurse(&it, &a))
    for (n = 0; bson_iter_next(&a);) n++;
  bson_destroy(doc);
  return n;
}

/* kill -9 of a process in the middle of its sink transaction: the next process of the node
 * ends that transaction before its own first one, so its write of the same document does not
 * wait for the server's transaction lifetime (60 s). */
static void t_crash_takeover(void) {
  as_error err = {0};
  as_delta d = {0};
  as_dead_list dead = {0};
  as_node *n = NULL;
  bson_t *doc = NULL;
  bson_iter_t it;
  CHECK(insert_json("items", "{\"_id\": 9701, \"name\": \"locked\", \"qty\": 1}"), "insert");
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) { /* the connector: writes the document in its transaction, then is killed */
    as_node *c = make_node("crashy", uri, NULL, NULL, all_schemas, 3);
    as_delta cd = {0};
    as_dead_list cdead = {0};
    as_error cerr = {0};
    make_delta(&cd, items, AS_OP_UPDATE, "pg", "{\"id\": 9701, \"qty\": 2}");
    if (!c || as_adapter_mongodb.begin(c, &cerr) != AS_OK || as_adapter_mongodb.apply(c, &cd, 1, &cdead, &cerr) != AS_OK)
      _exit(3);
    raise(SIGKILL);
    _exit(4);
  }
  int st = 0;
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork/wait");
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the child was not killed in its transaction (status %d)", st);
  /* its open transaction holds the document: another transaction's write of it conflicts */
  int code = raw_txn_write(9701);
  CHECK(code == 112, "a write of the held document gave %d, not WriteConflict 112", code);
  int recorded = recorded_sessions("crashy");
  /* the node starts again: its first transaction ends the old one */
  n = make_node("crashy", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  make_delta(&d, items, AS_OP_UPDATE, "pg", "{\"id\": 9701, \"qty\": 3}");
  int64_t t0 = mono_us();
  int rc = apply_batch(n, &d, 1, &dead, "pg->mongo", "cp-crash", &err);
  printf("  first write after the crash: rc %d in %.1f ms\n", rc, (double)(mono_us() - t0) / 1000.0);
  CHECK(rc == AS_OK, "the write after the crash: %s", err.message);
  CHECK(recorded == 1, "the killed process's session was not recorded (%d)", recorded);
  doc = find_one("items", "{\"_id\": 9701}");
  CHECK(doc && bson_iter_init_find(&it, doc, "qty") && bson_iter_as_int64(&it) == 3, "qty is not 3");
  CHECK(recorded_sessions("crashy") == 1, "the old session is not forgotten (%d recorded)", recorded_sessions("crashy"));
  CHECK(raw_txn_write(9701) == 0, "the document is still held");
out:
  bson_destroy(doc);
  as_delta_clear(&d);
  as_dead_list_clear(&dead);
  as_adapter_mongodb.exit(n);
}

/* interrupt(): the sink's session is killed on the server, so its transaction in flight ends
 * (the engine is stopping); the sink goes on with a new transaction afterwards. */
static void t_interrupt(void) {
  as_error err = {0};
  as_delta d = {0};
  as_dead_list dead = {0};
  bson_t *doc = NULL;
  as_node *n = make_node("intr", uri, NULL, NULL, all_schemas, 3);
  CHECK(n, "node");
  as_adapter_mongodb.interrupt(n); /* no session yet: nothing happens */
  make_delta(&d, items, AS_OP_INSERT, "pg", "{\"id\": 9801, \"name\": \"i\", \"qty\": 1}");
  CHECK(as_adapter_mongodb.begin(n, &err) == AS_OK, "%s", err.message);
  CHECK(as_adapter_mongodb.apply(n, &d, 1, &dead, &err) == AS_OK, "%s", err.message);
  as_adapter_mongodb.interrupt(n);
  int rc = as_adapter_mongodb.commit(n, "pg->mongo", "cp-intr", &err);
  as_adapter_mongodb.rollback(n);
  CHECK(rc == AS_RETRY, "commit after interrupt gave %d (%s)", rc, err.message);
  doc = find_one("items", "{\"_id\": 9801}");
  CHECK(!doc, "the interrupted transaction committed");
  CHECK(apply_batch(n, &d, 1, &dead, "pg->mongo", "cp-intr", &err) == AS_OK, "%s", err.message);
  doc = find_one("items", "{\"_id\": 9801}");
  CHECK(doc, "the retried batch did not apply");
out:
  bson_destroy(doc);
  as_delta_clear(&d);
  as_dead_list_clear(&dead);
  as_adapter_mongodb.exit(n);
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
      {"big_snapshot", t_big_snapshot}, {"minimal_write", t_minimal_write},
      {"sink_property", t_sink_property}, {"crash_takeover", t_crash_takeover},
      {"interrupt", t_interrupt},     {"batch_in_hand", t_batch_in_hand},
      {"deleted_image", t_deleted_image},
      {"deleted_image_restart", t_deleted_image_restart},
      {"shared_image", t_shared_image},
      {"shared_image_late_stream", t_shared_image_late_stream},
      {NULL, NULL}};
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
