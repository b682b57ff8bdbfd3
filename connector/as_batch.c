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
#include "as_batch_int.h"

#include <signal.h>
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

eng_work *eng_work_new(void) { return calloc(1, sizeof(eng_work)); }

static void work_reset(eng_work *w, size_t nkeys) {
  for (size_t i = 0; i < w->nrepairs; i++) {
    free(w->repairs[i].key);
    free(w->repairs[i].delta);
  }
  for (size_t i = 0; i < w->nall; i++) {
    free(w->all[i]->key);
    free(w->all[i]);
  }
  for (size_t i = 0; i < w->nowned; i++) {
    as_delta_clear(w->owned[i]);
    free(w->owned[i]);
  }
  for (size_t i = 0; i < w->keyless.n; i++) free(w->keyless.why[i]);
  for (size_t i = 0; i < nkeys && i < w->capkeys; i++) {
    free(w->keys[i]);
    w->keys[i] = NULL;
  }
  memset(w->buckets, 0, sizeof w->buckets);
  w->nall = w->nkept = w->nrepairs = w->nstripes = w->nowned = w->keyless.n = 0;
  w->truncated = NULL;
}

void eng_work_free(eng_work *w) {
  if (!w) return;
  work_reset(w, w->capkeys);
  free(w->kept);
  free(w->owned);
  free(w->keys);
  free(w->stripes);
  free(w->repairs);
  free(w->mask);
  free(w->keyless.idx);
  free(w->keyless.why);
  free(w->all);
  free(w);
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

/* "mapping\tkey" lines of the keys this batch writes to the target, each followed by the
 * versions the batch marks the target as holding anew (as_version_marks_diff): a batch found
 * not committed takes those marks back (as_pair.c settle_key). */
static char *applied_keys(eng_pair *p, eng_work *w) {
  as_buf b = AS_BUF_INIT;
  for (size_t i = 0; i < w->nall; i++) {
    decided *x = w->all[i];
    if (!x->applied) continue;
    const as_version *before = x->found ? &x->orig : NULL;
    if (as_buf_printf(&b, "%s\t%s", x->schema->name, x->key) != AS_OK ||
        as_version_marks_diff(p->e->state, &x->v, before, p->dst->id, &b) != AS_OK ||
        as_buf_printf(&b, "\n") != AS_OK) {
      as_buf_free(&b);
      return NULL;
    }
  }
  return as_buf_cstr(&b) ? as_buf_steal(&b) : strdup("");
}

/* Last-write-wins: a node holding every column's own version holds the whole row
 * (as_version_hold_covered_row). Not under version vectors, whose row mask also says which
 * changes a node's next change was made on top of. */
static void hold_covered_row(decided *x) {
  const as_schema *s = x->schema;
  if (s->conflict.strategy != AS_STRATEGY_LWW || x->v.deleted || !x->v.ncolv) return;
  uint16_t cols[AS_VERSION_MAX_COLS];
  size_t n = 0;
  for (size_t i = 0; i < s->ncols; i++) {
    if (s->cols[i].is_key) continue;
    if (n == AS_VERSION_MAX_COLS) return; /* more columns than versions kept: never covered */
    cols[n++] = (uint16_t)i;
  }
  as_version_hold_covered_row(&x->v, cols, n);
}

/* Write-ahead: the decided versions, the queued repairs and the relays, in one state
 * transaction. */
static int write_ahead(eng_pair *p, eng_work *w, const char *ckpt, as_error *err) {
  bool any = w->nrepairs > 0 || w->nkept > 0 || w->truncated;
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
    hold_covered_row(x);
    rc = as_state_version_put(st, x->schema->name, x->key, &x->v, err);
  }
  for (size_t i = 0; i < w->nrepairs && rc == AS_OK; i++) {
    queued *q = &w->repairs[i];
    if (q->cancelled) continue;
    rc = as_state_repair_add(st, q->schema->name, q->key, q->to->cfg->name, q->from->cfg->name,
                             q->delta, &q->id, err);
  }
  bool relayed = false;
  if (rc == AS_OK) rc = write_relays(p, w, &relayed, err);
  if (rc == AS_OK && w->truncated) rc = as_state_versions_forget(st, w->truncated->name, err);
  if (rc == AS_OK && w->nkept > 0) {
    char *keys = applied_keys(p, w);
    rc = keys ? as_state_inflight_put(st, p->stream_id, ckpt, keys, err) : eng_oom(err);
    free(keys);
  }
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
  if (w->nkept == 0 || as_state_begin(st, &err) != AS_OK) return;
  int64_t now = as_now_us();
  AS_LOG(AS_LOG_TRACE, p->comp, "%zu change(s) committed on %s, commit order %lld", w->nkept,
         p->dst->cfg->name, (long long)w->commit_order);
  int rc = AS_OK;
  for (size_t i = 0; i < w->nall && rc == AS_OK; i++) {
    decided *x = w->all[i];
    if (!x->applied) continue;
    const as_held *h = as_version_held(&x->v, p->dst->id);
    if (h) {
      as_version_set_held(&x->v, p->dst->id, h->origin, h->hlc, h->deleted, now);
      as_version_set_wrote_order(&x->v, p->dst->id, w->commit_order);
    }
    rc = as_state_version_put_written(st, x->schema->name, x->key, &x->v, &err);
  }
  if (rc == AS_OK) rc = as_state_inflight_del(st, p->stream_id, &err);
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
  queued *q = eng_queue_repair(w, d->schema, key, p->dst, p->src, SIZE_MAX);
  int rc = q ? as_state_repair_add(p->e->state, d->schema->name, key, p->dst->cfg->name,
                                   p->src->cfg->name, NULL, &q->id, err)
             : eng_oom(err);
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
    if (dd->missing) continue; /* queued before the commit (apply_kept) */
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

/* Of key x, what the batch recorded ahead for the target, given back: which of the key's
 * versions the target holds, and its write record, as before the batch. */
static void restore_target(decided *x, uint16_t dst) {
  as_version *v = &x->v;
  const as_version *o = &x->orig;
  uint64_t bit = 1ull << (dst % 64);
  bool row_same = v->hlc == o->hlc && strcmp(v->origin, o->origin) == 0;
  v->row_mask = (v->row_mask & ~bit) | (row_same ? o->row_mask & bit : 0);
  for (uint8_t i = 0; i < v->ncolv; i++) {
    as_colver *c = &v->colv[i];
    const as_colver *oc = as_version_col(o, c->col);
    bool same = oc && oc->origin == c->origin && oc->hlc == c->hlc;
    c->mask = (c->mask & ~bit) | (same ? oc->mask & bit : 0);
  }
  const as_held *oh = as_version_held(o, dst);
  as_version_drop_held(v, dst);
  if (oh && v->nheld < AS_VERSION_MAX_HELD) v->held[v->nheld++] = *oh;
}

/* The target refused the batch before its commit was asked for (an apply error, a write
 * conflict): nothing of it is there. Every key it would have written is recorded again
 * without those writes (the versions decided stay: the batch is read again), and the batch
 * is no longer in flight. Without this, a repair could read a winning value from the target
 * that never got it. On failure the record in flight stays, for pair_open to settle. */
static void unwrite(eng_pair *p, eng_work *w) {
  as_state *st = p->e->state;
  as_error err;
  if (as_state_begin(st, &err) != AS_OK) return;
  int rc = AS_OK;
  for (size_t i = 0; i < w->nall && rc == AS_OK; i++) {
    decided *x = w->all[i];
    if (!x->applied) continue;
    restore_target(x, p->dst->id);
    rc = as_state_version_put(st, x->schema->name, x->key, &x->v, &err);
  }
  if (rc == AS_OK) rc = as_state_inflight_del(st, p->stream_id, &err);
  if (rc != AS_OK) {
    as_state_rollback(st);
    AS_LOG(AS_LOG_WARN, p->comp, "giving back a batch that did not apply: %s", err.message);
  } else if (as_state_commit(st, &err) != AS_OK) {
    AS_LOG(AS_LOG_WARN, p->comp, "giving back a batch that did not apply: %s", err.message);
  }
}

/* Tests only: ARRAYSYNC_TEST_CRASH_AT=<point> kills the process (SIGKILL, as kill -9 does)
 * at that point, to put a crash exactly there (tests/integration/crash_points.py). */
static void crash_point(const char *point) {
  const char *at = getenv("ARRAYSYNC_TEST_CRASH_AT");
  if (at && strcmp(at, point) == 0) raise(SIGKILL);
}

/* Applies the kept deltas to the target with the checkpoint, in one transaction.
 * *asked: the commit was asked for (its outcome may be unknown when it failed). */
static int apply_kept(eng_pair *p, eng_work *w, const char *ckpt, bool *asked, as_error *err) {
  eng_node *t = p->dst;
  as_dead_list dead = {0};
  as_delta *arr = NULL;
  if (w->nkept) {
    if (!(arr = malloc(w->nkept * sizeof *arr))) return eng_oom(err);
    for (size_t i = 0; i < w->nkept; i++) arr[i] = *w->kept[i]; /* shallow: borrowed */
  }
  w->commit_order = 0;
  pthread_mutex_lock(&t->mu);
  int rc = t->ad->begin(t->node, err);
  if (rc == AS_OK && w->nkept) rc = t->ad->apply(t->node, arr, w->nkept, &dead, err);
  /* an update that found no row there: the key's whole winning row is queued for the target
   * before the commit, so that a crash right after the commit cannot lose it (a commit that
   * fails leaves a repair that writes what the target lacks anyway) */
  for (size_t i = 0; rc == AS_OK && i < dead.n; i++)
    if (dead.items[i].missing && dead.items[i].index < w->nkept)
      rc = missing_row(p, w, &arr[dead.items[i].index], err);
  *asked = rc == AS_OK;
  if (rc == AS_OK) rc = t->ad->commit(t->node, p->stream_id, ckpt, err);
  if (rc != AS_OK) t->ad->rollback(t->node);
  else if (t->ad->commit_order) w->commit_order = t->ad->commit_order(t->node);
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
    if (dead.n) crash_point("after-commit-with-dead"); /* committed, the batch not stamped */
    rc = apply_dead(p, w, arr, w->nkept, &dead, err);
  }
  as_dead_list_clear(&dead);
  free(arr);
  return rc;
}

static void record_capture_dead(eng_pair *p, as_batch *b, eng_work *w) {
  for (size_t i = 0; i < b->ndead; i++) {
    as_dead *d = &b->dead[i];
    eng_record_dead(p->e, p, d->schema, p->src->cfg->name, p->dst->cfg->name, "capture", d->key,
                    d->raw, NULL, d->error, d->pos);
  }
  for (size_t i = 0; i < w->keyless.n; i++) { /* deltas whose key could not be named */
    const as_delta *d = &b->d[w->keyless.idx[i]];
    char *dj = as_delta_to_json_string(d, NULL);
    char *k = as_key_describe(d->schema, &d->row);
    eng_record_dead(p->e, p, d->schema, p->src->cfg->name, p->dst->cfg->name, "capture", k, NULL,
                    dj, w->keyless.why[i], d->pos);
    free(k);
    free(dj);
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
static bool defer(eng_pair *p, as_batch *b, bool snapshot, const char *ckpt, bool pos_changed) {
  bool any_routed = false;
  for (size_t i = 0; i < b->n && !any_routed; i++) any_routed = eng_routed(p, &b->d[i], snapshot);
  if (any_routed || b->ndead > 0 || snapshot ||
      (pos_changed && as_now_us() - p->last_commit_us > IDLE_CHECKPOINT_US))
    return false;
  if (pos_changed) {
    char *c = strdup(ckpt);
    if (!c) return false; /* out of memory: committed now instead */
    free(p->pending_ckpt);
    p->pending_ckpt = c;
  }
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
  int rc = eng_collect_keys(p, b, snapshot, w, err);
  if (rc != AS_OK) return rc;
  eng_stripes_lock(p->e, w->stripes, w->nstripes);
  rc = eng_resolve_batch(p, b, snapshot, w, err);
  if (rc == AS_OK) rc = write_ahead(p, w, ckpt, err);
  bool written_ahead = rc == AS_OK, asked = false;
  if (rc == AS_OK && (w->nkept > 0 || pos_changed)) rc = apply_kept(p, w, ckpt, &asked, err);
  if (rc != AS_OK && written_ahead && !asked && w->nkept > 0) unwrite(p, w);
  if (rc == AS_OK) stamp(p, w);
  eng_stripes_unlock(p->e, w->stripes, w->nstripes);
  return rc;
}

static void run_repairs(eng_pair *p, eng_work *w) {
  for (size_t i = 0; i < w->nrepairs && !eng_stopping(p->e); i++) {
    queued *q = &w->repairs[i];
    if (q->cancelled || !q->id) continue;
    as_error rerr;
    int rc = eng_repair(p->e, p, q->schema, q->key, q->to, q->from, q->delta, q->id, &rerr);
    if (rc != AS_OK) {
      /* it stays queued: the next drain (or restart) runs it again */
      AS_LOG(rc == AS_RETRY ? AS_LOG_DEBUG : AS_LOG_WARN, p->comp, "repair of mapping %s key %s on %s deferred: %s",
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
  if (defer(p, b, snapshot, ckpt, pos_changed)) return AS_OK;
  rc = decide_and_apply(p, b, snapshot, ckpt, pos_changed, w, err);
  if (rc != AS_OK) return rc;
  /* counted once the batch is committed (a retried batch is not counted twice) */
  record_capture_dead(p, b, w);
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
  free(p->pending_ckpt);
  p->pending_ckpt = NULL;
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
