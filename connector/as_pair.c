/* as_pair.c — the thread of one routed pair (source -> target): it opens the stream from
 * the target's checkpoint (or copies first when there is none), then polls the source and
 * hands each batch to eng_process_batch; transient failures reconnect with backoff and
 * resume from the committed checkpoint; a permanent error stops this pair only. Also the
 * pair's counters and dead letters. */
#include "as_engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "as_log.h"
#include "as_metrics.h"
#include "as_router.h"
#include "as_time.h"


/* Counts for the stream and for the mapping (status shows both). */
void eng_count(eng_pair *p, const as_schema *s, int which, int64_t n) {
  as_stream_mapping_stats *m = NULL;
  for (size_t i = 0; s && i < p->e->cfg->nschemas; i++) {
    if (p->e->cfg->schemas[i] == s) m = &p->mstats[i];
  }
  int64_t *tot[] = {&p->stats.captured, &p->stats.applied, &p->stats.skipped,
                    &p->stats.conflicts, &p->stats.dead};
  *tot[which] += n;
  if (m) {
    int64_t *per[] = {&m->captured, &m->applied, &m->skipped, &m->conflicts, &m->dead};
    *per[which] += n;
  }
}

void eng_pair_save_stats(eng_pair *p, const char *phase) {
  as_stream_stats *s = &p->stats;
  p->last_stats_us = as_now_us();
  for (size_t i = 0; i < p->e->cfg->nschemas; i++) {
    as_state_stream_mapping_put(p->e->state, &p->mstats[i], NULL);
  }
  snprintf(s->phase, sizeof s->phase, "%s", phase);
  snprintf(s->checkpoint, sizeof s->checkpoint, "%s", p->ckpt ? p->ckpt : "");
  snprintf(s->error, sizeof s->error, "%s", p->error);
  s->updated_us = as_now_us();
  as_error err;
  if (as_state_stream_put(p->e->state, s, &err) != AS_OK) {
    AS_LOG(AS_LOG_WARN, p->comp, "%s", err.message);
  }
}

void eng_record_dead(engine *e, eng_pair *p, const as_schema *s, const char *source,
                     const char *target, const char *stage, const char *key, const char *raw,
                     const char *delta_json, const char *error, const char *pos) {
  as_error err;
  if (as_state_dead_add(e->state, s ? s->name : NULL, source, target, stage, key, raw,
                        delta_json, error, pos, &err) != AS_OK) {
    AS_LOG(AS_LOG_ERROR, p ? p->comp : "engine", "cannot record dead letter: %s", err.message);
  }
  if (p) eng_count(p, s, ENG_C_DEAD, 1);
  as_metrics_add(source, target, s ? s->name : "", AS_M_DEAD, 1);
  AS_LOG(AS_LOG_WARN, p ? p->comp : "engine", "dead letter (%s) mapping %s key %s: %s", stage,
         s ? s->name : "?", key ? key : "?", error ? error : "");
}

/* Whether the delta goes to this pair's target at all (mapping, direction, topology). */
bool eng_routed(eng_pair *p, const as_delta *d, bool snapshot) {
  const char *origin = d->origin ? d->origin : p->src->cfg->name;
  return d->schema && eng_node_has_schema(p->dst, d->schema) &&
         as_route_direction(p->e->cfg, d->schema, origin, p->dst->cfg->name) &&
         as_route_forward(p->e->cfg, p->src->cfg->name, p->dst->cfg->name, origin,
                          d->echo && !snapshot);
}

static int pair_open(eng_pair *p, eng_work *w, as_error *err) {
  eng_node *t = p->dst;
  char *ck = NULL;
  pthread_mutex_lock(&t->mu);
  int rc = t->ad->checkpoint_load(t->node, p->stream_id, &ck, err);
  pthread_mutex_unlock(&t->mu);
  if (rc != AS_OK && rc != AS_ENOTFOUND) return rc;
  if (p->stream) {
    p->src->ad->close_stream(p->stream);
    p->stream = NULL;
  }
  free(p->ckpt);
  p->ckpt = NULL;
  if (rc == AS_OK && p->force_snapshot) {
    AS_LOG(AS_LOG_WARN, p->comp, "re-snapshot: the committed checkpoint is set aside");
    free(ck);
    ck = NULL;
    rc = AS_ENOTFOUND;
  }
  p->force_snapshot = false;
  if (rc == AS_OK && strncmp(ck, ENG_SNAPSHOT_PREFIX, strlen(ENG_SNAPSHOT_PREFIX)) != 0) {
    rc = p->src->ad->open_stream(p->src->node, t->cfg->name, ck, &p->stream, err);
    if (rc == AS_OK) {
      p->ckpt = ck;
      AS_LOG(AS_LOG_INFO, p->comp, "streaming from checkpoint");
      return AS_OK;
    }
    free(ck);
    return rc;
  }
  /* No checkpoint (or an interrupted snapshot): open the stream first, then copy. */
  const char *resume = rc == AS_OK ? ck : NULL;
  char *start = NULL;
  if (resume) {
    json_t *j = json_loads(resume + strlen(ENG_SNAPSHOT_PREFIX), 0, NULL);
    const char *st = j ? json_string_value(json_object_get(j, "start")) : NULL;
    if (st && *st) start = strdup(st);
    json_decref(j);
  }
  rc = p->src->ad->open_stream(p->src->node, t->cfg->name, start, &p->stream, err);
  free(start);
  if (rc != AS_OK) {
    free(ck);
    return rc;
  }
  eng_pair_save_stats(p, "snapshot");
  AS_LOG(AS_LOG_INFO, p->comp, "%s", resume ? "resuming snapshot" : "no checkpoint: snapshot first");
  char *pos = NULL;
  rc = eng_run_snapshot(p, resume, w, &pos, err);
  free(ck);
  if (rc != AS_OK) return rc;
  /* commit the recorded stream position: streaming starts there */
  as_batch empty = {0};
  rc = eng_process_batch(p, &empty, true, pos, w, err);
  as_batch_clear(&empty);
  free(pos);
  return rc;
}

static bool pair_interval(eng_pair *p, int64_t *interval_ms) {
  bool all_interval = true;
  int64_t min = 0;
  for (size_t i = 0; i < p->e->cfg->nschemas; i++) {
    const as_schema *s = p->e->cfg->schemas[i];
    if (!eng_node_has_schema(p->src, s)) continue;
    if (s->mode != AS_MODE_INTERVAL) {
      all_interval = false;
      break;
    }
    if (min == 0 || s->interval_ms < min) min = s->interval_ms;
  }
  *interval_ms = min;
  return all_interval && min > 0;
}

void *eng_pair_main(void *arg) {
  eng_pair *p = arg;
  engine *e = p->e;
  eng_work *w = eng_work_new();
  as_batch b = {0};
  as_error err;
  int attempt = 0;
  int64_t interval_ms = 0;
  bool interval = pair_interval(p, &interval_ms);
  int wait_ms = (int)(e->cfg->batch_max_latency_ms > 0 ? e->cfg->batch_max_latency_ms : 20);
  if (wait_ms < 5) wait_ms = 5;
  if (wait_ms > 200) wait_ms = 200;
  while (!eng_stopping(e)) {
    int rc = AS_OK;
    if (!p->stream) {
      atomic_store(&p->streaming, false);
      rc = w ? pair_open(p, w, &err) : as_error_set(&err, AS_DOM_ENGINE, AS_ERR, "out of memory");
      if (rc == AS_OK) {
        atomic_store(&p->streaming, true);
        eng_pair_save_stats(p, "streaming");
      }
    }
    while (rc == AS_OK && !eng_stopping(e)) {
      as_batch_reset(&b);
      rc = p->src->ad->poll(p->stream, &b, e->cfg->batch_max_rows, interval ? 0 : wait_ms, &err);
      if (rc != AS_OK) break;
      const char *pos = b.pos ? b.pos : p->ckpt;
      rc = eng_process_batch(p, &b, false, pos, w, &err);
      if (rc != AS_OK) break;
      if (p->outage) {
        AS_LOG(AS_LOG_INFO, p->comp, "recovered after %d retries", attempt);
        p->outage = false;
        p->error[0] = '\0';
      }
      attempt = 0;
      if (b.n == 0 && b.ndead == 0) {
        if (!atomic_load(&p->idle_since_us)) {
          atomic_store(&p->idle_since_us, as_now_us());
          eng_pair_save_stats(p, "streaming");
        }
        if (interval) eng_sleep_ms(e, interval_ms);
      } else {
        atomic_store(&p->idle_since_us, 0);
        if (interval && b.n < e->cfg->batch_max_rows) eng_sleep_ms(e, interval_ms);
      }
    }
    if (eng_stopping(e)) break;
    if (rc == AS_ERESNAPSHOT) {
      /* the source lost the history behind our position (or the mapped collection was
       * re-created) and the node is configured to copy everything again */
      AS_LOG(AS_LOG_WARN, p->comp, "%s: copying every mapping again (on_history_lost: resnapshot)",
             err.message);
      if (p->stream) {
        p->src->ad->close_stream(p->stream);
        p->stream = NULL;
      }
      p->force_snapshot = true;
      continue;
    }
    if (rc == AS_RETRY) {
      /* Transient: drop the stream, reconnect both sides, resume from the checkpoint. */
      if (!p->outage) {
        AS_LOG(AS_LOG_WARN, p->comp, "transient failure, retrying with backoff: %s", err.message);
        p->outage = true;
        snprintf(p->error, sizeof p->error, "%s", err.message);
        eng_pair_save_stats(p, "retrying");
      }
      if (p->stream) {
        p->src->ad->close_stream(p->stream);
        p->stream = NULL;
      }
      eng_sleep_ms(e, eng_backoff_ms(&p->rng, attempt++));
      as_error cerr;
      if (eng_node_connect(e, p->src, &cerr) != AS_OK || eng_node_connect(e, p->dst, &cerr) != AS_OK) {
        continue;
      }
      continue;
    }
    /* Permanent error: this pair stops; the others go on. */
    atomic_store(&p->failed, rc);
    snprintf(p->error, sizeof p->error, "%s", err.message);
    AS_LOG(AS_LOG_ERROR, p->comp, "stopped: %s", err.message);
    eng_pair_save_stats(p, "error");
    break;
  }
  /* Commit a known newer position before leaving (nothing to apply). */
  if (p->pending_pos && p->stream && !atomic_load(&p->failed) && w) {
    as_batch empty = {0};
    as_error cerr;
    p->last_commit_us = 0;
    char *pos = NULL;
    if (p->src->ad->stream_position(p->stream, &pos, &cerr) == AS_OK && pos) {
      eng_process_batch(p, &empty, false, pos, w, &cerr);
    }
    free(pos);
    as_batch_clear(&empty);
  }
  if (!atomic_load(&p->failed)) eng_pair_save_stats(p, "stopped");
  if (p->stream) p->src->ad->close_stream(p->stream);
  p->stream = NULL;
  as_batch_clear(&b);
  eng_work_free(w);
  return NULL;
}

