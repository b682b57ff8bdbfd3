/* mongo_node.c — MongoDB adapter: node set-up, errors, install, sink side, reads.
 * Capture and snapshot are in mongo_capture.c. Design notes: README.md in this directory. */
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

void as_mongo_bson_free(bson_t *b) {
  if (!b) return;
  bson_destroy(b);
  free(b);
}

/* A dead letter's raw form (canonical extended JSON of the document) -> an insert. */
static int decode_raw(const as_schema *s, const char *raw, as_delta *out, as_error *err) {
  bson_error_t berr;
  bson_t *doc = bson_new_from_json((const uint8_t *)raw, -1, &berr);
  if (!doc) return as_error_set(err, AS_DOM_MONGO, AS_EDATA, "stored document: %s", berr.message);
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
           "collections with changeStreamPreAndPostImages",
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

static void ops_clear(mongo_ops *o);

static void node_exit(as_node *n) {
  if (!n) return;
  if (n->sess) mongoc_client_session_destroy(n->sess);
  if (n->client && n->pool) mongoc_client_pool_push(n->pool, n->client);
  if (n->pool) mongoc_client_pool_destroy(n->pool);
  if (n->uri) mongoc_uri_destroy(n->uri);
  ops_clear(&n->done);
  free(n->done.v);
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
  pthread_once(&mongo_once, mongo_global_init);
  n->name = strdup(cfg->name ? cfg->name : "mongodb");
  if (!n->name) goto oom;
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

static int node_connect(as_node *n, as_error *err) {
  bson_error_t be;
  bson_t reply = BSON_INITIALIZER;
  bson_t cmd = BSON_INITIALIZER;
  bson_iter_t it;
  int rc = AS_OK;
  if (!n->pool) {
    n->pool = mongoc_client_pool_new_with_error(n->uri, &be);
    if (!n->pool) {
      rc = as_error_set(err, AS_DOM_MONGO, AS_EINVAL, "node %s: cannot use uri %s: %s", n->name,
                        n->uri_redacted, be.message);
      goto cleanup;
    }
    mongoc_client_pool_set_error_api(n->pool, MONGOC_ERROR_API_VERSION_2);
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
  static const char *const colls[] = {AS_MONGO_CHECKPOINTS, AS_MONGO_MARKS, NULL};
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

/* ------------------------------------------------------------------ sink: writes */

static void op_clear(mongo_op *op) {
  as_mongo_bson_free(op->filter);
  as_mongo_bson_free(op->doc);
  free(op->origin);
  memset(op, 0, sizeof *op);
}

static void ops_clear(mongo_ops *o) {
  for (size_t i = 0; i < o->n; i++) op_clear(&o->v[i]);
  o->n = 0;
}

static mongo_op *ops_push(mongo_ops *o) {
  if (o->n == o->cap) {
    size_t nc = o->cap ? o->cap * 2 : 64;
    mongo_op *p = realloc(o->v, nc * sizeof *p);
    if (!p) return NULL;
    o->v = p;
    o->cap = nc;
  }
  mongo_op *op = &o->v[o->n++];
  memset(op, 0, sizeof *op);
  op->filter = as_mongo_bson_new();
  op->doc = as_mongo_bson_new();
  if (!op->filter || !op->doc) {
    o->n--;
    op_clear(op);
    return NULL;
  }
  return op;
}

/* Moves op out of the list (keeps order). */
static void ops_remove(mongo_ops *o, size_t i) {
  op_clear(&o->v[i]);
  memmove(&o->v[i], &o->v[i + 1], (o->n - i - 1) * sizeof *o->v);
  o->n--;
}

/* Appends src to dst, moving the bson values (src becomes empty). */
static int ops_move_all(mongo_ops *dst, mongo_ops *src) {
  for (size_t i = 0; i < src->n; i++) {
    if (dst->n == dst->cap) {
      size_t nc = dst->cap ? dst->cap * 2 : 64;
      mongo_op *p = realloc(dst->v, nc * sizeof *p);
      if (!p) return AS_ERR;
      dst->v = p;
      dst->cap = nc;
    }
    dst->v[dst->n++] = src->v[i]; /* moves the pointers */
  }
  src->n = 0;
  return AS_OK;
}

static int session_opts(as_node *n, bson_t *opts, as_error *err) {
  bson_error_t be;
  if (!n->in_txn || !n->sess) return AS_OK;
  if (!mongoc_client_session_append(n->sess, opts, &be))
    return as_error_set(err, AS_DOM_MONGO, AS_ERR, "node %s: session: %s", n->name, be.message);
  return AS_OK;
}

/* Current catch-all value of the target document (for $unset of removed catch-all fields). */
static int prev_catch_all(as_node *n, const as_schema *s, const bson_t *filter, char **out,
                          as_error *err) {
  bson_t opts = BSON_INITIALIZER;
  const bson_t *doc;
  bson_error_t be;
  as_row row = {0};
  int rc = AS_OK;
  *out = NULL;
  mongoc_collection_t *c = mongoc_client_get_collection(n->client, n->database, s->collection);
  BSON_APPEND_INT64(&opts, "limit", 1);
  if ((rc = session_opts(n, &opts, err)) != AS_OK) goto cleanup;
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, filter, &opts, NULL);
  if (mongoc_cursor_next(cur, &doc)) {
    if (as_row_init(&row, s->ncols) == AS_OK && as_doc_to_row(s, doc, &row, NULL) == AS_OK) {
      const as_value *v = &row.v[s->catch_all_idx];
      if (row.set[s->catch_all_idx] && v->type == AS_T_JSON) *out = strdup(v->u.s.ptr);
    }
  } else if (mongoc_cursor_error(cur, &be)) {
    rc = as_mongo_fail(err, "find", &be, NULL);
  }
  mongoc_cursor_destroy(cur);
cleanup:
  as_row_clear(&row);
  mongoc_collection_destroy(c);
  bson_destroy(&opts);
  return rc;
}

static int build_op(as_node *n, const as_delta *d, size_t idx, mongo_op *op, as_error *err) {
  const as_schema *s = d->schema;
  int rc;
  op->schema = s;
  op->index = idx;
  op->origin = strdup(d->origin ? d->origin : n->name);
  if (!op->origin) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  if ((rc = as_key_to_filter(s, &d->row, op->filter, err)) != AS_OK) return rc;
  switch (d->op) {
    case AS_OP_INSERT:
      if (s->catch_all_idx >= 0) {
        /* the row carries every field (the catch-all holds the unmapped ones): replace */
        op->kind = MONGO_OP_REPLACE;
        rc = as_row_to_doc(s, &d->row, op->doc, err);
      } else {
        /* no catch-all: fields that no column maps must survive: upsert with $set/$unset of
         * every column path */
        as_delta all = *d;
        all.op = AS_OP_UPDATE;
        op->kind = MONGO_OP_UPDATE;
        rc = as_delta_to_update(s, &all, NULL, op->doc, err);
      }
      break;
    case AS_OP_UPDATE: {
      char *prev = NULL;
      op->kind = MONGO_OP_UPDATE;
      op->partial = true;
      if (s->catch_all_idx >= 0 && as_row_has(&d->row, (size_t)s->catch_all_idx)) {
        rc = prev_catch_all(n, s, op->filter, &prev, err);
        if (rc != AS_OK) return rc;
      }
      rc = as_delta_to_update(s, d, prev, op->doc, err);
      free(prev);
      break;
    }
    case AS_OP_DELETE:
      op->kind = MONGO_OP_DELETE;
      rc = AS_OK;
      break;
    default:
      rc = as_error_set(err, AS_DOM_MONGO, AS_EDATA, "unknown op %d", (int)d->op);
  }
  uint64_t h = XXH3_64bits(bson_get_data(op->filter), op->filter->len);
  op->keyhash = h ^ XXH3_64bits(s->collection, strlen(s->collection));
  return rc;
}

static int write_mark(as_node *n, const char *origin, as_error *err) {
  bson_t sel = BSON_INITIALIZER, doc = BSON_INITIALIZER, opts = BSON_INITIALIZER, reply;
  bson_error_t be;
  int rc = AS_OK;
  mongoc_collection_t *c = mongoc_client_get_collection(n->client, n->database, AS_MONGO_MARKS);
  BSON_APPEND_UTF8(&sel, "_id", n->mark_id);
  BSON_APPEND_UTF8(&doc, "_id", n->mark_id);
  BSON_APPEND_UTF8(&doc, "origin", origin);
  BSON_APPEND_INT64(&doc, "n", (int64_t)++n->mark_n);
  BSON_APPEND_BOOL(&opts, "upsert", true);
  if ((rc = session_opts(n, &opts, err)) != AS_OK) goto cleanup;
  if (!mongoc_collection_replace_one(c, &sel, &doc, &opts, &reply, &be)) {
    rc = as_mongo_fail(err, "write mark", &be, &reply);
    as_error_prefix(err, "node %s", n->name);
  } else {
    free(n->mark_origin);
    n->mark_origin = strdup(origin);
  }
  bson_destroy(&reply);
cleanup:
  mongoc_collection_destroy(c);
  bson_destroy(&sel);
  bson_destroy(&doc);
  bson_destroy(&opts);
  return rc;
}

/* A failure of one op, found in a bulk reply. */
typedef struct op_fail {
  size_t op;      /* index in the ops list being executed */
  int code;
  char *msg;
} op_fail;

typedef struct fail_list {
  op_fail *v;
  size_t n, cap;
} fail_list;

static void fails_clear(fail_list *f) {
  for (size_t i = 0; i < f->n; i++) free(f->v[i].msg);
  free(f->v);
  memset(f, 0, sizeof *f);
}

static bool transient_code(int code) {
  switch (code) {
    case 6: case 7: case 89: case 91: case 112: case 189: case 251: case 262: case 9001:
    case 10107: case 11600: case 11602: case 13435: case 13436:
      return true;
    default:
      return false;
  }
}

typedef struct open_bulk {
  const char *coll;
  mongoc_bulk_operation_t *bulk;
  size_t *map;   /* bulk-local index -> op index */
  size_t n, cap;
} open_bulk;

typedef struct bulk_set {
  open_bulk *v;
  size_t n, cap;
  uint64_t *seen;  /* key hashes in the current set (open addressing, 0 = empty) */
  size_t seen_cap, seen_n;
} bulk_set;

static bool seen_add(bulk_set *b, uint64_t h) {
  if (h == 0) h = 1;
  if ((b->seen_n + 1) * 2 > b->seen_cap) {
    size_t nc = b->seen_cap ? b->seen_cap * 2 : 256;
    uint64_t *ns = calloc(nc, sizeof *ns);
    if (!ns) return false; /* treat as repeat: forces a flush, still correct */
    for (size_t i = 0; i < b->seen_cap; i++) {
      uint64_t x = b->seen[i];
      if (!x) continue;
      size_t j = (size_t)x & (nc - 1);
      while (ns[j]) j = (j + 1) & (nc - 1);
      ns[j] = x;
    }
    free(b->seen);
    b->seen = ns;
    b->seen_cap = nc;
  }
  size_t j = (size_t)h & (b->seen_cap - 1);
  while (b->seen[j]) {
    if (b->seen[j] == h) return false;
    j = (j + 1) & (b->seen_cap - 1);
  }
  b->seen[j] = h;
  b->seen_n++;
  return true;
}

/* Executes every open bulk; collects permanent write errors into fails. Returns AS_OK (maybe
 * with fails), AS_RETRY or AS_ERR. */
static int bulks_flush(as_node *n, bulk_set *b, fail_list *fails, as_error *err) {
  int rc = AS_OK;
  for (size_t i = 0; i < b->n; i++) {
    open_bulk *ob = &b->v[i];
    if (rc != AS_OK) { /* stop at the first failure */
      mongoc_bulk_operation_destroy(ob->bulk);
      free(ob->map);
      continue;
    }
    bson_t reply;
    bson_error_t be;
    bson_iter_t it, ait;
    bool ok = mongoc_bulk_operation_execute(ob->bulk, &reply, &be) != 0;
    if (!ok) {
      size_t nwe = 0;
      if (bson_iter_init_find(&it, &reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
          bson_iter_recurse(&it, &ait)) {
        while (bson_iter_next(&ait)) {
          bson_iter_t e;
          int64_t index = -1;
          int code = 0;
          const char *msg = "";
          if (!BSON_ITER_HOLDS_DOCUMENT(&ait) || !bson_iter_recurse(&ait, &e)) continue;
          while (bson_iter_next(&e)) {
            const char *k = bson_iter_key(&e);
            if (strcmp(k, "index") == 0) index = bson_iter_as_int64(&e);
            else if (strcmp(k, "code") == 0) code = (int)bson_iter_as_int64(&e);
            else if (strcmp(k, "errmsg") == 0 && BSON_ITER_HOLDS_UTF8(&e)) msg = bson_iter_utf8(&e, NULL);
          }
          nwe++;
          if (transient_code(code) || index < 0 || (size_t)index >= ob->n) {
            rc = as_error_set(err, AS_DOM_MONGO, AS_RETRY, "node %s: bulk write on %s: %s (error %d)",
                              n->name, ob->coll, msg, code);
            continue;
          }
          if (fails->n == fails->cap) {
            size_t nc = fails->cap ? fails->cap * 2 : 16;
            op_fail *p = realloc(fails->v, nc * sizeof *p);
            if (!p) {
              rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
              break;
            }
            fails->v = p;
            fails->cap = nc;
          }
          fails->v[fails->n++] = (op_fail){.op = ob->map[index], .code = code, .msg = strdup(msg)};
        }
      }
      if (nwe == 0 && fails->n == 0) {
        rc = as_mongo_fail(err, "bulk write", &be, &reply);
        as_error_prefix(err, "node %s: %s", n->name, ob->coll);
      } else if (nwe == 0 && n->in_txn) {
        /* the transaction was aborted by an earlier write error (NoSuchTransaction): fine */
      } else if (nwe == 0) {
        rc = as_mongo_fail(err, "bulk write", &be, &reply);
      }
    }
    bson_destroy(&reply);
    if (n->in_txn && fails->n > 0) {
      /* the server aborted the transaction: the remaining bulks would fail (251) */
      for (size_t j = i + 1; j < b->n; j++) {
        mongoc_bulk_operation_destroy(b->v[j].bulk);
        free(b->v[j].map);
      }
      mongoc_bulk_operation_destroy(ob->bulk);
      free(ob->map);
      b->n = 0;
      memset(b->seen, 0, b->seen_cap * sizeof *b->seen);
      b->seen_n = 0;
      return rc;
    }
    mongoc_bulk_operation_destroy(ob->bulk);
    free(ob->map);
  }
  b->n = 0;
  if (b->seen) memset(b->seen, 0, b->seen_cap * sizeof *b->seen);
  b->seen_n = 0;
  return rc;
}

static void bulks_free(bulk_set *b) {
  for (size_t i = 0; i < b->n; i++) {
    mongoc_bulk_operation_destroy(b->v[i].bulk);
    free(b->v[i].map);
  }
  free(b->v);
  free(b->seen);
  memset(b, 0, sizeof *b);
}

static open_bulk *bulk_for(as_node *n, bulk_set *b, const char *coll, as_error *err) {
  for (size_t i = 0; i < b->n; i++) {
    if (strcmp(b->v[i].coll, coll) == 0) return &b->v[i];
  }
  if (b->n == b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 4;
    open_bulk *p = realloc(b->v, nc * sizeof *p);
    if (!p) {
      as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
      return NULL;
    }
    b->v = p;
    b->cap = nc;
  }
  bson_t opts = BSON_INITIALIZER;
  BSON_APPEND_BOOL(&opts, "ordered", false);
  if (session_opts(n, &opts, err) != AS_OK) {
    bson_destroy(&opts);
    return NULL;
  }
  mongoc_collection_t *c = mongoc_client_get_collection(n->client, n->database, coll);
  open_bulk *ob = &b->v[b->n++];
  *ob = (open_bulk){.coll = coll, .bulk = mongoc_collection_create_bulk_operation_with_opts(c, &opts)};
  mongoc_collection_destroy(c);
  bson_destroy(&opts);
  return ob;
}

/* Executes ops in order: a mark before each run of ops with a new origin (in a transaction),
 * unordered bulks per collection, flushed before a key repeats so per-key order holds. */
static int exec_ops(as_node *n, mongo_ops *ops, fail_list *fails, as_error *err) {
  bulk_set b = {0};
  int rc = AS_OK;
  bson_error_t be;
  for (size_t i = 0; i < ops->n; i++) {
    mongo_op *op = &ops->v[i];
    bool new_origin = n->txn_capable && n->in_txn &&
                      (!n->mark_origin || strcmp(n->mark_origin, op->origin) != 0);
    if (new_origin || !seen_add(&b, op->keyhash)) {
      if ((rc = bulks_flush(n, &b, fails, err)) != AS_OK || (n->in_txn && fails->n)) goto cleanup;
      seen_add(&b, op->keyhash);
    }
    if (new_origin && (rc = write_mark(n, op->origin, err)) != AS_OK) goto cleanup;
    open_bulk *ob = bulk_for(n, &b, op->schema->collection, err);
    if (!ob) {
      rc = AS_ERR;
      goto cleanup;
    }
    if (ob->n == ob->cap) {
      size_t nc = ob->cap ? ob->cap * 2 : 64;
      size_t *p = realloc(ob->map, nc * sizeof *p);
      if (!p) {
        rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
        goto cleanup;
      }
      ob->map = p;
      ob->cap = nc;
    }
    bool ok;
    bson_t o = BSON_INITIALIZER;
    switch (op->kind) {
      case MONGO_OP_REPLACE:
        BSON_APPEND_BOOL(&o, "upsert", true);
        ok = mongoc_bulk_operation_replace_one_with_opts(ob->bulk, op->filter, op->doc, &o, &be);
        break;
      case MONGO_OP_UPDATE:
        BSON_APPEND_BOOL(&o, "upsert", !op->partial);
        ok = mongoc_bulk_operation_update_one_with_opts(ob->bulk, op->filter, op->doc, &o, &be);
        break;
      default:
        ok = mongoc_bulk_operation_remove_one_with_opts(ob->bulk, op->filter, NULL, &be);
    }
    bson_destroy(&o);
    if (!ok) {
      rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "node %s: mapping %s: bad write: %s", n->name,
                        op->schema->name, be.message);
      goto cleanup;
    }
    ob->map[ob->n++] = i;
  }
  rc = bulks_flush(n, &b, fails, err);
cleanup:
  bulks_free(&b);
  return rc;
}

/* ------------------------------------------------------------------ sink: transactions */

static int txn_start(as_node *n, as_error *err) {
  bson_error_t be;
  if (!n->txn_capable) {
    n->in_txn = false;
    return AS_OK;
  }
  if (!n->sess) {
    n->sess = mongoc_client_start_session(n->client, NULL, &be);
    if (!n->sess) {
      int rc = as_mongo_fail(err, "start session", &be, NULL);
      as_error_prefix(err, "node %s", n->name);
      return rc;
    }
  }
  if (!mongoc_client_session_start_transaction(n->sess, NULL, &be)) {
    int rc = as_mongo_fail(err, "start transaction", &be, NULL);
    as_error_prefix(err, "node %s", n->name);
    return rc;
  }
  n->in_txn = true;
  free(n->mark_origin);
  n->mark_origin = NULL;
  return AS_OK;
}

static void txn_abort(as_node *n) {
  if (n->sess && mongoc_client_session_in_transaction(n->sess)) {
    bson_error_t be;
    mongoc_client_session_abort_transaction(n->sess, &be);
  }
  n->in_txn = false;
  free(n->mark_origin);
  n->mark_origin = NULL;
}

static int node_begin(as_node *n, as_error *err) {
  if (n->in_txn) txn_abort(n);
  ops_clear(&n->done);
  n->need_replay = false;
  return txn_start(n, err);
}

/* Restarts the aborted transaction and replays what it held. Any error: AS_RETRY. */
static int replay(as_node *n, as_error *err) {
  fail_list f = {0};
  int rc;
  txn_abort(n);
  if ((rc = txn_start(n, err)) != AS_OK) return rc;
  rc = exec_ops(n, &n->done, &f, err);
  if (rc == AS_OK && f.n) {
    rc = as_error_set(err, AS_DOM_MONGO, AS_RETRY,
                      "node %s: replaying the transaction failed on a write that succeeded "
                      "before: %s (error %d)", n->name, f.v[0].msg ? f.v[0].msg : "", f.v[0].code);
  } else if (rc != AS_OK && rc != AS_RETRY) {
    rc = AS_RETRY;
  }
  fails_clear(&f);
  if (rc == AS_OK) n->need_replay = false;
  return rc;
}

/* A small open-addressing set of key hashes. */
typedef struct keyset {
  uint64_t *v;
  bool *in;   /* per slot: the key exists at this point of the batch */
  size_t cap;
} keyset;

static bool *keyset_slot(keyset *k, uint64_t h) {
  size_t i = (size_t)h & (k->cap - 1);
  while (k->v[i] && k->v[i] != h) i = (i + 1) & (k->cap - 1);
  k->v[i] = h ? h : 1;
  return &k->in[i];
}

/* Which of the partial updates' documents exist: one find per collection, in the session. */
static int find_existing(as_node *n, mongo_ops *ops, const char *coll, keyset *ks, as_error *err) {
  bson_t filter = BSON_INITIALIZER, orr, opts = BSON_INITIALIZER, proj;
  const as_schema *s = NULL;
  size_t k = 0;
  BSON_APPEND_ARRAY_BEGIN(&filter, "$or", &orr);
  for (size_t i = 0; i < ops->n; i++) {
    mongo_op *op = &ops->v[i];
    if (!op->partial || strcmp(op->schema->collection, coll) != 0) continue;
    char idx[24];
    snprintf(idx, sizeof idx, "%zu", k++);
    BSON_APPEND_DOCUMENT(&orr, idx, op->filter);
    s = op->schema;
  }
  bson_append_array_end(&filter, &orr);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
  for (size_t i = 0; s && i < s->nkey; i++) BSON_APPEND_INT32(&proj, s->cols[s->key_idx[i]].field, 1);
  bson_append_document_end(&opts, &proj);
  int rc = session_opts(n, &opts, err);
  mongoc_collection_t *c = mongoc_client_get_collection(n->client, n->database, coll);
  mongoc_cursor_t *cur = rc == AS_OK ? mongoc_collection_find_with_opts(c, &filter, &opts, NULL) : NULL;
  const bson_t *doc;
  as_row kr = {0};
  while (cur && mongoc_cursor_next(cur, &doc)) {
    bson_t f = BSON_INITIALIZER;
    if (as_row_init(&kr, s->ncols) == AS_OK && as_doc_to_key(s, doc, &kr, NULL) == AS_OK &&
        as_key_to_filter(s, &kr, &f, NULL) == AS_OK) {
      uint64_t h = XXH3_64bits(bson_get_data(&f), f.len) ^ XXH3_64bits(coll, strlen(coll));
      *keyset_slot(ks, h) = true;
    }
    bson_destroy(&f);
    as_row_clear(&kr);
  }
  bson_error_t be;
  if (cur && mongoc_cursor_error(cur, &be)) rc = as_mongo_fail(err, "find", &be, NULL);
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(c);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

/* Updates of some columns never create a document: the ones whose document does not exist
 * when they would run (taking the batch's own earlier writes into account) are reported as
 * missing and dropped. */
static int drop_missing(as_node *n, mongo_ops *ops, const as_delta *d, as_dead_list *dead,
                        as_error *err) {
  size_t npartial = 0;
  for (size_t i = 0; i < ops->n; i++) npartial += ops->v[i].partial;
  if (npartial == 0) return AS_OK;
  keyset ks = {0};
  ks.cap = 64;
  while (ks.cap < ops->n * 2) ks.cap *= 2;
  ks.v = calloc(ks.cap, sizeof *ks.v);
  ks.in = calloc(ks.cap, sizeof *ks.in);
  int rc = ks.v && ks.in ? AS_OK : as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  for (size_t i = 0; rc == AS_OK && i < ops->n; i++) { /* one find per collection */
    const char *coll = ops->v[i].schema->collection;
    bool first = ops->v[i].partial;
    for (size_t j = 0; first && j < i; j++)
      first = !(ops->v[j].partial && strcmp(ops->v[j].schema->collection, coll) == 0);
    if (first) rc = find_existing(n, ops, coll, &ks, err);
  }
  for (size_t i = 0; rc == AS_OK && i < ops->n;) {
    mongo_op *op = &ops->v[i];
    bool *exists = keyset_slot(&ks, op->keyhash);
    if (op->kind == MONGO_OP_DELETE) *exists = false;
    else if (!op->partial) *exists = true;
    if (op->partial && !*exists) {
      if (as_dead_list_push_missing(dead, d[op->index].schema, op->index) != AS_OK) {
        rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
        break;
      }
      ops_remove(ops, i);
      continue;
    }
    i++;
  }
  free(ks.v);
  free(ks.in);
  return rc;
}

static int node_apply(as_node *n, const as_delta *d, size_t nd, as_dead_list *dead,
                      as_error *err) {
  mongo_ops ops = {0};
  fail_list f = {0};
  int rc = AS_OK;
  for (size_t i = 0; i < nd; i++) {
    as_error e = {0};
    mongo_op *op = ops_push(&ops);
    if (!op) {
      rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
      goto cleanup;
    }
    int r = build_op(n, &d[i], i, op, &e);
    if (r == AS_OK && op->kind == MONGO_OP_UPDATE && bson_count_keys(op->doc) == 0) r = 1;
    if (r == 1) { /* nothing to change */
      ops_remove(&ops, ops.n - 1);
      continue;
    }
    if (r == AS_EDATA || r == AS_EINVAL) {
      ops_remove(&ops, ops.n - 1);
      as_dead_list_push(dead, d[i].schema, i, as_key_describe(d[i].schema, &d[i].row),
                        as_delta_to_json_string(&d[i], NULL), strdup(e.message));
      continue;
    }
    if (r != AS_OK) {
      *err = e;
      rc = r;
      goto cleanup;
    }
  }
  if (n->need_replay && (rc = replay(n, err)) != AS_OK) goto cleanup;
  if ((rc = drop_missing(n, &ops, d, dead, err)) != AS_OK) goto cleanup;
  for (;;) {
    if (n->need_replay && (rc = replay(n, err)) != AS_OK) goto cleanup;
    rc = exec_ops(n, &ops, &f, err);
    if (rc != AS_OK) goto cleanup;
    if (f.n == 0) break;
    /* per-document errors: dead-letter them; the rest still applies */
    bool *drop = calloc(ops.n, sizeof *drop);
    if (!drop) {
      rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
      goto cleanup;
    }
    for (size_t k = 0; k < f.n; k++) {
      mongo_op *op = &ops.v[f.v[k].op];
      if (drop[f.v[k].op]) continue;
      drop[f.v[k].op] = true;
      const as_delta *dd = &d[op->index];
      char *key = as_key_describe(dd->schema, &dd->row);
      char msg[AS_ERROR_MSG_MAX];
      snprintf(msg, sizeof msg, "mapping %s: collection %s: key %s: %s (error %d)",
               dd->schema->name, dd->schema->collection, key ? key : "?",
               f.v[k].msg ? f.v[k].msg : "", f.v[k].code);
      as_dead_list_push(dead, dd->schema, op->index, key, as_delta_to_json_string(dd, NULL),
                        strdup(msg));
      AS_LOG(AS_LOG_WARN, n->comp, "dead letter: %s", msg);
    }
    for (size_t k = ops.n; k-- > 0;) {
      if (drop[k]) ops_remove(&ops, k);
    }
    free(drop);
    fails_clear(&f);
    if (!n->in_txn) break; /* without a transaction the other writes are already applied */
    n->need_replay = true;
  }
  if (n->in_txn && ops_move_all(&n->done, &ops) != AS_OK) {
    rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  }
cleanup:
  fails_clear(&f);
  ops_clear(&ops);
  free(ops.v);
  return rc;
}

static int write_checkpoint(as_node *n, const char *stream_id, const char *checkpoint,
                            as_error *err) {
  bson_t sel = BSON_INITIALIZER, doc = BSON_INITIALIZER, opts = BSON_INITIALIZER, reply;
  bson_error_t be;
  int rc = AS_OK;
  mongoc_collection_t *c =
      mongoc_client_get_collection(n->client, n->database, AS_MONGO_CHECKPOINTS);
  BSON_APPEND_UTF8(&sel, "_id", stream_id);
  BSON_APPEND_UTF8(&doc, "_id", stream_id);
  BSON_APPEND_UTF8(&doc, "position", checkpoint);
  BSON_APPEND_DATE_TIME(&doc, "updated_at", as_now_us() / 1000);
  BSON_APPEND_BOOL(&opts, "upsert", true);
  if ((rc = session_opts(n, &opts, err)) != AS_OK) goto cleanup;
  if (!mongoc_collection_replace_one(c, &sel, &doc, &opts, &reply, &be)) {
    rc = as_mongo_fail(err, "write checkpoint", &be, &reply);
    as_error_prefix(err, "node %s: stream %s", n->name, stream_id);
  }
  bson_destroy(&reply);
cleanup:
  mongoc_collection_destroy(c);
  bson_destroy(&sel);
  bson_destroy(&doc);
  bson_destroy(&opts);
  return rc;
}

static int node_commit(as_node *n, const char *stream_id, const char *checkpoint,
                       as_error *err) {
  int rc = AS_OK;
  if (n->need_replay && (rc = replay(n, err)) != AS_OK) goto cleanup;
  if (checkpoint && stream_id && (rc = write_checkpoint(n, stream_id, checkpoint, err)) != AS_OK)
    goto cleanup;
  if (n->in_txn) {
    for (int attempt = 0;; attempt++) {
      bson_t reply;
      bson_error_t be;
      bool ok = mongoc_client_session_commit_transaction(n->sess, &reply, &be);
      if (ok) {
        bson_destroy(&reply);
        break;
      }
      bool unknown = mongoc_error_has_label(&reply, "UnknownTransactionCommitResult");
      if (unknown && attempt < 3) { /* the spec: commit again (it is idempotent) */
        bson_destroy(&reply);
        continue;
      }
      rc = as_mongo_fail(err, "commit", &be, &reply);
      as_error_prefix(err, "node %s", n->name);
      bson_destroy(&reply);
      goto cleanup;
    }
    n->in_txn = false;
  }
cleanup:
  if (rc != AS_OK) txn_abort(n);
  ops_clear(&n->done);
  n->need_replay = false;
  free(n->mark_origin);
  n->mark_origin = NULL;
  return rc;
}

static int node_rollback(as_node *n) {
  txn_abort(n);
  ops_clear(&n->done);
  n->need_replay = false;
  /* The session is kept: the next transaction on it (a higher txnNumber) aborts on the server
   * whatever the failed one left open (e.g. after a commit that failed before it ran, which
   * libmongoc no longer lets us abort); a new session would leave it holding its locks until
   * transactionLifetimeLimitSeconds. */
  return AS_OK;
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
    .begin = node_begin,
    .apply = node_apply,
    .commit = node_commit,
    .rollback = node_rollback,
    .checkpoint_load = node_checkpoint_load,
    .read_row = node_read_row,
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
};
