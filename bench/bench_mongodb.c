/* bench_mongodb.c — MongoDB adapter benchmarks, each a ratio against a baseline measured in the
 * same run:
 *   mongo.transcode ratio = (as_doc_to_row + as_delta_to_update per document)
 *                           / (a plain recursive bson_iter walk of the same documents)
 *                           target <= 2 (issue "Speed"; it was 3 before)
 *   mongo.stream ratio    = change events/s through the adapter's poll
 *                           / events/s of a bare libmongoc change-stream loop reading the same
 *                           events from the same server; target >= 0.9
 *   mongo.sink.<case> ratio = rows/s through the adapter's sink (begin, apply, commit; batches
 *                           of 500 insert or update deltas)
 *                           / rows/s of bare libmongoc transactions writing the same rows the
 *                           way a sink without reads would (replaceOne upserts of whole
 *                           documents; $set updates of the changed column); cases: new (empty
 *                           collection), same (every document exists with equal values: the
 *                           adapter reads and writes nothing), one_col (update of one column)
 * The stream part needs ARRAYSYNC_TEST_MONGODB_URI (e.g. the test server:
 *   tests/scripts/mongo_server.sh start PORT DIR; URI mongodb://127.0.0.1:PORT/?replicaSet=rs0).
 * Usage: bench_mongodb [ndocs_transcode] [nevents_stream] [nrows_sink] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "adapter.h"
#include "as_bson.h"
#include "as_log.h"
#include "as_schema.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *mapping_yaml =
    "mapping: users\n"
    "collection: users\n"
    "key: id\n"
    "columns:\n"
    "  id: { field: _id, type: objectid }\n"
    "  email: { field: email, type: text }\n"
    "  name: { field: profile.name, type: text }\n"
    "  age: { field: profile.age, type: int64 }\n"
    "  balance: { field: account.balance, type: numeric }\n"
    "  active: { field: active, type: bool }\n"
    "  created: { field: created, type: timestamptz }\n"
    "  score: { field: score, type: double }\n"
    "  tags: { field: tags, type: jsonb }\n"
    "  address: { field: address, type: jsonb }\n"
    "  extra: { field: \"*\", type: jsonb }\n";

static bson_t *make_doc(int i) {
  bson_oid_t oid;
  bson_oid_init(&oid, NULL);
  char email[64], name[64];
  snprintf(email, sizeof email, "user%d@example.com", i);
  snprintf(name, sizeof name, "User Number %d", i);
  bson_decimal128_t dec;
  bson_decimal128_from_string("1234.50", &dec);
  return BCON_NEW("_id", BCON_OID(&oid), "email", BCON_UTF8(email), "profile", "{", "name",
                  BCON_UTF8(name), "age", BCON_INT32(20 + i % 60), "}", "account", "{",
                  "balance", BCON_DECIMAL128(&dec), "}", "active", BCON_BOOL(i % 2),
                  "created", BCON_DATE_TIME(1700000000000LL + i), "score",
                  BCON_DOUBLE(i * 0.5), "tags", "[", BCON_UTF8("alpha"), BCON_UTF8("beta"),
                  BCON_UTF8("gamma"), "]", "address", "{", "street", BCON_UTF8("1 Main St"),
                  "city", BCON_UTF8("Springfield"), "zip", BCON_UTF8("12345"), "}", "plan",
                  BCON_UTF8("gold"), "visits", BCON_INT64(i * 3));
}

static uint64_t walk(bson_iter_t *it) {
  uint64_t acc = 0;
  while (bson_iter_next(it)) {
    acc += strlen(bson_iter_key(it));
    switch (bson_iter_type(it)) {
      case BSON_TYPE_UTF8: {
        uint32_t len;
        const char *s = bson_iter_utf8(it, &len);
        acc += len + (uint8_t)s[0];
        break;
      }
      case BSON_TYPE_DOCUMENT:
      case BSON_TYPE_ARRAY: {
        bson_iter_t sub;
        if (bson_iter_recurse(it, &sub)) acc += walk(&sub);
        break;
      }
      case BSON_TYPE_INT32: acc += (uint64_t)bson_iter_int32(it); break;
      case BSON_TYPE_INT64: acc += (uint64_t)bson_iter_int64(it); break;
      case BSON_TYPE_DOUBLE: acc += (uint64_t)bson_iter_double(it); break;
      case BSON_TYPE_BOOL: acc += bson_iter_bool(it); break;
      case BSON_TYPE_DATE_TIME: acc += (uint64_t)bson_iter_date_time(it); break;
      case BSON_TYPE_OID: acc += bson_iter_oid(it)->bytes[11]; break;
      case BSON_TYPE_DECIMAL128: {
        bson_decimal128_t d;
        bson_iter_decimal128(it, &d);
        acc += d.low;
        break;
      }
      default: break;
    }
  }
  return acc;
}

static int bench_transcode(const as_schema *s, int ndocs) {
  bson_t **docs = calloc((size_t)ndocs, sizeof *docs);
  for (int i = 0; i < ndocs; i++) docs[i] = make_doc(i);
  as_error err = {0};
  double best_walk = 1e9, best_ours = 1e9, best_to_row = 1e9;
  uint64_t sink = 0;
  size_t out_bytes = 0;
  for (int round = 0; round < 3; round++) {
    double t0 = now_s();
    for (int i = 0; i < ndocs; i++) {
      bson_iter_t it;
      if (bson_iter_init(&it, docs[i])) sink += walk(&it);
    }
    double t1 = now_s();
    as_delta d;
    as_delta_init(&d, s, AS_OP_UPDATE);
    bson_t upd;
    bson_init(&upd);
    for (int i = 0; i < ndocs; i++) {
      if (as_doc_to_row(s, docs[i], &d.row, &err) != AS_OK) {
        fprintf(stderr, "as_doc_to_row: %s\n", err.message);
        return 1;
      }
      if (as_delta_to_update(s, &d, NULL, &upd, &err) != AS_OK) {
        fprintf(stderr, "as_delta_to_update: %s\n", err.message);
        return 1;
      }
      out_bytes += upd.len;
      bson_destroy(&upd);
    }
    double t2 = now_s();
    for (int i = 0; i < ndocs; i++) {
      if (as_doc_to_row(s, docs[i], &d.row, &err) != AS_OK) {
        fprintf(stderr, "as_doc_to_row: %s\n", err.message);
        return 1;
      }
    }
    double t3 = now_s();
    if (t3 - t2 < best_to_row) best_to_row = t3 - t2;
    as_delta_clear(&d);
    if (t1 - t0 < best_walk) best_walk = t1 - t0;
    if (t2 - t1 < best_ours) best_ours = t2 - t1;
  }
  printf("mongo.transcode docs=%d walk_ns_per_doc=%.0f adapter_ns_per_doc=%.0f "
         "(doc_to_row alone %.0f) ratio=%.2f (target <= 2; checksum %llu/%zu)\n",
         ndocs, best_walk / ndocs * 1e9, best_ours / ndocs * 1e9, best_to_row / ndocs * 1e9,
         best_ours / best_walk,
         (unsigned long long)(sink & 0xff), out_bytes & 0xff);
  for (int i = 0; i < ndocs; i++) bson_destroy(docs[i]);
  free(docs);
  return 0;
}

/* Reads n events after `start` (a resume token _data) with a bare libmongoc loop. */
static double bare_stream(const char *uri, const char *db, const char *start, int n) {
  mongoc_client_t *c = mongoc_client_new(uri);
  mongoc_client_set_error_api(c, 2);
  mongoc_database_t *d = mongoc_client_get_database(c, db);
  bson_t *opts = BCON_NEW("fullDocument", BCON_UTF8("updateLookup"), "batchSize",
                          BCON_INT32(1000), "maxAwaitTimeMS", BCON_INT64(500), "resumeAfter",
                          "{", "_data", BCON_UTF8(start), "}");
  bson_t *pipeline = BCON_NEW("pipeline", "[", "{", "$match", "{", "ns.coll", "{", "$in", "[",
                              BCON_UTF8("users"), BCON_UTF8("__arraysync_marks"), "]", "}", "}",
                              "}", "]");
  double t0 = now_s();
  mongoc_change_stream_t *cs = mongoc_database_watch(d, pipeline, opts);
  const bson_t *ev;
  int got = 0, idle = 0;
  uint64_t sink = 0;
  while (got < n && idle < 20) {
    if (mongoc_change_stream_next(cs, &ev)) {
      got++;
      idle = 0;
      sink += ev->len;
    } else {
      idle++;
      bson_error_t be;
      if (mongoc_change_stream_error_document(cs, &be, NULL)) {
        fprintf(stderr, "bare stream: %s\n", be.message);
        break;
      }
    }
  }
  double t = now_s() - t0;
  mongoc_change_stream_destroy(cs);
  bson_destroy(opts);
  bson_destroy(pipeline);
  mongoc_database_destroy(d);
  mongoc_client_destroy(c);
  if (got != n) fprintf(stderr, "bare stream: %d of %d events\n", got, n);
  return got == n ? t : -1;
}

static double adapter_stream(as_node *n, const char *start, int count) {
  as_stream *s = NULL;
  as_error err = {0};
  as_batch b = {0};
  double t0 = now_s();
  if (as_adapter_mongodb.open_stream(n, "bench", start, &s, &err) != AS_OK) {
    fprintf(stderr, "open_stream: %s\n", err.message);
    return -1;
  }
  long got = 0;
  int idle = 0;
  while (got < count && idle < 20) {
    if (as_adapter_mongodb.poll(s, &b, 1000, 100, &err) != AS_OK) {
      fprintf(stderr, "poll: %s\n", err.message);
      break;
    }
    got += (long)b.n;
    idle = b.n ? 0 : idle + 1;
    as_batch_reset(&b);
  }
  double t = now_s() - t0;
  as_batch_clear(&b);
  as_adapter_mongodb.close_stream(s);
  if (got != count) fprintf(stderr, "adapter stream: %ld of %d events\n", got, count);
  return got == count ? t : -1;
}

static int bench_stream(const as_schema *s, const char *uri, int nevents) {
  char db[64];
  snprintf(db, sizeof db, "bench_mongo_%ld", (long)getpid());
  as_node_option o[2] = {{.key = "uri", .value = (char *)uri}, {.key = "database", .value = db}};
  as_node_config cfg = {.name = "mongo", .kind = "mongodb", .opts = o, .nopts = 2};
  const as_schema *ss[1] = {s};
  as_node *n = NULL;
  as_error err = {0};
  as_stream *st = NULL;
  char *start = NULL;
  if (as_adapter_mongodb.init(&cfg, ss, 1, &n, &err) != AS_OK ||
      as_adapter_mongodb.connect(n, &err) != AS_OK ||
      as_adapter_mongodb.install(n, &err) != AS_OK ||
      as_adapter_mongodb.open_stream(n, "bench", NULL, &st, &err) != AS_OK ||
      as_adapter_mongodb.stream_position(st, &start, &err) != AS_OK) {
    fprintf(stderr, "setup: %s\n", err.message);
    return 1;
  }
  as_adapter_mongodb.close_stream(st);
  /* the events: half inserts, half $set updates (updateLookup on the server) */
  mongoc_client_t *c = mongoc_client_new(uri);
  mongoc_collection_t *coll = mongoc_client_get_collection(c, db, "users");
  int ninsert = nevents / 2, nupdate = nevents - ninsert;
  bson_oid_t *ids = calloc((size_t)ninsert, sizeof *ids);
  for (int base = 0; base < ninsert; base += 1000) {
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, NULL);
    for (int i = base; i < base + 1000 && i < ninsert; i++) {
      bson_t *d = make_doc(i);
      bson_iter_t it;
      bson_iter_init_find(&it, d, "_id");
      bson_oid_copy(bson_iter_oid(&it), &ids[i]);
      mongoc_bulk_operation_insert(bulk, d);
      bson_destroy(d);
    }
    bson_error_t be;
    if (!mongoc_bulk_operation_execute(bulk, NULL, &be)) fprintf(stderr, "insert: %s\n", be.message);
    mongoc_bulk_operation_destroy(bulk);
  }
  for (int base = 0; base < nupdate; base += 1000) {
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, NULL);
    for (int i = base; i < base + 1000 && i < nupdate; i++) {
      bson_t *sel = BCON_NEW("_id", BCON_OID(&ids[i % ninsert]));
      bson_t *u = BCON_NEW("$set", "{", "profile.age", BCON_INT32(1000 + i), "}");
      mongoc_bulk_operation_update_one(bulk, sel, u, false);
      bson_destroy(sel);
      bson_destroy(u);
    }
    bson_error_t be;
    if (!mongoc_bulk_operation_execute(bulk, NULL, &be)) fprintf(stderr, "update: %s\n", be.message);
    mongoc_bulk_operation_destroy(bulk);
  }
  double best_bare = 1e9, best_ad = 1e9;
  for (int round = 0; round < 3; round++) { /* best of 3, interleaved: the machine is shared */
    double tb = bare_stream(uri, db, start, nevents);
    double ta = adapter_stream(n, start, nevents);
    if (tb < 0 || ta < 0) {
      fprintf(stderr, "stream round failed\n");
      return 1;
    }
    if (tb < best_bare) best_bare = tb;
    if (ta < best_ad) best_ad = ta;
  }
  printf("mongo.stream events=%d bare_events_per_s=%.0f adapter_events_per_s=%.0f ratio=%.2f "
         "(target >= 0.9)\n",
         nevents, nevents / best_bare, nevents / best_ad, best_bare / best_ad);
  bson_t *cmd = BCON_NEW("dropDatabase", BCON_INT32(1));
  mongoc_client_command_simple(c, db, cmd, NULL, NULL, NULL);
  bson_destroy(cmd);
  free(ids);
  free(start);
  mongoc_collection_destroy(coll);
  mongoc_client_destroy(c);
  as_adapter_mongodb.exit(n);
  return 0;
}

/* ------------------------------------------------------------------ sink */

#define SINK_BATCH 500

typedef enum sink_case { SINK_NEW, SINK_SAME, SINK_ONE_COL } sink_case;

static void drop_coll(mongoc_client_t *c, const char *db) {
  mongoc_collection_t *coll = mongoc_client_get_collection(c, db, "users");
  mongoc_collection_delete_many(coll, &(bson_t)BSON_INITIALIZER, NULL, NULL, NULL);
  mongoc_collection_destroy(coll);
}

/* Bare libmongoc: one transaction per batch, one bulk of replaceOne upserts (or $set). */
static double bare_sink(mongoc_client_t *c, const char *db, const as_schema *s, as_delta *d, int n, sink_case k) {
  mongoc_collection_t *coll = mongoc_client_get_collection(c, db, "users");
  bson_error_t be;
  mongoc_client_session_t *sess = mongoc_client_start_session(c, NULL, &be);
  double t0 = now_s();
  for (int base = 0; base < n; base += SINK_BATCH) {
    bson_t opts = BSON_INITIALIZER;
    mongoc_client_session_start_transaction(sess, NULL, &be);
    mongoc_client_session_append(sess, &opts, &be);
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, &opts);
    for (int i = base; i < base + SINK_BATCH && i < n; i++) {
      bson_t filter, doc;
      as_error err;
      if (as_key_to_filter(s, &d[i].row, &filter, &err) != AS_OK) return -1;
      if (k == SINK_ONE_COL) {
        as_delta one = d[i];
        if (as_delta_to_update(s, &one, NULL, &doc, &err) != AS_OK) return -1;
        mongoc_bulk_operation_update_one_with_opts(bulk, &filter, &doc, NULL, &be);
      } else {
        bson_t *o = BCON_NEW("upsert", BCON_BOOL(true));
        if (as_row_to_doc(s, &d[i].row, &doc, &err) != AS_OK) return -1;
        mongoc_bulk_operation_replace_one_with_opts(bulk, &filter, &doc, o, &be);
        bson_destroy(o);
      }
      bson_destroy(&filter);
      bson_destroy(&doc);
    }
    bson_t reply;
    if (!mongoc_bulk_operation_execute(bulk, &reply, &be)) fprintf(stderr, "bare bulk: %s\n", be.message);
    bson_destroy(&reply);
    mongoc_bulk_operation_destroy(bulk);
    if (!mongoc_client_session_commit_transaction(sess, NULL, &be)) fprintf(stderr, "bare commit: %s\n", be.message);
    bson_destroy(&opts);
  }
  double t = now_s() - t0;
  mongoc_client_session_destroy(sess);
  mongoc_collection_destroy(coll);
  return t;
}

static double adapter_sink(as_node *node, as_delta *d, int n) {
  as_error err = {0};
  as_dead_list dead = {0};
  double t0 = now_s();
  for (int base = 0; base < n; base += SINK_BATCH) {
    size_t nb = (size_t)(n - base < SINK_BATCH ? n - base : SINK_BATCH);
    if (as_adapter_mongodb.begin(node, &err) != AS_OK ||
        as_adapter_mongodb.apply(node, d + base, nb, &dead, &err) != AS_OK ||
        as_adapter_mongodb.commit(node, "bench->mongo", "cp", &err) != AS_OK) {
      fprintf(stderr, "adapter sink: %s\n", err.message);
      as_adapter_mongodb.rollback(node);
      return -1;
    }
    if (dead.n) fprintf(stderr, "adapter sink: %zu dead letters\n", dead.n);
    as_dead_list_clear(&dead);
  }
  return now_s() - t0;
}

static int bench_sink(const as_schema *s, const char *uri, int nrows) {
  static const char *const names[] = {"new", "same", "one_col"};
  char db[64];
  snprintf(db, sizeof db, "bench_sink_%ld", (long)getpid());
  as_node_option o[2] = {{.key = "uri", .value = (char *)uri}, {.key = "database", .value = db}};
  as_node_config cfg = {.name = "mongo", .kind = "mongodb", .opts = o, .nopts = 2};
  const as_schema *ss[1] = {s};
  as_node *node = NULL;
  as_error err = {0};
  int rc = 0;
  if (as_adapter_mongodb.init(&cfg, ss, 1, &node, &err) != AS_OK ||
      as_adapter_mongodb.connect(node, &err) != AS_OK || as_adapter_mongodb.install(node, &err) != AS_OK) {
    fprintf(stderr, "sink setup: %s\n", err.message);
    return 1;
  }
  mongoc_client_t *c = mongoc_client_new(uri);
  mongoc_client_set_error_api(c, 2);
  as_delta *ins = calloc((size_t)nrows, sizeof *ins), *upd = calloc((size_t)nrows, sizeof *upd);
  int age = as_schema_column_index(s, "age");
  for (int i = 0; i < nrows; i++) {
    bson_t *doc = make_doc(i);
    as_delta_init(&ins[i], s, AS_OP_INSERT);
    as_delta_set_origin(&ins[i], "pg");
    if (as_doc_to_row(s, doc, &ins[i].row, &err) != AS_OK) {
      fprintf(stderr, "row: %s\n", err.message);
      return 1;
    }
    as_delta_init(&upd[i], s, AS_OP_UPDATE);
    as_delta_set_origin(&upd[i], "pg");
    as_value v = AS_VALUE_NULL;
    as_value_copy(&v, &ins[i].row.v[0]);
    as_row_put(&upd[i].row, 0, &v);
    as_value_set_int64(&v, 100000 + i);
    as_row_put(&upd[i].row, (size_t)age, &v);
    bson_destroy(doc);
  }
  for (int k = SINK_NEW; k <= SINK_ONE_COL && rc == 0; k++) {
    as_delta *d = k == SINK_ONE_COL ? upd : ins;
    double best_bare = 1e9, best_ad = 1e9;
    for (int round = 0; round < 3; round++) { /* best of 3, interleaved: the machine is shared */
      double tb, ta;
      drop_coll(c, db);
      if (k != SINK_NEW) bare_sink(c, db, s, ins, nrows, SINK_NEW); /* the documents exist */
      tb = bare_sink(c, db, s, d, nrows, (sink_case)k);
      drop_coll(c, db);
      if (k != SINK_NEW) bare_sink(c, db, s, ins, nrows, SINK_NEW);
      ta = adapter_sink(node, d, nrows);
      if (tb < 0 || ta < 0) {
        rc = 1;
        break;
      }
      if (tb < best_bare) best_bare = tb;
      if (ta < best_ad) best_ad = ta;
    }
    if (rc == 0)
      printf("mongo.sink.%s rows=%d bare_rows_per_s=%.0f adapter_rows_per_s=%.0f ratio=%.2f\n", names[k], nrows,
             nrows / best_bare, nrows / best_ad, best_bare / best_ad);
  }
  bson_t *cmd = BCON_NEW("dropDatabase", BCON_INT32(1));
  mongoc_client_command_simple(c, db, cmd, NULL, NULL, NULL);
  bson_destroy(cmd);
  for (int i = 0; i < nrows; i++) {
    as_delta_clear(&ins[i]);
    as_delta_clear(&upd[i]);
  }
  free(ins);
  free(upd);
  mongoc_client_destroy(c);
  as_adapter_mongodb.exit(node);
  return rc;
}

int main(int argc, char **argv) {
  int ndocs = argc > 1 ? atoi(argv[1]) : 100000;
  int nevents = argc > 2 ? atoi(argv[2]) : 20000;
  int nsink = argc > 3 ? atoi(argv[3]) : 5000;
  as_schema *s = NULL;
  as_error err = {0};
  as_log_set_level(AS_LOG_ERROR);
  setvbuf(stdout, NULL, _IOLBF, 0);
  mongoc_init();
  if (as_schema_load_string("bench.yaml", mapping_yaml, &s, &err) != AS_OK) {
    fprintf(stderr, "schema: %s\n", err.message);
    return 1;
  }
  int rc = bench_transcode(s, ndocs);
  const char *uri = getenv("ARRAYSYNC_TEST_MONGODB_URI");
  if (rc == 0 && uri && *uri) rc = bench_stream(s, uri, nevents);
  else if (rc == 0) printf("mongo.stream skipped (set ARRAYSYNC_TEST_MONGODB_URI)\n");
  if (rc == 0 && uri && *uri && nsink > 0) rc = bench_sink(s, uri, nsink);
  else if (rc == 0) printf("mongo.sink skipped (set ARRAYSYNC_TEST_MONGODB_URI)\n");
  as_schema_free(s);
  mongoc_cleanup();
  return rc;
}
