/* mongo_gone.c — MongoDB adapter: the documents the sink deleted (README.md, "Documents the
 * sink deleted").
 *
 * An update event read after the connector deleted its document has no full document (or the
 * one the connector wrote there since); the deleted document holds the update and the rest of
 * the row. The sink keeps each document it deletes, with a time `at` for its delete:
 *   - in the transaction of the delete, as an entry of __arraysync_gone ({_id, h: key hash,
 *     at, doc: the document's BSON bytes as binary}), so that it is kept exactly when the
 *     delete is (as_mongo_gone_write);
 *   - after the commit, in memory (as_mongo_gone_committed);
 *   - a process's first use (its first transaction, or a stream's first lookup) reads the
 *     entries back (as_mongo_gone_load).
 * `at` is the session's operationTime taken before the commit was sent: earlier than the
 * commit's cluster time C, and not earlier than anything the sink saw before. The commit
 * reply's own time is not used: a commit sent again (a dropped connection; libmongoc retries
 * it once, the transactions spec up to three times) answers with the cluster time of the
 * retry, later than C, and an update made on a document written again within that gap would
 * take an older, deleted document as its image. A bound below C is safe: no write of another
 * client changes the document between the transaction's read and C (it would make the
 * transaction fail with WriteConflict), so an event before C that the bound leaves out can
 * only be missed (no image, as without this), never given a wrong one.
 * The newest MONGO_GONE_MAX documents (at most MONGO_GONE_BYTES) are kept; older entries are
 * deleted from the collection in runs of GONE_PRUNE_EVERY. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_log.h"
#include "as_time.h"
#include "mongo_internal.h"

#define GONE_PRUNE_EVERY 256             /* evicted entries before a deleteMany */
#define GONE_ENTRY_SLACK 256             /* an entry's bytes besides the document */
#define GONE_MAX_ENTRY (16 * 1024 * 1024) /* MongoDB's limit on a document */
#define GONE_LOAD_RETRY_US 5000000       /* a failed read back is tried again after 5 s */

/* ------------------------------------------------------------------ in memory */

/* Keeps doc (moved in), deleted under key hash h by a transaction whose time is `at`,
 * dropping the oldest documents beyond MONGO_GONE_MAX or MONGO_GONE_BYTES. Caller holds
 * gone_mu. */
static void keep_locked(as_node *n, uint64_t h, int64_t at, bson_t *doc) {
  while (n->gone_n && (n->gone_n == MONGO_GONE_MAX || n->gone_bytes + doc->len > MONGO_GONE_BYTES)) {
    mongo_gone *old = &n->gone[(n->gone_head + MONGO_GONE_MAX - n->gone_n) % MONGO_GONE_MAX];
    n->gone_bytes -= old->doc->len;
    n->gone_count[old->h % MONGO_GONE_FILTER]--;
    if (old->at > n->gone_evicted_at) n->gone_evicted_at = old->at;
    n->gone_evicted_n++;
    as_mongo_bson_free(old->doc);
    memset(old, 0, sizeof *old);
    n->gone_n--;
  }
  n->gone[n->gone_head] = (mongo_gone){.h = h, .at = at, .doc = doc};
  n->gone_head = (n->gone_head + 1) % MONGO_GONE_MAX;
  n->gone_n++;
  n->gone_bytes += doc->len;
  n->gone_count[h % MONGO_GONE_FILTER]++;
  __atomic_store_n(&n->gone_any, true, __ATOMIC_RELEASE);
}

bool as_mongo_gone_any(as_node *n) { return __atomic_load_n(&n->gone_any, __ATOMIC_ACQUIRE); }

bson_t *as_mongo_gone_find(as_node *n, uint64_t h, int64_t order) {
  bson_t *copy = NULL;
  const mongo_gone *first = NULL;
  pthread_mutex_lock(&n->gone_mu);
  /* newest first, back to the deletes before the event (times grow). `at` is a time the sink
   * saw before the commit: an event at or before it came before the commit, an event after
   * it may have come after (then it gets no image) */
  for (size_t k = 1; n->gone_count[h % MONGO_GONE_FILTER] && k <= n->gone_n; k++) {
    const mongo_gone *g = &n->gone[(n->gone_head + MONGO_GONE_MAX - k) % MONGO_GONE_MAX];
    if (g->at < order) break;
    if (g->h == h) first = g; /* the first delete after the event: the document closest to it */
  }
  if (first) copy = as_mongo_bson_copy(first->doc);
  pthread_mutex_unlock(&n->gone_mu);
  return copy;
}

void as_mongo_gone_free(as_node *n) {
  for (size_t i = 0; i < MONGO_GONE_MAX; i++) as_mongo_bson_free(n->gone[i].doc);
  memset(n->gone, 0, sizeof n->gone);
  memset(n->gone_count, 0, sizeof n->gone_count);
  n->gone_n = n->gone_bytes = 0;
}

/* ------------------------------------------------------------------ kept in the database */

/* Whether op deletes a document the sink read (the one to keep). */
static bool keeps(const mongo_op *op) {
  return op->kind == MONGO_OP_DELETE && op->doc && !bson_empty(op->doc);
}

int as_mongo_gone_write(as_node *n, mongo_ops *done, int64_t at, const bson_t *txn_opts,
                        as_error *err) {
  size_t k = 0;
  for (size_t i = 0; i < done->n; i++)
    if (keeps(&done->v[i]) && done->v[i].doc->len + GONE_ENTRY_SLACK <= GONE_MAX_ENTRY) k++;
  if (!k || !at) return AS_OK; /* (no time: never an image) */
  const bson_t **docs = calloc(k, sizeof *docs);
  /* bson_t is declared 128-byte aligned (as as_mongo_bson_new allocates it) */
  bson_t *entries = aligned_alloc(BSON_ALIGNOF(bson_t), k * sizeof *entries);
  int rc = AS_OK;
  if (!docs || !entries) {
    free(docs);
    free(entries);
    return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  }
  k = 0;
  for (size_t i = 0; i < done->n; i++) {
    mongo_op *op = &done->v[i];
    if (!keeps(op) || op->doc->len + GONE_ENTRY_SLACK > GONE_MAX_ENTRY) continue;
    bson_oid_t id;
    bson_oid_init(&id, NULL);
    bson_init(&entries[k]);
    BSON_APPEND_OID(&entries[k], "_id", &id);
    BSON_APPEND_INT64(&entries[k], "h", (int64_t)op->keyhash);
    BSON_APPEND_INT64(&entries[k], "at", at);
    /* the bytes, not a subdocument: any field name a document may hold is stored as it is */
    BSON_APPEND_BINARY(&entries[k], "doc", BSON_SUBTYPE_BINARY, bson_get_data(op->doc), op->doc->len);
    docs[k] = &entries[k];
    k++;
  }
  bson_t opts = BSON_INITIALIZER, reply;
  bson_error_t be;
  bson_concat(&opts, txn_opts);
  BSON_APPEND_BOOL(&opts, "ordered", true);
  mongoc_collection_t *c = mongoc_client_get_collection(n->client, n->database, AS_MONGO_GONE);
  if (!mongoc_collection_insert_many(c, docs, k, &opts, &reply, &be)) {
    rc = as_mongo_fail(err, "keep deleted documents", &be, &reply);
    as_error_prefix(err, "node %s: %s.%s", n->name, n->database, AS_MONGO_GONE);
  }
  bson_destroy(&reply);
  mongoc_collection_destroy(c);
  bson_destroy(&opts);
  for (size_t i = 0; i < k; i++) bson_destroy(&entries[k - 1 - i]);
  free(entries);
  free(docs);
  return rc;
}

/* Deletes the entries older than the documents kept in memory (best effort). */
static void prune(as_node *n) {
  pthread_mutex_lock(&n->gone_mu);
  int64_t upto = n->gone_evicted_at;
  bool due = n->gone_evicted_n >= GONE_PRUNE_EVERY;
  if (due) n->gone_evicted_n = 0;
  pthread_mutex_unlock(&n->gone_mu);
  if (!due || !upto) return;
  bson_t sel = BSON_INITIALIZER, le, reply;
  bson_error_t be;
  BSON_APPEND_DOCUMENT_BEGIN(&sel, "at", &le);
  BSON_APPEND_INT64(&le, "$lte", upto);
  bson_append_document_end(&sel, &le);
  mongoc_collection_t *c = mongoc_client_get_collection(n->client, n->database, AS_MONGO_GONE);
  if (!mongoc_collection_delete_many(c, &sel, NULL, &reply, &be))
    AS_LOG(AS_LOG_DEBUG, n->comp, "cannot prune %s: %s", AS_MONGO_GONE, be.message);
  bson_destroy(&reply);
  mongoc_collection_destroy(c);
  bson_destroy(&sel);
}

void as_mongo_gone_committed(as_node *n, mongo_ops *done, int64_t at) {
  if (!at) return; /* no time: it could never be told apart from later events */
  pthread_mutex_lock(&n->gone_mu);
  for (size_t i = 0; i < done->n; i++) {
    mongo_op *op = &done->v[i];
    if (!keeps(op)) continue;
    keep_locked(n, op->keyhash, at, op->doc);
    op->doc = NULL;
  }
  pthread_mutex_unlock(&n->gone_mu);
  prune(n);
}

/* ------------------------------------------------------------------ read back */

typedef struct loaded {
  uint64_t h;
  int64_t at;
  bson_t *doc;
} loaded;

/* One entry -> l (doc a heap copy). False for an entry that is not of this form. */
static bool entry_parse(const bson_t *e, loaded *l) {
  bson_iter_t it;
  const uint8_t *data = NULL;
  uint32_t len = 0;
  bson_subtype_t st;
  bson_t doc;
  *l = (loaded){0};
  if (!bson_iter_init_find(&it, e, "h") || !BSON_ITER_HOLDS_INT64(&it)) return false;
  l->h = (uint64_t)bson_iter_int64(&it);
  if (!bson_iter_init_find(&it, e, "at") || !BSON_ITER_HOLDS_INT64(&it) || bson_iter_int64(&it) <= 0)
    return false;
  l->at = bson_iter_int64(&it);
  if (!bson_iter_init_find(&it, e, "doc") || !BSON_ITER_HOLDS_BINARY(&it)) return false;
  bson_iter_binary(&it, &st, &len, &data);
  if (!data || !bson_init_static(&doc, data, len) || !bson_validate(&doc, BSON_VALIDATE_NONE, NULL))
    return false;
  return (l->doc = as_mongo_bson_copy(&doc)) != NULL;
}

static int by_at(const void *a, const void *b) {
  const loaded *x = a, *y = b;
  return x->at < y->at ? -1 : x->at > y->at;
}

/* Reads every entry into memory, oldest first. */
static int load(as_node *n, mongoc_client_t *client, as_error *err) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
  bson_error_t be;
  const bson_t *e;
  loaded *v = NULL;
  size_t nv = 0, cap = 0;
  int rc = AS_OK;
  BSON_APPEND_INT32(&opts, "batchSize", 256);
  mongoc_collection_t *c = mongoc_client_get_collection(client, n->database, AS_MONGO_GONE);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &filter, &opts, NULL);
  while (mongoc_cursor_next(cur, &e)) {
    if (nv == cap) {
      size_t nc = cap ? cap * 2 : 64;
      loaded *nvv = realloc(v, nc * sizeof *v);
      if (!nvv) {
        rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
        goto cleanup;
      }
      v = nvv;
      cap = nc;
    }
    if (!entry_parse(e, &v[nv])) continue; /* not ours */
    nv++;
  }
  if (mongoc_cursor_error(cur, &be)) {
    rc = as_mongo_fail(err, "read the deleted documents kept", &be, NULL);
    as_error_prefix(err, "node %s: %s.%s", n->name, n->database, AS_MONGO_GONE);
    goto cleanup;
  }
  if (nv > 1) qsort(v, nv, sizeof *v, by_at);
  pthread_mutex_lock(&n->gone_mu);
  for (size_t i = 0; i < nv; i++) {
    keep_locked(n, v[i].h, v[i].at, v[i].doc);
    v[i].doc = NULL;
  }
  pthread_mutex_unlock(&n->gone_mu);
  if (nv) AS_LOG(AS_LOG_DEBUG, n->comp, "%zu deleted documents read back from %s", nv, AS_MONGO_GONE);
cleanup:
  for (size_t i = 0; i < nv; i++) as_mongo_bson_free(v[i].doc);
  free(v);
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(c);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

int as_mongo_gone_load(as_node *n, mongoc_client_t *client, as_error *err) {
  if (__atomic_load_n(&n->gone_loaded, __ATOMIC_ACQUIRE) || !n->txn_capable) return AS_OK;
  int rc = AS_OK;
  pthread_mutex_lock(&n->gone_load_mu);
  int64_t now = as_now_us();
  if (!n->gone_loaded && (!n->gone_load_tried_us || now - n->gone_load_tried_us >= GONE_LOAD_RETRY_US)) {
    n->gone_load_tried_us = now;
    rc = load(n, client, err);
    if (rc != AS_OK && rc != AS_RETRY) { /* e.g. not allowed to read it: in memory only */
      AS_LOG(AS_LOG_WARN, n->comp, "%s; documents the sink deleted earlier are not used", err->message);
      rc = AS_OK;
    }
    if (rc == AS_OK) __atomic_store_n(&n->gone_loaded, true, __ATOMIC_RELEASE);
  } else if (!n->gone_loaded) {
    rc = as_error_set(err, AS_DOM_MONGO, AS_RETRY, "node %s: the deleted documents kept in %s "
                      "are not read yet", n->name, AS_MONGO_GONE);
  }
  pthread_mutex_unlock(&n->gone_load_mu);
  return rc;
}
