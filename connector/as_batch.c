/* as_batch.c — one batch of a pair end to end (see as_engine_int.h for the locks):
 *
 *   keys -> stripe locks -> label and resolve every delta against the state store (and the
 *   decisions made earlier in the batch) -> versions and queued repairs written ahead (one
 *   state transaction) -> apply + checkpoint on the target (one target transaction) -> the
 *   write times stamped -> stripes unlocked -> dead letters and counters -> ack the source ->
 *   repairs run.
 *
 * Versions are written before the target commits, so the state is never older than a
 * target: a retried batch finds its own versions and applies again (equal versions apply).
 * A repair is queued in the same state transaction, so it survives a crash. */
#include "as_engine_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "as_key.h"
#include "as_log.h"
#include "as_metrics.h"
#include "as_router.h"
#include "as_time.h"

#define IDLE_CHECKPOINT_US (30 * 1000000LL)
#define RACE_WINDOW_US 100000 /* clock skew allowance between database servers and us */
#define DECIDED_BUCKETS 1024

/* The state of one key as decided so far in this batch. */
typedef struct decided {
  const as_schema *schema;
  char *key;
  as_version v;
  bool found;        /* v holds a version (from the store or this batch) */
  bool dirty;        /* to be written to the state store */
  bool applied;      /* this batch writes the key to the target */
  size_t last_local_win; /* index+1 of the latest winning local change in this batch */
  struct decided *next;
} decided;

/* A repair to run once the batch committed. */
typedef struct queued {
  const as_schema *schema;
  char *key;
  eng_node *to, *from;
  int64_t id;        /* in the state store's queue */
  size_t at;         /* index of the delta that caused it */
  bool cancelled;
} queued;

struct eng_work {
  as_delta **kept;
  size_t nkept, capkept;
  char **keys;       /* per batch delta: its key text, or NULL when not routed */
  size_t capkeys;
  size_t *stripes;
  size_t nstripes, capstripes;
  queued *repairs;
  size_t nrepairs, caprepairs;
  decided *buckets[DECIDED_BUCKETS];
  decided **all;     /* every decided entry, in first-seen order */
  size_t nall, capall;
};

eng_work *eng_work_new(void) { return calloc(1, sizeof(eng_work)); }

static void work_reset(eng_work *w, size_t nkeys) {
  for (size_t i = 0; i < w->nrepairs; i++) free(w->repairs[i].key);
  for (size_t i = 0; i < w->nall; i++) {
    free(w->all[i]->key);
    free(w->all[i]);
  }
  for (size_t i = 0; i < nkeys && i < w->capkeys; i++) {
    free(w->keys[i]);
    w->keys[i] = NULL;
  }
  memset(w->buckets, 0, sizeof w->buckets);
  w->nall = w->nkept = w->nrepairs = w->nstripes = 0;
}

void eng_work_free(eng_work *w) {
  if (!w) return;
  work_reset(w, w->capkeys);
  free(w->kept);
  free(w->keys);
  free(w->stripes);
  free(w->repairs);
  free(w->all);
  free(w);
}

static int grow(void **arr, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return AS_OK;
  size_t ncap = *cap ? *cap * 2 : 64;
  while (ncap < need) ncap *= 2;
  void *p = realloc(*arr, ncap * size);
  if (!p) return AS_ERR;
  memset((char *)p + *cap * size, 0, (ncap - *cap) * size);
  *arr = p;
  *cap = ncap;
  return AS_OK;
}

static int oom(as_error *err) { return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory"); }

static decided *decided_get(eng_work *w, const as_schema *s, const char *key) {
  size_t h = (size_t)(XXH3_64bits(key, strlen(key)) ^ (uintptr_t)s) % DECIDED_BUCKETS;
  for (decided *x = w->buckets[h]; x; x = x->next) {
    if (x->schema == s && strcmp(x->key, key) == 0) return x;
  }
  return NULL;
}

static decided *decided_add(eng_work *w, const as_schema *s, const char *key) {
  if (grow((void **)&w->all, &w->capall, w->nall + 1, sizeof *w->all) != AS_OK) return NULL;
  decided *x = calloc(1, sizeof *x);
  if (!x || !(x->key = strdup(key))) {
    free(x);
    return NULL;
  }
  size_t h = (size_t)(XXH3_64bits(key, strlen(key)) ^ (uintptr_t)s) % DECIDED_BUCKETS;
  x->schema = s;
  x->next = w->buckets[h];
  w->buckets[h] = x;
  w->all[w->nall++] = x;
  return x;
}

/* The version a local change carries: the mapping's clock column when present, else its
 * commit time. */
static int64_t local_hlc(const as_delta *d) {
  const as_schema *s = d->schema;
  if (s->conflict.clock_idx >= 0 && as_row_has(&d->row, (size_t)s->conflict.clock_idx)) {
    const as_value *v = &d->row.v[s->conflict.clock_idx];
    if (v->type == AS_T_TIMESTAMP) return AS_HLC_FROM_US(v->u.ts_us);
    if (v->type == AS_T_INT64) return v->u.i;
  }
  return d->hlc ? d->hlc : AS_HLC_FROM_US(d->ts_us);
}

/* Whether the connector's last write of the key to node may have overwritten a local change
 * committed there at ts: it committed at or after ts (less the clock-skew allowance), or its
 * commit time is unknown (written ahead, then the process died before the stamp). */
static bool overwritten(const as_version *v, uint16_t node, int64_t ts) {
  const as_held *h = as_version_held(v, node);
  return h && (h->written_us == 0 || h->written_us >= ts - RACE_WINDOW_US);
}

/* Labels d with the version it carries (see as_resolve.h). A snapshot copy is the source's
 * current row: when the state's winner is a change made on the source itself (streamed by
 * another pair while this one copies), the row is that change or a newer one. */
static void label(eng_pair *p, as_delta *d, const decided *x, bool snapshot) {
  engine *e = p->e;
  if (!snapshot && !d->echo) {
    d->hlc = local_hlc(d);
    return;
  }
  if (snapshot && x->found && strcmp(x->v.origin, p->src->cfg->name) == 0) {
    d->hlc = x->v.hlc;
    as_delta_set_origin(d, x->v.origin);
    return;
  }
  const as_held *h = x->found ? as_version_held(&x->v, p->src->id) : NULL;
  if (h && snapshot && h->written_us == 0) h = NULL; /* written ahead only: the row may be older */
  const char *o = h ? as_state_node_name(e->state, h->origin) : NULL;
  if (h && o) {
    d->hlc = h->hlc;
    as_delta_set_origin(d, o);
  } else {
    d->hlc = snapshot ? 0 : local_hlc(d); /* nothing known: the oldest, or its commit time */
  }
}

/* Keys of the routed deltas; the stripes to lock. A delta whose key cannot be named (a key
 * column absent or NULL) is a dead letter. */
static int collect_keys(eng_pair *p, as_batch *b, bool snapshot, eng_work *w, as_error *err) {
  if (grow((void **)&w->keys, &w->capkeys, b->n, sizeof *w->keys) != AS_OK ||
      grow((void **)&w->stripes, &w->capstripes, b->n, sizeof *w->stripes) != AS_OK)
    return oom(err);
  for (size_t i = 0; i < b->n; i++) {
    as_delta *d = &b->d[i];
    if (!d->origin && as_delta_set_origin(d, p->src->cfg->name) != AS_OK) return oom(err);
    if (!eng_routed(p, d, snapshot)) continue;
    as_error kerr;
    w->keys[i] = as_key_json_dup(d->schema, &d->row, &kerr);
    if (!w->keys[i]) {
      if (kerr.code == AS_ERR) return oom(err);
      char *dj = as_delta_to_json_string(d, NULL);
      eng_record_dead(p->e, p, d->schema, p->src->cfg->name, p->dst->cfg->name, "capture", NULL,
                      NULL, dj, kerr.message, d->pos);
      free(dj);
      continue;
    }
    w->stripes[w->nstripes++] = eng_stripe_of(d->schema, w->keys[i]);
  }
  return AS_OK;
}

static queued *queue_repair(eng_work *w, const as_schema *s, const char *key, eng_node *to,
                            eng_node *from, size_t at) {
  if (grow((void **)&w->repairs, &w->caprepairs, w->nrepairs + 1, sizeof *w->repairs) != AS_OK)
    return NULL;
  queued *q = &w->repairs[w->nrepairs];
  memset(q, 0, sizeof *q);
  if (!(q->key = strdup(key))) return NULL;
  q->schema = s;
  q->to = to;
  q->from = from;
  q->at = at;
  w->nrepairs++;
  return q;
}

static void count_skip(eng_pair *p, const as_schema *s) {
  eng_count(p, s, ENG_C_SKIPPED, 1);
  as_metrics_add(p->src->cfg->name, p->dst->cfg->name, s ? s->name : "", AS_M_SKIPPED, 1);
}

/* A local change that lost: recorded, and its source gets the winner. */
static int lost(eng_pair *p, eng_work *w, as_delta *d, decided *x, size_t i, as_error *err) {
  const as_schema *s = d->schema;
  eng_count(p, s, ENG_C_CONFLICTS, 1);
  as_metrics_add(p->src->cfg->name, p->dst->cfg->name, s->name, AS_M_CONFLICTS, 1);
  AS_LOG(AS_LOG_DEBUG, p->comp, "mapping %s key %s: change from %s (hlc %lld) lost to %s (hlc %lld)",
         s->name, x->key, d->origin, (long long)d->hlc, x->v.origin, (long long)x->v.hlc);
  char *dj = as_delta_to_json_string(d, NULL);
  as_error cerr;
  if (as_state_conflict_add(p->e->state, s->name, x->key, dj, NULL, x->v.origin, "lww", &cerr) != AS_OK)
    AS_LOG(AS_LOG_WARN, p->comp, "cannot record conflict: %s", cerr.message);
  free(dj);
  if (strcmp(x->v.origin, p->src->cfg->name) == 0) return AS_OK; /* its source has the winner */
  eng_node *from = eng_find_node(p->e, x->v.origin);
  if (!queue_repair(w, s, x->key, p->src, from ? from : p->dst, i)) return oom(err);
  return AS_OK;
}

/* Resolves one routed delta; appends it to w->kept when it is to be applied. */
static int resolve_one(eng_pair *p, eng_work *w, as_delta *d, size_t i, bool snapshot,
                       as_error *err) {
  engine *e = p->e;
  const as_schema *s = d->schema;
  const char *key = w->keys[i];
  decided *x = decided_get(w, s, key);
  if (!x) {
    if (!(x = decided_add(w, s, key))) return oom(err);
    int g = as_state_version_get(e->state, s->name, key, &x->v, err);
    if (g != AS_OK && g != AS_ENOTFOUND) return g;
    x->found = g == AS_OK;
    if (!x->found) memset(&x->v, 0, sizeof x->v);
  }
  bool local = !d->echo && !snapshot && strcmp(d->origin, p->src->cfg->name) == 0;
  label(p, d, x, snapshot);
  if (strcmp(d->origin, p->dst->cfg->name) == 0) { /* a version never returns to its origin */
    count_skip(p, s);
    return AS_OK;
  }
  as_change c = {.d = d, .source = p->src->cfg->name, .target = p->dst->cfg->name, .local = local};
  as_decision dec;
  int rc = as_resolver_decide(eng_resolver(e, s), &c, x->found ? &x->v : NULL, &dec, err);
  if (rc != AS_OK) return rc;
  if (dec.verdict == AS_VERDICT_SKIP) {
    count_skip(p, s);
    return AS_OK;
  }
  if (dec.verdict == AS_VERDICT_LOST) return lost(p, w, d, x, i, err);
  if (local) x->last_local_win = i + 1;
  if (local && x->found && overwritten(&x->v, p->src->id, d->ts_us)) {
    /* the connector wrote this key to the source around or after this change committed
     * there, so the source may hold that older write: give it this change back */
    if (!queue_repair(w, s, key, p->src, p->dst, i)) return oom(err);
  }
  if (dec.new_winner) {
    x->v.hlc = d->hlc;
    snprintf(x->v.origin, sizeof x->v.origin, "%s", d->origin);
    x->v.deleted = d->op == AS_OP_DELETE;
    x->v.hash = 0; /* row hashes are for verify; not computed on the apply path */
    x->found = true;
  }
  uint16_t oid = 0;
  if (as_state_node_id(e->state, d->origin, &oid, err) != AS_OK) return AS_ERR;
  as_version_set_held(&x->v, p->dst->id, oid, d->hlc, d->op == AS_OP_DELETE, 0);
  x->dirty = x->applied = true;
  AS_LOG(AS_LOG_TRACE, p->comp, "mapping %s key %s: %s from %s%s (hlc %lld) %s", s->name, key,
         as_op_name(d->op), d->origin, d->echo ? " (echo)" : "", (long long)d->hlc,
         dec.new_winner ? "wins" : "equals the winner");
  if (grow((void **)&w->kept, &w->capkept, w->nkept + 1, sizeof *w->kept) != AS_OK) return oom(err);
  w->kept[w->nkept++] = d;
  return AS_OK;
}

static int resolve_batch(eng_pair *p, as_batch *b, bool snapshot, eng_work *w, as_error *err) {
  for (size_t i = 0; i < b->n; i++) {
    if (!w->keys[i]) {
      if (!eng_routed(p, &b->d[i], snapshot)) count_skip(p, b->d[i].schema);
      continue;
    }
    int rc = resolve_one(p, w, &b->d[i], i, snapshot, err);
    if (rc != AS_OK) return rc;
  }
  /* A later local change of the same key in this batch won: the source holds that newer
   * value, and a repair of an earlier change would clobber it. */
  for (size_t i = 0; i < w->nrepairs; i++) {
    queued *q = &w->repairs[i];
    decided *x = decided_get(w, q->schema, q->key);
    if (x && q->at != SIZE_MAX && x->last_local_win > q->at + 1) q->cancelled = true;
  }
  return AS_OK;
}

/* The applied changes the target passes on (ring, hub): into its relay log, with the versions,
 * before the target commits (a retried batch writes them again; applying a version twice is
 * harmless, losing one is not). */
static int write_relays(eng_pair *p, eng_work *w, bool *any, as_error *err) {
  for (size_t i = 0; i < w->nkept; i++) {
    const as_delta *d = w->kept[i];
    if (!as_route_relays(p->e->cfg, p->dst->cfg->name, d->origin)) continue;
    char *dj = as_delta_to_json_string(d, err);
    if (!dj) return AS_ERR;
    int rc = as_state_relay_add(p->e->state, p->dst->id, dj, err);
    free(dj);
    if (rc != AS_OK) return rc;
    *any = true;
  }
  return AS_OK;
}

/* Write-ahead: the decided versions, the queued repairs and the relays, in one state
 * transaction. */
static int write_ahead(eng_pair *p, eng_work *w, as_error *err) {
  bool any = w->nrepairs > 0 || w->nkept > 0;
  for (size_t i = 0; i < w->nall && !any; i++) any = w->all[i]->dirty;
  if (!any) return AS_OK;
  as_state *st = p->e->state;
  int rc = as_state_begin(st, err);
  if (rc != AS_OK) return rc;
  int64_t now = as_now_us();
  for (size_t i = 0; i < w->nall && rc == AS_OK; i++) {
    decided *x = w->all[i];
    if (!x->dirty) continue;
    x->v.updated_us = now;
    rc = as_state_version_put(st, x->schema->name, x->key, &x->v, err);
  }
  for (size_t i = 0; i < w->nrepairs && rc == AS_OK; i++) {
    queued *q = &w->repairs[i];
    if (q->cancelled) continue;
    rc = as_state_repair_add(st, q->schema->name, q->key, q->to->cfg->name, q->from->cfg->name,
                             &q->id, err);
  }
  bool relayed = false;
  if (rc == AS_OK) rc = write_relays(p, w, &relayed, err);
  if (rc != AS_OK) {
    as_state_rollback(st);
    return rc;
  }
  rc = as_state_commit(st, err);
  if (rc == AS_OK && relayed) atomic_store(&p->dst->relay_tail, as_state_relay_last(st, p->dst->id));
  return rc;
}

/* After the target committed: when the connector's writes landed there. */
static void stamp(eng_pair *p, eng_work *w) {
  as_state *st = p->e->state;
  as_error err;
  bool any = false;
  for (size_t i = 0; i < w->nall && !any; i++) any = w->all[i]->applied;
  if (!any || as_state_begin(st, &err) != AS_OK) return;
  int64_t now = as_now_us();
  int rc = AS_OK;
  for (size_t i = 0; i < w->nall && rc == AS_OK; i++) {
    decided *x = w->all[i];
    if (!x->applied) continue;
    const as_held *h = as_version_held(&x->v, p->dst->id);
    if (h) as_version_set_held(&x->v, p->dst->id, h->origin, h->hlc, h->deleted, now);
    rc = as_state_version_put(st, x->schema->name, x->key, &x->v, &err);
  }
  if (rc != AS_OK) {
    as_state_rollback(st);
  } else if (as_state_commit(st, &err) != AS_OK) {
    rc = AS_ERR;
  }
  if (rc != AS_OK) AS_LOG(AS_LOG_WARN, p->comp, "recording write times: %s", err.message);
}

static void note_lag(eng_pair *p, const as_delta *last) {
  int64_t ts = last->ts_us;
  if (ts <= 0) return;
  p->stats.last_ts_us = ts;
  p->stats.lag_ms = (as_now_us() - ts) / 1000;
  if (p->stats.lag_ms < 0) p->stats.lag_ms = 0;
  as_metrics_lag(p->src->cfg->name, p->dst->cfg->name, (double)p->stats.lag_ms / 1000.0);
}

/* An update the target had no row for: the target gets the key's whole winning row instead
 * (a repair, queued in the state store and run after the batch). */
static int missing_row(eng_pair *p, eng_work *w, const as_delta *d, as_error *err) {
  char *key = as_key_json_dup(d->schema, &d->row, err);
  if (!key) return AS_ERR;
  queued *q = queue_repair(w, d->schema, key, p->dst, p->src, SIZE_MAX);
  int rc = q ? as_state_repair_add(p->e->state, d->schema->name, key, p->dst->cfg->name,
                                   p->src->cfg->name, &q->id, err)
             : oom(err);
  AS_LOG(AS_LOG_DEBUG, p->comp, "mapping %s key %s: %s has no row to update; writing the whole row",
         d->schema->name, key, p->dst->cfg->name);
  free(key);
  return rc;
}

/* Dead letters from the target's apply; on_error: stop turns one into an error. */
static int apply_dead(eng_pair *p, eng_work *w, const as_delta *arr, size_t n, as_dead_list *dead,
                      as_error *err) {
  int rc = AS_OK;
  for (size_t i = 0; i < dead->n; i++) {
    as_dead *dd = &dead->items[i];
    const as_delta *d = dd->index < n ? &arr[dd->index] : NULL;
    if (dd->missing) {
      if (d && missing_row(p, w, d, err) != AS_OK) rc = AS_ERR;
      continue;
    }
    if (d) eng_count(p, d->schema, ENG_C_APPLIED, -1);
    char *dj = d ? as_delta_to_json_string(d, NULL) : NULL;
    char *kj = d ? as_key_describe(d->schema, &d->row) : NULL;
    eng_record_dead(p->e, p, d ? d->schema : dd->schema, p->src->cfg->name, p->dst->cfg->name,
                    "apply", kj ? kj : dd->key, dd->raw, dj, dd->error, d ? d->pos : NULL);
    free(dj);
    free(kj);
    if (d && d->schema->on_error == AS_ON_ERROR_STOP) {
      rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR,
                        "mapping %s has on_error: stop and %s refused a change: %s "
                        "(see `arraysync dlq list`)",
                        d->schema->name, p->dst->cfg->name, dd->error ? dd->error : "");
    }
  }
  return rc;
}

/* Applies the kept deltas to the target with the checkpoint, in one transaction. */
static int apply_kept(eng_pair *p, eng_work *w, const char *ckpt, as_error *err) {
  eng_node *t = p->dst;
  as_dead_list dead = {0};
  as_delta *arr = NULL;
  if (w->nkept) {
    if (!(arr = malloc(w->nkept * sizeof *arr))) return oom(err);
    for (size_t i = 0; i < w->nkept; i++) arr[i] = *w->kept[i]; /* shallow: borrowed */
  }
  pthread_mutex_lock(&t->mu);
  int rc = t->ad->begin(t->node, err);
  if (rc == AS_OK && w->nkept) rc = t->ad->apply(t->node, arr, w->nkept, &dead, err);
  if (rc == AS_OK) rc = t->ad->commit(t->node, p->stream_id, ckpt, err);
  if (rc != AS_OK) t->ad->rollback(t->node);
  pthread_mutex_unlock(&t->mu);
  if (rc == AS_OK) {
    for (size_t i = 0; i < w->nkept; i++) {
      eng_count(p, arr[i].schema, ENG_C_APPLIED, 1);
      as_metrics_add(p->src->cfg->name, t->cfg->name, arr[i].schema->name, AS_M_APPLIED, 1);
    }
    if (w->nkept) {
      as_metrics_batch(p->src->cfg->name, t->cfg->name, (int64_t)w->nkept);
      note_lag(p, &arr[w->nkept - 1]);
    }
    rc = apply_dead(p, w, arr, w->nkept, &dead, err);
  }
  as_dead_list_clear(&dead);
  free(arr);
  return rc;
}

static void record_capture_dead(eng_pair *p, as_batch *b) {
  for (size_t i = 0; i < b->ndead; i++) {
    as_dead *d = &b->dead[i];
    eng_record_dead(p->e, p, d->schema, p->src->cfg->name, p->dst->cfg->name, "capture", d->key,
                    d->raw, NULL, d->error, d->pos);
  }
}

static int capture_stop_check(eng_pair *p, as_batch *b, as_error *err) {
  for (size_t i = 0; i < b->ndead; i++) {
    if (b->dead[i].schema && b->dead[i].schema->on_error == AS_ON_ERROR_STOP) {
      return as_error_set(err, AS_DOM_ENGINE, AS_ERR,
                          "mapping %s has on_error: stop and a change from %s cannot be mapped: %s",
                          b->dead[i].schema->name, p->src->cfg->name,
                          b->dead[i].error ? b->dead[i].error : "");
    }
  }
  return AS_OK;
}

/* A batch of nothing but echoes (or only routed-away changes) writes nothing: its position
 * is committed later, with the next batch or after a while (replaying echoes is harmless). */
static bool defer(eng_pair *p, as_batch *b, bool snapshot, bool pos_changed) {
  bool any_routed = false;
  for (size_t i = 0; i < b->n && !any_routed; i++) any_routed = eng_routed(p, &b->d[i], snapshot);
  if (any_routed || b->ndead > 0 || snapshot ||
      (pos_changed && as_now_us() - p->last_commit_us > IDLE_CHECKPOINT_US))
    return false;
  if (pos_changed) p->pending_pos = true;
  for (size_t i = 0; i < b->n; i++) {
    const char *m = b->d[i].schema ? b->d[i].schema->name : "";
    eng_count(p, b->d[i].schema, ENG_C_CAPTURED, 1);
    eng_count(p, b->d[i].schema, ENG_C_SKIPPED, 1);
    as_metrics_add(p->src->cfg->name, p->dst->cfg->name, m, AS_M_CAPTURED, 1);
    as_metrics_add(p->src->cfg->name, p->dst->cfg->name, m, AS_M_SKIPPED, 1);
  }
  return true;
}

/* Decide, write ahead, apply, stamp — under the stripes of the batch's keys. */
static int decide_and_apply(eng_pair *p, as_batch *b, bool snapshot, const char *ckpt,
                            bool pos_changed, eng_work *w, as_error *err) {
  int rc = collect_keys(p, b, snapshot, w, err);
  if (rc != AS_OK) return rc;
  eng_stripes_lock(p->e, w->stripes, w->nstripes);
  rc = resolve_batch(p, b, snapshot, w, err);
  if (rc == AS_OK) rc = write_ahead(p, w, err);
  if (rc == AS_OK && (w->nkept > 0 || pos_changed)) rc = apply_kept(p, w, ckpt, err);
  if (rc == AS_OK) stamp(p, w);
  eng_stripes_unlock(p->e, w->stripes, w->nstripes);
  return rc;
}

static void run_repairs(eng_pair *p, eng_work *w) {
  for (size_t i = 0; i < w->nrepairs && !eng_stopping(p->e); i++) {
    queued *q = &w->repairs[i];
    if (q->cancelled || !q->id) continue;
    as_error rerr;
    int rc = eng_repair(p->e, p, q->schema, q->key, q->to, q->from, q->id, &rerr);
    if (rc != AS_OK) {
      /* it stays queued: the next drain (or restart) runs it again */
      AS_LOG(AS_LOG_WARN, p->comp, "repair of mapping %s key %s on %s deferred: %s",
             q->schema->name, q->key, q->to->cfg->name, rerr.message);
    }
  }
}

int eng_process_batch(eng_pair *p, as_batch *b, bool snapshot, const char *ckpt, eng_work *w,
                      as_error *err) {
  work_reset(w, w->capkeys);
  int rc = capture_stop_check(p, b, err);
  if (rc != AS_OK) return rc;
  bool pos_changed = ckpt && (!p->ckpt || strcmp(ckpt, p->ckpt) != 0);
  if (defer(p, b, snapshot, pos_changed)) return AS_OK;
  rc = decide_and_apply(p, b, snapshot, ckpt, pos_changed, w, err);
  if (rc != AS_OK) return rc;
  /* counted once the batch is committed (a retried batch is not counted twice) */
  record_capture_dead(p, b);
  for (size_t i = 0; i < b->n; i++) {
    eng_count(p, b->d[i].schema, ENG_C_CAPTURED, 1);
    as_metrics_add(p->src->cfg->name, p->dst->cfg->name, b->d[i].schema ? b->d[i].schema->name : "",
                   snapshot ? AS_M_SNAPSHOT_ROWS : AS_M_CAPTURED, 1);
  }
  if (ckpt && pos_changed) {
    free(p->ckpt);
    p->ckpt = strdup(ckpt);
  }
  p->last_commit_us = as_now_us();
  p->pending_pos = false;
  if (p->last_commit_us - p->last_stats_us > 1000000) {
    eng_pair_save_stats(p, snapshot ? "snapshot" : "streaming");
  }
  if (p->stream && !snapshot && ckpt && pos_changed &&
      strncmp(ckpt, ENG_SNAPSHOT_PREFIX, strlen(ENG_SNAPSHOT_PREFIX)) != 0) {
    as_error aerr;
    if (p->src->ad->ack(p->stream, eng_ckpt_source_pos(ckpt), &aerr) != AS_OK) {
      AS_LOG(AS_LOG_DEBUG, p->comp, "ack: %s", aerr.message);
    }
  }
  run_repairs(p, w);
  return AS_OK;
}
