/* mongo_admin.c — MongoDB adapter: the read-only administrative callbacks: sample (`arraysync
 * infer`), check_live (`arraysync check --live`) and versions. Nothing here writes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_log.h"
#include "mongo_internal.h"

typedef void (*report_fn)(void *ctx, bool ok, const char *what, const char *fix);

static bool collection_exists(as_node *n, const char *name, bool *exists, as_error *err) {
  bson_error_t be;
  mongoc_database_t *db = mongoc_client_get_database(n->client, n->database);
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, child;
  BSON_APPEND_UTF8(&filter, "name", name);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "filter", &child);
  BSON_APPEND_UTF8(&child, "name", name);
  bson_append_document_end(&opts, &child);
  char **names = mongoc_database_get_collection_names_with_opts(db, &opts, &be);
  bool ok = names != NULL;
  if (!ok) as_mongo_fail(err, "list collections", &be, NULL);
  *exists = names && names[0];
  bson_strfreev(names);
  bson_destroy(&filter);
  bson_destroy(&opts);
  mongoc_database_destroy(db);
  return ok;
}

int as_mongo_sample(as_node *n, const char *name, size_t max, bool random,
                    int (*fn)(void *ctx, const bson_t *doc), void *ctx, as_error *err) {
  bool exists = false;
  int crc = n->client ? AS_OK : as_adapter_mongodb.connect(n, err);
  if (crc != AS_OK) return crc;
  if (!collection_exists(n, name, &exists, err)) return AS_ERR;
  if (!exists) {
    return as_error_set(err, AS_DOM_MONGO, AS_ENOTFOUND, "node %s: database %s has no collection "
                        "\"%s\"", n->name, n->database, name);
  }
  mongoc_collection_t *c = mongoc_client_get_collection(n->client, n->database, name);
  mongoc_cursor_t *cur;
  bson_t *q = NULL, *o = NULL;
  if (random) {
    q = BCON_NEW("pipeline", "[", "{", "$sample", "{", "size", BCON_INT64((int64_t)max), "}",
                 "}", "]");
    cur = mongoc_collection_aggregate(c, MONGOC_QUERY_NONE, q, NULL, NULL);
  } else {
    q = bson_new();
    o = BCON_NEW("limit", BCON_INT64((int64_t)max), "sort", "{", "$natural", BCON_INT32(1), "}");
    cur = mongoc_collection_find_with_opts(c, q, o, NULL);
  }
  const bson_t *doc;
  int rc = AS_OK;
  size_t seen = 0;
  while (rc == AS_OK && seen < max && mongoc_cursor_next(cur, &doc)) {
    seen++;
    rc = fn(ctx, doc);
  }
  bson_error_t be;
  const bson_t *reply = NULL;
  bool no_sample = false;
  if (rc == AS_OK && mongoc_cursor_error_document(cur, &be, &reply)) {
    /* a server without $sample (error 40324, unknown stage): the first documents instead */
    no_sample = random && seen == 0 && be.code == 40324;
    if (!no_sample) rc = as_mongo_fail(err, random ? "sample ($sample)" : "sample (find)", &be, reply);
  }
  mongoc_cursor_destroy(cur);
  bson_destroy(q);
  bson_destroy(o);
  mongoc_collection_destroy(c);
  if (no_sample) {
    AS_LOG(AS_LOG_WARN, n->comp, "the server has no $sample stage: reading the first %zu "
           "documents of %s instead of a random sample", max, name);
    return as_mongo_sample(n, name, max, false, fn, ctx, err);
  }
  return rc;
}

static bool command(as_node *n, const char *db, bson_t *cmd, bson_t *reply, char *msg,
                    size_t cap) {
  bson_error_t be;
  bool ok = mongoc_client_command_simple(n->client, db, cmd, NULL, reply, &be);
  if (!ok) snprintf(msg, cap, "%s (error %u)", be.message, be.code);
  bson_destroy(cmd);
  return ok;
}

/* The actions the user's privileges grant on the database (or on every database). */
static bool has_actions(const bson_t *reply, const char *db, const char *const *want,
                        char *missing, size_t cap) {
  bson_iter_t it, privs, priv, sub;
  missing[0] = '\0';
  bool unauthenticated = false;
  if (bson_iter_init(&it, reply) && bson_iter_find_descendant(&it, "authInfo.authenticatedUsers",
                                                                &sub) &&
      BSON_ITER_HOLDS_ARRAY(&sub)) {
    bson_iter_t users;
    unauthenticated = bson_iter_recurse(&sub, &users) && !bson_iter_next(&users);
  }
  if (unauthenticated) return true; /* no access control: every action is allowed */
  for (size_t w = 0; want[w]; w++) {
    bool found = false;
    if (bson_iter_init(&it, reply) &&
        bson_iter_find_descendant(&it, "authInfo.authenticatedUserPrivileges", &privs) &&
        bson_iter_recurse(&privs, &priv)) {
      while (!found && bson_iter_next(&priv)) {
        bson_iter_t p, r, a;
        if (!bson_iter_recurse(&priv, &p)) continue;
        const char *rdb = NULL;
        bool any = false;
        if (bson_iter_find_descendant(&p, "resource.db", &r) && BSON_ITER_HOLDS_UTF8(&r)) {
          rdb = bson_iter_utf8(&r, NULL);
        }
        bson_iter_recurse(&priv, &p);
        if (bson_iter_find(&p, "resource") && bson_iter_recurse(&p, &r) &&
            bson_iter_find(&r, "anyResource")) {
          any = true;
        }
        if (!any && !(rdb && (!*rdb || strcmp(rdb, db) == 0))) continue;
        bson_iter_recurse(&priv, &p);
        if (!bson_iter_find(&p, "actions") || !bson_iter_recurse(&p, &a)) continue;
        while (bson_iter_next(&a)) {
          if (BSON_ITER_HOLDS_UTF8(&a) && strcmp(bson_iter_utf8(&a, NULL), want[w]) == 0) {
            found = true;
          }
        }
      }
    }
    if (!found) {
      size_t l = strlen(missing);
      snprintf(missing + l, cap - l, "%s%s", l ? ", " : "", want[w]);
    }
  }
  return missing[0] == '\0';
}

static void check_privileges(as_node *n, report_fn report, void *ctx, bool *all_ok) {
  char what[600], fix[600], msg[400];
  bson_t reply;
  bson_t *cmd = BCON_NEW("connectionStatus", BCON_INT32(1), "showPrivileges", BCON_BOOL(true));
  bool ok = command(n, "admin", cmd, &reply, msg, sizeof msg);
  static const char *const need[] = {"find", "insert", "update", "remove", "changeStream",
                                     "createCollection", "createIndex", NULL};
  char missing[300] = "";
  if (ok) ok = has_actions(&reply, n->database, need, missing, sizeof missing);
  snprintf(what, sizeof what, "node %s: privileges on database %s (find, insert, update, "
           "remove, changeStream, createCollection, createIndex)%s%s", n->name, n->database,
           missing[0] ? ": missing " : "", missing);
  snprintf(fix, sizeof fix, "grant the connector's user the readWrite role on %s (db.grantRolesToUser"
           "(USER, [{role: \"readWrite\", db: \"%s\"}]))%s%s", n->database, n->database,
           msg[0] && !missing[0] ? "; " : "", msg[0] && !missing[0] ? msg : "");
  report(ctx, ok, what, fix);
  *all_ok = *all_ok && ok;
  bson_destroy(&reply);
}

static void check_change_stream(as_node *n, report_fn report, void *ctx, bool *all_ok) {
  char what[400], fix[600] = "";
  mongoc_database_t *db = mongoc_client_get_database(n->client, n->database);
  bson_t *opts = BCON_NEW("maxAwaitTimeMS", BCON_INT64(1));
  bson_t pipeline = BSON_INITIALIZER;
  mongoc_change_stream_t *cs = mongoc_database_watch(db, &pipeline, opts);
  const bson_t *ev;
  bson_error_t be;
  const bson_t *reply = NULL;
  bool ok = cs != NULL;
  if (cs) {
    mongoc_change_stream_next(cs, &ev);
    ok = !mongoc_change_stream_error_document(cs, &be, &reply);
    if (!ok) snprintf(fix, sizeof fix, "%s (error %u): change streams need a replica set (or "
                      "sharded cluster) and the changeStream privilege", be.message, be.code);
  }
  snprintf(what, sizeof what, "node %s: a change stream opens on database %s", n->name,
           n->database);
  report(ctx, ok, what, fix);
  *all_ok = *all_ok && ok;
  mongoc_change_stream_destroy(cs);
  bson_destroy(&pipeline);
  bson_destroy(opts);
  mongoc_database_destroy(db);
}

/* A read-only transaction: start, read one mapped collection, commit. */
static void check_transaction(as_node *n, report_fn report, void *ctx, bool *all_ok) {
  char what[400], fix[600] = "";
  bson_error_t be;
  mongoc_client_session_t *s = mongoc_client_start_session(n->client, NULL, &be);
  bool ok = s && mongoc_client_session_start_transaction(s, NULL, &be);
  if (ok) {
    const char *coll = n->nschemas ? n->schemas[0]->collection : AS_MONGO_CHECKPOINTS;
    mongoc_collection_t *c = mongoc_client_get_collection(n->client, n->database, coll);
    bson_t opts = BSON_INITIALIZER, q = BSON_INITIALIZER;
    ok = mongoc_client_session_append(s, &opts, &be);
    BSON_APPEND_INT64(&opts, "limit", 1);
    mongoc_cursor_t *cur = ok ? mongoc_collection_find_with_opts(c, &q, &opts, NULL) : NULL;
    const bson_t *d;
    if (cur) {
      mongoc_cursor_next(cur, &d);
      ok = !mongoc_cursor_error(cur, &be);
      mongoc_cursor_destroy(cur);
    }
    bson_t reply;
    if (ok) ok = mongoc_client_session_commit_transaction(s, &reply, &be);
    if (ok) bson_destroy(&reply);
    bson_destroy(&opts);
    bson_destroy(&q);
    mongoc_collection_destroy(c);
  }
  if (!ok) {
    snprintf(fix, sizeof fix, "%s (error %u): transactions need a replica set (mongod "
             "--replSet NAME, then rs.initiate()) or a sharded cluster", be.message, be.code);
  }
  snprintf(what, sizeof what, "node %s: transactions (a read-only transaction commits)",
           n->name);
  report(ctx, ok, what, fix);
  *all_ok = *all_ok && ok;
  if (s) mongoc_client_session_destroy(s);
}

int as_mongo_check_live(as_node *n, report_fn report, void *ctx) {
  as_error err = {0};
  char what[600], fix[800];
  int rc = as_adapter_mongodb.connect(n, &err);
  snprintf(what, sizeof what, "node %s: connects to %s", n->name, n->uri_redacted);
  snprintf(fix, sizeof fix, "%s: check the uri option (host, port, credentials) and that the "
           "server runs", err.message);
  report(ctx, rc == AS_OK, what, fix);
  if (rc != AS_OK) return AS_ERR;
  bool all_ok = true;
  snprintf(what, sizeof what, "node %s: the server is a replica set member or mongos (change "
           "streams, transactions)", n->name);
  report(ctx, n->txn_capable, what,
         "start mongod with --replSet NAME and run rs.initiate() once (a single-node replica "
         "set is enough), and name it in the uri (?replicaSet=NAME)");
  all_ok = all_ok && n->txn_capable;
  check_privileges(n, report, ctx, &all_ok);
  check_change_stream(n, report, ctx, &all_ok);
  if (n->txn_capable) check_transaction(n, report, ctx, &all_ok);
  for (size_t i = 0; i < n->nschemas; i++) {
    bool exists = false;
    bool ok = collection_exists(n, n->schemas[i]->collection, &exists, &err);
    snprintf(what, sizeof what, "node %s: collection %s.%s %s (mapping %s)", n->name,
             n->database, n->schemas[i]->collection,
             !ok ? "can be listed" : exists ? "exists" : "is missing: `arraysync install` or the "
             "first write creates it", n->schemas[i]->name);
    report(ctx, ok, what, err.message);
    all_ok = all_ok && ok;
  }
  return all_ok ? AS_OK : AS_ERR;
}

void as_mongo_versions(void (*fn)(void *ctx, const char *lib, const char *version), void *ctx) {
  fn(ctx, "libmongoc", mongoc_get_version());
  fn(ctx, "libbson", bson_get_version());
}
