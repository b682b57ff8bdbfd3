/* as_conflict_mirror.c — open conflicts mirrored into SQL nodes' tables (a mapping's
 * `conflicts: { node, table }`, else the configuration's), so an application can show and
 * settle them without the CLI.
 *
 * The state store stays the record; the tables follow it. Each mapping's conflicts go to one
 * table (as_schema mirror_node / mirror_table); mappings naming the same node and table share
 * it. Every pass (the supervisor's, every two seconds, and one when `run` stops):
 *   - an open conflict in no table is written to its mapping's table and noted as mirrored
 *     (state store table conflict_mirror); one found in another mirror table (the mapping's
 *     table was changed) moves: written to its table, deleted from the other;
 *   - an open conflict noted as mirrored whose row is in no mirror table was settled by the
 *     application: it becomes resolved, the value in place stays (what the fallback chose
 *     meanwhile). So a table that stops being a mirror table (configuration changed) settles
 *     the open conflicts it held;
 *   - a row whose conflict is no longer open (resolved by the CLI, a script, or above) is
 *     deleted, and the note with it.
 * The tables are never captured: they are not mapped tables (no triggers, not in the
 * publication; the configuration refuses a mapped table's name). */
#include "as_engine_int.h"

#include <stdlib.h>
#include <string.h>

#include "as_log.h"

/* One mirror table: a node and a table name. */
typedef struct target {
  eng_node *n;
  const char *table; /* borrowed from a schema */
  int64_t *in_table; /* ids of its rows, in order */
  size_t nin;
  int written, settled;
} target;

typedef struct open_id {
  int64_t id;
  int t; /* target index, or -1 (the mapping is not mirrored) */
} open_id;

typedef struct pass {
  engine *e;
  target *t;
  size_t nt;
  const int64_t *noted;
  size_t nnoted;
  open_id *open; /* the open conflicts seen */
  size_t nopen, capopen;
} pass;

static bool has(const int64_t *ids, size_t n, int64_t id) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ids[mid] == id) return true;
    if (ids[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return false;
}

/* The target of an open conflict id seen this pass: >= 0, -1 (not mirrored), -2 (not open). */
static int open_target(const pass *p, int64_t id) {
  size_t lo = 0, hi = p->nopen;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (p->open[mid].id == id) return p->open[mid].t;
    if (p->open[mid].id < id) lo = mid + 1;
    else hi = mid;
  }
  return -2;
}

static bool in_any_table(const pass *p, int64_t id) {
  for (size_t i = 0; i < p->nt; i++)
    if (has(p->t[i].in_table, p->t[i].nin, id)) return true;
  return false;
}

/* The target of mapping name's conflicts, or -1. */
static int target_of(const pass *p, const char *mapping) {
  const as_schema *s = as_config_schema(p->e->cfg, mapping);
  if (!s || !s->mirror_node) return -1;
  for (size_t i = 0; i < p->nt; i++)
    if (strcmp(p->t[i].n->cfg->name, s->mirror_node) == 0 && strcmp(p->t[i].table, s->mirror_table) == 0)
      return (int)i;
  return -1;
}

static int one_open(void *ctx, const as_conflict *c) {
  pass *p = ctx;
  engine *e = p->e;
  as_error err;
  if (p->nopen == p->capopen) {
    size_t nc = p->capopen ? p->capopen * 2 : 64;
    open_id *q = realloc(p->open, nc * sizeof *q);
    if (!q) return AS_ERR;
    p->open = q;
    p->capopen = nc;
  }
  int ti = target_of(p, c->mapping);
  p->open[p->nopen++] = (open_id){.id = c->id, .t = ti};
  if (ti < 0) return AS_OK;
  target *t = &p->t[ti];
  if (has(t->in_table, t->nin, c->id)) return AS_OK;
  if (has(p->noted, p->nnoted, c->id) && !in_any_table(p, c->id)) { /* deleted there: settled */
    int rc = as_state_conflict_set_status(e->state, c->id, "resolved", NULL, NULL, &err);
    if (rc == AS_OK) rc = as_state_mirror_set(e->state, c->id, false, &err);
    if (rc != AS_OK) AS_LOG(AS_LOG_WARN, "conflicts", "%s", err.message);
    else t->settled++;
    p->nopen--; /* no longer open */
    AS_LOG(AS_LOG_INFO, "conflicts", "conflict %lld (mapping %s, key %s) settled in %s's table "
           "%s: the value in place stays", (long long)c->id, c->mapping, c->key,
           t->n->cfg->name, t->table);
    return AS_OK;
  }
  as_mirror_row m = {.id = c->id, .mapping = c->mapping, .key_json = c->key,
                     .strategy = c->strategy, .columns_json = c->columns, .chosen = c->chosen,
                     .local_node = c->local.node, .local_row_json = c->local.row,
                     .remote_node = c->remote.node, .remote_row_json = c->remote.row,
                     .created_us = c->created_us};
  pthread_mutex_lock(&t->n->mu);
  int rc = t->n->ad->mirror_put(t->n->node, t->table, &m, &err);
  pthread_mutex_unlock(&t->n->mu);
  if (rc == AS_OK) rc = as_state_mirror_set(e->state, c->id, true, &err);
  if (rc != AS_OK) {
    AS_LOG(AS_LOG_WARN, "conflicts", "table %s on %s: %s", t->table, t->n->cfg->name, err.message);
    return rc == AS_ERR ? AS_ERR : AS_RETRY;
  }
  t->written++;
  return AS_OK;
}

static int cmp_open(const void *a, const void *b) {
  int64_t x = ((const open_id *)a)->id, y = ((const open_id *)b)->id;
  return x < y ? -1 : x > y;
}

static bool ready(engine *e, const char *node, const char *table) {
  for (size_t i = 0; i < e->nmirror_ready; i++)
    if (strcmp(e->mirror_ready[i].node, node) == 0 && strcmp(e->mirror_ready[i].table, table) == 0)
      return true;
  return false;
}

static int note_ready(engine *e, const char *node, const char *table) {
  void *g = realloc(e->mirror_ready, (e->nmirror_ready + 1) * sizeof *e->mirror_ready);
  if (!g) return AS_ERR;
  e->mirror_ready = g;
  char *n = strdup(node), *t = strdup(table);
  if (!n || !t) {
    free(n);
    free(t);
    return AS_ERR;
  }
  e->mirror_ready[e->nmirror_ready++] = (eng_mirror_table){.node = n, .table = t};
  return AS_OK;
}

void eng_conflict_mirror_free(engine *e) {
  for (size_t i = 0; i < e->nmirror_ready; i++) {
    free(e->mirror_ready[i].node);
    free(e->mirror_ready[i].table);
  }
  free(e->mirror_ready);
  e->mirror_ready = NULL;
  e->nmirror_ready = 0;
}

bool eng_conflict_mirror_on(const engine *e) {
  for (size_t i = 0; i < e->cfg->nschemas; i++)
    if (e->cfg->schemas[i]->mirror_node) return true;
  return false;
}

/* The mirror tables of the configuration's mappings, each ready and its ids read. */
static int targets_load(pass *p, as_error *err) {
  engine *e = p->e;
  for (size_t i = 0; i < e->cfg->nschemas; i++) {
    const as_schema *s = e->cfg->schemas[i];
    if (!s->mirror_node || target_of(p, s->name) >= 0) continue;
    eng_node *n = eng_find_node(e, s->mirror_node);
    if (!n || !n->ad->mirror_ensure || !n->ad->mirror_ids || !n->ad->mirror_put || !n->ad->mirror_del)
      return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "node %s cannot hold the conflicts table",
                          s->mirror_node);
    target *t = &p->t[p->nt];
    *t = (target){.n = n, .table = s->mirror_table};
    pthread_mutex_lock(&n->mu);
    int rc = ready(e, s->mirror_node, s->mirror_table) ? AS_OK
                                                       : n->ad->mirror_ensure(n->node, t->table, err);
    if (rc == AS_OK && !ready(e, s->mirror_node, s->mirror_table) &&
        note_ready(e, s->mirror_node, s->mirror_table) != AS_OK)
      rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
    if (rc == AS_OK) rc = n->ad->mirror_ids(n->node, t->table, &t->in_table, &t->nin, err);
    pthread_mutex_unlock(&n->mu);
    if (rc != AS_OK) {
      as_error_prefix(err, "table %s on %s", t->table, n->cfg->name);
      return rc;
    }
    p->nt++;
  }
  return AS_OK;
}

int eng_conflict_mirror(engine *e, as_error *err) {
  if (!eng_conflict_mirror_on(e)) return AS_OK;
  pass p = {.e = e, .t = calloc(e->cfg->nschemas, sizeof *p.t)};
  int64_t *noted = NULL;
  size_t nnoted = 0;
  int rc = p.t ? targets_load(&p, err) : as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  if (rc == AS_OK) rc = as_state_mirror_ids(e->state, &noted, &nnoted, err);
  p.noted = noted;
  p.nnoted = nnoted;
  if (rc == AS_OK) rc = as_state_conflict_each(e->state, NULL, true, one_open, &p, err);
  if (rc == AS_OK) {
    qsort(p.open, p.nopen, sizeof *p.open, cmp_open);
    for (size_t ti = 0; rc == AS_OK && ti < p.nt; ti++) {
      target *t = &p.t[ti];
      for (size_t i = 0; rc == AS_OK && i < t->nin; i++) { /* rows no longer open, or moved */
        int where = open_target(&p, t->in_table[i]);
        if (where == (int)ti) continue;
        pthread_mutex_lock(&t->n->mu);
        rc = t->n->ad->mirror_del(t->n->node, t->table, t->in_table[i], err);
        pthread_mutex_unlock(&t->n->mu);
        if (rc == AS_OK && where < 0) rc = as_state_mirror_set(e->state, t->in_table[i], false, err);
      }
    }
    for (size_t i = 0; rc == AS_OK && i < nnoted; i++) /* notes of rows gone and settled */
      if (open_target(&p, noted[i]) < 0 && !in_any_table(&p, noted[i]))
        rc = as_state_mirror_set(e->state, noted[i], false, err);
  }
  for (size_t ti = 0; ti < p.nt; ti++) {
    target *t = &p.t[ti];
    if (rc == AS_OK && (t->written || t->settled))
      AS_LOG(AS_LOG_DEBUG, "conflicts", "table %s on %s: %d written, %d settled there", t->table,
             t->n->cfg->name, t->written, t->settled);
    free(t->in_table);
  }
  free(p.t);
  free(p.open);
  free(noted);
  return rc;
}
