/* mongo_node.c — MongoDB adapter: node set-up, errors, install, the sink's sessions, reads.
 * The sink is in mongo_sink.c, capture and snapshot in mongo_capture.c. Design notes:
 * README.md in this directory. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <xxhash.h>

#include "as_log.h"
#include "as_time.h"
#include "mongo_internal.h"
#include "mongo_verify.h"

/* ------------------------------------------------------------------ helpers */

static bool has_any_label(const bson_t *reply) {
  static const char *const labels[] = {"TransientTransactionError", "UnknownTransactionCommitResult",
                                       "ResumableChangeStreamError", "RetryableWriteError",
                                       NULL};
  if (!reply) return false;
  for (size_t i = 0; labels[i]; i++) {
    if (mongoc_error_has_label(reply, labels[i])) return true;
  }
  return false;
}

int as_mongo_classify(const bson_error_t *e, const bson_t *reply) {
  if (has_any_label(reply)) return AS_RETRY;
  if (!e) return AS_ERR;
  if (e->domain == MONGOC_ERROR_STREAM || e->domain == MONGOC_ERROR_SERVER_SELECTION)
    return AS_RETRY;
  switch (e->code) {
    case 6: case 7: case 43: case 63: case 89: case 91: case 112: case 133: case 150: case 189:
    case 234: case 251: case 262: case 9001: case 10107: case 11600: case 11602: case 13388:
    case 13435: case 13436:
      if (e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_QUERY ||
          e->domain == MONGOC_ERROR_WRITE_CONCERN || e->domain == MONGOC_ERROR_CURSOR)
        return AS_RETRY;
      break;
    default:
      break;
  }
  return AS_ERR;
}

int as_mongo_fail(as_error *err, const char *what, const bson_error_t *e, const bson_t *reply) {
  int rc = as_mongo_classify(e, reply);
  as_error_set(err, AS_DOM_MONGO, (int)e->code, "%s: %s (%s, error %u)", what, e->message,
               rc == AS_RETRY ? "transient" : "permanent", e->code);
  return rc;
}

bson_t *as_mongo_bson_new(void) {
  /* bson_t is declared 128-byte aligned */
  bson_t *b = aligned_alloc(BSON_ALIGNOF(bson_t), sizeof *b);
  if (b) bson_init(b);
  return b;
}

bson_t *as_mongo_bson_copy(const bson_t *src) {
  bson_t *b = as_mongo_bson_new();
  if (b && !bson_concat(b, src)) {
    as_mongo_bson_free(b);
    b = NULL;
  }
  return b;
}

void as_mongo_bson_free(bson_t *b) {
  if (!b) return;
  bson_destroy(b);
  free(b);
}

/* AS_MONGO_RAW_HEX's hex digits -> a document (NULL when they are not a BSON document). */
static bson_t *doc_from_hex(const char *h) {
  size_t n = strlen(h);
  if (n % 2 || n < 10) return NULL;
  uint8_t *b = malloc(n / 2);
  if (!b) return NULL;
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v = 0;
    for (int k = 0; k < 2; k++) {
      char c = h[2 * i + (size_t)k];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) {
        free(b);
        return NULL;
      }
      v = v * 16 + (unsigned)d;
    }
    b[i] = (uint8_t)v;
  }
  bson_t *doc = bson_new_from_data(b, n / 2);
  free(b);
  return doc;
}

/* A dead letter's raw form (canonical extended JSON of the document, or AS_MONGO_RAW_HEX and
 * its bytes) -> an insert. */
static int decode_raw(const as_schema *s, const char *raw, as_delta *out, as_error *err) {
  bson_error_t berr;
  size_t plen = strlen(AS_MONGO_RAW_HEX);
  bson_t *doc = NULL;
  if (strncmp(raw, AS_MONGO_RAW_HEX, plen) == 0) {
    if (!(doc = doc_from_hex(raw + plen)))
      return as_error_set(err, AS_DOM_MONGO, AS_EDATA, "stored document: not a BSON document");
  } else if (!(doc = bson_new_from_json((const uint8_t *)raw, -1, &berr))) {
    return as_error_set(err, AS_DOM_MONGO, AS_EDATA, "stored document: %s", berr.message);
  }
  int rc = as_delta_init(out, s, AS_OP_INSERT);
  if (rc == AS_OK) rc = as_doc_to_row(s, doc, &out->row, err);
  bson_destroy(doc);
  return rc;
}

/* ------------------------------------------------------------------ config, init, connect */

/* The node's options (config map below: one line per option). */
typedef struct mongo_opts {
  char *uri;
  char *database;
  int full_document;   /* index into full_documents */
  int on_history_lost; /* index into history_lost */
  int64_t batch_size;
  int64_t max_await_ms;
} mongo_opts;

static const char *const full_documents[] = {"updateLookup", "whenAvailable", NULL};
static const char *const history_lost[] = {"fail", "resnapshot", NULL};

static const as_config_entry config_map[] = {
    AS_OPT_REQ(SECRET, mongo_opts, uri,
               "MongoDB connection string (a replica set for change streams); never logged",
               "\"mongodb://127.0.0.1:27017/?replicaSet=rs0\""),
    AS_OPT_REQ(STRING, mongo_opts, database,
               "database holding the mapped collections and the bookkeeping", "shop"),
    AS_OPT(ENUM, mongo_opts, full_document, "updateLookup",
           "fullDocument mode of the change stream: updateLookup, or whenAvailable for "
           "collections with changeStreamPreAndPostImages (then pre-images too: the script "
           "strategy's ctx.base)",
           NULL, .allowed = full_documents),
    AS_OPT(ENUM, mongo_opts, on_history_lost, "fail",
           "when the resume position is older than the server's change history (error 286): "
           "fail or resnapshot",
           NULL, .allowed = history_lost),
    AS_OPT(INT, mongo_opts, batch_size, "1000",
           "cursor batch size for snapshots and change streams", "500", .min = 1,
           .max = 1000000000),
    AS_OPT(INT, mongo_opts, max_await_ms, "20",
           "longest a change stream getMore waits on the server for new events, in "
           "milliseconds (bounds poll latency)",
           "100", .min = 1, .max = 1000000000),
    AS_OPT_END};

static void log_handler(mongoc_log_level_t level, const char *domain, const char *message,
                        void *ud) {
  (void)ud;
  as_log_level l = level <= MONGOC_LOG_LEVEL_WARNING ? AS_LOG_WARN
                   : level == MONGOC_LOG_LEVEL_TRACE  ? AS_LOG_TRACE
                                                      : AS_LOG_DEBUG;
  if (level <= MONGOC_LOG_LEVEL_WARNING && level != MONGOC_LOG_LEVEL_ERROR &&
      level != MONGOC_LOG_LEVEL_CRITICAL)
    l = AS_LOG_DEBUG; /* libmongoc warnings are chatty (e.g. deprecations): debug */
  AS_LOG(l, "mongoc", "%s: %s", domain ? domain : "", message ? message : "");
}

static pthread_once_t mongo_once = PTHREAD_ONCE_INIT;
static void mongo_global_init(void) {
  mongoc_init();
  mongoc_log_set_handler(log_handler, NULL);
}

static void node_exit(as_node *n) {
  if (!n) return;
  if (n->sess) mongoc_client_session_destroy(n->sess);
  if (n->client && n->pool) mongoc_client_pool_push(n->pool, n->client);
  if (n->pool) mongoc_client_pool_destroy(n->pool);
  if (n->uri) mongoc_uri_destroy(n->uri);
  as_mongo_sink_free(n);
  as_mongo_bson_free(n->lsid);
  pthread_mutex_destroy(&n->mu);
  pthread_mutex_destroy(&n->gone_mu);
  pthread_mutex_destroy(&n->gone_load_mu);
  as_mongo_image_free(n);
  pthread_mutex_destroy(&n->img_mu);
  free(n->mark_origin);
  free(n->name);
  free(n->database);
  free(n->uri_redacted);
  free(n->schemas);
  free(n);
}

static int node_init(const as_node_config *cfg, const as_schema *const *schemas, size_t nschemas,
                     as_node **out, as_error *err) {
  int rc = AS_EINVAL;
  bson_error_t be;
  mongo_opts o = {0};
  as_node *n = calloc(1, sizeof *n);
  *out = NULL;
  if (!n) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  pthread_mutex_init(&n->mu, NULL);
  pthread_mutex_init(&n->gone_mu, NULL);
  pthread_mutex_init(&n->gone_load_mu, NULL);
  pthread_mutex_init(&n->img_mu, NULL);
  pthread_once(&mongo_once, mongo_global_init);
  n->name = strdup(cfg->name ? cfg->name : "mongodb");
  if (!n->name) goto oom;
  n->local_only = cfg->local_only;
  n->nconsumers = cfg->nconsumers > INT_MAX ? INT_MAX : (int)cfg->nconsumers;
  snprintf(n->comp, sizeof n->comp, "mongodb:%s", n->name);
  if ((rc = as_node_options_parse(cfg, config_map, &o, err)) != AS_OK) goto cleanup;
  rc = AS_EINVAL;
  const char *uri = o.uri, *db = o.database;
  if (strpbrk(db, "/\\. \"$")) {
    as_node_option_error(err, cfg, "database", "\"%s\" is not a plain database name (no /, \\, "
                         "., space, \" or $)", db);
    goto cleanup;
  }
  n->when_available = o.full_document == 1;
  for (size_t i = 0; !n->when_available && i < nschemas; i++) {
    if (schemas[i]->nchildren)
      AS_LOG(AS_LOG_WARN, n->comp, "mapping %s: an array changed by element ($push, $pull, $set "
             "of a.1.b) is read from the document when each stream reads its event "
             "(full_document: updateLookup), which can be a later state: with writers on other "
             "nodes too, enable changeStreamPreAndPostImages on collection %s and set "
             "full_document: whenAvailable", schemas[i]->name, schemas[i]->collection);
  }
  n->resnapshot = o.on_history_lost == 1;
  n->batch_size = (int32_t)o.batch_size;
  n->max_await_ms = (int32_t)o.max_await_ms;
  /* a mark identical to the stored one would be a no-op write without a change event: start
   * the counter from the clock so that it never repeats across restarts */
  n->mark_n = (uint64_t)as_now_us();
  /* one mark document per process: a transaction left open by a killed connector holds its
   * mark until the server's transaction lifetime passes, and must not block the next one */
  snprintf(n->mark_id, sizeof n->mark_id, "%s:%ld:%llu", cfg->name, (long)getpid(),
           (unsigned long long)n->mark_n);
  n->uri_redacted = as_log_redact(uri);
  n->database = strdup(db);
  if (!n->uri_redacted || !n->database) goto oom;
  n->uri = mongoc_uri_new_with_error(uri, &be);
  if (!n->uri) {
    as_node_option_error(err, cfg, "uri", "invalid connection string %s: %s", n->uri_redacted,
                         be.message);
    goto cleanup;
  }
  mongoc_uri_set_appname(n->uri, "arraysync");
  /* The driver's default (30 s) is how long every blocked operation, and the session clean-up
   * of a clean stop, waits for an unreachable server; the engine retries anyway, so wait less
   * unless the URI says otherwise. */
  if (!mongoc_uri_has_option(n->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS)) {
    mongoc_uri_set_option_as_int32(n->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
  }
  /* Every wait on a reply is bounded (the driver's default is 5 minutes): a server that
   * stopped answering gives AS_RETRY after this long. Longer than any getMore may wait. */
  if (!mongoc_uri_has_option(n->uri, MONGOC_URI_SOCKETTIMEOUTMS)) {
    mongoc_uri_set_option_as_int32(n->uri, MONGOC_URI_SOCKETTIMEOUTMS, 60000 + n->max_await_ms);
  }
  n->schemas = calloc(nschemas ? nschemas : 1, sizeof *n->schemas);
  if (!n->schemas) goto oom;
  for (size_t i = 0; i < nschemas; i++) {
    if (!schemas[i]->collection || !*schemas[i]->collection) {
      as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "node %s: mapping %s has no collection",
                   n->name, schemas[i]->name);
      goto cleanup;
    }
    if (strncmp(schemas[i]->collection, "__arraysync_", 12) == 0) {
      as_error_set(err, AS_DOM_CONFIG, AS_EINVAL,
                   "node %s: mapping %s: collection names starting with __arraysync_ are reserved",
                   n->name, schemas[i]->name);
      goto cleanup;
    }
    n->schemas[i] = schemas[i];
  }
  n->nschemas = nschemas;
  *out = n;
  n = NULL;
  rc = AS_OK;
  goto cleanup;
oom:
  rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
cleanup:
  as_cfgmap_free(config_map, &o);
  node_exit(n);
  return rc;
}

_Thread_local as_mongo_batch_seen as_mongo_last_batch;

/* Command monitoring: the size of each cursor batch this thread receives. Runs in the thread
 * that sent the command, inside mongoc_change_stream_next (or any other command's call);
 * mongo_capture.c's poll reads it. */
static void batch_seen(const mongoc_apm_command_succeeded_t *ev) {
  const char *name = mongoc_apm_command_succeeded_get_command_name(ev);
  const char *field;
  if (strcmp(name, "getMore") == 0)
    field = "cursor.nextBatch";
  else if (strcmp(name, "aggregate") == 0)
    field = "cursor.firstBatch";
  else
    return;
  bson_iter_t it, arr;
  int64_t nd = 0;
  const bson_t *reply = mongoc_apm_command_succeeded_get_reply(ev);
  if (!reply || !bson_iter_init(&it, reply) || !bson_iter_find_descendant(&it, field, &arr) ||
      !BSON_ITER_HOLDS_ARRAY(&arr) || !bson_iter_recurse(&arr, &it))
    return;
  while (bson_iter_next(&it)) nd++;
  as_mongo_last_batch.ndocs = nd;
  as_mongo_last_batch.seq++;
}

static void apm_install(mongoc_client_pool_t *pool) {
  mongoc_apm_callbacks_t *cb = mongoc_apm_callbacks_new();
  if (!cb) return;
  mongoc_apm_set_command_succeeded_cb(cb, batch_seen);
  /* without them the poll falls back to timing its calls (as_mongo_poll) */
  (void)mongoc_client_pool_set_apm_callbacks(pool, cb, NULL);
  mongoc_apm_callbacks_destroy(cb);
}

static int node_connect(as_node *n, as_error *err) {
  bson_error_t be;
  bson_t reply = BSON_INITIALIZER;
  bson_t cmd = BSON_INITIALIZER;
  bson_iter_t it;
  int rc = AS_OK;
  if (!n->pool) {
    mongoc_client_pool_t *pool = mongoc_client_pool_new_with_error(n->uri, &be);
    if (!pool) {
      rc = as_error_set(err, AS_DOM_MONGO, AS_EINVAL, "node %s: cannot use uri %s: %s", n->name,
                        n->uri_redacted, be.message);
      goto cleanup;
    }
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    apm_install(pool);
    pthread_mutex_lock(&n->mu);
    n->pool = pool;
    pthread_mutex_unlock(&n->mu);
  }
  if (!n->client) n->client = mongoc_client_pool_pop(n->pool);
  BSON_APPEND_INT32(&cmd, "hello", 1);
  bson_destroy(&reply);
  if (!mongoc_client_command_simple(n->client, "admin", &cmd, NULL, &reply, &be)) {
    rc = as_mongo_fail(err, "connect", &be, &reply);
    as_error_prefix(err, "node %s (%s)", n->name, n->uri_redacted);
    goto cleanup;
  }
  n->txn_capable = bson_iter_init_find(&it, &reply, "setName") ||
                   (bson_iter_init_find(&it, &reply, "msg") && BSON_ITER_HOLDS_UTF8(&it) &&
                    strcmp(bson_iter_utf8(&it, NULL), "isdbgrid") == 0);
  AS_LOG(AS_LOG_INFO, n->comp, "connected to %s (database %s, transactions %s)", n->uri_redacted,
         n->database, n->txn_capable ? "yes" : "no: no echo marks");
cleanup:
  bson_destroy(&cmd);
  bson_destroy(&reply);
  return rc;
}

/* ------------------------------------------------------------------ install / uninstall */

static bool name_in(char **names, const char *name) {
  for (size_t i = 0; names && names[i]; i++) {
    if (strcmp(names[i], name) == 0) return true;
  }
  return false;
}

static int create_coll(as_node *n, mongoc_database_t *db, char **names, const char *name,
                       as_error *err) {
  bson_error_t be;
  if (name_in(names, name)) return AS_OK;
  mongoc_collection_t *c = mongoc_database_create_collection(db, name, NULL, &be);
  if (c) {
    mongoc_collection_destroy(c);
    AS_LOG(AS_LOG_INFO, n->comp, "created collection %s.%s", n->database, name);
    return AS_OK;
  }
  if (be.code == 48) return AS_OK; /* NamespaceExists: created concurrently */
  int rc = as_mongo_fail(err, "create collection", &be, NULL);
  as_error_prefix(err, "node %s: %s.%s", n->name, n->database, name);
  return rc;
}

/* A unique index on the key paths when the key is not _id alone. */
static int key_index(as_node *n, mongoc_database_t *db, const as_schema *s, as_error *err) {
  if (s->nkey == 1 && s->cols[s->key_idx[0]].field &&
      strcmp(s->cols[s->key_idx[0]].field, "_id") == 0)
    return AS_OK;
  bson_t cmd = BSON_INITIALIZER, idxs, idx, keys, reply;
  bson_error_t be;
  int rc = AS_OK;
  BSON_APPEND_UTF8(&cmd, "createIndexes", s->collection);
  BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &idxs);
  BSON_APPEND_DOCUMENT_BEGIN(&idxs, "0", &idx);
  BSON_APPEND_DOCUMENT_BEGIN(&idx, "key", &keys);
  for (size_t k = 0; k < s->nkey; k++) BSON_APPEND_INT32(&keys, s->cols[s->key_idx[k]].field, 1);
  bson_append_document_end(&idx, &keys);
  BSON_APPEND_UTF8(&idx, "name", "arraysync_key");
  BSON_APPEND_BOOL(&idx, "unique", true);
  bson_append_document_end(&idxs, &idx);
  bson_append_array_end(&cmd, &idxs);
  if (!mongoc_database_write_command_with_opts(db, &cmd, NULL, &reply, &be)) {
    rc = as_mongo_fail(err, "createIndexes", &be, &reply);
    as_error_prefix(err, "node %s: mapping %s: collection %s", n->name, s->name, s->collection);
  }
  bson_destroy(&reply);
  bson_destroy(&cmd);
  return rc;
}

static int node_install(as_node *n, as_error *err) {
  bson_error_t be;
  int rc = AS_OK;
  mongoc_database_t *db = mongoc_client_get_database(n->client, n->database);
  char **names = mongoc_database_get_collection_names_with_opts(db, NULL, &be);
  if (!names) {
    rc = as_mongo_fail(err, "listCollections", &be, NULL);
    as_error_prefix(err, "node %s", n->name);
    goto cleanup;
  }
  if ((rc = create_coll(n, db, names, AS_MONGO_CHECKPOINTS, err)) != AS_OK) goto cleanup;
  if ((rc = create_coll(n, db, names, AS_MONGO_MARKS, err)) != AS_OK) goto cleanup;
  if ((rc = create_coll(n, db, names, AS_MONGO_SESSIONS, err)) != AS_OK) goto cleanup;
  if ((rc = create_coll(n, db, names, AS_MONGO_GONE, err)) != AS_OK) goto cleanup;
  for (size_t i = 0; i < n->nschemas; i++) {
    if ((rc = create_coll(n, db, names, n->schemas[i]->collection, err)) != AS_OK) goto cleanup;
    if ((rc = key_index(n, db, n->schemas[i], err)) != AS_OK) goto cleanup;
  }
cleanup:
  bson_strfreev(names);
  mongoc_database_destroy(db);
  return rc;
}

static int node_uninstall(as_node *n, as_error *err) {
  static const char *const colls[] = {AS_MONGO_CHECKPOINTS, AS_MONGO_MARKS, AS_MONGO_SESSIONS,
                                      AS_MONGO_GONE, NULL};
  int rc = AS_OK;
  for (size_t i = 0; colls[i] && rc == AS_OK; i++) {
    bson_error_t be;
    mongoc_collection_t *c = mongoc_client_get_collection(n->client, n->database, colls[i]);
    if (!mongoc_collection_drop(c, &be) && be.code != 26) {
      rc = as_mongo_fail(err, "drop", &be, NULL);
      as_error_prefix(err, "node %s: %s.%s", n->name, n->database, colls[i]);
    }
    mongoc_collection_destroy(c);
  }
  return rc;
}


/* ------------------------------------------------------------------ sessions after a crash
 *
 * A connector killed in the middle of a transaction leaves it open on the server until
 * transactionLifetimeLimitSeconds (60 s); every write of its documents meanwhile conflicts
 * (WriteConflict 112, retried). So the sink records its session id in __arraysync_sessions
 * ({_id: node name, lsids: [{id: UUID}, ...]}) before using it, and a process's first session
 * of a node kills (killSessions) the sessions an earlier process recorded, which aborts their
 * transactions at once, then forgets them. One connector process per node name and database
 * at a time: a second one starting aborts the first one's transaction in flight (it retries). */

static int sessions_kill(as_node *n, const bson_t *lsids, as_error *err) {
  bson_t cmd = BSON_INITIALIZER, reply;
  bson_error_t be;
  int rc = AS_OK;
  BSON_APPEND_ARRAY(&cmd, "killSessions", lsids);
  if (!mongoc_client_command_simple(n->client, "admin", &cmd, NULL, &reply, &be)) {
    rc = as_mongo_fail(err, "killSessions", &be, &reply);
    if (rc != AS_RETRY) { /* e.g. not authorized: those transactions run out by themselves */
      AS_LOG(AS_LOG_WARN, n->comp, "cannot end the sessions of an earlier process: %s", err->message);
      rc = AS_OK;
    }
  }
  bson_destroy(&reply);
  bson_destroy(&cmd);
  return rc;
}

int as_mongo_sessions_takeover(as_node *n, as_error *err) {
  bson_t filter = BSON_INITIALIZER, upd = BSON_INITIALIZER, pull, opts = BSON_INITIALIZER;
  const bson_t *doc;
  bson_error_t be;
  bson_iter_t it;
  int rc = AS_OK;
  uint32_t len = 0;
  const uint8_t *data = NULL;
  if (n->takeover_done) return AS_OK;
  mongoc_collection_t *c = mongoc_client_get_collection(n->client, n->database, AS_MONGO_SESSIONS);
  BSON_APPEND_UTF8(&filter, "_id", n->name);
  BSON_APPEND_INT64(&opts, "limit", 1);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &filter, &opts, NULL);
  bson_t lsids = BSON_INITIALIZER;
  if (mongoc_cursor_next(cur, &doc) && bson_iter_init_find(&it, doc, "lsids") && BSON_ITER_HOLDS_ARRAY(&it)) {
    bson_iter_array(&it, &len, &data);
    bson_t view;
    if (bson_init_static(&view, data, len)) bson_concat(&lsids, &view);
  } else if (mongoc_cursor_error(cur, &be)) {
    rc = as_mongo_fail(err, "read sessions", &be, NULL);
  }
  mongoc_cursor_destroy(cur);
  if (rc == AS_OK && !bson_empty(&lsids)) {
    AS_LOG(AS_LOG_INFO, n->comp, "ending %u session(s) an earlier process left", bson_count_keys(&lsids));
    rc = sessions_kill(n, &lsids, err);
    BSON_APPEND_DOCUMENT_BEGIN(&upd, "$pullAll", &pull);
    BSON_APPEND_ARRAY(&pull, "lsids", &lsids);
    bson_append_document_end(&upd, &pull);
    if (rc == AS_OK && !mongoc_collection_update_one(c, &filter, &upd, NULL, NULL, &be))
      rc = as_mongo_fail(err, "forget sessions", &be, NULL);
  }
  if (rc == AS_OK) n->takeover_done = true;
  else as_error_prefix(err, "node %s", n->name);
  bson_destroy(&lsids);
  bson_destroy(&filter);
  bson_destroy(&upd);
  bson_destroy(&opts);
  mongoc_collection_destroy(c);
  return rc;
}

int as_mongo_session_register(as_node *n, as_error *err) {
  bson_t filter = BSON_INITIALIZER, upd = BSON_INITIALIZER, add, set, opts = BSON_INITIALIZER;
  bson_error_t be;
  int rc = AS_OK;
  const bson_t *lsid = mongoc_client_session_get_lsid(n->sess);
  bson_t *copy = as_mongo_bson_copy(lsid);
  if (!copy) {
    return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  }
  pthread_mutex_lock(&n->mu);
  as_mongo_bson_free(n->lsid);
  n->lsid = copy;
  pthread_mutex_unlock(&n->mu);
  mongoc_collection_t *c = mongoc_client_get_collection(n->client, n->database, AS_MONGO_SESSIONS);
  BSON_APPEND_UTF8(&filter, "_id", n->name);
  BSON_APPEND_DOCUMENT_BEGIN(&upd, "$addToSet", &add);
  BSON_APPEND_DOCUMENT(&add, "lsids", lsid);
  bson_append_document_end(&upd, &add);
  BSON_APPEND_DOCUMENT_BEGIN(&upd, "$set", &set);
  BSON_APPEND_DATE_TIME(&set, "updated_at", as_now_us() / 1000);
  bson_append_document_end(&upd, &set);
  BSON_APPEND_BOOL(&opts, "upsert", true);
  if (!mongoc_collection_update_one(c, &filter, &upd, &opts, NULL, &be)) {
    rc = as_mongo_fail(err, "record session", &be, NULL);
    as_error_prefix(err, "node %s", n->name);
  } else {
    n->sess_registered = true;
  }
  mongoc_collection_destroy(c);
  bson_destroy(&filter);
  bson_destroy(&upd);
  bson_destroy(&opts);
  return rc;
}

/* From another thread (the engine stopping): kills the sink's session on the server, so a
 * call waiting there (a lock, a long write, the commit) returns at once with an error.
 * libmongoc has no way to cancel a call from another thread; a call waiting on the network
 * returns after socketTimeoutMS. Uses its own client from the pool; when the server cannot be
 * reached this itself waits up to serverSelectionTimeoutMS. */
static void node_interrupt(as_node *n) {
  bson_t *lsid = NULL;
  mongoc_client_pool_t *pool;
  pthread_mutex_lock(&n->mu);
  pool = n->pool;
  if (n->lsid) lsid = bson_copy(n->lsid);
  pthread_mutex_unlock(&n->mu);
  mongoc_client_t *c = pool && lsid ? mongoc_client_pool_try_pop(pool) : NULL;
  if (c) {
    bson_t cmd = BSON_INITIALIZER, arr;
    bson_error_t be;
    BSON_APPEND_ARRAY_BEGIN(&cmd, "killSessions", &arr);
    BSON_APPEND_DOCUMENT(&arr, "0", lsid);
    bson_append_array_end(&cmd, &arr);
    if (!mongoc_client_command_simple(c, "admin", &cmd, NULL, NULL, &be))
      AS_LOG(AS_LOG_DEBUG, n->comp, "interrupt: killSessions: %s", be.message);
    bson_destroy(&cmd);
    mongoc_client_pool_push(pool, c);
  }
  if (lsid) bson_destroy(lsid);
}

static int node_checkpoint_load(as_node *n, const char *stream_id, char **out, as_error *err) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
  const bson_t *doc;
  bson_error_t be;
  bson_iter_t it;
  int rc = AS_ENOTFOUND;
  *out = NULL;
  mongoc_collection_t *c =
      mongoc_client_get_collection(n->client, n->database, AS_MONGO_CHECKPOINTS);
  BSON_APPEND_UTF8(&filter, "_id", stream_id);
  BSON_APPEND_INT64(&opts, "limit", 1);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &filter, &opts, NULL);
  if (mongoc_cursor_next(cur, &doc)) {
    if (bson_iter_init_find(&it, doc, "position") && BSON_ITER_HOLDS_UTF8(&it)) {
      *out = strdup(bson_iter_utf8(&it, NULL));
      rc = *out ? AS_OK : as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
    } else {
      rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "node %s: checkpoint of %s has no position",
                        n->name, stream_id);
    }
  } else if (mongoc_cursor_error(cur, &be)) {
    rc = as_mongo_fail(err, "load checkpoint", &be, NULL);
    as_error_prefix(err, "node %s", n->name);
  }
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(c);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

static int node_read_row(as_node *n, const as_schema *s, const as_row *key, as_row *out,
                         as_error *err) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
  const bson_t *doc;
  bson_error_t be;
  int rc = AS_ENOTFOUND;
  mongoc_collection_t *c = mongoc_client_get_collection(n->client, n->database, s->collection);
  mongoc_cursor_t *cur = NULL;
  if ((rc = as_key_to_filter(s, key, &filter, err)) != AS_OK) goto cleanup;
  rc = AS_ENOTFOUND;
  BSON_APPEND_INT64(&opts, "limit", 1);
  cur = mongoc_collection_find_with_opts(c, &filter, &opts, NULL);
  if (mongoc_cursor_next(cur, &doc)) {
    rc = as_doc_to_row(s, doc, out, err);
  } else if (mongoc_cursor_error(cur, &be)) {
    rc = as_mongo_fail(err, "read row", &be, NULL);
    as_error_prefix(err, "node %s: mapping %s", n->name, s->name);
  }
cleanup:
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(c);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

/* ------------------------------------------------------------------ the adapter */

int as_mongo_open_stream(as_node *n, const char *consumer, const char *checkpoint,
                         as_stream **out, as_error *err);
int as_mongo_poll(as_stream *s, as_batch *out, size_t max, int wait_ms, as_error *err);
int as_mongo_ack(as_stream *s, const char *pos, as_error *err);
int as_mongo_stream_position(as_stream *s, char **out, as_error *err);
void as_mongo_close_stream(as_stream *s);
int as_mongo_snapshot_open(as_node *n, const as_schema *s, const char *after_key,
                           as_snapshot **out, as_error *err);
int as_mongo_snapshot_next(as_snapshot *sn, as_batch *out, size_t max, as_error *err);
int64_t as_mongo_snapshot_estimate(as_snapshot *sn);
void as_mongo_snapshot_close(as_snapshot *sn);

const as_adapter as_adapter_mongodb = {
    .abi = AS_ADAPTER_ABI,
    .kind = "mongodb",
    .caps = AS_CAP_SOURCE | AS_CAP_SINK | AS_CAP_TXN | AS_CAP_SNAPSHOT,
    .config_map = config_map,
    .init = node_init,
    .connect = node_connect,
    .install = node_install,
    .uninstall = node_uninstall,
    .exit = node_exit,
    .open_stream = as_mongo_open_stream,
    .poll = as_mongo_poll,
    .ack = as_mongo_ack,
    .stream_position = as_mongo_stream_position,
    .close_stream = as_mongo_close_stream,
    .snapshot_open = as_mongo_snapshot_open,
    .snapshot_next = as_mongo_snapshot_next,
    .snapshot_estimate = as_mongo_snapshot_estimate,
    .snapshot_close = as_mongo_snapshot_close,
    .begin = as_mongo_begin,
    .apply = as_mongo_apply,
    .commit = as_mongo_commit,
    .rollback = as_mongo_rollback,
    .checkpoint_load = node_checkpoint_load,
    .read_row = node_read_row,
    .interrupt = node_interrupt,
    .decode_raw = decode_raw,
    .sample = as_mongo_sample,
    .check_live = as_mongo_check_live,
    .versions = as_mongo_versions,
    .verify_open = as_mongo_verify_open,
    .verify_estimate = as_mongo_verify_estimate,
    .verify_sign = as_mongo_verify_sign,
    .verify_split = as_mongo_verify_split,
    .verify_rows = as_mongo_verify_rows,
    .verify_bytes = as_mongo_verify_bytes,
    .verify_close = as_mongo_verify_close,
    .commit_order = as_mongo_commit_order,
};
