/* as_batch_conflict.c — records a conflict the resolver found (strategy vector): both
 * versions of the disputed columns, their vectors, nodes and commit times, and what the
 * fallback chose meanwhile. The version in place is read from a node that holds it (the
 * target when it does, else the node that made it), before the batch writes anything. */
#include "as_batch_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "as_key.h"
#include "as_log.h"
#include "as_metrics.h"

static json_t *vv_json(engine *e, const as_version *v) {
  json_t *o = json_object();
  for (uint8_t i = 0; o && i < v->nvv; i++) {
    const char *n = as_state_node_name(e->state, v->vv[i].node);
    if (n) json_object_set_new(o, n, json_integer((json_int_t)v->vv[i].n));
  }
  return o;
}

/* Columns marked in m (and set in row when row is given) as an object column -> value. */
static json_t *row_json(const as_schema *s, const as_row *row, const uint8_t *m) {
  json_t *o = json_object();
  for (size_t i = 0; o && i < s->ncols && i < row->n; i++) {
    if (!row->set[i] || (m && !m[i] && !s->cols[i].is_key)) continue;
    as_error e;
    json_t *v = as_value_to_json(&row->v[i], &e);
    if (v) json_object_set_new(o, s->cols[i].name, v);
  }
  return o;
}

/* The version in place that the change disputes: of the disputed columns, the newest version
 * (a column's own, else the row's); and a node holding it (the target when it does, else the
 * node that made it). */
static eng_node *holder(eng_pair *p, const as_version *before, const as_schema *s,
                        const uint8_t *disputed, const char **origin, int64_t *hlc) {
  *origin = before->origin;
  *hlc = before->hlc;
  uint64_t mask = before->row_mask;
  bool any = false;
  for (size_t i = 0; i < s->ncols; i++) {
    if (!disputed[i]) continue;
    const as_colver *cv = as_version_col(before, (uint16_t)i);
    int64_t h = cv ? cv->hlc : before->hlc;
    if (any && h <= *hlc) continue;
    any = true;
    if (cv) {
      const char *o = as_state_node_name(p->e->state, cv->origin);
      *origin = o ? o : "";
      *hlc = cv->hlc;
      mask = cv->mask;
    } else {
      *origin = before->origin;
      *hlc = before->hlc;
      mask = before->row_mask;
    }
  }
  if (mask & (1ull << (p->dst->id % 64))) return p->dst;
  eng_node *n = eng_find_node(p->e, *origin);
  return n ? n : p->dst;
}

static char *dump(json_t *o) {
  char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(o);
  return s;
}

void eng_note_vector_conflict(eng_pair *p, const as_delta *d, const char *key,
                              const as_version *before, const as_version *after,
                              const as_decision *dec, const char *strategy) {
  const as_schema *s = d->schema;
  engine *e = p->e;
  eng_count(p, s, ENG_C_CONFLICTS, 1);
  as_metrics_add(p->src->cfg->name, p->dst->cfg->name, s->name, AS_M_CONFLICTS, 1);
  const char *lorigin;
  int64_t lhlc;
  eng_node *h = holder(p, before, s, dec->disputed, &lorigin, &lhlc);
  json_t *cols = json_array();
  for (size_t i = 0; cols && i < s->ncols; i++)
    if (dec->disputed[i]) json_array_append_new(cols, json_string(s->cols[i].name));
  as_row keyrow = {0}, cur = {0};
  as_error err = {0};
  char *lrow = NULL;
  if (as_row_init(&keyrow, s->ncols) == AS_OK && as_key_parse(s, key, &keyrow, &err) == AS_OK &&
      as_row_init(&cur, s->ncols) == AS_OK) {
    pthread_mutex_lock(&h->mu);
    int rc = h->ad->read_row(h->node, s, &keyrow, &cur, &err);
    pthread_mutex_unlock(&h->mu);
    if (rc == AS_OK) lrow = dump(row_json(s, &cur, NULL));
    else if (rc == AS_ENOTFOUND) lrow = strdup("null");
  }
  bool lost = dec->any_lost || dec->verdict != AS_VERDICT_APPLY;
  char *rrow = dump(row_json(s, &d->row, NULL));
  char *lvv = dump(vv_json(e, before)), *rvv = dump(vv_json(e, after));
  char *cj = dump(cols);
  as_conflict_rec r = {
      .mapping = s->name,
      .key = key,
      .strategy = strategy,
      .columns_json = cj,
      .chosen = lost ? lorigin : d->origin,
      .open = true,
      .local = {.node = lorigin, .row_json = lrow, .vv_json = lvv, .ts_us = AS_HLC_US(lhlc)},
      .remote = {.node = d->origin, .row_json = rrow, .vv_json = rvv, .ts_us = d->ts_us},
  };
  if (dec->merged) { /* settled by the script */
    r.chosen = "merged";
    r.open = false;
  }
  as_error cerr;
  if (as_state_conflict_record(e->state, &r, NULL, &cerr) != AS_OK)
    AS_LOG(AS_LOG_WARN, p->comp, "mapping %s key %s: cannot record the conflict: %s", s->name, key,
           cerr.message);
  AS_LOG(AS_LOG_INFO, p->comp,
         "mapping %s key %s: concurrent changes on %s and %s (columns %s): %s%s "
         "(conflict recorded; `arraysync conflicts list`)",
         s->name, key, lorigin, d->origin, cj ? cj : "?",
         dec->merged ? "merged by the script" : r.chosen, dec->merged ? "" : "'s kept for now");
  free(lrow);
  free(rrow);
  free(lvv);
  free(rvv);
  free(cj);
  as_row_clear(&keyrow);
  as_row_clear(&cur);
}
