/* as_repair.c — writes a key's winner to a node that holds something older: a local change
 * that lost (its node gets the winner), or a winning local change that the connector
 * overwrote on its own node in a race (it gets the change back). Repairs are queued in the
 * state store by the batch that decides them and run after it; a crash leaves them queued and
 * eng_repairs_drain runs them at the next start. */
#include "as_engine_int.h"

#include <stdlib.h>
#include <string.h>

#include "as_log.h"
#include "as_metrics.h"
#include "as_time.h"

static bool holds(engine *e, const as_version *v, const eng_node *n) {
  const as_held *h = as_version_held(v, n->id);
  const char *o = h ? as_state_node_name(e->state, h->origin) : NULL;
  return h && h->written_us > 0 && h->hlc == v->hlc && o && strcmp(o, v->origin) == 0;
}

/* A node that holds the winner v, to read it from: its origin (which made it, or something
 * newer since), unless that is the node being repaired (a race rewrite); then a node the
 * connector wrote v to and saw commit — `from` first. A node the version was only written
 * ahead to (its batch not committed, e.g. after a crash) may still hold an older value, and
 * that value must never be written under the winner's version: NULL then (try later). */
static eng_node *winner_holder(engine *e, const as_version *v, eng_node *to, eng_node *from) {
  eng_node *o = eng_find_node(e, v->origin);
  if (o && o != to) return o;
  if (from != to && holds(e, v, from)) return from;
  for (size_t i = 0; i < e->nnodes; i++) {
    if (&e->nodes[i] != to && holds(e, v, &e->nodes[i])) return &e->nodes[i];
  }
  return NULL;
}

/* Builds the delta that makes `to` hold the winner v: the row read from `from`, or a delete. */
static int winner_delta(const as_schema *s, const char *key, const as_version *v, eng_node *from,
                        as_delta *d, as_error *err) {
  as_row keyrow = {0}, row = {0};
  int rc = as_row_init(&keyrow, s->ncols);
  if (rc == AS_OK) rc = as_key_parse(s, key, &keyrow, err);
  if (rc != AS_OK) goto cleanup;
  if (!v->deleted) {
    if ((rc = as_row_init(&row, s->ncols)) != AS_OK) goto cleanup;
    pthread_mutex_lock(&from->mu);
    rc = from->ad->read_row(from->node, s, &keyrow, &row, err);
    pthread_mutex_unlock(&from->mu);
    if (rc == AS_OK) {
      if ((rc = as_delta_init(d, s, AS_OP_INSERT)) != AS_OK) goto cleanup;
      as_row_clear(&d->row);
      d->row = row;
      memset(&row, 0, sizeof row);
      goto cleanup;
    }
    if (rc != AS_ENOTFOUND) {
      as_error_prefix(err, "reading the winner from %s", from->cfg->name);
      goto cleanup;
    }
    /* the holder no longer has the row: it was deleted there since; that delete is a newer
     * change on its way, and writing the delete now is what it will bring */
  }
  if ((rc = as_delta_init(d, s, AS_OP_DELETE)) != AS_OK) goto cleanup;
  as_row_clear(&d->row);
  d->row = keyrow;
  memset(&keyrow, 0, sizeof keyrow);
cleanup:
  as_row_clear(&keyrow);
  as_row_clear(&row);
  return rc == AS_ERR && !err->message[0] ? as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory") : rc;
}

/* held[to] := v (written_us as given) and, when done, the queue record removed. */
static int record(engine *e, const as_schema *s, const char *key, eng_node *to, int64_t written,
                  int64_t repair_id, as_error *err) {
  as_version v;
  int rc = as_state_begin(e->state, err);
  if (rc != AS_OK) return rc;
  rc = as_state_version_get(e->state, s->name, key, &v, err);
  uint16_t oid = 0;
  if (rc == AS_OK) rc = as_state_node_id(e->state, v.origin, &oid, err);
  if (rc == AS_OK) {
    as_version_set_held(&v, to->id, oid, v.hlc, v.deleted, written);
    rc = as_state_version_put(e->state, s->name, key, &v, err);
  }
  if (rc == AS_ENOTFOUND) rc = AS_OK;
  if (rc == AS_OK && repair_id && written) rc = as_state_repair_done(e->state, repair_id, err);
  if (rc != AS_OK) {
    as_state_rollback(e->state);
    return rc;
  }
  return as_state_commit(e->state, err);
}

static int write_to(eng_node *to, as_delta *d, as_dead_list *dead, as_error *err) {
  pthread_mutex_lock(&to->mu);
  int rc = to->ad->begin(to->node, err);
  if (rc == AS_OK) rc = to->ad->apply(to->node, d, 1, dead, err);
  if (rc == AS_OK) rc = to->ad->commit(to->node, "repair", NULL, err);
  if (rc != AS_OK) to->ad->rollback(to->node);
  pthread_mutex_unlock(&to->mu);
  return rc;
}

/* A winner that cannot be written to `to` (mapping error, refused row): a dead letter, and the
 * repair is done — retrying it forever would block nothing but fix nothing either. */
static void dead_repair(engine *e, eng_pair *p, const as_schema *s, const char *key,
                        eng_node *from, eng_node *to, const as_delta *d, const char *why) {
  char *dj = d ? as_delta_to_json_string(d, NULL) : NULL;
  eng_record_dead(e, p, s, from->cfg->name, to->cfg->name, "repair", key, NULL, dj, why, NULL);
  free(dj);
}

/* The write itself, under the key's stripe: AS_ENOTFOUND when the state knows no version of
 * the key, AS_EDATA (err says why, *refused set when the target refused the row) when the
 * winner cannot be mapped or written. */
static int write_winner_locked(engine *e, const as_schema *s, const char *key, eng_node *to,
                               eng_node *from, as_delta *d, as_error *err) {
  as_version v;
  int rc = as_state_version_get(e->state, s->name, key, &v, err);
  if (rc != AS_OK) return rc;
  eng_node *holder = v.deleted ? from : winner_holder(e, &v, to, from);
  if (!holder) {
    return as_error_set(err, AS_DOM_ENGINE, AS_RETRY,
                        "no node holds the winner (%s) yet; the repair stays queued", v.origin);
  }
  rc = winner_delta(s, key, &v, holder, d, err);
  if (rc == AS_EINVAL) rc = AS_EDATA;
  if (rc != AS_OK) return rc;
  as_delta_set_origin(d, v.origin);
  d->hlc = v.hlc;
  d->ts_us = AS_HLC_US(v.hlc);
  as_dead_list dead = {0};
  rc = record(e, s, key, to, 0, 0, err); /* ahead of the write, as for batches */
  if (rc == AS_OK) rc = write_to(to, d, &dead, err);
  if (rc == AS_OK && dead.n) {
    rc = as_error_set(err, AS_DOM_ENGINE, AS_EDATA, "%s",
                      dead.items[0].error ? dead.items[0].error : "refused by the target");
  } else if (rc == AS_OK) {
    rc = record(e, s, key, to, as_now_us(), 0, err);
  } else if (rc == AS_EINVAL) {
    rc = AS_EDATA;
  }
  as_dead_list_clear(&dead);
  return rc;
}

int eng_write_winner(engine *e, const as_schema *s, const char *key, eng_node *to,
                     eng_node *from, as_error *err) {
  size_t stripe = eng_stripe_of(s, key);
  as_delta d;
  memset(&d, 0, sizeof d);
  eng_stripes_lock(e, &stripe, 1);
  int rc = write_winner_locked(e, s, key, to, from, &d, err);
  eng_stripes_unlock(e, &stripe, 1);
  as_delta_clear(&d);
  return rc;
}

static int repair_locked(engine *e, eng_pair *p, const as_schema *s, const char *key,
                         eng_node *to, eng_node *from, int64_t repair_id, as_error *err) {
  as_delta d;
  memset(&d, 0, sizeof d);
  int rc = write_winner_locked(e, s, key, to, from, &d, err);
  if (rc == AS_EDATA) {
    dead_repair(e, p, s, key, from, to, d.schema ? &d : NULL, err->message);
    rc = AS_OK;
  } else if (rc == AS_OK) {
    if (p) as_metrics_add(p->src->cfg->name, p->dst->cfg->name, s->name, AS_M_REPAIRS, 1);
    AS_LOG(AS_LOG_DEBUG, p ? p->comp : "repair", "repaired mapping %s key %s on %s with the winner from %s",
           s->name, key, to->cfg->name, d.origin ? d.origin : "?");
  } else if (rc == AS_ENOTFOUND) {
    rc = AS_OK;
  }
  if (rc == AS_OK && repair_id) rc = as_state_repair_done(e->state, repair_id, err);
  as_delta_clear(&d);
  return rc;
}

int eng_repair(engine *e, eng_pair *p, const as_schema *s, const char *key, eng_node *to,
               eng_node *from, int64_t repair_id, as_error *err) {
  size_t stripe = eng_stripe_of(s, key);
  eng_stripes_lock(e, &stripe, 1);
  int rc = repair_locked(e, p, s, key, to, from, repair_id, err);
  eng_stripes_unlock(e, &stripe, 1);
  if (rc != AS_OK) as_error_prefix(err, "repair of mapping %s key %s on %s", s->name, key, to->cfg->name);
  return rc;
}

typedef struct drain_ctx {
  engine *e;
  int64_t done, failed;
} drain_ctx;

static int drain_one(void *vctx, const as_repair_rec *r) {
  drain_ctx *c = vctx;
  engine *e = c->e;
  const as_schema *s = as_config_schema(e->cfg, r->mapping);
  eng_node *to = eng_find_node(e, r->node), *from = eng_find_node(e, r->read_from);
  as_error err;
  if (!s || !to || !from) { /* the mapping or node is gone from the configuration */
    if (as_state_repair_done(e->state, r->id, &err) != AS_OK) c->failed++;
    return AS_OK;
  }
  if (eng_repair(e, NULL, s, r->key, to, from, r->id, &err) == AS_OK) {
    c->done++;
  } else {
    c->failed++;
    AS_LOG(AS_LOG_WARN, "repair", "%s", err.message);
  }
  return eng_stopping(e) ? AS_EOF : AS_OK;
}

int eng_repairs_drain(engine *e, as_error *err) {
  drain_ctx c = {.e = e};
  int rc = as_state_repair_each(e->state, drain_one, &c, err);
  if (rc == AS_EOF) rc = AS_OK;
  if (c.done || c.failed)
    AS_LOG(AS_LOG_INFO, "repair", "pending repairs: %lld done, %lld still pending",
           (long long)c.done, (long long)c.failed);
  return rc;
}
