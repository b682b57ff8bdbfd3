/* mongo_internal.h — private to the MongoDB adapter (adapters/mongodb/). See README.md. */
#ifndef AS_MONGO_INTERNAL_H
#define AS_MONGO_INTERNAL_H
/* The raw form of a dead letter whose document extended JSON cannot carry (mongo_capture.c
 * event_json): this prefix, then the document's BSON bytes in hex. */
#define AS_MONGO_RAW_HEX "bson-hex:"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include <mongoc/mongoc.h>

#include "adapter.h"
#include "as_buf.h"
#include "as_bson.h"

#define AS_MONGO_CHECKPOINTS "__arraysync_checkpoints"
#define AS_MONGO_MARKS "__arraysync_marks"
#define AS_MONGO_SESSIONS "__arraysync_sessions"
#define AS_MONGO_GONE "__arraysync_gone"  /* documents the sink deleted (mongo_gone.c) */

/* One write of the sink, kept until commit so that a transaction aborted by a per-document
 * error can be replayed without the failing documents (mongo_sink.c). */
typedef enum mongo_op_kind { MONGO_OP_REPLACE = 1, MONGO_OP_UPDATE, MONGO_OP_DELETE } mongo_op_kind;

typedef struct mongo_op {
  mongo_op_kind kind;
  const as_schema *schema;
  char *origin;
  bson_t *filter;   /* heap (bson_t holds self pointers: never copied by value) */
  bson_t *doc;      /* replacement or update document (empty for deletes) */
  size_t index;     /* index of the delta in its apply call */
  uint64_t keyhash; /* XXH3 of the filter bytes ^ of the collection, to keep per-key order */
  bool upsert;      /* a replacement that creates the document (a new one) */
} mongo_op;

typedef struct mongo_ops {
  mongo_op *v;
  size_t n, cap;
} mongo_ops;

/* A document the sink deleted, kept a while for the capture (README.md, "Documents the sink
 * deleted"): an update event read after the delete has no full document, and the connector's
 * delete may have overwritten that very update. */
typedef struct mongo_gone {
  uint64_t h;   /* key hash (as_mongo_key_hash) */
  int64_t at;   /* a cluster time (seconds << 32 | increment) before the delete's commit */
  bson_t *doc;  /* heap: the document as it was deleted (the sink's projection) */
} mongo_gone;

/* The row image the first of a node's streams used for an update event, for the others
 * (mongo_image.c). */
typedef struct mongo_img {
  uint64_t h;   /* hash of the event's resume token (| 1); 0: a free slot */
  int readers;  /* streams that read it so far */
  bson_t *doc;  /* heap; NULL: the event had no image */
} mongo_img;

#define MONGO_IMG_MAX 8192
#define MONGO_IMG_BYTES (16u * 1024 * 1024)
#define MONGO_IMG_FILTER 16384

#define MONGO_GONE_MAX 4096                     /* documents kept */
#define MONGO_GONE_BYTES (64u * 1024 * 1024)    /* and their bytes, at most */
#define MONGO_GONE_FILTER 16384                 /* slots of the per-hash count */

struct as_node {
  char *name;
  char *database;
  char *uri_redacted;
  bool when_available;  /* full_document: whenAvailable */
  bool resnapshot;      /* on_history_lost: resnapshot */
  bool local_only;      /* as_node_config.local_only: origins are marked AS_ORIGIN_LOCAL_ONLY */
  int32_t batch_size;
  int32_t max_await_ms;
  const as_schema **schemas;
  size_t nschemas;
  char comp[160];       /* log component */

  mongoc_uri_t *uri;
  mongoc_client_pool_t *pool;
  mongoc_client_t *client;  /* sink/admin client (popped from the pool) */
  bool txn_capable;         /* replica set or mongos: transactions and marks */

  /* sink state */
  mongoc_client_session_t *sess;
  bool sess_registered;     /* its lsid is recorded in __arraysync_sessions */
  bool takeover_done;       /* the sessions an earlier process left were killed */
  pthread_mutex_t mu;       /* guards pool (creation) and lsid against interrupt() */
  bson_t *lsid;             /* copy of sess's lsid ({id: UUID}), for interrupt(); heap */
  bool in_txn;
  /* the operationTime of the last commitTransaction reply (seconds << 32 | increment: the
   * commit's cluster time), for commit_order; 0 unknown */
  int64_t commit_time;
  bool need_replay;         /* the server aborted the transaction: replay `done` */
  mongo_ops done;           /* writes applied in the current transaction */
  char *mark_origin;        /* origin of the last mark written in this transaction */
  uint64_t mark_n;
  char mark_id[160];        /* _id of this process's mark document: "<node>:<pid>:<start µs>" */

  /* documents the sink deleted, newest last (a ring of MONGO_GONE_MAX), shared with the
   * capture streams under gone_mu */
  pthread_mutex_t gone_mu;
  mongo_gone gone[MONGO_GONE_MAX];
  size_t gone_head, gone_n;  /* next slot; entries held */
  size_t gone_bytes;
  bool gone_any;             /* a document was ever kept (read without the lock: atomic) */
  uint16_t gone_count[MONGO_GONE_FILTER]; /* entries per h % MONGO_GONE_FILTER: most lookups
                                           * find none without scanning */
  int64_t gone_evicted_at;   /* the newest commit time dropped from memory ... */
  size_t gone_evicted_n;     /* ... and how many were, since the collection was last pruned */
  bool gone_off;             /* not kept in AS_MONGO_GONE (a write there failed) */
  pthread_mutex_t gone_load_mu;
  bool gone_loaded;          /* AS_MONGO_GONE read back (atomic) */
  int64_t gone_load_tried_us;

  /* update events' row images, shared by the node's streams (a ring of MONGO_IMG_MAX) */
  int nstreams;              /* change streams open (atomic) */
  int nconsumers;            /* streams the topology reads from this node (as_node_config) */
  pthread_mutex_t img_mu;
  mongo_img img[MONGO_IMG_MAX];
  size_t img_head, img_n, img_bytes;
  uint16_t img_count[MONGO_IMG_FILTER];
};

/* Error classification: AS_RETRY for transient errors, AS_ERR otherwise. 286 is reported
 * separately by the callers that can see it (open/resume of a change stream). */
int as_mongo_classify(const bson_error_t *e, const bson_t *reply);
int as_mongo_fail(as_error *err, const char *what, const bson_error_t *e, const bson_t *reply);

/* mongo_node.c: what the pool's command monitoring saw of the last cursor reply on this
 * thread (aggregate firstBatch or getMore nextBatch): its document count and a counter that
 * moves with every such reply; set by a callback installed on each new pool. mongo_capture.c's
 * poll counts off the documents libmongoc hands out to know when the batch in hand is used up
 * (libmongoc does not say), so it delivers then instead of waiting in the next getMore. */
typedef struct {
  uint64_t seq;
  int64_t ndocs;
} as_mongo_batch_seen;
extern _Thread_local as_mongo_batch_seen as_mongo_last_batch;

/* mongo_node.c: the sink's sessions (README.md, "Sessions after a crash"). takeover: before
 * this process's first session, kills the sessions an earlier process of this node recorded
 * (aborting the transactions it left open) and forgets them. register: records n->sess's lsid
 * (outside any transaction) before it is used. */
int as_mongo_sessions_takeover(as_node *n, as_error *err);
int as_mongo_session_register(as_node *n, as_error *err);

/* mongo_sink.c: the sink side of the adapter. */
int as_mongo_begin(as_node *n, as_error *err);
int as_mongo_apply(as_node *n, const as_delta *d, size_t nd, as_dead_list *dead, as_error *err);
int as_mongo_commit(as_node *n, const char *stream_id, const char *checkpoint, as_error *err);
int64_t as_mongo_commit_order(as_node *n);
int as_mongo_rollback(as_node *n);
/* The key hash of a key filter of collection coll (the sink's and the capture's). */
uint64_t as_mongo_key_hash(const bson_t *filter, const char *coll);
/* A copy (heap) of the document the sink deleted under key hash h in the first transaction
 * that committed after cluster time `order` (an event of that time came before the delete),
 * or NULL. */
void as_mongo_sink_free(as_node *n); /* what the sink holds (exit) */

/* mongo_gone.c: the documents the sink deleted (README.md, "Documents the sink deleted").
 * find: a copy (heap) of the document the sink deleted under key hash h in the first
 * transaction whose `at` is not before cluster time `order` (an event of that time came
 * before the delete), or NULL. any: whether one was ever kept (a cheap test before the key is
 * built). write: in the transaction (txn_opts: its session), keeps the documents the delete
 * ops of `done` read in AS_MONGO_GONE, deleted at `at` (a cluster time before the commit; 0:
 * none, nothing is kept). committed: after the commit, keeps them in memory. load: once per process,
 * before the first lookup and the first transaction, reads the entries back with `client`
 * (AS_RETRY: not yet). */
bson_t *as_mongo_gone_find(as_node *n, uint64_t h, int64_t order);
bool as_mongo_gone_any(as_node *n);
int as_mongo_gone_write(as_node *n, mongo_ops *done, int64_t at, const bson_t *txn_opts,
                        as_error *err);
void as_mongo_gone_committed(as_node *n, mongo_ops *done, int64_t at);
int as_mongo_gone_load(as_node *n, mongoc_client_t *client, as_error *err);
void as_mongo_gone_free(as_node *n);

/* mongo_image.c: one row image per update event for all streams of a node (README.md, "One
 * image per update event"). streams_add: a stream opened (+1) or closed (-1). share: with
 * two or more streams open, the image the first stream to read the event left (*shared; a
 * heap copy, NULL for none), else leaves a copy of `mine` (NULL: none) for the others and
 * returns NULL with *shared false. */
void as_mongo_streams_add(as_node *n, int k);
bson_t *as_mongo_image_share(as_node *n, const bson_t *event_id, const bson_t *mine, bool *shared);
void as_mongo_image_free(as_node *n);

/* A heap bson_t initialised with bson_init (so a callee may bson_init it again); freed with
 * as_mongo_bson_free. */
bson_t *as_mongo_bson_new(void);
bson_t *as_mongo_bson_copy(const bson_t *src); /* the same, holding a copy of src (NULL: no memory) */
void as_mongo_bson_free(bson_t *b);

/* mongo_admin.c: the adapter's sample, check_live and versions callbacks (adapter.h). */
int as_mongo_sample(as_node *n, const char *name, size_t max, bool random,
                    int (*fn)(void *ctx, const bson_t *doc), void *ctx, as_error *err);
int as_mongo_check_live(as_node *n, void (*report)(void *ctx, bool ok, const char *what,
                                                   const char *fix),
                        void *ctx);
void as_mongo_versions(void (*fn)(void *ctx, const char *lib, const char *version), void *ctx);

#endif
