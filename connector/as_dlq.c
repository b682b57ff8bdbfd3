/* as_dlq.c — `arraysync dlq retry`: re-applies open dead letters after the user fixed the
 * mapping or the data. A retry sends the key's current state, never the stale change that
 * failed: the winner the state store knows (read from the node that holds it), or, for a key
 * the connector never resolved, the source's current row (a delete when it is gone). A dead
 * letter whose key could not even be read is decoded again from its raw form by the source's
 * adapter (decode_raw) with today's mapping. */
#include "as_engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_key.h"
#include "as_log.h"
#include "as_time.h"

typedef struct retry_ctx {
  engine *e;
  FILE *out;
  int failing;
} retry_ctx;

/* Applies one delta to t marked with its origin, and records what the state must know: the
 * version (when none is known yet) and that t holds it. */
static int apply_one(engine *e, eng_node *t, as_delta *d, const char *key, as_error *err) {
  as_dead_list dead = {0};
  as_version v;
  memset(&v, 0, sizeof v);
  int g = as_state_version_get(e->state, d->schema->name, key, &v, err);
  if (g != AS_OK && g != AS_ENOTFOUND) return g;
  if (g == AS_ENOTFOUND) {
    v.hlc = d->hlc;
    snprintf(v.origin, sizeof v.origin, "%s", d->origin);
    v.deleted = d->op == AS_OP_DELETE;
  }
  uint16_t oid = 0;
  int rc = as_state_node_id(e->state, d->origin, &oid, err);
  if (rc != AS_OK) return rc;
  as_version_set_held(&v, t->id, oid, d->hlc, d->op == AS_OP_DELETE, as_now_us());
  pthread_mutex_lock(&t->mu);
  rc = t->ad->begin(t->node, err);
  if (rc == AS_OK) rc = t->ad->apply(t->node, d, 1, &dead, err);
  if (rc == AS_OK && dead.n) {
    rc = as_error_set(err, AS_DOM_ENGINE, AS_EDATA, "%s",
                      dead.items[0].error ? dead.items[0].error : "refused");
  }
  if (rc == AS_OK) rc = t->ad->commit(t->node, "dlq-retry", NULL, err);
  if (rc != AS_OK) t->ad->rollback(t->node);
  pthread_mutex_unlock(&t->mu);
  as_dead_list_clear(&dead);
  if (rc == AS_OK) rc = as_state_version_put(e->state, d->schema->name, key, &v, err);
  return rc;
}

/* The source's current row for key (or a delete when it has none) -> target. */
static int from_source(engine *e, const as_schema *s, eng_node *src, eng_node *t,
                       const as_row *keyrow, const char *key, as_error *err) {
  as_delta d;
  memset(&d, 0, sizeof d);
  int rc = as_delta_init(&d, s, AS_OP_INSERT);
  if (rc == AS_OK) {
    pthread_mutex_lock(&src->mu);
    rc = src->ad->read_row(src->node, s, keyrow, &d.row, err);
    pthread_mutex_unlock(&src->mu);
  }
  if (rc == AS_ENOTFOUND) {
    d.op = AS_OP_DELETE;
    as_row_clear(&d.row); /* as_row_copy allocates the row anew */
    rc = as_row_copy(&d.row, keyrow);
  }
  if (rc == AS_OK) rc = as_delta_set_origin(&d, src->cfg->name);
  if (rc == AS_OK) {
    d.ts_us = as_now_us();
    d.hlc = AS_HLC_FROM_US(d.ts_us);
    rc = apply_one(e, t, &d, key, err);
  }
  as_delta_clear(&d);
  return rc;
}

/* The key of a dead letter: its canonical text, or decoded from the raw form. */
static int letter_key(engine *e, const as_dead_letter *dl, const as_schema *s, eng_node *src,
                      as_row *keyrow, char **key, as_error *err) {
  if (dl->key && as_key_parse(s, dl->key, keyrow, err) == AS_OK) {
    *key = as_key_json_dup(s, keyrow, err);
    return *key ? AS_OK : AS_ERR;
  }
  as_delta d;
  memset(&d, 0, sizeof d);
  int rc;
  if (dl->raw && src && src->ad->decode_raw) {
    rc = src->ad->decode_raw(s, dl->raw, &d, err);
  } else if (dl->delta_json) {
    rc = as_config_delta_parse(e->cfg, dl->delta_json, &d, err);
  } else {
    rc = as_error_set(err, AS_DOM_ENGINE, AS_EDATA, "nothing stored to retry");
  }
  if (rc == AS_OK) {
    *key = as_key_json_dup(s, &d.row, err);
    rc = *key ? as_key_parse(s, *key, keyrow, err) : AS_EDATA;
  }
  as_delta_clear(&d);
  return rc;
}

static int retry_letter(engine *e, const as_dead_letter *dl, as_error *err) {
  eng_node *t = eng_find_node(e, dl->target), *src = eng_find_node(e, dl->source);
  const as_schema *s = dl->mapping ? as_config_schema(e->cfg, dl->mapping) : NULL;
  if (!t || !s) {
    return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "unknown %s (no longer in the configuration)",
                        !t ? "target node" : "mapping");
  }
  as_row keyrow = {0};
  char *key = NULL;
  int rc = as_row_init(&keyrow, s->ncols);
  if (rc == AS_OK) rc = letter_key(e, dl, s, src, &keyrow, &key, err);
  if (rc == AS_OK) rc = eng_write_winner(e, s, key, t, src ? src : t, err);
  if (rc == AS_ENOTFOUND) {
    rc = src ? from_source(e, s, src, t, &keyrow, key, err)
             : as_error_set(err, AS_DOM_ENGINE, AS_ERR, "unknown source node %s", dl->source);
  }
  free(key);
  as_row_clear(&keyrow);
  return rc;
}

static int retry_one(void *vctx, const as_dead_letter *dl) {
  retry_ctx *c = vctx;
  as_error err;
  memset(&err, 0, sizeof err);
  int rc = retry_letter(c->e, dl, &err);
  const char *m = dl->mapping ? dl->mapping : "?";
  as_error serr;
  if (rc == AS_OK) {
    if (as_state_dead_set_status(c->e->state, dl->id, "resolved", NULL, &serr) != AS_OK)
      fprintf(c->out, "dead letter %lld: %s\n", (long long)dl->id, serr.message);
    fprintf(c->out, "dead letter %lld (%s, %s -> %s): applied\n", (long long)dl->id, m,
            dl->source ? dl->source : "?", dl->target ? dl->target : "?");
  } else {
    /* the new reason is kept beside the original one */
    char why[AS_ERROR_MSG_MAX + 64];
    snprintf(why, sizeof why, "retry: %s", err.message);
    if (as_state_dead_set_status(c->e->state, dl->id, "open", why, &serr) != AS_OK)
      fprintf(c->out, "dead letter %lld: %s\n", (long long)dl->id, serr.message);
    fprintf(c->out, "dead letter %lld (%s): still failing: %s\n", (long long)dl->id, m, err.message);
    c->failing++;
  }
  return AS_OK;
}

int as_engine_dlq_retry(const as_config *cfg, FILE *out, as_error *err) {
  as_engine_opts o = {0};
  engine e;
  eng_init(&e, cfg, &o);
  int rc = as_state_open(cfg->state_path, false, &e.state, err);
  if (rc == AS_OK) rc = eng_nodes_init(&e, true, err);
  retry_ctx c = {.e = &e, .out = out};
  if (rc == AS_OK) rc = as_state_dead_each(e.state, "open", retry_one, &c, err);
  eng_nodes_free(&e);
  as_state_close(e.state);
  eng_free(&e);
  return rc == AS_OK ? c.failing : rc;
}
