/* as_batch_int.h — the working state of one batch, shared by as_batch.c (write-ahead, apply,
 * stamp) and as_batch_decide.c (keys, labels, decisions). Private to connector/. */
#ifndef AS_BATCH_INT_H
#define AS_BATCH_INT_H

#include "as_engine_int.h"

#define DECIDED_BUCKETS 1024

/* The state of one key as decided so far in this batch. */
typedef struct decided {
  const as_schema *schema;
  char *key;
  as_version v;
  as_version orig;   /* v as the batch found it (what a write that failed gives back) */
  bool found;        /* v holds a version (from the store or this batch) */
  bool dirty;        /* to be written to the state store */
  bool applied;      /* this batch writes the key to the target */
  size_t last_local_win; /* index+1 of the latest winning local change in this batch */
  struct decided *next;
} decided;

/* A repair to run once the batch committed (as_state.h: as_repair_rec). */
typedef struct queued {
  const as_schema *schema;
  char *key;
  eng_node *to, *from;
  char *delta;       /* a rewrite: the local change's applied columns (canonical JSON) */
  int64_t id;        /* in the state store's queue */
  size_t at;         /* index of the delta that caused it (SIZE_MAX: after the apply) */
  bool cancelled;
} queued;

struct eng_work {
  as_delta **kept;   /* what the target gets, in order (batch deltas or owned copies) */
  size_t nkept, capkept;
  as_delta **owned;  /* copies holding some columns of a change */
  size_t nowned, capowned;
  char **keys;       /* per batch delta: its key text, or NULL when not routed */
  size_t capkeys;
  size_t *stripes;
  size_t nstripes, capstripes;
  queued *repairs;
  size_t nrepairs, caprepairs;
  uint8_t *mask;     /* apply, lost and disputed masks of one decision (3 x ncols) */
  size_t capmask;
  struct {           /* capture-stage dead letters of this batch, recorded once it committed */
    size_t *idx;
    char **why;
    size_t n, cap;
  } keyless;
  const as_schema *truncated; /* a TRUNCATE of this mapping is sent on in this batch */
  int64_t commit_order;       /* the target's order of the batch's commit (0 unknown) */
  decided *buckets[DECIDED_BUCKETS];
  decided **all;     /* every decided entry, in first-seen order */
  size_t nall, capall;
};

int eng_grow(void **arr, size_t *cap, size_t need, size_t size);
int eng_oom(as_error *err);
queued *eng_queue_repair(eng_work *w, const as_schema *s, const char *key, eng_node *to,
                         eng_node *from, size_t at);
void eng_count_skip(eng_pair *p, const as_schema *s);
/* Keys, stripes, then (under the stripes) the decision for every routed delta. */
int eng_collect_keys(eng_pair *p, as_batch *b, bool snapshot, eng_work *w, as_error *err);
int eng_resolve_batch(eng_pair *p, as_batch *b, bool snapshot, eng_work *w, as_error *err);
decided *eng_decided_get(eng_work *w, const as_schema *s, const char *key);
/* Records the conflict of a decision (dec->conflict): both versions, read before the batch
 * writes (as_batch_conflict.c). before/after: the key's versions around the decision. */
void eng_note_vector_conflict(eng_pair *p, const as_delta *d, const char *key,
                              const as_version *before, const as_version *after,
                              const as_decision *dec, const char *strategy);

#endif
