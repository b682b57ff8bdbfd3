/* mongo_capture.c — MongoDB adapter: capture (one change stream per database) and snapshots.
 * Design notes, echo marks and positions: README.md in this directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "as_children.h"
#include "as_log.h"
#include "as_time.h"
#include "mongo_internal.h"

struct as_stream {
  as_node *n;
  char *consumer;
  mongoc_client_t *client;
  mongoc_change_stream_t *cs;
  char *token;        /* resume token text of the last event or post-batch token */
  size_t token_cap;   /* bytes allocated for token */
  char *mark_txn;     /* transaction of the last connector mark seen, or NULL */
  char *mark_origin;  /* its origin */
  bool stopped;       /* invalidated/dropped: every later poll returns stop_rc */
  int stop_rc;
  as_error stop_err;
  bool *changed;      /* scratch: columns changed by an update (max ncols) */
  int64_t in_hand;    /* events libmongoc still holds of the batch it last fetched */
  bool counted;       /* batch sizes are seen (as_mongo_last_batch moved for this stream) */
  bool in_count;      /* counted in n->nstreams */
  size_t nchanged;
  char comp[200];
};

/* ------------------------------------------------------------------ positions */

/* Position text: "<token>" or, inside a transaction the connector marked,
 * "<token>|<txn>|<origin>" so that a stream resumed in the middle of such a transaction still
 * recognises its echoes. <token> is the resume token's _data string (hex), or the whole token
 * as relaxed extended JSON when it has no _data. */
static char *make_pos(const as_stream *s) {
  if (!s->token) return NULL;
  size_t tl = strlen(s->token);
  size_t xl = s->mark_txn ? strlen(s->mark_txn) + 2 + (s->mark_origin ? strlen(s->mark_origin) : 0) : 0;
  char *p = malloc(tl + xl + 1);
  if (!p) return NULL;
  memcpy(p, s->token, tl + 1);
  if (s->mark_txn) {
    snprintf(p + tl, xl + 1, "|%s|%s", s->mark_txn, s->mark_origin ? s->mark_origin : "");
  }
  return p;
}

static char *token_text(const bson_t *tok) {
  bson_iter_t it;
  if (!tok) return NULL;
  if (bson_iter_init_find(&it, tok, "_data") && BSON_ITER_HOLDS_UTF8(&it))
    return strdup(bson_iter_utf8(&it, NULL));
  size_t len;
  char *j = bson_as_relaxed_extended_json(tok, &len);
  char *out = j ? strdup(j) : NULL;
  bson_free(j);
  return out;
}

static void set_token(as_stream *s, const bson_t *tok) {
  bson_iter_t it;
  if (tok && bson_iter_init_find(&it, tok, "_data") && BSON_ITER_HOLDS_UTF8(&it)) {
    uint32_t len;
    const char *d = bson_iter_utf8(&it, &len);
    if (s->token && len < s->token_cap) { /* the hot path: no allocation */
      memcpy(s->token, d, (size_t)len + 1);
      return;
    }
  }
  char *t = token_text(tok);
  if (t) {
    free(s->token);
    s->token = t;
    s->token_cap = strlen(t) + 1;
  }
}

static void clear_mark(as_stream *s) {
  free(s->mark_txn);
  free(s->mark_origin);
  s->mark_txn = s->mark_origin = NULL;
}

/* Splits a checkpoint into the resume token document and the mark state. */
static int parse_pos(as_stream *s, const char *pos, bson_t *token, as_error *err) {
  const char *bar = pos[0] == '{' ? NULL : strchr(pos, '|');
  size_t tlen = bar ? (size_t)(bar - pos) : strlen(pos);
  char *t = strndup(pos, tlen);
  if (!t) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  if (pos[0] == '{') {
    bson_error_t be;
    if (!bson_init_from_json(token, t, -1, &be)) {
      free(t);
      return as_error_set(err, AS_DOM_MONGO, AS_EINVAL, "node %s: bad checkpoint: %s",
                          s->n->name, be.message);
    }
  } else {
    BSON_APPEND_UTF8(token, "_data", t);
  }
  s->token = t;
  s->token_cap = tlen + 1;
  if (bar) {
    const char *bar2 = strchr(bar + 1, '|');
    if (!bar2) return as_error_set(err, AS_DOM_MONGO, AS_EINVAL, "node %s: bad checkpoint",
                                   s->n->name);
    s->mark_txn = strndup(bar + 1, (size_t)(bar2 - bar - 1));
    s->mark_origin = strdup(bar2 + 1);
    if (!s->mark_txn || !s->mark_origin) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  }
  return AS_OK;
}

/* ------------------------------------------------------------------ open / close */

static int history_lost(as_stream *s, const char *what, as_error *err) {
  as_node *n = s->n;
  if (n->resnapshot) {
    as_error_set(err, AS_DOM_MONGO, 286,
                 "node %s (consumer %s): %s: the resume token is older than the server's change "
                 "history (error 286); on_history_lost is resnapshot: the mappings must be "
                 "copied again", n->name, s->consumer, what);
    return AS_ERESNAPSHOT;
  }
  as_error_set(err, AS_DOM_MONGO, 286,
               "node %s (consumer %s): %s: the resume token is older than the server's change "
               "history (error 286): the changes in between are lost to this stream; run "
               "`arraysync run --resnapshot` (copies every mapping again) or set on_history_lost: resnapshot",
               n->name, s->consumer, what);
  return AS_ERR;
}

static int stream_error(as_stream *s, const char *what, const bson_error_t *be,
                        const bson_t *doc, as_error *err) {
  if (be->code == 286) return history_lost(s, what, err);
  int rc = as_mongo_fail(err, what, be, doc);
  as_error_prefix(err, "node %s (consumer %s)", s->n->name, s->consumer);
  return rc;
}

void as_mongo_close_stream(as_stream *s) {
  if (!s) return;
  if (s->in_count) as_mongo_streams_add(s->n, -1);
  if (s->cs) mongoc_change_stream_destroy(s->cs);
  if (s->client) mongoc_client_pool_push(s->n->pool, s->client);
  clear_mark(s);
  free(s->token);
  free(s->consumer);
  free(s->changed);
  free(s);
}

int as_mongo_open_stream(as_node *n, const char *consumer, const char *checkpoint,
                         as_stream **out, as_error *err) {
  int rc = AS_OK;
  bson_t pipeline = BSON_INITIALIZER, opts = BSON_INITIALIZER, token = BSON_INITIALIZER;
  bson_t arr, st, match, c1in, c1list;
  bson_error_t be;
  const bson_t *edoc = NULL;
  mongoc_database_t *db = NULL;
  as_stream *s = calloc(1, sizeof *s);
  *out = NULL;
  if (!s) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  s->n = n;
  s->consumer = strdup(consumer ? consumer : "");
  size_t maxcols = 1;
  for (size_t i = 0; i < n->nschemas; i++)
    if (n->schemas[i]->ncols > maxcols) maxcols = n->schemas[i]->ncols;
  s->changed = calloc(maxcols, sizeof *s->changed);
  s->nchanged = maxcols;
  if (!s->consumer || !s->changed) {
    rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
    goto cleanup;
  }
  snprintf(s->comp, sizeof s->comp, "source:mongodb:%s", n->name);
  if (!n->pool) {
    rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "node %s: not connected", n->name);
    goto cleanup;
  }
  if (checkpoint && (rc = parse_pos(s, checkpoint, &token, err)) != AS_OK) goto cleanup;

  /* [{$match: {"ns.coll": {$in: [mapped..., "__arraysync_marks"]}}}]. dropDatabase and the
   * invalidate after it are filtered out, but MongoDB emits a drop event for every collection
   * first, and the drop of a mapped collection stops the stream. */
  BSON_APPEND_ARRAY_BEGIN(&pipeline, "pipeline", &arr);
  BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &st);
  BSON_APPEND_DOCUMENT_BEGIN(&st, "$match", &match);
  BSON_APPEND_DOCUMENT_BEGIN(&match, "ns.coll", &c1in);
  BSON_APPEND_ARRAY_BEGIN(&c1in, "$in", &c1list);
  char key[24];
  size_t k = 0;
  for (size_t i = 0; i < n->nschemas; i++) {
    snprintf(key, sizeof key, "%zu", k++);
    BSON_APPEND_UTF8(&c1list, key, n->schemas[i]->collection);
  }
  snprintf(key, sizeof key, "%zu", k++);
  BSON_APPEND_UTF8(&c1list, key, AS_MONGO_MARKS);
  bson_append_array_end(&c1in, &c1list);
  bson_append_document_end(&match, &c1in);
  bson_append_document_end(&st, &match);
  bson_append_document_end(&arr, &st);
  bson_append_array_end(&pipeline, &arr);

  BSON_APPEND_UTF8(&opts, "fullDocument", n->when_available ? "whenAvailable" : "updateLookup");
  /* with pre- and post-images: the pre-image too (an update's `before`, a merge's base) */
  if (n->when_available) BSON_APPEND_UTF8(&opts, "fullDocumentBeforeChange", "whenAvailable");
  BSON_APPEND_INT32(&opts, "batchSize", n->batch_size);
  BSON_APPEND_INT64(&opts, "maxAwaitTimeMS", n->max_await_ms);
  if (checkpoint) BSON_APPEND_DOCUMENT(&opts, "resumeAfter", &token);

  s->client = mongoc_client_pool_pop(n->pool);
  db = mongoc_client_get_database(s->client, n->database);
  s->cs = mongoc_database_watch(db, &pipeline, &opts);
  if (mongoc_change_stream_error_document(s->cs, &be, &edoc)) {
    rc = stream_error(s, checkpoint ? "resume change stream" : "open change stream", &be, edoc,
                      err);
    goto cleanup;
  }
  if (!checkpoint) {
    set_token(s, mongoc_change_stream_get_resume_token(s->cs));
    if (!s->token) {
      rc = as_error_set(err, AS_DOM_MONGO, AS_ERR,
                        "node %s: the server gave no postBatchResumeToken (MongoDB >= 4.0.7 "
                        "needed)", n->name);
      goto cleanup;
    }
  }
  AS_LOG(AS_LOG_INFO, s->comp, "change stream on %s for %s %s", n->database, s->consumer,
         checkpoint ? "resumed" : "opened at the current end");
  as_mongo_streams_add(n, 1);
  s->in_count = true;
  *out = s;
  s = NULL;
cleanup:
  if (db) mongoc_database_destroy(db);
  as_mongo_close_stream(s);
  bson_destroy(&pipeline);
  bson_destroy(&opts);
  bson_destroy(&token);
  return rc;
}

int as_mongo_ack(as_stream *s, const char *pos, as_error *err) {
  (void)s;
  (void)pos;
  (void)err;
  return AS_OK; /* MongoDB keeps its own change history (the oplog): nothing to purge */
}

int as_mongo_stream_position(as_stream *s, char **out, as_error *err) {
  *out = make_pos(s);
  if (!*out) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "node %s: no position", s->n->name);
  return AS_OK;
}

/* ------------------------------------------------------------------ events */

typedef struct cs_event {
  const char *op;
  const char *coll;
  bson_t id, ns, doc_key, full_doc, desc, before_doc;
  bool has_id, has_doc_key, has_full_doc, has_desc, has_before;
  int64_t ts_us;
  uint32_t tick;     /* order within the millisecond: the clusterTime increment, at most 255 */
  int64_t order;     /* the clusterTime, seconds << 32 | increment (commit order), 0 if none */
  char txn[96];
  bool has_txn;
} cs_event;

static bool sub_doc(bson_iter_t *it, bson_t *out) {
  uint32_t len;
  const uint8_t *data;
  if (!BSON_ITER_HOLDS_DOCUMENT(it)) return false;
  bson_iter_document(it, &len, &data);
  return bson_init_static(out, data, len);
}

static void parse_event(const bson_t *ev, cs_event *e) {
  bson_iter_t it;
  int64_t cluster_us = 0, wall_us = -1;
  uint32_t cluster_i = 0;
  const uint8_t *lsid_id = NULL;
  uint32_t lsid_len = 0;
  int64_t txn_number = -1;
  memset(e, 0, sizeof *e);
  if (!bson_iter_init(&it, ev)) return;
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    switch (k[0]) {
      case '_':
        if (strcmp(k, "_id") == 0) e->has_id = sub_doc(&it, &e->id);
        break;
      case 'o':
        if (strcmp(k, "operationType") == 0 && BSON_ITER_HOLDS_UTF8(&it))
          e->op = bson_iter_utf8(&it, NULL);
        break;
      case 'n':
        if (strcmp(k, "ns") == 0 && sub_doc(&it, &e->ns)) {
          bson_iter_t c;
          if (bson_iter_init_find(&c, &e->ns, "coll") && BSON_ITER_HOLDS_UTF8(&c))
            e->coll = bson_iter_utf8(&c, NULL);
        }
        break;
      case 'd':
        if (strcmp(k, "documentKey") == 0) e->has_doc_key = sub_doc(&it, &e->doc_key);
        break;
      case 'f':
        if (strcmp(k, "fullDocument") == 0) e->has_full_doc = sub_doc(&it, &e->full_doc);
        else if (strcmp(k, "fullDocumentBeforeChange") == 0) e->has_before = sub_doc(&it, &e->before_doc);
        break;
      case 'u':
        if (strcmp(k, "updateDescription") == 0) e->has_desc = sub_doc(&it, &e->desc);
        break;
      case 'w':
        if (strcmp(k, "wallTime") == 0 && BSON_ITER_HOLDS_DATE_TIME(&it))
          wall_us = bson_iter_date_time(&it) * 1000;
        break;
      case 'c':
        if (strcmp(k, "clusterTime") == 0 && BSON_ITER_HOLDS_TIMESTAMP(&it)) {
          uint32_t t, i;
          bson_iter_timestamp(&it, &t, &i);
          cluster_us = (int64_t)t * 1000000;
          cluster_i = i;
          e->order = (int64_t)(((uint64_t)t << 32) | i);
        }
        break;
      case 'l':
        if (strcmp(k, "lsid") == 0 && BSON_ITER_HOLDS_DOCUMENT(&it)) {
          bson_iter_t l;
          if (bson_iter_recurse(&it, &l) && bson_iter_find(&l, "id") && BSON_ITER_HOLDS_BINARY(&l)) {
            bson_subtype_t st;
            bson_iter_binary(&l, &st, &lsid_len, &lsid_id);
          }
        }
        break;
      case 't':
        if (strcmp(k, "txnNumber") == 0 && BSON_ITER_HOLDS_NUMBER(&it))
          txn_number = bson_iter_as_int64(&it);
        break;
      default:
        break;
    }
  }
  e->ts_us = wall_us >= 0 ? wall_us : cluster_us;
  /* wallTime has milliseconds only: two changes of one key in one millisecond would carry one
   * version (a delete and the insert after it looked alike). The clusterTime increment orders
   * them, in the HLC's logical counter; capped, so it never inverts (the increments of one
   * second only grow), and only where the wall time is in the clusterTime's second. */
  e->tick = cluster_i && e->ts_us / 1000000 == cluster_us / 1000000 ? (cluster_i > 255 ? 255 : cluster_i) : 0;
  if (lsid_id && txn_number >= 0 && lsid_len <= 32) {
    static const char hex[] = "0123456789abcdef";
    size_t p = 0;
    for (uint32_t i = 0; i < lsid_len; i++) {
      e->txn[p++] = hex[lsid_id[i] >> 4];
      e->txn[p++] = hex[lsid_id[i] & 15];
    }
    snprintf(e->txn + p, sizeof e->txn - p, ":%lld", (long long)txn_number);
    e->has_txn = true;
  }
}

/* A dead letter's raw form: the document (or the event) as canonical extended JSON; a
 * document JSON cannot carry (a string that is not UTF-8) as AS_MONGO_RAW_HEX + its bytes in
 * hex, so the payload is never lost (decode_raw reads both). */
static char *doc_raw(const bson_t *doc) {
  size_t len;
  char *j = bson_as_canonical_extended_json(doc, &len);
  char *out = j ? strdup(j) : NULL;
  bson_free(j);
  if (out) return out;
  static const char hex[] = "0123456789abcdef";
  size_t plen = strlen(AS_MONGO_RAW_HEX);
  if (!(out = malloc(plen + 2 * (size_t)doc->len + 1))) return NULL;
  memcpy(out, AS_MONGO_RAW_HEX, plen);
  const uint8_t *p = bson_get_data(doc);
  for (uint32_t i = 0; i < doc->len; i++) {
    out[plen + 2 * i] = hex[p[i] >> 4];
    out[plen + 2 * i + 1] = hex[p[i] & 15];
  }
  out[plen + 2 * (size_t)doc->len] = '\0';
  return out;
}

static char *event_json(const cs_event *e, const bson_t *ev) {
  return doc_raw(e->has_full_doc ? &e->full_doc : ev);
}

/* The document key as relaxed extended JSON ({"_id": 5}): a dead letter's key when the key
 * does not fit the mapping's key columns. */
static char *doc_key_json(const cs_event *e) {
  if (!e->has_doc_key) return NULL;
  size_t len;
  char *j = bson_as_relaxed_extended_json(&e->doc_key, &len);
  char *out = j ? strdup(j) : NULL;
  bson_free(j);
  return out;
}

static int stop(as_stream *s, int rc, as_error *err, const char *fmt, const char *a,
                const char *b) {
  char msg[AS_ERROR_MSG_MAX];
  snprintf(msg, sizeof msg, fmt, a, b);
  s->stopped = true;
  s->stop_rc = rc;
  as_error_set(&s->stop_err, AS_DOM_MONGO, rc, "node %s (consumer %s): %s", s->n->name,
               s->consumer, msg);
  AS_LOG(AS_LOG_ERROR, s->comp, "%s", s->stop_err.message);
  (void)err;
  return AS_OK; /* poll delivers what came before, then returns stop_rc */
}

/* Fills d (already initialised) with the common fields. */
/* Whether e belongs to the transaction of the connector mark the stream saw last (an echo). */
static bool is_echo(const as_stream *s, const cs_event *e) {
  return s->mark_txn && e->has_txn && strcmp(s->mark_txn, e->txn) == 0;
}

static int delta_common(as_stream *s, const cs_event *e, as_delta *d, const char *pos) {
  bool echo = is_echo(s, e);
  (void)pos;
  d->echo = echo;
  d->ts_us = e->ts_us;
  d->hlc = AS_HLC_FROM_US(e->ts_us) | (int64_t)e->tick;
  d->order = e->order;
  if (as_delta_set_origin(d, echo ? s->mark_origin : s->n->name) != AS_OK) return AS_ERR;
  free(d->pos);
  if (!(d->pos = make_pos(s))) return AS_ERR;
  if (e->has_txn && as_delta_set_txn(d, e->txn) != AS_OK) return AS_ERR;
  return AS_OK;
}

static int dead_letter(as_stream *s, as_batch *out, const as_schema *sc, const cs_event *e,
                       const bson_t *ev, const as_error *why, const char *pos) {
  char *key = NULL;
  as_row kr = {0};
  if (e->has_doc_key && as_row_init(&kr, sc->ncols) == AS_OK &&
      as_doc_to_key(sc, &e->doc_key, &kr, NULL) == AS_OK)
    key = as_key_describe(sc, &kr);
  as_row_clear(&kr);
  if (!key) key = doc_key_json(e);
  AS_LOG(AS_LOG_WARN, s->comp, "dead letter: mapping %s: %s", sc->name, why->message);
  return as_batch_push_dead(out, sc, key, event_json(e, ev), strdup(why->message),
                            make_pos(s));
}

/* Marks the columns an updateDescription path touches. Returns false if the path needs the
 * full document (a parent of mapped paths, or the catch-all) when there is none. */
static void mark_path(const as_schema *sc, const char *path, bool *changed) {
  int i = as_schema_column_for_path(sc, path);
  if (i >= 0) {
    changed[i] = true;
  } else if (i == AS_SCHEMA_PATH_PARENT) {
    size_t pl = strlen(path);
    for (size_t c = 0; c < sc->ncols; c++) {
      const char *f = sc->cols[c].field;
      if (!sc->cols[c].catch_all && f && strncmp(f, path, pl) == 0 && f[pl] == '.')
        changed[c] = true;
    }
    if (sc->catch_all_idx >= 0) changed[sc->catch_all_idx] = true;
  }
}

static int event_key(const as_schema *sc, const cs_event *e, as_row *row, as_error *err) {
  if (e->has_doc_key) return as_doc_to_key(sc, &e->doc_key, row, err);
  if (e->has_full_doc) return as_doc_to_key(sc, &e->full_doc, row, err);
  return as_error_set(err, AS_DOM_MONGO, AS_EDATA, "mapping %s: change event without documentKey",
                      sc->name);
}

static bool find_exact(const bson_t *fields, const char *path, bson_iter_t *out) {
  bson_iter_t it;
  if (!bson_iter_init(&it, fields)) return false;
  while (bson_iter_next(&it)) {
    if (strcmp(bson_iter_key(&it), path) == 0) {
      *out = it;
      return true;
    }
  }
  return false;
}

static bool in_removed(const bson_t *removed, const char *path) {
  bson_iter_t it;
  if (!removed || !bson_iter_init(&it, removed)) return false;
  while (bson_iter_next(&it)) {
    if (BSON_ITER_HOLDS_UTF8(&it) && strcmp(bson_iter_utf8(&it, NULL), path) == 0) return true;
  }
  return false;
}

/* The document as this node's sink deleted it, in the first delete that committed after the
 * event (a heap copy), else NULL. An update event read after the connector deleted its
 * document has no full document, or (updateLookup) the document the connector wrote there
 * since; the deleted one holds the update and the rest of the row, which the engine needs when
 * the update wins over the delete (README.md, "Documents the sink deleted"). */
static bson_t *gone_doc(as_stream *s, const as_schema *sc, const cs_event *e, const as_row *key) {
  if (!e->order) return NULL;
  as_error err; /* (set only on failure: not cleared on this per-event path) */
  if (as_mongo_gone_load(s->n, s->client, &err) != AS_OK) /* read back once per process */
    AS_LOG(AS_LOG_DEBUG, s->comp, "%s", err.message);
  if (!as_mongo_gone_any(s->n)) return NULL;
  bson_t f;
  bson_t *doc = NULL;
  if (as_key_to_filter(sc, key, &f, NULL) == AS_OK)
    doc = as_mongo_gone_find(s->n, as_mongo_key_hash(&f, sc->collection), e->order);
  bson_destroy(&f);
  return doc;
}

static int handle_update(as_stream *s, const as_schema *sc, const cs_event *e, const bson_t *ev,
                         as_batch *out, const char *pos, as_error *err) {
  bson_t updated, removed, truncated;
  bool has_u = false, has_r = false, has_t = false;
  bson_iter_t it;
  int rc = AS_OK;
  as_row full = {0};
  bool *changed = s->changed;
  memset(changed, 0, s->nchanged * sizeof *changed);
  if (e->has_desc && bson_iter_init(&it, &e->desc)) {
    while (bson_iter_next(&it)) {
      const char *k = bson_iter_key(&it);
      if (strcmp(k, "updatedFields") == 0) has_u = sub_doc(&it, &updated);
      else if (strcmp(k, "removedFields") == 0 && BSON_ITER_HOLDS_ARRAY(&it)) {
        uint32_t len;
        const uint8_t *data;
        bson_iter_array(&it, &len, &data);
        has_r = bson_init_static(&removed, data, len);
      } else if (strcmp(k, "truncatedArrays") == 0 && BSON_ITER_HOLDS_ARRAY(&it)) {
        uint32_t len;
        const uint8_t *data;
        bson_iter_array(&it, &len, &data);
        has_t = bson_init_static(&truncated, data, len);
      }
    }
  }
  if (has_u && bson_iter_init(&it, &updated))
    while (bson_iter_next(&it)) mark_path(sc, bson_iter_key(&it), changed);
  if (has_r && bson_iter_init(&it, &removed))
    while (bson_iter_next(&it))
      if (BSON_ITER_HOLDS_UTF8(&it)) mark_path(sc, bson_iter_utf8(&it, NULL), changed);
  if (has_t && bson_iter_init(&it, &truncated)) {
    while (bson_iter_next(&it)) {
      bson_iter_t f;
      if (BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &f) && bson_iter_find(&f, "field") &&
          BSON_ITER_HOLDS_UTF8(&f))
        mark_path(sc, bson_iter_utf8(&f, NULL), changed);
    }
  }
  bool any = false;
  for (size_t c = 0; c < sc->ncols; c++) {
    if (sc->cols[c].is_key) changed[c] = false; /* _id is immutable; keys travel anyway */
    any = any || changed[c];
  }
  if (!any) return AS_OK; /* only unmapped fields changed and there is no catch-all */

  as_delta *d = as_batch_push(out);
  if (!d || as_delta_init(d, sc, AS_OP_UPDATE) != AS_OK) {
    if (d) out->n--;
    return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  }
  as_error e2 = {0};
  /* The values come from the event itself wherever it holds them exactly (updatedFields /
   * removedFields at a column's own path): the full document of updateLookup is the document
   * as it is when the event is read, which can hold a later value — even one the connector
   * wrote there since — and each stream reads it at its own time, so two streams could see
   * two values for one change. The full document fills only what the event does not hold
   * (a change inside a column's value, the catch-all) and is the row image. */
  /* a post-image (whenAvailable) is the document right after the update; a looked-up one is
   * the document now, which after the connector's delete is no longer the update's */
  if ((rc = event_key(sc, e, &d->row, &e2)) != AS_OK) goto dead;
  bson_t *gone = e->has_full_doc && s->n->when_available ? NULL : gone_doc(s, sc, e, &d->row);
  /* the image another stream of this node used for this very event, if one did */
  bool shared = false;
  bson_t *sh = s->n->when_available || !e->has_id || is_echo(s, e) ? NULL
             : as_mongo_image_share(s->n, &e->id, gone ? gone : e->has_full_doc ? &e->full_doc : NULL,
                                    &shared);
  bool has_full = false;
  const bson_t *img = shared ? sh : gone;
  if (img) { /* a document the connector wrote, read back: one that does not map is no image */
    as_error ge;
    has_full = as_row_init(&full, sc->ncols) == AS_OK && as_doc_to_row(sc, img, &full, &ge) == AS_OK;
    if (!has_full) {
      as_row_clear(&full);
    } else if (AS_LOG_DEBUG <= as_log_current_level) {
      char *key = as_key_describe(sc, &full);
      AS_LOG(AS_LOG_DEBUG, s->comp, "mapping %s key %s: %s", sc->name, key ? key : "?",
             shared ? "update read by another stream first: its row image is this one's"
                    : "update read after the connector deleted its document: the deleted "
                      "document is its row image");
      free(key);
    }
  }
  as_mongo_bson_free(gone);
  as_mongo_bson_free(sh);
  if (!has_full && !shared && e->has_full_doc) {
    has_full = true;
    if (as_row_init(&full, sc->ncols) != AS_OK || (rc = as_doc_to_row(sc, &e->full_doc, &full, &e2)) != AS_OK)
      goto dead;
  }
  for (size_t c = 0; c < sc->ncols; c++) {
    if (!changed[c]) continue;
    const as_column *col = &sc->cols[c];
    bson_iter_t vi;
    as_value v = AS_VALUE_NULL;
    if (!col->catch_all && has_u && find_exact(&updated, col->field, &vi)) {
      if ((rc = as_bson_iter_to_value(sc, col, &vi, &v, &e2)) != AS_OK) goto dead;
      as_row_put(&d->row, c, &v);
    } else if (!col->catch_all && in_removed(has_r ? &removed : NULL, col->field)) {
      as_row_put(&d->row, c, &v);
    } else if (has_full && full.set[c]) {
      if (as_value_copy(&v, &full.v[c]) != AS_OK) {
        rc = as_error_set(&e2, AS_DOM_MONGO, AS_ERR, "out of memory");
        goto dead;
      }
      as_row_put(&d->row, c, &v);
    } else {
      AS_LOG(AS_LOG_DEBUG, s->comp,
             "mapping %s: update without fullDocument touches %s inside a field: skipped "
             "(the document is gone; its delete event follows)", sc->name, col->name);
      as_delta_clear(d);
      out->n--;
      goto cleanup;
    }
  }
  if (sc->nchildren && (rc = as_children_drop_invalid(sc, &d->row, &e2)) != AS_OK) {
    if (rc != AS_EDATA) goto dead;
    bool any_left = false;
    for (size_t c = 0; c < sc->ncols; c++) any_left = any_left || (!sc->cols[c].is_key && d->row.set[c]);
    if (!any_left) { /* nothing else changed: the dead letter says it all */
      as_delta_clear(d);
      out->n--;
    }
    rc = dead_letter(s, out, sc, e, ev, &e2, pos); /* (dead letters are apart from out->d) */
    if (!any_left || rc != AS_OK) goto cleanup;
  }
  if (has_full) { /* the row image: what the update writes if it brings a row back */
    d->image = full;
    memset(&full, 0, sizeof full);
  }
  if (e->has_before && as_schema_keeps_before(sc)) { /* the pre-image, for a script's ctx.base */
    as_error be;
    if (as_row_init(&d->before, sc->ncols) != AS_OK || as_doc_to_row(sc, &e->before_doc, &d->before, &be) != AS_OK)
      as_row_clear(&d->before);
  }
  if (delta_common(s, e, d, pos) != AS_OK) {
    rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  }
  goto cleanup;
dead:
  as_delta_clear(d);
  out->n--;
  rc = (rc == AS_EDATA || rc == AS_EINVAL) ? dead_letter(s, out, sc, e, ev, &e2, pos) : rc;
  if (rc != AS_OK && rc != AS_ERR) rc = AS_ERR;
  if (rc == AS_ERR && err) *err = e2;
cleanup:
  as_row_clear(&full);
  return rc;
}

static int handle_event(as_stream *s, const bson_t *ev, as_batch *out, as_error *err) {
  cs_event e;
  int rc = AS_OK;
  parse_event(ev, &e);
  if (e.has_id) set_token(s, &e.id);
  const char *op = e.op ? e.op : "";
  if (e.coll && strcmp(e.coll, AS_MONGO_MARKS) == 0) {
    clear_mark(s);
    bson_iter_t it;
    if (e.has_txn && e.has_full_doc && bson_iter_init_find(&it, &e.full_doc, "origin") &&
        BSON_ITER_HOLDS_UTF8(&it)) {
      s->mark_txn = strdup(e.txn);
      s->mark_origin = strdup(bson_iter_utf8(&it, NULL));
    }
    return AS_OK;
  }
  if (s->mark_txn && (!e.has_txn || strcmp(s->mark_txn, e.txn) != 0)) clear_mark(s);
  if (strcmp(op, "dropDatabase") == 0 || strcmp(op, "invalidate") == 0) {
    return stop(s, s->n->resnapshot ? AS_ERESNAPSHOT : AS_ERR, err,
                "change stream event %s on database %s: the mapped collections are gone; "
                "re-create them and re-snapshot (arraysync run --resnapshot)",
                op, s->n->database);
  }
  /* A write the connector made for the consumer's own change never goes back to it (a delta
   * never returns to its origin, adapter.h), and one marked local-only goes nowhere: skip it
   * without mapping the document. */
  bool row_event = strcmp(op, "insert") == 0 || strcmp(op, "update") == 0 ||
                   strcmp(op, "replace") == 0 || strcmp(op, "delete") == 0;
  if (row_event && s->mark_txn && e.has_txn && strcmp(s->mark_txn, e.txn) == 0 && s->mark_origin &&
      (strcmp(s->mark_origin, s->consumer) == 0 ||
       strcmp(s->mark_origin, AS_ORIGIN_LOCAL_ONLY) == 0)) {
    return AS_OK;
  }
  const char *pos = s->token; /* for dead letters; deltas get make_pos() */
  for (size_t i = 0; i < s->n->nschemas && rc == AS_OK; i++) {
    const as_schema *sc = s->n->schemas[i];
    if (!e.coll || strcmp(sc->collection, e.coll) != 0) continue;
    as_error e2 = {0};
    if (strcmp(op, "insert") == 0 || strcmp(op, "replace") == 0) {
      if (!e.has_full_doc) continue;
      as_delta *d = as_batch_push(out);
      if (!d || as_delta_init(d, sc, AS_OP_INSERT) != AS_OK) {
        if (d) out->n--;
        rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
        break;
      }
      int r = as_doc_to_row(sc, &e.full_doc, &d->row, &e2);
      if (r != AS_OK) {
        as_delta_clear(d);
        out->n--;
        if (r == AS_EDATA || r == AS_EINVAL) {
          rc = dead_letter(s, out, sc, &e, ev, &e2, pos);
        } else {
          *err = e2;
          rc = r;
        }
        continue;
      }
      if (delta_common(s, &e, d, pos) != AS_OK) {
        rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
      } else if (sc->nchildren && (r = as_children_drop_invalid(sc, &d->row, &e2)) != AS_OK) {
        rc = r == AS_EDATA ? dead_letter(s, out, sc, &e, ev, &e2, pos) : r;
        if (r != AS_EDATA) *err = e2;
      }
    } else if (strcmp(op, "update") == 0) {
      rc = handle_update(s, sc, &e, ev, out, pos, err);
    } else if (strcmp(op, "delete") == 0) {
      as_delta *d = as_batch_push(out);
      if (!d || as_delta_init(d, sc, AS_OP_DELETE) != AS_OK) {
        if (d) out->n--;
        rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
        break;
      }
      int r = event_key(sc, &e, &d->row, &e2);
      if (r != AS_OK) {
        as_delta_clear(d);
        out->n--;
        rc = (r == AS_EDATA || r == AS_EINVAL) ? dead_letter(s, out, sc, &e, ev, &e2, pos) : r;
        if (rc == r && r != AS_OK) *err = e2;
        continue;
      }
      if (delta_common(s, &e, d, pos) != AS_OK)
        rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
    } else if (strcmp(op, "drop") == 0 || strcmp(op, "rename") == 0) {
      char what[600];
      snprintf(what, sizeof what, "mapping %s: collection %s.%s", sc->name, s->n->database,
               sc->collection);
      rc = stop(s, s->n->resnapshot ? AS_ERESNAPSHOT : AS_ERR, err,
                "%s: change stream event %s: the mapped collection is gone; re-create it and "
                "re-snapshot (arraysync run --resnapshot)", what, op);
    }
    /* other event types (createIndexes, modify, ...) carry no row changes */
  }
  return rc;
}

/* ------------------------------------------------------------------ poll */

#define FETCH_US 200 /* a next() slower than this made a network round trip */

int as_mongo_poll(as_stream *s, as_batch *out, size_t max, int wait_ms, as_error *err) {
  if (s->stopped) {
    if (err) *err = s->stop_err;
    return s->stop_rc;
  }
  size_t n0 = out->n, d0 = out->ndead;
  int64_t deadline = (as_monotonic_us() / 1000) + (wait_ms > 0 ? wait_ms : 0);
  int rc = AS_OK;
  bool failed = false;
  if (max == 0) max = 1;
  while ((out->n - n0) + (out->ndead - d0) < max) {
    const bson_t *ev;
    bson_error_t be;
    const bson_t *edoc = NULL;
    int64_t t0 = as_monotonic_us();
    uint64_t seq0 = as_mongo_last_batch.seq;
    if (mongoc_change_stream_next(s->cs, &ev)) {
      /* a call that took this long went to the server (a getMore), which returns as soon as
       * it has events: the server's backlog is in hand */
      bool fetched = as_monotonic_us() - t0 > FETCH_US;
      if (as_mongo_last_batch.seq != seq0) {
        s->in_hand = as_mongo_last_batch.ndocs; /* this event opens a batch of that many */
        s->counted = true;
      }
      if (s->in_hand > 0) s->in_hand--;
      rc = handle_event(s, ev, out, err);
      if (rc != AS_OK) {
        failed = true;
        break;
      }
      if (s->stopped) break;
      /* latency bound: what is in hand goes out once the batch libmongoc holds is used up
       * (the next call would wait in a getMore), or, where the batch sizes are not known,
       * after a round trip to the server; and once the wait is over, even while events keep
       * arriving (the engine calls again at once) */
      bool batch_done = s->counted ? s->in_hand == 0 : fetched;
      if ((batch_done || as_monotonic_us() / 1000 >= deadline) && (out->n > n0 || out->ndead > d0))
        break;
      continue;
    }
    s->in_hand = 0;
    if (mongoc_change_stream_error_document(s->cs, &be, &edoc)) {
      rc = stream_error(s, "change stream getMore", &be, edoc, err);
      failed = true;
      break;
    }
    /* an empty getMore (maxAwaitTimeMS passed): the batch is done */
    if (out->n > n0 || out->ndead > d0 || (as_monotonic_us() / 1000) >= deadline) break;
  }
  if (!failed && !s->stopped) set_token(s, mongoc_change_stream_get_resume_token(s->cs));
  char *pos = make_pos(s);
  if (pos && as_batch_set_pos(out, pos) != AS_OK && rc == AS_OK)
    rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  free(pos);
  if (rc == AS_OK && s->stopped && out->n == n0 && out->ndead == d0) {
    if (err) *err = s->stop_err;
    rc = s->stop_rc;
  }
  return rc;
}

/* ------------------------------------------------------------------ snapshot */

struct as_snapshot {
  as_node *n;
  const as_schema *s;
  mongoc_client_t *client;
  mongoc_collection_t *coll;
  mongoc_cursor_t *cur;
  int64_t ts_us;
  bool done;
};

void as_mongo_snapshot_close(as_snapshot *sn) {
  if (!sn) return;
  if (sn->cur) mongoc_cursor_destroy(sn->cur);
  if (sn->coll) mongoc_collection_destroy(sn->coll);
  if (sn->client) mongoc_client_pool_push(sn->n->pool, sn->client);
  free(sn);
}

int as_mongo_snapshot_open(as_node *n, const as_schema *s, const char *after_key,
                           as_snapshot **out, as_error *err) {
  int rc = AS_OK;
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort, orr;
  as_value vals[16];
  size_t nvals = s->nkey;
  memset(vals, 0, sizeof vals);
  as_snapshot *sn = calloc(1, sizeof *sn);
  *out = NULL;
  if (!sn) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  sn->n = n;
  sn->s = s;
  sn->ts_us = as_now_us();
  if (s->nkey == 0 || s->nkey > 16) {
    rc = as_error_set(err, AS_DOM_MONGO, AS_EINVAL, "mapping %s: unsupported key", s->name);
    goto cleanup;
  }
  if (!n->pool) {
    rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "node %s: not connected", n->name);
    goto cleanup;
  }
  if (after_key) {
    if ((rc = as_key_parse_values(s, after_key, vals, err)) != AS_OK) goto cleanup;
    /* lexicographic "greater than": $or of {k0: v0, ..., ki: {$gt: vi}} */
    BSON_APPEND_ARRAY_BEGIN(&filter, "$or", &orr);
    for (size_t i = 0; i < s->nkey; i++) {
      bson_t term, gt;
      char idx[24];
      snprintf(idx, sizeof idx, "%zu", i);
      BSON_APPEND_DOCUMENT_BEGIN(&orr, idx, &term);
      for (size_t j = 0; j < i && rc == AS_OK; j++)
        rc = as_value_append_bson(&term, s->cols[s->key_idx[j]].field, -1, &vals[j], err);
      BSON_APPEND_DOCUMENT_BEGIN(&term, s->cols[s->key_idx[i]].field, &gt);
      if (rc == AS_OK) rc = as_value_append_bson(&gt, "$gt", -1, &vals[i], err);
      bson_append_document_end(&term, &gt);
      bson_append_document_end(&orr, &term);
      if (rc != AS_OK) break;
    }
    bson_append_array_end(&filter, &orr);
    if (rc != AS_OK) goto cleanup;
  }
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
  for (size_t i = 0; i < s->nkey; i++) BSON_APPEND_INT32(&sort, s->cols[s->key_idx[i]].field, 1);
  bson_append_document_end(&opts, &sort);
  BSON_APPEND_INT32(&opts, "batchSize", n->batch_size);
  sn->client = mongoc_client_pool_pop(n->pool);
  sn->coll = mongoc_client_get_collection(sn->client, n->database, s->collection);
  sn->cur = mongoc_collection_find_with_opts(sn->coll, &filter, &opts, NULL);
  *out = sn;
  sn = NULL;
cleanup:
  for (size_t i = 0; i < nvals && i < 16; i++) as_value_clear(&vals[i]);
  as_mongo_snapshot_close(sn);
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

int as_mongo_snapshot_next(as_snapshot *sn, as_batch *out, size_t max, as_error *err) {
  const bson_t *doc;
  bson_error_t be;
  size_t k = 0;
  if (sn->done) return AS_EOF;
  while (k < max) {
    if (!mongoc_cursor_next(sn->cur, &doc)) {
      if (mongoc_cursor_error(sn->cur, &be)) {
        int rc = as_mongo_fail(err, "snapshot find", &be, NULL);
        as_error_prefix(err, "node %s: mapping %s", sn->n->name, sn->s->name);
        return rc;
      }
      sn->done = true;
      return AS_EOF;
    }
    k++;
    as_delta *d = as_batch_push(out);
    as_error e2 = {0};
    if (!d || as_delta_init(d, sn->s, AS_OP_INSERT) != AS_OK) {
      if (d) out->n--;
      return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
    }
    int r = as_doc_to_row(sn->s, doc, &d->row, &e2);
    if (r != AS_OK) {
      as_delta_clear(d);
      out->n--;
      if (r != AS_EDATA && r != AS_EINVAL) {
        *err = e2;
        return r;
      }
      char *key = NULL;
      as_row kr = {0};
      if (as_row_init(&kr, sn->s->ncols) == AS_OK && as_doc_to_key(sn->s, doc, &kr, NULL) == AS_OK)
        key = as_key_describe(sn->s, &kr);
      as_row_clear(&kr);
      as_batch_push_dead(out, sn->s, key, doc_raw(doc), strdup(e2.message), NULL);
      continue;
    }
    d->echo = false;
    d->ts_us = sn->ts_us;
    d->hlc = AS_HLC_FROM_US(sn->ts_us);
    if (as_delta_set_origin(d, sn->n->name) != AS_OK)
      return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
    if (sn->s->nchildren && (r = as_children_drop_invalid(sn->s, &d->row, &e2)) != AS_OK) {
      if (r != AS_EDATA) {
        *err = e2;
        return r;
      }
      char *key = as_key_describe(sn->s, &d->row);
      AS_LOG(AS_LOG_WARN, sn->n->comp, "snapshot dead letter: %s", e2.message);
      int pr = as_batch_push_dead(out, sn->s, key, doc_raw(doc), strdup(e2.message), NULL);
      if (pr != AS_OK) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
    }
  }
  return AS_OK;
}

int64_t as_mongo_snapshot_estimate(as_snapshot *sn) {
  bson_error_t be;
  int64_t c = mongoc_collection_estimated_document_count(sn->coll, NULL, NULL, NULL, &be);
  return c < 0 ? -1 : c;
}
