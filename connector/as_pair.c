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
                          d->echo && !snapshot, d->relayed);
}

/* ---------- checkpoints: "as-relay:N;" + the source adapter's position ---------- */

const char *eng_ckpt_source_pos(const char *ckpt) {
  if (!ckpt || strncmp(ckpt, ENG_RELAY_PREFIX, strlen(ENG_RELAY_PREFIX)) != 0) return ckpt;
  const char *semi = strchr(ckpt, ';');
  return semi ? semi + 1 : ckpt;
}

static int64_t ckpt_relay_seq(const char *ckpt) {
  if (!ckpt || strncmp(ckpt, ENG_RELAY_PREFIX, strlen(ENG_RELAY_PREFIX)) != 0) return 0;
  return strtoll(ckpt + strlen(ENG_RELAY_PREFIX), NULL, 10);
}

/* The checkpoint of a streaming batch (caller frees). Without relays it is the source
 * position itself. */
static char *ckpt_compose(const eng_pair *p, int64_t relay_seq, const char *pos) {
  if (!p->relays || !pos) return pos ? strdup(pos) : NULL;
  size_t n = strlen(pos) + 48;
  char *out = malloc(n);
  if (out) snprintf(out, n, "%s%lld;%s", ENG_RELAY_PREFIX, (long long)relay_seq, pos);
  return out;
}

/* ---------- a batch that was in flight when the process died ---------- */

/* A write of a batch that did not commit, recorded ahead for the target: it wrote nothing
 * there, but its record took the place of the target's record of the connector's earlier
 * write there (a repair, say, that deleted the row over a newer change of the node's own not
 * captured yet), which is gone. The target keeps a record that it holds no version known from
 * a write and that the connector may have written there up to now: a change of its own
 * committed before then counts as overwritten and is written back where it still wins
 * (dropping the record left such a change lost on its own node while the state store said
 * the node made it). */
static void forget_write(as_version *v, uint16_t dst) {
  as_held *h = (as_held *)as_version_held(v, dst);
  if (!h) return;
  h->made = false;
  h->written_us = 0;
  h->wrote_pending = false;
  h->wrote_us = as_now_us();
  h->wrote_order = 0;
}

/* The writes of that batch to the target: committed (the target's checkpoint is the one the
 * batch carried) -> stamped now; not committed -> forgotten (forget_write), so nothing counts
 * on them, and the versions the batch marked the target as holding anew are unmarked (the
 * line's "\thlc\torigin" fields after the key). (An update of it that found no row there had
 * its repair queued before the commit.) */
static void settle_key(eng_pair *p, char *line, bool committed) {
  char *tab = strchr(line, '\t');
  if (!tab) return;
  char mapping[128];
  snprintf(mapping, sizeof mapping, "%.*s", (int)(tab - line), line);
  const as_schema *s = as_config_schema(p->e->cfg, mapping);
  char *key = tab + 1;
  char *marks = strchr(key, '\t'); /* a canonical key has no tab */
  if (marks) *marks++ = '\0';
  if (!s) return;
  size_t stripe = eng_stripe_of(s, key);
  as_version v;
  as_error err;
  eng_stripes_lock(p->e, &stripe, 1);
  if (as_state_version_get(p->e->state, s->name, key, &v, &err) == AS_OK) {
    const as_held *h = as_version_held(&v, p->dst->id);
    bool changed = false;
    if (h && h->wrote_pending) {
      if (committed) as_version_set_held(&v, p->dst->id, h->origin, h->hlc, h->deleted, as_now_us());
      else forget_write(&v, p->dst->id);
      changed = true;
    }
    if (!committed && marks && as_version_unmark(p->e->state, &v, p->dst->id, marks))
      changed = true;
    if (changed && as_state_version_put(p->e->state, s->name, key, &v, &err) != AS_OK)
      AS_LOG(AS_LOG_WARN, p->comp, "%s", err.message);
  }
  eng_stripes_unlock(p->e, &stripe, 1);
}

static void settle_inflight(eng_pair *p, const char *ck) {
  char *ick = NULL, *keys = NULL;
  as_error err;
  if (as_state_inflight_get(p->e->state, p->stream_id, &ick, &keys, &err) != AS_OK) return;
  bool committed = ick && ck && strcmp(ick, ck) == 0;
  AS_LOG(AS_LOG_INFO, p->comp, "a batch was in flight when the connector stopped; it %s",
         committed ? "committed" : "did not commit (it is read again)");
  for (char *line = keys, *nl; line && *line; line = nl ? nl + 1 : NULL) {
    nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    settle_key(p, line, committed);
  }
  if (as_state_inflight_del(p->e->state, p->stream_id, &err) != AS_OK)
    AS_LOG(AS_LOG_WARN, p->comp, "%s", err.message);
  free(ick);
  free(keys);
}

/* ---------- opening: from the checkpoint, or snapshot first ---------- */

static int open_snapshot(eng_pair *p, eng_work *w, char *ck, bool have, as_error *err) {
  eng_node *t = p->dst;
  /* No checkpoint (or an interrupted snapshot): open the stream first, then copy. */
  const char *resume = have ? ck : NULL;
  char *start = NULL;
  if (resume) {
    json_t *j = json_loads(resume + strlen(ENG_SNAPSHOT_PREFIX), 0, NULL);
    const char *st = j ? json_string_value(json_object_get(j, "start")) : NULL;
    if (st && *st) start = strdup(st);
    json_decref(j);
  }
  int rc = p->src->ad->open_stream(p->src->node, t->cfg->name, start, &p->stream, err);
  free(start);
  if (rc != AS_OK) return rc;
  eng_pair_save_stats(p, "snapshot");
  AS_LOG(AS_LOG_INFO, p->comp, "%s", resume ? "resuming snapshot" : "no checkpoint: snapshot first");
  char *pos = NULL;
  p->relay_seq = 0; /* relays written during the copy are read again afterwards */
  atomic_store(&p->relay_committed, 0);
  rc = eng_run_snapshot(p, resume, w, &pos, err);
  if (rc != AS_OK) return rc;
  /* commit the recorded stream position: streaming starts there */
  as_batch empty = {0};
  char *full = ckpt_compose(p, 0, pos);
  rc = full ? eng_process_batch(p, &empty, true, full, w, err)
            : as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  as_batch_clear(&empty);
  free(full);
  free(pos);
  if (rc == AS_OK) rc = eng_snapshot_mark_copied(p, err);
  return rc;
}

static int pair_open(eng_pair *p, eng_work *w, as_error *err) {
  eng_node *t = p->dst;
  char *ck = NULL;
  pthread_mutex_lock(&t->mu);
  int rc = t->ad->checkpoint_load(t->node, p->stream_id, &ck, err);
  pthread_mutex_unlock(&t->mu);
  if (rc != AS_OK && rc != AS_ENOTFOUND) return rc;
  settle_inflight(p, rc == AS_OK ? ck : NULL);
  if (p->stream) {
    p->src->ad->close_stream(p->stream);
    p->stream = NULL;
  }
  free(p->ckpt);
  p->ckpt = NULL;
  if (rc == AS_OK && p->force_snapshot) {
    AS_LOG(AS_LOG_WARN, p->comp, "re-snapshot: the committed checkpoint is set aside");
    rc = AS_ENOTFOUND;
  }
  p->force_snapshot = false;
  if (rc == AS_OK && strncmp(ck, ENG_SNAPSHOT_PREFIX, strlen(ENG_SNAPSHOT_PREFIX)) != 0) {
    rc = p->src->ad->open_stream(p->src->node, t->cfg->name, eng_ckpt_source_pos(ck), &p->stream,
                                 err);
    if (rc == AS_OK) {
      p->relay_seq = ckpt_relay_seq(ck);
      atomic_store(&p->relay_committed, p->relay_seq);
      p->ckpt = ck;
      AS_LOG(AS_LOG_INFO, p->comp, "streaming from checkpoint");
      return eng_copy_new_mappings(p, w, err);
    }
    free(ck);
    return rc;
  }
  rc = open_snapshot(p, w, ck, rc == AS_OK, err);
  free(ck);
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

/* ---------- streaming ---------- */

typedef struct relay_ctx {
  eng_pair *p;
  as_batch *b;
  int64_t last;
  as_error *err;
} relay_ctx;

static int add_relayed(void *vctx, int64_t seq, const char *delta_json) {
  relay_ctx *c = vctx;
  c->last = seq;
  as_delta d;
  as_error derr;
  int rc = as_config_delta_parse(c->p->e->cfg, delta_json, &d, &derr);
  if (rc == AS_ENOTFOUND || rc == AS_EINVAL || rc == AS_EDATA) { /* a mapping since removed */
    AS_LOG(AS_LOG_DEBUG, c->p->comp, "relay %lld skipped: %s", (long long)seq, derr.message);
    return AS_OK;
  }
  if (rc != AS_OK) return as_error_set(c->err, AS_DOM_ENGINE, AS_ERR, "%s", derr.message);
  as_delta *slot = as_batch_push(c->b);
  if (!slot) {
    as_delta_clear(&d);
    return as_error_set(c->err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  }
  *slot = d;
  slot->relayed = true;
  slot->echo = false;
  return AS_OK;
}

/* Appends the changes the source relays to this pair's batch (after the captured ones);
 * *next: the relay cursor after them. */
static int read_relays(eng_pair *p, as_batch *b, int64_t *next, as_error *err) {
  *next = p->relay_seq;
  if (!p->relays || atomic_load(&p->src->relay_tail) <= p->relay_seq) return AS_OK;
  size_t room = p->e->cfg->batch_max_rows > b->n ? p->e->cfg->batch_max_rows - b->n : 1;
  relay_ctx c = {.p = p, .b = b, .last = p->relay_seq, .err = err};
  int rc = as_state_relay_read(p->e->state, p->src->id, p->relay_seq, room, add_relayed, &c, err);
  if (rc == AS_OK) *next = c.last;
  return rc;
}

/* One poll + relays + batch. */
static int stream_step(eng_pair *p, as_batch *b, eng_work *w, int wait_ms, as_error *err) {
  as_batch_reset(b);
  bool pending = p->relays && atomic_load(&p->src->relay_tail) > p->relay_seq;
  int64_t began = as_now_us();
  int rc = p->src->ad->poll(p->stream, b, p->e->cfg->batch_max_rows, pending ? 0 : wait_ms, err);
  int64_t next = p->relay_seq;
  if (rc == AS_OK) rc = read_relays(p, b, &next, err);
  if (rc != AS_OK) return rc;
  char *ck = ckpt_compose(p, next, b->pos ? b->pos : eng_ckpt_source_pos(p->ckpt));
  if (!ck && (b->pos || p->ckpt)) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  rc = eng_process_batch(p, b, false, ck, w, err);
  free(ck);
  if (rc == AS_OK) {
    p->relay_seq = next;
    atomic_store(&p->relay_committed, next);
    if (b->n == 0 && b->ndead == 0) atomic_store(&p->caught_up_us, began);
  }
  return rc;
}

static int stream_loop(eng_pair *p, as_batch *b, eng_work *w, int *attempt, as_error *err) {
  engine *e = p->e;
  int64_t interval_ms = 0;
  bool interval = pair_interval(p, &interval_ms);
  int wait_ms = (int)(e->cfg->batch_max_latency_ms > 0 ? e->cfg->batch_max_latency_ms : 20);
  if (wait_ms < 5) wait_ms = 5;
  if (wait_ms > 200) wait_ms = 200;
  int rc = AS_OK;
  while (rc == AS_OK && !eng_stopping(e)) {
    rc = stream_step(p, b, w, interval ? 0 : wait_ms, err);
    if (rc != AS_OK) break;
    if (p->outage) {
      AS_LOG(AS_LOG_INFO, p->comp, "recovered after %d retries", *attempt);
      p->outage = false;
      atomic_store(&p->outage_since_us, 0);
      p->error[0] = '\0';
    }
    *attempt = 0;
    if (b->n == 0 && b->ndead == 0) {
      if (!atomic_load(&p->idle_since_us)) {
        atomic_store(&p->idle_since_us, as_now_us());
        eng_pair_save_stats(p, "streaming");
      }
      if (interval) eng_sleep_ms(e, interval_ms);
    } else {
      atomic_store(&p->idle_since_us, 0);
      if (interval && b->n < e->cfg->batch_max_rows) eng_sleep_ms(e, interval_ms);
    }
  }
  return rc;
}

static void drop_stream(eng_pair *p) {
  if (p->stream) p->src->ad->close_stream(p->stream);
  p->stream = NULL;
}

/* A transient failure: drop the stream, reconnect both sides, resume from the checkpoint. */
static void on_retry(eng_pair *p, int *attempt, const as_error *err) {
  engine *e = p->e;
  if (!p->outage) {
    AS_LOG(AS_LOG_WARN, p->comp, "transient failure, retrying with backoff: %s", err->message);
    p->outage = true;
    atomic_store(&p->outage_since_us, as_now_us());
    snprintf(p->error, sizeof p->error, "%s", err->message);
    eng_pair_save_stats(p, "retrying");
  }
  drop_stream(p);
  atomic_store(&p->caught_up_us, 0);
  eng_sleep_ms(e, eng_backoff_ms(&p->rng, (*attempt)++));
  as_error cerr;
  if (eng_node_connect(e, p->src, &cerr) == AS_OK) eng_node_connect(e, p->dst, &cerr);
}

/* Commits, before leaving, the position of the last batch deferred for holding nothing to
 * write (p->pending_ckpt). Never the source's current end: changes committed after that batch
 * was read, or in a batch that failed since, would be skipped (the next run resumes there). */
static void commit_pending(eng_pair *p, eng_work *w) {
  if (!p->pending_ckpt || !p->stream || atomic_load(&p->failed) || !w) return;
  as_batch empty = {0};
  as_error cerr;
  p->last_commit_us = 0;
  char *ck = p->pending_ckpt;
  p->pending_ckpt = NULL;
  eng_process_batch(p, &empty, false, ck, w, &cerr);
  free(ck);
  as_batch_clear(&empty);
}

void *eng_pair_main(void *arg) {
  eng_pair *p = arg;
  engine *e = p->e;
  eng_work *w = eng_work_new();
  as_batch b = {0};
  as_error err;
  int attempt = 0;
  while (!eng_stopping(e)) {
    int rc = AS_OK;
    if (!p->stream) {
      atomic_store(&p->streaming, false);
      atomic_store(&p->caught_up_us, 0);
      rc = w ? pair_open(p, w, &err) : as_error_set(&err, AS_DOM_ENGINE, AS_ERR, "out of memory");
      if (rc == AS_OK) {
        atomic_store(&p->streaming, true);
        eng_pair_save_stats(p, "streaming");
      }
    }
    if (rc == AS_OK) rc = stream_loop(p, &b, w, &attempt, &err);
    if (eng_stopping(e)) break;
    if (rc == AS_ERESNAPSHOT) {
      /* the source lost the history behind our position (or the mapped collection was
       * re-created) and the node is configured to copy everything again */
      AS_LOG(AS_LOG_WARN, p->comp, "%s: copying every mapping again (on_history_lost: resnapshot)",
             err.message);
      drop_stream(p);
      p->force_snapshot = true;
      continue;
    }
    if (rc == AS_RETRY) {
      on_retry(p, &attempt, &err);
      continue;
    }
    /* Permanent error: this pair stops; the others go on. */
    atomic_store(&p->failed, rc);
    snprintf(p->error, sizeof p->error, "%s", err.message);
    AS_LOG(AS_LOG_ERROR, p->comp, "stopped: %s", err.message);
    eng_pair_save_stats(p, "error");
    break;
  }
  atomic_store(&p->caught_up_us, 0);
  commit_pending(p, w);
  if (!atomic_load(&p->failed)) eng_pair_save_stats(p, "stopped");
  drop_stream(p);
  as_batch_clear(&b);
  eng_work_free(w);
  return NULL;
}
