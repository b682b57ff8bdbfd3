/* as_conflict_mirror.c — open conflicts mirrored into a SQL node's table (configuration
 * `conflicts: { node, table }`), so an application can show and settle them without the CLI.
 *
 * The state store stays the record; the table follows it. Every pass (the supervisor's, every
 * two seconds, and one when `run` stops):
 *   - an open conflict not in the table is written there and noted as mirrored (state store
 *     table conflict_mirror);
 *   - an open conflict noted as mirrored whose row is gone was settled by the application:
 *     it becomes resolved, the value in place stays (what the fallback chose meanwhile);
 *   - a row whose conflict is no longer open (resolved by the CLI, a script, or above) is
 *     deleted, and the note with it.
 * The table is never captured: it is not a mapped table (no triggers, not in the publication). */
#include "as_engine_int.h"

#include <stdlib.h>
#include <string.h>

#include "as_log.h"

typedef struct pass {
  engine *e;
  eng_node *n;
  const int64_t *in_table, *noted;
  size_t nin, nnoted;
  int64_t *open; /* ids of the open conflicts seen */
  size_t nopen, capopen;
  int settled, written;
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

static int one_open(void *ctx, const as_conflict *c) {
  pass *p = ctx;
  engine *e = p->e;
  as_error err;
  if (p->nopen == p->capopen) {
    size_t nc = p->capopen ? p->capopen * 2 : 64;
    int64_t *q = realloc(p->open, nc * sizeof *q);
    if (!q) return AS_ERR;
    p->open = q;
    p->capopen = nc;
  }
  p->open[p->nopen++] = c->id;
  if (has(p->in_table, p->nin, c->id)) return AS_OK;
  if (has(p->noted, p->nnoted, c->id)) { /* its row was deleted there: settled */
    int rc = as_state_conflict_set_status(e->state, c->id, "resolved", NULL, NULL, &err);
    if (rc == AS_OK) rc = as_state_mirror_set(e->state, c->id, false, &err);
    if (rc != AS_OK) AS_LOG(AS_LOG_WARN, "conflicts", "%s", err.message);
    else p->settled++;
    p->nopen--; /* no longer open */
    AS_LOG(AS_LOG_INFO, "conflicts", "conflict %lld (mapping %s, key %s) settled in %s's table "
           "%s: the value in place stays", (long long)c->id, c->mapping, c->key,
           p->n->cfg->name, e->cfg->mirror_table);
    return AS_OK;
  }
  as_mirror_row m = {.id = c->id, .mapping = c->mapping, .key_json = c->key,
                     .strategy = c->strategy, .columns_json = c->columns, .chosen = c->chosen,
                     .local_node = c->local.node, .local_row_json = c->local.row,
                     .remote_node = c->remote.node, .remote_row_json = c->remote.row,
                     .created_us = c->created_us};
  pthread_mutex_lock(&p->n->mu);
  int rc = p->n->ad->mirror_put(p->n->node, e->cfg->mirror_table, &m, &err);
  pthread_mutex_unlock(&p->n->mu);
  if (rc == AS_OK) rc = as_state_mirror_set(e->state, c->id, true, &err);
  if (rc != AS_OK) return rc == AS_ERR ? AS_ERR : AS_RETRY;
  p->written++;
  return AS_OK;
}

static int cmp_id(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int eng_conflict_mirror(engine *e, as_error *err) {
  if (!e->cfg->mirror_node) return AS_OK;
  eng_node *n = eng_find_node(e, e->cfg->mirror_node);
  if (!n || !n->ad->mirror_ensure || !n->ad->mirror_ids || !n->ad->mirror_put || !n->ad->mirror_del)
    return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "node %s cannot hold the conflicts table",
                        e->cfg->mirror_node);
  const char *table = e->cfg->mirror_table;
  int64_t *in_table = NULL, *noted = NULL;
  size_t nin = 0, nnoted = 0;
  pthread_mutex_lock(&n->mu);
  int rc = e->mirror_ready ? AS_OK : n->ad->mirror_ensure(n->node, table, err);
  if (rc == AS_OK) e->mirror_ready = true;
  if (rc == AS_OK) rc = n->ad->mirror_ids(n->node, table, &in_table, &nin, err);
  pthread_mutex_unlock(&n->mu);
  if (rc == AS_OK) rc = as_state_mirror_ids(e->state, &noted, &nnoted, err);
  pass p = {.e = e, .n = n, .in_table = in_table, .noted = noted, .nin = nin, .nnoted = nnoted};
  if (rc == AS_OK) rc = as_state_conflict_each(e->state, NULL, true, one_open, &p, err);
  if (rc == AS_OK) {
    qsort(p.open, p.nopen, sizeof *p.open, cmp_id);
    for (size_t i = 0; rc == AS_OK && i < nin; i++) { /* rows of conflicts no longer open */
      if (has(p.open, p.nopen, in_table[i])) continue;
      pthread_mutex_lock(&n->mu);
      rc = n->ad->mirror_del(n->node, table, in_table[i], err);
      pthread_mutex_unlock(&n->mu);
      if (rc == AS_OK) rc = as_state_mirror_set(e->state, in_table[i], false, err);
    }
    for (size_t i = 0; rc == AS_OK && i < nnoted; i++) /* notes of rows gone and settled */
      if (!has(p.open, p.nopen, noted[i]) && !has(in_table, nin, noted[i]))
        rc = as_state_mirror_set(e->state, noted[i], false, err);
  }
  if (rc == AS_OK && (p.written || p.settled))
    AS_LOG(AS_LOG_DEBUG, "conflicts", "table %s on %s: %d written, %d settled there", table,
           n->cfg->name, p.written, p.settled);
  free(p.open);
  free(in_table);
  free(noted);
  return rc;
}
