/* mongo_sink.c — MongoDB adapter: the sink (begin, apply, commit, rollback). Design notes:
 * README.md in this directory ("Sink").
 *
 * A write carries only what changed. apply works in rounds:
 *   1. read: the current documents of the call's insert/update keys, one find per mapping
 *      inside the transaction ({_id: {$in: [...]}} for an _id key, else {$or: [filters]});
 *   2. plan: each delta against its document as it is at that point of the batch (the results
 *      of earlier deltas of the same key are kept): as_doc_merge + as_doc_diff_update give
 *      nothing to write, an updateOne with the changed paths, or a replaceOne (a new document,
 *      upsert; or a changed top-level field whose name no path can reach); an update of some
 *      columns whose document does not exist is reported missing and not written; a delete
 *      is a deleteOne (none when the batch already knows the document is gone);
 *   3. execute: a mark before each run of a new origin, unordered bulks per collection,
 *      flushed before a key repeats (per-key order).
 * A per-document write error dead-letters its delta. In a transaction the server has aborted
 * it: the earlier calls' writes are replayed and the round runs again without that delta.
 * Without a transaction the bulks before the failure stand; the rest is read and planned
 * again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "as_log.h"
#include "as_time.h"
#include "mongo_internal.h"

#define READ_CHUNK 1000 /* keys per find (bounds the size of the filter) */
#define MONGO_MAX_DOC_BYTES (16 * 1024 * 1024) /* MongoDB's limit on a document (BSON) */

/* ------------------------------------------------------------------ ops */

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

static int fail_add(fail_list *f, size_t op, int code, const char *msg, as_error *err) {
  if (f->n == f->cap) {
    size_t nc = f->cap ? f->cap * 2 : 16;
    op_fail *p = realloc(f->v, nc * sizeof *p);
    if (!p) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
    f->v = p;
    f->cap = nc;
  }
  f->v[f->n++] = (op_fail){.op = op, .code = code, .msg = strdup(msg)};
  return AS_OK;
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
    /* stop at the first failure; a bulk opened for a write the driver then refused holds
     * nothing (the driver refuses to run an empty bulk) */
    if (rc != AS_OK || ob->n == 0) {
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
          if ((rc = fail_add(fails, ob->map[index], code, msg, err)) != AS_OK) break;
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

/* Executes ops in order: a mark before each run of ops with a new origin (in a transaction;
 * ops without origin, only first in a transaction, are left unmarked),
 * unordered bulks per collection, flushed before a key repeats so per-key order holds. */
static int exec_ops(as_node *n, mongo_ops *ops, fail_list *fails, size_t *upto, as_error *err) {
  bulk_set b = {0};
  int rc = AS_OK;
  bson_error_t be;
  *upto = 0;
  for (size_t i = 0; i < ops->n; i++) {
    mongo_op *op = &ops->v[i];
    if (!op->origin && n->in_txn && n->mark_origin) { /* a mark covers the rest of the txn */
      rc = as_error_set(err, AS_DOM_MONGO, AS_EINVAL, "node %s: a write without origin cannot "
                        "follow marked writes in one transaction", n->name);
      goto cleanup;
    }
    bool new_origin = op->origin && n->txn_capable && n->in_txn &&
                      (!n->mark_origin || strcmp(n->mark_origin, op->origin) != 0);
    if (new_origin || !seen_add(&b, op->keyhash)) {
      if ((rc = bulks_flush(n, &b, fails, err)) != AS_OK) goto cleanup;
      *upto = i;
      if (fails->n) goto cleanup; /* the caller decides what happens to the rest */
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
    /* field names: the server's rules (MongoDB 5.0+ stores empty names, names with '.' and
     * names starting with '$'), not the driver's older ones, which refuse them all */
    if (op->kind != MONGO_OP_DELETE) {
      BSON_APPEND_BOOL(&o, "upsert", op->upsert);
      BSON_APPEND_BOOL(&o, "validate", false);
    }
    if (op->kind != MONGO_OP_DELETE && op->doc->len > MONGO_MAX_DOC_BYTES) {
      /* the driver would refuse it only when the bulk runs, failing the whole bulk */
      bson_set_error(&be, 0, 0, "the document would be %u bytes, more than MongoDB's limit of %d",
                     op->doc->len, MONGO_MAX_DOC_BYTES);
      ok = false;
    } else if (op->kind == MONGO_OP_REPLACE) {
      ok = mongoc_bulk_operation_replace_one_with_opts(ob->bulk, op->filter, op->doc, &o, &be);
    } else if (op->kind == MONGO_OP_UPDATE) {
      ok = mongoc_bulk_operation_update_one_with_opts(ob->bulk, op->filter, op->doc, &o, &be);
    } else {
      ok = mongoc_bulk_operation_remove_one_with_opts(ob->bulk, op->filter, NULL, &be);
    }
    bson_destroy(&o);
    if (!ok) { /* the driver refuses this write: the writes before it go, it is the op that failed */
      if ((rc = bulks_flush(n, &b, fails, err)) != AS_OK) goto cleanup;
      *upto = i;
      if (fails->n == 0) rc = fail_add(fails, i, 0, be.message, err);
      goto cleanup;
    }
    ob->map[ob->n++] = i;
  }
  rc = bulks_flush(n, &b, fails, err);
  if (rc == AS_OK) *upto = ops->n;
cleanup:
  bulks_free(&b);
  return rc;
}

/* ------------------------------------------------------------------ transactions */

static int txn_start(as_node *n, as_error *err) {
  bson_error_t be;
  if (!n->txn_capable) {
    n->in_txn = false;
    return AS_OK;
  }
  if (!n->sess) {
    int rc = as_mongo_sessions_takeover(n, err); /* an earlier process's open transactions */
    if (rc != AS_OK) return rc;
    /* the documents an earlier process deleted, before this one keeps any */
    if ((rc = as_mongo_gone_load(n, n->client, err)) != AS_OK) return rc;
    n->sess = mongoc_client_start_session(n->client, NULL, &be);
    if (!n->sess) {
      rc = as_mongo_fail(err, "start session", &be, NULL);
      as_error_prefix(err, "node %s", n->name);
      return rc;
    }
  }
  if (!n->sess_registered) { /* recorded before its first use, outside any transaction */
    int rc = as_mongo_session_register(n, err);
    if (rc != AS_OK) return rc;
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

int as_mongo_begin(as_node *n, as_error *err) {
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
  /* a delete replayed removes the document as it is now, not as the aborted transaction read
   * it: that one is no image of what was deleted (mongo_gone.c) */
  for (size_t i = 0; i < n->done.n; i++) {
    mongo_op *op = &n->done.v[i];
    if (op->kind == MONGO_OP_DELETE && op->doc && !bson_empty(op->doc)) {
      as_mongo_bson_free(op->doc);
      op->doc = as_mongo_bson_new();
    }
  }
  size_t upto;
  rc = exec_ops(n, &n->done, &f, &upto, err);
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

/* ------------------------------------------------------------------ apply: read, plan, run */

enum { ST_PENDING = 0, ST_DEAD, ST_MISSING, ST_DONE };

/* The document of one key as the batch has it so far. */
typedef struct key_doc {
  uint64_t h;     /* key hash (0: free slot) */
  bool known;     /* read from the server or written by the batch */
  bool asked;     /* in the current read */
  bson_t *doc;    /* NULL: no document */
} key_doc;

typedef struct apply_call {
  const as_delta *d;
  size_t nd;
  uint8_t *st;        /* per delta: ST_* */
  bson_t **filter;    /* per delta: the key filter (heap), NULL when it could not be built */
  uint64_t *h;        /* per delta: key hash (filter bytes ^ collection) */
  key_doc *docs;      /* open addressing, cap a power of two > 2 * nd */
  size_t cap;
} apply_call;

static key_doc *doc_slot(apply_call *a, uint64_t h) {
  if (h == 0) h = 1;
  size_t i = (size_t)h & (a->cap - 1);
  while (a->docs[i].h && a->docs[i].h != h) i = (i + 1) & (a->cap - 1);
  a->docs[i].h = h;
  return &a->docs[i];
}

/* The slot of h if it has one, else NULL. */
static key_doc *doc_find(apply_call *a, uint64_t h) {
  if (h == 0) h = 1;
  size_t i = (size_t)h & (a->cap - 1);
  while (a->docs[i].h && a->docs[i].h != h) i = (i + 1) & (a->cap - 1);
  return a->docs[i].h ? &a->docs[i] : NULL;
}

static void docs_reset(apply_call *a) {
  for (size_t i = 0; a->docs && i < a->cap; i++) {
    as_mongo_bson_free(a->docs[i].doc);
    memset(&a->docs[i], 0, sizeof a->docs[i]);
  }
}

static void call_free(apply_call *a) {
  docs_reset(a);
  for (size_t i = 0; a->filter && i < a->nd; i++) as_mongo_bson_free(a->filter[i]);
  free(a->docs);
  free(a->filter);
  free(a->h);
  free(a->st);
}

static uint64_t key_hash(const bson_t *filter, const char *coll) {
  return XXH3_64bits(bson_get_data(filter), filter->len) ^ XXH3_64bits(coll, strlen(coll));
}

uint64_t as_mongo_key_hash(const bson_t *filter, const char *coll) { return key_hash(filter, coll); }

static int dead_letter(as_dead_list *dead, const as_delta *d, size_t i, const char *msg) {
  char *m = strdup(msg);
  if (!m || as_dead_list_push(dead, d->schema, i, as_key_describe(d->schema, &d->row),
                              as_delta_to_json_string(d, NULL), m) != AS_OK)
    return AS_ERR;
  return AS_OK;
}

/* Key filters and hashes of every delta; a key that cannot be written is a dead letter. */
static int call_init(apply_call *a, const as_delta *d, size_t nd, as_dead_list *dead, as_error *err) {
  memset(a, 0, sizeof *a);
  a->d = d;
  a->nd = nd;
  a->cap = 16;
  while (a->cap < nd * 2 + 2) a->cap *= 2;
  a->st = calloc(nd ? nd : 1, 1);
  a->filter = calloc(nd ? nd : 1, sizeof *a->filter);
  a->h = calloc(nd ? nd : 1, sizeof *a->h);
  a->docs = calloc(a->cap, sizeof *a->docs);
  if (!a->st || !a->filter || !a->h || !a->docs) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  for (size_t i = 0; i < nd; i++) {
    as_error e = {0};
    if (!(a->filter[i] = as_mongo_bson_new())) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
    int rc = as_key_to_filter(d[i].schema, &d[i].row, a->filter[i], &e);
    if (rc == AS_OK && d[i].op != AS_OP_INSERT && d[i].op != AS_OP_UPDATE && d[i].op != AS_OP_DELETE)
      rc = as_error_set(&e, AS_DOM_MONGO, AS_EDATA, "mapping %s: unknown op %d", d[i].schema->name, (int)d[i].op);
    if (rc == AS_EDATA || rc == AS_EINVAL) {
      a->st[i] = ST_DEAD;
      if (dead_letter(dead, &d[i], i, e.message) != AS_OK) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
      continue;
    }
    if (rc != AS_OK) {
      *err = e;
      return rc;
    }
    a->h[i] = key_hash(a->filter[i], d[i].schema->collection);
  }
  return AS_OK;
}

/* Every pending delta's document is read: a delete's too, kept after the commit for the
 * capture (mongo_gone.c) and not written when there is no document. */
static bool wants_doc(const apply_call *a, size_t i) { return a->st[i] == ST_PENDING; }

/* Options of the find of one chunk of keys. Projection: without a catch-all only the mapped
 * top-level fields matter (unless another mapping of the node writes the same collection:
 * its plan shares the documents). */
static int read_query(as_node *n, const as_schema *s, bson_t *opts, size_t nkeys, as_error *err) {
  bson_t proj;
  bool shared = false;
  for (size_t i = 0; i < n->nschemas && !shared; i++)
    shared = n->schemas[i] != s && strcmp(n->schemas[i]->collection, s->collection) == 0;
  BSON_APPEND_INT32(opts, "batchSize", (int32_t)nkeys);
  if (s->catch_all_idx < 0 && !shared) {
    BSON_APPEND_DOCUMENT_BEGIN(opts, "projection", &proj);
    for (size_t i = 0; i < s->ncols; i++) {
      const as_column *c = &s->cols[i];
      bool dup = false;
      for (size_t k = 0; k < i && !dup; k++) dup = s->cols[k].npath && strcmp(s->cols[k].path[0], c->path[0]) == 0;
      if (c->npath && !dup) BSON_APPEND_INT32(&proj, c->path[0], 1);
    }
    bson_append_document_end(opts, &proj);
  }
  return session_opts(n, opts, err);
}

/* Runs the find and files each document under its key hash. */
static int read_run(as_node *n, apply_call *a, const as_schema *s, bson_t *filter, bson_t *opts, as_error *err) {
  bson_error_t be;
  const bson_t *doc;
  as_row kr = {0};
  int rc = AS_OK;
  mongoc_collection_t *c = mongoc_client_get_collection(n->client, n->database, s->collection);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, filter, opts, NULL);
  if (as_row_init(&kr, s->ncols) != AS_OK) rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  while (rc == AS_OK && mongoc_cursor_next(cur, &doc)) {
    bson_t f;
    if (as_doc_to_key(s, doc, &kr, NULL) != AS_OK) continue; /* not one of ours */
    if (as_key_to_filter(s, &kr, &f, NULL) == AS_OK) {
      key_doc *k = doc_find(a, key_hash(&f, s->collection));
      if (k && k->asked && !k->doc && (!(k->doc = as_mongo_bson_new()) || !bson_concat(k->doc, doc)))
        rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
    }
    bson_destroy(&f);
  }
  as_row_clear(&kr);
  const bson_t *reply = NULL;
  if (rc == AS_OK && mongoc_cursor_error_document(cur, &be, &reply)) {
    rc = as_mongo_fail(err, "read current documents", &be, reply);
    as_error_prefix(err, "node %s: mapping %s", n->name, s->name);
  }
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(c);
  return rc;
}

/* Reads the current documents of mapping s's pending insert/update keys from delta `from` on,
 * READ_CHUNK keys per find. */
static int read_mapping(as_node *n, apply_call *a, const as_schema *s, size_t from, as_error *err) {
  bool by_id = s->nkey == 1 && strcmp(s->cols[s->key_idx[0]].field, "_id") == 0;
  int rc = AS_OK;
  for (size_t i = from; rc == AS_OK && i < a->nd;) {
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, list, in;
    size_t nkeys = 0;
    if (by_id) {
      BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
      BSON_APPEND_ARRAY_BEGIN(&in, "$in", &list);
    } else {
      BSON_APPEND_ARRAY_BEGIN(&filter, "$or", &list);
    }
    for (; i < a->nd && nkeys < READ_CHUNK; i++) {
      if (!wants_doc(a, i) || a->d[i].schema != s) continue;
      key_doc *k = doc_slot(a, a->h[i]);
      if (k->known) continue;
      k->known = k->asked = true; /* absent unless the find returns it */
      char idx[16];
      snprintf(idx, sizeof idx, "%zu", nkeys++);
      bson_iter_t it;
      if (by_id && bson_iter_init(&it, a->filter[i]) && bson_iter_next(&it)) bson_append_iter(&list, idx, -1, &it);
      else if (!by_id) BSON_APPEND_DOCUMENT(&list, idx, a->filter[i]);
    }
    bson_append_array_end(by_id ? &in : &filter, &list);
    if (by_id) bson_append_document_end(&filter, &in);
    if (nkeys && (rc = read_query(n, s, &opts, nkeys, err)) == AS_OK) rc = read_run(n, a, s, &filter, &opts, err);
    bson_destroy(&filter);
    bson_destroy(&opts);
  }
  return rc;
}

/* Step 1: the documents of every pending insert/update key, as they are now. */
static int read_docs(as_node *n, apply_call *a, as_error *err) {
  docs_reset(a);
  int rc = AS_OK;
  for (size_t i = 0; rc == AS_OK && i < a->nd; i++) {
    if (!wants_doc(a, i)) continue;
    bool first = true; /* the first pending delta of its mapping reads for all of them */
    for (size_t j = 0; j < i && first; j++) first = !(wants_doc(a, j) && a->d[j].schema == a->d[i].schema);
    if (first) rc = read_mapping(n, a, a->d[i].schema, i, err);
  }
  for (size_t i = 0; i < a->cap; i++) a->docs[i].asked = false;
  return rc;
}

/* Appends an op of delta i (doc moved in: heap, may be NULL for deletes). */
static int push_op(as_node *n, apply_call *a, size_t i, mongo_ops *ops, mongo_op_kind kind, bool upsert,
                   bson_t *doc, as_error *err) {
  mongo_op *op = ops_push(ops);
  const as_delta *d = &a->d[i];
  if (!op) {
    as_mongo_bson_free(doc);
    return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  }
  op->kind = kind;
  op->upsert = upsert;
  op->schema = d->schema;
  op->index = i;
  op->keyhash = a->h[i];
  /* local_only: every origin is marked AS_ORIGIN_LOCAL_ONLY, and a write without origin gets
   * no mark, so the capture takes it as this node's own change (`conflicts resolve`); else a
   * write without origin is marked with this node's name */
  const char *mark = d->origin ? (n->local_only ? AS_ORIGIN_LOCAL_ONLY : d->origin)
                               : (n->local_only ? NULL : n->name);
  op->origin = mark ? strdup(mark) : NULL;
  bson_concat(op->filter, a->filter[i]);
  if (doc) {
    as_mongo_bson_free(op->doc);
    op->doc = doc;
  }
  return op->origin || !mark ? AS_OK : as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
}

/* AS_EDATA naming the column when the delta would leave a `required: true` column's field
 * without a value: set to NULL, or missing from a new document (a SQL row with NULL there;
 * the other direction refuses such documents the same way). */
static int check_required(const as_delta *d, bool new_doc, as_error *e) {
  const as_schema *s = d->schema;
  for (size_t c = 0; c < s->ncols; c++) {
    if (!s->cols[c].required || s->cols[c].is_key || s->cols[c].catch_all) continue;
    bool set = as_row_has(&d->row, c);
    if ((set && d->row.v[c].type == AS_T_NULL) || (!set && new_doc))
      return as_error_set(e, AS_DOM_MAPPING, AS_EDATA,
                          "mapping %s, column \"%s\" (field %s) is required and the row has no "
                          "value for it", s->name, s->cols[c].name, s->cols[c].field);
  }
  return AS_OK;
}

/* The write of an insert/update delta i onto its document k (which becomes the result). */
static int plan_write(as_node *n, apply_call *a, size_t i, key_doc *k, mongo_ops *ops, as_error *e) {
  const as_delta *d = &a->d[i];
  bool changed = false, replace = false;
  int req = check_required(d, k->doc == NULL, e);
  if (req != AS_OK) return req;
  bson_t *next = as_mongo_bson_new(), *upd = NULL;
  int rc = next ? as_doc_merge(d->schema, k->doc, &d->row, next, &changed, e)
                : as_error_set(e, AS_DOM_MONGO, AS_ERR, "out of memory");
  if (rc == AS_OK && changed && k->doc) {
    upd = as_mongo_bson_new();
    rc = upd ? as_doc_diff_update(k->doc, next, upd, &replace, e) : as_error_set(e, AS_DOM_MONGO, AS_ERR, "out of memory");
  }
  if (rc != AS_OK || !changed || (upd && !replace && bson_empty(upd))) {
    as_mongo_bson_free(next);
    as_mongo_bson_free(upd);
    return rc;
  }
  bson_t *whole = NULL;
  if (!upd || replace) {
    whole = as_mongo_bson_new();
    if (!whole || !bson_concat(whole, next)) rc = as_error_set(e, AS_DOM_MONGO, AS_ERR, "out of memory");
  }
  if (rc == AS_OK && !upd) { /* a new document */
    rc = push_op(n, a, i, ops, MONGO_OP_REPLACE, true, whole, e);
    whole = NULL;
  } else if (rc == AS_OK && replace) { /* a field no path can name: the whole document */
    rc = push_op(n, a, i, ops, MONGO_OP_REPLACE, false, whole, e);
    whole = NULL;
  } else if (rc == AS_OK) {
    rc = push_op(n, a, i, ops, MONGO_OP_UPDATE, false, upd, e);
    upd = NULL;
  }
  as_mongo_bson_free(whole);
  as_mongo_bson_free(upd);
  if (rc != AS_OK) {
    as_mongo_bson_free(next);
    return rc;
  }
  as_mongo_bson_free(k->doc);
  k->doc = next;
  return AS_OK;
}

/* Step 2: the ops of every pending delta, in order. */
static int plan(as_node *n, apply_call *a, mongo_ops *ops, as_dead_list *dead, as_error *err) {
  for (size_t i = 0; i < a->nd; i++) {
    if (a->st[i] != ST_PENDING) continue;
    const as_delta *d = &a->d[i];
    key_doc *k = doc_slot(a, a->h[i]);
    int rc = AS_OK;
    as_error e = {0};
    if (d->op == AS_OP_DELETE) {
      if (k->known && !k->doc) continue; /* nothing to delete */
      /* the document it deletes rides along (op->doc) until the commit */
      rc = push_op(n, a, i, ops, MONGO_OP_DELETE, false, k->doc, &e);
      k->doc = NULL;
      k->known = true;
    } else if (!k->known) {
      rc = as_error_set(&e, AS_DOM_MONGO, AS_ERR, "node %s: mapping %s: document not read", n->name, d->schema->name);
    } else if (!k->doc && d->op == AS_OP_UPDATE) {
      a->st[i] = ST_MISSING; /* some columns of a row the target lacks: the engine decides */
      if (as_dead_list_push_missing(dead, d->schema, i) != AS_OK) rc = as_error_set(&e, AS_DOM_MONGO, AS_ERR, "out of memory");
    } else {
      rc = plan_write(n, a, i, k, ops, &e);
    }
    if (rc == AS_EDATA || rc == AS_EINVAL) {
      a->st[i] = ST_DEAD;
      AS_LOG(AS_LOG_WARN, n->comp, "dead letter: %s", e.message);
      if (dead_letter(dead, d, i, e.message) != AS_OK) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
      continue;
    }
    if (rc != AS_OK) {
      *err = e;
      return rc;
    }
  }
  return AS_OK;
}

/* Per-document write errors of a round: dead letters. */
static int dead_letter_fails(as_node *n, apply_call *a, const mongo_ops *ops, const fail_list *f, as_dead_list *dead,
                             as_error *err) {
  for (size_t k = 0; k < f->n; k++) {
    const mongo_op *op = &ops->v[f->v[k].op];
    if (a->st[op->index] == ST_DEAD) continue;
    a->st[op->index] = ST_DEAD;
    const as_delta *dd = &a->d[op->index];
    char *key = as_key_describe(dd->schema, &dd->row);
    char msg[AS_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "mapping %s: collection %s: key %s: %s (error %d)", dd->schema->name,
             dd->schema->collection, key ? key : "?", f->v[k].msg ? f->v[k].msg : "", f->v[k].code);
    free(key);
    AS_LOG(AS_LOG_WARN, n->comp, "dead letter: %s", msg);
    if (dead_letter(dead, dd, op->index, msg) != AS_OK) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  }
  return AS_OK;
}

int as_mongo_apply(as_node *n, const as_delta *d, size_t nd, as_dead_list *dead, as_error *err) {
  apply_call a;
  mongo_ops ops = {0};
  fail_list f = {0};
  int rc = call_init(&a, d, nd, dead, err);
  while (rc == AS_OK) {
    size_t upto = 0;
    if (n->need_replay && (rc = replay(n, err)) != AS_OK) break;
    if ((rc = read_docs(n, &a, err)) != AS_OK || (rc = plan(n, &a, &ops, dead, err)) != AS_OK) break;
    if ((rc = exec_ops(n, &ops, &f, &upto, err)) != AS_OK || f.n == 0) break;
    if ((rc = dead_letter_fails(n, &a, &ops, &f, dead, err)) != AS_OK) break;
    if (n->in_txn) {
      n->need_replay = true; /* the server aborted the transaction: replay, plan again */
    } else { /* the bulks before the failure are applied: go on after them */
      size_t first = upto < ops.n ? ops.v[upto].index : nd;
      for (size_t i = 0; i < first; i++)
        if (a.st[i] == ST_PENDING) a.st[i] = ST_DONE;
    }
    ops_clear(&ops);
    fails_clear(&f);
  }
  if (rc == AS_OK && n->in_txn && ops_move_all(&n->done, &ops) != AS_OK)
    rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  fails_clear(&f);
  ops_clear(&ops);
  free(ops.v);
  call_free(&a);
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

/* The session's operationTime (the newest cluster time its replies gave; 0 none): taken
 * before the commit is sent, it is earlier than the commit's cluster time. */
static int64_t session_time(as_node *n) {
  uint32_t t = 0, i = 0;
  if (n->sess) mongoc_client_session_get_operation_time(n->sess, &t, &i);
  return (int64_t)(((uint64_t)t << 32) | i);
}

int as_mongo_commit(as_node *n, const char *stream_id, const char *checkpoint,
                       as_error *err) {
  int rc = AS_OK;
  int64_t gone_at = 0;
  n->commit_time = 0;
  for (;;) {
    if (n->need_replay && (rc = replay(n, err)) != AS_OK) goto cleanup;
    if (checkpoint && stream_id && (rc = write_checkpoint(n, stream_id, checkpoint, err)) != AS_OK)
      goto cleanup;
    /* when the deletes count as made, for the capture's choice of a deleted document: the
     * newest cluster time the session saw, before the commit (mongo_gone.c) */
    gone_at = session_time(n);
    if (!n->in_txn || n->gone_off) break;
    /* the documents it deletes, kept in the same transaction */
    bson_t opts = BSON_INITIALIZER;
    if ((rc = session_opts(n, &opts, err)) == AS_OK)
      rc = as_mongo_gone_write(n, &n->done, gone_at, &opts, err);
    bson_destroy(&opts);
    if (rc == AS_OK) break;
    if (rc == AS_RETRY) goto cleanup;
    /* e.g. not allowed to write there: in memory only from now on; the server has aborted the
     * transaction, which is replayed without */
    AS_LOG(AS_LOG_WARN, n->comp, "%s; the documents the sink deletes are kept in memory only",
           err->message);
    n->gone_off = true;
    n->need_replay = true;
    rc = AS_OK;
  }
  if (n->in_txn) {
    for (int attempt = 0;; attempt++) {
      bson_t reply;
      bson_error_t be;
      bool ok = mongoc_client_session_commit_transaction(n->sess, &reply, &be);
      if (ok) {
        /* the commit's operationTime (its cluster time; a reply without one: unknown) */
        bson_iter_t it;
        if (bson_iter_init_find(&it, &reply, "operationTime") && BSON_ITER_HOLDS_TIMESTAMP(&it)) {
          uint32_t t, i;
          bson_iter_timestamp(&it, &t, &i);
          n->commit_time = (int64_t)(((uint64_t)t << 32) | i);
        }
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
    as_mongo_gone_committed(n, &n->done, gone_at);
  }
cleanup:
  if (rc != AS_OK) txn_abort(n);
  ops_clear(&n->done);
  n->need_replay = false;
  free(n->mark_origin);
  n->mark_origin = NULL;
  return rc;
}

int as_mongo_rollback(as_node *n) {
  txn_abort(n);
  ops_clear(&n->done);
  n->need_replay = false;
  /* The session is kept: the next transaction on it (a higher txnNumber) aborts on the server
   * whatever the failed one left open (e.g. after a commit that failed before it ran, which
   * libmongoc no longer lets us abort); a new session would leave it holding its locks until
   * transactionLifetimeLimitSeconds. */
  return AS_OK;
}

void as_mongo_sink_free(as_node *n) {
  as_mongo_gone_free(n);
  ops_clear(&n->done);
  free(n->done.v);
  n->done.v = NULL;
  n->done.cap = 0;
}

int64_t as_mongo_commit_order(as_node *n) { return n->commit_time; }
